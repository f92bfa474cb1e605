namespace Autograd;

public static partial class Functional
{
    /// <summary>Zeroes each element with probability <paramref name="p"/> and scales the rest by 1/(1-p) (inverted dropout), in training only.</summary>
    public static Tensor Dropout(Tensor input, double p = 0.5, bool training = true, Generator? generator = null) =>
        DropoutWithMask("Dropout", input, p, training, generator, input.Dims);

    /// <summary>Zeroes whole channels of [N, C, *] with probability <paramref name="p"/> (scaling the rest by 1/(1-p)), as <c>F.dropout2d</c>.</summary>
    public static Tensor Dropout2d(Tensor input, double p = 0.5, bool training = true, Generator? generator = null)
    {
        Shape.Rank("Dropout2d", input, 3, 4);
        return DropoutWithMask("Dropout2d", input, p, training, generator, [input.Dims[0], input.Dims[1], .. Enumerable.Repeat(1, input.Rank - 2)]);
    }

    private static Tensor DropoutWithMask(string op, Tensor input, double p, bool training, Generator? generator, int[] maskShape)
    {
        if (p < 0 || p > 1) throw new ArgumentException($"{op}: p must be in [0, 1], got {p}");
        if (!training || p == 0) return input;
        if (p == 1) return input * 0.0;
        var gen = generator ?? Generator.Default;
        double scale = 1 / (1 - p);
        var mask = Tensor.Generate(input.DType, maskShape, _ => gen.NextDouble() >= p ? scale : 0);
        return input * mask;
    }
}
