using System.Text;

namespace Autograd.Layers;

/// <summary>Base class of every layer and model, like <c>torch.nn.Module</c>: parameters, buffers and child modules are
/// registered by name in declaration order, and state dicts use PyTorch's dotted names (<c>layer1.0.conv1.weight</c>).</summary>
/// <example><code>
/// class TwoLayer : Module
/// {
///     private readonly Linear fc1, fc2;
///     public TwoLayer() { fc1 = Register("fc1", new Linear(4, 8)); fc2 = Register("fc2", new Linear(8, 2)); }
///     public override Tensor Forward(Tensor x) => fc2.Call(Functional.Relu(fc1.Call(x)));
/// }
/// </code></example>
public abstract class Module
{
    private readonly List<(string Name, Tensor? Value)> parameters = [];
    private readonly List<(string Name, Tensor? Value)> buffers = [];
    private readonly List<(string Name, Module Value)> children = [];
    private readonly List<Func<Module, Tensor, Tensor?>> forwardPreHooks = [];
    private readonly List<Func<Module, Tensor, Tensor, Tensor?>> forwardHooks = [];
    private readonly List<Func<Module, Tensor?, Tensor, Tensor?>> backwardHooks = [];

    /// <summary>Whether the module is in training mode (the default); see <see cref="Train"/> and <see cref="Eval"/>.</summary>
    public bool Training { get; private set; } = true;

    /// <summary>The computation. Call modules through <see cref="Call"/>, which also runs hooks.</summary>
    public abstract Tensor Forward(Tensor input);

    /// <summary>Runs the forward pre-hooks, <see cref="Forward"/> and the forward hooks, like <c>module(x)</c>; with backward
    /// hooks registered, also arranges for them to run when backward reaches this call.</summary>
    public Tensor Call(Tensor input)
    {
        foreach (var hook in forwardPreHooks.ToArray()) input = hook(this, input) ?? input;
        var hooks = backwardHooks.Count > 0 && AutoGrad.IsGradEnabled ? backwardHooks.ToArray() : null;
        Tensor? gradOutput = null;
        if (hooks != null && input.RequiresGrad)
        {
            // A recorded identity on the input: its gradient is the module's input gradient, complete once backward has
            // passed through the whole call; the hooks see it together with the output gradient and may replace it.
            input = Identity(input);
            input.RegisterHook(g => RunBackwardHooks(hooks, g, gradOutput!));
        }
        var output = Forward(input);
        foreach (var hook in forwardHooks.ToArray()) output = hook(this, input, output) ?? output;
        if (hooks != null && output.RequiresGrad)
        {
            output = Identity(output);
            bool inputHasGrad = input.RequiresGrad;
            output.RegisterHook(g => { gradOutput = g; if (!inputHasGrad) RunBackwardHooks(hooks, null, g); return null; });
        }
        return output;
    }

    private static Tensor Identity(Tensor x) => AutoGrad.Record(x.Detach(), "BackwardHook", Saves.None, g => [g], x);

    private Tensor? RunBackwardHooks(Func<Module, Tensor?, Tensor, Tensor?>[] hooks, Tensor? gradInput, Tensor gradOutput)
    {
        foreach (var hook in hooks) gradInput = hook(this, gradInput, gradOutput) ?? gradInput;
        return gradInput;
    }

    /// <summary>Adds a hook called before every <see cref="Call"/> with (module, input); a non-null result replaces the input
    /// (like <c>register_forward_pre_hook</c>). Remove it with the returned handle.</summary>
    public RemovableHandle RegisterForwardPreHook(Func<Module, Tensor, Tensor?> hook) => Add(forwardPreHooks, hook);

    /// <summary>Adds a hook called after every <see cref="Call"/> with (module, input, output); a non-null result replaces the output
    /// (like <c>register_forward_hook</c>). Remove it with the returned handle.</summary>
    public RemovableHandle RegisterForwardHook(Func<Module, Tensor, Tensor, Tensor?> hook) => Add(forwardHooks, hook);

    /// <summary>Adds a hook called during backward with (module, gradInput, gradOutput) once the gradient with respect to the
    /// module's input is computed (like <c>register_full_backward_hook</c>); gradInput is null when the input does not require
    /// grad. A non-null result replaces gradInput for the rest of the backward pass. Applies to calls made after registration.</summary>
    /// <example><code>
    /// using var h = layer.RegisterFullBackwardHook((m, gin, gout) => { Console.WriteLine(gout.Abs().Max().Item()); return null; });
    /// </code></example>
    public RemovableHandle RegisterFullBackwardHook(Func<Module, Tensor?, Tensor, Tensor?> hook) => Add(backwardHooks, hook);

    private static RemovableHandle Add<THook>(List<THook> hooks, THook hook)
    {
        ArgumentNullException.ThrowIfNull(hook);
        hooks.Add(hook);
        return new RemovableHandle(() => hooks.Remove(hook));
    }

    // ---------------- registration ----------------

    private static void CheckName(string name, string kind)
    {
        if (string.IsNullOrEmpty(name) || name.Contains('.'))
            throw new ArgumentException($"{kind} name \"{name}\" must be non-empty and contain no '.'");
    }

    private bool Taken(string name) => parameters.Any(p => p.Name == name) || buffers.Any(b => b.Name == name) || children.Any(c => c.Name == name);

    /// <summary>Registers a parameter (made a leaf that requires grad); null registers an absent optional parameter (e.g. no bias).</summary>
    protected Tensor? RegisterParameter(string name, Tensor? value)
    {
        CheckName(name, "parameter");
        if (Taken(name)) throw new ArgumentException($"{GetType().Name}: \"{name}\" is already registered");
        value?.RequiresGrad_();
        parameters.Add((name, value));
        return value;
    }

    /// <summary>Registers a buffer: state saved in the state dict but not trained (e.g. running statistics).</summary>
    protected Tensor? RegisterBuffer(string name, Tensor? value)
    {
        CheckName(name, "buffer");
        if (Taken(name)) throw new ArgumentException($"{GetType().Name}: \"{name}\" is already registered");
        buffers.Add((name, value));
        return value;
    }

    /// <summary>Registers a child module and returns it, so a field can be initialized in one line.</summary>
    public T Register<T>(string name, T module) where T : Module
    {
        CheckName(name, "module");
        if (Taken(name)) throw new ArgumentException($"{GetType().Name}: \"{name}\" is already registered");
        children.Add((name, module));
        return module;
    }

    /// <summary>The parameter registered as <paramref name="name"/> (null if registered as absent).</summary>
    protected Tensor? Param(string name) => parameters.First(p => p.Name == name).Value;

    /// <summary>The buffer registered as <paramref name="name"/>.</summary>
    protected Tensor? Buffer(string name) => buffers.First(b => b.Name == name).Value;

    /// <summary>Replaces a registered buffer's tensor (for buffers whose shape or dtype changes).</summary>
    protected void SetBuffer(string name, Tensor? value)
    {
        int i = buffers.FindIndex(b => b.Name == name);
        if (i < 0) throw new ArgumentException($"{GetType().Name}: no buffer \"{name}\"");
        buffers[i] = (name, value);
    }

    // ---------------- traversal ----------------

    /// <summary>Direct children with their names, in registration order.</summary>
    public IEnumerable<(string Name, Module Module)> NamedChildren() => children.Select(c => (c.Name, c.Value));

    /// <summary>Direct children.</summary>
    public IEnumerable<Module> Children() => children.Select(c => c.Value);

    /// <summary>This module and every descendant with dotted names ("" for this one), depth first.</summary>
    public IEnumerable<(string Name, Module Module)> NamedModules(string prefix = "")
    {
        yield return (prefix, this);
        foreach (var (name, child) in children)
            foreach (var m in child.NamedModules(prefix.Length == 0 ? name : prefix + "." + name)) yield return m;
    }

    /// <summary>This module and every descendant.</summary>
    public IEnumerable<Module> Modules() => NamedModules().Select(m => m.Module);

    /// <summary>Every parameter with its dotted name, in registration order (each tensor once).</summary>
    public IEnumerable<(string Name, Tensor Parameter)> NamedParameters(bool recurse = true)
    {
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var (prefix, m) in recurse ? NamedModules() : [("", this)])
            foreach (var (name, p) in m.parameters)
                if (p != null && seen.Add(p)) yield return (prefix.Length == 0 ? name : prefix + "." + name, p);
    }

    /// <summary>Every parameter (for an optimizer).</summary>
    public IEnumerable<Tensor> Parameters(bool recurse = true) => NamedParameters(recurse).Select(p => p.Parameter);

    /// <summary>Every buffer with its dotted name.</summary>
    public IEnumerable<(string Name, Tensor Buffer)> NamedBuffers(bool recurse = true)
    {
        foreach (var (prefix, m) in recurse ? NamedModules() : [("", this)])
            foreach (var (name, b) in m.buffers)
                if (b != null) yield return (prefix.Length == 0 ? name : prefix + "." + name, b);
    }

    /// <summary>Every buffer.</summary>
    public IEnumerable<Tensor> Buffers(bool recurse = true) => NamedBuffers(recurse).Select(b => b.Buffer);

    /// <summary>Total number of parameter elements.</summary>
    public long ParameterCount => Parameters().Sum(p => (long)p.Numel);

    /// <summary>Calls <paramref name="fn"/> on every descendant and then on this module (as <c>module.apply</c>); returns this.</summary>
    public Module Apply(Action<Module> fn)
    {
        foreach (var c in Children()) c.Apply(fn);
        fn(this);
        return this;
    }

    // ---------------- modes and gradients ----------------

    /// <summary>Sets training mode on this module and every descendant; returns this.</summary>
    public Module Train(bool mode = true)
    {
        foreach (var m in Modules()) m.Training = mode;
        return this;
    }

    /// <summary>Sets evaluation mode (batch norm uses running statistics, dropout is off); returns this.</summary>
    public Module Eval() => Train(false);

    /// <summary>Clears the gradient of every parameter (PyTorch's default set_to_none).</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters()) p.ZeroGrad();
    }

    /// <summary>Converts every parameter and floating-point buffer to <paramref name="dtype"/>; returns this.</summary>
    public Module To(DType dtype)
    {
        foreach (var m in Modules())
        {
            for (int i = 0; i < m.parameters.Count; i++)
                if (m.parameters[i].Value is Tensor p && p.DType != dtype)
                    m.parameters[i] = (m.parameters[i].Name, p.Detach().To(dtype).RequiresGrad_());
            for (int i = 0; i < m.buffers.Count; i++)
                if (m.buffers[i].Value is Tensor b && b.DType != DType.Int64 && b.DType != dtype)
                    m.buffers[i] = (m.buffers[i].Name, b.To(dtype));
        }
        return this;
    }

    // ---------------- state dict ----------------

    /// <summary>Every parameter and buffer by dotted name, in registration order (the tensors themselves, not copies).</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var d = new Dictionary<string, Tensor>();
        foreach (var (prefix, m) in NamedModules())
        {
            foreach (var (name, p) in m.parameters) if (p != null) d[prefix.Length == 0 ? name : prefix + "." + name] = p;
            foreach (var (name, b) in m.buffers) if (b != null) d[prefix.Length == 0 ? name : prefix + "." + name] = b;
        }
        return d;
    }

    /// <summary>Copies values from <paramref name="state"/> into this module's parameters and buffers. With <paramref name="strict"/>,
    /// a missing or unexpected key is an error; a shape mismatch always is. Returns the missing and unexpected keys.</summary>
    public (List<string> Missing, List<string> Unexpected) LoadStateDict(IReadOnlyDictionary<string, Tensor> state, bool strict = true)
    {
        var own = StateDict();
        var missing = own.Keys.Where(k => !state.ContainsKey(k)).ToList();
        var unexpected = state.Keys.Where(k => !own.ContainsKey(k)).ToList();
        if (strict && (missing.Count > 0 || unexpected.Count > 0))
            throw new ArgumentException($"LoadStateDict ({GetType().Name}): " +
                (missing.Count > 0 ? $"missing keys: {string.Join(", ", missing)}" : "") +
                (missing.Count > 0 && unexpected.Count > 0 ? "; " : "") +
                (unexpected.Count > 0 ? $"unexpected keys: {string.Join(", ", unexpected)}" : ""));
        foreach (var (key, target) in own)
        {
            if (!state.TryGetValue(key, out var source)) continue;
            if (!source.Shape.SequenceEqual(target.Shape))
                throw new ArgumentException($"LoadStateDict ({GetType().Name}): shape mismatch for {key}: the checkpoint has [{string.Join(", ", source.Shape)}], the module [{string.Join(", ", target.Shape)}]");
            using (AutoGrad.NoGrad()) target.Copy_(source);
        }
        return (missing, unexpected);
    }

    // ---------------- printing ----------------

    /// <summary>The part inside the parentheses of this module's line, e.g. <c>in_features=2, out_features=3, bias=True</c>.</summary>
    protected virtual string ExtraRepr() => "";

    /// <summary>The type name shown when printing (PyTorch's class name).</summary>
    protected virtual string DisplayName => GetType().Name;

    /// <summary>A tree like PyTorch's <c>print(model)</c>.</summary>
    public override string ToString()
    {
        if (children.Count == 0) return $"{DisplayName}({ExtraRepr()})";
        var sb = new StringBuilder($"{DisplayName}(");
        var extra = ExtraRepr();
        if (extra.Length > 0) sb.Append('\n').Append("  ").Append(extra);
        foreach (var (name, child) in children)
            sb.Append("\n  (").Append(name).Append("): ").Append(child.ToString().Replace("\n", "\n  "));
        return sb.Append("\n)").ToString();
    }

    /// <summary>PyTorch's spelling of booleans in module printouts.</summary>
    protected static string Py(bool b) => b ? "True" : "False";

    /// <summary>A float printed the way Python does: <c>0.1</c>, <c>1e-05</c>.</summary>
    protected static string Py(double v) => v != 0 && Math.Abs(v) < 1e-4
        ? v.ToString("0.################e-00", System.Globalization.CultureInfo.InvariantCulture)
        : v.ToString("R", System.Globalization.CultureInfo.InvariantCulture) + (v == Math.Floor(v) && Math.Abs(v) < 1e16 ? ".0" : "");

    /// <summary>A tuple printed the PyTorch way: <c>(3, 3)</c>.</summary>
    protected static string Py(int[] v) => v.Length == 1 ? $"({v[0]},)" : "(" + string.Join(", ", v) + ")";
}
