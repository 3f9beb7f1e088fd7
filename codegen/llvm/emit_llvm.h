/* emit_llvm.h — the LLVM backend: loop IR → an LLVM module built through the
 * LLVM C API (LLVM 14), with the same exported symbols and ABI as the C
 * backend's NAME.c, so NAME.h (emit_c_header) describes it unchanged.
 *
 * Numerics follow the C backend exactly: double arithmetic, rounding to f32
 * at every store, the same libm / runtime calls (the runtime's inline
 * helpers are rebuilt as internal IR functions). The GEMM micro-kernel
 * (LC_GEMM, -O2) is codegen/kernels/gemm.c, linked as bitcode and called as
 * the C build calls it. Loop IR constructs this backend does not
 * know give an error "not supported by the LLVM backend: ...", never code.
 *
 * Only built when the LLVM backend is configured (GAT_HAVE_LLVM). */
#ifndef GATTNC_EMIT_LLVM_H
#define GATTNC_EMIT_LLVM_H

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <stddef.h>

#include "loopir.h"

/* Where the code will run: triple NULL = host (then cpu/features NULL =
 * host CPU and its features); cpu NULL = "generic" for a foreign triple. */
typedef struct LlvmTarget {
  const char *triple;
  const char *cpu;
  const char *features;
} LlvmTarget;

/* Initializes the native target (and, for a foreign triple, all targets)
 * once. Returns 0 or -1. */
int emit_llvm_init_targets(int all);

/* A target machine for t; NULL + err. Dispose with LLVMDisposeTargetMachine. */
LLVMTargetMachineRef emit_llvm_target_machine(const LlvmTarget *t, char *err, size_t errlen);

/* Builds, verifies and optimizes the module of m in context ctx for target
 * machine tm (data layout, triple, vector width of the GEMM kernel from its
 * features). LLVM's default<O2> pipeline at every gattnc level: the level
 * already chose the loop IR; O3 doubled the compile time of models with
 * many small kernels and was not faster (docs/internals.md). NULL + err on
 * an unsupported construct or a verifier failure. */
LLVMModuleRef emit_llvm_module(const LoopModule *m, LLVMContextRef ctx, LLVMTargetMachineRef tm, char *err,
                               size_t errlen);

/* Writes mod as textual IR ("llvm"), bitcode ("bc") or an object file
 * ("obj"). 0 or -1 + err. */
int emit_llvm_write(LLVMModuleRef mod, LLVMTargetMachineRef tm, const char *kind, const char *path, char *err,
                    size_t errlen);

/* A module of exported loops `void gat_vm_test_F(const float *x, float *y, int64_t n)`, y[i] =
 * F(x[i]) with the backend's float function F (exp, tanh, sigmoid, silu, softplus, logsigmoid,
 * gelu_tanh, log), optimized at O3 for tm: what tests/unit/test_llvm_vecmath.cc measures. */
LLVMModuleRef emit_llvm_vecmath_module(LLVMContextRef ctx, LLVMTargetMachineRef tm, char *err, size_t errlen);

#endif
