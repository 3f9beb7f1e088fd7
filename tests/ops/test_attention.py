"""attention with a KV cache: causal softmax over absolute positions, GQA
(query head h uses KV head h / (H / Hkv)), sliding window, additive biases
qb[i] + kb[j] (the forgetting-attention form); one call (prefill) vs decode
token by token vs chunks, all against a float64 reference from the math."""
import math

import torch

from gatref import Test

t = Test("attention")
T, H, HKV, DK, DV, MAXT = 10, 4, 2, 8, 6, 16
q, k, v = torch.randn(T, H, DK), torch.randn(T, HKV, DK), torch.randn(T, HKV, DV)
fg = torch.nn.functional.logsigmoid(torch.randn(T, H))
c = torch.cumsum(fg.double(), 0).float()  # forgetting-attention biases: qb = c, kb = -c
SCALE = 1 / math.sqrt(DK)


def module(window, biased):
    ins = ["q", "k", "v"] + (["qb", "kb"] if biased else [])
    types = {"q": "f32[T, 4, 8]", "k": "f32[T, 2, 8]", "v": "f32[T, 2, 6]", "qb": "f32[T, 4]", "kb": "f32[T, 4]"}
    L = ["module attn max_T %d" % MAXT]
    L += ['input "%s" : %s' % (n, types[n]) for n in ins]
    L += ['output "o" : f32[T, 4, 6]',
          'state "k_cache" : f32[%d, 2, 8] = 0.0' % MAXT, 'state "v_cache" : f32[%d, 2, 6] = 0.0' % MAXT]
    if biased:
        L.append('state "kb_cache" : f32[%d, 4] = 0.0' % MAXT)
    L.append("body {")
    L += ['  %%%d = input {name = "%s"} : %s' % (i, n, types[n]) for i, n in enumerate(ins)]
    operands = ", ".join("%%%d" % i for i in range(len(ins)))
    attrs = "scale = %r, causal = 1, window = %d, state_k = 0, state_v = 1" % (SCALE, window)
    if biased:
        attrs += ", state_kb = 2"
    L.append("  %%%d = attention %s {%s} : f32[T, 4, 6]" % (len(ins), operands, attrs))
    L.append('  output %%%d {name = "o"}' % len(ins))
    L.append("}")
    return "\n".join(L) + "\n"


def reference(window, biased):
    qd, kd, vd, cd = q.double(), k.double(), v.double(), c.double()
    g = H // HKV
    kk, vv = kd.repeat_interleave(g, 1), vd.repeat_interleave(g, 1)  # [T, H, d]
    logits = torch.einsum("ihd,jhd->hij", qd, kk) * SCALE
    if biased:
        logits = logits + cd.T[:, :, None] - cd.T[:, None, :]
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    vis = j <= i
    if window > 0:
        vis = vis & (j > i - window)
    logits = logits.masked_fill(~vis, float("-inf"))
    p = torch.softmax(logits, -1)
    return torch.einsum("hij,jhd->ihd", p, vv)


for window in (0, 3):
    for biased in (False, True):
        ir = module(window, biased)
        inputs = {"q": q, "k": k, "v": v}
        if biased:
            inputs.update(qb=c, kb=-c)
        want = reference(window, biased)
        for step in (None, 1, 4):
            tag = "w%d_b%d_step%s" % (window, biased, step)
            out = t.run(ir, {}, inputs, step=step, tag=tag)
            t.check("window=%d bias=%d step=%s" % (window, biased, step), out["o"], want, atol=2e-6, rtol=1e-5)
# Decode must not run past the cache.
long_in = {"q": torch.randn(MAXT + 1, H, DK), "k": torch.randn(MAXT + 1, HKV, DK), "v": torch.randn(MAXT + 1, HKV, DV)}
t.run(module(0, False), {}, long_in, tag="too_long", expect_fail="max_T")
t.finish()
