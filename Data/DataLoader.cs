using System.Collections;
using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace Autograd.Data;

/// <summary>Iterates over a dataset in batches, like <c>torch.utils.data.DataLoader</c>: each enumeration is one epoch and
/// yields <c>(X, Y)</c> with X Float32 [B, ...sample shape] and Y Int64 [B].</summary>
/// <remarks>
/// <para>Shuffling: epoch <c>e</c> visits the samples in a permutation drawn from a generator seeded with a mix of
/// <c>seed</c> and <c>e</c> (a <see cref="RandomSampler"/>, as <c>sampler.set_epoch</c>), so every epoch has a different order and a new loader with the
/// same seed replays the same sequence of epochs. <see cref="Epoch"/> starts at 0 and each <see cref="GetEnumerator"/>
/// takes the current value and increments it; set it to replay or skip epochs.</para>
/// <para>Prefetch: with <c>prefetch</c> a worker thread assembles the next batches (up to two ahead, a bounded queue of one)
/// while the consumer runs its step. Disposing the enumerator (leaving a <c>foreach</c> early included) cancels and joins the
/// worker; an enumerator abandoned without disposal stops its worker when it is garbage-collected. An exception thrown while
/// loading a sample (a corrupt file, a failing transform) is rethrown by <c>MoveNext</c> with its original type and stack.</para>
/// <para>Batches are assembled by copying every sample into one preallocated float array; datasets implementing
/// <see cref="IArrayDataset"/> (<see cref="TensorDataset"/>, also behind <see cref="Subset"/>s) are copied without a tensor per sample,
/// and shape-keeping transforms (<see cref="IInPlaceTransform"/>: <see cref="Normalize"/>, <see cref="RandomHorizontalFlip"/>,
/// <see cref="ToTensor"/>, or a <see cref="Compose"/> of them) then run in place on that array.</para>
/// </remarks>
/// <example><code>
/// var loader = new DataLoader(Datasets.Mnist("data/mnist"), batchSize: 64, shuffle: true, seed: 0);
/// for (int epoch = 0; epoch &lt; 3; epoch++)
///     foreach (var (x, y) in loader) { /* x [64, 1, 28, 28], y [64] */ }
/// </code></example>
public sealed class DataLoader : IEnumerable<(Tensor X, Tensor Y)>
{
    private int epoch;

    /// <summary>A loader over <paramref name="dataset"/>.</summary>
    /// <param name="dataset">The samples.</param>
    /// <param name="batchSize">Samples per batch.</param>
    /// <param name="shuffle">Visit samples in a new random order each epoch (otherwise in index order).</param>
    /// <param name="seed">Seed of the shuffling (mixed with the epoch number).</param>
    /// <param name="dropLast">Drop the last batch if it is smaller than <paramref name="batchSize"/>.</param>
    /// <param name="transform">Applied to every sample (on the worker thread with prefetch), before batching.</param>
    /// <param name="prefetch">Assemble the next batches on a background thread.</param>
    /// <param name="sampler">Which indices each epoch visits (e.g. a <c>DistributedSampler</c>'s shard); exclusive with
    /// <paramref name="shuffle"/>, as in PyTorch. Default: a <see cref="RandomSampler"/> with <paramref name="seed"/> when
    /// shuffling, otherwise a <see cref="SequentialSampler"/>.</param>
    public DataLoader(IDataset dataset, int batchSize = 1, bool shuffle = false, long seed = 0, bool dropLast = false,
        ITransform? transform = null, bool prefetch = true, ISampler? sampler = null)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), $"DataLoader: batchSize must be positive, got {batchSize}");
        if (sampler != null && shuffle) throw new ArgumentException("DataLoader: sampler is mutually exclusive with shuffle (the sampler decides the order)", nameof(sampler));
        (Dataset, BatchSize, Shuffle, Seed, DropLast, Transform, Prefetch) = (dataset, batchSize, shuffle, seed, dropLast, transform, prefetch);
        Sampler = sampler ?? (shuffle ? new RandomSampler(dataset.Count, seed) : new SequentialSampler(dataset.Count));
    }

    /// <summary>Which indices each epoch visits.</summary>
    public ISampler Sampler { get; }

    /// <summary>The dataset.</summary>
    public IDataset Dataset { get; }
    /// <summary>Samples per batch.</summary>
    public int BatchSize { get; }
    /// <summary>Whether each epoch is shuffled.</summary>
    public bool Shuffle { get; }
    /// <summary>The shuffling seed.</summary>
    public long Seed { get; }
    /// <summary>Whether a last incomplete batch is dropped.</summary>
    public bool DropLast { get; }
    /// <summary>The per-sample transform, if any.</summary>
    public ITransform? Transform { get; }
    /// <summary>Whether batches are prefetched on a worker thread.</summary>
    public bool Prefetch { get; }

    /// <summary>The epoch the next enumeration will run (it then increments); settable, like <c>sampler.set_epoch</c>.</summary>
    public int Epoch
    {
        get => Volatile.Read(ref epoch);
        set
        {
            if (value < 0) throw new ArgumentOutOfRangeException(nameof(value), $"DataLoader.Epoch must be non-negative, got {value}");
            Volatile.Write(ref epoch, value);
        }
    }

    /// <summary>Number of batches per epoch.</summary>
    public int Count => DropLast ? Sampler.Count / BatchSize : (int)(((long)Sampler.Count + BatchSize - 1) / BatchSize);

    /// <summary>The sample indices epoch <paramref name="epochNumber"/> visits, in order (before batching and dropLast): the sampler's.</summary>
    public int[] Order(int epochNumber)
    {
        var order = Sampler.Indices(epochNumber);
        int n = Dataset.Count;
        foreach (int i in order)
            if ((uint)i >= (uint)n) throw new InvalidOperationException($"DataLoader: the sampler ({Sampler.GetType().Name}) gave index {i} for a dataset of {n} samples");
        return order;
    }

    /// <summary>Starts epoch <see cref="Epoch"/> (and increments it).</summary>
    public IEnumerator<(Tensor X, Tensor Y)> GetEnumerator()
    {
        int e = Interlocked.Increment(ref epoch) - 1;
        var plan = new Plan(this, Order(e));
        return Prefetch && plan.Batches > 0 ? new PrefetchEnumerator(plan) : new SyncEnumerator(plan);
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>What one epoch loads: the base dataset (Subsets resolved), the order, and how to build batch b.</summary>
    private sealed class Plan
    {
        private readonly IDataset source;
        private readonly IArrayDataset? array;
        private readonly int[] order;
        private readonly int batchSize;
        private readonly ITransform? transform;
        private readonly IInPlaceTransform[]? inPlace;   // the transform as in-place steps, if every step is one
        private float[]? scratch;   // reused batch buffer: Tensor.From copies it (only one thread builds batches at a time)

        public Plan(DataLoader loader, int[] order)
        {
            // Resolve Subset chains so TensorDataset's fast copy also works behind RandomSplit.
            IDataset d = loader.Dataset;
            while (d is Subset s)
            {
                var idx = s.Indices;
                for (int i = 0; i < order.Length; i++) order[i] = idx[order[i]];
                d = s.Dataset;
            }
            (source, array, this.order, batchSize, transform) = (d, d as IArrayDataset, order, loader.BatchSize, loader.Transform);
            inPlace = transform is null ? [] : Flatten(transform);
            Batches = loader.Count;
        }

        private static IInPlaceTransform[]? Flatten(ITransform t)
        {
            if (t is IInPlaceTransform one) return [one];
            if (t is not Compose c) return null;
            var steps = new List<IInPlaceTransform>();
            foreach (var part in c.Transforms)
            {
                var sub = Flatten(part);
                if (sub is null) return null;
                steps.AddRange(sub);
            }
            return steps.ToArray();
        }

        public int Batches { get; }

        public (Tensor X, Tensor Y) Build(int b, CancellationToken token = default)
        {
            int start = b * batchSize, count = Math.Min(batchSize, order.Length - start);
            var labels = new long[count];
            if (array is not null && inPlace is not null)
            {
                var shape = array.SampleShape;
                int size = shape.Aggregate(1, (p, q) => p * q);
                var x = Buffer(count * size);
                for (int k = 0; k < count; k++)
                {
                    int i = order[start + k];
                    var sample = x.AsSpan(k * size, size);
                    array.CopySample(i, sample);
                    foreach (var step in inPlace) step.ApplyInPlace(sample, shape);
                    labels[k] = array.LabelAt(i);
                }
                return (Tensor.From(x, [count, .. shape]), Tensor.From(labels, count));
            }
            float[]? buffer = null;
            int[]? first = null;
            int n = 0;
            for (int k = 0; k < count; k++)
            {
                token.ThrowIfCancellationRequested();
                int i = order[start + k];
                var (input, label) = source[i];
                if (transform is not null) input = transform.Apply(input);
                var shape = input.Shape;
                if (first is null)
                {
                    first = shape;
                    n = input.Numel;
                    buffer = Buffer(count * n);
                }
                else if (!shape.AsSpan().SequenceEqual(first))
                    throw new InvalidOperationException(
                        $"DataLoader: sample {i} has shape [{string.Join(", ", shape)}] but sample {order[start]} of the same batch has " +
                        $"[{string.Join(", ", first)}]; samples in a batch must have one shape (crop or resize them with a transform)");
                input.ToFloatArray().CopyTo(buffer!, k * n);
                labels[k] = label;
            }
            return (Tensor.From(buffer!, [count, .. first!]), Tensor.From(labels, count));
        }

        private float[] Buffer(int length)
        {
            if (scratch is null || scratch.Length != length) scratch = new float[length];
            return scratch;
        }
    }

    private sealed class SyncEnumerator(Plan plan) : IEnumerator<(Tensor X, Tensor Y)>
    {
        private int next;
        public (Tensor X, Tensor Y) Current { get; private set; }
        object IEnumerator.Current => Current;

        public bool MoveNext()
        {
            if (next >= plan.Batches) return false;
            Current = plan.Build(next++);
            return true;
        }

        public void Reset() => throw new NotSupportedException("DataLoader enumerators cannot be reset; enumerate the loader again");
        public void Dispose() => next = plan.Batches;
    }

    /// <summary>The state shared by a prefetch enumerator and its worker. The worker holds no reference to the enumerator,
    /// so an abandoned enumerator can be finalized, which cancels the worker.</summary>
    private sealed class WorkerState(Plan plan)
    {
        public readonly Plan Plan = plan;
        public readonly BlockingCollection<(Tensor X, Tensor Y)> Queue = new(boundedCapacity: 1);
        public readonly CancellationTokenSource Cancel = new();
        public ExceptionDispatchInfo? Error;

        public void Run()
        {
            var token = Cancel.Token;
            try
            {
                for (int b = 0; b < Plan.Batches; b++)
                {
                    token.ThrowIfCancellationRequested();
                    Queue.Add(Plan.Build(b, token), token);
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested) { return; }
            catch (Exception e) { Error = ExceptionDispatchInfo.Capture(e); }
            Queue.CompleteAdding();   // after Error is set: the consumer sees it once the queue drains
        }
    }

    private sealed class PrefetchEnumerator : IEnumerator<(Tensor X, Tensor Y)>
    {
        private readonly WorkerState state;
        private readonly Thread worker;
        private bool done;

        public PrefetchEnumerator(Plan plan)
        {
            state = new WorkerState(plan);
            worker = new Thread(state.Run) { IsBackground = true, Name = "DataLoader prefetch" };
            worker.Start();
        }

        ~PrefetchEnumerator() => Stop(join: false);

        public (Tensor X, Tensor Y) Current { get; private set; }
        object IEnumerator.Current => Current;

        public bool MoveNext()
        {
            if (done) return false;
            if (state.Queue.TryTake(out var batch, Timeout.Infinite))
            {
                Current = batch;
                return true;
            }
            // The worker completed the queue: the epoch is over, or it failed.
            Dispose();
            state.Error?.Throw();
            return false;
        }

        public void Reset() => throw new NotSupportedException("DataLoader enumerators cannot be reset; enumerate the loader again");

        public void Dispose()
        {
            Stop(join: true);
            GC.SuppressFinalize(this);
        }

        private void Stop(bool join)
        {
            if (done) return;
            done = true;
            try { state.Cancel.Cancel(); } catch (ObjectDisposedException) { }
            if (!join) return;
            worker.Join();
            state.Cancel.Dispose();
            state.Queue.Dispose();
        }
    }
}
