#!/usr/bin/env python3
"""Pass scanfuse (a scan step's state update and output reduction as one sweep
over the state, LoopKernel.sweep_at) keeps the results.

1. A model with GLA, RetNet, HGRN, DeltaNet (with its gated output norm) and
   Gated DeltaNet layers, and a user scan whose step has a gate, a per-row
   norm and a read of the old state after the update. Run compiled at -O2,
   -O2 -fno-scanfuse (both with -fno-chunk: every call runs the per-token
   step) and with the reference interpreter: one prefill call (T = 40) and
   token by token (T = 1 per call, decode). Tolerances: -O2 (with or without
   the pass) against the interpreter 1e-4 of max |ref| (the -O2 tolerance of
   the other e2e tests: f32 GEMMs and f32 nests); -O2 against -O2
   -fno-scanfuse 1e-6 (the fused sweep computes every value with the same
   expression and rounding, so the difference is expected to be 0; observed
   0 with gcc).
2. The loop IR (--dump-after=scanfuse): the GLA, DeltaNet, Gated DeltaNet and
   user scans each have one sweep store; -fno-scanfuse leaves none. M2 and
   M3 (bench models) get one per layer."""
import os
import sys

import torch

from e2e_util import check, parse_args, read_st, run_inputs, sh, write_st

MODEL = """import std
model scanfuse {
  const d = 32
  max T = 64
  input x : f32[T, d]
  output y : f32[T, d]
  output z : f32[T, 2, 8]
  h = x + gla(rms_norm(x) @ "n1", heads: 2) @ "gla"
  h = h + retnet(rms_norm(h) @ "n2", heads: 2) @ "ret"
  h = h + hgrn(rms_norm(h) @ "n3") @ "hgrn"
  h = h + deltanet(rms_norm(h) @ "n4", heads: 2, use_gate: true) @ "dn"
  y = h + gated_deltanet(rms_norm(h) @ "n5", heads: 2, head_dim: 16) @ "gdn"
  q = linear(x, 16) @ "uq" as [T, 2, 8]
  k = linear(x, 16) @ "uk" as [T, 2, 8]
  v = linear(x, 16) @ "uv" as [T, 2, 8]
  g = linear(x, 16) @ "ug" as [T, 2, 8]
  a = sigmoid(linear(x, 16) @ "ua" as [T, 2, 8])
  z = scan t with S: f32[2, 8, 8] = 0 {
    o[h, j] = sum(i) q[t, h, i] * S[h, i, j]
    S[h, i, j] = a[t, h, i] * S[h, i, j] + k[t, h, i] * v[t, h, j]
    p[h, j] = silu(g[t, h, j]) * sum(i) q[t, h, i] * S[h, i, j] * 0.5
    n[h] = sum(j) p[h, j] * p[h, j]
    emit[h, j] = p[h, j] * rsqrt(n[h] / 8 + 1e-5) + o[h, j]
  }
}
"""

T = 40
RTOL = 1e-4
RTOL_SAME = 1e-6


def sweeps(out):
    return sum(1 for ln in out.splitlines() if " sweep b" in ln)


def test_model(args):
    wd = os.path.join(args.workdir, "scanfuse")
    os.makedirs(wd, exist_ok=True)
    src = os.path.join(wd, "scanfuse.gat")
    with open(src, "w") as f:
        f.write(MODEL)
    wpath = os.path.join(wd, "w.safetensors")
    rc, log = sh([args.gattnc, "init", src, "-o", wpath, "--seed", "3"])
    if rc:
        print("FAIL: init", log)
        return False
    g = torch.Generator().manual_seed(11)
    w = {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in read_st(wpath).items()}
    write_st(wpath, w)
    inputs = {"x": torch.randn(T, 32, generator=g)}
    ok = True
    for step in (0, 1):
        ref = run_inputs(args, src, wpath, inputs, wd, f"ref{step}", ["--interp"], step)
        if ref is None:
            return False
        outs = {}
        # the LLVM backend keeps the pass off unless asked (-fscanfuse): ask, to test its sweep store
        on = ["-fno-chunk"] + (["-fscanfuse"] if args.backend == "jit" else [])
        for i, flags in enumerate((on, ["-fno-chunk", "-fno-scanfuse"])):
            got = run_inputs(args, src, wpath, inputs, wd, "o2" + "".join(flags) + f"_s{step}", ["-O2"] + flags, step)
            if got is None:
                ok = False
                continue
            outs[i] = got
            for k in ref:
                ok &= check(f"T={T} step {step} -O2 {' '.join(flags)}: {k} vs interpreter", got[k], ref[k], RTOL)
        if len(outs) == 2:
            for k in outs[0]:
                ok &= check(f"T={T} step {step}: {k} -O2 vs -O2 -fno-scanfuse", outs[0][k], outs[1][k], RTOL_SAME)
    # the loop IR: GLA, DeltaNet, Gated DeltaNet and the user scan fused (RetNet's update stays a
    # double nest: its decay uses pow, which f32math keeps in double; HGRN has no reduction)
    rc, out = sh([args.gattnc, src, "-O2", "-fno-chunk", "--dump-after=scanfuse"])
    n = sweeps(out)
    good = rc == 0 and n == 4
    print(f"{'ok' if good else 'FAIL'}: --dump-after=scanfuse: {n} sweep stores (want 4)")
    ok &= good
    rc, out = sh([args.gattnc, src, "-O2", "-fno-chunk", "-fno-scanfuse", "--dump-after=scanfuse"])
    good = rc == 0 and sweeps(out) == 0
    print(f"{'ok' if good else 'FAIL'}: -fno-scanfuse: no sweep store")
    ok &= good
    return ok


def test_bench_models(args):
    root = os.environ.get("GAT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
    ok = True
    for model in ("m2_gla", "m3_gated_deltanet"):
        src = os.path.join(root, "bench", model + ".gat")
        rc, out = sh([args.gattnc, src, "-O2", "--dump-after=memplan"])
        n = sweeps(out)
        good = rc == 0 and n == 4
        print(f"{'ok' if good else 'FAIL'}: {model}: {n} sweep stores (want 4, one per layer)")
        ok &= good
    return ok


def main():
    args = parse_args()
    results = [test_model(args), test_bench_models(args)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
