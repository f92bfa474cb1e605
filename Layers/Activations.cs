using static Autograd.Functional;

namespace Autograd.Layers;

/// <summary>An activation function as a module (no parameters): <c>new ReLU()</c>, <c>new GELU("tanh")</c>, ...</summary>
public abstract class Activation(string name, Func<Tensor, Tensor> f, string extra = "") : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => f(input);
    /// <inheritdoc/>
    protected override string DisplayName => name;
    /// <inheritdoc/>
    protected override string ExtraRepr() => extra;
}

/// <summary>nn.Sigmoid</summary>
public sealed class Sigmoid() : Activation("Sigmoid", Functional.Sigmoid);
/// <summary>nn.Tanh</summary>
public sealed class Tanh() : Activation("Tanh", Functional.Tanh);
/// <summary>nn.ReLU</summary>
/// <remarks>With <c>inplace: true</c> (as torchvision's models build it) the input is overwritten where that is allowed,
/// saving the output's allocation: see <see cref="Functional.Relu(Tensor, bool)"/>.</remarks>
public sealed class ReLU(bool inplace = false) : Activation("ReLU", x => Relu(x, inplace), inplace ? "inplace=True" : "");
/// <summary>nn.LeakyReLU</summary>
public sealed class LeakyReLU(double negativeSlope = 0.01) : Activation("LeakyReLU", x => LeakyRelu(x, negativeSlope), $"negative_slope={negativeSlope}");
/// <summary>nn.ELU</summary>
public sealed class ELU(double alpha = 1.0) : Activation("ELU", x => Elu(x, alpha), $"alpha={alpha}");
/// <summary>nn.SELU</summary>
public sealed class SELU() : Activation("SELU", Selu);
/// <summary>nn.GELU (approximate "none" or "tanh")</summary>
public sealed class GELU(string approximate = "none") : Activation("GELU", x => Gelu(x, approximate), $"approximate='{approximate}'");
/// <summary>nn.SiLU (swish)</summary>
public sealed class SiLU() : Activation("SiLU", Silu);
/// <summary>nn.Softplus</summary>
public sealed class Softplus(double beta = 1, double threshold = 20) : Activation("Softplus", x => Functional.Softplus(x, beta, threshold), $"beta={beta}, threshold={threshold}");
/// <summary>nn.Hardsigmoid</summary>
public sealed class Hardsigmoid() : Activation("Hardsigmoid", HardSigmoid);
/// <summary>nn.Hardswish</summary>
public sealed class Hardswish() : Activation("Hardswish", HardSwish);
/// <summary>nn.Mish</summary>
public sealed class Mish() : Activation("Mish", Functional.Mish);
/// <summary>nn.Softmax over <c>dim</c></summary>
public sealed class Softmax(int dim = -1) : Activation("Softmax", x => Functional.Softmax(x, dim), $"dim={dim}");
/// <summary>nn.LogSoftmax over <c>dim</c></summary>
public sealed class LogSoftmax(int dim = -1) : Activation("LogSoftmax", x => Functional.LogSoftmax(x, dim), $"dim={dim}");
