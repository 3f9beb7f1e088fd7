"""reduce (sum/max/min/mean over one or several axes) and softmax (any axis)."""
import torch

from gatref import Test

t = Test("reduce_softmax")
T = 4
x = torch.randn(T, 3, 5) * 3
x[0, 0, :] = torch.tensor([100.0, 99.0, -100.0, 0.0, 1.0])  # large logits: max-subtracted softmax
ir = """module red max_T 8
input "x" : f32[T, 3, 5]
output "sum2" : f32[T, 3]
output "max0" : f32[3, 5]
output "min12" : f32[T]
output "mean01" : f32[5]
output "sm_last" : f32[T, 3, 5]
output "sm_mid" : f32[T, 3, 5]
body {
  %0 = input {name = "x"} : f32[T, 3, 5]
  %1 = reduce %0 {kind = "sum", axes = [2]} : f32[T, 3]
  output %1 {name = "sum2"}
  %2 = reduce %0 {kind = "max", axes = [0]} : f32[3, 5]
  output %2 {name = "max0"}
  %3 = reduce %0 {kind = "min", axes = [1, 2]} : f32[T]
  output %3 {name = "min12"}
  %4 = reduce %0 {kind = "mean", axes = [0, 1]} : f32[5]
  output %4 {name = "mean01"}
  %5 = softmax %0 {axis = 2} : f32[T, 3, 5]
  output %5 {name = "sm_last"}
  %6 = softmax %0 {axis = 1} : f32[T, 3, 5]
  output %6 {name = "sm_mid"}
}
"""
out = t.run(ir, {}, {"x": x})
xd = x.double()
t.check("sum axes [2]", out["sum2"], xd.sum(2), atol=1e-6, rtol=1e-6)
t.check("max axes [0]", out["max0"], xd.max(0).values, atol=0, rtol=0)
t.check("min axes [1, 2]", out["min12"], xd.amin((1, 2)), atol=0, rtol=0)
t.check("mean axes [0, 1]", out["mean01"], xd.mean((0, 1)), atol=1e-6, rtol=1e-6)
t.check("softmax last axis", out["sm_last"], torch.softmax(xd, 2), atol=1e-7, rtol=1e-6)
t.check("softmax axis 1", out["sm_mid"], torch.softmax(xd, 1), atol=1e-7, rtol=1e-6)
t.finish()
