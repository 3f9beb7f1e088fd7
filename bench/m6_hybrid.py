#!/usr/bin/env python3
"""PyTorch counterpart of bench/m6_hybrid.gat (benchmark model M6): 8 layers
alternating Gated DeltaNet (even layers) and gated softmax attention (odd
layers), each followed by a SwiGLU MLP, written from the math of
docs/layers.md, "Gated softmax attention" and "Gated DeltaNet and DeltaNet"
(no fla or HF code). It loads the same safetensors weights as gattnc.

The Gated DeltaNet block and its two recurrence forms (chunked WY prefill and
token-by-token decode) are M3's, imported from bench/m3_gated_deltanet.py
(same d 512, 4 heads x 128, expand_v 2, eps 1e-6); the SwiGLU MLP, the gated
attention and the --check/--bench harness come from bench/refmodels.py.
The gated attention here: q, k rotated with rotate_half RoPE (base 10000) at
absolute positions, causal softmax with scale dk^-1/2 over a KV cache, output
times sigmoid(g_proj x), then o_proj.

  /usr/bin/python3 bench/m6_hybrid.py --gattnc build/gattnc --check [--T 16] [--compiled]
  /usr/bin/python3 bench/m6_hybrid.py --weights W.safetensors --bench"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import refmodels as rm  # noqa: E402
from m3_gated_deltanet import D, HIDDEN, VOCAB, GatedDeltaNet  # noqa: E402

assert (D, HIDDEN, VOCAB) == (512, 1408, 4096), "M6 shares M3's sizes"
N_LAYERS, ATT_HEADS, ATT_DIM, ROPE_BASE = 8, 8, 64, 10000.0


class M6(rm.PreNormLM):
    """state_dict keys: model.embeddings.weight, model.layers.{i}.{attn_norm,attn.*,mlp_norm,mlp.*}
    (attn = Gated DeltaNet for even i, gated attention for odd i), model.norm.weight, lm_head.weight."""

    def __init__(self):
        super().__init__([GatedDeltaNet() if i % 2 == 0 else rm.GatedAttention(D, ATT_HEADS, ATT_DIM, ROPE_BASE)
                          for i in range(N_LAYERS)], VOCAB, D, HIDDEN)


def load(path, dtype):
    return rm.load_model(M6(), path, dtype, "M6")


def check(args):
    return rm.lm_check(args, load, "M6", "m6_hybrid", "m6", VOCAB, chunked=True)


def bench(args):
    return rm.lm_bench(args, load, "M6", VOCAB, chunked=True)


if __name__ == "__main__":
    sys.exit(rm.cli(check, bench, "/tmp/m6_hybrid"))
