"""The -O2 flash attention kernel (codegen/kernels/attention.c, chosen by
pass_attention) in compiled C, against a float64 PyTorch attention written
from the math:

  logit(i, j) = q_i . k_{j, h / (H / Hkv)} * scale (+ qb[i, h] + kb[j, h]),
  visible iff j <= i and (window == 0 or i - window < j) (absolute positions),
  o_i = softmax_j(logit) V.

Cases: causal MHA, GQA (H = 4 over Hkv = 2 and 1), sliding window, the
forgetting-attention biases (qb = c, kb = -c with c the cumulative sum of
logsigmoid gates), head dims 64 x 64, odd ones (24 x 40, 17 x 9: vector
tails) and wide ones (96 x 112, 160 x 136: smaller key blocks and, above 128,
narrower query tiles); T in {1, 7, 64, 300, 1024}; prefill (one call), one-token decode
(--step 1) and chunked prefill with steps that mix the kernel's query tiles
and single-query rows (--step 37, 100) over a KV cache that already holds
earlier rows.

Relative-position bias (relbias, Mega's layer: logit(i, j) += rb[clamp(c + j - i,
0, L - 1)], c = (L - 1) / 2, rb a learned f32[L] vector): the same kernel adds it
per score tile (its own kernel variant); cases with L = 9 (distances beyond 4
clamp to rb[0]) and L = 601 (no clamping up to T = 300), T in {7, 64, 300}
(300: tiles of 64 keys and queries with a tail), prefill, decode and
--step 37.

Metric: max |gattnc - ref| / max |ref| over the output, tolerance 1e-5 (the
kernel accumulates in f32 with FMA and a polynomial exp: ~2e-7 measured).
The test also checks that the fast kernel is what ran (`--dump-after=attention`
marks the call `flash` at -O2), with a relative-position bias too."""
import math
import os
import subprocess
import sys

import torch

from gatref import Test, read_safetensors, write_safetensors

t = Test("attention_fast")
TOL = 1e-5
MAXT = 1024


def module(H, HKV, DK, DV, window, biased, scale, relbias=0):
    ins = ["q", "k", "v"] + (["qb", "kb"] if biased else [])
    types = {"q": "f32[T, %d, %d]" % (H, DK), "k": "f32[T, %d, %d]" % (HKV, DK), "v": "f32[T, %d, %d]" % (HKV, DV),
             "qb": "f32[T, %d]" % H, "kb": "f32[T, %d]" % H}
    L = ["module attn max_T %d" % MAXT]
    L += ['input "%s" : %s' % (n, types[n]) for n in ins]
    L += ['output "o" : f32[T, %d, %d]' % (H, DV),
          'state "k_cache" : f32[%d, %d, %d] = 0.0' % (MAXT, HKV, DK),
          'state "v_cache" : f32[%d, %d, %d] = 0.0' % (MAXT, HKV, DV)]
    if biased:
        L.append('state "kb_cache" : f32[%d, %d] = 0.0' % (MAXT, H))
    if relbias:
        L.append('param "rb" : f32[%d] init constant(0.0)' % relbias)
    L.append("body {")
    L += ['  %%%d = input {name = "%s"} : %s' % (i, n, types[n]) for i, n in enumerate(ins)]
    n = len(ins)
    operands = ", ".join("%%%d" % i for i in range(n))
    if relbias:
        L.append('  %%%d = param {name = "rb"} : f32[%d]' % (n, relbias))
        operands += ", %%%d" % n
        n += 1
    attrs = "scale = %r, causal = 1, window = %d, state_k = 0, state_v = 1" % (scale, window)
    if biased:
        attrs += ", state_kb = 2"
    if relbias:
        attrs += ", relbias = %d" % (n - 1)
    L.append("  %%%d = attention %s {%s} : f32[T, %d, %d]" % (n, operands, attrs, H, DV))
    L.append('  output %%%d {name = "o"}' % n)
    L.append("}")
    return "\n".join(L) + "\n"


def reference(q, k, v, qb, kb, window, scale, rb=None):
    """float64, from the math above; q [T, H, dk], k [T, Hkv, dk], v [T, Hkv, dv]."""
    T, H, _ = q.shape
    g = H // k.shape[1]
    kk, vv = k.double().repeat_interleave(g, 1), v.double().repeat_interleave(g, 1)
    logits = torch.einsum("ihd,jhd->hij", q.double(), kk) * scale
    if qb is not None:
        logits = logits + qb.double().T[:, :, None] + kb.double().T[:, None, :]
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    if rb is not None:
        c = (rb.shape[0] - 1) // 2
        logits = logits + rb.double()[(c + j - i).clamp(0, rb.shape[0] - 1)][None, :, :]
    vis = j <= i
    if window > 0:
        vis = vis & (j > i - window)
    p = torch.softmax(logits.masked_fill(~vis, float("-inf")), -1)
    return torch.einsum("hij,jhd->ihd", p, vv)


def gattnc(*argv):
    r = subprocess.run([t.a.gattnc, *argv], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        print("FAIL: gattnc %s exited with %d\n%s" % (" ".join(argv), r.returncode, r.stderr))
        sys.exit(1)
    return r.stdout


def run_compiled(ir_text, weights, inputs, step, tag, jit=False):
    ir = t.path(tag + ".ir")
    with open(ir, "w") as f:
        f.write(ir_text)
    w, i, o = t.path(tag + "_w.safetensors"), t.path(tag + "_in.safetensors"), t.path(tag + "_out.safetensors")
    write_safetensors(w, weights)
    write_safetensors(i, inputs)
    if os.path.exists(o):
        os.remove(o)
    argv = ["run", ir, "-O2", "--weights", w, "--inputs", i, "-o", o]
    if step:
        argv += ["--step", str(step)]
    if jit:
        argv.append("--jit")
    gattnc(*argv)
    return read_safetensors(o)["o"].double()


def check(what, got, want):
    t.count += 1
    err = float((got - want).abs().max()) / max(float(want.abs().max()), 1e-30)
    ok = err <= TOL and got.shape == want.shape and not bool(torch.isnan(got).any())
    print("%-52s max |err| / max |ref| = %.3g (tol %g) %s" % (what, err, TOL, "ok" if ok else "FAIL"))
    if not ok:
        t.failures += 1


def data(T, H, HKV, DK, DV, biased):
    q, k, v = torch.randn(T, H, DK), torch.randn(T, HKV, DK), torch.randn(T, HKV, DV)
    ins = {"q": q, "k": k, "v": v}
    qb = kb = None
    if biased:
        fg = torch.nn.functional.logsigmoid(torch.randn(T, H) + 2.0)
        c = torch.cumsum(fg.double(), 0).float()  # qb = c, kb = -c: logit gets c_i - c_j
        qb, kb = c, -c
        ins.update(qb=qb, kb=kb)
    return ins, q, k, v, qb, kb


# (H, Hkv, dk, dv, window, biased): MHA, GQA + FoX, window + GQA, odd dims, MQA + window + bias,
# and wide heads: 96 x 112 (key blocks of 32) and 160 x 136 (blocks of 16, 2-vector tiles)
CASES = [(4, 4, 64, 64, 0, False), (4, 2, 64, 64, 0, True), (4, 2, 64, 64, 50, False),
         (4, 2, 24, 40, 0, True), (4, 1, 17, 9, 13, True), (2, 2, 96, 112, 20, False),
         (2, 1, 160, 136, 0, True)]
# T and the steps run for it (None = one call; 1 = decode token by token)
STEPS = {1: [None], 7: [None, 1, 3], 64: [None, 1, 37], 300: [None, 1, 37, 100], 1024: [None, 37]}

# the fast kernel is what -O2 runs, and only there
probe = t.path("probe.ir")
with open(probe, "w") as f:
    f.write(module(4, 2, 64, 64, 0, True, 0.125))
t.count += 1
fast_o2 = " flash" in gattnc(probe, "-O2", "--dump-after=attention")
fast_o1 = " flash" in gattnc(probe, "-O1", "--dump-after=attention")
print("%-52s %s" % ("flash kernel at -O2, reference at -O1", "ok" if fast_o2 and not fast_o1 else "FAIL"))
t.failures += 0 if fast_o2 and not fast_o1 else 1
with open(probe, "w") as f:
    f.write(module(4, 2, 64, 64, 0, True, 0.125, relbias=9))
t.count += 1
rb_fast = " flash" in gattnc(probe, "-O2", "--dump-after=attention")
rb_ref = " flash" in gattnc(probe, "-O2", "-fno-tile", "--dump-after=attention")
print("%-52s %s" % ("relbias: flash at -O2, reference with -fno-tile", "ok" if rb_fast and not rb_ref else "FAIL"))
t.failures += 0 if rb_fast and not rb_ref else 1

# the LLVM backend is optional at build time: `gattnc --version` lists the backends
HAVE_JIT = "llvm" in subprocess.run([t.a.gattnc, "--version"], capture_output=True, text=True).stdout.split()
# relative-position bias: (H, Hkv, dk, dv, window, biased, L)
RB_CASES = [(2, 1, 16, 48, 0, True, 9), (4, 2, 64, 64, 0, False, 601), (2, 2, 24, 40, 50, False, 601)]
for ci, (H, HKV, DK, DV, window, biased, RL) in enumerate(RB_CASES):
    scale = 1 / math.sqrt(DK)
    ir = module(H, HKV, DK, DV, window, biased, scale, relbias=RL)
    rb = torch.randn(RL)
    for T, steps in ((7, [None, 1]), (64, [None, 37]), (300, [None, 1, 37])):
        ins, q, k, v, qb, kb = data(T, H, HKV, DK, DV, biased)
        want = reference(q, k, v, qb, kb, window, scale, rb)
        for step in steps:
            got = run_compiled(ir, {"rb": rb}, ins, step, "rb%d_T%d_s%s" % (ci, T, step))
            check("relbias L=%d H%d/%d d%dx%d w%d b%d T=%d step=%s" % (RL, H, HKV, DK, DV, window, biased, T, step),
                  got, want)
            if T == 300 and step != 1 and HAVE_JIT:  # the LLVM backend's twin of the kernel
                got = run_compiled(ir, {"rb": rb}, ins, step, "rbj%d_T%d_s%s" % (ci, T, step), jit=True)
                check("relbias L=%d d%dx%d T=%d step=%s LLVM JIT" % (RL, DK, DV, T, step), got, want)

for ci, (H, HKV, DK, DV, window, biased) in enumerate(CASES):
    scale = 1 / math.sqrt(DK)
    ir = module(H, HKV, DK, DV, window, biased, scale)
    for T, steps in STEPS.items():
        if T == 1024 and ci not in (1, 2):
            continue  # the long run for the MHA+FoX and window cases only (time)
        ins, q, k, v, qb, kb = data(T, H, HKV, DK, DV, biased)
        want = reference(q, k, v, qb, kb, window, scale)
        for step in steps:
            tag = "c%d_T%d_s%s" % (ci, T, step)
            got = run_compiled(ir, {}, ins, step, tag)
            what = "H%d/%d d%dx%d w%d b%d T=%d step=%s" % (H, HKV, DK, DV, window, biased, T, step)
            check(what, got, want)

# Per-row positions (GateSkip's `kv: previous`: gat_attn_args.pos), alone and with a relbias:
# the emitted kernel variants gat_flash_attn_32_32_p / _pr, taken from the -O2 C of a model
# that uses both, called directly by a C harness next to the runtime's gat_k_attention (the
# double reference, itself checked against PyTorch by tests/ops/test_attention.py and the
# kvcopy e2e test) on the same inputs: positions not contiguous (gaps of 0..5 rows, a tile's
# 64 queries spanning several 64-key blocks), row counts around the tile size and below the
# row threshold, a cache start past 0, GQA, a window, FoX-style qb/kb. The harness runs under
# ASan + UBSan (the kernel reads nothing out of bounds). Metric: max |flash - ref| / max |ref|
# <= 1e-5 per case, and the appended cache rows identical. The flash kernel runs whole (part 0)
# and as pass block splits it, the append (part 1) and then one head at a time (part 2, heads
# [h, h + 1)): the split must give the whole call's bits.
PR_GAT = """import std
layer attn_branch(h: f32[T, D], heads: int, rel: bool) -> f32[T, D] {
  q = linear(h, D) @ "q_proj" as [T, heads, D / heads]
  k = linear(h, D) @ "k_proj" as [T, heads, D / heads]
  v = linear(h, D) @ "v_proj" as [T, heads, D / heads]
  if rel {
    param rb : f32[31] = normal(0.0, 1.0)
    a = attention(q, k, v, relbias: rb)
  } else {
    a = attention(q, k, v)
  }
  return linear(a as [T, D], D) @ "o_proj"
}
model pr {
  max T = 512
  input  x : f32[T, 64]
  output y : f32[T, 64]
  repeat i in 0..3 @ "layers.{i}" {
    h = rms_norm(x) @ "norm1"
    g = skip_gate(h) @ "attn_gate"
    if i == 0 {
      x = x + g * attn_branch(h, heads: 2, rel: false) @ "attn"
    } else {
      x = x + g * attn_branch(h, heads: 2, rel: i == 2) @ "attn" skip when mean(g, axis: -1) < 0.5, kv: previous
    }
  }
  y = x
}
"""
HARNESS = r"""
#include "pr.c"
#include <stdio.h>
#include <stdlib.h>
enum { MAXT = 512, DK = 32 };
static uint64_t rs = 12345;
static float rnd(void) { rs = rs * 6364136223846793005ULL + 1442695040888963407ULL; return (float)((rs >> 40) / 8388608.0 - 1.0); }
static float *fa(size_t n) { float *p = malloc(n * sizeof *p); for (size_t i = 0; i < n; i++) p[i] = rnd(); return p; }
/* T rows at positions from p0 upwards with gaps 0..gap; H query heads over Hkv; window w;
   FoX-style biases; relbias of length rl (0 = none) */
static int one(int T, int p0, int gap, int H, int Hkv, int w, int bias, int rl) {
  float *q = fa((size_t)T * H * DK), *k = fa((size_t)T * Hkv * DK), *v = fa((size_t)T * Hkv * DK);
  float *qb = fa((size_t)T * H), *kb = fa((size_t)T * H), *rb = fa(rl > 0 ? (size_t)rl : 1);
  float *ck[3], *cv[3], *ckb[3], *out[3];
  int32_t *pos = malloc(sizeof(int32_t) * (size_t)T);
  double *scratch = malloc(sizeof(double) * MAXT);
  int p = p0;
  for (int t = 0; t < T; t++) { pos[t] = p; p += 1 + (int)((rnd() + 1) * 0.5f * (float)(gap + 1)) % (gap + 1); }
  if (pos[T - 1] >= MAXT) { printf("bad case\n"); return 1; }
  ck[0] = fa((size_t)MAXT * Hkv * DK); cv[0] = fa((size_t)MAXT * Hkv * DK); ckb[0] = fa((size_t)MAXT * H);
  for (int c = 1; c < 3; c++) {
    ck[c] = malloc(sizeof(float) * MAXT * Hkv * DK); memcpy(ck[c], ck[0], sizeof(float) * MAXT * Hkv * DK);
    cv[c] = malloc(sizeof(float) * MAXT * Hkv * DK); memcpy(cv[c], cv[0], sizeof(float) * MAXT * Hkv * DK);
    ckb[c] = malloc(sizeof(float) * MAXT * H); memcpy(ckb[c], ckb[0], sizeof(float) * MAXT * H);
  }
  for (int c = 0; c < 3; c++) out[c] = malloc(sizeof(float) * (size_t)T * H * DK);
  for (int c = 0; c < 3; c++) {
    gat_attn_args A;
    memset(&A, 0, sizeof A);
    A.out = out[c]; A.q = q; A.k = k; A.v = v; A.qb = bias ? qb : NULL; A.kb = bias ? kb : NULL;
    A.cache_k = ck[c]; A.cache_v = cv[c]; A.cache_kb = bias ? ckb[c] : NULL;
    A.T = T; A.H = H; A.Hkv = Hkv; A.dk = DK; A.dv = DK; A.pos0 = 7777; /* unused with pos */
    A.max_T = MAXT; A.window = w; A.scale = 0.25; A.scratch = scratch; A.pos = pos;
    if (rl > 0) { A.relbias = rb; A.relbias_len = rl; }
    void (*flash)(const gat_attn_args *, int, int64_t, int64_t) = rl > 0 ? gat_flash_attn_32_32_pr : gat_flash_attn_32_32_p;
    if (c == 0) gat_k_attention(&A);
    else if (c == 1) flash(&A, 0, 0, 0);
    else {
      flash(&A, 1, 0, 0);
      for (int h = 0; h < H; h++) flash(&A, 2, h, h + 1);
    }
  }
  double err = 0, mx = 0;
  for (size_t i = 0; i < (size_t)T * H * DK; i++) {
    double d = fabs((double)out[1][i] - out[0][i]);
    err = d > err ? d : err;
    mx = fabs((double)out[0][i]) > mx ? fabs((double)out[0][i]) : mx;
  }
  int same = 1;
  for (int c = 1; c < 3; c++)
    same &= !memcmp(ck[0], ck[c], sizeof(float) * MAXT * Hkv * DK) && !memcmp(cv[0], cv[c], sizeof(float) * MAXT * Hkv * DK) &&
            !memcmp(ckb[0], ckb[c], sizeof(float) * MAXT * H);
  const int split_same = !memcmp(out[1], out[2], sizeof(float) * (size_t)T * H * DK);
  int ok = err / mx <= 1e-5 && same && split_same;
  printf("positions T=%d from %d gaps<=%d (last %d) H%d/%d w%d b%d relbias %d: max |err| / max |ref| = %.3g, caches %s, "
         "append + per-head calls %s the whole call (tol 1e-5) %s\n",
         T, p0, gap, pos[T - 1], H, Hkv, w, bias, rl, err / mx, same ? "equal" : "DIFFER",
         split_same ? "give the bits of" : "DIFFER from", ok ? "ok" : "FAIL");
  return !ok;
}
int main(void) {
  int fails = 0;
  static const int cases[][8] = {
    /* T, p0, gap, H, Hkv, window, biases, relbias length */
    {150, 0, 3, 2, 2, 0, 0, 0}, {64, 5, 5, 2, 1, 0, 0, 0}, {65, 100, 2, 2, 2, 0, 1, 0}, {1, 300, 0, 2, 2, 0, 0, 0},
    {21, 40, 4, 2, 2, 0, 0, 0}, {23, 40, 4, 2, 2, 0, 0, 0}, {130, 10, 2, 2, 2, 50, 0, 0}, {200, 0, 1, 2, 1, 0, 1, 0},
    {150, 0, 3, 2, 2, 0, 0, 31}, {65, 100, 5, 2, 1, 0, 1, 31}, {7, 200, 3, 2, 2, 0, 0, 31}, {130, 10, 2, 2, 2, 40, 0, 601},
    {200, 0, 1, 2, 2, 0, 0, 9}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const int *c = cases[i];
    fails += one(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
  }
  printf("%d failed\n", fails);
  return fails != 0;
}
"""
src_dir = os.environ.get("GAT_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
rt = os.path.join(src_dir, "runtime")
with open(t.path("pr.gat"), "w") as f:
    f.write(PR_GAT)
gattnc(t.path("pr.gat"), "-O2", "-o", t.path("pr.c"))
with open(t.path("pr.c")) as f:
    pr_c = f.read()
t.count += 1
variants_ok = all(n in pr_c for n in ("gat_flash_attn_32_32(&A, ", "gat_flash_attn_32_32_p(&A, ",
                                        "gat_flash_attn_32_32_pr(&A, "))
print("%-52s %s" % ("kv: previous (+ relbias) attentions call _p / _pr", "ok" if variants_ok else "FAIL"))
t.failures += 0 if variants_ok else 1
with open(t.path("pos_harness.c"), "w") as f:
    f.write(HARNESS)
exe = t.path("pos_harness")
cc = subprocess.run(["cc", "-std=c11", "-O1", "-g", "-march=native", "-fsanitize=address,undefined",
                     "-fno-sanitize-recover=all", "-I", rt, "-I", t.a.workdir, t.path("pos_harness.c"),
                     os.path.join(rt, "gat_runtime.c"), os.path.join(rt, "gat_safetensors.c"), "-lm", "-o", exe],
                    capture_output=True, text=True)
t.count += 1
if cc.returncode != 0:
    print("FAIL: harness did not build\n" + cc.stderr)
    t.failures += 1
else:
    r = subprocess.run([exe], capture_output=True, text=True, timeout=300, env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
    print(r.stdout + r.stderr)
    t.failures += 0 if r.returncode == 0 else 1
t.finish()
