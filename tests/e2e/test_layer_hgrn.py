#!/usr/bin/env python3
"""HGRN (elementwise) and HGRN2 (GLA with a tied input gate), std `hgrn`,
`hgrn_lb`, `hgrn2`, `hgrn2_lb` (compiler/front/std/retention.gat), against PyTorch
references written from the math of docs/layers.md, "HGRN and HGRN2" (float64,
recurrent).

Metric: max |gattnc - ref| / max |ref| over the layer output, tolerance 1e-4.
For T in {1, 7, 64, 1024}: interpreter and compiled C, prefill and decode
(--step 1), random inputs, perturbed `gattnc init` weights. The lower-bound
variants take the bound as a model input."""
import sys

import torch
import torch.nn.functional as F

from e2e_util import Case, check, parse_args, perturb, set_weights
from e2e_util import lin, rms, sweep

RTOL = 1e-4


def forget_gate(f_logits, lb):
    """lsig(f), or with a lower bound log(lb + (1 - lb) sigmoid(f)), which is
    fla's logaddexp(log lb, log1p(-lb) + lsig(f))."""
    if lb is None:
        return F.logsigmoid(f_logits)
    return torch.logaddexp(torch.log(lb), torch.log1p(-lb) + F.logsigmoid(f_logits))


def hgrn_ref(W, p, x, lb=None):
    """f = lsig(f_proj x); i = silu(i_proj x) (1 - e^f); h_t = e^f h_{t-1} + i_t;
    y = o_proj(RMSNorm(h) w silu(g_proj x))."""
    f = forget_gate(lin(W, p + "f_proj", x), lb)
    i = F.silu(lin(W, p + "i_proj", x)) * (1 - f.exp())
    h = torch.zeros(f.shape[1], dtype=torch.float64)
    out = torch.zeros_like(f)
    for t in range(f.shape[0]):
        h = f[t].exp() * h + i[t]
        out[t] = h
    out = rms(out, W[p + "g_norm.weight"]) * F.silu(lin(W, p + "g_proj", x))
    return lin(W, p + "o_proj", out)


def hgrn2_ref(W, p, x, expand_ratio, lb=None):
    """q = silu(q_proj x); g = lsig(f_proj x); k = 1 - e^g; v = i_proj x;
    S_t = diag(e^g) S + k v^T; o = S^T q K^-0.5; y = o_proj(RMSNorm_D(o))."""
    Tn, D = x.shape
    K = expand_ratio
    H = D // K
    V = D // H
    q = F.silu(lin(W, p + "q_proj", x)).view(Tn, H, K)
    g = forget_gate(lin(W, p + "f_proj", x), lb).view(Tn, H, K)
    k = 1 - g.exp()
    v = lin(W, p + "i_proj", x).view(Tn, H, V)
    S = torch.zeros(H, K, V, dtype=torch.float64)
    o = torch.zeros(Tn, H, V, dtype=torch.float64)
    for t in range(Tn):
        S = g[t].exp()[:, :, None] * S + k[t][:, :, None] * v[t][:, None, :]
        o[t] = torch.einsum("hk,hkv->hv", q[t] * K ** -0.5, S)
    return lin(W, p + "o_proj", rms(o.reshape(Tn, D), W[p + "g_norm.weight"]))


def lb_case(args, name, call, ref, D, T=40):
    """A lower-bound variant: lb is a model input in [0, 1)."""
    c = Case(args, name, f"""import std
model m {{
  max T = 64
  input x : f32[T, {D}]
  input lb : f32[{D}]
  output y : f32[T, {D}]
  y = {call} @ "layer"
}}
""")
    set_weights(c, perturb(c.weights, seed=11))
    x = torch.randn(T, D)
    lb = torch.rand(D) * 0.9
    want = ref(c.weights, "layer.", x.double(), lb.double())
    # lb has no T axis: `--step` passes it whole to every call
    # (the main layers' sweeps cover all four modes; two suffice for the bound)
    runs = [("interp decode", 1, False), ("C prefill", 0, True)]
    return [check(f"{name} T={T} {label}",
                  c.run({"x": x, "lb": lb}, step=step, tag="dec" if step else "out", compiled=compiled)["y"],
                  want, RTOL)
            for label, step, compiled in runs]


def lower_bounds_case(args, D=32, L=3, T=30):
    """fla's model-level bound: `hgrn_lower_bounds` feeding hgrn2_lb in a
    3-layer residual stack (x = x + layer(x)); lb_0 = 0 makes layer 0 plain HGRN2."""
    c = Case(args, "hgrn2_stack", f"""import std
model m {{
  max T = 64
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  lbs = hgrn_lower_bounds({L}, {D}) @ "model"
  h = x
  repeat l in 0..{L} @ "model.layers.{{l}}" {{
    h = h + hgrn2_lb(h, lbs[l, :], expand_ratio: 16) @ "attn"
  }}
  y = h
}}
""")
    W = perturb(c.weights, seed=13)
    W["model.lower_bounds"] = torch.randn(L, D, dtype=torch.float64)  # spread the softmax
    set_weights(c, W)
    W = c.weights
    p = W["model.lower_bounds"].softmax(0)
    lbs = p.cumsum(0) - p[0]
    x = torch.randn(T, D)
    h = x.double()
    for layer in range(L):
        h = h + hgrn2_ref(W, f"model.layers.{layer}.attn.", h, 16, lbs[layer])
    return [check(f"hgrn2 {L}-layer stack with lower bounds interp decode",
                  c.run({"x": x}, step=1, tag="dec")["y"], h, RTOL),
            check(f"hgrn2 {L}-layer stack with lower bounds C prefill",
                  c.run({"x": x}, compiled=True)["y"], h, RTOL)]


def main():
    args = parse_args()
    D = 32
    results = sweep(args, "hgrn", "hgrn(x)", hgrn_ref, D)
    results += sweep(args, "hgrn2", "hgrn2(x, expand_ratio: 16)",
                     lambda W, p, x: hgrn2_ref(W, p, x, 16), D, seed=2)
    results += lb_case(args, "hgrn_lb", "hgrn_lb(x, lb)", hgrn_ref, D)
    results += lb_case(args, "hgrn2_lb", "hgrn2_lb(x, lb, expand_ratio: 16)",
                       lambda W, p, x, lb: hgrn2_ref(W, p, x, 16, lb), D)
    results += lower_bounds_case(args)
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
