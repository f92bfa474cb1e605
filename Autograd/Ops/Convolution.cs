using System.Buffers;
using System.Numerics;
using Autograd.Backends;

namespace Autograd;

public static partial class Functional
{
    /// <summary>1-d convolution (cross-correlation) of [N, Cin, L] (or unbatched [Cin, L]) by weight [Cout, Cin/groups, k].</summary>
    public static Tensor Conv1d(Tensor input, Tensor weight, Tensor? bias = null, IntTuple stride = default, Padding padding = default, IntTuple dilation = default, int groups = 1) =>
        Conv("Conv1d", 1, input, weight, bias, stride, padding, dilation, groups);

    /// <summary>2-d convolution (cross-correlation) of [N, Cin, H, W] (or unbatched) by weight [Cout, Cin/groups, kH, kW], as <c>F.conv2d</c>.
    /// Padding may be one int, one per dim, (before, after) per dim, <c>"same"</c> or <c>"valid"</c>.</summary>
    public static Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias = null, IntTuple stride = default, Padding padding = default, IntTuple dilation = default, int groups = 1) =>
        Conv("Conv2d", 2, input, weight, bias, stride, padding, dilation, groups);

    /// <summary>3-d convolution (cross-correlation) of [N, Cin, D, H, W] (or unbatched) by weight [Cout, Cin/groups, kD, kH, kW].</summary>
    public static Tensor Conv3d(Tensor input, Tensor weight, Tensor? bias = null, IntTuple stride = default, Padding padding = default, IntTuple dilation = default, int groups = 1) =>
        Conv("Conv3d", 3, input, weight, bias, stride, padding, dilation, groups);

    /// <summary>1-d transposed convolution of [N, Cin, L] by weight [Cin, Cout/groups, k], as <c>F.conv_transpose1d</c>.</summary>
    public static Tensor ConvTranspose1d(Tensor input, Tensor weight, Tensor? bias = null, IntTuple stride = default, IntTuple padding = default,
        IntTuple outputPadding = default, int groups = 1, IntTuple dilation = default) =>
        ConvTranspose("ConvTranspose1d", 1, input, weight, bias, stride, padding, outputPadding, groups, dilation);

    /// <summary>2-d transposed convolution (the adjoint of Conv2d) of [N, Cin, H, W] by weight [Cin, Cout/groups, kH, kW], as <c>F.conv_transpose2d</c>.</summary>
    public static Tensor ConvTranspose2d(Tensor input, Tensor weight, Tensor? bias = null, IntTuple stride = default, IntTuple padding = default,
        IntTuple outputPadding = default, int groups = 1, IntTuple dilation = default) =>
        ConvTranspose("ConvTranspose2d", 2, input, weight, bias, stride, padding, outputPadding, groups, dilation);

    /// <summary>3-d transposed convolution of [N, Cin, D, H, W] by weight [Cin, Cout/groups, kD, kH, kW].</summary>
    public static Tensor ConvTranspose3d(Tensor input, Tensor weight, Tensor? bias = null, IntTuple stride = default, IntTuple padding = default,
        IntTuple outputPadding = default, int groups = 1, IntTuple dilation = default) =>
        ConvTranspose("ConvTranspose3d", 3, input, weight, bias, stride, padding, outputPadding, groups, dilation);

    private static Tensor Conv(string op, int nd, Tensor input, Tensor weight, Tensor? bias, IntTuple stride, Padding padding, IntTuple dilation, int groups)
    {
        Shape.SameDType(op, input, weight);
        Shape.Float(op, input);
        bool unbatched = input.Rank == nd + 1;
        var x = unbatched ? input.Unsqueeze(0) : input;
        var s = stride.Expand(op, "stride", nd, 1);
        var d = dilation.Expand(op, "dilation", nd, 1);
        if (weight.Rank != nd + 2) throw new ArgumentException($"{op}: weight must be {nd + 2}-d [out_channels, in_channels / groups, *kernel], got {Shape.Str(weight.Dims)}");
        var (lo, hi) = padding.Resolve(op, nd, weight.Dims[2..], d, s);
        var g = ConvGeometry.Create(op, nd, x.Dims, weight.Dims, s, lo, hi, d, groups);
        var y = AddChannelBias(op, ConvForward(x, weight, g), bias, nd);
        if (OpTrace.Active) OpTrace.Add("Conv", y, [x, weight, bias], ("strides", s), ("pads", (int[])[.. lo, .. hi]), ("dilations", d), ("group", groups));
        return unbatched ? y.Squeeze(0) : y;
    }

    private static Tensor ConvTranspose(string op, int nd, Tensor input, Tensor weight, Tensor? bias, IntTuple stride, IntTuple padding,
        IntTuple outputPadding, int groups, IntTuple dilation)
    {
        Shape.SameDType(op, input, weight);
        Shape.Float(op, input);
        bool unbatched = input.Rank == nd + 1;
        var x = unbatched ? input.Unsqueeze(0) : input;
        var s = stride.Expand(op, "stride", nd, 1);
        var d = dilation.Expand(op, "dilation", nd, 1);
        var p = padding.Expand(op, "padding", nd, 0);
        var op_ = outputPadding.Expand(op, "output_padding", nd, 0);
        if (x.Rank != nd + 2 || weight.Rank != nd + 2)
            throw new ArgumentException($"{op}: input must be {nd + 2}-d and weight {nd + 2}-d [in_channels, out_channels / groups, *kernel], got {Shape.Str(input.Dims)} and {Shape.Str(weight.Dims)}");
        for (int i = 0; i < nd; i++)
            if (op_[i] < 0 || (op_[i] >= s[i] && op_[i] >= d[i]))
                throw new ArgumentException($"{op}: output_padding {Shape.Str(op_)} must be smaller than stride {Shape.Str(s)} or dilation {Shape.Str(d)}");
        // The transposed conv is the adjoint of the conv from the output size below back to the input's size.
        var outSize = Enumerable.Range(0, nd).Select(i => (x.Dims[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (weight.Dims[2 + i] - 1) + op_[i] + 1).ToArray();
        if (outSize.Any(o => o <= 0))
            throw new ArgumentException($"{op}: output size {Shape.Str(outSize)} is empty for input {Shape.Str(input.Dims)}, weight {Shape.Str(weight.Dims)}, stride {Shape.Str(s)}, padding {Shape.Str(p)}");
        if (weight.Dims[0] != x.Dims[1])
            throw new ArgumentException($"{op}: weight {Shape.Str(weight.Dims)} expects {weight.Dims[0]} input channels, input {Shape.Str(input.Dims)} has {x.Dims[1]}");
        int[] convIn = [x.Dims[0], weight.Dims[1] * groups, .. outSize];
        var g = ConvGeometry.Create(op, nd, convIn, weight.Dims, s, p, p, d, groups, forcedOut: x.Dims[2..]);
        var y = AddChannelBias(op, ConvAdjoint(x, weight, g), bias, nd);
        return unbatched ? y.Squeeze(0) : y;
    }

    /// <summary>Adds a per-channel bias [C] to [N, C, *spatial].</summary>
    private static Tensor AddChannelBias(string op, Tensor y, Tensor? bias, int nd)
    {
        if (bias == null) return y;
        if (bias.Rank != 1 || bias.Dims[0] != y.Dims[1]) throw new ArgumentException($"{op}: bias must have shape [{y.Dims[1]}], got {Shape.Str(bias.Dims)}");
        return y + bias.Reshape([bias.Dims[0], .. Enumerable.Repeat(1, nd)]);
    }

    // Three bilinear ops close the convolution under differentiation, so grad-of-grad works:
    //   ConvForward(x, w)   = conv(x, w)
    //   ConvAdjoint(u, w)   = the adjoint of conv(., w) applied to u           (transposed conv)
    //   ConvWeight(x, u)    = d/dw <u, conv(x, w)>                             (weight gradient)
    // Each one's derivative is written with the other two.

    private static Tensor ConvForward(Tensor x, Tensor w, ConvGeometry g)
    {
        var y = Tensor.Empty(x.DType, g.OutShape);
        if (x.DType == DType.Float32) ConvKernels<float>.Forward(g, x.Data<float>(), w.Data<float>(), y.Data<float>());
        else ConvKernels<double>.Forward(g, x.Data<double>(), w.Data<double>(), y.Data<double>());
        return AutoGrad.Record(y, "Conv", gy => [x.RequiresGrad ? ConvAdjoint(gy, w, g) : null, w.RequiresGrad ? ConvWeight(x, gy, g) : null], x, w);
    }

    private static Tensor ConvAdjoint(Tensor u, Tensor w, ConvGeometry g)
    {
        var x = Tensor.Empty(u.DType, g.InShape);
        if (u.DType == DType.Float32) ConvKernels<float>.Adjoint(g, u.Data<float>(), w.Data<float>(), x.Data<float>());
        else ConvKernels<double>.Adjoint(g, u.Data<double>(), w.Data<double>(), x.Data<double>());
        return AutoGrad.Record(x, "ConvTranspose", gx => [u.RequiresGrad ? ConvForward(gx, w, g) : null, w.RequiresGrad ? ConvWeight(gx, u, g) : null], u, w);
    }

    private static Tensor ConvWeight(Tensor x, Tensor u, ConvGeometry g)
    {
        var w = Tensor.Empty(x.DType, g.WeightShape);
        if (x.DType == DType.Float32) ConvKernels<float>.Weight(g, x.Data<float>(), u.Data<float>(), w.Data<float>());
        else ConvKernels<double>.Weight(g, x.Data<double>(), u.Data<double>(), w.Data<double>());
        return AutoGrad.Record(w, "ConvWeightGrad", gw => [x.RequiresGrad ? ConvAdjoint(u, gw, g) : null, u.RequiresGrad ? ConvForward(x, gw, g) : null], x, u);
    }
}

/// <summary>im2col + GEMM convolution kernels for one dtype. Samples are processed in tiles: the patch matrices of a tile sit
/// side by side in one buffer col [Cg*KVol, tile*OutVol] (bounded to about <see cref="TileElements"/> elements), so each
/// group is one large GEMM per tile. For 1x1 stride-1 convs the input itself is the patch matrix.</summary>
internal static class ConvKernels<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private const long TileElements = 1 << 22;

    private static int Tile(ConvGeometry g) => (int)Math.Clamp(TileElements / ((long)g.Cg * g.KVol * g.OutVol), 1, g.N);

    private static void Parallel2(int n, long work, Action<int> body)
    {
        if (n >= 2 && work >= 1 << 15) Parallel.For(0, n, body);
        else for (int i = 0; i < n; i++) body(i);
    }

    /// <summary>Copies rows [CoutG, OutVol] of samples n0.. of <paramref name="full"/> ([N, Cout, OutVol]) into a [CoutG, nb*OutVol]
    /// tile, or back when <paramref name="toTile"/> is false.</summary>
    private static void Shuffle(ConvGeometry g, T[] full, T[] tile, int n0, int nb, int gr, bool toTile)
    {
        int ld = nb * g.OutVol;
        Parallel2(nb * g.CoutG, (long)nb * g.CoutG * g.OutVol, i =>
        {
            int s = i / g.CoutG, co = i % g.CoutG;
            var a = full.AsSpan(((n0 + s) * g.Cout + gr * g.CoutG + co) * g.OutVol, g.OutVol);
            var b = tile.AsSpan(co * ld + s * g.OutVol, g.OutVol);
            if (toTile) a.CopyTo(b); else b.CopyTo(a);
        });
    }

    public static void Forward(ConvGeometry g, T[] x, T[] w, T[] y)
    {
        if (Depthwise(g)) { DepthwiseRun(g, x, w, y, Mode.Forward); return; }
        int rows = g.Cg * g.KVol;
        if (g.Pointwise)
        {
            // y[n, group] = W_group [CoutG, Cg] . x[n, group] [Cg, OutVol]: one batched GEMM per group over the samples.
            for (int gr = 0; gr < g.Groups; gr++)
                Backend.Current.Gemm(new GemmSpec(false, false, g.CoutG, g.OutVol, g.Cg, rows, g.OutVol, g.OutVol, g.N,
                    0, (long)g.Cin * g.InVol, (long)g.Cout * g.OutVol, (long)gr * g.CoutG * rows, (long)gr * g.Cg * g.InVol, (long)gr * g.CoutG * g.OutVol), T.One, w, x, T.Zero, y);
            return;
        }
        Tiles(g, (n0, nb, gr, col, tmp) =>
        {
            int ld = nb * g.OutVol;
            Im2Col(g, x, n0, nb, gr, col);
            if (nb == 1)
                Backend.Current.Gemm(new GemmSpec(false, false, g.CoutG, g.OutVol, rows, rows, g.OutVol, g.OutVol,
                    OffsetA: (long)gr * g.CoutG * rows, OffsetC: ((long)n0 * g.Cout + gr * g.CoutG) * g.OutVol), T.One, w, col, T.Zero, y);
            else
            {
                Backend.Current.Gemm(new GemmSpec(false, false, g.CoutG, ld, rows, rows, ld, ld, OffsetA: (long)gr * g.CoutG * rows), T.One, w, col, T.Zero, tmp);
                Shuffle(g, y, tmp, n0, nb, gr, toTile: false);
            }
        });
    }

    public static void Adjoint(ConvGeometry g, T[] u, T[] w, T[] x)
    {
        if (Depthwise(g)) { DepthwiseRun(g, x, w, u, Mode.Adjoint); return; }
        int rows = g.Cg * g.KVol;
        if (g.Pointwise)
        {
            for (int gr = 0; gr < g.Groups; gr++)
                Backend.Current.Gemm(new GemmSpec(true, false, g.Cg, g.OutVol, g.CoutG, rows, g.OutVol, g.InVol, g.N,
                    0, (long)g.Cout * g.OutVol, (long)g.Cin * g.InVol, (long)gr * g.CoutG * rows, (long)gr * g.CoutG * g.OutVol, (long)gr * g.Cg * g.InVol), T.One, w, u, T.Zero, x);
            return;
        }
        Array.Clear(x);
        Tiles(g, (n0, nb, gr, col, ut) =>
        {
            int ld = nb * g.OutVol;
            Shuffle(g, u, ut, n0, nb, gr, toTile: true);
            Backend.Current.Gemm(new GemmSpec(true, false, rows, ld, g.CoutG, rows, ld, ld, OffsetA: (long)gr * g.CoutG * rows), T.One, w, ut, T.Zero, col);
            Col2Im(g, col, x, n0, nb, gr);
        });
    }

    public static void Weight(ConvGeometry g, T[] x, T[] u, T[] w)
    {
        if (Depthwise(g)) { DepthwiseRun(g, x, w, u, Mode.Weight); return; }
        int rows = g.Cg * g.KVol;
        if (g.Pointwise)
        {
            // dW_group += u[n, group] [CoutG, OutVol] . x[n, group]^T, accumulated over the samples.
            for (int n = 0; n < g.N; n++)
                for (int gr = 0; gr < g.Groups; gr++)
                    Backend.Current.Gemm(new GemmSpec(false, true, g.CoutG, rows, g.OutVol, g.OutVol, g.OutVol, rows,
                        OffsetA: ((long)n * g.Cout + gr * g.CoutG) * g.OutVol, OffsetB: ((long)n * g.Cin + gr * g.Cg) * g.InVol, OffsetC: (long)gr * g.CoutG * rows),
                        T.One, u, x, n == 0 ? T.Zero : T.One, w);
            return;
        }
        Tiles(g, (n0, nb, gr, col, ut) =>
        {
            int ld = nb * g.OutVol;
            Im2Col(g, x, n0, nb, gr, col);
            Shuffle(g, u, ut, n0, nb, gr, toTile: true);
            // dW_group (+)= u_tile [CoutG, ld] . col^T [ld, rows]
            Backend.Current.Gemm(new GemmSpec(false, true, g.CoutG, rows, ld, ld, ld, rows, OffsetC: (long)gr * g.CoutG * rows),
                T.One, ut, col, n0 == 0 ? T.Zero : T.One, w);
        });
    }

    /// <summary>Runs <paramref name="body"/>(n0, nb, group, col, outTile) for every tile of samples and every group, with a patch
    /// buffer [Cg*KVol, tile*OutVol] and an output-side buffer [CoutG, tile*OutVol] rented once for the whole pass.</summary>
    private static void Tiles(ConvGeometry g, Action<int, int, int, T[], T[]> body)
    {
        int tile = Tile(g);
        var col = ArrayPool<T>.Shared.Rent(g.Cg * g.KVol * tile * g.OutVol);
        var outTile = ArrayPool<T>.Shared.Rent(g.CoutG * tile * g.OutVol);
        try
        {
            for (int n0 = 0; n0 < g.N; n0 += tile)
                for (int gr = 0; gr < g.Groups; gr++)
                    body(n0, Math.Min(tile, g.N - n0), gr, col, outTile);
        }
        finally
        {
            ArrayPool<T>.Shared.Return(col);
            ArrayPool<T>.Shared.Return(outTile);
        }
    }

    /// <summary>Patch matrices of samples n0..n0+nb of one group, side by side: row (c, kd, kh, kw), column (sample, od, oh, ow);
    /// zeros where the window lies in the padding.</summary>
    private static void Im2Col(ConvGeometry g, T[] x, int n0, int nb, int gr, T[] col)
    {
        int rows = g.Cg * g.KVol, ld = nb * g.OutVol;
        Parallel2(nb * rows, (long)nb * rows * g.OutVol, i =>
        {
            int s = i / rows, r = i % rows;
            var (c, kd, kh, kw) = Split(g, r);
            int xOff = ((n0 + s) * g.Cin + gr * g.Cg + c) * g.InVol;
            var dst = col.AsSpan(r * ld + s * g.OutVol, g.OutVol);
            int o = 0;
            for (int od = 0; od < g.Out[0]; od++)
            {
                int id = od * g.Stride[0] - g.PadLo[0] + kd * g.Dilation[0];
                for (int oh = 0; oh < g.Out[1]; oh++, o += g.Out[2])
                {
                    int ih = oh * g.Stride[1] - g.PadLo[1] + kh * g.Dilation[1];
                    var seg = dst.Slice(o, g.Out[2]);
                    if ((uint)id >= (uint)g.In[0] || (uint)ih >= (uint)g.In[1]) { seg.Clear(); continue; }
                    int rowBase = xOff + (id * g.In[1] + ih) * g.In[2];
                    int iw0 = -g.PadLo[2] + kw * g.Dilation[2], sw = g.Stride[2];
                    if (sw == 1 && iw0 >= 0 && iw0 + seg.Length <= g.In[2]) { x.AsSpan(rowBase + iw0, seg.Length).CopyTo(seg); continue; }
                    for (int ow = 0; ow < seg.Length; ow++)
                    {
                        int iw = iw0 + ow * sw;
                        seg[ow] = (uint)iw < (uint)g.In[2] ? x[rowBase + iw] : T.Zero;
                    }
                }
            }
        });
    }

    /// <summary>The adjoint of <see cref="Im2Col"/>: adds every patch entry back to the input position it came from.
    /// Each (sample, channel) pair writes only its own plane, so they run in parallel.</summary>
    private static void Col2Im(ConvGeometry g, T[] col, T[] x, int n0, int nb, int gr)
    {
        int ld = nb * g.OutVol;
        Parallel2(nb * g.Cg, (long)nb * g.Cg * g.KVol * g.OutVol, i =>
        {
            int s = i / g.Cg, c = i % g.Cg;
            int xOff = ((n0 + s) * g.Cin + gr * g.Cg + c) * g.InVol;
            for (int k = 0; k < g.KVol; k++)
            {
                int r = c * g.KVol + k;
                var (_, kd, kh, kw) = Split(g, r);
                int o = r * ld + s * g.OutVol;
                for (int od = 0; od < g.Out[0]; od++)
                {
                    int id = od * g.Stride[0] - g.PadLo[0] + kd * g.Dilation[0];
                    for (int oh = 0; oh < g.Out[1]; oh++, o += g.Out[2])
                    {
                        int ih = oh * g.Stride[1] - g.PadLo[1] + kh * g.Dilation[1];
                        if ((uint)id >= (uint)g.In[0] || (uint)ih >= (uint)g.In[1]) continue;
                        int rowBase = xOff + (id * g.In[1] + ih) * g.In[2];
                        int iw0 = -g.PadLo[2] + kw * g.Dilation[2], sw = g.Stride[2];
                        if (sw == 1 && iw0 >= 0 && iw0 + g.Out[2] <= g.In[2])
                        {
                            var dst = x.AsSpan(rowBase + iw0, g.Out[2]);
                            System.Numerics.Tensors.TensorPrimitives.Add(dst, col.AsSpan(o, g.Out[2]), dst);
                            continue;
                        }
                        for (int ow = 0; ow < g.Out[2]; ow++)
                        {
                            int iw = iw0 + ow * sw;
                            if ((uint)iw < (uint)g.In[2]) x[rowBase + iw] += col[o + ow];
                        }
                    }
                }
            }
        });
    }

    /// <summary>One input and one output channel per group: a GEMM of a single row would waste the patch matrix, so these run
    /// as direct loops over each (sample, channel) plane, vectorized along the row for stride 1.</summary>
    private static bool Depthwise(ConvGeometry g) => g.Cg == 1 && g.CoutG == 1 && !g.Pointwise;

    private enum Mode { Forward, Adjoint, Weight }

    /// <summary>Forward: y += w_k * x shifted by tap k; Adjoint: x += w_k * y shifted back; Weight: w_k = sum of y * x shifted.
    /// <paramref name="x"/> is [N, C, In], <paramref name="y"/> is [N, C, Out] and <paramref name="w"/> is [C, KVol].</summary>
    private static void DepthwiseRun(ConvGeometry g, T[] x, T[] w, T[] y, Mode mode)
    {
        int c = g.Cin, planes = g.N * c;
        if (mode == Mode.Forward) Array.Clear(y);
        if (mode == Mode.Adjoint) Array.Clear(x);
        // Forward and adjoint write one plane each (parallel over planes); the weight gradient reduces over samples (parallel over channels).
        int units = mode == Mode.Weight ? c : planes;
        Parallel2(units, (long)planes * g.KVol * g.OutVol, unit =>
        {
            for (int n = mode == Mode.Weight ? 0 : unit / c; n < (mode == Mode.Weight ? g.N : unit / c + 1); n++)
            {
                int ch = mode == Mode.Weight ? unit : unit % c;
                int xOff = (n * c + ch) * g.InVol, yOff = (n * c + ch) * g.OutVol;
                for (int k = 0; k < g.KVol; k++)
                {
                    var (_, kd, kh, kw) = Split(g, k);
                    T wk = w[ch * g.KVol + k], acc = T.Zero;
                    int sw = g.Stride[2], shift = kw * g.Dilation[2] - g.PadLo[2];
                    // Output columns whose input column ow * sw + shift lies inside the row.
                    int ow0 = shift >= 0 ? 0 : (-shift + sw - 1) / sw, ow1 = shift >= g.In[2] ? 0 : Math.Min(g.Out[2], (g.In[2] - 1 - shift) / sw + 1);
                    if (ow1 <= ow0) continue;
                    for (int od = 0; od < g.Out[0]; od++)
                    {
                        int id = od * g.Stride[0] - g.PadLo[0] + kd * g.Dilation[0];
                        if ((uint)id >= (uint)g.In[0]) continue;
                        for (int oh = 0; oh < g.Out[1]; oh++)
                        {
                            int ih = oh * g.Stride[1] - g.PadLo[1] + kh * g.Dilation[1];
                            if ((uint)ih >= (uint)g.In[1]) continue;
                            int xr = xOff + (id * g.In[1] + ih) * g.In[2] + shift, yr = yOff + (od * g.Out[1] + oh) * g.Out[2];
                            int len = ow1 - ow0;
                            if (sw == 1)
                            {
                                var xs = x.AsSpan(xr + ow0, len);
                                var ys = y.AsSpan(yr + ow0, len);
                                switch (mode)
                                {
                                    case Mode.Forward: System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(xs, wk, ys, ys); break;
                                    case Mode.Adjoint: System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(ys, wk, xs, xs); break;
                                    default: acc += System.Numerics.Tensors.TensorPrimitives.Dot<T>(xs, ys); break;
                                }
                            }
                            else
                                for (int ow = ow0; ow < ow1; ow++)
                                {
                                    int xi = xr + ow * sw, yi = yr + ow;
                                    switch (mode)
                                    {
                                        case Mode.Forward: y[yi] += wk * x[xi]; break;
                                        case Mode.Adjoint: x[xi] += wk * y[yi]; break;
                                        default: acc += x[xi] * y[yi]; break;
                                    }
                                }
                        }
                    }
                    if (mode == Mode.Weight) w[ch * g.KVol + k] = (n == 0 ? T.Zero : w[ch * g.KVol + k]) + acc;
                }
            }
        });
    }

    private static (int C, int Kd, int Kh, int Kw) Split(ConvGeometry g, int r)
    {
        int kw = r % g.K[2], t = r / g.K[2];
        int kh = t % g.K[1]; t /= g.K[1];
        return (t / g.K[0], t % g.K[0], kh, kw);
    }
}
