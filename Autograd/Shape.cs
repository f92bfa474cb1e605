using System.Text;

namespace Autograd;

/// <summary>Every shape rule and shape check of the framework, with error messages that name the op
/// and the shapes involved.</summary>
internal static class Shape
{
    public static string Str(int[] s) => "[" + string.Join(", ", s) + "]";

    /// <summary>The indices [Lo, Hi) among <paramref name="count"/> taps at <c>shift + i * step</c> that lie inside [0, width):
    /// the in-range part of a window or of a shifted output row.</summary>
    public static (int Lo, int Hi) InRange(int shift, int step, int width, int count) =>
        (shift >= 0 ? 0 : Math.Min(count, (-shift + step - 1) / step), shift >= width ? 0 : Math.Min(count, (width - 1 - shift) / step + 1));

    public static int Numel(int[] s)
    {
        long n = 1;
        foreach (var d in s) n *= d;
        if (n > int.MaxValue) throw new ArgumentException($"shape {Str(s)} has {n} elements, more than a tensor can hold ({int.MaxValue})");
        return (int)n;
    }

    /// <summary>Row-major strides of a contiguous tensor of this shape.</summary>
    public static int[] Strides(int[] s)
    {
        var st = new int[s.Length];
        int acc = 1;
        for (int i = s.Length - 1; i >= 0; i--) { st[i] = acc; acc *= s[i]; }
        return st;
    }

    public static bool Same(int[] a, int[] b) => a.AsSpan().SequenceEqual(b);

    /// <summary>Normalizes a possibly negative dim; <paramref name="rank"/> may be 0 for scalars.</summary>
    public static int Dim(string op, int dim, int rank, bool forInsert = false)
    {
        int r = forInsert ? rank + 1 : Math.Max(rank, 1);
        if (dim < -r || dim >= r)
            throw new ArgumentOutOfRangeException(nameof(dim), $"{op}: dim {dim} is out of range for a tensor of rank {rank} (expected a value in [{-r}, {r - 1}])");
        return dim < 0 ? dim + r : dim;
    }

    /// <summary>Normalizes a list of dims, rejecting duplicates; null means all dims.</summary>
    public static int[] Dims(string op, int[]? dims, int rank)
    {
        if (dims == null || dims.Length == 0) return Enumerable.Range(0, rank).ToArray();
        var r = dims.Select(d => Dim(op, d, rank)).ToArray();
        if (r.Distinct().Count() != r.Length) throw new ArgumentException($"{op}: dim {Str(dims)} contains a repeated dimension");
        Array.Sort(r);
        return r;
    }

    /// <summary>NumPy/PyTorch broadcasting of two shapes.</summary>
    public static int[] Broadcast(string op, int[] a, int[] b)
    {
        int n = Math.Max(a.Length, b.Length);
        var r = new int[n];
        for (int i = 0; i < n; i++)
        {
            int da = i < n - a.Length ? 1 : a[i - (n - a.Length)];
            int db = i < n - b.Length ? 1 : b[i - (n - b.Length)];
            if (da != db && da != 1 && db != 1)
                throw new ArgumentException($"{op}: shapes {Str(a)} and {Str(b)} cannot be broadcast together (dimension {i} of the result: {da} vs {db})");
            r[i] = da == 1 ? db : da;
        }
        return r;
    }

    /// <summary>Strides that read <paramref name="src"/> as if broadcast to <paramref name="dst"/> (0 on broadcast dims).</summary>
    public static int[] BroadcastStrides(int[] src, int[] dst)
    {
        var st = Strides(src);
        var r = new int[dst.Length];
        int off = dst.Length - src.Length;
        for (int i = 0; i < src.Length; i++) r[i + off] = src[i] == 1 && dst[i + off] != 1 ? 0 : st[i];
        return r;
    }

    /// <summary>Resolves a single -1 in a reshape target.</summary>
    public static int[] Infer(string op, int[] from, int[] to)
    {
        int n = Numel(from), known = 1, neg = -1;
        for (int i = 0; i < to.Length; i++)
        {
            if (to[i] == -1) { if (neg >= 0) throw new ArgumentException($"{op}: only one dimension can be -1, got {Str(to)}"); neg = i; }
            else if (to[i] < 0) throw new ArgumentException($"{op}: invalid size {to[i]} in {Str(to)}");
            else known *= to[i];
        }
        var r = (int[])to.Clone();
        if (neg >= 0)
        {
            if (known == 0 || n % known != 0) throw new ArgumentException($"{op}: shape {Str(to)} is invalid for input of shape {Str(from)} ({n} elements)");
            r[neg] = n / known;
        }
        else if (known != n) throw new ArgumentException($"{op}: shape {Str(to)} is invalid for input of shape {Str(from)} ({n} elements)");
        return r;
    }

    public static void SameDType(string op, Tensor a, Tensor b)
    {
        if (a.DType != b.DType)
            throw new ArgumentException($"{op}: dtype mismatch, {a.DType} {Str(a.Dims)} vs {b.DType} {Str(b.Dims)}; convert one with To(DType)");
    }

    public static void Float(string op, Tensor a, string arg = "input")
    {
        if (!a.DType.IsFloat()) throw new ArgumentException($"{op}: {arg} must be Float32 or Float64, got {a.DType} {Str(a.Dims)}");
    }

    public static void Rank(string op, Tensor a, int min, int max, string arg = "input")
    {
        if (a.Rank < min || a.Rank > max)
            throw new ArgumentException($"{op}: {arg} must have {(min == max ? $"{min}" : $"{min} to {max}")} dimensions, got shape {Str(a.Dims)}");
    }

    public static void Equal(string op, Tensor a, Tensor b, string what)
    {
        if (!Same(a.Dims, b.Dims))
            throw new ArgumentException($"{op}: {what} must have the same shape, got {Str(a.Dims)} and {Str(b.Dims)}");
    }

    /// <summary>The reduced shape, with kept dims of size 1 when <paramref name="keepDim"/>.</summary>
    public static int[] Reduced(int[] s, int[] dims, bool keepDim)
    {
        var r = new List<int>();
        for (int i = 0; i < s.Length; i++)
            if (Array.IndexOf(dims, i) < 0) r.Add(s[i]);
            else if (keepDim) r.Add(1);
        return r.ToArray();
    }

    public static string Join(IEnumerable<Tensor> ts)
    {
        var sb = new StringBuilder();
        foreach (var t in ts) { if (sb.Length > 0) sb.Append(", "); sb.Append(Str(t.Dims)); }
        return sb.ToString();
    }
}

/// <summary>Sizes of an N-d convolution, with spatial arrays always of length 3 (1-d and 2-d are padded with leading
/// size-1 dims), so one kernel serves Conv1d, Conv2d and Conv3d.</summary>
internal sealed class ConvGeometry
{
    public required int Nd, N, Cin, Cout, Groups;
    public required int[] In, K, Stride, PadLo, PadHi, Dilation, Out;
    public int Cg => Cin / Groups;
    public int CoutG => Cout / Groups;
    public int InVol => In[0] * In[1] * In[2];
    public int KVol => K[0] * K[1] * K[2];
    public int OutVol => Out[0] * Out[1] * Out[2];
    /// <summary>A 1x1 kernel with stride 1 and no padding: the input itself is the im2col matrix.</summary>
    public bool Pointwise => KVol == 1 && Stride.All(s => s == 1) && PadLo.All(p => p == 0) && PadHi.All(p => p == 0) && In.SequenceEqual(Out);
    public int[] InShape => [N, Cin, .. In[(3 - Nd)..]];
    public int[] OutShape => [N, Cout, .. Out[(3 - Nd)..]];
    public int[] WeightShape => [Cout, Cg, .. K[(3 - Nd)..]];

    /// <summary>For a stride-1, undilated conv, the conv that computes its adjoint: of the output gradient (Cout channels,
    /// the output's size) with each kernel flipped and its channel axes swapped within each group, back to the input's
    /// size, padded by K - 1 - padding on each side (negative where the padding is larger than K - 1).</summary>
    public ConvGeometry FlippedAdjoint() => new()
    {
        Nd = Nd, N = N, Cin = Cout, Cout = Cin, Groups = Groups, In = Out, K = K, Stride = Stride, Dilation = Dilation, Out = In,
        PadLo = [.. K.Select((k, i) => k - 1 - PadLo[i])], PadHi = [.. K.Select((k, i) => k - 1 - PadHi[i])],
    };

    private static int[] Lift(int[] v, int nd, int fill) => [.. Enumerable.Repeat(fill, 3 - nd), .. v];

    /// <summary>Checks a convolution of <paramref name="x"/> [N, Cin, *in] by <paramref name="w"/> [Cout, Cin/groups, *k]
    /// and computes its output size (or takes <paramref name="forcedOut"/>), naming every size in its errors.</summary>
    public static ConvGeometry Create(string op, int nd, int[] x, int[] w, int[] stride, int[] padLo, int[] padHi, int[] dilation, int groups, int[]? forcedOut = null)
    {
        if (x.Length != nd + 2) throw new ArgumentException($"{op}: input must be {nd + 2}-d [N, C, {string.Join(", ", "DHW"[(3 - nd)..].Select(c => c.ToString()))}], got {Shape.Str(x)}");
        if (w.Length != nd + 2) throw new ArgumentException($"{op}: weight must be {nd + 2}-d [out_channels, in_channels / groups, *kernel], got {Shape.Str(w)}");
        if (groups < 1) throw new ArgumentException($"{op}: groups must be positive, got {groups}");
        if (stride.Any(s => s < 1) || dilation.Any(d => d < 1))
            throw new ArgumentException($"{op}: stride {Shape.Str(stride)} and dilation {Shape.Str(dilation)} must be positive");
        int cin = x[1], cout = w[0];
        if (cin % groups != 0 || cout % groups != 0)
            throw new ArgumentException($"{op}: in_channels ({cin}) and out_channels ({cout}) must both be divisible by groups ({groups})");
        if (w[1] * groups != cin)
            throw new ArgumentException($"{op}: weight {Shape.Str(w)} expects {w[1]} x {groups} groups = {w[1] * groups} input channels, input {Shape.Str(x)} has {cin}");
        var inSp = x[2..];
        var k = w[2..];
        var o = new int[nd];
        for (int i = 0; i < nd; i++)
        {
            int padded = inSp[i] + padLo[i] + padHi[i], span = dilation[i] * (k[i] - 1) + 1;
            if (span > padded)
                throw new ArgumentException($"{op}: kernel {Shape.Str(k)} with dilation {Shape.Str(dilation)} spans {span} in spatial dim {i}, more than the padded input " +
                    $"({inSp[i]} + padding {padLo[i]} + {padHi[i]} = {padded}); input {Shape.Str(x)}, weight {Shape.Str(w)}");
            // A transposed conv with output_padding is the adjoint of a conv computing only its first outputs.
            o[i] = forcedOut?[i] ?? (padded - span) / stride[i] + 1;
        }
        if (x[0] == 0 || cout == 0) throw new ArgumentException($"{op}: empty batch or channels: input {Shape.Str(x)}, weight {Shape.Str(w)}");
        return new ConvGeometry
        {
            Nd = nd, N = x[0], Cin = cin, Cout = cout, Groups = groups,
            In = Lift(inSp, nd, 1), K = Lift(k, nd, 1), Stride = Lift(stride, nd, 1), PadLo = Lift(padLo, nd, 0), PadHi = Lift(padHi, nd, 0),
            Dilation = Lift(dilation, nd, 1), Out = Lift(o, nd, 1),
        };
    }
}

/// <summary>The windows of a pooling op: per lifted spatial dim (always 3, leading dims of size 1) and output index, the first
/// input position (possibly in the padding), the number of taps and the step between taps. Planes are all leading dims.</summary>
internal sealed class PoolGeometry
{
    public required int Nd, Planes;
    public required int[] Lead, In, Out, Step;
    public required int[][] Start, Len;
    /// <summary>Per dim and output index, the factor of the average's divisor (null for max pooling).</summary>
    public double[][]? Div;
    public double? DivisorOverride;
    public int InVol => In[0] * In[1] * In[2];
    public int OutVol => Out[0] * Out[1] * Out[2];
    public int[] InShape => [.. Lead, .. In[(3 - Nd)..]];
    public int[] OutShape => [.. Lead, .. Out[(3 - Nd)..]];

    private static int[] Lift(int[] v, int nd, int fill) => [.. Enumerable.Repeat(fill, 3 - nd), .. v];

    private static (int[] Lead, int[] In) Split(string op, int nd, int[] x)
    {
        if (x.Length != nd + 1 && x.Length != nd + 2)
            throw new ArgumentException($"{op}: input must be {nd + 1}-d or {nd + 2}-d ([C, *spatial] or [N, C, *spatial]), got {Shape.Str(x)}");
        if (Shape.Numel(x) == 0) throw new ArgumentException($"{op}: input {Shape.Str(x)} is empty");
        return (x[..^nd], x[^nd..]);
    }

    /// <summary>Sliding windows of MaxPool/AvgPool: output size floor (or ceil) of (In + 2p - d(k-1) - 1)/s + 1, where in
    /// ceil mode a last window starting beyond the input and left padding is dropped, as PyTorch does.</summary>
    public static PoolGeometry Sliding(string op, int nd, int[] x, int[] kernel, int[] stride, int[] padding, int[] dilation, bool ceilMode,
        bool average = false, bool countIncludePad = true, double? divisorOverride = null)
    {
        var (lead, inS) = Split(op, nd, x);
        if (kernel.Any(k => k < 1) || stride.Any(s => s < 1) || dilation.Any(d => d < 1) || padding.Any(p => p < 0))
            throw new ArgumentException($"{op}: kernel {Shape.Str(kernel)}, stride {Shape.Str(stride)} and dilation {Shape.Str(dilation)} must be positive and padding {Shape.Str(padding)} non-negative");
        if (divisorOverride is double dv && dv == 0) throw new ArgumentException($"{op}: divisor_override must be non-zero");
        var o = new int[nd];
        for (int i = 0; i < nd; i++)
        {
            int span = dilation[i] * (kernel[i] - 1) + 1;
            if (padding[i] * 2 > span)
                throw new ArgumentException($"{op}: padding {Shape.Str(padding)} should be at most half of the (dilated) kernel {Shape.Str(kernel)} in dim {i}");
            o[i] = SlidingSize(inS[i], kernel[i], stride[i], padding[i], dilation[i], ceilMode);
            if (o[i] <= 0)
                throw new ArgumentException($"{op}: kernel {Shape.Str(kernel)} with dilation {Shape.Str(dilation)} spans {span} in spatial dim {i}, more than the padded input ({inS[i]} + 2 x {padding[i]}); input {Shape.Str(x)}, output size would be {o[i]}");
        }
        var g = Create(nd, lead, inS, o, dilation);
        for (int i = 0; i < nd; i++)
        {
            int j = i + 3 - nd;
            for (int t = 0; t < o[i]; t++)
            {
                int start = t * stride[i] - padding[i];
                g.Start[j][t] = start;
                // Average windows are cut at the padded border (their divisor counts padding but not beyond it).
                g.Len[j][t] = average ? Math.Min(start + kernel[i], inS[i] + padding[i]) - start : kernel[i];
                if (average) g.Div![j][t] = countIncludePad ? g.Len[j][t] : Math.Min(start + g.Len[j][t], inS[i]) - Math.Max(start, 0);
            }
        }
        if (average) g.DivisorOverride = divisorOverride;
        else g.Div = null;
        return g;
    }

    /// <summary>The number of sliding windows along one dim, as PyTorch: (In + 2p - span (+ s - 1 in ceil mode)) / s + 1 with
    /// division rounding down, so in ceil mode a kernel larger than the input still gives one window; a last ceil-mode window
    /// starting beyond the input and the left padding is dropped. Not positive when the kernel spans more than the padded input.</summary>
    public static int SlidingSize(int input, int kernel, int stride, int padding, int dilation, bool ceilMode)
    {
        int o = (int)Math.Floor((double)(input + 2 * padding - dilation * (kernel - 1) - 1 + (ceilMode ? stride - 1 : 0)) / stride) + 1;
        return ceilMode && o > 0 && (o - 1) * stride >= input + padding ? o - 1 : o;
    }

    /// <summary>Adaptive windows: output index o covers [floor(o In / Out), ceil((o + 1) In / Out)).</summary>
    public static PoolGeometry Adaptive(string op, int nd, int[] x, int[] outputSize, bool average)
    {
        var (lead, inS) = Split(op, nd, x);
        if (outputSize.Any(s => s < 1)) throw new ArgumentException($"{op}: output size {Shape.Str(outputSize)} must be positive");
        var g = Create(nd, lead, inS, outputSize, Enumerable.Repeat(1, nd).ToArray());
        for (int i = 0; i < nd; i++)
        {
            int j = i + 3 - nd;
            for (int t = 0; t < outputSize[i]; t++)
            {
                int start = (int)((long)t * inS[i] / outputSize[i]), end = (int)(((long)(t + 1) * inS[i] + outputSize[i] - 1) / outputSize[i]);
                g.Start[j][t] = start;
                g.Len[j][t] = end - start;
                g.Div![j][t] = end - start;
            }
        }
        if (!average) g.Div = null;
        return g;
    }

    private static PoolGeometry Create(int nd, int[] lead, int[] inS, int[] o, int[] dilation)
    {
        var outL = Lift(o, nd, 1);
        var g = new PoolGeometry
        {
            Nd = nd, Planes = Shape.Numel(lead), Lead = lead, In = Lift(inS, nd, 1), Out = outL, Step = Lift(dilation, nd, 1),
            Start = outL.Select(n => new int[n]).ToArray(), Len = outL.Select(n => Enumerable.Repeat(1, n).ToArray()).ToArray(),
        };
        g.Div = outL.Select(n => Enumerable.Repeat(1.0, n).ToArray()).ToArray();
        return g;
    }
}
