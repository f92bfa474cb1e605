namespace Autograd.Optimizers;

/// <summary>Reduces the learning rates when a metric has stopped improving
/// (<c>torch.optim.lr_scheduler.ReduceLROnPlateau</c>).</summary>
/// <remarks>
/// Each <see cref="Step"/> compares the metric with the best so far. Improvement means, for mode <c>"min"</c>:
/// metric &lt; best·(1 − threshold) (<c>"rel"</c>) or metric &lt; best − threshold (<c>"abs"</c>); for <c>"max"</c>:
/// metric &gt; best·(1 + threshold) or metric &gt; best + threshold. After more than <c>patience</c> epochs without
/// improvement each group's rate becomes max(lr·factor, min_lr) (unless that changes it by at most <c>eps</c>),
/// and the count restarts after <c>cooldown</c> epochs in which bad epochs are not counted.
/// </remarks>
public sealed class ReduceLROnPlateau
{
    private readonly double[] minLrs;
    private double[] lastLr;

    /// <summary>A plateau detector acting on every group of <paramref name="optimizer"/>.</summary>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="mode"><c>"min"</c> (the metric should decrease, e.g. a loss) or <c>"max"</c> (e.g. an accuracy).</param>
    /// <param name="factor">Factor the learning rates are multiplied by, in [0, 1).</param>
    /// <param name="patience">Number of epochs without improvement tolerated before reducing.</param>
    /// <param name="threshold">Minimum change counted as an improvement.</param>
    /// <param name="thresholdMode"><c>"rel"</c> (relative to the best) or <c>"abs"</c>.</param>
    /// <param name="cooldown">Epochs to wait after a reduction before counting bad epochs again.</param>
    /// <param name="minLr">Lower bound of every group's learning rate.</param>
    /// <param name="eps">Reductions smaller than this are skipped.</param>
    /// <param name="minLrs">Per-group lower bounds (overrides <paramref name="minLr"/>).</param>
    public ReduceLROnPlateau(Optimizer optimizer, string mode = "min", double factor = 0.1, int patience = 10, double threshold = 1e-4,
        string thresholdMode = "rel", int cooldown = 0, double minLr = 0, double eps = 1e-8, IReadOnlyList<double>? minLrs = null)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        Optimizer = optimizer;
        int n = optimizer.ParamGroups.Count;
        if (mode is not ("min" or "max")) throw new ArgumentException($"ReduceLROnPlateau: mode must be \"min\" or \"max\", got \"{mode}\"", nameof(mode));
        if (thresholdMode is not ("rel" or "abs"))
            throw new ArgumentException($"ReduceLROnPlateau: thresholdMode must be \"rel\" or \"abs\", got \"{thresholdMode}\"", nameof(thresholdMode));
        if (!(factor >= 0 && factor < 1)) throw new ArgumentOutOfRangeException(nameof(factor), factor, $"ReduceLROnPlateau: factor must be in [0, 1), got {SchedulerState.F(factor)}");
        if (patience < 0) throw new ArgumentOutOfRangeException(nameof(patience), patience, $"ReduceLROnPlateau: patience must be >= 0, got {patience}");
        if (cooldown < 0) throw new ArgumentOutOfRangeException(nameof(cooldown), cooldown, $"ReduceLROnPlateau: cooldown must be >= 0, got {cooldown}");
        if (!(threshold >= 0)) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, $"ReduceLROnPlateau: threshold must be >= 0, got {SchedulerState.F(threshold)}");
        if (!(eps >= 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, $"ReduceLROnPlateau: eps must be >= 0, got {SchedulerState.F(eps)}");
        if (minLrs != null && minLrs.Count != n)
            throw new ArgumentException($"ReduceLROnPlateau: expected {n} values for minLrs (one per param group), got {minLrs.Count}", nameof(minLrs));
        this.minLrs = minLrs?.ToArray() ?? Enumerable.Repeat(minLr, n).ToArray();
        if (this.minLrs.Any(x => !(x >= 0))) throw new ArgumentOutOfRangeException(nameof(minLr), $"ReduceLROnPlateau: min learning rates must be >= 0, got [{string.Join(", ", this.minLrs.Select(SchedulerState.F))}]");
        Mode = mode;
        Factor = factor;
        Patience = patience;
        Threshold = threshold;
        ThresholdMode = thresholdMode;
        Cooldown = cooldown;
        Eps = eps;
        Best = mode == "min" ? double.PositiveInfinity : double.NegativeInfinity;
        lastLr = optimizer.ParamGroups.Select(g => g.Lr).ToArray();
    }

    /// <summary>The optimizer whose learning rates this scheduler reduces.</summary>
    public Optimizer Optimizer { get; }
    /// <summary><c>"min"</c> or <c>"max"</c>.</summary>
    public string Mode { get; }
    /// <summary>Factor the learning rates are multiplied by.</summary>
    public double Factor { get; }
    /// <summary>Number of epochs without improvement tolerated before reducing.</summary>
    public int Patience { get; }
    /// <summary>Minimum change counted as an improvement.</summary>
    public double Threshold { get; }
    /// <summary><c>"rel"</c> or <c>"abs"</c>.</summary>
    public string ThresholdMode { get; }
    /// <summary>Epochs to wait after a reduction before counting bad epochs again.</summary>
    public int Cooldown { get; }
    /// <summary>Reductions smaller than this are skipped.</summary>
    public double Eps { get; }
    /// <summary>Per-group lower bounds of the learning rate.</summary>
    public IReadOnlyList<double> MinLrs => minLrs;

    /// <summary>The best metric so far (+∞ for mode "min", −∞ for "max" before the first step).</summary>
    public double Best { get; private set; }
    /// <summary>Consecutive epochs without improvement (not counted during cooldown).</summary>
    public int NumBadEpochs { get; private set; }
    /// <summary>Epochs of cooldown left.</summary>
    public int CooldownCounter { get; private set; }
    /// <summary>Number of <see cref="Step"/> calls.</summary>
    public int LastEpoch { get; private set; }
    /// <summary>Whether the scheduler is in its cooldown period.</summary>
    public bool InCooldown => CooldownCounter > 0;

    /// <summary>The learning rates after the last step, one per group.</summary>
    public IReadOnlyList<double> GetLastLr() => (double[])lastLr.Clone();

    /// <summary>Whether <paramref name="metric"/> improves on <paramref name="best"/> by the threshold.</summary>
    public bool IsBetter(double metric, double best) => (Mode, ThresholdMode) switch
    {
        ("min", "rel") => metric < best * (1 - Threshold),
        ("min", _) => metric < best - Threshold,
        (_, "rel") => metric > best * (Threshold + 1),
        _ => metric > best + Threshold,
    };

    /// <summary>Records the epoch's metric and reduces the learning rates after more than <see cref="Patience"/> bad epochs.</summary>
    public void Step(double metric)
    {
        LastEpoch++;
        if (IsBetter(metric, Best)) { Best = metric; NumBadEpochs = 0; }
        else NumBadEpochs++;
        if (InCooldown) { CooldownCounter--; NumBadEpochs = 0; }
        if (NumBadEpochs > Patience)
        {
            var groups = Optimizer.ParamGroups;
            if (groups.Count != minLrs.Length)
                throw new InvalidOperationException($"ReduceLROnPlateau: the optimizer has {groups.Count} param groups, the scheduler was built for {minLrs.Length}");
            for (int i = 0; i < groups.Count; i++)
            {
                double old = groups[i].Lr, lr = Math.Max(old * Factor, minLrs[i]);
                if (old - lr > Eps) groups[i].Lr = lr;
            }
            CooldownCounter = Cooldown;
            NumBadEpochs = 0;
        }
        lastLr = Optimizer.ParamGroups.Select(g => g.Lr).ToArray();
    }

    /// <summary>The counters as Float64 scalars: <c>best</c>, <c>num_bad_epochs</c>, <c>cooldown_counter</c>,
    /// <c>last_epoch</c> and <c>_last_lr.{i}</c>.</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor>
        {
            ["best"] = Tensor.Scalar(Best, DType.Float64),
            ["num_bad_epochs"] = Tensor.Scalar(NumBadEpochs, DType.Float64),
            ["cooldown_counter"] = Tensor.Scalar(CooldownCounter, DType.Float64),
            ["last_epoch"] = Tensor.Scalar(LastEpoch, DType.Float64),
        };
        for (int i = 0; i < lastLr.Length; i++) d[$"_last_lr.{i}"] = Tensor.Scalar(lastLr[i], DType.Float64);
        return d;
    }

    /// <summary>Restores counters saved by <see cref="StateDict"/>.</summary>
    /// <exception cref="ArgumentException">Names missing and unexpected keys.</exception>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> stateDict)
    {
        int n = Optimizer.ParamGroups.Count;
        var keys = new[] { "best", "num_bad_epochs", "cooldown_counter", "last_epoch" }
            .Concat(Enumerable.Range(0, n).Select(i => $"_last_lr.{i}")).ToArray();
        var v = SchedulerState.Read(nameof(ReduceLROnPlateau), stateDict, keys);
        Best = v["best"];
        NumBadEpochs = (int)v["num_bad_epochs"];
        CooldownCounter = (int)v["cooldown_counter"];
        LastEpoch = (int)v["last_epoch"];
        lastLr = Enumerable.Range(0, n).Select(i => v[$"_last_lr.{i}"]).ToArray();
    }
}
