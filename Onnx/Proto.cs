namespace Autograd.Onnx;

/// <summary>ONNX tensor element types (<c>TensorProto.DataType</c>).</summary>
public enum OnnxDataType
{
    /// <summary>Not set.</summary>
    Undefined = 0,
    /// <summary>32-bit float.</summary>
    Float = 1,
    /// <summary>8-bit unsigned integer.</summary>
    UInt8 = 2,
    /// <summary>8-bit signed integer.</summary>
    Int8 = 3,
    /// <summary>16-bit unsigned integer.</summary>
    UInt16 = 4,
    /// <summary>16-bit signed integer.</summary>
    Int16 = 5,
    /// <summary>32-bit signed integer.</summary>
    Int32 = 6,
    /// <summary>64-bit signed integer.</summary>
    Int64 = 7,
    /// <summary>Strings (not supported as values).</summary>
    String = 8,
    /// <summary>Boolean.</summary>
    Bool = 9,
    /// <summary>IEEE half precision.</summary>
    Float16 = 10,
    /// <summary>64-bit float.</summary>
    Double = 11,
    /// <summary>32-bit unsigned integer.</summary>
    UInt32 = 12,
    /// <summary>64-bit unsigned integer.</summary>
    UInt64 = 13,
    /// <summary>bfloat16.</summary>
    BFloat16 = 16,
}

/// <summary>A decoded <c>ModelProto</c>.</summary>
public sealed class ModelProto
{
    /// <summary>IR version (3 to 10 are supported).</summary>
    public long IrVersion { get; internal set; }
    /// <summary>The tool that wrote the file.</summary>
    public string ProducerName { get; internal set; } = "";
    /// <summary>Its version.</summary>
    public string ProducerVersion { get; internal set; } = "";
    /// <summary>Model domain.</summary>
    public string Domain { get; internal set; } = "";
    /// <summary>Model version.</summary>
    public long ModelVersion { get; internal set; }
    /// <summary>Documentation.</summary>
    public string DocString { get; internal set; } = "";
    /// <summary>The main graph.</summary>
    public GraphProto Graph { get; internal set; } = new();
    /// <summary>Operator sets (domain "" is ai.onnx).</summary>
    public List<(string Domain, long Version)> OpsetImport { get; } = [];

    /// <summary>The ai.onnx opset version imported (1 if none is listed, as the spec says).</summary>
    public long Opset => OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(1).Max();

    internal static ModelProto Read(ProtoReader r)
    {
        var m = new ModelProto();
        bool graph = false;
        while (r.Next())
            switch (r.Field)
            {
                case 1: m.IrVersion = r.Int64("ir_version"); break;
                case 2: m.ProducerName = r.String("producer_name"); break;
                case 3: m.ProducerVersion = r.String("producer_version"); break;
                case 4: m.Domain = r.String("domain"); break;
                case 5: m.ModelVersion = r.Int64("model_version"); break;
                case 6: m.DocString = r.String("doc_string"); break;
                case 7: m.Graph = GraphProto.Read(r.Message("graph", "GraphProto")); graph = true; break;
                case 8:
                    {
                        var o = r.Message("opset_import", "OperatorSetIdProto");
                        string domain = ""; long version = 0;
                        while (o.Next())
                            switch (o.Field)
                            {
                                case 1: domain = o.String("domain"); break;
                                case 2: version = o.Int64("version"); break;
                                default: o.Skip(); break;
                            }
                        m.OpsetImport.Add((domain, version));
                        break;
                    }
                default: r.Skip(); break;
            }
        if (!graph) throw new OnnxFormatException("ModelProto has no graph (field 7)", r.Start + r.Length, "ModelProto.graph");
        return m;
    }
}

/// <summary>A decoded <c>GraphProto</c>.</summary>
public sealed class GraphProto
{
    /// <summary>Graph name.</summary>
    public string Name { get; internal set; } = "";
    /// <summary>Nodes (ONNX requires topological order; the importer sorts anyway).</summary>
    public List<NodeProto> Nodes { get; } = [];
    /// <summary>Constant tensors (weights).</summary>
    public List<TensorProto> Initializers { get; } = [];
    /// <summary>Graph inputs (in IR 3 files these also list the initializers).</summary>
    public List<ValueInfoProto> Inputs { get; } = [];
    /// <summary>Graph outputs.</summary>
    public List<ValueInfoProto> Outputs { get; } = [];
    /// <summary>Type information of intermediate values.</summary>
    public List<ValueInfoProto> ValueInfo { get; } = [];

    internal static GraphProto Read(ProtoReader r)
    {
        var g = new GraphProto();
        while (r.Next())
            switch (r.Field)
            {
                case 1: g.Nodes.Add(NodeProto.Read(r.Message("node", "NodeProto"))); break;
                case 2: g.Name = r.String("name"); break;
                case 5: g.Initializers.Add(TensorProto.Read(r.Message("initializer", "TensorProto"))); break;
                case 11: g.Inputs.Add(ValueInfoProto.Read(r.Message("input", "ValueInfoProto"))); break;
                case 12: g.Outputs.Add(ValueInfoProto.Read(r.Message("output", "ValueInfoProto"))); break;
                case 13: g.ValueInfo.Add(ValueInfoProto.Read(r.Message("value_info", "ValueInfoProto"))); break;
                default: r.Skip(); break;
            }
        return g;
    }
}

/// <summary>A decoded <c>NodeProto</c>: one op application.</summary>
public sealed class NodeProto
{
    /// <summary>Input value names ("" marks an omitted optional input).</summary>
    public List<string> Inputs { get; } = [];
    /// <summary>Output value names.</summary>
    public List<string> Outputs { get; } = [];
    /// <summary>Node name (may be empty).</summary>
    public string Name { get; internal set; } = "";
    /// <summary>Operator name, e.g. <c>Conv</c>.</summary>
    public string OpType { get; internal set; } = "";
    /// <summary>Operator domain ("" is ai.onnx).</summary>
    public string Domain { get; internal set; } = "";
    /// <summary>Attributes.</summary>
    public List<AttributeProto> Attributes { get; } = [];

    /// <summary>Byte offset of this node in its file, for error messages.</summary>
    public long Offset { get; internal set; }

    /// <summary>How errors name the node: its name, or its op type and first output.</summary>
    public string Display => Name.Length > 0 ? $"'{Name}'" : $"{OpType} -> '{Outputs.FirstOrDefault()}'";

    internal static NodeProto Read(ProtoReader r)
    {
        var n = new NodeProto { Offset = r.Start };
        while (r.Next())
            switch (r.Field)
            {
                case 1: n.Inputs.Add(r.String("input")); break;
                case 2: n.Outputs.Add(r.String("output")); break;
                case 3: n.Name = r.String("name"); break;
                case 4: n.OpType = r.String("op_type"); break;
                case 5: n.Attributes.Add(AttributeProto.Read(r.Message("attribute", "AttributeProto"))); break;
                case 7: n.Domain = r.String("domain"); break;
                default: r.Skip(); break;
            }
        return n;
    }
}

/// <summary>Attribute kinds (<c>AttributeProto.AttributeType</c>).</summary>
public enum AttributeType
{
    /// <summary>Not set (older files leave it out; the kind is inferred from the field present).</summary>
    Undefined = 0,
    /// <summary>One float.</summary>
    Float = 1,
    /// <summary>One integer.</summary>
    Int = 2,
    /// <summary>One byte string.</summary>
    String = 3,
    /// <summary>One tensor.</summary>
    Tensor = 4,
    /// <summary>A subgraph.</summary>
    Graph = 5,
    /// <summary>Floats.</summary>
    Floats = 6,
    /// <summary>Integers.</summary>
    Ints = 7,
    /// <summary>Byte strings.</summary>
    Strings = 8,
    /// <summary>Tensors.</summary>
    Tensors = 9,
    /// <summary>Subgraphs.</summary>
    Graphs = 10,
}

/// <summary>A decoded <c>AttributeProto</c>.</summary>
public sealed class AttributeProto
{
    /// <summary>Attribute name.</summary>
    public string Name { get; internal set; } = "";
    /// <summary>Declared kind.</summary>
    public AttributeType Type { get; internal set; }
    /// <summary>FLOAT value.</summary>
    public float F { get; internal set; }
    /// <summary>INT value.</summary>
    public long I { get; internal set; }
    /// <summary>STRING value (UTF-8 bytes).</summary>
    public byte[] S { get; internal set; } = [];
    /// <summary>TENSOR value.</summary>
    public TensorProto? T { get; internal set; }
    /// <summary>GRAPH value.</summary>
    public GraphProto? G { get; internal set; }
    /// <summary>FLOATS value.</summary>
    public List<float> Floats { get; } = [];
    /// <summary>INTS value.</summary>
    public List<long> Ints { get; } = [];
    /// <summary>STRINGS value.</summary>
    public List<byte[]> Strings { get; } = [];
    /// <summary>TENSORS value.</summary>
    public List<TensorProto> Tensors { get; } = [];

    internal static AttributeProto Read(ProtoReader r)
    {
        var a = new AttributeProto();
        var present = AttributeType.Undefined;
        while (r.Next())
            switch (r.Field)
            {
                case 1: a.Name = r.String("name"); break;
                case 2: a.F = r.Float("f"); present = AttributeType.Float; break;
                case 3: a.I = r.Int64("i"); present = AttributeType.Int; break;
                case 4: a.S = r.Bytes("s").ToArray(); present = AttributeType.String; break;
                case 5: a.T = TensorProto.Read(r.Message("t", "TensorProto")); present = AttributeType.Tensor; break;
                case 6: a.G = GraphProto.Read(r.Message("g", "GraphProto")); present = AttributeType.Graph; break;
                case 7: r.Floats("floats", a.Floats); present = AttributeType.Floats; break;
                case 8: r.Varints("ints", a.Ints); present = AttributeType.Ints; break;
                case 9: a.Strings.Add(r.Bytes("strings").ToArray()); present = AttributeType.Strings; break;
                case 10: a.Tensors.Add(TensorProto.Read(r.Message("tensors", "TensorProto"))); present = AttributeType.Tensors; break;
                case 11: GraphProto.Read(r.Message("graphs", "GraphProto")); present = AttributeType.Graphs; break;
                case 20:
                    {
                        long t = r.Int64("type");
                        if (!Enum.IsDefined((AttributeType)t)) throw r.Error($"unknown attribute type {t}");
                        a.Type = (AttributeType)t;
                        break;
                    }
                default: r.Skip(); break;
            }
        if (a.Type == AttributeType.Undefined) a.Type = present;
        return a;
    }
}

/// <summary>A decoded <c>ValueInfoProto</c>: a named value with its element type and shape when they are tensors.</summary>
public sealed class ValueInfoProto
{
    /// <summary>Value name.</summary>
    public string Name { get; internal set; } = "";
    /// <summary>Element type, or Undefined for non-tensor values (sequences, optionals).</summary>
    public OnnxDataType ElemType { get; internal set; }
    /// <summary>Whether the value is a tensor (as opposed to a sequence, map or optional).</summary>
    public bool IsTensor => Kind == "tensor";
    /// <summary>The kind of value: "tensor", "sequence", "map", "optional", "sparse tensor", or "" when no type is given.</summary>
    public string Kind { get; internal set; } = "";
    /// <summary>Dimensions: a number, a symbolic name, or "?" when unknown; null when no shape is given.</summary>
    public List<string>? Shape { get; internal set; }

    /// <summary>Byte offset of this message in its file, for error messages.</summary>
    public long Offset { get; internal set; }

    /// <summary>"Float[1,3,224,224]"-style description.</summary>
    public override string ToString() =>
         !IsTensor && Kind.Length > 0 ? $"{Name}: {Kind}" : $"{Name}: {ElemType}{(Shape == null ? "" : "[" + string.Join(",", Shape) + "]")}";

    internal static ValueInfoProto Read(ProtoReader r)
    {
        var v = new ValueInfoProto { Offset = r.Start };
        while (r.Next())
            switch (r.Field)
            {
                case 1: v.Name = r.String("name"); break;
                case 2:
                    {
                        var t = r.Message("type", "TypeProto");
                        while (t.Next())
                        {
                            v.Kind = t.Field switch { 1 => "tensor", 4 => "sequence", 5 => "map", 8 => "sparse tensor", 9 => "optional", _ => v.Kind };
                            if (t.Field == 1) ReadTensorType(t.Message("tensor_type", "TypeProto.Tensor"), v);
                            else t.Skip();
                        }
                        break;
                    }
                default: r.Skip(); break;
            }
        return v;
    }

    private static void ReadTensorType(ProtoReader r, ValueInfoProto v)
    {
        while (r.Next())
            switch (r.Field)
            {
                case 1: v.ElemType = (OnnxDataType)r.Int64("elem_type"); break;
                case 2:
                    {
                        var s = r.Message("shape", "TensorShapeProto");
                        v.Shape = [];
                        while (s.Next())
                        {
                            if (s.Field != 1) { s.Skip(); continue; }
                            var d = s.Message("dim", "TensorShapeProto.Dimension");
                            string dim = "?";
                            while (d.Next())
                                switch (d.Field)
                                {
                                    case 1: dim = d.Int64("dim_value").ToString(System.Globalization.CultureInfo.InvariantCulture); break;
                                    case 2: dim = d.String("dim_param"); break;
                                    default: d.Skip(); break;
                                }
                            v.Shape.Add(dim);
                        }
                        break;
                    }
                default: r.Skip(); break;
            }
    }
}

/// <summary>A decoded <c>TensorProto</c>; the values stay encoded until <see cref="TensorData"/> converts them.</summary>
public sealed class TensorProto
{
    /// <summary>Dimensions.</summary>
    public List<long> Dims { get; } = [];
    /// <summary>Element type.</summary>
    public OnnxDataType DataType { get; internal set; }
    /// <summary>Name (initializer name).</summary>
    public string Name { get; internal set; } = "";
    /// <summary>float_data (FLOAT, and COMPLEX64).</summary>
    public List<float> FloatData { get; } = [];
    /// <summary>int32_data (INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16 bits, BFLOAT16 bits).</summary>
    public List<long> Int32Data { get; } = [];
    /// <summary>int64_data.</summary>
    public List<long> Int64Data { get; } = [];
    /// <summary>double_data bits.</summary>
    public List<ulong> DoubleData { get; } = [];
    /// <summary>uint64_data (UINT32, UINT64).</summary>
    public List<long> UInt64Data { get; } = [];
    /// <summary>Whether string_data was present.</summary>
    public bool HasStrings { get; internal set; }
    /// <summary>raw_data: little-endian packed values, when present.</summary>
    public ReadOnlyMemory<byte>? RawData { get; internal set; }
    /// <summary>external_data key/value pairs (location, offset, length, checksum).</summary>
    public List<(string Key, string Value)> ExternalData { get; } = [];
    /// <summary>data_location: 0 default, 1 external.</summary>
    public long DataLocation { get; internal set; }
    /// <summary>Byte offset of this message in its file, for error messages about its contents.</summary>
    public long Offset { get; internal set; }

    internal static TensorProto Read(ProtoReader r)
    {
        var t = new TensorProto { Offset = r.Start };
        while (r.Next())
            switch (r.Field)
            {
                case 1: r.Varints("dims", t.Dims); break;
                case 2: t.DataType = (OnnxDataType)r.Int64("data_type"); break;
                case 4: r.Floats("float_data", t.FloatData); break;
                case 5: r.Varints("int32_data", t.Int32Data); break;
                case 6: r.Bytes("string_data"); t.HasStrings = true; break;
                case 7: r.Varints("int64_data", t.Int64Data); break;
                case 8: t.Name = r.String("name"); break;
                case 9: t.RawData = r.Bytes("raw_data"); break;
                case 10: r.Fixed64("double_data", t.DoubleData); break;
                case 11: r.Varints("uint64_data", t.UInt64Data); break;
                case 13:
                    {
                        var e = r.Message("external_data", "StringStringEntryProto");
                        string key = "", value = "";
                        while (e.Next())
                            switch (e.Field)
                            {
                                case 1: key = e.String("key"); break;
                                case 2: value = e.String("value"); break;
                                default: e.Skip(); break;
                            }
                        t.ExternalData.Add((key, value));
                        break;
                    }
                case 14: t.DataLocation = r.Int64("data_location"); break;
                default: r.Skip(); break;
            }
        return t;
    }
}
