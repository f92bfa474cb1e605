namespace Autograd.Optimizers;

/// <summary>Cosine annealing (<c>torch.optim.lr_scheduler.CosineAnnealingLR</c>):
/// lr = eta_min + (base_lr − eta_min)(1 + cos(π·epoch / T_max)) / 2, computed in PyTorch's recursive form;
/// past T_max the cosine continues (the rate rises again), as in PyTorch.</summary>
public sealed class CosineAnnealingLR : LRScheduler
{
    /// <summary>Anneals from each group's learning rate to <paramref name="etaMin"/> over <paramref name="tMax"/> epochs.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="tMax">Half period, in epochs (&gt; 0).</param>
    /// <param name="etaMin">Minimum learning rate.</param>
    public CosineAnnealingLR(Optimizer optimizer, int tMax, double etaMin = 0) : base(optimizer)
    {
        if (tMax <= 0) throw new ArgumentOutOfRangeException(nameof(tMax), tMax, $"CosineAnnealingLR: tMax must be > 0, got {tMax}");
        if (!double.IsFinite(etaMin)) throw new ArgumentOutOfRangeException(nameof(etaMin), etaMin, $"CosineAnnealingLR: etaMin must be finite, got {etaMin}");
        TMax = tMax;
        EtaMin = etaMin;
        InitialStep();
    }

    /// <summary>Half period, in epochs.</summary>
    public int TMax { get; }

    /// <summary>Minimum learning rate.</summary>
    public double EtaMin { get; }

    /// <inheritdoc/>
    protected override double[] GetLr()
    {
        var lrs = GroupLrs();
        int e = LastEpoch;
        if (e == 0) return lrs;
        int period = 2 * TMax, r = ((e - 1 - TMax) % period + period) % period;   // Python's modulo
        if (r == 0)
            return lrs.Select((lr, i) => lr + (BaseLrs[i] - EtaMin) * (1 - Math.Cos(Math.PI / TMax)) / 2).ToArray();
        return lrs.Select(lr => (1 + Math.Cos(Math.PI * e / TMax)) / (1 + Math.Cos(Math.PI * (e - 1) / TMax)) * (lr - EtaMin) + EtaMin).ToArray();
    }
}
