using FsCheck;
using FsCheck.Fluent;
using Autograd.Testing;

namespace PropertyTests;

/// <summary>FsCheck generation of <see cref="Draw"/>, shrinking toward small shapes and zero choices.</summary>
public static class DrawArbitrary
{
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

    /// <summary>Checks <paramref name="property"/> on <paramref name="cases"/> draws from a fixed replay seed (so CI is
    /// deterministic); a failure throws with the shrunk draw to replay.</summary>
    public static void ForAll(int cases, (ulong Seed, ulong Gamma) replay, Action<Draw> property) =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(cases).WithReplay(replay.Seed, replay.Gamma).WithQuietOnSuccess(true),
            Prop.ForAll(Arbitrary, property));
}
