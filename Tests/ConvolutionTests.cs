using Autograd.Backends;
using static Autograd.Functional;

namespace Tests;

public class ConvolutionTests
{
    private static Tensor T(int[] shape, params double[] v) => Tensor.From(v, shape);

    [Test]
    public void Conv2d_with_stride_2_and_padding_1_by_hand()
    {
        // x = 1..16 in a 4x4 image; 2x2 kernel [[1, 0], [0, -1]]; stride 2, padding 1 => 3x3 output.
        // Windows start at rows/cols -1, 1, 3; each output is x[r][c] - x[r+1][c+1] with out-of-range entries 0.
        var x = T([1, 1, 4, 4], Enumerable.Range(1, 16).Select(v => (double)v).ToArray());
        var w = T([1, 1, 2, 2], 1, 0, 0, -1);
        var y = Conv2d(x, w, stride: 2, padding: 1);
        Assert.That(y.Shape, Is.EqualTo(new[] { 1, 1, 3, 3 }));
        Assert.That(y.ToDoubleArray(), Is.EqualTo(new double[]
        {
            -1, -3, 0,     // row -1: 0 - x[0][0] = -1, 0 - x[0][2] = -3, 0 - 0 = 0
            -9, -5, 8,     // row 1: x[1][-1]=0 - x[2][0]=9; x[1][1]=6 - x[2][2]=11; x[1][3]=8 - 0
            0, 14, 16,     // row 3: 0 - 0; x[3][1]=14 - 0; x[3][3]=16
        }));
    }

    [Test]
    public void Conv2d_gradients_by_hand()
    {
        // y = sum(conv(x, w)) with a 2x2 all-ones input and a 1x1 kernel of 3: dy/dx = 3 everywhere, dy/dw = sum(x) = 4.
        var x = Tensor.Ones([1, 1, 2, 2], DType.Float64).RequiresGrad_();
        var w = Tensor.Full([1, 1, 1, 1], 3, DType.Float64).RequiresGrad_();
        var b = Tensor.Zeros([1], DType.Float64).RequiresGrad_();
        Conv2d(x, w, b).Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new double[] { 3, 3, 3, 3 }));
        Assert.That(w.Grad!.Item(), Is.EqualTo(4));
        Assert.That(b.Grad!.Item(), Is.EqualTo(4));
    }

    [Test]
    public void ConvTranspose1d_by_hand()
    {
        // Each input element stamps the kernel [1, 2] at position 2i: [1, 10] => [1, 2, 10, 20].
        var y = ConvTranspose1d(T([1, 1, 2], 1, 10), T([1, 1, 2], 1, 2), stride: 2);
        Assert.That(y.ToDoubleArray(), Is.EqualTo(new double[] { 1, 2, 10, 20 }));
        var withPadding = ConvTranspose1d(T([1, 1, 2], 1, 10), T([1, 1, 2], 1, 2), stride: 2, padding: 1, outputPadding: 1);
        Assert.That(withPadding.ToDoubleArray(), Is.EqualTo(new double[] { 2, 10, 20 }));
    }

    [Test]
    public void Depthwise_conv_applies_one_filter_per_channel()
    {
        var x = T([1, 2, 1, 3], 1, 2, 3, 10, 20, 30);
        var w = T([2, 1, 1, 2], 1, 1, 1, -1);
        Assert.That(Conv2d(x, w, groups: 2).ToDoubleArray(), Is.EqualTo(new double[] { 3, 5, -10, -10 }));
    }

    [Test]
    public void Same_padding_keeps_the_size_with_even_kernels_padding_more_after()
    {
        var y = Conv1d(T([1, 1, 3], 1, 2, 3), T([1, 1, 2], 1, 1), padding: "same");
        Assert.That(y.ToDoubleArray(), Is.EqualTo(new double[] { 3, 5, 3 }));
        Assert.That(Conv1d(T([1, 1, 3], 1, 2, 3), T([1, 1, 2], 1, 1), padding: [1, 0]).ToDoubleArray(), Is.EqualTo(new double[] { 1, 3, 5 }));
    }

    [Test]
    public void A_batch_spanning_several_tiles_equals_its_samples_one_by_one()
    {
        // 576 patch rows x 2304 outputs per sample puts 3 samples in a tile, so a batch of 5 runs as tiles of 3 and 2;
        // single samples run on the one-sample path.
        var x = Tensor.Randn([5, 64, 48, 48], 1, DType.Float64).RequiresGrad_();
        var w = Tensor.Randn([4, 64, 3, 3], 2, DType.Float64).RequiresGrad_();
        var y = Conv2d(x, w, padding: 1);
        var g = Tensor.Randn(y.Shape, 3, DType.Float64);
        (y * g).Sum().Backward();
        var wGrad = Tensor.Zeros([4, 64, 3, 3], DType.Float64);
        for (int n = 0; n < 5; n++)
        {
            var xn = x.Detach().Narrow(0, n, 1).RequiresGrad_();
            var wn = w.Detach().RequiresGrad_();
            var yn = Conv2d(xn, wn, padding: 1);
            Assert.That(yn.ToDoubleArray(), Is.EqualTo(y.Narrow(0, n, 1).ToDoubleArray()).Within(1e-9), $"output of sample {n}");
            (yn * g.Narrow(0, n, 1)).Sum().Backward();
            Assert.That(xn.Grad!.ToDoubleArray(), Is.EqualTo(x.Grad!.Narrow(0, n, 1).ToDoubleArray()).Within(1e-9), $"input gradient of sample {n}");
            wGrad = wGrad + wn.Grad!;
        }
        Assert.That(w.Grad!.ToDoubleArray(), Is.EqualTo(wGrad.ToDoubleArray()).Within(1e-8));
    }

    [Test]
    public void Winograd_kernels_equal_the_float64_convolution_for_odd_sizes_paddings_and_channel_counts()
    {
        if (!System.Runtime.Intrinsics.X86.Avx2.IsSupported || !System.Runtime.Intrinsics.X86.Fma.IsSupported) Assert.Ignore("the kernels need AVX2 and FMA");
        // The kernels of the three passes themselves, whatever geometries the dispatch gives them: outputs of odd height and
        // width (a last tile half outside), wider than one block of eight tiles, padding 0 to 2 (the adjoint then pads 2 to
        // 0), several chunks (shared out among the cores, whose weight-gradient sums are added).
        foreach (var (n, cin, h, w, cout, pad) in new[] { (2, 16, 8, 8, 16, 1), (3, 5, 9, 11, 7, 1), (2, 17, 7, 40, 24, 0), (2, 3, 6, 19, 32, 2), (9, 8, 33, 17, 4, 1) })
        {
            var x = Tensor.Randn([n, cin, h, w], 1, DType.Float64);
            var wt = Tensor.Randn([cout, cin, 3, 3], 2, DType.Float64) * (1.0 / cin);
            var g = ConvGeometry.Create("Conv2d", 2, x.Shape, wt.Shape, [1, 1], [pad, pad], [pad, pad], [1, 1], 1);
            var expected = Conv2d(x, wt, null, 1, pad);
            var u = Tensor.Randn(expected.Shape, 3, DType.Float64);
            var expectedGx = Functional.ConvTranspose2d(u, wt, null, 1, pad);
            var wg = wt.Detach().RequiresGrad_();
            (Conv2d(x, wg, null, 1, pad) * u).Sum().Backward();
            var expectedGw = wg.Grad!;
            var (xf, wf, uf) = (x.To(DType.Float32).Data<float>(), wt.To(DType.Float32).Data<float>(), u.To(DType.Float32).Data<float>());
            var y = new float[expected.Numel];
            Winograd.Forward(g, xf, Winograd.Weights(wf, cout, cin, flipped: false), y);
            var gx = new float[x.Numel];
            Winograd.Forward(g.FlippedAdjoint(), uf, Winograd.Weights(wf, cout, cin, flipped: true), gx);
            var gw = new float[wt.Numel];
            Winograd.Weight(g, xf, uf, gw);
            string at = $"[{n}, {cin}, {h}, {w}] -> {cout}, padding {pad}";
            Assert.That(y.Select(v => (double)v), Is.EqualTo(expected.ToDoubleArray()).Within(1e-5 * Scale(expected)), $"output {at}");
            Assert.That(gx.Select(v => (double)v), Is.EqualTo(expectedGx.ToDoubleArray()).Within(1e-5 * Scale(expectedGx)), $"input gradient {at}");
            Assert.That(gw.Select(v => (double)v), Is.EqualTo(expectedGw.ToDoubleArray()).Within(1e-5 * Scale(expectedGw)), $"weight gradient {at}");
        }

        static double Scale(Tensor t) => t.ToDoubleArray().Max(Math.Abs);
    }

    [Test]
    public void Depthwise_stride_1_forward_passes_equal_a_naive_loop_for_odd_and_even_heights([Values] bool float64)
    {
        // The depthwise kernel computes two output rows at a time (a plane of odd height ends with one), rows of one to
        // several chunks of four vectors (a row's last vector runs onto the next row; at a plane's last rows into scratch
        // blocks), kernels of 1 to 5 taps each way (not 1x1, a pointwise conv), with and without padding.
        foreach (var (n, c, h, w, kh, kw, ph, pw) in new[] { (2, 3, 7, 5, 3, 3, 1, 1), (1, 4, 6, 33, 3, 3, 1, 1), (2, 2, 1, 9, 1, 3, 0, 1),
            (1, 3, 9, 70, 5, 3, 2, 0), (2, 2, 5, 8, 2, 5, 0, 2), (1, 2, 28, 28, 3, 3, 1, 1), (1, 1, 4, 1, 3, 1, 1, 0) })
        {
            var x = Tensor.Randn([n, c, h, w], 1, DType.Float64);
            var wt = Tensor.Randn([c, 1, kh, kw], 2, DType.Float64);
            var g = ConvGeometry.Create("Conv2d", 2, x.Shape, wt.Shape, [1, 1], [ph, pw], [ph, pw], [1, 1], c);
            Assert.That(ConvKernels<double>.DepthwiseSliding(g), Is.True);
            int ho = h + 2 * ph - kh + 1, wo = w + 2 * pw - kw + 1;
            var (xs, ws) = (x.ToDoubleArray(), wt.ToDoubleArray());
            var y = new double[n * c * ho * wo];
            for (int p = 0; p < n * c; p++)
                for (int oh = 0; oh < ho; oh++)
                    for (int ow = 0; ow < wo; ow++)
                        for (int a = 0; a < kh; a++)
                            for (int b = 0; b < kw; b++)
                            {
                                int ih = oh + a - ph, iw = ow + b - pw;
                                if (ih >= 0 && ih < h && iw >= 0 && iw < w) y[(p * ho + oh) * wo + ow] += ws[((p % c) * kh + a) * kw + b] * xs[(p * h + ih) * w + iw];
                            }
            double[] result;
            if (float64)
            {
                result = new double[y.Length];
                ConvKernels<double>.Run(ConvPass.Forward, g, x.Data<double>(), wt.Data<double>(), result);
            }
            else
            {
                var rf = new float[y.Length];
                ConvKernels<float>.Run(ConvPass.Forward, g, x.To(DType.Float32).Data<float>(), wt.To(DType.Float32).Data<float>(), rf);
                result = rf.Select(v => (double)v).ToArray();
            }
            Assert.That(result, Is.EqualTo(y).Within((float64 ? 1e-12 : 1e-5) * y.Max(Math.Abs)), $"[{n}, {c}, {h}, {w}], kernel {kh}x{kw}, padding {ph},{pw}");
        }
    }

    [Test]
    public void Direct_kernels_equal_a_naive_loop_for_rows_of_one_to_several_chunks([Values] bool float64)
    {
        // Stride-1 convs of at most 16 input channels run the direct kernels, whatever geometries the dispatch gives them:
        // output rows narrower than a vector and of one to several chunks of four vectors (a row's last vector runs onto
        // the next row, or at a plane's last row into a scratch block), an odd number of output channels (the last one
        // unpaired), a 1x1 kernel, padding up to the kernel size minus one (the adjoint then runs directly too); rows of 5, 6
        // and 7 taps (the weight gradient takes a row's taps in groups of up to six: 5, 6, and 4 + 3).
        foreach (var (n, cin, h, w, cout, k, pad) in new[] { (3, 1, 6, 5, 3, 3, 1), (2, 3, 9, 37, 5, 5, 2), (2, 2, 5, 71, 4, 3, 0), (1, 4, 4, 130, 1, 1, 0),
            (2, 2, 8, 20, 3, 6, 2), (1, 2, 9, 12, 2, 7, 3) })
        {
            var x = Tensor.Randn([n, cin, h, w], 1, DType.Float64);
            var wt = Tensor.Randn([cout, cin, k, k], 2, DType.Float64);
            var g = ConvGeometry.Create("Conv2d", 2, x.Shape, wt.Shape, [1, 1], [pad, pad], [pad, pad], [1, 1], 1);
            int ho = h + 2 * pad - k + 1, wo = w + 2 * pad - k + 1;
            var u = Tensor.Randn([n, cout, ho, wo], 3, DType.Float64);
            var (xs, ws, us) = (x.ToDoubleArray(), wt.ToDoubleArray(), u.ToDoubleArray());
            var (y, gx, gw) = (new double[u.Numel], new double[x.Numel], new double[wt.Numel]);
            for (int s = 0; s < n; s++)
                for (int co = 0; co < cout; co++)
                    for (int oh = 0; oh < ho; oh++)
                        for (int ow = 0; ow < wo; ow++)
                        {
                            int o = ((s * cout + co) * ho + oh) * wo + ow;
                            for (int ci = 0; ci < cin; ci++)
                                for (int a = 0; a < k; a++)
                                    for (int b = 0; b < k; b++)
                                    {
                                        int ih = oh + a - pad, iw = ow + b - pad;
                                        if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                                        int i = ((s * cin + ci) * h + ih) * w + iw, j = ((co * cin + ci) * k + a) * k + b;
                                        y[o] += ws[j] * xs[i];
                                        gx[i] += ws[j] * us[o];
                                        gw[j] += us[o] * xs[i];
                                    }
                        }
            string at = $"[{n}, {cin}, {h}, {w}] -> {cout}, kernel {k}, padding {pad}";
            var dtype = float64 ? DType.Float64 : DType.Float32;
            double tol = float64 ? 1e-9 : 1e-4;
            Assert.That(Pass(ConvPass.Forward, x, wt, u.Numel), Is.EqualTo(y).Within(tol * Scale(y)), $"output {at}");
            Assert.That(Pass(ConvPass.Adjoint, u, wt, x.Numel), Is.EqualTo(gx).Within(tol * Scale(gx)), $"input gradient {at}");
            Assert.That(Pass(ConvPass.Weight, x, u, wt.Numel), Is.EqualTo(gw).Within(tol * Scale(gw)), $"weight gradient {at}");

            double[] Pass(ConvPass pass, Tensor a, Tensor b, int size)
            {
                if (float64)
                {
                    var r = new double[size];
                    ConvKernels<double>.Run(pass, g, a.Data<double>(), b.Data<double>(), r);
                    return r;
                }
                var rf = new float[size];
                ConvKernels<float>.Run(pass, g, a.To(dtype).Data<float>(), b.To(dtype).Data<float>(), rf);
                return rf.Select(v => (double)v).ToArray();
            }
        }

        static double Scale(double[] t) => t.Max(Math.Abs);
    }

    [Test]
    public void A_parameter_keeps_its_Winograd_transform_for_inference_until_it_changes_in_place()
    {
        // Batch 1, 16x16: Winograd only with the weights' transform kept, which inference (no gradient) does for a leaf.
        var x = Tensor.Randn([1, 16, 16, 16], 1);
        var w = (Tensor.Randn([16, 16, 3, 3], 2) * 0.1).RequiresGrad_();
        var g = ConvGeometry.Create("Conv2d", 2, x.Shape, w.Shape, [1, 1], [1, 1], [1, 1], [1, 1], 1);
        bool winograd = Winograd.Takes(g, DType.Float32, kept: true);
        Assert.That(Winograd.Takes(g, DType.Float32, kept: false), Is.False);
        double[] Expected() => Conv2d(x.To(DType.Float64), w.Detach().To(DType.Float64), null, 1, 1).ToDoubleArray();
        using (AutoGrad.NoGrad())
        {
            Assert.That(Conv2d(x, w, null, 1, 1).ToDoubleArray(), Is.EqualTo(Expected()).Within(1e-5), $"Winograd: {winograd}");
            // An in-place update (as an optimizer's step) bumps the version: the next call transforms the new weights.
            w.Mul_(-2);
            Assert.That(Conv2d(x, w, null, 1, 1).ToDoubleArray(), Is.EqualTo(Expected()).Within(1e-5), "after the update");
        }
        Assert.That(Winograd.Keeps(w.Version), Is.EqualTo(winograd));
        // Training (a gradient recorded, and the backward pass, which runs with recording off) keeps no transform: a
        // parameter with a new version has none kept after a step.
        using (AutoGrad.NoGrad()) w.Mul_(0.5);
        var xg = x.Detach().RequiresGrad_();
        var loss = Conv2d(xg, w, null, 1, 1).Sum();
        Assert.That(loss.Item(), Is.EqualTo(Expected().Sum()).Within(1e-3));
        loss.Backward();
        Assert.That(xg.Grad, Is.Not.Null);
        Assert.That(Winograd.Keeps(w.Version), Is.False);
    }

    [Test]
    public void Inference_convolutions_keep_oneDNNs_Winograd_weights_and_follow_in_place_updates()
    {
        // Batch 1, 14x14: oneDNN's Winograd kernel (AVX-512) only with the transformed weights kept from call to call.
        var x = Tensor.Randn([1, 32, 14, 14], 3);
        var w = (Tensor.Randn([48, 32, 3, 3], 4) * 0.1).RequiresGrad_();
        var g = ConvGeometry.Create("Conv2d", 2, x.Shape, w.Shape, [1, 1], [1, 1], [1, 1], [1, 1], 1);
        if (!Dnnl.Active) Assert.Ignore("oneDNN is not active on this backend");
        var kept = Dnnl.Implementation(ConvPass.Forward, g, kept: true);
        Assert.That(Dnnl.Implementation(ConvPass.Forward, g), Does.Not.Contain("wino"), "weights not kept: direct at batch 1");
        if (System.Runtime.Intrinsics.X86.Avx512F.IsSupported) Assert.That(kept, Does.Contain("wino"));
        double[] Expected() => Conv2d(x.To(DType.Float64), w.Detach().To(DType.Float64), null, 1, 1).ToDoubleArray();
        using (AutoGrad.NoGrad())
        {
            Assert.That(Conv2d(x, w, null, 1, 1).ToDoubleArray(), Is.EqualTo(Expected()).Within(1e-4), kept);
            if (System.Runtime.Intrinsics.X86.Avx512F.IsSupported) Assert.That(Dnnl.KeptKernels(w.Version), Has.Some.Contains("wino"), "the call ran on the kept plan");
            // The in-place update bumps the version: the next call transforms the new weights.
            w.Mul_(-2);
            Assert.That(Conv2d(x, w, null, 1, 1).ToDoubleArray(), Is.EqualTo(Expected()).Within(1e-4), "after the update");
            // Weights computed under no_grad are new each call: no Winograd transform is kept for them.
            var computed = w * 1.5;
            Assert.That(Conv2d(x, computed, null, 1, 1).ToDoubleArray(),
                Is.EqualTo(Conv2d(x.To(DType.Float64), computed.To(DType.Float64), null, 1, 1).ToDoubleArray()).Within(1e-4));
            Assert.That(Dnnl.KeptKernels(computed.Version), Has.None.Contains("wino"));
        }
        // With a gradient recorded the same conv runs on the direct kernel and agrees.
        Assert.That(Conv2d(x, w, null, 1, 1).ToDoubleArray(), Is.EqualTo(Expected()).Within(1e-4), "training");
    }

    [Test]
    public void Strided_forward_passes_run_on_oneDNNs_channels_last_brgconv_kernel_and_equal_the_float64_convolution()
    {
        var x = Tensor.Randn([2, 32, 15, 13], 5);
        var w = Tensor.Randn([48, 32, 3, 3], 6) * 0.1;
        var g = ConvGeometry.Create("Conv2d", 2, x.Shape, w.Shape, [2, 2], [1, 1], [1, 1], [1, 1], 1);
        if (!Dnnl.Active) Assert.Ignore("oneDNN is not active on this backend");
        var impl = Dnnl.Implementation(ConvPass.Forward, g);
        if (System.Runtime.Intrinsics.X86.Avx512F.IsSupported) Assert.That(impl, Does.StartWith("brg"));
        Assert.That(Dnnl.Implementation(ConvPass.Adjoint, g), Does.Not.StartWith("brg"), "backward passes keep the blocked layouts");
        var expected = Conv2d(x.To(DType.Float64), w.To(DType.Float64), null, 2, 1).ToDoubleArray();
        Assert.That(Conv2d(x, w, null, 2, 1).ToDoubleArray(), Is.EqualTo(expected).Within(1e-4), impl);
    }

    /// <summary>Batch 1, 3 (split unevenly on two cores) and one more than twice the cores.</summary>
    public static IEnumerable<int> PointwiseBatches => [1, 3, 2 * Environment.ProcessorCount + 1];

    [TestCaseSource(nameof(PointwiseBatches))]
    public void Wide_pointwise_convolutions_on_GEMMs_equal_the_matmul_in_both_dtypes(int batch)
    {
        // 64 -> 64 channels at 28x28: the three passes run as GEMMs on the NCHW tensors (oneDNN for narrower ones), the
        // samples split among the cores when there are at least as many, or all on one range whose GEMMs use every core.
        Assert.That(PointwiseGemm(ConvGeometry.Create("Conv2d", 2, [4, 64, 14, 14], [64, 64, 1, 1], [1, 1], [0, 0], [0, 0], [1, 1], 1)), Is.True);
        Assert.That(PointwiseGemm(ConvGeometry.Create("Conv2d", 2, [4, 16, 14, 14], [64, 16, 1, 1], [1, 1], [0, 0], [0, 0], [1, 1], 1)), Is.False);
        Assert.That(ConvKernels<double>.SampleParts(ConvGeometry.Create("Conv2d", 2, [batch, 64, 28, 28], [64, 64, 1, 1], [1, 1], [0, 0], [0, 0], [1, 1], 1)),
            Is.EqualTo(batch >= Environment.ProcessorCount ? Environment.ProcessorCount : 1), "ranges of samples");
        var x = Tensor.Randn([batch, 64, 28, 28], 1, DType.Float64);
        var w = Tensor.Randn([64, 64, 1, 1], 2, DType.Float64) * 0.125;
        var u = Tensor.Randn([batch, 64, 28, 28], 3, DType.Float64);
        (double[] Y, double[] Gx, double[] Gw) Run(DType t, bool matmul)
        {
            var (xt, wt) = (x.To(t).Detach().RequiresGrad_(), w.To(t).Detach().RequiresGrad_());
            // The reference: y[n] = W [64, 64] . x[n] [64, 784], a batched matmul.
            var y = matmul ? wt.Reshape(64, 64).MatMul(xt.Reshape(batch, 64, 784)).Reshape(batch, 64, 28, 28) : Conv2d(xt, wt);
            (y * u.To(t)).Sum().Backward();
            return (y.ToDoubleArray(), xt.Grad!.ToDoubleArray(), wt.Grad!.ToDoubleArray());
        }
        var expected = Run(DType.Float64, matmul: true);
        static double Rel(double[] a, double[] b) => a.Zip(b, (p, q) => Math.Abs(p - q)).Max() / b.Max(Math.Abs);
        foreach (var (t, tol) in new[] { (DType.Float32, 1e-5), (DType.Float64, 1e-12) })
        {
            var r = Run(t, matmul: false);
            Assert.That(Rel(r.Y, expected.Y), Is.LessThan(tol), $"{t} output");
            Assert.That(Rel(r.Gx, expected.Gx), Is.LessThan(tol), $"{t} input gradient");
            Assert.That(Rel(r.Gw, expected.Gw), Is.LessThan(tol), $"{t} weight gradient");
        }
    }

    [Test]
    public void Unbatched_input_is_accepted()
    {
        Assert.That(Conv2d(Tensor.Ones(1, 3, 3), Tensor.Ones(2, 1, 2, 2)).Shape, Is.EqualTo(new[] { 2, 2, 2 }));
    }

    [Test]
    public void Bad_configurations_name_the_op_and_every_size()
    {
        var e1 = Assert.Throws<ArgumentException>(() => Conv2d(Tensor.Ones(1, 3, 8, 8), Tensor.Ones(4, 1, 3, 3), groups: 2));
        Assert.That(e1!.Message, Does.Contain("Conv2d").And.Contain("in_channels (3)").And.Contain("groups (2)"));
        var e2 = Assert.Throws<ArgumentException>(() => Conv2d(Tensor.Ones(1, 1, 2, 2), Tensor.Ones(1, 1, 3, 3)));
        Assert.That(e2!.Message, Does.Contain("Conv2d").And.Contain("[3, 3]").And.Contain("padded input").And.Contain("[1, 1, 2, 2]"));
        var e3 = Assert.Throws<ArgumentException>(() => Conv2d(Tensor.Ones(1, 2, 4, 4), Tensor.Ones(1, 3, 3, 3)));
        Assert.That(e3!.Message, Does.Contain("3 x 1 groups").And.Contain("has 2"));
        var e4 = Assert.Throws<ArgumentException>(() => Conv2d(Tensor.Ones(1, 1, 4, 4), Tensor.Ones(1, 1, 3, 3), stride: 2, padding: "same"));
        Assert.That(e4!.Message, Does.Contain("\"same\" needs stride 1"));
        var e5 = Assert.Throws<ArgumentException>(() => ConvTranspose2d(Tensor.Ones(1, 1, 2, 2), Tensor.Ones(1, 1, 2, 2), stride: 2, outputPadding: 2));
        Assert.That(e5!.Message, Does.Contain("output_padding"));
        // As PyTorch: a negative padding of a transposed conv is refused (it would have reached kernels that read before
        // their buffers).
        var e6 = Assert.Throws<ArgumentException>(() => ConvTranspose2d(Tensor.Ones(1, 1, 4, 4), Tensor.Ones(1, 1, 3, 3), padding: -1));
        Assert.That(e6!.Message, Does.Contain("ConvTranspose2d").And.Contain("padding must be non-negative").And.Contain("[-1, -1]"));
    }

    [Test]
    public void A_convolution_with_its_relu_fused_equals_relu_of_the_convolution([Values(1, 2, 3)] int nd, [Values] bool float64)
    {
        var dtype = float64 ? DType.Float64 : DType.Float32;
        var rng = new Random(nd);
        for (int trial = 0; trial < 20; trial++)
        {
            int groups = rng.Next(2) == 0 ? 1 : 2, cin = groups * rng.Next(1, 5), cout = groups * rng.Next(1, 5), k = rng.Next(1, 4);
            int[] spatial = [.. Enumerable.Range(0, nd).Select(_ => rng.Next(k, k + 6))];
            var x = Tensor.Randn([rng.Next(1, 3), cin, .. spatial], trial).To(dtype);
            var w = Tensor.Randn([cout, cin / groups, .. Enumerable.Repeat(k, nd)], trial + 100).To(dtype);
            var b = rng.Next(2) == 0 ? null : Tensor.Randn([cout], trial + 200).To(dtype);
            int stride = rng.Next(1, 3), pad = rng.Next(0, k);
            Tensor expected, fused;
            using (AutoGrad.NoGrad())
            {
                var y = nd switch
                {
                    1 => Conv1d(x, w, b, stride, pad, groups: groups),
                    2 => Conv2d(x, w, b, stride, pad, groups: groups),
                    _ => Conv3d(x, w, b, stride, pad, groups: groups),
                };
                expected = Relu(y);
                fused = ConvFused(nd, x, w, b, stride, pad, 1, groups, new ConvInference { Relu = true });
            }
            Assert.That(fused.Shape, Is.EqualTo(expected.Shape));
            Assert.That(fused.ToDoubleArray(), Is.EqualTo(expected.ToDoubleArray()).Within(float64 ? 1e-12 : 1e-5), $"trial {trial}");
            Assert.That(fused.ToDoubleArray().Min(), Is.GreaterThanOrEqualTo(0));
        }
    }

    [Test]
    public void A_fused_convolution_and_relu_records_the_unfused_ops_when_a_gradient_is_wanted()
    {
        var x = Tensor.Randn([2, 3, 6, 6], 1).RequiresGrad_();
        var w = Tensor.Randn([4, 3, 3, 3], 2).RequiresGrad_();
        ConvFused(2, x, w, null, 1, 1, 1, 1, new ConvInference { Relu = true }).Sum().Backward();
        var (gx, gw) = (x.Grad!.ToDoubleArray(), w.Grad!.ToDoubleArray());
        x.Grad = null;
        w.Grad = null;
        Relu(Conv2d(x, w, null, 1, 1)).Sum().Backward();
        Assert.That(gx, Is.EqualTo(x.Grad!.ToDoubleArray()));
        Assert.That(gw, Is.EqualTo(w.Grad!.ToDoubleArray()));
    }

    [Test]
    public void Convolutions_that_pass_their_output_on_in_the_kernel_layout_and_add_a_residual_give_the_values_of_plain_ones()
    {
        // Channels that oneDNN blocks (16, 32) and one it may not (12); 3x3, a strided 3x3 and a 1x1 (other kernels).
        foreach (var (c1, c2) in new[] { (16, 32), (12, 16), (32, 32) })
        {
            var x = Tensor.Randn([2, 8, 13, 11], c1);
            var w1 = Tensor.Randn([c1, 8, 3, 3], 1) * 0.2;
            var w2 = Tensor.Randn([c2, c1, 3, 3], 2) * 0.2;
            var w3 = Tensor.Randn([16, c2, 1, 1], 3) * 0.2;
            var b2 = Tensor.Randn([c2], 4);
            using (AutoGrad.NoGrad())
            {
                var h = Conv2d(Relu(Conv2d(Relu(Conv2d(x, w1, null, 1, 1)), w2, b2, 2, 1)), w3);
                var residual = Tensor.Randn(h.Shape, 5);
                var first = new ConvInference { Relu = true, KeepLayout = true };
                var h1 = ConvFused(2, x, w1, null, 1, 1, 1, 1, first);
                var second = new ConvInference { Relu = true, Input = first.Output, KeepLayout = true };
                var h2 = ConvFused(2, h1, w2, b2, 2, 1, 1, 1, second);
                var y = ConvFused(2, h2, w3, null, 1, 0, 1, 1, new ConvInference { Input = second.Output, Add = residual, Relu = true });
                Assert.That(y.ToDoubleArray(), Is.EqualTo(Relu(h + residual).ToDoubleArray()).Within(1e-4), $"{c1}, {c2}");
                // An addend that broadcasts is added after the kernel.
                var perChannel = Tensor.Randn([1, 16, 1, 1], 6);
                y = ConvFused(2, h2, w3, null, 1, 0, 1, 1, new ConvInference { Input = second.Output, Add = perChannel });
                Assert.That(y.ToDoubleArray(), Is.EqualTo((h + perChannel).ToDoubleArray()).Within(1e-4), $"{c1}, {c2} broadcast");
                if (Autograd.Backends.Dnnl.Active && c1 % 8 == 0)
                    Assert.That(first.Output, Is.Not.Null, "oneDNN kept a blocked output");
                // A residual block: the blocked output is both the input and the addend of the next convolution.
                var wr = Tensor.Randn([c1, c1, 3, 3], 7) * 0.2;
                var block = ConvFused(2, h1, wr, null, 1, 1, 1, 1, new ConvInference { Input = first.Output, Add = h1, AddLayout = first.Output, Relu = true });
                var plainH1 = Relu(Conv2d(x, w1, null, 1, 1));
                Assert.That(block.ToDoubleArray(), Is.EqualTo(Relu(Conv2d(plainH1, wr, null, 1, 1) + plainH1).ToDoubleArray()).Within(1e-4), $"{c1} residual");
            }
        }
    }
    [Test]
    public void Convolutions_writing_whole_channel_blocks_into_a_batch_1_concatenation_can_leave_it_in_their_layout()
    {
        var x = Tensor.Randn([1, 8, 9, 7], 1);
        var ws = new[] { 16, 32, 8 }.Select((c, i) => Tensor.Randn([c, 8, 3, 3], 2 + i) * 0.2).ToArray();
        using (AutoGrad.NoGrad())
        {
            var terms = ws.Select(w => Relu(Conv2d(x, w, null, 1, 1))).ToArray();
            ConvInference[] Write(Tensor target, Tensor[] weights)
            {
                int channels = 0;
                return weights.Select(w =>
                {
                    int offset = channels * 9 * 7;
                    channels += w.Dims[0];
                    var how = new ConvInference { Relu = true, KeepLayout = true, Into = _ => (target, offset) };
                    ConvFused(2, x, w, null, 1, 1, 1, 1, how);
                    return how;
                }).ToArray();
            }
            // 16 and 32 channels from channel 0 and 16: whole blocks, in the kernel's layout; the concatenation is then in it.
            var blocked = Tensor.Zeros([1, 48, 9, 7]);
            var two = Write(blocked, ws[..2]);
            if (Autograd.Backends.Dnnl.Active)
            {
                Assert.That(two.Select(h => h.Output), Is.All.Not.Null, "oneDNN kept the terms in its layout");
                var layout = Autograd.Backends.Dnnl.BlockedLike(two[0].Output!, [1, 16, 9, 7], [1, 48, 9, 7]);
                Assert.That(Plain(blocked, layout).ToDoubleArray(), Is.EqualTo(Cat(terms[..2], 1).ToDoubleArray()).Within(1e-4));
                // Max pooling in that layout (padded, in ceil mode with windows past the end, dilated) equals pooling NCHW, and
                // a NaN in a window makes its maximum NaN.
                var withNaN = blocked.Clone();
                foreach (int i in new[] { 0, 7, 200, 1000, 3000 }) withNaN.Data<float>()[i] = float.NaN;
                foreach (var input in new[] { blocked, withNaN })
                    foreach (var (k, stride, pad, dilation, ceil, size) in new[] { (3, 2, 1, 1, false, new[] { 5, 4 }), (2, 2, 0, 1, true, new[] { 5, 4 }), (3, 1, 2, 2, false, new[] { 9, 7 }) })
                    {
                        var pooled = MaxPoolBlocked(input, layout, [k, k], [stride, stride], [dilation, dilation], [pad, pad], size, out var pooledLayout);
                        Assert.That(pooled, Is.Not.Null);
                        var expected = MaxPool2d(Plain(input, layout), k, stride, pad, dilation, ceil).ToDoubleArray();
                        Assert.That(Plain(pooled!, pooledLayout!).ToDoubleArray(), Is.EqualTo(expected), $"kernel {k}, dilation {dilation}, ceil {ceil}");
                        if (input == withNaN) Assert.That(expected.Count(double.IsNaN), Is.GreaterThan(0));
                    }
            }
            else Assert.That(blocked.ToDoubleArray(), Is.EqualTo(Cat(terms[..2], 1).ToDoubleArray()).Within(1e-4));
            // With a term of 8 channels (not whole blocks) the concatenation stays NCHW: that term is written in it, and the
            // blocked ones are brought back in place.
            var mixed = Tensor.Zeros([1, 56, 9, 7]);
            var three = Write(mixed, ws);
            Assert.That(three[2].Output, Is.Null);
            for (int i = 0, at = 0; i < 3; at += ws[i].Dims[0], i++)
                if (three[i].Output is { } termLayout) PlainInPlace(mixed, at * 63, ws[i].Dims[0] * 63, termLayout);
            Assert.That(mixed.ToDoubleArray(), Is.EqualTo(Cat(terms, 1).ToDoubleArray()).Within(1e-4));
        }
    }
}
