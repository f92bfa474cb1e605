using Google.Protobuf;

namespace Tests;

/// <summary>Builds ONNX protobuf messages by hand with <see cref="CodedOutputStream"/> (independent of the decoder under
/// test): tag-by-tag, so tests can choose packed or unpacked repeated fields, raw or typed data, external data.</summary>
internal sealed class Proto
{
    private readonly MemoryStream buffer = new();
    private readonly CodedOutputStream output;

    public Proto() => output = new CodedOutputStream(buffer, leaveOpen: true);

    public byte[] Bytes()
    {
        output.Flush();
        return buffer.ToArray();
    }

    public Proto Int(int field, long value) { output.WriteTag(field, WireFormat.WireType.Varint); output.WriteInt64(value); return this; }

    public Proto Float(int field, float value) { output.WriteTag(field, WireFormat.WireType.Fixed32); output.WriteFloat(value); return this; }

    public Proto Str(int field, string value) { output.WriteTag(field, WireFormat.WireType.LengthDelimited); output.WriteString(value); return this; }

    public Proto Raw(int field, byte[] value) { output.WriteTag(field, WireFormat.WireType.LengthDelimited); output.WriteBytes(ByteString.CopyFrom(value)); return this; }

    public Proto Msg(int field, Proto message) => Raw(field, message.Bytes());

    public Proto PackedInts(int field, params long[] values) => Packed(field, o => { foreach (var v in values) o.WriteInt64(v); });

    public Proto PackedFloats(int field, params float[] values) => Packed(field, o => { foreach (var v in values) o.WriteFloat(v); });

    private Proto Packed(int field, Action<CodedOutputStream> write)
    {
        var inner = new MemoryStream();
        var o = new CodedOutputStream(inner, leaveOpen: true);
        write(o);
        o.Flush();
        return Raw(field, inner.ToArray());
    }

    // ---------------- ONNX messages ----------------

    public static Proto TensorType(string name, int elemType, params long[] dims)
    {
        var shape = new Proto();
        foreach (var d in dims) shape.Msg(1, new Proto().Int(1, d));
        return new Proto().Str(1, name).Msg(2, new Proto().Msg(1, new Proto().Int(1, elemType).Msg(2, shape)));
    }

    public static Proto Node(string op, string[] inputs, string[] outputs, params Proto[] attributes)
    {
        var n = new Proto();
        foreach (var i in inputs) n.Str(1, i);
        foreach (var o in outputs) n.Str(2, o);
        n.Str(4, op);
        foreach (var a in attributes) n.Msg(5, a);
        return n;
    }

    /// <summary>A model: opset 13, IR 8, the given nodes, initializers, inputs and outputs.</summary>
    public static byte[] Model(Proto[] nodes, Proto[] initializers, Proto[] inputs, Proto[] outputs, long opset = 13, long ir = 8)
    {
        var g = new Proto();
        foreach (var n in nodes) g.Msg(1, n);
        g.Str(2, "g");
        foreach (var t in initializers) g.Msg(5, t);
        foreach (var i in inputs) g.Msg(11, i);
        foreach (var o in outputs) g.Msg(12, o);
        return new Proto().Int(1, ir).Str(2, "tests").Msg(7, g).Msg(8, new Proto().Str(1, "").Int(2, opset)).Bytes();
    }
}
