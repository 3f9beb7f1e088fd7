#!/usr/bin/env python3
"""Scan steps whose emitted row or new state is another state's buffer: the
legality rule of pass scan_inplace (-O2), which stores a state's new value
over its old one.

Each model is a small recurrence in which a state is emitted, or handed to
another state, before or after it is overwritten; RWKV's token shift
(`emit = p` then `p[j] = x[t, j]`, y_t = x_{t-1}) is the first. The reference
is a float64 PyTorch loop written from the step's meaning (statements run in
order, `emit = p` copies p as it is at that point). Every model runs through
the interpreter, -O0, -O1, -O2 and -O2 without scan fusion, prefill and one
token per call; max |err| / max |ref| must stay below 1e-5 (the steps are
sums and products of a few f32 values)."""
import sys

import torch

from e2e_util import Case, check, parse_args, summary

RTOL = 1e-5
D = 4
T = 9

# name -> (scan body, states, reference step: (states dict, x_t) -> (emit, new states))
MODELS = {
    # the token shift: y_t = x_{t-1}
    "shift": ("p: f32[D] = 0", """
    emit = p
    p[j] = x[t, j]""", lambda s, x: (s["p"].clone(), {"p": x.clone()})),
    # two states, the old one emitted, then handed on: y_t = x_{t-2}
    "swap2": ("a: f32[D] = 0, b: f32[D] = 0", """
    emit = b
    b[j] = a[j]
    a[j] = x[t, j]""", lambda s, x: (s["b"].clone(), {"b": s["a"].clone(), "a": x.clone()})),
    # the state updated from itself after it was emitted
    "self_after": ("g: f32[D] = 0", """
    emit = g
    g[j] = x[t, j] - g[j]""", lambda s, x: (s["g"].clone(), {"g": x - s["g"]})),
    # emitted after the update: the new value (legal to update in place)
    "emit_new": ("g: f32[D] = 0", """
    g[j] = 0.5 * g[j] + x[t, j]
    emit = g""", lambda s, x: ((0.5 * s["g"] + x).clone(), {"g": 0.5 * s["g"] + x})),
    # an emitted expression of the old state, computed before the update
    "emit_expr_old": ("g: f32[D] = 0", """
    emit[j] = 2 * g[j]
    g[j] = g[j] + x[t, j]""", lambda s, x: (2 * s["g"], {"g": s["g"] + x})),
    # one state's new value is the other's old one, both emitted in between
    "rotate": ("a: f32[D] = 0, b: f32[D] = 1", """
    emit[j] = a[j] + 10 * b[j]
    a[j] = b[j]
    b[j] = b[j] + x[t, j]""", lambda s, x: (s["a"] + 10 * s["b"], {"a": s["b"].clone(), "b": s["b"] + x})),
}


def source(name, states, body):
    return f"""model {name} {{
  const D = {D}
  max T = 16
  input  x : f32[T, D]
  output y : f32[T, D]
  y = scan t with {states} {{{body}
  }}
}}
"""


def reference(states, step, x):
    s = {}
    for decl in states.split(","):
        n, rest = decl.split(":")
        s[n.strip()] = torch.full((D,), float(rest.split("=")[1]), dtype=torch.float64)
    out = []
    for t in range(x.shape[0]):
        e, new = step(s, x[t])
        out.append(e)
        s.update(new)
    return torch.stack(out)


def main():
    args = parse_args()
    torch.manual_seed(5)
    results = []
    for name, (states, body, step) in MODELS.items():
        c = Case(args, name, source(name, states, body))
        x = torch.randn(T, D)
        want = reference(states, step, x.double())
        for how, kw, flags in [("interp", {}, []), ("O0", {"compiled": True}, ["-O0"]),
                               ("O1", {"compiled": True}, ["-O1"]), ("O2", {"compiled": True}, []),
                               ("O2 -fno-scanfuse", {"compiled": True}, ["-fno-scanfuse"])]:
            for step_k in (0, 1):
                tag = f"{how.replace(' ', '_')}.s{step_k}"
                out = c.run({"x": x}, step=step_k, tag=tag, flags=flags, **kw)
                results.append(check(f"{name} {how} {'decode' if step_k else 'prefill'}", out["y"], want, RTOL))
    return summary(results)


if __name__ == "__main__":
    sys.exit(main())
