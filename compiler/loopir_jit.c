/* loopir_jit.c — run_jit_opt (backend_llvm.h): `gattnc run --jit`. The
 * model is lowered to loop IR, built as an LLVM module (codegen/emit_llvm*.c)
 * for the host CPU, compiled in-process by ORC's LLJIT, and its typed
 * entry points (NAME_init, NAME_forward, ...) are called exactly as
 * run_compiled_opt calls the dlopened C build: weights as an in-memory
 * safetensors blob, forward through libffi with (model, inputs..., int32 T,
 * outputs...), the state carried across --step chunks.
 *
 * Symbols: the runtime functions the IR calls (gat_k_*, gat_error_set,
 * gat_st_bind_copy, ...) are linked into gattnc and defined in the JIT as
 * absolute symbols; libc/libm (exp, memcpy, ...) come from the process. */
#include <ffi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_llvm.h"
#include "emit_c.h"
#include "loopir.h"

#ifdef GAT_HAVE_LLVM
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>

#include "emit_llvm.h"
#include "gat_runtime.h"

#define JIT_NAME "gatm"

typedef int (*jit_init_fn)(void *, void *, size_t, const void *, size_t);
typedef size_t (*jit_size_fn)(void);
typedef const char *(*jit_msg_fn)(const void *);

/* the runtime, by name, for the JIT's symbol table */
static const struct {
  const char *name;
  void (*fn)(void);
} jit_runtime[] = {
#define RT(f) {#f, (void (*)(void))f}
    RT(gat_status_string), RT(gat_error_set),   RT(gat_error_clear), RT(gat_st_bind),      RT(gat_st_bind_copy),
    RT(gat_arena_init),    RT(gat_arena_alloc), RT(gat_time_ns),     RT(gat_k_softmax),    RT(gat_k_rms_norm),
    RT(gat_k_layer_norm),  RT(gat_k_l2_norm),   RT(gat_k_gather),    RT(gat_k_topk),       RT(gat_k_rope),
    RT(gat_k_conv1d),      RT(gat_k_attention),
#undef RT
};

static int jit_error(LLVMErrorRef e, const char *what, char *err, size_t errlen) {
  if (!e) return 0;
  char *m = LLVMGetErrorMessage(e);
  snprintf(err, errlen, "LLVM JIT: %s: %s", what, m);
  LLVMDisposeErrorMessage(m);
  return -1;
}

typedef struct Jit {
  LLVMOrcLLJITRef J;
  jit_size_fn f_size, f_arena;
  jit_init_fn f_init;
  jit_msg_fn f_msg;
  void *f_forward;
} Jit;

static int jit_lookup(Jit *j, const char *name, void **out, char *err, size_t errlen) {
  LLVMOrcExecutorAddress addr = 0;
  if (jit_error(LLVMOrcLLJITLookup(j->J, &addr, name), name, err, errlen) != 0) return -1;
  *out = (void *)(uintptr_t)addr;
  return 0;
}

/* builds, verifies, optimizes and JIT-compiles the module of lm */
static int jit_build(Jit *j, const LoopModule *lm, int opt_level, char *err, size_t errlen) {
  LlvmTarget t = {NULL, NULL, NULL, opt_level};
  LLVMTargetMachineRef tm = emit_llvm_target_machine(&t, err, errlen);
  if (!tm) return -1;
  LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
  LLVMModuleRef mod = emit_llvm_module(lm, LLVMOrcThreadSafeContextGetContext(tsc), tm, opt_level, err, errlen);
  LLVMDisposeTargetMachine(tm);
  if (!mod) {
    LLVMOrcDisposeThreadSafeContext(tsc);
    return -1;
  }
  LLVMOrcJITTargetMachineBuilderRef jtmb = NULL;
  if (jit_error(LLVMOrcJITTargetMachineBuilderDetectHost(&jtmb), "host detection", err, errlen) != 0) {
    LLVMDisposeModule(mod);
    LLVMOrcDisposeThreadSafeContext(tsc);
    return -1;
  }
  LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, jtmb);
  if (jit_error(LLVMOrcCreateLLJIT(&j->J, jb), "creating LLJIT", err, errlen) != 0) {
    j->J = NULL;
    LLVMDisposeModule(mod);
    LLVMOrcDisposeThreadSafeContext(tsc);
    return -1;
  }
  LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(j->J);
  LLVMOrcDefinitionGeneratorRef gen = NULL;
  if (jit_error(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(j->J), NULL, NULL),
                "process symbols", err, errlen) != 0) {
    LLVMDisposeModule(mod);
    LLVMOrcDisposeThreadSafeContext(tsc);
    return -1;
  }
  LLVMOrcJITDylibAddGenerator(jd, gen);
  enum { NRT = sizeof jit_runtime / sizeof jit_runtime[0] };
  LLVMJITCSymbolMapPair syms[NRT];
  for (int i = 0; i < NRT; i++) {
    syms[i].Name = LLVMOrcLLJITMangleAndIntern(j->J, jit_runtime[i].name);
    syms[i].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)jit_runtime[i].fn;
    syms[i].Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
    syms[i].Sym.Flags.TargetFlags = 0;
  }
  LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(syms, NRT);
  if (jit_error(LLVMOrcJITDylibDefine(jd, mu), "runtime symbols", err, errlen) != 0) {
    LLVMOrcDisposeMaterializationUnit(mu); /* not taken over on failure */
    LLVMDisposeModule(mod);
    LLVMOrcDisposeThreadSafeContext(tsc);
    return -1;
  }
  LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod, tsc);
  LLVMOrcDisposeThreadSafeContext(tsc); /* the module holds its own reference */
  if (jit_error(LLVMOrcLLJITAddLLVMIRModule(j->J, jd, tsm), "adding the module", err, errlen) != 0) {
    LLVMOrcDisposeThreadSafeModule(tsm);
    return -1;
  }
  void *p;
  if (jit_lookup(j, JIT_NAME "_sizeof", &p, err, errlen)) return -1;
  j->f_size = (jit_size_fn)p;
  if (jit_lookup(j, JIT_NAME "_arena_bytes", &p, err, errlen)) return -1;
  j->f_arena = (jit_size_fn)p;
  if (jit_lookup(j, JIT_NAME "_init", &p, err, errlen)) return -1;
  j->f_init = (jit_init_fn)p;
  if (jit_lookup(j, JIT_NAME "_message", &p, err, errlen)) return -1;
  j->f_msg = (jit_msg_fn)p;
  return jit_lookup(j, JIT_NAME "_forward", &j->f_forward, err, errlen);
}

/* ---- the calling harness (the same contract as loopir_run.c) ---------------- */
static unsigned char *jit_blob(const TensorSet *s, size_t *len) {
  StrBuf h = {0};
  size_t off = 0;
  sb_append(&h, "{");
  for (int i = 0; i < s->n; i++) {
    const Tensor *t = &s->t[i];
    size_t nb = (size_t)tensor_numel(t) * 4;
    sb_append(&h, i ? "," : "");
    emit_c_string_literal(&h, t->name);
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

static int jit_t_axis(IrShape s) {
  for (int i = 0; i < s.rank; i++)
    if (s.dims[i] == IR_DIM_T) return i;
  return -1;
}

static void jit_copy_rows(char *dst, int64_t dst_T, int64_t dst_t0, const char *src, int64_t src_T, int64_t src_t0,
                          int64_t n, IrShape s, int axis) {
  int64_t outer = 1, inner = 4;
  for (int i = 0; i < axis; i++) outer *= s.dims[i];
  for (int i = axis + 1; i < s.rank; i++) inner *= s.dims[i];
  for (int64_t o = 0; o < outer; o++)
    memcpy(dst + ((o * dst_T + dst_t0) * inner), src + ((o * src_T + src_t0) * inner), (size_t)(n * inner));
}


int run_jit_opt(const IrModule *m, const TensorSet *weights, const TensorSet *inputs, int step, const PassOptions *po,
                TensorSet *outputs, char *err, size_t errlen) {
  PassOptions opts;
  if (po)
    opts = *po;
  else
    pass_options_init(&opts, 0);
  int rc = -1, nin = m->inputs.len, nout = m->outputs.len;
  const Tensor **in_t = xcalloc((size_t)nin + 1, sizeof *in_t);
  void **in_bufs = xcalloc((size_t)nin + 1, sizeof *in_bufs), **out_bufs = xcalloc((size_t)nout + 1, sizeof *out_bufs);
  void *model = NULL, *arena = NULL;
  unsigned char *blob = NULL;
  Jit j;
  memset(&j, 0, sizeof j);
  Arena a;
  arena_init(&a);
  int64_t T = -1;
  for (int i = 0; i < nin; i++) {
    const IrIO *io = m->inputs.data[i];
    const Tensor *t = tensorset_find(inputs, io->name);
    if (!t) {
      snprintf(err, errlen, "input '%s' is missing", io->name);
      goto done;
    }
    if (t->dtype != io->dtype || t->rank != io->shape.rank) {
      snprintf(err, errlen, "input '%s' has the wrong dtype or rank", io->name);
      goto done;
    }
    for (int d = 0; d < t->rank; d++) {
      if (io->shape.dims[d] == IR_DIM_T) {
        if (T >= 0 && T != t->dims[d]) {
          snprintf(err, errlen, "input '%s': T = %lld but another input has T = %lld", io->name,
                   (long long)t->dims[d], (long long)T);
          goto done;
        }
        T = t->dims[d];
      } else if (io->shape.dims[d] != t->dims[d]) {
        snprintf(err, errlen, "input '%s' has dim %d = %lld, expected %lld", io->name, d, (long long)t->dims[d],
                 (long long)io->shape.dims[d]);
        goto done;
      }
    }
    in_t[i] = t;
  }
  if (T < 0) T = 1;
  if (T > INT32_MAX) {
    snprintf(err, errlen, "T = %lld does not fit the forward signature", (long long)T);
    goto done;
  }
  LoopModule *lm = pipeline_run(&a, m, JIT_NAME, &opts, err, errlen);
  if (!lm || jit_build(&j, lm, opts.opt_level, err, errlen) != 0) goto done;

  size_t blob_len;
  blob = jit_blob(weights, &blob_len);
  model = xcalloc(1, j.f_size());
  size_t ab = (j.f_arena() + 63) & ~(size_t)63;
  arena = aligned_alloc(64, ab ? ab : 64);
  if (!arena) {
    snprintf(err, errlen, "out of memory for a %zu-byte arena", ab);
    goto done;
  }
  if (j.f_init(model, arena, ab, blob, blob_len) != 0) {
    snprintf(err, errlen, "%s", j.f_msg(model));
    goto done;
  }
  int first_out = outputs->n;
  for (int i = 0; i < nout; i++) {
    const IrIO *io = m->outputs.data[i];
    int64_t dims[IR_MAX_RANK];
    for (int d = 0; d < io->shape.rank; d++) dims[d] = io->shape.dims[d] == IR_DIM_T ? T : io->shape.dims[d];
    tensorset_add(outputs, io->name, io->dtype, io->shape.rank, dims);
  }
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
      int ax = jit_t_axis(io->shape);
      free(in_bufs[i]);
      size_t nb = (size_t)ir_shape_numel(io->shape, n) * 4;
      in_bufs[i] = xmalloc(nb ? nb : 4);
      if (ax < 0)
        memcpy(in_bufs[i], in_t[i]->data, nb);
      else
        jit_copy_rows(in_bufs[i], n, 0, in_t[i]->data, T, t0, n, io->shape, ax);
      ptrs[1 + i] = in_bufs[i];
    }
    for (int i = 0; i < nout; i++) {
      const IrIO *io = m->outputs.data[i];
      free(out_bufs[i]);
      size_t nb = (size_t)ir_shape_numel(io->shape, n) * 4;
      out_bufs[i] = xcalloc(1, nb ? nb : 4);
      ptrs[2 + nin + i] = out_bufs[i];
    }
    ptrs[0] = model;
    for (int i = 0; i < nargs; i++) values[i] = &ptrs[i];
    values[1 + nin] = &Tc;
    ffi_sarg result = 0;
    ffi_call(&cif, FFI_FN(j.f_forward), &result, values);
    if ((int)result != 0) {
      snprintf(err, errlen, "%s", j.f_msg(model));
      ok = 0;
      break;
    }
    for (int i = 0; i < nout; i++) {
      const IrIO *io = m->outputs.data[i];
      Tensor *o = &outputs->t[first_out + i];
      int ax = jit_t_axis(io->shape);
      if (ax < 0)
        memcpy(o->data, out_bufs[i], (size_t)ir_shape_numel(io->shape, n) * 4);
      else
        jit_copy_rows(o->data, T, t0, out_bufs[i], n, 0, n, io->shape, ax);
    }
  }
  free(types);
  free(values);
  free(ptrs);
  if (ok) rc = 0;
done:
  for (int i = 0; i < nin; i++) free(in_bufs[i]);
  for (int i = 0; i < nout; i++) free(out_bufs[i]);
  free(in_bufs);
  free(out_bufs);
  free(in_t);
  free(model);
  free(arena);
  free(blob);
  if (j.J) {
    LLVMErrorRef e = LLVMOrcDisposeLLJIT(j.J);
    if (e) LLVMConsumeError(e);
  }
  arena_free(&a);
  return rc;
}

#else /* !GAT_HAVE_LLVM */

int run_jit_opt(const IrModule *m, const TensorSet *weights, const TensorSet *inputs, int step, const PassOptions *po,
                TensorSet *outputs, char *err, size_t errlen) {
  (void)m, (void)weights, (void)inputs, (void)step, (void)po, (void)outputs;
  snprintf(err, errlen, "this gattnc was built without the LLVM backend (cmake -DGAT_WITH_LLVM=ON, needs llvm-dev 14): "
                        "--jit is not available");
  return -1;
}

#endif
