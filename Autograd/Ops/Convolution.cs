using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Diagnostics.CodeAnalysis;
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

    /// <summary>A 1-d to 3-d convolution run for inference as <paramref name="how"/> says (a residual added and its ReLU
    /// fused, its input in a kernel layout, its output kept in one or written into a larger tensor: see
    /// <see cref="ConvInference"/>). When a gradient is recorded or a trace is active the ops run as usual instead (conv,
    /// add, relu). Used by imported ONNX models.</summary>
    internal static Tensor ConvFused(int nd, Tensor input, Tensor weight, Tensor? bias, IntTuple stride, Padding padding, IntTuple dilation, int groups,
        ConvInference how)
    {
        string op = $"Conv{nd}d";
        bool recorded = AutoGrad.IsGradEnabled && (input.RequiresGrad || weight.RequiresGrad || bias?.RequiresGrad == true);
        if (!recorded && !OpTrace.Active) return Conv(op, nd, input, weight, bias, stride, padding, dilation, groups, how);
        var y = Conv(op, nd, how.Input != null ? Plain(input, how.Input) : input, weight, bias, stride, padding, dilation, groups);
        if (how.Add != null) y += how.AddLayout != null ? Plain(how.Add, how.AddLayout) : how.Add;
        return how.Relu ? Relu(y) : y;
    }

    /// <summary>Brings the <paramref name="size"/> values of <paramref name="t"/> from <paramref name="offset"/> on, which a
    /// convolution kernel wrote in <paramref name="layout"/>, back to NCHW in place.</summary>
    internal static void PlainInPlace(Tensor t, int offset, int size, Dnnl.Layout layout)
    {
        var data = t.Data<float>();
        var plain = new float[size];
        Dnnl.ToPlain(layout, data[offset..(offset + size)], plain);
        plain.CopyTo(data, offset);
    }

    /// <summary>A copy in NCHW of values a convolution kernel left in its own layout.</summary>
    internal static Tensor Plain(Tensor blocked, Dnnl.Layout layout)
    {
        var plain = Tensor.Uninitialized(DType.Float32, blocked.Dims);
        Dnnl.ToPlain(layout, blocked.Data<float>(), plain.Data<float>());
        return plain;
    }

    private static Tensor Conv(string op, int nd, Tensor input, Tensor weight, Tensor? bias, IntTuple stride, Padding padding, IntTuple dilation, int groups,
        ConvInference? how = null)
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
        CheckBias(op, input, bias, g.Cout);
        var y = how == null ? ConvForward(x, weight, g, bias) : Inference(g, x, weight, bias, how);
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
        if (p.Any(v => v < 0)) throw new ArgumentException($"{op}: padding must be non-negative, got {Shape.Str(p)}");
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
        CheckBias(op, input, bias, g.Cin);
        var y = ConvAdjoint(x, weight, g, bias);
        if (OpTrace.Active)
            OpTrace.Add("ConvTranspose", y, [x, weight, bias], ("strides", s), ("pads", (int[])[.. p, .. p]), ("output_padding", op_), ("dilations", d), ("group", groups));
        return unbatched ? y.Squeeze(0) : y;
    }

    private static void CheckBias(string op, Tensor input, Tensor? bias, int channels)
    {
        if (bias == null) return;
        Shape.SameDType(op, input, bias);
        if (bias.Rank != 1 || bias.Dims[0] != channels)
            throw new ArgumentException($"{op}: bias must have shape [{channels}], got {Shape.Str(bias.Dims)}");
    }

    /// <summary>Adds bias [C] to every plane of y [N, C, *spatial] in place (y is the op's fresh result), saving the
    /// separate broadcast add and its result.</summary>
    private static void AddBiasInPlace(Tensor y, Tensor bias)
    {
        int n = y.Dims[0], c = y.Dims[1], plane = y.Numel / Math.Max(1, n * c);
        if (y.DType == DType.Float32) Planes(y.Data<float>(), bias.Data<float>());
        else Planes(y.Data<double>(), bias.Data<double>());

        void Planes<T>(T[] yv, T[] b) where T : unmanaged, IFloatingPointIeee754<T>
        {
            for (int i = 0; i < n * c; i++)
            {
                var row = yv.AsSpan(i * plane, plane);
                System.Numerics.Tensors.TensorPrimitives.Add(row, b[i % c], row);
            }
        }
    }

    /// <summary>The bias gradient: gy [N, C, *spatial] summed over everything but the channels.</summary>
    private static Tensor BiasGrad(Tensor gy) => Sum(Sum(gy.Reshape(gy.Dims[0], gy.Dims[1], -1), 2), 0);

    // Three bilinear ops close the convolution under differentiation, so grad-of-grad works:
    //   ConvForward(x, w)   = conv(x, w)
    //   ConvAdjoint(u, w)   = the adjoint of conv(., w) applied to u           (transposed conv)
    //   ConvWeight(x, u)    = d/dw <u, conv(x, w)>                             (weight gradient)
    // Each one's derivative is written with the other two.

    // A bias of the conv (or transposed conv) is added to its fresh result in place, and its gradient is the output
    // gradient summed per channel.

    private static Tensor ConvForward(Tensor x, Tensor w, ConvGeometry g, Tensor? b = null)
    {
        var y = Compute(ConvPass.Forward, g, g.OutShape, x, w, b);
        return AutoGrad.Record(y, "Conv", gy =>
        {
            using var shared = Dnnl.SharingOutputGradient();
            return [x.RequiresGrad ? ConvAdjoint(gy, w, g) : null, w.RequiresGrad ? ConvWeight(x, gy, g) : null,
                .. b == null ? (Tensor?[])[] : [b.RequiresGrad ? BiasGrad(gy) : null]];
        }, b == null ? [x, w] : [x, w, b]);
    }

    private static Tensor ConvAdjoint(Tensor u, Tensor w, ConvGeometry g, Tensor? b = null)
    {
        var x = Compute(ConvPass.Adjoint, g, g.InShape, u, w, b);
        return AutoGrad.Record(x, "ConvTranspose", gx => [u.RequiresGrad ? ConvForward(gx, w, g) : null, w.RequiresGrad ? ConvWeight(gx, u, g) : null,
            .. b == null ? (Tensor?[])[] : [b.RequiresGrad ? BiasGrad(gx) : null]], b == null ? [u, w] : [u, w, b]);
    }

    /// <summary>The forward pass of <see cref="ConvFused"/>: through <see cref="Dnnl.Forward"/> when oneDNN runs the geometry
    /// and takes the input's layout, else as <see cref="Compute"/> on the input in NCHW.</summary>
    private static Tensor Inference(ConvGeometry g, Tensor x, Tensor w, Tensor? bias, ConvInference how)
    {
        bool addInPlace = how.Add == null || Shape.Same(how.Add.Dims, g.OutShape);
        var into = addInPlace ? how.Into?.Invoke(g.OutShape) : null;
        var add = how.Add;
        var addLayout = how.AddLayout;
        if (Native(g, x.DType) && addInPlace)
        {
            var y = into?.Target ?? Tensor.Uninitialized(DType.Float32, g.OutShape);
            // An addend in another layout than the kernel writes is brought back to NCHW and the kernel asked again.
            for (int attempt = 0; attempt < 2; attempt++)
            {
                if (Dnnl.Forward(g, x.Data<float>(), how.Input, w.Data<float>(), bias?.Data<float>(), add?.Data<float>(), addLayout, y.Data<float>(),
                    into?.Offset ?? 0, how.Relu, how.KeepLayout, w.IsLeaf ? w.Version : null, out var layout))
                {
                    how.Output = layout;
                    return y;
                }
                if (addLayout == null) break;
                (add, addLayout) = (Plain(add!, addLayout), null);
            }
        }
        if (addLayout != null) add = Plain(add!, addLayout);
        var r = Compute(ConvPass.Forward, g, g.OutShape, how.Input != null ? Plain(x, how.Input) : x, w, bias, how.Relu && add == null);
        if (add != null)
        {
            r = addInPlace ? r.Add_(add) : r + add;   // an addend that broadcasts may make a larger result
            if (how.Relu) r.Relu_();
        }
        if (into is not { } target) return r;
        Array.Copy(r.Storage, 0, target.Target.Storage, target.Offset, r.Numel);
        return target.Target;
    }

    /// <summary>Whether a float32 pass goes to oneDNN: when it is active, except where the direct kernels are faster.</summary>
    private static bool Native(ConvGeometry g, DType dtype) =>
        // The direct kernels below beat oneDNN on stride-1 convs of 1 to 3 input channels (image inputs) on AVX-512: LeNet-5's
        // first layer 1.2-1.7 ms for its three passes against 6.7, a 3-channel 32x32 layer 8.4-9.6 against 11.1-11.3; from 4
        // channels on oneDNN wins (LeNet-5's second layer 1.0 against 1.6). With 256-bit vectors (AVX2, Zen 3) too, since
        // they take three output channels per pass and store rows straight into the result: the 3->64 32x32 layer at batch
        // 32 (its input gradient then on im2col + GEMM) 1.55 against 1.55-1.57 ms forward and 5.2-7.6 against 6.3-10.1 for
        // the three passes, same process.
        dtype == DType.Float32 && Dnnl.Active && !(ConvKernels<float>.Direct(g) && g.Cin <= 3);

    /// <summary>Whether a pass of a 1x1 stride-1 convolution called as a function (not an imported model's chain, which keeps
    /// oneDNN's layouts) runs as MKL GEMMs on the NCHW tensors (<see cref="ConvKernels{T}"/>) rather than on oneDNN, which
    /// reorders activations into channel blocks and back: with at least 64 channels on each side and 14x14 outputs.
    /// Same-process against oneDNN, forward / forward and backward, before the samples were split among the cores
    /// (<see cref="ConvKernels{T}"/>'s SampleRanges): (32,256,14x14) -> 256 6.5-6.6 / 19.4-21.3 ms against 6.4-6.8 / 20.3-23.6; (16,64,56x56) -> 256 14.4-14.9 / 50.1-53.8 against 16.1-16.2 / 53.5-54.3; (16,256,56x56) -> 64
    /// 14.3-15.0 / 48.3-50.2 against 16.7-17.8 / 59.1-62.5. Narrower ones do better on oneDNN: (32,16,56x56) -> 96 forward
    /// 10.6 against 6.8 ms, (8,1024,7x7) -> 256 1.9 against 1.35.</summary>
    internal static bool PointwiseGemm(ConvGeometry g) => g.Pointwise && g.Groups == 1 && g.Cin >= 64 && g.Cout >= 64 && g.OutVol >= 196;

    /// <summary>One pass of the convolution on operands (a, b) into a fresh tensor, plus the bias (and max(0, .) when
    /// <paramref name="relu"/>): float32 by <see cref="Winograd"/> where it runs, else on oneDNN where <see cref="Native"/>
    /// (bias and relu fused into the forward pass) and the conv is not a <see cref="PointwiseGemm"/>, otherwise, and for
    /// float64, on this file's kernels.</summary>
    private static Tensor Compute(ConvPass pass, ConvGeometry g, int[] shape, Tensor a, Tensor b, Tensor? bias, bool relu = false)
    {
        // A leaf weight (a parameter) keeps its reordered copy until its version changes, and in inference (no gradient
        // recorded, outside a backward pass: weights stay as they are) its Winograd transform too. oneDNN's Winograd plans
        // for any size only for a parameter's weights (requiring gradients), which the next calls use again: a weight
        // computed under no_grad is a leaf too, but a new one each call.
        var weightVersion = pass != ConvPass.Weight && b.IsLeaf ? b.Version : null;
        var transformKept = AutoGrad.IsGradEnabled || AutoGrad.InBackward ? null : weightVersion;
        // A depthwise forward pass at stride 1 runs the direct kernel rather than oneDNN, which reorders the activations into
        // channel blocks and back around it: (32,128,28x28) 3x3 2.5-3.0 against 3.2-4.1 ms, same process. Its backward passes
        // stay on oneDNN (13-14 ms for the three passes against 18-20 on the direct kernels on AVX2; 6.8-7.1 against 12 on
        // AVX-512, and the input gradient alone on the direct kernel gained nothing).
        bool winograd = Winograd.Takes(g, a.DType, transformKept != null);
        bool native = !winograd && Native(g, a.DType) && !PointwiseGemm(g) && !(pass == ConvPass.Forward && ConvKernels<float>.DepthwiseSliding(g));
        // Every kernel writes every element of its result, which so needs no zeroing first (for the 1x1 layer of the
        // benchmarks, 6.4 MB, 5-8% of the forward pass; LeNet-5's first layer, 1.2 MB, 2% of its training step).
        var r = Tensor.Uninitialized(a.DType, shape);
        var fused = pass == ConvPass.Forward ? bias : null;
        if (winograd) Winograd.Run(pass, g, a.Data<float>(), b.Data<float>(), r.Data<float>(), transformKept);
        else if (native && Dnnl.Convolution(pass, g, a.Data<float>(), b.Data<float>(), fused?.Data<float>(), r.Data<float>(), weightVersion, relu, inference: transformKept != null && b.RequiresGrad))
        {
            if (fused != null) bias = null;
            relu = false;
        }
        else
        {
            if (a.DType == DType.Float32) ConvKernels<float>.Run(pass, g, a.Data<float>(), b.Data<float>(), r.Data<float>());
            else ConvKernels<double>.Run(pass, g, a.Data<double>(), b.Data<double>(), r.Data<double>());
        }
        if (bias != null) AddBiasInPlace(r, bias);
        if (relu) r.Relu_();
        return r;
    }

    private static Tensor ConvWeight(Tensor x, Tensor u, ConvGeometry g)
    {
        var w = Compute(ConvPass.Weight, g, g.WeightShape, x, u, null);
        return AutoGrad.Record(w, "ConvWeightGrad", gw => [x.RequiresGrad ? ConvAdjoint(u, gw, g) : null, u.RequiresGrad ? ConvForward(x, gw, g) : null], x, u);
    }
}

/// <summary>im2col + GEMM convolution kernels for one dtype. Samples are processed in tiles: the patch matrices of a tile sit
/// side by side in one buffer col [Cg*KVol, tile*OutVol], so each group is one GEMM per tile. Tiles are sized to stay in
/// the core's cache and are shared out among the cores, each running its own tiles (patches, GEMM and all) on one thread;
/// only a batch that makes a single tile parallelizes inside it. For 1x1 stride-1 convs the input itself is the patch matrix.</summary>
internal static class ConvKernels<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    // Patch elements of one tile (512 KB of float patches: a core's L2 with room for the weights and outputs).
    private const long CacheElements = 1 << 17;

    /// <summary>Samples per tile, number of tiles, and how many workers share them out.</summary>
    private static (int Tile, int Tiles, int Workers) Plan(ConvGeometry g)
    {
        long perSample = (long)g.Cg * g.KVol * g.OutVol;
        int cores = Environment.ProcessorCount, perCore = (g.N + cores - 1) / cores;
        int tile = (int)Math.Clamp(Math.Min(CacheElements / perSample, perCore), 1, g.N);
        int tiles = (g.N + tile - 1) / tile;
        return (tile, tiles, Math.Min(tiles, cores));
    }

    /// <summary>One tile of one group as a worker sees it: samples N0..N0+Nb, the worker's buffers, whether this is the first
    /// tile of the worker, and whether loops and GEMMs inside may use other cores (only when there is a single worker).</summary>
    private readonly record struct TileCtx(int N0, int Nb, int Group, T[] Col, T[] Out, int Worker, bool First, bool Inner)
    {
        public int Ld(ConvGeometry g) => Nb * g.OutVol;
    }

    /// <summary>Copies rows [CoutG, OutVol] of the tile's samples of <paramref name="full"/> ([N, Cout, OutVol]) into a
    /// [CoutG, Nb*OutVol] tile, or back when <paramref name="toTile"/> is false.</summary>
    private static void Shuffle(ConvGeometry g, T[] full, T[] tile, TileCtx c, bool toTile)
    {
        int ld = c.Ld(g);
        Threads.For(c.Nb * g.CoutG, c.Inner ? (long)c.Nb * g.CoutG * g.OutVol : 0, i =>
        {
            int s = i / g.CoutG, co = i % g.CoutG;
            var a = full.AsSpan(((c.N0 + s) * g.Cout + c.Group * g.CoutG + co) * g.OutVol, g.OutVol);
            var b = tile.AsSpan(co * ld + s * g.OutVol, g.OutVol);
            if (toTile) a.CopyTo(b); else b.CopyTo(a);
        });
    }

    /// <summary>Computes <paramref name="pass"/> on operands (a, b) into <paramref name="result"/>, writing every element of
    /// it (its contents on entry are garbage).</summary>
    public static void Run(ConvPass pass, ConvGeometry g, T[] a, T[] b, T[] result)
    {
        if (pass == ConvPass.Forward) Forward(g, a, b, result);
        else if (pass == ConvPass.Adjoint) Adjoint(g, a, b, result);
        else Weight(g, a, b, result);
    }

    private static void Forward(ConvGeometry g, T[] x, T[] w, T[] y)
    {
        if (DepthwiseSliding(g)) { DepthwiseDirect(g, x, w, y); return; }
        if (Depthwise(g)) { DepthwiseRun(g, x, w, y, Mode.Forward); return; }
        if (Direct(g)) { DirectRun(g, x, w, y); return; }
        int rows = g.Cg * g.KVol;
        if (g.Pointwise)
        {
            // y[n, group] = W_group [CoutG, Cg] . x[n, group] [Cg, OutVol]: a batch of GEMMs per group over a range of samples.
            SampleRanges(g, (_, n0, n1, serial) =>
            {
                for (int gr = 0; gr < g.Groups; gr++)
                    Backend.Current.Gemm(new GemmSpec(false, false, g.CoutG, g.OutVol, g.Cg, rows, g.OutVol, g.OutVol, n1 - n0, 0, (long)g.Cin * g.InVol, (long)g.Cout * g.OutVol,
                        (long)gr * g.CoutG * rows, ((long)n0 * g.Cin + gr * g.Cg) * g.InVol, ((long)n0 * g.Cout + gr * g.CoutG) * g.OutVol, serial), T.One, w, x, T.Zero, y);
            });
            return;
        }
        Tiles(g, c =>
        {
            int ld = c.Ld(g);
            Im2Col(g, x, c);
            if (c.Nb == 1)
                Backend.Current.Gemm(new GemmSpec(false, false, g.CoutG, g.OutVol, rows, rows, g.OutVol, g.OutVol,
                    OffsetA: (long)c.Group * g.CoutG * rows, OffsetC: ((long)c.N0 * g.Cout + c.Group * g.CoutG) * g.OutVol, Serial: !c.Inner), T.One, w, c.Col, T.Zero, y);
            else
            {
                Backend.Current.Gemm(new GemmSpec(false, false, g.CoutG, ld, rows, rows, ld, ld, OffsetA: (long)c.Group * g.CoutG * rows, Serial: !c.Inner),
                    T.One, w, c.Col, T.Zero, c.Out);
                Shuffle(g, y, c.Out, c, toTile: false);
            }
        });
    }

    private static void Adjoint(ConvGeometry g, T[] u, T[] w, T[] x)
    {
        // The adjoint of a depthwise conv is the depthwise conv with the kernels flipped.
        if (DepthwiseSliding(g) && FlippedAdjoint(g, u, w, x, DepthwiseSliding, DepthwiseDirect)) return;
        if (Depthwise(g)) { DepthwiseRun(g, x, w, u, Mode.Adjoint); return; }
        if (DirectAdjoint(g, u, w, x)) return;
        int rows = g.Cg * g.KVol;
        if (g.Pointwise)
        {
            // x[n, group] = W_group^T [Cg, CoutG] . u[n, group] [CoutG, OutVol].
            SampleRanges(g, (_, n0, n1, serial) =>
            {
                for (int gr = 0; gr < g.Groups; gr++)
                    Backend.Current.Gemm(new GemmSpec(true, false, g.Cg, g.OutVol, g.CoutG, rows, g.OutVol, g.InVol, n1 - n0, 0, (long)g.Cout * g.OutVol, (long)g.Cin * g.InVol,
                        (long)gr * g.CoutG * rows, ((long)n0 * g.Cout + gr * g.CoutG) * g.OutVol, ((long)n0 * g.Cin + gr * g.Cg) * g.InVol, serial), T.One, w, u, T.Zero, x);
            });
            return;
        }
        Array.Clear(x);
        Tiles(g, c =>
        {
            int ld = c.Ld(g);
            Shuffle(g, u, c.Out, c, toTile: true);
            Backend.Current.Gemm(new GemmSpec(true, false, rows, ld, g.CoutG, rows, ld, ld, OffsetA: (long)c.Group * g.CoutG * rows, Serial: !c.Inner),
                T.One, w, c.Out, T.Zero, c.Col);
            Col2Im(g, c.Col, x, c);
        });
    }

    private static void Weight(ConvGeometry g, T[] x, T[] u, T[] w)
    {
        if (Depthwise(g)) { DepthwiseRun(g, x, w, u, Mode.Weight); return; }
        if (Direct(g)) { DirectWeight(g, x, u, w); return; }
        int rows = g.Cg * g.KVol;
        if (g.Pointwise)
        {
            // dW_group (+)= u[n, group] [CoutG, OutVol] . x[n, group]^T, accumulated over each worker's samples.
            SummedOverWorkers(SampleParts(g), w, target => SampleRanges(g, (wk, n0, n1, serial) =>
            {
                for (int n = n0; n < n1; n++)
                    for (int gr = 0; gr < g.Groups; gr++)
                        Backend.Current.Gemm(new GemmSpec(false, true, g.CoutG, rows, g.OutVol, g.OutVol, g.OutVol, rows,
                            OffsetA: ((long)n * g.Cout + gr * g.CoutG) * g.OutVol, OffsetB: ((long)n * g.Cin + gr * g.Cg) * g.InVol, OffsetC: (long)gr * g.CoutG * rows, Serial: serial),
                            T.One, u, x, n == n0 ? T.Zero : T.One, target(wk));
            }));
            return;
        }
        SummedOverWorkers(Plan(g).Workers, w, target => Tiles(g, c =>
        {
            int ld = c.Ld(g);
            Im2Col(g, x, c);
            Shuffle(g, u, c.Out, c, toTile: true);
            // dW_group (+)= u_tile [CoutG, ld] . col^T [ld, rows]
            Backend.Current.Gemm(new GemmSpec(false, true, g.CoutG, rows, ld, ld, ld, rows, OffsetC: (long)c.Group * g.CoutG * rows, Serial: !c.Inner),
                T.One, c.Out, c.Col, c.First ? T.Zero : T.One, target(c.Worker));
        }));
    }

    /// <summary>Runs <paramref name="run"/>, whose workers 0..<paramref name="workers"/>-1 each accumulate into the array
    /// target(worker): worker 0 into <paramref name="w"/> itself, the others into their own partial sums, added to it at the
    /// end in worker order. Every worker must overwrite its whole target first (its first GEMM with beta 0): w and the
    /// rented partial sums hold garbage on entry.</summary>
    private static void SummedOverWorkers(int workers, T[] w, Action<Func<int, T[]>> run)
    {
        var partials = new T[workers - 1][];
        for (int i = 0; i < partials.Length; i++) partials[i] = ArrayPool<T>.Shared.Rent(w.Length);
        try
        {
            run(worker => worker == 0 ? w : partials[worker - 1]);
            foreach (var p in partials) System.Numerics.Tensors.TensorPrimitives.Add(w, p.AsSpan(0, w.Length), w);
        }
        finally
        {
            foreach (var p in partials) ArrayPool<T>.Shared.Return(p);
        }
    }

    /// <summary>How many ranges <see cref="SampleRanges"/> splits the samples into: one per core when there are at least as
    /// many samples and enough work to wake the other cores (<see cref="GemmSpec.SmallNativeWork"/> multiply-adds), else one.</summary>
    internal static int SampleParts(ConvGeometry g) =>
        g.N >= Environment.ProcessorCount && (long)g.N * g.Cout * g.Cg * g.OutVol >= GemmSpec.SmallNativeWork ? Environment.ProcessorCount : 1;

    /// <summary>Runs <paramref name="range"/>(worker, n0, n1, serial) for <see cref="SampleParts"/> contiguous ranges of the
    /// samples in parallel, where serial (more than one range) says that the range's GEMMs run on its own thread; a single
    /// range's GEMMs use every core. The 1x1 (32,256,14x14) -> 256 forward pass, same process: 6.0 ms with a core per range
    /// against 6.2-6.5 with each sample's GEMM on both cores (MKL's serial GEMM runs these 256 x 196 x 256 products at 175
    /// GFLOP/s a core pair, its threaded one at 160-164).</summary>
    private static void SampleRanges(ConvGeometry g, Action<int, int, int, bool> range)
    {
        int parts = SampleParts(g);
        Threads.Ranges(g.N, parts, (worker, n0, n1) => range(worker, n0, n1, parts > 1));
    }

    /// <summary>Runs <paramref name="body"/> for every tile of samples and every group. Each worker takes a contiguous run of
    /// tiles, with a patch buffer [Cg*KVol, tile*OutVol] and an output-side buffer [CoutG, tile*OutVol] rented once.</summary>
    private static void Tiles(ConvGeometry g, Action<TileCtx> body)
    {
        var (tile, tiles, workers) = Plan(g);
        Threads.Ranges(tiles, workers, (wk, t0, t1) =>
        {
            var col = ArrayPool<T>.Shared.Rent(g.Cg * g.KVol * tile * g.OutVol);
            var outTile = ArrayPool<T>.Shared.Rent(g.CoutG * tile * g.OutVol);
            try
            {
                for (int t = t0; t < t1; t++)
                    for (int gr = 0; gr < g.Groups; gr++)
                        body(new TileCtx(t * tile, Math.Min(tile, g.N - t * tile), gr, col, outTile, wk, t == t0, workers == 1));
            }
            finally
            {
                ArrayPool<T>.Shared.Return(col);
                ArrayPool<T>.Shared.Return(outTile);
            }
        });
    }

    /// <summary>Patch matrices of the tile's samples of one group, side by side: row (c, kd, kh, kw), column (sample, od, oh, ow);
    /// zeros where the window lies in the padding.</summary>
    private static void Im2Col(ConvGeometry g, T[] x, TileCtx t)
    {
        int rows = g.Cg * g.KVol, ld = t.Ld(g);
        T[] col = t.Col;
        Threads.For(t.Nb * rows, t.Inner ? (long)t.Nb * rows * g.OutVol : 0, i =>
        {
            int s = i / rows, r = i % rows;
            var (c, kd, kh, kw) = Split(g, r);
            int xOff = ((t.N0 + s) * g.Cin + t.Group * g.Cg + c) * g.InVol;
            var dst = col.AsSpan(r * ld + s * g.OutVol, g.OutVol);
            int iw0 = -g.PadLo[2] + kw * g.Dilation[2], sw = g.Stride[2];
            var (lo, hi) = Shape.InRange(iw0, sw, g.In[2], g.Out[2]);
            int o = 0;
            for (int od = 0; od < g.Out[0]; od++)
            {
                int id = od * g.Stride[0] - g.PadLo[0] + kd * g.Dilation[0];
                for (int oh = 0; oh < g.Out[1]; oh++, o += g.Out[2])
                {
                    int ih = oh * g.Stride[1] - g.PadLo[1] + kh * g.Dilation[1];
                    var seg = dst.Slice(o, g.Out[2]);
                    if ((uint)id >= (uint)g.In[0] || (uint)ih >= (uint)g.In[1] || hi <= lo) { seg.Clear(); continue; }
                    int rowBase = xOff + (id * g.In[1] + ih) * g.In[2] + iw0;
                    seg[..lo].Clear();
                    seg[hi..].Clear();
                    if (sw == 1) x.AsSpan(rowBase + lo, hi - lo).CopyTo(seg[lo..hi]);
                    else for (int ow = lo; ow < hi; ow++) seg[ow] = x[rowBase + ow * sw];
                }
            }
        });
    }

    /// <summary>The adjoint of <see cref="Im2Col"/>: adds every patch entry back to the input position it came from.
    /// Each (sample, channel) pair writes only its own plane, so they run in parallel.</summary>
    private static void Col2Im(ConvGeometry g, T[] col, T[] x, TileCtx t)
    {
        int ld = t.Ld(g);
        Threads.For(t.Nb * g.Cg, t.Inner ? (long)t.Nb * g.Cg * g.KVol * g.OutVol : 0, i =>
        {
            int s = i / g.Cg, c = i % g.Cg;
            int xOff = ((t.N0 + s) * g.Cin + t.Group * g.Cg + c) * g.InVol;
            for (int k = 0; k < g.KVol; k++)
            {
                int r = c * g.KVol + k;
                var (_, kd, kh, kw) = Split(g, r);
                int o = r * ld + s * g.OutVol;
                int iw0 = -g.PadLo[2] + kw * g.Dilation[2], sw = g.Stride[2];
                var (lo, hi) = Shape.InRange(iw0, sw, g.In[2], g.Out[2]);
                for (int od = 0; od < g.Out[0]; od++)
                {
                    int id = od * g.Stride[0] - g.PadLo[0] + kd * g.Dilation[0];
                    for (int oh = 0; oh < g.Out[1]; oh++, o += g.Out[2])
                    {
                        int ih = oh * g.Stride[1] - g.PadLo[1] + kh * g.Dilation[1];
                        if ((uint)id >= (uint)g.In[0] || (uint)ih >= (uint)g.In[1] || hi <= lo) continue;
                        int rowBase = xOff + (id * g.In[1] + ih) * g.In[2] + iw0;
                        if (sw == 1)
                        {
                            var dst = x.AsSpan(rowBase + lo, hi - lo);
                            System.Numerics.Tensors.TensorPrimitives.Add(dst, col.AsSpan(o + lo, hi - lo), dst);
                        }
                        else for (int ow = lo; ow < hi; ow++) x[rowBase + ow * sw] += col[o + ow];
                    }
                }
            }
        });
    }

    // ---------------- direct convolution for few input channels ----------------

    // Up to this many input channels a stride-1 conv runs directly: with so few channels im2col + GEMM spends more time
    // building the patch matrix than multiplying it.
    private const int DirectMaxCin = 16;

    /// <summary>Stride-1, undilated, ungrouped 1-d and 2-d convs with few input channels.</summary>
    internal static bool Direct(ConvGeometry g) => Vector.IsHardwareAccelerated && g.Groups == 1 && g.Cin <= DirectMaxCin
        && g.K[0] == 1 && g.In[0] == 1 && g.PadLo[0] == 0 && g.PadHi[0] == 0 && g.Stride.All(v => v == 1) && g.Dilation.All(v => v == 1);

    /// <summary>The adjoint of a stride-1 conv is the conv of u with the kernel flipped and its channel axes swapped, padded by
    /// K - 1 - padding: done directly when that conv qualifies (u has few channels and the padding is below the kernel size).</summary>
    private static bool DirectAdjoint(ConvGeometry g, T[] u, T[] w, T[] x) => FlippedAdjoint(g, u, w, x, Direct, DirectRun);

    /// <summary>Runs the adjoint of a stride-1, undilated conv as the conv of u with each kernel flipped and, within each group,
    /// its channel axes swapped, padded by K - 1 - padding: by <paramref name="run"/>, when that padding is not negative and
    /// <paramref name="runs"/> takes the adjoint's geometry; false otherwise.</summary>
    private static bool FlippedAdjoint(ConvGeometry g, T[] u, T[] w, T[] x, Func<ConvGeometry, bool> runs, Action<ConvGeometry, T[], T[], T[]> run)
    {
        var a = g.FlippedAdjoint();
        if (a.PadLo.Any(v => v < 0) || a.PadHi.Any(v => v < 0) || !runs(a)) return false;
        int kv = g.KVol, cg = g.Cg, coutG = g.CoutG;
        var flipped = ArrayPool<T>.Shared.Rent(w.Length);
        try
        {
            // w is [Cout, Cg, K] and the adjoint's weight [Cin, CoutG, K], group by group.
            for (int gr = 0; gr < g.Groups; gr++)
                for (int co = 0; co < coutG; co++)
                    for (int ci = 0; ci < cg; ci++)
                        for (int k = 0; k < kv; k++)
                            flipped[((gr * cg + ci) * coutG + co) * kv + kv - 1 - k] = w[((gr * coutG + co) * cg + ci) * kv + k];
            run(a, u, flipped, x);
        }
        finally
        {
            ArrayPool<T>.Shared.Return(flipped);
        }
        return true;
    }

    /// <summary>The zero-padded copy of one sample that the direct kernels read, [Cin, Hp, Wp]. A stride-1 conv is then a 1-d
    /// correlation over each flattened plane: output position p = oh * Wp + ow reads input p + a * Wp + b at tap (a, b), so
    /// whole vectors run across rows (the Wp - Wout positions at the end of each row are computed and thrown away). The
    /// buffer has a tail so that the last vector of the last tap stays inside it.</summary>
    private readonly record struct Padded(int Wp, int PlaneP, int PlaneOut, int Length)
    {
        public static Padded Of(ConvGeometry g, int lanes)
        {
            int wp = g.In[2] + g.PadLo[2] + g.PadHi[2], planeP = (g.In[1] + g.PadLo[1] + g.PadHi[1]) * wp;
            return new(wp, planeP, g.Out[1] * wp, g.Cin * planeP + g.K[2] + 4 * lanes);
        }

        /// <summary>Copies sample n of <paramref name="x"/> into the interior of the buffer at <paramref name="xp"/>; the
        /// padding stays as it was (zero).</summary>
        public unsafe void Load(ConvGeometry g, T* x, int n, T* xp)
        {
            for (int ci = 0; ci < g.Cin; ci++)
                for (int ih = 0; ih < g.In[1]; ih++)
                    Copy(x + (long)((n * g.Cin + ci) * g.In[1] + ih) * g.In[2], xp + ci * PlaneP + (ih + g.PadLo[1]) * Wp + g.PadLo[2], g.In[2]);
        }
    }

    /// <summary>How many contiguous runs of samples the direct kernels split a pass into: one per core unless the whole pass
    /// is too small to be worth waking another thread.</summary>
    private static int DirectWorkers(ConvGeometry g) =>
        (long)g.N * g.Cout * g.OutVol * g.Cin * g.KVol < 1 << 16 ? 1 : Math.Min(g.N, Environment.ProcessorCount);

    private static void DirectRun(ConvGeometry g, T[] x, T[] w, T[] y)
    {
        if (Vector512.IsHardwareAccelerated) DirectRun<Vector512<T>, Simd512<T>>(g, x, w, y);
        else DirectRun<Vector<T>, SimdAny<T>>(g, x, w, y);
    }

    private static void DirectWeight(ConvGeometry g, T[] x, T[] u, T[] w)
    {
        if (Vector512.IsHardwareAccelerated) DirectWeight<Vector512<T>, Simd512<T>>(g, x, u, w);
        else DirectWeight<Vector<T>, SimdAny<T>>(g, x, u, w);
    }

    /// <summary>y = conv(x, w) for a <see cref="Direct"/> geometry: per sample, the <see cref="Padded"/> planes; per three
    /// output channels and output row, chunks of up to four vectors per channel, accumulated one kernel tap at a time (each
    /// loaded input vector feeds the three channels) and stored straight into y. A row's last vector may run past its end,
    /// onto the start of the next row, which is written after it; only past a plane's last row does it go to a scratch
    /// block, of which the row's own outputs are copied out. (Computing whole padded rows and copying each row's valid
    /// columns out had taken a third of LeNet-5's first layer.)</summary>
    private static unsafe void DirectRun<TV, S>(ConvGeometry g, T[] x, T[] w, T[] y) where TV : unmanaged where S : ISimd<TV, T>
    {
        var pd = Padded.Of(g, S.Width);
        int ho = g.Out[1], wo = g.Out[2], lanes = S.Width, chunk = 4 * lanes, plane = ho * wo, weights = g.Cin * g.KVol;
        Threads.Ranges(g.N, DirectWorkers(g), (_, n0, n1) =>
        {
            var xp = ArrayPool<T>.Shared.Rent(pd.Length);
            var scratch = ArrayPool<T>.Shared.Rent(3 * chunk);
            try
            {
                Array.Clear(xp, 0, pd.Length);
                fixed (T* px = xp, pw = w, py = y, ps = scratch, pX = x)
                    for (int n = n0; n < n1; n++)
                    {
                        pd.Load(g, pX, n, px);
                        for (int co = 0; co < g.Cout; co += 3)
                        {
                            int count = Math.Min(3, g.Cout - co);
                            T* yc = py + (long)(n * g.Cout + co) * plane;
                            for (int oh = 0; oh < ho; oh++)
                                for (int ow = 0; ow < wo; ow += chunk)
                                {
                                    int at = oh * wo + ow, nv = Math.Min(4, (wo - ow + lanes - 1) / lanes);
                                    bool past = at + nv * lanes > plane;
                                    DirectChunk<TV, S>(px + oh * pd.Wp + ow, pw + co * weights, count, weights, past ? ps : yc + at,
                                        past ? chunk : plane, g.Cin, pd.PlaneP, pd.Wp, g.K[1], g.K[2], nv);
                                    if (past)
                                        for (int k = 0; k < count; k++) Copy(ps + k * chunk, yc + k * plane + at, wo - ow);
                                }
                        }
                    }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(xp);
                ArrayPool<T>.Shared.Return(scratch);
            }
        });
    }

    /// <summary><paramref name="nv"/> (1-4) output vectors for each of <paramref name="count"/> (1-3) channels, whose weights
    /// start at <paramref name="w"/> and <paramref name="weights"/> apart, at <paramref name="o"/> and
    /// <paramref name="planeOut"/> apart (only those vectors are stored). Twelve accumulators, three broadcast weights and
    /// an input vector fill the sixteen AVX2 registers: with a third channel each input vector loaded feeds twelve
    /// multiply-adds instead of eight (LeNet-5's first layer, in C: 51 -> 69-78 GFLOP/s on one core). A missing channel
    /// repeats the first one's sums, not stored.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void DirectChunk<TV, S>(T* x, T* w, int count, int weights, T* o, int planeOut, int cin, int planeP, int wp, int kh, int kw, int nv)
        where TV : unmanaged where S : ISimd<TV, T>
    {
        int lanes = S.Width, second = count > 1 ? weights : 0, third = count > 2 ? 2 * weights : 0;
        TV a0 = S.Splat(T.Zero), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        for (int ci = 0; ci < cin; ci++)
            for (int a = 0; a < kh; a++)
            {
                T* src = x + ci * planeP + a * wp;
                T* wa = w + (ci * kh + a) * kw;
                for (int b = 0; b < kw; b++)
                {
                    TV wA = S.Splat(wa[b]), wB = S.Splat(wa[b + second]), wC = S.Splat(wa[b + third]);
                    Tap(ref a0, ref b0, ref c0, S.Load(src + b));
                    if (nv < 2) continue;
                    Tap(ref a1, ref b1, ref c1, S.Load(src + b + lanes));
                    if (nv < 3) continue;
                    Tap(ref a2, ref b2, ref c2, S.Load(src + b + 2 * lanes));
                    if (nv < 4) continue;
                    Tap(ref a3, ref b3, ref c3, S.Load(src + b + 3 * lanes));

                    // One input vector times each channel's weight, into that channel's accumulator.
                    [MethodImpl(MethodImplOptions.AggressiveInlining)]
                    void Tap(ref TV a, ref TV b, ref TV c, TV v)
                    {
                        a = S.MulAdd(wA, v, a);
                        b = S.MulAdd(wB, v, b);
                        c = S.MulAdd(wC, v, c);
                    }
                }
            }
        StoreRow<TV, S>(o, nv, a0, a1, a2, a3);
        if (count > 1) StoreRow<TV, S>(o + planeOut, nv, b0, b1, b2, b3);
        if (count > 2) StoreRow<TV, S>(o + 2 * planeOut, nv, c0, c1, c2, c3);
    }

    /// <summary>Stores the first <paramref name="nv"/> (1-4) of a row chunk's vectors at <paramref name="o"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void StoreRow<TV, S>(T* o, int nv, TV v0, TV v1, TV v2, TV v3) where TV : unmanaged where S : ISimd<TV, T>
    {
        S.Store(o, v0);
        if (nv > 1) S.Store(o + S.Width, v1);
        if (nv > 2) S.Store(o + 2 * S.Width, v2);
        if (nv > 3) S.Store(o + 3 * S.Width, v3);
    }

    /// <summary>dW[co, ci, a, b] = sum over samples and output positions of u[n, co, oh, ow] * xpad[n, ci, oh + a, ow + b] for a
    /// <see cref="Direct"/> geometry: per sample and output channel, u's plane is laid out like the flattened output (zeros in
    /// the thrown-away columns), then for each (ci, a) up to four taps b are accumulated over the whole plane at once, into
    /// one vector per weight that is summed across its lanes only at the end. Workers take runs of samples and sum into
    /// their own partial dW, added in worker order at the end.</summary>
    private static unsafe void DirectWeight<TV, S>(ConvGeometry g, T[] x, T[] u, T[] w) where TV : unmanaged where S : ISimd<TV, T>
    {
        var pd = Padded.Of(g, S.Width);
        int kh = g.K[1], kw = g.K[2], ho = g.Out[1], wo = g.Out[2], planeOut = (pd.PlaneOut + S.Width - 1) / S.Width * S.Width;
        // A row's taps in groups of at most six, as even as can be: LeNet-5's five in one group rather than four and a lone
        // one, whose pass over the plane was a chain of dependent adds (LeNet-5's first layer, forward and weight gradient,
        // same process: 0.61-0.65 -> 0.50-0.52 ms).
        int group = (kw + (kw + 5) / 6 - 1) / ((kw + 5) / 6);
        int workers = DirectWorkers(g);
        SummedOverWorkers(workers, w, target => Threads.Ranges(g.N, workers, (wk, n0, n1) =>
        {
            var dst = target(wk);
            var xp = ArrayPool<T>.Shared.Rent(pd.Length);
            var up = ArrayPool<T>.Shared.Rent(2 * planeOut);
            var acc = ArrayPool<T>.Shared.Rent((w.Length + 5) * S.Width);
            try
            {
                Array.Clear(xp, 0, pd.Length);
                Array.Clear(up, 0, 2 * planeOut);
                Array.Clear(acc, 0, (w.Length + 5) * S.Width);
                fixed (T* px = xp, pu = up, pa = acc, pX = x, pU = u)
                {
                    for (int n = n0; n < n1; n++)
                    {
                        pd.Load(g, pX, n, px);
                        for (int co = 0; co < g.Cout; co += 2)
                        {
                            bool pair = co + 1 < g.Cout;
                            for (int k = 0; k < (pair ? 2 : 1); k++)
                                for (int oh = 0; oh < ho; oh++)
                                    Copy(pU + (long)((n * g.Cout + co + k) * ho + oh) * wo, pu + k * planeOut + oh * pd.Wp, wo);
                            for (int ci = 0; ci < g.Cin; ci++)
                                for (int a = 0; a < kh; a++)
                                    for (int b0 = 0; b0 < kw; b0 += group)
                                        WeightTaps<TV, S>(px + ci * pd.PlaneP + a * pd.Wp + b0, pu, planeOut, Math.Min(group, kw - b0),
                                            pa + (((co * g.Cin + ci) * kh + a) * kw + b0) * S.Width, pair ? g.Cin * g.KVol * S.Width : -1);
                        }
                    }
                    for (int i = 0; i < w.Length; i++) dst[i] = S.Sum(S.Load(pa + i * S.Width));
                }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(xp);
                ArrayPool<T>.Shared.Return(up);
                ArrayPool<T>.Shared.Return(acc);
            }
        }));
    }

    /// <summary>For taps b = 0..nb-1 (nb up to 6): acc[b] += the flattened u plane times the input plane shifted by b, lane
    /// by lane (acc holds one vector per tap); and the same for the next output channel (u + planeOut into acc + second)
    /// unless <paramref name="second"/> is -1, each loaded input vector serving both. Twelve accumulators, the two gradient
    /// vectors and an input vector fill the sixteen AVX2 registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void WeightTaps<TV, S>(T* x, T* u, int planeOut, int nb, T* acc, int second) where TV : unmanaged where S : ISimd<TV, T>
    {
        int lanes = S.Width;
        bool pair = second >= 0;
        T* acc2 = pair ? acc + second : acc;
        TV a0 = S.Load(acc), a1 = S.Load(acc + lanes), a2 = S.Load(acc + 2 * lanes), a3 = S.Load(acc + 3 * lanes), a4 = S.Load(acc + 4 * lanes), a5 = S.Load(acc + 5 * lanes);
        TV c0 = S.Load(acc2), c1 = S.Load(acc2 + lanes), c2 = S.Load(acc2 + 2 * lanes), c3 = S.Load(acc2 + 3 * lanes), c4 = S.Load(acc2 + 4 * lanes), c5 = S.Load(acc2 + 5 * lanes);
        T* u2 = pair ? u + planeOut : u;
        for (int p = 0; p < planeOut; p += lanes)
        {
            TV g0 = S.Load(u + p), g1 = S.Load(u2 + p);
            Tap(ref a0, ref c0, S.Load(x + p));
            if (nb < 2) continue;
            Tap(ref a1, ref c1, S.Load(x + p + 1));
            if (nb < 3) continue;
            Tap(ref a2, ref c2, S.Load(x + p + 2));
            if (nb < 4) continue;
            Tap(ref a3, ref c3, S.Load(x + p + 3));
            if (nb < 5) continue;
            Tap(ref a4, ref c4, S.Load(x + p + 4));
            if (nb < 6) continue;
            Tap(ref a5, ref c5, S.Load(x + p + 5));

            // One tap: the input vector times each channel's gradient vector, into the tap's accumulators.
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            void Tap(ref TV a, ref TV c, TV v)
            {
                a = S.MulAdd(g0, v, a);
                c = S.MulAdd(g1, v, c);
            }
        }
        // Stored back whole: the accumulator buffer has room for five vectors past the last weight, and a tap beyond nb
        // is stored unchanged. Without a second channel, c (its own sums again, over acc) is not stored.
        S.Store(acc, a0); S.Store(acc + lanes, a1); S.Store(acc + 2 * lanes, a2); S.Store(acc + 3 * lanes, a3); S.Store(acc + 4 * lanes, a4); S.Store(acc + 5 * lanes, a5);
        if (!pair) return;
        S.Store(acc2, c0); S.Store(acc2 + lanes, c1); S.Store(acc2 + 2 * lanes, c2); S.Store(acc2 + 3 * lanes, c3); S.Store(acc2 + 4 * lanes, c4); S.Store(acc2 + 5 * lanes, c5);
    }

    /// <summary>One input and one output channel per group: a GEMM of a single row would waste the patch matrix, so these run
    /// as direct loops over each (sample, channel) plane, vectorized along the row for stride 1.</summary>
    private static bool Depthwise(ConvGeometry g) => g.Cg == 1 && g.CoutG == 1 && !g.Pointwise;

    /// <summary>A <see cref="Depthwise"/> 1-d or 2-d conv with stride 1 and no dilation, which <see cref="DepthwiseDirect"/> runs.</summary>
    internal static bool DepthwiseSliding(ConvGeometry g) => Vector.IsHardwareAccelerated && Depthwise(g) && g.K[0] == 1 && g.In[0] == 1
        && g.PadLo[0] == 0 && g.PadHi[0] == 0 && g.Stride.All(v => v == 1) && g.Dilation.All(v => v == 1);

    /// <summary>y = conv(x, w) for a <see cref="DepthwiseSliding"/> geometry, each plane on its own: the plane zero-padded
    /// (as <see cref="Padded"/>), output (oh, ow) is the sum over taps (a, b) of w[a, b] * xp[(oh + a) * Wp + ow + b], whole
    /// vectors along each output row stored straight into y as <see cref="DirectRun{TV, S}"/> does. It runs every depthwise
    /// forward pass at stride 1, oneDNN's included (see Functional.Compute): (32,128,28x28) 3x3 forward 11.3 -> 5.7 ms
    /// against the loop-per-tap kernel below, which made a call per row and tap; 2.4-2.9 -> 2.4-2.6 ms once rows no longer
    /// went through a buffer.</summary>
    private static unsafe void DepthwiseDirect(ConvGeometry g, T[] x, T[] w, T[] y)
    {
        int lanes = Vector<T>.Count, chunk = 4 * lanes, kh = g.K[1], kw = g.K[2], kv = kh * kw, hi = g.In[1], wi = g.In[2], ho = g.Out[1], wo = g.Out[2];
        int wp = wi + g.PadLo[2] + g.PadHi[2], planeP = (hi + g.PadLo[1] + g.PadHi[1]) * wp;
        // The padded plane, with a tail for the last row's vectors, and scratch blocks for a plane's last two rows.
        int length = planeP + kw + chunk, outVol = g.OutVol;
        int planes = g.N * g.Cin;
        Threads.Ranges(planes, (long)planes * kv * g.OutVol < 1 << 16 ? 1 : Math.Min(planes, 8 * Environment.ProcessorCount), (_, p0, p1) =>
        {
            var buffer = ArrayPool<T>.Shared.Rent(length + 2 * chunk);
            // The kernel's taps as vectors, between a row of zero taps above and one below.
            var taps = ArrayPool<Vector<T>>.Shared.Rent(kv + 2 * kw);
            try
            {
                // The padding and the tail stay zero; each plane overwrites the interior.
                Array.Clear(buffer, 0, length);
                Array.Clear(taps, 0, kw);
                Array.Clear(taps, kw + kv, kw);
                fixed (T* xp = buffer, px = x, py = y)
                fixed (Vector<T>* tp = taps)
                {
                    T* scratch = xp + length;
                    for (int plane = p0; plane < p1; plane++)
                    {
                        int ch = plane % g.Cin;
                        for (int t = 0; t < kv; t++) taps[kw + t] = new Vector<T>(w[ch * kv + t]);
                        for (int ih = 0; ih < hi; ih++) Copy(px + plane * g.InVol + ih * wi, xp + (ih + g.PadLo[1]) * wp + g.PadLo[2], wi);
                        T* yp = py + (long)plane * outVol;
                        // Two output rows at a time, four vectors of outputs of each (eight independent chains of
                        // multiply-adds): each input row's vectors, loaded once, feed both rows, a third fewer loads for 3x3
                        // kernels ((32,128,28x28) 3x3 forward 1.44-1.54 -> 1.24-1.33 ms, same machine, builds in turn). Rows
                        // are stored straight into y as the direct kernels do (see DirectRun).
                        for (int oh = 0; oh < ho; oh += 2)
                        {
                            bool two = oh + 1 < ho;
                            int rows = kh + (two ? 1 : 0);
                            // Chunks from the last: the upper row's last vector runs onto the lower row's first outputs,
                            // which its first chunk, stored last, then writes.
                            for (int ow = (wo - 1) / chunk * chunk; ow >= 0; ow -= chunk)
                            {
                                int at = oh * wo + ow, nv = Math.Min(4, (wo - ow + lanes - 1) / lanes);
                                Vector<T> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
                                for (int r = 0; r < rows; r++)
                                {
                                    T* s = xp + (oh + r) * wp + ow;
                                    for (int c = 0; c < kw; c++, s++)
                                    {
                                        // Taps of the rows above and below the kernel are zero (see taps), so both rows
                                        // take every input row without a branch, which would make the JIT spill them.
                                        Vector<T> v0 = Vector.Load(s), v1 = Vector.Load(s + lanes), v2 = Vector.Load(s + 2 * lanes), v3 = Vector.Load(s + 3 * lanes);
                                        Vector<T> upper = tp[(r + 1) * kw + c], lower = tp[r * kw + c];
                                        a0 = SimdAny<T>.MulAdd(upper, v0, a0);
                                        a1 = SimdAny<T>.MulAdd(upper, v1, a1);
                                        a2 = SimdAny<T>.MulAdd(upper, v2, a2);
                                        a3 = SimdAny<T>.MulAdd(upper, v3, a3);
                                        b0 = SimdAny<T>.MulAdd(lower, v0, b0);
                                        b1 = SimdAny<T>.MulAdd(lower, v1, b1);
                                        b2 = SimdAny<T>.MulAdd(lower, v2, b2);
                                        b3 = SimdAny<T>.MulAdd(lower, v3, b3);
                                    }
                                }
                                // A row whose vectors would pass the plane's end goes to a scratch block, and only its own
                                // outputs from there, after both stores: no call while the rows are in registers.
                                bool pastA = at + nv * lanes > outVol, pastB = two && at + wo + nv * lanes > outVol;
                                StoreRow<Vector<T>, SimdAny<T>>(pastA ? scratch : yp + at, nv, a0, a1, a2, a3);
                                if (two) StoreRow<Vector<T>, SimdAny<T>>(pastB ? scratch + chunk : yp + at + wo, nv, b0, b1, b2, b3);
                                int n = Math.Min(chunk, wo - ow);
                                if (pastA) Copy(scratch, yp + at, n);
                                if (pastB) Copy(scratch + chunk, yp + at + wo, n);
                            }
                        }
                    }
                }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(buffer);
                ArrayPool<Vector<T>>.Shared.Return(taps);
            }
        });
    }

    /// <summary>Copies <paramref name="n"/> elements a vector at a time: rows are short (tens of elements), and a call to
    /// memmove per row cost more than the multiply-adds of the depthwise kernel (and, copying the direct kernels' rows,
    /// 6-10% of LeNet-5's first layer forward and weight gradient, same process).</summary>
    internal static unsafe void Copy(T* from, T* to, int n)
    {
        int i = 0, lanes = Vector<T>.Count;
        for (; i + lanes <= n; i += lanes) Vector.Load(from + i).Store(to + i);
        for (; i < n; i++) to[i] = from[i];
    }

    private enum Mode { Forward, Adjoint, Weight }

    /// <summary>Forward: y += w_k * x shifted by tap k; Adjoint: x += w_k * y shifted back; Weight: w_k = sum of y * x shifted.
    /// <paramref name="x"/> is [N, C, In], <paramref name="y"/> is [N, C, Out] and <paramref name="w"/> is [C, KVol].</summary>
    private static void DepthwiseRun(ConvGeometry g, T[] x, T[] w, T[] y, Mode mode)
    {
        int c = g.Cin, planes = g.N * c;
        // Every mode accumulates into its zeroed result.
        Array.Clear(mode switch { Mode.Forward => y, Mode.Adjoint => x, _ => w });
        // Forward and adjoint write one plane each (parallel over planes); the weight gradient reduces over samples (parallel over channels).
        int units = mode == Mode.Weight ? c : planes;
        Threads.For(units, (long)planes * g.KVol * g.OutVol, unit =>
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
                    var (ow0, ow1) = Shape.InRange(shift, sw, g.In[2], g.Out[2]);
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
                    if (mode == Mode.Weight) w[ch * g.KVol + k] += acc;
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

/// <summary>How <see cref="Functional.ConvFused"/> runs an inference convolution inside a chain of them (an imported ONNX
/// model without gradients): with a residual added (<see cref="Add"/>) and max(0, .) applied as the kernel writes
/// (<see cref="Relu"/>), its input in the layout a previous convolution left it in (<see cref="Input"/>), its output kept
/// in the kernel's layout for a convolution that reads it (<see cref="KeepLayout"/>; the layout is then in
/// <see cref="Output"/>) or written into a larger tensor (<see cref="Into"/>).</summary>
internal sealed class ConvInference
{
    /// <summary>Added to the convolution's output before the ReLU (NCHW; fused into the kernel when it has the output's shape,
    /// else broadcast): a residual connection.</summary>
    public Tensor? Add { get; init; }
    /// <summary>The layout <see cref="Add"/> is in when a convolution left it in its kernel's, else null.</summary>
    public Dnnl.Layout? AddLayout { get; init; }
    public bool Relu { get; init; }
    public Dnnl.Layout? Input { get; init; }
    public bool KeepLayout { get; init; }
    /// <summary>Given the output's shape, where to write the output instead of a fresh tensor: a larger tensor and the offset
    /// of the output's first element in it (a slice of a concatenation along channels at batch 1), or null. The convolution
    /// then returns that larger tensor.</summary>
    public Func<int[], (Tensor Target, int Offset)?>? Into { get; init; }
    public Dnnl.Layout? Output { get; set; }
}

/// <summary>3x3 stride-1 float32 convolutions by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, 2016): each 2x2
/// block of outputs is A^T [sum over input channels of U ⊙ V] A, where V = B^T d B transforms the 4x4 input tile d under it
/// and U = G g G^T each 3x3 kernel g, so one output block costs 16 multiplies per input channel instead of 36. The sums
/// over channels are 16 GEMMs [Cout x Cin] . [Cin x tiles], one per position of the 4x4 tile. Tiles are taken in chunks
/// of whole tile rows sized to stay in the core's cache, and chunks are shared out among the cores, each running its
/// transforms and GEMMs on one thread. The transforms' coefficients are 0, ±1/2 and ±1, so the result differs from the
/// direct sum by a few float32 roundings. The adjoint pass is the same convolution of the output gradient with the kernels
/// flipped and their channel axes swapped, padded by 2 - padding; the weight gradient is the transpose of the forward
/// algorithm (<see cref="Weight"/>).</summary>
internal static unsafe class Winograd
{
    // Tiles of a chunk: about this many divided by the larger channel count, so that its transformed input and its GEMMs'
    // output (16 x channels x tiles each, 128 KB) stay in the core's L2 cache beside the weights; but at least MinTiles, so
    // that the weights are read for enough tiles. Measured on (32,64,32x32) -> 64 forward: 16.5 ms at 2,048 and 4,096
    // against 17.8 at 16,384 and 25 at 65,536 (oneDNN 19.2-19.7 then).
    private const int ChunkElements = 2048, MinTiles = 64;

    /// <summary>Whether every pass of <paramref name="g"/> in <paramref name="dtype"/> runs here: a float32, 2-d, ungrouped,
    /// undilated 3x3 stride-1 convolution with padding at most 2
    /// (so that its adjoint is one too) and at least 16 channels on each side; the machine has AVX2 and FMA;
    /// <see cref="Backend.ConvWinograd"/> is set; oneDNN has no Winograd kernels of its own (it has them for AVX-512, F(4x4,
    /// 3x3)); and the output is large enough. With the weights' transform kept (<paramref name="kept"/>), outputs at least 14
    /// wide: batch 1 against oneDNN, 56x56x64 1.62 against 1.87 ms, 28x28x128 1.37 against 2.12, 14x14x256 1.36 against 2.19,
    /// 14x14x512 4.4 against 7.4; narrower rows waste half the lanes of the eight-tile blocks. Transforming the weights each
    /// call, outputs at least 16 wide and 4,096 in all, where fewer outputs do not pay the transform back: (32,64,32x32)
    /// 12.8 against 17.7 ms, (32,128,16x16) 11.4 against 20.9, (16,64,56x56) 23.9 against 28.9 and (8,64,56x56) 11.5
    /// against 13.8; about equal for (32,256,8x8); (32,512,4x4) 49 against 25, batch 1 (256,14x14) 3.7 against 2.0.</summary>
    public static bool Takes(ConvGeometry g, DType dtype, bool kept) => dtype == DType.Float32 && Backend.ConvWinograd && !(Avx512F.IsSupported && Dnnl.Active)
        && Avx2.IsSupported && Fma.IsSupported && g.Nd == 2 && g.Groups == 1 && g.K[1] == 3 && g.K[2] == 3 && g.Stride.All(s => s == 1) && g.Dilation.All(d => d == 1)
        && g.PadLo.All(p => p is >= 0 and <= 2) && g.PadHi.All(p => p is >= 0 and <= 2) && g.Cin >= 16 && g.Cout >= 16
        && (kept ? g.Out[2] >= 14 : g.Out[2] >= 16 && (long)g.N * g.OutVol >= 4096);

    /// <summary>Computes <paramref name="pass"/> on operands (a, b) into <paramref name="result"/>. The weights' transform is
    /// kept with <paramref name="weightVersion"/> (a parameter's, when no gradient is recorded) until the version changes.</summary>
    public static void Run(ConvPass pass, ConvGeometry g, float[] a, float[] b, float[] result, Tensor.VersionCounter? weightVersion)
    {
        if (pass == ConvPass.Weight) Weight(g, a, b, result);
        else Forward(pass == ConvPass.Forward ? g : g.FlippedAdjoint(), a, Transformed(b, g, flipped: pass == ConvPass.Adjoint, weightVersion), result);
    }

    /// <summary>A weight's transforms for the forward and adjoint passes, made at <see cref="Version"/> for its shape.</summary>
    private sealed class Kept
    {
        public int Version = -1, Cout, Cin;
        public float[]? Forward, Adjoint;
    }

    private static readonly ConditionalWeakTable<Tensor.VersionCounter, Kept> transforms = new();

    /// <summary>Whether a transform of the weight with this version counter is kept for its current version.</summary>
    internal static bool Keeps(Tensor.VersionCounter version) =>
        transforms.TryGetValue(version, out var k) && k.Version == version.Value && (k.Forward != null || k.Adjoint != null);

    private static float[] Transformed(float[] w, ConvGeometry g, bool flipped, Tensor.VersionCounter? version)
    {
        if (version == null) return Weights(w, g.Cout, g.Cin, flipped);
        var k = transforms.GetValue(version, _ => new Kept());
        lock (k)
        {
            // A view of the same storage with another shape shares the version counter.
            if (k.Version != version.Value || k.Cout != g.Cout || k.Cin != g.Cin) (k.Version, k.Cout, k.Cin, k.Forward, k.Adjoint) = (version.Value, g.Cout, g.Cin, null, null);
            return flipped ? k.Adjoint ??= Weights(w, g.Cout, g.Cin, true) : k.Forward ??= Weights(w, g.Cout, g.Cin, false);
        }
    }

    /// <summary>U[ξ][co][ci] = (G g G^T)[ξ] for the 3x3 kernel g of each channel pair of w [Cout, Cin, 3, 3]; for the adjoint
    /// (<paramref name="flipped"/>), of the kernel w[ci][co] turned by 180 degrees, into U[ξ][ci][co].</summary>
    public static float[] Weights(float[] w, int cout, int cin, bool flipped)
    {
        var u = GC.AllocateUninitializedArray<float>(16 * cout * cin);
        int rows = flipped ? cin : cout, cols = flipped ? cout : cin;
        Threads.For(cout, (long)cout * cin * 64, co =>
        {
            Span<float> t = stackalloc float[12];
            for (int ci = 0; ci < cin; ci++)
            {
                int at = (co * cin + ci) * 9;
                // t = G g (4 x 3), g read turned by 180 degrees for the adjoint.
                for (int j = 0; j < 3; j++)
                {
                    float g0 = W(0, j), g1 = W(1, j), g2 = W(2, j);
                    t[j] = g0;
                    t[3 + j] = 0.5f * (g0 + g1 + g2);
                    t[6 + j] = 0.5f * (g0 - g1 + g2);
                    t[9 + j] = g2;
                }
                int r = flipped ? ci : co, c = flipped ? co : ci;
                for (int i = 0; i < 4; i++)
                {
                    float a = t[3 * i], b = t[3 * i + 1], d = t[3 * i + 2];
                    u[((i * 4 + 0) * rows + r) * cols + c] = a;
                    u[((i * 4 + 1) * rows + r) * cols + c] = 0.5f * (a + b + d);
                    u[((i * 4 + 2) * rows + r) * cols + c] = 0.5f * (a - b + d);
                    u[((i * 4 + 3) * rows + r) * cols + c] = d;
                }

                float W(int i, int j) => flipped ? w[at + (2 - i) * 3 + 2 - j] : w[at + i * 3 + j];
            }
        });
        return u;
    }

    /// <summary>y = conv(x, w) for a geometry that <see cref="Takes"/>, given <paramref name="u"/> = <see cref="Weights"/>: y
    /// need not be zeroed (every element is written).</summary>
    public static void Forward(ConvGeometry g, float[] x, float[] u, float[] y)
    {
        var p = new Plan(g);
        int cores = Environment.ProcessorCount;
        if (p.Chunks < 2 * cores)
        {
            // Few chunks (a small input): one at a time, the cores sharing its channels and its 16 GEMMs.
            p.WithBuffers((v, m) =>
            {
                for (int chunk = 0; chunk < p.Chunks; chunk++)
                {
                    Threads.Ranges(g.Cin, cores, (_, c0, c1) => p.Transform(x, v, chunk, c0, c1));
                    Threads.Ranges(16, cores, (_, i0, i1) => p.Multiply(u, v, m, chunk, i0, i1));
                    Threads.Ranges(g.Cout, cores, (_, k0, k1) => p.Output(m, y, chunk, k0, k1));
                }
            });
            return;
        }
        // Each core runs whole chunks on its own buffers.
        Threads.Ranges(p.Chunks, Math.Min(p.Chunks, cores), (_, c0, c1) => p.WithBuffers((v, m) =>
        {
            for (int chunk = c0; chunk < c1; chunk++)
            {
                p.Transform(x, v, chunk, 0, g.Cin);
                p.Multiply(u, v, m, chunk, 0, 16);
                p.Output(m, y, chunk, 0, g.Cout);
            }
        }));
    }

    /// <summary>dW = conv's weight gradient for a geometry that <see cref="Takes"/>, from input x and output gradient gy: by the
    /// transpose of the forward algorithm, dW[co][ci] = G^T [sum over tiles of Z ⊙ V] G, where V = B^T d B transforms the
    /// tile's input as in the forward pass and Z = A dy A^T its 2x2 block of output gradient; the sums over tiles are 16
    /// GEMMs [Cout x tiles] . [tiles x Cin] per chunk, accumulated by each core over its chunks, added in core order.</summary>
    public static void Weight(ConvGeometry g, float[] x, float[] gy, float[] dw)
    {
        var p = new Plan(g);
        int cores = Math.Min(p.Chunks, Environment.ProcessorCount), size = 16 * g.Cout * g.Cin;
        var sums = new float[cores][];
        Threads.Ranges(p.Chunks, cores, (wk, c0, c1) => p.WithBuffers((v, z) =>
        {
            var sum = sums[wk] = GC.AllocateUninitializedArray<float>(size);
            for (int chunk = c0; chunk < c1; chunk++)
            {
                p.Transform(x, v, chunk, 0, g.Cin);
                p.GradientTransform(gy, z, chunk);
                p.MultiplyTransposed(z, v, sum, chunk, accumulate: chunk > c0);
            }
        }));
        for (int i = 1; i < cores; i++) System.Numerics.Tensors.TensorPrimitives.Add(sums[0], sums[i], sums[0]);
        FromTiles(sums[0], g.Cout, g.Cin, dw);
    }

    /// <summary>dW[co][ci] = G^T P[.][co][ci] G: the 4x4 sums P (laid out [ξ][Cout][Cin]) back to 3x3 kernels.</summary>
    private static void FromTiles(float[] p, int cout, int cin, float[] dw)
    {
        int stride = cout * cin;
        Threads.For(cout, (long)cout * cin * 64, co =>
        {
            Span<float> t = stackalloc float[12];
            for (int ci = 0; ci < cin; ci++)
            {
                int at = co * cin + ci;
                // t = G^T P (3 x 4): rows P0 + (P1 + P2) / 2, (P1 - P2) / 2, (P1 + P2) / 2 + P3 of P's rows.
                for (int j = 0; j < 4; j++)
                {
                    float p0 = p[(0 + j) * stride + at], p1 = p[(4 + j) * stride + at], p2 = p[(8 + j) * stride + at], p3 = p[(12 + j) * stride + at];
                    t[j] = p0 + 0.5f * (p1 + p2);
                    t[4 + j] = 0.5f * (p1 - p2);
                    t[8 + j] = 0.5f * (p1 + p2) + p3;
                }
                // dW = t G, the same combination along the rows.
                for (int a = 0; a < 3; a++)
                {
                    float q0 = t[4 * a], q1 = t[4 * a + 1], q2 = t[4 * a + 2], q3 = t[4 * a + 3];
                    dw[at * 9 + 3 * a] = q0 + 0.5f * (q1 + q2);
                    dw[at * 9 + 3 * a + 1] = 0.5f * (q1 - q2);
                    dw[at * 9 + 3 * a + 2] = 0.5f * (q1 + q2) + q3;
                }
            }
        });
    }

    /// <summary>How a geometry's tiles are cut into chunks, and the three steps of a chunk.</summary>
    private sealed class Plan
    {
        private readonly ConvGeometry g;
        // Tile rows of a sample, tiles per row (whole blocks of eight), the width of a row of input with its padding; tile
        // rows per chunk (a run of one sample's), chunks per sample, and tiles a chunk holds.
        private readonly int tilesH, blocks, rowTiles, wp, perChunk, perSample;
        public readonly int Chunks, Tc;

        public Plan(ConvGeometry g)
        {
            this.g = g;
            int ho = g.Out[1], wo = g.Out[2];
            (tilesH, blocks) = ((ho + 1) / 2, ((wo + 1) / 2 + 7) / 8);
            (rowTiles, wp) = (8 * blocks, 16 * blocks + 8);
            // At least MinTiles a chunk, so that the GEMMs' weights are read for enough tiles.
            int target = Math.Max(MinTiles, ChunkElements / Math.Max(g.Cin, g.Cout));
            perChunk = Math.Clamp((target + rowTiles - 1) / rowTiles, 1, tilesH);
            perSample = (tilesH + perChunk - 1) / perChunk;
            Chunks = g.N * perSample;
            Tc = perChunk * rowTiles;
        }

        /// <summary>Runs <paramref name="body"/> with a chunk's buffers from the shared pool: the transformed input (16 x Cin x
        /// tiles) and the transformed output or output gradient (16 x Cout x tiles).</summary>
        public void WithBuffers(Action<float[], float[]> body)
        {
            var v = ArrayPool<float>.Shared.Rent(16 * g.Cin * Tc);
            var m = ArrayPool<float>.Shared.Rent(16 * g.Cout * Tc);
            try { body(v, m); }
            finally
            {
                ArrayPool<float>.Shared.Return(v);
                ArrayPool<float>.Shared.Return(m);
            }
        }

        private (int N, int Th0, int Th1) Rows(int chunk)
        {
            int th0 = chunk % perSample * perChunk;
            return (chunk / perSample, th0, Math.Min(tilesH, th0 + perChunk));
        }

        /// <summary>V of the chunk's tiles for input channels [c0, c1).</summary>
        public void Transform(float[] x, float[] v, int chunk, int c0, int c1)
        {
            var (n, th0, th1) = Rows(chunk);
            int h = g.In[1], w = g.In[2], top = g.PadLo[1], left = g.PadLo[2], rows = 2 * (th1 - th0) + 2;
            // The input rows under the chunk's tile rows for one channel; the columns outside the input stay zero.
            var band = ArrayPool<float>.Shared.Rent(rows * wp);
            Array.Clear(band);
            try
            {
                fixed (float* px = x, pv = v, pb = band)
                    for (int c = c0; c < c1; c++)
                    {
                        float* plane = px + ((long)n * g.Cin + c) * h * w;
                        for (int i = 0; i < rows; i++)
                        {
                            int ih = 2 * th0 - top + i;
                            if ((uint)ih < (uint)h) ConvKernels<float>.Copy(plane + ih * w, pb + i * wp + left, w);
                            else new Span<float>(pb + i * wp, wp).Clear();
                        }
                        for (int th = th0; th < th1; th++)
                            for (int b = 0; b < blocks; b++)
                                InputTiles(pb + 2 * (th - th0) * wp, wp, 16 * b, pv + (long)c * Tc + (th - th0) * rowTiles + 8 * b, g.Cin * Tc);
                    }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(band);
            }
        }

        /// <summary>M[ξ] = U[ξ] . V[ξ] for the 16 positions ξ: [Cout x Cin] . [Cin x tiles].</summary>
        public void Multiply(float[] u, float[] v, float[] m, int chunk, int xi0, int xi1)
        {
            var (_, th0, th1) = Rows(chunk);
            Backend.Current.Gemm(new GemmSpec(false, false, g.Cout, (th1 - th0) * rowTiles, g.Cin, g.Cin, Tc, Tc, xi1 - xi0, (long)g.Cout * g.Cin, (long)g.Cin * Tc,
                (long)g.Cout * Tc, xi0 * (long)g.Cout * g.Cin, xi0 * (long)g.Cin * Tc, xi0 * (long)g.Cout * Tc, Serial: true), 1f, u, v, 0f, m);
        }

        /// <summary>Z = A dy A^T of the chunk's tiles from the output gradient gy; zero for the outputs past the edges.</summary>
        public void GradientTransform(float[] gy, float[] z, int chunk)
        {
            var (n, th0, th1) = Rows(chunk);
            int ho = g.Out[1], wo = g.Out[2];
            // The two gradient rows of a tile row; the columns past the output stay zero.
            var band = ArrayPool<float>.Shared.Rent(2 * wp);
            Array.Clear(band);
            try
            {
                fixed (float* pg = gy, pz = z, pb = band)
                    for (int k = 0; k < g.Cout; k++)
                        for (int th = th0; th < th1; th++)
                        {
                            float* row = pg + (((long)n * g.Cout + k) * ho + 2 * th) * wo;
                            ConvKernels<float>.Copy(row, pb, wo);
                            if (2 * th + 1 < ho) ConvKernels<float>.Copy(row + wo, pb + wp, wo);
                            else new Span<float>(pb + wp, wp).Clear();
                            for (int b = 0; b < blocks; b++)
                                GradientTiles(pb, wp, 16 * b, pz + (long)k * Tc + (th - th0) * rowTiles + 8 * b, g.Cout * Tc);
                        }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(band);
            }
        }

        /// <summary>P[ξ] (+)= Z[ξ] . V[ξ]^T for the 16 positions ξ: [Cout x tiles] . [tiles x Cin].</summary>
        public void MultiplyTransposed(float[] z, float[] v, float[] p, int chunk, bool accumulate)
        {
            var (_, th0, th1) = Rows(chunk);
            Backend.Current.Gemm(new GemmSpec(false, true, g.Cout, g.Cin, (th1 - th0) * rowTiles, Tc, Tc, g.Cin, 16, (long)g.Cout * Tc, (long)g.Cin * Tc,
                (long)g.Cout * g.Cin, Serial: true), 1f, z, v, accumulate ? 1f : 0f, p);
        }

        /// <summary>The chunk's outputs from M.</summary>
        public void Output(float[] m, float[] y, int chunk, int k0, int k1)
        {
            var (n, th0, th1) = Rows(chunk);
            int ho = g.Out[1], wo = g.Out[2];
            fixed (float* pm = m, py = y)
                for (int k = k0; k < k1; k++)
                    for (int th = th0; th < th1; th++)
                    {
                        float* row = py + (((long)n * g.Cout + k) * ho + 2 * th) * wo;
                        for (int b = 0; b < blocks; b++)
                            OutputTiles(pm + (long)k * Tc + (th - th0) * rowTiles + 8 * b, g.Cout * Tc, row, 16 * b, wo, Math.Min(2, ho - 2 * th));
                    }
        }
    }

    /// <summary>V = B^T d B for eight tiles side by side, whose 4x4 inputs start at columns <paramref name="col"/>,
    /// col + 2, ..., col + 14 of the four rows at <paramref name="band"/> (<paramref name="ld"/> apart): the 16 values of
    /// each tile go to <paramref name="v"/> + ξ * <paramref name="stride"/>, eight tiles in a vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputTiles(float* band, int ld, int col, float* v, int stride)
    {
        // Row transforms: for each row i, r_i = B^T applied along the row (d0 - d2, d1 + d2, d2 - d1, d1 - d3).
        Row(band + col, out var a0, out var a1, out var a2, out var a3);
        Row(band + ld + col, out var b0, out var b1, out var b2, out var b3);
        Row(band + 2 * ld + col, out var c0, out var c1, out var c2, out var c3);
        Row(band + 3 * ld + col, out var e0, out var e1, out var e2, out var e3);
        // Column transforms, the same combination down each column.
        Column(v, stride, 0, a0, b0, c0, e0);
        Column(v, stride, 1, a1, b1, c1, e1);
        Column(v, stride, 2, a2, b2, c2, e2);
        Column(v, stride, 3, a3, b3, c3, e3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Row(float* p, out Vector256<float> r0, out Vector256<float> r1, out Vector256<float> r2, out Vector256<float> r3)
    {
        Vector256<float> lo = Avx.LoadVector256(p), hi = Avx.LoadVector256(p + 8), lo2 = Avx.LoadVector256(p + 2), hi2 = Avx.LoadVector256(p + 10);
        Vector256<float> d0 = Pick(lo, hi, 0b10_00_10_00), d1 = Pick(lo, hi, 0b11_01_11_01), d2 = Pick(lo2, hi2, 0b10_00_10_00), d3 = Pick(lo2, hi2, 0b11_01_11_01);
        r0 = d0 - d2;
        r1 = d1 + d2;
        r2 = d2 - d1;
        r3 = d1 - d3;
    }

    /// <summary>The even (or, by <paramref name="control"/>, odd) floats of lo then hi.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Pick(Vector256<float> lo, Vector256<float> hi, [ConstantExpected] byte control) =>
        Avx2.Permute4x64(Avx.Shuffle(lo, hi, control).AsDouble(), 0b11_01_10_00).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Column(float* v, int stride, int j, Vector256<float> r0, Vector256<float> r1, Vector256<float> r2, Vector256<float> r3)
    {
        Avx.Store(v + j * stride, r0 - r2);
        Avx.Store(v + (4 + j) * stride, r1 + r2);
        Avx.Store(v + (8 + j) * stride, r2 - r1);
        Avx.Store(v + (12 + j) * stride, r1 - r3);
    }

    /// <summary>Z = A dy A^T for eight tiles side by side, whose 2x2 output gradients start at columns <paramref name="col"/>,
    /// col + 2, ..., col + 14 of the two rows at <paramref name="band"/> (<paramref name="ld"/> apart): the 16 values of each
    /// tile go to <paramref name="z"/> + ξ * <paramref name="stride"/>, eight tiles in a vector. A maps a pair (p, q) to
    /// (p, p + q, p - q, -q).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void GradientTiles(float* band, int ld, int col, float* z, int stride)
    {
        Vector256<float> lo = Avx.LoadVector256(band + col), hi = Avx.LoadVector256(band + col + 8);
        Vector256<float> a = Pick(lo, hi, 0b10_00_10_00), b = Pick(lo, hi, 0b11_01_11_01);
        lo = Avx.LoadVector256(band + ld + col);
        hi = Avx.LoadVector256(band + ld + col + 8);
        Vector256<float> c = Pick(lo, hi, 0b10_00_10_00), d = Pick(lo, hi, 0b11_01_11_01);
        // Rows of A dy: (a, b), (a + c, b + d), (a - c, b - d), (-c, -d); each then expanded along the row the same way.
        Expand(z, stride, 0, a, b);
        Expand(z, stride, 1, a + c, b + d);
        Expand(z, stride, 2, a - c, b - d);
        Expand(z, stride, 3, -c, -d);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Expand(float* z, int stride, int i, Vector256<float> p, Vector256<float> q)
    {
        Avx.Store(z + 4 * i * stride, p);
        Avx.Store(z + (4 * i + 1) * stride, p + q);
        Avx.Store(z + (4 * i + 2) * stride, p - q);
        Avx.Store(z + (4 * i + 3) * stride, -q);
    }

    /// <summary>Y = A^T M A for eight tiles side by side (M's 16 values at <paramref name="m"/> + ξ * <paramref name="stride"/>):
    /// their 2x2 outputs, interleaved into the <paramref name="valid"/> (1 or 2) output rows at <paramref name="y"/> from
    /// column <paramref name="col"/> on, clipped at the row's width <paramref name="wo"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void OutputTiles(float* m, int stride, float* y, int col, int wo, int valid)
    {
        // Rows of A^T M: s = m0 + m1 + m2, d = m1 - m2 - m3, for each of the four columns.
        Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default, d0 = default, d1 = default, d2 = default, d3 = default;
        Combine(m, stride, 0, ref s0, ref d0);
        Combine(m, stride, 1, ref s1, ref d1);
        Combine(m, stride, 2, ref s2, ref d2);
        Combine(m, stride, 3, ref s3, ref d3);
        Store(y, col, wo, s0 + s1 + s2, s1 - s2 - s3);
        if (valid > 1) Store(y + wo, col, wo, d0 + d1 + d2, d1 - d2 - d3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Combine(float* m, int stride, int j, ref Vector256<float> s, ref Vector256<float> d)
    {
        Vector256<float> m0 = Avx.LoadVector256(m + j * stride), m1 = Avx.LoadVector256(m + (4 + j) * stride),
            m2 = Avx.LoadVector256(m + (8 + j) * stride), m3 = Avx.LoadVector256(m + (12 + j) * stride);
        s = m0 + m1 + m2;
        d = m1 - m2 - m3;
    }

    /// <summary>Writes the outputs of eight tiles to a row: even columns from <paramref name="even"/>, odd from
    /// <paramref name="odd"/>, clipped at <paramref name="wo"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* row, int col, int wo, Vector256<float> even, Vector256<float> odd)
    {
        Vector256<float> lo = Avx.UnpackLow(even, odd), hi = Avx.UnpackHigh(even, odd);
        Vector256<float> first = Avx.Permute2x128(lo, hi, 0x20), second = Avx.Permute2x128(lo, hi, 0x31);
        if (col + 16 <= wo)
        {
            Avx.Store(row + col, first);
            Avx.Store(row + col + 8, second);
            return;
        }
        float* tail = stackalloc float[16];
        Avx.Store(tail, first);
        Avx.Store(tail + 8, second);
        for (int i = 0; col + i < wo && i < 16; i++) row[col + i] = tail[i];
    }
}
