using static Autograd.Functional;

namespace Autograd.Testing;

/// <summary>One registry entry: an op (named as its <see cref="Autograd.Functional"/> method), how to draw a
/// case for it, and what it supports.</summary>
/// <param name="Name">The Functional method this entry covers.</param>
/// <param name="Make">Builds a case from random parameters.</param>
/// <param name="SecondOrder">Whether grad-of-grad is checked.</param>
/// <param name="Float32Tol">Relative tolerance of float32 against float64 forward values.</param>
public sealed record OpSpec(string Name, Func<Draw, OpCase> Make, bool SecondOrder = true, double Float32Tol = 1e-4)
{
    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>Every public differentiable op with its input generator. A test fails when a Functional
/// method has no entry here (see <see cref="NonDifferentiable"/> for the exceptions).</summary>
public static class OpRegistry
{
    /// <summary>A process group of one, for checking the synchronized ops in a single process.</summary>
    private sealed class OneProcess : IProcessGroup
    {
        public static readonly OneProcess Instance = new();
        public int Rank => 0;
        public int WorldSize => 1;
        public void AllReduceSum(double[] values) { }
    }

    /// <summary>Public Functional methods that return masks or indices, with no gradient by design.</summary>
    public static readonly string[] NonDifferentiable = ["Eq", "Ne", "Lt", "Le", "Gt", "Ge", "ArgMax", "ArgMin"];

    private static OpSpec Unary(string name, Func<Tensor, Tensor> f, Values kind = Values.Normal, bool secondOrder = true, double tol = 1e-4) =>
        new(name, d => new OpCase(t => f(t[0]), new Input(d.Shape(), kind)), secondOrder, tol);

    private static OpSpec Binary(string name, Func<Tensor, Tensor, Tensor> f, Values ka = Values.Normal, Values kb = Values.Normal) =>
        new(name, d =>
        {
            var (a, b) = d.BroadcastPair(d.Shape());
            return new OpCase(t => f(t[0], t[1]), new Input(a, ka), new Input(b, kb));
        });

    private static OpSpec Loss(string name, Func<Tensor, Tensor, Reduction, Tensor> f, Values ki = Values.Normal, Values kt = Values.Normal, bool targetGrad = true) =>
        new(name, d => new OpCase(t => f(t[0], t[1], (Reduction)d.PickA(3)), new Input(d.Shape(1), ki), new Input(d.Shape(1), kt, targetGrad)));

    /// <summary>Random class indices in [0, classes); with <paramref name="withIgnored"/> about a quarter (never the first) are -100, the default ignore index.</summary>
    private static Tensor Classes(Draw d, int[] shape, int classes, bool withIgnored)
    {
        var g = new Generator(d.Seed + 7);
        var v = new long[shape.Aggregate(1, (a, b) => a * b)];
        for (int i = 0; i < v.Length; i++) v[i] = withIgnored && i > 0 && g.NextDouble() < 0.25 ? -100 : g.NextLong(classes);
        return Tensor.From(v, shape);
    }

    /// <summary>The registry.</summary>
    public static readonly OpSpec[] All =
    [
        // ---- elementwise arithmetic (broadcast pairs) ----
        Binary("Add", (a, b) => a + b),
        Binary("Sub", (a, b) => a - b),
        Binary("Mul", (a, b) => a * b),
        Binary("Div", (a, b) => a / b, Values.Normal, Values.Positive),
        Binary("Pow", Pow, Values.Positive, Values.Normal),
        new("Pow", d => new OpCase(t => Pow(t[0], new[] { 3.0, 0.5, -1.5, 2.0 }[d.PickA(4)]), new Input(d.Shape(), Values.Positive))),
        Binary("Maximum", Maximum, Values.Distinct, Values.DistinctShifted),
        Binary("Minimum", Minimum, Values.Distinct, Values.DistinctShifted),
        new("Where", d =>
        {
            var (a, b) = d.BroadcastPair(d.Shape());
            var cond = Tensor.Rand(d.Shape(), d.Seed) > 0.5;
            return new OpCase(t => Where(t[0], t[1], t[2]), new Input(cond.Shape, Grad: false, Fixed: cond), new Input(a), new Input(b));
        }),
        Unary("Neg", x => -x),
        Unary("Exp", Exp),
        Unary("Log", Log, Values.Positive),
        Unary("Sqrt", Sqrt, Values.Positive),
        Unary("Rsqrt", Rsqrt, Values.Positive),
        Unary("Erf", Erf),
        Unary("Abs", Abs, Values.Distinct),
        Unary("Sign", x => Sign(x) * x, Values.Distinct),
        new("Clamp", d => new OpCase(t => d.PickA(3) switch { 0 => Clamp(t[0], -0.5, 0.5), 1 => Clamp(t[0], min: -0.5), _ => Clamp(t[0], max: 0.5) },
            new Input(d.Shape(), Values.Distinct))),
        new("To", d => new OpCase(t => To(t[0] * 2.0, DType.Float64) * 3.0, new Input(d.Shape()))),

        // ---- reductions ----
        new("Sum", d => new OpCase(t => Sum(t[0], Dims(d), d.PickB(2) == 1), new Input(d.Shape()))),
        new("Mean", d => new OpCase(t => Mean(t[0], Dims(d), d.PickB(2) == 1), new Input(d.Shape()))),
        new("Var", d => new OpCase(t => Var(t[0], Dims(d), correction: d.PickB(2), keepDim: d.PickB(4) >= 2), new Input(Larger(d)))),
        new("Std", d => new OpCase(t => Std(t[0], Dims(d), correction: d.PickB(2), keepDim: d.PickB(4) >= 2), new Input(Larger(d)))),
        new("Max", d => new OpCase(t => Max(t[0], Dims(d), d.PickB(2) == 1), new Input(d.Shape(), Values.Distinct))),
        new("Min", d => new OpCase(t => Min(t[0], Dims(d), d.PickB(2) == 1), new Input(d.Shape(), Values.Distinct))),
        new("LogSumExp", d => new OpCase(t => LogSumExp(t[0], Dims(d), d.PickB(2) == 1), new Input(d.Shape(1)))),

        // ---- shape ops ----
        new("Reshape", d => new OpCase(t => Reshape(t[0], -1) * Tensor.Arange(t[0].Numel, t[0].DType), new Input(d.Shape()))),
        new("Flatten", d => new OpCase(t => Flatten(t[0], d.PickA(Math.Max(1, d.Rank))) * 2.0, new Input(d.Shape()))),
        new("Squeeze", d => new OpCase(t => Squeeze(t[0], d.Rank == 0 ? null : d.PickA(d.Rank)) * 2.0, new Input(d.Shape().Select((s, i) => i % 2 == 0 ? 1 : s).ToArray()))),
        new("Unsqueeze", d => new OpCase(t => Unsqueeze(t[0], d.PickA(d.Rank + 1)) * 2.0, new Input(d.Shape()))),
        new("Permute", d => new OpCase(t => Permute(t[0], Perm(d, d.Shape(1).Length)) * Tensor.Arange(t[0].Numel, t[0].DType).Reshape(Permuted(d)), new Input(d.Shape(1)))),
        new("Transpose", d => new OpCase(t => Transpose(t[0], d.PickA(Math.Max(1, d.Rank)), d.PickB(Math.Max(1, d.Rank))) * 1.5, new Input(d.Shape(1)))),
        new("Expand", d =>
        {
            int[] target = [2, .. d.Shape(1)];
            var weights = Tensor.Arange(target.Aggregate(1, (a, b) => a * b), DType.Float64).Reshape(target);
            return new OpCase(t => Expand(t[0], target) * weights.To(t[0].DType),
                new Input(d.Shape(1).Select((s, i) => (d.A >> i & 1) == 1 ? 1 : s).ToArray()));
        }),
        new("Repeat", d => new OpCase(t => Repeat(t[0], [.. d.Shape(1).Select((_, i) => 1 + ((d.A >> i) & 1))]) * 1.5, new Input(d.Shape(1)))),
        new("Slice", d => new OpCase(t => Slice(t[0], d.PickA(d.Shape(1).Length), d.PickB(3) - 1, null, 1 + d.PickB(2)) * 2.0, new Input(d.Shape(1)))),
        new("Narrow", d => new OpCase(t => Narrow(t[0], 0, d.PickA(d.Shape(1)[0]), d.Shape(1)[0] - d.PickA(d.Shape(1)[0])) * 2.0, new Input(d.Shape(1)))),
        new("Cat", d => new OpCase(t => Cat([t[0], t[1] * 2.0], d.PickA(d.Shape(1).Length)), new Input(d.Shape(1)), new Input(d.Shape(1)))),
        new("Stack", d => new OpCase(t => Stack([t[0], t[1] * 2.0], d.PickA(d.Rank + 1)), new Input(d.Shape()), new Input(d.Shape()))),
        new("Split", d => new OpCase(t => Cat(Split(t[0], 1 + d.PickB(2), 0).Select((p, i) => p * (i + 1.0)).ToArray(), 0), new Input(d.Shape(1)))),
        new("Chunk", d => new OpCase(t => Cat(Chunk(t[0], 1 + d.PickB(3), 0).Select((p, i) => p * (i + 1.0)).ToArray(), 0), new Input(d.Shape(1)))),
        new("Pad", d => new OpCase(t => Pad(t[0], Enumerable.Range(0, 2 * Math.Min(2, d.Shape(1).Length)).Select(i => (d.A >> i) & 1).ToArray(), new[] { "constant", "reflect", "replicate", "circular" }[d.PickB(4)], 0.5) * 2.0, new Input(d.Shape(1).Select(s => s + 1).ToArray()))),
        new("IndexSelect", d =>
        {
            var s = d.Shape(1);
            int dim = d.PickA(s.Length);
            var idx = Classes(d, [3], s[dim], withIgnored: false);
            return new OpCase(t => IndexSelect(t[0], dim, t[1]) * 2.0, new Input(s), new Input(idx.Shape, Grad: false, Fixed: idx));
        }),
        new("Gather", d =>
        {
            var s = d.Shape(1);
            int dim = d.PickA(s.Length);
            var ishape = s.Select((x, i) => i == dim ? 3 : x).ToArray();
            var idx = Classes(d, ishape, s[dim], withIgnored: false);
            return new OpCase(t => Gather(t[0], dim, t[1]) * 2.0, new Input(s), new Input(ishape, Grad: false, Fixed: idx));
        }),

        // ---- linear algebra ----
        new("MatMul", d =>
        {
            // Cases: vector·vector, matrix·vector, vector·matrix, matrix·matrix, batched with broadcast batch dims.
            int m = d.Sizes[0], k = d.Sizes[1], n = d.Sizes[2], b = d.Sizes[3];
            var (sa, sb) = d.PickA(6) switch
            {
                0 => (new[] { k }, new[] { k }),
                1 => (new[] { m, k }, new[] { k }),
                2 => (new[] { k }, new[] { k, n }),
                3 => (new[] { m, k }, new[] { k, n }),
                4 => (new[] { b, m, k }, new[] { k, n }),
                _ => (new[] { b, 1, m, k }, new[] { 2, k, n }),
            };
            return new OpCase(t => MatMul(t[0], t[1]), new Input(sa), new Input(sb));
        }),
        new("Linear", d =>
        {
            int inF = d.Sizes[0], outF = d.Sizes[1];
            int[] xs = [.. d.Shape(0, 2), inF];
            bool bias = d.PickB(2) == 1;
            return new OpCase(t => Linear(t[0], t[1], bias ? t[2] : null), new Input(xs), new Input([outF, inF]), new Input([outF]));
        }),

        // ---- convolution ----
        ConvSpec("Conv1d", 1), ConvSpec("Conv2d", 2), ConvSpec("Conv3d", 3),
        ConvSpec("ConvTranspose1d", 1), ConvSpec("ConvTranspose2d", 2), ConvSpec("ConvTranspose3d", 3),

        // ---- pooling ----
        PoolSpec("MaxPool1d", 1, max: true), PoolSpec("MaxPool2d", 2, max: true), PoolSpec("MaxPool3d", 3, max: true),
        PoolSpec("AvgPool1d", 1, max: false), PoolSpec("AvgPool2d", 2, max: false), PoolSpec("AvgPool3d", 3, max: false),
        new("AdaptiveAvgPool1d", d => new OpCase(t => AdaptiveAvgPool1d(t[0], 1 + d.PickA(4)), new Input([d.Sizes[0], d.Sizes[1], 1 + d.Sizes[2] * 2]))),
        new("AdaptiveAvgPool2d", d => new OpCase(t => AdaptiveAvgPool2d(t[0], [1 + d.PickA(3), 1 + d.PickB(3)]), new Input([d.Sizes[0], 2, 1 + d.Sizes[1] * 2, d.Sizes[2] + 2]))),
        new("AdaptiveMaxPool2d", d => new OpCase(t => AdaptiveMaxPool2d(t[0], [1 + d.PickA(3), 1 + d.PickB(3)]),
            new Input([d.Sizes[0], 2, 1 + d.Sizes[1] * 2, d.Sizes[2] + 2], Values.Distinct))),
        new("MaxUnpool2d", d =>
        {
            int k = 1 + d.PickA(3);
            int[] shape = [d.Sizes[0], d.Sizes[1], k * d.Sizes[2] + d.PickB(2), k * d.Sizes[3]];
            var (pooled, indices) = MaxPool2dWithIndices(Tensor.Randn(shape, d.Seed, DType.Float64), k);
            return new OpCase(t => MaxUnpool2d(t[0], t[1], k, outputSize: shape[2..]), new Input(pooled.Shape), new Input(indices.Shape, Grad: false, Fixed: indices));
        }),

        // ---- normalization, dropout, resampling ----
        new("BatchNorm", d =>
        {
            int[] shape = [2, d.Sizes[0], .. d.Sizes[1..(1 + d.PickA(4))]];
            int c = shape[1];
            bool training = d.PickB(2) == 1, affine = d.PickB(4) >= 2, stats = !training || d.B >= 128;
            return new OpCase(t => BatchNorm(t[0], stats ? t[1] : null, stats ? t[2] : null, affine ? t[3] : null, affine ? t[4] : null, training),
                new Input(shape), new Input([c], Grad: false), new Input([c], Values.Positive, Grad: false), new Input([c]), new Input([c]));
        }),
        // One process: the gathered-statistics forward and the summed backward reductions, checked like any op.
        new("SyncBatchNorm", d =>
        {
            int[] shape = [2, d.Sizes[0], .. d.Sizes[1..(1 + d.PickA(4))]];
            int c = shape[1];
            return new OpCase(t => SyncBatchNorm(t[0], null, null, t[1], t[2], OneProcess.Instance), new Input(shape), new Input([c]), new Input([c]));
        }, SecondOrder: false),
        new("LayerNorm", d =>
        {
            var shape = d.Shape(1).Select(s => s + 1).ToArray();
            var norm = shape[^(1 + d.PickA(shape.Length))..];
            bool affine = d.PickB(2) == 1;
            return new OpCase(t => LayerNorm(t[0], norm, affine ? t[1] : null, affine ? t[2] : null), new Input(shape), new Input(norm), new Input(norm));
        }),
        new("GroupNorm", d =>
        {
            int groups = 1 + d.PickA(2), c = groups * d.Sizes[0];
            int[] shape = [d.Sizes[1], c, .. d.Sizes[2..(2 + d.PickB(3))].Select(s => s + 1)];
            return new OpCase(t => GroupNorm(t[0], groups, t[1], t[2]), new Input(shape), new Input([c]), new Input([c]));
        }),
        new("InstanceNorm", d =>
        {
            int[] shape = [d.Sizes[0], d.Sizes[1], .. d.Sizes[2..(3 + d.PickA(2))].Select(s => s + 1)];
            int c = shape[1];
            bool inputStats = d.PickB(2) == 1;
            return new OpCase(t => InstanceNorm(t[0], t[1], t[2], t[3], t[4], useInputStats: inputStats),
                new Input(shape), new Input([c], Grad: false), new Input([c], Values.Positive, Grad: false), new Input([c]), new Input([c]));
        }),
        new("LocalResponseNorm", d => new OpCase(t => LocalResponseNorm(t[0], 1 + d.PickA(5), alpha: 0.5, beta: 0.75, k: 1.5),
            new Input([d.Sizes[0], 1 + d.Sizes[1] * 2, d.Sizes[2], d.Sizes[3]]))),
        new("Dropout", d => new OpCase(t => Dropout(t[0], 0.2 + 0.2 * d.PickA(3), training: d.PickB(4) != 0, generator: new Generator(d.Seed)), new Input(d.Shape()))),
        new("Dropout2d", d => new OpCase(t => Dropout2d(t[0], 0.5, generator: new Generator(d.Seed)), new Input([d.Sizes[0], d.Sizes[1] + 1, d.Sizes[2], d.Sizes[3]]))),
        new("Interpolate", d =>
        {
            int nd = 1 + d.PickA(3);
            int[] shape = [d.Sizes[0], 2, .. d.Sizes[1..(1 + nd)].Select(s => s + 1)];
            string mode = d.PickB(2) == 0 ? "nearest" : new[] { "linear", "bilinear", "trilinear" }[nd - 1];
            bool align = d.PickB(4) >= 2 && mode != "nearest", bySize = d.B >= 128;
            int[] size = [.. shape[2..].Select((s, i) => 1 + (s * (2 + i) + d.A) % 7)];
            return new OpCase(t => bySize ? Interpolate(t[0], size: size, mode: mode, alignCorners: align)
                : Interpolate(t[0], scaleFactor: [1.5 + d.PickA(3) * 0.5], mode: mode, alignCorners: align), new Input(shape));
        }),
        new("PixelShuffle", d =>
        {
            int r = 1 + d.PickA(3);
            return new OpCase(t => PixelShuffle(t[0], r) * Tensor.Arange(t[0].Numel, t[0].DType).Reshape(d.Sizes[0], d.Sizes[1], d.Sizes[2] * r, d.Sizes[3] * r),
                new Input([d.Sizes[0], d.Sizes[1] * r * r, d.Sizes[2], d.Sizes[3]]));
        }),

        new("Bilinear", d =>
        {
            int[] lead = d.Shape(0, 2);
            int in1 = d.Sizes[2], in2 = d.Sizes[3], outF = 1 + d.PickA(3);
            bool bias = d.PickB(2) == 1;
            return new OpCase(t => Bilinear(t[0], t[1], t[2], bias ? t[3] : null), new Input([.. lead, in1]), new Input([.. lead, in2]), new Input([outF, in1, in2]), new Input([outF]));
        }),

        // ---- activations ----
        Unary("Sigmoid", Sigmoid),
        Unary("Tanh", Tanh),
        // Half the cases in place (F.relu(inplace=True)), recorded over the fresh output of a Mul.
        new("Relu", d =>
        {
            bool inplace = d.PickB(2) == 1;
            return new OpCase(t => inplace ? Relu(t[0] * 2, inplace: true) : Relu(t[0]), new Input(d.Shape(), Values.Distinct));
        }),
        new("LeakyRelu", d => new OpCase(t => LeakyRelu(t[0], 0.01 + 0.1 * d.PickA(3)), new Input(d.Shape(), Values.Distinct))),
        new("Elu", d => new OpCase(t => Elu(t[0], 0.5 + d.PickA(3) * 0.5), new Input(d.Shape(), Values.Distinct))),
        Unary("Selu", Selu, Values.Distinct),
        new("Gelu", d => new OpCase(t => Gelu(t[0], d.PickA(2) == 0 ? "none" : "tanh"), new Input(d.Shape()))),
        Unary("Silu", Silu),
        new("Softplus", d => new OpCase(t => Softplus(t[0], 0.5 + d.PickA(3) * 0.5), new Input(d.Shape()))),
        Unary("HardSigmoid", HardSigmoid, Values.Distinct),
        Unary("HardSwish", HardSwish, Values.Distinct),
        Unary("Mish", Mish),
        new("Softmax", d => new OpCase(t => Softmax(t[0], d.PickA(d.Shape(1).Length)), new Input(d.Shape(1)))),
        new("LogSoftmax", d => new OpCase(t => LogSoftmax(t[0], d.PickA(d.Shape(1).Length)), new Input(d.Shape(1)))),

        // ---- losses ----
        Loss("MseLoss", (a, b, r) => MseLoss(a, b, r)),
        Loss("L1Loss", (a, b, r) => L1Loss(a, b, r), Values.Distinct, Values.DistinctShifted),
        new("SmoothL1Loss", d => new OpCase(t => SmoothL1Loss(t[0], t[1] * 0.01, (Reduction)d.PickA(3), beta: 1.0),
            new Input(d.Shape(1), Values.Distinct), new Input(d.Shape(1)))),
        Loss("BinaryCrossEntropy", (a, b, r) => BinaryCrossEntropy(a, b, reduction: r), Values.Probability, Values.Probability),
        new("BinaryCrossEntropyWithLogits", d => new OpCase(
            t => BinaryCrossEntropyWithLogits(t[0], t[1], d.PickB(2) == 1 ? t[2] : null, d.PickB(4) >= 2 ? t[3] : null, (Reduction)d.PickA(3)),
            new Input(d.Shape(1)), new Input(d.Shape(1), Values.Probability), new Input(d.Shape(1), Values.Positive), new Input(d.Shape(1)[^1..], Values.Positive))),
        new("NllLoss", d =>
        {
            var (n, c) = (d.Sizes[0], d.Sizes[1] + 1);
            var target = Classes(d, [n], c, withIgnored: d.PickB(2) == 1);
            return new OpCase(t => NllLoss(LogSoftmax(t[0], 1), t[1], d.PickB(4) >= 2 ? t[2] : null, reduction: (Reduction)d.PickA(3)),
                new Input([n, c]), new Input([n], Grad: false, Fixed: target), new Input([c], Values.Positive, Grad: false));
        }),
        new("CrossEntropy", d =>
        {
            // Class indices (2-d or spatial 3-d input), optionally weighted, ignored and smoothed; or class probabilities.
            var (n, c, l) = (d.Sizes[0], d.Sizes[1] + 1, d.Sizes[2]);
            bool spatial = d.PickB(2) == 1, probs = d.PickB(8) >= 6;
            int[] xs = spatial ? [n, c, l] : [n, c], ts = spatial ? [n, l] : [n];
            var target = probs ? Softmax(Tensor.Randn(xs, d.Seed, DType.Float64), 1) : Classes(d, ts, c, withIgnored: d.PickB(4) >= 2);
            double smoothing = d.PickA(2) == 1 ? 0.1 : 0;
            var reduction = (Reduction)(d.A / 2 % 3);
            return new OpCase(t => CrossEntropy(t[0], t[1], (d.A / 8) % 2 == 1 ? t[2] : null, reduction: reduction, labelSmoothing: smoothing),
                new Input(xs), new Input(target.Shape, Grad: false, Fixed: target), new Input([c], Values.Positive, Grad: false));
        }),
    ];

    /// <summary>Random valid hyper-parameters of an nd-dim (transposed) convolution, drawn from the draw's choices.</summary>
    public sealed record ConvConfig(int Nd, bool Transposed, int N, int Cin, int Cout, int Groups, int[] In, int[] K, int[] Stride, Padding Padding,
        int[] Pad, int[] OutputPadding, int[] Dilation, bool Bias)
    {
        /// <summary>Input shape.</summary>
        public int[] InputShape => [N, Cin, .. In];
        /// <summary>Weight shape: [Cout, Cin/groups, *k], or [Cin, Cout/groups, *k] when transposed.</summary>
        public int[] WeightShape => Transposed ? [Cin, Cout / Groups, .. K] : [Cout, Cin / Groups, .. K];
        /// <summary>Applies the op to (input, weight, bias).</summary>
        public Tensor Apply(Tensor x, Tensor w, Tensor? b) => (Nd, Transposed) switch
        {
            (1, false) => Conv1d(x, w, b, Stride, Padding, Dilation, Groups),
            (2, false) => Conv2d(x, w, b, Stride, Padding, Dilation, Groups),
            (3, false) => Conv3d(x, w, b, Stride, Padding, Dilation, Groups),
            (1, true) => ConvTranspose1d(x, w, b, Stride, Pad, OutputPadding, Groups, Dilation),
            (2, true) => ConvTranspose2d(x, w, b, Stride, Pad, OutputPadding, Groups, Dilation),
            _ => ConvTranspose3d(x, w, b, Stride, Pad, OutputPadding, Groups, Dilation),
        };

        /// <summary>Draws a configuration: groups 1-2 (with channel multipliers), kernels 1-3 (non-square), stride and dilation 1-2,
        /// padding as ints, (before, after) pairs, "same" or "valid".</summary>
        public static ConvConfig Draw(Draw d, int nd, bool transposed)
        {
            var g = new Generator(d.A * 256 + d.B);
            int R(int n) => (int)g.NextLong(n);
            int groups = 1 + R(2), n = 1 + R(2);
            int cin = groups * (1 + R(2)), cout = groups * (1 + R(2));
            int mode = transposed ? 0 : d.PickB(4);                   // 0 ints, 1 pairs, 2 "same", 3 "valid"
            var k = new int[nd]; var s = new int[nd]; var dil = new int[nd]; var pad = new int[nd]; var op = new int[nd]; var inS = new int[nd];
            var pairs = new int[2 * nd];
            for (int i = 0; i < nd; i++)
            {
                k[i] = 1 + R(3); dil[i] = 1 + R(2); s[i] = mode == 2 ? 1 : 1 + R(2);
                int span = dil[i] * (k[i] - 1) + 1;
                pad[i] = mode == 0 ? R(2) : 0;
                pairs[2 * i] = R(2); pairs[2 * i + 1] = R(2);
                int padTotal = mode == 1 ? pairs[2 * i] + pairs[2 * i + 1] : 2 * pad[i];
                inS[i] = transposed ? 1 + R(3) : Math.Max(1, span - padTotal) + R(3);
                op[i] = transposed ? R(Math.Max(s[i], dil[i])) : 0;
                if (transposed && (inS[i] - 1) * s[i] - 2 * pad[i] + span + op[i] <= 0) pad[i] = 0;
            }
            Padding p = mode switch { 0 => pad, 1 => pairs, 2 => "same", _ => "valid" };
            return new ConvConfig(nd, transposed, n, cin, cout, groups, inS, k, s, p, pad, op, dil, d.PickB(2) == 1 || d.B >= 128);
        }
    }

    private static OpSpec ConvSpec(string name, int nd) => new(name, d =>
    {
        var c = ConvConfig.Draw(d, nd, name.StartsWith("ConvTranspose"));
        return new OpCase(t => c.Apply(t[0], t[1], c.Bias ? t[2] : null),
            new Input(c.InputShape), new Input(c.WeightShape), new Input([c.Cout]));
    });

    private static OpSpec PoolSpec(string name, int nd, bool max) => new(name, d =>
    {
        var g = new Generator(d.A * 256 + d.B + 7);
        int R(int n) => (int)g.NextLong(n);
        var k = Enumerable.Range(0, nd).Select(_ => 1 + R(3)).ToArray();
        var dil = Enumerable.Range(0, nd).Select(i => max ? 1 + R(2) : 1).ToArray();
        var pad = Enumerable.Range(0, nd).Select(i => R((dil[i] * (k[i] - 1) + 1) / 2 + 1)).ToArray();
        var strides = Enumerable.Range(0, nd).Select(_ => 1 + R(3)).ToArray();
        IntTuple stride = R(3) == 0 ? default(IntTuple) : strides;
        bool ceil = R(2) == 1, includePad = R(2) == 1;
        int? divisor = nd > 1 && R(4) == 0 ? 1 + R(5) : null;
        int[] shape = [1 + R(2), 1 + R(2), .. Enumerable.Range(0, nd).Select(i => dil[i] * (k[i] - 1) + 1 - 2 * pad[i] + R(4)).Select(v => Math.Max(v, 1))];
        Func<Tensor[], Tensor> f = (max, nd) switch
        {
            (true, 1) => t => MaxPool1d(t[0], k, stride, pad, dil, ceil),
            (true, 2) => t => MaxPool2d(t[0], k, stride, pad, dil, ceil),
            (true, _) => t => MaxPool3d(t[0], k, stride, pad, dil, ceil),
            (false, 1) => t => AvgPool1d(t[0], k, stride, pad, ceil, includePad),
            (false, 2) => t => AvgPool2d(t[0], k, stride, pad, ceil, includePad, divisor),
            _ => t => AvgPool3d(t[0], k, stride, pad, ceil, includePad, divisor),
        };
        return new OpCase(f, new Input(shape, max ? Values.Distinct : Values.Normal));
    });

    private static int[]? Dims(Draw d)
    {
        int r = d.Rank;
        if (r == 0 || d.PickA(4) == 0) return null;
        var dims = Enumerable.Range(0, r).Where(i => (d.A >> (2 + i) & 1) == 1).Select(i => (d.B >> i & 1) == 1 ? i - r : i).ToArray();
        return dims.Length == 0 ? [d.PickA(r)] : dims;
    }

    /// <summary>A shape whose reduced groups have at least 2 elements (variance with correction 1 needs them).</summary>
    private static int[] Larger(Draw d) => d.Shape(1).Select(s => s + 1).ToArray();

    private static int[] Perm(Draw d, int rank)
    {
        var g = new Generator(d.A);
        return Enumerable.Range(0, rank).OrderBy(_ => g.NextULong()).ToArray();
    }

    private static int[] Permuted(Draw d)
    {
        var s = d.Shape(1);
        return Perm(d, s.Length).Select(p => s[p]).ToArray();
    }
}
