namespace Autograd.Optimizers;

/// <summary>Multiplies each group's learning rate by <c>gamma</c> every <c>stepSize</c> epochs
/// (<c>torch.optim.lr_scheduler.StepLR</c>): lr = base_lr · gamma^⌊epoch / stepSize⌋.</summary>
public sealed class StepLR : LRScheduler
{
    /// <summary>Decays by <paramref name="gamma"/> every <paramref name="stepSize"/> epochs.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="stepSize">Period of the decay, in epochs (&gt; 0).</param>
    /// <param name="gamma">Multiplicative factor.</param>
    public StepLR(Optimizer optimizer, int stepSize, double gamma = 0.1) : base(optimizer)
    {
        if (stepSize <= 0) throw new ArgumentOutOfRangeException(nameof(stepSize), stepSize, $"StepLR: stepSize must be > 0, got {stepSize}");
        if (!double.IsFinite(gamma)) throw new ArgumentOutOfRangeException(nameof(gamma), gamma, $"StepLR: gamma must be finite, got {gamma}");
        StepSize = stepSize;
        Gamma = gamma;
        InitialStep();
    }

    /// <summary>Period of the decay, in epochs.</summary>
    public int StepSize { get; }

    /// <summary>Multiplicative factor.</summary>
    public double Gamma { get; }

    /// <inheritdoc/>
    protected override double[] GetLr() =>
        LastEpoch == 0 || LastEpoch % StepSize != 0 ? GroupLrs() : GroupLrs().Select(lr => lr * Gamma).ToArray();
}
