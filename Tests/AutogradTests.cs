using static Autograd.Functional;

namespace Tests;

public class AutogradTests
{
    [Test]
    public void Backward_of_a_polynomial_gives_its_derivative()
    {
        // y = sum(x^2 + 3x) => dy/dx = 2x + 3
        var x = Tensor.From(new[] { 1.0, 2.0 }, 2).RequiresGrad_();
        (x * x + 3 * x).Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 5.0, 7.0 }));
    }

    [Test]
    public void A_tensor_feeding_two_branches_gets_the_sum_of_both_gradients()
    {
        var x = Tensor.From(new[] { 3.0 }, 1).RequiresGrad_();
        var a = x * 2;
        var b = x * x;
        (a + b).Sum().Backward();          // d/dx (2x + x^2) = 2 + 2x = 8
        Assert.That(x.Grad!.Item(), Is.EqualTo(8));
    }

    [Test]
    public void Gradients_accumulate_across_backward_calls_until_cleared()
    {
        var x = Tensor.From(new[] { 1.0 }, 1).RequiresGrad_();
        (x * 5).Sum().Backward();
        (x * 5).Sum().Backward();
        Assert.That(x.Grad!.Item(), Is.EqualTo(10));
        x.ZeroGrad();
        Assert.That(x.Grad, Is.Null);
    }

    [Test]
    public void Backward_with_an_explicit_gradient_computes_a_vector_jacobian_product()
    {
        var x = Tensor.From(new[] { 1.0, 2.0 }, 2).RequiresGrad_();
        (x * x).Backward(Tensor.From(new[] { 10.0, 100.0 }, 2));
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 20.0, 400.0 }));
    }

    [Test]
    public void Grad_returns_gradients_without_touching_dot_grad_and_supports_second_order()
    {
        var x = Tensor.From(new[] { 2.0 }, 1).RequiresGrad_();
        var y = (x * x * x).Sum();
        var g = AutoGrad.Grad([y], [x], createGraph: true)[0]!;     // 3x^2 = 12
        Assert.That(g.Item(), Is.EqualTo(12));
        Assert.That(x.Grad, Is.Null);
        var gg = AutoGrad.Grad([g.Sum()], [x])[0]!;                 // 6x = 12
        Assert.That(gg.Item(), Is.EqualTo(12));
    }

    [Test]
    public void Clone_copies_storage_and_passes_the_gradient_through()
    {
        var x = Tensor.From(new[] { 1.0, 2.0 }, 2).RequiresGrad_();
        var c = x.Clone();
        using (AutoGrad.NoGrad()) c.Detach().Fill_(7);
        Assert.That(x.ToDoubleArray(), Is.EqualTo(new[] { 1.0, 2.0 }));
        (x.Clone() * 3).Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 3.0, 3.0 }));
    }

    [Test]
    public void NoGrad_and_Detach_stop_recording()
    {
        var x = Tensor.Ones(2).RequiresGrad_();
        using (AutoGrad.NoGrad()) Assert.That((x * 2).RequiresGrad, Is.False);
        Assert.That((x * 2).RequiresGrad, Is.True);
        Assert.That((x * 2).Detach().RequiresGrad, Is.False);
    }

    [Test]
    public void Backward_on_a_non_scalar_without_gradient_names_the_shape()
    {
        var x = Tensor.Ones(2, 3).RequiresGrad_();
        var e = Assert.Throws<InvalidOperationException>(() => (x * 2).Backward());
        Assert.That(e!.Message, Does.Contain("scalar").And.Contain("[2, 3]"));
    }

    [Test]
    public void A_second_backward_through_a_freed_graph_names_the_op()
    {
        var x = Tensor.Ones(2).RequiresGrad_();
        var y = x.Exp().Sum();
        y.Backward();
        var e = Assert.Throws<InvalidOperationException>(() => y.Backward());
        Assert.That(e!.Message, Does.Contain("second time").And.Contain("Sum").And.Contain("retainGraph"));
    }

    [Test]
    public void RetainGraph_allows_a_second_backward()
    {
        var x = Tensor.From(new[] { 1.0 }, 1).RequiresGrad_();
        var y = (x * 3).Sum();
        y.Backward(retainGraph: true);
        y.Backward();
        Assert.That(x.Grad!.Item(), Is.EqualTo(6));
    }

    [Test]
    public void Broadcasting_mismatch_names_the_op_and_both_shapes()
    {
        var e = Assert.Throws<ArgumentException>(() => _ = Tensor.Ones(2, 3) + Tensor.Ones(4));
        Assert.That(e!.Message, Does.Contain("Add").And.Contain("[2, 3]").And.Contain("[4]"));
    }

    [Test]
    public void Dtype_mismatch_names_the_op_and_both_dtypes()
    {
        var e = Assert.Throws<ArgumentException>(() => _ = Tensor.Ones([2], DType.Float32) * Tensor.Ones([2], DType.Float64));
        Assert.That(e!.Message, Does.Contain("Mul").And.Contain("Float32").And.Contain("Float64"));
    }

    [Test]
    public void Out_of_range_dims_name_the_op_and_the_valid_range()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Tensor.Ones(2, 3).Sum(2));
        Assert.That(e!.Message, Does.Contain("Sum").And.Contain("dim 2").And.Contain("[-2, 1]"));
    }

    [Test]
    public void RequiresGrad_cannot_be_changed_on_a_non_leaf_or_set_on_integers()
    {
        var y = Tensor.Ones(2).RequiresGrad_() * 2;
        Assert.Throws<InvalidOperationException>(() => y.RequiresGrad = false);
        Assert.Throws<InvalidOperationException>(() => Tensor.From(new long[] { 1 }, 1).RequiresGrad_());
    }

    [TestCase(DType.Float64)]
    [TestCase(DType.Float32)]
    public void Pow_of_a_long_tensor_and_its_gradient_match_Math_Pow(DType dtype)
    {
        // 10,000 elements go through the backend's vector pow (short tensors through the scalar map).
        var v = Enumerable.Range(1, 10_000).Select(i => i * 0.001).ToArray();
        var x = Tensor.From(v, v.Length).To(dtype).RequiresGrad_();
        var y = Functional.Pow(x, -0.75);
        y.Sum().Backward();
        var (ys, gs) = (y.ToDoubleArray(), x.Grad!.ToDoubleArray());
        double tol = dtype == DType.Float32 ? 1e-4 : 1e-12; // percent
        for (int i = 0; i < v.Length; i++)
        {
            double xi = dtype == DType.Float32 ? (float)v[i] : v[i];
            Assert.That(ys[i], Is.EqualTo(Math.Pow(xi, -0.75)).Within(tol).Percent, $"{xi}^-0.75");
            Assert.That(gs[i], Is.EqualTo(-0.75 * Math.Pow(xi, -1.75)).Within(tol).Percent, $"gradient at {xi}");
        }
    }

    [Test]
    public void A_chain_of_100000_ops_backpropagates_without_stack_overflow()
    {
        var x = Tensor.From(new[] { 1.0 }, 1).RequiresGrad_();
        var y = x;
        for (int i = 0; i < 100_000; i++) y = y * 1.00001;
        y.Sum().Backward();
        Assert.That(x.Grad!.Item(), Is.EqualTo(Math.Pow(1.00001, 100_000)).Within(1e-9).Percent);
    }

    [Test]
    public void Memory_stays_flat_over_10000_training_steps()
    {
        var gen = new Generator(3);
        var w1 = (Tensor.Randn([16, 32], gen) * 0.1).RequiresGrad_();
        var w2 = (Tensor.Randn([4, 16], gen) * 0.1).RequiresGrad_();
        var x = Tensor.Randn([8, 32], gen);
        var target = Tensor.RandInt(0, 4, [8], gen);
        long after1000 = 0;
        for (int step = 1; step <= 10_000; step++)
        {
            var loss = CrossEntropy(Linear(Relu(Linear(x, w1)), w2), target);
            w1.ZeroGrad(); w2.ZeroGrad();
            loss.Backward();
            if (step == 1000) after1000 = GC.GetTotalMemory(forceFullCollection: true);
        }
        long after10000 = GC.GetTotalMemory(forceFullCollection: true);
        Assert.That(after10000 - after1000, Is.LessThan(2 << 20), $"heap grew from {after1000} to {after10000} bytes");
    }

    [Test]
    public void Gradient_of_a_broadcast_input_is_summed_back_to_its_shape()
    {
        var a = Tensor.Ones([2, 3], DType.Float64).RequiresGrad_();
        var b = Tensor.From(new[] { 1.0, 2.0, 3.0 }, 3).RequiresGrad_();
        (a * b).Sum().Backward();
        Assert.That(b.Grad!.Shape, Is.EqualTo(new[] { 3 }));
        Assert.That(b.Grad.ToDoubleArray(), Is.EqualTo(new[] { 2.0, 2.0, 2.0 }));
        Assert.That(a.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 1.0, 2.0, 3.0, 1.0, 2.0, 3.0 }));
    }
}
