using System.Collections.Concurrent;
using System.IO.Compression;
using System.Runtime.CompilerServices;
using System.Text;
using Autograd.Data;

namespace Tests;

/// <summary>Dataset readers (IDX, CIFAR-10 binary, CSV, PNG), datasets, transforms and the DataLoader. Expected numbers for
/// the shipped datasets were read independently with Python's gzip + struct, or come from the data READMEs.</summary>
public class DataTests
{
    private static readonly Lazy<string> RepoRootLazy = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Autograd.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException($"no Autograd.sln above {AppContext.BaseDirectory}");
    });

    internal static string DataDir(string name) => Path.Combine(RepoRootLazy.Value, "data", name);

    private static readonly Lazy<TensorDataset> MnistTrain = new(() => Datasets.Mnist(DataDir("mnist"), train: true));

    private string dir = "";

    [SetUp]
    public void SetUp()
    {
        dir = Path.Combine(Path.GetTempPath(), "data-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
    }

    [TearDown]
    public void TearDown()
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }

    private string P(string name) => Path.Combine(dir, name);

    private static byte[] Gzip(byte[] data)
    {
        var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(data);
        return ms.ToArray();
    }

    private static byte[] BE32(int v) => [(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v];

    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    /// <summary>Asserts that <paramref name="act"/> throws InvalidDataException whose message contains every fragment.</summary>
    private static void AssertCorrupt(TestDelegate act, params string[] fragments)
    {
        var e = Assert.Throws<InvalidDataException>(act)!;
        foreach (var f in fragments) Assert.That(e.Message, Does.Contain(f), $"message: {e.Message}");
    }

    // ================================================================ shipped datasets

    [Test]
    public void Mnist_sizes_labels_and_pixels()
    {
        var train = MnistTrain.Value;
        var test = Datasets.Mnist(DataDir("mnist"), train: false);
        Assert.That(train.Count, Is.EqualTo(60000));
        Assert.That(test.Count, Is.EqualTo(10000));
        Assert.That(train.SampleShape, Is.EqualTo(new[] { 1, 28, 28 }));
        var (x0, y0) = train[0];
        Assert.That(y0, Is.EqualTo(5));
        Assert.That(test[0].Label, Is.EqualTo(7));
        Assert.That(x0.Shape, Is.EqualTo(new[] { 1, 28, 28 }));
        Assert.That(x0.DType, Is.EqualTo(DType.Float32));
        var px = x0.ToFloatArray();
        // python: gzip.open(train-images).read()[16:][5*28+16] == 126, [14*28+14] == 240, sum of image 0 == 27525
        Assert.That(px[5 * 28 + 16], Is.EqualTo(126f / 255f));
        Assert.That(px[14 * 28 + 14], Is.EqualTo(240f / 255f));
        Assert.That(px.Sum(v => Math.Round(v * 255)), Is.EqualTo(27525));

        // pixel range over the whole training set, and the per-class counts from data/mnist/README.md
        var buffer = new float[784];
        float min = float.MaxValue, max = float.MinValue;
        var counts = new int[10];
        for (int i = 0; i < train.Count; i++)
        {
            train.CopySample(i, buffer);
            foreach (var v in buffer) { if (v < min) min = v; if (v > max) max = v; }
            counts[train.LabelAt(i)]++;
        }
        Assert.That((min, max), Is.EqualTo((0f, 1f)));
        Assert.That(counts, Is.EqualTo(new[] { 5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949 }));
    }

    [Test]
    public void FashionMnist_sizes_and_first_labels()
    {
        var train = Datasets.FashionMnist(DataDir("fashion-mnist"), train: true);
        var test = Datasets.FashionMnist(DataDir("fashion-mnist"), train: false);
        Assert.That((train.Count, test.Count), Is.EqualTo((60000, 10000)));
        Assert.That(train[0].Label, Is.EqualTo(9));                                   // ankle boot
        Assert.That(Enumerable.Range(0, 5).Select(i => test.LabelAt(i)), Is.EqualTo(new long[] { 9, 2, 1, 1, 6 }));
        Assert.That(train[0].Input.ToFloatArray().Sum(v => Math.Round(v * 255)), Is.EqualTo(76247));   // python: sum of image 0
        Assert.That(train.Classes![9], Is.EqualTo("Ankle boot"));
    }

    [Test]
    public void Digits_csv()
    {
        var d = Datasets.Digits(Path.Combine(DataDir("sklearn-digits"), "digits.csv.gz"));
        Assert.That(d.Count, Is.EqualTo(1797));
        Assert.That(d.SampleShape, Is.EqualTo(new[] { 1, 8, 8 }));
        var labels = Enumerable.Range(0, d.Count).Select(d.LabelAt).ToArray();
        Assert.That(labels.Distinct().Order(), Is.EqualTo(Enumerable.Range(0, 10).Select(i => (long)i)));
        Assert.That(labels[..3], Is.EqualTo(new long[] { 0, 1, 2 }));
        // zcat digits.csv.gz | head -1: 0,0,5,13,9,1,0,0,...
        Assert.That(d[0].Input.ToFloatArray()[..8], Is.EqualTo(new[] { 0f, 0, 5, 13, 9, 1, 0, 0 }.Select(v => v / 16f)));
        var all = d.Inputs.ToFloatArray();
        Assert.That((all.Min(), all.Max()), Is.EqualTo((0f, 1f)));

        var (features, raw, rows, count) = Csv.ReadLabeled(Path.Combine(DataDir("sklearn-digits"), "digits.csv.gz"), 10);
        Assert.That((rows, count, features.Length, raw.Length), Is.EqualTo((1797, 64, 1797 * 64, 1797)));
    }

    [Test]
    public void Cifar10_subset()
    {
        var d = Datasets.Cifar10(Path.Combine(DataDir("cifar10-subset"), "data_batch_1.first200.bin"));
        Assert.That(d.Count, Is.EqualTo(200));
        Assert.That(d.SampleShape, Is.EqualTo(new[] { 3, 32, 32 }));
        // data/cifar10-subset/README.md: first labels frog, truck, truck, deer, automobile, automobile, bird, horse, ship, cat
        Assert.That(Enumerable.Range(0, 10).Select(d.LabelAt), Is.EqualTo(new long[] { 6, 9, 9, 4, 1, 1, 2, 7, 8, 3 }));
        Assert.That(d.Classes![6], Is.EqualTo("frog"));
        var red = d[0].Input.ToFloatArray();
        Assert.That(red[..4].Select(v => (int)Math.Round(v * 255)), Is.EqualTo(new[] { 59, 43, 50, 68 }));
        var counts = new int[10];
        for (int i = 0; i < d.Count; i++) counts[d.LabelAt(i)]++;
        Assert.That(counts, Is.EqualTo(new[] { 14, 28, 22, 21, 19, 19, 18, 21, 15, 23 }));
        // the directory form finds data_batch_*.bin
        Assert.That(Datasets.Cifar10(DataDir("cifar10-subset")).Count, Is.EqualTo(200));
    }

    // ================================================================ IDX

    [Test]
    public void Idx_ubyte_plain_and_gzip_detected_by_magic_not_extension()
    {
        var file = Concat([0, 0, 0x08, 2], BE32(2), BE32(3), [1, 2, 3, 250, 251, 255]);
        File.WriteAllBytes(P("plain.gz"), file);              // misleading extension: not gzip
        File.WriteAllBytes(P("packed.idx"), Gzip(file));      // gzip without .gz
        foreach (var name in new[] { "plain.gz", "packed.idx" })
        {
            var idx = Idx.Read(P(name));
            Assert.That(idx.Type, Is.EqualTo(IdxType.UInt8));
            Assert.That(idx.Dims, Is.EqualTo(new[] { 2, 3 }));
            Assert.That(idx.Bytes, Is.EqualTo(new byte[] { 1, 2, 3, 250, 251, 255 }));
            Assert.That(idx.ToFloatArray(), Is.EqualTo(new float[] { 1, 2, 3, 250, 251, 255 }));
        }
    }

    [Test]
    public void Idx_every_type_is_big_endian()
    {
        (byte code, byte[] data, double[] expected)[] cases =
        [
            (0x09, [0xFF, 0x80, 0x7F], [-1, -128, 127]),
            (0x0B, [0x01, 0x02, 0xFF, 0xFE, 0x00, 0x05], [258, -2, 5]),
            (0x0C, [0x00, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF], [65536, -1, int.MaxValue]),
            (0x0D, [0x3F, 0x80, 0x00, 0x00, 0xC0, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], [1.0, -2.5, 0]),
            (0x0E, [0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18, 0x80, 0, 0, 0, 0, 0, 0, 0], [1.0, Math.PI, -0.0]),
        ];
        foreach (var (code, data, expected) in cases)
        {
            var path = P($"t{code:X2}.idx");
            File.WriteAllBytes(path, Concat([0, 0, code, 1], BE32(3), data));
            var idx = Idx.Read(path);
            Assert.That((byte)idx.Type, Is.EqualTo(code));
            Assert.That(idx.Dims, Is.EqualTo(new[] { 3 }));
            Assert.That(idx.ToDoubleArray(), Is.EqualTo(expected), $"type 0x{code:X2}");
        }
        Assert.That(Idx.Read(P("t0C.idx")).ToInt64Array(), Is.EqualTo(new long[] { 65536, -1, int.MaxValue }));
        Assert.Throws<InvalidOperationException>(() => Idx.Read(P("t0D.idx")).ToInt64Array());
    }

    [Test]
    public void Idx_corrupt_files_name_file_field_and_offset()
    {
        void Write(string name, byte[] content) => File.WriteAllBytes(P(name), content);
        Write("magic.idx", Concat([0x12, 0x34, 0x08, 1], BE32(1), [7]));
        AssertCorrupt(() => Idx.Read(P("magic.idx")), P("magic.idx"), "magic number", "0x0000", "0x1234", "byte offset 0");
        Write("type.idx", Concat([0, 0, 0x07, 1], BE32(1), [7]));
        AssertCorrupt(() => Idx.Read(P("type.idx")), P("type.idx"), "type code", "0x07", "byte offset 2");
        Write("short.idx", Concat([0, 0, 0x08, 3], BE32(10), BE32(28)));
        AssertCorrupt(() => Idx.Read(P("short.idx")), P("short.idx"), "dimension sizes", "truncated", "byte offset 4");
        Write("trunc.idx", Concat([0, 0, 0x0B, 2], BE32(2), BE32(2), [1, 2, 3]));
        AssertCorrupt(() => Idx.Read(P("trunc.idx")), P("trunc.idx"), "data length", "expected 8 bytes", "got 3 bytes", "truncated", "byte offset 12");
        Write("long.idx", Concat([0, 0, 0x08, 1], BE32(2), [1, 2, 3]));
        AssertCorrupt(() => Idx.Read(P("long.idx")), P("long.idx"), "data length", "expected 2 bytes", "trailing data");
        Write("neg.idx", Concat([0, 0, 0x08, 1], BE32(-5)));
        AssertCorrupt(() => Idx.Read(P("neg.idx")), P("neg.idx"), "size of dimension 0", "-5", "byte offset 4");
        Write("tiny.idx", [0, 0]);
        AssertCorrupt(() => Idx.Read(P("tiny.idx")), P("tiny.idx"), "magic number");
        // a gzip file cut in the middle
        var gz = Gzip(Concat([0, 0, 0x08, 1], BE32(5000), Enumerable.Range(0, 5000).Select(i => (byte)(i * 7)).ToArray()));
        Write("cut.idx.gz", gz[..(gz.Length / 2)]);
        AssertCorrupt(() => Idx.Read(P("cut.idx.gz")), P("cut.idx.gz"));
    }

    private void WriteMnist(string folder, byte[] labels, int count, byte imageType = 0x08)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "train-images-idx3-ubyte"),
            Concat([0, 0, imageType, 3], BE32(count), BE32(2), BE32(2), new byte[count * 4 * Idx.ElementSize((IdxType)imageType)]));
        File.WriteAllBytes(Path.Combine(folder, "train-labels-idx1-ubyte.gz"), Gzip(Concat([0, 0, 0x08, 1], BE32(labels.Length), labels)));
    }

    [Test]
    public void Mnist_layout_checks_labels_counts_and_magic()
    {
        WriteMnist(P("ok"), [3, 1, 4, 1], 4);
        var d = Datasets.Mnist(P("ok"));
        Assert.That((d.Count, d.SampleShape), Is.EqualTo((4, new[] { 1, 2, 2 })));
        Assert.That(Enumerable.Range(0, 4).Select(d.LabelAt), Is.EqualTo(new long[] { 3, 1, 4, 1 }));

        WriteMnist(P("label"), [3, 1, 4, 10], 4);
        var labels = Path.Combine(P("label"), "train-labels-idx1-ubyte.gz");
        AssertCorrupt(() => Datasets.Mnist(P("label")), labels, "label 3", "0..9", "got 10", "byte offset 11");
        WriteMnist(P("count"), [3, 1, 4], 4);
        AssertCorrupt(() => Datasets.Mnist(P("count")), Path.Combine(P("count"), "train-labels-idx1-ubyte.gz"), "item count", "expected 4", "got 3");
        WriteMnist(P("magic"), [3, 1, 4, 1], 4, imageType: 0x0C);
        AssertCorrupt(() => Datasets.Mnist(P("magic")), Path.Combine(P("magic"), "train-images-idx3-ubyte"), "magic number", "2051");
        Assert.Throws<FileNotFoundException>(() => Datasets.Mnist(P("ok"), train: false));
    }

    // ================================================================ CIFAR-10 and CSV

    [Test]
    public void Cifar10_corrupt_files()
    {
        var rec = new byte[3073];
        rec[0] = 3;
        File.WriteAllBytes(P("ok.bin"), Concat(rec, rec));
        Assert.That(Cifar10.Read(P("ok.bin")).Labels, Is.EqualTo(new byte[] { 3, 3 }));
        File.WriteAllBytes(P("trunc.bin"), Concat(rec, rec[..100]));
        AssertCorrupt(() => Cifar10.Read(P("trunc.bin")), P("trunc.bin"), "file length", "multiple of 3073", "record 1 is truncated", "byte offset 3073");
        var bad = (byte[])rec.Clone();
        bad[0] = 10;
        File.WriteAllBytes(P("label.bin"), Concat(rec, bad));
        AssertCorrupt(() => Cifar10.Read(P("label.bin")), P("label.bin"), "label of record 1", "0..9", "got 10", "byte offset 3073");
        File.WriteAllBytes(P("empty.bin"), []);
        AssertCorrupt(() => Cifar10.Read(P("empty.bin")), P("empty.bin"), "record count");
    }

    [Test]
    public void Csv_header_gzip_and_errors()
    {
        File.WriteAllText(P("h.csv"), "a,b,label\r\n1,2,0\r\n3.5,4,2\r\n\r\n");
        var (f, y, rows, count) = Csv.ReadLabeled(P("h.csv"), numClasses: 3);
        Assert.That((rows, count), Is.EqualTo((2, 2)));
        Assert.That(f, Is.EqualTo(new[] { 1f, 2, 3.5f, 4 }));
        Assert.That(y, Is.EqualTo(new long[] { 0, 2 }));
        File.WriteAllBytes(P("g.csv.gz"), Gzip(Encoding.UTF8.GetBytes("1,2,1\n")));
        Assert.That(Csv.ReadLabeled(P("g.csv.gz"), 2).Labels, Is.EqualTo(new long[] { 1 }));

        File.WriteAllText(P("cols.csv"), "1,2,0\n1,2,3,0\n");
        AssertCorrupt(() => Csv.ReadLabeled(P("cols.csv"), 10), P("cols.csv"), "column count of line 2", "expected 3", "got 4");
        File.WriteAllText(P("nan.csv"), "1,2,0\n1,x,0\n");
        AssertCorrupt(() => Csv.ReadLabeled(P("nan.csv"), 10), P("nan.csv"), "line 2, column 2", "a number", "'x'");
        File.WriteAllText(P("label.csv"), "1,2,0\n1,2,12\n");
        AssertCorrupt(() => Csv.ReadLabeled(P("label.csv"), 10), P("label.csv"), "label (line 2, column 3)", "0..9", "got 12");
        File.WriteAllText(P("digits.csv"), string.Join(",", Enumerable.Repeat("17", 64)) + ",1\n");
        AssertCorrupt(() => Datasets.Digits(P("digits.csv")), P("digits.csv"), "pixel value", "0..16", "got 17");
        File.WriteAllText(P("few.csv"), "1,2,3\n");
        AssertCorrupt(() => Datasets.Digits(P("few.csv")), P("few.csv"), "column count of line 1", "expected 65");
    }

    // ================================================================ PNG

    /// <summary>CRC-32 computed bit by bit (independent of the decoder's table version).</summary>
    private static uint Crc(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFF;
        foreach (var b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ 0xEDB88320 : c >> 1;
        }
        return ~c;
    }

    private static byte[] Chunk(string type, byte[] data)
    {
        var td = Concat(Encoding.ASCII.GetBytes(type), data);
        return Concat(BE32(data.Length), td, BE32((int)Crc(td)));
    }

    private static byte[] Zlib(byte[] data)
    {
        var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, CompressionLevel.Optimal, leaveOpen: true)) z.Write(data);
        return ms.ToArray();
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    /// <summary>Filters raw scanlines (row y uses filter filters(y)) as a PNG encoder does.</summary>
    internal static byte[] FilterRows(byte[][] rows, int bpp, Func<int, int> filters)
    {
        var outp = new List<byte>();
        for (int y = 0; y < rows.Length; y++)
        {
            var cur = rows[y];
            var prev = y > 0 ? rows[y - 1] : new byte[cur.Length];
            int f = filters(y);
            outp.Add((byte)f);
            for (int i = 0; i < cur.Length; i++)
            {
                int a = i >= bpp ? cur[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
                int pred = f switch { 0 => 0, 1 => a, 2 => b, 3 => (a + b) / 2, 4 => Paeth(a, b, c), _ => 0 };
                outp.Add((byte)(cur[i] - pred));
            }
        }
        return outp.ToArray();
    }

    internal static byte[] MakePng(int width, int height, int depth, int colorType, byte[] filtered, byte[]? plte = null, byte[]? trns = null,
        int interlace = 0, params byte[][] extraChunks)
    {
        var ihdr = Concat(BE32(width), BE32(height), [(byte)depth, (byte)colorType, 0, 0, (byte)interlace]);
        var z = Zlib(filtered);
        int half = z.Length / 2;
        var parts = new List<byte[]> { new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 }, Chunk("IHDR", ihdr), Chunk("tEXt", Encoding.ASCII.GetBytes("Comment\0test")) };
        parts.AddRange(extraChunks);
        if (plte is not null) parts.Add(Chunk("PLTE", plte));
        if (trns is not null) parts.Add(Chunk("tRNS", trns));
        parts.Add(Chunk("IDAT", z[..half]));          // image data split over two IDAT chunks
        parts.Add(Chunk("IDAT", z[half..]));
        parts.Add(Chunk("IEND", []));
        return Concat(parts.ToArray());
    }

    [Test]
    public void Png_crc32_known_value()
    {
        Assert.That(Crc(Encoding.ASCII.GetBytes("123456789")), Is.EqualTo(0xCBF43926u));
    }

    [TestCase(0, 1)]
    [TestCase(2, 3)]
    [TestCase(4, 2)]
    [TestCase(6, 4)]
    public void Png_8bit_colour_types_with_all_five_filters(int colorType, int channels)
    {
        var rnd = new Random(colorType);
        int w = 7, h = 11;
        var rows = Enumerable.Range(0, h).Select(_ => { var r = new byte[w * channels]; rnd.NextBytes(r); return r; }).ToArray();
        var png = MakePng(w, h, 8, colorType, FilterRows(rows, channels, y => y % 5));
        var img = Png.Decode(png, "t.png");
        Assert.That((img.Width, img.Height, img.Channels), Is.EqualTo((w, h, channels)));
        Assert.That(img.Pixels, Is.EqualTo(rows.SelectMany(r => r).ToArray()));
        // [C, H, W] tensor in [0, 1]
        var t = img.ToTensor();
        Assert.That(t.Shape, Is.EqualTo(new[] { channels, h, w }));
        Assert.That(t.ToFloatArray()[1 * w + 2], Is.EqualTo(rows[1][2 * channels] / 255f));
    }

    [Test]
    public void Png_palette_with_and_without_transparency()
    {
        var rnd = new Random(3);
        int w = 9, h = 10, entries = 5;
        var plte = new byte[entries * 3];
        rnd.NextBytes(plte);
        var rows = Enumerable.Range(0, h).Select(_ => Enumerable.Range(0, w).Select(_ => (byte)rnd.Next(entries)).ToArray()).ToArray();
        var filtered = FilterRows(rows, 1, y => (y + 2) % 5);
        var rgb = Png.Decode(MakePng(w, h, 8, 3, filtered, plte), "p.png");
        Assert.That(rgb.Channels, Is.EqualTo(3));
        Assert.That(rgb.Pixels, Is.EqualTo(rows.SelectMany(r => r).SelectMany(i => plte.Skip(3 * i).Take(3)).ToArray()));
        byte[] alpha = [0, 100, 200];   // entries 3 and 4 have no alpha value: opaque
        var rgba = Png.Decode(MakePng(w, h, 8, 3, filtered, plte, alpha), "p.png");
        Assert.That(rgba.Channels, Is.EqualTo(4));
        Assert.That(rgba.Pixels, Is.EqualTo(rows.SelectMany(r => r)
            .SelectMany(i => plte.Skip(3 * i).Take(3).Append(i < alpha.Length ? alpha[i] : (byte)255)).ToArray()));
    }

    [Test]
    public void Png_trns_colour_key_adds_alpha_to_gray_and_rgb()
    {
        var gray = Png.Decode(MakePng(3, 1, 8, 0, [0, 5, 9, 5], trns: [0, 9]), "g.png");
        Assert.That((gray.Channels, gray.Pixels), Is.EqualTo((2, new byte[] { 5, 255, 9, 0, 5, 255 })));
        var rgb = Png.Decode(MakePng(2, 1, 8, 2, [0, 1, 2, 3, 4, 5, 6], trns: [0, 4, 0, 5, 0, 6]), "c.png");
        Assert.That((rgb.Channels, rgb.Pixels), Is.EqualTo((4, new byte[] { 1, 2, 3, 255, 4, 5, 6, 0 })));
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(4)]
    public void Png_low_bit_depth_gray_and_palette(int depth)
    {
        var rnd = new Random(depth);
        int w = 13, h = 6, max = (1 << depth) - 1;
        var values = Enumerable.Range(0, h).Select(_ => Enumerable.Range(0, w).Select(_ => rnd.Next(max + 1)).ToArray()).ToArray();
        byte[] Pack(int[] row)
        {
            var packed = new byte[(w * depth + 7) / 8];
            for (int x = 0; x < w; x++) packed[x * depth / 8] |= (byte)(row[x] << (8 - depth - x * depth % 8));
            return packed;
        }
        var filtered = FilterRows(values.Select(Pack).ToArray(), 1, y => y % 5);
        var gray = Png.Decode(MakePng(w, h, depth, 0, filtered), "g.png");
        Assert.That(gray.Pixels, Is.EqualTo(values.SelectMany(r => r).Select(v => (byte)(v * 255 / max)).ToArray()));
        var plte = Enumerable.Range(0, (max + 1) * 3).Select(i => (byte)(i * 11)).ToArray();
        var pal = Png.Decode(MakePng(w, h, depth, 3, filtered, plte), "p.png");
        Assert.That(pal.Pixels, Is.EqualTo(values.SelectMany(r => r).SelectMany(v => plte.Skip(3 * v).Take(3)).ToArray()));
    }

    [Test]
    public void Png_conversions_match_pil()
    {
        var img = new PngImage(2, 1, 4, [255, 0, 0, 128, 10, 200, 30, 255]);
        // PIL: Image.new('RGB', (1, 1), (255, 0, 0)).convert('L') -> 76; (10, 200, 30) -> 124
        Assert.That(img.Convert(1).Pixels, Is.EqualTo(new byte[] { 76, 124 }));
        Assert.That(img.Convert(3).Pixels, Is.EqualTo(new byte[] { 255, 0, 0, 10, 200, 30 }));
        Assert.That(new PngImage(1, 1, 1, [9]).Convert(4).Pixels, Is.EqualTo(new byte[] { 9, 9, 9, 255 }));
    }

    [Test]
    public void Png_corrupt_and_unsupported_files()
    {
        var rows = new[] { new byte[] { 1, 2, 3 }, new byte[] { 4, 5, 6 } };
        var good = MakePng(3, 2, 8, 0, FilterRows(rows, 1, _ => 0));
        Assert.That(Png.Decode(good, "good.png").Pixels, Is.EqualTo(new byte[] { 1, 2, 3, 4, 5, 6 }));

        var sig = (byte[])good.Clone();
        sig[1] = (byte)'Q';
        AssertCorrupt(() => Png.Decode(sig, "sig.png"), "sig.png", "PNG signature", "89 50 4E 47", "byte offset 0");

        var crc = (byte[])good.Clone();
        crc[16 + 3] ^= 1;   // a byte of the IHDR width; the chunk's CRC sits at 8 + 8 + 13 = 29
        AssertCorrupt(() => Png.Decode(crc, "crc.png"), "crc.png", "CRC of chunk 'IHDR'", "byte offset 29");

        var filter = MakePng(3, 2, 8, 0, [0, 1, 2, 3, 5, 4, 5, 6]);
        AssertCorrupt(() => Png.Decode(filter, "filter.png"), "filter.png", "filter type of row 1", "0..4", "got 5", "byte offset 4");

        AssertCorrupt(() => Png.Decode(good[..(good.Length - 20)], "cut.png"), "cut.png", "truncated");
        AssertCorrupt(() => Png.Decode(MakePng(3, 2, 8, 0, [0, 1, 2, 3]), "short.png"), "short.png", "decompressed IDAT size", "expected 8 bytes", "got 4");
        AssertCorrupt(() => Png.Decode(MakePng(2, 1, 8, 3, [0, 0, 7], [1, 2, 3]), "index.png"), "index.png", "palette index of pixel (1, 0)", "less than 1", "got 7");
        AssertCorrupt(() => Png.Decode(MakePng(3, 2, 8, 0, FilterRows(rows, 1, _ => 0), null, null, 0, Chunk("ABCD", [1])), "crit.png"),
            "crit.png", "critical chunk", "'ABCD'");
        AssertCorrupt(() => Png.Decode(MakePng(3, 2, 8, 5, new byte[8]), "ctype.png"), "ctype.png", "IHDR colour type", "got 5", "byte offset 25");
        var noIdat = Concat(good[..33], Chunk("IEND", []));
        AssertCorrupt(() => Png.Decode(noIdat, "noidat.png"), "noidat.png", "IDAT");

        var interlaced = Assert.Throws<NotSupportedException>(() => Png.Decode(MakePng(3, 2, 8, 0, new byte[8], interlace: 1), "i.png"))!;
        Assert.That(interlaced.Message, Does.Contain("i.png").And.Contain("interlace"));
        var deep = Assert.Throws<NotSupportedException>(() => Png.Decode(MakePng(3, 2, 16, 0, new byte[14]), "d.png"))!;
        Assert.That(deep.Message, Does.Contain("d.png").And.Contain("16-bit"));

        File.WriteAllBytes(P("f.png"), crc);
        AssertCorrupt(() => Png.Read(P("f.png")), P("f.png"), "CRC");
    }

    // ================================================================ ImageFolder

    private void WriteImage(string path, int w, int h, byte value, int colorType = 2)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        int ch = colorType == 2 ? 3 : 1;
        var rows = Enumerable.Range(0, h).Select(y => Enumerable.Range(0, w * ch).Select(i => (byte)(value + y + i)).ToArray()).ToArray();
        File.WriteAllBytes(path, MakePng(w, h, 8, colorType, FilterRows(rows, ch, y => y % 5)));
    }

    [Test]
    public void ImageFolder_classes_sorted_like_torchvision()
    {
        foreach (var (cls, n) in new[] { ("dog", 2), ("cat", 3), ("Zebra", 1), ("ant", 2) })
            for (int i = 0; i < n; i++) WriteImage(Path.Combine(P("root"), cls, $"{n - i}.png"), 4, 5, (byte)(10 * i));
        File.WriteAllText(Path.Combine(P("root"), "cat", "notes.txt"), "not an image");
        WriteImage(Path.Combine(P("root"), "dog", "nested", "x.PNG"), 4, 5, 0, colorType: 0);

        var ds = new ImageFolder(P("root"));
        Assert.That(ds.Classes, Is.EqualTo(new[] { "Zebra", "ant", "cat", "dog" }));    // ordinal, as Python's sorted()
        Assert.That(ds.ClassToIndex["cat"], Is.EqualTo(2));
        Assert.That(ds.Count, Is.EqualTo(9));
        Assert.That(ds.Samples.Select(s => s.Label), Is.EqualTo(new long[] { 0, 1, 1, 2, 2, 2, 3, 3, 3 }));
        Assert.That(Path.GetFileName(ds.Samples[3].Path), Is.EqualTo("1.png"));
        var (x, y) = ds[8];
        Assert.That((x.Shape, y), Is.EqualTo((new[] { 3, 5, 4 }, 3L)));                   // gray image converted to RGB

        var gray = new ImageFolder(P("root"), channels: 1);
        Assert.That(gray[0].Input.Shape, Is.EqualTo(new[] { 1, 5, 4 }));

        var batches = new DataLoader(ds, batchSize: 4).ToList();
        Assert.That(batches.Select(b => b.X.Shape[0]), Is.EqualTo(new[] { 4, 4, 1 }));
        Assert.That(batches[0].X.Shape, Is.EqualTo(new[] { 4, 3, 5, 4 }));

        Directory.CreateDirectory(Path.Combine(P("root"), "empty"));
        Assert.Throws<InvalidDataException>(() => _ = new ImageFolder(P("root")));
    }

    [Test]
    public void ImageFolder_corrupt_png_surfaces_through_the_loader()
    {
        WriteImage(Path.Combine(P("r"), "a", "1.png"), 2, 2, 0);
        var bytes = File.ReadAllBytes(Path.Combine(P("r"), "a", "1.png"));
        bytes[20] ^= 0xFF;
        File.WriteAllBytes(Path.Combine(P("r"), "a", "2.png"), bytes);
        var loader = new DataLoader(new ImageFolder(P("r")), batchSize: 1, prefetch: true);
        AssertCorrupt(() => loader.ToList(), Path.Combine(P("r"), "a", "2.png"), "CRC of chunk 'IHDR'");
    }

    // ================================================================ datasets and splits

    /// <summary>Sample i is the scalar i (shape [1, 1, 1]) with label i % 10; records the threads that load samples.</summary>
    private sealed class Probe(int count, int throwAt = -1, int delayMs = 0) : IDataset
    {
        public readonly ConcurrentDictionary<Thread, int> Threads = new();
        public int Loaded;

        public int Count => count;

        public (Tensor Input, long Label) this[int index]
        {
            get
            {
                Threads.TryAdd(Thread.CurrentThread, 0);
                Interlocked.Increment(ref Loaded);
                if (delayMs > 0) Thread.Sleep(delayMs);
                if (index == throwAt) throw new InvalidDataException($"boom at sample {index}");
                return (Tensor.From([(float)index], 1, 1, 1), index % 10);
            }
        }
    }

    private static TensorDataset Range(int n) =>
        new(Tensor.Arange(n).Reshape(n, 1, 1, 1), Tensor.From(Enumerable.Range(0, n).Select(i => (long)(i % 10)).ToArray(), n));

    private static int[] Ids(IEnumerable<(Tensor X, Tensor Y)> batches) =>
        batches.SelectMany(b => b.X.ToFloatArray().Select(v => (int)v)).ToArray();

    [Test]
    public void TensorDataset_and_subset()
    {
        var ds = Range(10);
        Assert.That(ds[7].Input.ToFloatArray(), Is.EqualTo(new[] { 7f }));
        Assert.That(ds[7].Label, Is.EqualTo(7));
        Assert.That(ds.Inputs.Shape, Is.EqualTo(new[] { 10, 1, 1, 1 }));
        Assert.That(ds.Labels.ToLongArray()[3], Is.EqualTo(3));
        var sub = new Subset(ds, [9, 2, 5]);
        Assert.That(sub.Count, Is.EqualTo(3));
        Assert.That(sub[1].Input.ToFloatArray(), Is.EqualTo(new[] { 2f }));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new Subset(ds, [10]));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = ds[10]);
        Assert.Throws<ArgumentException>(() => _ = new TensorDataset(Tensor.Zeros(3, 2), Tensor.From(new long[] { 1, 2 }, 2)));
        var bytes = TensorDataset.FromBytes([0, 255, 51, 102], [0, 1], [1, 2]);
        Assert.That(bytes[1].Input.ToFloatArray(), Is.EqualTo(new[] { 0.2f, 0.4f }));
    }

    [Test]
    public void RandomSplit_lengths_fractions_disjoint_and_seeded()
    {
        var ds = Range(10);
        var parts = Datasets.RandomSplit(ds, [3, 7], seed: 1);
        Assert.That(parts.Select(p => p.Count), Is.EqualTo(new[] { 3, 7 }));
        Assert.That(parts.SelectMany(p => p.Indices).Order(), Is.EqualTo(Enumerable.Range(0, 10)));
        Assert.That(Datasets.RandomSplit(ds, [3, 7], seed: 1)[0].Indices, Is.EqualTo(parts[0].Indices));
        Assert.That(Datasets.RandomSplit(ds, [3, 7], seed: 2)[1].Indices, Is.Not.EqualTo(parts[1].Indices));
        // PyTorch: floor(0.33 * 10) = 3 each, the remaining 1 goes to the first split
        Assert.That(Datasets.RandomSplit(ds, [0.33, 0.33, 0.34], seed: 0).Select(p => p.Count), Is.EqualTo(new[] { 4, 3, 3 }));
        Assert.Throws<ArgumentException>(() => Datasets.RandomSplit(ds, [3, 6], 0));
        Assert.Throws<ArgumentException>(() => Datasets.RandomSplit(ds, [0.5, 0.6], 0));
        // the loader reads through the subset mapping
        Assert.That(Ids(new DataLoader(parts[1], batchSize: 4)), Is.EqualTo(parts[1].Indices));
    }

    // ================================================================ DataLoader

    [Test]
    public void DataLoader_mnist_batch_shapes_and_drop_last()
    {
        var mnist = MnistTrain.Value;
        var loader = new DataLoader(mnist, batchSize: 64, shuffle: true, seed: 0);
        Assert.That(loader.Count, Is.EqualTo(938));
        Assert.That(new DataLoader(mnist, batchSize: 64, dropLast: true).Count, Is.EqualTo(937));
        var (x, y) = loader.First();
        Assert.That(x.Shape, Is.EqualTo(new[] { 64, 1, 28, 28 }));
        Assert.That((x.DType, y.DType), Is.EqualTo((DType.Float32, DType.Int64)));
        Assert.That(y.Shape, Is.EqualTo(new[] { 64 }));

        var small = Range(10);
        Assert.That(new DataLoader(small, batchSize: 4).Select(b => b.X.Shape[0]), Is.EqualTo(new[] { 4, 4, 2 }));
        Assert.That(new DataLoader(small, batchSize: 4, dropLast: true).Select(b => b.Y.Shape[0]), Is.EqualTo(new[] { 4, 4 }));
        Assert.That(new DataLoader(small, batchSize: 4, dropLast: true).Count, Is.EqualTo(2));
        Assert.That(new DataLoader(small, batchSize: 20, dropLast: true).ToList(), Is.Empty);
        foreach (var prefetch in new[] { true, false })
        {
            var all = new DataLoader(small, batchSize: 3, prefetch: prefetch).ToList();   // batches kept: each owns its data
            Assert.That(Ids(all), Is.EqualTo(Enumerable.Range(0, 10)));                  // no shuffle: in order
        }
        var first = new DataLoader(small, batchSize: 3).First();
        Assert.That(first.Y.ToLongArray(), Is.EqualTo(new long[] { 0, 1, 2 }));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void DataLoader_every_sample_once_per_epoch(bool prefetch)
    {
        foreach (IDataset ds in new IDataset[] { Range(103), new Probe(103) })
        {
            var loader = new DataLoader(ds, batchSize: 8, shuffle: true, seed: 5, prefetch: prefetch);
            for (int epoch = 0; epoch < 3; epoch++)
            {
                var ids = Ids(loader);
                Assert.That(ids.Order(), Is.EqualTo(Enumerable.Range(0, 103)));
                Assert.That(ids, Is.Not.EqualTo(Enumerable.Range(0, 103)));
            }
            var dropped = Ids(new DataLoader(ds, batchSize: 8, shuffle: true, seed: 5, dropLast: true, prefetch: prefetch));
            Assert.That(dropped.Length, Is.EqualTo(96));
            Assert.That(dropped.Distinct().Count(), Is.EqualTo(96));
        }
    }

    [Test]
    public void DataLoader_shuffle_is_deterministic_per_seed_and_epoch()
    {
        var ds = Range(50);
        var a = new DataLoader(ds, batchSize: 10, shuffle: true, seed: 42);
        var b = new DataLoader(ds, batchSize: 10, shuffle: true, seed: 42, prefetch: false);
        var a0 = Ids(a); var a1 = Ids(a);
        var b0 = Ids(b); var b1 = Ids(b);
        Assert.That(a0, Is.EqualTo(b0));                       // same seed, same epoch: same order (prefetch or not)
        Assert.That(a1, Is.EqualTo(b1));
        Assert.That(a1, Is.Not.EqualTo(a0));                   // reshuffled every epoch
        Assert.That(a.Epoch, Is.EqualTo(2));
        a.Epoch = 0;
        Assert.That(Ids(a), Is.EqualTo(a0));                   // set_epoch replays
        Assert.That(a.Order(1), Is.EqualTo(a1));
        Assert.That(Ids(new DataLoader(ds, batchSize: 10, shuffle: true, seed: 43)), Is.Not.EqualTo(a0));
        // labels travel with their samples
        foreach (var (x, y) in new DataLoader(ds, batchSize: 7, shuffle: true, seed: 1))
            Assert.That(y.ToLongArray(), Is.EqualTo(x.ToFloatArray().Select(v => (long)v % 10)));
    }

    [Test]
    public void DataLoader_prefetch_worker_stops_when_enumeration_is_abandoned()
    {
        var probe = new Probe(1000);
        var loader = new DataLoader(probe, batchSize: 10, prefetch: true);
        foreach (var _ in loader) break;                       // leaves the foreach: Dispose cancels and joins the worker
        var workers = probe.Threads.Keys.Where(t => t != Thread.CurrentThread).ToArray();
        Assert.That(workers, Has.Length.EqualTo(1), "samples are loaded on one worker thread");
        Assert.That(workers[0].IsAlive, Is.False);
        int loaded = probe.Loaded;
        Assert.That(loaded, Is.LessThanOrEqualTo(40), "at most a few batches ahead");
        Thread.Sleep(50);
        Assert.That(probe.Loaded, Is.EqualTo(loaded));

        // finishing an epoch also ends the worker
        var full = new Probe(25);
        Assert.That(new DataLoader(full, batchSize: 10).Count(), Is.EqualTo(3));
        Assert.That(full.Threads.Keys.Where(t => t != Thread.CurrentThread).All(t => !t.IsAlive));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void StartAndDrop(DataLoader loader)
    {
        var e = loader.GetEnumerator();
        e.MoveNext();                                           // never disposed
    }

    [Test]
    public void DataLoader_abandoned_enumerator_without_dispose_stops_its_worker_when_collected()
    {
        var probe = new Probe(1000);
        StartAndDrop(new DataLoader(probe, batchSize: 10, prefetch: true));
        var worker = probe.Threads.Keys.Single(t => t != Thread.CurrentThread);
        for (int i = 0; i < 100 && worker.IsAlive; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            worker.Join(20);
        }
        Assert.That(worker.IsAlive, Is.False);
    }

    [TestCase(true)]
    [TestCase(false)]
    public void DataLoader_exception_in_a_sample_reaches_the_consumer(bool prefetch)
    {
        var probe = new Probe(100, throwAt: 37);
        var loader = new DataLoader(probe, batchSize: 10, prefetch: prefetch);
        int seen = 0;
        var e = Assert.Throws<InvalidDataException>(() => { foreach (var _ in loader) seen++; })!;
        Assert.That(e.Message, Is.EqualTo("boom at sample 37"));
        Assert.That(seen, Is.EqualTo(3));                       // the batches before the failing one were delivered
        Assert.That(probe.Threads.Keys.Where(t => t != Thread.CurrentThread).All(t => !t.IsAlive));
    }

    [Test]
    public void DataLoader_applies_the_transform_and_checks_batch_shapes()
    {
        var ds = Range(6);
        var loader = new DataLoader(ds, batchSize: 3, transform: new Lambda(t => t * 2));
        Assert.That(Ids(loader), Is.EqualTo(new[] { 0, 2, 4, 6, 8, 10 }));
        var ragged = new DataLoader(ds, batchSize: 3,
            transform: new Lambda(t => t.ToFloatArray()[0] == 1 ? Tensor.Zeros(1, 2, 2) : t));
        var e = Assert.Throws<InvalidOperationException>(() => ragged.ToList())!;
        Assert.That(e.Message, Does.Contain("sample 1 has shape [1, 2, 2]").And.Contain("[1, 1, 1]"));

        // seeded random transforms give the same batches with and without prefetch
        var mnist = new Subset(MnistTrain.Value, Enumerable.Range(0, 64));
        float[] Run(bool prefetch) => new DataLoader(mnist, batchSize: 16, shuffle: true, seed: 3, prefetch: prefetch,
                transform: new Compose(new RandomCrop(28, padding: 4, generator: new Generator(9)), new RandomHorizontalFlip(0.5, new Generator(10))))
            .SelectMany(b => b.X.ToFloatArray()).ToArray();
        Assert.That(Run(true), Is.EqualTo(Run(false)));
    }

    [Test]
    public void DataLoader_in_place_transforms_match_the_per_sample_path()
    {
        var mnist = new Subset(MnistTrain.Value, Enumerable.Range(0, 100));
        ITransform Pipeline(long seed) => new Compose(new ToTensor(), new RandomHorizontalFlip(0.5, new Generator(seed)), new Normalize([0.1307], [0.3081]));
        // Compose of in-place transforms: applied on the batch buffer; wrapped in a Lambda: one tensor per sample
        var fast = new DataLoader(mnist, batchSize: 32, shuffle: true, seed: 1, transform: Pipeline(4)).ToList();
        var slow = new DataLoader(mnist, batchSize: 32, shuffle: true, seed: 1, transform: new Lambda(Pipeline(4).Apply)).ToList();
        Assert.That(fast.Select(b => b.X.Shape[0]), Is.EqualTo(new[] { 32, 32, 32, 4 }));
        Assert.That(fast.SelectMany(b => b.X.ToFloatArray()), Is.EqualTo(slow.SelectMany(b => b.X.ToFloatArray())));
        Assert.That(fast.SelectMany(b => b.Y.ToLongArray()), Is.EqualTo(slow.SelectMany(b => b.Y.ToLongArray())));
        // and the values are (x - mean) / std of the raw pixels, some of them mirrored
        var raw = new DataLoader(mnist, batchSize: 32, shuffle: true, seed: 1).First().X.ToFloatArray();
        var first = fast[0].X.ToFloatArray();
        Assert.That(first[..784].Order(), Is.EqualTo(raw[..784].Select(v => (v - 0.1307f) / 0.3081f).Order()).Within(1e-6));
    }

    // ================================================================ transforms

    private static Tensor Sample(int c, int h, int w) => Tensor.Arange(1, 1 + c * h * w).Reshape(c, h, w);

    [Test]
    public void RandomCrop_keeps_size_and_takes_a_window_of_the_zero_padded_sample()
    {
        var x = Sample(2, 5, 6);
        var src = x.ToFloatArray();
        var crop = new RandomCrop(5, 6, padding: 2, new Generator(0));
        var offsets = new HashSet<(int, int)>();
        for (int trial = 0; trial < 40; trial++)
        {
            var y = crop.Apply(x);
            Assert.That(y.Shape, Is.EqualTo(new[] { 2, 5, 6 }));
            var v = y.ToFloatArray();
            // find the (top, left) in the padded 9x10 image this window came from
            var matches = new List<(int, int)>();
            for (int top = 0; top <= 4; top++)
                for (int left = 0; left <= 4; left++)
                {
                    bool ok = true;
                    for (int c = 0; c < 2 && ok; c++)
                        for (int i = 0; i < 5 && ok; i++)
                            for (int j = 0; j < 6 && ok; j++)
                            {
                                int sy = top + i - 2, sx = left + j - 2;
                                float expected = sy is >= 0 and < 5 && sx is >= 0 and < 6 ? src[c * 30 + sy * 6 + sx] : 0;
                                ok = v[c * 30 + i * 6 + j] == expected;
                            }
                    if (ok) matches.Add((top, left));
                }
            Assert.That(matches, Has.Count.EqualTo(1));
            offsets.Add(matches[0]);
        }
        Assert.That(offsets.Count, Is.GreaterThan(5), "the offsets vary");
        Assert.That(new RandomCrop(28, 4, new Generator(1)).Apply(Tensor.Rand([1, 28, 28], 0)).Shape, Is.EqualTo(new[] { 1, 28, 28 }));
        Assert.That(new RandomCrop(3, 0, new Generator(1)).Apply(Sample(1, 3, 3)).ToFloatArray(), Is.EqualTo(Sample(1, 3, 3).ToFloatArray()));
        Assert.Throws<ArgumentException>(() => new RandomCrop(10, 1, new Generator(1)).Apply(Sample(1, 3, 3)));
        // same seed, same crops
        Assert.That(new RandomCrop(4, 2, new Generator(7)).Apply(x).ToFloatArray(), Is.EqualTo(new RandomCrop(4, 2, new Generator(7)).Apply(x).ToFloatArray()));
    }

    [Test]
    public void RandomHorizontalFlip_p1_mirrors_p0_keeps()
    {
        var x = Sample(2, 2, 3);   // rows [1 2 3] [4 5 6] / [7 8 9] [10 11 12]
        Assert.That(new RandomHorizontalFlip(1, new Generator(0)).Apply(x).ToFloatArray(),
            Is.EqualTo(new float[] { 3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10 }));
        Assert.That(new RandomHorizontalFlip(0, new Generator(0)).Apply(x).ToFloatArray(), Is.EqualTo(x.ToFloatArray()));
        var gen = new Generator(3);
        var flips = Enumerable.Range(0, 200).Count(_ => new RandomHorizontalFlip(0.5, gen).Apply(x).ToFloatArray()[0] == 3);
        Assert.That(flips, Is.InRange(70, 130));
    }

    [Test]
    public void Normalize_ToTensor_and_Compose()
    {
        var x = Tensor.From([0f, 1, 0.5f, 0.25f], 2, 1, 2);
        var n = new Normalize([0.5, 0.25], [0.5, 2]).Apply(x).ToFloatArray();
        Assert.That(n, Is.EqualTo(new[] { -1f, 1, 0.125f, 0 }).Within(1e-6));
        Assert.That(new Normalize([0.5], [0.5]).Apply(x).ToFloatArray(), Is.EqualTo(new[] { -1f, 1, 0, -0.5f }).Within(1e-6));
        Assert.Throws<ArgumentException>(() => new Normalize([0.1, 0.2, 0.3], [1, 1, 1]).Apply(x));
        Assert.Throws<ArgumentException>(() => _ = new Normalize([0.1], [0]));

        var bytes = new ToTensor().Apply(Tensor.From(new long[] { 0, 51, 255 }, 1, 1, 3));
        Assert.That((bytes.DType, bytes.ToFloatArray()), Is.EqualTo((DType.Float32, new[] { 0f, 0.2f, 1f })));
        var hwc = ToTensor.FromBytes(new byte[] { 255, 0, 51, 0 }, channels: 2, height: 1, width: 2);   // pixels (255, 0), (51, 0)
        Assert.That(hwc.Shape, Is.EqualTo(new[] { 2, 1, 2 }));
        Assert.That(hwc.ToFloatArray(), Is.EqualTo(new[] { 1f, 0.2f, 0, 0 }));

        var pipeline = new Compose(new ToTensor(), new RandomHorizontalFlip(1, new Generator(0)), new Normalize([0.5], [0.5]));
        Assert.That(pipeline.Apply(Tensor.From(new long[] { 0, 255 }, 1, 1, 2)).ToFloatArray(), Is.EqualTo(new[] { 1f, -1f }));
    }
}
