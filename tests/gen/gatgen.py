#!/usr/bin/env python3
"""gatgen: random well-typed .gat models, each run through the reference
interpreter and every compiled configuration (-O0/-O1/-O2, each -fno-* pass
switch, the LLVM JIT, decode with --step 1 and --step 3), in the spirit of
Csmith/YARPGen for C compilers. Any disagreement with `run --interp`, crash or
internal error is a finding; a finding is shrunk (delta debugging over the
model's lines, then simpler right-hand sides) to a small reproducer written to
WORKDIR/findings/. A program the compiler rejects with a clean `error:` is
counted as "rejected" (a generator bug, not a compiler bug).

Tolerance (per output, per element): |got - ref| <= RTOL * max|ref| + ATOL with
RTOL = 1e-4, ATOL = 1e-5. The interpreter accumulates in double and rounds each
stored value to f32; compiled kernels accumulate in f32 (GEMM with FMA), so
they differ by a few f32 ulps per reduction, amplified by at most a few
layers of the small models generated here. Non-finite values must match
exactly (same positions, same kind).

The "cc-warn" configuration checks the generated C itself: `gattnc -O2 -o`
output must compile with gcc and clang at -O0 -march=native -std=c11 -Wall
-Wextra -pedantic -Werror (-O0 keeps dead loops over empty tiles that -O1
removes, and gcc's -Wstringop-overflow warns on them). Not under the
sanitizers, which build gattnc, not the generated C, differently.

Usage: gatgen.py --gattnc build/gattnc --seeds 0:200 --time-limit 180 --workdir DIR
Stdlib only (safetensors written and read by hand)."""
import argparse
import json
import multiprocessing
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
from array import array

RTOL, ATOL = 1e-4, 1e-5
MAX_T = 16
SANITIZED = os.environ.get("GAT_SANITIZED") == "1"

# ---------------------------------------------------------------- safetensors


def st_write(path, tensors):
    """tensors: name -> (dtype 'F32'|'I32', shape, flat list)."""
    hdr, blobs, off = {}, [], 0
    for name in sorted(tensors):
        dt, shape, vals = tensors[name]
        data = array("f" if dt == "F32" else "i", vals).tobytes()
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def st_read(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    hdr = json.loads(buf[8:8 + n])
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        a = array("f" if e["dtype"] == "F32" else "i")
        a.frombytes(buf[8 + n + b:8 + n + end])
        out[name] = (e["shape"], a)
    return out


# ---------------------------------------------------------------- generator


class Gen:
    """Builds one model. Every value is a tensor whose first axis is T; the
    environment maps names to shapes (tuples without the T axis)."""

    def __init__(self, seed):
        self.r = random.Random(seed)
        self.n = 0
        self.env = {}          # name -> shape (without T)
        self.lines = []
        self.inputs = []

    def fresh(self, p="v"):
        self.n += 1
        return f"{p}{self.n}"

    def dim(self, lo=1, hi=16):
        return self.r.randint(lo, hi)

    def pick(self, rank=None, pred=None):
        c = [k for k, s in self.env.items() if (rank is None or len(s) == rank) and (pred is None or pred(s))]
        return self.r.choice(c) if c else None

    def pick2(self):
        return self.pick(1)

    def emit(self, line):
        self.lines.append(line)

    def bind(self, name, shape):
        self.env[name] = tuple(shape)

    # -- elementwise ------------------------------------------------------
    UNARY = ["tanh({})", "sigmoid({})", "silu({})", "relu({})", "gelu({})", "softplus({})", "abs({})",
             "exp(-abs({}))", "log(1.0 + abs({}))", "sqrt(abs({}) + 0.5)", "rsqrt(abs({}) + 1.0)",
             "logsigmoid({})", "gelu({}, approx: \"tanh\")", "(-{})", "({} * {})", "min({}, 0.5)",
             "max({}, -0.25)"]

    def unary(self, a):
        u = self.r.choice(self.UNARY)
        return u.format(*([a] * u.count("{}")))

    def s_elementwise(self):
        a = self.pick2()
        d = self.env[a][0]
        same = [k for k, s in self.env.items() if s == (d,)]
        b = self.r.choice(same)
        op = self.r.choice(["+", "-", "*", "/", "max", "min", "select"])
        ua, ub = self.unary(a), self.unary(b)
        if op == "/":
            e = f"{ua} / (1.0 + abs({b}))"
        elif op in ("max", "min"):
            e = f"{op}({ua}, {ub})"
        elif op == "select":
            e = f"select({a} > {b}, {ua}, {ub})"
        else:
            e = f"{ua} {op} {ub}"
        if self.r.random() < 0.3:
            e = f"({e}) * {self.r.choice(['0.5', '2.0', '-1.5', '0.125'])}"
        if self.r.random() < 0.25:
            # a [T, 1] reduction broadcast over the last axis
            red = self.r.choice(["sum", "mean", "max", "min"])
            e = f"{e} - {red}({b}, axis: -1, keepdim: true)"
        v = self.fresh()
        self.emit(f"{v} = {e}")
        self.bind(v, (d,))

    def s_linear(self):
        a = self.pick2()
        d = self.dim()
        v = self.fresh()
        bias = self.r.choice(["", ", bias: true"])
        act = self.r.choice(["{}", "{}", "silu({})", "gelu({})", "relu({})", "tanh({})"])
        self.emit(f"{v} = " + act.format(f"linear({a}, {d}{bias}) @ \"{v}\""))
        self.bind(v, (d,))

    def s_matmul(self):
        a = self.pick2()
        da = self.env[a][0]
        d = self.dim()
        w = self.fresh("w")
        v = self.fresh()
        self.emit(f"param {w} : f32[{da}, {d}] = normal(0, {self.r.choice(['0.3', '0.5'])})")
        self.emit(f"{v} = matmul({a}, {w})")
        self.bind(v, (d,))

    def s_index(self):
        a = self.pick2()
        da = self.env[a][0]
        v = self.fresh()
        kind = self.r.choice(["contract", "shift", "stride", "maxred", "outer"])
        if kind == "contract":
            d = self.dim()
            w = self.fresh("w")
            self.emit(f"param {w} : f32[{d}, {da}] = normal(0, 0.3)")
            self.emit(f"{v}[t, j] = sum(k) {a}[t, k] * {w}[j, k]")
            self.bind(v, (d,))
        elif kind == "shift" and da >= 2:
            c = self.r.randint(1, da - 1)
            self.emit(f"{v}[t, j in 0..{da - c}] = {a}[t, j + {c}] - 0.5 * {a}[t, {da - 1} - j]")
            self.bind(v, (da - c,))
        elif kind == "stride" and da >= 3:
            n = (da - 2) // 2 + 1
            self.emit(f"{v}[t, j in 0..{n}] = {a}[t, 2 * j + 1] * {a}[t, 2 * j]")
            self.bind(v, (n,))
        elif kind == "maxred":
            b = self.pick2()
            red = self.r.choice(["max", "sum", "min", "mean"])
            self.emit(f"{v}[t, j] = {b}[t, j] - {red}(k) {a}[t, k] * 0.5")
            self.bind(v, self.env[b])
        else:
            w = self.fresh("w")
            d = self.dim(1, 6)
            self.emit(f"param {w} : f32[{d}] = normal(0, 1)")
            self.emit(f"{v}[t, i, j] = tanh({a}[t, j] * {w}[i])")
            self.emit(f"{v} = sum({v}, axis: 1)" if self.r.random() < 0.5 else f"{v} = {v} as [T, {d * da}]")
            self.bind(v, (da,) if "sum(" in self.lines[-1] else (d * da,))

    def s_norm(self):
        a = self.pick2()
        v = self.fresh()
        k = self.r.choice(["rms_norm({a}) @ \"{v}\"", "rms_norm({a}, plus_one: true) @ \"{v}\"",
                           "layer_norm({a}) @ \"{v}\"", "layer_norm({a}, bias: false) @ \"{v}\"",
                           "l2_norm({a})", "softmax({a})", "softmax({a} * 3.0)"])
        self.emit(f"{v} = " + k.format(a=a, v=v))
        self.bind(v, self.env[a])

    def s_concat(self):
        a, b = self.pick2(), self.pick2()
        v = self.fresh()
        d = self.env[a][0] + self.env[b][0]
        if d > 32:
            return self.s_linear()
        self.emit(f"{v} = concat({a}, {b})")
        self.bind(v, (d,))
        if d >= 2 and self.r.random() < 0.5:
            s1 = self.r.randint(1, d - 1)
            p, q = self.fresh(), self.fresh()
            self.emit(f"{p}, {q} = split({v}, {s1}, {d - s1})")
            self.bind(p, (s1,))
            self.bind(q, (d - s1,))

    def s_attention(self):
        a = self.pick2()
        h = self.r.choice([1, 2, 4])
        kvh = self.r.choice([x for x in (1, 2, 4) if h % x == 0])
        dk, dv = self.dim(1, 8), self.dim(1, 8)
        if self.r.random() < 0.5:
            dk += dk % 2
        v = self.fresh()
        q, k, w = v + "q", v + "k", v + "v"
        self.emit(f"{q} = linear({a}, {h * dk}) @ \"{q}\" as [T, {h}, {dk}]")
        self.emit(f"{k} = linear({a}, {kvh * dk}) @ \"{k}\" as [T, {kvh}, {dk}]")
        self.emit(f"{w} = linear({a}, {kvh * dv}) @ \"{w}\" as [T, {kvh}, {dv}]")
        if dk % 2 == 0 and self.r.random() < 0.4:
            self.emit(f"{q} = rope({q})")
            self.emit(f"{k} = rope({k})")
        opt = self.r.choice(["", "", f", window: {self.r.randint(1, 5)}", ", scale: 0.5"])
        self.emit(f"{v} = attention({q}, {k}, {w}{opt}) as [T, {h * dv}]")
        self.bind(v, (h * dv,))

    def s_scan(self):
        """Several states; emit placed before, between or after the updates;
        nested reductions in the step. Outer T tensors are read at index t only."""
        a = self.pick2()
        da = self.env[a][0]
        ns = self.r.randint(1, 3)
        states = [(f"{self.fresh('s')}", self.dim(1, 8)) for _ in range(ns)]
        v = self.fresh()
        body_up = []
        params = []
        for i, (s, ds) in enumerate(states):
            if ds == da and self.r.random() < 0.6:
                src = f"{a}[t, j]"
            else:
                w = self.fresh("w")
                params.append(f"param {w} : f32[{ds}, {da}] = normal(0, 0.4)")
                src = f"sum(k) {w}[j, k] * {a}[t, k]"
            term = ""
            if ns > 1 and self.r.random() < 0.6:
                o, do = states[self.r.randrange(ns)]
                w2 = self.fresh("w")
                params.append(f"param {w2} : f32[{ds}, {do}] = normal(0, 0.4)")
                red = self.r.choice(["sum(k) {w}[j, k] * {o}[k]", "max(k) {w}[j, k] * {o}[k]"])
                term = " + " + "(" + red.format(w=w2, o=o) + ")"
            dec = self.r.choice(["0.5", "0.9", "-0.3"])
            kind = self.r.choice(["tanh", "lin", "plain"])
            if kind == "tanh":
                up = f"{s}[j] = tanh({dec} * {s}[j] + ({src}){term})"
            elif kind == "lin":
                up = f"{s}[j] = {dec} * {s}[j] + sigmoid({src}){term}"
            else:
                up = f"{s}[j] = ({src}){term}"
            body_up.append(up)
        # emit
        s0, d0 = self.r.choice(states)
        ek = self.r.choice(["plain", "idx", "mix", "red"])
        if ek == "plain":
            em, de = f"emit = {s0}", d0
        elif ek == "idx":
            em, de = f"emit[j] = {s0}[j] * 2.0 + {a}[t, 0]", d0
        elif ek == "mix":
            s1, d1 = self.r.choice(states)
            w = self.fresh("w")
            params.append(f"param {w} : f32[{d0}, {d1}] = normal(0, 0.4)")
            em, de = f"emit[j] = {s0}[j] - (sum(k) {w}[j, k] * {s1}[k])", d0
        else:
            s1, d1 = self.r.choice(states)
            em, de = f"emit[j] = {s0}[j] + max(k) {s1}[k]", d0
        pos = self.r.randint(0, len(body_up))
        body = body_up[:pos] + [em] + body_up[pos:]
        for p in params:
            self.emit(p)
        init = ", ".join(f"{s}: f32[{ds}] = {self.r.choice(['0', '0', '0.25'])}" for s, ds in states)
        self.emit(f"{v} = scan t with {init} {{")
        for b in body:
            self.emit("  " + b)
        self.emit("}")
        self.bind(v, (de,))

    def s_mixture(self):
        a = self.pick2()
        da = self.env[a][0]
        e = self.r.randint(2, 5)
        k = self.r.randint(1, e)
        v = self.fresh()
        g, w, ix = v + "g", v + "w", v + "i"
        dout = self.r.choice([da, self.dim()])
        hid = self.dim(1, 12)
        self.emit(f"{g} = softmax(linear({a}, {e}) @ \"{g}\")")
        self.emit(f"{w}, {ix} = topk({g}, {k})")
        wt = self.r.choice([w, f"{w} / sum({w}, axis: -1, keepdim: true)"])
        other = self.pick2()
        extra = f" + 0.5 * {other}[:, 0:1]" if self.r.random() < 0.4 else ""
        self.emit(f"{v} = mixture e in 0..{e} by {ix} weighted {wt} {{")
        self.emit(f"  return linear(silu(linear({a}{extra}, {hid}) @ \"{v}x.{{e}}.a\"), {dout}) @ \"{v}x.{{e}}.b\"")
        self.emit("}")
        self.bind(v, (dout,))

    def s_skip(self):
        a = self.pick2()
        da = self.env[a][0]
        c = self.pick2()
        v = self.fresh()
        self.emit(f"{v} = {a} * 1.0")
        # No threshold sits where a structurally constant quantity lands: the
        # mean of a layer_norm output is 0 up to rounding, so `mean > 0.0` would
        # decide on rounding noise that differs between correct builds.
        cond = self.r.choice([f"mean({c}, axis: -1) > 0.05", f"sum({c}, axis: -1) < 0.1",
                              f"{c}[:, 0] > 0.2", f"sigmoid(sum({c}, axis: -1)) >= 0.55"])
        body = self.r.choice([
            f"{v} + tanh(linear({v}, {da}) @ \"{v}k\")",
            f"{v} * 0.5 + rms_norm({v}) @ \"{v}k\"",
            f"{v} + swiglu({v}, hidden: {self.dim(1, 8)}) @ \"{v}k\"",
        ])
        if self.r.random() < 0.25:
            h, dk = self.r.choice([1, 2]), self.r.choice([2, 4])
            self.emit(f"{v}q = linear({v}, {h * dk}) @ \"{v}q\" as [T, {h}, {dk}]")
            body = (f"{v} + linear(attention(linear({v}, {h * dk}) @ \"{v}aq\" as [T, {h}, {dk}], "
                    f"linear({v}, {h * dk}) @ \"{v}ak\" as [T, {h}, {dk}], "
                    f"linear({v}, {h * dk}) @ \"{v}av\" as [T, {h}, {dk}]) as [T, {h * dk}], {da}) @ \"{v}ao\"")
            self.lines.pop()
        self.emit(f"{v} = {body} skip when {cond}")
        self.bind(v, (da,))

    def s_route(self):
        a = self.pick2()
        da = self.env[a][0]
        v = self.fresh()
        self.emit(f"{v} = {a} + 0.0")
        self.emit(f"{v}r = linear({v}, 1) @ \"{v}r\"")
        cap = self.r.choice(["0.5 * T", "T / 4", "2", "1", "0.25 * T"])
        th = self.r.choice(["", ", threshold: 0.5", ", threshold: 0.3"])
        body = self.r.choice([f"{v} + {v}r * tanh(linear({v}, {da}) @ \"{v}b\")",
                              f"{v} + {v}r * gelu({v})"])
        self.emit(f"{v} = {body} route top({cap}{th}) by {v}r")
        self.bind(v, (da,))

    def s_stdlayer(self):
        a = self.pick2()
        da = self.env[a][0]
        v = self.fresh()
        k = self.r.choice(["swiglu", "conv", "gru", "lstm", "glu"])
        if k == "swiglu":
            self.emit(f"{v} = swiglu({a}, hidden: {self.dim(1, 12)}) @ \"{v}\"")
            self.bind(v, (da,))
        elif k == "glu":
            self.emit(f"{v} = geglu({a}, hidden: {self.dim(1, 12)}) @ \"{v}\"")
            self.bind(v, (da,))
        elif k == "conv":
            self.emit(f"{v} = causal_conv1d({a}, kernel: {self.r.randint(2, 4)}) @ \"{v}\"")
            self.bind(v, (da,))
        else:
            h = self.dim(1, 8)
            self.emit(f"{v} = {k}({a}, hidden: {h}) @ \"{v}\"")
            self.bind(v, (h,))

    KINDS = [("elementwise", 5), ("linear", 3), ("matmul", 1), ("index", 3), ("norm", 2), ("concat", 1),
             ("attention", 2), ("scan", 4), ("mixture", 2), ("skip", 2), ("route", 1), ("stdlayer", 1)]

    def program(self):
        r = self.r
        nin = r.randint(1, 2)
        for i in range(nin):
            name = f"x{i}"
            d = self.dim()
            self.inputs.append((name, d))
            self.bind(name, (d,))
        nst = r.randint(3, 12)
        kinds = [k for k, _ in self.KINDS]
        weights = [w for _, w in self.KINDS]
        for _ in range(nst):
            getattr(self, "s_" + r.choices(kinds, weights)[0])()
        # outputs: the last value and maybe one other
        names = [k for k in self.env if not k.startswith("x")]
        outs = [names[-1]] + ([r.choice(names[:-1])] if len(names) > 1 and r.random() < 0.5 else [])
        head = ["import std", "", "model g {", f"  max T = {MAX_T}"]
        for name, d in self.inputs:
            head.append(f"  input {name} : f32[T, {d}]")
        tail = []
        for i, o in enumerate(outs):
            head.append(f"  output y{i} : f32[T, {self.env[o][0]}]")
            tail.append(f"y{i} = {o}")
        body = ["  " + l for l in self.lines + tail]
        return "\n".join(head + body + ["}"]) + "\n"


def generate(seed):
    return Gen(seed).program()


def shapes_of(seed):
    """name -> d of the generated program's values (all f32[T, d])."""
    g = Gen(seed)
    g.program()
    return {k: v[0] for k, v in g.env.items() if len(v) == 1}


# ---------------------------------------------------------------- running

FNO_FALLBACK = ["fuse", "tile", "pack", "concat", "gate", "scanfuse"]


def fno_flags(gattnc):
    p = subprocess.run([gattnc, "--help"], capture_output=True, text=True)
    fl = sorted(set(re.findall(r"-fno-([a-z0-9-]+)", p.stdout + p.stderr)))
    return [f for f in fl if f] or FNO_FALLBACK


def has_jit(gattnc):
    p = subprocess.run([gattnc, "--version"], capture_output=True, text=True)
    return "llvm" in p.stdout.split()


def all_configs(gattnc):
    """(name, extra argv, step). Steps > 0 reuse the -O2 build through the cache."""
    cs = [("O0", ["-O0"], 0), ("O1", ["-O1"], 0), ("O2", ["-O2"], 0)]
    cs += [(f"O2-fno-{f}", ["-O2", f"-fno-{f}"], 0) for f in fno_flags(gattnc)]
    cs += [("O2-step1", ["-O2"], 1), ("O2-step3", ["-O2"], 3)]
    if not SANITIZED:
        cs += [("cc-warn", ["--warn"], 0)]
    if has_jit(gattnc):
        # under the sanitizers LLVM's machine code is not instrumented: prefill only
        cs += [("jit", ["--jit"], 0)] + ([] if SANITIZED else [("jit-step3", ["--jit"], 3)])
    return cs


CRASH_RE = re.compile(r"internal error|assert|AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
                      r"LeakSanitizer|Segmentation|core dumped|Aborted")


def run_cmd(argv, timeout, env):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, "timeout"
    return p.returncode, p.stdout + p.stderr


def classify_rc(rc, log):
    """'ok', 'rejected' (clean error) or 'crash'."""
    if rc is None:
        return "timeout"
    if rc < 0 or rc > 2 or CRASH_RE.search(log):
        return "crash"
    if rc == 0:
        return "ok"
    return "rejected" if "error:" in log else "crash"


def compare(got, ref):
    """None if every output agrees within tolerance, else a message."""
    for name, (shape, rv) in ref.items():
        if name not in got:
            return f"output {name} missing"
        gshape, gv = got[name]
        if list(gshape) != list(shape):
            return f"{name}: shape {gshape} != {shape}"
        fin = [abs(x) for x in rv if x == x and abs(x) != float("inf")]
        scale = max(fin) if fin else 0.0
        worst, wi = 0.0, -1
        for i, (a, b) in enumerate(zip(gv, rv)):
            if b != b or a != a or abs(b) == float("inf") or abs(a) == float("inf"):
                if not ((a != a and b != b) or a == b):
                    return f"{name}[{i}]: got {a}, want {b}"
                continue
            d = abs(a - b)
            if d > RTOL * scale + ATOL and d > worst:
                worst, wi = d, i
        if wi >= 0:
            return f"{name}[{wi}]: got {gv[wi]:.7g}, want {rv[wi]:.7g} (max|ref| {scale:.3g})"
    return None


class Runner:
    def __init__(self, gattnc, wd, timeout=120):
        self.gattnc, self.wd, self.timeout = gattnc, wd, timeout
        self.env = dict(os.environ)
        self.env.setdefault("GATTNC_CACHE_DIR", os.path.join(wd, "cache"))

    def write_inputs(self, src, seed, ipath):
        r = random.Random(seed * 7919 + 1)
        t = r.randint(1, 12)
        ins = {}
        for m in re.finditer(r"^\s*input (\w+) : f32\[T, (\d+)\]", src, re.M):
            d = int(m.group(2))
            ins[m.group(1)] = ("F32", [t, d], [r.gauss(0, 1) for _ in range(t * d)])
        st_write(ipath, ins)
        return t

    def warn_check(self, src_path):
        """The generated C compiles warning-free at -O0 with each C compiler."""
        cdir = os.path.join(self.wd, "warn")
        os.makedirs(cdir, exist_ok=True)
        cpath = os.path.join(cdir, "g.c")
        cmd = [self.gattnc, src_path, "-O2", "-o", cpath]
        rc, log = run_cmd(cmd, self.timeout, self.env)
        kind = classify_rc(rc, log)
        if kind != "ok":
            return kind, log, cmd
        rt = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "runtime")
        for cc in ("gcc", "clang"):
            if not shutil.which(cc):
                continue
            cmd = [cc, "-std=c11", "-O0", "-march=native", "-Wall", "-Wextra", "-pedantic", "-Werror",
                   "-I", rt, "-I", cdir, "-c", cpath, "-o", os.path.join(cdir, "g.o")]
            rc, log = run_cmd(cmd, self.timeout, self.env)
            if rc != 0:
                return "warning", log, cmd
        return "ok", "", cmd

    def run_one(self, src_path, ipath, tag, argv, step, seed):
        if argv == ["--warn"]:
            kind, log, cmd = self.warn_check(src_path)
            return kind, None, log, cmd
        opath = os.path.join(self.wd, f"{tag}.out.safetensors")
        if os.path.exists(opath):
            os.remove(opath)
        cmd = [self.gattnc, "run", src_path, "--inputs", ipath, "-o", opath, "--seed", str(seed)] + argv
        if step:
            cmd += ["--step", str(step)]
        rc, log = run_cmd(cmd, self.timeout, self.env)
        kind = classify_rc(rc, log)
        out = None
        if kind == "ok":
            try:
                out = st_read(opath)
            except (OSError, ValueError, KeyError, struct.error) as e:
                kind, log = "crash", f"unreadable output: {e}"
        return kind, out, log, cmd

    def check(self, src, seed, configs, stop_first=False):
        """Returns (status, findings): status 'ok' | 'rejected' | 'finding';
        findings: [(kind, config name, message, command)]."""
        src_path = os.path.join(self.wd, "g.gat")
        with open(src_path, "w") as f:
            f.write(src)
        ipath = os.path.join(self.wd, "in.safetensors")
        self.write_inputs(src, seed, ipath)
        refs = {}
        for step in sorted({c[2] for c in configs} | {0}):
            kind, out, log, cmd = self.run_one(src_path, ipath, f"ref{step}", ["--interp"], step, seed)
            if kind == "rejected":
                return "rejected", [("rejected", "interp", log.strip().splitlines()[0] if log.strip() else "", cmd)]
            if kind != "ok":
                return "finding", [(kind, f"interp-step{step}", log[-2000:], cmd)]
            refs[step] = out
        found = []
        for name, argv, step in configs:
            kind, out, log, cmd = self.run_one(src_path, ipath, name, argv, step, seed)
            if kind == "ok" and out is None:
                pass
            elif kind == "ok":
                msg = compare(out, refs[step])
                if msg:
                    found.append(("mismatch", name, msg, cmd))
            elif kind == "rejected":
                found.append(("rejected-compiled", name, log[-2000:], cmd))
            else:
                found.append((kind, name, log[-2000:], cmd))
            if found and stop_first:
                break
        return ("finding" if found else "ok"), found


# ---------------------------------------------------------------- shrinking


def model_body(src):
    lines = src.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("model "))
    return lines[:start + 1], lines[start + 1:-1], lines[-1:]


def shrink(runner, src, seed, kind, config, configs, budget=60, until=None, shapes=None):
    """Delta debugging over the model's body lines (keeping the failure kind on
    the same configuration), then replacing right-hand sides by one of their
    operands. Returns the smallest source found."""
    cfg = [c for c in configs if c[0] == config] or configs
    steps = [0]

    def fails(s):
        if steps[0] >= budget or (until and time.time() > until):
            return False
        steps[0] += 1
        st, fs = runner.check(s, seed, cfg, stop_first=True)
        return st == "finding" and any(f[0] == kind for f in fs)

    head, body, tail = model_body(src)
    fixed = [l for l in body if re.match(r"\s*(input|output|max) ", l)]
    stmts = [l for l in body if l not in fixed]

    def build(st):
        return "\n".join(head + fixed + st + tail) + "\n"

    # point each output at an earlier value (its declaration follows the shape),
    # so the chain after that value can go
    for o in re.findall(r"output (y\d+) ", "\n".join(fixed)):
        for v in sorted(shapes or {}, key=lambda k: int(re.sub(r"\D", "", k) or 0)):
            if not any(re.match(rf"\s*{v}\b.* = ", l) for l in stmts) and not v.startswith("x"):
                continue
            f2 = [re.sub(rf"(output {o} : f32\[T, )\d+\]", rf"\g<1>{shapes[v]}]", l) for l in fixed]
            s2 = [re.sub(rf"^(\s*{o} = ).*", rf"\g<1>{v}", l) for l in stmts]
            if s2 != stmts and fails("\n".join(head + f2 + s2 + tail) + "\n"):
                fixed, stmts = f2, s2
                break
    n = 2
    while len(stmts) >= 1 and steps[0] < budget:
        chunk = max(1, len(stmts) // n)
        reduced = False
        for i in range(0, len(stmts), chunk):
            cand = stmts[:i] + stmts[i + chunk:]
            if fails(build(cand)):
                stmts, n, reduced = cand, max(n - 1, 2), True
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(stmts), n * 2)
    # simplify right-hand sides: replace by a name or call that occurs in them
    for i in range(len(stmts)):
        m = re.match(r"(\s*\w+(?:\[[^\]]*\])? = )(.*?)( skip when .*| route .*)?$", stmts[i])
        if not m or "{" in stmts[i]:
            continue
        rhs = m.group(2)
        cands = sorted(set(re.findall(r"\b[a-z_]+\([^()]*\)(?: @ \"[^\"]*\")?|\b[vxs]\d+(?:\[[^\]]*\])?", rhs)),
                       key=len)
        for c in cands:
            if c == rhs:
                continue
            cand = stmts[:i] + [m.group(1) + c + (m.group(3) or "")] + stmts[i + 1:]
            if fails(build(cand)):
                stmts = cand
                break
    # drop an output (declaration and assignment) or a scan state
    for o in re.findall(r"output (y\d+) ", "\n".join(fixed)):
        f2 = [l for l in fixed if not re.match(rf"\s*output {o} ", l)]
        s2 = [l for l in stmts if not re.match(rf"\s*{o} = ", l)]
        if len(f2) < len(fixed) and any(re.match(r"\s*output ", l) for l in f2):
            if fails("\n".join(head + f2 + s2 + tail) + "\n"):
                fixed, stmts = f2, s2
    for l in [l for l in fixed if re.match(r"\s*input ", l)]:
        f2 = [x for x in fixed if x is not l]
        if fails("\n".join(head + f2 + stmts + tail) + "\n"):
            fixed = f2
    for i in range(len(stmts)):
        for st in re.findall(r"(s\d+: f32\[\d+\] = [\d.]+)", stmts[i] if " scan t with " in stmts[i] else ""):
            line = stmts[i].replace(st + ", ", "").replace(", " + st, "")
            if line != stmts[i]:
                body_keep = [l for l in stmts if not re.match(rf"\s*{st.split(':')[0]}\[", l)]
                cand = [line if l is stmts[i] else l for l in body_keep]
                if fails(build(cand)):
                    stmts = cand
    return build(stmts)


# ---------------------------------------------------------------- driver


def config_subset(allc, seed, full, extra=2):
    """Every program runs -O2 (prefill, --step 1, --step 3: one C build through
    the compile cache) and the JIT; `extra` more C configurations (-O0, -O1,
    -O2 -fno-*) are sampled per seed, so every one is covered across seeds
    (a C build costs ~2 s of CPU). --all-configs runs all of them."""
    if full is True:
        return allc
    if full:  # --sample K (swarm testing): K configurations per program, drawn per seed
        r = random.Random(seed * 131 + 3)
        always = [c for c in allc if c[0] == "cc-warn"]
        rest = [c for c in allc if c[0] != "cc-warn"]
        return always + r.sample(rest, min(int(full), len(rest)))
    base = {"O2", "O2-step1", "O2-step3", "jit", "jit-step3", "cc-warn"}
    rest = [c for c in allc if c[0] not in base]
    r = random.Random(seed * 31 + 7)
    return [c for c in allc if c[0] in base] + r.sample(rest, min(extra, len(rest)))


def worker(args):
    gattnc, wd, seeds, configs, full, deadline, keep, findings_dir, shrink_time = args
    os.makedirs(wd, exist_ok=True)
    runner = Runner(gattnc, wd)
    res = {"passed": 0, "rejected": 0, "failed": 0, "ran": 0, "findings": [], "rejects": []}
    for seed in seeds:
        if time.time() > deadline:
            break
        src = generate(seed)
        cfgs = config_subset(configs, seed, full)
        t1 = time.time()
        status, found = runner.check(src, seed, cfgs)
        res["ran"] += 1
        # one line per program, so a long run killed early still says what it ran
        with open(os.path.join(findings_dir, "..", "progress.log"), "a") as f:
            f.write(f"{seed} {status} {time.time() - t1:.1f}s {' '.join(sorted({x[1] for x in found}))}\n")
        if status == "ok":
            res["passed"] += 1
            continue
        if status == "rejected":
            res["rejected"] += 1
            res["rejects"].append((seed, found[0][2]))
            if keep:
                with open(os.path.join(findings_dir, f"rejected_{seed}.gat"), "w") as f:
                    f.write(src)
            continue
        res["failed"] += 1
        # shrink on the cheapest configuration that fails: the JIT, then a run the cache serves
        order = ["jit", "jit-step3", "O2", "O2-step1", "O2-step3"]
        found.sort(key=lambda f: order.index(f[1]) if f[1] in order else len(order))
        kind, cfg, msg, cmd = found[0]
        small = src if kind == "timeout" else shrink(runner, src, seed, kind, cfg, cfgs, until=time.time() + shrink_time,
                                                                 shapes=shapes_of(seed))
        st, fs = runner.check(small, seed, [c for c in cfgs if c[0] == cfg], stop_first=True)
        if st != "finding":
            small = src
        tag = f"{kind}_{cfg}_seed{seed}"
        path = os.path.join(findings_dir, tag + ".gat")
        with open(path, "w") as f:
            f.write(f"# gatgen finding: {kind} on {cfg} (seed {seed})\n# {msg.strip().splitlines()[0] if msg.strip() else ''}\n")
            f.write(f"# configs failing on the original: {', '.join(sorted({x[1] for x in found}))}\n")
            f.write(small)
        res["findings"].append((seed, kind, cfg, msg.strip()[:300], path))
    if not keep:
        shutil.rmtree(wd, ignore_errors=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gattnc", required=True)
    ap.add_argument("--seeds", default="0:100", help="A:B, the half-open seed range")
    ap.add_argument("--time-limit", type=float, default=180, help="seconds; stops starting new programs after it")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--configs", default="", help="comma-separated config names (default: all, see --list)")
    ap.add_argument("--all-configs", action="store_true", help="every -fno-* switch on every program")
    ap.add_argument("--sample", type=int, default=0, metavar="K",
                    help="long runs: K configurations drawn per program (plus cc-warn) instead of the default set")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--shrink-time", type=float, default=300, help="seconds one finding's shrink may take")
    ap.add_argument("--keep", action="store_true", help="keep work directories and rejected programs")
    ap.add_argument("--print", type=int, metavar="SEED", help="print the program of SEED and exit")
    ap.add_argument("--list", action="store_true", help="list the configurations and exit")
    ap.add_argument("--replay", nargs="+", metavar="FILE.gat",
                    help="run these files (e.g. tests/gen/regress/*.gat) instead of generated programs; "
                         "inputs from --seeds' first seed")
    args = ap.parse_args()
    if args.print is not None:
        sys.stdout.write(generate(args.print))
        return 0
    gattnc = os.path.abspath(args.gattnc)
    configs = all_configs(gattnc)
    if args.list:
        for c in configs:
            print(c[0], " ".join(c[1]), f"--step {c[2]}" if c[2] else "")
        return 0
    if args.configs:
        want = args.configs.split(",")
        configs = [c for c in configs if c[0] in want]
    a, b = (int(x) for x in args.seeds.split(":"))
    wd = os.path.abspath(args.workdir)
    if args.replay:
        runner, bad = Runner(gattnc, wd), 0
        os.makedirs(wd, exist_ok=True)
        for path in args.replay:
            with open(path) as f:
                st, fs = runner.check(f.read(), a, configs)
            bad += st != "ok"
            print(f"{path}: {st}")
            for kind, cfg, msg, cmd in fs:
                print(f"  {kind} on {cfg}: {msg.strip().splitlines()[0] if msg.strip() else ''}\n    {' '.join(cmd)}")
        print(f"gen: {len(args.replay) - bad} passed, {bad} failed")
        return 1 if bad else 0
    findings_dir = os.path.join(wd, "findings")
    os.makedirs(findings_dir, exist_ok=True)
    deadline = time.time() + args.time_limit
    t0 = time.time()
    seeds = list(range(a, b))
    jobs = max(1, args.jobs)
    parts = [(gattnc, os.path.join(wd, f"w{i}"), seeds[i::jobs], configs, True if args.all_configs else args.sample, deadline, args.keep,
              findings_dir, args.shrink_time) for i in range(jobs)]
    if jobs == 1:
        results = [worker(parts[0])]
    else:
        with multiprocessing.Pool(jobs) as pool:
            results = pool.map(worker, parts)
    tot = {k: sum(r[k] for r in results) for k in ("passed", "rejected", "failed", "ran")}
    el = time.time() - t0
    for r in results:
        for seed, msg in r["rejects"]:
            print(f"rejected: seed {seed}: {msg}")
        for seed, kind, cfg, msg, path in r["findings"]:
            print(f"FINDING: seed {seed}: {kind} on {cfg}: {msg.splitlines()[0] if msg else ''}")
            if path:
                print(f"  reproducer: {path}")
    print(f"gen: {tot['ran']} programs in {el:.0f} s ({el / max(tot['ran'], 1):.2f} s each, {jobs} jobs), "
          f"{len(configs)} configs, {tot['rejected']} rejected")
    print(f"gen: {tot['passed']} passed, {tot['failed']} failed")
    return 1 if tot["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
