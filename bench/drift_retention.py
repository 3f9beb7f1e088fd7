#!/usr/bin/env python3
"""Long-sequence drift of the RetNet, HGRN, HGRN2 and GSA layers
(compiler/front/std/retention.gat): gattnc's f32 state against the float64
references of tests/e2e/test_layer_{retnet,hgrn,gsa}.py at T = 16384.

Prints, per layer and per mode (compiled C prefill, compiled C one-token
decode, interpreter prefill), the max relative error max|err| / max|ref| over
the whole sequence and over its last 1024 tokens. The `_lb` rows put a
forget-gate lower bound of 0.999 on HGRN/HGRN2 (a memory of ~1000 tokens),
where f32 rounding in the state has the longest time to add up. Not part
of ctest.

usage: /usr/bin/python3 bench/drift_retention.py --gattnc build/gattnc [--workdir DIR] [--T 16384]"""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))

from e2e_util import Case, perturb, set_weights  # noqa: E402
from test_layer_gsa import gsa_ref  # noqa: E402
from test_layer_hgrn import hgrn2_ref, hgrn_ref  # noqa: E402
from test_layer_retnet import model_source, retnet_ref  # noqa: E402

LB = 0.999  # a forget-gate lower bound close to 1: a memory of ~1000 tokens


def lb_source(call, max_t):
    return f"""import std
model m {{
  max T = {max_t}
  input x : f32[T, {D}]
  input lb : f32[{D}]
  output y : f32[T, {D}]
  y = {call} @ "layer"
}}
"""

D = 32
LAYERS = [
    ("retnet", "retnet(x, heads: 2)", lambda W, p, x: retnet_ref(W, p, x, 2)),
    ("hgrn", "hgrn(x)", lambda W, p, x: hgrn_ref(W, p, x)),
    ("hgrn2", "hgrn2(x, expand_ratio: 16)", lambda W, p, x: hgrn2_ref(W, p, x, 16)),
    ("gsa", "gsa(x, heads: 2)", lambda W, p, x: gsa_ref(W, p, x, 2)),
    # long memory: lower bound LB on every forget gate
    ("hgrn_lb", "hgrn_lb(x, lb)", hgrn_ref),
    ("hgrn2_lb", "hgrn2_lb(x, lb, expand_ratio: 16)", lambda W, p, x, lb: hgrn2_ref(W, p, x, 16, lb)),
]


def rel(got, want):
    return ((got - want).abs().max() / want.abs().max()).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gattnc", required=True)
    ap.add_argument("--workdir", default="/tmp/gattnc_drift_retention")
    ap.add_argument("--T", type=int, default=16384)
    a = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(a.T, D)
    print(f"T = {a.T}, D = {D}, inputs N(0,1), perturbed `gattnc init` weights; "
          f"max|err|/max|ref| vs float64 (whole sequence / last 1024 tokens)")
    for name, call, ref in LAYERS:
        has_lb = "lb" in call
        src = lb_source(call, a.T) if has_lb else model_source(call, D, max_t=a.T)
        c = Case(a, "drift_" + name, src)
        set_weights(c, perturb(c.weights))
        inputs = {"x": x}
        if has_lb:
            lb = torch.full((D,), LB)
            inputs["lb"] = lb
            want = ref(c.weights, "layer.", x.double(), lb.double())
        else:
            want = ref(c.weights, "layer.", x.double())
        for label, step, compiled in (("C prefill", 0, True), ("C decode", 1, True), ("interp prefill", 0, False)):
            got = c.run(inputs, step=step, tag=f"{label.replace(' ', '_')}", compiled=compiled)["y"]
            print(f"{name:8s} {label:15s} {rel(got, want):.3g} / {rel(got[-1024:], want[-1024:]):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
