#!/usr/bin/env python3
"""Chunked linear-attention scans (pass chunk, codegen/kernels/scan.c): the
compiled -O2 C of GLA, DeltaNet and Gated DeltaNet layers whose prefill runs
the chunked kernel (T >= 32 rows per call) against

  1. PyTorch references written from the recurrences in float64 (the ones of
     test_std_layers.py and test_layer_deltanet.py), at T = 1000 (not a
     multiple of the 64-token chunk), in one prefill call, in calls of 330
     tokens (chunked calls continuing a state the chunked kernel left, the
     last call of 10 rows on the per-token path) and in one-token decode
     calls after nothing else (per-token path only);
     tolerance: max |err| / max |ref| <= 1e-4 (f32 arithmetic);
  2. the same model compiled with -fno-chunk (the per-token loop nest) at
     T = 2100: tolerance 2e-5 relative to the largest output (both are f32;
     they differ only by the order of float operations);
  3. --dump-after=chunk on bench/m2_gla.gat and bench/m3_gated_deltanet.gat:
     every layer's scan is marked `chunked gla` / `chunked delta`, and none
     is with -fno-chunk or at -O1.

With --backend jit (the ctest `_jit` entry) the compiled runs above are the LLVM
backend's (scan.c linked as bitcode), and besides:

  4. LLVM (JIT) against the C backend's chunked kernel on the same inputs: one
     prefill and calls of 330 tokens at T = 1000, and the steep GLA below;
     tolerance 2e-6 relative to the largest output (float rounding; the line
     says when the two are bit-equal);
  5. `gattnc bench --backend=llvm` (the LLVM --emit=obj object and the C build
     linked by the same harness, the same passes, one prefill call) at T = 1000
     (chunked GLA and three chunked delta rules) and on the steep GLA at T = 200:
     its agreement line must be exactly 0, every output the same float: both
     builds run codegen/kernels/scan.c (and gemm.c) with the same contractions.
     (4. allows rounding because `gattnc run`'s C build fuses scans, -fscanfuse,
     and the JIT does not.)

Also a GLA layer with steep forget gates (gk_proj bias -400: per-token log
decays of about -25, so a chunk's cumulative decay leaves the range of the
factored form and the kernel falls back to the recurrence for that chunk)."""
import os
import subprocess
import sys

import torch

from e2e_util import Case, check, parse_args, perturb, set_weights, summary
from test_layer_deltanet import deltanet_ref, gated_deltanet_ref
from test_std_layers import gla_ref

RTOL_REF = 1e-4
RTOL_PERTOKEN = 2e-5
D = 32

SRC = """import std
model m {
  max T = 2100
  input x : f32[T, 32]
  output y_gla : f32[T, 32]
  output y_gdn : f32[T, 32]
  output y_gdn_neg : f32[T, 32]
  output y_dn : f32[T, 32]
  y_gla = gla(x, heads: 2) @ "gla"
  y_gdn = gated_deltanet(x, heads: 2, head_dim: 8, num_v_heads: 4) @ "gdn"
  y_gdn_neg = gated_deltanet(x, heads: 2, head_dim: 8, expand_v: 1.5, allow_neg_eigval: true) @ "gdn_neg"
  y_dn = deltanet(x, heads: 2) @ "dn"
}
"""


def references(W, x):
    return {
        "y_gla": gla_ref(W, "gla.", x, H=2),
        "y_gdn": gated_deltanet_ref(W, "gdn.", x, H=2, K=8, Hv=4),
        "y_gdn_neg": gated_deltanet_ref(W, "gdn_neg.", x, H=2, K=8, expand_v=1.5, neg=True),
        "y_dn": deltanet_ref(W, "dn.", x, H=2),
    }


def backend_name(args):
    return "LLVM" if getattr(args, "backend", "c") == "jit" else "C"


def run_flags(c, inputs, tag, flags, step=0):
    """A compiled run of Case c with extra gattnc flags."""
    from e2e_util import read_st, write_st
    ipath = os.path.join(c.dir, f"{c.name}.{tag}.in.safetensors")
    opath = os.path.join(c.dir, f"{c.name}.{tag}.safetensors")
    write_st(ipath, inputs)
    argv = ["run", c.src, "--weights", c.wpath, "--inputs", ipath, "-o", opath, *flags]
    if step:
        argv += ["--step", str(step)]
    c.gattnc_run(*argv)
    return {k: v.double() for k, v in read_st(opath).items()}


def dump_chunk(gattnc, path, *flags):
    p = subprocess.run([gattnc, path, "--dump-after=chunk", *flags], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        print(p.stdout, p.stderr)
        return []
    return [line for line in p.stdout.splitlines() if " scan t=" in line]


def test_dumps(args):
    root = os.environ.get("GAT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
    results = []
    for model, kind in (("m2_gla", "chunked gla("), ("m3_gated_deltanet", "chunked delta(")):
        path = os.path.join(root, "bench", model + ".gat")
        scans = dump_chunk(args.gattnc, path)
        n = sum(kind in s for s in scans)
        ok = len(scans) == 4 and n == 4
        print(f"{'ok' if ok else 'FAIL'}: {model}: {n} of {len(scans)} scans marked '{kind[:-1]}' (want 4 of 4)")
        results.append(ok)
        for flags in (["-fno-chunk"], ["-O1"]):
            scans = dump_chunk(args.gattnc, path, *flags)
            ok = len(scans) == 4 and not any("chunked" in s for s in scans)
            print(f"{'ok' if ok else 'FAIL'}: {model} {' '.join(flags)}: no scan marked ({len(scans)} scans)")
            results.append(ok)
    return results


def test_layers(args):
    torch.manual_seed(0)
    c = Case(args, "chunk", SRC)
    set_weights(c, perturb(c.weights, seed=1, scale=0.1))
    results = []
    # 1. against the float64 references, T = 1000
    x = torch.randn(1000, D)
    refs = references(c.weights, x.double())
    for tag, step in (("prefill", 0), ("step330", 330)):
        out = run_flags(c, {"x": x}, tag, [], step=step)
        for name, want in refs.items():
            results.append(check(f"{name} T=1000 {backend_name(args)} {tag} vs reference", out[name], want, RTOL_REF))
    x = torch.randn(100, D)
    refs = references(c.weights, x.double())
    out = run_flags(c, {"x": x}, "decode", [], step=1)
    for name, want in refs.items():
        results.append(check(f"{name} T=100 {backend_name(args)} decode vs reference", out[name], want, RTOL_REF))
    # 2. chunked vs per-token, T = 2100
    x = torch.randn(2100, D)
    chunked = run_flags(c, {"x": x}, "long", [])
    pertoken = run_flags(c, {"x": x}, "long_nochunk", ["-fno-chunk"])
    for name in refs:
        results.append(check(f"{name} T=2100 chunked vs -fno-chunk", chunked[name], pertoken[name], RTOL_PERTOKEN))
    return results, c


RTOL_BACKENDS = 2e-6


def run_c_backend(c, inputs, tag, step=0):
    """run_flags with the C backend even under --backend jit (GATTNC_RUN_JIT=0)."""
    old = os.environ.get("GATTNC_RUN_JIT")
    os.environ["GATTNC_RUN_JIT"] = "0"
    try:
        return run_flags(c, inputs, tag, [], step=step)
    finally:
        if old is None:
            del os.environ["GATTNC_RUN_JIT"]
        else:
            os.environ["GATTNC_RUN_JIT"] = old


def llvm_vs_c(c, inputs, label, names, step=0):
    """The LLVM backend (JIT) against the C backend's chunked kernel on the same inputs."""
    tag = f"{label.replace(' ', '_')}_{step}"
    jit = run_flags(c, inputs, tag + "_jit", ["--jit"], step=step)
    cc = run_c_backend(c, inputs, tag + "_c", step=step)
    results = []
    for name in names:
        same = torch.equal(jit[name], cc[name])
        results.append(check(f"{name} {label} LLVM vs C{' (bit-equal)' if same else ''}", jit[name], cc[name],
                             RTOL_BACKENDS))
    return results


def bench_obj(c, label, T):
    """gattnc bench --backend=llvm: the LLVM object (--emit=obj) against the C build, one prefill call,
    which must agree exactly."""
    p = subprocess.run([c.gattnc, "bench", c.src, "--weights", c.wpath, "--backend=llvm", "-T", str(T), "--decode", "0",
                        "--reps", "1"], capture_output=True, text=True, timeout=600)
    line = next((x for x in p.stdout.splitlines() if x.startswith("agreement:")), None)
    if p.returncode != 0 or line is None:
        print(f"FAIL: {label}: gattnc bench --backend=llvm failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
        return False
    rel = float(line.split("=")[1].split()[0])
    ok = rel == 0
    print(f"{'ok' if ok else 'FAIL'}: {label} T={T} LLVM --emit=obj vs C: max |err| / max |ref| = {rel:.3g}"
          f" (tolerance 0: the same bits)")
    return ok


def test_llvm(args, c, c_steep, x_steep):
    """4. and 5.: only with --backend jit (the LLVM backend)."""
    if getattr(args, "backend", "c") != "jit":
        return []
    torch.manual_seed(7)
    x = torch.randn(1000, D)
    names = ["y_gla", "y_gdn", "y_gdn_neg", "y_dn"]
    # the LLVM module really has the chunked kernels (and calls them for T >= 32)
    ll = os.path.join(c.dir, "chunk.ll")
    c.gattnc_run(c.src, "--emit=llvm", "-o", ll)
    with open(ll) as f:
        text = f.read()
    results = []
    for fn in ("gat_chunk_gla", "gat_chunk_delta", "gat_cs_gemm"):  # scan.c's, out of line (noinline)
        ok = f"@{fn}(" in text
        print(f"{'ok' if ok else 'FAIL'}: the LLVM module defines {fn}")
        results.append(ok)
    results += llvm_vs_c(c, {"x": x}, "T=1000 prefill", names)
    results += llvm_vs_c(c, {"x": x}, "T=1000 step330", names, step=330)
    results += llvm_vs_c(c_steep, {"x": x_steep}, "steep gates T=200", ["y"])
    results.append(bench_obj(c, "4 layers", 1000))
    results.append(bench_obj(c_steep, "gla steep gates", 200))
    return results


def test_steep_gla(args):
    """Forget gates of about e^-25 per token: the factored chunk form would need e^(+-800);
    the kernel must take its per-token fallback for such chunks and stay exact."""
    torch.manual_seed(5)
    c = Case(args, "chunk_steep", """import std
model m {
  max T = 256
  input x : f32[T, 32]
  output y : f32[T, 32]
  y = gla(x, heads: 2) @ "gla"
}
""")
    W = perturb(c.weights, seed=2, scale=0.1)
    W["gla.gk_proj.1.bias"] = W["gla.gk_proj.1.bias"] - 400.0
    set_weights(c, W)
    x = torch.randn(200, D)
    want = gla_ref(c.weights, "gla.", x.double(), H=2)
    out = run_flags(c, {"x": x}, "steep", [])
    return [check(f"gla steep gates T=200 {backend_name(args)} prefill vs reference", out["y"], want, RTOL_REF)], c, x


def main():
    args = parse_args()
    results = test_dumps(args)
    res, c = test_layers(args)
    results += res
    res, c_steep, x_steep = test_steep_gla(args)
    results += res
    results += test_llvm(args, c, c_steep, x_steep)
    return summary(results)


if __name__ == "__main__":
    sys.exit(main())
