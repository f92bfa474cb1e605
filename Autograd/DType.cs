namespace Autograd;

/// <summary>Element type of a tensor.</summary>
public enum DType
{
    /// <summary>32-bit IEEE float (PyTorch's default float).</summary>
    Float32,
    /// <summary>64-bit IEEE float, used by gradient checks.</summary>
    Float64,
    /// <summary>64-bit integer, for class indices and index tensors. Not differentiable.</summary>
    Int64,
}

internal static class DTypes
{
    public static bool IsFloat(this DType t) => t != DType.Int64;

    public static string Torch(this DType t) => t switch
    {
        DType.Float32 => "torch.float32",
        DType.Float64 => "torch.float64",
        _ => "torch.int64",
    };

    /// <summary>A zeroed array: a recycled one from <see cref="StoragePool"/> when it has one of this type and length.</summary>
    public static Array Allocate(DType t, int n)
    {
        if (StoragePool.Take(t, n) is not Array a) return New(t, n);
        Array.Clear(a);
        return a;
    }

    /// <summary>An array whose contents are garbage: the GC skips zeroing it (which, for the large arrays of activations
    /// and gradients, is a whole extra pass over memory), or a recycled one from <see cref="StoragePool"/>. Only for
    /// kernels that write every element.</summary>
    public static Array AllocateUninitialized(DType t, int n)
    {
        var a = StoragePool.Take(t, n) ?? Fresh(t switch
        {
            DType.Float32 => GC.AllocateUninitializedArray<float>(n),
            DType.Float64 => GC.AllocateUninitializedArray<double>(n),
            _ => GC.AllocateUninitializedArray<long>(n),
        }, t);
        if (PoisonUninitialized) Poison(a);
        return a;
    }

    /// <summary>Whether <see cref="AllocateUninitialized"/> fills its arrays with NaN (integers with long.MinValue), so
    /// that a kernel leaving an element unwritten fails the tests instead of passing on memory that happened to be zero.
    /// The test assemblies set it.</summary>
    internal static bool PoisonUninitialized { get; set; }

    private static void Poison(Array a)
    {
        switch (a)
        {
            case float[] f: Array.Fill(f, float.NaN); break;
            case double[] d: Array.Fill(d, double.NaN); break;
            case long[] l: Array.Fill(l, long.MinValue); break;
        }
    }

    /// <summary>The size of an element in bytes.</summary>
    public static int Size(this DType t) => t == DType.Float32 ? 4 : 8;

    private static Array New(DType t, int n)
    {
        Array a = t switch
        {
            DType.Float32 => new float[n],
            DType.Float64 => new double[n],
            _ => new long[n],
        };
        return Fresh(a, t);
    }

    /// <summary>Advises huge pages for a large new array and has it recycled once unreachable.</summary>
    private static Array Fresh(Array a, DType t)
    {
        Backends.Native.HugePages(a, (long)a.Length * t.Size());
        StoragePool.Track(a, t);
        return a;
    }
}
