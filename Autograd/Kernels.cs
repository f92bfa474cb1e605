using Autograd.Backends;
using System.Numerics;
using System.Numerics.Tensors;

namespace Autograd;

/// <summary>A scalar function applied elementwise; a struct so the JIT specializes every loop.</summary>
internal interface IMap
{
    T F<T>(T x) where T : unmanaged, IFloatingPointIeee754<T>;
}

internal enum BinOp { Add, Sub, Mul, Div, Pow, Max, Min, Eq, Ne, Lt, Le, Gt, Ge }

/// <summary>The raw loops shared by the ops: broadcasting, maps, reductions and strided copies.
/// GEMM and transcendental functions go to the current backend.</summary>
internal static class Kernels
{
    private const int ParallelGrain = 1 << 15;

    /// <summary>Whether every element is finite (integer tensors always are).</summary>
    public static bool AllFinite(Tensor t) => t.DType switch
    {
        DType.Float32 => !t.Data<float>().Any(v => !float.IsFinite(v)),
        DType.Float64 => !t.Data<double>().Any(v => !double.IsFinite(v)),
        _ => true,
    };

    // ---------------- elementwise binary with broadcasting ----------------

    public static Tensor Binary(string op, BinOp kind, Tensor a, Tensor b)
    {
        Shape.SameDType(op, a, b);
        Shape.Float(op, a);
        var shape = Shape.Broadcast(op, a.Dims, b.Dims);
        var r = Tensor.Uninitialized(a.DType, shape);
        if (a.DType == DType.Float32) Binary<float>(kind, a, b, r); else Binary<double>(kind, a, b, r);
        return r;
    }

    private static void Binary<T>(BinOp kind, Tensor a, Tensor b, Tensor r) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (r.Numel == 0) return;
        var (dims, sa, sb) = Coalesce(r.Dims, Shape.BroadcastStrides(a.Dims, r.Dims), Shape.BroadcastStrides(b.Dims, r.Dims));
        int k = dims.Length, inner = dims[k - 1], ia = sa[k - 1], ib = sb[k - 1];
        int rows = r.Numel / inner;
        T[] A = a.Data<T>(), B = b.Data<T>(), R = r.Data<T>();
        void RowRange(int from, int to)
        {
            var idx = new int[k];
            int rem = from;
            for (int d = k - 2; d >= 0; d--) { idx[d] = rem % dims[d]; rem /= dims[d]; }
            for (int row = from; row < to; row++)
            {
                int oa = 0, ob = 0;
                for (int d = 0; d < k - 1; d++) { oa += idx[d] * sa[d]; ob += idx[d] * sb[d]; }
                Row(kind, A.AsSpan(oa, ia == 0 ? 1 : inner), ia, B.AsSpan(ob, ib == 0 ? 1 : inner), ib, R.AsSpan(row * inner, inner));
                for (int d = k - 2; d >= 0 && ++idx[d] == dims[d]; d--) idx[d] = 0;
            }
        }
        if (rows == 1)
            // One long row (same-shape operands): split across cores.
            Split(inner, (s, n) => Row(kind, A.AsSpan(ia == 0 ? 0 : s, ia == 0 ? 1 : n), ia, B.AsSpan(ib == 0 ? 0 : s, ib == 0 ? 1 : n), ib, R.AsSpan(s, n)));
        else if (r.Numel >= 2 * ParallelGrain && rows >= 2)
        {
            Threads.Ranges(rows, Math.Min(rows, Environment.ProcessorCount * 4), (_, from, to) => RowRange(from, to));
        }
        else RowRange(0, rows);
    }

    /// <summary>One contiguous row; a stride of 0 means that operand is a single broadcast value.</summary>
    private static void Row<T>(BinOp kind, ReadOnlySpan<T> a, int ia, ReadOnlySpan<T> b, int ib, Span<T> d) where T : unmanaged, IFloatingPointIeee754<T>
    {
        bool va = ia != 0, vb = ib != 0;
        switch (kind)
        {
            case BinOp.Add:
                if (va && vb) TensorPrimitives.Add(a, b, d); else if (va) TensorPrimitives.Add(a, b[0], d); else if (vb) TensorPrimitives.Add(b, a[0], d); else d.Fill(a[0] + b[0]);
                return;
            case BinOp.Mul:
                if (va && vb) TensorPrimitives.Multiply(a, b, d); else if (va) TensorPrimitives.Multiply(a, b[0], d); else if (vb) TensorPrimitives.Multiply(b, a[0], d); else d.Fill(a[0] * b[0]);
                return;
            case BinOp.Sub:
                if (va && vb) TensorPrimitives.Subtract(a, b, d); else if (va) TensorPrimitives.Subtract(a, b[0], d); else if (vb) TensorPrimitives.Subtract(a[0], b, d); else d.Fill(a[0] - b[0]);
                return;
            case BinOp.Div:
                if (va && vb) TensorPrimitives.Divide(a, b, d); else if (va) TensorPrimitives.Divide(a, b[0], d); else if (vb) TensorPrimitives.Divide(a[0], b, d); else d.Fill(a[0] / b[0]);
                return;
        }
        for (int i = 0; i < d.Length; i++)
        {
            T x = a[va ? i : 0], y = b[vb ? i : 0];
            d[i] = kind switch
            {
                BinOp.Pow => T.Pow(x, y),
                // NaN propagates as in torch.maximum / torch.minimum.
                BinOp.Max => T.IsNaN(x) || x > y ? x : y,
                BinOp.Min => T.IsNaN(x) || x < y ? x : y,
                BinOp.Eq => x == y ? T.One : T.Zero,
                BinOp.Ne => x != y ? T.One : T.Zero,
                BinOp.Lt => x < y ? T.One : T.Zero,
                BinOp.Le => x <= y ? T.One : T.Zero,
                BinOp.Gt => x > y ? T.One : T.Zero,
                _ => x >= y ? T.One : T.Zero,
            };
        }
    }

    /// <summary>Drops size-1 dims and merges adjacent dims that are contiguous in every operand.</summary>
    internal static (int[] Dims, int[] Sa, int[] Sb) Coalesce(int[] dims, int[] sa, int[] sb)
    {
        var d = new List<int>(); var a = new List<int>(); var b = new List<int>();
        for (int i = 0; i < dims.Length; i++)
        {
            if (dims[i] == 1) continue;
            int n = d.Count - 1;
            if (n >= 0 && a[n] == sa[i] * dims[i] && b[n] == sb[i] * dims[i]) { d[n] *= dims[i]; a[n] = sa[i]; b[n] = sb[i]; }
            else { d.Add(dims[i]); a.Add(sa[i]); b.Add(sb[i]); }
        }
        if (d.Count == 0) { d.Add(1); a.Add(1); b.Add(1); }
        return (d.ToArray(), a.ToArray(), b.ToArray());
    }

    // ---------------- elementwise maps ----------------

    public static Tensor Map<F>(string op, Tensor x, F f) where F : struct, IMap
    {
        Shape.Float(op, x);
        var r = Tensor.Uninitialized(x.DType, x.Dims);
        if (x.DType == DType.Float32) Map<float, F>(x.Data<float>(), r.Data<float>(), f); else Map<double, F>(x.Data<double>(), r.Data<double>(), f);
        return r;
    }

    private static void Map<T, F>(T[] x, T[] y, F f) where T : unmanaged, IFloatingPointIeee754<T> where F : struct, IMap =>
        Split(x.Length, (s, n) =>
        {
            for (int i = s; i < s + n; i++) y[i] = f.F(x[i]);
        });

    /// <summary>Runs <paramref name="range"/>(start, length) over [0, n): in one contiguous part per core from
    /// 2 * <see cref="ParallelGrain"/> elements on (if <paramref name="parallel"/>), else whole on the calling thread.</summary>
    private static void Split(int n, Action<int, int> range, bool parallel = true) =>
        Threads.Ranges(n, parallel && n >= 2 * ParallelGrain ? Environment.ProcessorCount : 1, (_, s, e) => range(s, e - s));

    /// <summary><c>d[i] = m[i] &gt; 0 ? g[i] : 0</c> (NaN in <paramref name="m"/> gives 0): relu's backward.</summary>
    public static void KeepWherePositive<T>(T[] g, T[] m, T[] d) where T : unmanaged, IFloatingPointIeee754<T> =>
        Split(d.Length, (s, n) =>
        {
            int i = s, end = s + n;
            if (Vector.IsHardwareAccelerated)
                for (; i <= end - Vector<T>.Count; i += Vector<T>.Count)
                {
                    var keep = Vector.GreaterThan(new Vector<T>(m.AsSpan(i)), Vector<T>.Zero);
                    Vector.ConditionalSelect(keep, new Vector<T>(g.AsSpan(i)), Vector<T>.Zero).CopyTo(d.AsSpan(i));
                }
            for (; i < end; i++) d[i] = m[i] > T.Zero ? g[i] : T.Zero;
        });

    /// <summary>A vectorized span function for each dtype, e.g. TensorPrimitives or the backend; split across the cores
    /// unless <paramref name="split"/> is false (a function that threads by itself).</summary>
    public static Tensor Spans(string op, Tensor x, SpanAction<float> f32, SpanAction<double> f64, bool split = true)
    {
        Shape.Float(op, x);
        var r = Tensor.Uninitialized(x.DType, x.Dims);
        if (x.DType == DType.Float32) Split(x.Numel, (s, n) => f32(x.Data<float>().AsSpan(s, n), r.Data<float>().AsSpan(s, n)), split);
        else Split(x.Numel, (s, n) => f64(x.Data<double>().AsSpan(s, n), r.Data<double>().AsSpan(s, n)), split);
        return r;
    }

    public delegate void SpanAction<T>(ReadOnlySpan<T> x, Span<T> y);

    /// <summary>A transcendental function through the backend; tensors under <see cref="SmallUnary"/> elements run the managed
    /// SIMD kernel on the calling thread instead.</summary>
    public static Tensor Unary(string op, Backends.UnaryKernel k, Tensor x) => x.Numel < SmallUnary
        ? Spans(op, x, (s, d) => Backends.ManagedBackend.UnaryChunk(k, s, d), (s, d) => Backends.ManagedBackend.UnaryChunk(k, s, d))
        : Spans(op, x, (s, d) => Backends.Backend.Current.Unary(k, s, d), (s, d) => Backends.Backend.Current.Unary(k, s, d), split: false);

    /// <summary>y = x^p elementwise: through the backend (MKL's vector pow, threaded) from <see cref="SmallUnary"/> elements
    /// on, on the calling thread below.</summary>
    public static void Pow<T>(ReadOnlySpan<T> x, T p, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (x.Length >= SmallUnary) Backend.Current.Pow(x, p, y);
        else for (int i = 0; i < x.Length; i++) y[i] = T.Pow(x[i], p);
    }

    /// <summary>Below this many elements a native library's vector math loses to managed SIMD: MKL's VML wakes its sleeping
    /// OpenMP threads even for LeNet-5's 640 logits (measured: CrossEntropy on [64, 10] forward+backward 51 -> 25 us, the
    /// step's loss phase 0.054 -> 0.026 ms).</summary>
    private const int SmallUnary = 1 << 12;

    // ---------------- reductions ----------------

    /// <summary>Sums over dims <c>[d0, d1)</c> (adjacent), viewing the input as (outer, reduce, inner).</summary>
    public static Tensor SumRange(Tensor x, int d0, int d1, int[] outShape)
    {
        int outer = 1, red = 1, inner = 1;
        for (int i = 0; i < x.Rank; i++) { if (i < d0) outer *= x.Dims[i]; else if (i < d1) red *= x.Dims[i]; else inner *= x.Dims[i]; }
        var r = Tensor.Uninitialized(x.DType, outShape);
        if (x.DType == DType.Float32) SumRange<float>(x.Data<float>(), r.Data<float>(), outer, red, inner);
        else SumRange<double>(x.Data<double>(), r.Data<double>(), outer, red, inner);
        return r;
    }

    private static void SumRange<T>(T[] x, T[] y, int outer, int red, int inner) where T : unmanaged, IFloatingPointIeee754<T>
    {
        void One(int o)
        {
            if (inner == 1) { y[o] = TensorPrimitives.Sum<T>(x.AsSpan(o * red, red)); return; }
            var acc = y.AsSpan(o * inner, inner);
            acc.Clear();
            for (int k = 0; k < red; k++) TensorPrimitives.Add(acc, x.AsSpan((o * red + k) * inner, inner), acc);
        }
        if (outer >= 2 && (long)outer * red * inner >= 2 * ParallelGrain) Threads.For(outer, One);
        else for (int o = 0; o < outer; o++) One(o);
    }

    /// <summary>Max (or min) of each row of the last dimension, with the index of its first occurrence.
    /// NaN counts as the maximum, as in PyTorch.</summary>
    public static (Tensor Values, long[] Index) ArgReduceLast(Tensor x, bool max)
    {
        int r = x.Dims[^1], rows = x.Numel / Math.Max(r, 1);
        var outShape = x.Dims[..^1];
        var v = Tensor.Uninitialized(x.DType, outShape);
        var idx = new long[rows];
        if (x.DType == DType.Float32) ArgReduce<float>(x.Data<float>(), v.Data<float>(), idx, r, max);
        else ArgReduce<double>(x.Data<double>(), v.Data<double>(), idx, r, max);
        return (v, idx);
    }

    private static void ArgReduce<T>(T[] x, T[] v, long[] idx, int r, bool max) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int row = 0; row < idx.Length; row++)
        {
            var s = x.AsSpan(row * r, r);
            int best = 0;
            for (int i = 1; i < r && !T.IsNaN(s[best]); i++)
                if (T.IsNaN(s[i]) || (max ? s[i] > s[best] : s[i] < s[best])) best = i;
            idx[row] = best;
            v[row] = s[best];
        }
    }

    // ---------------- copies ----------------

    /// <summary>Copies <paramref name="x"/> into a new tensor with dims permuted: result dim i is input dim perm[i].</summary>
    public static Tensor Permute(Tensor x, int[] perm)
    {
        var shape = perm.Select(p => x.Dims[p]).ToArray();
        var r = Tensor.Uninitialized(x.DType, shape);
        var srcStrides = Shape.Strides(x.Dims);
        StridedCopy(x.Storage, 0, perm.Select(p => srcStrides[p]).ToArray(), r.Storage, 0, Shape.Strides(shape), shape);
        return r;
    }

    /// <summary>Copies a strided view of <paramref name="src"/> into a strided view of <paramref name="dst"/>,
    /// both described by element offsets and per-dim strides over the same logical shape.</summary>
    public static void StridedCopy(Array src, int srcOffset, int[] srcStrides, Array dst, int dstOffset, int[] dstStrides, int[] shape)
    {
        if (Shape.Numel(shape) == 0) return;
        var (dims, ss, ds) = Coalesce(shape, srcStrides, dstStrides);
        switch (src)
        {
            case float[] f: StridedCopy(f, srcOffset, ss, (float[])dst, dstOffset, ds, dims); break;
            case double[] d: StridedCopy(d, srcOffset, ss, (double[])dst, dstOffset, ds, dims); break;
            default: StridedCopy((long[])src, srcOffset, ss, (long[])dst, dstOffset, ds, dims); break;
        }
    }

    private static void StridedCopy<T>(T[] src, int so, int[] ss, T[] dst, int doff, int[] ds, int[] dims)
    {
        int k = dims.Length, inner = dims[k - 1], si = ss[k - 1], di = ds[k - 1];
        var idx = new int[k];
        int rows = Shape.Numel(dims) / inner;
        for (int row = 0; row < rows; row++)
        {
            int a = so, b = doff;
            for (int d = 0; d < k - 1; d++) { a += idx[d] * ss[d]; b += idx[d] * ds[d]; }
            if (si == 1 && di == 1) Array.Copy(src, a, dst, b, inner);
            else if (si == 0 && di == 1) dst.AsSpan(b, inner).Fill(src[a]);
            else for (int i = 0; i < inner; i++) dst[b + i * di] = src[a + i * si];
            for (int d = k - 2; d >= 0 && ++idx[d] == dims[d]; d--) idx[d] = 0;
        }
    }
}
