using System.Globalization;
using Autograd.Layers;
using Autograd.Optimizers;

namespace Autograd.Checkpoints;

/// <summary>Saving and loading models and whole training states as safetensors files that PyTorch users can read.</summary>
/// <example><code>
/// Checkpoint.SaveModel("model.safetensors", model);                 // the state dict under PyTorch's names
/// Checkpoint.Save("ckpt.safetensors", model, optimizer, scheduler, epoch: 3, Generator.Default);
/// int epoch = Checkpoint.Load("ckpt.safetensors", model, optimizer, scheduler, Generator.Default);
/// </code></example>
public static class Checkpoint
{
    private const string Format = "autograd-training-checkpoint";

    /// <summary>Writes the model's state dict (keys exactly as <see cref="Module.StateDict"/>, e.g. <c>layer1.0.conv1.weight</c>), atomically.</summary>
    public static void SaveModel(string path, Module model) => SafeTensors.Save(path, model.StateDict());

    /// <summary>Loads a state dict file into <paramref name="model"/> (see <see cref="Module.LoadStateDict"/>).</summary>
    public static void LoadModel(string path, Module model, bool strict = true) => model.LoadStateDict(SafeTensors.Load(path), strict);

    /// <summary>Writes a training checkpoint: the model under <c>model.</c>, the optimizer under <c>optimizer.</c>, the scheduler under
    /// <c>scheduler.</c>, the generator state as <c>rng</c>, and the epoch in the metadata. Written to a temporary file and renamed.</summary>
    /// <param name="path">Destination file.</param>
    /// <param name="model">The model.</param>
    /// <param name="optimizer">Its optimizer, if any.</param>
    /// <param name="scheduler">Its LR scheduler, if any.</param>
    /// <param name="epoch">The epoch to resume from.</param>
    /// <param name="generator">A generator whose state to save, if any.</param>
    /// <param name="metadata">Extra string metadata (e.g. the model and dataset names), read back with <see cref="ReadMetadata"/>.</param>
    public static void Save(string path, Module model, Optimizer? optimizer = null, LRScheduler? scheduler = null, int epoch = 0, Generator? generator = null,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (k, v) in model.StateDict()) tensors["model." + k] = v;
        if (optimizer != null) foreach (var (k, v) in optimizer.StateDict()) tensors["optimizer." + k] = v;
        if (scheduler != null) foreach (var (k, v) in scheduler.StateDict()) tensors["scheduler." + k] = v;
        if (generator != null) tensors["rng"] = generator.GetState();
        var meta = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>()) { ["format"] = Format, ["epoch"] = epoch.ToString(CultureInfo.InvariantCulture) };
        SafeTensors.Save(path, tensors, meta);
    }

    /// <summary>The string metadata of a checkpoint (including <c>format</c> and <c>epoch</c>).</summary>
    public static Dictionary<string, string> ReadMetadata(string path) => SafeTensors.LoadWithMetadata(path).Metadata;

    /// <summary>Restores a checkpoint written by <see cref="Save"/> into the given objects (each part that is passed must be in the
    /// file) and returns its epoch.</summary>
    public static int Load(string path, Module model, Optimizer? optimizer = null, LRScheduler? scheduler = null, Generator? generator = null)
    {
        var (tensors, metadata) = SafeTensors.LoadWithMetadata(path);
        if (!metadata.TryGetValue("format", out var format) || format != Format)
            throw new CheckpointException($"{path}: not a training checkpoint (metadata \"format\" is {(format == null ? "missing" : $"\"{format}\"")}, expected \"{Format}\"); use LoadModel for a plain state dict");
        Dictionary<string, Tensor> Part(string prefix) =>
            tensors.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);
        model.LoadStateDict(Part("model."));
        optimizer?.LoadStateDict(Part("optimizer."));
        scheduler?.LoadStateDict(Part("scheduler."));
        if (generator != null)
            generator.SetState(tensors.TryGetValue("rng", out var rng) ? rng : throw new CheckpointException($"{path}: the checkpoint has no \"rng\" tensor to restore the generator from"));
        return metadata.TryGetValue("epoch", out var e) && int.TryParse(e, NumberStyles.Integer, CultureInfo.InvariantCulture, out var epoch)
            ? epoch
            : throw new CheckpointException($"{path}: metadata \"epoch\" is missing or not an integer");
    }
}
