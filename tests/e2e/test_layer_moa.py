#!/usr/bin/env python3
"""MoA, mixture of attention heads (std `moa`, compiler/front/std/mixattn.gat),
against float64 PyTorch references written from the math of docs/layers.md
("Mixture-of-attention layers", MoA):

  k = k_proj x, v = v_proj x (one shared head, D -> d)
  p = softmax(x w_gate); (p_i, e_i) = topk(p, K), K = heads, not renormalised
  q_i = x W_q[e_i];  att_i = softmax(q_i k^T d^-1/2 + causal) v
  y = sum_i p_i att_i W_o[e_i]

The sparse reference gathers each slot's chosen expert matrices; the dense one
computes every expert's query and attention and zeroes the unchosen experts
with scattered routing weights. The interpreter's counter (GAT_INTERP_COUNT)
must show that each of the 2K mixtures (per-slot query and output
projections) ran every expert on exactly the tokens whose slot chose it.

Metric: max |gattnc - ref| / max |ref|, tolerance 1e-4. T in {1, 7, 64},
interpreter and compiled C, prefill and decode (--step 1)."""
import os
import sys

import torch

from e2e_util import (Case, causal_softmax, check, check_param_shapes, check_routed, model_source, parse_args, perturb,
                      set_weights, summary)

D, E, K, DH = 32, 6, 3, 8
F64 = torch.float64


def attend(q, k, v):
    """q [T, S, d] (S query slots), k, v [T, d] shared: causal, scale d^-1/2."""
    att = causal_softmax(torch.einsum("isd,jd->sij", q, k) * q.shape[-1] ** -0.5)
    return torch.einsum("sij,jd->isd", att, v)


def moa_ref(W, p, x, dense=False):
    k = x @ W[p + "k_proj.weight"].T
    v = x @ W[p + "v_proj.weight"].T
    Wq, Wo = W[p + "q_proj.experts.w"], W[p + "q_proj.output_experts.w"]
    prob = torch.softmax(x @ W[p + "q_proj.w_gate"], -1)
    pw, pi = prob.topk(K, -1)
    if dense:  # every expert as a query head, then the routing weights pick
        a = attend(torch.einsum("tc,ecd->ted", x, Wq), k, v)  # [T, E, d]
        comb = torch.zeros(x.shape[0], E, dtype=F64).scatter(1, pi, pw)
        return torch.einsum("te,ted,edc->tc", comb, a, Wo), pi
    a = attend(torch.einsum("tc,tkcd->tkd", x, Wq[pi]), k, v)  # [T, K, d]
    return torch.einsum("tk,tkd,tkdc->tc", pw, a, Wo[pi]), pi


def main():
    args = parse_args()
    results = []
    torch.manual_seed(0)
    call = f"moa(x, experts: {E}, heads: {K}, head_dim: {DH})"
    c = Case(args, "moa", model_source(call, D, max_t=128))
    W = perturb(c.weights, seed=1)
    W["layer.q_proj.w_gate"] = W["layer.q_proj.w_gate"] * 10  # a sharper router: fewer near-ties
    set_weights(c, W)
    want_shapes = {"layer.k_proj.weight": [DH, D], "layer.v_proj.weight": [DH, D],
                   "layer.q_proj.experts.w": [E, D, DH], "layer.q_proj.output_experts.w": [E, DH, D],
                   "layer.q_proj.w_gate": [D, E]}
    results.append(check_param_shapes(c, want_shapes))
    cpath = os.path.join(args.workdir, "moa.count.json")
    for T in (1, 7, 64):
        x = torch.randn(T, D)
        want, pi = moa_ref(c.weights, "layer.", x.double())
        dense, _ = moa_ref(c.weights, "layer.", x.double(), dense=True)
        results.append(check(f"reference T={T}: gather form vs dense form", want, dense, 1e-12))
        slot_rows = [[int((pi[:, i] == e).sum()) for e in range(E)] for i in range(K)]
        want_rows = slot_rows + slot_rows  # query projections, then output projections
        results += check_routed(c, x, want, want_rows, cpath, f"moa T={T}", "one row per token and slot")
    return summary(results)


if __name__ == "__main__":
    sys.exit(main())
