using TorchSharp;
using static Autograd.Functional;

namespace Autograd.Benchmarks;

/// <summary>The cost of the research hooks: a 1,000-op chain of small elementwise ops (forward and backward), plain, under
/// anomaly detection, with a gradient hook on every intermediate, and through a custom function, side by side with the same
/// chain in TorchSharp. The plain row is the per-op cost every model pays; the mode rows show what the features cost when on.</summary>
internal static class HookBench
{
    private const int Ops = 1000;

    private static Tensor Chain(Tensor x, Func<Tensor, Tensor>? wrap = null)
    {
        var y = x;
        for (int i = 0; i < Ops; i++)
        {
            y = (i % 2 == 0 ? Tanh(y) : y * 0.9);
            if (wrap != null) y = wrap(y);
        }
        return y.Sum();
    }

    private static torch.Tensor TorchChain(torch.Tensor x)
    {
        var y = x;
        for (int i = 0; i < Ops; i++) y = i % 2 == 0 ? y.tanh() : y * 0.9;
        return y.sum();
    }

    /// <summary>Identity forward and backward, as a user would write it.</summary>
    private sealed class Pass : CustomFunction
    {
        protected override Tensor[] Forward(FunctionContext ctx, Tensor[] inputs) => [inputs[0]];
        protected override Tensor?[] Backward(FunctionContext ctx, Tensor[] gradOutputs) => [gradOutputs[0]];
    }

    public static string Run()
    {
        torch.set_num_threads(Environment.ProcessorCount);
        var x = Tensor.Randn([64], 1).RequiresGrad_();
        var tx = torch.randn(64).requires_grad_();
        void Torch() { using var _ = torch.NewDisposeScope(); TorchChain(tx).backward(); }
        var pass = new Pass();
        var work = new List<(string, Action, Action)>
        {
            ("1,000-op chain fwd+bwd, plain", () => Chain(x).Backward(), Torch),
            ("same, under AutoGrad.DetectAnomaly()", () => { using var m = AutoGrad.DetectAnomaly(); Chain(x).Backward(); }, Torch),
            ("same, a RegisterHook on every intermediate", () => Chain(x, y => { y.RegisterHook(g => null); return y; }).Backward(), Torch),
            ("same, every op followed by an identity CustomFunction", () => Chain(x, y => pass.Apply(y)).Backward(), Torch),
        };
        return Program.SideBySide("Research hooks: per-op cost (1,000 elementwise ops on 64 floats, float32)", work, 21);
    }
}
