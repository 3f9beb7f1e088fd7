#!/usr/bin/env python3
"""Gated DeltaNet, DeltaNet and DeltaNet with output gate (compiler/front/std/deltanet.gat)
against a PyTorch reference written from the math of docs/layers.md,
"Gated DeltaNet and DeltaNet" and "Shared pieces of the delta-rule layers" in
float64 (no fla code is used or imported).

Metric: max |gattnc - ref| / max |ref| over the whole output, tolerance 1e-4,
for T in {1, 7, 64, 1024}; each T runs through the interpreter and the
compiled C, as one prefill call and as T one-token calls (--step 1). Weights are `gattnc init` weights plus noise (perturb), so norm
weights, A_log and dt_bias all matter."""
import sys

import torch
import torch.nn.functional as F

from e2e_util import Case, check, check_runs, parse_args, perturb, set_weights, summary

RTOL = 1e-4
D = 32

SRC = """import std
model m {
  max T = 1024
  input x : f32[T, 32]
  output y_gdn : f32[T, 32]
  output y_gdn_neg : f32[T, 32]
  output y_dn : f32[T, 32]
  output y_dn_gate : f32[T, 32]
  output y_dn_flag : f32[T, 32]
  y_gdn = gated_deltanet(x, heads: 2, head_dim: 8, num_v_heads: 4) @ "gdn"
  y_gdn_neg = gated_deltanet(x, heads: 2, head_dim: 8, expand_v: 1.5, allow_neg_eigval: true) @ "gdn_neg"
  y_dn = deltanet(x, heads: 2) @ "dn"
  y_dn_gate = deltanet_gated(x, heads: 2, expand_k: 0.5) @ "dng"
  y_dn_flag = deltanet(x, heads: 2, expand_k: 0.5, use_gate: true) @ "dnf"
}
"""


# ---- reference, from the equations ------------------------------------------

def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def l2norm(x, eps=1e-6):
    return x / torch.sqrt((x * x).sum(-1, keepdim=True) + eps)


def short_conv_silu(x, w):
    """ShortConvolution: y[t, c] = silu(sum_j w[c, 0, j] x[t - W + 1 + j, c]), zeros before t = 0."""
    Tn, C = x.shape
    W = w.shape[-1]
    xp = torch.cat([torch.zeros(W - 1, C, dtype=x.dtype), x], 0)
    y = torch.zeros_like(x)
    for j in range(W):
        y = y + w[:, 0, j] * xp[j:j + Tn]
    return F.silu(y)


def delta_rule(q, k, v, beta, g):
    """q, k [T, Hv, K] (already expanded to value heads), v [T, Hv, V], beta, g [T, Hv].
    S <- e^g S; u = beta (v - S^T k); S <- S + k u^T; o = S^T (q K^-1/2)."""
    Tn, Hv, K = q.shape
    V = v.shape[-1]
    S = torch.zeros(Hv, K, V, dtype=torch.float64)
    o = torch.zeros(Tn, Hv, V, dtype=torch.float64)
    for t in range(Tn):
        S = torch.exp(g[t])[:, None, None] * S
        u = beta[t][:, None] * (v[t] - torch.einsum("hk,hkv->hv", k[t], S))
        S = S + k[t][:, :, None] * u[:, None, :]
        o[t] = torch.einsum("hk,hkv->hv", q[t] * K ** -0.5, S)
    return o


def qkv(W, p, x, H, K, Hv, V):
    Tn = x.shape[0]
    q = l2norm(short_conv_silu(x @ W[p + "q_proj.weight"].T, W[p + "q_conv1d.weight"]).view(Tn, H, K))
    k = l2norm(short_conv_silu(x @ W[p + "k_proj.weight"].T, W[p + "k_conv1d.weight"]).view(Tn, H, K))
    v = short_conv_silu(x @ W[p + "v_proj.weight"].T, W[p + "v_conv1d.weight"]).view(Tn, Hv, V)
    G = Hv // H  # GVA: value head i reads q/k head i // G
    return q.repeat_interleave(G, 1), k.repeat_interleave(G, 1), v


def gated_deltanet_ref(W, p, x, H, K, expand_v=2.0, Hv=None, neg=False, eps=1e-5):
    Hv = Hv or H
    V = int(K * expand_v)
    Tn = x.shape[0]
    q, k, v = qkv(W, p, x, H, K, Hv, V)
    beta = torch.sigmoid(x @ W[p + "b_proj.weight"].T) * (2.0 if neg else 1.0)
    g = -torch.exp(W[p + "A_log"]) * F.softplus(x @ W[p + "a_proj.weight"].T + W[p + "dt_bias"])
    o = delta_rule(q, k, v, beta, g)
    gate = (x @ W[p + "g_proj.weight"].T).view(Tn, Hv, V)
    o = rms_norm(o, W[p + "o_norm.weight"], eps) * F.silu(gate)
    return o.reshape(Tn, Hv * V) @ W[p + "o_proj.weight"].T


def deltanet_ref(W, p, x, H, expand_k=1.0, expand_v=1.0, use_gate=False, eps=1e-5):
    Tn, Dm = x.shape
    K, V = int(Dm * expand_k) // H, int(Dm * expand_v) // H
    q, k, v = qkv(W, p, x, H, K, H, V)
    beta = torch.sigmoid(x @ W[p + "b_proj.weight"].T)
    o = delta_rule(q, k, v, beta, torch.zeros(Tn, H, dtype=torch.float64))
    o = rms_norm(o, W[p + "o_norm.weight"], eps)
    if use_gate:
        o = o * F.silu((x @ W[p + "g_proj.weight"].T).view(Tn, H, V))
    return o.reshape(Tn, H * V) @ W[p + "o_proj.weight"].T


def references(W, x):
    return {
        "y_gdn": gated_deltanet_ref(W, "gdn.", x, H=2, K=8, Hv=4),
        "y_gdn_neg": gated_deltanet_ref(W, "gdn_neg.", x, H=2, K=8, expand_v=1.5, neg=True),
        "y_dn": deltanet_ref(W, "dn.", x, H=2),
        "y_dn_gate": deltanet_ref(W, "dng.", x, H=2, expand_k=0.5, use_gate=True),
        "y_dn_flag": deltanet_ref(W, "dnf.", x, H=2, expand_k=0.5, use_gate=True),
    }


def expected_names():
    """The fla state_dict keys (and shapes) the layers must create."""
    names = {}
    for p, H, K, Hv, V in [("gdn.", 2, 8, 4, 16), ("gdn_neg.", 2, 8, 2, 12)]:
        names.update({p + "q_proj.weight": [H * K, D], p + "k_proj.weight": [H * K, D],
                      p + "v_proj.weight": [Hv * V, D], p + "g_proj.weight": [Hv * V, D],
                      p + "a_proj.weight": [Hv, D], p + "b_proj.weight": [Hv, D],
                      p + "A_log": [Hv], p + "dt_bias": [Hv],
                      p + "q_conv1d.weight": [H * K, 1, 4], p + "k_conv1d.weight": [H * K, 1, 4],
                      p + "v_conv1d.weight": [Hv * V, 1, 4], p + "o_norm.weight": [V],
                      p + "o_proj.weight": [D, Hv * V]})
    for p, K, gate in [("dn.", 16, False), ("dng.", 8, True), ("dnf.", 8, True)]:
        names.update({p + "q_proj.weight": [2 * K, D], p + "k_proj.weight": [2 * K, D],
                      p + "v_proj.weight": [D, D], p + "b_proj.weight": [2, D],
                      p + "q_conv1d.weight": [2 * K, 1, 4], p + "k_conv1d.weight": [2 * K, 1, 4],
                      p + "v_conv1d.weight": [D, 1, 4], p + "o_norm.weight": [16],
                      p + "o_proj.weight": [D, D]})
        if gate:
            names[p + "g_proj.weight"] = [D, D]
    return names


PRIM_SRC = """import std
model prim {
  max T = 64
  input x : f32[T, 24]
  output y_conv : f32[T, 24]
  output y_l2 : f32[T, 3, 8]
  output y_norm_gated : f32[T, 3, 8]
  y_conv = causal_conv1d(x, kernel: 4, act: "silu") @ "conv"
  y_l2 = l2_norm(x as [T, 3, 8], eps: 1e-6)
  y_norm_gated = rms_norm_gated(x as [T, 3, 8], y_conv as [T, 3, 8], eps: 1e-5) @ "norm"
}
"""


def test_primitives(args):
    """The shared pieces on their own: ShortConvolution (and its decode state),
    l2norm with eps 1e-6 (rows scaled to ~1e-3 so eps matters), FusedRMSNormGated."""
    c = Case(args, "deltanet_prim", PRIM_SRC)
    set_weights(c, perturb(c.weights, seed=2, scale=0.3))
    W = c.weights
    results = []
    for Tn in (7, 64):
        x = torch.randn(Tn, 24)
        x[::3] *= 1e-3
        xd = x.double()
        conv = short_conv_silu(xd, W["conv.weight"])
        ref = {"y_conv": conv, "y_l2": l2norm(xd.view(Tn, 3, 8)),
               "y_norm_gated": rms_norm(xd.view(Tn, 3, 8), W["norm.weight"], 1e-5) * F.silu(conv.view(Tn, 3, 8))}
        for label, kw in [("interp prefill", dict()), ("interp decode", dict(step=1)),
                          ("C prefill", dict(compiled=True)), ("C decode", dict(step=1, compiled=True))]:
            out = c.run({"x": x}, tag=f"T{Tn}.{label.replace(' ', '_')}", **kw)
            for name in ref:
                results.append(check(f"T={Tn} {name} {label}", out[name], ref[name], RTOL))
    return results


def main():
    args = parse_args()
    torch.manual_seed(0)
    results = test_primitives(args)
    c = Case(args, "deltanet", SRC)

    want = expected_names()
    got = {k: list(v.shape) for k, v in c.weights.items()}
    ok = got == want
    print(f"{'ok' if ok else 'FAIL'}: parameter names and shapes match fla ({len(want)} tensors)")
    if not ok:
        print("  missing:", sorted(set(want) - set(got)), "extra:", sorted(set(got) - set(want)),
              "shape:", [k for k in want if k in got and want[k] != got[k]])
    results.append(ok)

    # init rules of A_log (log U(1, 16)) and dt_bias (softplus^-1 of dt in [1e-3, 0.1])
    a = c.weights["gdn.A_log"]
    dt = F.softplus(c.weights["gdn.dt_bias"])
    ok = bool((a >= 0).all() and (a <= torch.log(torch.tensor(16.0)) + 1e-6).all()
              and (dt >= 1e-3 - 1e-7).all() and (dt <= 0.1 + 1e-7).all())
    print(f"{'ok' if ok else 'FAIL'}: init ranges of A_log and dt_bias")
    results.append(ok)

    set_weights(c, perturb(c.weights, seed=1, scale=0.1))
    for Tn in (1, 7, 64, 1024):
        x = torch.randn(Tn, D)
        ref = references(c.weights, x.double())
        results += check_runs(c, {"x": x}, ref, RTOL, label=f"T={Tn}")
    return summary(results)


if __name__ == "__main__":
    sys.exit(main())
