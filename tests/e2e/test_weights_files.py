"""Weights and input files through every reader gattnc has.

- The reproducers in tests/data/safetensors (tiny_lm's weights with one thing
  in the header changed) must fail `gattnc run --interp`, the compiled run and
  the generated NAME_init (a C program built here) alike, each with a message.
- Inputs with T = 0 or with a tensor the model does not have fail the compiled
  and --jit runs exactly as they fail --interp (same message, exit 1).
- `gattnc check-weights` prints ok for good weights and names the first
  non-finite element otherwise (exit 1)."""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_util as U  # noqa: E402

ROOT = os.environ.get("GAT_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data", "safetensors")
SRC = os.path.join(ROOT, "examples", "tiny_lm.gat")
GOOD = os.path.join(DATA, "tiny_lm_w.safetensors")
BAD = ["st_dupkey_offsets.st", "st_dupkey_shape_split.st", "st_dupkey_dtype.st", "st_overlap_same.st",
       "st_name_with_u0000.st", "st_offsets_float.st", "st_header_nul_padding.st", "st_extra_trailing_data.st",
       "st_hlen_short_by_1.st"]

# A C program that binds a weights file through the generated tiny_lm_init.
INIT_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "tiny_lm.h"
int main(int argc, char **argv) {
  FILE *f = fopen(argv[1], "rb");
  if (!f) return 3;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *blob = malloc((size_t)n);
  if (!blob || fread(blob, 1, (size_t)n, f) != (size_t)n) return 3;
  fclose(f);
  size_t alen = TINY_LM_ARENA_BYTES + TINY_LM_WEIGHTS_BYTES;
  void *arena = aligned_alloc(64, (alen + 63) / 64 * 64);
  tiny_lm *m = malloc(tiny_lm_sizeof());
  int st = tiny_lm_init(m, arena, alen, blob, (size_t)n);
  printf("%s: %s\n", gat_status_string(st), st ? tiny_lm_message(m) : "ok");
  return st == GAT_OK ? 0 : 1;
}
"""


def main():
    args = U.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    wd = args.workdir
    fails = 0

    def expect(ok, what):
        nonlocal fails
        print(("ok: " if ok else "FAIL: ") + what)
        fails += not ok

    tokens = os.path.join(wd, "tokens.safetensors")
    U.write_st(tokens, {"tokens": torch.tensor([1, 2, 3, 4], dtype=torch.int32)})
    out = os.path.join(wd, "out.safetensors")
    run = [args.gattnc, "run", SRC, "--inputs", tokens, "-o", out]

    rc, log = U.sh(run + ["--interp", "--weights", GOOD])
    expect(rc == 0, f"good weights run (--interp): {log[:300]}")

    # 1. the reproducers, through the compiler's reader (interp and compiled runs)
    for name in BAD:
        path = os.path.join(DATA, name)
        rc_i, log_i = U.sh(run + ["--interp", "--weights", path])
        rc_c, log_c = U.sh(run + ["--weights", path])
        expect(rc_i == 1 and f"{path}: error: safetensors: " in log_i, f"{name} --interp: {log_i.strip()[:300]}")
        expect(rc_c == 1 and log_c == log_i, f"{name} compiled run fails alike: {log_c.strip()[:300]}")

    # ... and through the generated tiny_lm_init (the runtime binder)
    if not U.SANITIZED:
        c = os.path.join(wd, "tiny_lm.c")
        rc, log = U.sh([args.gattnc, SRC, "-o", c])
        expect(rc == 0, f"compile tiny_lm to C: {log[:300]}")
        with open(os.path.join(wd, "init_main.c"), "w") as f:
            f.write(INIT_MAIN)
        rt = os.path.join(ROOT, "runtime")
        exe = os.path.join(wd, "init_main")
        rc, log = U.sh(["cc", "-std=c11", "-O1", "-I", rt, "-I", wd, os.path.join(wd, "init_main.c"), c,
                        os.path.join(rt, "gat_runtime.c"), os.path.join(rt, "gat_safetensors.c"), "-lm", "-o", exe])
        expect(rc == 0, f"build the NAME_init driver: {log[:500]}")
        rc, log = U.sh([exe, GOOD])
        expect(rc == 0, f"tiny_lm_init on good weights: {log.strip()}")
        for name in BAD:
            rc, log = U.sh([exe, os.path.join(DATA, name)])
            msg = log.split(":", 1)[-1].strip()
            expect(rc == 1 and len(msg) > 10, f"tiny_lm_init refuses {name}: {log.strip()[:300]}")

    # 2. inputs the model cannot take: compiled and --jit runs say what --interp says
    modes = [["--weights", GOOD]]
    if U.has_llvm(args.gattnc):
        modes.append(["--weights", GOOD, "--jit"])
    for name in ["in_T0.st", "in_extra_input.st"]:
        ipath = os.path.join(DATA, name)
        argv = [args.gattnc, "run", SRC, "--inputs", ipath, "-o", out]
        rc_i, log_i = U.sh(argv + ["--interp", "--weights", GOOD])
        expect(rc_i == 1 and "error:" in log_i, f"{name} --interp: {log_i.strip()}")
        for m in modes:
            rc, log = U.sh(argv + m)
            expect(rc == 1 and log == log_i, f"{name} {' '.join(m[2:]) or 'compiled'}: {log.strip()}")

    # 3. check-weights
    rc, log = U.sh([args.gattnc, "check-weights", SRC, GOOD])
    expect(rc == 0 and log.strip() == "ok", f"check-weights on good weights: {log.strip()}")
    rc, log = U.sh([args.gattnc, "check-weights", SRC, os.path.join(DATA, "st_dupkey_dtype.st")])
    expect(rc == 1 and "error: safetensors:" in log, f"check-weights on a corrupt file: {log.strip()[:300]}")
    with open(GOOD, "rb") as f:
        buf = bytearray(f.read())
    (n,) = struct.unpack("<Q", buf[:8])
    hdr = json.loads(buf[8:8 + n])
    names = [k for k in hdr if k != "__metadata__"]  # header order, as check-weights reports
    first, later = names[1], names[-1]
    for value, word in [(float("nan"), "NaN"), (float("-inf"), "-Inf")]:
        bad = bytearray(buf)
        b0 = 8 + n + hdr[first]["data_offsets"][0]
        struct.pack_into("<f", bad, b0 + 4 * 5, value)  # element 5 of the second tensor
        b1 = 8 + n + hdr[later]["data_offsets"][0]
        struct.pack_into("<f", bad, b1, float("inf"))  # and element 0 of the last: not the first
        p = os.path.join(wd, f"w_{word}.safetensors")
        with open(p, "wb") as f:
            f.write(bad)
        rc, log = U.sh([args.gattnc, "check-weights", SRC, p])
        want = f"{p}: error: tensor '{first}' element 5 is {word}"
        expect(rc == 1 and want in log, f"check-weights finds {word}: {log.strip()}")
    # a file that reads but does not fit the model
    small = os.path.join(wd, "w_small.safetensors")
    U.write_st(small, {"x": torch.zeros(2)})
    rc, log = U.sh([args.gattnc, "check-weights", SRC, small])
    expect(rc == 1 and "error:" in log, f"check-weights on weights of another model: {log.strip()[:300]}")

    print("FAILED" if fails else "all ok")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
