using System.Reflection;
using Autograd.Backends;
using FsCheck;
using FsCheck.Fluent;
using Autograd.Testing;

namespace PropertyTests;

/// <summary>The generic harness: every registry entry, over random shapes, values and hyper-parameters.</summary>
[TestFixture]
public class OpProperties
{
    /// <summary>Cases per op; fixed replay seed so CI is deterministic (a failure prints the draw to replay).</summary>
    private const int Cases = 100;

    public static IEnumerable<OpSpec> Specs => OpRegistry.All;

    private static void ForAll(Action<Draw> property) => DrawArbitrary.ForAll(Cases, (20261123UL, 97UL), property);

    [Test]
    public void Every_public_op_of_Functional_has_a_registry_entry()
    {
        var ops = typeof(Functional).GetMethods(BindingFlags.Public | BindingFlags.Static)
            .Where(m => m.ReturnType == typeof(Tensor) || m.ReturnType == typeof(Tensor[]))
            .Select(m => m.Name).Distinct().ToHashSet();
        var covered = OpRegistry.All.Select(s => s.Name).Concat(OpRegistry.NonDifferentiable).ToHashSet();
        Assert.That(ops.Except(covered), Is.Empty, "Functional ops without a registry entry");
        Assert.That(covered.Except(ops), Is.Empty, "registry entries naming no Functional op");
    }

    [Test]
    public void Ops_listed_as_non_differentiable_return_tensors_that_do_not_require_grad()
    {
        var x = Tensor.Randn([3, 4], 1).RequiresGrad_();
        var y = Tensor.Randn([3, 4], 2).RequiresGrad_();
        foreach (var name in OpRegistry.NonDifferentiable)
        {
            var m = typeof(Functional).GetMethods().First(m => m.Name == name);
            var args = m.GetParameters().Select((p, i) => p.ParameterType == typeof(Tensor) ? (i == 0 ? x : y) : p.DefaultValue).ToArray();
            var r = (Tensor)m.Invoke(null, args)!;
            Assert.That(r.RequiresGrad, Is.False, name);
        }
    }

    [TestCaseSource(nameof(Specs))]
    public void Gradient_matches_finite_differences_in_float64(OpSpec spec) => ForAll(d =>
    {
        var c = spec.Make(d);
        var inputs = c.Build(DType.Float64, d.Seed);
        var report = GradCheck.Check(c.F, inputs);
        Assert.That(report.Passed, Is.True, $"{spec} {d}\n{report}");
    });

    [TestCaseSource(nameof(Specs))]
    public void Second_order_gradient_matches_finite_differences(OpSpec spec)
    {
        if (!spec.SecondOrder) Assert.Ignore($"{spec}: second order not supported");
        ForAll(d =>
        {
            var c = spec.Make(d);
            var inputs = c.Build(DType.Float64, d.Seed);
            var report = GradCheck.CheckSecondOrder(c.F, new GradCheckOptions { Fast = true, Seed = d.Seed }, inputs);
            Assert.That(report.Passed, Is.True, $"{spec} {d}\n{report}");
        });
    }

    [TestCaseSource(nameof(Specs))]
    public void Float32_forward_matches_float64(OpSpec spec) => ForAll(d =>
    {
        var c = spec.Make(d);
        var y32 = c.F(c.Build(DType.Float32, d.Seed)).ToDoubleArray();
        var y64 = c.F(c.Build(DType.Float64, d.Seed)).ToDoubleArray();
        Assert.That(y32.Length, Is.EqualTo(y64.Length));
        for (int i = 0; i < y64.Length; i++)
            Assert.That(Math.Abs(y32[i] - y64[i]), Is.LessThanOrEqualTo(spec.Float32Tol * (1 + Math.Abs(y64[i]))), $"{spec} {d} element {i}");
    });

    [TestCaseSource(nameof(Specs))]
    public void Gradients_have_the_shape_of_their_inputs(OpSpec spec) => ForAll(d =>
    {
        var c = spec.Make(d);
        var inputs = c.Build(DType.Float64, d.Seed);
        var y = c.F(inputs);
        var wrt = inputs.Where(t => t.RequiresGrad).ToArray();
        if (!y.RequiresGrad) return;
        var grads = AutoGrad.Grad([y], wrt, [Tensor.OnesLike(y)], allowUnused: true);
        for (int i = 0; i < wrt.Length; i++)
            if (grads[i] is Tensor g) Assert.That(g.Shape, Is.EqualTo(wrt[i].Shape), $"{spec} {d} input {i}");
    });

    [TestCaseSource(nameof(Specs))]
    public void Every_backend_matches_the_managed_backend(OpSpec spec)
    {
        var managed = Backend.TryCreate("managed", out _)!;
        var others = Backend.Available().Where(b => b.Name != "managed").ToList();
        if (others.Count == 0) Assert.Ignore("no native backend loads on this machine");
        ForAll(d =>
        {
            var c = spec.Make(d);
            foreach (var dtype in new[] { DType.Float64, DType.Float32 })
            {
                double tol = dtype == DType.Float64 ? 1e-10 : 1e-5;
                var expected = ValueAndGrads(c, dtype, d.Seed, managed);
                foreach (var b in others)
                {
                    var actual = ValueAndGrads(c, dtype, d.Seed, b);
                    for (int k = 0; k < expected.Length; k++)
                        for (int i = 0; i < expected[k].Length; i++)
                            Assert.That(Math.Abs(actual[k][i] - expected[k][i]), Is.LessThanOrEqualTo(tol * (1 + Math.Abs(expected[k][i]))),
                                $"{spec} {d} {dtype}: {b.Name} vs managed, {(k == 0 ? "value" : $"gradient {k - 1}")} element {i}");
                }
            }
        });
    }

    private static double[][] ValueAndGrads(OpCase c, DType dtype, int seed, IBackend backend)
    {
        using var use = Backend.Use(backend);
        var inputs = c.Build(dtype, seed);
        var y = c.F(inputs);
        var wrt = inputs.Where(t => t.RequiresGrad).ToArray();
        var grads = y.RequiresGrad ? AutoGrad.Grad([y], wrt, [Tensor.OnesLike(y)], allowUnused: true) : [];
        return [y.ToDoubleArray(), .. grads.Select(g => g?.ToDoubleArray() ?? [])];
    }
}
