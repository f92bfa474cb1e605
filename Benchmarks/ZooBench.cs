using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using TF = TorchSharp.torch.nn.functional;

namespace Autograd.Benchmarks;

/// <summary>ResNet-18 here (the zoo model) and in TorchSharp (built from its modules: no zoo package is served), same process.</summary>
internal static class ZooBench
{
    private sealed class TBlock : nn.Module<torch.Tensor, torch.Tensor>
    {
        private readonly Conv2d conv1, conv2;
        private readonly BatchNorm2d bn1, bn2;
        private readonly nn.Module<torch.Tensor, torch.Tensor>? downsample;

        public TBlock(string name, long inplanes, long planes, long stride) : base(name)
        {
            conv1 = nn.Conv2d(inplanes, planes, 3, stride: stride, padding: 1, bias: false);
            bn1 = nn.BatchNorm2d(planes);
            conv2 = nn.Conv2d(planes, planes, 3, padding: 1, bias: false);
            bn2 = nn.BatchNorm2d(planes);
            if (stride != 1 || inplanes != planes) downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride: stride, bias: false), nn.BatchNorm2d(planes));
            RegisterComponents();
        }

        public override torch.Tensor forward(torch.Tensor x)
        {
            var o = TF.relu(bn1.call(conv1.call(x)), inplace: true);
            o = bn2.call(conv2.call(o));
            return TF.relu(o + (downsample?.call(x) ?? x), inplace: true);
        }
    }

    private sealed class TResNet18 : nn.Module<torch.Tensor, torch.Tensor>
    {
        private readonly nn.Module<torch.Tensor, torch.Tensor> stem, layers, fc;

        public TResNet18(bool cifar, long classes) : base("resnet18")
        {
            stem = cifar
                ? nn.Sequential(nn.Conv2d(3, 64, 3, padding: 1, bias: false), nn.BatchNorm2d(64), nn.ReLU(inplace: true))
                : nn.Sequential(nn.Conv2d(3, 64, 7, stride: 2, padding: 3, bias: false), nn.BatchNorm2d(64), nn.ReLU(inplace: true), nn.MaxPool2d(3, 2, 1));
            var blocks = new List<nn.Module<torch.Tensor, torch.Tensor>>();
            long inp = 64;
            foreach (var (planes, stride) in new[] { (64L, 1L), (128L, 2L), (256L, 2L), (512L, 2L) })
            {
                blocks.Add(new TBlock($"b{planes}a", inp, planes, stride));
                blocks.Add(new TBlock($"b{planes}b", planes, planes, 1));
                inp = planes;
            }
            layers = nn.Sequential(blocks);
            fc = nn.Linear(512, classes);
            RegisterComponents();
        }

        public override torch.Tensor forward(torch.Tensor x) => fc.call(TF.adaptive_avg_pool2d(layers.call(stem.call(x)), [1, 1]).flatten(1));
    }

    /// <summary>The TorchSharp side, built only after all of ours has run (once libtorch starts its OpenMP threads they
    /// spin on a core and would slow our side), outside any dispose scope.</summary>
    private sealed class TorchSide
    {
        public readonly TResNet18 Cifar = new(true, 10), Imagenet = new(false, 1000);
        public readonly optim.Optimizer Opt;
        public readonly torch.Tensor X = torch.randn([32, 3, 32, 32]), Y = torch.randint(0, 10, [32]), X1 = torch.randn([1, 3, 224, 224]), X8 = torch.randn([8, 3, 224, 224]);

        public TorchSide()
        {
            Opt = torch.optim.Adam(Cifar.parameters(), 1e-3);
            Imagenet.eval();
        }
    }

    public static string Run()
    {
        Generator.ManualSeed(0);
        var cifar = Zoo.Zoo.Create("resnet18_cifar", 10);
        var opt = new Optimizers.Adam(cifar.Parameters(), lr: 1e-3);
        var x = Tensor.Randn([32, 3, 32, 32], 1);
        var y = Tensor.RandInt(0, 10, [32], 2);
        var imagenet = Zoo.Zoo.Create("resnet18");
        imagenet.Eval();
        var x1 = Tensor.Randn([1, 3, 224, 224], 3);
        var x8 = Tensor.Randn([8, 3, 224, 224], 4);
        long peakBefore = Process.GetCurrentProcess().PeakWorkingSet64, peakOurs = 0;
        var t = new Lazy<TorchSide>(() =>
        {
            peakOurs = Process.GetCurrentProcess().PeakWorkingSet64;
            torch.set_num_threads(Environment.ProcessorCount);
            return new TorchSide();
        });

        var work = new (string, Action, Action)[]
        {
            ("ResNet-18 CIFAR training step (Adam, batch 32x3x32x32)",
                () => { opt.ZeroGrad(); Functional.CrossEntropy(cifar.Call(x), y).Backward(); opt.Step(); },
                () => { var s = t.Value; using var _ = torch.NewDisposeScope(); s.Opt.zero_grad(); TF.cross_entropy(s.Cifar.call(s.X), s.Y).backward(); s.Opt.step(); }),
            ("ResNet-18 inference, batch 1 at 224x224 (eval, no grad)",
                () => { using (AutoGrad.NoGrad()) imagenet.Call(x1); },
                () => { var s = t.Value; using var _ = torch.NewDisposeScope(); using var ng = torch.no_grad(); s.Imagenet.call(s.X1); }),
            ("ResNet-18 inference, batch 8 at 224x224 (eval, no grad)",
                () => { using (AutoGrad.NoGrad()) imagenet.Call(x8); },
                () => { var s = t.Value; using var _ = torch.NewDisposeScope(); using var ng = torch.no_grad(); s.Imagenet.call(s.X8); }),
        };
        var md = Program.SideBySide("ResNet-18 against TorchSharp 0.107.0 (same architecture built from its modules), float32, 2 threads", work, 7);
        return md + string.Create(CultureInfo.InvariantCulture,
            $"\nPeak working set of the process after our workloads: {peakOurs / 1048576.0:F0} MiB (before: {peakBefore / 1048576.0:F0} MiB).\n");
    }
}
