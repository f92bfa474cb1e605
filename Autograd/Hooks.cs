namespace Autograd;

/// <summary>Removes the hook it was returned for (like PyTorch's <c>RemovableHandle</c>); <see cref="Dispose"/> does the same,
/// so <c>using var h = t.RegisterHook(...)</c> scopes a hook.</summary>
public sealed class RemovableHandle : IDisposable
{
    private Action? remove;

    /// <summary>A handle that runs <paramref name="remove"/> once, on the first <see cref="Remove"/> or <see cref="Dispose"/>.</summary>
    public RemovableHandle(Action remove) => this.remove = remove;

    /// <summary>Removes the hook; later calls do nothing.</summary>
    public void Remove() { remove?.Invoke(); remove = null; }

    /// <summary>Same as <see cref="Remove"/>.</summary>
    public void Dispose() => Remove();
}

public sealed partial class Tensor
{
    private List<Func<Tensor, Tensor?>>? gradHooks;
    private List<Action<Tensor>>? postAccumulateHooks;

    /// <summary>Whether backward stores this non-leaf tensor's gradient in <see cref="Grad"/>; see <see cref="RetainGrad"/>.</summary>
    public bool RetainsGrad { get; private set; }

    /// <summary>Adds a hook called with this tensor's gradient each time backward computes it (like <c>tensor.register_hook</c>),
    /// in registration order; a non-null result replaces the gradient for the rest of the pass (what flows to earlier ops,
    /// accumulates into <see cref="Grad"/>, or is returned by <see cref="AutoGrad.Grad"/>). Works on leaves and intermediates.</summary>
    /// <example><code>
    /// var h = hidden.RegisterHook(g => g.Clamp(-1, 1));   // clip the gradient inside the graph
    /// loss.Backward();
    /// h.Remove();
    /// </code></example>
    public RemovableHandle RegisterHook(Func<Tensor, Tensor?> hook)
    {
        ArgumentNullException.ThrowIfNull(hook);
        if (!RequiresGrad)
            throw new InvalidOperationException($"RegisterHook: the tensor {Autograd.Shape.Str(Dims)} does not require grad, so no gradient will ever reach the hook");
        (gradHooks ??= []).Add(hook);
        return new RemovableHandle(() => gradHooks.Remove(hook));
    }

    /// <summary>Adds a hook called with this leaf right after backward has accumulated its <see cref="Grad"/> (like
    /// <c>register_post_accumulate_grad_hook</c>): the point at which an optimizer or a gradient all-reduce may use it.</summary>
    public RemovableHandle RegisterPostAccumulateGradHook(Action<Tensor> hook)
    {
        ArgumentNullException.ThrowIfNull(hook);
        if (!IsLeaf || !RequiresGrad)
            throw new InvalidOperationException($"RegisterPostAccumulateGradHook: only leaf tensors that require grad accumulate a gradient; this tensor {Autograd.Shape.Str(Dims)} " +
                (IsLeaf ? "does not require grad" : $"was produced by {GradFn!.Op}"));
        (postAccumulateHooks ??= []).Add(hook);
        return new RemovableHandle(() => postAccumulateHooks.Remove(hook));
    }

    /// <summary>Makes backward store this non-leaf tensor's gradient in <see cref="Grad"/> (like <c>retain_grad()</c>);
    /// on a leaf that requires grad it does nothing, since leaves keep theirs anyway.</summary>
    public Tensor RetainGrad()
    {
        if (!RequiresGrad)
            throw new InvalidOperationException($"RetainGrad: the tensor {Autograd.Shape.Str(Dims)} does not require grad");
        if (!IsLeaf) RetainsGrad = true;
        return this;
    }

    /// <summary>Whether gradient hooks are registered on this tensor.</summary>
    internal bool HasGradHooks => gradHooks != null;

    /// <summary>Runs the gradient hooks on <paramref name="grad"/>, each seeing the previous one's result.</summary>
    internal Tensor ApplyGradHooks(Tensor grad)
    {
        if (gradHooks == null) return grad;
        foreach (var hook in gradHooks.ToArray())
        {
            if (hook(grad) is not Tensor replaced) continue;
            if (!Autograd.Shape.Same(replaced.Dims, Dims) || replaced.DType != grad.DType)
                throw new InvalidOperationException($"RegisterHook: a hook returned a {replaced.DType} gradient of shape {Autograd.Shape.Str(replaced.Dims)} " +
                    $"for a tensor {Autograd.Shape.Str(Dims)} whose gradient is {grad.DType}");
            grad = replaced;
        }
        return grad;
    }

    /// <summary>Adds <paramref name="grad"/> to <see cref="Grad"/> (detached unless the backward pass is being recorded), in place
    /// when backward made the current one and owns it, then runs the post-accumulate hooks. <paramref name="owned"/>: no other
    /// tensor shares the storage of <paramref name="grad"/>, so it may become an owned <see cref="Grad"/>. Returns whether
    /// <paramref name="grad"/> (or its storage) became the gradient.</summary>
    internal bool AccumulateGrad(Tensor grad, bool createGraph, bool owned)
    {
        bool kept = this.grad is null;
        if (kept) (this.grad, gradOwned) = (createGraph ? grad : grad.Detach(), owned && !createGraph);
        else if (gradOwned && !createGraph) this.grad!.Add_(grad);
        else (this.grad, gradOwned) = (this.grad! + grad, !createGraph);
        if (postAccumulateHooks != null)
            foreach (var hook in postAccumulateHooks.ToArray()) hook(this);
        return kept;
    }
}
