"""skip: tokens whose condition is set keep `prev`; the region (a linear layer
plus the absolute positions of the kept rows) runs only on the kept rows.
One call vs token by token, against PyTorch."""
import torch

from gatref import Test

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
t.finish()
