#!/usr/bin/env python3
"""Whole example models (examples/*.gat) through the front end and the
interpreter, against PyTorch implementations written from the math of
docs/layers.md in float64.

Metric: max |gattnc - ref| / max |ref| over the logits; tolerance 1e-4 (f32
storage between ops, several layers deep). Each model runs as one prefill call
and as one-token calls (--step 1); the skip test also checks that some tokens
really skip and some do not."""
import math
import os
import sys

import torch
import torch.nn.functional as F

from e2e_util import Case, check, parse_args, perturb, set_weights

RTOL = 1e-4
SRC = os.environ.get("GAT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


def rms(x, w, eps=1e-5):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def lin(W, name, x):
    y = x @ W[name + ".weight"].T
    if name + ".bias" in W:
        y = y + W[name + ".bias"]
    return y


def swiglu(W, p, x):
    return lin(W, p + ".down_proj", F.silu(lin(W, p + ".gate_proj", x)) * lin(W, p + ".up_proj", x))


def gla(W, p, x, H):
    Tn, D = x.shape
    K, V = D // 2 // H, D // H
    q = lin(W, p + ".q_proj", x).view(Tn, H, K)
    k = lin(W, p + ".k_proj", x).view(Tn, H, K)
    v = lin(W, p + ".v_proj", x).view(Tn, H, V)
    gk = (F.logsigmoid(lin(W, p + ".gk_proj.1", lin(W, p + ".gk_proj.0", x))) / 16).view(Tn, H, K)
    S = torch.zeros(H, K, V, dtype=torch.float64)
    o = torch.zeros(Tn, H, V, dtype=torch.float64)
    for t in range(Tn):
        S = torch.exp(gk[t])[:, :, None] * S + k[t][:, :, None] * v[t][:, None, :]
        o[t] = torch.einsum("hk,hkv->hv", q[t] * K ** -0.5, S)
    o = rms(o, W[p + ".g_norm_swish_gate.weight"]) * F.silu(lin(W, p + ".g_proj", x).view(Tn, H, V))
    return lin(W, p + ".o_proj", o.reshape(Tn, H * V))


def rope(x, base=10000.0):
    Tn, H, d = x.shape
    half = d // 2
    freq = base ** (-torch.arange(half, dtype=torch.float64) * 2 / d)
    ang = torch.arange(Tn, dtype=torch.float64)[:, None] * freq[None, :]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def gated_attention(W, p, x, H, Hkv):
    Tn, D = x.shape
    d = D // H
    q = rope(lin(W, p + ".q_proj", x).view(Tn, H, d))
    k = rope(lin(W, p + ".k_proj", x).view(Tn, Hkv, d))
    v = lin(W, p + ".v_proj", x).view(Tn, Hkv, d)
    k = k.repeat_interleave(H // Hkv, dim=1)
    v = v.repeat_interleave(H // Hkv, dim=1)
    logits = torch.einsum("thd,shd->hts", q, k) * d ** -0.5
    mask = torch.ones(Tn, Tn, dtype=torch.bool).tril()
    att = torch.softmax(logits.masked_fill(~mask, -math.inf), -1)
    o = torch.einsum("hts,shd->thd", att, v)
    o = o * torch.sigmoid(lin(W, p + ".g_proj", x).view(Tn, H, d))
    return lin(W, p + ".o_proj", o.reshape(Tn, D))


def moe(W, p, x, E, k):
    """Dense reference: every expert on every token, weighted by the renormalised top-k."""
    probs = torch.softmax(lin(W, p + ".gate", x), -1)
    w, idx = torch.topk(probs, k, -1)
    w = w / w.sum(-1, keepdim=True)
    dense = torch.stack([swiglu(W, f"{p}.experts.{e}", x) for e in range(E)], 1)  # [T, E, D]
    return (dense.gather(1, idx[:, :, None].expand(-1, -1, x.shape[1])) * w[:, :, None]).sum(1)


def test_tiny_lm(args):
    c = Case(args, "tiny_lm", open(os.path.join(SRC, "examples", "tiny_lm.gat")).read())
    set_weights(c, perturb(c.weights))
    W = c.weights
    T = 24
    tokens = torch.randint(0, 256, (T,), dtype=torch.int32)
    x = W["model.embeddings.weight"][tokens.long()]
    for i in range(2):
        p = f"model.layers.{i}"
        x = x + gla(W, p + ".attn", rms(x, W[p + ".attn_norm.weight"]), H=4)
        x = x + swiglu(W, p + ".mlp", rms(x, W[p + ".mlp_norm.weight"]))
    want = lin(W, "lm_head", rms(x, W["model.norm.weight"]))
    ok = check("tiny_lm prefill", c.run({"tokens": tokens})["logits"], want, RTOL)
    ok &= check("tiny_lm decode", c.run({"tokens": tokens}, step=1, tag="dec")["logits"], want, RTOL)
    ok &= check("tiny_lm compiled C prefill", c.run({"tokens": tokens}, compiled=True)["logits"], want, RTOL)
    ok &= check("tiny_lm compiled C decode", c.run({"tokens": tokens}, step=1, tag="dec", compiled=True)["logits"], want, RTOL)
    return ok


def hybrid_ref(W, tokens, tau):
    x = W["model.embed_tokens.weight"][tokens.long()]
    p = "model.layers.0"
    x = x + gated_attention(W, p + ".self_attn", rms(x, W[p + ".input_layernorm.weight"]), H=4, Hkv=2)
    x = x + moe(W, p + ".mlp", rms(x, W[p + ".post_attention_layernorm.weight"]), E=4, k=2)
    p = "model.layers.1"
    x = x + gla(W, p + ".attn", rms(x, W[p + ".attn_norm.weight"]), H=4)
    h = rms(x, W[p + ".mlp_norm.weight"])
    g = torch.sigmoid(lin(W, p + ".mlp_gate", h))
    skip = g.mean(-1) < tau
    x = torch.where(skip[:, None], x, x + g * swiglu(W, p + ".mlp", h))
    return lin(W, "lm_head", rms(x, W["model.norm.weight"])), skip, g.mean(-1)


def test_hybrid(args):
    src = open(os.path.join(SRC, "examples", "hybrid.gat")).read()
    assert "skip when mean(g) < 0.1" in src
    T = 20
    tokens = torch.randint(0, 256, (T,), dtype=torch.int32)
    # First pass: find a threshold that skips about half the tokens under
    # weights whose GateSkip gate varies (init has bias 5: nothing would skip).
    c = Case(args, "hybrid_probe", src)
    W = perturb(c.weights)
    W["model.layers.1.mlp_gate.weight"] = torch.randn(64, 64, dtype=torch.float64) * 0.3
    W["model.layers.1.mlp_gate.bias"] = torch.zeros(64, dtype=torch.float64)
    W = {k: v.float().double() for k, v in W.items()}
    _, _, gm = hybrid_ref(W, tokens, 0.0)
    s = gm.sort().values
    # the widest gap between neighbouring values in the middle half, so f32
    # rounding cannot flip a token's decision
    i = max(range(T // 4, 3 * T // 4), key=lambda j: float(s[j + 1] - s[j]))
    tau = float((s[i] + s[i + 1]) / 2)
    c = Case(args, "hybrid", src.replace("skip when mean(g) < 0.1", f"skip when mean(g) < {tau!r}"))
    set_weights(c, W)
    want, skip, _ = hybrid_ref(c.weights, tokens, tau)
    print(f"GateSkip threshold {tau:.6f}: {int(skip.sum())} of {T} tokens skip the MLP branch")
    ok = 0 < int(skip.sum()) < T
    ok &= check("hybrid prefill", c.run({"tokens": tokens})["logits"], want, RTOL)
    ok &= check("hybrid decode", c.run({"tokens": tokens}, step=1, tag="dec")["logits"], want, RTOL)
    ok &= check("hybrid compiled C prefill", c.run({"tokens": tokens}, compiled=True)["logits"], want, RTOL)
    ok &= check("hybrid compiled C decode", c.run({"tokens": tokens}, step=1, tag="dec", compiled=True)["logits"], want, RTOL)
    return ok


def main():
    args = parse_args()
    torch.manual_seed(0)
    results = [f(args) for f in (test_tiny_lm, test_hybrid)]
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
