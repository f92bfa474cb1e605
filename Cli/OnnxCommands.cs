using System.Globalization;
using Autograd.Onnx;

namespace Autograd.Cli;

/// <summary><c>onnx verify</c> and <c>onnx info</c>.</summary>
internal static class OnnxCommands
{
    private const string Usage = """
        usage: autograd onnx <verify|info|export> ...
          verify PATH... [--rtol R] [--atol A] [--quiet]
                 runs ONNX test-case folders (model.onnx + test_data_set_*/input_N.pb, output_N.pb); a PATH may be one case or a
                 folder of cases. One line per case: PASS, FAIL with the max abs and rel error, or UNSUPPORTED with the reason;
                 then 'N passed, M failed, K unsupported'. Exit code 0 only if none failed. Defaults: rtol 1e-3, atol 1e-5.
                 --quiet prints only failing and unsupported cases and the totals.
          info FILE
                 IR and opset versions, inputs, outputs, an op histogram and the parameter count of a model.
          export MODEL FILE [--input C,H,W] [--classes K] [--batch N] [--opset 13..17] [--checkpoint FILE]
                 traces a zoo model (or lenet5, mlp) in eval mode, with weights from a safetensors checkpoint if given, and
                 writes it as ONNX; the graph takes [N, C, H, W] (N defaults to 1).
        """;

    public static int Run(string[] argv)
    {
        if (argv.Length == 0) throw new UsageException("onnx: give a subcommand, verify or info\n" + Usage);
        if (argv[0] is "-h" or "--help") { Console.WriteLine(Usage); return 0; }
        if (Program.Help(argv[1..], Usage)) return 0;
        return argv[0] switch
        {
            "verify" => Verify(argv[1..]),
            "info" => Info(argv[1..]),
            "export" => Export(argv[1..]),
            _ => throw new UsageException($"onnx: unknown subcommand '{argv[0]}' (verify, info or export)"),
        };
    }

    private static int Verify(string[] argv)
    {
        var a = new Args("onnx verify", argv, ["--rtol", "--atol"], ["--quiet"]);
        if (a.Positionals.Count == 0) throw new UsageException("onnx verify: give at least one case folder");
        double rtol = a.Double("--rtol") ?? 1e-3, atol = a.Double("--atol") ?? 1e-5;
        bool quiet = a.Has("--quiet");
        int passed = 0, failed = 0, unsupported = 0;
        foreach (var given in a.Positionals)
        {
            var path = File.Exists(given) && Path.GetFileName(given) == "model.onnx" ? Path.GetDirectoryName(Path.GetFullPath(given))! : given;
            if (!Directory.Exists(path)) throw new UsageException($"onnx verify: no such folder: {path}");
            foreach (var dir in OnnxConformance.Cases(path))
            {
                var r = OnnxConformance.Run(dir, rtol, atol);
                switch (r.Status)
                {
                    case CaseStatus.Pass: passed++; if (!quiet) Console.WriteLine($"PASS         {r.Name}"); break;
                    case CaseStatus.Unsupported: unsupported++; Console.WriteLine($"UNSUPPORTED  {r.Name}  {r.Message}"); break;
                    default:
                        failed++;
                        Console.WriteLine(double.IsNaN(r.MaxAbs)
                            ? $"FAIL         {r.Name}  {r.Message}"
                            : $"FAIL         {r.Name}  max abs {F(r.MaxAbs)}, max rel {F(r.MaxRel)}  {r.Message}");
                        break;
                }
            }
        }
        Console.WriteLine($"{unsupported} unsupported");
        Console.WriteLine($"{passed} passed, {failed} failed");
        return failed == 0 ? 0 : 1;
    }

    private static int Export(string[] argv)
    {
        var a = new Args("onnx export", argv, ["--input", "--classes", "--batch", "--opset", "--checkpoint"], []);
        var (model, input) = ToolCommands.ModelFromArgs("onnx export", a, 2);
        if (a.Str("--checkpoint") is string checkpoint) Autograd.Checkpoints.Checkpoint.Load(checkpoint, model);
        var sample = Tensor.Randn([a.Int("--batch", 1, 1), .. input], seed: 0);
        int opset = a.Int("--opset", OnnxExport.MaxOpset, OnnxExport.MinOpset, OnnxExport.MaxOpset);
        model.ExportOnnx(a.Positionals[1], sample, opset);
        Console.WriteLine($"wrote {a.Positionals[1]}: {a.Positionals[0]}, input [{string.Join(", ", sample.Shape)}], opset {opset}, {model.ParameterCount:N0} parameters");
        return 0;
    }

    private static string F(double v) => v.ToString("0.###e+0", CultureInfo.InvariantCulture);

    private static int Info(string[] argv)
    {
        var a = new Args("onnx info", argv, [], []);
        if (a.Positionals.Count != 1) throw new UsageException("onnx info: give exactly one FILE");
        var path = a.Positionals[0];
        if (!File.Exists(path)) throw new UsageException($"onnx info: no such file: {path}");
        var model = OnnxModelFile.Read(path);
        Console.WriteLine($"{path}: IR version {model.IrVersion}, producer '{model.ProducerName}' {model.ProducerVersion}");
        Console.WriteLine($"opsets: {string.Join(", ", model.OpsetImport.Select(o => $"{(o.Domain.Length == 0 ? "ai.onnx" : o.Domain)} {o.Version}"))}");
        var g = model.Graph;
        var initNames = g.Initializers.Select(i => i.Name).ToHashSet();
        Console.WriteLine("inputs:");
        foreach (var i in g.Inputs.Where(i => !initNames.Contains(i.Name))) Console.WriteLine($"  {i}");
        Console.WriteLine("outputs:");
        foreach (var o in g.Outputs) Console.WriteLine($"  {o}");
        Console.WriteLine($"nodes: {g.Nodes.Count}");
        foreach (var (op, count) in g.Nodes.GroupBy(n => n.OpType).Select(x => (x.Key, x.Count())).OrderByDescending(x => x.Item2).ThenBy(x => x.Key, StringComparer.Ordinal))
            Console.WriteLine($"  {op,-24} {count,6}");
        long parameters = g.Initializers.Where(t => TensorData.IsFloat(t.DataType)).Sum(t => t.Dims.Aggregate(1L, (p, d) => p * d));
        Console.WriteLine($"initializers: {g.Initializers.Count}, float parameters: {parameters.ToString("N0", CultureInfo.InvariantCulture)}");
        return 0;
    }
}
