#!/usr/bin/env python3
"""RetNet multi-scale retention (std `retnet`, compiler/front/std/retention.gat)
against a PyTorch reference written from the math of docs/layers.md,
"RetNet: multi-scale retention" (float64, recurrent form; a parallel form
checks the recurrent one).

Metric: max |gattnc - ref| / max |ref| over the layer output, tolerance 1e-4.
For T in {1, 7, 64, 1024}: the interpreter and the compiled C, each as one
prefill call and as T one-token calls (--step 1), on random inputs and
perturbed `gattnc init` weights. `sweep` is shared with the HGRN and GSA tests."""
import sys

import torch
import torch.nn.functional as F

from e2e_util import Case, check, lin, model_source, parse_args, perturb, rms, set_weights, sweep

RTOL = 1e-4










def rope(x, base=10000.0):
    """Rotate-half RoPE at positions 0..T-1; x is [T, H, d]."""
    Tn, _, d = x.shape
    half = d // 2
    inv = base ** (-torch.arange(half, dtype=torch.float64) * 2 / d)
    ang = torch.arange(Tn, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], -1)


def retnet_qkv(W, p, x, H, expand_k=1.0, expand_v=2.0):
    Tn, D = x.shape
    K, V = int(D * expand_k) // H, int(D * expand_v) // H
    q = rope(lin(W, p + "q_proj", x).view(Tn, H, K))
    k = rope(lin(W, p + "k_proj", x).view(Tn, H, K))
    v = lin(W, p + "v_proj", x).view(Tn, H, V)
    gamma = 1 - 2.0 ** (-5 - torch.arange(H, dtype=torch.float64))
    return q, k, v, gamma


def retnet_out(W, p, x, o):
    Tn, H, V = o.shape
    g = lin(W, p + "g_proj", x).view(Tn, H, V)
    o = rms(o, W[p + "g_norm_swish_gate.weight"]) * F.silu(g)
    return lin(W, p + "o_proj", o.reshape(Tn, H * V))


def retnet_ref(W, p, x, H, **kw):
    """Recurrent form: S_t = gamma_h S_{t-1} + k_t v_t^T, o_t = S_t^T q_t K^-0.5."""
    q, k, v, gamma = retnet_qkv(W, p, x, H, **kw)
    Tn, _, K = q.shape
    S = torch.zeros(H, K, v.shape[-1], dtype=torch.float64)
    o = torch.zeros(Tn, H, v.shape[-1], dtype=torch.float64)
    for t in range(Tn):
        S = gamma[:, None, None] * S + k[t][:, :, None] * v[t][:, None, :]
        o[t] = torch.einsum("hk,hkv->hv", q[t] * K ** -0.5, S)
    return retnet_out(W, p, x, o)


def retnet_parallel_ref(W, p, x, H, **kw):
    """Parallel form: O = (Q K^T K^-0.5 ⊙ D) V with D_ij = gamma^(i-j), i >= j."""
    q, k, v, gamma = retnet_qkv(W, p, x, H, **kw)
    Tn, _, K = q.shape
    n = torch.arange(Tn, dtype=torch.float64)
    diff = n[:, None] - n[None, :]
    dec = torch.where(diff >= 0, gamma[:, None, None] ** diff.clamp(min=0), torch.zeros(()))
    o = torch.einsum("hts,shv->thv", torch.einsum("thk,shk->hts", q, k) * K ** -0.5 * dec, v)
    return retnet_out(W, p, x, o)


def main():
    args = parse_args()
    D, H = 32, 2
    ref = lambda W, p, x: retnet_ref(W, p, x, H)
    results = sweep(args, "retnet", f"retnet(x, heads: {H})", ref, D)
    # the two reference forms agree (guards the reference itself)
    torch.manual_seed(5)
    Wr = {"l.q_proj.weight": torch.randn(D, D, dtype=torch.float64) * 0.2,
          "l.k_proj.weight": torch.randn(D, D, dtype=torch.float64) * 0.2,
          "l.v_proj.weight": torch.randn(2 * D, D, dtype=torch.float64) * 0.2,
          "l.g_proj.weight": torch.randn(2 * D, D, dtype=torch.float64) * 0.2,
          "l.o_proj.weight": torch.randn(D, 2 * D, dtype=torch.float64) * 0.2,
          "l.g_norm_swish_gate.weight": 1 + 0.1 * torch.randn(D, dtype=torch.float64)}
    xr = torch.randn(50, D, dtype=torch.float64)
    results.append(check("retnet reference: recurrent vs parallel form", retnet_ref(Wr, "l.", xr, H),
                         retnet_parallel_ref(Wr, "l.", xr, H), 1e-10))
    # a non-default expansion (expand_k 0.5, expand_v 1) and 4 heads
    ref2 = lambda W, p, x: retnet_ref(W, p, x, 4, expand_k=0.5, expand_v=1.0)
    c = Case(args, "retnet_e", model_source("retnet(x, heads: 4, expand_k: 0.5, expand_v: 1.0)", 64))
    set_weights(c, perturb(c.weights, seed=7))
    x = torch.randn(40, 64)
    want = ref2(c.weights, "layer.", x.double())
    results.append(check("retnet H=4 expand_k 0.5 C prefill", c.run({"x": x}, compiled=True)["y"], want, RTOL))
    results.append(check("retnet H=4 expand_k 0.5 interp decode", c.run({"x": x}, step=1, tag="dec")["y"], want, RTOL))
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
