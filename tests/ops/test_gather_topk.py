"""gather (embedding lookup; ids out of range are a runtime error naming the
op's location) and topk (descending, ties to the lower index)."""
import torch

from gatref import Test

t = Test("gather_topk")
T, V, D = 6, 10, 4
table = torch.randn(V, D)
ids = torch.randint(0, V, (T,), dtype=torch.int32)
ids[0] = 0
ids[1] = V - 1
x = torch.randn(T, 8)
x[0] = torch.tensor([1.0, 3.0, 3.0, -1.0, 3.0, 0.0, 2.0, 2.0])  # ties
ir = """module gt max_T 8
param "emb" : f32[10, 4] init normal(0.0, 1.0)
input "ids" : i32[T]
input "x" : f32[T, 8]
output "e" : f32[T, 4]
output "v" : f32[T, 3]
output "i" : i32[T, 3]
body {
  %0 = input {name = "ids"} : i32[T]
  %1 = param {name = "emb"} : f32[10, 4]
  %2 = gather %1, %0 : f32[T, 4] loc("model.gat":12:5)
  output %2 {name = "e"}
  %3 = input {name = "x"} : f32[T, 8]
  %4, %5 = topk %3 {k = 3} : f32[T, 3], i32[T, 3]
  output %4 {name = "v"}
  output %5 {name = "i"}
}
"""
out = t.run(ir, {"emb": table}, {"ids": ids, "x": x})
t.check("gather rows", out["e"], table.double()[ids.long()], atol=0, rtol=0)
# Reference top-k: stable sort by descending value keeps the lower index first on ties.
order = torch.sort(-x.double(), dim=1, stable=True).indices[:, :3]
t.check("topk values", out["v"], torch.gather(x.double(), 1, order), atol=0, rtol=0)
t.check("topk indices", out["i"], order)
bad = ids.clone()
bad[3] = V
t.run(ir, {"emb": table}, {"ids": bad, "x": x}, tag="bad_id", expect_fail="model.gat:12:5")
bad[3] = -1
t.run(ir, {"emb": table}, {"ids": bad, "x": x}, tag="neg_id", expect_fail="out of range")
t.finish()
