#!/usr/bin/env python3
"""The instrumented builds of both backends: `gattnc --count --profile` as
generated C and as the LLVM backend's object file (`--emit=obj`), each linked
with the same NAME.h and a small C program, and `gattnc run --jit --count`.

Model: a top-2 mixture of 4 experts, a `skip when sigmoid(r) < 0.5` branch and
a Mixture-of-Depths route (`route top(0.5 * T, threshold: 0.5)`), with random
router weights so every count is non-trivial. The reference is the
interpreter's own counters (`gattnc run --interp --count`, GAT_INTERP_COUNT),
independent of both code generators: tokens offered to each op, rows and calls
of every expert / kept branch, op kinds, lines, columns and origins must be
equal (exact integers), prefill and decode (one token per call). The program
also checks the API's edges (out-of-range queries answer 0 / "", counters
kept across reset, NAME_count_clear zeroes them) and reads the per-kernel
profile (NAME_profile_*): the LLVM object must list the C build's kernel names,
each called once per forward, with nonzero total time. Its outputs must match
the interpreter's within 1e-4 (max |err| / max |ref|)."""
import json
import os
import subprocess

import torch

from e2e_util import Case, check, parse_args, perturb, read_st, run_counted, set_weights

D = 16
SRC = f"""import std
model cnt {{
  max T = 64
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  h = x + moe_ffn(rms_norm(x) @ "n0", experts: 4, hidden: 16, top_k: 2) @ "moe"
  n = rms_norm(h) @ "n1"
  r = linear(n, 1) @ "router"
  h = h + swiglu(n, hidden: 24) @ "mlp" skip when sigmoid(r) < 0.5
  n2 = rms_norm(h) @ "n2"
  r2 = linear(n2, 1) @ "router2"
  h = h + r2 * swiglu(n2, hidden: 24) @ "mlp2" route top(0.5 * T, threshold: 0.5) by r2
  y = h
}}
"""

# cnt_main WEIGHTS X.bin T STEP Y.bin: init, forward T rows STEP at a time (0: one call), y raw;
# prints the counters (run --count's JSON format), the profile and the API checks as JSON
C_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cnt.h"
/* defined by a --profile build (not in cnt.h) */
int cnt_profile_count(void);
const char *cnt_profile_name(int i);
uint64_t cnt_profile_ns(int i);
uint64_t cnt_profile_calls(int i);
void cnt_profile_clear(void);
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
  if (argc != 6) return 2;
  size_t wl = 0, xl = 0;
  void *blob = slurp(argv[1], &wl);
  float *x = slurp(argv[2], &xl);
  const long T = atol(argv[3]), step = atol(argv[4]) ? atol(argv[4]) : atol(argv[3]);
  if (!blob || !x) return 3;
  static cnt m;
  void *arena = aligned_alloc(64, (CNT_ARENA_BYTES + 63) / 64 * 64);
  float *y = malloc(sizeof(float) * (size_t)T * D_);
  if (cnt_init(&m, arena, CNT_ARENA_BYTES, blob, wl) != GAT_OK) { printf("init: %s\n", cnt_message(&m)); return 4; }
  int nf = 0;
  for (long t = 0; t < T; t += step, nf++)
    if (cnt_forward(&m, x + t * D_, (int32_t)(T - t < step ? T - t : step), y + t * D_) != GAT_OK) {
      printf("forward: %s\n", cnt_message(&m));
      return 5;
    }
  FILE *f = fopen(argv[5], "wb");
  if (!f || fwrite(y, sizeof(float), (size_t)T * D_, f) != (size_t)T * D_) return 6;
  fclose(f);
  int n = cnt_count_ops();
  printf("{\"ops\": [");
  for (int i = 0; i < n; i++) {
    printf("%s{\"kind\": \"%s\", \"line\": %d, \"col\": %d, \"origin\": \"%s\", \"tokens\": %llu, ", i ? ", " : "",
           cnt_count_kind(i), cnt_count_line(i), cnt_count_col(i), cnt_count_origin(i),
           (unsigned long long)cnt_count_tokens(&m, i));
    if (!strcmp(cnt_count_kind(i), "mixture")) {
      printf("\"experts\": [");
      for (int e = 0; e < cnt_count_regions(i); e++) printf("%s%llu", e ? ", " : "", (unsigned long long)cnt_count_rows(&m, i, e));
      printf("], \"calls\": [");
      for (int e = 0; e < cnt_count_regions(i); e++) printf("%s%llu", e ? ", " : "", (unsigned long long)cnt_count_calls(&m, i, e));
      printf("]}");
    } else {
      printf("\"rows\": %llu, \"calls\": %llu}", (unsigned long long)cnt_count_rows(&m, i, 0),
             (unsigned long long)cnt_count_calls(&m, i, 0));
    }
  }
  printf("], \"profile\": [");
  for (int i = 0; i < cnt_profile_count(); i++)
    printf("%s{\"name\": \"%s\", \"calls\": %llu, \"ns\": %llu}", i ? ", " : "", cnt_profile_name(i),
           (unsigned long long)cnt_profile_calls(i), (unsigned long long)cnt_profile_ns(i));
  int ok = 1;
  ok &= cnt_count_tokens(&m, -1) == 0 && cnt_count_tokens(&m, n) == 0 && cnt_count_tokens(NULL, 0) == 0;
  ok &= cnt_count_rows(&m, 0, cnt_count_regions(0)) == 0 && cnt_count_rows(&m, 0, -1) == 0;
  ok &= cnt_count_calls(&m, n, 0) == 0 && cnt_count_calls(NULL, 0, 0) == 0;
  ok &= !strcmp(cnt_count_kind(-1), "") && !strcmp(cnt_count_origin(n), "") && cnt_count_line(n) == 0;
  ok &= cnt_count_col(-1) == 0 && cnt_count_regions(n) == 0;
  uint64_t tok0 = cnt_count_tokens(&m, 0);
  ok &= tok0 == (uint64_t)T && cnt_reset(&m) == GAT_OK && cnt_count_tokens(&m, 0) == tok0; /* kept across reset */
  cnt_count_clear(&m);
  cnt_count_clear(NULL);
  for (int i = 0; i < n; i++) {
    ok &= cnt_count_tokens(&m, i) == 0;
    for (int e = 0; e < cnt_count_regions(i); e++) ok &= cnt_count_rows(&m, i, e) == 0 && cnt_count_calls(&m, i, e) == 0;
  }
  cnt_profile_clear();
  for (int i = 0; i < cnt_profile_count(); i++) ok &= cnt_profile_ns(i) == 0 && cnt_profile_calls(i) == 0;
  printf("], \"forwards\": %d, \"api_ok\": %d}\n", nf, ok);
  free(arena);
  free(y);
  free(x);
  free(blob);
  return 0;
}
"""


def build(c, kind):
    """gattnc --count --profile as C (kind "c") or as an LLVM object ("obj"), linked with C_MAIN."""
    src_dir = os.environ.get("GAT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
    d = os.path.join(c.dir, kind)
    os.makedirs(d, exist_ok=True)
    out = os.path.join(d, "cnt.o" if kind == "obj" else "cnt.c")
    flags = ["--emit=obj"] if kind == "obj" else []
    p = subprocess.run([c.gattnc, c.src, "--count", "--profile", *flags, "-o", out], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"FAIL: gattnc --count --profile ({kind}):", p.stderr[:2000])
        return None
    main_c = os.path.join(d, "cnt_main.c")
    with open(main_c, "w") as f:
        f.write(C_MAIN.replace("D_", str(D)))
    rt = os.path.join(src_dir, "runtime")
    exe = os.path.join(d, "cnt_main")
    cmd = ["cc", "-std=c11", "-Wall", "-Wextra", "-pedantic", "-Werror", "-O1", "-I", rt, "-I", d, main_c, out,
           os.path.join(rt, "gat_runtime.c"), os.path.join(rt, "gat_safetensors.c"), "-lm", "-o", exe]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"FAIL: linking the {kind} build with cnt.h and a C program:", p.stderr[:3000])
        return None
    return exe


def main():
    args = parse_args()
    c = Case(args, "cnt", SRC)
    W = perturb(c.weights, seed=7, scale=0.2)
    g = torch.Generator().manual_seed(13)
    for k in W:
        if "router" in k or "gate.weight" in k:
            W[k] = torch.randn(W[k].shape, generator=g, dtype=torch.float64) * 0.8
    set_weights(c, W)
    passed = failed = 0

    def tally(ok):
        nonlocal passed, failed
        passed += bool(ok)
        failed += not ok

    T = 40
    x = torch.randn(T, D, generator=torch.Generator().manual_seed(21), dtype=torch.float64)
    xpath, ypath = os.path.join(c.dir, "x.bin"), os.path.join(c.dir, "y.bin")
    with open(xpath, "wb") as f:
        f.write(x.float().numpy().tobytes())
    exes = {kind: build(c, kind) for kind in ("c", "obj")}
    tally(all(exes.values()))
    for mode, step in (("prefill", 0), ("decode", 1)):
        want, ref_ops = run_counted(c, {"x": x.float()}, os.path.join(c.dir, f"interp_{mode}.json"), f"interp_{mode}",
                                    step=step)
        nontrivial = any(o["kind"] == "skip" and 0 < o["rows"] < T for o in ref_ops) and any(
            o["kind"] == "mixture" and min(o["experts"]) > 0 for o in ref_ops)
        print(f"{'ok' if nontrivial else 'FAIL'}: {mode}: interpreter counts {json.dumps(ref_ops)}")
        tally(nontrivial and len(ref_ops) == 3)
        # gattnc run --jit --count (and run --count, which is the JIT under --backend jit)
        for how, flags in (("run --jit", ["--jit"]), ("run", [])):
            got, ops = run_counted(c, {"x": x.float()}, os.path.join(c.dir, f"run_{mode}.json"), f"run_{mode}",
                                   step=step, compiled=True) if not flags else (None, None)
            if flags:
                cpath = os.path.join(c.dir, f"jit_{mode}.json")
                ipath = os.path.join(c.dir, f"cnt.interp_{mode}.in.safetensors")
                opath = os.path.join(c.dir, f"jit_{mode}.out.safetensors")
                argv = ["run", c.src, "--weights", c.wpath, "--inputs", ipath, "-o", opath, "--jit", "--count", cpath]
                if step:
                    argv += ["--step", str(step)]
                c.gattnc_run(*argv)
                with open(cpath) as f:
                    ops = json.load(f)["ops"]
                got = {k: v.double() for k, v in read_st(opath).items()}
            ok = ops == ref_ops
            print(f"{'ok' if ok else 'FAIL'}: {mode}: gattnc {how} --count ({c.backend if not flags else 'jit'}) "
                  f"== interpreter{'' if ok else ': ' + json.dumps(ops)}")
            tally(ok)
            tally(check(f"{mode}: gattnc {how} --count output", got["y"], want["y"], 1e-4))
        names = {}
        for kind, exe in exes.items():
            if not exe:
                continue
            what = "LLVM object" if kind == "obj" else "C"
            p = subprocess.run([exe, c.wpath, xpath, str(T), str(step), ypath], capture_output=True, text=True)
            if p.returncode != 0:
                print(f"FAIL: {what} program exit {p.returncode}: {p.stdout.strip()[:2000]} {p.stderr[:2000]}")
                tally(False)
                continue
            r = json.loads(p.stdout)
            ok = r["ops"] == ref_ops
            print(f"{'ok' if ok else 'FAIL'}: {mode}: {what} --count build's counters == interpreter"
                  f"{'' if ok else ': ' + json.dumps(r['ops'])}")
            tally(ok)
            print(f"{'ok' if r['api_ok'] else 'FAIL'}: {mode}: {what}: range checks, kept across reset, count_clear, "
                  "profile_clear")
            tally(r["api_ok"])
            prof = r["profile"]
            names[kind] = [e["name"] for e in prof]
            ok = len(prof) > 3 and all(e["calls"] == r["forwards"] for e in prof) and sum(e["ns"] for e in prof) > 0
            print(f"{'ok' if ok else 'FAIL'}: {mode}: {what} --profile: {len(prof)} kernels, each called "
                  f"{r['forwards']} times, {sum(e['ns'] for e in prof)} ns in all")
            tally(ok)
            y = torch.frombuffer(bytearray(open(ypath, "rb").read()), dtype=torch.float32).reshape(T, D).double()
            tally(check(f"{mode}: {what} --count --profile output vs interpreter", y, want["y"], 1e-4))
        if len(names) == 2:
            ok = names["c"] == names["obj"]
            print(f"{'ok' if ok else 'FAIL'}: {mode}: the LLVM object profiles the C build's kernels "
                  f"({', '.join(names['obj'][:3])}, ...)")
            tally(ok)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
