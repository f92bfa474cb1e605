namespace Autograd.Onnx;

/// <summary>Outcome of one ONNX test case.</summary>
public enum CaseStatus
{
    /// <summary>Every output matches within tolerance.</summary>
    Pass,
    /// <summary>An output differs, has the wrong shape or type, or the model failed to load or run.</summary>
    Fail,
    /// <summary>The model uses an op, attribute or value kind the importer does not support.</summary>
    Unsupported,
}

/// <summary>The result of running one case folder.</summary>
/// <param name="Name">The case folder's name.</param>
/// <param name="Status">Pass, fail or unsupported.</param>
/// <param name="MaxAbs">Largest absolute error over all outputs (NaN when not compared).</param>
/// <param name="MaxRel">Largest relative error |a - e| / |e| over elements with e != 0 (NaN when not compared).</param>
/// <param name="Message">Why it failed or is unsupported; empty on success.</param>
public sealed record CaseResult(string Name, CaseStatus Status, double MaxAbs, double MaxRel, string Message);

/// <summary>Runs ONNX conformance case folders: <c>model.onnx</c> plus <c>test_data_set_*/input_N.pb</c> and <c>output_N.pb</c>.</summary>
public static class OnnxConformance
{
    /// <summary>Whether <paramref name="dir"/> is a case folder.</summary>
    public static bool IsCase(string dir) => File.Exists(Path.Combine(dir, "model.onnx"));

    /// <summary>Runs one case: loads the model (eval mode), feeds every data set and compares every output with
    /// <c>|actual - expected| &lt;= atol + rtol * |expected|</c> (NaN matches NaN); shapes and integer-vs-float types must match.</summary>
    /// <param name="dir">The case folder.</param>
    /// <param name="rtol">Relative tolerance.</param>
    /// <param name="atol">Absolute tolerance.</param>
    public static CaseResult Run(string dir, double rtol = 1e-3, double atol = 1e-5)
    {
        string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(dir));
        double maxAbs = 0, maxRel = 0;
        try
        {
            var model = OnnxModel.Load(Path.Combine(dir, "model.onnx"));
            var sets = Directory.GetDirectories(dir, "test_data_set_*").Order(StringComparer.Ordinal).ToArray();
            if (sets.Length == 0) return new(name, CaseStatus.Fail, double.NaN, double.NaN, "no test_data_set_* folder");
            foreach (var set in sets)
            {
                var inputs = Numbered(set, "input").Select(f => TensorData.ReadFile(f)).Select(t => new OnnxValue(t.Tensor, t.Type)).ToArray();
                var expected = Numbered(set, "output").Select(f => TensorData.ReadFile(f)).ToArray();
                var actual = model.RunValues(inputs);
                if (actual.Length != expected.Length)
                    return new(name, CaseStatus.Fail, double.NaN, double.NaN, $"{actual.Length} outputs, expected {expected.Length}");
                for (int i = 0; i < actual.Length; i++)
                {
                    var (a, e) = (actual[i], expected[i]);
                    string where = $"{Path.GetFileName(set)} output {i} ('{model.Outputs[i].Name}')";
                    if (!a.Tensor.Shape.SequenceEqual(e.Tensor.Shape))
                        return new(name, CaseStatus.Fail, double.NaN, double.NaN, $"{where}: shape [{string.Join(", ", a.Tensor.Shape)}], expected [{string.Join(", ", e.Tensor.Shape)}]");
                    if (TensorData.IsFloat(a.Type) != TensorData.IsFloat(e.Type))
                        return new(name, CaseStatus.Fail, double.NaN, double.NaN, $"{where}: element type {a.Type}, expected {e.Type}");
                    var (av, ev) = (a.Tensor.ToDoubleArray(), e.Tensor.ToDoubleArray());
                    bool ok = true;
                    for (int k = 0; k < av.Length; k++)
                    {
                        if (double.IsNaN(av[k]) && double.IsNaN(ev[k]) || av[k] == ev[k]) continue;
                        double diff = Math.Abs(av[k] - ev[k]);
                        if (double.IsNaN(diff)) diff = double.PositiveInfinity;
                        maxAbs = Math.Max(maxAbs, diff);
                        if (ev[k] != 0) maxRel = Math.Max(maxRel, diff / Math.Abs(ev[k]));
                        if (!(diff <= atol + rtol * Math.Abs(ev[k]))) ok = false;
                    }
                    if (!ok) return new(name, CaseStatus.Fail, maxAbs, maxRel, $"{where}: values differ");
                }
            }
            return new(name, CaseStatus.Pass, maxAbs, maxRel, "");
        }
        catch (OnnxUnsupportedException e) { return new(name, CaseStatus.Unsupported, double.NaN, double.NaN, e.Message); }
        catch (Exception e) when (e is OnnxFormatException or ArgumentException or InvalidOperationException or IOException or NotSupportedException)
        {
            return new(name, CaseStatus.Fail, double.NaN, double.NaN, $"{e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>The case folders under <paramref name="path"/>: itself if it is one, else its sub-folders that are (recursively), sorted.</summary>
    /// <param name="path">A case folder or a folder of them.</param>
    public static IEnumerable<string> Cases(string path)
    {
        if (IsCase(path)) return [path];
        if (!Directory.Exists(path)) throw new DirectoryNotFoundException($"onnx verify: no such folder: {path}");
        return Directory.GetDirectories(path).Order(StringComparer.Ordinal).SelectMany(Cases);
    }

    private static IEnumerable<string> Numbered(string dir, string prefix)
    {
        for (int i = 0; ; i++)
        {
            var f = Path.Combine(dir, $"{prefix}_{i}.pb");
            if (!File.Exists(f)) yield break;
            yield return f;
        }
    }
}
