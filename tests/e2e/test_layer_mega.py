#!/usr/bin/env python3
"""Mega (std `mega_ema`, `mega`; compiler/front/std/mega.gat) against a PyTorch
reference written from the math of docs/layers.md,
"Mega: EMA + single-head gated attention" in float64.

The EMA reference uses the convolution form fairseq uses for prefill,
y_t[d] = sum_{l<=t} K[d, l] x_{t-l}[d] with K[d, l] = sum_n p beta q^l gamma n^-1/2
(p = sigmoid(delta), q = 1 - p sigmoid(alpha)), checked against the
recurrence h_t = p beta x_t + q h_{t-1}. The block reference builds the full
attention matrix with a causal (and, with chunk_size C, same-chunk) mask and
fairseq's simple relative position bias, built as fairseq's
SimpleRelativePositionalBias.forward does (slice, pad, tile, view, crop of
`rel_pos_bias` [2M - 1]); per chunk with chunk_size. Beyond M - 1 (which
fairseq rejects) gattnc reuses the farthest entry: one case checks that
against a reference indexing b[clamp(M - 1 + j - i)] directly, and one checks
rel_pos: false (no bias) at T = 40.

Metric: max |gattnc - ref| / max |ref| over the layer output, tolerance 1e-4.
T in {1, 7, 64, 1024}, interpreter and compiled C, prefill and decode
(--step 1); the chunked block at T = 40 with C = 16 (decode crosses chunk
boundaries). Compiled runs are -O2, where the attention with the relative bias
runs the flash kernel's relbias variant (checked on the emitted code: C
and LLVM gat_flash_attn_16_48_r); -fno-tile keeps the reference
gat_k_attention, checked the same way and run at T = 300 (not a multiple of
the kernel's 64-query / 64-key tiles) against the reference."""
import os
import math
import sys

import torch
import torch.nn.functional as F

from e2e_util import Case, check, parse_args, perturb, set_weights
from e2e_util import model_source, sweep, variant, read_st, write_st


def kernel_checks(args):
    """Which attention kernel the compiled code calls: the relbias flash variant at -O2 (C and
    LLVM), the reference with -fno-tile; and a -fno-tile run against the reference."""
    c = Case(args, "mega_kernel", model_source(f"mega(x, zdim: {ZDIM}, hdim: {HDIM}, ndim: {NDIM})", D))
    set_weights(c, perturb(c.weights, seed=41, scale=0.3))
    results = []
    for opts, want_c, want_ll in ((["-O2"], "gat_flash_attn_16_48_r(&A, ", "_16_48_r"),
                                  (["-O2", "-fno-tile"], "gat_k_attention(&A);", "@gat_k_attention")):
        tag = "".join(opts)
        for llvm in ((False, True) if c.backend == "jit" else (False,)):
            out = os.path.join(c.dir, f"mega_kernel{tag}" + (".ll" if llvm else ".c"))
            c.gattnc_run(c.src, "-o", out, *opts, *(["--emit=llvm"] if llvm else []))
            with open(out) as f:
                text = f.read()
            want = want_ll if llvm else want_c
            fast = "gat_flash_attn" in text
            ok = want in text and fast == (opts == ["-O2"])
            print(f"{'ok' if ok else 'FAIL'}: {'LLVM' if llvm else 'C'} {' '.join(opts)}: the attention calls {want}")
            results.append(ok)
    torch.manual_seed(42)
    x = torch.randn(300, D)
    want = mega_ref(c.weights, "layer.", x.double())
    ipath, opath = os.path.join(c.dir, "mk.in.safetensors"), os.path.join(c.dir, "mk.out.safetensors")
    write_st(ipath, {"x": x})
    for opts in (["-O2"], ["-O2", "-fno-tile"]):
        c.gattnc_run("run", c.src, "--weights", c.wpath, "--inputs", ipath, "-o", opath, *opts,
                     *(["--jit"] if c.backend == "jit" else []))
        got = read_st(opath)["y"].double()
        results.append(check(f"mega T=300 {'LLVM JIT' if c.backend == 'jit' else 'C'} {' '.join(opts)}", got, want,
                             RTOL))
    return results

RTOL = 1e-4
D, ZDIM, HDIM, NDIM = 32, 16, 48, 4


def lin(W, name, x):
    return x @ W[name + ".weight"].T + W[name + ".bias"]


def ema_coeffs(W, p):
    pp = torch.sigmoid(W[p + "delta"][..., 0])
    q = 1 - pp * torch.sigmoid(W[p + "alpha"][..., 0])
    return pp * W[p + "beta"][..., 0], q, W[p + "gamma"] * W[p + "gamma"].shape[1] ** -0.5


def ema_conv(W, p, x):
    """Convolution form: kernel K[d, l], y_t = sum_l K[d, l] x_{t-l}."""
    pb, q, gs = ema_coeffs(W, p)
    Tn = x.shape[0]
    l = torch.arange(Tn, dtype=torch.float64)
    K = torch.einsum("dnl,dn->dl", pb[:, :, None] * q[:, :, None] ** l, gs)  # [D, T]
    y = torch.zeros_like(x)
    for t in range(Tn):
        y[t] = (K[:, :t + 1].flip(-1) * x[:t + 1].T).sum(-1)
    return F.silu(y + W[p + "omega"] * x)


def ema_rec(W, p, x):
    pb, q, gs = ema_coeffs(W, p)
    h = torch.zeros_like(pb)
    y = torch.zeros_like(x)
    for t in range(x.shape[0]):
        h = pb * x[t][:, None] + q * h
        y[t] = (gs * h).sum(-1)
    return F.silu(y + W[p + "omega"] * x)


def simple_rel_pos(rpb, M, L):
    """fairseq SimpleRelativePositionalBias.forward(L): an [L, L] Toeplitz matrix."""
    b = rpb[M - L:M + L - 1]
    t = torch.tile(F.pad(b, (0, L)), (L,))[:-L].view(L, 3 * L - 2)
    r = (2 * L - 1) // 2
    return t[:, r:t.shape[1] - r]


def rel_bias(W, p, Tn, chunk, M, clamp=False):
    rpb = W.get(p + "rel_pos_bias.rel_pos_bias")
    bias = torch.zeros(Tn, Tn, dtype=torch.float64)
    if rpb is None:
        return bias
    if clamp:
        i, j = torch.arange(Tn)[:, None], torch.arange(Tn)[None, :]
        return rpb[(M - 1 + j - i).clamp(0, 2 * M - 2)]
    C = chunk if chunk > 0 else Tn
    for s in range(0, Tn, C):
        L = min(C, Tn - s)
        bias[s:s + L, s:s + L] = simple_rel_pos(rpb, M, L)
    return bias


def mega_ref(W, p, x, chunk=0, eps=1e-5, M=1024, clamp=False):
    Tn, Dm = x.shape
    xn = F.layer_norm(x, (Dm,), W[p + "norm.norm.weight"], W[p + "norm.norm.bias"], eps)
    v = F.silu(lin(W, p + "v_proj", xn))
    mx = ema_conv(W, p + "move.", xn)
    u, zr, hx = torch.split(lin(W, p + "mx_proj", mx), [Dm, ZDIM + HDIM, Dm], -1)
    u = torch.sigmoid(u)
    z, r = torch.split(F.silu(zr), [ZDIM, HDIM], -1)
    qk = z[:, None, :] * W[p + "gamma"] + W[p + "beta"]
    q, k = qk[:, 0], qk[:, 1]
    logits = (q * ZDIM ** -0.5) @ k.T + rel_bias(W, p, Tn, chunk, chunk if chunk > 0 else M, clamp)
    i, j = torch.arange(Tn)[:, None], torch.arange(Tn)[None, :]
    keep = (j <= i) & ((j // chunk == i // chunk) if chunk > 0 else True)
    att = torch.softmax(logits.masked_fill(~keep, -math.inf), -1)
    h = F.silu(hx + lin(W, p + "h_proj", (att @ v) * r))
    return x + u * (h - x)


def main():
    args = parse_args()
    results = []
    torch.manual_seed(6)
    Wr = {"m.alpha": torch.randn(8, 3, 1, dtype=torch.float64), "m.delta": torch.randn(8, 3, 1, dtype=torch.float64),
          "m.beta": torch.randn(8, 3, 1, dtype=torch.float64), "m.gamma": torch.randn(8, 3, dtype=torch.float64),
          "m.omega": torch.randn(8, dtype=torch.float64)}
    xr = torch.randn(30, 8, dtype=torch.float64)
    results.append(check("reference: EMA convolution vs recurrence", ema_conv(Wr, "m.", xr), ema_rec(Wr, "m.", xr),
                         1e-12))
    results += sweep(args, "mega_ema", f"mega_ema(x, ndim: {NDIM})", lambda W, p, x: ema_conv(W, p, x), D)
    results += sweep(args, "mega", f"mega(x, zdim: {ZDIM}, hdim: {HDIM}, ndim: {NDIM})",
                     lambda W, p, x: mega_ref(W, p, x), D, seed=2)
    # chunked attention: chunks of 16, T = 40 (prefill, and decode across chunk boundaries)
    torch.manual_seed(30)
    c = Case(args, "mega_chunk", model_source(f"mega(x, zdim: {ZDIM}, hdim: {HDIM}, ndim: {NDIM}, chunk_size: 16)",
                                              D, max_t=64))
    set_weights(c, perturb(c.weights, seed=31, scale=0.3))
    x = torch.randn(40, D)
    want = mega_ref(c.weights, "layer.", x.double(), chunk=16)
    nochunk = mega_ref(c.weights, "layer.", x.double(), M=16, clamp=True)
    print(f"(chunked vs unchunked reference differ by {(want - nochunk).abs().max().item():.3g})")
    for label, step, compiled in [("interp prefill", 0, False), ("interp decode", 1, False),
                                  ("C prefill", 0, True), ("C decode", 1, True)]:
        got = c.run({"x": x}, step=step, tag="dec" if step else "out", compiled=compiled)["y"]
        results.append(check(f"mega chunk_size 16 T=40 {label}", got, want, RTOL))
    ok = list(c.weights["layer.rel_pos_bias.rel_pos_bias"].shape) == [31]
    print(f"{'ok' if ok else 'FAIL'}: chunk_size 16: rel_pos_bias.rel_pos_bias has 2*16 - 1 entries")
    results.append(ok)
    # distances beyond the table (max_positions 8, T = 40, no chunks) reuse the farthest entry
    results += variant(args, "mega_relclamp", f"mega(x, zdim: {ZDIM}, hdim: {HDIM}, ndim: {NDIM}, max_positions: 8)",
                       lambda W, p, x: mega_ref(W, p, x, M=8, clamp=True), D, c_decode=True)
    results += variant(args, "mega_norel", f"mega(x, zdim: {ZDIM}, hdim: {HDIM}, ndim: {NDIM}, rel_pos: false)",
                       lambda W, p, x: mega_ref(W, p, x), D)
    results += kernel_checks(args)
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
