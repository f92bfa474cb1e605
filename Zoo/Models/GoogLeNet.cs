using Autograd.Layers;
using static Autograd.Functional;

namespace Autograd.Zoo;

/// <summary>GoogLeNet (Inception v1) as <c>torchvision.models.GoogLeNet</c> ("Going Deeper with Convolutions"), with batch norm
/// after every convolution and, as torchvision, a 3x3 convolution where the paper's 5x5 branch is (pytorch/vision#906), so
/// torchvision checkpoints load with strict loading. 6,624,904 parameters with 1000 classes and no auxiliary classifiers;
/// 13,004,888 with them. The input is nominally 224x224; any size of at least 15x15 works, as torchvision's min_size
/// (ceil-mode max pooling accepts a window larger than its 2x2 input, as in PyTorch).</summary>
/// <remarks>The auxiliary classifiers (<c>aux1</c> after inception4a, <c>aux2</c> after inception4d) run only in training mode.
/// <see cref="Module.Forward"/> always returns the main logits; after it, <see cref="AuxLogits1"/> and <see cref="AuxLogits2"/>
/// hold the auxiliary logits of that call (null in eval mode or without auxiliary classifiers). <see cref="ForwardWithAux"/>
/// returns all three at once, like torchvision's <c>GoogLeNetOutputs</c>. Unlike torchvision's class (whose
/// <c>aux_logits</c> defaults to True) the auxiliary classifiers are off by default, matching the pretrained model.</remarks>
/// <example><code>
/// var model = new GoogLeNet(numClasses: 10, auxLogits: true);
/// var logits = model.Call(images);                                  // training mode: the aux heads run too
/// var loss = CrossEntropy(logits, y) + 0.3 * (CrossEntropy(model.AuxLogits1!, y) + CrossEntropy(model.AuxLogits2!, y));
/// </code></example>
public sealed class GoogLeNet : Module
{
    private readonly BasicConv2d conv1, conv2, conv3;
    private readonly MaxPool2d maxpool1, maxpool2, maxpool3, maxpool4;
    private readonly Inception inception3a, inception3b, inception4a, inception4b, inception4c, inception4d, inception4e, inception5a, inception5b;
    private readonly InceptionAux? aux1, aux2;
    private readonly AdaptiveAvgPool2d avgpool;
    private readonly Dropout dropout;
    private readonly Linear fc;
    private readonly bool transformInput;

    /// <summary>The three outputs of a forward pass, as torchvision's <c>GoogLeNetOutputs</c> (logits, aux_logits2, aux_logits1);
    /// the auxiliary logits are null in eval mode or without auxiliary classifiers.</summary>
    /// <param name="Logits">[N, numClasses] main logits.</param>
    /// <param name="AuxLogits2">[N, numClasses] logits of aux2 (after inception4d), or null.</param>
    /// <param name="AuxLogits1">[N, numClasses] logits of aux1 (after inception4a), or null.</param>
    public sealed record Outputs(Tensor Logits, Tensor? AuxLogits2, Tensor? AuxLogits1);

    /// <summary>A GoogLeNet. <paramref name="auxLogits"/> adds the two auxiliary classifiers; <paramref name="transformInput"/>
    /// re-normalizes ImageNet-normalized input to the [-1, 1] scaling the ported TensorFlow weights expect; <paramref name="dropout"/>
    /// is applied before <c>fc</c> and <paramref name="dropoutAux"/> inside the auxiliary classifiers. With
    /// <paramref name="initWeights"/> (default), convolution and linear weights are drawn as torchvision does,
    /// <c>trunc_normal_(std=0.01, a=-2, b=2)</c>, and batch norm is 1 and 0; linear biases keep PyTorch's default.</summary>
    public GoogLeNet(int numClasses = 1000, bool auxLogits = false, bool transformInput = false, bool initWeights = true,
        double dropout = 0.2, double dropoutAux = 0.7)
    {
        if (numClasses < 1) throw new ArgumentException($"GoogLeNet: numClasses must be positive, got {numClasses}");
        this.transformInput = transformInput;
        AuxLogitsEnabled = auxLogits;

        conv1 = Register("conv1", new BasicConv2d(3, 64, 7, stride: 2, padding: 3));
        maxpool1 = Register("maxpool1", new MaxPool2d(3, stride: 2, ceilMode: true));
        conv2 = Register("conv2", new BasicConv2d(64, 64, 1));
        conv3 = Register("conv3", new BasicConv2d(64, 192, 3, padding: 1));
        maxpool2 = Register("maxpool2", new MaxPool2d(3, stride: 2, ceilMode: true));

        inception3a = Register("inception3a", new Inception(192, 64, 96, 128, 16, 32, 32));
        inception3b = Register("inception3b", new Inception(256, 128, 128, 192, 32, 96, 64));
        maxpool3 = Register("maxpool3", new MaxPool2d(3, stride: 2, ceilMode: true));

        inception4a = Register("inception4a", new Inception(480, 192, 96, 208, 16, 48, 64));
        inception4b = Register("inception4b", new Inception(512, 160, 112, 224, 24, 64, 64));
        inception4c = Register("inception4c", new Inception(512, 128, 128, 256, 24, 64, 64));
        inception4d = Register("inception4d", new Inception(512, 112, 144, 288, 32, 64, 64));
        inception4e = Register("inception4e", new Inception(528, 256, 160, 320, 32, 128, 128));
        maxpool4 = Register("maxpool4", new MaxPool2d(2, stride: 2, ceilMode: true));

        inception5a = Register("inception5a", new Inception(832, 256, 160, 320, 32, 128, 128));
        inception5b = Register("inception5b", new Inception(832, 384, 192, 384, 48, 128, 128));

        if (auxLogits)
        {
            aux1 = Register("aux1", new InceptionAux(512, numClasses, dropoutAux));
            aux2 = Register("aux2", new InceptionAux(528, numClasses, dropoutAux));
        }

        avgpool = Register("avgpool", new AdaptiveAvgPool2d(1));
        this.dropout = Register("dropout", new Dropout(dropout));
        fc = Register("fc", new Linear(1024, numClasses));

        if (initWeights)
        {
            foreach (var m in Modules())
            {
                switch (m)
                {
                    case Conv2d c: Init.TruncNormal(c.Weight, 0, 0.01, -2, 2); break;
                    case Linear l: Init.TruncNormal(l.Weight, 0, 0.01, -2, 2); break;
                    case BatchNorm2d bn: Init.Ones(bn.Weight!); Init.Zeros(bn.Bias!); break;
                }
            }
        }
    }

    /// <summary>Whether the model has the auxiliary classifiers <c>aux1</c> and <c>aux2</c>.</summary>
    public bool AuxLogitsEnabled { get; }

    /// <summary>The logits of <c>aux1</c> from the last forward pass (null in eval mode or without auxiliary classifiers).</summary>
    public Tensor? AuxLogits1 { get; private set; }

    /// <summary>The logits of <c>aux2</c> from the last forward pass (null in eval mode or without auxiliary classifiers).</summary>
    public Tensor? AuxLogits2 { get; private set; }

    /// <summary>The final linear layer (<c>fc</c>, 1024 inputs).</summary>
    public Linear Fc => fc;

    /// <summary>[N, 3, H, W] to [N, numClasses] main logits; the auxiliary logits of this call are left in
    /// <see cref="AuxLogits1"/> and <see cref="AuxLogits2"/>.</summary>
    public override Tensor Forward(Tensor input) => ForwardWithAux(input).Logits;

    /// <summary>The main and auxiliary logits, as torchvision's <c>GoogLeNetOutputs</c>; also updates <see cref="AuxLogits1"/>
    /// and <see cref="AuxLogits2"/>. Does not run forward hooks (use <see cref="Module.Call"/> for that).</summary>
    public Outputs ForwardWithAux(Tensor input)
    {
        var x = transformInput ? TransformInput(input) : input;
        x = maxpool1.Call(conv1.Call(x));
        x = maxpool2.Call(conv3.Call(conv2.Call(x)));
        x = maxpool3.Call(inception3b.Call(inception3a.Call(x)));
        x = inception4a.Call(x);
        Tensor? a1 = aux1 != null && Training ? aux1.Call(x) : null;
        x = inception4d.Call(inception4c.Call(inception4b.Call(x)));
        Tensor? a2 = aux2 != null && Training ? aux2.Call(x) : null;
        x = maxpool4.Call(inception4e.Call(x));
        x = inception5b.Call(inception5a.Call(x));
        x = avgpool.Call(x).Flatten(1);
        var logits = fc.Call(dropout.Call(x));
        (AuxLogits1, AuxLogits2) = (a1, a2);
        return new Outputs(logits, a2, a1);
    }

    /// <summary>Maps each channel from ImageNet normalization (mean 0.485/0.456/0.406, std 0.229/0.224/0.225) to (x - 0.5) / 0.5,
    /// as torchvision's <c>_transform_input</c>.</summary>
    public static Tensor TransformInput(Tensor x)
    {
        if (x.Rank != 4 || x.Shape[1] != 3)
            throw new ArgumentException($"transform_input: expected [N, 3, H, W], got [{string.Join(", ", x.Shape)}]");
        double[] mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225];
        return Cat([.. Enumerable.Range(0, 3).Select(c => x.Narrow(1, c, 1) * (std[c] / 0.5) + (mean[c] - 0.5) / 0.5)], 1);
    }

    /// <summary>An Inception module: branch1 (1x1), branch2 (1x1 then 3x3), branch3 (1x1 then 3x3, torchvision's stand-in for the
    /// paper's 5x5), branch4 (3x3 max pool with stride 1 then 1x1), concatenated along channels.</summary>
    public sealed class Inception : Module
    {
        private readonly Module branch1, branch2, branch3, branch4;

        /// <summary>Output channels are <paramref name="ch1x1"/> + <paramref name="ch3x3"/> + <paramref name="ch5x5"/> + <paramref name="poolProj"/>;
        /// <paramref name="ch3x3red"/> and <paramref name="ch5x5red"/> are the 1x1 reductions.</summary>
        public Inception(int inChannels, int ch1x1, int ch3x3red, int ch3x3, int ch5x5red, int ch5x5, int poolProj)
        {
            branch1 = Register("branch1", new BasicConv2d(inChannels, ch1x1, 1));
            branch2 = Register("branch2", new Sequential(new BasicConv2d(inChannels, ch3x3red, 1), new BasicConv2d(ch3x3red, ch3x3, 3, padding: 1)));
            branch3 = Register("branch3", new Sequential(new BasicConv2d(inChannels, ch5x5red, 1), new BasicConv2d(ch5x5red, ch5x5, 3, padding: 1)));
            branch4 = Register("branch4", new Sequential(new MaxPool2d(3, stride: 1, padding: 1, ceilMode: true), new BasicConv2d(inChannels, poolProj, 1)));
        }

        /// <inheritdoc/>
        public override Tensor Forward(Tensor input) =>
            Cat([branch1.Call(input), branch2.Call(input), branch3.Call(input), branch4.Call(input)], 1);
    }

    /// <summary>An auxiliary classifier: adaptive average pool to 4x4, 1x1 <c>conv</c> to 128 channels, <c>fc1</c> (2048 to 1024)
    /// with ReLU, dropout, <c>fc2</c> to the classes.</summary>
    public sealed class InceptionAux : Module
    {
        private readonly BasicConv2d conv;
        private readonly Linear fc1, fc2;
        private readonly Dropout dropout;

        /// <summary>A head on a map of <paramref name="inChannels"/> channels.</summary>
        public InceptionAux(int inChannels, int numClasses, double dropout = 0.7)
        {
            conv = Register("conv", new BasicConv2d(inChannels, 128, 1));
            fc1 = Register("fc1", new Linear(2048, 1024));
            fc2 = Register("fc2", new Linear(1024, numClasses));
            this.dropout = Register("dropout", new Dropout(dropout));
        }

        /// <inheritdoc/>
        public override Tensor Forward(Tensor input)
        {
            var x = conv.Call(AdaptiveAvgPool2d(input, 4)).Flatten(1);
            return fc2.Call(dropout.Call(Relu(fc1.Call(x), inplace: true)));
        }
    }
}
