using System.Diagnostics;
using System.Numerics.Tensors;
using Autograd.Layers;

namespace Autograd.Distributed;

/// <summary>Data-parallel training across the ranks of an MPI job, as <c>torch.nn.parallel.DistributedDataParallel</c>: every
/// rank holds a replica of the wrapped module and trains on its own shard of each global batch; after <c>Backward</c> every
/// parameter's <see cref="Tensor.Grad"/> is the average over the ranks, so identical optimizer steps keep the replicas
/// identical.</summary>
/// <remarks>
/// <para>Construction broadcasts the parameters and buffers from rank 0. In training mode each forward broadcasts the
/// buffers from rank 0 again (PyTorch's <c>broadcast_buffers=True</c>: batch-norm running statistics follow rank 0's).</para>
/// <para>Gradients are averaged in buckets of about <c>bucketCapMb</c> MiB (25 by default, the first one 1 MiB, as PyTorch),
/// filled with the parameters in reverse registration order, roughly the order backward produces their gradients. A
/// post-accumulate-grad hook copies each gradient into its bucket the moment backward has accumulated it; a full bucket is
/// handed to the communication thread for one in-place all-reduce while backward continues, so communication overlaps the
/// rest of the backward pass. Buckets are launched in bucket order on every rank; when the last one has been launched the
/// hook waits for all of them and writes the averages back as new <see cref="Tensor.Grad"/> tensors.</para>
/// <para>Every parameter that requires grad must receive a gradient in every backward (PyTorch's default
/// <c>find_unused_parameters=False</c>); otherwise the next forward fails and names the parameters that got none.
/// Inside <see cref="NoSync"/> gradients only accumulate locally (gradient accumulation); the next backward outside it
/// averages the accumulated sums.</para>
/// <para>State dicts carry PyTorch's <c>module.</c> prefix (the wrapped module is the child named <c>module</c>); to write a
/// checkpoint that loads with or without distribution, save <see cref="Module"/>'s state dict, as PyTorch users save
/// <c>ddp.module.state_dict()</c>.</para>
/// </remarks>
/// <example><code>
/// using var comm = Communicator.Init();
/// var model = new DistributedDataParallel(SyncBatchNorm.ConvertSyncBatchNorm(new ResNet18(), comm), comm);
/// var optimizer = new SGD(model.Parameters(), lr: 0.1);
/// var loader = new DataLoader(train, batchSize: 32, sampler: new DistributedSampler(train.Count, comm));
/// foreach (var (x, y) in loader)
/// {
///     optimizer.ZeroGrad();
///     Functional.CrossEntropy(model.Call(x), y).Backward();   // gradients averaged over the ranks
///     optimizer.Step();
/// }
/// </code></example>
public sealed class DistributedDataParallel : Layers.Module
{
    /// <summary>PyTorch's default bucket size, <c>bucket_cap_mb=25</c>.</summary>
    public const double DefaultBucketCapMb = 25;

    private const int FirstBucketBytes = 1 << 20;

    private readonly Communicator comm;
    private readonly bool broadcastBuffers;
    private readonly Bucket[] buckets;
    private readonly Dictionary<Tensor, (Bucket Bucket, int Slot)> slots = new(ReferenceEqualityComparer.Instance);
    private readonly List<RemovableHandle> hooks = [];
    private int nextLaunch;
    private int noSyncDepth;

    /// <summary>Wraps <paramref name="module"/> and broadcasts its parameters and buffers from rank 0.</summary>
    /// <param name="module">The replica this rank trains.</param>
    /// <param name="communicator">The job's ranks (<see cref="Communicator.Init"/>).</param>
    /// <param name="bucketCapMb">Bucket size in MiB.</param>
    /// <param name="broadcastBuffers">Broadcast the buffers from rank 0 at every training forward.</param>
    public DistributedDataParallel(Layers.Module module, Communicator communicator, double bucketCapMb = DefaultBucketCapMb, bool broadcastBuffers = true)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(communicator);
        if (!(bucketCapMb > 0)) throw new ArgumentOutOfRangeException(nameof(bucketCapMb), $"DistributedDataParallel: bucketCapMb must be positive, got {bucketCapMb}");
        (comm, this.broadcastBuffers) = (communicator, broadcastBuffers);
        Module = Register("module", module);
        comm.Broadcast([.. module.Parameters(), .. module.Buffers()]);
        buckets = MakeBuckets(module.NamedParameters().Where(p => p.Parameter.RequiresGrad).Reverse().ToList(), (long)(bucketCapMb * (1 << 20)));
        foreach (var b in buckets)
            for (int i = 0; i < b.Parameters.Length; i++)
            {
                slots[b.Parameters[i]] = (b, i);
                hooks.Add(b.Parameters[i].RegisterPostAccumulateGradHook(GradientReady));
            }
    }

    /// <summary>The wrapped module (PyTorch's <c>ddp.module</c>).</summary>
    public Layers.Module Module { get; }

    /// <summary>The parameter names of each bucket, in launch order.</summary>
    public IReadOnlyList<string[]> Buckets => buckets.Select(b => b.Names).ToArray();

    /// <summary>Time the communication thread spent in gradient all-reduces since the last <see cref="ResetTimers"/>.</summary>
    public TimeSpan AllReduceTime { get; private set; }

    /// <summary>Time backward spent blocked waiting for gradient all-reduces (the part communication did not overlap).</summary>
    public TimeSpan WaitTime { get; private set; }

    /// <summary>Bytes of gradients all-reduced since the last <see cref="ResetTimers"/>.</summary>
    public long BytesAllReduced { get; private set; }

    /// <summary>Zeroes <see cref="AllReduceTime"/>, <see cref="WaitTime"/> and <see cref="BytesAllReduced"/>.</summary>
    public void ResetTimers() => (AllReduceTime, WaitTime, BytesAllReduced) = (TimeSpan.Zero, TimeSpan.Zero, 0);

    /// <summary>Runs the wrapped module; in training mode first broadcasts the buffers from rank 0.</summary>
    public override Tensor Forward(Tensor input)
    {
        if (buckets.Any(b => b.Pending != b.Parameters.Length) || nextLaunch > 0)
        {
            var missing = buckets.SelectMany(b => b.Names.Where((_, i) => !b.Ready[i])).ToList();
            throw new InvalidOperationException("DistributedDataParallel: the previous backward did not produce gradients for " +
                $"{missing.Count} parameter(s) ({string.Join(", ", missing.Take(8))}{(missing.Count > 8 ? ", ..." : "")}), so their buckets were never " +
                "all-reduced; every parameter that requires grad must contribute to the loss on every rank (set RequiresGrad_(false) on unused ones " +
                "before wrapping; PyTorch's find_unused_parameters is not supported)");
        }
        if (Training && broadcastBuffers) comm.Broadcast(Module.Buffers().ToList());
        return Module.Call(input);
    }

    /// <summary>Within the returned scope, backward accumulates gradients locally without averaging them (PyTorch's
    /// <c>no_sync()</c>); the first backward after it averages the accumulated gradients.</summary>
    public IDisposable NoSync()
    {
        noSyncDepth++;
        return new RemovableHandle(() => noSyncDepth--);
    }

    /// <summary>Removes the gradient hooks: the wrapped module trains locally again.</summary>
    public void RemoveHooks()
    {
        foreach (var h in hooks) h.Remove();
        hooks.Clear();
    }

    private sealed class Bucket(Tensor[] parameters, string[] names, DType dtype)
    {
        public readonly Tensor[] Parameters = parameters;
        public readonly string[] Names = names;
        public readonly bool[] Ready = new bool[parameters.Length];
        public readonly int[] Offsets = Prefix(parameters);
        public readonly Array Buffer = dtype == DType.Float32 ? new float[parameters.Sum(p => p.Numel)] : new double[parameters.Sum(p => p.Numel)];
        public int Pending = parameters.Length;
        public Communicator.Work? Work;

        private static int[] Prefix(Tensor[] ps)
        {
            var o = new int[ps.Length];
            for (int i = 1; i < ps.Length; i++) o[i] = o[i - 1] + ps[i - 1].Numel;
            return o;
        }
    }

    private static Bucket[] MakeBuckets(List<(string Name, Tensor Parameter)> parameters, long capBytes)
    {
        var result = new List<Bucket>();
        foreach (var dtype in parameters.Select(p => p.Parameter.DType).Distinct())
        {
            var current = new List<(string Name, Tensor Parameter)>();
            long bytes = 0;
            void Close()
            {
                if (current.Count == 0) return;
                result.Add(new Bucket([.. current.Select(p => p.Parameter)], [.. current.Select(p => p.Name)], dtype));
                (current, bytes) = ([], 0);
            }
            foreach (var p in parameters.Where(p => p.Parameter.DType == dtype))
            {
                long size = (long)p.Parameter.Numel * (dtype == DType.Float32 ? 4 : 8);
                long cap = result.Count == 0 ? Math.Min(capBytes, FirstBucketBytes) : capBytes;
                if (current.Count > 0 && bytes + size > cap) Close();
                current.Add(p);
                bytes += size;
            }
            Close();
        }
        return [.. result];
    }

    /// <summary>The post-accumulate-grad hook: copies the gradient into its bucket, launches the buckets that are complete
    /// (in bucket order), and after the last launch waits for all of them and writes the averages back.</summary>
    private void GradientReady(Tensor parameter)
    {
        if (noSyncDepth > 0 || comm.WorldSize == 1) return;
        var (bucket, slot) = slots[parameter];
        if (bucket.Ready[slot])
            throw new InvalidOperationException($"DistributedDataParallel: parameter {bucket.Names[slot]} received a second gradient before its bucket was all-reduced");
        Array.Copy(parameter.Grad!.Storage, 0, bucket.Buffer, bucket.Offsets[slot], parameter.Numel);
        bucket.Ready[slot] = true;
        bucket.Pending--;
        while (nextLaunch < buckets.Length && buckets[nextLaunch].Pending == 0)
        {
            var b = buckets[nextLaunch++];
            var work = comm.Submit($"gradient all-reduce of bucket {nextLaunch - 1} ({b.Buffer.Length} {(b.Buffer is float[] ? "floats" : "doubles")})", () =>
            {
                long t0 = Stopwatch.GetTimestamp();
                Mpi.AllReduceSum(b.Buffer, 0, b.Buffer.Length);
                AllReduceTime += Stopwatch.GetElapsedTime(t0);
            });
            b.Work = work;
            BytesAllReduced += (long)b.Buffer.Length * (b.Buffer is float[] ? 4 : 8);
        }
        if (nextLaunch == buckets.Length) Finish();
    }

    private void Finish()
    {
        long t0 = Stopwatch.GetTimestamp();
        foreach (var b in buckets) b.Work!.Wait(comm);
        WaitTime += Stopwatch.GetElapsedTime(t0);
        double scale = 1.0 / comm.WorldSize;
        foreach (var b in buckets)
        {
            for (int i = 0; i < b.Parameters.Length; i++)
            {
                var p = b.Parameters[i];
                Array grad;
                if (b.Buffer is float[] f)
                {
                    var g = new float[p.Numel];
                    TensorPrimitives.Multiply(f.AsSpan(b.Offsets[i], p.Numel), (float)scale, g);
                    grad = g;
                }
                else
                {
                    var g = new double[p.Numel];
                    TensorPrimitives.Multiply(((double[])b.Buffer).AsSpan(b.Offsets[i], p.Numel), scale, g);
                    grad = g;
                }
                p.Grad = new Tensor(grad, p.Shape, p.DType);
                b.Ready[i] = false;
            }
            (b.Pending, b.Work) = (b.Parameters.Length, null);
        }
        nextLaunch = 0;
    }
}
