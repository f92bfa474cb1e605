using Autograd.Layers;

namespace Autograd.Zoo;

/// <summary>AlexNet as <c>torchvision.models.AlexNet</c> (the one-GPU variant of "One weird trick", without local response
/// normalization): <c>features</c>, <c>avgpool</c> (adaptive to 6x6) and <c>classifier</c>; 61,100,840 parameters with 1000 classes.
/// Layers keep PyTorch's default initialization, as torchvision. Inputs of at least 63x63 pixels work.</summary>
/// <remarks>State-dict keys: <c>features.{0,3,6,8,10}.{weight,bias}</c> and <c>classifier.{1,4,6}.{weight,bias}</c>.</remarks>
public sealed class AlexNet : Module
{
    private readonly Sequential features, classifier;
    private readonly AdaptiveAvgPool2d avgpool;

    /// <summary>AlexNet with <paramref name="numClasses"/> outputs and dropout probability <paramref name="dropout"/> before the first
    /// two fully connected layers.</summary>
    public AlexNet(int numClasses = 1000, double dropout = 0.5)
    {
        if (numClasses < 1) throw new ArgumentException($"AlexNet: numClasses must be positive, got {numClasses}");
        features = Register("features", new Sequential(
            new Conv2d(3, 64, 11, stride: 4, padding: 2), new ReLU(inplace: true), new MaxPool2d(3, stride: 2),
            new Conv2d(64, 192, 5, padding: 2), new ReLU(inplace: true), new MaxPool2d(3, stride: 2),
            new Conv2d(192, 384, 3, padding: 1), new ReLU(inplace: true),
            new Conv2d(384, 256, 3, padding: 1), new ReLU(inplace: true),
            new Conv2d(256, 256, 3, padding: 1), new ReLU(inplace: true), new MaxPool2d(3, stride: 2)));
        avgpool = Register("avgpool", new AdaptiveAvgPool2d(6));
        classifier = Register("classifier", new Sequential(
            new Dropout(dropout), new Linear(256 * 6 * 6, 4096), new ReLU(inplace: true),
            new Dropout(dropout), new Linear(4096, 4096), new ReLU(inplace: true),
            new Linear(4096, numClasses)));
    }

    /// <summary>[N, 3, H, W] images (H, W ≥ 63) to [N, numClasses] logits.</summary>
    public override Tensor Forward(Tensor input) => classifier.Call(avgpool.Call(features.Call(input)).Flatten(1));
}
