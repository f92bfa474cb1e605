using Autograd.Layers;

namespace Autograd.Zoo;

/// <summary>The model zoo by name, with torchvision's names: <c>Zoo.Create("resnet50", numClasses: 10)</c>.</summary>
public static class Zoo
{
    private static readonly Dictionary<string, Func<int, Module>> Builders = new()
    {
        ["lenet5"] = k => new LeNet5(k),
        ["alexnet"] = k => new AlexNet(k),
        ["vgg11"] = k => VGG.Vgg11(k), ["vgg11_bn"] = k => VGG.Vgg11Bn(k),
        ["vgg13"] = k => VGG.Vgg13(k), ["vgg13_bn"] = k => VGG.Vgg13Bn(k),
        ["vgg16"] = k => VGG.Vgg16(k), ["vgg16_bn"] = k => VGG.Vgg16Bn(k),
        ["vgg19"] = k => VGG.Vgg19(k), ["vgg19_bn"] = k => VGG.Vgg19Bn(k),
        ["googlenet"] = k => new GoogLeNet(k),
        ["inception_v3"] = k => new InceptionV3(k),
        ["resnet18"] = k => ResNet.ResNet18(k), ["resnet34"] = k => ResNet.ResNet34(k), ["resnet50"] = k => ResNet.ResNet50(k),
        ["resnet101"] = k => ResNet.ResNet101(k), ["resnet152"] = k => ResNet.ResNet152(k),
        ["resnet18_cifar"] = k => ResNet.ResNet18(k, cifar: true), ["resnet34_cifar"] = k => ResNet.ResNet34(k, cifar: true),
        ["vgg16_cifar"] = k => VGG.Vgg16(k, cifar: true),
        ["densenet121"] = k => DenseNet.DenseNet121(k), ["densenet169"] = k => DenseNet.DenseNet169(k), ["densenet201"] = k => DenseNet.DenseNet201(k),
        ["efficientnet_b0"] = k => EfficientNet.EfficientNetB0(k),
        ["squeezenet1_0"] = k => SqueezeNet.SqueezeNet1_0(k), ["squeezenet1_1"] = k => SqueezeNet.SqueezeNet1_1(k),
        ["mobilenet_v2"] = k => new MobileNetV2(k),
    };

    /// <summary>Every model name <see cref="Create"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. Builders.Keys];

    /// <summary>Builds a model by name (torchvision's names, plus <c>lenet5</c> and the <c>_cifar</c> variants).</summary>
    public static Module Create(string name, int numClasses = 1000) =>
        Builders.TryGetValue(name, out var build) ? build(numClasses)
            : throw new ArgumentException($"Zoo.Create: unknown model '{name}'; known: {string.Join(", ", Names)}");
}
