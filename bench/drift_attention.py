#!/usr/bin/env python3
"""Long-sequence drift of the recurrences in compiler/front/std/{attention,mega}.gat:
the Mega EMA (`mega_ema`, a scan with state [D, n]) and the forget-gate
cumulative sum of forgetting attention (`forgetting_attention`, whose
c_t = sum f_s grows like t and is stored in f32 in the KV cache's key bias).
gattnc's f32 against the float64 references of tests/e2e/test_layer_{mega,fox}.py.

Rows: `mega_ema` (perturbed `gattnc init` weights, q = 1 - p sigmoid(alpha)
around 0.75: short memory), `mega_ema_long` (alpha = -7, so q ~ 0.9995: a
memory of ~2000 tokens), `fox` (perturbed init: f = logsigmoid(~0) ~ -0.69,
so |c_T| ~ 0.69 T), `fox_slow` (f_proj bias +5: f ~ -0.007, the nearly-open
gates of trained FoX models). Prints max|err| / max|ref| over the whole
sequence and over its last 1024 tokens, for the compiled C (prefill and
one-token decode) and, for the EMA, the interpreter. Not part of ctest.

usage: /usr/bin/python3 bench/drift_attention.py --gattnc build/gattnc [--workdir DIR] [--T 16384]"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))

from e2e_util import Case, perturb, set_weights  # noqa: E402
from test_layer_mega import ema_rec  # noqa: E402
from test_layer_retnet import model_source  # noqa: E402

D, H = 32, 2


def lin(W, name, x):
    y = x @ W[name + ".weight"].T
    if name + ".bias" in W:
        y = y + W[name + ".bias"]
    return y


def fox_blocked(W, p, x, block=512):
    """Forgetting attention in float64, queries in blocks (the full T x T
    matrix would not fit): logits + c_i - c_j, causal."""
    Tn, Dm = x.shape
    d = Dm // H
    q = lin(W, p + "q_proj", x).view(Tn, H, d)
    k = lin(W, p + "k_proj", x).view(Tn, H, d)
    v = lin(W, p + "v_proj", x).view(Tn, H, d)
    c = torch.cumsum(F.logsigmoid(lin(W, p + "f_proj", x)), 0)  # [T, H]
    o = torch.zeros(Tn, H, d, dtype=torch.float64)
    for s in range(0, Tn, block):
        e = min(Tn, s + block)
        lg = torch.einsum("thd,jhd->htj", q[s:e], k[:e]) * d ** -0.5
        lg = lg + c[s:e].T[:, :, None] - c[:e].T[:, None, :]
        mask = torch.arange(e)[None, :] <= torch.arange(s, e)[:, None]
        att = torch.softmax(lg.masked_fill(~mask, -math.inf), -1)
        o[s:e] = torch.einsum("htj,jhd->thd", att, v[:e])
    return lin(W, p + "o_proj", o.reshape(Tn, Dm))


def rel(got, want):
    return ((got - want).abs().max() / want.abs().max()).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gattnc", required=True)
    ap.add_argument("--workdir", default="/tmp/gattnc_drift_attention")
    ap.add_argument("--T", type=int, default=16384)
    a = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(a.T, D)
    print(f"T = {a.T}, D = {D}, inputs N(0,1); max|err|/max|ref| vs float64 (whole sequence / last 1024 tokens)")
    rows = [
        ("mega_ema", "mega_ema(x, ndim: 16)", lambda W: W, lambda W, x: ema_rec(W, "layer.", x), True),
        ("mega_ema_long", "mega_ema(x, ndim: 16)",
         lambda W: {**W, "layer.alpha": W["layer.alpha"] * 0 - 7.0}, lambda W, x: ema_rec(W, "layer.", x), True),
        ("fox", f"forgetting_attention(x, heads: {H})", lambda W: W, lambda W, x: fox_blocked(W, "layer.", x), False),
        ("fox_slow", f"forgetting_attention(x, heads: {H})",
         lambda W: {**W, "layer.f_proj.bias": W["layer.f_proj.bias"] + 5.0},
         lambda W, x: fox_blocked(W, "layer.", x), False),
    ]
    for name, call, adjust, ref, with_interp in rows:
        c = Case(a, "drift_" + name, model_source(call, D, max_t=a.T))
        set_weights(c, adjust(perturb(c.weights)))
        want = ref(c.weights, x.double())
        modes = [("C prefill", 0, True), ("C decode", 1, True)] + ([("interp prefill", 0, False)] if with_interp else [])
        for label, step, compiled in modes:
            got = c.run({"x": x}, step=step, tag="dec" if step else "out", compiled=compiled)["y"]
            print(f"{name:14s} {label:15s} {rel(got, want):.3g} / {rel(got[-1024:], want[-1024:]):.3g}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
