#!/usr/bin/env python3
"""Classic gated recurrences (compiler/front/std/rnn.gat) against PyTorch:

  * gru, gru2       vs torch.nn.GRU (num_layers 1 and 2), loaded with
                    load_state_dict from gattnc's own weight file, so the
                    parameter names and shapes are PyTorch's exactly;
  * lstm, lstm2     vs torch.nn.LSTM (num_layers 1 and 2), likewise;
  * gru_reset_before vs a float64 loop written from ONNX's GRU equations with
                    linear_before_reset = 0 (PyTorch has no such module):
                    r = sigma(W_r x + b_ir + W_hr h + b_hr)
                    z = sigma(W_z x + b_iz + W_hz h + b_hz)
                    n = tanh(W_n x + b_in + W_hn (r * h) + b_hn)
                    h' = (1 - z) * n + z * h
  * gla (compiler/front/std/gla.gat, fla defaults, 2 heads, D 32) vs gla_ref of
    test_std_layers.py (the float64 recurrent form from docs/layers.md,
    "GLA: gated linear attention"), which tests it at T = 12 only; here it
    runs at every T below;
  * a stack written with separate scopes (gru(x) @ "l0", gru(h) @ "l1"),
    the other way to build a multi-layer RNN today, vs two torch.nn.GRU.

Metric: max |gattnc - ref| / max |ref|, tolerance 1e-4, for T in {1, 7, 64,
1024}, through the interpreter and the compiled C, prefill (one call) and
decode (--step 1). Weights are `gattnc init` weights plus noise."""
import sys

import torch

from e2e_util import Case, check, parse_args, perturb, set_weights
from test_std_layers import gla_ref

RTOL = 1e-4
I, H = 10, 16
DG = 32  # GLA model width

SRC = f"""import std
model m {{
  max T = 1024
  input x : f32[T, {I}]
  input xg : f32[T, {DG}]
  output y_gla : f32[T, {DG}]
  output y_gru : f32[T, {H}]
  output y_gru_rb : f32[T, {H}]
  output y_lstm : f32[T, {H}]
  output y_gru2 : f32[T, {H}]
  output y_lstm2 : f32[T, {H}]
  output y_scoped : f32[T, {H}]
  y_gru = gru(x, hidden: {H}) @ "gru"
  y_gru_rb = gru_reset_before(x, hidden: {H}) @ "gru_rb"
  y_lstm = lstm(x, hidden: {H}) @ "lstm"
  y_gru2 = gru2(x, hidden: {H}) @ "gru2"
  y_lstm2 = lstm2(x, hidden: {H}) @ "lstm2"
  h = gru(x, hidden: {H}) @ "stack.l0"
  y_scoped = gru(h, hidden: {H}) @ "stack.l1"
  y_gla = gla(xg, heads: 2) @ "attn"
}}
"""


def sub(W, prefix):
    return {k[len(prefix):]: v for k, v in W.items() if k.startswith(prefix)}


def torch_module(cls, W, prefix, inp, layers):
    m = cls(inp, H, num_layers=layers).double()
    m.load_state_dict(sub(W, prefix))  # strict: names and shapes must be PyTorch's
    return m


def run_module(m, x):
    with torch.no_grad():
        return m(x[:, None, :])[0][:, 0, :]


def gru_reset_before_ref(W, p, x):
    """ONNX GRU, linear_before_reset = 0, in PyTorch's gate order (r, z, n)."""
    wr, wz, wn = W[p + "weight_ih_l0"].split(H)
    ur, uz, un = W[p + "weight_hh_l0"].split(H)
    bir, biz, bin_ = W[p + "bias_ih_l0"].split(H)
    bhr, bhz, bhn = W[p + "bias_hh_l0"].split(H)
    h = torch.zeros(H, dtype=torch.float64)
    out = []
    for xt in x:
        r = torch.sigmoid(wr @ xt + bir + ur @ h + bhr)
        z = torch.sigmoid(wz @ xt + biz + uz @ h + bhz)
        n = torch.tanh(wn @ xt + bin_ + un @ (r * h) + bhn)
        h = (1 - z) * n + z * h
        out.append(h)
    return torch.stack(out)


def modules(W):
    return {
        "y_gru": torch_module(torch.nn.GRU, W, "gru.", I, 1),
        "y_lstm": torch_module(torch.nn.LSTM, W, "lstm.", I, 1),
        "y_gru2": torch_module(torch.nn.GRU, W, "gru2.", I, 2),
        "y_lstm2": torch_module(torch.nn.LSTM, W, "lstm2.", I, 2),
        "l0": torch_module(torch.nn.GRU, W, "stack.l0.", I, 1),
        "l1": torch_module(torch.nn.GRU, W, "stack.l1.", H, 1),
    }


def references(W, mods, x, xg):
    ref = {k: run_module(m, x) for k, m in mods.items() if k.startswith("y_")}
    ref["y_gru_rb"] = gru_reset_before_ref(W, "gru_rb.", x)
    ref["y_scoped"] = run_module(mods["l1"], run_module(mods["l0"], x))
    ref["y_gla"] = gla_ref(W, "attn.", xg, H=2)
    return ref


def main():
    args = parse_args()
    torch.manual_seed(0)
    results = []
    c = Case(args, "layer_rnn", SRC)

    # names: strict load_state_dict in modules() fails loudly on a mismatch
    try:
        modules(c.weights)
        ok = True
    except RuntimeError as e:
        print(e)
        ok = False
    print(f"{'ok' if ok else 'FAIL'}: gru, lstm, gru2, lstm2 weights load into torch.nn.GRU/LSTM (strict)")
    results.append(ok)
    if not ok:
        print(f"0 passed, {len(results)} failed")
        return 1

    set_weights(c, perturb(c.weights, seed=1, scale=0.1))
    mods = modules(c.weights)

    # The two GRU variants must differ on these weights (else gru_reset_before
    # could pass by computing the torch.nn.GRU form).
    x = torch.randn(64, I).double()
    a = gru_reset_before_ref(c.weights, "gru_rb.", x)
    m = torch.nn.GRU(I, H).double()
    m.load_state_dict(sub(c.weights, "gru_rb."))
    sep = ((a - run_module(m, x)).abs().max() / a.abs().max()).item()
    ok = sep > 100 * RTOL
    print(f"{'ok' if ok else 'FAIL'}: reset-before and reset-after GRU differ by {sep:.3g} on these weights")
    results.append(ok)

    for Tn in (1, 7, 64, 1024):
        x, xg = torch.randn(Tn, I), torch.randn(Tn, DG)
        ref = references(c.weights, mods, x.double(), xg.double())
        runs = [("interp prefill", dict()), ("interp decode", dict(step=1)),
                ("C prefill", dict(compiled=True)), ("C decode", dict(step=1, compiled=True))]
        for label, kw in runs:
            out = c.run({"x": x, "xg": xg}, tag=f"T{Tn}.{label.replace(' ', '_')}", **kw)
            for name in ref:
                results.append(check(f"T={Tn} {name} {label}", out[name], ref[name], RTOL))
    n_ok = sum(results)
    print(f"{n_ok} passed, {len(results) - n_ok} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
