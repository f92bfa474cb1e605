using Autograd.Testing;
using FsCheck;
using FsCheck.Fluent;
using static Autograd.Functional;

namespace PropertyTests;

/// <summary>Batch-norm statistics and dropout statistics over random shapes and values.</summary>
public class NormalizationProperties
{
    private static void ForAll(Action<Draw> property) => DrawArbitrary.ForAll(100, (20261125UL, 103UL), property);

    [Test]
    public void BatchNorm_running_statistics_after_k_steps_equal_the_closed_form() => ForAll(d =>
    {
        // running_k = 0.9^k * running_0 + sum_i 0.1 * 0.9^(k-1-i) * stat_i, with the unbiased variance for running_var.
        int c = d.Sizes[0], k = 1 + d.PickA(5);
        int[] shape = [2, c, d.Sizes[1], d.Sizes[2]];
        var rm = Tensor.Randn([c], d.Seed, DType.Float64);
        var rv = Tensor.Rand([c], d.Seed + 1, DType.Float64) + 0.5;
        var expectedMean = rm.ToDoubleArray().Select(v => v * Math.Pow(0.9, k)).ToArray();
        var expectedVar = rv.ToDoubleArray().Select(v => v * Math.Pow(0.9, k)).ToArray();
        int n = shape[0] * shape[2] * shape[3];
        for (int step = 0; step < k; step++)
        {
            var x = Tensor.Randn(shape, d.Seed + 10 + step, DType.Float64) * (step + 1.0);
            BatchNorm(x, rm, rv, training: true);
            var v = x.Permute(1, 0, 2, 3).Reshape(c, -1).ToDoubleArray();
            for (int ch = 0; ch < c; ch++)
            {
                var vals = v.Skip(ch * n).Take(n).ToArray();
                double mean = vals.Average(), unbiased = vals.Sum(a => (a - mean) * (a - mean)) / (n - 1);
                expectedMean[ch] += 0.1 * Math.Pow(0.9, k - 1 - step) * mean;
                expectedVar[ch] += 0.1 * Math.Pow(0.9, k - 1 - step) * unbiased;
            }
        }
        Assert.That(rm.ToDoubleArray(), Is.EqualTo(expectedMean).Within(1e-12), $"{d}");
        Assert.That(rv.ToDoubleArray(), Is.EqualTo(expectedVar).Within(1e-12), $"{d}");
    });

    [Test]
    public void Eval_BatchNorm_equals_the_affine_map_from_running_statistics() => ForAll(d =>
    {
        int c = d.Sizes[0];
        int[] shape = [d.Sizes[1], c, .. d.Sizes[2..(2 + d.PickA(3))]];
        var x = Tensor.Randn(shape, d.Seed, DType.Float64);
        var (rm, rv) = (Tensor.Randn([c], d.Seed + 1, DType.Float64), Tensor.Rand([c], d.Seed + 2, DType.Float64) + 0.1);
        var (w, b) = (Tensor.Randn([c], d.Seed + 3, DType.Float64), Tensor.Randn([c], d.Seed + 4, DType.Float64));
        var y = BatchNorm(x, rm, rv, w, b).ToDoubleArray();
        var xs = x.ToDoubleArray();
        int inner = xs.Length / (shape[0] * c);
        for (int i = 0; i < xs.Length; i++)
        {
            int ch = i / inner % c;
            double scale = w.ToDoubleArray()[ch] / Math.Sqrt(rv.ToDoubleArray()[ch] + 1e-5);
            Assert.That(y[i], Is.EqualTo(scale * xs[i] + (b.ToDoubleArray()[ch] - scale * rm.ToDoubleArray()[ch])).Within(1e-12), $"{d} element {i}");
        }
    });

    [Test]
    public void Dropout_keeps_the_expectation() => ForAll(d =>
    {
        double p = 0.1 + 0.2 * d.PickA(4);
        var x = Tensor.Ones([20_000], DType.Float64) * (1.0 + d.PickB(5));
        double mean = Dropout(x, p, generator: new Generator(d.Seed)).Mean().Item(), expected = x.Mean().Item();
        // The mean of 20,000 scaled Bernoulli draws: standard error sqrt(p / (1 - p) / n) relative; 5 sigma.
        Assert.That(mean, Is.EqualTo(expected).Within(5 * expected * Math.Sqrt(p / (1 - p) / 20_000)), $"{d} p {p}");
    });

    [Test]
    public void Dropout2d_zeroes_whole_channels() => ForAll(d =>
    {
        int[] shape = [d.Sizes[0], d.Sizes[1] + 1, d.Sizes[2] + 1, d.Sizes[3] + 1];
        var y = Dropout2d(Tensor.Rand(shape, d.Seed, DType.Float64) + 1, 0.5, generator: new Generator(d.Seed)).Reshape(shape[0] * shape[1], -1).ToDoubleArray();
        int plane = shape[2] * shape[3];
        for (int ch = 0; ch < shape[0] * shape[1]; ch++)
        {
            var vals = y.Skip(ch * plane).Take(plane).ToArray();
            Assert.That(vals.All(v => v == 0) || vals.All(v => v >= 2), Is.True, $"{d} channel {ch}: a channel is either dropped whole or kept whole (scaled by 2)");
        }
    });
}
