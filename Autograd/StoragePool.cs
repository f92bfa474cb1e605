using System.Runtime.CompilerServices;

namespace Autograd;

/// <summary>Large arrays that backward (or an imported ONNX model's run) has finished with, kept for the next tensors of the
/// same type and length (as PyTorch's CPU allocator gets freed blocks back from malloc).</summary>
/// <remarks>
/// <para>A fresh large array from the GC sits on memory the GC returned to the operating system after an earlier
/// collection, so the first write to each of its 4 KB pages is a page fault: measured at about 1.3 microseconds a page on
/// the 2-core benchmark machine, 4 ms for a 12.8 MB activation, more than many of the ops that fill one.</para>
/// <para>Backward returns gradients it owns (see <see cref="AutoGrad"/>'s accumulation): made by a built-in derivative rule,
/// shared with no other tensor, not handed to a hook, a custom function, <see cref="Tensor.Grad"/> or the caller, once the
/// rule that consumed them has run. An ONNX graph run without gradients returns its dead intermediate values.</para>
/// <para>Arrays on the large-object heap user code may hold, activations included, come back only once the GC finds them
/// unreachable (<see cref="Track"/>): so a loop that makes a large tensor per call and drops it writes into memory it has
/// written before, as PyTorch's does, instead of taking fresh pages and a full collection every few calls.</para>
/// <para>At most <see cref="Capacity"/> bytes wait here; arrays beyond it are left to the GC. <c>AUTOGRAD_POOL=0</c> turns
/// recycling off.</para>
/// </remarks>
internal static class StoragePool
{
    /// <summary>Smaller arrays are left to the GC. Imported models at batch 1 (three in one process, in turn) with 32 KB
    /// against 256 KB and 64 MB against 16 MB of <see cref="SmallCapacity"/>: Inception v1 13.8 against 14.6 ms, 0 against
    /// 272 fresh pages a run (its 7x7 activations are 160 KB); SqueezeNet 3.1 against 3.5, ResNet-50 26.5 against 26.8.</summary>
    private const long MinBytes = 1 << 15;

    /// <summary>Arrays below the GC's large-object threshold live in its young generation, where it reclaims them cheaply; a
    /// recycled one ages and then only dies in a full collection, so at most <see cref="SmallCapacity"/> bytes of them wait
    /// (measured: with 128 MB for them the peak working set of `./autograd train` rose from 400 to 485-547 MiB, where with 64
    /// MB it now stays at 221 MiB, as with 16; with none,
    /// the LeNet-5 step allocated 7.9 MiB, collected every second step and spent 8% of its time in GC pauses; recycling
    /// its backward's 0.3-1.2 MB gradients: 4.5 MiB, every fourth step, 12% less time in all).</summary>
    private static readonly long LargeBytes = Convert.ToInt64(GC.GetConfigurationVariables().GetValueOrDefault("LOHThreshold", 85_000L));

    /// <summary>The most bytes kept for reuse at a time.</summary>
    internal const long Capacity = 128L << 20;

    /// <summary>The most bytes of arrays below the large-object threshold kept at a time.</summary>
    internal const long SmallCapacity = 64L << 20;

    /// <summary>Whether arrays are recycled (initially unless <c>AUTOGRAD_POOL=0</c>); tests compare runs with and without.</summary>
    internal static bool Enabled { get; set; } = Environment.GetEnvironmentVariable("AUTOGRAD_POOL") != "0";
    private static readonly Dictionary<(DType T, int N), Shelf> free = [];
    private static long pooledBytes, pooledSmallBytes, returned, clock;

    /// <summary>The arrays of one type and length waiting (<see cref="Bytes"/> each), and when that length was last asked
    /// for.</summary>
    private sealed class Shelf(long bytes)
    {
        public readonly Stack<Array> Arrays = new();
        public readonly long Bytes = bytes;
        public long Used;
    }

    /// <summary>Shelves kept for lengths with no array waiting, at most: a program whose shapes keep changing would otherwise
    /// grow the table without end.</summary>
    private const int MaxShelves = 1024;

    /// <summary>The shelf of this type and length, made if need be (under the pool's lock).</summary>
    private static Shelf ShelfOf(DType t, int n)
    {
        if (free.TryGetValue((t, n), out var shelf)) return shelf;
        if (free.Count >= MaxShelves)
            foreach (var key in free.Where(kv => kv.Value.Arrays.Count == 0).Select(kv => kv.Key).ToList()) free.Remove(key);
        return free[(t, n)] = new Shelf((long)n * t.Size());
    }

    /// <summary>How many arrays have come back for reuse since the process started.</summary>
    internal static long Returned
    {
        get { lock (free) return returned; }
    }

    /// <summary>How many arrays of type <paramref name="t"/> and length <paramref name="n"/> wait for reuse.</summary>
    internal static int Waiting(DType t, int n)
    {
        lock (free) return free.TryGetValue((t, n), out var shelf) ? shelf.Arrays.Count : 0;
    }

    /// <summary>A recycled array of <paramref name="n"/> elements of type <paramref name="t"/> (contents garbage), or null.</summary>
    /// <remarks>Large arrays that user code dropped come back only through a full collection (see <see cref="Track"/>), and
    /// the GC, seeing them survive into the pool, spaces those out. So when the pool has no large array of this length and
    /// more than half the <see cref="Capacity"/> has been handed out since the last full collection, this collects and waits
    /// for the arrays found dead to come back, instead of every call taking fresh memory. A collection that brought none
    /// back (a program keeping what it makes, as a dataset loading) doubles the amount handed out before the next one, up
    /// to <see cref="MaxCollectAfter"/>.</remarks>
    public static Array? Take(DType t, int n)
    {
        long bytes = (long)n * t.Size();
        if (!Enabled || bytes < MinBytes) return null;
        lock (free)
        {
            if (Pop(t, n) is Array a) return a;
            if (bytes < LargeBytes || handedOut <= collectAfter || lastCollection != GC.CollectionCount(2)) return null;
        }
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: false);
        GC.WaitForPendingFinalizers();
        lock (free)
        {
            var a = Pop(t, n);
            collectAfter = a == null ? Math.Min(2 * collectAfter, MaxCollectAfter) : Capacity / 2;
            return a;
        }
    }

    /// <summary>An array from the shelf of this type and length (under the pool's lock), or null; either way the length
    /// counts as just asked for.</summary>
    private static Array? Pop(DType t, int n)
    {
        var shelf = ShelfOf(t, n);
        shelf.Used = ++clock;
        if (shelf.Arrays.Count == 0) return null;
        if (shelf.Bytes >= LargeBytes) HandOut(shelf.Bytes);
        return Withdraw(shelf);
    }

    /// <summary>Takes an array off <paramref name="shelf"/>, which has one, out of the pool's count (under its lock).</summary>
    private static Array Withdraw(Shelf shelf)
    {
        pooledBytes -= shelf.Bytes;
        if (shelf.Bytes < LargeBytes) pooledSmallBytes -= shelf.Bytes;
        return shelf.Arrays.Pop();
    }

    /// <summary>Keeps the storage of <paramref name="dead"/>, which no tensor, view or kernel may use any more.</summary>
    public static void Return(Tensor dead) => Keep(dead.Storage, dead.DType);

    /// <summary>Has <paramref name="fresh"/>, an array on the large-object heap just allocated for a tensor of type
    /// <paramref name="t"/>, come back here once nothing references it any more.</summary>
    /// <remarks>
    /// <para>A <see cref="Lease"/> hangs off the array in a <see cref="ConditionalWeakTable{TKey, TValue}"/>, which keeps
    /// the lease exactly as long as the array is reachable: its finalizer runs only after a collection found the array
    /// unreachable from everything (tensors, views, kernels' locals, pinned handles, user code holding the raw array), never
    /// merely the tensor.</para>
    /// <para>Arrays below the large-object threshold are left alone: they die young and cheaply in the young generation,
    /// and a lease would keep them into the old one.</para>
    /// </remarks>
    public static void Track(Array fresh, DType t)
    {
        long bytes = (long)fresh.Length * t.Size();
        if (!Enabled || bytes < Math.Max(MinBytes, LargeBytes)) return;
        lock (free) HandOut(bytes);
        leases.AddOrUpdate(fresh, new Lease(fresh, t));
    }

    private static readonly ConditionalWeakTable<Array, Lease> leases = [];
    private static int lastCollection;
    private static long handedOut, collectAfter = Capacity / 2;

    /// <summary>Drops the lease of <paramref name="a"/> (the pool does not keep it), so that the GC frees the array once it
    /// is unreachable instead of the lease's finalizer bringing it back.</summary>
    private static void Unlease(Array a)
    {
        if (leases.TryGetValue(a, out var lease) && leases.Remove(a)) GC.SuppressFinalize(lease);
    }

    /// <summary>The most bytes of large arrays handed out before a miss collects.</summary>
    internal const long MaxCollectAfter = 4 * Capacity;

    /// <summary>Counts <paramref name="bytes"/> of large arrays handed out since the last full collection (under the
    /// pool's lock).</summary>
    private static void HandOut(long bytes)
    {
        int collections = GC.CollectionCount(2);
        if (collections != lastCollection) (lastCollection, handedOut) = (collections, 0);
        handedOut += bytes;
    }

    /// <summary>Returns its array to the pool when the array has become unreachable (see <see cref="Track"/>).</summary>
    private sealed class Lease(Array array, DType type)
    {
        ~Lease()
        {
            leases.AddOrUpdate(array, new Lease(array, type));   // before any thread can take it from the pool again
            if (!Keep(array, type)) Unlease(array);
        }
    }

    /// <summary>Puts <paramref name="a"/> in the pool unless it is too small or the pool full; whether it did. When the
    /// pool is full (or, for an array below the large-object threshold, its share for those), arrays of lengths asked for
    /// less recently than this one make room if there are enough of them: a program that moved on to other shapes (another
    /// model) leaves none of its old arrays behind for good.</summary>
    private static bool Keep(Array a, DType t)
    {
        long bytes = (long)a.Length * t.Size();
        if (!Enabled || bytes < MinBytes) return false;
        bool small = bytes < LargeBytes;
        lock (free)
        {
            var shelf = ShelfOf(t, a.Length);
            // Both limits checked before anything is dropped for either.
            var smallOlder = small ? Older(shelf, bytes, smallOnly: true) : [];
            var older = Older(shelf, bytes, smallOnly: false);
            if (smallOlder == null || older == null) return false;
            Drop(smallOlder, bytes, smallOnly: true);
            Drop(older, bytes, smallOnly: false);
            shelf.Arrays.Push(a);
            pooledBytes += bytes;
            if (small) pooledSmallBytes += bytes;
            returned++;
            return true;
        }
    }

    /// <summary>The arrays to drop, least recently asked-for lengths first, for <paramref name="bytes"/> more to fit under
    /// <see cref="Capacity"/> (or, <paramref name="smallOnly"/>, the arrays below the large-object threshold under
    /// <see cref="SmallCapacity"/>): the shelves of those arrays asked for less recently than <paramref name="shelf"/> (none
    /// when the bytes fit already), or null when even all of them would not make room (under the pool's lock).</summary>
    private static List<Shelf>? Older(Shelf shelf, long bytes, bool smallOnly)
    {
        long capacity = smallOnly ? SmallCapacity : Capacity, pooled = smallOnly ? pooledSmallBytes : pooledBytes;
        if (pooled + bytes <= capacity) return [];
        var older = free.Values.Where(s => s.Used < shelf.Used && s.Arrays.Count > 0 && (!smallOnly || s.Bytes < LargeBytes)).OrderBy(s => s.Used).ToList();
        return pooled + bytes - older.Sum(s => s.Arrays.Count * s.Bytes) > capacity ? null : older;
    }

    /// <summary>Drops arrays of the <paramref name="older"/> shelves, in order, until <paramref name="bytes"/> more fit
    /// under the limit <see cref="Older"/> found them for (under the pool's lock).</summary>
    private static void Drop(List<Shelf> older, long bytes, bool smallOnly)
    {
        long capacity = smallOnly ? SmallCapacity : Capacity;
        long Pooled() => smallOnly ? pooledSmallBytes : pooledBytes;
        foreach (var s in older)
            while (s.Arrays.Count > 0 && Pooled() + bytes > capacity) Unlease(Withdraw(s));
    }
}
