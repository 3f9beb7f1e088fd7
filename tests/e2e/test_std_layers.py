#!/usr/bin/env python3
"""Standard-library layers (std.gat) through sema + the interpreter, against
PyTorch written from the math (docs/layers.md), in float64.

Metric: max |gattnc - ref| / max |ref| over the whole output, tolerance
1e-5 (the interpreter stores f32 and accumulates in double). Each model runs
as one prefill call and as T one-token calls (--step 1)."""
import sys

import torch
import torch.nn.functional as F

from e2e_util import Case, check, parse_args

torch.manual_seed(0)
RTOL = 1e-5
T = 12


def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def swiglu_ref(W, p, x):
    g = x @ W[p + "gate_proj.weight"].T
    u = x @ W[p + "up_proj.weight"].T
    return (F.silu(g) * u) @ W[p + "down_proj.weight"].T


def test_swiglu(args):
    c = Case(args, "swiglu", """import std
model m {
  max T = 64
  input x : f32[T, 32]
  output y : f32[T, 32]
  y = swiglu(x, hidden: 48) @ "mlp"
}
""")
    x = torch.randn(T, 32)
    want = swiglu_ref(c.weights, "mlp.", x.double())
    ok = check("swiglu prefill", c.run({"x": x})["y"], want, RTOL)
    ok &= check("swiglu decode", c.run({"x": x}, step=1, tag="dec")["y"], want, RTOL)
    ok &= check("swiglu compiled C prefill", c.run({"x": x}, compiled=True)["y"], want, RTOL)
    ok &= check("swiglu compiled C decode", c.run({"x": x}, step=1, tag="dec", compiled=True)["y"], want, RTOL)
    return ok


def gla_ref(W, p, x, H, eps=1e-5):
    """GLA (fla/layers/gla.py defaults: expand_k 0.5, expand_v 1), recurrent form."""
    Tn, D = x.shape
    K, V = D // 2 // H, D // H
    q = (x @ W[p + "q_proj.weight"].T).view(Tn, H, K)
    k = (x @ W[p + "k_proj.weight"].T).view(Tn, H, K)
    v = (x @ W[p + "v_proj.weight"].T).view(Tn, H, V)
    lr = x @ W[p + "gk_proj.0.weight"].T
    gk = F.logsigmoid(lr @ W[p + "gk_proj.1.weight"].T + W[p + "gk_proj.1.bias"]) / 16
    gk = gk.view(Tn, H, K)
    S = torch.zeros(H, K, V, dtype=torch.float64)
    o = torch.zeros(Tn, H, V, dtype=torch.float64)
    for t in range(Tn):
        S = torch.exp(gk[t])[:, :, None] * S + k[t][:, :, None] * v[t][:, None, :]
        o[t] = torch.einsum("hk,hkv->hv", q[t] * K ** -0.5, S)
    g = (x @ W[p + "g_proj.weight"].T).view(Tn, H, V)
    o = rms_norm(o, W[p + "g_norm_swish_gate.weight"], eps) * F.silu(g)
    return o.reshape(Tn, H * V) @ W[p + "o_proj.weight"].T


def test_gla(args):
    c = Case(args, "gla", """import std
model m {
  max T = 64
  input x : f32[T, 32]
  output y : f32[T, 32]
  y = gla(x, heads: 2) @ "attn"
}
""")
    x = torch.randn(T, 32)
    want = gla_ref(c.weights, "attn.", x.double(), H=2)
    ok = check("gla prefill", c.run({"x": x})["y"], want, RTOL)
    ok &= check("gla decode", c.run({"x": x}, step=1, tag="dec")["y"], want, RTOL)
    ok &= check("gla compiled C prefill", c.run({"x": x}, compiled=True)["y"], want, RTOL)
    ok &= check("gla compiled C decode", c.run({"x": x}, step=1, tag="dec", compiled=True)["y"], want, RTOL)
    return ok


def test_gru(args):
    c = Case(args, "gru", """import std
model m {
  max T = 64
  input x : f32[T, 10]
  output y : f32[T, 16]
  y = gru(x, hidden: 16) @ "rnn"
}
""")
    x = torch.randn(T, 10)
    ref = torch.nn.GRU(10, 16).double()
    with torch.no_grad():
        for n in ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]:
            getattr(ref, n).copy_(c.weights["rnn." + n])
        want, _ = ref(x.double()[:, None, :])
    want = want[:, 0, :]
    ok = check("gru prefill (vs torch.nn.GRU)", c.run({"x": x})["y"], want, RTOL)
    ok &= check("gru decode", c.run({"x": x}, step=1, tag="dec")["y"], want, RTOL)
    ok &= check("gru compiled C prefill", c.run({"x": x}, compiled=True)["y"], want, RTOL)
    ok &= check("gru compiled C decode", c.run({"x": x}, step=1, tag="dec", compiled=True)["y"], want, RTOL)
    return ok


def test_lstm(args):
    c = Case(args, "lstm", """import std
model m {
  max T = 64
  input x : f32[T, 10]
  output y : f32[T, 16]
  y = lstm(x, hidden: 16) @ "rnn"
}
""")
    x = torch.randn(T, 10)
    ref = torch.nn.LSTM(10, 16).double()
    with torch.no_grad():
        for n in ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]:
            getattr(ref, n).copy_(c.weights["rnn." + n])
        want, _ = ref(x.double()[:, None, :])
    want = want[:, 0, :]
    ok = check("lstm prefill (vs torch.nn.LSTM)", c.run({"x": x})["y"], want, RTOL)
    ok &= check("lstm decode", c.run({"x": x}, step=1, tag="dec")["y"], want, RTOL)
    ok &= check("lstm compiled C prefill", c.run({"x": x}, compiled=True)["y"], want, RTOL)
    ok &= check("lstm compiled C decode", c.run({"x": x}, step=1, tag="dec", compiled=True)["y"], want, RTOL)
    return ok


def main():
    args = parse_args()
    results = [f(args) for f in (test_swiglu, test_gla, test_gru, test_lstm)]
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
