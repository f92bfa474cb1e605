namespace Autograd;

/// <summary>One call of a public op seen by an <see cref="OpTrace"/>: the op, its tensor inputs (null for an absent optional
/// input, such as a missing bias), its output and its resolved attributes (strides, pads, axes, ...).</summary>
/// <param name="Op">The op's name (<c>Conv</c>, <c>MaxPool</c>, <c>Add</c>, <c>Reshape</c>, ...).</param>
/// <param name="Inputs">Tensor inputs in the op's order.</param>
/// <param name="Output">The tensor the op returned.</param>
/// <param name="Attributes">Resolved hyper-parameters, by name.</param>
public sealed record TracedOp(string Op, IReadOnlyList<Tensor?> Inputs, Tensor Output, IReadOnlyDictionary<string, object> Attributes);

/// <summary>Records every public op called on this thread while it is open, in call order, for exporters (the ONNX export
/// traces a model's forward pass this way). An op implemented with other ops is recorded after them, so the last record
/// producing a tensor is the outermost op. Off, the ops pay one thread-static read.</summary>
/// <example><code>
/// using (var trace = OpTrace.Start()) { model.Call(x); foreach (var op in trace.Ops) Console.WriteLine(op.Op); }
/// </code></example>
public sealed class OpTrace : IDisposable
{
    [ThreadStatic] private static OpTrace? current;
    private readonly OpTrace? outer;
    private readonly List<TracedOp> ops = [];
    private bool disposed;

    private OpTrace(OpTrace? outer) => this.outer = outer;

    /// <summary>Starts recording on this thread until the trace is disposed.</summary>
    public static OpTrace Start() => current = new OpTrace(current);

    /// <summary>The ops recorded so far, in call order.</summary>
    public IReadOnlyList<TracedOp> Ops => ops;

    /// <summary>Whether a trace is recording on this thread; ops check it before building their record.</summary>
    internal static bool Active => current != null;

    /// <summary>Records an op call in the open trace (if any) and returns <paramref name="output"/>.</summary>
    internal static Tensor Add(string op, Tensor output, Tensor?[] inputs, params (string Name, object Value)[] attributes)
    {
        // An op that returned one of its inputs unchanged (dropout in eval mode, a no-op reshape) computed nothing.
        if (current != null && !inputs.Any(i => ReferenceEquals(i, output)))
            current.ops.Add(new TracedOp(op, inputs, output, attributes.ToDictionary(a => a.Name, a => a.Value)));
        return output;
    }

    /// <summary>Stops recording (restoring an enclosing trace, if any).</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        current = outer;
    }
}
