#!/usr/bin/env python3
"""MoH, mixture-of-head attention (std `moh_attention`,
compiler/front/std/mixattn.gat), against float64 PyTorch references written from the
math of docs/layers.md ("Mixture-of-attention layers", MoH):

  o = causal MHA (fused qkv [3, H, d], scale d^-1/2, optional RoPE)
  g_r = softmax(wg x) over the H - h_s routed heads: top K_r kept,
        renormalised over the kept heads, times K_r (others 0)
  g_s = softmax(wg_1 x) * h_s (shared heads, the first h_s)
  [a1, a2] = 2 softmax(wg_0 x);  gates = [a1 g_s, a2 g_r]
  y = proj(concat_h gates_h o_h)

The dense reference multiplies every head by its (scattered, mostly zero)
gate before `proj`; the sparse one adds only the kept heads' slices of the
proj weight. The interpreter's counter (GAT_INTERP_COUNT) must show that a
routed head's output projection ran on exactly the tokens that kept it.

Metric: max |gattnc - ref| / max |ref|, tolerance 1e-4. T in {1, 7, 64},
interpreter and compiled C, prefill and decode (--step 1); a RoPE + qkv-bias
variant at T = 40."""
import os
import sys

import torch

from e2e_util import (Case, causal_softmax, check, check_param_shapes, check_routed, model_source, parse_args, perturb,
                      set_weights, summary, variant)

D, H, S, KR = 32, 8, 2, 3
DH, R = D // H, H - S
F64 = torch.float64


def rope_full(x, base=10000.0):
    d = x.shape[-1]
    inv = base ** (-2.0 * torch.arange(d // 2, dtype=F64) / d)
    ang = torch.arange(x.shape[0], dtype=F64)[:, None] * inv
    c, s = ang.cos()[:, None, :], ang.sin()[:, None, :]
    x1, x2 = x[..., :d // 2], x[..., d // 2:]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)


def moh_ref(W, p, x, dense=False, use_rope=False, qkv_bias=False):
    T = x.shape[0]
    qkv = x @ W[p + "qkv.weight"].T + (W[p + "qkv.bias"] if qkv_bias else 0)
    q, k, v = qkv.view(T, 3, H, DH).unbind(1)
    if use_rope:
        q, k = rope_full(q), rope_full(k)
    o = torch.einsum("hij,jhd->ihd", causal_softmax(torch.einsum("ihd,jhd->hij", q, k) * DH ** -0.5), v)
    a = 2 * torch.softmax(x @ W[p + "wg_0.weight"].T, -1)
    gs = torch.softmax(x @ W[p + "wg_1.weight"].T, -1) * S * a[:, 0:1]
    gr = torch.softmax(x @ W[p + "wg.weight"].T, -1)
    rw, ri = gr.topk(KR, -1)
    rw = rw / rw.sum(-1, keepdim=True) * KR * a[:, 1:2]
    Wp, bp = W[p + "proj.weight"], W[p + "proj.bias"]
    if dense:
        gates = torch.cat([gs, torch.zeros(T, R, dtype=F64).scatter(1, ri, rw)], -1)
        return (o * gates[:, :, None]).reshape(T, D) @ Wp.T + bp, ri
    Wh = Wp.view(D, H, DH).permute(1, 2, 0)  # [H, d, D]: head h's slice of proj, transposed
    y = torch.einsum("thd,th,hdc->tc", o[:, :S], gs, Wh[:S]) + bp
    return y + torch.einsum("tkd,tk,tkdc->tc", o[torch.arange(T)[:, None], S + ri], rw, Wh[S + ri]), ri


def main():
    args = parse_args()
    results = []
    torch.manual_seed(0)
    call = f"moh_attention(x, heads: {H}, shared_heads: {S}, top_k: {KR})"
    c = Case(args, "moh", model_source(call, D, max_t=128))
    W = perturb(c.weights, seed=1, scale=0.3)
    W["layer.wg.weight"] = W["layer.wg.weight"] * 5  # a sharper router: fewer near-ties
    set_weights(c, W)
    want_shapes = {"layer.qkv.weight": [3 * D, D], "layer.proj.weight": [D, D], "layer.proj.bias": [D],
                   "layer.wg.weight": [R, D], "layer.wg_1.weight": [S, D], "layer.wg_0.weight": [2, D]}
    results.append(check_param_shapes(c, want_shapes))
    cpath = os.path.join(args.workdir, "moh.count.json")
    for T in (1, 7, 64):
        x = torch.randn(T, D)
        want, ri = moh_ref(c.weights, "layer.", x.double())
        dense, _ = moh_ref(c.weights, "layer.", x.double(), dense=True)
        results.append(check(f"reference T={T}: kept-heads form vs dense gated form", want, dense, 1e-12))
        want_rows = [[int((ri == h).any(-1).sum()) for h in range(R)]]
        results += check_routed(c, x, want, want_rows, cpath, f"moh T={T}",
                                "routed heads: T*K_r rows, unchosen heads' projections not run")
    results += variant(args, "moh_rope_bias",
                       f"moh_attention(x, heads: {H}, shared_heads: {S}, top_k: {KR}, use_rope: true, qkv_bias: true)",
                       lambda W, p, x: moh_ref(W, p, x, use_rope=True, qkv_bias=True)[0], D)
    return summary(results)


if __name__ == "__main__":
    sys.exit(main())
