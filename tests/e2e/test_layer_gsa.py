#!/usr/bin/env python3
"""GSA, gated slot attention (std `gsa`, compiler/front/std/retention.gat), against a
PyTorch reference written from the math of docs/layers.md, "GSA: gated slot
attention": two separate passes over the whole sequence (float64), the way the
paper states it, while the .gat layer runs both in one scan with two states.

Metric: max |gattnc - ref| / max |ref| over the layer output, tolerance 1e-4.
For T in {1, 7, 64, 1024}: interpreter and compiled C, prefill and decode
(--step 1), random inputs, perturbed `gattnc init` weights."""
import sys

import torch
import torch.nn.functional as F

from e2e_util import Case, check, parse_args, perturb, set_weights
from e2e_util import lin, model_source, rms, sweep

RTOL = 1e-4


def gsa_ref(W, p, x, H, expand_k=1.0, expand_v=1.0, slots=None, normalizer=8.0):
    Tn, D = x.shape
    K, V = int(D * expand_k) // H, int(D * expand_v) // H
    M = slots or K
    q = F.silu(lin(W, p + "q_proj", x)).view(Tn, H, K)
    k = F.silu(lin(W, p + "k_proj", x)).view(Tn, H, K)
    v = F.silu(lin(W, p + "v_proj", x)).view(Tn, H, V)
    f = (F.logsigmoid(lin(W, p + "f_proj", x)) / normalizer).view(Tn, H, M)
    s = 1 - f.exp()
    # pass 1: Hk <- Hk diag(e^f) + k s^T, logits q^T Hk (scale 1)
    hk = torch.zeros(H, K, M, dtype=torch.float64)
    logits = torch.zeros(Tn, H, M, dtype=torch.float64)
    for t in range(Tn):
        hk = hk * f[t].exp()[:, None, :] + k[t][:, :, None] * s[t][:, None, :]
        logits[t] = torch.einsum("hk,hkm->hm", q[t], hk)
    a = logits.softmax(-1)
    # pass 2: Hv <- diag(e^f) Hv + s v^T, o = Hv^T a
    hv = torch.zeros(H, M, V, dtype=torch.float64)
    o = torch.zeros(Tn, H, V, dtype=torch.float64)
    for t in range(Tn):
        hv = f[t].exp()[:, :, None] * hv + s[t][:, :, None] * v[t][:, None, :]
        o[t] = torch.einsum("hm,hmv->hv", a[t], hv)
    o = F.silu(o).reshape(Tn, H * V)
    return lin(W, p + "o_proj", rms(o, W[p + "g_norm.weight"]))


def main():
    args = parse_args()
    D, H = 32, 2
    results = sweep(args, "gsa", f"gsa(x, heads: {H})", lambda W, p, x: gsa_ref(W, p, x, H), D)
    # a slot count different from the head dim (f_proj is D -> H*M)
    c = Case(args, "gsa_slots", model_source(f"gsa(x, heads: {H}, slots: 8)", D))
    set_weights(c, perturb(c.weights, seed=9))
    x = torch.randn(40, D)
    want = gsa_ref(c.weights, "layer.", x.double(), H, slots=8)
    results.append(check("gsa slots=8 interp decode", c.run({"x": x}, step=1, tag="dec")["y"], want, RTOL))
    results.append(check("gsa slots=8 C prefill", c.run({"x": x}, compiled=True)["y"], want, RTOL))
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
