"""rms_norm (with weight, plus_one, without weight), layer_norm (weight, bias)
and l2_norm over the last axis, written from their definitions."""
import torch

from gatref import Test

t = Test("norms")
T, D = 5, 32
x = torch.randn(T, 2, D) * 2 + 0.5
g = torch.randn(D)
b = torch.randn(D)
ir = """module norms max_T 8
param "g" : f32[32] init constant(1.0)
param "b" : f32[32] init constant(0.0)
input "x" : f32[T, 2, 32]
output "rms" : f32[T, 2, 32]
output "rms1" : f32[T, 2, 32]
output "rms0" : f32[T, 2, 32]
output "ln" : f32[T, 2, 32]
output "ln0" : f32[T, 2, 32]
output "l2" : f32[T, 2, 32]
body {
  %0 = input {name = "x"} : f32[T, 2, 32]
  %1 = param {name = "g"} : f32[32]
  %2 = param {name = "b"} : f32[32]
  %3 = rms_norm %0, %1 {eps = 1e-06} : f32[T, 2, 32]
  output %3 {name = "rms"}
  %4 = rms_norm %0, %1 {eps = 1e-05, plus_one = 1} : f32[T, 2, 32]
  output %4 {name = "rms1"}
  %5 = rms_norm %0 {eps = 1e-05} : f32[T, 2, 32]
  output %5 {name = "rms0"}
  %6 = layer_norm %0, %1, %2 {eps = 1e-05} : f32[T, 2, 32]
  output %6 {name = "ln"}
  %7 = layer_norm %0 {eps = 0.001} : f32[T, 2, 32]
  output %7 {name = "ln0"}
  %8 = l2_norm %0 {eps = 1e-06} : f32[T, 2, 32]
  output %8 {name = "l2"}
}
"""
out = t.run(ir, {"g": g, "b": b}, {"x": x})
xd, gd, bd = x.double(), g.double(), b.double()


def rms(v, eps):
    return v / torch.sqrt((v * v).mean(-1, keepdim=True) + eps)


def ln(v, eps):
    mu = v.mean(-1, keepdim=True)
    var = ((v - mu) ** 2).mean(-1, keepdim=True)
    return (v - mu) / torch.sqrt(var + eps)


tol = dict(atol=1e-6, rtol=1e-6)
t.check("rms_norm * w", out["rms"], rms(xd, 1e-6) * gd, **tol)
t.check("rms_norm * (1 + w)", out["rms1"], rms(xd, 1e-5) * (1 + gd), **tol)
t.check("rms_norm no weight", out["rms0"], rms(xd, 1e-5), **tol)
t.check("layer_norm w, b", out["ln"], ln(xd, 1e-5) * gd + bd, **tol)
t.check("layer_norm no affine", out["ln0"], ln(xd, 1e-3), **tol)
t.check("l2_norm", out["l2"], xd / torch.sqrt((xd * xd).sum(-1, keepdim=True) + 1e-6), **tol)
t.finish()
