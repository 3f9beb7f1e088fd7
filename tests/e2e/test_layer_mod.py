#!/usr/bin/env python3
"""Mixture-of-Depths routing (`x = value route top(c * T [, threshold: tau])
by r`, docs/language.md "Routes"; docs/layers.md, "Skips and residual gates";
Raposo et al. 2024) against float64 PyTorch references written from the
paper's math: per call, r_t = w_r . x_t; the top ceil(c*T) tokens by r (ties to the
earlier token) get x + r_t * Block(x), the others pass through unchanged; a
call of one token (causal decode) with a threshold keeps it iff
sigmoid(r_t) >= tau. Block here is a pre-norm SwiGLU MLP (token by token).

Routing is per call, so the reference is computed per chunk of tokens fed
together: prefill (all tokens), decode (one token per call) and chunks of 4.
The execution counters (`gattnc run --count`: interpreter and a --count build
of the generated C) must show each routed block ran on exactly the tokens
the PyTorch router picks, no more, and once per call that picked any.

Also: a sequence-level router in the Router-Tuning / MindSkip style
(s = sigmoid(router(mean_t x^)), the whole call skips when s < 0.5), written
with `skip when` and a reduction over T."""
import math
import os

import torch

from e2e_util import Case, check, parse_args, perturb, run_counted, set_weights

D, F = 16, 24
F_ = torch.nn.functional


def rms(x, w, eps=1e-5):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def swiglu(x, W, p):
    return (F_.silu(x @ W[p + "gate_proj.weight"].T) * (x @ W[p + "up_proj.weight"].T)) @ W[p + "down_proj.weight"].T


def router_keep(score, cap=None, k=None, tau=None):
    """Tokens one call keeps (score: [n], the call's tokens)."""
    n = len(score)
    keep = torch.zeros(n, dtype=torch.bool)
    if tau is not None and n == 1:
        keep[0] = bool(torch.sigmoid(score[0]) >= tau)
        return keep
    m = max(1, math.ceil(cap * n - 1e-9)) if cap is not None else min(k, n)
    keep[torch.sort(-score, stable=True).indices[:m]] = True  # descending, ties to the earlier token
    return keep


def ref_mod(x, W, chunk, blocks, **route):
    """`blocks` routed blocks in sequence; returns (y, tokens kept per block)."""
    kept = [0] * blocks
    calls = [0] * blocks
    ys = []
    for t0 in range(0, x.shape[0], chunk):
        h = x[t0:t0 + chunk]
        for b in range(blocks):
            p = f"blocks.{b}."
            r = (h @ W[p + "router.weight"].T)[:, 0]
            keep = router_keep(r, **route)
            y = h + r[:, None] * swiglu(rms(h, W[p + "norm.weight"]), W, p + "mlp.")
            h = torch.where(keep[:, None], y, h)
            kept[b] += int(keep.sum())
            calls[b] += int(keep.any())
        ys.append(h)
    return torch.cat(ys), kept, calls


def mod_src(name, top, blocks):
    return f"""import std
model {name} {{
  max T = 128
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  h = x
  repeat b in 0..{blocks} @ "blocks.{{b}}" {{
    r = linear(h, 1) @ "router"
    h = h + r * swiglu(rms_norm(h) @ "norm", hidden: {F}) @ "mlp" route {top} by r
  }}
  y = h
}}
"""


SEQ_SRC = f"""import std
model seq_router {{
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  n = rms_norm(x) @ "norm"
  s = sigmoid(linear(mean(n, axis: 0, keepdim: true), 1) @ "router")   # [1, 1]: one score per call
  skip_all = sum(n * 0, axis: -1) + (s < 0.5) as [1]                  # [T]: the call's decision per token
  h = x
  h = h + swiglu(n, hidden: {F}) @ "mlp" skip when skip_all
  y = h
}}
"""


def ref_seq(x, W, chunk):
    ys, kept, calls = [], 0, 0
    for t0 in range(0, x.shape[0], chunk):
        h = x[t0:t0 + chunk]
        n = rms(h, W["norm.weight"])
        s = torch.sigmoid(n.mean(0) @ W["router.weight"].T)[0]
        run = bool(s >= 0.5)
        ys.append(h + swiglu(n, W, "mlp.") if run else h)
        kept += h.shape[0] if run else 0
        calls += int(run)
    return torch.cat(ys), [kept], [calls]


def attn_src(name, how):
    """One attention block under a route or a skip: its q/k/v projections and
    its attention run on the routed tokens only."""
    return f"""import std
layer attn_block(n: f32[T, D]) -> f32[T, D] {{
  q = linear(n, D) @ "q" as [T, 2, D / 2]
  k = linear(n, D) @ "k" as [T, 2, D / 2]
  v = linear(n, D) @ "v" as [T, 2, D / 2]
  return linear(attention(q, k, v) as [T, D], D) @ "o"
}}
model {name} {{
  max T = 128
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  h = x
  n = rms_norm(h) @ "norm"
  r = linear(n, 1) @ "router"
  {how}
  y = h
}}
"""


def ref_attn(x, W, chunk, weighted, **route):
    """Routing per call; the routed tokens of all calls form one sequence
    (packed KV cache) over which the block's causal attention runs."""
    n = rms(x, W["norm.weight"])
    r = (n @ W["router.weight"].T)[:, 0]
    keep = torch.zeros(x.shape[0], dtype=torch.bool)
    calls = 0
    for t0 in range(0, x.shape[0], chunk):
        if "gate" in route:  # skip when sigmoid(r) < gate
            kc = torch.sigmoid(r[t0:t0 + chunk]) >= route["gate"]
        else:
            kc = router_keep(r[t0:t0 + chunk], **route)
        keep[t0:t0 + chunk] = kc
        calls += int(kc.any())
    idx = keep.nonzero()[:, 0]
    ns = n[idx]
    P = len(idx)
    q, k, v = ((ns @ W[f"attn.{w}.weight"].T).view(P, 2, D // 2).transpose(0, 1) for w in "qkv")
    s = q @ k.transpose(1, 2) / math.sqrt(D // 2)
    s = s.masked_fill(torch.triu(torch.ones(P, P, dtype=torch.bool), 1), float("-inf"))
    o = (torch.softmax(s, -1) @ v).transpose(0, 1).reshape(P, D) @ W["attn.o.weight"].T
    y = x.clone()
    y[idx] = x[idx] + (r[idx, None] * o if weighted else o)
    return y, [int(keep.sum())], [calls]


CASES = [
    ("mod_capacity", mod_src("mod_capacity", "top(0.25 * T)", 2), lambda x, W, ch: ref_mod(x, W, ch, 2, cap=0.25)),
    ("mod_threshold", mod_src("mod_threshold", "top(T / 2, threshold: 0.5)", 1),
     lambda x, W, ch: ref_mod(x, W, ch, 1, cap=0.5, tau=0.5)),
    ("mod_topk", mod_src("mod_topk", "top(3)", 1), lambda x, W, ch: ref_mod(x, W, ch, 1, k=3)),
    ("seq_router", SEQ_SRC, ref_seq),
    ("seq_router_neg", SEQ_SRC.replace("seq_router", "seq_router_neg"), ref_seq),  # router negated: flips prefill
    ("mod_attention", attn_src("mod_attention", 'h = h + r * attn_block(n) @ "attn" route top(0.5 * T, threshold: 0.5) by r'),
     lambda x, W, ch: ref_attn(x, W, ch, True, cap=0.5, tau=0.5)),
    ("skip_attention", attn_src("skip_attention", 'h = h + attn_block(n) @ "attn" skip when sigmoid(r) < 0.5'),
     lambda x, W, ch: ref_attn(x, W, ch, False, gate=0.5)),
]


def main():
    args = parse_args()
    passed = failed = 0
    for name, src, ref in CASES:
        c = Case(args, name, src)
        W = perturb(c.weights, seed=5, scale=0.2)
        g = torch.Generator().manual_seed(9)
        for k in W:  # router scores of both signs and spread out (few near-ties)
            if k.endswith("router.weight"):
                W[k] = torch.randn(W[k].shape, generator=g, dtype=torch.float64) * 0.6
                if name.endswith("_neg"):
                    W[k] = -W[k]
        set_weights(c, W)
        for T in (1, 7, 64):
            x = torch.randn(T, D, generator=torch.Generator().manual_seed(200 + T), dtype=torch.float64)
            runs = [("interp prefill", T, {}), ("C prefill", T, dict(compiled=True))]
            if T == 7:
                runs += [("interp decode", 1, dict(step=1)), ("C decode", 1, dict(step=1, compiled=True)),
                         ("interp chunks of 4", 4, dict(step=4)), ("C chunks of 4", 4, dict(step=4, compiled=True))]
            cpath = os.path.join(args.workdir, f"{name}.count.json")
            for label, chunk, kw in runs:
                want, kept, calls = ref(x, c.weights, chunk)
                got, ops = run_counted(c, {"x": x.float()}, cpath, label.replace(" ", "_"), **kw)
                ok = check(f"{name} T={T} {label}", got["y"], want, 1e-4)
                passed += ok
                failed += not ok
                skips = [o for o in ops if o["kind"] == "skip"]
                rows = [o["rows"] for o in skips]
                ok = rows == kept and [o["calls"] for o in skips] == calls and all(o["tokens"] == T for o in skips)
                print(f"{'ok' if ok else 'FAIL'}: {name} T={T} {label}: block rows {rows} calls "
                      f"{[o['calls'] for o in skips]} == PyTorch router {kept} calls {calls} (of {T} tokens)")
                passed += ok
                failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
