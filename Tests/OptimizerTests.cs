using Autograd.Optimizers;

namespace Tests;

// Expected values are derived by hand from the update rules of the PyTorch documentation (torch.optim); each test
// shows the arithmetic. Where a value is irrational it is written as the closed-form expression, evaluated by C#.
// All parameters are Float64 so the comparisons can be tight.
public class OptimizerTests
{
    private const double Tol = 1e-12;

    private static Tensor P(params double[] v) => Tensor.From(v, v.Length).RequiresGrad_();

    private static void SetGrad(Tensor p, params double[] g) => p.Grad = Tensor.From(g, g.Length);

    private static double X(Tensor p) => p.ToDoubleArray()[0];

    /// <summary>Steps a one-element parameter with the given gradients, returning the value after each step.</summary>
    private static double[] Run(Optimizer opt, Tensor p, params double[] grads) =>
        grads.Select(g => { SetGrad(p, g); opt.Step(); return X(p); }).ToArray();

    // ---------------- SGD ----------------

    [Test]
    public void Plain_gradient_descent_on_a_parabola()
    {
        // f(x) = (x - 3)^2, f'(x) = 2(x - 3); x <- x - 0.1 * 2(x - 3) = 0.8x + 0.6
        var x = P(0);
        var opt = new SGD([x], lr: 0.1);
        var expected = new[] { 0.6, 1.08, 1.464, 1.7712 };   // 0.8*0+0.6, 0.8*0.6+0.6, 0.8*1.08+0.6, 0.8*1.464+0.6
        foreach (var e in expected)
        {
            opt.ZeroGrad();
            ((x - 3) * (x - 3)).Sum().Backward();
            opt.Step();
            Assert.That(X(x), Is.EqualTo(e).Within(Tol));
        }
        // closed form: x_n = 3 - 3 * 0.8^n
        for (int n = 5; n <= 40; n++) { opt.ZeroGrad(); ((x - 3) * (x - 3)).Sum().Backward(); opt.Step(); }
        Assert.That(X(x), Is.EqualTo(3 - 3 * Math.Pow(0.8, 40)).Within(1e-12));
    }

    [Test]
    public void SGD_momentum_two_steps()
    {
        // b1 = g1 = 1, x1 = 0 - 0.1*1 = -0.1; b2 = 0.9*1 + 2 = 2.9, x2 = -0.1 - 0.1*2.9 = -0.39
        var x = P(0);
        var xs = Run(new SGD([x], lr: 0.1, momentum: 0.9), x, 1, 2);
        Assert.That(xs, Is.EqualTo(new[] { -0.1, -0.39 }).Within(Tol));
    }

    [Test]
    public void SGD_nesterov_two_steps()
    {
        // b1 = 1, d1 = g1 + 0.9*b1 = 1.9, x1 = -0.19; b2 = 0.9*1 + 2 = 2.9, d2 = 2 + 0.9*2.9 = 4.61, x2 = -0.19 - 0.461 = -0.651
        var x = P(0);
        var xs = Run(new SGD([x], lr: 0.1, momentum: 0.9, nesterov: true), x, 1, 2);
        Assert.That(xs, Is.EqualTo(new[] { -0.19, -0.651 }).Within(Tol));
    }

    [Test]
    public void SGD_dampening_does_not_apply_to_the_first_step()
    {
        // b1 = g1 = 1 (no dampening), x1 = -0.1; b2 = 0.9*1 + (1 - 0.5)*2 = 1.9, x2 = -0.1 - 0.19 = -0.29
        var x = P(0);
        var xs = Run(new SGD([x], lr: 0.1, momentum: 0.9, dampening: 0.5), x, 1, 2);
        Assert.That(xs, Is.EqualTo(new[] { -0.1, -0.29 }).Within(Tol));
    }

    [Test]
    public void SGD_weight_decay_adds_lambda_theta_to_the_gradient_and_maximize_flips_it()
    {
        // d = g + 0.1*x = 1 + 0.2 = 1.2; x = 2 - 0.1*1.2 = 1.88
        var x = P(2);
        Assert.That(Run(new SGD([x], lr: 0.1, weightDecay: 0.1), x, 1)[0], Is.EqualTo(1.88).Within(Tol));
        // maximize: x = 0 + 0.1*1 = 0.1
        var y = P(0);
        Assert.That(Run(new SGD([y], lr: 0.1, maximize: true), y, 1)[0], Is.EqualTo(0.1).Within(Tol));
    }

    [Test]
    public void SGD_keeps_the_parameter_identity_and_works_in_float32()
    {
        var w = Tensor.From(new[] { 1f, 2f }, 2).RequiresGrad_();
        var opt = new SGD([w], lr: 0.5);
        w.Grad = Tensor.From(new[] { 1f, -2f }, 2);
        opt.Step();
        // [1 - 0.5*1, 2 + 0.5*2] = [0.5, 3]
        Assert.That(w.ToFloatArray(), Is.EqualTo(new[] { 0.5f, 3f }));
        Assert.That(w.DType, Is.EqualTo(DType.Float32));
        Assert.That(w.IsLeaf && w.RequiresGrad, Is.True);
        Assert.That(opt.ParamGroups[0].Params[0], Is.SameAs(w));
    }

    [Test]
    public void Parameters_without_a_gradient_are_skipped()
    {
        var a = P(1);
        var b = P(1);
        var opt = new Adam([a, b], lr: 0.1);
        SetGrad(a, 1);
        opt.Step();
        Assert.That(X(b), Is.EqualTo(1));
        Assert.That(opt.GetState(b), Is.Empty);
        Assert.That(opt.GetState(a)["step"].Item(), Is.EqualTo(1));
    }

    // ---------------- Adam family ----------------

    [TestCase(false, false, false, 0.0)]
    [TestCase(true, false, false, 0.1)]
    [TestCase(false, true, true, 0.1)]
    [TestCase(true, true, false, 0.0)]
    public void Adam_and_AdamW_on_large_tensors_follow_the_formula_element_by_element(bool amsgrad, bool maximize, bool decoupled, double weightDecay)
    {
        // 400,003 elements: the vector loop, its scalar tail and the parallel chunks of the fused update.
        int n = 400_003;
        var x = Tensor.Randn([n], 1).RequiresGrad_();
        var opt = decoupled ? new AdamW([x], lr: 0.01, weightDecay: weightDecay, amsgrad: amsgrad, maximize: maximize)
            : new Adam([x], lr: 0.01, weightDecay: weightDecay, amsgrad: amsgrad, maximize: maximize);
        double[] p = x.ToDoubleArray(), m = new double[n], v = new double[n], vmax = new double[n];
        for (int t = 1; t <= 3; t++)
        {
            var grad = Tensor.Randn([n], 10 + t);
            x.Grad = grad;
            opt.Step();
            var g = grad.ToDoubleArray();
            for (int i = 0; i < n; i++)
            {
                double gi = maximize ? -g[i] : g[i];
                if (decoupled) p[i] *= 1 - 0.01 * weightDecay;
                else gi += weightDecay * p[i];
                m[i] = 0.9 * m[i] + 0.1 * gi;
                v[i] = 0.999 * v[i] + 0.001 * gi * gi;
                vmax[i] = Math.Max(vmax[i], v[i]);
                double second = amsgrad ? vmax[i] : v[i];
                p[i] -= 0.01 / (1 - Math.Pow(0.9, t)) * m[i] / (Math.Sqrt(second) / Math.Sqrt(1 - Math.Pow(0.999, t)) + 1e-8);
            }
            Assert.That(x.ToDoubleArray(), Is.EqualTo(p).Within(1e-5), $"step {t}");
        }
    }

    [Test]
    public void Adam_first_step_is_lr_times_the_sign_of_the_gradient()
    {
        // m1 = 0.1*0.5 = 0.05, v1 = 0.001*0.25 = 0.00025; m^ = 0.05/(1-0.9) = 0.5, sqrt(v^) = sqrt(0.00025/(1-0.999)) = 0.5
        // x1 = 1 - 0.1 * 0.5/(0.5 + 1e-8) = 0.900000002
        var x = P(1);
        var opt = new Adam([x], lr: 0.1);
        Assert.That(Run(opt, x, 0.5)[0], Is.EqualTo(1 - 0.1 * 0.5 / (0.5 + 1e-8)).Within(Tol));
        // second step, g2 = -1: m2 = 0.9*0.05 + 0.1*(-1) = -0.055; v2 = 0.999*0.00025 + 0.001*1 = 0.00124975
        // bias corrections 1 - 0.9^2 = 0.19, 1 - 0.999^2 = 0.001999
        // x2 = x1 - 0.1 * (-0.055/0.19) / (sqrt(0.00124975/0.001999) + 1e-8) = 0.900000002 + 0.1*0.289473684/0.790688051 = 0.93661035424...
        double x1 = X(x);
        Assert.That(Run(opt, x, -1)[0], Is.EqualTo(x1 - 0.1 * (-0.055 / 0.19) / (Math.Sqrt(0.00124975 / 0.001999) + 1e-8)).Within(Tol));
        Assert.That(X(x), Is.EqualTo(0.93661035424).Within(1e-10));
        Assert.That(opt.GetState(x)["exp_avg"].Item(), Is.EqualTo(-0.055).Within(Tol));
        Assert.That(opt.GetState(x)["exp_avg_sq"].Item(), Is.EqualTo(0.00124975).Within(Tol));
        Assert.That(opt.GetState(x)["step"].Item(), Is.EqualTo(2));
    }

    [Test]
    public void Adam_weight_decay_is_added_to_the_gradient()
    {
        // g = 0.5 + 0.1*1 = 0.6: exp_avg = 0.1*0.6 = 0.06, x1 = 1 - 0.1*0.6/(0.6 + 1e-8)
        var x = P(1);
        var opt = new Adam([x], lr: 0.1, weightDecay: 0.1);
        Assert.That(Run(opt, x, 0.5)[0], Is.EqualTo(1 - 0.1 * 0.6 / (0.6 + 1e-8)).Within(Tol));
        Assert.That(opt.GetState(x)["exp_avg"].Item(), Is.EqualTo(0.06).Within(Tol));
    }

    [Test]
    public void Adam_maximize_ascends()
    {
        // the gradient is negated: g = -0.5, x1 = 1 - 0.1*(-0.5)/(0.5 + 1e-8) = 1.099999998
        var x = P(1);
        Assert.That(Run(new Adam([x], lr: 0.1, maximize: true), x, 0.5)[0], Is.EqualTo(1 + 0.1 * 0.5 / (0.5 + 1e-8)).Within(Tol));
    }

    [Test]
    public void AdamW_decays_the_weights_before_the_adam_step()
    {
        // x <- 1 * (1 - 0.1*0.1) = 0.99, then the Adam step on g = 0.5 alone: 0.99 - 0.1*0.5/(0.5 + 1e-8) = 0.890000002
        var x = P(1);
        var opt = new AdamW([x], lr: 0.1, weightDecay: 0.1);
        Assert.That(Run(opt, x, 0.5)[0], Is.EqualTo(0.99 - 0.1 * 0.5 / (0.5 + 1e-8)).Within(Tol));
        Assert.That(opt.GetState(x)["exp_avg"].Item(), Is.EqualTo(0.05).Within(Tol));   // 0.1*0.5: the decay is not in the moments
        Assert.That(opt.ParamGroups[0].WeightDecay, Is.EqualTo(0.1));
        Assert.That(new AdamW([P(0)]).Defaults["weight_decay"], Is.EqualTo(1e-2));
    }

    [Test]
    public void Amsgrad_uses_the_largest_second_moment()
    {
        // betas (0.9, 0.5); g1 = 1: m1 = 0.1, v1 = 0.5; m^ = 1, v^ = 0.5/0.5 = 1, x1 = 1 - 0.1*1/(1 + 1e-8)
        // g2 = 0.1: m2 = 0.09 + 0.01 = 0.1, v2 = 0.25 + 0.5*0.01 = 0.255 < max 0.5
        // amsgrad:  x2 = x1 - 0.1*(0.1/0.19)/(sqrt(0.5/0.75) + 1e-8)   = 0.83553974540...
        // plain:    x2 = x1 - 0.1*(0.1/0.19)/(sqrt(0.255/0.75) + 1e-8) = 0.80973758931...
        double x1 = 1 - 0.1 / (1 + 1e-8);
        var a = P(1);
        var ams = new Adam([a], lr: 0.1, betas: (0.9, 0.5), amsgrad: true);
        Assert.That(Run(ams, a, 1, 0.1), Is.EqualTo(new[] { x1, x1 - 0.1 * (0.1 / 0.19) / (Math.Sqrt(0.5 / 0.75) + 1e-8) }).Within(Tol));
        Assert.That(ams.GetState(a)["max_exp_avg_sq"].Item(), Is.EqualTo(0.5).Within(Tol));
        Assert.That(X(a), Is.EqualTo(0.8355397454).Within(1e-9));
        var b = P(1);
        Assert.That(Run(new Adam([b], lr: 0.1, betas: (0.9, 0.5)), b, 1, 0.1)[1],
            Is.EqualTo(x1 - 0.1 * (0.1 / 0.19) / (Math.Sqrt(0.255 / 0.75) + 1e-8)).Within(Tol));
    }

    [Test]
    public void Adamax_two_steps()
    {
        // lr 2e-3, g1 = -0.5: m1 = -0.05, u1 = max(0, 0.5 + 1e-8); clr = 2e-3/(1 - 0.9) = 0.02
        // x1 = 1 - 0.02*(-0.05)/(0.5 + 1e-8) = 1.00199999996
        // g2 = 0.25: m2 = 0.9*(-0.05) + 0.1*0.25 = -0.02, u2 = max(0.999*(0.5 + 1e-8), 0.25 + 1e-8) = 0.999*(0.5 + 1e-8)
        // x2 = x1 - (2e-3/0.19)*(-0.02)/u2 = 1.00242147405...
        var x = P(1);
        double x1 = 1 - 0.02 * -0.05 / (0.5 + 1e-8);
        Assert.That(Run(new Adamax([x]), x, -0.5, 0.25),
            Is.EqualTo(new[] { x1, x1 - (2e-3 / 0.19) * -0.02 / (0.999 * (0.5 + 1e-8)) }).Within(Tol));
        Assert.That(X(x), Is.EqualTo(1.00242147405).Within(1e-10));
    }

    [Test]
    public void NAdam_first_step()
    {
        // psi = 4e-3: mu1 = 0.9(1 - 0.5*0.96^0.004) = 0.450073474, mu2 = 0.9(1 - 0.5*0.96^0.008) = 0.450146935; prod1 = mu1
        // g = 0.5: m = 0.05, v = 0.00025, denom = sqrt(0.00025/0.001) + 1e-8 = 0.5 + 1e-8
        // x1 = 1 - 2e-3*(1 - mu1)/(1 - mu1) * 0.5/denom - 2e-3*mu2/(1 - mu1*mu2) * 0.05/denom = 0.99788709649
        double mu1 = 0.9 * (1 - 0.5 * Math.Pow(0.96, 0.004)), mu2 = 0.9 * (1 - 0.5 * Math.Pow(0.96, 0.008)), d = 0.5 + 1e-8;
        var x = P(1);
        var opt = new NAdam([x]);
        Assert.That(Run(opt, x, 0.5)[0], Is.EqualTo(1 - 2e-3 * 0.5 / d - 2e-3 * mu2 / (1 - mu1 * mu2) * 0.05 / d).Within(Tol));
        Assert.That(X(x), Is.EqualTo(0.99788709649).Within(1e-10));
        Assert.That(opt.GetState(x)["mu_product"].Item(), Is.EqualTo(mu1).Within(Tol));
    }

    [Test]
    public void NAdam_decoupled_weight_decay_shrinks_the_parameter_first()
    {
        // x <- 1*(1 - 2e-3*0.5) = 0.999, then the step on g = 0.5 alone
        double mu1 = 0.9 * (1 - 0.5 * Math.Pow(0.96, 0.004)), mu2 = 0.9 * (1 - 0.5 * Math.Pow(0.96, 0.008)), d = 0.5 + 1e-8;
        var x = P(1);
        Assert.That(Run(new NAdam([x], weightDecay: 0.5, decoupledWeightDecay: true), x, 0.5)[0],
            Is.EqualTo(0.999 - 2e-3 * 0.5 / d - 2e-3 * mu2 / (1 - mu1 * mu2) * 0.05 / d).Within(Tol));
    }

    // ---------------- RMSprop, Adagrad, Adadelta ----------------

    [Test]
    public void RMSprop_plain_two_steps()
    {
        // lr 0.01, alpha 0.99; g1 = 2: v1 = 0.01*4 = 0.04, x1 = 1 - 0.01*2/(0.2 + 1e-8) = 0.900000005
        // g2 = 1: v2 = 0.99*0.04 + 0.01*1 = 0.0496, x2 = x1 - 0.01/(sqrt(0.0496) + 1e-8) = 0.85509868151
        var x = P(1);
        double x1 = 1 - 0.01 * 2 / (0.2 + 1e-8);
        Assert.That(Run(new RMSprop([x]), x, 2, 1), Is.EqualTo(new[] { x1, x1 - 0.01 / (Math.Sqrt(0.0496) + 1e-8) }).Within(Tol));
        Assert.That(X(x), Is.EqualTo(0.85509868151).Within(1e-10));
    }

    [Test]
    public void RMSprop_centered_subtracts_the_squared_mean_gradient()
    {
        // g = 2: v = 0.04, gbar = 0.01*2 = 0.02; denom = sqrt(0.04 - 0.02^2) + 1e-8 = sqrt(0.0396) + 1e-8
        // x1 = 1 - 0.01*2/(sqrt(0.0396) + 1e-8) = 0.89949622352
        var x = P(1);
        var opt = new RMSprop([x], centered: true);
        Assert.That(Run(opt, x, 2)[0], Is.EqualTo(1 - 0.01 * 2 / (Math.Sqrt(0.0396) + 1e-8)).Within(Tol));
        Assert.That(opt.GetState(x)["grad_avg"].Item(), Is.EqualTo(0.02).Within(Tol));
    }

    [Test]
    public void RMSprop_momentum_accumulates_normalized_gradients()
    {
        // g1 = 2: b1 = 2/(0.2 + 1e-8) = 9.9999995, x1 = 1 - 0.01*b1
        // g2 = 1: v2 = 0.0496, b2 = 0.9*b1 + 1/(sqrt(0.0496) + 1e-8) = 13.4901319, x2 = x1 - 0.01*b2 = 0.76509868601
        double b1 = 2 / (0.2 + 1e-8), b2 = 0.9 * b1 + 1 / (Math.Sqrt(0.0496) + 1e-8);
        var x = P(1);
        Assert.That(Run(new RMSprop([x], momentum: 0.9), x, 2, 1), Is.EqualTo(new[] { 1 - 0.01 * b1, 1 - 0.01 * b1 - 0.01 * b2 }).Within(Tol));
        Assert.That(X(x), Is.EqualTo(0.76509868601).Within(1e-10));
    }

    [Test]
    public void Adagrad_with_lr_decay()
    {
        // lr 0.1, lr_decay 0.5; g1 = 3: clr = 0.1/(1 + 0*0.5) = 0.1, sum = 9, x1 = 1 - 0.1*3/(3 + 1e-10)
        // g2 = 4: clr = 0.1/(1 + 1*0.5) = 0.0666.., sum = 9 + 16 = 25, x2 = x1 - (0.1/1.5)*4/(5 + 1e-10) = 0.84666666667
        var x = P(1);
        var opt = new Adagrad([x], lr: 0.1, lrDecay: 0.5);
        double x1 = 1 - 0.1 * 3 / (3 + 1e-10);
        Assert.That(Run(opt, x, 3, 4), Is.EqualTo(new[] { x1, x1 - 0.1 / 1.5 * 4 / (5 + 1e-10) }).Within(Tol));
        Assert.That(opt.GetState(x)["sum"].Item(), Is.EqualTo(25));
    }

    [Test]
    public void Adagrad_initial_accumulator_value_and_eager_state()
    {
        // the state exists before the first step (as in PyTorch): sum = 1, step = 0
        var x = P(1);
        var opt = new Adagrad([x], lr: 0.1, initialAccumulatorValue: 1);
        Assert.That(opt.GetState(x)["sum"].Item(), Is.EqualTo(1));
        Assert.That(opt.GetState(x)["step"].Item(), Is.EqualTo(0));
        // g = 3: sum = 1 + 9 = 10, x = 1 - 0.1*3/(sqrt(10) + 1e-10)
        Assert.That(Run(opt, x, 3)[0], Is.EqualTo(1 - 0.3 / (Math.Sqrt(10) + 1e-10)).Within(Tol));
    }

    [Test]
    public void Adadelta_two_steps()
    {
        // rho 0.9, eps 1e-6, lr 1; g1 = 2: v1 = 0.1*4 = 0.4, delta1 = sqrt(0 + 1e-6)/sqrt(0.4 + 1e-6) * 2 = 0.0031622737
        // u1 = 0.1*delta1^2, x1 = 1 - delta1 = 0.99683772629
        // g2 = 2: v2 = 0.9*0.4 + 0.4 = 0.76, delta2 = sqrt(u1 + 1e-6)/sqrt(0.76 + 1e-6) * 2, x2 = x1 - delta2 = 0.99359330203
        double d1 = Math.Sqrt(1e-6) / Math.Sqrt(0.4 + 1e-6) * 2, u1 = 0.1 * d1 * d1, d2 = Math.Sqrt(u1 + 1e-6) / Math.Sqrt(0.76 + 1e-6) * 2;
        var x = P(1);
        var opt = new Adadelta([x]);
        Assert.That(Run(opt, x, 2, 2), Is.EqualTo(new[] { 1 - d1, 1 - d1 - d2 }).Within(Tol));
        Assert.That(X(x), Is.EqualTo(0.99359330203).Within(1e-10));
        Assert.That(opt.GetState(x)["square_avg"].Item(), Is.EqualTo(0.76).Within(Tol));
    }

    // ---------------- groups, ZeroGrad, closure ----------------

    [Test]
    public void Param_groups_override_the_defaults()
    {
        var a = P(1);
        var b = P(1);
        var opt = new SGD([new ParamGroup([a]), new ParamGroup([b]) { Lr = 0.01, ["momentum"] = 0.5 }], lr: 0.1, momentum: 0.9);
        Assert.That(opt.ParamGroups[0].Lr, Is.EqualTo(0.1));
        Assert.That(opt.ParamGroups[0].Momentum, Is.EqualTo(0.9));
        Assert.That(opt.ParamGroups[1].Lr, Is.EqualTo(0.01));
        Assert.That(opt.ParamGroups[1].Momentum, Is.EqualTo(0.5));
        SetGrad(a, 1); SetGrad(b, 1);
        opt.Step();
        // first step: buffer = g, so a = 1 - 0.1, b = 1 - 0.01
        Assert.That(X(a), Is.EqualTo(0.9).Within(Tol));
        Assert.That(X(b), Is.EqualTo(0.99).Within(Tol));
        SetGrad(a, 1); SetGrad(b, 1);
        opt.Step();
        // a: buf = 0.9 + 1 = 1.9, a = 0.9 - 0.19 = 0.71; b: buf = 0.5 + 1 = 1.5, b = 0.99 - 0.015 = 0.975
        Assert.That(X(a), Is.EqualTo(0.71).Within(Tol));
        Assert.That(X(b), Is.EqualTo(0.975).Within(Tol));
        // changing a group's lr between steps takes effect
        opt.ParamGroups[1].Lr = 0;
        SetGrad(a, 0); SetGrad(b, 1);
        opt.Step();
        Assert.That(X(b), Is.EqualTo(0.975).Within(Tol));
    }

    [Test]
    public void Param_group_from_a_dictionary_and_add_param_group()
    {
        var a = P(1);
        var b = P(1);
        var opt = new Adam([new ParamGroup([a], new Dictionary<string, double> { ["lr"] = 0.5, ["betas.0"] = 0.8 })]);
        Assert.That(opt.ParamGroups[0].Betas, Is.EqualTo((0.8, 0.999)));
        opt.AddParamGroup(new ParamGroup([b]) { Betas = (0.5, 0.9) });
        Assert.That(opt.ParamGroups[1].Lr, Is.EqualTo(1e-3));
        Assert.That(opt.ParamGroups[1].Betas, Is.EqualTo((0.5, 0.9)));
        Assert.That(opt.Parameters, Is.EqualTo(new[] { a, b }));
        var e = Assert.Throws<ArgumentException>(() => opt.AddParamGroup(new ParamGroup([a])));
        Assert.That(e!.Message, Does.Contain("more than one parameter group"));
    }

    [Test]
    public void ZeroGrad_sets_gradients_to_null_or_zero()
    {
        var a = P(1, 2);
        var b = P(3);
        var opt = new SGD([a, b], lr: 0.1);
        SetGrad(a, 1, 1); SetGrad(b, 2);
        opt.ZeroGrad();
        Assert.That(a.Grad, Is.Null);
        Assert.That(b.Grad, Is.Null);
        SetGrad(a, 1, 1);
        opt.ZeroGrad(setToNone: false);
        Assert.That(a.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 0.0, 0.0 }));
        Assert.That(b.Grad, Is.Null);
    }

    [Test]
    public void Step_with_a_closure_returns_the_loss()
    {
        // f(x) = (x - 3)^2 at x = 0: loss 9, grad -6; x = 0 + 0.1*6 = 0.6
        var x = P(0);
        var opt = new SGD([x], lr: 0.1);
        var loss = opt.Step(() => { opt.ZeroGrad(); var l = ((x - 3) * (x - 3)).Sum(); l.Backward(); return l; });
        Assert.That(loss.Item(), Is.EqualTo(9));
        Assert.That(X(x), Is.EqualTo(0.6).Within(Tol));
    }

    // ---------------- validation ----------------

    [Test]
    public void Invalid_hyper_parameters_name_the_optimizer_and_the_argument()
    {
        void Check(TestDelegate build, params string[] parts)
        {
            var e = Assert.Throws<ArgumentException>(build);
            foreach (var p in parts) Assert.That(e!.Message, Does.Contain(p));
        }
        Check(() => new SGD([P(0)], lr: -1), "SGD", "lr", "-1");
        Check(() => new SGD([P(0)], lr: 0.1, nesterov: true), "SGD", "nesterov", "momentum");
        Check(() => new SGD([P(0)], lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true), "SGD", "nesterov", "dampening");
        Check(() => new SGD([P(0)], momentum: -0.5), "SGD", "momentum");
        Check(() => new Adam([P(0)], betas: (1.0, 0.999)), "Adam", "betas[0]", "[0, 1)");
        Check(() => new Adam([P(0)], betas: (0.9, -0.1)), "Adam", "betas[1]");
        Check(() => new AdamW([P(0)], eps: -1), "AdamW", "eps");
        Check(() => new Adamax([P(0)], weightDecay: -1), "Adamax", "weightDecay");
        Check(() => new NAdam([P(0)], momentumDecay: -1), "NAdam", "momentumDecay");
        Check(() => new Adagrad([P(0)], lrDecay: -1), "Adagrad", "lrDecay");
        Check(() => new Adagrad([P(0)], initialAccumulatorValue: -1), "Adagrad", "initialAccumulatorValue");
        Check(() => new RMSprop([P(0)], alpha: -1), "RMSprop", "alpha");
        Check(() => new Adadelta([P(0)], rho: 1.5), "Adadelta", "rho", "[0, 1]");
        Check(() => new Adam([P(0)], lr: double.NaN), "Adam", "lr", "NaN");
        Check(() => new Adam([new ParamGroup([P(0)]) { Lr = -1 }]), "Adam", "lr", "param group 0");
        Check(() => new Adam([new ParamGroup([P(0)]) { Momentum = 0.9 }]), "Adam", "unknown option 'momentum'");
        Check(() => new Adam(Array.Empty<Tensor>()), "Adam", "empty parameter list");
        var x = P(0);
        Check(() => new SGD([x, x]), "SGD", "more than once");
        Check(() => new SGD([new ParamGroup([x]), new ParamGroup([x])]), "more than one parameter group");
        Check(() => new SGD([x * 2]), "SGD", "non-leaf");
        Check(() => new SGD([Tensor.From(new long[] { 1 }, 1)]), "SGD", "Int64");
    }

    [Test]
    public void A_gradient_of_the_wrong_shape_is_reported()
    {
        var x = P(1, 2);
        var opt = new SGD([x]);
        SetGrad(x, 1, 2, 3);
        var e = Assert.Throws<InvalidOperationException>(() => opt.Step());
        Assert.That(e!.Message, Does.Contain("SGD").And.Contain("[3]").And.Contain("[2]"));
    }

    // ---------------- state dict ----------------

    private static readonly Func<IEnumerable<ParamGroup>, Optimizer>[] Builders =
    [
        g => new SGD(g, lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01),
        g => new SGD(g, lr: 0.05, momentum: 0.9, dampening: 0.1),
        g => new Adam(g, lr: 0.05, amsgrad: true, weightDecay: 0.1),
        g => new AdamW(g, lr: 0.05),
        g => new Adamax(g, lr: 0.05),
        g => new NAdam(g, lr: 0.05),
        g => new RMSprop(g, lr: 0.01, momentum: 0.5, centered: true),
        g => new Adagrad(g, lr: 0.1, lrDecay: 0.1),
        g => new Adadelta(g),
    ];

    private static IEnumerable<int> BuilderIndices() => Enumerable.Range(0, Builders.Length);

    private static void Backward(Tensor a, Tensor b)
    {
        // a smooth non-separable loss: sum((a - 1)^2) + (b0 * a0 - 2)^2
        (((a - 1) * (a - 1)).Sum() + (b * a.Slice(0, 0, 1) - 2).Pow(2).Sum()).Backward();
    }

    [TestCaseSource(nameof(BuilderIndices))]
    public void State_dict_round_trip_continues_identically(int builder)
    {
        var a = P(0.5, -1.5, 2);
        var b = P(0.3);
        var opt = Builders[builder]([new ParamGroup([a]), new ParamGroup([b]) { Lr = 0.02 }]);
        for (int i = 0; i < 3; i++) { opt.ZeroGrad(); Backward(a, b); opt.Step(); }
        var saved = opt.StateDict();

        // a fresh optimizer over copies, with other hyper-parameters: loading restores them
        var a2 = P(a.ToDoubleArray());
        var b2 = P(b.ToDoubleArray());
        var opt2 = Builders[builder]([new ParamGroup([a2]) { Lr = 0.5 }, new ParamGroup([b2])]);
        opt2.LoadStateDict(saved);
        Assert.That(opt2.ParamGroups[0].Lr, Is.EqualTo(opt.ParamGroups[0].Lr));
        Assert.That(opt2.ParamGroups[1].Lr, Is.EqualTo(0.02));

        for (int i = 0; i < 3; i++)
        {
            opt.ZeroGrad(); Backward(a, b); opt.Step();
            opt2.ZeroGrad(); Backward(a2, b2); opt2.Step();
        }
        Assert.That(a2.ToDoubleArray(), Is.EqualTo(a.ToDoubleArray()));
        Assert.That(b2.ToDoubleArray(), Is.EqualTo(b.ToDoubleArray()));
        Assert.That(opt2.StateDict().Keys, Is.EquivalentTo(opt.StateDict().Keys));
        // the saved dict is a copy: continuing did not change it
        Assert.That(saved.Keys, Is.EquivalentTo(opt.StateDict().Keys));
    }

    [TestCaseSource(nameof(BuilderIndices))]
    public void Float32_parameters_follow_the_float64_trajectory(int builder)
    {
        var a = P(0.5, -1.5, 2);
        var b = P(0.3);
        var a32 = Tensor.From(new[] { 0.5f, -1.5f, 2f }, 3).RequiresGrad_();
        var b32 = Tensor.From(new[] { 0.3f }, 1).RequiresGrad_();
        var opt = Builders[builder]([new ParamGroup([a]), new ParamGroup([b])]);
        var opt32 = Builders[builder]([new ParamGroup([a32]), new ParamGroup([b32])]);
        for (int i = 0; i < 5; i++)
        {
            opt.ZeroGrad(); Backward(a, b); opt.Step();
            opt32.ZeroGrad(); Backward(a32, b32); opt32.Step();
        }
        Assert.That(a32.DType, Is.EqualTo(DType.Float32));
        Assert.That(a32.ToDoubleArray(), Is.EqualTo(a.ToDoubleArray()).Within(1e-5));
        Assert.That(b32.ToDoubleArray(), Is.EqualTo(b.ToDoubleArray()).Within(1e-5));
        Assert.That(opt32.GetState(a32).Values.Where(t => t.Rank > 0).Select(t => t.DType), Is.All.EqualTo(DType.Float32));
    }

    [Test]
    public void State_dict_keys_follow_pytorch()
    {
        var a = P(1, 2);
        var b = P(3);
        var opt = new Adam([new ParamGroup([a]), new ParamGroup([b]) { Lr = 0.01 }], lr: 0.1, betas: (0.8, 0.99));
        SetGrad(b, 1);
        opt.Step();
        var d = opt.StateDict();
        Assert.That(d.Keys, Is.EquivalentTo(new[]
        {
            "param_groups.0.lr", "param_groups.0.betas.0", "param_groups.0.betas.1", "param_groups.0.eps", "param_groups.0.weight_decay",
            "param_groups.0.amsgrad", "param_groups.0.maximize", "param_groups.0.params",
            "param_groups.1.lr", "param_groups.1.betas.0", "param_groups.1.betas.1", "param_groups.1.eps", "param_groups.1.weight_decay",
            "param_groups.1.amsgrad", "param_groups.1.maximize", "param_groups.1.params",
            "state.1.step", "state.1.exp_avg", "state.1.exp_avg_sq",     // b is parameter 1; a never had a gradient
        }));
        Assert.That(d["param_groups.1.lr"].Item(), Is.EqualTo(0.01));
        Assert.That(d["param_groups.0.betas.0"].Item(), Is.EqualTo(0.8));
        Assert.That(d["param_groups.0.betas.0"].DType, Is.EqualTo(DType.Float64));
        Assert.That(d["param_groups.0.betas.0"].Shape, Is.Empty);
        Assert.That(d["param_groups.1.params"].ToDoubleArray(), Is.EqualTo(new[] { 1.0 }));
        Assert.That(d["state.1.step"].Item(), Is.EqualTo(1));
        Assert.That(d["state.1.exp_avg"].Item(), Is.EqualTo(0.2).Within(Tol));   // (1 - 0.8) * 1
    }

    [Test]
    public void Load_state_dict_names_missing_unexpected_and_mismatched_keys()
    {
        var a = P(1, 2);
        var opt = new Adam([a], lr: 0.1);
        SetGrad(a, 1, 1);
        opt.Step();
        var good = opt.StateDict();

        var missing = new Dictionary<string, Tensor>(good);
        missing.Remove("state.0.exp_avg_sq");
        missing.Remove("param_groups.0.eps");
        var e = Assert.Throws<ArgumentException>(() => new Adam([P(0, 0)]).LoadStateDict(missing));
        Assert.That(e!.Message, Does.Contain("missing keys").And.Contain("state.0.exp_avg_sq").And.Contain("param_groups.0.eps"));

        var extra = new Dictionary<string, Tensor>(good) { ["state.0.momentum_buffer"] = Tensor.Zeros([2], DType.Float64), ["state.5.step"] = Tensor.Scalar(1, DType.Float64), ["foo"] = Tensor.Scalar(1) };
        e = Assert.Throws<ArgumentException>(() => new Adam([P(0, 0)]).LoadStateDict(extra));
        Assert.That(e!.Message, Does.Contain("unexpected keys").And.Contain("state.0.momentum_buffer").And.Contain("state.5.step").And.Contain("foo"));

        var shape = new Dictionary<string, Tensor>(good) { ["state.0.exp_avg"] = Tensor.Zeros([3], DType.Float64) };
        var fresh = new Adam([P(0, 0)], lr: 0.7);
        e = Assert.Throws<ArgumentException>(() => fresh.LoadStateDict(shape));
        Assert.That(e!.Message, Does.Contain("shape mismatch for state.0.exp_avg").And.Contain("[2]").And.Contain("[3]"));
        Assert.That(fresh.ParamGroups[0].Lr, Is.EqualTo(0.7));   // nothing was loaded

        // a group of two parameters cannot take the state of a group of one
        e = Assert.Throws<ArgumentException>(() => new Adam([P(0, 0), P(0)]).LoadStateDict(good));
        Assert.That(e!.Message, Does.Contain("param_groups.0.params").And.Contain("2 parameters"));
        // nor can a second group that the saved optimizer did not have
        e = Assert.Throws<ArgumentException>(() => new Adam([new ParamGroup([P(0, 0)]), new ParamGroup([P(0)])]).LoadStateDict(good));
        Assert.That(e!.Message, Does.Contain("missing keys").And.Contain("param_groups.1.lr"));

        // amsgrad switched on in the dict requires max_exp_avg_sq
        var ams = new Dictionary<string, Tensor>(good) { ["param_groups.0.amsgrad"] = Tensor.Scalar(1, DType.Float64) };
        e = Assert.Throws<ArgumentException>(() => new Adam([P(0, 0)]).LoadStateDict(ams));
        Assert.That(e!.Message, Does.Contain("state.0.max_exp_avg_sq"));
    }

    // ---------------- schedulers ----------------

    private static (SGD opt, Tensor x) Sgd(double lr, double momentum = 0)
    {
        var x = P(1);
        return (new SGD([x], lr: lr, momentum: momentum), x);
    }

    /// <summary>The learning rate at epochs 0..n-1 (the scheduler is stepped after an optimizer step, as in PyTorch).</summary>
    private static double[] Lrs(Optimizer opt, LRScheduler s, int n)
    {
        var lrs = new List<double> { opt.ParamGroups[0].Lr };
        Assert.That(s.GetLastLr()[0], Is.EqualTo(lrs[0]));
        for (int i = 1; i < n; i++)
        {
            opt.Step();
            s.Step();
            lrs.Add(opt.ParamGroups[0].Lr);
            Assert.That(s.GetLastLr()[0], Is.EqualTo(lrs[^1]));
        }
        return [.. lrs];
    }

    [Test]
    public void StepLR_sequence()
    {
        // base 1, gamma 0.1 every 2 epochs: 1, 1, 0.1, 0.1, 0.01, 0.01
        var (opt, _) = Sgd(1);
        var s = new StepLR(opt, stepSize: 2, gamma: 0.1);
        Assert.That(Lrs(opt, s, 6), Is.EqualTo(new[] { 1, 1, 0.1, 0.1, 0.01, 0.01 }).Within(Tol));
        Assert.That(opt.ParamGroups[0].InitialLr, Is.EqualTo(1));
        Assert.That(s.LastEpoch, Is.EqualTo(5));
    }

    [Test]
    public void MultiStepLR_sequence()
    {
        // milestones 2 and 5, gamma 0.5: 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25
        var (opt, _) = Sgd(1);
        Assert.That(Lrs(opt, new MultiStepLR(opt, [2, 5], 0.5), 7), Is.EqualTo(new[] { 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25 }).Within(Tol));
        // a repeated milestone applies gamma twice: 1, 0.25, 0.25
        var (opt2, _) = Sgd(1);
        Assert.That(Lrs(opt2, new MultiStepLR(opt2, [1, 1], 0.5), 3), Is.EqualTo(new[] { 1, 0.25, 0.25 }).Within(Tol));
    }

    [Test]
    public void ExponentialLR_sequence()
    {
        var (opt, _) = Sgd(1);
        Assert.That(Lrs(opt, new ExponentialLR(opt, 0.5), 4), Is.EqualTo(new[] { 1, 0.5, 0.25, 0.125 }).Within(Tol));
    }

    [Test]
    public void CosineAnnealingLR_matches_the_closed_form()
    {
        // eta_min + (base - eta_min)(1 + cos(pi t/T))/2 with base 1, eta_min 0.1, T 4:
        // t=0: 1; t=1: 0.1 + 0.9*(1 + 0.7071068)/2 = 0.8681981; t=2: 0.55; t=3: 0.2318019; t=4: 0.1;
        // past T_max the cosine goes on: t=5: 0.2318019, t=6: 0.55, t=8: 1
        var (opt, _) = Sgd(1);
        var expected = Enumerable.Range(0, 9).Select(t => 0.1 + 0.9 * (1 + Math.Cos(Math.PI * t / 4)) / 2).ToArray();
        Assert.That(Lrs(opt, new CosineAnnealingLR(opt, tMax: 4, etaMin: 0.1), 9), Is.EqualTo(expected).Within(1e-12));
        Assert.That(expected[1], Is.EqualTo(0.8681980515).Within(1e-9));
    }

    [Test]
    public void LinearLR_warm_up()
    {
        // base 0.1, factor from 0.5 to 1 over 4 epochs: 0.5, 0.625, 0.75, 0.875, 1, 1 -> 0.05, 0.0625, 0.075, 0.0875, 0.1, 0.1
        var (opt, _) = Sgd(0.1);
        Assert.That(Lrs(opt, new LinearLR(opt, startFactor: 0.5, endFactor: 1, totalIters: 4), 6),
            Is.EqualTo(new[] { 0.05, 0.0625, 0.075, 0.0875, 0.1, 0.1 }).Within(Tol));
        // PyTorch defaults: start 1/3, end 1, 5 iterations
        var (opt2, _) = Sgd(0.3);
        var lin = new LinearLR(opt2);
        Assert.That(lin.StartFactor, Is.EqualTo(1.0 / 3));
        Assert.That(Lrs(opt2, lin, 7), Is.EqualTo(new[] { 0.1, 0.14, 0.18, 0.22, 0.26, 0.3, 0.3 }).Within(Tol));   // 0.3*(1/3 + (2/3)t/5)
    }

    [Test]
    public void Chained_schedulers_multiply()
    {
        // LinearLR warm-up (0.5 -> 1 over 2 epochs) and ExponentialLR(0.5) on the same optimizer, base 1:
        // epoch 0: 1*0.5 = 0.5 (the exponential's initial step keeps it); epoch 1: 0.5 * (0.75/0.5) * 0.5 = 0.375;
        // epoch 2: 0.375 * (1/0.75) * 0.5 = 0.25; epoch 3: 0.25 * 0.5 = 0.125
        var (opt, _) = Sgd(1);
        var warm = new LinearLR(opt, 0.5, 1, 2);
        var decay = new ExponentialLR(opt, 0.5);
        var lrs = new List<double> { opt.ParamGroups[0].Lr };
        for (int i = 0; i < 3; i++) { opt.Step(); warm.Step(); decay.Step(); lrs.Add(opt.ParamGroups[0].Lr); }
        Assert.That(lrs, Is.EqualTo(new[] { 0.5, 0.375, 0.25, 0.125 }).Within(Tol));
        Assert.That(decay.BaseLrs[0], Is.EqualTo(1));   // both use the shared initial_lr
    }

    [Test]
    public void OneCycleLR_cosine_and_momentum()
    {
        // max_lr 1, 10 steps, pct_start 0.3: initial = 1/25 = 0.04, min = 0.04/1e4 = 4e-6
        // phase 1 ends at step 0.3*10 - 1 = 2: lr = 1 + (0.04 - 1)/2 * (1 + cos(pi s/2)) -> 0.04, 0.52, 1
        // phase 2 steps 2..9: lr = 4e-6 + (1 - 4e-6)/2 * (1 + cos(pi (s-2)/7)); step 9 = 4e-6
        // momentum: 0.95 -> 0.85 over phase 1 (0.95, 0.9, 0.85), back to 0.95 over phase 2
        var (opt, _) = Sgd(0.1, momentum: 0.9);
        var s = new OneCycleLR(opt, maxLr: 1, totalSteps: 10);
        var expected = new List<double> { 0.04, 0.52, 1 };
        expected.AddRange(Enumerable.Range(3, 7).Select(k => 4e-6 + (1 - 4e-6) / 2 * (1 + Math.Cos(Math.PI * (k - 2) / 7))));
        var momenta = new List<double> { opt.ParamGroups[0].Momentum };
        var lrs = new List<double> { opt.ParamGroups[0].Lr };
        for (int i = 1; i < 10; i++) { opt.Step(); s.Step(); lrs.Add(opt.ParamGroups[0].Lr); momenta.Add(opt.ParamGroups[0].Momentum); }
        Assert.That(lrs, Is.EqualTo(expected).Within(Tol));
        Assert.That(lrs[9], Is.EqualTo(4e-6).Within(1e-15));
        Assert.That(momenta.Take(3), Is.EqualTo(new[] { 0.95, 0.9, 0.85 }).Within(Tol));
        Assert.That(momenta[9], Is.EqualTo(0.95).Within(Tol));
        // momentum at step 5: 0.95 + (0.85 - 0.95)/2 * (1 + cos(pi 3/7))
        Assert.That(momenta[5], Is.EqualTo(0.95 - 0.05 * (1 + Math.Cos(Math.PI * 3 / 7))).Within(Tol));
        s.Step();                                                          // step 10 is allowed (PyTorch checks step > total)
        var e = Assert.Throws<InvalidOperationException>(() => s.Step());
        Assert.That(e!.Message, Does.Contain("OneCycleLR").And.Contain("10"));
    }

    [Test]
    public void OneCycleLR_three_phase_linear_and_betas()
    {
        // three phases over 10 steps: up to step 2, down to initial at 2*3 - 2 = 4, then to min at 9; linear annealing
        // 0.04, 0.52, 1, 0.52, 0.04, then 0.04 + (4e-6 - 0.04)(s - 4)/5
        var x = P(1);
        var opt = new Adam([x], lr: 0.1);
        var s = new OneCycleLR(opt, maxLr: 1, totalSteps: 10, annealStrategy: "linear", threePhase: true);
        var lrs = new List<double> { opt.ParamGroups[0].Lr };
        var beta1 = new List<double> { opt.ParamGroups[0].Betas.Beta1 };
        for (int i = 1; i < 10; i++) { opt.Step(); s.Step(); lrs.Add(opt.ParamGroups[0].Lr); beta1.Add(opt.ParamGroups[0].Betas.Beta1); }
        var expected = new[] { 0.04, 0.52, 1, 0.52, 0.04 }.Concat(Enumerable.Range(5, 5).Select(k => 0.04 + (4e-6 - 0.04) * (k - 4) / 5));
        Assert.That(lrs, Is.EqualTo(expected).Within(Tol));
        // beta1 cycles: 0.95, 0.9, 0.85, 0.9, 0.95, then stays 0.95; beta2 untouched
        Assert.That(beta1, Is.EqualTo(new[] { 0.95, 0.9, 0.85, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95 }).Within(Tol));
        Assert.That(opt.ParamGroups[0].Betas.Beta2, Is.EqualTo(0.999));
        Assert.Throws<ArgumentException>(() => new OneCycleLR(new Adagrad([P(0)]), 1, totalSteps: 10));
        Assert.That(new OneCycleLR(new Adagrad([P(0)]), 1, epochs: 2, stepsPerEpoch: 5, cycleMomentum: false).TotalSteps, Is.EqualTo(10));
    }

    [Test]
    public void Scheduler_state_dict_round_trip()
    {
        var (opt, _) = Sgd(1);
        var s = new CosineAnnealingLR(opt, 6, 0.01);
        for (int i = 0; i < 3; i++) { opt.Step(); s.Step(); }
        var optState = opt.StateDict();
        var schedState = s.StateDict();
        Assert.That(schedState["last_epoch"].Item(), Is.EqualTo(3));

        var (opt2, _) = Sgd(5);
        var s2 = new CosineAnnealingLR(opt2, 6, 0.01);
        opt2.LoadStateDict(optState);
        s2.LoadStateDict(schedState);
        Assert.That(s2.LastEpoch, Is.EqualTo(3));
        Assert.That(s2.BaseLrs[0], Is.EqualTo(1));
        for (int i = 0; i < 4; i++)
        {
            opt.Step(); s.Step(); opt2.Step(); s2.Step();
            Assert.That(opt2.ParamGroups[0].Lr, Is.EqualTo(opt.ParamGroups[0].Lr));
        }
        var bad = new Dictionary<string, Tensor>(schedState);
        bad.Remove("last_epoch");
        bad["gamma"] = Tensor.Scalar(1, DType.Float64);
        var e = Assert.Throws<ArgumentException>(() => s2.LoadStateDict(bad));
        Assert.That(e!.Message, Does.Contain("missing keys: last_epoch").And.Contain("unexpected keys: gamma"));
    }

    [Test]
    public void Schedulers_validate_their_arguments()
    {
        var (opt, _) = Sgd(1);
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => new StepLR(opt, 0))!.Message, Does.Contain("StepLR").And.Contain("stepSize"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => new LinearLR(opt, startFactor: 0))!.Message, Does.Contain("startFactor"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => new CosineAnnealingLR(opt, 0))!.Message, Does.Contain("tMax"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => new ReduceLROnPlateau(opt, factor: 1))!.Message, Does.Contain("factor"));
        Assert.That(Assert.Throws<ArgumentException>(() => new ReduceLROnPlateau(opt, mode: "lowest"))!.Message, Does.Contain("mode"));
        Assert.That(Assert.Throws<ArgumentException>(() => new OneCycleLR(opt, 1))!.Message, Does.Contain("totalSteps"));
        Assert.That(Assert.Throws<ArgumentException>(() => new OneCycleLR(opt, 1, totalSteps: 10, annealStrategy: "exp"))!.Message, Does.Contain("annealStrategy"));
    }

    [Test]
    public void ReduceLROnPlateau_waits_for_patience()
    {
        // patience 2, factor 0.5, rel threshold 1e-4: metrics 10 (best), 9 (best), then 9 again is not < 9*(1 - 1e-4) = 8.9991:
        // bad epochs 1, 2, 3 > 2 -> lr 0.5 and the count restarts; three more bad epochs -> 0.25
        var (opt, _) = Sgd(1);
        var s = new ReduceLROnPlateau(opt, patience: 2, factor: 0.5);
        var lrs = new[] { 10, 9, 9, 9, 9, 9, 9, 9.0 }.Select(m => { s.Step(m); return opt.ParamGroups[0].Lr; }).ToArray();
        Assert.That(lrs, Is.EqualTo(new[] { 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25 }));
        Assert.That(s.Best, Is.EqualTo(9));
        Assert.That(s.GetLastLr()[0], Is.EqualTo(0.25));
        // 8.9995 is within the relative threshold of 9 (8.9991): not an improvement
        Assert.That(s.IsBetter(8.9995, 9), Is.False);
        Assert.That(s.IsBetter(8.999, 9), Is.True);
    }

    [Test]
    public void ReduceLROnPlateau_cooldown_min_lr_and_max_mode()
    {
        // cooldown 1: after the reduction at epoch 4 the next bad epoch is not counted, so the next reduction comes at epoch 8
        var (opt, _) = Sgd(1);
        var s = new ReduceLROnPlateau(opt, patience: 2, factor: 0.5, cooldown: 1);
        var lrs = new[] { 10, 9, 9, 9, 9, 9, 9, 9, 9, 9.0 }.Select(m => { s.Step(m); return opt.ParamGroups[0].Lr; }).ToArray();
        Assert.That(lrs, Is.EqualTo(new[] { 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25 }));

        // min_lr 0.3 bounds the reduction: 1 -> 0.5 -> max(0.25, 0.3) = 0.3 -> stays 0.3
        var (opt2, _) = Sgd(1);
        var s2 = new ReduceLROnPlateau(opt2, patience: 0, factor: 0.5, minLr: 0.3);
        var lrs2 = new[] { 1, 1, 1, 1.0 }.Select(m => { s2.Step(m); return opt2.ParamGroups[0].Lr; }).ToArray();
        Assert.That(lrs2, Is.EqualTo(new[] { 1, 0.5, 0.3, 0.3 }));

        // max mode with an absolute threshold of 0.1: 0.5 (best), 0.55 (not > 0.6), 0.65 (best) -> patience 1 reduces at the 2nd bad epoch
        var (opt3, _) = Sgd(1);
        var s3 = new ReduceLROnPlateau(opt3, mode: "max", patience: 1, factor: 0.1, threshold: 0.1, thresholdMode: "abs");
        var lrs3 = new[] { 0.5, 0.55, 0.65, 0.6, 0.6 }.Select(m => { s3.Step(m); return opt3.ParamGroups[0].Lr; }).ToArray();
        Assert.That(lrs3, Is.EqualTo(new[] { 1, 1, 1, 1, 0.1 }).Within(Tol));
        Assert.That(s3.Best, Is.EqualTo(0.65));

        var saved = s3.StateDict();
        var s4 = new ReduceLROnPlateau(opt3, mode: "max", patience: 1, factor: 0.1, threshold: 0.1, thresholdMode: "abs");
        s4.LoadStateDict(saved);
        Assert.That(s4.Best, Is.EqualTo(0.65));
        Assert.That(s4.LastEpoch, Is.EqualTo(5));
    }

    // ---------------- gradient clipping ----------------

    [Test]
    public void ClipGradNorm_scales_to_max_norm()
    {
        // grads [3, 4]: norm 5; scale 1/(5 + 1e-6); [0.6, 0.8] up to the 1e-6 term
        var a = P(0, 0);
        SetGrad(a, 3, 4);
        double total = GradClip.ClipGradNorm([a], maxNorm: 1);
        Assert.That(total, Is.EqualTo(5));
        Assert.That(a.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 3 / (5 + 1e-6), 4 / (5 + 1e-6) }).Within(Tol));
        Assert.That(a.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 0.6, 0.8 }).Within(1e-6));

        // the norm runs over all parameters together: [3] and [4] -> 5; a parameter without a gradient is skipped
        var b = P(0); var c = P(0); var d = P(0);
        SetGrad(b, 3); SetGrad(c, -4);
        Assert.That(GradClip.ClipGradNorm([b, c, d], 2.5), Is.EqualTo(5));
        Assert.That(b.Grad!.Item(), Is.EqualTo(3 * 2.5 / (5 + 1e-6)).Within(Tol));
        Assert.That(c.Grad!.Item(), Is.EqualTo(-4 * 2.5 / (5 + 1e-6)).Within(Tol));
        Assert.That(d.Grad, Is.Null);
    }

    [Test]
    public void ClipGradNorm_other_orders_and_small_gradients()
    {
        // inf-norm of [3, -4] is 4: scale 2/(4 + 1e-6)
        var a = P(0, 0);
        SetGrad(a, 3, -4);
        Assert.That(GradClip.ClipGradNorm([a], 2, double.PositiveInfinity), Is.EqualTo(4));
        Assert.That(a.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 6 / (4 + 1e-6), -8 / (4 + 1e-6) }).Within(Tol));
        // 1-norm: 3 + 4 = 7
        SetGrad(a, 3, -4);
        Assert.That(GradClip.ClipGradNorm([a], 100, 1), Is.EqualTo(7));
        Assert.That(a.Grad!.ToDoubleArray(), Is.EqualTo(new[] { 3.0, -4.0 }));   // 100/(7 + 1e-6) > 1: clamped to 1, unchanged
        // 3-norm: (27 + 64)^(1/3)
        SetGrad(a, 3, -4);
        Assert.That(GradClip.ClipGradNorm([a], 100, 3), Is.EqualTo(Math.Pow(91, 1.0 / 3)).Within(Tol));
        // no gradients: 0
        Assert.That(GradClip.ClipGradNorm([P(1)], 1), Is.EqualTo(0));
        SetGrad(a, double.NaN, 1);
        Assert.Throws<InvalidOperationException>(() => GradClip.ClipGradNorm([a], 1, errorIfNonfinite: true));
        SetGrad(a, 1, double.NaN);
        Assert.That(GradClip.ClipGradNorm([a], 1, double.PositiveInfinity), Is.NaN);
    }

    [Test]
    public void ClipGradValue_clamps_each_element()
    {
        var a = P(0, 0, 0);
        SetGrad(a, -3, 0.5, 2);
        GradClip.ClipGradValue([a], 1);
        Assert.That(a.Grad!.ToDoubleArray(), Is.EqualTo(new[] { -1, 0.5, 1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => GradClip.ClipGradValue([a], -1));
    }

    // ---------------- early stopping ----------------

    [Test]
    public void EarlyStopping_stops_after_patience_bad_epochs()
    {
        int improvements = 0;
        var stop = new EarlyStopping(patience: 2) { OnImprovement = () => improvements++ };
        // 5 (best, epoch 0), 4 (best, epoch 1), 4.5 (bad 1), 4.2 (bad 2 = patience -> stop)
        Assert.That(stop.Step(5), Is.False);
        Assert.That(stop.IsImprovement, Is.True);
        Assert.That(stop.Step(4), Is.False);
        Assert.That(stop.Step(4.5), Is.False);
        Assert.That(stop.IsImprovement, Is.False);
        Assert.That(stop.Step(4.2), Is.True);
        Assert.That(stop.BestScore, Is.EqualTo(4));
        Assert.That(stop.BestEpoch, Is.EqualTo(1));
        Assert.That(improvements, Is.EqualTo(2));
        // an improvement resets the count
        Assert.That(stop.Step(3.9), Is.False);
        Assert.That(stop.BestEpoch, Is.EqualTo(4));
        Assert.That(stop.NumBadEpochs, Is.EqualTo(0));
        Assert.That(improvements, Is.EqualTo(3));
    }

    [Test]
    public void EarlyStopping_min_delta_and_max_mode()
    {
        // min_delta 0.1: 1.0 (best), 0.95 is not < 1.0 - 0.1, 0.85 is
        var stop = new EarlyStopping(patience: 3, minDelta: 0.1);
        stop.Step(1.0);
        stop.Step(0.95);
        Assert.That(stop.IsImprovement, Is.False);
        stop.Step(0.85);
        Assert.That(stop.IsImprovement, Is.True);
        Assert.That(stop.BestScore, Is.EqualTo(0.85));

        // max mode, patience 1: 0.7, 0.8 (best, epoch 1), 0.75 -> stop
        var acc = new EarlyStopping(patience: 1, mode: "max");
        Assert.That(new[] { 0.7, 0.8, 0.75 }.Select(acc.Step), Is.EqualTo(new[] { false, false, true }));
        Assert.That(acc.BestScore, Is.EqualTo(0.8));
        Assert.That(acc.BestEpoch, Is.EqualTo(1));
        // NaN never improves
        var nan = new EarlyStopping(patience: 1);
        Assert.That(nan.Step(double.NaN), Is.True);
        Assert.Throws<ArgumentException>(() => new EarlyStopping(mode: "lowest"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new EarlyStopping(minDelta: -1));
    }

    // ---------------- convergence ----------------

    private static IEnumerable<TestCaseData> ConvergenceCases()
    {
        yield return new TestCaseData((Func<Tensor, Optimizer>)(w => new SGD([w], lr: 0.05)), 500, 1e-6).SetArgDisplayNames("SGD");
        yield return new TestCaseData((Func<Tensor, Optimizer>)(w => new SGD([w], lr: 0.02, momentum: 0.9, nesterov: true)), 300, 1e-6).SetArgDisplayNames("SGD-nesterov");
        yield return new TestCaseData((Func<Tensor, Optimizer>)(w => new Adam([w], lr: 0.05)), 1000, 1e-4).SetArgDisplayNames("Adam");
        yield return new TestCaseData((Func<Tensor, Optimizer>)(w => new Adam([w], lr: 0.05, amsgrad: true)), 1000, 1e-4).SetArgDisplayNames("Adam-amsgrad");
        yield return new TestCaseData((Func<Tensor, Optimizer>)(w => new AdamW([w], lr: 0.05, weightDecay: 0)), 1000, 1e-4).SetArgDisplayNames("AdamW");
        yield return new TestCaseData((Func<Tensor, Optimizer>)(w => new Adamax([w], lr: 0.05)), 1000, 1e-4).SetArgDisplayNames("Adamax");
        yield return new TestCaseData((Func<Tensor, Optimizer>)(w => new NAdam([w], lr: 0.05)), 1000, 1e-4).SetArgDisplayNames("NAdam");
        yield return new TestCaseData((Func<Tensor, Optimizer>)(w => new RMSprop([w], lr: 0.01, centered: true, momentum: 0.5)), 1000, 1e-3).SetArgDisplayNames("RMSprop");
        yield return new TestCaseData((Func<Tensor, Optimizer>)(w => new Adagrad([w], lr: 0.5)), 1000, 1e-4).SetArgDisplayNames("Adagrad");
        yield return new TestCaseData((Func<Tensor, Optimizer>)(w => new Adadelta([w], lr: 0.5, eps: 1e-4)), 5000, 1e-4).SetArgDisplayNames("Adadelta");
    }

    [TestCaseSource(nameof(ConvergenceCases))]
    public void Every_optimizer_solves_a_least_squares_problem(Func<Tensor, Optimizer> build, int steps, double tolerance)
    {
        // y = X w* with w* = [1, -2, 0.5]; minimize mean((X w - y)^2) from w = 0
        var xs = Tensor.From(new[] { 1.0, 0.5, -1, 0.2, 1, 0.3, -0.5, 0.8, 1, 1, -1, 0.5, 0.3, 0.2, 2, -1, 0.4, 0.1 }, 6, 3);
        var wStar = Tensor.From(new[] { 1.0, -2, 0.5 }, 3);
        var y = Functional.MatMul(xs, wStar);
        var w = Tensor.Zeros([3], DType.Float64).RequiresGrad_();
        var opt = build(w);
        for (int i = 0; i < steps; i++)
        {
            opt.ZeroGrad();
            Functional.MseLoss(Functional.MatMul(xs, w), y).Backward();
            opt.Step();
        }
        Assert.That(w.ToDoubleArray(), Is.EqualTo(wStar.ToDoubleArray()).Within(tolerance), opt.Name);
    }
}
