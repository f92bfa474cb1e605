using System.Runtime.InteropServices;

namespace Autograd.Distributed;

/// <summary>A thin P/Invoke binding to Open MPI's <c>libmpi.so.40</c> (Debian package <c>libopenmpi3</c>): the handful of calls
/// data-parallel training needs. Open MPI's handles (<c>MPI_COMM_WORLD</c>, <c>MPI_FLOAT</c>, ...) are the addresses of
/// exported data symbols, resolved once when the library loads. Every call here is made by <see cref="Communicator"/>'s
/// communication thread, except <see cref="Abort"/>.</summary>
internal static unsafe partial class Mpi
{
    public const string Library = "libmpi.so.40";

    /// <summary>Open MPI's <c>MPI_IN_PLACE</c>.</summary>
    public static readonly IntPtr InPlace = 1;

    public const int ThreadSingle = 0, ThreadFunneled = 1, ThreadSerialized = 2, ThreadMultiple = 3;

    private static readonly Lazy<(IntPtr Handle, string? Error)> library = new(() =>
    {
        if (!NativeLibrary.TryLoad(Library, out var handle))
            return (0, $"{Library} could not be loaded: install Open MPI (Debian: apt-get install openmpi-bin libopenmpi3, or run scripts/install-native)");
        return (handle, null);
    });

    /// <summary>Why MPI cannot be used, or null when <c>libmpi.so.40</c> loads.</summary>
    public static string? Unavailable => library.Value.Error;

    private static IntPtr Symbol(string name)
    {
        var (handle, error) = library.Value;
        if (error != null) throw new DllNotFoundException(error);
        return NativeLibrary.TryGetExport(handle, name, out var address)
            ? address
            : throw new EntryPointNotFoundException($"{Library} does not export {name}: this binding needs Open MPI (4.x), not another MPI implementation");
    }

    private static readonly Lazy<IntPtr> commWorld = new(() => Symbol("ompi_mpi_comm_world"));
    private static readonly Lazy<IntPtr> mpiFloat = new(() => Symbol("ompi_mpi_float"));
    private static readonly Lazy<IntPtr> mpiDouble = new(() => Symbol("ompi_mpi_double"));
    private static readonly Lazy<IntPtr> opSum = new(() => Symbol("ompi_mpi_op_sum"));

    /// <summary><c>MPI_COMM_WORLD</c>.</summary>
    public static IntPtr CommWorld => commWorld.Value;
    /// <summary><c>MPI_FLOAT</c>.</summary>
    public static IntPtr Float => mpiFloat.Value;
    /// <summary><c>MPI_DOUBLE</c>.</summary>
    public static IntPtr Double => mpiDouble.Value;
    /// <summary><c>MPI_SUM</c>.</summary>
    public static IntPtr Sum => opSum.Value;

    [LibraryImport(Library, EntryPoint = "MPI_Init_thread")]
    private static partial int MPI_Init_thread(IntPtr argc, IntPtr argv, int required, out int provided);
    [LibraryImport(Library, EntryPoint = "MPI_Initialized")]
    private static partial int MPI_Initialized(out int flag);
    [LibraryImport(Library, EntryPoint = "MPI_Finalized")]
    private static partial int MPI_Finalized(out int flag);
    [LibraryImport(Library, EntryPoint = "MPI_Query_thread")]
    private static partial int MPI_Query_thread(out int provided);
    [LibraryImport(Library, EntryPoint = "MPI_Finalize")]
    private static partial int MPI_Finalize();
    [LibraryImport(Library, EntryPoint = "MPI_Comm_rank")]
    private static partial int MPI_Comm_rank(IntPtr comm, out int rank);
    [LibraryImport(Library, EntryPoint = "MPI_Comm_size")]
    private static partial int MPI_Comm_size(IntPtr comm, out int size);
    [LibraryImport(Library, EntryPoint = "MPI_Allreduce")]
    private static partial int MPI_Allreduce(IntPtr sendbuf, void* recvbuf, int count, IntPtr datatype, IntPtr op, IntPtr comm);
    [LibraryImport(Library, EntryPoint = "MPI_Bcast")]
    private static partial int MPI_Bcast(void* buffer, int count, IntPtr datatype, int root, IntPtr comm);
    [LibraryImport(Library, EntryPoint = "MPI_Barrier")]
    private static partial int MPI_Barrier(IntPtr comm);
    [LibraryImport(Library, EntryPoint = "MPI_Abort")]
    private static partial int MPI_Abort(IntPtr comm, int errorcode);

    private static void Check(int code, string call)
    {
        // MPI_SUCCESS is 0; with the default MPI_ERRORS_ARE_FATAL handler a failing call aborts before returning.
        if (code != 0) throw new InvalidOperationException($"{call} failed with MPI error code {code}");
    }

    public static bool Initialized { get { Check(MPI_Initialized(out int f), "MPI_Initialized"); return f != 0; } }
    public static bool Finalized { get { Check(MPI_Finalized(out int f), "MPI_Finalized"); return f != 0; } }

    /// <summary><c>MPI_Init_thread(NULL, NULL, required, &amp;provided)</c>; returns the provided level.</summary>
    public static int InitThread(int required) { Check(MPI_Init_thread(0, 0, required, out int provided), "MPI_Init_thread"); return provided; }
    public static int QueryThread() { Check(MPI_Query_thread(out int provided), "MPI_Query_thread"); return provided; }
    public static void FinalizeMpi() => Check(MPI_Finalize(), "MPI_Finalize");
    public static int Rank() { Check(MPI_Comm_rank(CommWorld, out int r), "MPI_Comm_rank"); return r; }
    public static int Size() { Check(MPI_Comm_size(CommWorld, out int s), "MPI_Comm_size"); return s; }
    public static void Barrier() => Check(MPI_Barrier(CommWorld), "MPI_Barrier");
    public static void Abort(int code) => MPI_Abort(CommWorld, code);

    /// <summary>In-place sum over <c>MPI_COMM_WORLD</c> of <paramref name="count"/> elements from <paramref name="offset"/>.</summary>
    public static void AllReduceSum(Array buffer, int offset, int count)
    {
        switch (buffer)
        {
            case float[] f: fixed (float* p = f) Check(MPI_Allreduce(InPlace, p + offset, count, Float, Sum, CommWorld), "MPI_Allreduce"); break;
            case double[] d: fixed (double* p = d) Check(MPI_Allreduce(InPlace, p + offset, count, Double, Sum, CommWorld), "MPI_Allreduce"); break;
            default: throw new ArgumentException($"MPI_Allreduce: only float and double buffers are summed, got {buffer.GetType().Name}");
        }
    }

    /// <summary>Broadcasts <paramref name="count"/> elements from rank <paramref name="root"/>.</summary>
    public static void Broadcast(Array buffer, int count, int root)
    {
        switch (buffer)
        {
            case float[] f: fixed (float* p = f) Check(MPI_Bcast(p, count, Float, root, CommWorld), "MPI_Bcast"); break;
            case double[] d: fixed (double* p = d) Check(MPI_Bcast(p, count, Double, root, CommWorld), "MPI_Bcast"); break;
            // Int64 buffers (num_batches_tracked) travel as doubles' bit patterns: same size, and a broadcast only copies bytes.
            case long[] l: fixed (long* p = l) Check(MPI_Bcast(p, count, Double, root, CommWorld), "MPI_Bcast"); break;
            default: throw new ArgumentException($"MPI_Bcast: unsupported buffer type {buffer.GetType().Name}");
        }
    }
}
