/* kernels_gemm.h — emission of the GEMM/GEMV micro-kernels into generated C
 * (-O2, pass_gemm). The kernels are text: static functions placed once in
 * NAME.c when the loop IR has LC_GEMM calls, portable C11 with a GCC/Clang
 * vector-extension fast path selected by the target macros (__AVX512F__,
 * __AVX__, otherwise 128-bit vectors) and a plain-loop fallback for other
 * compilers. No BLAS. */
#ifndef GATTNC_KERNELS_GEMM_H
#define GATTNC_KERNELS_GEMM_H

#include "loopir.h"

/* The support code: gat_gemm_pack, gat_gemm_f32 and their helpers. */
void kernels_gemm_emit(StrBuf *o);
/* The same for a LoopTarget (--target): fixed vector width / register block,
 * an #error when compiled for a CPU without the target's features, and plain
 * loops for LT_PORTABLE. kernels_gemm_emit is LT_NATIVE. */
void kernels_gemm_emit_target(StrBuf *o, int target);
/* The call of gat_gemm_seg_f32 for a segmented GEMM (ncat > 0, pass_concat) or a gated one
 * (args[9], pass_gate): a block statement; M and K are the sizes as C expressions. */
void kernels_gemm_seg_call(StrBuf *o, const LoopKernel *k, const char *M, const char *K);
/* 1 if `fn` can be applied by the GEMM epilogue (epi_act = 1 + fn). */
int kernels_gemm_act_ok(IrFn fn);

#endif
