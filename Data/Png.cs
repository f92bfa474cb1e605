using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Autograd.Data;

/// <summary>A decoded image: 8-bit samples, interleaved (height x width x channels).</summary>
public sealed class PngImage
{
    /// <summary>An image over <paramref name="pixels"/> (height x width x channels bytes, not copied).</summary>
    public PngImage(int width, int height, int channels, byte[] pixels)
    {
        if (channels is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(channels), $"PngImage: channels must be 1..4, got {channels}");
        if ((long)width * height * channels != pixels.Length)
            throw new ArgumentException($"PngImage: {width}x{height}x{channels} needs {(long)width * height * channels} bytes, got {pixels.Length}");
        (Width, Height, Channels, Pixels) = (width, height, channels, pixels);
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA). Palette images decode to RGB, or RGBA with a tRNS chunk;
    /// a tRNS colour key on a gray or RGB image adds an alpha channel.</summary>
    public int Channels { get; }

    /// <summary>The samples, row-major, channels interleaved.</summary>
    public byte[] Pixels { get; }

    /// <summary>The image with <paramref name="channels"/> channels, converted as PIL's <c>Image.convert</c> does:
    /// 1 = L (ITU-R 601-2 luma), 2 = LA, 3 = RGB (alpha dropped), 4 = RGBA (opaque alpha added).</summary>
    public PngImage Convert(int channels)
    {
        if (channels == Channels) return this;
        if (channels is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(channels), $"PngImage.Convert: channels must be 1..4, got {channels}");
        int n = Width * Height, src = Channels;
        var outp = new byte[n * channels];
        for (int i = 0; i < n; i++)
        {
            int s = i * src;
            byte r, g, b, a;
            if (src <= 2) { r = g = b = Pixels[s]; a = src == 2 ? Pixels[s + 1] : (byte)255; }
            else { r = Pixels[s]; g = Pixels[s + 1]; b = Pixels[s + 2]; a = src == 4 ? Pixels[s + 3] : (byte)255; }
            int d = i * channels;
            switch (channels)
            {
                case 1: outp[d] = src <= 2 ? r : Luma(r, g, b); break;
                case 2: outp[d] = src <= 2 ? r : Luma(r, g, b); outp[d + 1] = a; break;
                case 3: outp[d] = r; outp[d + 1] = g; outp[d + 2] = b; break;
                default: outp[d] = r; outp[d + 1] = g; outp[d + 2] = b; outp[d + 3] = a; break;
            }
        }
        return new PngImage(Width, Height, channels, outp);
    }

    // PIL's fixed-point L = R * 299/1000 + G * 587/1000 + B * 114/1000, rounded.
    private static byte Luma(byte r, byte g, byte b) => (byte)((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);

    /// <summary>A Float32 tensor [C, H, W] with values in [0, 1] (like torchvision's <c>ToTensor</c>), converted to
    /// <paramref name="channels"/> channels first unless it is 0.</summary>
    public Tensor ToTensor(int channels = 0)
    {
        var img = channels == 0 ? this : Convert(channels);
        int c = img.Channels, hw = Width * Height;
        var data = new float[c * hw];
        var px = img.Pixels;
        for (int i = 0; i < hw; i++)
            for (int k = 0; k < c; k++)
                data[k * hw + i] = px[i * c + k] / 255f;
        return Tensor.From(data, c, Height, Width);
    }
}

/// <summary>A PNG decoder for 8-bit (and 1/2/4-bit gray and palette) non-interlaced images of every colour type:
/// grayscale, RGB, palette, grayscale + alpha and RGBA, with all five row filters. Every chunk's CRC is checked.</summary>
public static class Png
{
    private static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];

    /// <summary>Reads and decodes a PNG file.</summary>
    /// <exception cref="InvalidDataException">A corrupt file (bad signature, chunk length, CRC, header field, filter type,
    /// palette index, or zlib data); the message names the file, the field, the expected value and the byte offset.</exception>
    /// <exception cref="NotSupportedException">An interlaced or 16-bit image.</exception>
    public static PngImage Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found", path);
        return Decode(File.ReadAllBytes(path), path);
    }

    /// <summary>Decodes PNG bytes; <paramref name="name"/> is used in error messages.</summary>
    /// <exception cref="InvalidDataException">As <see cref="Read"/>.</exception>
    /// <exception cref="NotSupportedException">As <see cref="Read"/>.</exception>
    public static PngImage Decode(byte[] data, string name = "<png>")
    {
        if (data.Length < 8 || !data.AsSpan(0, 8).SequenceEqual(Signature))
            throw DataFile.Corrupt(name, "PNG signature", "89 50 4E 47 0D 0A 1A 0A",
                data.Length < 8 ? $"a file of {data.Length} bytes" : Convert.ToHexString(data, 0, 8), 0);

        int width = 0, height = 0, bitDepth = 0, colorType = -1;
        byte[]? palette = null, paletteAlpha = null, colorKey = null;
        var idat = new MemoryStream();
        bool seenIend = false, seenIdat = false;
        int pos = 8;
        while (!seenIend)
        {
            if (data.Length - pos < 12)
                throw DataFile.Corrupt(name, "chunk header", "a 12-byte chunk (length, type, CRC); the IEND chunk is missing",
                    $"{data.Length - pos} bytes before the end of the file (file truncated)", pos);
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(pos));
            var typeBytes = data.AsSpan(pos + 4, 4);
            foreach (var t in typeBytes)
                if (!((t >= 'A' && t <= 'Z') || (t >= 'a' && t <= 'z')))
                    throw DataFile.Corrupt(name, "chunk type", "four ASCII letters", Convert.ToHexString(typeBytes), pos + 4);
            string type = Encoding.ASCII.GetString(typeBytes);
            if (length > int.MaxValue || length > data.Length - pos - 12)
                throw DataFile.Corrupt(name, $"length of chunk '{type}'", $"at most {data.Length - pos - 12} bytes (what is left of the file)",
                    $"{length} (file truncated or length corrupt)", pos);
            int len = (int)length;
            var body = data.AsSpan(pos + 8, len);
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(pos + 8 + len));
            uint computed = Crc32.Compute(data.AsSpan(pos + 4, 4 + len));
            if (stored != computed)
                throw DataFile.Corrupt(name, $"CRC of chunk '{type}'", $"0x{computed:X8}", $"0x{stored:X8}", pos + 8 + len);
            if (colorType < 0 && type != "IHDR")
                throw DataFile.Corrupt(name, "first chunk", "IHDR", $"'{type}'", pos);

            switch (type)
            {
                case "IHDR":
                    if (colorType >= 0) throw DataFile.Corrupt(name, "IHDR chunk", "exactly one IHDR", "a second one", pos);
                    if (len != 13) throw DataFile.Corrupt(name, "length of chunk 'IHDR'", "13", len.ToString(), pos);
                    (width, height, bitDepth, colorType) = ReadHeader(name, body, pos + 8);
                    break;
                case "PLTE":
                    if (len == 0 || len % 3 != 0 || len > 768)
                        throw DataFile.Corrupt(name, "length of chunk 'PLTE'", "a multiple of 3 up to 768 (1 to 256 RGB entries)", len.ToString(), pos);
                    if (seenIdat) throw DataFile.Corrupt(name, "chunk order", "PLTE before the first IDAT", "PLTE after IDAT", pos);
                    palette = body.ToArray();
                    break;
                case "tRNS":
                    if (colorType == 3)
                    {
                        if (palette is null) throw DataFile.Corrupt(name, "chunk order", "PLTE before tRNS", "tRNS first", pos);
                        if (len > palette.Length / 3)
                            throw DataFile.Corrupt(name, "length of chunk 'tRNS'", $"at most {palette.Length / 3} (one alpha per palette entry)", len.ToString(), pos);
                        paletteAlpha = body.ToArray();
                    }
                    else if (colorType is 0 or 2)
                    {
                        int want = colorType == 0 ? 2 : 6;
                        if (len != want) throw DataFile.Corrupt(name, "length of chunk 'tRNS'", want.ToString(), len.ToString(), pos);
                        colorKey = body.ToArray();
                    }
                    break;
                case "IDAT":
                    if (colorType == 3 && palette is null)
                        throw DataFile.Corrupt(name, "chunk 'PLTE'", "a palette before the image data of a palette image", "IDAT first", pos);
                    idat.Write(body);
                    seenIdat = true;
                    break;
                case "IEND":
                    seenIend = true;
                    break;
                default:
                    if (char.IsUpper(type[0]))
                        throw DataFile.Corrupt(name, "critical chunk", "IHDR, PLTE, IDAT or IEND (other critical chunks cannot be skipped)", $"'{type}'", pos);
                    break;   // ancillary chunk: skip
            }
            pos += 12 + len;
        }
        if (!seenIdat) throw DataFile.Corrupt(name, "IDAT chunk", "at least one before IEND", "none");

        int channels = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, _ => 4 };
        long rowBytesLong = ((long)width * channels * bitDepth + 7) / 8;
        long totalLong = height * (rowBytesLong + 1);
        if (totalLong > Array.MaxLength || (long)width * height * 4 > Array.MaxLength)
            throw new NotSupportedException($"{name}: a {width}x{height} image is too large to decode into one .NET array");
        int rowBytes = (int)rowBytesLong;
        var raw = Inflate(name, idat, (int)totalLong, height, rowBytes);
        Unfilter(name, raw, height, rowBytes, Math.Max(1, channels * bitDepth / 8));
        return Expand(name, raw, width, height, bitDepth, colorType, rowBytes, palette, paletteAlpha, colorKey);
    }

    private static (int Width, int Height, int BitDepth, int ColorType) ReadHeader(string name, ReadOnlySpan<byte> h, int offset)
    {
        uint w = BinaryPrimitives.ReadUInt32BigEndian(h), ht = BinaryPrimitives.ReadUInt32BigEndian(h[4..]);
        if (w == 0 || w > int.MaxValue) throw DataFile.Corrupt(name, "IHDR width", "1..2^31-1", w.ToString(), offset);
        if (ht == 0 || ht > int.MaxValue) throw DataFile.Corrupt(name, "IHDR height", "1..2^31-1", ht.ToString(), offset + 4);
        int depth = h[8], color = h[9];
        int[] allowed = color switch
        {
            0 => [1, 2, 4, 8, 16],
            2 or 4 or 6 => [8, 16],
            3 => [1, 2, 4, 8],
            _ => throw DataFile.Corrupt(name, "IHDR colour type", "0 (gray), 2 (RGB), 3 (palette), 4 (gray + alpha) or 6 (RGBA)", color.ToString(), offset + 9),
        };
        if (!allowed.Contains(depth))
            throw DataFile.Corrupt(name, "IHDR bit depth", $"one of {string.Join(", ", allowed)} for colour type {color}", depth.ToString(), offset + 8);
        if (depth == 16)
            throw new NotSupportedException($"{name}: IHDR bit depth: 16-bit PNGs are not supported (8 bits per sample expected); convert the image to 8 bits");
        if (h[10] != 0) throw DataFile.Corrupt(name, "IHDR compression method", "0 (deflate)", h[10].ToString(), offset + 10);
        if (h[11] != 0) throw DataFile.Corrupt(name, "IHDR filter method", "0 (adaptive)", h[11].ToString(), offset + 11);
        if (h[12] == 1)
            throw new NotSupportedException($"{name}: IHDR interlace method: Adam7-interlaced PNGs are not supported (0, non-interlaced, expected); re-save the image without interlacing");
        if (h[12] != 0) throw DataFile.Corrupt(name, "IHDR interlace method", "0 (none) or 1 (Adam7)", h[12].ToString(), offset + 12);
        return ((int)w, (int)ht, depth, color);
    }

    private static byte[] Inflate(string name, MemoryStream idat, int expected, int height, int rowBytes)
    {
        idat.Position = 0;
        var raw = new byte[expected];
        int got;
        bool extra;
        try
        {
            using var z = new ZLibStream(idat, CompressionMode.Decompress);
            got = z.ReadAtLeast(raw, expected, throwOnEndOfStream: false);
            extra = got == expected && z.ReadByte() >= 0;
        }
        catch (InvalidDataException e)
        {
            throw DataFile.Corrupt(name, "IDAT zlib stream", "valid zlib data", $"a decompression error ({e.Message})");
        }
        if (got < expected || extra)
            throw DataFile.Corrupt(name, "decompressed IDAT size", $"{expected} bytes ({height} rows of 1 filter byte + {rowBytes} bytes)",
                got < expected ? $"{got} bytes (image data truncated)" : "more (trailing image data)");
        return raw;
    }

    /// <summary>Undoes the row filters in place (None, Sub, Up, Average, Paeth).</summary>
    private static void Unfilter(string name, byte[] raw, int height, int rowBytes, int bpp)
    {
        int stride = rowBytes + 1;
        for (int y = 0; y < height; y++)
        {
            int start = y * stride;
            int filter = raw[start];
            var cur = raw.AsSpan(start + 1, rowBytes);
            var prev = y > 0 ? raw.AsSpan(start + 1 - stride, rowBytes) : Span<byte>.Empty;
            switch (filter)
            {
                case 0: break;
                case 1:
                    for (int i = bpp; i < rowBytes; i++) cur[i] += cur[i - bpp];
                    break;
                case 2:
                    if (y > 0) for (int i = 0; i < rowBytes; i++) cur[i] += prev[i];
                    break;
                case 3:
                    for (int i = 0; i < rowBytes; i++)
                    {
                        int left = i >= bpp ? cur[i - bpp] : 0, up = y > 0 ? prev[i] : 0;
                        cur[i] += (byte)((left + up) >> 1);
                    }
                    break;
                case 4:
                    for (int i = 0; i < rowBytes; i++)
                    {
                        int a = i >= bpp ? cur[i - bpp] : 0, b = y > 0 ? prev[i] : 0, c = i >= bpp && y > 0 ? prev[i - bpp] : 0;
                        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
                        cur[i] += (byte)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
                    }
                    break;
                default:
                    throw DataFile.Corrupt(name, $"filter type of row {y}", "0..4 (None, Sub, Up, Average, Paeth)", filter.ToString(),
                        $"byte offset {start} of the decompressed image data");
            }
        }
    }

    private static PngImage Expand(string name, byte[] raw, int width, int height, int depth, int colorType, int rowBytes,
        byte[]? palette, byte[]? paletteAlpha, byte[]? colorKey)
    {
        int stride = rowBytes + 1;
        int inChannels = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, _ => 4 };
        int outChannels = colorType switch
        {
            0 => colorKey is null ? 1 : 2,
            2 => colorKey is null ? 3 : 4,
            3 => paletteAlpha is null ? 3 : 4,
            _ => inChannels,
        };
        var px = new byte[(long)width * height * outChannels];
        if (depth == 8 && outChannels == inChannels && colorType != 3)
        {
            for (int y = 0; y < height; y++) Buffer.BlockCopy(raw, y * stride + 1, px, y * rowBytes, rowBytes);
            return new PngImage(width, height, outChannels, px);
        }
        int entries = palette is null ? 0 : palette.Length / 3;
        int maxSample = (1 << depth) - 1, scale = 255 / maxSample;
        int key0 = colorKey is null ? -1 : BinaryPrimitives.ReadUInt16BigEndian(colorKey);
        for (int y = 0; y < height; y++)
        {
            int row = y * stride + 1;
            for (int x = 0; x < width; x++)
            {
                int o = (y * width + x) * outChannels;
                if (colorType == 2)
                {
                    int s = row + 3 * x;
                    px[o] = raw[s]; px[o + 1] = raw[s + 1]; px[o + 2] = raw[s + 2];
                    bool transparent = BinaryPrimitives.ReadUInt16BigEndian(colorKey) == raw[s]
                        && BinaryPrimitives.ReadUInt16BigEndian(colorKey.AsSpan(2)) == raw[s + 1]
                        && BinaryPrimitives.ReadUInt16BigEndian(colorKey.AsSpan(4)) == raw[s + 2];
                    px[o + 3] = transparent ? (byte)0 : (byte)255;
                    continue;
                }
                // one sample per pixel: gray or palette index, 1/2/4/8 bits, most significant bits first
                int bit = x * depth;
                int v = (raw[row + (bit >> 3)] >> (8 - depth - (bit & 7))) & maxSample;
                if (colorType == 3)
                {
                    if (v >= entries)
                        throw DataFile.Corrupt(name, $"palette index of pixel ({x}, {y})", $"less than {entries} (the PLTE size)", v.ToString(),
                            $"byte offset {row + (bit >> 3)} of the decompressed image data");
                    px[o] = palette![3 * v]; px[o + 1] = palette[3 * v + 1]; px[o + 2] = palette[3 * v + 2];
                    if (paletteAlpha is not null) px[o + 3] = v < paletteAlpha.Length ? paletteAlpha[v] : (byte)255;
                }
                else
                {
                    px[o] = (byte)(v * scale);
                    if (colorKey is not null) px[o + 1] = v == key0 ? (byte)0 : (byte)255;
                }
            }
        }
        return new PngImage(width, height, outChannels, px);
    }
}

/// <summary>CRC-32 (ISO-HDLC, polynomial 0xEDB88320), as used by PNG chunks, zlib's gzip and zip.</summary>
internal static class Crc32
{
    private static readonly uint[] Table = MakeTable();

    private static uint[] MakeTable()
    {
        var t = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }

    /// <summary>The CRC-32 of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }
}
