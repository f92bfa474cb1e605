using Autograd.Layers;
using Autograd.Optimizers;
using Autograd.Training;

namespace Tests;

public class TrainerTests
{
    private static List<(Tensor X, Tensor Y)> Blobs(int batches, long seed)
    {
        // Two Gaussian blobs at (-1, -1) and (1, 1).
        var g = new Generator(seed);
        var result = new List<(Tensor, Tensor)>();
        for (int b = 0; b < batches; b++)
        {
            var x = new float[16 * 2];
            var y = new long[16];
            for (int i = 0; i < 16; i++)
            {
                y[i] = g.NextLong(2);
                x[2 * i] = (float)((y[i] * 2 - 1) + 0.5 * g.NextNormal());
                x[2 * i + 1] = (float)((y[i] * 2 - 1) + 0.5 * g.NextNormal());
            }
            result.Add((Tensor.From(x, 16, 2), Tensor.From(y, 16)));
        }
        return result;
    }

    [Test]
    public void Top_k_counts_a_label_among_the_k_largest_scores_and_ties_against_it()
    {
        var logits = Tensor.From(new float[] { 0.1f, 0.7f, 0.2f, 0.5f, 0.5f, 0.0f }, 2, 3);
        var labels = Tensor.From(new long[] { 2, 0 }, 2);
        Assert.That(Trainer.Correct(logits, labels, 1), Is.EqualTo(0));   // row 0 picks 1; row 1 ties 0 with 1
        Assert.That(Trainer.Correct(logits, labels, 2), Is.EqualTo(2));
    }

    [Test]
    public void Fit_trains_evaluates_checkpoints_and_resumes()
    {
        var dir = Directory.CreateTempSubdirectory("autograd-trainer-").FullName;
        try
        {
            Generator.ManualSeed(3);
            var model = new Sequential(new Linear(2, 8), new ReLU(), new Linear(8, 2));
            var opt = new SGD(model.Parameters(), lr: 0.1, momentum: 0.9);
            var trainer = new Trainer(model, opt, new StepLR(opt, stepSize: 1, gamma: 0.5)) { CheckpointDir = dir, TopK = 1 };
            int steps = 0;
            trainer.StepCompleted += _ => steps++;
            var train = Blobs(10, 1);
            var history = trainer.Fit(_ => train, () => Blobs(4, 2), epochs: 3);
            Assert.That(history.Count, Is.EqualTo(3));
            Assert.That(steps, Is.EqualTo(30));
            Assert.That(history[^1].TestAccuracy, Is.GreaterThan(0.9));
            Assert.That(history.Select(h => h.Lr), Is.EqualTo(new[] { 0.1, 0.05, 0.025 }));
            Assert.That(File.Exists(Path.Combine(dir, "epoch-3.safetensors")), Is.True);

            var model2 = new Sequential(new Linear(2, 8), new ReLU(), new Linear(8, 2));
            var opt2 = new SGD(model2.Parameters(), lr: 0.1, momentum: 0.9);
            var trainer2 = new Trainer(model2, opt2, new StepLR(opt2, stepSize: 1, gamma: 0.5));
            Assert.That(trainer2.Resume(Path.Combine(dir, "last.safetensors")), Is.EqualTo(3));
            Assert.That(opt2.ParamGroups[0].Lr, Is.EqualTo(0.0125));
            Assert.That(trainer2.Evaluate(Blobs(4, 2), 1).Accuracy, Is.EqualTo(history[^1].TestAccuracy));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void A_stop_request_ends_the_epoch_and_saves_a_checkpoint_to_redo_it()
    {
        var dir = Directory.CreateTempSubdirectory("autograd-trainer-").FullName;
        try
        {
            var model = new Linear(2, 2);
            var opt = new SGD(model.Parameters(), lr: 0.1);
            int steps = 0;
            var trainer = new Trainer(model, opt) { CheckpointDir = dir, StopRequested = () => ++steps == 3 };
            var history = trainer.Fit(_ => Blobs(10, 1), null, epochs: 5);
            Assert.That(trainer.Interrupted, Is.True);
            Assert.That(history.Count, Is.EqualTo(1));
            Assert.That(new Trainer(new Linear(2, 2), new SGD(new Linear(2, 2).Parameters())).Resume(Path.Combine(dir, "last.safetensors")), Is.EqualTo(0));
        }
        finally { Directory.Delete(dir, true); }
    }
}
