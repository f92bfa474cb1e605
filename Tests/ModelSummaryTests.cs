using Autograd.Layers;
using Autograd.Zoo;

namespace Tests;

public class ModelSummaryTests
{
    [Test]
    public void LeNet5_totals_by_hand()
    {
        var lenet = new Sequential(
            new Conv2d(1, 6, 5, padding: 2), new ReLU(), new MaxPool2d(2),
            new Conv2d(6, 16, 5), new ReLU(), new MaxPool2d(2),
            new Flatten(), new Linear(400, 120), new ReLU(), new Linear(120, 84), new ReLU(), new Linear(84, 10));
        var s = ModelSummary.Of(lenet, [1, 28, 28]);
        // conv1: 28*28*6 outputs x 25 MACs = 117,600 MACs -> 235,200 + 4,704 bias adds = 239,904
        // conv2: 10*10*16 outputs x 150 MACs = 240,000 MACs -> 480,000 + 1,600 = 481,600
        // fc: 2*400*120 + 120 = 96,120; 2*120*84 + 84 = 20,244; 2*84*10 + 10 = 1,690
        Assert.That(s.TotalFlops, Is.EqualTo(239_904 + 481_600 + 96_120 + 20_244 + 1_690));
        Assert.That(s.TotalParameters, Is.EqualTo(61_706));
        // RF: conv 5 -> 5 (jump 1); pool 2/2 -> 6 (jump 2); conv 5 -> 6 + 4*2 = 14; pool -> 14 + 1*2 = 16 (jump 4)
        Assert.That(s.Layers.Select(l => l.ReceptiveField), Is.EqualTo(new[] { 5, 5, 6, 14, 14, 16, 16, 16, 16, 16, 16, 16 }));
        Assert.That(s.OutputReceptiveField, Is.EqualTo(16));
        Assert.That(s.Layers[5].Jump, Is.EqualTo(4));
        Assert.That(s.Layers[3].OutputShape, Is.EqualTo(new[] { 16, 10, 10 }));
        Assert.That(s.Layers[0].Path, Is.EqualTo("0"));
        Assert.That(s.ToString(), Does.Contain("receptive field at the output: 16"));
    }

    [Test]
    public void Vgg16_totals_by_hand()
    {
        int[] cfg = [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0];
        var layers = new List<Module>();
        int c = 3;
        foreach (var v in cfg)
        {
            if (v == 0) layers.Add(new MaxPool2d(2));
            else { layers.Add(new Conv2d(c, v, 3, padding: 1)); layers.Add(new ReLU()); c = v; }
        }
        var vgg = new Sequential(new Sequential([.. layers]), new AdaptiveAvgPool2d(7), new Flatten(),
            new Linear(25088, 4096), new ReLU(), new Linear(4096, 4096), new ReLU(), new Linear(4096, 1000));
        var s = ModelSummary.Of(vgg, [3, 32, 32]);
        // By hand: every 3x3 conv at resolution h costs 2*h*h*cout*9*cin + h*h*cout; pools halve h.
        long flops = 0;
        int h = 32, cin = 3;
        foreach (var v in cfg)
        {
            if (v == 0) { h /= 2; continue; }
            flops += 2L * h * h * v * 9 * cin + (long)h * h * v;
            cin = v;
        }
        flops += 2L * 25088 * 4096 + 4096 + 2L * 4096 * 4096 + 4096 + 2L * 4096 * 1000 + 1000;
        Assert.That(s.TotalFlops, Is.EqualTo(flops));
        Assert.That(s.TotalParameters, Is.EqualTo(138_357_544));
        // 2 convs: 1 + 2 + 2 = 5; pool 6 (jump 2); 2 convs 14; pool 16 (4); 3 convs 40; pool 44 (8); 3 convs 92; pool 100 (16);
        // 3 convs 196; pool 212 (32).
        Assert.That(s.OutputReceptiveField, Is.EqualTo(212));
    }

    [Test]
    public void Branches_take_the_largest_receptive_field_of_their_paths()
    {
        var concat = new Concat(1, new Conv2d(1, 1, 3, padding: 1), new Sequential(new Conv2d(1, 1, 3, padding: 1), new Conv2d(1, 1, 3, padding: 1)));
        Assert.That(ModelSummary.Of(new Sequential(concat, new Conv2d(2, 1, 1)), [1, 8, 8]).OutputReceptiveField, Is.EqualTo(5));
        var residual = new Residual(new Sequential(new Conv2d(1, 1, 3, padding: 1), new Conv2d(1, 1, 5, padding: 2)));
        // identity path: 1; body: 3 then 3 + 4 = 7; the sum sees both; a following 3x3 conv adds 2.
        Assert.That(ModelSummary.Of(new Sequential(residual, new Conv2d(1, 1, 3, padding: 1)), [1, 8, 8]).OutputReceptiveField, Is.EqualTo(9));
        var strided = new Residual(new Conv2d(1, 1, 3, stride: 2, padding: 1), shortcut: new Conv2d(1, 1, 1, stride: 2));
        var s = ModelSummary.Of(new Sequential(strided, new Conv2d(1, 1, 3, padding: 1)), [1, 8, 8]);
        Assert.That(s.OutputReceptiveField, Is.EqualTo(3 + 2 * 2), "after a stride-2 block the next 3x3 conv adds (3 - 1) * 2");
        Assert.That(s.TotalBuffers, Is.EqualTo(0));
    }
}
