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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_llvm.h"
#include "emit_c.h"
#include "loopir.h"
#include "loopir_ffi.h"

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
    RT(gat_k_layer_norm),  RT(gat_k_l2_norm),   RT(gat_k_gather),    RT(gat_k_topk),       RT(gat_k_rope), RT(gat_k_rope_pos),
    RT(gat_k_conv1d),      RT(gat_k_attention),
    RT(gat_k_copy_rows),
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
static int jit_build(Jit *j, const LoopModule *lm, const char *cpu, char *err, size_t errlen) {
  LlvmTarget t = {NULL, cpu, NULL};
  LLVMTargetMachineRef tm = emit_llvm_target_machine(&t, err, errlen);
  if (!tm) return -1;
  LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
  LLVMModuleRef mod = emit_llvm_module(lm, LLVMOrcThreadSafeContextGetContext(tsc), tm, err, errlen);
  LLVMDisposeTargetMachine(tm);
  if (!mod) {
    LLVMOrcDisposeThreadSafeContext(tsc);
    return -1;
  }
  LLVMOrcJITTargetMachineBuilderRef jtmb = NULL;
  if (cpu && *cpu) { /* run --jit -mcpu=CPU: code for that CPU (one this host can run; tests use it for the
                        kernels' narrower vector forms) */
    LLVMTargetMachineRef jtm = emit_llvm_target_machine(&t, err, errlen);
    if (jtm) jtmb = LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(jtm); /* takes jtm */
  } else if (jit_error(LLVMOrcJITTargetMachineBuilderDetectHost(&jtmb), "host detection", err, errlen) != 0) {
    jtmb = NULL;
  }
  if (!jtmb) {
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

/* run --count FILE: the NAME_count_* entry points (loopir_ffi_write_counts); NULL when missing */
static void *jit_sym(void *ud, const char *name) {
  LLVMOrcExecutorAddress addr = 0;
  LLVMErrorRef e = LLVMOrcLLJITLookup(((Jit *)ud)->J, &addr, name);
  if (e) {
    LLVMConsumeError(e);
    return NULL;
  }
  return (void *)(uintptr_t)addr;
}

/* ---- the calling harness: loopir_ffi.c, the same as run_compiled_opt's ------ */
int run_jit_opt(const IrModule *m, const TensorSet *weights, const TensorSet *inputs, int step, const PassOptions *po,
                TensorSet *outputs, char *err, size_t errlen) {
  PassOptions opts;
  if (po)
    opts = *po;
  else
    pass_options_init(&opts, 0);
  int rc = -1;
  const Tensor **in_t = xcalloc((size_t)m->inputs.len + 1, sizeof *in_t);
  LoopirFfiModel fm;
  memset(&fm, 0, sizeof fm);
  Jit j;
  memset(&j, 0, sizeof j);
  Arena a;
  arena_init(&a);
  int64_t T;
  if (loopir_ffi_bind_inputs(m, inputs, in_t, &T, err, errlen) != 0) goto done;
  LoopModule *lm = pipeline_run(&a, m, JIT_NAME, &opts, err, errlen);
  if (!lm || jit_build(&j, lm, opts.llvm_cpu, err, errlen) != 0) goto done;

  fm.f_size = j.f_size;
  fm.f_arena = j.f_arena;
  fm.f_init = j.f_init;
  fm.f_msg = j.f_msg;
  fm.f_forward = j.f_forward;
  if (loopir_ffi_call(&fm, m, weights, in_t, T, step, outputs, err, errlen) != 0) goto done;
  if (opts.count_path && loopir_ffi_write_counts(jit_sym, &j, JIT_NAME, fm.model, opts.count_path, err, errlen) != 0)
    goto done;
  rc = 0;
done:
  free(in_t);
  loopir_ffi_release(&fm);
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
