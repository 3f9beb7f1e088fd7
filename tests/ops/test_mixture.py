"""mixture: a top-2 softmax router over 4 SwiGLU experts (Mixtral-style, with
renormalised weights), built from linear/softmax/topk/reduce ops; experts
receive only their routed rows. Expert index out of range is an error.
The execution counters (`gattnc run --count`, interpreter and a --count build
of the generated C) must show each expert computed exactly the rows the
PyTorch router sends it, and unchosen experts none."""
import json
import os
import subprocess

import torch
import torch.nn.functional as F

from gatref import Test, read_safetensors, write_safetensors

t = Test("mixture")
T, D, FF, E, K = 7, 8, 12, 4, 2
x = torch.randn(T, D)
wr = torch.randn(E, D)
w1 = [torch.randn(FF, D) / 3 for _ in range(E)]
w3 = [torch.randn(FF, D) / 3 for _ in range(E)]
w2 = [torch.randn(D, FF) / 3 for _ in range(E)]
L = ["module moe max_T 16", 'param "router.weight" : f32[4, 8] init linear']
for e in range(E):
    L += ['param "experts.%d.w1" : f32[12, 8] init linear' % e, 'param "experts.%d.w3" : f32[12, 8] init linear' % e,
          'param "experts.%d.w2" : f32[8, 12] init linear' % e]
L += ['input "x" : f32[T, 8]', 'input "route_bias" : f32[4]', 'output "y" : f32[T, 8]', 'output "idx" : i32[T, 2]', "body {",
      '  %0 = input {name = "x"} : f32[T, 8]',
      '  %1 = param {name = "router.weight"} : f32[4, 8]',
      '  %2 = linear %0, %1 : f32[T, 4]',
      '  %3 = input {name = "route_bias"} : f32[4]',
      '  %4 = binary %2, %3 {fn = "add"} : f32[T, 4]',
      '  %5 = softmax %4 {axis = 1} : f32[T, 4]',
      '  %6, %7 = topk %5 {k = 2} : f32[T, 2], i32[T, 2]',
      '  %8 = reduce %6 {kind = "sum", axes = [1]} : f32[T]',
      '  %9 = reshape %8 : f32[T, 1]',
      '  %10 = binary %6, %9 {fn = "div"} : f32[T, 2]',
      '  %11 = mixture %7, %10, %0 {experts = 4} : f32[T, 8] {']
n = 12
for e in range(E):
    a = n
    L += ['    (%%%d : f32[T, 8]) {' % a,
          '      %%%d = param {name = "experts.%d.w1"} : f32[12, 8]' % (a + 1, e),
          '      %%%d = param {name = "experts.%d.w3"} : f32[12, 8]' % (a + 2, e),
          '      %%%d = param {name = "experts.%d.w2"} : f32[8, 12]' % (a + 3, e),
          '      %%%d = linear %%%d, %%%d : f32[T, 12]' % (a + 4, a, a + 1),
          '      %%%d = unary %%%d {fn = "silu"} : f32[T, 12]' % (a + 5, a + 4),
          '      %%%d = linear %%%d, %%%d : f32[T, 12]' % (a + 6, a, a + 2),
          '      %%%d = binary %%%d, %%%d {fn = "mul"} : f32[T, 12]' % (a + 7, a + 5, a + 6),
          '      %%%d = linear %%%d, %%%d : f32[T, 8]' % (a + 8, a + 7, a + 3),
          '      yield %%%d' % (a + 8),
          '    }']
    n += 9
L += ["  }", '  output %11 {name = "y"}', '  output %7 {name = "idx"}', "}"]
ir = "\n".join(L) + "\n"
weights = {"router.weight": wr}
for e in range(E):
    weights.update({"experts.%d.w1" % e: w1[e], "experts.%d.w3" % e: w3[e], "experts.%d.w2" % e: w2[e]})


def reference(bias):
    xd = x.double()
    p = torch.softmax(xd @ wr.double().T + bias.double(), -1)
    order = torch.sort(-p, dim=1, stable=True).indices[:, :K]
    wk = torch.gather(p, 1, order)
    wk = wk / wk.sum(1, keepdim=True)
    y = torch.zeros(T, D, dtype=torch.float64)
    for i in range(T):
        for j in range(K):
            e = int(order[i, j])
            h = F.silu(xd[i] @ w1[e].double().T) * (xd[i] @ w3[e].double().T)
            y[i] += wk[i, j] * (h @ w2[e].double().T)
    return y, order


bias = torch.zeros(E)
for step in (None, 1):
    out = t.run(ir, weights, {"x": x, "route_bias": bias}, step=step, tag="step%s" % step)
    y, order = reference(bias)
    t.check("routing step=%s" % step, out["idx"], order)
    t.check("mixture output step=%s" % step, out["y"], y, atol=1e-5, rtol=1e-5)
# A strong bias toward experts 0 and 2: experts 1 and 3 are never run.
bias = torch.tensor([30.0, 0.0, 20.0, 0.0])
out = t.run(ir, weights, {"x": x, "route_bias": bias}, tag="two_experts")
y, order = reference(bias)
t.check("routing (2 experts used)", out["idx"], order)
t.check("mixture output (2 experts used)", out["y"], y, atol=1e-5, rtol=1e-5)


def run_counted(ir_text, inputs, tag, compiled, step=None):
    """`gattnc run --count`: returns (outputs, counted ops)."""
    irp, w, i, o, c = (t.path(tag + s) for s in (".ir", "_w.safetensors", "_in.safetensors", "_out.safetensors",
                                                 ".count.json"))
    with open(irp, "w") as f:
        f.write(ir_text)
    write_safetensors(w, weights)
    write_safetensors(i, inputs)
    cmd = [t.a.gattnc, "run", irp, "--weights", w, "--inputs", i, "-o", o, "--count", c] + ([] if compiled else ["--interp"])
    cmd += ["--step", str(step)] if step else []
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print("FAIL %s: %s" % (tag, r.stderr))
        return None, []
    return read_safetensors(o), json.load(open(c))["ops"]


for bias in (torch.zeros(E), torch.tensor([30.0, 0.0, 20.0, 0.0])):
    y, order = reference(bias)
    want_rows = [int((order == e).any(1).sum()) for e in range(E)]
    for compiled in (False, True):
        for step in (None, 1):
            tag = "count_%s_%s_%s" % ("c" if compiled else "interp", step, int(bias.sum()))
            out, ops = run_counted(ir, {"x": x, "route_bias": bias}, tag, compiled, step)
            what = "%s step=%s bias=%s" % ("C" if compiled else "interp", step, bias.tolist())
            if out is None:
                t.failures += 1
                continue
            t.check("counted run output " + what, out["y"], y, atol=1e-5, rtol=1e-5)
            want_calls = want_rows if step == 1 else [int(n > 0) for n in want_rows]
            got = (ops[0]["experts"], ops[0]["calls"], ops[0]["tokens"]) if len(ops) == 1 else None
            t.check("expert rows/calls " + what, torch.tensor([*got[0], *got[1], got[2]] if got else [-1]),
                    torch.tensor([*want_rows, *want_calls, T]))

# An index op feeding the expert ids out of range must be rejected at run time.
bad = ir.replace('%11 = mixture %7,', '%90 = const {value = 4.0} : i32[T, 2]\n  %11 = mixture %90,')
t.run(bad, weights, {"x": x, "route_bias": bias}, tag="bad_expert", expect_fail="expert index 4")
t.finish()
