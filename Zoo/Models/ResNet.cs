using Autograd.Layers;

namespace Autograd.Zoo;

/// <summary>The residual block of ResNet-18/34, as torchvision's <c>BasicBlock</c>: two 3x3 convolutions (<c>conv1</c>, <c>bn1</c>,
/// <c>relu</c>, <c>conv2</c>, <c>bn2</c>) plus the identity or <c>downsample</c>, then ReLU. Output channels = planes.</summary>
public sealed class BasicBlock : Module
{
    /// <summary>Output channels per <c>planes</c>.</summary>
    public const int Expansion = 1;

    private readonly Conv2d conv1, conv2;
    private readonly BatchNorm2d bn1, bn2;
    private readonly ReLU relu;
    private readonly Module? downsample;

    /// <summary>A block from <paramref name="inplanes"/> to <paramref name="planes"/> channels; the first convolution has the stride;
    /// <paramref name="downsample"/> (registered as <c>downsample</c>) maps the input to the output's shape when they differ.</summary>
    public BasicBlock(int inplanes, int planes, int stride = 1, Module? downsample = null, int groups = 1, int baseWidth = 64, int dilation = 1)
    {
        if (groups != 1 || baseWidth != 64) throw new ArgumentException("BasicBlock only supports groups=1 and baseWidth=64");
        if (dilation > 1) throw new NotSupportedException("Dilation > 1 not supported in BasicBlock");
        conv1 = Register("conv1", ResNet.Conv3x3(inplanes, planes, stride));
        bn1 = Register("bn1", new BatchNorm2d(planes));
        relu = Register("relu", new ReLU(inplace: true));
        conv2 = Register("conv2", ResNet.Conv3x3(planes, planes));
        bn2 = Register("bn2", new BatchNorm2d(planes));
        this.downsample = downsample == null ? null : Register("downsample", downsample);
    }

    /// <summary>The batch norm whose weight <c>zeroInitResidual</c> zeroes.</summary>
    public BatchNorm2d LastBatchNorm => bn2;

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        var output = relu.Call(bn1.Call(conv1.Call(input)));
        output = bn2.Call(conv2.Call(output));
        return relu.Call(output + (downsample?.Call(input) ?? input));
    }
}

/// <summary>The residual block of ResNet-50/101/152, as torchvision's <c>Bottleneck</c> (ResNet v1.5: the stride is on the 3x3
/// convolution): 1x1 (<c>conv1</c>, <c>bn1</c>), 3x3 (<c>conv2</c>, <c>bn2</c>), 1x1 (<c>conv3</c>, <c>bn3</c>) plus the identity
/// or <c>downsample</c>, then ReLU. Output channels = 4 planes.</summary>
public sealed class Bottleneck : Module
{
    /// <summary>Output channels per <c>planes</c>.</summary>
    public const int Expansion = 4;

    private readonly Conv2d conv1, conv2, conv3;
    private readonly BatchNorm2d bn1, bn2, bn3;
    private readonly ReLU relu;
    private readonly Module? downsample;

    /// <summary>A block from <paramref name="inplanes"/> to 4 <paramref name="planes"/> channels with inner width
    /// planes · baseWidth / 64 · groups; the 3x3 convolution has the stride, groups and dilation.</summary>
    public Bottleneck(int inplanes, int planes, int stride = 1, Module? downsample = null, int groups = 1, int baseWidth = 64, int dilation = 1)
    {
        int width = (int)(planes * (baseWidth / 64.0)) * groups;
        conv1 = Register("conv1", ResNet.Conv1x1(inplanes, width));
        bn1 = Register("bn1", new BatchNorm2d(width));
        conv2 = Register("conv2", ResNet.Conv3x3(width, width, stride, groups, dilation));
        bn2 = Register("bn2", new BatchNorm2d(width));
        conv3 = Register("conv3", ResNet.Conv1x1(width, planes * Expansion));
        bn3 = Register("bn3", new BatchNorm2d(planes * Expansion));
        relu = Register("relu", new ReLU(inplace: true));
        this.downsample = downsample == null ? null : Register("downsample", downsample);
    }

    /// <summary>The batch norm whose weight <c>zeroInitResidual</c> zeroes.</summary>
    public BatchNorm2d LastBatchNorm => bn3;

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        var output = relu.Call(bn1.Call(conv1.Call(input)));
        output = relu.Call(bn2.Call(conv2.Call(output)));
        output = bn3.Call(conv3.Call(output));
        return relu.Call(output + (downsample?.Call(input) ?? input));
    }
}

/// <summary>The kind of residual block of a <see cref="ResNet"/>.</summary>
public enum ResNetBlock
{
    /// <summary><see cref="Autograd.Zoo.BasicBlock"/> (two 3x3 convolutions; ResNet-18/34).</summary>
    BasicBlock,
    /// <summary><see cref="Autograd.Zoo.Bottleneck"/> (1x1, 3x3, 1x1; ResNet-50/101/152).</summary>
    Bottleneck,
}

/// <summary>ResNet as <c>torchvision.models.ResNet</c>: <c>conv1</c> (7x7, stride 2), <c>bn1</c>, <c>relu</c>, <c>maxpool</c> (3x3,
/// stride 2), <c>layer1</c>..<c>layer4</c> (Sequentials of blocks numbered from 0; the first block of a stage gets
/// <c>downsample</c> = Sequential(<c>0</c> 1x1 conv, <c>1</c> batch norm) when the shape changes), <c>avgpool</c> (global) and
/// <c>fc</c>. Initialized as torchvision: convolutions Kaiming-normal (fan_out, relu), batch norm weight 1 and bias 0, <c>fc</c>
/// PyTorch's default; with <c>zeroInitResidual</c> the last batch norm of every block starts at weight 0.</summary>
/// <remarks>With <c>cifar: true</c> the stem is a 3x3 convolution with stride 1 and padding 1 (<c>conv1.weight</c> is
/// [64, 3, 3, 3]) and <c>maxpool</c> is an <see cref="Identity"/>, the usual setup for 32x32 images; all other keys are unchanged.
/// <c>groups</c> and <c>widthPerGroup</c> give ResNeXt and wide ResNets (Bottleneck only), <c>replaceStrideWithDilation</c> dilates
/// layer2..4 instead of striding them, as torchvision.</remarks>
public sealed class ResNet : Module
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly ReLU relu;
    private readonly Module maxpool;
    private readonly Sequential layer1, layer2, layer3, layer4;
    private readonly AdaptiveAvgPool2d avgpool;
    private readonly Linear fc;
    private readonly ResNetBlock block;
    private readonly int groups, baseWidth;
    private int inplanes = 64, dilation = 1;

    /// <summary>A ResNet of <paramref name="block"/>s with <paramref name="layers"/>[i] blocks in stage i (four stages).</summary>
    public ResNet(ResNetBlock block, int[] layers, int numClasses = 1000, bool zeroInitResidual = false, int groups = 1, int widthPerGroup = 64,
        bool[]? replaceStrideWithDilation = null, bool cifar = false)
    {
        if (layers.Length != 4) throw new ArgumentException($"ResNet: layers must have 4 entries, got {layers.Length}");
        if (numClasses < 1) throw new ArgumentException($"ResNet: numClasses must be positive, got {numClasses}");
        replaceStrideWithDilation ??= [false, false, false];
        if (replaceStrideWithDilation.Length != 3)
            throw new ArgumentException($"ResNet: replaceStrideWithDilation should be null or have 3 entries, got {replaceStrideWithDilation.Length}");
        (this.block, this.groups, baseWidth) = (block, groups, widthPerGroup);
        int expansion = block == ResNetBlock.BasicBlock ? BasicBlock.Expansion : Bottleneck.Expansion;

        conv1 = Register("conv1", cifar ? new Conv2d(3, 64, 3, stride: 1, padding: 1, bias: false) : new Conv2d(3, 64, 7, stride: 2, padding: 3, bias: false));
        bn1 = Register("bn1", new BatchNorm2d(64));
        relu = Register("relu", new ReLU(inplace: true));
        maxpool = Register<Module>("maxpool", cifar ? new Identity() : new MaxPool2d(3, stride: 2, padding: 1));
        layer1 = Register("layer1", MakeLayer(64, layers[0]));
        layer2 = Register("layer2", MakeLayer(128, layers[1], 2, replaceStrideWithDilation[0]));
        layer3 = Register("layer3", MakeLayer(256, layers[2], 2, replaceStrideWithDilation[1]));
        layer4 = Register("layer4", MakeLayer(512, layers[3], 2, replaceStrideWithDilation[2]));
        avgpool = Register("avgpool", new AdaptiveAvgPool2d(1));
        fc = Register("fc", new Linear(512 * expansion, numClasses));

        foreach (var m in Modules())
            switch (m)
            {
                case Conv2d conv: Init.KaimingNormal(conv.Weight, mode: "fan_out", nonlinearity: "relu"); break;
                case BatchNorm2d bn: Init.Ones(bn.Weight!); Init.Zeros(bn.Bias!); break;
            }
        if (zeroInitResidual)
            foreach (var m in Modules())
                switch (m)
                {
                    case Bottleneck b: Init.Zeros(b.LastBatchNorm.Weight!); break;
                    case BasicBlock b: Init.Zeros(b.LastBatchNorm.Weight!); break;
                }
    }

    /// <summary>3x3 convolution with padding = dilation and no bias, as torchvision's <c>conv3x3</c>.</summary>
    internal static Conv2d Conv3x3(int inPlanes, int outPlanes, int stride = 1, int groups = 1, int dilation = 1) =>
        new(inPlanes, outPlanes, 3, stride: stride, padding: dilation, dilation: dilation, groups: groups, bias: false);

    /// <summary>1x1 convolution without bias, as torchvision's <c>conv1x1</c>.</summary>
    internal static Conv2d Conv1x1(int inPlanes, int outPlanes, int stride = 1) => new(inPlanes, outPlanes, 1, stride: stride, bias: false);

    private Sequential MakeLayer(int planes, int blocks, int stride = 1, bool dilate = false)
    {
        int expansion = block == ResNetBlock.BasicBlock ? BasicBlock.Expansion : Bottleneck.Expansion;
        int previousDilation = dilation;
        if (dilate) { dilation *= stride; stride = 1; }
        Module? downsample = null;
        if (stride != 1 || inplanes != planes * expansion)
            downsample = new Sequential(Conv1x1(inplanes, planes * expansion, stride), new BatchNorm2d(planes * expansion));
        var list = new List<Module> { NewBlock(inplanes, planes, stride, downsample, previousDilation) };
        inplanes = planes * expansion;
        for (int i = 1; i < blocks; i++) list.Add(NewBlock(inplanes, planes, 1, null, dilation));
        return new Sequential([.. list]);
    }

    private Module NewBlock(int inPlanes, int planes, int stride, Module? downsample, int blockDilation) => block == ResNetBlock.BasicBlock
        ? new BasicBlock(inPlanes, planes, stride, downsample, groups, baseWidth, blockDilation)
        : new Bottleneck(inPlanes, planes, stride, downsample, groups, baseWidth, blockDilation);

    /// <summary>ResNet-18: BasicBlock, [2, 2, 2, 2].</summary>
    public static ResNet ResNet18(int numClasses = 1000, bool zeroInitResidual = false, bool cifar = false) =>
        new(ResNetBlock.BasicBlock, [2, 2, 2, 2], numClasses, zeroInitResidual, cifar: cifar);
    /// <summary>ResNet-34: BasicBlock, [3, 4, 6, 3].</summary>
    public static ResNet ResNet34(int numClasses = 1000, bool zeroInitResidual = false, bool cifar = false) =>
        new(ResNetBlock.BasicBlock, [3, 4, 6, 3], numClasses, zeroInitResidual, cifar: cifar);
    /// <summary>ResNet-50: Bottleneck, [3, 4, 6, 3].</summary>
    public static ResNet ResNet50(int numClasses = 1000, bool zeroInitResidual = false, bool cifar = false) =>
        new(ResNetBlock.Bottleneck, [3, 4, 6, 3], numClasses, zeroInitResidual, cifar: cifar);
    /// <summary>ResNet-101: Bottleneck, [3, 4, 23, 3].</summary>
    public static ResNet ResNet101(int numClasses = 1000, bool zeroInitResidual = false, bool cifar = false) =>
        new(ResNetBlock.Bottleneck, [3, 4, 23, 3], numClasses, zeroInitResidual, cifar: cifar);
    /// <summary>ResNet-152: Bottleneck, [3, 8, 36, 3].</summary>
    public static ResNet ResNet152(int numClasses = 1000, bool zeroInitResidual = false, bool cifar = false) =>
        new(ResNetBlock.Bottleneck, [3, 8, 36, 3], numClasses, zeroInitResidual, cifar: cifar);

    /// <summary>[N, 3, H, W] images to [N, numClasses] logits.</summary>
    public override Tensor Forward(Tensor input)
    {
        var x = maxpool.Call(relu.Call(bn1.Call(conv1.Call(input))));
        x = layer4.Call(layer3.Call(layer2.Call(layer1.Call(x))));
        return fc.Call(avgpool.Call(x).Flatten(1));
    }
}
