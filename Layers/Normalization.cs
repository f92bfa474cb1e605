using static Autograd.Functional;

namespace Autograd.Layers;

/// <summary>Batch normalization over channel dim 1, as <c>nn.BatchNorm1d/2d/3d</c>: weight 1 and bias 0, buffers
/// <c>running_mean</c>, <c>running_var</c> and <c>num_batches_tracked</c> (Int64). With <c>momentum</c> null the running
/// statistics are a cumulative average, as PyTorch.</summary>
public abstract class BatchNormNd : Module
{
    private readonly int[] ranks;

    private protected BatchNormNd(int numFeatures, double eps, double? momentum, bool affine, bool trackRunningStats, params int[] ranks)
    {
        (NumFeatures, Eps, Momentum, this.ranks) = (numFeatures, eps, momentum, ranks);
        RegisterParameter("weight", affine ? Tensor.Ones(numFeatures) : null);
        RegisterParameter("bias", affine ? Tensor.Zeros(numFeatures) : null);
        RegisterBuffer("running_mean", trackRunningStats ? Tensor.Zeros(numFeatures) : null);
        RegisterBuffer("running_var", trackRunningStats ? Tensor.Ones(numFeatures) : null);
        RegisterBuffer("num_batches_tracked", trackRunningStats ? Tensor.From(new long[] { 0 }, []) : null);
    }

    /// <summary>Number of channels.</summary>
    public int NumFeatures { get; }
    /// <summary>Added to the variance.</summary>
    public double Eps { get; }
    /// <summary>Running-average factor (null: cumulative average).</summary>
    public double? Momentum { get; }
    /// <summary>[C] or null.</summary>
    public Tensor? Weight => Param("weight");
    /// <summary>[C] or null.</summary>
    public Tensor? Bias => Param("bias");
    /// <summary>[C] or null.</summary>
    public Tensor? RunningMean => Buffer("running_mean");
    /// <summary>[C] or null.</summary>
    public Tensor? RunningVar => Buffer("running_var");

    /// <summary>When set, training-mode statistics are those of the batches of every process in the group (synchronized batch
    /// norm, see <see cref="SyncBatchNorm"/>); when null (the default) they are this process's batch only.</summary>
    public IProcessGroup? ProcessGroup { get; set; }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        if (!ranks.Contains(input.Rank))
            throw new ArgumentException($"{GetType().Name}: expected a {string.Join(" or ", ranks)}-d input, got [{string.Join(", ", input.Shape)}]");
        double momentum = Momentum ?? 0;
        if (Training && Buffer("num_batches_tracked") is Tensor tracked)
        {
            long n = (long)tracked.Item() + 1;
            using (AutoGrad.NoGrad()) tracked.Copy_(Tensor.From(new long[] { n }, []));
            if (Momentum == null) momentum = 1.0 / n;
        }
        // Without running statistics the batch statistics normalize in eval mode too (as PyTorch).
        if (!Training && RunningMean != null) return BatchNorm(input, RunningMean, RunningVar, Weight, Bias, training: false, momentum, Eps);
        return ProcessGroup is { WorldSize: > 1 } group
            ? Functional.SyncBatchNorm(input, RunningMean, RunningVar, Weight, Bias, group, momentum, Eps)
            : BatchNorm(input, RunningMean, RunningVar, Weight, Bias, training: true, momentum, Eps);
    }

    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"{NumFeatures}, eps={Py(Eps)}, momentum={(Momentum is double m ? Py(m) : "None")}, affine={Py(Weight != null)}, track_running_stats={Py(RunningMean != null)}";
}

/// <summary>Batch norm for [N, C] or [N, C, L].</summary>
public sealed class BatchNorm1d(int numFeatures, double eps = 1e-5, double? momentum = 0.1, bool affine = true, bool trackRunningStats = true)
    : BatchNormNd(numFeatures, eps, momentum, affine, trackRunningStats, 2, 3);
/// <summary>Batch norm for [N, C, H, W].</summary>
public sealed class BatchNorm2d(int numFeatures, double eps = 1e-5, double? momentum = 0.1, bool affine = true, bool trackRunningStats = true)
    : BatchNormNd(numFeatures, eps, momentum, affine, trackRunningStats, 4);
/// <summary>Batch norm for [N, C, D, H, W].</summary>
public sealed class BatchNorm3d(int numFeatures, double eps = 1e-5, double? momentum = 0.1, bool affine = true, bool trackRunningStats = true)
    : BatchNormNd(numFeatures, eps, momentum, affine, trackRunningStats, 5);

/// <summary>Batch norm whose training statistics span the batches of every process of a data-parallel job, as
/// <c>nn.SyncBatchNorm</c> (any input of rank 2 to 5): with N processes of batch B each, it normalizes, and back-propagates,
/// exactly as a <see cref="BatchNorm2d"/> on one process with batch N x B. Same parameters, buffers and state-dict names as
/// the other batch norms. Without a process group (or in a group of one) it is an ordinary batch norm.</summary>
/// <example><code>
/// var model = SyncBatchNorm.ConvertSyncBatchNorm(new ResNet18(), comm);   // before wrapping in DistributedDataParallel
/// </code></example>
public sealed class SyncBatchNorm : BatchNormNd
{
    /// <summary>A synchronized batch norm over <paramref name="numFeatures"/> channels.</summary>
    public SyncBatchNorm(int numFeatures, double eps = 1e-5, double? momentum = 0.1, bool affine = true, bool trackRunningStats = true,
        IProcessGroup? processGroup = null) : base(numFeatures, eps, momentum, affine, trackRunningStats, 2, 3, 4, 5) => ProcessGroup = processGroup;

    /// <summary>Makes every batch norm in <paramref name="module"/> synchronized over <paramref name="processGroup"/> and returns
    /// the module, as <c>nn.SyncBatchNorm.convert_sync_batchnorm</c>. Unlike PyTorch the layers are switched in place (their
    /// type and printout stay BatchNorm2d etc.); their parameters, buffers and names do not change.</summary>
    public static T ConvertSyncBatchNorm<T>(T module, IProcessGroup processGroup) where T : Module
    {
        ArgumentNullException.ThrowIfNull(processGroup);
        foreach (var bn in module.Modules().OfType<BatchNormNd>()) bn.ProcessGroup = processGroup;
        return module;
    }
}

/// <summary>Layer normalization over the last dims, as <c>nn.LayerNorm</c> (weight 1, bias 0).</summary>
public sealed class LayerNorm : Module
{
    private readonly int[] shape;
    private readonly double eps;

    /// <summary>Normalizes over trailing dims of shape <paramref name="normalizedShape"/>.</summary>
    public LayerNorm(int[] normalizedShape, double eps = 1e-5, bool elementwiseAffine = true)
    {
        (shape, this.eps) = ((int[])normalizedShape.Clone(), eps);
        RegisterParameter("weight", elementwiseAffine ? Tensor.Ones(shape) : null);
        RegisterParameter("bias", elementwiseAffine ? Tensor.Zeros(shape) : null);
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Functional.LayerNorm(input, shape, Param("weight"), Param("bias"), eps);
    /// <inheritdoc/>
    protected override string ExtraRepr() => $"{Py(shape)}, eps={Py(eps)}, elementwise_affine={Py(Param("weight") != null)}";
}

/// <summary>Group normalization, as <c>nn.GroupNorm</c> (per-channel weight 1, bias 0).</summary>
public sealed class GroupNorm : Module
{
    private readonly int groups;
    private readonly double eps;

    /// <summary><paramref name="numGroups"/> groups over <paramref name="numChannels"/> channels.</summary>
    public GroupNorm(int numGroups, int numChannels, double eps = 1e-5, bool affine = true)
    {
        if (numGroups < 1 || numChannels % numGroups != 0)
            throw new ArgumentException($"GroupNorm: num_channels ({numChannels}) must be divisible by num_groups ({numGroups})");
        (groups, this.eps) = (numGroups, eps);
        RegisterParameter("weight", affine ? Tensor.Ones(numChannels) : null);
        RegisterParameter("bias", affine ? Tensor.Zeros(numChannels) : null);
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Functional.GroupNorm(input, groups, Param("weight"), Param("bias"), eps);
    /// <inheritdoc/>
    protected override string ExtraRepr() => $"{groups}, {Param("weight")?.Shape[0]}, eps={Py(eps)}, affine={Py(Param("weight") != null)}";
}

/// <summary>Instance normalization of [N, C, H, W], as <c>nn.InstanceNorm2d</c> (no affine and no running statistics by default).</summary>
public sealed class InstanceNorm2d : Module
{
    private readonly double eps, momentum;

    /// <summary>Instance norm over <paramref name="numFeatures"/> channels.</summary>
    public InstanceNorm2d(int numFeatures, double eps = 1e-5, double momentum = 0.1, bool affine = false, bool trackRunningStats = false)
    {
        (this.eps, this.momentum) = (eps, momentum);
        RegisterParameter("weight", affine ? Tensor.Ones(numFeatures) : null);
        RegisterParameter("bias", affine ? Tensor.Zeros(numFeatures) : null);
        RegisterBuffer("running_mean", trackRunningStats ? Tensor.Zeros(numFeatures) : null);
        RegisterBuffer("running_var", trackRunningStats ? Tensor.Ones(numFeatures) : null);
        RegisterBuffer("num_batches_tracked", trackRunningStats ? Tensor.From(new long[] { 0 }, []) : null);
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        if (input.Rank != 4) throw new ArgumentException($"InstanceNorm2d: expected a 4-d input, got [{string.Join(", ", input.Shape)}]");
        return InstanceNorm(input, Buffer("running_mean"), Buffer("running_var"), Param("weight"), Param("bias"),
            useInputStats: Training || Buffer("running_mean") == null, momentum, eps);
    }
}

/// <summary>Local response normalization across channels, as <c>nn.LocalResponseNorm</c>.</summary>
public sealed class LocalResponseNorm(int size, double alpha = 1e-4, double beta = 0.75, double k = 1.0) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Functional.LocalResponseNorm(input, size, alpha, beta, k);
    /// <inheritdoc/>
    protected override string ExtraRepr() => $"{size}, alpha={Py(alpha)}, beta={Py(beta)}, k={Py(k)}";
}

/// <summary>Dropout layer (active in training mode only), as <c>nn.Dropout</c>.</summary>
public sealed class Dropout(double p = 0.5, Generator? generator = null) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Functional.Dropout(input, p, Training, generator);
    /// <inheritdoc/>
    protected override string ExtraRepr() => $"p={Py(p)}, inplace=False";
}

/// <summary>Channel dropout layer (active in training mode only), as <c>nn.Dropout2d</c>.</summary>
public sealed class Dropout2d(double p = 0.5, Generator? generator = null) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Functional.Dropout2d(input, p, Training, generator);
    /// <inheritdoc/>
    protected override string ExtraRepr() => $"p={Py(p)}, inplace=False";
}

/// <summary>Rearranges channels into space, as <c>nn.PixelShuffle</c>.</summary>
public sealed class PixelShuffle(int upscaleFactor) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Functional.PixelShuffle(input, upscaleFactor);
    /// <inheritdoc/>
    protected override string ExtraRepr() => $"upscale_factor={upscaleFactor}";
}

/// <summary>Upsampling by size or scale factor, as <c>nn.Upsample</c> (nearest by default).</summary>
public sealed class Upsample(int[]? size = null, double[]? scaleFactor = null, string mode = "nearest", bool alignCorners = false) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Interpolate(input, size, scaleFactor, mode, alignCorners);
    /// <inheritdoc/>
    protected override string ExtraRepr() => $"{(size != null ? $"size={Py(size)}" : $"scale_factor={string.Join(", ", scaleFactor ?? [])}")}, mode='{mode}'";
}
