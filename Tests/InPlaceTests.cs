namespace Tests;

public class InPlaceTests
{
    [Test]
    public void A_leaf_that_requires_grad_cannot_be_modified_in_place_while_recording()
    {
        var w = Tensor.Ones(2, 3).RequiresGrad_();
        var e = Assert.Throws<InvalidOperationException>(() => w.Add_(Tensor.Ones(2, 3)));
        Assert.That(e!.Message, Does.Contain("Add_").And.Contain("leaf").And.Contain("[2, 3]").And.Contain("NoGrad"));
    }

    [Test]
    public void Under_NoGrad_in_place_updates_change_the_values_and_keep_the_identity()
    {
        var w = Tensor.From(new[] { 1.0, 2.0 }, 2).RequiresGrad_();
        (w * w).Sum().Backward();
        using (AutoGrad.NoGrad()) w.Add_(w.Grad!, alpha: -0.5);           // w - 0.5 * 2w = 0
        Assert.That(w.ToDoubleArray(), Is.EqualTo(new[] { 0.0, 0.0 }));
        Assert.That(w.RequiresGrad && w.IsLeaf, Is.True);
        using (AutoGrad.NoGrad()) w.Fill_(3).Mul_(2);
        Assert.That(w.ToDoubleArray(), Is.EqualTo(new[] { 6.0, 6.0 }));
        using (AutoGrad.NoGrad()) w.Copy_(Tensor.From(new[] { 1f }, 1));
        Assert.That(w.ToDoubleArray(), Is.EqualTo(new[] { 1.0, 1.0 }));
    }

    [Test]
    public void Backward_refuses_to_use_a_value_modified_in_place_after_the_op_saw_it()
    {
        var x = Tensor.From(new[] { 1.0, 2.0 }, 2).RequiresGrad_();
        var y = x.Exp();
        var loss = y.Sum();
        using (AutoGrad.NoGrad()) y.Detach().Mul_(2);                    // the detached view shares storage and version
        var e = Assert.Throws<InvalidOperationException>(() => loss.Backward());
        Assert.That(e!.Message, Does.Contain("Exp").And.Contain("modified by an in-place operation"));
    }

    [Test]
    public void A_non_leaf_in_a_recorded_graph_cannot_be_modified_in_place()
    {
        var y = Tensor.Ones(2).RequiresGrad_() * 2;
        var e = Assert.Throws<InvalidOperationException>(() => y.Zero_());
        Assert.That(e!.Message, Does.Contain("Mul").And.Contain("out-of-place"));
    }

    [Test]
    public void In_place_results_must_keep_the_shape()
    {
        var a = Tensor.Ones(3);
        var e = Assert.Throws<ArgumentException>(() => a.Add_(Tensor.Ones(2, 3)));
        Assert.That(e!.Message, Does.Contain("[2, 3]").And.Contain("[3]"));
    }

    [TestCase(DType.Float32)]
    [TestCase(DType.Float64)]
    public void Same_shape_in_place_updates_round_as_the_out_of_place_expressions_and_allocate_no_storage(DType dtype)
    {
        // The optimizers' updates (buf.Mul_(momentum).Add_(g, 1 - dampening), param.Add_(d, -lr)) run in place on the
        // storage; their results must be those of this * s and this + other * alpha bit for bit.
        var a = Tensor.Randn([100_000], 1, dtype);
        var b = Tensor.Randn([100_000], 2, dtype);
        var expected = (a * 0.9 + b * 0.1 + b).ToDoubleArray();
        var x = Tensor.ZerosLike(a).Copy_(a);
        long before = GC.GetAllocatedBytesForCurrentThread();
        x.Mul_(0.9).Add_(b, 0.1).Add_(b);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(x.ToDoubleArray(), Is.EqualTo(expected));
        Assert.That(allocated, Is.LessThan(100_000), "no storage-sized temporaries");
    }

    [TestCase(DType.Float32)]
    [TestCase(DType.Float64)]
    public void A_recorded_Relu_in_place_after_a_convolution_gives_the_out_of_place_values_and_gradients(DType dtype)
    {
        var x = Tensor.Randn([2, 3, 6, 6], 1).To(dtype).RequiresGrad_();
        var w = Tensor.Randn([4, 3, 3, 3], 2).To(dtype).RequiresGrad_();
        var b = Tensor.Randn([4], 3).To(dtype).RequiresGrad_();
        var up = Tensor.Randn([2, 4, 6, 6], 4).To(dtype);   // weights the output so the gradient is not all ones
        var expected = Functional.Relu(Functional.Conv2d(x, w, b, padding: 1));
        var (gx, gw, gb) = Grads(expected);

        var y = Functional.Conv2d(x, w, b, padding: 1);
        var r = y.Relu_();
        Assert.That(r, Is.SameAs(y));
        Assert.That(r.GradFnName, Is.EqualTo("Relu_"));
        Assert.That(r.ToDoubleArray(), Is.EqualTo(expected.ToDoubleArray()));
        var (ix, iw, ib) = Grads(r);
        Assert.That(ix, Is.EqualTo(gx));
        Assert.That(iw, Is.EqualTo(gw));
        Assert.That(ib, Is.EqualTo(gb));

        (double[], double[], double[]) Grads(Tensor output)
        {
            foreach (var t in new[] { x, w, b }) t.Grad = null;
            (output * up).Sum().Backward();
            return (x.Grad!.ToDoubleArray(), w.Grad!.ToDoubleArray(), b.Grad!.ToDoubleArray());
        }
    }

    [Test]
    public void ReLU_inplace_overwrites_a_fresh_output_while_recording_and_falls_back_where_that_would_be_wrong()
    {
        var relu = new Autograd.Layers.ReLU(inplace: true);
        var x = Tensor.From(new[] { -1.0, 2, 3, -0.5 }, 4).RequiresGrad_();

        var fresh = x * 2;
        Assert.That(relu.Call(fresh), Is.SameAs(fresh));

        // Already an input of a recorded op: the Mul's gradient must not pass through the relu.
        var used = x * 2;
        var other = used * 3;
        var r = relu.Call(used);
        Assert.That(r, Is.Not.SameAs(used));
        (r + other).Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 6.0, 8, 8, 6 }));   // 2 relu'(2x) + 6
        Assert.That(used.ToDoubleArray(), Is.EqualTo(new[] { -2.0, 4, 6, -1 }));

        // A view shares the storage: the base's history would not show the change.
        var viewed = x * 2;
        var view = viewed.Reshape(2, 2);
        Assert.That(relu.Call(view), Is.Not.SameAs(view));
        Assert.That(relu.Call(viewed), Is.Not.SameAs(viewed));
        Assert.That(viewed.ToDoubleArray(), Is.EqualTo(new[] { -2.0, 4, 6, -1 }));
    }

    [Test]
    public void Relu_in_place_says_why_it_cannot_be_recorded()
    {
        var x = Tensor.From(new[] { -1.0, 2 }, 2).RequiresGrad_();
        var used = x * 2;
        _ = used + 1;
        var e = Assert.Throws<InvalidOperationException>(() => used.Relu_());
        Assert.That(e!.Message, Does.Contain("Relu_").And.Contain("Mul").And.Contain("[2]").And.Contain("already used"));
        var view = (x * 2).Reshape(2, 1);
        e = Assert.Throws<InvalidOperationException>(() => view.Relu_());
        Assert.That(e!.Message, Does.Contain("Reshape").And.Contain("view"));
        var hooked = x * 2;
        hooked.RetainGrad();
        e = Assert.Throws<InvalidOperationException>(() => hooked.Relu_());
        Assert.That(e!.Message, Does.Contain("hook"));
    }

    [Test]
    public void Relu_in_place_over_a_value_its_producer_reads_in_backward_is_refused_and_the_layer_makes_a_new_tensor()
    {
        var x = Tensor.From(new[] { -1.0, 2 }, 2).RequiresGrad_();
        var s = Functional.Sigmoid(x) - 0.6;   // Sub reads nothing: fine
        s.Relu_().Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray()[0], Is.EqualTo(0.0));
        Assert.That(x.Grad!.ToDoubleArray()[1], Is.GreaterThan(0.0));

        // Tanh's backward reads its output (PyTorch fails in backward: "modified by an inplace operation").
        var t = Functional.Tanh(x);
        var e = Assert.Throws<InvalidOperationException>(() => t.Relu_());
        Assert.That(e!.Message, Does.Contain("Relu_").And.Contain("Tanh").And.Contain("reads its output"));
        var model = new Autograd.Layers.Sequential(new Autograd.Layers.Tanh(), new Autograd.Layers.ReLU(inplace: true));
        x.Grad = null;
        model.Call(x).Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray()[0], Is.EqualTo(0.0));
        Assert.That(x.Grad!.ToDoubleArray()[1], Is.EqualTo(1 - Math.Tanh(2) * Math.Tanh(2)).Within(1e-12));
    }

    [Test]
    public void Relu_in_place_differentiates_twice_and_a_second_one_over_it_is_refused()
    {
        var x = Tensor.From(new[] { -1.0, 2 }, 2).RequiresGrad_();
        var y = (x * x * x).Relu_();
        var g = AutoGrad.Grad([y.Sum()], [x], createGraph: true)[0]!;
        Assert.That(g.ToDoubleArray(), Is.EqualTo(new[] { 0.0, 12 }));   // 3x^2 where x^3 > 0
        g.Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 0.0, 12 }));   // 6x

        // The first relu's backward reads its output, which a second would overwrite: refused, a layer makes a new tensor.
        var once = (x * 2).Relu_();
        var e = Assert.Throws<InvalidOperationException>(() => once.Relu_());
        Assert.That(e!.Message, Does.Contain("backward of Relu_ reads its output"));
        Assert.That(Functional.Relu(once, inplace: true), Is.Not.SameAs(once));
    }
}
