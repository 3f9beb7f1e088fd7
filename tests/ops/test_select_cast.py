"""select (cond ? a : b, broadcast) and cast (f32 -> i32 truncates toward zero, i32 -> f32)."""
import torch

from gatref import Test

t = Test("select_cast")
T = 5
c = (torch.randn(T, 1) > 0).float()
a = torch.randn(T, 6) * 10
b = torch.randn(6)
i = torch.randint(-1000, 1000, (T, 6), dtype=torch.int32)
ir = """module sel max_T 8
input "c" : f32[T, 1]
input "a" : f32[T, 6]
input "b" : f32[6]
input "i" : i32[T, 6]
output "sel" : f32[T, 6]
output "toint" : i32[T, 6]
output "tofloat" : f32[T, 6]
body {
  %0 = input {name = "c"} : f32[T, 1]
  %1 = input {name = "a"} : f32[T, 6]
  %2 = input {name = "b"} : f32[6]
  %3 = input {name = "i"} : i32[T, 6]
  %4 = select %0, %1, %2 : f32[T, 6]
  output %4 {name = "sel"}
  %5 = cast %1 : i32[T, 6]
  output %5 {name = "toint"}
  %6 = cast %3 : f32[T, 6]
  output %6 {name = "tofloat"}
}
"""
out = t.run(ir, {}, {"c": c, "a": a, "b": b, "i": i})
t.check("select", out["sel"], torch.where(c.double() != 0, a.double(), b.double()), atol=0, rtol=0)
t.check("cast f32->i32 (trunc)", out["toint"], torch.trunc(a.double()).long())
t.check("cast i32->f32", out["tofloat"], i.double(), atol=0, rtol=0)
t.finish()
