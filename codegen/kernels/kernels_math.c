/* kernels_math.c — the C backend's side of the f32 elementwise functions of
 * -O2 `f32_math` nests (pass_f32math): their source, codegen/kernels/vecmath.c
 * (the math and its accuracy are described there), emitted once into NAME.c,
 * and which IR functions have a float form. The LLVM backend links the same
 * file's bitcode (emit_llvm_kernels.c). */
#include "kernels_math.h"

/* codegen/kernels/vecmath.c, its lines embedded at build time (cmake/gat_embed.c) */
extern const char *const gat_kernel_vecmath_text[];

void kernels_math_emit(StrBuf *sb) {
  for (const char *const *l = gat_kernel_vecmath_text; *l; l++) sb_append(sb, *l);
  sb_append(sb, "\n");
}

const char *kernels_math_unary_f32(IrFn fn) {
  switch (fn) {
  case IR_FN_EXP: return "gat_vm_expf";
  case IR_FN_LOG: return "gat_vm_logf";
  case IR_FN_SQRT: return "sqrtf"; /* errno keeps it scalar; norms take it once per row */
  case IR_FN_RSQRT: return "gat_vm_rsqrtf";
  case IR_FN_ABS: return "fabsf";
  case IR_FN_TANH: return "gat_vm_tanhf";
  case IR_FN_SIGMOID: return "gat_vm_sigmoidf";
  case IR_FN_LOGSIGMOID: return "gat_vm_logsigmoidf";
  case IR_FN_SILU: return "gat_vm_siluf";
  case IR_FN_RELU: return "gat_vm_reluf";
  case IR_FN_GELU_TANH: return "gat_vm_gelu_tanhf";
  case IR_FN_SOFTPLUS: return "gat_vm_softplusf";
  default: return NULL;
  }
}
