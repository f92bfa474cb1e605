namespace Autograd;

public static partial class Functional
{
    /// <summary>Pads with <paramref name="pad"/> = (before, after) pairs starting from the last dim, as <c>F.pad</c>: <c>"constant"</c>
    /// (with <paramref name="value"/>), <c>"reflect"</c> (mirror without repeating the edge), <c>"replicate"</c> (repeat the edge)
    /// or <c>"circular"</c> (wrap around).</summary>
    public static Tensor Pad(Tensor x, int[] pad, string mode = "constant", double value = 0)
    {
        if (pad.Length % 2 != 0 || pad.Length / 2 > x.Rank)
            throw new ArgumentException($"Pad: padding {Shape.Str(pad)} must have an even length of at most 2 x rank ({2 * x.Rank}) for input {Shape.Str(x.Dims)}");
        if (pad.Any(p => p < 0)) throw new ArgumentException($"Pad: negative padding {Shape.Str(pad)} is not supported");
        if (mode == "constant") return PadConstant(x, pad, value);
        if (mode is not ("reflect" or "replicate" or "circular")) throw new ArgumentException($"Pad: mode must be constant, reflect, replicate or circular, got \"{mode}\"");
        // Every other mode is an index selection along each padded dim, so its gradient comes from IndexSelect.
        for (int i = 0; i < pad.Length / 2; i++)
        {
            int d = x.Rank - 1 - i, n = x.Dims[d], lo = pad[2 * i], hi = pad[2 * i + 1];
            if (lo == 0 && hi == 0) continue;
            if ((mode == "reflect" && (lo >= n || hi >= n)) || (mode == "circular" && (lo > n || hi > n)))
                throw new ArgumentException($"Pad: {mode} padding ({lo}, {hi}) of dim {d} must be smaller than its size {n} (input {Shape.Str(x.Dims)})");
            var idx = new long[n + lo + hi];
            for (int j = 0; j < idx.Length; j++)
            {
                int src = j - lo;
                idx[j] = mode switch
                {
                    "reflect" => src < 0 ? -src : src >= n ? 2 * (n - 1) - src : src,
                    "replicate" => Math.Clamp(src, 0, n - 1),
                    _ => ((src % n) + n) % n,
                };
            }
            x = IndexSelect(x, d, Tensor.From(idx, idx.Length));
        }
        return x;
    }

    /// <summary>Resizes the spatial dims of [N, C, *] (1 to 3 of them), as <c>F.interpolate</c>: <c>"nearest"</c>, or <c>"linear"</c> /
    /// <c>"bilinear"</c> / <c>"trilinear"</c> with <paramref name="alignCorners"/>. Give either the output size or the scale factor.</summary>
    public static Tensor Interpolate(Tensor input, int[]? size = null, double[]? scaleFactor = null, string mode = "nearest", bool alignCorners = false)
    {
        const string op = "Interpolate";
        Shape.Rank(op, input, 3, 5);
        int nd = input.Rank - 2;
        if ((size == null) == (scaleFactor == null)) throw new ArgumentException($"{op}: give exactly one of size and scaleFactor");
        var scales = scaleFactor == null ? null : scaleFactor.Length == 1 ? Enumerable.Repeat(scaleFactor[0], nd).ToArray() : scaleFactor;
        var sizes = size == null ? null : size.Length == 1 ? Enumerable.Repeat(size[0], nd).ToArray() : size;
        if ((sizes ?? scales!.Select(s => 0).ToArray()).Length != nd) throw new ArgumentException($"{op}: expected {nd} sizes or scale factors for input {Shape.Str(input.Dims)}");
        bool linear = mode switch
        {
            "nearest" => false,
            "linear" or "bilinear" or "trilinear" when (mode, nd) is ("linear", 1) or ("bilinear", 2) or ("trilinear", 3) => true,
            _ => throw new ArgumentException($"{op}: mode \"{mode}\" is not supported for {nd} spatial dims (nearest, linear for 1, bilinear for 2, trilinear for 3)"),
        };
        var x = input;
        for (int i = 0; i < nd; i++)
        {
            int d = 2 + i, n = input.Dims[d];
            int o = sizes?[i] ?? (int)Math.Floor(n * scales![i]);
            if (o < 1) throw new ArgumentException($"{op}: output size {o} of spatial dim {i} is empty (input {Shape.Str(input.Dims)})");
            // PyTorch's source-index scale: in/out, or 1/scale_factor when a scale factor was given.
            double scale = scales != null ? 1 / scales[i] : (double)n / o;
            if (!linear)
            {
                var idx = Enumerable.Range(0, o).Select(j => (long)Math.Min((int)Math.Floor(j * scale), n - 1)).ToArray();
                x = IndexSelect(x, d, Tensor.From(idx, o));
                continue;
            }
            var i0 = new long[o]; var i1 = new long[o]; var w1 = new double[o];
            for (int j = 0; j < o; j++)
            {
                double src = alignCorners ? (o > 1 ? j * (double)(n - 1) / (o - 1) : 0) : Math.Max((j + 0.5) * scale - 0.5, 0);
                int lo = Math.Min((int)Math.Floor(src), n - 1);
                i0[j] = lo;
                i1[j] = Math.Min(lo + 1, n - 1);
                w1[j] = src - lo;
            }
            var shape = Enumerable.Repeat(1, x.Rank).ToArray();
            shape[d] = o;
            var lambda = Tensor.From(w1, shape).To(x.DType);
            x = IndexSelect(x, d, Tensor.From(i0, o)) * (1.0 - lambda) + IndexSelect(x, d, Tensor.From(i1, o)) * lambda;
        }
        return x;
    }

    /// <summary>Rearranges [N, C r², H, W] into [N, C, H r, W r], as <c>F.pixel_shuffle</c>.</summary>
    public static Tensor PixelShuffle(Tensor input, int upscaleFactor)
    {
        int r = upscaleFactor;
        if (input.Rank < 3 || r < 1 || input.Dims[^3] % (r * r) != 0)
            throw new ArgumentException($"PixelShuffle: input [*, C, H, W] needs C divisible by upscale_factor² ({r}² = {r * r}), got {Shape.Str(input.Dims)}");
        var lead = input.Dims[..^3];
        int c = input.Dims[^3] / (r * r), h = input.Dims[^2], w = input.Dims[^1], l = lead.Length;
        return input.Reshape([.. lead, c, r, r, h, w])
            .Permute([.. Enumerable.Range(0, l), l, l + 3, l + 1, l + 4, l + 2])
            .Reshape([.. lead, c, h * r, w * r]);
    }
}
