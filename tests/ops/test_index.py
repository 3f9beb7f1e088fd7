"""index ops: generic index notation with affine loads, reductions (sum, max,
min, mean over static extents and over T), select, loop variables as values and
negative coefficients, vs float64 PyTorch."""
import torch

from gatref import Test

t = Test("index")
T = 6
x = torch.randn(T, 8)
w = torch.randn(5, 8)
ir = """module idx max_T 16
param "w" : f32[5, 8] init normal(0.0, 1.0)
input "x" : f32[T, 8]
output "mm" : f32[T, 5]
output "shift" : f32[T, 4]
output "rowmax" : f32[T]
output "colmean" : f32[8]
output "clip" : f32[T, 8]
output "rev" : f32[T, 8]
output "iota" : f32[T, 8]
output "minprod" : f32[T]
body {
  %0 = input {name = "x"} : f32[T, 8]
  %1 = param {name = "w"} : f32[5, 8]
  %2 = index %0, %1 {expr = "(sum v2:8 (mul (load 0 v0 v2) (load 1 v1 v2)))"} : f32[T, 5]
  output %2 {name = "mm"}
  %3 = index %0 {expr = "(sub (load 0 v0 2*v1+1) (load 0 v0 2*v1))"} : f32[T, 4]
  output %3 {name = "shift"}
  %4 = index %0 {expr = "(max v1:8 (load 0 v0 v1))"} : f32[T]
  output %4 {name = "rowmax"}
  %5 = index %0 {expr = "(mean v1:T (load 0 v1 v0))"} : f32[8]
  output %5 {name = "colmean"}
  %6 = index %0 {expr = "(select (gt (load 0 v0 v1) 0.5) 0.5 (load 0 v0 v1))"} : f32[T, 8]
  output %6 {name = "clip"}
  %7 = index %0 {expr = "(load 0 v0 -1*v1+7)"} : f32[T, 8]
  output %7 {name = "rev"}
  %8 = index {expr = "(add (mul (var v0) 10.0) (var v1))"} : f32[T, 8]
  output %8 {name = "iota"}
  %9 = index %0, %1 {expr = "(min v1:8 (mul (load 0 v0 v1) (load 1 0 v1)))"} : f32[T]
  output %9 {name = "minprod"}
}
"""
out = t.run(ir, {"w": w}, {"x": x})
xd, wd = x.double(), w.double()
t.check("sum: x w^T", out["mm"], xd @ wd.T, atol=1e-6, rtol=1e-6)
t.check("affine 2*v1+1 - 2*v1", out["shift"], (xd[:, 1::2] - xd[:, 0::2]).float().double(), atol=0, rtol=0)
t.check("max over 8", out["rowmax"], xd.max(dim=1).values, atol=0, rtol=0)
t.check("mean over T", out["colmean"], xd.mean(dim=0), atol=1e-7, rtol=1e-6)
t.check("select", out["clip"], torch.where(xd > 0.5, torch.full_like(xd, 0.5), xd), atol=0, rtol=0)
t.check("negative coefficient", out["rev"], xd.flip(1), atol=0, rtol=0)
t.check("loop vars as values", out["iota"], torch.arange(T).double()[:, None] * 10 + torch.arange(8).double(), atol=0, rtol=0)
t.check("min of products", out["minprod"], (xd * wd[0]).min(dim=1).values, atol=1e-7, rtol=1e-6)
t.finish()
