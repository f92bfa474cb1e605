namespace Autograd.Backends;

/// <summary>Chooses the backend once per process: <c>AUTOGRAD_BACKEND=mkl|openblas|managed</c>, else MKL
/// if it loads, else OpenBLAS, else managed. The choice and its reason go to stderr once.</summary>
public static class Backend
{
    private static readonly Lazy<IBackend> current = new(Select);
    private static readonly Dictionary<string, IBackend?> loaded = [];
    [ThreadStatic] private static IBackend? scoped;

    /// <summary>Whether float32 3x3 stride-1 convolutions may run by Winograd's minimal filtering (default true;
    /// <c>AUTOGRAD_WINOGRAD=0</c> sets false): with AVX-512, those with at least 16,384 output pixels per channel (N x H x W)
    /// on oneDNN's F(4x4, 3x3) kernels on the native backends, a quarter of the multiplications of a direct convolution
    /// (2.5x faster on ResNet-18's 64-channel layers at batch 32); where oneDNN has none (AVX2-only CPUs, or oneDNN not in use) and the CPU has AVX2, all three passes
    /// (forward, input and weight gradients) of those with outputs at least 16 wide and 4,096 in all on this framework's
    /// F(2x2, 3x3) kernels, 4/9 of the multiplications (1.2-1.8x faster than oneDNN's direct kernels), and without
    /// gradients (inference) those with outputs at least 14 wide, a parameter keeping its transformed weights (16/9 of its
    /// size) until it changes. Rounding errors are up to a few times larger:
    /// measured 1.8e-6 of the output's largest magnitude against 3.6e-7 for the direct kernel, on a 64-channel layer. cuDNN
    /// makes the same choice for PyTorch on GPUs.</summary>
    public static bool ConvWinograd { get; set; } = Environment.GetEnvironmentVariable("AUTOGRAD_WINOGRAD") != "0";

    /// <summary>The backend every op on this thread uses.</summary>
    public static IBackend Current => scoped ?? current.Value;

    /// <summary>The backend <see cref="Use"/> set on this thread, or null: <see cref="Threads"/> hands it on to the threads
    /// that run a parallel loop's bodies (in a <see cref="Scope"/>), so that a kernel's work on other cores uses it too.</summary>
    internal static IBackend? Scoped => scoped;

    /// <summary>Runs the ops of this thread on <paramref name="backend"/> until disposed (to compare backends).</summary>
    public static IDisposable Use(IBackend backend) => new Scope(backend);

    /// <summary>Sets this thread's scoped backend (null: the process's) until disposed, then restores the one before.</summary>
    internal readonly struct Scope(IBackend? backend) : IDisposable
    {
        private readonly IBackend? saved = Exchange(backend);
        public void Dispose() => scoped = saved;

        private static IBackend? Exchange(IBackend? backend)
        {
            var before = scoped;
            scoped = backend;
            return before;
        }
    }

    /// <summary>Loads a backend by name (<c>mkl</c>, <c>openblas</c>, <c>managed</c>); null with a reason if unavailable.</summary>
    public static IBackend? TryCreate(string name, out string reason)
    {
        lock (loaded)
        {
            reason = "";
            if (loaded.TryGetValue(name, out var b)) { if (b == null) reason = $"{name} is not available"; return b; }
            b = name switch
            {
                "mkl" => MklBackend.TryLoad(out reason),
                "openblas" => OpenBlasBackend.TryLoad(out reason),
                "managed" => new ManagedBackend(),
                _ => throw new ArgumentException($"unknown backend '{name}' (expected mkl, openblas or managed)"),
            };
            loaded[name] = b;
            return b;
        }
    }

    /// <summary>Every backend that loads on this machine.</summary>
    public static IReadOnlyList<IBackend> Available() =>
        new[] { "mkl", "openblas", "managed" }.Select(n => TryCreate(n, out _)).OfType<IBackend>().ToList();

    private static IBackend Select()
    {
        var env = Environment.GetEnvironmentVariable("AUTOGRAD_BACKEND");
        IBackend chosen;
        string why;
        if (!string.IsNullOrEmpty(env))
        {
            chosen = TryCreate(env, out var reason) ?? throw new InvalidOperationException($"AUTOGRAD_BACKEND={env}: {reason}");
            why = "AUTOGRAD_BACKEND=" + env;
        }
        else if (TryCreate("mkl", out var mklWhy) is IBackend mkl) { chosen = mkl; why = "default, libmkl_rt loaded"; }
        else if (TryCreate("openblas", out var obWhy) is IBackend ob) { chosen = ob; why = $"MKL unavailable: {mklWhy}"; }
        else { chosen = new ManagedBackend(); why = $"MKL unavailable: {mklWhy}; OpenBLAS unavailable: {obWhy}"; }
        var detail = chosen is MklBackend m ? $" [{m.Description}]" : "";
        if (chosen is CblasBackend) detail += $" [float32 convolutions: {Dnnl.Describe()}]";
        Console.Error.WriteLine($"autograd: backend {chosen.Name} ({why}){detail}");
        return chosen;
    }
}
