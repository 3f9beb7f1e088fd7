#!/usr/bin/env python3
"""The LLVM backend is optional at build time: a build configured with
-DGAT_WITH_LLVM=OFF still builds gattnc, whose C backend works, and whose LLVM
options fail with a clear message instead of crashing.

Configures and builds the `gattnc` target alone into WORKDIR/build, then:
  1. `gattnc --version` lists the backends as "c" only, and the binary does not
     link libLLVM (ldd);
  2. --emit=obj / --emit=llvm / run --jit / run --backend=llvm exit with status 1 and name the missing
     backend and the CMake option;
  3. examples/tiny_lm.gat on `gattnc init` weights: the compiled C (-O2) against
     the reference interpreter, prefill and token by token, tolerance 1e-4
     relative (f32 GEMM accumulation against the interpreter's double).

Usage: test_no_llvm.py --source DIR --cmake CMAKE --workdir DIR"""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from e2e_util import check, read_st, sh, write_st  # noqa: E402

import torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--cmake", default="cmake")
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    bdir = os.path.join(a.workdir, "build")
    rc, log = sh([a.cmake, "-S", a.source, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release", "-DGAT_WITH_LLVM=OFF"])
    if rc == 0:
        rc, log = sh([a.cmake, "--build", bdir, "--target", "gattnc", "-j2"])
    if rc:
        print("FAIL: the build with -DGAT_WITH_LLVM=OFF:\n" + log[-4000:])
        return 1
    print("ok: gattnc builds with -DGAT_WITH_LLVM=OFF")
    g = os.path.join(bdir, "gattnc")
    results = []

    rc, out = sh([g, "--version"])
    ok = rc == 0 and "backends: c\n" in out and "llvm" not in out
    print(f"{'ok' if ok else 'FAIL'}: --version lists the C backend only: {out.strip()!r}")
    results.append(ok)
    rc, out = sh(["ldd", g])
    ok = rc == 0 and "libLLVM" not in out
    print(f"{'ok' if ok else 'FAIL'}: gattnc does not link libLLVM")
    results.append(ok)

    src = os.path.join(a.source, "examples", "tiny_lm.gat")
    wpath = os.path.join(a.workdir, "w.safetensors")
    rc, log = sh([g, "init", src, "-o", wpath, "--seed", "3"])
    if rc:
        print("FAIL: init: " + log)
        return 1
    ipath = os.path.join(a.workdir, "in.safetensors")
    write_st(ipath, {"tokens": torch.randint(0, 32, (11,), generator=torch.Generator().manual_seed(7),
                                             dtype=torch.int32)})
    io = ["--weights", wpath, "--inputs", ipath, "-o", os.path.join(a.workdir, "x.safetensors")]
    for argv in ([src, "--emit=obj", "-o", os.path.join(a.workdir, "m.o")],
                 [src, "--emit=llvm", "-o", os.path.join(a.workdir, "m.ll")],
                 ["run", src, "--jit"] + io, ["run", src, "--backend=llvm"] + io):
        rc, out = sh([g] + argv)
        ok = rc == 1 and "built without the LLVM backend" in out and "GAT_WITH_LLVM" in out
        print(f"{'ok' if ok else 'FAIL'}: gattnc {' '.join(argv[:3])} ...: status {rc}, "
              f"{out.strip().splitlines()[-1] if out.strip() else 'no message'}")
        results.append(ok)

    for step in (0, 1):
        outs = {}
        for how, flags in (("interp", ["--interp"]), ("C -O2", ["-O2"])):
            opath = os.path.join(a.workdir, f"{how[0]}{step}.safetensors")
            argv = [g, "run", src, "--weights", wpath, "--inputs", ipath, "-o", opath] + flags
            if step:
                argv += ["--step", str(step)]
            rc, log = sh(argv)
            if rc:
                print(f"FAIL: {how} step {step}: {log}")
                return 1
            outs[how] = read_st(opath)
        for k, want in outs["interp"].items():
            results.append(check(f"tiny_lm C -O2 step {step}: {k} vs the interpreter", outs["C -O2"][k].double(),
                                 want.double(), 1e-4))
    print("PASS" if all(results) else "FAIL")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
