namespace Autograd.Optimizers;

/// <summary>Multiplies each group's learning rate by <c>gamma</c> at each milestone epoch
/// (<c>torch.optim.lr_scheduler.MultiStepLR</c>); a milestone listed k times multiplies by gamma^k.</summary>
public sealed class MultiStepLR : LRScheduler
{
    private readonly Dictionary<int, int> counts;

    /// <summary>Decays by <paramref name="gamma"/> at every epoch in <paramref name="milestones"/>.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="milestones">Epoch indices (&gt; 0).</param>
    /// <param name="gamma">Multiplicative factor.</param>
    public MultiStepLR(Optimizer optimizer, IEnumerable<int> milestones, double gamma = 0.1) : base(optimizer)
    {
        ArgumentNullException.ThrowIfNull(milestones);
        var m = milestones.ToArray();
        if (m.Any(x => x <= 0)) throw new ArgumentOutOfRangeException(nameof(milestones), $"MultiStepLR: milestones must be > 0, got [{string.Join(", ", m)}]");
        if (!double.IsFinite(gamma)) throw new ArgumentOutOfRangeException(nameof(gamma), gamma, $"MultiStepLR: gamma must be finite, got {gamma}");
        counts = m.GroupBy(x => x).ToDictionary(g => g.Key, g => g.Count());
        Milestones = m.Order().ToArray();
        Gamma = gamma;
        InitialStep();
    }

    /// <summary>The milestones, sorted.</summary>
    public IReadOnlyList<int> Milestones { get; }

    /// <summary>Multiplicative factor.</summary>
    public double Gamma { get; }

    /// <inheritdoc/>
    protected override double[] GetLr() =>
        !counts.TryGetValue(LastEpoch, out int k) ? GroupLrs() : GroupLrs().Select(lr => lr * Math.Pow(Gamma, k)).ToArray();
}
