using Autograd.Layers;
using static Autograd.Functional;

namespace Autograd.Zoo;

/// <summary>Stochastic depth, as <c>torchvision.ops.StochasticDepth</c> ("Deep Networks with Stochastic Depth"): in training,
/// mode <c>"row"</c> zeroes each sample of the batch with probability <c>p</c> and scales the survivors by 1/(1-p); mode
/// <c>"batch"</c> does the same for the whole batch at once. The identity in eval mode or when p is 0. Meant for the residual
/// branch of a block (<c>x + StochasticDepth(f(x))</c>).</summary>
public sealed class StochasticDepth : Module
{
    private readonly Generator? generator;

    /// <summary>Drops with probability <paramref name="p"/> (in [0, 1]) per sample (<c>"row"</c>) or per batch (<c>"batch"</c>), drawing
    /// from <paramref name="generator"/> (default: <see cref="Generator.Default"/>).</summary>
    public StochasticDepth(double p, string mode = "row", Generator? generator = null)
    {
        if (p < 0 || p > 1) throw new ArgumentException($"StochasticDepth: drop probability has to be between 0 and 1, but got {p}");
        if (mode != "row" && mode != "batch") throw new ArgumentException($"StochasticDepth: mode has to be either 'batch' or 'row', but got {mode}");
        (P, Mode, this.generator) = (p, mode, generator);
    }

    /// <summary>The drop probability.</summary>
    public double P { get; }

    /// <summary><c>"row"</c> (per sample) or <c>"batch"</c>.</summary>
    public string Mode { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        if (!Training || P == 0) return input;
        double survival = 1 - P;
        int[] size = Mode == "row" ? [input.Shape[0], .. Enumerable.Repeat(1, input.Rank - 1)] : [.. Enumerable.Repeat(1, input.Rank)];
        var noise = Tensor.Rand(size, generator ?? Generator.Default, input.DType) < survival;   // Bernoulli(survival) as 0/1
        return survival > 0 ? input * (noise / survival) : input * noise;
    }

    /// <inheritdoc/>
    protected override string ExtraRepr() => $"p={Py(P)}, mode={Mode}";
}

/// <summary>EfficientNet B0 … B7 as <c>torchvision.models.EfficientNet</c> ("EfficientNet: Rethinking Model Scaling for
/// Convolutional Neural Networks"): a stride-2 3x3 stem (<c>features.0</c>), seven stages of MBConv blocks with squeeze-and-
/// excitation and stochastic depth (<c>features.1</c> … <c>features.7</c>), a 1x1 convolution to 4x the last stage's channels
/// (<c>features.8</c>), global average pooling and <c>classifier</c> (dropout, linear). State-dict keys are torchvision's
/// (<c>features.1.0.block.0.0.weight</c>). B0 has 5,288,548 parameters with 1000 classes. Any input size of at least 1x1 works.</summary>
/// <example><code>
/// var model = EfficientNet.EfficientNetB0(numClasses: 10);
/// var logits = model.Call(Tensor.Randn([2, 3, 224, 224], seed: 0));   // [2, 10]
/// </code></example>
public sealed class EfficientNet : Module
{
    private readonly Sequential features;
    private readonly AdaptiveAvgPool2d avgpool;
    private readonly Sequential classifier;

    // Table 1 of the paper as torchvision's bneck_conf: expand ratio, kernel, stride, input channels, output channels, layers.
    private static readonly (double Expand, int Kernel, int Stride, int In, int Out, int Layers)[] B0Stages =
    [
        (1, 3, 1, 32, 16, 1),
        (6, 3, 2, 16, 24, 2),
        (6, 5, 2, 24, 40, 2),
        (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3),
        (6, 5, 2, 112, 192, 4),
        (6, 3, 1, 192, 320, 1),
    ];

    /// <summary>An EfficientNet (v1) scaled by <paramref name="widthMult"/> (channels, rounded to multiples of 8) and
    /// <paramref name="depthMult"/> (layers per stage, rounded up) from B0; <paramref name="dropout"/> before the classifier;
    /// <paramref name="stochasticDepthProb"/> is the drop probability of the last block, block i of n getting
    /// p x i / n; batch norms use <paramref name="normEps"/> and <paramref name="normMomentum"/> (torchvision: 1e-5 and 0.1 for
    /// B0 … B4, 1e-3 and 0.01 for B5 … B7). Weights are initialized as torchvision: Kaiming-normal convolutions (fan out, gain √2)
    /// with zero bias, batch norm 1 and 0, linear U(±1/√out_features) with zero bias.</summary>
    public EfficientNet(double widthMult = 1.0, double depthMult = 1.0, double dropout = 0.2, double stochasticDepthProb = 0.2,
        int numClasses = 1000, double normEps = 1e-5, double normMomentum = 0.1)
    {
        if (widthMult <= 0 || depthMult <= 0) throw new ArgumentException($"EfficientNet: width and depth multipliers must be positive, got {widthMult} and {depthMult}");
        if (numClasses < 1) throw new ArgumentException($"EfficientNet: numClasses must be positive, got {numClasses}");
        if (stochasticDepthProb < 0 || stochasticDepthProb > 1) throw new ArgumentException($"EfficientNet: stochasticDepthProb must be in [0, 1], got {stochasticDepthProb}");

        var stages = B0Stages.Select(s => (s.Expand, s.Kernel, s.Stride, In: MakeDivisible(s.In * widthMult), Out: MakeDivisible(s.Out * widthMult),
            Layers: (int)Math.Ceiling(s.Layers * depthMult))).ToArray();
        BatchNorm2d Norm(int c) => new(c, normEps, normMomentum);

        features = Register("features", new Sequential(Array.Empty<Module>()));
        features.Append(new Conv2dNormActivation(3, stages[0].In, 3, Norm, stride: 2));
        int totalBlocks = stages.Sum(s => s.Layers), blockId = 0;
        foreach (var s in stages)
        {
            var stage = new Sequential(Array.Empty<Module>());
            for (int i = 0; i < s.Layers; i++)
            {
                double sdProb = stochasticDepthProb * blockId / totalBlocks;
                stage.Append(new MBConv(s.Expand, s.Kernel, i == 0 ? s.Stride : 1, i == 0 ? s.In : s.Out, s.Out, sdProb, Norm));
                blockId++;
            }
            features.Append(stage);
        }
        int lastIn = stages[^1].Out;
        NumFeatures = 4 * lastIn;
        features.Append(new Conv2dNormActivation(lastIn, NumFeatures, 1, Norm));
        avgpool = Register("avgpool", new AdaptiveAvgPool2d(1));
        classifier = Register("classifier", new Sequential(new Dropout(dropout), new Linear(NumFeatures, numClasses)));

        foreach (var m in Modules())
        {
            switch (m)
            {
                case Conv2d c:
                    Init.KaimingNormal(c.Weight, mode: "fan_out");
                    if (c.Bias != null) Init.Zeros(c.Bias);
                    break;
                case BatchNorm2d bn: Init.Ones(bn.Weight!); Init.Zeros(bn.Bias!); break;
                case Linear l:
                    double range = 1 / Math.Sqrt(l.Weight.Shape[0]);
                    Init.Uniform(l.Weight, -range, range);
                    if (l.Bias != null) Init.Zeros(l.Bias);
                    break;
            }
        }
    }

    /// <summary>EfficientNet-B0 (224x224; 5,288,548 parameters with 1000 classes).</summary>
    public static EfficientNet EfficientNetB0(int numClasses = 1000, double stochasticDepthProb = 0.2) => new(1.0, 1.0, 0.2, stochasticDepthProb, numClasses);
    /// <summary>EfficientNet-B1 (240x240; 7,794,184 parameters).</summary>
    public static EfficientNet EfficientNetB1(int numClasses = 1000, double stochasticDepthProb = 0.2) => new(1.0, 1.1, 0.2, stochasticDepthProb, numClasses);
    /// <summary>EfficientNet-B2 (288x288; 9,109,994 parameters).</summary>
    public static EfficientNet EfficientNetB2(int numClasses = 1000, double stochasticDepthProb = 0.2) => new(1.1, 1.2, 0.3, stochasticDepthProb, numClasses);
    /// <summary>EfficientNet-B3 (300x300; 12,233,232 parameters).</summary>
    public static EfficientNet EfficientNetB3(int numClasses = 1000, double stochasticDepthProb = 0.2) => new(1.2, 1.4, 0.3, stochasticDepthProb, numClasses);
    /// <summary>EfficientNet-B4 (380x380; 19,341,616 parameters).</summary>
    public static EfficientNet EfficientNetB4(int numClasses = 1000, double stochasticDepthProb = 0.2) => new(1.4, 1.8, 0.4, stochasticDepthProb, numClasses);
    /// <summary>EfficientNet-B5 (456x456; 30,389,784 parameters; batch norm eps 1e-3, momentum 0.01).</summary>
    public static EfficientNet EfficientNetB5(int numClasses = 1000, double stochasticDepthProb = 0.2) => new(1.6, 2.2, 0.4, stochasticDepthProb, numClasses, 1e-3, 0.01);
    /// <summary>EfficientNet-B6 (528x528; 43,040,704 parameters; batch norm eps 1e-3, momentum 0.01).</summary>
    public static EfficientNet EfficientNetB6(int numClasses = 1000, double stochasticDepthProb = 0.2) => new(1.8, 2.6, 0.5, stochasticDepthProb, numClasses, 1e-3, 0.01);
    /// <summary>EfficientNet-B7 (600x600; 66,347,960 parameters; batch norm eps 1e-3, momentum 0.01).</summary>
    public static EfficientNet EfficientNetB7(int numClasses = 1000, double stochasticDepthProb = 0.2) => new(2.0, 3.1, 0.5, stochasticDepthProb, numClasses, 1e-3, 0.01);

    /// <summary>The convolutional trunk (<c>features.0</c> … <c>features.8</c>).</summary>
    public Sequential Features => features;

    /// <summary>Dropout and the final linear layer (<c>classifier.0</c>, <c>classifier.1</c>).</summary>
    public Sequential Classifier => classifier;

    /// <summary>Channels entering the classifier (1280 for B0).</summary>
    public int NumFeatures { get; }

    /// <summary>[N, 3, H, W] to [N, numClasses] logits.</summary>
    public override Tensor Forward(Tensor input) => classifier.Call(avgpool.Call(features.Call(input)).Flatten(1));

    /// <summary>torchvision's <c>_make_divisible</c>: <paramref name="v"/> rounded to the nearest multiple of
    /// <paramref name="divisor"/> (at least the divisor), never more than 10% below <paramref name="v"/>.</summary>
    internal static int MakeDivisible(double v, int divisor = 8)
    {
        int rounded = Math.Max(divisor, (int)(v + divisor / 2.0) / divisor * divisor);
        return rounded < 0.9 * v ? rounded + divisor : rounded;
    }

    /// <summary>Convolution (padding (k-1)/2, no bias), batch norm and an optional SiLU, as torchvision's
    /// <c>Conv2dNormActivation</c>: children "0", "1" and "2".</summary>
    public sealed class Conv2dNormActivation : Module
    {
        private readonly Module[] layers;

        /// <summary>A <paramref name="kernelSize"/> x <paramref name="kernelSize"/> convolution with the batch norm built by
        /// <paramref name="norm"/> and, when <paramref name="activation"/>, a SiLU.</summary>
        public Conv2dNormActivation(int inChannels, int outChannels, int kernelSize, Func<int, BatchNorm2d> norm, int stride = 1, int groups = 1,
            bool activation = true)
        {
            var list = new List<Module>
            {
                Register("0", new Conv2d(inChannels, outChannels, kernelSize, stride, (kernelSize - 1) / 2, groups: groups, bias: false)),
                Register("1", norm(outChannels)),
            };
            if (activation) list.Add(Register("2", new SiLU()));
            layers = [.. list];
        }

        /// <inheritdoc/>
        public override Tensor Forward(Tensor input)
        {
            foreach (var m in layers) input = m.Call(input);
            return input;
        }
    }

    /// <summary>Squeeze-and-excitation, as <c>torchvision.ops.SqueezeExcitation</c> with SiLU: the input scaled per channel by
    /// sigmoid(fc2(silu(fc1(avgpool(x))))), fc1 and fc2 being 1x1 convolutions with bias.</summary>
    public sealed class SqueezeExcitation : Module
    {
        private readonly Module avgpool, fc1, fc2, activation, scaleActivation;

        /// <summary>Squeezes <paramref name="inputChannels"/> to <paramref name="squeezeChannels"/> and back.</summary>
        public SqueezeExcitation(int inputChannels, int squeezeChannels)
        {
            avgpool = Register("avgpool", new AdaptiveAvgPool2d(1));
            fc1 = Register("fc1", new Conv2d(inputChannels, squeezeChannels, 1));
            fc2 = Register("fc2", new Conv2d(squeezeChannels, inputChannels, 1));
            activation = Register("activation", new SiLU());
            scaleActivation = Register("scale_activation", new Sigmoid());
        }

        /// <inheritdoc/>
        public override Tensor Forward(Tensor input) =>
            scaleActivation.Call(fc2.Call(activation.Call(fc1.Call(avgpool.Call(input))))) * input;
    }

    /// <summary>The mobile inverted bottleneck block of EfficientNet (torchvision's <c>MBConv</c>): <c>block</c> = 1x1 expansion
    /// (omitted when the expand ratio is 1), depthwise k x k convolution, squeeze-and-excitation (to a quarter of the input
    /// channels), 1x1 projection without activation; plus a stochastic-depth residual when stride is 1 and channels match.</summary>
    public sealed class MBConv : Module
    {
        private readonly Sequential block;
        private readonly StochasticDepth stochasticDepth;
        private readonly bool useResConnect;

        /// <summary>A block from <paramref name="inChannels"/> to <paramref name="outChannels"/>.</summary>
        public MBConv(double expandRatio, int kernel, int stride, int inChannels, int outChannels, double stochasticDepthProb, Func<int, BatchNorm2d> norm)
        {
            if (stride < 1 || stride > 2) throw new ArgumentException($"MBConv: illegal stride value {stride}");
            useResConnect = stride == 1 && inChannels == outChannels;
            int expanded = MakeDivisible(inChannels * expandRatio);
            block = Register("block", new Sequential(Array.Empty<Module>()));
            if (expanded != inChannels) block.Append(new Conv2dNormActivation(inChannels, expanded, 1, norm));
            block.Append(new Conv2dNormActivation(expanded, expanded, kernel, norm, stride, groups: expanded));
            block.Append(new SqueezeExcitation(expanded, Math.Max(1, inChannels / 4)));
            block.Append(new Conv2dNormActivation(expanded, outChannels, 1, norm, activation: false));
            stochasticDepth = Register("stochastic_depth", new StochasticDepth(stochasticDepthProb, "row"));
        }

        /// <inheritdoc/>
        public override Tensor Forward(Tensor input)
        {
            var result = block.Call(input);
            return useResConnect ? stochasticDepth.Call(result) + input : result;
        }
    }
}
