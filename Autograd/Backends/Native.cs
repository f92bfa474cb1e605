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
