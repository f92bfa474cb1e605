using Autograd.Layers;

namespace Autograd.Onnx;

/// <summary>A graph value: a framework tensor and the ONNX element type it stands for (Int64 tensors carry every integer
/// type and Bool; Float32 tensors carry Float, Float16 and BFloat16).</summary>
/// <param name="Tensor">The values.</param>
/// <param name="Type">The ONNX element type.</param>
public readonly record struct OnnxValue(Tensor Tensor, OnnxDataType Type)
{
    /// <summary>A value of the natural ONNX type of the tensor's dtype.</summary>
    public static OnnxValue Of(Tensor t) => new(t, t.DType switch
    {
        DType.Float32 => OnnxDataType.Float,
        DType.Float64 => OnnxDataType.Double,
        _ => OnnxDataType.Int64,
    });
}

/// <summary>An op or attribute the importer does not implement. The message names the op, the node, the attribute (if
/// any) and the opset.</summary>
public sealed class OnnxUnsupportedException : NotSupportedException
{
    /// <summary>Creates an exception with a generic message.</summary>
    public OnnxUnsupportedException() : base("unsupported ONNX construct") { }

    /// <summary>Creates an exception with the given message.</summary>
    /// <param name="message">What is not supported.</param>
    public OnnxUnsupportedException(string message) : base(message) { }

    /// <summary>Creates an exception with the given message and cause.</summary>
    /// <param name="message">What is not supported.</param>
    /// <param name="innerException">The underlying error.</param>
    public OnnxUnsupportedException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>Creates an exception about one node.</summary>
    /// <param name="opType">The op type.</param>
    /// <param name="node">How the node is named.</param>
    /// <param name="opset">The model's opset.</param>
    /// <param name="attribute">The attribute, if the problem is one.</param>
    /// <param name="detail">What exactly is not supported.</param>
    public OnnxUnsupportedException(string opType, string node, long opset, string? attribute, string detail)
        : base($"{opType} (node {node}, opset {opset}){(attribute == null ? "" : $", attribute '{attribute}'")}: {detail}")
    {
        OpType = opType;
        Node = node;
        Opset = opset;
        Attribute = attribute;
    }

    /// <summary>The op type.</summary>
    public string? OpType { get; }
    /// <summary>The node.</summary>
    public string? Node { get; }
    /// <summary>The opset.</summary>
    public long Opset { get; }
    /// <summary>The attribute, if any.</summary>
    public string? Attribute { get; }
}

/// <summary>An imported ONNX model: a <see cref="Module"/> whose initializers are parameters (buffers for integer tensors and for
/// BatchNormalization's running statistics), registered under their ONNX names, and whose forward runs the graph with the
/// framework's differentiable ops, so <see cref="Tensor.Backward"/> reaches every parameter.</summary>
/// <remarks>Dotted ONNX names (<c>layer1.0.conv1.weight</c>) become nested child modules, so <see cref="Module.StateDict"/> keys are the
/// ONNX names exactly; a name that cannot be nested (an empty segment, or a prefix that is also a tensor) has its dots replaced by
/// underscores, and <see cref="ParameterKey"/> maps any ONNX name to its state-dict key. Loaded models start in eval mode (as an
/// inference runtime); <see cref="Module.Train"/> makes BatchNormalization use batch statistics and Dropout drop.</remarks>
public sealed class OnnxModule : Module
{
    private readonly List<NodeProto> order;
    private readonly Dictionary<string, string> keys = [];
    private readonly Dictionary<string, OnnxDataType> initializerTypes = [];
    private readonly Dictionary<string, string> replaced = [];
    private readonly string baseDir;
    private (DType FloatDType, Dictionary<string, OnnxValue> Values)? folded;
    private readonly Dictionary<NodeProto, NodeProto> batchNormAfter = [];
    private readonly Dictionary<NodeProto, NodeProto> reluAfter = [];
    private readonly Dictionary<NodeProto, NodeProto> sumAfter = [];
    private readonly HashSet<string> convInputs = [];
    private readonly Dictionary<string, NodeProto> concatOf = [];
    private readonly Dictionary<string, NodeProto> convOf = [];
    private readonly Dictionary<NodeProto, (Tensor[] Sources, int[] Versions, Tensor W, Tensor B)> foldedBatchNorms = [];
    private static readonly string[] Unfoldable = ["Random", "Dropout", "Gradient", "Multinomial", "Bernoulli"];

    /// <summary>The decoded model.</summary>
    public ModelProto Model { get; }

    /// <summary>The ai.onnx opset the graph is run with.</summary>
    public long Opset { get; }

    /// <summary>Graph inputs that are not initializers, in order.</summary>
    public IReadOnlyList<ValueInfoProto> Inputs { get; }

    /// <summary>Graph outputs, in order.</summary>
    public IReadOnlyList<ValueInfoProto> Outputs => Model.Graph.Outputs;

    internal OnnxModule(ModelProto model, string baseDir)
    {
        Model = model;
        this.baseDir = baseDir;
        Opset = model.Opset;
        if (Opset > OnnxModel.MaxOpset)
            throw new OnnxUnsupportedException($"opset {Opset} is newer than the newest one whose semantics the importer knows ({OnnxModel.MaxOpset})");
        var g = model.Graph;
        var initNames = new HashSet<string>();
        var statNames = g.Nodes.Where(n => n.OpType == "BatchNormalization").SelectMany(n => n.Inputs.Skip(3).Take(2)).ToHashSet();
        foreach (var init in g.Initializers)
        {
            if (!initNames.Add(init.Name)) throw new OnnxFormatException($"initializer '{init.Name}' is defined twice", init.Offset, "GraphProto.initializer");
            var (t, type) = TensorData.ToTensor(init, baseDir);
            initializerTypes[init.Name] = type;
            keys[init.Name] = Scope.Add(this, init.Name, t, parameter: t.DType != DType.Int64 && !statNames.Contains(init.Name));
        }
        Inputs = g.Inputs.Where(i => !initNames.Contains(i.Name)).ToList();
        foreach (var v in Inputs.Concat(g.Outputs))
            if (!v.IsTensor && v.Kind.Length > 0)
                throw new OnnxUnsupportedException($"graph value '{v.Name}' is of kind {v.Kind}; only tensor inputs and outputs are supported");
        order = TopologicalOrder(g, initNames);
        foreach (var n in order) Ops.Check(n, Opset);
        FindFusions(g);
        Eval();
    }

    /// <summary>The state-dict key of an initializer (its ONNX name, unless the name had to be flattened).</summary>
    /// <param name="onnxName">The initializer's ONNX name.</param>
    public string ParameterKey(string onnxName) =>
        keys.TryGetValue(onnxName, out var k) ? k : throw new KeyNotFoundException($"OnnxModule: no initializer named '{onnxName}'");

    /// <summary>The tensor an initializer currently holds.</summary>
    /// <param name="onnxName">The initializer's ONNX name.</param>
    public Tensor Initializer(string onnxName) => StateDict()[replaced.TryGetValue(onnxName, out var k) ? k : ParameterKey(onnxName)];

    /// <summary>Feeds <paramref name="value"/> to every consumer of the graph value <paramref name="name"/> instead of computing it
    /// (or instead of the initializer of that name), and registers it as a trainable parameter: under the value's name when that
    /// is free (a node output), else under a flattened variant of it. Use it to swap a classifier head:
    /// <c>model.ReplaceValue(lastGemm.Inputs[1], newWeight)</c>. The new shape may differ from the old one; a value is replaced once.</summary>
    /// <param name="name">A value name of the graph (initializer or node output).</param>
    /// <param name="value">The new tensor (made a leaf that requires grad).</param>
    /// <returns>The state-dict key of the new parameter.</returns>
    public string ReplaceValue(string name, Tensor value)
    {
        if (!keys.ContainsKey(name) && !order.Any(n => n.Outputs.Contains(name)))
            throw new ArgumentException($"OnnxModule.ReplaceValue: the graph has no value named '{name}'");
        if (replaced.ContainsKey(name))
            throw new ArgumentException($"OnnxModule.ReplaceValue: '{name}' was already replaced; update that parameter in place instead");
        folded = null;
        return replaced[name] = Scope.Add(this, name, value, parameter: true);
    }

    /// <summary>The nodes in the order they run.</summary>
    public IReadOnlyList<NodeProto> Nodes => order;

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        if (Inputs.Count != 1 || Outputs.Count != 1)
            throw new InvalidOperationException($"OnnxModule.Forward: the graph has {Inputs.Count} inputs and {Outputs.Count} outputs; use Run for graphs other than one input, one output");
        return Run(input)[0];
    }

    /// <summary>Runs the graph on its inputs (in order) and returns its outputs (in order).</summary>
    /// <param name="inputs">One tensor per graph input that is not an initializer.</param>
    public Tensor[] Run(params Tensor[] inputs) => Run(Outputs.Select(o => o.Name).ToList(), inputs);

    private OnnxDataType InputType(int i, Tensor t)
    {
        var declared = i < Inputs.Count ? Inputs[i].ElemType : OnnxDataType.Undefined;
        return declared != OnnxDataType.Undefined && TensorData.DTypeOf(declared) == t.DType ? declared : OnnxValue.Of(t).Type;
    }

    /// <summary>Runs the graph and returns the named values (graph outputs or intermediate values, e.g. the logits before a
    /// final Softmax, or features for transfer learning); only the nodes they depend on run.</summary>
    /// <param name="outputs">Value names to return.</param>
    /// <param name="inputs">One tensor per graph input that is not an initializer.</param>
    public Tensor[] Run(IReadOnlyList<string> outputs, params Tensor[] inputs) =>
        RunValues(inputs.Select((t, i) => new OnnxValue(t, InputType(i, t))).ToArray(), outputs).Select(v => v.Tensor).ToArray();

    /// <summary>Runs the graph on typed inputs and returns typed values (keeps the ONNX element types, for exact comparison).</summary>
    /// <param name="inputs">One value per graph input that is not an initializer.</param>
    /// <param name="outputs">Value names to return; the graph outputs when null.</param>
    public OnnxValue[] RunValues(OnnxValue[] inputs, IReadOnlyList<string>? outputs = null)
    {
        var wanted = outputs ?? Outputs.Select(o => o.Name).ToList();
        if (inputs.Length != Inputs.Count)
            throw new ArgumentException($"OnnxModule.Run: the graph has {Inputs.Count} inputs ({string.Join(", ", Inputs.Select(i => i.Name))}), got {inputs.Length} tensors");
        var env = new Dictionary<string, OnnxValue>();
        var state = StateDict();
        foreach (var (name, key) in keys) env[name] = new OnnxValue(state[key], initializerTypes[name]);
        for (int i = 0; i < inputs.Length; i++) env[Inputs[i].Name] = inputs[i];
        foreach (var (name, key) in replaced) env[name] = OnnxValue.Of(state[key]);
        var floatDType = env.Values.Any(v => v.Tensor.DType == DType.Float64) ? DType.Float64 : DType.Float32;
        var constants = Folded(floatDType, env);
        foreach (var (name, v) in constants) env[name] = v;
        var gradientTargets = order.Where(n => n.OpType == "Gradient").SelectMany(n => n.Inputs).ToHashSet();
        foreach (var name in gradientTargets)
            if (env.TryGetValue(name, out var v) && !v.Tensor.RequiresGrad) env[name] = v with { Tensor = v.Tensor.Detach().RequiresGrad_() };
        var needed = new HashSet<string>(wanted);
        var run = new bool[order.Count];
        for (int i = order.Count - 1; i >= 0; i--)
            if (order[i].Outputs.Any(needed.Contains))
            {
                run[i] = true;
                needed.UnionWith(order[i].Inputs);
                if (order[i].OpType == "Gradient") needed.UnionWith(order[i].Attributes.Where(a => a.Name == "y").Select(a => System.Text.Encoding.UTF8.GetString(a.S)));
            }
        bool foldBatchNorms = !Training && !AutoGrad.IsGradEnabled;
        var foldedInto = new HashSet<NodeProto>();
        // Without gradients nothing keeps an intermediate value once its last consumer has run (no Gradient node reads the
        // environment): its array goes back to the pool for the values computed after it.
        var release = !AutoGrad.IsGradEnabled && gradientTargets.Count == 0 ? new Releases(env.Values, wanted, order.Where((_, k) => run[k])) : null;
        // Values a convolution left in its kernel's layout: a Conv takes one as it is (as its input); any other reader first
        // replaces it with its NCHW copy.
        var layouts = new Dictionary<string, Backends.Dnnl.Layout>();
        OnnxValue Value(string name)
        {
            if (layouts.Remove(name, out var layout))
            {
                var blocked = env[name].Tensor;
                env[name] = OnnxValue.Of(Functional.Plain(blocked, layout));
                release?.Replaced(blocked, env[name]);
            }
            return env[name];
        }
        // The residual Sum that reads only this node's output, when its other term is computed already and the float type is
        // the graph's.
        NodeProto? FusedSum(NodeProto node) =>
            sumAfter.TryGetValue(node, out var sum) && !wanted.Contains(node.Outputs[0]) && !replaced.ContainsKey(node.Outputs[0]) && !replaced.ContainsKey(sum.Outputs[0])
            && sum.Inputs.First(i => i != node.Outputs[0]) is var other && env.TryGetValue(other, out var v) && v.Tensor.DType == floatDType ? sum : null;
        // The Relu that reads only this node's output, when the convolution can apply it as it writes (neither value wanted
        // nor replaced).
        NodeProto? FusedRelu(NodeProto node) =>
            reluAfter.TryGetValue(node, out var relu) && !wanted.Contains(node.Outputs[0]) && !wanted.Contains(relu.Outputs[0])
            && !replaced.ContainsKey(node.Outputs[0]) && !replaced.ContainsKey(relu.Outputs[0]) ? relu : null;
        // Concatenations whose terms the convolutions write in place (at batch 1 a term is a contiguous slice), and the terms
        // written so far.
        // Each term's channels come from its convolution's weight, so the result is made when the first term runs.
        // A term the kernel wrote in its layout (whole channel blocks, see Dnnl.BlockedLike) has it in Blocked.
        var concats = new Dictionary<NodeProto, (Tensor Result, int[] Channels, HashSet<string> Written, Dictionary<string, Backends.Dnnl.Layout> Blocked)>();
        (Tensor, int)? Slice(string term, int[] shape)
        {
            if (!concatOf.TryGetValue(term, out var concat) || wanted.Contains(term) || replaced.ContainsKey(term) || shape[0] != 1) return null;
            if (!concats.TryGetValue(concat, out var c))
            {
                var channels = concat.Inputs.Select(i => env[convOf[i].Inputs[1]].Tensor.Dims[0]).ToArray();
                concats[concat] = c = (Tensor.Uninitialized(floatDType, [1, channels.Sum(), .. shape[2..]]), channels, [], []);
            }
            int at = concat.Inputs.IndexOf(term);
            if (!Shape.Same(c.Result.Dims[2..], shape[2..]) || shape[1] != c.Channels[at]) return null;
            c.Written.Add(term);
            return (c.Result, c.Channels.Take(at).Sum() * Shape.Numel(shape[2..]));
        }
        for (int k = 0; k < order.Count; k++)
        {
            var node = order[k];
            if (!run[k] || foldedInto.Contains(node) || node.Outputs.All(o => o.Length == 0 || constants.ContainsKey(o)))
            {
                if (run[k]) release?.Consumed(node, env);
                continue;
            }
            if (foldBatchNorms && node.OpType == "Conv" && !replaced.ContainsKey(node.Outputs[0]))
            {
                // An inference convolution: with the batch norm that follows folded into its weights, the residual Sum and the
                // Relu that follow applied as it writes, its output left in the kernel's layout when a convolution reads it,
                // or written into the channel Concat that is its only reader.
                var bn = batchNormAfter.TryGetValue(node, out var next) && !wanted.Contains(node.Outputs[0]) && !replaced.ContainsKey(next.Outputs[0]) ? next : null;
                var sum = FusedSum(bn ?? node);
                var relu = FusedRelu(sum ?? bn ?? node);
                var output = (relu ?? sum ?? bn ?? node).Outputs[0];
                var operands = node.Inputs.Select((n, i) => n.Length == 0 ? (OnnxValue?)null : i == 0 ? env[n] : Value(n)).ToArray();
                if (bn != null)
                {
                    var (w, b) = FoldBatchNorm(node, bn, env);
                    operands = [operands[0], OnnxValue.Of(w), OnnxValue.Of(b)];
                }
                var addend = sum?.Inputs.First(i => i != (bn ?? node).Outputs[0]);
                var how = new ConvInference
                {
                    Add = addend == null ? null : env[addend].Tensor, AddLayout = addend == null ? null : layouts.GetValueOrDefault(addend),
                    Relu = relu != null, Input = layouts.GetValueOrDefault(node.Inputs[0]),
                    KeepLayout = !wanted.Contains(output) && !replaced.ContainsKey(output) && (convInputs.Contains(output)
                        || concatOf.TryGetValue(output, out var into) && operands[0]!.Value.Tensor.Dims[0] == 1 && !wanted.Contains(into.Outputs[0]) && !replaced.ContainsKey(into.Outputs[0])),
                    Into = shape => Slice(output, shape),
                };
                var result = Ops.Run(new OpContext(node, Opset, operands, false, env, floatDType, baseDir) { Inference = how })[0];
                if (concatOf.TryGetValue(output, out var concat) && concats.TryGetValue(concat, out var c) && c.Written.Contains(output))
                {
                    if (how.Output != null) c.Blocked[output] = how.Output;
                }
                else
                {
                    env[output] = result;
                    if (how.Output != null) layouts[output] = how.Output;
                    release?.Produced(result);
                }
                release?.Consumed(node, env);
                foldedInto.UnionWith(new[] { bn, sum, relu }.OfType<NodeProto>());
                continue;
            }
            if (concats.TryGetValue(node, out var written))
            {
                // Terms their convolution could not write in place (e.g. one adding a residual that broadcasts) are copied in.
                // When every term was written in its kernel's layout, the result is in that layout; else those terms are
                // brought back to NCHW.
                int offset = 0, plane = written.Result.Numel / written.Result.Dims[1];
                bool allBlocked = written.Blocked.Count == node.Inputs.Count && written.Blocked.Values.All(l => Backends.Dnnl.SameBlocks(l, written.Blocked.Values.First()));
                for (int i = 0; i < node.Inputs.Count; i++)
                {
                    int size = plane * written.Channels[i];
                    if (!written.Written.Contains(node.Inputs[i])) Array.Copy(Value(node.Inputs[i]).Tensor.Storage, 0, written.Result.Storage, offset, size);
                    else if (!allBlocked && written.Blocked.TryGetValue(node.Inputs[i], out var blocked)) Functional.PlainInPlace(written.Result, offset, size, blocked);
                    offset += size;
                }
                env[node.Outputs[0]] = OnnxValue.Of(written.Result);
                if (allBlocked)
                {
                    var (term, first) = written.Blocked.First();
                    var termDims = written.Result.Shape;
                    termDims[1] = written.Channels[node.Inputs.IndexOf(term)];
                    layouts[node.Outputs[0]] = Backends.Dnnl.BlockedLike(first, termDims, written.Result.Dims);
                }
                release?.Produced(env[node.Outputs[0]]);
                release?.Consumed(node, env);
                continue;
            }
            // A MaxPool pools values in a layout of channel blocks as they are (see Functional.MaxPoolBlocked), and an inference
            // Dropout passes them on; other inputs and other nodes read NCHW.
            var inputLayout = node.OpType is "MaxPool" or "Dropout" && !wanted.Contains(node.Outputs[0]) && !replaced.ContainsKey(node.Outputs[0])
                ? layouts.GetValueOrDefault(node.Inputs[0]) : null;
            foreach (var input in node.Inputs.Skip(inputLayout == null ? 0 : 1).Where(layouts.ContainsKey)) Value(input);
            var context = Context(node, env, Training, floatDType, needed);
            context.InputLayout = inputLayout;
            var outs = Ops.Run(context);
            for (int i = 0; i < node.Outputs.Count && i < outs.Length; i++)
                if (node.Outputs[i].Length > 0 && !replaced.ContainsKey(node.Outputs[i]))
                {
                    env[node.Outputs[i]] = outs[i];
                    release?.Produced(outs[i]);
                }
            if (context.OutputLayout != null) layouts[node.Outputs[0]] = context.OutputLayout;
            release?.Consumed(node, env);
        }
        return wanted.Select(o => env.ContainsKey(o) ? Value(o)
            : throw new ArgumentException($"OnnxModule.Run: the graph has no value named '{o}'")).ToArray();
    }

    /// <summary>Which computed values are dead during a run without gradients, so their arrays can be recycled
    /// (<see cref="StoragePool"/>): a value dies when the last node that reads it has run, unless it is wanted as an output;
    /// its array is recycled when no live value shares it (reshapes share their input's) and it is not the array of an
    /// initializer, an input or a folded constant.</summary>
    private sealed class Releases
    {
        private readonly Dictionary<string, int> readers = [];
        private readonly Dictionary<Array, int> sharers = new(ReferenceEqualityComparer.Instance);
        private readonly HashSet<Array> kept = new(ReferenceEqualityComparer.Instance);

        public Releases(IEnumerable<OnnxValue> given, IEnumerable<string> wanted, IEnumerable<NodeProto> toRun)
        {
            foreach (var v in given) kept.Add(v.Tensor.Storage);
            foreach (var node in toRun)
                foreach (var name in node.Inputs.Distinct())
                    readers[name] = readers.GetValueOrDefault(name) + 1;
            // A wanted value never reaches zero readers.
            foreach (var name in wanted) readers[name] = readers.GetValueOrDefault(name) + 1;
        }

        /// <summary>Counts a new live value on the array it holds.</summary>
        public void Produced(OnnxValue value)
        {
            var a = value.Tensor.Storage;
            sharers[a] = sharers.GetValueOrDefault(a) + 1;
        }

        /// <summary>Counts a value's array given up for another one under the same name (its NCHW copy).</summary>
        public void Replaced(Tensor old, OnnxValue now)
        {
            var a = old.Storage;
            if (sharers.TryGetValue(a, out int n) && n > 1) sharers[a] = n - 1;
            else if (sharers.Remove(a) && !kept.Contains(a)) StoragePool.Return(old);
            Produced(now);
        }

        /// <summary>Counts <paramref name="node"/>'s reads done (it ran, or was folded into another node).</summary>
        public void Consumed(NodeProto node, Dictionary<string, OnnxValue> env)
        {
            foreach (var name in node.Inputs.Distinct())
            {
                if (!readers.TryGetValue(name, out int left) || (readers[name] = left - 1) > 0 || !env.TryGetValue(name, out var v)) continue;
                var a = v.Tensor.Storage;
                if (!sharers.TryGetValue(a, out int n)) continue;
                if (n > 1) sharers[a] = n - 1;
                else
                {
                    sharers.Remove(a);
                    if (!kept.Contains(a)) StoragePool.Return(v.Tensor);
                }
            }
        }
    }

    /// <summary>Runs one node on its inputs' values in <paramref name="env"/> (an empty input name is an omitted optional input).</summary>
    private OnnxValue[] RunNode(NodeProto node, Dictionary<string, OnnxValue> env, bool training, DType floatDType) =>
        Ops.Run(Context(node, env, training, floatDType));

    private OpContext Context(NodeProto node, Dictionary<string, OnnxValue> env, bool training, DType floatDType, IReadOnlySet<string>? needed = null) =>
        new(node, Opset, node.Inputs.Select(n => n.Length == 0 ? (OnnxValue?)null : env[n]).ToArray(), training, env, floatDType, baseDir) { Needed = needed };

    /// <summary>The values computed only from Constant nodes, integer initializers (shapes) and each other, evaluated once per
    /// float type on the first run, as ONNX Runtime folds them at load: e.g. the weights the light models build with
    /// ConstantOfShape (100 MB for ResNet-50, refilled on every run before). Random and dropout ops are never folded.</summary>
    private Dictionary<string, OnnxValue> Folded(DType floatDType, Dictionary<string, OnnxValue> env)
    {
        if (folded is { } f && f.FloatDType == floatDType) return f.Values;
        var values = new Dictionary<string, OnnxValue>();
        var scope = new Dictionary<string, OnnxValue>(env);
        var constant = new HashSet<string>(keys.Keys.Where(n => scope[n].Tensor.DType == DType.Int64 && !replaced.ContainsKey(n))) { "" };
        using (AutoGrad.NoGrad())
            foreach (var node in order)
            {
                if (Unfoldable.Any(node.OpType.StartsWith) || !node.Inputs.All(constant.Contains) || node.Outputs.Any(replaced.ContainsKey)) continue;
                var outs = RunNode(node, scope, false, floatDType);
                for (int i = 0; i < node.Outputs.Count && i < outs.Length; i++)
                    if (node.Outputs[i].Length > 0)
                    {
                        (scope[node.Outputs[i]], values[node.Outputs[i]]) = (outs[i], outs[i]);
                        constant.Add(node.Outputs[i]);
                    }
            }
        folded = (floatDType, values);
        return values;
    }

    /// <summary>Finds what inference runs fuse into convolutions: each Conv whose only consumer is an inference
    /// BatchNormalization (one output, not a graph output); the values Convs take as input (kept in the kernel's layout);
    /// each Conv or such BatchNormalization whose only consumer is a two-term residual Sum or Add, and each of those or a
    /// fused Sum whose only consumer is a Relu; and the terms of channel Concats of convolution outputs (written in place).</summary>
    private void FindFusions(GraphProto g)
    {
        var uses = order.SelectMany(n => n.Inputs).Concat(g.Outputs.Select(o => o.Name)).GroupBy(v => v).ToDictionary(v => v.Key, v => v.Count());
        var producer = order.SelectMany(n => n.Outputs.Select(o => (o, n))).Where(p => p.o.Length > 0).ToDictionary(p => p.o, p => p.n);
        foreach (var bn in order.Where(n => n.OpType == "BatchNormalization" && n.Outputs.Skip(1).All(o => o.Length == 0)))
        {
            bool training = bn.Attributes.Any(a => a.Name == "training_mode" && a.I != 0), perActivation = bn.Attributes.Any(a => a.Name == "spatial" && a.I == 0);
            if (!training && !perActivation && producer.TryGetValue(bn.Inputs[0], out var conv) && conv.OpType == "Conv" && uses[bn.Inputs[0]] == 1)
                batchNormAfter[conv] = bn;
        }
        // Values some Conv takes as its input (not graph outputs; none in a graph with subgraphs, which could read them from
        // outside): a convolution producing one leaves it in its kernel's layout, and other readers get NCHW back.
        if (!order.Any(n => n.Attributes.Any(a => a.G != null || a.Type == AttributeType.Graphs)))
        {
            foreach (var conv in order.Where(n => n.OpType == "Conv" && n.Inputs.Count > 0))
                if (!g.Outputs.Any(o => o.Name == conv.Inputs[0])) convInputs.Add(conv.Inputs[0]);
            // And values read only by a MaxPool whose output a Conv takes: the pooling runs in that layout.
            foreach (var pool in order.Where(n => n.OpType == "MaxPool" && n.Inputs.Count == 1 && n.Outputs.Count == 1))
                if (convInputs.Contains(pool.Outputs[0]) && uses[pool.Inputs[0]] == 1 && !g.Outputs.Any(o => o.Name == pool.Inputs[0])) convInputs.Add(pool.Inputs[0]);
        }
        bool ConvLike(NodeProto p) => p.OpType == "Conv" || (p.OpType == "BatchNormalization" && batchNormAfter.ContainsValue(p));
        // A two-term Sum or Add of a convolution's output (read by nothing else) and another value: the residual connection.
        foreach (var sum in order.Where(n => (n.OpType == "Sum" || n.OpType == "Add") && n.Inputs.Count == 2 && n.Inputs[0] != n.Inputs[1]))
            foreach (var input in sum.Inputs)
                if (producer.TryGetValue(input, out var p) && uses[input] == 1 && ConvLike(p))
                    sumAfter[p] = sum;
        foreach (var relu in order.Where(n => n.OpType == "Relu" && n.Inputs.Count == 1))
            if (producer.TryGetValue(relu.Inputs[0], out var p) && uses[relu.Inputs[0]] == 1 && (ConvLike(p) || sumAfter.ContainsValue(p)))
                reluAfter[p] = relu;
        // The Conv at the head of each value a convolution group may end with (the Conv's, its folded batch norm's, or their
        // fused Relu's output), so a concatenation of such values knows every term's channels before the first one runs.
        foreach (var conv in order.Where(n => n.OpType == "Conv"))
        {
            var group = new List<NodeProto> { conv };
            if (batchNormAfter.TryGetValue(conv, out var bn)) group.Add(bn);
            if (reluAfter.TryGetValue(group[^1], out var relu)) group.Add(relu);
            foreach (var n in group) convOf[n.Outputs[0]] = conv;
        }
        // Values read only by a Concat along the channels, all of whose terms are such values: written into its result.
        foreach (var concat in order.Where(n => n.OpType == "Concat" && n.Inputs.Count >= 2 && n.Inputs.Distinct().Count() == n.Inputs.Count))
            if (concat.Attributes.FirstOrDefault(a => a.Name == "axis")?.I == 1 && concat.Inputs.All(i => convOf.ContainsKey(i) && uses[i] == 1))
                foreach (var input in concat.Inputs) concatOf[input] = concat;
    }

    /// <summary>The weight and bias of <paramref name="conv"/> with the inference batch norm <paramref name="bn"/> that follows
    /// it folded in (w * s per output channel, (b - mean) * s + beta, s = gamma / sqrt(var + eps)), as ONNX Runtime runs
    /// them; kept until one of the tensors they come from is replaced or updated in place.</summary>
    private (Tensor W, Tensor B) FoldBatchNorm(NodeProto conv, NodeProto bn, Dictionary<string, OnnxValue> env)
    {
        var w = env[conv.Inputs[1]].Tensor;
        var bias = conv.Inputs.Count > 2 && conv.Inputs[2].Length > 0 ? env[conv.Inputs[2]].Tensor : null;
        Tensor[] sources = [w, .. bn.Inputs.Skip(1).Take(4).Select(n => env[n].Tensor), .. bias == null ? Array.Empty<Tensor>() : [bias]];
        var versions = sources.Select(t => t.Version.Value).ToArray();
        if (foldedBatchNorms.TryGetValue(conv, out var f) && f.Sources.SequenceEqual(sources, ReferenceEqualityComparer.Instance) && f.Versions.SequenceEqual(versions))
            return (f.W, f.B);
        var (gamma, beta, mean, variance) = (sources[1], sources[2], sources[3], sources[4]);
        double eps = bn.Attributes.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5;
        var scale = gamma * Functional.Rsqrt(variance + eps);
        var folded = (w * scale.Reshape([-1, .. Enumerable.Repeat(1, w.Rank - 1)]), ((bias ?? Tensor.ZerosLike(mean)) - mean) * scale + beta);
        foldedBatchNorms[conv] = (sources, versions, folded.Item1, folded.Item2);
        return folded;
    }

    private static List<NodeProto> TopologicalOrder(GraphProto g, HashSet<string> initNames)
    {
        var available = new HashSet<string>(initNames.Concat(g.Inputs.Select(i => i.Name))) { "" };
        var pending = new List<NodeProto>(g.Nodes);
        var result = new List<NodeProto>();
        while (pending.Count > 0)
        {
            int before = pending.Count;
            for (int i = 0; i < pending.Count; i++)
            {
                var n = pending[i];
                if (!n.Inputs.All(available.Contains)) continue;
                result.Add(n);
                foreach (var o in n.Outputs) available.Add(o);
                pending.RemoveAt(i--);
            }
            if (pending.Count == before)
            {
                var n = pending[0];
                var missing = n.Inputs.First(x => !available.Contains(x));
                throw new OnnxFormatException($"node {n.Display} ({n.OpType}) reads '{missing}', which no node, input or initializer produces (or the graph has a cycle)",
                    n.Offset, "NodeProto.input");
            }
        }
        foreach (var o in g.Outputs)
            if (!available.Contains(o.Name))
                throw new OnnxFormatException($"graph output '{o.Name}' is not produced by any node, input or initializer", o.Offset, "GraphProto.output");
        return result;
    }

    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"ir_version={Model.IrVersion}, opset={Opset}, nodes={order.Count}, inputs=[{string.Join(", ", Inputs)}], outputs=[{string.Join(", ", Outputs)}]";

    /// <summary>A holder of parameters under one segment of a dotted ONNX name.</summary>
    private sealed class Scope : Module
    {
        public override Tensor Forward(Tensor input) => throw new InvalidOperationException("a parameter scope of an ONNX model is not callable");

        /// <summary>Registers <paramref name="t"/> under <paramref name="name"/> (nested on dots when possible) and returns its state-dict key.</summary>
        public static string Add(Module root, string name, Tensor t, bool parameter)
        {
            var parts = name.Split('.');
            if (parts.All(p => p.Length > 0) && TryNest(root, parts, t, parameter)) return name;
            var flat = name.Length == 0 ? "_" : name.Replace('.', '_');
            while (root.StateDict().ContainsKey(flat) || root.NamedChildren().Any(c => c.Name == flat)) flat += "_";
            Register(root, flat, t, parameter);
            return flat;
        }

        private static bool TryNest(Module root, string[] parts, Tensor t, bool parameter)
        {
            Module m = root;
            for (int i = 0; i < parts.Length - 1; i++)
            {
                var child = m.NamedChildren().FirstOrDefault(c => c.Name == parts[i]).Module;
                if (child == null)
                {
                    if (m.StateDict().Keys.Any(k => k == parts[i])) return false;
                    child = m.Register(parts[i], new Scope());
                }
                if (child is not Scope) return false;
                m = child;
            }
            if (m.NamedChildren().Any(c => c.Name == parts[^1]) || m.NamedParameters(false).Any(p => p.Name == parts[^1])
                || m.NamedBuffers(false).Any(b => b.Name == parts[^1])) return false;
            Register(m, parts[^1], t, parameter);
            return true;
        }

        private static void Register(Module m, string name, Tensor t, bool parameter)
        {
            switch (m, parameter)
            {
                case (Scope s, true): s.RegisterParameter(name, t); break;
                case (Scope s, false): s.RegisterBuffer(name, t); break;
                case (OnnxModule o, true): o.RegisterParameter(name, t); break;
                case (OnnxModule o, false): o.RegisterBuffer(name, t); break;
            }
        }
    }
}
