using Autograd.Backends;
using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Autograd;

public static partial class Functional
{
    /// <summary>1-d max pooling over [N, C, L] or [C, L]; stride defaults to the kernel size.</summary>
    public static Tensor MaxPool1d(Tensor input, IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, IntTuple dilation = default, bool ceilMode = false) =>
        MaxPool("MaxPool1d", 1, input, kernelSize, stride, padding, dilation, ceilMode);

    /// <summary>2-d max pooling over [N, C, H, W] or [C, H, W], as <c>F.max_pool2d</c>. Sub-gradient convention: the gradient of each
    /// window goes to its first maximal element (row-major order).</summary>
    public static Tensor MaxPool2d(Tensor input, IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, IntTuple dilation = default, bool ceilMode = false) =>
        MaxPool("MaxPool2d", 2, input, kernelSize, stride, padding, dilation, ceilMode);

    /// <summary>3-d max pooling over [N, C, D, H, W] or [C, D, H, W].</summary>
    public static Tensor MaxPool3d(Tensor input, IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, IntTuple dilation = default, bool ceilMode = false) =>
        MaxPool("MaxPool3d", 3, input, kernelSize, stride, padding, dilation, ceilMode);

    /// <summary><see cref="MaxPool1d"/> that also returns the Int64 index of each maximum within its (n, c) plane, as <c>return_indices=True</c>.</summary>
    public static (Tensor Values, Tensor Indices) MaxPool1dWithIndices(Tensor input, IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, IntTuple dilation = default, bool ceilMode = false) =>
        WithIndices(input, MaxPoolGeometry("MaxPool1d", 1, input, Window.Of("MaxPool1d", 1, kernelSize, stride, padding, dilation), ceilMode));

    /// <summary><see cref="MaxPool2d"/> that also returns the Int64 index of each maximum within its (n, c) plane (for <see cref="MaxUnpool2d"/>).</summary>
    public static (Tensor Values, Tensor Indices) MaxPool2dWithIndices(Tensor input, IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, IntTuple dilation = default, bool ceilMode = false) =>
        WithIndices(input, MaxPoolGeometry("MaxPool2d", 2, input, Window.Of("MaxPool2d", 2, kernelSize, stride, padding, dilation), ceilMode));

    /// <summary><see cref="MaxPool3d"/> that also returns the Int64 index of each maximum within its (n, c) volume.</summary>
    public static (Tensor Values, Tensor Indices) MaxPool3dWithIndices(Tensor input, IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, IntTuple dilation = default, bool ceilMode = false) =>
        WithIndices(input, MaxPoolGeometry("MaxPool3d", 3, input, Window.Of("MaxPool3d", 3, kernelSize, stride, padding, dilation), ceilMode));

    /// <summary>1-d average pooling.</summary>
    public static Tensor AvgPool1d(Tensor input, IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, bool ceilMode = false, bool countIncludePad = true) =>
        AvgPool("AvgPool1d", 1, input, kernelSize, stride, padding, ceilMode, countIncludePad, null);

    /// <summary>2-d average pooling, as <c>F.avg_pool2d</c> (count_include_pad, ceil_mode, divisor_override).</summary>
    public static Tensor AvgPool2d(Tensor input, IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, bool ceilMode = false, bool countIncludePad = true, int? divisorOverride = null) =>
        AvgPool("AvgPool2d", 2, input, kernelSize, stride, padding, ceilMode, countIncludePad, divisorOverride);

    /// <summary>3-d average pooling.</summary>
    public static Tensor AvgPool3d(Tensor input, IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, bool ceilMode = false, bool countIncludePad = true, int? divisorOverride = null) =>
        AvgPool("AvgPool3d", 3, input, kernelSize, stride, padding, ceilMode, countIncludePad, divisorOverride);

    /// <summary>Average pooling to a fixed output length; <c>AdaptiveAvgPool1d(x, 1)</c> is global average pooling.</summary>
    public static Tensor AdaptiveAvgPool1d(Tensor input, IntTuple outputSize) =>
        Adaptive("AdaptiveAvgPool1d", 1, input, outputSize, average: true);

    /// <summary>Average pooling to a fixed output size, as <c>F.adaptive_avg_pool2d</c>; <c>AdaptiveAvgPool2d(x, 1)</c> is global average pooling.</summary>
    public static Tensor AdaptiveAvgPool2d(Tensor input, IntTuple outputSize) =>
        Adaptive("AdaptiveAvgPool2d", 2, input, outputSize, average: true);

    /// <summary>Max pooling to a fixed output size; <c>AdaptiveMaxPool2d(x, 1)</c> is global max pooling.</summary>
    public static Tensor AdaptiveMaxPool2d(Tensor input, IntTuple outputSize) =>
        Adaptive("AdaptiveMaxPool2d", 2, input, outputSize, average: false);

    /// <summary>The partial inverse of <see cref="MaxPool2dWithIndices"/>: each value is put at its index in a zero plane of the
    /// output size (by default the size the pooling came from, as <c>F.max_unpool2d</c>).</summary>
    public static Tensor MaxUnpool2d(Tensor input, Tensor indices, IntTuple kernelSize, IntTuple stride = default, IntTuple padding = default, int[]? outputSize = null)
    {
        const string op = "MaxUnpool2d";
        Shape.Equal(op, input, indices, "input and indices");
        if (input.Rank is not (3 or 4)) throw new ArgumentException($"{op}: input must be 3-d or 4-d, got {Shape.Str(input.Dims)}");
        var k = kernelSize.Expand(op, "kernel_size", 2, 1);
        var s = stride.IsDefault ? k : stride.Expand(op, "stride", 2, 1);
        var p = padding.Expand(op, "padding", 2, 0);
        var size = outputSize ?? Enumerable.Range(0, 2).Select(i => (input.Dims[^(2 - i)] - 1) * s[i] - 2 * p[i] + k[i]).ToArray();
        if (size.Length != 2 || size.Any(v => v < 1)) throw new ArgumentException($"{op}: output size {Shape.Str(size)} must be 2 positive ints");
        int plane = size[0] * size[1], inPlane = input.Dims[^1] * input.Dims[^2];
        var idx = indices.ToLongArray();
        var map = new int[idx.Length];
        for (int i = 0; i < idx.Length; i++)
        {
            if (idx[i] < 0 || idx[i] >= plane) throw new ArgumentOutOfRangeException(nameof(indices), $"{op}: index {idx[i]} at position {i} is outside the {size[0]}x{size[1]} output plane");
            map[i] = i / inPlane * plane + (int)idx[i];
        }
        // Overlapping windows can pick one element twice: it is written once (as PyTorch), while the backward still hands
        // every input its element's gradient.
        var seen = new HashSet<int>();
        var once = map.Select(m => seen.Add(m) ? m : -1).ToArray();
        var shape = (int[])[.. input.Dims[..^2], .. size];
        Tensor r;
        using (AutoGrad.NoGrad()) r = PutFlat(input, once, shape);
        return AutoGrad.Record(r, op, Saves.None, g => [TakeFlat(g, map, input.Dims), null], input, indices);
    }

    private static Tensor MaxPool(string op, int nd, Tensor input, IntTuple kernelSize, IntTuple stride, IntTuple padding, IntTuple dilation, bool ceilMode)
    {
        var w = Window.Of(op, nd, kernelSize, stride, padding, dilation);
        var y = MaxValues(input, MaxPoolGeometry(op, nd, input, w, ceilMode));
        return OpTrace.Active
            ? OpTrace.Add("MaxPool", y, [input], ("kernel_shape", w.Kernel), ("strides", w.Stride), ("pads", w.Pads), ("dilations", w.Dilation), ("ceil_mode", ceilMode))
            : y;
    }

    /// <summary>A sliding window's sizes expanded to one per spatial dim (the stride defaulting to the kernel size).</summary>
    private readonly record struct Window(int[] Kernel, int[] Stride, int[] Padding, int[] Dilation)
    {
        public static Window Of(string op, int nd, IntTuple kernelSize, IntTuple stride, IntTuple padding, IntTuple dilation)
        {
            var k = kernelSize.Expand(op, "kernel_size", nd, 1);
            return new(k, stride.IsDefault ? k : stride.Expand(op, "stride", nd, 1), padding.Expand(op, "padding", nd, 0), dilation.Expand(op, "dilation", nd, 1));
        }

        /// <summary>ONNX's pads: every dim's start, then every dim's end.</summary>
        public int[] Pads => [.. Padding, .. Padding];
    }

    private static Tensor Adaptive(string op, int nd, Tensor input, IntTuple outputSize, bool average)
    {
        var size = outputSize.Expand(op, "output_size", nd, 1);
        var g = PoolGeometry.Adaptive(op, nd, input.Dims, size, average);
        var y = average ? WindowAverage(input, g) : MaxValues(input, g);
        return OpTrace.Active ? OpTrace.Add(average ? "AdaptiveAvgPool" : "AdaptiveMaxPool", y, [input], ("output_size", size)) : y;
    }

    private static PoolGeometry MaxPoolGeometry(string op, int nd, Tensor input, Window w, bool ceilMode) =>
        PoolGeometry.Sliding(op, nd, input.Dims, w.Kernel, w.Stride, w.Padding, w.Dilation, ceilMode);

    /// <summary>Max pooling with the Int64 index of each maximum within its plane (as PyTorch's return_indices).</summary>
    private static (Tensor Values, Tensor Indices) WithIndices(Tensor input, PoolGeometry g)
    {
        var (values, map) = WindowMax(input, g);
        var idx = new long[map.Length];
        for (int i = 0; i < map.Length; i++) idx[i] = map[i] < 0 ? -1 : map[i] - (long)(i / g.OutVol) * g.InVol;
        return (values, Tensor.From(idx, g.OutShape));
    }

    private static Tensor AvgPool(string op, int nd, Tensor input, IntTuple kernelSize, IntTuple stride, IntTuple padding, bool ceilMode, bool countIncludePad, int? divisorOverride)
    {
        var w = Window.Of(op, nd, kernelSize, stride, padding, default);
        var y = WindowAverage(input, PoolGeometry.Sliding(op, nd, input.Dims, w.Kernel, w.Stride, w.Padding, w.Dilation, ceilMode,
            average: true, countIncludePad, divisorOverride));
        return OpTrace.Active
            ? OpTrace.Add("AveragePool", y, [input], ("kernel_shape", w.Kernel), ("strides", w.Stride), ("pads", w.Pads), ("ceil_mode", ceilMode),
                ("count_include_pad", countIncludePad), ("divisor_override", divisorOverride ?? 0))
            : y;
    }

    /// <summary>Max over each window; differentiable through <see cref="TakeFlat"/>, so the gradient goes to the chosen element.</summary>
    private static (Tensor Values, int[] Map) WindowMax(Tensor x, PoolGeometry g)
    {
        Shape.Float("MaxPool", x);
        var y = Tensor.Uninitialized(x.DType, g.OutShape);
        var map = x.DType == DType.Float32 ? PoolKernels<float>.ArgMax(g, x.Data<float>(), y.Data<float>())
            : PoolKernels<double>.ArgMax(g, x.Data<double>(), y.Data<double>());
        return (TakeFlat(x, map, g.OutShape, g.Planes, taken: y, tiles: x.DType == DType.Float32 && PoolKernels<float>.Tiles2x2(g) ? g : null), map);
    }

    /// <summary>The window maxima, through <see cref="WindowMax"/> when a gradient will flow to <paramref name="x"/>, else
    /// without their positions (<see cref="PoolKernels{T}.Max"/>: inference needs no argmax).</summary>
    private static Tensor MaxValues(Tensor x, PoolGeometry g)
    {
        if (AutoGrad.IsGradEnabled && x.RequiresGrad) return WindowMax(x, g).Values;
        Shape.Float("MaxPool", x);
        var y = Tensor.Uninitialized(x.DType, g.OutShape);
        if (x.DType == DType.Float32) PoolKernels<float>.Max(g, x.Data<float>(), y.Data<float>());
        else PoolKernels<double>.Max(g, x.Data<double>(), y.Data<double>());
        return y;
    }

    private static Tensor WindowAverage(Tensor x, PoolGeometry g)
    {
        Shape.Float("AvgPool", x);
        var r = Tensor.Uninitialized(x.DType, g.OutShape);
        if (x.DType == DType.Float32) PoolKernels<float>.Average(g, x.Data<float>(), r.Data<float>(), adjoint: false);
        else PoolKernels<double>.Average(g, x.Data<double>(), r.Data<double>(), adjoint: false);
        return AutoGrad.Record(r, "AvgPool", Saves.None, gy => [WindowAverageAdjoint(gy, g)], x);
    }

    private static Tensor WindowAverageAdjoint(Tensor gy, PoolGeometry g)
    {
        var r = Tensor.Zeros(g.InShape, gy.DType);
        if (gy.DType == DType.Float32) PoolKernels<float>.Average(g, r.Data<float>(), gy.Data<float>(), adjoint: true);
        else PoolKernels<double>.Average(g, r.Data<double>(), gy.Data<double>(), adjoint: true);
        return AutoGrad.Record(r, "AvgPoolBackward", Saves.None, gg => [WindowAverage(gg, g)], gy);
    }
}

public static partial class Functional
{
    /// <summary>2-d max pooling for inference of float32 values a convolution kernel left in a layout of channel blocks
    /// (<paramref name="layout"/>, [N][C/b][H][W][b] with b a multiple of the vector width dividing C): windows start at o * stride - lo and
    /// take the in-range positions of kernel x dilation; the output, of spatial size <paramref name="output"/>, is in the same
    /// kind of layout (returned in <paramref name="yLayout"/>), so the reorders to and from NCHW around it are saved. Null
    /// (nothing done) when the layout is not such one.</summary>
    internal static Tensor? MaxPoolBlocked(Tensor x, Dnnl.Layout layout, int[] kernel, int[] stride, int[] dilation, int[] lo, int[] output,
        out Dnnl.Layout? yLayout)
    {
        yLayout = null;
        int[] dims = x.Dims;
        int b = x.DType == DType.Float32 && dims.Length == 4 ? Dnnl.ChannelBlock(layout, dims) : 0;
        if (b == 0 || b % Vector<float>.Count != 0 || dims[1] % b != 0) return null;
        int[] outDims = [dims[0], dims[1], output[0], output[1]];
        yLayout = Dnnl.BlockedLike(layout, dims, outDims);
        var y = Tensor.Uninitialized(DType.Float32, outDims);
        float[] src = x.Data<float>(), dst = y.Data<float>();
        int rows = dims[0] * dims[1] / b * output[0];
        var p = new BlockedPool(dims[2], dims[3], output[0], output[1], b, kernel[0], kernel[1], stride[0], stride[1], dilation[0], dilation[1], lo[0], lo[1]);
        Threads.For(rows, (long)rows * output[1] * b * kernel[0] * kernel[1], r =>
        {
            // Whole 512-bit vectors where the blocks hold them (16 channels on AVX-512): SqueezeNet's three 3x3 stride-2 pools
            // 0.36 -> 0.31 ms (the first reads 3 MB).
            if (Vector512.IsHardwareAccelerated && b % Vector512<float>.Count == 0) p.Row<Vector512<float>, Simd512<float>>(src, dst, r);
            else p.Row<Vector<float>, SimdAny<float>>(src, dst, r);
        });
        return y;
    }
}

/// <summary>The geometry of <see cref="Functional.MaxPoolBlocked"/>: planes h x w of channel blocks of b, outputs ho x wo.</summary>
internal readonly record struct BlockedPool(int H, int W, int Ho, int Wo, int B, int Kh, int Kw, int Sh, int Sw, int Dh, int Dw, int Top, int Left)
{
    /// <summary>Output row <paramref name="r"/> (of all planes' rows) from <paramref name="src"/> into <paramref name="dst"/>.</summary>
    public unsafe void Row<TV, S>(float[] src, float[] dst, int r) where TV : unmanaged where S : ISimd<TV, float>
    {
        int plane = r / Ho, oh = r % Ho, ih0 = oh * Sh - Top;
        // The window's rows (and below its columns) that lie inside the input: the rest is padding, skipped.
        var (kh0, kh1) = Shape.InRange(ih0, Dh, H, Kh);
        fixed (float* ps = src, pd = dst)
        {
            float* from = ps + (long)plane * H * W * B, to = pd + ((long)plane * Ho + oh) * Wo * B;
            var negInf = S.Splat(float.NegativeInfinity);
            for (int ow = 0; ow < Wo; ow++)
            {
                int iw0 = ow * Sw - Left;
                var (kw0, kw1) = Shape.InRange(iw0, Dw, W, Kw);
                for (int v = 0; v < B; v += S.Width)
                {
                    // MaxNative (one vmaxps) keeps the second operand when either is NaN: a NaN found is tracked on the side.
                    TV max = negInf, nan = default;
                    for (int i = kh0; i < kh1; i++)
                    {
                        float* at = from + ((ih0 + i * Dh) * W + iw0) * B + v;
                        for (int j = kw0; j < kw1; j++)
                        {
                            var e = S.Load(at + j * Dw * B);
                            max = S.MaxNative(e, max);
                            nan = S.OrNaN(nan, e);
                        }
                    }
                    S.Store(to + ow * B + v, S.OrNaN(max, nan));   // nan holds all-bits-set (NaN) lanes
                }
            }
        }
    }
}

/// <summary>Window loops over lifted 3-d planes, parallel over planes.</summary>
internal static class PoolKernels<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private static void ForPlanes(PoolGeometry g, Action<int> plane) => ForPlaneRuns(g, (p0, p1) =>
    {
        for (int p = p0; p < p1; p++) plane(p);
    });

    /// <summary>Runs <paramref name="planes"/>(p0, p1) over contiguous runs of planes covering them all, in parallel when the
    /// output has at least 2^14 elements (eight runs per core).</summary>
    private static void ForPlaneRuns(PoolGeometry g, Action<int, int> planes)
    {
        if (g.Planes >= 2 && (long)g.Planes * g.OutVol >= 1 << 14)
            Threads.Ranges(g.Planes, Math.Min(g.Planes, 8 * Environment.ProcessorCount), (_, p0, p1) => planes(p0, p1));
        else planes(0, g.Planes);
    }

    /// <summary>The maximum of each window, as <see cref="ArgMax"/>'s values (NaN if the window holds one, 0 for a window with no
    /// element in range) but without its position. Windows are products of per-dim tap ranges, so each output row is reduced
    /// in two steps: the input rows under its depth and row taps to one row (elementwise maxima, in registers), then that row
    /// over each output's column taps. For sliding windows the row sits between -inf padding, so every output takes all its
    /// taps, at unit stride a vector of outputs at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Max(PoolGeometry g, T[] x, T[] y)
    {
        int in1 = g.In[1], in2 = g.In[2], o1 = g.Out[1], o2 = g.Out[2], step2 = g.Step[2], lanes = Vector<T>.Count;
        int[] start2 = g.Start[2], len2 = g.Len[2];
        int kw = len2[0], sw = o2 > 1 ? start2[1] - start2[0] : 1;
        bool sliding = Enumerable.Range(0, o2).All(ow => start2[ow] == start2[0] + ow * sw && len2[ow] == kw);
        // The padded row: padL of -inf, the row, then -inf up to the furthest read (vector reads of the last outputs included,
        // and at stride 2 the odd float after the last even one).
        int padL = Math.Max(0, -start2[0]), origin = padL + start2[0];
        int width = sliding ? Math.Max(padL + in2, origin + ((o2 + lanes - 1) / lanes * lanes - 1) * sw + (kw - 1) * step2 + 2) : in2;
        // Otherwise each output's column taps clipped to the row, once for all planes.
        var cols = new (int Lo, int Hi)[sliding ? 0 : o2];
        for (int ow = 0; ow < cols.Length; ow++) cols[ow] = Shape.InRange(start2[ow], step2, in2, len2[ow]);
        ForPlanes(g, p =>
        {
            var buf = ArrayPool<T>.Shared.Rent(width);
            var rows = ArrayPool<int>.Shared.Rent(g.In[0] * in1);
            try
            {
                buf.AsSpan(0, width).Fill(T.NegativeInfinity);
                var row = sliding ? buf.AsSpan(padL, in2) : buf.AsSpan(0, in2);
                for (int od = 0; od < g.Out[0]; od++)
                    for (int oh = 0; oh < o1; oh++)
                    {
                        var dst = y.AsSpan(p * g.OutVol + (od * o1 + oh) * o2, o2);
                        var (d0, d1) = Shape.InRange(g.Start[0][od], g.Step[0], g.In[0], g.Len[0][od]);
                        var (r0, r1) = Shape.InRange(g.Start[1][oh], g.Step[1], in1, g.Len[1][oh]);
                        int taps = 0;
                        for (int td = d0; td < d1; td++)
                            for (int tr = r0; tr < r1; tr++)
                                rows[taps++] = p * g.InVol + ((g.Start[0][od] + td * g.Step[0]) * in1 + g.Start[1][oh] + tr * g.Step[1]) * in2;
                        if (taps == 0) { dst.Clear(); continue; }
                        RowsMax(x, rows.AsSpan(0, taps), row);
                        if (sliding) SlidingMax(buf, origin, sw, kw, step2, dst);
                        else
                            for (int ow = 0; ow < o2; ow++)
                            {
                                var (c0, c1) = cols[ow];
                                T m = c0 < c1 ? row[start2[ow] + c0 * step2] : T.Zero;
                                for (int c = c0 + 1; c < c1; c++) m = Max1(m, row[start2[ow] + c * step2]);
                                dst[ow] = m;
                            }
                    }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(buf);
                ArrayPool<int>.Shared.Return(rows);
            }
        });
    }

    /// <summary>row = the elementwise maximum of the input rows starting at <paramref name="rows"/>.</summary>
    private static void RowsMax(T[] x, ReadOnlySpan<int> rows, Span<T> row)
    {
        int i = 0, n = row.Length, lanes = Vector<T>.Count;
        ref var x0 = ref MemoryMarshal.GetArrayDataReference(x);
        ref var r0 = ref MemoryMarshal.GetReference(row);
        for (; i + lanes <= n; i += lanes) RowsMaxBlock(ref x0, rows, ref r0, i);
        // A partial last block is done as the whole block ending at the row's end (its first elements again).
        if (i < n && n >= lanes)
        {
            RowsMaxBlock(ref x0, rows, ref r0, n - lanes);
            i = n;
        }
        for (; i < n; i++)
        {
            T m = x[rows[0] + i];
            for (int t = 1; t < rows.Length; t++) m = Max1(m, x[rows[t] + i]);
            row[i] = m;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RowsMaxBlock(ref T x0, ReadOnlySpan<int> rows, ref T r0, int i)
    {
        var m = Vector.LoadUnsafe(ref x0, (nuint)(rows[0] + i));
        for (int t = 1; t < rows.Length; t++) m = Vector.Max(m, Vector.LoadUnsafe(ref x0, (nuint)(rows[t] + i)));
        m.StoreUnsafe(ref r0, (nuint)i);
    }

    /// <summary>dst[o] = the maximum of buf[origin + o * stride + c * step] over c &lt; k; buf holds every such element.</summary>
    private static void SlidingMax(T[] buf, int origin, int stride, int k, int step, Span<T> dst)
    {
        int o = 0, lanes = Vector<T>.Count;
        ref var b0 = ref MemoryMarshal.GetArrayDataReference(buf);
        if (stride == 1 && dst.Length >= lanes)
        {
            ref var d0 = ref MemoryMarshal.GetReference(dst);
            for (; o + lanes <= dst.Length; o += lanes) SlidingMaxBlock(ref b0, origin, k, step, ref d0, o);
            // A partial last block overlaps the one before.
            if (o < dst.Length) SlidingMaxBlock(ref b0, origin, k, step, ref d0, dst.Length - lanes);
            o = dst.Length;
        }
        else if (stride == 2 && typeof(T) == typeof(float) && Avx2.IsSupported && dst.Length >= 8)
        {
            ref var f0 = ref Unsafe.As<T, float>(ref b0);
            ref var d0 = ref Unsafe.As<T, float>(ref MemoryMarshal.GetReference(dst));
            for (; o + 8 <= dst.Length; o += 8) Stride2MaxBlock(ref f0, origin, k, step, ref d0, o);
            if (o < dst.Length) Stride2MaxBlock(ref f0, origin, k, step, ref d0, dst.Length - 8);
            o = dst.Length;
        }
        for (; o < dst.Length; o++)
        {
            int at = origin + o * stride;
            T m = buf[at];
            for (int c = 1; c < k; c++) m = Max1(m, buf[at + c * step]);
            dst[o] = m;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SlidingMaxBlock(ref T b0, int origin, int k, int step, ref T d0, int o)
    {
        var m = Vector.LoadUnsafe(ref b0, (nuint)(origin + o));
        for (int c = 1; c < k; c++) m = Vector.Max(m, Vector.LoadUnsafe(ref b0, (nuint)(origin + o + c * step)));
        m.StoreUnsafe(ref d0, (nuint)o);
    }

    /// <summary>Eight outputs of <see cref="SlidingMax"/> at stride 2: each window element is the even floats of two loads.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Stride2MaxBlock(ref float b0, int origin, int k, int step, ref float d0, int o)
    {
        var m = Evens(ref Unsafe.Add(ref b0, origin + 2 * o));
        for (int c = 1; c < k; c++) m = Vector256.Max(m, Evens(ref Unsafe.Add(ref b0, origin + 2 * o + c * step)));
        m.StoreUnsafe(ref d0, (nuint)o);
    }

    /// <summary>p[0], p[2], ..., p[14] (AVX2: a shuffle of two loads and a lane permute).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Evens(ref float p) =>
        Avx2.Permute4x64(Avx.Shuffle(Vector256.LoadUnsafe(ref p), Vector256.LoadUnsafe(ref p, 8), 0b10_00_10_00).AsDouble(), 0b11_01_10_00).AsSingle();

    /// <summary>T.Max (NaN wins) without its branches, which mispredict half the time on random data.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static T Max1(T a, T b) => Vector128.Max(Vector128.CreateScalarUnsafe(a), Vector128.CreateScalarUnsafe(b)).ToScalar();

    /// <summary>For each output, the flat input offset of the first maximal (or first NaN) element of its window (-1 for a
    /// window with no element in range), and that element in <paramref name="values"/> (0 for none).</summary>
    public static int[] ArgMax(PoolGeometry g, T[] x, T[] values)
    {
        var map = GC.AllocateUninitializedArray<int>(g.Planes * g.OutVol);
        if (RegularRows(g, out int sh, out int sw))
        {
            ForPlaneRuns(g, (p0, p1) => ArgMaxRows(g, sh, sw, x, map, values, p0, p1));
            return map;
        }
        // Each window's columns clipped to the row, once for all planes.
        var cols = new (int Lo, int Hi)[g.Out[2]];
        for (int ow = 0; ow < cols.Length; ow++) cols[ow] = Shape.InRange(g.Start[2][ow], g.Step[2], g.In[2], g.Len[2][ow]);
        ForPlanes(g, p => ArgMaxPlane(g, cols, x, map, values, p));
        return map;
    }

    /// <summary>Whether <paramref name="g"/> pools 2-d planes (one input and one output slice in depth) with <see cref="Regular"/>
    /// windows along both of their dims, which start <paramref name="sh"/> rows and <paramref name="sw"/> columns apart: the
    /// geometries of the row kernels (<see cref="ArgMaxRows"/>, <see cref="Unpool2x2"/>).</summary>
    private static bool RegularRows(PoolGeometry g, out int sh, out int sw)
    {
        (sh, sw) = (0, 0);
        return g.In[0] == 1 && g.Out[0] == 1 && Regular(g, 1, out sh) && Regular(g, 2, out sw);
    }

    /// <summary>Whether the windows along dim <paramref name="d"/> all have the same length, lie inside the input and start
    /// <paramref name="stride"/> apart (sliding pooling without padding or a clipped ceil-mode window).</summary>
    private static bool Regular(PoolGeometry g, int d, out int stride)
    {
        int[] start = g.Start[d], len = g.Len[d];
        stride = start.Length > 1 ? start[1] - start[0] : 1;
        for (int o = 0; o < start.Length; o++)
            if (len[o] != len[0] || start[o] != start[0] + o * stride || start[o] < 0 || start[o] + (len[o] - 1) * g.Step[d] >= g.In[d]) return false;
        return true;
    }

    /// <summary>2-d max pooling with <see cref="Regular"/> windows, one output row at a time. For float, blocks of windows
    /// at a time (sixteen with stride 2, or eight on AVX2 for rows of at most eight; eight with stride 1), writing the
    /// offsets and values of the maxima: each window element in row-major window order is compared
    /// across them (so the first maximum wins). A row's last block may run past its end (rows narrower than a block, like
    /// LeNet's 14 and 5, are one such block): its extra lanes read the rows after it and are stored over the outputs of the
    /// rows after it, which are written later. Only a block that would write past the run of planes (the next run may be
    /// another thread's) copies out just its own lanes, and a row whose blocks would read past the end of the input goes
    /// one window at a time with the running maximum in registers, 2x2 windows unrolled. Everything a row needs is kept
    /// in locals: the per-row bookkeeping (spans, geometry reads) had taken three quarters of the time of LeNet-5's rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ArgMaxRows(PoolGeometry g, int sh, int sw, T[] x, int[] map, T[] values, int p0, int p1)
    {
        int kh = g.Len[1][0], kw = g.Len[2][0], rowStep = g.Step[1] * g.In[2], colStep = g.Step[2], ho = g.Out[1], wo = g.Out[2];
        int inVol = g.InVol, outVol = g.OutVol, rowIn = sh * g.In[2], first = g.Start[1][0] * g.In[2] + g.Start[2][0];
        // Windows per block and floats a block advances.
        int lanes = sw == 2 && (Vector512.IsHardwareAccelerated || wo > 8) ? 16 : 8, span = lanes * sw, rowBlocks = (wo + lanes - 1) / lanes;
        bool vector = sw == 2 ? VectorStride2 : sw == 1 && VectorStride1(wo);
        bool twoByTwo = kh == 2 && kw == 2 && rowStep == g.In[2] && colStep == 1;
        // How far past its first element a row's blocks read (a block reads a span past its furthest window element), and
        // where the run's outputs end.
        long reach = (kh - 1) * rowStep + (kw - 1) * colStep + (long)rowBlocks * span;
        int end = p1 * outVol;
        Span<int> partial = stackalloc int[16];
        Span<float> partialValues = stackalloc float[16];
        var xf = Unsafe.As<T[], float[]>(ref x);
        ref int map0 = ref MemoryMarshal.GetArrayDataReference(map);
        ref float values0 = ref Unsafe.As<T, float>(ref MemoryMarshal.GetArrayDataReference(values));
        for (int p = p0; p < p1; p++)
        {
            int o = p * outVol, row0 = p * inVol + first;
            for (int oh = 0; oh < ho; oh++, o += wo, row0 += rowIn)
            {
                int done = 0;
                if (vector && row0 + reach <= x.Length)
                {
                    for (int j = 0; j < rowBlocks; j++)
                    {
                        int at = o + lanes * j;
                        bool whole = at + lanes <= end;
                        ref int best = ref whole ? ref Unsafe.Add(ref map0, at) : ref MemoryMarshal.GetReference(partial);
                        ref float bestValues = ref whole ? ref Unsafe.Add(ref values0, at) : ref MemoryMarshal.GetReference(partialValues);
                        if (lanes == 16) Sixteen(xf, row0 + span * j, kh, kw, rowStep, colStep, ref best, ref bestValues);
                        else EightInto(xf, row0 + span * j, sw, kh, kw, rowStep, colStep, ref best, ref bestValues);
                        // An element loop: a span copy is a call to memmove, which took a fifth of the time of rows this narrow.
                        if (!whole)
                            for (int i = 0, n = Math.Min(lanes, wo - lanes * j); i < n; i++)
                            {
                                map[at + i] = partial[i];
                                values[at + i] = T.CreateTruncating(partialValues[i]);
                            }
                    }
                    done = wo;
                }
                for (int ow = done; ow < wo; ow++)
                {
                    int i0 = row0 + ow * sw, bi = i0;
                    T bv = x[i0];
                    if (twoByTwo)
                    {
                        Take(x, i0 + 1, ref bv, ref bi);
                        Take(x, i0 + rowStep, ref bv, ref bi);
                        Take(x, i0 + rowStep + 1, ref bv, ref bi);
                    }
                    else
                        for (int b = 0; b < kh; b++)
                            for (int c = b == 0 ? 1 : 0; c < kw; c++) Take(x, i0 + b * rowStep + c * colStep, ref bv, ref bi);
                    map[o + ow] = bi;
                    values[o + ow] = bv;
                }
            }
        }
    }

    /// <summary>Whether the windows of <paramref name="g"/> are 2x2 at stride 2 from the planes' corner, without dilation, at
    /// least four to a row (LeNet-5's and VGG's pools), and AVX2 runs <see cref="Unpool2x2"/>: each input element then lies
    /// in at most one window.</summary>
    public static bool Tiles2x2(PoolGeometry g) => Avx2.IsSupported && g.Out[2] >= 4 && RegularRows(g, out int sh, out int sw) && sh == 2
        && sw == 2 && g.Len[1][0] == 2 && g.Len[2][0] == 2 && g.Step[1] == 1 && g.Step[2] == 1 && g.Start[1][0] == 0 && g.Start[2][0] == 0;

    /// <summary>The adjoint of the argmax <paramref name="map"/> of a <see cref="Tiles2x2"/> pooling over planes p0..p1, written
    /// densely: each input element is its window's gradient where it is the window's maximum, else 0 (so are the last row
    /// and column of an odd-sized plane, in no window). Four windows at a time: their offsets and gradients each spread
    /// over two lanes, compared against the offsets of the eight elements below them in each of the two rows (a row's
    /// last four windows may be done twice). LeNet-5's 64x6x28x28 pool: zeroing the planes and adding each gradient at its
    /// offset wrote 1.2 MB twice.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Unpool2x2(PoolGeometry g, int[] map, float[] src, float[] dst, int p0, int p1)
    {
        int h = g.In[1], w = g.In[2], ho = g.Out[1], wo = g.Out[2], inVol = g.InVol, outVol = g.OutVol;
        var pairs = Vector256.Create(0, 0, 1, 1, 2, 2, 3, 3);
        var lanes = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
        ref int m0 = ref MemoryMarshal.GetArrayDataReference(map);
        ref float s0 = ref MemoryMarshal.GetArrayDataReference(src);
        ref float d0 = ref MemoryMarshal.GetArrayDataReference(dst);
        for (int p = p0; p < p1; p++)
        {
            for (int oh = 0; oh < ho; oh++)
            {
                int o = p * outVol + oh * wo, row = p * inVol + 2 * oh * w;
                for (int j = 0; j < wo; j += 4)
                {
                    int at = Math.Min(j, wo - 4), e = row + 2 * at;
                    var m = Avx2.PermuteVar8x32(Vector128.LoadUnsafe(ref m0, (nuint)(o + at)).ToVector256Unsafe(), pairs);
                    var v = Avx2.PermuteVar8x32(Vector128.LoadUnsafe(ref s0, (nuint)(o + at)).ToVector256Unsafe(), pairs);
                    var top = lanes + Vector256.Create(e);
                    (Vector256.Equals(m, top).AsSingle() & v).StoreUnsafe(ref d0, (nuint)e);
                    (Vector256.Equals(m, top + Vector256.Create(w)).AsSingle() & v).StoreUnsafe(ref d0, (nuint)(e + w));
                }
                if (w > 2 * wo)
                {
                    dst[row + w - 1] = 0;
                    dst[row + 2 * w - 1] = 0;
                }
            }
            if (h > 2 * ho) Array.Clear(dst, p * inVol + 2 * ho * w, (h - 2 * ho) * w);
        }
    }

    /// <summary>Moves the running maximum to x[i] if it is larger, or the first NaN: !(v &lt;= best) while best is not NaN.
    /// Branch-free, because on random data the comparison is a coin flip: the index moves by a masked difference (the JIT
    /// compiles a select on this condition to a branch) and the value is reloaded from it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Take(T[] x, int i, ref T bv, ref int bi)
    {
        int take = Unsafe.BitCast<bool, byte>(!(x[i] <= bv)) & Unsafe.BitCast<bool, byte>(!T.IsNaN(bv));
        bi += (i - bi) & -take;
        bv = x[bi];
    }

    /// <summary>Whether stride-2 windows take the vector path: with 512-bit vectors (measured 580 -> 170 us for LeNet-5's
    /// narrow rows) or AVX2 (LeNet-5's 64x6x28x28: 600 -> 310 us; 32x64x32x32: 2.0 -> 1.3 ms; once rows narrower than a block
    /// no longer copied their lanes out with a span copy, a call to memmove that had made them slower than the scalar loop).</summary>
    private static bool VectorStride2 => typeof(T) == typeof(float) && (Vector512.IsHardwareAccelerated || Avx2.IsSupported);

    /// <summary>Whether rows of <paramref name="windows"/> stride-1 windows take the vector path (AVX2, eight windows a block:
    /// GoogLeNet's 3x3 pools over 192x28x28 and 480x14x14 measured 3.5 -> 0.55 ms and 1.7 -> 0.25 ms).</summary>
    private static bool VectorStride1(int windows) => typeof(T) == typeof(float) && Avx2.IsSupported && windows >= 8;

    /// <summary>The first maxima of sixteen windows starting 2 apart at x[at], their offsets written to <paramref name="best"/>
    /// and their values to <paramref name="values"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Sixteen(float[] x, int at, int kh, int kw, int rowStep, int colStep, ref int best, ref float values)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            var (index, value) = Stride2(x, at, kh, kw, rowStep, colStep);
            index.StoreUnsafe(ref best);
            value.StoreUnsafe(ref values);
        }
        else
        {
            EightInto(x, at, 2, kh, kw, rowStep, colStep, ref best, ref values);
            EightInto(x, at + 16, 2, kh, kw, rowStep, colStep, ref Unsafe.Add(ref best, 8), ref Unsafe.Add(ref values, 8));
        }
    }

    /// <summary><see cref="Eight"/>, its offsets written to <paramref name="best"/> and its values to <paramref name="values"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void EightInto(float[] x, int at, int stride, int kh, int kw, int rowStep, int colStep, ref int best, ref float values)
    {
        var (index, value) = Eight(x, at, stride, kh, kw, rowStep, colStep);
        index.StoreUnsafe(ref best);
        value.StoreUnsafe(ref values);
    }

    /// <summary>As <see cref="Stride2"/> for eight windows starting <paramref name="stride"/> (1 or 2) apart, with AVX2: a
    /// window element of the eight is one 8-float load (stride 1) or the even floats of two (stride 2, by a shuffle and a
    /// lane permute); it is taken where it is not at most the running maximum (or is NaN) and that maximum is not NaN,
    /// blended into the running maxima and offsets.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<int> Index, Vector256<float> Value) Eight(float[] x, int at, int stride, int kh, int kw, int rowStep, int colStep)
    {
        var offsets = stride == 1 ? Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7) : Vector256.Create(0, 2, 4, 6, 8, 10, 12, 14);
        var bv = Vector256.Create(float.NegativeInfinity);
        var bi = (offsets + Vector256.Create(at)).AsSingle();
        ref var x0 = ref MemoryMarshal.GetArrayDataReference(x);
        for (int b = 0; b < kh; b++)
            for (int c = 0; c < kw; c++)
            {
                int e = at + b * rowStep + c * colStep;
                ref var p = ref Unsafe.Add(ref x0, e);
                var v = stride == 1 ? Vector256.LoadUnsafe(ref p) : Evens(ref p);
                var take = Avx.And(Avx.Compare(v, bv, FloatComparisonMode.UnorderedNotLessThanOrEqualNonSignaling),
                    Avx.Compare(bv, bv, FloatComparisonMode.OrderedNonSignaling));
                bv = Avx.BlendVariable(bv, v, take);
                bi = Avx.BlendVariable(bi, (offsets + Vector256.Create(e)).AsSingle(), take);
            }
        return (bi.AsInt32(), bv);
    }

    /// <summary>The first maximum of sixteen windows of <see cref="ArgMaxRows"/> starting 2 apart at x[at]: each window element
    /// in row-major order compared across them, the running maxima and their offsets in registers. 32 consecutive floats
    /// read as 64-bit lanes and narrowed to their low halves are the even ones.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<int> Index, Vector512<float> Value) Stride2(float[] x, int at, int kh, int kw, int rowStep, int colStep)
    {
        var offsets = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        // Below every value, so the first element is taken unless it is -inf, which then stays chosen as first.
        var bv = Vector512.Create(float.NegativeInfinity);
        var bi = offsets + Vector512.Create(at);
        ref var x0 = ref MemoryMarshal.GetArrayDataReference(x);
        for (int b = 0; b < kh; b++)
            for (int c = 0; c < kw; c++)
            {
                int e = at + b * rowStep + c * colStep;
                ref var lo = ref Unsafe.As<float, ulong>(ref Unsafe.Add(ref x0, e));
                var v = Vector512.Narrow(Vector512.LoadUnsafe(ref lo), Vector512.LoadUnsafe(ref lo, 8)).AsSingle();
                var take = ~(Vector512.LessThanOrEqual(v, bv) | ~Vector512.Equals(bv, bv));
                bv = Vector512.ConditionalSelect(take, v, bv);
                bi = Vector512.ConditionalSelect(take.AsInt32(), offsets + Vector512.Create(e), bi);
            }
        return (bi, bv);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ArgMaxPlane(PoolGeometry g, (int Lo, int Hi)[] cols, T[] x, int[] map, T[] values, int p)
    {
        // The geometry's arrays in locals keep the inner loop to a load and a compare.
        int[] s0 = g.Start[0], l0 = g.Len[0], s1 = g.Start[1], l1 = g.Len[1], s2 = g.Start[2];
        int d0 = g.Step[0], d1 = g.Step[1], d2 = g.Step[2], in0 = g.In[0], in1 = g.In[1], in2 = g.In[2];
        int inBase = p * g.InVol, o = p * g.OutVol, out2 = g.Out[2];
        bool vector = VectorStride2;
        for (int od = 0; od < g.Out[0]; od++)
            for (int oh = 0; oh < g.Out[1]; oh++)
            {
                // Window rows all inside the input (padding only at the sides, or none): sixteen windows starting 2 apart
                // and wholly inside go through the vector kernel of the regular case.
                int kh = l1[oh];
                bool rowsInside = vector && l0[od] == 1 && (uint)s0[od] < (uint)in0 && s1[oh] >= 0 && s1[oh] + (kh - 1) * d1 < in1;
                for (int ow = 0; ow < out2; ow++, o++)
                {
                    if (rowsInside && ow + 16 <= out2 && s2[ow + 15] == s2[ow] + 30 && cols[ow] == (0, g.Len[2][ow]) && cols[ow + 15] == (0, g.Len[2][ow]))
                    {
                        int kw = g.Len[2][ow], e = inBase + (s0[od] * in1 + s1[oh]) * in2 + s2[ow];
                        if ((long)e + (kh - 1) * d1 * in2 + (kw - 1) * d2 + 32 <= x.Length)
                        {
                            Sixteen(Unsafe.As<T[], float[]>(ref x), e, kh, kw, d1 * in2, d2, ref map[o], ref Unsafe.As<T, float>(ref values[o]));
                            ow += 15;
                            o += 15;
                            continue;
                        }
                    }
                    var (c0, c1) = cols[ow];
                    // best starts at the window's first element with bestV below everything, so "first maximal" needs no
                    // special first step; the update is branch-free because on random data the comparison is a coin flip.
                    int best = -1;
                    T bestV = T.NegativeInfinity;
                    for (int a = 0; a < l0[od]; a++)
                    {
                        int id = s0[od] + a * d0;
                        if ((uint)id >= (uint)in0) continue;
                        for (int b = 0; b < l1[oh]; b++)
                        {
                            int ih = s1[oh] + b * d1;
                            if ((uint)ih >= (uint)in1 || c1 <= c0) continue;
                            int row = inBase + (id * in1 + ih) * in2 + s2[ow];
                            if (best < 0) best = row + c0 * d2;
                            for (int c = c0; c < c1; c++)
                            {
                                T v = x[row + c * d2];
                                bool take = (v > bestV) | (T.IsNaN(v) & !T.IsNaN(bestV));
                                best = take ? row + c * d2 : best;
                                bestV = take ? v : bestV;
                            }
                        }
                    }
                    map[o] = best;
                    values[o] = best < 0 ? T.Zero : bestV;
                }
            }
    }

    /// <summary>y = window sums / divisor; with <paramref name="adjoint"/>, x += y / divisor spread over each window instead.</summary>
    public static void Average(PoolGeometry g, T[] x, T[] y, bool adjoint)
    {
        ForPlanes(g, p =>
        {
            int inBase = p * g.InVol, o = p * g.OutVol;
            for (int od = 0; od < g.Out[0]; od++)
                for (int oh = 0; oh < g.Out[1]; oh++)
                    for (int ow = 0; ow < g.Out[2]; ow++, o++)
                    {
                        double div = g.DivisorOverride ?? g.Div![0][od] * g.Div[1][oh] * g.Div[2][ow];
                        T scale = T.CreateTruncating(1 / div), sum = T.Zero, share = adjoint ? y[o] * scale : T.Zero;
                        for (int a = 0; a < g.Len[0][od]; a++)
                        {
                            int id = g.Start[0][od] + a;
                            if ((uint)id >= (uint)g.In[0]) continue;
                            for (int b = 0; b < g.Len[1][oh]; b++)
                            {
                                int ih = g.Start[1][oh] + b;
                                if ((uint)ih >= (uint)g.In[1]) continue;
                                int row = inBase + (id * g.In[1] + ih) * g.In[2];
                                int c0 = Math.Max(0, -g.Start[2][ow]), c1 = Math.Min(g.Len[2][ow], g.In[2] - g.Start[2][ow]);
                                for (int c = c0; c < c1; c++)
                                    if (adjoint) x[row + g.Start[2][ow] + c] += share; else sum += x[row + g.Start[2][ow] + c];
                            }
                        }
                        if (!adjoint) y[o] = sum * scale;
                    }
        });
    }
}
