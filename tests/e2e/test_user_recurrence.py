#!/usr/bin/env python3
"""The user-defined-recurrence showcase of docs/layers.md: an RWKV-like
time-mix (RWKV-4's WKV, without token shift), written by the user in ten
lines of .gat in the model file itself (not in the standard library), against
a float64 PyTorch loop written from RWKV-4's equations (Peng et al. 2023):

    k, v = W_k x, W_v x;  r = sigma(W_r x);  w = exp(-exp(time_decay)), u = time_first
    wkv_t = (a_{t-1} + e^{u + k_t} v_t) / (b_{t-1} + e^{u + k_t})
    a_t = w a_{t-1} + e^{k_t} v_t ;  b_t = w b_{t-1} + e^{k_t}     (a_0 = b_0 = 0)
    y_t = W_o (r_t * wkv_t)

Parameter names are HF RwkvSelfAttention's (key, value, receptance, output,
time_decay, time_first). Metric: max |gattnc - ref| / max |ref|, tolerance
1e-4, for T in {1, 7, 64, 1024}, through the interpreter and the compiled C,
prefill and decode (--step 1)."""
import sys

import torch

from e2e_util import Case, check, parse_args, perturb, set_weights

RTOL = 1e-4
D = 32

# The same text is shown in docs/layers.md ("Writing your own recurrence").
LAYER = """\
layer wkv(x: f32[T, D]) -> f32[T, D] {
  param time_decay : f32[D] = zeros(); param time_first : f32[D] = zeros()
  k = linear(x, D) @ "key"; v = linear(x, D) @ "value"; r = sigmoid(linear(x, D) @ "receptance")
  y = scan t with a: f32[D] = 0, b: f32[D] = 0 {
    e[j] = exp(time_first[j] + k[t, j])
    emit[j] = (a[j] + e[j] * v[t, j]) / (b[j] + e[j])
    a[j] = exp(-exp(time_decay[j])) * a[j] + exp(k[t, j]) * v[t, j]
    b[j] = exp(-exp(time_decay[j])) * b[j] + exp(k[t, j])
  }
  return linear(r * y, D) @ "output"
}
"""

SRC = "import std\n\n" + LAYER + f"""
model m {{
  max T = 1024
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  y = wkv(x) @ "blocks.0.attention"
}}
"""


def wkv_ref(W, p, x):
    k = x @ W[p + "key.weight"].T
    v = x @ W[p + "value.weight"].T
    r = torch.sigmoid(x @ W[p + "receptance.weight"].T)
    w = torch.exp(-torch.exp(W[p + "time_decay"]))
    u = W[p + "time_first"]
    a = torch.zeros(x.shape[1], dtype=torch.float64)
    b = torch.zeros_like(a)
    out = []
    for t in range(x.shape[0]):
        e = torch.exp(u + k[t])
        out.append((a + e * v[t]) / (b + e))
        a = w * a + torch.exp(k[t]) * v[t]
        b = w * b + torch.exp(k[t])
    return (r * torch.stack(out)) @ W[p + "output.weight"].T


def main():
    args = parse_args()
    torch.manual_seed(0)
    results = []
    assert len(LAYER.strip().splitlines()) <= 11  # ten lines and the closing brace
    c = Case(args, "user_recurrence", SRC)
    p = "blocks.0.attention."
    want = {p + n: [D, D] for n in ("key.weight", "value.weight", "receptance.weight", "output.weight")}
    want.update({p + "time_decay": [D], p + "time_first": [D]})
    got = {k: list(v.shape) for k, v in c.weights.items()}
    ok = got == want
    print(f"{'ok' if ok else 'FAIL'}: parameter names and shapes ({len(want)} tensors)")
    results.append(ok)

    W = perturb(c.weights, seed=1, scale=0.2)
    W[p + "time_decay"] = torch.linspace(-3, 2, D, dtype=torch.float64)  # decays from 0.95 to 6e-4 per step
    set_weights(c, W)
    for Tn in (1, 7, 64, 1024):
        x = torch.randn(Tn, D)
        want = wkv_ref(c.weights, p, x.double())
        runs = [("interp prefill", dict()), ("interp decode", dict(step=1)),
                ("C prefill", dict(compiled=True)), ("C decode", dict(step=1, compiled=True))]
        for label, kw in runs:
            out = c.run({"x": x}, tag=f"T{Tn}.{label.replace(' ', '_')}", **kw)
            results.append(check(f"T={Tn} wkv {label}", out["y"], want, RTOL))
    n_ok = sum(results)
    print(f"{n_ok} passed, {len(results) - n_ok} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
