#!/usr/bin/env python3
"""Run-time skip thresholds and route capacities (docs/layers.md "Run-time
thresholds and capacities"): `gattnc run --set threshold[:I]=tau` /
`--set capacity[:I]=c` change, without editing the .gat file, the tau of
`skip when g < tau` and the capacity / decode threshold of `route top(c * T,
threshold: tau) by r`. Compiled C gets the values through the generated
NAME_set_skip_threshold / NAME_set_route_capacity after init (the JIT and the
interpreter read them from the IR).

Model: a GateSkip-style scalar gate g = sigmoid(w . n + b) skipping a SwiGLU
branch when g < tau (statement 0), then a Mixture-of-Depths route over a
second SwiGLU (statement 1). The float64 PyTorch reference is written from
the math (docs/layers.md, "Skips and residual gates") at the tau/c each run
sets; the --count counters must show each branch ran on exactly the tokens
PyTorch keeps, so a lower tau really runs more tokens and a higher one fewer.
Prefill and decode, interpreter and compiled code; plus the errors of bad --set
values and C programs that call the setters and getters directly and run the
model at knob values set through them (linked with the generated C, or with
the LLVM backend's object file under --backend jit)."""
import math
import os
import subprocess

import torch

from e2e_util import Case, check, parse_args, perturb, read_st, set_weights, write_st

D, F = 16, 24
F_ = torch.nn.functional

SRC = f"""import std
model knobs {{
  max T = 128
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  h = x
  n = rms_norm(h) @ "norm1"
  g = skip_gate_scalar(n) @ "gate"
  h = h + g * swiglu(n, hidden: {F}) @ "mlp1" skip when g < 0.5
  n2 = rms_norm(h) @ "norm2"
  r = linear(n2, 1) @ "router"
  h = h + r * swiglu(n2, hidden: {F}) @ "mlp2" route top(0.25 * T, threshold: 0.5) by r
  y = h
}}
"""


def rms(x, w, eps=1e-5):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def swiglu(x, W, p):
    return (F_.silu(x @ W[p + "gate_proj.weight"].T) * (x @ W[p + "up_proj.weight"].T)) @ W[p + "down_proj.weight"].T


def f32(v):
    return torch.tensor(v, dtype=torch.float32).double().item()


def ref(x, W, chunk, tau, cap, rtau):
    """Returns (y, rows per statement, calls per statement)."""
    rows, calls, ys = [0, 0], [0, 0], []
    for t0 in range(0, x.shape[0], chunk):
        h = x[t0:t0 + chunk]
        n = rms(h, W["norm1.weight"])
        g = torch.sigmoid(n @ W["gate.weight"].T + W["gate.bias"])  # [n, 1]
        keep1 = ~(g[:, 0] < f32(tau))  # the model compares f32 g with tau rounded to f32
        h = torch.where(keep1[:, None], h + g * swiglu(n, W, "mlp1."), h)
        n2 = rms(h, W["norm2.weight"])
        r = (n2 @ W["router.weight"].T)[:, 0]
        keep2 = torch.zeros(len(r), dtype=torch.bool)
        if len(r) == 1 and rtau is not None:
            keep2[0] = bool(torch.sigmoid(r[0]) >= rtau)
        else:
            m = max(1, math.ceil(cap * len(r) - 1e-9))
            keep2[torch.sort(-r, stable=True).indices[:m]] = True
        h = torch.where(keep2[:, None], h + r[:, None] * swiglu(n2, W, "mlp2."), h)
        for i, k in enumerate((keep1, keep2)):
            rows[i] += int(k.sum())
            calls[i] += int(k.any())
        ys.append(h)
    return torch.cat(ys), rows, calls


def gattnc(c, *argv, ok=True):
    p = subprocess.run([c.gattnc, *argv], capture_output=True, text=True, timeout=300)
    if ok and p.returncode != 0:
        print("gattnc", *argv, "failed:\n", p.stdout, p.stderr)
    return p


def run(c, x, tag, sets, step=0, compiled=False, count=None):
    ipath = os.path.join(c.dir, f"{tag}.in.safetensors")
    opath = os.path.join(c.dir, f"{tag}.out.safetensors")
    write_st(ipath, {"x": x.float()})
    argv = ["run", c.src, "--weights", c.wpath, "--inputs", ipath, "-o", opath]
    for s in sets:
        argv += ["--set", s]
    if not compiled:
        argv.append("--interp")
    elif c.backend == "jit":
        argv.append("--jit")
    if step:
        argv += ["--step", str(step)]
    if count:
        argv += ["--count", count]
    p = gattnc(c, *argv)
    if p.returncode != 0:
        return None, None
    ops = None
    if count:
        import json
        with open(count) as f:
            ops = [o for o in json.load(f)["ops"] if o["kind"] == "skip"]
    return read_st(opath)["y"].double(), ops


# (label, --set values, tau of statement 0, capacity and threshold of statement 1)
SETTINGS = [
    ("defaults", [], 0.5, 0.25, 0.5),
    ("tau 0.3", ["threshold:0=0.3"], 0.3, 0.25, 0.5),
    ("tau 0.7, capacity 0.75, route tau 0.2", ["threshold:0=0.7", "capacity=0.75", "threshold:1=0.2"], 0.7, 0.75, 0.2),
    ("threshold 0.6 for both", ["threshold=0.6"], 0.6, 0.25, 0.6),
    ("route threshold removed", ["threshold:1=-1"], 0.5, 0.25, None),
]


C_API = r"""
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "knobs.h"
#define CHECK(c) do { if (!(c)) { printf("FAIL: %s (line %d)\n", #c, __LINE__); return 1; } } while (0)
int main(void) {
  knobs m;
  static float zeros[1 << 16];
  const void *w[KNOBS_NUM_PARAMS];
  for (int i = 0; i < KNOBS_NUM_PARAMS; i++) w[i] = zeros;
  void *arena = aligned_alloc(64, (KNOBS_ARENA_BYTES + 63) / 64 * 64);
  CHECK(knobs_init_tensors(&m, arena, KNOBS_ARENA_BYTES, w) == GAT_OK);
  CHECK(knobs_skip_ops() == 2);
  CHECK(knobs_skip_line(0) == 9 && knobs_skip_line(1) == 12);
  CHECK(!strcmp(knobs_skip_kind(0), "threshold") && !strcmp(knobs_skip_kind(1), "route"));
  CHECK(knobs_skip_threshold(&m, 0) == 0.5 && knobs_skip_threshold(&m, 1) == 0.5);
  CHECK(knobs_route_capacity(&m, 0) == -1.0 && knobs_route_capacity(&m, 1) == 0.25);
  CHECK(knobs_set_skip_threshold(&m, 0, 0.1) == GAT_OK && knobs_skip_threshold(&m, 0) == (double)0.1f);
  CHECK(knobs_set_route_capacity(&m, 1, 0.5) == GAT_OK && knobs_route_capacity(&m, 1) == 0.5);
  CHECK(knobs_set_route_capacity(&m, 1, 1.5) == GAT_ERR_ARGUMENT && knobs_route_capacity(&m, 1) == 0.5);
  CHECK(knobs_set_route_capacity(&m, 0, 0.5) == GAT_ERR_ARGUMENT);
  CHECK(knobs_set_skip_threshold(&m, 1, 2.0) == GAT_ERR_ARGUMENT);
  CHECK(knobs_set_skip_threshold(&m, 2, 0.5) == GAT_ERR_ARGUMENT);
  CHECK(knobs_set_skip_threshold(&m, 0, NAN) == GAT_ERR_ARGUMENT);
  CHECK(knobs_reset(&m) == GAT_OK && knobs_skip_threshold(&m, 0) == (double)0.1f); /* kept across reset */
  printf("ok: C API: knob getters, setters and their range checks\n");
  free(arena);
  return 0;
}
"""


# knobs_run WEIGHTS X.bin T STEP tau0 cap1 rtau1 Y.bin: init from the safetensors blob, the three
# knobs through the setters (rtau1 < 0 removes the route's threshold), forward T tokens STEP at a
# time (0: one call), y written raw
C_RUN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "knobs.h"
static void *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  void *p = malloc(*len ? *len : 1);
  if (fread(p, 1, *len, f) != *len) { free(p); p = NULL; }
  fclose(f);
  return p;
}
int main(int argc, char **argv) {
  if (argc != 9) return 2;
  size_t wl = 0, xl = 0;
  void *blob = slurp(argv[1], &wl);
  float *x = slurp(argv[2], &xl);
  const long T = atol(argv[3]), step = atol(argv[4]) ? atol(argv[4]) : atol(argv[3]);
  if (!blob || !x) return 3;
  knobs m;
  void *arena = aligned_alloc(64, (KNOBS_ARENA_BYTES + 63) / 64 * 64);
  float *y = malloc(sizeof(float) * (size_t)T * 16);
  if (knobs_init(&m, arena, KNOBS_ARENA_BYTES, blob, wl) != GAT_OK) { printf("init: %s\n", knobs_message(&m)); return 4; }
  if (knobs_set_skip_threshold(&m, 0, atof(argv[5])) != GAT_OK || knobs_set_route_capacity(&m, 1, atof(argv[6])) != GAT_OK ||
      knobs_set_skip_threshold(&m, 1, atof(argv[7])) != GAT_OK) { printf("set: %s\n", knobs_message(&m)); return 5; }
  for (long t = 0; t < T; t += step)
    if (knobs_forward(&m, x + t * 16, (int32_t)(T - t < step ? T - t : step), y + t * 16) != GAT_OK) {
      printf("forward: %s\n", knobs_message(&m));
      return 6;
    }
  FILE *f = fopen(argv[8], "wb");
  if (!f || fwrite(y, sizeof(float), (size_t)T * 16, f) != (size_t)T * 16) return 7;
  fclose(f);
  free(arena);
  free(y);
  free(x);
  free(blob);
  return 0;
}
"""


def c_api_test(c, args, x=None):
    """Builds the generated model (C, or the LLVM backend's object with --emit=obj when testing the
    LLVM backend) with a small program calling the knob API, and one that runs the model at knob
    values set through the setters against the PyTorch reference."""
    src_dir = os.environ.get("GAT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
    obj = args.backend == "jit"
    what = "LLVM object" if obj else "C"
    out_c = os.path.join(c.dir, "knobs.o" if obj else "knobs.c")
    if gattnc(c, c.src, *(["--emit=obj"] if obj else []), "-o", out_c).returncode != 0:
        return False
    rt = os.path.join(src_dir, "runtime")
    ok = True
    for name, text in (("knobs_main", C_API.replace("#include <stdlib.h>", "#include <stdlib.h>\n#include <string.h>")),
                       ("knobs_run", C_RUN)):
        main_c = os.path.join(c.dir, name + ".c")
        with open(main_c, "w") as f:
            f.write(text)
        exe = os.path.join(c.dir, name)
        cmd = ["cc", "-std=c11", "-Wall", "-Wextra", "-pedantic", "-Werror", "-O1", "-I", rt, "-I", c.dir, main_c, out_c,
               os.path.join(rt, "gat_runtime.c"), os.path.join(rt, "gat_safetensors.c"), "-lm", "-o", exe]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(f"FAIL: building the C API test ({what}):", p.stderr[:3000])
            return False
    p = subprocess.run([os.path.join(c.dir, "knobs_main")], capture_output=True, text=True)
    print(p.stdout.strip(), f"({what})")
    ok = p.returncode == 0
    if x is None:
        return ok
    xpath, ypath = os.path.join(c.dir, "knobs_x.bin"), os.path.join(c.dir, "knobs_y.bin")
    x.float().numpy().tofile(xpath)
    T = x.shape[0]
    import numpy as np
    for tau, cap, rtau in ((0.3, 0.75, 0.2), (0.7, 0.25, -1.0)):
        for step in (0, 1):
            p = subprocess.run([os.path.join(c.dir, "knobs_run"), c.wpath, xpath, str(T), str(step), str(tau), str(cap),
                                str(rtau), ypath], capture_output=True, text=True)
            if p.returncode != 0:
                print(f"FAIL: knobs_run ({what}) exit {p.returncode}: {p.stdout.strip()}")
                ok = False
                continue
            got = torch.from_numpy(np.fromfile(ypath, dtype=np.float32).reshape(T, D)).double()
            want, _, _ = ref(x, c.weights, step or T, tau, cap, None if rtau < 0 else rtau)
            ok &= check(f"{what} setters tau {tau} capacity {cap} route tau {rtau} {'decode' if step else 'prefill'}",
                        got, want, 1e-4)
    return ok


def main():
    args = parse_args()
    c = Case(args, "knobs", SRC)
    W = perturb(c.weights, seed=5, scale=0.2)
    g = torch.Generator().manual_seed(11)
    W["gate.weight"] = torch.randn(W["gate.weight"].shape, generator=g, dtype=torch.float64) * 0.8
    W["gate.bias"] = torch.zeros_like(W["gate.bias"])
    W["router.weight"] = torch.randn(W["router.weight"].shape, generator=g, dtype=torch.float64) * 0.6
    set_weights(c, W)
    passed = failed = 0

    def tally(ok):
        nonlocal passed, failed
        passed += ok
        failed += not ok

    T = 48
    x = torch.randn(T, D, generator=torch.Generator().manual_seed(77), dtype=torch.float64)
    kept0 = {}
    for label, sets, tau, cap, rtau in SETTINGS:
        for mode, step in (("prefill", 0), ("decode", 1)):
            want, rows, calls = ref(x, c.weights, step or T, tau, cap, rtau)
            for where, compiled in (("interp", False), ("C", True)):
                tag = f"{label}_{mode}_{where}".replace(" ", "_").replace(",", "")
                got, _ = run(c, x, tag, sets, step, compiled)
                tally(got is not None and check(f"{label} {mode} {where}", got, want, 1e-4))
                cpath = os.path.join(c.dir, tag + ".count.json")
                _, ops = run(c, x, tag + "_count", sets, step, compiled, count=cpath)
                ok = ops is not None and [o["rows"] for o in ops] == rows and [o["calls"] for o in ops] == calls
                print(f"{'ok' if ok else 'FAIL'}: {label} {mode} {where}: rows {[o['rows'] for o in ops or []]} "
                      f"calls {[o['calls'] for o in ops or []]} == PyTorch {rows} {calls} (of {T} tokens)")
                tally(ok)
            kept0[(label, mode)] = rows[0]
    # the threshold really moves the work: lower tau runs more tokens of branch 0, higher fewer
    a, b, d = kept0[("tau 0.3", "prefill")], kept0[("defaults", "prefill")], kept0[("tau 0.7, capacity 0.75, route tau 0.2", "prefill")]
    ok = a > b > d
    print(f"{'ok' if ok else 'FAIL'}: branch 0 ran on {a} / {b} / {d} of {T} tokens at tau = 0.3 / 0.5 / 0.7")
    tally(ok)

    # bad values are refused, by the interpreter's --set and by the compiled setters
    ipath = os.path.join(c.dir, "defaults_prefill_interp.in.safetensors")
    for sets, what in ((["capacity:0=0.5"], "not a route"), (["threshold:7=0.5"], "no statement 7"),
                       (["capacity:1=1.5"], "capacity > 1"), (["threshold:1=3"], "route threshold > 1"),
                       (["tau=0.5"], "unknown key"), (["threshold:0=abc"], "not a number")):
        for compiled in (False, True):
            argv = ["run", c.src, "--weights", c.wpath, "--inputs", ipath, "-o", os.path.join(c.dir, "bad.safetensors")]
            for s in sets:
                argv += ["--set", s]
            if not compiled:
                argv.append("--interp")
            p = gattnc(c, *argv, ok=False)
            ok = p.returncode != 0 and "--set" in p.stderr and "internal" not in p.stderr
            print(f"{'ok' if ok else 'FAIL'}: --set {' '.join(sets)} ({what}, {'C' if compiled else 'interp'}) refused: "
                  f"{p.stderr.strip().splitlines()[-1] if p.stderr.strip() else '(no message)'}")
            tally(ok)

    # the C build (--backend c) or the LLVM object (--backend jit) linked into C programs
    tally(c_api_test(c, args, x))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
