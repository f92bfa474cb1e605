using Autograd.Testing;
using FsCheck;
using FsCheck.Fluent;
using static Autograd.Functional;

namespace PropertyTests;

/// <summary>Convolution against a direct-loop reference, the adjoint identity of the transposed convolution, and 1x1 = matmul.</summary>
public class ConvolutionProperties
{
    private static void ForAll(Action<Draw> property) => DrawArbitrary.ForAll(100, (20261124UL, 101UL), property);

    public static IEnumerable<int> Dims => [1, 2, 3];

    /// <summary>Direct loops over every output element and kernel tap, in float64, on 3-d lifted shapes.</summary>
    private static double[] ReferenceConv(OpRegistry.ConvConfig c, double[] x, double[] w, double[]? b, out int[] outShape)
    {
        int nd = c.Nd;
        int[] Lift(int[] v, int fill) => [.. Enumerable.Repeat(fill, 3 - nd), .. v];
        var (inS, k, s, dil) = (Lift(c.In, 1), Lift(c.K, 1), Lift(c.Stride, 1), Lift(c.Dilation, 1));
        var (lo, hi) = (new int[3], new int[3]);
        var pad = c.Padding.ToArray();
        string mode = c.Padding.ToString();
        for (int i = 0; i < nd; i++)
        {
            int j = i + 3 - nd;
            if (mode == "\"same\"") { int t = c.Dilation[i] * (c.K[i] - 1); lo[j] = t / 2; hi[j] = t - t / 2; }
            else if (mode == "\"valid\"") { }
            else if (pad.Length == 2 * nd) { lo[j] = pad[2 * i]; hi[j] = pad[2 * i + 1]; }
            else { lo[j] = hi[j] = pad[pad.Length == 1 ? 0 : i]; }
        }
        var o = Enumerable.Range(0, 3).Select(i => (inS[i] + lo[i] + hi[i] - dil[i] * (k[i] - 1) - 1) / s[i] + 1).ToArray();
        outShape = [c.N, c.Cout, .. o[(3 - nd)..]];
        int cg = c.Cin / c.Groups, cog = c.Cout / c.Groups;
        var y = new double[c.N * c.Cout * o[0] * o[1] * o[2]];
        int yi = 0;
        for (int n = 0; n < c.N; n++)
            for (int oc = 0; oc < c.Cout; oc++)
                for (int od = 0; od < o[0]; od++)
                    for (int oh = 0; oh < o[1]; oh++)
                        for (int ow = 0; ow < o[2]; ow++, yi++)
                        {
                            double sum = b?[oc] ?? 0;
                            int grp = oc / cog;
                            for (int ic = 0; ic < cg; ic++)
                                for (int kd = 0; kd < k[0]; kd++)
                                    for (int kh = 0; kh < k[1]; kh++)
                                        for (int kw = 0; kw < k[2]; kw++)
                                        {
                                            int id = od * s[0] - lo[0] + kd * dil[0], ih = oh * s[1] - lo[1] + kh * dil[1], iw = ow * s[2] - lo[2] + kw * dil[2];
                                            if (id < 0 || ih < 0 || iw < 0 || id >= inS[0] || ih >= inS[1] || iw >= inS[2]) continue;
                                            int xc = grp * cg + ic;
                                            sum += x[(((n * c.Cin + xc) * inS[0] + id) * inS[1] + ih) * inS[2] + iw]
                                                 * w[(((oc * cg + ic) * k[0] + kd) * k[1] + kh) * k[2] + kw];
                                        }
                            y[yi] = sum;
                        }
        return y;
    }

    [TestCaseSource(nameof(Dims))]
    public void Conv_equals_a_direct_loop_reference_in_float64(int nd) => ForAll(d =>
    {
        var c = OpRegistry.ConvConfig.Draw(d, nd, transposed: false);
        var x = Tensor.Randn(c.InputShape, d.Seed, DType.Float64);
        var w = Tensor.Randn(c.WeightShape, d.Seed + 1, DType.Float64);
        var b = Tensor.Randn([c.Cout], d.Seed + 2, DType.Float64);
        var y = c.Apply(x, w, c.Bias ? b : null);
        var expected = ReferenceConv(c, x.ToDoubleArray(), w.ToDoubleArray(), c.Bias ? b.ToDoubleArray() : null, out var shape);
        Assert.That(y.Shape, Is.EqualTo(shape), $"{d}");
        Assert.That(y.ToDoubleArray(), Is.EqualTo(expected).Within(1e-12), $"{d}");
    });

    [TestCaseSource(nameof(Dims))]
    public void ConvTranspose_is_the_adjoint_of_Conv(int nd) => ForAll(d =>
    {
        // <convT(u, w), x> = <u, conv(x, w)> for the same stride, padding, dilation and groups (output_padding included).
        var t = OpRegistry.ConvConfig.Draw(d, nd, transposed: true);
        var u = Tensor.Randn(t.InputShape, d.Seed, DType.Float64);
        var w = Tensor.Randn(t.WeightShape, d.Seed + 1, DType.Float64);
        var convT = t.Apply(u, w, null);
        var x = Tensor.Randn(convT.Shape, d.Seed + 2, DType.Float64);
        var conv = (t with { Transposed = false, Padding = t.Pad }).Apply(x, w, null);
        // With output_padding >= stride (allowed below the dilation) the conv has extra trailing outputs that the
        // transposed conv never reads; PyTorch's transposed conv is the adjoint of the conv's first outputs.
        for (int i = 0; i < nd; i++) conv = conv.Narrow(2 + i, 0, u.Shape[2 + i]);
        Assert.That(conv.Shape, Is.EqualTo(u.Shape), $"{d}");
        Assert.That((convT * x).Sum().Item(), Is.EqualTo((u * conv).Sum().Item()).Within(1e-9), $"{d}");
    });

    public static IEnumerable<DType> FloatTypes => [DType.Float32, DType.Float64];

    /// <summary>Stride-1 2-d convs with few input channels (the direct kernels: LeNet-sized planes, kernels up to 7 so the
    /// weight pass takes taps four at a time, odd channel counts, asymmetric padding below the kernel size): the forward pass
    /// equals the direct-loop reference, and both gradients satisfy the bilinear identities
    /// <c>&lt;dL/dx, x&gt; = &lt;dL/dw, w&gt; = &lt;u, conv(x, w)&gt;</c> for L = &lt;u, conv(x, w)&gt;.</summary>
    [TestCaseSource(nameof(FloatTypes))]
    public void Few_channel_stride_1_convs_match_the_reference_and_their_gradients_the_bilinear_identities(DType dtype) => ForAll(d =>
    {
        var g = new Generator(d.Seed);
        int R(int n) => (int)g.NextLong(n);
        int kh = 1 + R(7), kw = 1 + R(7);
        int[] pairs = [R(kh), R(kh), R(kw), R(kw)];
        int[] inS = [Math.Max(1, kh - pairs[0] - pairs[1]) + R(30), Math.Max(1, kw - pairs[2] - pairs[3]) + R(40)];
        var c = new OpRegistry.ConvConfig(2, false, 1 + R(3), 1 + R(16), 1 + R(9), 1, inS, [kh, kw], [1, 1], pairs, [0, 0], [0, 0], [1, 1], true);
        var x = Tensor.Randn(c.InputShape, d.Seed, DType.Float64);
        var w = Tensor.Randn(c.WeightShape, d.Seed + 1, DType.Float64);
        var b = Tensor.Randn([c.Cout], d.Seed + 2, DType.Float64);
        var expected = ReferenceConv(c, x.ToDoubleArray(), w.ToDoubleArray(), b.ToDoubleArray(), out var shape);
        var (xt, wt) = (x.To(dtype).RequiresGrad_(), w.To(dtype).RequiresGrad_());
        var y = c.Apply(xt, wt, b.To(dtype));
        double tol = dtype == DType.Float32 ? 1e-4 : 1e-11;
        Assert.That(y.Shape, Is.EqualTo(shape), $"{c}");
        Assert.That(y.ToDoubleArray(), Is.EqualTo(expected).Within(tol * (1 + c.Cin * kh * kw)), $"{c}");
        var u = Tensor.Randn(shape, d.Seed + 3, dtype);
        var bilinear = (u * c.Apply(xt, wt, null)).Sum();
        bilinear.Backward();
        double l = bilinear.Item(), scale = tol * (1 + Math.Sqrt(c.N * c.Cout * y.Numel * c.Cin * kh * kw));
        Assert.That((xt.Grad! * xt).Sum().Item(), Is.EqualTo(l).Within(scale), $"input gradient, {c}");
        Assert.That((wt.Grad! * wt).Sum().Item(), Is.EqualTo(l).Within(scale), $"weight gradient, {c}");
    });

    /// <summary>Float32 convolutions and transposed convolutions (on oneDNN when the native backend loaded it, in blocked
    /// layouts from 8 channels up) agree with the float64 ones, which the tests above check against the reference loops, in
    /// all three passes: the output, the input gradient and the weight gradient, for every drawn configuration with its
    /// channels scaled by 1, 8 or 24 (3-d: 1 or 8), and depthwise layers.</summary>
    [TestCaseSource(nameof(Dims))]
    public void Float32_convs_agree_with_float64_in_every_pass(int nd) => ForAll(d =>
    {
        var c0 = OpRegistry.ConvConfig.Draw(d, nd, transposed: d.PickA(2) == 1);
        int m = nd == 3 ? 1 + 7 * d.PickB(2) : new[] { 1, 8, 24 }[d.PickB(3)];
        var c = c0 with { Cin = c0.Cin * m, Cout = c0.Cout * m, In = [.. c0.In.Select(v => nd == 3 ? v : v + 3)] };
        // Every fifth draw a depthwise layer (MobileNet, EfficientNet): one group per channel.
        if (d.Seed % 5 == 0) c = c with { Groups = 8 * m, Cin = 8 * m, Cout = 8 * m };
        (double[] Y, double[] Gx, double[] Gw) Run(DType t)
        {
            var x = Tensor.Randn(c.InputShape, d.Seed, DType.Float64).To(t).RequiresGrad_();
            var w = Tensor.Randn(c.WeightShape, d.Seed + 1, DType.Float64).To(t).RequiresGrad_();
            var b = Tensor.Randn([c.Transposed ? c.Cout : c.WeightShape[0]], d.Seed + 2, DType.Float64).To(t);
            var y = c.Apply(x, w, c.Bias ? b : null);
            (y * Tensor.Randn(y.Shape, d.Seed + 3, DType.Float64).To(t)).Sum().Backward();
            return (y.ToDoubleArray(), x.Grad!.ToDoubleArray(), w.Grad!.ToDoubleArray());
        }
        var (single, exact) = (Run(DType.Float32), Run(DType.Float64));
        void Same(double[] a, double[] e, string what)
        {
            // Rounding errors of float32 sums grow with the number of terms; every term here is a product of two N(0,1) draws.
            double tol = 1e-5 * (1 + e.Select(Math.Abs).DefaultIfEmpty(0).Max()) * Math.Sqrt(c.Cin * c.Cout * c.K.Aggregate(1, (p, k) => p * k) * c.N);
            Assert.That(a, Is.EqualTo(e).Within(tol), $"{what}, {c} (draw {d})");
        }
        Same(single.Y, exact.Y, "output");
        Same(single.Gx, exact.Gx, "input gradient");
        Same(single.Gw, exact.Gw, "weight gradient");
    });

    [Test]
    public void A_1x1_conv_equals_a_matmul_over_channels() => ForAll(d =>
    {
        int n = d.Sizes[0], cin = d.Sizes[1], cout = d.Sizes[2], h = d.Sizes[3], w = 1 + d.PickA(4);
        var x = Tensor.Randn([n, cin, h, w], d.Seed, DType.Float64);
        var k = Tensor.Randn([cout, cin, 1, 1], d.Seed + 1, DType.Float64);
        var conv = Conv2d(x, k);
        var mm = MatMul(k.Reshape(cout, cin), x.Reshape(n, cin, h * w)).Reshape(n, cout, h, w);
        Assert.That(conv.ToDoubleArray(), Is.EqualTo(mm.ToDoubleArray()).Within(1e-12), $"{d}");
    });
}
