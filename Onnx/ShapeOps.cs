using static Autograd.Functional;

namespace Autograd.Onnx;

internal static partial class Ops
{
    private static int[] ToInts(OpContext c, IEnumerable<long> v) => v.Select(x => x is >= int.MinValue and <= int.MaxValue ? (int)x
        : throw c.Invalid($"value {x} does not fit a dimension")).ToArray();

    /// <summary>Reshape: 0 copies the input's dim (unless <c>allowzero</c>), -1 is inferred; the shape is an attribute before opset 5.</summary>
    private static Tensor ReshapeOp(OpContext c)
    {
        var x = c.Input(0);
        var shape = ToInts(c, c.IntsFromAttrOrInput("shape", 1, 5) ?? throw c.Invalid("no shape given"));
        bool allowZero = c.Bool("allowzero", false);
        c.Ignore("consumed_inputs");
        for (int i = 0; i < shape.Length; i++)
            if (shape[i] == 0 && !allowZero)
                shape[i] = i < x.Rank ? x.Shape[i] : throw c.Invalid($"shape {Str(shape)} copies dim {i}, the input has rank {x.Rank}");
        if (shape.Contains(-1) && shape.Contains(0)) throw c.Invalid($"shape {Str(shape)} has both -1 and 0");
        return x.Reshape(shape);
    }

    private static string Str(IEnumerable<int> s) => "[" + string.Join(", ", s) + "]";

    private static Tensor FlattenOp(OpContext c)
    {
        var x = c.Input(0);
        int axis = (int)c.Int("axis", 1);
        if (axis < 0) axis += x.Rank;
        if (axis < 0 || axis > x.Rank) throw c.Invalid($"axis {c.Int("axis", 1)} is out of range for rank {x.Rank}");
        int outer = x.Shape[..axis].Aggregate(1, (p, d) => p * d);
        return x.Reshape(outer, outer == 0 ? 0 : x.Numel / outer);
    }

    private static Tensor SqueezeOp(OpContext c)
    {
        var x = c.Input(0);
        var axes = c.IntsFromAttrOrInput("axes", 1, 13);
        if (axes == null) return x.Reshape(x.Shape.Where(d => d != 1).ToArray());
        var dims = axes.Select(a => c.Axis(a, x.Rank)).ToHashSet();
        foreach (var d in dims) if (x.Shape[d] != 1) throw c.Invalid($"cannot squeeze dim {d} of size {x.Shape[d]}");
        return x.Reshape(x.Shape.Where((_, i) => !dims.Contains(i)).ToArray());
    }

    private static Tensor UnsqueezeOp(OpContext c)
    {
        var x = c.Input(0);
        var axes = c.IntsFromAttrOrInput("axes", 1, 13) ?? throw c.Invalid("no axes given");
        int rank = x.Rank + axes.Length;
        var inserted = axes.Select(a => c.Axis(a, rank)).ToHashSet();
        if (inserted.Count != axes.Length) throw c.Invalid("axes repeat a dim");
        var shape = new int[rank];
        for (int i = 0, j = 0; i < rank; i++) shape[i] = inserted.Contains(i) ? 1 : x.Shape[j++];
        return x.Reshape(shape);
    }

    private static Tensor TransposeOp(OpContext c)
    {
        var x = c.Input(0);
        var perm = c.Ints("perm") is { } p ? ToInts(c, p) : Enumerable.Range(0, x.Rank).Reverse().ToArray();
        return x.Rank < 2 ? x : Permute(x, perm);
    }

    private static OnnxValue[] SplitOp(OpContext c)
    {
        var v = c.Value(0);
        int axis = c.Axis(c.Int("axis", 0), v.Tensor.Rank), n = v.Tensor.Shape[axis];
        var split = c.IntsFromAttrOrInput("split", 1, 13);
        int parts = c.Opset >= 18 && c.Attr("num_outputs") is { } no ? (int)no.I : c.Node.Outputs.Count;
        int[] sizes;
        if (split != null) sizes = ToInts(c, split);
        else
        {
            // Equal parts; from opset 18 an uneven split makes the last part smaller (ceil-sized parts before it).
            int each = (n + parts - 1) / parts;
            sizes = Enumerable.Range(0, parts).Select(i => Math.Max(0, Math.Min(each, n - i * each))).ToArray();
            if (c.Opset < 18 && n % parts != 0) throw c.Invalid($"dim {axis} of size {n} does not split into {parts} equal parts");
        }
        return [.. Functional.Split(v.Tensor, sizes, axis).Select(t => v with { Tensor = t })];
    }

    /// <summary>Slice with ONNX's clamping; negative steps walk backwards (an index selection, differentiable).</summary>
    private static Tensor SliceOp(OpContext c)
    {
        var x = c.Input(0);
        long[] starts, ends;
        long[]? axes, steps = null;
        if (c.Opset < 10)
        {
            starts = c.Ints("starts") ?? throw c.Invalid("attribute 'starts' is required");
            ends = c.Ints("ends") ?? throw c.Invalid("attribute 'ends' is required");
            axes = c.Ints("axes");
        }
        else
        {
            (starts, ends) = (c.Longs(1), c.Longs(2));
            axes = c.Has(3) ? c.Longs(3) : null;
            steps = c.Has(4) ? c.Longs(4) : null;
        }
        axes ??= [.. Enumerable.Range(0, starts.Length).Select(i => (long)i)];
        if (starts.Length != ends.Length || axes.Length != starts.Length || steps != null && steps.Length != starts.Length)
            throw c.Invalid("starts, ends, axes and steps must have the same length");
        for (int i = 0; i < axes.Length; i++)
        {
            int d = c.Axis(axes[i], x.Rank), n = x.Shape[d];
            long step = steps?[i] ?? 1;
            if (step == 0) throw c.Invalid("steps must be non-zero");
            long s = starts[i] < 0 ? starts[i] + n : starts[i], e = ends[i] < 0 ? ends[i] + n : ends[i];
            if (step > 0)
            {
                s = Math.Clamp(s, 0, n); e = Math.Clamp(e, 0, n);
                x = Slice(x, d, (int)s, (int)Math.Max(s, e), (int)Math.Min(step, int.MaxValue));
            }
            else
            {
                s = Math.Clamp(s, 0, n - 1); e = Math.Clamp(e, -1, n - 1);
                var idx = new List<long>();
                for (long j = s; j > e; j += step) idx.Add(j);
                x = IndexSelect(x, d, Tensor.From(idx.ToArray(), idx.Count));
            }
        }
        return x;
    }

    private static Tensor GatherOp(OpContext c)
    {
        var x = c.Input(0);
        var index = c.Input(1);
        int axis = c.Axis(c.Int("axis", 0), x.Rank);
        var picked = IndexSelect(x, axis, index.Reshape(-1));
        return picked.Reshape([.. x.Shape[..axis], .. index.Shape, .. x.Shape[(axis + 1)..]]);
    }

    /// <summary>Pad: ONNX pads are [begin of each axis..., end of each axis...]; modes constant, reflect, edge, wrap; negative pads crop.
    /// Pads, value and axes are attributes before opset 11 and inputs from then on.</summary>
    private static Tensor PadOp(OpContext c)
    {
        var x = c.Input(0);
        var pads = (c.Opset < 11 ? c.Ints(c.Opset < 2 ? "paddings" : "pads") : c.Longs(1)) ?? throw c.Invalid("no pads given");
        double value = c.Opset < 11 ? c.Float("value", 0) : c.Has(2) ? c.Input(2).Item() : 0;
        var axes = c.Opset >= 18 && c.Has(3) ? c.Longs(3).Select(a => c.Axis(a, x.Rank)).ToArray() : Enumerable.Range(0, x.Rank).ToArray();
        if (pads.Length != 2 * axes.Length) throw c.Invalid($"pads has {pads.Length} values, expected {2 * axes.Length}");
        string mode = c.Str("mode", "constant");
        var framework = mode switch
        {
            "constant" => "constant",
            "reflect" => "reflect",
            "edge" => "replicate",
            "wrap" => "circular",
            _ => throw c.Unsupported($"mode '{mode}' is not supported", "mode"),
        };
        var before = new int[x.Rank];
        var after = new int[x.Rank];
        for (int i = 0; i < axes.Length; i++) { before[axes[i]] = (int)pads[i]; after[axes[i]] = (int)pads[i + axes.Length]; }
        // Crop negative pads first, then pad the rest (F.pad order: last dim first).
        for (int d = 0; d < x.Rank; d++)
            if (before[d] < 0 || after[d] < 0)
            {
                int lo = Math.Max(0, -before[d]), hi = x.Shape[d] - Math.Max(0, -after[d]);
                x = Slice(x, d, lo, Math.Max(lo, hi));
            }
        var fp = new int[2 * x.Rank];
        for (int d = 0; d < x.Rank; d++) { fp[2 * (x.Rank - 1 - d)] = Math.Max(0, before[d]); fp[2 * (x.Rank - 1 - d) + 1] = Math.Max(0, after[d]); }
        if (fp.All(p => p == 0)) return x;
        if (x.DType == DType.Int64)
            return Pad(x.To(DType.Float64), fp, framework, value).To(DType.Int64);
        return Pad(x, fp, framework, value);
    }
}
