namespace Autograd.Data;

/// <summary>A folder with one subfolder of PNG images per class (<c>root/cat/001.png</c>, <c>root/dog/xyz.png</c>), like
/// torchvision's <c>ImageFolder</c>: classes are the subfolder names sorted ordinally (as Python's <c>sorted</c>), labels their
/// positions, and samples are ordered by class, then by path. Images are decoded on access (on the <see cref="DataLoader"/>
/// worker thread when prefetching) into Float32 [C, H, W] tensors in [0, 1].</summary>
public sealed class ImageFolder : IDataset
{
    private readonly (string Path, long Label)[] samples;

    /// <summary>Scans <paramref name="root"/> (subfolders are searched recursively for <c>.png</c> files, any case).</summary>
    /// <param name="root">The folder holding one subfolder per class.</param>
    /// <param name="channels">Channels of every sample: 1 (gray), 2 (gray + alpha), 3 (RGB, the default, as torchvision's loader) or 4 (RGBA);
    /// images are converted as PIL's <c>convert</c> does.</param>
    /// <exception cref="DirectoryNotFoundException"><paramref name="root"/> does not exist.</exception>
    /// <exception cref="InvalidDataException">There is no class folder, or a class folder holds no PNG file.</exception>
    public ImageFolder(string root, int channels = 3)
    {
        if (channels is not (1 or 2 or 3 or 4)) throw new ArgumentOutOfRangeException(nameof(channels), $"ImageFolder: channels must be 1..4, got {channels}");
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"ImageFolder: directory '{root}' not found");
        Root = root;
        Channels = channels;
        var classes = Directory.GetDirectories(root).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToArray();
        if (classes.Length == 0) throw new InvalidDataException($"ImageFolder: '{root}' has no class subfolders (expected root/<class>/<image>.png)");
        var list = new List<(string, long)>();
        for (int c = 0; c < classes.Length; c++)
        {
            var files = Directory.GetFiles(Path.Combine(root, classes[c]), "*", SearchOption.AllDirectories)
                .Where(f => f.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
                .Order(StringComparer.Ordinal).ToArray();
            if (files.Length == 0)
                throw new InvalidDataException($"ImageFolder: class folder '{Path.Combine(root, classes[c])}' holds no .png file");
            list.AddRange(files.Select(f => (f, (long)c)));
        }
        Classes = classes;
        ClassToIndex = classes.Select((name, i) => (name, i)).ToDictionary(p => p.name, p => p.i);
        samples = list.ToArray();
    }

    /// <summary>The scanned folder.</summary>
    public string Root { get; }

    /// <summary>Channels of every sample.</summary>
    public int Channels { get; }

    /// <summary>Class names (subfolder names) sorted ordinally; a sample's label is its class's position here.</summary>
    public IReadOnlyList<string> Classes { get; }

    /// <summary>Label of each class name.</summary>
    public IReadOnlyDictionary<string, int> ClassToIndex { get; }

    /// <summary>The image files and their labels, in sample order.</summary>
    public IReadOnlyList<(string Path, long Label)> Samples => samples;

    /// <inheritdoc/>
    public int Count => samples.Length;

    /// <summary>Decodes sample <paramref name="index"/>.</summary>
    /// <exception cref="InvalidDataException">The PNG file is corrupt (the message names it).</exception>
    public (Tensor Input, long Label) this[int index]
    {
        get
        {
            if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index), $"ImageFolder: index {index} is out of range for {Count} samples");
            var (path, label) = samples[index];
            return (Png.Read(path).ToTensor(Channels), label);
        }
    }
}
