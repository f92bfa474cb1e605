namespace Autograd.Data;

/// <summary>Reader for the CIFAR-10 binary format (<c>data_batch_1.bin</c> ... <c>test_batch.bin</c>): records of 1 label
/// byte followed by 3,072 pixel bytes (1,024 red, 1,024 green, 1,024 blue, each plane 32x32 row-major).</summary>
public static class Cifar10
{
    /// <summary>Pixel bytes per image (3 x 32 x 32).</summary>
    public const int ImageBytes = 3 * 32 * 32;

    /// <summary>Bytes per record (label + image).</summary>
    public const int RecordBytes = 1 + ImageBytes;

    /// <summary>The class names, by label.</summary>
    public static IReadOnlyList<string> Classes { get; } =
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    /// <summary>Reads one binary batch file (plain or gzip-compressed).</summary>
    /// <returns>The images, <c>count * 3072</c> bytes in [C, H, W] order per image, and the labels 0..9.</returns>
    /// <exception cref="InvalidDataException">Empty file, a length that is not a whole number of records, or a label
    /// outside 0..9; the message names the file, the field, the expected value and the byte offset.</exception>
    public static (byte[] Images, byte[] Labels) Read(string path)
    {
        var content = DataFile.ReadAll(path, out bool gzip);
        if (content.Length == 0)
            throw DataFile.Corrupt(path, "record count", $"at least one {RecordBytes}-byte record", "an empty file", 0, gzip);
        if (content.Length % RecordBytes != 0)
        {
            int whole = content.Length / RecordBytes;
            throw DataFile.Corrupt(path, "file length", $"a multiple of {RecordBytes} bytes (1 label byte + {ImageBytes} pixel bytes per record)",
                $"{content.Length} bytes = {whole} records + {content.Length % RecordBytes} bytes; record {whole} is truncated", (long)whole * RecordBytes, gzip);
        }
        int n = content.Length / RecordBytes;
        var images = new byte[(long)n * ImageBytes];
        var labels = new byte[n];
        for (int i = 0; i < n; i++)
        {
            long offset = (long)i * RecordBytes;
            byte label = content[offset];
            if (label >= Classes.Count)
                throw DataFile.Corrupt(path, $"label of record {i}", $"0..{Classes.Count - 1}", label.ToString(), offset, gzip);
            labels[i] = label;
            Buffer.BlockCopy(content, (int)offset + 1, images, i * ImageBytes, ImageBytes);
        }
        return (images, labels);
    }

    /// <summary>Reads several batch files and concatenates them in the given order.</summary>
    public static (byte[] Images, byte[] Labels) Read(IEnumerable<string> paths)
    {
        var parts = paths.Select(Read).ToList();
        if (parts.Count == 1) return parts[0];
        var images = new byte[parts.Sum(p => (long)p.Images.Length)];
        var labels = new byte[parts.Sum(p => p.Labels.Length)];
        long io = 0; int lo = 0;
        foreach (var (im, lb) in parts)
        {
            Array.Copy(im, 0, images, io, im.Length);
            Array.Copy(lb, 0, labels, lo, lb.Length);
            io += im.Length; lo += lb.Length;
        }
        return (images, labels);
    }
}
