using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Autograd.Backends;

namespace Tests;

public class BackendTests
{
    public static IEnumerable<string> Names => ["mkl", "openblas", "managed"];

    private static IBackend Load(string name) => Backend.TryCreate(name, out var why) ?? throw new IgnoreException($"{name} unavailable: {why}");

    /// <summary>A parallel loop's bodies run on the backend the calling thread scoped with Backend.Use, whichever thread runs
    /// them: on OpenMP's team (a native backend) and on .NET's pool (the managed one). Before, other threads used the
    /// process's backend, so a backend comparison mixed the two.</summary>
    [TestCaseSource(nameof(Names))]
    public void A_parallel_loop_runs_its_bodies_on_the_backend_its_caller_scoped(string name)
    {
        Assume.That(Environment.ProcessorCount, Is.GreaterThanOrEqualTo(2));
        var scoped = Load(name);
        var seen = new IBackend[8 * Environment.ProcessorCount];
        var threads = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
        using (Backend.Use(scoped))
            Threads.For(seen.Length, i =>
            {
                // Every body waits (a while at most) until two threads run bodies, so that some run off the caller's thread.
                threads[Environment.CurrentManagedThreadId] = true;
                SpinWait.SpinUntil(() => threads.Count >= 2, 2000);
                seen[i] = Backend.Current;
            });
        Assert.That(threads.Count, Is.GreaterThanOrEqualTo(2), "bodies ran on more than one thread");
        Assert.That(seen, Is.All.SameAs(scoped));
        Assert.That(Backend.Scoped, Is.Null, "the caller's scope ended with its using block");
    }

    [Test]
    public unsafe void Large_tensors_ask_Linux_for_transparent_huge_pages_over_their_whole_2MB_pages()
    {
        if (!File.Exists("/sys/kernel/mm/transparent_hugepage/enabled") || Environment.GetEnvironmentVariable("AUTOGRAD_THP") == "0")
            Assert.Ignore("no transparent huge pages here");
        // Odd lengths, so no recycled array of another test comes back from the pool (recycled arrays are not advised again).
        foreach (var t in new[] { Tensor.Uninitialized(DType.Float32, (3 << 20) + 123), Tensor.Empty(DType.Float64, (1 << 20) + 77) })
        {
            long start = (long)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(t.Storage)), page = 2 << 20;
            long first = (start + page - 1) & ~(page - 1), last = ((start + t.Numel * t.DType.Size()) & ~(page - 1)) - 1;
            Assert.That(last, Is.GreaterThan(first), "a whole huge page lies inside the array");
            // The mappings holding the first and last byte of those pages carry the madvise flag ("hg").
            Assert.That(Flags(first), Does.Contain("hg"), $"VmFlags at {first:x}");
            Assert.That(Flags(last), Does.Contain("hg"), $"VmFlags at {last:x}");
        }

        static string[] Flags(long address)
        {
            bool inside = false;
            foreach (var line in File.ReadLines("/proc/self/smaps"))
            {
                var range = line.Split(' ')[0].Split('-');
                if (range.Length == 2 && long.TryParse(range[0], System.Globalization.NumberStyles.HexNumber, null, out long lo)
                    && long.TryParse(range[1], System.Globalization.NumberStyles.HexNumber, null, out long hi))
                    inside = lo <= address && address < hi;
                else if (inside && line.StartsWith("VmFlags:")) return line["VmFlags:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            }
            return [];
        }
    }

    [Test]
    public void A_convolution_backward_sharing_its_output_gradient_reorder_gives_the_gradients_of_separate_passes()
    {
        // Two layers, so the second's input gradient is the first's output gradient; the first pass of each backward leaves
        // the reordered gradient in the shared slot for the second.
        var x = Tensor.Randn([4, 16, 12, 12], 1).RequiresGrad_();
        var w1 = (Tensor.Randn([24, 16, 3, 3], 2) * 0.1).RequiresGrad_();
        var w2 = (Tensor.Randn([32, 24, 3, 3], 3) * 0.1).RequiresGrad_();
        var up = Tensor.Randn([4, 32, 12, 12], 4);
        Tensor Loss(Tensor a, Tensor b, Tensor c) => (Functional.Conv2d(Functional.Conv2d(a, b, padding: 1), c, padding: 1) * up).Sum();
        var both = AutoGrad.Grad([Loss(x, w1, w2)], [x, w1, w2]);
        // With the other operands detached, each backward runs one pass.
        var dx = AutoGrad.Grad([Loss(x, w1.Detach(), w2.Detach())], [x])[0]!;
        var dw1 = AutoGrad.Grad([Loss(x.Detach(), w1, w2.Detach())], [w1])[0]!;
        var dw2 = AutoGrad.Grad([Loss(x.Detach(), w1.Detach(), w2)], [w2])[0]!;
        Assert.That(both[0]!.ToFloatArray(), Is.EqualTo(dx.ToFloatArray()));
        Assert.That(both[1]!.ToFloatArray(), Is.EqualTo(dw1.ToFloatArray()));
        Assert.That(both[2]!.ToFloatArray(), Is.EqualTo(dw2.ToFloatArray()));
        // And they are the gradients: float64 runs on this library's own kernels.
        var (x64, w164, w264) = (x.Detach().To(DType.Float64).RequiresGrad_(), w1.Detach().To(DType.Float64).RequiresGrad_(), w2.Detach().To(DType.Float64).RequiresGrad_());
        var exact = AutoGrad.Grad([(Functional.Conv2d(Functional.Conv2d(x64, w164, padding: 1), w264, padding: 1) * up.To(DType.Float64)).Sum()], [x64, w164, w264]);
        for (int i = 0; i < 3; i++)
        {
            double[] got = both[i]!.ToDoubleArray(), want = exact[i]!.ToDoubleArray();
            double scale = want.Max(Math.Abs);
            Assert.That(got.Zip(want, (a, b) => Math.Abs(a - b)).Max(), Is.LessThan(1e-4 * scale), $"gradient {i}");
        }
    }

    [Test]
    public void The_cached_reordered_weight_of_a_convolution_follows_in_place_updates_of_the_weight()
    {
        var x = Tensor.Randn([2, 32, 10, 10], 1);
        var w = Tensor.Randn([32, 32, 3, 3], 2).RequiresGrad_();
        using var _ = AutoGrad.NoGrad();
        var y1 = Functional.Conv2d(x, w, padding: 1);
        Assert.That(Functional.Conv2d(x, w, padding: 1).ToFloatArray(), Is.EqualTo(y1.ToFloatArray()));
        w.Mul_(2);
        Assert.That(Functional.Conv2d(x, w, padding: 1).ToFloatArray(), Is.EqualTo((y1 * 2).ToFloatArray()).Within(1e-4));
        w.Copy_(Tensor.Zeros([32, 32, 3, 3]));
        Assert.That(Functional.Conv2d(x, w, padding: 1).ToFloatArray(), Is.All.EqualTo(0f));
        // The adjoint pass (a transposed convolution) caches its own layout of the same weight.
        var u = Functional.ConvTranspose2d(x, w, padding: 1);
        Assert.That(u.ToFloatArray(), Is.All.EqualTo(0f));
        w.Fill_(1);
        Assert.That(Functional.ConvTranspose2d(x, w, padding: 1).ToFloatArray(), Is.Not.All.EqualTo(0f));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Float32_3x3_convolutions_with_and_without_Winograd_stay_near_the_float64_result(bool winograd)
    {
        if (Backend.Current is not CblasBackend) Assert.Ignore("the managed backend runs its own kernels");
        var saved = Backend.ConvWinograd;
        try
        {
            Backend.ConvWinograd = winograd;
            var g = ConvGeometry.Create("Conv2d", 2, [32, 64, 32, 32], [64, 64, 3, 3], [1, 1], [1, 1], [1, 1], [1, 1], 1);
            // oneDNN 2.x has float32 Winograd kernels for AVX-512 only; elsewhere the direct kernels run either way.
            bool available = winograd && System.Runtime.Intrinsics.X86.Avx512F.IsSupported;
            // Without Winograd the weight gradient (in blocks of channels) comes back by this framework's unblocking.
            if (!winograd) Assert.That(Dnnl.UnblocksWeightGradient(g), Is.True);
            foreach (var pass in Enum.GetValues<ConvPass>())
                Assert.That(Dnnl.Implementation(pass, g), available ? Does.Contain("wino") : Does.Not.Contain("wino"), $"{pass}");
            // Without AVX-512 every pass runs on this framework's F(2x2, 3x3) kernels instead.
            bool ours = winograd && !System.Runtime.Intrinsics.X86.Avx512F.IsSupported && System.Runtime.Intrinsics.X86.Avx2.IsSupported;
            Assert.That(Winograd.Takes(g, DType.Float32, kept: false), Is.EqualTo(ours));
            // He-initialized weights: outputs and gradients of order 1. Errors relative to the largest magnitude of each result.
            var x = Tensor.Randn([32, 64, 32, 32], 1, DType.Float64);
            var w = Tensor.Randn([64, 64, 3, 3], 2, DType.Float64) * (1 / 24.0);
            var u = Tensor.Randn([32, 64, 32, 32], 3, DType.Float64);
            (double[] Y, double[] Gx, double[] Gw) Run(DType t)
            {
                var (xt, wt) = (x.To(t).RequiresGrad_(), w.To(t).RequiresGrad_());
                var y = Functional.Conv2d(xt, wt, padding: 1);
                (y * u.To(t)).Sum().Backward();
                return (y.ToDoubleArray(), xt.Grad!.ToDoubleArray(), wt.Grad!.ToDoubleArray());
            }
            var (f, e) = (Run(DType.Float32), Run(DType.Float64));
            double Rel(double[] a, double[] b) => a.Zip(b, (p, q) => Math.Abs(p - q)).Max() / b.Max(Math.Abs);
            var errors = (Rel(f.Y, e.Y), Rel(f.Gx, e.Gx), Rel(f.Gw, e.Gw));
            TestContext.Out.WriteLine($"winograd {winograd}: relative max errors output {errors.Item1:E2}, input grad {errors.Item2:E2}, weight grad {errors.Item3:E2}");
            // Measured: oneDNN's Winograd (AVX-512) 1.8e-6, 1.6e-6, 6.9e-7; direct 3.6e-7, 3.5e-7, 3.8e-6; this framework's
            // F(2x2, 3x3) (AVX2) 3.5e-7 and 3.8e-7 for the output and input gradient.
            const double tol = 2e-5;
            Assert.That(errors.Item1, Is.LessThan(tol), "output");
            Assert.That(errors.Item2, Is.LessThan(tol), "input gradient");
            Assert.That(errors.Item3, Is.LessThan(tol), "weight gradient");
        }
        finally
        {
            Backend.ConvWinograd = saved;
        }
    }

    [Test]
    public void Float32_convolutions_run_on_oneDNN_vector_kernels_on_the_native_backends()
    {
        // scripts/install-native installs libdnnl2 beside MKL: a native backend without it would silently run the slower
        // managed kernels.
        if (Backend.Current is not CblasBackend) Assert.Ignore("the managed backend runs its own kernels");
        Assert.That(Dnnl.Active, Is.True, Dnnl.Status);
        var g = ConvGeometry.Create("Conv2d", 2, [4, 64, 14, 14], [64, 64, 3, 3], [1, 1], [1, 1], [1, 1], [1, 1], 1);
        foreach (var pass in Enum.GetValues<ConvPass>())
            Assert.That(Dnnl.Implementation(pass, g), Does.Contain("avx"), $"{pass} ({Dnnl.Status})");
        // Its weight gradient, in blocks of 8 or 16 channels each way, comes back to the plain layout by this framework's
        // unblocking (its values are checked against float64 by the test above, with Winograd off).
        Assert.That(Dnnl.UnblocksWeightGradient(g), Is.True);
        // oneDNN's reference loops (hundreds of times slower) are refused: LeNet-5's second conv has only those for its weight
        // gradient in the blocked layout, and a jit kernel in the plain one.
        var lenet2 = ConvGeometry.Create("Conv2d", 2, [64, 6, 14, 14], [16, 6, 5, 5], [1, 1], [0, 0], [0, 0], [1, 1], 1);
        foreach (var pass in Enum.GetValues<ConvPass>())
            Assert.That(Dnnl.Implementation(pass, lenet2), Is.Null.Or.Not.StartWith("ref"), $"{pass}");
        using (Backend.Use(new ManagedBackend())) Assert.That(Dnnl.Active, Is.False);
    }

    [Test]
    public void The_backend_follows_AUTOGRAD_BACKEND_when_set()
    {
        var env = Environment.GetEnvironmentVariable("AUTOGRAD_BACKEND");
        if (string.IsNullOrEmpty(env)) Assert.That(Backend.Current.Name, Is.AnyOf("mkl", "openblas", "managed"));
        else Assert.That(Backend.Current.Name, Is.EqualTo(env));
    }

    [TestCaseSource(nameof(Names))]
    public void Parallel_loops_run_every_index_once_on_several_threads_rethrow_the_first_error_and_nest(string name)
    {
        using var _ = Backend.Use(Load(name));
        foreach (int n in new[] { 0, 1, 2, 3, 200 })
        {
            var runs = new int[n];
            var threads = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
            Threads.For(n, i =>
            {
                Interlocked.Increment(ref runs[i]);
                threads[Environment.CurrentManagedThreadId] = true;
                Thread.SpinWait(20_000);
            });
            Assert.That(runs, Is.All.EqualTo(1), $"n = {n}");
            if (n == 200 && Environment.ProcessorCount >= 2) Assert.That(threads.Count, Is.GreaterThanOrEqualTo(2), "threads that ran indices");
        }
        var error = Assert.Throws<InvalidOperationException>(() => Threads.For(100, i => { if (i == 37) throw new InvalidOperationException("index 37"); }));
        Assert.That(error!.Message, Is.EqualTo("index 37"));
        var pairs = new int[8 * 8];
        Threads.For(8, i => Threads.For(8, j => Interlocked.Increment(ref pairs[i * 8 + j])));
        Assert.That(pairs, Is.All.EqualTo(1));
    }

    [TestCaseSource(nameof(Names))]
    public void Gemm_matches_a_float64_triple_loop_for_odd_sizes_transposes_strides_and_batches(string name)
    {
        var b = Load(name);
        var gen = new Generator(42);
        foreach (var (m, n, k) in new[] { (1, 1, 1), (3, 5, 7), (17, 65, 33), (129, 31, 257), (64, 64, 64) })
            foreach (var ta in new[] { false, true })
                foreach (var tb in new[] { false, true })
                {
                    int batch = 2, pad = 3;
                    int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
                    long sa = (long)(ta ? k : m) * lda, sb = (long)(tb ? n : k) * ldb, sc = (long)m * ldc;
                    var spec = new GemmSpec(ta, tb, m, n, k, lda, ldb, ldc, batch, sa, sb, sc, OffsetA: 1, OffsetB: 2, OffsetC: 3);
                    var A = Enumerable.Range(0, (int)(1 + batch * sa)).Select(_ => gen.NextNormal()).ToArray();
                    var B = Enumerable.Range(0, (int)(2 + batch * sb)).Select(_ => gen.NextNormal()).ToArray();
                    var C = Enumerable.Range(0, (int)(3 + batch * sc)).Select(_ => gen.NextNormal()).ToArray();
                    var expected = (double[])C.Clone();
                    for (int p = 0; p < batch; p++)
                        for (int i = 0; i < m; i++)
                            for (int j = 0; j < n; j++)
                            {
                                double s = 0;
                                for (int q = 0; q < k; q++)
                                    s += A[1 + p * sa + (ta ? q * lda + i : i * lda + q)] * B[2 + p * sb + (tb ? j * ldb + q : q * ldb + j)];
                                long c = 3 + p * sc + i * ldc + j;
                                expected[c] = 0.5 * s - 2 * C[c];
                            }
                    var c64 = (double[])C.Clone();
                    b.Gemm(spec, 0.5, A, B, -2.0, c64);
                    var c32 = C.Select(v => (float)v).ToArray();
                    b.Gemm(spec, 0.5f, A.Select(v => (float)v).ToArray(), B.Select(v => (float)v).ToArray(), -2f, c32);
                    for (int i = 0; i < C.Length; i++)
                    {
                        Assert.That(c64[i], Is.EqualTo(expected[i]).Within(1e-10 * (1 + Math.Abs(expected[i]) + k)), $"{name} f64 {m}x{n}x{k} ta={ta} tb={tb} at {i}");
                        Assert.That(c32[i], Is.EqualTo(expected[i]).Within(1e-4 * (1 + Math.Abs(expected[i])) * Math.Sqrt(k)), $"{name} f32 {m}x{n}x{k} ta={ta} tb={tb} at {i}");
                    }
                }
    }

    [TestCaseSource(nameof(Names))]
    public void Batched_gemm_with_a_shared_operand_of_stride_zero(string name)
    {
        // MKL's strided batch rejects stride 0 (found by the 1x1 convolution, which shares its weights across the batch).
        var b = Load(name);
        var c = new double[4];
        b.Gemm(new GemmSpec(false, false, 1, 2, 1, 1, 2, 2, Batch: 2, StrideA: 0, StrideB: 2, StrideC: 2), 1.0, [3.0], [1.0, 2.0, 10.0, 20.0], 0.0, c);
        Assert.That(c, Is.EqualTo(new double[] { 3, 6, 30, 60 }));
    }

    [TestCaseSource(nameof(Names))]
    public void Gemm_with_beta_zero_overwrites_nan_in_the_output(string name)
    {
        var b = Load(name);
        var c = new[] { double.NaN, double.NaN, double.NaN, double.NaN };
        b.Gemm(GemmSpec.Dense(false, false, 2, 2, 1), 1.0, [1.0, 2.0], [3.0, 4.0], 0.0, c);
        Assert.That(c, Is.EqualTo(new double[] { 3, 4, 6, 8 }));
    }

    [TestCaseSource(nameof(Names))]
    public void Gemm_rejects_operands_that_do_not_fit_their_buffers(string name)
    {
        var b = Load(name);
        var e = Assert.Throws<ArgumentException>(() => b.Gemm(GemmSpec.Dense(false, false, 4, 4, 4), 1.0, new double[15], new double[16], 0.0, new double[16]));
        Assert.That(e!.Message, Does.Contain("A").And.Contain("16").And.Contain("15"));
    }

    [TestCaseSource(nameof(Names))]
    public void Unary_kernels_match_the_math_library(string name)
    {
        var b = Load(name);
        var x = Enumerable.Range(-50, 101).Select(i => i * 0.07).ToArray();
        var y = new double[x.Length];
        foreach (var (k, f) in new (UnaryKernel, Func<double, double>)[]
                 { (UnaryKernel.Exp, Math.Exp), (UnaryKernel.Tanh, Math.Tanh), (UnaryKernel.Erf, MathNet.Numerics.SpecialFunctions.Erf) })
        {
            b.Unary(k, x, y);
            for (int i = 0; i < x.Length; i++) Assert.That(y[i], Is.EqualTo(f(x[i])).Within(1e-14 * (1 + Math.Abs(f(x[i])))), $"{name} {k}({x[i]})");
        }
        var pos = x.Select(Math.Abs).Select(v => v + 0.01).ToArray();
        b.Unary(UnaryKernel.Log, pos, y);
        for (int i = 0; i < x.Length; i++) Assert.That(y[i], Is.EqualTo(Math.Log(pos[i])).Within(1e-14), $"{name} Log");
        b.Unary(UnaryKernel.Sqrt, pos, y);
        for (int i = 0; i < x.Length; i++) Assert.That(y[i], Is.EqualTo(Math.Sqrt(pos[i])).Within(1e-15 * (1 + pos[i])), $"{name} Sqrt");
    }

    [TestCaseSource(nameof(Names))]
    public void Pow_with_a_scalar_exponent_matches_Math_Pow(string name)
    {
        // Long enough to be split across the cores; negative bases (defined for integral exponents, NaN otherwise) and zero.
        var b = Load(name);
        var x = Enumerable.Range(0, 40_000).Select(i => (i - 20_000) * 0.0007).ToArray();
        var y = new double[x.Length];
        foreach (var p in new[] { 0.75, -0.75, 3, -2, 0.5 })
        {
            b.Pow(x, p, y);
            for (int i = 0; i < x.Length; i++)
            {
                double e = Math.Pow(x[i], p);
                Assert.That(y[i], double.IsFinite(e) ? Is.EqualTo(e).Within(1e-14 * (1 + Math.Abs(e))) : Is.EqualTo(e), $"{name} {x[i]}^{p}");
            }
        }
        var f = new float[] { -2, 0, 0.5f, 3 };
        var fy = new float[4];
        b.Pow(f, 3f, fy);
        Assert.That(fy, Is.EqualTo(new float[] { -8, 0, 0.125f, 27 }));
    }
}
