"""matmul (batch dims broadcast) and linear (x W^T + b) vs float64 PyTorch."""
import torch

from gatref import Test

t = Test("matmul_linear")
T = 3
a = torch.randn(T, 2, 4, 5)
b = torch.randn(2, 5, 3)   # batch [2] broadcasts against [T, 2]
x = torch.randn(T, 2, 16)
w = torch.randn(7, 16) / 4
bias = torch.randn(7)
ir = """module mm max_T 8
param "lin.weight" : f32[7, 16] init linear
param "lin.bias" : f32[7] init linear
input "a" : f32[T, 2, 4, 5]
input "b" : f32[2, 5, 3]
input "x" : f32[T, 2, 16]
output "ab" : f32[T, 2, 4, 3]
output "lin" : f32[T, 2, 7]
output "lin_nobias" : f32[T, 2, 7]
body {
  %0 = input {name = "a"} : f32[T, 2, 4, 5]
  %1 = input {name = "b"} : f32[2, 5, 3]
  %2 = matmul %0, %1 : f32[T, 2, 4, 3]
  output %2 {name = "ab"}
  %3 = input {name = "x"} : f32[T, 2, 16]
  %4 = param {name = "lin.weight"} : f32[7, 16]
  %5 = param {name = "lin.bias"} : f32[7]
  %6 = linear %3, %4, %5 : f32[T, 2, 7]
  output %6 {name = "lin"}
  %7 = linear %3, %4 : f32[T, 2, 7]
  output %7 {name = "lin_nobias"}
}
"""
out = t.run(ir, {"lin.weight": w, "lin.bias": bias}, {"a": a, "b": b, "x": x})
t.check("matmul batch-broadcast", out["ab"], torch.matmul(a.double(), b.double()), atol=1e-6, rtol=1e-6)
t.check("linear + bias", out["lin"], x.double() @ w.double().T + bias.double(), atol=1e-6, rtol=1e-6)
t.check("linear", out["lin_nobias"], x.double() @ w.double().T, atol=1e-6, rtol=1e-6)
t.finish()
