#!/usr/bin/env python3
"""PyTorch counterpart of bench/m3_gated_deltanet.gat (benchmark model M3): a
4-layer Gated DeltaNet LM written from the math of layers.md §3 (no fla code),
with fla's GatedDeltaNetForCausalLM parameter names, so it loads the same
safetensors weights as gattnc.

Two forms of the recurrence, as the benchmark plan asks of PyTorch's side:
  * "chunk": the WY / chunked form (prefill), chunks of 64 tokens;
  * "recurrent": token by token (decode, and the float64 reference).
Both carry a cache (conv windows + delta-rule state) across calls.

  /usr/bin/python3 bench/m3_gated_deltanet.py --gattnc build/gattnc --check [--T 16]
      makes `gattnc init` weights (plus noise), runs `gattnc run --interp` (prefill and
      --step 1 decode) on random tokens and prints the agreement with this
      model (float64 recurrent, float32 chunked, float32 decode);
  /usr/bin/python3 bench/m3_gated_deltanet.py --weights W.safetensors --bench
      times float32 chunked prefill of T = 512 and 128 decode steps."""
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

VOCAB, D, N_LAYERS, HEADS, HEAD_DIM, EXPAND_V, HIDDEN, EPS, CONV = 4096, 512, 4, 4, 128, 2, 1408, 1e-6, 4


class RMSNorm(nn.Module):
    def __init__(self, n, eps=EPS):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.weight


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
    """The same recurrence in chunks of C tokens (WY form, layers.md §3 (c)):
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
        self.o_norm = RMSNorm(V)
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
        self.attn_norm, self.attn, self.mlp_norm, self.mlp = RMSNorm(D), GatedDeltaNet(), RMSNorm(D), MLP()


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = nn.Embedding(VOCAB, D)
        self.layers = nn.ModuleList([Block() for _ in range(N_LAYERS)])
        self.norm = RMSNorm(D)


class M3(nn.Module):
    """state_dict keys: model.embeddings.weight, model.layers.{i}.{attn_norm,attn.*,mlp_norm,mlp.*},
    model.norm.weight, lm_head.weight (fla GatedDeltaNetForCausalLM)."""

    def __init__(self):
        super().__init__()
        self.model = Inner()
        self.lm_head = nn.Linear(D, VOCAB, bias=False)

    def init_cache(self):
        dt = self.lm_head.weight.dtype
        return [blk.attn.init_cache(dt) for blk in self.model.layers]

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
    m = M3().to(dtype)
    w = read_st(path)
    missing = set(m.state_dict()) ^ set(w)
    if missing:
        sys.exit(f"weights do not match M3: {sorted(missing)[:8]}")
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
    src = os.path.join(HERE, "m3_gated_deltanet.gat")
    wpath = args.weights or os.path.join(args.workdir, "m3.weights.safetensors")
    if not args.weights:
        gattnc(args.gattnc, "init", src, "-o", wpath, "--seed", "3")
        # noise on every weight, so the norm weights (init 1) are checked too
        w = perturb({k: v.double() for k, v in read_st(wpath).items()}, seed=1, scale=0.02)
        write_st(wpath, {k: v.float() for k, v in w.items()})
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (args.T,), generator=g, dtype=torch.int32)
    ipath = os.path.join(args.workdir, "m3.in.safetensors")
    write_st(ipath, {"tokens": tokens})
    outs = {}
    for label, extra in [("interp prefill", ["--interp"]), ("interp decode", ["--interp", "--step", "1"])] + (
            [("C prefill", []), ("C decode", ["--step", "1"])] if args.compiled else []):
        opath = os.path.join(args.workdir, f"m3.{label.replace(' ', '_')}.safetensors")
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
    print(f"M3, T = {args.T}, logits [{args.T}, {VOCAB}]; metric max|a - b| / max|b|, b = PyTorch float64 recurrent")
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
    print(f"PyTorch eager M3 ({args.threads} threads): prefill T=512 median {pre[len(pre) // 2] * 1e3:.1f} ms "
          f"[{pre[0] * 1e3:.1f}, {pre[-1] * 1e3:.1f}]; decode median {dec[len(dec) // 2] * 1e3:.2f} ms/token "
          f"[{dec[0] * 1e3:.2f}, {dec[-1] * 1e3:.2f}]")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gattnc", help="path of the gattnc binary (for --check)")
    ap.add_argument("--weights", help="safetensors weights (default for --check: fresh `gattnc init` weights)")
    ap.add_argument("--workdir", default="/tmp/m3_gated_deltanet")
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
