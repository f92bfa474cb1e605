using System.Globalization;
using System.Text;
using Autograd.Layers;

namespace Autograd.Zoo;

/// <summary>One leaf layer of a <see cref="ModelSummary"/>.</summary>
/// <param name="Path">Dotted path in the model (as in the state dict).</param>
/// <param name="Type">The layer type.</param>
/// <param name="OutputShape">Output shape for one sample.</param>
/// <param name="Trainable">Trainable parameters of this layer.</param>
/// <param name="NonTrainable">Buffer elements (running statistics), not trained.</param>
/// <param name="Flops">2 x multiply-accumulates plus bias adds, for one sample.</param>
/// <param name="ReceptiveField">Receptive field of one output element, in input pixels (spatial layers).</param>
/// <param name="Jump">Distance in input pixels between neighbouring output elements.</param>
public sealed record LayerSummary(string Path, string Type, int[] OutputShape, long Trainable, long NonTrainable, long Flops, int ReceptiveField, int Jump);

/// <summary>A per-layer table of a model run on one input: output shapes, parameters, FLOPs and receptive fields, with totals.</summary>
/// <remarks>FLOPs count the layers that multiply-accumulate (convolutions, transposed convolutions, linear and bilinear layers):
/// convolution 2 * Hout * Wout * Cout * (Kh * Kw * Cin / groups) plus one add per output for a bias. The receptive field grows
/// at convolution and pooling layers, RF = RF_prev + (K - 1) * dilation * jump_prev, jump *= stride; where branches meet
/// (residual sums, concatenations, any op combining tensors) the maximum over the incoming paths is taken.</remarks>
/// <example><code>Console.WriteLine(ModelSummary.Of(Zoo.Create("resnet18"), [3, 224, 224]));</code></example>
public sealed class ModelSummary
{
    /// <summary>The leaf layers in the order they ran.</summary>
    public IReadOnlyList<LayerSummary> Layers { get; }
    /// <summary>All trainable parameter elements.</summary>
    public long TotalParameters { get; }
    /// <summary>All buffer elements.</summary>
    public long TotalBuffers { get; }
    /// <summary>FLOPs of one sample.</summary>
    public long TotalFlops { get; }
    /// <summary>Bytes of all layer outputs for one sample (float32).</summary>
    public long ActivationBytes { get; }
    /// <summary>Receptive field of the model's output, in input pixels.</summary>
    public int OutputReceptiveField { get; }
    /// <summary>The input shape of one sample.</summary>
    public int[] InputShape { get; }

    private ModelSummary(List<LayerSummary> layers, long parameters, long buffers, int rf, int[] input)
    {
        (Layers, TotalParameters, TotalBuffers, OutputReceptiveField, InputShape) = (layers, parameters, buffers, rf, input);
        TotalFlops = layers.Sum(l => l.Flops);
        ActivationBytes = layers.Sum(l => l.OutputShape.Aggregate(1L, (a, b) => a * b)) * sizeof(float);
    }

    /// <summary>Runs <paramref name="model"/> in eval mode on one zero input of shape <paramref name="inputShape"/> (without the batch
    /// dim) and summarizes every leaf layer.</summary>
    public static ModelSummary Of(Module model, int[] inputShape)
    {
        var names = new Dictionary<Module, string>(ReferenceEqualityComparer.Instance);
        foreach (var (name, m) in model.NamedModules()) names[m] = name;
        var parameters = new HashSet<Tensor>(model.Parameters(), ReferenceEqualityComparer.Instance);
        var known = new Dictionary<Tensor, (int Rf, int Jump)>(ReferenceEqualityComparer.Instance);
        var rows = new List<LayerSummary>();
        var hooks = new List<IDisposable>();
        var dtype = model.Parameters().FirstOrDefault()?.DType ?? DType.Float32;
        var input = Tensor.Zeros([1, .. inputShape], dtype).RequiresGrad_();
        known[input] = (1, 1);
        foreach (var (name, m) in model.NamedModules().Where(m => !m.Module.Children().Any()))
            hooks.Add(m.RegisterForwardHook((mod, x, y) =>
            {
                var (rf, jump) = Resolve(x, known, parameters);
                var (k, s, d) = Window(mod);
                var (newRf, newJump) = (rf + (k - 1) * d * jump, jump * s);
                known[y] = (newRf, newJump);
                long buffers = mod.Buffers(recurse: false).Sum(b => (long)b.Numel);
                long trainable = mod.Parameters(recurse: false).Sum(p => (long)p.Numel);
                rows.Add(new LayerSummary(names[mod], mod.GetType().Name, y.Shape[1..], trainable, buffers, Flops(mod, x, y), newRf, newJump));
                return null;
            }));
        var wasTraining = model.Training;
        model.Eval();
        try
        {
            var output = model.Call(input);
            var (outRf, _) = Resolve(output, known, parameters);
            return new ModelSummary(rows, model.ParameterCount, model.Buffers().Sum(b => (long)b.Numel), outRf, (int[])inputShape.Clone());
        }
        finally
        {
            foreach (var h in hooks) h.Dispose();
            model.Train(wasTraining);
        }
    }

    /// <summary>Receptive field and jump of a tensor: known for layer outputs, else the maximum over the tensors it was computed
    /// from (walking the autograd graph iteratively; parameters do not count).</summary>
    private static (int Rf, int Jump) Resolve(Tensor t, Dictionary<Tensor, (int Rf, int Jump)> known, HashSet<Tensor> parameters)
    {
        if (known.TryGetValue(t, out var v)) return v;
        var best = (Rf: 1, Jump: 1);
        var stack = new Stack<Tensor>([t]);
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        while (stack.Count > 0)
        {
            var cur = stack.Pop();
            if (!seen.Add(cur) || parameters.Contains(cur)) continue;
            if (known.TryGetValue(cur, out var kv)) { if (kv.Rf > best.Rf || (kv.Rf == best.Rf && kv.Jump > best.Jump)) best = kv; continue; }
            foreach (var p in cur.GraphInputs) stack.Push(p);
        }
        known[t] = best;
        return best;
    }

    /// <summary>Kernel extent, stride and dilation of a layer along its last spatial dim (1, 1, 1 for layers that do not slide).</summary>
    private static (int K, int S, int D) Window(Module m) => m switch
    {
        ConvNd c => (c.KernelSize[^1], c.Stride[^1], c.Dilation[^1]),
        MaxPoolNd p => (p.KernelSize[^1], p.Stride[^1], p.Dilation[^1]),
        AvgPoolNd p => (p.KernelSize[^1], p.Stride[^1], 1),
        _ => (1, 1, 1),
    };

    private static long Flops(Module m, Tensor x, Tensor y)
    {
        long outPerSample = y.Numel / Math.Max(1, y.Shape[0]);
        switch (m)
        {
            case ConvNd c when c.GetType().Name.StartsWith("ConvTranspose", StringComparison.Ordinal):
            {
                long inSpatial = x.Numel / Math.Max(1, x.Shape[0]) / c.InChannels;
                long macs = inSpatial * c.InChannels * c.KernelSize.Aggregate(1L, (a, b) => a * b) * (c.OutChannels / c.Groups);
                return 2 * macs + (c.Bias != null ? outPerSample : 0);
            }
            case ConvNd c:
            {
                long macs = outPerSample * c.KernelSize.Aggregate(1L, (a, b) => a * b) * (c.InChannels / c.Groups);
                return 2 * macs + (c.Bias != null ? outPerSample : 0);
            }
            case Linear l:
                return outPerSample / l.OutFeatures * (2L * l.InFeatures * l.OutFeatures + (l.Bias != null ? l.OutFeatures : 0));
            default:
                return 0;
        }
    }

    private static string Count(long v) => v.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>The table and the totals.</summary>
    public override string ToString()
    {
        var header = new[] { "layer", "type", "output shape", "params", "non-trainable", "FLOPs", "RF", "jump" };
        var cells = Layers.Select(l => new[]
        {
            l.Path, l.Type, "[" + string.Join(", ", l.OutputShape) + "]", Count(l.Trainable), Count(l.NonTrainable), Count(l.Flops),
            l.ReceptiveField.ToString(CultureInfo.InvariantCulture), l.Jump.ToString(CultureInfo.InvariantCulture),
        }).ToList();
        var widths = header.Select((h, i) => Math.Max(h.Length, cells.Count == 0 ? 0 : cells.Max(c => c[i].Length))).ToArray();
        var sb = new StringBuilder();
        string Row(string[] r) => string.Join("  ", r.Select((c, i) => i >= 3 ? c.PadLeft(widths[i]) : c.PadRight(widths[i])));
        sb.AppendLine(Row(header));
        sb.AppendLine(new string('-', widths.Sum() + 2 * (widths.Length - 1)));
        foreach (var c in cells) sb.AppendLine(Row(c));
        sb.AppendLine(new string('-', widths.Sum() + 2 * (widths.Length - 1)));
        sb.AppendLine($"input: [{string.Join(", ", InputShape)}]");
        sb.AppendLine($"parameters: {Count(TotalParameters)} trainable, {Count(TotalBuffers)} non-trainable (buffers)");
        sb.AppendLine($"FLOPs per sample: {Count(TotalFlops)}");
        sb.AppendLine($"activations per sample: {ActivationBytes / 1048576.0:F2} MiB (float32)");
        sb.Append($"receptive field at the output: {OutputReceptiveField} pixels");
        return sb.ToString();
    }
}
