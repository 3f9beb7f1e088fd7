/* driver_bench.c — `gattnc bench FILE [--weights W] [-T 512] [--decode 128]
 * [--reps 5]`: fused vs unfused, measured.
 *
 * The model is compiled twice from the same front end, at -O0 (one plain
 * loop nest per op) and at -O2 (or the level and -fno-* flags given, if
 * not -O0), both with --profile and both built by the system compiler with
 * `-O3 -march=native` (BENCH_CFLAGS) into a small generated program
 * (bench_main.c) that binds the same weights, runs the same random inputs
 * (prefill of T tokens, median of --reps runs; then --decode calls of one
 * token each after a reset, median per token), writes the prefill outputs
 * and prints the per-kernel times the profiling hooks collected. gattnc
 * then checks the two builds agree (max |a - b| / max |b| <= 1e-4; -O2
 * accumulates GEMMs in f32) and prints one table: whole model and per
 * kernel of the optimized build with time, GFLOP/s (from the loop IR's
 * operation counts), share of the total and speed-up over the -O0 kernel of
 * the same id. A register-only FMA probe gives the machine's current peak,
 * so GFLOP/s can be read as a fraction of it on a shared machine. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "driver.h"
#include "driver_bench.h"
#include "emit_c.h"
#include "pass.h"
#include "tensor.h"

/* bench/peak_probe.h, line by line (CMakeLists.txt) */
extern const char *const gat_bench_peak_probe_text[];

#ifndef GAT_RUNTIME_DIR
#define GAT_RUNTIME_DIR "runtime"
#endif
#define BENCH_CFLAGS "-O3 -march=native"
#define BENCH_NAME "bm"
#define BENCH_MAXK 4096

/* ---- operation counts from the loop IR ---- */
static double size_val(LoopSize s, int64_t T) {
  double v = (double)s.k;
  for (int i = 0; i < s.tpow; i++) v *= (double)T;
  return v;
}

static double expr_flops(const LoopExpr *e, int64_t T) {
  if (!e) return 0;
  switch (e->kind) {
  case LX_UNARY:
  case LX_BINARY:
  case LX_SELECT: return 1 + expr_flops(e->a, T) + expr_flops(e->b, T) + expr_flops(e->c, T);
  case LX_REDUCE: return (double)(e->extent == IR_DIM_T ? T : e->extent) * (1 + expr_flops(e->a, T));
  default: return 0;
  }
}

static double kernels_flops(const PtrVec *ks, int64_t T);

static const LoopExpr *find_reduce(const LoopExpr *e) {
  if (!e || e->kind == LX_REDUCE) return e;
  const LoopExpr *r = find_reduce(e->a);
  if (!r) r = find_reduce(e->b);
  return r ? r : find_reduce(e->c);
}

static double kernel_flops(const LoopKernel *k, int64_t T) {
  switch (k->kind) {
  case LK_LOOP: {
    double n = 1;
    for (int d = 0; d < k->rank; d++) n *= (double)(k->ext[d] == IR_DIM_T ? T : k->ext[d]);
    const LoopExpr *r = k->sweep_at ? find_reduce(k->body) : NULL; /* pass_scanfuse: the sweep store runs once per term of the sum */
    double sw = r ? (double)(r->extent == IR_DIM_T ? T : r->extent) * expr_flops(k->sweep_val, T) : 0;
    return n * (expr_flops(k->body, T) + sw);
  }
  case LK_CALL:
    if (k->call == LC_GEMM) /* a GLU GEMM (args[7], pass_glu) does two products */
      return (k->nargs > 7 && k->args[7] >= 0 ? 4 : 2) * size_val(k->sizes[0], T) * size_val(k->sizes[1], T) *
             size_val(k->sizes[2], T);
    if (k->call == LC_ATTENTION && k->attn_part == LOOP_ATTN_APPEND) return 0; /* pass block: the K/V copy */
    if (k->call == LC_ATTENTION) /* causal prefill: T^2/2 keys per head, q.k and p.v */
      return size_val(k->sizes[0], T) * (size_val(k->sizes[0], T) + 1) / 2 * size_val(k->sizes[1], T) * 2 *
             (size_val(k->sizes[3], T) + size_val(k->sizes[4], T));
    return 5 * size_val(k->sizes[0], T) * (k->nsizes > 1 ? size_val(k->sizes[1], T) : 1);
  case LK_SCAN: return (double)T * kernels_flops(&k->regions[0]->kernels, T);
  case LK_TILE: /* pass block: the leaves' sizes are the whole product's, their blocks tile it once */
    return kernels_flops(&k->regions[0]->kernels, T);
  case LK_MIXTURE:
  case LK_SKIP: {
    double f = 0;
    for (int r = 0; r < k->nregions; r++) f += kernels_flops(&k->regions[r]->kernels, T);
    return f; /* upper bound: every region on all rows */
  }
  default: return 0;
  }
}

static double kernels_flops(const PtrVec *ks, int64_t T) {
  double f = 0;
  for (int i = 0; i < ks->len; i++) f += kernel_flops(ks->data[i], T);
  return f;
}

double driver_bench_flops(const LoopModule *lm, int64_t T) { return kernels_flops(&lm->kernels, T); }

/* ---- shared with bench --backend=llvm (driver_bench.h) ---- */
int bench_write_raw(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t w = fwrite(data, 1, n, f);
  return fclose(f) == 0 && w == n ? 0 : -1;
}

int bench_weights_load(const IrModule *m, const DriverOptions *o, TensorSet *w) {
  char err[1024];
  if (o->weights) {
    if (safetensors_read(o->weights, w, err, sizeof err) != 0) {
      fprintf(stderr, "gattnc: error: %s: %s\n", o->weights, err);
      return -1;
    }
  } else {
    weights_init(m, o->seed, w);
  }
  return 0;
}

int bench_inputs_write(const IrModule *m, const char *dir, int64_t rows, uint64_t seed, TensorSet *in, char *err,
                       size_t errlen) {
  int64_t vocab = 1 << 30;
  for (int i = 0; i < m->body->ops.len; i++) {
    const IrOp *op = m->body->ops.data[i];
    if (op->kind == IR_OP_GATHER && op->in[0]->shape.dims[0] < vocab) vocab = op->in[0]->shape.dims[0];
  }
  if (vocab == 1 << 30) vocab = 2;
  uint64_t s = 0x9e3779b97f4a7c15ull ^ seed;
  StrBuf p = {0};
  int rc = 0;
  for (int i = 0; i < m->inputs.len && rc == 0; i++) {
    const IrIO *io = m->inputs.data[i];
    int64_t dims[IR_MAX_RANK];
    for (int d = 0; d < io->shape.rank; d++) dims[d] = io->shape.dims[d] == IR_DIM_T ? rows : io->shape.dims[d];
    Tensor *t = tensorset_add(in, io->name, io->dtype, io->shape.rank, dims);
    uint32_t *buf = t->data;
    for (int64_t e = 0; e < tensor_numel(t); e++) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      if (io->dtype == IR_I32) {
        int32_t v = (int32_t)(s % (uint64_t)vocab);
        memcpy(&buf[e], &v, 4);
      } else {
        float f = (float)((double)(s >> 11) / 9007199254740992.0 * 2 - 1);
        memcpy(&buf[e], &f, 4);
      }
    }
    p.len = 0;
    sb_printf(&p, "%s/in%d.bin", dir, i);
    if (bench_write_raw(sb_cstr(&p), buf, (size_t)tensor_numel(t) * 4) != 0) {
      snprintf(err, errlen, "cannot write %s", sb_cstr(&p));
      rc = -1;
    }
  }
  sb_free(&p);
  return rc;
}

void bench_forward_calls(const IrModule *m, const char *name, StrBuf *call, StrBuf *call1) {
  sb_printf(call, "%s_forward(m", name);
  sb_printf(call1, "%s_forward(m", name);
  for (int i = 0; i < m->inputs.len; i++) {
    sb_printf(call, ", in%d", i);
    sb_printf(call1, ", in%d + s * row_in%d", i, i);
  }
  sb_append(call, ", (int32_t)T");
  sb_append(call1, ", 1");
  for (int i = 0; i < m->outputs.len; i++) {
    sb_printf(call, ", out%d", i);
    sb_printf(call1, ", out%d", i);
  }
  sb_append(call, ")");
  sb_append(call1, ")");
}

void bench_output_writes(StrBuf *h, const IrModule *m) {
  for (int i = 0; i < m->outputs.len; i++) {
    const IrIO *io = m->outputs.data[i];
    sb_printf(h, "  { FILE *f = fopen(argv[%d], \"wb\"); fwrite(out%d, 4, (size_t)%lld * (size_t)%s, f); fclose(f); }\n",
              2 + m->inputs.len + i, i, (long long)ir_shape_numel(io->shape, 1), ir_shape_has_T(io->shape) ? "T" : "1");
  }
}

int bench_outputs_read(const IrModule *m, const char *dir, int64_t T, TensorSet *out, char *err, size_t errlen) {
  StrBuf path = {0};
  int rc = 0;
  for (int i = 0; i < m->outputs.len && rc == 0; i++) {
    const IrIO *io = m->outputs.data[i];
    int64_t dims[IR_MAX_RANK];
    for (int d = 0; d < io->shape.rank; d++) dims[d] = io->shape.dims[d] == IR_DIM_T ? T : io->shape.dims[d];
    Tensor *t = tensorset_add(out, io->name, io->dtype, io->shape.rank, dims);
    path.len = 0;
    sb_printf(&path, "%s/out%d.bin", dir, i);
    size_t len;
    char *data = read_file(sb_cstr(&path), &len);
    size_t want = (size_t)tensor_numel(t) * 4;
    if (!data || len != want) {
      snprintf(err, errlen, "missing output %s", sb_cstr(&path));
      rc = -1;
    } else {
      memcpy(t->data, data, want);
    }
    free(data);
  }
  sb_free(&path);
  return rc;
}

double bench_max_rel_diff(const TensorSet *a, const TensorSet *b) {
  double worst = 0;
  for (int i = 0; i < b->n && i < a->n; i++) {
    const Tensor *x = &a->t[i], *y = &b->t[i];
    double e = 0, scale = 1e-30;
    for (int64_t k = 0; k < tensor_numel(y); k++) {
      double u = x->dtype == IR_F32 ? ((float *)x->data)[k] : ((int32_t *)x->data)[k];
      double v = y->dtype == IR_F32 ? ((float *)y->data)[k] : ((int32_t *)y->data)[k];
      if (!(fabs(u - v) <= e)) e = isnan(u - v) ? INFINITY : fabs(u - v);
      if (fabs(v) > scale) scale = fabs(v);
    }
    if (!(e / scale <= worst)) worst = e / scale;
  }
  return worst;
}

FILE *bench_build_start(const IrModule *m, const char *dir, const char *cflags, const char *model_file,
                        const char *wpath, char *err, size_t errlen) {
  StrBuf cmd = {0};
  FILE *p = NULL;
  sb_printf(&cmd, "%s -std=c11 %s -D_POSIX_C_SOURCE=200809L -I'%s' -I'%s' '%s/%s' '%s/bench_main.c' '%s/gat_runtime.c' "
            "'%s/gat_safetensors.c' -o '%s/bench' -lm > '%s/cc.log' 2>&1",
            backend_cc(), cflags, GAT_RUNTIME_DIR, dir, dir, model_file, dir, GAT_RUNTIME_DIR, GAT_RUNTIME_DIR, dir, dir);
  if (system(sb_cstr(&cmd)) != 0) {
    snprintf(err, errlen, "compiling the benchmark failed (see %s/cc.log)", dir);
    goto done;
  }
  cmd.len = 0;
  sb_printf(&cmd, "'%s/bench' '%s'", dir, wpath);
  for (int i = 0; i < m->inputs.len; i++) sb_printf(&cmd, " '%s/../in%d.bin'", dir, i);
  for (int i = 0; i < m->outputs.len; i++) sb_printf(&cmd, " '%s/out%d.bin'", dir, i);
  p = popen(sb_cstr(&cmd), "r");
  if (!p) snprintf(err, errlen, "cannot run %s/bench", dir);
done:
  sb_free(&cmd);
  return p;
}

void bench_tmpdir_remove(const char *dir) {
  if (getenv("GAT_KEEP_TMP")) return;
  StrBuf c = {0};
  sb_printf(&c, "rm -rf '%s'", dir);
  if (system(sb_cstr(&c)) != 0) { /* a leftover temporary directory: harmless */
  }
  sb_free(&c);
}

/* ---- the generated harness ---- */
/* sweep: --plot's prefill lengths (nsweep of them), each timed as the median of min(reps, 3) runs */
static void harness(StrBuf *h, const IrModule *m, int64_t T, int64_t D, int64_t reps, const int64_t *sweep,
                    int nsweep) {
  const char *N = BENCH_NAME;
  sb_append(h, "/* bench_main.c — generated by gattnc bench */\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n");
  sb_printf(h, "#include \"%s.h\"\n", N);
  sb_printf(h, "/* defined by a --profile build */\nint %s_profile_count(void);\nconst char *%s_profile_name(int i);\n"
               "uint64_t %s_profile_ns(int i);\nvoid %s_profile_clear(void);\n", N, N, N, N);
  sb_append(h,
            "static void *rd(const char *p, size_t *n) {\n"
            "  FILE *f = fopen(p, \"rb\"); long len; void *b;\n"
            "  if (!f) { perror(p); exit(2); }\n"
            "  fseek(f, 0, SEEK_END); len = ftell(f); fseek(f, 0, SEEK_SET);\n"
            "  b = malloc((size_t)len + 64);\n"
            "  if (fread(b, 1, (size_t)len, f) != (size_t)len) { perror(p); exit(2); }\n"
            "  fclose(f); if (n) *n = (size_t)len; return b;\n}\n"
            "static int cmp(const void *a, const void *b) { uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b; return x < y ? -1 : x > y; }\n");
  /* the FMA peak probe, bench/peak_probe.h embedded at build time (cmake/gat_embed.c) */
  for (const char *const *l = gat_bench_peak_probe_text; *l; l++) sb_append(h, *l);
  sb_append(h, "int main(int argc, char **argv) {\n  size_t wl; void *w = rd(argv[1], &wl);\n  int r; uint64_t t0, times[1024];\n");
  sb_printf(h, "  %s *m = calloc(1, sizeof *m);\n  unsigned char *arena = aligned_alloc(64, (%s_ARENA_BYTES + 63) / 64 * 64);\n", N, "BM");
  sb_printf(h, "  const int64_t T = %lld, D = %lld, reps = %lld;\n", (long long)T, (long long)D, (long long)reps);
  sb_append(h, "  (void)argc;\n");
  int nin = m->inputs.len, nout = m->outputs.len;
  for (int i = 0; i < nin; i++) {
    const IrIO *io = m->inputs.data[i];
    sb_printf(h, "  %s *in%d = rd(argv[%d], NULL);\n", emit_c_ctype(io->dtype), i, 2 + i);
    sb_printf(h, "  const int64_t row_in%d = %lld;\n", i, (long long)ir_shape_numel(io->shape, 1));
  }
  for (int i = 0; i < nout; i++) {
    const IrIO *io = m->outputs.data[i];
    int64_t orows = T > D ? T : D;
    for (int j = 0; j < nsweep; j++) orows = sweep[j] > orows ? sweep[j] : orows;
    sb_printf(h, "  %s *out%d = calloc((size_t)%lld * (size_t)%lld + 1, sizeof *out%d);\n",
              emit_c_ctype(io->dtype), i, (long long)ir_shape_numel(io->shape, 1), (long long)orows, i);
  }
  sb_printf(h, "  if (%s_init(m, arena, BM_ARENA_BYTES, w, wl) != GAT_OK) { fprintf(stderr, \"init: %%s\\n\", %s_message(m)); return 1; }\n", N, N);
  StrBuf call = {0}, call1 = {0};
  bench_forward_calls(m, N, &call, &call1);
  sb_printf(h, "  %s_reset(m);\n  if (%s != GAT_OK) { fprintf(stderr, \"forward: %%s\\n\", %s_message(m)); return 1; }\n", N, sb_cstr(&call), N);
  bench_output_writes(h, m);
  sb_printf(h, "  %s_profile_clear();\n", N);
  sb_printf(h, "  for (r = 0; r < reps; r++) { %s_reset(m); t0 = gat_time_ns(); (void)%s; times[r] = gat_time_ns() - t0; }\n", N, sb_cstr(&call));
  sb_append(h, "  qsort(times, (size_t)reps, 8, cmp);\n  printf(\"prefill_ns %llu\\n\", (unsigned long long)times[reps / 2]);\n");
  sb_printf(h, "  for (r = 0; r < %s_profile_count(); r++) printf(\"kernel %%s %%llu\\n\", %s_profile_name(r), (unsigned long long)(%s_profile_ns(r) / (uint64_t)reps));\n", N, N, N);
  sb_printf(h, "  if (D > 0) { int64_t s; uint64_t *dt = malloc(sizeof(uint64_t) * (size_t)D); %s_reset(m);\n", N);
  sb_printf(h, "    for (s = 0; s < D; s++) { t0 = gat_time_ns(); if (%s != GAT_OK) { fprintf(stderr, \"decode: %%s\\n\", %s_message(m)); return 1; } dt[s] = gat_time_ns() - t0; }\n", sb_cstr(&call1), N);
  sb_append(h, "    qsort(dt, (size_t)D, 8, cmp); printf(\"decode_ns %llu\\n\", (unsigned long long)dt[D / 2]); }\n");
  for (int i = 0; i < nsweep; i++) {
    StrBuf cs = {0}; /* the prefill call with T replaced by the sweep length */
    sb_printf(&cs, "%s_forward(m", N);
    for (int j = 0; j < nin; j++) sb_printf(&cs, ", in%d", j);
    sb_printf(&cs, ", (int32_t)%lld", (long long)sweep[i]);
    for (int j = 0; j < nout; j++) sb_printf(&cs, ", out%d", j);
    sb_append(&cs, ")");
    int64_t sr = reps < 3 ? reps : 3;
    sb_printf(h, "  for (r = 0; r < %lld; r++) { %s_reset(m); t0 = gat_time_ns(); if (%s != GAT_OK) { fprintf(stderr, \"sweep: %%s\\n\", %s_message(m)); return 1; } times[r] = gat_time_ns() - t0; }\n",
              (long long)sr, N, sb_cstr(&cs), N);
    sb_printf(h, "  qsort(times, %lld, 8, cmp); printf(\"sweep %lld %%llu\\n\", (unsigned long long)times[%lld]);\n", (long long)sr,
              (long long)sweep[i], (long long)(sr / 2));
    sb_free(&cs);
  }
  sb_append(h, "#ifdef GAT_HAVE_PEAK_PROBE\n  { long n = 20000000; float s; t0 = gat_time_ns(); s = gat_peak_probe(n, 0.999f); "
               "printf(\"peak_gflops %.1f %g\\n\", (double)n * GAT_PEAK_FLOPS_PER_ITER / (double)(gat_time_ns() - t0), "
               "(double)s); }\n#endif\n");
  sb_append(h, "  return 0;\n}\n");
  sb_free(&call);
  sb_free(&call1);
}

typedef struct BenchRun {
  double prefill_ns, decode_ns, peak;
  int nsw;                 /* --plot: prefill time per sweep length */
  double sw_T[32], sw_ns[32];
  int nk;
  char *kname[BENCH_MAXK];
  double kns[BENCH_MAXK];
  TensorSet out;
} BenchRun;

/* Builds and runs one level; fills r. */
static int bench_level(const IrModule *m, const PassOptions *po, const char *dir, const char *wpath,
                       const TensorSet *inputs, int64_t T, int64_t D, int64_t reps, const int64_t *sweep, int nsweep,
                       BenchRun *r, char *err, size_t errlen) {
  StrBuf path = {0}, cmd = {0}, h = {0};
  int rc = -1;
  sb_printf(&path, "%s/%s.c", dir, BENCH_NAME);
  if (backend_emit_c_opt(m, sb_cstr(&path), po, err, errlen) != 0) goto done;
  harness(&h, m, T, D, reps, sweep, nsweep);
  path.len = 0;
  sb_printf(&path, "%s/bench_main.c", dir);
  if (bench_write_raw(sb_cstr(&path), h.data, h.len) != 0) {
    snprintf(err, errlen, "cannot write %s", sb_cstr(&path));
    goto done;
  }
  PassOptions cpo = *po; /* both builds get the optimized build's -O3 -march (--target, -march) */
  cpo.opt_level = 2;
  FILE *p = bench_build_start(m, dir, backend_cflags(&cpo), BENCH_NAME ".c", wpath, err, errlen);
  if (!p) goto done;
  char line[1024], name[512];
  unsigned long long v;
  double pk;
  while (fgets(line, sizeof line, p)) {
    if (sscanf(line, "prefill_ns %llu", &v) == 1) r->prefill_ns = (double)v;
    else if (sscanf(line, "decode_ns %llu", &v) == 1) r->decode_ns = (double)v;
    else if (sscanf(line, "peak_gflops %lf", &pk) == 1) r->peak = pk;
    else if (sscanf(line, "sweep %lf %llu", &pk, &v) == 2 && r->nsw < 32) {
      r->sw_T[r->nsw] = pk;
      r->sw_ns[r->nsw++] = (double)v;
    }
    else if (sscanf(line, "kernel %511s %llu", name, &v) == 2 && r->nk < BENCH_MAXK) {
      r->kname[r->nk] = xstrdup(name);
      r->kns[r->nk++] = (double)v;
    }
  }
  if (pclose(p) != 0) {
    snprintf(err, errlen, "the benchmark program failed (%s/bench)", dir);
    goto done;
  }
  if (bench_outputs_read(m, dir, T, &r->out, err, errlen) != 0) goto done;
  (void)inputs;
  rc = 0;
done:
  sb_free(&path);
  sb_free(&cmd);
  sb_free(&h);
  return rc;
}

static int mkdir_p_sub(const char *d) {
  StrBuf c = {0};
  sb_printf(&c, "mkdir -p '%s'", d);
  int rc = system(sb_cstr(&c));
  sb_free(&c);
  return rc == 0 ? 0 : -1;
}

/* kernel id "NAME_k12_..." -> 12 */
static int kernel_id(const char *name) {
  const char *p = strstr(name, "_k");
  return p ? atoi(p + 2) : -1;
}

static double find_flops(const LoopModule *lm, int id, int64_t T) {
  for (int i = 0; i < lm->kernels.len; i++) {
    const LoopKernel *k = lm->kernels.data[i];
    if (k->id == id) return kernel_flops(k, T);
  }
  return 0;
}

/* the id of the -O0 kernel a top-level -O2 kernel compares with: its own, or for tile loops
   (pass block) the id of the call they block; -1 for an attention's K/V append, which pass
   block made (the -O0 attention's time compares with its loop over heads) */
static int o0_id(const LoopModule *lm, int id) {
  for (int i = 0; i < lm->kernels.len; i++) {
    const LoopKernel *k = lm->kernels.data[i];
    if (k->id != id) continue;
    if (k->kind == LK_CALL && k->call == LC_ATTENTION && k->attn_part == LOOP_ATTN_APPEND) return -1;
    while (k->kind == LK_TILE && k->regions[0]->kernels.len == 1) k = k->regions[0]->kernels.data[0];
    return k->id;
  }
  return id;
}

int driver_bench(const IrModule *m, const DriverOptions *o) {
  char err[2048] = "", dir[] = "/tmp/gattnc-bench-XXXXXX";
  TensorSet w = {0}, in = {0};
  BenchRun runs[2];
  memset(runs, 0, sizeof runs);
  int status = 1;
  int64_t T = o->bench_T, D = o->bench_decode, reps = o->bench_reps > 1000 ? 1000 : o->bench_reps;
  if (T > m->max_T) T = m->max_T;
  if (D > m->max_T) D = m->max_T;
  if (bench_weights_load(m, o, &w) != 0) return 1;
  if (!mkdtemp(dir)) {
    fprintf(stderr, "gattnc: error: cannot create a temporary directory\n");
    goto done;
  }
  StrBuf p = {0};
  sb_printf(&p, "%s/w.safetensors", dir);
  if (safetensors_write(sb_cstr(&p), &w, err, sizeof err) != 0) goto fail;
  int64_t sweep[32];
  int nsweep = 0;
  if (o->bench_plot) { /* T = 64, 128, ... up to max T (at most 4096); small models: max T alone */
    for (int64_t t = 64; t <= m->max_T && t <= 4096 && nsweep < 31; t *= 2) sweep[nsweep++] = t;
    if (nsweep == 0) sweep[nsweep++] = m->max_T;
  }
  int64_t rows = T > D ? T : D;
  if (nsweep > 0 && sweep[nsweep - 1] > rows) rows = sweep[nsweep - 1];
  /* inputs: i32 token ids below the smallest gather table, f32 uniform in [-1, 1) */
  if (bench_inputs_write(m, dir, rows, o->seed, &in, err, sizeof err) != 0) goto fail;
  p.len = 0;
  sb_printf(&p, "%s/w.safetensors", dir);
  PassOptions po[2];
  Arena a;
  arena_init(&a);
  LoopModule *lm = NULL;
  for (int l = 0; l < 2; l++) {
    driver_pass_options(o, &po[l]);
    if (l == 0) pass_options_init(&po[0], 0);
    else if (po[1].opt_level == 0) po[1].opt_level = 2;
    po[l].profile = 1;
    po[l].dump_after = NULL;
    StrBuf sub = {0};
    sb_printf(&sub, "%s/O%d", dir, l);
    if (mkdir_p_sub(sb_cstr(&sub)) != 0) {
      sb_free(&sub);
      goto fail;
    }
    int rc = bench_level(m, &po[l], sb_cstr(&sub), sb_cstr(&p), &in, T, D, reps, sweep, nsweep, &runs[l], err,
                         sizeof err);
    sb_free(&sub);
    if (rc != 0) goto fail;
  }
  {
    char e2[512];
    lm = pipeline_run(&a, m, BENCH_NAME, &po[1], e2, sizeof e2);
    LoopModule *lm0 = pipeline_run(&a, m, BENCH_NAME, &po[0], e2, sizeof e2);
    double fl = lm ? kernels_flops(&lm->kernels, T) : 0, fl0 = lm0 ? kernels_flops(&lm0->kernels, T) : 0;
    /* agreement */
    double worst = bench_max_rel_diff(&runs[1].out, &runs[0].out);
    const double tol = 1e-4;
    printf("gattnc bench %s: T = %lld prefill (median of %lld), %lld decode steps (median per token)\n", o->input,
           (long long)T, (long long)reps, (long long)D);
    PassOptions cpo = po[1];
    cpo.opt_level = 2;
    printf("C compiler: %s -std=c11 %s; optimized build: -O%d%s%s%s%s%s%s; both with --profile\n", backend_cc(),
           backend_cflags(&cpo), po[1].opt_level, po[1].fuse ? "" : " -fno-fuse", po[1].tile ? "" : " -fno-tile",
           po[1].pack ? "" : " -fno-pack", po[1].fold_scales ? "" : " -fno-fold-scales",
           po[1].prologue ? "" : " -fno-prologue", po[1].glu ? "" : " -fno-glu");
    printf("FMA peak probe (one core, registers only): %.1f GFLOP/s\n\n", runs[1].peak);
    printf("%-24s %12s %12s %9s\n", "", "-O0", "-O2", "speed-up");
    printf("%-24s %9.3f ms %9.3f ms %8.2fx\n", "prefill", runs[0].prefill_ns * 1e-6, runs[1].prefill_ns * 1e-6,
           runs[0].prefill_ns / runs[1].prefill_ns);
    printf("%-24s %12.1f %12.1f\n", "  GFLOP/s", fl0 / runs[0].prefill_ns, fl / runs[1].prefill_ns);
    if (D > 0)
      printf("%-24s %9.3f us %9.3f us %8.2fx\n", "decode, per token", runs[0].decode_ns * 1e-3,
             runs[1].decode_ns * 1e-3, runs[0].decode_ns / runs[1].decode_ns);
    printf("agreement: max |O2 - O0| / max |O0| = %.3g (tolerance %g): %s\n\n", worst, tol,
           worst <= tol ? "ok" : "MISMATCH");
    double total = 0;
    for (int k = 0; k < runs[1].nk; k++) total += runs[1].kns[k];
    printf("per kernel, -O2 build, prefill (speed-up against the -O0 kernel of the same id; fused kernels absorb others):\n");
    printf("%-48s %10s %9s %7s %10s %9s\n", "kernel", "ms", "GFLOP/s", "share", "-O0 ms", "speed-up");
    for (int k = 0; k < runs[1].nk; k++) {
      int id = kernel_id(runs[1].kname[k]);
      double f = lm ? find_flops(lm, id, T) : 0, t0 = -1;
      const int id0 = lm ? o0_id(lm, id) : id;
      for (int j = 0; j < runs[0].nk && id0 >= 0; j++)
        if (kernel_id(runs[0].kname[j]) == id0) t0 = runs[0].kns[j];
      const char *nm = runs[1].kname[k] + strlen(BENCH_NAME) + 1;
      printf("%-48.48s %10.4f %9.1f %6.1f%% %10.4f %8.2fx\n", nm, runs[1].kns[k] * 1e-6,
             runs[1].kns[k] > 0 ? f / runs[1].kns[k] : 0, total > 0 ? 100 * runs[1].kns[k] / total : 0,
             t0 * 1e-6, t0 > 0 && runs[1].kns[k] > 0 ? t0 / runs[1].kns[k] : 0);
    }
    status = worst <= tol ? 0 : 1;
    if (o->bench_plot) {
      const char *names[2] = {"-O0", "-O2"};
      int npts[2] = {runs[0].nsw, runs[1].nsw};
      double ms[2][32];
      for (int l = 0; l < 2; l++)
        for (int i = 0; i < runs[l].nsw; i++) ms[l][i] = runs[l].sw_ns[i] * 1e-6;
      const double *xs[2] = {runs[0].sw_T, runs[1].sw_T}, *ys[2] = {ms[0], ms[1]};
      StrBuf title = {0};
      sb_printf(&title, "gattnc bench %s: prefill time", o->input);
      if (driver_plot_svg(o->bench_plot, sb_cstr(&title), "T (tokens)", "prefill time (ms)", 2, names, npts, xs, ys) != 0) {
        fprintf(stderr, "gattnc: error: cannot write %s\n", o->bench_plot);
        status = 1;
      } else {
        printf("\nprefill time sweep (ms), plotted to %s:\n%8s %12s %12s\n", o->bench_plot, "T", "-O0", "-O2");
        for (int i = 0; i < runs[1].nsw && i < runs[0].nsw; i++)
          printf("%8.0f %12.3f %12.3f\n", runs[1].sw_T[i], ms[0][i], ms[1][i]);
      }
      sb_free(&title);
    }
  }
  arena_free(&a);
  goto cleanup;
fail:
  fprintf(stderr, "gattnc: error: bench: %s\n", err);
cleanup:
  sb_free(&p);
  bench_tmpdir_remove(dir);
done:
  for (int l = 0; l < 2; l++) {
    for (int k = 0; k < runs[l].nk; k++) free(runs[l].kname[k]);
    tensorset_free(&runs[l].out);
  }
  tensorset_free(&w);
  tensorset_free(&in);
  return status;
}
