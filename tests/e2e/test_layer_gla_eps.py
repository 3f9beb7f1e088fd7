#!/usr/bin/env python3
"""The eps of std `gla`'s output RMSNorm (argument norm_eps; fla passes its
config.norm_eps, 1e-6 in fla's GLA configs; default 1e-5 as before) against
the float64 GLA reference of test_std_layers.py (written from the math of
docs/layers.md, "GLA: gated linear attention") with that eps.

So that the eps matters, v_proj is scaled by 1e-3: the recurrent output o is
then ~1e-3 and mean(o^2) is comparable to eps, so references with eps 1e-5
and 1e-6 differ by far more than the tolerance (printed). Metric: max
|gattnc - ref| / max |ref|, tolerance 1e-4; T = 12, interpreter and compiled
C, prefill and decode."""
import sys

import torch

from e2e_util import RUNS, Case, check, check_runs, model_source, parse_args, perturb, set_weights, summary
from test_std_layers import gla_ref

D, H, T = 32, 2, 12


def main():
    args = parse_args()
    results = []
    for eps, call in ((1e-6, f"gla(x, heads: {H}, norm_eps: 1e-6)"), (1e-5, f"gla(x, heads: {H})")):
        torch.manual_seed(4)
        name = "gla_eps_" + ("default" if "norm_eps" not in call else "1e-6")
        c = Case(args, name, model_source(call, D, max_t=32))
        W = perturb(c.weights, seed=5)
        W["layer.v_proj.weight"] = W["layer.v_proj.weight"] * 1e-3
        set_weights(c, W)
        x = torch.randn(T, D)
        want = gla_ref(c.weights, "layer.", x.double(), H=H, eps=eps)
        other = gla_ref(c.weights, "layer.", x.double(), H=H, eps=1e-5 if eps == 1e-6 else 1e-6)
        gap = ((want - other).abs().max() / want.abs().max()).item()
        print(f"{'ok' if gap > 1e-2 else 'FAIL'}: {name}: the other eps changes the output by {gap:.3g} (relative)")
        results.append(gap > 1e-2)
        results += check_runs(c, {"x": x}, {"y": want}, 1e-4, label=f"{name} T={T}", runs=RUNS)
    return summary(results)


if __name__ == "__main__":
    sys.exit(main())
