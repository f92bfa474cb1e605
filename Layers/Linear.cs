using static Autograd.Functional;

namespace Autograd.Layers;

/// <summary><c>y = x Wᵀ + b</c> with weight [out, in], initialized as PyTorch: Kaiming-uniform (a = √5), i.e. U(±1/√in) for both.</summary>
public sealed class Linear : Module
{
    /// <summary>A linear layer from <paramref name="inFeatures"/> to <paramref name="outFeatures"/>.</summary>
    public Linear(int inFeatures, int outFeatures, bool bias = true)
    {
        (InFeatures, OutFeatures) = (inFeatures, outFeatures);
        Init.KaimingUniform(RegisterParameter("weight", Tensor.Zeros(outFeatures, inFeatures))!, a: Math.Sqrt(5));
        var b = RegisterParameter("bias", bias ? Tensor.Zeros(outFeatures) : null);
        if (b != null) Init.Uniform(b, -1 / Math.Sqrt(inFeatures), 1 / Math.Sqrt(inFeatures));
    }

    /// <summary>Input size.</summary>
    public int InFeatures { get; }
    /// <summary>Output size.</summary>
    public int OutFeatures { get; }
    /// <summary>[out, in].</summary>
    public Tensor Weight => Param("weight")!;
    /// <summary>[out], or null.</summary>
    public Tensor? Bias => Param("bias");

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Functional.Linear(input, Weight, Bias);
    /// <inheritdoc/>
    protected override string ExtraRepr() => $"in_features={InFeatures}, out_features={OutFeatures}, bias={Py(Bias != null)}";
}

/// <summary><c>y = x1 W x2 + b</c> with weight [out, in1, in2], as <c>nn.Bilinear</c>. Call <see cref="Forward(Tensor, Tensor)"/>.</summary>
public sealed class Bilinear : Module
{
    /// <summary>A bilinear layer; weight and bias are U(±1/√in1) as in PyTorch.</summary>
    public Bilinear(int in1Features, int in2Features, int outFeatures, bool bias = true)
    {
        double bound = 1 / Math.Sqrt(in1Features);
        Init.Uniform(RegisterParameter("weight", Tensor.Zeros(outFeatures, in1Features, in2Features))!, -bound, bound);
        var b = RegisterParameter("bias", bias ? Tensor.Zeros(outFeatures) : null);
        if (b != null) Init.Uniform(b, -bound, bound);
    }

    /// <summary>[out, in1, in2].</summary>
    public Tensor Weight => Param("weight")!;
    /// <summary>[out], or null.</summary>
    public Tensor? Bias => Param("bias");

    /// <summary>The layer applied to two inputs.</summary>
    public Tensor Forward(Tensor input1, Tensor input2) => Functional.Bilinear(input1, input2, Weight, Bias);

    /// <summary>Bilinear takes two inputs: use <see cref="Forward(Tensor, Tensor)"/>.</summary>
    public override Tensor Forward(Tensor input) => throw new NotSupportedException("Bilinear takes two inputs: call Forward(input1, input2)");
    /// <inheritdoc/>
    protected override string ExtraRepr() => $"in1_features={Weight.Shape[1]}, in2_features={Weight.Shape[2]}, out_features={Weight.Shape[0]}, bias={Py(Bias != null)}";
}

/// <summary>Returns its input.</summary>
public sealed class Identity : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => input;
}

/// <summary>Flattens dims <c>startDim..endDim</c> (by default all but the batch dim), as <c>nn.Flatten</c>.</summary>
public sealed class Flatten(int startDim = 1, int endDim = -1) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => input.Flatten(startDim, endDim);
    /// <inheritdoc/>
    protected override string ExtraRepr() => $"start_dim={startDim}, end_dim={endDim}";
}

/// <summary>Expands dim <c>dim</c> into <c>sizes</c>, as <c>nn.Unflatten</c>.</summary>
public sealed class Unflatten(int dim, int[] sizes) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        int d = dim < 0 ? dim + input.Rank : dim;
        if (d < 0 || d >= input.Rank) throw new ArgumentException($"Unflatten: dim {dim} is out of range for input [{string.Join(", ", input.Shape)}]");
        return input.Reshape([.. input.Shape[..d], .. sizes, .. input.Shape[(d + 1)..]]);
    }
    /// <inheritdoc/>
    protected override string ExtraRepr() => $"dim={dim}, unflattened_size={Py(sizes)}";
}

/// <summary>A lookup table from Int64 indices to rows of weight [num, dim] (initialized N(0, 1)), as <c>nn.Embedding</c>.
/// With <c>paddingIdx</c> that row starts at zero and gets no gradient.</summary>
public sealed class Embedding : Module
{
    private readonly int? paddingIdx;

    /// <summary>An embedding of <paramref name="numEmbeddings"/> rows of size <paramref name="embeddingDim"/>.</summary>
    public Embedding(int numEmbeddings, int embeddingDim, int? paddingIdx = null)
    {
        if (paddingIdx is int p && (p < -numEmbeddings || p >= numEmbeddings))
            throw new ArgumentException($"Embedding: padding_idx {p} is out of range for {numEmbeddings} embeddings");
        this.paddingIdx = paddingIdx < 0 ? paddingIdx + numEmbeddings : paddingIdx;
        var w = Init.Normal(RegisterParameter("weight", Tensor.Zeros(numEmbeddings, embeddingDim))!);
        if (this.paddingIdx != null) using (AutoGrad.NoGrad()) w.Mul_(PaddingMask(numEmbeddings, w.DType));
    }

    /// <summary>[num, 1] ones with a zero at the padding row.</summary>
    private Tensor PaddingMask(int rows, DType dtype)
    {
        var m = Enumerable.Repeat(1.0, rows).ToArray();
        m[paddingIdx!.Value] = 0;
        return Tensor.From(m, rows, 1).To(dtype);
    }

    /// <summary>[num, dim].</summary>
    public Tensor Weight => Param("weight")!;

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        var w = Weight;
        // Multiplying the padding row by a constant 0 keeps it at 0 in the output and its gradient at 0.
        if (paddingIdx != null) w = w * PaddingMask(w.Shape[0], w.DType);
        return IndexSelect(w, 0, input.Reshape(-1)).Reshape([.. input.Shape, w.Shape[1]]);
    }

    /// <inheritdoc/>
    protected override string ExtraRepr() => $"{Weight.Shape[0]}, {Weight.Shape[1]}" + (paddingIdx is int p ? $", padding_idx={p}" : "");
}
