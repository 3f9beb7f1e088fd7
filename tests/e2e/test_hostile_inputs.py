"""Hostile sizes and inputs: each is a clear error (exit status 1, or 2 for a
bad option), never a crash, a wrong size or a half-written output.

For every case gattnc must end without a signal, with the expected status,
with the expected message (file:line:col where the error has a place), and
must not write its output file. The .gat reproducers with located errors are
in tests/diag (limit_*.gat); this script covers what a diag test cannot: .ir
input, --no-verify, weights files, directories and devices as inputs, the
arena limit, and output names that are not C identifiers (which must give a
header and source that compile with -Wall -Wextra -pedantic -Werror).
Inputs in tests/e2e/hostile/."""
import os
import subprocess
import sys

import torch

from e2e_util import SANITIZED, parse_args, write_st

SRC = os.environ.get("GAT_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HOSTILE = os.path.join(SRC, "tests", "e2e", "hostile")
TINY = os.path.join(SRC, "examples", "tiny_lm.gat")
FAILS = []


def expect_error(label, argv, want, out=None, status=1):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    err = p.stdout + p.stderr
    bad = []
    if p.returncode < 0:
        bad.append(f"killed by signal {-p.returncode}")
    elif p.returncode != status:
        bad.append(f"exit status {p.returncode}, expected {status}")
    for w in want:
        if w not in err:
            bad.append(f"missing {w!r}")
    if "internal error" in err or "this is a bug" in err:
        bad.append("reports an internal error")
    if out and os.path.exists(out):
        bad.append(f"wrote {out}")
    print(("FAIL: " if bad else "ok: ") + label + ("; ".join([""] + bad) if bad else ""))
    if bad:
        print("  $ " + " ".join(argv) + "\n  " + err[:2000].replace("\n", "\n  "))
        FAILS.append(label)


def main():
    args = parse_args()
    g, wd = args.gattnc, args.workdir
    os.makedirs(wd, exist_ok=True)
    out = os.path.join(wd, "out.c")
    for f in os.listdir(wd):
        os.remove(os.path.join(wd, f)) if os.path.isfile(os.path.join(wd, f)) else None

    ir1 = os.path.join(HOSTILE, "ir_dim_int64max.ir")
    expect_error("IR dimension 2^63 - 1", [g, ir1, "-o", out],
                 [f"{ir1}:75:27: error: dimension 9223372036854775807 is over the limit of 2147483647"], out)
    ir2 = os.path.join(HOSTILE, "ir_noverify_load99.ir")
    for flags in ([], ["--no-verify"]):
        expect_error(f"IR load of operand 99 {' '.join(flags)}", [g, ir2, "-o", out] + flags,
                     ["not valid IR", "loads operand 99, but the op has 5 operands"], out)
        expect_error(f"IR load of operand 99, interpreter {' '.join(flags)}",
                     [g, "run", ir2, "--interp", "--weights", ir2, "--inputs", ir2, "-o", out] + flags,
                     ["loads operand 99"], out)

    d = os.path.join(wd, "a_directory")
    os.makedirs(d, exist_ok=True)
    expect_error("directory as model file", [g, d, "-o", out], ["is a directory"], out)
    expect_error("/dev/zero as model file", [g, "/dev/zero", "-o", out], ["at most 256 MiB"], out)

    tok = os.path.join(wd, "tokens.safetensors")
    write_st(tok, {"tokens": torch.arange(8, dtype=torch.int32)})
    wts = os.path.join(wd, "w.safetensors")
    subprocess.run([g, "init", TINY, "-o", wts], check=True)
    o_st = os.path.join(wd, "out.safetensors")
    for what, w, i, msg in (("weights", "/dev/zero", tok, "header"), ("inputs", wts, "/dev/zero", "header"),
                            ("weights", d, tok, "Is a directory")):
        for mode in (["--interp"], []):
            expect_error(f"{i if what == 'inputs' else w} as {what} file {' '.join(mode)}",
                         [g, "run", TINY, "--weights", w, "--inputs", i, "-o", o_st] + mode, [msg], o_st)
    expect_error("/dev/zero as embedded weights", [g, TINY, "--embed-weights", "/dev/zero", "-o", out],
                 ["/dev/zero", "header"], out)

    # linear(x, 2^62) with weights whose header claims that shape: the size is named
    huge = os.path.join(SRC, "tests", "diag", "limit_linear_dim.gat")
    expect_error("linear(x, 2^62) run", [g, "run", huge, "--interp", "--weights",
                                         os.path.join(HOSTILE, "huge_linear_dim_w.st"), "--inputs", tok,
                                         "-o", o_st], ["dimension 4611686018427387904 is over the limit"], o_st)
    expect_error("--max-seq 2^62", [g, TINY, "--max-seq", "4611686018427387904", "-o", out],
                 ["--max-seq must be in 1..2147483647"], out, status=2)
    for v in ("100", "0", "-96", "96x"):  # pass block's row step: a multiple of 96, an integer
        want = "expects an integer" if v == "96x" else "-fblock-rows must be a multiple of 96"
        expect_error(f"-fblock-rows={v}", [g, TINY, f"-fblock-rows={v}", "-o", out], [want], out, status=2)

    arena = os.path.join(HOSTILE, "arena_2p48.gat")
    expect_error("arena over 2^48 bytes at -O0", [g, arena, "-O0", "-o", out],
                 ["over the limit of 2^48 bytes", "max T = 2147483647"], out)

    # output names that are not C identifiers: a valid model name, C that compiles
    for base, ident in (("int", "int_model"), ("3d-model", "model_3d_model"), ("my-model", "my_model"),
                        ("exp", "exp_model"), ("gat_arena", "gat_arena_model"), ("tiny_lm", "tiny_lm")):
        c = os.path.join(wd, base + ".c")
        p = subprocess.run([g, TINY, "-o", c], capture_output=True, text=True)
        h = os.path.join(wd, base + ".h")
        ok = p.returncode == 0 and os.path.exists(h) and f"typedef struct {ident} {{" in open(h).read()
        if ok and not SANITIZED:
            cc = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-pedantic", "-Werror",
                                 "-I", os.path.join(SRC, "runtime"), "-c", c, "-o", os.path.join(wd, base + ".o")],
                                capture_output=True, text=True)
            ok = cc.returncode == 0
            if not ok:
                print(cc.stderr[:2000])
        print(("ok: " if ok else "FAIL: ") + f"-o {base}.c gives model name {ident}")
        if not ok:
            print(p.stderr[:2000])
            FAILS.append(base)

    if FAILS:
        print(f"{len(FAILS)} case(s) failed: {', '.join(FAILS)}")
        return 1
    print("all hostile inputs give clear errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
