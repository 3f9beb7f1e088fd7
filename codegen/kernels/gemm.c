/* gemm.c — the GEMM micro-kernel of -O2 code (LC_GEMM: linear layers and
 * matmuls with a weight operand), written once. The C backend pastes this
 * file into NAME.c (kernels_gemm.c, after a block that fixes, per --target,
 * GAT_VL and GAT_MR); the LLVM backend links its bitcode, compiled by clang
 * once per vector width (CMakeLists.txt, -DGAT_VL -DGAT_MR
 * -DGAT_GEMM_FN=), so both backends run the same tiles and get the same bits.
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
 * streams each packed panel once with eight accumulators. f32 accumulation
 * (fused multiply-add where the target has it); row scale, bias, activation
 * and residual are applied to each tile after its last K block
 * (sigmoid/silu with a vectorizable float exp, other activations in double),
 * rounding to f32 after each step as the unfused ops would.
 *
 * GAT_GEMM_FN: the entry points' linkage, static (and maybe unused) in
 * generated C; the bitcode build defines it empty so they are kept. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gat_runtime.h" /* gat_silu, gat_gelu_erf, ...: the double activations */

#ifndef GAT_VL /* the compiler's target macros (gattnc --target=native) */
#if defined(__AVX512F__)
#define GAT_VL 16
#define GAT_MR 12
#elif defined(__AVX__)
#define GAT_VL 8
#define GAT_MR 6
#else
#define GAT_VL 4
#define GAT_MR 6
#endif
#endif
#define GAT_NR (2 * GAT_VL) /* <= 32, the padding the arena was sized for */
#if defined(__GNUC__) || defined(__clang__)
#define GAT_MAYBE_UNUSED __attribute__((unused)) /* not every model calls every kernel */
#else
#define GAT_MAYBE_UNUSED
#endif
#ifndef GAT_GEMM_FN
#define GAT_GEMM_FN static GAT_MAYBE_UNUSED
#endif
/* Blocking: KC (a KC x GAT_NR slice of a packed panel, 32 KB at most, stays in L1 while the
 * GAT_MC rows of packed activations pass over it); GAT_MC x GAT_KC floats of A packed on the
 * stack (96 KB at most); row tails of at most GAT_ROWS rows take the GEMV path. */
#define GAT_KC 256 /* -fno-pack's scratch holds one GAT_KC x 32 slice (gattnc pass gemm) */
#define GAT_MB 8
#define GAT_MC (GAT_MR * GAT_MB)
#define GAT_APACK (GAT_MC * GAT_KC)
#define GAT_ROWS (GAT_MR / 3)
#if (defined(__GNUC__) || defined(__clang__)) && !defined(GAT_NO_VECTOR_EXT) && !defined(GAT_PORTABLE)
#define GAT_HAVE_VEC 1
typedef float gat_vf __attribute__((vector_size(GAT_VL * 4), aligned(4), may_alias));
#endif
/* contraction of a*b+c into one FMA: on for the kernels only (ISO C mode turns it off) */
#if defined(__clang__) /* min_vector_width: else clang splits the 512-bit vectors in two (-march=skylake-avx512
                          prefers 256-bit vectors) and the tile runs at half speed */
#define GAT_FMA_ATTR __attribute__((min_vector_width(GAT_VL * 32)))
#define GAT_FMA_BEGIN _Pragma("clang fp contract(fast)")
#elif defined(__GNUC__)
#define GAT_FMA_ATTR __attribute__((optimize("fp-contract=fast")))
#define GAT_FMA_BEGIN
#else
#define GAT_FMA_ATTR
#define GAT_FMA_BEGIN
#endif

/* dst = W (N x K, strides sn, sk) packed: panel p = K rows of GAT_NR floats. Folded scales
 * (gattnc pass scalefold): each element is W * scale * alpha[0] * vec[k] (1 + vec[k] when
 * vec1), rounded once; alpha / vec NULL = 1. */
GAT_GEMM_FN void gat_gemm_pack(float *dst, const float *w, int64_t N, int64_t K, int64_t sn, int64_t sk, int64_t k0,
                               int64_t kc, double scale, const float *alpha, const float *vec, int vec1) {
  (void)K; /* rows are addressed through sk */
  const double s = alpha ? scale * (double)alpha[0] : scale;
  for (int64_t j0 = 0; j0 < N; j0 += GAT_NR)
    for (int64_t k = k0; k < k0 + kc; k++) {
      const double sk_ = vec ? s * (vec1 ? 1.0 + (double)vec[k] : (double)vec[k]) : s;
      for (int64_t jj = 0; jj < GAT_NR; jj++) {
        int64_t j = j0 + jj;
        *dst++ = j < N ? (sk_ == 1.0 ? w[j * sn + k * sk] : (float)((double)w[j * sn + k * sk] * sk_)) : 0.0f;
      }
    }
}

/* a folded bias: dst[n] = b[n] * scale * alpha[0], rounded once */
GAT_GEMM_FN void gat_gemm_pack_vec(float *dst, const float *b, int64_t N, double scale, const float *alpha) {
  const double s = alpha ? scale * (double)alpha[0] : scale;
  for (int64_t j = 0; j < N; j++) dst[j] = (float)((double)b[j] * s);
}

/* rows x kc of A (rows lda apart, from column k0) into micro-panels of GAT_MR rows: panel p at
 * ap + p * GAT_MR * kc holds, for each k, the GAT_MR values of its rows (zero past `rows`), so
 * the micro-kernel broadcasts them with unit stride */
static void gat_gemm_pack_a(float *ap, const float *a, int64_t lda, int64_t rows, int64_t k0, int64_t kc) {
  for (int64_t p = 0; p < rows; p += GAT_MR) {
    const int mr = rows - p < GAT_MR ? (int)(rows - p) : GAT_MR;
    const float *ar = a + p * lda + k0;
    if (mr == GAT_MR) {
      for (int64_t k = 0; k < kc; k++)
        for (int i = 0; i < GAT_MR; i++) ap[k * GAT_MR + i] = ar[i * lda + k];
    } else {
      for (int64_t k = 0; k < kc; k++)
        for (int i = 0; i < GAT_MR; i++) ap[k * GAT_MR + i] = i < mr ? ar[i * lda + k] : 0.0f;
    }
    ap += GAT_MR * kc;
  }
}

/* c[mr x nr] (=|+=) ap[kc x GAT_MR] (a packed micro-panel) . b[kc x GAT_NR] */
static GAT_FMA_ATTR void gat_gemm_tile(int64_t kc, const float *ap, const float *b, float *c, int64_t ldc, int mr,
                                       int nr, int accumulate) {
  GAT_FMA_BEGIN
#ifdef GAT_HAVE_VEC
  gat_vf c0[GAT_MR], c1[GAT_MR];
  for (int i = 0; i < GAT_MR; i++) c0[i] = c1[i] = (gat_vf){0};
  for (int i = 0; i < mr; i++) /* the C rows this tile writes at the end */
    __builtin_prefetch(c + i * ldc, 1), __builtin_prefetch(c + i * ldc + nr - 1, 1);
  for (int64_t k = 0; k < kc; k++) {
    const gat_vf b0 = *(const gat_vf *)(b + k * GAT_NR), b1 = *(const gat_vf *)(b + k * GAT_NR + GAT_VL);
    const float *ak = ap + k * GAT_MR;
    for (int i = 0; i < GAT_MR; i++) {
      c0[i] += ak[i] * b0;
      c1[i] += ak[i] * b1;
    }
  }
  if (nr == GAT_NR) {
    for (int i = 0; i < mr; i++) {
      gat_vf *ci = (gat_vf *)(c + i * ldc);
      if (accumulate) {
        ci[0] += c0[i];
        ci[1] += c1[i];
      } else {
        ci[0] = c0[i];
        ci[1] = c1[i];
      }
    }
    return;
  }
  float t[GAT_MR][GAT_NR];
  for (int i = 0; i < GAT_MR; i++) {
    memcpy(&t[i][0], &c0[i], sizeof c0[i]);
    memcpy(&t[i][GAT_VL], &c1[i], sizeof c1[i]);
  }
#else
  float t[GAT_MR][GAT_NR];
  memset(t, 0, sizeof t);
  for (int64_t k = 0; k < kc; k++)
    for (int i = 0; i < GAT_MR; i++)
      for (int j = 0; j < GAT_NR; j++) t[i][j] += ap[k * GAT_MR + i] * b[k * GAT_NR + j];
#endif
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) c[i * ldc + j] = accumulate ? c[i * ldc + j] + t[i][j] : t[i][j];
}

/* one row: c[nr] (=|+=) a[kc] . b[kc x GAT_NR], four independent accumulators (GEMV, decode) */
static GAT_FMA_ATTR void gat_gemm_row(int64_t kc, const float *a, const float *b, float *c, int nr,
                                      int accumulate) {
  GAT_FMA_BEGIN
  float t[GAT_NR];
#ifdef GAT_HAVE_VEC
  gat_vf p0 = (gat_vf){0}, p1 = (gat_vf){0}, q0 = (gat_vf){0}, q1 = (gat_vf){0};
  gat_vf r0 = (gat_vf){0}, r1 = (gat_vf){0}, s0 = (gat_vf){0}, s1 = (gat_vf){0};
  int64_t k = 0;
  /* eight accumulators (four k in flight): with two, decode GEMVs streamed weights from memory
   * ~10% slower (more loads in flight per dependent FMA) */
  for (; k + 3 < kc; k += 4) {
    const float *bk = b + k * GAT_NR;
    p0 += a[k] * *(const gat_vf *)bk;
    p1 += a[k] * *(const gat_vf *)(bk + GAT_VL);
    q0 += a[k + 1] * *(const gat_vf *)(bk + GAT_NR);
    q1 += a[k + 1] * *(const gat_vf *)(bk + GAT_NR + GAT_VL);
    r0 += a[k + 2] * *(const gat_vf *)(bk + 2 * GAT_NR);
    r1 += a[k + 2] * *(const gat_vf *)(bk + 2 * GAT_NR + GAT_VL);
    s0 += a[k + 3] * *(const gat_vf *)(bk + 3 * GAT_NR);
    s1 += a[k + 3] * *(const gat_vf *)(bk + 3 * GAT_NR + GAT_VL);
  }
  for (; k < kc; k++) {
    p0 += a[k] * *(const gat_vf *)(b + k * GAT_NR);
    p1 += a[k] * *(const gat_vf *)(b + k * GAT_NR + GAT_VL);
  }
  p0 = (p0 + q0) + (r0 + s0);
  p1 = (p1 + q1) + (r1 + s1);
  memcpy(t, &p0, sizeof p0);
  memcpy(t + GAT_VL, &p1, sizeof p1);
#else
  memset(t, 0, sizeof t);
  for (int64_t k = 0; k < kc; k++)
    for (int j = 0; j < GAT_NR; j++) t[j] += a[k] * b[k * GAT_NR + j];
#endif
  for (int j = 0; j < nr; j++) c[j] = accumulate ? c[j] + t[j] : t[j];
}

/* epilogue activations: the `act` argument of the entry points (kernels_gemm.c maps the loop
 * IR's epilogue functions to these numbers; both backends pass them) */
enum { GAT_ACT_NONE, GAT_ACT_SILU, GAT_ACT_GELU_ERF, GAT_ACT_GELU_TANH, GAT_ACT_RELU, GAT_ACT_SIGMOID, GAT_ACT_TANH };
static float gat_gemm_act(double v, int act) {
  switch (act) {
  case GAT_ACT_SILU: return (float)gat_silu(v);
  case GAT_ACT_GELU_ERF: return (float)gat_gelu_erf(v);
  case GAT_ACT_GELU_TANH: return (float)gat_gelu_tanh(v);
  case GAT_ACT_RELU: return (float)gat_relu(v);
  case GAT_ACT_SIGMOID: return (float)gat_sigmoid(v);
  case GAT_ACT_TANH: return (float)tanh(v);
  default: return (float)v;
  }
}
/* e^x for x <= 0 in float, vectorizable (no calls): 2^n * p(r), r = x - n ln2 (Cody-Waite, |r| <=
 * ln2/2), p the degree-7 Taylor polynomial (truncation < 6e-9 relative); clamped at e^-87 */
static inline float gat_gemm_expnegf(float x) {
  x = x >= -87.0f ? x : -87.0f; /* (NaN too: no undefined float-to-int conversion) */
  const float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f; /* round(x / ln2) */
  float r = x - n * 0.693145752f;
  r = r - n * 1.42860677e-6f;
  float p = 1.98412698e-4f;
  p = p * r + 1.38888889e-3f;
  p = p * r + 8.33333333e-3f;
  p = p * r + 4.16666667e-2f;
  p = p * r + 1.66666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = ((int32_t)n + 127) * 8388608; /* 2^n as float bits (n >= -126) */
  float s;
  memcpy(&s, &bits, sizeof s);
  return p * s;
}
/* 1 / (1 + e^-x) without overflow: e = e^-|x|, then 1/(1+e) or e/(1+e) */
static inline float gat_gemm_sigmoidf(float x) {
  const float e = gat_gemm_expnegf(x < 0.0f ? x : -x);
  const float s = 1.0f / (1.0f + e);
  return x >= 0.0f ? s : x < 0.0f ? e * s : x; /* NaN stays NaN */
}

/* the epilogue of one finished tile row: row scale, bias, activation, residual, each rounded to
 * f32 as the unfused ops store (the float product or sum of two floats is the double one rounded
 * once, so these steps are exactly the unfused ones); sigmoid and silu use the vectorizable
 * float exp below (a few f32 ulps), relu is exact, the other activations are evaluated in double */
static void gat_gemm_epi(float *ci, int nr, const float *rs, const float *bias, int act, const float *ri) {
  if (rs) {
    const float r = *rs;
    for (int j = 0; j < nr; j++) ci[j] = ci[j] * r;
  }
  if (bias)
    for (int j = 0; j < nr; j++) ci[j] = ci[j] + bias[j];
  if (act == GAT_ACT_SIGMOID)
    for (int j = 0; j < nr; j++) ci[j] = gat_gemm_sigmoidf(ci[j]);
  else if (act == GAT_ACT_SILU)
    for (int j = 0; j < nr; j++) ci[j] = ci[j] * gat_gemm_sigmoidf(ci[j]);
  else if (act == GAT_ACT_RELU)
    for (int j = 0; j < nr; j++) ci[j] = ci[j] > 0.0f ? ci[j] : 0.0f;
  else if (act)
    for (int j = 0; j < nr; j++) ci[j] = gat_gemm_act((double)ci[j], act);
  if (ri)
    for (int j = 0; j < nr; j++) ci[j] = ci[j] + ri[j];
}

/* c[M, N] = epilogue(a[M, K] . W^T), rows [m0, m1) and columns [n0, n1) of it only (gattnc
 * pass block: the blocking loops around this call are loop-IR loops; m0 a multiple of GAT_MR
 * and n0 of GAT_NR, so every element is computed as by the whole call: same bits). bp: W packed
 * by gat_gemm_pack (whole K), or NULL: then each KC x GAT_NR slice of w is packed into scratch
 * on the fly (-fno-pack). rs: per-row scale (a folded RMSNorm's 1/rms) or NULL. Loop order: K
 * blocks, row blocks of GAT_MC rows (packed once into micro-panels), column panels (a KC x
 * GAT_NR slice in L1), micro-panels (GAT_MR x GAT_NR register tiles); the epilogue runs on
 * each tile after its last K block, while it is in cache. */
GAT_GEMM_FN void gat_gemm_f32_blk(float *c, const float *a, const float *bp, const float *w, int64_t sn, int64_t sk,
                                  float *scratch, const float *bias, const float *res, const float *rs, int64_t M,
                                  int64_t N, int64_t K, int act, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  float ap[GAT_APACK];
  const int epi = bias || act || res || rs;
  if (m1 > M) m1 = M;
  if (n1 > N) n1 = N;
  if (bp && m1 - m0 <= GAT_ROWS) {
    /* decode (a few rows, all on the GEMV path): panel by panel through the whole K, so the
     * packed weight is read as one sequential stream (K blocks outermost jumped between panels
     * every KC rows: ~1.3x slower when the weights come from memory). The same per-block row sums
     * added in the same order as the loop nest below: bitwise the same results. */
    for (int64_t j0 = n0; j0 < n1; j0 += GAT_NR) {
      const int nr = n1 - j0 < GAT_NR ? (int)(n1 - j0) : GAT_NR;
      const float *b = bp + (j0 / GAT_NR) * K * GAT_NR;
      for (int64_t i = m0; i < m1; i++) {
        for (int64_t k0 = 0; k0 < K; k0 += GAT_KC)
          gat_gemm_row(K - k0 < GAT_KC ? K - k0 : GAT_KC, a + i * K + k0, b + k0 * GAT_NR, c + i * N + j0, nr, k0 > 0);
        if (epi)
          gat_gemm_epi(c + i * N + j0, nr, rs ? rs + i : NULL, bias ? bias + j0 : NULL, act, res ? res + i * N + j0 : NULL);
      }
    }
    return;
  }
  for (int64_t k0 = 0; k0 < K; k0 += GAT_KC) {
    const int64_t kc = K - k0 < GAT_KC ? K - k0 : GAT_KC;
    const int last = k0 + kc == K;
    for (int64_t ic = m0; ic < m1; ic += GAT_MC) {
      const int64_t mc = m1 - ic < GAT_MC ? m1 - ic : GAT_MC;
      if (mc > GAT_ROWS) gat_gemm_pack_a(ap, a + ic * K, K, mc, k0, kc);
      for (int64_t j0 = n0; j0 < n1; j0 += GAT_NR) {
        const int nr = n1 - j0 < GAT_NR ? (int)(n1 - j0) : GAT_NR;
        const float *b;
        if (bp) {
          b = bp + (j0 / GAT_NR) * K * GAT_NR + k0 * GAT_NR;
        } else {
          gat_gemm_pack(scratch, w + j0 * sn, nr, K, sn, sk, k0, kc, 1.0, NULL, NULL, 0);
          b = scratch;
        }
        for (int64_t ir = 0; ir < mc; ir += GAT_MR) {
          const int mr = mc - ir < GAT_MR ? (int)(mc - ir) : GAT_MR;
          const int64_t i0 = ic + ir;
          if (mr <= GAT_ROWS)
            for (int i = 0; i < mr; i++) gat_gemm_row(kc, a + (i0 + i) * K + k0, b, c + (i0 + i) * N + j0, nr, k0 > 0);
          else
            gat_gemm_tile(kc, ap + ir * kc, b, c + i0 * N + j0, N, mr, nr, k0 > 0);
          if (last && epi)
            for (int i = 0; i < mr; i++)
              gat_gemm_epi(c + (i0 + i) * N + j0, nr, rs ? rs + i0 + i : NULL, bias ? bias + j0 : NULL, act,
                           res ? res + (i0 + i) * N + j0 : NULL);
        }
      }
    }
  }
}

/* the whole product: gat_gemm_f32_blk over all rows and columns */
GAT_GEMM_FN void gat_gemm_f32(float *c, const float *a, const float *bp, const float *w, int64_t sn, int64_t sk,
                              float *scratch, const float *bias, const float *res, const float *rs, int64_t M, int64_t N,
                              int64_t K, int act) {
  gat_gemm_f32_blk(c, a, bp, w, sn, sk, scratch, bias, res, rs, M, N, K, act, 0, M, 0, N);
}

/* GLU product (gattnc pass glu): c[M, N] = act(a.W^T [*rs] + bias) * (a.U^T [*rs] + biasu),
 * W and U packed. Rows in chunks of at most GAT_MCG, packed once with their whole K when that
 * fits the GAT_APACK floats of stack (else per micro-panel and K block); per chunk and column
 * panel the two products accumulate over K blocks in two GAT_MCG x GAT_NR stack tiles, so
 * neither [M, N] product is written. Rounding as the unfused ops: each step to f32.
 * gat_gemm_glu_f32_blk computes rows [m0, m1) and columns [n0, n1) only (gattnc pass block; m0 a
 * multiple of GAT_MR, n0 of GAT_NR: every micro-panel keeps its rows, so the same bits). */
#ifndef GAT_MCG
#define GAT_MCG (GAT_MR * 4)
#endif
#ifndef GAT_KCG
#define GAT_KCG 128
#endif
GAT_GEMM_FN void gat_gemm_glu_f32_blk(float *c, const float *a, const float *bw, const float *bu, const float *bias,
                                      const float *biasu, const float *rs, int64_t M, int64_t N, int64_t K, int act,
                                      int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  float ap[GAT_APACK];
  float tw[GAT_MCG * GAT_NR], tu[GAT_MCG * GAT_NR];
  int64_t mcg = (K > 0 ? GAT_APACK / K : GAT_MCG) / GAT_MR * GAT_MR;
  if (mcg > GAT_MCG) mcg = GAT_MCG;
  const int whole = mcg >= GAT_MR; /* else one micro-panel per chunk, packed per K block */
  if (!whole) mcg = GAT_MR;
  if (m1 > M) m1 = M;
  if (n1 > N) n1 = N;
  for (int64_t ic = m0; ic < m1; ic += mcg) {
    const int64_t mc = m1 - ic < mcg ? m1 - ic : mcg;
    if (whole && mc > GAT_ROWS) gat_gemm_pack_a(ap, a + ic * K, K, mc, 0, K);
    for (int64_t j0 = n0; j0 < n1; j0 += GAT_NR) {
      const int nr = n1 - j0 < GAT_NR ? (int)(n1 - j0) : GAT_NR;
      const float *pw = bw + (j0 / GAT_NR) * K * GAT_NR, *pu = bu + (j0 / GAT_NR) * K * GAT_NR;
      for (int64_t k0 = 0; k0 < K; k0 += GAT_KCG) {
        const int64_t kc = K - k0 < GAT_KCG ? K - k0 : GAT_KCG;
        for (int64_t ir = 0; ir < mc; ir += GAT_MR) {
          const int mr = mc - ir < GAT_MR ? (int)(mc - ir) : GAT_MR;
          if (mr <= GAT_ROWS) {
            for (int i = 0; i < mr; i++) {
              const float *ai = a + (ic + ir + i) * K + k0;
              gat_gemm_row(kc, ai, pw + k0 * GAT_NR, tw + (ir + i) * GAT_NR, GAT_NR, k0 > 0);
              gat_gemm_row(kc, ai, pu + k0 * GAT_NR, tu + (ir + i) * GAT_NR, GAT_NR, k0 > 0);
            }
          } else {
            const float *api = ap + ir * K + k0 * GAT_MR;
            if (!whole) {
              gat_gemm_pack_a(ap, a + (ic + ir) * K, K, mr, k0, kc);
              api = ap;
            }
            gat_gemm_tile(kc, api, pw + k0 * GAT_NR, tw + ir * GAT_NR, GAT_NR, mr, GAT_NR, k0 > 0);
            gat_gemm_tile(kc, api, pu + k0 * GAT_NR, tu + ir * GAT_NR, GAT_NR, mr, GAT_NR, k0 > 0);
          }
        }
      }
      for (int64_t i = 0; i < mc; i++) {
        const float *r = rs ? rs + ic + i : NULL;
        float *wi = tw + i * GAT_NR, *ui = tu + i * GAT_NR, *ci = c + (ic + i) * N + j0;
        gat_gemm_epi(wi, nr, r, bias ? bias + j0 : NULL, act, NULL);
        gat_gemm_epi(ui, nr, r, biasu ? biasu + j0 : NULL, 0, NULL);
        for (int j = 0; j < nr; j++) ci[j] = wi[j] * ui[j];
      }
    }
  }
}
/* all rows and columns: gat_gemm_glu_f32_blk over [0, M) x [0, N) */
GAT_GEMM_FN void gat_gemm_glu_f32(float *c, const float *a, const float *bw, const float *bu, const float *bias,
                                  const float *biasu, const float *rs, int64_t M, int64_t N, int64_t K, int act) {
  gat_gemm_glu_f32_blk(c, a, bw, bu, bias, biasu, rs, M, N, K, act, 0, M, 0, N);
}

/* Segmented GEMM (gattnc pass concat): several packed weights that read the same a (and row
 * scale) as one call; segment s writes its own c[M, N_s] with its own epilogue. Loop order as
 * gat_gemm_f32 with the segments' panels one after another: a row block of a is packed once per
 * K block for all segments, and every value is computed by the same tile / row / epilogue code
 * as a separate gat_gemm_f32 call (bitwise). mul (pass gate): the epilogue multiplies by
 * mul[m, n] after the activation (c = act(..) * y, rounded to f32), before the residual.
 * gat_gemm_seg_f32_blk computes rows [m0, m1) only (gattnc pass block; m0 a multiple of GAT_MR:
 * the same bits as the whole call). */
typedef struct gat_gemm_seg {
  float *c;
  const float *bp, *bias, *res, *mul;
  int64_t N;
  int act;
} gat_gemm_seg;
GAT_GEMM_FN void gat_gemm_seg_f32_blk(const float *a, const float *rs, int64_t M, int64_t K, const gat_gemm_seg *sg,
                                      int nseg, int64_t m0, int64_t m1) {
  if (m1 > M) m1 = M;
  if (m1 - m0 == 1 && (nseg > 1 || sg->N > GAT_NR)) {
    /* decode: segment by segment and panel by panel through the whole K, so each packed weight is
     * read as one sequential stream (K blocks outermost jump between panels every GAT_KC rows:
     * ~1.3x slower from memory); each panel by the code below as a one-panel segment: bitwise */
    for (int s = 0; s < nseg; s++)
      for (int64_t j0 = 0; j0 < sg[s].N; j0 += GAT_NR) {
        gat_gemm_seg p = sg[s]; /* row m0, columns j0 .. j0 + p.N: its own one-row segment */
        const int64_t at = m0 * sg[s].N + j0;
        p.c += at;
        p.bp += (j0 / GAT_NR) * K * GAT_NR;
        if (p.bias) p.bias += j0;
        if (p.res) p.res += at;
        if (p.mul) p.mul += at;
        p.N = sg[s].N - j0 < GAT_NR ? sg[s].N - j0 : GAT_NR;
        gat_gemm_seg_f32_blk(a + m0 * K, rs ? rs + m0 : NULL, 1, K, &p, 1, 0, 1);
      }
    return;
  }
  if (m1 - m0 <= GAT_ROWS && nseg > 1) { /* GEMV (decode): nothing to share, and K blocks across the
                                      segments' weights measured ~10% slower than one at a time */
    for (int s = 0; s < nseg; s++) gat_gemm_seg_f32_blk(a, rs, M, K, sg + s, 1, m0, m1);
    return;
  }
  float ap[GAT_APACK];
  for (int64_t k0 = 0; k0 < K; k0 += GAT_KC) {
    const int64_t kc = K - k0 < GAT_KC ? K - k0 : GAT_KC;
    const int last = k0 + kc == K;
    for (int64_t ic = m0; ic < m1; ic += GAT_MC) {
      const int64_t mc = m1 - ic < GAT_MC ? m1 - ic : GAT_MC;
      if (mc > GAT_ROWS) gat_gemm_pack_a(ap, a + ic * K, K, mc, k0, kc);
      for (int s = 0; s < nseg; s++) {
        const gat_gemm_seg *g = sg + s;
        const int64_t N = g->N;
        const int epi = rs || g->bias || g->act || g->res || g->mul;
        for (int64_t j0 = 0; j0 < N; j0 += GAT_NR) {
          const int nr = N - j0 < GAT_NR ? (int)(N - j0) : GAT_NR;
          const float *b = g->bp + (j0 / GAT_NR) * K * GAT_NR + k0 * GAT_NR;
          for (int64_t ir = 0; ir < mc; ir += GAT_MR) {
            const int mr = mc - ir < GAT_MR ? (int)(mc - ir) : GAT_MR;
            const int64_t i0 = ic + ir;
            if (mr <= GAT_ROWS)
              for (int i = 0; i < mr; i++) gat_gemm_row(kc, a + (i0 + i) * K + k0, b, g->c + (i0 + i) * N + j0, nr, k0 > 0);
            else
              gat_gemm_tile(kc, ap + ir * kc, b, g->c + i0 * N + j0, N, mr, nr, k0 > 0);
            if (last && epi)
              for (int i = 0; i < mr; i++) {
                float *ci = g->c + (i0 + i) * N + j0;
                gat_gemm_epi(ci, nr, rs ? rs + i0 + i : NULL, g->bias ? g->bias + j0 : NULL, g->act, NULL);
                if (g->mul) {
                  const float *yi = g->mul + (i0 + i) * N + j0;
                  for (int j = 0; j < nr; j++) ci[j] = ci[j] * yi[j];
                }
                if (g->res) {
                  const float *ri = g->res + (i0 + i) * N + j0;
                  for (int j = 0; j < nr; j++) ci[j] = ci[j] + ri[j];
                }
              }
          }
        }
      }
    }
  }
}

/* all rows: gat_gemm_seg_f32_blk over [0, M) */
GAT_GEMM_FN void gat_gemm_seg_f32(const float *a, const float *rs, int64_t M, int64_t K, const gat_gemm_seg *sg,
                                  int nseg) {
  gat_gemm_seg_f32_blk(a, rs, M, K, sg, nseg, 0, M);
}
