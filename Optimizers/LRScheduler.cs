using System.Globalization;

namespace Autograd.Optimizers;

/// <summary>Base class of the epoch-based learning-rate schedulers, like <c>torch.optim.lr_scheduler.LRScheduler</c>.</summary>
/// <remarks>
/// <para>Building a scheduler sets each group's <see cref="ParamGroup.InitialLr"/> (if not already set: chained
/// schedulers share it), takes those as <see cref="BaseLrs"/> and performs the initial step (epoch 0). Call
/// <see cref="Step"/> after <see cref="Optimizer.Step()"/>, once per epoch (or per batch for <see cref="OneCycleLR"/>).</para>
/// <para>Schedulers use PyTorch's chainable (recursive) form: each step scales the group's current learning rate, so
/// several schedulers can act on one optimizer, and the values match PyTorch's to the last bits.</para>
/// <para>A subclass does its own setup, then calls <see cref="InitialStep"/> at the end of its constructor.</para>
/// </remarks>
public abstract class LRScheduler
{
    private double[] baseLrs = [];
    private double[] lastLr = [];

    /// <summary>Attaches the scheduler to <paramref name="optimizer"/>; the subclass constructor must end with <see cref="InitialStep"/>.</summary>
    protected LRScheduler(Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        Optimizer = optimizer;
    }

    /// <summary>The optimizer whose learning rates this scheduler sets.</summary>
    public Optimizer Optimizer { get; }

    /// <summary>The index of the current epoch: 0 after construction, incremented by every <see cref="Step"/>.</summary>
    public int LastEpoch { get; private set; } = -1;

    /// <summary>How many times <see cref="Step"/> has run, the initial step included (PyTorch's <c>_step_count</c>).</summary>
    public int StepCount { get; private set; }

    /// <summary>Each group's <c>initial_lr</c>, the learning rate the schedule starts from.</summary>
    public IReadOnlyList<double> BaseLrs => baseLrs;

    /// <summary>The learning rates set by the last step, one per group (<c>get_last_lr()</c>).</summary>
    public IReadOnlyList<double> GetLastLr() => (double[])lastLr.Clone();

    /// <summary>Sets missing <c>initial_lr</c>s from the current learning rates, reads <see cref="BaseLrs"/> and performs step 0.</summary>
    protected void InitialStep()
    {
        foreach (var g in Optimizer.ParamGroups) g.InitialLr ??= g.Lr;
        baseLrs = Optimizer.ParamGroups.Select(g => g.InitialLr!.Value).ToArray();
        StepCount = 0;
        Step();
    }

    /// <summary>Advances one epoch and sets every group's learning rate.</summary>
    public virtual void Step()
    {
        var groups = Optimizer.ParamGroups;
        if (groups.Count != baseLrs.Length)
            throw new InvalidOperationException($"{GetType().Name}: the optimizer has {groups.Count} param groups, the scheduler was built for {baseLrs.Length}");
        StepCount++;
        LastEpoch++;
        var lrs = GetLr();
        for (int i = 0; i < groups.Count; i++) groups[i].Lr = lrs[i];
        lastLr = lrs;
    }

    /// <summary>The learning rates for epoch <see cref="LastEpoch"/> (already incremented), one per group, computed
    /// from the groups' current learning rates (chainable form) or from <see cref="BaseLrs"/>.</summary>
    protected abstract double[] GetLr();

    /// <summary>The current learning rate of every group.</summary>
    protected double[] GroupLrs() => Optimizer.ParamGroups.Select(g => g.Lr).ToArray();

    /// <summary>The scheduler's counters as Float64 scalars: <c>last_epoch</c>, <c>_step_count</c>,
    /// <c>base_lrs.{i}</c> and <c>_last_lr.{i}</c>. Hyper-parameters (step size, gamma, ...) come from the constructor.</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor>
        {
            ["last_epoch"] = Tensor.Scalar(LastEpoch, DType.Float64),
            ["_step_count"] = Tensor.Scalar(StepCount, DType.Float64),
        };
        for (int i = 0; i < baseLrs.Length; i++) d[$"base_lrs.{i}"] = Tensor.Scalar(baseLrs[i], DType.Float64);
        for (int i = 0; i < lastLr.Length; i++) d[$"_last_lr.{i}"] = Tensor.Scalar(lastLr[i], DType.Float64);
        return d;
    }

    /// <summary>Restores counters saved by <see cref="StateDict"/> (the optimizer's learning rates are restored by
    /// <see cref="Optimizer.LoadStateDict"/>).</summary>
    /// <exception cref="ArgumentException">Names missing and unexpected keys.</exception>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> stateDict)
    {
        int n = Optimizer.ParamGroups.Count;
        var keys = new[] { "last_epoch", "_step_count" }
            .Concat(Enumerable.Range(0, n).Select(i => $"base_lrs.{i}"))
            .Concat(Enumerable.Range(0, n).Select(i => $"_last_lr.{i}")).ToArray();
        var values = SchedulerState.Read(GetType().Name, stateDict, keys);
        LastEpoch = (int)values["last_epoch"];
        StepCount = (int)values["_step_count"];
        baseLrs = Enumerable.Range(0, n).Select(i => values[$"base_lrs.{i}"]).ToArray();
        lastLr = Enumerable.Range(0, n).Select(i => values[$"_last_lr.{i}"]).ToArray();
    }
}

internal static class SchedulerState
{
    /// <summary>Reads exactly <paramref name="keys"/> (scalars) from a state dict, or throws naming what is missing or unexpected.</summary>
    public static Dictionary<string, double> Read(string owner, IReadOnlyDictionary<string, Tensor> stateDict, IReadOnlyList<string> keys)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        var missing = keys.Where(k => !stateDict.ContainsKey(k)).ToList();
        var unexpected = stateDict.Keys.Where(k => !keys.Contains(k)).ToList();
        var bad = keys.Where(k => stateDict.TryGetValue(k, out var t) && (t is null || t.Numel != 1)).ToList();
        if (missing.Count + unexpected.Count + bad.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"missing keys: {string.Join(", ", missing)}");
            if (unexpected.Count > 0) parts.Add($"unexpected keys: {string.Join(", ", unexpected)}");
            if (bad.Count > 0) parts.Add($"not scalars: {string.Join(", ", bad)}");
            throw new ArgumentException($"{owner}.LoadStateDict: the state dict does not fit; {string.Join("; ", parts)}", nameof(stateDict));
        }
        return keys.ToDictionary(k => k, k => stateDict[k].Item());
    }

    public static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}
