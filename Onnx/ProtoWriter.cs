using System.Runtime.InteropServices;
using Google.Protobuf;

namespace Autograd.Onnx;

/// <summary>Builds one protobuf message as a list of segments: small fields encoded with <see cref="CodedOutputStream"/>,
/// nested messages and large arrays kept by reference, so a model with hundreds of megabytes of weights is written to its
/// stream once, without intermediate copies (a nested message's length prefix is the sum of its segments).</summary>
internal sealed class ProtoWriter
{
    private readonly List<object> segments = [];      // byte[] (encoded fields), Array (raw element data) or ProtoWriter
    private MemoryStream pending = new();
    private CodedOutputStream output;

    public ProtoWriter() => output = new CodedOutputStream(pending, leaveOpen: true);

    /// <summary>The encoded size of the message in bytes.</summary>
    public long Length => Close().Sum(s => s switch
    {
        byte[] b => b.Length,
        ProtoWriter w => w.Length,
        Array a => (long)a.Length * ElementSize(a),
        _ => 0,
    });

    private static int ElementSize(Array a) => a switch { float[] => 4, double[] or long[] => 8, _ => 1 };

    public ProtoWriter Int(int field, long value)
    {
        output.WriteTag(field, WireFormat.WireType.Varint);
        output.WriteInt64(value);
        return this;
    }

    public ProtoWriter Ints(int field, IEnumerable<long> values)
    {
        foreach (var v in values) Int(field, v);
        return this;
    }

    public ProtoWriter Float(int field, float value)
    {
        output.WriteTag(field, WireFormat.WireType.Fixed32);
        output.WriteFloat(value);
        return this;
    }

    public ProtoWriter String(int field, string value)
    {
        output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        output.WriteString(value);
        return this;
    }

    /// <summary>A length-delimited field holding the little-endian bytes of a float, double, long or byte array.</summary>
    public ProtoWriter Raw(int field, Array data)
    {
        output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        output.WriteLength(checked((int)((long)data.Length * ElementSize(data))));
        Close();
        segments.Add(data);
        return this;
    }

    public ProtoWriter Message(int field, ProtoWriter message)
    {
        output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        output.WriteLength(checked((int)message.Length));
        Close();
        segments.Add(message);
        return this;
    }

    /// <summary>Moves the pending encoded fields into the segment list.</summary>
    private List<object> Close()
    {
        output.Flush();
        if (pending.Length > 0)
        {
            segments.Add(pending.ToArray());
            pending = new MemoryStream();
            output = new CodedOutputStream(pending, leaveOpen: true);
        }
        return segments;
    }

    public void WriteTo(Stream stream)
    {
        foreach (var s in Close())
            switch (s)
            {
                case byte[] b: stream.Write(b); break;
                case ProtoWriter w: w.WriteTo(stream); break;
                case float[] f: stream.Write(MemoryMarshal.AsBytes(f.AsSpan())); break;
                case double[] d: stream.Write(MemoryMarshal.AsBytes(d.AsSpan())); break;
                case long[] l: stream.Write(MemoryMarshal.AsBytes(l.AsSpan())); break;
            }
    }

    public byte[] ToArray()
    {
        using var stream = new MemoryStream(checked((int)Length));
        WriteTo(stream);
        return stream.ToArray();
    }
}
