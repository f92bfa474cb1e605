using System.Buffers.Binary;

namespace Autograd.Data;

/// <summary>Element type of an IDX file (the third byte of its magic number).</summary>
public enum IdxType : byte
{
    /// <summary>Unsigned byte (0x08), as in MNIST.</summary>
    UInt8 = 0x08,
    /// <summary>Signed byte (0x09).</summary>
    Int8 = 0x09,
    /// <summary>Big-endian 16-bit integer (0x0B).</summary>
    Int16 = 0x0B,
    /// <summary>Big-endian 32-bit integer (0x0C).</summary>
    Int32 = 0x0C,
    /// <summary>Big-endian 32-bit float (0x0D).</summary>
    Float32 = 0x0D,
    /// <summary>Big-endian 64-bit float (0x0E).</summary>
    Float64 = 0x0E,
}

/// <summary>The content of an IDX file: element type, dimensions and the data bytes as stored (big-endian).</summary>
public sealed class IdxData
{
    private readonly int[] dims;

    internal IdxData(string path, IdxType type, int[] dims, byte[] bytes)
    {
        Path = path;
        Type = type;
        this.dims = dims;
        Bytes = bytes;
    }

    /// <summary>Whether the file was gzip-compressed (byte offsets in errors then refer to the decompressed data).</summary>
    internal bool Gzip { get; init; }

    /// <summary>The file it was read from (used in error messages).</summary>
    public string Path { get; }

    /// <summary>The element type.</summary>
    public IdxType Type { get; }

    /// <summary>A copy of the dimensions, outermost first (e.g. [60000, 28, 28] for MNIST training images).</summary>
    public int[] Dims => (int[])dims.Clone();

    /// <summary>Number of elements (the product of <see cref="Dims"/>).</summary>
    public int Count => Bytes.Length / Idx.ElementSize(Type);

    /// <summary>The data bytes after the header, exactly as stored (multi-byte values are big-endian).
    /// For <see cref="IdxType.UInt8"/> these are the values themselves.</summary>
    public byte[] Bytes { get; }

    /// <summary>The values converted to double.</summary>
    public double[] ToDoubleArray()
    {
        var r = new double[Count];
        var b = Bytes.AsSpan();
        switch (Type)
        {
            case IdxType.UInt8: for (int i = 0; i < r.Length; i++) r[i] = b[i]; break;
            case IdxType.Int8: for (int i = 0; i < r.Length; i++) r[i] = (sbyte)b[i]; break;
            case IdxType.Int16: for (int i = 0; i < r.Length; i++) r[i] = BinaryPrimitives.ReadInt16BigEndian(b[(2 * i)..]); break;
            case IdxType.Int32: for (int i = 0; i < r.Length; i++) r[i] = BinaryPrimitives.ReadInt32BigEndian(b[(4 * i)..]); break;
            case IdxType.Float32: for (int i = 0; i < r.Length; i++) r[i] = BinaryPrimitives.ReadSingleBigEndian(b[(4 * i)..]); break;
            default: for (int i = 0; i < r.Length; i++) r[i] = BinaryPrimitives.ReadDoubleBigEndian(b[(8 * i)..]); break;
        }
        return r;
    }

    /// <summary>The values converted to float.</summary>
    public float[] ToFloatArray()
    {
        if (Type == IdxType.UInt8)
        {
            var r = new float[Count];
            for (int i = 0; i < r.Length; i++) r[i] = Bytes[i];
            return r;
        }
        return Array.ConvertAll(ToDoubleArray(), v => (float)v);
    }

    /// <summary>The values as Int64 (integer types only).</summary>
    /// <exception cref="InvalidOperationException">The file holds floating-point values.</exception>
    public long[] ToInt64Array()
    {
        if (Type is IdxType.Float32 or IdxType.Float64)
            throw new InvalidOperationException($"{Path}: IdxData.ToInt64Array: the file holds {Type} values, not integers");
        return Array.ConvertAll(ToDoubleArray(), v => (long)v);
    }
}

/// <summary>Reader for IDX files (the MNIST format), plain or gzip-compressed (detected by the magic bytes 1f 8b).</summary>
/// <remarks>Layout: two zero bytes, a type code (<see cref="IdxType"/>), the number of dimensions, one big-endian int32
/// per dimension, then the data, big-endian, row-major.</remarks>
public static class Idx
{
    /// <summary>Size in bytes of one element of <paramref name="type"/>.</summary>
    public static int ElementSize(IdxType type) => type switch
    {
        IdxType.UInt8 or IdxType.Int8 => 1,
        IdxType.Int16 => 2,
        IdxType.Int32 or IdxType.Float32 => 4,
        IdxType.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(type), $"unknown IDX type code 0x{(byte)type:X2}"),
    };

    /// <summary>Reads an IDX file, plain or gzip-compressed.</summary>
    /// <exception cref="InvalidDataException">Wrong magic, unknown type code, or a data length that disagrees with the
    /// dimensions; the message names the file, the field, the expected value and the byte offset.</exception>
    public static IdxData Read(string path)
    {
        var content = DataFile.ReadAll(path, out bool gzip);
        return Parse(content, path, gzip);
    }

    /// <summary>Parses the (already decompressed) bytes of an IDX file; <paramref name="name"/> is used in error messages.</summary>
    /// <exception cref="InvalidDataException">As <see cref="Read"/>.</exception>
    public static IdxData Parse(byte[] content, string name) => Parse(content, name, gzip: false);

    private static IdxData Parse(byte[] content, string name, bool gzip)
    {
        if (content.Length < 4)
            throw DataFile.Corrupt(name, "magic number", "4 bytes (00 00, type code, number of dimensions)", $"a file of {content.Length} bytes", 0, gzip);
        if (content[0] != 0 || content[1] != 0)
            throw DataFile.Corrupt(name, "magic number", "0x0000 in its first two bytes", $"0x{content[0]:X2}{content[1]:X2} (not an IDX file?)", 0, gzip);
        byte code = content[2];
        if (!Enum.IsDefined(typeof(IdxType), code))
            throw DataFile.Corrupt(name, "type code", "0x08 (ubyte), 0x09 (sbyte), 0x0B (short), 0x0C (int), 0x0D (float) or 0x0E (double)", $"0x{code:X2}", 2, gzip);
        var type = (IdxType)code;
        int ndims = content[3];
        if (ndims == 0)
            throw DataFile.Corrupt(name, "number of dimensions", "at least 1", "0", 3, gzip);
        int header = 4 + 4 * ndims;
        if (content.Length < header)
            throw DataFile.Corrupt(name, "dimension sizes", $"{ndims} big-endian int32 values ({4 * ndims} bytes) after the magic number",
                $"only {content.Length - 4} bytes (file truncated)", 4, gzip);
        var dims = new int[ndims];
        long count = 1;
        for (int i = 0; i < ndims; i++)
        {
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(content.AsSpan(4 + 4 * i));
            if (dims[i] < 0) throw DataFile.Corrupt(name, $"size of dimension {i}", "a non-negative int32", dims[i].ToString(), 4 + 4 * i, gzip);
            count *= dims[i];
            if (count > Array.MaxLength) throw new NotSupportedException($"{name}: {count}+ elements do not fit in one .NET array");
        }
        int size = ElementSize(type);
        long expected = count * size, actual = content.Length - header;
        if (actual != expected)
            throw DataFile.Corrupt(name, "data length",
                $"{expected} bytes ({string.Join(" x ", dims)} {type} values of {size} byte{(size > 1 ? "s" : "")}) after the {header}-byte header",
                $"{actual} bytes ({(actual < expected ? "file truncated" : "trailing data")})", header, gzip);
        return new IdxData(name, type, dims, content.AsSpan(header).ToArray()) { Gzip = gzip };
    }
}
