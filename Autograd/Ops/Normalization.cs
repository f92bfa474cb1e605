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
        Tensor mean, variance;
        if (training)
        {
            long n = input.Numel / c;
            if (n <= 1) throw new ArgumentException($"{op}: expected more than 1 value per channel when training, got input {Shape.Str(input.Dims)}");
            mean = Mean(input, dims, keepDim: true);
            variance = Var(input, dims, correction: 0, keepDim: true);
            using (AutoGrad.NoGrad())
            {
                runningMean?.Mul_(1 - momentum).Add_(mean.Reshape(c), momentum);
                runningVar?.Mul_(1 - momentum).Add_(variance.Reshape(c) * ((double)n / (n - 1)), momentum);
            }
        }
        else
        {
            if (runningMean == null || runningVar == null) throw new ArgumentException($"{op}: running_mean and running_var are required in eval mode (training: false)");
            mean = runningMean.Reshape(shape);
            variance = runningVar.Reshape(shape);
        }
        return Affine(op, (input - mean) * Rsqrt(variance + eps), weight, bias, shape);
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
