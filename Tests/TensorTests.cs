namespace Tests;

public class TensorTests
{
    [Test]
    public void From_keeps_values_shape_and_dtype()
    {
        var t = Tensor.From(new[] { 1f, 2f, 3f, 4f, 5f, 6f }, 2, 3);
        Assert.That(t.Shape, Is.EqualTo(new[] { 2, 3 }));
        Assert.That(t.DType, Is.EqualTo(DType.Float32));
        Assert.That(t.ToFloatArray(), Is.EqualTo(new[] { 1f, 2f, 3f, 4f, 5f, 6f }));
        Assert.That(Tensor.From(new[] { 1.5 }, 1).DType, Is.EqualTo(DType.Float64));
    }

    [Test]
    public void From_rejects_a_shape_that_does_not_match_the_data()
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.From(new[] { 1f, 2f, 3f }, 2, 2));
        Assert.That(e!.Message, Does.Contain("[2, 2]").And.Contain("3"));
    }

    [Test]
    public void Creation_functions_follow_pytorch()
    {
        Assert.That(Tensor.Arange(0, 1, 0.25).ToDoubleArray(), Is.EqualTo(new[] { 0, 0.25, 0.5, 0.75 }));
        Assert.That(Tensor.Arange(5).ToDoubleArray(), Is.EqualTo(new double[] { 0, 1, 2, 3, 4 }));
        Assert.That(Tensor.Linspace(-1, 1, 5).ToDoubleArray(), Is.EqualTo(new[] { -1, -0.5, 0, 0.5, 1 }));
        Assert.That(Tensor.Eye(2, 3).ToDoubleArray(), Is.EqualTo(new double[] { 1, 0, 0, 0, 1, 0 }));
        Assert.That(Tensor.Full([2], 7, DType.Float64).ToDoubleArray(), Is.EqualTo(new double[] { 7, 7 }));
        Assert.That(Tensor.ZerosLike(Tensor.Ones(2, 2)).ToDoubleArray(), Is.EqualTo(new double[4]));
        Assert.That(Tensor.Scalar(3).Item(), Is.EqualTo(3));
    }

    [Test]
    public void Random_tensors_are_reproducible_from_a_seed_and_differ_across_seeds()
    {
        Assert.That(Tensor.Randn([100], 5).ToFloatArray(), Is.EqualTo(Tensor.Randn([100], 5).ToFloatArray()));
        Assert.That(Tensor.Randn([100], 5).ToFloatArray(), Is.Not.EqualTo(Tensor.Randn([100], 6).ToFloatArray()));
        var gen = new Generator(1);
        var a = Tensor.Rand([10], gen);
        var b = Tensor.Rand([10], gen);
        Assert.That(a.ToFloatArray(), Is.Not.EqualTo(b.ToFloatArray()), "a generator object advances");
    }

    [Test]
    public void Random_distributions_have_the_right_moments()
    {
        var n = Tensor.Randn([100_000], 11, DType.Float64);
        Assert.That(n.Mean().Item(), Is.EqualTo(0).Within(0.01));
        Assert.That(n.Std().Item(), Is.EqualTo(1).Within(0.01));
        var u = Tensor.Rand([100_000], 12, DType.Float64).ToDoubleArray();
        Assert.That(u.Min(), Is.GreaterThanOrEqualTo(0));
        Assert.That(u.Max(), Is.LessThan(1));
        Assert.That(u.Average(), Is.EqualTo(0.5).Within(0.01));
        var k = Tensor.RandInt(3, 7, [10_000], 13).ToLongArray();
        Assert.That(k.Distinct().OrderBy(v => v), Is.EqualTo(new long[] { 3, 4, 5, 6 }));
    }

    [Test]
    public void ToString_prints_values_shape_and_dtype_like_pytorch()
    {
        var t = Tensor.From(new[] { 1.5f, -2f, 0.25f, 4f }, 2, 2);
        Assert.That(t.ToString(), Is.EqualTo("tensor([[ 1.5000, -2.0000],\n        [ 0.2500,  4.0000]], shape=[2, 2], dtype=Float32)"));
        Assert.That(Tensor.From(new long[] { 3, 1 }, 2).ToString(), Is.EqualTo("tensor([3, 1], shape=[2], dtype=Int64)"));
        var big = Tensor.Arange(2000).ToString();
        Assert.That(big, Does.StartWith("tensor([   0.,    1.,    2., ..., 1997., 1998., 1999.]"));
        var x = Tensor.Ones(1).RequiresGrad_();
        Assert.That((x * 2).ToString(), Does.EndWith("grad_fn=Mul)"));
    }

    [Test]
    public void Item_requires_exactly_one_element()
    {
        var e = Assert.Throws<InvalidOperationException>(() => Tensor.Ones(2).Item());
        Assert.That(e!.Message, Does.Contain("[2]"));
    }

    [Test]
    public void Reshape_of_a_contiguous_tensor_shares_storage()
    {
        var t = Tensor.Arange(6);
        var v = t.View(2, -1);
        Assert.That(v.Shape, Is.EqualTo(new[] { 2, 3 }));
        Assert.That(ReferenceEquals(t.Storage, v.Storage), Is.True);
    }
}

public class GeneratorTests
{
    [Test]
    public void A_restored_generator_state_continues_the_same_stream()
    {
        var g = new Generator(5);
        g.NextNormal();                                   // leaves a spare normal in the state
        var state = g.GetState();
        var expected = Enumerable.Range(0, 5).Select(_ => g.NextNormal()).ToArray();
        var h = new Generator(99);
        h.SetState(state);
        Assert.That(Enumerable.Range(0, 5).Select(_ => h.NextNormal()).ToArray(), Is.EqualTo(expected));
        Assert.Throws<ArgumentException>(() => h.SetState(Tensor.Zeros(6)));
    }

    [Test]
    public void Zeros_of_large_tensors_are_zero_even_where_the_GC_hands_back_freed_memory()
    {
        // Kernels that overwrite every element get uninitialized storage; Zeros (which PutFlat and others accumulate into)
        // must never. Fill large arrays, free them, and allocate zeros of the same size in their place.
        for (int round = 0; round < 5; round++)
        {
            for (int i = 0; i < 8; i++) _ = Tensor.Full([300_000], 7);
            GC.Collect();
            foreach (var dtype in new[] { DType.Float32, DType.Float64, DType.Int64 })
            {
                Assert.That(Tensor.Zeros([300_000], dtype).ToDoubleArray().All(v => v == 0), $"Zeros {dtype}, round {round}");
                Assert.That(Tensor.ZerosLike(Tensor.Ones([300_000], dtype)).ToDoubleArray().All(v => v == 0), $"ZerosLike {dtype}, round {round}");
            }
        }
    }
}
