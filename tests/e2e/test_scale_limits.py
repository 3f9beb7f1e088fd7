#!/usr/bin/env python3
"""Depth and scale limits (docs/language.md, "Nesting depth"): programs that
nest or chain deeply compile, or fail with one located "nested too deeply"
error, never a crash; long statement chains fuse in bounded memory; a scan
with 64 states runs correctly at every level.

The big programs are generated here. Checks:
- a 7,000-term sum (-O0, -O2) and a chain of 5,000 layers (-O2) compile; the
  sum's -O2 output equals 7000 * x (float32 sums of equal terms: rtol 1e-5);
- 10,000 nested parentheses, a 12,000-term sum and 20,000 prefix minuses
  fail with exit status 1 and "nested too deeply" at the right line:column;
- 3,000 and 10,000 statements `z = z + x` compile with the fusion pass in
  less than 400 MB peak (it took 1.8 GB for 3,000), the 10,000 chain's
  --interp output equals the float32 running sum (rtol 1e-6; the compiled
  fused chains are checked on the 7,000-term sum);
- 64 scan states: --interp, -O0 and -O2 against a float64 cumsum written
  from the program's math (s0 += x[t]; y[t] = s0), rtol 1e-5."""
import os
import subprocess
import sys

import torch

from e2e_util import check, parse_args, read_st, write_st

HEAD = "import std\nmodel m {\n  max T = 64\n  input x : f32[T, 8]\n  output y : f32[T, 8]\n"


def gattnc(args, *argv, timeout=300):
    p = subprocess.run([args.gattnc, *argv], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stderr


def write(args, name, text):
    path = os.path.join(args.workdir, name + ".gat")
    with open(path, "w") as f:
        f.write(text)
    return path


def expect_fail(args, name, text, where, msg):
    """Exit status 1 and one error, `FILE:where: error: msg...` (where=None: any
    place; Bison's stack fills at a column that depends on the grammar)."""
    path = write(args, name, text)
    rc, err = gattnc(args, path, "-o", os.path.join(args.workdir, name + ".c"))
    want = f"{path}:{where}: error: {msg}" if where else f"error: {msg}"
    ok = rc == 1 and want in err and "internal error" not in err and err.count("error:") == 1
    print(f"{'ok' if ok else 'FAIL'}: {name}: exit {rc}, {err.splitlines()[0][:160] if err else '(no message)'}")
    if not ok:
        print(f"  wanted one error: {want}")
    return ok


def run(args, path, inputs, tag, *flags):
    ipath = os.path.join(args.workdir, tag + ".in.safetensors")
    opath = os.path.join(args.workdir, tag + ".out.safetensors")
    write_st(ipath, inputs)
    rc, err = gattnc(args, "run", path, "--inputs", ipath, "-o", opath, *flags)
    if rc:
        print(f"FAIL: {tag}: gattnc run {' '.join(flags)} exit {rc}: {err[:500]}")
        return None
    return read_st(opath)["y"]


def f32_sum(x, n):
    """x + x + ... (n terms) left to right, each sum rounded to float32, as
    the program says; the compiled code must give exactly this."""
    z = x.clone()
    for _ in range(n - 1):
        z = z + x
    return z


def main():
    args = parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    ok = True
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))

    # Fusion memory: the peak RSS of the gattnc process alone, measured by
    # /usr/bin/time (a child of Python would count Python's own pages: exec
    # keeps the parent's high-water mark).
    for n in (3000, 10000):
        path = write(args, f"stmts_{n}", HEAD + "  z = x\n" + "  z = z + x\n" * (n - 1) + "  y = z\n}\n")
        rss = os.path.join(args.workdir, f"stmts_{n}.rss")
        argv = [args.gattnc, path, "-O2", "-o", os.path.join(args.workdir, f"stmts_{n}.c")]
        timed = os.path.exists("/usr/bin/time")
        p = subprocess.run((["/usr/bin/time", "-f", "%M", "-o", rss] if timed else []) + argv,
                           capture_output=True, text=True, timeout=300)
        rss_mb = int(open(rss).read().split()[-1]) / 1024 if timed else 0
        good = p.returncode == 0 and rss_mb < 400
        note = f"peak RSS {rss_mb:.0f} MB (bound 400)" if timed else "no /usr/bin/time: peak RSS not measured"
        print(f"{'ok' if good else 'FAIL'}: {n} statements: exit {p.returncode}, {note} {p.stderr[:300]}")
        ok &= good
    y = run(args, path, {"x": x}, "stmts_10000", "--interp")
    ok &= y is not None and check("10000 statements --interp vs float32 running sum", y, f32_sum(x, 10000), 1e-6)

    # Deep but legal: compile (sema, passes and emitters recurse this deep).
    chain = write(args, "sum_7000", HEAD + "  y = " + " + ".join(["x"] * 7000) + "\n}\n")
    layers = "".join(f"layer l{i}(x: f32[T, D]) -> f32[T, D] {{\n  return {'l%d(x)' % (i - 1) if i else 'x'}\n}}\n"
                     for i in range(5000))
    lchain = write(args, "layers_5000", "import std\n" + layers + HEAD.replace("import std\n", "") + "  y = l4999(x)\n}\n")
    for path, opts in ((chain, ("-O0", "-O2")), (lchain, ("-O2",))):
        for opt in opts:
            rc, err = gattnc(args, path, opt, "-o", path[:-4] + opt + ".c")
            print(f"{'ok' if rc == 0 else 'FAIL'}: {os.path.basename(path)} {opt}: exit {rc} {err[:300]}")
            ok &= rc == 0
    y = run(args, chain, {"x": x}, "sum_7000", "-O2")
    ok &= y is not None and check("7000-term sum -O2 vs float32 running sum", y, f32_sum(x, 7000), 1e-6)

    # Too deep: one located error each.
    ok &= expect_fail(args, "parens_10000", HEAD + "  y = " + "(" * 10000 + "x" + ")" * 10000 + "\n}\n",
                      f"6:{7 + 255}", "nested too deeply (limit 256)")
    ok &= expect_fail(args, "sum_12000", HEAD + "  y = " + " + ".join(["x"] * 12000) + "\n}\n",
                      "6:7", "expression or layer calls nested too deeply (limit 10000)")
    ok &= expect_fail(args, "neg_20000", HEAD + "  y = " + "- " * 20000 + "x\n}\n", None,
                      "nested too deeply (the parser's stack is full)")

    # 64 scan states: the IR reader and the interpreter had fixed arrays of 64 and 16.
    states = ", ".join(f"s{i}: f32[8] = 0" for i in range(64))
    scan = write(args, "scan_64", HEAD + f"  y = scan t with {states} {{\n    s0[j] = s0[j] + x[t, j]\n"
                 "    emit[j] = s0[j]\n  }\n}\n")
    ref = torch.cumsum(x.double(), 0)
    for flags in (["--interp"], ["-O0"], ["-O2"]):  # -O1's fusion is checked by the sums
        y = run(args, scan, {"x": x}, "scan_64" + flags[0], *flags)
        ok &= y is not None and check(f"64-state scan {flags[0]} vs float64 cumsum", y, ref, 1e-5)

    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
