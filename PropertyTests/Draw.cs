using FsCheck;
using FsCheck.Fluent;

namespace PropertyTests;

/// <summary>How an input's values are drawn, so that no case lands on a kink.</summary>
public enum Values
{
    /// <summary>Standard normal.</summary>
    Normal,
    /// <summary>Distinct values on a grid of step 0.25 with gaps, |x| >= 0.1 and away from ±0.5, ±1, ±3 (max/min, relu, abs, clamp, hardsigmoid kinks).</summary>
    Distinct,
    /// <summary>Like <see cref="Distinct"/> but on a grid shifted by 0.125, so it never ties with a Distinct input.</summary>
    DistinctShifted,
    /// <summary>Uniform in [0.5, 2] (log, sqrt, pow, division).</summary>
    Positive,
    /// <summary>Uniform in [0.05, 0.95] (probabilities).</summary>
    Probability,
}

/// <summary>One input of an op case: its shape, how to draw its values, whether it is differentiated,
/// or a fixed (e.g. Int64 index) tensor.</summary>
public sealed record Input(int[] Shape, Values Kind = Values.Normal, bool Grad = true, Tensor? Fixed = null);

/// <summary>An op applied to inputs drawn for one property-test case.</summary>
public sealed record OpCase(Func<Tensor[], Tensor> F, params Input[] Inputs)
{
    /// <summary>Builds the inputs in <paramref name="dtype"/> from <paramref name="seed"/>; the same seed gives the same values in every dtype.</summary>
    public Tensor[] Build(DType dtype, int seed) => Inputs.Select((inp, i) => Make(inp, dtype, seed * 31 + i)).ToArray();

    private static Tensor Make(Input inp, DType dtype, int seed)
    {
        if (inp.Fixed != null) return inp.Fixed.DType.IsFloat() ? inp.Fixed.To(dtype) : inp.Fixed;
        var g = new Generator(seed);
        int n = inp.Shape.Aggregate(1, (a, b) => a * b);
        var v = new double[n];
        switch (inp.Kind)
        {
            case Values.Normal: for (int i = 0; i < n; i++) v[i] = g.NextNormal(); break;
            case Values.Positive: for (int i = 0; i < n; i++) v[i] = 0.5 + 1.5 * g.NextDouble(); break;
            case Values.Probability: for (int i = 0; i < n; i++) v[i] = 0.05 + 0.9 * g.NextDouble(); break;
            default:
                var perm = Enumerable.Range(0, n).OrderBy(_ => g.NextULong()).ToArray();
                double offset = inp.Kind == Values.Distinct ? 0.1 : 0.225;
                for (int i = 0; i < n; i++) v[i] = (perm[i] - n / 2) * 0.25 + offset + 0.03 * g.NextDouble();
                break;
        }
        var t = Tensor.From(v, inp.Shape).To(dtype);
        return inp.Grad ? t.RequiresGrad_() : t;
    }
}

/// <summary>Random parameters of one case: a seed for values, up to four dim sizes with a rank, and two
/// integers for hyper-parameters (dims, strides, variants). Shrinks toward small shapes and zero choices.</summary>
public sealed record Draw(int Seed, int Rank, int[] Sizes, int A, int B)
{
    /// <summary>The first dims of the drawn sizes, with a rank clamped into [min, max].</summary>
    public int[] Shape(int min = 0, int max = 4) => Sizes[..Math.Clamp(Rank, min, max)];

    /// <summary>A choice in [0, n) derived from A.</summary>
    public int PickA(int n) => ((A % n) + n) % n;

    /// <summary>A choice in [0, n) derived from B.</summary>
    public int PickB(int n) => ((B % n) + n) % n;

    /// <summary>Two shapes that broadcast to <paramref name="out"/>: some dims set to 1, some leading dims dropped.</summary>
    public (int[] A, int[] B) BroadcastPair(int[] @out)
    {
        var a = @out.Select((d, i) => (A >> i & 1) == 1 ? 1 : d).ToArray();
        var b = @out.Select((d, i) => (B >> i & 1) == 1 && (A >> i & 1) == 0 ? 1 : d).ToArray();
        int drop = (B >> 4) % (b.Length + 1);
        return (a, b[drop..]);
    }

    /// <inheritdoc/>
    public override string ToString() => $"Draw(seed {Seed}, rank {Rank}, sizes [{string.Join(", ", Sizes)}], a {A}, b {B})";

    private static readonly Gen<Draw> Gen =
        from seed in FsCheck.Fluent.Gen.Choose(0, 1 << 20)
        from rank in FsCheck.Fluent.Gen.Choose(0, 4)
        from sizes in FsCheck.Fluent.Gen.ArrayOf(FsCheck.Fluent.Gen.Choose(1, 4), 4)
        from a in FsCheck.Fluent.Gen.Choose(0, 255)
        from b in FsCheck.Fluent.Gen.Choose(0, 255)
        select new Draw(seed, rank, sizes, a, b);

    private static IEnumerable<Draw> Shrink(Draw d)
    {
        if (d.Rank > 0) yield return d with { Rank = d.Rank - 1 };
        for (int i = 0; i < d.Sizes.Length; i++)
            if (d.Sizes[i] > 1) { var s = (int[])d.Sizes.Clone(); s[i]--; yield return d with { Sizes = s }; }
        if (d.A != 0) yield return d with { A = 0 };
        if (d.B != 0) yield return d with { B = 0 };
    }

    /// <summary>The FsCheck arbitrary with its shrinker.</summary>
    public static Arbitrary<Draw> Arbitrary => Arb.From(Gen, Shrink);
}
