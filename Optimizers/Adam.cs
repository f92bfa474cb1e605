namespace Autograd.Optimizers;

/// <summary>Adam (<c>torch.optim.Adam</c>) with L2 weight decay added to the gradient and the optional AMSGrad variant.
/// <see cref="AdamW"/> is the same with decoupled weight decay.</summary>
/// <remarks>
/// At step t with gradient g (negated when maximizing): g ← g + λθ; m ← β₁m + (1 − β₁)g; v ← β₂v + (1 − β₂)g²;
/// (AMSGrad: v̂ ← max(v̂, v), used instead of v); θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + eps).
/// State: <c>step</c>, <c>exp_avg</c>, <c>exp_avg_sq</c>, <c>max_exp_avg_sq</c> (AMSGrad).
/// </remarks>
public class Adam : Optimizer
{
    private readonly bool decoupled;

    /// <summary>Adam over <paramref name="parameters"/>.</summary>
    /// <param name="parameters">The tensors to optimize (leaves).</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="betas">Coefficients of the running averages of the gradient and its square; default (0.9, 0.999).</param>
    /// <param name="eps">Term added to the denominator.</param>
    /// <param name="weightDecay">L2 penalty added to the gradient.</param>
    /// <param name="amsgrad">Use the maximum of the past second moments (AMSGrad).</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public Adam(IEnumerable<Tensor> parameters, double lr = 1e-3, (double Beta1, double Beta2)? betas = null, double eps = 1e-8,
        double weightDecay = 0, bool amsgrad = false, bool maximize = false)
        : this("Adam", false, [new ParamGroup(parameters)], lr, betas, eps, weightDecay, amsgrad, maximize) { }

    /// <summary>Adam over parameter groups; the arguments are the defaults of options a group does not set.</summary>
    /// <param name="paramGroups">The parameter groups.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="betas">Coefficients of the running averages of the gradient and its square; default (0.9, 0.999).</param>
    /// <param name="eps">Term added to the denominator.</param>
    /// <param name="weightDecay">L2 penalty added to the gradient.</param>
    /// <param name="amsgrad">Use the maximum of the past second moments (AMSGrad).</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public Adam(IEnumerable<ParamGroup> paramGroups, double lr = 1e-3, (double Beta1, double Beta2)? betas = null, double eps = 1e-8,
        double weightDecay = 0, bool amsgrad = false, bool maximize = false)
        : this("Adam", false, paramGroups, lr, betas, eps, weightDecay, amsgrad, maximize) { }

    private protected Adam(string name, bool decoupled, IEnumerable<ParamGroup> paramGroups, double lr, (double Beta1, double Beta2)? betas,
        double eps, double weightDecay, bool amsgrad, bool maximize)
        : base(name, paramGroups, [
            new("lr", lr), new("betas.0", (betas ?? (0.9, 0.999)).Beta1), new("betas.1", (betas ?? (0.9, 0.999)).Beta2),
            new("eps", eps), new("weight_decay", weightDecay), new("amsgrad", amsgrad ? 1 : 0), new("maximize", maximize ? 1 : 0)])
    {
        this.decoupled = decoupled;
    }

    /// <inheritdoc/>
    protected override void Validate(IReadOnlyDictionary<string, double> options, string? where)
    {
        base.Validate(options, where);
        ValidateAdamFamily(options, where);
    }

    /// <inheritdoc/>
    protected override IEnumerable<string> StateNames(ParamGroup group) =>
        group.Flag("amsgrad") ? ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"] : ["step", "exp_avg", "exp_avg_sq"];

    /// <inheritdoc/>
    protected override void Update(ParamGroup group, Tensor param, Tensor grad, Dictionary<string, Tensor> state)
    {
        double lr = group.Lr, eps = group.Eps, weightDecay = group.WeightDecay;
        var (beta1, beta2) = group.Betas;
        double step = IncrementStep(state);
        var expAvg = GetOrCreate(state, "exp_avg", () => Tensor.ZerosLike(param));
        var expAvgSq = GetOrCreate(state, "exp_avg_sq", () => Tensor.ZerosLike(param));
        var g = group.Maximize ? -grad : grad;
        if (weightDecay != 0)
        {
            if (decoupled) param.Mul_(1 - lr * weightDecay);
            else g = g + param * weightDecay;
        }
        expAvg.Mul_(beta1).Add_(g, 1 - beta1);
        expAvgSq.Mul_(beta2).Add_(g * g, 1 - beta2);
        double biasCorrection1 = 1 - Math.Pow(beta1, step);
        double biasCorrection2Sqrt = Math.Sqrt(1 - Math.Pow(beta2, step));
        double stepSize = lr / biasCorrection1;
        Tensor secondMoment = expAvgSq;
        if (group.Flag("amsgrad"))
        {
            var maxExpAvgSq = GetOrCreate(state, "max_exp_avg_sq", () => Tensor.ZerosLike(param));
            maxExpAvgSq.Copy_(Functional.Maximum(maxExpAvgSq, expAvgSq));
            secondMoment = maxExpAvgSq;
        }
        var denom = secondMoment.Sqrt() / biasCorrection2Sqrt + eps;
        param.Add_(expAvg / denom, -stepSize);
    }
}
