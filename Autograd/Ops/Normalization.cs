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
        Shape.Rank(op, input, 2, 5);
        Shape.Float(op, input);
        int c = input.Dims[1];
        foreach (var (t, name) in new[] { (runningMean, "running_mean"), (runningVar, "running_var") })
            if (t != null && (t.Rank != 1 || t.Dims[0] != c)) throw new ArgumentException($"{op}: {name} must have shape [{c}], got {Shape.Str(t.Dims)}");
        var shape = ChannelShape(input);
        int[] dims = [0, .. Enumerable.Range(2, input.Rank - 2)];
        if (training)
        {
            long n = input.Numel / c;
            if (n <= 1) throw new ArgumentException($"{op}: expected more than 1 value per channel when training, got input {Shape.Str(input.Dims)}");
            foreach (var (t, name) in new[] { (weight, "weight"), (bias, "bias") })
                if (t != null && t.Numel != c) throw new ArgumentException($"{op}: {name} must have {c} elements, got {Shape.Str(t.Dims)}");
            var (y, mean, variance) = BatchNormTraining(input, weight, bias, eps);
            using (AutoGrad.NoGrad())
            {
                runningMean?.Mul_(1 - momentum).Add_(mean, momentum);
                runningVar?.Mul_(1 - momentum).Add_(variance * ((double)n / (n - 1)), momentum);
            }
            return y;
        }
        if (runningMean == null || runningVar == null) throw new ArgumentException($"{op}: running_mean and running_var are required in eval mode (training: false)");
        return Affine(op, (input - runningMean.Reshape(shape)) * Rsqrt(runningVar.Reshape(shape) + eps), weight, bias, shape);
    }

    /// <summary>Training-mode batch norm in one fused pass per channel, returning the output and the batch mean and biased
    /// variance. Its backward is a fused kernel too, except under <c>createGraph</c>, where the same formula is written with
    /// differentiable ops so it can be differentiated again.</summary>
    private static (Tensor Y, Tensor Mean, Tensor Var) BatchNormTraining(Tensor x, Tensor? weight, Tensor? bias, double eps)
    {
        int c = x.Dims[1], inner = x.Numel / (x.Dims[0] * c);
        var y = Tensor.Empty(x.DType, x.Dims);
        var mean = Tensor.Empty(x.DType, c);
        var variance = Tensor.Empty(x.DType, c);
        if (x.DType == DType.Float32)
            BatchNormKernels<float>.Forward(x.Data<float>(), weight?.Data<float>(), bias?.Data<float>(), y.Data<float>(), mean.Data<float>(), variance.Data<float>(), x.Dims[0], c, inner, eps);
        else
            BatchNormKernels<double>.Forward(x.Data<double>(), weight?.Data<double>(), bias?.Data<double>(), y.Data<double>(), mean.Data<double>(), variance.Data<double>(), x.Dims[0], c, inner, eps);
        var inputs = new[] { x, weight, bias }.OfType<Tensor>().ToArray();
        AutoGrad.Record(y, "BatchNorm", g =>
        {
            Tensor gx, gw, gb;
            if (AutoGrad.IsGradEnabled)
            {
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
                (gx, gw, gb) = (Tensor.Empty(x.DType, x.Dims), Tensor.Empty(x.DType, c), Tensor.Empty(x.DType, c));
                if (x.DType == DType.Float32)
                    BatchNormKernels<float>.Backward(x.Data<float>(), g.Data<float>(), weight?.Data<float>(), mean.Data<float>(), variance.Data<float>(),
                        gx.Data<float>(), gw.Data<float>(), gb.Data<float>(), x.Dims[0], c, inner, eps);
                else
                    BatchNormKernels<double>.Backward(x.Data<double>(), g.Data<double>(), weight?.Data<double>(), mean.Data<double>(), variance.Data<double>(),
                        gx.Data<double>(), gw.Data<double>(), gb.Data<double>(), x.Dims[0], c, inner, eps);
            }
            var grads = new List<Tensor?> { gx };
            if (weight != null) grads.Add(gw.Reshape(weight.Dims));
            if (bias != null) grads.Add(gb.Reshape(bias.Dims));
            return [.. grads];
        }, inputs);
        return (y, mean, variance);
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

    /// <summary>Local response normalization across channels (AlexNet, GoogLeNet), as <c>F.local_response_norm</c>:
    /// <c>x / (k + alpha * mean of x² over a window of size channels)^beta</c>, the window zero-padded at the channel borders.</summary>
    public static Tensor LocalResponseNorm(Tensor input, int size, double alpha = 1e-4, double beta = 0.75, double k = 1.0)
    {
        const string op = "LocalResponseNorm";
        Shape.Rank(op, input, 3, 5);
        if (size < 1) throw new ArgumentException($"{op}: size must be positive, got {size}");
        int c = input.Dims[1];
        var sq = input * input;
        // Zero-pad the channel dim by size/2 before and (size-1)/2 after, then sum each window of `size` channels.
        var pad = new int[2 * (input.Rank - 1)];
        pad[^2] = size / 2;
        pad[^1] = (size - 1) / 2;
        var padded = Pad(sq, pad);
        var sum = Narrow(padded, 1, 0, c);
        for (int i = 1; i < size; i++) sum = sum + Narrow(padded, 1, i, c);
        return input / Pow(sum * (alpha / size) + k, beta);
    }
}

/// <summary>Fused per-channel batch-norm loops over [N, C, inner], parallel over channels: vectorized within each row of
/// <c>inner</c> elements (accumulating in T, with the mean subtracted first so nothing cancels), rows summed in double.</summary>
internal static class BatchNormKernels<T> where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
{
    private static void ForChannels(int c, long work, Action<int> body)
    {
        if (c >= 2 && work >= 1 << 15) Parallel.For(0, c, body);
        else for (int ch = 0; ch < c; ch++) body(ch);
    }

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

    public static void Forward(T[] x, T[]? w, T[]? b, T[] y, T[] mean, T[] variance, int n, int c, int inner, double eps) =>
        ForChannels(c, x.Length, ch =>
        {
            double sum = 0, sq = 0, m = (double)n * inner;
            for (int s = 0; s < n; s++) sum += double.CreateTruncating(TensorPrimitives.Sum<T>(x.AsSpan((s * c + ch) * inner, inner)));
            double mu = sum / m;
            T muT = T.CreateTruncating(mu);
            for (int s = 0; s < n; s++)
            {
                var row = x.AsSpan((s * c + ch) * inner, inner);
                sq += CenteredDot(row, muT, row, muT);
            }
            double var = sq / m, invstd = 1 / Math.Sqrt(var + eps);
            mean[ch] = muT;
            variance[ch] = T.CreateTruncating(var);
            // y = x * scale + shift with scale = w * invstd, shift = b - mean * scale
            double scale = (w == null ? 1 : double.CreateTruncating(w[ch])) * invstd, shift = (b == null ? 0 : double.CreateTruncating(b[ch])) - mu * scale;
            for (int s = 0; s < n; s++)
            {
                int o = (s * c + ch) * inner;
                var ys = y.AsSpan(o, inner);
                TensorPrimitives.Multiply(x.AsSpan(o, inner), T.CreateTruncating(scale), ys);
                TensorPrimitives.Add(ys, T.CreateTruncating(shift), ys);
            }
        });

    public static void Backward(T[] x, T[] g, T[]? w, T[] mean, T[] variance, T[] gx, T[] gw, T[] gb, int n, int c, int inner, double eps) =>
        ForChannels(c, x.Length, ch =>
        {
            double mu = double.CreateTruncating(mean[ch]), invstd = 1 / Math.Sqrt(double.CreateTruncating(variance[ch]) + eps), m = (double)n * inner;
            double sumG = 0, sumGX = 0;
            for (int s = 0; s < n; s++)
            {
                int o = (s * c + ch) * inner;
                sumG += double.CreateTruncating(TensorPrimitives.Sum<T>(g.AsSpan(o, inner)));
                sumGX += CenteredDot(g.AsSpan(o, inner), T.Zero, x.AsSpan(o, inner), mean[ch]);
            }
            double dw = sumGX * invstd, wv = w == null ? 1 : double.CreateTruncating(w[ch]);
            gw[ch] = T.CreateTruncating(dw);
            gb[ch] = T.CreateTruncating(sumG);
            // gx = w invstd (g - mean(g) - xhat mean(g xhat)) = a g - k x + c0, per channel
            double a = wv * invstd, k = wv * invstd * invstd * invstd * sumGX / m;
            double c0 = -a * sumG / m + k * mu;
            for (int s = 0; s < n; s++)
            {
                int o = (s * c + ch) * inner;
                var gxs = gx.AsSpan(o, inner);
                TensorPrimitives.Multiply(x.AsSpan(o, inner), T.CreateTruncating(-k), gxs);
                TensorPrimitives.Add(gxs, T.CreateTruncating(c0), gxs);
                TensorPrimitives.MultiplyAdd(g.AsSpan(o, inner), T.CreateTruncating(a), gxs, gxs);
            }
        });
}
