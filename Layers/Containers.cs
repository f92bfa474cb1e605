using System.Collections;

namespace Autograd.Layers;

/// <summary>Modules applied one after another, numbered "0", "1", ... or named; indexable, as <c>nn.Sequential</c>.</summary>
public sealed class Sequential : Module, IEnumerable<Module>
{
    /// <summary>Children numbered from 0.</summary>
    public Sequential(params Module[] modules)
    {
        for (int i = 0; i < modules.Length; i++) Register(i.ToString(), modules[i]);
    }

    /// <summary>Named children, in order (PyTorch's OrderedDict form).</summary>
    public Sequential(params (string Name, Module Module)[] modules)
    {
        foreach (var (name, m) in modules) Register(name, m);
    }

    /// <summary>The i-th child (negative counts from the end).</summary>
    public Module this[int i] => Children().ElementAt(i < 0 ? i + Count : i);

    /// <summary>The child named <paramref name="name"/>.</summary>
    public Module this[string name] => NamedChildren().First(c => c.Name == name).Module;

    /// <summary>Number of children.</summary>
    public int Count => Children().Count();

    /// <summary>Appends a module with the next number as its name; returns this.</summary>
    public Sequential Append(Module module) { Register(Count.ToString(), module); return this; }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        foreach (var m in Children()) input = m.Call(input);
        return input;
    }

    /// <inheritdoc/>
    public IEnumerator<Module> GetEnumerator() => Children().GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>A list of modules registered as "0", "1", ... (no forward of its own), as <c>nn.ModuleList</c>.</summary>
public sealed class ModuleList : Module, IEnumerable<Module>
{
    /// <summary>A list of the given modules.</summary>
    public ModuleList(params Module[] modules) { foreach (var m in modules) Add(m); }
    /// <summary>Appends a module.</summary>
    public void Add(Module module) => Register(Count.ToString(), module);
    /// <summary>The i-th module.</summary>
    public Module this[int i] => Children().ElementAt(i < 0 ? i + Count : i);
    /// <summary>Number of modules.</summary>
    public int Count => Children().Count();
    /// <summary>A ModuleList has no forward: iterate it in the owner's Forward.</summary>
    public override Tensor Forward(Tensor input) => throw new NotSupportedException("ModuleList has no Forward: iterate over it");
    /// <inheritdoc/>
    public IEnumerator<Module> GetEnumerator() => Children().GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>Modules by name (no forward of its own), as <c>nn.ModuleDict</c>.</summary>
public sealed class ModuleDict : Module
{
    /// <summary>Adds a module under <paramref name="name"/>.</summary>
    public void Add(string name, Module module) => Register(name, module);
    /// <summary>The module named <paramref name="name"/>.</summary>
    public Module this[string name] => NamedChildren().First(c => c.Name == name).Module;
    /// <summary>The names, in insertion order.</summary>
    public IEnumerable<string> Keys => NamedChildren().Select(c => c.Name);
    /// <summary>A ModuleDict has no forward: pick modules by name in the owner's Forward.</summary>
    public override Tensor Forward(Tensor input) => throw new NotSupportedException("ModuleDict has no Forward: index it by name");
}

/// <summary><c>y = body(x) + shortcut(x)</c>, the shortcut being the identity or a projection (e.g. 1x1 conv + batch norm),
/// optionally followed by an activation: the residual block of ResNet.</summary>
public sealed class Residual : Module
{
    private readonly Module body;
    private readonly Module? shortcut, after;

    /// <summary>A residual block; children are named "body", "shortcut" and "activation".</summary>
    public Residual(Module body, Module? shortcut = null, Module? activation = null)
    {
        this.body = Register("body", body);
        this.shortcut = shortcut == null ? null : Register("shortcut", shortcut);
        after = activation == null ? null : Register("activation", activation);
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        var y = body.Call(input) + (shortcut?.Call(input) ?? input);
        return after?.Call(y) ?? y;
    }
}

/// <summary>Branches applied to the same input, outputs concatenated along <c>dim</c> (Inception, DenseNet).</summary>
public sealed class Concat : Module
{
    private readonly int dim;

    /// <summary>Branches numbered from 0, concatenated along <paramref name="dim"/> (channels by default).</summary>
    public Concat(int dim = 1, params Module[] branches)
    {
        this.dim = dim;
        for (int i = 0; i < branches.Length; i++) Register(i.ToString(), branches[i]);
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Functional.Cat([.. Children().Select(b => b.Call(input))], dim);
    /// <inheritdoc/>
    protected override string ExtraRepr() => $"dim={dim}";
}

/// <summary>Branches applied to the same input, outputs summed.</summary>
public sealed class ParallelSum : Module
{
    /// <summary>Branches numbered from 0.</summary>
    public ParallelSum(params Module[] branches)
    {
        for (int i = 0; i < branches.Length; i++) Register(i.ToString(), branches[i]);
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Children().Select(b => b.Call(input)).Aggregate((a, b) => a + b);
}

/// <summary>A module from a function, for one-off custom layers: <c>new Lambda(x =&gt; x * 2)</c>. Parameters and children can
/// be passed to register them.</summary>
public sealed class Lambda : Module
{
    private readonly Func<Tensor, Tensor> forward;

    /// <summary>Wraps <paramref name="forward"/>; <paramref name="children"/> are registered by name so their parameters train.</summary>
    public Lambda(Func<Tensor, Tensor> forward, params (string Name, Module Module)[] children)
    {
        this.forward = forward;
        foreach (var (name, m) in children) Register(name, m);
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => forward(input);
}
