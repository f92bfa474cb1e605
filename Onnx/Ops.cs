using static Autograd.Functional;

namespace Autograd.Onnx;

/// <summary>The op table: every supported ONNX op maps to an implementation written with the framework's differentiable ops.
/// Integer tensors (Int64 storage) are computed exactly in Float64 (exact below 2^53) and wrapped back to their ONNX type.</summary>
internal static partial class Ops
{
    private delegate OnnxValue[] Impl(OpContext c);

    private static readonly Dictionary<string, Impl> Table = new()
    {
        // elementwise arithmetic (broadcasting)
        ["Add"] = c => [Binary(c, Add)],
        ["Sub"] = c => [Binary(c, Sub)],
        ["Mul"] = c => [Binary(c, Mul)],
        ["Div"] = c => [Binary(c, Div)],
        ["Pow"] = c => [Binary(c, Pow)],
        ["Sum"] = c => [Variadic(c, Add)],
        ["Max"] = c => [Variadic(c, Maximum)],
        ["Min"] = c => [Variadic(c, Minimum)],
        ["Mean"] = c => [Same(c, Variadic(c, Add).Tensor / c.Values.Count())],
        ["Neg"] = c => [Unary(c, Neg)],
        ["Abs"] = c => [Unary(c, Abs)],
        ["Reciprocal"] = c => [Same(c, 1.0 / c.Float(0))],
        ["Sqrt"] = c => [Same(c, Sqrt(c.Float(0)))],
        ["Exp"] = c => [Same(c, Exp(c.Float(0)))],
        ["Log"] = c => [Same(c, Log(c.Float(0)))],
        ["Erf"] = c => [Same(c, Erf(c.Float(0)))],
        ["Clip"] = c => [Clip(c)],
        ["Less"] = c => [Compare(c, Lt)],
        ["LessOrEqual"] = c => [Compare(c, Le)],
        ["Greater"] = c => [Compare(c, Gt)],
        ["GreaterOrEqual"] = c => [Compare(c, Ge)],
        ["Equal"] = c => [Compare(c, Eq)],
        ["Not"] = c => [new(1 - c.Input(0), OnnxDataType.Bool)],
        ["And"] = c => [Logical(c, (a, b) => a & b)],
        ["Or"] = c => [Logical(c, (a, b) => a | b)],
        ["Xor"] = c => [Logical(c, (a, b) => a ^ b)],
        ["Expand"] = c => [Same(c, ExpandOp(c))],
        ["ArgMax"] = c => [ArgExtreme(c, ArgMax)],
        ["ArgMin"] = c => [ArgExtreme(c, ArgMin)],
        ["Where"] = c => [Where(c)],
        ["Cast"] = c => [Cast(c.Value(0), (OnnxDataType)(c.Attr("to")?.I ?? throw c.Invalid("attribute 'to' is required")), c)],
        ["CastLike"] = c => [Cast(c.Value(0), c.Value(1).Type, c)],
        ["Identity"] = c => [c.Value(0)],
        // activations
        ["Relu"] = c => [Same(c, Relu(c.Float(0)))],
        ["Sigmoid"] = c => [Same(c, Sigmoid(c.Float(0)))],
        ["Tanh"] = c => [Same(c, Tanh(c.Float(0)))],
        ["LeakyRelu"] = c => [Same(c, LeakyRelu(c.Float(0), c.Float("alpha", 0.01)))],
        ["Elu"] = c => [Same(c, Elu(c.Float(0), c.Float("alpha", 1.0)))],
        ["Selu"] = c => [Same(c, Elu(c.Float(0), c.Float("alpha", 1.67326319217681884765625)) * c.Float("gamma", 1.05070102214813232421875))],
        ["HardSigmoid"] = c => [Same(c, Clamp(c.Float(0) * c.Float("alpha", 0.2) + c.Float("beta", 0.5), 0, 1))],
        ["HardSwish"] = c => [Same(c, HardSwish(c.Float(0)))],
        ["Softplus"] = c => [Same(c, Softplus(c.Float(0)))],
        ["Gelu"] = c => [Same(c, Gelu(c.Float(0), c.Str("approximate", "none")))],
        ["PRelu"] = c => [Same(c, PRelu(c.Float(0), c.Float(1)))],
        ["Softmax"] = c => [Same(c, SoftmaxLike(c, Softmax))],
        ["LogSoftmax"] = c => [Same(c, SoftmaxLike(c, LogSoftmax))],
        // constants and shapes
        ["Constant"] = c => [Promote(c, Constant(c))],
        ["ConstantOfShape"] = c => [Promote(c, ConstantOfShape(c))],
        ["Shape"] = c => [ShapeOf(c)],
        ["Size"] = c => [new(Tensor.From([(long)c.Input(0).Numel], []), OnnxDataType.Int64)],
        ["Reshape"] = c => [Same(c, ReshapeOp(c))],
        ["Flatten"] = c => [Same(c, FlattenOp(c))],
        ["Squeeze"] = c => [Same(c, SqueezeOp(c))],
        ["Unsqueeze"] = c => [Same(c, UnsqueezeOp(c))],
        ["Transpose"] = c => [Same(c, TransposeOp(c))],
        ["Concat"] = c => [Same(c, Cat(c.Values.Select(v => v.Tensor).ToArray(), c.Axis(c.Attr("axis")?.I ?? throw c.Invalid("attribute 'axis' is required"), c.Input(0).Rank)))],
        ["Split"] = SplitOp,
        ["Slice"] = c => [Same(c, SliceOp(c))],
        ["Gather"] = c => [Same(c, GatherOp(c))],
        ["Tile"] = c => [Same(c, Repeat(c.Input(0), ToInts(c, c.Longs(1))))],
        ["Pad"] = c => [Same(c, PadOp(c))],
        ["Resize"] = c => [Same(c, ResizeOp(c))],
        ["Upsample"] = c => [Same(c, ResizeOp(c))],
        // reductions
        ["ReduceSum"] = c => [Reduce(c, 13, (x, d, k) => Sum(x, d, k), 0)],
        ["ReduceMean"] = c => [Reduce(c, 18, (x, d, k) => Mean(x, d, k), double.NaN)],
        ["ReduceMax"] = c => [Reduce(c, 18, (x, d, k) => Max(x, d, k), double.NegativeInfinity)],
        ["ReduceMin"] = c => [Reduce(c, 18, (x, d, k) => Min(x, d, k), double.PositiveInfinity)],
        // linear algebra, convolution, pooling, normalization
        ["MatMul"] = c => [Same(c, MatMul(c.Float(0), c.Float(1)))],
        ["Gemm"] = c => [Same(c, Gemm(c))],
        ["Conv"] = c => [Same(c, ConvOp(c))],
        ["ConvTranspose"] = c => [Same(c, ConvTransposeOp(c))],
        ["MaxPool"] = MaxPoolOp,
        ["AveragePool"] = c => [Same(c, AveragePoolOp(c))],
        ["GlobalAveragePool"] = c => [Same(c, Mean(c.Float(0), SpatialDims(c.Input(0)), keepDim: true))],
        ["GlobalMaxPool"] = c => [Same(c, Max(c.Float(0), SpatialDims(c.Input(0)), keepDim: true))],
        ["BatchNormalization"] = BatchNormOp,
        ["InstanceNormalization"] = c => [Same(c, InstanceNorm(c.Float(0), weight: c.Float(1), bias: c.Float(2), eps: c.Float("epsilon", 1e-5)))],
        ["LayerNormalization"] = LayerNormOp,
        ["LRN"] = c => [Same(c, LrnOp(c))],
        ["Dropout"] = DropoutOp,
        ["Gradient"] = GradientOp,
    };

    /// <summary>The op types the importer runs.</summary>
    public static IEnumerable<string> Supported => Table.Keys.Order();

    /// <summary>Load-time check of one node: known domain and op.</summary>
    public static void Check(NodeProto node, long opset)
    {
        bool known = node.Domain is "" or "ai.onnx" || (node.Domain == "ai.onnx.preview.training" && node.OpType == "Gradient");
        if (!known || !Table.ContainsKey(node.OpType))
            throw new OnnxUnsupportedException(node.OpType, node.Display, opset, null,
                known ? "this op is not supported" : $"domain '{node.Domain}' is not supported");
    }

    /// <summary>Runs one node; framework errors are re-raised naming the node, and attributes the implementation ignored are unsupported.</summary>
    public static OnnxValue[] Run(OpContext c)
    {
        OnnxValue[] r;
        try { r = Table[c.Node.OpType](c); }
        catch (Exception e) when (e is ArgumentException and not ArgumentNullException || e is InvalidOperationException)
        {
            throw c.Invalid(e.Message);
        }
        if (c.UnreadAttributes.FirstOrDefault() is { } unread) throw c.Unsupported("this attribute is not supported", unread);
        return r;
    }

    // ---------------- typing helpers ----------------

    private static OnnxValue Same(OpContext c, Tensor t) => new(t, c.Value(0).Type);

    private static long Wrap(long v, OnnxDataType t) => unchecked(t switch
    {
        OnnxDataType.UInt8 => (byte)v,
        OnnxDataType.Int8 => (sbyte)v,
        OnnxDataType.UInt16 => (ushort)v,
        OnnxDataType.Int16 => (short)v,
        OnnxDataType.Int32 => (int)v,
        OnnxDataType.UInt32 => (uint)v,
        OnnxDataType.Bool => v != 0 ? 1 : 0,
        _ => v,
    });

    /// <summary>Float64 results of integer arithmetic back to an integer type: truncated toward zero, wrapped to the type's range.</summary>
    private static OnnxValue ToInteger(Tensor x, OnnxDataType type)
    {
        var v = x.ToDoubleArray();
        var r = new long[v.Length];
        for (int i = 0; i < v.Length; i++)
            r[i] = type == OnnxDataType.Bool ? (v[i] != 0 ? 1 : 0) : Wrap(double.IsFinite(v[i]) ? (long)Math.Truncate(v[i]) : 0, type);
        return new(Tensor.From(r, x.Shape), type);
    }

    /// <summary>A binary op; before opset 7, <c>broadcast = 1</c> aligns B with A's dims from <c>axis</c> on (default: the trailing dims).</summary>
    private static OnnxValue Binary(OpContext c, Func<Tensor, Tensor, Tensor> f)
    {
        var (a, b) = (c.Value(0), c.Value(1));
        if (c.Opset < 7 && c.Bool("broadcast", false) && c.Attr("axis") is { } axisAttr)
        {
            int axis = c.Axis(axisAttr.I, a.Tensor.Rank), trailing = a.Tensor.Rank - axis - b.Tensor.Rank;
            if (trailing < 0) throw c.Invalid($"B {Str(b.Tensor.Shape)} does not fit A {Str(a.Tensor.Shape)} from axis {axis}");
            b = b with { Tensor = b.Tensor.Reshape([.. b.Tensor.Shape, .. Enumerable.Repeat(1, trailing)]) };
        }
        c.Ignore("broadcast", "axis");
        return Arith(a, b, f);
    }

    /// <summary>f on two values with ONNX typing: the result has the first value's type (Pow's exponent may differ).</summary>
    private static OnnxValue Arith(OnnxValue a, OnnxValue b, Func<Tensor, Tensor, Tensor> f)
    {
        if (TensorData.IsFloat(a.Type))
        {
            var (x, y) = Common(a.Tensor, b.Tensor);
            return new(f(x, y), a.Type);
        }
        return ToInteger(f(a.Tensor.To(DType.Float64), b.Tensor.To(DType.Float64)), a.Type);
    }

    /// <summary>Both operands in one float dtype: Float64 if either is (an integer operand takes the other's dtype).</summary>
    private static (Tensor A, Tensor B) Common(Tensor a, Tensor b)
    {
        var dtype = a.DType == DType.Float64 || b.DType == DType.Float64 ? DType.Float64 : a.DType == DType.Int64 ? b.DType : a.DType;
        return (a.To(dtype), b.To(dtype));
    }

    /// <summary>A float constant made by a node, in the graph's float dtype.</summary>
    private static OnnxValue Promote(OpContext c, OnnxValue v) =>
        TensorData.IsFloat(v.Type) && v.Tensor.DType != c.FloatDType ? v with { Tensor = v.Tensor.To(c.FloatDType) } : v;

    private static OnnxValue Unary(OpContext c, Func<Tensor, Tensor> f)
    {
        var a = c.Value(0);
        return TensorData.IsFloat(a.Type) ? a with { Tensor = f(a.Tensor) } : ToInteger(f(a.Tensor.To(DType.Float64)), a.Type);
    }

    private static OnnxValue Variadic(OpContext c, Func<Tensor, Tensor, Tensor> f) => c.Values.Aggregate((x, y) => Arith(x, y, f));

    private static OnnxValue Compare(OpContext c, Func<Tensor, Tensor, Tensor> f)
    {
        var (a, b) = (c.Input(0), c.Input(1));
        if (a.DType != b.DType) (a, b) = (a.To(DType.Float64), b.To(DType.Float64));
        return new(f(a, b).To(DType.Int64), OnnxDataType.Bool);
    }

    private static OnnxValue Logical(OpContext c, Func<long, long, long> f)
    {
        var (a, b) = (c.Input(0), c.Input(1));
        var shape = Broadcast(c, a.Shape, b.Shape);
        var (x, y) = (a.Expand(shape).ToLongArray(), b.Expand(shape).ToLongArray());
        return new(Tensor.From(x.Select((v, i) => f(v, y[i]) != 0 ? 1L : 0L).ToArray(), shape), OnnxDataType.Bool);
    }

    /// <summary>NumPy broadcasting of two shapes, as ONNX's multidirectional broadcasting.</summary>
    private static int[] Broadcast(OpContext c, int[] a, int[] b)
    {
        int n = Math.Max(a.Length, b.Length);
        var r = new int[n];
        for (int i = 0; i < n; i++)
        {
            int da = i < n - a.Length ? 1 : a[i - (n - a.Length)], db = i < n - b.Length ? 1 : b[i - (n - b.Length)];
            r[i] = da == 1 ? db : db == 1 || db == da ? da : throw c.Invalid($"shapes {Str(a)} and {Str(b)} do not broadcast");
        }
        return r;
    }

    /// <summary>Expand broadcasts both ways: a 1 in the requested shape keeps the input's size.</summary>
    private static Tensor ExpandOp(OpContext c)
    {
        var x = c.Input(0);
        return x.Expand(Broadcast(c, x.Shape, ToInts(c, c.Longs(1))));
    }

    private static OnnxValue ArgExtreme(OpContext c, Func<Tensor, int?, bool, Tensor> f)
    {
        var v = c.Value(0);
        if (c.Bool("select_last_index", false)) throw c.Unsupported("select_last_index = 1 is not supported (the first extremum is returned)", "select_last_index");
        var x = TensorData.IsFloat(v.Type) ? v.Tensor : v.Tensor.To(DType.Float64);
        return new(f(x, c.Axis(c.Int("axis", 0), x.Rank), c.Bool("keepdims", true)), OnnxDataType.Int64);
    }

    private static OnnxValue Where(OpContext c)
    {
        var (a, b) = Common(c.Input(1), c.Input(2));
        return new(Functional.Where(c.Input(0), a, b), c.Value(1).Type);
    }

    private static OnnxValue Cast(OnnxValue v, OnnxDataType to, OpContext c)
    {
        if (to is OnnxDataType.String or OnnxDataType.Undefined || !Enum.IsDefined(to)) throw c.Unsupported($"casting to element type {to} is not supported", "to");
        c.Ignore("saturate", "round_mode");
        if (!TensorData.IsFloat(to)) return ToInteger(v.Tensor.To(DType.Float64), to);
        var t = v.Tensor.To(TensorData.DTypeOf(to));
        if (to is OnnxDataType.Float16 or OnnxDataType.BFloat16)
        {
            // Round through the narrow type; the framework keeps the values in Float32.
            var f = t.ToFloatArray();
            for (int i = 0; i < f.Length; i++)
                f[i] = to == OnnxDataType.Float16 ? (float)(Half)f[i] : BitConverter.Int32BitsToSingle((int)((BitConverter.SingleToUInt32Bits(f[i]) + 0x7FFF + ((BitConverter.SingleToUInt32Bits(f[i]) >> 16) & 1)) & 0xFFFF0000));
            t = Tensor.From(f, t.Shape);
        }
        return new(t, to);
    }

    private static OnnxValue Clip(OpContext c)
    {
        var x = c.Value(0);
        double? lo, hi;
        if (c.Opset < 11) (lo, hi) = (c.Attr("min") is { } mn ? mn.F : null, c.Attr("max") is { } mx ? mx.F : null);
        else (lo, hi) = (c.Has(1) ? c.Input(1).Item() : null, c.Has(2) ? c.Input(2).Item() : null);
        if (lo == null && hi == null) return x;
        if (TensorData.IsFloat(x.Type)) return x with { Tensor = Clamp(x.Tensor, lo, hi) };
        return ToInteger(Clamp(x.Tensor.To(DType.Float64), lo, hi), x.Type);
    }

    private static Tensor PRelu(Tensor x, Tensor slope) => Functional.Where(x > 0, x, x * slope);

    /// <summary>Softmax and LogSoftmax: before opset 13 the input is coerced to 2-d at <c>axis</c> (default 1) and normalized over
    /// the flattened tail; from 13 on the op runs along <c>axis</c> (default -1).</summary>
    private static Tensor SoftmaxLike(OpContext c, Func<Tensor, int, Tensor> f)
    {
        var x = c.Float(0);
        int axis = c.Axis(c.Int("axis", c.Opset < 13 ? 1 : -1), x.Rank);
        if (c.Opset >= 13) return f(x, axis);
        var dims = x.Shape;
        int outer = dims[..axis].Aggregate(1, (p, d) => p * d);
        return f(x.Reshape(outer, -1), 1).Reshape(dims);
    }

    private static OnnxValue Reduce(OpContext c, long axesInputSince, Func<Tensor, int[], bool, Tensor> f, double emptyValue)
    {
        var v = c.Value(0);
        var x = v.Tensor;
        bool keep = c.Bool("keepdims", true);
        var axes = c.IntsFromAttrOrInput("axes", 1, axesInputSince);
        if ((axes == null || axes.Length == 0) && c.Opset >= axesInputSince && c.Bool("noop_with_empty_axes", false)) return v;
        c.Ignore("noop_with_empty_axes");
        int[] dims = axes == null || axes.Length == 0 ? [.. Enumerable.Range(0, x.Rank)] : [.. axes.Select(a => c.Axis(a, x.Rank)).Distinct().Order()];
        bool integer = !TensorData.IsFloat(v.Type);
        var xf = integer ? x.To(DType.Float64) : x;
        Tensor r;
        if (dims.Any(d => x.Shape[d] == 0))
        {
            var shape = x.Shape.Select((n, i) => dims.Contains(i) ? 1 : n).ToArray();
            r = Tensor.Full(shape, emptyValue, xf.DType);
            if (!keep) r = r.Reshape(x.Shape.Where((n, i) => !dims.Contains(i)).ToArray());
        }
        else r = dims.Length == 0 ? xf : f(xf, dims, keep);
        return integer ? ToInteger(r, v.Type) : new(r, v.Type);
    }

    private static int[] SpatialDims(Tensor x) => [.. Enumerable.Range(2, x.Rank - 2)];

    /// <summary>Gemm: alpha * A' B' + beta * C. With transB it is <c>F.linear</c> (weight [out, in]), as PyTorch exports Linear.</summary>
    private static Tensor Gemm(OpContext c)
    {
        var a = c.Float(0);
        var b = c.Float(1);
        if (c.Bool("transA", false)) a = a.T;
        c.Ignore("broadcast");
        double alpha = c.Float("alpha", 1.0), beta = c.Float("beta", 1.0);
        var y = c.Bool("transB", false) ? Linear(a, b) : MatMul(a, b);
        if (alpha != 1) y = y * alpha;
        if (c.Optional(2) is { } bias) y = y + (beta == 1 ? bias : bias * beta);
        return y;
    }

    private static OnnxValue Constant(OpContext c)
    {
        foreach (var a in c.Node.Attributes)
        {
            c.Ignore(a.Name);
            switch (a.Name)
            {
                case "value":
                    var (t, type) = TensorData.ToTensor(a.T ?? throw c.Invalid("attribute 'value' holds no tensor"), c.BaseDir);
                    return new(t, type);
                case "value_float": return new(Tensor.Scalar(a.F), OnnxDataType.Float);
                case "value_floats": return new(Tensor.From([.. a.Floats], a.Floats.Count), OnnxDataType.Float);
                case "value_int": return new(Tensor.From([a.I], []), OnnxDataType.Int64);
                case "value_ints": return new(Tensor.From([.. a.Ints], a.Ints.Count), OnnxDataType.Int64);
                default: throw c.Unsupported("this kind of constant is not supported", a.Name);
            }
        }
        throw c.Invalid("no value attribute");
    }

    private static OnnxValue ConstantOfShape(OpContext c)
    {
        var shape = c.Longs(0).Select(d => (int)d).ToArray();
        if (c.Attr("value")?.T is not { } proto) return new(Tensor.Zeros(shape), OnnxDataType.Float);
        var (v, type) = TensorData.ToTensor(proto, c.BaseDir);
        if (v.Numel != 1) throw c.Invalid($"'value' must hold one element, got {v.Numel}");
        return new(Tensor.Full(shape, v.Item(), v.DType), type);
    }

    private static OnnxValue ShapeOf(OpContext c)
    {
        var s = c.Input(0).Shape;
        int Clamp(long v) => (int)Math.Clamp(v < 0 ? v + s.Length : v, 0, s.Length);
        int start = Clamp(c.Int("start", 0)), end = Clamp(c.Int("end", s.Length));
        var dims = s[start..Math.Max(start, end)].Select(d => (long)d).ToArray();
        return new(Tensor.From(dims, dims.Length), OnnxDataType.Int64);
    }

    private static OnnxValue[] DropoutOp(OpContext c)
    {
        var x = c.Float(0);
        double ratio = c.Opset < 12 ? c.Float("ratio", 0.5) : c.Has(1) ? c.Input(1).Item() : 0.5;
        bool training = c.Opset < 12 ? c.Training && !c.Bool("is_test", false) : c.Has(2) ? c.Input(2).Item() != 0 : c.Training;
        // The seed attribute is ignored: masks come from Generator.Default (set it with Generator.ManualSeed), so every forward
        // draws a new mask, as in PyTorch; a fixed per-node seed would repeat one mask in every training step.
        c.Ignore("seed", "is_test");
        if (c.InputLayout is { } layout)
        {
            // The identity keeps the layout a convolution left its input in.
            if ((!training || ratio == 0) && !c.Wants(1))
            {
                c.OutputLayout = layout;
                return [Same(c, x)];
            }
            x = Functional.Plain(x, layout);
        }
        var y = training && ratio > 0 ? Dropout(x, ratio, true) : x;
        if (!c.Wants(1)) return [Same(c, y)];
        Tensor mask;
        using (AutoGrad.NoGrad()) mask = training && ratio > 0 ? y.Ne(Tensor.Scalar(0, y.DType)).To(DType.Int64) : Tensor.Ones(x.Shape, DType.Int64);
        return [Same(c, y), new(mask, OnnxDataType.Bool)];
    }

    /// <summary>The training-preview Gradient op: gradients of the value named by <c>y</c> with respect to the node's inputs,
    /// computed by the framework's autograd (the runtime marks those inputs as requiring gradients).</summary>
    private static OnnxValue[] GradientOp(OpContext c)
    {
        var y = c.Str("y", "");
        c.Ignore("xs", "zs");
        if (!c.Env.TryGetValue(y, out var target)) throw c.Invalid($"attribute y names '{y}', which is not computed before this node");
        var xs = c.Values.Select(v => v.Tensor).ToArray();
        var grads = AutoGrad.Grad([target.Tensor], xs, [Tensor.OnesLike(target.Tensor)], allowUnused: true);
        return [.. grads.Select((g, i) => Same(c, g ?? Tensor.ZerosLike(xs[i])))];
    }
}
