using Autograd.Layers;
using Autograd.Zoo;

namespace Tests;

/// <summary>Model zoo, part 2 (DenseNet, GoogLeNet, Inception v3, EfficientNet): parameter counts as torchvision, state-dict keys,
/// shapes and dtypes exactly as torchvision 0.14's (Reference/zoo/*.tsv, in order), forward shapes on the smallest inputs the
/// architectures allow, auxiliary outputs, stochastic depth and torchvision's weight initialization.</summary>
public class ZooTests2
{
    private static Tensor Logits(Module m, int[] inputShape, int numClasses)
    {
        using (AutoGrad.NoGrad())
        {
            var y = m.Call(Tensor.Randn(inputShape, seed: 1));
            Assert.That(y.Shape, Is.EqualTo(new[] { inputShape[0], numClasses }));
            Assert.That(y.ToFloatArray().All(float.IsFinite), Is.True);
            return y;
        }
    }

    private static (double Mean, double Std, double MaxAbs) Stats(Tensor t)
    {
        var v = t.ToFloatArray().Select(f => (double)f).ToArray();
        double mean = v.Average();
        return (mean, Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / v.Length), v.Max(Math.Abs));
    }

    private static Tensor Param(Module m, string key) => m.StateDict()[key];

    // Default 1000-class models, built once (with a fixed seed) for the read-only layout and initialization tests.
    private static T Seeded<T>(long seed, Func<T> build) { Generator.ManualSeed(seed); return build(); }
    private static readonly Lazy<DenseNet> DenseNet121Default = new(() => Seeded(1, () => DenseNet.DenseNet121()));
    private static readonly Lazy<GoogLeNet> GoogLeNetDefault = new(() => Seeded(2, () => new GoogLeNet()));
    private static readonly Lazy<InceptionV3> InceptionV3Default = new(() => Seeded(3, () => new InceptionV3()));
    private static readonly Lazy<EfficientNet> EfficientNetB0Default = new(() => Seeded(4, () => EfficientNet.EfficientNetB0()));

    // ---------------- DenseNet ----------------

    private static DenseNet DenseNetByName(string name) => name switch
    {
        "densenet121" => DenseNet121Default.Value,
        "densenet169" => DenseNet.DenseNet169(),
        _ => DenseNet.DenseNet201(),
    };

    [TestCase("densenet121", 7_978_856)]
    [TestCase("densenet169", 14_149_480)]
    [TestCase("densenet201", 20_013_928)]
    public void DenseNet_parameter_count_and_state_dict_layout_equal_torchvision(string name, long count)
    {
        var net = DenseNetByName(name);
        Assert.That(net.ParameterCount, Is.EqualTo(count));
        ZooLayout.AssertLayout(net, name);
    }

    [Test]
    public void DenseNet121_maps_a_29x29_batch_to_logits_in_train_and_eval_mode_with_dropout()
    {
        Generator.ManualSeed(0);
        var net = DenseNet.DenseNet121(numClasses: 10, dropRate: 0.2);
        Assert.That(net.NumFeatures, Is.EqualTo(1024));
        Assert.That(net.ParameterCount, Is.EqualTo(7_978_856 - 990 * 1025));
        Logits(net, [2, 3, 29, 29], 10);   // training mode: batch statistics and dropout (29x29 is torchvision's min_size)
        net.Eval();
        Logits(net, [1, 3, 29, 29], 10);
        Assert.That(net.ToString(), Does.Contain("(denselayer1): _DenseLayer(").And.Contain("(transition3): _Transition("));
    }

    [Test]
    public void DenseNet_initialization_is_torchvisions_kaiming_normal_convs_unit_batch_norm_and_zero_linear_bias()
    {
        var net = DenseNet121Default.Value;
        var w = Param(net, "features.denseblock4.denselayer16.conv1.weight");   // [128, 992, 1, 1]: fan in 992
        var (mean, std, _) = Stats(w);
        Assert.That(mean, Is.EqualTo(0).Within(0.002));
        Assert.That(std, Is.EqualTo(Math.Sqrt(2.0 / 992)).Within(0.02 * Math.Sqrt(2.0 / 992)));
        Assert.That(Stats(Param(net, "features.conv0.weight")).Std, Is.EqualTo(Math.Sqrt(2.0 / 147)).Within(0.05 * Math.Sqrt(2.0 / 147)));
        Assert.That(Param(net, "features.norm5.weight").ToFloatArray(), Is.All.EqualTo(1f));
        Assert.That(Param(net, "features.norm5.bias").ToFloatArray(), Is.All.EqualTo(0f));
        Assert.That(Param(net, "classifier.bias").ToFloatArray(), Is.All.EqualTo(0f));
        // The linear weight keeps PyTorch's default U(±1/√1024).
        Assert.That(Stats(Param(net, "classifier.weight")).MaxAbs, Is.LessThanOrEqualTo(1 / Math.Sqrt(1024)).And.GreaterThan(0.9 / Math.Sqrt(1024)));
    }

    [Test]
    public void DenseNet_rejects_bad_arguments()
    {
        Assert.Throws<ArgumentException>(() => new DenseNet(dropRate: 1.5));
        Assert.Throws<ArgumentException>(() => new DenseNet(blockConfig: []));
        Assert.Throws<ArgumentException>(() => new DenseNet(numClasses: 0));
    }

    // ---------------- GoogLeNet ----------------

    [Test]
    public void GoogLeNet_parameter_count_and_state_dict_layout_equal_torchvision_without_aux_classifiers()
    {
        var net = GoogLeNetDefault.Value;
        Assert.That(net.ParameterCount, Is.EqualTo(6_624_904));
        Assert.That(net.AuxLogitsEnabled, Is.False);
        ZooLayout.AssertLayout(net, "googlenet");
    }

    [Test]
    public void GoogLeNet_with_aux_classifiers_has_13004888_parameters_with_aux_keys_between_inception5b_and_fc()
    {
        var net = new GoogLeNet(auxLogits: true);
        Assert.That(net.ParameterCount, Is.EqualTo(13_004_888));
        var keys = ZooLayout.Layout(net);
        var aux = keys.Where(k => k.StartsWith("aux")).ToList();
        Assert.That(aux, Is.EqualTo(new[]
        {
            "aux1.conv.conv.weight\t128,512,1,1\tfloat32", "aux1.conv.bn.weight\t128\tfloat32", "aux1.conv.bn.bias\t128\tfloat32",
            "aux1.conv.bn.running_mean\t128\tfloat32", "aux1.conv.bn.running_var\t128\tfloat32", "aux1.conv.bn.num_batches_tracked\t\tint64",
            "aux1.fc1.weight\t1024,2048\tfloat32", "aux1.fc1.bias\t1024\tfloat32", "aux1.fc2.weight\t1000,1024\tfloat32", "aux1.fc2.bias\t1000\tfloat32",
            "aux2.conv.conv.weight\t128,528,1,1\tfloat32", "aux2.conv.bn.weight\t128\tfloat32", "aux2.conv.bn.bias\t128\tfloat32",
            "aux2.conv.bn.running_mean\t128\tfloat32", "aux2.conv.bn.running_var\t128\tfloat32", "aux2.conv.bn.num_batches_tracked\t\tint64",
            "aux2.fc1.weight\t1024,2048\tfloat32", "aux2.fc1.bias\t1024\tfloat32", "aux2.fc2.weight\t1000,1024\tfloat32", "aux2.fc2.bias\t1000\tfloat32",
        }));
        // The layout is torchvision's with the aux entries inserted just before fc (as torchvision registers them).
        var expected = ZooLayout.ReferenceLayout("googlenet");
        expected.InsertRange(expected.FindIndex(k => k.StartsWith("fc.")), aux);
        Assert.That(keys, Is.EqualTo(expected));
    }

    [Test]
    public void GoogLeNet_maps_a_31x31_input_to_logits_and_exposes_aux_logits_that_backpropagate_in_training_only()
    {
        // The main path accepts torchvision's minimum of 15x15 (a ceil-mode 3x3 max pool over a 2x2 map gives one window);
        // 31x31 is used for the training-mode run with the auxiliary heads.
        Generator.ManualSeed(2);
        var small = new GoogLeNet(numClasses: 7);
        small.Eval();
        Assert.That(small.Call(Tensor.Randn([1, 3, 15, 15], seed: 4)).Shape, Is.EqualTo(new[] { 1, 7 }));
        var net = new GoogLeNet(numClasses: 7, auxLogits: true);
        var outputs = net.ForwardWithAux(Tensor.Randn([2, 3, 31, 31], seed: 3));
        Assert.That(outputs.Logits.Shape, Is.EqualTo(new[] { 2, 7 }));
        Assert.That(outputs.AuxLogits1!.Shape, Is.EqualTo(new[] { 2, 7 }));
        Assert.That(outputs.AuxLogits2!.Shape, Is.EqualTo(new[] { 2, 7 }));
        Assert.That(outputs.AuxLogits1, Is.SameAs(net.AuxLogits1));
        Assert.That(outputs.AuxLogits2, Is.SameAs(net.AuxLogits2));

        var logits = net.Call(Tensor.Randn([2, 3, 31, 31], seed: 5));
        Assert.That(logits.Shape, Is.EqualTo(new[] { 2, 7 }));
        Assert.That(net.AuxLogits1, Is.Not.SameAs(outputs.AuxLogits1), "each forward pass replaces the aux logits");
        Functional.CrossEntropy(net.AuxLogits1!, Tensor.From(new long[] { 0, 6 }, 2)).Backward();
        Assert.That(Param(net, "aux1.fc2.weight").Grad, Is.Not.Null);
        Assert.That(Param(net, "conv1.conv.weight").Grad, Is.Not.Null);
        Assert.That(Param(net, "fc.weight").Grad, Is.Null, "the main head is not on the aux loss's path");

        net.Eval();
        Logits(net, [1, 3, 31, 31], 7);
        Assert.That(net.AuxLogits1, Is.Null);
        Assert.That(net.AuxLogits2, Is.Null);
    }

    [Test]
    public void GoogLeNet_transform_input_rescales_imagenet_normalized_channels_as_torchvision()
    {
        var x = Tensor.Randn([1, 3, 2, 2], seed: 6);
        var t = GoogLeNet.TransformInput(x).ToFloatArray();
        var v = x.ToFloatArray();
        double[] mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225];
        for (int i = 0; i < 12; i++)
            Assert.That(t[i], Is.EqualTo(v[i] * (std[i / 4] / 0.5) + (mean[i / 4] - 0.5) / 0.5).Within(1e-6));
    }

    [Test]
    public void GoogLeNet_initialization_is_torchvisions_truncated_normal_with_std_0_01()
    {
        var net = GoogLeNetDefault.Value;
        var (mean, std, _) = Stats(Param(net, "inception4e.branch2.1.conv.weight"));   // 320 x 160 x 3 x 3
        Assert.That(mean, Is.EqualTo(0).Within(1e-4));
        Assert.That(std, Is.EqualTo(0.01).Within(2e-4));
        Assert.That(Stats(Param(net, "fc.weight")).Std, Is.EqualTo(0.01).Within(2e-4));
        Assert.That(Param(net, "conv1.bn.weight").ToFloatArray(), Is.All.EqualTo(1f));
        Assert.That(Param(net, "conv1.bn.bias").ToFloatArray(), Is.All.EqualTo(0f));
        Assert.That(Param(net, "conv1.bn.running_var").ToFloatArray(), Is.All.EqualTo(1f));
        // Without initWeights the layers keep PyTorch's defaults (Kaiming-uniform, a = √5: bound 1/√fan_in).
        Generator.ManualSeed(4);
        var plain = new GoogLeNet(numClasses: 5, transformInput: true, initWeights: false);
        Assert.That(Stats(Param(plain, "fc.weight")).MaxAbs, Is.GreaterThan(0.9 / Math.Sqrt(1024)).And.LessThanOrEqualTo(1 / Math.Sqrt(1024)));
        plain.Eval();
        Logits(plain, [1, 3, 31, 31], 5);
    }

    // ---------------- Inception v3 ----------------

    [Test]
    public void InceptionV3_parameter_count_and_state_dict_layout_equal_torchvision_with_aux_logits()
    {
        var net = InceptionV3Default.Value;
        Assert.That(net.ParameterCount, Is.EqualTo(27_161_264));
        ZooLayout.AssertLayout(net, "inception_v3");
        Assert.That(net.ToString(), Does.StartWith("Inception3("));
    }

    [Test]
    public void InceptionV3_without_aux_logits_has_torchvisions_layout_and_maps_a_75x75_input_to_logits()
    {
        Generator.ManualSeed(5);
        var net = new InceptionV3(numClasses: 10, auxLogits: false, transformInput: true);
        Assert.That(net.ParameterCount, Is.EqualTo(23_834_568 - 990 * 2049));   // 23,834,568 with 1000 classes
        var expected = ZooLayout.ReferenceLayout("inception_v3").Where(k => !k.StartsWith("AuxLogits."))
            .Select(k => k.Replace("fc.weight\t1000,2048", "fc.weight\t10,2048").Replace("fc.bias\t1000", "fc.bias\t10")).ToList();
        Assert.That(ZooLayout.Layout(net), Is.EqualTo(expected));
        // 75x75 is the smallest input: Mixed_7a's stride-2 3x3 convolutions then see a 3x3 map.
        net.Eval();
        var outputs = net.ForwardWithAux(Tensor.Randn([1, 3, 75, 75], seed: 7));
        Assert.That(outputs.Logits.Shape, Is.EqualTo(new[] { 1, 10 }));
        Assert.That(outputs.Logits.ToFloatArray().All(float.IsFinite), Is.True);
        Assert.That(outputs.AuxLogits, Is.Null);
        Assert.That(net.AuxLogits, Is.Null);
        Assert.Throws<ArgumentException>(() => net.Call(Tensor.Randn([1, 3, 74, 74], seed: 7)));
    }

    [Test]
    public void InceptionV3_runs_the_aux_classifier_in_training_mode_only()
    {
        var net = InceptionV3Default.Value;   // 1000 classes, aux classifier on
        Assert.That(net.AuxLogitsEnabled, Is.True);
        using (AutoGrad.NoGrad())
        {
            // In training mode the aux head runs; like torchvision's it needs a 17x17 map after Mixed_6e (a 299x299 input),
            // so a 75x75 input fails inside it (this only updates running statistics, which no other test reads).
            var e = Assert.Throws<ArgumentException>(() => net.Call(Tensor.Randn([2, 3, 75, 75], seed: 9)));
            Assert.That(e!.StackTrace, Does.Contain("InceptionAux"));
            net.Eval();
            try
            {
                var outputs = net.ForwardWithAux(Tensor.Randn([1, 3, 75, 75], seed: 9));
                Assert.That(outputs.Logits.Shape, Is.EqualTo(new[] { 1, 1000 }));
                Assert.That(outputs.AuxLogits, Is.Null);
            }
            finally { net.Train(); }
        }
    }

    [Test]
    public void InceptionV3_aux_classifier_maps_a_17x17_map_to_logits()
    {
        var aux = new InceptionV3.InceptionAux(768, 6);
        var y = aux.Call(Tensor.Randn([2, 768, 17, 17], seed: 8));
        Assert.That(y.Shape, Is.EqualTo(new[] { 2, 6 }));
        Assert.That(aux.ParameterCount, Is.EqualTo(128 * 768 + 256 + 768 * 128 * 25 + 2 * 768 + 768 * 6 + 6));
    }

    [Test]
    public void InceptionV3_initialization_is_torchvisions_truncated_normal_std_0_1_and_0_001_for_the_aux_fc()
    {
        var net = InceptionV3Default.Value;
        var (mean, std, _) = Stats(Param(net, "Mixed_6b.branch7x7dbl_2.conv.weight"));   // 128 x 128 x 7 x 1
        Assert.That(mean, Is.EqualTo(0).Within(2e-3));
        Assert.That(std, Is.EqualTo(0.1).Within(2e-3));
        Assert.That(Stats(Param(net, "fc.weight")).Std, Is.EqualTo(0.1).Within(2e-3));
        Assert.That(Stats(Param(net, "AuxLogits.fc.weight")).Std, Is.EqualTo(0.001).Within(2e-5));
        // torchvision's stddev = 0.01 tag sits on the BasicConv2d wrapper, which its init loop never matches: std 0.1 there too.
        Assert.That(Stats(Param(net, "AuxLogits.conv1.conv.weight")).Std, Is.EqualTo(0.1).Within(2e-3));
        Assert.That(Param(net, "Mixed_7c.branch_pool.bn.weight").ToFloatArray(), Is.All.EqualTo(1f));
        Assert.That(Param(net, "Mixed_7c.branch_pool.bn.bias").ToFloatArray(), Is.All.EqualTo(0f));
    }

    // ---------------- EfficientNet ----------------

    [Test]
    public void EfficientNetB0_parameter_count_and_state_dict_layout_equal_torchvision()
    {
        var net = EfficientNetB0Default.Value;
        Assert.That(net.ParameterCount, Is.EqualTo(5_288_548));
        Assert.That(net.NumFeatures, Is.EqualTo(1280));
        ZooLayout.AssertLayout(net, "efficientnet_b0");
    }

    [TestCase(2, 9_109_994)]
    [TestCase(4, 19_341_616)]
    public void EfficientNet_B2_B4_have_torchvisions_parameter_counts(int variant, long count)
    {
        var net = variant switch
        {
            1 => EfficientNet.EfficientNetB1(),
            2 => EfficientNet.EfficientNetB2(),
            3 => EfficientNet.EfficientNetB3(),
            _ => EfficientNet.EfficientNetB4(),
        };
        Assert.That(net.ParameterCount, Is.EqualTo(count));
    }

    [Test]
    public void EfficientNetB0_maps_a_32x32_batch_to_logits_in_train_and_eval_mode()
    {
        Generator.ManualSeed(7);
        var net = EfficientNet.EfficientNetB0(numClasses: 10);
        Logits(net, [2, 3, 32, 32], 10);   // training mode: batch statistics, dropout, stochastic depth
        net.Eval();
        var a = Logits(net, [1, 3, 32, 32], 10);
        var b = Logits(net, [1, 3, 32, 32], 10);
        // Equal up to float rounding: the random parts (dropout, stochastic depth) are off; GEMM libraries may still sum in a
        // different order from call to call.
        Assert.That(a.ToFloatArray(), Is.EqualTo(b.ToFloatArray()).Within(1e-5), "eval mode is deterministic (dropout and stochastic depth off)");
        Logits(net, [1, 3, 1, 1], 10);   // torchvision's min_size is 1x1
    }

    [Test]
    public void EfficientNetB0_stochastic_depth_grows_linearly_from_0_to_0_2_times_15_over_16()
    {
        var net = EfficientNetB0Default.Value;
        var ps = net.Modules().OfType<StochasticDepth>().Select(s => s.P).ToArray();
        Assert.That(ps, Has.Length.EqualTo(16));
        for (int i = 0; i < 16; i++) Assert.That(ps[i], Is.EqualTo(0.2 * i / 16).Within(1e-15));
        Assert.That(net.ToString(), Does.Contain("StochasticDepth(p=0.0125, mode=row)"));
    }

    [Test]
    public void EfficientNet_initialization_is_torchvisions_kaiming_fan_out_unit_batch_norm_and_uniform_linear()
    {
        var net = EfficientNetB0Default.Value;
        var w = Param(net, "features.6.1.block.0.0.weight");   // [1152, 192, 1, 1]: fan out 1152
        var (mean, std, _) = Stats(w);
        Assert.That(mean, Is.EqualTo(0).Within(0.002));
        Assert.That(std, Is.EqualTo(Math.Sqrt(2.0 / 1152)).Within(0.02 * Math.Sqrt(2.0 / 1152)));
        Assert.That(Stats(Param(net, "features.6.1.block.1.0.weight")).Std,     // depthwise [1152, 1, 5, 5]: fan out 1152 * 25
            Is.EqualTo(Math.Sqrt(2.0 / (1152 * 25))).Within(0.05 * Math.Sqrt(2.0 / (1152 * 25))));
        Assert.That(Param(net, "features.6.1.block.2.fc1.bias").ToFloatArray(), Is.All.EqualTo(0f));
        Assert.That(Param(net, "features.6.1.block.2.fc2.bias").ToFloatArray(), Is.All.EqualTo(0f));
        Assert.That(Param(net, "features.8.1.weight").ToFloatArray(), Is.All.EqualTo(1f));
        var fc = Stats(Param(net, "classifier.1.weight"));
        Assert.That(fc.MaxAbs, Is.LessThanOrEqualTo(1 / Math.Sqrt(1000)).And.GreaterThan(0.99 / Math.Sqrt(1000)));
        Assert.That(Param(net, "classifier.1.bias").ToFloatArray(), Is.All.EqualTo(0f));
    }

    [Test]
    public void EfficientNet_batch_norm_is_torchvisions_eps_1e5_for_B0_and_1e3_momentum_0_01_for_B5_to_B7()
    {
        var bn = EfficientNetB0Default.Value.Modules().OfType<BatchNorm2d>().ToList();
        Assert.That(bn.All(b => b.Eps == 1e-5 && b.Momentum == 0.1), Is.True);
        var custom = new EfficientNet(widthMult: 0.25, depthMult: 0.25, normEps: 1e-3, normMomentum: 0.01);
        Assert.That(custom.Modules().OfType<BatchNorm2d>().All(b => b.Eps == 1e-3 && b.Momentum == 0.01), Is.True);
    }

    [Test]
    public void StochasticDepth_row_mode_drops_whole_samples_and_rescales_the_rest_in_training_only()
    {
        var sd = new StochasticDepth(0.5, "row", new Generator(9));
        var x = Tensor.Ones([64, 2, 3, 3]);
        var y = sd.Call(x).ToFloatArray();
        int dropped = 0;
        for (int n = 0; n < 64; n++)
        {
            var row = y.Skip(n * 18).Take(18).Distinct().ToArray();
            Assert.That(row, Has.Length.EqualTo(1), "one decision per sample");
            Assert.That(row[0], Is.EqualTo(0f).Or.EqualTo(2f));
            if (row[0] == 0) dropped++;
        }
        Assert.That(dropped, Is.InRange(16, 48));
        var batch = new StochasticDepth(0.5, "batch", new Generator(10)).Call(x).ToFloatArray().Distinct().ToArray();
        Assert.That(batch, Has.Length.EqualTo(1));
        sd.Eval();
        Assert.That(sd.Call(x), Is.SameAs(x));
        Assert.That(new StochasticDepth(0).Call(x), Is.SameAs(x));
        Assert.That(new StochasticDepth(1).Call(x).ToFloatArray(), Is.All.EqualTo(0f));
        Assert.Throws<ArgumentException>(() => new StochasticDepth(1.5));
        Assert.Throws<ArgumentException>(() => new StochasticDepth(0.1, "col"));
    }

    [Test]
    public void StochasticDepth_gradient_flows_only_through_kept_samples()
    {
        var sd = new StochasticDepth(0.5, "row", new Generator(11));
        var x = Tensor.Ones([8, 3]).RequiresGrad_();
        var y = sd.Call(x);
        y.Sum().Backward();
        var g = x.Grad!.ToFloatArray();
        var v = y.ToFloatArray();
        for (int i = 0; i < v.Length; i++) Assert.That(g[i], Is.EqualTo(v[i]));   // y = x * mask / 0.5 with x = 1
    }
}
