using System.Diagnostics;
using Autograd.Onnx;

namespace Tests;

/// <summary>Mutated and truncated copies of the shipped models: every one either loads or fails with an
/// <see cref="OnnxFormatException"/> naming a byte offset (or, when the mutation produced a well-formed file with an op
/// or value kind that does not exist, an <see cref="OnnxUnsupportedException"/>) — never another exception, a crash or a hang.</summary>
public class OnnxFuzzTests
{
    [Test]
    public void Thousands_of_mutated_and_truncated_models_load_or_fail_with_a_format_error_and_offset()
    {
        var sources = new[] { "light/squeezenet", "light/inception_v1", "light/resnet50", "pytorch-operator/test_operator_conv",
                "node/test_conv_with_strides_padding", "node/test_resize_upsample_scales_cubic", "node/test_batchnorm_example", "simple/test_gradient_of_add" }
            .Select(c => File.ReadAllBytes(OnnxTests.OnnxData([.. c.Split('/'), "model.onnx"]))).ToArray();
        var gen = new Random(20261123);
        int loaded = 0, formatErrors = 0, unsupported = 0, cases = 0;
        var clock = Stopwatch.StartNew();
        var tmp = Directory.CreateTempSubdirectory("onnx-fuzz-").FullName;
        try
        {
            for (; cases < 8000; cases++)
            {
                var src = sources[cases % sources.Length];
                var bytes = Mutate(src, gen);
                try
                {
                    OnnxModel.Load(bytes, tmp);
                    loaded++;
                }
                catch (OnnxFormatException e) when (e.Offset is long at && at >= 0 && at <= bytes.Length && e.Field != null)
                {
                    formatErrors++;
                }
                catch (OnnxUnsupportedException) { unsupported++; }
                catch (Exception e)
                {
                    Assert.Fail($"case {cases}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
                }
            }
        }
        finally { Directory.Delete(tmp, true); }
        TestContext.Out.WriteLine($"{cases} cases in {clock.Elapsed.TotalSeconds:F1} s: {loaded} loaded, {formatErrors} format errors, {unsupported} unsupported");
        Assert.That(formatErrors, Is.GreaterThan(cases / 4), "most mutations should be caught as format errors");
        Assert.That(loaded, Is.GreaterThan(0), "some mutations (inside float data) leave a valid model");
    }

    /// <summary>Truncation, random byte overwrites, bit flips, or an inserted run of random bytes.</summary>
    private static byte[] Mutate(byte[] src, Random gen)
    {
        var b = (byte[])src.Clone();
        switch (gen.Next(4))
        {
            case 0: return b[..gen.Next(b.Length)];
            case 1:
                for (int i = 0, n = 1 + gen.Next(8); i < n; i++) b[gen.Next(b.Length)] = (byte)gen.Next(256);
                return b;
            case 2:
                for (int i = 0, n = 1 + gen.Next(4); i < n; i++) b[gen.Next(b.Length)] ^= (byte)(1 << gen.Next(8));
                return b;
            default:
                int at = gen.Next(b.Length);
                var junk = new byte[1 + gen.Next(16)];
                gen.NextBytes(junk);
                return [.. b[..at], .. junk, .. b[at..]];
        }
    }
}
