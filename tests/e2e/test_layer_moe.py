#!/usr/bin/env python3
"""MoE FFN heads (docs/layers.md "Mixture-of-experts FFN"): Mixtral (softmax,
renormalised), Qwen2/3-MoE (norm_topk_prob on/off, gated shared expert) and
DeepSeek-V3 (sigmoid router, e_score_correction_bias, group-limited top-k,
routed_scaling_factor) against float64 PyTorch references written from the
math of that section. The references are DENSE: every
expert runs on every token and the routing weights zero the unchosen ones, so
agreement checks gattnc's sparse path against the dense one. The execution
counters (`gattnc run --count FILE`: the interpreter's, and those a --count
build of the generated C keeps) must show each expert ran on exactly the
tokens the PyTorch router chose for it, and unchosen experts on none, in
every run (prefill and decode: routing is per token, so the totals agree)."""
import os

import torch

from e2e_util import Case, check, parse_args, perturb, run_counted, set_weights

E, D, F = 8, 32, 16


def swiglu(x, W, p):
    g = x @ W[p + "gate_proj.weight"].T
    return (torch.nn.functional.silu(g) * (x @ W[p + "up_proj.weight"].T)) @ W[p + "down_proj.weight"].T


def dense_mix(x, W, p, comb):
    """comb [T, E]: the routing weight of every expert (0 if unchosen)."""
    y = torch.zeros_like(x)
    for e in range(E):
        y = y + comb[:, e:e + 1] * swiglu(x, W, f"{p}experts.{e}.")
    return y


def scatter(T, idx, w):
    comb = torch.zeros(T, E, dtype=torch.float64)
    return comb.scatter(1, idx, w)


def ref_softmax(x, W, p, k, norm):
    prob = torch.softmax(x @ W[p + "gate.weight"].T, dim=-1)
    w, idx = torch.topk(prob, k, dim=-1)
    if norm:
        w = w / w.sum(-1, keepdim=True)
    return dense_mix(x, W, p, scatter(x.shape[0], idx, w)), idx


def ref_qwen2(x, W, p, k, norm):
    y, idx = ref_softmax(x, W, p, k, norm)
    sg = torch.sigmoid(x @ W[p + "shared_expert_gate.weight"].T)
    return y + sg * swiglu(x, W, p + "shared_expert."), idx


def ref_deepseek(x, W, p, k, n_group, topk_group, norm, scale):
    T = x.shape[0]
    s = torch.sigmoid(x @ W[p + "gate.weight"].T)
    choice = s + W[p + "gate.e_score_correction_bias"]
    gscore = choice.view(T, n_group, -1).topk(2, dim=-1)[0].sum(-1)
    gidx = gscore.topk(topk_group, dim=-1)[1]
    gmask = torch.zeros(T, n_group, dtype=torch.float64).scatter(1, gidx, 1.0)
    emask = gmask.unsqueeze(-1).expand(T, n_group, E // n_group).reshape(T, E)
    idx = choice.masked_fill(emask == 0, float("-inf")).topk(k, dim=-1)[1]
    w = s.gather(1, idx)
    if norm:
        w = w / (w.sum(-1, keepdim=True) + 1e-20)
    w = w * scale
    y = dense_mix(x, W, p, scatter(T, idx, w))
    return y + swiglu(x, W, p + "shared_experts."), idx


CASES = {
    "mixtral": ("moe_ffn(x, experts: 8, hidden: 16, top_k: 2)",
                lambda x, W: ref_softmax(x, W, "", 2, True)),
    "qwen_nonorm": ("qwen_moe_ffn(x, experts: 8, hidden: 16, top_k: 2)",
                    lambda x, W: ref_softmax(x, W, "", 2, False)),
    "qwen2_shared_norm": ("qwen2_moe_ffn(x, experts: 8, hidden: 16, shared_hidden: 24, top_k: 3, norm_topk_prob: true)",
                          lambda x, W: ref_qwen2(x, W, "", 3, True)),
    "deepseek_v3": ("deepseek_moe(x, experts: 8, hidden: 16, shared_hidden: 16, top_k: 2, n_group: 4, topk_group: 2, "
                    "routed_scaling_factor: 2.5)",
                    lambda x, W: ref_deepseek(x, W, "", 2, 4, 2, True, 2.5)),
    "deepseek_nonorm": ("deepseek_moe(x, experts: 8, hidden: 16, shared_hidden: 16, top_k: 3, n_group: 2, topk_group: 1, "
                        "norm_topk_prob: false)",
                        lambda x, W: ref_deepseek(x, W, "", 3, 2, 1, False, 1.0)),
}


def main():
    args = parse_args()
    passed = failed = 0
    for name, (call, ref) in CASES.items():
        src = f"import std\nmodel moe_{name} {{\n  max T = 1100\n  input x : f32[T, {D}]\n  output y : f32[T, {D}]\n" \
              f"  y = {call}\n}}\n"
        c = Case(args, f"moe_{name}", src)
        W = perturb(c.weights, seed=7, scale=0.1)
        if "gate.e_score_correction_bias" in W:  # make the bias move the selection
            W["gate.e_score_correction_bias"] = 0.3 * torch.randn(E, generator=torch.Generator().manual_seed(5),
                                                                   dtype=torch.float64)
        W["gate.weight"] = W["gate.weight"] * 10  # a sharper router: fewer near-ties
        set_weights(c, W)
        # T = 1024 only for the two routers with the most logic, to keep the script short.
        for T in (1, 7, 64, 1024) if name in ("mixtral", "deepseek_v3") else (1, 7, 64):
            x = torch.randn(T, D, generator=torch.Generator().manual_seed(T), dtype=torch.float64)
            want, idx = ref(x, c.weights)
            runs = [("interp prefill", dict()), ("C prefill", dict(compiled=True))]
            if T <= 7 or (T == 64 and name == "deepseek_v3"):
                runs += [("interp decode", dict(step=1)), ("C decode", dict(step=1, compiled=True))]
            cpath = os.path.join(args.workdir, f"moe_{name}.count.json")
            # What PyTorch's router implies: rows per expert; in prefill an
            # expert runs once if any token chose it, in decode once per token
            # that chose it.
            want_rows = [int((idx == e).any(-1).sum()) for e in range(E)]
            for label, kw in runs:
                got, ops = run_counted(c, {"x": x.float()}, cpath, label.replace(" ", "_"), **kw)
                ok = check(f"{name} T={T} {label} vs dense reference", got["y"], want, 1e-4)
                passed += ok
                failed += not ok
                mix = [o for o in ops if o["kind"] == "mixture"]
                ok = len(mix) == 1 and mix[0]["experts"] == want_rows and mix[0]["tokens"] == T
                if ok and "calls" in mix[0]:  # the compiled counters also count region calls
                    decode = kw.get("step") == 1
                    want_calls = want_rows if decode else [int(r > 0) for r in want_rows]
                    ok = mix[0]["calls"] == want_calls
                print(f"{'ok' if ok else 'FAIL'}: {name} T={T} {label}: expert rows "
                      f"{mix[0]['experts'] if mix else None}, calls {mix[0].get('calls') if mix else None} "
                      f"== PyTorch routing {want_rows} (sum {sum(want_rows)} = T*k, unchosen experts 0 rows)")
                passed += ok
                failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
