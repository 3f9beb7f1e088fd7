/* kernels_gemm.c — the text of the GEMM micro-kernel that -O2 code calls for
 * linear layers and matmuls with a weight operand (LC_GEMM).
 *
 * Layout: the weight W (N outputs x K inputs) is packed at init into panels
 * of NR output columns; panel p holds K rows of NR floats (zero-padded past
 * N), so the micro-kernel reads it with unit stride. The activations are
 * packed per call, GAT_MC x KC at a time, into micro-panels of MR rows
 * (for each k the MR values of its rows) in a stack buffer (96 KB at most;
 * generated code never allocates), so the broadcasts read one stream.
 *
 * Blocking (BLIS-like, with the roles of the operands swapped because C is
 * row-major): K blocks of KC = 256; row blocks of GAT_MC = 8 MR rows, packed
 * once per K block; 32-column panels (a KC x NR slice, 32 KB, stays in L1
 * while the row block's micro-panels pass over it); register tiles of MR x
 * NR = 2*MR vector accumulators (AVX-512: 12 x 32, 24 zmm accumulators, 2
 * for B, 1 broadcast; AVX2: 6 x 16; SSE and other 128-bit targets: 6 x 8).
 * Row tails of at most MR/3 rows and M == 1 (decode) take a GEMV path that
 * streams each packed panel once with four independent accumulators. f32
 * accumulation (fused multiply-add where the target has it); row scale,
 * bias, activation and residual are applied to each tile after its last K
 * block (sigmoid/silu with a vectorizable float exp, other activations in
 * double), rounding to f32 after each step as the unfused ops would. */
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
    " * W packed at init into panels of GAT_NR columns x K rows; A packed per call into\n"
    " * GAT_MR-row micro-panels on the stack. f32 accumulation; epilogue (row scale, bias,\n"
    " * activation, residual) per finished tile, each step rounded to f32. */\n"
    ;

/* The vector width and register block per --target (LoopTarget). */
static const char *gemm_text_target[] = {
    /* LT_NATIVE: from the compiler's target macros */
    "#if defined(__AVX512F__)\n"
    "#define GAT_VL 16\n"
    "#define GAT_MR 12\n"
    "#elif defined(__AVX__)\n"
    "#define GAT_VL 8\n"
    "#define GAT_MR 6\n"
    "#else\n"
    "#define GAT_VL 4\n"
    "#define GAT_MR 6\n"
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
    "#define GAT_MR 6\n",
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
    "#define GAT_MR 12\n",
};

static const char *gemm_text_body =
    "#define GAT_NR (2 * GAT_VL) /* <= 32, the padding the arena was sized for */\n"
    "#if defined(__GNUC__) || defined(__clang__)\n"
    "#define GAT_MAYBE_UNUSED __attribute__((unused)) /* not every model calls every kernel */\n"
    "#else\n"
    "#define GAT_MAYBE_UNUSED\n"
    "#endif\n"
    "/* Blocking: KC (a KC x GAT_NR slice of a packed panel, 32 KB at most, stays in L1 while the\n"
    " * GAT_MC rows of packed activations pass over it); GAT_MC x GAT_KC floats of A packed on the\n"
    " * stack (96 KB at most); row tails of at most GAT_ROWS rows take the GEMV path. */\n"
    "#define GAT_KC 256 /* -fno-pack's scratch holds one GAT_KC x 32 slice (gattnc pass gemm) */\n"
    "#define GAT_MB 8\n"
    "#define GAT_MC (GAT_MR * GAT_MB)\n"
    "#define GAT_APACK (GAT_MC * GAT_KC)\n"
    "#define GAT_ROWS (GAT_MR / 3)\n"
    "#if (defined(__GNUC__) || defined(__clang__)) && !defined(GAT_NO_VECTOR_EXT) && !defined(GAT_PORTABLE)\n"
    "#define GAT_HAVE_VEC 1\n"
    "typedef float gat_vf __attribute__((vector_size(GAT_VL * 4), aligned(4), may_alias));\n"
    "#endif\n"
    "/* contraction of a*b+c into one FMA: on for the kernels only (ISO C mode turns it off) */\n"
    "#if defined(__clang__) /* min_vector_width: else clang splits the 512-bit vectors in two (-march=skylake-avx512\n"
    "                          prefers 256-bit vectors) and the tile runs at half speed */\n"
    "#define GAT_FMA_ATTR __attribute__((min_vector_width(GAT_VL * 32)))\n"
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
    "/* rows x kc of A (rows lda apart, from column k0) into micro-panels of GAT_MR rows: panel p at\n"
    " * ap + p * GAT_MR * kc holds, for each k, the GAT_MR values of its rows (zero past `rows`), so\n"
    " * the micro-kernel broadcasts them with unit stride */\n"
    "static void gat_gemm_pack_a(float *ap, const float *a, int64_t lda, int64_t rows, int64_t k0, int64_t kc) {\n"
    "  for (int64_t p = 0; p < rows; p += GAT_MR) {\n"
    "    const int mr = rows - p < GAT_MR ? (int)(rows - p) : GAT_MR;\n"
    "    const float *ar = a + p * lda + k0;\n"
    "    if (mr == GAT_MR) {\n"
    "      for (int64_t k = 0; k < kc; k++)\n"
    "        for (int i = 0; i < GAT_MR; i++) ap[k * GAT_MR + i] = ar[i * lda + k];\n"
    "    } else {\n"
    "      for (int64_t k = 0; k < kc; k++)\n"
    "        for (int i = 0; i < GAT_MR; i++) ap[k * GAT_MR + i] = i < mr ? ar[i * lda + k] : 0.0f;\n"
    "    }\n"
    "    ap += GAT_MR * kc;\n"
    "  }\n"
    "}\n"
    "\n"
    "/* c[mr x nr] (=|+=) ap[kc x GAT_MR] (a packed micro-panel) . b[kc x GAT_NR] */\n"
    "static GAT_FMA_ATTR void gat_gemm_tile(int64_t kc, const float *ap, const float *b, float *c, int64_t ldc, int mr,\n"
    "                                       int nr, int accumulate) {\n"
    "  GAT_FMA_BEGIN\n"
    "#ifdef GAT_HAVE_VEC\n"
    "  gat_vf c0[GAT_MR], c1[GAT_MR];\n"
    "  for (int i = 0; i < GAT_MR; i++) c0[i] = c1[i] = (gat_vf){0};\n"
    "  for (int i = 0; i < mr; i++) /* the C rows this tile writes at the end */\n"
    "    __builtin_prefetch(c + i * ldc, 1), __builtin_prefetch(c + i * ldc + nr - 1, 1);\n"
    "  for (int64_t k = 0; k < kc; k++) {\n"
    "    const gat_vf b0 = *(const gat_vf *)(b + k * GAT_NR), b1 = *(const gat_vf *)(b + k * GAT_NR + GAT_VL);\n"
    "    const float *ak = ap + k * GAT_MR;\n"
    "    for (int i = 0; i < GAT_MR; i++) {\n"
    "      c0[i] += ak[i] * b0;\n"
    "      c1[i] += ak[i] * b1;\n"
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
    "      for (int j = 0; j < GAT_NR; j++) t[i][j] += ap[k * GAT_MR + i] * b[k * GAT_NR + j];\n"
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
    "  gat_vf r0 = (gat_vf){0}, r1 = (gat_vf){0}, s0 = (gat_vf){0}, s1 = (gat_vf){0};\n"
    "  int64_t k = 0;\n"
    "  /* eight accumulators (four k in flight): with two, decode GEMVs streamed weights from memory\n"
    "   * ~10% slower (more loads in flight per dependent FMA) */\n"
    "  for (; k + 3 < kc; k += 4) {\n"
    "    const float *bk = b + k * GAT_NR;\n"
    "    p0 += a[k] * *(const gat_vf *)bk;\n"
    "    p1 += a[k] * *(const gat_vf *)(bk + GAT_VL);\n"
    "    q0 += a[k + 1] * *(const gat_vf *)(bk + GAT_NR);\n"
    "    q1 += a[k + 1] * *(const gat_vf *)(bk + GAT_NR + GAT_VL);\n"
    "    r0 += a[k + 2] * *(const gat_vf *)(bk + 2 * GAT_NR);\n"
    "    r1 += a[k + 2] * *(const gat_vf *)(bk + 2 * GAT_NR + GAT_VL);\n"
    "    s0 += a[k + 3] * *(const gat_vf *)(bk + 3 * GAT_NR);\n"
    "    s1 += a[k + 3] * *(const gat_vf *)(bk + 3 * GAT_NR + GAT_VL);\n"
    "  }\n"
    "  for (; k < kc; k++) {\n"
    "    p0 += a[k] * *(const gat_vf *)(b + k * GAT_NR);\n"
    "    p1 += a[k] * *(const gat_vf *)(b + k * GAT_NR + GAT_VL);\n"
    "  }\n"
    "  p0 = (p0 + q0) + (r0 + s0);\n"
    "  p1 = (p1 + q1) + (r1 + s1);\n"
    "  memcpy(t, &p0, sizeof p0);\n"
    "  memcpy(t + GAT_VL, &p1, sizeof p1);\n"
    "#else\n"
    "  memset(t, 0, sizeof t);\n"
    "  for (int64_t k = 0; k < kc; k++)\n"
    "    for (int j = 0; j < GAT_NR; j++) t[j] += a[k] * b[k * GAT_NR + j];\n"
    "#endif\n"
    "  for (int j = 0; j < nr; j++) c[j] = accumulate ? c[j] + t[j] : t[j];\n"
    "}\n"
    "\n"
    ;

static const char *gemm_text_actf =
    "/* e^x for x <= 0 in float, vectorizable (no calls): 2^n * p(r), r = x - n ln2 (Cody-Waite, |r| <=\n"
    " * ln2/2), p the degree-7 Taylor polynomial (truncation < 6e-9 relative); clamped at e^-87 */\n"
    "static inline float gat_gemm_expnegf(float x) {\n"
    "  x = x >= -87.0f ? x : -87.0f; /* (NaN too: no undefined float-to-int conversion) */\n"
    "  const float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f; /* round(x / ln2) */\n"
    "  float r = x - n * 0.693145752f;\n"
    "  r = r - n * 1.42860677e-6f;\n"
    "  float p = 1.98412698e-4f;\n"
    "  p = p * r + 1.38888889e-3f;\n"
    "  p = p * r + 8.33333333e-3f;\n"
    "  p = p * r + 4.16666667e-2f;\n"
    "  p = p * r + 1.66666667e-1f;\n"
    "  p = p * r + 0.5f;\n"
    "  p = p * r + 1.0f;\n"
    "  p = p * r + 1.0f;\n"
    "  const int32_t bits = ((int32_t)n + 127) * 8388608; /* 2^n as float bits (n >= -126) */\n"
    "  float s;\n"
    "  memcpy(&s, &bits, sizeof s);\n"
    "  return p * s;\n"
    "}\n"
    "/* 1 / (1 + e^-x) without overflow: e = e^-|x|, then 1/(1+e) or e/(1+e) */\n"
    "static inline float gat_gemm_sigmoidf(float x) {\n"
    "  const float e = gat_gemm_expnegf(x < 0.0f ? x : -x);\n"
    "  const float s = 1.0f / (1.0f + e);\n"
    "  return x >= 0.0f ? s : x < 0.0f ? e * s : x; /* NaN stays NaN */\n"
    "}\n"
    ;

static const char *gemm_text_tail =
    "\n"
    "/* the epilogue of one finished tile row: row scale, bias, activation, residual, each rounded to\n"
    " * f32 as the unfused ops store (the float product or sum of two floats is the double one rounded\n"
    " * once, so these steps are exactly the unfused ones); sigmoid and silu use the vectorizable\n"
    " * float exp below (a few f32 ulps), relu is exact, the other activations are evaluated in double */\n"
    "static void gat_gemm_epi(float *ci, int nr, const float *rs, const float *bias, int act, const float *ri) {\n"
    "  if (rs) {\n"
    "    const float r = *rs;\n"
    "    for (int j = 0; j < nr; j++) ci[j] = ci[j] * r;\n"
    "  }\n"
    "  if (bias)\n"
    "    for (int j = 0; j < nr; j++) ci[j] = ci[j] + bias[j];\n"
    "  if (act == GAT_ACT_SIGMOID)\n"
    "    for (int j = 0; j < nr; j++) ci[j] = gat_gemm_sigmoidf(ci[j]);\n"
    "  else if (act == GAT_ACT_SILU)\n"
    "    for (int j = 0; j < nr; j++) ci[j] = ci[j] * gat_gemm_sigmoidf(ci[j]);\n"
    "  else if (act == GAT_ACT_RELU)\n"
    "    for (int j = 0; j < nr; j++) ci[j] = ci[j] > 0.0f ? ci[j] : 0.0f;\n"
    "  else if (act)\n"
    "    for (int j = 0; j < nr; j++) ci[j] = gat_gemm_act((double)ci[j], act);\n"
    "  if (ri)\n"
    "    for (int j = 0; j < nr; j++) ci[j] = ci[j] + ri[j];\n"
    "}\n"
    "\n"
    "/* c[M, N] = epilogue(a[M, K] . W^T). bp: W packed by gat_gemm_pack (whole K), or NULL:\n"
    " * then each KC x GAT_NR slice of w is packed into scratch on the fly (-fno-pack).\n"
    " * rs: per-row scale (a folded RMSNorm's 1/rms) or NULL. Loop order: K blocks, row blocks of\n"
    " * GAT_MC rows (packed once into micro-panels), column panels (a KC x GAT_NR slice in L1),\n"
    " * micro-panels (GAT_MR x GAT_NR register tiles); the epilogue runs on each tile after its\n"
    " * last K block, while it is in cache. */\n"
    "static GAT_MAYBE_UNUSED void gat_gemm_f32(float *c, const float *a, const float *bp, const float *w, int64_t sn, int64_t sk,\n"
    "                         float *scratch, const float *bias, const float *res, const float *rs, int64_t M,\n"
    "                         int64_t N, int64_t K, int act) {\n"
    "  float ap[GAT_APACK];\n"
    "  const int epi = bias || act || res || rs;\n"
    "  if (bp && M <= GAT_ROWS) {\n"
    "    /* decode (a few rows, all on the GEMV path): panel by panel through the whole K, so the\n"
    "     * packed weight is read as one sequential stream (K blocks outermost jumped between panels\n"
    "     * every KC rows: ~1.3x slower when the weights come from memory). The same per-block row sums\n"
    "     * added in the same order as the loop nest below: bitwise the same results. */\n"
    "    for (int64_t j0 = 0; j0 < N; j0 += GAT_NR) {\n"
    "      const int nr = N - j0 < GAT_NR ? (int)(N - j0) : GAT_NR;\n"
    "      const float *b = bp + (j0 / GAT_NR) * K * GAT_NR;\n"
    "      for (int64_t i = 0; i < M; i++) {\n"
    "        for (int64_t k0 = 0; k0 < K; k0 += GAT_KC)\n"
    "          gat_gemm_row(K - k0 < GAT_KC ? K - k0 : GAT_KC, a + i * K + k0, b + k0 * GAT_NR, c + i * N + j0, nr, k0 > 0);\n"
    "        if (epi)\n"
    "          gat_gemm_epi(c + i * N + j0, nr, rs ? rs + i : NULL, bias ? bias + j0 : NULL, act, res ? res + i * N + j0 : NULL);\n"
    "      }\n"
    "    }\n"
    "    return;\n"
    "  }\n"
    "  for (int64_t k0 = 0; k0 < K; k0 += GAT_KC) {\n"
    "    const int64_t kc = K - k0 < GAT_KC ? K - k0 : GAT_KC;\n"
    "    const int last = k0 + kc == K;\n"
    "    for (int64_t ic = 0; ic < M; ic += GAT_MC) {\n"
    "      const int64_t mc = M - ic < GAT_MC ? M - ic : GAT_MC;\n"
    "      if (mc > GAT_ROWS) gat_gemm_pack_a(ap, a + ic * K, K, mc, k0, kc);\n"
    "      for (int64_t j0 = 0; j0 < N; j0 += GAT_NR) {\n"
    "        const int nr = N - j0 < GAT_NR ? (int)(N - j0) : GAT_NR;\n"
    "        const float *b;\n"
    "        if (bp) {\n"
    "          b = bp + (j0 / GAT_NR) * K * GAT_NR + k0 * GAT_NR;\n"
    "        } else {\n"
    "          gat_gemm_pack(scratch, w + j0 * sn, nr, K, sn, sk, k0, kc, 1.0, NULL, NULL, 0);\n"
    "          b = scratch;\n"
    "        }\n"
    "        for (int64_t ir = 0; ir < mc; ir += GAT_MR) {\n"
    "          const int mr = mc - ir < GAT_MR ? (int)(mc - ir) : GAT_MR;\n"
    "          const int64_t i0 = ic + ir;\n"
    "          if (mr <= GAT_ROWS)\n"
    "            for (int i = 0; i < mr; i++) gat_gemm_row(kc, a + (i0 + i) * K + k0, b, c + (i0 + i) * N + j0, nr, k0 > 0);\n"
    "          else\n"
    "            gat_gemm_tile(kc, ap + ir * kc, b, c + i0 * N + j0, N, mr, nr, k0 > 0);\n"
    "          if (last && epi)\n"
    "            for (int i = 0; i < mr; i++)\n"
    "              gat_gemm_epi(c + (i0 + i) * N + j0, nr, rs ? rs + i0 + i : NULL, bias ? bias + j0 : NULL, act,\n"
    "                           res ? res + (i0 + i) * N + j0 : NULL);\n"
    "        }\n"
    "      }\n"
    "    }\n"
    "  }\n"
    "}\n"
    "\n"
    "/* GLU product (gattnc pass glu): c[M, N] = act(a.W^T [*rs] + bias) * (a.U^T [*rs] + biasu),\n"
    " * W and U packed. Rows in chunks of at most GAT_MCG, packed once with their whole K when that\n"
    " * fits the GAT_APACK floats of stack (else per micro-panel and K block); per chunk and column\n"
    " * panel the two products accumulate over K blocks in two GAT_MCG x GAT_NR stack tiles, so\n"
    " * neither [M, N] product is written. Rounding as the unfused ops: each step to f32. */\n"
    "#ifndef GAT_MCG\n"
    "#define GAT_MCG (GAT_MR * 4)\n"
    "#endif\n"
    "#ifndef GAT_KCG\n"
    "#define GAT_KCG 128\n"
    "#endif\n"
    "static GAT_MAYBE_UNUSED void gat_gemm_glu_f32(float *c, const float *a, const float *bw, const float *bu,\n"
    "                                              const float *bias, const float *biasu, const float *rs, int64_t M,\n"
    "                                              int64_t N, int64_t K, int act) {\n"
    "  float ap[GAT_APACK];\n"
    "  float tw[GAT_MCG * GAT_NR], tu[GAT_MCG * GAT_NR];\n"
    "  int64_t mcg = (K > 0 ? GAT_APACK / K : GAT_MCG) / GAT_MR * GAT_MR;\n"
    "  if (mcg > GAT_MCG) mcg = GAT_MCG;\n"
    "  const int whole = mcg >= GAT_MR; /* else one micro-panel per chunk, packed per K block */\n"
    "  if (!whole) mcg = GAT_MR;\n"
    "  for (int64_t ic = 0; ic < M; ic += mcg) {\n"
    "    const int64_t mc = M - ic < mcg ? M - ic : mcg;\n"
    "    if (whole && mc > GAT_ROWS) gat_gemm_pack_a(ap, a + ic * K, K, mc, 0, K);\n"
    "    for (int64_t j0 = 0; j0 < N; j0 += GAT_NR) {\n"
    "      const int nr = N - j0 < GAT_NR ? (int)(N - j0) : GAT_NR;\n"
    "      const float *pw = bw + (j0 / GAT_NR) * K * GAT_NR, *pu = bu + (j0 / GAT_NR) * K * GAT_NR;\n"
    "      for (int64_t k0 = 0; k0 < K; k0 += GAT_KCG) {\n"
    "        const int64_t kc = K - k0 < GAT_KCG ? K - k0 : GAT_KCG;\n"
    "        for (int64_t ir = 0; ir < mc; ir += GAT_MR) {\n"
    "          const int mr = mc - ir < GAT_MR ? (int)(mc - ir) : GAT_MR;\n"
    "          if (mr <= GAT_ROWS) {\n"
    "            for (int i = 0; i < mr; i++) {\n"
    "              const float *ai = a + (ic + ir + i) * K + k0;\n"
    "              gat_gemm_row(kc, ai, pw + k0 * GAT_NR, tw + (ir + i) * GAT_NR, GAT_NR, k0 > 0);\n"
    "              gat_gemm_row(kc, ai, pu + k0 * GAT_NR, tu + (ir + i) * GAT_NR, GAT_NR, k0 > 0);\n"
    "            }\n"
    "          } else {\n"
    "            const float *api = ap + ir * K + k0 * GAT_MR;\n"
    "            if (!whole) {\n"
    "              gat_gemm_pack_a(ap, a + (ic + ir) * K, K, mr, k0, kc);\n"
    "              api = ap;\n"
    "            }\n"
    "            gat_gemm_tile(kc, api, pw + k0 * GAT_NR, tw + ir * GAT_NR, GAT_NR, mr, GAT_NR, k0 > 0);\n"
    "            gat_gemm_tile(kc, api, pu + k0 * GAT_NR, tu + ir * GAT_NR, GAT_NR, mr, GAT_NR, k0 > 0);\n"
    "          }\n"
    "        }\n"
    "      }\n"
    "      for (int64_t i = 0; i < mc; i++) {\n"
    "        const float *r = rs ? rs + ic + i : NULL;\n"
    "        float *wi = tw + i * GAT_NR, *ui = tu + i * GAT_NR, *ci = c + (ic + i) * N + j0;\n"
    "        gat_gemm_epi(wi, nr, r, bias ? bias + j0 : NULL, act, NULL);\n"
    "        gat_gemm_epi(ui, nr, r, biasu ? biasu + j0 : NULL, 0, NULL);\n"
    "        for (int j = 0; j < nr; j++) ci[j] = wi[j] * ui[j];\n"
    "      }\n"
    "    }\n"
    "  }\n"
    "}\n"
    "/* ---- end of the GEMM micro-kernel ---- */\n"
    "\n"
    ;

/* Segmented GEMM (gattnc passes concat and gate; text after the tail, so gat_gemm_epi exists). */
static const char *gemm_text_seg =
    "/* Segmented GEMM (gattnc pass concat): several packed weights that read the same a (and row\n"
    " * scale) as one call; segment s writes its own c[M, N_s] with its own epilogue. Loop order as\n"
    " * gat_gemm_f32 with the segments' panels one after another: a row block of a is packed once per\n"
    " * K block for all segments, and every value is computed by the same tile / row / epilogue code\n"
    " * as a separate gat_gemm_f32 call (bitwise). mul (pass gate): the epilogue multiplies by\n"
    " * mul[m, n] after the activation (c = act(..) * y, rounded to f32), before the residual. */\n"
    "typedef struct gat_gemm_seg {\n"
    "  float *c;\n"
    "  const float *bp, *bias, *res, *mul;\n"
    "  int64_t N;\n"
    "  int act;\n"
    "} gat_gemm_seg;\n"
    "static GAT_MAYBE_UNUSED void gat_gemm_seg_f32(const float *a, const float *rs, int64_t M, int64_t K,\n"
    "                                              const gat_gemm_seg *sg, int nseg) {\n"
    "  if (M == 1 && (nseg > 1 || sg->N > GAT_NR)) {\n"
    "    /* decode: segment by segment and panel by panel through the whole K, so each packed weight is\n"
    "     * read as one sequential stream (K blocks outermost jump between panels every GAT_KC rows:\n"
    "     * ~1.3x slower from memory); each panel by the code below as a one-panel segment: bitwise */\n"
    "    for (int s = 0; s < nseg; s++)\n"
    "      for (int64_t j0 = 0; j0 < sg[s].N; j0 += GAT_NR) {\n"
    "        gat_gemm_seg p = sg[s];\n"
    "        p.c += j0;\n"
    "        p.bp += (j0 / GAT_NR) * K * GAT_NR;\n"
    "        if (p.bias) p.bias += j0;\n"
    "        if (p.res) p.res += j0;\n"
    "        if (p.mul) p.mul += j0;\n"
    "        p.N = sg[s].N - j0 < GAT_NR ? sg[s].N - j0 : GAT_NR;\n"
    "        gat_gemm_seg_f32(a, rs, 1, K, &p, 1);\n"
    "      }\n"
    "    return;\n"
    "  }\n"
    "  if (M <= GAT_ROWS && nseg > 1) { /* GEMV (decode): nothing to share, and K blocks across the\n"
    "                                      segments' weights measured ~10% slower than one at a time */\n"
    "    for (int s = 0; s < nseg; s++) gat_gemm_seg_f32(a, rs, M, K, sg + s, 1);\n"
    "    return;\n"
    "  }\n"
    "  float ap[GAT_APACK];\n"
    "  for (int64_t k0 = 0; k0 < K; k0 += GAT_KC) {\n"
    "    const int64_t kc = K - k0 < GAT_KC ? K - k0 : GAT_KC;\n"
    "    const int last = k0 + kc == K;\n"
    "    for (int64_t ic = 0; ic < M; ic += GAT_MC) {\n"
    "      const int64_t mc = M - ic < GAT_MC ? M - ic : GAT_MC;\n"
    "      if (mc > GAT_ROWS) gat_gemm_pack_a(ap, a + ic * K, K, mc, k0, kc);\n"
    "      for (int s = 0; s < nseg; s++) {\n"
    "        const gat_gemm_seg *g = sg + s;\n"
    "        const int64_t N = g->N;\n"
    "        const int epi = rs || g->bias || g->act || g->res || g->mul;\n"
    "        for (int64_t j0 = 0; j0 < N; j0 += GAT_NR) {\n"
    "          const int nr = N - j0 < GAT_NR ? (int)(N - j0) : GAT_NR;\n"
    "          const float *b = g->bp + (j0 / GAT_NR) * K * GAT_NR + k0 * GAT_NR;\n"
    "          for (int64_t ir = 0; ir < mc; ir += GAT_MR) {\n"
    "            const int mr = mc - ir < GAT_MR ? (int)(mc - ir) : GAT_MR;\n"
    "            const int64_t i0 = ic + ir;\n"
    "            if (mr <= GAT_ROWS)\n"
    "              for (int i = 0; i < mr; i++) gat_gemm_row(kc, a + (i0 + i) * K + k0, b, g->c + (i0 + i) * N + j0, nr, k0 > 0);\n"
    "            else\n"
    "              gat_gemm_tile(kc, ap + ir * kc, b, g->c + i0 * N + j0, N, mr, nr, k0 > 0);\n"
    "            if (last && epi)\n"
    "              for (int i = 0; i < mr; i++) {\n"
    "                float *ci = g->c + (i0 + i) * N + j0;\n"
    "                gat_gemm_epi(ci, nr, rs ? rs + i0 + i : NULL, g->bias ? g->bias + j0 : NULL, g->act, NULL);\n"
    "                if (g->mul) {\n"
    "                  const float *yi = g->mul + (i0 + i) * N + j0;\n"
    "                  for (int j = 0; j < nr; j++) ci[j] = ci[j] * yi[j];\n"
    "                }\n"
    "                if (g->res) {\n"
    "                  const float *ri = g->res + (i0 + i) * N + j0;\n"
    "                  for (int j = 0; j < nr; j++) ci[j] = ci[j] + ri[j];\n"
    "                }\n"
    "              }\n"
    "          }\n"
    "        }\n"
    "      }\n"
    "    }\n"
    "  }\n"
    "}\n"
    "\n"
    ;

static void seg_ptr(StrBuf *o, int b) {
  if (b >= 0)
    sb_printf(o, "b%d", b);
  else
    sb_append(o, "NULL");
}

void kernels_gemm_seg_call(StrBuf *o, const LoopKernel *k, const char *M, const char *K) {
  const int n = k->ncat > 0 ? k->ncat : 1;
  sb_printf(o, "{\n    const gat_gemm_seg sg_[%d] = {", n);
  for (int s = 0; s < n; s++) {
    LoopGemmSeg g;
    if (k->ncat > 0) {
      g = k->cat[s];
    } else { /* a gated GEMM (pass_gate): one segment */
      g.out = k->out, g.w = k->args[1], g.bias = k->args[2], g.res = k->args[3], g.act = k->epi_act;
      g.n = k->sizes[1].k;
    }
    sb_printf(o, "%s{b%d, b%d, ", s ? ", " : "", g.out, g.w);
    seg_ptr(o, g.bias);
    sb_append(o, ", ");
    seg_ptr(o, g.res);
    sb_append(o, ", ");
    seg_ptr(o, k->ncat > 0 ? -1 : k->args[9]);
    sb_printf(o, ", %lld, %d}", (long long)g.n, g.act);
  }
  sb_printf(o, "};\n    gat_gemm_seg_f32(b%d, ", k->args[0]);
  seg_ptr(o, k->nargs > 6 ? k->args[6] : -1);
  sb_printf(o, ", %s, %s, sg_, %d);\n  }\n", M, K, n);
}

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
  sb_printf(o, "#define GAT_ACT_SIGMOID %d\n#define GAT_ACT_SILU %d\n#define GAT_ACT_RELU %d\n", 1 + (int)IR_FN_SIGMOID,
            1 + (int)IR_FN_SILU, 1 + (int)IR_FN_RELU);
  sb_append(o, gemm_text_actf);
  sb_append(o, gemm_text_tail);
  sb_append(o, gemm_text_seg);
}
