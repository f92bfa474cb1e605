using System.Globalization;
using System.Numerics;
using System.Text;

namespace Autograd;

/// <summary>An n-dimensional array with reverse-mode automatic differentiation.</summary>
/// <remarks>Storage is a contiguous row-major .NET array owned by the GC: nothing needs disposing.
/// Reshape-like ops share storage; every other op produces a new tensor.</remarks>
/// <example><code>
/// var x = Tensor.From(new[] { 1f, 2f, 3f }, 3).RequiresGrad_();
/// var y = (x * x).Sum();
/// y.Backward();            // x.Grad = [2, 4, 6]
/// </code></example>
public sealed partial class Tensor
{
    internal readonly Array Storage;
    internal readonly int[] Dims;
    internal Node? GradFn;
    private bool requiresGrad;

    internal Tensor(Array storage, int[] dims, DType dtype, VersionCounter? version = null)
    {
        Storage = storage;
        Dims = dims;
        DType = dtype;
        Version = version ?? new VersionCounter();
    }

    /// <summary>Counts in-place modifications of the storage; shared by every tensor viewing the same storage,
    /// so backward can tell that a value it saved has changed.</summary>
    internal sealed class VersionCounter
    {
        public int Value;
        /// <summary>Whether a view (<see cref="ShareStorage"/>) has been made of the storage: a recorded in-place op would
        /// change a tensor whose history does not say so.</summary>
        public bool Viewed;
    }

    internal readonly VersionCounter Version;

    /// <summary>A tensor over the same storage (a view), sharing its version counter.</summary>
    internal Tensor ShareStorage(int[] dims)
    {
        Version.Viewed = true;
        return new(Storage, dims, DType, Version);
    }

    /// <summary>Whether a recorded op has taken this tensor as an input: its gradient reaches this tensor's history, which an
    /// in-place op recorded now would wrongly put in between.</summary>
    internal bool Consumed;

    internal static Tensor Empty(DType dtype, params int[] shape) => new(DTypes.Allocate(dtype, Autograd.Shape.Numel(shape)), shape, dtype);

    /// <summary>A tensor whose elements are garbage, for a kernel that writes every one of them (see <see cref="DTypes.AllocateUninitialized"/>).</summary>
    internal static Tensor Uninitialized(DType dtype, params int[] shape) => new(DTypes.AllocateUninitialized(dtype, Autograd.Shape.Numel(shape)), shape, dtype);

    /// <summary>The element type.</summary>
    public DType DType { get; }

    /// <summary>A copy of the shape.</summary>
    public int[] Shape => (int[])Dims.Clone();

    /// <summary>Number of dimensions.</summary>
    public int Rank => Dims.Length;

    /// <summary>Number of elements.</summary>
    public int Numel => Storage.Length;

    /// <summary>Size of dimension <paramref name="dim"/> (negative counts from the end).</summary>
    public int Size(int dim) => Dims[Autograd.Shape.Dim("Size", dim, Rank)];

    /// <summary>Whether gradients are recorded for this tensor. Settable on leaves only.</summary>
    public bool RequiresGrad
    {
        get => requiresGrad || GradFn != null;
        set
        {
            if (GradFn != null)
                throw new InvalidOperationException($"RequiresGrad can only be changed on leaf tensors; this tensor {Autograd.Shape.Str(Dims)} was produced by {GradFn.Op}. Use Detach() first.");
            if (value && !DType.IsFloat())
                throw new InvalidOperationException($"only Float32 and Float64 tensors can require gradients, got {DType} {Autograd.Shape.Str(Dims)}");
            requiresGrad = value;
        }
    }

    /// <summary>Sets <see cref="RequiresGrad"/> and returns this tensor (like <c>requires_grad_()</c>).</summary>
    public Tensor RequiresGrad_(bool value = true) { RequiresGrad = value; return this; }

    /// <summary>The gradient accumulated by <see cref="Backward(Tensor?, bool, bool)"/>, or null.</summary>
    /// <remarks>As in PyTorch, a later backward (without <c>createGraph</c>) adds into this tensor in place when backward
    /// made it; a gradient assigned here, or one that shares storage with another tensor, is replaced by a new sum instead.</remarks>
    public Tensor? Grad
    {
        get => grad;
        set { grad = value; gradOwned = false; }
    }

    private Tensor? grad;
    // Whether grad is a tensor backward made and no other tensor shares its storage, so backward may add into it in place.
    private bool gradOwned;

    /// <summary>True for tensors not produced by a recorded op.</summary>
    public bool IsLeaf => GradFn == null;

    /// <summary>The tensors this one was computed from by its recorded op (empty for leaves).</summary>
    internal IReadOnlyList<Tensor> GraphInputs => GradFn?.Inputs ?? [];

    /// <summary>Name of the op that produced this tensor, or null for leaves.</summary>
    public string? GradFnName => GradFn?.Op;

    internal T[] Data<T>() => (T[])Storage;
    internal Span<T> Span<T>() => ((T[])Storage).AsSpan();

    // ---------------- creation ----------------

    /// <summary>A tensor holding a copy of <paramref name="data"/> with the given shape.</summary>
    public static Tensor From(float[] data, params int[] shape) => FromArray((float[])data.Clone(), shape, DType.Float32);

    /// <summary>A tensor holding a copy of <paramref name="data"/> with the given shape.</summary>
    public static Tensor From(double[] data, params int[] shape) => FromArray((double[])data.Clone(), shape, DType.Float64);

    /// <summary>An Int64 tensor (class indices) holding a copy of <paramref name="data"/>.</summary>
    public static Tensor From(long[] data, params int[] shape) => FromArray((long[])data.Clone(), shape, DType.Int64);

    private static Tensor FromArray(Array data, int[] shape, DType dtype)
    {
        if (shape.Length == 0 && data.Length != 1) shape = [data.Length];
        if (shape.Any(d => d < 0)) throw new ArgumentException($"Tensor.From: negative size in shape {Autograd.Shape.Str(shape)}");
        if (Autograd.Shape.Numel(shape) != data.Length)
            throw new ArgumentException($"Tensor.From: shape {Autograd.Shape.Str(shape)} needs {Autograd.Shape.Numel(shape)} elements, data has {data.Length}");
        return new Tensor(data, (int[])shape.Clone(), dtype);
    }

    /// <summary>A 0-dimensional tensor holding <paramref name="value"/>.</summary>
    public static Tensor Scalar(double value, DType dtype = DType.Float32) => Full([], value, dtype);

    /// <summary>A tensor filled with <paramref name="value"/>.</summary>
    public static Tensor Full(int[] shape, double value, DType dtype = DType.Float32)
    {
        var t = Empty(dtype, (int[])shape.Clone());
        switch (dtype)
        {
            case DType.Float32: Array.Fill(t.Data<float>(), (float)value); break;
            case DType.Float64: Array.Fill(t.Data<double>(), value); break;
            default: Array.Fill(t.Data<long>(), (long)value); break;
        }
        return t;
    }

    /// <summary>A tensor of zeros.</summary>
    public static Tensor Zeros(int[] shape, DType dtype = DType.Float32) => Empty(dtype, (int[])shape.Clone());
    /// <summary>A tensor of zeros (Float32).</summary>
    public static Tensor Zeros(params int[] shape) => Zeros(shape, DType.Float32);
    /// <summary>A tensor of ones.</summary>
    public static Tensor Ones(int[] shape, DType dtype = DType.Float32) => Full(shape, 1, dtype);
    /// <summary>A tensor of ones (Float32).</summary>
    public static Tensor Ones(params int[] shape) => Full(shape, 1, DType.Float32);
    /// <summary>Zeros with the shape and dtype of <paramref name="t"/>.</summary>
    public static Tensor ZerosLike(Tensor t) => Zeros(t.Dims, t.DType);
    /// <summary>Ones with the shape and dtype of <paramref name="t"/>.</summary>
    public static Tensor OnesLike(Tensor t) => Ones(t.Dims, t.DType);

    /// <summary>Values from <paramref name="start"/> up to (excluding) <paramref name="end"/> by <paramref name="step"/>.</summary>
    public static Tensor Arange(double start, double end, double step = 1, DType dtype = DType.Float32)
    {
        if (step == 0 || double.IsNaN(step)) throw new ArgumentException($"Arange: step must be non-zero, got {step}");
        int n = Math.Max(0, (int)Math.Ceiling((end - start) / step));
        return Generate(dtype, [n], i => start + i * step);
    }

    /// <summary>Values 0, 1, ..., end-1.</summary>
    public static Tensor Arange(int end, DType dtype = DType.Float32) => Arange(0, end, 1, dtype);

    /// <summary><paramref name="steps"/> evenly spaced values from start to end inclusive.</summary>
    public static Tensor Linspace(double start, double end, int steps, DType dtype = DType.Float32)
    {
        if (steps < 0) throw new ArgumentException($"Linspace: steps must be non-negative, got {steps}");
        double d = steps > 1 ? (end - start) / (steps - 1) : 0;
        // Like PyTorch, fill the second half from the end so the last value is exactly `end`.
        return Generate(dtype, [steps], i => i < steps / 2 ? start + i * d : end - (steps - 1 - i) * d);
    }

    /// <summary>The n x m identity matrix (m defaults to n).</summary>
    public static Tensor Eye(int n, int? m = null, DType dtype = DType.Float32)
    {
        int cols = m ?? n;
        return Generate(dtype, [n, cols], i => i / cols == i % cols ? 1 : 0);
    }

    /// <summary>Uniform samples in [0, 1).</summary>
    public static Tensor Rand(int[] shape, Generator generator, DType dtype = DType.Float32) =>
        Generate(dtype, shape, _ => generator.NextDouble());
    /// <summary>Uniform samples in [0, 1) from a generator seeded with <paramref name="seed"/>.</summary>
    public static Tensor Rand(int[] shape, long seed, DType dtype = DType.Float32) => Rand(shape, new Generator(seed), dtype);

    /// <summary>Standard normal samples.</summary>
    public static Tensor Randn(int[] shape, Generator generator, DType dtype = DType.Float32) =>
        Generate(dtype, shape, _ => generator.NextNormal());
    /// <summary>Standard normal samples from a generator seeded with <paramref name="seed"/>.</summary>
    public static Tensor Randn(int[] shape, long seed, DType dtype = DType.Float32) => Randn(shape, new Generator(seed), dtype);

    /// <summary>Uniform integers in [low, high) as Int64 (or the given dtype).</summary>
    public static Tensor RandInt(long low, long high, int[] shape, Generator generator, DType dtype = DType.Int64)
    {
        if (high <= low) throw new ArgumentException($"RandInt: high ({high}) must be greater than low ({low})");
        return Generate(dtype, shape, _ => low + generator.NextLong(high - low));
    }
    /// <summary>Uniform integers in [low, high) from a generator seeded with <paramref name="seed"/>.</summary>
    public static Tensor RandInt(long low, long high, int[] shape, long seed, DType dtype = DType.Int64) =>
        RandInt(low, high, shape, new Generator(seed), dtype);

    internal static Tensor Generate(DType dtype, int[] shape, Func<int, double> f)
    {
        var t = Empty(dtype, (int[])shape.Clone());
        switch (dtype)
        {
            case DType.Float32: { var d = t.Data<float>(); for (int i = 0; i < d.Length; i++) d[i] = (float)f(i); break; }
            case DType.Float64: { var d = t.Data<double>(); for (int i = 0; i < d.Length; i++) d[i] = f(i); break; }
            default: { var d = t.Data<long>(); for (int i = 0; i < d.Length; i++) d[i] = (long)f(i); break; }
        }
        return t;
    }

    // ---------------- readout ----------------

    /// <summary>A copy of the values as float.</summary>
    public float[] ToFloatArray() => DType switch
    {
        DType.Float32 => (float[])Storage.Clone(),
        DType.Float64 => Array.ConvertAll(Data<double>(), v => (float)v),
        _ => Array.ConvertAll(Data<long>(), v => (float)v),
    };

    /// <summary>A copy of the values as double.</summary>
    public double[] ToDoubleArray() => DType switch
    {
        DType.Float32 => Array.ConvertAll(Data<float>(), v => (double)v),
        DType.Float64 => (double[])Storage.Clone(),
        _ => Array.ConvertAll(Data<long>(), v => (double)v),
    };

    /// <summary>A copy of the values as long (truncating floats).</summary>
    public long[] ToLongArray() => DType switch
    {
        DType.Float32 => Array.ConvertAll(Data<float>(), v => (long)v),
        DType.Float64 => Array.ConvertAll(Data<double>(), v => (long)v),
        _ => (long[])Storage.Clone(),
    };

    /// <summary>The value of a one-element tensor.</summary>
    public double Item()
    {
        if (Numel != 1) throw new InvalidOperationException($"Item: only one-element tensors can be converted to a scalar, got shape {Autograd.Shape.Str(Dims)}");
        return At(0);
    }

    internal double At(int i) => DType switch
    {
        DType.Float32 => Data<float>()[i],
        DType.Float64 => Data<double>()[i],
        _ => Data<long>()[i],
    };

    /// <summary>PyTorch-style printout: values (abbreviated past 1000 elements), shape and dtype.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder("tensor(");
        bool summarize = Numel > 1000;
        bool integral = !DType.IsFloat() || Enumerable.Range(0, Numel).All(i => At(i) == Math.Floor(At(i)) && Math.Abs(At(i)) < 1e8);
        bool sci = !integral && Enumerable.Range(0, Numel).Any(i => At(i) != 0 && (Math.Abs(At(i)) >= 1e8 || Math.Abs(At(i)) < 1e-4));
        string Fmt(double v) => !DType.IsFloat() ? v.ToString("0", CultureInfo.InvariantCulture)
            : double.IsNaN(v) ? "nan" : double.IsInfinity(v) ? (v > 0 ? "inf" : "-inf")
            : integral ? v.ToString("0", CultureInfo.InvariantCulture) + "."
            : sci ? v.ToString("0.0000e+00", CultureInfo.InvariantCulture) : v.ToString("0.0000", CultureInfo.InvariantCulture);
        int width = Numel == 0 ? 0 : Enumerable.Range(0, Numel).Max(i => Fmt(At(i)).Length);
        var strides = Autograd.Shape.Strides(Dims);
        void Write(int dim, int offset)
        {
            if (dim == Rank) { sb.Append(Fmt(At(offset)).PadLeft(width)); return; }
            sb.Append('[');
            int n = Dims[dim];
            for (int i = 0; i < n; i++)
            {
                if (summarize && n > 6 && i == 3) { sb.Append("..., "); i = n - 3; }
                Write(dim + 1, offset + i * strides[dim]);
                if (i < n - 1)
                {
                    sb.Append(',');
                    if (dim == Rank - 1) sb.Append(' ');
                    else sb.Append('\n', Rank - 1 - dim).Append(' ', 7 + dim + 1);
                }
            }
            sb.Append(']');
        }
        if (Numel == 0) sb.Append("[]"); else Write(0, 0);
        sb.Append($", shape={Autograd.Shape.Str(Dims)}, dtype={DType}");
        if (GradFn != null) sb.Append($", grad_fn={GradFn.Op}");
        else if (RequiresGrad) sb.Append(", requires_grad=True");
        return sb.Append(')').ToString();
    }
}
