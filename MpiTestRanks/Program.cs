using System.Globalization;
using Autograd;
using Autograd.Distributed;
using Autograd.Layers;
using Autograd.Optimizers;
using static Autograd.Functional;

// The program every rank runs in the MPI tests (and the all-reduce measurement of docs/scaling.md). Rank 0 prints one line
// per check, which the NUnit tests parse:
//   equivalence: for SGD and Adam, without batch norm, with local batch norm and with SyncBatchNorm, k steps of
//     DistributedDataParallel (the global batch of 64 split across the ranks) against one process on the whole batch:
//     "RESULT <optimizer> <norm> <bucketMb> replicas=<max |rank 0 - rank 1|> reference=<max |distributed - single|>"
//   collectives: "COLLECTIVES ok" after checking all-reduce, broadcast and barrier values.
//   die | fail | hang: at step 3 rank 1 is killed (SIGKILL, as a crash or the OOM killer), exits with an error code, or
//     sleeps forever, while rank 0 keeps training.
string mode = args.Length > 0 ? args[0] : "equivalence";
double timeout = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 60;
var comm = Communicator.Init(TimeSpan.FromSeconds(timeout));
int rank = comm.Rank, world = comm.WorldSize;
switch (mode)
{
    case "collectives":
    {
        var t = Tensor.Full([5], rank + 1);
        comm.AllReduce(t);
        var d = new double[] { rank, 1.5 };
        comm.AllReduceSum(d);
        var b = Tensor.Full([3], rank == 0 ? 7 : -1, DType.Float64);
        var l = Tensor.From(new long[] { rank == 0 ? 1L << 40 : 0 }, 1);
        comm.Broadcast([b, l]);
        comm.Barrier();
        double expect = world * (world + 1) / 2.0;
        bool ok = t.ToFloatArray().All(v => v == expect) && d[0] == world * (world - 1) / 2.0 && d[1] == 1.5 * world
            && b.ToDoubleArray().All(v => v == 7) && l.ToLongArray()[0] == 1L << 40;
        Console.WriteLine($"COLLECTIVES rank {rank} of {world} {(ok ? "ok" : "WRONG")}");
        break;
    }
    case "allreduce-bench":
    {
        // Seconds per in-place float all-reduce by message size (docs/scaling.md): "ALLREDUCE <MiB> <seconds> <MiB/s>".
        foreach (int kib in new[] { 4, 64, 1024, 4096, 16384, 65536 })
        {
            var t = Tensor.Zeros(kib * 256);
            int reps = Math.Max(3, 20000 / Math.Max(kib, 64));
            comm.AllReduce(t);
            comm.Barrier();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (int i = 0; i < reps; i++) comm.AllReduce(t);
            double seconds = clock.Elapsed.TotalSeconds / reps;
            if (rank == 0) Console.WriteLine(FormattableString.Invariant($"ALLREDUCE {kib / 1024.0:G4} MiB {seconds * 1e3:F3} ms {kib / 1024.0 / seconds:F0} MiB/s"));
        }
        break;
    }
    case "throughput":
    {
        // Training throughput of a zoo model on its dataset (docs/scaling.md): args model, steps, global batch.
        // "THROUGHPUT <model> ranks=<n> threads=<n> samples/s=<x> step=<s> allreduce=<s per step> waited=<s per step> MiB=<per step>"
        string name = args[2];
        int steps = int.Parse(args[3], CultureInfo.InvariantCulture), global = int.Parse(args[4], CultureInfo.InvariantCulture);
        string root = Path.Combine(RepoRoot(), "data");
        var (data, transform) = name == "lenet5"
            ? (Autograd.Data.Datasets.Mnist(Path.Combine(root, "mnist")), new Autograd.Data.Normalize([0.1307], [0.3081]))
            : ((Autograd.Data.IDataset)Autograd.Data.Datasets.Cifar10(Path.Combine(root, "cifar10-subset")),
                new Autograd.Data.Normalize([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]));
        Generator.ManualSeed(0);
        var ddp = new DistributedDataParallel(name == "lenet5" ? new Autograd.Zoo.LeNet5(10) : Autograd.Zoo.Zoo.Create(name, 10), comm);
        var opt = new SGD(ddp.Parameters(), lr: 0.01, momentum: 0.9);
        var loader = new Autograd.Data.DataLoader(data, global / world, transform: transform, sampler: new DistributedSampler(data.Count, comm, seed: 0), dropLast: true);
        IEnumerable<(Tensor X, Tensor Y)> Batches() { while (true) foreach (var b in loader) yield return b; }
        var clock = new System.Diagnostics.Stopwatch();
        int done = 0;
        foreach (var (x, y) in Batches())
        {
            if (done == 3) { comm.Barrier(); ddp.ResetTimers(); clock.Start(); }   // after warm-up (JIT, buffers)
            opt.ZeroGrad();
            CrossEntropy(ddp.Call(x), y).Backward();
            opt.Step();
            if (++done == steps + 3) break;
        }
        comm.Barrier();
        double wall = clock.Elapsed.TotalSeconds;
        if (rank == 0)
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"THROUGHPUT {name} ranks={world} threads={Environment.ProcessorCount} samples/s={steps * global / wall:F0} " +
                $"step={wall / steps:F4} allreduce={ddp.AllReduceTime.TotalSeconds / steps:F4} waited={ddp.WaitTime.TotalSeconds / steps:F4} MiB={ddp.BytesAllReduced / 1048576.0 / steps:F2}"));
        break;
    }
    case "die" or "fail" or "hang":
    {
        Generator.ManualSeed(0);
        var model = new DistributedDataParallel(Net("none"), comm);
        var opt = new SGD(model.Parameters(), lr: 0.1);
        for (int step = 0; step < 1000; step++)
        {
            if (rank == 1 && step == 3)
            {
                Console.WriteLine($"rank 1: {mode} at step {step}");
                Console.Out.Flush();
                if (mode == "die") System.Diagnostics.Process.GetCurrentProcess().Kill();
                if (mode == "fail") return 3;
                Thread.Sleep(Timeout.Infinite);
            }
            var (x, y) = Batch(step, rank, world);
            opt.ZeroGrad();
            CrossEntropy(model.Call(x), y).Backward();
            opt.Step();
            Console.WriteLine($"rank {rank}: step {step}");
        }
        break;
    }
    default:
        foreach (var optimizer in new[] { "sgd", "adam" })
            foreach (var norm in new[] { "none", "local", "sync" })
                Equivalence(optimizer, norm, norm == "none" ? 0.0005 : DistributedDataParallel.DefaultBucketCapMb);
        Accumulation();
        Unused();
        break;
}
comm.Dispose();
return 0;

void Equivalence(string optimizer, string norm, double bucketMb)
{
    const int steps = 5;
    Generator.ManualSeed(10 + rank);                  // different on each rank: construction must broadcast rank 0's values
    var net = Net(norm);
    if (norm == "sync") Autograd.Layers.SyncBatchNorm.ConvertSyncBatchNorm(net, comm);
    var ddp = new DistributedDataParallel(net, comm, bucketMb);
    var initial = Snapshot(net);
    Train(ddp, optimizer, steps, rank, world);

    // Replicas: rank 1's parameters broadcast to rank 0 and compared there. (Buffers may differ: with local batch norm each
    // rank's last forward updated its running statistics from its own batch; the next forward would broadcast rank 0's.)
    var state = net.Parameters().Select(t => t.Detach().Clone()).ToList();
    var mine = state.Select(t => t.Clone()).ToList();
    comm.Broadcast(state, root: world - 1);
    double replicas = state.Zip(mine).Max(p => MaxDiff(p.First, p.Second));

    if (rank == 0)
    {
        // One process, the whole batch, the same initial values: plain batch norm (SyncBatchNorm's reference) or none.
        var single = Net(norm);
        single.LoadStateDict(initial);
        Train(single, optimizer, steps, 0, 1);
        double reference = net.StateDict().Zip(single.StateDict()).Max(p => MaxDiff(p.First.Value, p.Second.Value));
        Console.WriteLine(FormattableString.Invariant($"RESULT {optimizer} {norm} {bucketMb} buckets={ddp.Buckets.Count} replicas={replicas:G3} reference={reference:G3}"));
    }
    comm.Barrier();
}

// Gradient accumulation: two half-batches per step, the first under NoSync, give one all-reduce per step and the same
// weights as one process on the whole batch: "RESULT sgd accumulate ... rounds=<all-reduces per step>".
void Accumulation()
{
    const int steps = 3;
    Generator.ManualSeed(10);
    var net = Net("none");
    var ddp = new DistributedDataParallel(net, comm);
    var initial = Snapshot(net);
    var opt = new SGD(ddp.Parameters(), lr: 0.1, momentum: 0.9);
    for (int step = 0; step < steps; step++)
    {
        var (x, y) = Batch(step, rank, world);
        int half = x.Shape[0] / 2;
        opt.ZeroGrad();
        using (ddp.NoSync()) (CrossEntropy(ddp.Call(Narrow(x, 0, 0, half)), Narrow(y, 0, 0, half)) * 0.5).Backward();
        (CrossEntropy(ddp.Call(Narrow(x, 0, half, half)), Narrow(y, 0, half, half)) * 0.5).Backward();
        opt.Step();
    }
    double rounds = ddp.BytesAllReduced / (double)(steps * net.Parameters().Sum(p => 4L * p.Numel));
    if (rank == 0)
    {
        var single = Net("none");
        single.LoadStateDict(initial);
        Train(single, "sgd", steps, 0, 1);
        double reference = net.Parameters().Zip(single.Parameters()).Max(p => MaxDiff(p.First, p.Second));
        Console.WriteLine(FormattableString.Invariant($"RESULT sgd accumulate 25 buckets={ddp.Buckets.Count} replicas=0 reference={reference:G3} rounds={rounds}"));
    }
    comm.Barrier();
}

// A parameter that gets no gradient: the next forward fails and names it ("UNUSED <message>").
void Unused()
{
    var ddp = new DistributedDataParallel(new PartlyUsed(), comm);
    var (x, y) = Batch(0, rank, world);
    CrossEntropy(ddp.Call(x), y).Backward();
    try { ddp.Call(x); }
    catch (InvalidOperationException e) { if (rank == 0) Console.WriteLine($"UNUSED {e.Message}"); }
    comm.Barrier();
}

static string RepoRoot()
{
    for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        if (File.Exists(Path.Combine(d.FullName, "Autograd.sln"))) return d.FullName;
    return Directory.GetCurrentDirectory();
}

static Module Net(string norm) => norm == "none"
    ? new Sequential(new Conv2d(1, 4, 3, padding: 1), new ReLU(), new Flatten(), new Linear(4 * 8 * 8, 32), new ReLU(), new Linear(32, 10))
    // No bias before a batch norm: its gradient is zero up to rounding, which Adam's normalized step would amplify.
    : new Sequential(new Conv2d(1, 4, 3, padding: 1, bias: false), new BatchNorm2d(4), new ReLU(), new Flatten(),
        new Linear(4 * 8 * 8, 32, bias: false), new BatchNorm1d(32), new ReLU(), new Linear(32, 10));

static (Tensor X, Tensor Y) Batch(int step, int rank, int world)
{
    const int global = 64;
    var x = Tensor.Randn([global, 1, 8, 8], seed: 100 + step);
    var y = Tensor.RandInt(0, 10, [global], seed: 200 + step);
    int local = global / world;
    return (Narrow(x, 0, rank * local, local), Narrow(y, 0, rank * local, local));
}

static void Train(Module model, string optimizer, int steps, int rank, int world)
{
    Optimizer opt = optimizer == "sgd" ? new SGD(model.Parameters(), lr: 0.1, momentum: 0.9) : new Adam(model.Parameters(), lr: 0.01);
    for (int step = 0; step < steps; step++)
    {
        var (x, y) = Batch(step, rank, world);
        opt.ZeroGrad();
        CrossEntropy(model.Call(x), y).Backward();
        opt.Step();
    }
}

static Dictionary<string, Tensor> Snapshot(Module m) => m.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.Detach().Clone());

static double MaxDiff(Tensor a, Tensor b) => a.ToDoubleArray().Zip(b.ToDoubleArray()).Max(p => Math.Abs(p.First - p.Second));

/// <summary>A model with a registered layer its forward never uses.</summary>
sealed class PartlyUsed : Module
{
    private readonly Linear used;

    public PartlyUsed()
    {
        used = Register("used", new Linear(64, 10));
        Register("spare", new Linear(3, 3));
    }

    public override Tensor Forward(Tensor input) => used.Call(input.Flatten(1));
}
