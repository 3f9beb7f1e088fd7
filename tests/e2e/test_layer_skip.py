#!/usr/bin/env python3
"""Skips (docs/layers.md "Skips"): GateSkip residual gates (vector and scalar,
`skip when mean(g) < tau`), the Router-Tuning / MindSkip token router
(skip when sigmoid(router x^) < 0.5) and ReZero (one `resweight` shared by
two sublayers) and DenseFormer depth-weighted averaging, against float64
PyTorch references written from docs/layers.md, "Skips and residual gates" and
"DenseFormer depth-weighted averaging", interpreter and C, prefill and decode.
The execution counters (`gattnc run --count FILE`: the interpreter's, and those a
--count build of the generated C keeps) must show that each skip region ran
on exactly the tokens PyTorch decides to keep, no more, in every run."""
import os

import torch

from e2e_util import Case, check, parse_args, perturb, run_counted, set_weights

D, F, TAU = 32, 24, 0.5
F_ = torch.nn.functional


def rms(x, w, eps=1e-5):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def swiglu(x, W, p):
    return (F_.silu(x @ W[p + "gate_proj.weight"].T) * (x @ W[p + "up_proj.weight"].T)) @ W[p + "down_proj.weight"].T


def ref_gateskip(x, W, scalar):
    """Two gated branches; a token skips a branch when mean(g) < TAU."""
    keeps = []
    for b in ("b0", "b1"):
        h = rms(x, W[f"{b}.norm.weight"])
        g = torch.sigmoid(h @ W[f"{b}.gate.weight"].T + W[f"{b}.gate.bias"])
        keep = g.mean(-1) >= TAU
        y = x + g * swiglu(h, W, f"{b}.mlp.")
        x = torch.where(keep[:, None], y, x)
        keeps.append(int(keep.sum()))
    return x, keeps


def ref_router(x, W):
    h = rms(x, W["norm.weight"])
    r = torch.sigmoid(h @ W["router.weight"].T)[:, 0]
    keep = r >= 0.5
    return torch.where(keep[:, None], x + swiglu(h, W, "mlp."), x), [int(keep.sum())]


def ref_rezero(x, W):
    a = W["resweight"]
    x = x + a * swiglu(x, W, "mlp0.")
    h = F_.relu(x @ W["ffn.linear1.weight"].T + W["ffn.linear1.bias"])
    return x + a * (h @ W["ffn.linear2.weight"].T + W["ffn.linear2.bias"]), None


def ref_denseformer(x, W):
    """DWAModules (dilation 1, period 1): accumulate X_0..X_{i+1}, Z = sum_j alpha_j X_j."""
    acc, h = [x], x
    for i in range(3):
        acc.append(swiglu(rms(h, W[f"blocks.{i}.norm.weight"]), W, f"blocks.{i}.mlp."))
        h = sum(W[f"dwa_modules.alphas.{i}.weight"][0, j] * a for j, a in enumerate(acc))
    return h, None


def gateskip_src(name, gate):
    return f"""import std
model {name} {{
  const tau = {TAU}
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  h = x
  repeat i in 0..2 @ "b{{i}}" {{
    n = rms_norm(h) @ "norm"
    g = {gate}(n) @ "gate"
    h = h + g * swiglu(n, hidden: {F}) @ "mlp" skip when mean(g, axis: -1) < tau
  }}
  y = h
}}
"""


ROUTER_SRC = f"""import std
model skip_router {{
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  h = x
  n = rms_norm(h) @ "norm"
  r = token_router(n)
  h = h + swiglu(n, hidden: {F}) @ "mlp" skip when r < 0.5
  y = h
}}
"""

REZERO_SRC = f"""import std
model skip_rezero {{
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  param resweight : f32[1] = zeros()
  h = x + resweight * swiglu(x, hidden: {F}) @ "mlp0"
  y = h + resweight * rezero_ffn(h, hidden: {F}) @ "ffn"
}}
"""


DENSEFORMER_SRC = f"""import std
model skip_denseformer {{
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  acc = x as [T, 1, {D}]
  h = x
  repeat i in 0..3 {{
    b = swiglu(rms_norm(h) @ "blocks.{{i}}.norm", hidden: {F}) @ "blocks.{{i}}.mlp"
    acc = concat(acc, b as [T, 1, {D}], axis: 1)
    h = depth_weighted_average(acc) @ "dwa_modules.alphas.{{i}}"
  }}
  y = h
}}
"""


def spread_gates(W):
    """Gate logits of both signs, so some tokens skip and some do not."""
    g = torch.Generator().manual_seed(11)
    for k in list(W):
        if k.endswith("gate.weight") or k == "router.weight":
            W[k] = torch.randn(W[k].shape, generator=g, dtype=torch.float64) * 0.5
        if k.endswith("gate.bias"):
            W[k] = torch.randn(W[k].shape, generator=g, dtype=torch.float64) * 0.1
    return W


def main():
    args = parse_args()
    passed = failed = 0
    cases = [("gateskip_vector", gateskip_src("gateskip_vector", "skip_gate"), lambda x, W: ref_gateskip(x, W, False)),
             ("gateskip_scalar", gateskip_src("gateskip_scalar", "skip_gate_scalar"),
              lambda x, W: ref_gateskip(x, W, True)),
             ("skip_router", ROUTER_SRC, ref_router),
             ("skip_rezero", REZERO_SRC, ref_rezero),
             ("skip_denseformer", DENSEFORMER_SRC, ref_denseformer)]
    for name, src, ref in cases:
        c = Case(args, name, src)
        alphas = {k: v for k, v in c.weights.items() if k.startswith("dwa_modules.")}
        if alphas:  # `gattnc init`: DenseFormer's alpha starts at 1 on the newest X, 0 elsewhere
            ok = all(torch.equal(v, torch.nn.functional.one_hot(torch.tensor([v.shape[1] - 1]), v.shape[1]).double())
                     for v in alphas.values())
            print(f"{'ok' if ok else 'FAIL'}: {name}: init alphas one-hot on the newest block "
                  f"({', '.join(str(v[0].tolist()) for v in alphas.values())})")
            passed += ok
            failed += not ok
        W = spread_gates(perturb(c.weights, seed=3, scale=0.1))
        if "resweight" in W:
            W["resweight"] = torch.tensor([0.37], dtype=torch.float64)  # init 0 would hide both branches
        set_weights(c, W)
        for T in (1, 7, 64):
            x = torch.randn(T, D, generator=torch.Generator().manual_seed(100 + T), dtype=torch.float64)
            want, keeps = ref(x, c.weights)
            cpath = os.path.join(args.workdir, f"{name}.count.json")
            for label, kw in [("interp prefill", {}), ("C prefill", dict(compiled=True)),
                              ("interp decode", dict(step=1)), ("C decode", dict(step=1, compiled=True))]:
                if T == 64 and "decode" in label:
                    continue
                counting = keeps is not None
                if counting:
                    got, ops = run_counted(c, {"x": x.float()}, cpath, label.replace(" ", "_"), **kw)
                    got = got["y"]
                else:
                    got = c.run({"x": x.float()}, **kw)["y"]
                ok = check(f"{name} T={T} {label}", got, want, 1e-4)
                passed += ok
                failed += not ok
                if counting:
                    skips = [o for o in ops if o["kind"] == "skip"]
                    rows = [o["rows"] for o in skips]
                    ok = rows == keeps and all(o["tokens"] == T for o in skips)
                    calls = [o.get("calls") for o in skips]
                    if ok and None not in calls:  # compiled counters: the branch ran once per call with kept rows
                        want_calls = keeps if kw.get("step") == 1 else [int(k > 0) for k in keeps]
                        ok = calls == want_calls
                    print(f"{'ok' if ok else 'FAIL'}: {name} T={T} {label}: rows computed per skip {rows}, "
                          f"calls {calls} == tokens kept in PyTorch {keeps} (of {T})")
                    passed += ok
                    failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
