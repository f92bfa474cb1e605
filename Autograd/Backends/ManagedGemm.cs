using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Autograd.Backends;

/// <summary>Pure managed, cache-blocked GEMM (GotoBLAS/BLIS scheme) for float and double.</summary>
/// <remarks>
/// op(A) and op(B) are copied into contiguous, zero-padded panels (absorbing transposition and alpha), and a
/// register-tiled micro-kernel multiplies one MR x KC panel of A with one KC x NR panel of B, NR being two SIMD vectors.
/// Loop nest: NC columns of B (L3) / KC depth / MC rows of A (L2) / NR micro-panel of B (L1) / MR micro-panel of A.
/// Large problems are split over batches and then over rows or columns of C, one task per core. The kernels are
/// written once against a small vector-ops interface and instantiated for Vector512 (AVX-512) or Vector&lt;T&gt;.
/// </remarks>
internal static unsafe class ManagedGemm
{
    // Six rows of two-vector accumulators (12 registers) keep enough FMAs in flight to hide latency while still
    // fitting the 16 vector registers of AVX2 / the 32 of NEON, so one kernel serves every vector width.
    private const int MR = 6;
    // With 512-bit vectors a KC x NR panel of B is 32 KB (L1) and an MC x KC block of float A is 144 KB (L2);
    // measured throughput was flat (within noise) for KC in 128..384 and MC in 72..288 on Zen 5.
    private const int KC = 256;
    private const int MC = 144;
    private const int NC = 4096;

    /// <summary>Computes <c>C = alpha * op(A) * op(B) + beta * C</c> for every batch entry of <paramref name="spec"/>.</summary>
    /// <remarks>With <c>beta == 0</c>, C is overwritten without being read (NaNs in C do not propagate); with
    /// <c>K == 0</c> or <c>alpha == 0</c>, A and B are not read and C is only scaled by beta. Batch entries may run
    /// concurrently, so their C blocks must not overlap (A and B may: a stride of 0 broadcasts an operand).</remarks>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is neither float nor double.</exception>
    /// <exception cref="ArgumentException">The spec addresses elements outside an operand array.</exception>
    public static void Gemm<T>(in GemmSpec spec, T alpha, T[] a, T[] b, T beta, T[] c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
            throw new NotSupportedException($"Managed GEMM supports float and double, not {typeof(T).Name}.");
        if (spec.M < 0 || spec.N < 0 || spec.K < 0 || spec.Batch < 0)
            throw new ArgumentException("GEMM sizes must be non-negative.", nameof(spec));
        if (spec.M == 0 || spec.N == 0 || spec.Batch == 0)
            return;
        var (m, n, k) = (spec.M, spec.N, spec.K);
        CheckBounds(a, spec.OffsetA, spec.StrideA, spec.Batch, spec.TransA ? k : m, spec.TransA ? m : k, spec.Lda, nameof(a));
        CheckBounds(b, spec.OffsetB, spec.StrideB, spec.Batch, spec.TransB ? n : k, spec.TransB ? k : n, spec.Ldb, nameof(b));
        CheckBounds(c, spec.OffsetC, spec.StrideC, spec.Batch, m, n, spec.Ldc, nameof(c));

        if (k == 0 || alpha == T.Zero)
            ScaleC(spec, beta, c);
        else if (Vector512.IsHardwareAccelerated)
            Run<T, Vector512<T>, Simd512<T>>(spec, alpha, a, b, beta, c);
        else
            Run<T, Vector<T>, SimdAny<T>>(spec, alpha, a, b, beta, c);
    }

    private static void CheckBounds<T>(T[] x, long offset, long stride, int batch, int rows, int cols, int ld, string name)
    {
        if (rows == 0 || cols == 0)
            return;
        long end = offset + (batch - 1) * stride + (long)(rows - 1) * ld + cols;
        if (offset < 0 || stride < 0 || ld < 0 || end > x.Length)
            throw new ArgumentException("GEMM spec addresses elements outside the array.", name);
    }

    private static void ScaleC<T>(in GemmSpec s, T beta, T[] c) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int t = 0; t < s.Batch; t++)
            for (int i = 0; i < s.M; i++)
            {
                Span<T> row = c.AsSpan((int)(s.OffsetC + t * s.StrideC + (long)i * s.Ldc), s.N);
                if (beta == T.Zero)
                    row.Clear();
                else
                    foreach (ref T x in row)
                        x *= beta;
            }
    }

    /// <summary>Splits the batch, then the larger of M and N, into about one task per core, each a serial blocked GEMM.</summary>
    private static void Run<T, TV, S>(GemmSpec s, T alpha, T[] a, T[] b, T beta, T[] c)
        where T : unmanaged, IFloatingPointIeee754<T> where TV : unmanaged where S : ISimd<TV, T>
    {
        int nr = 2 * S.Width;
        // Each task needs GemmSpec.SmallWork multiply-adds before another thread is worth waking (fork/join costs a few microseconds).
        int tasksWanted = s.Serial ? 1 : (int)Math.Clamp((long)s.M * s.N * s.K * s.Batch / GemmSpec.SmallWork, 1, Environment.ProcessorCount);
        int perBatch = (tasksWanted + s.Batch - 1) / s.Batch;
        bool splitM = s.M >= s.N;
        int unit = splitM ? MR : nr, units = ((splitM ? s.M : s.N) + unit - 1) / unit;
        int parts = Math.Min(perBatch, units), chunk = (units + parts - 1) / parts * unit;
        int chunks = ((splitM ? s.M : s.N) + chunk - 1) / chunk;

        void RunChunk(int t)
        {
            int batch = t / chunks, lo = t % chunks * chunk;
            int m0 = splitM ? lo : 0, m1 = splitM ? Math.Min(s.M, lo + chunk) : s.M;
            int n0 = splitM ? 0 : lo, n1 = splitM ? s.N : Math.Min(s.N, lo + chunk);
            long ars = s.TransA ? 1 : s.Lda, acs = s.TransA ? s.Lda : 1;
            long bks = s.TransB ? 1 : s.Ldb, bjs = s.TransB ? s.Ldb : 1;
            fixed (T* pa = a, pb = b, pc = c)
                Serial<T, TV, S>(
                    pa + s.OffsetA + batch * s.StrideA + m0 * ars, ars, acs,
                    pb + s.OffsetB + batch * s.StrideB + n0 * bjs, bjs, bks,
                    pc + s.OffsetC + batch * s.StrideC + (long)m0 * s.Ldc + n0, s.Ldc,
                    m1 - m0, n1 - n0, s.K, alpha, beta);
        }

        int tasks = s.Batch * chunks;
        if (tasksWanted == 1)
            for (int t = 0; t < tasks; t++)
                RunChunk(t);
        else
            Threads.For(tasks, RunChunk);
    }

    /// <summary>Single-threaded blocked GEMM on one m x n block of C.</summary>
    /// <remarks>op(A)(i,k) = a[i*ars + k*acs] and op(B)(k,j) = b[k*bks + j*bjs].</remarks>
    private static void Serial<T, TV, S>(T* a, long ars, long acs, T* b, long bjs, long bks, T* c, long ldc,
        int m, int n, int k, T alpha, T beta)
        where T : unmanaged, IFloatingPointIeee754<T> where TV : unmanaged where S : ISimd<TV, T>
    {
        int nr = 2 * S.Width, kcMax = Math.Min(KC, k), align = 64 / sizeof(T);
        int aSize = (Math.Min(MC, (m + MR - 1) / MR * MR) * kcMax + align - 1) / align * align;
        int bSize = Math.Min(NC, (n + nr - 1) / nr * nr) * kcMax;
        T[] buffer = ArrayPool<T>.Shared.Rent(aSize + bSize + align);
        try
        {
            fixed (T* raw = buffer)
            {
                // 64-byte aligned panels keep every vector load of B within one cache line.
                T* packA = (T*)(((nint)raw + 63) & ~(nint)63), packB = packA + aSize;
                for (int jc = 0; jc < n; jc += NC)
                {
                    int nc = Math.Min(NC, n - jc);
                    for (int pc = 0; pc < k; pc += KC)
                    {
                        int kc = Math.Min(KC, k - pc);
                        Pack<T, TV, S>(b + jc * bjs + pc * bks, bjs, bks, nc, kc, nr, T.One, packB);
                        // Later depth blocks accumulate onto what the first one wrote.
                        T betaK = pc == 0 ? beta : T.One;
                        for (int ic = 0; ic < m; ic += MC)
                        {
                            int mc = Math.Min(MC, m - ic);
                            Pack<T, TV, S>(a + ic * ars + pc * acs, ars, acs, mc, kc, MR, alpha, packA);
                            Macro<T, TV, S>(packA, packB, c + ic * ldc + jc, ldc, mc, nc, kc, betaK);
                        }
                    }
                }
            }
        }
        finally
        {
            ArrayPool<T>.Shared.Return(buffer);
        }
    }

    /// <summary>Multiplies a packed mc x kc block of A by a packed kc x nc block of B into C, one micro-tile at a time.</summary>
    private static void Macro<T, TV, S>(T* packA, T* packB, T* c, long ldc, int mc, int nc, int kc, T beta)
        where T : unmanaged, IFloatingPointIeee754<T> where TV : unmanaged where S : ISimd<TV, T>
    {
        int nr = 2 * S.Width;
        T* tile = stackalloc T[MR * nr];
        // B micro-panel outermost: it stays in L1 while the A micro-panels stream past from L2.
        for (int jr = 0; jr < nc; jr += nr)
            for (int ir = 0; ir < mc; ir += MR)
            {
                T* ap = packA + ir * kc, bp = packB + jr * kc, cp = c + ir * ldc + jr;
                int h = Math.Min(MR, mc - ir), w = Math.Min(nr, nc - jr);
                if (h == MR && w == nr)
                {
                    Kernel<T, TV, S>(kc, ap, bp, cp, ldc, beta);
                    continue;
                }
                // Edge tile: the zero-padded panels let the full kernel run into scratch; merge only the valid part.
                Kernel<T, TV, S>(kc, ap, bp, tile, nr, T.Zero);
                for (int i = 0; i < h; i++)
                    for (int j = 0; j < w; j++)
                    {
                        T* dst = cp + i * ldc + j;
                        *dst = beta == T.Zero ? tile[i * nr + j] : beta * *dst + tile[i * nr + j];
                    }
            }
    }

    /// <summary>Copies <paramref name="rows"/> x <paramref name="depth"/> of a strided matrix, times
    /// <paramref name="scale"/>, into panels of <paramref name="panel"/> rows stored depth-major; the last is zero-padded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Pack<T, TV, S>(T* src, long rs, long ds, int rows, int depth, int panel, T scale, T* dst)
        where T : unmanaged, IFloatingPointIeee754<T> where TV : unmanaged where S : ISimd<TV, T>
    {
        TV vScale = S.Splat(scale), zero = S.Splat(T.Zero);
        for (int p = 0; p < rows; p += panel, src += panel * rs)
        {
            int h = Math.Min(panel, rows - p);
            // Rows contiguous in memory (plain B, transposed A) and a full panel: copy whole vectors.
            bool vector = rs == 1 && h == panel && panel % S.Width == 0;
            for (int d = 0; d < depth; d++, dst += panel)
            {
                T* s = src + d * ds;
                int i = 0;
                if (vector)
                    for (; i < panel; i += S.Width)
                        S.Store(dst + i, S.MulAdd(S.Load(s + i), vScale, zero));
                for (; i < h; i++)
                    dst[i] = scale * s[i * rs];
                for (; i < panel; i++)
                    dst[i] = T.Zero;
            }
        }
    }

    /// <summary>C[MR x 2W] = beta * C + A-panel * B-panel, with all accumulators held in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel<T, TV, S>(int kc, T* a, T* b, T* c, long ldc, T beta)
        where T : unmanaged, IFloatingPointIeee754<T> where TV : unmanaged where S : ISimd<TV, T>
    {
        int w = S.Width;
        TV c00 = S.Splat(T.Zero), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
        TV c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        for (int p = 0; p < kc; p++, a += MR, b += 2 * w)
        {
            TV b0 = S.Load(b), b1 = S.Load(b + w), x;
            x = S.Splat(a[0]); c00 = S.MulAdd(x, b0, c00); c01 = S.MulAdd(x, b1, c01);
            x = S.Splat(a[1]); c10 = S.MulAdd(x, b0, c10); c11 = S.MulAdd(x, b1, c11);
            x = S.Splat(a[2]); c20 = S.MulAdd(x, b0, c20); c21 = S.MulAdd(x, b1, c21);
            x = S.Splat(a[3]); c30 = S.MulAdd(x, b0, c30); c31 = S.MulAdd(x, b1, c31);
            x = S.Splat(a[4]); c40 = S.MulAdd(x, b0, c40); c41 = S.MulAdd(x, b1, c41);
            x = S.Splat(a[5]); c50 = S.MulAdd(x, b0, c50); c51 = S.MulAdd(x, b1, c51);
        }
        Store<T, TV, S>(c, w, c00, c01, beta);
        Store<T, TV, S>(c + ldc, w, c10, c11, beta);
        Store<T, TV, S>(c + 2 * ldc, w, c20, c21, beta);
        Store<T, TV, S>(c + 3 * ldc, w, c30, c31, beta);
        Store<T, TV, S>(c + 4 * ldc, w, c40, c41, beta);
        Store<T, TV, S>(c + 5 * ldc, w, c50, c51, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<T, TV, S>(T* c, int w, TV lo, TV hi, T beta)
        where T : unmanaged, IFloatingPointIeee754<T> where TV : unmanaged where S : ISimd<TV, T>
    {
        // beta == 0 must not read C, so NaN/garbage in the destination cannot leak into the result.
        if (beta == T.Zero)
        {
            S.Store(c, lo);
            S.Store(c + w, hi);
        }
        else
        {
            TV vb = S.Splat(beta);
            S.Store(c, S.MulAdd(S.Load(c), vb, lo));
            S.Store(c + w, S.MulAdd(S.Load(c + w), vb, hi));
        }
    }
}
