using System.Diagnostics;
using System.Globalization;
using Autograd.Backends;
using Autograd.Testing;
using Autograd.Zoo;
using static Autograd.Functional;

namespace Autograd.Cli;

/// <summary><c>summary</c>, <c>gradcheck</c>, <c>demo</c> and <c>backend</c>.</summary>
internal static class ToolCommands
{
    /// <summary>The MODEL, --input and --classes options shared by <c>summary</c> and <c>onnx export</c>.</summary>
    internal const string ModelOptions = """
          --input   one sample's shape (default 1,28,28 for lenet5 and mlp, 3,224,224 otherwise)
          --classes number of classes (default 10 for lenet5 and mlp, 1000 otherwise)
        """;

    /// <summary>Builds the model named by the first positional argument, with the sample shape from --input and --classes.</summary>
    internal static (Autograd.Layers.Module Model, int[] Input) ModelFromArgs(string command, Args a, int positionals)
    {
        if (a.Positionals.Count != positionals) throw new UsageException($"{command}: expected {positionals} arguments, got {a.Positionals.Count}");
        string name = a.Positionals[0];
        bool small = name is "lenet5" or "mlp";
        int[] input;
        try { input = (a.Str("--input") ?? (small ? "1,28,28" : "3,224,224")).Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(); }
        catch (FormatException) { throw new UsageException($"{command}: --input must be C,H,W integers, got '{a.Str("--input")}'"); }
        return (TrainCommand.CreateModel(name, input, a.Int("--classes", small ? 10 : 1000, 1)), input);
    }

    public static int Summary(string[] argv)
    {
        string help = $"""
            usage: autograd summary MODEL [--input C,H,W] [--classes K]
              MODEL: lenet5, mlp, {string.Join(", ", Autograd.Zoo.Zoo.Names)}
            {ModelOptions}
            """;
        if (Program.Help(argv, help)) return 0;
        var (model, input) = ModelFromArgs("summary", new Args("summary", argv, ["--input", "--classes"], []), 1);
        Console.WriteLine(ModelSummary.Of(model, input));
        return 0;
    }

    public static int GradCheckTable(string[] argv)
    {
        const string help = """
            usage: autograd gradcheck [--op NAME] [--cases N] [--seed S]
              gradient-checks the registered ops (float64, eps 1e-6, atol 1e-5, rtol 1e-3) on N random cases each (default 20)
            """;
        if (Program.Help(argv, help)) return 0;
        var a = new Args("gradcheck", argv, ["--op", "--cases", "--seed"], []);
        var specs = OpRegistry.All.Where(s => a.Str("--op") is not string op || s.Name.Equals(op, StringComparison.OrdinalIgnoreCase)).ToList();
        if (specs.Count == 0) throw new UsageException($"gradcheck: no registered op named '{a.Str("--op")}'");
        return Table(specs, a.Int("--cases", 20, 1), a.Int("--seed", 1)) ? 0 : 1;
    }

    private static bool Table(IReadOnlyList<OpSpec> specs, int cases, int seed)
    {
        Program.TouchBackend();
        var gen = new Generator(seed);
        Console.WriteLine($"Gradient check ({cases} random cases per op, float64, eps 1e-6, atol 1e-5, rtol 1e-3), backend {Backend.Current.Name}");
        Console.WriteLine($"{"op",-30} {"cases",5} {"max abs err",12} {"max rel err",12}  verdict");
        int passed = 0, failed = 0;
        foreach (var spec in specs)
        {
            int ok = 0;
            double maxAbs = 0, maxRel = 0;
            for (int i = 0; i < cases; i++)
            {
                var d = Draw.Sample(gen);
                var c = spec.Make(d);
                var report = GradCheck.Check(c.F, c.Build(DType.Float64, d.Seed));
                if (report.Passed) ok++;
                foreach (var r in report.Inputs) { maxAbs = Math.Max(maxAbs, r.MaxAbsError); maxRel = Math.Max(maxRel, r.MaxRelError); }
            }
            if (ok == cases) passed++; else failed++;
            Console.WriteLine($"{spec.Name,-30} {cases,5} {maxAbs,12:E2} {maxRel,12:E2}  {(ok == cases ? "pass" : $"FAIL ({cases - ok} cases)")}");
        }
        Console.WriteLine($"{passed} passed, {failed} failed");
        return failed == 0;
    }

    /// <summary>A 2-32-32-2 MLP trained with SGD on two spirals, then the gradient-check table.</summary>
    public static int Demo(string[] argv)
    {
        if (Program.Help(argv, "usage: autograd demo\n  fits a small MLP on two interleaved spirals, then gradient-checks every registered op")) return 0;
        var gen = new Generator(0);
        const int n = 400;
        var pts = new float[2 * n];
        var labels = new long[n];
        for (int i = 0; i < n; i++)
        {
            int c = i % 2;
            double r = 0.2 + 0.8 * (i / 2) / (n / 2.0), angle = 4 * Math.PI * r + Math.PI * c;
            pts[2 * i] = (float)(r * Math.Cos(angle) + 0.03 * gen.NextNormal());
            pts[2 * i + 1] = (float)(r * Math.Sin(angle) + 0.03 * gen.NextNormal());
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
                for (int k = 0; k < ps.Length; k++) ps[k].Add_(velocity[k].Mul_(0.9).Add_(ps[k].Grad!), alpha: -0.5);
            if (step % 400 == 0 || step == 1)
            {
                double acc;
                using (AutoGrad.NoGrad()) acc = ArgMax(Forward(x), 1).Eq(y).To(DType.Float32).Mean().Item();
                Console.WriteLine($"  step {step,5}  loss {loss.Item():F4}  accuracy {acc:F4}");
            }
        }
        Console.WriteLine($"  {sw.Elapsed.TotalSeconds:F1} s on backend {Backend.Current.Name}\n");
        return Table(OpRegistry.All, 20, 1) ? 0 : 1;
    }

    public static int ShowBackend(string[] argv)
    {
        if (Program.Help(argv, "usage: autograd backend\n  prints the backend in use (AUTOGRAD_BACKEND=mkl|openblas|managed) and those that load")) return 0;
        Console.WriteLine($"current: {Backend.Current.Name}");
        foreach (var b in Backend.Available()) Console.WriteLine($"available: {b.Name}{(b is MklBackend m ? $" ({m.Description})" : "")}");
        return 0;
    }
}
