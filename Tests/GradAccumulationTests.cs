using static Autograd.Functional;

namespace Tests;

/// <summary>Backward adds into gradients it made in place (as PyTorch's AccumulateGrad), and never into a tensor that shares
/// storage with another: a gradient given by the caller, kept by a hook, returned by a custom function, or shared by two leaves.</summary>
public class GradAccumulationTests
{
    private static readonly double[] G = [1, -2, 3, 0.5];

    [Test]
    public void A_second_backward_adds_into_the_same_grad_tensor_in_place()
    {
        var x = Tensor.From(new[] { 1.0, 2, 3, 4 }, 4).RequiresGrad_();
        (x * x).Sum().Backward();
        var first = x.Grad!;
        (x * x).Sum().Backward();
        Assert.That(x.Grad, Is.SameAs(first));
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 4.0, 8, 12, 16 }));
    }

    [Test]
    public void Two_leaves_given_the_same_gradient_by_an_add_keep_their_own_sums()
    {
        var x = Tensor.From(new[] { 1.0, 2, 3, 4 }, 4).RequiresGrad_();
        var y = Tensor.From(new[] { 5.0, 6, 7, 8 }, 4).RequiresGrad_();
        var given = Tensor.From(G, 4);
        (x + y).Backward(given);
        (x + y).Backward(given);
        (x * 3).Backward(given);
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(G.Select(v => 5 * v)));
        Assert.That(y.Grad!.ToDoubleArray(), Is.EqualTo(G.Select(v => 2 * v)));
        Assert.That(given.ToDoubleArray(), Is.EqualTo(G));
    }

    [Test]
    public void A_gradient_given_to_backward_is_never_modified()
    {
        var x = Tensor.From(new[] { 1.0, 2, 3, 4 }, 2, 2).RequiresGrad_();
        var given = Tensor.From(G, 4);
        x.Reshape(4).Backward(given);
        x.Reshape(4).Backward(given);
        Assert.That(given.ToDoubleArray(), Is.EqualTo(G));
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(G.Select(v => 2 * v)));
    }

    [Test]
    public void A_gradient_a_hook_kept_is_not_modified_by_later_backwards()
    {
        var x = Tensor.From(new[] { 1.0, 2, 3, 4 }, 4).RequiresGrad_();
        Tensor? kept = null;
        using var h = x.RegisterHook(g => { kept ??= g; return null; });
        (x * 2).Sum().Backward();
        (x * 2).Sum().Backward();
        (x * 2).Sum().Backward();
        Assert.That(kept!.ToDoubleArray(), Is.EqualTo(new[] { 2.0, 2, 2, 2 }));
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 6.0, 6, 6, 6 }));
    }

    [Test]
    public void An_assigned_grad_is_replaced_by_the_sum_not_modified()
    {
        var x = Tensor.From(new[] { 1.0, 2, 3, 4 }, 4).RequiresGrad_();
        var mine = Tensor.From(G, 4);
        x.Grad = mine;
        (x * 2).Sum().Backward();
        (x * 2).Sum().Backward();
        Assert.That(mine.ToDoubleArray(), Is.EqualTo(G));
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(G.Select(v => v + 4)));
    }

    /// <summary>Returns a tensor it holds as the gradient of its input.</summary>
    private sealed class ConstantGradient(Tensor held) : CustomFunction
    {
        protected override Tensor[] Forward(FunctionContext ctx, Tensor[] x) => [x[0] * 1];
        protected override Tensor?[] Backward(FunctionContext ctx, Tensor[] g) => [held];
    }

    [Test]
    public void A_tensor_a_custom_function_returns_as_gradient_is_never_added_into()
    {
        var held = Tensor.From(G, 4);
        var x = Tensor.From(new[] { 1.0, 2, 3, 4 }, 4).RequiresGrad_();
        var f = new ConstantGradient(held);
        f.Apply(x).Sum().Backward();
        f.Apply(x).Sum().Backward();
        // Summed with another contribution to the same tensor, in either order.
        var z = x * 1;
        (f.Apply(z).Sum() + (z * 3).Sum()).Backward();
        z = x * 1;
        ((z * 3).Sum() + f.Apply(z).Sum()).Backward();
        Assert.That(held.ToDoubleArray(), Is.EqualTo(G));
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(G.Select(v => 4 * v + 6)));
    }

    [Test]
    public void A_retained_intermediate_gradient_and_a_leaf_gradient_that_views_it_stay_apart()
    {
        var x = Tensor.From(new[] { 1.0, 2, 3, 4 }, 2, 2).RequiresGrad_();
        var m = x.Reshape(4);
        m.RetainGrad();
        var y = (m * Tensor.From(G, 4)).Sum();
        y.Backward(retainGraph: true);
        y.Backward();
        Assert.That(m.Grad!.ToDoubleArray(), Is.EqualTo(G.Select(v => 2 * v)));
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(G.Select(v => 2 * v)));
    }

    [Test]
    public void Several_contributions_to_one_intermediate_sum_correctly()
    {
        // x feeds a residual sum three times; every contribution is a new tensor the engine adds into in place.
        var x = Tensor.From(new[] { 0.5, -1, 2, 3 }, 4).RequiresGrad_();
        var h = x * 1.5;
        var y = (Exp(h) + Tanh(h) + h * h).Sum();
        y.Backward();
        var hv = new[] { 0.5, -1, 2, 3 }.Select(v => 1.5 * v);
        var expected = hv.Select(v => 1.5 * (Math.Exp(v) + 1 - Math.Tanh(v) * Math.Tanh(v) + 2 * v)).ToArray();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(expected).Within(1e-12));
    }

    /// <summary>Passes the gradient through, keeping the one it was given.</summary>
    private sealed class KeepGradient : CustomFunction
    {
        public Tensor? Kept;
        protected override Tensor[] Forward(FunctionContext ctx, Tensor[] x) => [x[0] * 1];
        protected override Tensor?[] Backward(FunctionContext ctx, Tensor[] g) { Kept = g[0]; return [g[0] * 1]; }
    }

    /// <summary>Gradients of a graph with every kind of tensor user code can reach: leaf and retained gradients, one a hook
    /// kept, one a custom function kept, the results of AutoGrad.Grad, a custom function's own gradient, activations.
    /// Each is copied as soon as it exists.</summary>
    private static List<float[]> Reachable(int n)
    {
        var seen = new List<(Tensor T, float[] Values)>();
        void See(params Tensor[] ts) => seen.AddRange(ts.Select(t => (t, t.ToFloatArray())));
        var x = Tensor.Randn([n], 1).RequiresGrad_();
        var w = Tensor.Randn([n], 2).RequiresGrad_();
        Tensor? hooked = null;
        var held = Tensor.Randn([n], 3);
        var keep = new KeepGradient();
        var a = Functional.Tanh(x * w);
        a.RetainGrad();
        var b = Exp(keep.Apply(a) * 0.5).Reshape(128, n / 128);
        using var h = b.RegisterHook(g => { hooked = g; return null; });
        var c = new ConstantGradient(held).Apply(b.Reshape(n) * 2) + Sigmoid(a) * x;
        var loss = (c * c).Sum();
        var fromGrad = AutoGrad.Grad([loss], [a, w], retainGraph: true);
        See(fromGrad[0]!, fromGrad[1]!, hooked!, keep.Kept!);
        loss.Backward();
        See(a.Grad!, hooked!, keep.Kept!, held, a, b, c);
        var (xFirst, wFirst) = (x.Grad!.ToFloatArray(), w.Grad!.ToFloatArray());
        (Functional.Tanh(x * w) * Tensor.Randn([n], 4)).Sum().Backward();   // adds into x.Grad and w.Grad in place
        See(x.Grad!, w.Grad!);
        // Take every recycled array and overwrite it: no tensor seen above may change.
        var taken = new List<Tensor>();
        while (StoragePool.Waiting(DType.Float32, n) > 0 && taken.Count < 1000) taken.Add(Tensor.Full([n], 7f));
        var result = seen.Select(s => s.Values).Concat([xFirst, wFirst]).ToList();
        for (int i = 0; i < seen.Count; i++)
            if (!seen[i].T.ToFloatArray().SequenceEqual(seen[i].Values)) result.Add([i]); // marks a tensor that changed afterwards
        return result;
    }

    /// <summary>Backward recycles the large gradients it consumed (<see cref="StoragePool"/>); every tensor user code can reach
    /// keeps its values while new tensors take those arrays and overwrite them, and the gradients are exactly those computed
    /// without recycling.</summary>
    [TestCase(1 << 21)]   // 8 MB per float32 tensor: on the large-object heap (its threshold is 4 MB here)
    [TestCase(1 << 18)]   // 1 MB: in the GC's young generation, recycled up to StoragePool.SmallCapacity
    public void Recycled_gradient_arrays_are_never_still_in_use(int n)
    {
        List<float[]> without;
        StoragePool.Enabled = false;
        try { without = Reachable(n); }
        finally { StoragePool.Enabled = true; }
        var with = Reachable(n);
        Assert.That(with, Has.Count.EqualTo(15), "a reachable tensor changed when recycled arrays were reused: " + string.Join(",", with.Skip(15).Select(v => v[0])));
        for (int i = 0; i < with.Count; i++) Assert.That(with[i], Is.EqualTo(without[i]), $"tensor {i} differs from the run without recycling");
    }

    [Test]
    public void Arrays_below_the_large_object_threshold_wait_for_reuse_only_up_to_the_small_capacity()
    {
        const int n = 1 << 18;   // 1 MB
        while (StoragePool.Take(DType.Float32, n) != null) { }
        var dead = Enumerable.Range(0, (int)(StoragePool.SmallCapacity / (4L * n)) + 16).Select(_ => Tensor.Zeros([n])).ToList();
        foreach (var t in dead) StoragePool.Return(t);
        // Other tests' small arrays may hold part of the capacity.
        Assert.That(StoragePool.Waiting(DType.Float32, n), Is.InRange(1, StoragePool.SmallCapacity / (4L * n)));
        while (StoragePool.Take(DType.Float32, n) != null) { }
    }

    [Test]
    public void Small_arrays_of_a_length_asked_for_lately_make_room_by_dropping_older_lengths()
    {
        // Models run in turn (three imported ONNX models in one benchmark): the values of the one running must not be refused
        // because those of the one before fill the share of small arrays (ResNet-50 after Inception v1 took 3,000-4,400 fresh
        // pages a run, 54-88 ms against 27).
        const int old = 1 << 18, recent = (1 << 18) + 1024;
        while (StoragePool.Take(DType.Float32, old) != null) { }
        while (StoragePool.Take(DType.Float32, recent) != null) { }
        var olds = Enumerable.Range(0, (int)(StoragePool.SmallCapacity / (4L * old)) + 4).Select(_ => Tensor.Zeros([old])).ToList();
        var latest = Tensor.Zeros([recent]);   // its length is now the one asked for most recently
        foreach (var t in olds) StoragePool.Return(t);
        int waiting = StoragePool.Waiting(DType.Float32, old);
        Assert.That(waiting, Is.GreaterThan(0));
        StoragePool.Return(latest);
        Assert.That(StoragePool.Waiting(DType.Float32, recent), Is.EqualTo(1), "the recent length's array was refused");
        Assert.That(StoragePool.Waiting(DType.Float32, old), Is.LessThan(waiting));
        while (StoragePool.Take(DType.Float32, old) != null) { }
        while (StoragePool.Take(DType.Float32, recent) != null) { }
    }

    /// <summary>ReLU's backward writes into the gradient it is given when backward owns it (AutoGrad.Overwrites): never
    /// into one a hook, a retained gradient, AutoGrad.Grad's caller or a custom function sees, whichever relu it is.</summary>
    [TestCase(false)]
    [TestCase(true)]
    public void Relu_backward_overwrites_only_a_gradient_backward_owns(bool inPlace)
    {
        var x = Tensor.From(G, 4).RequiresGrad_();
        Tensor Forward(out Tensor y)
        {
            var a = x * 3;
            y = inPlace ? a.Relu_() : Relu(a);
            return (y * 2).Sum();
        }
        double[] dx = [6, 0, 6, 6], dy = [2, 2, 2, 2];

        Forward(out _).Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(dx), "owned: overwritten");

        x.Grad = null;
        Tensor? hooked = null;
        var loss = Forward(out var y);
        y.RegisterHook(g => { hooked = g; return null; });
        loss.Backward();
        Assert.That(hooked!.ToDoubleArray(), Is.EqualTo(dy), "the gradient a hook kept");
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(dx));

        x.Grad = null;
        loss = Forward(out y);
        y.RetainGrad();
        loss.Backward();
        Assert.That(y.Grad!.ToDoubleArray(), Is.EqualTo(dy), "a retained gradient");
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(dx));

        loss = Forward(out y);
        var grads = AutoGrad.Grad([loss], [y, x]);
        Assert.That(grads[0]!.ToDoubleArray(), Is.EqualTo(dy), "a gradient AutoGrad.Grad returns");
        Assert.That(grads[1]!.ToDoubleArray(), Is.EqualTo(dx));

        // A second order: the first backward builds a graph, so nothing is overwritten; d/dx of sum(dL/dx * x) = dL/dx.
        x.Grad = null;
        var first = AutoGrad.Grad([Forward(out _)], [x], createGraph: true)[0]!;
        Assert.That(first.ToDoubleArray(), Is.EqualTo(dx));
        (first * x).Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(dx), "double backward");
    }
}
