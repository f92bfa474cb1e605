using TorchSharp;
using static Autograd.Functional;
using TF = TorchSharp.torch.nn.functional;

namespace Autograd.Benchmarks;

/// <summary>Convolution, pooling and batch norm, here and in TorchSharp (libtorch with oneDNN) in the same process, float32,
/// 2 threads each: medians and the ratio ours / TorchSharp (below 1 means faster than libtorch).</summary>
internal static class CnnOps
{
    private sealed record ConvCase(int N, int Cin, int H, int Cout, int K, int Stride, int Pad, int Groups = 1)
    {
        public override string ToString() => Groups > 1 ? $"depthwise ({N},{Cin},{H}x{H}, {K}x{K}, groups {Groups})" : $"conv ({N},{Cin},{H}x{H}->{Cout}, k{K}, s{Stride}, p{Pad})";
    }

    private static readonly ConvCase[] Convs =
    [
        new(32, 3, 32, 64, 3, 1, 1), new(32, 64, 32, 64, 3, 1, 1), new(16, 64, 56, 64, 3, 1, 1),
        new(16, 128, 28, 256, 3, 2, 1), new(32, 256, 14, 256, 1, 1, 0), new(32, 128, 28, 128, 3, 1, 1, Groups: 128),
    ];

    public static string Run()
    {
        // Each workload's TorchSharp side is set up only after all of ours ran: once libtorch has started its OpenMP threads
        // they keep spinning on a core (measured: two thirds of the samples of a LeNet-5 loop in its libgomp), which would
        // time ours against them.
        var work = new List<(string Workload, Action Ours, Func<Action> Torch)>();
        foreach (var c in Convs)
        {
            var gen = new Generator(1);
            var x = Tensor.Randn([c.N, c.Cin, c.H, c.H], gen).RequiresGrad_();
            var w = (Tensor.Randn([c.Cout, c.Cin / c.Groups, c.K, c.K], gen) * 0.1).RequiresGrad_();
            long[] s = [c.Stride, c.Stride], p = [c.Pad, c.Pad];
            // Created outside the timed dispose scopes, so they live through all runs.
            var t = new Lazy<(torch.Tensor X, torch.Tensor W)>(() =>
                (torch.randn([c.N, c.Cin, c.H, c.H]).requires_grad_(), (torch.randn([c.Cout, c.Cin / c.Groups, c.K, c.K]) * 0.1).requires_grad_()));
            work.Add(($"{c} fwd",
                () => _ = Conv2d(x.Detach(), w.Detach(), stride: c.Stride, padding: c.Pad, groups: c.Groups),
                () =>
                {
                    var (tx, tw) = t.Value;
                    return () => { using var _ = torch.NewDisposeScope(); using var ng = torch.no_grad(); TF.conv2d(tx, tw, strides: s, padding: p, groups: c.Groups); };
                }));
            work.Add(($"{c} fwd+bwd",
                () => Conv2d(x, w, stride: c.Stride, padding: c.Pad, groups: c.Groups).Sum().Backward(),
                () =>
                {
                    var (tx, tw) = t.Value;
                    return () => { using var _ = torch.NewDisposeScope(); TF.conv2d(tx, tw, strides: s, padding: p, groups: c.Groups).sum().backward(); };
                }));
        }
        {
            var x = Tensor.Randn([32, 64, 32, 32], 2).RequiresGrad_();
            var tx = new Lazy<torch.Tensor>(() => torch.randn([32, 64, 32, 32]).requires_grad_());
            work.Add(("MaxPool2d 2x2 (32,64,32x32) fwd+bwd",
                () => MaxPool2d(x, 2).Sum().Backward(),
                () =>
                {
                    var t = tx.Value;
                    return () => { using var _ = torch.NewDisposeScope(); TF.max_pool2d(t, [2, 2]).sum().backward(); };
                }));
            var (gamma, beta) = (Tensor.Ones(64).RequiresGrad_(), Tensor.Zeros(64).RequiresGrad_());
            var (rm, rv) = (Tensor.Zeros(64), Tensor.Ones(64));
            work.Add(("BatchNorm2d training (32,64,32x32) fwd+bwd",
                () => BatchNorm(x, rm, rv, gamma, beta, training: true).Sum().Backward(),
                () =>
                {
                    var (tg, tb) = (torch.ones(64).requires_grad_(), torch.zeros(64).requires_grad_());
                    var (t, trm, trv) = (tx.Value, torch.zeros(64), torch.ones(64));
                    return () => { using var _ = torch.NewDisposeScope(); TF.batch_norm(t, trm, trv, tg, tb, training: true).sum().backward(); };
                }));
        }
        {
            // LeNet-5 training step, batch 64, SGD with momentum (the per-op-overhead workload).
            Generator.ManualSeed(0);
            var lenet = new Autograd.Zoo.LeNet5();
            var opt = new Autograd.Optimizers.SGD(lenet.Parameters(), lr: 0.01, momentum: 0.9);
            var x = Tensor.Randn([64, 1, 28, 28], 5);
            var y = Tensor.RandInt(0, 10, [64], 6);
            work.Add(("LeNet-5 training step (batch 64, SGD momentum)",
                () => { opt.ZeroGrad(); CrossEntropy(lenet.Call(x), y).Backward(); opt.Step(); },
                () =>
                {
                    var tnet = torch.nn.Sequential(
                        torch.nn.Conv2d(1, 6, 5, padding: 2), torch.nn.ReLU(inplace: true), torch.nn.MaxPool2d(2),
                        torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(inplace: true), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                        torch.nn.Linear(400, 120), torch.nn.ReLU(inplace: true), torch.nn.Linear(120, 84), torch.nn.ReLU(inplace: true), torch.nn.Linear(84, 10));
                    var topt = torch.optim.SGD(tnet.parameters(), 0.01, momentum: 0.9);
                    var tx = torch.randn([64, 1, 28, 28]);
                    var ty = torch.randint(0, 10, [64]);
                    return () => { using var _ = torch.NewDisposeScope(); topt.zero_grad(); TF.cross_entropy(tnet.call(tx), ty).backward(); topt.step(); };
                }));
        }
        // SideBySide times all of ours, then all of TorchSharp; a TorchSharp side is set up on its first (warm-up) call.
        var sides = work.Select(w =>
        {
            var torchSide = new Lazy<Action>(() => { torch.set_num_threads(Environment.ProcessorCount); return w.Torch(); });
            return (w.Workload, w.Ours, (Action)(() => torchSide.Value()));
        }).ToList();
        return Program.SideBySide("Convolution, pooling and batch norm against TorchSharp 0.107.0 (libtorch 2.10.0 CPU), float32, 2 threads", sides, 15,
            description: "All of ours first, then TorchSharp (set up only then). In the same process both share the GNU OpenMP runtime, " +
            "and with it the `GOMP_SPINCOUNT=100000` our MKL backend sets unless you set it (a third of the default: idle threads " +
            "spin a shorter time before they sleep). The \"alone\" columns time TorchSharp in a child " +
            "process of the same run with none of our native libraries loaded, at its default spinning.");
    }
}
