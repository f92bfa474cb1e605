namespace Autograd.Onnx;

/// <summary>Reads ONNX model files into <see cref="ModelProto"/>.</summary>
public static class OnnxModelFile
{
    /// <summary>The newest IR version read. The ONNX conformance files of opsets 22 to 25 are written with IR 10 to 13, whose
    /// additions (new element types, function attributes) do not change how the supported ops are encoded.</summary>
    public const long MaxIrVersion = 13;

    /// <summary>Decodes a model from bytes.</summary>
    /// <param name="bytes">The serialized ModelProto.</param>
    /// <exception cref="OnnxFormatException">The bytes are not a valid ModelProto; the message names the offset and field.</exception>
    public static ModelProto Parse(byte[] bytes)
    {
        var m = ModelProto.Read(new ProtoReader(bytes, 0, bytes.Length, "ModelProto"));
        if (m.IrVersion is < 3 or > MaxIrVersion) throw new OnnxFormatException($"IR version {m.IrVersion} is not supported (3 to {MaxIrVersion} are)", 0, "ModelProto.ir_version");
        return m;
    }

    /// <summary>Reads and decodes a model file.</summary>
    /// <param name="path">The .onnx file.</param>
    public static ModelProto Read(string path) => Parse(File.ReadAllBytes(path));
}
