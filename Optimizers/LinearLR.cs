namespace Autograd.Optimizers;

/// <summary>Scales each group's learning rate by a factor moving linearly from <c>startFactor</c> to <c>endFactor</c>
/// over <c>totalIters</c> epochs, then keeps it (<c>torch.optim.lr_scheduler.LinearLR</c>; a warm-up when startFactor &lt; 1):
/// lr = base_lr · (startFactor + (endFactor − startFactor) · min(epoch, totalIters) / totalIters).</summary>
public sealed class LinearLR : LRScheduler
{
    /// <summary>Linear scaling from <paramref name="startFactor"/> to <paramref name="endFactor"/> over <paramref name="totalIters"/> epochs.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="startFactor">Factor at epoch 0, in (0, 1].</param>
    /// <param name="endFactor">Factor from epoch <paramref name="totalIters"/> on, in [0, 1].</param>
    /// <param name="totalIters">Number of epochs of the ramp (&gt; 0).</param>
    public LinearLR(Optimizer optimizer, double startFactor = 1.0 / 3, double endFactor = 1.0, int totalIters = 5) : base(optimizer)
    {
        if (!(startFactor > 0 && startFactor <= 1))
            throw new ArgumentOutOfRangeException(nameof(startFactor), startFactor, $"LinearLR: startFactor must be in (0, 1], got {SchedulerState.F(startFactor)}");
        if (!(endFactor >= 0 && endFactor <= 1))
            throw new ArgumentOutOfRangeException(nameof(endFactor), endFactor, $"LinearLR: endFactor must be in [0, 1], got {SchedulerState.F(endFactor)}");
        if (totalIters <= 0) throw new ArgumentOutOfRangeException(nameof(totalIters), totalIters, $"LinearLR: totalIters must be > 0, got {totalIters}");
        StartFactor = startFactor;
        EndFactor = endFactor;
        TotalIters = totalIters;
        InitialStep();
    }

    /// <summary>Factor at epoch 0.</summary>
    public double StartFactor { get; }

    /// <summary>Factor from epoch <see cref="TotalIters"/> on.</summary>
    public double EndFactor { get; }

    /// <summary>Number of epochs of the ramp.</summary>
    public int TotalIters { get; }

    /// <inheritdoc/>
    protected override double[] GetLr()
    {
        var lrs = GroupLrs();
        if (LastEpoch == 0) return lrs.Select(lr => lr * StartFactor).ToArray();
        if (LastEpoch > TotalIters) return lrs;
        double f = 1 + (EndFactor - StartFactor) / (TotalIters * StartFactor + (LastEpoch - 1) * (EndFactor - StartFactor));
        return lrs.Select(lr => lr * f).ToArray();
    }
}
