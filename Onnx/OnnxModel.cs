namespace Autograd.Onnx;

/// <summary>Imports ONNX models as trainable modules.</summary>
/// <example><code>
/// var model = OnnxModel.Load("resnet50/model.onnx");       // eval mode, initializers are parameters
/// var logits = model.Call(Tensor.Randn([1, 3, 224, 224], seed: 0));
/// logits.Sum().Backward();                                   // gradients reach every initializer
/// </code></example>
public static class OnnxModel
{
    /// <summary>The newest ai.onnx opset the importer implements (the conformance data goes up to 25).</summary>
    public const long MaxOpset = 25;

    /// <summary>Reads an .onnx file into an <see cref="OnnxModule"/>. External tensor data is read from files inside the model's folder only.</summary>
    /// <param name="path">The model file.</param>
    /// <exception cref="OnnxFormatException">The file is malformed (the message names the byte offset and field).</exception>
    /// <exception cref="OnnxUnsupportedException">The graph uses an op or domain the importer does not run.</exception>
    public static OnnxModule Load(string path) =>
        new(OnnxModelFile.Read(path), Path.GetDirectoryName(Path.GetFullPath(path))!);

    /// <summary>Builds a module from model bytes; external data is resolved relative to <paramref name="baseDir"/>.</summary>
    /// <param name="bytes">A serialized ModelProto.</param>
    /// <param name="baseDir">The folder external data files live in.</param>
    public static OnnxModule Load(byte[] bytes, string baseDir) => new(OnnxModelFile.Parse(bytes), baseDir);

    /// <summary>The op types the importer runs.</summary>
    public static IEnumerable<string> SupportedOps => Ops.Supported;
}
