using System.Diagnostics;
using System.Text.RegularExpressions;
using Autograd.Checkpoints;
using Autograd.Data;
using Autograd.Distributed;
using Autograd.Layers;
using static Autograd.Functional;

namespace Tests;

/// <summary>DistributedSampler against PyTorch's sharding and padding rules, and its use by the DataLoader.</summary>
public class DistributedSamplerTests
{
    [Test]
    public void Unshuffled_shards_pad_by_repeating_the_first_indices_as_pytorch()
    {
        // torch DistributedSampler(range(10), num_replicas=3, shuffle=False): indices [0..9, 0, 1], rank r takes [r::3].
        int[][] expected = [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]];
        for (int r = 0; r < 3; r++)
        {
            var s = new DistributedSampler(10, 3, r, shuffle: false);
            Assert.That(s.Count, Is.EqualTo(4));
            Assert.That(s.Indices(0), Is.EqualTo(expected[r]));
        }
        // drop_last: floor(10 / 3) = 3 each, the tail dropped.
        Assert.That(new DistributedSampler(10, 3, 1, shuffle: false, dropLast: true).Indices(0), Is.EqualTo(new[] { 1, 4, 7 }));
        // A dataset smaller than the world wraps around as often as needed.
        Assert.That(new DistributedSampler(2, 5, 4, shuffle: false).Indices(0), Is.EqualTo(new[] { 0 }));
    }

    [Test]
    public void Shuffled_shards_are_disjoint_cover_the_epoch_and_interleave_the_single_process_order()
    {
        const int n = 100, world = 4;
        var single = new RandomSampler(n, seed: 7);
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var shards = Enumerable.Range(0, world).Select(r => new DistributedSampler(n, world, r, seed: 7).Indices(epoch)).ToArray();
            var order = single.Indices(epoch);
            for (int k = 0; k < n; k++) Assert.That(shards[k % world][k / world], Is.EqualTo(order[k]));
            Assert.That(shards.SelectMany(s => s).Order(), Is.EqualTo(Enumerable.Range(0, n)));
        }
        var s0 = new DistributedSampler(n, world, 0, seed: 7);
        Assert.That(s0.Indices(0), Is.Not.EqualTo(s0.Indices(1)), "each epoch reshuffles");
        Assert.That(new DistributedSampler(n, world, 0, seed: 7).Indices(1), Is.EqualTo(s0.Indices(1)), "deterministic for a seed");
        Assert.That(new DistributedSampler(n, world, 0, seed: 8).Indices(1), Is.Not.EqualTo(s0.Indices(1)));
    }

    [Test]
    public void Invalid_rank_or_world_is_an_error_naming_the_interval()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new DistributedSampler(10, 2, 2));
        Assert.That(e!.Message, Does.Contain("invalid rank 2").And.Contain("[0, 1]"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DistributedSampler(10, 0, 0));
    }

    [Test]
    public void DataLoader_batches_the_samplers_indices_and_refuses_sampler_with_shuffle()
    {
        var x = Tensor.Arange(10).Reshape(10, 1);
        var data = new TensorDataset(x, Tensor.Arange(10, DType.Int64));
        var loader = new DataLoader(data, batchSize: 3, sampler: new DistributedSampler(10, 3, 1, shuffle: false), prefetch: false);
        Assert.That(loader.Count, Is.EqualTo(2));
        Assert.That(loader.SelectMany(b => b.Y.ToLongArray()), Is.EqualTo(new long[] { 1, 4, 7, 0 }));
        Assert.Throws<ArgumentException>(() => new DataLoader(data, 3, shuffle: true, sampler: new SequentialSampler(10)));
        // The default shuffle is a RandomSampler with the loader's seed: the same order as before samplers existed.
        Assert.That(new DataLoader(data, 3, shuffle: true, seed: 5).Order(2), Is.EqualTo(new RandomSampler(10, 5).Indices(2)));
    }
}

/// <summary>The distributed options of <c>autograd train</c> that need no MPI to check.</summary>
public class DistributedCliTests
{
    [TestCase("--sync-batchnorm")]
    [TestCase("--timeout", "10")]
    public void Distributed_options_without_distributed_are_usage_errors(params string[] option)
    {
        var saved = Console.Error;
        var err = new StringWriter();
        Console.SetError(err);
        try { Assert.That(Autograd.Cli.Program.Main(["train", .. option]), Is.EqualTo(2)); }
        finally { Console.SetError(saved); }
        Assert.That(err.ToString(), Does.Contain($"train: {option[0]} needs --distributed"));
    }
}

/// <summary>SyncBatchNorm's arithmetic without MPI: ranks simulated by threads sharing an in-process all-reduce.</summary>
public class SyncBatchNormTests
{
    /// <summary>A process group whose ranks are threads of this process.</summary>
    private sealed class ThreadGroup(int size)
    {
        private readonly double[][] slots = new double[size][];
        private readonly Barrier barrier = new(size);

        public IProcessGroup Member(int rank) => new Member_(this, rank);

        private sealed class Member_(ThreadGroup g, int rank) : IProcessGroup
        {
            public int Rank => rank;
            public int WorldSize => g.slots.Length;
            public void AllReduceSum(double[] values)
            {
                g.slots[rank] = (double[])values.Clone();
                g.barrier.SignalAndWait();
                var sum = new double[values.Length];
                foreach (var s in g.slots) for (int i = 0; i < sum.Length; i++) sum[i] += s[i];
                g.barrier.SignalAndWait();
                sum.CopyTo(values, 0);
            }
        }
    }

    private static void OnThreads(int n, Action<int> body)
    {
        var errors = new Exception?[n];
        var threads = Enumerable.Range(0, n).Select(r => new Thread(() => { try { body(r); } catch (Exception e) { errors[r] = e; } })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        foreach (var e in errors) if (e != null) throw new AggregateException(e);
    }

    [TestCase(4, 4)]
    [TestCase(3, 5)]
    public void Split_batch_gives_the_whole_batch_output_gradients_and_running_statistics(int rows0, int rows1)
    {
        var x = Tensor.Randn([rows0 + rows1, 3, 4, 5], seed: 1, DType.Float64) * 2 + 0.5;
        var upstream = Tensor.Randn([rows0 + rows1, 3, 4, 5], seed: 2, DType.Float64);
        var reference = (BatchNorm2d)new BatchNorm2d(3).To(DType.Float64);
        using (AutoGrad.NoGrad()) { reference.Weight!.Copy_(Tensor.From(new[] { 0.5, 1.5, -1.0 }, 3)); reference.Bias!.Copy_(Tensor.From(new[] { 0.1, 0.2, 0.3 }, 3)); }
        var xr = x.Detach().Clone().RequiresGrad_();
        var yr = reference.Call(xr);
        Sum(yr * upstream).Backward();

        var group = new ThreadGroup(2);
        int[] starts = [0, rows0], counts = [rows0, rows1];
        var results = new (Tensor Y, Tensor Gx, BatchNorm2d Bn)[2];
        OnThreads(2, r =>
        {
            var bn = (BatchNorm2d)new BatchNorm2d(3).To(DType.Float64);
            bn.LoadStateDict(reference.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value));
            using (AutoGrad.NoGrad()) { bn.RunningMean!.Zero_(); bn.RunningVar!.Fill_(1); }
            Autograd.Layers.SyncBatchNorm.ConvertSyncBatchNorm(bn, group.Member(r));
            var xl = Narrow(x, 0, starts[r], counts[r]).Detach().Clone().RequiresGrad_();
            var y = bn.Call(xl);
            Sum(y * Narrow(upstream, 0, starts[r], counts[r])).Backward();
            results[r] = (y, xl.Grad!, bn);
        });

        static void Close(Tensor a, Tensor b, string what) =>
            Assert.That(a.ToDoubleArray(), Is.EqualTo(b.ToDoubleArray()).Within(1e-12), what);
        Close(Cat([results[0].Y, results[1].Y], 0), yr, "output");
        Close(Cat([results[0].Gx, results[1].Gx], 0), xr.Grad!, "input gradient");
        // Weight and bias gradients stay local; data-parallel averaging (here: summing) gives the whole batch's.
        Close(results[0].Bn.Weight!.Grad! + results[1].Bn.Weight!.Grad!, reference.Weight!.Grad!, "weight gradient");
        Close(results[0].Bn.Bias!.Grad! + results[1].Bn.Bias!.Grad!, reference.Bias!.Grad!, "bias gradient");
        foreach (var (_, _, bn) in results)
        {
            Close(bn.RunningMean!, reference.RunningMean!, "running mean");
            Close(bn.RunningVar!, reference.RunningVar!, "running variance (unbiased with the global count)");
        }
    }

    [Test]
    public void Module_has_batch_norm_names_and_prints_as_pytorch_and_refuses_double_backward()
    {
        var group = new ThreadGroup(2);
        var bn = new Autograd.Layers.SyncBatchNorm(4, processGroup: group.Member(0));
        Assert.That(bn.StateDict().Keys, Is.EqualTo(new[] { "weight", "bias", "running_mean", "running_var", "num_batches_tracked" }));
        Assert.That(bn.ToString(), Is.EqualTo("SyncBatchNorm(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"));
        var net = new Sequential(new Conv2d(1, 2, 3), new BatchNorm2d(2), new Linear(3, 3), new BatchNorm1d(3));
        Autograd.Layers.SyncBatchNorm.ConvertSyncBatchNorm(net, group.Member(1));
        Assert.That(net.Modules().OfType<BatchNormNd>().Select(b => b.ProcessGroup?.Rank), Is.EqualTo(new int?[] { 1, 1 }));

        var errors = new string?[2];
        OnThreads(2, r =>
        {
            var x = Tensor.Randn([3, 2], seed: r, DType.Float64).RequiresGrad_();
            var y = Functional.SyncBatchNorm(x, null, null, null, null, group.Member(r));
            try { AutoGrad.Grad([Sum(y * y * y)], [x], createGraph: true); }
            catch (NotSupportedException e) { errors[r] = e.Message; }
        });
        Assert.That(errors, Has.All.Contains("SyncBatchNorm: double backward (createGraph: true) is not supported"));
    }
}

/// <summary>Two local ranks under mpirun (one thread each): collectives, DistributedDataParallel against one process on the
/// whole batch, failure handling, and <c>autograd train --distributed</c>. Skipped only where Open MPI is not installed.</summary>
[NonParallelizable]
public class MpiTests
{
    private static string Here(string file) => Path.Combine(AppContext.BaseDirectory, file);

    [OneTimeSetUp]
    public void RequireMpi()
    {
        if (!Communicator.IsAvailable) Assert.Ignore($"Open MPI is not installed, MPI tests skipped: {Communicator.UnavailableReason}");
        if (!File.Exists("/usr/bin/mpirun") && Environment.GetEnvironmentVariable("PATH")!.Split(':').All(d => !File.Exists(Path.Combine(d, "mpirun"))))
            Assert.Ignore("Open MPI's mpirun is not on PATH (apt-get install openmpi-bin, or scripts/install-native): MPI tests skipped");
    }

    /// <summary>Runs a program (one thread per process, the test's backend), killing it past <paramref name="timeout"/> s.</summary>
    private static (int Code, string Output, double Seconds) Run(string file, IEnumerable<string> args, double timeout = 120)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = AppContext.BaseDirectory };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_PROCESSOR_COUNT"] = "1";
        psi.Environment["OMP_NUM_THREADS"] = "1";
        var clock = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var output = new System.Text.StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data != null) lock (output) output.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (output) output.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(TimeSpan.FromSeconds(timeout)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{file} {string.Join(" ", args)} did not finish within {timeout} s:\n{output}");
        }
        p.WaitForExit();
        lock (output) return (p.ExitCode, output.ToString(), clock.Elapsed.TotalSeconds);
    }

    private static (int Code, string Output, double Seconds) MpiRun(string dll, params string[] args) =>
        Run("mpirun", ["--allow-run-as-root", "--oversubscribe", "-np", "2", "dotnet", Here(dll), .. args]);

    [Test]
    public void Allreduce_broadcast_and_barrier_give_the_expected_values_on_both_ranks()
    {
        var (code, output, _) = MpiRun("MpiTestRanks.dll", "collectives", "30");
        Assert.That(code, Is.EqualTo(0), output);
        Assert.That(Regex.Matches(output, @"COLLECTIVES rank [01] of 2 ok").Count, Is.EqualTo(2), output);
    }

    [Test]
    public void Two_ranks_with_batch_32_match_one_process_with_batch_64_for_sgd_and_adam()
    {
        var (code, output, _) = MpiRun("MpiTestRanks.dll", "equivalence", "60");
        Assert.That(code, Is.EqualTo(0), output);
        var results = Regex.Matches(output, @"RESULT (\w+) (\w+) \S+ buckets=(\d+) replicas=(\S+) reference=(\S+)")
            .ToDictionary(m => m.Groups[1].Value + " " + m.Groups[2].Value,
                m => (Buckets: int.Parse(m.Groups[3].Value), Replicas: double.Parse(m.Groups[4].Value), Reference: double.Parse(m.Groups[5].Value)));
        Assert.That(results.Keys, Is.EquivalentTo(new[] { "sgd none", "sgd local", "sgd sync", "adam none", "adam local", "adam sync", "sgd accumulate" }), output);
        foreach (var (name, r) in results)
        {
            Assert.That(r.Replicas, Is.EqualTo(0), $"{name}: the replicas' parameters must stay identical\n{output}");
            if (name.EndsWith("local"))
                Assert.That(r.Reference, Is.GreaterThan(1e-3), $"{name}: per-rank batch statistics differ from the whole batch's\n{output}");
            else
                Assert.That(r.Reference, Is.LessThan(1e-5), $"{name}: must match one process up to float summation order\n{output}");
        }
        Assert.That(results["sgd none"].Buckets, Is.GreaterThan(1), "the small bucket cap spreads the gradients over several all-reduces");
        Assert.That(output, Does.Contain("rounds=1"), "NoSync: one gradient all-reduce per accumulated step");
        Assert.That(output, Does.Match(@"UNUSED DistributedDataParallel: the previous backward did not produce gradients for 2 parameter\(s\) \(spare\.\w+, spare\.\w+\)"));
    }

    [TestCase("die", "exited on signal 9")]
    [TestCase("fail", "exited with non-zero status")]
    [TestCase("hang", "did not complete within 3 s")]
    public void A_rank_that_dies_fails_or_hangs_ends_the_job_with_a_clear_error(string mode, string message)
    {
        var (code, output, seconds) = MpiRun("MpiTestRanks.dll", mode, "3");
        Assert.That(code, Is.Not.EqualTo(0), output);
        Assert.That(output, Does.Contain(message), output);
        Assert.That(seconds, Is.LessThan(40), output);
        if (mode != "hang") Assert.That(output, Does.Contain("rank 0 of 2: terminated by mpirun (SIGTERM)"), output);
    }

    [Test]
    public void Train_distributed_prints_once_matches_one_process_and_its_checkpoint_resumes_without_mpi()
    {
        var dir = Directory.CreateTempSubdirectory("autograd-mpi-").FullName;
        try
        {
            static string[] Common(int epochs) => ["train", "--dataset", "digits", "--model", "mlp", "--epochs", $"{epochs}", "--no-progress", "--seed", "3"];
            var common = Common(1);
            var (code, output, _) = MpiRun("Cli.dll", [.. common, "--distributed", "--batch-size", "32", "--checkpoint", Path.Combine(dir, "ddp"), "--metrics", Path.Combine(dir, "m.json")]);
            Assert.That(code, Is.EqualTo(0), output);
            Assert.That(Regex.Matches(output, "mlp on digits").Count, Is.EqualTo(1), "only rank 0 prints\n" + output);
            Assert.That(output, Does.Contain("batch 32 x 2 ranks"));
            Assert.That(File.Exists(Path.Combine(dir, "m.json")));

            var (single, singleOut, _) = Run("dotnet", [Here("Cli.dll"), .. common, "--batch-size", "64", "--checkpoint", Path.Combine(dir, "one")]);
            Assert.That(single, Is.EqualTo(0), singleOut);
            var a = SafeTensors.Load(Path.Combine(dir, "ddp", "last.safetensors"));
            var b = SafeTensors.Load(Path.Combine(dir, "one", "last.safetensors"));
            Assert.That(a.Keys, Is.EquivalentTo(b.Keys));
            Assert.That(a.Keys, Does.Contain("model.1.weight"), "plain names: no module. prefix");
            foreach (var key in a.Keys.Where(k => k.StartsWith("model.")))
                Assert.That(a[key].ToDoubleArray(), Is.EqualTo(b[key].ToDoubleArray()).Within(1e-4), key);

            var (resumed, resumedOut, _) = Run("dotnet", [Here("Cli.dll"), .. Common(2), "--checkpoint", Path.Combine(dir, "one"), "--resume", Path.Combine(dir, "ddp", "last.safetensors")]);
            Assert.That(resumed, Is.EqualTo(0), resumedOut);
            Assert.That(resumedOut, Does.Contain("resumed from").And.Contain("epoch   2/2"));
        }
        finally { Directory.Delete(dir, true); }
    }
}
