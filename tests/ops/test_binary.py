"""Binary elementwise functions (IR_OP_BINARY) with numpy broadcasting, on f32
and i32, plus const operands, vs PyTorch float64 / int64 definitions."""
import torch

from gatref import Test

t = Test("binary")
T = 4
a = torch.randn(T, 3, 4) * 3
b = torch.randn(3, 1) * 3
b[0, 0] = float(a[0, 0, 0])  # equal values for eq/le/ge
ap = a.abs() + 0.1  # pow base
ia = torch.randint(-50, 50, (T, 4), dtype=torch.int32)
ib = torch.randint(1, 9, (4,), dtype=torch.int32) * torch.tensor([1, -1, 1, -1], dtype=torch.int32)

FNS = {
    "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
    "div": lambda x, y: x / y, "pow": torch.pow, "max": torch.maximum, "min": torch.minimum,
    "mod": torch.fmod, "lt": lambda x, y: (x < y).double(), "le": lambda x, y: (x <= y).double(),
    "gt": lambda x, y: (x > y).double(), "ge": lambda x, y: (x >= y).double(),
    "eq": lambda x, y: (x == y).double(), "ne": lambda x, y: (x != y).double(),
    "and": lambda x, y: ((x != 0) & (y != 0)).double(), "or": lambda x, y: ((x != 0) | (y != 0)).double(),
}
IFNS = {
    "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
    "div": lambda x, y: torch.div(x, y, rounding_mode="trunc"), "mod": torch.fmod,
    "max": torch.maximum, "min": torch.minimum, "lt": lambda x, y: (x < y).long(),
    "eq": lambda x, y: (x == y).long(), "and": lambda x, y: ((x != 0) & (y != 0)).long(),
}

L = ["module binary max_T 8",
     'input "a" : f32[T, 3, 4]', 'input "b" : f32[3, 1]', 'input "ap" : f32[T, 3, 4]',
     'input "ia" : i32[T, 4]', 'input "ib" : i32[4]']
L += ['output "%s" : f32[T, 3, 4]' % f for f in FNS]
L += ['output "i_%s" : i32[T, 4]' % f for f in IFNS]
L += ['output "half" : f32[T, 3, 4]']
L += ["body {",
      '  %0 = input {name = "a"} : f32[T, 3, 4]', '  %1 = input {name = "b"} : f32[3, 1]',
      '  %2 = input {name = "ap"} : f32[T, 3, 4]', '  %3 = input {name = "ia"} : i32[T, 4]',
      '  %4 = input {name = "ib"} : i32[4]']
n = 5
for f in FNS:
    lhs = "%2" if f == "pow" else "%0"
    L.append('  %%%d = binary %s, %%1 {fn = "%s"} : f32[T, 3, 4]' % (n, lhs, f))
    L.append('  output %%%d {name = "%s"}' % (n, f))
    n += 1
for f in IFNS:
    L.append('  %%%d = binary %%3, %%4 {fn = "%s"} : i32[T, 4]' % (n, f))
    L.append('  output %%%d {name = "i_%s"}' % (n, f))
    n += 1
L.append("  %%%d = const {value = 0.5} : f32[]" % n)
L.append('  %%%d = binary %%0, %%%d {fn = "mul"} : f32[T, 3, 4]' % (n + 1, n))
L.append('  output %%%d {name = "half"}' % (n + 1))
L.append("}")
out = t.run("\n".join(L) + "\n", {}, {"a": a, "b": b, "ap": ap, "ia": ia, "ib": ib})
ad, bd, apd = a.double(), b.double(), ap.double()
for f, ref in FNS.items():
    want = ref(apd if f == "pow" else ad, bd).to(torch.float32).double()
    t.check(f, out[f], want, atol=0, rtol=0)  # one rounding of the exact result: bit-exact
for f, ref in IFNS.items():
    t.check("i32 " + f, out["i_" + f], ref(ia.long(), ib.long()))
t.check("times const 0.5", out["half"], ad * 0.5, atol=0, rtol=0)
t.finish()
