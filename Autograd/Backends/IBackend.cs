using System.Numerics;

namespace Autograd.Backends;

/// <summary>Shape of one (optionally batched) row-major GEMM: <c>C = alpha * op(A) * op(B) + beta * C</c>.</summary>
/// <remarks>op(A) is M x K, op(B) is K x N, C is M x N. Leading dimensions are row strides of the
/// stored (untransposed) matrices. Batch i uses offsets <c>OffsetX + i * StrideX</c>. <c>Serial</c> asks the backend to
/// run on the calling thread only: set by callers that already split their work across the cores.</remarks>
public readonly record struct GemmSpec(
    bool TransA, bool TransB, int M, int N, int K,
    int Lda, int Ldb, int Ldc,
    int Batch = 1, long StrideA = 0, long StrideB = 0, long StrideC = 0,
    long OffsetA = 0, long OffsetB = 0, long OffsetC = 0, bool Serial = false)
{
    /// <summary>Multiply-adds below which one thread beats a fork/join across the cores (a few microseconds of work).</summary>
    internal const long SmallWork = 1 << 18;

    /// <summary>As <see cref="SmallWork"/> for a native library's OpenMP threads. Measured on 2 cores with threads that slept
    /// between calls, LeNet-5's fc1 (64 x 400 x 120, 3M multiply-adds) forward and backward: 274 us on two threads, 204 us on
    /// one; with the team spinning between regions (<see cref="Threads"/>), 2^18 and 2^22 measured the same on the LeNet-5 step.</summary>
    internal const long SmallNativeWork = 1 << 22;

    /// <summary>Whether this GEMM should run on the calling thread in a native library: asked for, or too small to be worth
    /// waking its threads.</summary>
    internal bool RunsSerially => Serial || (long)M * N * K * Batch < SmallNativeWork;

    /// <summary>A plain (unbatched) GEMM on dense row-major operands.</summary>
    public static GemmSpec Dense(bool transA, bool transB, int m, int n, int k, int batch = 1) =>
        new(transA, transB, m, n, k,
            Lda: transA ? m : k, Ldb: transB ? k : n, Ldc: n,
            Batch: batch, StrideA: (long)m * k, StrideB: (long)k * n, StrideC: (long)m * n);
}

/// <summary>Elementwise unary kernels a backend may accelerate (VML on MKL).</summary>
public enum UnaryKernel
{
    /// <summary>e^x</summary>
    Exp,
    /// <summary>natural logarithm</summary>
    Log,
    /// <summary>square root</summary>
    Sqrt,
    /// <summary>hyperbolic tangent</summary>
    Tanh,
    /// <summary>error function</summary>
    Erf,
}

/// <summary>The raw kernels behind every op. Tensors, shapes and autograd live above this line.</summary>
public interface IBackend
{
    /// <summary>Short name: <c>mkl</c>, <c>openblas</c> or <c>managed</c>.</summary>
    string Name { get; }

    /// <summary>Row-major (batched) matrix multiply; see <see cref="GemmSpec"/>.</summary>
    void Gemm<T>(in GemmSpec spec, T alpha, T[] a, T[] b, T beta, T[] c)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary><c>y[i] = f(x[i])</c> over equal-length spans.</summary>
    void Unary<T>(UnaryKernel kernel, ReadOnlySpan<T> x, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary><c>y[i] = x[i]^p</c> over equal-length spans (C's <c>pow</c>: a negative base with an integral exponent is
    /// defined).</summary>
    void Pow<T>(ReadOnlySpan<T> x, T p, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>;
}
