#!/usr/bin/env python3
"""Forgetting attention, FoX (std `forgetting_attention`,
`forgetting_attention_gated`, `forgetting_attention_pro`;
compiler/front/std/attention.gat), against a PyTorch reference written from the
math of docs/layers.md, "Forgetting attention, FoX" in float64:

  f_t = logsigmoid(f_proj x_t) per head, c_t = sum_{s<=t} f_s,
  logit(i, j) = q_i . k_j d^-1/2 + c_i - c_j (j <= i), O = softmax(logit) V.

The reference builds the decay matrix D_ij = sum_{s=j+1..i} f_s from f
directly (not from c), and a second form, the recurrent decode of
naive_attn_decoding style (running max / sum), checks it.

Metric: max |gattnc - ref| / max |ref| over the layer output, tolerance 1e-4.
T in {1, 7, 64, 1024}, interpreter and compiled C, prefill and decode
(--step 1); the gated / q-k-norm / GQA / window variants at T = 40
(interpreter prefill and decode, C prefill; C decode for the windowed ones)."""
import math
import sys

import torch
import torch.nn.functional as F

from e2e_util import check, parse_args
from e2e_util import sweep
from e2e_util import variant as _variant

RTOL = 1e-4
D, H = 32, 2


def lin(W, name, x):
    y = x @ W[name + ".weight"].T
    if name + ".bias" in W:
        y = y + W[name + ".bias"]
    return y


def fox_core(q, k, v, f, window=0):
    """q [T, H, d], k/v [T, Hkv, *], f [T, H] (log forget gates)."""
    Tn, Hq, d = q.shape
    rep = Hq // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    # decay[h, i, j] = sum_{s = j+1 .. i} f[s, h] for j <= i, as L diag(f_h) U with the
    # masks L[i, s] = [s <= i] and U[s, j] = [s > j] (their product is [j < s <= i]);
    # the [i, j, s] indicator tensor itself took 38 s and 8 GB at T = 1024
    s = torch.arange(Tn)
    low = (s[None, :] <= s[:, None]).double()
    up = (s[:, None] > s[None, :]).double()
    decay = torch.einsum("is,sh,sj->hij", low, f, up)
    logits = torch.einsum("thd,shd->hts", q, k) * d ** -0.5 + decay
    i, j = s[:, None], s[None, :]
    keep = (j <= i) & ((j > i - window) if window > 0 else True)
    att = torch.softmax(logits.masked_fill(~keep, -math.inf), -1)
    return torch.einsum("hts,shd->thd", att, v)


def fox_decode_ref(q, k, v, f):
    """Token by token with a running log-sum-exp and the cached cumulative gates."""
    Tn, Hq, d = q.shape
    rep = Hq // k.shape[1]
    c = torch.cumsum(f, 0)
    out = torch.zeros(Tn, Hq, v.shape[-1], dtype=torch.float64)
    for t in range(Tn):
        for h in range(Hq):
            m, ssum, acc = -math.inf, 0.0, torch.zeros(v.shape[-1], dtype=torch.float64)
            for j in range(t + 1):
                l = float(q[t, h] @ k[j, h // rep]) * d ** -0.5 + float(c[t, h] - c[j, h])
                mn = max(m, l)
                acc = acc * math.exp(m - mn) + math.exp(l - mn) * v[j, h // rep]
                ssum = ssum * math.exp(m - mn) + math.exp(l - mn)
                m = mn
            out[t, h] = acc / ssum
    return out


def group_rms(x, w, eps=1e-5):
    Tn, Hh, d = x.shape
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w.view(Hh, d)


def fox_ref(W, p, x, heads=H, kv_heads=None, window=0, gate=False, qknorm=False):
    kv_heads = kv_heads or heads
    Tn, Dm = x.shape
    d = Dm // heads
    q = lin(W, p + "q_proj", x).view(Tn, heads, d)
    k = lin(W, p + "k_proj", x).view(Tn, kv_heads, d)
    v = lin(W, p + "v_proj", x).view(Tn, kv_heads, d)
    if qknorm:
        q, k = group_rms(q, W[p + "q_norm.weight"]), group_rms(k, W[p + "k_norm.weight"])
    f = F.logsigmoid(lin(W, p + "f_proj", x))
    o = fox_core(q, k, v, f, window).reshape(Tn, Dm)
    if gate:
        o = torch.sigmoid(lin(W, p + "g_proj", x)) * o
    return lin(W, p + "o_proj", o)





def variant(args, name, call, ref, T=40, seed=20, c_decode=False):
    return _variant(args, name, call, ref, D, T=T, seed=seed, c_decode=c_decode, rtol=RTOL)


def main():
    args = parse_args()
    results = []
    torch.manual_seed(4)
    q, k, v = (torch.randn(15, 4, 8, dtype=torch.float64), torch.randn(15, 2, 8, dtype=torch.float64),
               torch.randn(15, 2, 5, dtype=torch.float64))
    f = F.logsigmoid(torch.randn(15, 4, dtype=torch.float64))
    results.append(check("reference: decay-matrix form vs running-softmax decode", fox_core(q, k, v, f),
                         fox_decode_ref(q, k, v, f), 1e-12))
    results += sweep(args, "fox", f"forgetting_attention(x, heads: {H})", lambda W, p, x: fox_ref(W, p, x), D)
    results += variant(args, "fox_gated", "forgetting_attention_gated(x, heads: 4, kv_heads: 2, qkv_bias: true)",
                       lambda W, p, x: fox_ref(W, p, x, heads=4, kv_heads=2, gate=True))
    results += variant(args, "fox_pro", "forgetting_attention_pro(x, heads: 4, kv_heads: 2, window: 7)",
                       lambda W, p, x: fox_ref(W, p, x, heads=4, kv_heads=2, window=7, gate=True, qknorm=True),
                       c_decode=True)
    results += variant(args, "fox_window", f"forgetting_attention(x, heads: {H}, window: 5)",
                       lambda W, p, x: fox_ref(W, p, x, window=5), c_decode=True)
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
