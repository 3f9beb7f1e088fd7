#!/usr/bin/env python3
"""PyTorch counterpart of bench/m5_gru_kws.gat (benchmark model M5): a
keyword-spotting GRU, torch.nn.GRU(40, 128, num_layers=2) followed by
nn.Linear(128, 12) per frame. It loads the same safetensors weights as gattnc
(strict load_state_dict: the names are the module's own).

  /usr/bin/python3 bench/m5_gru_kws.py --gattnc build/gattnc --check [--T 100] [--compiled]
      makes `gattnc init` weights (plus noise), runs `gattnc run --interp`
      (prefill, and --step 1 streaming) on random features and prints the
      agreement with this model in float64 and float32;
  /usr/bin/python3 bench/m5_gru_kws.py --weights W.safetensors --bench
      times one 100-frame utterance (one call) and per-frame streaming."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import refmodels as rm  # noqa: E402

FEATURES, HIDDEN, LAYERS, KEYWORDS = 40, 128, 2, 12


class M5(nn.Module):
    """state_dict keys: gru.{weight_ih,weight_hh,bias_ih,bias_hh}_l{0,1}, classifier.{weight,bias}."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(FEATURES, HIDDEN, num_layers=LAYERS)
        self.classifier = nn.Linear(HIDDEN, KEYWORDS)

    def forward(self, mel, h=None):  # mel [T, 40]; h [2, 1, 128] carries over calls
        y, h = self.gru(mel[:, None, :], h)
        return self.classifier(y[:, 0, :]), h


def load(path, dtype):
    return rm.load_model(M5(), path, dtype, "M5")


def check(args):
    g = torch.Generator().manual_seed(0)
    mel = torch.randn(args.T, FEATURES, generator=g)
    wpath, outs = rm.gattnc_outputs(args, "m5_gru_kws", "m5", {"mel": mel}, scale=0.05)
    with torch.no_grad():
        ref, _ = load(wpath, torch.float64)(mel.double())
        y32, _ = load(wpath, torch.float32)(mel)
    header = (f"M5, T = {args.T} frames, logits [{args.T}, {KEYWORDS}]; metric max|a - b| / max|b|, "
              f"b = PyTorch float64")
    return rm.report(header, [("PyTorch float32", rm.rel(y32, ref))], outs, ref, y32)


def bench(args):
    torch.set_num_threads(args.threads)
    m = load(args.weights, torch.float32)
    g = torch.Generator().manual_seed(0)
    mel = torch.randn(100, FEATURES, generator=g)

    def run():
        t0 = time.perf_counter()
        m(mel)
        t1 = time.perf_counter()
        h = None
        for t in range(100):
            _, h = m(mel[t:t + 1], h)
        t2 = time.perf_counter()
        return t1 - t0, (t2 - t1) / 100

    with torch.inference_mode():
        utt, frame = rm.time_reps(args.reps, run)
    print(f"PyTorch eager M5 ({args.threads} threads): 100-frame utterance {rm.summary(utt, 1e3, 2, 'ms')}; "
          f"streaming {rm.summary(frame, 1e6, 0, 'us/frame')}")
    return 0


if __name__ == "__main__":
    sys.exit(rm.cli(check, bench, "/tmp/m5_gru_kws", T=100))
