using static Autograd.Functional;

namespace Autograd.Onnx;

internal static partial class Ops
{
    private static int[] Spatial(OpContext c, string name, int nd, int dflt)
    {
        var v = c.Ints(name);
        if (v == null) return Enumerable.Repeat(dflt, nd).ToArray();
        if (v.Length != nd) throw c.Invalid($"attribute '{name}' has {v.Length} values for {nd} spatial dims");
        return ToInts(c, v);
    }

    /// <summary>Padding before and after each spatial dim from <c>pads</c> ([begins..., ends...]) or <c>auto_pad</c>.</summary>
    private static (int[] Lo, int[] Hi) Pads(OpContext c, int[] input, int[] kernel, int[] stride, int[] dilation)
    {
        int nd = input.Length;
        var lo = new int[nd];
        var hi = new int[nd];
        var auto = c.Str("auto_pad", "NOTSET");
        switch (auto)
        {
            case "NOTSET":
                if (c.Ints("pads") is { } p)
                {
                    if (p.Length != 2 * nd) throw c.Invalid($"pads has {p.Length} values for {nd} spatial dims");
                    for (int i = 0; i < nd; i++) { lo[i] = (int)p[i]; hi[i] = (int)p[i + nd]; }
                }
                break;
            case "VALID": break;
            case "SAME_UPPER" or "SAME_LOWER":
                for (int i = 0; i < nd; i++)
                {
                    int o = (input[i] + stride[i] - 1) / stride[i];
                    int total = Math.Max(0, (o - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1 - input[i]);
                    (lo[i], hi[i]) = auto == "SAME_UPPER" ? (total / 2, total - total / 2) : (total - total / 2, total / 2);
                }
                break;
            default: throw c.Unsupported($"auto_pad '{auto}' is not supported", "auto_pad");
        }
        return (lo, hi);
    }

    private static Padding PairPadding(int[] lo, int[] hi) => lo.Zip(hi, (a, b) => new[] { a, b }).SelectMany(x => x).ToArray();

    private static Tensor ConvNd(OpContext c, int nd, Tensor x, Tensor w, Tensor? b, int[] stride, Padding padding, int[] dilation, int groups) => nd switch
    {
        1 => Conv1d(x, w, b, stride, padding, dilation, groups),
        2 => Conv2d(x, w, b, stride, padding, dilation, groups),
        3 => Conv3d(x, w, b, stride, padding, dilation, groups),
        _ => throw c.Unsupported($"{nd}-d convolution is not supported (1 to 3 spatial dims are)"),
    };

    private static Tensor ConvOp(OpContext c)
    {
        var x = c.Float(0);
        var w = c.Float(1);
        int nd = x.Rank - 2;
        var kernel = w.Shape[2..];
        if (c.Ints("kernel_shape") is { } ks && !ks.Select(k => (int)k).SequenceEqual(kernel))
            throw c.Invalid($"kernel_shape [{string.Join(", ", ks)}] does not match the weight {Str(w.Shape)}");
        var stride = Spatial(c, "strides", nd, 1);
        var dilation = Spatial(c, "dilations", nd, 1);
        var (lo, hi) = Pads(c, x.Shape[2..], kernel, stride, dilation);
        int groups = (int)c.Int("group", 1);
        return c.Inference is { } how && nd is >= 1 and <= 3 ? ConvFused(nd, x, w, c.Optional(2), stride, PairPadding(lo, hi), dilation, groups, how)
            : ConvNd(c, nd, x, w, c.Optional(2), stride, PairPadding(lo, hi), dilation, groups);
    }

    /// <summary>ConvTranspose: the full transposed convolution, then cropped by the pads (or padded with zeros where
    /// output_padding / output_shape ask for more), then the bias.</summary>
    private static Tensor ConvTransposeOp(OpContext c)
    {
        var x = c.Float(0);
        var w = c.Float(1);
        int nd = x.Rank - 2;
        var kernel = w.Shape[2..];
        c.Ignore("kernel_shape");
        var stride = Spatial(c, "strides", nd, 1);
        var dilation = Spatial(c, "dilations", nd, 1);
        var outPad = Spatial(c, "output_padding", nd, 0);
        int groups = (int)c.Int("group", 1);
        var input = x.Shape[2..];
        var full = Enumerable.Range(0, nd).Select(i => (input[i] - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1).ToArray();
        var lo = new int[nd];
        var hi = new int[nd];
        var auto = c.Str("auto_pad", "NOTSET");
        var outputShape = c.Ints("output_shape") is { } os ? ToInts(c, os.Length == nd ? os : os[^nd..]) : null;
        if (outputShape == null && auto is "SAME_UPPER" or "SAME_LOWER") outputShape = input.Select((n, i) => n * stride[i]).ToArray();
        if (outputShape != null)
            for (int i = 0; i < nd; i++)
            {
                // Floor division, as the reference: a negative total (a larger output) pads zeros at the end.
                int total = full[i] + outPad[i] - outputShape[i], half = (int)Math.Floor(total / 2.0);
                (lo[i], hi[i]) = auto == "SAME_UPPER" ? (half, total - half) : (total - half, half);
            }
        else if (c.Ints("pads") is { } p)
            for (int i = 0; i < nd; i++) { lo[i] = (int)p[i]; hi[i] = (int)p[i + nd]; }
        Tensor y = nd switch
        {
            1 => ConvTranspose1d(x, w, null, stride, 0, 0, groups, dilation),
            2 => ConvTranspose2d(x, w, null, stride, 0, 0, groups, dilation),
            3 => ConvTranspose3d(x, w, null, stride, 0, 0, groups, dilation),
            _ => throw c.Unsupported($"{nd}-d transposed convolution is not supported"),
        };
        var pad = new int[2 * y.Rank];
        for (int i = 0; i < nd; i++)
        {
            int d = 2 + i, start = lo[i], end = full[i] - hi[i] + outPad[i];
            y = Slice(y, d, Math.Max(0, start), Math.Clamp(end, Math.Max(0, start), full[i]));
            pad[2 * (y.Rank - 1 - d)] = Math.Max(0, -start);
            pad[2 * (y.Rank - 1 - d) + 1] = Math.Max(0, end - full[i]);
        }
        if (pad.Any(v => v > 0)) y = Pad(y, pad);
        return c.Optional(2) is { } b ? y + b.Reshape([1, -1, .. Enumerable.Repeat(1, nd)]) : y;
    }

    /// <summary>Pooling geometry shared by MaxPool and AveragePool: the explicit padding (before, after) that makes a floor-mode,
    /// unpadded pooling produce ONNX's output size (ceil_mode windows must start inside the input or the leading padding).</summary>
    private static (int[] Kernel, int[] Stride, int[] Dilation, int[] Lo, int[] Hi, int[] Out) PoolGeometry(OpContext c, Tensor x)
    {
        int nd = x.Rank - 2;
        var kernel = ToInts(c, c.Ints("kernel_shape") ?? throw c.Invalid("attribute 'kernel_shape' is required"));
        if (kernel.Length != nd) throw c.Invalid($"kernel_shape has {kernel.Length} values for {nd} spatial dims");
        var stride = Spatial(c, "strides", nd, 1);
        var dilation = Spatial(c, "dilations", nd, 1);
        bool ceil = c.Bool("ceil_mode", false);
        var input = x.Shape[2..];
        var (lo, hi) = Pads(c, input, kernel, stride, dilation);
        var output = new int[nd];
        for (int i = 0; i < nd; i++)
        {
            int span = input[i] + lo[i] + hi[i] - ((kernel[i] - 1) * dilation[i] + 1);
            if (span < 0) throw c.Invalid($"the kernel {Str(kernel)} does not fit the padded input {Str(input)}");
            int o = (ceil ? (span + stride[i] - 1) / stride[i] : span / stride[i]) + 1;
            if (ceil && (o - 1) * stride[i] >= input[i] + lo[i]) o--;
            output[i] = o;
            hi[i] = Math.Max(hi[i], (o - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1 - input[i] - lo[i]);
        }
        return (kernel, stride, dilation, lo, hi, output);
    }

    private static int[] PadArgs(int[] lo, int[] hi)
    {
        int nd = lo.Length;
        var p = new int[2 * nd];
        for (int i = 0; i < nd; i++) { p[2 * (nd - 1 - i)] = lo[i]; p[2 * (nd - 1 - i) + 1] = hi[i]; }
        return p;
    }

    /// <summary>The spatial dims padded with <paramref name="value"/>, or the input itself when there is nothing to pad.</summary>
    private static Tensor PadSpatial(Tensor x, int[] lo, int[] hi, double value = 0) =>
        lo.All(v => v == 0) && hi.All(v => v == 0) ? x : Pad(x, PadArgs(lo, hi), value: value);

    private static Tensor Crop(Tensor y, int[] output)
    {
        for (int i = 0; i < output.Length; i++)
            if (y.Shape[2 + i] > output[i]) y = Slice(y, 2 + i, 0, output[i]);
        return y;
    }

    private static OnnxValue[] MaxPoolOp(OpContext c)
    {
        var v = c.Value(0);
        if (c.InputLayout is { } layout)
        {
            if (v.Tensor.Rank == 4 && !c.Wants(1))
            {
                var (kernel, stride, dilation, start, _, size) = PoolGeometry(c, v.Tensor);
                c.Ignore("storage_order");
                if (Functional.MaxPoolBlocked(v.Tensor, layout, kernel, stride, dilation, start, size, out var yLayout) is Tensor pooled)
                {
                    c.OutputLayout = yLayout;
                    return [v with { Tensor = pooled }];
                }
            }
            v = v with { Tensor = Functional.Plain(v.Tensor, layout) };
        }
        var x = TensorData.IsFloat(v.Type) ? v.Tensor : v.Tensor.To(DType.Float64);
        int nd = x.Rank - 2;
        var (k, s, d, lo, hi, output) = PoolGeometry(c, x);
        int storageOrder = (int)c.Int("storage_order", 0);
        if (c.Wants(1))
        {
            if (nd != 2) throw c.Unsupported("the Indices output is supported for 2-d pooling only");
            var padded = PadSpatial(x, lo, hi, double.NegativeInfinity);
            var (values, planeIdx) = MaxPool2dWithIndices(padded, k, s, 0, d);
            values = Crop(values, output);
            planeIdx = Crop(planeIdx, output);
            int h = x.Shape[2], w = x.Shape[3], wp = padded.Shape[3];
            var idx = planeIdx.ToLongArray();
            int plane = output[0] * output[1];
            for (int i = 0; i < idx.Length; i++)
            {
                long hh = idx[i] / wp - lo[0], ww = idx[i] % wp - lo[1];
                idx[i] = (long)(i / plane) * h * w + (storageOrder == 0 ? hh * w + ww : ww * h + hh);
            }
            return [Result(v, values), new(Tensor.From(idx, values.Shape), OnnxDataType.Int64)];
        }
        c.Ignore("storage_order");
        if (nd is < 1 or > 3) throw c.Unsupported($"{nd}-d pooling is not supported");
        // Windows that start where ONNX's do and end at most at the input's end, in floor or ceil mode with the leading padding
        // on both sides, are ONNX's windows without their -inf padding: pooled from x itself, with no padded copy.
        foreach (bool ceil in new[] { false, true })
            if (Enumerable.Range(0, nd).All(i => 2 * lo[i] <= (k[i] - 1) * d[i] + 1 && Autograd.PoolGeometry.SlidingSize(x.Shape[2 + i], k[i], s[i], lo[i], d[i], ceil) == output[i]))
                return [Result(v, MaxPoolNd(x, k, s, lo, d, ceil))];
        return [Result(v, Crop(MaxPoolNd(PadSpatial(x, lo, hi, double.NegativeInfinity), k, s, 0, d, false), output))];
    }

    private static Tensor MaxPoolNd(Tensor x, int[] k, int[] s, IntTuple padding, int[] d, bool ceil) => x.Rank switch
    {
        3 => MaxPool1d(x, k, s, padding, d, ceil),
        4 => MaxPool2d(x, k, s, padding, d, ceil),
        _ => MaxPool3d(x, k, s, padding, d, ceil),
    };

    private static OnnxValue Result(OnnxValue input, Tensor y) => TensorData.IsFloat(input.Type) ? input with { Tensor = y } : ToInteger(y, input.Type);

    /// <summary>AveragePool as a depthwise convolution with a ones kernel, divided by the number of counted elements under each
    /// window (the input, plus the explicit pads when count_include_pad), which covers dilations, asymmetric pads and ceil_mode.</summary>
    private static Tensor AveragePoolOp(OpContext c)
    {
        var x = c.Float(0);
        int nd = x.Rank - 2, ch = x.Shape[1];
        var (k, s, d, lo, hi, output) = PoolGeometry(c, x);
        bool includePad = c.Bool("count_include_pad", false);
        var explicitPads = Pads(c, x.Shape[2..], k, s, d);
        var padded = PadSpatial(x, lo, hi);
        var ones = Tensor.Ones([ch, 1, .. k], x.DType);
        var sum = ConvNd(c, nd, padded, ones, null, s, 0, d, ch);
        var mask = Tensor.Ones([1, 1, .. x.Shape[2..]], x.DType);
        mask = includePad ? Pad(Pad(mask, PadArgs(explicitPads.Lo, explicitPads.Hi), value: 1), PadArgs(lo.Select((l, i) => l - explicitPads.Lo[i]).ToArray(),
            hi.Select((h, i) => h - explicitPads.Hi[i]).ToArray())) : Pad(mask, PadArgs(lo, hi));
        var count = ConvNd(c, nd, mask, Tensor.Ones([1, 1, .. k], x.DType), null, s, 0, d, 1);
        return Crop(sum, output) / Crop(count, output);
    }

    private static OnnxValue[] BatchNormOp(OpContext c)
    {
        var x = c.Float(0);
        var (scale, bias, mean, variance) = (c.Float(1), c.Float(2), c.Float(3), c.Float(4));
        double eps = c.Float("epsilon", 1e-5), momentum = c.Float("momentum", 0.9);
        c.Ignore("is_test", "consumed_inputs");
        if (c.Opset < 9 && !c.Bool("spatial", true)) throw c.Unsupported("spatial = 0 (per-activation statistics) is not supported", "spatial");
        if (c.Opset >= 14 && c.Bool("training_mode", false))
        {
            var y = BatchNorm(x, null, null, scale, bias, training: true, eps: eps);
            int[] dims = [0, .. SpatialDims(x)];
            Tensor batchMean, batchVar;
            using (AutoGrad.NoGrad()) (batchMean, batchVar) = (Mean(x, dims), Var(x, dims, correction: 0));
            return [Same(c, y), Same(c, mean * momentum + batchMean * (1 - momentum)), Same(c, variance * momentum + batchVar * (1 - momentum))];
        }
        if (c.Node.Outputs.Skip(1).Any(o => o.Length > 0) && c.Opset >= 14)
            throw c.Invalid("running statistics are outputs only with training_mode = 1");
        var result = c.Training
            ? BatchNorm(x, mean, variance, scale, bias, training: true, momentum: 1 - momentum, eps: eps)
            : BatchNorm(x, mean, variance, scale, bias, training: false, eps: eps);
        return [Same(c, result)];
    }

    private static OnnxValue[] LayerNormOp(OpContext c)
    {
        var x = c.Float(0);
        int axis = c.Axis(c.Int("axis", -1), x.Rank);
        double eps = c.Float("epsilon", 1e-5);
        c.Ignore("stash_type");
        int[] dims = [.. Enumerable.Range(axis, x.Rank - axis)];
        var mean = Mean(x, dims, keepDim: true);
        var inv = Rsqrt(Var(x, dims, correction: 0, keepDim: true) + eps);
        var y = (x - mean) * inv * c.Float(1);
        if (c.Optional(2) is { } b) y = y + b;
        return [Same(c, y), Same(c, mean), Same(c, inv)];
    }

    /// <summary>LRN: ONNX sums over channels [c - floor((size-1)/2), c + ceil((size-1)/2)], PyTorch's local_response_norm over
    /// [c - floor(size/2), c + floor((size-1)/2)]: the same window for odd sizes and its mirror image for even ones, so an even
    /// size runs on the channel-reversed input and reverses the result back.</summary>
    private static Tensor LrnOp(OpContext c)
    {
        var x = c.Float(0);
        int size = (int)c.Int("size", 0);
        if (size < 1) throw c.Invalid($"size must be positive, got {size}");
        var reverse = Tensor.From(Enumerable.Range(0, x.Shape[1]).Reverse().Select(i => (long)i).ToArray(), x.Shape[1]);
        bool mirror = size % 2 == 0;
        var y = LocalResponseNorm(mirror ? IndexSelect(x, 1, reverse) : x, size, c.Float("alpha", 1e-4), c.Float("beta", 0.75), c.Float("bias", 1.0));
        return mirror ? IndexSelect(y, 1, reverse) : y;
    }
}
