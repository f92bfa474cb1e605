using System.Globalization;
using System.Text;

namespace Autograd.Optimizers;

/// <summary>Base class of the optimizers, like <c>torch.optim.Optimizer</c>: parameter groups with their own
/// hyper-parameters, per-parameter state, <see cref="ZeroGrad"/>, <see cref="Step()"/> and a state dict.</summary>
/// <remarks>
/// <para>Parameters are updated in place (they keep their identity: modules hold references to them), under
/// <see cref="AutoGrad.NoGrad"/>. Parameters whose <see cref="Tensor.Grad"/> is null are skipped.</para>
/// <para>A subclass passes its defaults (PyTorch names, flags as 0/1) to the base constructor and implements
/// <see cref="Update"/> (one parameter's step) and <see cref="StateNames"/>; it may override
/// <see cref="Validate"/>.</para>
/// </remarks>
public abstract class Optimizer
{
    private readonly List<ParamGroup> groups = [];
    private readonly string[] hyperNames;
    private readonly Dictionary<string, double> defaults;
    private readonly Dictionary<Tensor, Dictionary<string, Tensor>> state = new(ReferenceEqualityComparer.Instance);

    /// <summary>Builds the optimizer over <paramref name="groups"/>, filling every option a group does not set from
    /// <paramref name="defaults"/> and validating both.</summary>
    /// <param name="name">The optimizer's name, used in error messages (<c>"Adam"</c>).</param>
    /// <param name="groups">The parameter groups; each parameter may appear in one group only.</param>
    /// <param name="defaults">Every hyper-parameter with its default, keyed by PyTorch name, in state-dict order.</param>
    protected Optimizer(string name, IEnumerable<ParamGroup> groups, IEnumerable<KeyValuePair<string, double>> defaults)
    {
        ArgumentNullException.ThrowIfNull(groups);
        ArgumentNullException.ThrowIfNull(defaults);
        Name = name;
        var d = defaults.ToArray();
        hyperNames = d.Select(kv => kv.Key).ToArray();
        this.defaults = new Dictionary<string, double>(d);
        if (!this.defaults.ContainsKey("lr")) throw new ArgumentException($"{name}: the defaults must contain 'lr'", nameof(defaults));
        Validate(this.defaults, null);
        var list = groups.ToList();
        if (list.Sum(g => g?.Params.Count ?? 0) == 0) throw new ArgumentException($"{name}: optimizer got an empty parameter list", nameof(groups));
        foreach (var g in list) AddParamGroup(g);
    }

    /// <summary>The optimizer's name (<c>"SGD"</c>, <c>"Adam"</c>, ...).</summary>
    public string Name { get; }

    /// <summary>The parameter groups, in order. Their options (<see cref="ParamGroup.Lr"/>, ...) can be changed between steps.</summary>
    public IReadOnlyList<ParamGroup> ParamGroups => groups;

    /// <summary>The default hyper-parameters, keyed by PyTorch name (flags as 0/1).</summary>
    public IReadOnlyDictionary<string, double> Defaults => defaults;

    /// <summary>The names of the hyper-parameters every group has, in state-dict order.</summary>
    public IReadOnlyList<string> HyperParameterNames => hyperNames;

    /// <summary>Every parameter, over all groups in order: the index of a parameter here is its index in the state dict.</summary>
    public IEnumerable<Tensor> Parameters => groups.SelectMany(g => g.Params);

    /// <summary>Adds a parameter group (like <c>add_param_group</c>); options it does not set take the defaults.</summary>
    /// <exception cref="ArgumentException">A parameter is already optimized, is not a leaf or not floating point, or an option is unknown or invalid.</exception>
    public void AddParamGroup(ParamGroup group)
    {
        ArgumentNullException.ThrowIfNull(group);
        string where = $"param group {groups.Count}";
        if (groups.Any(g => ReferenceEquals(g, group)))
            throw new ArgumentException($"{Name}: this ParamGroup is already part of the optimizer", nameof(group));
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var p in Parameters) seen.Add(p);
        var inGroup = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < group.Params.Count; i++)
        {
            var p = group.Params[i] ?? throw new ArgumentException($"{Name}: parameter {i} of {where} is null", nameof(group));
            if (!p.IsLeaf)
                throw new ArgumentException($"{Name}: can't optimize a non-leaf tensor: parameter {i} of {where} {Str(p.Shape)} is the output of {p.GradFnName}", nameof(group));
            if (p.DType == DType.Int64)
                throw new ArgumentException($"{Name}: parameter {i} of {where} is {p.DType}; only Float32 and Float64 tensors can be optimized", nameof(group));
            if (!inGroup.Add(p))
                throw new ArgumentException($"{Name}: {where} contains parameter {i} {Str(p.Shape)} more than once", nameof(group));
            if (seen.Contains(p))
                throw new ArgumentException($"{Name}: some parameters appear in more than one parameter group (parameter {i} of {where} {Str(p.Shape)})", nameof(group));
        }
        foreach (var key in group.Values.Keys)
            if (!defaults.ContainsKey(key) && key != "initial_lr")
                throw new ArgumentException($"{Name}: unknown option '{key}' in {where}; {Name} has: {string.Join(", ", hyperNames)}", nameof(group));
        var merged = new Dictionary<string, double>(group.Values);
        foreach (var n in hyperNames) merged.TryAdd(n, defaults[n]);
        Validate(merged, where);
        group.Values.Clear();
        foreach (var n in hyperNames) group.Values[n] = merged[n];
        if (merged.TryGetValue("initial_lr", out var ilr)) group.Values["initial_lr"] = ilr;
        groups.Add(group);
        foreach (var p in group.Params) InitializeState(group, p);
    }

    /// <summary>Clears the gradient of every parameter: sets it to null (PyTorch's default <c>set_to_none=True</c>),
    /// or fills it with zeros when <paramref name="setToNone"/> is false.</summary>
    public void ZeroGrad(bool setToNone = true)
    {
        foreach (var p in Parameters)
        {
            if (setToNone) p.Grad = null;
            else if (p.Grad is { } g) using (AutoGrad.NoGrad()) g.Zero_();
        }
    }

    /// <summary>Performs one optimization step on every parameter with a non-null <see cref="Tensor.Grad"/>, in place and without recording.</summary>
    public void Step()
    {
        using (AutoGrad.NoGrad())
            for (int gi = 0; gi < groups.Count; gi++)
            {
                var group = groups[gi];
                for (int i = 0; i < group.Params.Count; i++)
                {
                    var p = group.Params[i];
                    if (p.Grad is not { } grad) continue;
                    if (!grad.Shape.SequenceEqual(p.Shape) || grad.DType != p.DType)
                        throw new InvalidOperationException($"{Name}.Step: the gradient of parameter {i} of param group {gi} is {grad.DType} {Str(grad.Shape)}, the parameter is {p.DType} {Str(p.Shape)}");
                    if (!state.TryGetValue(p, out var s)) state[p] = s = [];
                    Update(group, p, grad, s);
                }
            }
    }

    /// <summary>Re-evaluates the model with <paramref name="closure"/> (which computes the loss and calls
    /// <see cref="Tensor.Backward(Tensor?, bool, bool)"/>), then performs a step; returns the loss (PyTorch's <c>step(closure)</c>).</summary>
    public Tensor Step(Func<Tensor> closure)
    {
        ArgumentNullException.ThrowIfNull(closure);
        var loss = closure();
        Step();
        return loss;
    }

    /// <summary>The state of parameter <paramref name="parameter"/> (<c>exp_avg</c>, <c>step</c>, ...; empty before its
    /// first step). The tensors are live: read them, do not modify them.</summary>
    public IReadOnlyDictionary<string, Tensor> GetState(Tensor parameter) =>
        state.TryGetValue(parameter, out var s) ? s : new Dictionary<string, Tensor>();

    // ---------------- for subclasses ----------------

    /// <summary>Updates <paramref name="param"/> in place from <paramref name="grad"/>, reading and writing its
    /// <paramref name="state"/> (empty on the first step). Called under NoGrad; must not modify <paramref name="grad"/>.</summary>
    protected abstract void Update(ParamGroup group, Tensor param, Tensor grad, Dictionary<string, Tensor> state);

    /// <summary>The names of the state entries a parameter of <paramref name="group"/> has once it has been stepped
    /// (for the state dict: a loaded parameter state must have exactly these).</summary>
    protected abstract IEnumerable<string> StateNames(ParamGroup group);

    /// <summary>Whether state entry <paramref name="name"/> is a Float64 scalar (like <c>step</c>) rather than a tensor
    /// of the parameter's shape and dtype.</summary>
    protected virtual bool IsScalarState(string name) => name is "step";

    /// <summary>Creates the state of a parameter when its group is added (most optimizers create it lazily in
    /// <see cref="Update"/>; Adagrad creates it here, as PyTorch does).</summary>
    protected virtual void InitializeState(ParamGroup group, Tensor param) { }

    /// <summary>The state of <paramref name="param"/>, created empty if absent.</summary>
    protected Dictionary<string, Tensor> StateOf(Tensor param)
    {
        if (!state.TryGetValue(param, out var s)) state[param] = s = [];
        return s;
    }

    /// <summary>Checks hyper-parameters; throws <see cref="ArgumentException"/> naming the optimizer and the argument.</summary>
    /// <param name="options">Every hyper-parameter, by PyTorch name.</param>
    /// <param name="where">Null for the constructor's defaults, else the group (<c>"param group 1"</c>).</param>
    protected virtual void Validate(IReadOnlyDictionary<string, double> options, string? where)
    {
        NonNegative(options, "lr", where);
        foreach (var n in hyperNames)
            if (IsFlag(n) && options[n] is not (0 or 1)) throw Invalid(n, options[n], "a flag must be 0 or 1", where);
    }

    /// <summary>Whether hyper-parameter <paramref name="name"/> is a boolean flag stored as 0/1.</summary>
    protected virtual bool IsFlag(string name) => name is "maximize" or "nesterov" or "amsgrad" or "centered" or "decoupled_weight_decay";

    /// <summary>The checks shared by the Adam family: eps and weight_decay non-negative, both betas in [0, 1).</summary>
    protected void ValidateAdamFamily(IReadOnlyDictionary<string, double> options, string? where)
    {
        NonNegative(options, "eps", where);
        InRange(options, "betas.0", 0, 1, false, where);
        InRange(options, "betas.1", 0, 1, false, where);
        NonNegative(options, "weight_decay", where);
    }

    /// <summary>Throws unless option <paramref name="name"/> is &gt;= 0 (NaN fails).</summary>
    protected void NonNegative(IReadOnlyDictionary<string, double> options, string name, string? where)
    {
        double v = options[name];
        if (!(v >= 0)) throw Invalid(name, v, "must be >= 0", where);
    }

    /// <summary>Throws unless option <paramref name="name"/> lies in [<paramref name="low"/>, <paramref name="high"/>)
    /// (or [low, high] when <paramref name="highInclusive"/>).</summary>
    protected void InRange(IReadOnlyDictionary<string, double> options, string name, double low, double high, bool highInclusive, string? where)
    {
        double v = options[name];
        if (!(v >= low && (highInclusive ? v <= high : v < high)))
            throw Invalid(name, v, $"must be in [{F(low)}, {F(high)}{(highInclusive ? "]" : ")")}", where);
    }

    /// <summary>An <see cref="ArgumentException"/> for an invalid option: names the optimizer, the argument (the
    /// constructor's parameter name for defaults, the PyTorch name and group otherwise), the value and the rule.</summary>
    protected ArgumentException Invalid(string name, double value, string rule, string? where) =>
        where == null
            ? new ArgumentException($"{Name}: invalid {ArgName(name)}: {F(value)} ({rule})", ArgName(name))
            : new ArgumentException($"{Name}: invalid {name} in {where}: {F(value)} ({rule})", name);

    /// <summary>Increments the <c>step</c> entry of <paramref name="state"/> (a Float64 scalar, created at 0) and returns the new count.</summary>
    protected static double IncrementStep(Dictionary<string, Tensor> state)
    {
        if (!state.TryGetValue("step", out var t)) state["step"] = t = Tensor.Scalar(0, DType.Float64);
        double step = t.Item() + 1;
        t.Fill_(step);
        return step;
    }

    /// <summary>State entry <paramref name="name"/>, created by <paramref name="create"/> if absent.</summary>
    protected static Tensor GetOrCreate(Dictionary<string, Tensor> state, string name, Func<Tensor> create)
    {
        if (!state.TryGetValue(name, out var t)) state[name] = t = create();
        return t;
    }

    // ---------------- state dict ----------------

    /// <summary>The optimizer's state as flat tensors: <c>state.{i}.{name}</c> (copies of each parameter's state,
    /// <c>i</c> counting parameters over all groups in order; parameters never stepped have none) and
    /// <c>param_groups.{g}.{option}</c> (Float64 scalars: <c>lr</c>, <c>betas.0</c>, <c>betas.1</c>, flags as 0/1,
    /// <c>initial_lr</c> when a scheduler set it) with <c>param_groups.{g}.params</c>, the group's parameter indices.</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor>();
        int index = 0;
        for (int g = 0; g < groups.Count; g++)
        {
            var group = groups[g];
            foreach (var n in hyperNames) d[$"param_groups.{g}.{n}"] = Tensor.Scalar(group.Values[n], DType.Float64);
            if (group.InitialLr is double ilr) d[$"param_groups.{g}.initial_lr"] = Tensor.Scalar(ilr, DType.Float64);
            d[$"param_groups.{g}.params"] = Tensor.From(Enumerable.Range(index, group.Params.Count).Select(i => (double)i).ToArray(), group.Params.Count);
            foreach (var p in group.Params)
            {
                if (state.TryGetValue(p, out var s))
                    foreach (var (name, t) in s) d[$"state.{index}.{name}"] = Clone(t);
                index++;
            }
        }
        return d;
    }

    /// <summary>Restores a state produced by <see cref="StateDict"/> of an optimizer of the same kind over parameters
    /// of the same shapes and grouping: hyper-parameters and per-parameter state (converted to each parameter's dtype),
    /// replacing the current state. Nothing changes if the dict does not fit.</summary>
    /// <exception cref="ArgumentException">Lists every missing or unexpected key and every shape mismatch.</exception>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> stateDict)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        var missing = new List<string>();
        var unexpected = new List<string>();
        var errors = new List<string>();
        var parameters = Parameters.ToArray();
        var groupOf = groups.SelectMany(g => g.Params.Select(_ => g)).ToArray();
        var newOptions = groups.Select(_ => new Dictionary<string, double>()).ToArray();
        var newState = new Dictionary<int, Dictionary<string, Tensor>>();

        foreach (var (key, value) in stateDict)
        {
            if (value is null) { errors.Add($"{key} is null"); continue; }
            var parts = key.Split('.', 3);
            if (parts.Length == 3 && parts[0] == "param_groups" && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int g) && g < groups.Count)
            {
                string name = parts[2];
                if (name == "params")
                {
                    int start = groups.Take(g).Sum(x => x.Params.Count), n = groups[g].Params.Count;
                    if (!value.Shape.SequenceEqual([n]))
                        errors.Add($"shape mismatch for {key}: param group {g} has {n} parameters, the state dict {Str(value.Shape)}");
                    else if (!value.ToDoubleArray().SequenceEqual(Enumerable.Range(start, n).Select(i => (double)i)))
                        errors.Add($"{key}: param group {g} holds parameters {start}..{start + n - 1}, the state dict [{string.Join(", ", value.ToDoubleArray())}]");
                }
                else if (defaults.ContainsKey(name) || name == "initial_lr")
                {
                    if (value.Rank != 0) errors.Add($"shape mismatch for {key}: expected a scalar [], got {Str(value.Shape)}");
                    else newOptions[g][name] = value.Item();
                }
                else unexpected.Add(key);
            }
            else if (parts.Length == 3 && parts[0] == "state" && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int i) && i < parameters.Length)
            {
                if (!newState.TryGetValue(i, out var s)) newState[i] = s = [];
                s[parts[2]] = value;
            }
            else unexpected.Add(key);
        }

        for (int g = 0; g < groups.Count; g++)
        {
            foreach (var n in hyperNames.Append("params"))
                if (!stateDict.ContainsKey($"param_groups.{g}.{n}")) missing.Add($"param_groups.{g}.{n}");
            if (hyperNames.All(newOptions[g].ContainsKey))
                try { Validate(newOptions[g], $"param group {g}"); }
                catch (ArgumentException e) { errors.Add(e.Message); }
        }

        foreach (var (i, s) in newState.OrderBy(kv => kv.Key))
        {
            var g = groups.IndexOf(groupOf[i]);
            var probe = new ParamGroup([]);   // the loaded options; the current ones where missing (reported above)
            foreach (var n in hyperNames) probe.Values[n] = newOptions[g].TryGetValue(n, out var v) ? v : groups[g].Values[n];
            var expected = StateNames(probe).ToArray();
            foreach (var n in expected) if (!s.ContainsKey(n)) missing.Add($"state.{i}.{n}");
            foreach (var (n, t) in s)
            {
                if (!expected.Contains(n)) { unexpected.Add($"state.{i}.{n}"); continue; }
                int[] want = IsScalarState(n) ? [] : parameters[i].Shape;
                if (!t.Shape.SequenceEqual(want))
                    errors.Add($"shape mismatch for state.{i}.{n}: parameter {i} needs {Str(want)}, the state dict has {Str(t.Shape)}");
            }
        }

        if (missing.Count + unexpected.Count + errors.Count > 0)
        {
            var sb = new StringBuilder($"{Name}.LoadStateDict: the state dict does not fit this optimizer");
            if (missing.Count > 0) sb.Append($"; missing keys: {string.Join(", ", missing)}");
            if (unexpected.Count > 0) sb.Append($"; unexpected keys: {string.Join(", ", unexpected)}");
            if (errors.Count > 0) sb.Append($"; {string.Join("; ", errors)}");
            throw new ArgumentException(sb.ToString(), nameof(stateDict));
        }

        for (int g = 0; g < groups.Count; g++)
        {
            groups[g].Values.Clear();
            foreach (var n in hyperNames) groups[g].Values[n] = newOptions[g][n];
            if (newOptions[g].TryGetValue("initial_lr", out var ilr)) groups[g].Values["initial_lr"] = ilr;
        }
        state.Clear();
        foreach (var (i, s) in newState)
            state[parameters[i]] = s.ToDictionary(kv => kv.Key,
                kv => IsScalarState(kv.Key) ? Clone(kv.Value.To(DType.Float64)) : Clone(kv.Value.To(parameters[i].DType)));
    }

    // ---------------- helpers ----------------

    /// <summary>A copy of <paramref name="t"/> that shares nothing with it and is not part of any graph.</summary>
    internal static Tensor Clone(Tensor t)
    {
        using (AutoGrad.NoGrad()) return Tensor.ZerosLike(t).Copy_(t.Detach());
    }

    internal static string Str(int[] shape) => "[" + string.Join(", ", shape) + "]";

    internal static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>The constructor parameter a PyTorch option name comes from: <c>weight_decay</c> → <c>weightDecay</c>, <c>betas.0</c> → <c>betas[0]</c>.</summary>
    internal static string ArgName(string option)
    {
        if (option.StartsWith("betas.", StringComparison.Ordinal)) return $"betas[{option[6..]}]";
        var parts = option.Split('_');
        return parts[0] + string.Concat(parts.Skip(1).Select(s => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..]));
    }
}
