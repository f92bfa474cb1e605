using static Autograd.Functional;

namespace Tests;

public class GradCheckTests
{
    [Test]
    public void Passes_for_a_correct_op_in_both_modes()
    {
        var x = Tensor.Randn([3, 4], 1, DType.Float64).RequiresGrad_();
        Assert.That(GradCheck.Check(t => Tanh(t[0]), x).Passed, Is.True);
        var report = GradCheck.Check(t => Tanh(t[0]), new GradCheckOptions { Fast = true }, x);
        Assert.That(report.Passed, Is.True);
        Assert.That(report.Mode, Is.EqualTo("fast"));
    }

    [Test]
    public void Refuses_float32_inputs_and_says_why()
    {
        var x = Tensor.Randn([3], 1).RequiresGrad_();
        var e = Assert.Throws<ArgumentException>(() => GradCheck.Check(t => t[0] * 2, x));
        Assert.That(e!.Message, Does.Contain("Float64").And.Contain("input 0"));
    }

    [Test]
    public void A_wrong_gradient_is_reported_with_input_element_and_both_values()
    {
        // A deliberately wrong derivative (2x instead of 3x^2) through AutoGrad.Record.
        Tensor Cube(Tensor x) => AutoGrad.Record(Tensor.From(x.ToDoubleArray().Select(v => v * v * v).ToArray(), x.Shape), "BadCube", g => [g * 2 * x], x);
        var a = Tensor.Randn([2], 1, DType.Float64).RequiresGrad_();
        var b = Tensor.From(new[] { 1.0, 2.0, 3.0 }, 3).RequiresGrad_();
        var report = GradCheck.Check(t => t[0].Sum() + Cube(t[1]), a, b);
        Assert.That(report.Passed, Is.False);
        var bad = report.Inputs.Single(r => !r.Passed);
        Assert.That(bad.Input, Is.EqualTo(1));
        Assert.That(bad.WorstElement, Is.EqualTo(2));                  // x = 3: numeric 27, analytic 6
        Assert.That(bad.Numeric, Is.EqualTo(27).Within(1e-5));
        Assert.That(bad.Analytic, Is.EqualTo(6).Within(1e-12));
        var e = Assert.Throws<GradCheckException>(() => report.ThrowIfFailed());
        Assert.That(e!.Message, Does.Contain("input 1").And.Contain("worst element 2"));
    }

    [Test]
    public void Detects_a_non_reentrant_backward()
    {
        int calls = 0;
        Tensor Flaky(Tensor x) => AutoGrad.Record(x.Detach() * 1.0, "Flaky", g => [g * (1 + calls++)], x);
        var x = Tensor.Randn([2], 1, DType.Float64).RequiresGrad_();
        var report = GradCheck.Check(t => Flaky(t[0]), x);
        Assert.That(report.Passed, Is.False);
        Assert.That(report.Failure, Does.Contain("reentrant"));
    }

    [Test]
    public void Second_order_check_catches_a_gradient_that_is_not_differentiable_through()
    {
        // Backward computed outside the graph: first order correct, second order wrong.
        Tensor Square(Tensor x) => AutoGrad.Record(x.Detach() * x.Detach(), "DetachedSquare", g => [g * 2 * x.Detach()], x);
        var x = Tensor.Randn([3], 2, DType.Float64).RequiresGrad_();
        Assert.That(GradCheck.Check(t => Square(t[0]), x).Passed, Is.True);
        Assert.That(GradCheck.CheckSecondOrder(t => Square(t[0]), x).Passed, Is.False);
        Assert.That(GradCheck.CheckSecondOrder(t => t[0] * t[0], x).Passed, Is.True);
    }
}
