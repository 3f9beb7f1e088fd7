#!/usr/bin/env python3
"""Gated softmax attention (std `gated_attention`, `gated_attention_qknorm`,
`qwen_gated_attention`, `qwen3_next_attention`; compiler/front/std/attention.gat)
against a PyTorch reference written from the math of
docs/layers.md, "Gated softmax attention" (float64, the full T x T attention
matrix with an explicit causal / window mask).

Metric: max |gattnc - ref| / max |ref| over the layer output, tolerance 1e-4.
The default layer (elementwise gate, GQA 4 query / 2 KV heads) runs for T in
{1, 7, 64, 1024}: the interpreter and the compiled C, each as one prefill call
and as T one-token calls (--step 1). The variants (headwise gate, sliding
window, q/k RMSNorm plain and 1+w, the fused q_proj layouts of the Qwen
checkpoints, partial RoPE) run at T = 40: interpreter prefill and decode, C
prefill, and C decode for the windowed ones. The float64 reference is itself checked against an independent
per-query loop."""
import math
import sys

import torch
import torch.nn.functional as F

from e2e_util import check, parse_args
from e2e_util import sweep
from e2e_util import variant as _variant

RTOL = 1e-4
D, H, HKV = 32, 4, 2


def lin(W, name, x):
    y = x @ W[name + ".weight"].T
    if name + ".bias" in W:
        y = y + W[name + ".bias"]
    return y


def rope(x, base=10000.0, dims=None):
    """Rotate-half RoPE on the first `dims` features of each head, positions 0..T-1."""
    Tn, _, d = x.shape
    dims = dims or d
    half = dims // 2
    inv = base ** (-torch.arange(half, dtype=torch.float64) * 2 / dims)
    ang = torch.arange(Tn, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    a, b, rest = x[..., :half], x[..., half:dims], x[..., dims:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin, rest], -1)


def rms(x, w, eps, plus_one=False):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * ((1 + w) if plus_one else w)


def sdpa(q, k, v, window=0, bias=None):
    """softmax(q k^T d^-1/2 + bias + mask) v; q [T, H, d], k/v [T, Hkv, *];
    mask: causal, and with window W > 0 only the last W keys; bias [H, T, T]."""
    Tn, Hq, d = q.shape
    rep = Hq // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    logits = torch.einsum("thd,shd->hts", q, k) * d ** -0.5
    if bias is not None:
        logits = logits + bias
    i = torch.arange(Tn)[:, None]
    j = torch.arange(Tn)[None, :]
    keep = (j <= i) & ((j > i - window) if window > 0 else True)
    att = torch.softmax(logits.masked_fill(~keep, -math.inf), -1)
    return torch.einsum("hts,shd->thd", att, v)


def sdpa_loop(q, k, v, window=0):
    """The same, one query at a time (checks the masked-matrix form)."""
    Tn, Hq, d = q.shape
    rep = Hq // k.shape[1]
    out = torch.zeros(Tn, Hq, v.shape[-1], dtype=torch.float64)
    for t in range(Tn):
        lo = max(0, t - window + 1) if window > 0 else 0
        for h in range(Hq):
            s = torch.stack([q[t, h] @ k[j, h // rep] for j in range(lo, t + 1)]) * d ** -0.5
            p = torch.softmax(s, 0)
            out[t, h] = sum(p[j - lo] * v[j, h // rep] for j in range(lo, t + 1))
    return out


def gated_attention_ref(W, p, x, heads=H, kv_heads=HKV, window=0, headwise=False, qknorm=None, eps=1e-6):
    """qknorm: None, "plain" or "plus_one"."""
    Tn, _ = x.shape
    d = D // heads
    q = lin(W, p + "q_proj", x).view(Tn, heads, d)
    k = lin(W, p + "k_proj", x).view(Tn, kv_heads, d)
    if qknorm:
        q = rms(q, W[p + "q_norm.weight"], eps, qknorm == "plus_one")
        k = rms(k, W[p + "k_norm.weight"], eps, qknorm == "plus_one")
    q, k = rope(q), rope(k)
    v = lin(W, p + "v_proj", x).view(Tn, kv_heads, d)
    g = torch.sigmoid(lin(W, p + "g_proj", x).view(Tn, heads, 1 if headwise else d))
    o = sdpa(q, k, v, window) * g
    return lin(W, p + "o_proj", o.reshape(Tn, heads * d))


def qwen_gated_ref(W, p, x, heads=H, kv_heads=HKV, headwise=False, eps=1e-6):
    """qiuzh20 modeling_qwen3.py: q_proj viewed [T, Hkv, G*d + G*gd], split per KV group."""
    Tn, _ = x.shape
    d, G = D // heads, heads // kv_heads
    gd = 1 if headwise else d
    qg = lin(W, p + "q_proj", x).view(Tn, kv_heads, G * (d + gd))
    q, g = torch.split(qg, [G * d, G * gd], -1)
    q = rope(rms(q.reshape(Tn, heads, d), W[p + "q_norm.weight"], eps))
    g = torch.sigmoid(g.reshape(Tn, heads, gd))
    k = rope(rms(lin(W, p + "k_proj", x).view(Tn, kv_heads, d), W[p + "k_norm.weight"], eps))
    v = lin(W, p + "v_proj", x).view(Tn, kv_heads, d)
    o = sdpa(q, k, v) * g
    return lin(W, p + "o_proj", o.reshape(Tn, heads * d))


def qwen3_next_ref(W, p, x, heads=H, kv_heads=HKV, rope_dims=4, eps=1e-6):
    """HF Qwen3-Next: q_proj viewed [T, H, 2d] -> chunk (q, gate); Gemma norms; partial RoPE."""
    Tn, _ = x.shape
    d = D // heads
    q, g = torch.chunk(lin(W, p + "q_proj", x).view(Tn, heads, 2 * d), 2, -1)
    q = rope(rms(q, W[p + "q_norm.weight"], eps, True), dims=rope_dims)
    k = rope(rms(lin(W, p + "k_proj", x).view(Tn, kv_heads, d), W[p + "k_norm.weight"], eps, True), dims=rope_dims)
    v = lin(W, p + "v_proj", x).view(Tn, kv_heads, d)
    o = sdpa(q, k, v) * torch.sigmoid(g)
    return lin(W, p + "o_proj", o.reshape(Tn, heads * d))





def variant(args, name, call, ref, T=40, seed=10, c_decode=False):
    return _variant(args, name, call, ref, D, T=T, seed=seed, c_decode=c_decode, rtol=RTOL)


def main():
    args = parse_args()
    results = []
    # the reference's masked-matrix attention against a per-query loop
    torch.manual_seed(3)
    q, k, v = torch.randn(20, 4, 8, dtype=torch.float64), torch.randn(20, 2, 8, dtype=torch.float64), \
        torch.randn(20, 2, 6, dtype=torch.float64)
    results.append(check("reference: masked matrix vs per-query loop", sdpa(q, k, v), sdpa_loop(q, k, v), 1e-12))
    results.append(check("reference: window 5, masked matrix vs loop", sdpa(q, k, v, 5), sdpa_loop(q, k, v, 5), 1e-12))

    results += sweep(args, "gated_attention", f"gated_attention(x, heads: {H}, kv_heads: {HKV})",
                     lambda W, p, x: gated_attention_ref(W, p, x), D)
    results += variant(args, "gattn_hw_window", f"gated_attention(x, heads: {H}, headwise: true, window: 6)",
                       lambda W, p, x: gated_attention_ref(W, p, x, kv_heads=H, headwise=True, window=6), c_decode=True)
    results += variant(args, "gattn_qknorm",
                       f"gated_attention_qknorm(x, heads: {H}, kv_heads: {HKV}, headwise: true, window: 9)",
                       lambda W, p, x: gated_attention_ref(W, p, x, headwise=True, window=9, qknorm="plain"),
                       c_decode=True)
    results += variant(args, "gattn_qknorm1w", f"gated_attention(x, heads: {H}, kv_heads: 1, qk_norm: true, plus_one: true)",
                       lambda W, p, x: gated_attention_ref(W, p, x, kv_heads=1, qknorm="plus_one"))
    results += variant(args, "qwen_gated", f"qwen_gated_attention(x, heads: {H}, kv_heads: {HKV})",
                       lambda W, p, x: qwen_gated_ref(W, p, x))
    results += variant(args, "qwen_gated_hw", f"qwen_gated_attention(x, heads: {H}, kv_heads: {HKV}, headwise: true, "
                                              "bias: true)",
                       lambda W, p, x: qwen_gated_ref(W, p, x, headwise=True))
    results += variant(args, "qwen3_next", f"qwen3_next_attention(x, heads: {H}, kv_heads: {HKV}, rope_dims: 4)",
                       lambda W, p, x: qwen3_next_ref(W, p, x))
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
