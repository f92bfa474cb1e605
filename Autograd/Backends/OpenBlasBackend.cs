namespace Autograd.Backends;

/// <summary>OpenBLAS (<c>libopenblas.so.0</c>) for GEMM, managed kernels for the rest.</summary>
public sealed unsafe class OpenBlasBackend : CblasBackend
{
    private OpenBlasBackend(IntPtr lib) : base(lib) { }

    /// <inheritdoc/>
    public override string Name => "openblas";

    /// <summary>Loads OpenBLAS, or returns null with the reason.</summary>
    public static OpenBlasBackend? TryLoad(out string reason)
    {
        var lib = Native.OpenGlobal("libopenblas.so.0", out var err);
        if (lib == IntPtr.Zero) { reason = $"libopenblas.so.0 did not load ({err})"; return null; }
        var setThreads = (delegate* unmanaged<int, void>)System.Runtime.InteropServices.NativeLibrary.GetExport(lib, "openblas_set_num_threads");
        setThreads(Environment.ProcessorCount);
        reason = "";
        return new OpenBlasBackend(lib);
    }
}
