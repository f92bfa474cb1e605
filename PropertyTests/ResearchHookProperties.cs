using Autograd.Testing;
using static Autograd.Functional;

namespace PropertyTests;

/// <summary>Re-implements any op as a <see cref="CustomFunction"/>: forward runs it without a graph, backward recomputes it
/// with a graph and asks the engine for the vector-Jacobian product (activation checkpointing in miniature).</summary>
internal sealed class Recompute(string name, Func<Tensor[], Tensor> f) : CustomFunction
{
    public override string Name => "Recompute" + name;

    protected override Tensor[] Forward(FunctionContext ctx, Tensor[] inputs)
    {
        // Inputs that need no gradient may be state the op updates in place (running statistics): keep a snapshot.
        ctx.SaveForBackward([.. inputs.Select((t, i) => ctx.NeedsInputGrad[i] ? t : t.Clone())]);
        return [f(inputs)];
    }

    protected override Tensor?[] Backward(FunctionContext ctx, Tensor[] gradOutputs)
    {
        var leaves = ctx.SavedTensors.Select((t, i) => ctx.NeedsInputGrad[i] ? t.Detach().RequiresGrad_() : t).ToArray();
        Tensor y;
        using (AutoGrad.EnableGrad()) y = f(leaves);
        var wanted = leaves.Where((_, i) => ctx.NeedsInputGrad[i]).ToArray();
        var grads = AutoGrad.Grad([y], wanted, [gradOutputs[0]], allowUnused: true);
        int k = 0;
        return [.. leaves.Select((_, i) => ctx.NeedsInputGrad[i] ? grads[k++] : null)];
    }
}

/// <summary>a * b whose backward multiplies the gradient of one input by a factor at one element.</summary>
internal sealed class WrongAt(int input, int element, double factor) : CustomFunction
{
    protected override Tensor[] Forward(FunctionContext ctx, Tensor[] v) { ctx.SaveForBackward(v); return [v[0] * v[1]]; }

    protected override Tensor?[] Backward(FunctionContext ctx, Tensor[] g)
    {
        var s = ctx.SavedTensors;
        var grads = new[] { g[0] * s[1], g[0] * s[0] };
        var scale = Enumerable.Repeat(1.0, grads[input].Numel).ToArray();
        scale[element] = factor;
        grads[input] = grads[input] * Tensor.From(scale, grads[input].Shape);
        return grads;
    }
}

/// <summary>Custom functions, tensor hooks and anomaly detection over random graphs.</summary>
public class ResearchHookProperties
{
    private static void ForAll(int cases, Action<Draw> property) => DrawArbitrary.ForAll(cases, (20261127UL, 109UL), property);

    public static IEnumerable<OpSpec> Specs => OpRegistry.All;

    [TestCaseSource(nameof(Specs))]
    public void A_custom_function_reimplementing_an_op_gives_identical_values_and_gradients(OpSpec spec) => ForAll(10, d =>
    {
        var c = spec.Make(d);
        var inputs = c.Build(DType.Float64, d.Seed);
        var wrt = inputs.Where(t => t.RequiresGrad).ToArray();
        var expected = c.F(inputs);
        var actual = new Recompute(spec.Name, c.F).Apply(inputs);
        Assert.That(actual.ToDoubleArray(), Is.EqualTo(expected.ToDoubleArray()), $"{spec} {d}: values");
        var v = Tensor.Randn(expected.Shape, d.Seed + 1, DType.Float64);
        var ge = AutoGrad.Grad([expected], wrt, [v], allowUnused: true);
        var ga = AutoGrad.Grad([actual], wrt, [v], allowUnused: true);
        for (int i = 0; i < wrt.Length; i++)
            Assert.That(ga[i]?.ToDoubleArray() ?? [], Is.EqualTo(ge[i]?.ToDoubleArray() ?? []), $"{spec} {d}: gradient of input {i}");
    });

    [Test]
    public void GradCheck_passes_a_correct_custom_function_and_pinpoints_a_wrong_one() => ForAll(50, d =>
    {
        var shape = d.Shape(1, 2);
        Tensor Input(int seed) => Tensor.Randn(shape, seed, DType.Float64).RequiresGrad_();
        var (a, b) = (Input(d.Seed), Input(d.Seed + 1));
        Assert.That(GradCheck.Check(new WrongAt(0, 0, 1.0), a, b).Passed, Is.True, $"{d}: factor 1 is the correct gradient");
        int input = d.PickA(2), element = d.PickB(a.Numel);
        var report = GradCheck.Check(new WrongAt(input, element, 1.5), a, b);
        Assert.That(report.Passed, Is.False, d.ToString());
        var bad = report.Inputs.Single(r => !r.Passed);
        Assert.That((bad.Input, bad.WorstElement), Is.EqualTo((input, (long)element)), $"{d}\n{report}");
    });

    [Test]
    public void Hooks_fire_once_per_backward_after_every_consumer_and_see_the_full_gradient() => ForAll(50, d =>
    {
        // A random DAG over n nodes: node j combines one or two earlier nodes.
        var g = new Generator(d.Seed);
        int n = 3 + d.PickA(20);
        var x = Tensor.Randn([d.Sizes[0]], g, DType.Float64).RequiresGrad_();
        var nodes = new List<Tensor> { x };
        var parents = new List<int[]> { Array.Empty<int>() };
        for (int j = 1; j < n; j++)
        {
            int p = (int)g.NextLong(j), q = (int)g.NextLong(j);
            nodes.Add(g.NextDouble() < 0.5 ? Tanh(nodes[p]) * 0.9 : nodes[p] * nodes[q] * 0.5 + nodes[q]);
            parents.Add(p == q ? [p] : [p, q]);
        }
        var fired = new List<int>();
        var seen = new Tensor?[n];
        for (int j = 0; j < n; j++)
        {
            int id = j;
            nodes[j].RegisterHook(gr => { fired.Add(id); seen[id] = gr; return null; });
            if (j > 0) nodes[j].RetainGrad();
        }
        var loss = nodes.Skip(1).Aggregate(Tensor.Zeros([], DType.Float64), (s, t) => s + t.Sum());
        loss.Backward();
        Assert.That(fired, Is.Unique, d.ToString());
        Assert.That(fired, Is.EquivalentTo(Enumerable.Range(0, n)), d.ToString());
        for (int j = 1; j < n; j++)
            foreach (var p in parents[j])
                Assert.That(fired.IndexOf(j), Is.LessThan(fired.IndexOf(p)), $"{d}: node {j} uses node {p}, so its hook fires first");
        for (int j = 0; j < n; j++)
            Assert.That(seen[j]!.ToDoubleArray(), Is.EqualTo(nodes[j].Grad!.ToDoubleArray()), $"{d}: node {j}");
    });

    [Test]
    public void Anomaly_mode_finds_the_one_op_with_a_non_finite_gradient_in_a_graph_of_1000_ops() => ForAll(20, d =>
    {
        var g = new Generator(d.Seed);
        int culprit = (int)g.NextLong(1000);
        bool usePow = d.PickA(2) == 1;
        var x = Tensor.Rand([d.Sizes[0], d.Sizes[1]], g, DType.Float64).RequiresGrad_();
        using var mode = AutoGrad.DetectAnomaly();
        var y = x;
        for (int i = 0; i < 1000; i++)
            y = i == culprit
                ? y + (usePow ? Pow(y * 0, 0.5) : Sqrt(y * 0))   // forward 0, derivative infinite
                : (i % 3) switch { 0 => Tanh(y), 1 => y * 0.9 + 0.1, _ => Sigmoid(y) };
        var e = Assert.Throws<AnomalyException>(() => y.Sum().Backward())!;
        Assert.That(e.Op, Is.EqualTo(usePow ? "Pow" : "Sqrt"), d.ToString());
        Assert.That(e.Message, Does.Contain($"[{d.Sizes[0]}, {d.Sizes[1]}]").And.Contain("ResearchHookProperties.cs:line"), d.ToString());
    });
}
