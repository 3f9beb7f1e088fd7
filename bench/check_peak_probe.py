#!/usr/bin/env python3
"""Test of the FMA peak probe (bench/peak_probe.h), which `gattnc bench` and
bench/run.py divide GFLOP/s by: compiled for each x86 instruction set it
targets (gcc and clang, -O3, -march = x86-64, haswell (AVX2, 16 ymm
registers), skylake-avx512 (32 zmm)), the probe's function must

  - keep every chain in registers: no stack operand ((%rsp) / (%rbp)) in its
    inner loop (12 chains of 512-bit vectors on AVX2 spilled, and the probe
    read 7.7 instead of ~100 GFLOP/s);
  - do its multiply-adds on vectors of the target's native width, as many
    chains as the header says (GAT_PEAK_CHAINS; vfmadd on ymm for AVX2, on
    zmm for AVX-512, mulps + addps on xmm for plain x86-64);
  - count its flops as chains x lanes x 2 (GAT_PEAK_FLOPS_PER_ITER), checked
    by running the x86-64 build for a few iterations (any x86-64 machine).

  /usr/bin/python3 bench/check_peak_probe.py [--workdir DIR]"""
import argparse
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MAIN = r"""
#include <stdio.h>
#include "peak_probe.h"
int main(void) {
  printf("chains %d bytes %d flops %d r %g\n", GAT_PEAK_CHAINS, GAT_PEAK_BYTES, GAT_PEAK_FLOPS_PER_ITER,
         (double)gat_peak_probe(1000, 0.5f));
  return 0;
}
"""
# -march, the register of the vectors, the expected chain count, the FMA/multiply mnemonic
TARGETS = [("x86-64", "xmm", 8, r"\bmulps\b"), ("haswell", "ymm", 10, r"\bvfmadd\w+ps\b"),
           ("skylake-avx512", "zmm", 12, r"\bvfmadd\w+ps\b")]


def probe_asm(asm):
    m = re.search(r"^gat_peak_probe[.\w]*:.*?\n(.*?)^\s*\.size", asm, re.S | re.M)
    return m.group(1) if m else None


def hot_loop(body, op):
    """The lines of the loop (a label .. a conditional jump back to it) with the
    most instructions matching op: the probe's inner loop."""
    lines = body.splitlines()
    best = []
    for j, l in enumerate(lines):
        m = re.match(r"\s*j(?!mp)\w+\s+(\.?\w+)", l)
        if not m:
            continue
        starts = [i for i in range(j) if lines[i].startswith(m.group(1) + ":")]
        if starts:
            cand = lines[starts[-1] + 1:j]
            if sum(bool(re.search(op, x)) for x in cand) > sum(bool(re.search(op, x)) for x in best):
                best = cand
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/check_peak_probe")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    src = os.path.join(a.workdir, "probe_main.c")
    with open(src, "w") as f:
        f.write(MAIN)
    fails, checks = [], 0
    for cc in ("gcc", "clang"):
        if not shutil.which(cc):
            print(f"skip: {cc} not found")
            continue
        for march, reg, chains, op in TARGETS:
            asm_path = os.path.join(a.workdir, f"{cc}_{march}.s")
            p = subprocess.run([cc, "-std=gnu11", "-O3", f"-march={march}", "-Wall", "-Wextra", "-Werror", "-I", HERE,
                                "-S", src, "-o", asm_path], capture_output=True, text=True)
            checks += 1
            if p.returncode != 0:
                fails.append(f"{cc} -march={march}: does not compile warning-free:\n{p.stderr[-800:]}")
                continue
            body = probe_asm(open(asm_path).read())
            if body is None:
                fails.append(f"{cc} -march={march}: no gat_peak_probe function in the assembly")
                continue
            loop = hot_loop(body, op)
            spills = [l for l in loop if re.search(r"\((%rsp|%rbp)\)", l)]
            ops = [l for l in loop if re.search(op, l) and f"%{reg}" in l]
            ok = not spills and len(ops) >= chains
            print(f"{'ok' if ok else 'FAIL'}: {cc} -march={march}: {len(spills)} stack operands, "
                  f"{len(ops)} {op.strip(chr(92) + 'b')} on {reg} (want 0 and >= {chains})")
            if not ok:
                fails.append(f"{cc} -march={march}: {len(spills)} stack operands, {len(ops)} vector multiply-adds")
        exe = os.path.join(a.workdir, f"probe_{cc}")
        p = subprocess.run([cc, "-std=gnu11", "-O2", "-march=x86-64", "-I", HERE, src, "-o", exe],
                           capture_output=True, text=True)
        checks += 1
        out = subprocess.run([exe], capture_output=True, text=True).stdout if p.returncode == 0 else ""
        m = re.search(r"chains (\d+) bytes (\d+) flops (\d+)", out)
        if not m or int(m.group(3)) != int(m.group(1)) * int(m.group(2)) // 4 * 2 or m.group(2) != "16":
            fails.append(f"{cc}: x86-64 build printed {out!r}")
    for f in fails:
        print("FAIL:", f)
    print(f"peak probe: {checks - len(fails)} of {checks} checks passed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
