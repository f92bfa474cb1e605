using System.Diagnostics;
using Autograd.Checkpoints;
using Autograd.Layers;
using Autograd.Optimizers;

namespace Autograd.Training;

/// <summary>Progress after one training step.</summary>
/// <param name="Epoch">Epoch (0-based).</param>
/// <param name="Batch">Batch index in the epoch (0-based).</param>
/// <param name="Batches">Batches in the epoch.</param>
/// <param name="Loss">Running mean loss of the epoch so far.</param>
/// <param name="Accuracy">Running accuracy of the epoch so far.</param>
/// <param name="SamplesPerSecond">Training throughput so far in this epoch.</param>
public sealed record StepInfo(int Epoch, int Batch, int Batches, double Loss, double Accuracy, double SamplesPerSecond);

/// <summary>The record of one epoch.</summary>
/// <param name="Epoch">Epoch (0-based).</param>
/// <param name="TrainLoss">Mean training loss.</param>
/// <param name="TrainAccuracy">Training accuracy (in training mode, as measured during the epoch).</param>
/// <param name="TestLoss">Mean test loss (eval mode, no grad), NaN without a test set.</param>
/// <param name="TestAccuracy">Test accuracy.</param>
/// <param name="TestTopK">Test top-k accuracy.</param>
/// <param name="Lr">Learning rate of the first parameter group during the epoch.</param>
/// <param name="Seconds">Wall time of the training part of the epoch, data loading included.</param>
/// <param name="StepSeconds">Sum of the forward/backward/step times alone.</param>
public sealed record EpochResult(int Epoch, double TrainLoss, double TrainAccuracy, double TestLoss, double TestAccuracy, double TestTopK,
    double Lr, double Seconds, double StepSeconds);

/// <summary>A small training loop: epochs of forward, loss, backward and step, evaluation under no-grad in eval mode, metrics
/// (loss, accuracy, top-k), an LR scheduler stepped per epoch, per-epoch checkpoints and resume, early stopping with the best
/// weights restored, and step/epoch callbacks.</summary>
/// <example><code>
/// var trainer = new Trainer(model, new Adam(model.Parameters(), lr: 1e-3)) { CheckpointDir = "ckpt" };
/// trainer.StepCompleted += s => Console.Write($"\r{s.Batch}/{s.Batches} loss {s.Loss:F4}");
/// var history = trainer.Fit(epoch => trainLoader, () => testLoader, epochs: 5);
/// </code></example>
public sealed class Trainer(Module model, Optimizer optimizer, LRScheduler? scheduler = null, Func<Tensor, Tensor, Tensor>? loss = null)
{
    private readonly Func<Tensor, Tensor, Tensor> lossFn = loss ?? ((y, t) => Functional.CrossEntropy(y, t));

    /// <summary>Raised after every training step.</summary>
    public event Action<StepInfo>? StepCompleted;
    /// <summary>Raised after every epoch (after evaluation and checkpointing).</summary>
    public event Action<EpochResult>? EpochCompleted;

    /// <summary>Folder for per-epoch checkpoints (<c>epoch-N.safetensors</c> and <c>last.safetensors</c>); none when null.</summary>
    public string? CheckpointDir { get; init; }
    /// <summary>Stops on a test loss that no longer improves, restoring the best weights; none when null.</summary>
    public EarlyStopping? EarlyStopping { get; init; }
    /// <summary>k of the top-k test accuracy.</summary>
    public int TopK { get; init; } = 5;
    /// <summary>Polled after every step; when it returns true the epoch ends early and a checkpoint is written (Ctrl-C).</summary>
    public Func<bool>? StopRequested { get; init; }
    /// <summary>Extra metadata written into every checkpoint (e.g. model and dataset names).</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }

    /// <summary>Data-parallel training: the processes that each train a replica on their shard of the data (e.g.
    /// <c>Autograd.Distributed.Communicator</c>, with the model wrapped in <c>DistributedDataParallel</c> and the loaders
    /// sharded by <c>DistributedSampler</c>). Epoch metrics and evaluations are then summed over the group, so every rank
    /// reports the global numbers; only rank 0 writes checkpoints; a stop request on any rank stops all of them after the
    /// same step. Null: one process.</summary>
    public IProcessGroup? ProcessGroup { get; init; }

    /// <summary>The module whose state dict checkpoints, resume and early stopping use (default: the model). For a model wrapped
    /// in <c>DistributedDataParallel</c> pass the wrapped module, so checkpoints carry the plain names (no <c>module.</c>
    /// prefix) and resume on any number of processes, as PyTorch users save <c>ddp.module.state_dict()</c>.</summary>
    public Module? CheckpointModule { get; init; }

    private Module Saved => CheckpointModule ?? model;

    /// <summary>The generator whose state goes into checkpoints (dropout, shuffling).</summary>
    public Generator Generator { get; init; } = Generator.Default;

    /// <summary>Whether the last <see cref="Fit"/> ended because <see cref="StopRequested"/> fired.</summary>
    public bool Interrupted { get; private set; }

    /// <summary>Restores a checkpoint written by this trainer and returns the epoch to continue from.</summary>
    public int Resume(string path) => Checkpoint.Load(path, Saved, optimizer, scheduler, Generator);

    /// <summary>Trains from <paramref name="startEpoch"/> up to <paramref name="epochs"/>, evaluating after each epoch.</summary>
    /// <param name="train">The training batches of an epoch (the epoch number lets a loader reshuffle).</param>
    /// <param name="test">The test batches, or null.</param>
    /// <param name="epochs">Total number of epochs.</param>
    /// <param name="startEpoch">First epoch (from <see cref="Resume"/>).</param>
    public List<EpochResult> Fit(Func<int, IEnumerable<(Tensor X, Tensor Y)>> train, Func<IEnumerable<(Tensor X, Tensor Y)>>? test, int epochs, int startEpoch = 0)
    {
        var history = new List<EpochResult>();
        Dictionary<string, Tensor>? best = null;
        Interrupted = false;
        for (int epoch = startEpoch; epoch < epochs; epoch++)
        {
            double lr = optimizer.ParamGroups[0].Lr;
            var (trainLoss, trainAcc, seconds, stepSeconds) = TrainEpoch(train(epoch), epoch);
            var (testLoss, testAcc, testTopK) = test == null ? (double.NaN, double.NaN, double.NaN) : Evaluate(test(), TopK);
            if (!Interrupted) scheduler?.Step();
            var result = new EpochResult(epoch, trainLoss, trainAcc, testLoss, testAcc, testTopK, lr, seconds, stepSeconds);
            history.Add(result);
            if (CheckpointDir != null && (ProcessGroup?.Rank ?? 0) == 0)
            {
                Directory.CreateDirectory(CheckpointDir);
                int next = Interrupted ? epoch : epoch + 1;
                Checkpoint.Save(Path.Combine(CheckpointDir, "last.safetensors"), Saved, optimizer, scheduler, next, Generator, Metadata);
                if (!Interrupted) File.Copy(Path.Combine(CheckpointDir, "last.safetensors"), Path.Combine(CheckpointDir, $"epoch-{epoch + 1}.safetensors"), overwrite: true);
            }
            EpochCompleted?.Invoke(result);
            if (Interrupted) break;
            if (EarlyStopping != null)
            {
                bool stop = EarlyStopping.Step(double.IsNaN(testLoss) ? trainLoss : testLoss);
                if (EarlyStopping.IsImprovement) best = Saved.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.Detach().Clone());
                if (stop)
                {
                    if (best != null) Saved.LoadStateDict(best);
                    break;
                }
            }
        }
        return history;
    }

    /// <summary>One pass over <paramref name="batches"/> in training mode; returns mean loss, accuracy, wall seconds and step seconds.</summary>
    public (double Loss, double Accuracy, double Seconds, double StepSeconds) TrainEpoch(IEnumerable<(Tensor X, Tensor Y)> batches, int epoch = 0)
    {
        model.Train();
        int total = batches is System.Collections.ICollection c ? c.Count : batches.TryGetNonEnumeratedCount(out var n) ? n : -1;
        double lossSum = 0, stepSeconds = 0;
        long correct = 0, samples = 0;
        int batch = 0;
        var clock = Stopwatch.StartNew();
        foreach (var (x, y) in batches)
        {
            long t0 = Stopwatch.GetTimestamp();
            optimizer.ZeroGrad();
            var output = model.Call(x);
            var l = lossFn(output, y);
            l.Backward();
            optimizer.Step();
            stepSeconds += Stopwatch.GetElapsedTime(t0).TotalSeconds;
            int bs = y.Shape[0];
            lossSum += l.Item() * bs;
            correct += Correct(output, y, 1);
            samples += bs;
            StepCompleted?.Invoke(new StepInfo(epoch, batch, total, lossSum / samples, (double)correct / samples, samples / clock.Elapsed.TotalSeconds));
            batch++;
            if (StopRequested != null && Agreed(StopRequested())) { Interrupted = true; break; }
        }
        (lossSum, correct, samples) = Summed(lossSum, correct, samples);
        return (lossSum / Math.Max(1, samples), (double)correct / Math.Max(1, samples), clock.Elapsed.TotalSeconds, stepSeconds);
    }

    /// <summary>Mean loss, accuracy and top-k accuracy in eval mode under no-grad (the previous mode is restored).</summary>
    public (double Loss, double Accuracy, double TopK) Evaluate(IEnumerable<(Tensor X, Tensor Y)> batches, int k = 5)
    {
        bool wasTraining = model.Training;
        model.Eval();
        double lossSum = 0;
        long correct = 0, topk = 0, samples = 0;
        using (AutoGrad.NoGrad())
            foreach (var (x, y) in batches)
            {
                var output = model.Call(x);
                int bs = y.Shape[0];
                lossSum += lossFn(output, y).Item() * bs;
                correct += Correct(output, y, 1);
                topk += Correct(output, y, k);
                samples += bs;
            }
        model.Train(wasTraining);
        if (ProcessGroup != null)
        {
            var sums = new[] { lossSum, correct, topk, samples };
            ProcessGroup.AllReduceSum(sums);
            (lossSum, correct, topk, samples) = (sums[0], (long)sums[1], (long)sums[2], (long)sums[3]);
        }
        return (lossSum / Math.Max(1, samples), (double)correct / Math.Max(1, samples), (double)topk / Math.Max(1, samples));
    }

    /// <summary>The loss sum, correct count and sample count over the group (unchanged for one process).</summary>
    private (double Loss, long Correct, long Samples) Summed(double loss, long correct, long samples)
    {
        if (ProcessGroup == null) return (loss, correct, samples);
        var sums = new[] { loss, correct, samples };
        ProcessGroup.AllReduceSum(sums);
        return (sums[0], (long)sums[1], (long)sums[2]);
    }

    /// <summary>Whether any process of the group asks to stop (so all stop after the same step).</summary>
    private bool Agreed(bool stop)
    {
        if (ProcessGroup == null) return stop;
        var flag = new[] { stop ? 1.0 : 0.0 };
        ProcessGroup.AllReduceSum(flag);
        return flag[0] > 0;
    }

    /// <summary>How many rows of <paramref name="logits"/> [N, C] have their label among the <paramref name="k"/> largest scores.</summary>
    public static long Correct(Tensor logits, Tensor labels, int k)
    {
        var v = logits.ToDoubleArray();
        var t = labels.ToLongArray();
        int classes = logits.Shape[^1];
        long hits = 0;
        for (int i = 0; i < t.Length; i++)
        {
            double target = v[i * classes + t[i]];
            int better = 0;
            // Ties count against the label, so a constant output is never "correct".
            for (int j = 0; j < classes; j++) if (j != t[i] && v[i * classes + j] >= target) better++;
            if (better < k) hits++;
        }
        return hits;
    }
}
