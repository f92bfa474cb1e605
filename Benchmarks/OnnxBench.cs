using Autograd.Onnx;
using Microsoft.ML.OnnxRuntime;
using OrtTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;

namespace Autograd.Benchmarks;

/// <summary>Inference (batch 1, 224x224) of the three whole CNNs in data/onnx/light, imported into this framework and run by
/// ONNX Runtime with 2 intra-op threads, in the same process: medians and the ratio ours / ONNX Runtime.</summary>
internal static class OnnxBench
{
    public static string Run()
    {
        var light = Path.Combine(Program.FindBenchmarksDir(), "..", "data", "onnx", "light");
        var input = Tensor.Rand([1, 3, 224, 224], seed: 0);
        var work = new List<(string, Action, Action)>();
        var sessions = new List<InferenceSession>();
        foreach (var name in new[] { "resnet50", "inception_v1", "squeezenet" })
        {
            var path = Path.Combine(light, name, "model.onnx");
            var model = OnnxModel.Load(path);
            model.Eval();
            var options = new SessionOptions { IntraOpNumThreads = 2, InterOpNumThreads = 1 };
            var session = new InferenceSession(path, options);
            sessions.Add(session);
            var feed = new[] { NamedOnnxValue.CreateFromTensor(session.InputMetadata.Keys.Single(), new OrtTensor(input.ToFloatArray(), input.Shape)) };
            work.Add(($"{name} inference, batch 1, 224x224",
                () => { using (AutoGrad.NoGrad()) model.Call(input); },
                () => { using var r = session.Run(feed); }));
        }
        var md = Program.SideBySide("ONNX models imported, against ONNX Runtime 1.31.1 (2 intra-op threads), float32", work, 15, "ONNX Runtime");
        foreach (var s in sessions) s.Dispose();
        return md;
    }
}
