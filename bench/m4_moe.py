#!/usr/bin/env python3
"""PyTorch counterpart of bench/m4_moe.gat (benchmark model M4): M1's gated
attention with a top-2-of-8 SwiGLU MoE FFN (hidden 704, softmax router,
renormalised) and GateSkip gates g = sigmoid(W x^ + b) on both branches; the
MoE branch is skipped for tokens with mean(g) < TAU (docs/layers.md,
"Mixture-of-experts FFN" and "Skips and residual gates").
Written from the math (dense experts weighted by the routing), with the .gat
file's parameter names, so it loads the same safetensors weights.

Attention keeps a KV cache (rows appended at absolute positions, RoPE at the
absolute position), so prefill and decode use the same forward.

  /usr/bin/python3 bench/m4_moe.py --gattnc build/gattnc --check [--T 16] [--compiled]
      makes `gattnc init` weights (plus noise), runs `gattnc run --interp` (prefill and
      --step 1 decode) on random tokens and prints the agreement with this
      model (float64; float32 prefill + decode);
  /usr/bin/python3 bench/m4_moe.py --weights W.safetensors --bench
      times float32 prefill of T = 512 and 128 decode steps."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import refmodels as rm  # noqa: E402

VOCAB, D, N_LAYERS, HEADS, HEAD_DIM, HIDDEN, ROPE_BASE = 4096, 512, 4, 8, 64, 704, 10000.0
EXPERTS, TOP_K, TAU = 8, 2, 0.5


class Gate(nn.Module):
    """GateSkip vector gate: sigmoid(W x^ + b)."""

    def __init__(self):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.zeros(D, D)), nn.Parameter(torch.zeros(D))

    def forward(self, x):
        return torch.sigmoid(x @ self.weight.T + self.bias)


class MoE(nn.Module):
    """Dense reference: every expert on every token, weighted by the routing."""

    def __init__(self):
        super().__init__()
        self.gate = nn.Linear(D, EXPERTS, bias=False)
        self.experts = nn.ModuleList([rm.MLP(D, HIDDEN) for _ in range(EXPERTS)])

    def forward(self, x):
        p = torch.softmax(self.gate(x), -1)
        w, idx = torch.topk(p, TOP_K, -1)
        w = w / w.sum(-1, keepdim=True)
        comb = torch.zeros_like(p).scatter(1, idx, w)
        return sum(comb[:, e:e + 1] * ex(x) for e, ex in enumerate(self.experts))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm = rm.RMSNorm(D)
        self.self_attn, self.attn_gate = rm.GatedAttention(D, HEADS, HEAD_DIM, ROPE_BASE), Gate()
        self.post_attention_layernorm, self.mlp, self.mlp_gate = rm.RMSNorm(D), MoE(), Gate()


class M4(nn.Module):
    """state_dict keys: model.embed_tokens.weight, model.layers.{i}.{input_layernorm,
    self_attn.{q,k,v,g,o}_proj, attn_gate.{weight,bias}, post_attention_layernorm,
    mlp.gate, mlp.experts.{e}.{gate,up,down}_proj, mlp_gate.{weight,bias}},
    model.norm.weight, lm_head.weight."""

    def __init__(self):
        super().__init__()
        self.model = rm.Backbone("embed_tokens", [Block() for _ in range(N_LAYERS)], VOCAB, D)
        self.lm_head = nn.Linear(D, VOCAB, bias=False)

    def init_cache(self):
        return [blk.self_attn.init_cache(self.lm_head.weight.dtype) for blk in self.model.layers]

    def forward(self, tokens, cache=None):
        cache = cache or self.init_cache()
        x = self.model.embed(tokens)
        new = []
        for blk, c in zip(self.model.layers, cache):
            h = blk.input_layernorm(x)
            a, c = blk.self_attn(h, c)
            x = x + blk.attn_gate(h) * a
            h2 = blk.post_attention_layernorm(x)
            g = blk.mlp_gate(h2)
            x = torch.where((g.mean(-1) < TAU)[:, None], x, x + g * blk.mlp(h2))
            new.append(c)
        return self.lm_head(self.model.norm(x)), new


def load(path, dtype):
    return rm.load_model(M4(), path, dtype, "M4")


def spread_skip_gates(w):
    """MoE-branch gates whose token-dependent logit 0.1 * v.x^ spreads mean(g)
    around TAU, so the check has skipped and computed tokens in every layer."""
    gg = torch.Generator().manual_seed(2)
    for i in range(N_LAYERS):
        v = torch.randn(D, generator=gg, dtype=torch.float64)
        w[f"model.layers.{i}.mlp_gate.weight"] = 0.1 * v[None, :].expand(D, D).clone()
        w[f"model.layers.{i}.mlp_gate.bias"] = torch.zeros(D, dtype=torch.float64)


def check(args):
    return rm.lm_check(args, load, "M4", "m4_moe", "m4", VOCAB, chunked=False, tweak=spread_skip_gates)


def bench(args):
    return rm.lm_bench(args, load, "M4", VOCAB, chunked=False)


if __name__ == "__main__":
    sys.exit(rm.cli(check, bench, "/tmp/m4_moe"))
