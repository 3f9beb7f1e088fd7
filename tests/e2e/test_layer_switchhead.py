#!/usr/bin/env python3
"""SwitchHead (std `switchhead`, compiler/front/std/mixattn.gat) against float64
PyTorch references written from the math of docs/layers.md
("Mixture-of-attention layers", SwitchHead):

  q, k = Linear(D, H*d) x * d^-1/4, RoPE (rotate-half) on the first d/2 features
  s_v = sigmoid(x sel_v^T), s_o = sigmoid(x sel_o^T) viewed [T, H, E];
  top-k over E per head, not renormalised
  v_h = sum_{e in topk} s_v[h, e] x v[h*E + e];   att = causal SDPA, scale 1
  y = sum_h sum_{e in topk(s_o[h])} s_o[h, e] att_h o[h*E + e]

Two references: a sparse one that gathers the chosen experts' matrices, and a
dense one that runs every expert and zeroes the unchosen ones with scattered
routing weights; they must agree with each other and with gattnc. The
interpreter's execution counter (GAT_INTERP_COUNT) must show that each of the
2H mixtures (per-head value and output projections) ran every expert on
exactly the tokens that chose it (unchosen experts: no rows).

Metric: max |gattnc - ref| / max |ref|, tolerance 1e-4. T in {1, 7, 64},
interpreter and compiled C, prefill and decode (--step 1)."""
import os
import sys

import torch

from e2e_util import Case, check, check_routed, model_source, parse_args, perturb, set_weights, summary

D, H, E, DH, K = 32, 4, 5, 8, 2
F64 = torch.float64


def rope_part(x, rot, base=10000.0):
    """x [T, H, d]: rotate-half RoPE over the first `rot` features at positions 0..T-1."""
    half = rot // 2
    inv = base ** (-2.0 * torch.arange(half, dtype=F64) / rot)
    ang = torch.arange(x.shape[0], dtype=F64)[:, None] * inv
    c, s = ang.cos()[:, None, :], ang.sin()[:, None, :]
    x1, x2 = x[..., :half], x[..., half:rot]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s, x[..., rot:]], -1)


def causal_sdpa(q, k, v, scale):
    """q, k [T, H, d], v [T, H, dv] -> [T, H, dv]."""
    T = q.shape[0]
    logits = torch.einsum("ihd,jhd->hij", q, k) * scale
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    att = torch.softmax(logits.masked_fill(~mask, float("-inf")), -1)
    return torch.einsum("hij,jhd->ihd", att, v)


def switchhead_ref(W, p, x, dense=False):
    T = x.shape[0]
    q = rope_part((x @ W[p + "q.weight"].T).view(T, H, DH) * DH ** -0.25, DH // 2)
    k = rope_part((x @ W[p + "k.weight"].T).view(T, H, DH) * DH ** -0.25, DH // 2)
    sv = torch.sigmoid(x @ W[p + "sel_v"].T).view(T, H, E)
    so = torch.sigmoid(x @ W[p + "sel_o"].T).view(T, H, E)
    wv, iv = sv.topk(K, -1)
    wo, io = so.topk(K, -1)
    Wv, Wo = W[p + "v"].view(H, E, D, DH), W[p + "o"].view(H, E, DH, D)
    heads = torch.arange(H)[None, :, None]
    if dense:
        cv = torch.zeros(T, H, E, dtype=F64).scatter(2, iv, wv)
        v = torch.einsum("the,tc,hecd->thd", cv, x, Wv)
    else:
        v = torch.einsum("tc,thkcd,thk->thd", x, Wv[heads, iv], wv)
    a = causal_sdpa(q, k, v, 1.0)
    if dense:
        co = torch.zeros(T, H, E, dtype=F64).scatter(2, io, wo)
        y = torch.einsum("the,thd,hedc->tc", co, a, Wo)
    else:
        y = torch.einsum("thd,thkdc,thk->tc", a, Wo[heads, io], wo)
    return y, iv, io


def main():
    args = parse_args()
    results = []
    torch.manual_seed(0)
    call = f"switchhead(x, heads: {H}, experts: {E}, head_dim: {DH}, top_k: {K})"
    c = Case(args, "switchhead", model_source(call, D, max_t=128))
    set_weights(c, perturb(c.weights, seed=1))
    names = sorted(c.weights)
    want_names = ["layer.k.weight", "layer.o", "layer.q.weight", "layer.sel_o", "layer.sel_v", "layer.v"]
    ok = names == want_names and list(c.weights["layer.v"].shape) == [H * E, D, DH] \
        and list(c.weights["layer.o"].shape) == [H * E, DH, D]
    print(f"{'ok' if ok else 'FAIL'}: parameter names and shapes {[(n, list(c.weights[n].shape)) for n in names]}")
    results.append(ok)
    cpath = os.path.join(args.workdir, "switchhead.count.json")
    for T in (1, 7, 64):
        x = torch.randn(T, D)
        want, iv, io = switchhead_ref(c.weights, "layer.", x.double())
        dense, _, _ = switchhead_ref(c.weights, "layer.", x.double(), dense=True)
        results.append(check(f"reference T={T}: gather form vs dense form", want, dense, 1e-12))
        want_rows = [[int((iv[:, h, :] == e).any(-1).sum()) for e in range(E)] for h in range(H)] + \
                    [[int((io[:, h, :] == e).any(-1).sum()) for e in range(E)] for h in range(H)]
        results += check_routed(c, x, want, want_rows, cpath, f"switchhead T={T}", "each head's mixture runs T*k rows")
    return summary(results)


if __name__ == "__main__":
    sys.exit(main())
