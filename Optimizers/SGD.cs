namespace Autograd.Optimizers;

/// <summary>Stochastic gradient descent, optionally with momentum, dampening, Nesterov momentum and L2 weight decay
/// (<c>torch.optim.SGD</c>).</summary>
/// <remarks>
/// With gradient g (negated when maximizing) and weight decay λ: g ← g + λθ; with momentum μ the buffer is
/// b ← g on the first step, then b ← μb + (1 − τ)g (τ = dampening), and g ← g + μb (Nesterov) or g ← b;
/// finally θ ← θ − lr·g. State: <c>momentum_buffer</c> (when momentum ≠ 0).
/// </remarks>
public sealed class SGD : Optimizer
{
    /// <summary>SGD over <paramref name="parameters"/>.</summary>
    /// <param name="parameters">The tensors to optimize (leaves).</param>
    /// <param name="lr">Learning rate (PyTorch's default 1e-3).</param>
    /// <param name="momentum">Momentum factor.</param>
    /// <param name="dampening">Dampening of the momentum.</param>
    /// <param name="weightDecay">L2 penalty added to the gradient.</param>
    /// <param name="nesterov">Nesterov momentum (needs momentum &gt; 0 and zero dampening).</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public SGD(IEnumerable<Tensor> parameters, double lr = 1e-3, double momentum = 0, double dampening = 0,
        double weightDecay = 0, bool nesterov = false, bool maximize = false)
        : this([new ParamGroup(parameters)], lr, momentum, dampening, weightDecay, nesterov, maximize) { }

    /// <summary>SGD over parameter groups; the arguments are the defaults of options a group does not set.</summary>
    /// <param name="paramGroups">The parameter groups.</param>
    /// <param name="lr">Learning rate (PyTorch's default 1e-3).</param>
    /// <param name="momentum">Momentum factor.</param>
    /// <param name="dampening">Dampening of the momentum.</param>
    /// <param name="weightDecay">L2 penalty added to the gradient.</param>
    /// <param name="nesterov">Nesterov momentum (needs momentum &gt; 0 and zero dampening).</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public SGD(IEnumerable<ParamGroup> paramGroups, double lr = 1e-3, double momentum = 0, double dampening = 0,
        double weightDecay = 0, bool nesterov = false, bool maximize = false)
        : base("SGD", paramGroups, [
            new("lr", lr), new("momentum", momentum), new("dampening", dampening), new("weight_decay", weightDecay),
            new("nesterov", nesterov ? 1 : 0), new("maximize", maximize ? 1 : 0)]) { }

    /// <inheritdoc/>
    protected override void Validate(IReadOnlyDictionary<string, double> options, string? where)
    {
        base.Validate(options, where);
        NonNegative(options, "momentum", where);
        NonNegative(options, "weight_decay", where);
        if (options["nesterov"] != 0 && (options["momentum"] <= 0 || options["dampening"] != 0))
            throw new ArgumentException($"SGD: nesterov momentum requires a momentum > 0 and zero dampening{(where == null ? "" : " in " + where)} " +
                $"(momentum {F(options["momentum"])}, dampening {F(options["dampening"])})", "nesterov");
    }

    /// <inheritdoc/>
    protected override IEnumerable<string> StateNames(ParamGroup group) => group["momentum"] != 0 ? ["momentum_buffer"] : [];

    /// <inheritdoc/>
    protected override void Update(ParamGroup group, Tensor param, Tensor grad, Dictionary<string, Tensor> state)
    {
        double lr = group.Lr, momentum = group["momentum"], dampening = group["dampening"], weightDecay = group["weight_decay"];
        var d = group.Flag("maximize") ? -grad : grad;
        if (weightDecay != 0) d = d + param * weightDecay;
        if (momentum != 0)
        {
            if (!state.TryGetValue("momentum_buffer", out var buf)) state["momentum_buffer"] = buf = Clone(d);
            else buf.Mul_(momentum).Add_(d, 1 - dampening);
            d = group.Flag("nesterov") ? d + buf * momentum : buf;
        }
        param.Add_(d, -lr);
    }
}
