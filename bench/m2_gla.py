#!/usr/bin/env python3
"""PyTorch counterpart of bench/m2_gla.gat (benchmark model M2): a 4-layer GLA
LM written from the math of docs/layers.md, "GLA: gated linear attention"
(no fla code), with fla's
GLAForCausalLM parameter names, so it loads the same safetensors weights as
gattnc.

Two forms of the recurrence S_t = diag(exp gk_t) S_{t-1} + k_t v_t^T,
o_t = S_t^T (q_t K^-1/2), PyTorch's best form for each phase:
  * "chunk": chunks of 64 tokens; with b = cumsum of gk inside the chunk,
      o_i = (q_i * e^{b_i}) S_0 + sum_{j <= i} (sum_d q_id k_jd e^{b_id - b_jd}) v_j
      S  <- e^{b_C} * S_0 + sum_j (k_j * e^{b_C - b_j}) v_j^T
    (the decay differences are masked before exp, so nothing overflows);
  * "recurrent": token by token (decode, and the float64 reference).
Both carry the state across calls.

  /usr/bin/python3 bench/m2_gla.py --gattnc build/gattnc --check [--T 16] [--compiled]
  /usr/bin/python3 bench/m2_gla.py --weights W.safetensors --bench"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import refmodels as rm  # noqa: E402

VOCAB, D, N_LAYERS, HEADS, EXPAND_K, EXPAND_V, GATE_RANK, HIDDEN = 4096, 512, 4, 4, 0.5, 1, 16, 1408
GLA_NORM_EPS = 1e-6  # fla passes config.norm_eps to the layer's g_norm_swish_gate (m2_gla.gat: norm_eps: eps)


def gla_recurrent(q, k, v, gk, S):
    """q, k, gk [T, H, K]; v [T, H, V]; S [H, K, V] (q already scaled)."""
    o = []
    for t in range(q.shape[0]):
        S = torch.exp(gk[t])[:, :, None] * S + k[t][:, :, None] * v[t][:, None, :]
        o.append(torch.einsum("hk,hkv->hv", q[t], S))
    return torch.stack(o), S


def gla_chunk(q, k, v, gk, S, C=64):
    outs = []
    for s in range(0, q.shape[0], C):
        qc, kc, vc, gc = (z[s:s + C].transpose(0, 1) for z in (q, k, v, gk))  # [H, c, *]
        n = qc.shape[1]
        b = gc.cumsum(1)  # [H, c, K]
        diff = b[:, :, None, :] - b[:, None, :, :]  # [H, i, j, K]
        lower = torch.ones(n, n, dtype=torch.bool).tril()[None, :, :, None]
        decay = torch.exp(diff.masked_fill(~lower, float("-inf")))
        A = (qc[:, :, None, :] * kc[:, None, :, :] * decay).sum(-1)  # [H, i, j]
        o = (qc * torch.exp(b)) @ S + A @ vc
        bl = b[:, -1:, :]
        S = torch.exp(bl).transpose(1, 2) * S + (kc * torch.exp(bl - b)).transpose(1, 2) @ vc
        outs.append(o.transpose(0, 1))
    return torch.cat(outs, 0), S


class GatedLinearAttention(nn.Module):
    def __init__(self):
        super().__init__()
        H = HEADS
        self.H, self.K, self.V = H, int(D * EXPAND_K) // H, int(D * EXPAND_V) // H
        self.q_proj, self.k_proj = nn.Linear(D, H * self.K, bias=False), nn.Linear(D, H * self.K, bias=False)
        self.v_proj, self.g_proj = nn.Linear(D, H * self.V, bias=False), nn.Linear(D, H * self.V, bias=False)
        self.gk_proj = nn.Sequential(nn.Linear(D, GATE_RANK, bias=False), nn.Linear(GATE_RANK, H * self.K))
        self.g_norm_swish_gate = rm.RMSNorm(self.V, GLA_NORM_EPS)
        self.o_proj = nn.Linear(H * self.V, D, bias=False)

    def init_cache(self, dtype):
        return torch.zeros(self.H, self.K, self.V, dtype=dtype)

    def forward(self, x, S, mode):
        T, H, K, V = x.shape[0], self.H, self.K, self.V
        q = self.q_proj(x).view(T, H, K) * K ** -0.5
        k = self.k_proj(x).view(T, H, K)
        v = self.v_proj(x).view(T, H, V)
        gk = (F.logsigmoid(self.gk_proj(x)) / 16).view(T, H, K)
        o, S = (gla_chunk if mode == "chunk" else gla_recurrent)(q, k, v, gk, S)
        o = self.g_norm_swish_gate(o) * F.silu(self.g_proj(x).view(T, H, V))
        return self.o_proj(o.reshape(T, H * V)), S


class M2(rm.PreNormLM):
    """state_dict keys: model.embeddings.weight, model.layers.{i}.{attn_norm,attn.*,mlp_norm,mlp.*},
    model.norm.weight, lm_head.weight (fla GLAForCausalLM)."""

    def __init__(self):
        super().__init__([GatedLinearAttention() for _ in range(N_LAYERS)], VOCAB, D, HIDDEN)


def load(path, dtype):
    return rm.load_model(M2(), path, dtype, "M2")


def check(args):
    return rm.lm_check(args, load, "M2", "m2_gla", "m2", VOCAB, chunked=True)


def bench(args):
    return rm.lm_bench(args, load, "M2", VOCAB, chunked=True)


if __name__ == "__main__":
    sys.exit(rm.cli(check, bench, "/tmp/m2_gla"))
