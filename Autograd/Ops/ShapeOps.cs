using Autograd.Backends;
using System.Runtime.CompilerServices;

namespace Autograd;

public static partial class Functional
{
    /// <summary>Same data, new shape (one dim may be -1). Shares storage with the input.</summary>
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        var s = Shape.Infer("Reshape", x.Dims, shape);
        return AutoGrad.Record(x.ShareStorage(s), "Reshape", Saves.None, g => [g.Reshape(x.Dims)], x);
    }

    /// <summary>Flattens dims <paramref name="startDim"/>..<paramref name="endDim"/> into one.</summary>
    public static Tensor Flatten(Tensor x, int startDim = 0, int endDim = -1)
    {
        if (x.Rank == 0) return x.Reshape(1);
        int s = Shape.Dim("Flatten", startDim, x.Rank), e = Shape.Dim("Flatten", endDim, x.Rank);
        if (s > e) throw new ArgumentException($"Flatten: startDim ({startDim}) must not come after endDim ({endDim}) for shape {Shape.Str(x.Dims)}");
        return x.Reshape([.. x.Dims[..s], -1, .. x.Dims[(e + 1)..]]);
    }

    /// <summary>Removes dim <paramref name="dim"/> if it has size 1, or every size-1 dim when null.</summary>
    public static Tensor Squeeze(Tensor x, int? dim = null)
    {
        if (dim == null) return x.Reshape(x.Dims.Where(d => d != 1).ToArray());
        int d = Shape.Dim("Squeeze", dim.Value, x.Rank);
        return x.Rank == 0 || x.Dims[d] != 1 ? x : x.Reshape([.. x.Dims[..d], .. x.Dims[(d + 1)..]]);
    }

    /// <summary>Inserts a size-1 dim at <paramref name="dim"/>.</summary>
    public static Tensor Unsqueeze(Tensor x, int dim)
    {
        int d = Shape.Dim("Unsqueeze", dim, x.Rank, forInsert: true);
        return x.Reshape([.. x.Dims[..d], 1, .. x.Dims[d..]]);
    }

    /// <summary>Reorders dims: result dim i is input dim <paramref name="dims"/>[i].</summary>
    public static Tensor Permute(Tensor x, params int[] dims)
    {
        if (dims.Length != x.Rank) throw new ArgumentException($"Permute: {Shape.Str(dims)} has {dims.Length} dims, input {Shape.Str(x.Dims)} has {x.Rank}");
        var p = dims.Select(d => Shape.Dim("Permute", d, x.Rank)).ToArray();
        if (p.Distinct().Count() != p.Length) throw new ArgumentException($"Permute: {Shape.Str(dims)} repeats a dim");
        var inv = new int[p.Length];
        for (int i = 0; i < p.Length; i++) inv[p[i]] = i;
        var r = AutoGrad.Record(Kernels.Permute(x, p), "Permute", Saves.None, g => [g.Permute(inv)], x);
        return OpTrace.Active ? OpTrace.Add("Permute", r, [x], ("perm", p)) : r;
    }

    /// <summary>Swaps two dims.</summary>
    public static Tensor Transpose(Tensor x, int dim0, int dim1)
    {
        int a = Shape.Dim("Transpose", dim0, x.Rank), b = Shape.Dim("Transpose", dim1, x.Rank);
        var p = Enumerable.Range(0, x.Rank).ToArray();
        (p[a], p[b]) = (p[b], p[a]);
        return x.Permute(p);
    }

    /// <summary>Broadcasts to a larger shape (-1 keeps a size); the values are copied.</summary>
    public static Tensor Expand(Tensor x, params int[] shape)
    {
        if (shape.Length < x.Rank) throw new ArgumentException($"Expand: target {Shape.Str(shape)} has fewer dims than input {Shape.Str(x.Dims)}");
        var s = (int[])shape.Clone();
        int lead = s.Length - x.Rank;
        for (int i = 0; i < s.Length; i++)
        {
            int src = i < lead ? 1 : x.Dims[i - lead];
            if (s[i] == -1 && i >= lead) s[i] = src;
            if (src != 1 && src != s[i]) throw new ArgumentException($"Expand: input {Shape.Str(x.Dims)} cannot be expanded to {Shape.Str(shape)} (dim {i}: {src} vs {s[i]})");
        }
        if (Shape.Same(s, x.Dims)) return x;
        var r = Tensor.Uninitialized(x.DType, s);
        Kernels.StridedCopy(x.Storage, 0, Shape.BroadcastStrides(x.Dims, s), r.Storage, 0, Shape.Strides(s), s);
        return AutoGrad.Record(r, "Expand", Saves.None, g => [SumTo(g, x.Dims)], x);
    }

    /// <summary>Tiles the tensor: dim i repeated <paramref name="repeats"/>[i] times (like <c>torch.Tensor.repeat</c>).</summary>
    public static Tensor Repeat(Tensor x, params int[] repeats)
    {
        if (repeats.Length < x.Rank) throw new ArgumentException($"Repeat: {repeats.Length} repeats for a tensor of rank {x.Rank} {Shape.Str(x.Dims)}");
        var dims = Enumerable.Repeat(1, repeats.Length - x.Rank).Concat(x.Dims).ToArray();
        var inter = dims.SelectMany(d => new[] { 1, d }).ToArray();
        var expanded = dims.SelectMany((d, i) => new[] { repeats[i], d }).ToArray();
        return x.Reshape(inter).Expand(expanded).Reshape(dims.Select((d, i) => d * repeats[i]).ToArray());
    }

    /// <summary>Elements <c>start, start+step, ...</c> below <paramref name="end"/> along <paramref name="dim"/>
    /// (Python slicing: negative indices count from the end, out-of-range bounds are clamped).</summary>
    public static Tensor Slice(Tensor x, int dim, int? start = null, int? end = null, int step = 1)
    {
        int d = Shape.Dim("Slice", dim, x.Rank), n = x.Dims[d];
        if (step <= 0) throw new ArgumentException($"Slice: step must be positive, got {step}");
        int Norm(int? v, int dflt) => v is int i ? Math.Clamp(i < 0 ? i + n : i, 0, n) : dflt;
        int s = Norm(start, 0), e = Math.Max(s, Norm(end, n));
        int len = (e - s + step - 1) / step;
        var shape = (int[])x.Dims.Clone();
        shape[d] = len;
        var r = Tensor.Empty(x.DType, shape);
        var st = Shape.Strides(x.Dims);
        var srcStrides = (int[])st.Clone();
        srcStrides[d] *= step;
        Kernels.StridedCopy(x.Storage, s * st[d], srcStrides, r.Storage, 0, Shape.Strides(shape), shape);
        AutoGrad.Record(r, "Slice", Saves.None, g => [Embed(g, x.Dims, d, s, step)], x);
        return OpTrace.Active ? OpTrace.Add("Slice", r, [x], ("axis", d), ("start", s), ("end", e), ("step", step)) : r;
    }

    /// <summary>The adjoint of <see cref="Slice"/>: zeros of <paramref name="shape"/> with <paramref name="g"/> at the sliced positions.</summary>
    private static Tensor Embed(Tensor g, int[] shape, int d, int start, int step)
    {
        var r = Tensor.Zeros(shape, g.DType);
        var st = Shape.Strides(shape);
        var dstStrides = (int[])st.Clone();
        dstStrides[d] *= step;
        Kernels.StridedCopy(g.Storage, 0, Shape.Strides(g.Dims), r.Storage, start * st[d], dstStrides, g.Dims);
        int end = start + g.Dims[d] * step;
        return AutoGrad.Record(r, "SliceBackward", Saves.None, gg => [Slice(gg, d, start, end, step)], g);
    }

    /// <summary><paramref name="length"/> elements from <paramref name="start"/> along <paramref name="dim"/>.</summary>
    public static Tensor Narrow(Tensor x, int dim, int start, int length)
    {
        int d = Shape.Dim("Narrow", dim, x.Rank);
        if (start < 0) start += x.Dims[d];
        if (start < 0 || length < 0 || start + length > x.Dims[d])
            throw new ArgumentOutOfRangeException(nameof(start), $"Narrow: start {start} + length {length} exceeds dim {d} of size {x.Dims[d]} (shape {Shape.Str(x.Dims)})");
        return Slice(x, d, start, start + length);
    }

    /// <summary>Concatenates along <paramref name="dim"/>; all other dims must match.</summary>
    public static Tensor Cat(Tensor[] tensors, int dim = 0)
    {
        if (tensors.Length == 0) throw new ArgumentException("Cat: expected a non-empty list of tensors");
        var first = tensors[0];
        int d = Shape.Dim("Cat", dim, first.Rank);
        foreach (var t in tensors)
        {
            Shape.SameDType("Cat", first, t);
            if (t.Rank != first.Rank || Enumerable.Range(0, t.Rank).Any(i => i != d && t.Dims[i] != first.Dims[i]))
                throw new ArgumentException($"Cat: sizes must match except in dim {d}, got {Shape.Join(tensors)}");
        }
        var shape = (int[])first.Dims.Clone();
        shape[d] = tensors.Sum(t => t.Dims[d]);
        var r = Tensor.Empty(first.DType, shape);
        var rs = Shape.Strides(shape);
        int offset = 0;
        foreach (var t in tensors)
        {
            Kernels.StridedCopy(t.Storage, 0, Shape.Strides(t.Dims), r.Storage, offset * rs[d], rs, t.Dims);
            offset += t.Dims[d];
        }
        AutoGrad.Record(r, "Cat", Saves.None, g =>
        {
            var grads = new Tensor?[tensors.Length];
            for (int i = 0, o = 0; i < tensors.Length; o += tensors[i].Dims[d], i++)
                grads[i] = tensors[i].RequiresGrad ? Narrow(g, d, o, tensors[i].Dims[d]) : null;
            return grads;
        }, tensors);
        return OpTrace.Active ? OpTrace.Add("Cat", r, tensors, ("axis", d)) : r;
    }

    /// <summary>Stacks equal-shaped tensors along a new dim.</summary>
    public static Tensor Stack(Tensor[] tensors, int dim = 0)
    {
        if (tensors.Length == 0) throw new ArgumentException("Stack: expected a non-empty list of tensors");
        foreach (var t in tensors)
            if (!Shape.Same(t.Dims, tensors[0].Dims)) throw new ArgumentException($"Stack: all tensors must have the same shape, got {Shape.Join(tensors)}");
        int d = Shape.Dim("Stack", dim, tensors[0].Rank, forInsert: true);
        return Cat(tensors.Select(t => t.Unsqueeze(d)).ToArray(), d);
    }

    /// <summary>Splits into pieces of <paramref name="splitSize"/> along <paramref name="dim"/> (the last may be smaller).</summary>
    public static Tensor[] Split(Tensor x, int splitSize, int dim = 0)
    {
        int d = Shape.Dim("Split", dim, x.Rank), n = x.Dims[d];
        if (splitSize <= 0) throw new ArgumentException($"Split: splitSize must be positive, got {splitSize}");
        var sizes = new List<int>();
        for (int o = 0; o < n; o += splitSize) sizes.Add(Math.Min(splitSize, n - o));
        return Split(x, sizes.ToArray(), d);
    }

    /// <summary>Splits into pieces of the given sizes along <paramref name="dim"/>; the sizes must add up to that dim.</summary>
    public static Tensor[] Split(Tensor x, int[] sizes, int dim = 0)
    {
        int d = Shape.Dim("Split", dim, x.Rank);
        if (sizes.Sum() != x.Dims[d] || sizes.Any(s => s < 0))
            throw new ArgumentException($"Split: sizes {Shape.Str(sizes)} must be non-negative and add up to {x.Dims[d]} (dim {d} of {Shape.Str(x.Dims)})");
        var r = new Tensor[sizes.Length];
        for (int i = 0, o = 0; i < sizes.Length; o += sizes[i], i++) r[i] = Narrow(x, d, o, sizes[i]);
        return r;
    }

    /// <summary>Splits into <paramref name="chunks"/> pieces of size ceil(n / chunks) (fewer if n is small), like <c>torch.chunk</c>.</summary>
    public static Tensor[] Chunk(Tensor x, int chunks, int dim = 0)
    {
        if (chunks <= 0) throw new ArgumentException($"Chunk: chunks must be positive, got {chunks}");
        int d = Shape.Dim("Chunk", dim, x.Rank);
        return Split(x, Math.Max(1, (x.Dims[d] + chunks - 1) / chunks), d);
    }

    private static Tensor PadConstant(Tensor x, int[] pad, double value)
    {
        var shape = (int[])x.Dims.Clone();
        var before = new int[x.Rank];
        for (int i = 0; i < pad.Length / 2; i++)
        {
            int d = x.Rank - 1 - i;
            before[d] = pad[2 * i];
            shape[d] += pad[2 * i] + pad[2 * i + 1];
        }
        var r = Tensor.Full(shape, value, x.DType);
        var rs = Shape.Strides(shape);
        Kernels.StridedCopy(x.Storage, 0, Shape.Strides(x.Dims), r.Storage, before.Select((b, i) => b * rs[i]).Sum(), rs, x.Dims);
        AutoGrad.Record(r, "Pad", Saves.None, g =>
        {
            for (int d = 0; d < x.Rank; d++) if (shape[d] != x.Dims[d]) g = Narrow(g, d, before[d], x.Dims[d]);
            return [g];
        }, x);
        return OpTrace.Active ? OpTrace.Add("Pad", r, [x], ("pads", (int[])[.. before, .. before.Select((b, k) => shape[k] - x.Dims[k] - b)]), ("value", value)) : r;
    }

    private static int[] CheckIndex(string op, Tensor index, int bound, string what)
    {
        if (index.DType != DType.Int64) throw new ArgumentException($"{op}: index must be Int64, got {index.DType} {Shape.Str(index.Dims)}");
        var idx = index.Data<long>();
        var r = new int[idx.Length];
        for (int i = 0; i < idx.Length; i++)
        {
            long v = idx[i] < 0 ? idx[i] + bound : idx[i];
            if (v < 0 || v >= bound) throw new ArgumentOutOfRangeException(nameof(index), $"{op}: index {idx[i]} at position {i} is out of range for {what} of size {bound}");
            r[i] = (int)v;
        }
        return r;
    }

    /// <summary>Selects the slices <paramref name="index"/> (1-d Int64) along <paramref name="dim"/>.</summary>
    public static Tensor IndexSelect(Tensor x, int dim, Tensor index)
    {
        int d = Shape.Dim("IndexSelect", dim, x.Rank);
        if (index.Rank > 1) throw new ArgumentException($"IndexSelect: index must be 0-d or 1-d, got {Shape.Str(index.Dims)}");
        var idx = CheckIndex("IndexSelect", index, x.Dims[d], $"dim {d} of {Shape.Str(x.Dims)}");
        var shape = (int[])x.Dims.Clone();
        shape[d] = idx.Length;
        var r = Tensor.Empty(x.DType, shape);
        var (xs, rs) = (Shape.Strides(x.Dims), Shape.Strides(shape));
        var sliceShape = (int[])x.Dims.Clone();
        sliceShape[d] = 1;
        for (int i = 0; i < idx.Length; i++) Kernels.StridedCopy(x.Storage, idx[i] * xs[d], xs, r.Storage, i * rs[d], rs, sliceShape);
        AutoGrad.Record(r, "IndexSelect", Saves.None, g => [IndexAdd(g, x.Dims, d, index, idx), null], x, index);
        return OpTrace.Active ? OpTrace.Add("IndexSelect", r, [x, index], ("axis", d)) : r;
    }

    /// <summary>The adjoint of IndexSelect: zeros of <paramref name="shape"/> with slice i of g added at idx[i].</summary>
    private static Tensor IndexAdd(Tensor g, int[] shape, int d, Tensor index, int[] idx)
    {
        var r = Tensor.Zeros(shape, g.DType);
        using (AutoGrad.NoGrad())
            for (int i = 0; i < idx.Length; i++)
            {
                var cur = Narrow(r, d, idx[i], 1) + Narrow(g, d, i, 1);
                Kernels.StridedCopy(cur.Storage, 0, Shape.Strides(cur.Dims), r.Storage, idx[i] * Shape.Strides(shape)[d], Shape.Strides(shape), cur.Dims);
            }
        return AutoGrad.Record(r, "IndexSelectBackward", Saves.None, gg => [IndexSelect(gg, d, index)], g);
    }

    /// <summary><c>out[i][j][k] = x[i][index[i][j][k]][k]</c> for dim 1 (and likewise for any dim), like <c>torch.gather</c>.</summary>
    public static Tensor Gather(Tensor x, int dim, Tensor index)
    {
        int d = Shape.Dim("Gather", dim, x.Rank);
        if (index.Rank != x.Rank || Enumerable.Range(0, x.Rank).Any(i => i != d && index.Dims[i] > x.Dims[i]))
            throw new ArgumentException($"Gather: index {Shape.Str(index.Dims)} must have the rank of input {Shape.Str(x.Dims)} and no larger size outside dim {d}");
        var idx = CheckIndex("Gather", index, x.Dims[d], $"dim {d} of {Shape.Str(x.Dims)}");
        return TakeFlat(x, GatherOffsets(x.Dims, index.Dims, d, idx), index.Dims);
    }

    /// <summary><c>r[i] = x.flat[map[i]]</c> (0 where map[i] is -1), of <paramref name="shape"/>. Its adjoint is
    /// <see cref="PutFlat"/>; Gather, max pooling and max unpooling are built on this pair. With <paramref name="planes"/>
    /// p, splitting x and r each into p equal planes, plane i of r reads only plane i of x (pooling's windows), so the adjoint
    /// runs plane by plane across the cores. <paramref name="taken"/>: r, when the caller has already gathered it.
    /// <paramref name="tiles"/>: the geometry of a max pooling whose windows tile each plane (see <see cref="PutFlat"/>).</summary>
    internal static Tensor TakeFlat(Tensor x, int[] map, int[] shape, int planes = 1, Tensor? taken = null, PoolGeometry? tiles = null)
    {
        var r = taken ?? Gather(x, map, shape);
        return AutoGrad.Record(r, "TakeFlat", Saves.None, g => [PutFlat(g, map, x.Dims, planes, tiles)], x);

        static Tensor Gather(Tensor x, int[] map, int[] shape)
        {
            var r = Tensor.Uninitialized(x.DType, shape);
            if (x.DType == DType.Float32) Take(x.Data<float>(), map, r.Data<float>()); else Take(x.Data<double>(), map, r.Data<double>());
            return r;
        }

        static void Take<T>(T[] src, int[] m, T[] dst) where T : struct
        {
            for (int i = 0; i < m.Length; i++) dst[i] = m[i] < 0 ? default : src[m[i]];
        }
    }

    /// <summary>Zeros of <paramref name="shape"/> with <c>g[i]</c> added at <c>flat[map[i]]</c> (skipping -1): the adjoint of
    /// <see cref="TakeFlat"/>, whose <paramref name="planes"/> it takes. For a float max pooling whose windows tile the planes
    /// (<paramref name="tiles"/>, see <see cref="PoolKernels{T}.Tiles2x2"/>) each element is written once instead, the
    /// gradient where it is its window's maximum and 0 elsewhere.</summary>
    internal static Tensor PutFlat(Tensor g, int[] map, int[] shape, int planes = 1, PoolGeometry? tiles = null)
    {
        var r = Tensor.Uninitialized(g.DType, shape);
        if (g.DType == DType.Float32) Put(g.Data<float>(), map, r.Data<float>(), planes, tiles); else Put(g.Data<double>(), map, r.Data<double>(), planes, null);
        return AutoGrad.Record(r, "PutFlat", Saves.None, gg => [TakeFlat(gg, map, g.Dims, planes)], g);

        // Contiguous runs of planes, one per core for a large result: each zeroes its planes and adds into them.
        static void Put<T>(T[] src, int[] m, T[] dst, int planes, PoolGeometry? tiles) where T : System.Numerics.INumber<T>
        {
            int parts = planes >= 2 && dst.Length >= 1 << 16 ? Math.Min(planes, Environment.ProcessorCount) : 1;
            int outPlane = m.Length / planes, inPlane = dst.Length / planes;
            Threads.Ranges(planes, parts, (_, p0, p1) =>
            {
                if (tiles != null)
                {
                    PoolKernels<float>.Unpool2x2(tiles, m, Unsafe.As<T[], float[]>(ref src), Unsafe.As<T[], float[]>(ref dst), p0, p1);
                    return;
                }
                Array.Clear(dst, p0 * inPlane, (p1 - p0) * inPlane);
                for (int i = p0 * outPlane; i < p1 * outPlane; i++) if (m[i] >= 0) dst[m[i]] += src[i];
            });
        }
    }

    /// <summary>For each element of the index tensor, the flat offset it reads in the input.</summary>
    private static int[] GatherOffsets(int[] xDims, int[] iDims, int d, int[] idx)
    {
        var xs = Shape.Strides(xDims);
        var map = new int[idx.Length];
        var pos = new int[iDims.Length];
        for (int i = 0; i < idx.Length; i++)
        {
            int off = 0;
            for (int k = 0; k < iDims.Length; k++) off += (k == d ? idx[i] : pos[k]) * xs[k];
            map[i] = off;
            for (int k = iDims.Length - 1; k >= 0 && ++pos[k] == iDims[k]; k--) pos[k] = 0;
        }
        return map;
    }
}

public sealed partial class Tensor
{
    /// <summary>See <see cref="Functional.Reshape"/>.</summary>
    public Tensor Reshape(params int[] shape) => Functional.Reshape(this, shape);
    /// <summary>Alias of <see cref="Reshape"/> (every tensor is contiguous).</summary>
    public Tensor View(params int[] shape) => Functional.Reshape(this, shape);
    /// <summary>See <see cref="Functional.Flatten"/>.</summary>
    public Tensor Flatten(int startDim = 0, int endDim = -1) => Functional.Flatten(this, startDim, endDim);
    /// <summary>See <see cref="Functional.Squeeze"/>.</summary>
    public Tensor Squeeze(int? dim = null) => Functional.Squeeze(this, dim);
    /// <summary>See <see cref="Functional.Unsqueeze"/>.</summary>
    public Tensor Unsqueeze(int dim) => Functional.Unsqueeze(this, dim);
    /// <summary>See <see cref="Functional.Permute"/>.</summary>
    public Tensor Permute(params int[] dims) => Functional.Permute(this, dims);
    /// <summary>See <see cref="Functional.Transpose"/>.</summary>
    public Tensor Transpose(int dim0, int dim1) => Functional.Transpose(this, dim0, dim1);
    /// <summary>Transpose of a 2-d tensor.</summary>
    public Tensor T => Functional.Transpose(this, 0, 1);
    /// <summary>See <see cref="Functional.Expand"/>.</summary>
    public Tensor Expand(params int[] shape) => Functional.Expand(this, shape);
    /// <summary>See <see cref="Functional.Repeat"/>.</summary>
    public Tensor Repeat(params int[] repeats) => Functional.Repeat(this, repeats);
    /// <summary>See <see cref="Functional.Slice"/>.</summary>
    public Tensor Slice(int dim, int? start = null, int? end = null, int step = 1) => Functional.Slice(this, dim, start, end, step);
    /// <summary>See <see cref="Functional.Narrow"/>.</summary>
    public Tensor Narrow(int dim, int start, int length) => Functional.Narrow(this, dim, start, length);
    /// <summary>See <see cref="Functional.IndexSelect"/>.</summary>
    public Tensor IndexSelect(int dim, Tensor index) => Functional.IndexSelect(this, dim, index);
    /// <summary>See <see cref="Functional.Gather"/>.</summary>
    public Tensor Gather(int dim, Tensor index) => Functional.Gather(this, dim, index);
}
