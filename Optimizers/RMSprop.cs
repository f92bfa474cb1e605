namespace Autograd.Optimizers;

/// <summary>RMSprop (<c>torch.optim.RMSprop</c>): divides the gradient by a running root mean square, optionally
/// centered (subtracting the squared running mean of the gradient) and with momentum.</summary>
/// <remarks>
/// With gradient g (negated when maximizing): g ← g + λθ; v ← αv + (1 − α)g²; centered: ḡ ← αḡ + (1 − α)g and
/// a = √(v − ḡ²) + eps, else a = √v + eps; with momentum μ &gt; 0: b ← μb + g/a, θ ← θ − lr·b; else θ ← θ − lr·g/a.
/// State: <c>step</c>, <c>square_avg</c>, <c>momentum_buffer</c> (momentum &gt; 0), <c>grad_avg</c> (centered).
/// </remarks>
public sealed class RMSprop : Optimizer
{
    /// <summary>RMSprop over <paramref name="parameters"/>.</summary>
    /// <param name="parameters">The tensors to optimize (leaves).</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="alpha">Smoothing constant of the running averages.</param>
    /// <param name="eps">Term added to the denominator.</param>
    /// <param name="weightDecay">L2 penalty added to the gradient.</param>
    /// <param name="momentum">Momentum factor.</param>
    /// <param name="centered">Normalize by an estimate of the gradient's variance instead of its second moment.</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public RMSprop(IEnumerable<Tensor> parameters, double lr = 1e-2, double alpha = 0.99, double eps = 1e-8,
        double weightDecay = 0, double momentum = 0, bool centered = false, bool maximize = false)
        : this([new ParamGroup(parameters)], lr, alpha, eps, weightDecay, momentum, centered, maximize) { }

    /// <summary>RMSprop over parameter groups; the arguments are the defaults of options a group does not set.</summary>
    /// <param name="paramGroups">The parameter groups.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="alpha">Smoothing constant of the running averages.</param>
    /// <param name="eps">Term added to the denominator.</param>
    /// <param name="weightDecay">L2 penalty added to the gradient.</param>
    /// <param name="momentum">Momentum factor.</param>
    /// <param name="centered">Normalize by an estimate of the gradient's variance instead of its second moment.</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public RMSprop(IEnumerable<ParamGroup> paramGroups, double lr = 1e-2, double alpha = 0.99, double eps = 1e-8,
        double weightDecay = 0, double momentum = 0, bool centered = false, bool maximize = false)
        : base("RMSprop", paramGroups, [
            new("lr", lr), new("alpha", alpha), new("eps", eps), new("weight_decay", weightDecay),
            new("momentum", momentum), new("centered", centered ? 1 : 0), new("maximize", maximize ? 1 : 0)]) { }

    /// <inheritdoc/>
    protected override void Validate(IReadOnlyDictionary<string, double> options, string? where)
    {
        base.Validate(options, where);
        NonNegative(options, "alpha", where);
        NonNegative(options, "eps", where);
        NonNegative(options, "weight_decay", where);
        NonNegative(options, "momentum", where);
    }

    /// <inheritdoc/>
    protected override IEnumerable<string> StateNames(ParamGroup group)
    {
        yield return "step";
        yield return "square_avg";
        if (group.Momentum > 0) yield return "momentum_buffer";
        if (group.Flag("centered")) yield return "grad_avg";
    }

    /// <inheritdoc/>
    protected override void Update(ParamGroup group, Tensor param, Tensor grad, Dictionary<string, Tensor> state)
    {
        double lr = group.Lr, alpha = group["alpha"], eps = group.Eps, weightDecay = group.WeightDecay, momentum = group.Momentum;
        IncrementStep(state);
        var squareAvg = GetOrCreate(state, "square_avg", () => Tensor.ZerosLike(param));
        var g = group.Maximize ? -grad : grad;
        if (weightDecay != 0) g = g + param * weightDecay;
        squareAvg.Mul_(alpha).Add_(g * g, 1 - alpha);
        Tensor avg;
        if (group.Flag("centered"))
        {
            var gradAvg = GetOrCreate(state, "grad_avg", () => Tensor.ZerosLike(param));
            gradAvg.Mul_(alpha).Add_(g, 1 - alpha);
            avg = (squareAvg - gradAvg * gradAvg).Sqrt();
        }
        else avg = squareAvg.Sqrt();
        avg = avg + eps;
        if (momentum > 0)
        {
            var buf = GetOrCreate(state, "momentum_buffer", () => Tensor.ZerosLike(param));
            buf.Mul_(momentum).Add_(g / avg);
            param.Add_(buf, -lr);
        }
        else param.Add_(g / avg, -lr);
    }
}
