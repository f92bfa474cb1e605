namespace Autograd.Optimizers;

/// <summary>Multiplies each group's learning rate by <c>gamma</c> every epoch
/// (<c>torch.optim.lr_scheduler.ExponentialLR</c>): lr = base_lr · gamma^epoch.</summary>
public sealed class ExponentialLR : LRScheduler
{
    /// <summary>Decays by <paramref name="gamma"/> every epoch.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="gamma">Multiplicative factor.</param>
    public ExponentialLR(Optimizer optimizer, double gamma) : base(optimizer)
    {
        if (!double.IsFinite(gamma)) throw new ArgumentOutOfRangeException(nameof(gamma), gamma, $"ExponentialLR: gamma must be finite, got {gamma}");
        Gamma = gamma;
        InitialStep();
    }

    /// <summary>Multiplicative factor.</summary>
    public double Gamma { get; }

    /// <inheritdoc/>
    protected override double[] GetLr() => LastEpoch == 0 ? GroupLrs() : GroupLrs().Select(lr => lr * Gamma).ToArray();
}
