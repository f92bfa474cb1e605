using Autograd.Layers;

namespace Autograd.Zoo;

/// <summary>SqueezeNet's Fire module, as torchvision's <c>Fire</c>: a 1x1 <c>squeeze</c> convolution and ReLU, then a 1x1
/// <c>expand1x1</c> and a 3x3 <c>expand3x3</c> convolution (each followed by ReLU) whose outputs are concatenated along channels.</summary>
public sealed class Fire : Module
{
    private readonly Conv2d squeeze, expand1x1, expand3x3;
    private readonly ReLU squeezeActivation, expand1x1Activation, expand3x3Activation;

    /// <summary>A Fire module from <paramref name="inplanes"/> channels to expand1x1Planes + expand3x3Planes channels.</summary>
    public Fire(int inplanes, int squeezePlanes, int expand1x1Planes, int expand3x3Planes)
    {
        squeeze = Register("squeeze", new Conv2d(inplanes, squeezePlanes, 1));
        squeezeActivation = Register("squeeze_activation", new ReLU(inplace: true));
        expand1x1 = Register("expand1x1", new Conv2d(squeezePlanes, expand1x1Planes, 1));
        expand1x1Activation = Register("expand1x1_activation", new ReLU(inplace: true));
        expand3x3 = Register("expand3x3", new Conv2d(squeezePlanes, expand3x3Planes, 3, padding: 1));
        expand3x3Activation = Register("expand3x3_activation", new ReLU(inplace: true));
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        var x = squeezeActivation.Call(squeeze.Call(input));
        return Functional.Cat([expand1x1Activation.Call(expand1x1.Call(x)), expand3x3Activation.Call(expand3x3.Call(x))], 1);
    }
}

/// <summary>SqueezeNet 1.0 and 1.1 as <c>torchvision.models.SqueezeNet</c>: <c>features</c> (stem convolution, ReLU, ceil-mode max
/// pools and <see cref="Fire"/> modules, numbered as torchvision) and <c>classifier</c> = Sequential(<c>0</c> Dropout, <c>1</c> final
/// 1x1 convolution to numClasses, <c>2</c> ReLU, <c>3</c> global AdaptiveAvgPool2d). Initialized as torchvision: the final convolution
/// N(0, 0.01), every other convolution Kaiming-uniform (a = 0, fan_in), all biases 0. Inputs of 32x32 pixels and more work.</summary>
public sealed class SqueezeNet : Module
{
    private readonly Sequential features, classifier;

    /// <summary>SqueezeNet of <paramref name="version"/> "1_0" (or "1.0") or "1_1" (or "1.1"), with <paramref name="dropout"/> before
    /// the final convolution.</summary>
    public SqueezeNet(string version = "1_0", int numClasses = 1000, double dropout = 0.5)
    {
        if (numClasses < 1) throw new ArgumentException($"SqueezeNet: numClasses must be positive, got {numClasses}");
        features = Register("features", version switch
        {
            "1_0" or "1.0" => new Sequential(
                new Conv2d(3, 96, 7, stride: 2), new ReLU(inplace: true), new MaxPool2d(3, stride: 2, ceilMode: true),
                new Fire(96, 16, 64, 64), new Fire(128, 16, 64, 64), new Fire(128, 32, 128, 128),
                new MaxPool2d(3, stride: 2, ceilMode: true),
                new Fire(256, 32, 128, 128), new Fire(256, 48, 192, 192), new Fire(384, 48, 192, 192), new Fire(384, 64, 256, 256),
                new MaxPool2d(3, stride: 2, ceilMode: true),
                new Fire(512, 64, 256, 256)),
            "1_1" or "1.1" => new Sequential(
                new Conv2d(3, 64, 3, stride: 2), new ReLU(inplace: true), new MaxPool2d(3, stride: 2, ceilMode: true),
                new Fire(64, 16, 64, 64), new Fire(128, 16, 64, 64),
                new MaxPool2d(3, stride: 2, ceilMode: true),
                new Fire(128, 32, 128, 128), new Fire(256, 32, 128, 128),
                new MaxPool2d(3, stride: 2, ceilMode: true),
                new Fire(256, 48, 192, 192), new Fire(384, 48, 192, 192), new Fire(384, 64, 256, 256), new Fire(512, 64, 256, 256)),
            _ => throw new ArgumentException($"SqueezeNet: unsupported version \"{version}\": 1_0 or 1_1 expected"),
        });
        var finalConv = new Conv2d(512, numClasses, 1);
        classifier = Register("classifier", new Sequential(new Dropout(dropout), finalConv, new ReLU(inplace: true), new AdaptiveAvgPool2d(1)));

        foreach (var m in Modules())
            if (m is Conv2d conv)
            {
                if (ReferenceEquals(conv, finalConv)) Init.Normal(conv.Weight, 0, 0.01);
                else Init.KaimingUniform(conv.Weight);
                if (conv.Bias != null) Init.Zeros(conv.Bias);
            }
    }

    /// <summary>SqueezeNet 1.0 (1,248,424 parameters with 1000 classes).</summary>
    public static SqueezeNet SqueezeNet1_0(int numClasses = 1000, double dropout = 0.5) => new("1_0", numClasses, dropout);
    /// <summary>SqueezeNet 1.1 (1,235,496 parameters with 1000 classes; 2.4x less computation than 1.0).</summary>
    public static SqueezeNet SqueezeNet1_1(int numClasses = 1000, double dropout = 0.5) => new("1_1", numClasses, dropout);

    /// <summary>[N, 3, H, W] images to [N, numClasses] scores (non-negative: the final convolution is followed by ReLU, as torchvision).</summary>
    public override Tensor Forward(Tensor input) => classifier.Call(features.Call(input)).Flatten(1);
}
