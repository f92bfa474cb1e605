using System.Runtime.CompilerServices;

namespace Tests;

/// <summary>Large arrays user code let go of come back to <see cref="StoragePool"/> once the GC finds them unreachable, and
/// only then; a full pool makes room for the lengths in use.</summary>
/// <remarks>Each test uses lengths of its own (8 MB and a little more: on the large-object heap, whose threshold is 4 MB
/// here), so arrays other tests left in the pool never stand in for the ones looked for.</remarks>
public class StoragePoolTests
{
    private bool wasEnabled;

    [SetUp]
    public void Enable() => (wasEnabled, StoragePool.Enabled) = (StoragePool.Enabled, true);

    [TearDown]
    public void Restore() => StoragePool.Enabled = wasEnabled;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void MakeAndDrop(int n) => Tensor.Full([n], 42f);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Tensor MakeAndKeepADetachedCopy(int n) => Tensor.Full([n], 42f).Detach();

    /// <summary>Takes every array of these lengths out of the pool; the caller holds them (dropped, they would come back).</summary>
    private static List<Array> Drain(params int[] lengths)
    {
        var held = new List<Array>();
        foreach (int n in lengths)
            while (StoragePool.Take(DType.Float32, n) is Array a) held.Add(a);
        return held;
    }

    private static void CollectAndFinalize()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    [Test]
    public void A_large_tensor_user_code_dropped_comes_back_once_unreachable()
    {
        const int n = (1 << 21) + 11;
        var held = Drain(n);
        MakeAndDrop(n);
        CollectAndFinalize();
        Assert.That(StoragePool.Waiting(DType.Float32, n), Is.EqualTo(1), "the dropped tensor's array did not come back");
        // (Taken from the pool itself: the tests poison arrays that tensors get uninitialized.)
        var reused = (float[])StoragePool.Take(DType.Float32, n)!;
        Assert.That(reused.All(v => v == 42f), "the pool did not hand out the dropped tensor's array");
        GC.KeepAlive(held);
    }

    [Test]
    public void An_array_a_live_tensor_still_shares_is_never_recycled()
    {
        const int n = (1 << 21) + 19;
        var held = Drain(n);
        var detached = MakeAndKeepADetachedCopy(n);   // the tensor that made the array is dead; this one shares its storage
        CollectAndFinalize();
        Assert.That(StoragePool.Waiting(DType.Float32, n), Is.Zero);
        var others = Enumerable.Range(0, 4).Select(_ => Tensor.Full([n], 7f)).ToList();
        Assert.That(detached.ToFloatArray().All(v => v == 42f), "a new tensor wrote into storage a live tensor shares");
        GC.KeepAlive(others);
        GC.KeepAlive(held);
    }

    [Test]
    public void A_loop_that_drops_a_large_tensor_per_call_reuses_a_bounded_set_of_arrays()
    {
        const int n = (1 << 21) + 29;
        var held = Drain(n);
        var distinct = new HashSet<int>();
        for (int i = 0; i < 300; i++) distinct.Add(RuntimeHelpers.GetHashCode(Tensor.Full([n], i).Storage));
        // Without recycling every call takes a new array (300 distinct); with it, at most what goes out before the first
        // collection (other tests may have raised that amount to its maximum) and what the pool holds after.
        Assert.That(distinct, Has.Count.LessThanOrEqualTo((StoragePool.MaxCollectAfter + StoragePool.Capacity) / (4L * n) + 2));
        GC.KeepAlive(held);
    }

    /// <summary>Drops <paramref name="count"/> large tensors of length <paramref name="n"/>; weak references that follow
    /// their arrays through finalization.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static List<WeakReference> MakeAndDropMany(int n, int count)
    {
        var tensors = Enumerable.Range(0, count).Select(_ => Tensor.Full([n], 1f)).ToList();   // all alive at once: distinct arrays
        return tensors.Select(t => new WeakReference(t.Storage, trackResurrection: true)).ToList();
    }

    [Test]
    public void Dropped_arrays_the_full_pool_does_not_keep_are_freed()
    {
        const int n = (1 << 21) + 43;
        var held = Drain(n);
        int fit = (int)(StoragePool.Capacity / (4L * n));
        var arrays = MakeAndDropMany(n, fit + 4);
        for (int i = 0; i < 3; i++) CollectAndFinalize();
        Assert.That(arrays.Count(a => a.IsAlive), Is.LessThanOrEqualTo(fit), $"waiting {StoragePool.Waiting(DType.Float32, n)}: arrays the pool has no room for must die, not come back at every collection");
        held.AddRange(Drain(n));
        GC.KeepAlive(held);
    }

    [Test]
    public void A_full_pool_drops_the_length_asked_for_longest_ago_to_keep_the_one_given_back()
    {
        const int a = (1 << 21) + 37, b = (1 << 21) + 41;
        var held = Drain(a, b);
        int fit = (int)(StoragePool.Capacity / (4L * a));
        var dead = Enumerable.Range(0, fit + 3).Select(_ => Tensor.Zeros([a])).ToList();
        foreach (var t in dead) StoragePool.Return(t);   // fills the pool with length a, dropping arrays of lengths asked for before
        Assert.That(StoragePool.Waiting(DType.Float32, a), Is.EqualTo(fit));
        var one = Tensor.Zeros([b]);                      // asks for length b after a was given back
        StoragePool.Return(one);
        Assert.That(StoragePool.Waiting(DType.Float32, b), Is.EqualTo(1));
        Assert.That(StoragePool.Waiting(DType.Float32, a), Is.EqualTo(fit - 1));
        held.AddRange(Drain(a, b));   // the pool is left with none of these lengths for later tests
        GC.KeepAlive(held);
    }
}
