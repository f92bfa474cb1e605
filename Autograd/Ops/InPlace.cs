using System.Numerics;
using System.Numerics.Tensors;

namespace Autograd;

public sealed partial class Tensor
{
    // In-place ops are for updates outside the graph (optimizer steps, initialization). They are not recorded:
    // on a tensor that is part of a graph being recorded they are an error; every tensor sharing the storage has
    // its version bumped, so a backward that needs the old values fails instead of computing a wrong gradient.

    private Tensor InPlace(string op, Func<Tensor> compute)
    {
        CheckInPlace(op);
        Tensor r;
        using (AutoGrad.NoGrad()) r = compute();
        if (!Autograd.Shape.Same(r.Dims, Dims))
            throw new ArgumentException($"{op}: the result has shape {Autograd.Shape.Str(r.Dims)}, which cannot be written into a tensor of shape {Autograd.Shape.Str(Dims)}");
        Array.Copy(r.DType == DType ? r.Storage : r.To(DType).Storage, Storage, Numel);
        Version.Value++;
        return this;
    }

    private void CheckInPlace(string op)
    {
        if (AutoGrad.IsGradEnabled && RequiresGrad)
            throw new InvalidOperationException(IsLeaf
                ? $"{op}: a leaf tensor {Autograd.Shape.Str(Dims)} that requires grad cannot be modified in place while gradients are recorded; do it inside AutoGrad.NoGrad()"
                : $"{op}: tensor {Autograd.Shape.Str(Dims)} (output of {GradFn!.Op}) is part of a recorded graph; in-place ops are not recorded, use the out-of-place op");
    }

    /// <summary>this += alpha * other, in place (broadcasting <paramref name="other"/>).</summary>
    /// <remarks>An operand of this shape and float dtype is added straight into the storage (the optimizers' updates allocate
    /// nothing), with the roundings of the out-of-place <c>this + other * alpha</c>: TensorPrimitives.MultiplyAdd is not fused.</remarks>
    public Tensor Add_(Tensor other, double alpha = 1)
    {
        if (other.DType != DType || !DType.IsFloat() || !Autograd.Shape.Same(other.Dims, Dims))
            return InPlace("Add_", () => alpha == 1 ? this + other : this + other * alpha);
        CheckInPlace("Add_");
        if (DType == DType.Float32) AddScaled(Data<float>(), other.Data<float>(), alpha);
        else AddScaled(Data<double>(), other.Data<double>(), alpha);
        Version.Value++;
        return this;

        static void AddScaled<T>(T[] x, T[] y, double alpha) where T : unmanaged, IFloatingPointIeee754<T>
        {
            if (alpha == 1) TensorPrimitives.Add<T>(x, y, x);
            else TensorPrimitives.MultiplyAdd<T>(y, T.CreateTruncating(alpha), x, x);
        }
    }

    /// <summary>this *= other, in place (broadcasting <paramref name="other"/>).</summary>
    public Tensor Mul_(Tensor other) => InPlace("Mul_", () => this * other);

    /// <summary>this *= s, in place.</summary>
    public Tensor Mul_(double s)
    {
        if (!DType.IsFloat()) return InPlace("Mul_", () => this * s);
        CheckInPlace("Mul_");
        if (DType == DType.Float32) TensorPrimitives.Multiply(Span<float>(), (float)s, Span<float>());
        else TensorPrimitives.Multiply(Span<double>(), s, Span<double>());
        Version.Value++;
        return this;
    }

    /// <summary>max(x, 0) in place (<c>torch.relu_</c>), keeping NaN.</summary>
    /// <remarks>On a tensor that is part of a recorded graph, the op is recorded as PyTorch records it: the tensor becomes the
    /// relu's output and its earlier history the relu's input. That needs a tensor made by a recorded op whose backward does
    /// not read its output (as Sigmoid's or an earlier relu's does), that no recorded op has used yet, of which no view was
    /// made and that has no hooks; anything else is an error (where PyTorch would fail in backward, this fails here).</remarks>
    public Tensor Relu_()
    {
        if (!DType.IsFloat()) return InPlace("Relu_", () => Functional.Relu(this));
        if (AutoGrad.IsGradEnabled && RequiresGrad && !IsLeaf && !OpTrace.Active)
        {
            if (WhyNotRecordable() is string why)
                throw new InvalidOperationException($"Relu_: tensor {Autograd.Shape.Str(Dims)} (output of {GradFn!.Op}) cannot be modified in place while gradients are recorded: {why}; use the out-of-place Relu");
            return Functional.ReluInPlace(this);
        }
        CheckInPlace("Relu_");
        ReluKernel();
        return this;
    }

    /// <summary>max(x, 0) over the storage, bumping the version.</summary>
    internal void ReluKernel()
    {
        if (DType == DType.Float32) TensorPrimitives.Max(Span<float>(), 0f, Span<float>());
        else TensorPrimitives.Max(Span<double>(), 0.0, Span<double>());
        Version.Value++;
    }

    /// <summary>Why a recorded in-place op on this non-leaf tensor would make backward wrong, or null if it would not.</summary>
    private string? WhyNotRecordable() =>
        GradFn!.ReadsOutput ? $"the backward of {GradFn.Op} reads its output"
        : Consumed ? "a recorded op has already used it, and its gradient would go through the in-place op"
        : Version.Viewed ? "it shares its storage with a view or a detached tensor, whose history would not show the change"
        : HasGradHooks || RetainsGrad ? "it has a gradient hook or retains its gradient"
        : null;

    /// <summary>Whether an activation layer built with <c>inplace: true</c> may overwrite its input: nothing records a
    /// gradient for it, or the in-place op can be recorded (see <see cref="Relu_"/>); and no ONNX export traces the call
    /// (it traces out-of-place ops only).</summary>
    internal bool MayOverwrite => !OpTrace.Active && (!(AutoGrad.IsGradEnabled && RequiresGrad) || (!IsLeaf && WhyNotRecordable() == null));

    /// <summary>Copies <paramref name="source"/> (broadcast, converted to this dtype) into this tensor.</summary>
    public Tensor Copy_(Tensor source) => InPlace("Copy_", () => source.To(DType).Expand(Dims));

    /// <summary>Sets every element to <paramref name="value"/>.</summary>
    public Tensor Fill_(double value) => InPlace("Fill_", () => Full(Dims, value, DType));

    /// <summary>Sets every element to zero.</summary>
    public Tensor Zero_() => Fill_(0);
}
