/* kernels_gemm.h — the GEMM/GEMV micro-kernel of -O2 code (pass_gemm),
 * written once in codegen/kernels/gemm.c: its emission into generated C (static
 * functions placed once in NAME.c when the loop IR has LC_GEMM calls, portable
 * C11 with a GCC/Clang vector-extension fast path and a plain-loop fallback),
 * and the numbering of its epilogue activations, which both backends use. */
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
 * (args[9], pass_gate): a block statement; M and K are the sizes as C expressions. rows: NULL,
 * or "m0, m1" as C expressions: a call of gat_gemm_seg_f32_blk for those rows (pass block). */
void kernels_gemm_seg_call(StrBuf *o, const LoopKernel *k, const char *M, const char *K, const char *rows);
/* 1 if `fn` can be applied by the GEMM epilogue (epi_act = 1 + fn). */
int kernels_gemm_act_ok(IrFn fn);
/* The `act` argument of gemm.c's entry points (GAT_ACT_*) for a loop-IR epi_act (0: none,
 * else 1 + IrFn); -1 if the epilogue has no such activation. Both backends pass this. */
int kernels_gemm_act_code(int epi_act);

#endif
