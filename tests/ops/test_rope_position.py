"""rope (rotate-half, partial rotary dims, positions pos0 + t) and position,
in one call and token by token (positions must continue across calls)."""
import torch

from gatref import Test

t = Test("rope_position")
T, H, D, DIMS, BASE = 7, 2, 8, 6, 500.0
x = torch.randn(T, H, D)
ir = """module rope max_T 32
input "x" : f32[T, 2, 8]
output "y" : f32[T, 2, 8]
output "pos" : i32[T]
body {
  %%0 = input {name = "x"} : f32[T, 2, 8]
  %%1 = rope %%0 {base = %r, dims = %d} : f32[T, 2, 8]
  output %%1 {name = "y"}
  %%2 = position : i32[T]
  output %%2 {name = "pos"}
}
""" % (BASE, DIMS)
xd = x.double()
half = DIMS // 2
inv = BASE ** (-2.0 * torch.arange(half, dtype=torch.float64) / DIMS)
ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]  # [T, half]
cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
x1, x2 = xd[..., :half], xd[..., half:DIMS]
want = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, xd[..., DIMS:]], -1)
for step in (None, 1, 3):
    out = t.run(ir, {}, {"x": x}, step=step, tag="step%s" % step)
    t.check("rope step=%s" % step, out["y"], want, atol=1e-6, rtol=1e-6)
    t.check("position step=%s" % step, out["pos"], torch.arange(T))
t.finish()
