"""Shared pieces of the PyTorch counterparts of the benchmark models
(bench/m1_gated_attention.py ... bench/m6_hybrid.py): the layers several models
use (RMSNorm, SwiGLU MLP, rotate-half RoPE, gated softmax attention with a KV
cache), the pre-norm causal-LM skeleton, safetensors loading, the --check
harness (make noisy `gattnc init` weights, run `gattnc run` in its modes,
compare with this side's float64 / float32 outputs), the --bench timing loop
and the command line. Each model script keeps only its own layer math.

The scripts run as `python3 bench/mX.py ...` and import this module from
their own directory; this module reaches tests/e2e/e2e_util.py for the
safetensors reader/writer and the weight perturbation."""
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
from e2e_util import perturb, read_st, write_st  # noqa: E402,F401  (read_st/write_st re-exported)

EPS = 1e-6


# ---- layers ----------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, n, eps=EPS):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.weight


class MLP(nn.Module):
    """SwiGLU: down_proj(silu(gate_proj x) * up_proj x)."""

    def __init__(self, d, hidden):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(d, hidden, bias=False), nn.Linear(d, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def rope(x, pos, base=10000.0):
    """Rotate-half RoPE; x [T, H, d], pos [T] absolute positions, inv_freq_i = base^(-2i/d)."""
    d = x.shape[-1]
    half = d // 2
    inv = base ** (-torch.arange(half, dtype=torch.float64) * 2 / d)
    ang = (pos.double()[:, None] * inv[None, :]).to(x.dtype)
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], -1)


class GatedAttention(nn.Module):
    """Y = softmax(Q K^T d^-1/2 + causal) V;  o_proj(Y * sigmoid(g_proj x)).

    The KV cache [K, V] holds rows at absolute positions (RoPE at the absolute
    position), so prefill and decode use the same forward; `mode` is ignored
    (it is there so attention and recurrent mixers share one call)."""

    def __init__(self, d, heads, head_dim, rope_base=10000.0):
        super().__init__()
        self.H, self.dh, self.rope_base = heads, head_dim, rope_base
        HD = heads * head_dim
        self.q_proj, self.k_proj = nn.Linear(d, HD, bias=False), nn.Linear(d, HD, bias=False)
        self.v_proj, self.g_proj = nn.Linear(d, HD, bias=False), nn.Linear(d, HD, bias=False)
        self.o_proj = nn.Linear(HD, d, bias=False)

    def init_cache(self, dtype):
        z = torch.zeros(0, self.H, self.dh, dtype=dtype)
        return [z, z]

    def forward(self, x, cache, mode=None):
        T, H, dh = x.shape[0], self.H, self.dh
        kc, vc = cache
        pos = torch.arange(kc.shape[0], kc.shape[0] + T)
        q = rope(self.q_proj(x).view(T, H, dh), pos, self.rope_base)
        k = rope(self.k_proj(x).view(T, H, dh), pos, self.rope_base)
        v = self.v_proj(x).view(T, H, dh)
        kc, vc = torch.cat([kc, k], 0), torch.cat([vc, v], 0)
        S = kc.shape[0]
        logits = torch.einsum("thd,shd->hts", q, kc) * dh ** -0.5
        mask = torch.arange(S)[None, :] <= pos[:, None]
        att = torch.softmax(logits.masked_fill(~mask, float("-inf")), -1)
        o = torch.einsum("hts,shd->thd", att, vc)
        o = o * torch.sigmoid(self.g_proj(x).view(T, H, dh))
        return self.o_proj(o.reshape(T, H * dh)), [kc, vc]


# ---- causal-LM skeleton ----------------------------------------------------

FLA_NAMES = ("attn_norm", "attn", "mlp_norm", "mlp")
HF_NAMES = ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")


class Backbone(nn.Module):
    """`model.*`: token embedding (named `embed_name`), the blocks, final RMSNorm."""

    def __init__(self, embed_name, blocks, vocab, d):
        super().__init__()
        self.embed_name = embed_name
        setattr(self, embed_name, nn.Embedding(vocab, d))
        self.layers = nn.ModuleList(blocks)
        self.norm = RMSNorm(d)

    def embed(self, tokens):
        return getattr(self, self.embed_name)(tokens.long())


class PreNormBlock(nn.Module):
    """x + mixer(norm1 x), then x + mlp(norm2 x); the four submodules carry the
    checkpoint's names (FLA_NAMES or HF_NAMES)."""

    def __init__(self, names, mixer, d, hidden):
        super().__init__()
        self.names = names
        for name, mod in zip(names, (RMSNorm(d), mixer, RMSNorm(d), MLP(d, hidden))):
            setattr(self, name, mod)

    def mixer(self):
        return getattr(self, self.names[1])

    def forward(self, x, cache, mode):
        norm1, mixer, norm2, mlp = (getattr(self, n) for n in self.names)
        a, cache = mixer(norm1(x), cache, mode)
        x = x + a
        return x + mlp(norm2(x)), cache


class PreNormLM(nn.Module):
    """state_dict keys: model.{embed_name}.weight, model.layers.{i}.{names}.*, model.norm.weight,
    lm_head.weight. Each mixer has init_cache(dtype) and forward(x, cache, mode) -> (y, cache)."""

    def __init__(self, mixers, vocab, d, hidden, embed_name="embeddings", names=FLA_NAMES):
        super().__init__()
        self.model = Backbone(embed_name, [PreNormBlock(names, m, d, hidden) for m in mixers], vocab, d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def init_cache(self):
        dt = self.lm_head.weight.dtype
        return [blk.mixer().init_cache(dt) for blk in self.model.layers]

    def forward(self, tokens, cache=None, mode="chunk"):
        cache = cache or self.init_cache()
        x = self.model.embed(tokens)
        new = []
        for blk, c in zip(self.model.layers, cache):
            x, c = blk(x, c, mode)
            new.append(c)
        return self.lm_head(self.model.norm(x)), new


def load_model(model, path, dtype, name):
    """`model` with the safetensors weights at `path` (the names must match exactly), in eval mode."""
    m = model.to(dtype)
    w = read_st(path)
    diff = set(m.state_dict()) ^ set(w)
    if diff:
        sys.exit(f"weights do not match {name}: {sorted(diff)[:8]}")
    m.load_state_dict({k: v.to(dtype) for k, v in w.items()})
    return m.eval()


# ---- --check ---------------------------------------------------------------

def gattnc(exe, *argv):
    p = subprocess.run([exe, *argv], capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"gattnc {' '.join(argv)} failed:\n{p.stdout}{p.stderr}")


def rel(got, want):
    return ((got.double() - want.double()).abs().max() / want.double().abs().max()).item()


def gattnc_outputs(args, stem, tag, inputs, scale=0.02, tweak=None):
    """Writes the weights (unless --weights: `gattnc init` of bench/{stem}.gat plus
    noise on every weight, so the norm weights (init 1) and biases are checked
    too; `tweak(w)` may then edit the float64 dict) and `inputs`, runs `gattnc run`
    (interpreter prefill and --step 1 decode, and with --compiled the C too).
    Returns (weights path, {label: logits})."""
    os.makedirs(args.workdir, exist_ok=True)
    src = os.path.join(HERE, f"{stem}.gat")
    wpath = args.weights or os.path.join(args.workdir, f"{tag}.weights.safetensors")
    if not args.weights:
        gattnc(args.gattnc, "init", src, "-o", wpath, "--seed", "3")
        w = perturb({k: v.double() for k, v in read_st(wpath).items()}, seed=1, scale=scale)
        if tweak:
            tweak(w)
        write_st(wpath, {k: v.float() for k, v in w.items()})
    ipath = os.path.join(args.workdir, f"{tag}.in.safetensors")
    write_st(ipath, inputs)
    outs = {}
    for label, extra in [("interp prefill", ["--interp"]), ("interp decode", ["--interp", "--step", "1"])] + (
            [("C prefill", []), ("C decode", ["--step", "1"])] if args.compiled else []):
        opath = os.path.join(args.workdir, f"{tag}.{label.replace(' ', '_')}.safetensors")
        gattnc(args.gattnc, "run", src, "--weights", wpath, "--inputs", ipath, "-o", opath, *extra)
        outs[label] = read_st(opath)["logits"]
    return wpath, outs


def report(header, notes, outs, ref, ref32):
    """Prints the agreement of PyTorch's own variants (`notes`, (label, figure)) and
    of each gattnc output with the float64 reference; exit code 1 beyond 1e-4."""
    print(header)
    for label, r in notes:
        print(f"  {label}: {r:.3g}")
    worst = 0.0
    for label, y in outs.items():
        r = rel(y, ref)
        worst = max(worst, r)
        print(f"  gattnc {label}: {r:.3g}   (vs PyTorch float32: {rel(y, ref32):.3g})")
    ok = worst <= 1e-4
    print(("ok" if ok else "FAIL") + f": gattnc agrees with PyTorch within {worst:.3g} (tolerance 1e-4)")
    return 0 if ok else 1


def lm_modes(chunked):
    """forward kwargs of (prefill, decode): chunked prefill + recurrent decode, or none."""
    return ({"mode": "chunk"}, {"mode": "recurrent"}) if chunked else ({}, {})


def prefill_then_decode(m, tokens, start, prefill_kw, decode_kw):
    """Logits of tokens[:start] in one call, then of each later token from the carried cache."""
    y, cache = m(tokens[:start], **prefill_kw)
    steps = [y]
    for t in range(start, tokens.shape[0]):
        y, cache = m(tokens[t:t + 1], cache, **decode_kw)
        steps.append(y)
    return torch.cat(steps, 0), cache


def lm_check(args, load, name, stem, tag, vocab, chunked, tweak=None):
    """--check of a token LM: random tokens; reference = PyTorch float64 (recurrent
    form if `chunked`); float32 prefills half and decodes the rest."""
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, vocab, (args.T,), generator=g, dtype=torch.int32)
    wpath, outs = gattnc_outputs(args, stem, tag, {"tokens": tokens}, tweak=tweak)
    pre_kw, dec_kw = lm_modes(chunked)
    with torch.no_grad():
        m64 = load(wpath, torch.float64)
        ref, _ = m64(tokens, **dec_kw)
        notes = []
        if chunked:
            chunk64, _ = m64(tokens, **pre_kw)
            notes.append(("PyTorch float64 chunked vs recurrent", rel(chunk64, ref)))
        mixed32, _ = prefill_then_decode(load(wpath, torch.float32), tokens, args.T // 2, pre_kw, dec_kw)
    what = "chunked prefill + recurrent decode" if chunked else "prefill + decode"
    notes.append((f"PyTorch float32 {what}", rel(mixed32, ref)))
    header = (f"{name}, T = {args.T}, logits [{args.T}, {vocab}]; metric max|a - b| / max|b|, "
              f"b = PyTorch float64{' recurrent' if chunked else ''}")
    return report(header, notes, outs, ref, mixed32)


# ---- --bench ---------------------------------------------------------------

def time_reps(reps, run):
    """Calls run() reps + 1 times (the first is warm-up, dropped); run returns a
    tuple of durations; returns one sorted list per tuple entry."""
    got = [run() for _ in range(reps + 1)][1:]
    return [sorted(col) for col in zip(*got)]


def summary(xs, scale, digits, unit):
    """'median M unit [min, max]' of durations xs (seconds) times `scale`."""
    f = lambda v: f"{v * scale:.{digits}f}"  # noqa: E731
    return f"median {f(xs[len(xs) // 2])} {unit} [{f(xs[0])}, {f(xs[-1])}]"


def lm_bench(args, load, name, vocab, chunked, prefill=512, decode=128):
    """Float32 prefill of `prefill` tokens, then `decode` single-token steps."""
    torch.set_num_threads(args.threads)
    m = load(args.weights, torch.float32)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, vocab, (prefill + decode,), generator=g, dtype=torch.int32)
    pre_kw, dec_kw = lm_modes(chunked)

    def run():
        t0 = time.perf_counter()
        _, cache = m(tokens[:prefill], **pre_kw)
        t1 = time.perf_counter()
        for t in range(prefill, prefill + decode):
            _, cache = m(tokens[t:t + 1], cache, **dec_kw)
        t2 = time.perf_counter()
        return t1 - t0, (t2 - t1) / decode

    with torch.inference_mode():
        pre, dec = time_reps(args.reps, run)
    print(f"PyTorch eager {name} ({args.threads} threads): prefill T={prefill} {summary(pre, 1e3, 1, 'ms')}; "
          f"decode {summary(dec, 1e3, 2, 'ms/token')}")
    return 0


# ---- command line ----------------------------------------------------------

def cli(check, bench, workdir, T=16):
    ap = argparse.ArgumentParser()
    ap.add_argument("--gattnc", help="path of the gattnc binary (for --check)")
    ap.add_argument("--weights", help="safetensors weights (default for --check: fresh `gattnc init` weights)")
    ap.add_argument("--workdir", default=workdir)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--compiled", action="store_true", help="(--check) also compare the compiled C")
    ap.add_argument("--T", type=int, default=T)
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
