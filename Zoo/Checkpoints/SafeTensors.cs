using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Autograd.Checkpoints;

/// <summary>A checkpoint file is malformed or cannot be represented: the message names the file, the tensor key and
/// header field involved, the expected and the found value, and the byte offset in the file where relevant.</summary>
public sealed class CheckpointException : Exception
{
    /// <summary>Creates an exception with a generic message.</summary>
    public CheckpointException() : base("invalid checkpoint") { }

    /// <summary>Creates an exception with the given message.</summary>
    /// <param name="message">What is wrong.</param>
    public CheckpointException(string message) : base(message) { }

    /// <summary>Creates an exception with the given message and cause.</summary>
    /// <param name="message">What is wrong.</param>
    /// <param name="innerException">The underlying error.</param>
    public CheckpointException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>Creates an exception describing a problem at a known place of a checkpoint file.</summary>
    /// <param name="message">The full message.</param>
    /// <param name="filePath">The checkpoint file.</param>
    /// <param name="key">The tensor name (or <c>__metadata__</c>) involved, if any.</param>
    /// <param name="field">The header field involved (<c>dtype</c>, <c>shape</c>, <c>data_offsets</c>, a metadata key), if any.</param>
    /// <param name="offset">The byte offset in the file, if known.</param>
    /// <param name="innerException">The underlying error, if any.</param>
    public CheckpointException(string message, string? filePath, string? key, string? field, long? offset, Exception? innerException = null)
        : base(message, innerException)
    {
        FilePath = filePath;
        Key = key;
        Field = field;
        Offset = offset;
    }

    /// <summary>The checkpoint file, if known.</summary>
    public string? FilePath { get; }

    /// <summary>The tensor name (or <c>__metadata__</c>) the problem concerns, or null for file-level problems.</summary>
    public string? Key { get; }

    /// <summary>The header field the problem concerns (<c>dtype</c>, <c>shape</c>, <c>data_offsets</c>, a metadata key), or null.</summary>
    public string? Field { get; }

    /// <summary>The byte offset in the file where the problem was found, or null.</summary>
    public long? Offset { get; }
}

/// <summary>Reads and writes the Hugging Face <c>safetensors</c> format, so checkpoints can be exchanged with PyTorch
/// (<c>safetensors.torch.save_file</c> / <c>load_file</c>) and other frameworks.</summary>
/// <remarks>
/// <para>Layout: an 8-byte little-endian unsigned header length N; N bytes of UTF-8 JSON mapping each tensor name to
/// <c>{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}</c> (offsets relative to the data buffer that
/// follows the header), plus an optional <c>"__metadata__"</c> object of string to string; then the raw little-endian,
/// row-major tensor data. The tensors must cover the data buffer contiguously, without gaps or overlaps.</para>
/// <para>Writing follows the reference implementation byte for byte: compact JSON with <c>__metadata__</c> first (its
/// keys sorted ordinally here; the reference uses hash order), tensors sorted by descending dtype alignment (I64, F64,
/// F32) and then by name (UTF-8 byte order), data laid out in that order, header padded with spaces to a multiple of
/// 8 bytes so that every tensor is aligned. Files are written atomically: to a temporary file in the same directory,
/// flushed to disk, then renamed over the destination.</para>
/// <para>Reading accepts F32, F64 and I64 exactly; F16 and BF16 are widened to Float32; BOOL, U8, I8, I16, U16, I32,
/// U32 and U64 are widened to Int64. Any inconsistency raises a <see cref="CheckpointException"/>.</para>
/// </remarks>
/// <example><code>
/// SafeTensors.Save("model.safetensors", new Dictionary&lt;string, Tensor&gt; { ["weight"] = w, ["bias"] = b },
///                  new Dictionary&lt;string, string&gt; { ["format"] = "pt" });
/// var (tensors, metadata) = SafeTensors.LoadWithMetadata("model.safetensors");
/// </code></example>
public static class SafeTensors
{
    /// <summary>The name reserved in the header for the free-form string metadata.</summary>
    public const string MetadataKey = "__metadata__";

    /// <summary>Largest header accepted when loading, as in the reference implementation (100 MB).</summary>
    public const long MaxHeaderSize = 100_000_000;

    private enum Src { F32, F64, I64, F16, BF16, Bool, U8, I8, I16, U16, I32, U32, U64 }

    private static readonly Dictionary<string, (Src Kind, int Size)> Readable = new(StringComparer.Ordinal)
    {
        ["F32"] = (Src.F32, 4), ["F64"] = (Src.F64, 8), ["I64"] = (Src.I64, 8),
        ["F16"] = (Src.F16, 2), ["BF16"] = (Src.BF16, 2),
        ["BOOL"] = (Src.Bool, 1), ["U8"] = (Src.U8, 1), ["I8"] = (Src.I8, 1),
        ["I16"] = (Src.I16, 2), ["U16"] = (Src.U16, 2), ["I32"] = (Src.I32, 4), ["U32"] = (Src.U32, 4), ["U64"] = (Src.U64, 8),
    };

    /// <summary>Dtypes of the specification that this loader cannot represent.</summary>
    private static readonly HashSet<string> KnownUnsupported = new(StringComparer.Ordinal)
    {
        "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64",
    };

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    // ------------------------------------------------------------------ writing

    /// <summary>Writes <paramref name="tensors"/> (and optional string <paramref name="metadata"/>) to
    /// <paramref name="path"/> in the safetensors format, atomically: either the complete new file replaces the old
    /// one, or (on any exception) the existing file is left untouched and no temporary file remains.</summary>
    /// <param name="path">Destination file; an existing file is replaced.</param>
    /// <param name="tensors">Tensors by name. Names may not be <c>__metadata__</c>; tensors may not be null.</param>
    /// <param name="metadata">Optional free-form string metadata, stored under <c>__metadata__</c>.</param>
    /// <exception cref="ArgumentException">A name is reserved or not valid UTF-16, a tensor is null, or the path names a directory.</exception>
    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(tensors);
        string full = Path.GetFullPath(path);
        string fileName = Path.GetFileName(full);
        if (fileName.Length == 0) throw new ArgumentException($"SafeTensors.Save: '{path}' names a directory, not a file", nameof(path));
        string dir = Path.GetDirectoryName(full) ?? throw new ArgumentException($"SafeTensors.Save: '{path}' has no directory", nameof(path));
        string tmp = Path.Combine(dir, $".{fileName}.{Guid.NewGuid():N}.tmp");

        try
        {
            // The temporary file is created first; everything after this point (reading the dictionaries, converting
            // and writing the data, flushing, renaming) is covered by the cleanup below.
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                var plan = Plan(tensors, metadata);
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)plan.Header.Length);
                fs.Write(prefix);
                fs.Write(plan.Header);
                foreach (var (_, _, tensor) in plan.Entries) WriteData(fs, tensor);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    private sealed record SavePlan(byte[] Header, List<(string Name, byte[] Utf8Name, Tensor Tensor)> Entries);

    private static SavePlan Plan(IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        var entries = new List<(string Name, byte[] Utf8Name, Tensor Tensor)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in tensors)
        {
            if (name is null) throw new ArgumentException("SafeTensors.Save: tensor names may not be null", nameof(tensors));
            if (name == MetadataKey) throw new ArgumentException($"SafeTensors.Save: the tensor name '{MetadataKey}' is reserved for the metadata", nameof(tensors));
            if (tensor is null) throw new ArgumentException($"SafeTensors.Save: tensor '{name}' is null", nameof(tensors));
            if (!seen.Add(name)) throw new ArgumentException($"SafeTensors.Save: tensor name '{name}' occurs twice", nameof(tensors));
            _ = DTypeName(tensor.DType, name);
            entries.Add((name, Utf8Bytes(name, "tensor name", nameof(tensors)), tensor));
        }
        // The reference implementation sorts by descending dtype alignment (its dtype enum order: ... F32 < F64 < I64),
        // then by name; Rust compares strings by their UTF-8 bytes.
        entries.Sort((a, b) =>
        {
            int c = SortRank(b.Tensor.DType).CompareTo(SortRank(a.Tensor.DType));
            return c != 0 ? c : a.Utf8Name.AsSpan().SequenceCompareTo(b.Utf8Name);
        });

        var json = new StringBuilder("{");
        if (metadata is not null)
        {
            var items = new List<(byte[] Utf8Key, string Key, string Value)>();
            foreach (var (key, value) in metadata)
            {
                if (key is null) throw new ArgumentException("SafeTensors.Save: metadata keys may not be null", nameof(metadata));
                if (value is null) throw new ArgumentException($"SafeTensors.Save: metadata value for '{key}' is null", nameof(metadata));
                Utf8Bytes(value, $"metadata value for '{key}'", nameof(metadata));
                items.Add((Utf8Bytes(key, "metadata key", nameof(metadata)), key, value));
            }
            items.Sort((a, b) => a.Utf8Key.AsSpan().SequenceCompareTo(b.Utf8Key));
            AppendJsonString(json, MetadataKey);
            json.Append(":{");
            for (int i = 0; i < items.Count; i++)
            {
                if (i > 0) json.Append(',');
                AppendJsonString(json, items[i].Key);
                json.Append(':');
                AppendJsonString(json, items[i].Value);
            }
            json.Append('}');
            if (entries.Count > 0) json.Append(',');
        }
        long offset = 0;
        for (int i = 0; i < entries.Count; i++)
        {
            var (name, _, tensor) = entries[i];
            long size = (long)tensor.Numel * ElementSize(tensor.DType);
            if (i > 0) json.Append(',');
            AppendJsonString(json, name);
            json.Append(":{\"dtype\":\"").Append(DTypeName(tensor.DType, name)).Append("\",\"shape\":[");
            json.AppendJoin(',', tensor.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));
            json.Append("],\"data_offsets\":[").Append(offset.ToString(CultureInfo.InvariantCulture)).Append(',')
                .Append((offset + size).ToString(CultureInfo.InvariantCulture)).Append("]}");
            offset += size;
        }
        json.Append('}');

        byte[] text = StrictUtf8.GetBytes(json.ToString());
        int padded = (text.Length + 7) / 8 * 8;
        var header = new byte[padded];
        text.CopyTo(header, 0);
        header.AsSpan(text.Length).Fill((byte)' ');
        return new SavePlan(header, entries);
    }

    private static int SortRank(DType t) => t switch { DType.Int64 => 2, DType.Float64 => 1, _ => 0 };

    private static int ElementSize(DType t) => t == DType.Float32 ? 4 : 8;

    private static string DTypeName(DType t, string name) => t switch
    {
        DType.Float32 => "F32",
        DType.Float64 => "F64",
        DType.Int64 => "I64",
        _ => throw new ArgumentException($"SafeTensors.Save: tensor '{name}' has dtype {t}, which has no safetensors equivalent here"),
    };

    private static byte[] Utf8Bytes(string s, string what, string paramName)
    {
        try { return StrictUtf8.GetBytes(s); }
        catch (EncoderFallbackException e)
        {
            throw new ArgumentException($"SafeTensors.Save: {what} '{s}' is not valid UTF-16 (unpaired surrogate) and cannot be written as UTF-8", paramName, e);
        }
    }

    /// <summary>Escapes like serde_json (the reference writer): quote, backslash and control characters only,
    /// short escapes where JSON has them, otherwise <c>\u00xx</c> with lowercase hex; everything else verbatim.</summary>
    private static void AppendJsonString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20) sb.Append("\\u00").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }

    private static void WriteData(FileStream fs, Tensor tensor)
    {
        switch (tensor.DType)
        {
            case DType.Float32:
            {
                var a = tensor.ToFloatArray();
                SwapIfBigEndian(MemoryMarshal.Cast<float, int>(a.AsSpan()));
                fs.Write(MemoryMarshal.AsBytes(a.AsSpan()));
                break;
            }
            case DType.Float64:
            {
                var a = tensor.ToDoubleArray();
                SwapIfBigEndian(MemoryMarshal.Cast<double, long>(a.AsSpan()));
                fs.Write(MemoryMarshal.AsBytes(a.AsSpan()));
                break;
            }
            default:
            {
                var a = tensor.ToLongArray();
                SwapIfBigEndian(a.AsSpan());
                fs.Write(MemoryMarshal.AsBytes(a.AsSpan()));
                break;
            }
        }
    }

    // ------------------------------------------------------------------ reading

    /// <summary>Loads every tensor of a safetensors file, in the order of their data in the file.</summary>
    /// <param name="path">The file to read.</param>
    /// <returns>The tensors by name. F16/BF16 become Float32; BOOL and the integer dtypes other than I64 become Int64.</returns>
    /// <exception cref="CheckpointException">The file is not a valid safetensors file or holds an unsupported dtype.</exception>
    public static Dictionary<string, Tensor> Load(string path) => LoadWithMetadata(path).Tensors;

    /// <summary>Loads every tensor of a safetensors file together with its <c>__metadata__</c>.</summary>
    /// <param name="path">The file to read.</param>
    /// <returns>The tensors by name (in the order of their data in the file) and the string metadata (empty if the
    /// file has none).</returns>
    /// <exception cref="CheckpointException">The file is not a valid safetensors file or holds an unsupported dtype.</exception>
    public static (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) LoadWithMetadata(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        long fileLength = fs.Length;
        if (fileLength < 8)
            throw Fail(path, null, null, $"file is {fileLength} bytes long, shorter than the 8-byte header length prefix; expected at least 8 bytes", 0);
        Span<byte> prefix = stackalloc byte[8];
        ReadExactly(fs, prefix, path, 0);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (n > (ulong)(fileLength - 8))
            throw Fail(path, null, null, $"header length (the 8-byte prefix) is {n} bytes, larger than the {fileLength - 8} bytes that follow it (file length {fileLength}); the file is truncated or not a safetensors file", 0);
        if ((long)n > MaxHeaderSize)
            throw Fail(path, null, null, $"header length is {n} bytes, more than the {MaxHeaderSize}-byte limit", 0);

        var header = new byte[(int)n];
        ReadExactly(fs, header, path, 8);
        var (entries, metadata) = ParseHeader(path, header);

        long dataStart = 8 + (long)n;
        long bufferLength = fileLength - dataStart;
        Validate(path, entries, dataStart, bufferLength, fileLength);

        var tensors = new Dictionary<string, Tensor>(entries.Count, StringComparer.Ordinal);
        foreach (var e in entries) tensors.Add(e.Name, ReadTensor(fs, path, e, dataStart));
        return (tensors, metadata);
    }

    /// <summary>One tensor entry of the header, with the header byte positions used in error messages.</summary>
    private sealed class Entry
    {
        public required string Name;
        public required int Index;
        public required long Position;
        public string? DType;
        public long DTypePosition;
        public long[]? Shape;
        public long ShapePosition;
        public long Begin, End;
        public bool HasOffsets;
        public long OffsetsPosition;
        public Src Kind;
        public int ElementSize;
        public int Numel;
    }

    private static CheckpointException Fail(string path, string? key, string? field, string detail, long? offset)
    {
        var where = key is null ? (field is null ? "" : $"field '{field}': ")
            : key == MetadataKey ? (field is null ? $"{MetadataKey}: " : $"{MetadataKey} entry '{field}': ")
            : field is null ? $"tensor '{key}': " : $"tensor '{key}', field '{field}': ";
        var at = offset is long o ? $" (file offset {o})" : "";
        return new CheckpointException($"safetensors file '{path}': {where}{detail}{at}", path, key, field, offset);
    }

    private static void ReadExactly(FileStream fs, Span<byte> buffer, string path, long offset)
    {
        try { fs.ReadExactly(buffer); }
        catch (EndOfStreamException e)
        {
            throw new CheckpointException($"safetensors file '{path}': unexpected end of file reading {buffer.Length} bytes (file offset {offset}); was the file modified while loading?", path, null, null, offset, e);
        }
    }

    // ---------------- header parsing

    private ref struct HeaderReader
    {
        public Utf8JsonReader Json;
        public string Path;

        /// <summary>File offset of the current token (the header starts at file offset 8).</summary>
        public readonly long Offset => 8 + Json.TokenStartIndex;

        public void Next()
        {
            if (!Json.Read())
                throw Fail(Path, null, null, $"header JSON ends unexpectedly after {Json.BytesConsumed} bytes", 8 + Json.BytesConsumed);
        }

        public string String(string? key, string? field)
        {
            try { return Json.GetString()!; }
            catch (InvalidOperationException e)
            {
                throw new CheckpointException($"safetensors file '{Path}': header holds an invalid JSON string ({e.Message}) (file offset {Offset})", Path, key, field, Offset, e);
            }
        }

        public string Describe()
        {
            switch (Json.TokenType)
            {
                case JsonTokenType.String:
                {
                    string s;
                    try { s = Json.GetString()!; } catch (InvalidOperationException) { s = "?"; }
                    return "string \"" + (s.Length > 40 ? s[..40] + "..." : s) + "\"";
                }
                case JsonTokenType.Number:
                {
                    var raw = Encoding.UTF8.GetString(Json.ValueSpan);
                    return "number " + (raw.Length > 40 ? raw[..40] + "..." : raw);
                }
                case JsonTokenType.True: return "true";
                case JsonTokenType.False: return "false";
                case JsonTokenType.Null: return "null";
                case JsonTokenType.StartObject: return "an object";
                case JsonTokenType.StartArray: return "an array";
                default: return Json.TokenType.ToString();
            }
        }
    }

    private static (List<Entry> Entries, Dictionary<string, string> Metadata) ParseHeader(string path, byte[] header)
    {
        CheckUtf8(path, header);
        var entries = new List<Entry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var r = new HeaderReader
        {
            Json = new Utf8JsonReader(header, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, AllowTrailingCommas = false, MaxDepth = 64 }),
            Path = path,
        };
        try
        {
            if (header.AsSpan().Trim(" \t\r\n"u8).IsEmpty)
                throw Fail(path, null, null, "header is empty; expected a JSON object", 8);
            r.Next();
            if (r.Json.TokenType != JsonTokenType.StartObject)
                throw Fail(path, null, null, $"header must be a JSON object, found {r.Describe()}", r.Offset);
            while (true)
            {
                r.Next();
                if (r.Json.TokenType == JsonTokenType.EndObject) break;
                long keyOffset = r.Offset;
                string key = r.String(null, null);
                if (!seen.Add(key))
                    throw Fail(path, key, null, "appears twice in the header; expected unique names", keyOffset);
                r.Next();
                if (key == MetadataKey) ParseMetadata(ref r, metadata);
                else entries.Add(ParseEntry(ref r, key, entries.Count, keyOffset));
            }
            // Utf8JsonReader rejects anything but whitespace after the top-level value.
            if (r.Json.Read())
                throw Fail(path, null, null, $"unexpected {r.Describe()} after the header object", r.Offset);
        }
        catch (JsonException e)
        {
            long line = e.LineNumber ?? 0, col = e.BytePositionInLine ?? 0;
            long pos = LineStart(header, line) + col;
            throw new CheckpointException(
                $"safetensors file '{path}': header is not valid JSON at header byte {pos} (line {line + 1}, byte {col} in line; file offset {8 + pos}): {e.Message}",
                path, null, null, 8 + pos, e);
        }
        return (entries, metadata);
    }

    private static long LineStart(byte[] header, long line)
    {
        long start = 0;
        for (int i = 0; i < header.Length && line > 0; i++)
            if (header[i] == (byte)'\n') { line--; start = i + 1; }
        return start;
    }

    private static void CheckUtf8(string path, byte[] header)
    {
        if (Utf8.IsValid(header)) return;
        var span = header.AsSpan();
        Span<char> chars = stackalloc char[1024];
        int pos = 0;
        while (true)
        {
            var status = Utf8.ToUtf16(span[pos..], chars, out int read, out _, replaceInvalidSequences: false, isFinalBlock: true);
            pos += read;
            if (status != System.Buffers.OperationStatus.DestinationTooSmall || read == 0) break;
        }
        throw Fail(path, null, null, $"header is not valid UTF-8: invalid byte 0x{header[Math.Min(pos, header.Length - 1)]:X2} at header byte {pos}", 8 + pos);
    }

    private static void ParseMetadata(ref HeaderReader r, Dictionary<string, string> metadata)
    {
        if (r.Json.TokenType != JsonTokenType.StartObject)
            throw Fail(r.Path, MetadataKey, null, $"expected an object of string to string, found {r.Describe()}", r.Offset);
        while (true)
        {
            r.Next();
            if (r.Json.TokenType == JsonTokenType.EndObject) return;
            long keyOffset = r.Offset;
            string key = r.String(MetadataKey, null);
            r.Next();
            if (r.Json.TokenType != JsonTokenType.String)
                throw Fail(r.Path, MetadataKey, key, $"expected a string value, found {r.Describe()}", r.Offset);
            if (!metadata.TryAdd(key, r.String(MetadataKey, key)))
                throw Fail(r.Path, MetadataKey, key, "key appears twice; expected unique keys", keyOffset);
        }
    }

    private static Entry ParseEntry(ref HeaderReader r, string name, int index, long keyOffset)
    {
        if (r.Json.TokenType != JsonTokenType.StartObject)
            throw Fail(r.Path, name, null, $"expected an object with \"dtype\", \"shape\" and \"data_offsets\", found {r.Describe()}", r.Offset);
        var e = new Entry { Name = name, Index = index, Position = keyOffset };
        long objectOffset = r.Offset;
        while (true)
        {
            r.Next();
            if (r.Json.TokenType == JsonTokenType.EndObject) break;
            string field = r.String(name, null);
            long fieldOffset = r.Offset;
            r.Next();
            switch (field)
            {
                case "dtype":
                    if (e.DType != null) throw Fail(r.Path, name, field, "field appears twice", fieldOffset);
                    if (r.Json.TokenType != JsonTokenType.String)
                        throw Fail(r.Path, name, field, $"expected a string such as \"F32\", found {r.Describe()}", r.Offset);
                    e.DTypePosition = r.Offset;
                    e.DType = r.String(name, field);
                    break;
                case "shape":
                {
                    if (e.Shape != null) throw Fail(r.Path, name, field, "field appears twice", fieldOffset);
                    if (r.Json.TokenType != JsonTokenType.StartArray)
                        throw Fail(r.Path, name, field, $"expected an array of non-negative integers, found {r.Describe()}", r.Offset);
                    e.ShapePosition = r.Offset;
                    var dims = new List<long>();
                    while (true)
                    {
                        r.Next();
                        if (r.Json.TokenType == JsonTokenType.EndArray) break;
                        if (r.Json.TokenType != JsonTokenType.Number || !r.Json.TryGetInt64(out long d))
                            throw Fail(r.Path, name, field, $"dimension {dims.Count}: expected a non-negative integer, found {r.Describe()}", r.Offset);
                        if (d < 0)
                            throw Fail(r.Path, name, field, $"dimension {dims.Count} is negative: expected a non-negative integer, found {d}", r.Offset);
                        if (d > int.MaxValue)
                            throw Fail(r.Path, name, field, $"dimension {dims.Count} is {d}, larger than the largest supported size {int.MaxValue}", r.Offset);
                        dims.Add(d);
                    }
                    e.Shape = [.. dims];
                    break;
                }
                case "data_offsets":
                {
                    if (e.HasOffsets) throw Fail(r.Path, name, field, "field appears twice", fieldOffset);
                    if (r.Json.TokenType != JsonTokenType.StartArray)
                        throw Fail(r.Path, name, field, $"expected [begin, end], found {r.Describe()}", r.Offset);
                    e.OffsetsPosition = r.Offset;
                    Span<long> v = stackalloc long[2];
                    int count = 0;
                    while (true)
                    {
                        r.Next();
                        if (r.Json.TokenType == JsonTokenType.EndArray) break;
                        if (count == 2)
                            throw Fail(r.Path, name, field, "expected exactly two offsets [begin, end], found more", e.OffsetsPosition);
                        if (r.Json.TokenType != JsonTokenType.Number || !r.Json.TryGetInt64(out long x) || x < 0)
                            throw Fail(r.Path, name, field, $"{(count == 0 ? "begin" : "end")}: expected a non-negative integer byte offset, found {r.Describe()}", r.Offset);
                        v[count++] = x;
                    }
                    if (count != 2)
                        throw Fail(r.Path, name, field, $"expected exactly two offsets [begin, end], found {count}", e.OffsetsPosition);
                    (e.Begin, e.End, e.HasOffsets) = (v[0], v[1], true);
                    break;
                }
                default:
                    r.Json.Skip(); // unknown fields are ignored, as by the reference implementation
                    break;
            }
        }
        if (e.DType is null) throw Fail(r.Path, name, "dtype", "missing field 'dtype'; expected e.g. \"dtype\": \"F32\"", objectOffset);
        if (e.Shape is null) throw Fail(r.Path, name, "shape", "missing field 'shape'; expected e.g. \"shape\": [2, 3]", objectOffset);
        if (!e.HasOffsets) throw Fail(r.Path, name, "data_offsets", "missing field 'data_offsets'; expected [begin, end]", objectOffset);
        return e;
    }

    // ---------------- consistency checks

    private static void Validate(string path, List<Entry> entries, long dataStart, long bufferLength, long fileLength)
    {
        foreach (var e in entries)
        {
            if (!Readable.TryGetValue(e.DType!, out var kind))
            {
                var supported = string.Join(", ", Readable.Keys);
                throw KnownUnsupported.Contains(e.DType!)
                    ? Fail(path, e.Name, "dtype", $"dtype \"{e.DType}\" is not supported by this loader; expected one of {supported}", e.DTypePosition)
                    : Fail(path, e.Name, "dtype", $"unknown dtype \"{e.DType}\"; expected one of {supported}", e.DTypePosition);
            }
            (e.Kind, e.ElementSize) = kind;

            long numel = 1; // saturates just above int.MaxValue; every dimension is at most int.MaxValue
            foreach (long d in e.Shape!) numel = Math.Min(numel * d, (long)int.MaxValue + 1);
            if (numel > int.MaxValue)
                throw Fail(path, e.Name, "shape", $"shape {ShapeStr(e.Shape)} has more than {int.MaxValue} elements, more than a tensor can hold", e.ShapePosition);
            e.Numel = (int)numel;

            if (e.Begin > e.End)
                throw Fail(path, e.Name, "data_offsets", $"begin {e.Begin} is greater than end {e.End}; expected begin <= end", e.OffsetsPosition);
            if (e.End > bufferLength)
                throw Fail(path, e.Name, "data_offsets",
                    $"[{e.Begin}, {e.End}] reaches past the end of the data buffer: expected end <= {bufferLength} (the data buffer starts at file offset {dataStart}, the file is {fileLength} bytes), found {e.End}; the file may be truncated",
                    dataStart + Math.Min(e.Begin, bufferLength));
            long expected = numel * e.ElementSize;
            if (e.End - e.Begin != expected)
                throw Fail(path, e.Name, "data_offsets",
                    $"shape {ShapeStr(e.Shape)} with dtype {e.DType} needs {expected} bytes ({numel} elements x {e.ElementSize} bytes), but data_offsets [{e.Begin}, {e.End}] span {e.End - e.Begin} bytes",
                    dataStart + e.Begin);
        }

        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End != b.End ? a.End.CompareTo(b.End) : a.Index.CompareTo(b.Index));
        long next = 0;
        Entry? previous = null;
        foreach (var e in entries)
        {
            if (e.Begin < next)
                throw Fail(path, e.Name, "data_offsets",
                    $"[{e.Begin}, {e.End}] overlaps tensor '{previous!.Name}' at [{previous.Begin}, {previous.End}]; expected begin {next}",
                    dataStart + e.Begin);
            if (e.Begin > next)
                throw Fail(path, e.Name, "data_offsets",
                    $"[{e.Begin}, {e.End}] leaves a gap of {e.Begin - next} bytes after {(previous is null ? "the start of the data buffer" : $"tensor '{previous.Name}' at [{previous.Begin}, {previous.End}]")}; expected begin {next} (tensors must cover the data buffer contiguously)",
                    dataStart + next);
            next = e.End;
            previous = e;
        }
        if (next != bufferLength)
            throw Fail(path, null, "data_offsets",
                $"tensors cover {next} bytes of the data buffer, but the file holds {bufferLength} bytes after the header; expected the offsets to cover the whole buffer ({bufferLength - next} unaccounted bytes at the end)",
                dataStart + next);
    }

    private static void SwapIfBigEndian(Span<int> s) { if (!BitConverter.IsLittleEndian) BinaryPrimitives.ReverseEndianness(s, s); }

    private static void SwapIfBigEndian(Span<long> s) { if (!BitConverter.IsLittleEndian) BinaryPrimitives.ReverseEndianness(s, s); }

    private static string ShapeStr(long[] shape) => "[" + string.Join(", ", shape) + "]";

    // ---------------- data

    private static Tensor ReadTensor(FileStream fs, string path, Entry e, long dataStart)
    {
        long offset = dataStart + e.Begin;
        fs.Position = offset;
        int n = e.Numel;
        int[] shape = Array.ConvertAll(e.Shape!, d => (int)d);
        switch (e.Kind)
        {
            case Src.F32:
            {
                var a = new float[n];
                ReadExactly(fs, MemoryMarshal.AsBytes(a.AsSpan()), path, offset);
                SwapIfBigEndian(MemoryMarshal.Cast<float, int>(a.AsSpan()));
                return Tensor.From(a, shape);
            }
            case Src.F64:
            {
                var a = new double[n];
                ReadExactly(fs, MemoryMarshal.AsBytes(a.AsSpan()), path, offset);
                SwapIfBigEndian(MemoryMarshal.Cast<double, long>(a.AsSpan()));
                return Tensor.From(a, shape);
            }
            case Src.I64:
            {
                var a = new long[n];
                ReadExactly(fs, MemoryMarshal.AsBytes(a.AsSpan()), path, offset);
                SwapIfBigEndian(a.AsSpan());
                return Tensor.From(a, shape);
            }
        }

        // Narrower dtypes are converted chunk by chunk, so no byte copy of the whole tensor is needed.
        int size = e.ElementSize;
        var buffer = new byte[(int)Math.Min((long)n * size, 1 << 20)];
        int perChunk = Math.Max(1, buffer.Length / size);
        float[]? f = e.Kind is Src.F16 or Src.BF16 ? new float[n] : null;
        long[]? l = f is null ? new long[n] : null;
        for (int start = 0; start < n; start += perChunk)
        {
            int count = Math.Min(perChunk, n - start);
            long chunkOffset = offset + (long)start * size;
            var s = buffer.AsSpan(0, count * size);
            ReadExactly(fs, s, path, chunkOffset);
            for (int i = 0; i < count; i++)
            {
                if (f is not null)
                {
                    ushort bits = BinaryPrimitives.ReadUInt16LittleEndian(s[(2 * i)..]);
                    f[start + i] = e.Kind == Src.F16 ? (float)BitConverter.UInt16BitsToHalf(bits) : BitConverter.Int32BitsToSingle(bits << 16);
                    continue;
                }
                l![start + i] = e.Kind switch
                {
                    Src.Bool => s[i] != 0 ? 1 : 0,
                    Src.U8 => s[i],
                    Src.I8 => (sbyte)s[i],
                    Src.I16 => BinaryPrimitives.ReadInt16LittleEndian(s[(2 * i)..]),
                    Src.U16 => BinaryPrimitives.ReadUInt16LittleEndian(s[(2 * i)..]),
                    Src.I32 => BinaryPrimitives.ReadInt32LittleEndian(s[(4 * i)..]),
                    Src.U32 => BinaryPrimitives.ReadUInt32LittleEndian(s[(4 * i)..]),
                    _ => ReadU64(s[(8 * i)..], path, e, chunkOffset + 8L * i, start + i),
                };
            }
        }
        return f is not null ? Tensor.From(f, shape) : Tensor.From(l!, shape);
    }

    private static long ReadU64(ReadOnlySpan<byte> s, string path, Entry e, long offset, int index)
    {
        ulong v = BinaryPrimitives.ReadUInt64LittleEndian(s);
        if (v > long.MaxValue)
            throw Fail(path, e.Name, null, $"U64 element {index} is {v}, which does not fit in Int64 (at most {long.MaxValue})", offset);
        return (long)v;
    }
}
