using Autograd.Layers;

namespace Autograd.Zoo;

/// <summary>ReLU6, <c>min(max(x, 0), 6)</c>, as <c>nn.ReLU6</c> (prints as <c>ReLU6()</c>).</summary>
public sealed class ReLU6() : Activation("ReLU6", x => Functional.Clamp(x, 0, 6));

/// <summary>Convolution, batch norm and activation numbered <c>0</c>, <c>1</c>, <c>2</c>, as torchvision's
/// <c>Conv2dNormActivation</c> (formerly <c>ConvBNActivation</c>, the name it prints under is torchvision 0.14's): a bias-free
/// convolution with padding (kernel − 1) / 2 · dilation, <see cref="BatchNorm2d"/> and (by default) <see cref="ReLU6"/>.</summary>
public sealed class ConvBNActivation : Module
{
    /// <summary>A kernel x kernel convolution from <paramref name="inPlanes"/> to <paramref name="outPlanes"/> channels followed by
    /// batch norm and <paramref name="activation"/> (ReLU6 when null).</summary>
    public ConvBNActivation(int inPlanes, int outPlanes, int kernelSize = 3, int stride = 1, int groups = 1, int dilation = 1, Module? activation = null)
    {
        int padding = (kernelSize - 1) / 2 * dilation;
        // Zero padding is left at the default so the convolution prints without "padding=(0, 0)", as PyTorch.
        Register("0", new Conv2d(inPlanes, outPlanes, kernelSize, stride: stride, padding: padding == 0 ? default(Padding) : padding, dilation: dilation, groups: groups, bias: false));
        Register("1", new BatchNorm2d(outPlanes));
        Register("2", activation ?? new ReLU6());
        OutChannels = outPlanes;
    }

    /// <summary>Output channels.</summary>
    public int OutChannels { get; }

    /// <inheritdoc/>
    protected override string DisplayName => "Conv2dNormActivation";

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        foreach (var m in Children()) input = m.Call(input);
        return input;
    }
}

/// <summary>MobileNetV2's inverted residual block, as torchvision's <c>InvertedResidual</c>: <c>conv</c> = Sequential(
/// [<see cref="ConvBNActivation"/> 1x1 expansion to inp · expandRatio channels, when the ratio is not 1], depthwise 3x3
/// <see cref="ConvBNActivation"/> with the stride, 1x1 linear projection convolution, batch norm), plus the input when the stride is
/// 1 and the channel counts match.</summary>
public sealed class InvertedResidual : Module
{
    private readonly Sequential conv;

    /// <summary>A block from <paramref name="inp"/> to <paramref name="oup"/> channels (stride 1 or 2).</summary>
    public InvertedResidual(int inp, int oup, int stride, int expandRatio)
    {
        if (stride != 1 && stride != 2) throw new ArgumentException($"InvertedResidual: stride should be 1 or 2, got {stride}");
        int hidden = (int)Math.Round(inp * (double)expandRatio, MidpointRounding.ToEven);
        UseResConnect = stride == 1 && inp == oup;
        var layers = new List<Module>();
        if (expandRatio != 1) layers.Add(new ConvBNActivation(inp, hidden, kernelSize: 1));
        layers.Add(new ConvBNActivation(hidden, hidden, stride: stride, groups: hidden));
        layers.Add(new Conv2d(hidden, oup, 1, stride: 1, bias: false));
        layers.Add(new BatchNorm2d(oup));
        conv = Register("conv", new Sequential([.. layers]));
        OutChannels = oup;
    }

    /// <summary>Whether the input is added to the output (stride 1 and equal channel counts).</summary>
    public bool UseResConnect { get; }

    /// <summary>Output channels.</summary>
    public int OutChannels { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => UseResConnect ? input + conv.Call(input) : conv.Call(input);
}

/// <summary>MobileNetV2 as <c>torchvision.models.MobileNetV2</c>: <c>features</c> = Sequential(<c>0</c> 3x3 stride-2
/// <see cref="ConvBNActivation"/> stem, <c>1</c>..<c>17</c> <see cref="InvertedResidual"/> blocks, <c>18</c> 1x1
/// <see cref="ConvBNActivation"/> to 1280 channels), global average pooling, <c>classifier</c> = Sequential(<c>0</c> Dropout,
/// <c>1</c> Linear). 3,504,872 parameters with 1000 classes. Initialized as torchvision: convolutions Kaiming-normal (fan_out) with
/// zero bias, batch norm weight 1 and bias 0, linear N(0, 0.01) with zero bias.</summary>
public sealed class MobileNetV2 : Module
{
    private static readonly int[][] DefaultSetting =
    [
        // t (expansion), c (channels), n (blocks), s (stride of the first block)
        [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1],
    ];

    private readonly Sequential features, classifier;

    /// <summary>MobileNetV2 with <paramref name="numClasses"/> outputs; <paramref name="widthMult"/> scales every channel count
    /// (rounded to multiples of <paramref name="roundNearest"/>); <paramref name="invertedResidualSetting"/> overrides the rows
    /// [t, c, n, s] of the paper's table 2; <paramref name="dropout"/> is applied before the classifier.</summary>
    public MobileNetV2(int numClasses = 1000, double widthMult = 1.0, int[][]? invertedResidualSetting = null, int roundNearest = 8, double dropout = 0.2)
    {
        if (numClasses < 1) throw new ArgumentException($"MobileNetV2: numClasses must be positive, got {numClasses}");
        var setting = invertedResidualSetting ?? DefaultSetting;
        if (setting.Length == 0 || setting.Any(row => row.Length != 4))
            throw new ArgumentException("MobileNetV2: invertedResidualSetting should be non-empty and contain rows of 4 elements [t, c, n, s]");
        int inputChannel = MakeDivisible(32 * widthMult, roundNearest);
        LastChannel = MakeDivisible(1280 * Math.Max(1.0, widthMult), roundNearest);

        var layers = new List<Module> { new ConvBNActivation(3, inputChannel, stride: 2) };
        foreach (var row in setting)
        {
            int t = row[0], n = row[2], s = row[3];
            int outputChannel = MakeDivisible(row[1] * widthMult, roundNearest);
            for (int i = 0; i < n; i++)
            {
                layers.Add(new InvertedResidual(inputChannel, outputChannel, i == 0 ? s : 1, t));
                inputChannel = outputChannel;
            }
        }
        layers.Add(new ConvBNActivation(inputChannel, LastChannel, kernelSize: 1));
        features = Register("features", new Sequential([.. layers]));
        classifier = Register("classifier", new Sequential(new Dropout(dropout), new Linear(LastChannel, numClasses)));

        // torchvision uses kaiming_normal_(mode="fan_out") here; its default leaky_relu gain with a = 0 is the ReLU gain.
        TorchvisionInit.KaimingConvsNormalLinears(this);
    }

    /// <summary>Channels of the last feature map (1280 at width 1).</summary>
    public int LastChannel { get; }

    /// <summary>torchvision's <c>_make_divisible</c>: <paramref name="v"/> rounded to the nearest multiple of
    /// <paramref name="divisor"/> (at least the divisor), going up one multiple if rounding lost more than 10%.</summary>
    public static int MakeDivisible(double v, int divisor, int? minValue = null)
    {
        int min = minValue ?? divisor;
        int newV = Math.Max(min, (int)(v + divisor / 2.0) / divisor * divisor);
        if (newV < 0.9 * v) newV += divisor;
        return newV;
    }

    /// <summary>[N, 3, H, W] images to [N, numClasses] logits.</summary>
    public override Tensor Forward(Tensor input)
    {
        var x = Functional.AdaptiveAvgPool2d(features.Call(input), 1);
        return classifier.Call(x.Flatten(1));
    }
}
