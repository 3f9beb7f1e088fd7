#!/usr/bin/env python3
"""PyTorch counterpart of bench/m1_gated_attention.gat (benchmark model M1): a
4-layer gated-attention LM written from the math of
docs/layers.md, "Gated softmax attention" (no library
attention code), with the parameter names of the .gat file (HF Qwen3 names,
plus `self_attn.g_proj` for the elementwise output gate), so it loads the same
safetensors weights as gattnc.

Attention keeps a KV cache (rows appended at absolute positions, RoPE at the
absolute position), so prefill and decode use the same forward.

  /usr/bin/python3 bench/m1_gated_attention.py --gattnc build/gattnc --check [--T 16] [--compiled]
      makes `gattnc init` weights (plus noise), runs `gattnc run --interp` (prefill and
      --step 1 decode) on random tokens and prints the agreement with this
      model (float64; float32 prefill + decode);
  /usr/bin/python3 bench/m1_gated_attention.py --weights W.safetensors --bench
      times float32 prefill of T = 512 and 128 decode steps."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import refmodels as rm  # noqa: E402

VOCAB, D, N_LAYERS, HEADS, HEAD_DIM, HIDDEN, ROPE_BASE = 4096, 512, 4, 8, 64, 1408, 10000.0


class M1(rm.PreNormLM):
    """state_dict keys: model.embed_tokens.weight, model.layers.{i}.{input_layernorm,
    self_attn.{q,k,v,g,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj},
    model.norm.weight, lm_head.weight."""

    def __init__(self):
        super().__init__([rm.GatedAttention(D, HEADS, HEAD_DIM, ROPE_BASE) for _ in range(N_LAYERS)],
                         VOCAB, D, HIDDEN, embed_name="embed_tokens", names=rm.HF_NAMES)


def load(path, dtype):
    return rm.load_model(M1(), path, dtype, "M1")


def check(args):
    return rm.lm_check(args, load, "M1", "m1_gated_attention", "m1", VOCAB, chunked=False)


def bench(args):
    return rm.lm_bench(args, load, "M1", VOCAB, chunked=False)


if __name__ == "__main__":
    sys.exit(rm.cli(check, bench, "/tmp/m1_gated_attention"))
