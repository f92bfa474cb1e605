using System.Text.Json;

namespace Tests;

/// <summary>The autograd command end to end, in process, on the small digits dataset.</summary>
[NonParallelizable]
public class CliTests
{
    private static (int Code, string Out) Run(params string[] args)
    {
        var saved = Console.Out;
        var sw = new StringWriter();
        Console.SetOut(sw);
        try { return (Autograd.Cli.Program.Main(args), sw.ToString()); }
        finally { Console.SetOut(saved); }
    }

    [Test]
    public void Wrong_arguments_exit_with_2_and_help_with_0()
    {
        Assert.That(Run("train", "--bogus").Code, Is.EqualTo(2));
        Assert.That(Run("train", "--epochs", "zero").Code, Is.EqualTo(2));
        Assert.That(Run("nonsense").Code, Is.EqualTo(2));
        var (code, output) = Run("train", "--help");
        Assert.That(code, Is.EqualTo(0));
        Assert.That(output, Does.Contain("--optimizer"));
    }

    [Test]
    public void Train_writes_metrics_plot_and_checkpoints_then_eval_and_predict_read_them()
    {
        var dir = Directory.CreateTempSubdirectory("autograd-cli-").FullName;
        try
        {
            var (code, output) = Run("train", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "--batch-size", "32", "--no-progress",
                "--checkpoint", Path.Combine(dir, "ckpt"), "--metrics", Path.Combine(dir, "m.json"), "--plot", Path.Combine(dir, "p.png"));
            Assert.That(code, Is.EqualTo(0), output);
            Assert.That(output, Does.Match(@"(?m)^test accuracy: 0\.\d{4}$"));
            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "m.json")));
            Assert.That(json.RootElement.GetProperty("history").GetArrayLength(), Is.EqualTo(2));
            Assert.That(new FileInfo(Path.Combine(dir, "p.png")).Length, Is.GreaterThan(1000));
            var last = Path.Combine(dir, "ckpt", "last.safetensors");
            var (evalCode, evalOut) = Run("eval", "--checkpoint", last);
            Assert.That(evalCode, Is.EqualTo(0));
            Assert.That(evalOut, Does.Contain("test accuracy: "));
            var (resumeCode, resumeOut) = Run("train", "--dataset", "digits", "--model", "mlp", "--epochs", "3", "--no-progress",
                "--checkpoint", Path.Combine(dir, "ckpt"), "--resume", last);
            Assert.That(resumeCode, Is.EqualTo(0));
            Assert.That(resumeOut, Does.Contain("resumed from").And.Contain("epoch   3/3").And.Not.Contain("epoch   1/3"));
            PredictAgreesWithTheCheckpointedModel(last, dir);
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>A digits sample written as an 8x8 grayscale PNG: predict prints ten probabilities, most likely first, equal to
    /// the softmax of the same network loaded from the checkpoint by the library.</summary>
    private static void PredictAgreesWithTheCheckpointedModel(string checkpoint, string dir)
    {
        var digits = Autograd.Data.Datasets.Digits(Path.Combine(DataTests.DataDir("sklearn-digits"), "digits.csv.gz"));
        var pixels = digits[0].Input.ToFloatArray().Select(v => (byte)Math.Round(v * 255)).ToArray();
        var png = Path.Combine(dir, "digit.png");
        File.WriteAllBytes(png, DataTests.MakePng(8, 8, 8, 0, DataTests.FilterRows(pixels.Chunk(8).ToArray(), 1, y => y % 5)));
        var (code, output) = Run("predict", "--checkpoint", checkpoint, png);
        Assert.That(code, Is.EqualTo(0), output);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToArray();
        Assert.That(lines, Has.Length.EqualTo(10), output);
        var printed = lines.ToDictionary(l => int.Parse(l[0]), l => double.Parse(l[1], System.Globalization.CultureInfo.InvariantCulture));
        Assert.That(printed.Values, Is.Ordered.Descending);

        var mlp = new Autograd.Layers.Sequential(new Autograd.Layers.Flatten(), new Autograd.Layers.Linear(64, 128), new Autograd.Layers.ReLU(), new Autograd.Layers.Linear(128, 10));
        Autograd.Checkpoints.Checkpoint.Load(checkpoint, mlp);
        mlp.Eval();
        var x = Tensor.From(pixels.Select(b => b / 255f).ToArray(), 1, 1, 8, 8);
        var expected = Functional.Softmax(mlp.Call(x), 1).ToDoubleArray();
        for (int c = 0; c < 10; c++) Assert.That(printed[c], Is.EqualTo(expected[c]).Within(6e-5), $"class {c}\n{output}");
    }

    [Test]
    public void Summary_prints_the_totals()
    {
        var (code, output) = Run("summary", "lenet5");
        Assert.That(code, Is.EqualTo(0));
        Assert.That(output, Does.Contain("FLOPs per sample: 839,558").And.Contain("receptive field at the output: 16"));
    }
}
