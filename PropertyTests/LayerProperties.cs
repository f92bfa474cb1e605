using Autograd.Layers;
using Autograd.Testing;
using FsCheck;
using FsCheck.Fluent;

namespace PropertyTests;

/// <summary>A layer under test: how to build it (in float64) and an input for it.</summary>
public sealed record LayerSpec(string Name, Func<Draw, Module> Make, Func<Draw, int[]> InputShape, Values Kind = Values.Normal, bool Random = false)
{
    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>Every layer of Autograd.Layers through its module: gradients w.r.t. input and parameters, state-dict round trips,
/// and train/eval behaviour.</summary>
public class LayerProperties
{
    private static void ForAll(Action<Draw> property) => DrawArbitrary.ForAll(25, (20261126UL, 107UL), property);

    private static int[] Image(Draw d, int c) => [1 + d.PickB(2), c, d.Sizes[2] + 2, d.Sizes[3] + 2];

    public static readonly LayerSpec[] Specs =
    [
        new("Linear", d => new Linear(d.Sizes[0], d.Sizes[1], bias: d.PickA(2) == 1), d => [d.Sizes[2], d.Sizes[0]]),
        new("Conv1d", d => new Conv1d(2, d.Sizes[0], 1 + d.PickA(3), stride: 1 + d.PickB(2), padding: d.PickA(2)), d => [2, 2, d.Sizes[1] + 3]),
        new("Conv2d", d => new Conv2d(2, 2 * d.Sizes[0], [1 + d.PickA(3), 2], padding: "same", groups: 2), d => Image(d, 2)),
        new("Conv3d", d => new Conv3d(1, d.Sizes[0], 2, stride: [1, 1, 2]), d => [1, 1, 3, 3, d.Sizes[1] + 2]),
        new("ConvTranspose1d", d => new ConvTranspose1d(2, d.Sizes[0], 2, stride: 2), d => [1, 2, d.Sizes[1]]),
        new("ConvTranspose2d", d => new ConvTranspose2d(2, 2, 3, stride: 2, padding: 1, outputPadding: 1), d => Image(d, 2)),
        new("ConvTranspose3d", d => new ConvTranspose3d(1, 2, 2), d => [1, 1, 2, 2, d.Sizes[1]]),
        new("BatchNorm1d", d => new BatchNorm1d(d.Sizes[0]), d => [3, d.Sizes[0]]),
        new("BatchNorm2d", d => new BatchNorm2d(2, affine: d.PickA(2) == 1), d => Image(d, 2)),
        new("BatchNorm3d", d => new BatchNorm3d(2), d => [2, 2, 2, 2, d.Sizes[1]]),
        // Without a process group it is a batch norm of any rank; its synchronized arithmetic is OpRegistry's SyncBatchNorm entry.
        new("SyncBatchNorm", d => new Autograd.Layers.SyncBatchNorm(2), d => [2, 2, .. d.Sizes[1..(1 + d.PickA(3))]]),
        new("LayerNorm", d => new LayerNorm([d.Sizes[1] + 1]), d => [d.Sizes[0], d.Sizes[1] + 1]),
        new("GroupNorm", d => new GroupNorm(2, 4), d => Image(d, 4)),
        new("InstanceNorm2d", d => new InstanceNorm2d(2, affine: d.PickA(2) == 1), d => Image(d, 2)),
        new("LocalResponseNorm", d => new LocalResponseNorm(3, alpha: 0.5), d => Image(d, 4)),
        new("MaxPool1d", d => new MaxPool1d(2), d => [1, 2, d.Sizes[1] * 2], Values.Distinct),
        new("MaxPool2d", d => new MaxPool2d(2, stride: 1), d => Image(d, 2), Values.Distinct),
        new("MaxPool3d", d => new MaxPool3d(2), d => [1, 1, 2, 2, d.Sizes[1] * 2], Values.Distinct),
        new("AvgPool1d", d => new AvgPool1d(2, padding: 1), d => [1, 2, d.Sizes[1] + 2]),
        new("AvgPool2d", d => new AvgPool2d(2, ceilMode: true), d => Image(d, 2)),
        new("AvgPool3d", d => new AvgPool3d(2), d => [1, 1, 2, 2, d.Sizes[1] * 2]),
        new("AdaptiveAvgPool2d", d => new AdaptiveAvgPool2d([1 + d.PickA(2), 2]), d => Image(d, 2)),
        new("AdaptiveMaxPool2d", d => new AdaptiveMaxPool2d(1), d => Image(d, 2), Values.Distinct),
        new("Dropout", d => new Dropout(0.3), d => [d.Sizes[0], d.Sizes[1]], Random: true),
        new("Dropout2d", d => new Dropout2d(0.3), d => Image(d, 3), Random: true),
        new("Flatten", d => new Flatten(), d => Image(d, 2)),
        new("Unflatten", d => new Unflatten(1, [2, d.Sizes[1]]), d => [d.Sizes[0], 2 * d.Sizes[1]]),
        new("Identity", d => new Identity(), d => [d.Sizes[0]]),
        new("PixelShuffle", d => new PixelShuffle(2), d => [1, 4, d.Sizes[1], d.Sizes[2]]),
        new("Upsample", d => new Upsample(scaleFactor: [2], mode: "bilinear"), d => Image(d, 1)),
        new("Sigmoid", _ => new Sigmoid(), d => [d.Sizes[0], d.Sizes[1]]),
        new("Tanh", _ => new Tanh(), d => [d.Sizes[0], d.Sizes[1]]),
        new("ReLU", _ => new ReLU(), d => [d.Sizes[0], d.Sizes[1]], Values.Distinct),
        new("LeakyReLU", _ => new LeakyReLU(0.2), d => [d.Sizes[0], d.Sizes[1]], Values.Distinct),
        new("ELU", _ => new ELU(), d => [d.Sizes[0], d.Sizes[1]], Values.Distinct),
        new("SELU", _ => new SELU(), d => [d.Sizes[0], d.Sizes[1]], Values.Distinct),
        new("GELU", d => new GELU(d.PickA(2) == 0 ? "none" : "tanh"), d => [d.Sizes[0], d.Sizes[1]]),
        new("SiLU", _ => new SiLU(), d => [d.Sizes[0], d.Sizes[1]]),
        new("Softplus", _ => new Autograd.Layers.Softplus(), d => [d.Sizes[0], d.Sizes[1]]),
        new("Hardsigmoid", _ => new Hardsigmoid(), d => [d.Sizes[0], d.Sizes[1]], Values.Distinct),
        new("Hardswish", _ => new Hardswish(), d => [d.Sizes[0], d.Sizes[1]], Values.Distinct),
        new("Mish", _ => new Autograd.Layers.Mish(), d => [d.Sizes[0], d.Sizes[1]]),
        new("Softmax", _ => new Autograd.Layers.Softmax(1), d => [d.Sizes[0], d.Sizes[1]]),
        new("LogSoftmax", _ => new Autograd.Layers.LogSoftmax(1), d => [d.Sizes[0], d.Sizes[1]]),
        new("Sequential", d => new Sequential(new Linear(3, 4), new Tanh(), new Linear(4, 2)), d => [d.Sizes[0], 3]),
        new("Residual", d => new Residual(new Sequential(new Conv2d(2, 2, 3, padding: 1), new BatchNorm2d(2)), new Conv2d(2, 2, 1), new Tanh()), d => Image(d, 2)),
        new("Concat", d => new Concat(1, new Conv2d(2, 1, 1), new Sequential(new Conv2d(2, 2, 3, padding: 1), new Tanh())), d => Image(d, 2)),
        new("ParallelSum", d => new ParallelSum(new Linear(3, 2), new Linear(3, 2, bias: false)), d => [d.Sizes[0], 3]),
        new("Lambda", d => { var fc = new Linear(3, 3); return new Lambda(x => Functional.Tanh(fc.Call(x)) * x, ("fc", fc)); }, d => [d.Sizes[0], 3]),
    ];

    private static (Module Module, Tensor Input) Build(LayerSpec spec, Draw d)
    {
        Generator.ManualSeed(d.Seed);
        var m = spec.Make(d).To(DType.Float64);
        var x = new OpCase(_ => _[0], new Input(spec.InputShape(d), spec.Kind)).Build(DType.Float64, d.Seed)[0];
        return (m, x);
    }

    [Test]
    public void Every_layer_has_an_entry()
    {
        var layers = typeof(Module).Assembly.GetTypes()
            .Where(t => t.IsSubclassOf(typeof(Module)) && !t.IsAbstract && t.IsPublic)
            .Select(t => t.Name).ToHashSet();
        var covered = Specs.Select(s => s.Name).Concat(["Bilinear", "Embedding", "ModuleList", "ModuleDict"]).ToHashSet();
        Assert.That(layers.Except(covered), Is.Empty, "layers without a LayerSpec");
    }

    public static IEnumerable<LayerSpec> Deterministic => Specs.Where(s => !s.Random);

    [TestCaseSource(nameof(Deterministic))]
    public void Gradients_through_the_module_match_finite_differences(LayerSpec spec) => ForAll(d =>
    {
        var (m, x) = Build(spec, d);
        x.RequiresGrad_();
        var report = GradCheck.Check(t => m.Call(t[0]), [x, .. m.Parameters()]);
        Assert.That(report.Passed, Is.True, $"{spec} {d}\n{report}");
    });

    [TestCaseSource(nameof(Specs))]
    public void State_dict_round_trips(LayerSpec spec) => ForAll(d =>
    {
        var (a, x) = Build(spec, d);
        Generator.ManualSeed(d.Seed + 1);
        var b = spec.Make(d).To(DType.Float64);
        a.Train(); a.Call(x);                                  // moves running statistics away from their initial values
        b.LoadStateDict(a.StateDict());
        a.Eval(); b.Eval();
        Assert.That(b.StateDict().Keys, Is.EqualTo(a.StateDict().Keys), $"{spec}");
        foreach (var (k, v) in a.StateDict()) Assert.That(b.StateDict()[k].ToDoubleArray(), Is.EqualTo(v.ToDoubleArray()), $"{spec} {k}");
        Assert.That(b.Call(x).ToDoubleArray(), Is.EqualTo(a.Call(x).ToDoubleArray()), $"{spec} {d}");
    });

    [TestCaseSource(nameof(Specs))]
    public void Train_and_eval_differ_only_for_batch_norm_and_dropout(LayerSpec spec) => ForAll(d =>
    {
        var (m, x) = Build(spec, d);
        bool modeDependent = m.Modules().Any(c => c is BatchNormNd or Dropout or Dropout2d);
        var train = m.Train().Call(x).ToDoubleArray();
        var eval = m.Eval().Call(x).ToDoubleArray();
        if (modeDependent) Assert.That(train, Is.Not.EqualTo(eval), $"{spec} {d}: training mode must differ from eval mode");
        else Assert.That(train, Is.EqualTo(eval), $"{spec} {d}");
    });
}
