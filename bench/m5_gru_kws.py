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
import argparse
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from e2e_util import perturb, read_st, write_st  # noqa: E402

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
    m = M5().to(dtype)
    w = read_st(path)
    m.load_state_dict({k: v.to(dtype) for k, v in w.items()})  # strict
    return m.eval()


def gattnc(exe, *argv):
    p = subprocess.run([exe, *argv], capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"gattnc {' '.join(argv)} failed:\n{p.stdout}{p.stderr}")


def rel(got, want):
    return ((got.double() - want.double()).abs().max() / want.double().abs().max()).item()


def check(args):
    os.makedirs(args.workdir, exist_ok=True)
    src = os.path.join(HERE, "m5_gru_kws.gat")
    wpath = args.weights or os.path.join(args.workdir, "m5.weights.safetensors")
    if not args.weights:
        gattnc(args.gattnc, "init", src, "-o", wpath, "--seed", "3")
        w = perturb({k: v.double() for k, v in read_st(wpath).items()}, seed=1, scale=0.05)
        write_st(wpath, {k: v.float() for k, v in w.items()})
    g = torch.Generator().manual_seed(0)
    mel = torch.randn(args.T, FEATURES, generator=g)
    ipath = os.path.join(args.workdir, "m5.in.safetensors")
    write_st(ipath, {"mel": mel})
    outs = {}
    for label, extra in [("interp prefill", ["--interp"]), ("interp decode", ["--interp", "--step", "1"])] + (
            [("C prefill", []), ("C decode", ["--step", "1"])] if args.compiled else []):
        opath = os.path.join(args.workdir, f"m5.{label.replace(' ', '_')}.safetensors")
        gattnc(args.gattnc, "run", src, "--weights", wpath, "--inputs", ipath, "-o", opath, *extra)
        outs[label] = read_st(opath)["logits"]
    with torch.no_grad():
        ref, _ = load(wpath, torch.float64)(mel.double())
        y32, _ = load(wpath, torch.float32)(mel)
    print(f"M5, T = {args.T} frames, logits [{args.T}, {KEYWORDS}]; metric max|a - b| / max|b|, "
          f"b = PyTorch float64")
    print(f"  PyTorch float32: {rel(y32, ref):.3g}")
    worst = 0.0
    for label, y in outs.items():
        r = rel(y, ref)
        worst = max(worst, r)
        print(f"  gattnc {label}: {r:.3g}   (vs PyTorch float32: {rel(y, y32):.3g})")
    ok = worst <= 1e-4
    print(("ok" if ok else "FAIL") + f": gattnc agrees with PyTorch within {worst:.3g} (tolerance 1e-4)")
    return 0 if ok else 1


def bench(args):
    torch.set_num_threads(args.threads)
    m = load(args.weights, torch.float32)
    g = torch.Generator().manual_seed(0)
    mel = torch.randn(100, FEATURES, generator=g)
    with torch.inference_mode():
        utt, frame = [], []
        for _ in range(args.reps + 1):
            t0 = time.perf_counter()
            m(mel)
            t1 = time.perf_counter()
            h = None
            for t in range(100):
                _, h = m(mel[t:t + 1], h)
            t2 = time.perf_counter()
            utt.append(t1 - t0)
            frame.append((t2 - t1) / 100)
    utt, frame = sorted(utt[1:]), sorted(frame[1:])
    print(f"PyTorch eager M5 ({args.threads} threads): 100-frame utterance median {utt[len(utt) // 2] * 1e3:.2f} ms "
          f"[{utt[0] * 1e3:.2f}, {utt[-1] * 1e3:.2f}]; streaming median {frame[len(frame) // 2] * 1e6:.0f} us/frame "
          f"[{frame[0] * 1e6:.0f}, {frame[-1] * 1e6:.0f}]")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gattnc", help="path of the gattnc binary (for --check)")
    ap.add_argument("--weights", help="safetensors weights (default for --check: fresh `gattnc init` weights)")
    ap.add_argument("--workdir", default="/tmp/m5_gru_kws")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--compiled", action="store_true", help="(--check) also compare the compiled C")
    ap.add_argument("--T", type=int, default=100)
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
