using static Autograd.Functional;

namespace Tests;

/// <summary>Small examples whose expected values were computed by hand (or with a pocket calculator).</summary>
public class OpExamples
{
    private static Tensor D(params double[] v) => Tensor.From(v, v.Length);
    private static Tensor D2(int rows, params double[] v) => Tensor.From(v, rows, v.Length / rows);
    private static double[] V(Tensor t) => t.ToDoubleArray();
    private static Tensor Leaf(Tensor t) => t.RequiresGrad_();

    [Test]
    public void Broadcast_add_of_a_row_vector()
    {
        Assert.That(V(D2(2, 1, 2, 3, 4) + D(10, 20)), Is.EqualTo(new double[] { 11, 22, 13, 24 }));
        Assert.That(V(2.0 - D(1, 5)), Is.EqualTo(new double[] { 1, -3 }));
        Assert.That(V(D(1, 5) / 2.0), Is.EqualTo(new double[] { 0.5, 2.5 }));
    }

    [Test]
    public void Relu_gradient_at_zero_is_zero()
    {
        var x = Leaf(D(-1, 0, 2));
        Relu(x).Sum().Backward();
        Assert.That(V(x.Grad!), Is.EqualTo(new double[] { 0, 0, 1 }));
    }

    [Test]
    public void Abs_gradient_at_zero_is_zero()
    {
        var x = Leaf(D(-2, 0, 3));
        Abs(x).Sum().Backward();
        Assert.That(V(x.Grad!), Is.EqualTo(new double[] { -1, 0, 1 }));
    }

    [Test]
    public void Max_with_a_tie_sends_the_gradient_to_the_first_maximal_element()
    {
        var x = Leaf(D(1, 3, 3));
        x.Max().Backward();
        Assert.That(V(x.Grad!), Is.EqualTo(new double[] { 0, 1, 0 }));
        var y = Leaf(D2(2, 5, 5, 1, 2));
        Max(y, 1).Sum().Backward();
        Assert.That(V(y.Grad!), Is.EqualTo(new double[] { 1, 0, 0, 1 }));
        Assert.That(V(ArgMax(D2(2, 5, 5, 1, 2), 1)), Is.EqualTo(new double[] { 0, 1 }));
    }

    [Test]
    public void Maximum_splits_the_gradient_at_ties()
    {
        var a = Leaf(D(1, 2, 5));
        var b = Leaf(D(3, 2, 4));
        Maximum(a, b).Sum().Backward();
        Assert.That(V(a.Grad!), Is.EqualTo(new[] { 0, 0.5, 1 }));
        Assert.That(V(b.Grad!), Is.EqualTo(new[] { 1, 0.5, 0 }));
    }

    [Test]
    public void MatMul_of_a_matrix_and_a_column_with_its_gradients()
    {
        var a = Leaf(D2(2, 1, 2, 3, 4));
        var b = Leaf(D2(2, 5, 6));
        var c = MatMul(a, b);
        Assert.That(V(c), Is.EqualTo(new double[] { 17, 39 }));
        c.Sum().Backward();
        Assert.That(V(a.Grad!), Is.EqualTo(new double[] { 5, 6, 5, 6 }));
        Assert.That(V(b.Grad!), Is.EqualTo(new double[] { 4, 6 }));
    }

    [Test]
    public void MatMul_handles_vectors_and_broadcast_batches()
    {
        Assert.That(MatMul(D(1, 2, 3), D(4, 5, 6)).Item(), Is.EqualTo(32));
        Assert.That(MatMul(D(1, 2), D2(2, 1, 2, 3, 4)).ToDoubleArray(), Is.EqualTo(new double[] { 7, 10 }));
        var batch = Tensor.From(new double[] { 1, 0, 0, 1, 2, 0, 0, 2 }, 2, 1, 2, 2);   // [I, 2I]
        var r = MatMul(batch, Tensor.From(new double[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, 3, 2, 2));
        Assert.That(r.Shape, Is.EqualTo(new[] { 2, 3, 2, 2 }));
        Assert.That(V(r)[..4], Is.EqualTo(new double[] { 1, 2, 3, 4 }));
        Assert.That(V(r)[12..16], Is.EqualTo(new double[] { 2, 4, 6, 8 }));
    }

    [Test]
    public void Linear_is_x_times_weight_transposed_plus_bias()
    {
        var y = Linear(D2(1, 1, 2), D2(3, 1, 0, 0, 1, 1, 1), D(10, 20, 30));
        Assert.That(V(y), Is.EqualTo(new double[] { 11, 22, 33 }));
    }

    [Test]
    public void Softmax_and_LogSoftmax_do_not_overflow_at_large_logits()
    {
        var x = Tensor.From(new[] { 1e4f, 0f, -1e4f }, 3);
        Assert.That(Softmax(x).ToDoubleArray(), Is.EqualTo(new double[] { 1, 0, 0 }));
        Assert.That(LogSoftmax(x).ToDoubleArray(), Is.EqualTo(new double[] { 0, -1e4, -2e4 }));
        Assert.That(V(Softmax(D(0, Math.Log(3)))), Is.EqualTo(new[] { 0.25, 0.75 }).Within(1e-15));
        Assert.That(LogSumExp(D(1e4, 1e4)).Item(), Is.EqualTo(1e4 + Math.Log(2)).Within(1e-9));
    }

    [Test]
    public void CrossEntropy_with_indices_weights_ignore_index_and_label_smoothing()
    {
        // softmax([0, ln 3]) = [0.25, 0.75]
        var logits = D2(2, 0, Math.Log(3), 0, Math.Log(3));
        var t10 = Tensor.From(new long[] { 1, 0 }, 2);
        Assert.That(CrossEntropy(D2(1, 0, 0), Tensor.From(new long[] { 0 }, 1)).Item(), Is.EqualTo(Math.Log(2)).Within(1e-12));
        Assert.That(CrossEntropy(logits, t10).Item(), Is.EqualTo((-Math.Log(0.75) + Math.Log(4)) / 2).Within(1e-12));
        Assert.That(CrossEntropy(logits, t10, reduction: Reduction.Sum).Item(), Is.EqualTo(-Math.Log(0.75) + Math.Log(4)).Within(1e-12));
        Assert.That(CrossEntropy(logits, t10, weight: D(1, 3)).Item(), Is.EqualTo((3 * -Math.Log(0.75) + Math.Log(4)) / 4).Within(1e-12));
        Assert.That(CrossEntropy(logits, Tensor.From(new long[] { 1, -100 }, 2)).Item(), Is.EqualTo(-Math.Log(0.75)).Within(1e-12));
        // eps = 0.2, C = 2: 0.8 * (-ln .75) + 0.1 * (-ln .25 - ln .75)
        Assert.That(CrossEntropy(logits.Narrow(0, 0, 1), Tensor.From(new long[] { 1 }, 1), labelSmoothing: 0.2).Item(),
            Is.EqualTo(0.8 * -Math.Log(0.75) + 0.1 * (-Math.Log(0.25) - Math.Log(0.75))).Within(1e-12));
        Assert.That(V(CrossEntropy(logits, t10, reduction: Reduction.None)), Is.EqualTo(new[] { -Math.Log(0.75), Math.Log(4) }).Within(1e-12));
    }

    [Test]
    public void CrossEntropy_gradients_differentiate_again_and_all_ignored_targets_give_NaN_with_zero_gradients()
    {
        // The reduced NLL is one op whose gradient is g times a constant matrix; a second derivative must still flow through
        // the log-softmax. Reference: the same loss written with the gather and weighted mean spelled out.
        var gen = new Generator(4);
        var x = Tensor.Randn([5, 4], gen, DType.Float64).RequiresGrad_();
        var t = Tensor.From(new long[] { 3, -100, 0, 1, 3 }, 5);
        var w = Tensor.From(new[] { 0.5, 2, 1, 1.5 }, 4);
        var v = Tensor.Randn([5, 4], gen, DType.Float64);
        Tensor HessianVector(Func<Tensor, Tensor> loss)
        {
            var g = AutoGrad.Grad([loss(x)], [x], createGraph: true)[0]!;
            return AutoGrad.Grad([(g * v).Sum()], [x])[0]!;
        }
        var picked = new[] { 3, 0, 0, 1, 3 };
        var mask = Tensor.From(picked.Select((c, i) => Enumerable.Range(0, 4).Select(j => j == c && i != 1 ? w.At(c) : 0.0)).SelectMany(r => r).ToArray(), 5, 4);
        Tensor Composite(Tensor z) => -(LogSoftmax(z, 1) * mask).Sum() / mask.Sum();
        Assert.That(CrossEntropy(x, t, weight: w, ignoreIndex: -100).Item(), Is.EqualTo(Composite(x).Item()).Within(1e-12));
        Assert.That(HessianVector(z => CrossEntropy(z, t, weight: w)).ToDoubleArray(), Is.EqualTo(HessianVector(Composite).ToDoubleArray()).Within(1e-12));

        var ignored = CrossEntropy(x, Tensor.From(new long[] { -100, -100, -100, -100, -100 }, 5));
        Assert.That(double.IsNaN(ignored.Item()), Is.True);
        ignored.Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.All.EqualTo(0.0));
    }

    [Test]
    public void CrossEntropy_with_class_probabilities()
    {
        var loss = CrossEntropy(D2(1, 0, Math.Log(3)), D2(1, 0.5, 0.5));
        Assert.That(loss.Item(), Is.EqualTo(0.5 * Math.Log(4) - 0.5 * Math.Log(0.75)).Within(1e-12));
    }

    [Test]
    public void CrossEntropy_gradient_is_softmax_minus_one_hot_over_n()
    {
        var x = Leaf(D2(1, 0, Math.Log(3)));
        CrossEntropy(x, Tensor.From(new long[] { 1 }, 1)).Backward();
        Assert.That(V(x.Grad!), Is.EqualTo(new[] { 0.25, -0.25 }).Within(1e-15));
    }

    [Test]
    public void CrossEntropy_rejects_targets_out_of_range()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => CrossEntropy(D2(1, 0, 0), Tensor.From(new long[] { 2 }, 1)));
        Assert.That(e!.Message, Does.Contain("target 2").And.Contain("2 classes"));
    }

    [Test]
    public void Regression_losses()
    {
        Assert.That(MseLoss(D(1, 2), D(0, 0)).Item(), Is.EqualTo(2.5));
        Assert.That(MseLoss(D(1, 2), D(0, 0), Reduction.Sum).Item(), Is.EqualTo(5));
        Assert.That(L1Loss(D(1, -2), D(0, 0)).Item(), Is.EqualTo(1.5));
        Assert.That(V(SmoothL1Loss(D(0.5, 2), D(0, 0), Reduction.None)), Is.EqualTo(new[] { 0.125, 1.5 }));
        Assert.That(BinaryCrossEntropy(D(0.5), D(1)).Item(), Is.EqualTo(Math.Log(2)).Within(1e-12));
        Assert.That(BinaryCrossEntropy(D(0.0), D(1)).Item(), Is.EqualTo(100), "log is clamped at -100");
        Assert.That(BinaryCrossEntropyWithLogits(D(0), D(1)).Item(), Is.EqualTo(Math.Log(2)).Within(1e-12));
        Assert.That(BinaryCrossEntropyWithLogits(D(1e4), D(0)).Item(), Is.EqualTo(1e4), "no overflow at large logits");
        // pos_weight 3: -(3 * t * log s(x) + (1 - t) log(1 - s(x))) at x = 0, t = 1 => 3 ln 2
        Assert.That(BinaryCrossEntropyWithLogits(D(0), D(1), posWeight: D(3)).Item(), Is.EqualTo(3 * Math.Log(2)).Within(1e-12));
        Assert.That(NllLoss(D2(1, -1, -2), Tensor.From(new long[] { 1 }, 1)).Item(), Is.EqualTo(2));
    }

    [Test]
    public void Statistics()
    {
        var x = D(1, 2, 3, 4);
        Assert.That(x.Mean().Item(), Is.EqualTo(2.5));
        Assert.That(x.Var().Item(), Is.EqualTo(5.0 / 3).Within(1e-15));
        Assert.That(x.Var(correction: 0).Item(), Is.EqualTo(1.25));
        Assert.That(x.Std(correction: 0).Item(), Is.EqualTo(Math.Sqrt(1.25)));
        var m = D2(2, 1, 2, 3, 4);
        Assert.That(V(m.Sum(0)), Is.EqualTo(new double[] { 4, 6 }));
        Assert.That(V(m.Sum(1, keepDim: true)), Is.EqualTo(new double[] { 3, 7 }));
        Assert.That(m.Sum(1, keepDim: true).Shape, Is.EqualTo(new[] { 2, 1 }));
        Assert.That(V(m.Max(0)), Is.EqualTo(new double[] { 3, 4 }));
        Assert.That(V(m.Min(1)), Is.EqualTo(new double[] { 1, 3 }));
    }

    [Test]
    public void Activations_at_known_points()
    {
        Assert.That(Sigmoid(D(0)).Item(), Is.EqualTo(0.5));
        Assert.That(Tanh(D(0)).Item(), Is.EqualTo(0));
        Assert.That(V(LeakyRelu(D(-2, 3), 0.1)), Is.EqualTo(new[] { -0.2, 3 }).Within(1e-15));
        Assert.That(Elu(D(-1)).Item(), Is.EqualTo(Math.Exp(-1) - 1).Within(1e-15));
        Assert.That(Selu(D(1)).Item(), Is.EqualTo(1.0507009873554805).Within(1e-15));
        // Φ(1) = 0.841344746..., so gelu(1) = 0.8413447461; tanh form 0.8411919906
        Assert.That(Gelu(D(1)).Item(), Is.EqualTo(0.8413447460685429).Within(1e-12));
        Assert.That(Gelu(D(1), "tanh").Item(), Is.EqualTo(0.8411919906082768).Within(1e-12));
        Assert.That(Silu(D(1)).Item(), Is.EqualTo(1 / (1 + Math.Exp(-1))).Within(1e-15));
        Assert.That(Softplus(D(0)).Item(), Is.EqualTo(Math.Log(2)).Within(1e-15));
        Assert.That(Softplus(D(30)).Item(), Is.EqualTo(30), "linear above the threshold");
        Assert.That(V(HardSigmoid(D(-4, 0, 1.5, 4))), Is.EqualTo(new[] { 0, 0.5, 0.75, 1 }));
        Assert.That(V(HardSwish(D(-4, 1.5, 4))), Is.EqualTo(new[] { 0, 1.125, 4 }));
        Assert.That(Mish(D(1)).Item(), Is.EqualTo(Math.Tanh(Math.Log(1 + Math.E))).Within(1e-15));
    }

    [Test]
    public void Shape_ops()
    {
        var m = D2(2, 1, 2, 3, 4, 5, 6);                      // [[1,2,3],[4,5,6]]
        Assert.That(V(m.T), Is.EqualTo(new double[] { 1, 4, 2, 5, 3, 6 }));
        Assert.That(V(m.Slice(1, 0, null, 2)), Is.EqualTo(new double[] { 1, 3, 4, 6 }));
        Assert.That(V(m.Slice(1, -1)), Is.EqualTo(new double[] { 3, 6 }));
        Assert.That(V(Cat([m, m * 10], 0))[6..], Is.EqualTo(new double[] { 10, 20, 30, 40, 50, 60 }));
        Assert.That(Stack([D(1, 2), D(3, 4)], 1).ToDoubleArray(), Is.EqualTo(new double[] { 1, 3, 2, 4 }));
        Assert.That(Chunk(D(1, 2, 3, 4, 5), 2).Select(t => t.Numel), Is.EqualTo(new[] { 3, 2 }));
        Assert.That(Split(D(1, 2, 3, 4, 5), [1, 4]).Select(t => t.Numel), Is.EqualTo(new[] { 1, 4 }));
        Assert.That(V(Pad(D(1, 2), [1, 2], value: -1)), Is.EqualTo(new double[] { -1, 1, 2, -1, -1 }));
        Assert.That(V(D(1, 2).Repeat(2)), Is.EqualTo(new double[] { 1, 2, 1, 2 }));
        Assert.That(V(D(1, 2).Reshape(2, 1).Expand(2, 3)), Is.EqualTo(new double[] { 1, 1, 1, 2, 2, 2 }));
        Assert.That(V(m.IndexSelect(1, Tensor.From(new long[] { 2, 0 }, 2))), Is.EqualTo(new double[] { 3, 1, 6, 4 }));
        Assert.That(V(m.Gather(1, Tensor.From(new long[] { 2, 2, 0, 1 }, 2, 2))), Is.EqualTo(new double[] { 3, 3, 4, 5 }));
        Assert.That(m.Unsqueeze(0).Squeeze().Shape, Is.EqualTo(new[] { 2, 3 }));
        Assert.That(Tensor.Zeros(2, 3, 4).Flatten(1).Shape, Is.EqualTo(new[] { 2, 12 }));
        Assert.That(Tensor.Zeros(2, 3, 4).Permute(2, 0, 1).Shape, Is.EqualTo(new[] { 4, 2, 3 }));
    }

    [Test]
    public void Gradients_of_index_ops_scatter_back_and_add_up_repeats()
    {
        var x = Leaf(D(1, 2, 3));
        x.IndexSelect(0, Tensor.From(new long[] { 2, 2, 0 }, 3)).Sum().Backward();
        Assert.That(V(x.Grad!), Is.EqualTo(new double[] { 1, 0, 2 }));
        var y = Leaf(D(1, 2, 3));
        y.Repeat(3).Sum().Backward();
        Assert.That(V(y.Grad!), Is.EqualTo(new double[] { 3, 3, 3 }));
    }

    [Test]
    public void Elementwise_math()
    {
        Assert.That(V(Pow(D(2, 3), 2)), Is.EqualTo(new double[] { 4, 9 }));
        Assert.That(V(Pow(D(2, 9), D(3, 0.5))), Is.EqualTo(new double[] { 8, 3 }));
        Assert.That(V(Rsqrt(D(4))), Is.EqualTo(new[] { 0.5 }));
        Assert.That(V(Clamp(D(-2, 0.5, 2), -1, 1)), Is.EqualTo(new[] { -1, 0.5, 1 }));
        Assert.That(V(Where(D(1, 0), D(5, 6), D(7, 8))), Is.EqualTo(new double[] { 5, 8 }));
        Assert.That(V(Sign(D(-3, 0, 2))), Is.EqualTo(new double[] { -1, 0, 1 }));
        Assert.That(V(D(1, 2, 3) > 2.0), Is.EqualTo(new double[] { 0, 0, 1 }));
        Assert.That(V(D(1, 2).Eq(D(1, 3))), Is.EqualTo(new double[] { 1, 0 }));
        Assert.That(Erf(D(0.5)).Item(), Is.EqualTo(0.5204998778130465).Within(1e-12));
        Assert.That(D(1.5).To(DType.Float32).DType, Is.EqualTo(DType.Float32));
    }

    [Test]
    public void Clamp_gradient_passes_inside_the_bounds_only()
    {
        var x = Leaf(D(-2, 0.5, 2));
        Clamp(x, -1, 1).Sum().Backward();
        Assert.That(V(x.Grad!), Is.EqualTo(new double[] { 0, 1, 0 }));
    }
}
