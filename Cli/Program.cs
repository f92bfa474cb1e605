using System.Diagnostics;
using Autograd;
using Autograd.Backends;
using Autograd.Testing;
using static Autograd.Functional;

namespace Autograd.Cli;

/// <summary>The <c>autograd</c> command.</summary>
public static class Program
{
    private const string Usage = """
        usage: autograd <command>
          demo                 fit a small MLP on two interleaved spirals, then print the gradient-check table
          gradcheck [--cases N] [--seed S]
                               gradient-check every registered op on N random cases (default 20)
          backend              print the backend in use and those that load on this machine
        """;

    public static int Main(string[] args)
    {
        try
        {
            switch (args.FirstOrDefault())
            {
                case "demo": Demo(); return GradCheckTable(20, 1) ? 0 : 1;
                case "gradcheck": return GradCheckTable(IntArg(args, "--cases", 20), IntArg(args, "--seed", 1)) ? 0 : 1;
                case "backend":
                    Console.WriteLine($"current: {Backend.Current.Name}");
                    foreach (var b in Backend.Available()) Console.WriteLine($"available: {b.Name}{(b is MklBackend m ? $" ({m.Description})" : "")}");
                    return 0;
                default:
                    Console.Error.WriteLine(Usage);
                    return args.Length == 0 || args[0] is "-h" or "--help" ? 0 : 2;
            }
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"autograd: {e.Message}");
            return 2;
        }
    }

    private static int IntArg(string[] args, string name, int dflt)
    {
        int i = Array.IndexOf(args, name);
        if (i < 0) return dflt;
        if (i + 1 >= args.Length || !int.TryParse(args[i + 1], out int v)) throw new ArgumentException($"{name} needs an integer value");
        return v;
    }

    /// <summary>A 2-32-32-2 MLP trained with plain SGD on two spirals: the whole training loop in a few lines.</summary>
    private static void Demo()
    {
        var gen = new Generator(0);
        const int n = 400;
        var pts = new float[2 * n];
        var labels = new long[n];
        for (int i = 0; i < n; i++)
        {
            int c = i % 2;
            double r = 0.2 + 0.8 * (i / 2) / (n / 2.0), a = 4 * Math.PI * r + Math.PI * c;
            pts[2 * i] = (float)(r * Math.Cos(a) + 0.03 * gen.NextNormal());
            pts[2 * i + 1] = (float)(r * Math.Sin(a) + 0.03 * gen.NextNormal());
            labels[i] = c;
        }
        var x = Tensor.From(pts, n, 2);
        var y = Tensor.From(labels, n);
        Tensor Param(int o, int i) => (Tensor.Randn([o, i], gen) * Math.Sqrt(2.0 / i)).RequiresGrad_();
        Tensor[] ps = [Param(32, 2), Tensor.Zeros(32).RequiresGrad_(), Param(32, 32), Tensor.Zeros(32).RequiresGrad_(), Param(2, 32), Tensor.Zeros(2).RequiresGrad_()];
        Tensor Forward(Tensor t) => Linear(Tanh(Linear(Tanh(Linear(t, ps[0], ps[1])), ps[2], ps[3])), ps[4], ps[5]);

        Console.WriteLine("Fitting a 2-32-32-2 MLP to two spirals (400 points), full-batch SGD, lr 0.5, momentum 0.9");
        var velocity = ps.Select(Tensor.ZerosLike).ToArray();
        var sw = Stopwatch.StartNew();
        for (int step = 1; step <= 2000; step++)
        {
            foreach (var p in ps) p.ZeroGrad();
            var loss = CrossEntropy(Forward(x), y);
            loss.Backward();
            using (AutoGrad.NoGrad())
                for (int k = 0; k < ps.Length; k++)
                    ps[k].Add_(velocity[k].Mul_(0.9).Add_(ps[k].Grad!), alpha: -0.5);
            if (step % 400 == 0 || step == 1)
            {
                double acc;
                using (AutoGrad.NoGrad()) acc = ArgMax(Forward(x), 1).Eq(y).To(DType.Float32).Mean().Item();
                Console.WriteLine($"  step {step,5}  loss {loss.Item():F4}  accuracy {acc:F4}");
            }
        }
        Console.WriteLine($"  {sw.Elapsed.TotalSeconds:F1} s on backend {Backend.Current.Name}\n");
    }

    /// <summary>Runs GradCheck on random cases of every registered op and prints one row per op.</summary>
    private static bool GradCheckTable(int cases, int seed)
    {
        var gen = new Generator(seed);
        Console.WriteLine($"Gradient check of every registered op ({cases} random cases each, float64, eps 1e-6, atol 1e-5, rtol 1e-3)");
        Console.WriteLine($"{"op",-30} {"cases",5} {"passed",6} {"max abs err",12} {"max rel err",12}");
        bool all = true;
        foreach (var spec in OpRegistry.All)
        {
            int passed = 0;
            double maxAbs = 0, maxRel = 0;
            for (int i = 0; i < cases; i++)
            {
                var d = Draw.Sample(gen);
                var c = spec.Make(d);
                var report = GradCheck.Check(c.F, c.Build(DType.Float64, d.Seed));
                if (report.Passed) passed++;
                foreach (var r in report.Inputs) { maxAbs = Math.Max(maxAbs, r.MaxAbsError); maxRel = Math.Max(maxRel, r.MaxRelError); }
            }
            all &= passed == cases;
            Console.WriteLine($"{spec.Name,-30} {cases,5} {passed,6} {maxAbs,12:E2} {maxRel,12:E2}");
        }
        Console.WriteLine(all ? "all gradient checks passed" : "SOME GRADIENT CHECKS FAILED");
        return all;
    }
}
