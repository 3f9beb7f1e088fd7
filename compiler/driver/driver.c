/* driver.c — runs the pipeline, in order, for each command:
 *
 *   compile:  source → frontend (parse, sema, lower) → verify → [passes] → backend
 *             (--dump-loops prints the loop IR; --embed-weights adds NAME_weights.c)
 *   run:      source → frontend → verify → interpreter or compiled code
 *   init:     source → frontend → deterministic random weights
 *   check-weights: source → frontend → read weights, match the model, all finite
 *
 * A file ending in `.ir` skips the front end: it is graph IR text (what
 * --dump-ir prints), which lets tests target the IR directly. */
#include "driver.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "diag.h"
#include "frontend.h"
#include "gat_limits.h"
#include "interp.h"
#include "ir.h"
#include "ir_knobs.h"
#include "tensor.h"
#include "util.h"

#if defined(GAT_HAVE_CODEGEN) && __has_include("backend.h")
#include "backend.h"
#include "backend_llvm.h"
#include "pass.h"
#define GAT_BACKEND 1
#else
#define GAT_BACKEND 0
#endif

#if GAT_BACKEND
void driver_pass_options(const DriverOptions *o, PassOptions *po) {
  pass_options_init(po, o->opt_level);
  po->fuse = !o->no_fuse;
  po->tile = !o->no_tile;
  po->pack = !o->no_pack;
  po->fold_scales = !o->no_fold_scales;
  po->prologue = !o->no_prologue;
  po->glu = !o->no_glu;
  po->chunk = !o->no_chunk;
  po->concat = !o->no_concat;
  po->gate = !o->no_gate;
  po->scanfuse = !o->no_scanfuse;
  po->block = !o->no_block;
  po->block_rows = o->block_rows;
  int llvm = (o->emit && strcmp(o->emit, "c")) || o->jit || (o->backend && !strcmp(o->backend, "llvm"));
  if (llvm) {
    /* LLVM vectorizes the fused GLA sweep worse than the two plain ones (M2 prefill 92 -> 139 ms
     * before the chunked kernels; decode still ~1.3x slower with it): scanfuse only on request (-fscanfuse) */
    if (!o->force_scanfuse) po->scanfuse = 0;
  }
  /* the LLVM backend runs the same passes (codegen/kernels/gemm.c: folded scales, row-scale prologue, GLU) */
  po->memplan = !o->no_memplan;
  if (o->no_f32_math) po->f32_math = 0;
  po->verify = o->verify;
  po->profile = o->profile;
  po->count = o->count || o->count_path;
  po->count_path = o->count_path;
  po->knob_sets = o->sets;
  po->nknob_sets = o->nsets;
  po->dump_after = o->dump_after;
  po->target = o->gemm_target;
  po->march = o->march;
  po->llvm_cpu = o->mcpu;
}
#endif

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Source → verified graph IR, or NULL after reporting errors. */
static IrModule *load_module(Arena *a, const DriverOptions *o) {
  size_t len;
  char *text = read_file_limit(o->input, &len, (size_t)GAT_LIMIT_SOURCE_BYTES);
  if (!text) {
    if (errno == EISDIR)
      diag_plain_error("cannot read '%s': it is a directory, not a model file", o->input);
    else if (errno == EFBIG)
      diag_plain_error("cannot read '%s': a model file may hold at most 256 MiB", o->input);
    else
      diag_plain_error("cannot read '%s': %s", o->input, strerror(errno));
    return NULL;
  }
  if (strlen(text) != len) {
    diag_plain_error("'%s' contains a NUL byte; it is not a text file", o->input);
    free(text);
    return NULL;
  }
  IrModule *m = NULL;
  if (ends_with(o->input, ".ir")) {
    m = ir_parse(a, o->input, text);
    if (m && o->max_seq > 0) m->max_T = o->max_seq;
  } else if (o->dump_ast) {
    AstFile *f = parse_source(a, o->input, text);
    if (f && diag_error_count() == 0) ast_dump(stdout, f);
    free(text);
    return NULL;
  } else {
    FrontendOptions fo = {o->model, o->max_seq};
    m = frontend_compile(a, o->input, text, &fo);
  }
  free(text);
  if (!m || diag_error_count() > 0) return NULL;
  /* IR text comes from outside and the later stages trust verified IR (an
   * index expression's operand numbers, shapes...), so it is verified even
   * under --no-verify, which skips only the checks of gattnc's own output. */
  int is_ir = ends_with(o->input, ".ir");
  if (o->verify || is_ir) {
    char err[2048];
    if (ir_verify(m, err, sizeof err) != 0) {
      if (is_ir)
        diag_plain_error("'%s' is not valid IR:\n%s", o->input, err);
      else
        fprintf(stderr, "gattnc: internal error: the IR of '%s' does not verify:\n%s\n", o->input, err);
      return NULL;
    }
  }
  return m;
}

/* ---- run: chunking inputs along T for --step ---------------------------- */

static int t_axis(IrShape s) {
  for (int i = 0; i < s.rank; i++)
    if (s.dims[i] == IR_DIM_T) return i;
  return -1;
}

static size_t elem_size(IrDType dt) {
  (void)dt;
  return 4; /* f32 and i32 */
}

/* Copies rows [t0, t0 + n) of tensor src along `axis` into a new tensor of dst. */
static void slice_axis(TensorSet *dst, const Tensor *src, int axis, int64_t t0, int64_t n) {
  int64_t dims[IR_MAX_RANK];
  for (int i = 0; i < src->rank; i++) dims[i] = src->dims[i];
  dims[axis] = n;
  Tensor *t = tensorset_add(dst, src->name, src->dtype, src->rank, dims);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; i++) outer *= src->dims[i];
  for (int i = axis + 1; i < src->rank; i++) inner *= src->dims[i];
  size_t es = elem_size(src->dtype);
  for (int64_t o = 0; o < outer; o++)
    memcpy((char *)t->data + (size_t)(o * n * inner) * es,
           (const char *)src->data + (size_t)((o * src->dims[axis] + t0) * inner) * es,
           (size_t)(n * inner) * es);
}

static void copy_tensor(TensorSet *dst, const Tensor *src) {
  Tensor *t = tensorset_add(dst, src->name, src->dtype, src->rank, src->dims);
  memcpy(t->data, src->data, (size_t)tensor_numel(src) * elem_size(src->dtype));
}

/* Appends chunk (same shape as acc except along axis) to acc, in place. */
static void append_axis(Tensor *acc, const Tensor *chunk, int axis) {
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; i++) outer *= acc->dims[i];
  for (int i = axis + 1; i < acc->rank; i++) inner *= acc->dims[i];
  int64_t na = acc->dims[axis], nc = chunk->dims[axis], nn = na + nc;
  size_t es = elem_size(acc->dtype);
  char *data = xmalloc((size_t)(outer * nn * inner) * es + 1);
  for (int64_t o = 0; o < outer; o++) {
    memcpy(data + (size_t)(o * nn * inner) * es, (char *)acc->data + (size_t)(o * na * inner) * es,
           (size_t)(na * inner) * es);
    memcpy(data + (size_t)((o * nn + na) * inner) * es, (char *)chunk->data + (size_t)(o * nc * inner) * es,
           (size_t)(nc * inner) * es);
  }
  free(acc->data);
  acc->data = data;
  acc->dims[axis] = nn;
}

static int cmd_run(const IrModule *m, const DriverOptions *o) {
  char err[1024];
  TensorSet weights = {0}, inputs = {0}, outputs = {0};
  int status = 1;
  if (!o->inputs || !o->output) {
    diag_plain_error("run needs --inputs IN.safetensors and -o OUT.safetensors");
    return 2;
  }
  if (o->weights) {
    if (safetensors_read(o->weights, &weights, err, sizeof err) != 0) {
      diag_file_error(o->weights, "%s", err);
      goto done;
    }
  } else {
    weights_init(m, o->seed, &weights);
  }
  if (safetensors_read(o->inputs, &inputs, err, sizeof err) != 0) {
    diag_file_error(o->inputs, "%s", err);
    goto done;
  }
  /* The sequence length of this run: the T extent of the first input that has one. */
  int64_t T = -1;
  for (int i = 0; i < m->inputs.len; i++) {
    const IrIO *io = m->inputs.data[i];
    const Tensor *t = tensorset_find(&inputs, io->name);
    int ax = t_axis(io->shape);
    if (t && ax >= 0 && ax < t->rank) {
      T = t->dims[ax];
      break;
    }
  }
  if (!o->interp) {
#if GAT_BACKEND
    /* the interpreter's input checks, so compiled runs refuse what --interp refuses */
    int64_t T_in;
    if (interp_check_inputs(m, &inputs, &T_in, err, sizeof err) != 0) {
      diag_plain_error("%s", err);
      goto done;
    }
    PassOptions po;
    driver_pass_options(o, &po);
    /* GATTNC_RUN_JIT=1 (the e2e tests' --backend jit) makes every compiled run a --jit run,
       --profile / --count runs included (both backends have the instruments) */
    /* run --backend=llvm: the LLVM object (--emit=obj) linked by cc and loaded like the compiled C */
    po.run_obj = !o->jit && o->backend && !strcmp(o->backend, "llvm");
    int jit = o->jit || (!po.run_obj && getenv("GATTNC_RUN_JIT") && strcmp(getenv("GATTNC_RUN_JIT"), "0") != 0);
    /* --set: compiled C gets the values through its NAME_set_* functions after init
       (loopir_run.c); the JIT compiles the IR, so there they go into the IR */
    if (jit && o->nsets > 0 && ir_knobs_apply((IrModule *)m, o->sets, o->nsets, err, sizeof err) != 0) {
      diag_plain_error("%s", err);
      goto done;
    }
    if ((jit ? run_jit_opt : run_compiled_opt)(m, &weights, &inputs, (int)o->step, &po, &outputs, err,
                                                  sizeof err) != 0) {
      diag_plain_error("%s", err);
      goto done;
    }
    goto write;
#else
    diag_plain_error("this gattnc was built without the C backend; use --interp");
    goto done;
#endif
  }
  /* run --count FILE: the interpreter writes the same counters (GAT_INTERP_COUNT). */
  if (o->count_path) setenv("GAT_INTERP_COUNT", o->count_path, 1);
  /* --set: the interpreter reads the skip ops' attributes (ir_knobs.h) */
  if (o->nsets > 0 && ir_knobs_apply((IrModule *)m, o->sets, o->nsets, err, sizeof err) != 0) {
    diag_plain_error("%s", err);
    goto done;
  }
  InterpSession *s = interp_new(m, &weights, err, sizeof err);
  if (!s) {
    diag_plain_error("%s", err);
    goto done;
  }
  int64_t step = o->step > 0 && T > 0 ? o->step : (T > 0 ? T : 1);
  int64_t t0 = 0;
  do {
    TensorSet chunk = {0}, out = {0};
    int64_t n = T > 0 ? (T - t0 < step ? T - t0 : step) : 0;
    for (int i = 0; i < inputs.n; i++) {
      const Tensor *src = &inputs.t[i];
      const IrIO *io = NULL;
      for (int j = 0; j < m->inputs.len; j++)
        if (!strcmp(((IrIO *)m->inputs.data[j])->name, src->name)) io = m->inputs.data[j];
      int ax = io ? t_axis(io->shape) : -1;
      if (T > 0 && ax >= 0 && ax < src->rank && src->dims[ax] == T)
        slice_axis(&chunk, src, ax, t0, n);
      else
        copy_tensor(&chunk, src);
    }
    int rc = interp_forward(s, &chunk, &out, err, sizeof err);
    tensorset_free(&chunk);
    if (rc != 0) {
      tensorset_free(&out);
      interp_free(s);
      diag_plain_error("%s", err);
      goto done;
    }
    if (t0 == 0) {
      outputs = out;
    } else {
      for (int i = 0; i < out.n; i++) {
        Tensor *acc = tensorset_find(&outputs, out.t[i].name);
        const IrIO *io = NULL;
        for (int j = 0; j < m->outputs.len; j++)
          if (!strcmp(((IrIO *)m->outputs.data[j])->name, out.t[i].name)) io = m->outputs.data[j];
        int ax = io ? t_axis(io->shape) : -1;
        if (acc && ax >= 0) append_axis(acc, &out.t[i], ax);
        else if (acc) {
          /* no T axis: the last call's value wins */
          void *tmp = acc->data;
          acc->data = out.t[i].data;
          out.t[i].data = tmp;
        }
      }
      tensorset_free(&out);
    }
    t0 += n;
  } while (T > 0 && t0 < T);
  interp_free(s);
#if GAT_BACKEND
write:
#endif
  if (safetensors_write(o->output, &outputs, err, sizeof err) != 0) {
    diag_plain_error("%s: %s", o->output, err);
    goto done;
  }
  status = 0;
done:
  tensorset_free(&weights);
  tensorset_free(&inputs);
  tensorset_free(&outputs);
  return status;
}

/* check-weights: the file is read like `run --weights` reads it (same
 * errors), must fit the model, and every f32 element must be finite; the
 * first that is not is reported by tensor (header order) and flat index. */
static int cmd_check_weights(const IrModule *m, const DriverOptions *o) {
  char err[1024];
  TensorSet w = {0};
  int status = 1;
  if (!o->weights) {
    diag_plain_error("check-weights needs a weights file: gattnc check-weights FILE W.safetensors");
    return 2;
  }
  if (safetensors_read(o->weights, &w, err, sizeof err) != 0) {
    diag_file_error(o->weights, "%s", err);
    goto done;
  }
  InterpSession *s = interp_new(m, &w, err, sizeof err);
  if (!s) {
    diag_file_error(o->weights, "%s", err);
    goto done;
  }
  interp_free(s);
  for (int i = 0; i < w.n; i++) {
    const Tensor *t = &w.t[i];
    if (t->dtype != IR_F32) continue;
    const float *f = t->data;
    int64_t n = tensor_numel(t);
    for (int64_t k = 0; k < n; k++)
      if (!isfinite(f[k])) {
        diag_file_error(o->weights, "tensor '%s' element %lld is %s", t->name, (long long)k,
                         isnan(f[k]) ? "NaN" : f[k] > 0 ? "+Inf" : "-Inf");
        goto done;
      }
  }
  printf("ok\n");
  status = 0;
done:
  tensorset_free(&w);
  return status;
}

static int cmd_init(const IrModule *m, const DriverOptions *o) {
  char err[1024];
  if (!o->output) {
    diag_plain_error("init needs -o W.safetensors");
    return 2;
  }
  TensorSet w = {0};
  weights_init(m, o->seed, &w);
  int rc = safetensors_write(o->output, &w, err, sizeof err);
  tensorset_free(&w);
  if (rc != 0) {
    diag_plain_error("%s: %s", o->output, err);
    return 1;
  }
  return 0;
}

static char *default_c_name(const char *input) {
  const char *base = strrchr(input, '/');
  base = base ? base + 1 : input;
  const char *dot = strrchr(base, '.');
  size_t n = dot ? (size_t)(dot - base) : strlen(base);
  char *out = xmalloc(n + 3);
  memcpy(out, base, n);
  memcpy(out + n, ".c", 3);
  return out;
}

static int cmd_compile(const IrModule *m, const DriverOptions *o) {
  if (o->dump_ir) {
    ir_print(stdout, m);
    return 0;
  }
#if GAT_BACKEND
  char err[1024];
  PassOptions po;
  driver_pass_options(o, &po);
  if (o->stats) return driver_stats(m, o);
  if (o->dump_loops || o->dump_after) {
    if (backend_dump_loops_opt(o->dump_after ? NULL : stdout, m, &po, err, sizeof err) != 0) {
      diag_plain_error("%s", err);
      return 1;
    }
    return 0;
  }
  if (o->emit && strcmp(o->emit, "c") != 0) return driver_llvm_compile(m, o); /* LLVM backend */
  char *def = o->output ? NULL : default_c_name(o->input);
  int rc;
  if (o->embed_weights) {
    TensorSet w = {0};
    if (safetensors_read(o->embed_weights, &w, err, sizeof err) != 0) {
      free(def);
      diag_file_error(o->embed_weights, "%s", err);
      return 1;
    }
    const char *wname = strrchr(o->embed_weights, '/');
    rc = backend_emit_c_embedded_opt(m, o->output ? o->output : def, &w, wname ? wname + 1 : o->embed_weights,
                                     &po, err, sizeof err);
    tensorset_free(&w);
    if (rc != 0) {
      free(def);
      diag_file_error(o->embed_weights, "%s", err);
      return 1;
    }
  } else {
    rc = backend_emit_c_opt(m, o->output ? o->output : def, &po, err, sizeof err);
  }
  free(def);
  if (rc != 0) {
    diag_plain_error("%s", err);
    return 1;
  }
  return 0;
#else
  (void)default_c_name;
  diag_plain_error("this gattnc was built without the C backend (try --dump-ir)");
  return 1;
#endif
}

int driver_main(const DriverOptions *o) {
  Arena arena;
  arena_init(&arena);
  IrModule *m = load_module(&arena, o);
  int status;
  if (!m) {
    status = diag_error_count() > 0 ? 1 : (o->dump_ast ? 0 : 1);
  } else if (o->command == DRIVER_RUN) {
    status = cmd_run(m, o);
  } else if (o->command == DRIVER_INIT) {
    status = cmd_init(m, o);
  } else if (o->command == DRIVER_CHECK_WEIGHTS) {
    status = cmd_check_weights(m, o);
  } else if (o->command == DRIVER_BENCH) {
#if GAT_BACKEND
    status = o->backend && strcmp(o->backend, "c") != 0 ? driver_llvm_bench(m, o) : driver_bench(m, o);
#else
    diag_plain_error("this gattnc was built without the C backend: bench needs it");
    status = 1;
#endif
  } else {
    status = cmd_compile(m, o);
  }
  arena_free(&arena);
  diag_reset();
  return status;
}
