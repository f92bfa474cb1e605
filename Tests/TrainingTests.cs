using Autograd.Layers;
using Autograd.Optimizers;
using static Autograd.Functional;

namespace Tests;

/// <summary>End-to-end: a network mixing conv, batch norm, pooling, a residual and a concat block learns a small synthetic
/// task with every optimizer.</summary>
public class TrainingTests
{
    /// <summary>8x8 single-channel images with a bright 2x2 spot in one of four quadrants (plus noise); the label is the quadrant.</summary>
    private static (Tensor X, Tensor Y) Quadrants(int n, long seed)
    {
        var g = new Generator(seed);
        var x = new float[n * 64];
        var y = new long[n];
        for (int i = 0; i < n; i++)
        {
            int q = (int)g.NextLong(4), r = (q / 2) * 4 + (int)g.NextLong(3), c = (q % 2) * 4 + (int)g.NextLong(3);
            y[i] = q;
            for (int p = 0; p < 64; p++) x[i * 64 + p] = (float)(0.3 * g.NextNormal());
            for (int dr = 0; dr < 2; dr++) for (int dc = 0; dc < 2; dc++) x[i * 64 + (r + dr) * 8 + c + dc] += 2;
        }
        return (Tensor.From(x, n, 1, 8, 8), Tensor.From(y, n));
    }

    private static Module Net() => new Sequential(
        new Conv2d(1, 4, 3, padding: 1), new BatchNorm2d(4), new ReLU(),
        new Residual(new Sequential(new Conv2d(4, 4, 3, padding: 1), new BatchNorm2d(4)), activation: new ReLU()),
        new Concat(1, new Conv2d(4, 2, 1), new Conv2d(4, 2, 3, padding: 1)),
        new MaxPool2d(2), new Flatten(), new Linear(4 * 4 * 4, 4));

    public static IEnumerable<TestCaseData> Optimizers()
    {
        yield return new TestCaseData((Func<IEnumerable<Tensor>, Optimizer>)(p => new SGD(p, lr: 0.05, momentum: 0.9))).SetArgDisplayNames("SGD momentum");
        yield return new TestCaseData((Func<IEnumerable<Tensor>, Optimizer>)(p => new SGD(p, lr: 0.05, momentum: 0.9, nesterov: true))).SetArgDisplayNames("SGD Nesterov");
        yield return new TestCaseData((Func<IEnumerable<Tensor>, Optimizer>)(p => new Adagrad(p, lr: 0.05))).SetArgDisplayNames("Adagrad");
        yield return new TestCaseData((Func<IEnumerable<Tensor>, Optimizer>)(p => new RMSprop(p, lr: 0.003))).SetArgDisplayNames("RMSprop");
        yield return new TestCaseData((Func<IEnumerable<Tensor>, Optimizer>)(p => new Adam(p, lr: 0.01))).SetArgDisplayNames("Adam");
        yield return new TestCaseData((Func<IEnumerable<Tensor>, Optimizer>)(p => new AdamW(p, lr: 0.01))).SetArgDisplayNames("AdamW");
        yield return new TestCaseData((Func<IEnumerable<Tensor>, Optimizer>)(p => new Adamax(p, lr: 0.02))).SetArgDisplayNames("Adamax");
        yield return new TestCaseData((Func<IEnumerable<Tensor>, Optimizer>)(p => new NAdam(p, lr: 0.01))).SetArgDisplayNames("NAdam");
        yield return new TestCaseData((Func<IEnumerable<Tensor>, Optimizer>)(p => new Adadelta(p, lr: 1.0))).SetArgDisplayNames("Adadelta");
    }

    [TestCaseSource(nameof(Optimizers))]
    public void A_mixed_cnn_learns_a_synthetic_task(Func<IEnumerable<Tensor>, Optimizer> makeOptimizer)
    {
        Generator.ManualSeed(1);
        var (x, y) = Quadrants(64, 2);
        var net = Net();
        var opt = makeOptimizer(net.Parameters());
        double first = 0, loss = 0;
        for (int step = 0; step < 60; step++)
        {
            opt.ZeroGrad();
            var l = CrossEntropy(net.Call(x), y);
            l.Backward();
            opt.Step();
            loss = l.Item();
            if (step == 0) first = loss;
        }
        Assert.That(loss, Is.LessThan(0.3), $"loss went from {first:F3} to {loss:F3}");
        var (tx, ty) = Quadrants(64, 3);
        net.Eval();
        double accuracy;
        using (AutoGrad.NoGrad()) accuracy = ArgMax(net.Call(tx), 1).Eq(ty).To(DType.Float32).Mean().Item();
        Assert.That(accuracy, Is.GreaterThan(0.9), "held-out accuracy");
    }
}

public class EarlyStoppingWithModelTests
{
    [Test]
    public void Early_stopping_restores_the_best_weights_through_a_state_dict_snapshot()
    {
        var model = new Linear(1, 1, bias: false);
        var stopper = new EarlyStopping(patience: 2, minDelta: 0, mode: "min");
        Dictionary<string, Tensor>? best = null;
        stopper.OnImprovement = () => best = model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.Detach().Clone());
        double[] losses = [3, 2, 1, 1.5, 1.2, 1.1];
        int epoch = 0;
        for (; epoch < losses.Length; epoch++)
        {
            using (AutoGrad.NoGrad()) model.Weight.Fill_(epoch);          // the "weights" of epoch e are e
            if (stopper.Step(losses[epoch])) break;
        }
        Assert.That(epoch, Is.EqualTo(4), "two epochs without improvement after epoch 2");
        model.LoadStateDict(best!);
        Assert.That(model.Weight.Item(), Is.EqualTo(2), "the weights of the best epoch (loss 1)");
    }
}
