using Autograd.Data;
using Autograd.Onnx;
using Autograd.Optimizers;
using static Autograd.Functional;

namespace Tests;

/// <summary>The ONNX importer: the conformance cases in data/onnx, decoding (packed, unpacked, raw, external data and its
/// path checks), error reporting, gradients through imported models and fine-tuning.</summary>
public class OnnxTests
{
    internal static string OnnxData(params string[] parts) => Path.Combine([DataTests.RepoRootLazy.Value, "data", "onnx", .. parts]);

    /// <summary>Cases that do not pass, with the reason. The conformance test fails if one of them starts passing (update the
    /// list) or if any other case does not pass.</summary>
    private static readonly Dictionary<string, string> KnownNotPassing = new()
    {
        ["test_identity_opt"] = "optional values: the framework has no Optional type",
        ["test_identity_sequence"] = "sequence values: the framework has no tensor sequences",
        ["test_training_dropout"] = "training-mode Dropout with ratio > 0: the expected mask comes from NumPy's random generator, which cannot be reproduced",
        ["test_training_dropout_default"] = "training-mode Dropout with ratio > 0: NumPy's random mask cannot be reproduced",
        ["test_training_dropout_default_mask"] = "training-mode Dropout with ratio > 0: NumPy's random mask cannot be reproduced",
        ["test_training_dropout_mask"] = "training-mode Dropout with ratio > 0: NumPy's random mask cannot be reproduced",
    };

    public static IEnumerable<TestCaseData> Cases() =>
        new[] { "node", "pytorch-operator", "simple", "light" }
            .SelectMany(folder => OnnxConformance.Cases(OnnxData(folder)).Select(dir => new TestCaseData(dir).SetName($"Onnx_case_{folder}_{Path.GetFileName(dir)}")));

    [TestCaseSource(nameof(Cases))]
    public void Conformance_case_matches_its_expected_outputs_or_is_a_listed_exception(string dir)
    {
        var r = OnnxConformance.Run(dir);
        if (KnownNotPassing.TryGetValue(r.Name, out var reason))
            Assert.That(r.Status, Is.Not.EqualTo(CaseStatus.Pass), $"{r.Name} now passes; remove it from the list ({reason})");
        else
            Assert.That(r.Status, Is.EqualTo(CaseStatus.Pass), $"{r.Name}: {r.Status} {r.Message} (max abs {r.MaxAbs}, max rel {r.MaxRel})");
    }

    [Test]
    public void Batch_norms_after_convolutions_fold_into_them_for_inference_and_follow_parameter_updates()
    {
        Generator.ManualSeed(3);
        var model = Autograd.Zoo.Zoo.Create("resnet18", 10);
        using (AutoGrad.NoGrad())
            foreach (var (key, t) in model.StateDict())
                if (key.EndsWith("running_mean") || (key.Contains("bn") && key.EndsWith("bias"))) t.Copy_(Tensor.Randn(t.Shape, 5) * 0.1);
                else if (key.EndsWith("running_var") || (key.Contains("bn") && key.EndsWith("weight"))) t.Copy_(Tensor.Rand(t.Shape, 6) + 0.5);
        model.Eval();
        var x = Tensor.Randn([2, 3, 40, 40], 1);
        var imported = OnnxModel.Load(OnnxExport.ToBytes(model, x), Path.GetTempPath());
        Assert.That(imported.Nodes.Count(n => n.OpType == "BatchNormalization"), Is.EqualTo(20));
        void Same()
        {
            var unfolded = imported.Call(x).ToFloatArray();      // recording gradients: every node runs as it is
            float[] folded;
            using (AutoGrad.NoGrad()) folded = imported.Call(x).ToFloatArray();
            Assert.That(folded, Is.EqualTo(unfolded).Within(1e-4 * unfolded.Max(Math.Abs)));
        }
        Same();
        float[] before;
        using (AutoGrad.NoGrad()) before = imported.Call(x).ToFloatArray();
        using (AutoGrad.NoGrad()) imported.StateDict()["bn1.weight"].Mul_(0.5);
        Same();
        float[] after;
        using (AutoGrad.NoGrad()) after = imported.Call(x).ToFloatArray();
        Assert.That(after, Is.Not.EqualTo(before).Within(1e-3), "the folded weights follow an in-place update of a batch norm weight");
    }

    [Test]
    public void A_relu_after_a_convolution_is_applied_by_the_convolution_without_gradients_and_gives_the_same_values()
    {
        Generator.ManualSeed(4);
        // Conv -> Relu twice (the first conv's output read only by its Relu, so both fuse), then a conv whose Relu is not the
        // only reader of its output (an Add reads it too), which must not fuse.
        var c1 = new Autograd.Layers.Conv2d(3, 8, 3, padding: 1);
        var c2 = new Autograd.Layers.Conv2d(8, 8, 3, stride: 2, padding: 1);
        var c3 = new Autograd.Layers.Conv2d(8, 8, 1);
        var x = Tensor.Randn([2, 3, 12, 12], 1);
        Tensor Net(Tensor v)
        {
            var h = Relu(c2.Call(Relu(c1.Call(v))));
            var y = c3.Call(h);
            return Relu(y) + y;
        }
        var direct = Net(x).ToDoubleArray();
        var bytes = OnnxExport.ToBytes(new Autograd.Layers.Lambda(Net, ("c1", c1), ("c2", c2), ("c3", c3)), x);
        var imported = OnnxModel.Load(bytes, Path.GetTempPath());
        Assert.That(imported.Nodes.Count(n => n.OpType == "Relu"), Is.EqualTo(3));
        foreach (var dtype in new[] { DType.Float32, DType.Float64 })
        {
            var m = dtype == DType.Float32 ? imported : OnnxModel.Load(bytes, Path.GetTempPath()).To(dtype);
            var input = x.To(dtype);
            var unfused = m.Call(input).ToDoubleArray();      // recording gradients: every node runs as it is
            double[] fused;
            using (AutoGrad.NoGrad()) fused = m.Call(input).ToDoubleArray();
            Assert.That(fused, Is.EqualTo(unfused).Within(1e-5 * unfused.Max(Math.Abs)), $"{dtype}");
            Assert.That(fused, Is.EqualTo(direct).Within(1e-4 * direct.Max(Math.Abs)), $"{dtype} against the module");
        }
    }

    [Test]
    public void Convolutions_concatenated_along_the_channels_write_into_the_concatenation_and_give_the_same_values()
    {
        Generator.ManualSeed(5);
        // An Inception-like module: three branches (one a 1x1 -> 3x3 chain, one with a batch norm) concatenated, and a second
        // concatenation with a pooling branch; convolutions read both.
        var a = new Autograd.Layers.Conv2d(4, 8, 1);
        var b1 = new Autograd.Layers.Conv2d(4, 8, 1);
        var b2 = new Autograd.Layers.Conv2d(8, 16, 3, padding: 1);
        var c = new Autograd.Layers.Conv2d(4, 8, 3, padding: 1, bias: false);
        var bn = new Autograd.Layers.BatchNorm2d(8);
        var head = new Autograd.Layers.Conv2d(32, 4, 1);
        var pool = new Autograd.Layers.Conv2d(44, 4, 1);
        bn.Eval();
        Tensor Net(Tensor v)
        {
            var convs = Cat([Relu(a.Call(v)), Relu(b2.Call(Relu(b1.Call(v)))), Relu(bn.Call(c.Call(v)))], 1);
            var withPool = Cat([convs, MaxPool2d(v, 3, 1, 1), Relu(a.Call(v))], 1);   // terms no convolution makes: copied as usual
            return head.Call(convs) + pool.Call(withPool);
        }
        var x1 = Tensor.Randn([1, 4, 9, 9], 1);
        var model = new Autograd.Layers.Lambda(Net, ("a", a), ("b1", b1), ("b2", b2), ("c", c), ("bn", bn), ("head", head), ("pool", pool));
        var imported = OnnxModel.Load(OnnxExport.ToBytes(model, x1), Path.GetTempPath());
        Assert.That(imported.Nodes.Count(n => n.OpType == "Concat"), Is.EqualTo(2));
        foreach (var x in new[] { x1, Tensor.Randn([2, 4, 9, 9], 2) })
        {
            var unfused = imported.Call(x).ToDoubleArray();      // recording gradients: every node runs as it is
            double[] fused;
            using (AutoGrad.NoGrad()) fused = imported.Call(x).ToDoubleArray();
            Assert.That(fused, Is.EqualTo(unfused).Within(1e-5 * unfused.Max(Math.Abs)), $"batch {x.Shape[0]}");
        }
    }

    [Test]
    public void Concatenations_and_poolings_in_the_kernels_layout_give_the_same_values_as_in_nchw()
    {
        Generator.ManualSeed(6);
        // Terms of 16 + 32 channels (whole blocks: the concatenation stays in the kernels' layout, read by a Conv and a
        // MaxPool; the first without a Relu), 8 + 16 (not whole blocks from a block boundary) and 12 + 4 (the first term's blocked layout is padded to
        // the whole concatenation), and a Conv -> Relu -> MaxPool -> Conv chain pooled in the kernel's layout.
        int[][] pairs = [[16, 32], [8, 16], [12, 4]];
        var convs = pairs.SelectMany(p => p).Select(c => new Autograd.Layers.Conv2d(4, c, 3, padding: 1)).ToArray();
        var heads = pairs.Select(p => new Autograd.Layers.Conv2d(p.Sum(), 4, 1)).ToArray();
        var stem = new Autograd.Layers.Conv2d(4, 16, 3, padding: 1);
        var after = new Autograd.Layers.Conv2d(16, 4, 1);
        Tensor Net(Tensor v)
        {
            var y = after.Call(MaxPool2d(Relu(stem.Call(v)), 3, 2, 1));
            for (int i = 0; i < pairs.Length; i++)
            {
                var first = convs[2 * i].Call(v);
                var cat = Cat([i == 0 ? first : Relu(first), Relu(convs[2 * i + 1].Call(v))], 1);
                y = y + MaxPool2d(heads[i].Call(cat), 3, 2, 1) + heads[i].Call(MaxPool2d(cat, 3, 2, 1));
            }
            return y;
        }
        var x1 = Tensor.Randn([1, 4, 9, 11], 1);
        var named = convs.Select((c, i) => ($"c{i}", (Autograd.Layers.Module)c)).Concat(heads.Select((h, i) => ($"h{i}", (Autograd.Layers.Module)h)))
            .Append(("stem", stem)).Append(("after", after)).ToArray();
        var imported = OnnxModel.Load(OnnxExport.ToBytes(new Autograd.Layers.Lambda(Net, named), x1), Path.GetTempPath());
        foreach (var x in new[] { x1, Tensor.Randn([2, 4, 9, 11], 2) })
        {
            var unfused = imported.Call(x).ToDoubleArray();      // recording gradients: every node runs as it is
            double[] fused;
            using (AutoGrad.NoGrad()) fused = imported.Call(x).ToDoubleArray();
            Assert.That(fused, Is.EqualTo(unfused).Within(1e-5 * unfused.Max(Math.Abs)), $"batch {x.Shape[0]}");
        }
        // A concatenation's term asked for by name (a convolution's output: the first) comes back in NCHW.
        var term = imported.Nodes.Where(n => n.OpType == "Concat").SelectMany(n => n.Inputs)
            .First(t => imported.Nodes.Any(p => p.OpType == "Conv" && p.Outputs[0] == t));
        var asIs = imported.Run([term], x1)[0].ToDoubleArray();
        double[] inference;
        using (AutoGrad.NoGrad()) inference = imported.Run([term], x1)[0].ToDoubleArray();
        Assert.That(inference, Is.EqualTo(asIs).Within(1e-5 * asIs.Max(Math.Abs)));
    }

    [Test]
    public void Constant_subgraphs_are_evaluated_once_and_a_replaced_value_wins_over_its_folded_one()
    {
        var model = OnnxModel.Load(OnnxData("light", "squeezenet", "model.onnx"));
        var weight = model.Nodes.First(n => n.OpType == "ConstantOfShape").Outputs[0];
        var input = Tensor.Rand([1, 3, 224, 224], seed: 0);
        var first = model.Run([weight], input)[0];
        Assert.That(model.Run([weight], input)[0], Is.SameAs(first), "a folded value is computed once");
        var replacement = Tensor.Full(first.Shape, 0.5);
        model.ReplaceValue(weight, replacement);
        Assert.That(model.Run([weight], input)[0].ToFloatArray(), Is.EqualTo(replacement.ToFloatArray()));
    }

    [Test]
    public void Inference_recycles_dead_intermediate_arrays_without_changing_any_result()
    {
        var model = OnnxModel.Load(OnnxData("light", "squeezenet", "model.onnx"));
        // The second activation is wanted with the output, so it must survive; the others die as the run goes. Batch 2, so
        // the first activations (6.3 MB) are above the pool's minimum (the large-object threshold, 4 MB here).
        var secondRelu = model.Nodes.Where(n => n.OpType == "Relu").ElementAt(1).Outputs[0];
        AssertRecyclingKeepsResults(model, [secondRelu, model.Outputs[0].Name], [2, 3, 224, 224]);
    }

    [Test]
    public void Inference_never_recycles_an_array_a_live_view_or_an_input_shares()
    {
        const int n = 1 << 21;   // 8 MB, above the pool's minimum (the large-object threshold, 4 MB here)
        // a views the input's array, c views b's: a dying must not free the input, b dying must not free c.
        var net = new Autograd.Layers.Lambda(x =>
        {
            var a = x.Reshape(2, n / 2);
            var b = Relu(a) * 3;
            var c = b.Reshape(1, n);
            return Sigmoid(c) + c * Tanh(x);
        });
        var model = OnnxModel.Load(OnnxExport.ToBytes(net, Tensor.Randn([1, n], 0)), Path.GetTempPath());
        // Relu(a) is wanted too: read by the next node, it must still not be recycled.
        AssertRecyclingKeepsResults(model, [model.Nodes.First(n => n.OpType == "Relu").Outputs[0], model.Outputs[0].Name], [1, n]);
    }

    /// <summary>Runs <paramref name="model"/> without gradients on two inputs with recycling off, then on, and checks that the
    /// runs agree, that arrays were recycled, and that nothing a later run overwrote was still in use: earlier results, the
    /// weights and the inputs keep their values.</summary>
    private static void AssertRecyclingKeepsResults(OnnxModule model, List<string> wanted, int[] shape)
    {
        Tensor[] inputs = [Tensor.Rand(shape, seed: 0), Tensor.Rand(shape, seed: 1)];
        var inputValues = inputs.Select(x => x.ToFloatArray()).ToArray();
        Tensor[] Run(Tensor input) { using (AutoGrad.NoGrad()) return model.Run(wanted, input); }
        float[][][] without;
        StoragePool.Enabled = false;
        try { without = inputs.Select(x => Run(x).Select(t => t.ToFloatArray()).ToArray()).ToArray(); }
        finally { StoragePool.Enabled = true; }
        long returned = StoragePool.Returned;
        var first = Run(inputs[0]);
        Assert.That(StoragePool.Returned, Is.GreaterThan(returned), "no dead value was recycled");
        Assert.That(first.Select(t => t.ToFloatArray()), Is.EqualTo(without[0]));
        // Another input: the arrays the first run gave back are overwritten with other values.
        Assert.That(Run(inputs[1]).Select(t => t.ToFloatArray()), Is.EqualTo(without[1]));
        Assert.That(first.Select(t => t.ToFloatArray()), Is.EqualTo(without[0]), "a value the first run returned was recycled");
        Assert.That(Run(inputs[0]).Select(t => t.ToFloatArray()), Is.EqualTo(without[0]), "weights were recycled");
        Assert.That(inputs.Select(x => x.ToFloatArray()), Is.EqualTo(inputValues), "an input was recycled");
    }

    [Test]
    public void At_least_95_percent_of_node_and_pytorch_operator_cases_are_expected_to_pass()
    {
        int total = OnnxConformance.Cases(OnnxData("node")).Count() + OnnxConformance.Cases(OnnxData("pytorch-operator")).Count();
        Assert.That(total, Is.EqualTo(529 + 35));
        Assert.That(KnownNotPassing.Count, Is.LessThanOrEqualTo(total * 5 / 100));
    }

    // ---------------------------------------------------------------- decoding

    private string dir = "";

    [SetUp]
    public void SetUp() => dir = Directory.CreateTempSubdirectory("onnx-tests-").FullName;

    [TearDown]
    public void TearDown()
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }

    private static readonly float[] WeightValues = [1.5f, -2f, 0.25f, 4f, 8f, -0.5f];

    /// <summary>Y = X + W with W [2, 3] given by <paramref name="weight"/> (a TensorProto body without its name).</summary>
    private static byte[] AddModel(Proto weight) => Proto.Model(
        [Proto.Node("Add", ["X", "W"], ["Y"])],
        [weight.Str(8, "W")],
        [Proto.TensorType("X", 1, 2, 3)],
        [Proto.TensorType("Y", 1, 2, 3)]);

    private static float[] RunAdd(OnnxModule m) => m.Call(Tensor.Zeros(2, 3)).ToFloatArray();

    private static byte[] RawFloats(float[] v) => v.SelectMany(BitConverter.GetBytes).ToArray();

    [Test]
    public void Packed_unpacked_and_raw_tensor_data_decode_to_the_same_values()
    {
        var packed = new Proto().PackedInts(1, 2, 3).Int(2, 1).PackedFloats(4, WeightValues);
        var unpacked = new Proto().Int(1, 2).Int(1, 3).Int(2, 1);
        foreach (var v in WeightValues) unpacked.Float(4, v);
        var raw = new Proto().PackedInts(1, 2, 3).Int(2, 1).Raw(9, RawFloats(WeightValues));
        foreach (var proto in new[] { packed, unpacked, raw })
            Assert.That(RunAdd(OnnxModel.Load(AddModel(proto), dir)), Is.EqualTo(WeightValues));
    }

    [Test]
    public void Typed_integer_and_double_data_keep_their_values()
    {
        var doubles = new Proto().PackedInts(1, 2).Int(2, 11);
        doubles.Raw(10, new[] { 0.1, -3.0 }.SelectMany(BitConverter.GetBytes).ToArray());
        var model = Proto.Model([Proto.Node("Identity", ["D"], ["Y"])], [doubles.Str(8, "D")], [], [Proto.TensorType("Y", 11, 2)]);
        Assert.That(OnnxModel.Load(model, dir).Run()[0].ToDoubleArray(), Is.EqualTo(new[] { 0.1, -3.0 }));

        var ints = new Proto().PackedInts(1, 3).Int(2, 3).PackedInts(5, -128, 0, 127).Str(8, "t");   // INT8 in int32_data
        var path = Path.Combine(dir, "t.pb");
        File.WriteAllBytes(path, ints.Bytes());
        var (t, type, name) = TensorData.ReadFile(path);
        Assert.That((t.ToLongArray(), type, name), Is.EqualTo((new long[] { -128, 0, 127 }, OnnxDataType.Int8, "t")));
    }

    private static Proto External(string location, long offset = -1, long length = -1)
    {
        var t = new Proto().PackedInts(1, 2, 3).Int(2, 1).Msg(13, new Proto().Str(1, "location").Str(2, location));
        if (offset >= 0) t.Msg(13, new Proto().Str(1, "offset").Str(2, offset.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        if (length >= 0) t.Msg(13, new Proto().Str(1, "length").Str(2, length.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        return t.Int(14, 1);
    }

    [Test]
    public void External_data_inside_the_model_folder_is_read_with_offset_and_length()
    {
        Directory.CreateDirectory(Path.Combine(dir, "weights"));
        File.WriteAllBytes(Path.Combine(dir, "weights", "w.bin"), [.. new byte[8], .. RawFloats(WeightValues), .. new byte[4]]);
        var path = Path.Combine(dir, "model.onnx");
        File.WriteAllBytes(path, AddModel(External("weights/w.bin", 8, 24)));
        Assert.That(RunAdd(OnnxModel.Load(path)), Is.EqualTo(WeightValues));
    }

    [Test]
    public void External_data_that_leaves_the_model_folder_is_refused()
    {
        var model = Path.Combine(dir, "model");
        Directory.CreateDirectory(model);
        var outside = Path.Combine(dir, "secret.bin");
        File.WriteAllBytes(outside, RawFloats(WeightValues));
        File.CreateSymbolicLink(Path.Combine(model, "link.bin"), outside);
        Directory.CreateSymbolicLink(Path.Combine(model, "linkdir"), dir);
        foreach (var (location, expected) in new[]
        {
            ("../secret.bin", "leaves the model's folder"),
            ("sub/../../secret.bin", "leaves the model's folder"),
            (outside, "absolute path"),
            ("link.bin", "outside the model's folder"),
            ("linkdir/secret.bin", "outside the model's folder"),
        })
        {
            var path = Path.Combine(model, "model.onnx");
            File.WriteAllBytes(path, AddModel(External(location)));
            var e = Assert.Throws<OnnxFormatException>(() => OnnxModel.Load(path), location);
            Assert.That(e!.Message, Does.Contain(expected), location);
        }
        // A tensor in a Constant node's attribute is held to the same folder.
        var constant = Proto.Model([Proto.Node("Constant", [], ["Y"], new Proto().Str(1, "value").Msg(5, External("../secret.bin")).Int(20, 4))], [], [],
            [Proto.TensorType("Y", 1, 2, 3)]);
        File.WriteAllBytes(Path.Combine(model, "constant.onnx"), constant);
        var m = OnnxModel.Load(Path.Combine(model, "constant.onnx"));
        Assert.That(Assert.Throws<OnnxFormatException>(() => m.Run())!.Message, Does.Contain("leaves the model's folder"));
    }

    [Test]
    public void Truncated_and_corrupt_files_name_the_byte_offset_and_the_field()
    {
        var good = AddModel(new Proto().PackedInts(1, 2, 3).Int(2, 1).PackedFloats(4, WeightValues));
        var e = Assert.Throws<OnnxFormatException>(() => OnnxModelFile.Parse(good[..^3]));
        Assert.That(e!.Offset, Is.Not.Null);
        Assert.That(e.Message, Does.Match(@"at byte \d+, reading \w+\.\w+"));

        // Field 7 (graph) sent as a varint: wrong wire type.
        e = Assert.Throws<OnnxFormatException>(() => OnnxModelFile.Parse([0x08, 0x08, 0x38, 0x01]));
        Assert.That((e!.Offset, e.Field), Is.EqualTo(((long?)2, "ModelProto.graph")));

        // A length that runs past the end of the file.
        e = Assert.Throws<OnnxFormatException>(() => OnnxModelFile.Parse([0x08, 0x08, 0x3A, 0x7F, 0x0A]));
        Assert.That(e!.Message, Does.Contain("exceeds"));
        Assert.That(e.Field, Is.EqualTo("ModelProto.graph"));

        e = Assert.Throws<OnnxFormatException>(() => OnnxModelFile.Parse(Proto.Model([], [], [], [], ir: 2)));
        Assert.That(e!.Message, Does.Contain("IR version 2"));
    }

    [Test]
    public void Unsupported_ops_and_attributes_are_named_with_node_and_opset()
    {
        var unknownOp = Proto.Model([Proto.Node("NonMaxSuppression", ["X"], ["Y"])], [], [Proto.TensorType("X", 1, 2)], [Proto.TensorType("Y", 1, 2)]);
        var e = Assert.Throws<OnnxUnsupportedException>(() => OnnxModel.Load(unknownOp, dir));
        Assert.That(e!.Message, Does.Contain("NonMaxSuppression").And.Contain("opset 13"));

        var future = Proto.Model([Proto.Node("Relu", ["X"], ["Y"])], [], [Proto.TensorType("X", 1, 2)], [Proto.TensorType("Y", 1, 2)], opset: 99);
        Assert.That(Assert.Throws<OnnxUnsupportedException>(() => OnnxModel.Load(future, dir))!.Message, Does.Contain("opset 99"));

        var badAttr = Proto.Model([Proto.Node("Relu", ["X"], ["Y"], new Proto().Str(1, "frobnicate").Int(3, 1).Int(20, 2))], [],
            [Proto.TensorType("X", 1, 2)], [Proto.TensorType("Y", 1, 2)]);
        var m = OnnxModel.Load(badAttr, dir);
        e = Assert.Throws<OnnxUnsupportedException>(() => m.Call(Tensor.Ones(2)));
        Assert.That((e!.OpType, e.Attribute, e.Opset), Is.EqualTo(("Relu", "frobnicate", 13L)));
        Assert.That(e.Message, Does.Contain("Relu -> 'Y'"));
    }

    private static Tensor RunOne(string op, long opset, int[] shape, int[] outShape, params Proto[] attributes)
    {
        var model = Proto.Model([Proto.Node(op, ["X"], ["Y"], attributes)], [], [Proto.TensorType("X", 1, [.. shape.Select(d => (long)d)])],
            [Proto.TensorType("Y", 1, [.. outShape.Select(d => (long)d)])], opset: opset);
        return OnnxModel.Load(model, Path.GetTempPath()).Call(Tensor.Arange(shape.Aggregate(1, (p, d) => p * d)).Reshape(shape) * 0.1);
    }

    private static Proto IntAttr(string name, long v) => new Proto().Str(1, name).Int(3, v).Int(20, 2);

    [Test]
    public void Softmax_before_opset_13_normalizes_the_input_flattened_to_2d_at_axis()
    {
        var x = Tensor.Arange(24).Reshape(2, 3, 4) * 0.1;
        var old = RunOne("Softmax", 11, [2, 3, 4], [2, 3, 4], IntAttr("axis", 1));
        Assert.That(old.ToFloatArray(), Is.EqualTo(Softmax(x.Reshape(2, 12), 1).ToFloatArray()).Within(1e-6));
        var current = RunOne("Softmax", 13, [2, 3, 4], [2, 3, 4], IntAttr("axis", 1));
        Assert.That(current.ToFloatArray(), Is.EqualTo(Softmax(x, 1).ToFloatArray()).Within(1e-6));
        Assert.That(RunOne("LogSoftmax", 9, [2, 3, 4], [2, 3, 4]).ToFloatArray(), Is.EqualTo(LogSoftmax(x.Reshape(2, 12), 1).ToFloatArray()).Within(1e-5));
    }

    [Test]
    public void Attributes_that_later_became_inputs_are_read_in_old_opsets()
    {
        Assert.That(RunOne("Unsqueeze", 11, [2, 3], [2, 1, 3, 1], IntsAttr("axes", 1, -1)).Shape, Is.EqualTo(new[] { 2, 1, 3, 1 }));
        Assert.That(RunOne("Squeeze", 11, [2, 1, 3], [2, 3], IntsAttr("axes", 1)).Shape, Is.EqualTo(new[] { 2, 3 }));
        var mean = RunOne("ReduceMean", 13, [2, 3], [2], IntsAttr("axes", 1), IntAttr("keepdims", 0));
        Assert.That(mean.ToFloatArray(), Is.EqualTo(new[] { 0.1f, 0.4f }).Within(1e-6));
        var slice = RunOne("Slice", 9, [2, 4], [2, 2], IntsAttr("starts", 1), IntsAttr("ends", 3), IntsAttr("axes", 1));
        Assert.That(slice.ToFloatArray(), Is.EqualTo(new[] { 0.1f, 0.2f, 0.5f, 0.6f }).Within(1e-6));
        var pad = RunOne("Pad", 2, [1, 2], [1, 4], IntsAttr("pads", 0, 1, 0, 1), new Proto().Str(1, "value").Float(2, -1).Int(20, 1));
        Assert.That(pad.ToFloatArray(), Is.EqualTo(new[] { -1f, 0f, 0.1f, -1f }).Within(1e-6));
        var clip = RunOne("Clip", 6, [4], [4], new Proto().Str(1, "min").Float(2, 0.1f).Int(20, 1), new Proto().Str(1, "max").Float(2, 0.2f).Int(20, 1));
        Assert.That(clip.ToFloatArray(), Is.EqualTo(new[] { 0.1f, 0.1f, 0.2f, 0.2f }).Within(1e-6));
    }

    /// <summary>A two-input node on the given values; returns the output as longs (bool and index results) or doubles.</summary>
    private static Tensor RunTwo(string op, Tensor a, int aType, Tensor b, int bType, params Proto[] attributes)
    {
        var model = Proto.Model([Proto.Node(op, ["A", "B"], ["Y"], attributes)], [],
            [Proto.TensorType("A", aType, [.. a.Shape.Select(d => (long)d)]), Proto.TensorType("B", bType, [.. b.Shape.Select(d => (long)d)])],
            [new Proto().Str(1, "Y")]);
        return OnnxModel.Load(model, Path.GetTempPath()).Run(a, b)[0];
    }

    [Test]
    public void Comparison_logical_expand_and_argmax_ops_follow_onnx_broadcasting_and_types()
    {
        var a = Tensor.From([1f, 5f, 3f, 7f], 2, 2);
        var b = Tensor.From([3f, 5f], 2);
        Assert.That(RunTwo("Equal", a, 1, b, 1).ToLongArray(), Is.EqualTo(new long[] { 0, 1, 1, 0 }));
        Assert.That(RunTwo("Greater", a, 1, b, 1).ToLongArray(), Is.EqualTo(new long[] { 0, 0, 0, 1 }));
        Assert.That(RunTwo("GreaterOrEqual", a, 1, b, 1).ToLongArray(), Is.EqualTo(new long[] { 0, 1, 1, 1 }));
        Assert.That(RunTwo("LessOrEqual", a, 1, b, 1).ToLongArray(), Is.EqualTo(new long[] { 1, 1, 1, 0 }));
        var p = Tensor.From([1L, 0, 1, 1], 2, 2);
        var q = Tensor.From([1L, 0], 2);
        Assert.That(RunTwo("And", p, 9, q, 9).ToLongArray(), Is.EqualTo(new long[] { 1, 0, 1, 0 }));
        Assert.That(RunTwo("Or", p, 9, q, 9).ToLongArray(), Is.EqualTo(new long[] { 1, 0, 1, 1 }));
        Assert.That(RunTwo("Xor", p, 9, q, 9).ToLongArray(), Is.EqualTo(new long[] { 0, 0, 0, 1 }));
        // Expand broadcasts both ways: [2, 1] to shape [1, 3] gives [2, 3].
        var e = RunTwo("Expand", Tensor.From([1f, 2f], 2, 1), 1, Tensor.From([1L, 3], 2), 7);
        Assert.That((e.Shape, e.ToFloatArray()), Is.EqualTo((new[] { 2, 3 }, new[] { 1f, 1, 1, 2, 2, 2 })));
        var arg = RunOne("ArgMax", 13, [2, 3], [2, 1], IntAttr("axis", 1));
        Assert.That((arg.Shape, arg.ToLongArray()), Is.EqualTo((new[] { 2, 1 }, new long[] { 2, 2 })));
        var argMin = RunOne("ArgMin", 13, [2, 3], [3], IntAttr("axis", 0), IntAttr("keepdims", 0));
        Assert.That(argMin.ToLongArray(), Is.EqualTo(new long[] { 0, 0, 0 }));
    }

    [Test]
    public void LRN_of_even_size_uses_the_onnx_window_one_channel_above_pytorchs()
    {
        var y = RunOne("LRN", 13, [1, 3, 1, 1], [1, 3, 1, 1], IntAttr("size", 2), new Proto().Str(1, "alpha").Float(2, 2).Int(20, 1),
            new Proto().Str(1, "beta").Float(2, 1).Int(20, 1));
        // x = [0, 0.1, 0.2]; ONNX window of channel c is {c, c+1}: y_c = x_c / (1 + 2/2 * sum of squares).
        Assert.That(y.ToFloatArray(), Is.EqualTo(new[] { 0f, 0.1f / (1 + 0.01f + 0.04f), 0.2f / (1 + 0.04f) }).Within(1e-6));
    }

    [Test]
    public void Per_activation_batch_norm_of_opset_6_is_reported_as_unsupported()
    {
        var stats = new[] { "s", "b", "m", "v" }.Select((n, i) => new Proto().PackedInts(1, 2).Int(2, 1).PackedFloats(4, 1, 1).Str(8, n)).ToArray();
        var model = Proto.Model([Proto.Node("BatchNormalization", ["X", "s", "b", "m", "v"], ["Y"], IntAttr("spatial", 0), IntAttr("is_test", 1))],
            stats, [Proto.TensorType("X", 1, 1, 2)], [Proto.TensorType("Y", 1, 1, 2)], opset: 6);
        var m = OnnxModel.Load(model, dir);
        Assert.That(m.NamedBuffers().Select(b => b.Name), Is.EquivalentTo(new[] { "m", "v" }));
        var e = Assert.Throws<OnnxUnsupportedException>(() => m.Call(Tensor.Ones(1, 2)));
        Assert.That((e!.Attribute, e.Opset), Is.EqualTo(("spatial", 6L)));
    }

    // ---------------------------------------------------------------- modules, parameters, gradients

    [Test]
    public void Initializers_are_parameters_under_their_onnx_names_and_dots_nest_as_state_dict_paths()
    {
        var w = new Proto().PackedInts(1, 2, 3).Int(2, 1).PackedFloats(4, WeightValues);
        var model = Proto.Model(
            [Proto.Node("Add", ["X", "layer1.0.weight"], ["T"]), Proto.Node("Add", ["T", "bias"], ["U"]), Proto.Node("Reshape", ["U", "shape"], ["Y"])],
            [w.Str(8, "layer1.0.weight"), new Proto().PackedInts(1, 3).Int(2, 1).PackedFloats(4, 1, 2, 3).Str(8, "bias"),
             new Proto().PackedInts(1, 1).Int(2, 7).PackedInts(7, 6).Str(8, "shape")],
            [Proto.TensorType("X", 1, 2, 3)], [Proto.TensorType("Y", 1, 6)]);
        var m = OnnxModel.Load(model, dir);
        Assert.That(m.NamedParameters().Select(p => p.Name), Is.EqualTo(new[] { "bias", "layer1.0.weight" }).AsCollection.Or.EqualTo(new[] { "layer1.0.weight", "bias" }));
        Assert.That(m.NamedBuffers().Select(b => b.Name), Is.EqualTo(new[] { "shape" }));
        Assert.That(m.ParameterKey("layer1.0.weight"), Is.EqualTo("layer1.0.weight"));

        var x = Tensor.Ones(2, 3).RequiresGrad_();
        m.Call(x).Pow(2).Sum().Backward();
        var expected = WeightValues.Select((v, i) => 2 * (1 + v + (i % 3 + 1))).ToArray();
        Assert.That(m.Initializer("layer1.0.weight").Grad!.ToFloatArray(), Is.EqualTo(expected).Within(1e-5));
        Assert.That(x.Grad!.ToFloatArray(), Is.EqualTo(expected).Within(1e-5));
    }

    [Test]
    public void Backward_through_an_imported_pytorch_convolution_matches_the_framework_op()
    {
        var m = OnnxModel.Load(OnnxData("pytorch-operator", "test_operator_conv", "model.onnx"));
        var (x, _, _) = TensorData.ReadFile(OnnxData("pytorch-operator", "test_operator_conv", "test_data_set_0", "input_0.pb"));
        var w = m.Parameters().Single();
        m.Call(x).Sum().Backward();
        var reference = w.Detach().Clone().RequiresGrad_();
        Conv2d(x, reference).Sum().Backward();
        Assert.That(w.Grad, Is.Not.Null);
        Assert.That(w.Grad!.ToFloatArray(), Is.EqualTo(reference.Grad!.ToFloatArray()).Within(1e-2));
    }

    [Test]
    public void Gradients_of_an_imported_model_pass_a_float64_gradient_check_for_input_and_parameter()
    {
        var m = OnnxModel.Load(OnnxData("pytorch-operator", "test_operator_params", "model.onnx"));
        m.To(DType.Float64);
        var p = m.Parameters().Single();
        var x = Tensor.Randn([2, 2], seed: 3, DType.Float64).RequiresGrad_();
        GradCheck.Check(t => m.Call(t[0]), x, p).ThrowIfFailed();
    }

    private static Proto Floats(string name, long[] dims, long seed)
    {
        var gen = new Generator(seed);
        var values = Enumerable.Range(0, (int)dims.Aggregate(1L, (p, d) => p * d)).Select(_ => (float)(gen.NextNormal() * 0.5)).ToArray();
        return new Proto().PackedInts(1, dims).Int(2, 1).PackedFloats(4, values).Str(8, name);
    }

    private static Proto IntsAttr(string name, params long[] v) => new Proto().Str(1, name).PackedInts(8, v).Int(20, 7);

    [Test]
    public void A_converted_float64_conv_network_passes_a_gradient_check_for_input_and_weights()
    {
        // Conv (padded, strided) -> Mul by a Constant -> Tanh -> AveragePool -> Flatten -> Gemm (transB), all from ONNX.
        var half = new Proto().Str(1, "value").Msg(5, new Proto().Int(2, 1).PackedFloats(4, 0.5f).Str(8, "half")).Int(20, 4);
        var transB = new Proto().Str(1, "transB").Int(3, 1).Int(20, 2);
        var model = Proto.Model(
            [Proto.Node("Conv", ["X", "conv.weight", "conv.bias"], ["c"], IntsAttr("pads", 1, 0, 1, 2), IntsAttr("strides", 1, 2)),
             Proto.Node("Constant", [], ["k"], half), Proto.Node("Mul", ["c", "k"], ["m"]), Proto.Node("Tanh", ["m"], ["t"]),
             Proto.Node("AveragePool", ["t"], ["p"], IntsAttr("kernel_shape", 2, 2), IntsAttr("strides", 2, 2)), Proto.Node("Flatten", ["p"], ["f"]),
             Proto.Node("Gemm", ["f", "fc.weight", "fc.bias"], ["Y"], transB)],
            [Floats("conv.weight", [3, 2, 3, 3], 1), Floats("conv.bias", [3], 2), Floats("fc.weight", [2, 6], 3), Floats("fc.bias", [2], 4)],
            [Proto.TensorType("X", 1, 1, 2, 5, 5)], [Proto.TensorType("Y", 1, 1, 2)]);
        var m = OnnxModel.Load(model, dir);
        Assert.That(m.StateDict().Keys, Is.EquivalentTo(new[] { "conv.weight", "conv.bias", "fc.weight", "fc.bias" }));
        m.To(DType.Float64);
        var x = Tensor.Randn([1, 2, 5, 5], seed: 5, DType.Float64).RequiresGrad_();
        var sd = m.StateDict();
        GradCheck.Check(t => m.Call(t[0]), x, sd["conv.weight"], sd["fc.weight"]).ThrowIfFailed();
    }

    [Test]
    public void An_output_nothing_reads_is_not_made_and_a_requested_one_is()
    {
        // An inference Dropout's mask (SqueezeNet names it and reads nothing of it: 0.25 of its 4.4 ms went to making it).
        var m = OnnxModel.Load(OnnxData("node", "test_dropout_default_mask", "model.onnx"));
        var node = m.Nodes.Single(n => n.OpType == "Dropout");
        var (x, _, _) = TensorData.ReadFile(OnnxData("node", "test_dropout_default_mask", "test_data_set_0", "input_0.pb"));
        OpContext Context(IReadOnlySet<string>? needed) =>
            new(node, 13, [OnnxValue.Of(x)], false, new Dictionary<string, OnnxValue>(), DType.Float32, "") { Needed = needed };
        Assert.That(Context(new HashSet<string> { node.Outputs[0] }).Wants(1), Is.False);
        Assert.That(Context(new HashSet<string>(node.Outputs)).Wants(1), Is.True);
        Assert.That(Context(null).Wants(1), Is.True, "no run to say otherwise");
        var y = m.Run([node.Outputs[0]], x);
        Assert.That(y, Has.Length.EqualTo(1));
        Assert.That(y[0].ToFloatArray(), Is.EqualTo(x.ToFloatArray()));
        var both = m.Run(node.Outputs, x);
        Assert.That(both[1].ToDoubleArray(), Has.Length.EqualTo(x.Numel).And.All.EqualTo(1.0));
    }

    [Test]
    public void Batch_norm_statistics_are_buffers_and_train_mode_uses_batch_statistics()
    {
        var m = OnnxModel.Load(OnnxData("node", "test_batchnorm_example", "model.onnx"));
        Assert.That(m.Training, Is.False, "imported models start in eval mode");
        var (x, _, _) = TensorData.ReadFile(OnnxData("node", "test_batchnorm_example", "test_data_set_0", "input_0.pb"));
        var inputs = Enumerable.Range(0, 5).Select(i => TensorData.ReadFile(OnnxData("node", "test_batchnorm_example", "test_data_set_0", $"input_{i}.pb")).Tensor).ToArray();
        var eval = m.Run(inputs)[0];
        m.Train();
        var train = m.Run(inputs)[0];
        var expected = BatchNorm(x, null, null, inputs[1], inputs[2], training: true);
        Assert.That(train.ToFloatArray(), Is.EqualTo(expected.ToFloatArray()).Within(1e-5));
        Assert.That(train.ToFloatArray(), Is.Not.EqualTo(eval.ToFloatArray()));
    }

    [Test]
    public void Fine_tuning_resnet50_with_a_new_10_class_head_lowers_the_loss_on_cifar10_samples()
    {
        var m = OnnxModel.Load(OnnxData("light", "resnet50", "model.onnx"));
        var gemm = m.Nodes.Last(n => n.OpType == "Gemm");
        var gen = new Generator(0);
        var weight = Tensor.Randn([10, 2048], gen) * 0.01;
        Assert.That(m.ReplaceValue(gemm.Inputs[1], weight), Is.EqualTo("gpu_0/pred_w_0"));
        m.ReplaceValue(gemm.Inputs[2], Tensor.Zeros(10));
        Assert.That(m.StateDict()["gpu_0/pred_w_0"], Is.SameAs(weight));
        Assert.Throws<ArgumentException>(() => m.ReplaceValue(gemm.Inputs[1], weight));
        m.Train();   // batch statistics: the 0.02-filled placeholder weights would otherwise blow activations up

        // The Caffe2 export fixes the batch size at 1 (a Reshape to [1, 2048]), so each sample runs alone and the losses are averaged.
        var data = Datasets.Cifar10(Path.Combine(DataTests.RepoRootLazy.Value, "data", "cifar10-subset", "data_batch_1.first200.bin"));
        var samples = Enumerable.Range(0, 3).Select(i => (X: Interpolate(data[i].Input.Unsqueeze(0), size: [224, 224], mode: "bilinear"),
            Y: Tensor.From([data[i].Label], 1))).ToArray();
        var opt = new SGD([weight, m.Initializer(gemm.Inputs[2])], lr: 0.1);
        var losses = new List<double>();
        for (int step = 0; step < 3; step++)
        {
            var loss = samples.Select(s => CrossEntropy(m.Run([gemm.Outputs[0]], s.X)[0], s.Y)).Aggregate((a, b) => a + b) / samples.Length;
            losses.Add(loss.Item());
            opt.ZeroGrad();
            loss.Backward();
            opt.Step();
        }
        Assert.That(weight.Grad, Is.Not.Null);
        Assert.That(losses[^1], Is.LessThan(losses[0]), string.Join(", ", losses));
    }

    [Test]
    public void Gradient_op_of_the_training_preview_domain_is_computed_by_autograd()
    {
        var r = OnnxConformance.Run(OnnxData("simple", "test_gradient_of_add_and_mul"));
        Assert.That(r.Status, Is.EqualTo(CaseStatus.Pass), r.Message);
    }
}
