"""scan: a GLA-style gated recurrence S_t = diag(exp gk_t) S_{t-1} + k_t v_t^T,
o_t = S_t^T q_t, written with index ops inside the scan region (dynamic loads
at the step index, implicit capture of outer values), plus a second state (a
running sum) to check several states. One call vs token by token vs chunks,
against a float64 PyTorch loop."""
import torch
import torch.nn.functional as F

from gatref import Test

t = Test("scan")
T, H, DK, DV = 8, 2, 4, 3
q, k, v = torch.randn(T, H, DK), torch.randn(T, H, DK), torch.randn(T, H, DV)
gk = F.logsigmoid(torch.randn(T, H, DK)) / 4
ir = """module scan max_T 32
input "q" : f32[T, 2, 4]
input "k" : f32[T, 2, 4]
input "v" : f32[T, 2, 3]
input "gk" : f32[T, 2, 4]
output "o" : f32[T, 2, 3]
state "S" : f32[2, 4, 3] = 0.0
state "acc" : f32[2, 3] = 1.0
body {
  %0 = input {name = "q"} : f32[T, 2, 4]
  %1 = input {name = "k"} : f32[T, 2, 4]
  %2 = input {name = "v"} : f32[T, 2, 3]
  %3 = input {name = "gk"} : f32[T, 2, 4]
  %4 = scan {states = [0, 1]} : f32[T, 2, 3] {
    (%5 : i32[], %6 : f32[2, 4, 3], %7 : f32[2, 3]) {
      %8 = index %6, %5, %3, %1, %2 {expr = "(add (mul (exp (load 2 $1 v0 v1)) (load 0 v0 v1 v2)) (mul (load 3 $1 v0 v1) (load 4 $1 v0 v2)))"} : f32[2, 4, 3]
      %9 = index %8, %5, %0 {expr = "(sum v2:4 (mul (load 0 v0 v2 v1) (load 2 $1 v0 v2)))"} : f32[2, 3]
      %10 = binary %7, %9 {fn = "add"} : f32[2, 3]
      %11 = binary %9, %10 {fn = "mul"} : f32[2, 3]
      yield %8, %10, %11
    }
  }
  output %4 {name = "o"}
}
"""
qd, kd, vd, gd = q.double(), k.double(), v.double(), gk.double()
S = torch.zeros(H, DK, DV, dtype=torch.float64)
acc = torch.ones(H, DV, dtype=torch.float64)
want = []
for i in range(T):
    S = torch.exp(gd[i])[:, :, None] * S + kd[i][:, :, None] * vd[i][:, None, :]
    o = torch.einsum("hkv,hk->hv", S, qd[i])
    acc = acc + o
    want.append(o * acc)
want = torch.stack(want)
for step in (None, 1, 3):
    out = t.run(ir, {}, {"q": q, "k": k, "v": v, "gk": gk}, step=step, tag="step%s" % step)
    t.check("gated recurrence step=%s" % step, out["o"], want, atol=1e-5, rtol=1e-5)
t.finish()
