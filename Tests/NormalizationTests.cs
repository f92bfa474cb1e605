using static Autograd.Functional;

namespace Tests;

public class NormalizationTests
{
    private static Tensor T(int[] shape, params double[] v) => Tensor.From(v, shape);

    [Test]
    public void BatchNorm_training_normalizes_with_the_biased_variance_and_updates_running_stats_with_the_unbiased_one()
    {
        var x = T([2, 1], 1, 3);                              // mean 2, biased var 1, unbiased var 2
        var rm = Tensor.Zeros([1], DType.Float64);
        var rv = Tensor.Ones([1], DType.Float64);
        var y = BatchNorm(x, rm, rv, training: true);
        Assert.That(y.ToDoubleArray(), Is.EqualTo(new[] { -1 / Math.Sqrt(1 + 1e-5), 1 / Math.Sqrt(1 + 1e-5) }).Within(1e-15));
        Assert.That(rm.Item(), Is.EqualTo(0.2).Within(1e-15));         // 0.9 * 0 + 0.1 * 2
        Assert.That(rv.Item(), Is.EqualTo(1.1).Within(1e-15));         // 0.9 * 1 + 0.1 * 2
        var eval = BatchNorm(T([1, 1], 0.2), rm, rv, T([1], 2), T([1], 5));
        Assert.That(eval.Item(), Is.EqualTo(5).Within(1e-15), "eval: (x - running_mean) / sqrt(running_var + eps) * w + b");
    }

    [Test]
    public void BatchNorm_errors_name_the_problem()
    {
        var e1 = Assert.Throws<ArgumentException>(() => BatchNorm(Tensor.Ones(1, 3), null, null, training: true));
        Assert.That(e1!.Message, Does.Contain("more than 1 value per channel"));
        var e2 = Assert.Throws<ArgumentException>(() => BatchNorm(Tensor.Ones(2, 3), Tensor.Zeros(2), Tensor.Ones(2)));
        Assert.That(e2!.Message, Does.Contain("running_mean").And.Contain("[3]"));
        Assert.Throws<ArgumentException>(() => BatchNorm(Tensor.Ones(2, 3), null, null));
    }

    [Test]
    public void LayerNorm_and_GroupNorm_by_hand()
    {
        var y = LayerNorm(T([1, 2], 1, 3), [2], eps: 0);
        Assert.That(y.ToDoubleArray(), Is.EqualTo(new double[] { -1, 1 }).Within(1e-15));
        var g = GroupNorm(T([1, 4, 1], 1, 3, 10, 30), 2, eps: 0);
        Assert.That(g.ToDoubleArray(), Is.EqualTo(new double[] { -1, 1, -1, 1 }).Within(1e-15));
        var i = InstanceNorm(T([1, 1, 2], 5, 7), eps: 0);
        Assert.That(i.ToDoubleArray(), Is.EqualTo(new double[] { -1, 1 }).Within(1e-15));
    }

    [Test]
    public void LocalResponseNorm_with_one_channel_is_x_over_k_plus_alpha_x2_to_the_beta()
    {
        var y = LocalResponseNorm(T([1, 1, 1, 1], 2), size: 1, alpha: 0.5, beta: 0.75, k: 1);
        Assert.That(y.Item(), Is.EqualTo(2 / Math.Pow(1 + 0.5 * 4, 0.75)).Within(1e-15));
        // size 3 over 3 channels: the middle channel sees all three squares, averaged over 3.
        var z = LocalResponseNorm(T([1, 3, 1, 1], 1, 2, 3), size: 3, alpha: 3, beta: 1, k: 0);
        Assert.That(z.ToDoubleArray()[1], Is.EqualTo(2.0 / 14).Within(1e-15));
        Assert.That(z.ToDoubleArray()[0], Is.EqualTo(1.0 / 5).Within(1e-15), "zero padding before the first channel");
    }

    [TestCase(4)]
    [TestCase(5)]
    public void LocalResponseNorm_sums_size_over_2_channels_before_and_size_minus_1_over_2_after(int size)
    {
        // Against a direct loop of torch's definition: channel c sees the squares of channels c - size/2 .. c + (size-1)/2.
        var rng = new Random(size);
        int n = 2, c = 7, hw = 3;
        var v = Enumerable.Range(0, n * c * hw).Select(_ => rng.NextDouble() * 4 - 2).ToArray();
        // Without a gradient the fused kernel runs, with one the differentiable composition.
        foreach (bool grad in new[] { false, true })
        {
            var y = LocalResponseNorm(Tensor.From(v, [n, c, hw]).RequiresGrad_(grad), size, alpha: 0.3, beta: 0.6, k: 1.5).ToDoubleArray();
            for (int b = 0; b < n; b++)
                for (int ch = 0; ch < c; ch++)
                    for (int i = 0; i < hw; i++)
                    {
                        double sum = 0;
                        for (int j = ch - size / 2; j <= ch + (size - 1) / 2; j++)
                            if (j >= 0 && j < c) sum += v[(b * c + j) * hw + i] * v[(b * c + j) * hw + i];
                        int at = (b * c + ch) * hw + i;
                        Assert.That(y[at], Is.EqualTo(v[at] / Math.Pow(1.5 + 0.3 * sum / size, 0.6)).Within(1e-14), $"grad {grad}, n {b}, channel {ch}, position {i}");
                    }
        }
    }

    [Test]
    public void LocalResponseNorm_in_float32_gives_the_same_values_with_and_without_a_gradient()
    {
        // Planes long enough for the fused kernel's vector loops.
        var x = Tensor.Randn([2, 16, 8, 9], 3) * 3;
        var fused = LocalResponseNorm(x, 5, alpha: 1e-2, beta: 0.75, k: 2).ToDoubleArray();
        var composed = LocalResponseNorm(x.Detach().RequiresGrad_(), 5, alpha: 1e-2, beta: 0.75, k: 2).ToDoubleArray();
        Assert.That(x.DType, Is.EqualTo(DType.Float32));
        for (int i = 0; i < fused.Length; i++) Assert.That(fused[i], Is.EqualTo(composed[i]).Within(2e-6 * (1 + Math.Abs(composed[i]))), $"element {i}");
    }

    [Test]
    public void Dropout_scales_survivors_and_is_the_identity_in_eval()
    {
        var x = Tensor.Ones([10_000], DType.Float64);
        var y = Dropout(x, 0.25, generator: new Generator(1)).ToDoubleArray();
        Assert.That(y.Distinct().OrderBy(v => v), Is.EqualTo(new[] { 0, 1 / 0.75 }));
        Assert.That(y.Count(v => v == 0) / 10_000.0, Is.EqualTo(0.25).Within(0.02));
        Assert.That(ReferenceEquals(Dropout(x, 0.25, training: false), x), Is.True);
        Assert.That(Dropout(x, 1.0).ToDoubleArray().All(v => v == 0), Is.True);
        Assert.Throws<ArgumentException>(() => Dropout(x, 1.5));
    }

    [Test]
    public void Padding_modes_by_hand()
    {
        var x = T([1, 3], 1, 2, 3);
        Assert.That(Pad(x, [2, 1], "reflect").ToDoubleArray(), Is.EqualTo(new double[] { 3, 2, 1, 2, 3, 2 }));
        Assert.That(Pad(x, [2, 1], "replicate").ToDoubleArray(), Is.EqualTo(new double[] { 1, 1, 1, 2, 3, 3 }));
        Assert.That(Pad(x, [2, 1], "circular").ToDoubleArray(), Is.EqualTo(new double[] { 2, 3, 1, 2, 3, 1 }));
        Assert.That(Pad(x, [1, 1], value: 9).ToDoubleArray(), Is.EqualTo(new double[] { 9, 1, 2, 3, 9 }));
        var e = Assert.Throws<ArgumentException>(() => Pad(x, [3, 0], "reflect"));
        Assert.That(e!.Message, Does.Contain("reflect").And.Contain("size 3"));
    }

    [Test]
    public void Interpolate_by_hand()
    {
        var x = T([1, 1, 2], 0, 10);
        Assert.That(Interpolate(x, size: [4], mode: "linear").ToDoubleArray(), Is.EqualTo(new[] { 0, 2.5, 7.5, 10 }));
        Assert.That(Interpolate(x, size: [3], mode: "linear", alignCorners: true).ToDoubleArray(), Is.EqualTo(new double[] { 0, 5, 10 }));
        Assert.That(Interpolate(x, size: [4]).ToDoubleArray(), Is.EqualTo(new double[] { 0, 0, 10, 10 }));
        Assert.That(Interpolate(x, scaleFactor: [2]).ToDoubleArray(), Is.EqualTo(new double[] { 0, 0, 10, 10 }));
        var img = T([1, 1, 2, 2], 0, 10, 20, 30);
        Assert.That(Interpolate(img, size: [3, 3], mode: "bilinear", alignCorners: true).ToDoubleArray(),
            Is.EqualTo(new double[] { 0, 5, 10, 10, 15, 20, 20, 25, 30 }));
    }

    [Test]
    public void PixelShuffle_moves_channels_into_space()
    {
        var y = PixelShuffle(T([1, 4, 1, 1], 1, 2, 3, 4), 2);
        Assert.That(y.Shape, Is.EqualTo(new[] { 1, 1, 2, 2 }));
        Assert.That(y.ToDoubleArray(), Is.EqualTo(new double[] { 1, 2, 3, 4 }));
    }
}
