using System.Diagnostics;
using System.Text;
using Autograd.Backends;

namespace Autograd.Benchmarks;

/// <summary>GEMM GFLOP/s and elementwise GB/s on every backend that loads, printed as tables and written to RESULTS.md.</summary>
public static class Program
{
    public static void Main(string[] args)
    {
        var backends = Backend.Available();
        var md = new StringBuilder();
        md.AppendLine("# Benchmark results").AppendLine();
        md.AppendLine($"Machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}; " +
                      $"{DateTime.UtcNow:yyyy-MM-dd}. Medians of repeated runs.").AppendLine();
        foreach (var b in backends.OfType<MklBackend>()) md.AppendLine($"MKL: {b.Description}").AppendLine();

        int[] sizes = args.Length > 0 ? args.Select(int.Parse).ToArray() : [64, 128, 256, 512, 1024, 2048];
        foreach (var dtype in new[] { "float32", "float64" })
        {
            Table(md, $"GEMM {dtype}, square n x n x n, GFLOP/s", backends, sizes.Select(n => n.ToString()).ToArray(), (b, i) =>
            {
                int n = sizes[i];
                double flops = 2.0 * n * n * n;
                double seconds = dtype == "float32" ? TimeGemm<float>(b, n) : TimeGemm<double>(b, n);
                return flops / seconds / 1e9;
            });
        }

        int[] lengths = [1 << 16, 1 << 20, 1 << 24];
        Table(md, "Elementwise float32 a * b (two reads, one write), GB/s", backends, lengths.Select(l => $"{l >> 10}K").ToArray(), (b, i) =>
        {
            int n = lengths[i];
            var x = Tensor.Rand([n], 1);
            var y = Tensor.Rand([n], 2);
            using var use = Backend.Use(b);
            double s = Median(() => _ = x * y, n >= 1 << 24 ? 10 : 50);
            return 3.0 * n * sizeof(float) / s / 1e9;
        });
        Table(md, "Elementwise float32 exp(x) (one read, one write), GB/s", backends, lengths.Select(l => $"{l >> 10}K").ToArray(), (b, i) =>
        {
            int n = lengths[i];
            var x = Tensor.Rand([n], 1);
            using var use = Backend.Use(b);
            double s = Median(() => _ = x.Exp(), n >= 1 << 24 ? 10 : 50);
            return 2.0 * n * sizeof(float) / s / 1e9;
        });

        var path = Path.Combine(FindBenchmarksDir(), "RESULTS.md");
        File.WriteAllText(path, md.ToString());
        Console.WriteLine($"written {path}");
    }

    private static void Table(StringBuilder md, string title, IReadOnlyList<IBackend> backends, string[] columns, Func<IBackend, int, double> measure)
    {
        Console.WriteLine($"\n{title}");
        Console.WriteLine($"{"backend",-10}" + string.Concat(columns.Select(c => $"{c,10}")));
        md.AppendLine($"## {title}").AppendLine();
        md.AppendLine("| backend | " + string.Join(" | ", columns) + " |");
        md.AppendLine("| --- |" + string.Concat(columns.Select(_ => " ---: |")));
        foreach (var b in backends)
        {
            var values = columns.Select((_, i) => measure(b, i)).ToArray();
            Console.WriteLine($"{b.Name,-10}" + string.Concat(values.Select(v => $"{v,10:F1}")));
            md.AppendLine($"| {b.Name} | " + string.Join(" | ", values.Select(v => v.ToString("F1"))) + " |");
        }
        md.AppendLine();
    }

    private static double TimeGemm<T>(IBackend b, int n) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var gen = new Generator(n);
        T[] Fill() => Enumerable.Range(0, n * n).Select(_ => T.CreateTruncating(gen.NextDouble() - 0.5)).ToArray();
        T[] a = Fill(), c = new T[n * n], bm = Fill();
        var spec = GemmSpec.Dense(false, false, n, n, n);
        int reps = Math.Clamp((int)(2e9 / (2.0 * n * n * n)), 3, 200);
        return Median(() => b.Gemm(spec, T.One, a, bm, T.Zero, c), reps);
    }

    /// <summary>Median wall time in seconds of <paramref name="reps"/> runs after two warm-up runs.</summary>
    private static double Median(Action run, int reps)
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

    private static string FindBenchmarksDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Benchmarks", "Benchmarks.csproj"))) return Path.Combine(d.FullName, "Benchmarks");
        return Directory.GetCurrentDirectory();
    }
}
