using static Autograd.Functional;

namespace Tests;

public class PoolingTests
{
    private static Tensor T(int[] shape, params double[] v) => Tensor.From(v, shape);

    [Test]
    public void MaxPool_with_a_tie_sends_the_gradient_to_the_first_maximal_element()
    {
        var x = T([1, 1, 2, 2], 1, 3, 3, 2).RequiresGrad_();
        var y = MaxPool2d(x, 2);
        Assert.That(y.Item(), Is.EqualTo(3));
        y.Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new double[] { 0, 1, 0, 0 }));
    }

    [Test]
    public void A_NaN_in_a_max_window_is_its_maximum_and_the_first_NaN_takes_the_gradient()
    {
        // Rows [1, NaN, 3, 2] and [5, NaN, 4, 0]; as torch.max_pool2d, NaN propagates. The unpadded windows take the row-wise
        // path, the padded ones the general one.
        var x = T([1, 1, 2, 4], 1, double.NaN, 3, 2, 5, double.NaN, 4, 0).RequiresGrad_();
        var y = MaxPool2d(x, 2);
        Assert.That(y.ToDoubleArray(), Is.EqualTo(new[] { double.NaN, 4 }));
        y.Backward(Tensor.OnesLike(y));
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new double[] { 0, 1, 0, 0, 0, 0, 1, 0 }));
        x.Grad = null;
        // Padding 1: windows cover rows {-1, 0}, {1, 2} and columns {-1, 0}, {1, 2}, {3, 4}.
        var padded = MaxPool2d(x, 2, padding: 1);
        Assert.That(padded.ToDoubleArray(), Is.EqualTo(new[] { 1, double.NaN, 2, 5, double.NaN, 0 }));
        padded.Backward(Tensor.OnesLike(padded));
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new double[] { 1, 1, 0, 1, 1, 1, 0, 1 }));
    }

    [TestCase(40, 2, 0, 2)]
    [TestCase(28, 2, 0, 2)]
    [TestCase(10, 2, 0, 2)]
    [TestCase(6, 2, 0, 2)]
    [TestCase(33, 3, 0, 2)]
    [TestCase(11, 3, 0, 2)]
    [TestCase(40, 3, 1, 2)]
    [TestCase(67, 3, 1, 2)]
    [TestCase(9, 3, 1, 2)]
    [TestCase(40, 3, 0, 1)]
    [TestCase(13, 3, 0, 1)]
    [TestCase(10, 2, 0, 1)]
    [TestCase(30, 3, 1, 1)]
    // Enough planes to run in parallel, in runs of planes whose rows' extra lanes spill into the rows after them (LeNet-5's
    // pools); only the last block of a run copies out its own lanes.
    [TestCase(28, 2, 0, 2, 600)]
    [TestCase(10, 2, 0, 2, 2000)]
    [TestCase(13, 3, 0, 1, 700)]
    // Rows of 3 and 2 windows, whose one block spills over two and three rows after it.
    [TestCase(6, 2, 0, 2, 3000)]
    [TestCase(5, 2, 0, 2, 5000)]
    public void Max_windows_pick_the_first_maximum_or_first_NaN_of_each_window(int width, int k, int pad, int stride, int planes = 3)
    {
        // Stride 1 (GoogLeNet's 3x3 pools) compares eight windows of a row at a time on AVX2.
        // With padding (ResNet's 3x3 stride-2 padding-1 stem pool) the windows whose rows and columns lie inside take the
        // same vector path, the border windows the scalar one.
        // The float path compares sixteen (on AVX2 for rows of at most eight, eight) stride-2 windows of a row at a time, a
        // row narrower than that (LeNet's 14 and 5 windows) in one block whose extra lanes are dropped; values from a small set (with -inf and NaN) make ties common.
        var g = new Generator(3);
        int height = 7, oh = (height + 2 * pad - k) / stride + 1, ow = (width + 2 * pad - k) / stride + 1;
        var v = Enumerable.Range(0, planes * height * width).Select(_ => g.NextLong(10) switch
        {
            0 => float.NaN,
            1 => float.NegativeInfinity,
            long n => n % 4,
        }).ToArray();
        var (values, indices) = MaxPool2dWithIndices(Tensor.From(v, planes, 1, height, width), k, stride: stride, padding: pad);
        var expected = new long[planes * oh * ow];
        for (int p = 0, o = 0; p < planes; p++)
            for (int r = 0; r < oh; r++)
                for (int c = 0; c < ow; c++, o++)
                {
                    int best = -1;
                    for (int b = 0; b < k * k; b++)
                    {
                        int row = stride * r - pad + b / k, col = stride * c - pad + b % k;
                        if (row < 0 || row >= height || col < 0 || col >= width) continue;
                        int i = row * width + col;
                        double x = v[p * height * width + i], cur = best < 0 ? 0 : v[p * height * width + best];
                        if (best < 0 || (!double.IsNaN(cur) && (x > cur || double.IsNaN(x)))) best = i;
                    }
                    expected[o] = best;
                }
        Assert.That(indices.ToLongArray(), Is.EqualTo(expected));
        Assert.That(values.ToFloatArray(), Is.EqualTo(expected.Select((i, o) => v[o / (oh * ow) * height * width + (int)i]).ToArray()));
    }

    [TestCase(3, 2, 1)]
    [TestCase(2, 2, 0)]
    // 2x2 windows tiling the planes write the gradient densely, four windows at a time: rows of 4, 5 (the last four
    // windows done twice) and 14 windows, odd sizes (a last row or column in no window), and rows too narrow (3 windows)
    // that add each gradient at its maximum instead.
    [TestCase(2, 2, 0, 28, 28)]
    [TestCase(2, 2, 0, 9, 11)]
    [TestCase(2, 2, 0, 10, 9)]
    [TestCase(2, 2, 0, 7, 7)]
    public void The_backward_of_a_large_max_pool_adds_each_gradient_at_its_window_maximum(int k, int stride, int pad, int h = 40, int w = 40)
    {
        // Large enough for the backward to fill the planes on several cores; overlapping 3x3 windows add into shared maxima.
        var x = Tensor.Randn([8, (70_000 + 8 * h * w - 1) / (8 * h * w), h, w], 5).RequiresGrad_();
        var (y, indices) = MaxPool2dWithIndices(x, k, stride: stride, padding: pad);
        var u = Tensor.Randn(y.Dims, 6);
        y.Backward(u);
        var idx = indices.ToLongArray();
        var gu = u.ToDoubleArray();
        var expected = new double[x.Numel];
        int inPlane = h * w, outPlane = y.Dims[2] * y.Dims[3];
        for (int o = 0; o < idx.Length; o++) expected[o / outPlane * inPlane + idx[o]] += gu[o];
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(expected).Within(1e-6));
    }

    [Test]
    public void A_3d_max_pool_over_a_single_slice_padded_in_depth_fills_every_output_slice_and_its_gradient()
    {
        // Depth 1 with kernel 2, stride 1 and padding 1 makes two output slices, both windows holding the one input slice:
        // each equals the 2-d pool of that slice, and its gradient is the 2-d pool's for the two slices' gradients summed.
        // The row kernels and the dense 2x2 backward of 2-d pooling had taken it for 2-d, writing only the first slice.
        var x = Tensor.Randn([2, 3, 1, 8, 8], 7).RequiresGrad_();
        var (y, _) = MaxPool3dWithIndices(x, [2, 2, 2], stride: [1, 2, 2], padding: [1, 0, 0]);
        Assert.That(y.Dims, Is.EqualTo(new[] { 2, 3, 2, 4, 4 }));
        var u = Tensor.Randn(y.Dims, 8);
        y.Backward(u);
        var x2 = x.Detach().Reshape(2, 3, 8, 8).RequiresGrad_();
        var y2 = MaxPool2d(x2, 2);
        y2.Backward(u.Narrow(2, 0, 1).Reshape(2, 3, 4, 4) + u.Narrow(2, 1, 1).Reshape(2, 3, 4, 4));
        for (int d = 0; d < 2; d++)
            Assert.That(y.Narrow(2, d, 1).ToFloatArray(), Is.EqualTo(y2.ToFloatArray()), $"output slice {d}");
        Assert.That(x.Grad!.ToFloatArray(), Is.EqualTo(x2.Grad!.ToFloatArray()).Within(1e-6));
    }

    [Test]
    public void Overlapping_max_windows_add_their_gradients()
    {
        // k = 2, stride 1 over [1, 5, 2]: both windows pick the 5.
        var x = T([1, 1, 3], 1, 5, 2).RequiresGrad_();
        MaxPool1d(x, 2, stride: 1).Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new double[] { 0, 2, 0 }));
    }

    [Test]
    public void AvgPool_count_include_pad_both_ways()
    {
        // windows over [pad, 1 | 2, 3 | 4, pad]
        var x = T([1, 1, 4], 1, 2, 3, 4);
        Assert.That(AvgPool1d(x, 2, stride: 2, padding: 1).ToDoubleArray(), Is.EqualTo(new[] { 0.5, 2.5, 2 }));
        Assert.That(AvgPool1d(x, 2, stride: 2, padding: 1, countIncludePad: false).ToDoubleArray(), Is.EqualTo(new[] { 1, 2.5, 4 }));
        Assert.That(AvgPool2d(T([1, 1, 2, 2], 1, 2, 3, 4), 2, divisorOverride: 2).Item(), Is.EqualTo(5));
    }

    [Test]
    public void Ceil_mode_keeps_a_last_partial_window()
    {
        var x = T([1, 1, 5], 1, 2, 3, 4, 9);
        Assert.That(MaxPool1d(x, 2).ToDoubleArray(), Is.EqualTo(new double[] { 2, 4 }));
        Assert.That(MaxPool1d(x, 2, ceilMode: true).ToDoubleArray(), Is.EqualTo(new double[] { 2, 4, 9 }));
        // ceil mode: the partial window [4] averages over 1 element (the divisor is cut at the border).
        Assert.That(AvgPool1d(x, 2, ceilMode: true).ToDoubleArray(), Is.EqualTo(new[] { 1.5, 3.5, 9 }));
    }

    [Test]
    public void Adaptive_pooling_windows_cover_floor_to_ceil()
    {
        var x = T([1, 1, 5], 1, 2, 3, 4, 5);
        Assert.That(AdaptiveAvgPool1d(x, 3).ToDoubleArray(), Is.EqualTo(new[] { 1.5, 3, 4.5 }));
        Assert.That(AdaptiveAvgPool2d(T([1, 1, 2, 2], 1, 2, 3, 4), 1).Item(), Is.EqualTo(2.5), "global average pooling");
        Assert.That(AdaptiveMaxPool2d(T([1, 1, 2, 3], 1, 9, 3, 4, 5, 6), [1, 2]).ToDoubleArray(), Is.EqualTo(new double[] { 9, 9 }));
    }

    [Test]
    public void MaxUnpool2d_puts_values_back_where_they_came_from()
    {
        var x = T([1, 1, 2, 4], 1, 8, 3, 2, 5, 4, 7, 6);
        var (y, idx) = MaxPool2dWithIndices(x, 2);
        Assert.That(y.ToDoubleArray(), Is.EqualTo(new double[] { 8, 7 }));
        Assert.That(idx.ToLongArray(), Is.EqualTo(new long[] { 1, 6 }));
        Assert.That(MaxUnpool2d(y, idx, 2).ToDoubleArray(), Is.EqualTo(new double[] { 0, 8, 0, 0, 0, 0, 7, 0 }));
    }

    [Test]
    public void Bad_pooling_configurations_name_the_op_and_sizes()
    {
        var e1 = Assert.Throws<ArgumentException>(() => MaxPool2d(Tensor.Ones(1, 1, 2, 2), 3));
        Assert.That(e1!.Message, Does.Contain("MaxPool2d").And.Contain("[3, 3]").And.Contain("[1, 1, 2, 2]"));
        var e2 = Assert.Throws<ArgumentException>(() => AvgPool2d(Tensor.Ones(1, 1, 4, 4), 2, padding: 2));
        Assert.That(e2!.Message, Does.Contain("AvgPool2d").And.Contain("at most half"));
        var e3 = Assert.Throws<ArgumentException>(() => MaxPool2d(Tensor.Ones(4, 4), 2));
        Assert.That(e3!.Message, Does.Contain("3-d or 4-d"));
    }
}

public class PoolingCeilModeTests
{
    [Test]
    public void In_ceil_mode_a_kernel_larger_than_the_input_still_gives_one_window()
    {
        // PyTorch: max_pool2d(2x2 input, kernel 3, stride 2, ceil_mode=True) is 1x1 (GoogLeNet relies on it for small inputs).
        var y = Autograd.Functional.MaxPool2d(Tensor.From(new float[] { 1, 4, 3, 2 }, 1, 1, 2, 2), 3, stride: 2, ceilMode: true);
        Assert.That(y.Shape, Is.EqualTo(new[] { 1, 1, 1, 1 }));
        Assert.That(y.Item(), Is.EqualTo(4));
        Assert.Throws<ArgumentException>(() => Autograd.Functional.MaxPool2d(Tensor.Ones(1, 1, 2, 2), 3, stride: 2));
    }

    [TestCase(DType.Float64)]
    [TestCase(DType.Float32)]
    public void Max_pooling_without_a_gradient_gives_the_values_of_the_argmax_path(DType dtype)
    {
        // Inference pools values only (no argmax); with a gradient the argmax kernels run. Random sliding (1-3 dims, padding,
        // dilation, stride, ceil mode) and adaptive windows over inputs with ties, NaNs and infinities must agree exactly.
        var rng = new Random(11);
        double Value(double r) => r < 0.03 ? double.NaN : r < 0.06 ? double.NegativeInfinity : r < 0.08 ? double.PositiveInfinity : Math.Round(rng.NextDouble() * 6);
        for (int trial = 0; trial < 400; trial++)
        {
            int nd = 1 + trial % 3;
            var k = Enumerable.Range(0, nd).Select(_ => 1 + rng.Next(4)).ToArray();
            var d = Enumerable.Range(0, nd).Select(_ => 1 + rng.Next(2)).ToArray();
            var span = k.Zip(d, (a, b) => (a - 1) * b + 1).ToArray();
            var pad = span.Select(v => rng.Next(v / 2 + 1)).ToArray();
            var stride = Enumerable.Range(0, nd).Select(_ => 1 + rng.Next(3)).ToArray();
            int[] shape = [1 + rng.Next(2), 1 + rng.Next(3), .. span.Select(v => v + rng.Next(nd == 3 ? 5 : 20))];
            var x = Tensor.From(Enumerable.Range(0, Shape(shape)).Select(_ => Value(rng.NextDouble())).ToArray(), shape).To(dtype);
            bool ceil = rng.Next(2) == 0, adaptive = nd == 2 && trial % 4 == 1;
            var outSize = shape[2..].Select(v => 1 + rng.Next(v)).ToArray();
            Tensor Pool(Tensor t) => adaptive ? AdaptiveMaxPool2d(t, outSize) : nd switch
            {
                1 => MaxPool1d(t, k, stride, pad, d, ceil),
                2 => MaxPool2d(t, k, stride, pad, d, ceil),
                _ => MaxPool3d(t, k, stride, pad, d, ceil),
            };
            Tensor inference;
            using (AutoGrad.NoGrad()) inference = Pool(x);
            var withGrad = Pool(x.Detach().RequiresGrad_());
            Assert.That(withGrad.RequiresGrad, Is.True);
            Assert.That(inference.ToDoubleArray(), Is.EqualTo(withGrad.ToDoubleArray()),
                $"trial {trial}: input {string.Join("x", shape)}, kernel {string.Join(",", k)}, stride {string.Join(",", stride)}, padding {string.Join(",", pad)}, dilation {string.Join(",", d)}, ceil {ceil}, adaptive {adaptive}");
        }

        static int Shape(int[] s) => s.Aggregate(1, (a, b) => a * b);
    }
}
