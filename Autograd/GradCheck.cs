using System.Text;

namespace Autograd;

/// <summary>Options of <see cref="GradCheck"/>; the defaults are PyTorch's <c>gradcheck</c> defaults.</summary>
public sealed record GradCheckOptions
{
    /// <summary>Central-difference step.</summary>
    public double Eps { get; init; } = 1e-6;
    /// <summary>Absolute tolerance.</summary>
    public double Atol { get; init; } = 1e-5;
    /// <summary>Relative tolerance.</summary>
    public double Rtol { get; init; } = 1e-3;
    /// <summary>Inputs with at most this many elements in total get the full Jacobian; larger ones the directional check.</summary>
    public int FullJacobianLimit { get; init; } = 256;
    /// <summary>Force the directional (v^T J u) mode.</summary>
    public bool Fast { get; init; }
    /// <summary>Seed of the random directions in fast mode.</summary>
    public long Seed { get; init; } = 0;
}

/// <summary>Result for one input of a gradient check.</summary>
/// <param name="Input">Index of the input.</param>
/// <param name="MaxAbsError">Largest |numeric - analytic|.</param>
/// <param name="MaxRelError">Largest |numeric - analytic| / max(|numeric|, tiny).</param>
/// <param name="WorstElement">Flat index of the worst element (-1 in directional mode, where the whole direction is one value).</param>
/// <param name="WorstOutput">Flat index of the output element of that Jacobian entry (-1 in directional mode).</param>
/// <param name="Numeric">Finite-difference value at the worst element.</param>
/// <param name="Analytic">Backward value at the worst element.</param>
/// <param name="Passed">Whether every element is within atol + rtol * |numeric|.</param>
public sealed record GradCheckInputReport(int Input, double MaxAbsError, double MaxRelError, long WorstElement, long WorstOutput, double Numeric, double Analytic, bool Passed);

/// <summary>The outcome of a gradient check: pass/fail with per-input errors.</summary>
public sealed record GradCheckReport(bool Passed, string Mode, IReadOnlyList<GradCheckInputReport> Inputs, string? Failure)
{
    /// <summary>Throws <see cref="GradCheckException"/> unless the check passed.</summary>
    public GradCheckReport ThrowIfFailed() => Passed ? this : throw new GradCheckException(this);

    /// <summary>A readable summary: mode, and per input the errors and the worst element.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder($"gradcheck {(Passed ? "passed" : "FAILED")} ({Mode})");
        if (Failure != null) sb.Append(": ").Append(Failure);
        foreach (var r in Inputs)
            sb.Append($"\n  input {r.Input}: max abs err {r.MaxAbsError:G3}, max rel err {r.MaxRelError:G3}" +
                (r.WorstElement >= 0 ? $", worst element {r.WorstElement} (output element {r.WorstOutput})" : ", random direction v^T J u") +
                $" numeric {r.Numeric:G9} vs analytic {r.Analytic:G9}{(r.Passed ? "" : "  <-- mismatch")}");
        return sb.ToString();
    }
}

/// <summary>Thrown by <see cref="GradCheckReport.ThrowIfFailed"/>; the message is the full report.</summary>
public sealed class GradCheckException(GradCheckReport report) : Exception(report.ToString())
{
    /// <summary>The failed report.</summary>
    public GradCheckReport Report { get; } = report;
}

/// <summary>Compares backward-mode gradients with central finite differences in float64 (like
/// <c>torch.autograd.gradcheck</c>), including a reentrancy check and a second-order variant.</summary>
/// <example><code>
/// var x = Tensor.Randn([3, 4], seed: 1, DType.Float64).RequiresGrad_();
/// GradCheck.Check(t => Functional.Tanh(t[0]).Sum(), x).ThrowIfFailed();
/// </code></example>
public static class GradCheck
{
    /// <summary>Checks the gradient of <paramref name="f"/> with respect to every input that requires grad.
    /// Inputs must be Float64 (float32 differences are too coarse for these tolerances).</summary>
    public static GradCheckReport Check(Func<Tensor[], Tensor> f, params Tensor[] inputs) => Check(f, new GradCheckOptions(), inputs);

    /// <summary>As <see cref="Check(Func{Tensor[], Tensor}, Tensor[])"/> with explicit options.</summary>
    public static GradCheckReport Check(Func<Tensor[], Tensor> f, GradCheckOptions options, params Tensor[] inputs)
    {
        foreach (var (t, i) in inputs.Select((t, i) => (t, i)))
            if (t.RequiresGrad && t.DType != DType.Float64)
                throw new ArgumentException($"GradCheck: input {i} is {t.DType}; use Float64 inputs: float32 finite differences with eps {options.Eps} lose most of their digits to rounding, so the check would be meaningless");
        var wrt = Enumerable.Range(0, inputs.Length).Where(i => inputs[i].RequiresGrad).ToArray();
        if (wrt.Length == 0) throw new ArgumentException("GradCheck: no input requires grad");

        var y0 = f(inputs);
        if (!y0.DType.IsFloat()) throw new ArgumentException($"GradCheck: the function must return a float tensor, got {y0.DType}");
        int total = wrt.Sum(i => inputs[i].Numel) + y0.Numel;
        bool fast = options.Fast || total > options.FullJacobianLimit;
        string mode = fast ? "fast" : "full";
        var gen = new Generator(options.Seed);

        // Reentrancy: two backward passes with the same output gradient must agree exactly.
        var v = Tensor.Randn(y0.Dims, gen, DType.Float64);
        var first = VectorJacobian(f, inputs, wrt, v);
        var second = VectorJacobian(f, inputs, wrt, v);
        for (int w = 0; w < wrt.Length; w++)
            if (!first[w].AsSpan().SequenceEqual(second[w]))
                return new GradCheckReport(false, mode, [], $"backward is not reentrant: two backward passes gave different gradients for input {wrt[w]}");

        var worst = wrt.Select(i => new Worst(i)).ToArray();
        if (fast)
        {
            // Directional: numeric v^T J u against (J^T v) . u for one random u per input.
            for (int w = 0; w < wrt.Length; w++)
            {
                var u = Tensor.Randn(inputs[wrt[w]].Dims, gen, DType.Float64).ToDoubleArray();
                var dy = Difference(f, inputs, inputs[wrt[w]], u, options.Eps);
                double numeric = 0, analytic = 0, vv;
                var vs = v.ToDoubleArray();
                for (int j = 0; j < dy.Length; j++) { vv = vs[j]; numeric += vv * dy[j]; }
                for (int k = 0; k < u.Length; k++) analytic += first[w][k] * u[k];
                worst[w].Add(-1, -1, numeric, analytic, options);
            }
        }
        else
        {
            // Full Jacobian: numeric columns (one per input element), analytic rows (one backward per output element).
            var rows = Enumerable.Range(0, y0.Numel).Select(j => VectorJacobian(f, inputs, wrt, OneHot(y0.Dims, j))).ToArray();
            for (int w = 0; w < wrt.Length; w++)
            {
                var x = inputs[wrt[w]];
                for (int k = 0; k < x.Numel; k++)
                {
                    var u = new double[x.Numel];
                    u[k] = 1;
                    var column = Difference(f, inputs, x, u, options.Eps);
                    for (int j = 0; j < column.Length; j++) worst[w].Add(k, j, column[j], rows[j][w][k], options);
                }
            }
        }
        var reports = worst.Select(w => w.Report()).ToList();
        bool ok = reports.All(r => r.Passed);
        return new GradCheckReport(ok, mode, reports, ok ? null : "analytic and numeric gradients differ");
    }

    /// <summary>Checks a <see cref="CustomFunction"/>'s Backward against finite differences of its Forward, with respect to
    /// every input that requires grad; the differentiable outputs are checked together (flattened and concatenated).</summary>
    /// <example><code>GradCheck.Check(new MyFunction(), x, y).ThrowIfFailed();</code></example>
    public static GradCheckReport Check(CustomFunction function, params Tensor[] inputs) => Check(function, new GradCheckOptions(), inputs);

    /// <summary>As <see cref="Check(CustomFunction, Tensor[])"/> with explicit options.</summary>
    public static GradCheckReport Check(CustomFunction function, GradCheckOptions options, params Tensor[] inputs) =>
        Check(t => Functional.Cat([.. function.ApplyMany(t).Where(o => o.RequiresGrad).Select(o => o.Reshape(-1))]), options, inputs);

    /// <summary>Checks the gradients of the gradients: <c>g(x, v) = d(v · f(x))/dx</c> is checked with <see cref="Check(Func{Tensor[], Tensor}, GradCheckOptions, Tensor[])"/>.</summary>
    public static GradCheckReport CheckSecondOrder(Func<Tensor[], Tensor> f, params Tensor[] inputs) => CheckSecondOrder(f, new GradCheckOptions(), inputs);

    /// <summary>As <see cref="CheckSecondOrder(Func{Tensor[], Tensor}, Tensor[])"/> with explicit options.</summary>
    public static GradCheckReport CheckSecondOrder(Func<Tensor[], Tensor> f, GradCheckOptions options, params Tensor[] inputs)
    {
        var wrt = inputs.Where(t => t.RequiresGrad).ToArray();
        var y = f(inputs);
        var v = Tensor.Randn(y.Dims, options.Seed + 1, DType.Float64);
        // The first-order gradients, flattened and concatenated, as a function of the inputs.
        Tensor GradOfF(Tensor[] xs)
        {
            var outs = f(xs);
            var gs = AutoGrad.Grad([outs], xs.Where(t => t.RequiresGrad).ToArray(), [v], createGraph: true, allowUnused: true);
            var parts = gs.Select((g, i) => g ?? Tensor.ZerosLike(wrt[i])).Select(g => g.Reshape(-1)).ToArray();
            return Functional.Cat(parts);
        }
        return Check(GradOfF, options, inputs);
    }

    private static Tensor OneHot(int[] shape, int k)
    {
        var t = Tensor.Zeros(shape, DType.Float64);
        t.Data<double>()[k] = 1;
        return t;
    }

    /// <summary>J^T v for each checked input, as arrays (zeros where an input is unused).</summary>
    private static double[][] VectorJacobian(Func<Tensor[], Tensor> f, Tensor[] inputs, int[] wrt, Tensor v)
    {
        var y = f(inputs);
        var wrtT = wrt.Select(i => inputs[i]).ToArray();
        var g = y.RequiresGrad ? AutoGrad.Grad([y], wrtT, [v.To(y.DType)], allowUnused: true) : new Tensor?[wrt.Length];
        return g.Select((t, i) => t?.ToDoubleArray() ?? new double[wrtT[i].Numel]).ToArray();
    }

    /// <summary>(f(x + eps u) - f(x - eps u)) / 2 eps, perturbing <paramref name="x"/> in place and restoring it.</summary>
    private static double[] Difference(Func<Tensor[], Tensor> f, Tensor[] inputs, Tensor x, double[] u, double eps)
    {
        var xs = x.Data<double>();
        var saved = (double[])xs.Clone();
        // Not under NoGrad: f may itself differentiate (second-order checks).
        double[] Eval(double sign)
        {
            for (int k = 0; k < xs.Length; k++) xs[k] = saved[k] + sign * eps * u[k];
            return f(inputs).ToDoubleArray();
        }
        double[] plus = Eval(1), minus = Eval(-1);
        saved.CopyTo(xs, 0);
        for (int j = 0; j < plus.Length; j++) plus[j] = (plus[j] - minus[j]) / (2 * eps);
        return plus;
    }

    private sealed class Worst(int input)
    {
        private double maxAbs, maxRel, numeric, analytic;
        private long element = -1, output = -1;
        private bool passed = true, any;

        public void Add(long k, long j, double num, double an, GradCheckOptions o)
        {
            double abs = Math.Abs(num - an), rel = abs / Math.Max(Math.Abs(num), 1e-12);
            bool ok = abs <= o.Atol + o.Rtol * Math.Abs(num) && !double.IsNaN(an) == !double.IsNaN(num);
            // Track the element that fails worst, or, if all pass, the one with the largest error.
            if (!any || (!ok && passed) || (ok == passed && abs > maxAbs) || double.IsNaN(abs))
            {
                element = k; output = j; numeric = num; analytic = an;
            }
            any = true;
            maxAbs = Math.Max(maxAbs, double.IsNaN(abs) ? double.PositiveInfinity : abs);
            maxRel = Math.Max(maxRel, double.IsNaN(rel) ? double.PositiveInfinity : rel);
            passed &= ok;
        }

        public GradCheckInputReport Report() => new(input, maxAbs, maxRel, element, output, numeric, analytic, passed);
    }
}
