using Autograd.Layers;
using static Autograd.Functional;

namespace Autograd.Zoo;

/// <summary>DenseNet-BC as <c>torchvision.models.DenseNet</c> ("Densely Connected Convolutional Networks"): a 7x7 stem, dense blocks
/// whose layers each see the concatenation of all earlier feature maps, 1x1-conv + average-pool transitions that halve the
/// channels, and a linear classifier. State-dict keys are torchvision's (<c>features.denseblock1.denselayer1.norm1.weight</c>),
/// so a torchvision checkpoint loads with strict loading. The input is nominally 224x224; any size of at least 29x29 works
/// (torchvision's min_size; global average pooling before the classifier).</summary>
/// <example><code>
/// var model = DenseNet.DenseNet121(numClasses: 10);
/// model.Eval();
/// var logits = model.Call(Tensor.Randn([1, 3, 224, 224], seed: 0));   // [1, 10]
/// </code></example>
public sealed class DenseNet : Module
{
    private readonly Sequential features;
    private readonly Linear classifier;

    /// <summary>A DenseNet-BC. <paramref name="blockConfig"/> is the number of layers per dense block (default DenseNet-121's
    /// 6, 12, 24, 16); each layer adds <paramref name="growthRate"/> channels through a 1x1 bottleneck of
    /// <paramref name="bnSize"/> x growth channels; <paramref name="dropRate"/> is the dropout after every dense layer.
    /// Weights are initialized as torchvision: Kaiming-normal convolutions (fan in, gain √2), batch norm 1 and 0,
    /// linear bias 0 (the linear weight keeps PyTorch's default).</summary>
    public DenseNet(int growthRate = 32, int[]? blockConfig = null, int numInitFeatures = 64, int bnSize = 4, double dropRate = 0,
        int numClasses = 1000)
    {
        blockConfig ??= [6, 12, 24, 16];
        if (growthRate < 1 || numInitFeatures < 1 || bnSize < 1 || numClasses < 1 || blockConfig.Length == 0 || blockConfig.Any(n => n < 1))
            throw new ArgumentException("DenseNet: growthRate, numInitFeatures, bnSize, numClasses and every block size must be positive");
        if (dropRate < 0 || dropRate > 1) throw new ArgumentException($"DenseNet: dropRate must be in [0, 1], got {dropRate}");

        features = Register("features", new Sequential(
            ("conv0", new Conv2d(3, numInitFeatures, 7, stride: 2, padding: 3, bias: false)),
            ("norm0", new BatchNorm2d(numInitFeatures)),
            ("relu0", new ReLU(inplace: true)),
            ("pool0", new MaxPool2d(3, stride: 2, padding: 1))));
        int channels = numInitFeatures;
        for (int i = 0; i < blockConfig.Length; i++)
        {
            features.Register($"denseblock{i + 1}", new DenseBlock(blockConfig[i], channels, bnSize, growthRate, dropRate));
            channels += blockConfig[i] * growthRate;
            if (i != blockConfig.Length - 1)
            {
                features.Register($"transition{i + 1}", new Transition(channels, channels / 2));
                channels /= 2;
            }
        }
        features.Register("norm5", new BatchNorm2d(channels));
        classifier = Register("classifier", new Linear(channels, numClasses));
        NumFeatures = channels;

        foreach (var m in Modules())
        {
            switch (m)
            {
                case Conv2d c: Init.KaimingNormal(c.Weight); break;
                case BatchNorm2d bn: Init.Ones(bn.Weight!); Init.Zeros(bn.Bias!); break;
                case Linear l: Init.Zeros(l.Bias!); break;
            }
        }
    }

    /// <summary>DenseNet-121: growth 32, blocks 6, 12, 24, 16, 64 initial features (7,978,856 parameters with 1000 classes).</summary>
    public static DenseNet DenseNet121(int numClasses = 1000, double dropRate = 0) => new(32, [6, 12, 24, 16], 64, 4, dropRate, numClasses);

    /// <summary>DenseNet-161: growth 48, blocks 6, 12, 36, 24, 96 initial features (28,681,000 parameters with 1000 classes).</summary>
    public static DenseNet DenseNet161(int numClasses = 1000, double dropRate = 0) => new(48, [6, 12, 36, 24], 96, 4, dropRate, numClasses);

    /// <summary>DenseNet-169: growth 32, blocks 6, 12, 32, 32, 64 initial features (14,149,480 parameters with 1000 classes).</summary>
    public static DenseNet DenseNet169(int numClasses = 1000, double dropRate = 0) => new(32, [6, 12, 32, 32], 64, 4, dropRate, numClasses);

    /// <summary>DenseNet-201: growth 32, blocks 6, 12, 48, 32, 64 initial features (20,013,928 parameters with 1000 classes).</summary>
    public static DenseNet DenseNet201(int numClasses = 1000, double dropRate = 0) => new(32, [6, 12, 48, 32], 64, 4, dropRate, numClasses);

    /// <summary>The convolutional trunk (<c>features</c>: conv0 … norm5).</summary>
    public Sequential Features => features;

    /// <summary>The final linear layer (<c>classifier</c>).</summary>
    public Linear Classifier => classifier;

    /// <summary>Channels entering the classifier (1024 for DenseNet-121).</summary>
    public int NumFeatures { get; }

    /// <summary>[N, 3, H, W] to [N, numClasses] logits: features, ReLU, global average pooling, classifier.</summary>
    public override Tensor Forward(Tensor input)
    {
        var x = Relu(features.Call(input));
        return classifier.Call(AdaptiveAvgPool2d(x, 1).Flatten(1));
    }

    /// <summary>One bottleneck layer (torchvision's <c>_DenseLayer</c>): norm1, relu1, 1x1 conv1 to bnSize x growth channels,
    /// norm2, relu2, 3x3 conv2 to growth channels, then dropout. Its input is the concatenation of all earlier maps of the block.</summary>
    public sealed class DenseLayer : Module
    {
        private readonly BatchNorm2d norm1, norm2;
        private readonly ReLU relu1, relu2;
        private readonly Conv2d conv1, conv2;
        private readonly double dropRate;

        /// <summary>A layer taking <paramref name="numInputFeatures"/> channels and producing <paramref name="growthRate"/>.</summary>
        public DenseLayer(int numInputFeatures, int growthRate, int bnSize, double dropRate)
        {
            norm1 = Register("norm1", new BatchNorm2d(numInputFeatures));
            relu1 = Register("relu1", new ReLU(inplace: true));
            conv1 = Register("conv1", new Conv2d(numInputFeatures, bnSize * growthRate, 1, bias: false));
            norm2 = Register("norm2", new BatchNorm2d(bnSize * growthRate));
            relu2 = Register("relu2", new ReLU(inplace: true));
            conv2 = Register("conv2", new Conv2d(bnSize * growthRate, growthRate, 3, padding: 1, bias: false));
            this.dropRate = dropRate;
        }

        /// <summary>The <c>growthRate</c> new channels computed from the concatenated input.</summary>
        public override Tensor Forward(Tensor input)
        {
            var bottleneck = conv1.Call(relu1.Call(norm1.Call(input)));
            var y = conv2.Call(relu2.Call(norm2.Call(bottleneck)));
            return dropRate > 0 ? Dropout(y, dropRate, Training) : y;
        }

        /// <inheritdoc/>
        protected override string DisplayName => "_DenseLayer";
    }

    /// <summary>A dense block (torchvision's <c>_DenseBlock</c>): layers denselayer1 … denselayerN, each fed the concatenation of
    /// the block input and every earlier layer's output; the block returns that concatenation with the last output.</summary>
    public sealed class DenseBlock : Module
    {
        private readonly DenseLayer[] layers;

        /// <summary><paramref name="numLayers"/> layers after <paramref name="numInputFeatures"/> channels; the output has
        /// numInputFeatures + numLayers x growthRate channels.</summary>
        public DenseBlock(int numLayers, int numInputFeatures, int bnSize, int growthRate, double dropRate)
        {
            layers = new DenseLayer[numLayers];
            for (int i = 0; i < numLayers; i++)
                layers[i] = Register($"denselayer{i + 1}", new DenseLayer(numInputFeatures + i * growthRate, growthRate, bnSize, dropRate));
        }

        /// <inheritdoc/>
        public override Tensor Forward(Tensor input)
        {
            var maps = new List<Tensor>(layers.Length + 1) { input };
            var x = input;
            foreach (var layer in layers)
            {
                maps.Add(layer.Call(x));
                x = Cat([.. maps], 1);
            }
            return x;
        }

        /// <inheritdoc/>
        protected override string DisplayName => "_DenseBlock";
    }

    /// <summary>A transition (torchvision's <c>_Transition</c>): norm, relu, 1x1 conv, 2x2 average pool with stride 2.</summary>
    public sealed class Transition : Module
    {
        private readonly Module norm, relu, conv, pool;

        /// <summary>From <paramref name="numInputFeatures"/> to <paramref name="numOutputFeatures"/> channels at half the resolution.</summary>
        public Transition(int numInputFeatures, int numOutputFeatures)
        {
            norm = Register("norm", new BatchNorm2d(numInputFeatures));
            relu = Register("relu", new ReLU(inplace: true));
            conv = Register("conv", new Conv2d(numInputFeatures, numOutputFeatures, 1, bias: false));
            pool = Register("pool", new AvgPool2d(2, stride: 2));
        }

        /// <inheritdoc/>
        public override Tensor Forward(Tensor input) => pool.Call(conv.Call(relu.Call(norm.Call(input))));

        /// <inheritdoc/>
        protected override string DisplayName => "_Transition";
    }
}
