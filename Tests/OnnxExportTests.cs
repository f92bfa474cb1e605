using Autograd.Layers;
using Autograd.Onnx;
using Microsoft.ML.OnnxRuntime;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;
using Tensor = Autograd.Tensor;
using static Autograd.Functional;

namespace Tests;

/// <summary>ONNX export: every zoo model exports, ONNX Runtime runs the file and agrees with this framework's forward pass
/// (rtol 1e-3, atol 1e-5), and importing the file gives the same outputs again.</summary>
public class OnnxExportTests
{
    private const double Rtol = 1e-3, Atol = 1e-5;

    /// <summary>Input sizes: the smallest convenient size each architecture allows (ImageNet models at small inputs run
    /// through the same ops; VGG's 7x7 adaptive pooling then exercises the general adaptive export).</summary>
    public static IEnumerable<TestCaseData> ZooModels() =>
        Autograd.Zoo.Zoo.Names.Select(name => new TestCaseData(name, name switch
        {
            "lenet5" => new[] { 2, 1, 28, 28 },
            "alexnet" => [1, 3, 63, 63],
            "googlenet" => [1, 3, 32, 32],
            "inception_v3" => [1, 3, 75, 75],
            "densenet121" or "densenet169" or "densenet201" => [1, 3, 32, 32],
            _ => [2, 3, 32, 32],
        }).SetArgDisplayNames(name));

    internal static float[] RunOnnxRuntime(byte[] model, Tensor input)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 2 };
        using var session = new InferenceSession(model, options);
        var x = new DenseTensor(input.ToFloatArray(), input.Shape);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(session.InputMetadata.Keys.Single(), x)]);
        return results.Single().AsTensor<float>().ToArray();
    }

    internal static void AssertClose(float[] actual, float[] expected, string what)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length), what);
        double worst = 0;
        int at = -1;
        for (int i = 0; i < actual.Length; i++)
        {
            double excess = Math.Abs(actual[i] - expected[i]) - (Atol + Rtol * Math.Abs(expected[i]));
            if (excess > worst) (worst, at) = (excess, i);
        }
        Assert.That(at, Is.EqualTo(-1), $"{what}: element {at}: {(at >= 0 ? actual[at] : 0)} vs {(at >= 0 ? expected[at] : 0)}");
    }

    /// <summary>The zoo model by name, except that the deeper VGGs get their CIFAR head: the 7x7 classifier (25088 → 4096 →
    /// 4096, half a gigabyte per model) is the same at every depth and is exported and checked on vgg11 and vgg11_bn, so the
    /// others build only what differs by depth, the features.</summary>
    private static Module Create(string name) => name switch
    {
        "vgg13" => Autograd.Zoo.VGG.Vgg13(10, cifar: true),
        "vgg13_bn" => Autograd.Zoo.VGG.Vgg13Bn(10, cifar: true),
        "vgg16" => Autograd.Zoo.VGG.Vgg16(10, cifar: true),
        "vgg16_bn" => Autograd.Zoo.VGG.Vgg16Bn(10, cifar: true),
        "vgg19" => Autograd.Zoo.VGG.Vgg19(10, cifar: true),
        "vgg19_bn" => Autograd.Zoo.VGG.Vgg19Bn(10, cifar: true),
        _ => Autograd.Zoo.Zoo.Create(name, 10),
    };

    [TestCaseSource(nameof(ZooModels))]
    public void Every_zoo_model_exports_and_onnx_runtime_and_reimport_agree(string name, int[] shape)
    {
        Generator.ManualSeed(1);
        var model = Create(name);
        model.Eval();
        // Traced on one input, checked on another: a value the trace froze as a constant would show.
        var (sample, x) = (Tensor.Randn(shape, 1), Tensor.Randn(shape, 2));
        float[] expected;
        using (AutoGrad.NoGrad()) expected = model.Call(x).ToFloatArray();
        var bytes = OnnxExport.ToBytes(model, sample);
        AssertClose(RunOnnxRuntime(bytes, x), expected, $"{name}: ONNX Runtime");
        var imported = OnnxModel.Load(bytes, Path.GetTempPath());
        using (AutoGrad.NoGrad()) AssertClose(imported.Call(x).ToFloatArray(), expected, $"{name}: re-imported");
        // Inception v3's auxiliary classifier runs in training only, so the eval-mode graph has no use for its parameters.
        long used = name == "inception_v3" ? new Autograd.Zoo.InceptionV3(10, auxLogits: false).ParameterCount : model.ParameterCount;
        Assert.That(imported.ParameterCount, Is.GreaterThanOrEqualTo(used), $"{name}: every parameter the forward pass uses is an initializer");
    }

    [TestCase("resnet50"), TestCase("inception_v1"), TestCase("squeezenet")]
    public void Onnx_runtime_agrees_with_the_imported_light_models_on_random_inputs(string name)
    {
        var path = OnnxTests.OnnxData("light", name, "model.onnx");
        var model = OnnxModel.Load(path);
        foreach (var seed in new[] { 1, 2 })
        {
            var x = Tensor.Rand([1, 3, 224, 224], seed) * 255 - 128;
            float[] ours;
            using (AutoGrad.NoGrad()) ours = model.Call(x).ToFloatArray();
            AssertClose(ours, RunOnnxRuntime(File.ReadAllBytes(path), x), $"{name}, seed {seed}");
        }
    }

    [Test]
    public void Export_writes_the_file_atomically_restores_training_mode_and_names_initializers_by_state_dict_keys()
    {
        Generator.ManualSeed(0);
        var model = new Sequential(new Conv2d(3, 4, 3, padding: 1), new BatchNorm2d(4), new ReLU(), new Flatten(), new Linear(4 * 25, 3));
        var path = Path.Combine(Path.GetTempPath(), $"export-{Guid.NewGuid():N}.onnx");
        try
        {
            model.ExportOnnx(path, Tensor.Randn([2, 3, 5, 5], 1));
            Assert.That(model.Training, Is.True, "the model is back in training mode");
            Assert.That(Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(path) + ".tmp-*"), Is.Empty);
            var file = OnnxModelFile.Read(path);
            Assert.That(file.Graph.Initializers.Select(t => t.Name), Is.SupersetOf(model.StateDict().Keys.Where(k => !k.EndsWith("num_batches_tracked"))));
            Assert.That(file.Opset, Is.EqualTo(17));
            Assert.That(file.Graph.Nodes.Select(n => n.OpType), Is.EqualTo(new[] { "Conv", "BatchNormalization", "Relu", "Reshape", "Gemm" }));
        }
        finally { File.Delete(path); }
    }

    [Test]
    public void Functional_glue_exports_too()
    {
        // Residual adds, concatenation, slicing, scalars, permutes, means, softmax, clamps and adaptive pooling that does not divide.
        var conv = new Conv2d(2, 4, 3, padding: 1);
        var model = new Lambda(x =>
        {
            var y = conv.Call(x);
            var z = Cat([y.Narrow(1, 0, 2) * 0.5, Clamp(y.Narrow(1, 2, 2), -0.1, 0.2) + x], 1);
            var p = AdaptiveAvgPool2d(z, [3, 2]) + AdaptiveMaxPool2d(z, [3, 2]);
            return Softmax(Mean(p.Permute(0, 2, 3, 1), [1], keepDim: false).Flatten(1), 1);
        }, ("conv", conv));
        var (sample, x) = (Tensor.Randn([2, 2, 7, 5], 3), Tensor.Randn([2, 2, 7, 5], 30));
        float[] expected;
        using (AutoGrad.NoGrad()) expected = model.Call(x).ToFloatArray();
        AssertClose(RunOnnxRuntime(OnnxExport.ToBytes(model, sample), x), expected, "glue");
    }

    [Test, NonParallelizable]
    public void The_onnx_export_command_writes_a_file_that_onnx_runtime_runs()
    {
        var path = Path.Combine(Path.GetTempPath(), $"cli-export-{Guid.NewGuid():N}.onnx");
        try
        {
            var (code, output) = CliTests.Run("onnx", "export", "squeezenet1_1", path, "--input", "3,48,48", "--batch", "2", "--classes", "7", "--opset", "13");
            Assert.That(code, Is.EqualTo(0), output);
            Assert.That(output, Does.Contain("input [2, 3, 48, 48], opset 13"));
            Assert.That(RunOnnxRuntime(File.ReadAllBytes(path), Tensor.Randn([2, 3, 48, 48], 1)), Has.Length.EqualTo(14));
            Assert.That(CliTests.Run("onnx", "export", "squeezenet1_1").Code, Is.EqualTo(2));
            Assert.That(CliTests.Run("onnx", "export", "squeezenet1_1", path, "--opset", "18").Code, Is.EqualTo(2));
        }
        finally { File.Delete(path); }
    }

    [Test]
    public void Decoders_normalization_resampling_comparisons_and_reductions_export_too()
    {
        // Transposed conv, constant and reflect padding, bilinear (both alignments) and nearest resizing, layer and group norm,
        // comparisons feeding Where, elementwise and reduced maxima, sums, argmax, a dtype cast and pixel shuffle.
        var up = new ConvTranspose2d(2, 3, 3, stride: 2, padding: 1, outputPadding: 1);
        var model = new Lambda(x =>
        {
            var y = up.Call(x);
            var p = Pad(y, [1, 2, 1, 0], "reflect") + Pad(y, [1, 2, 1, 0], "constant", 0.5);
            var c = Interpolate(p, size: [10, 8], mode: "bilinear", alignCorners: true) + Interpolate(p, size: [10, 8], mode: "bilinear")
                + Interpolate(p, size: [10, 8]);
            var d = LayerNorm(c, [8]) + GroupNorm(c, 3);
            var e = Where(Gt(d, Tensor.Scalar(0.1)), d, Maximum(d, d * 0.5));
            var f = e.Max(1, keepDim: true) + e.Sum(1, keepDim: true) + ArgMax(e, 1, keepDim: true).To(DType.Float32);
            return PixelShuffle(Cat([f, f * 2, f, f], 1), 2);
        }, ("up", up));
        var (sample, x) = (Tensor.Randn([2, 2, 7, 5], 4), Tensor.Randn([2, 2, 7, 5], 40));
        float[] expected;
        using (AutoGrad.NoGrad()) expected = model.Call(x).ToFloatArray();
        AssertClose(RunOnnxRuntime(OnnxExport.ToBytes(model, sample), x), expected, "decoder ops");
    }

    [Test]
    public void Inference_pooling_and_local_response_norm_export_as_their_onnx_ops()
    {
        // Traced under no-grad, where max pooling and LRN take their inference kernels: they must still be recorded as ops.
        var model = new Lambda(x => MaxPool2d(LocalResponseNorm(MaxPool2d(x, 3, stride: 1, padding: 1), 5, alpha: 1e-2, beta: 0.75, k: 2), 3, stride: 2, ceilMode: true));
        var (sample, x) = (Tensor.Randn([2, 6, 9, 9], 5), Tensor.Randn([2, 6, 9, 9], 50));
        float[] expected;
        using (AutoGrad.NoGrad()) expected = model.Call(x).ToFloatArray();
        var bytes = OnnxExport.ToBytes(model, sample);
        AssertClose(RunOnnxRuntime(bytes, x), expected, "pooling and LRN");
        using var trace = OpTrace.Start();
        using (AutoGrad.NoGrad()) model.Call(sample);
        Assert.That(trace.Ops.Select(o => o.Op), Is.EqualTo(new[] { "MaxPool", "LocalResponseNorm", "MaxPool" }));
    }

    [Test]
    public void An_op_without_a_mapping_is_an_error_naming_it()
    {
        var model = new Lambda(x => Std(x, 1));
        var e = Assert.Throws<OnnxUnsupportedException>(() => OnnxExport.ToBytes(model, Tensor.Randn([2, 3], 1)));
        Assert.That(e!.Message, Does.Contain("op Std").And.Contain("output [2]"));
        var opset = Assert.Throws<ArgumentOutOfRangeException>(() => OnnxExport.ToBytes(new Linear(2, 2), Tensor.Randn([1, 2], 1), opset: 9));
        Assert.That(opset!.Message, Does.Contain("opset 9"));
    }
}
