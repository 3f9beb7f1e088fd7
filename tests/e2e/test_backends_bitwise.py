#!/usr/bin/env python3
"""The C backend and the LLVM backend give the same bits at -O2, on every
example (examples/*.gat) and every benchmark model (bench/m1..m6).

Both backends run the kernels written once (codegen/kernels/: f32 math, GEMM,
chunked scans, flash attention) with the same parameters, and both lower the
rest of the loop IR to the same operations in the same order, so nothing is
left to rounding: for each model, on `gattnc init` weights (seed 7) and random
inputs, `gattnc run -O2` (the generated C, built by cc) and `gattnc run -O2
--jit` (the LLVM backend, in-process, calling the runtime built into gattnc for
plain x86-64 while the C build compiles the runtime for the host CPU) must
write outputs whose bits are equal (0 differing elements), for one prefill
call of T = 64 (past the chunked scans' 32-row threshold, several attention
tiles) and for 8 tokens one call each (--step 1: the decode paths). The LLVM
object file (`--backend=llvm`) is the same module as the JIT's;
test_compiled_examples runs it.
Independent reference: the C output against the interpreter (double
arithmetic), max |C - interp| / max |interp| <= 1e-4 per output (-O2 keeps
f32 sums and a polynomial exp; several layers deep).

The C variant of this script runs both backends; its `_jit` twin has nothing
left to do and says so. Not in the sanitizer build (the LLVM machine code is
not instrumented, and test_compiled_examples runs the examples' C there)."""
import glob
import os
import sys
import time

import torch

from e2e_util import SANITIZED, check, gattnc_run, has_llvm, parse_args, sh, shard, write_st
from test_compiled_examples import header_io

RTOL = 1e-4
T_PREFILL = 64
T_DECODE = 8
SEED = 7


def make_inputs(ios, T, seed):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for kind, name, dt, dims in ios:
        if kind == "in":
            shape = [T if d == "T" else int(d) for d in dims]
            if dt == "i32":  # token ids: below every model's vocabulary
                out[name] = torch.randint(0, 32, shape, generator=g, dtype=torch.int32)
            else:
                out[name] = torch.randn(shape, generator=g)
    return out


def differing(a, b):
    if a.shape != b.shape:
        return -1
    return int((a.contiguous().view(torch.int32) != b.contiguous().view(torch.int32)).sum())


def test_model(args, src):
    name = os.path.splitext(os.path.basename(src))[0]
    wd = os.path.join(args.workdir, name)
    os.makedirs(wd, exist_ok=True)
    rc, log = sh([args.gattnc, src, "-o", os.path.join(wd, name + ".c")])
    if rc:
        print(f"FAIL: {name}: compiling: {log}")
        return False
    ios = header_io(os.path.join(wd, name + ".h"))
    wpath = os.path.join(wd, "w.safetensors")
    rc, log = sh([args.gattnc, "init", src, "-o", wpath, "--seed", str(SEED)])
    if rc:
        print(f"FAIL: {name}: init: {log}")
        return False
    ok = True
    for T, step in ((T_PREFILL, 0), (T_DECODE, 1)):
        ipath = os.path.join(wd, f"in.{T}.safetensors")
        write_st(ipath, make_inputs(ios, T, SEED + T))
        res = {}
        for mode, flags in (("interp", ["--interp"]), ("C", ["-O2"]), ("LLVM JIT", ["-O2", "--jit"])):
            opath = os.path.join(wd, f"{mode.replace(' ', '_')}.{T}.safetensors")
            res[mode] = gattnc_run(args, src, wpath, ipath, opath, flags, step)
            if res[mode] is None:
                return False
        what = f"--step {step}, T = {T}" if step else f"prefill T = {T}"
        for k in res["C"]:
            ok &= check(f"{name}: {k}: C -O2 vs interp ({what})", res["C"][k], res["interp"][k], RTOL)
            d = differing(res["LLVM JIT"][k], res["C"][k])
            ok &= d == 0
            print(f"{'ok' if d == 0 else 'FAIL'}: {name}: {k}: LLVM JIT vs C ({what}): "
                  f"{d} of {res['C'][k].numel()} elements differ in their bits (must be 0)")
    return ok


def main():
    args = parse_args()
    if args.backend != "c":
        print("skipped: the C variant of this test runs both backends")
        return 0
    if SANITIZED:
        print("skipped in the sanitizer build (LLVM machine code is not instrumented)")
        return 0
    if not has_llvm(args.gattnc):
        print("skipped: gattnc built without the LLVM backend")
        return 0
    src_dir = os.environ.get("GAT_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
    models = sorted(glob.glob(os.path.join(src_dir, "examples", "*.gat")))
    models += sorted(glob.glob(os.path.join(src_dir, "bench", "m[1-6]_*.gat")))
    if len(models) < 12:
        print(f"FAIL: expected the examples and bench/m1..m6, found {len(models)} models")
        return 1
    ok = True
    for src in shard(args, models):
        t0 = time.time()
        ok &= test_model(args, src)
        print(f"  ({os.path.basename(src)}: {time.time() - t0:.1f} s)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
