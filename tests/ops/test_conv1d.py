"""conv1d: causal depthwise short convolution with a tail state, silu or no
activation, with and without bias; one call vs token by token vs chunks."""
import torch
import torch.nn.functional as F

from gatref import Test

t = Test("conv1d")
T, C, W = 9, 6, 4
x = torch.randn(T, C)
w = torch.randn(C, 1, W) / 2
b = torch.randn(C)
ir = """module conv max_T 32
param "conv.weight" : f32[6, 1, 4] init linear
param "conv.bias" : f32[6] init linear
input "x" : f32[T, 6]
output "y" : f32[T, 6]
output "z" : f32[T, 6]
state "conv.tail" : f32[3, 6] = 0.0
state "conv2.tail" : f32[3, 6] = 0.0
body {
  %0 = input {name = "x"} : f32[T, 6]
  %1 = param {name = "conv.weight"} : f32[6, 1, 4]
  %2 = param {name = "conv.bias"} : f32[6]
  %3 = conv1d %0, %1, %2 {act = "silu", state = 0} : f32[T, 6]
  output %3 {name = "y"}
  %4 = conv1d %0, %1 {act = "none", state = 1} : f32[T, 6]
  output %4 {name = "z"}
}
"""
xd, wd, bd = x.double(), w.double(), b.double()
# PyTorch Conv1d(C, C, W, groups=C, padding=W-1) truncated to the first T outputs is causal.
xin = xd.T[None]  # [1, C, T]
conv_b = F.conv1d(xin, wd, bd, padding=W - 1, groups=C)[0, :, :T].T
conv_n = F.conv1d(xin, wd, None, padding=W - 1, groups=C)[0, :, :T].T
for step in (None, 1, 2, 5):
    out = t.run(ir, {"conv.weight": w, "conv.bias": b}, {"x": x}, step=step, tag="step%s" % step)
    t.check("conv silu+bias step=%s" % step, out["y"], F.silu(conv_b), atol=1e-6, rtol=1e-6)
    t.check("conv none step=%s" % step, out["z"], conv_n, atol=1e-6, rtol=1e-6)
t.finish()
