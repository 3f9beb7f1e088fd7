/* loopir_backend.c — the driver-facing entry points of the C backend
 * (backend.h): lower the graph IR to loop IR, then write NAME.c and NAME.h
 * (and NAME_weights.c with --embed-weights), or print the loop IR. Lives with the loop IR because it is the one place
 * that sees both the graph IR and a backend. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "emit_c.h"
#include "loopir.h"
#include "pass.h"

/* "dir/my-model.c" -> base "my-model" (file names); emit_c_model_ident makes the C name my_model */
static void split_out_path(const char *path, StrBuf *dir, StrBuf *base) {
  const char *slash = strrchr(path, '/');
  const char *b = slash ? slash + 1 : path;
  if (slash) sb_appendn(dir, path, (size_t)(slash - path + 1));
  size_t n = strlen(b);
  if (n > 2 && strcmp(b + n - 2, ".c") == 0) n -= 2;
  sb_appendn(base, b, n);
}

/* Checks weights against the parameter table; fills data[i] for param i. */
static int match_weights(const LoopModule *m, const TensorSet *w, const void **data, char *err, size_t errlen) {
  for (int i = 0; i < m->nparams; i++) {
    const LoopTensorInfo *p = &m->params[i];
    const Tensor *t = tensorset_find(w, p->name);
    if (!t) {
      snprintf(err, errlen, "tensor '%s' is missing from the weights", p->name);
      return -1;
    }
    if (t->dtype != p->dtype) {
      snprintf(err, errlen, "tensor '%s' must be %s", p->name, p->dtype == IR_F32 ? "F32" : "I32");
      return -1;
    }
    int same = t->rank == p->shape.rank;
    for (int d = 0; same && d < t->rank; d++) same = t->dims[d] == p->shape.dims[d];
    if (!same) {
      char want[160];
      ir_type_str(want, sizeof want, p->dtype, p->shape);
      snprintf(err, errlen, "tensor '%s' has the wrong shape (the model expects %s)", p->name, want);
      return -1;
    }
    data[i] = t->data;
  }
  for (int i = 0; i < w->n; i++) {
    int known = 0;
    for (int j = 0; j < m->nparams && !known; j++) known = strcmp(w->t[i].name, m->params[j].name) == 0;
    if (!known) {
      snprintf(err, errlen, "tensor '%s' is not a parameter of this model", w->t[i].name);
      return -1;
    }
  }
  return 0;
}

static PassOptions level0(const PassOptions *po) {
  PassOptions o;
  if (po) return *po;
  pass_options_init(&o, 0);
  return o;
}

static int emit_files(const IrModule *im, const char *out_c_path, const TensorSet *weights, const char *wsource,
                      const PassOptions *po, char *err, size_t errlen) {
  PassOptions opts = level0(po);
  StrBuf dir = {0}, base = {0}, ident = {0}, hpath = {0}, hname = {0}, wpath = {0};
  int rc = -1;
  Arena a;
  arena_init(&a);
  split_out_path(out_c_path, &dir, &base);
  emit_c_model_ident(&ident, sb_cstr(&base));
  sb_printf(&hname, "%s.h", sb_cstr(&base));
  sb_printf(&hpath, "%s%s", sb_cstr(&dir), sb_cstr(&hname));
  sb_printf(&wpath, "%s%s_weights.c", sb_cstr(&dir), sb_cstr(&base));
  LoopModule *m = pipeline_run(&a, im, sb_cstr(&ident), &opts, err, errlen);
  const void **data = NULL;
  if (m && weights) {
    data = xcalloc((size_t)m->nparams + 1, sizeof *data);
    if (match_weights(m, weights, data, err, errlen) != 0) m = NULL;
  }
  if (m) {
    FILE *fc = fopen(out_c_path, "wb");
    FILE *fh = fc ? fopen(sb_cstr(&hpath), "wb") : NULL;
    FILE *fw = fh && weights ? fopen(sb_cstr(&wpath), "wb") : NULL;
    if (!fc || !fh || (weights && !fw)) {
      snprintf(err, errlen, "cannot write %s: %s", !fc ? out_c_path : !fh ? sb_cstr(&hpath) : sb_cstr(&wpath),
               strerror(errno));
    } else if (emit_c_source(fc, m, sb_cstr(&hname)) != 0 || emit_c_header(fh, m) != 0 ||
               (fw && emit_c_weights(fw, m, sb_cstr(&hname), wsource, data) != 0)) {
      snprintf(err, errlen, "write error on %s", out_c_path);
    } else {
      rc = 0;
    }
    if (fc && fclose(fc) != 0) rc = -1;
    if (fh && fclose(fh) != 0) rc = -1;
    if (fw && fclose(fw) != 0) rc = -1;
  }
  free(data);
  arena_free(&a);
  sb_free(&dir);
  sb_free(&base);
  sb_free(&ident);
  sb_free(&hpath);
  sb_free(&hname);
  sb_free(&wpath);
  return rc;
}

int backend_emit_c(const IrModule *im, const char *out_c_path, char *err, size_t errlen) {
  return emit_files(im, out_c_path, NULL, NULL, NULL, err, errlen);
}

int backend_emit_c_opt(const IrModule *im, const char *out_c_path, const PassOptions *po, char *err, size_t errlen) {
  return emit_files(im, out_c_path, NULL, NULL, po, err, errlen);
}

int backend_emit_c_embedded(const IrModule *im, const char *out_c_path, const TensorSet *weights,
                            const char *weights_name, char *err, size_t errlen) {
  return emit_files(im, out_c_path, weights, weights_name ? weights_name : "weights", NULL, err, errlen);
}

int backend_emit_c_embedded_opt(const IrModule *im, const char *out_c_path, const TensorSet *weights,
                                const char *weights_name, const PassOptions *po, char *err, size_t errlen) {
  return emit_files(im, out_c_path, weights, weights_name ? weights_name : "weights", po, err, errlen);
}

int backend_dump_loops(FILE *out, const IrModule *im, char *err, size_t errlen) {
  return backend_dump_loops_opt(out, im, NULL, err, errlen);
}

const char *backend_cflags(const PassOptions *po) {
  static char buf[160]; /* one configuration per process at a time */
  if (!po || po->opt_level < 1) {
    if (!po || !po->march) return "-O2";
    snprintf(buf, sizeof buf, "-O2 -march=%.120s", po->march);
    return buf;
  }
  /* -march=X as given, else the one --target's kernels are written for */
  static const char *const arch[] = {"native", NULL, "x86-64", "x86-64-v3", "skylake-avx512"};
  const char *a = po->march;
  if (!a && po->target >= LT_NATIVE && po->target <= LT_AVX512) a = arch[po->target];
  if (!a) return "-O3";
  snprintf(buf, sizeof buf, "-O3 -march=%.120s", a);
  return buf;
}

int backend_dump_loops_opt(FILE *out, const IrModule *im, const PassOptions *po, char *err, size_t errlen) {
  Arena a;
  StrBuf ident = {0};
  PassOptions opts = level0(po);
  arena_init(&a);
  emit_c_model_ident(&ident, im->name ? im->name : "model");
  LoopModule *m = pipeline_run(&a, im, sb_cstr(&ident), &opts, err, errlen);
  if (m && out) loop_print(out, m); /* out NULL: only the --dump-after print of the pipeline */
  arena_free(&a);
  sb_free(&ident);
  return m ? 0 : -1;
}

const char *backend_cc(void) {
  const char *cc = getenv("CC");
  return cc && *cc ? cc : "cc";
}
