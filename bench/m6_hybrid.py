#!/usr/bin/env python3
"""PyTorch counterpart of bench/m6_hybrid.gat (benchmark model M6): 8 layers
alternating Gated DeltaNet (even layers) and gated softmax attention (odd
layers), each followed by a SwiGLU MLP, written from the math of layers.md §1
and §3 (no fla or HF code). It loads the same safetensors weights as gattnc.

The Gated DeltaNet block, its two recurrence forms (chunked WY prefill and
token-by-token decode) and the MLP are M3's, imported from
bench/m3_gated_deltanet.py (same d 512, 4 heads x 128, expand_v 2, eps 1e-6).
The gated attention here: q, k rotated with rotate_half RoPE (base 10000) at
absolute positions, causal softmax with scale dk^-1/2 over a KV cache, output
times sigmoid(g_proj x), then o_proj.

  /usr/bin/python3 bench/m6_hybrid.py --gattnc build/gattnc --check [--T 16] [--compiled]
  /usr/bin/python3 bench/m6_hybrid.py --weights W.safetensors --bench"""
import argparse
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from e2e_util import perturb, read_st, write_st  # noqa: E402
from m3_gated_deltanet import D, HIDDEN, VOCAB, GatedDeltaNet, MLP, RMSNorm  # noqa: E402

assert (D, HIDDEN, VOCAB) == (512, 1408, 4096), "M6 shares M3's sizes"
N_LAYERS, ATT_HEADS, ATT_DIM, ROPE_BASE = 8, 8, 64, 10000.0


def rope(x, pos):
    """x [T, H, d], rotate_half, inv_freq_i = base^(-2i/d)."""
    half = x.shape[-1] // 2
    inv = ROPE_BASE ** (-2.0 * torch.arange(half, dtype=torch.float64) / x.shape[-1])
    ang = (pos.double()[:, None] * inv[None, :]).to(x.dtype)
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


class GatedAttention(nn.Module):
    def __init__(self):
        super().__init__()
        H, d = ATT_HEADS, ATT_DIM
        self.q_proj, self.k_proj = nn.Linear(D, H * d, bias=False), nn.Linear(D, H * d, bias=False)
        self.v_proj, self.g_proj = nn.Linear(D, H * d, bias=False), nn.Linear(D, H * d, bias=False)
        self.o_proj = nn.Linear(H * d, D, bias=False)

    def init_cache(self, dtype):
        z = torch.zeros(0, ATT_HEADS, ATT_DIM, dtype=dtype)
        return [z, z]

    def forward(self, x, cache, mode):
        T, H, d = x.shape[0], ATT_HEADS, ATT_DIM
        n0 = cache[0].shape[0]
        pos = torch.arange(n0, n0 + T)
        q = rope(self.q_proj(x).view(T, H, d), pos)
        K = torch.cat([cache[0], rope(self.k_proj(x).view(T, H, d), pos)], 0)
        V = torch.cat([cache[1], self.v_proj(x).view(T, H, d)], 0)
        s = torch.einsum("thd,shd->hts", q, K) * d ** -0.5
        future = torch.arange(n0 + T)[None, :] > pos[:, None]  # [T, S]
        p = torch.softmax(s.masked_fill(future[None], float("-inf")), -1)
        o = torch.einsum("hts,shd->thd", p, V) * torch.sigmoid(self.g_proj(x).view(T, H, d))
        return self.o_proj(o.reshape(T, H * d)), [K, V]


class Block(nn.Module):
    def __init__(self, i):
        super().__init__()
        self.attn_norm, self.mlp_norm, self.mlp = RMSNorm(D), RMSNorm(D), MLP()
        self.attn = GatedDeltaNet() if i % 2 == 0 else GatedAttention()


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = nn.Embedding(VOCAB, D)
        self.layers = nn.ModuleList([Block(i) for i in range(N_LAYERS)])
        self.norm = RMSNorm(D)


class M6(nn.Module):
    """state_dict keys: model.embeddings.weight, model.layers.{i}.{attn_norm,attn.*,mlp_norm,mlp.*}
    (attn = Gated DeltaNet for even i, gated attention for odd i), model.norm.weight, lm_head.weight."""

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
    m = M6().to(dtype)
    w = read_st(path)
    diff = set(m.state_dict()) ^ set(w)
    if diff:
        sys.exit(f"weights do not match M6: {sorted(diff)[:8]}")
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
    src = os.path.join(HERE, "m6_hybrid.gat")
    wpath = args.weights or os.path.join(args.workdir, "m6.weights.safetensors")
    if not args.weights:
        gattnc(args.gattnc, "init", src, "-o", wpath, "--seed", "3")
        w = perturb({k: v.double() for k, v in read_st(wpath).items()}, seed=1, scale=0.02)
        write_st(wpath, {k: v.float() for k, v in w.items()})
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (args.T,), generator=g, dtype=torch.int32)
    ipath = os.path.join(args.workdir, "m6.in.safetensors")
    write_st(ipath, {"tokens": tokens})
    outs = {}
    for label, extra in [("interp prefill", ["--interp"]), ("interp decode", ["--interp", "--step", "1"])] + (
            [("C prefill", []), ("C decode", ["--step", "1"])] if args.compiled else []):
        opath = os.path.join(args.workdir, f"m6.{label.replace(' ', '_')}.safetensors")
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
    print(f"M6, T = {args.T}, logits [{args.T}, {VOCAB}]; metric max|a - b| / max|b|, b = PyTorch float64 recurrent")
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
    print(f"PyTorch eager M6 ({args.threads} threads): prefill T=512 median {pre[len(pre) // 2] * 1e3:.1f} ms "
          f"[{pre[0] * 1e3:.1f}, {pre[-1] * 1e3:.1f}]; decode median {dec[len(dec) // 2] * 1e3:.2f} ms/token "
          f"[{dec[0] * 1e3:.2f}, {dec[-1] * 1e3:.2f}]")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gattnc", help="path of the gattnc binary (for --check)")
    ap.add_argument("--weights", help="safetensors weights (default for --check: fresh `gattnc init` weights)")
    ap.add_argument("--workdir", default="/tmp/m6_hybrid")
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
