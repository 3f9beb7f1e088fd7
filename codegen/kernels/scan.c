/* scan.c — the chunked linear-attention scan kernels of -O2 code, written
 * once: what an LK_SCAN kernel marked by pass_chunk (scan_chunk, loopir.h)
 * calls for prefill instead of its per-token loop nest. The C backend pastes
 * this file into NAME.c (kernels_scan.c); the LLVM backend links its bitcode,
 * compiled by clang once per vector width (CMakeLists.txt, -DGAT_CS_VL
 * -DGAT_CS_FN=), and calls gat_chunk_gla / gat_chunk_delta with the arguments
 * the C backend passes, so both backends run the same code.
 *
 * Algorithm (docs/optimizer.md, "Chunked scans"): the T tokens are cut into
 * chunks of GAT_CS_C = 64. Per head and chunk the state S [K, V] is read once
 * and written once; everything inside the chunk is small matrix products done
 * by gat_cs_gemm, a register-blocked f32 product (GAT_CS_MR x 2 vectors of
 * GAT_CS_VL floats: 8 x 2 x 16 with AVX-512, 4 x 2 x 8 with AVX, 4 x 2 x 4
 * otherwise; GCC/Clang vector extensions, plain loops without them).
 *   GLA: with b the cumulative log decay inside the chunk,
 *     o = (q e^b) S0 + tril((q e^b)(k e^-b)^T) v,  S = e^b_n S0 + (k e^(b_n-b))^T v.
 *     e^-b is only safe while |b| is moderate: a chunk whose |b| exceeds 30
 *     runs the recurrence token by token instead (exact, slower).
 *   Delta rule (DeltaNet, Gated DeltaNet with a scalar decay a_t): the UT/WY
 *     form, Tm = (I + B)^-1 diag(beta) with B the strictly lower decayed
 *     beta k k^T, U = Tm (V - P K S0), O = P Q S0 + M U, S = P_n S0 + (r K)^T U.
 * f32 arithmetic with FMA contraction (the cumulative log decays in double):
 * results differ from the per-token nest by float rounding, about 1e-6
 * relative on the outputs at T = 2048 (tests/e2e/test_chunk_scan.py). Every
 * element of a gat_cs_gemm product is accumulated over k in order with one
 * rounding per multiply-add whatever the register block, so the vector width
 * does not change the bits.
 *
 * GAT_CS_FN: the entry points' linkage, static (and maybe unused) in
 * generated C; the bitcode build defines it empty so they are kept. All names
 * start with gat_cs_ / GAT_CS_ (or gat_chunk_): the text follows gemm.c's in
 * NAME.c. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define GAT_CS_C 64 /* KERNELS_SCAN_CHUNK: the workspace formulas of kernels_scan.c depend on it */
#define GAT_CS_MAXLOG 30.0 /* GLA: largest |cumulative log decay| in a chunk for the factored form */
#ifndef GAT_CS_VL /* the compiler's target macros (gattnc --target=native) */
#if defined(__AVX512F__)
#define GAT_CS_VL 16
#elif defined(__AVX__)
#define GAT_CS_VL 8
#else
#define GAT_CS_VL 4
#endif
#endif
#if (defined(__GNUC__) || defined(__clang__)) && !defined(GAT_NO_VECTOR_EXT)
#define GAT_CS_VEC 1
typedef float gat_cs_v __attribute__((vector_size(GAT_CS_VL * 4)));
typedef float gat_cs_vu __attribute__((vector_size(GAT_CS_VL * 4), aligned(4), may_alias));
#else
#define GAT_CS_VEC 0
#endif
#if defined(__GNUC__) || defined(__clang__)
#define GAT_CS_UNUSED __attribute__((unused)) /* a model may use only one of the kernels */
/* out of line: called per product and chunk (gat_cs_gemm) or per scan and prefill; one copy each */
#define GAT_CS_NOINLINE __attribute__((noinline))
#else
#define GAT_CS_UNUSED
#define GAT_CS_NOINLINE
#endif
#ifndef GAT_CS_FN
#define GAT_CS_FN static GAT_CS_UNUSED
#endif
#if defined(__GNUC__) && !defined(__clang__)
/* the row-axpy loops run for runtime N; GCC's -Waggressive-loop-optimizations guesses
 * wrongly at huge trip counts in some inlined copies */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Waggressive-loop-optimizations"
#endif
/* contraction of a*b+c into one FMA: on for the kernels only (ISO C mode turns it off) */
#if defined(__clang__) /* min_vector_width: else clang splits 512-bit vectors where the CPU prefers 256 */
#define GAT_CS_FMA_ATTR __attribute__((min_vector_width(GAT_CS_VL * 32)))
#define GAT_CS_FMA_BEGIN _Pragma("clang fp contract(fast)")
#elif defined(__GNUC__)
#define GAT_CS_FMA_ATTR __attribute__((optimize("fp-contract=fast")))
#define GAT_CS_FMA_BEGIN
#else
#define GAT_CS_FMA_ATTR
#define GAT_CS_FMA_BEGIN
#endif

/* c[M, N] = (acc ? c : 0) + a[M, Kd] . b[Kd, N]; row-major with leading dims.
 * Register block: GAT_CS_MR rows x 2 vectors of columns, column blocks outermost so
 * that one Kd x 2-vector panel of b stays in L1 while the rows of a stream past it. */
#if GAT_CS_VL == 16
#define GAT_CS_MR 8
#else
#define GAT_CS_MR 4
#endif
#if GAT_CS_VEC
#define GAT_CS_LD(p) (*(const gat_cs_vu *)(p))
#define GAT_CS_ST(p, x) (*(gat_cs_vu *)(p) = (x))
#define GAT_CS_DECL(r) gat_cs_v x##r##0 = z, x##r##1 = z; \
  const float *a##r = a + (m + r) * lda; float *c##r = c + (m + r) * ldc; \
  if (acc) { x##r##0 = GAT_CS_LD(c##r + n); x##r##1 = GAT_CS_LD(c##r + n + GAT_CS_VL); }
#define GAT_CS_FMA(r) x##r##0 += a##r[k] * b0; x##r##1 += a##r[k] * b1;
#define GAT_CS_OUT(r) GAT_CS_ST(c##r + n, x##r##0); GAT_CS_ST(c##r + n + GAT_CS_VL, x##r##1);
#if GAT_CS_MR == 8
#define GAT_CS_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#else
#define GAT_CS_ROWS(X) X(0) X(1) X(2) X(3)
#endif
#endif
static GAT_CS_UNUSED GAT_CS_NOINLINE GAT_CS_FMA_ATTR void gat_cs_gemm(int64_t M, int64_t N, int64_t Kd, const float *a,
                                                                       int64_t lda, const float *b, int64_t ldb,
                                                                       float *c, int64_t ldc, int acc) {
  GAT_CS_FMA_BEGIN
  int64_t n0 = 0;
#if GAT_CS_VEC
  const gat_cs_v z = {0};
  for (; n0 + 2 * GAT_CS_VL <= N; n0 += 2 * GAT_CS_VL) {
    const int64_t n = n0;
    int64_t m = 0;
    for (; m + GAT_CS_MR <= M; m += GAT_CS_MR) {
      GAT_CS_ROWS(GAT_CS_DECL)
      const float *bp = b + n;
      for (int64_t k = 0; k < Kd; k++, bp += ldb) {
        gat_cs_v b0 = GAT_CS_LD(bp), b1 = GAT_CS_LD(bp + GAT_CS_VL);
        GAT_CS_ROWS(GAT_CS_FMA)
      }
      GAT_CS_ROWS(GAT_CS_OUT)
    }
    for (; m < M; m++) { /* left-over rows of this column block */
      gat_cs_v x0 = z, x1 = z;
      float *cr = c + m * ldc;
      const float *ar = a + m * lda;
      if (acc) { x0 = GAT_CS_LD(cr + n); x1 = GAT_CS_LD(cr + n + GAT_CS_VL); }
      const float *bp = b + n;
      for (int64_t k = 0; k < Kd; k++, bp += ldb) {
        x0 += ar[k] * GAT_CS_LD(bp);
        x1 += ar[k] * GAT_CS_LD(bp + GAT_CS_VL);
      }
      GAT_CS_ST(cr + n, x0);
      GAT_CS_ST(cr + n + GAT_CS_VL, x1);
    }
  }
#endif
  if (n0 < N) /* left-over columns (all of them in plain C): row axpys */
    for (int64_t m = 0; m < M; m++) {
      float *cr = c + m * ldc;
      if (!acc)
        for (int64_t n = n0; n < N; n++) cr[n] = 0.0f;
      for (int64_t k = 0; k < Kd; k++) {
        float av = a[m * lda + k];
        const float *br = b + k * ldb;
        for (int64_t n = n0; n < N; n++) cr[n] += av * br[n];
      }
    }
}

/* e^x in f32 for |x| <= 87: 2^n e^r with n = round(x / ln 2), |r| <= ln 2 / 2 and a
 * degree-6 Taylor polynomial (about 2e-7 relative); plain arithmetic, so loops over
 * it vectorize. Contracted like its callers, so the bits do not depend on whether a compiler
 * inlines it. */
static inline GAT_CS_FMA_ATTR float gat_cs_exp(float x) {
  GAT_CS_FMA_BEGIN
  x = x < -87.0f ? -87.0f : (x > 87.0f ? 87.0f : x);
  float nf = x * 1.44269504f;
  nf = nf < 0.0f ? nf - 0.5f : nf + 0.5f;
  int32_t n = (int32_t)nf;
  float r = x - (float)n * 0.693145751953125f - (float)n * 1.428606765330187e-06f;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.16666667f + r * (0.041666667f + r * (0.0083333333f + r * 0.0013888889f)))));
  union { int32_t i; float f; } u;
  u.i = (n + 127) << 23;
  return p * u.f;
}

/* Workspace floats of the two kernels (pass_chunk sizes a scratch buffer with the same formula,
 * kernels_scan_ws_floats in codegen/kernels/kernels_scan.c). */
#define GAT_CS_WS_GLA(K, V) (8 * GAT_CS_C * (K) + GAT_CS_C * GAT_CS_C + 2 * (K))
#define GAT_CS_WS_DELTA(K, V) (2 * GAT_CS_C * (K) + 5 * GAT_CS_C * GAT_CS_C + 2 * GAT_CS_C * (V) + 7 * GAT_CS_C)

/* GLA: per head h, S[K, V] <- diag(e^gk_t) S + k_t v_t^T, o_t = scale S^T q_t.
 * q, k, gk [T, H, K]; v, o [T, H, V]; S [H, K, V]. Per chunk of n tokens with b_t the
 * cumulative sum of gk within the chunk (inclusive): o = (q e^b) S0 scale + tril(A) v,
 * A[t, s] = (q_t e^b_t) . (k_s e^-b_s) scale; S = diag(e^b_n) S0 + (k e^(b_n - b))^T v.
 * A chunk whose |b| exceeds GAT_CS_MAXLOG (e^-b could overflow) runs token by token. */
GAT_CS_FN GAT_CS_NOINLINE GAT_CS_FMA_ATTR void gat_chunk_gla(const float *q, const float *k, const float *v,
                                                             const float *gk, float *S, float *o, float *ws,
                                                             int64_t T, int64_t H, int64_t K, int64_t V,
                                                             float scale) {
  GAT_CS_FMA_BEGIN
  const int64_t C = GAT_CS_C;
  double *b = (double *)(void *)ws; /* [C, K]: cumulative log decay */
  float *qt = ws + 2 * C * K;       /* [C, K]: e^b, then q e^b scale */
  float *kt = qt + C * K;           /* [C, K]: k e^-b */
  float *kh = kt + C * K;           /* [C, K]: k e^(b_n - b) */
  float *ktT = kh + C * K;          /* [K, C] */
  float *khT = ktT + K * C;         /* [K, C] */
  float *A = khT + K * C;           /* [C, C] */
  float *en = A + C * C;            /* [K]: e^b_n */
  for (int64_t h = 0; h < H; h++) {
    float *Sh = S + h * K * V;
    for (int64_t c0 = 0; c0 < T; c0 += C) {
      int64_t n = T - c0 < C ? T - c0 : C;
      int ok = 1;
      for (int64_t t = 0; t < n; t++) {
        const float *g = gk + ((c0 + t) * H + h) * K;
        double *bt = b + t * K;
        const double *bp = t ? bt - K : NULL;
        int okt = 1;
        for (int64_t i = 0; i < K; i++) {
          double x = (bp ? bp[i] : 0.0) + (double)g[i];
          bt[i] = x;
          okt &= (x <= GAT_CS_MAXLOG) & (x >= -GAT_CS_MAXLOG);
        }
        ok &= okt;
      }
      if (!ok) { /* steep decays: the recurrence itself for this chunk */
        for (int64_t t = c0; t < c0 + n; t++) {
          const float *qr = q + (t * H + h) * K, *kr = k + (t * H + h) * K, *g = gk + (t * H + h) * K;
          const float *vr = v + (t * H + h) * V;
          float *orow = o + (t * H + h) * V;
          for (int64_t j = 0; j < V; j++) orow[j] = 0.0f;
          for (int64_t i = 0; i < K; i++) {
            float e = expf(g[i]), ki = kr[i], qi = qr[i] * scale;
            float *si = Sh + i * V;
            for (int64_t j = 0; j < V; j++) {
              si[j] = e * si[j] + ki * vr[j];
              orow[j] += qi * si[j];
            }
          }
        }
        continue;
      }
      for (int64_t i = 0; i < n * K; i++) qt[i] = gat_cs_exp((float)b[i]);
      for (int64_t i = 0; i < K; i++) en[i] = qt[(n - 1) * K + i];
      for (int64_t t = 0; t < n; t++) {
        const float *qr = q + ((c0 + t) * H + h) * K, *kr = k + ((c0 + t) * H + h) * K;
        float *qtr = qt + t * K, *ktr = kt + t * K, *khr = kh + t * K;
        for (int64_t i = 0; i < K; i++) {
          float ie = 1.0f / qtr[i];
          ktr[i] = kr[i] * ie;
          khr[i] = kr[i] * (en[i] * ie);
          qtr[i] = qr[i] * qtr[i] * scale;
        }
      }
      for (int64_t i = 0; i < K; i++)
        for (int64_t t = 0; t < n; t++) {
          ktT[i * C + t] = kt[t * K + i];
          khT[i * C + t] = kh[t * K + i];
        }
      const float *vr = v + (c0 * H + h) * V;
      float *orow = o + (c0 * H + h) * V;
      gat_cs_gemm(n, n, K, qt, K, ktT, C, A, C, 0);
      for (int64_t t = 0; t < n; t++)
        for (int64_t s = t + 1; s < n; s++) A[t * C + s] = 0.0f;
      gat_cs_gemm(n, V, K, qt, K, Sh, V, orow, H * V, 0);
      gat_cs_gemm(n, V, n, A, C, vr, H * V, orow, H * V, 1);
      for (int64_t i = 0; i < K; i++) {
        float e = en[i];
        float *si = Sh + i * V;
        for (int64_t j = 0; j < V; j++) si[j] *= e;
      }
      gat_cs_gemm(K, V, n, khT, C, vr, H * V, Sh, V, 1);
    }
  }
}

/* Delta rule, per q/k head h and value head c of its group of G:
 *   u_t = beta_t (v_t - a_t S^T k_t),  S <- a_t S + k_t u_t^T,  o_t = scale S^T q_t
 * (a_t = decay[t, h, c], or 1 when decay is NULL). q, k [T, H, K]; v, o [T, H, G, V];
 * beta, decay [T, H, G]; S [H, G, K, V]. Per chunk with P_t = a_1 .. a_t (inclusive) and
 * r[t, s] = P_t / P_s, the UT / WY form:
 *   U = Tm (V - diag(P) K S0),  Tm = (I + B)^-1 diag(beta),  B[t, s] = beta_t r[t, s] k_t.k_s (s < t)
 *   O = scale (diag(P) Q S0 + M U),  M[t, s] = r[t, s] q_t.k_s (s <= t)
 *   S = P_n S0 + (diag(r[n, .]) K)^T U.
 * Tm by forward substitution on the n x n matrix (about n^3/6 multiply-adds), everything else as products. */
GAT_CS_FN GAT_CS_NOINLINE GAT_CS_FMA_ATTR void gat_chunk_delta(const float *q, const float *k, const float *v,
                                                               const float *beta, const float *decay, float *S, float *o,
                                                               float *ws, int64_t T, int64_t H, int64_t G, int64_t K,
                                                               int64_t V, float scale) {
  GAT_CS_FMA_BEGIN
  const int64_t C = GAT_CS_C;
  double *lp = (double *)(void *)ws; /* [C]: cumulative log decay */
  double *ep = lp + C, *ip = ep + C; /* [C]: P_t, 1 / P_t */
  float *rn = ws + 6 * C;            /* [C]: P_n / P_s */
  float *kT = rn + C;                /* [K, C] */
  float *kdT = kT + K * C;           /* [K, C]: k P_n / P, transposed */
  float *QK = kdT + K * C;           /* [C, C] */
  float *KK = QK + C * C;            /* [C, C] */
  float *M = KK + C * C;             /* [C, C] */
  float *R = M + C * C;              /* [C, C]: r[t, s] */
  float *Tm = R + C * C;             /* [C, C] */
  float *W = Tm + C * C;             /* [C, V]: V - diag(P) K S0 */
  float *U = W + C * V;              /* [C, V] */
  const int64_t ldqk = H * K, ldv = H * G * V;
  for (int64_t h = 0; h < H; h++) {
    for (int64_t c0 = 0; c0 < T; c0 += C) {
      int64_t n = T - c0 < C ? T - c0 : C;
      const float *qr = q + (c0 * H + h) * K, *kr = k + (c0 * H + h) * K;
      for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < K; i++) kT[i * C + t] = kr[t * ldqk + i];
      gat_cs_gemm(n, n, K, qr, ldqk, kT, C, QK, C, 0);
      gat_cs_gemm(n, n, K, kr, ldqk, kT, C, KK, C, 0);
      for (int64_t g = 0; g < G; g++) {
        float *Sh = S + (h * G + g) * K * V;
        const float *vr = v + ((c0 * H + h) * G + g) * V;
        float *orow = o + ((c0 * H + h) * G + g) * V;
        const int64_t hg = h * G + g;
        double acc = 0.0;
        for (int64_t t = 0; t < n; t++) {
          if (decay) {
            float a = decay[(c0 + t) * H * G + hg];
            acc += a > 0.0f ? log((double)a) : -1e4; /* a = 0: P = 0 from here on */
          }
          lp[t] = acc;
        }
        /* r[t, s] = P_t / P_s: products of P_t and 1 / P_s unless the range is extreme */
        int far = lp[n - 1] < -600.0 || lp[n - 1] > 600.0;
        for (int64_t t = 0; t < n; t++) {
          ep[t] = exp(lp[t]);
          ip[t] = exp(-lp[t]);
        }
        for (int64_t t = 0; t < n; t++)
          for (int64_t s = 0; s <= t; s++) R[t * C + s] = (float)(far ? exp(lp[t] - lp[s]) : ep[t] * ip[s]);
        /* Tm = (I + B)^-1 diag(beta), row by row (row t of the inverse needs rows s < t) */
        for (int64_t t = 0; t < n; t++) {
          float *tr = Tm + t * C;
          for (int64_t s = 0; s < n; s++) tr[s] = s == t ? 1.0f : 0.0f;
          float bt = beta[(c0 + t) * H * G + hg];
          for (int64_t s = 0; s < t; s++) {
            float f = bt * R[t * C + s] * KK[t * C + s];
            const float *xs = Tm + s * C;
            for (int64_t u = 0; u <= s; u++) tr[u] -= f * xs[u];
          }
        }
        for (int64_t t = 0; t < n; t++)
          for (int64_t s = 0; s <= t; s++) Tm[t * C + s] *= beta[(c0 + s) * H * G + hg];
        /* W = V - diag(P) K S0; U = Tm W */
        gat_cs_gemm(n, V, K, kr, ldqk, Sh, V, W, V, 0);
        for (int64_t t = 0; t < n; t++) {
          float P = (float)ep[t];
          float *wr = W + t * V;
          const float *vt = vr + t * ldv;
          for (int64_t j = 0; j < V; j++) wr[j] = vt[j] - P * wr[j];
        }
        gat_cs_gemm(n, V, n, Tm, C, W, V, U, V, 0);
        /* O = scale (diag(P) Q S0 + M U) */
        for (int64_t t = 0; t < n; t++) {
          for (int64_t s = 0; s <= t; s++) M[t * C + s] = scale * R[t * C + s] * QK[t * C + s];
          for (int64_t s = t + 1; s < n; s++) M[t * C + s] = 0.0f;
        }
        gat_cs_gemm(n, V, K, qr, ldqk, Sh, V, orow, ldv, 0);
        for (int64_t t = 0; t < n; t++) {
          float f = scale * (float)ep[t];
          float *ot = orow + t * ldv;
          for (int64_t j = 0; j < V; j++) ot[j] *= f;
        }
        gat_cs_gemm(n, V, n, M, C, U, V, orow, ldv, 1);
        /* S = P_n S0 + (k P_n / P)^T U */
        float Pn = (float)ep[n - 1];
        for (int64_t s = 0; s < n; s++) rn[s] = R[(n - 1) * C + s];
        for (int64_t i = 0; i < K; i++) {
          for (int64_t s = 0; s < n; s++) kdT[i * C + s] = kT[i * C + s] * rn[s];
          float *si = Sh + i * V;
          for (int64_t j = 0; j < V; j++) si[j] *= Pn;
        }
        gat_cs_gemm(K, V, n, kdT, C, U, V, Sh, V, 1);
      }
    }
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
