#!/usr/bin/env python3
"""Optimization levels and switches agree with the reference.

1. Every examples/*.gat, on `gattnc init` weights (seed 5) and random inputs
   (T = 9; token ids in [0, 32)), runs compiled at -O0, -O1, -O2 and -O2 with
   each of -fno-fuse, -fno-tile, -fno-pack, -fno-concat, -fno-gate, -fno-scanfuse, for one prefill call and for
   --step 1 (token by token), against the reference interpreter run the same
   way (prefill == decode itself is checked by the layer tests; the JIT
   variant of the sanitizer build runs prefill only and fewer switches, see
   steps_of and configs_of).
2. A model built to hit every GEMM path (sizes that are not multiples of the
   register block: IN = 67, OUT = 45 and 33, T = 13 and 1; bias, GELU and
   SiLU epilogues, a residual add, a matmul with a weight [K, N] operand)
   against PyTorch written from the math in float64.
3. --dump-after prints the IR after each pass; an unknown name is an error;
   -O2 -fno-tile leaves no gemm in the loop IR, -O2 has one and packs its
   weights, -O0 prints exactly the plain lowering (same as --dump-loops -O0).

Tolerances (metric: max |got - ref| / max |ref| per output):
  -O0, -O1 and -O2 -fno-tile: 1e-5 (double accumulation, one f32 rounding per
    stored value, as the interpreter; fusion keeps every rounding);
  -O2 with the GEMM micro-kernel: 1e-4 (f32 accumulation with FMA over K;
    the observed error is ~1e-6 for K <= 512)."""
import glob
import os
import sys

import torch

from e2e_util import SANITIZED, check, gattnc_run, parse_args, read_st, sh, shard, write_st

T = 9
CONFIGS = [
    (["-O0"], 1e-5),
    (["-O1"], 1e-5),
    (["-O2"], 1e-4),
    (["-O2", "-fno-fuse"], 1e-4),
    (["-O2", "-fno-tile"], 1e-5),
    (["-O2", "-fno-pack"], 1e-4),
    (["-O2", "-fno-concat"], 1e-4),
    (["-O2", "-fno-gate"], 1e-4),
    (["-O2", "-fno-scanfuse"], 1e-4),
]



def steps_of(args):
    """--step values to run: prefill (0) and token by token (1). Under the
    sanitizers the JIT variant runs prefill only: LLVM's machine code is not
    instrumented, and a --step 1 run goes through the same compiler code as the
    prefill one (the normal build runs both)."""
    return (0,) if SANITIZED and args.backend == "jit" else (0, 1)


# The configurations whose loop IR brings the LLVM emitter a kind of kernel the
# others do not: plain nests (-O0), fused nests (-O1), the GEMM micro-kernel with
# packed weights, segments, gates and fused scans (-O2), unpacked GEMM calls
# (-fno-pack), reduction nests in place of GEMMs (-fno-tile).
EMITTER_CONFIGS = ("-O0", "-O1", "-O2", "-fno-pack", "-fno-tile")


def configs_of(args):
    """CONFIGS to run. Under the sanitizers the JIT variant runs EMITTER_CONFIGS
    only: what ASan checks there is the LLVM emitter (the JIT's machine code is
    not instrumented), and the other switches make no kernel kind that these do
    not (the normal build runs every configuration both ways)."""
    if SANITIZED and args.backend == "jit":
        return [c for c in CONFIGS if c[0][-1] in EMITTER_CONFIGS]
    return CONFIGS


def io_of(gattnc, src):
    """[(name, dtype, dims)] of the inputs, from the graph IR header."""
    rc, out = sh([gattnc, src, "--dump-ir"])
    assert rc == 0, out
    ins = []
    for line in out.splitlines():
        if line.startswith("input "):
            name = line.split('"')[1]
            ty = line.split(":")[-1].strip()
            dt, dims = ty.split("[")
            dims = [d.strip() for d in dims.rstrip("]").split(",") if d.strip()]
            ins.append((name, dt, dims))
    return ins


def make_inputs(ins, seed, t):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, dt, dims in ins:
        shape = [t if d == "T" else int(d) for d in dims]
        if dt == "i32":
            out[name] = torch.randint(0, 32, shape, generator=g, dtype=torch.int32)
        else:
            out[name] = torch.randn(shape, generator=g)
    return out


def test_levels(args, src, t=T):
    name = os.path.splitext(os.path.basename(src))[0]
    wd = os.path.join(args.workdir, name)
    os.makedirs(wd, exist_ok=True)
    wpath = os.path.join(wd, "w.safetensors")
    rc, log = sh([args.gattnc, "init", src, "-o", wpath, "--seed", "5"])
    if rc:
        print(f"FAIL: {name}: init: {log}")
        return False
    ipath = os.path.join(wd, "in.safetensors")
    write_st(ipath, make_inputs(io_of(args.gattnc, src), 11, t))
    # The reference for token-by-token runs is the interpreter fed the same
    # way: causal models give the prefill result anyway, and a routed model
    # (route top(c*T, threshold: tau)) decodes by its threshold, not top-k.
    refs = {}
    for step in steps_of(args):
        refs[step] = gattnc_run(args, src, wpath, ipath, os.path.join(wd, f"ref{step}.safetensors"), ["--interp"], step)
        if refs[step] is None:
            return False
    ok = True
    for flags, tol in configs_of(args):
        for step in steps_of(args):
            got = gattnc_run(args, src, wpath, ipath, os.path.join(wd, "out.safetensors"), flags, step)
            if got is None:
                ok = False
                continue
            for k in refs[step]:
                ok &= check(f"{name} {' '.join(flags)} step {step}: {k}", got[k], refs[step][k], tol)
    return ok


GEMM_MODEL = """import std
model gemm_paths {
  max T = 16
  input x : f32[T, 67]
  output y : f32[T, 45]
  output z : f32[T, 33]
  h = gelu(linear(x, 45, bias: true) @ "fc1")
  y = h + linear(h, 45) @ "fc2"
  z = silu(linear(y, 33) @ "fc3")
}
"""


def torch_gemm_model(w, x):
    """The model above, from the math, in float64 (f32 rounding per op)."""
    f = lambda t: t.float().double()
    h = f(torch.nn.functional.gelu(f(x @ w["fc1.weight"].T + w["fc1.bias"])))
    y = f(h + f(h @ w["fc2.weight"].T))
    z = f(torch.nn.functional.silu(f(y @ w["fc3.weight"].T)))
    return {"y": y, "z": z}


def test_gemm_paths(args):
    wd = os.path.join(args.workdir, "gemm_paths")
    os.makedirs(wd, exist_ok=True)
    src = os.path.join(wd, "gemm_paths.gat")
    with open(src, "w") as fh:
        fh.write(GEMM_MODEL)
    wpath = os.path.join(wd, "w.safetensors")
    rc, log = sh([args.gattnc, "init", src, "-o", wpath, "--seed", "2"])
    if rc:
        print("FAIL: init", log)
        return False
    g = torch.Generator().manual_seed(4)
    w = {k: v.double() + 0.1 * torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in read_st(wpath).items()}
    write_st(wpath, {k: v.float() for k, v in w.items()})
    w = {k: v.float().double() for k, v in w.items()}
    ok = True
    for t in (13, 1):
        x = torch.randn(t, 67, generator=g)
        ipath = os.path.join(wd, f"in{t}.safetensors")
        write_st(ipath, {"x": x})
        want = torch_gemm_model(w, x.double())
        for flags, tol in configs_of(args):
            for step in steps_of(args):
                got = gattnc_run(args, src, wpath, ipath, os.path.join(wd, "out.safetensors"), flags, step)
                if got is None:
                    ok = False
                    continue
                for k in want:
                    ok &= check(f"gemm_paths T={t} {' '.join(flags)} step {step}: {k} vs PyTorch", got[k], want[k], tol)
    # the loop IR shows the GEMM, its packed weights and fused epilogues
    rc, out = sh([args.gattnc, src, "-O2", "--dump-loops"])
    good = rc == 0 and out.count("= gemm(") == 3 and out.count("pack b") == 3 and "epilogue gelu" in out \
        and "epilogue silu" in out
    print(f"{'ok' if good else 'FAIL'}: -O2 loop IR: 3 gemm calls, 3 packed weights, gelu and silu epilogues")
    ok &= good
    rc, out = sh([args.gattnc, src, "-O2", "-fno-tile", "--dump-loops"])
    good = rc == 0 and "gemm(" not in out and "pack b" not in out
    print(f"{'ok' if good else 'FAIL'}: -O2 -fno-tile loop IR has no gemm")
    ok &= good
    rc, out = sh([args.gattnc, src, "-O2", "-fno-pack", "--dump-loops"])
    good = rc == 0 and out.count("= gemm(") == 3 and "pack b" not in out
    print(f"{'ok' if good else 'FAIL'}: -O2 -fno-pack loop IR: gemm without packed weights")
    ok &= good
    rc, out = sh([args.gattnc, src, "-O2", "-fno-fuse", "--dump-loops"])
    good = rc == 0 and "epilogue" not in out
    print(f"{'ok' if good else 'FAIL'}: -O2 -fno-fuse loop IR has no fused epilogue")
    ok &= good
    return ok


def test_dump_after(args):
    src = os.path.join(os.environ.get("GAT_SOURCE_DIR", "."), "examples", "tiny_lm.gat")
    ok = True
    rc, plain = sh([args.gattnc, src, "-O0", "--dump-loops"])
    rc2, lowered = sh([args.gattnc, src, "-O0", "--dump-after=lower"])
    good = rc == 0 and rc2 == 0 and lowered.startswith("loops ")
    print(f"{'ok' if good else 'FAIL'}: --dump-after=lower prints the loop IR")
    ok &= good
    rc, lay = sh([args.gattnc, src, "-O0", "--dump-after=layout"])
    good = rc == 0 and lay == plain
    print(f"{'ok' if good else 'FAIL'}: -O0 --dump-after=layout == -O0 --dump-loops (the plain lowering)")
    ok &= good
    for p in ("dce", "cse", "dce2"):
        rc, out = sh([args.gattnc, src, "-O2", f"--dump-after={p}"])
        good = rc == 0 and out.startswith("module ") and "body {" in out
        print(f"{'ok' if good else 'FAIL'}: --dump-after={p} prints the graph IR")
        ok &= good
    for p in ("gemm", "epilogue", "fuse"):
        rc, out = sh([args.gattnc, src, "-O2", f"--dump-after={p}"])
        good = rc == 0 and out.startswith("loops ")
        print(f"{'ok' if good else 'FAIL'}: --dump-after={p} prints the loop IR")
        ok &= good
    rc, out = sh([args.gattnc, src, "--dump-after=nosuchpass"])
    good = rc != 0 and "unknown pass" in out
    print(f"{'ok' if good else 'FAIL'}: --dump-after=nosuchpass is an error naming the passes")
    ok &= good
    # -O2 needs fewer kernels than -O0 (fusion)
    rc, o2 = sh([args.gattnc, src, "-O2", "--dump-loops"])
    n0 = sum(1 for l in plain.splitlines() if l.startswith("  k"))
    n2 = sum(1 for l in o2.splitlines() if l.startswith("  k"))
    good = rc == 0 and n2 < n0
    print(f"{'ok' if good else 'FAIL'}: tiny_lm: {n0} kernels at -O0, {n2} at -O2")
    ok &= good
    return ok


def main():
    args = parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    srcdir = os.path.join(os.environ.get("GAT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")), "examples")
    examples = sorted(glob.glob(os.path.join(srcdir, "*.gat")))
    if not examples:
        print("FAIL: no examples found")
        sys.exit(1)
    units = [test_gemm_paths, test_dump_after] + [lambda a, src=src: test_levels(a, src) for src in examples]
    ok = True
    for unit in shard(args, units):
        ok &= unit(args)
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
