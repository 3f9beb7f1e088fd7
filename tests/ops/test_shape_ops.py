"""reshape, transpose, concat, split, slice: pure data movement, bit-exact."""
import torch

from gatref import Test

t = Test("shape_ops")
T = 3
x = torch.randn(T, 4, 6)
y = torch.randn(T, 4, 2)
ir = """module shp max_T 8
input "x" : f32[T, 4, 6]
input "y" : f32[T, 4, 2]
output "r" : f32[T, 2, 12]
output "tr" : f32[6, T, 4]
output "cat" : f32[T, 4, 8]
output "s0" : f32[T, 1, 6]
output "s1" : f32[T, 3, 6]
output "sl" : f32[T, 4, 3]
body {
  %0 = input {name = "x"} : f32[T, 4, 6]
  %1 = input {name = "y"} : f32[T, 4, 2]
  %2 = reshape %0 : f32[T, 2, 12]
  output %2 {name = "r"}
  %3 = transpose %0 {perm = [2, 0, 1]} : f32[6, T, 4]
  output %3 {name = "tr"}
  %4 = concat %0, %1 {axis = 2} : f32[T, 4, 8]
  output %4 {name = "cat"}
  %5, %6 = split %0 {axis = 1, sizes = [1, 3]} : f32[T, 1, 6], f32[T, 3, 6]
  output %5 {name = "s0"}
  output %6 {name = "s1"}
  %7 = slice %0 {axis = 2, start = 2, stop = 5} : f32[T, 4, 3]
  output %7 {name = "sl"}
}
"""
out = t.run(ir, {}, {"x": x, "y": y})
xd, yd = x.double(), y.double()
e = dict(atol=0, rtol=0)
t.check("reshape", out["r"], xd.reshape(T, 2, 12), **e)
t.check("transpose [2, 0, 1]", out["tr"], xd.permute(2, 0, 1), **e)
t.check("concat axis 2", out["cat"], torch.cat([xd, yd], 2), **e)
t.check("split part 0", out["s0"], xd[:, :1], **e)
t.check("split part 1", out["s1"], xd[:, 1:], **e)
t.check("slice 2:5", out["sl"], xd[:, :, 2:5], **e)
t.finish()
