#!/usr/bin/env python3
"""GateSkip's KV copy (docs/layers.md "GateSkip's KV copy", docs/language.md
"Skips"): `x = x + g * attn(h) skip when mean(g, axis: -1) < tau, kv: previous`.

A token that skips the attention branch of layer l gets layer l-1's keys and
values for its position in layer l's KV cache, so later tokens of layer l
still attend to it; the kept tokens attend at their absolute positions to
every earlier key (RoPE at absolute positions too). The reference below is
written from that rule in float64 PyTorch (three layers: layer 0's attention
is gated but never skipped, layers 1 and 2 skip with `kv: previous`, so layer
2 copies rows layer 1 may itself have copied).

Checked: interpreter, generated C at -O0 and -O2 and the LLVM backend (JIT
and, in the _jit registration, every compiled run), prefill (T = 300), decode
(one token per call) and chunks of 7 tokens; tolerance 1e-4 relative
(max |err| / max |ref|; measured errors are ~1e-6). Inputs are chosen so no
token's mean gate is within 2e-4 of tau (a rounding difference cannot flip a
decision). The --count counters must show each skip region ran on exactly
the tokens PyTorch keeps (the skipped tokens did no attention work). A
control shows the copy matters: Mixture-of-Depths semantics (skipped tokens
absent from the cache) differ from the reference by far more than the
tolerance. Misuse gives file:line:col errors.

At -O2 the two `kv: previous` attentions run the flash kernel's per-row
position variant (gat_flash_attn_8_8_p in the generated C and in the LLVM IR; the kept rows' positions are not contiguous, so a 64-query tile
spans more than 64 keys; T = 300 is not a multiple of the tile), and
-fno-tile keeps the reference gat_k_attention for all three: both checked on
the emitted code, both run against the reference (also in chunks of 100,
where a chunk's kept rows fill a query tile over a cache that already holds
earlier rows)."""
import math
import os
import subprocess

import torch

from e2e_util import Case, check, has_llvm, parse_args, perturb, read_st, run_counted, set_weights, summary, write_st

D, H, F, TAU, T = 16, 2, 24, 0.5, 300
DH = D // H
RTOL = 1e-4
MARGIN = 2e-4
F_ = torch.nn.functional

SRC = f"""import std

layer attn_branch(h: f32[T, D], heads: int) -> f32[T, D] {{
  q = rope(linear(h, D) @ "q_proj" as [T, heads, D / heads])
  k = rope(linear(h, D) @ "k_proj" as [T, heads, D / heads])
  v = linear(h, D) @ "v_proj" as [T, heads, D / heads]
  return linear(attention(q, k, v) as [T, D], D) @ "o_proj"
}}

model kvcopy {{
  const tau = {TAU}
  max T = 320
  input  x : f32[T, {D}]
  output y : f32[T, {D}]
  repeat i in 0..3 @ "layers.{{i}}" {{
    h = rms_norm(x) @ "norm1"
    g = skip_gate(h) @ "attn_gate"
    if i == 0 {{
      x = x + g * attn_branch(h, heads: {H}) @ "attn"
    }} else {{
      x = x + g * attn_branch(h, heads: {H}) @ "attn" skip when mean(g, axis: -1) < tau, kv: previous
    }}
    x = x + swiglu(rms_norm(x) @ "norm2", hidden: {F}) @ "mlp"
  }}
  y = x
}}
"""


def rms(x, w, eps=1e-5):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x):
    """rotate-half RoPE at absolute positions 0..T-1, base 10000, x [T, H, d]"""
    n, d = x.shape[0], x.shape[-1]
    inv = 10000.0 ** (-torch.arange(0, d // 2, dtype=torch.float64) * 2 / d)
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def reference(x, W, kv_copy=True):
    """Returns y, the kept tokens per skipped layer and the smallest
    |mean(g) - tau| over the skip decisions (with the first token where it is
    below MARGIN). kv_copy=False gives Mixture-of-Depths semantics instead:
    a skipped token is absent from that layer's cache (the control)."""
    n = x.shape[0]
    kprev = vprev = None
    kept, worst = [], (math.inf, None)
    for i in range(3):
        p = f"layers.{i}."
        h = rms(x, W[p + "norm1.weight"])
        g = torch.sigmoid(h @ W[p + "attn_gate.weight"].T + W[p + "attn_gate.bias"])
        q = rope((h @ W[p + "attn.q_proj.weight"].T).reshape(n, H, DH))
        k = rope((h @ W[p + "attn.k_proj.weight"].T).reshape(n, H, DH))
        v = (h @ W[p + "attn.v_proj.weight"].T).reshape(n, H, DH)
        keep = torch.ones(n, dtype=torch.bool)
        if i > 0:
            s = g.mean(-1)
            keep = s >= TAU
            m = (s - TAU).abs()
            close = [int(t) for t in (m < MARGIN).nonzero()[:, 0]]
            first = min([t for t in (worst[1], *close[:1]) if t is not None], default=None)
            worst = (min(worst[0], m.min().item()), first)
            if kv_copy:  # GateSkip: a skipped token's K/V are layer l-1's
                k = torch.where(keep[:, None, None], k, kprev)
                v = torch.where(keep[:, None, None], v, vprev)
            kept.append(int(keep.sum()))
        # causal attention over the cache rows (the whole layer's rows, or
        # with MoD semantics only the kept ones)
        logits = torch.einsum("thd,shd->hts", q, k) / math.sqrt(DH)
        mask = torch.ones(n, n, dtype=torch.bool).tril()
        if not kv_copy:
            mask = mask & keep[None, :]
        a = torch.softmax(logits.masked_fill(~mask[None], float("-inf")), -1)
        o = torch.einsum("hts,shd->thd", a, v).reshape(n, D) @ W[p + "attn.o_proj.weight"].T
        x = torch.where(keep[:, None], x + g * o, x)
        kprev, vprev = k, v
        h2 = rms(x, W[p + "norm2.weight"])
        x = x + (F_.silu(h2 @ W[p + "mlp.gate_proj.weight"].T) * (h2 @ W[p + "mlp.up_proj.weight"].T)) \
            @ W[p + "mlp.down_proj.weight"].T
    return x, kept, worst


def pick_inputs(W, gen):
    """Random inputs, redrawn token by token (left to right: a token only
    changes later tokens) until no skip decision is within MARGIN of tau."""
    x = torch.randn(T, D, generator=gen)
    for _ in range(200):
        _, _, (m, t) = reference(x.double(), W)
        if t is None:
            return x, m
        x[t] = torch.randn(D, generator=gen)
    raise SystemExit("could not find inputs away from the threshold")


def run_o(c, x, tag, opt, step=0, jit=False):
    """gattnc run with an explicit -O level (compiled C), or --jit."""
    ipath = os.path.join(c.dir, f"{c.name}.{tag}.in.safetensors")
    opath = os.path.join(c.dir, f"{c.name}.{tag}.safetensors")
    write_st(ipath, {"x": x})
    argv = ["run", c.src, "--weights", c.wpath, "--inputs", ipath, "-o", opath, opt]
    if jit:
        argv.append("--jit")
    if step:
        argv += ["--step", str(step)]
    c.gattnc_run(*argv)
    return read_st(opath)["y"].double()


def emitted(c, *opts):
    """The generated C (or, with --emit=llvm, the LLVM IR) of the model with the given options."""
    llvm = "--emit=llvm" in opts
    out = os.path.join(c.dir, "emit" + "".join(o.replace("=", "_") for o in opts) + (".ll" if llvm else ".c"))
    c.gattnc_run(c.src, "-o", out, *opts)
    with open(out) as f:
        return f.read()


def attentions(src, fn):
    """How many attentions call flash variant fn: each appends its K/V rows once, in its whole
    call (part 0) or in the append call pass block splits off (part 1; its heads follow, part 2)."""
    return src.count(f"{fn}(&A, 0, ") + src.count(f"{fn}(&A, 1, ")


def kernel_checks(c, jit):
    """Which attention kernel each backend calls: flash with positions at -O2, reference with -fno-tile."""
    results = []
    src = emitted(c, "-O2")
    ok = attentions(src, "gat_flash_attn_8_8_p") == 2 and attentions(src, "gat_flash_attn_8_8") == 1 \
        and "gat_k_attention(&A)" not in src
    print(f"{'ok' if ok else 'FAIL'}: C -O2: the two kv: previous attentions call gat_flash_attn_8_8_p, layer 0 "
          f"gat_flash_attn_8_8")
    results.append(ok)
    src = emitted(c, "-O2", "-fno-tile")
    ok = src.count("gat_k_attention(&A);") == 3 and "gat_flash_attn" not in src
    print(f"{'ok' if ok else 'FAIL'}: C -O2 -fno-tile: all three attentions call the reference gat_k_attention")
    results.append(ok)
    if jit:
        ir = emitted(c, "-O2", "--emit=llvm")
        ok = "@gat_flash_attn_8_8_p(" in ir and "@gat_k_attention" not in ir  # (one call may be inlined)
        ir = emitted(c, "-O2", "-fno-tile", "--emit=llvm")
        ok = ok and "gat_flash_attn" not in ir and "gat_fa_" not in ir and "@gat_k_attention" in ir
        print(f"{'ok' if ok else 'FAIL'}: LLVM -O2: gat_flash_attn_8_8_p; -fno-tile: only gat_k_attention")
        results.append(ok)
    return results


def diag_cases(args):
    """Misuse of `kv: previous`: each source must fail with its message at its place."""
    pre = "import std\nmodel m {\n  input x : f32[T, 8]\n  output y : f32[T, 8]\n  c = mean(x, axis: -1)\n"
    att = "attention(x as [T, 2, 4], x as [T, 2, 4], x as [T, 2, 4]) as [T, 8]"
    att1 = "attention(x as [T, 1, 8], x as [T, 1, 8], x as [T, 1, 8]) as [T, 8]"
    cases = [
        ("no previous attention",
         f"  h = x\n  h = {att} skip when c > 0, kv: previous\n  y = h\n",
         "7:92: error: 'kv: previous' needs an earlier attention to copy keys and values from"),
        ("no attention in the body",
         f"  a = {att}\n  h = x\n  h = x * 2 skip when c > 0, kv: previous\n  y = h + a\n",
         "8:30: error: 'kv: previous' copies keys and values into an attention's KV cache, but the skipped "
         "value has no attention"),
        ("cache shapes differ",
         f"  a = {att}\n  h = x\n  h = {att1} skip when c > 0, kv: previous\n  y = h + a\n",
         "8:92: error: 'kv: previous': the previous attention caches keys [2, 4] and values [2, 4] per token, "
         "but this attention caches keys [1, 8] and values [1, 8]"),
        ("previous attention packed",
         f"  h = x\n  h = {att} skip when c > 0\n  h = {att} skip when c > 0, kv: previous\n  y = h\n",
         "8:92: error: 'kv: previous': the previous attention runs under a skip or route without "
         "'kv: previous'"),
        ("unknown option",
         f"  h = x\n  h = {att} skip when c > 0, cache: previous\n  y = h\n",
         "7:92: error: unknown skip option 'cache' (the only one is 'kv: previous')"),
        ("unknown value",
         f"  h = x\n  h = {att} skip when c > 0, kv: next\n  y = h\n",
         "7:96: error: 'kv:' of a skip must be 'previous'"),
    ]
    results = []
    for label, body, want in cases:
        path = os.path.join(args.workdir, "diag_" + label.replace(" ", "_") + ".gat")
        with open(path, "w") as f:
            f.write(pre + body + "}\n")
        p = subprocess.run([args.gattnc, path, "--dump-ir"], capture_output=True, text=True, timeout=60)
        text = p.stdout + p.stderr
        ok = p.returncode == 1 and (os.path.basename(path) + ":" + want) in text and "internal error" not in text
        print(f"{'ok' if ok else 'FAIL'}: error for {label}: {want}")
        if not ok:
            print(text)
        results.append(ok)
    return results


def main():
    args = parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    results = diag_cases(args)

    c = Case(args, "kvcopy", SRC)
    W = perturb(c.weights, seed=2, scale=0.2)
    for i in (1, 2):  # gates spread around tau, so some tokens skip
        W[f"layers.{i}.attn_gate.weight"] = W[f"layers.{i}.attn_gate.weight"] * 60
        W[f"layers.{i}.attn_gate.bias"] = W[f"layers.{i}.attn_gate.bias"] * 0
    set_weights(c, W)
    x, margin = pick_inputs(c.weights, torch.Generator().manual_seed(7))
    want, kept, _ = reference(x.double(), c.weights)
    print(f"kept tokens of the two skipped attention branches: {kept} of {T} "
          f"(smallest |mean(g) - tau| = {margin:.2g})")
    results.append(all(0 < k < T for k in kept))

    mod, _, _ = reference(x.double(), c.weights, kv_copy=False)
    rel = (mod - want).abs().max().item() / want.abs().max().item()
    print(f"{'ok' if rel > 100 * RTOL else 'FAIL'}: control: MoD semantics (no copy) differ from the KV-copy "
          f"reference by {rel:.3g} relative")
    results.append(rel > 100 * RTOL)

    # interpreter (with counters), then the compiled backends
    cpath = os.path.join(args.workdir, "counts.json")
    for how, step in (("prefill", 0), ("decode", 1), ("chunks of 7", 7)):
        out, ops = run_counted(c, {"x": x}, cpath, "interp." + how.replace(" ", "_"), step=step)
        results.append(check(f"interp {how}", out["y"], want, RTOL))
        rows = [o["rows"] for o in ops if o["kind"] == "skip"]
        toks = [o["tokens"] for o in ops if o["kind"] == "skip"]
        ok = rows == kept and toks == [T, T]
        print(f"{'ok' if ok else 'FAIL'}: interp {how}: skip regions ran on {rows} of {toks} tokens == PyTorch {kept}")
        results.append(ok)
    for how, step in (("prefill", 0), ("decode", 1)):
        out, ops = run_counted(c, {"x": x}, cpath, "c." + how, step=step, compiled=True)
        results.append(check(f"C -O2 --count {how}", out["y"], want, RTOL))
        rows = [o["rows"] for o in ops if o["kind"] == "skip"]
        ok = rows == kept
        print(f"{'ok' if ok else 'FAIL'}: C {how}: skip regions (the attention branches) ran on {rows} rows "
              f"== PyTorch {kept}: skipped tokens did no attention work")
        results.append(ok)
    jit = c.backend == "jit"
    results += kernel_checks(c, jit)
    # -O2 prefill and decode of the C backend ran above (with --count)
    runs = [("-O0", 0), ("-O0", 1), ("-O0", 7), ("-O2", 7), ("-O2", 100), ("-fno-tile", 0)] + \
        ([("-O2", 0), ("-O2", 1)] if jit else [])
    for opt, step in runs:
        how = {0: "prefill", 1: "decode", 7: "chunks of 7", 100: "chunks of 100"}[step]
        name = ("LLVM JIT " if jit else "C ") + opt
        out = run_o(c, x, f"{opt}.{step}", opt, step=step, jit=jit)
        results.append(check(f"{name} {how}", out, want, RTOL))
    if not jit and has_llvm(c.gattnc):  # the LLVM backend also in the C registration (prefill and mixed chunks)
        for opt, step in (("-O2", 0), ("-O2", 1), ("-O0", 7)):
            how = {0: "prefill", 1: "decode", 7: "chunks of 7"}[step]
            out = run_o(c, x, f"jit{opt}.{step}", opt, step=step, jit=True)
            results.append(check(f"LLVM JIT {opt} {how}", out, want, RTOL))
    return summary(results)


if __name__ == "__main__":
    raise SystemExit(main())
