using Autograd.Data;

namespace Autograd.Distributed;

/// <summary>Shards each epoch's order across the ranks of a data-parallel job, as <c>torch.utils.data.distributed.DistributedSampler</c>:
/// every rank draws the same permutation of the whole dataset (a <see cref="RandomSampler"/> with the same seed, so one
/// process with the same seed visits the samples in the union of the ranks' orders), pads it by repeating its first indices
/// until it divides evenly (or, with <c>dropLast</c>, truncates it), and takes every <c>numReplicas</c>-th index starting at
/// <c>rank</c>. Every rank thus gets the same number of samples, so every rank runs the same number of steps.</summary>
/// <example><code>
/// var sampler = new DistributedSampler(train.Count, comm.WorldSize, comm.Rank, seed: 0);
/// var loader = new DataLoader(train, batchSize: 32, sampler: sampler);   // the loader's Epoch reshuffles, as set_epoch
/// </code></example>
public sealed class DistributedSampler : ISampler
{
    private readonly ISampler order;

    /// <summary>Rank <paramref name="rank"/>'s shard of a dataset of <paramref name="length"/> samples.</summary>
    /// <param name="length">Dataset size.</param>
    /// <param name="numReplicas">Number of ranks (world size).</param>
    /// <param name="rank">This rank.</param>
    /// <param name="shuffle">Shuffle each epoch (otherwise index order, e.g. for evaluation).</param>
    /// <param name="seed">Shuffling seed; must be the same on every rank.</param>
    /// <param name="dropLast">Drop the tail that does not divide evenly instead of padding with repeated samples.</param>
    public DistributedSampler(int length, int numReplicas, int rank, bool shuffle = true, long seed = 0, bool dropLast = false)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), $"DistributedSampler: length must be non-negative, got {length}");
        if (numReplicas < 1) throw new ArgumentOutOfRangeException(nameof(numReplicas), $"DistributedSampler: numReplicas must be positive, got {numReplicas}");
        if (rank < 0 || rank >= numReplicas)
            throw new ArgumentOutOfRangeException(nameof(rank), $"DistributedSampler: invalid rank {rank}, rank should be in the interval [0, {numReplicas - 1}]");
        (Length, NumReplicas, Rank, Shuffle, Seed, DropLast) = (length, numReplicas, rank, shuffle, seed, dropLast);
        order = shuffle ? new RandomSampler(length, seed) : new SequentialSampler(length);
        // As PyTorch: with dropLast and an uneven split, floor(length / numReplicas) per rank; otherwise the ceiling.
        Count = dropLast ? length / numReplicas : (length + numReplicas - 1) / numReplicas;
    }

    /// <summary>A shard for this process's rank in <paramref name="group"/>.</summary>
    public DistributedSampler(int length, IProcessGroup group, bool shuffle = true, long seed = 0, bool dropLast = false)
        : this(length, group.WorldSize, group.Rank, shuffle, seed, dropLast) { }

    /// <summary>Dataset size.</summary>
    public int Length { get; }
    /// <summary>Number of ranks.</summary>
    public int NumReplicas { get; }
    /// <summary>This rank.</summary>
    public int Rank { get; }
    /// <summary>Whether each epoch is shuffled.</summary>
    public bool Shuffle { get; }
    /// <summary>The shuffling seed.</summary>
    public long Seed { get; }
    /// <summary>Whether the uneven tail is dropped (otherwise padded).</summary>
    public bool DropLast { get; }

    /// <summary>Samples per rank per epoch.</summary>
    public int Count { get; }

    /// <inheritdoc/>
    public int[] Indices(int epoch)
    {
        var all = order.Indices(epoch);
        var shard = new int[Count];
        // Padding repeats the order from its start, wrapping as often as needed (a dataset smaller than the world).
        for (int k = 0; k < Count; k++) shard[k] = all[(Rank + k * NumReplicas) % all.Length];
        return shard;
    }
}
