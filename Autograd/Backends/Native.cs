using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Autograd.Backends;

/// <summary>dlopen with RTLD_GLOBAL: MKL's GNU threading layer needs libgomp's symbols, and the CPU shim's
/// symbol must be global before libmkl_rt loads. NativeLibrary.Load opens libraries RTLD_LOCAL.</summary>
internal static partial class Native
{
    private const int RtldNow = 2, RtldGlobal = 0x100;

    [LibraryImport("libc", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr DlOpen(string file, int mode);

    [LibraryImport("libc", EntryPoint = "dlerror")]
    private static partial IntPtr DlError();

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    /// <summary>Sets a variable in the native environment (which native libraries read; .NET's Environment keeps its own
    /// copy) unless it is already set there.</summary>
    public static void SetEnvDefault(string name, string value)
    {
        try { SetEnv(name, value, 0); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
    }

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int MAdvise(IntPtr address, nuint length, int advice);

    private const int MadvHugepage = 14;
    private const long HugePage = 2 << 20;
    private static bool hugePages = OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("AUTOGRAD_THP") != "0";

    /// <summary>Asks Linux to back the whole 2 MB pages inside the array with transparent huge pages.</summary>
    public static unsafe void HugePages(Array a, long bytes)
    {
        if (!hugePages || bytes < 2 * HugePage) return;
        long start = (long)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(a));
        long lo = (start + HugePage - 1) & ~(HugePage - 1), hi = (start + bytes) & ~(HugePage - 1);
        try { MAdvise((IntPtr)lo, (nuint)(hi - lo), MadvHugepage); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { hugePages = false; }
    }

    /// <summary>Opens a library globally; returns zero and the loader's message on failure.</summary>
    public static IntPtr OpenGlobal(string file, out string error)
    {
        error = "";
        try
        {
            var h = DlOpen(file, RtldNow | RtldGlobal);
            if (h == IntPtr.Zero) error = Marshal.PtrToStringUTF8(DlError()) ?? $"cannot load {file}";
            return h;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            error = e.Message;
            return IntPtr.Zero;
        }
    }

    /// <summary>Finds a file under <c>native/</c> in the repository (walking up from the app folder), or null.</summary>
    public static string? FindInRepo(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            var p = Path.Combine(dir.FullName, "native", name);
            if (File.Exists(p)) return p;
        }
        return null;
    }
}
