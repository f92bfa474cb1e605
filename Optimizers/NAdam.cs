namespace Autograd.Optimizers;

/// <summary>NAdam (<c>torch.optim.NAdam</c>): Adam with Nesterov momentum and the momentum-decay schedule of Dozat.</summary>
/// <remarks>
/// At step t with gradient g (negated when maximizing): g ← g + λθ (or θ ← θ(1 − lr·λ) with decoupled weight decay);
/// μₜ = β₁(1 − ½·0.96^(tψ)), μₜ₊₁ = β₁(1 − ½·0.96^((t+1)ψ)), Πₜ = μ₁⋯μₜ; m ← β₁m + (1 − β₁)g; v ← β₂v + (1 − β₂)g²;
/// d = √(v / (1 − β₂ᵗ)) + eps; θ ← θ − lr(1 − μₜ)/(1 − Πₜ) · g/d − lr·μₜ₊₁/(1 − Πₜμₜ₊₁) · m/d.
/// State: <c>step</c>, <c>mu_product</c> (Πₜ, a Float64 scalar), <c>exp_avg</c>, <c>exp_avg_sq</c>.
/// This is PyTorch 2's rule; PyTorch 1.13 multiplied μₜ into Πₜ₊₁ twice.
/// </remarks>
public sealed class NAdam : Optimizer
{
    /// <summary>NAdam over <paramref name="parameters"/>.</summary>
    /// <param name="parameters">The tensors to optimize (leaves).</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="betas">Coefficients of the running averages of the gradient and its square; default (0.9, 0.999).</param>
    /// <param name="eps">Term added to the denominator.</param>
    /// <param name="weightDecay">Weight decay (L2 penalty, or decoupled).</param>
    /// <param name="momentumDecay">ψ, the momentum decay.</param>
    /// <param name="decoupledWeightDecay">Apply weight decay as in AdamW instead of adding it to the gradient.</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public NAdam(IEnumerable<Tensor> parameters, double lr = 2e-3, (double Beta1, double Beta2)? betas = null, double eps = 1e-8,
        double weightDecay = 0, double momentumDecay = 4e-3, bool decoupledWeightDecay = false, bool maximize = false)
        : this([new ParamGroup(parameters)], lr, betas, eps, weightDecay, momentumDecay, decoupledWeightDecay, maximize) { }

    /// <summary>NAdam over parameter groups; the arguments are the defaults of options a group does not set.</summary>
    /// <param name="paramGroups">The parameter groups.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="betas">Coefficients of the running averages of the gradient and its square; default (0.9, 0.999).</param>
    /// <param name="eps">Term added to the denominator.</param>
    /// <param name="weightDecay">Weight decay (L2 penalty, or decoupled).</param>
    /// <param name="momentumDecay">ψ, the momentum decay.</param>
    /// <param name="decoupledWeightDecay">Apply weight decay as in AdamW instead of adding it to the gradient.</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public NAdam(IEnumerable<ParamGroup> paramGroups, double lr = 2e-3, (double Beta1, double Beta2)? betas = null, double eps = 1e-8,
        double weightDecay = 0, double momentumDecay = 4e-3, bool decoupledWeightDecay = false, bool maximize = false)
        : base("NAdam", paramGroups, [
            new("lr", lr), new("betas.0", (betas ?? (0.9, 0.999)).Beta1), new("betas.1", (betas ?? (0.9, 0.999)).Beta2),
            new("eps", eps), new("weight_decay", weightDecay), new("momentum_decay", momentumDecay),
            new("decoupled_weight_decay", decoupledWeightDecay ? 1 : 0), new("maximize", maximize ? 1 : 0)]) { }

    /// <inheritdoc/>
    protected override void Validate(IReadOnlyDictionary<string, double> options, string? where)
    {
        base.Validate(options, where);
        ValidateAdamFamily(options, where);
        NonNegative(options, "momentum_decay", where);
    }

    /// <inheritdoc/>
    protected override IEnumerable<string> StateNames(ParamGroup group) => ["step", "mu_product", "exp_avg", "exp_avg_sq"];

    /// <inheritdoc/>
    protected override bool IsScalarState(string name) => name is "step" or "mu_product";

    /// <inheritdoc/>
    protected override void Update(ParamGroup group, Tensor param, Tensor grad, Dictionary<string, Tensor> state)
    {
        double lr = group.Lr, eps = group.Eps, weightDecay = group.WeightDecay, psi = group["momentum_decay"];
        var (beta1, beta2) = group.Betas;
        double step = IncrementStep(state);
        var muProduct = GetOrCreate(state, "mu_product", () => Tensor.Scalar(1, DType.Float64));
        var expAvg = GetOrCreate(state, "exp_avg", () => Tensor.ZerosLike(param));
        var expAvgSq = GetOrCreate(state, "exp_avg_sq", () => Tensor.ZerosLike(param));
        var g = group.Maximize ? -grad : grad;
        if (weightDecay != 0)
        {
            if (group.Flag("decoupled_weight_decay")) param.Mul_(1 - lr * weightDecay);
            else g = g + param * weightDecay;
        }
        double biasCorrection2 = 1 - Math.Pow(beta2, step);
        double mu = beta1 * (1 - 0.5 * Math.Pow(0.96, step * psi));
        double muNext = beta1 * (1 - 0.5 * Math.Pow(0.96, (step + 1) * psi));
        double product = muProduct.Item() * mu;
        muProduct.Fill_(product);
        expAvg.Mul_(beta1).Add_(g, 1 - beta1);
        expAvgSq.Mul_(beta2).Add_(g * g, 1 - beta2);
        var denom = (expAvgSq / biasCorrection2).Sqrt() + eps;
        param.Add_(g / denom, -lr * (1 - mu) / (1 - product));
        param.Add_(expAvg / denom, -lr * muNext / (1 - product * muNext));
    }
}
