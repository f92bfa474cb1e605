using Autograd.Layers;
using static Autograd.Functional;

namespace Autograd.Zoo;

/// <summary>Convolution without bias, batch norm (eps 0.001) and ReLU (in place, as torchvision's): torchvision's
/// <c>BasicConv2d</c> of GoogLeNet and Inception v3 (children <c>conv</c> and <c>bn</c>).</summary>
public sealed class BasicConv2d : Module
{
    private readonly Conv2d conv;
    private readonly BatchNorm2d bn;

    /// <summary>A <paramref name="kernelSize"/> convolution from <paramref name="inChannels"/> to <paramref name="outChannels"/>
    /// (kernel, stride and padding may be per dim, e.g. <c>[1, 7]</c> and <c>[0, 3]</c>).</summary>
    public BasicConv2d(int inChannels, int outChannels, IntTuple kernelSize, IntTuple stride = default, Padding padding = default)
    {
        conv = Register("conv", new Conv2d(inChannels, outChannels, kernelSize, stride, padding, bias: false));
        bn = Register("bn", new BatchNorm2d(outChannels, eps: 0.001));
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Relu(bn.Call(conv.Call(input)), inplace: true);
}
