#!/usr/bin/env python3
"""Writes a safetensors file with one i32 tensor of random token ids.

usage: make_tokens.py OUT.safetensors NAME T VOCAB [SEED]
Uses only the standard library, so the demo runs without numpy or torch."""
import json
import random
import struct
import sys


def main():
    out, name, T, vocab = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    rng = random.Random(seed)
    ids = [rng.randrange(vocab) for _ in range(T)]
    data = struct.pack(f"<{T}i", *ids)
    header = json.dumps({name: {"dtype": "I32", "shape": [T], "data_offsets": [0, len(data)]}},
                        separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)


if __name__ == "__main__":
    main()
