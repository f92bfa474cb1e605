using System.Runtime.InteropServices;

namespace Autograd.Backends;

/// <summary>Intel MKL (<c>libmkl_rt.so</c>): CBLAS GEMM and VML transcendental functions, on the GNU
/// OpenMP threading layer with one thread per core, and on its AVX-512 path when the CPU shim is loaded.</summary>
public sealed unsafe class MklBackend : CblasBackend
{
    private const int ThreadingGnu = 3;
    private const uint VmlHighAccuracy = 0x2;
    private const string GompSpinCount = "100000";

    private readonly delegate* unmanaged<int, int> setThreadsLocal;
    private readonly delegate* unmanaged<int, float*, float*, void>[] vs = new delegate* unmanaged<int, float*, float*, void>[5];
    private readonly delegate* unmanaged<int, double*, double*, void>[] vd = new delegate* unmanaged<int, double*, double*, void>[5];
    private readonly delegate* unmanaged<int, float*, float, float*, void> vsPowx;
    private readonly delegate* unmanaged<int, double*, double, double*, void> vdPowx;

    private MklBackend(IntPtr lib, string description) : base(lib)
    {
        Description = description;
        string[] names = ["Exp", "Ln", "Sqrt", "Tanh", "Erf"];
        for (int k = 0; k < names.Length; k++)
        {
            vs[k] = (delegate* unmanaged<int, float*, float*, void>)NativeLibrary.GetExport(lib, "vs" + names[k]);
            vd[k] = (delegate* unmanaged<int, double*, double*, void>)NativeLibrary.GetExport(lib, "vd" + names[k]);
        }
        vsPowx = (delegate* unmanaged<int, float*, float, float*, void>)NativeLibrary.GetExport(lib, "vsPowx");
        vdPowx = (delegate* unmanaged<int, double*, double, double*, void>)NativeLibrary.GetExport(lib, "vdPowx");
        setThreadsLocal = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(lib, "MKL_Set_Num_Threads_Local");
        var setMode = (delegate* unmanaged<uint, uint>)NativeLibrary.GetExport(lib, "vmlSetMode");
        setMode(VmlHighAccuracy);
    }

    /// <summary>Version, threading layer and whether the AVX-512 CPU shim is active.</summary>
    public string Description { get; }

    /// <inheritdoc/>
    public override string Name => "mkl";

    /// <inheritdoc/>
    protected override int SetThreadsOfThisThread(int threads) => setThreadsLocal(threads);

    /// <summary>Loads MKL, or returns null with the reason.</summary>
    public static MklBackend? TryLoad(out string reason)
    {
        var shimPath = Environment.GetEnvironmentVariable("AUTOGRAD_MKL_SHIM") ?? Native.FindInRepo("libmkl_cpu_shim.so");
        bool shim = shimPath != null && Native.OpenGlobal(shimPath, out _) != IntPtr.Zero;
        // Every parallel loop runs on GNU OpenMP's team (Threads.For), whose idle threads spin this many rounds (300,000 by
        // default, milliseconds here) before they sleep: long enough to catch the next region of a training step without a
        // wake-up, short enough to give the core back soon after. Measured on the LeNet-5 step (500 steps, 2 cores): with 0
        // rounds 16,000 context switches and 7.0 ms; 10,000: 1,344 and 5.4 ms; 100,000: 151 and 3.8 ms; 300,000: 179 and
        // 4.2 ms. It is read when libgomp loads, so it is set first; a user's own GOMP_SPINCOUNT or OMP_WAIT_POLICY wins.
        if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") == null) Native.SetEnvDefault("GOMP_SPINCOUNT", GompSpinCount);
        bool gomp = Native.OpenGlobal("libgomp.so.1", out _) != IntPtr.Zero;
        var lib = Native.OpenGlobal("libmkl_rt.so", out var err);
        if (lib == IntPtr.Zero) lib = Native.OpenGlobal("libmkl_rt.so.1", out err);
        if (lib == IntPtr.Zero) { reason = $"libmkl_rt.so did not load ({err})"; return null; }
        // The threading layer must be chosen before any other MKL call.
        var setLayer = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(lib, "MKL_Set_Threading_Layer");
        if (gomp) setLayer(ThreadingGnu);
        var setThreads = (delegate* unmanaged<int, void>)NativeLibrary.GetExport(lib, "MKL_Set_Num_Threads");
        setThreads(Environment.ProcessorCount);
        // A fixed thread count keeps the blocking, and so the summation order, the same from call to call (MKL's dynamic
        // mode picks fewer threads when the machine is busy, which changes results in the last bits).
        var setDynamic = (delegate* unmanaged<int, void>)NativeLibrary.GetExport(lib, "MKL_Set_Dynamic");
        setDynamic(0);
        var version = (delegate* unmanaged<byte*, int, void>)NativeLibrary.GetExport(lib, "MKL_Get_Version_String");
        var buf = stackalloc byte[256];
        version(buf, 256);
        var v = (Marshal.PtrToStringUTF8((IntPtr)buf) ?? "MKL").Trim();
        reason = "";
        return new MklBackend(lib, $"{v}; threading {(gomp ? "GNU OpenMP" : "default")}, {Environment.ProcessorCount} threads; " +
            (shim ? $"AVX-512 CPU shim active ({shimPath})" : "CPU shim not found (run scripts/install-native), generic code path"));
    }

    /// <inheritdoc/>
    public override void Unary<T>(UnaryKernel kernel, ReadOnlySpan<T> x, Span<T> y)
    {
        if (x.Length != y.Length) throw new ArgumentException($"Unary {kernel}: input length {x.Length} != output length {y.Length}");
        int k = (int)kernel;
        fixed (T* px = x, py = y)
        {
            if (typeof(T) == typeof(float)) vs[k](x.Length, (float*)px, (float*)py);
            else if (typeof(T) == typeof(double)) vd[k](x.Length, (double*)px, (double*)py);
            else base.Unary(kernel, x, y);
        }
    }

    /// <inheritdoc/>
    public override void Pow<T>(ReadOnlySpan<T> x, T p, Span<T> y)
    {
        if (x.Length != y.Length) throw new ArgumentException($"Pow: input length {x.Length} != output length {y.Length}");
        fixed (T* px = x, py = y)
        {
            if (typeof(T) == typeof(float)) vsPowx(x.Length, (float*)px, float.CreateTruncating(p), (float*)py);
            else if (typeof(T) == typeof(double)) vdPowx(x.Length, (double*)px, double.CreateTruncating(p), (double*)py);
            else base.Pow(x, p, y);
        }
    }
}
