using Google.Protobuf;

namespace Autograd.Onnx;

/// <summary>An ONNX file (or a serialized TensorProto) is malformed: truncated, corrupt, or holding a value that cannot be
/// represented. The message names the byte offset and the field being read.</summary>
public sealed class OnnxFormatException : Exception
{
    /// <summary>Creates an exception with a generic message.</summary>
    public OnnxFormatException() : base("invalid ONNX data") { }

    /// <summary>Creates an exception with the given message.</summary>
    /// <param name="message">What is wrong.</param>
    public OnnxFormatException(string message) : base(message) { }

    /// <summary>Creates an exception with the given message and cause.</summary>
    /// <param name="message">What is wrong.</param>
    /// <param name="innerException">The underlying error.</param>
    public OnnxFormatException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>Creates an exception for a problem at a known place of the input.</summary>
    /// <param name="message">What is wrong.</param>
    /// <param name="offset">Byte offset in the file where the problem was found.</param>
    /// <param name="field">The field being read, as <c>Message.field</c> (e.g. <c>TensorProto.dims</c>).</param>
    /// <param name="innerException">The underlying error, if any.</param>
    public OnnxFormatException(string message, long offset, string field, Exception? innerException = null)
        : base($"{message} (at byte {offset}, reading {field})", innerException)
    {
        Offset = offset;
        Field = field;
    }

    /// <summary>The byte offset where the problem was found, if known.</summary>
    public long? Offset { get; }

    /// <summary>The field being read (<c>Message.field</c>), if known.</summary>
    public string? Field { get; }
}

/// <summary>Reads one protobuf message of a byte buffer field by field with <see cref="CodedInputStream"/>, turning every
/// decoding problem into an <see cref="OnnxFormatException"/> with the absolute byte offset and the field being read.
/// Nested messages are read in place (no copies): <see cref="Message"/> hands out a reader over the payload.</summary>
internal sealed class ProtoReader
{
    private const int MaxDepth = 64;
    private readonly byte[] buffer;
    private readonly int end;
    private readonly int depth;
    private CodedInputStream stream;
    private int fieldStart;

    /// <summary>Byte offset of the message's first byte in the buffer.</summary>
    public int Start { get; }

    /// <summary>Length of the message in bytes.</summary>
    public int Length => end - Start;

    /// <summary>The message type being read, for error messages.</summary>
    public string Type { get; }

    /// <summary>The field number of the current field.</summary>
    public int Field { get; private set; }

    /// <summary>The wire type of the current field (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).</summary>
    public int WireType { get; private set; }

    /// <summary>The name of the current field, set by the caller before reading its value (for error messages).</summary>
    public string FieldName { get; set; } = "?";

    public ProtoReader(byte[] buffer, int start, int length, string type, int depth = 0)
    {
        if (depth > MaxDepth) throw new OnnxFormatException($"messages nested deeper than {MaxDepth} levels", start, type);
        this.buffer = buffer;
        Start = start;
        end = start + length;
        this.depth = depth;
        Type = type;
        stream = new CodedInputStream(buffer, start, length);
    }

    private long Position => stream.Position;

    private string Where => $"{Type}.{FieldName}";

    /// <summary>Advances to the next field; false at the end of the message.</summary>
    public bool Next()
    {
        fieldStart = (int)Position;
        if (fieldStart >= end) return false;
        FieldName = "(tag)";
        uint tag = Guard(() => stream.ReadTag());
        Field = (int)(tag >> 3);
        WireType = (int)(tag & 7);
        if (Field == 0) throw new OnnxFormatException("field number 0 is invalid", fieldStart, Where);
        FieldName = $"field {Field}";
        return true;
    }

    private T Guard<T>(Func<T> read)
    {
        long at = Position;
        try { return read(); }
        catch (InvalidProtocolBufferException e) { throw new OnnxFormatException(e.Message, at, Where, e); }
    }

    /// <summary>Checks the current field's wire type, naming the field.</summary>
    public ProtoReader Expect(string name, int wireType)
    {
        FieldName = name;
        if (WireType != wireType) throw new OnnxFormatException($"wire type {WireType}, expected {wireType}", fieldStart, Where);
        return this;
    }

    /// <summary>Skips the current (unknown) field.</summary>
    public void Skip()
    {
        if (WireType is 3 or 4) throw new OnnxFormatException($"groups (wire type {WireType}) are not used by ONNX", fieldStart, Where);
        if (WireType == 2) { Payload(); return; }
        Guard(() => { stream.SkipLastField(); return 0; });
    }

    public long Int64(string name) { Expect(name, 0); return Guard(() => stream.ReadInt64()); }

    public float Float(string name) { Expect(name, 5); return Guard(() => stream.ReadFloat()); }

    /// <summary>The payload of the current length-delimited field as (start, length) in the buffer; the reader moves past it.</summary>
    private (int Start, int Length) Payload()
    {
        int len = Guard(() => stream.ReadLength());
        int start = (int)Position;
        if (len < 0 || len > end - start)
            throw new OnnxFormatException($"length {len} exceeds the {end - start} bytes left in the enclosing {Type}", start, Where);
        stream = new CodedInputStream(buffer, start + len, end - start - len);
        return (start, len);
    }

    public ReadOnlyMemory<byte> Bytes(string name)
    {
        Expect(name, 2);
        var (s, n) = Payload();
        return buffer.AsMemory(s, n);
    }

    public string String(string name)
    {
        Expect(name, 2);
        var (s, n) = Payload();
        try { return new System.Text.UTF8Encoding(false, true).GetString(buffer, s, n); }
        catch (System.Text.DecoderFallbackException e) { throw new OnnxFormatException("invalid UTF-8 string", s, Where, e); }
    }

    /// <summary>A reader over the current field's embedded message.</summary>
    public ProtoReader Message(string name, string type)
    {
        Expect(name, 2);
        var (s, n) = Payload();
        return new ProtoReader(buffer, s, n, type, depth + 1);
    }

    /// <summary>Appends the value(s) of a repeated varint field, packed or not.</summary>
    public void Varints(string name, List<long> into) => Repeated(name, into, 0, s => s.ReadInt64());

    /// <summary>Appends the value(s) of a repeated fixed32 float field, packed or not.</summary>
    public void Floats(string name, List<float> into) => Repeated(name, into, 5, s => s.ReadFloat());

    /// <summary>Appends the value(s) of a repeated fixed64 field (double bits), packed or not.</summary>
    public void Fixed64(string name, List<ulong> into) => Repeated(name, into, 1, s => s.ReadFixed64());

    /// <summary>One value of wire type <paramref name="wireType"/>, or a packed run of them in a length-delimited payload.</summary>
    private void Repeated<T>(string name, List<T> into, int wireType, Func<CodedInputStream, T> read)
    {
        FieldName = name;
        if (WireType != 2) { Expect(name, wireType); into.Add(Guard(() => read(stream))); return; }
        var sub = Message(name, Type);
        sub.FieldName = name;
        while (sub.Position < sub.end) into.Add(sub.Guard(() => read(sub.stream)));
    }

    /// <summary>An error about the current field's value.</summary>
    public OnnxFormatException Error(string message) => new(message, fieldStart, Where);
}
