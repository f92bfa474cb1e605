namespace Autograd;

/// <summary>A differentiable op defined by the user, like <c>torch.autograd.Function</c>: subclass it, implement
/// <see cref="Forward"/> (run without recording) and <see cref="Backward"/> (one gradient per input, null for none), and
/// call <see cref="Apply"/> (one output) or <see cref="ApplyMany"/> (several): the call is recorded in the graph like a
/// built-in op. When <see cref="Backward"/> is written with tensor ops, gradients of gradients flow through it.
/// <see cref="GradCheck.Check(CustomFunction, Tensor[])"/> verifies a function against finite differences.</summary>
/// <example><code>
/// sealed class Cube : CustomFunction
/// {
///     protected override Tensor[] Forward(FunctionContext ctx, Tensor[] x) { ctx.SaveForBackward(x[0]); return [x[0] * x[0] * x[0]]; }
///     protected override Tensor?[] Backward(FunctionContext ctx, Tensor[] g) { var x = ctx.SavedTensors[0]; return [g[0] * 3 * x * x]; }
/// }
/// var y = new Cube().Apply(x);
/// </code></example>
public abstract class CustomFunction
{
    /// <summary>The name used in the graph and in error messages (the class name by default).</summary>
    public virtual string Name => GetType().Name;

    /// <summary>Computes the outputs from the inputs. Runs with recording off; save what <see cref="Backward"/> needs in
    /// <paramref name="ctx"/>. Returning an input unchanged is allowed (the output is a new tensor over the same storage).</summary>
    protected abstract Tensor[] Forward(FunctionContext ctx, Tensor[] inputs);

    /// <summary>Maps the gradients of the outputs (one per output, zeros for outputs that received none or are marked
    /// non-differentiable) to one gradient per input, null where there is none. Runs with recording on when the backward
    /// pass is itself recorded (<c>createGraph: true</c>).</summary>
    protected abstract Tensor?[] Backward(FunctionContext ctx, Tensor[] gradOutputs);

    /// <summary>The only input, or an error naming the function for any other count.</summary>
    protected Tensor OneInput(Tensor[] inputs) =>
        inputs.Length == 1 ? inputs[0] : throw new ArgumentException($"{Name}: takes one input, got {inputs.Length}");

    /// <summary>Runs a one-output function and records it.</summary>
    public Tensor Apply(params Tensor[] inputs)
    {
        var outputs = ApplyMany(inputs);
        if (outputs.Length != 1)
            throw new InvalidOperationException($"{Name}.Apply: Forward returned {outputs.Length} outputs; use ApplyMany for functions with several");
        return outputs[0];
    }

    /// <summary>Runs the function and records it; returns every output.</summary>
    public Tensor[] ApplyMany(params Tensor[] inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        for (int i = 0; i < inputs.Length; i++)
            if (inputs[i] is null) throw new ArgumentNullException(nameof(inputs), $"{Name}.Apply: input {i} is null");
        bool record = AutoGrad.IsGradEnabled && inputs.Any(x => x.RequiresGrad);
        var ctx = new FunctionContext(Name, [.. inputs.Select(x => record && x.RequiresGrad)]);
        Tensor[] raw;
        using (AutoGrad.NoGrad()) raw = Forward(ctx, inputs);
        if (raw is null || raw.Length == 0 || raw.Any(o => o is null))
            throw new InvalidOperationException($"{Name}.Forward must return at least one output and no nulls");
        // Fresh tensor objects, so recording never sets the graph of an input or of a tensor the function keeps.
        var outputs = raw.Select(o => o.ShareStorage(o.Dims)).ToArray();
        ctx.UseRecordedOutputs(raw, outputs, inputs);
        if (!record) return outputs;

        var differentiable = Enumerable.Range(0, outputs.Length)
            .Where(j => outputs[j].DType.IsFloat() && !ctx.IsNonDifferentiable(raw[j])).ToArray();
        if (differentiable.Length == 0) return outputs;
        var dtype = outputs[differentiable[0]].DType;
        if (differentiable.Any(j => outputs[j].DType != dtype))
            throw new InvalidOperationException($"{Name}.Apply: differentiable outputs must share one dtype, got " +
                string.Join(", ", differentiable.Select(j => $"{outputs[j].DType} {Shape.Str(outputs[j].Dims)}")));

        Tensor?[] RunBackward(Func<int, Tensor?> gradOf)
        {
            var grads = outputs.Select((o, j) => gradOf(j) ?? Tensor.Zeros(o.Dims, o.DType)).ToArray();
            var result = Backward(ctx, grads) ?? throw new InvalidOperationException($"{Name}.Backward returned null; return one gradient (or null) per input");
            if (result.Length != inputs.Length)
                throw new InvalidOperationException($"{Name}.Backward returned {result.Length} gradients for {inputs.Length} inputs");
            for (int i = 0; i < result.Length; i++)
                if (result[i] is Tensor g && g.DType != inputs[i].DType && inputs[i].RequiresGrad)
                    throw new InvalidOperationException($"{Name}.Backward: the gradient for input {i} {Shape.Str(inputs[i].Dims)} is {g.DType}, the input is {inputs[i].DType}");
            return result;
        }

        if (differentiable.Length == 1)
        {
            int only = differentiable[0];
            AutoGrad.Record(outputs[only], Name, Saves.Foreign, g => RunBackward(j => j == only ? g : null), inputs);
            return outputs;
        }

        // Several outputs: one node for the function whose "output" is the flat concatenation of the differentiable
        // outputs; each output is a slice of it. The engine sums the slices' gradients into that node's gradient.
        var offsets = new int[outputs.Length];
        int total = 0;
        foreach (var j in differentiable) { offsets[j] = total; total += outputs[j].Numel; }
        var joint = Tensor.Empty(dtype, total);
        AutoGrad.Record(joint, Name, Saves.Foreign, g => RunBackward(j =>
            differentiable.Contains(j) ? g.Narrow(0, offsets[j], outputs[j].Numel).Reshape(outputs[j].Dims) : null), inputs);
        foreach (var j in differentiable)
        {
            var map = Enumerable.Range(offsets[j], outputs[j].Numel).ToArray();
            AutoGrad.Record(outputs[j], $"{Name}[{j}]", Saves.None, g => [Functional.PutFlat(g, map, joint.Dims)], joint);
        }
        return outputs;
    }
}

/// <summary>What a <see cref="CustomFunction"/> keeps between its forward and backward: saved tensors, which inputs need a
/// gradient, non-differentiable outputs, and any other values by name (<c>ctx["scale"] = 2.0</c>).</summary>
public sealed class FunctionContext
{
    private readonly string function;
    private readonly List<(Tensor T, int Version)> saved = [];
    private readonly List<Tensor> nonDifferentiable = [];
    private readonly Dictionary<string, object?> values = [];

    internal FunctionContext(string function, bool[] needsInputGrad) { this.function = function; NeedsInputGrad = needsInputGrad; }

    /// <summary>Per input, whether backward will be asked for its gradient (like <c>ctx.needs_input_grad</c>).</summary>
    public IReadOnlyList<bool> NeedsInputGrad { get; }

    /// <summary>Keeps tensors (inputs or outputs) for <see cref="SavedTensors"/>; backward refuses to use them if they are
    /// modified in place in between.</summary>
    public void SaveForBackward(params Tensor[] tensors)
    {
        foreach (var t in tensors) saved.Add((t ?? throw new ArgumentNullException(nameof(tensors)), t.Version.Value));
    }

    /// <summary>The tensors given to <see cref="SaveForBackward"/>, in order.</summary>
    public IReadOnlyList<Tensor> SavedTensors
    {
        get
        {
            for (int i = 0; i < saved.Count; i++)
                if (saved[i].T.Version.Value != saved[i].Version)
                    throw new InvalidOperationException($"{function}: saved tensor {i} {Shape.Str(saved[i].T.Dims)} was modified by an in-place operation " +
                        $"after it was saved (version {saved[i].T.Version.Value}, expected {saved[i].Version}); its gradient would be wrong");
            return saved.Select(s => s.T).ToArray();
        }
    }

    /// <summary>Marks outputs (as returned by Forward) that have no gradient, such as indices or masks.</summary>
    public void MarkNonDifferentiable(params Tensor[] outputs) => nonDifferentiable.AddRange(outputs);

    /// <summary>Any value kept for backward, by name; reading a name never set is an error.</summary>
    public object? this[string key]
    {
        get => values.TryGetValue(key, out var v) ? v : throw new KeyNotFoundException($"{function}: no value \"{key}\" was stored in the context");
        set => values[key] = value;
    }

    /// <summary>A stored value converted to <typeparamref name="T"/>.</summary>
    public T Get<T>(string key) => this[key] is T v ? v : throw new InvalidCastException($"{function}: context value \"{key}\" is not a {typeof(T).Name}");

    internal bool IsNonDifferentiable(Tensor rawOutput) => nonDifferentiable.Any(t => ReferenceEquals(t, rawOutput));

    /// <summary>Saved outputs refer to the recorded output tensors (so their graph, and grad-of-grad, follow them);
    /// an output that is one of the inputs stays the input.</summary>
    internal void UseRecordedOutputs(Tensor[] raw, Tensor[] recorded, Tensor[] inputs)
    {
        for (int i = 0; i < saved.Count; i++)
        {
            int j = Array.FindIndex(raw, r => ReferenceEquals(r, saved[i].T));
            if (j >= 0 && !inputs.Any(x => ReferenceEquals(x, raw[j]))) saved[i] = (recorded[j], saved[i].Version);
        }
    }
}

/// <summary>Identity forward, gradient multiplied by <c>-lambda</c> backward: the gradient reversal layer of domain-adversarial
/// training (Ganin and Lempitsky, 2015). Deliberately not the derivative of its forward, so it is not in the gradient-check registry.</summary>
/// <param name="lambda">The factor of the reversed gradient.</param>
public sealed class GradientReversal(double lambda = 1.0) : CustomFunction
{
    /// <inheritdoc/>
    protected override Tensor[] Forward(FunctionContext ctx, Tensor[] inputs) => [OneInput(inputs)];

    /// <inheritdoc/>
    protected override Tensor?[] Backward(FunctionContext ctx, Tensor[] gradOutputs) => [gradOutputs[0] * -lambda];
}

/// <summary>The straight-through estimator: forward applies <paramref name="function"/> (e.g. rounding or sign), backward
/// passes the gradient through unchanged as if it were the identity (Bengio et al., 2013). Deliberately not the derivative
/// of its forward, so it is not in the gradient-check registry.</summary>
/// <param name="function">The forward map; must keep the input's shape and dtype.</param>
/// <example><code>var b = new StraightThrough(Functional.Sign).Apply(x);   // binarizes, yet x still gets a gradient</code></example>
public sealed class StraightThrough(Func<Tensor, Tensor> function) : CustomFunction
{
    /// <inheritdoc/>
    protected override Tensor[] Forward(FunctionContext ctx, Tensor[] inputs)
    {
        var x = OneInput(inputs);
        var y = function(x);
        if (!Shape.Same(y.Dims, x.Dims) || y.DType != x.DType)
            throw new InvalidOperationException($"StraightThrough: the function changed {x.DType} {Shape.Str(x.Dims)} into {y.DType} {Shape.Str(y.Dims)}; the gradient passes through unchanged, so it must keep both");
        return [y];
    }

    /// <inheritdoc/>
    protected override Tensor?[] Backward(FunctionContext ctx, Tensor[] gradOutputs) => [gradOutputs[0]];
}
