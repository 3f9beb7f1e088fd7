#!/usr/bin/env python3
"""PyTorch counterpart of bench/m2_gla.gat (benchmark model M2): a 4-layer GLA
LM written from the math of layers.md §2 (no fla code), with fla's
GLAForCausalLM parameter names, so it loads the same safetensors weights as
gattnc.

Two forms of the recurrence S_t = diag(exp gk_t) S_{t-1} + k_t v_t^T,
o_t = S_t^T (q_t K^-1/2), as the benchmark plan asks of PyTorch's side:
  * "chunk": chunks of 64 tokens; with b = cumsum of gk inside the chunk,
      o_i = (q_i * e^{b_i}) S_0 + sum_{j <= i} (sum_d q_id k_jd e^{b_id - b_jd}) v_j
      S  <- e^{b_C} * S_0 + sum_j (k_j * e^{b_C - b_j}) v_j^T
    (the decay differences are masked before exp, so nothing overflows);
  * "recurrent": token by token (decode, and the float64 reference).
Both carry the state across calls.

  /usr/bin/python3 bench/m2_gla.py --gattnc build/gattnc --check [--T 16] [--compiled]
  /usr/bin/python3 bench/m2_gla.py --weights W.safetensors --bench"""
import argparse
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from e2e_util import perturb, read_st, write_st  # noqa: E402

VOCAB, D, N_LAYERS, HEADS, EXPAND_K, EXPAND_V, GATE_RANK, HIDDEN = 4096, 512, 4, 4, 0.5, 1, 16, 1408
EPS, GLA_NORM_EPS = 1e-6, 1e-5


class RMSNorm(nn.Module):
    def __init__(self, n, eps=EPS):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.weight


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
        self.g_norm_swish_gate = RMSNorm(self.V, GLA_NORM_EPS)
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


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(D, HIDDEN, bias=False), nn.Linear(D, HIDDEN, bias=False)
        self.down_proj = nn.Linear(HIDDEN, D, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn_norm, self.attn, self.mlp_norm, self.mlp = RMSNorm(D), GatedLinearAttention(), RMSNorm(D), MLP()


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = nn.Embedding(VOCAB, D)
        self.layers = nn.ModuleList([Block() for _ in range(N_LAYERS)])
        self.norm = RMSNorm(D)


class M2(nn.Module):
    """state_dict keys: model.embeddings.weight, model.layers.{i}.{attn_norm,attn.*,mlp_norm,mlp.*},
    model.norm.weight, lm_head.weight (fla GLAForCausalLM)."""

    def __init__(self):
        super().__init__()
        self.model = Inner()
        self.lm_head = nn.Linear(D, VOCAB, bias=False)

    def init_cache(self):
        return [blk.attn.init_cache(self.lm_head.weight.dtype) for blk in self.model.layers]

    def forward(self, tokens, cache=None, mode="chunk"):
        cache = cache or self.init_cache()
        x = self.model.embeddings(tokens.long())
        new = []
        for blk, c in zip(self.model.layers, cache):
            a, c = blk.attn(blk.attn_norm(x), c, mode)
            x = x + a
            x = x + blk.mlp(blk.mlp_norm(x))
            new.append(c)
        return self.lm_head(self.model.norm(x)), new


def load(path, dtype):
    m = M2().to(dtype)
    w = read_st(path)
    diff = set(m.state_dict()) ^ set(w)
    if diff:
        sys.exit(f"weights do not match M2: {sorted(diff)[:8]}")
    m.load_state_dict({k: v.to(dtype) for k, v in w.items()})
    return m.eval()


def gattnc(exe, *argv):
    p = subprocess.run([exe, *argv], capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"gattnc {' '.join(argv)} failed:\n{p.stdout}{p.stderr}")


def rel(got, want):
    return ((got.double() - want.double()).abs().max() / want.double().abs().max()).item()


def check(args):
    os.makedirs(args.workdir, exist_ok=True)
    src = os.path.join(HERE, "m2_gla.gat")
    wpath = args.weights or os.path.join(args.workdir, "m2.weights.safetensors")
    if not args.weights:
        gattnc(args.gattnc, "init", src, "-o", wpath, "--seed", "3")
        # noise on every weight, so the norm weights (init 1) and gk bias are checked too
        w = perturb({k: v.double() for k, v in read_st(wpath).items()}, seed=1, scale=0.02)
        write_st(wpath, {k: v.float() for k, v in w.items()})
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (args.T,), generator=g, dtype=torch.int32)
    ipath = os.path.join(args.workdir, "m2.in.safetensors")
    write_st(ipath, {"tokens": tokens})
    outs = {}
    for label, extra in [("interp prefill", ["--interp"]), ("interp decode", ["--interp", "--step", "1"])] + (
            [("C prefill", []), ("C decode", ["--step", "1"])] if args.compiled else []):
        opath = os.path.join(args.workdir, f"m2.{label.replace(' ', '_')}.safetensors")
        gattnc(args.gattnc, "run", src, "--weights", wpath, "--inputs", ipath, "-o", opath, *extra)
        outs[label] = read_st(opath)["logits"]
    with torch.no_grad():
        m64 = load(wpath, torch.float64)
        ref, _ = m64(tokens, mode="recurrent")
        chunk64, _ = m64(tokens, mode="chunk")
        m32 = load(wpath, torch.float32)
        chunk32, cache = m32(tokens[:args.T // 2], mode="chunk")  # prefill half, then decode the rest
        steps = [chunk32]
        for t in range(args.T // 2, args.T):
            y, cache = m32(tokens[t:t + 1], cache, mode="recurrent")
            steps.append(y)
        mixed32 = torch.cat(steps, 0)
    print(f"M2, T = {args.T}, logits [{args.T}, {VOCAB}]; metric max|a - b| / max|b|, b = PyTorch float64 recurrent")
    print(f"  PyTorch float64 chunked vs recurrent: {rel(chunk64, ref):.3g}")
    print(f"  PyTorch float32 chunked prefill + recurrent decode: {rel(mixed32, ref):.3g}")
    worst = 0.0
    for label, y in outs.items():
        r = rel(y, ref)
        worst = max(worst, r)
        print(f"  gattnc {label}: {r:.3g}   (vs PyTorch float32: {rel(y, mixed32):.3g})")
    ok = worst <= 1e-4
    print(("ok" if ok else "FAIL") + f": gattnc agrees with PyTorch within {worst:.3g} (tolerance 1e-4)")
    return 0 if ok else 1


def bench(args):
    torch.set_num_threads(args.threads)
    m = load(args.weights, torch.float32)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (512 + 128,), generator=g, dtype=torch.int32)
    with torch.inference_mode():
        pre, dec = [], []
        for _ in range(args.reps + 1):
            t0 = time.perf_counter()
            _, cache = m(tokens[:512], mode="chunk")
            t1 = time.perf_counter()
            for t in range(512, 640):
                _, cache = m(tokens[t:t + 1], cache, mode="recurrent")
            t2 = time.perf_counter()
            pre.append(t1 - t0)
            dec.append((t2 - t1) / 128)
    pre, dec = sorted(pre[1:]), sorted(dec[1:])
    print(f"PyTorch eager M2 ({args.threads} threads): prefill T=512 median {pre[len(pre) // 2] * 1e3:.1f} ms "
          f"[{pre[0] * 1e3:.1f}, {pre[-1] * 1e3:.1f}]; decode median {dec[len(dec) // 2] * 1e3:.2f} ms/token "
          f"[{dec[0] * 1e3:.2f}, {dec[-1] * 1e3:.2f}]")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gattnc", help="path of the gattnc binary (for --check)")
    ap.add_argument("--weights", help="safetensors weights (default for --check: fresh `gattnc init` weights)")
    ap.add_argument("--workdir", default="/tmp/m2_gla")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--compiled", action="store_true", help="(--check) also compare the compiled C")
    ap.add_argument("--T", type=int, default=16)
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    if args.check:
        if not args.gattnc:
            ap.error("--check needs --gattnc")
        return check(args)
    if args.bench:
        if not args.weights:
            ap.error("--bench needs --weights")
        return bench(args)
    ap.error("give --check or --bench")


if __name__ == "__main__":
    sys.exit(main())
