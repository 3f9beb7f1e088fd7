/* loopir_ffi.c — the calling harness of the compiled paths of `gattnc run`
 * (loopir_ffi.h): input binding, the weights blob, and the forward calls
 * through libffi, shared by the dlopened C build (loopir_run.c) and the LLVM
 * JIT (loopir_jit.c) so both call a model under exactly the same contract. */
#include "loopir_ffi.h"

#include <errno.h>
#include <ffi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit_c.h"
#include "util.h"

int loopir_ffi_bind_inputs(const IrModule *m, const TensorSet *inputs, const Tensor **in_t, int64_t *T_out, char *err,
                           size_t errlen) {
  int64_t T = -1;
  for (int i = 0; i < m->inputs.len; i++) {
    const IrIO *io = m->inputs.data[i];
    const Tensor *t = tensorset_find(inputs, io->name);
    if (!t) {
      snprintf(err, errlen, "input '%s' is missing", io->name);
      return -1;
    }
    if (t->dtype != io->dtype || t->rank != io->shape.rank) {
      snprintf(err, errlen, "input '%s' has the wrong dtype or rank", io->name);
      return -1;
    }
    for (int d = 0; d < t->rank; d++) {
      if (io->shape.dims[d] == IR_DIM_T) {
        if (T >= 0 && T != t->dims[d]) {
          snprintf(err, errlen, "input '%s': T = %lld but another input has T = %lld", io->name,
                   (long long)t->dims[d], (long long)T);
          return -1;
        }
        T = t->dims[d];
      } else if (io->shape.dims[d] != t->dims[d]) {
        snprintf(err, errlen, "input '%s' has dim %d = %lld, expected %lld", io->name, d, (long long)t->dims[d],
                 (long long)io->shape.dims[d]);
        return -1;
      }
    }
    in_t[i] = t;
  }
  if (T < 0) T = 1;
  if (T > INT32_MAX) {
    snprintf(err, errlen, "T = %lld does not fit the forward signature", (long long)T);
    return -1;
  }
  *T_out = T;
  return 0;
}

unsigned char *loopir_ffi_weights_blob(const TensorSet *s, size_t *len) {
  StrBuf h = {0};
  size_t off = 0;
  sb_append(&h, "{");
  for (int i = 0; i < s->n; i++) {
    const Tensor *t = &s->t[i];
    size_t nb = (size_t)tensor_numel(t) * 4;
    sb_append(&h, i ? "," : "");
    emit_c_string_literal(&h, t->name); /* a C literal of ASCII names is valid JSON */
    sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", t->dtype == IR_F32 ? "F32" : "I32");
    for (int d = 0; d < t->rank; d++) sb_printf(&h, "%s%lld", d ? "," : "", (long long)t->dims[d]);
    sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
    off += nb;
  }
  sb_append(&h, "}");
  while ((h.len + 8) % 8) sb_append(&h, " ");
  *len = 8 + h.len + off;
  unsigned char *b = xmalloc(*len);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
  memcpy(b + 8, h.data, h.len);
  off = 8 + h.len;
  for (int i = 0; i < s->n; i++) {
    size_t nb = (size_t)tensor_numel(&s->t[i]) * 4;
    if (nb) memcpy(b + off, s->t[i].data, nb);
    off += nb;
  }
  sb_free(&h);
  return b;
}

static int ffi_t_axis(IrShape s) {
  for (int i = 0; i < s.rank; i++)
    if (s.dims[i] == IR_DIM_T) return i;
  return -1;
}

/* Copies rows [t0, t0+n) along `axis` between a [.., Tsrc, ..] and a [.., Tdst, ..] tensor. */
static void ffi_copy_rows(char *dst, int64_t dst_T, int64_t dst_t0, const char *src, int64_t src_T, int64_t src_t0,
                          int64_t n, IrShape s, int axis) {
  int64_t outer = 1, inner = 4;
  for (int i = 0; i < axis; i++) outer *= s.dims[i];
  for (int i = axis + 1; i < s.rank; i++) inner *= s.dims[i];
  for (int64_t o = 0; o < outer; o++)
    memcpy(dst + ((o * dst_T + dst_t0) * inner), src + ((o * src_T + src_t0) * inner), (size_t)(n * inner));
}

int loopir_ffi_call(LoopirFfiModel *fm, const IrModule *m, const TensorSet *weights, const Tensor **in_t, int64_t T,
                    int step, TensorSet *outputs, char *err, size_t errlen) {
  int nin = m->inputs.len, nout = m->outputs.len;

  /* init */
  size_t blob_len;
  fm->blob = loopir_ffi_weights_blob(weights, &blob_len);
  fm->model = xcalloc(1, fm->f_size());
  size_t ab = (fm->f_arena() + 63) & ~(size_t)63;
  fm->arena = aligned_alloc(64, ab ? ab : 64);
  if (!fm->arena) {
    snprintf(err, errlen, "out of memory for a %zu-byte arena", ab);
    return -1;
  }
  if (fm->f_init(fm->model, fm->arena, ab, fm->blob, blob_len) != 0) {
    snprintf(err, errlen, "%s", fm->f_msg(fm->model));
    return -1;
  }
  if (fm->after_init && fm->after_init(fm->model, fm->after_init_ud, err, errlen) != 0) return -1;

  /* outputs, full length */
  int first_out = outputs->n;
  for (int i = 0; i < nout; i++) {
    const IrIO *io = m->outputs.data[i];
    int64_t dims[IR_MAX_RANK];
    for (int d = 0; d < io->shape.rank; d++) dims[d] = io->shape.dims[d] == IR_DIM_T ? T : io->shape.dims[d];
    tensorset_add(outputs, io->name, io->dtype, io->shape.rank, dims);
  }

  /* forward calls through libffi: (model, inputs..., int32 T, outputs...) */
  void **in_bufs = xcalloc((size_t)nin + 1, sizeof *in_bufs), **out_bufs = xcalloc((size_t)nout + 1, sizeof *out_bufs);
  int nargs = 1 + nin + 1 + nout;
  ffi_type **types = xcalloc((size_t)nargs, sizeof *types);
  void **values = xcalloc((size_t)nargs, sizeof *values), **ptrs = xcalloc((size_t)nargs, sizeof *ptrs);
  int32_t Tc = 0;
  ffi_cif cif;
  for (int i = 0; i < nargs; i++) types[i] = &ffi_type_pointer;
  types[1 + nin] = &ffi_type_sint32;
  int ok = ffi_prep_cif(&cif, FFI_DEFAULT_ABI, (unsigned)nargs, &ffi_type_sint, types) == FFI_OK;
  if (!ok) snprintf(err, errlen, "ffi_prep_cif failed");
  int64_t chunk = step > 0 ? step : T;
  for (int64_t t0 = 0; t0 < T && ok; t0 += chunk) {
    int64_t n = T - t0 < chunk ? T - t0 : chunk;
    Tc = (int32_t)n;
    for (int i = 0; i < nin; i++) {
      const IrIO *io = m->inputs.data[i];
      int ax = ffi_t_axis(io->shape);
      free(in_bufs[i]);
      size_t nb = (size_t)ir_shape_numel(io->shape, n) * 4;
      in_bufs[i] = xmalloc(nb ? nb : 4);
      if (ax < 0)
        memcpy(in_bufs[i], in_t[i]->data, nb);
      else
        ffi_copy_rows(in_bufs[i], n, 0, in_t[i]->data, T, t0, n, io->shape, ax);
      ptrs[1 + i] = in_bufs[i];
    }
    for (int i = 0; i < nout; i++) {
      const IrIO *io = m->outputs.data[i];
      free(out_bufs[i]);
      size_t nb = (size_t)ir_shape_numel(io->shape, n) * 4;
      out_bufs[i] = xcalloc(1, nb ? nb : 4);
      ptrs[2 + nin + i] = out_bufs[i];
    }
    ptrs[0] = fm->model;
    for (int i = 0; i < nargs; i++) values[i] = &ptrs[i];
    values[1 + nin] = &Tc;
    ffi_sarg result = 0;
    ffi_call(&cif, FFI_FN(fm->f_forward), &result, values);
    if ((int)result != 0) {
      snprintf(err, errlen, "%s", fm->f_msg(fm->model));
      ok = 0;
      break;
    }
    for (int i = 0; i < nout; i++) {
      const IrIO *io = m->outputs.data[i];
      Tensor *o = &outputs->t[first_out + i];
      int ax = ffi_t_axis(io->shape);
      if (ax < 0)
        memcpy(o->data, out_bufs[i], (size_t)ir_shape_numel(io->shape, n) * 4);
      else
        ffi_copy_rows(o->data, T, t0, out_bufs[i], n, 0, n, io->shape, ax);
    }
  }
  for (int i = 0; i < nin; i++) free(in_bufs[i]);
  for (int i = 0; i < nout; i++) free(out_bufs[i]);
  free(in_bufs);
  free(out_bufs);
  free(types);
  free(values);
  free(ptrs);
  return ok ? 0 : -1;
}

void loopir_ffi_release(LoopirFfiModel *fm) {
  free(fm->model);
  free(fm->arena);
  free(fm->blob);
  fm->model = fm->arena = NULL;
  fm->blob = NULL;
}

/* run --count FILE: the counters of a --count build as JSON, in the format of
 * the interpreter's GAT_INTERP_COUNT (plus the calls of every region), so a
 * test reads both the same way. */
typedef int (*ffi_cnt_n_fn)(void);
typedef int (*ffi_cnt_int_fn)(int);
typedef const char *(*ffi_cnt_str_fn)(int);
typedef uint64_t (*ffi_cnt_tok_fn)(const void *, int);
typedef uint64_t (*ffi_cnt_reg_fn)(const void *, int, int);
int loopir_ffi_write_counts(void *(*sym)(void *ud, const char *name), void *ud, const char *name, const void *model,
                            const char *path, char *err, size_t errlen) {
  char nm[256];
#define CNT_SYM(s) (snprintf(nm, sizeof nm, "%s_%s", name, s), sym(ud, nm))
  ffi_cnt_n_fn f_nops = (ffi_cnt_n_fn)CNT_SYM("count_ops");
  ffi_cnt_str_fn f_kind = (ffi_cnt_str_fn)CNT_SYM("count_kind");
  ffi_cnt_str_fn f_origin = (ffi_cnt_str_fn)CNT_SYM("count_origin");
  ffi_cnt_int_fn f_line = (ffi_cnt_int_fn)CNT_SYM("count_line");
  ffi_cnt_int_fn f_col = (ffi_cnt_int_fn)CNT_SYM("count_col");
  ffi_cnt_int_fn f_regions = (ffi_cnt_int_fn)CNT_SYM("count_regions");
  ffi_cnt_tok_fn f_tokens = (ffi_cnt_tok_fn)CNT_SYM("count_tokens");
  ffi_cnt_reg_fn f_rows = (ffi_cnt_reg_fn)CNT_SYM("count_rows");
  ffi_cnt_reg_fn f_calls = (ffi_cnt_reg_fn)CNT_SYM("count_calls");
#undef CNT_SYM
  if (!f_nops || !f_kind || !f_origin || !f_line || !f_col || !f_regions || !f_tokens || !f_rows || !f_calls) {
    snprintf(err, errlen, "the compiled model has no execution counters (not a --count build)");
    return -1;
  }
  FILE *f = fopen(path, "w");
  if (!f) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    return -1;
  }
  int nops = f_nops();
  fprintf(f, "{\"ops\": [");
  for (int i = 0; i < nops; i++) {
    int mix = strcmp(f_kind(i), "mixture") == 0;
    fprintf(f, "%s\n  {\"kind\": \"%s\", \"line\": %d, \"col\": %d, \"origin\": \"%s\", \"tokens\": %llu, ",
            i ? "," : "", f_kind(i), f_line(i), f_col(i), f_origin(i), (unsigned long long)f_tokens(model, i));
    if (mix) {
      fprintf(f, "\"experts\": [");
      for (int e = 0; e < f_regions(i); e++)
        fprintf(f, "%s%llu", e ? ", " : "", (unsigned long long)f_rows(model, i, e));
      fprintf(f, "], \"calls\": [");
      for (int e = 0; e < f_regions(i); e++)
        fprintf(f, "%s%llu", e ? ", " : "", (unsigned long long)f_calls(model, i, e));
      fprintf(f, "]}");
    } else {
      fprintf(f, "\"rows\": %llu, \"calls\": %llu}", (unsigned long long)f_rows(model, i, 0),
              (unsigned long long)f_calls(model, i, 0));
    }
  }
  fprintf(f, "\n]}\n");
  if (fclose(f) != 0) {
    snprintf(err, errlen, "cannot write '%s'", path);
    return -1;
  }
  return 0;
}
