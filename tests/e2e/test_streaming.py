#!/usr/bin/env python3
"""The streaming contract (docs/language.md "The streaming contract"): one call
of T tokens must give what T calls of one token give.

1. A legal model whose scans read only their own token (a scan reading another
   scan's output u[t, j] at t, positions() read as p[t], a weight without T)
   runs through the interpreter and the compiled C with all tokens in one
   call, one token per call (--step 1) and chunks of 3 (--step 3); every run
   is compared with a float64 PyTorch loop written from the math:
       h_t = a * h_{t-1} + x_t                 (a = weight "decay", h_0 = 0)
       u_t = h_t
       y_t = g_{t-1} + 0.01 * pos_t,  g_t = u_t - g_{t-1}   (g_0 = 0, pos_t = t absolute)
   Tolerance: max |err| / max |ref| <= 1e-5 (f32 recurrences of length <= 64).
2. A sequence-level operation outside scans (a mean over T) compiles with
   exit status 0 and one `file:line:col: warning:` with its caret, even though
   the layer holding it is instantiated three times; the legal model above
   compiles without any diagnostic.
3. A scan step that reads the whole call (the reduction `sum(s) x[s, j]`) is a
   located error with exit status 1."""
import os
import subprocess
import sys

import torch

from e2e_util import Case, check, parse_args, set_weights

RTOL = 1e-5
D = 4

LEGAL = f"""model p6 {{
  max T = 64
  input  x : f32[T, {D}]
  output y : f32[T, {D}]
  param decay : f32[{D}] = constant(0.5)
  p = positions()
  u = scan t with h: f32[{D}] = 0 {{
    h[j] = decay[j] * h[j] + x[t, j]
    emit = h
  }}
  y = scan t with g: f32[{D}] = 0 {{
    emit[j] = g[j] + 0.01 * p[t]
    g[j] = u[t, j] - g[j]
  }}
}}
"""

WARNED = f"""layer centre(x: f32[T, D]) -> f32[T, D] {{
  return x - mean(x, axis: 0, keepdim: true)
}}
model w {{
  input  x : f32[T, {D}]
  output y : f32[T, {D}]
  y = centre(centre(centre(x)))
}}
"""

FUTURE = f"""model f2 {{
  max T = 16
  input  x : f32[T, {D}]
  output y : f32[T, {D}]
  y = scan t with h: f32[{D}] = 0 {{
    h[j] = 0.5 * h[j] + sum(s) x[s, j]
    emit = h
  }}
}}
"""


def ref(x, a):
    T = x.shape[0]
    h = torch.zeros(D, dtype=torch.float64)
    g = torch.zeros(D, dtype=torch.float64)
    ys = []
    for t in range(T):
        h = a * h + x[t]
        ys.append(g + 0.01 * t)
        g = h - g
    return torch.stack(ys)


def compile_diag(args, name, src):
    path = os.path.join(args.workdir, name + ".gat")
    with open(path, "w") as f:
        f.write(src)
    p = subprocess.run([args.gattnc, path, "--dump-ir"], capture_output=True, text=True, timeout=120)
    return path, p


def main():
    args = parse_args()
    torch.manual_seed(0)
    results = []

    c = Case(args, "stream_legal", LEGAL)
    W = {"decay": torch.tensor([0.9, 0.5, -0.3, 0.1], dtype=torch.float64)}
    set_weights(c, W)
    for Tn in (1, 7, 64):
        x = torch.randn(Tn, D)
        want = ref(x.double(), c.weights["decay"])
        outs = {}
        for label, kw in [("interp prefill", {}), ("interp decode", {"step": 1}), ("interp chunks of 3", {"step": 3}),
                          ("C prefill", {"compiled": True}), ("C decode", {"step": 1, "compiled": True})]:
            out = c.run({"x": x}, tag=f"T{Tn}.{label.replace(' ', '_')}", **kw)
            outs[label] = out["y"]
            results.append(check(f"T={Tn} scan of scan, {label}", out["y"], want, RTOL))
        # prefill and decode of the interpreter agree with each other too, not only with the reference
        results.append(check(f"T={Tn} interp decode vs interp prefill", outs["interp decode"], outs["interp prefill"],
                             RTOL))

    path, p = compile_diag(args, "stream_legal_diag", LEGAL)
    ok = p.returncode == 0 and p.stderr == ""
    print(f"{'ok' if ok else 'FAIL'}: the legal model compiles without diagnostics (exit {p.returncode})")
    if not ok:
        print(p.stderr)
    results.append(ok)

    path, p = compile_diag(args, "stream_warned", WARNED)
    lines = p.stderr.splitlines()
    warn = [i for i, l in enumerate(lines) if ": warning: " in l]
    ok = (p.returncode == 0 and len(warn) == 1 and lines[warn[0]].startswith(f"{path}:2:14: warning: a mean over the T axis")
          and "prefill and decode" in lines[warn[0]] and len(lines) > warn[0] + 2
          and lines[warn[0] + 2].index("^") == 2 + 13 and "error" not in p.stderr)
    print(f"{'ok' if ok else 'FAIL'}: a mean over T warns once, located, exit status {p.returncode}")
    if not ok:
        print(p.stderr)
    results.append(ok)

    path, p = compile_diag(args, "stream_future", FUTURE)
    ok = (p.returncode == 1 and f"{path}:6:34: error: a scan step may read the T axis of x" in p.stderr
          and ": note: " in p.stderr and "internal" not in p.stderr)
    print(f"{'ok' if ok else 'FAIL'}: a reduction over T inside a scan step is an error (exit {p.returncode})")
    if not ok:
        print(p.stderr)
    results.append(ok)

    n_ok = sum(results)
    print(f"{n_ok} passed, {len(results) - n_ok} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
