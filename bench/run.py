#!/usr/bin/env python3
"""Benchmark runner for the models M1..M6 (bench/m*.gat against their PyTorch
counterparts bench/m*.py, which share bench/refmodels.py): gattnc -O2 vs -O0
vs PyTorch eager, same weights, one thread, all in one run.

  /usr/bin/python3 bench/run.py [--gattnc build/gattnc] [--md bench/results.md]
                                [--svg bench/results.svg] [--reps 5] [--models m1,m5]
  /usr/bin/python3 bench/run.py --quick     (tiny sizes, M1 and M5 only: a CI smoke test)
      [--ort-dir DIR] [--no-ort] [--no-torch]

Per model: `gattnc init` weights (seed 0) loaded by both sides; gattnc
compiles the model at -O2 and at -O0 to C, which is built with
`cc -O3 -march=native` into a small timing program written here. Workload
(the same on both sides): a prefill of T = 512 tokens, then 128 decode
calls of one token each, continuing from the prefill's state (positions
512..639); M5 (keyword spotting) instead: one 100-frame utterance in one
call, then the same 100 frames streamed one per call from a fresh state.
Each measurement is the median of --reps runs (after one warm-up run),
with min and max. PyTorch runs in a child process with OPENBLAS_NUM_THREADS=1,
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset and torch.set_num_threads(1),
configured as a user tuning it would: glibc's malloc keeps freed activations
instead of returning them to the kernel (GLIBC_TUNABLES=glibc.malloc.
mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184; with the
defaults every large tensor is a fresh mmap and its page faults cost PyTorch
30-60% here). That tuned figure is the "PyTorch" column and the ratios; the
figure with glibc's defaults is printed beside it, labelled, from the same run.
Debian's python3-torch needs libopenblas0-pthread (scripts/install-deps.sh)
or its matmuls run on the reference BLAS at well under 1 GFLOP/s: the
runner prints torch's measured matmul speed so that this shows.

Peer columns. "PyTorch": eager PyTorch as above (prefill and decode).
"ONNX Runtime" (prefill only): each model's PyTorch prefill forward (the
whole T-token call from a fresh state, same weights and input as the
PyTorch column) exported with torch.onnx.export (opset 17, in a child with
the PyTorch environment), checked with onnx.checker when python3-onnx is
installed, and run by bench/ort_time.js under npm's onnxruntime-node
(pinned version below) in a session with one intra-op and one inter-op
thread, sequential execution, graphOptimizationLevel 'all', CPU provider:
one warm-up run whose output must match PyTorch's within 1e-4
(max|diff| / max|PyTorch|), then --reps timed runs. A model whose forward
does not export (M3 and M6: torch 1.13 has no ONNX export of
linalg_solve_triangular, which their chunked prefill uses; the recurrent
form would unroll T x layers steps), or does not match, gets "–" and the
reason. onnxruntime-node ships its native library in the npm package
(bin/napi-v6/linux/x64/libonnxruntime.so.1); its install script only
fetches optional CUDA files, so `npm i --ignore-scripts` is all it needs,
plus `node` on PATH. The runner looks for it in --ort-dir (default
$XDG_CACHE_HOME/gattnc-bench/ort, else ~/.cache/gattnc-bench/ort) and
installs it there when missing (npm, 300 s timeout), except under --quick,
which never touches the network: without an install its column is
"– (not installed: ...)" and the run goes on. To install by hand:
  npm i --ignore-scripts --prefix ~/.cache/gattnc-bench/ort onnxruntime-node@1.31.1

Machine probes, in the same C program family: peak single-core FMA
throughput (bench/peak_probe.h, shared with `gattnc bench`: independent FMA
chains on vectors of the target's native width, as many as its registers
hold) and a STREAM-like triad a[i] = b[i] + s * c[i] over 3 x 64 MiB of
doubles (24 bytes per element counted). Derived columns: O0/O2 and
PyTorch/O2 speed-ups, -O2 prefill GFLOP/s (operation counts of the loop IR
from `gattnc --stats`; M4 counts every expert on every row, an upper bound)
as a percentage of the peak probe, and -O2 decode time per token against
weight bytes / triad bandwidth, the time to stream every weight once
(M4 touches only its top-2 of 8 experts per token, so it can beat that).
And what a tuned library reaches: OpenBLAS sgemm (torch.mm in the tuned
PyTorch child, one thread) at M1's GEMM shapes, M = T rows by (K, N) of its
projections, SwiGLU and lm_head, in GFLOP/s and % of the peak probe.

Writes the table to stdout and as markdown to --md (default
bench/results.md; --quick: the work directory), optionally an SVG bar chart
of prefill and decode times (--svg)."""
import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RUNTIME = os.path.join(ROOT, "runtime")

MODELS = {  # key: (gat/py stem, display name, kind)
    "m1": ("m1_gated_attention", "M1 gated attention", "lm"),
    "m2": ("m2_gla", "M2 GLA", "lm"),
    "m3": ("m3_gated_deltanet", "M3 gated DeltaNet", "lm"),
    "m4": ("m4_moe", "M4 MoE (top-2 of 8)", "lm"),
    "m5": ("m5_gru_kws", "M5 GRU keyword spotting", "kws"),
    "m6": ("m6_hybrid", "M6 hybrid", "lm"),
}
KWS_FEATURES = 40

# ---- small utilities --------------------------------------------------------


def sh(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode:
        sys.exit(f"bench/run.py: command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-4000:]}{p.stderr[-4000:]}")
    return p.stdout


def med(xs):
    return statistics.median(xs)


def fmt_t(xs, scale, digits):
    """'median [min, max]' of a list of seconds, times scale."""
    return f"{med(xs) * scale:.{digits}f} [{min(xs) * scale:.{digits}f}, {max(xs) * scale:.{digits}f}]"


def find_gattnc(arg):
    if arg:
        return os.path.abspath(arg)
    cands = [os.path.join(ROOT, d, "gattnc") for d in os.listdir(ROOT) if d.startswith("build")]
    cands = [c for c in cands if os.access(c, os.X_OK)]
    if not cands:
        sys.exit("bench/run.py: no gattnc binary found; pass --gattnc PATH")
    return max(cands, key=os.path.getmtime)


def cc():
    return os.environ.get("CC", "cc")


# ---- machine probes -----------------------------------------------------------

PROBE_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
#include "peak_probe.h" /* the FMA probe of `gattnc bench` too */
static __attribute__((noinline)) void triad(double *restrict a, const double *restrict b, const double *restrict c, long n, double s) {
  for (long i = 0; i < n; i++) a[i] = b[i] + s * c[i];
}
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 20000000, m = argc > 2 ? atol(argv[2]) : (64L << 20) / 8;
  double best = 0, bw = 0, t0;
  float sink = 0;
  for (int r = 0; r < 5; r++) {
    t0 = now(); sink += gat_peak_probe(n, 0.999f); double g = (double)n * GAT_PEAK_FLOPS_PER_ITER / (now() - t0) * 1e-9;
    if (g > best) best = g;
  }
  double *a = malloc(8 * m), *b = malloc(8 * m), *c = malloc(8 * m);
  for (long i = 0; i < m; i++) a[i] = 0, b[i] = 1, c[i] = 2;
  for (int r = 0; r < 6; r++) {
    t0 = now(); triad(a, b, c, m, 3.0); double g = 24.0 * m / (now() - t0) * 1e-9;
    if (r > 0 && g > bw) bw = g;
  }
  printf("peak_gflops %.3f\ntriad_gbs %.3f\nsink %g\n", best, bw, (double)sink + a[m / 2]);
  return 0;
}
"""


def probes(work, quick):
    src = os.path.join(work, "probe.c")
    with open(src, "w") as f:
        f.write(PROBE_C)
    exe = os.path.join(work, "probe")
    sh([cc(), "-std=gnu11", "-O3", "-march=native", "-I", os.path.dirname(os.path.abspath(__file__)), src, "-o", exe])
    out = sh([exe] + (["2000000", str((16 << 20) // 8)] if quick else []))
    vals = dict(re.findall(r"(\w+) ([0-9.e+-]+)", out))
    return float(vals["peak_gflops"]), float(vals["triad_gbs"])


# ---- gattnc side ----------------------------------------------------------------

HARNESS_C = r"""
/* timing program written by bench/run.py: prefill of T rows, then D single-row
 * calls continuing from that state (KWS, STREAM_FRESH: reset first); reps runs,
 * after a warm-up run if `warm`; prints per run the prefill and the mean decode
 * time per call in ns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "NAME.h"
static void *rd(const char *p, size_t *n) {
  FILE *f = fopen(p, "rb"); long len; void *b;
  if (!f) { perror(p); exit(2); }
  fseek(f, 0, SEEK_END); len = ftell(f); fseek(f, 0, SEEK_SET);
  b = malloc((size_t)len + 64);
  if (fread(b, 1, (size_t)len, f) != (size_t)len) { perror(p); exit(2); }
  fclose(f); *n = (size_t)len; return b;
}
int main(int argc, char **argv) {
  size_t wl; void *w = rd(argv[1], &wl);
  long T = atol(argv[2]), D = atol(argv[3]), reps = atol(argv[4]), vocab = atol(argv[5]), warm = atol(argv[6]);
  long rows = T + D, r, s;
  size_t alen = (UP_ARENA_BYTES + wl + 4096 + 63) / 64 * 64;
  unsigned char *arena = aligned_alloc(64, alen);
  NAME *m = calloc(1, sizeof *m);
  INTYPE *in = malloc(sizeof(INTYPE) * (size_t)(rows * ROW_IN));
  float *out = malloc(sizeof(float) * (size_t)(rows * ROW_OUT));
  unsigned long long x = 0x9e3779b97f4a7c15ull;
  for (long i = 0; i < rows * ROW_IN; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    in[i] = IS_TOKENS ? (INTYPE)(x % (unsigned long long)vocab) : (INTYPE)((double)(x >> 11) / 9007199254740992.0 * 2 - 1);
  }
  if (NAME_init(m, arena, alen, w, wl) != GAT_OK) { fprintf(stderr, "init: %s\n", NAME_message(m)); return 1; }
  for (r = warm ? 0 : 1; r <= reps; r++) {
    uint64_t t0, t1, dsum = 0;
    NAME_reset(m);
    t0 = gat_time_ns();
    if (NAME_forward(m, in, (int32_t)T, out) != GAT_OK) { fprintf(stderr, "forward: %s\n", NAME_message(m)); return 1; }
    t1 = gat_time_ns();
    if (STREAM_FRESH) NAME_reset(m);
    for (s = 0; s < D; s++) {
      const INTYPE *xi = in + (STREAM_FRESH ? s : T + s) * ROW_IN;
      uint64_t a = gat_time_ns();
      if (NAME_forward(m, xi, 1, out) != GAT_OK) { fprintf(stderr, "decode: %s\n", NAME_message(m)); return 1; }
      dsum += gat_time_ns() - a;
    }
    if (r > 0) printf("run %llu %llu\n", (unsigned long long)(t1 - t0), (unsigned long long)(D > 0 ? dsum / (uint64_t)D : 0));
  }
  return 0;
}
"""


def gattnc_build(gattnc, gat, level, work, tag, ccflags, max_seq):
    """Compiles `gat` at -O{level} into an executable timing program; returns its path."""
    name = f"{tag}_o{level}"
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    csrc = os.path.join(d, name + ".c")
    sh([gattnc, gat, f"-O{level}", "-o", csrc] + (["--max-seq", str(max_seq)] if max_seq else []))
    hdr = open(os.path.join(d, name + ".h")).read()
    m_in = re.search(rf"int {name}_forward\({name} \*m, const (\w+) \*\w+, int32_t T, float \*\w+\);", hdr)
    if not m_in:
        sys.exit(f"bench/run.py: unexpected forward signature in {name}.h (one input, one f32 output expected)")
    # elements per row of the input and the output, from the header's comment (`name : f32[T, 4096]`)
    shapes = re.findall(r"^ \*   \w+ : \w+\[T(?:, ([0-9, ]+))?\]$", hdr, re.M)
    if len(shapes) != 2:
        sys.exit(f"bench/run.py: cannot read the input/output shapes from {name}.h")
    rows = [math.prod(int(v) for v in s.split(",")) if s else 1 for s in shapes]
    return d, name, m_in.group(1), rows[0], rows[1]


def gattnc_program(d, name, intype, row_in, row_out, tokens, fresh, ccflags):
    c = (HARNESS_C.replace("NAME", name).replace("UP_ARENA_BYTES", name.upper() + "_ARENA_BYTES")
         .replace("INTYPE", intype).replace("ROW_IN", str(row_in)).replace("ROW_OUT", str(row_out))
         .replace("IS_TOKENS", "1" if tokens else "0").replace("STREAM_FRESH", "1" if fresh else "0"))
    main = os.path.join(d, "main.c")
    with open(main, "w") as f:
        f.write(c)
    exe = os.path.join(d, "prog")
    sh([cc(), "-std=c11", *ccflags, "-D_POSIX_C_SOURCE=200809L", f"-I{RUNTIME}", f"-I{d}",
        os.path.join(d, name + ".c"), main, os.path.join(RUNTIME, "gat_runtime.c"),
        os.path.join(RUNTIME, "gat_safetensors.c"), "-o", exe, "-lm"])
    return exe


def gattnc_time(exe, wpath, T, D, reps, vocab, warm=True):
    out = sh([exe, wpath, str(T), str(D), str(reps), str(vocab), "1" if warm else "0"])
    runs = [tuple(int(v) * 1e-9 for v in ln.split()[1:3]) for ln in out.splitlines() if ln.startswith("run ")]
    return [r[0] for r in runs], [r[1] for r in runs]


def gattnc_stats(gattnc, gat, T):
    out = sh([gattnc, gat, "--stats", "-O2", "-T", str(T)])

    def num(label):
        m = re.search(rf"^\s*{re.escape(label)}\s+([0-9.e+-]+)", out, re.M)
        return float(m.group(1)) if m else float("nan")

    return {"flops_prefill": num(f"prefill, T = {T}"), "flops_decode": num(f"decode, per token at position {T}"),
            "weight_bytes": num("parameters"), "arena": num("total"), "lower_bound": num("liveness lower bound")}


# ---- PyTorch side (a child process: the BLAS environment must be set before torch loads) ----

# glibc malloc thresholds that keep freed activations in the heap (see the docstring)
TORCH_MALLOC_TUNING = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184"


def torch_env(tuned=True):
    env = dict(os.environ)
    if tuned:
        env["GLIBC_TUNABLES"] = ":".join(x for x in (env.get("GLIBC_TUNABLES"), TORCH_MALLOC_TUNING) if x)
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(k, None)
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    return env


def torch_worker(a):
    """--torch-worker: times the PyTorch model; prints one JSON line."""
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, HERE)
    stem, _, kind = MODELS[a.torch_worker]
    mod = __import__(stem)
    import refmodels as rm
    res = {}
    if a.matmul:  # BLAS sanity: torch's single-thread matmul speed
        x, y = torch.randn(512, 512), torch.randn(512, 512)
        for _ in range(2):
            x @ y
        t0 = time.perf_counter()
        for _ in range(5):
            x @ y
        res["matmul_gflops"] = 2 * 512 ** 3 * 5 / (time.perf_counter() - t0) * 1e-9
        res["sgemm"] = sgemm_probe(torch, a.matmul)
    m = mod.load(a.weights, torch.float32)
    g = torch.Generator().manual_seed(0)
    T, D = a.T, a.decode
    if kind == "kws":
        mel = torch.randn(max(T, D), KWS_FEATURES, generator=g)

        def run():
            t0 = time.perf_counter()
            m(mel[:T])
            t1 = time.perf_counter()
            h = None
            for t in range(D):
                _, h = m(mel[t:t + 1], h)
            return t1 - t0, (time.perf_counter() - t1) / max(D, 1)
    else:
        tokens = torch.randint(0, a.vocab, (T + D,), generator=g, dtype=torch.int32)
        pre_kw, dec_kw = rm.lm_modes(a.chunked)

        def run():
            t0 = time.perf_counter()
            _, cache = m(tokens[:T], **pre_kw)
            t1 = time.perf_counter()
            for t in range(T, T + D):
                _, cache = m(tokens[t:t + 1], cache, **dec_kw)
            return t1 - t0, (time.perf_counter() - t1) / max(D, 1)

    with torch.inference_mode():
        runs = [run() for _ in range(a.reps + 1)][1:]
    res["prefill"] = [r[0] for r in runs]
    res["decode"] = [r[1] for r in runs]
    res["torch"] = torch.__version__
    print(json.dumps(res))
    return 0


def sgemm_shapes():
    """(K, N) of M1's GEMMs (bench/m1_gated_attention.py, the counterpart of the .gat):
    q/k/v/g projections, o_proj, SwiGLU gate/up, down, lm_head."""
    sys.path.insert(0, HERE)
    import m1_gated_attention as m1
    hd = m1.HEADS * m1.HEAD_DIM
    return [(m1.D, hd), (hd, m1.D), (m1.D, m1.HIDDEN), (m1.HIDDEN, m1.D), (m1.D, m1.VOCAB)]


def sgemm_probe(torch, M):
    """What a tuned library reaches on one core: torch.mm (OpenBLAS sgemm) of an
    [M, K] activation by a transposed [N, K] weight, as nn.Linear calls it; median of
    7 runs after 2 warm-ups per shape. Returns [(K, N, GFLOP/s)]."""
    out = []
    for K, N in dict.fromkeys(sgemm_shapes()):
        x, w = torch.randn(M, K), torch.randn(N, K)
        ts = []
        for r in range(9):
            t0 = time.perf_counter()
            torch.mm(x, w.t())
            ts.append(time.perf_counter() - t0)
        out.append((K, N, 2 * M * K * N / med(ts[2:]) * 1e-9))
    return out


def torch_time(key, wpath, T, D, reps, vocab, chunked, matmul, tuned=True):
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker", key, "--weights", wpath, "--T", str(T),
           "--decode", str(D), "--reps", str(reps), "--vocab", str(vocab)]
    cmd += (["--chunked"] if chunked else []) + (["--matmul", str(matmul)] if matmul else [])
    out = sh(cmd, env=torch_env(tuned))
    return json.loads(out.strip().splitlines()[-1])


# ---- ONNX Runtime side (npm onnxruntime-node run by bench/ort_time.js; prefill only) ----

ORT_NPM = "onnxruntime-node@1.31.1"  # pinned so that figures from different days compare
ORT_OPSET = 17  # the newest opset torch 1.13 exports
ORT_TOL = 1e-4  # max|ORT - PyTorch| / max|PyTorch| on the same input, float32 both (as the --check harness)
ORT_SESSION = "1 intra-op + 1 inter-op thread, sequential execution, graphOptimizationLevel 'all', CPU EP"


def ort_default_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gattnc-bench", "ort")


def ort_setup(d, may_install):
    """Finds (or, if may_install, npm-installs) onnxruntime-node in d and loads it once.
    Returns (environment for node, version) or (None, why not)."""
    import glob
    import platform
    node = shutil.which("node")
    if not node:
        return None, "no `node` on PATH"
    mods = os.path.join(d, "node_modules")
    pkg = os.path.join(mods, "onnxruntime-node")
    if not os.path.isdir(pkg):
        if not may_install:
            return None, f"no {pkg}; --quick never installs it (run once without --quick, or see --ort-dir)"
        npm = shutil.which("npm")
        if not npm:
            return None, "no `npm` on PATH"
        os.makedirs(d, exist_ok=True)
        print(f"  installing {ORT_NPM} into {d} (npm i --ignore-scripts) ...", flush=True)
        try:
            p = subprocess.run([npm, "i", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", d, ORT_NPM],
                               capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return None, "npm install timed out after 300 s"
        if p.returncode:
            return None, "npm install failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]
    arch = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    osname = {"linux": "linux", "darwin": "darwin", "win32": "win32"}.get(sys.platform, sys.platform)
    if not glob.glob(os.path.join(pkg, "bin", "napi-v*", osname, arch, "*onnxruntime*")):
        return None, f"{pkg} ships no native library for {osname}/{arch}"
    env = dict(os.environ, NODE_PATH=mods)
    p = subprocess.run([node, "-e", "const o = require('onnxruntime-node'); console.log(o.env.versions.node)"],
                       env=env, capture_output=True, text=True, timeout=120)
    if p.returncode:
        return None, "onnxruntime-node does not load: " + (p.stderr.strip().splitlines() or ["?"])[0]
    return env, p.stdout.strip()


def onnx_worker(a):
    """--onnx-worker: exports the PyTorch model's prefill (the whole T-token forward from a
    fresh state, the same input as the PyTorch timing) to a.out/model.onnx, checks it with
    onnx.checker, writes the input and PyTorch's output; prints one JSON line."""
    import warnings
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, HERE)
    stem, _, kind = MODELS[a.onnx_worker]
    mod = __import__(stem)
    import refmodels as rm
    m = mod.load(a.weights, torch.float32)
    g = torch.Generator().manual_seed(0)  # as torch_worker draws it
    T, D = a.T, a.decode
    if kind == "kws":
        x, kw = torch.randn(max(T, D), KWS_FEATURES, generator=g)[:T].contiguous(), {}
    else:
        x = torch.randint(0, a.vocab, (T + D,), generator=g, dtype=torch.int32)[:T].contiguous()
        kw = rm.lm_modes(a.chunked)[0]

    class Prefill(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x, **kw)[0]

    f = Prefill().eval()
    path = os.path.join(a.out, "model.onnx")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(f, (x,), path, input_names=["x"], output_names=["y"], opset_version=ORT_OPSET)
    except Exception as e:  # an export failure is a result ("–"), not a crash of the runner
        why = re.split(r"\.\s", (str(e).strip().splitlines() or ["?"])[0])[0][:200]  # its first sentence
        print(json.dumps({"error": f"torch.onnx.export failed: {type(e).__name__}: {why}"}))
        return 0
    try:
        import onnx
    except ImportError:
        checked = "not checked (no python3-onnx)"
    else:
        try:
            onnx.checker.check_model(path)
        except Exception as e:
            print(json.dumps({"error": "onnx.checker rejects the export: " + str(e).strip()[:200]}))
            return 0
        checked = f"onnx {onnx.__version__} checker ok"
    with torch.no_grad():
        y = f(x)
    xin, ref = os.path.join(a.out, "in.bin"), os.path.join(a.out, "ref.bin")
    x.numpy().tofile(xin)
    y.float().numpy().tofile(ref)
    print(json.dumps({"model": path, "input": xin, "dtype": "float32" if kind == "kws" else "int32",
                      "shape": list(x.shape), "ref": ref, "checked": checked}))
    return 0


def ort_time(ort_env, key, wpath, T, D, reps, vocab, chunked, work):
    """The ONNX Runtime prefill of one model: {"prefill_runs": [...], ...} or {"skip": why}."""
    out = os.path.join(work, f"{key}_onnx")
    os.makedirs(out, exist_ok=True)
    cmd = [sys.executable, os.path.abspath(__file__), "--onnx-worker", key, "--weights", wpath, "--T", str(T),
           "--decode", str(D), "--vocab", str(vocab), "--out", out] + (["--chunked"] if chunked else [])
    info = json.loads(sh(cmd, env=torch_env()).strip().splitlines()[-1])
    if "error" in info:
        return {"skip": info["error"]}
    p = subprocess.run(["node", os.path.join(HERE, "ort_time.js"), info["model"], info["input"], info["dtype"],
                        ",".join(map(str, info["shape"])), info["ref"], str(reps), str(ORT_TOL)],
                       env=ort_env, capture_output=True, text=True, timeout=3600)
    lines = p.stdout.strip().splitlines()
    if p.returncode or not lines:
        return {"skip": f"bench/ort_time.js failed ({p.returncode}): " + (p.stderr.strip().splitlines() or ["?"])[-1]}
    res = json.loads(lines[-1])
    if "error" in res:
        return {"skip": res["error"]}
    return {"prefill_runs": res["prefill"], "prefill": med(res["prefill"]), "rel": res["rel"],
            "checked": info["checked"]}


# ---- report -------------------------------------------------------------------------


def svg_bars(path, rows):
    """Grouped bars (log scale) of prefill and decode times per model: -O0, -O2, PyTorch,
    ONNX Runtime (prefill only)."""
    series = [("-O0", "#d62728"), ("-O2", "#1f77b4"), ("PyTorch", "#2ca02c"), ("ONNX Runtime", "#9467bd")]
    keys = ("o0", "o2", "pt", "ort")
    W, H, L, B, Tp = 860, 420, 70, 90, 40
    panels = [("prefill (ms)", "prefill", 1e3), ("decode per token (ms)", "decode", 1e3)]
    pw = (W - L - 20) / 2 - 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>']
    for pi, (title, key, sc) in enumerate(panels):
        x0 = L + pi * (pw + 60)
        vals = [r[s][key] * sc for r in rows for s in keys if r.get(s) and key in r[s]]
        lo = math.floor(math.log10(min(vals))) if vals else 0
        hi = math.ceil(math.log10(max(vals))) if vals else 1
        hi = max(hi, lo + 1)
        ph = H - Tp - B
        Y = lambda v: Tp + ph - (math.log10(v) - lo) / (hi - lo) * ph  # noqa: E731
        out.append(f'<text x="{x0 + pw / 2:.0f}" y="20" text-anchor="middle" font-size="13">{title}</text>')
        out.append(f'<rect x="{x0}" y="{Tp}" width="{pw:.0f}" height="{ph}" fill="none" stroke="black"/>')
        for d in range(lo, hi + 1):
            out.append(f'<line x1="{x0}" x2="{x0 + pw:.0f}" y1="{Y(10 ** d):.1f}" y2="{Y(10 ** d):.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{x0 - 4}" y="{Y(10 ** d) + 4:.1f}" text-anchor="end">{10 ** d:g}</text>')
        gw = pw / max(len(rows), 1)
        for i, r in enumerate(rows):
            for j, (lab, col) in enumerate(series):
                v = r.get(keys[j])
                if not v or key not in v:
                    continue
                t = v[key] * sc
                bx = x0 + i * gw + gw * (0.1 + 0.2 * j)
                out.append(f'<rect x="{bx:.1f}" y="{Y(t):.1f}" width="{gw * 0.19:.1f}" height="{Tp + ph - Y(t):.1f}" fill="{col}">'
                           f'<title>{r["name"]} {lab}: {t:.3g}</title></rect>')
            out.append(f'<text x="{x0 + (i + 0.5) * gw:.1f}" y="{Tp + ph + 14}" text-anchor="middle">{r["key"].upper()}</text>')
    for j, (lab, col) in enumerate(series):
        out.append(f'<rect x="{L + j * 110}" y="{H - 30}" width="14" height="10" fill="{col}"/>'
                   f'<text x="{L + j * 110 + 18}" y="{H - 21}">{lab}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gattnc", help="gattnc binary (default: the newest build*/gattnc)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, M1 and M5 only (CI smoke test, < 2 minutes)")
    ap.add_argument("--models", help="comma-separated subset of m1..m6")
    ap.add_argument("--T", type=int, help="prefill tokens (default 512; M5: 100 frames)")
    ap.add_argument("--decode", type=int, help="decode steps (default 128; M5: 100 frames)")
    ap.add_argument("--reps", type=int, help="timed runs per measurement (default 5; --quick 3)")
    ap.add_argument("--o0-reps", type=int, help="timed runs at -O0 (default: --reps); when smaller, no warm-up "
                    "run either (-O0 prefill of 512 tokens takes tens of seconds)")
    ap.add_argument("--md", help="markdown table output (default bench/results.md; --quick: in the work dir)")
    ap.add_argument("--svg", help="also write a bar chart SVG")
    ap.add_argument("--workdir", help="build directory (default: a temporary one, removed)")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch side")
    ap.add_argument("--ort-dir", help="directory holding node_modules/onnxruntime-node (default "
                    "$XDG_CACHE_HOME/gattnc-bench/ort or ~/.cache/gattnc-bench/ort; installed there with npm "
                    "when missing, except with --quick)")
    ap.add_argument("--no-ort", action="store_true", help="skip the ONNX Runtime column")
    # internal: the PyTorch child process
    ap.add_argument("--torch-worker", help=argparse.SUPPRESS)
    ap.add_argument("--onnx-worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    ap.add_argument("--vocab", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--chunked", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--matmul", type=int, default=0, help=argparse.SUPPRESS)  # sgemm probe rows M
    a = ap.parse_args()
    if a.torch_worker:
        a.T = a.T or 16
        a.decode = a.decode if a.decode is not None else 0
        a.reps = a.reps or 1
        return torch_worker(a)
    if a.onnx_worker:
        return onnx_worker(a)

    quick = a.quick
    keys = a.models.split(",") if a.models else (["m1", "m5"] if quick else list(MODELS))
    for k in keys:
        if k not in MODELS:
            ap.error(f"unknown model {k} (m1..m6)")
    reps = a.reps or (3 if quick else 5)
    lmT, lmD = a.T or (16 if quick else 512), a.decode if a.decode is not None else (4 if quick else 128)
    kwsT, kwsD = a.T or (20 if quick else 100), a.decode if a.decode is not None else (5 if quick else 100)
    ccflags = ["-O1"] if quick else ["-O3", "-march=native"]
    max_seq = 64 if quick else 0
    gattnc = find_gattnc(a.gattnc)
    work = a.workdir or tempfile.mkdtemp(prefix="gattnc-run-")
    os.makedirs(work, exist_ok=True)
    md_path = a.md or (os.path.join(work, "results.md") if quick else os.path.join(HERE, "results.md"))
    t_start = time.time()
    try:
        peak, bw = probes(work, quick)
        print(f"machine: peak FMA probe {peak:.1f} GFLOP/s (one core), triad {bw:.2f} GB/s; gattnc {gattnc}; "
              f"cc {' '.join(ccflags)}; {reps} timed runs per measurement (+1 warm-up)", flush=True)
        if a.no_ort:
            ort_env, ort_ver = None, "--no-ort"
        else:
            ort_env, ort_ver = ort_setup(os.path.abspath(a.ort_dir or ort_default_dir()), not quick)
        ort_label = (f"onnxruntime-node {ort_ver}, {ORT_SESSION}; graphs: torch.onnx.export (opset {ORT_OPSET}) "
                     f"of the PyTorch prefill" if ort_env else f"– (not installed: {ort_ver})")
        print(f"ONNX Runtime: {ort_label}", flush=True)
        rows, matmul, sgemm = [], None, None
        for k in keys:
            stem, name, kind = MODELS[k]
            gat = os.path.join(HERE, stem + ".gat")
            T, D = (kwsT, kwsD) if kind == "kws" else (lmT, lmD)
            wpath = os.path.join(work, f"{k}.safetensors")
            sh([gattnc, "init", gat, "-o", wpath, "--seed", "0"])
            st = gattnc_stats(gattnc, gat, T)
            vocab = 0
            row = {"key": k, "name": name, "T": T, "D": D, "stats": st}
            for level in (0, 2):
                d, cname, intype, row_in, row_out = gattnc_build(gattnc, gat, level, work, k, ccflags, max_seq)
                vocab = row_out if kind == "lm" else 0  # LM logits: one per vocabulary entry
                exe = gattnc_program(d, cname, intype, row_in, row_out, kind == "lm", kind == "kws", ccflags)
                lreps = a.o0_reps if level == 0 and a.o0_reps and a.o0_reps < reps else reps
                pre, dec = gattnc_time(exe, wpath, T, D, lreps, max(vocab, 1), warm=lreps == reps)
                row["o%d" % level] = {"prefill_runs": pre, "decode_runs": dec, "prefill": med(pre), "decode": med(dec)}
                print(f"  {name} -O{level}: prefill {fmt_t(pre, 1e3, 3)} ms, decode {fmt_t(dec, 1e3, 3)} ms/token",
                      flush=True)
            chunked = k in ("m2", "m3", "m6")  # their bench(): chunked prefill + recurrent decode
            if not a.no_torch:
                pt = torch_time(k, wpath, T, D, reps, vocab, chunked, lmT if matmul is None else 0)
                if matmul is None:
                    matmul, sgemm = pt.get("matmul_gflops"), pt.get("sgemm")
                    print("  OpenBLAS sgemm (torch.mm, one thread) at M1's GEMM shapes, M = "
                          f"{lmT}: " + ", ".join(f"KxN {K}x{N} {g:.1f} GFLOP/s ({100 * g / peak:.0f}% peak)"
                                                 for K, N, g in sgemm), flush=True)
                    print(f"  PyTorch {pt['torch']}: single-thread 512^3 matmul {matmul:.2f} GFLOP/s"
                          + ("  (reference BLAS? install libopenblas0-pthread)" if matmul < 2 else ""), flush=True)
                row["pt"] = {"prefill_runs": pt["prefill"], "decode_runs": pt["decode"], "prefill": med(pt["prefill"]),
                             "decode": med(pt["decode"])}
                print(f"  {name} PyTorch (malloc tuned): prefill {fmt_t(pt['prefill'], 1e3, 3)} ms, decode "
                      f"{fmt_t(pt['decode'], 1e3, 3)} ms/token", flush=True)
                pu = torch_time(k, wpath, T, D, reps, vocab, chunked, False, tuned=False)
                row["pt_default"] = {"prefill_runs": pu["prefill"], "decode_runs": pu["decode"],
                                     "prefill": med(pu["prefill"]), "decode": med(pu["decode"])}
                print(f"  {name} PyTorch (glibc malloc defaults): prefill {fmt_t(pu['prefill'], 1e3, 3)} ms, decode "
                      f"{fmt_t(pu['decode'], 1e3, 3)} ms/token", flush=True)
            if ort_env:
                row["ort"] = ort_time(ort_env, k, wpath, T, D, reps, vocab, chunked, work)
                o = row["ort"]
                print(f"  {name} ONNX Runtime: " + (f"prefill {fmt_t(o['prefill_runs'], 1e3, 3)} ms (output within "
                                                     f"{o['rel']:.1e} of PyTorch's; {o['checked']})"
                                                     if "skip" not in o else f"– ({o['skip']})"), flush=True)
            rows.append(row)
        md = report(rows, peak, bw, matmul, reps, ccflags, quick, a.o0_reps if a.o0_reps and a.o0_reps < reps else None,
                    ort_label, sgemm, lmT)
        print()
        print(md)
        with open(md_path, "w") as f:
            f.write(md)
        print(f"markdown table written to {md_path}")
        if a.svg:
            svg_bars(a.svg, rows)
            print(f"SVG written to {a.svg}")
        print(f"total {time.time() - t_start:.0f} s")
    finally:
        if not a.workdir and not os.environ.get("GAT_KEEP_TMP"):
            shutil.rmtree(work, ignore_errors=True)
    return 0


def report(rows, peak, bw, matmul, reps, ccflags, quick, o0_reps=None, ort_label="–", sgemm=None, sgemm_m=0):
    """The markdown table (also printed)."""
    L = []
    L.append(f"Machine: one core; FMA peak probe {peak:.1f} GFLOP/s, triad bandwidth {bw:.2f} GB/s"
             + (f", PyTorch 512^3 matmul {matmul:.2f} GFLOP/s" if matmul else "") + ".")
    L.append(f"Times: median [min, max] of {reps} runs"
             + (f" (-O0: {o0_reps} run{'s' if o0_reps > 1 else ''}, no warm-up)" if o0_reps else "")
             + f"; gattnc C built with `cc {' '.join(ccflags)}`"
             + (" (--quick: tiny sizes, not representative)" if quick else "") + ".")
    if sgemm:
        L.append(f"OpenBLAS sgemm (`torch.mm`, one thread) at M1's GEMM shapes, M = {sgemm_m}: "
                 + ", ".join(f"K x N {K} x {N}: {g:.1f} GFLOP/s ({100 * g / peak:.0f}% of peak)" for K, N, g in sgemm)
                 + ".")
    L.append(f"ONNX Runtime: {ort_label}.")
    L.append("")
    L.append("| model | workload | -O0 | -O2 | PyTorch | PyTorch, default malloc | ONNX Runtime | O0/O2 | PyTorch/O2 "
             "| ORT/O2 | -O2 GFLOP/s | % peak |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    skips = []
    for r in rows:
        pt, pu, ort = r.get("pt"), r.get("pt_default"), r.get("ort")
        if ort and "skip" in ort:
            skips.append(f"{r['key'].upper()}: {ort['skip']}")
            ort = None
        fl = r["stats"]["flops_prefill"]
        gf = fl / r["o2"]["prefill"] * 1e-9
        work = f"prefill T={r['T']}" if r["key"] != "m5" else f"utterance {r['T']} frames"
        L.append(f"| {r['name']} | {work} | {fmt_t(r['o0']['prefill_runs'], 1e3, 2)} ms | "
                 f"{fmt_t(r['o2']['prefill_runs'], 1e3, 2)} ms | "
                 + (f"{fmt_t(pt['prefill_runs'], 1e3, 2)} ms" if pt else "-") + " | "
                 + (f"{fmt_t(pu['prefill_runs'], 1e3, 2)} ms" if pu else "-") + " | "
                 + (f"{fmt_t(ort['prefill_runs'], 1e3, 2)} ms" if ort else "–") + " | "
                 f"{r['o0']['prefill'] / r['o2']['prefill']:.2f}x | "
                 + (f"{pt['prefill'] / r['o2']['prefill']:.2f}x" if pt else "-") + " | "
                 + (f"{ort['prefill'] / r['o2']['prefill']:.2f}x" if ort else "–") + " | "
                 f"{gf:.2f}{'*' if r['key'] == 'm4' else ''} | {100 * gf / peak:.1f}% |")
    if skips:
        L.append("")
        L.append("ONNX Runtime –: " + "; ".join(skips) + ".")
    L.append("")
    L.append("| model | decode | -O0 ms/token | -O2 ms/token | PyTorch ms/token | PyTorch, default malloc | O0/O2 | PyTorch/O2 | weights MB | weights/bandwidth ms | -O2 / bound |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        pt, pu = r.get("pt"), r.get("pt_default")
        wb = r["stats"]["weight_bytes"]
        bound = wb / (bw * 1e9)
        work = f"{r['D']} tokens after {r['T']}" if r["key"] != "m5" else f"{r['D']} frames streamed"
        L.append(f"| {r['name']} | {work} | {fmt_t(r['o0']['decode_runs'], 1e3, 3)} | {fmt_t(r['o2']['decode_runs'], 1e3, 3)} | "
                 + (fmt_t(pt["decode_runs"], 1e3, 3) if pt else "-") + " | "
                 + (fmt_t(pu["decode_runs"], 1e3, 3) if pu else "-") + " | "
                 f"{r['o0']['decode'] / r['o2']['decode']:.2f}x | "
                 + (f"{pt['decode'] / r['o2']['decode']:.2f}x" if pt else "-") + " | "
                 f"{wb / 1e6:.1f} | {bound * 1e3:.3f} | {r['o2']['decode'] / bound:.2f}x |")
    L.append("")
    L.append("O0/O2 and PyTorch/O2: time ratios (> 1: gattnc -O2 is faster). PyTorch: one thread, OpenBLAS, "
             "glibc malloc thresholds raised so freed activations stay in the heap (`GLIBC_TUNABLES=" + TORCH_MALLOC_TUNING
             + "`); default malloc: the same run with glibc's defaults. ONNX Runtime / ORT/O2: prefill "
             "only, the PyTorch model's prefill forward exported with torch.onnx.export and run by "
             "onnxruntime-node (bench/ort_time.js) after its output matched PyTorch's within "
             f"{ORT_TOL:g} (max|diff| / max|PyTorch|); – when it cannot be exported, does not match or "
             "is not installed. sgemm: OpenBLAS in the tuned PyTorch process, the speed a tuned "
             "library reaches on the model's GEMMs. GFLOP/s: operation counts of the "
             "loop IR (`gattnc --stats`) over the -O2 prefill time; % peak against the FMA probe. "
             "*M4: every expert counted on every row (an upper bound; top-2 of 8 do the work; "
             "its PyTorch model, and so its ONNX graph, does compute every expert). "
             "weights/bandwidth: the time to read every weight once at triad bandwidth, a lower bound "
             "for a decode step that touches all weights (M4 reads 2 of 8 experts per token).")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
