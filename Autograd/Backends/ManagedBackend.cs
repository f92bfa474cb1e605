using System.Numerics;
using System.Numerics.Tensors;

namespace Autograd.Backends;

/// <summary>Pure C# kernels: TensorPrimitives for elementwise math, a cache-blocked SIMD GEMM.
/// Works everywhere and is the oracle the native backends are tested against.</summary>
public class ManagedBackend : IBackend
{
    /// <inheritdoc/>
    public virtual string Name => "managed";

    /// <inheritdoc/>
    public virtual void Gemm<T>(in GemmSpec spec, T alpha, T[] a, T[] b, T beta, T[] c) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Check(spec, a, b, c);
        ManagedGemm.Gemm(spec, alpha, a, b, beta, c);
    }

    /// <inheritdoc/>
    public virtual void Unary<T>(UnaryKernel kernel, ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        Chunked($"Unary {kernel}", x, y, (s, d) => UnaryChunk(kernel, s, d));

    /// <inheritdoc/>
    public virtual void Pow<T>(ReadOnlySpan<T> x, T p, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T> =>
        Chunked("Pow", x, y, (s, d) =>
        {
            for (int i = 0; i < s.Length; i++) d[i] = T.Pow(s[i], p);
        });

    /// <summary>Runs <paramref name="chunk"/> over equal-length spans, split across the cores when long: transcendentals are
    /// compute-bound.</summary>
    private static unsafe void Chunked<T>(string op, ReadOnlySpan<T> x, Span<T> y, Kernels.SpanAction<T> chunk) where T : unmanaged
    {
        if (x.Length != y.Length) throw new ArgumentException($"{op}: input length {x.Length} != output length {y.Length}");
        if (x.Length < 1 << 15) { chunk(x, y); return; }
        fixed (T* px = x, py = y)
        {
            nint ix = (nint)px, iy = (nint)py;
            Threads.Ranges(x.Length, Environment.ProcessorCount,
                (_, s, e) => chunk(new ReadOnlySpan<T>((T*)ix + s, e - s), new Span<T>((T*)iy + s, e - s)));
        }
    }

    internal static void UnaryChunk<T>(UnaryKernel kernel, ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (kernel)
        {
            case UnaryKernel.Exp: TensorPrimitives.Exp(x, y); break;
            case UnaryKernel.Log: TensorPrimitives.Log(x, y); break;
            case UnaryKernel.Sqrt: TensorPrimitives.Sqrt(x, y); break;
            case UnaryKernel.Tanh: TensorPrimitives.Tanh(x, y); break;
            default:
                for (int i = 0; i < x.Length; i++) y[i] = T.CreateTruncating(MathNet.Numerics.SpecialFunctions.Erf(double.CreateTruncating(x[i])));
                break;
        }
    }

    /// <summary>Bounds check of a GEMM against its buffers, so a native call can never read or write outside them.</summary>
    protected static void Check<T>(in GemmSpec s, T[] a, T[] b, T[] c)
    {
        static void One(string name, int rows, int cols, int ld, long offset, long stride, int batch, int length)
        {
            if (rows == 0 || cols == 0 || batch == 0) return;
            if (ld < cols) throw new ArgumentException($"Gemm: leading dimension of {name} ({ld}) is smaller than its row length ({cols})");
            long last = offset + (batch - 1) * stride + (long)(rows - 1) * ld + cols;
            if (offset < 0 || stride < 0 || last > length)
                throw new ArgumentException($"Gemm: {name} ({rows}x{cols}, ld {ld}, offset {offset}, batch {batch} x stride {stride}) needs {last} elements, buffer has {length}");
        }
        One("A", s.TransA ? s.K : s.M, s.TransA ? s.M : s.K, s.Lda, s.OffsetA, s.StrideA, s.Batch, a.Length);
        One("B", s.TransB ? s.N : s.K, s.TransB ? s.K : s.N, s.Ldb, s.OffsetB, s.StrideB, s.Batch, b.Length);
        One("C", s.M, s.N, s.Ldc, s.OffsetC, s.StrideC, s.Batch, c.Length);
    }
}
