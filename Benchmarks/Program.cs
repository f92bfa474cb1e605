using System.Diagnostics;
using System.Globalization;
using System.Text;
using Autograd.Backends;

namespace Autograd.Benchmarks;

/// <summary>GEMM GFLOP/s and elementwise GB/s on every backend that loads, printed as tables and written to RESULTS.md.
/// Each backend is measured in its own process (<c>--backend NAME</c>): MKL's OpenMP threads, OpenBLAS's pthreads
/// and .NET's thread pool spin-wait differently, and in one process the idle spinning of one slows the others.</summary>
public static class Program
{
    private static readonly int[] Sizes = [64, 128, 256, 512, 1024, 2048];
    private static readonly int[] Lengths = [1 << 16, 1 << 20, 1 << 24];

    /// <summary>The sections measured side by side with a reference library, by command-line name.</summary>
    private static readonly Dictionary<string, Func<string>> Sections = new()
    {
        ["cnn"] = CnnOps.Run, ["hooks"] = HookBench.Run, ["onnx"] = OnnxBench.Run, ["zoo"] = ZooBench.Run,
    };

    /// <summary>The section being run, for the child process that times TorchSharp alone.</summary>
    private static string? sectionName;

    /// <summary>Set in that child: time only the reference side and print its medians.</summary>
    private static bool referenceOnly;

    public static void Main(string[] args)
    {
        if (args.Length >= 1 && Sections.TryGetValue(args[0], out var section))
        {
            sectionName = args[0];
            referenceOnly = args.Length == 2 && args[1] == "--reference-only";
            var markdown = section();
            if (!referenceOnly) WriteSection(args[0], markdown);
            return;
        }
        if (args.Length == 2 && args[0] == "--backend")
        {
            if (Backend.TryCreate(args[1], out var why) is IBackend backend) Measure(backend);
            else Console.WriteLine($"note|{args[1]} not measured: {why}");
            return;
        }
        // table title -> (column headers, backend -> values)
        var tables = new List<(string Title, string[] Columns, List<(string Backend, double[] Values)> Rows)>();
        var notes = new List<string>();
        // The parent loads no backend itself, so no idle native thread pool of its own competes with the child.
        foreach (var name in new[] { "mkl", "openblas", "managed" })
        {
            var psi = new ProcessStartInfo("dotnet", [typeof(Program).Assembly.Location, "--backend", name]) { RedirectStandardOutput = true };
            using var p = Process.Start(psi)!;
            foreach (var line in p.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var parts = line.Split('|');
                if (parts[0] == "note") { notes.Add(parts[1]); continue; }
                var t = tables.FirstOrDefault(t => t.Title == parts[0]);
                if (t.Title == null) tables.Add(t = (parts[0], parts[1].Split(','), []));
                t.Rows.Add((name, parts[2].Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray()));
            }
            p.WaitForExit();
        }
        var md = new StringBuilder("## Backends: GEMM and elementwise kernels\n\n");
        md.AppendLine($"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, {DateTime.UtcNow:yyyy-MM-dd}. " +
            "Medians of repeated runs; each backend in its own process. Produced by `dotnet run -c Release --project Benchmarks`.\n");
        foreach (var n in notes) md.AppendLine(n).AppendLine();
        foreach (var (title, columns, rows) in tables)
        {
            Console.WriteLine($"\n{title}\n{"backend",-10}{string.Concat(columns.Select(c => $"{c,10}"))}");
            md.AppendLine($"## {title}\n\n| backend | {string.Join(" | ", columns)} |\n| --- |{string.Concat(columns.Select(_ => " ---: |"))}");
            foreach (var (backend, values) in rows)
            {
                Console.WriteLine($"{backend,-10}{string.Concat(values.Select(v => $"{v,10:F1}"))}");
                md.AppendLine($"| {backend} | {string.Join(" | ", values.Select(v => v.ToString("F1", CultureInfo.InvariantCulture)))} |");
            }
            md.AppendLine();
        }
        WriteSection("backends", md.ToString());
    }

    /// <summary>Times every workload's two sides (all of ours first, then all of TorchSharp's, so neither runs against the
    /// other's spinning OpenMP threads) and returns the markdown table of medians and ratios (after <paramref name="description"/>,
    /// if any), also printed. Against TorchSharp
    /// a third column times TorchSharp alone in a child process of the same run, whose own side stays on the managed backend:
    /// no MKL, oneDNN or <c>GOMP_SPINCOUNT</c> of ours in its process, so TorchSharp runs as it would by itself.</summary>
    public static string SideBySide(string title, IReadOnlyList<(string Workload, Action Ours, Action Torch)> work, int repeats,
        string reference = "TorchSharp", string? description = null)
    {
        if (referenceOnly)
        {
            var times = Rounds(work.Select(w => w.Torch).ToList(), repeats);
            for (int i = 0; i < work.Count; i++)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"reference|{i}|{times[i]:R}"));
            return "";
        }
        var ours = Rounds(work.Select(w => w.Ours).ToList(), repeats);
        Thread.Sleep(500);
        var theirs = Rounds(work.Select(w => w.Torch).ToList(), repeats);
        var alone = reference == "TorchSharp" ? ReferenceAlone(work.Count) : null;
        var md = new StringBuilder($"## {title}\n\n" + (description != null ? description + "\n\n" : "") +
            $"Each time is the least of {RoundCount} medians of {repeats} runs, the rounds timing every workload of a side in turn.\n\n" + $"| workload | ours (ms) | {reference} (ms) | ours / {reference} |" +
            (alone != null ? $" {reference} alone (ms) | ours / alone |\n| --- | ---: | ---: | ---: | ---: | ---: |\n" : "\n| --- | ---: | ---: | ---: |\n"));
        Console.WriteLine($"\n{"workload",-62}{"ours ms",10}{"ref ms",10}{"ratio",8}" + (alone != null ? $"{"alone ms",10}{"ratio",8}" : ""));
        for (int i = 0; i < work.Count; i++)
        {
            Console.WriteLine($"{work[i].Workload,-62}{ours[i] * 1e3,10:F2}{theirs[i] * 1e3,10:F2}{ours[i] / theirs[i],8:F2}" +
                (alone != null ? $"{alone[i] * 1e3,10:F2}{ours[i] / alone[i],8:F2}" : ""));
            md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {work[i].Workload} | {ours[i] * 1e3:F2} | {theirs[i] * 1e3:F2} | {ours[i] / theirs[i]:F2} |") +
                (alone != null ? string.Create(CultureInfo.InvariantCulture, $" {alone[i] * 1e3:F2} | {ours[i] / alone[i]:F2} |") : ""));
        }
        return md.ToString();
    }

    /// <summary>How many times <see cref="Rounds"/> times each side (<c>BENCH_ROUNDS</c>, default 3).</summary>
    private static readonly int RoundCount = int.TryParse(Environment.GetEnvironmentVariable("BENCH_ROUNDS"), out int r) && r > 0 ? r : 3;

    /// <summary>Per workload, the least of its medians over <see cref="RoundCount"/> rounds, each round timing every workload
    /// once in turn: on this shared 2-core machine a workload's median swings by a third or more from one minute to the next,
    /// and a round caught in a slow spell then counts for nothing. Both sides of a comparison are timed alike.</summary>
    private static double[] Rounds(IReadOnlyList<Action> runs, int repeats)
    {
        var best = Enumerable.Repeat(double.PositiveInfinity, runs.Count).ToArray();
        for (int round = 0; round < RoundCount; round++)
            for (int i = 0; i < runs.Count; i++) best[i] = Math.Min(best[i], Median(runs[i], repeats));
        return best;
    }

    /// <summary>The reference side's medians measured by a child process running only it (see <see cref="SideBySide"/>).</summary>
    private static double[] ReferenceAlone(int count)
    {
        var psi = new ProcessStartInfo("dotnet", [typeof(Program).Assembly.Location, sectionName!, "--reference-only"]) { RedirectStandardOutput = true };
        psi.Environment["AUTOGRAD_BACKEND"] = "managed";
        using var p = Process.Start(psi)!;
        var medians = new double[count];
        Array.Fill(medians, double.NaN);
        foreach (var line in p.StandardOutput.ReadToEnd().Split('\n'))
            if (line.Split('|') is ["reference", var i, var v]) medians[int.Parse(i, CultureInfo.InvariantCulture)] = double.Parse(v, CultureInfo.InvariantCulture);
        p.WaitForExit();
        return medians;
    }

    /// <summary>Saves one section under Benchmarks/results and rebuilds RESULTS.md from all sections.</summary>
    private static void WriteSection(string name, string markdown)
    {
        var dir = Path.Combine(FindBenchmarksDir(), "results");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, name + ".md"), markdown);
        var all = Directory.GetFiles(dir, "*.md").Order().Select(File.ReadAllText);
        var path = Path.Combine(FindBenchmarksDir(), "RESULTS.md");
        File.WriteAllText(path, "# Benchmark results\n\nProduced by `Benchmarks/run` (sections: `backends`, `cnn`, `hooks`, `onnx`, `zoo`).\n\n" + string.Join("\n", all));
        Console.WriteLine($"\nwritten {path}");
    }

    /// <summary>Runs every workload on one backend and prints <c>title|columns|values</c> lines for the parent.</summary>
    private static void Measure(IBackend b)
    {
        if (b is MklBackend mkl) Console.WriteLine($"note|MKL: {mkl.Description}");
        using var use = Backend.Use(b);
        foreach (var dtype in new[] { "float32", "float64" })
            Emit($"GEMM {dtype}, n x n x n, GFLOP/s", Sizes.Select(n => n.ToString()), Sizes.Select(n =>
                2.0 * n * n * n / (dtype == "float32" ? TimeGemm<float>(b, n) : TimeGemm<double>(b, n)) / 1e9));
        var columns = Lengths.Select(l => $"{l >> 10}K");
        // Kernels into preallocated buffers (what the backend does), then the tensor op (which also allocates its result).
        Emit("Kernel exp(x), float32, into a preallocated buffer (1 read + 1 write), GB/s", columns, Lengths.Select(n =>
        {
            var (x, y) = (Tensor.Rand([n], 1).ToFloatArray(), new float[n]);
            return 2.0 * n * sizeof(float) / Median(() => b.Unary<float>(UnaryKernel.Exp, x, y), n >= 1 << 24 ? 10 : 50) / 1e9;
        }));
        Emit("Tensor op x * y, float32, allocating its result (2 reads + 1 write), GB/s", columns, Lengths.Select(n =>
        {
            var (x, y) = (Tensor.Rand([n], 1), Tensor.Rand([n], 2));
            return 3.0 * n * sizeof(float) / Median(() => _ = x * y, n >= 1 << 24 ? 10 : 50) / 1e9;
        }));
        Emit("Tensor op exp(x), float32, allocating its result (1 read + 1 write), GB/s", columns, Lengths.Select(n =>
        {
            var x = Tensor.Rand([n], 1);
            return 2.0 * n * sizeof(float) / Median(() => _ = x.Exp(), n >= 1 << 24 ? 10 : 50) / 1e9;
        }));
    }

    private static void Emit(string title, IEnumerable<string> columns, IEnumerable<double> values) =>
        Console.WriteLine($"{title}|{string.Join(",", columns)}|{string.Join(",", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}");

    private static double TimeGemm<T>(IBackend b, int n) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var gen = new Generator(n);
        T[] Fill() => Enumerable.Range(0, n * n).Select(_ => T.CreateTruncating(gen.NextDouble() - 0.5)).ToArray();
        T[] a = Fill(), bm = Fill(), c = new T[n * n];
        var spec = GemmSpec.Dense(false, false, n, n, n);
        int reps = Math.Clamp((int)(2e9 / (2.0 * n * n * n)), 5, 200);
        return Median(() => b.Gemm(spec, T.One, a, bm, T.Zero, c), reps);
    }

    /// <summary>Median wall time in seconds of <paramref name="reps"/> runs after two warm-up runs.</summary>
    internal static double Median(Action run, int reps)
    {
        run(); run();
        var times = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            run();
            times[i] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        Array.Sort(times);
        return times[reps / 2];
    }

    internal static string FindBenchmarksDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Benchmarks", "Benchmarks.csproj"))) return Path.Combine(d.FullName, "Benchmarks");
        return Directory.GetCurrentDirectory();
    }
}
