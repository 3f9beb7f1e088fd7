#!/usr/bin/env python3
"""Compares two safetensors files tensor by tensor (f32/i32) and prints the
largest absolute and relative differences. Exit 1 if any tensor differs by
more than the tolerance (max |a-b| / max(1, max|a|) > 1e-5).
usage: compare.py A.safetensors B.safetensors [TOL]"""
import json
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    hdr = json.loads(buf[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        fmt = {"F32": "f", "I32": "i"}[e["dtype"]]
        cnt = (end - b) // 4
        out[name] = (e["shape"], struct.unpack(f"<{cnt}{fmt}", buf[base + b:base + end]))
    return out


def main():
    a, b = read(sys.argv[1]), read(sys.argv[2])
    tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
    ok = True
    for name in sorted(a):
        sa, va = a[name]
        sb, vb = b.get(name, (None, None))
        if sa != sb:
            print(f"{name}: shapes differ {sa} vs {sb}")
            ok = False
            continue
        diff = max((abs(x - y) for x, y in zip(va, vb)), default=0.0)
        scale = max(1.0, max((abs(x) for x in va), default=0.0))
        print(f"{name} {sa}: max |diff| = {diff:.3g}, relative {diff / scale:.3g}")
        ok &= diff / scale <= tol
    print("prefill and decode agree" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
