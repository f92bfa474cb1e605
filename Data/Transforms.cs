namespace Autograd.Data;

/// <summary>A per-sample transform: takes one sample tensor [C, H, W] and returns a new one, like torchvision's transforms.
/// <see cref="DataLoader"/> applies it on its worker thread, in sample order, so seeded random transforms are reproducible.</summary>
public interface ITransform
{
    /// <summary>The transformed sample.</summary>
    Tensor Apply(Tensor sample);
}

/// <summary>A transform that keeps the sample's shape and can run in place on Float32 values; <see cref="DataLoader"/> then
/// applies it straight on the batch buffer (no tensor per sample). <see cref="ApplyInPlace"/> must give the same result, and draw
/// the same random numbers, as <see cref="ITransform.Apply"/>.</summary>
public interface IInPlaceTransform : ITransform
{
    /// <summary>Transforms one Float32 sample of <paramref name="shape"/> (row-major) in place.</summary>
    void ApplyInPlace(Span<float> sample, ReadOnlySpan<int> shape);
}

/// <summary>Converts 0..255 pixel values to Float32 in [0, 1] (torchvision's <c>ToTensor</c>): an Int64 tensor is divided by
/// 255; a float tensor is taken as already scaled and only converted to Float32.</summary>
public sealed class ToTensor : IInPlaceTransform
{
    /// <summary>Float32 samples are already scaled: nothing to do.</summary>
    public void ApplyInPlace(Span<float> sample, ReadOnlySpan<int> shape) { }

    /// <inheritdoc/>
    public Tensor Apply(Tensor sample)
    {
        if (sample.DType == DType.Int64)
        {
            var v = sample.ToLongArray();
            var f = new float[v.Length];
            for (int i = 0; i < v.Length; i++) f[i] = v[i] / 255f;
            return Tensor.From(f, sample.Shape);
        }
        return sample.DType == DType.Float32 ? sample : Tensor.From(sample.ToFloatArray(), sample.Shape);
    }

    /// <summary>Bytes (0..255) to a Float32 tensor [C, H, W] in [0, 1]. <paramref name="pixels"/> is height x width x channels
    /// (interleaved, as in an image file) unless <paramref name="channelsFirst"/>.</summary>
    public static Tensor FromBytes(ReadOnlySpan<byte> pixels, int channels, int height, int width, bool channelsFirst = false)
    {
        int hw = height * width;
        if (channels <= 0 || height <= 0 || width <= 0 || pixels.Length != channels * hw)
            throw new ArgumentException($"ToTensor.FromBytes: {channels}x{height}x{width} needs {channels * hw} bytes, got {pixels.Length}");
        var f = new float[pixels.Length];
        if (channelsFirst) for (int i = 0; i < f.Length; i++) f[i] = pixels[i] / 255f;
        else
            for (int i = 0; i < hw; i++)
                for (int c = 0; c < channels; c++)
                    f[c * hw + i] = pixels[i * channels + c] / 255f;
        return Tensor.From(f, channels, height, width);
    }
}

/// <summary>Per-channel <c>(x - mean[c]) / std[c]</c> on a [C, H, W] sample (torchvision's <c>Normalize</c>); one mean and
/// std apply to every channel.</summary>
public sealed class Normalize : IInPlaceTransform
{
    private readonly double[] mean, std;

    /// <summary>A normalization with one mean and standard deviation per channel (or one for all).</summary>
    public Normalize(double[] mean, double[] std)
    {
        if (mean.Length == 0 || mean.Length != std.Length)
            throw new ArgumentException($"Normalize: mean and std must have the same non-zero length, got {mean.Length} and {std.Length}");
        if (std.Any(s => s == 0 || double.IsNaN(s))) throw new ArgumentException($"Normalize: std must be non-zero, got [{string.Join(", ", std)}]");
        (this.mean, this.std) = ((double[])mean.Clone(), (double[])std.Clone());
    }

    /// <inheritdoc/>
    public Tensor Apply(Tensor sample)
    {
        if (sample.Rank < 1) throw new ArgumentException("Normalize: expected a [C, H, W] sample, got a 0-d tensor");
        int c = sample.Size(0);
        if (mean.Length != 1 && mean.Length != c)
            throw new ArgumentException($"Normalize: {mean.Length} means for a sample with {c} channels (shape [{string.Join(", ", sample.Shape)}])");
        int per = c == 0 ? 0 : sample.Numel / c;
        if (sample.DType == DType.Float64)
        {
            var d = sample.ToDoubleArray();
            for (int i = 0; i < d.Length; i++) { int k = mean.Length == 1 ? 0 : i / per; d[i] = (d[i] - mean[k]) / std[k]; }
            return Tensor.From(d, sample.Shape);
        }
        var f = sample.ToFloatArray();
        ApplyInPlace(f, sample.Shape);
        return Tensor.From(f, sample.Shape);
    }

    /// <inheritdoc/>
    public void ApplyInPlace(Span<float> sample, ReadOnlySpan<int> shape)
    {
        if (shape.Length < 1) throw new ArgumentException("Normalize: expected a [C, H, W] sample, got a 0-d tensor");
        int c = shape[0];
        if (mean.Length != 1 && mean.Length != c)
            throw new ArgumentException($"Normalize: {mean.Length} means for a sample with {c} channels (shape [{string.Join(", ", shape.ToArray())}])");
        int per = c == 0 ? 0 : sample.Length / c;
        for (int k = 0; k < c; k++)
        {
            int m = mean.Length == 1 ? 0 : k;
            float mu = (float)mean[m], sd = (float)std[m];   // sub then div, as torchvision's tensor.sub_(mean).div_(std)
            var span = sample.Slice(k * per, per);
            for (int i = 0; i < span.Length; i++) span[i] = (span[i] - mu) / sd;
        }
    }
}

/// <summary>Crops a random <c>height x width</c> window from the last two dimensions after zero-padding each side by
/// <c>padding</c> (torchvision's <c>RandomCrop(size, padding)</c>).</summary>
public sealed class RandomCrop : ITransform
{
    private readonly int height, width, padding;
    private readonly Generator generator;

    /// <summary>A square crop of <paramref name="size"/>.</summary>
    public RandomCrop(int size, int padding = 0, Generator? generator = null) : this(size, size, padding, generator) { }

    /// <summary>A <paramref name="height"/> x <paramref name="width"/> crop; <paramref name="generator"/> defaults to
    /// <see cref="Generator.Default"/>.</summary>
    public RandomCrop(int height, int width, int padding, Generator? generator = null)
    {
        if (height <= 0 || width <= 0) throw new ArgumentException($"RandomCrop: size must be positive, got {height}x{width}");
        if (padding < 0) throw new ArgumentException($"RandomCrop: padding must be non-negative, got {padding}");
        (this.height, this.width, this.padding, this.generator) = (height, width, padding, generator ?? Generator.Default);
    }

    /// <inheritdoc/>
    public Tensor Apply(Tensor sample)
    {
        if (sample.Rank < 2) throw new ArgumentException($"RandomCrop: expected a [..., H, W] sample, got shape [{string.Join(", ", sample.Shape)}]");
        var shape = sample.Shape;
        int h = shape[^2], w = shape[^1], ph = h + 2 * padding, pw = w + 2 * padding;
        if (ph < height || pw < width)
            throw new ArgumentException($"RandomCrop: crop {height}x{width} is larger than the padded sample {ph}x{pw}");
        int top = (int)generator.NextLong(ph - height + 1), left = (int)generator.NextLong(pw - width + 1);
        int lead = h * w == 0 ? 0 : sample.Numel / (h * w);
        shape[^2] = height;
        shape[^1] = width;
        return sample.DType switch
        {
            DType.Float64 => Tensor.From(Crop(sample.ToDoubleArray(), lead, h, w, top, left), shape),
            DType.Int64 => Tensor.From(Crop(sample.ToLongArray(), lead, h, w, top, left), shape),
            _ => Tensor.From(Crop(sample.ToFloatArray(), lead, h, w, top, left), shape),
        };
    }

    private T[] Crop<T>(T[] src, int lead, int h, int w, int top, int left)
    {
        var dst = new T[lead * height * width];
        int x0 = Math.Max(0, padding - left), x1 = Math.Min(width, w + padding - left);   // output columns inside the image
        for (int l = 0; l < lead; l++)
            for (int y = 0; y < height; y++)
            {
                int sy = top + y - padding;
                if (sy < 0 || sy >= h || x1 <= x0) continue;
                src.AsSpan(l * h * w + sy * w + left + x0 - padding, x1 - x0).CopyTo(dst.AsSpan(l * height * width + y * width + x0));
            }
        return dst;
    }
}

/// <summary>Mirrors the last dimension (width) with probability <c>p</c> (torchvision's <c>RandomHorizontalFlip</c>).</summary>
public sealed class RandomHorizontalFlip : IInPlaceTransform
{
    private readonly double p;
    private readonly Generator generator;

    /// <summary>A flip with probability <paramref name="p"/>; <paramref name="generator"/> defaults to <see cref="Generator.Default"/>.</summary>
    public RandomHorizontalFlip(double p = 0.5, Generator? generator = null)
    {
        if (!(p >= 0 && p <= 1)) throw new ArgumentException($"RandomHorizontalFlip: p must be in [0, 1], got {p}");
        (this.p, this.generator) = (p, generator ?? Generator.Default);
    }

    /// <inheritdoc/>
    public Tensor Apply(Tensor sample)
    {
        if (sample.Rank < 1) throw new ArgumentException("RandomHorizontalFlip: expected a [..., W] sample, got a 0-d tensor");
        if (!(generator.NextDouble() < p)) return sample;
        int w = sample.Size(-1);
        if (sample.DType == DType.Float64)
        {
            var d = sample.ToDoubleArray();
            for (int r = 0; r + w <= d.Length && w > 0; r += w) d.AsSpan(r, w).Reverse();
            return Tensor.From(d, sample.Shape);
        }
        if (sample.DType == DType.Int64)
        {
            var v = sample.ToLongArray();
            for (int r = 0; r + w <= v.Length && w > 0; r += w) v.AsSpan(r, w).Reverse();
            return Tensor.From(v, sample.Shape);
        }
        var f = sample.ToFloatArray();
        Mirror(f, w);
        return Tensor.From(f, sample.Shape);
    }

    /// <inheritdoc/>
    public void ApplyInPlace(Span<float> sample, ReadOnlySpan<int> shape)
    {
        if (shape.Length < 1) throw new ArgumentException("RandomHorizontalFlip: expected a [..., W] sample, got a 0-d tensor");
        if (generator.NextDouble() < p) Mirror(sample, shape[^1]);
    }

    private static void Mirror(Span<float> f, int w)
    {
        for (int r = 0; r + w <= f.Length && w > 0; r += w) f.Slice(r, w).Reverse();
    }
}

/// <summary>Applies transforms in order (torchvision's <c>Compose</c>).</summary>
public sealed class Compose : ITransform
{
    private readonly ITransform[] transforms;

    /// <summary>A pipeline of <paramref name="transforms"/>, applied first to last.</summary>
    public Compose(params ITransform[] transforms) => this.transforms = (ITransform[])transforms.Clone();

    /// <summary>The transforms, in the order they are applied.</summary>
    public IReadOnlyList<ITransform> Transforms => transforms;

    /// <inheritdoc/>
    public Tensor Apply(Tensor sample)
    {
        foreach (var t in transforms) sample = t.Apply(sample);
        return sample;
    }
}

/// <summary>A transform from a function (torchvision's <c>Lambda</c>).</summary>
public sealed class Lambda(Func<Tensor, Tensor> function) : ITransform
{
    /// <inheritdoc/>
    public Tensor Apply(Tensor sample) => function(sample);
}
