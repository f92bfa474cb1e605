using Autograd.Layers;
using Autograd.Zoo;

namespace Tests;

/// <summary>Model zoo, part 1 (LeNet-5, AlexNet, VGG, ResNet, SqueezeNet, MobileNetV2): parameter counts as torchvision, state-dict
/// keys, shapes and dtypes exactly as torchvision 0.14's (Reference/zoo/*.tsv, in order), forward shapes and initialization.</summary>
public class ZooTests1
{
    private static void AssertLogits(Module m, int[] inputShape, int numClasses, bool eval = false)
    {
        if (eval) m.Eval();
        using (AutoGrad.NoGrad())
        {
            var y = m.Call(Tensor.Randn(inputShape, seed: 1));
            Assert.That(y.Shape, Is.EqualTo(new[] { inputShape[0], numClasses }));
            Assert.That(y.ToFloatArray().All(float.IsFinite), Is.True);
        }
    }

    // ---------------- LeNet-5 ----------------

    [TestCase(LeNetActivation.ReLU, "ReLU(inplace=True)")]
    [TestCase(LeNetActivation.Tanh, "Tanh()")]
    public void LeNet5_has_61706_parameters_and_maps_28x28_digits_to_10_logits(LeNetActivation activation, string printed)
    {
        var net = new LeNet5(activation: activation);
        Assert.That(net.ParameterCount, Is.EqualTo(61_706));
        Assert.That(ZooLayout.Layout(net), Is.EqualTo(new[]
        {
            "features.0.weight\t6,1,5,5\tfloat32", "features.0.bias\t6\tfloat32",
            "features.3.weight\t16,6,5,5\tfloat32", "features.3.bias\t16\tfloat32",
            "classifier.0.weight\t120,400\tfloat32", "classifier.0.bias\t120\tfloat32",
            "classifier.2.weight\t84,120\tfloat32", "classifier.2.bias\t84\tfloat32",
            "classifier.4.weight\t10,84\tfloat32", "classifier.4.bias\t10\tfloat32",
        }));
        Assert.That(net.ToString(), Does.Contain("(1): " + printed));
        AssertLogits(net, [3, 1, 28, 28], 10);
        Assert.That(new LeNet5(numClasses: 5).ParameterCount, Is.EqualTo(61_706 - 5 * 84 - 5));
    }

    // ---------------- AlexNet ----------------

    [Test]
    public void AlexNet_matches_torchvision_and_runs_on_its_smallest_input()
    {
        var net = new AlexNet();
        Assert.That(net.ParameterCount, Is.EqualTo(61_100_840));
        ZooLayout.AssertLayout(net, "alexnet");
        AssertLogits(net, [2, 3, 63, 63], 1000);
    }

    // ---------------- VGG ----------------

    /// <summary>Parameters of the 7x7 classifier (25088 → 4096 → 4096 → 1000), the same at every depth.</summary>
    private const long VggClassifierParameters = 25088L * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000;

    private static bool IsFeature(string line) => line.StartsWith("features.");

    [Test]
    public void VGG11_matches_torchvision_in_full_and_runs_on_32x32()
    {
        var net = VGG.Vgg11(initWeights: false);
        Assert.That(net.ParameterCount, Is.EqualTo(132_863_336L));
        Assert.That(net.NamedParameters().Where(p => p.Name.StartsWith("classifier.")).Sum(p => (long)p.Parameter.Numel), Is.EqualTo(VggClassifierParameters));
        ZooLayout.AssertLayout(net, "vgg11");
        AssertLogits(net, [1, 3, 32, 32], 1000);
    }

    private static IEnumerable<TestCaseData> VggCases()
    {
        yield return new TestCaseData("vgg11", 11, false, 132_863_336L).SetName("VGG_vgg11_matches_torchvision");
        yield return new TestCaseData("vgg11_bn", 11, true, 132_868_840L).SetName("VGG_vgg11_bn_matches_torchvision");
        yield return new TestCaseData("vgg13", 13, false, 133_047_848L).SetName("VGG_vgg13_matches_torchvision");
        yield return new TestCaseData("vgg13_bn", 13, true, 133_053_736L).SetName("VGG_vgg13_bn_matches_torchvision");
        yield return new TestCaseData("vgg16", 16, false, 138_357_544L).SetName("VGG_vgg16_matches_torchvision");
        yield return new TestCaseData("vgg16_bn", 16, true, 138_365_992L).SetName("VGG_vgg16_bn_matches_torchvision");
        yield return new TestCaseData("vgg19", 19, false, 143_667_240L).SetName("VGG_vgg19_matches_torchvision");
        yield return new TestCaseData("vgg19_bn", 19, true, 143_678_248L).SetName("VGG_vgg19_bn_matches_torchvision");
    }

    /// <summary>Every depth, with and without batch norm. Building a full VGG costs 0.5-0.6 GB and seconds (the first classifier
    /// layer alone has 102.8M weights), so the features, which are all that differs between depths, come from the cifar
    /// construction (same features, 512 → classes head), and the 7x7 classifier, identical at every depth, is checked in full on
    /// VGG-11 above: the reference's classifier rows must equal vgg11's, and its feature rows ours. The parameter counts are
    /// torchvision's (its model table for vgg13_bn and vgg19_bn, which have no layout file here; for those the feature keys are
    /// checked against the plain model's, every convolution followed by a batch norm with five entries).</summary>
    [TestCaseSource(nameof(VggCases))]
    public void VGG_matches_torchvision(string model, int depth, bool batchNorm, long parameters)
    {
        var net = new VGG(depth, batchNorm, initWeights: false, cifar: true);
        long features = net.NamedParameters().Where(p => IsFeature(p.Name)).Sum(p => (long)p.Parameter.Numel);
        Assert.That(features + VggClassifierParameters, Is.EqualTo(parameters));
        var ours = ZooLayout.Layout(net).Where(IsFeature).ToList();
        var classifier = ZooLayout.ReferenceLayout("vgg11").Where(l => !IsFeature(l)).ToList();
        if (File.Exists(ZooLayout.Tsv(model)))
            Assert.That(ZooLayout.ReferenceLayout(model), Is.EqualTo(ours.Concat(classifier)));
        else
        {
            var plain = ZooLayout.ReferenceLayout(model.Replace("_bn", "")).Where(IsFeature).Select(l => l.Split('\t')[1]).ToList();
            var convs = ours.Where(l => l.Split('\t')[1].Count(c => c == ',') == 3).Select(l => l.Split('\t')[1]).ToList();
            Assert.That(convs, Is.EqualTo(plain.Where(s => s.Count(c => c == ',') == 3)));
            Assert.That(ours, Has.Count.EqualTo(plain.Count + 5 * convs.Count));
            Assert.That(ours.Where(l => l.EndsWith("num_batches_tracked\t\tint64")).Count(), Is.EqualTo(convs.Count));
        }
    }

    [Test]
    public void VGG11_cifar_has_a_512_to_classes_head_runs_on_32x32_and_is_initialized_as_torchvision()
    {
        Generator.ManualSeed(0);
        var net = VGG.Vgg11Bn(numClasses: 10, cifar: true);
        // features of vgg11_bn (132,868,840 minus the 123,642,856 of the three linear layers) + Linear(512, 10)
        Assert.That(net.ParameterCount, Is.EqualTo(132_868_840L - 123_642_856L + 512 * 10 + 10));
        var state = net.StateDict();
        Assert.That(state.Keys.TakeLast(2), Is.EqualTo(new[] { "classifier.weight", "classifier.bias" }));
        AssertLogits(net, [2, 3, 32, 32], 10);

        // kaiming_normal_(fan_out, relu) on convolutions with zero bias; N(0, 0.01) on linear layers; batch norm 1 and 0
        var w = state["features.4.weight"];                               // Conv2d(64, 128, 3): fan_out = 128 * 9
        AssertNormal(w, Math.Sqrt(2.0 / (128 * 9)));
        Assert.That(state["features.4.bias"].ToFloatArray(), Is.All.EqualTo(0f));
        Assert.That(state["features.5.weight"].ToFloatArray(), Is.All.EqualTo(1f));
        AssertNormal(state["classifier.weight"], 0.01);
        Assert.That(state["classifier.bias"].ToFloatArray(), Is.All.EqualTo(0f));
    }

    // ---------------- ResNet ----------------

    private static IEnumerable<TestCaseData> ResNetCases()
    {
        yield return new TestCaseData("resnet34", (Func<ResNet>)(() => ResNet.ResNet34()), 21_797_672L).SetName("ResNet_resnet34_matches_torchvision");
        yield return new TestCaseData("resnet50", (Func<ResNet>)(() => ResNet.ResNet50()), 25_557_032L).SetName("ResNet_resnet50_matches_torchvision");
        yield return new TestCaseData("resnet101", (Func<ResNet>)(() => ResNet.ResNet101()), 44_549_160L).SetName("ResNet_resnet101_matches_torchvision");
        yield return new TestCaseData("resnet152", (Func<ResNet>)(() => ResNet.ResNet152()), 60_192_808L).SetName("ResNet_resnet152_matches_torchvision");
    }

    [TestCaseSource(nameof(ResNetCases))]
    public void ResNet_matches_torchvision(string model, Func<ResNet> create, long parameters)
    {
        var net = create();
        Assert.That(net.ParameterCount, Is.EqualTo(parameters));
        ZooLayout.AssertLayout(net, model);
        if (model == "resnet50") AssertLogits(net, [2, 3, 32, 32], 1000);
    }

    [Test]
    public void ResNet18_cifar_has_a_3x3_stem_without_max_pool_runs_on_small_inputs_and_zero_inits_residuals()
    {
        var net = ResNet.ResNet18(numClasses: 10, zeroInitResidual: true, cifar: true);
        Assert.That(net.ParameterCount, Is.EqualTo(11_173_962));           // the usual CIFAR ResNet-18 figure
        var state = net.StateDict();
        Assert.That(state["conv1.weight"].Shape, Is.EqualTo(new[] { 64, 3, 3, 3 }));
        Assert.That(state.Keys.Skip(1), Is.EqualTo(ZooLayout.ReferenceLayout("resnet18").Skip(1).Select(l => l.Split('\t')[0])));
        Assert.That(net.ToString(), Does.Contain("(maxpool): Identity()"));

        // zero_init_residual: the last batch norm of every BasicBlock starts at weight 0, the others at 1
        var bn2 = state.Keys.Where(k => k.EndsWith("bn2.weight")).ToList();
        Assert.That(bn2, Has.Count.EqualTo(8));
        foreach (var key in bn2) Assert.That(state[key].ToFloatArray(), Is.All.EqualTo(0f), key);
        Assert.That(state["layer1.0.bn1.weight"].ToFloatArray(), Is.All.EqualTo(1f));

        AssertLogits(net, [2, 3, 16, 16], 10);
        AssertLogits(net, [1, 3, 8, 8], 10, eval: true);
    }

    [Test]
    public void ResNet18_matches_torchvision_runs_on_32x32_and_is_initialized_as_torchvision()
    {
        Generator.ManualSeed(0);
        var net = ResNet.ResNet18();
        Assert.That(net.ParameterCount, Is.EqualTo(11_689_512L));
        ZooLayout.AssertLayout(net, "resnet18");
        AssertLogits(net, [2, 3, 32, 32], 1000);

        var state = net.StateDict();
        // kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / fan_out), fan_out = out_channels * kh * kw
        AssertNormal(state["layer1.0.conv1.weight"], Math.Sqrt(2.0 / (64 * 3 * 3)));
        AssertNormal(state["conv1.weight"], Math.Sqrt(2.0 / (64 * 7 * 7)));
        AssertNormal(state["layer3.0.downsample.0.weight"], Math.Sqrt(2.0 / 256));
        Assert.That(state["layer2.1.bn2.weight"].ToFloatArray(), Is.All.EqualTo(1f));
        Assert.That(state["layer2.1.bn2.bias"].ToFloatArray(), Is.All.EqualTo(0f));
        // fc keeps nn.Linear's default: U(±1/sqrt(512))
        Assert.That(state["fc.weight"].ToFloatArray().Max(Math.Abs), Is.LessThanOrEqualTo(1 / Math.Sqrt(512)).And.GreaterThan(0.9 / Math.Sqrt(512)));
    }

    [Test]
    public void ResNet50_zero_init_residual_zeroes_bn3()
    {
        var net = new ResNet(ResNetBlock.Bottleneck, [1, 1, 1, 1], numClasses: 10, zeroInitResidual: true);
        var state = net.StateDict();
        Assert.That(state.Keys.Count(k => k.EndsWith("bn3.weight")), Is.EqualTo(4));
        foreach (var key in state.Keys.Where(k => k.EndsWith("bn3.weight")))
            Assert.That(state[key].ToFloatArray(), Is.All.EqualTo(0f), key);
        AssertLogits(net, [2, 3, 32, 32], 10);
    }

    // ---------------- SqueezeNet ----------------

    [TestCase("1_0", "squeezenet1_0", 1_248_424L)]
    [TestCase("1_1", "squeezenet1_1", 1_235_496L)]
    public void SqueezeNet_matches_torchvision_and_is_initialized_as_torchvision(string version, string model, long parameters)
    {
        Generator.ManualSeed(0);
        var net = new SqueezeNet(version);
        Assert.That(net.ParameterCount, Is.EqualTo(parameters));
        ZooLayout.AssertLayout(net, model);
        AssertLogits(net, [2, 3, 32, 32], 1000);
        AssertLogits(new SqueezeNet(version, numClasses: 10), [1, 3, 32, 32], 10, eval: true);

        var state = net.StateDict();
        AssertNormal(state["classifier.1.weight"], 0.01);
        var w = state["features.3.expand3x3.weight"].ToFloatArray();        // kaiming_uniform_: bound sqrt(6 / fan_in), fan_in = 16 * 9
        double bound = Math.Sqrt(6.0 / (16 * 9));
        Assert.That(w.Max(Math.Abs), Is.LessThanOrEqualTo(bound).And.GreaterThan(0.95 * bound));
        Assert.That(StdOf(w), Is.EqualTo(bound / Math.Sqrt(3)).Within(5).Percent);
        Assert.That(state.Where(kv => kv.Key.EndsWith(".bias")).SelectMany(kv => kv.Value.ToFloatArray()), Is.All.EqualTo(0f));
    }

    // ---------------- MobileNetV2 ----------------

    [Test]
    public void MobileNetV2_matches_torchvision_and_runs_on_32x32()
    {
        Generator.ManualSeed(0);
        var net = new MobileNetV2();
        Assert.That(net.ParameterCount, Is.EqualTo(3_504_872));
        ZooLayout.AssertLayout(net, "mobilenet_v2");
        AssertLogits(net, [2, 3, 32, 32], 1000);

        var state = net.StateDict();
        AssertNormal(state["features.2.conv.0.0.weight"], Math.Sqrt(2.0 / 96));    // 1x1 conv 16 -> 96: fan_out = 96
        AssertNormal(state["classifier.1.weight"], 0.01);
        Assert.That(state["classifier.1.bias"].ToFloatArray(), Is.All.EqualTo(0f));
        var printed = net.ToString();
        Assert.That(printed, Does.Contain("(2): ReLU6()"));
        Assert.That(printed, Does.Contain("(0): Conv2dNormActivation("));
        Assert.That(printed, Does.Contain("(1): InvertedResidual("));

        var small = new MobileNetV2(numClasses: 10, widthMult: 0.5);
        AssertLogits(small, [1, 3, 32, 32], 10, eval: true);
        Assert.That(MobileNetV2.MakeDivisible(32 * 0.5, 8), Is.EqualTo(16));
        Assert.That(MobileNetV2.MakeDivisible(24 * 0.75, 8), Is.EqualTo(24));      // 18 rounds to 16 < 0.9 * 18, so one more multiple
    }

    [Test]
    public void InvertedResidual_adds_the_input_only_when_shapes_match()
    {
        Assert.That(new InvertedResidual(16, 16, 1, 6).UseResConnect, Is.True);
        Assert.That(new InvertedResidual(16, 16, 2, 6).UseResConnect, Is.False);
        Assert.That(new InvertedResidual(16, 24, 1, 6).UseResConnect, Is.False);
        var block = new InvertedResidual(32, 16, 1, 1);                                 // expand ratio 1: no expansion conv
        Assert.That(block.StateDict().Keys.First(), Is.EqualTo("conv.0.0.weight"));
        Assert.That(block.StateDict()["conv.0.0.weight"].Shape, Is.EqualTo(new[] { 32, 1, 3, 3 }));
    }

    // ---------------- helpers ----------------

    private static double StdOf(float[] v)
    {
        double mean = v.Average(x => (double)x);
        return Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (v.Length - 1));
    }

    /// <summary>Mean within 4 standard errors of 0 and standard deviation within 4% of <paramref name="std"/>.</summary>
    private static void AssertNormal(Tensor t, double std)
    {
        var v = t.ToFloatArray();
        double mean = v.Average(x => (double)x);
        Assert.That(Math.Abs(mean), Is.LessThan(4 * std / Math.Sqrt(v.Length)), "mean");
        Assert.That(StdOf(v), Is.EqualTo(std).Within(4).Percent, "std");
    }
}
