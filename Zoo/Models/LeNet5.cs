using Autograd.Layers;

namespace Autograd.Zoo;

/// <summary>The activation used between the layers of <see cref="LeNet5"/>.</summary>
public enum LeNetActivation
{
    /// <summary><c>nn.ReLU</c> (the default; the modern choice).</summary>
    ReLU,
    /// <summary><c>nn.Tanh</c> (closer to LeCun et al., 1998).</summary>
    Tanh,
}

/// <summary>LeNet-5 for 1x28x28 images (MNIST): conv 6@5x5 (padding 2), activation, max pool 2, conv 16@5x5, activation,
/// max pool 2, then fully connected 400 → 120 → 84 → <c>numClasses</c> with the activation between them. 61,706 parameters
/// with 10 classes. Layers keep PyTorch's default initialization.</summary>
/// <remarks>Children, torchvision style: <c>features</c> = Sequential(<c>0</c> Conv2d(1, 6, 5, padding 2), <c>1</c> activation,
/// <c>2</c> MaxPool2d(2), <c>3</c> Conv2d(6, 16, 5), <c>4</c> activation, <c>5</c> MaxPool2d(2)) and <c>classifier</c> =
/// Sequential(<c>0</c> Linear(400, 120), <c>1</c> activation, <c>2</c> Linear(120, 84), <c>3</c> activation, <c>4</c> Linear(84,
/// numClasses)); the state dict is <c>features.0.weight</c>, <c>features.0.bias</c>, <c>features.3.*</c>, <c>classifier.0.*</c>,
/// <c>classifier.2.*</c>, <c>classifier.4.*</c>. The input must be [N, 1, 28, 28] (the classifier expects 16x5x5 features).</remarks>
public sealed class LeNet5 : Module
{
    private readonly Sequential features, classifier;

    /// <summary>LeNet-5 with <paramref name="numClasses"/> outputs and the given activation (ReLU by default).</summary>
    public LeNet5(int numClasses = 10, LeNetActivation activation = LeNetActivation.ReLU)
    {
        if (numClasses < 1) throw new ArgumentException($"LeNet5: numClasses must be positive, got {numClasses}");
        Module Act() => activation == LeNetActivation.Tanh ? new Tanh() : new ReLU(inplace: true);
        features = Register("features", new Sequential(
            new Conv2d(1, 6, 5, padding: 2), Act(), new MaxPool2d(2),
            new Conv2d(6, 16, 5), Act(), new MaxPool2d(2)));
        classifier = Register("classifier", new Sequential(
            new Linear(16 * 5 * 5, 120), Act(),
            new Linear(120, 84), Act(),
            new Linear(84, numClasses)));
    }

    /// <summary>The convolutional part (children 0-5).</summary>
    public Sequential Features => features;

    /// <summary>The fully connected part (children 0-4).</summary>
    public Sequential Classifier => classifier;

    /// <summary>[N, 1, 28, 28] images to [N, numClasses] logits.</summary>
    public override Tensor Forward(Tensor input) => classifier.Call(features.Call(input).Flatten(1));
}
