namespace Autograd;

/// <summary>A seeded pseudo-random generator (xoshiro256**), the same on every backend and platform,
/// so a seed reproduces the same tensors everywhere.</summary>
public sealed class Generator
{
    private ulong s0, s1, s2, s3;
    private double? spareNormal;

    private static Generator defaultGenerator = new(0);

    /// <summary>The generator ops use when none is passed (like PyTorch's default generator); seed it with <see cref="ManualSeed"/>.
    /// Not thread-safe: pass your own generator to ops called from several threads.</summary>
    public static Generator Default => defaultGenerator;

    /// <summary>Reseeds the default generator, like <c>torch.manual_seed</c>.</summary>
    public static void ManualSeed(long seed) => defaultGenerator = new Generator(seed);

    /// <summary>A generator whose stream is fixed by <paramref name="seed"/>.</summary>
    public Generator(long seed)
    {
        ulong x = (ulong)seed;
        // SplitMix64 expands the seed into the four state words, as the xoshiro authors recommend.
        ulong Next() { x += 0x9E3779B97F4A7C15; ulong z = x; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31); }
        s0 = Next(); s1 = Next(); s2 = Next(); s3 = Next();
    }

    /// <summary>The generator's complete state as an Int64 tensor of 6 values (for checkpoints), like <c>get_state()</c>.</summary>
    public Tensor GetState() => Tensor.From(new[]
    {
        (long)s0, (long)s1, (long)s2, (long)s3, spareNormal.HasValue ? 1L : 0L, BitConverter.DoubleToInt64Bits(spareNormal ?? 0),
    }, 6);

    /// <summary>Restores a state from <see cref="GetState"/>, so the stream continues exactly where it was saved.</summary>
    public void SetState(Tensor state)
    {
        if (state.DType != DType.Int64 || state.Numel != 6)
            throw new ArgumentException($"Generator.SetState: expected an Int64 tensor of 6 values, got {state.DType} {Shape.Str(state.Dims)}");
        var v = state.ToLongArray();
        (s0, s1, s2, s3) = ((ulong)v[0], (ulong)v[1], (ulong)v[2], (ulong)v[3]);
        spareNormal = v[4] != 0 ? BitConverter.Int64BitsToDouble(v[5]) : null;
    }

    /// <summary>The next 64 random bits.</summary>
    public ulong NextULong()
    {
        ulong result = ulong.RotateLeft(s1 * 5, 7) * 9, t = s1 << 17;
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = ulong.RotateLeft(s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextULong() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, bound), without modulo bias.</summary>
    public long NextLong(long bound)
    {
        if (bound <= 0) throw new ArgumentOutOfRangeException(nameof(bound), $"Generator.NextLong: bound must be positive, got {bound}");
        ulong b = (ulong)bound, limit = ulong.MaxValue - ulong.MaxValue % b;
        ulong r;
        do r = NextULong(); while (r >= limit);
        return (long)(r % b);
    }

    /// <summary>Standard normal sample (Box-Muller; the second value of each pair is kept for the next call).</summary>
    public double NextNormal()
    {
        if (spareNormal is double s) { spareNormal = null; return s; }
        double u1 = 1.0 - NextDouble(), u2 = NextDouble();
        double r = Math.Sqrt(-2.0 * Math.Log(u1));
        spareNormal = r * Math.Sin(2 * Math.PI * u2);
        return r * Math.Cos(2 * Math.PI * u2);
    }
}
