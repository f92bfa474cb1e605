using static Autograd.Functional;

namespace Autograd.Layers;

/// <summary>The shared implementation of (transposed) convolution layers of 1 to 3 spatial dims, initialized as PyTorch:
/// Kaiming-uniform (a = √5) weights and U(±1/√fan_in) bias.</summary>
public abstract class ConvNd : Module
{
    private readonly int nd;
    private readonly bool transposed;

    /// <summary>Kernel size per spatial dim.</summary>
    public int[] KernelSize { get; }
    /// <summary>Stride per spatial dim.</summary>
    public int[] Stride { get; }
    /// <summary>Padding as given (ints, pairs, "same" or "valid").</summary>
    public Padding Padding { get; }
    /// <summary>Dilation per spatial dim.</summary>
    public int[] Dilation { get; }
    /// <summary>Extra size added to one side of a transposed conv's output.</summary>
    public int[] OutputPadding { get; }
    /// <summary>Number of channel groups.</summary>
    public int Groups { get; }
    /// <summary>Input channels.</summary>
    public int InChannels { get; }
    /// <summary>Output channels.</summary>
    public int OutChannels { get; }

    private protected ConvNd(int nd, bool transposed, int inChannels, int outChannels, IntTuple kernelSize, IntTuple stride, Padding padding,
        IntTuple outputPadding, IntTuple dilation, int groups, bool bias)
    {
        string name = GetType().Name;
        if (groups < 1 || inChannels % groups != 0 || outChannels % groups != 0)
            throw new ArgumentException($"{name}: in_channels ({inChannels}) and out_channels ({outChannels}) must be divisible by groups ({groups})");
        (this.nd, this.transposed, InChannels, OutChannels, Groups, Padding) = (nd, transposed, inChannels, outChannels, groups, padding);
        KernelSize = kernelSize.Expand(name, "kernel_size", nd, 1);
        Stride = stride.Expand(name, "stride", nd, 1);
        Dilation = dilation.Expand(name, "dilation", nd, 1);
        OutputPadding = outputPadding.Expand(name, "output_padding", nd, 0);
        int[] wShape = transposed ? [inChannels, outChannels / groups, .. KernelSize] : [outChannels, inChannels / groups, .. KernelSize];
        var w = RegisterParameter("weight", Tensor.Zeros(wShape))!;
        Init.KaimingUniform(w, a: Math.Sqrt(5));
        var b = RegisterParameter("bias", bias ? Tensor.Zeros(outChannels) : null);
        if (b != null) Init.Uniform(b, -1 / Math.Sqrt(Init.Fans(w).FanIn), 1 / Math.Sqrt(Init.Fans(w).FanIn));
    }

    /// <summary>[out, in/groups, *k] (transposed: [in, out/groups, *k]).</summary>
    public Tensor Weight => Param("weight")!;
    /// <summary>[out], or null.</summary>
    public Tensor? Bias => Param("bias");

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        if (transposed)
        {
            IntTuple pad = Padding.ToArray() is { Length: > 0 } p ? p : 0;
            return nd switch
            {
                1 => ConvTranspose1d(input, Weight, Bias, Stride, pad, OutputPadding, Groups, Dilation),
                2 => ConvTranspose2d(input, Weight, Bias, Stride, pad, OutputPadding, Groups, Dilation),
                _ => ConvTranspose3d(input, Weight, Bias, Stride, pad, OutputPadding, Groups, Dilation),
            };
        }
        return nd switch
        {
            1 => Conv1d(input, Weight, Bias, Stride, Padding, Dilation, Groups),
            2 => Conv2d(input, Weight, Bias, Stride, Padding, Dilation, Groups),
            _ => Conv3d(input, Weight, Bias, Stride, Padding, Dilation, Groups),
        };
    }

    /// <inheritdoc/>
    protected override string ExtraRepr()
    {
        var s = $"{InChannels}, {OutChannels}, kernel_size={Py(KernelSize)}, stride={Py(Stride)}";
        var pad = Padding.ToString();
        if (pad != "0" && (pad.StartsWith('"') || Padding.Any(v => v != 0))) s += $", padding={(pad.StartsWith('"') ? pad.Replace('"', '\'') : Py(Padding.ToArray().Length == 1 ? Enumerable.Repeat(Padding.First(), nd).ToArray() : Padding.ToArray()))}";
        if (Dilation.Any(d => d != 1)) s += $", dilation={Py(Dilation)}";
        if (OutputPadding.Any(p => p != 0)) s += $", output_padding={Py(OutputPadding)}";
        if (Groups != 1) s += $", groups={Groups}";
        return Bias == null ? s + ", bias=False" : s;
    }
}

/// <summary>1-d convolution layer, as <c>nn.Conv1d</c>.</summary>
public sealed class Conv1d(int inChannels, int outChannels, IntTuple kernelSize, IntTuple stride = default, Padding padding = default, IntTuple dilation = default, int groups = 1, bool bias = true)
    : ConvNd(1, false, inChannels, outChannels, kernelSize, stride, padding, default, dilation, groups, bias);

/// <summary>2-d convolution layer, as <c>nn.Conv2d</c>.</summary>
public sealed class Conv2d(int inChannels, int outChannels, IntTuple kernelSize, IntTuple stride = default, Padding padding = default, IntTuple dilation = default, int groups = 1, bool bias = true)
    : ConvNd(2, false, inChannels, outChannels, kernelSize, stride, padding, default, dilation, groups, bias);

/// <summary>3-d convolution layer, as <c>nn.Conv3d</c>.</summary>
public sealed class Conv3d(int inChannels, int outChannels, IntTuple kernelSize, IntTuple stride = default, Padding padding = default, IntTuple dilation = default, int groups = 1, bool bias = true)
    : ConvNd(3, false, inChannels, outChannels, kernelSize, stride, padding, default, dilation, groups, bias);

/// <summary>1-d transposed convolution layer, as <c>nn.ConvTranspose1d</c>.</summary>
public sealed class ConvTranspose1d(int inChannels, int outChannels, IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, IntTuple outputPadding = default, int groups = 1, bool bias = true, IntTuple dilation = default)
    : ConvNd(1, true, inChannels, outChannels, kernelSize, stride, padding.ToArray(), outputPadding, dilation, groups, bias);

/// <summary>2-d transposed convolution layer, as <c>nn.ConvTranspose2d</c>.</summary>
public sealed class ConvTranspose2d(int inChannels, int outChannels, IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, IntTuple outputPadding = default, int groups = 1, bool bias = true, IntTuple dilation = default)
    : ConvNd(2, true, inChannels, outChannels, kernelSize, stride, padding.ToArray(), outputPadding, dilation, groups, bias);

/// <summary>3-d transposed convolution layer, as <c>nn.ConvTranspose3d</c>.</summary>
public sealed class ConvTranspose3d(int inChannels, int outChannels, IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, IntTuple outputPadding = default, int groups = 1, bool bias = true, IntTuple dilation = default)
    : ConvNd(3, true, inChannels, outChannels, kernelSize, stride, padding.ToArray(), outputPadding, dilation, groups, bias);
