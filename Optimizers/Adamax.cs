namespace Autograd.Optimizers;

/// <summary>Adamax (<c>torch.optim.Adamax</c>): Adam with the infinity norm in place of the second moment.</summary>
/// <remarks>
/// At step t with gradient g (negated when maximizing): g ← g + λθ; m ← β₁m + (1 − β₁)g; u ← max(β₂u, |g| + eps);
/// θ ← θ − (lr / (1 − β₁ᵗ)) · m / u. State: <c>step</c>, <c>exp_avg</c>, <c>exp_inf</c>.
/// </remarks>
public sealed class Adamax : Optimizer
{
    /// <summary>Adamax over <paramref name="parameters"/>.</summary>
    /// <param name="parameters">The tensors to optimize (leaves).</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="betas">Coefficients of the running average of the gradient and of the infinity norm; default (0.9, 0.999).</param>
    /// <param name="eps">Term added to |g| in the infinity norm.</param>
    /// <param name="weightDecay">L2 penalty added to the gradient.</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public Adamax(IEnumerable<Tensor> parameters, double lr = 2e-3, (double Beta1, double Beta2)? betas = null, double eps = 1e-8,
        double weightDecay = 0, bool maximize = false)
        : this([new ParamGroup(parameters)], lr, betas, eps, weightDecay, maximize) { }

    /// <summary>Adamax over parameter groups; the arguments are the defaults of options a group does not set.</summary>
    /// <param name="paramGroups">The parameter groups.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="betas">Coefficients of the running average of the gradient and of the infinity norm; default (0.9, 0.999).</param>
    /// <param name="eps">Term added to |g| in the infinity norm.</param>
    /// <param name="weightDecay">L2 penalty added to the gradient.</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public Adamax(IEnumerable<ParamGroup> paramGroups, double lr = 2e-3, (double Beta1, double Beta2)? betas = null, double eps = 1e-8,
        double weightDecay = 0, bool maximize = false)
        : base("Adamax", paramGroups, [
            new("lr", lr), new("betas.0", (betas ?? (0.9, 0.999)).Beta1), new("betas.1", (betas ?? (0.9, 0.999)).Beta2),
            new("eps", eps), new("weight_decay", weightDecay), new("maximize", maximize ? 1 : 0)]) { }

    /// <inheritdoc/>
    protected override void Validate(IReadOnlyDictionary<string, double> options, string? where)
    {
        base.Validate(options, where);
        ValidateAdamFamily(options, where);
    }

    /// <inheritdoc/>
    protected override IEnumerable<string> StateNames(ParamGroup group) => ["step", "exp_avg", "exp_inf"];

    /// <inheritdoc/>
    protected override void Update(ParamGroup group, Tensor param, Tensor grad, Dictionary<string, Tensor> state)
    {
        double lr = group.Lr, eps = group.Eps, weightDecay = group.WeightDecay;
        var (beta1, beta2) = group.Betas;
        double step = IncrementStep(state);
        var expAvg = GetOrCreate(state, "exp_avg", () => Tensor.ZerosLike(param));
        var expInf = GetOrCreate(state, "exp_inf", () => Tensor.ZerosLike(param));
        var g = group.Maximize ? -grad : grad;
        if (weightDecay != 0) g = g + param * weightDecay;
        expAvg.Mul_(beta1).Add_(g, 1 - beta1);
        expInf.Copy_(Functional.Maximum(expInf * beta2, g.Abs() + eps));
        double clr = lr / (1 - Math.Pow(beta1, step));
        param.Add_(expAvg / expInf, -clr);
    }
}
