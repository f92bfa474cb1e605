using Autograd.Layers;

namespace Tests;

/// <summary>Comparison of a model's state-dict layout with torchvision's reference files (Reference/zoo/*.tsv).</summary>
internal static class ZooLayout
{
    public static string Tsv(string model) => Path.Combine(TestContext.CurrentContext.TestDirectory, "Reference", "zoo", model + ".tsv");

    /// <summary>The "key shape dtype" lines of a reference file (header dropped); a scalar's shape is empty.</summary>
    public static List<string> ReferenceLayout(string model) => [.. File.ReadAllLines(Tsv(model)).Skip(1).Where(l => l.Length > 0)];

    public static List<string> Layout(Module m) =>
        [.. m.StateDict().Select(kv => $"{kv.Key}\t{string.Join(",", kv.Value.Shape)}\t{kv.Value.DType.ToString().ToLowerInvariant()}")];

    public static void AssertLayout(Module m, string model)
    {
        var expected = ReferenceLayout(model);
        var actual = Layout(m);
        int first = Enumerable.Range(0, Math.Min(expected.Count, actual.Count)).FirstOrDefault(i => expected[i] != actual[i], -1);
        Assert.That(actual, Is.EqualTo(expected),
            $"{model}: {actual.Count} entries, torchvision has {expected.Count}" +
            (first >= 0 ? $"; first difference at {first}: ours \"{actual[first]}\", torchvision \"{expected[first]}\"" : ""));
    }
}
