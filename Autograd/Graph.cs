namespace Autograd;

/// <summary>One recorded op: its inputs and its derivative rule. The rule closes over the tensors its
/// backward needs; dropping the rule after backward frees them.</summary>
internal sealed class Node
{
    public readonly string Op;
    public readonly Tensor[] Inputs;
    public Func<Tensor, Tensor?[]>? Rule;
    /// <summary>Whether the rule is user code (<see cref="Saves.Foreign"/>).</summary>
    public readonly bool Foreign;
    /// <summary>Whether the rule reads the op's output (<see cref="Saves.Output"/>), which an in-place op must then leave alone.</summary>
    public readonly bool ReadsOutput;
    /// <summary>Where the op was called, captured only under <see cref="AutoGrad.DetectAnomaly"/>.</summary>
    public readonly string? CreatedAt;
    // The tensors whose values the rule reads, with their versions when the op ran: backward refuses to run
    // if one was modified in place since (as PyTorch's saved-tensor check).
    private readonly (Tensor T, string Role, int Version)[] saved;

    public Node(string op, Tensor[] inputs, Tensor output, Saves saves, Func<Tensor, Tensor?[]> rule)
    {
        Op = op; Inputs = inputs; Rule = rule; Foreign = saves.HasFlag(Saves.Foreign); ReadsOutput = saves.HasFlag(Saves.Output);
        foreach (var x in inputs) x.Consumed = true;
        if (AutoGrad.IsAnomalyEnabled) CreatedAt = CallerTrace();
        var s = new List<(Tensor, string, int)>();
        if (saves.HasFlag(Saves.Inputs))
            for (int i = 0; i < inputs.Length; i++) s.Add((inputs[i], $"input {i}", inputs[i].Version.Value));
        if (saves.HasFlag(Saves.Output)) s.Add((output, "output", output.Version.Value));
        saved = [.. s];
    }

    /// <summary>The current stack without the recording machinery: the op's own frame first, then the user code that called it.</summary>
    private static string CallerTrace()
    {
        var frames = new System.Diagnostics.StackTrace(1, fNeedFileInfo: true).GetFrames()
            .Where(f => f.GetMethod()?.DeclaringType is Type t && t != typeof(AutoGrad) && t != typeof(Node));
        return string.Join("\n", frames.Select(f =>
            $"   at {f.GetMethod()!.DeclaringType!.FullName}.{f.GetMethod()!.Name}" + (f.GetFileName() is string file ? $" in {file}:line {f.GetFileLineNumber()}" : "")));
    }

    public void CheckVersions()
    {
        foreach (var (t, role, version) in saved)
            if (t.Version.Value != version)
                throw new InvalidOperationException($"Backward: the {role} {Shape.Str(t.Dims)} of {Op} was modified by an in-place operation " +
                    $"after {Op} saved it for backward (version {t.Version.Value}, expected {version}); its gradient would be wrong");
    }
}

/// <summary>Thrown by a backward pass under <see cref="AutoGrad.DetectAnomaly"/> when an op's derivative rule produces a NaN
/// or infinite gradient; the message names the op, its input shapes and (if recorded in the mode) where it was created.</summary>
public sealed class AnomalyException(string op, int input, string message) : Exception(message)
{
    /// <summary>The op whose backward produced the non-finite gradient.</summary>
    public string Op { get; } = op;
    /// <summary>The index of the op's input whose gradient is non-finite.</summary>
    public int Input { get; } = input;
}

/// <summary>What a derivative rule reads besides the output gradient, for the in-place modification check; and
/// <see cref="Foreign"/> for a rule written by a user (a <see cref="CustomFunction"/>), whose gradients may share storage
/// with any tensor, so backward never adds into them in place.</summary>
[Flags]
internal enum Saves { None = 0, Inputs = 1, Output = 2, Foreign = 4 }

/// <summary>Autograd entry points that are not tied to one tensor, like <c>torch.autograd</c>.</summary>
public static class AutoGrad
{
    [ThreadStatic] private static int noGradDepth;
    [ThreadStatic] private static int backwardDepth;

    /// <summary>Whether a backward pass runs on this thread (its rules are computing gradients, with recording off unless
    /// it creates a graph).</summary>
    internal static bool InBackward => backwardDepth > 0;

    private readonly struct BackwardScope : IDisposable
    {
        public BackwardScope() => backwardDepth++;
        public void Dispose() => backwardDepth--;
    }

    // The output gradient the running derivative rule may overwrite, and whether the rule said it does.
    [ThreadStatic] private static Tensor? overwritable;
    [ThreadStatic] private static bool overwritten;

    /// <summary>Whether the running derivative rule may write an input's gradient into <paramref name="g"/>, the output
    /// gradient it was given, instead of a new tensor: the engine owns g (no hook, retained or returned gradient and no
    /// caller sees it, and the rule is built in) and builds no graph of this backward pass. A rule that gets true must
    /// overwrite g and return it as that gradient, which the engine then owns in turn (for the next rule to overwrite, or
    /// to recycle). ReLU's backward in LeNet-5's training step: 3-5% of the step, its 1.2 MB gradient no longer a fresh
    /// array.</summary>
    internal static bool Overwrites(Tensor g)
    {
        if (!ReferenceEquals(g, overwritable)) return false;
        overwritten = true;
        return true;
    }

    /// <summary>Whether ops record the graph on this thread.</summary>
    public static bool IsGradEnabled => noGradDepth == 0;

    /// <summary>Turns graph recording off on this thread until disposed: <c>using (AutoGrad.NoGrad()) { ... }</c>.</summary>
    public static IDisposable NoGrad() => new GradScope(enable: false);

    /// <summary>Sets graph recording on (or off) on this thread until disposed, whatever the enclosing scope says (like
    /// <c>torch.enable_grad</c> / <c>set_grad_enabled</c>): e.g. to recompute a forward pass inside a custom backward.</summary>
    public static IDisposable EnableGrad(bool enable = true) => new GradScope(enable);

    [ThreadStatic] private static int anomalyDepth;

    /// <summary>Whether anomaly detection is on for this thread; see <see cref="DetectAnomaly"/>.</summary>
    public static bool IsAnomalyEnabled => anomalyDepth > 0;

    /// <summary>Turns anomaly detection on for this thread until disposed (like <c>torch.autograd.detect_anomaly</c>): ops
    /// recorded meanwhile remember the stack trace of their creation, and a backward pass run meanwhile that produces a
    /// NaN or infinite gradient stops with an <see cref="AnomalyException"/> naming the op, its input shapes and where it was
    /// created. Costs a stack trace per op; off, it costs nothing.</summary>
    /// <example><code>
    /// using (AutoGrad.DetectAnomaly())
    /// {
    ///     var loss = model.Call(x).Log().Sum();   // the trace of the Log call is kept
    ///     loss.Backward();                        // throws: "Log ... backward produced NaN ... created at ..."
    /// }
    /// </code></example>
    public static IDisposable DetectAnomaly() => new AnomalyScope();

    private sealed class AnomalyScope : IDisposable
    {
        private bool disposed;
        public AnomalyScope() => anomalyDepth++;
        public void Dispose() { if (!disposed) anomalyDepth--; disposed = true; }
    }

    private sealed class GradScope : IDisposable
    {
        private readonly int saved;
        public GradScope(bool enable) { saved = noGradDepth; noGradDepth = enable ? 0 : saved + 1; }
        public void Dispose() => noGradDepth = saved;
    }

    /// <summary>Records <paramref name="result"/> as the output of <paramref name="op"/> when recording is on
    /// and an input requires gradients. <paramref name="rule"/> maps the output gradient to one gradient
    /// per input (null where there is none), written with tensor ops so it can itself be differentiated.</summary>
    internal static Tensor Record(Tensor result, string op, Func<Tensor, Tensor?[]> rule, params Tensor[] inputs) =>
        Record(result, op, Saves.Inputs, rule, inputs);

    /// <summary>As <see cref="Record(Tensor, string, Func{Tensor, Tensor?[]}, Tensor[])"/>, declaring which values the rule reads.</summary>
    internal static Tensor Record(Tensor result, string op, Saves saves, Func<Tensor, Tensor?[]> rule, params Tensor[] inputs)
    {
        if (OpTrace.Active) OpTrace.Add(op, result, inputs);
        if (!IsGradEnabled) return result;
        foreach (var i in inputs)
            if (i.RequiresGrad) { result.GradFn = new Node(op, inputs, result, saves, rule); return result; }
        return result;
    }

    /// <summary>Gradients of <paramref name="outputs"/> with respect to <paramref name="inputs"/>, without
    /// touching any <see cref="Tensor.Grad"/> (like <c>torch.autograd.grad</c>).</summary>
    /// <param name="outputs">Tensors to differentiate.</param>
    /// <param name="inputs">Tensors to differentiate with respect to (leaves or intermediate).</param>
    /// <param name="gradOutputs">Vector for the vector-Jacobian product; may be null for scalar outputs.</param>
    /// <param name="createGraph">Record the backward pass so the result can be differentiated again.</param>
    /// <param name="retainGraph">Keep the graph for another backward; defaults to <paramref name="createGraph"/>.</param>
    /// <param name="allowUnused">Return null for inputs the outputs do not depend on instead of failing.</param>
    public static Tensor?[] Grad(Tensor[] outputs, Tensor[] inputs, Tensor[]? gradOutputs = null,
        bool createGraph = false, bool? retainGraph = null, bool allowUnused = false)
    {
        foreach (var i in inputs)
            if (!i.RequiresGrad) throw new ArgumentException($"AutoGrad.Grad: input {Shape.Str(i.Dims)} does not require grad, so it has no gradient");
        var found = Run(outputs, gradOutputs, retainGraph ?? createGraph, createGraph, accumulate: false, wanted: inputs);
        var result = new Tensor?[inputs.Length];
        for (int i = 0; i < inputs.Length; i++)
        {
            if (!found.TryGetValue(inputs[i], out var g) && !allowUnused)
                throw new ArgumentException($"AutoGrad.Grad: input {i} {Shape.Str(inputs[i].Dims)} was not used to compute the outputs; pass allowUnused: true to get null for it");
            result[i] = g;
        }
        return result;
    }

    internal static Dictionary<Tensor, Tensor> Run(Tensor[] roots, Tensor[]? rootGrads, bool retainGraph, bool createGraph,
        bool accumulate, Tensor[]? wanted)
    {
        var grads = new Dictionary<Tensor, (Tensor G, bool Owned)>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < roots.Length; i++)
        {
            var r = roots[i];
            if (!r.RequiresGrad)
                throw new InvalidOperationException($"Backward: tensor {i} {Shape.Str(r.Dims)} does not require grad and has no grad_fn");
            Tensor g;
            if (rootGrads?[i] is Tensor given)
            {
                if (!Shape.Same(given.Dims, r.Dims))
                    throw new ArgumentException($"Backward: gradient shape {Shape.Str(given.Dims)} does not match output shape {Shape.Str(r.Dims)}");
                Shape.SameDType("Backward", r, given);
                g = given;
            }
            else if (r.Numel == 1) g = Tensor.OnesLike(r);
            else throw new InvalidOperationException($"Backward: grad can be implicitly created only for scalar outputs, got shape {Shape.Str(r.Dims)}; pass a gradient of that shape");
            Accumulate(grads, r, g, owned: false);
        }

        var order = TopologicalOrder(roots);
        var keep = wanted == null ? null : new HashSet<Tensor>(wanted, ReferenceEqualityComparer.Instance);
        var result = new Dictionary<Tensor, Tensor>(ReferenceEqualityComparer.Instance);
        using var mode = EnableGrad(createGraph);
        using var inBackward = new BackwardScope();
        for (int k = order.Count - 1; k >= 0; k--)
        {
            var t = order[k];
            if (!grads.Remove(t, out var pending)) continue;
            // A hook may keep the gradient or return one of its own: from here on it is not the engine's alone.
            var (g, owned) = t.HasGradHooks ? (t.ApplyGradHooks(pending.G), false) : pending;
            if (keep != null && keep.Contains(t)) { result[t] = g; owned = false; }
            var node = t.GradFn;
            if (accumulate && (node == null || t.RetainsGrad) && t.AccumulateGrad(g, createGraph, owned && node == null)) owned = false;
            if (node == null)
            {
                if (owned) StoragePool.Return(g);
                continue;
            }
            var rule = node.Rule ?? throw new InvalidOperationException(
                $"Backward: trying to backward through the graph a second time (op {node.Op}, output {Shape.Str(t.Dims)}); its saved tensors were freed. Pass retainGraph: true to the first Backward.");
            node.CheckVersions();
            var (outerOverwritable, outerOverwritten) = (overwritable, overwritten);
            (overwritable, overwritten) = (owned && !createGraph && !node.Foreign ? g : null, false);
            Tensor?[] inputGrads;
            bool gOverwritten;
            try
            {
                inputGrads = rule(g);
                gOverwritten = overwritten;
            }
            finally
            {
                (overwritable, overwritten) = (outerOverwritable, outerOverwritten);
            }
            if (inputGrads.Length != node.Inputs.Length)
                throw new InvalidOperationException($"{node.Op} backward returned {inputGrads.Length} gradients for {node.Inputs.Length} inputs");
            if (!retainGraph) node.Rule = null;
            if (IsAnomalyEnabled) CheckFinite(node, inputGrads);
            for (int i = 0; i < node.Inputs.Length; i++)
            {
                var x = node.Inputs[i];
                if (inputGrads[i] is not Tensor gi || !x.RequiresGrad) continue;
                if (!Shape.Same(gi.Dims, x.Dims))
                    throw new InvalidOperationException($"{node.Op} backward: gradient for input {i} has shape {Shape.Str(gi.Dims)}, expected {Shape.Str(x.Dims)}");
                Accumulate(grads, x, gi, !createGraph && Fresh(node, t, g, gOverwritten, inputGrads, i));
            }
            // The rule has consumed the gradient; unless user code saw it or a result is a view of it, nothing refers to it.
            if (owned && !node.Foreign && Array.TrueForAll(inputGrads, r => r?.Storage != g.Storage)) StoragePool.Return(g);
        }
        return result;
    }

    private static void CheckFinite(Node node, Tensor?[] inputGrads)
    {
        for (int i = 0; i < inputGrads.Length; i++)
        {
            if (inputGrads[i] is not Tensor g || Kernels.AllFinite(g)) continue;
            string inputs = string.Join(", ", node.Inputs.Select(x => Shape.Str(x.Dims)));
            throw new AnomalyException(node.Op, i, $"DetectAnomaly: the backward of {node.Op} (inputs {inputs}) produced a NaN or infinite gradient " +
                $"for input {i} {Shape.Str(node.Inputs[i].Dims)}. " + (node.CreatedAt is string at
                    ? $"{node.Op} was created at:\n{at}"
                    : $"{node.Op} was recorded outside DetectAnomaly(); run the forward pass inside it to see where the op was created."));
        }
    }

    /// <summary>Adds <paramref name="g"/> to the pending gradient of <paramref name="t"/>: into it in place when the engine owns it
    /// (no other tensor shares its storage), else into a new tensor, which the engine then owns. An owned
    /// <paramref name="g"/> added in goes back to <see cref="StoragePool"/>.</summary>
    private static void Accumulate(Dictionary<Tensor, (Tensor G, bool Owned)> grads, Tensor t, Tensor g, bool owned)
    {
        if (!grads.TryGetValue(t, out var prev))
        {
            grads[t] = (g, owned);
            return;
        }
        if (prev.Owned) prev.G.Add_(g);
        else grads[t] = (prev.G + g, !IsGradEnabled);
        if (owned) StoragePool.Return(g);
    }

    /// <summary>Whether gradient <paramref name="i"/> of a rule's results is a new tensor no other holds (so backward may add
    /// into it): not from user code, and sharing storage with neither the output gradient (unless the rule overwrote it, see
    /// <see cref="Overwrites"/>), the op's output or inputs, nor another of its results. Built-in rules return views (a
    /// reshape, an unbroadcast sum), new tensors, or the output gradient they overwrote.</summary>
    private static bool Fresh(Node node, Tensor output, Tensor g, bool gOverwritten, Tensor?[] results, int i)
    {
        var s = results[i]!.Storage;
        if (node.Foreign || (s == g.Storage && !gOverwritten) || s == output.Storage) return false;
        foreach (var x in node.Inputs) if (x.Storage == s) return false;
        for (int j = 0; j < results.Length; j++) if (j != i && results[j]?.Storage == s) return false;
        return true;
    }

    /// <summary>Post-order of the graph above <paramref name="roots"/>, iterative so deep graphs cannot overflow the stack.</summary>
    private static List<Tensor> TopologicalOrder(Tensor[] roots)
    {
        var order = new List<Tensor>();
        var seen = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(Tensor T, int Next)>();
        foreach (var root in roots)
        {
            if (!seen.Add(root)) continue;
            stack.Push((root, 0));
            while (stack.Count > 0)
            {
                var (t, next) = stack.Pop();
                var inputs = t.GradFn?.Inputs ?? [];
                while (next < inputs.Length && (!inputs[next].RequiresGrad || seen.Contains(inputs[next]))) next++;
                if (next == inputs.Length) { order.Add(t); continue; }
                stack.Push((t, next + 1));
                seen.Add(inputs[next]);
                stack.Push((inputs[next], 0));
            }
        }
        return order;
    }
}
