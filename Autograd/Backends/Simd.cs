using System.Numerics;
using System.Runtime.Intrinsics;

namespace Autograd.Backends;

/// <summary>The few vector operations the kernels need, so one kernel body serves every vector width.</summary>
internal unsafe interface ISimd<TV, T> where TV : unmanaged where T : unmanaged
{
    static abstract int Width { get; }
    static abstract TV Load(T* p);
    static abstract void Store(T* p, TV v);
    static abstract TV Splat(T x);
    /// <summary>a * b + c, fused where the hardware allows.</summary>
    static abstract TV MulAdd(TV a, TV b, TV c);
    /// <summary>The sum of the lanes.</summary>
    static abstract T Sum(TV v);
    /// <summary>The larger of each pair of lanes, as one instruction does it: where either is NaN the result depends on the
    /// platform (b on x86, NaN on Arm64), so callers track NaNs themselves.</summary>
    static abstract TV MaxNative(TV a, TV b);
    /// <summary>acc with the lanes where v is NaN made NaN (all bits set).</summary>
    static abstract TV OrNaN(TV acc, TV v);
}

internal readonly unsafe struct Simd512<T> : ISimd<Vector512<T>, T> where T : unmanaged
{
    public static int Width => Vector512<T>.Count;
    public static Vector512<T> Load(T* p) => Vector512.Load(p);
    public static void Store(T* p, Vector512<T> v) => v.Store(p);
    public static Vector512<T> Splat(T x) => Vector512.Create(x);
    public static T Sum(Vector512<T> v) => Vector512.Sum(v);
    public static Vector512<T> MaxNative(Vector512<T> a, Vector512<T> b) => Vector512.MaxNative(a, b);
    public static Vector512<T> OrNaN(Vector512<T> acc, Vector512<T> v) => acc | Vector512.IsNaN(v);
    // The typeof tests are JIT-time constants, so each instantiation compiles to a single vfmadd.
    public static Vector512<T> MulAdd(Vector512<T> a, Vector512<T> b, Vector512<T> c) => typeof(T) == typeof(float)
        ? Vector512.FusedMultiplyAdd(a.AsSingle(), b.AsSingle(), c.AsSingle()).As<float, T>()
        : Vector512.FusedMultiplyAdd(a.AsDouble(), b.AsDouble(), c.AsDouble()).As<double, T>();
}

/// <summary>Vector&lt;T&gt; fallback: 256-bit on AVX2, 128-bit on NEON.</summary>
internal readonly unsafe struct SimdAny<T> : ISimd<Vector<T>, T> where T : unmanaged
{
    public static int Width => Vector<T>.Count;
    public static Vector<T> Load(T* p) => Vector.Load(p);
    public static void Store(T* p, Vector<T> v) => v.Store(p);
    public static Vector<T> Splat(T x) => new(x);
    public static T Sum(Vector<T> v) => Vector.Sum(v);
    public static Vector<T> MaxNative(Vector<T> a, Vector<T> b) => Vector.MaxNative(a, b);
    public static Vector<T> OrNaN(Vector<T> acc, Vector<T> v) => acc | Vector.IsNaN(v);
    // MultiplyAddEstimate fuses where FMA exists instead of falling back to a very slow software FMA.
    public static Vector<T> MulAdd(Vector<T> a, Vector<T> b, Vector<T> c) => typeof(T) == typeof(float)
        ? Vector.MultiplyAddEstimate(a.As<T, float>(), b.As<T, float>(), c.As<T, float>()).As<float, T>()
        : Vector.MultiplyAddEstimate(a.As<T, double>(), b.As<T, double>(), c.As<T, double>()).As<double, T>();
}
