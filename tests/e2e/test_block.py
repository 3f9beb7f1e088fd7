#!/usr/bin/env python3
"""Pass block (GEMM row and column blocks as loop-IR tile loops) changes no
bit, on every example (examples/*.gat) and every benchmark model (bench/m1..m6).

Each block of a blocked GEMM starts at a multiple of every target's register
rows and packed panel width, so every output element is computed by the same
micro-kernel code with the same additions as without blocks (loopir.h,
blk_var). For each model, on `gattnc init` weights (seed 11) and random
inputs, `gattnc run -O2 -fblock-rows=96` (row blocks of 96 rather than the
default 768, so a small T crosses them; column blocks of 256 as by default)
and `gattnc run -O2 -fno-block` must write outputs
with equal bits (0 differing elements) for one prefill call of T = 193 rows
(two full row blocks of 96 and a one-row tail, which takes the GEMV path; T is
lowered to the model's max T where that is smaller) and for 3 tokens one call
each (--step 1). Independent reference: the -O2 output against the
interpreter (double arithmetic), max |O2 - interp| / max |interp| <= 1e-4 per
output, checked by the C variant of the normal build. The C variant builds
the generated C (under ASan/UBSan in the sanitizer build, where out-of-block
reads or writes are caught); the `_jit` twin runs the LLVM backend. The
interpreter reference runs once per model, in the normal build's C variant:
the `_jit` twin and the sanitizer build check the same bits against
-fno-block, whose outputs the other tests check (test_backends_bitwise:
JIT == C bit for bit; test_opt_levels, test_compiled_examples: against the
interpreter and PyTorch)."""
import glob
import os
import re
import sys
import time

from e2e_util import SANITIZED, check, gattnc_run, parse_args, sh, shard, write_st
from test_backends_bitwise import differing, make_inputs
from test_compiled_examples import header_io

RTOL = 1e-4
T_PREFILL = 193
T_DECODE = 3
SEED = 11


def max_t(src):
    with open(src) as f:
        m = re.search(r"max\s+T\s*=\s*(\d+)", f.read())
    return int(m.group(1)) if m else T_PREFILL


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
    for T, step in ((min(T_PREFILL, max_t(src)), 0), (T_DECODE, 1)):
        ipath = os.path.join(wd, f"in.{T}.safetensors")
        write_st(ipath, make_inputs(ios, T, SEED + T))
        res = {}
        modes = [("O2", ["-O2", "-fblock-rows=96"]), ("O2 -fno-block", ["-O2", "-fno-block"])]
        if args.backend == "c" and not SANITIZED:
            modes.append(("interp", ["--interp"]))
        for mode, flags in modes:
            opath = os.path.join(wd, f"{mode.replace(' ', '_')}.{T}.safetensors")
            res[mode] = gattnc_run(args, src, wpath, ipath, opath, flags, step)
            if res[mode] is None:
                return False
        what = f"--step {step}, T = {T}" if step else f"prefill T = {T}"
        for k in res["O2"]:
            if "interp" in res:
                ok &= check(f"{name}: {k}: -O2 vs interp ({what})", res["O2"][k], res["interp"][k], RTOL)
            d = differing(res["O2"][k], res["O2 -fno-block"][k])
            ok &= d == 0
            print(f"{'ok' if d == 0 else 'FAIL'}: {name}: {k}: -O2 -fblock-rows=96 vs -O2 -fno-block ({what}, {args.backend}): "
                  f"{d} of {res['O2'][k].numel()} elements differ in their bits (must be 0)")
    return ok


def main():
    args = parse_args()
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
