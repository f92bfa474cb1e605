using System.Numerics;
using System.Runtime.InteropServices;

namespace Autograd.Backends;

/// <summary>GEMM through a native CBLAS (MKL or OpenBLAS), resolved by symbol from a loaded library.
/// Everything else is inherited from the managed backend unless overridden.</summary>
public abstract unsafe class CblasBackend : ManagedBackend
{
    private const int RowMajor = 101, NoTrans = 111, Trans = 112;

    private readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> sgemm;
    private readonly delegate* unmanaged<int, int, int, int, int, int, double, double*, int, double*, int, double, double*, int, void> dgemm;
    // Strided batched GEMM (MKL only; null elsewhere, where batches loop over single GEMMs).
    private readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, int, float*, int, int, float, float*, int, int, int, void> sgemmBatch;
    private readonly delegate* unmanaged<int, int, int, int, int, int, double, double*, int, int, double*, int, int, double, double*, int, int, int, void> dgemmBatch;

    /// <summary>Resolves the CBLAS symbols from <paramref name="library"/>.</summary>
    protected CblasBackend(IntPtr library)
    {
        sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)NativeLibrary.GetExport(library, "cblas_sgemm");
        dgemm = (delegate* unmanaged<int, int, int, int, int, int, double, double*, int, double*, int, double, double*, int, void>)NativeLibrary.GetExport(library, "cblas_dgemm");
        if (NativeLibrary.TryGetExport(library, "cblas_sgemm_batch_strided", out var sb) && NativeLibrary.TryGetExport(library, "cblas_dgemm_batch_strided", out var db))
        {
            sgemmBatch = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, int, float*, int, int, float, float*, int, int, int, void>)sb;
            dgemmBatch = (delegate* unmanaged<int, int, int, int, int, int, double, double*, int, int, double*, int, int, double, double*, int, int, int, void>)db;
        }
    }

    /// <summary>MKL's strided batch rejects strides smaller than one matrix (a shared operand has stride 0); such batches loop instead.</summary>
    private static bool StridesValid(in GemmSpec s) =>
        s.StrideA >= (long)s.Lda * (s.TransA ? s.K : s.M) && s.StrideB >= (long)s.Ldb * (s.TransB ? s.N : s.K) && s.StrideC >= (long)s.Ldc * s.M;

    /// <summary>Sets how many threads the library uses for calls from this thread (0: its global setting) and returns the
    /// previous value; libraries without a per-thread setting ignore it.</summary>
    protected virtual int SetThreadsOfThisThread(int threads) => 0;

    /// <inheritdoc/>
    public override void Gemm<T>(in GemmSpec s, T alpha, T[] a, T[] b, T beta, T[] c)
    {
        Check(s, a, b, c);
        if (s.M == 0 || s.N == 0 || s.Batch == 0) return;
        if (s.K == 0 || s.StrideA > int.MaxValue || s.StrideB > int.MaxValue || s.StrideC > int.MaxValue)
        {
            base.Gemm(s, alpha, a, b, beta, c);
            return;
        }
        // A small GEMM on one thread: handing it to the library's threads costs more than it saves.
        bool serial = s.RunsSerially;
        int saved = serial ? SetThreadsOfThisThread(1) : 0;
        try { Call(s, alpha, a, b, beta, c); }
        finally { if (serial) SetThreadsOfThisThread(saved); }
    }

    private void Call<T>(in GemmSpec s, T alpha, T[] a, T[] b, T beta, T[] c) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int ta = s.TransA ? Trans : NoTrans, tb = s.TransB ? Trans : NoTrans;
        // BLAS requires ld >= 1 even for a single row.
        int lda = Math.Max(1, s.Lda), ldb = Math.Max(1, s.Ldb), ldc = Math.Max(1, s.Ldc);
        fixed (T* pa = a, pb = b, pc = c)
        {
            if (typeof(T) == typeof(float))
            {
                float* A = (float*)pa + s.OffsetA, B = (float*)pb + s.OffsetB, C = (float*)pc + s.OffsetC;
                float al = float.CreateTruncating(alpha), be = float.CreateTruncating(beta);
                if (s.Batch > 1 && sgemmBatch != null && StridesValid(s))
                    sgemmBatch(RowMajor, ta, tb, s.M, s.N, s.K, al, A, lda, (int)s.StrideA, B, ldb, (int)s.StrideB, be, C, ldc, (int)s.StrideC, s.Batch);
                else
                    for (int i = 0; i < s.Batch; i++)
                        sgemm(RowMajor, ta, tb, s.M, s.N, s.K, al, A + i * s.StrideA, lda, B + i * s.StrideB, ldb, be, C + i * s.StrideC, ldc);
            }
            else if (typeof(T) == typeof(double))
            {
                double* A = (double*)pa + s.OffsetA, B = (double*)pb + s.OffsetB, C = (double*)pc + s.OffsetC;
                double al = double.CreateTruncating(alpha), be = double.CreateTruncating(beta);
                if (s.Batch > 1 && dgemmBatch != null && StridesValid(s))
                    dgemmBatch(RowMajor, ta, tb, s.M, s.N, s.K, al, A, lda, (int)s.StrideA, B, ldb, (int)s.StrideB, be, C, ldc, (int)s.StrideC, s.Batch);
                else
                    for (int i = 0; i < s.Batch; i++)
                        dgemm(RowMajor, ta, tb, s.M, s.N, s.K, al, A + i * s.StrideA, lda, B + i * s.StrideB, ldb, be, C + i * s.StrideC, ldc);
            }
            else base.Gemm(s, alpha, a, b, beta, c);
        }
    }
}
