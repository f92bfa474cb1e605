using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Autograd.Distributed;

/// <summary>The processes of an MPI job (<c>MPI_COMM_WORLD</c>), like <c>torch.distributed</c>'s default process group: rank,
/// world size, and the collectives data-parallel training needs (in-place sum all-reduce, broadcast, barrier).</summary>
/// <remarks>
/// <para>Threading: one dedicated communication thread initializes MPI, makes every MPI call in the order the calls were
/// submitted, and finalizes MPI. Collective calls must be issued in the same order on every rank; a single ordered queue
/// keeps that true even when <see cref="DistributedDataParallel"/> launches gradient all-reduces from inside the backward
/// pass while synchronized batch norm issues its own. Open MPI makes progress on a blocking collective only inside an MPI
/// call, so a thread that sits in <c>MPI_Allreduce</c> is what lets communication overlap the rest of the backward pass.
/// MPI is initialized with <c>MPI_THREAD_MULTIPLE</c> (Open MPI 4.1 provides it) only so that the watchdog may call
/// <c>MPI_Abort</c> from another thread; without it the watchdog ends the process instead, and <c>mpirun</c> then takes the
/// job down.</para>
/// <para>Failure handling: a collective that does not complete within <see cref="Timeout"/> (a rank died, hangs, or is far
/// behind) makes this rank print which collective timed out and abort the whole job with <c>MPI_Abort</c>: never a silent
/// hang. A rank that exits without finalizing MPI, or is killed, makes <c>mpirun</c> terminate the other ranks.</para>
/// </remarks>
/// <example><code>
/// using var comm = Communicator.Init();                 // under mpirun -np 2
/// var t = Tensor.Full([3], comm.Rank + 1);
/// comm.AllReduce(t);                                    // [3, 3, 3] on both ranks
/// </code></example>
public sealed class Communicator : IProcessGroup, IDisposable
{
    private static readonly object gate = new();
    private static Communicator? world;

    private readonly BlockingCollection<Work> queue = new();
    private readonly Thread thread;
    private int threadLevel;
    private bool disposed;

    /// <summary>Whether Open MPI's <c>libmpi.so.40</c> loads on this machine.</summary>
    public static bool IsAvailable => Mpi.Unavailable == null;

    /// <summary>Why MPI is unavailable (with the command that installs it), or null.</summary>
    public static string? UnavailableReason => Mpi.Unavailable;

    /// <summary>Whether this process was started by Open MPI's <c>mpirun</c> (its environment names a rank).</summary>
    public static bool LaunchedByMpirun => Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") != null;

    /// <summary>The default timeout of a collective: 5 minutes (PyTorch's NCCL default is 10).</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    /// <summary>Initializes MPI (once per process; later calls return the same communicator, until it is disposed) on the
    /// communication thread. Outside <c>mpirun</c> this is a world of one process.</summary>
    /// <param name="timeout">How long a collective may take before the job is aborted (default <see cref="DefaultTimeout"/>).</param>
    public static Communicator Init(TimeSpan? timeout = null)
    {
        lock (gate)
        {
            if (world != null)
                return world.disposed ? throw new InvalidOperationException("Communicator.Init: MPI was finalized in this process (the communicator was disposed); MPI cannot be initialized twice") : world;
            if (Mpi.Unavailable is string why) throw new InvalidOperationException($"Communicator.Init: {why}");
            world = new Communicator(timeout ?? DefaultTimeout);
            return world;
        }
    }

    private Communicator(TimeSpan timeout)
    {
        if (timeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(timeout), $"Communicator: timeout must be positive, got {timeout}");
        Timeout = timeout;
        thread = new Thread(Run) { IsBackground = true, Name = "MPI communication" };
        var init = new Work("MPI_Init_thread", () =>
        {
            if (Mpi.Initialized)
            {
                threadLevel = Mpi.QueryThread();
                if (threadLevel < Mpi.ThreadMultiple)
                    throw new InvalidOperationException($"Communicator.Init: MPI was already initialized with thread level {threadLevel}; " +
                        "the communication thread needs MPI_THREAD_MULTIPLE when MPI is initialized elsewhere");
            }
            else threadLevel = Mpi.InitThread(Mpi.ThreadMultiple);
            if (threadLevel < Mpi.ThreadFunneled)
                throw new InvalidOperationException($"Communicator.Init: MPI provides thread level {threadLevel}, at least MPI_THREAD_FUNNELED is needed");
            Rank = Mpi.Rank();
            WorldSize = Mpi.Size();
        });
        queue.Add(init);
        thread.Start();
        init.Wait(this);
        // At exit MPI is finalized, unless the process is failing: then Open MPI sees a rank end without finalizing and
        // aborts the job (a finalize would wait for ranks that are still computing). mpirun's SIGTERM, sent when another
        // rank failed, gets a message saying so.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { if (Environment.ExitCode == 0) Dispose(); };
        sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ =>
        {
            Console.Error.WriteLine($"autograd: rank {Rank} of {WorldSize}: terminated by mpirun (SIGTERM): another rank failed or the job was aborted");
            Console.Error.Flush();
            Environment.ExitCode = 143;
        });
    }

    private readonly PosixSignalRegistration sigterm;

    /// <summary>This process's rank in <c>MPI_COMM_WORLD</c>.</summary>
    public int Rank { get; private set; }

    /// <summary>Number of processes in the job.</summary>
    public int WorldSize { get; private set; } = 1;

    /// <summary>Whether this is rank 0, the one that prints and writes checkpoints.</summary>
    public bool IsMain => Rank == 0;

    /// <summary>How long a collective may take before this rank aborts the job.</summary>
    public TimeSpan Timeout { get; set; }

    private void Run()
    {
        bool initialized = false;
        foreach (var work in queue.GetConsumingEnumerable())
        {
            work.Execute();
            initialized |= work.Name == "MPI_Init_thread" && work.Error == null;
        }
        if (initialized && !Mpi.Finalized) Mpi.FinalizeMpi();
    }

    /// <summary>A submitted MPI call; <see cref="Wait"/> blocks until the communication thread has run it.</summary>
    internal sealed class Work(string name, Action action)
    {
        private readonly ManualResetEventSlim done = new();
        public string Name { get; } = name;
        public Exception? Error { get; private set; }

        public void Execute()
        {
            try { action(); }
            catch (Exception e) { Error = e; }
            done.Set();
        }

        /// <summary>Waits for completion; past the communicator's timeout the watchdog aborts the job.</summary>
        public void Wait(Communicator comm)
        {
            if (!done.Wait(comm.Timeout)) comm.Watchdog(Name);
            if (Error != null) throw new InvalidOperationException($"{Name}: {Error.Message}", Error);
        }
    }

    /// <summary>Queues <paramref name="action"/> for the communication thread.</summary>
    internal Work Submit(string name, Action action)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        var work = new Work(name, action);
        queue.Add(work);
        return work;
    }

    private void Watchdog(string what)
    {
        Console.Error.WriteLine($"autograd: rank {Rank} of {WorldSize}: {what} did not complete within {Timeout.TotalSeconds:G4} s: " +
            "another rank has died, hangs or is far behind; aborting the MPI job");
        Console.Error.Flush();
        if (threadLevel >= Mpi.ThreadMultiple) Mpi.Abort(1);
        Environment.Exit(1);
    }

    /// <summary>Sums <paramref name="count"/> elements of <paramref name="buffer"/> (float[] or double[]) from
    /// <paramref name="offset"/> over every rank, in place, on the communication thread; wait on the result.</summary>
    internal Work AllReduceAsync(Array buffer, int offset, int count) =>
        Submit($"all-reduce of {count} {(buffer is float[] ? "floats" : "doubles")}", () => Mpi.AllReduceSum(buffer, offset, count));

    /// <inheritdoc/>
    public void AllReduceSum(double[] values)
    {
        if (WorldSize > 1) AllReduceAsync(values, 0, values.Length).Wait(this);
    }

    /// <summary>Replaces a Float32 or Float64 tensor's values by their sum over every rank (in place, outside the graph).</summary>
    public void AllReduce(Tensor tensor)
    {
        if (tensor.DType == DType.Int64) throw new ArgumentException($"Communicator.AllReduce: Float32 or Float64 tensors are summed, got an Int64 tensor {Shape.Str(tensor.Dims)}");
        if (WorldSize == 1) return;
        AllReduceAsync(tensor.Storage, 0, tensor.Numel).Wait(this);
        tensor.Version.Value++;
    }

    /// <summary>Overwrites <paramref name="tensors"/> on every rank with their values on rank <paramref name="root"/>, in one
    /// broadcast (coalesced through a double buffer: exact for Float32, Float64 and Int64 values below 2^53).</summary>
    public void Broadcast(IReadOnlyList<Tensor> tensors, int root = 0)
    {
        if (root < 0 || root >= WorldSize) throw new ArgumentOutOfRangeException(nameof(root), $"Communicator.Broadcast: root {root} is not a rank of a world of {WorldSize}");
        if (WorldSize == 1 || tensors.Count == 0) return;
        var flat = new double[tensors.Sum(t => (long)t.Numel)];
        int offset = 0;
        if (Rank == root)
            foreach (var t in tensors) { t.ToDoubleArray().CopyTo(flat, offset); offset += t.Numel; }
        Submit($"broadcast of {flat.Length} values from rank {root}", () => Mpi.Broadcast(flat, flat.Length, root)).Wait(this);
        if (Rank == root) return;
        offset = 0;
        foreach (var t in tensors)
        {
            var part = flat.AsSpan(offset, t.Numel);
            switch (t.Storage)
            {
                case float[] f: for (int i = 0; i < f.Length; i++) f[i] = (float)part[i]; break;
                case double[] d: part.CopyTo(d); break;
                case long[] l: for (int i = 0; i < l.Length; i++) l[i] = (long)part[i]; break;
            }
            t.Version.Value++;
            offset += t.Numel;
        }
    }

    /// <summary>Blocks until every rank has called it.</summary>
    public void Barrier()
    {
        if (WorldSize > 1) Submit("barrier", Mpi.Barrier).Wait(this);
    }

    /// <summary>Prints <paramref name="message"/> and terminates every process of the job with exit code <paramref name="code"/>
    /// (<c>MPI_Abort</c>).</summary>
    public void Abort(string message, int code = 1)
    {
        Console.Error.WriteLine($"autograd: rank {Rank} of {WorldSize}: {message}");
        Console.Error.Flush();
        Mpi.Abort(code);
        Environment.Exit(code);
    }

    /// <summary>Finalizes MPI after the queued calls have run (also done at process exit). MPI cannot be initialized again
    /// in this process afterwards.</summary>
    public void Dispose()
    {
        lock (gate)
        {
            if (disposed) return;
            disposed = true;
        }
        sigterm.Dispose();
        queue.CompleteAdding();
        // MPI_Finalize waits for the other ranks: a rank that hangs must not make this one hang at exit.
        if (Thread.CurrentThread != thread && !thread.Join(Timeout)) Watchdog("MPI_Finalize");
    }
}
