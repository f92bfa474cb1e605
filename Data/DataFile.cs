using System.Buffers.Binary;
using System.IO.Compression;

namespace Autograd.Data;

/// <summary>Reading whole data files (gzip detected by its magic bytes, not by the extension) and the
/// error messages every reader uses.</summary>
internal static class DataFile
{
    /// <summary>The content of <paramref name="path"/>, decompressed if it starts with the gzip magic 1f 8b.</summary>
    public static byte[] ReadAll(string path) => ReadAll(path, out _);

    /// <summary>As <see cref="ReadAll(string)"/>, telling whether the file was gzip-compressed.</summary>
    public static byte[] ReadAll(string path, out bool gzip)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        var raw = File.ReadAllBytes(path);
        gzip = IsGzip(raw);
        return gzip ? Gunzip(raw, path) : raw;
    }

    /// <summary>True if <paramref name="data"/> starts with the gzip magic bytes 1f 8b.</summary>
    public static bool IsGzip(ReadOnlySpan<byte> data) => data.Length >= 2 && data[0] == 0x1f && data[1] == 0x8b;

    /// <summary>Decompresses a whole gzip file (several members are concatenated, as gunzip does).</summary>
    public static byte[] Gunzip(byte[] raw, string path)
    {
        // ISIZE (the last 4 bytes) is the uncompressed size mod 2^32: a good first guess for the buffer.
        long hint = raw.Length >= 18 ? BinaryPrimitives.ReadUInt32LittleEndian(raw.AsSpan(raw.Length - 4)) : 0;
        try
        {
            using var gz = new GZipStream(new MemoryStream(raw, writable: false), CompressionMode.Decompress);
            if (hint > 0 && hint < Array.MaxLength)
            {
                var buffer = new byte[hint];
                int read = gz.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
                if (read == buffer.Length)
                {
                    int extra = gz.ReadByte();
                    if (extra < 0) return buffer;
                    // Longer than ISIZE said (over 4 GiB, or several members): fall back to a growing buffer.
                    var rest = new MemoryStream();
                    rest.Write(buffer);
                    rest.WriteByte((byte)extra);
                    gz.CopyTo(rest);
                    return rest.ToArray();
                }
                return buffer.AsSpan(0, read).ToArray();
            }
            var ms = new MemoryStream();
            gz.CopyTo(ms);
            return ms.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: gzip stream: expected valid gzip/deflate data, got an error while decompressing ({e.Message})", e);
        }
    }

    /// <summary>The error for a corrupt or truncated file: names the file, the field, the expected and the actual value,
    /// and where it is.</summary>
    public static InvalidDataException Corrupt(string file, string field, string expected, string actual, string? where = null) =>
        new($"{file}: {field}: expected {expected}, got {actual}{(where is null ? "" : $" ({where})")}");

    /// <summary>The error for a corrupt or truncated file at a byte offset of its content (of the decompressed content if
    /// <paramref name="gzip"/>).</summary>
    public static InvalidDataException Corrupt(string file, string field, string expected, string actual, long offset, bool gzip = false) =>
        Corrupt(file, field, expected, actual, gzip ? $"byte offset {offset} of the decompressed data" : $"byte offset {offset}");

    /// <summary>The first of <paramref name="names"/> (each also tried with ".gz") that exists under <paramref name="root"/>.</summary>
    public static string Find(string root, string what, params string[] names)
    {
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"{what}: directory '{root}' not found");
        var tried = new List<string>();
        foreach (var dir in new[] { root, Path.Combine(root, "raw") })
            foreach (var name in names)
                foreach (var candidate in new[] { name + ".gz", name })
                {
                    var p = Path.Combine(dir, candidate);
                    if (File.Exists(p)) return p;
                    tried.Add(p);
                }
        throw new FileNotFoundException($"{what}: none of these files exists: {string.Join(", ", tried)}");
    }
}
