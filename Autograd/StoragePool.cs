namespace Autograd;

/// <summary>Large arrays that backward (or an imported ONNX model's run) has finished with, kept for the next tensors of the
/// same type and length (as PyTorch's CPU allocator gets freed blocks back from malloc).</summary>
/// <remarks>
/// <para>A fresh large array from the GC sits on memory the GC returned to the operating system after an earlier
/// collection, so the first write to each of its 4 KB pages is a page fault: measured at about 1.3 microseconds a page on
/// the 2-core benchmark machine, 4 ms for a 12.8 MB activation, more than many of the ops that fill one.</para>
/// <para>Backward returns gradients it owns (see <see cref="AutoGrad"/>'s accumulation): made by a built-in derivative rule,
/// shared with no other tensor, not handed to a hook, a custom function, <see cref="Tensor.Grad"/> or the caller, once the
/// rule that consumed them has run. An ONNX graph run without gradients returns its dead intermediate values. Activations
/// of user code are never returned: it may hold them.</para>
/// <para>At most <see cref="Capacity"/> bytes wait here; arrays beyond it are left to the GC. <c>AUTOGRAD_POOL=0</c> turns
/// recycling off.</para>
/// </remarks>
internal static class StoragePool
{
    /// <summary>Smaller arrays are left to the GC.</summary>
    private const long MinBytes = 1 << 18;

    /// <summary>Arrays below the GC's large-object threshold live in its young generation, where it reclaims them cheaply; a
    /// recycled one ages and then only dies in a full collection, so at most <see cref="SmallCapacity"/> bytes of them wait
    /// (measured: with 128 MB for them the peak working set of `./autograd train` rose from 400 to 485-547 MiB; with none,
    /// the LeNet-5 step allocated 7.9 MiB, collected every second step and spent 8% of its time in GC pauses; recycling
    /// its backward's 0.3-1.2 MB gradients: 4.5 MiB, every fourth step, 12% less time in all).</summary>
    private static readonly long LargeBytes = Convert.ToInt64(GC.GetConfigurationVariables().GetValueOrDefault("LOHThreshold", 85_000L));

    /// <summary>The most bytes kept for reuse at a time.</summary>
    internal const long Capacity = 128L << 20;

    /// <summary>The most bytes of arrays below the large-object threshold kept at a time.</summary>
    internal const long SmallCapacity = 16L << 20;

    /// <summary>Whether arrays are recycled (initially unless <c>AUTOGRAD_POOL=0</c>); tests compare runs with and without.</summary>
    internal static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("AUTOGRAD_POOL") != "0";
    private static readonly Dictionary<(DType, int), Stack<Array>> free = [];
    private static long pooledBytes, pooledSmallBytes, returned;

    /// <summary>How many arrays have come back for reuse since the process started.</summary>
    internal static long Returned
    {
        get { lock (free) return returned; }
    }

    /// <summary>How many arrays of type <paramref name="t"/> and length <paramref name="n"/> wait for reuse.</summary>
    internal static int Waiting(DType t, int n)
    {
        lock (free) return free.TryGetValue((t, n), out var stack) ? stack.Count : 0;
    }

    /// <summary>A recycled array of <paramref name="n"/> elements of type <paramref name="t"/> (contents garbage), or null.</summary>
    public static Array? Take(DType t, int n)
    {
        long bytes = (long)n * t.Size();
        if (!Enabled || bytes < MinBytes) return null;
        lock (free)
        {
            if (!free.TryGetValue((t, n), out var stack) || !stack.TryPop(out var a)) return null;
            pooledBytes -= bytes;
            if (bytes < LargeBytes) pooledSmallBytes -= bytes;
            return a;
        }
    }

    /// <summary>Keeps the storage of <paramref name="dead"/>, which no tensor, view or kernel may use any more.</summary>
    public static void Return(Tensor dead)
    {
        var a = dead.Storage;
        long bytes = (long)a.Length * dead.DType.Size();
        if (!Enabled || bytes < MinBytes) return;
        lock (free)
        {
            bool small = bytes < LargeBytes;
            if (pooledBytes + bytes > Capacity || (small && pooledSmallBytes + bytes > SmallCapacity)) return;
            if (!free.TryGetValue((dead.DType, a.Length), out var stack)) free[(dead.DType, a.Length)] = stack = new Stack<Array>();
            stack.Push(a);
            pooledBytes += bytes;
            if (small) pooledSmallBytes += bytes;
            returned++;
        }
    }
}
