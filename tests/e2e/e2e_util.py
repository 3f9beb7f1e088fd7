"""Helpers for the end-to-end tests: safetensors I/O with torch tensors,
running gattnc, and comparing with a stated tolerance.

The tests build a small `.gat` model, give it `gattnc init` weights, run the
reference interpreter (prefill and token-by-token), and compare with a
PyTorch implementation written from the math in float64."""
import argparse
import json
import os
import struct
import subprocess
import sys

import torch

DT = {"F32": (torch.float32, 4), "I32": (torch.int32, 4), "F64": (torch.float64, 8), "I64": (torch.int64, 8)}


# In the sanitizer build (tests/CMakeLists.txt sets GAT_SANITIZED=1) gattnc and the
# generated C it runs are instrumented; steps that only run uninstrumented tools
# (a compiler's warnings, a plain cc build) are left to the normal build.
SANITIZED = os.environ.get("GAT_SANITIZED") == "1"


def has_llvm(gattnc):
    """Whether this gattnc has the LLVM backend (it is optional at build time,
    cmake -DGAT_WITH_LLVM=OFF): `gattnc --version` lists its backends."""
    p = subprocess.run([gattnc, "--version"], capture_output=True, text=True)
    return "llvm" in p.stdout.split()


def read_st(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    hdr = json.loads(buf[8:8 + n])
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        dtype, _ = DT[e["dtype"]]
        raw = bytearray(buf[8 + n + b:8 + n + end])
        t = torch.frombuffer(raw, dtype=dtype) if raw else torch.zeros(0, dtype=dtype)
        out[name] = t.reshape(e["shape"]).clone()
    return out


def write_st(path, tensors):
    hdr, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        code = {torch.float32: "F32", torch.int32: "I32"}[t.dtype]
        data = t.numpy().tobytes()
        hdr[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


class Case:
    """One model under test: writes the .gat file, weights and inputs into workdir."""

    def __init__(self, args, name, source, init_seed=3):
        self.gattnc, self.dir, self.name = args.gattnc, args.workdir, name
        self.backend = getattr(args, "backend", "c")
        os.makedirs(self.dir, exist_ok=True)
        self.src = os.path.join(self.dir, name + ".gat")
        with open(self.src, "w") as f:
            f.write(source)
        self.wpath = os.path.join(self.dir, name + ".weights.safetensors")
        self.gattnc_run("init", self.src, "-o", self.wpath, "--seed", str(init_seed))
        self.weights = {k: v.double() for k, v in read_st(self.wpath).items()}

    def gattnc_run(self, *argv):
        p = subprocess.run([self.gattnc, *argv], capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            print("gattnc", *argv, "failed:\n", p.stdout, p.stderr)
            sys.exit(1)
        return p

    def run(self, inputs, step=0, tag="out", compiled=False, flags=()):
        """Runs the model: the interpreter, or (compiled=True) the generated C
        built into a shared object and called through libffi. step=K feeds the
        inputs K tokens per call; flags are more `gattnc run` options (-O0, -fno-...)."""
        tag = tag + (".c" if compiled else "")
        ipath = os.path.join(self.dir, f"{self.name}.{tag}.in.safetensors")
        opath = os.path.join(self.dir, f"{self.name}.{tag}.safetensors")
        write_st(ipath, inputs)
        argv = ["run", self.src, "--weights", self.wpath, "--inputs", ipath, "-o", opath, *flags]
        if not compiled:
            argv.append("--interp")
        elif self.backend == "jit":
            argv.append("--jit")
        if step:
            argv += ["--step", str(step)]
        self.gattnc_run(*argv)
        return {k: v.double() for k, v in read_st(opath).items()}


def sh(argv, timeout=900, **kw):
    """Runs a command: (exit status, stdout + stderr)."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    return p.returncode, p.stdout + p.stderr


def gattnc_run(args, src, wpath, ipath, opath, flags=(), step=0):
    """`gattnc run SRC` on the inputs file with extra flags (["--interp"] for the
    interpreter), --step STEP when STEP > 0; the outputs, or None after printing
    the failure (so one failing configuration does not hide the others)."""
    argv = [args.gattnc, "run", src, "--weights", wpath, "--inputs", ipath, "-o", opath] + list(flags)
    if step:
        argv += ["--step", str(step)]
    rc, log = sh(argv)
    if rc:
        print(f"FAIL: {' '.join(argv)}:\n{log[:3000]}")
        return None
    return read_st(opath)


def run_inputs(args, src, wpath, inputs, wd, tag, flags, step=0):
    """gattnc_run on a dict of input tensors, written to WD/TAG.in.safetensors."""
    ipath = os.path.join(wd, f"{tag}.in.safetensors")
    write_st(ipath, inputs)
    return gattnc_run(args, src, wpath, ipath, os.path.join(wd, f"{tag}.out.safetensors"), flags, step)


def check(label, got, want, rtol):
    """Max relative error, normalised by the reference's largest magnitude."""
    err = (got.double() - want.double()).abs().max().item()
    scale = max(want.abs().max().item(), 1e-30)
    rel = err / scale
    status = "ok" if rel <= rtol else "FAIL"
    print(f"{status}: {label}: max |err| = {err:.3g}, max |err| / max |ref| = {rel:.3g} (tolerance {rtol:g})")
    return rel <= rtol


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gattnc", required=True)
    ap.add_argument("--workdir", required=True)
    # c: compiled runs build the generated C (cc + dlopen); jit: the LLVM backend
    # in-process (`gattnc run --jit`), also for tests that call `gattnc run` themselves
    ap.add_argument("--backend", choices=("c", "jit"), default="c")
    # K/N: run only the units i with i % N == K (tests/CMakeLists.txt registers the
    # long scripts as N ctest entries, so two cores share them and none runs alone at the end)
    ap.add_argument("--shard", default="0/1")
    args = ap.parse_args()
    k, n = (int(v) for v in args.shard.split("/"))
    if not 0 <= k < n:
        ap.error(f"--shard {args.shard}: want K/N with 0 <= K < N")
    args.shard = (k, n)
    if args.backend == "jit":
        os.environ["GATTNC_RUN_JIT"] = "1"
    return args


def shard(args, units):
    """The units (any list) this run's --shard K/N owns: every N-th, from the K-th."""
    k, n = args.shard
    return [u for i, u in enumerate(units) if i % n == k]


def perturb(weights, seed=1, scale=0.1):
    """Adds noise to every weight, so weights that init to constants (norm
    weights = 1, biases) still matter in a comparison."""
    g = torch.Generator().manual_seed(seed)
    return {k: v + scale * torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in weights.items()}


def set_weights(case, weights):
    """Replaces a Case's weights (file and dict) with `weights` (float64 dict)."""
    write_st(case.wpath, {k: v.float() for k, v in weights.items()})
    case.weights = {k: v.float().double() for k, v in weights.items()}


def run_counted(c, inputs, cpath, tag, step=0, compiled=False):
    """Case.run plus `--count cpath`: returns (outputs, counted ops), the ops
    being the "ops" list of the counters JSON gattnc writes (skip, mixture)."""
    ipath = os.path.join(c.dir, f"{c.name}.{tag}.in.safetensors")
    opath = os.path.join(c.dir, f"{c.name}.{tag}.safetensors")
    write_st(ipath, inputs)
    if os.path.exists(cpath):
        os.remove(cpath)
    argv = ["run", c.src, "--weights", c.wpath, "--inputs", ipath, "-o", opath, "--count", cpath]
    if not compiled:
        argv.append("--interp")
    if step:
        argv += ["--step", str(step)]
    c.gattnc_run(*argv)
    with open(cpath) as f:
        ops = json.load(f)["ops"]
    return {k: v.double() for k, v in read_st(opath).items()}, ops


# ---- one-layer sweeps shared by the layer tests ---------------------------------

TS = (1, 7, 64, 1024)

# Every way a test runs a model: the interpreter and the compiled C, all tokens
# in one call (prefill) and one token per call (decode).
RUNS = [("interp prefill", {}), ("interp decode", {"step": 1}),
        ("C prefill", {"compiled": True}), ("C decode", {"step": 1, "compiled": True})]


def causal_softmax(logits):
    """softmax over the last axis of [..., T, T] attention logits, key j > query i masked."""
    T = logits.shape[-1]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    return torch.softmax(logits.masked_fill(~mask, float("-inf")), -1)


def lin(W, name, x):
    return x @ W[name + ".weight"].T


def rms(x, w, eps=1e-5):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def model_source(call, D, max_t=1024):
    """A one-layer model: y = call(x) under the scope "layer"."""
    return f"""import std
model m {{
  max T = {max_t}
  input x : f32[T, {D}]
  output y : f32[T, {D}]
  y = {call} @ "layer"
}}
"""


def check_runs(c, inputs, refs, rtol, label="", runs=RUNS):
    """Runs Case c every way in `runs` and checks each output named in `refs`
    (name -> reference tensor). Returns one boolean per check."""
    results = []
    for how, kw in runs:
        tag = (label + "." if label else "") + how.replace(" ", "_")
        out = c.run(inputs, tag=tag, **kw)
        for name, want in refs.items():
            results.append(check(f"{label} {name} {how}".strip(), out[name], want, rtol))
    return results


def check_param_shapes(c, want_shapes):
    """Case c's parameters (names and shapes, from `gattnc init`) are exactly
    want_shapes (name -> list of dims). Prints and returns the verdict."""
    shapes = {n: list(t.shape) for n, t in c.weights.items()}
    ok = shapes == want_shapes
    print(f"{'ok' if ok else 'FAIL'}: parameter names and shapes {shapes}")
    return ok


def check_interp_counted(c, inputs, refs, rtol, label, cpath):
    """check_runs for the interpreter's prefill, with its execution counters
    written to cpath (GAT_INTERP_COUNT). Returns (one boolean per check, the
    counted ops)."""
    os.environ["GAT_INTERP_COUNT"] = cpath
    try:
        results = check_runs(c, inputs, refs, rtol, label=label, runs=RUNS[:1])
    finally:
        os.environ.pop("GAT_INTERP_COUNT", None)
    with open(cpath) as f:
        return results, json.load(f)["ops"]


def check_routed(c, x, want, want_rows, cpath, label, note, rtol=1e-4):
    """A routed layer (Case c, y = layer(x)) at one T against PyTorch: the
    interpreter's prefill with its execution counters, whose mixtures must
    have run exactly want_rows rows (one list of per-expert rows per mixture,
    in program order) on all T tokens; then interpreter decode and the
    compiled prefill and decode (at T = 1 decode is the prefill call, so the
    compiled prefill only). Returns one boolean per check."""
    T = x.shape[0]
    results, ops = check_interp_counted(c, {"x": x}, {"y": want}, rtol, label, cpath)
    mix = [o for o in ops if o["kind"] == "mixture"]
    got_rows = [o["experts"] for o in mix]
    ok = got_rows == want_rows and all(o["tokens"] == T for o in mix)
    print(f"{'ok' if ok else 'FAIL'}: {label} expert rows of the {len(mix)} mixtures {got_rows} "
          f"== PyTorch routing {want_rows} ({note})")
    results.append(ok)
    runs = [RUNS[2]] if T == 1 else RUNS[1:]
    return results + check_runs(c, {"x": x}, {"y": want}, rtol, label=label, runs=runs)


def sweep(args, name, call, ref, D, seed=0, rtol=1e-4, ts=TS):
    """Compiles `call` as a one-layer model and compares it with ref(W, prefix, x)
    for every T in ts, prefill and decode, interpreter and C."""
    torch.manual_seed(seed)
    c = Case(args, name, model_source(call, D))
    set_weights(c, perturb(c.weights, seed=seed + 1))
    results = []
    for T in ts:
        x = torch.randn(T, D)
        want = ref(c.weights, "layer.", x.double())
        # one token: decode is the same call as prefill
        runs = [RUNS[0], RUNS[2]] if T == 1 else RUNS
        results += check_runs(c, {"x": x}, {"y": want}, rtol, label=f"{name} T={T}", runs=runs)
    return results


def variant(args, name, call, ref, D, T=40, seed=10, c_decode=False, rtol=1e-4):
    """One variant of a layer at one T: interpreter prefill and decode and C
    prefill; C decode only when asked (each compiled run costs a C compile, and
    the T sweep covers C decode already)."""
    torch.manual_seed(seed)
    c = Case(args, name, model_source(call, D, max_t=64))
    set_weights(c, perturb(c.weights, seed=seed + 1, scale=0.3))
    x = torch.randn(T, D)
    want = ref(c.weights, "layer.", x.double())
    runs = RUNS if c_decode else RUNS[:3]
    return check_runs(c, {"x": x}, {"y": want}, rtol, label=f"{name} T={T}", runs=runs)


def summary(results):
    """Prints the closing line ctest's readers look for; returns the exit status."""
    n_ok = sum(results)
    print(f"{n_ok} passed, {len(results) - n_ok} failed")
    return 0 if all(results) else 1
