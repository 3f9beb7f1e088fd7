#!/usr/bin/env python3
"""Long-sequence drift of the delta-rule recurrences (std deltanet.gat): gattnc's
f32 compiled C (and interpreter) against the float64 PyTorch reference of
tests/e2e/test_layer_deltanet.py, at T = 16384, prefill (one call) and decode
(one token per call). Not part of ctest; run by hand:

  /usr/bin/python3 bench/drift_deltanet.py --gattnc build/gattnc [--workdir /tmp/drift_deltanet]

Prints max |err| / max |ref| over the whole output and over the last 1024
tokens, for Gated DeltaNet (with GVA) and DeltaNet."""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from e2e_util import Case, perturb, set_weights  # noqa: E402
from test_layer_deltanet import deltanet_ref, gated_deltanet_ref  # noqa: E402

T = 16384
SRC = f"""import std
model m {{
  max T = {T}
  input x : f32[T, 64]
  output y_gdn : f32[T, 64]
  output y_dn : f32[T, 64]
  y_gdn = gated_deltanet(x, heads: 2, head_dim: 16, num_v_heads: 4) @ "gdn"
  y_dn = deltanet(x, heads: 2) @ "dn"
}}
"""


def rel(got, want):
    return ((got - want).abs().max() / want.abs().max()).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gattnc", required=True)
    ap.add_argument("--workdir", default="/tmp/drift_deltanet")
    args = ap.parse_args()
    torch.manual_seed(0)
    c = Case(args, "drift_deltanet", SRC)
    set_weights(c, perturb(c.weights, seed=1, scale=0.1))
    x = torch.randn(T, 64)
    ref = {"y_gdn": gated_deltanet_ref(c.weights, "gdn.", x.double(), H=2, K=16, Hv=4),
           "y_dn": deltanet_ref(c.weights, "dn.", x.double(), H=2)}
    for label, kw in [("C prefill", dict(compiled=True)), ("C decode", dict(step=1, compiled=True)),
                      ("interpreter prefill", dict())]:
        out = c.run({"x": x}, tag=label.replace(" ", "_"), **kw)
        for name, want in ref.items():
            print(f"{name} T={T} f32 {label}: max|err|/max|ref| = {rel(out[name], want):.3g} "
                  f"(last 1024 tokens: {rel(out[name][-1024:], want[-1024:]):.3g})")


if __name__ == "__main__":
    main()
