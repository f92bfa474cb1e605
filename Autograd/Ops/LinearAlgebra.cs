using Autograd.Backends;

namespace Autograd;

public static partial class Functional
{
    /// <summary>Matrix product with <c>torch.matmul</c> semantics: 1-d·1-d is a dot product, 1-d operands
    /// are promoted to a row/column and the extra dim removed, and leading (batch) dims broadcast.</summary>
    public static Tensor MatMul(Tensor a, Tensor b)
    {
        Shape.SameDType("MatMul", a, b);
        Shape.Float("MatMul", a);
        if (a.Rank == 0 || b.Rank == 0) throw new ArgumentException($"MatMul: both arguments need at least 1 dim, got {Shape.Str(a.Dims)} and {Shape.Str(b.Dims)}");
        bool va = a.Rank == 1, vb = b.Rank == 1;
        var A = va ? a.Unsqueeze(0) : a;
        var B = vb ? b.Unsqueeze(-1) : b;
        int m = A.Dims[^2], k = A.Dims[^1], n = B.Dims[^1];
        if (B.Dims[^2] != k) throw new ArgumentException($"MatMul: shapes {Shape.Str(a.Dims)} and {Shape.Str(b.Dims)} cannot be multiplied ({k} != {B.Dims[^2]})");
        Tensor r;
        if (B.Rank == 2)
        {
            // Fold A's batch dims into its rows: one GEMM instead of a batch of them.
            r = Bmm(A.Reshape(1, -1, k), B.Reshape(1, k, n), false, false).Reshape([.. A.Dims[..^1], n]);
        }
        else
        {
            var batch = Shape.Broadcast("MatMul", A.Dims[..^2], B.Dims[..^2]);
            int nb = Shape.Numel(batch);
            var a3 = A.Expand([.. batch, m, k]).Reshape(nb, m, k);
            var b3 = B.Expand([.. batch, k, n]).Reshape(nb, k, n);
            r = Bmm(a3, b3, false, false).Reshape([.. batch, m, n]);
        }
        if (va) r = r.Squeeze(-2);
        if (vb) r = r.Squeeze(-1);
        return r;
    }

    /// <summary>Batched <c>op(a) · op(b)</c> on 3-d tensors, op = transpose when the flag is set. Its derivative
    /// is again a Bmm with other flags, so no transposed copies are made in either pass.</summary>
    internal static Tensor Bmm(Tensor a, Tensor b, bool ta, bool tb)
    {
        int batch = a.Dims[0];
        int m = ta ? a.Dims[2] : a.Dims[1], k = ta ? a.Dims[1] : a.Dims[2], n = tb ? b.Dims[1] : b.Dims[2];
        var r = Tensor.Uninitialized(a.DType, batch, m, n);
        var spec = GemmSpec.Dense(ta, tb, m, n, k, batch);
        if (a.DType == DType.Float32) Backend.Current.Gemm(spec, 1f, a.Data<float>(), b.Data<float>(), 0f, r.Data<float>());
        else Backend.Current.Gemm(spec, 1.0, a.Data<double>(), b.Data<double>(), 0.0, r.Data<double>());
        return AutoGrad.Record(r, "MatMul", g => [
            a.RequiresGrad ? (ta ? Bmm(b, g, tb, true) : Bmm(g, b, false, !tb)) : null,
            b.RequiresGrad ? (tb ? Bmm(g, a, true, ta) : Bmm(a, g, !ta, false)) : null], a, b);
    }

    /// <summary><c>x · weightᵀ + bias</c> with weight [out, in], as <c>F.linear</c>.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null)
    {
        Shape.Rank("Linear", weight, 2, 2, "weight");
        Shape.SameDType("Linear", x, weight);
        int inF = weight.Dims[1], outF = weight.Dims[0];
        if (x.Rank == 0 || x.Dims[^1] != inF)
            throw new ArgumentException($"Linear: input {Shape.Str(x.Dims)} must end in in_features = {inF} (weight {Shape.Str(weight.Dims)})");
        if (bias != null && (bias.Rank != 1 || bias.Dims[0] != outF))
            throw new ArgumentException($"Linear: bias must have shape [{outF}], got {Shape.Str(bias.Dims)}");
        var y = Bmm(x.Reshape(1, -1, inF), weight.Reshape(1, outF, inF), false, true).Reshape([.. x.Dims[..^1], outF]);
        if (bias != null) y = y + bias;
        return OpTrace.Active ? OpTrace.Add("Linear", y, [x, weight, bias]) : y;
    }

    /// <summary><c>y[n, o] = x1[n] · weight[o] · x2[n] + bias[o]</c> with weight [out, in1, in2], as <c>F.bilinear</c>
    /// (leading dims of the inputs are batch dims).</summary>
    public static Tensor Bilinear(Tensor input1, Tensor input2, Tensor weight, Tensor? bias = null)
    {
        Shape.Rank("Bilinear", weight, 3, 3, "weight");
        int outF = weight.Dims[0], in1 = weight.Dims[1], in2 = weight.Dims[2];
        if (input1.Rank == 0 || input1.Dims[^1] != in1 || input2.Rank == 0 || input2.Dims[^1] != in2 || !Shape.Same(input1.Dims[..^1], input2.Dims[..^1]))
            throw new ArgumentException($"Bilinear: inputs {Shape.Str(input1.Dims)} and {Shape.Str(input2.Dims)} must end in {in1} and {in2} and share their leading dims (weight {Shape.Str(weight.Dims)})");
        var lead = input1.Dims[..^1];
        var x1 = input1.Reshape(-1, in1);
        // (x1 · W viewed as [in1, out * in2]) then contract in2 with x2.
        var t = MatMul(x1, weight.Permute(1, 0, 2).Reshape(in1, outF * in2)).Reshape(-1, outF, in2);
        var y = Sum(t * input2.Reshape(-1, 1, in2), 2).Reshape([.. lead, outF]);
        if (bias == null) return y;
        if (bias.Rank != 1 || bias.Dims[0] != outF) throw new ArgumentException($"Bilinear: bias must have shape [{outF}], got {Shape.Str(bias.Dims)}");
        return y + bias;
    }
}

public sealed partial class Tensor
{
    /// <summary>See <see cref="Functional.MatMul"/>.</summary>
    public Tensor MatMul(Tensor other) => Functional.MatMul(this, other);
}
