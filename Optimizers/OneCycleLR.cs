namespace Autograd.Optimizers;

/// <summary>The 1cycle policy (<c>torch.optim.lr_scheduler.OneCycleLR</c>), stepped once per batch: the learning rate
/// rises from max_lr/divFactor to max_lr over the first pctStart of the steps, then anneals to
/// max_lr/(divFactor·finalDivFactor); the momentum (or β₁ for the Adam family) moves inversely between
/// maxMomentum and baseMomentum.</summary>
/// <remarks>
/// Phases (steps counted from 0, <c>T</c> = total steps): warm-up to step pctStart·T − 1, annealing to step T − 1;
/// with <c>threePhase</c>: up to pctStart·T − 1, back down to max_lr/divFactor at 2·pctStart·T − 2, then to the minimum at
/// T − 1. Within a phase the value is anneal(start, end, (step − phase start) / (phase end − phase start)) with
/// cosine (end + (start − end)(1 + cos(π·pct))/2) or linear annealing. Building the scheduler overwrites each group's
/// <c>initial_lr</c> with max_lr/divFactor and, when cycling momentum, its momentum (or β₁) with maxMomentum.
/// </remarks>
public sealed class OneCycleLR : LRScheduler
{
    private readonly double[] maxLrs, minLrs;
    private readonly (double End, int StartLr, int EndLr, bool StartMomentumIsMax, bool EndMomentumIsMax)[] phases;
    private readonly bool useBeta1;

    /// <summary>A one-cycle schedule peaking at <paramref name="maxLr"/> in every group.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="maxLr">Peak learning rate.</param>
    /// <param name="totalSteps">Number of steps in the cycle; or give <paramref name="epochs"/> and <paramref name="stepsPerEpoch"/>.</param>
    /// <param name="epochs">Number of epochs (with <paramref name="stepsPerEpoch"/>).</param>
    /// <param name="stepsPerEpoch">Number of steps per epoch (with <paramref name="epochs"/>).</param>
    /// <param name="pctStart">Fraction of the cycle spent increasing the learning rate, in [0, 1].</param>
    /// <param name="annealStrategy"><c>"cos"</c> or <c>"linear"</c>.</param>
    /// <param name="cycleMomentum">Cycle the momentum (or β₁) inversely to the learning rate.</param>
    /// <param name="baseMomentum">Lowest momentum, reached at the peak learning rate.</param>
    /// <param name="maxMomentum">Highest momentum, at the start and end of the cycle.</param>
    /// <param name="divFactor">initial_lr = maxLr / divFactor.</param>
    /// <param name="finalDivFactor">min_lr = initial_lr / finalDivFactor.</param>
    /// <param name="threePhase">Use a third phase annealing from initial_lr to min_lr after a symmetric cycle.</param>
    public OneCycleLR(Optimizer optimizer, double maxLr, int? totalSteps = null, int? epochs = null, int? stepsPerEpoch = null,
        double pctStart = 0.3, string annealStrategy = "cos", bool cycleMomentum = true, double baseMomentum = 0.85,
        double maxMomentum = 0.95, double divFactor = 25, double finalDivFactor = 1e4, bool threePhase = false)
        : this(optimizer, Enumerable.Repeat(maxLr, optimizer?.ParamGroups.Count ?? 0).ToArray(), totalSteps, epochs, stepsPerEpoch,
            pctStart, annealStrategy, cycleMomentum, baseMomentum, maxMomentum, divFactor, finalDivFactor, threePhase) { }

    /// <summary>A one-cycle schedule with one peak learning rate per group.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="maxLrs">Peak learning rate of each group.</param>
    /// <param name="totalSteps">Number of steps in the cycle; or give <paramref name="epochs"/> and <paramref name="stepsPerEpoch"/>.</param>
    /// <param name="epochs">Number of epochs (with <paramref name="stepsPerEpoch"/>).</param>
    /// <param name="stepsPerEpoch">Number of steps per epoch (with <paramref name="epochs"/>).</param>
    /// <param name="pctStart">Fraction of the cycle spent increasing the learning rate, in [0, 1].</param>
    /// <param name="annealStrategy"><c>"cos"</c> or <c>"linear"</c>.</param>
    /// <param name="cycleMomentum">Cycle the momentum (or β₁) inversely to the learning rate.</param>
    /// <param name="baseMomentum">Lowest momentum, reached at the peak learning rate.</param>
    /// <param name="maxMomentum">Highest momentum, at the start and end of the cycle.</param>
    /// <param name="divFactor">initial_lr = maxLr / divFactor.</param>
    /// <param name="finalDivFactor">min_lr = initial_lr / finalDivFactor.</param>
    /// <param name="threePhase">Use a third phase annealing from initial_lr to min_lr after a symmetric cycle.</param>
    public OneCycleLR(Optimizer optimizer, IReadOnlyList<double> maxLrs, int? totalSteps = null, int? epochs = null, int? stepsPerEpoch = null,
        double pctStart = 0.3, string annealStrategy = "cos", bool cycleMomentum = true, double baseMomentum = 0.85,
        double maxMomentum = 0.95, double divFactor = 25, double finalDivFactor = 1e4, bool threePhase = false)
        : base(optimizer)
    {
        ArgumentNullException.ThrowIfNull(maxLrs);
        var groups = optimizer.ParamGroups;
        if (totalSteps is int t)
        {
            if (t <= 0) throw new ArgumentOutOfRangeException(nameof(totalSteps), t, $"OneCycleLR: totalSteps must be > 0, got {t}");
            TotalSteps = t;
        }
        else if (epochs is int e && stepsPerEpoch is int s)
        {
            if (e <= 0) throw new ArgumentOutOfRangeException(nameof(epochs), e, $"OneCycleLR: epochs must be > 0, got {e}");
            if (s <= 0) throw new ArgumentOutOfRangeException(nameof(stepsPerEpoch), s, $"OneCycleLR: stepsPerEpoch must be > 0, got {s}");
            TotalSteps = checked(e * s);
        }
        else throw new ArgumentException("OneCycleLR: give either totalSteps or both epochs and stepsPerEpoch", nameof(totalSteps));
        if (!(pctStart >= 0 && pctStart <= 1))
            throw new ArgumentOutOfRangeException(nameof(pctStart), pctStart, $"OneCycleLR: pctStart must be in [0, 1], got {SchedulerState.F(pctStart)}");
        if (annealStrategy is not ("cos" or "linear"))
            throw new ArgumentException($"OneCycleLR: annealStrategy must be \"cos\" or \"linear\", got \"{annealStrategy}\"", nameof(annealStrategy));
        if (maxLrs.Count != groups.Count)
            throw new ArgumentException($"OneCycleLR: expected {groups.Count} values for maxLrs (one per param group), got {maxLrs.Count}", nameof(maxLrs));
        if (maxLrs.Any(x => !(x >= 0) || double.IsInfinity(x)))
            throw new ArgumentOutOfRangeException(nameof(maxLrs), $"OneCycleLR: max learning rates must be finite and >= 0, got [{string.Join(", ", maxLrs.Select(SchedulerState.F))}]");
        if (!(divFactor > 0)) throw new ArgumentOutOfRangeException(nameof(divFactor), divFactor, $"OneCycleLR: divFactor must be > 0, got {SchedulerState.F(divFactor)}");
        if (!(finalDivFactor > 0)) throw new ArgumentOutOfRangeException(nameof(finalDivFactor), finalDivFactor, $"OneCycleLR: finalDivFactor must be > 0, got {SchedulerState.F(finalDivFactor)}");

        const int Initial = 0, Max = 1, Min = 2;
        phases = threePhase
            ? [(pctStart * TotalSteps - 1, Initial, Max, true, false), (2 * pctStart * TotalSteps - 2, Max, Initial, false, true), (TotalSteps - 1, Initial, Min, true, true)]
            : [(pctStart * TotalSteps - 1, Initial, Max, true, false), (TotalSteps - 1, Max, Min, false, true)];
        double start = 0;
        foreach (var p in phases)
        {
            if (p.End == start)
                throw new ArgumentException($"OneCycleLR: totalSteps {TotalSteps} with pctStart {SchedulerState.F(pctStart)} gives a phase of length 0 (ending at step {SchedulerState.F(p.End)})", nameof(pctStart));
            start = p.End;
        }
        AnnealStrategy = annealStrategy;
        CycleMomentum = cycleMomentum;
        BaseMomentum = baseMomentum;
        MaxMomentum = maxMomentum;
        this.maxLrs = [.. maxLrs];
        minLrs = new double[groups.Count];
        if (cycleMomentum)
        {
            if (!optimizer.Defaults.ContainsKey("momentum") && !optimizer.Defaults.ContainsKey("betas.0"))
                throw new ArgumentException($"OneCycleLR: {optimizer.Name} has neither momentum nor betas; pass cycleMomentum: false", nameof(cycleMomentum));
            useBeta1 = optimizer.Defaults.ContainsKey("betas.0");
        }
        for (int i = 0; i < groups.Count; i++)
        {
            groups[i].InitialLr = this.maxLrs[i] / divFactor;
            minLrs[i] = groups[i].InitialLr!.Value / finalDivFactor;
            if (cycleMomentum) groups[i][useBeta1 ? "betas.0" : "momentum"] = maxMomentum;
        }
        InitialStep();
    }

    /// <summary>Number of steps in the cycle.</summary>
    public int TotalSteps { get; }

    /// <summary><c>"cos"</c> or <c>"linear"</c>.</summary>
    public string AnnealStrategy { get; }

    /// <summary>Whether the momentum (or β₁) is cycled.</summary>
    public bool CycleMomentum { get; }

    /// <summary>Lowest momentum, reached at the peak learning rate.</summary>
    public double BaseMomentum { get; }

    /// <summary>Highest momentum, at the start and end of the cycle.</summary>
    public double MaxMomentum { get; }

    private double Anneal(double start, double end, double pct) =>
        AnnealStrategy == "cos" ? end + (start - end) / 2.0 * (Math.Cos(Math.PI * pct) + 1) : (end - start) * pct + start;

    /// <inheritdoc/>
    /// <exception cref="InvalidOperationException">Stepped past <see cref="TotalSteps"/>.</exception>
    protected override double[] GetLr()
    {
        int stepNum = LastEpoch;
        if (stepNum > TotalSteps)
            throw new InvalidOperationException($"OneCycleLR: tried to step {stepNum + 1} times; the specified number of total steps is {TotalSteps}");
        var groups = Optimizer.ParamGroups;
        var lrs = new double[groups.Count];
        for (int i = 0; i < groups.Count; i++)
        {
            double[] values = [groups[i].InitialLr ?? maxLrs[i], maxLrs[i], minLrs[i]];
            double startStep = 0;
            for (int p = 0; p < phases.Length; p++)
            {
                var phase = phases[p];
                if (stepNum <= phase.End || p == phases.Length - 1)
                {
                    double pct = (stepNum - startStep) / (phase.End - startStep);
                    lrs[i] = Anneal(values[phase.StartLr], values[phase.EndLr], pct);
                    if (CycleMomentum)
                        groups[i][useBeta1 ? "betas.0" : "momentum"] = Anneal(
                            phase.StartMomentumIsMax ? MaxMomentum : BaseMomentum, phase.EndMomentumIsMax ? MaxMomentum : BaseMomentum, pct);
                    break;
                }
                startStep = phase.End;
            }
        }
        return lrs;
    }
}
