namespace Autograd.Data;

/// <summary>A map-style dataset of labelled samples, like <c>torch.utils.data.Dataset</c>.</summary>
public interface IDataset
{
    /// <summary>Number of samples.</summary>
    int Count { get; }

    /// <summary>Sample <paramref name="index"/> (0 &lt;= index &lt; Count): an input tensor (e.g. [C, H, W] Float32) and its class label.</summary>
    (Tensor Input, long Label) this[int index] { get; }
}

/// <summary>A dataset whose samples are all Float32 of one shape and can be copied straight into a batch buffer;
/// <see cref="DataLoader"/> uses this to assemble batches without creating a tensor per sample.</summary>
public interface IArrayDataset : IDataset
{
    /// <summary>A copy of the shape of every sample (e.g. [1, 28, 28]).</summary>
    int[] SampleShape { get; }

    /// <summary>Writes sample <paramref name="index"/> (row-major, <c>product(SampleShape)</c> floats) into <paramref name="destination"/>.</summary>
    void CopySample(int index, Span<float> destination);

    /// <summary>The label of sample <paramref name="index"/>.</summary>
    long LabelAt(int index);
}

/// <summary>Samples held in memory: N inputs of one shape (Float32, or bytes scaled on access) and N Int64 labels,
/// like <c>torch.utils.data.TensorDataset(images, labels)</c>.</summary>
public sealed class TensorDataset : IArrayDataset
{
    private readonly float[]? floats;
    private readonly byte[]? bytes;
    private readonly float divisor;
    private readonly float[]? byteToFloat;   // byte value -> value / divisor (exact, and faster than dividing)
    private readonly long[] labels;
    private readonly int[] sampleShape;
    private readonly int sampleSize;

    /// <summary>A dataset over <paramref name="inputs"/> [N, ...] (Float32 or Float64; stored as Float32) and
    /// <paramref name="labels"/> [N] (Int64). The data is copied.</summary>
    public TensorDataset(Tensor inputs, Tensor labels, IReadOnlyList<string>? classes = null)
    {
        if (inputs.Rank < 1) throw new ArgumentException($"TensorDataset: inputs must have a leading sample dimension, got a 0-d tensor");
        if (!inputs.DType.Equals(DType.Float32) && !inputs.DType.Equals(DType.Float64))
            throw new ArgumentException($"TensorDataset: inputs must be Float32 or Float64, got {inputs.DType}");
        if (labels.DType != DType.Int64 || labels.Rank != 1 || labels.Size(0) != inputs.Size(0))
            throw new ArgumentException($"TensorDataset: labels must be an Int64 vector of {inputs.Size(0)} values (one per input), got {labels.DType} [{string.Join(", ", labels.Shape)}]");
        floats = inputs.ToFloatArray();
        this.labels = labels.ToLongArray();
        sampleShape = inputs.Shape[1..];
        sampleSize = Numel(sampleShape);
        Classes = classes;
    }

    private TensorDataset(byte[] bytes, float divisor, long[] labels, int[] sampleShape, IReadOnlyList<string>? classes)
    {
        (this.bytes, this.divisor, this.labels, this.sampleShape, Classes) = (bytes, divisor, labels, sampleShape, classes);
        sampleSize = Numel(sampleShape);
        byteToFloat = new float[256];
        for (int v = 0; v < 256; v++) byteToFloat[v] = v / divisor;
        if ((long)sampleSize * labels.Length != bytes.Length)
            throw new ArgumentException($"TensorDataset.FromBytes: {labels.Length} samples of shape [{string.Join(", ", sampleShape)}] need {(long)sampleSize * labels.Length} bytes, got {bytes.Length}");
    }

    /// <summary>A dataset over raw bytes (N samples of <paramref name="sampleShape"/>, row-major), kept as bytes (4x less memory
    /// than floats) and converted on access to Float32 <c>byte / divisor</c> (default 255, giving [0, 1] as torchvision's
    /// <c>ToTensor</c>). The arrays are not copied.</summary>
    public static TensorDataset FromBytes(byte[] pixels, long[] labels, int[] sampleShape, float divisor = 255f, IReadOnlyList<string>? classes = null)
    {
        if (!(divisor > 0) || float.IsInfinity(divisor)) throw new ArgumentException($"TensorDataset.FromBytes: divisor must be positive and finite, got {divisor}");
        if (sampleShape.Any(d => d <= 0)) throw new ArgumentException($"TensorDataset.FromBytes: sample shape must be positive, got [{string.Join(", ", sampleShape)}]");
        return new TensorDataset(pixels, divisor, labels, (int[])sampleShape.Clone(), classes);
    }

    private static int Numel(int[] shape) => shape.Aggregate(1, (a, b) => checked(a * b));

    /// <inheritdoc/>
    public int Count => labels.Length;

    /// <inheritdoc/>
    public int[] SampleShape => (int[])sampleShape.Clone();

    /// <summary>The class names by label, if known (e.g. CIFAR-10's "airplane", ...).</summary>
    public IReadOnlyList<string>? Classes { get; }

    /// <summary>All inputs as one Float32 tensor [N, ...] (a new tensor each call).</summary>
    public Tensor Inputs
    {
        get
        {
            var all = new float[(long)Count * sampleSize];
            for (int i = 0; i < Count; i++) CopySample(i, all.AsSpan(i * sampleSize, sampleSize));
            return Tensor.From(all, [Count, .. sampleShape]);
        }
    }

    /// <summary>All labels as an Int64 tensor [N] (a new tensor each call).</summary>
    public Tensor Labels => Tensor.From(labels, Count);

    /// <inheritdoc/>
    public (Tensor Input, long Label) this[int index]
    {
        get
        {
            Check(index);
            var x = new float[sampleSize];
            CopySample(index, x);
            return (Tensor.From(x, sampleShape), labels[index]);
        }
    }

    /// <inheritdoc/>
    public void CopySample(int index, Span<float> destination)
    {
        Check(index);
        if (destination.Length < sampleSize)
            throw new ArgumentException($"TensorDataset.CopySample: destination holds {destination.Length} floats, a sample has {sampleSize}");
        if (floats is not null) { floats.AsSpan(index * sampleSize, sampleSize).CopyTo(destination); return; }
        var src = bytes.AsSpan(index * sampleSize, sampleSize);
        var table = byteToFloat!;
        for (int i = 0; i < src.Length; i++) destination[i] = table[src[i]];
    }

    /// <inheritdoc/>
    public long LabelAt(int index) { Check(index); return labels[index]; }

    private void Check(int index)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index), $"TensorDataset: index {index} is out of range for {Count} samples");
    }
}

/// <summary>The samples of <see cref="Dataset"/> at <see cref="Indices"/>, like <c>torch.utils.data.Subset</c>.</summary>
public sealed class Subset : IDataset
{
    private readonly int[] indices;

    /// <summary>A view of <paramref name="dataset"/> at <paramref name="indices"/> (copied; each must be in range).</summary>
    public Subset(IDataset dataset, IEnumerable<int> indices)
    {
        Dataset = dataset;
        this.indices = indices.ToArray();
        foreach (var i in this.indices)
            if ((uint)i >= (uint)dataset.Count)
                throw new ArgumentOutOfRangeException(nameof(indices), $"Subset: index {i} is out of range for a dataset of {dataset.Count} samples");
    }

    /// <summary>The underlying dataset.</summary>
    public IDataset Dataset { get; }

    /// <summary>The indices into <see cref="Dataset"/>.</summary>
    public IReadOnlyList<int> Indices => indices;

    /// <inheritdoc/>
    public int Count => indices.Length;

    /// <inheritdoc/>
    public (Tensor Input, long Label) this[int index]
    {
        get
        {
            if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index), $"Subset: index {index} is out of range for {Count} samples");
            return Dataset[indices[index]];
        }
    }
}

/// <summary>Factories for the datasets shipped under <c>data/</c>, and <see cref="RandomSplit(IDataset, int[], long)"/>.</summary>
public static class Datasets
{
    /// <summary>The MNIST class names ("0" ... "9").</summary>
    public static IReadOnlyList<string> MnistClasses { get; } = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

    /// <summary>The Fashion-MNIST class names.</summary>
    public static IReadOnlyList<string> FashionMnistClasses { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>MNIST from <paramref name="root"/> (the four IDX files, gzip-compressed or not, as in <c>data/mnist</c>):
    /// 60,000 training or 10,000 test samples of shape [1, 28, 28] in [0, 1], labels 0..9.</summary>
    public static TensorDataset Mnist(string root, bool train = true) => IdxPair(root, train, "MNIST", MnistClasses);

    /// <summary>Fashion-MNIST from <paramref name="root"/> (same layout and shapes as <see cref="Mnist"/>).</summary>
    public static TensorDataset FashionMnist(string root, bool train = true) => IdxPair(root, train, "Fashion-MNIST", FashionMnistClasses);

    /// <summary>CIFAR-10 in the binary format: <paramref name="path"/> is one batch file, or a directory holding
    /// <c>data_batch_*.bin</c> (train) and <c>test_batch.bin</c>. Samples [3, 32, 32] in [0, 1], labels 0..9.</summary>
    public static TensorDataset Cifar10(string path, bool train = true)
    {
        IEnumerable<string> files;
        if (File.Exists(path)) files = [path];
        else if (Directory.Exists(path))
        {
            var found = train
                ? Directory.GetFiles(path, "data_batch_*.bin*").Order(StringComparer.Ordinal).ToArray()
                : Directory.GetFiles(path, "test_batch.bin*").ToArray();
            if (found.Length == 0)
                throw new FileNotFoundException($"CIFAR-10: no {(train ? "data_batch_*.bin" : "test_batch.bin")} file in '{path}'");
            files = found;
        }
        else throw new FileNotFoundException($"CIFAR-10: '{path}' is neither a file nor a directory", path);
        var (images, labels) = Autograd.Data.Cifar10.Read(files);
        return TensorDataset.FromBytes(images, Array.ConvertAll(labels, b => (long)b), [3, 32, 32], 255f, Autograd.Data.Cifar10.Classes);
    }

    /// <summary>scikit-learn's digits (<c>digits.csv.gz</c>: 64 pixel columns with values 0..16, then the label):
    /// 1,797 samples of shape [1, 8, 8] scaled by 1/16 to [0, 1], labels 0..9.</summary>
    public static TensorDataset Digits(string path)
    {
        var (features, labels, rows, count) = Csv.ReadLabeled(path, numClasses: 10, featureCount: 64);
        for (int i = 0; i < features.Length; i++)
        {
            float v = features[i];
            if (v < 0 || v > 16 || v != MathF.Floor(v))
                throw DataFile.Corrupt(path, $"pixel value (row {i / count + 1}, column {i % count + 1})", "an integer in 0..16", v.ToString(System.Globalization.CultureInfo.InvariantCulture));
            features[i] = v / 16f;
        }
        return new TensorDataset(Tensor.From(features, rows, 1, 8, 8), Tensor.From(labels, rows), MnistClasses);
    }

    private static TensorDataset IdxPair(string root, bool train, string what, IReadOnlyList<string> classes)
    {
        string prefix = train ? "train" : "t10k";
        string imagesPath = DataFile.Find(root, what, $"{prefix}-images-idx3-ubyte", $"{prefix}-images.idx3-ubyte");
        string labelsPath = DataFile.Find(root, what, $"{prefix}-labels-idx1-ubyte", $"{prefix}-labels.idx1-ubyte");
        var images = Idx.Read(imagesPath);
        var labels = Idx.Read(labelsPath);
        var d = images.Dims;
        if (images.Type != IdxType.UInt8 || d.Length != 3)
            throw DataFile.Corrupt(imagesPath, "magic number", "2051 (0x00000803: unsigned bytes, 3 dimensions)",
                $"{((byte)images.Type << 8) | d.Length} (0x0000{(byte)images.Type:X2}{d.Length:X2})", 0, images.Gzip);
        if (labels.Type != IdxType.UInt8 || labels.Dims.Length != 1)
            throw DataFile.Corrupt(labelsPath, "magic number", "2049 (0x00000801: unsigned bytes, 1 dimension)",
                $"{((byte)labels.Type << 8) | labels.Dims.Length} (0x0000{(byte)labels.Type:X2}{labels.Dims.Length:X2})", 0, labels.Gzip);
        if (labels.Count != d[0])
            throw DataFile.Corrupt(labelsPath, "item count", $"{d[0]} (the image count of {imagesPath})", labels.Count.ToString(), 4, labels.Gzip);
        var lb = labels.Bytes;
        var y = new long[lb.Length];
        for (int i = 0; i < lb.Length; i++)
        {
            if (lb[i] >= classes.Count)
                throw DataFile.Corrupt(labelsPath, $"label {i}", $"0..{classes.Count - 1}", lb[i].ToString(), 8 + i, labels.Gzip);
            y[i] = lb[i];
        }
        return TensorDataset.FromBytes(images.Bytes, y, [1, d[1], d[2]], 255f, classes);
    }

    /// <summary>Splits <paramref name="dataset"/> into non-overlapping random subsets of the given
    /// <paramref name="lengths"/> (which must sum to its size), like <c>torch.utils.data.random_split</c>.</summary>
    public static Subset[] RandomSplit(IDataset dataset, int[] lengths, long seed)
    {
        if (lengths.Any(l => l < 0)) throw new ArgumentException($"RandomSplit: lengths must be non-negative, got [{string.Join(", ", lengths)}]");
        if (lengths.Sum(l => (long)l) != dataset.Count)
            throw new ArgumentException($"RandomSplit: lengths [{string.Join(", ", lengths)}] sum to {lengths.Sum(l => (long)l)}, the dataset has {dataset.Count} samples");
        var perm = Permutation(dataset.Count, new Generator(seed));
        var result = new Subset[lengths.Length];
        int offset = 0;
        for (int k = 0; k < lengths.Length; k++)
        {
            result[k] = new Subset(dataset, perm.AsSpan(offset, lengths[k]).ToArray());
            offset += lengths[k];
        }
        return result;
    }

    /// <summary>Splits by <paramref name="fractions"/> (summing to 1): each gets floor(fraction * N) samples and the remainder
    /// is handed out one at a time to the first subsets, as PyTorch does.</summary>
    public static Subset[] RandomSplit(IDataset dataset, double[] fractions, long seed)
    {
        if (fractions.Any(f => f < 0 || f > 1 || double.IsNaN(f)) || Math.Abs(fractions.Sum() - 1) > 1e-6)
            throw new ArgumentException($"RandomSplit: fractions must be in [0, 1] and sum to 1, got [{string.Join(", ", fractions)}]");
        int n = dataset.Count;
        var lengths = fractions.Select(f => (int)Math.Floor(n * f)).ToArray();
        int remainder = n - lengths.Sum();
        for (int i = 0; i < remainder; i++) lengths[i % lengths.Length]++;
        return RandomSplit(dataset, lengths, seed);
    }

    /// <summary>A uniformly random permutation of 0..n-1 (Fisher-Yates).</summary>
    internal static int[] Permutation(int n, Generator generator)
    {
        var p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        for (int i = n - 1; i > 0; i--)
        {
            int j = (int)generator.NextLong(i + 1);
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }
}
