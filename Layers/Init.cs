namespace Autograd.Layers;

/// <summary>Weight initializers, as <c>torch.nn.init</c>: each fills a tensor in place (outside the graph) from
/// the given generator (default: <see cref="Generator.Default"/>) and returns it.</summary>
public static class Init
{
    private static Tensor Fill(Tensor t, Func<double> sample)
    {
        // Sampled straight into the tensor's dtype: zoo models initialize hundreds of millions of weights.
        Tensor values;
        if (t.DType == DType.Float32)
        {
            var v = new float[t.Numel];
            for (int i = 0; i < v.Length; i++) v[i] = (float)sample();
            values = Tensor.From(v, t.Shape);
        }
        else
        {
            var v = new double[t.Numel];
            for (int i = 0; i < v.Length; i++) v[i] = sample();
            values = Tensor.From(v, t.Shape);
        }
        using (AutoGrad.NoGrad()) t.Copy_(values);
        return t;
    }

    /// <summary>Uniform on [a, b).</summary>
    public static Tensor Uniform(Tensor t, double a = 0, double b = 1, Generator? generator = null)
    {
        var g = generator ?? Generator.Default;
        return Fill(t, () => a + (b - a) * g.NextDouble());
    }

    /// <summary>Normal with the given mean and standard deviation.</summary>
    public static Tensor Normal(Tensor t, double mean = 0, double std = 1, Generator? generator = null)
    {
        var g = generator ?? Generator.Default;
        return Fill(t, () => mean + std * g.NextNormal());
    }

    /// <summary>Normal(mean, std) redrawn until inside [a, b], as <c>trunc_normal_</c>.</summary>
    public static Tensor TruncNormal(Tensor t, double mean = 0, double std = 1, double a = -2, double b = 2, Generator? generator = null)
    {
        if (b <= a) throw new ArgumentException($"TruncNormal: a ({a}) must be below b ({b})");
        var g = generator ?? Generator.Default;
        return Fill(t, () =>
        {
            for (int i = 0; i < 1000; i++) { double v = mean + std * g.NextNormal(); if (v >= a && v <= b) return v; }
            return Math.Clamp(mean, a, b);
        });
    }

    /// <summary>Every element set to <paramref name="value"/>.</summary>
    public static Tensor Constant(Tensor t, double value) { using (AutoGrad.NoGrad()) t.Fill_(value); return t; }
    /// <summary>Zeros.</summary>
    public static Tensor Zeros(Tensor t) => Constant(t, 0);
    /// <summary>Ones.</summary>
    public static Tensor Ones(Tensor t) => Constant(t, 1);

    /// <summary>(fan_in, fan_out) as PyTorch computes them: dims 1 and 0 times the receptive field (the product of dims 2+).</summary>
    public static (int FanIn, int FanOut) Fans(Tensor t)
    {
        if (t.Rank < 2) throw new ArgumentException($"Init: fan in and fan out need a tensor of at least 2 dims, got [{string.Join(", ", t.Shape)}]");
        int receptive = t.Shape.Skip(2).Aggregate(1, (a, b) => a * b);
        return (t.Shape[1] * receptive, t.Shape[0] * receptive);
    }

    /// <summary>The recommended gain for a nonlinearity, as <c>calculate_gain</c>.</summary>
    public static double CalculateGain(string nonlinearity, double? param = null) => nonlinearity switch
    {
        "linear" or "conv1d" or "conv2d" or "conv3d" or "conv_transpose1d" or "conv_transpose2d" or "conv_transpose3d" or "sigmoid" => 1,
        "tanh" => 5.0 / 3,
        "relu" => Math.Sqrt(2),
        "leaky_relu" => Math.Sqrt(2 / (1 + Math.Pow(param ?? 0.01, 2))),
        "selu" => 3.0 / 4,
        _ => throw new ArgumentException($"CalculateGain: unsupported nonlinearity \"{nonlinearity}\""),
    };

    /// <summary>Uniform(-b, b) with b = gain sqrt(6 / (fan_in + fan_out)).</summary>
    public static Tensor XavierUniform(Tensor t, double gain = 1, Generator? generator = null)
    {
        var (fi, fo) = Fans(t);
        double b = gain * Math.Sqrt(6.0 / (fi + fo));
        return Uniform(t, -b, b, generator);
    }

    /// <summary>Normal(0, gain sqrt(2 / (fan_in + fan_out))).</summary>
    public static Tensor XavierNormal(Tensor t, double gain = 1, Generator? generator = null)
    {
        var (fi, fo) = Fans(t);
        return Normal(t, 0, gain * Math.Sqrt(2.0 / (fi + fo)), generator);
    }

    private static double KaimingStd(Tensor t, double a, string mode, string nonlinearity)
    {
        var (fi, fo) = Fans(t);
        int fan = mode switch { "fan_in" => fi, "fan_out" => fo, _ => throw new ArgumentException($"Kaiming: mode must be fan_in or fan_out, got \"{mode}\"") };
        return CalculateGain(nonlinearity, a) / Math.Sqrt(fan);
    }

    /// <summary>Uniform(-b, b) with b = gain sqrt(3 / fan), as <c>kaiming_uniform_</c>.</summary>
    public static Tensor KaimingUniform(Tensor t, double a = 0, string mode = "fan_in", string nonlinearity = "leaky_relu", Generator? generator = null)
    {
        double b = Math.Sqrt(3) * KaimingStd(t, a, mode, nonlinearity);
        return Uniform(t, -b, b, generator);
    }

    /// <summary>Normal(0, gain / sqrt(fan)), as <c>kaiming_normal_</c>.</summary>
    public static Tensor KaimingNormal(Tensor t, double a = 0, string mode = "fan_in", string nonlinearity = "leaky_relu", Generator? generator = null) =>
        Normal(t, 0, KaimingStd(t, a, mode, nonlinearity), generator);

    /// <summary>A (semi-)orthogonal matrix from the QR decomposition of a normal sample, scaled by <paramref name="gain"/>, viewing
    /// dims 1+ as one (as <c>orthogonal_</c>).</summary>
    public static Tensor Orthogonal(Tensor t, double gain = 1, Generator? generator = null)
    {
        if (t.Rank < 2) throw new ArgumentException($"Orthogonal: needs at least 2 dims, got [{string.Join(", ", t.Shape)}]");
        var g = generator ?? Generator.Default;
        int rows = t.Shape[0], cols = t.Numel / rows;
        bool transpose = rows < cols;
        int m = transpose ? cols : rows, n = transpose ? rows : cols;
        var a = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(m, n, (_, _) => g.NextNormal());
        var qr = a.QR();
        // Make the decomposition unique (as PyTorch): multiply by the signs of R's diagonal.
        var q = qr.Q.SubMatrix(0, m, 0, n);
        for (int j = 0; j < n; j++) if (qr.R[j, j] < 0) q.SetColumn(j, q.Column(j).Negate());
        if (transpose) q = q.Transpose();
        var values = new double[rows * cols];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) values[i * cols + j] = gain * q[i, j];
        using (AutoGrad.NoGrad()) t.Copy_(Tensor.From(values, t.Shape));
        return t;
    }
}
