"""skip: tokens whose condition is set keep `prev`; the region (a linear layer
plus the absolute positions of the kept rows) runs only on the kept rows.
One call vs token by token, against PyTorch.

The same op as a Mixture-of-Depths router (attrs capacity / top_k /
threshold; `route top(...) by r` in .gat): per call, the top ceil(c*T) (or
min(k, T)) rows by score run the region, ties to the lower row; a call of one
token with a threshold keeps it iff sigmoid(r) >= tau. The execution counters
(`gattnc run --count`, interpreter and the generated C) must show the region
computed exactly the rows PyTorch keeps."""
import json
import math
import subprocess

import torch

from gatref import Test, read_safetensors, write_safetensors

t = Test("skip")
T, D = 9, 5
x = torch.randn(T, D)
gate = torch.randn(T)
w = torch.randn(D, D)
ir = """module skip max_T 16
param "w" : f32[5, 5] init linear
input "x" : f32[T, 5]
input "gate" : f32[T]
output "y" : f32[T, 5]
body {
  %0 = input {name = "x"} : f32[T, 5]
  %1 = input {name = "gate"} : f32[T]
  %2 = const {value = 0.0} : f32[]
  %3 = binary %1, %2 {fn = "lt"} : f32[T]
  %4 = param {name = "w"} : f32[5, 5]
  %5 = skip %3, %0, %0 : f32[T, 5] {
    (%6 : f32[T, 5]) {
      %7 = linear %6, %4 : f32[T, 5]
      %8 = position : i32[T]
      %9 = cast %8 : f32[T]
      %10 = reshape %9 : f32[T, 1]
      %11 = binary %7, %10 {fn = "add"} : f32[T, 5]
      yield %11
    }
  }
  output %5 {name = "y"}
}
"""
xd = x.double()
skipped = gate < 0
want = torch.where(skipped[:, None], xd, xd @ w.double().T + torch.arange(T).double()[:, None])
for step in (None, 1, 4):
    out = t.run(ir, {"w": w}, {"x": x, "gate": gate}, step=step, tag="step%s" % step)
    t.check("skip step=%s (%d of %d rows kept)" % (step, int((~skipped).sum()), T), out["y"], want, atol=1e-6, rtol=1e-6)


def run_counted(ir_text, inputs, tag, compiled, step=None):
    """`gattnc run --count` (interpreter or compiled C): (outputs, counted ops)."""
    irp, wp, ip, op, cp = (t.path(tag + s) for s in (".ir", "_w.safetensors", "_in.safetensors", "_out.safetensors",
                                                    ".count.json"))
    with open(irp, "w") as f:
        f.write(ir_text)
    write_safetensors(wp, {"w": w})
    write_safetensors(ip, inputs)
    cmd = [t.a.gattnc, "run", irp, "--weights", wp, "--inputs", ip, "-o", op, "--count", cp]
    cmd += ([] if compiled else ["--interp"]) + (["--step", str(step)] if step else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print("FAIL %s: %s" % (tag, r.stderr))
        return None, []
    return read_safetensors(op), json.load(open(cp))["ops"]


def router_keep(score, chunk, cap=None, k=None, tau=None):
    """Rows kept by the router when the sequence is fed `chunk` tokens per call."""
    keep = torch.zeros(len(score), dtype=torch.bool)
    for t0 in range(0, len(score), chunk):
        s = score[t0:t0 + chunk].double()
        n = len(s)
        if tau is not None and n == 1:
            keep[t0] = bool(torch.sigmoid(s[0]) >= tau)
            continue
        m = max(1, math.ceil(cap * n - 1e-9)) if cap is not None else min(k, n)
        order = torch.sort(-s, stable=True).indices[:m]  # descending, ties to the lower row
        keep[t0 + order] = True
    return keep


def check_counts(what, ops, kept, calls):
    got = [ops[0]["rows"], ops[0]["calls"], ops[0]["tokens"]] if len(ops) == 1 and ops[0]["kind"] == "skip" else [-1]
    t.check("rows/calls/tokens " + what, torch.tensor(got), torch.tensor([kept, calls, T]))


# The plain skip, counted: kept rows = tokens with gate >= 0.
for compiled in (False, True):
    for step in (None, 1):
        out, ops = run_counted(ir, {"x": x, "gate": gate}, "count_%d_%s" % (compiled, step), compiled, step)
        what = "skip %s step=%s" % ("C" if compiled else "interp", step)
        if out is None:
            t.failures += 1
            continue
        t.check(what, out["y"], want, atol=1e-6, rtol=1e-6)
        kept = int((~skipped).sum())
        check_counts(what, ops, kept, kept if step == 1 else int(kept > 0))

# Routers: the gate is the score; the condition operand is the score itself.
router_ir = ir.replace("%5 = skip %3, %0, %0 :", "%5 = skip %1, %0, %0 {ATTRS} :")
ROUTERS = [("capacity 0.4", "capacity = 0.4", dict(cap=0.4)),
           ("capacity 0.5 threshold 0.45", "capacity = 0.5, threshold = 0.45", dict(cap=0.5, tau=0.45)),
           ("top_k 3", "top_k = 3", dict(k=3))]
pos = torch.arange(T).double()[:, None]
for name, attrs, kw in ROUTERS:
    text = router_ir.replace("ATTRS", attrs)
    for compiled in (False, True):
        for step in (None, 1, 4):
            keep = router_keep(gate, step or T, **kw)
            want_r = torch.where(keep[:, None], xd @ w.double().T + pos, xd)
            calls = sum(int(keep[t0:t0 + (step or T)].any()) for t0 in range(0, T, step or T))
            what = "route %s %s step=%s (%d of %d rows)" % (name, "C" if compiled else "interp", step, int(keep.sum()), T)
            out, ops = run_counted(text, {"x": x, "gate": gate}, "route_%s_%d_%s" % (name.replace(" ", "_"), compiled, step),
                                   compiled, step)
            if out is None:
                t.failures += 1
                continue
            t.check(what, out["y"], want_r, atol=1e-6, rtol=1e-6)
            check_counts(what, ops, int(keep.sum()), calls)
t.finish()
