#!/usr/bin/env python3
"""PyTorch counterpart of bench/m4_moe.gat (benchmark model M4): M1's gated
attention with a top-2-of-8 SwiGLU MoE FFN (hidden 704, softmax router,
renormalised) and GateSkip gates g = sigmoid(W x^ + b) on both branches; the
MoE branch is skipped for tokens with mean(g) < TAU (layers.md §10, §12).
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

VOCAB, D, N_LAYERS, HEADS, HEAD_DIM, HIDDEN, EPS, ROPE_BASE = 4096, 512, 4, 8, 64, 704, 1e-6, 10000.0
EXPERTS, TOP_K, TAU = 8, 2, 0.5


class RMSNorm(nn.Module):
    def __init__(self, n, eps=EPS):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, pos, base=ROPE_BASE):
    """Rotate-half RoPE; x [T, H, d], pos [T] absolute positions."""
    d = x.shape[-1]
    half = d // 2
    inv = base ** (-torch.arange(half, dtype=torch.float64) * 2 / d)
    ang = (pos.double()[:, None] * inv[None, :]).to(x.dtype)
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], -1)


class GatedAttention(nn.Module):
    """Y = softmax(Q K^T d^-1/2 + causal) V;  o_proj(Y * sigmoid(g_proj x))."""

    def __init__(self):
        super().__init__()
        HD = HEADS * HEAD_DIM
        self.q_proj, self.k_proj = nn.Linear(D, HD, bias=False), nn.Linear(D, HD, bias=False)
        self.v_proj, self.g_proj = nn.Linear(D, HD, bias=False), nn.Linear(D, HD, bias=False)
        self.o_proj = nn.Linear(HD, D, bias=False)

    def forward(self, x, cache):
        T = x.shape[0]
        kc, vc = cache
        pos = torch.arange(kc.shape[0], kc.shape[0] + T)
        q = rope(self.q_proj(x).view(T, HEADS, HEAD_DIM), pos)
        k = rope(self.k_proj(x).view(T, HEADS, HEAD_DIM), pos)
        v = self.v_proj(x).view(T, HEADS, HEAD_DIM)
        kc, vc = torch.cat([kc, k], 0), torch.cat([vc, v], 0)
        S = kc.shape[0]
        logits = torch.einsum("thd,shd->hts", q, kc) * HEAD_DIM ** -0.5
        mask = torch.arange(S)[None, :] <= pos[:, None]
        att = torch.softmax(logits.masked_fill(~mask, float("-inf")), -1)
        o = torch.einsum("hts,shd->thd", att, vc)
        o = o * torch.sigmoid(self.g_proj(x).view(T, HEADS, HEAD_DIM))
        return self.o_proj(o.reshape(T, HEADS * HEAD_DIM)), (kc, vc)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(D, HIDDEN, bias=False), nn.Linear(D, HIDDEN, bias=False)
        self.down_proj = nn.Linear(HIDDEN, D, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


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
        self.experts = nn.ModuleList([MLP() for _ in range(EXPERTS)])

    def forward(self, x):
        p = torch.softmax(self.gate(x), -1)
        w, idx = torch.topk(p, TOP_K, -1)
        w = w / w.sum(-1, keepdim=True)
        comb = torch.zeros_like(p).scatter(1, idx, w)
        return sum(comb[:, e:e + 1] * ex(x) for e, ex in enumerate(self.experts))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm, self.self_attn, self.attn_gate = RMSNorm(D), GatedAttention(), Gate()
        self.post_attention_layernorm, self.mlp, self.mlp_gate = RMSNorm(D), MoE(), Gate()


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, D)
        self.layers = nn.ModuleList([Block() for _ in range(N_LAYERS)])
        self.norm = RMSNorm(D)


class M4(nn.Module):
    """state_dict keys: model.embed_tokens.weight, model.layers.{i}.{input_layernorm,
    self_attn.{q,k,v,g,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj},
    model.norm.weight, lm_head.weight."""

    def __init__(self):
        super().__init__()
        self.model = Inner()
        self.lm_head = nn.Linear(D, VOCAB, bias=False)

    def init_cache(self):
        dt = self.lm_head.weight.dtype
        z = torch.zeros(0, HEADS, HEAD_DIM, dtype=dt)
        return [(z, z) for _ in self.model.layers]

    def forward(self, tokens, cache=None):
        cache = cache or self.init_cache()
        x = self.model.embed_tokens(tokens.long())
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
    m = M4().to(dtype)
    w = read_st(path)
    missing = set(m.state_dict()) ^ set(w)
    if missing:
        sys.exit(f"weights do not match M4: {sorted(missing)[:8]}")
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
    src = os.path.join(HERE, "m4_moe.gat")
    wpath = args.weights or os.path.join(args.workdir, "m4.weights.safetensors")
    if not args.weights:
        gattnc(args.gattnc, "init", src, "-o", wpath, "--seed", "3")
        # noise on every weight, so the norm weights (init 1) are checked too
        w = perturb({k: v.double() for k, v in read_st(wpath).items()}, seed=1, scale=0.02)
        # MoE-branch gates whose token-dependent logit 0.1 * v.x^ spreads mean(g)
        # around TAU, so the check has skipped and computed tokens in every layer
        gg = torch.Generator().manual_seed(2)
        for i in range(N_LAYERS):
            v = torch.randn(D, generator=gg, dtype=torch.float64)
            w[f"model.layers.{i}.mlp_gate.weight"] = 0.1 * v[None, :].expand(D, D).clone()
            w[f"model.layers.{i}.mlp_gate.bias"] = torch.zeros(D, dtype=torch.float64)
        write_st(wpath, {k: v.float() for k, v in w.items()})
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (args.T,), generator=g, dtype=torch.int32)
    ipath = os.path.join(args.workdir, "m4.in.safetensors")
    write_st(ipath, {"tokens": tokens})
    outs = {}
    for label, extra in [("interp prefill", ["--interp"]), ("interp decode", ["--interp", "--step", "1"])] + (
            [("C prefill", []), ("C decode", ["--step", "1"])] if args.compiled else []):
        opath = os.path.join(args.workdir, f"m4.{label.replace(' ', '_')}.safetensors")
        gattnc(args.gattnc, "run", src, "--weights", wpath, "--inputs", ipath, "-o", opath, *extra)
        outs[label] = read_st(opath)["logits"]
    with torch.no_grad():
        ref, _ = load(wpath, torch.float64)(tokens)
        m32 = load(wpath, torch.float32)
        pre32, cache = m32(tokens[:args.T // 2])  # prefill half, then decode the rest
        steps = [pre32]
        for t in range(args.T // 2, args.T):
            y, cache = m32(tokens[t:t + 1], cache)
            steps.append(y)
        mixed32 = torch.cat(steps, 0)
    print(f"M4, T = {args.T}, logits [{args.T}, {VOCAB}]; metric max|a - b| / max|b|, b = PyTorch float64")
    print(f"  PyTorch float32 prefill + decode: {rel(mixed32, ref):.3g}")
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
            _, cache = m(tokens[:512])
            t1 = time.perf_counter()
            for t in range(512, 640):
                _, cache = m(tokens[t:t + 1], cache)
            t2 = time.perf_counter()
            pre.append(t1 - t0)
            dec.append((t2 - t1) / 128)
    pre, dec = sorted(pre[1:]), sorted(dec[1:])
    print(f"PyTorch eager M4 ({args.threads} threads): prefill T=512 median {pre[len(pre) // 2] * 1e3:.1f} ms "
          f"[{pre[0] * 1e3:.1f}, {pre[-1] * 1e3:.1f}]; decode median {dec[len(dec) // 2] * 1e3:.2f} ms/token "
          f"[{dec[0] * 1e3:.2f}, {dec[-1] * 1e3:.2f}]")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gattnc", help="path of the gattnc binary (for --check)")
    ap.add_argument("--weights", help="safetensors weights (default for --check: fresh `gattnc init` weights)")
    ap.add_argument("--workdir", default="/tmp/m4_moe")
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
