using Autograd.Layers;

namespace Autograd.Zoo;

/// <summary>VGG as <c>torchvision.models.VGG</c>: <c>features</c> (3x3 convolutions with padding 1, optional batch norm, ReLU and
/// 2x2 max pools, numbered as torchvision's <c>make_layers</c>), <c>avgpool</c> (adaptive to 7x7) and <c>classifier</c>
/// (Linear 25088 → 4096, ReLU, Dropout, Linear 4096 → 4096, ReLU, Dropout, Linear 4096 → numClasses; keys <c>classifier.0/3/6</c>).
/// Initialized as torchvision: convolutions Kaiming-normal (fan_out, relu) with zero bias, batch norm weight 1 and bias 0, linear
/// layers N(0, 0.01) with zero bias. Inputs of at least 32x32 pixels work.</summary>
/// <remarks>With <c>cifar: true</c> (for 32x32 inputs) the head is a single <c>classifier</c> = Linear(512, numClasses) (keys
/// <c>classifier.weight</c>, <c>classifier.bias</c>) and <c>avgpool</c> is a global AdaptiveAvgPool2d(1), which is a no-op on the
/// 1x1 feature map of a 32x32 input; the features are unchanged.</remarks>
public sealed class VGG : Module
{
    private static readonly Dictionary<int, int[]> Configs = new()
    {
        // 0 marks a max pool ("M" in torchvision's cfgs A, B, D, E).
        [11] = [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
        [13] = [64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
        [16] = [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0],
        [19] = [64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0],
    };

    private readonly Sequential features;
    private readonly Module avgpool, classifier;

    /// <summary>VGG-<paramref name="depth"/> (11, 13, 16 or 19 weight layers), with batch norm after every convolution when
    /// <paramref name="batchNorm"/>; <paramref name="dropout"/> is the probability of the two dropout layers of the classifier
    /// (unused with <paramref name="cifar"/>); <paramref name="initWeights"/> false keeps PyTorch's default layer initialization.</summary>
    public VGG(int depth, bool batchNorm = false, int numClasses = 1000, bool initWeights = true, double dropout = 0.5, bool cifar = false)
    {
        if (!Configs.TryGetValue(depth, out var cfg)) throw new ArgumentException($"VGG: depth must be 11, 13, 16 or 19, got {depth}");
        if (numClasses < 1) throw new ArgumentException($"VGG: numClasses must be positive, got {numClasses}");
        features = Register("features", MakeLayers(cfg, batchNorm));
        if (cifar)
        {
            avgpool = Register("avgpool", new AdaptiveAvgPool2d(1));
            classifier = Register("classifier", new Linear(512, numClasses));
        }
        else
        {
            avgpool = Register("avgpool", new AdaptiveAvgPool2d(7));
            classifier = Register("classifier", new Sequential(
                new Linear(512 * 7 * 7, 4096), new ReLU(inplace: true), new Dropout(dropout),
                new Linear(4096, 4096), new ReLU(inplace: true), new Dropout(dropout),
                new Linear(4096, numClasses)));
        }
        if (initWeights) TorchvisionInit.KaimingConvsNormalLinears(this);
    }

    /// <summary>torchvision's <c>make_layers</c>: a 3x3 conv (padding 1), optional BatchNorm2d and ReLU per channel count, a 2x2 max
    /// pool per 0 entry, numbered consecutively.</summary>
    private static Sequential MakeLayers(int[] cfg, bool batchNorm)
    {
        var layers = new List<Module>();
        int inChannels = 3;
        foreach (int v in cfg)
        {
            if (v == 0) { layers.Add(new MaxPool2d(2, stride: 2)); continue; }
            layers.Add(new Conv2d(inChannels, v, 3, padding: 1));
            if (batchNorm) layers.Add(new BatchNorm2d(v));
            layers.Add(new ReLU(inplace: true));
            inChannels = v;
        }
        return new Sequential([.. layers]);
    }

    /// <summary>VGG-11 (configuration A).</summary>
    public static VGG Vgg11(int numClasses = 1000, bool initWeights = true, double dropout = 0.5, bool cifar = false) => new(11, false, numClasses, initWeights, dropout, cifar);
    /// <summary>VGG-11 with batch norm.</summary>
    public static VGG Vgg11Bn(int numClasses = 1000, bool initWeights = true, double dropout = 0.5, bool cifar = false) => new(11, true, numClasses, initWeights, dropout, cifar);
    /// <summary>VGG-13 (configuration B).</summary>
    public static VGG Vgg13(int numClasses = 1000, bool initWeights = true, double dropout = 0.5, bool cifar = false) => new(13, false, numClasses, initWeights, dropout, cifar);
    /// <summary>VGG-13 with batch norm.</summary>
    public static VGG Vgg13Bn(int numClasses = 1000, bool initWeights = true, double dropout = 0.5, bool cifar = false) => new(13, true, numClasses, initWeights, dropout, cifar);
    /// <summary>VGG-16 (configuration D).</summary>
    public static VGG Vgg16(int numClasses = 1000, bool initWeights = true, double dropout = 0.5, bool cifar = false) => new(16, false, numClasses, initWeights, dropout, cifar);
    /// <summary>VGG-16 with batch norm.</summary>
    public static VGG Vgg16Bn(int numClasses = 1000, bool initWeights = true, double dropout = 0.5, bool cifar = false) => new(16, true, numClasses, initWeights, dropout, cifar);
    /// <summary>VGG-19 (configuration E).</summary>
    public static VGG Vgg19(int numClasses = 1000, bool initWeights = true, double dropout = 0.5, bool cifar = false) => new(19, false, numClasses, initWeights, dropout, cifar);
    /// <summary>VGG-19 with batch norm.</summary>
    public static VGG Vgg19Bn(int numClasses = 1000, bool initWeights = true, double dropout = 0.5, bool cifar = false) => new(19, true, numClasses, initWeights, dropout, cifar);

    /// <summary>[N, 3, H, W] images (H, W ≥ 32) to [N, numClasses] logits.</summary>
    public override Tensor Forward(Tensor input) => classifier.Call(avgpool.Call(features.Call(input)).Flatten(1));
}
