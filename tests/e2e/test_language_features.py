#!/usr/bin/env python3
"""The language features of docs/language.md added together, end to end:
a compile-time `if` in a layer (the gate parameter exists only when asked
for), templated parameter names in a repeat (PyTorch nn.RNN-style
weight_ih_l{k}), and index notation with an explicit range for an index that
addresses no dimension. Reference: float64 PyTorch written from the math

    a = (x Wo0^T) * sigmoid(x Wg0^T)        gated_mlp(use_gate: true)
    b = x Wo1^T + 1                          gated_mlp(use_gate: false)
    h_0 = x, h_{k+1} = tanh(h_k W_k^T + b_k)  k = 0, 1
    c = h_2 + sum_{l<3} (l + w) = h_2 + 3 + 3 w

Metric: max |gattnc - ref| / max |ref| <= 1e-5, interpreter and compiled C,
T in {1, 7}."""
import sys

import torch

from e2e_util import Case, check, parse_args, perturb, set_weights

RTOL = 1e-5
D = 8

SRC = f"""\
layer gated_mlp(x: f32[T, D], use_gate: bool) -> f32[T, D] {{
  y = linear(x, D) @ "o_proj"
  if use_gate {{
    y = y * sigmoid(linear(x, D) @ "g_proj")
  }}
  else {{
    y = y + 1.0
  }}
  return y
}}

layer stacked(x: f32[T, D], layers: int) -> f32[T, D] {{
  repeat k in 0..layers {{
    param weight_ih_l{{k}} : f32[D, D]
    param bias_ih_l{{k}} : f32[D] = zeros()
    h[t, i] = sum(j) x[t, j] * weight_ih_l[i, j]
    x = tanh(h + bias_ih_l)
  }}
  return x
}}

model m {{
  const d = {D}
  input x : f32[T, d]
  output a : f32[T, d]
  output b : f32[T, d]
  output c : f32[T, d]
  a = gated_mlp(x, true) @ "g0"
  b = gated_mlp(x, 1 > 2) @ "g1"
  param w : f32[d]
  lb[l in 0..3, j] = l * 1.0 + w[j]
  c = stacked(x, 2) @ "rnn" + sum(lb, axis: 0)
}}
"""


def main():
    args = parse_args()
    torch.manual_seed(0)
    results = []
    c = Case(args, "language_features", SRC)
    want = {"g0.o_proj.weight": [D, D], "g0.g_proj.weight": [D, D], "g1.o_proj.weight": [D, D],
            "rnn.weight_ih_l0": [D, D], "rnn.bias_ih_l0": [D], "rnn.weight_ih_l1": [D, D],
            "rnn.bias_ih_l1": [D], "w": [D]}
    got = {k: list(v.shape) for k, v in c.weights.items()}
    ok = got == want
    print(f"{'ok' if ok else 'FAIL'}: parameter names and shapes ({len(want)} tensors): {sorted(got)}")
    results.append(ok)

    W = perturb(c.weights, seed=1, scale=0.3)
    set_weights(c, W)
    W = c.weights
    for Tn in (1, 7):
        x = torch.randn(Tn, D)
        xd = x.double()
        ref_a = (xd @ W["g0.o_proj.weight"].T) * torch.sigmoid(xd @ W["g0.g_proj.weight"].T)
        ref_b = xd @ W["g1.o_proj.weight"].T + 1
        h = xd
        for k in range(2):
            h = torch.tanh(h @ W[f"rnn.weight_ih_l{k}"].T + W[f"rnn.bias_ih_l{k}"])
        ref_c = h + 3 + 3 * W["w"]
        for label, kw in (("interp", dict()), ("C", dict(compiled=True))):
            out = c.run({"x": x}, tag=f"T{Tn}.{label}", **kw)
            results.append(check(f"T={Tn} if/true {label}", out["a"], ref_a, RTOL))
            results.append(check(f"T={Tn} if/false {label}", out["b"], ref_b, RTOL))
            results.append(check(f"T={Tn} templated params + ranges {label}", out["c"], ref_c, RTOL))
    n_ok = sum(results)
    print(f"{n_ok} passed, {len(results) - n_ok} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
