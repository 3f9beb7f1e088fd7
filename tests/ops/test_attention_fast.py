"""The -O2 flash attention kernel (codegen/kernels_attention.c, chosen by
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

Metric: max |gattnc - ref| / max |ref| over the output, tolerance 1e-5 (the
kernel accumulates in f32 with FMA and a polynomial exp: ~2e-7 measured).
The test also checks that the fast kernel is what ran (`--dump-after=attention`
marks the call `flash` at -O2) and that a relative-position bias, which the
flash kernel does not implement, leaves the call on the reference kernel."""
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


def reference(q, k, v, qb, kb, window, scale):
    """float64, from the math above; q [T, H, dk], k [T, Hkv, dk], v [T, Hkv, dv]."""
    T, H, _ = q.shape
    g = H // k.shape[1]
    kk, vv = k.double().repeat_interleave(g, 1), v.double().repeat_interleave(g, 1)
    logits = torch.einsum("ihd,jhd->hij", q.double(), kk) * scale
    if qb is not None:
        logits = logits + qb.double().T[:, :, None] + kb.double().T[:, None, :]
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
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


def run_compiled(ir_text, weights, inputs, step, tag):
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
print("%-52s %s" % ("relbias stays on the reference kernel", "FAIL" if rb_fast else "ok"))
t.failures += 1 if rb_fast else 0

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
t.finish()
