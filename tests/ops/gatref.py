"""gatref.py — shared helpers for the per-op PyTorch reference tests.

Each tests/ops/test_<op>.py writes a graph-IR text module plus weights and
inputs (safetensors) into its --workdir, runs `gattnc run ... --interp`,
computes the expected result in PyTorch (float64, written from the math of
the op, not from our implementation) and compares with a stated tolerance.

The safetensors reader/writer here is our own (json + struct), so the tests do
not depend on the `safetensors` package.
"""
import argparse
import json
import os
import struct
import subprocess
import sys

import torch

_DT = {torch.float32: ("F32", 4), torch.int32: ("I32", 4)}
_FROM = {"F32": torch.float32, "I32": torch.int32}


def write_safetensors(path, tensors):
    """tensors: dict name -> torch tensor (converted to f32 unless int32)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype != torch.int32:
            t = t.to(torch.float32)
        t = t.contiguous()
        code, size = _DT[t.dtype]
        raw = t.numpy().tobytes()
        assert len(raw) == t.numel() * size
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        dt = _FROM[e["dtype"]]
        t = torch.frombuffer(bytearray(data[base + b:base + end]), dtype=dt) if end > b else torch.zeros(0, dtype=dt)
        out[name] = t.reshape(e["shape"]).clone()
    return out


def args():
    p = argparse.ArgumentParser()
    p.add_argument("--gattnc", required=True)
    p.add_argument("--workdir", required=True)
    a = p.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    return a


def fmt_float(x):
    """A float attribute as the IR text wants it (always with '.', 'e', inf or nan)."""
    r = repr(float(x))
    return r


class Test:
    """Collects comparisons; exit(1) at the end if any failed."""

    def __init__(self, name):
        self.name = name
        self.a = args()
        self.failures = 0
        self.count = 0
        torch.manual_seed(1234)

    def path(self, f):
        return os.path.join(self.a.workdir, f)

    def run(self, ir_text, weights, inputs, step=None, tag="run", expect_fail=None):
        """Runs the interpreter; returns the outputs (dict of float64/int tensors)."""
        ir = self.path(tag + ".ir")
        with open(ir, "w") as f:
            f.write(ir_text)
        w, i, o = self.path(tag + "_w.safetensors"), self.path(tag + "_in.safetensors"), self.path(tag + "_out.safetensors")
        write_safetensors(w, weights)
        write_safetensors(i, inputs)
        if os.path.exists(o):
            os.remove(o)
        cmd = [self.a.gattnc, "run", ir, "--interp", "--weights", w, "--inputs", i, "-o", o]
        if step is not None:
            cmd += ["--step", str(step)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if expect_fail is not None:
            ok = r.returncode != 0 and expect_fail in r.stderr
            self.count += 1
            print("%-40s expected failure %s" % (tag, "ok" if ok else "MISSING"))
            if not ok:
                print("  stderr:", r.stderr.strip())
                self.failures += 1
            return None
        if r.returncode != 0:
            print("FAIL %s: gattnc exited with %d\ncommand: %s\nstderr:\n%s" % (tag, r.returncode, " ".join(cmd), r.stderr))
            sys.exit(1)
        out = read_safetensors(o)
        return {k: (v.to(torch.float64) if v.dtype == torch.float32 else v) for k, v in out.items()}

    def check(self, what, got, want, atol=1e-5, rtol=1e-5):
        """max |got - want| <= atol + rtol * |want| elementwise."""
        self.count += 1
        want = torch.as_tensor(want)
        if got is None or tuple(got.shape) != tuple(want.shape):
            print("FAIL %-34s shape %s, expected %s" % (what, None if got is None else tuple(got.shape), tuple(want.shape)))
            self.failures += 1
            return
        if not want.is_floating_point() and not got.is_floating_point():
            bad = int((got.to(torch.int64) != want.to(torch.int64)).sum())
            print("%-40s exact match: %s" % (what, "ok" if bad == 0 else "%d mismatches" % bad))
            if bad:
                print("  got ", got.flatten()[:16].tolist())
                print("  want", want.flatten()[:16].tolist())
                self.failures += 1
            return
        got, want = got.to(torch.float64), want.to(torch.float64)
        same_nan = torch.isnan(got) == torch.isnan(want)
        fin = ~torch.isnan(want)
        err = (got - want).abs()
        err = torch.where(fin & ~(torch.isinf(want) & (got == want)), err, torch.zeros_like(err))
        rel = err / want.abs().clamp_min(1e-30)
        ok = bool(same_nan.all()) and bool((err <= atol + rtol * want.abs()).all())
        mx_abs = float(err.max()) if err.numel() else 0.0
        mx_rel = float(torch.where(want.abs() > 1e-6, rel, torch.zeros_like(rel)).max()) if err.numel() else 0.0
        print("%-40s max abs err %.3g  max rel err %.3g  (atol %g, rtol %g) %s" % (what, mx_abs, mx_rel, atol, rtol, "ok" if ok else "FAIL"))
        if not ok:
            i = int(torch.argmax(err.flatten()))
            print("  worst at flat index %d: got %r want %r" % (i, float(got.flatten()[i]), float(want.flatten()[i])))
            self.failures += 1

    def finish(self):
        print("%s: %d checks, %d failed" % (self.name, self.count, self.failures))
        sys.exit(1 if self.failures else 0)


def f32(t):
    """Rounds a float64 reference input to f32 values (what the file holds)."""
    return t.to(torch.float32).to(torch.float64)
