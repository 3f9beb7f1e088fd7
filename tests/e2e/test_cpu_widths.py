#!/usr/bin/env python3
"""The kernels' narrower vector forms: code built for other x86 CPUs than the host.

The hand-written -O2 kernels (GEMM with segments, gate and GLU epilogues, flash
attention, the chunked GLA and delta-rule scans) pick their vector width from
the target: 16 floats with AVX-512, 8 with AVX, 4 otherwise, in C
(`#if defined(__AVX512F__)` ...) and in the LLVM backend (the target machine's
features; `-mcpu=CPU` without features through a table of x86 CPU names). On an
AVX-512 host only the widest form runs by default, so this test builds one
model for each CPU below that the host can execute and runs it against the
reference interpreter:
  C backend (`--backend c`):    gattnc run -O2 -march=CPU     (the C compiler's -march)
  LLVM backend (`--backend jit`): gattnc run -O2 --jit -mcpu=CPU (ORC with that CPU)
CPUs: x86-64 (SSE2: 4-wide), haswell (AVX2 + FMA: 8-wide), skylake-avx512
(16-wide, the LLVM table's entry), each only if /proc/cpuinfo shows its
features. The model: gated attention (flash kernel, gate epilogue, segmented
q/k/v/gate GEMMs), GLA and gated DeltaNet (chunked scans at T >= 32), a SwiGLU
(GLU GEMM) and a linear head, at T = 70 (one full chunk of 64 and a rest of 6)
in one call and in calls of 33 tokens (chunked calls continuing a state),
and token by token for 9 tokens.

Tolerance: 1e-4 of max |ref| (f32 accumulation with FMA and polynomial exp
against the interpreter's double; observed ~1e-6). The LLVM run also checks
that the emitted IR has the expected vector width (the `<W x float>` of the
register tile of the chunked scans' GEMM, gat_cs_gemm of codegen/kernels/scan.c:
the bitcode variant linked for -mcpu), and that for each CPU and each run its
output equals, bit for bit, the C build's for that CPU (`-march=CPU`): the
two backends run the same micro-kernel parameters (vector width, register
tile, FMA or not) at every width, not only the host's."""
import collections
import os
import re
import sys

import torch

from e2e_util import SANITIZED, check, gattnc_run, parse_args, sh, write_st

MODEL = """import std
model widths {
  const d = 48
  max T = 128
  input x : f32[T, d]
  output y : f32[T, 40]
  h = x + gated_attention(rms_norm(x) @ "n1", heads: 4, kv_heads: 2, head_dim: 16) @ "attn"
  h = h + gla(rms_norm(h) @ "n2", heads: 2) @ "gla"
  h = h + gated_deltanet(rms_norm(h) @ "n3", heads: 2, head_dim: 16) @ "gdn"
  h = h + swiglu(rms_norm(h) @ "n4", hidden: 72) @ "mlp"
  y = linear(h, 40) @ "head"
}
"""

# (cpu, vector width, /proc/cpuinfo flags it needs)
CPUS = [("x86-64", 4, ["sse2"]),
        ("haswell", 8, ["avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"]),
        ("skylake-avx512", 16, ["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx2", "fma", "bmi2"])]
RTOL = 1e-4


def host_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def tile_width(fn):
    """The vector width of gat_cs_gemm's register tile in the IR of the function: the widest <W x float>
    of which one basic block adds at least 8 (MR rows x 2 vectors, MR >= 4). Loads do not count (the
    module's loop vectorizer reads strided pairs as one double-width load) and neither do the
    left-over loops the module's vectorizer widens for the CPU (at most 4 adds a block)."""
    widths = [0]
    for block in re.split(r"\n(?=[\w.]+:)", fn):
        adds = collections.Counter(int(w) for w in re.findall(r"= fadd[\w ]* <(\d+) x float>", block))
        widths += [w for w, n in adds.items() if n >= 8]
    return max(widths)


def main():
    args = parse_args()
    wd = args.workdir
    os.makedirs(wd, exist_ok=True)
    if os.uname().machine != "x86_64":
        print("note: not an x86-64 host: nothing to run")
        return 0
    src = os.path.join(wd, "widths.gat")
    with open(src, "w") as f:
        f.write(MODEL)
    wpath = os.path.join(wd, "w.safetensors")
    rc, log = sh([args.gattnc, "init", src, "-o", wpath, "--seed", "4"])
    if rc:
        print("FAIL: init", log)
        return 1
    g = torch.Generator().manual_seed(9)
    runs = []  # (tag, T, step)
    for T, step in ((70, 0), (70, 33), (9, 1)):
        ipath = os.path.join(wd, f"in{T}.safetensors")
        write_st(ipath, {"x": torch.randn(T, 48, generator=g)})
        runs.append((ipath, T, step))
    refs = {}
    for ipath, T, step in runs:
        if (ipath, 0) not in refs:  # causal: the prefill reference serves the stepped runs too
            refs[(ipath, 0)] = gattnc_run(args, src, wpath, ipath, os.path.join(wd, f"ref{T}.safetensors"), ["--interp"])
            if refs[(ipath, 0)] is None:
                return 1
    flags = host_flags()
    jit = args.backend == "jit"
    ok = True
    ran = 0
    for cpu, width, need in CPUS:
        missing = [f for f in need if f not in flags]
        if missing:
            print(f"note: {cpu}: the host lacks {' '.join(missing)}: not run")
            continue
        ran += 1
        cpuflag = f"-mcpu={cpu}" if jit else f"-march={cpu}"
        extra = ["--jit", cpuflag] if jit else [cpuflag]
        if jit:
            ll = os.path.join(wd, f"{cpu}.ll")
            rc, log = sh([args.gattnc, src, "-O2", "--emit=llvm", cpuflag, "-o", ll])
            text = open(ll).read() if rc == 0 else ""
            body = re.search(r"^define [^\n]*@gat_cs_gemm\(.*?^}", text, re.S | re.M)
            widest = tile_width(body.group(0)) if body else 0
            good = rc == 0 and widest == width and bool(re.search(r"^define [^\n]*@gat_chunk_gla\(", text, re.M))
            print(f"{'ok' if good else 'FAIL'}: --emit=llvm {cpuflag}: the chunked scans' GEMM is {widest}-wide "
                  f"(want {width})" + ("" if rc == 0 else log))
            ok &= good
        for ipath, T, step in runs:
            got = gattnc_run(args, src, wpath, ipath, os.path.join(wd, f"{cpu}_{T}_{step}.safetensors"),
                             ["-O2"] + extra, step)
            if got is None:
                ok = False
                continue
            how = "prefill" if step == 0 else f"calls of {step}"
            ok &= check(f"{'LLVM JIT' if jit else 'C'} {cpuflag} T={T} {how}: y", got["y"], refs[(ipath, 0)]["y"], RTOL)
            if jit and not SANITIZED:  # the C build for the same CPU: the same bits (the sanitizer
                # build compiles the C at -O1 with the sanitizers: not compared there)
                os.environ["GATTNC_RUN_JIT"] = "0"
                c_out = gattnc_run(args, src, wpath, ipath, os.path.join(wd, f"{cpu}_{T}_{step}_c.safetensors"),
                                   ["-O2", f"-march={cpu}"], step)
                os.environ["GATTNC_RUN_JIT"] = "1"
                if c_out is None:
                    ok = False
                    continue
                diff = int((got["y"].view(torch.int32) != c_out["y"].view(torch.int32)).sum())
                print(f"{'ok' if diff == 0 else 'FAIL'}: LLVM JIT {cpuflag} vs C -march={cpu} T={T} {how}: "
                      f"{diff} of {got['y'].numel()} elements differ in their bits (must be 0)")
                ok &= diff == 0
    if ran == 0:
        print("FAIL: no CPU of the list runs on this host")
        ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
