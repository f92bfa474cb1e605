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
}
