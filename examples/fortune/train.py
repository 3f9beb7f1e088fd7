"""train.py — trains the demo model of examples/fortune/fortune.gat: a
byte-level language model (vocab 256, d = 128, two GLA layers with SwiGLU
MLPs) on the text of Debian's `fortunes` package, with PyTorch on the CPU.

Needs the Debian packages python3-torch and fortunes (`apt-get install -y
fortunes`; the text is read from /usr/share/games/fortunes/). Training is a
one-off: its output, weights.safetensors, is committed, so neither building
nor running the demo needs this script or the fortunes package.

    /usr/bin/python3 examples/fortune/train.py            # ~7 min on an idle core
    /usr/bin/python3 examples/fortune/train.py --steps 20 -o /tmp/w.safetensors   # smoke test

The module tree mirrors fortune.gat, so `state_dict()` names are the .gat
parameter names (`gattnc examples/fortune/fortune.gat --dump-ir | grep ^param`).
The GLA layer follows compiler/front/std/std.gat's `gla` exactly:
    q, k = x Wq, x Wk  (H heads of K = D/2/H),  v = x Wv  (H heads of V = D/H)
    gk   = logsigmoid(gk_proj.1(gk_proj.0(x))) / 16            (log decay <= 0)
    S_t  = diag(exp gk_t) S_{t-1} + k_t v_t^T,   o_t = S_t^T q_t * K^-0.5
    y    = o_proj(RMSNorm_V(o; g_norm_swish_gate, eps 1e-5) * silu(g_proj x))
For speed, training evaluates the recurrence in its chunked form (the same
sum, reorganised: within a chunk of C steps every decay factor is
exp(b_t - b_s) with b the in-chunk cumulative log decay, so no exponent is
positive); `gla_recurrent` is the step-by-step form, and `--check` compares
the two."""
import argparse
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

FORTUNE_DIR = "/usr/share/games/fortunes"
# ascii-art is pictures and translate-me is mostly not English: both would
# spend the model's small capacity on text the demo does not want.
SKIP_FILES = {"ascii-art", "translate-me"}

VOCAB, D, N_LAYERS, HEADS, MLP_HIDDEN, GATE_RANK = 256, 128, 2, 4, 384, 16
EPS = 1e-5


# ---- the model (names = fortune.gat parameter names) ------------------------

class Linear(nn.Linear):
    """nn.Linear (same parameters, same math) computed as a 1x1 convolution:
    Debian's torch uses the reference BLAS for matmul (under 1 GFLOPS here)
    but oneDNN for convolutions (about 10x faster), and training time is
    mostly these products."""

    def forward(self, x):
        y = F.conv1d(x.reshape(-1, x.shape[-1], 1), self.weight.unsqueeze(-1), self.bias)
        return y.reshape(*x.shape[:-1], self.out_features)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def gla_recurrent(q, k, v, gk):
    """The scan of std.gat's gla, one step at a time. q, k, gk: [B, H, T, K];
    v: [B, H, T, V]; gk is the log decay. Returns o: [B, H, T, V]."""
    B, H, T, K = q.shape
    S = q.new_zeros(B, H, K, v.shape[-1])
    out = []
    for t in range(T):
        S = gk[:, :, t].exp().unsqueeze(-1) * S + k[:, :, t].unsqueeze(-1) * v[:, :, t].unsqueeze(-2)
        out.append(torch.einsum("bhi,bhij->bhj", q[:, :, t], S) * K ** -0.5)
    return torch.stack(out, 2)


def gla_chunked(q, k, v, gk, chunk=16):
    """The same sum as gla_recurrent, chunk by chunk: an exact (masked,
    all-exponents-non-positive) quadratic form inside each chunk of `chunk`
    steps, and the state S carried from chunk to chunk."""
    B, H, T, K = q.shape
    V = v.shape[-1]
    pad = (-T) % chunk
    if pad:  # zero k/v and zero log decay: padded steps change nothing before them
        q, k, v, gk = (F.pad(a, (0, 0, 0, pad)) for a in (q, k, v, gk))
    N = (T + pad) // chunk
    q = q.reshape(B, H, N, chunk, K) * K ** -0.5
    k = k.reshape(B, H, N, chunk, K)
    v = v.reshape(B, H, N, chunk, V)
    b = gk.reshape(B, H, N, chunk, K).cumsum(3)            # in-chunk cumulative log decay
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    diff = (b.unsqueeze(4) - b.unsqueeze(3)).masked_fill(~causal[:, :, None], float("-inf"))
    A = (q.unsqueeze(4) * k.unsqueeze(3) * diff.exp()).sum(-1)    # [B,H,N,t,s]
    o = A @ v
    qe = q * b.exp()                                        # decay from chunk start to t
    kd = k * (b[:, :, :, -1:] - b).exp()                    # decay from s to chunk end
    S = q.new_zeros(B, H, K, V)
    inter = []
    for n in range(N):
        inter.append(qe[:, :, n] @ S)
        S = b[:, :, n, -1].exp().unsqueeze(-1) * S + kd[:, :, n].transpose(-1, -2) @ v[:, :, n]
    o = o + torch.stack(inter, 2)
    return o.reshape(B, H, N * chunk, V)[:, :, :T]


class GLA(nn.Module):
    def __init__(self, d=D, heads=HEADS, expand_k=0.5, expand_v=1.0, gate_rank=GATE_RANK):
        super().__init__()
        self.H = heads
        self.K = int(d * expand_k / heads)
        self.V = int(d * expand_v / heads)
        self.q_proj = Linear(d, heads * self.K, bias=False)
        self.k_proj = Linear(d, heads * self.K, bias=False)
        self.v_proj = Linear(d, heads * self.V, bias=False)
        self.gk_proj = nn.Sequential(Linear(d, gate_rank, bias=False), Linear(gate_rank, heads * self.K, bias=True))
        self.g_norm_swish_gate = RMSNorm(self.V)
        self.g_proj = Linear(d, heads * self.V, bias=False)
        self.o_proj = Linear(heads * self.V, d, bias=False)
        self.recurrent = False

    def forward(self, x):
        B, T, _ = x.shape
        H, K, V = self.H, self.K, self.V
        heads = lambda t, n: t.view(B, T, H, n).transpose(1, 2)   # [B, H, T, n]
        q = heads(self.q_proj(x), K)
        k = heads(self.k_proj(x), K)
        v = heads(self.v_proj(x), V)
        gk = heads(F.logsigmoid(self.gk_proj(x)) / 16, K)
        o = (gla_recurrent if self.recurrent else gla_chunked)(q, k, v, gk)
        o = o.transpose(1, 2)                                       # [B, T, H, V]
        o = self.g_norm_swish_gate(o) * F.silu(self.g_proj(x).view(B, T, H, V))
        return self.o_proj(o.reshape(B, T, H * V))


class SwiGLU(nn.Module):
    def __init__(self, d=D, hidden=MLP_HIDDEN):
        super().__init__()
        self.gate_proj = Linear(d, hidden, bias=False)
        self.up_proj = Linear(d, hidden, bias=False)
        self.down_proj = Linear(hidden, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn_norm = RMSNorm(D)
        self.attn = GLA()
        self.mlp_norm = RMSNorm(D)
        self.mlp = SwiGLU()

    def forward(self, x):
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = nn.Embedding(VOCAB, D)
        self.layers = nn.ModuleList(Block() for _ in range(N_LAYERS))
        self.norm = RMSNorm(D)


class FortuneLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = Backbone()
        self.lm_head = Linear(D, VOCAB, bias=False)

    def forward(self, tokens):                       # tokens: [B, T] int64
        x = self.model.embeddings(tokens)
        for layer in self.model.layers:
            x = layer(x)
        return self.lm_head(self.model.norm(x))      # logits [B, T, VOCAB]

    def set_recurrent(self, on):
        for layer in self.model.layers:
            layer.attn.recurrent = on


def init_weights(model, seed):
    torch.manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight") or "g_norm_swish_gate" in name:
            nn.init.ones_(p)
        elif name.endswith(".bias"):
            nn.init.zeros_(p)
        else:
            nn.init.normal_(p, 0.0, 0.02)
    # residual-branch outputs start smaller (GPT-2 style), so the sum of
    # 2 * N_LAYERS branches starts at the embedding's scale
    for layer in model.model.layers:
        nn.init.normal_(layer.attn.o_proj.weight, 0.0, 0.02 / math.sqrt(2 * N_LAYERS))
        nn.init.normal_(layer.mlp.down_proj.weight, 0.0, 0.02 / math.sqrt(2 * N_LAYERS))


# ---- safetensors (F32 only; no dependency on the safetensors package) -------

def save_safetensors(path, tensors):
    hdr, blobs, off = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().float().contiguous().numpy().tobytes()
        hdr[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)                        # keeps tensor data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    out = {}
    for name, e in json.loads(buf[8:8 + n]).items():
        if name == "__metadata__":
            continue
        if e["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {e['dtype']}, expected F32")
        b, end = e["data_offsets"]
        out[name] = torch.frombuffer(bytearray(buf[8 + n + b:8 + n + end]), dtype=torch.float32).reshape(e["shape"])
    return out


def load_model(path):
    model = FortuneLM()
    model.load_state_dict(load_safetensors(path), strict=True)
    model.eval()
    return model


# ---- data ---------------------------------------------------------------------

def load_corpus():
    """All fortune files as bytes; the '%' lines that separate fortunes become
    blank lines, so the model learns to end a fortune with an empty line."""
    if not os.path.isdir(FORTUNE_DIR):
        sys.exit(f"{FORTUNE_DIR} not found: apt-get install -y fortunes")
    parts = []
    for name in sorted(os.listdir(FORTUNE_DIR)):
        p = os.path.join(FORTUNE_DIR, name)
        if name.endswith(".dat") or os.path.islink(p) or not os.path.isfile(p) or name in SKIP_FILES:
            continue
        with open(p, "rb") as f:
            text = f.read()
        parts.append(text.replace(b"\n%\n", b"\n\n"))
    return b"".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("-o", "--out", default=os.path.join(here, "weights.safetensors"))
    ap.add_argument("--steps", type=int, default=1400)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1234)
    # one thread: on a busy 2-core machine OpenMP's second thread mostly waits
    # for a core and makes each step several times slower
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check", action="store_true", help="only compare chunked and recurrent GLA, then exit")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.check:
        torch.manual_seed(0)
        m = FortuneLM()
        init_weights(m, 0)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.3 * torch.randn_like(p))
            m.double()
            toks = torch.randint(0, VOCAB, (2, 77))
            a = m(toks)
            m.set_recurrent(True)
            b = m(toks)
        err = ((a - b).abs().max() / b.abs().max()).item()
        print(f"chunked vs recurrent GLA (float64): max|err|/max|ref| = {err:.3g}")
        sys.exit(0 if err < 1e-10 else 1)

    data = torch.frombuffer(bytearray(load_corpus()), dtype=torch.uint8).long()
    n_val = len(data) // 20
    train, val = data[:-n_val], data[-n_val:]
    print(f"corpus: {len(data)} bytes ({len(train)} train, {n_val} validation)")

    model = FortuneLM()
    init_weights(model, args.seed)
    print(f"parameters: {sum(p.numel() for p in model.parameters())}")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98))
    warmup = max(1, args.steps // 20)
    lr_at = lambda s: args.lr * (s + 1) / warmup if s < warmup else \
        args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, args.steps - warmup))))

    gen = torch.Generator().manual_seed(args.seed)

    def batch(src, n):
        idx = torch.randint(0, len(src) - args.seq - 1, (n, 1), generator=gen)
        x = src[idx + torch.arange(args.seq + 1)]
        return x[:, :-1], x[:, 1:]

    def val_loss():
        model.eval()
        with torch.no_grad():
            g = torch.Generator().manual_seed(7)
            idx = torch.randint(0, len(val) - args.seq - 1, (64, 1), generator=g)
            x = val[idx + torch.arange(args.seq + 1)]
            loss = F.cross_entropy(model(x[:, :-1]).reshape(-1, VOCAB), x[:, 1:].reshape(-1)).item()
        model.train()
        return loss

    t0 = time.time()
    avg = None
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x, y = batch(train, args.batch)
        loss = F.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        avg = loss.item() if avg is None else 0.95 * avg + 0.05 * loss.item()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.3f}  (avg {avg:.3f})  lr {lr_at(step):.2e}  "
                  f"{time.time() - t0:6.1f} s", flush=True)
    train_time = time.time() - t0
    vl = val_loss()
    print(f"trained {args.steps} steps in {train_time:.0f} s; final train loss (avg) {avg:.3f} nats/byte, "
          f"validation loss {vl:.3f} nats/byte ({vl / math.log(2):.2f} bits/byte)")
    save_safetensors(args.out, model.state_dict())
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
