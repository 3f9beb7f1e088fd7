/* kernels_gemm.c — the text of the GEMM micro-kernel that -O2 code calls for
 * linear layers and matmuls with a weight operand (LC_GEMM).
 *
 * Layout: the weight W (N outputs x K inputs) is packed at init into panels
 * of NR output columns; panel p holds K rows of NR floats (zero-padded past
 * N), so the micro-kernel reads it with unit stride. The activation rows are
 * read in place (row-major [M, K]).
 *
 * Blocking: K in blocks of KC (a KC x NR panel slice stays in L1/L2 while
 * every row block of A passes over it); the register block is MR rows x NR
 * columns = 2*MR vector accumulators (MR = 8, NR = 32 with AVX-512: 16 zmm
 * accumulators, 2 for B, 1 broadcast). M == 1 and tails of at most two rows
 * (decode) take a GEMV path that streams each packed panel once with four
 * independent accumulators. f32 accumulation (fused multiply-add where the
 * target has it); bias, activation and residual are applied to each tile
 * after its last K block, in double, rounding to f32 after each step as the
 * unfused ops would. */
#include "kernels_gemm.h"

#include <string.h>

static const struct {
  IrFn fn;
  const char *c; /* of a double `v` */
} gemm_acts[] = {
    {IR_FN_SILU, "gat_silu(v)"},         {IR_FN_GELU_ERF, "gat_gelu_erf(v)"},
    {IR_FN_GELU_TANH, "gat_gelu_tanh(v)"}, {IR_FN_RELU, "gat_relu(v)"},
    {IR_FN_SIGMOID, "gat_sigmoid(v)"},   {IR_FN_TANH, "tanh(v)"},
};

int kernels_gemm_act_ok(IrFn fn) {
  for (size_t i = 0; i < sizeof gemm_acts / sizeof gemm_acts[0]; i++)
    if (gemm_acts[i].fn == fn) return 1;
  return 0;
}

static const char *gemm_text_head =
    "/* ---- GEMM micro-kernel (gattnc -O2; codegen/kernels_gemm.c) ----------------\n"
    " * W packed at init into panels of GAT_NR columns x K rows; A rows read in place.\n"
    " * f32 accumulation; epilogue (bias, activation, residual) in double per tile. */\n"
    ;

/* The vector width and register block per --target (LoopTarget). */
static const char *gemm_text_target[] = {
    /* LT_NATIVE: from the compiler's target macros */
    "#if defined(__AVX512F__)\n"
    "#define GAT_VL 16\n"
    "#define GAT_MR 8\n"
    "#elif defined(__AVX__)\n"
    "#define GAT_VL 8\n"
    "#define GAT_MR 6\n"
    "#else\n"
    "#define GAT_VL 4\n"
    "#define GAT_MR 4\n"
    "#endif\n",
    /* LT_PORTABLE */
    "/* --target=portable: plain C11 loops, no vector extensions */\n"
    "#define GAT_PORTABLE 1\n"
    "#define GAT_VL 4\n"
    "#define GAT_MR 4\n",
    /* LT_X86_64 */
    "/* --target=x86-64: SSE2 (every x86-64 CPU), 128-bit vectors */\n"
    "#if !defined(__x86_64__) && !defined(_M_X64)\n"
    "#error \"generated with gattnc --target=x86-64: compile for x86-64 (or regenerate with --target=portable)\"\n"
    "#endif\n"
    "#define GAT_VL 4\n"
    "#define GAT_MR 4\n",
    /* LT_AVX2 */
    "/* --target=avx2: AVX2 + FMA (x86-64-v3), 256-bit vectors */\n"
    "#if !defined(__AVX2__) || !defined(__FMA__)\n"
    "#error \"generated with gattnc --target=avx2: compile with -march=x86-64-v3 (or -mavx2 -mfma), or regenerate with another --target\"\n"
    "#endif\n"
    "#define GAT_VL 8\n"
    "#define GAT_MR 6\n",
    /* LT_AVX512 */
    "/* --target=avx512: AVX-512F, 512-bit vectors */\n"
    "#if !defined(__AVX512F__)\n"
    "#error \"generated with gattnc --target=avx512: compile with -march=skylake-avx512 (or -mavx512f), or regenerate with another --target\"\n"
    "#endif\n"
    "#define GAT_VL 16\n"
    "#define GAT_MR 8\n",
};

static const char *gemm_text_body =
    "#define GAT_NR (2 * GAT_VL) /* <= 32, the padding the arena was sized for */\n"
    "#if defined(__GNUC__) || defined(__clang__)\n"
    "#define GAT_MAYBE_UNUSED __attribute__((unused)) /* not every model calls every kernel */\n"
    "#else\n"
    "#define GAT_MAYBE_UNUSED\n"
    "#endif\n"
    "#define GAT_KC 256\n"
    "#if (defined(__GNUC__) || defined(__clang__)) && !defined(GAT_NO_VECTOR_EXT) && !defined(GAT_PORTABLE)\n"
    "#define GAT_HAVE_VEC 1\n"
    "typedef float gat_vf __attribute__((vector_size(GAT_VL * 4), aligned(4), may_alias));\n"
    "#endif\n"
    "/* contraction of a*b+c into one FMA: on for the kernels only (ISO C mode turns it off) */\n"
    "#if defined(__clang__)\n"
    "#define GAT_FMA_ATTR\n"
    "#define GAT_FMA_BEGIN _Pragma(\"clang fp contract(fast)\")\n"
    "#elif defined(__GNUC__)\n"
    "#define GAT_FMA_ATTR __attribute__((optimize(\"fp-contract=fast\")))\n"
    "#define GAT_FMA_BEGIN\n"
    "#else\n"
    "#define GAT_FMA_ATTR\n"
    "#define GAT_FMA_BEGIN\n"
    "#endif\n"
    "\n"
    "/* dst = W (N x K, strides sn, sk) packed: panel p = K rows of GAT_NR floats. Folded scales\n"
    " * (gattnc pass scalefold): each element is W * scale * alpha[0] * vec[k] (1 + vec[k] when\n"
    " * vec1), rounded once; alpha / vec NULL = 1. */\n"
    "static GAT_MAYBE_UNUSED void gat_gemm_pack(float *dst, const float *w, int64_t N, int64_t K, int64_t sn, int64_t sk,\n"
    "                          int64_t k0, int64_t kc, double scale, const float *alpha, const float *vec,\n"
    "                          int vec1) {\n"
    "  (void)K; /* rows are addressed through sk */\n"
    "  const double s = alpha ? scale * (double)alpha[0] : scale;\n"
    "  for (int64_t j0 = 0; j0 < N; j0 += GAT_NR)\n"
    "    for (int64_t k = k0; k < k0 + kc; k++) {\n"
    "      const double sk_ = vec ? s * (vec1 ? 1.0 + (double)vec[k] : (double)vec[k]) : s;\n"
    "      for (int64_t jj = 0; jj < GAT_NR; jj++) {\n"
    "        int64_t j = j0 + jj;\n"
    "        *dst++ = j < N ? (sk_ == 1.0 ? w[j * sn + k * sk] : (float)((double)w[j * sn + k * sk] * sk_)) : 0.0f;\n"
    "      }\n"
    "    }\n"
    "}\n"
    "\n"
    "/* a folded bias: dst[n] = b[n] * scale * alpha[0], rounded once */\n"
    "static GAT_MAYBE_UNUSED void gat_gemm_pack_vec(float *dst, const float *b, int64_t N, double scale, const float *alpha) {\n"
    "  const double s = alpha ? scale * (double)alpha[0] : scale;\n"
    "  for (int64_t j = 0; j < N; j++) dst[j] = (float)((double)b[j] * s);\n"
    "}\n"
    "\n"
    "/* c[mr x nr] (=|+=) a[mr x kc] (rows lda apart) . b[kc x GAT_NR] */\n"
    "static GAT_FMA_ATTR void gat_gemm_tile(int64_t kc, const float *a, int64_t lda, int mr, const float *b,\n"
    "                                       float *c, int64_t ldc, int nr, int accumulate) {\n"
    "  GAT_FMA_BEGIN\n"
    "  const float *ar[GAT_MR];\n"
    "  for (int i = 0; i < GAT_MR; i++) ar[i] = a + (i < mr ? i : mr - 1) * lda; /* tail rows repeat the last */\n"
    "#ifdef GAT_HAVE_VEC\n"
    "  gat_vf c0[GAT_MR], c1[GAT_MR];\n"
    "  for (int i = 0; i < GAT_MR; i++) c0[i] = c1[i] = (gat_vf){0};\n"
    "  for (int64_t k = 0; k < kc; k++) {\n"
    "    const gat_vf b0 = *(const gat_vf *)(b + k * GAT_NR), b1 = *(const gat_vf *)(b + k * GAT_NR + GAT_VL);\n"
    "    for (int i = 0; i < GAT_MR; i++) {\n"
    "      const float s = ar[i][k];\n"
    "      c0[i] += s * b0;\n"
    "      c1[i] += s * b1;\n"
    "    }\n"
    "  }\n"
    "  if (nr == GAT_NR) {\n"
    "    for (int i = 0; i < mr; i++) {\n"
    "      gat_vf *ci = (gat_vf *)(c + i * ldc);\n"
    "      if (accumulate) {\n"
    "        ci[0] += c0[i];\n"
    "        ci[1] += c1[i];\n"
    "      } else {\n"
    "        ci[0] = c0[i];\n"
    "        ci[1] = c1[i];\n"
    "      }\n"
    "    }\n"
    "    return;\n"
    "  }\n"
    "  float t[GAT_MR][GAT_NR];\n"
    "  for (int i = 0; i < GAT_MR; i++) {\n"
    "    memcpy(&t[i][0], &c0[i], sizeof c0[i]);\n"
    "    memcpy(&t[i][GAT_VL], &c1[i], sizeof c1[i]);\n"
    "  }\n"
    "#else\n"
    "  float t[GAT_MR][GAT_NR];\n"
    "  memset(t, 0, sizeof t);\n"
    "  for (int64_t k = 0; k < kc; k++)\n"
    "    for (int i = 0; i < GAT_MR; i++)\n"
    "      for (int j = 0; j < GAT_NR; j++) t[i][j] += ar[i][k] * b[k * GAT_NR + j];\n"
    "#endif\n"
    "  for (int i = 0; i < mr; i++)\n"
    "    for (int j = 0; j < nr; j++) c[i * ldc + j] = accumulate ? c[i * ldc + j] + t[i][j] : t[i][j];\n"
    "}\n"
    "\n"
    "/* one row: c[nr] (=|+=) a[kc] . b[kc x GAT_NR], four independent accumulators (GEMV, decode) */\n"
    "static GAT_FMA_ATTR void gat_gemm_row(int64_t kc, const float *a, const float *b, float *c, int nr,\n"
    "                                      int accumulate) {\n"
    "  GAT_FMA_BEGIN\n"
    "  float t[GAT_NR];\n"
    "#ifdef GAT_HAVE_VEC\n"
    "  gat_vf p0 = (gat_vf){0}, p1 = (gat_vf){0}, q0 = (gat_vf){0}, q1 = (gat_vf){0};\n"
    "  int64_t k = 0;\n"
    "  for (; k + 1 < kc; k += 2) {\n"
    "    const float *bk = b + k * GAT_NR;\n"
    "    p0 += a[k] * *(const gat_vf *)bk;\n"
    "    p1 += a[k] * *(const gat_vf *)(bk + GAT_VL);\n"
    "    q0 += a[k + 1] * *(const gat_vf *)(bk + GAT_NR);\n"
    "    q1 += a[k + 1] * *(const gat_vf *)(bk + GAT_NR + GAT_VL);\n"
    "  }\n"
    "  if (k < kc) {\n"
    "    p0 += a[k] * *(const gat_vf *)(b + k * GAT_NR);\n"
    "    p1 += a[k] * *(const gat_vf *)(b + k * GAT_NR + GAT_VL);\n"
    "  }\n"
    "  p0 += q0;\n"
    "  p1 += q1;\n"
    "  memcpy(t, &p0, sizeof p0);\n"
    "  memcpy(t + GAT_VL, &p1, sizeof p1);\n"
    "#else\n"
    "  memset(t, 0, sizeof t);\n"
    "  for (int64_t k = 0; k < kc; k++)\n"
    "    for (int j = 0; j < GAT_NR; j++) t[j] += a[k] * b[k * GAT_NR + j];\n"
    "#endif\n"
    "  for (int j = 0; j < nr; j++) c[j] = accumulate ? c[j] + t[j] : t[j];\n"
    "}\n"
    "\n";

static const char *gemm_text_tail =
    "\n"
    "/* the epilogue of one finished tile row: row scale, bias, activation, residual, in double,\n"
    " * rounding to f32 after each step as the unfused ops store */\n"
    "static void gat_gemm_epi(float *ci, int nr, double rs, const float *bias, int act, const float *ri) {\n"
    "  for (int j = 0; j < nr; j++) {\n"
    "    float x = ci[j];\n"
    "    if (rs != 1.0) x = (float)((double)x * rs);\n"
    "    if (bias) x = (float)((double)x + (double)bias[j]);\n"
    "    if (act) x = gat_gemm_act((double)x, act);\n"
    "    if (ri) x = (float)((double)x + (double)ri[j]);\n"
    "    ci[j] = x;\n"
    "  }\n"
    "}\n"
    "\n"
    "/* c[M, N] = epilogue(a[M, K] . W^T). bp: W packed by gat_gemm_pack (whole K), or NULL:\n"
    " * then each KC x GAT_NR slice of w is packed into scratch on the fly (-fno-pack).\n"
    " * rs: per-row scale (a folded RMSNorm's 1/rms) or NULL. */\n"
    "static GAT_MAYBE_UNUSED void gat_gemm_f32(float *c, const float *a, const float *bp, const float *w, int64_t sn, int64_t sk,\n"
    "                         float *scratch, const float *bias, const float *res, const float *rs, int64_t M,\n"
    "                         int64_t N, int64_t K, int act) {\n"
    "  for (int64_t k0 = 0; k0 < K; k0 += GAT_KC) {\n"
    "    const int64_t kc = K - k0 < GAT_KC ? K - k0 : GAT_KC;\n"
    "    const int last = k0 + kc == K;\n"
    "    for (int64_t j0 = 0; j0 < N; j0 += GAT_NR) {\n"
    "      const int nr = N - j0 < GAT_NR ? (int)(N - j0) : GAT_NR;\n"
    "      const float *b;\n"
    "      if (bp) {\n"
    "        b = bp + (j0 / GAT_NR) * K * GAT_NR + k0 * GAT_NR;\n"
    "      } else {\n"
    "        gat_gemm_pack(scratch, w + j0 * sn, nr, K, sn, sk, k0, kc, 1.0, NULL, NULL, 0);\n"
    "        b = scratch;\n"
    "      }\n"
    "      for (int64_t i0 = 0; i0 < M; i0 += GAT_MR) {\n"
    "        const int mr = M - i0 < GAT_MR ? (int)(M - i0) : GAT_MR;\n"
    "        if (mr <= 2)\n"
    "          for (int i = 0; i < mr; i++)\n"
    "            gat_gemm_row(kc, a + (i0 + i) * K + k0, b, c + (i0 + i) * N + j0, nr, k0 > 0);\n"
    "        else\n"
    "          gat_gemm_tile(kc, a + i0 * K + k0, K, mr, b, c + i0 * N + j0, N, nr, k0 > 0);\n"
    "        if (last && (bias || act || res || rs))\n"
    "          for (int i = 0; i < mr; i++)\n"
    "            gat_gemm_epi(c + (i0 + i) * N + j0, nr, rs ? (double)rs[i0 + i] : 1.0, bias ? bias + j0 : NULL,\n"
    "                         act, res ? res + (i0 + i) * N + j0 : NULL);\n"
    "      }\n"
    "    }\n"
    "  }\n"
    "}\n"
    "\n"
    "/* GLU product (gattnc pass glu): c[M, N] = act(a.W^T [*rs] + bias) * (a.U^T [*rs] + biasu),\n"
    " * W and U packed. Rows in chunks of GAT_MC; per chunk and column panel the two products\n"
    " * accumulate over K blocks in two GAT_MC x GAT_NR stack buffers (the KC x GAT_NR slices of\n"
    " * W and U stay in L1 while the chunk's row blocks pass), so neither [M, N] product is\n"
    " * written. Rounding as the unfused ops: each step to f32. */\n"
    "#define GAT_MC 96 /* a multiple of 6 and of 8 */\n"
    "static GAT_MAYBE_UNUSED void gat_gemm_glu_f32(float *c, const float *a, const float *bw, const float *bu,\n"
    "                                              const float *bias, const float *biasu, const float *rs, int64_t M,\n"
    "                                              int64_t N, int64_t K, int act) {\n"
    "  float tw[GAT_MC * GAT_NR], tu[GAT_MC * GAT_NR];\n"
    "  for (int64_t ic = 0; ic < M; ic += GAT_MC) {\n"
    "    const int64_t mc = M - ic < GAT_MC ? M - ic : GAT_MC;\n"
    "    for (int64_t j0 = 0; j0 < N; j0 += GAT_NR) {\n"
    "      const int nr = N - j0 < GAT_NR ? (int)(N - j0) : GAT_NR;\n"
    "      const float *pw = bw + (j0 / GAT_NR) * K * GAT_NR, *pu = bu + (j0 / GAT_NR) * K * GAT_NR;\n"
    "      for (int64_t k0 = 0; k0 < K; k0 += GAT_KC) {\n"
    "        const int64_t kc = K - k0 < GAT_KC ? K - k0 : GAT_KC;\n"
    "        for (int64_t i0 = 0; i0 < mc; i0 += GAT_MR) {\n"
    "          const int mr = mc - i0 < GAT_MR ? (int)(mc - i0) : GAT_MR;\n"
    "          const float *ai = a + (ic + i0) * K + k0;\n"
    "          if (mr <= 2) {\n"
    "            for (int i = 0; i < mr; i++) {\n"
    "              gat_gemm_row(kc, ai + i * K, pw + k0 * GAT_NR, tw + (i0 + i) * GAT_NR, GAT_NR, k0 > 0);\n"
    "              gat_gemm_row(kc, ai + i * K, pu + k0 * GAT_NR, tu + (i0 + i) * GAT_NR, GAT_NR, k0 > 0);\n"
    "            }\n"
    "          } else {\n"
    "            gat_gemm_tile(kc, ai, K, mr, pw + k0 * GAT_NR, tw + i0 * GAT_NR, GAT_NR, GAT_NR, k0 > 0);\n"
    "            gat_gemm_tile(kc, ai, K, mr, pu + k0 * GAT_NR, tu + i0 * GAT_NR, GAT_NR, GAT_NR, k0 > 0);\n"
    "          }\n"
    "        }\n"
    "      }\n"
    "      for (int64_t i = 0; i < mc; i++) {\n"
    "        const double r = rs ? (double)rs[ic + i] : 1.0;\n"
    "        gat_gemm_epi(tw + i * GAT_NR, nr, r, bias ? bias + j0 : NULL, act, NULL);\n"
    "        gat_gemm_epi(tu + i * GAT_NR, nr, r, biasu ? biasu + j0 : NULL, 0, NULL);\n"
    "        float *ci = c + (ic + i) * N + j0;\n"
    "        for (int j = 0; j < nr; j++) ci[j] = (float)((double)tw[i * GAT_NR + j] * (double)tu[i * GAT_NR + j]);\n"
    "      }\n"
    "    }\n"
    "  }\n"
    "}\n"
    "/* ---- end of the GEMM micro-kernel ---- */\n\n";

void kernels_gemm_emit(StrBuf *o) { kernels_gemm_emit_target(o, LT_NATIVE); }

void kernels_gemm_emit_target(StrBuf *o, int target) {
  if (target < LT_NATIVE || target > LT_AVX512) target = LT_NATIVE;
  sb_append(o, gemm_text_head);
  sb_append(o, gemm_text_target[target]);
  sb_append(o, gemm_text_body);
  sb_append(o, "/* epilogue activation: act = 1 + the graph IR's function number */\n");
  sb_append(o, "static float gat_gemm_act(double v, int act) {\n  switch (act) {\n");
  for (size_t i = 0; i < sizeof gemm_acts / sizeof gemm_acts[0]; i++)
    sb_printf(o, "  case %d: return (float)%s; /* %s */\n", 1 + (int)gemm_acts[i].fn, gemm_acts[i].c,
              ir_fn_name(gemm_acts[i].fn));
  sb_append(o, "  default: return (float)v;\n  }\n}\n");
  sb_append(o, gemm_text_tail);
}
