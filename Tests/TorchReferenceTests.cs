using System.Text;
using System.Text.Json;
using static Autograd.Functional;

namespace Tests;

/// <summary>Compares ops with PyTorch: Reference/torch_reference.json holds, per case, float64 inputs, the PyTorch
/// output and the gradients of sum(output * w) for a stored weight w (made by Reference/make_reference.py, whose header
/// tells how to regenerate it). Every case runs the matching <see cref="Functional"/> op in Float64.</summary>
public class TorchReferenceTests
{
    private const double Atol = 1e-10, Rtol = 1e-8;

    /// <summary>PyTorch's CPU hardsigmoid backward multiplies by the float32 constant 1.0f/6.0f even in float64, so its
    /// gradient is off by 3e-8 relative; ours uses 1/6 exactly.</summary>
    private static double RtolFor(string op) => op == "hardsigmoid" ? 1e-7 : Rtol;

    private static readonly Lazy<Dictionary<string, JsonElement>> All = new(Load);

    private static Dictionary<string, JsonElement> Load()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Reference", "torch_reference.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var cases = new Dictionary<string, JsonElement>();
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
            cases.Add(c.GetProperty("name").GetString()!, c.Clone());
        return cases;
    }

    /// <summary>One test per case, named op_index.</summary>
    public static IEnumerable<TestCaseData> Cases() => All.Value.Keys.Select(n => new TestCaseData(n).SetName(n));

    [TestCaseSource(nameof(Cases))]
    public void Matches_pytorch(string name)
    {
        var c = All.Value[name];
        string op = c.GetProperty("op").GetString()!;
        var p = new Params(c.GetProperty("params"));
        var gradNames = c.GetProperty("grad_inputs").EnumerateArray().Select(e => e.GetString()!).ToHashSet();
        var inputs = new Dictionary<string, Tensor>();
        foreach (var prop in c.GetProperty("inputs").EnumerateObject())
        {
            var t = ReadTensor(prop.Value);
            if (gradNames.Contains(prop.Name)) t.RequiresGrad_();
            inputs[prop.Name] = t;
        }

        var (output, extra) = Run(op, inputs, p);
        p.AssertAllUsed(name);

        var problems = new List<string>();
        Compare("output", output, c.GetProperty("output"), problems, RtolFor(op));
        foreach (var e in c.GetProperty("extra_outputs").EnumerateObject())
        {
            if (!extra.TryGetValue(e.Name, out var actual)) { problems.Add($"extra output {e.Name}: not produced"); continue; }
            Compare(e.Name, actual, e.Value, problems, RtolFor(op));
        }

        if (gradNames.Count > 0 && output.Shape.SequenceEqual(ReadShape(c.GetProperty("output"))))
        {
            var w = ReadTensor(c.GetProperty("w"));
            Sum(output * w).Backward();
            foreach (var g in c.GetProperty("grads").EnumerateObject())
            {
                var x = inputs[g.Name];
                Compare($"grad of {g.Name}", x.Grad ?? Tensor.ZerosLike(x), g.Value, problems, RtolFor(op));
            }
        }

        if (problems.Count > 0)
            Assert.Fail($"{name}: {op} with {c.GetProperty("params").GetRawText()} disagrees with PyTorch:\n  " + string.Join("\n  ", problems));
    }

    private static (Tensor Output, Dictionary<string, Tensor> Extra) Run(string op, Dictionary<string, Tensor> t, Params p)
    {
        var none = new Dictionary<string, Tensor>();
        Tensor x = t["input"];
        Tensor? Opt(string k) => t.GetValueOrDefault(k);
        switch (op)
        {
            case "conv1d": return (Conv1d(x, t["weight"], Opt("bias"), p.Tuple("stride"), p.Pad("padding"), p.Tuple("dilation"), p.Int("groups", 1)), none);
            case "conv2d": return (Conv2d(x, t["weight"], Opt("bias"), p.Tuple("stride"), p.Pad("padding"), p.Tuple("dilation"), p.Int("groups", 1)), none);
            case "conv3d": return (Conv3d(x, t["weight"], Opt("bias"), p.Tuple("stride"), p.Pad("padding"), p.Tuple("dilation"), p.Int("groups", 1)), none);
            case "conv_transpose1d":
                return (ConvTranspose1d(x, t["weight"], Opt("bias"), p.Tuple("stride"), p.Tuple("padding"), p.Tuple("output_padding"), p.Int("groups", 1), p.Tuple("dilation")), none);
            case "conv_transpose2d":
                return (ConvTranspose2d(x, t["weight"], Opt("bias"), p.Tuple("stride"), p.Tuple("padding"), p.Tuple("output_padding"), p.Int("groups", 1), p.Tuple("dilation")), none);
            case "conv_transpose3d":
                return (ConvTranspose3d(x, t["weight"], Opt("bias"), p.Tuple("stride"), p.Tuple("padding"), p.Tuple("output_padding"), p.Int("groups", 1), p.Tuple("dilation")), none);

            case "max_pool1d": return (MaxPool1d(x, p.Tuple("kernel_size"), p.Tuple("stride"), p.Tuple("padding"), p.Tuple("dilation"), p.Bool("ceil_mode", false)), none);
            case "max_pool2d": return (MaxPool2d(x, p.Tuple("kernel_size"), p.Tuple("stride"), p.Tuple("padding"), p.Tuple("dilation"), p.Bool("ceil_mode", false)), none);
            case "max_pool3d": return (MaxPool3d(x, p.Tuple("kernel_size"), p.Tuple("stride"), p.Tuple("padding"), p.Tuple("dilation"), p.Bool("ceil_mode", false)), none);
            case "max_pool1d_with_indices":
            case "max_pool2d_with_indices":
            case "max_pool3d_with_indices":
            {
                var (k, s, pad, d, ceil) = (p.Tuple("kernel_size"), p.Tuple("stride"), p.Tuple("padding"), p.Tuple("dilation"), p.Bool("ceil_mode", false));
                var (v, idx) = op[8] switch
                {
                    '1' => MaxPool1dWithIndices(x, k, s, pad, d, ceil),
                    '2' => MaxPool2dWithIndices(x, k, s, pad, d, ceil),
                    _ => MaxPool3dWithIndices(x, k, s, pad, d, ceil),
                };
                return (v, new() { ["indices"] = idx });
            }
            case "avg_pool1d":
                return (AvgPool1d(x, p.Tuple("kernel_size"), p.Tuple("stride"), p.Tuple("padding"), p.Bool("ceil_mode", false), p.Bool("count_include_pad", true)), none);
            case "avg_pool2d":
                return (AvgPool2d(x, p.Tuple("kernel_size"), p.Tuple("stride"), p.Tuple("padding"), p.Bool("ceil_mode", false), p.Bool("count_include_pad", true), p.IntOrNull("divisor_override")), none);
            case "avg_pool3d":
                return (AvgPool3d(x, p.Tuple("kernel_size"), p.Tuple("stride"), p.Tuple("padding"), p.Bool("ceil_mode", false), p.Bool("count_include_pad", true), p.IntOrNull("divisor_override")), none);
            case "adaptive_avg_pool1d": return (AdaptiveAvgPool1d(x, p.Tuple("output_size")), none);
            case "adaptive_avg_pool2d": return (AdaptiveAvgPool2d(x, p.Tuple("output_size")), none);
            case "adaptive_max_pool2d": return (AdaptiveMaxPool2d(x, p.Tuple("output_size")), none);
            case "max_unpool2d":
                return (MaxUnpool2d(x, t["indices"], p.Tuple("kernel_size"), p.Tuple("stride"), p.Tuple("padding"), p.IntsOrNull("output_size")), none);

            case "sigmoid": return (Sigmoid(x), none);
            case "tanh": return (Tanh(x), none);
            case "relu": return (Relu(x), none);
            case "leaky_relu": return (LeakyRelu(x, p.Double("negative_slope", 0.01)), none);
            case "elu": return (Elu(x, p.Double("alpha", 1.0)), none);
            case "selu": return (Selu(x), none);
            case "gelu": return (Gelu(x, p.String("approximate", "none")), none);
            case "silu": return (Silu(x), none);
            case "softplus": return (Softplus(x, p.Double("beta", 1), p.Double("threshold", 20)), none);
            case "hardsigmoid": return (HardSigmoid(x), none);
            case "hardswish": return (HardSwish(x), none);
            case "mish": return (Mish(x), none);
            case "softmax": return (Softmax(x, p.Int("dim")), none);
            case "log_softmax": return (LogSoftmax(x, p.Int("dim")), none);

            case "mse_loss": return (MseLoss(x, t["target"], p.Reduction()), none);
            case "l1_loss": return (L1Loss(x, t["target"], p.Reduction()), none);
            case "smooth_l1_loss": return (SmoothL1Loss(x, t["target"], p.Reduction(), p.Double("beta", 1.0)), none);
            case "binary_cross_entropy": return (BinaryCrossEntropy(x, t["target"], Opt("weight"), p.Reduction()), none);
            case "binary_cross_entropy_with_logits":
                return (BinaryCrossEntropyWithLogits(x, t["target"], Opt("weight"), Opt("pos_weight"), p.Reduction()), none);
            case "cross_entropy":
                return (CrossEntropy(x, t["target"], Opt("weight"), p.Int("ignore_index", -100), p.Reduction(), p.Double("label_smoothing", 0)), none);
            case "nll_loss": return (NllLoss(x, t["target"], Opt("weight"), p.Int("ignore_index", -100), p.Reduction()), none);

            case "var": return (Var(x, p.IntsOrNull("dim"), p.Bool("unbiased", true) ? 1 : 0, p.Bool("keepdim", false)), none);
            case "std": return (Std(x, p.IntsOrNull("dim"), p.Bool("unbiased", true) ? 1 : 0, p.Bool("keepdim", false)), none);
            case "logsumexp": return (LogSumExp(x, p.IntsOrNull("dim"), p.Bool("keepdim", false)), none);
            case "matmul": return (MatMul(x, t["other"]), none);
            default: throw new NotSupportedException($"no mapping for op {op}");
        }
    }

    /// <summary>PyTorch keyword arguments of one case; every one must be read (so none is silently dropped).</summary>
    private sealed class Params(JsonElement e)
    {
        private readonly HashSet<string> used = [];

        private JsonElement? Get(string k)
        {
            used.Add(k);
            return e.TryGetProperty(k, out var v) ? v : null;
        }

        public void AssertAllUsed(string name)
        {
            var unused = e.EnumerateObject().Select(p => p.Name).Where(n => !used.Contains(n)).ToList();
            if (unused.Count > 0) Assert.Fail($"{name}: parameters {string.Join(", ", unused)} are not mapped to the C# op");
        }

        public IntTuple Tuple(string k) => Get(k) switch
        {
            null => default,
            { ValueKind: JsonValueKind.Array } a => a.EnumerateArray().Select(v => v.GetInt32()).ToArray(),
            var v => v.Value.GetInt32(),
        };

        public Padding Pad(string k) => Get(k) switch
        {
            null => default,
            { ValueKind: JsonValueKind.Array } a => a.EnumerateArray().Select(v => v.GetInt32()).ToArray(),
            { ValueKind: JsonValueKind.String } s => s.GetString()!,
            var v => v.Value.GetInt32(),
        };

        public int[]? IntsOrNull(string k) => Get(k) switch
        {
            null => null,
            { ValueKind: JsonValueKind.Array } a => a.EnumerateArray().Select(v => v.GetInt32()).ToArray(),
            var v => [v.Value.GetInt32()],
        };

        public int Int(string k, int dflt = 0) => Get(k)?.GetInt32() ?? dflt;
        public int? IntOrNull(string k) => Get(k)?.GetInt32();
        public double Double(string k, double dflt) => Get(k)?.GetDouble() ?? dflt;
        public bool Bool(string k, bool dflt) => Get(k)?.GetBoolean() ?? dflt;
        public string String(string k, string dflt) => Get(k)?.GetString() ?? dflt;

        public Reduction Reduction() => String("reduction", "mean") switch
        {
            "mean" => Autograd.Reduction.Mean,
            "sum" => Autograd.Reduction.Sum,
            "none" => Autograd.Reduction.None,
            var r => throw new NotSupportedException($"reduction {r}"),
        };
    }

    private static int[] ReadShape(JsonElement t) => t.GetProperty("shape").EnumerateArray().Select(v => v.GetInt32()).ToArray();

    private static double ReadDouble(JsonElement v) => v.ValueKind == JsonValueKind.String
        ? v.GetString() switch
        {
            "nan" => double.NaN,
            "inf" => double.PositiveInfinity,
            "-inf" => double.NegativeInfinity,
            var s => throw new FormatException($"bad number {s}"),
        }
        : v.GetDouble();

    private static Tensor ReadTensor(JsonElement t)
    {
        var shape = ReadShape(t);
        var data = t.GetProperty("data");
        return t.GetProperty("dtype").GetString() switch
        {
            "int64" => Tensor.From(data.EnumerateArray().Select(v => v.GetInt64()).ToArray(), shape),
            "float64" => Tensor.From(data.EnumerateArray().Select(ReadDouble).ToArray(), shape),
            var d => throw new NotSupportedException($"dtype {d}"),
        };
    }

    /// <summary>Adds a line to <paramref name="problems"/> when the shape differs or some element is outside
    /// atol + rtol |expected| (NaN must match NaN, infinities must match exactly), naming the worst element.</summary>
    private static void Compare(string what, Tensor actual, JsonElement expected, List<string> problems, double rtol)
    {
        var shape = ReadShape(expected);
        if (!actual.Shape.SequenceEqual(shape))
        {
            problems.Add($"{what}: shape [{string.Join(", ", actual.Shape)}], expected [{string.Join(", ", shape)}]");
            return;
        }
        bool isInt = expected.GetProperty("dtype").GetString() == "int64";
        if (isInt && actual.DType != DType.Int64)
        {
            problems.Add($"{what}: dtype {actual.DType}, expected Int64");
            return;
        }
        var exp = expected.GetProperty("data").EnumerateArray().Select(ReadDouble).ToArray();
        var act = isInt ? actual.ToLongArray().Select(v => (double)v).ToArray() : actual.ToDoubleArray();
        int bad = 0, worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < exp.Length; i++)
        {
            double a = act[i], e = exp[i];
            double excess;
            if (double.IsNaN(e) || double.IsNaN(a)) excess = double.IsNaN(e) && double.IsNaN(a) ? 0 : double.PositiveInfinity;
            else if (double.IsInfinity(e) || double.IsInfinity(a)) excess = a == e ? 0 : double.PositiveInfinity;
            else excess = Math.Abs(a - e) / (Atol + rtol * Math.Abs(e));
            if (excess > 1)
            {
                bad++;
                if (worst < 0 || excess > worstExcess) { worst = i; worstExcess = excess; }
            }
        }
        if (bad == 0) return;
        var sb = new StringBuilder();
        sb.Append($"{what}: {bad} of {exp.Length} elements differ; worst at flat index {worst} ({Multi(worst, shape)}): ");
        sb.Append($"got {act[worst]:R}, expected {exp[worst]:R} (|diff| = {Math.Abs(act[worst] - exp[worst]):G3})");
        if (exp.Length <= 64)
        {
            sb.Append($"\n    got      [{string.Join(", ", act.Select(v => v.ToString("G6")))}]");
            sb.Append($"\n    expected [{string.Join(", ", exp.Select(v => v.ToString("G6")))}]");
        }
        problems.Add(sb.ToString());
    }

    private static string Multi(int flat, int[] shape)
    {
        var idx = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--) { idx[d] = flat % shape[d]; flat /= shape[d]; }
        return "[" + string.Join(", ", idx) + "]";
    }
}
