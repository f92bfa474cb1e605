using Autograd.Layers;

namespace Tests;

public class LayerTests
{
    /// <summary>A ResNet-style block written as a custom module, to check PyTorch's dotted names.</summary>
    private sealed class Block : Module
    {
        private readonly Conv2d conv1;
        private readonly BatchNorm2d bn1;
        private readonly Sequential downsample;

        public Block()
        {
            conv1 = Register("conv1", new Conv2d(3, 4, 3, padding: 1, bias: false));
            bn1 = Register("bn1", new BatchNorm2d(4));
            downsample = Register("downsample", new Sequential(new Conv2d(3, 4, 1, bias: false), new BatchNorm2d(4)));
        }

        public override Tensor Forward(Tensor x) => Functional.Relu(bn1.Call(conv1.Call(x)) + downsample.Call(x));
    }

    [Test]
    public void ReLU_inplace_overwrites_its_input_only_when_no_gradient_is_recorded()
    {
        var relu = new ReLU(inplace: true);
        Assert.That(relu.ToString(), Does.Contain("ReLU(inplace=True)"));
        var x = Tensor.From(new float[] { -1, 2, float.NaN, -0.5f }, [4]);
        Tensor y;
        using (AutoGrad.NoGrad()) y = relu.Call(x);
        Assert.That(y, Is.SameAs(x));
        Assert.That(x.ToFloatArray(), Is.EqualTo(new float[] { 0, 2, float.NaN, 0 }));
        // Recording: a new tensor, the input untouched, the gradient that of relu.
        var z = Tensor.From(new float[] { -1, 2, 3, -0.5f }, [4]).RequiresGrad_();
        var r = relu.Call(z);
        Assert.That(r, Is.Not.SameAs(z));
        r.Sum().Backward();
        Assert.That(z.ToFloatArray(), Is.EqualTo(new float[] { -1, 2, 3, -0.5f }));
        Assert.That(z.Grad!.ToFloatArray(), Is.EqualTo(new float[] { 0, 1, 1, 0 }));
        Assert.Throws<InvalidOperationException>(() => z.Relu_());
    }

    [Test]
    public void State_dict_keys_are_pytorch_dotted_paths_in_registration_order()
    {
        var model = new Sequential(("layer1", new Sequential(new Block())), ("fc", new Linear(4, 2)));
        Assert.That(model.StateDict().Keys, Is.EqualTo(new[]
        {
            "layer1.0.conv1.weight",
            "layer1.0.bn1.weight", "layer1.0.bn1.bias", "layer1.0.bn1.running_mean", "layer1.0.bn1.running_var", "layer1.0.bn1.num_batches_tracked",
            "layer1.0.downsample.0.weight",
            "layer1.0.downsample.1.weight", "layer1.0.downsample.1.bias", "layer1.0.downsample.1.running_mean", "layer1.0.downsample.1.running_var", "layer1.0.downsample.1.num_batches_tracked",
            "fc.weight", "fc.bias",
        }));
        Assert.That(model.StateDict()["layer1.0.bn1.num_batches_tracked"].DType, Is.EqualTo(DType.Int64));
        // conv 4*3*3*3 + bn 4+4 + conv 4*3 + bn 4+4 + fc 2*4+2
        Assert.That(model.ParameterCount, Is.EqualTo(108 + 8 + 12 + 8 + 10));
    }

    [Test]
    public void Printing_shows_the_tree_like_pytorch()
    {
        var model = new Sequential(new Conv2d(1, 6, 5, padding: 2), new ReLU(), new MaxPool2d(2), new Flatten(), new Linear(6 * 14 * 14, 10));
        Assert.That(model.ToString(), Is.EqualTo(
            "Sequential(\n" +
            "  (0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))\n" +
            "  (1): ReLU()\n" +
            "  (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)\n" +
            "  (3): Flatten(start_dim=1, end_dim=-1)\n" +
            "  (4): Linear(in_features=1176, out_features=10, bias=True)\n" +
            ")"));
    }

    [Test]
    public void Linear_and_conv_default_init_is_kaiming_uniform_with_a_sqrt5()
    {
        // PyTorch: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); variance of U(-b, b) is b^2 / 3.
        Generator.ManualSeed(7);
        var fc = new Linear(400, 300);
        double b = 1 / Math.Sqrt(400);
        var w = fc.Weight.ToDoubleArray();
        Assert.That(w.Max(), Is.LessThanOrEqualTo(b));
        Assert.That(w.Min(), Is.GreaterThanOrEqualTo(-b));
        Assert.That(w.Average(), Is.EqualTo(0).Within(5 * b / Math.Sqrt(3 * w.Length)));
        Assert.That(w.Select(v => v * v).Average(), Is.EqualTo(b * b / 3).Within(0.02 * b * b));
        var conv = new Conv2d(16, 32, 3);
        double bc = 1 / Math.Sqrt(16 * 9);
        var cw = conv.Weight.ToDoubleArray();
        Assert.That(cw.Select(v => v * v).Average(), Is.EqualTo(bc * bc / 3).Within(0.05 * bc * bc));
        Assert.That(conv.Bias!.ToDoubleArray().All(v => Math.Abs(v) <= bc), Is.True);
        var bn = new BatchNorm2d(3);
        Assert.That(bn.Weight!.ToDoubleArray(), Is.EqualTo(new double[] { 1, 1, 1 }));
        Assert.That(bn.Bias!.ToDoubleArray(), Is.EqualTo(new double[] { 0, 0, 0 }));
    }

    [Test]
    public void Initializers_have_the_documented_statistics()
    {
        var g = new Generator(3);
        var t = Tensor.Zeros(200, 300);
        Init.XavierUniform(t, generator: g);
        Assert.That(t.ToDoubleArray().Select(v => v * v).Average(), Is.EqualTo(2.0 / 500).Within(0.0002), "Var = 2 / (fan_in + fan_out)");
        Init.KaimingNormal(t, nonlinearity: "relu", generator: g);
        Assert.That(t.ToDoubleArray().Select(v => v * v).Average(), Is.EqualTo(2.0 / 300).Within(0.0002), "Var = 2 / fan_in");
        Init.TruncNormal(t, std: 1, a: -0.5, b: 0.5, generator: g);
        Assert.That(t.ToDoubleArray().All(v => v >= -0.5 && v <= 0.5), Is.True);
        var q = Init.Orthogonal(Tensor.Zeros([3, 5], DType.Float64), generator: g);
        var qqT = Functional.MatMul(q, q.T).ToDoubleArray();
        Assert.That(qqT, Is.EqualTo(Tensor.Eye(3, dtype: DType.Float64).ToDoubleArray()).Within(1e-12), "rows are orthonormal");
        Assert.That(Init.CalculateGain("leaky_relu", 0.2), Is.EqualTo(Math.Sqrt(2 / 1.04)).Within(1e-15));
    }

    [Test]
    public void LoadStateDict_reports_missing_unexpected_and_mismatched_keys()
    {
        var m = new Linear(3, 2);
        var e1 = Assert.Throws<ArgumentException>(() => m.LoadStateDict(new Dictionary<string, Tensor> { ["weight"] = Tensor.Zeros(2, 3), ["extra"] = Tensor.Zeros(1) }));
        Assert.That(e1!.Message, Does.Contain("missing keys: bias").And.Contain("unexpected keys: extra"));
        var e2 = Assert.Throws<ArgumentException>(() => m.LoadStateDict(new Dictionary<string, Tensor> { ["weight"] = Tensor.Zeros(3, 2), ["bias"] = Tensor.Zeros(2) }));
        Assert.That(e2!.Message, Does.Contain("weight").And.Contain("[3, 2]").And.Contain("[2, 3]"));
        var (missing, _) = m.LoadStateDict(new Dictionary<string, Tensor> { ["weight"] = Tensor.Ones(2, 3) }, strict: false);
        Assert.That(missing, Is.EqualTo(new[] { "bias" }));
        Assert.That(m.Weight.ToDoubleArray().All(v => v == 1), Is.True);
    }

    [Test]
    public void Batch_norm_layers_track_running_statistics_and_batches()
    {
        var bn = new BatchNorm1d(1);
        bn.Call(Tensor.From(new float[] { 1, 3 }, 2, 1));
        Assert.That(bn.RunningMean!.Item(), Is.EqualTo(0.2).Within(1e-6));
        Assert.That(bn.StateDict()["num_batches_tracked"].Item(), Is.EqualTo(1));
        var cumulative = new BatchNorm1d(1, momentum: null);
        cumulative.Call(Tensor.From(new float[] { 1, 3 }, 2, 1));
        cumulative.Call(Tensor.From(new float[] { 5, 7 }, 2, 1));
        Assert.That(cumulative.RunningMean!.Item(), Is.EqualTo(4).Within(1e-6), "momentum None: the cumulative average of the batch means 2 and 6");
        bn.Eval();
        Assert.That(bn.Call(Tensor.From(new float[] { 0.2f }, 1, 1)).Item(), Is.EqualTo(0).Within(1e-6));
    }

    [Test]
    public void To_converts_parameters_and_float_buffers()
    {
        var m = new Sequential(new Linear(2, 2), new BatchNorm1d(2)).To(DType.Float64);
        Assert.That(m.Parameters().All(p => p.DType == DType.Float64 && p.RequiresGrad && p.IsLeaf), Is.True);
        Assert.That(m.StateDict()["1.running_mean"].DType, Is.EqualTo(DType.Float64));
        Assert.That(m.StateDict()["1.num_batches_tracked"].DType, Is.EqualTo(DType.Int64));
        Assert.That(m.Call(Tensor.Ones([3, 2], DType.Float64)).DType, Is.EqualTo(DType.Float64));
    }

    [Test]
    public void Forward_hooks_see_and_can_replace_the_output()
    {
        var m = new Linear(2, 2);
        Tensor? seen = null;
        using (m.RegisterForwardHook((_, _, y) => { seen = y; return y * 0.0; }))
        {
            var y = m.Call(Tensor.Ones(1, 2));
            Assert.That(seen, Is.Not.Null);
            Assert.That(y.ToDoubleArray().All(v => v == 0), Is.True);
        }
        Assert.That(m.Call(Tensor.Ones(1, 2)).ToDoubleArray().Any(v => v != 0), Is.True, "the handle removed the hook");
    }

    [Test]
    public void Embedding_looks_up_rows_and_keeps_the_padding_row_at_zero()
    {
        var e = new Embedding(5, 3, paddingIdx: 0);
        var idx = Tensor.From(new long[] { 0, 2, 2 }, 3);
        var y = e.Call(idx);
        Assert.That(y.Shape, Is.EqualTo(new[] { 3, 3 }));
        Assert.That(y.ToDoubleArray()[..3], Is.EqualTo(new double[] { 0, 0, 0 }));
        y.Sum().Backward();
        var g = e.Weight.Grad!.ToDoubleArray();
        Assert.That(g[..3], Is.EqualTo(new double[] { 0, 0, 0 }), "no gradient for the padding row");
        Assert.That(g[6..9], Is.EqualTo(new double[] { 2, 2, 2 }), "row 2 used twice");
    }

    [Test]
    public void Bilinear_and_containers_compute_what_they_say()
    {
        var bl = new Bilinear(2, 3, 1, bias: false);
        using (AutoGrad.NoGrad()) bl.Weight.Copy_(Tensor.From(new float[] { 1, 0, 0, 0, 1, 0 }, 1, 2, 3));
        Assert.That(bl.Forward(Tensor.From(new float[] { 2, 3 }, 1, 2), Tensor.From(new float[] { 5, 7, 11 }, 1, 3)).Item(), Is.EqualTo(2 * 5 + 3 * 7));
        var seq = new Sequential(new Linear(2, 2), new ReLU());
        Assert.That(seq[1], Is.InstanceOf<ReLU>());
        Assert.That(seq[-1], Is.InstanceOf<ReLU>());
        var x = Tensor.Ones(1, 2, 3, 3);
        Assert.That(new Concat(1, new Identity(), new Identity()).Call(x).Shape, Is.EqualTo(new[] { 1, 4, 3, 3 }));
        Assert.That(new Residual(new Identity()).Call(x).ToDoubleArray().All(v => v == 2), Is.True);
        Assert.That(new ParallelSum(new Identity(), new Identity(), new Identity()).Call(x).ToDoubleArray().All(v => v == 3), Is.True);
        Assert.That(new Unflatten(1, [2, 9]).Call(Tensor.Ones(1, 18)).Shape, Is.EqualTo(new[] { 1, 2, 9 }));
    }
}
