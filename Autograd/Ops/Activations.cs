using System.Numerics;
using System.Numerics.Tensors;
using Autograd.Backends;

namespace Autograd;

public static partial class Functional
{
    /// <summary>1 / (1 + e^-x).</summary>
    public static Tensor Sigmoid(Tensor x)
    {
        var r = Kernels.Spans("Sigmoid", x, (s, d) => TensorPrimitives.Sigmoid(s, d), (s, d) => TensorPrimitives.Sigmoid(s, d));
        return AutoGrad.Record(r, "Sigmoid", Saves.Output, g => [g * r * (1.0 - r)], x);
    }

    /// <summary>Hyperbolic tangent.</summary>
    public static Tensor Tanh(Tensor x)
    {
        var r = Kernels.Unary("Tanh", UnaryKernel.Tanh, x);
        return AutoGrad.Record(r, "Tanh", Saves.Output, g => [g * (1.0 - r * r)], x);
    }

    /// <summary>max(x, 0). Sub-gradient convention: relu'(0) = 0.</summary>
    public static Tensor Relu(Tensor x)
    {
        // TensorPrimitives.Max is vectorized and, like torch.relu, keeps NaN.
        var r = Kernels.Spans("Relu", x, (s, d) => TensorPrimitives.Max(s, 0f, d), (s, d) => TensorPrimitives.Max(s, 0.0, d));
        return AutoGrad.Record(r, "Relu", Saves.Output, g => [ReluBackward(g, r)], x);
    }

    /// <summary>max(x, 0), as <c>F.relu(x, inplace)</c>: with <paramref name="inplace"/>, written over x itself (returned) where
    /// that is allowed: when no gradient is recorded for x, or when <see cref="Tensor.Relu_"/> can record it (x is the fresh
    /// output of a recorded op, as after a convolution or batch norm, with no view or other use yet). Otherwise, and when
    /// an ONNX export traces the call, a new tensor and x is left as it was.</summary>
    public static Tensor Relu(Tensor x, bool inplace) => inplace && x.MayOverwrite ? x.Relu_() : Relu(x);

    /// <summary>max(x, 0) written over <paramref name="x"/>, a tensor made by a recorded op (checked by <see
    /// cref="Tensor.Relu_"/>): its history moves to a new tensor over the same storage, the relu's input, and x becomes the
    /// relu's output. The backward reads only the output, as <see cref="Relu(Tensor)"/>'s.</summary>
    internal static Tensor ReluInPlace(Tensor x)
    {
        var before = new Tensor(x.Storage, x.Dims, x.DType, x.Version) { GradFn = x.GradFn };
        x.GradFn = null;
        x.ReluKernel();
        return AutoGrad.Record(x, "Relu_", Saves.Output, g => [ReluBackward(g, x)], before);
    }

    /// <summary>g where the relu output r is positive (exactly where x &gt; 0), else 0, in one pass, into g itself when
    /// backward allows it (<see cref="AutoGrad.Overwrites"/>). It is linear in g and piecewise constant in r, so its
    /// derivative is itself applied to the incoming gradient.</summary>
    private static Tensor ReluBackward(Tensor g, Tensor r)
    {
        var d = AutoGrad.Overwrites(g) ? g : Tensor.Uninitialized(g.DType, g.Dims);
        if (g.DType == DType.Float32) Kernels.KeepWherePositive<float>(g.Data<float>(), r.Data<float>(), d.Data<float>());
        else Kernels.KeepWherePositive<double>(g.Data<double>(), r.Data<double>(), d.Data<double>());
        return AutoGrad.Record(d, "ReluBackward", Saves.None, gg => [ReluBackward(gg, r)], g);
    }

    private struct LeakyMap(double slope) : IMap
    {
        public readonly T F<T>(T x) where T : unmanaged, IFloatingPointIeee754<T> => x > T.Zero ? x : x * T.CreateTruncating(slope);
    }

    /// <summary>x for x &gt; 0, else negativeSlope * x. At 0 the gradient is negativeSlope (as PyTorch).</summary>
    public static Tensor LeakyRelu(Tensor x, double negativeSlope = 0.01)
    {
        var r = AutoGrad.Record(Kernels.Map("LeakyRelu", x, new LeakyMap(negativeSlope)), "LeakyRelu", g => [g * ((x > 0) * (1 - negativeSlope) + negativeSlope)], x);
        return OpTrace.Active ? OpTrace.Add("LeakyRelu", r, [x], ("alpha", negativeSlope)) : r;
    }

    private struct EluMap(double alpha, double scale) : IMap
    {
        public readonly T F<T>(T x) where T : unmanaged, IFloatingPointIeee754<T> =>
            T.CreateTruncating(scale) * (x > T.Zero ? x : T.CreateTruncating(alpha) * (T.Exp(x) - T.One));
    }

    /// <summary>x for x &gt; 0, else alpha * (e^x - 1).</summary>
    public static Tensor Elu(Tensor x, double alpha = 1.0) => ScaledElu("Elu", x, alpha, 1.0);

    /// <summary>SELU with PyTorch's constants: scale * elu(x, alpha).</summary>
    public static Tensor Selu(Tensor x) => ScaledElu("Selu", x, 1.6732632423543772848170429916717, 1.0507009873554804934193349852946);

    private static Tensor ScaledElu(string op, Tensor x, double alpha, double scale)
    {
        var r = Kernels.Map(op, x, new EluMap(alpha, scale));
        // Below 0 the derivative is scale * alpha * e^x = r + scale * alpha; written with r so nothing overflows.
        AutoGrad.Record(r, op, Saves.Inputs | Saves.Output, g => [g * Where(x > 0, Tensor.Full([], scale, x.DType), r + scale * alpha)], x);
        return OpTrace.Active ? OpTrace.Add(op, r, [x], ("alpha", alpha), ("scale", scale)) : r;
    }

    /// <summary>GELU: x * Φ(x) exactly (<paramref name="approximate"/> = "none") or with the tanh approximation ("tanh").</summary>
    public static Tensor Gelu(Tensor x, string approximate = "none") => approximate switch
    {
        "none" => 0.5 * x * (1.0 + Erf(x * (1 / Math.Sqrt(2)))),
        "tanh" => 0.5 * x * (1.0 + Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * Pow(x, 3)))),
        _ => throw new ArgumentException($"Gelu: approximate must be \"none\" or \"tanh\", got \"{approximate}\""),
    };

    /// <summary>x * sigmoid(x) (also called swish).</summary>
    public static Tensor Silu(Tensor x) => x * Sigmoid(x);

    private struct SoftplusMap(double beta, double threshold) : IMap
    {
        public readonly T F<T>(T x) where T : unmanaged, IFloatingPointIeee754<T>
        {
            T bx = x * T.CreateTruncating(beta);
            return bx > T.CreateTruncating(threshold) ? x : T.LogP1(T.Exp(bx)) / T.CreateTruncating(beta);
        }
    }

    /// <summary>log(1 + e^(beta x)) / beta, the identity where beta x &gt; <paramref name="threshold"/> (as PyTorch).</summary>
    public static Tensor Softplus(Tensor x, double beta = 1, double threshold = 20) => AutoGrad.Record(
        Kernels.Map("Softplus", x, new SoftplusMap(beta, threshold)), "Softplus",
        // Above the threshold the forward is the identity, so the gradient is exactly g there (as PyTorch).
        g => [g * Where(x * beta > threshold, Tensor.Full([], 1, x.DType), Sigmoid(x * beta))], x);

    private struct HardSigmoidMap : IMap
    {
        public readonly T F<T>(T x) where T : unmanaged, IFloatingPointIeee754<T> =>
            T.Clamp(x / T.CreateTruncating(6) + T.CreateTruncating(0.5), T.Zero, T.One);
    }

    /// <summary>relu6(x + 3) / 6. The gradient is 1/6 strictly inside (-3, 3), else 0.</summary>
    public static Tensor HardSigmoid(Tensor x) => AutoGrad.Record(
        Kernels.Map("HardSigmoid", x, new HardSigmoidMap()), "HardSigmoid", g => [g * ((x > -3) * (x < 3)) * (1.0 / 6)], x);

    private struct HardSwishMap : IMap
    {
        public readonly T F<T>(T x) where T : unmanaged, IFloatingPointIeee754<T> =>
            x * T.Clamp(x / T.CreateTruncating(6) + T.CreateTruncating(0.5), T.Zero, T.One);
    }

    /// <summary>x * hardsigmoid(x). Its gradient is 0 below -3, x/3 + 1/2 on [-3, 3) and 1 from 3 on (as PyTorch 1.13).</summary>
    public static Tensor HardSwish(Tensor x) => AutoGrad.Record(Kernels.Map("HardSwish", x, new HardSwishMap()), "HardSwish",
        g => [g * Where(x < -3, Tensor.Full([], 0, x.DType), Where(x < 3, x * (1.0 / 3) + 0.5, Tensor.Full([], 1, x.DType)))], x);

    /// <summary>x * tanh(softplus(x)).</summary>
    public static Tensor Mish(Tensor x) => x * Tanh(Softplus(x));

    /// <summary>Softmax along <paramref name="dim"/>, computed as exp(x - max) / sum so large logits cannot overflow.</summary>
    public static Tensor Softmax(Tensor x, int dim = -1)
    {
        Tensor r;
        using (AutoGrad.NoGrad())
        {
            var e = Exp(x - Max(x, dim, keepDim: true));
            r = e / Sum(e, dim, keepDim: true);
        }
        AutoGrad.Record(r, "Softmax", Saves.Output, g => [r * (g - Sum(g * r, dim, keepDim: true))], x);
        return OpTrace.Active ? OpTrace.Add("Softmax", r, [x], ("axis", Shape.Dim("Softmax", dim, x.Rank))) : r;
    }

    /// <summary>log(softmax(x)) along <paramref name="dim"/>, computed as x - logsumexp(x).</summary>
    public static Tensor LogSoftmax(Tensor x, int dim = -1)
    {
        Tensor r;
        using (AutoGrad.NoGrad()) r = x - LogSumExp(x, dim, keepDim: true);
        AutoGrad.Record(r, "LogSoftmax", Saves.Output, g => [g - Exp(r) * Sum(g, dim, keepDim: true)], x);
        return OpTrace.Active ? OpTrace.Add("LogSoftmax", r, [x], ("axis", Shape.Dim("LogSoftmax", dim, x.Rank))) : r;
    }
}

public sealed partial class Tensor
{
    /// <summary>See <see cref="Functional.Relu(Tensor)"/>.</summary>
    public Tensor Relu() => Functional.Relu(this);
    /// <summary>See <see cref="Functional.Sigmoid"/>.</summary>
    public Tensor Sigmoid() => Functional.Sigmoid(this);
    /// <summary>See <see cref="Functional.Tanh"/>.</summary>
    public Tensor Tanh() => Functional.Tanh(this);
    /// <summary>See <see cref="Functional.Softmax"/>.</summary>
    public Tensor Softmax(int dim = -1) => Functional.Softmax(this, dim);
    /// <summary>See <see cref="Functional.LogSoftmax"/>.</summary>
    public Tensor LogSoftmax(int dim = -1) => Functional.LogSoftmax(this, dim);
}
