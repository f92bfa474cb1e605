namespace Autograd.Optimizers;

/// <summary>Adadelta (<c>torch.optim.Adadelta</c>): steps scaled by the ratio of running RMS of past updates and of gradients.</summary>
/// <remarks>
/// With gradient g (negated when maximizing): g ← g + λθ; v ← ρv + (1 − ρ)g²; Δ = √(u + eps) / √(v + eps) · g;
/// u ← ρu + (1 − ρ)Δ²; θ ← θ − lr·Δ. State: <c>step</c>, <c>square_avg</c> (v), <c>acc_delta</c> (u).
/// </remarks>
public sealed class Adadelta : Optimizer
{
    /// <summary>Adadelta over <paramref name="parameters"/>.</summary>
    /// <param name="parameters">The tensors to optimize (leaves).</param>
    /// <param name="lr">Coefficient scaling the delta.</param>
    /// <param name="rho">Coefficient of the running averages.</param>
    /// <param name="eps">Term added inside the square roots.</param>
    /// <param name="weightDecay">L2 penalty added to the gradient.</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public Adadelta(IEnumerable<Tensor> parameters, double lr = 1.0, double rho = 0.9, double eps = 1e-6, double weightDecay = 0, bool maximize = false)
        : this([new ParamGroup(parameters)], lr, rho, eps, weightDecay, maximize) { }

    /// <summary>Adadelta over parameter groups; the arguments are the defaults of options a group does not set.</summary>
    /// <param name="paramGroups">The parameter groups.</param>
    /// <param name="lr">Coefficient scaling the delta.</param>
    /// <param name="rho">Coefficient of the running averages.</param>
    /// <param name="eps">Term added inside the square roots.</param>
    /// <param name="weightDecay">L2 penalty added to the gradient.</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public Adadelta(IEnumerable<ParamGroup> paramGroups, double lr = 1.0, double rho = 0.9, double eps = 1e-6, double weightDecay = 0, bool maximize = false)
        : base("Adadelta", paramGroups, [
            new("lr", lr), new("rho", rho), new("eps", eps), new("weight_decay", weightDecay), new("maximize", maximize ? 1 : 0)]) { }

    /// <inheritdoc/>
    protected override void Validate(IReadOnlyDictionary<string, double> options, string? where)
    {
        base.Validate(options, where);
        InRange(options, "rho", 0, 1, true, where);
        NonNegative(options, "eps", where);
        NonNegative(options, "weight_decay", where);
    }

    /// <inheritdoc/>
    protected override IEnumerable<string> StateNames(ParamGroup group) => ["step", "square_avg", "acc_delta"];

    /// <inheritdoc/>
    protected override void Update(ParamGroup group, Tensor param, Tensor grad, Dictionary<string, Tensor> state)
    {
        double lr = group.Lr, rho = group["rho"], eps = group.Eps, weightDecay = group.WeightDecay;
        IncrementStep(state);
        var squareAvg = GetOrCreate(state, "square_avg", () => Tensor.ZerosLike(param));
        var accDelta = GetOrCreate(state, "acc_delta", () => Tensor.ZerosLike(param));
        var g = group.Maximize ? -grad : grad;
        if (weightDecay != 0) g = g + param * weightDecay;
        squareAvg.Mul_(rho).Add_(g * g, 1 - rho);
        var std = (squareAvg + eps).Sqrt();
        var delta = (accDelta + eps).Sqrt() / std * g;
        accDelta.Mul_(rho).Add_(delta * delta, 1 - rho);
        param.Add_(delta, -lr);
    }
}
