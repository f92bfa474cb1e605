#!/usr/bin/env python3
"""Generates torch_reference.json: PyTorch (float64) reference values for Tests/TorchReferenceTests.cs.

Every case stores its op name, hyper-parameters, input tensors (shape + flat values, generated here from a
fixed seed and stored, so the C# side never needs PyTorch's RNG), the output, a random weight tensor w of the
output's shape, and the gradients of sum(output * w) with respect to every differentiable input.

How to run it (PyTorch must NOT be installed system-wide; Debian bookworm ships 1.13.1 as python3-torch).
Everything is extracted into a scratch folder with apt-get download + dpkg -x, as root or not:

    mkdir -p /tmp/torch/debs && cd /tmp/torch/debs
    apt-get update
    # python3-torch and every package it would pull in (list from a dry run of the resolver):
    apt-get install -s --no-install-recommends python3-torch | awk '/^Inst/{print $2}' | xargs apt-get download
    for f in *.deb; do dpkg -x "$f" /tmp/torch/root; done

    cd /work/main/Tests/Reference      # (this folder)
    LD_LIBRARY_PATH=/tmp/torch/root/usr/lib/x86_64-linux-gnu:/tmp/torch/root/usr/lib:/tmp/torch/root/lib/x86_64-linux-gnu \
    PYTHONPATH=/tmp/torch/root/usr/lib/python3/dist-packages \
    /usr/bin/python3 make_reference.py

Use Debian's /usr/bin/python3 (3.11, the ABI of the python3-torch package), not another python3 on PATH.
The resolver list above assumes the usual base packages (libblas3, liblapack3, libopenblas0, python3.11)
are already installed on the machine; if `import torch` then still reports a missing libX.so, apt-get download
the package that ships it and dpkg -x it into the same folder.

Non-finite numbers are written as the strings "nan", "inf" and "-inf" (plain JSON has no NaN).
"""

import json
import math
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
GEN = torch.Generator().manual_seed(20240607)


def randn(*shape, scale=1.0):
    return torch.randn(tuple(shape), generator=GEN, dtype=torch.float64) * scale


def rand(*shape, lo=0.0, hi=1.0):
    return torch.rand(tuple(shape), generator=GEN, dtype=torch.float64) * (hi - lo) + lo


def randint(lo, hi, *shape):
    return torch.randint(lo, hi, tuple(shape), generator=GEN, dtype=torch.int64)


def enc_value(v):
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    return v


def enc(t):
    t = t.detach()
    if t.dtype == torch.int64:
        return {"dtype": "int64", "shape": list(t.shape), "data": [int(v) for v in t.reshape(-1).tolist()]}
    t = t.to(torch.float64)
    return {"dtype": "float64", "shape": list(t.shape), "data": [enc_value(float(v)) for v in t.reshape(-1).tolist()]}


# ---------------------------------------------------------------------------------------------------------
# The ops. Each takes the dict of input tensors and the dict of hyper-parameters (PyTorch's argument names)
# and returns the output tensor (and, for the *_with_indices ops, a dict of extra non-differentiable outputs).

def conv(fn):
    return lambda T, p: fn(T["input"], T["weight"], T.get("bias"), **p)


def conv_t(fn):
    return lambda T, p: fn(T["input"], T["weight"], T.get("bias"), **p)


def pool_with_indices(fn):
    def run(T, p):
        y, idx = fn(T["input"], return_indices=True, **p)
        return y, {"indices": idx}
    return run


def unary(fn):
    return lambda T, p: fn(T["input"], **p)


def loss2(fn):
    return lambda T, p: fn(T["input"], T["target"], **p)


def loss_w(fn):
    return lambda T, p: fn(T["input"], T["target"], weight=T.get("weight"), **p)


def var_std(fn):
    def run(T, p):
        p = dict(p)
        if "dim" in p:
            return fn(T["input"], p.pop("dim"), **p)
        return fn(T["input"], **p)
    return run


OPS = {
    "conv1d": conv(F.conv1d), "conv2d": conv(F.conv2d), "conv3d": conv(F.conv3d),
    "conv_transpose1d": conv_t(F.conv_transpose1d), "conv_transpose2d": conv_t(F.conv_transpose2d),
    "conv_transpose3d": conv_t(F.conv_transpose3d),
    "max_pool1d": unary(F.max_pool1d), "max_pool2d": unary(F.max_pool2d), "max_pool3d": unary(F.max_pool3d),
    "max_pool1d_with_indices": pool_with_indices(F.max_pool1d),
    "max_pool2d_with_indices": pool_with_indices(F.max_pool2d),
    "max_pool3d_with_indices": pool_with_indices(F.max_pool3d),
    "avg_pool1d": unary(F.avg_pool1d), "avg_pool2d": unary(F.avg_pool2d), "avg_pool3d": unary(F.avg_pool3d),
    "adaptive_avg_pool1d": unary(F.adaptive_avg_pool1d), "adaptive_avg_pool2d": unary(F.adaptive_avg_pool2d),
    "adaptive_max_pool2d": unary(F.adaptive_max_pool2d),
    "max_unpool2d": lambda T, p: F.max_unpool2d(T["input"], T["indices"], **p),
    "sigmoid": unary(torch.sigmoid), "tanh": unary(torch.tanh), "relu": unary(F.relu),
    "leaky_relu": unary(F.leaky_relu), "elu": unary(F.elu), "selu": unary(F.selu), "gelu": unary(F.gelu),
    "silu": unary(F.silu), "softplus": unary(F.softplus), "hardsigmoid": unary(F.hardsigmoid),
    "hardswish": unary(F.hardswish), "mish": unary(F.mish), "softmax": unary(F.softmax),
    "log_softmax": unary(F.log_softmax),
    "mse_loss": loss2(F.mse_loss), "l1_loss": loss2(F.l1_loss), "smooth_l1_loss": loss2(F.smooth_l1_loss),
    "binary_cross_entropy": loss_w(F.binary_cross_entropy),
    "binary_cross_entropy_with_logits": lambda T, p: F.binary_cross_entropy_with_logits(
        T["input"], T["target"], weight=T.get("weight"), pos_weight=T.get("pos_weight"), **p),
    "cross_entropy": loss_w(F.cross_entropy), "nll_loss": loss_w(F.nll_loss),
    "var": var_std(torch.var), "std": var_std(torch.std),
    "logsumexp": lambda T, p: torch.logsumexp(T["input"], **p),
    "matmul": lambda T, p: torch.matmul(T["input"], T["other"]),
}

CASES = []
COUNTS = {}


def case(op, params=None, grad=None, **inputs):
    """Adds a case. `grad` names the differentiable inputs (default: every float input)."""
    params = params or {}
    if grad is None:
        grad = [k for k, v in inputs.items() if v.dtype == torch.float64]
    T = {k: (v.clone().requires_grad_(k in grad) if v.dtype == torch.float64 else v.clone()) for k, v in inputs.items()}
    res = OPS[op](T, params)
    out, extra = (res if isinstance(res, tuple) else (res, {}))
    w = randn(*out.shape)
    grads = {}
    if grad:
        diff = [T[k] for k in grad]
        gs = torch.autograd.grad((out * w).sum(), diff, allow_unused=True)
        grads = {k: enc(g if g is not None else torch.zeros_like(T[k])) for k, g in zip(grad, gs)}
    idx = COUNTS.get(op, 0)
    COUNTS[op] = idx + 1
    CASES.append({
        "name": f"{op}_{idx}",
        "op": op,
        "params": params,
        "inputs": {k: enc(v) for k, v in inputs.items()},
        "grad_inputs": list(grad),
        "output": enc(out),
        "extra_outputs": {k: enc(v) for k, v in extra.items()},
        "w": enc(w),
        "grads": grads,
    })


# ---------------------------------------------------------------------------------------------------------
# Convolutions.

case("conv1d", {}, input=randn(2, 3, 7), weight=randn(4, 3, 3), bias=randn(4))
case("conv1d", {"stride": 2, "padding": 1}, input=randn(2, 3, 8), weight=randn(4, 3, 3))
case("conv1d", {"padding": 2, "dilation": 2}, input=randn(1, 2, 9), weight=randn(3, 2, 3), bias=randn(3))
case("conv1d", {"padding": "same"}, input=randn(2, 2, 6), weight=randn(3, 2, 4), bias=randn(3))
case("conv1d", {"padding": "same", "dilation": 3}, input=randn(1, 2, 10), weight=randn(2, 2, 2))
case("conv1d", {"padding": "valid", "stride": 3}, input=randn(2, 2, 11), weight=randn(2, 2, 3), bias=randn(2))
case("conv1d", {"groups": 3}, input=randn(2, 6, 5), weight=randn(6, 2, 2), bias=randn(6))
case("conv1d", {"groups": 4, "padding": 1}, input=randn(1, 4, 6), weight=randn(8, 1, 3))  # depthwise, multiplier 2
case("conv1d", {"stride": 2, "padding": 1}, input=randn(3, 6), weight=randn(2, 3, 3), bias=randn(2))  # unbatched
case("conv1d", {"padding": 3}, input=randn(1, 1, 4), weight=randn(1, 1, 3))  # padding > kernel/2

case("conv2d", {}, input=randn(2, 3, 5, 5), weight=randn(4, 3, 3, 3), bias=randn(4))
case("conv2d", {"stride": [2, 1], "padding": [1, 2], "dilation": [1, 2]}, input=randn(2, 2, 6, 7), weight=randn(3, 2, 3, 2))
case("conv2d", {"padding": "same", "dilation": [2, 1]}, input=randn(1, 2, 6, 5), weight=randn(3, 2, 2, 3), bias=randn(3))
case("conv2d", {"padding": "same"}, input=randn(2, 1, 4, 5), weight=randn(2, 1, 4, 2))
case("conv2d", {"padding": "valid"}, input=randn(1, 3, 6, 4), weight=randn(2, 3, 3, 2), bias=randn(2))
case("conv2d", {"groups": 2, "padding": 1}, input=randn(2, 4, 5, 4), weight=randn(6, 2, 3, 3), bias=randn(6))
case("conv2d", {"groups": 3, "stride": 2, "padding": 1}, input=randn(1, 3, 6, 6), weight=randn(6, 1, 3, 3), bias=randn(6))  # depthwise x2
case("conv2d", {"stride": 3}, input=randn(1, 2, 8, 7), weight=randn(2, 2, 2, 2))  # windows do not tile the input
case("conv2d", {"padding": 2, "dilation": 2, "stride": 2}, input=randn(2, 3, 7, 6), weight=randn(2, 3, 3, 3), bias=randn(2))
case("conv2d", {"padding": 1}, input=randn(2, 5, 4), weight=randn(3, 2, 3, 3), bias=randn(3))  # unbatched
case("conv2d", {}, input=randn(2, 4, 3, 3), weight=randn(5, 4, 1, 1), bias=randn(5))  # 1x1

case("conv3d", {}, input=randn(1, 2, 4, 4, 4), weight=randn(3, 2, 2, 2, 2), bias=randn(3))
case("conv3d", {"stride": 2, "padding": 1}, input=randn(2, 2, 5, 4, 5), weight=randn(2, 2, 3, 3, 3))
case("conv3d", {"padding": "same", "dilation": [1, 2, 1], "groups": 2}, input=randn(1, 4, 3, 5, 4), weight=randn(4, 2, 2, 3, 2), bias=randn(4))
case("conv3d", {"padding": "valid", "stride": [1, 2, 3]}, input=randn(1, 1, 4, 5, 7), weight=randn(2, 1, 2, 2, 2), bias=randn(2))
case("conv3d", {"groups": 2, "padding": [0, 1, 2]}, input=randn(2, 3, 3, 4), weight=randn(4, 1, 2, 2, 3))  # unbatched depthwise

case("conv_transpose1d", {}, input=randn(2, 3, 5), weight=randn(3, 2, 3), bias=randn(2))
case("conv_transpose1d", {"stride": 2, "padding": 1, "output_padding": 1}, input=randn(2, 2, 4), weight=randn(2, 3, 3), bias=randn(3))
case("conv_transpose1d", {"groups": 2, "dilation": 2, "padding": 1}, input=randn(1, 4, 5), weight=randn(4, 1, 3))
case("conv_transpose1d", {"stride": 3, "output_padding": 2}, input=randn(1, 2, 3), weight=randn(2, 2, 2), bias=randn(2))
case("conv_transpose1d", {"stride": 1, "dilation": 3, "output_padding": 2}, input=randn(1, 1, 4), weight=randn(1, 2, 2))  # op < dilation

case("conv_transpose2d", {}, input=randn(2, 2, 3, 3), weight=randn(2, 3, 2, 2), bias=randn(3))
case("conv_transpose2d", {"stride": [2, 3], "padding": [1, 0], "output_padding": [1, 2]}, input=randn(1, 2, 3, 3), weight=randn(2, 2, 3, 3), bias=randn(2))
case("conv_transpose2d", {"stride": 2, "groups": 2, "dilation": [2, 1], "output_padding": 1}, input=randn(2, 4, 3, 2), weight=randn(4, 2, 2, 3))
case("conv_transpose2d", {"groups": 3, "stride": 2, "padding": 1}, input=randn(1, 3, 3, 3), weight=randn(3, 1, 3, 3), bias=randn(3))  # depthwise
case("conv_transpose2d", {"stride": 2}, input=randn(2, 3, 2), weight=randn(2, 2, 2, 2), bias=randn(2))  # unbatched
case("conv_transpose2d", {"padding": 1}, input=randn(1, 1, 4, 4), weight=randn(1, 1, 3, 3))

case("conv_transpose3d", {}, input=randn(1, 2, 2, 3, 2), weight=randn(2, 2, 2, 2, 2), bias=randn(2))
case("conv_transpose3d", {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}, input=randn(1, 2, 2, 2, 3), weight=randn(2, 2, 3, 3, 2), bias=randn(4))
case("conv_transpose3d", {"dilation": 2, "stride": [1, 2, 1]}, input=randn(2, 1, 2, 2, 2), weight=randn(1, 2, 2, 2, 2))

# ---------------------------------------------------------------------------------------------------------
# Pooling.

case("max_pool1d", {"kernel_size": 3, "stride": 2}, input=randn(2, 3, 9))
case("max_pool1d", {"kernel_size": 2}, input=randn(1, 2, 7))  # stride defaults to the kernel
case("max_pool1d", {"kernel_size": 3, "padding": 1, "dilation": 2}, input=randn(2, 2, 8))
case("max_pool1d", {"kernel_size": 3, "stride": 2, "ceil_mode": True}, input=randn(1, 2, 8))
case("max_pool1d", {"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True}, input=randn(2, 7))  # unbatched

case("max_pool2d", {"kernel_size": 2}, input=randn(2, 2, 4, 6))
case("max_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1}, input=randn(1, 3, 7, 6))
case("max_pool2d", {"kernel_size": [2, 3], "stride": [1, 2], "dilation": [2, 1]}, input=randn(1, 2, 6, 7))
case("max_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, input=randn(2, 1, 6, 8))
case("max_pool2d", {"kernel_size": 2, "stride": 1}, input=torch.randint(-2, 3, (1, 2, 4, 4), generator=GEN).double())  # ties
case("max_pool2d", {"kernel_size": 2, "stride": 2, "ceil_mode": True}, input=randn(2, 5, 5))  # unbatched

case("max_pool3d", {"kernel_size": 2}, input=randn(1, 2, 4, 4, 4))
case("max_pool3d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, input=randn(1, 1, 4, 5, 6))
case("max_pool3d", {"kernel_size": 2, "stride": 1, "dilation": 2}, input=randn(2, 1, 4, 4, 5))

case("max_pool1d_with_indices", {"kernel_size": 3, "stride": 2, "padding": 1}, input=randn(2, 2, 7))
case("max_pool2d_with_indices", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, input=randn(1, 2, 5, 6))
case("max_pool2d_with_indices", {"kernel_size": 2, "dilation": 2, "stride": 1}, input=randn(2, 1, 5, 5))
case("max_pool3d_with_indices", {"kernel_size": 2, "stride": [1, 2, 2]}, input=randn(1, 2, 3, 4, 4))

case("avg_pool1d", {"kernel_size": 3, "stride": 2}, input=randn(2, 2, 9))
case("avg_pool1d", {"kernel_size": 3, "stride": 2, "padding": 1}, input=randn(1, 2, 8))
case("avg_pool1d", {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}, input=randn(1, 2, 8))
case("avg_pool1d", {"kernel_size": 2, "stride": 2, "ceil_mode": True}, input=randn(1, 1, 7))
case("avg_pool1d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, input=randn(2, 1, 6))
case("avg_pool1d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}, input=randn(2, 1, 6))

case("avg_pool2d", {"kernel_size": 2}, input=randn(2, 2, 4, 6))
case("avg_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1}, input=randn(1, 2, 6, 5))
case("avg_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}, input=randn(1, 2, 6, 5))
case("avg_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, input=randn(1, 1, 6, 6))
case("avg_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}, input=randn(1, 1, 6, 6))
case("avg_pool2d", {"kernel_size": 2, "stride": 2, "ceil_mode": True}, input=randn(1, 1, 5, 5))
case("avg_pool2d", {"kernel_size": 2, "divisor_override": 3}, input=randn(2, 1, 4, 4))
case("avg_pool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "divisor_override": 5, "ceil_mode": True}, input=randn(1, 2, 5, 6))
case("avg_pool2d", {"kernel_size": [3, 2], "stride": [2, 1], "padding": [1, 0]}, input=randn(3, 5, 4))  # unbatched

case("avg_pool3d", {"kernel_size": 2}, input=randn(1, 2, 4, 4, 4))
case("avg_pool3d", {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}, input=randn(1, 1, 5, 4, 6))
case("avg_pool3d", {"kernel_size": 2, "stride": 2, "ceil_mode": True, "divisor_override": 3}, input=randn(1, 1, 3, 5, 3))
case("avg_pool3d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, input=randn(1, 1, 4, 4, 6))

case("adaptive_avg_pool1d", {"output_size": 3}, input=randn(2, 2, 7))
case("adaptive_avg_pool1d", {"output_size": 1}, input=randn(1, 3, 5))
case("adaptive_avg_pool1d", {"output_size": 7}, input=randn(1, 2, 5))  # upsampling: overlapping windows
case("adaptive_avg_pool2d", {"output_size": [3, 2]}, input=randn(2, 2, 7, 5))
case("adaptive_avg_pool2d", {"output_size": 1}, input=randn(1, 3, 4, 5))
case("adaptive_avg_pool2d", {"output_size": [4, 5]}, input=randn(1, 1, 3, 3))
case("adaptive_avg_pool2d", {"output_size": 2}, input=randn(2, 5, 6))  # unbatched
case("adaptive_max_pool2d", {"output_size": [3, 2]}, input=randn(2, 2, 7, 5))
case("adaptive_max_pool2d", {"output_size": 1}, input=randn(1, 3, 4, 5))
case("adaptive_max_pool2d", {"output_size": [2, 3]}, input=randn(1, 2, 5, 5))

for kp, shape, out_size in [({"kernel_size": 2, "stride": 2}, (1, 2, 4, 6), None),
                            ({"kernel_size": 3, "stride": 2, "padding": 1}, (2, 1, 5, 5), None),
                            ({"kernel_size": 2, "stride": 2}, (1, 2, 5, 7), [5, 7]),
                            ({"kernel_size": 2}, (2, 4, 4), None)]:
    y, idx = F.max_pool2d(randn(*shape), return_indices=True, **kp)
    p = dict(kp)
    if out_size is not None:
        p["output_size"] = out_size
    case("max_unpool2d", p, grad=["input"], input=y, indices=idx)

# ---------------------------------------------------------------------------------------------------------
# Activations. "kinks" holds the points where the derivative is not continuous, to pin down the
# sub-gradient conventions.

kinks = torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0, -2.5, 2.5, 0.5])
for op, variants in [
    ("sigmoid", [{}]), ("tanh", [{}]), ("relu", [{}]),
    ("leaky_relu", [{}, {"negative_slope": 0.2}]),
    ("elu", [{}, {"alpha": 0.5}]), ("selu", [{}]),
    ("gelu", [{}, {"approximate": "tanh"}]), ("silu", [{}]),
    ("softplus", [{}, {"beta": 2.0, "threshold": 1.0}, {"beta": 0.5, "threshold": 20.0}]),
    ("hardsigmoid", [{}]), ("hardswish", [{}]), ("mish", [{}]),
]:
    for p in variants:
        case(op, p, input=randn(3, 5, scale=3.0))
for op, p in [("relu", {}), ("leaky_relu", {"negative_slope": 0.2}), ("elu", {}), ("hardsigmoid", {}), ("hardswish", {}),
              ("softplus", {"beta": 2.0, "threshold": 1.0})]:
    case(op, p, input=kinks.clone())
case("sigmoid", {}, input=torch.tensor([-40.0, -5.0, 0.0, 5.0, 40.0]))
case("tanh", {}, input=torch.tensor([-20.0, -0.5, 0.0, 0.5, 20.0]))
case("softplus", {}, input=torch.tensor([-30.0, -1.0, 0.0, 19.0, 21.0, 50.0]))

case("softmax", {"dim": -1}, input=randn(3, 5, scale=2.0))
case("softmax", {"dim": 0}, input=randn(3, 5, scale=2.0))
case("softmax", {"dim": 1}, input=randn(2, 3, 4, scale=2.0))
case("softmax", {"dim": -1}, input=torch.tensor([[1000.0, 1001.0, 999.0], [-1000.0, -1002.0, -1000.5]]))
case("log_softmax", {"dim": -1}, input=randn(3, 5, scale=2.0))
case("log_softmax", {"dim": 0}, input=randn(4, 2, 3, scale=2.0))
case("log_softmax", {"dim": 2}, input=randn(2, 3, 4, scale=2.0))
case("log_softmax", {"dim": 1}, input=torch.tensor([[1000.0, 1001.0, 999.0], [-1000.0, -1002.0, -1000.5]]))

# ---------------------------------------------------------------------------------------------------------
# Losses.

for r in ["mean", "sum", "none"]:
    case("mse_loss", {"reduction": r}, input=randn(3, 4), target=randn(3, 4))
    case("l1_loss", {"reduction": r}, input=randn(3, 4), target=randn(3, 4))
for p in [{}, {"beta": 0.5, "reduction": "sum"}, {"beta": 2.0, "reduction": "none"}, {"beta": 0.0}]:
    case("smooth_l1_loss", p, input=randn(3, 4), target=randn(3, 4))
case("smooth_l1_loss", {"beta": 1.0, "reduction": "none"}, input=torch.tensor([0.0, 1.0, -1.0, 2.5, 0.3]),
     target=torch.tensor([0.0, 0.0, 0.0, 1.5, 0.3]))  # |d| == beta and d == 0

for r in ["mean", "sum", "none"]:
    case("binary_cross_entropy", {"reduction": r}, grad=["input"], input=rand(3, 4, lo=0.05, hi=0.95), target=rand(3, 4))
case("binary_cross_entropy", {}, grad=["input"], input=rand(2, 5, lo=0.05, hi=0.95), target=torch.bernoulli(rand(2, 5), generator=GEN),
     weight=rand(2, 5, lo=0.5, hi=2.0))
case("binary_cross_entropy", {"reduction": "sum"}, grad=["input"], input=rand(2, 3, lo=0.05, hi=0.95), target=rand(2, 3),
     weight=rand(3, lo=0.5, hi=2.0))  # weight broadcast

for r in ["mean", "sum", "none"]:
    case("binary_cross_entropy_with_logits", {"reduction": r}, grad=["input"], input=randn(3, 4, scale=3.0), target=rand(3, 4))
case("binary_cross_entropy_with_logits", {}, grad=["input"], input=randn(2, 4, scale=3.0), target=rand(2, 4),
     weight=rand(2, 4, lo=0.5, hi=2.0))
case("binary_cross_entropy_with_logits", {"reduction": "sum"}, grad=["input"], input=randn(3, 4, scale=3.0),
     target=torch.bernoulli(rand(3, 4), generator=GEN), pos_weight=rand(4, lo=0.5, hi=3.0))
case("binary_cross_entropy_with_logits", {"reduction": "none"}, grad=["input"], input=randn(2, 3, scale=3.0), target=rand(2, 3),
     weight=rand(3, lo=0.5, hi=2.0), pos_weight=rand(3, lo=0.5, hi=3.0))
case("binary_cross_entropy_with_logits", {}, grad=["input"], input=torch.tensor([-200.0, -30.0, 0.0, 30.0, 200.0]),
     target=torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0]))  # extreme logits

for r in ["mean", "sum", "none"]:
    case("cross_entropy", {"reduction": r}, input=randn(4, 5), target=randint(0, 5, 4))
case("cross_entropy", {}, input=randn(5, 3), target=randint(0, 3, 5), weight=rand(3, lo=0.5, hi=2.0), grad=["input"])
case("cross_entropy", {"reduction": "sum"}, input=randn(5, 3), target=randint(0, 3, 5), weight=rand(3, lo=0.5, hi=2.0), grad=["input"])
case("cross_entropy", {}, input=randn(5, 4), target=torch.tensor([1, -100, 3, 0, -100]))  # default ignore_index
case("cross_entropy", {"ignore_index": 2, "reduction": "none"}, input=randn(6, 4), target=torch.tensor([2, 0, 2, 3, 1, 2]))
case("cross_entropy", {"ignore_index": 1}, input=randn(5, 3), target=torch.tensor([1, 0, 2, 1, 2]),
     weight=rand(3, lo=0.5, hi=2.0), grad=["input"])
case("cross_entropy", {"label_smoothing": 0.1}, input=randn(4, 5), target=randint(0, 5, 4))
case("cross_entropy", {"label_smoothing": 0.2, "reduction": "sum"}, input=randn(4, 5), target=randint(0, 5, 4))
case("cross_entropy", {"label_smoothing": 0.3, "reduction": "none"}, input=randn(4, 5), target=randint(0, 5, 4))
case("cross_entropy", {"label_smoothing": 0.15, "ignore_index": 0}, input=randn(6, 4), target=torch.tensor([0, 1, 2, 3, 0, 2]),
     weight=rand(4, lo=0.5, hi=2.0), grad=["input"])
case("cross_entropy", {"label_smoothing": 0.25, "ignore_index": 0, "reduction": "sum"}, input=randn(6, 4),
     target=torch.tensor([0, 1, 2, 3, 0, 2]), weight=rand(4, lo=0.5, hi=2.0), grad=["input"])
case("cross_entropy", {}, input=randn(2, 4, 3), target=randint(0, 4, 2, 3))  # spatial [N, C, L]
case("cross_entropy", {"reduction": "none", "ignore_index": 1}, input=randn(2, 3, 4), target=randint(0, 3, 2, 4),
     weight=rand(3, lo=0.5, hi=2.0), grad=["input"])
case("cross_entropy", {"label_smoothing": 0.1}, input=randn(2, 3, 2, 3), target=randint(0, 3, 2, 2, 3))  # [N, C, H, W]
case("cross_entropy", {}, input=randn(5), target=torch.tensor(3))  # unbatched [C]
for p in [{}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.2}]:
    case("cross_entropy", p, input=randn(3, 4), target=torch.softmax(randn(3, 4), 1))  # class probabilities
case("cross_entropy", {"label_smoothing": 0.1}, input=randn(3, 4), target=torch.softmax(randn(3, 4), 1),
     weight=rand(4, lo=0.5, hi=2.0), grad=["input", "target"])
case("cross_entropy", {"reduction": "none"}, input=randn(2, 3, 4), target=torch.softmax(randn(2, 3, 4), 1))  # spatial probabilities

for r in ["mean", "sum", "none"]:
    case("nll_loss", {"reduction": r}, input=torch.log_softmax(randn(4, 5), 1), target=randint(0, 5, 4))
case("nll_loss", {}, input=torch.log_softmax(randn(5, 3), 1), target=randint(0, 3, 5), weight=rand(3, lo=0.5, hi=2.0), grad=["input"])
case("nll_loss", {"ignore_index": 2}, input=torch.log_softmax(randn(5, 3), 1), target=torch.tensor([2, 0, 1, 2, 1]),
     weight=rand(3, lo=0.5, hi=2.0), grad=["input"])
case("nll_loss", {"reduction": "none"}, input=randn(5, 3), target=torch.tensor([0, -100, 1, 2, -100]))
case("nll_loss", {}, input=torch.log_softmax(randn(2, 3, 4), 1), target=randint(0, 3, 2, 4))  # spatial
case("nll_loss", {"reduction": "sum", "ignore_index": 0}, input=randn(2, 3, 2, 2), target=randint(0, 3, 2, 2, 2),
     weight=rand(3, lo=0.5, hi=2.0), grad=["input"])

# ---------------------------------------------------------------------------------------------------------
# Reductions and matmul.

for op in ["var", "std"]:
    case(op, {}, input=randn(3, 4))
    case(op, {"unbiased": False}, input=randn(3, 4))
    case(op, {"dim": 1}, input=randn(3, 4))
    case(op, {"dim": 0, "unbiased": False, "keepdim": True}, input=randn(3, 4))
    case(op, {"dim": [0, 2]}, input=randn(2, 3, 4))
    case(op, {"dim": [-1, 0], "unbiased": False, "keepdim": True}, input=randn(2, 3, 4))
    case(op, {"dim": 1}, input=randn(3, 1))  # one element, unbiased: 0 / 0
    case(op, {"dim": 1, "unbiased": False}, input=randn(3, 1))  # one element, biased: 0 (std: sqrt at 0)

case("logsumexp", {"dim": 1}, input=randn(3, 4))
case("logsumexp", {"dim": 0, "keepdim": True}, input=randn(3, 4))
case("logsumexp", {"dim": [0, 2]}, input=randn(2, 3, 4))
case("logsumexp", {"dim": -1}, input=torch.tensor([[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -1000.0], [0.0, -math.inf, 1.0]]))

case("matmul", {}, input=randn(3, 4), other=randn(4, 2))
case("matmul", {}, input=randn(2, 3, 4), other=randn(4, 5))
case("matmul", {}, input=randn(2, 1, 3, 4), other=randn(3, 4, 2))  # broadcast batch dims
case("matmul", {}, input=randn(3, 4), other=randn(2, 4, 3))
case("matmul", {}, input=randn(4), other=randn(2, 4, 3))  # 1-d @ batched
case("matmul", {}, input=randn(2, 3, 4), other=randn(4))  # batched @ 1-d
case("matmul", {}, input=randn(4), other=randn(4))  # dot
case("matmul", {}, input=randn(3, 4), other=randn(4))
case("matmul", {}, input=randn(1, 2, 3), other=randn(4, 3, 2))


# ---------------------------------------------------------------------------------------------------------
# Edge cases at the limits of the domain.

case("binary_cross_entropy", {"reduction": "none"}, grad=["input"], input=torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5]),
     target=torch.tensor([0.0, 1.0, 0.5, 0.25, 0.3]))  # log clamped at -100; PyTorch clamps the grad's denominator at 1e-12
case("cross_entropy", {}, input=randn(3, 4), target=torch.tensor([-100, -100, -100]))  # every target ignored: 0 / 0
case("nll_loss", {"reduction": "sum"}, input=randn(2, 3), target=torch.tensor([-100, -100]))  # every target ignored
case("softmax", {"dim": 1}, input=torch.tensor([[0.5, -math.inf, 1.0], [-math.inf, 2.0, -math.inf]]))
case("log_softmax", {"dim": 1}, input=torch.tensor([[0.5, -math.inf, 1.0], [3.0, 2.0, -1.0]]))
case("logsumexp", {"dim": 1}, input=torch.tensor([[-math.inf, -math.inf], [1.0, 2.0]]))  # a row of -inf


def main():
    out = {
        "generator": "Tests/Reference/make_reference.py",
        "torch_version": torch.__version__,
        "dtype": "float64",
        "cases": CASES,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {len(CASES)} cases to {path} ({os.path.getsize(path)} bytes) with torch {torch.__version__}")


if __name__ == "__main__":
    main()
