using Autograd.Backends;
using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;

namespace Autograd;

public static partial class Functional
{
    private static int[] ChannelShape(Tensor x) => [1, x.Dims[1], .. Enumerable.Repeat(1, x.Rank - 2)];

    private static Tensor Affine(string op, Tensor y, Tensor? weight, Tensor? bias, int[] shape)
    {
        int n = Shape.Numel(shape);
        foreach (var (t, name) in new[] { (weight, "weight"), (bias, "bias") })
            if (t != null && t.Numel != n) throw new ArgumentException($"{op}: {name} must have {n} elements (shape {Shape.Str(shape.Where(d => d != 1).ToArray())}), got {Shape.Str(t.Dims)}");
        if (weight != null) y = y * weight.Reshape(shape);
        return bias == null ? y : y + bias.Reshape(shape);
    }

    /// <summary>Batch normalization over channel dim 1 of [N, C, *] (2-d to 5-d), as <c>F.batch_norm</c>: in training the batch mean
    /// and biased variance normalize, and the running statistics (if given) are updated in place with
    /// <c>running = (1 - momentum) * running + momentum * batch</c>, using the unbiased variance; in eval the running statistics normalize.</summary>
    public static Tensor BatchNorm(Tensor input, Tensor? runningMean, Tensor? runningVar, Tensor? weight = null, Tensor? bias = null,
        bool training = false, double momentum = 0.1, double eps = 1e-5)
    {
        const string op = "BatchNorm";
        CheckBatchNorm(op, input, runningMean, runningVar);
        if (training) return BatchNormTrain(op, input, runningMean, runningVar, weight, bias, momentum, eps, group: null);
        if (runningMean == null || runningVar == null) throw new ArgumentException($"{op}: running_mean and running_var are required in eval mode (training: false)");
        // y = x * scale + shift with per-channel scale = weight / sqrt(var + eps) and shift = bias - mean * scale: one pass
        // over the input.
        int[] channels = [input.Dims[1]];
        var scale = Affine(op, Rsqrt(runningVar + eps), weight, null, channels);
        var shift = Affine(op, -(runningMean * scale), null, bias, channels);
        var y = ChannelAffine(input, scale, shift);
        return OpTrace.Active ? OpTrace.Add("BatchNormalization", y, [input, weight, bias, runningMean, runningVar], ("epsilon", eps)) : y;
    }

    /// <summary>Training-mode batch normalization whose statistics are those of the union of the batches of every process in
    /// <paramref name="processGroup"/>, as <c>nn.SyncBatchNorm</c>: the per-process counts, means and squared deviations are
    /// gathered and combined (Chan's parallel formula, in double), and the backward pass sums the two per-channel gradient
    /// reductions across the group too, so the input gradient is that of one process holding the whole batch. The weight and
    /// bias gradients stay local: data-parallel gradient averaging combines them. Running statistics use the global count.
    /// Every process of the group must call it, in the same order. Not differentiable twice.</summary>
    public static Tensor SyncBatchNorm(Tensor input, Tensor? runningMean, Tensor? runningVar, Tensor? weight, Tensor? bias,
        IProcessGroup processGroup, double momentum = 0.1, double eps = 1e-5)
    {
        const string op = "SyncBatchNorm";
        ArgumentNullException.ThrowIfNull(processGroup);
        CheckBatchNorm(op, input, runningMean, runningVar);
        return BatchNormTrain(op, input, runningMean, runningVar, weight, bias, momentum, eps, processGroup);
    }

    /// <summary>y[n, c, ...] = x[n, c, ...] * scale[c] + shift[c], in one vectorized pass (eval-mode batch norm).</summary>
    private static Tensor ChannelAffine(Tensor x, Tensor scale, Tensor shift)
    {
        int n = x.Dims[0], c = x.Dims[1], inner = x.Numel / Math.Max(1, n * c);
        var y = Tensor.Uninitialized(x.DType, x.Dims);
        if (x.DType == DType.Float32) BatchNormKernels<float>.ChannelAffine(x.Data<float>(), scale.Data<float>(), shift.Data<float>(), y.Data<float>(), n, c, inner);
        else BatchNormKernels<double>.ChannelAffine(x.Data<double>(), scale.Data<double>(), shift.Data<double>(), y.Data<double>(), n, c, inner);
        int[] dims = [0, .. Enumerable.Range(2, x.Rank - 2)];
        return AutoGrad.Record(y, "BatchNorm", g => [x.RequiresGrad ? g * scale.Reshape(ChannelShape(x)) : null,
            scale.RequiresGrad ? Sum(g * x, dims) : null, shift.RequiresGrad ? Sum(g, dims) : null], x, scale, shift);
    }

    private static void CheckBatchNorm(string op, Tensor input, Tensor? runningMean, Tensor? runningVar)
    {
        Shape.Rank(op, input, 2, 5);
        Shape.Float(op, input);
        int c = input.Dims[1];
        foreach (var (t, name) in new[] { (runningMean, "running_mean"), (runningVar, "running_var") })
            if (t != null && (t.Rank != 1 || t.Dims[0] != c)) throw new ArgumentException($"{op}: {name} must have shape [{c}], got {Shape.Str(t.Dims)}");
    }

    private static Tensor BatchNormTrain(string op, Tensor input, Tensor? runningMean, Tensor? runningVar, Tensor? weight, Tensor? bias,
        double momentum, double eps, IProcessGroup? group)
    {
        int c = input.Dims[1];
        foreach (var (t, name) in new[] { (weight, "weight"), (bias, "bias") })
            if (t != null && t.Numel != c) throw new ArgumentException($"{op}: {name} must have {c} elements, got {Shape.Str(t.Dims)}");
        var (y, mean, variance, n) = BatchNormTraining(op, input, weight, bias, eps, group);
        using (AutoGrad.NoGrad())
        {
            runningMean?.Mul_(1 - momentum).Add_(mean, momentum);
            runningVar?.Mul_(1 - momentum).Add_(variance * (n / (n - 1)), momentum);
        }
        return y;
    }

    /// <summary>Training-mode batch norm in one fused pass per channel, returning the output, the batch mean and biased variance,
    /// and the number of values per channel (over the group, if any). Its backward is a fused kernel too, except under
    /// <c>createGraph</c>, where the same formula is written with differentiable ops so it can be differentiated again.</summary>
    private static (Tensor Y, Tensor Mean, Tensor Var, double Count) BatchNormTraining(string op, Tensor x, Tensor? weight, Tensor? bias, double eps, IProcessGroup? group)
    {
        int c = x.Dims[1], inner = x.Numel / (x.Dims[0] * c);
        var y = Tensor.Uninitialized(x.DType, x.Dims);
        var mean = Tensor.Empty(x.DType, c);
        var variance = Tensor.Empty(x.DType, c);
        var (mu, v) = (new double[c], new double[c]);
        double count = (double)x.Dims[0] * inner;
        if (x.DType == DType.Float32) BatchNormKernels<float>.Statistics(x.Data<float>(), mu, v, x.Dims[0], c, inner);
        else BatchNormKernels<double>.Statistics(x.Data<double>(), mu, v, x.Dims[0], c, inner);
        if (group != null) count = CombineStatistics(group, count, mu, v, x.DType);
        else for (int ch = 0; ch < c; ch++) v[ch] /= count;
        if (count <= 1) throw new ArgumentException($"{op}: expected more than 1 value per channel when training, got input {Shape.Str(x.Dims)}{(group != null ? $" ({count} values over {group.WorldSize} processes)" : "")}");
        if (x.DType == DType.Float32)
            BatchNormKernels<float>.Normalize(x.Data<float>(), weight?.Data<float>(), bias?.Data<float>(), y.Data<float>(), mu, v, mean.Data<float>(), variance.Data<float>(), x.Dims[0], c, inner, eps);
        else
            BatchNormKernels<double>.Normalize(x.Data<double>(), weight?.Data<double>(), bias?.Data<double>(), y.Data<double>(), mu, v, mean.Data<double>(), variance.Data<double>(), x.Dims[0], c, inner, eps);
        var inputs = new[] { x, weight, bias }.OfType<Tensor>().ToArray();
        AutoGrad.Record(y, op, g =>
        {
            Tensor gx, gw, gb;
            if (AutoGrad.IsGradEnabled)
            {
                if (group != null) throw new NotSupportedException($"{op}: double backward (createGraph: true) is not supported");
                var shape = ChannelShape(x);
                int[] dims = [0, .. Enumerable.Range(2, x.Rank - 2)];
                var xhat = (x - Mean(x, dims, keepDim: true)) * Rsqrt(Var(x, dims, correction: 0, keepDim: true) + eps);
                var gs = weight == null ? g : g * weight.Reshape(shape);
                gx = Rsqrt(Var(x, dims, correction: 0, keepDim: true) + eps) * (gs - Mean(gs, dims, keepDim: true) - xhat * Mean(gs * xhat, dims, keepDim: true));
                gw = Sum(g * xhat, dims);
                gb = Sum(g, dims);
            }
            else
            {
                (gx, gw, gb) = (Tensor.Uninitialized(x.DType, x.Dims), Tensor.Empty(x.DType, c), Tensor.Empty(x.DType, c));
                // Per channel: the sums of g and of g (x - mean), from which the weight and bias gradients follow (locally);
                // the input gradient needs them over the whole batch, so synchronized batch norm sums them over the group.
                var sums = new double[2 * c];
                if (x.DType == DType.Float32)
                    BatchNormKernels<float>.GradStatistics(x.Data<float>(), g.Data<float>(), mean.Data<float>(), variance.Data<float>(), sums, gw.Data<float>(), gb.Data<float>(), x.Dims[0], c, inner, eps);
                else
                    BatchNormKernels<double>.GradStatistics(x.Data<double>(), g.Data<double>(), mean.Data<double>(), variance.Data<double>(), sums, gw.Data<double>(), gb.Data<double>(), x.Dims[0], c, inner, eps);
                group?.AllReduceSum(sums);
                if (x.DType == DType.Float32)
                    BatchNormKernels<float>.GradInput(x.Data<float>(), g.Data<float>(), weight?.Data<float>(), mean.Data<float>(), variance.Data<float>(), sums, gx.Data<float>(), x.Dims[0], c, inner, count, eps);
                else
                    BatchNormKernels<double>.GradInput(x.Data<double>(), g.Data<double>(), weight?.Data<double>(), mean.Data<double>(), variance.Data<double>(), sums, gx.Data<double>(), x.Dims[0], c, inner, count, eps);
            }
            var grads = new List<Tensor?> { gx };
            if (weight != null) grads.Add(gw.Reshape(weight.Dims));
            if (bias != null) grads.Add(gb.Reshape(bias.Dims));
            return [.. grads];
        }, inputs);
        return (y, mean, variance, count);
    }

    /// <summary>Turns this process's per-channel (count, mean, squared deviations from the mean rounded to the dtype) into the
    /// group's mean and biased variance, in place, and returns the group's count. The per-process values are gathered with
    /// one sum over a buffer in which each process fills only its own slot (adding zeros is exact), then combined in double.</summary>
    private static double CombineStatistics(IProcessGroup group, double count, double[] mean, double[] squares, DType dtype)
    {
        int c = mean.Length, slot = 1 + 2 * c, world = group.WorldSize;
        var all = new double[world * slot];
        int own = group.Rank * slot;
        all[own] = count;
        mean.CopyTo(all, own + 1);
        squares.CopyTo(all, own + 1 + c);
        group.AllReduceSum(all);
        double total = 0;
        for (int r = 0; r < world; r++) total += all[r * slot];
        for (int ch = 0; ch < c; ch++)
        {
            double g = 0, m2 = 0;
            for (int r = 0; r < world; r++) g += all[r * slot] * all[r * slot + 1 + ch];
            g /= total;
            for (int r = 0; r < world; r++)
            {
                // Squares were taken about a = the local mean rounded to the dtype: sum (x - g)^2 = squares + n ((a - g)^2 + 2 (a - g)(mean - a)).
                double n = all[r * slot], mu = all[r * slot + 1 + ch], a = dtype == DType.Float32 ? (float)mu : mu, d = a - g;
                m2 += all[r * slot + 1 + c + ch] + n * (d * d + 2 * d * (mu - a));
            }
            (mean[ch], squares[ch]) = (g, m2 / total);
        }
        return total;
    }

    /// <summary>Normalizes over the last dims given by <paramref name="normalizedShape"/>, as <c>F.layer_norm</c>.</summary>
    public static Tensor LayerNorm(Tensor input, int[] normalizedShape, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5)
    {
        const string op = "LayerNorm";
        int k = normalizedShape.Length;
        if (k == 0 || k > input.Rank || !Shape.Same(input.Dims[^k..], normalizedShape))
            throw new ArgumentException($"{op}: normalized_shape {Shape.Str(normalizedShape)} must match the last dims of input {Shape.Str(input.Dims)}");
        int[] dims = [.. Enumerable.Range(input.Rank - k, k)];
        var y = (input - Mean(input, dims, keepDim: true)) * Rsqrt(Var(input, dims, correction: 0, keepDim: true) + eps);
        return Affine(op, y, weight, bias, normalizedShape);
    }

    /// <summary>Normalizes each of <paramref name="numGroups"/> channel groups of [N, C, *] per sample, then applies a per-channel affine map, as <c>F.group_norm</c>.</summary>
    public static Tensor GroupNorm(Tensor input, int numGroups, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5)
    {
        const string op = "GroupNorm";
        Shape.Rank(op, input, 2, 5);
        if (numGroups < 1 || input.Dims[1] % numGroups != 0)
            throw new ArgumentException($"{op}: channels ({input.Dims[1]}) must be divisible by num_groups ({numGroups})");
        var g = input.Reshape(input.Dims[0], numGroups, -1);
        var y = ((g - Mean(g, 2, keepDim: true)) * Rsqrt(Var(g, 2, correction: 0, keepDim: true) + eps)).Reshape(input.Dims);
        return Affine(op, y, weight, bias, ChannelShape(input));
    }

    /// <summary>Normalizes each (sample, channel) over its spatial dims, as <c>F.instance_norm</c>; running statistics, if given, are
    /// updated with the batch mean of the per-instance statistics (and used instead when <paramref name="useInputStats"/> is false).</summary>
    public static Tensor InstanceNorm(Tensor input, Tensor? runningMean = null, Tensor? runningVar = null, Tensor? weight = null, Tensor? bias = null,
        bool useInputStats = true, double momentum = 0.1, double eps = 1e-5)
    {
        const string op = "InstanceNorm";
        Shape.Rank(op, input, 3, 5);
        var shape = ChannelShape(input);
        if (!useInputStats)
        {
            if (runningMean == null || runningVar == null) throw new ArgumentException($"{op}: running_mean and running_var are required when useInputStats is false");
            return Affine(op, (input - runningMean.Reshape(shape)) * Rsqrt(runningVar.Reshape(shape) + eps), weight, bias, shape);
        }
        int[] dims = [.. Enumerable.Range(2, input.Rank - 2)];
        long n = input.Numel / (input.Dims[0] * input.Dims[1]);
        var mean = Mean(input, dims, keepDim: true);
        var variance = Var(input, dims, correction: 0, keepDim: true);
        using (AutoGrad.NoGrad())
        {
            runningMean?.Mul_(1 - momentum).Add_(Mean(mean, 0).Reshape(-1), momentum);
            if (n > 1) runningVar?.Mul_(1 - momentum).Add_(Mean(variance, 0).Reshape(-1) * ((double)n / (n - 1)), momentum);
        }
        return Affine(op, (input - mean) * Rsqrt(variance + eps), weight, bias, shape);
    }

    /// <summary>The sum over each channel's window of <see cref="ChannelWindow{T}"/>, differentiable.</summary>
    private static Tensor ChannelWindowSum(Tensor t, int before, int after)
    {
        var r = Tensor.Uninitialized(t.DType, t.Dims);
        int n = t.Dims[0], c = t.Dims[1], inner = t.Numel / (n * c);
        if (t.DType == DType.Float32) ChannelWindow<float>.Sum(t.Data<float>(), r.Data<float>(), n, c, inner, before, after);
        else ChannelWindow<double>.Sum(t.Data<double>(), r.Data<double>(), n, c, inner, before, after);
        return AutoGrad.Record(r, "ChannelWindowSum", Saves.None, g => [ChannelWindowSum(g, after, before)], t);
    }

    /// <summary>Local response normalization across channels (AlexNet, GoogLeNet), as <c>F.local_response_norm</c>:
    /// <c>x / (k + alpha * mean of x² over a window of size channels)^beta</c>, the window zero-padded at the channel borders.</summary>
    public static Tensor LocalResponseNorm(Tensor input, int size, double alpha = 1e-4, double beta = 0.75, double k = 1.0)
    {
        const string op = "LocalResponseNorm";
        Shape.Rank(op, input, 3, 5);
        if (size < 1) throw new ArgumentException($"{op}: size must be positive, got {size}");
        Shape.Float(op, input);
        // As PyTorch: the squares summed over a window of `size` channels, size/2 before and (size-1)/2 after, zeros beyond.
        Tensor y;
        if (!(AutoGrad.IsGradEnabled && input.RequiresGrad))
        {
            y = Tensor.Uninitialized(input.DType, input.Dims);
            int n = input.Dims[0], c = input.Dims[1], inner = input.Numel / (n * c);
            if (input.DType == DType.Float32) ChannelWindow<float>.Lrn(input.Data<float>(), y.Data<float>(), n, c, inner, size, alpha, beta, k);
            else ChannelWindow<double>.Lrn(input.Data<double>(), y.Data<double>(), n, c, inner, size, alpha, beta, k);
        }
        else y = input / Pow(ChannelWindowSum(input * input, size / 2, (size - 1) / 2) * (alpha / size) + k, beta);
        return OpTrace.Active ? OpTrace.Add(op, y, [input], ("size", size), ("alpha", alpha), ("beta", beta), ("bias", k)) : y;
    }
}

/// <summary>Sums over windows of channels of [N, C, *] input, plane by plane, parallel over (n, c): s[n, c] = the sum of
/// t[n, j] over the channels j in [c - before, c + after] that exist (its adjoint is the same sum with the window mirrored),
/// and local response normalization, which divides by a power of such a sum.</summary>
internal static class ChannelWindow<T> where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
{
    public static void Sum(T[] t, T[] s, int n, int c, int inner, int before, int after) => Threads.For(n * c, (long)n * c * inner, i =>
    {
        int b = i / c, ch = i % c, lo = Math.Max(0, ch - before), hi = Math.Min(c - 1, ch + after);
        var dst = s.AsSpan(i * inner, inner);
        t.AsSpan((b * c + lo) * inner, inner).CopyTo(dst);
        for (int j = lo + 1; j <= hi; j++) TensorPrimitives.Add(dst, t.AsSpan((b * c + j) * inner, inner), dst);
    });

    /// <summary>LocalResponseNorm's value without its graph, with the arithmetic of its differentiable composition (the same
    /// values to the last bit): the squares summed over each channel's window (<see cref="Sum"/>), times alpha/size, plus k,
    /// to the power beta (<see cref="Kernels.Pow"/>, as <see cref="Functional.Pow(Tensor, double)"/>), x divided by that.</summary>
    public static void Lrn(T[] x, T[] y, int n, int c, int inner, int size, double alpha, double beta, double k)
    {
        var sq = ArrayPool<T>.Shared.Rent(x.Length);
        try
        {
            TensorPrimitives.Multiply(x, x, sq.AsSpan(0, x.Length));
            Sum(sq, y, n, c, inner, size / 2, (size - 1) / 2);
        }
        finally
        {
            ArrayPool<T>.Shared.Return(sq);
        }
        TensorPrimitives.Multiply(y, T.CreateTruncating(alpha / size), y);
        TensorPrimitives.Add(y, T.CreateTruncating(k), y);
        Kernels.Pow(y, T.CreateTruncating(beta), y);
        TensorPrimitives.Divide(x, y, y);
    }
}

/// <summary>Fused per-channel batch-norm loops over [N, C, inner], parallel over channels: vectorized within each row of
/// <c>inner</c> elements (accumulating in T, with the mean subtracted first so nothing cancels), rows summed in double.</summary>
internal static class BatchNormKernels<T> where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
{
    /// <summary>Σ (a_i - ma)(b_i - mb) over one row.</summary>
    private static double CenteredDot(ReadOnlySpan<T> a, T ma, ReadOnlySpan<T> b, T mb)
    {
        int i = 0, lanes = Vector<T>.Count;
        var acc = Vector<T>.Zero;
        if (Vector.IsHardwareAccelerated)
        {
            Vector<T> va = new(ma), vb = new(mb);
            for (; i <= a.Length - lanes; i += lanes)
                acc += (new Vector<T>(a[i..]) - va) * (new Vector<T>(b[i..]) - vb);
        }
        T sum = Vector.Sum(acc);
        for (; i < a.Length; i++) sum += (a[i] - ma) * (b[i] - mb);
        return double.CreateTruncating(sum);
    }

    /// <summary>(Σ g_i, Σ g_i (x_i - m)) over one row, in one pass.</summary>
    private static (double SumG, double SumGX) SumAndCenteredDot(ReadOnlySpan<T> g, ReadOnlySpan<T> x, T m)
    {
        int i = 0, lanes = Vector<T>.Count;
        var (accG, accGX) = (Vector<T>.Zero, Vector<T>.Zero);
        if (Vector.IsHardwareAccelerated)
        {
            Vector<T> vm = new(m);
            for (; i <= g.Length - lanes; i += lanes)
            {
                var vg = new Vector<T>(g[i..]);
                accG += vg;
                accGX += vg * (new Vector<T>(x[i..]) - vm);
            }
        }
        T sumG = Vector.Sum(accG), sumGX = Vector.Sum(accGX);
        for (; i < g.Length; i++) { sumG += g[i]; sumGX += g[i] * (x[i] - m); }
        return (double.CreateTruncating(sumG), double.CreateTruncating(sumGX));
    }

    /// <summary>r_i = x_i s + t over one row.</summary>
    private static void ScaleShift(ReadOnlySpan<T> x, T s, T t, Span<T> r)
    {
        int i = 0, lanes = Vector<T>.Count;
        if (Vector.IsHardwareAccelerated)
        {
            Vector<T> vs = new(s), vt = new(t);
            for (; i <= x.Length - lanes; i += lanes) (new Vector<T>(x[i..]) * vs + vt).CopyTo(r[i..]);
        }
        for (; i < x.Length; i++) r[i] = x[i] * s + t;
    }

    /// <summary>r_i = a g_i + k x_i + c over one row, in one pass.</summary>
    private static void AffinePair(ReadOnlySpan<T> g, T a, ReadOnlySpan<T> x, T k, T c, Span<T> r)
    {
        int i = 0, lanes = Vector<T>.Count;
        if (Vector.IsHardwareAccelerated)
        {
            Vector<T> va = new(a), vk = new(k), vc = new(c);
            for (; i <= g.Length - lanes; i += lanes)
                (va * new Vector<T>(g[i..]) + (vk * new Vector<T>(x[i..]) + vc)).CopyTo(r[i..]);
        }
        for (; i < g.Length; i++) r[i] = a * g[i] + (k * x[i] + c);
    }

    /// <summary>Per channel: the mean (in double) and the sum of squared deviations from the mean rounded to T.</summary>
    public static void Statistics(T[] x, double[] mean, double[] squares, int n, int c, int inner) =>
        Threads.For(c, x.Length, ch =>
        {
            double sum = 0, sq = 0;
            for (int s = 0; s < n; s++) sum += double.CreateTruncating(TensorPrimitives.Sum<T>(x.AsSpan((s * c + ch) * inner, inner)));
            double mu = sum / ((double)n * inner);
            T muT = T.CreateTruncating(mu);
            for (int s = 0; s < n; s++)
            {
                var row = x.AsSpan((s * c + ch) * inner, inner);
                sq += CenteredDot(row, muT, row, muT);
            }
            mean[ch] = mu;
            squares[ch] = sq;
        });

    /// <summary>y = x * scale + shift per channel, scale = w / sqrt(var + eps), shift = b - mean * scale; also stores the
    /// statistics rounded to T.</summary>
    public static void Normalize(T[] x, T[]? w, T[]? b, T[] y, double[] mu, double[] var, T[] mean, T[] variance, int n, int c, int inner, double eps) =>
        Threads.For(c, x.Length, ch =>
        {
            double invstd = 1 / Math.Sqrt(var[ch] + eps);
            mean[ch] = T.CreateTruncating(mu[ch]);
            variance[ch] = T.CreateTruncating(var[ch]);
            double scale = (w == null ? 1 : double.CreateTruncating(w[ch])) * invstd, shift = (b == null ? 0 : double.CreateTruncating(b[ch])) - mu[ch] * scale;
            T sc = T.CreateTruncating(scale), sh = T.CreateTruncating(shift);
            for (int s = 0; s < n; s++)
            {
                int o = (s * c + ch) * inner;
                ScaleShift(x.AsSpan(o, inner), sc, sh, y.AsSpan(o, inner));
            }
        });

    /// <summary>y = x * scale[ch] + shift[ch] per channel plane.</summary>
    public static void ChannelAffine(T[] x, T[] scale, T[] shift, T[] y, int n, int c, int inner) =>
        Threads.For(c, x.Length, ch =>
        {
            for (int s = 0; s < n; s++)
            {
                int o = (s * c + ch) * inner;
                ScaleShift(x.AsSpan(o, inner), scale[ch], shift[ch], y.AsSpan(o, inner));
            }
        });

    /// <summary>Per channel: sums[ch] = sum of g, sums[c + ch] = sum of g (x - mean); gw = the latter times invstd, gb = the former.</summary>
    public static void GradStatistics(T[] x, T[] g, T[] mean, T[] variance, double[] sums, T[] gw, T[] gb, int n, int c, int inner, double eps) =>
        Threads.For(c, x.Length, ch =>
        {
            double mu = double.CreateTruncating(mean[ch]), sumG = 0, sumGX = 0;
            for (int s = 0; s < n; s++)
            {
                int o = (s * c + ch) * inner;
                var (rowG, rowGX) = SumAndCenteredDot(g.AsSpan(o, inner), x.AsSpan(o, inner), mean[ch]);
                sumG += rowG;
                sumGX += rowGX;
            }
            (sums[ch], sums[c + ch]) = (sumG, sumGX);
            gw[ch] = T.CreateTruncating(sumGX / Math.Sqrt(double.CreateTruncating(variance[ch]) + eps));
            gb[ch] = T.CreateTruncating(sumG);
        });

    /// <summary>gx = w invstd (g - mean(g) - xhat mean(g xhat)) = a g - k x + c0 per channel, the means over
    /// <paramref name="count"/> values whose sums are <paramref name="sums"/>.</summary>
    public static void GradInput(T[] x, T[] g, T[]? w, T[] mean, T[] variance, double[] sums, T[] gx, int n, int c, int inner, double count, double eps) =>
        Threads.For(c, x.Length, ch =>
        {
            double mu = double.CreateTruncating(mean[ch]), invstd = 1 / Math.Sqrt(double.CreateTruncating(variance[ch]) + eps);
            double sumG = sums[ch], sumGX = sums[c + ch], wv = w == null ? 1 : double.CreateTruncating(w[ch]);
            double a = wv * invstd, k = wv * invstd * invstd * invstd * sumGX / count;
            double c0 = -a * sumG / count + k * mu;
            T at = T.CreateTruncating(a), kt = T.CreateTruncating(-k), ct = T.CreateTruncating(c0);
            for (int s = 0; s < n; s++)
            {
                int o = (s * c + ch) * inner;
                AffinePair(g.AsSpan(o, inner), at, x.AsSpan(o, inner), kt, ct, gx.AsSpan(o, inner));
            }
        });
}
