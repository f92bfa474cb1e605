namespace Autograd;

public static partial class Functional
{
    /// <summary>Sum over <paramref name="dims"/> (all dims when null or empty).</summary>
    public static Tensor Sum(Tensor x, int[]? dims = null, bool keepDim = false)
    {
        Shape.Float("Sum", x);
        var d = Shape.Dims("Sum", dims, x.Rank);
        var outShape = Shape.Reduced(x.Dims, d, keepDim);
        Tensor r;
        if (d.Length == 0) r = new Tensor((Array)x.Storage.Clone(), outShape, x.DType);
        else if (d[^1] - d[0] == d.Length - 1) r = Kernels.SumRange(x, d[0], d[^1] + 1, outShape);
        else
        {
            var kept = Enumerable.Range(0, x.Rank).Where(i => Array.IndexOf(d, i) < 0);
            var p = Kernels.Permute(x, kept.Concat(d).ToArray());
            r = Kernels.SumRange(p, x.Rank - d.Length, x.Rank, outShape);
        }
        var keepShape = Shape.Reduced(x.Dims, d, true);
        AutoGrad.Record(r, "Sum", Saves.None, g => [g.Reshape(keepShape).Expand(x.Dims)], x);
        return OpTrace.Active ? OpTrace.Add("Sum", r, [x], ("axes", d), ("keepdims", keepDim)) : r;
    }

    /// <summary>Sum over one dim.</summary>
    public static Tensor Sum(Tensor x, int dim, bool keepDim = false) => Sum(x, [dim], keepDim);

    /// <summary>Mean over <paramref name="dims"/> (all dims when null or empty).</summary>
    public static Tensor Mean(Tensor x, int[]? dims = null, bool keepDim = false)
    {
        var d = Shape.Dims("Mean", dims, x.Rank);
        long n = 1;
        foreach (var i in d) n *= x.Dims[i];
        var r = Sum(x, d, keepDim) / n;
        return OpTrace.Active ? OpTrace.Add("Mean", r, [x], ("axes", d), ("keepdims", keepDim)) : r;
    }

    /// <summary>Mean over one dim.</summary>
    public static Tensor Mean(Tensor x, int dim, bool keepDim = false) => Mean(x, [dim], keepDim);

    /// <summary>Variance over <paramref name="dims"/>, divided by N - <paramref name="correction"/> (1: unbiased, PyTorch's default).</summary>
    public static Tensor Var(Tensor x, int[]? dims = null, int correction = 1, bool keepDim = false)
    {
        var d = Shape.Dims("Var", dims, x.Rank);
        long n = 1;
        foreach (var i in d) n *= x.Dims[i];
        var centered = x - Mean(x, d, keepDim: true);
        return Sum(centered * centered, d, keepDim) / Math.Max(0, n - correction);
    }

    /// <summary>Variance over one dim.</summary>
    public static Tensor Var(Tensor x, int dim, int correction = 1, bool keepDim = false) => Var(x, [dim], correction, keepDim);

    /// <summary>Standard deviation: sqrt of <see cref="Var(Tensor, int[], int, bool)"/>.</summary>
    public static Tensor Std(Tensor x, int[]? dims = null, int correction = 1, bool keepDim = false)
    {
        var variance = Var(x, dims, correction, keepDim);
        Tensor r;
        using (AutoGrad.NoGrad()) r = Sqrt(variance);
        // d sqrt(v) = g / (2 sqrt(v)), defined as 0 where the deviation is 0 (a constant slice), as PyTorch.
        return AutoGrad.Record(r, "Std", Saves.Output, g => [Where(r > 0, g * 0.5 / Where(r > 0, r, Tensor.OnesLike(r)), Tensor.ZerosLike(r))], variance);
    }

    /// <summary>Standard deviation over one dim.</summary>
    public static Tensor Std(Tensor x, int dim, int correction = 1, bool keepDim = false) => Std(x, [dim], correction, keepDim);

    /// <summary>Maximum over <paramref name="dims"/> (all when null). Sub-gradient convention: the whole
    /// gradient goes to the first maximal element of each reduced group (in row-major order).</summary>
    public static Tensor Max(Tensor x, int[]? dims = null, bool keepDim = false) => Extreme("Max", x, dims, keepDim, max: true);

    /// <summary>Maximum over one dim.</summary>
    public static Tensor Max(Tensor x, int dim, bool keepDim = false) => Max(x, [dim], keepDim);

    /// <summary>Minimum over <paramref name="dims"/> (all when null); the gradient goes to the first minimal element.</summary>
    public static Tensor Min(Tensor x, int[]? dims = null, bool keepDim = false) => Extreme("Min", x, dims, keepDim, max: false);

    /// <summary>Minimum over one dim.</summary>
    public static Tensor Min(Tensor x, int dim, bool keepDim = false) => Min(x, [dim], keepDim);

    /// <summary>Index of the first maximum along <paramref name="dim"/> (of the flattened input when null), as Int64.</summary>
    public static Tensor ArgMax(Tensor x, int? dim = null, bool keepDim = false) => ArgExtreme("ArgMax", x, dim, keepDim, max: true);

    /// <summary>Index of the first minimum along <paramref name="dim"/> (of the flattened input when null), as Int64.</summary>
    public static Tensor ArgMin(Tensor x, int? dim = null, bool keepDim = false) => ArgExtreme("ArgMin", x, dim, keepDim, max: false);

    private static Tensor ArgExtreme(string op, Tensor x, int? dim, bool keepDim, bool max)
    {
        Shape.Float(op, x);
        if (x.Numel == 0) throw new ArgumentException($"{op}: expected a non-empty input, got shape {Shape.Str(x.Dims)}");
        Tensor r;
        int d = dim == null ? -1 : Shape.Dim(op, dim.Value, x.Rank);
        if (dim == null) r = Tensor.From(Kernels.ArgReduceLast(x.Reshape(-1), max).Index, keepDim ? Enumerable.Repeat(1, x.Rank).ToArray() : []);
        else r = Tensor.From(ReduceLast(x, [d], max).Index, Shape.Reduced(x.Dims, [d], keepDim));
        return OpTrace.Active ? OpTrace.Add(op, r, [x], ("axis", d), ("keepdims", keepDim)) : r;
    }

    private static Tensor Extreme(string op, Tensor x, int[]? dims, bool keepDim, bool max)
    {
        Shape.Float(op, x);
        if (x.Numel == 0) throw new ArgumentException($"{op}: expected a non-empty input, got shape {Shape.Str(x.Dims)}");
        var d = Shape.Dims(op, dims, x.Rank);
        var (values, perm, idx) = ReduceLast(x, d, max);
        var r = values.Reshape(Shape.Reduced(x.Dims, d, keepDim));
        AutoGrad.Record(r, op, Saves.None, g =>
        {
            // One-hot mask of the chosen element, built in the permuted layout and permuted back.
            var mask = Tensor.Zeros([idx.Length, idx.Length == 0 ? 0 : x.Numel / idx.Length], x.DType);
            int len = mask.Dims[1];
            for (int i = 0; i < idx.Length; i++) Set(mask, i * len + (int)idx[i], 1);
            var inv = new int[perm.Length];
            for (int i = 0; i < perm.Length; i++) inv[perm[i]] = i;
            mask = Kernels.Permute(mask.Reshape(perm.Select(p => x.Dims[p]).ToArray()), inv);
            return [g.Reshape(Shape.Reduced(x.Dims, d, true)).Expand(x.Dims) * mask];
        }, x);
        return OpTrace.Active ? OpTrace.Add(op, r, [x], ("axes", d), ("keepdims", keepDim)) : r;
    }

    /// <summary>Moves the reduced dims last, flattens them, and takes max/min with first-occurrence indices.</summary>
    private static (Tensor Values, int[] Perm, long[] Index) ReduceLast(Tensor x, int[] d, bool max)
    {
        var perm = Enumerable.Range(0, x.Rank).Where(i => Array.IndexOf(d, i) < 0).Concat(d).ToArray();
        bool identity = perm.Select((p, i) => p == i).All(b => b);
        var p = identity ? x : Kernels.Permute(x, perm);
        int red = 1;
        foreach (var i in d) red *= x.Dims[i];
        var (v, idx) = Kernels.ArgReduceLast(p.Reshape(-1, red), max);
        return (v, perm, idx);
    }

    /// <summary>log(sum(exp(x))) over <paramref name="dims"/>, stable for large |x|.</summary>
    public static Tensor LogSumExp(Tensor x, int[]? dims = null, bool keepDim = false)
    {
        var d = Shape.Dims("LogSumExp", dims, x.Rank);
        Tensor m;
        using (AutoGrad.NoGrad())
        {
            m = Max(x, d, keepDim: true);
            // An infinite max would give inf - inf = NaN; shifting by 0 there is exact (as PyTorch).
            m = Where(Kernels.Map("LogSumExp", m, new AbsMap()) < double.PositiveInfinity, m, Tensor.ZerosLike(m));
        }
        var r = Log(Sum(Exp(x - m), d, keepDim: true)) + m;
        return keepDim ? r : r.Reshape(Shape.Reduced(x.Dims, d, false));
    }

    /// <summary>LogSumExp over one dim.</summary>
    public static Tensor LogSumExp(Tensor x, int dim, bool keepDim = false) => LogSumExp(x, [dim], keepDim);
}

public sealed partial class Tensor
{
    /// <summary>See <see cref="Functional.Sum(Tensor, int[], bool)"/>.</summary>
    public Tensor Sum(int[]? dims = null, bool keepDim = false) => Functional.Sum(this, dims, keepDim);
    /// <summary>Sum over one dim.</summary>
    public Tensor Sum(int dim, bool keepDim = false) => Functional.Sum(this, dim, keepDim);
    /// <summary>See <see cref="Functional.Mean(Tensor, int[], bool)"/>.</summary>
    public Tensor Mean(int[]? dims = null, bool keepDim = false) => Functional.Mean(this, dims, keepDim);
    /// <summary>Mean over one dim.</summary>
    public Tensor Mean(int dim, bool keepDim = false) => Functional.Mean(this, dim, keepDim);
    /// <summary>See <see cref="Functional.Max(Tensor, int[], bool)"/>.</summary>
    public Tensor Max(int[]? dims = null, bool keepDim = false) => Functional.Max(this, dims, keepDim);
    /// <summary>Maximum over one dim.</summary>
    public Tensor Max(int dim, bool keepDim = false) => Functional.Max(this, dim, keepDim);
    /// <summary>See <see cref="Functional.Min(Tensor, int[], bool)"/>.</summary>
    public Tensor Min(int[]? dims = null, bool keepDim = false) => Functional.Min(this, dims, keepDim);
    /// <summary>Minimum over one dim.</summary>
    public Tensor Min(int dim, bool keepDim = false) => Functional.Min(this, dim, keepDim);
    /// <summary>See <see cref="Functional.ArgMax"/>.</summary>
    public Tensor ArgMax(int? dim = null, bool keepDim = false) => Functional.ArgMax(this, dim, keepDim);
    /// <summary>See <see cref="Functional.Var(Tensor, int[], int, bool)"/>.</summary>
    public Tensor Var(int[]? dims = null, int correction = 1, bool keepDim = false) => Functional.Var(this, dims, correction, keepDim);
    /// <summary>See <see cref="Functional.Std(Tensor, int[], int, bool)"/>.</summary>
    public Tensor Std(int[]? dims = null, int correction = 1, bool keepDim = false) => Functional.Std(this, dims, correction, keepDim);
}
