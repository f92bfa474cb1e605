namespace Autograd.Optimizers;

/// <summary>Stops training when a monitored metric has not improved for <see cref="Patience"/> epochs.</summary>
/// <remarks>
/// Call <see cref="Step"/> once per epoch with the validation metric. An improvement is metric &lt; best − minDelta
/// (mode <c>"min"</c>) or metric &gt; best + minDelta (mode <c>"max"</c>); the first finite metric always improves.
/// NaN never improves. To keep the best weights, copy them in <see cref="OnImprovement"/> (for example from a
/// module's state dict) and restore them when <see cref="Step"/> returns true.
/// </remarks>
/// <example><code>
/// var stopper = new EarlyStopping(patience: 5);
/// stopper.OnImprovement = () => best = model.StateDict();
/// for (int epoch = 0; ; epoch++) { Train(); if (stopper.Step(Validate())) break; }
/// </code></example>
public sealed class EarlyStopping
{
    /// <summary>Creates the monitor.</summary>
    /// <param name="patience">Number of epochs without improvement after which <see cref="Step"/> returns true (&gt;= 0).</param>
    /// <param name="minDelta">Minimum change counted as an improvement (&gt;= 0).</param>
    /// <param name="mode"><c>"min"</c> (e.g. a loss) or <c>"max"</c> (e.g. an accuracy).</param>
    public EarlyStopping(int patience = 10, double minDelta = 0, string mode = "min")
    {
        if (patience < 0) throw new ArgumentOutOfRangeException(nameof(patience), patience, $"EarlyStopping: patience must be >= 0, got {patience}");
        if (!(minDelta >= 0)) throw new ArgumentOutOfRangeException(nameof(minDelta), minDelta, $"EarlyStopping: minDelta must be >= 0, got {minDelta}");
        if (mode is not ("min" or "max")) throw new ArgumentException($"EarlyStopping: mode must be \"min\" or \"max\", got \"{mode}\"", nameof(mode));
        Patience = patience;
        MinDelta = minDelta;
        Mode = mode;
        Reset();
    }

    /// <summary>Number of epochs without improvement tolerated.</summary>
    public int Patience { get; }
    /// <summary>Minimum change counted as an improvement.</summary>
    public double MinDelta { get; }
    /// <summary><c>"min"</c> or <c>"max"</c>.</summary>
    public string Mode { get; }

    /// <summary>Called by <see cref="Step"/> when the metric improves (after <see cref="BestScore"/> and <see cref="BestEpoch"/> are updated).</summary>
    public Action? OnImprovement { get; set; }

    /// <summary>The best metric so far (+∞ for "min", −∞ for "max" before the first step).</summary>
    public double BestScore { get; private set; }
    /// <summary>The epoch (0-based count of <see cref="Step"/> calls) of the best metric, or −1 before any improvement.</summary>
    public int BestEpoch { get; private set; }
    /// <summary>Number of <see cref="Step"/> calls so far.</summary>
    public int Epoch { get; private set; }
    /// <summary>Consecutive epochs without improvement.</summary>
    public int NumBadEpochs { get; private set; }
    /// <summary>Whether the last <see cref="Step"/> improved the metric.</summary>
    public bool IsImprovement { get; private set; }
    /// <summary>Whether training should stop (the value <see cref="Step"/> last returned).</summary>
    public bool ShouldStop { get; private set; }

    /// <summary>Records one epoch's metric; returns true when it is the <see cref="Patience"/>-th consecutive epoch without improvement.</summary>
    public bool Step(double metric)
    {
        IsImprovement = Mode == "min" ? metric < BestScore - MinDelta : metric > BestScore + MinDelta;
        if (IsImprovement)
        {
            BestScore = metric;
            BestEpoch = Epoch;
            NumBadEpochs = 0;
        }
        else NumBadEpochs++;
        Epoch++;
        ShouldStop = NumBadEpochs >= Patience && !IsImprovement;
        if (IsImprovement) OnImprovement?.Invoke();
        return ShouldStop;
    }

    /// <summary>Forgets every metric seen (keeps the settings and the callback).</summary>
    public void Reset()
    {
        BestScore = Mode == "min" ? double.PositiveInfinity : double.NegativeInfinity;
        BestEpoch = -1;
        Epoch = 0;
        NumBadEpochs = 0;
        IsImprovement = false;
        ShouldStop = false;
    }
}
