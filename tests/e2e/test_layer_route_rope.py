#!/usr/bin/env python3
"""`rope` inside skip, route and mixture bodies (docs/language.md "Skips",
"Routes", "Mixtures"): the rows a region runs on are a gathered subset of the
call's tokens, and each must be rotated at the absolute position of its token
in the whole sequence (pos0 + t), not at its row number in the region nor at
its packed KV-cache row. References are float64 PyTorch written from the math
(rotate-half RoPE, inv_freq_i = 10000^(-2i/d); causal softmax attention;
Mixture-of-Depths routing per call, docs/layers.md, "Skips and residual gates"):

- mod_rope_attention: a Mixture-of-Depths-routed gated attention block with
  RoPE on q and k (Qwen-style output gate sigmoid(W_g n)). The routed tokens
  of all calls form one packed causal sequence (its KV cache holds only
  them), but q and k are rotated at the tokens' own positions.
- skip_rope: a token-by-token branch with RoPE under `skip when` (no
  attention, so nothing is packed).
- mixture_rope: top-1 of 2 experts, each rotating its own projection.

Prefill, decode (one token per call) and chunks of 4, through the
interpreter and the generated C (or the LLVM JIT with --backend jit)."""
import math

import torch

from e2e_util import Case, check, parse_args, perturb, set_weights

D, H = 16, 2
DK = D // H
F_ = torch.nn.functional


def rms(x, w, eps=1e-5):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, base=10000.0):
    """x [n, H, d] rotated (rotate-half) at positions pos [n]."""
    d = x.shape[-1]
    half = d // 2
    inv = base ** (-torch.arange(half, dtype=torch.float64) * 2 / d)
    ang = pos.double()[:, None] * inv[None, :]
    c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)


def router_keep(score, cap, tau):
    n = len(score)
    keep = torch.zeros(n, dtype=torch.bool)
    if n == 1:
        keep[0] = bool(torch.sigmoid(score[0]) >= tau)
        return keep
    m = max(1, math.ceil(cap * n - 1e-9))
    keep[torch.sort(-score, stable=True).indices[:m]] = True
    return keep


ATTN_SRC = f"""import std
layer rope_gated_attn(n: f32[T, D]) -> f32[T, D] {{
  q = rope(linear(n, D) @ "q" as [T, {H}, D / {H}])
  k = rope(linear(n, D) @ "k" as [T, {H}, D / {H}])
  v = linear(n, D) @ "v" as [T, {H}, D / {H}]
  g = sigmoid(linear(n, D) @ "g")
  return linear(g * (attention(q, k, v) as [T, D]), D) @ "o"
}}
model mod_rope_attention {{
  max T = 128
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  h = x
  n = rms_norm(h) @ "norm"
  r = linear(n, 1) @ "router"
  h = h + r * rope_gated_attn(n) @ "attn" route top(0.5 * T, threshold: 0.5) by r
  y = h
}}
"""


def ref_attn(x, W, chunk, packed_pos=False):
    n = rms(x, W["norm.weight"])
    r = (n @ W["router.weight"].T)[:, 0]
    keep = torch.zeros(x.shape[0], dtype=torch.bool)
    for t0 in range(0, x.shape[0], chunk):
        keep[t0:t0 + chunk] = router_keep(r[t0:t0 + chunk], 0.5, 0.5)
    idx = keep.nonzero()[:, 0]  # absolute positions of the routed tokens
    ns = n[idx]
    P = len(idx)
    q, k, v = ((ns @ W[f"attn.{w}.weight"].T).view(P, H, DK) for w in "qkv")
    pos = torch.arange(P) if packed_pos else idx  # packed_pos: the wrong positions, for the control
    q, k = rope(q, pos), rope(k, pos)
    q, k, v = (z.transpose(0, 1) for z in (q, k, v))
    s = q @ k.transpose(1, 2) / math.sqrt(DK)
    s = s.masked_fill(torch.triu(torch.ones(P, P, dtype=torch.bool), 1), float("-inf"))
    o = (torch.softmax(s, -1) @ v).transpose(0, 1).reshape(P, D)
    g = torch.sigmoid(ns @ W["attn.g.weight"].T)
    y = x.clone()
    y[idx] = x[idx] + r[idx, None] * ((g * o) @ W["attn.o.weight"].T)
    return y


SKIP_SRC = f"""import std
model skip_rope {{
  max T = 128
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  h = x
  n = rms_norm(h) @ "norm"
  r = linear(n, 1) @ "router"
  h = h + linear(rope(linear(n, {D}) @ "p" as [T, {H}, {DK}]) as [T, {D}], {D}) @ "o" skip when sigmoid(r as [T]) < 0.5
  y = h
}}
"""


def ref_skip(x, W, chunk):
    n = rms(x, W["norm.weight"])
    r = (n @ W["router.weight"].T)[:, 0]
    keep = torch.sigmoid(r) >= 0.5
    pos = torch.arange(x.shape[0])
    p = rope((n @ W["p.weight"].T).view(-1, H, DK), pos).reshape(-1, D) @ W["o.weight"].T
    return torch.where(keep[:, None], x + p, x)


MIX_SRC = f"""import std
model mixture_rope {{
  max T = 128
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  p = softmax(linear(x, 2) @ "gate")
  w, idx = topk(p, 1)
  y = mixture e in 0..2 by idx weighted w {{
    return linear(rope(linear(x, {D}) @ "experts.{{e}}.p" as [T, {H}, {DK}], base: 500.0) as [T, {D}], {D}) @ "experts.{{e}}.o"
  }}
}}
"""


def ref_mix(x, W, chunk):
    p = torch.softmax(x @ W["gate.weight"].T, -1)
    w, idx = p.max(-1)
    pos = torch.arange(x.shape[0])
    y = torch.zeros_like(x)
    for e in range(2):
        f = f"experts.{e}."
        ye = rope((x @ W[f + "p.weight"].T).view(-1, H, DK), pos, base=500.0).reshape(-1, D) @ W[f + "o.weight"].T
        y = torch.where((idx == e)[:, None], w[:, None] * ye, y)
    return y


CASES = [("mod_rope_attention", ATTN_SRC, ref_attn), ("skip_rope", SKIP_SRC, ref_skip),
         ("mixture_rope", MIX_SRC, ref_mix)]


def main():
    args = parse_args()
    passed = failed = 0
    for name, src, ref in CASES:
        c = Case(args, name, src)
        W = perturb(c.weights, seed=5, scale=0.2)
        g = torch.Generator().manual_seed(9)
        for k in W:  # router scores of both signs and spread out
            if k.endswith("router.weight"):
                W[k] = torch.randn(W[k].shape, generator=g, dtype=torch.float64) * 0.6
            if k.endswith("q.weight") or k.endswith("k.weight") or k.endswith("p.weight"):
                W[k] = W[k] * 3  # large rotated features: a wrong position shows
        set_weights(c, W)
        for T in (7, 40):
            x = torch.randn(T, D, generator=torch.Generator().manual_seed(300 + T), dtype=torch.float64)
            runs = [("interp prefill", T, {}), ("C prefill", T, dict(compiled=True)),
                    ("interp decode", 1, dict(step=1)), ("C decode", 1, dict(step=1, compiled=True)),
                    ("interp chunks of 4", 4, dict(step=4)), ("C chunks of 4", 4, dict(step=4, compiled=True))]
            for label, chunk, kw in runs:
                want = ref(x, c.weights, chunk)
                got = c.run({"x": x.float()}, tag=f"T{T}_{label.replace(' ', '_')}", **kw)
                ok = check(f"{name} T={T} {label}", got["y"], want, 1e-4)
                passed += ok
                failed += not ok
        # control: the packed row numbers as RoPE positions (what a region without
        # the tokens' own positions would use) must be far off the reference
        if name == "mod_rope_attention":
            x = torch.randn(40, D, generator=torch.Generator().manual_seed(340), dtype=torch.float64)
            want, wrong = ref(x, c.weights, 40), ref_attn(x, c.weights, 40, packed_pos=True)
            rel = ((want - wrong).abs().max() / want.abs().max()).item()
            ok = rel > 1e-2
            print(f"{'ok' if ok else 'FAIL'}: packed positions instead of absolute ones differ by {rel:.3g} (> 1e-2)")
            passed += ok
            failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
