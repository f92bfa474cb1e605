using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace Autograd.Backends;

/// <summary>The fork-join loop every parallel kernel runs on. Under a native backend whose libraries thread with GNU OpenMP
/// (MKL's GNU layer, oneDNN) the loop runs on that same OpenMP team: one set of worker threads for the libraries and for
/// this framework's own kernels, which wait for the next region by spinning briefly instead of going back to sleep and
/// being woken by another thread pool. (With .NET's <see cref="Parallel.For(int, int, Action{int})"/> beside OpenMP's team, each
/// pool's idle threads slept so as not to spin on the cores the other wanted: about 550 context switches per LeNet-5
/// training step.) Without libgomp, or under the managed backend, it is <see cref="Parallel.For(int, int, Action{int})"/>.</summary>
internal static unsafe class Threads
{
    /// <summary>Runs <paramref name="body"/>(i) for i in [0, n), each index once, on up to one thread per core; returns when
    /// all have run. The first exception a body throws is rethrown here (the remaining indices are skipped). Bodies run on
    /// the backend the calling thread uses (<see cref="Backend.Use"/>).</summary>
    public static void For(int n, Action<int> body)
    {
        if (n <= 0) return;
        if (n == 1) body(0);
        else if (Backend.Current is CblasBackend && Gomp.Parallel != null)
        {
            int threads = Math.Min(n, Environment.ProcessorCount);
            var job = new Job(n, Math.Max(1, n / (ChunksPerThread * threads)), body, Backend.Scoped);
            var handle = GCHandle.Alloc(job);
            try { Gomp.Parallel(&Run, GCHandle.ToIntPtr(handle), (uint)threads, 0); }
            finally { handle.Free(); }
            job.Error?.Throw();
        }
        else
        {
            var backend = Backend.Scoped;
            try { Parallel.For(0, n, backend == null ? body : i => { using (new Backend.Scope(backend)) body(i); }); }
            catch (AggregateException e) { ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw(); }
        }
    }

    /// <summary><see cref="For(int, Action{int})"/> when the loop touches at least 2^15 elements in all
    /// (<paramref name="work"/>; 0 for a loop that must stay on its thread, e.g. inside another parallel loop), else a plain
    /// loop on the calling thread: waking the team costs more than smaller loops.</summary>
    public static void For(int n, long work, Action<int> body)
    {
        if (n >= 2 && work >= 1 << 15) For(n, body);
        else for (int i = 0; i < n; i++) body(i);
    }

    /// <summary>Runs <paramref name="range"/>(part, start, end) for <paramref name="parts"/> contiguous, nearly equal parts of
    /// [0, n) in parallel (a single part on the calling thread).</summary>
    public static void Ranges(int n, int parts, Action<int, int, int> range)
    {
        void Part(int c) => range(c, (int)((long)n * c / parts), (int)((long)n * (c + 1) / parts));
        if (parts <= 1) range(0, 0, n);
        else For(parts, Part);
    }

    /// <summary>Indices are handed out in runs of about n / (this many x threads): one at a time, the shared counter's cache
    /// line went back and forth between the cores once per index, which cost more than small bodies (measured: LeNet-5's
    /// second 2x2 max pooling with a gradient, 1,024 planes of 10x10, took 290 us a call one index at a time and 150 in
    /// runs; planes of 28x28 and larger bodies changed within this machine's noise).</summary>
    private const int ChunksPerThread = 8;

    /// <summary>What each thread of the team runs: it takes the next run of indices until none is left.</summary>
    [UnmanagedCallersOnly]
    private static void Run(IntPtr data)
    {
        var job = (Job)GCHandle.FromIntPtr(data).Target!;
        using var scope = new Backend.Scope(job.Backend);
        try
        {
            for (int start; job.Error == null && (start = Interlocked.Add(ref job.Next, job.Chunk) - job.Chunk) < job.N;)
                for (int i = start, end = Math.Min(start + job.Chunk, job.N); i < end && job.Error == null; i++) job.Body(i);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref job.Error, ExceptionDispatchInfo.Capture(e), null);
        }
    }

    private sealed class Job(int n, int chunk, Action<int> body, IBackend? backend)
    {
        public readonly int N = n, Chunk = chunk;
        public readonly Action<int> Body = body;
        /// <summary>The calling thread's scoped backend, set on every thread of the team while it runs bodies.</summary>
        public readonly IBackend? Backend = backend;
        public int Next;
        public ExceptionDispatchInfo? Error;
    }

    /// <summary>libgomp's entry point, resolved the first time a native backend runs a loop (by then the backend has loaded
    /// libgomp with its settings); null where libgomp is missing.</summary>
    private static class Gomp
    {
        /// <summary><c>GOMP_parallel(fn, data, num_threads, flags)</c>: runs fn(data) on a team of num_threads (the caller is
        /// thread 0) and returns after all have.</summary>
        public static readonly delegate* unmanaged<delegate* unmanaged<IntPtr, void>, IntPtr, uint, uint, void> Parallel = Load();

        private static delegate* unmanaged<delegate* unmanaged<IntPtr, void>, IntPtr, uint, uint, void> Load()
        {
            var lib = Native.OpenGlobal("libgomp.so.1", out _);
            return lib != IntPtr.Zero && NativeLibrary.TryGetExport(lib, "GOMP_parallel", out var f)
                ? (delegate* unmanaged<delegate* unmanaged<IntPtr, void>, IntPtr, uint, uint, void>)f
                : null;
        }
    }
}
