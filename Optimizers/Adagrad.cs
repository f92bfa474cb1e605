namespace Autograd.Optimizers;

/// <summary>Adagrad (<c>torch.optim.Adagrad</c>): per-element learning rates from the running sum of squared gradients.</summary>
/// <remarks>
/// At step t with gradient g (negated when maximizing): g ← g + λθ; lr_t = lr / (1 + (t − 1)·lr_decay);
/// s ← s + g²; θ ← θ − lr_t · g / (√s + eps). State: <c>step</c>, <c>sum</c> (starting at
/// <c>initial_accumulator_value</c>), created with the optimizer as in PyTorch.
/// </remarks>
public sealed class Adagrad : Optimizer
{
    /// <summary>Adagrad over <paramref name="parameters"/>.</summary>
    /// <param name="parameters">The tensors to optimize (leaves).</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="lrDecay">Learning rate decay: lr / (1 + (t − 1)·lrDecay) at step t.</param>
    /// <param name="weightDecay">L2 penalty added to the gradient.</param>
    /// <param name="initialAccumulatorValue">Starting value of the sum of squared gradients.</param>
    /// <param name="eps">Term added to the denominator.</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public Adagrad(IEnumerable<Tensor> parameters, double lr = 1e-2, double lrDecay = 0, double weightDecay = 0,
        double initialAccumulatorValue = 0, double eps = 1e-10, bool maximize = false)
        : this([new ParamGroup(parameters)], lr, lrDecay, weightDecay, initialAccumulatorValue, eps, maximize) { }

    /// <summary>Adagrad over parameter groups; the arguments are the defaults of options a group does not set.</summary>
    /// <param name="paramGroups">The parameter groups.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="lrDecay">Learning rate decay: lr / (1 + (t − 1)·lrDecay) at step t.</param>
    /// <param name="weightDecay">L2 penalty added to the gradient.</param>
    /// <param name="initialAccumulatorValue">Starting value of the sum of squared gradients.</param>
    /// <param name="eps">Term added to the denominator.</param>
    /// <param name="maximize">Maximize the objective instead of minimizing it.</param>
    public Adagrad(IEnumerable<ParamGroup> paramGroups, double lr = 1e-2, double lrDecay = 0, double weightDecay = 0,
        double initialAccumulatorValue = 0, double eps = 1e-10, bool maximize = false)
        : base("Adagrad", paramGroups, [
            new("lr", lr), new("lr_decay", lrDecay), new("weight_decay", weightDecay),
            new("initial_accumulator_value", initialAccumulatorValue), new("eps", eps), new("maximize", maximize ? 1 : 0)]) { }

    /// <inheritdoc/>
    protected override void Validate(IReadOnlyDictionary<string, double> options, string? where)
    {
        base.Validate(options, where);
        NonNegative(options, "lr_decay", where);
        NonNegative(options, "weight_decay", where);
        NonNegative(options, "initial_accumulator_value", where);
        NonNegative(options, "eps", where);
    }

    /// <inheritdoc/>
    protected override IEnumerable<string> StateNames(ParamGroup group) => ["step", "sum"];

    /// <inheritdoc/>
    protected override void InitializeState(ParamGroup group, Tensor param)
    {
        var state = StateOf(param);
        GetOrCreate(state, "step", () => Tensor.Scalar(0, DType.Float64));
        GetOrCreate(state, "sum", () => Tensor.Full(param.Shape, group["initial_accumulator_value"], param.DType));
    }

    /// <inheritdoc/>
    protected override void Update(ParamGroup group, Tensor param, Tensor grad, Dictionary<string, Tensor> state)
    {
        double lr = group.Lr, lrDecay = group["lr_decay"], weightDecay = group["weight_decay"], eps = group.Eps;
        var sum = GetOrCreate(state, "sum", () => Tensor.Full(param.Shape, group["initial_accumulator_value"], param.DType));
        double step = IncrementStep(state);
        var g = group.Maximize ? -grad : grad;
        if (weightDecay != 0) g = g + param * weightDecay;
        double clr = lr / (1 + (step - 1) * lrDecay);
        sum.Add_(g * g);
        var std = sum.Sqrt() + eps;
        param.Add_(g / std, -clr);
    }
}
