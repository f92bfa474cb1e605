using System.Collections;
using System.Runtime.CompilerServices;

namespace Autograd;

/// <summary>A size given as one int for every spatial dim or one int per dim, like PyTorch's
/// <c>_size_2_t</c>: <c>stride: 2</c> or <c>stride: [2, 1]</c>. <c>default</c> means "the op's default".</summary>
[CollectionBuilder(typeof(IntTuple), nameof(Create))]
public readonly struct IntTuple : IEnumerable<int>
{
    private readonly int[]? values;
    private IntTuple(int[] v) => values = v;

    /// <summary>The same value for every dim.</summary>
    public static implicit operator IntTuple(int v) => new([v]);
    /// <summary>One value per dim.</summary>
    public static implicit operator IntTuple(int[] v) => new((int[])v.Clone());
    /// <summary>Builds from a collection expression.</summary>
    public static IntTuple Create(ReadOnlySpan<int> v) => new(v.ToArray());

    /// <summary>Whether a value was given.</summary>
    public bool IsDefault => values == null;

    /// <summary>One value per spatial dim: a single value is repeated; <paramref name="dflt"/> when not given.</summary>
    internal int[] Expand(string op, string arg, int nd, int dflt) => values switch
    {
        null => Enumerable.Repeat(dflt, nd).ToArray(),
        { Length: 1 } v => Enumerable.Repeat(v[0], nd).ToArray(),
        var v when v.Length == nd => (int[])v.Clone(),
        var v => throw new ArgumentException($"{op}: {arg} must be one int or {nd} ints, got {Shape.Str(v)}"),
    };

    /// <inheritdoc/>
    public IEnumerator<int> GetEnumerator() => ((IEnumerable<int>)(values ?? [])).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    /// <summary>As Python prints it: <c>2</c> or <c>(2, 1)</c>.</summary>
    public override string ToString() => values switch
    {
        null => "default",
        { Length: 1 } v => v[0].ToString(),
        var v => "(" + string.Join(", ", v) + ")",
    };
}

/// <summary>Convolution padding: one int, one int per spatial dim, a (before, after) pair per spatial dim
/// (<c>[top, bottom, left, right]</c> for 2-d), or <c>"same"</c> / <c>"valid"</c> as in PyTorch.</summary>
[CollectionBuilder(typeof(Padding), nameof(Create))]
public readonly struct Padding : IEnumerable<int>
{
    private readonly int[]? values;
    private readonly string? mode;
    private Padding(int[]? v, string? m) { values = v; mode = m; }

    /// <summary>The same padding on both sides of every dim.</summary>
    public static implicit operator Padding(int v) => new([v], null);
    /// <summary>Per dim, or per side of every dim.</summary>
    public static implicit operator Padding(int[] v) => new((int[])v.Clone(), null);
    /// <summary><c>"same"</c> (output size equals input size, stride 1 only) or <c>"valid"</c> (no padding).</summary>
    public static implicit operator Padding(string mode) => new(null, mode);
    /// <summary>Builds from a collection expression.</summary>
    public static Padding Create(ReadOnlySpan<int> v) => new(v.ToArray(), null);

    /// <summary>Padding (before, after) per spatial dim.</summary>
    internal (int[] Lo, int[] Hi) Resolve(string op, int nd, int[] kernel, int[] dilation, int[] stride)
    {
        var lo = new int[nd];
        var hi = new int[nd];
        switch (mode)
        {
            case null when values == null: break;
            case null when values!.Length == 1 || values.Length == nd:
                for (int i = 0; i < nd; i++) lo[i] = hi[i] = values[values.Length == 1 ? 0 : i];
                break;
            case null when values!.Length == 2 * nd:
                for (int i = 0; i < nd; i++) { lo[i] = values[2 * i]; hi[i] = values[2 * i + 1]; }
                break;
            case null:
                throw new ArgumentException($"{op}: padding must be one int, {nd} ints or {2 * nd} ints (before, after per dim), got {Shape.Str(values!)}");
            case "valid": break;
            case "same":
                if (stride.Any(s => s != 1)) throw new ArgumentException($"{op}: padding \"same\" needs stride 1, got stride {Shape.Str(stride)}");
                for (int i = 0; i < nd; i++)
                {
                    // As PyTorch: total padding d(k-1), the extra odd element after.
                    int total = dilation[i] * (kernel[i] - 1);
                    lo[i] = total / 2;
                    hi[i] = total - lo[i];
                }
                break;
            default: throw new ArgumentException($"{op}: padding must be ints, \"same\" or \"valid\", got \"{mode}\"");
        }
        if (lo.Concat(hi).Any(p => p < 0)) throw new ArgumentException($"{op}: padding must be non-negative, got {this}");
        return (lo, hi);
    }

    /// <inheritdoc/>
    public IEnumerator<int> GetEnumerator() => ((IEnumerable<int>)(values ?? [])).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    /// <inheritdoc/>
    public override string ToString() => mode != null ? $"\"{mode}\"" : values == null ? "0" : Shape.Str(values);
}
