#!/usr/bin/env python3
"""The flash attention kernel is written once (codegen/kernels/attention.c): the
C backend pastes it into NAME.c, the LLVM backend links its bitcode with the head
dims and features made constants. Both run the same tiles and the kernel writes
its fused multiply-adds out (no contraction left to gcc or clang, which fuse
different products of one sum), so the two backends give the same bits.

Models (-O2, each attention on the flash kernel): GQA (4 query / 2 KV heads,
head dim 16), the same with a sliding window of 24, Mega's relative-position
bias (variant _r, head dims 16 / 48), GateSkip's `kv: previous` (per-row
positions, variant _p, head dim 8). Each runs as one
prefill of T = 150 (query tiles and row tails, several 64-key blocks) and, at
T = 40, one token per call and 7 tokens per call, through the generated C (cc)
and the LLVM backend (`gattnc run --jit`).

Checked: the C output against the interpreter, max |C - interp| / max |interp|
<= 1e-4 (the kernel accumulates in f32, the interpreter in double), and the
LLVM output against the C output bit for bit (0 elements whose bits differ;
before the multiply-adds were written out, up to 341 of 640 did)."""
import os
import subprocess
import sys

import torch

from e2e_util import SANITIZED, Case, check, has_llvm, model_source, parse_args, read_st, write_st
from test_layer_skip_kvcopy import SRC as KVCOPY_SRC

RTOL = 1e-4
D = 64
MODELS = [
    ("gqa", model_source("gated_attention(x, heads: 4, kv_heads: 2)", D)),
    ("window", model_source("gated_attention(x, heads: 4, kv_heads: 2, window: 24)", D)),
    ("relbias", model_source("mega(x, zdim: 16, hdim: 48, ndim: 4)", 32)),
    ("positions", KVCOPY_SRC),
]


def run(c, x, tag, flags, step=0):
    ipath = os.path.join(c.dir, f"{c.name}.{tag}.in.safetensors")
    opath = os.path.join(c.dir, f"{c.name}.{tag}.out.safetensors")
    write_st(ipath, {"x": x})
    argv = ["run", c.src, "--weights", c.wpath, "--inputs", ipath, "-o", opath, *flags]
    if step:
        argv += ["--step", str(step)]
    env = {k: v for k, v in os.environ.items() if k != "GATTNC_RUN_JIT"}  # the C runs stay C
    p = subprocess.run([c.gattnc, *argv], capture_output=True, text=True, timeout=600, env=env)
    if p.returncode:
        print("FAIL: gattnc", " ".join(argv), p.stdout[-2000:], p.stderr[-2000:])
        return None
    return read_st(opath)["y"]


def main():
    args = parse_args()
    if args.backend != "c":
        print("skipped: the C variant of this test runs both backends")
        return 0
    if not has_llvm(args.gattnc):
        print("skipped: gattnc built without the LLVM backend")
        return 0
    ok = True
    for name, src in MODELS:
        c = Case(args, name, src)
        dm = 16 if name == "positions" else 32 if name == "relbias" else D
        for T, step in ((150, 0), (40, 1), (40, 7)):
            torch.manual_seed(T + step)
            x = torch.randn(T, dm)
            tag = f"T{T}s{step}"
            ref = run(c, x, tag + "i", ["--interp"], step)
            got_c = run(c, x, tag + "c", ["-O2"], step)
            got_j = run(c, x, tag + "j", ["-O2", "--jit"], step)
            if ref is None or got_c is None or got_j is None:
                ok = False
                continue
            ok &= check(f"{name} T={T} step {step}: C -O2 vs interpreter", got_c, ref, RTOL)
            if SANITIZED:  # the C there is built -O1 with the sanitizers: only close, not bitwise
                ok &= check(f"{name} T={T} step {step}: LLVM -O2 vs C -O2 (sanitizer build)", got_j, got_c, 1e-6)
                continue
            diff = int((got_c.view(torch.int32) != got_j.view(torch.int32)).sum())
            print(f"{'ok' if diff == 0 else 'FAIL'}: {name} T={T} step {step}: LLVM -O2 vs C -O2: "
                  f"{diff} of {got_c.numel()} elements differ in their bits (must be 0)")
            ok &= diff == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
