using Autograd.Checkpoints;
using Autograd.Layers;
using Autograd.Optimizers;
using static Autograd.Functional;

namespace Tests;

public class CheckpointTests
{
    private string dir = "";

    [SetUp]
    public void MakeDir() => dir = Directory.CreateTempSubdirectory("autograd-ckpt-").FullName;

    [TearDown]
    public void RemoveDir() => Directory.Delete(dir, recursive: true);

    private sealed record Run(Module Model, Optimizer Optimizer, LRScheduler Scheduler, Generator Dropout);

    private static Run NewRun(long initSeed)
    {
        Generator.ManualSeed(initSeed);
        var dropout = new Generator(initSeed + 100);
        var model = new Sequential(new Linear(4, 8), new BatchNorm1d(8), new ReLU(), new Dropout(0.2, dropout), new Linear(8, 3));
        var opt = new Adam(model.Parameters(), lr: 0.05);
        return new Run(model, opt, new StepLR(opt, stepSize: 2, gamma: 0.5), dropout);
    }

    private static void Train(Run r, int steps, int start)
    {
        for (int s = start; s < start + steps; s++)
        {
            var x = Tensor.Randn([16, 4], 1000 + s);
            var y = Tensor.RandInt(0, 3, [16], 2000 + s);
            r.Optimizer.ZeroGrad();
            CrossEntropy(r.Model.Call(x), y).Backward();
            r.Optimizer.Step();
            r.Scheduler.Step();
        }
    }

    [Test]
    public void A_resumed_run_continues_exactly()
    {
        // k steps, save, restore into objects built from a different seed, k more steps == 2k steps straight.
        const int k = 5;
        var straight = NewRun(1);
        Train(straight, 2 * k, 0);

        var first = NewRun(1);
        Train(first, k, 0);
        var path = Path.Combine(dir, "ckpt.safetensors");
        Checkpoint.Save(path, first.Model, first.Optimizer, first.Scheduler, epoch: k, first.Dropout);

        var resumed = NewRun(42);
        int epoch = Checkpoint.Load(path, resumed.Model, resumed.Optimizer, resumed.Scheduler, resumed.Dropout);
        Assert.That(epoch, Is.EqualTo(k));
        Train(resumed, k, k);

        foreach (var (name, expected) in straight.Model.StateDict())
            Assert.That(resumed.Model.StateDict()[name].ToDoubleArray(), Is.EqualTo(expected.ToDoubleArray()), name);
        Assert.That(resumed.Scheduler.GetLastLr(), Is.EqualTo(straight.Scheduler.GetLastLr()));
    }

    [Test]
    public void A_model_state_dict_file_round_trips_under_pytorch_names()
    {
        var a = NewRun(1).Model;
        var path = Path.Combine(dir, "model.safetensors");
        Checkpoint.SaveModel(path, a);
        Assert.That(SafeTensors.Load(path).Keys, Does.Contain("1.running_mean").And.Contain("4.weight"));
        var b = NewRun(2).Model;
        Checkpoint.LoadModel(path, b);
        var x = Tensor.Randn([3, 4], 5);
        a.Eval(); b.Eval();
        Assert.That(b.Call(x).ToDoubleArray(), Is.EqualTo(a.Call(x).ToDoubleArray()));
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path, b));
        Assert.That(e!.Message, Does.Contain("not a training checkpoint"));
    }

    [Test]
    public void Loading_into_a_different_architecture_names_the_key()
    {
        var path = Path.Combine(dir, "model.safetensors");
        Checkpoint.SaveModel(path, new Linear(4, 3));
        var e = Assert.Throws<ArgumentException>(() => Checkpoint.LoadModel(path, new Linear(4, 2)));
        Assert.That(e!.Message, Does.Contain("weight").And.Contain("[3, 4]").And.Contain("[2, 4]"));
    }
}
