namespace Autograd.Testing;

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
/// <param name="Shape">Shape of the input.</param>
/// <param name="Kind">How its values are drawn.</param>
/// <param name="Grad">Whether it requires grad (is checked).</param>
/// <param name="Fixed">A given tensor instead of drawn values (converted to the case's dtype if it is a float tensor).</param>
public sealed record Input(int[] Shape, Values Kind = Values.Normal, bool Grad = true, Tensor? Fixed = null);

/// <summary>An op applied to inputs drawn for one property-test case.</summary>
/// <param name="F">The function under test.</param>
/// <param name="Inputs">Its inputs.</param>
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

/// <summary>Random parameters of one case: a seed for values, up to four dim sizes (1 to 4) with a rank (0 to 4),
/// and two integers (0 to 255) for hyper-parameters (dims, strides, variants).</summary>
/// <param name="Seed">Seed of the input values.</param>
/// <param name="Rank">Rank of the main shape (ops clamp it to what they accept).</param>
/// <param name="Sizes">Four dim sizes; the main shape is their first <paramref name="Rank"/>.</param>
/// <param name="A">First hyper-parameter choice.</param>
/// <param name="B">Second hyper-parameter choice.</param>
public sealed record Draw(int Seed, int Rank, int[] Sizes, int A, int B)
{
    /// <summary>A uniformly random draw (property tests use FsCheck's generator, which also shrinks).</summary>
    public static Draw Sample(Generator g) =>
        new((int)g.NextLong(1 << 20), (int)g.NextLong(5), [.. Enumerable.Range(0, 4).Select(_ => 1 + (int)g.NextLong(4))], (int)g.NextLong(256), (int)g.NextLong(256));

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
}
