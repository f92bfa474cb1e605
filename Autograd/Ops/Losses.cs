namespace Autograd;

/// <summary>How a loss reduces its per-element values.</summary>
public enum Reduction
{
    /// <summary>The mean (PyTorch's default).</summary>
    Mean,
    /// <summary>The sum.</summary>
    Sum,
    /// <summary>No reduction: one loss per element (per sample for classification losses).</summary>
    None,
}

public static partial class Functional
{
    private static Tensor Reduce(Tensor loss, Reduction reduction) => reduction switch
    {
        Reduction.Mean => Mean(loss),
        Reduction.Sum => Sum(loss),
        _ => loss,
    };

    private static void SameShape(string op, Tensor input, Tensor target)
    {
        Shape.SameDType(op, input, target);
        Shape.Equal(op, input, target, "input and target");
    }

    /// <summary>Mean squared error.</summary>
    public static Tensor MseLoss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean)
    {
        SameShape("MseLoss", input, target);
        var d = input - target;
        return Reduce(d * d, reduction);
    }

    /// <summary>Mean absolute error.</summary>
    public static Tensor L1Loss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean)
    {
        SameShape("L1Loss", input, target);
        return Reduce(Abs(input - target), reduction);
    }

    /// <summary>Huber-like loss: 0.5 d²/beta where |d| &lt; beta, else |d| - 0.5 beta.</summary>
    public static Tensor SmoothL1Loss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean, double beta = 1.0)
    {
        SameShape("SmoothL1Loss", input, target);
        if (beta < 0) throw new ArgumentException($"SmoothL1Loss: beta must be non-negative, got {beta}");
        var ad = Abs(input - target);
        if (beta == 0) return Reduce(ad, reduction);
        return Reduce(Where(ad < beta, ad * ad * (0.5 / beta), ad - 0.5 * beta), reduction);
    }

    /// <summary>Binary cross-entropy on probabilities; logs are clamped at -100 as in PyTorch.</summary>
    public static Tensor BinaryCrossEntropy(Tensor input, Tensor target, Tensor? weight = null, Reduction reduction = Reduction.Mean)
    {
        SameShape("BinaryCrossEntropy", input, target);
        Tensor loss;
        using (AutoGrad.NoGrad()) loss = -(target * Clamp(Log(input), min: -100) + (1.0 - target) * Clamp(Log(1.0 - input), min: -100));
        // PyTorch's derivatives, finite at probabilities of exactly 0 and 1: d/dx = (x - t) / max(x (1 - x), 1e-12),
        // d/dt = log(1 - x) - log(x) with both logs clamped at -100.
        loss = AutoGrad.Record(loss, "BinaryCrossEntropy", g => [
            g * (input - target) / Clamp(input * (1.0 - input), min: 1e-12),
            target.RequiresGrad ? g * (Clamp(Log(1.0 - input), min: -100) - Clamp(Log(input), min: -100)) : null], input, target);
        return Reduce(weight == null ? loss : loss * weight, reduction);
    }

    /// <summary>Binary cross-entropy on logits, stable for any logit: max(x,0) - x t + log(1 + e^-|x|),
    /// with <paramref name="posWeight"/> scaling the positive term as in PyTorch.</summary>
    public static Tensor BinaryCrossEntropyWithLogits(Tensor input, Tensor target, Tensor? weight = null, Tensor? posWeight = null,
        Reduction reduction = Reduction.Mean)
    {
        SameShape("BinaryCrossEntropyWithLogits", input, target);
        // log(sigmoid(x)) = -softplus(-x); log(1 - sigmoid(x)) = -softplus(x).
        var logSigNeg = Softplus(-input);
        var loss = posWeight == null
            ? (1.0 - target) * input + logSigNeg
            : (1.0 - target) * input + (1.0 + (posWeight - 1.0) * target) * logSigNeg;
        return Reduce(weight == null ? loss : loss * weight, reduction);
    }

    /// <summary>Negative log-likelihood of log-probabilities [N, C] (or [N, C, d1, ...]) at class indices
    /// [N] (or [N, d1, ...], Int64). Mean reduction divides by the summed weights of non-ignored targets.</summary>
    public static Tensor NllLoss(Tensor input, Tensor target, Tensor? weight = null, long ignoreIndex = -100, Reduction reduction = Reduction.Mean)
    {
        var ct = ClassTargets("NllLoss", input, target, weight, ignoreIndex);
        if (reduction != Reduction.None) return ReducedNll(ct, reduction);
        var (logp, t, w, _) = ct.Tensors();
        var picked = -Gather(logp, 1, t.Unsqueeze(1)).Squeeze(1) * w;
        return ReduceWeighted(picked, w, reduction, target);
    }

    /// <summary>Cross-entropy of logits [N, C] (or [N, C, d1, ...]) against class indices (Int64 [N, ...]) or
    /// class probabilities (same shape as the input), with class weights, ignore index and label smoothing, as PyTorch.</summary>
    public static Tensor CrossEntropy(Tensor input, Tensor target, Tensor? weight = null, long ignoreIndex = -100,
        Reduction reduction = Reduction.Mean, double labelSmoothing = 0.0)
    {
        if (labelSmoothing < 0 || labelSmoothing > 1) throw new ArgumentException($"CrossEntropy: labelSmoothing must be in [0, 1], got {labelSmoothing}");
        if (input.Rank < 1) throw new ArgumentException($"CrossEntropy: input must have a class dim, got shape {Shape.Str(input.Dims)}");
        int classDim = input.Rank == 1 ? 0 : 1, c = input.Dims[classDim];
        var logp = LogSoftmax(input, classDim);
        if (target.DType.IsFloat())
        {
            // Class probabilities: loss_n = -sum_c w_c p_c log q_c; mean divides by the number of samples.
            SameShape("CrossEntropy", input, target);
            var p = labelSmoothing > 0 ? target * (1 - labelSmoothing) + labelSmoothing / c : target;
            var wl = weight == null ? logp : logp * ClassWeight(weight, input, classDim);
            var perSample = -Sum(p * wl, classDim);
            return reduction == Reduction.Mean ? Sum(perSample) / (input.Numel / c) : Reduce(perSample, reduction);
        }
        var ct = ClassTargets("CrossEntropy", logp, target, weight, ignoreIndex);
        if (labelSmoothing == 0 && reduction != Reduction.None) return ReducedNll(ct, reduction);
        var (lp, t, w, valid) = ct.Tensors();
        var nll = -Gather(lp, 1, t.Unsqueeze(1)).Squeeze(1) * w;
        if (labelSmoothing == 0) return ReduceWeighted(nll, w, reduction, target);
        // PyTorch: (1 - eps) * nll + eps / C * smooth, smooth_n = -sum_c w_c log q_c over non-ignored samples.
        var cw = weight == null ? lp : lp * weight.Reshape(1, c);
        var smooth = -Sum(cw, 1) * valid;
        Tensor nllR = ReduceWeighted(nll, w, reduction, target), smoothR;
        if (reduction == Reduction.Mean)
        {
            var total = weight == null ? Sum(valid) : Sum(w);
            smoothR = total.Item() == 0 ? Sum(smooth) * 0.0 + double.NaN : Sum(smooth) / total;
        }
        else smoothR = reduction == Reduction.Sum ? Sum(smooth) : smooth.Reshape(target.Dims);
        return nllR * (1 - labelSmoothing) + smoothR * (labelSmoothing / c);
    }

    private static Tensor ClassWeight(Tensor weight, Tensor input, int classDim)
    {
        int c = input.Dims[classDim];
        if (weight.Rank != 1 || weight.Dims[0] != c) throw new ArgumentException($"CrossEntropy: weight must have shape [{c}], got {Shape.Str(weight.Dims)}");
        var shape = Enumerable.Repeat(1, input.Rank).ToArray();
        shape[classDim] = c;
        return weight.Reshape(shape);
    }

    /// <summary>Log-probabilities flattened to [M, C] with, per row, the target class (0 where ignored), its weight and
    /// whether it counts (0 for ignored targets).</summary>
    private readonly record struct ClassTarget(Tensor LogP, long[] Index, double[] W, double[] Valid)
    {
        public (Tensor LogP, Tensor Target, Tensor W, Tensor Valid) Tensors() =>
            (LogP, Tensor.From(Index, Index.Length), Tensor.From(W, W.Length).To(LogP.DType), Tensor.From(Valid, Valid.Length).To(LogP.DType));
    }

    /// <summary>Flattens [N, C, d...] log-probabilities to [M, C] and targets to [M]; ignored targets get index 0,
    /// weight 0 and valid 0.</summary>
    private static ClassTarget ClassTargets(string op, Tensor input, Tensor target, Tensor? weight, long ignoreIndex)
    {
        Shape.Float(op, input);
        if (target.DType != DType.Int64) throw new ArgumentException($"{op}: class-index target must be Int64, got {target.DType} {Shape.Str(target.Dims)}");
        int classDim = input.Rank == 1 ? 0 : 1, c = input.Dims[classDim];
        var expected = input.Rank == 1 ? [] : input.Dims.Where((_, i) => i != 1).ToArray();
        if (!Shape.Same(target.Dims, expected))
            throw new ArgumentException($"{op}: target shape {Shape.Str(target.Dims)} does not match input {Shape.Str(input.Dims)} (expected {Shape.Str(expected)})");
        if (weight != null && (weight.Rank != 1 || weight.Dims[0] != c))
            throw new ArgumentException($"{op}: weight must have shape [{c}], got {Shape.Str(weight.Dims)}");
        var lp = input.Rank == 1 ? input.Reshape(1, c)
            : input.Rank == 2 ? input
            : input.Reshape(input.Dims[0], c, -1).Transpose(1, 2).Reshape(-1, c);
        var tv = target.Data<long>();
        var idx = new long[tv.Length];
        var w = new double[tv.Length];
        var valid = new double[tv.Length];
        var wv = weight?.ToDoubleArray();
        for (int i = 0; i < tv.Length; i++)
        {
            if (tv[i] == ignoreIndex) continue;
            if (tv[i] < 0 || tv[i] >= c) throw new ArgumentOutOfRangeException(nameof(target), $"{op}: target {tv[i]} at position {i} is out of range for {c} classes");
            idx[i] = tv[i];
            w[i] = wv?[(int)tv[i]] ?? 1;
            valid[i] = 1;
        }
        return new(lp, idx, w, valid);
    }

    /// <summary>The mean (over the summed weights) or sum of -w_i logp[i, t_i] as one op, instead of a gather and a chain of
    /// small tensor ops (a dozen tensors and graph nodes per training step). Its gradient is g times a constant [M, C]
    /// matrix (-w_i / divisor at each target, 0 elsewhere), so it differentiates again. With every target ignored the mean
    /// is 0/0: NaN, as PyTorch, with zero gradients.</summary>
    private static Tensor ReducedNll(ClassTarget ct, Reduction reduction)
    {
        var (logp, idx, w, _) = ct;
        int c = logp.Dims[1];
        double total = reduction == Reduction.Mean ? w.Sum() : 1, sum = 0;
        for (int i = 0; i < idx.Length; i++)
            if (w[i] != 0) sum -= w[i] * logp.At(i * c + (int)idx[i]);
        var loss = Tensor.Scalar(total == 0 ? double.NaN : sum / total, logp.DType);
        return AutoGrad.Record(loss, "Nll", Saves.None, g =>
        {
            var coef = Tensor.Zeros(logp.Dims, logp.DType);
            for (int i = 0; i < idx.Length; i++)
                if (w[i] != 0 && total != 0) Set(coef, i * c + (int)idx[i], -w[i] / total);
            return [g * coef];
        }, logp);
    }

    private static Tensor ReduceWeighted(Tensor perSample, Tensor w, Reduction reduction, Tensor target) => reduction switch
    {
        // With every target ignored the mean is 0/0: NaN, as PyTorch, but with zero (not NaN) gradients.
        Reduction.Mean when Sum(w).Item() == 0 => Sum(perSample) * 0.0 + double.NaN,
        Reduction.Mean => Sum(perSample) / Sum(w),
        Reduction.Sum => Sum(perSample),
        _ => perSample.Reshape(target.Dims),
    };
}
