using System.Buffers.Binary;

namespace Autograd.Onnx;

/// <summary>Converts ONNX tensors to framework tensors. Float and Float16/BFloat16 become Float32, Double becomes Float64, and
/// every integer type and Bool becomes Int64 (the framework's three dtypes); the ONNX type is returned beside the tensor so
/// the importer keeps integer semantics (wrap-around, truncating division).</summary>
public static class TensorData
{
    /// <summary>Reads a file holding one serialized TensorProto (the <c>input_N.pb</c> / <c>output_N.pb</c> of ONNX test cases).</summary>
    /// <param name="path">The .pb file.</param>
    /// <returns>The tensor, its ONNX element type and its name.</returns>
    public static (Tensor Tensor, OnnxDataType Type, string Name) ReadFile(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var proto = TensorProto.Read(new ProtoReader(bytes, 0, bytes.Length, "TensorProto"));
        var (t, type) = ToTensor(proto, Path.GetDirectoryName(Path.GetFullPath(path))!);
        return (t, type, proto.Name);
    }

    /// <summary>The framework dtype holding values of an ONNX element type.</summary>
    public static DType DTypeOf(OnnxDataType t) => t switch
    {
        OnnxDataType.Float or OnnxDataType.Float16 or OnnxDataType.BFloat16 => DType.Float32,
        OnnxDataType.Double => DType.Float64,
        OnnxDataType.String or OnnxDataType.Undefined => throw new NotSupportedException($"ONNX element type {t} has no tensor representation here"),
        _ => DType.Int64,
    };

    /// <summary>Whether the ONNX type is a floating-point type.</summary>
    public static bool IsFloat(OnnxDataType t) => t is OnnxDataType.Float or OnnxDataType.Double or OnnxDataType.Float16 or OnnxDataType.BFloat16;

    /// <summary>Decodes a TensorProto; external data is read relative to <paramref name="baseDir"/> (the model's folder) and must stay inside it.</summary>
    /// <param name="t">The decoded proto.</param>
    /// <param name="baseDir">The folder external data paths are relative to.</param>
    public static (Tensor Tensor, OnnxDataType Type) ToTensor(TensorProto t, string baseDir)
    {
        string what = t.Name.Length > 0 ? $"tensor '{t.Name}'" : "tensor";
        if (t.DataType is OnnxDataType.String || t.HasStrings)
            throw new OnnxFormatException($"{what}: string tensors are not supported", t.Offset, "TensorProto.data_type");
        if (!Enum.IsDefined(t.DataType) || t.DataType == OnnxDataType.Undefined)
            throw new OnnxFormatException($"{what}: unsupported data type {(int)t.DataType}", t.Offset, "TensorProto.data_type");
        long count = 1;
        foreach (var d in t.Dims)
        {
            if (d < 0) throw new OnnxFormatException($"{what}: negative dimension {d}", t.Offset, "TensorProto.dims");
            count *= d;
            if (count > Array.MaxLength) throw new OnnxFormatException($"{what}: {string.Join("x", t.Dims)} elements is too many", t.Offset, "TensorProto.dims");
        }
        int n = (int)count;
        var shape = t.Dims.Select(d => (int)d).ToArray();
        var raw = t.DataLocation == 1 ? ReadExternal(t, what, baseDir) : t.RawData;
        if (raw is { } r && r.Length != (long)n * ElementSize(t.DataType))
            throw new OnnxFormatException($"{what}: raw_data has {r.Length} bytes, {n} {t.DataType} values need {(long)n * ElementSize(t.DataType)}", t.Offset, "TensorProto.raw_data");
        var tensor = DTypeOf(t.DataType) switch
        {
            DType.Float32 => Tensor.From(Array.ConvertAll(raw is { } f ? RawFloats(f.Span, t.DataType, n) : TypedFloats(t, n, what), v => (float)v), shape),
            DType.Float64 => Tensor.From(raw is { } d ? RawFloats(d.Span, t.DataType, n) : TypedFloats(t, n, what), shape),
            _ => Tensor.From(raw is { } i ? RawIntegers(i.Span, t.DataType, n) : TypedIntegers(t, n, what), shape),
        };
        return (tensor, t.DataType);
    }

    private static int ElementSize(OnnxDataType t) => t switch
    {
        OnnxDataType.UInt8 or OnnxDataType.Int8 or OnnxDataType.Bool => 1,
        OnnxDataType.UInt16 or OnnxDataType.Int16 or OnnxDataType.Float16 or OnnxDataType.BFloat16 => 2,
        OnnxDataType.Float or OnnxDataType.Int32 or OnnxDataType.UInt32 => 4,
        _ => 8,
    };

    private static double[] RawFloats(ReadOnlySpan<byte> raw, OnnxDataType type, int n)
    {
        var v = new double[n];
        for (int i = 0; i < n; i++)
            v[i] = type switch
            {
                OnnxDataType.Float => BinaryPrimitives.ReadSingleLittleEndian(raw[(4 * i)..]),
                OnnxDataType.Double => BinaryPrimitives.ReadDoubleLittleEndian(raw[(8 * i)..]),
                OnnxDataType.Float16 => (double)BinaryPrimitives.ReadHalfLittleEndian(raw[(2 * i)..]),
                _ => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(raw[(2 * i)..]) << 16),
            };
        return v;
    }

    private static long[] RawIntegers(ReadOnlySpan<byte> raw, OnnxDataType type, int n)
    {
        var v = new long[n];
        for (int i = 0; i < n; i++)
            v[i] = type switch
            {
                OnnxDataType.UInt8 or OnnxDataType.Bool => raw[i],
                OnnxDataType.Int8 => (sbyte)raw[i],
                OnnxDataType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(raw[(2 * i)..]),
                OnnxDataType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(raw[(2 * i)..]),
                OnnxDataType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(raw[(4 * i)..]),
                OnnxDataType.UInt32 => BinaryPrimitives.ReadUInt32LittleEndian(raw[(4 * i)..]),
                _ => BinaryPrimitives.ReadInt64LittleEndian(raw[(8 * i)..]),
            };
        return v;
    }

    private static T[] Count<T>(List<T> values, int n, TensorProto t, string what, string field) => values.Count == n ? [.. values]
        : throw new OnnxFormatException($"{what}: {field} has {values.Count} values, shape [{string.Join(", ", t.Dims)}] needs {n}", t.Offset, $"TensorProto.{field}");

    private static double[] TypedFloats(TensorProto t, int n, string what) => t.DataType switch
    {
        OnnxDataType.Float => Array.ConvertAll(Count(t.FloatData, n, t, what, "float_data"), f => (double)f),
        OnnxDataType.Double => Array.ConvertAll(Count(t.DoubleData, n, t, what, "double_data"), BitConverter.UInt64BitsToDouble),
        OnnxDataType.Float16 => Array.ConvertAll(Count(t.Int32Data, n, t, what, "int32_data"), v => (double)BitConverter.UInt16BitsToHalf((ushort)v)),
        _ => Array.ConvertAll(Count(t.Int32Data, n, t, what, "int32_data"), v => (double)BitConverter.Int32BitsToSingle((int)(v & 0xFFFF) << 16)),
    };

    private static long[] TypedIntegers(TensorProto t, int n, string what) => t.DataType switch
    {
        OnnxDataType.Int64 => Count(t.Int64Data, n, t, what, "int64_data"),
        OnnxDataType.UInt32 or OnnxDataType.UInt64 => Count(t.UInt64Data, n, t, what, "uint64_data"),
        _ => Array.ConvertAll(Count(t.Int32Data, n, t, what, "int32_data"), v => (long)(int)v),
    };

    /// <summary>Reads external data, refusing any location that leaves <paramref name="baseDir"/> (<c>../</c>, absolute paths, symlinks out).</summary>
    private static ReadOnlyMemory<byte> ReadExternal(TensorProto t, string what, string baseDir)
    {
        var kv = t.ExternalData.ToDictionary(e => e.Key, e => e.Value);
        if (!kv.TryGetValue("location", out var location) || location.Length == 0)
            throw new OnnxFormatException($"{what}: external data without a location", t.Offset, "TensorProto.external_data");
        var file = ResolveInside(baseDir, location, what, t.Offset);
        long offset = ParseKey(kv, "offset", 0, what, t.Offset);
        long fileLength = new FileInfo(file).Length;
        long length = ParseKey(kv, "length", fileLength - offset, what, t.Offset);
        if (offset < 0 || length < 0 || offset + length > fileLength)
            throw new OnnxFormatException($"{what}: external data range [{offset}, {offset + length}) is outside '{location}' ({fileLength} bytes)", t.Offset, "TensorProto.external_data");
        var bytes = new byte[length];
        using var s = File.OpenRead(file);
        s.Seek(offset, SeekOrigin.Begin);
        s.ReadExactly(bytes);
        return bytes;
    }

    private static long ParseKey(Dictionary<string, string> kv, string key, long dflt, string what, long at)
    {
        if (!kv.TryGetValue(key, out var s)) return dflt;
        if (!long.TryParse(s, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var v))
            throw new OnnxFormatException($"{what}: external data {key} '{s}' is not a non-negative integer", at, "TensorProto.external_data");
        return v;
    }

    /// <summary>The full path of <paramref name="location"/> under <paramref name="baseDir"/>, following symlinks, or an error
    /// when it is absolute, climbs out with <c>..</c>, or resolves (through a symlink) to a file outside the folder.</summary>
    internal static string ResolveInside(string baseDir, string location, string what, long offset)
    {
        if (Path.IsPathRooted(location) || location.Contains('\\') && Path.DirectorySeparatorChar != '\\' && location.StartsWith('\\'))
            throw new OnnxFormatException($"{what}: external data location '{location}' is an absolute path; only files inside the model's folder are read", offset, "TensorProto.external_data");
        if (location.Split('/', '\\').Any(part => part == ".."))
            throw new OnnxFormatException($"{what}: external data location '{location}' leaves the model's folder ('..')", offset, "TensorProto.external_data");
        var root = Path.GetFullPath(baseDir);
        var realRoot = RealPath(root, offset);
        var full = Path.GetFullPath(Path.Combine(root, location));
        if (!File.Exists(full))
            throw new OnnxFormatException($"{what}: external data file '{location}' not found in {root}", offset, "TensorProto.external_data");
        var real = RealPath(full, offset);
        if (!real.StartsWith(realRoot.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new OnnxFormatException($"{what}: external data location '{location}' resolves to {real}, outside the model's folder {realRoot}", offset, "TensorProto.external_data");
        return real;
    }

    /// <summary>The path with every symlink along it resolved.</summary>
    private static string RealPath(string path, long offset)
    {
        var full = Path.GetFullPath(path);
        var parent = Path.GetDirectoryName(full);
        var resolvedParent = parent == null ? null : RealPath(parent, offset);
        var current = resolvedParent == null ? full : Path.Combine(resolvedParent, Path.GetFileName(full));
        for (int hops = 0; hops < 40; hops++)
        {
            var info = new FileInfo(current);
            if (info.LinkTarget == null) return current;
            current = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(current)!, info.LinkTarget));
        }
        throw new OnnxFormatException($"too many levels of symbolic links at {path}", offset, "TensorProto.external_data");
    }
}
