namespace Autograd.Data;

/// <summary>Which dataset indices an epoch visits, in order, like <c>torch.utils.data.Sampler</c> (with the epoch passed in,
/// as <c>set_epoch</c>). A <see cref="DataLoader"/> batches them.</summary>
public interface ISampler
{
    /// <summary>Number of indices per epoch.</summary>
    int Count { get; }

    /// <summary>The indices epoch <paramref name="epoch"/> visits, in order.</summary>
    int[] Indices(int epoch);
}

/// <summary>0, 1, ..., length - 1 every epoch, as <c>SequentialSampler</c>.</summary>
/// <param name="length">Dataset size.</param>
public sealed class SequentialSampler(int length) : ISampler
{
    /// <inheritdoc/>
    public int Count { get; } = length >= 0 ? length : throw new ArgumentOutOfRangeException(nameof(length), $"SequentialSampler: length must be non-negative, got {length}");

    /// <inheritdoc/>
    public int[] Indices(int epoch) => Enumerable.Range(0, Count).ToArray();
}

/// <summary>A permutation of 0 .. length - 1 drawn per epoch from a generator seeded with a mix of <paramref name="seed"/> and
/// the epoch, as <c>RandomSampler</c> with <c>set_epoch</c>: every epoch has a different order, and the same seed replays the
/// same sequence of epochs on any machine and in any process (what <c>DistributedSampler</c> relies on).</summary>
/// <param name="length">Dataset size.</param>
/// <param name="seed">Seed of the shuffling.</param>
public sealed class RandomSampler(int length, long seed = 0) : ISampler
{
    /// <inheritdoc/>
    public int Count { get; } = length >= 0 ? length : throw new ArgumentOutOfRangeException(nameof(length), $"RandomSampler: length must be non-negative, got {length}");

    /// <summary>The shuffling seed.</summary>
    public long Seed { get; } = seed;

    /// <inheritdoc/>
    public int[] Indices(int epoch) => Datasets.Permutation(Count, new Generator(EpochSeed(Seed, epoch)));

    private static long EpochSeed(long seed, int epoch)
    {
        static ulong Mix(ulong z)
        {
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
            return z ^ (z >> 31);
        }
        return (long)Mix(Mix((ulong)seed + 0x9E3779B97F4A7C15) ^ Mix((ulong)epoch + 0xD1B54A32D192ED03));
    }
}
