#!/usr/bin/env python3
"""Passes concat (segmented GEMM over projections of the same input) and gate
(y * act(GEMM) as the GEMM's epilogue) keep the results.

1. A model with every case: four projections of one RMSNorm output (bias, silu
   epilogue, residual, sizes off the register block: K = 67, N = 45, 33, 67,
   40), the gate `u * sigmoid(linear(h) + b)` and the mirrored
   `sigmoid(linear(h)) * linear(u)` (the gate is another GEMM's output). Run
   compiled at -O2, -O2 -fno-concat, -O2 -fno-gate and with both off for one
   prefill call (T = 29: full tiles and row tails), -O2 and both off token by
   token (T = 1 per call: the GEMV path), against the reference interpreter run the same
   way. Tolerance 1e-4 of max |ref| (the -O2 GEMM tolerance of the other e2e
   tests: f32 accumulation with FMA; observed ~1e-6). -O2 against both
   passes off: 1e-6 (concat is bitwise; the gate's sigmoid is the GEMM
   epilogue's float one instead of the nest's, a few f32 ulps).
2. The bench models M1 (gated attention: the gate) and M3 (gated DeltaNet:
   beta and decay projections as one segmented GEMM), T = 10 prefill, -O2 and
   -O2 -fno-concat -fno-gate against the interpreter (1e-4) and against each
   other (1e-5: the logits after 4 layers; observed 3.5e-7 for M1).
   M2's loop IR is checked for its four gates.
3. --dump-after: -O2 shows the segmented GEMM and the gated one; -fno-concat
   and -fno-gate remove them.
With --backend jit (the LLVM backend, ctest's _jit entry) every compiled run above
is an LLVM JIT run with both passes on (codegen/kernels/gemm.c linked as bitcode, gat_gemm_seg_f32),
the loop IR is dumped with --emit=llvm's pass options, and in addition:
4. the emitted LLVM IR (--emit=llvm) calls gat_gemm_seg_f32 once per segmented or
   gated GEMM (none with -fno-concat -fno-gate);
5. --emit=obj: the concat_gate model's object file and its generated C (-O2, the
   C compiler) linked into one program, prefill T = 29 and token by token, the
   object's outputs against the C build's: bit for bit. Both run gemm.c with
   the same vector width and register rows (the C text picks them from the
   compiler's target macros, the LLVM backend from the CPU's features), so a
   difference means the two builds chose different tiles or epilogues."""
import os
import re
import subprocess
import sys

import torch

from e2e_util import check, parse_args, read_st, run_inputs, sh, write_st

MODEL = """import std
model concat_gate {
  max T = 32
  input x : f32[T, 67]
  input u : f32[T, 40]
  output q : f32[T, 45]
  output k : f32[T, 33]
  output r : f32[T, 67]
  output o : f32[T, 40]
  output p : f32[T, 40]
  h = rms_norm(x, eps: 1e-5) @ "norm"
  q = linear(h, 45, bias: true) @ "q"
  k = silu(linear(h, 33) @ "k")
  r = x + linear(h, 67) @ "r"
  o = u * sigmoid(linear(h, 40, bias: true) @ "g")
  p = sigmoid(linear(h, 40) @ "g2") * linear(u, 40) @ "pu"
}
"""

FLAGS = [[], ["-fno-concat"], ["-fno-gate"], ["-fno-concat", "-fno-gate"]]
RTOL = 1e-4
RTOL_SAME = 1e-6
RTOL_SAME_MODEL = 1e-5  # 4 layers and an lm_head after the gate's few-ulp sigmoid (observed 3.5e-7, 5.3e-7)


def llvm_flags(args):
    """the LLVM backend's pass options for --dump-after (its driver settings) under --backend jit"""
    return ["--emit=llvm"] if args.backend == "jit" else []


def seg_calls(args, src, wd, flags):
    """calls of gat_gemm_seg_f32 (or its row-block form gat_gemm_seg_f32_blk) in the -O2 LLVM IR
    (--emit=llvm) outside those functions (the decode path calls itself per panel), or -1 on failure"""
    ll = os.path.join(wd, "seg.ll")
    rc, log = sh([args.gattnc, src, "-O2", "--emit=llvm", "-o", ll] + flags)
    if rc:
        print("FAIL: --emit=llvm", log[:2000])
        return -1
    n, inside = 0, False
    seg = re.compile(r"@gat_gemm_seg_f32(_blk)?\(")  # _blk: a row block (pass block)
    with open(ll) as f:
        for ln in f:
            if ln.startswith("define "):
                inside = bool(seg.search(ln))
            elif "call" in ln and seg.search(ln) and not inside:
                n += 1
    return n


def check_seg_calls(args, name, src, wd, want):
    ok = True
    for flags, n in (([], want), (["-fno-concat", "-fno-gate"], 0)):
        got = seg_calls(args, src, wd, flags)
        good = got == n
        print(f"{'ok' if good else 'FAIL'}: {name} {' '.join(flags) or '-O2'}: {got} calls of gat_gemm_seg_f32 "
              f"in the LLVM IR (want {n})")
        ok &= good
    return ok


OBJ_MAIN = r"""#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cg_c.h"
#include "cg_llvm.h"
#define T 29
static _Alignas(64) unsigned char arena_c[CG_C_ARENA_BYTES], arena_l[CG_LLVM_ARENA_BYTES];
static float x[T * 67], u[T * 40];
static float oc[2][T * (45 + 33 + 67 + 40 + 40)];
int main(int argc, char **argv) {
  (void)argc;
  FILE *f = fopen(argv[1], "rb");
  if (!f) return 2;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *w = malloc((size_t)n);
  if (!w || fread(w, 1, (size_t)n, f) != (size_t)n) return 2;
  fclose(f);
  unsigned long long s = 12345;
  for (int i = 0; i < T * 67; i++) x[i] = (float)((double)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 11) / 9007199254740992.0 * 2 - 1);
  for (int i = 0; i < T * 40; i++) u[i] = (float)((double)((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 11) / 9007199254740992.0 * 2 - 1);
  cg_c mc;
  cg_llvm ml;
  if (cg_c_init(&mc, arena_c, sizeof arena_c, w, (size_t)n) != GAT_OK) return 3;
  if (cg_llvm_init(&ml, arena_l, sizeof arena_l, w, (size_t)n) != GAT_OK) return 3;
  int bad = 0;
  for (int step = 0; step < 2; step++) {
    cg_c_reset(&mc);
    cg_llvm_reset(&ml);
    for (int v = 0; v < 2; v++) {
      float *o = oc[v];
      for (int t0 = 0; t0 < T; t0 += step ? 1 : T) {
        int nt = step ? 1 : T;
        float *q = o, *k = q + T * 45, *r = k + T * 33, *og = r + T * 67, *p = og + T * 40;
        int st = v ? cg_llvm_forward(&ml, x + t0 * 67, u + t0 * 40, nt, q + t0 * 45, k + t0 * 33, r + t0 * 67, og + t0 * 40, p + t0 * 40)
                   : cg_c_forward(&mc, x + t0 * 67, u + t0 * 40, nt, q + t0 * 45, k + t0 * 33, r + t0 * 67, og + t0 * 40, p + t0 * 40);
        if (st != GAT_OK) return 4;
      }
    }
    double err = 0, mx = 0;
    int diff = 0;
    for (size_t i = 0; i < sizeof oc[0] / sizeof oc[0][0]; i++) {
      double e = fabs((double)oc[0][i] - (double)oc[1][i]);
      err = e > err ? e : err;
      mx = fabs((double)oc[0][i]) > mx ? fabs((double)oc[0][i]) : mx;
      diff += memcmp(&oc[0][i], &oc[1][i], sizeof(float)) != 0;
    }
    printf("%s: %s: LLVM object vs C: %d of %zu values differ in bits (tolerance 0), max |err| / max |C| = %.3g\n",
           diff == 0 ? "ok" : "FAIL", step ? "token by token" : "prefill T=29", diff, sizeof oc[0] / sizeof oc[0][0],
           mx > 0 ? err / mx : err);
    bad |= diff != 0;
  }
  free(w);
  return bad;
}
"""


def test_obj(args, src, wpath, wd):
    """5. the --emit=obj object against the generated C, linked into one program"""
    root = os.environ.get("GAT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
    rt = os.path.join(root, "runtime")
    obj, csrc = os.path.join(wd, "cg_llvm.o"), os.path.join(wd, "cg_c.c")
    for argv in ([src, "-O2", "--emit=obj", "-o", obj], [src, "-O2", "-o", csrc]):
        rc, log = sh([args.gattnc] + argv)
        if rc:
            print("FAIL: gattnc", " ".join(argv), log[:2000])
            return False
    main_c, exe = os.path.join(wd, "obj_main.c"), os.path.join(wd, "obj_main")
    with open(main_c, "w") as f:
        f.write(OBJ_MAIN)
    cmd = ["cc", "-std=c11", "-O2", "-march=native", "-I", rt, "-I", wd, main_c, csrc, obj, os.path.join(rt, "gat_runtime.c"),
           os.path.join(rt, "gat_safetensors.c"), "-lm", "-o", exe]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        print("FAIL: building the --emit=obj test:", p.stderr[:3000])
        return False
    p = subprocess.run([exe, wpath], capture_output=True, text=True, timeout=120)
    print(p.stdout.strip())
    if p.returncode:
        print(f"FAIL: --emit=obj test exit {p.returncode}", p.stderr[:2000])
    return p.returncode == 0


def compare(args, name, src, wpath, inputs, wd, steps, flag_sets=FLAGS, rtol_same=RTOL_SAME):
    ok = True
    for step in steps:
        ref = run_inputs(args, src, wpath, inputs, wd, f"ref{step}", ["--interp"], step)
        if ref is None:
            return False
        outs = {}
        for flags in flag_sets:
            tag = "o2" + "".join(flags) + f"_s{step}"
            got = run_inputs(args, src, wpath, inputs, wd, tag, ["-O2"] + flags, step)
            if got is None:
                ok = False
                continue
            outs[" ".join(flags)] = got
            for k in ref:
                ok &= check(f"{name} -O2 {' '.join(flags)} step {step}: {k} vs interpreter", got[k], ref[k], RTOL)
        base = outs.get("-fno-concat -fno-gate")
        for fl in ("", "-fno-concat", "-fno-gate"):
            if base is not None and fl in outs:
                for k in base:
                    ok &= check(f"{name} -O2 {fl or '(all on)'} step {step}: {k} vs -fno-concat -fno-gate",
                                outs[fl][k], base[k], rtol_same)
    return ok


def test_model(args):
    wd = os.path.join(args.workdir, "concat_gate")
    os.makedirs(wd, exist_ok=True)
    src = os.path.join(wd, "concat_gate.gat")
    with open(src, "w") as f:
        f.write(MODEL)
    wpath = os.path.join(wd, "w.safetensors")
    rc, log = sh([args.gattnc, "init", src, "-o", wpath, "--seed", "2"])
    if rc:
        print("FAIL: init", log)
        return False
    g = torch.Generator().manual_seed(7)
    w = {k: v + 0.2 * torch.randn(v.shape, generator=g) for k, v in read_st(wpath).items()}
    write_st(wpath, w)
    inputs = {"x": torch.randn(29, 67, generator=g), "u": torch.randn(29, 40, generator=g)}
    ok = compare(args, "concat_gate T=29", src, wpath, inputs, wd, (0,))
    ok &= compare(args, "concat_gate T=29", src, wpath, inputs, wd, (1,), [[], ["-fno-concat", "-fno-gate"]])
    # the loop IR: one segmented GEMM (q, k, r: g is gated, g2 too), two gated GEMMs
    rc, out = sh([args.gattnc, src, "-O2", "--dump-after=concat", "-o", os.path.join(wd, "dump.out")] + llvm_flags(args))
    seg = [ln for ln in out.splitlines() if " segments " in ln]
    gated = [ln for ln in out.splitlines() if "epilogue sigmoid" in ln and "= gemm(" in ln]
    good = rc == 0 and len(seg) == 1 and seg[0].count("= w b") == 3 and len(gated) == 2
    print(f"{'ok' if good else 'FAIL'}: --dump-after=concat: {len(seg)} segmented GEMM "
          f"({seg[0].count('= w b') if seg else 0} segments, want 1 of 3), {len(gated)} gated GEMMs (want 2)")
    ok &= good
    for flags, what in ((["-fno-concat"], " segments "), (["-fno-gate"], "epilogue sigmoid")):
        rc, out = sh([args.gattnc, src, "-O2", "--dump-after=concat", "-o", os.path.join(wd, "dump.out")] + flags +
                     llvm_flags(args))
        good = rc == 0 and what not in out
        print(f"{'ok' if good else 'FAIL'}: {' '.join(flags)}: no '{what.strip()}' in the loop IR")
        ok &= good
    if args.backend == "jit":
        ok &= check_seg_calls(args, "concat_gate", src, wd, 3)
        ok &= test_obj(args, src, wpath, wd)
    return ok


def test_bench_models(args):
    root = os.environ.get("GAT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
    ok = True
    # (model, segmented GEMMs, gated GEMMs) in the -O2 loop IR: the output gates (M1 sigmoid, M2 and M3
    # silu(g) * normed o) and M3's beta/decay
    # projections (N = 4: segments join only at N <= 128; M1's and M2's q/k/v stay separate)
    for model, want_seg, want_gated, numerics in (("m1_gated_attention", 0, 4, True), ("m2_gla", 0, 4, False),
                                                  ("m3_gated_deltanet", 4, 4, True)):
        src = os.path.join(root, "bench", model + ".gat")
        wd = os.path.join(args.workdir, model)
        os.makedirs(wd, exist_ok=True)
        rc, out = sh([args.gattnc, src, "-O2", "--dump-after=concat", "-o", os.path.join(wd, "dump.out")] +
                     llvm_flags(args))
        n = out.count(" segments ")
        ng = sum(1 for ln in out.splitlines() if "= gemm(" in ln and ln.split(";")[0].count(",") >= 9
                 and ln.split(";")[0].rstrip().split(",")[-1].strip() != "-")
        good = rc == 0 and n == want_seg and ng == want_gated
        print(f"{'ok' if good else 'FAIL'}: {model}: {n} segmented GEMMs (want {want_seg}), {ng} gated (want {want_gated})")
        ok &= good
        if args.backend == "jit":
            ok &= check_seg_calls(args, model, src, wd, want_seg + want_gated)
        if not numerics:
            continue
        wpath = os.path.join(wd, "w.safetensors")
        rc, log = sh([args.gattnc, "init", src, "-o", wpath, "--seed", "1"])
        if rc:
            print("FAIL: init", log)
            return False
        g = torch.Generator().manual_seed(3)
        inputs = {"tokens": torch.randint(0, 4096, (10,), generator=g, dtype=torch.int32)}
        ok &= compare(args, model + " T=10", src, wpath, inputs, wd, (0,), [[], ["-fno-concat", "-fno-gate"]],
                      RTOL_SAME_MODEL)
    return ok


def main():
    args = parse_args()
    results = [test_model(args)]
    if args.backend == "jit":
        print("note: --backend jit: compiled runs are LLVM JIT runs (concat and gate on)")
    results.append(test_bench_models(args))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
