/* backend_llvm.h — what the driver calls for the LLVM backend:
 * `--emit=llvm|bc|obj|asm`, `gattnc run --jit` and `gattnc bench
 * --backend=llvm`. All entry points exist in every build; without LLVM
 * (cmake -DGAT_WITH_LLVM=OFF or no llvm-config) they fail with a clear
 * message and backend_llvm_available() is 0. */
#ifndef GATTNC_BACKEND_LLVM_H
#define GATTNC_BACKEND_LLVM_H

#include <stddef.h>

#include "ir.h"
#include "pass.h"
#include "tensor.h"

typedef struct LlvmEmitOptions {
  const char *kind;   /* "llvm" (textual IR), "bc", "obj" or "asm" */
  const char *triple; /* NULL = host */
  const char *cpu;    /* NULL = host CPU (or "generic" for a foreign triple); "native" = host */
} LlvmEmitOptions;

int backend_llvm_available(void);

/* Lowers m through the optimizer pipeline of po (NULL = -O0) and writes
 * out_path in the requested form plus NAME.h next to it (NAME = the file's
 * base name without extension, made a C identifier), the same header as
 * the C backend's. 0, or -1 with a message in err. */
int backend_emit_llvm(const IrModule *m, const char *out_path, const LlvmEmitOptions *eo, const PassOptions *po,
                      char *err, size_t errlen);

/* run_compiled_opt (backend.h) with the model compiled in-process by LLVM
 * ORC (LLJIT) instead of cc + dlopen; same arguments and behaviour. */
int run_jit_opt(const IrModule *m, const TensorSet *weights, const TensorSet *inputs, int step, const PassOptions *po,
                TensorSet *outputs, char *err, size_t errlen);

#endif
