using static Autograd.Functional;

namespace Autograd.Layers;

/// <summary>Max pooling of 1 to 3 spatial dims (stride defaults to the kernel size), as <c>nn.MaxPool1d/2d/3d</c>.</summary>
public abstract class MaxPoolNd(int nd, IntTuple kernelSize, IntTuple stride, IntTuple padding, IntTuple dilation, bool ceilMode) : Module
{
    /// <summary>Kernel size per spatial dim.</summary>
    public int[] KernelSize { get; } = kernelSize.Expand("MaxPool", "kernel_size", nd, 1);
    /// <summary>Stride per spatial dim (the kernel size by default).</summary>
    public int[] Stride { get; } = stride.IsDefault ? kernelSize.Expand("MaxPool", "kernel_size", nd, 1) : stride.Expand("MaxPool", "stride", nd, 1);
    /// <summary>Dilation per spatial dim.</summary>
    public int[] Dilation { get; } = dilation.Expand("MaxPool", "dilation", nd, 1);

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => nd switch
    {
        1 => MaxPool1d(input, kernelSize, stride, padding, dilation, ceilMode),
        2 => MaxPool2d(input, kernelSize, stride, padding, dilation, ceilMode),
        _ => MaxPool3d(input, kernelSize, stride, padding, dilation, ceilMode),
    };
    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"kernel_size={kernelSize}, stride={(stride.IsDefault ? kernelSize : stride)}, padding={(padding.IsDefault ? "0" : padding)}, dilation={(dilation.IsDefault ? "1" : dilation)}, ceil_mode={Py(ceilMode)}";
}

/// <summary>1-d max pooling layer.</summary>
public sealed class MaxPool1d(IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, IntTuple dilation = default, bool ceilMode = false)
    : MaxPoolNd(1, kernelSize, stride, padding, dilation, ceilMode);
/// <summary>2-d max pooling layer.</summary>
public sealed class MaxPool2d(IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, IntTuple dilation = default, bool ceilMode = false)
    : MaxPoolNd(2, kernelSize, stride, padding, dilation, ceilMode);
/// <summary>3-d max pooling layer.</summary>
public sealed class MaxPool3d(IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, IntTuple dilation = default, bool ceilMode = false)
    : MaxPoolNd(3, kernelSize, stride, padding, dilation, ceilMode);

/// <summary>Average pooling of 1 to 3 spatial dims, as <c>nn.AvgPool1d/2d/3d</c>.</summary>
public abstract class AvgPoolNd(int nd, IntTuple kernelSize, IntTuple stride, IntTuple padding, bool ceilMode, bool countIncludePad, int? divisorOverride) : Module
{
    /// <summary>Kernel size per spatial dim.</summary>
    public int[] KernelSize { get; } = kernelSize.Expand("AvgPool", "kernel_size", nd, 1);
    /// <summary>Stride per spatial dim (the kernel size by default).</summary>
    public int[] Stride { get; } = stride.IsDefault ? kernelSize.Expand("AvgPool", "kernel_size", nd, 1) : stride.Expand("AvgPool", "stride", nd, 1);

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => nd switch
    {
        1 => AvgPool1d(input, kernelSize, stride, padding, ceilMode, countIncludePad),
        2 => AvgPool2d(input, kernelSize, stride, padding, ceilMode, countIncludePad, divisorOverride),
        _ => AvgPool3d(input, kernelSize, stride, padding, ceilMode, countIncludePad, divisorOverride),
    };
    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"kernel_size={kernelSize}, stride={(stride.IsDefault ? kernelSize : stride)}, padding={(padding.IsDefault ? "0" : padding)}";
}

/// <summary>1-d average pooling layer.</summary>
public sealed class AvgPool1d(IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, bool ceilMode = false, bool countIncludePad = true)
    : AvgPoolNd(1, kernelSize, stride, padding, ceilMode, countIncludePad, null);
/// <summary>2-d average pooling layer.</summary>
public sealed class AvgPool2d(IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, bool ceilMode = false, bool countIncludePad = true, int? divisorOverride = null)
    : AvgPoolNd(2, kernelSize, stride, padding, ceilMode, countIncludePad, divisorOverride);
/// <summary>3-d average pooling layer.</summary>
public sealed class AvgPool3d(IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, bool ceilMode = false, bool countIncludePad = true, int? divisorOverride = null)
    : AvgPoolNd(3, kernelSize, stride, padding, ceilMode, countIncludePad, divisorOverride);

/// <summary>Average pooling to a fixed output size (1 gives global average pooling), as <c>nn.AdaptiveAvgPool2d</c>.</summary>
public sealed class AdaptiveAvgPool2d(IntTuple outputSize) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Functional.AdaptiveAvgPool2d(input, outputSize);
    /// <inheritdoc/>
    protected override string ExtraRepr() => $"output_size={outputSize}";
}

/// <summary>Max pooling to a fixed output size, as <c>nn.AdaptiveMaxPool2d</c>.</summary>
public sealed class AdaptiveMaxPool2d(IntTuple outputSize) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Functional.AdaptiveMaxPool2d(input, outputSize);
    /// <inheritdoc/>
    protected override string ExtraRepr() => $"output_size={outputSize}";
}
