namespace Autograd.Optimizers;

/// <summary>AdamW (<c>torch.optim.AdamW</c>): <see cref="Adam"/> with decoupled weight decay — the parameter is
/// shrunk, θ ← θ·(1 − lr·λ), before the Adam step instead of λθ being added to the gradient.</summary>
public sealed class AdamW : Adam
{
    /// <summary>AdamW over <paramref name="parameters"/>.</summary>
    /// <param name="parameters">The tensors to optimize (leaves).</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="betas">Coefficients of the running averages of the gradient and its square; default (0.9, 0.999).</param>
    /// <param name="eps">Term added to the denominator.</param>
    /// <param name="weightDecay">Decoupled weight decay coefficient.</param>
    /// <param name="amsgrad">Use the maximum of the past second moments (AMSGrad).</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public AdamW(IEnumerable<Tensor> parameters, double lr = 1e-3, (double Beta1, double Beta2)? betas = null, double eps = 1e-8,
        double weightDecay = 1e-2, bool amsgrad = false, bool maximize = false)
        : base("AdamW", true, [new ParamGroup(parameters)], lr, betas, eps, weightDecay, amsgrad, maximize) { }

    /// <summary>AdamW over parameter groups; the arguments are the defaults of options a group does not set.</summary>
    /// <param name="paramGroups">The parameter groups.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="betas">Coefficients of the running averages of the gradient and its square; default (0.9, 0.999).</param>
    /// <param name="eps">Term added to the denominator.</param>
    /// <param name="weightDecay">Decoupled weight decay coefficient.</param>
    /// <param name="amsgrad">Use the maximum of the past second moments (AMSGrad).</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public AdamW(IEnumerable<ParamGroup> paramGroups, double lr = 1e-3, (double Beta1, double Beta2)? betas = null, double eps = 1e-8,
        double weightDecay = 1e-2, bool amsgrad = false, bool maximize = false)
        : base("AdamW", true, paramGroups, lr, betas, eps, weightDecay, amsgrad, maximize) { }
}
