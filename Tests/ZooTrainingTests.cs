using Autograd.Layers;
using Autograd.Optimizers;
using Autograd.Zoo;

namespace Tests;

/// <summary>Every zoo family trains: one SGD step on a small batch lowers the loss on that batch, and eval mode differs from
/// training mode where the model has batch norm or dropout.</summary>
public class ZooTrainingTests
{
    public static IEnumerable<TestCaseData> Models()
    {
        TestCaseData Case(string name, Func<Module> make, int size, int channels = 3) =>
            new TestCaseData(make, new[] { 2, channels, size, size }).SetArgDisplayNames(name);
        yield return Case("lenet5", () => new LeNet5(5), 28, channels: 1);
        yield return Case("alexnet", () => new AlexNet(5), 63);
        yield return Case("vgg11_bn_cifar", () => VGG.Vgg11Bn(5, cifar: true), 32);
        yield return Case("resnet18_cifar", () => ResNet.ResNet18(5, cifar: true), 16);
        yield return Case("resnet50", () => ResNet.ResNet50(5), 32);
        yield return Case("squeezenet1_1", () => SqueezeNet.SqueezeNet1_1(5), 32);
        yield return Case("mobilenet_v2", () => new MobileNetV2(5), 32);
        yield return Case("densenet121", () => DenseNet.DenseNet121(5), 29);
        yield return Case("googlenet", () => new GoogLeNet(5), 15);
        yield return Case("inception_v3", () => new InceptionV3(5, auxLogits: false), 75);
        yield return Case("efficientnet_b0", () => EfficientNet.EfficientNetB0(5), 32);
    }

    [TestCaseSource(nameof(Models))]
    public void One_training_step_reduces_the_loss_and_train_differs_from_eval(Func<Module> make, int[] shape)
    {
        Generator.ManualSeed(11);
        var model = make();
        var x = Tensor.Randn(shape, 12);
        var y = Tensor.From(new long[] { 1, 3 }, 2);
        // The step is taken in eval mode: dropout and stochastic depth masks would differ between the two passes, and batch
        // norm over a batch of two at 1x1 maps is so ill-conditioned (x-hat is ±1 whatever the weights) that no step size is
        // safe. In eval mode batch norm is its affine map, so a small step against the gradient must lower the loss.
        model.Eval();
        var opt = new SGD(model.Parameters(), lr: 1e-3);
        var before = Functional.CrossEntropy(model.Call(x), y);
        opt.ZeroGrad();
        before.Backward();
        opt.Step();
        var after = Functional.CrossEntropy(model.Call(x), y);
        Assert.That(after.Item(), Is.LessThan(before.Item()), $"loss {before.Item():F4} -> {after.Item():F4}");

        bool modeDependent = model.Modules().Any(m => m is BatchNormNd or Dropout);
        if (!modeDependent) return;
        model.Train();
        var train = model.Call(x).ToFloatArray();
        model.Eval();
        var eval = model.Call(x).ToFloatArray();
        Assert.That(train, Is.Not.EqualTo(eval), "training and eval mode must differ (batch statistics or dropout)");
    }
}
