using System.Numerics;
using Autograd.Backends;

namespace Autograd;

/// <summary>Differentiable ops in the style of <c>torch</c> / <c>torch.nn.functional</c>.
/// <c>using static Autograd.Functional;</c> makes them read like PyTorch.</summary>
public static partial class Functional
{
    // Every rule below maps the output gradient g to one gradient per input. Gradients of broadcast
    // inputs are reduced back to the input's shape in one place: SumTo.

    /// <summary>Sums a broadcast gradient back to <paramref name="shape"/>.</summary>
    internal static Tensor SumTo(Tensor g, int[] shape)
    {
        if (Shape.Same(g.Dims, shape)) return g;
        int lead = g.Rank - shape.Length;
        var dims = new List<int>();
        for (int i = 0; i < g.Rank; i++)
            if (i < lead || (shape[i - lead] == 1 && g.Dims[i] != 1)) dims.Add(i);
        return Sum(g, dims.ToArray(), keepDim: true).Reshape(shape);
    }

    private static Tensor Scalar(Tensor like, double v) => Tensor.Scalar(v, like.DType);

    /// <summary>Elementwise a + b with broadcasting.</summary>
    public static Tensor Add(Tensor a, Tensor b) => AutoGrad.Record(Kernels.Binary("Add", BinOp.Add, a, b), "Add", Saves.None,
        g => [SumTo(g, a.Dims), SumTo(g, b.Dims)], a, b);

    /// <summary>Elementwise a - b with broadcasting.</summary>
    public static Tensor Sub(Tensor a, Tensor b) => AutoGrad.Record(Kernels.Binary("Sub", BinOp.Sub, a, b), "Sub", Saves.None,
        g => [SumTo(g, a.Dims), b.RequiresGrad ? SumTo(-g, b.Dims) : null], a, b);

    /// <summary>Elementwise a * b with broadcasting.</summary>
    public static Tensor Mul(Tensor a, Tensor b) => AutoGrad.Record(Kernels.Binary("Mul", BinOp.Mul, a, b), "Mul",
        g => [a.RequiresGrad ? SumTo(g * b, a.Dims) : null, b.RequiresGrad ? SumTo(g * a, b.Dims) : null], a, b);

    /// <summary>Elementwise a / b with broadcasting.</summary>
    public static Tensor Div(Tensor a, Tensor b) => AutoGrad.Record(Kernels.Binary("Div", BinOp.Div, a, b), "Div",
        g => [a.RequiresGrad ? SumTo(g / b, a.Dims) : null, b.RequiresGrad ? SumTo(-g * a / (b * b), b.Dims) : null], a, b);

    /// <summary>Elementwise a^b with broadcasting.</summary>
    public static Tensor Pow(Tensor a, Tensor b)
    {
        var r = Kernels.Binary("Pow", BinOp.Pow, a, b);
        return AutoGrad.Record(r, "Pow", Saves.Inputs | Saves.Output, g => [
            a.RequiresGrad ? SumTo(g * b * Pow(a, b - 1), a.Dims) : null,
            b.RequiresGrad ? SumTo(g * r * Log(a), b.Dims) : null], a, b);
    }

    /// <summary>Elementwise x^p for a scalar exponent.</summary>
    public static Tensor Pow(Tensor x, double p)
    {
        var r = p == 2 ? Kernels.Binary("Pow", BinOp.Mul, x, x)
            : Kernels.Spans("Pow", x, (s, d) => Kernels.Pow(s, (float)p, d), (s, d) => Kernels.Pow(s, p, d), split: false);
        AutoGrad.Record(r, "Pow", g => [p == 0 ? Tensor.ZerosLike(x) : g * p * Pow(x, p - 1)], x);
        return OpTrace.Active ? OpTrace.Add("Pow", r, [x, Tensor.Scalar(p, x.DType)]) : r;
    }

    /// <summary>Elementwise -x.</summary>
    public static Tensor Neg(Tensor x) => AutoGrad.Record(
        Kernels.Spans("Neg", x, (s, d) => System.Numerics.Tensors.TensorPrimitives.Negate(s, d), (s, d) => System.Numerics.Tensors.TensorPrimitives.Negate(s, d)),
        "Neg", Saves.None, g => [-g], x);

    /// <summary>Elementwise e^x.</summary>
    public static Tensor Exp(Tensor x)
    {
        var r = Kernels.Unary("Exp", UnaryKernel.Exp, x);
        return AutoGrad.Record(r, "Exp", Saves.Output, g => [g * r], x);
    }

    /// <summary>Elementwise natural logarithm.</summary>
    public static Tensor Log(Tensor x) => AutoGrad.Record(Kernels.Unary("Log", UnaryKernel.Log, x), "Log", g => [g / x], x);

    /// <summary>Elementwise square root.</summary>
    public static Tensor Sqrt(Tensor x)
    {
        var r = Kernels.Unary("Sqrt", UnaryKernel.Sqrt, x);
        return AutoGrad.Record(r, "Sqrt", Saves.Output, g => [g * 0.5 / r], x);
    }

    /// <summary>Elementwise 1/sqrt(x).</summary>
    public static Tensor Rsqrt(Tensor x)
    {
        Tensor r;
        using (AutoGrad.NoGrad()) r = 1.0 / Sqrt(x);
        return AutoGrad.Record(r, "Rsqrt", Saves.Output, g => [g * -0.5 * r * r * r], x);
    }

    /// <summary>Elementwise error function.</summary>
    public static Tensor Erf(Tensor x) => AutoGrad.Record(Kernels.Unary("Erf", UnaryKernel.Erf, x), "Erf",
        g => [g * (2 / Math.Sqrt(Math.PI)) * Exp(-(x * x))], x);

    private struct AbsMap : IMap { public readonly T F<T>(T x) where T : unmanaged, IFloatingPointIeee754<T> => T.Abs(x); }
    private struct SignMap : IMap { public readonly T F<T>(T x) where T : unmanaged, IFloatingPointIeee754<T> => T.IsNaN(x) ? x : T.CreateTruncating(T.Sign(x)); }

    /// <summary>Elementwise |x|. Sub-gradient convention: abs'(0) = 0 (as PyTorch).</summary>
    public static Tensor Abs(Tensor x) => AutoGrad.Record(Kernels.Map("Abs", x, new AbsMap()), "Abs", g => [g * Sign(x)], x);

    /// <summary>Elementwise sign (-1, 0, 1). Its gradient is zero everywhere.</summary>
    public static Tensor Sign(Tensor x) => AutoGrad.Record(Kernels.Map("Sign", x, new SignMap()), "Sign", Saves.None, g => [Tensor.ZerosLike(x)], x);

    private struct ClampMap(double lo, double hi) : IMap
    {
        public readonly T F<T>(T x) where T : unmanaged, IFloatingPointIeee754<T> =>
            T.IsNaN(x) ? x : T.Min(T.Max(x, T.CreateTruncating(lo)), T.CreateTruncating(hi));
    }

    /// <summary>Clamps into [min, max] (either bound optional). The gradient passes where min &lt;= x &lt;= max, as in PyTorch.</summary>
    public static Tensor Clamp(Tensor x, double? min = null, double? max = null)
    {
        if (min == null && max == null) throw new ArgumentException("Clamp: at least one of min and max must be given");
        double lo = min ?? double.NegativeInfinity, hi = max ?? double.PositiveInfinity;
        var r = AutoGrad.Record(Kernels.Map("Clamp", x, new ClampMap(lo, hi)), "Clamp", g => [g * ((x >= lo) * (x <= hi))], x);
        return OpTrace.Active ? OpTrace.Add("Clamp", r, [x], ("min", lo), ("max", hi)) : r;
    }

    /// <summary>Elementwise maximum with broadcasting; at ties each input gets half the gradient (as PyTorch).</summary>
    public static Tensor Maximum(Tensor a, Tensor b) => MaxMin("Maximum", BinOp.Max, a, b);

    /// <summary>Elementwise minimum with broadcasting; at ties each input gets half the gradient (as PyTorch).</summary>
    public static Tensor Minimum(Tensor a, Tensor b) => MaxMin("Minimum", BinOp.Min, a, b);

    private static Tensor MaxMin(string op, BinOp kind, Tensor a, Tensor b) => AutoGrad.Record(Kernels.Binary(op, kind, a, b), op, g =>
    {
        var wa = (kind == BinOp.Max ? Gt(a, b) : Lt(a, b)) + Eq(a, b) * 0.5;
        return [SumTo(g * wa, a.Dims), SumTo(g * (1.0 - wa), b.Dims)];
    }, a, b);

    /// <summary>Picks <paramref name="a"/> where <paramref name="condition"/> is non-zero, else <paramref name="b"/> (broadcasting all three).</summary>
    public static Tensor Where(Tensor condition, Tensor a, Tensor b)
    {
        Shape.SameDType("Where", a, b);
        var shape = Shape.Broadcast("Where", Shape.Broadcast("Where", condition.Dims, a.Dims), b.Dims);
        Tensor c, r;
        using (AutoGrad.NoGrad())
        {
            c = Ne(condition.DType == a.DType ? condition : condition.To(a.DType), Scalar(a, 0)).Expand(shape);
            var (ea, eb) = (a.Expand(shape), b.Expand(shape));
            r = Tensor.Empty(a.DType, shape);
            for (int i = 0; i < r.Numel; i++) Set(r, i, c.At(i) != 0 ? ea.At(i) : eb.At(i));
        }
        return AutoGrad.Record(r, "Where", Saves.None, g => [null, SumTo(g * c, a.Dims), SumTo(g * (1.0 - c), b.Dims)], condition, a, b);
    }

    internal static void Set(Tensor t, int i, double v)
    {
        switch (t.DType)
        {
            case DType.Float32: t.Data<float>()[i] = (float)v; break;
            case DType.Float64: t.Data<double>()[i] = v; break;
            default: t.Data<long>()[i] = (long)v; break;
        }
    }

    /// <summary>1 where a == b, else 0, in the inputs' dtype (Int64 inputs compare exactly). Not differentiable.</summary>
    public static Tensor Eq(Tensor a, Tensor b) => Compare("Eq", BinOp.Eq, a, b);
    /// <summary>1 where a != b, else 0.</summary>
    public static Tensor Ne(Tensor a, Tensor b) => Compare("Ne", BinOp.Ne, a, b);
    /// <summary>1 where a &lt; b, else 0.</summary>
    public static Tensor Lt(Tensor a, Tensor b) => Compare("Lt", BinOp.Lt, a, b);
    /// <summary>1 where a &lt;= b, else 0.</summary>
    public static Tensor Le(Tensor a, Tensor b) => Compare("Le", BinOp.Le, a, b);
    /// <summary>1 where a &gt; b, else 0.</summary>
    public static Tensor Gt(Tensor a, Tensor b) => Compare("Gt", BinOp.Gt, a, b);
    /// <summary>1 where a &gt;= b, else 0.</summary>
    public static Tensor Ge(Tensor a, Tensor b) => Compare("Ge", BinOp.Ge, a, b);

    private static Tensor Compare(string op, BinOp kind, Tensor a, Tensor b)
    {
        Shape.SameDType(op, a, b);
        // Class indices stay far below 2^53, where Float64 represents every Int64 exactly.
        var r = a.DType == DType.Int64
            ? Kernels.Binary(op, kind, a.To(DType.Float64), b.To(DType.Float64)).To(DType.Int64)
            : Kernels.Binary(op, kind, a, b);
        return OpTrace.Active ? OpTrace.Add(op, r, [a, b]) : r;
    }

    /// <summary>Converts to another dtype; differentiable between float types (the gradient is converted back).</summary>
    public static Tensor To(Tensor x, DType dtype)
    {
        if (x.DType == dtype) return x;
        var r = Tensor.Empty(dtype, x.Dims);
        switch (dtype)
        {
            case DType.Float32: x.ToFloatArray().CopyTo(r.Data<float>(), 0); break;
            case DType.Float64: x.ToDoubleArray().CopyTo(r.Data<double>(), 0); break;
            default: x.ToLongArray().CopyTo(r.Data<long>(), 0); break;
        }
        if (dtype.IsFloat() && x.DType.IsFloat()) AutoGrad.Record(r, "To", Saves.None, g => [g.To(x.DType)], x);
        return OpTrace.Active ? OpTrace.Add("To", r, [x]) : r;
    }
}

public sealed partial class Tensor
{
    /// <summary>Elementwise sum with broadcasting.</summary>
    public static Tensor operator +(Tensor a, Tensor b) => Functional.Add(a, b);
    /// <summary>Elementwise difference with broadcasting.</summary>
    public static Tensor operator -(Tensor a, Tensor b) => Functional.Sub(a, b);
    /// <summary>Elementwise product with broadcasting.</summary>
    public static Tensor operator *(Tensor a, Tensor b) => Functional.Mul(a, b);
    /// <summary>Elementwise quotient with broadcasting.</summary>
    public static Tensor operator /(Tensor a, Tensor b) => Functional.Div(a, b);
    /// <summary>Elementwise negation.</summary>
    public static Tensor operator -(Tensor a) => Functional.Neg(a);
    /// <summary>Adds a scalar.</summary>
    public static Tensor operator +(Tensor a, double s) => a + Scalar(s, a.DType);
    /// <summary>Adds a scalar.</summary>
    public static Tensor operator +(double s, Tensor a) => Scalar(s, a.DType) + a;
    /// <summary>Subtracts a scalar.</summary>
    public static Tensor operator -(Tensor a, double s) => a - Scalar(s, a.DType);
    /// <summary>Subtracts from a scalar.</summary>
    public static Tensor operator -(double s, Tensor a) => Scalar(s, a.DType) - a;
    /// <summary>Multiplies by a scalar.</summary>
    public static Tensor operator *(Tensor a, double s) => a * Scalar(s, a.DType);
    /// <summary>Multiplies by a scalar.</summary>
    public static Tensor operator *(double s, Tensor a) => Scalar(s, a.DType) * a;
    /// <summary>Divides by a scalar.</summary>
    public static Tensor operator /(Tensor a, double s) => a / Scalar(s, a.DType);
    /// <summary>Divides a scalar by each element.</summary>
    public static Tensor operator /(double s, Tensor a) => Scalar(s, a.DType) / a;
    /// <summary>Mask (1/0) of a &lt; b.</summary>
    public static Tensor operator <(Tensor a, Tensor b) => Functional.Lt(a, b);
    /// <summary>Mask (1/0) of a &gt; b.</summary>
    public static Tensor operator >(Tensor a, Tensor b) => Functional.Gt(a, b);
    /// <summary>Mask (1/0) of a &lt;= b.</summary>
    public static Tensor operator <=(Tensor a, Tensor b) => Functional.Le(a, b);
    /// <summary>Mask (1/0) of a &gt;= b.</summary>
    public static Tensor operator >=(Tensor a, Tensor b) => Functional.Ge(a, b);
    /// <summary>Mask (1/0) of a &lt; s.</summary>
    public static Tensor operator <(Tensor a, double s) => Functional.Lt(a, Scalar(s, a.DType));
    /// <summary>Mask (1/0) of a &gt; s.</summary>
    public static Tensor operator >(Tensor a, double s) => Functional.Gt(a, Scalar(s, a.DType));
    /// <summary>Mask (1/0) of a &lt;= s.</summary>
    public static Tensor operator <=(Tensor a, double s) => Functional.Le(a, Scalar(s, a.DType));
    /// <summary>Mask (1/0) of a &gt;= s.</summary>
    public static Tensor operator >=(Tensor a, double s) => Functional.Ge(a, Scalar(s, a.DType));

    /// <summary>See <see cref="Functional.Exp"/>.</summary>
    public Tensor Exp() => Functional.Exp(this);
    /// <summary>See <see cref="Functional.Log"/>.</summary>
    public Tensor Log() => Functional.Log(this);
    /// <summary>See <see cref="Functional.Sqrt"/>.</summary>
    public Tensor Sqrt() => Functional.Sqrt(this);
    /// <summary>See <see cref="Functional.Rsqrt"/>.</summary>
    public Tensor Rsqrt() => Functional.Rsqrt(this);
    /// <summary>See <see cref="Functional.Abs"/>.</summary>
    public Tensor Abs() => Functional.Abs(this);
    /// <summary>See <see cref="Functional.Sign"/>.</summary>
    public Tensor Sign() => Functional.Sign(this);
    /// <summary>See <see cref="Functional.Pow(Tensor, double)"/>.</summary>
    public Tensor Pow(double p) => Functional.Pow(this, p);
    /// <summary>See <see cref="Functional.Pow(Tensor, Tensor)"/>.</summary>
    public Tensor Pow(Tensor p) => Functional.Pow(this, p);
    /// <summary>See <see cref="Functional.Clamp"/>.</summary>
    public Tensor Clamp(double? min = null, double? max = null) => Functional.Clamp(this, min, max);
    /// <summary>See <see cref="Functional.To"/>.</summary>
    public Tensor To(DType dtype) => Functional.To(this, dtype);
    /// <summary>Mask (1/0) of this == other.</summary>
    public Tensor Eq(Tensor other) => Functional.Eq(this, other);
    /// <summary>Mask (1/0) of this == s.</summary>
    public Tensor Eq(double s) => Functional.Eq(this, Scalar(s, DType));
    /// <summary>Mask (1/0) of this != other.</summary>
    public Tensor Ne(Tensor other) => Functional.Ne(this, other);

    /// <summary>A copy with its own storage; the gradient flows through unchanged (as <c>clone()</c>).</summary>
    public Tensor Clone() => AutoGrad.Record(new Tensor((Array)Storage.Clone(), (int[])Dims.Clone(), DType), "Clone", Saves.None, g => [g], this);

    /// <summary>A tensor sharing this one's values, cut from the graph.</summary>
    public Tensor Detach() => ShareStorage(Dims);

    /// <summary>Clears <see cref="Grad"/> (PyTorch's default <c>set_to_none</c>).</summary>
    public void ZeroGrad() => Grad = null;

    /// <summary>Backpropagates from this tensor, accumulating into the <see cref="Grad"/> of every leaf that requires grad.</summary>
    /// <param name="gradient">The output gradient; required unless this tensor has one element.</param>
    /// <param name="retainGraph">Keep saved tensors for another backward through the same graph.</param>
    /// <param name="createGraph">Record the backward pass, so gradients can be differentiated again.</param>
    public void Backward(Tensor? gradient = null, bool retainGraph = false, bool createGraph = false) =>
        AutoGrad.Run([this], gradient == null ? null : [gradient], retainGraph || createGraph, createGraph, accumulate: true, wanted: null);
}
