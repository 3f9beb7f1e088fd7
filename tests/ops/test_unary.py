"""Unary elementwise functions (IR_OP_UNARY) vs PyTorch float64 definitions."""
import math

import torch
import torch.nn.functional as F

from gatref import Test

t = Test("unary")
T, D = 5, 24
x = torch.randn(T, D) * 4
x[0, :8] = torch.tensor([-80.0, -30.0, -20.5, -1e-3, 0.0, 1e-3, 20.5, 80.0])
pos = x.abs() + 0.05  # for log / sqrt / rsqrt

FNS = {
    "neg": lambda v: -v,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt,
    "abs": torch.abs,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "logsigmoid": F.logsigmoid,
    "silu": F.silu,
    "relu": F.relu,
    "gelu": lambda v: 0.5 * v * (1 + torch.erf(v / math.sqrt(2))),
    "gelu_tanh": lambda v: 0.5 * v * (1 + torch.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))),
    "softplus": lambda v: torch.where(v > 20, v, torch.log1p(torch.exp(v))),
    "not": lambda v: (v == 0).to(torch.float64),
}
POSITIVE = {"log", "sqrt", "rsqrt"}

lines = ["module unary max_T 16", 'input "x" : f32[T, %d]' % D, 'input "p" : f32[T, %d]' % D]
lines += ['output "%s" : f32[T, %d]' % (fn, D) for fn in FNS]
lines += ["body {", '  %%0 = input {name = "x"} : f32[T, %d]' % D, '  %%1 = input {name = "p"} : f32[T, %d]' % D]
for i, fn in enumerate(FNS):
    src = "%1" if fn in POSITIVE else "%0"
    lines.append('  %%%d = unary %s {fn = "%s"} : f32[T, %d]' % (i + 2, src, fn, D))
    lines.append('  output %%%d {name = "%s"}' % (i + 2, fn))
lines.append("}")
out = t.run("\n".join(lines) + "\n", {}, {"x": x, "p": pos})
xd, pd = x.double(), pos.double()
for fn, ref in FNS.items():
    want = ref(pd if fn in POSITIVE else xd)
    # exp(80) overflows f32: the f32 result is inf, which the reference says too after rounding.
    want = want.to(torch.float32).to(torch.float64)
    t.check(fn, out[fn], want, atol=1e-6, rtol=2e-7)
t.finish()
