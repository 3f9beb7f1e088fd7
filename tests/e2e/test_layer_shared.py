#!/usr/bin/env python3
"""The pieces every gated model shares, against PyTorch written from the
definitions of docs/layers.md, "Shared pieces: embedding, RMSNorm, LayerNorm,
RoPE, causal conv, LM head" in float64:

  embedding          rows of weight [vocab, D] (nn.Embedding)
  rms_norm           x / sqrt(mean(x^2) + eps) * w          (fla RMSNorm, eps 1e-5)
  rms_norm plus_one  x / sqrt(mean(x^2) + eps) * (1 + w)    (Gemma / Qwen3-Next, eps 1e-6)
  rms_norm over: V   the same per head of a [T, H, V] tensor, weight [V]
  layer_norm         (x - mean) / sqrt(var + eps) * w + b   (nn.LayerNorm, biased var)
  rope               rotate_half RoPE, base 10000, at absolute positions (full
                     and partial: dims 8 of 16, the rest passes through)
  causal_conv1d      depthwise causal conv, weight [C, 1, W]: silu without bias
                     (kernel 4) and identity with bias (kernel 3); its state
                     (the last W-1 inputs) is checked by decoding one token per
                     call and in chunks of 3 and 5 tokens, shorter and longer
                     than the kernel
  LM head            linear(rms_norm(x) @ "model.norm", vocab) @ "lm_head"

Metric: max |gattnc - ref| / max |ref|, tolerance 1e-4, for T in {1, 7, 64,
1024}, through the interpreter and the compiled C, prefill and decode."""
import sys

import torch
import torch.nn.functional as F

from e2e_util import Case, check, parse_args, perturb, set_weights

RTOL = 1e-4
VOCAB, D, H = 64, 32, 2
HD = D // H

SRC = f"""import std
model m {{
  max T = 1024
  input ids : i32[T]
  input x : f32[T, {D}]
  output y_emb : f32[T, {D}]
  output y_rms : f32[T, {D}]
  output y_rms1 : f32[T, {D}]
  output y_rms_head : f32[T, {H}, {HD}]
  output y_ln : f32[T, {D}]
  output y_rope : f32[T, {H}, {HD}]
  output y_rope_part : f32[T, {H}, {HD}]
  output y_conv : f32[T, {D}]
  output y_conv_b : f32[T, {D}]
  output logits : f32[T, {VOCAB}]
  e = embedding(ids, {VOCAB}, {D}) @ "model.embeddings"
  y_emb = e
  y_rms = rms_norm(x) @ "rms"
  y_rms1 = rms_norm(x, eps: 1e-6, plus_one: true) @ "rms1"
  y_rms_head = rms_norm(x as [T, {H}, {HD}], over: {HD}) @ "rms_head"
  y_ln = layer_norm(x) @ "ln"
  y_rope = rope(x as [T, {H}, {HD}])
  y_rope_part = rope(x as [T, {H}, {HD}], base: 500.0, dims: 8)
  y_conv = causal_conv1d(x, kernel: 4, act: "silu") @ "conv"
  y_conv_b = causal_conv1d(x, kernel: 3, act: "none", bias: true) @ "conv_b"
  logits = linear(rms_norm(e + x) @ "model.norm", {VOCAB}) @ "lm_head"
}}
"""

NAMES = {"model.embeddings.weight": [VOCAB, D], "rms.weight": [D], "rms1.weight": [D],
         "rms_head.weight": [HD], "ln.weight": [D], "ln.bias": [D], "conv.weight": [D, 1, 4],
         "conv_b.weight": [D, 1, 3], "conv_b.bias": [D], "model.norm.weight": [D],
         "lm_head.weight": [VOCAB, D]}


def rms_norm(x, w, eps=1e-5):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def rope(x, pos, base=10000.0, dims=None):
    """rotate_half on the first `dims` features; inv_freq_i = base^(-2i/dims)."""
    dims = dims or x.shape[-1]
    half = dims // 2
    inv = base ** (-2.0 * torch.arange(half, dtype=torch.float64) / dims)
    ang = pos.double()[:, None] * inv[None, :]  # [T, half]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:dims]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x[..., dims:]], -1)


def causal_conv(x, w, b=None, act=None):
    """y[t, c] = act(sum_j w[c, 0, j] x[t - W + 1 + j, c] + b[c]), zeros before t = 0."""
    Tn, C = x.shape
    W = w.shape[-1]
    xp = torch.cat([torch.zeros(W - 1, C, dtype=x.dtype), x], 0)
    y = sum(w[:, 0, j] * xp[j:j + Tn] for j in range(W))
    if b is not None:
        y = y + b
    return F.silu(y) if act == "silu" else y


def references(W, ids, x):
    Tn = x.shape[0]
    pos = torch.arange(Tn)
    xh = x.view(Tn, H, HD)
    e = W["model.embeddings.weight"][ids.long()]
    return {
        "y_emb": e,
        "y_rms": rms_norm(x, W["rms.weight"]),
        "y_rms1": rms_norm(x, 1 + W["rms1.weight"], 1e-6),
        "y_rms_head": rms_norm(xh, W["rms_head.weight"]),
        "y_ln": layer_norm(x, W["ln.weight"], W["ln.bias"]),
        "y_rope": rope(xh, pos),
        "y_rope_part": rope(xh, pos, base=500.0, dims=8),
        "y_conv": causal_conv(x, W["conv.weight"], act="silu"),
        "y_conv_b": causal_conv(x, W["conv_b.weight"], W["conv_b.bias"]),
        "logits": rms_norm(e + x, W["model.norm.weight"]) @ W["lm_head.weight"].T,
    }


def main():
    args = parse_args()
    torch.manual_seed(0)
    results = []
    c = Case(args, "layer_shared", SRC)
    got = {k: list(v.shape) for k, v in c.weights.items()}
    ok = got == NAMES
    print(f"{'ok' if ok else 'FAIL'}: parameter names and shapes ({len(NAMES)} tensors)")
    if not ok:
        print("  got:", got)
    results.append(ok)
    # init rules: norm weights 1 (plus_one: 0), layer_norm bias 0
    W = c.weights
    ok = bool((W["rms.weight"] == 1).all() and (W["rms1.weight"] == 0).all()
              and (W["ln.weight"] == 1).all() and (W["ln.bias"] == 0).all())
    print(f"{'ok' if ok else 'FAIL'}: norm inits (weight 1, plus_one weight 0, layer_norm bias 0)")
    results.append(ok)

    set_weights(c, perturb(c.weights, seed=1, scale=0.3))
    for Tn in (1, 7, 64, 1024):
        ids = torch.randint(0, VOCAB, (Tn,), dtype=torch.int32)
        x = torch.randn(Tn, D) + 0.5  # a nonzero mean, so layer_norm's centring matters
        ref = references(c.weights, ids, x.double())
        runs = [("interp prefill", dict()), ("interp decode", dict(step=1)),
                ("C prefill", dict(compiled=True)), ("C decode", dict(step=1, compiled=True))]
        if Tn == 64:
            runs += [("interp step 3", dict(step=3)), ("C step 5", dict(step=5, compiled=True))]
        for label, kw in runs:
            out = c.run({"ids": ids, "x": x}, tag=f"T{Tn}.{label.replace(' ', '_')}", **kw)
            for name in ref:
                results.append(check(f"T={Tn} {name} {label}", out[name], ref[name], RTOL))
    n_ok = sum(results)
    print(f"{n_ok} passed, {len(results) - n_ok} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
