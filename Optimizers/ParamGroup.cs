namespace Autograd.Optimizers;

/// <summary>A set of parameters optimized with its own hyper-parameters, like a PyTorch param group
/// (<c>{"params": ..., "lr": ...}</c>). Options not set on the group take the optimizer's defaults when the
/// optimizer is built; afterwards every hyper-parameter of the optimizer is present and can be changed between
/// steps (schedulers change <see cref="Lr"/>).</summary>
/// <remarks>Options are keyed by their PyTorch names (<c>lr</c>, <c>weight_decay</c>, <c>momentum</c>, <c>betas.0</c>,
/// <c>betas.1</c>, <c>amsgrad</c>, ...); flags are stored as 0 or 1. The common ones have typed properties.</remarks>
/// <example><code>
/// var opt = new SGD([
///     new ParamGroup(backbone) { Lr = 1e-3 },
///     new ParamGroup(head) { WeightDecay = 0, ["dampening"] = 0.1 },
/// ], lr: 1e-2, momentum: 0.9);
/// opt.ParamGroups[1].Lr *= 0.5;
/// </code></example>
public sealed class ParamGroup
{
    internal readonly Dictionary<string, double> Values = [];

    /// <summary>A group over <paramref name="parameters"/> (copied into a list, order kept).</summary>
    public ParamGroup(IEnumerable<Tensor> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Params = parameters.ToArray();
    }

    /// <summary>A group over <paramref name="parameters"/> with options given by PyTorch name
    /// (<c>new ParamGroup(ps, new Dictionary&lt;string, double&gt; { ["lr"] = 0.1, ["betas.0"] = 0.8 })</c>).</summary>
    public ParamGroup(IEnumerable<Tensor> parameters, IReadOnlyDictionary<string, double> options) : this(parameters)
    {
        ArgumentNullException.ThrowIfNull(options);
        foreach (var (k, v) in options) this[k] = v;
    }

    /// <summary>The parameters of this group, in order.</summary>
    public IReadOnlyList<Tensor> Params { get; }

    /// <summary>The options set on this group, keyed by PyTorch name (after construction of the optimizer: all of
    /// its hyper-parameters, plus <c>initial_lr</c> once a scheduler has set it).</summary>
    public IReadOnlyDictionary<string, double> Options => Values;

    /// <summary>Whether option <paramref name="name"/> is set.</summary>
    public bool Has(string name) => Values.ContainsKey(name);

    /// <summary>Option <paramref name="name"/> by its PyTorch name (<c>"momentum"</c>, <c>"betas.0"</c>, flags as 0/1).</summary>
    /// <exception cref="KeyNotFoundException">The option is not set (and the optimizer has no such hyper-parameter).</exception>
    public double this[string name]
    {
        get => Values.TryGetValue(name, out var v) ? v
            : throw new KeyNotFoundException($"param group has no option '{name}' (set: {(Values.Count == 0 ? "none" : string.Join(", ", Values.Keys))})");
        set
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(name);
            if (name == "params") throw new ArgumentException("'params' is not an option: pass the parameters to the ParamGroup constructor", nameof(name));
            Values[name] = value;
        }
    }

    /// <summary>Learning rate (<c>lr</c>).</summary>
    public double Lr { get => this["lr"]; set => this["lr"] = value; }

    /// <summary>Weight decay (<c>weight_decay</c>).</summary>
    public double WeightDecay { get => this["weight_decay"]; set => this["weight_decay"] = value; }

    /// <summary>Momentum factor (<c>momentum</c>; SGD and RMSprop).</summary>
    public double Momentum { get => this["momentum"]; set => this["momentum"] = value; }

    /// <summary>Term added to denominators for numerical stability (<c>eps</c>).</summary>
    public double Eps { get => this["eps"]; set => this["eps"] = value; }

    /// <summary>Coefficients of the running averages (<c>betas</c>, stored as <c>betas.0</c> and <c>betas.1</c>; Adam family).</summary>
    public (double Beta1, double Beta2) Betas
    {
        get => (this["betas.0"], this["betas.1"]);
        set { this["betas.0"] = value.Beta1; this["betas.1"] = value.Beta2; }
    }

    /// <summary>Maximize the objective instead of minimizing it (<c>maximize</c>).</summary>
    public bool Maximize { get => this["maximize"] != 0; set => this["maximize"] = value ? 1 : 0; }

    /// <summary>The learning rate schedulers start from (<c>initial_lr</c>), or null until a scheduler sets it.</summary>
    public double? InitialLr
    {
        get => Values.TryGetValue("initial_lr", out var v) ? v : null;
        set { if (value is double v) Values["initial_lr"] = v; else Values.Remove("initial_lr"); }
    }

    internal bool Flag(string name) => this[name] != 0;

    /// <summary>The options, for printing.</summary>
    public override string ToString() =>
        $"ParamGroup({Params.Count} params{string.Concat(Values.Select(kv => $", {kv.Key}={kv.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)}"))})";
}
