using Autograd.Layers;
using static Autograd.Functional;

namespace Tests;

/// <summary>y = x^3 with a hand-written backward made of tensor ops (so second order works).</summary>
internal sealed class Cube : CustomFunction
{
    protected override Tensor[] Forward(FunctionContext ctx, Tensor[] x) { ctx.SaveForBackward(x[0]); return [x[0] * x[0] * x[0]]; }
    protected override Tensor?[] Backward(FunctionContext ctx, Tensor[] g) { var x = ctx.SavedTensors[0]; return [g[0] * 3 * x * x]; }
}

/// <summary>Two outputs, exp(x) (saved as an output) and x * y.</summary>
internal sealed class ExpAndProduct : CustomFunction
{
    protected override Tensor[] Forward(FunctionContext ctx, Tensor[] v)
    {
        var e = Exp(v[0]);
        ctx.SaveForBackward(v[0], v[1], e);
        return [e, v[0] * v[1]];
    }

    protected override Tensor?[] Backward(FunctionContext ctx, Tensor[] g)
    {
        var s = ctx.SavedTensors;
        return [g[0] * s[2] + g[1] * s[1], g[1] * s[0]];
    }
}

/// <summary>Row maxima with their indices, the indices marked non-differentiable.</summary>
internal sealed class MaxWithIndex : CustomFunction
{
    protected override Tensor[] Forward(FunctionContext ctx, Tensor[] x)
    {
        var idx = ArgMax(x[0], 1, keepDim: true);
        var max = Gather(x[0], 1, idx);
        ctx.SaveForBackward(x[0], max);
        ctx["dim"] = 1;
        ctx.MarkNonDifferentiable(idx);
        return [max, idx];
    }

    // The gradient goes to the (distinct) maxima: a 0/1 mask times the broadcast output gradient.
    protected override Tensor?[] Backward(FunctionContext ctx, Tensor[] g) =>
        [Eq(ctx.SavedTensors[0], ctx.SavedTensors[1]) * g[0].Sum(ctx.Get<int>("dim"), keepDim: true)];
}

/// <summary>The README's example, verbatim: y = x / (1 + |x|).</summary>
internal sealed class SoftClip : CustomFunction
{
    protected override Tensor[] Forward(FunctionContext ctx, Tensor[] x)
    {
        ctx.SaveForBackward(x[0]);
        return [x[0] / (Abs(x[0]) + 1)];
    }

    protected override Tensor?[] Backward(FunctionContext ctx, Tensor[] g)
    {
        var d = Abs(ctx.SavedTensors[0]) + 1;
        return [g[0] / (d * d)];
    }
}

public class CustomFunctionTests
{
    [Test]
    public void The_readme_example_checks_and_trains_in_a_module()
    {
        GradCheck.Check(new SoftClip(), Tensor.Randn([5], seed: 1, DType.Float64).RequiresGrad_()).ThrowIfFailed();
        GradCheck.CheckSecondOrder(t => new SoftClip().Apply(t[0]), Tensor.Randn([5], seed: 2, DType.Float64).RequiresGrad_()).ThrowIfFailed();
        Generator.ManualSeed(0);
        var clip = new SoftClip();
        var model = new Sequential(new Linear(10, 32), new Lambda(x => clip.Apply(x)), new Linear(32, 3));
        var opt = new Autograd.Optimizers.SGD(model.Parameters(), lr: 0.5);
        var x = Tensor.Randn([64, 10], 3);
        var y = ArgMax(MatMul(x, Tensor.Randn([10, 3], 4)), 1);     // learnable labels
        double first = 0, last = 0;
        for (int step = 0; step < 50; step++)
        {
            opt.ZeroGrad();
            var loss = CrossEntropy(model.Call(x), y);
            loss.Backward();
            opt.Step();
            if (step == 0) first = loss.Item(); else last = loss.Item();
        }
        Assert.That(last, Is.LessThan(first * 0.5), $"loss {first} -> {last}");
    }

    private static Tensor X(int seed, params int[] shape) => Tensor.Randn(shape, seed, DType.Float64).RequiresGrad_();

    [Test]
    public void A_custom_function_is_recorded_like_a_built_in_op_and_passes_gradcheck_to_second_order()
    {
        var x = X(1, 3, 4);
        var y = new Cube().Apply(x);
        Assert.That(y.ToDoubleArray(), Is.EqualTo((x * x * x).ToDoubleArray()).Within(1e-12));
        Assert.That(y.GradFnName, Is.EqualTo("Cube"));
        y.Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo((3 * x * x).ToDoubleArray()).Within(1e-12));
        Assert.That(GradCheck.Check(new Cube(), X(2, 2, 3)).Passed, Is.True);
        Assert.That(GradCheck.CheckSecondOrder(t => new Cube().Apply(t[0]), X(3, 2, 3)).Passed, Is.True);
    }

    [Test]
    public void Several_outputs_get_their_own_gradients_and_an_unused_output_contributes_zeros()
    {
        var (x, y) = (X(1, 2, 3), X(2, 2, 3));
        var outs = new ExpAndProduct().ApplyMany(x, y);
        (outs[0].Sum() + 2 * outs[1].Sum()).Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo((Exp(x) + 2 * y).ToDoubleArray()).Within(1e-12));
        Assert.That(y.Grad!.ToDoubleArray(), Is.EqualTo((2 * x).ToDoubleArray()).Within(1e-12));

        var (a, b) = (X(3, 4), X(4, 4));
        new ExpAndProduct().ApplyMany(a, b)[1].Sum().Backward();     // exp(a) unused
        Assert.That(a.Grad!.ToDoubleArray(), Is.EqualTo(b.ToDoubleArray()));
        Assert.That(GradCheck.Check(new ExpAndProduct(), X(5, 3), X(6, 3)).Passed, Is.True);
        Assert.That(GradCheck.CheckSecondOrder(t => { var o = new ExpAndProduct().ApplyMany(t); return o[0] * o[1]; }, X(7, 3), X(8, 3)).Passed, Is.True);
        var e = Assert.Throws<InvalidOperationException>(() => new ExpAndProduct().Apply(x, y));
        Assert.That(e!.Message, Does.Contain("ExpAndProduct").And.Contain("ApplyMany"));
    }

    [Test]
    public void Non_differentiable_outputs_and_context_values()
    {
        var x = Tensor.From(new[] { 1.0, 5, 2, 7, 3, 0 }, 2, 3).RequiresGrad_();
        var outs = new MaxWithIndex().ApplyMany(x);
        Assert.That(outs[1].RequiresGrad, Is.False);
        Assert.That(outs[1].ToLongArray(), Is.EqualTo(new long[] { 1, 0 }));
        Assert.That(outs[0].RequiresGrad, Is.True);
        (outs[0] * Tensor.From(new[] { 2.0, 3 }, 2, 1)).Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 0.0, 2, 0, 3, 0, 0 }));
    }

    private sealed class Probe(Action<FunctionContext> atForward, Func<FunctionContext, Tensor[], Tensor?[]> backward) : CustomFunction
    {
        protected override Tensor[] Forward(FunctionContext ctx, Tensor[] inputs) { atForward(ctx); return [inputs[0] * inputs[1]]; }
        protected override Tensor?[] Backward(FunctionContext ctx, Tensor[] g) => backward(ctx, g);
    }

    [Test]
    public void NeedsInputGrad_and_a_null_gradient_meaning_none()
    {
        IReadOnlyList<bool>? needs = null;
        var (a, b, c) = (X(1, 3), Tensor.Randn([3], 2, DType.Float64), X(3, 3));
        var y = new Probe(ctx => needs = ctx.NeedsInputGrad, (ctx, g) => [g[0] * 2, null]).Apply(a, b);
        Assert.That(needs, Is.EqualTo(new[] { true, false }));
        y.Sum().Backward();
        Assert.That(a.Grad!.ToDoubleArray(), Is.All.EqualTo(2.0));
        new Probe(_ => { }, (ctx, g) => [null, g[0]]).Apply(a, c).Sum().Backward();
        Assert.That(c.Grad, Is.Not.Null);
        Assert.That(a.Grad!.ToDoubleArray(), Is.All.EqualTo(2.0), "a null gradient adds nothing");
        using (AutoGrad.NoGrad())
        {
            new Probe(ctx => needs = ctx.NeedsInputGrad, (_, _) => []).Apply(a, c);
            Assert.That(needs, Is.EqualTo(new[] { false, false }), "nothing is recorded under NoGrad");
        }
    }

    [Test]
    public void Mistakes_in_a_custom_function_are_errors_naming_it()
    {
        var (a, b) = (X(1, 3), X(2, 3));
        var e = Assert.Throws<InvalidOperationException>(() => new Probe(_ => { }, (_, g) => [g[0]]).Apply(a, b).Sum().Backward());
        Assert.That(e!.Message, Does.Contain("Probe").And.Contain("1 gradients for 2 inputs"));
        e = Assert.Throws<InvalidOperationException>(() => new Probe(_ => { }, (_, g) => [g[0].Sum(), g[0]]).Apply(a, b).Sum().Backward());
        Assert.That(e!.Message, Does.Contain("Probe").And.Contain("input 0").And.Contain("[3]"));
        var k = Assert.Throws<KeyNotFoundException>(() => new Probe(_ => { }, (ctx, g) => [g[0] * (double)ctx["scale"]!, null]).Apply(a, b).Sum().Backward());
        Assert.That(k!.Message, Does.Contain("Probe").And.Contain("scale"));

        var saved = Tensor.Randn([3], 3, DType.Float64);
        var y = new Probe(ctx => ctx.SaveForBackward(saved), (ctx, g) => [g[0] * ctx.SavedTensors[0], null]).Apply(a, b);
        saved.Add_(Tensor.Ones([3], DType.Float64));
        e = Assert.Throws<InvalidOperationException>(() => y.Sum().Backward());
        Assert.That(e!.Message, Does.Contain("Probe").And.Contain("saved tensor 0").And.Contain("in-place"));
    }

    [Test]
    public void A_deliberately_wrong_backward_is_caught_and_the_report_names_input_and_element()
    {
        // Forward a * b with a = 1, so the gradient for b is g; this backward is wrong at element 2 only.
        var wrong = new Probe(_ => { }, (ctx, g) => [null, g[0] * Tensor.From(new[] { 1.0, 1, 1.5, 1 }, 4)]);
        var a = Tensor.Ones([4], DType.Float64);
        var b = X(2, 4);
        var report = GradCheck.Check(wrong, a, b);
        Assert.That(report.Passed, Is.False);
        var bad = report.Inputs.Single(r => !r.Passed);
        Assert.That(bad.Input, Is.EqualTo(1));
        Assert.That(bad.WorstElement, Is.EqualTo(2));
        Assert.That(report.ToString(), Does.Contain("input 1").And.Contain("worst element 2"));
    }

    [Test]
    public void Returning_an_input_unchanged_leaves_the_input_a_leaf()
    {
        var x = X(1, 3);
        var y = new GradientReversal(0.5).Apply(x);
        Assert.That(x.IsLeaf, Is.True);
        Assert.That(y, Is.Not.SameAs(x));
        Assert.That(y.ToDoubleArray(), Is.EqualTo(x.ToDoubleArray()));
        (y * 3).Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.All.EqualTo(-1.5));
    }

    [Test]
    public void StraightThrough_rounds_forward_and_passes_the_gradient_unchanged()
    {
        var x = Tensor.From(new[] { -0.7, 0.2, 1.5 }, 3).RequiresGrad_();
        var y = new StraightThrough(Sign).Apply(x);
        Assert.That(y.ToDoubleArray(), Is.EqualTo(new[] { -1.0, 1, 1 }));
        (y * Tensor.From(new[] { 1.0, 2, 3 }, 3)).Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 1.0, 2, 3 }));
        var e = Assert.Throws<InvalidOperationException>(() => new StraightThrough(t => t.Sum()).Apply(x));
        Assert.That(e!.Message, Does.Contain("StraightThrough").And.Contain("[3]"));
    }

    [Test]
    public void A_custom_function_works_inside_a_module()
    {
        var fc = new Linear(3, 2); fc.To(DType.Float64);
        var model = new Sequential(fc, new Lambda(x => new Cube().Apply(x)));
        var x = Tensor.Randn([4, 3], 1, DType.Float64);
        model.Call(x).Sum().Backward();
        var h = fc.Call(x);
        Assert.That(fc.Bias!.Grad!.ToDoubleArray(), Is.EqualTo((3 * h * h).Sum(0).ToDoubleArray()).Within(1e-12));
    }
}

public class TensorHookTests
{
    [Test]
    public void A_hook_can_replace_the_gradient_that_flows_on_and_is_removed_by_its_handle()
    {
        var x = Tensor.From(new[] { 1.0, 2 }, 2).RequiresGrad_();
        var h = x * 3;
        var seen = new List<double[]>();
        var handle = h.RegisterHook(g => { seen.Add(g.ToDoubleArray()); return g * 10; });
        (h * h).Sum().Backward();
        Assert.That(seen.Single(), Is.EqualTo(new[] { 6.0, 12 }));
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 180.0, 360 }));
        handle.Remove();
        x.Grad = null;
        var h2 = x * 3;
        (h2 * h2).Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 18.0, 36 }));
        Assert.That(seen, Has.Count.EqualTo(1), "a hook on one tensor does not fire for another");
    }

    [Test]
    public void Leaf_hooks_run_before_accumulation_and_also_in_AutoGrad_Grad()
    {
        var x = Tensor.From(new[] { 1.0, -4 }, 2).RequiresGrad_();
        using var clip = x.RegisterHook(g => g.Clamp(-1, 1));
        (x * x).Sum().Backward();
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 1.0, -1 }));
        var g = AutoGrad.Grad([(x * x).Sum()], [x])[0]!;
        Assert.That(g.ToDoubleArray(), Is.EqualTo(new[] { 1.0, -1 }));
    }

    [Test]
    public void A_hook_fires_once_with_the_summed_gradient_of_a_tensor_used_twice()
    {
        var x = Tensor.From(new[] { 2.0 }, 1).RequiresGrad_();
        var h = x * 1;
        var calls = new List<double>();
        h.RegisterHook(g => { calls.Add(g.Item()); return null; });
        (h * 3 + h * 4).Sum().Backward();
        Assert.That(calls, Is.EqualTo(new[] { 7.0 }));
    }

    [Test]
    public void RetainGrad_keeps_an_intermediate_gradient_after_the_hooks()
    {
        var x = Tensor.From(new[] { 1.0, 2 }, 2).RequiresGrad_();
        var h = (x * 3).RetainGrad();
        h.RegisterHook(g => g * 2);
        var other = x * 5;
        (h * h + other).Sum().Backward();
        Assert.That(h.RetainsGrad, Is.True);
        Assert.That(h.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 12.0, 24 }));
        Assert.That(other.Grad, Is.Null, "other intermediates keep no gradient");
        Assert.That(x.RetainGrad().RetainsGrad, Is.False, "a leaf keeps its gradient anyway");
    }

    [Test]
    public void Post_accumulate_hooks_see_the_accumulated_gradient_once_per_backward()
    {
        var w = Tensor.From(new[] { 1.0, 2 }, 2).RequiresGrad_();
        var seen = new List<double[]>();
        using var h = w.RegisterPostAccumulateGradHook(t => seen.Add(t.Grad!.ToDoubleArray()));
        (w * w).Sum().Backward();
        (w * 3).Sum().Backward();
        Assert.That(seen, Is.EqualTo(new[] { new[] { 2.0, 4 }, new[] { 5.0, 7 } }));
        var e = Assert.Throws<InvalidOperationException>(() => (w * 2).RegisterPostAccumulateGradHook(_ => { }));
        Assert.That(e!.Message, Does.Contain("leaf").And.Contain("Mul"));
    }

    [Test]
    public void Hook_misuse_is_a_clear_error()
    {
        var e = Assert.Throws<InvalidOperationException>(() => Tensor.Zeros(2).RegisterHook(g => g));
        Assert.That(e!.Message, Does.Contain("does not require grad"));
        var x = Tensor.Zeros(2).RequiresGrad_();
        var y = x * 2;
        y.RegisterHook(g => g.Sum());
        e = Assert.Throws<InvalidOperationException>(() => y.Sum().Backward());
        Assert.That(e!.Message, Does.Contain("RegisterHook").And.Contain("[2]").And.Contain("[]"));
    }
}

public class ModuleHookTests
{
    [Test]
    public void Backward_hooks_see_input_and_output_gradients_and_may_replace_the_input_gradient()
    {
        var fc = new Linear(3, 2); fc.To(DType.Float64);
        var x = Tensor.Randn([4, 3], 1, DType.Float64).RequiresGrad_();
        Tensor? gin = null, gout = null;
        var h = fc.RegisterFullBackwardHook((m, gi, go) => { Assert.That(m, Is.SameAs(fc)); gin = gi; gout = go; return gi! * 2; });
        (fc.Call(x) * 3).Sum().Backward();
        Assert.That(gout!.ToDoubleArray(), Is.All.EqualTo(3.0));
        var expected = MatMul(gout!, fc.Weight);
        Assert.That(gin!.ToDoubleArray(), Is.EqualTo(expected.ToDoubleArray()).Within(1e-12));
        Assert.That(x.Grad!.ToDoubleArray(), Is.EqualTo((2 * expected).ToDoubleArray()).Within(1e-12));
        Assert.That(fc.Weight.Grad!.ToDoubleArray(), Is.EqualTo(MatMul(gout!.T, x).ToDoubleArray()).Within(1e-12), "parameter gradients unchanged");

        var calls = 0;
        h.Remove();
        using var h2 = fc.RegisterFullBackwardHook((_, gi, go) => { calls++; Assert.That(gi, Is.Null); return null; });
        fc.Call(Tensor.Randn([4, 3], 2, DType.Float64)).Sum().Backward();
        Assert.That(calls, Is.EqualTo(1), "with an input that needs no grad the hook still fires once, with a null gradInput");
    }

    [Test]
    public void A_forward_pre_hook_can_replace_the_input()
    {
        var m = new Identity();
        using var h = m.RegisterForwardPreHook((_, x) => x * 2);
        Assert.That(m.Call(Tensor.Ones(2)).ToFloatArray(), Is.EqualTo(new[] { 2f, 2 }));
        h.Dispose();
        Assert.That(m.Call(Tensor.Ones(2)).ToFloatArray(), Is.EqualTo(new[] { 1f, 1 }));
    }
}

public class AnomalyTests
{
    [Test]
    public void Anomaly_mode_names_the_op_its_shapes_and_where_it_was_created()
    {
        var x = Tensor.From(new[] { 0.0, 1, 4 }, 3).RequiresGrad_();
        using (AutoGrad.DetectAnomaly())
        {
            Assert.That(AutoGrad.IsAnomalyEnabled, Is.True);
            var y = Sqrt(x * 1) * 2;                 // d sqrt / dx at 0 is infinite
            var e = Assert.Throws<AnomalyException>(() => y.Sum().Backward());
            Assert.That(e!.Op, Is.EqualTo("Sqrt"));
            Assert.That(e.Input, Is.EqualTo(0));
            Assert.That(e.Message, Does.Contain("Sqrt").And.Contain("inputs [3]").And.Contain("NaN or infinite"));
            Assert.That(e.Message, Does.Contain(nameof(Anomaly_mode_names_the_op_its_shapes_and_where_it_was_created)).And.Contain("ResearchHooksTests.cs:line"));
        }
        Assert.That(AutoGrad.IsAnomalyEnabled, Is.False);
    }

    [Test]
    public void Without_anomaly_mode_the_backward_completes_with_non_finite_gradients()
    {
        var x = Tensor.From(new[] { 0.0, 1 }, 2).RequiresGrad_();
        Sqrt(x).Sum().Backward();
        Assert.That(double.IsInfinity(x.Grad!.ToDoubleArray()[0]), Is.True);
    }

    [Test]
    public void An_op_recorded_outside_the_mode_is_still_caught_with_a_hint()
    {
        var x = Tensor.From(new[] { 0.0 }, 1).RequiresGrad_();
        var y = Log(x);
        using var mode = AutoGrad.DetectAnomaly();
        var e = Assert.Throws<AnomalyException>(() => y.Sum().Backward());
        Assert.That(e!.Message, Does.Contain("Log").And.Contain("recorded outside DetectAnomaly"));
    }
}
