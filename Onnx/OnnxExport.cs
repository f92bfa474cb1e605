using Autograd.Layers;

namespace Autograd.Onnx;

/// <summary>Exports a module to ONNX by tracing one forward pass (like <c>torch.onnx.export</c>): the module runs once in eval
/// mode on a sample input, every op it calls is recorded with its attributes, and the ops the output depends on become the
/// graph. Parameters and buffers become initializers named by their state-dict keys (<c>layer1.0.conv1.weight</c>), so the
/// file imports back with the same names. Shapes are those of the sample (the batch size included).</summary>
/// <example><code>
/// var model = Zoo.Create("resnet18", numClasses: 10);
/// model.ExportOnnx("resnet18.onnx", Tensor.Randn([1, 3, 224, 224], seed: 0));
/// </code></example>
public static class OnnxExport
{
    /// <summary>The opsets the exporter writes (the ops' attribute forms used here are those of opsets 13 to 17).</summary>
    public const int MinOpset = 13, MaxOpset = 17;

    /// <summary>Traces <paramref name="model"/> on <paramref name="sampleInput"/> and writes the ONNX file atomically.</summary>
    /// <param name="model">Any module built from this framework's layers and ops; it is traced in eval mode and restored.</param>
    /// <param name="path">The .onnx file to write.</param>
    /// <param name="sampleInput">An input of the shape the exported graph takes.</param>
    /// <param name="opset">The ai.onnx opset version to declare, 13 to 17.</param>
    /// <exception cref="OnnxUnsupportedException">The forward pass uses an op with no ONNX mapping; the message names it.</exception>
    public static void ExportOnnx(this Module model, string path, Tensor sampleInput, int opset = 17)
    {
        var proto = Trace(model, sampleInput, opset);
        var full = Path.GetFullPath(path);
        var tmp = full + ".tmp-" + Environment.ProcessId;
        try
        {
            using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                proto.WriteTo(file);
                file.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        finally { File.Delete(tmp); }
    }

    /// <summary>As <see cref="ExportOnnx"/>, returning the serialized ModelProto.</summary>
    public static byte[] ToBytes(Module model, Tensor sampleInput, int opset = 17) => Trace(model, sampleInput, opset).ToArray();

    private static ProtoWriter Trace(Module model, Tensor sampleInput, int opset)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sampleInput);
        if (opset is < MinOpset or > MaxOpset)
            throw new ArgumentOutOfRangeException(nameof(opset), $"ExportOnnx: opset {opset} is not supported ({MinOpset} to {MaxOpset} are)");
        bool training = model.Training;
        model.Eval();
        try
        {
            Tensor output;
            IReadOnlyList<TracedOp> ops;
            using (AutoGrad.NoGrad())
            using (var trace = OpTrace.Start())
            {
                output = model.Call(sampleInput);
                ops = trace.Ops;
            }
            return new GraphBuilder(model, sampleInput, output, ops, opset).Build(model.GetType().Name);
        }
        finally { model.Train(training); }
    }

    /// <summary>Turns the traced ops into ONNX nodes and initializers.</summary>
    private sealed class GraphBuilder
    {
        private readonly Dictionary<Tensor, string> names = new(ReferenceEqualityComparer.Instance);
        private readonly Dictionary<Tensor, TracedOp> producer = new(ReferenceEqualityComparer.Instance);
        private readonly List<ProtoWriter> nodes = [], initializers = [];
        private readonly Dictionary<Tensor, string> stateNames = new(ReferenceEqualityComparer.Instance);
        private readonly Tensor input, output;
        private readonly int opset;
        private int counter;

        public GraphBuilder(Module model, Tensor input, Tensor output, IReadOnlyList<TracedOp> ops, int opset)
        {
            this.input = input;
            this.output = output;
            this.opset = opset;
            foreach (var op in ops) producer[op.Output] = op;            // the last record of a tensor is the outermost op
            names[input] = "input";
            foreach (var (name, t) in model.NamedParameters().Concat(model.NamedBuffers())) stateNames.TryAdd(t, name);
        }

        public ProtoWriter Build(string graphName)
        {
            if (ReferenceEquals(output, input)) throw new OnnxUnsupportedException("ExportOnnx: the model returns its input unchanged; there is no graph to export");
            Visit(output);
            var graph = new ProtoWriter();
            foreach (var n in nodes) graph.Message(1, n);
            graph.String(2, graphName);
            foreach (var t in initializers) graph.Message(5, t);
            graph.Message(11, ValueInfo("input", input));
            graph.Message(12, ValueInfo(names[output], output));
            var model = new ProtoWriter()
                .Int(1, opset >= 15 ? 8 : 7)                                // IR version of the opset's ONNX release
                .String(2, "Autograd.NET")
                .String(3, typeof(OnnxExport).Assembly.GetName().Version?.ToString() ?? "0")
                .Message(7, graph)
                .Message(8, new ProtoWriter().String(1, "").Int(2, opset));
            return model;
        }

        /// <summary>Emits what <paramref name="t"/> depends on (iteratively, so deep graphs cannot overflow the stack) and returns its name.</summary>
        private string Visit(Tensor t)
        {
            var stack = new Stack<(Tensor T, bool Expanded)>();
            stack.Push((t, false));
            while (stack.Count > 0)
            {
                var (x, expanded) = stack.Pop();
                if (names.ContainsKey(x)) continue;
                if (!producer.TryGetValue(x, out var op)) { Constant(x, stateNames.GetValueOrDefault(x)); continue; }
                if (!expanded)
                {
                    stack.Push((x, true));
                    foreach (var i in op.Inputs) if (i is not null && !names.ContainsKey(i)) stack.Push((i, false));
                    continue;
                }
                names[x] = ReferenceEquals(x, output) ? "output" : $"{op.Op.ToLowerInvariant()}_{counter++}";
                Emit(op, names[x]);
            }
            return names[t];
        }

        private string Constant(Tensor t, string? name = null)
        {
            name ??= $"const_{counter++}";
            names[t] = name;
            initializers.Add(TensorProto(name, t));
            return name;
        }

        private string Const(long[] values) => Constant(Tensor.From(values, values.Length));
        private string Const(double value, Tensor like) => Constant(Tensor.Scalar(value, like.DType));

        private string Name(Tensor? t) => t is null ? "" : names[t];

        private string Temp() => $"tmp_{counter++}";

        private void Node(string opType, string[] inputs, string output, params (string Name, object Value)[] attributes)
        {
            var n = new ProtoWriter();
            foreach (var i in inputs) n.String(1, i);
            n.String(2, output).String(3, $"{opType}_{counter++}").String(4, opType);
            foreach (var (name, value) in attributes) n.Message(5, Attribute(name, value));
            nodes.Add(n);
        }

        private static ProtoWriter Attribute(string name, object value)
        {
            var a = new ProtoWriter().String(1, name);
            return value switch
            {
                bool b => a.Int(3, b ? 1 : 0).Int(20, 2),
                int i => a.Int(3, i).Int(20, 2),
                long l => a.Int(3, l).Int(20, 2),
                double d => a.Float(2, (float)d).Int(20, 1),
                string s => a.Raw(4, System.Text.Encoding.UTF8.GetBytes(s)).Int(20, 3),
                int[] v => a.Ints(8, v.Select(x => (long)x)).Int(20, 7),
                _ => throw new ArgumentException($"ExportOnnx: attribute {name} of type {value.GetType().Name}"),
            };
        }

        private void Emit(TracedOp op, string y)
        {
            string X(int i) => Name(op.Inputs[i]);
            T A<T>(string key) => op.Attributes.TryGetValue(key, out var v) ? (T)v
                : throw new OnnxUnsupportedException($"ExportOnnx: op {op.Op} was traced without its attribute {key}");
            var x0 = op.Inputs.Count > 0 ? op.Inputs[0] : null;
            switch (op.Op)
            {
                case "Conv":
                    Node("Conv", [X(0), X(1), .. op.Inputs[2] is null ? Array.Empty<string>() : [X(2)]], y,
                        ("kernel_shape", op.Inputs[1]!.Shape[2..]), ("strides", A<int[]>("strides")), ("pads", A<int[]>("pads")),
                        ("dilations", A<int[]>("dilations")), ("group", A<int>("group")));
                    break;
                case "ConvTranspose":
                    Node("ConvTranspose", [X(0), X(1), .. op.Inputs[2] is null ? Array.Empty<string>() : [X(2)]], y,
                        ("kernel_shape", op.Inputs[1]!.Shape[2..]), ("strides", A<int[]>("strides")), ("pads", A<int[]>("pads")),
                        ("output_padding", A<int[]>("output_padding")), ("dilations", A<int[]>("dilations")), ("group", A<int>("group")));
                    break;
                case "Pad":
                    Node("Pad", [X(0), Const([.. A<int[]>("pads").Select(p => (long)p)]), Const(A<double>("value"), x0!)], y, ("mode", "constant"));
                    break;
                case "IndexSelect":
                {
                    string index = X(1);
                    if (op.Inputs[1]!.Rank == 0) Node("Reshape", [X(1), Const([1L])], index = Temp());
                    Node("Gather", [X(0), index], y, ("axis", A<int>("axis")));
                    break;
                }
                case "Sum":
                    Node("ReduceSum", [X(0), Const([.. A<int[]>("axes").Select(a => (long)a)])], y, ("keepdims", A<bool>("keepdims")));
                    break;
                case "Max" or "Min":
                    Node(op.Op == "Max" ? "ReduceMax" : "ReduceMin", [X(0)], y, ("axes", A<int[]>("axes")), ("keepdims", A<bool>("keepdims")));
                    break;
                case "ArgMax" or "ArgMin":
                {
                    int axis = A<int>("axis");
                    string source = X(0);
                    if (axis < 0) Node("Reshape", [X(0), Const([-1L])], source = Temp());
                    var reduced = axis < 0 && A<bool>("keepdims") ? Temp() : y;
                    Node(op.Op, [source], reduced, ("axis", Math.Max(axis, 0)), ("keepdims", axis >= 0 && A<bool>("keepdims")));
                    if (reduced != y) Node("Reshape", [reduced, Const([.. op.Output.Shape.Select(d => (long)d)])], y);
                    break;
                }
                case "Maximum" or "Minimum":
                    Node(op.Op == "Maximum" ? "Max" : "Min", [X(0), X(1)], y);
                    break;
                case "Eq" or "Ne" or "Lt" or "Le" or "Gt" or "Ge":
                {
                    string compared = Temp();
                    string onnxOp = op.Op switch { "Eq" or "Ne" => "Equal", "Lt" => "Less", "Le" => "LessOrEqual", "Gt" => "Greater", _ => "GreaterOrEqual" };
                    Node(onnxOp, [X(0), X(1)], compared);
                    if (op.Op == "Ne") Node("Not", [compared], compared = Temp());
                    Node("Cast", [compared], y, ("to", ElemType(op.Output)));
                    break;
                }
                case "To":
                    Node("Cast", [X(0)], y, ("to", ElemType(op.Output)));
                    break;
                case "Where":
                {
                    string condition = Temp();
                    Node("Cast", [X(0)], condition, ("to", 9));
                    Node("Where", [condition, X(1), X(2)], y);
                    break;
                }
                case "Clone":
                    Node("Identity", [X(0)], y);
                    break;
                case "MaxPool":
                    Node("MaxPool", [X(0)], y, ("kernel_shape", A<int[]>("kernel_shape")), ("strides", A<int[]>("strides")),
                        ("pads", A<int[]>("pads")), ("dilations", A<int[]>("dilations")), ("ceil_mode", A<bool>("ceil_mode")));
                    break;
                case "AveragePool":
                    if (A<int>("divisor_override") != 0) throw Unsupported(op, "divisor_override has no ONNX equivalent");
                    Node("AveragePool", [X(0)], y, ("kernel_shape", A<int[]>("kernel_shape")), ("strides", A<int[]>("strides")),
                        ("pads", A<int[]>("pads")), ("ceil_mode", A<bool>("ceil_mode")), ("count_include_pad", A<bool>("count_include_pad")));
                    break;
                case "AdaptiveAvgPool" or "AdaptiveMaxPool":
                    Adaptive(op, y, avg: op.Op == "AdaptiveAvgPool");
                    break;
                case "BatchNormalization":
                {
                    int c = x0!.Size(1);
                    string scale = op.Inputs[1] is null ? Constant(Tensor.Ones([c], x0.DType)) : X(1);
                    string bias = op.Inputs[2] is null ? Constant(Tensor.Zeros([c], x0.DType)) : X(2);
                    Node("BatchNormalization", [X(0), scale, bias, X(3), X(4)], y, ("epsilon", A<double>("epsilon")));
                    break;
                }
                case "Linear":
                    if (x0!.Rank == 2) Node("Gemm", [X(0), X(1), .. op.Inputs[2] is null ? Array.Empty<string>() : [X(2)]], y, ("transB", 1));
                    else
                    {
                        string wt = Temp(), mm = op.Inputs[2] is null ? y : Temp();
                        Node("Transpose", [X(1)], wt, ("perm", new[] { 1, 0 }));
                        Node("MatMul", [X(0), wt], mm);
                        if (op.Inputs[2] is not null) Node("Add", [mm, X(2)], y);
                    }
                    break;
                case "Add" or "Sub" or "Mul" or "Div" or "Pow" or "MatMul":
                    Node(op.Op, [X(0), X(1)], y);
                    break;
                case "Relu" or "Sigmoid" or "Tanh" or "Exp" or "Log" or "Sqrt" or "Neg" or "Abs" or "Erf" or "Sign" or "HardSwish":
                    Node(op.Op, [X(0)], y);
                    break;
                case "Rsqrt":
                {
                    var s = Temp();
                    Node("Sqrt", [X(0)], s);
                    Node("Reciprocal", [s], y);
                    break;
                }
                case "HardSigmoid":
                    Node("HardSigmoid", [X(0)], y, ("alpha", 1.0 / 6), ("beta", 0.5));
                    break;
                case "Clamp":
                {
                    double lo = A<double>("min"), hi = A<double>("max");
                    Node("Clip", [X(0), double.IsInfinity(lo) ? "" : Const(lo, x0!), double.IsInfinity(hi) ? "" : Const(hi, x0!)], y);
                    break;
                }
                case "LeakyRelu" or "Elu":
                    Node(op.Op, [X(0)], y, ("alpha", A<double>("alpha")));
                    break;
                case "Selu":
                    Node("Selu", [X(0)], y, ("alpha", A<double>("alpha")), ("gamma", A<double>("scale")));
                    break;
                case "Softmax" or "LogSoftmax":
                    Node(op.Op, [X(0)], y, ("axis", A<int>("axis")));
                    break;
                case "Reshape" or "Expand":
                    Node(op.Op, [X(0), Const([.. op.Output.Shape.Select(d => (long)d)])], y);
                    break;
                case "Cat":
                    Node("Concat", [.. op.Inputs.Select(Name)], y, ("axis", A<int>("axis")));
                    break;
                case "Slice":
                    Node("Slice", [X(0), Const([A<int>("start")]), Const([A<int>("end")]), Const([A<int>("axis")]), Const([A<int>("step")])], y);
                    break;
                case "Permute":
                    Node("Transpose", [X(0)], y, ("perm", A<int[]>("perm")));
                    break;
                case "Mean":
                    Node("ReduceMean", [X(0)], y, ("axes", A<int[]>("axes")), ("keepdims", A<bool>("keepdims")));
                    break;
                case "LocalResponseNorm":
                    Node("LRN", [X(0)], y, ("size", A<int>("size")), ("alpha", A<double>("alpha")), ("beta", A<double>("beta")), ("bias", A<double>("bias")));
                    break;
                default:
                    throw Unsupported(op, "it has no ONNX mapping in the exporter");
            }
        }

        /// <summary>Adaptive pooling: global pooling or a fixed window when the sizes divide; otherwise one axis at a time,
        /// each output cell a Slice of its window reduced by ReduceMean/ReduceMax, concatenated along the axis.</summary>
        private void Adaptive(TracedOp op, string y, bool avg)
        {
            var size = (int[])op.Attributes["output_size"];
            var x = op.Inputs[0]!;
            var spatial = x.Shape[^size.Length..];
            if (size.All(s => s == 1)) { Node(avg ? "GlobalAveragePool" : "GlobalMaxPool", [Name(x)], y); return; }
            if (spatial.Zip(size).All(p => p.First % p.Second == 0))
            {
                var k = spatial.Zip(size, (i, o) => i / o).ToArray();
                Node(avg ? "AveragePool" : "MaxPool", [Name(x)], y, ("kernel_shape", k), ("strides", k));
                return;
            }
            string current = Name(x);
            for (int a = 0; a < size.Length; a++)
            {
                int axis = x.Rank - size.Length + a, inSize = spatial[a], outSize = size[a];
                var cells = new string[outSize];
                for (int i = 0; i < outSize; i++)
                {
                    int start = i * inSize / outSize, end = ((i + 1) * inSize + outSize - 1) / outSize;
                    string slice = Temp();
                    Node("Slice", [current, Const([start]), Const([end]), Const([axis])], slice);
                    Node(avg ? "ReduceMean" : "ReduceMax", [slice], cells[i] = Temp(), ("axes", new[] { axis }), ("keepdims", 1));
                }
                string next = a == size.Length - 1 ? y : Temp();
                Node("Concat", cells, next, ("axis", axis));
                current = next;
            }
        }

        private static string Shape(int[] s) => "[" + string.Join(", ", s) + "]";

        private static OnnxUnsupportedException Unsupported(TracedOp op, string why) =>
            new($"ExportOnnx: op {op.Op} (inputs {string.Join(", ", op.Inputs.Select(i => i is null ? "none" : Shape(i.Shape)))}, output {Shape(op.Output.Shape)}) cannot be exported: {why}");

        private static int ElemType(Tensor t) => t.DType switch
        {
            DType.Float32 => 1,
            DType.Float64 => 11,
            _ => 7,
        };

        private static ProtoWriter TensorProto(string name, Tensor t)
        {
            var p = new ProtoWriter().Ints(1, t.Shape.Select(d => (long)d)).Int(2, ElemType(t)).String(8, name);
            return p.Raw(9, t.DType switch
            {
                DType.Float32 => t.ToFloatArray(),
                DType.Float64 => t.ToDoubleArray(),
                _ => t.ToLongArray(),
            });
        }

        private static ProtoWriter ValueInfo(string name, Tensor t)
        {
            var shape = new ProtoWriter();
            foreach (var d in t.Shape) shape.Message(1, new ProtoWriter().Int(1, d));
            var tensorType = new ProtoWriter().Int(1, ElemType(t)).Message(2, shape);
            return new ProtoWriter().String(1, name).Message(2, new ProtoWriter().Message(1, tensorType));
        }
    }
}
