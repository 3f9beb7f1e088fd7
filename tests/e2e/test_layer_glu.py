#!/usr/bin/env python3
"""The GLU feed-forward family (compiler/front/std/glu.gat) against PyTorch written
from the math of docs/layers.md, "GLU feed-forward family" in float64:

    FFN(x) = (act(x W_gate^T) * x W_up^T) W_down^T

with act = silu (swiglu), erf GELU (geglu), tanh-approximated GELU
(geglu_tanh, HF's gelu_pytorch_tanh), relu (reglu), identity (bilinear_glu)
and sigmoid (glu, Dauphin et al.). Parameter names are fla GatedMLP's /
HF LlamaMLP's (gate_proj, up_proj, down_proj), checked with their shapes.

Metric: max |gattnc - ref| / max |ref|, tolerance 1e-5 (tighter than the
1e-4 of the recurrences: no state accumulates error here), for T in {1, 7, 64,
1024}, through the interpreter and the compiled C, as one prefill call and
as one-token calls (--step 1). Weights are `gattnc init` weights plus noise
large enough that the gate pre-activations are O(1), where erf and tanh GELU
differ by more than the tolerance (checked below, so geglu vs geglu_tanh
cannot pass by accident)."""
import sys

import torch
import torch.nn.functional as F

from e2e_util import Case, check_runs, parse_args, perturb, set_weights, summary

RTOL = 1e-5  # feed-forward only: f32 rounding is ~1e-7 here, and erf vs tanh GELU must be told apart
D, HID = 32, 48
VARIANTS = ["swiglu", "geglu", "geglu_tanh", "reglu", "bilinear_glu", "glu"]

ACT = {
    "swiglu": lambda z: z * torch.sigmoid(z),
    "geglu": lambda z: 0.5 * z * (1 + torch.erf(z / 2 ** 0.5)),
    "geglu_tanh": lambda z: 0.5 * z * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (z + 0.044715 * z ** 3))),
    "reglu": lambda z: z.clamp(min=0),
    "bilinear_glu": lambda z: z,
    "glu": torch.sigmoid,
}

SRC = "import std\nmodel m {\n  max T = 1024\n  input x : f32[T, %d]\n" % D + "".join(
    f"  output y_{n} : f32[T, {D}]\n" for n in VARIANTS) + "".join(
    f'  y_{n} = {n}(x, hidden: {HID}) @ "{n}"\n' for n in VARIANTS) + "}\n"


def glu_ref(W, p, x, act):
    g = x @ W[p + "gate_proj.weight"].T
    u = x @ W[p + "up_proj.weight"].T
    return (act(g) * u) @ W[p + "down_proj.weight"].T


def references(W, x):
    return {f"y_{n}": glu_ref(W, n + ".", x, ACT[n]) for n in VARIANTS}


def main():
    args = parse_args()
    torch.manual_seed(0)
    results = []
    c = Case(args, "layer_glu", SRC)

    want = {}
    for n in VARIANTS:
        want.update({f"{n}.gate_proj.weight": [HID, D], f"{n}.up_proj.weight": [HID, D],
                     f"{n}.down_proj.weight": [D, HID]})
    got = {k: list(v.shape) for k, v in c.weights.items()}
    ok = got == want
    print(f"{'ok' if ok else 'FAIL'}: parameter names and shapes match GatedMLP ({len(want)} tensors)")
    results.append(ok)

    set_weights(c, perturb(c.weights, seed=1, scale=0.3))

    # The test must be able to tell erf GELU from tanh GELU: the two references
    # differ by far more than the tolerance on these weights.
    x = torch.randn(64, D).double()
    d = glu_ref(c.weights, "geglu.", x, ACT["geglu"]) - glu_ref(c.weights, "geglu.", x, ACT["geglu_tanh"])
    sep = (d.abs().max() / glu_ref(c.weights, "geglu.", x, ACT["geglu"]).abs().max()).item()
    ok = sep > 10 * RTOL
    print(f"{'ok' if ok else 'FAIL'}: erf and tanh GELU references differ by {sep:.3g} (> 10 x tolerance)")
    results.append(ok)

    for Tn in (1, 7, 64, 1024):
        x = torch.randn(Tn, D)
        ref = references(c.weights, x.double())
        results += check_runs(c, {"x": x}, ref, RTOL, label=f"T={Tn}")
    return summary(results)


if __name__ == "__main__":
    sys.exit(main())
