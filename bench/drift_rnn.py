#!/usr/bin/env python3
"""Long-sequence drift of the classic recurrences and GLA (std rnn.gat,
gla.gat): gattnc's f32 compiled C against float64 PyTorch references at
T = 16384, prefill (one call) and decode (one token per call). Not part of
ctest; run by hand:

  /usr/bin/python3 bench/drift_rnn.py --gattnc build/gattnc [--workdir /tmp/drift_rnn]

The references: torch.nn.GRU / torch.nn.LSTM in float64 (loaded strictly
from gattnc's weight file) and gla_ref of tests/e2e/test_std_layers.py (the
recurrent form of docs/layers.md, "GLA: gated linear attention"). Prints
max |err| / max |ref| over the whole output and over the last 1024 tokens."""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from e2e_util import Case, perturb, set_weights  # noqa: E402
from test_std_layers import gla_ref  # noqa: E402

T = 16384
I, H, DG = 32, 64, 64
SRC = f"""import std
model m {{
  max T = {T}
  input x : f32[T, {I}]
  input xg : f32[T, {DG}]
  output y_gru : f32[T, {H}]
  output y_lstm : f32[T, {H}]
  output y_gla : f32[T, {DG}]
  y_gru = gru(x, hidden: {H}) @ "gru"
  y_lstm = lstm(x, hidden: {H}) @ "lstm"
  y_gla = gla(xg, heads: 2) @ "attn"
}}
"""


def rel(got, want):
    return ((got - want).abs().max() / want.abs().max()).item()


def torch_rnn(cls, W, prefix, x):
    m = cls(I, H).double()
    m.load_state_dict({k[len(prefix):]: v for k, v in W.items() if k.startswith(prefix)})
    with torch.no_grad():
        return m(x[:, None, :])[0][:, 0, :]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gattnc", required=True)
    ap.add_argument("--workdir", default="/tmp/drift_rnn")
    args = ap.parse_args()
    torch.manual_seed(0)
    c = Case(args, "drift_rnn", SRC)
    set_weights(c, perturb(c.weights, seed=1, scale=0.1))
    x, xg = torch.randn(T, I), torch.randn(T, DG)
    W = c.weights
    ref = {"y_gru": torch_rnn(torch.nn.GRU, W, "gru.", x.double()),
           "y_lstm": torch_rnn(torch.nn.LSTM, W, "lstm.", x.double()),
           "y_gla": gla_ref(W, "attn.", xg.double(), H=2)}
    for label, kw in [("prefill", dict()), ("decode", dict(step=1))]:
        out = c.run({"x": x, "xg": xg}, tag=label, compiled=True, **kw)
        for name, want in ref.items():
            print(f"{name} T={T} f32 C {label}: max|err|/max|ref| = {rel(out[name], want):.3g} "
                  f"(last 1024 tokens: {rel(out[name][-1024:], want[-1024:]):.3g})", flush=True)


if __name__ == "__main__":
    main()
