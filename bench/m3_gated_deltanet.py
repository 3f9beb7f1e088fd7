#!/usr/bin/env python3
"""PyTorch counterpart of bench/m3_gated_deltanet.gat (benchmark model M3): a
4-layer Gated DeltaNet LM written from the math of
docs/layers.md, "Gated DeltaNet and DeltaNet" (no fla code),
with fla's GatedDeltaNetForCausalLM parameter names, so it loads the same
safetensors weights as gattnc.

Two forms of the recurrence, PyTorch's best for each phase:
  * "chunk": the WY / chunked form (prefill), chunks of 64 tokens;
  * "recurrent": token by token (decode, and the float64 reference).
Both carry a cache (conv windows + delta-rule state) across calls.

  /usr/bin/python3 bench/m3_gated_deltanet.py --gattnc build/gattnc --check [--T 16]
      makes `gattnc init` weights (plus noise), runs `gattnc run --interp` (prefill and
      --step 1 decode) on random tokens and prints the agreement with this
      model (float64 recurrent, float32 chunked, float32 decode);
  /usr/bin/python3 bench/m3_gated_deltanet.py --weights W.safetensors --bench
      times float32 chunked prefill of T = 512 and 128 decode steps."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import refmodels as rm  # noqa: E402

VOCAB, D, N_LAYERS, HEADS, HEAD_DIM, EXPAND_V, HIDDEN, CONV = 4096, 512, 4, 4, 128, 2, 1408, 4


class ShortConv(nn.Module):
    """Depthwise causal conv, weight [C, 1, W], silu; the cache holds the last W-1 inputs."""

    def __init__(self, c, w=CONV):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(c, 1, w))

    def forward(self, x, prev):  # x [T, C], prev [W-1, C]
        W = self.weight.shape[-1]
        xp = torch.cat([prev, x], 0)
        y = F.conv1d(xp.t()[None], self.weight, groups=x.shape[1])[0].t()
        return F.silu(y), xp[-(W - 1):]


def l2norm(x, eps=1e-6):
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps)


def delta_recurrent(q, k, v, beta, g, S):
    """q, k [T, H, K]; v [T, H, V]; beta, g [T, H]; S [H, K, V]. Returns o [T, H, V], S."""
    o = []
    for t in range(q.shape[0]):
        S = torch.exp(g[t])[:, None, None] * S
        u = beta[t][:, None] * (v[t] - torch.einsum("hk,hkv->hv", k[t], S))
        S = S + k[t][:, :, None] * u[:, None, :]
        o.append(torch.einsum("hk,hkv->hv", q[t], S))
    return torch.stack(o), S


def delta_chunk(q, k, v, beta, g, S, C=64):
    """The same recurrence in chunks of C tokens (WY form, as docs/optimizer.md,
    "Chunked scans" states it for the compiled kernel):
    b = cumsum g, Γ_ij = e^(b_i - b_j) (i >= j), T = (I + strict_tril(diag(β) K Kᵀ ⊙ Γ))⁻¹,
    U = T(V⊙β), W = T(K⊙β⊙e^b), V' = U - W S, O = (Q⊙e^b) S + (Q Kᵀ ⊙ Γ ⊙ tril) V',
    S <- e^(b_C) S + (K⊙e^(b_C - b))ᵀ V'."""
    outs = []
    for s in range(0, q.shape[0], C):
        qc, kc, vc = (z[s:s + C].transpose(0, 1) for z in (q, k, v))  # [H, c, *]
        bc, gc = beta[s:s + C].t(), g[s:s + C].t()  # [H, c]
        n = qc.shape[1]
        b = gc.cumsum(-1)
        diff = b[:, :, None] - b[:, None, :]
        lower = torch.ones(n, n, dtype=torch.bool).tril()
        gamma = torch.exp(diff.masked_fill(~lower, float("-inf")))
        A = (bc[:, :, None] * (kc @ kc.transpose(1, 2)) * gamma).tril(-1)
        eye = torch.eye(n, dtype=q.dtype).expand_as(A)
        rhs = torch.cat([vc * bc[..., None], kc * (bc * torch.exp(b))[..., None]], -1)
        sol = torch.linalg.solve_triangular(eye + A, rhs, upper=False, unitriangular=True)
        U, Wm = sol[..., :vc.shape[-1]], sol[..., vc.shape[-1]:]
        Vp = U - Wm @ S
        o = (qc * torch.exp(b)[..., None]) @ S + ((qc @ kc.transpose(1, 2)) * gamma) @ Vp
        bl = b[:, -1:]
        S = torch.exp(bl)[..., None] * S + (kc * torch.exp(bl - b)[..., None]).transpose(1, 2) @ Vp
        outs.append(o.transpose(0, 1))
    return torch.cat(outs, 0), S


class GatedDeltaNet(nn.Module):
    def __init__(self):
        super().__init__()
        H, K, V = HEADS, HEAD_DIM, HEAD_DIM * EXPAND_V
        self.H, self.K, self.V = H, K, V
        self.q_proj, self.k_proj = nn.Linear(D, H * K, bias=False), nn.Linear(D, H * K, bias=False)
        self.v_proj, self.g_proj = nn.Linear(D, H * V, bias=False), nn.Linear(D, H * V, bias=False)
        self.a_proj, self.b_proj = nn.Linear(D, H, bias=False), nn.Linear(D, H, bias=False)
        self.A_log, self.dt_bias = nn.Parameter(torch.zeros(H)), nn.Parameter(torch.zeros(H))
        self.q_conv1d, self.k_conv1d, self.v_conv1d = ShortConv(H * K), ShortConv(H * K), ShortConv(H * V)
        self.o_norm = rm.RMSNorm(V)
        self.o_proj = nn.Linear(H * V, D, bias=False)

    def init_cache(self, dtype):
        z = lambda c: torch.zeros(CONV - 1, c, dtype=dtype)  # noqa: E731
        return [z(self.H * self.K), z(self.H * self.K), z(self.H * self.V),
                torch.zeros(self.H, self.K, self.V, dtype=dtype)]

    def forward(self, x, cache, mode):
        T, H, K, V = x.shape[0], self.H, self.K, self.V
        q, cq = self.q_conv1d(self.q_proj(x), cache[0])
        k, ck = self.k_conv1d(self.k_proj(x), cache[1])
        v, cv = self.v_conv1d(self.v_proj(x), cache[2])
        q = l2norm(q.view(T, H, K)) * K ** -0.5
        k = l2norm(k.view(T, H, K))
        v = v.view(T, H, V)
        beta = torch.sigmoid(self.b_proj(x))
        g = -torch.exp(self.A_log) * F.softplus(self.a_proj(x) + self.dt_bias)
        rule = delta_chunk if mode == "chunk" else delta_recurrent
        o, S = rule(q, k, v, beta, g, cache[3])
        o = self.o_norm(o) * F.silu(self.g_proj(x).view(T, H, V))
        return self.o_proj(o.reshape(T, H * V)), [cq, ck, cv, S]


class M3(rm.PreNormLM):
    """state_dict keys: model.embeddings.weight, model.layers.{i}.{attn_norm,attn.*,mlp_norm,mlp.*},
    model.norm.weight, lm_head.weight (fla GatedDeltaNetForCausalLM)."""

    def __init__(self):
        super().__init__([GatedDeltaNet() for _ in range(N_LAYERS)], VOCAB, D, HIDDEN)


def load(path, dtype):
    return rm.load_model(M3(), path, dtype, "M3")


def check(args):
    return rm.lm_check(args, load, "M3", "m3_gated_deltanet", "m3", VOCAB, chunked=True)


def bench(args):
    return rm.lm_bench(args, load, "M3", VOCAB, chunked=True)


if __name__ == "__main__":
    sys.exit(rm.cli(check, bench, "/tmp/m3_gated_deltanet"))
