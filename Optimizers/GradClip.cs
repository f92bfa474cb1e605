namespace Autograd.Optimizers;

/// <summary>Gradient clipping, like <c>torch.nn.utils.clip_grad_norm_</c> and <c>clip_grad_value_</c>. Gradients are
/// modified in place; parameters without a gradient are skipped.</summary>
public static class GradClip
{
    /// <summary>Scales the gradients of <paramref name="parameters"/> so that their total norm (the norm of the vector
    /// of all gradient elements) is at most <paramref name="maxNorm"/>: each gradient is multiplied by
    /// min(1, maxNorm / (total + 1e-6)).</summary>
    /// <param name="parameters">The parameters whose gradients are clipped.</param>
    /// <param name="maxNorm">Largest allowed total norm.</param>
    /// <param name="normType">Order p of the norm (&gt; 0), or <see cref="double.PositiveInfinity"/> for the largest absolute value.</param>
    /// <param name="errorIfNonfinite">Throw if the total norm is NaN or infinite instead of scaling by it.</param>
    /// <returns>The total norm of the gradients before clipping (0 when no parameter has a gradient), computed in double precision.</returns>
    public static double ClipGradNorm(IEnumerable<Tensor> parameters, double maxNorm, double normType = 2, bool errorIfNonfinite = false)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (double.IsNaN(maxNorm)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "ClipGradNorm: maxNorm is NaN");
        if (!(normType > 0)) throw new ArgumentOutOfRangeException(nameof(normType), normType, $"ClipGradNorm: normType must be > 0 or +infinity, got {normType}");
        var grads = parameters.Select(p => p.Grad).OfType<Tensor>().ToArray();
        if (grads.Length == 0) return 0;
        double total;
        if (double.IsPositiveInfinity(normType))
        {
            total = 0;
            foreach (var g in grads)
                foreach (var v in g.ToDoubleArray())
                    if (double.IsNaN(v) || Math.Abs(v) > total) total = double.IsNaN(v) ? double.NaN : Math.Abs(v);
            // (a NaN propagates: comparisons with NaN are false, so it is never replaced)
        }
        else
        {
            // the p-norm of the per-tensor p-norms is the p-norm of all elements
            double sum = 0;
            foreach (var g in grads)
            {
                double s = 0;
                foreach (var v in g.ToDoubleArray()) s += normType == 2 ? v * v : normType == 1 ? Math.Abs(v) : Math.Pow(Math.Abs(v), normType);
                sum += s;
            }
            total = normType == 2 ? Math.Sqrt(sum) : normType == 1 ? sum : Math.Pow(sum, 1 / normType);
        }
        if (errorIfNonfinite && !double.IsFinite(total))
            throw new InvalidOperationException($"ClipGradNorm: the total norm of order {normType} of the gradients is {total}, so they cannot be clipped; pass errorIfNonfinite: false to scale by it anyway");
        double coef = Math.Min(maxNorm / (total + 1e-6), 1.0);
        using (AutoGrad.NoGrad())
            foreach (var g in grads) g.Mul_(coef);
        return total;
    }

    /// <summary>Clamps every gradient element of <paramref name="parameters"/> to [−clipValue, clipValue].</summary>
    /// <param name="parameters">The parameters whose gradients are clipped.</param>
    /// <param name="clipValue">Largest allowed absolute value (&gt;= 0).</param>
    public static void ClipGradValue(IEnumerable<Tensor> parameters, double clipValue)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(clipValue >= 0)) throw new ArgumentOutOfRangeException(nameof(clipValue), clipValue, $"ClipGradValue: clipValue must be >= 0, got {clipValue}");
        using (AutoGrad.NoGrad())
            foreach (var g in parameters.Select(p => p.Grad).OfType<Tensor>()) g.Copy_(g.Clamp(-clipValue, clipValue));
    }
}
