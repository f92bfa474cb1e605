using Autograd.Layers;
using static Autograd.Functional;

namespace Autograd.Zoo;

/// <summary>Inception v3 as <c>torchvision.models.Inception3</c> ("Rethinking the Inception Architecture for Computer Vision"):
/// a stem of 3x3 convolutions, Mixed_5b … Mixed_7c (InceptionA x3, B, C x4, D, E x2), global average pooling, dropout and
/// <c>fc</c>, with the auxiliary classifier <c>AuxLogits</c> after Mixed_6e. State-dict keys are torchvision's
/// (<c>Mixed_5b.branch1x1.conv.weight</c>). 27,161,264 parameters with 1000 classes (23,834,568 without the auxiliary
/// classifier). The input is nominally 299x299; any size of at least 75x75 works in eval mode (the auxiliary classifier,
/// which runs in training mode only, needs a 17x17 map after Mixed_6e, i.e. about 299x299, as in torchvision).</summary>
/// <remarks><see cref="Module.Forward"/> returns the main logits; in training mode with the auxiliary classifier,
/// <see cref="AuxLogits"/> holds that call's auxiliary logits (null otherwise), and <see cref="ForwardWithAux"/> returns both,
/// like torchvision's <c>InceptionOutputs</c>.</remarks>
/// <example><code>
/// var model = new InceptionV3(numClasses: 10);
/// var logits = model.Call(images);                       // [N, 3, 299, 299]: logits, and model.AuxLogits in training
/// var loss = CrossEntropy(logits, y) + 0.4 * CrossEntropy(model.AuxLogits!, y);
/// </code></example>
public sealed class InceptionV3 : Module
{
    private readonly BasicConv2d conv1a, conv2a, conv2b, conv3b, conv4a;
    private readonly MaxPool2d maxpool1, maxpool2;
    private readonly Module mixed5b, mixed5c, mixed5d, mixed6a, mixed6b, mixed6c, mixed6d, mixed6e, mixed7a, mixed7b, mixed7c;
    private readonly InceptionAux? aux;
    private readonly AdaptiveAvgPool2d avgpool;
    private readonly Dropout dropout;
    private readonly Linear fc;
    private readonly bool transformInput;

    /// <summary>The outputs of a forward pass, as torchvision's <c>InceptionOutputs</c>.</summary>
    /// <param name="Logits">[N, numClasses] main logits.</param>
    /// <param name="AuxLogits">[N, numClasses] logits of the auxiliary classifier, or null (eval mode or no auxiliary classifier).</param>
    public sealed record Outputs(Tensor Logits, Tensor? AuxLogits);

    /// <summary>An Inception v3. <paramref name="auxLogits"/> adds the auxiliary classifier; <paramref name="transformInput"/>
    /// re-normalizes ImageNet-normalized input to the [-1, 1] scaling of the ported TensorFlow weights; <paramref name="dropout"/>
    /// is applied before <c>fc</c>. With <paramref name="initWeights"/> (default) every convolution and linear weight is drawn
    /// as torchvision does, <c>trunc_normal_(std=0.1, a=-2, b=2)</c>, except <c>AuxLogits.fc</c> (std 0.001); batch norm is 1
    /// and 0; biases keep PyTorch's default. (torchvision also tags <c>AuxLogits.conv1</c> with std 0.01, but on the
    /// BasicConv2d wrapper, which its init loop never matches, so that convolution gets 0.1 there too; this is reproduced.)</summary>
    public InceptionV3(int numClasses = 1000, bool auxLogits = true, bool transformInput = false, bool initWeights = true, double dropout = 0.5)
    {
        if (numClasses < 1) throw new ArgumentException($"InceptionV3: numClasses must be positive, got {numClasses}");
        this.transformInput = transformInput;
        AuxLogitsEnabled = auxLogits;

        conv1a = Register("Conv2d_1a_3x3", new BasicConv2d(3, 32, 3, stride: 2));
        conv2a = Register("Conv2d_2a_3x3", new BasicConv2d(32, 32, 3));
        conv2b = Register("Conv2d_2b_3x3", new BasicConv2d(32, 64, 3, padding: 1));
        maxpool1 = Register("maxpool1", new MaxPool2d(3, stride: 2));
        conv3b = Register("Conv2d_3b_1x1", new BasicConv2d(64, 80, 1));
        conv4a = Register("Conv2d_4a_3x3", new BasicConv2d(80, 192, 3));
        maxpool2 = Register("maxpool2", new MaxPool2d(3, stride: 2));
        mixed5b = Register("Mixed_5b", new InceptionA(192, poolFeatures: 32));
        mixed5c = Register("Mixed_5c", new InceptionA(256, poolFeatures: 64));
        mixed5d = Register("Mixed_5d", new InceptionA(288, poolFeatures: 64));
        mixed6a = Register("Mixed_6a", new InceptionB(288));
        mixed6b = Register("Mixed_6b", new InceptionC(768, channels7x7: 128));
        mixed6c = Register("Mixed_6c", new InceptionC(768, channels7x7: 160));
        mixed6d = Register("Mixed_6d", new InceptionC(768, channels7x7: 160));
        mixed6e = Register("Mixed_6e", new InceptionC(768, channels7x7: 192));
        if (auxLogits) aux = Register("AuxLogits", new InceptionAux(768, numClasses));
        mixed7a = Register("Mixed_7a", new InceptionD(768));
        mixed7b = Register("Mixed_7b", new InceptionE(1280));
        mixed7c = Register("Mixed_7c", new InceptionE(2048));
        avgpool = Register("avgpool", new AdaptiveAvgPool2d(1));
        this.dropout = Register("dropout", new Dropout(dropout));
        fc = Register("fc", new Linear(2048, numClasses));

        if (initWeights)
        {
            foreach (var m in Modules())
            {
                switch (m)
                {
                    case Conv2d c: Init.TruncNormal(c.Weight, 0, 0.1, -2, 2); break;
                    case Linear l: Init.TruncNormal(l.Weight, 0, ReferenceEquals(l, aux?.Fc) ? 0.001 : 0.1, -2, 2); break;
                    case BatchNorm2d bn: Init.Ones(bn.Weight!); Init.Zeros(bn.Bias!); break;
                }
            }
        }
    }

    /// <summary>Whether the model has the auxiliary classifier <c>AuxLogits</c>.</summary>
    public bool AuxLogitsEnabled { get; }

    /// <summary>The auxiliary logits of the last forward pass (null in eval mode or without the auxiliary classifier).</summary>
    public Tensor? AuxLogits { get; private set; }

    /// <summary>The final linear layer (<c>fc</c>, 2048 inputs).</summary>
    public Linear Fc => fc;

    /// <summary>[N, 3, H, W] to [N, numClasses] main logits; the auxiliary logits of this call are left in <see cref="AuxLogits"/>.</summary>
    public override Tensor Forward(Tensor input) => ForwardWithAux(input).Logits;

    /// <summary>The main and auxiliary logits, as torchvision's <c>InceptionOutputs</c>; also updates <see cref="AuxLogits"/>.
    /// Does not run forward hooks (use <see cref="Module.Call"/> for that).</summary>
    public Outputs ForwardWithAux(Tensor input)
    {
        var x = transformInput ? GoogLeNet.TransformInput(input) : input;
        x = maxpool1.Call(conv2b.Call(conv2a.Call(conv1a.Call(x))));
        x = maxpool2.Call(conv4a.Call(conv3b.Call(x)));
        x = mixed5d.Call(mixed5c.Call(mixed5b.Call(x)));
        x = mixed6a.Call(x);
        x = mixed6e.Call(mixed6d.Call(mixed6c.Call(mixed6b.Call(x))));
        Tensor? a = aux != null && Training ? aux.Call(x) : null;
        x = mixed7c.Call(mixed7b.Call(mixed7a.Call(x)));
        x = dropout.Call(avgpool.Call(x)).Flatten(1);
        var logits = fc.Call(x);
        AuxLogits = a;
        return new Outputs(logits, a);
    }

    /// <inheritdoc/>
    protected override string DisplayName => "Inception3";

    /// <summary>The 35x35 module (Mixed_5b/c/d): 1x1; 1x1 then 5x5; 1x1 then two 3x3; 3x3 average pool then 1x1.
    /// Output 224 + <c>poolFeatures</c> channels.</summary>
    public sealed class InceptionA : Module
    {
        private readonly BasicConv2d branch1x1, branch5x5_1, branch5x5_2, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3, branchPool;

        /// <summary>A module on <paramref name="inChannels"/> channels whose pooling branch has <paramref name="poolFeatures"/> outputs.</summary>
        public InceptionA(int inChannels, int poolFeatures)
        {
            branch1x1 = Register("branch1x1", new BasicConv2d(inChannels, 64, 1));
            branch5x5_1 = Register("branch5x5_1", new BasicConv2d(inChannels, 48, 1));
            branch5x5_2 = Register("branch5x5_2", new BasicConv2d(48, 64, 5, padding: 2));
            branch3x3dbl_1 = Register("branch3x3dbl_1", new BasicConv2d(inChannels, 64, 1));
            branch3x3dbl_2 = Register("branch3x3dbl_2", new BasicConv2d(64, 96, 3, padding: 1));
            branch3x3dbl_3 = Register("branch3x3dbl_3", new BasicConv2d(96, 96, 3, padding: 1));
            branchPool = Register("branch_pool", new BasicConv2d(inChannels, poolFeatures, 1));
        }

        /// <inheritdoc/>
        public override Tensor Forward(Tensor x) => Cat([
            branch1x1.Call(x),
            branch5x5_2.Call(branch5x5_1.Call(x)),
            branch3x3dbl_3.Call(branch3x3dbl_2.Call(branch3x3dbl_1.Call(x))),
            branchPool.Call(AvgPool2d(x, 3, stride: 1, padding: 1)),
        ], 1);
    }

    /// <summary>The 35x35 to 17x17 reduction (Mixed_6a): stride-2 3x3; 1x1, 3x3, stride-2 3x3; stride-2 3x3 max pool.
    /// Output 480 + input channels.</summary>
    public sealed class InceptionB : Module
    {
        private readonly BasicConv2d branch3x3, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3;

        /// <summary>A reduction of <paramref name="inChannels"/> channels.</summary>
        public InceptionB(int inChannels)
        {
            branch3x3 = Register("branch3x3", new BasicConv2d(inChannels, 384, 3, stride: 2));
            branch3x3dbl_1 = Register("branch3x3dbl_1", new BasicConv2d(inChannels, 64, 1));
            branch3x3dbl_2 = Register("branch3x3dbl_2", new BasicConv2d(64, 96, 3, padding: 1));
            branch3x3dbl_3 = Register("branch3x3dbl_3", new BasicConv2d(96, 96, 3, stride: 2));
        }

        /// <inheritdoc/>
        public override Tensor Forward(Tensor x) => Cat([
            branch3x3.Call(x),
            branch3x3dbl_3.Call(branch3x3dbl_2.Call(branch3x3dbl_1.Call(x))),
            MaxPool2d(x, 3, stride: 2),
        ], 1);
    }

    /// <summary>The 17x17 module (Mixed_6b … 6e) with factorized 7x7 convolutions (1x7 and 7x1) of <c>channels7x7</c> channels.
    /// Output 768 channels.</summary>
    public sealed class InceptionC : Module
    {
        private readonly BasicConv2d branch1x1, branch7x7_1, branch7x7_2, branch7x7_3,
            branch7x7dbl_1, branch7x7dbl_2, branch7x7dbl_3, branch7x7dbl_4, branch7x7dbl_5, branchPool;

        /// <summary>A module on <paramref name="inChannels"/> channels with <paramref name="channels7x7"/> inner channels.</summary>
        public InceptionC(int inChannels, int channels7x7)
        {
            int c7 = channels7x7;
            branch1x1 = Register("branch1x1", new BasicConv2d(inChannels, 192, 1));
            branch7x7_1 = Register("branch7x7_1", new BasicConv2d(inChannels, c7, 1));
            branch7x7_2 = Register("branch7x7_2", new BasicConv2d(c7, c7, [1, 7], padding: [0, 3]));
            branch7x7_3 = Register("branch7x7_3", new BasicConv2d(c7, 192, [7, 1], padding: [3, 0]));
            branch7x7dbl_1 = Register("branch7x7dbl_1", new BasicConv2d(inChannels, c7, 1));
            branch7x7dbl_2 = Register("branch7x7dbl_2", new BasicConv2d(c7, c7, [7, 1], padding: [3, 0]));
            branch7x7dbl_3 = Register("branch7x7dbl_3", new BasicConv2d(c7, c7, [1, 7], padding: [0, 3]));
            branch7x7dbl_4 = Register("branch7x7dbl_4", new BasicConv2d(c7, c7, [7, 1], padding: [3, 0]));
            branch7x7dbl_5 = Register("branch7x7dbl_5", new BasicConv2d(c7, 192, [1, 7], padding: [0, 3]));
            branchPool = Register("branch_pool", new BasicConv2d(inChannels, 192, 1));
        }

        /// <inheritdoc/>
        public override Tensor Forward(Tensor x) => Cat([
            branch1x1.Call(x),
            branch7x7_3.Call(branch7x7_2.Call(branch7x7_1.Call(x))),
            branch7x7dbl_5.Call(branch7x7dbl_4.Call(branch7x7dbl_3.Call(branch7x7dbl_2.Call(branch7x7dbl_1.Call(x))))),
            branchPool.Call(AvgPool2d(x, 3, stride: 1, padding: 1)),
        ], 1);
    }

    /// <summary>The 17x17 to 8x8 reduction (Mixed_7a): 1x1 then stride-2 3x3; 1x1, 1x7, 7x1, stride-2 3x3; stride-2 3x3 max pool.
    /// Output 512 + input channels.</summary>
    public sealed class InceptionD : Module
    {
        private readonly BasicConv2d branch3x3_1, branch3x3_2, branch7x7x3_1, branch7x7x3_2, branch7x7x3_3, branch7x7x3_4;

        /// <summary>A reduction of <paramref name="inChannels"/> channels.</summary>
        public InceptionD(int inChannels)
        {
            branch3x3_1 = Register("branch3x3_1", new BasicConv2d(inChannels, 192, 1));
            branch3x3_2 = Register("branch3x3_2", new BasicConv2d(192, 320, 3, stride: 2));
            branch7x7x3_1 = Register("branch7x7x3_1", new BasicConv2d(inChannels, 192, 1));
            branch7x7x3_2 = Register("branch7x7x3_2", new BasicConv2d(192, 192, [1, 7], padding: [0, 3]));
            branch7x7x3_3 = Register("branch7x7x3_3", new BasicConv2d(192, 192, [7, 1], padding: [3, 0]));
            branch7x7x3_4 = Register("branch7x7x3_4", new BasicConv2d(192, 192, 3, stride: 2));
        }

        /// <inheritdoc/>
        public override Tensor Forward(Tensor x) => Cat([
            branch3x3_2.Call(branch3x3_1.Call(x)),
            branch7x7x3_4.Call(branch7x7x3_3.Call(branch7x7x3_2.Call(branch7x7x3_1.Call(x)))),
            MaxPool2d(x, 3, stride: 2),
        ], 1);
    }

    /// <summary>The 8x8 module (Mixed_7b/c) with expanded 1x3 / 3x1 branches. Output 2048 channels.</summary>
    public sealed class InceptionE : Module
    {
        private readonly BasicConv2d branch1x1, branch3x3_1, branch3x3_2a, branch3x3_2b,
            branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3a, branch3x3dbl_3b, branchPool;

        /// <summary>A module on <paramref name="inChannels"/> channels.</summary>
        public InceptionE(int inChannels)
        {
            branch1x1 = Register("branch1x1", new BasicConv2d(inChannels, 320, 1));
            branch3x3_1 = Register("branch3x3_1", new BasicConv2d(inChannels, 384, 1));
            branch3x3_2a = Register("branch3x3_2a", new BasicConv2d(384, 384, [1, 3], padding: [0, 1]));
            branch3x3_2b = Register("branch3x3_2b", new BasicConv2d(384, 384, [3, 1], padding: [1, 0]));
            branch3x3dbl_1 = Register("branch3x3dbl_1", new BasicConv2d(inChannels, 448, 1));
            branch3x3dbl_2 = Register("branch3x3dbl_2", new BasicConv2d(448, 384, 3, padding: 1));
            branch3x3dbl_3a = Register("branch3x3dbl_3a", new BasicConv2d(384, 384, [1, 3], padding: [0, 1]));
            branch3x3dbl_3b = Register("branch3x3dbl_3b", new BasicConv2d(384, 384, [3, 1], padding: [1, 0]));
            branchPool = Register("branch_pool", new BasicConv2d(inChannels, 192, 1));
        }

        /// <inheritdoc/>
        public override Tensor Forward(Tensor x)
        {
            var b3 = branch3x3_1.Call(x);
            var bd = branch3x3dbl_2.Call(branch3x3dbl_1.Call(x));
            return Cat([
                branch1x1.Call(x),
                Cat([branch3x3_2a.Call(b3), branch3x3_2b.Call(b3)], 1),
                Cat([branch3x3dbl_3a.Call(bd), branch3x3dbl_3b.Call(bd)], 1),
                branchPool.Call(AvgPool2d(x, 3, stride: 1, padding: 1)),
            ], 1);
        }
    }

    /// <summary>The auxiliary classifier (<c>AuxLogits</c>): 5x5 average pool with stride 3, 1x1 <c>conv0</c> to 128 channels,
    /// 5x5 <c>conv1</c> to 768, global average pool, <c>fc</c>. Needs at least a 17x17 input map.</summary>
    public sealed class InceptionAux : Module
    {
        private readonly BasicConv2d conv0, conv1;
        private readonly Linear fc;

        /// <summary>A head on a map of <paramref name="inChannels"/> channels.</summary>
        public InceptionAux(int inChannels, int numClasses)
        {
            conv0 = Register("conv0", new BasicConv2d(inChannels, 128, 1));
            conv1 = Register("conv1", new BasicConv2d(128, 768, 5));
            fc = Register("fc", new Linear(768, numClasses));
        }

        /// <summary>The linear layer (<c>fc</c>).</summary>
        public Linear Fc => fc;

        /// <inheritdoc/>
        public override Tensor Forward(Tensor input)
        {
            var x = conv1.Call(conv0.Call(AvgPool2d(input, 5, stride: 3)));
            return fc.Call(AdaptiveAvgPool2d(x, 1).Flatten(1));
        }
    }
}
