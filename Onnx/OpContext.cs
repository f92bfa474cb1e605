using System.Text;

namespace Autograd.Onnx;

/// <summary>What an op implementation sees of its node: inputs, attributes (each read is recorded, so an attribute the
/// implementation never looked at is reported as unsupported), the opset and the training flag.</summary>
internal sealed class OpContext(NodeProto node, long opset, OnnxValue?[] inputs, bool training, IReadOnlyDictionary<string, OnnxValue> env, DType floatDType, string baseDir)
{
    private readonly HashSet<string> read = [];

    public NodeProto Node { get; } = node;
    public long Opset { get; } = opset;
    public bool Training { get; } = training;
    /// <summary>The float dtype the graph computes in: Float64 once the module or its inputs were converted, else Float32.
    /// Constants made by nodes follow it, so a model converted with <c>To(DType.Float64)</c> runs entirely in Float64.</summary>
    public DType FloatDType { get; } = floatDType;
    /// <summary>The model's folder: tensors in attributes read their external data from there only.</summary>
    public string BaseDir { get; } = baseDir;
    public IReadOnlyDictionary<string, OnnxValue> Env { get; } = env;
    /// <summary>Set on a Conv in a run without gradients: how it runs inside the chain of convolutions (a fused Relu, its
    /// input's and its output's layouts).</summary>
    public ConvInference? Inference { get; init; }
    /// <summary>Set on a MaxPool in a run without gradients whose input a convolution left in its kernel's layout: the op
    /// pools it as it is when it can, and then sets <see cref="OutputLayout"/>, else brings it back to NCHW first.</summary>
    public Backends.Dnnl.Layout? InputLayout { get; set; }
    /// <summary>The layout the op's first output is in, when not NCHW (see <see cref="InputLayout"/>).</summary>
    public Backends.Dnnl.Layout? OutputLayout { get; set; }
    public int InputCount => inputs.Length;
    /// <summary>The values the run needs (its outputs, every input of a node it runs and the values Gradient nodes
    /// differentiate), when known: an output outside them is not made.</summary>
    public IReadOnlySet<string>? Needed { get; init; }
    /// <summary>Whether the node names its output <paramref name="i"/> and the run needs it (an unnamed or missing optional
    /// output is not made, nor one nothing reads, such as the mask of an inference Dropout).</summary>
    public bool Wants(int i) => i < Node.Outputs.Count && Node.Outputs[i].Length > 0 && Needed?.Contains(Node.Outputs[i]) != false;

    public OnnxUnsupportedException Unsupported(string detail, string? attribute = null) =>
        new(Node.OpType, Node.Display, Opset, attribute, detail);

    public ArgumentException Invalid(string detail) => new($"{Node.OpType} (node {Node.Display}, opset {Opset}): {detail}");

    /// <summary>Attributes present on the node that the implementation did not read.</summary>
    public IEnumerable<string> UnreadAttributes => Node.Attributes.Select(a => a.Name).Where(n => !read.Contains(n));

    // ---------------- inputs ----------------

    public bool Has(int i) => i < inputs.Length && inputs[i] != null;

    public OnnxValue Value(int i) => Has(i) ? inputs[i]!.Value : throw Invalid($"input {i} is required");

    public Tensor Input(int i) => Value(i).Tensor;

    public Tensor? Optional(int i) => Has(i) ? inputs[i]!.Value.Tensor : null;

    public IEnumerable<OnnxValue> Values => inputs.Where(v => v != null).Select(v => v!.Value);

    /// <summary>A float input, as a differentiable tensor.</summary>
    public Tensor Float(int i)
    {
        var v = Value(i);
        if (!TensorData.IsFloat(v.Type)) throw Unsupported($"input {i} has element type {v.Type}; only floating-point inputs are supported");
        return v.Tensor;
    }

    /// <summary>An integer input read as values (shapes, axes, indices).</summary>
    public long[] Longs(int i) => Input(i).ToLongArray();

    // ---------------- attributes ----------------

    public AttributeProto? Attr(string name)
    {
        read.Add(name);
        return Node.Attributes.FirstOrDefault(a => a.Name == name);
    }

    public long Int(string name, long dflt) => Attr(name) is { } a ? a.I : dflt;

    public bool Bool(string name, bool dflt) => Int(name, dflt ? 1 : 0) != 0;

    public double Float(string name, double dflt) => Attr(name) is { } a ? a.F : dflt;

    public long[]? Ints(string name) => Attr(name) is { } a ? [.. a.Ints] : null;

    public float[]? Floats(string name) => Attr(name) is { } a ? [.. a.Floats] : null;

    public string Str(string name, string dflt) => Attr(name) is { } a ? Encoding.UTF8.GetString(a.S) : dflt;

    /// <summary>Marks attributes that carry no meaning for this implementation (e.g. legacy hints) as handled.</summary>
    public void Ignore(params string[] names)
    {
        foreach (var n in names) read.Add(n);
    }

    /// <summary>Ints given by the attribute <paramref name="attr"/> before <paramref name="sinceOpset"/>, and by input <paramref name="input"/> from then on.</summary>
    public long[]? IntsFromAttrOrInput(string attr, int input, long sinceOpset) =>
        Opset < sinceOpset ? Ints(attr) : Has(input) ? Longs(input) : null;

    /// <summary>A normalized axis of a tensor of rank <paramref name="rank"/>.</summary>
    public int Axis(long axis, int rank)
    {
        if (axis < -rank || axis >= Math.Max(rank, 1)) throw Invalid($"axis {axis} is out of range for rank {rank}");
        return (int)(axis < 0 ? axis + rank : axis);
    }
}
