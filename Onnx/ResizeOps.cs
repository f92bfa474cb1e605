using static Autograd.Functional;

namespace Autograd.Onnx;

internal static partial class Ops
{
    /// <summary>Resize (and the older Upsample) as one interpolation matrix per resized axis, applied with MatMul: every mode
    /// (nearest with its rounding rules, linear, cubic, antialiased downsampling, exclude_outside) and every coordinate
    /// transformation of the ONNX reference becomes a matrix of weights, so the op is differentiable for free.</summary>
    private static Tensor ResizeOp(OpContext c)
    {
        var x = c.Float(0);
        int rank = x.Rank;
        bool upsample = c.Node.OpType == "Upsample";
        string mode = c.Str("mode", "nearest");
        string transform = upsample || c.Opset < 11 ? "asymmetric" : c.Str("coordinate_transformation_mode", "half_pixel");
        string nearest = upsample || c.Opset < 11 ? "floor" : c.Str("nearest_mode", "round_prefer_floor");
        double a = c.Float("cubic_coeff_a", -0.75), extrapolation = c.Float("extrapolation_value", 0);
        bool excludeOutside = c.Bool("exclude_outside", false), antialias = c.Bool("antialias", false);
        string policy = c.Str("keep_aspect_ratio_policy", "stretch");
        var axes = c.Ints("axes")?.Select(v => c.Axis(v, rank)).ToArray() ?? [.. Enumerable.Range(0, rank)];

        double[]? scales = null;
        long[]? sizes = null;
        double[]? roi = null;
        if (upsample && c.Opset < 9) scales = c.Floats("scales")?.Select(f => (double)f).ToArray();
        else if (upsample || c.Opset < 11) scales = c.Input(1).ToDoubleArray();
        else
        {
            if (c.Optional(1) is { Numel: > 0 } r) roi = r.ToDoubleArray();
            if (c.Optional(2) is { Numel: > 0 } s) scales = s.ToDoubleArray();
            if (c.Optional(3) is { Numel: > 0 } z) sizes = z.ToLongArray();
        }
        if ((scales == null) == (sizes == null)) throw c.Invalid("exactly one of scales and sizes must be given");
        int count = (scales?.Length ?? sizes!.Length);
        if (count != axes.Length) throw c.Invalid($"{count} scales or sizes for {axes.Length} axes");

        var outSize = new int[axes.Length];
        var scale = new double[axes.Length];
        if (scales != null)
            for (int i = 0; i < axes.Length; i++) { scale[i] = scales[i]; outSize[i] = (int)Math.Floor(x.Shape[axes[i]] * scales[i]); }
        else
        {
            var ratios = axes.Select((d, i) => (double)sizes![i] / x.Shape[d]).ToArray();
            double common = policy switch
            {
                "stretch" => double.NaN,
                "not_larger" => ratios.Min(),
                "not_smaller" => ratios.Max(),
                _ => throw c.Unsupported($"keep_aspect_ratio_policy '{policy}' is not supported", "keep_aspect_ratio_policy"),
            };
            for (int i = 0; i < axes.Length; i++)
            {
                scale[i] = double.IsNaN(common) ? ratios[i] : common;
                outSize[i] = double.IsNaN(common) ? (int)sizes![i] : (int)Math.Round(common * x.Shape[axes[i]], MidpointRounding.AwayFromZero);
            }
        }
        if (mode is not ("nearest" or "linear" or "cubic")) throw c.Unsupported($"mode '{mode}' is not supported", "mode");
        for (int i = 0; i < axes.Length; i++)
        {
            int d = axes[i], n = x.Shape[d], o = outSize[i];
            if (o == n && scale[i] == 1 && transform != "tf_crop_and_resize") continue;
            (double Start, double End)? box = roi == null ? null : (roi[i], roi[i + axes.Length]);
            var (w, extrapolated) = InterpolationMatrix(c, n, o, scale[i], mode, transform, nearest, a, excludeOutside, antialias, box);
            var moved = x.Transpose(d, rank - 1);
            var y = MatMul(moved, Tensor.From(w, n, o).To(x.DType));
            if (extrapolated.Any(e => e != 0)) y = y + Tensor.From(extrapolated, o).To(x.DType) * extrapolation;
            x = y.Transpose(d, rank - 1);
        }
        return x;
    }

    /// <summary>The [n, o] matrix whose column j holds the weights of input positions for output position j, following the
    /// ONNX reference implementation (neighbors of the source coordinate, edge-clamped), and a 0/1 vector of the outputs that
    /// fall outside the crop box of tf_crop_and_resize (they take the extrapolation value).</summary>
    private static (double[] W, double[] Extrapolated) InterpolationMatrix(OpContext c, int n, int o, double scale, string mode, string transform,
        string nearest, double a, bool excludeOutside, bool antialias, (double Start, double End)? roi)
    {
        var w = new double[n * o];
        var extrapolated = new double[o];
        // The reference implementation measures the output in scale * n (a fraction when scales are given), not in o.
        double length = scale * n;
        for (int j = 0; j < o; j++)
        {
            double x = transform switch
            {
                "half_pixel" => (j + 0.5) / scale - 0.5,
                "half_pixel_symmetric" => n / 2.0 * (1 - o / (scale * n)) + (j + 0.5) / scale - 0.5,
                "pytorch_half_pixel" => length > 1 ? (j + 0.5) / scale - 0.5 : 0,
                "align_corners" => length == 1 ? 0 : j * (n - 1.0) / (length - 1),
                "asymmetric" => j / scale,
                "tf_crop_and_resize" when roi is { } r => o > 1 ? r.Start * (n - 1) + j * (r.End - r.Start) * (n - 1) / (o - 1) : 0.5 * (r.Start + r.End) * (n - 1),
                "tf_crop_and_resize" => throw c.Invalid("tf_crop_and_resize needs the roi input"),
                _ => throw c.Unsupported($"coordinate_transformation_mode '{transform}' is not supported", "coordinate_transformation_mode"),
            };
            if (transform == "tf_crop_and_resize" && (x < 0 || x > n - 1)) { extrapolated[j] = 1; continue; }
            int b = (int)Math.Floor(x);
            double ratio = x - b;
            if (ratio == 0) { b--; ratio = 1; }
            double kernelScale = antialias && mode != "nearest" ? Math.Min(scale, 1) : 1;
            var (start, coeffs) = mode switch
            {
                "nearest" => (0, nearest switch
                {
                    _ when ratio == 1 => [0.0, 1],
                    "round_prefer_floor" => [ratio <= 0.5 ? 1 : 0, ratio > 0.5 ? 1 : 0],
                    "round_prefer_ceil" => [ratio < 0.5 ? 1 : 0, ratio >= 0.5 ? 1 : 0],
                    "floor" => [1.0, 0],
                    "ceil" => [0.0, 1],
                    _ => throw c.Unsupported($"nearest_mode '{nearest}' is not supported", "nearest_mode"),
                }),
                "linear" => LinearCoefficients(ratio, kernelScale),
                _ => CubicCoefficients(ratio, kernelScale, a),
            };
            bool normalize = antialias && kernelScale < 1;
            for (int t = 0; t < coeffs.Length; t++)
            {
                int idx = b + start + t;
                if (excludeOutside && (idx < 0 || idx >= n)) { coeffs[t] = 0; normalize = true; }
            }
            double total = normalize ? coeffs.Sum() : 1;
            for (int t = 0; t < coeffs.Length; t++)
                w[Math.Clamp(b + start + t, 0, n - 1) * o + j] += coeffs[t] / total;
        }
        return (w, extrapolated);
    }

    private static (int Start, double[] Coefficients) LinearCoefficients(double ratio, double scale)
    {
        int start = (int)Math.Floor(-1 / scale) + 1, footprint = 2 - 2 * start;
        return (start, Enumerable.Range(start, footprint).Select(i => Math.Clamp(1 - Math.Abs((i - ratio) * scale), 0, 1)).ToArray());
    }

    private static (int Start, double[] Coefficients) CubicCoefficients(double ratio, double scale, double a)
    {
        int start = (int)Math.Floor(-2 / scale) + 1, end = 2 - start;
        return (start, Enumerable.Range(start, end - start).Select(i =>
        {
            double t = Math.Abs(scale * (i - ratio));
            return t < 1 ? ((a + 2) * t - (a + 3)) * t * t + 1 : t < 2 ? ((a * t - 5 * a) * t + 8 * a) * t - 4 * a : 0;
        }).ToArray());
    }
}
