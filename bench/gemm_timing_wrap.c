/* gemm_timing_wrap.c — exports one emitted GEMM kernel text (KFILE) under
 * the prefix PFX for bench/gemm_timing.c (the kernels are static). */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "gat_runtime.h"
#include KFILE
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
void CAT(PFX, pack)(float *dst, const float *w, int64_t N, int64_t K) { gat_gemm_pack(dst, w, N, K, K, 1, 0, K, 1.0, NULL, NULL, 0); }
void CAT(PFX, f32)(float *c, const float *a, const float *bp, const float *w, float *scratch, const float *bias, const float *res, const float *rs, int64_t M, int64_t N, int64_t K, int act) {
  gat_gemm_f32(c, a, bp, w, K, 1, scratch, bias, res, rs, M, N, K, act);
}
void CAT(PFX, glu)(float *c, const float *a, const float *bw, const float *bu, const float *bias, const float *biasu, const float *rs, int64_t M, int64_t N, int64_t K, int act) {
  gat_gemm_glu_f32(c, a, bw, bu, bias, biasu, rs, M, N, K, act);
}
