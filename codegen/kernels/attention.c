/* attention.c — the flash-style attention kernel of -O2 code (LC_ATTENTION
 * calls marked attn_fast by pass_attention; loopir.h), written once. The C
 * backend pastes this file into NAME.c (kernels_attention.c): the support
 * code once, then the part after the "per variant" line once per head-dim
 * pair and feature set in use, with GAT_FA_DK, GAT_FA_DV, GAT_FA_POS,
 * GAT_FA_REL and the name macro GAT_FA_NAME #defined around it, so each copy
 * has constant dims (the d loops unroll, the accumulators stay in registers)
 * and no code for features it lacks. The LLVM backend links its bitcode,
 * compiled by clang once per vector width with -DGAT_FA_GENERIC (CMakeLists.txt):
 * then the dims and features are parameters of gat_flash_attn, which
 * ll_link_kernels renames per variant and replaces by constants before the
 * module's optimizer runs, so both backends run the same tiles and get the
 * same bits. Stack arrays sized by the dims take, in the generic build, the
 * size of the largest variant (no VLA; at most 96 KB with 16-float vectors).
 *
 * Same semantics as the runtime's gat_k_attention (new K/V rows appended to
 * the caches at pos0 .. pos0+T-1 first, causal softmax over cached keys, GQA,
 * window, qb/kb biases) in f32: online softmax over key blocks, no T x T buffer.
 *
 * Algorithm: per head, the queries are taken in tiles of QT = NV vector
 * widths (NV = 4 with AVX-512: 64 queries; else 2; heads above 128 keep 2 so
 * the stack blocks stay small). A tile holds its queries in vector lanes (q
 * transposed into a DK x QT block on the stack), walks the visible keys in
 * blocks of KB (64; 32 or 16 for heads above 64 or 128) and keeps a running
 * max m, sum l and output O (DV x QT, transposed) per lane: per block,
 * S = q.k (register block of KR keys x NV lane vectors, the key element
 * broadcast, like the GEMM micro-kernel), then scale + qb + kb, the
 * causal/window mask (only in blocks that need it), the new max,
 * alpha = e^(m_old - m_new), P = e^(S - m_new), l = l alpha + sum P,
 * O = O alpha + P.V (register block of KR value columns x NV lane vectors;
 * with NV = 4 the block's V rows are first packed contiguously, because in
 * the cache they are Hkv * DV floats apart and the column-group walk down
 * the rows would thrash a few L1 sets). The lane layout makes every softmax
 * step lane-wise (no horizontal reductions) and needs no transposition of
 * the K/V caches. Fewer than QT/3 + 1 queries left (decode, small steps): one
 * query at a time, vectorized along the head dimension with the output row
 * in registers. e^x is a polynomial (about 1e-7 relative) so it vectorizes.
 *
 * Features (kernels_attention.h): GAT_FA_POS, per-row positions
 * (gat_attn_args.pos, GateSkip's `kv: previous`; a tile's key range spans
 * its lanes' smallest to largest position); GAT_FA_REL, a relative-position
 * bias (relbias, Mega). Accumulation is f32 with fused multiply-adds written
 * out (GAT_FA_FMA below: the same bits from gcc, clang and the LLVM backend);
 * -O0/-O1 (and -fno-tile) keep the double-accumulating reference kernel. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gat_runtime.h" /* gat_attn_args */

#ifndef GAT_FA_VL /* the compiler's target macros */
#if defined(__AVX512F__)
#define GAT_FA_VL 16 /* 4 x 4 = 16 of the 32 registers accumulate */
#define GAT_FA_NV 4
#define GAT_FA_KR 4
#elif defined(__AVX__)
#define GAT_FA_VL 8
#define GAT_FA_NV 2
#define GAT_FA_KR 6
#else
#define GAT_FA_VL 4
#define GAT_FA_NV 2
#define GAT_FA_KR 4
#endif
#endif
#define GAT_FA_KB 64
#define GAT_FA_MAXD 256 /* KERNELS_ATTENTION_MAX_D */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(GAT_NO_VECTOR_EXT)
#define GAT_FA_VEC 1
typedef float gat_fa_v __attribute__((vector_size(GAT_FA_VL * 4)));
typedef int32_t gat_fa_vi __attribute__((vector_size(GAT_FA_VL * 4)));
typedef float gat_fa_vu __attribute__((vector_size(GAT_FA_VL * 4), aligned(4), may_alias));
#else
#undef GAT_FA_VL
#define GAT_FA_VL 1 /* plain C: a "vector" is one float */
typedef float gat_fa_v;
#endif
/* lane vectors per prefill tile for head dims up to dm: at most 2 above 128 (the tile's
 * transposed q and o blocks live on the stack) */
#define GAT_FA_NV_FOR(dm) ((dm) > 128 && GAT_FA_NV > 2 ? 2 : GAT_FA_NV)
/* keys per block: the block's scores and its packed V rows stay within 16 KB each */
#define GAT_FA_KB_FOR(dm) ((dm) <= 64 ? GAT_FA_KB : (dm) <= 128 ? GAT_FA_KB / 2 : GAT_FA_KB / 4)
#if defined(__GNUC__) || defined(__clang__)
#define GAT_FA_UNUSED __attribute__((unused)) /* not every model has every head size */
#else
#define GAT_FA_UNUSED
#endif
/* Multiply-adds are written out, never left to the compiler's contraction: GAT_FA_FMA(a, b, c)
 * (vectors; a or b may be a float) and GAT_FA_FMAS (floats) are a * b + c rounded once where
 * the target has FMA instructions and rounded twice where it has none, and no other a * b + c
 * is fused. Contraction decides per compiler which of the products feeding one sum it fuses
 * (gcc and clang chose differently in o = o alpha + p.V), so with it on, the C backend built by
 * gcc and the LLVM backend's bitcode built by clang gave different last bits; written out,
 * gcc, clang and the LLVM backend compute the same bits.
 * - clang: contract(on) fuses exactly the a * b + c written as one expression (llvm.fmuladd:
 *   an FMA on targets that have one), and every such expression in this file is a GAT_FA_FMA.
 *   min_vector_width: else clang may split 512-bit vectors in two.
 * - gcc (no contract(on)): contraction off, the FMA instructions by name where the target
 *   has them.
 *   Whether it has them is __FP_FAST_FMAF (also set for -mavx512f alone, FMA4 and other
 *   architectures); then the x86 intrinsics of the vector width, else a lane-by-lane fmaf
 *   that gcc vectorizes back. */
#define GAT_FA_V(x) ((x) - (gat_fa_v){0}) /* a float or vector as a vector, exactly (x - 0 == x, -0 too) */
#if defined(__clang__) && defined(GAT_FA_VEC)
#define GAT_FA_FMA_ATTR __attribute__((min_vector_width(GAT_FA_VL * 32)))
#define GAT_FA_FMA_BEGIN _Pragma("clang fp contract(on)")
#define GAT_FA_FMA(a, b, c) ((a) * (b) + (c))
#define GAT_FA_FMAS(a, b, c) ((a) * (b) + (c))
#elif defined(__GNUC__) && defined(GAT_FA_VEC)
#define GAT_FA_FMA_ATTR __attribute__((optimize("fp-contract=off")))
#define GAT_FA_FMA_BEGIN
#if defined(__FP_FAST_FMAF) /* gcc: the target has a fused multiply-add for floats */
#if (GAT_FA_VL == 16 && defined(__AVX512F__)) || ((GAT_FA_VL == 8 || GAT_FA_VL == 4) && defined(__FMA__))
#include <immintrin.h>
#endif
#if GAT_FA_VL == 16 && defined(__AVX512F__)
#define GAT_FA_FMA(a, b, c) ((gat_fa_v)_mm512_fmadd_ps(GAT_FA_V(a), GAT_FA_V(b), GAT_FA_V(c)))
#elif GAT_FA_VL == 8 && defined(__FMA__)
#define GAT_FA_FMA(a, b, c) ((gat_fa_v)_mm256_fmadd_ps(GAT_FA_V(a), GAT_FA_V(b), GAT_FA_V(c)))
#elif GAT_FA_VL == 4 && defined(__FMA__)
#define GAT_FA_FMA(a, b, c) ((gat_fa_v)_mm_fmadd_ps(GAT_FA_V(a), GAT_FA_V(b), GAT_FA_V(c)))
#else /* FMA4, other architectures: lane by lane, which gcc turns back into vector FMAs */
#define GAT_FA_FMA(a, b, c) gat_fa_fma_lanes(GAT_FA_V(a), GAT_FA_V(b), GAT_FA_V(c))
#define GAT_FA_FMA_LANES 1
#endif
#define GAT_FA_FMAS(a, b, c) __builtin_fmaf(a, b, c)
#else /* no FMA instructions: multiply, round, add */
#define GAT_FA_FMA(a, b, c) ((a) * (b) + (c))
#define GAT_FA_FMAS(a, b, c) ((a) * (b) + (c))
#endif
#else /* other compilers, plain C: whatever the compiler's contraction rule is */
#define GAT_FA_FMA_ATTR
#define GAT_FA_FMA_BEGIN
#define GAT_FA_FMA(a, b, c) ((a) * (b) + (c))
#define GAT_FA_FMAS(a, b, c) ((a) * (b) + (c))
#endif
/* The variant: constants in the C build (enums, so arrays keep constant sizes); parameters
 * of every function in the generic (bitcode) build, where GAT_FA_SZ(n, max) sizes an array
 * for the largest variant. */
#ifdef GAT_FA_GENERIC
#define GAT_FA_PARAMS , const int gat_fa_dk, const int gat_fa_dv, const int gat_fa_fe
#define GAT_FA_PASS , gat_fa_dk, gat_fa_dv, gat_fa_fe
#define GAT_FA_CONST(name, value) const int name = (value)
#define GAT_FA_SZ(n, max) (max)
#define GAT_FA_ENTRY __attribute__((noinline)) /* external: ll_link_kernels renames it per variant; its
                                                    own function, so profiles and tests see the variant */
#else
#define GAT_FA_PARAMS
#define GAT_FA_PASS
#define GAT_FA_CONST(name, value) enum { name = (value) }
#define GAT_FA_SZ(n, max) (n)
#define GAT_FA_ENTRY static GAT_FA_UNUSED
#endif

/* software prefetch of a row slice (cache rows of one head are a page or more apart, past
 * the reach of the hardware prefetchers) */
#if defined(__GNUC__) || defined(__clang__)
#define GAT_FA_PREFETCH(p, n)                                                        \
  do {                                                                               \
    for (int pf_ = 0; pf_ < (n); pf_ += 16) __builtin_prefetch((const float *)(p) + pf_); \
  } while (0)
#else
#define GAT_FA_PREFETCH(p, n) ((void)0)
#endif

static inline GAT_FA_FMA_ATTR gat_fa_v gat_fa_splat(float x) { return GAT_FA_V(x); }
#ifdef GAT_FA_FMA_LANES
static inline GAT_FA_FMA_ATTR gat_fa_v gat_fa_fma_lanes(gat_fa_v a, gat_fa_v b, gat_fa_v c) {
  for (int l = 0; l < GAT_FA_VL; l++) c[l] = __builtin_fmaf(a[l], b[l], c[l]);
  return c;
}
#endif

/* e^x for x <= 0 (-inf allowed), lane-wise; 0 below -87 (where e^x < 2^-125).
 * 2^n * p(r), n = round(x log2 e), r = x - n ln 2 (two-part), p of degree 7:
 * about 1e-7 relative. */
static inline GAT_FA_FMA_ATTR gat_fa_v gat_fa_exp(gat_fa_v x) {
  GAT_FA_FMA_BEGIN
#ifdef GAT_FA_VEC
  const gat_fa_v lo = gat_fa_splat(-87.0f);
  const gat_fa_vi small = x < lo;
  x = (gat_fa_v)(((gat_fa_vi)x & ~small) | ((gat_fa_vi)lo & small));
  const gat_fa_v t = GAT_FA_FMA(x, 1.44269504088896341f, 12582912.0f); /* 1.5 * 2^23: rounds to an integer */
  const gat_fa_v n = t - 12582912.0f;
  gat_fa_v r = GAT_FA_FMA(n, -0.693145751953125f, x);
  r = GAT_FA_FMA(n, -1.428606765330187e-06f, r);
  gat_fa_v p = gat_fa_splat(1.0f / 5040);
  p = GAT_FA_FMA(p, r, 1.0f / 720);
  p = GAT_FA_FMA(p, r, 1.0f / 120);
  p = GAT_FA_FMA(p, r, 1.0f / 24);
  p = GAT_FA_FMA(p, r, 1.0f / 6);
  p = GAT_FA_FMA(p, r, 0.5f);
  p = GAT_FA_FMA(p, r, 1.0f);
  p = GAT_FA_FMA(p, r, 1.0f);
  const gat_fa_vi e = (((gat_fa_vi)t - 0x4B400000) + 127) << 23;
  p = p * (gat_fa_v)e;
  return (gat_fa_v)((gat_fa_vi)p & ~small);
#else
  return x < -87.0f ? 0.0f : expf(x);
#endif
}

static inline GAT_FA_FMA_ATTR gat_fa_v gat_fa_max(gat_fa_v a, gat_fa_v b) {
#ifdef GAT_FA_VEC
  const gat_fa_vi m = a > b;
  return (gat_fa_v)(((gat_fa_vi)a & m) | ((gat_fa_vi)b & ~m));
#else
  return a > b ? a : b;
#endif
}

/* s where key j is visible from query i (j <= i, and i - w < j when w > 0), else -inf */
static inline GAT_FA_FMA_ATTR gat_fa_v gat_fa_mask(gat_fa_v s, float j, gat_fa_v i, float w) {
#ifdef GAT_FA_VEC
  const gat_fa_v jv = gat_fa_splat(j);
  gat_fa_vi vis = jv <= i;
  if (w > 0) vis &= i - w < jv;
  return (gat_fa_v)(((gat_fa_vi)s & vis) | ((gat_fa_vi)gat_fa_splat(-INFINITY) & ~vis));
#else
  return j <= i && (w <= 0 || i - w < j) ? s : -INFINITY;
#endif
}

/* the sum of the lanes: halves added until 4 lanes are left */
static inline GAT_FA_FMA_ATTR float gat_fa_hsum(gat_fa_v v) {
#if defined(GAT_FA_VEC) && GAT_FA_VL >= 4
  typedef float gat_fa_v4 __attribute__((vector_size(16)));
#if GAT_FA_VL == 16
  typedef float gat_fa_v8 __attribute__((vector_size(32)));
  gat_fa_v8 a, b;
  memcpy(&a, &v, sizeof a);
  memcpy(&b, (const char *)&v + sizeof a, sizeof b);
  a += b;
#else
  gat_fa_v a = v;
#endif
#if GAT_FA_VL >= 8
  gat_fa_v4 c, d;
  memcpy(&c, &a, sizeof c);
  memcpy(&d, (const char *)&a + sizeof c, sizeof d);
  c += d;
#else
  gat_fa_v4 c = a;
#endif
  return (c[0] + c[2]) + (c[1] + c[3]);
#else
  float t[GAT_FA_VL], s = 0;
  memcpy(t, &v, sizeof t);
  for (int l = 0; l < GAT_FA_VL; l++) s += t[l];
  return s;
#endif
}

/* the reference's cache append: rows pos0 .. pos0+T-1 of cache_k, cache_v (and cache_kb) */
static GAT_FA_UNUSED void gat_fa_append(const gat_attn_args *a) {
  for (int64_t t = 0; t < a->T; t++) {
    memcpy(a->cache_k + (a->pos0 + t) * a->Hkv * a->dk, a->k + t * a->Hkv * a->dk,
           sizeof(float) * (size_t)(a->Hkv * a->dk));
    memcpy(a->cache_v + (a->pos0 + t) * a->Hkv * a->dv, a->v + t * a->Hkv * a->dv,
           sizeof(float) * (size_t)(a->Hkv * a->dv));
    if (a->kb && a->cache_kb)
      memcpy(a->cache_kb + (a->pos0 + t) * a->H, a->kb + t * a->H, sizeof(float) * (size_t)a->H);
  }
}


/* the reference's cache append with per-row positions: row t at cache row pos[t] */
static GAT_FA_UNUSED void gat_fa_append_pos(const gat_attn_args *a) {
  for (int64_t t = 0; t < a->T; t++) {
    const int64_t p = a->pos[t];
    memcpy(a->cache_k + p * a->Hkv * a->dk, a->k + t * a->Hkv * a->dk, sizeof(float) * (size_t)(a->Hkv * a->dk));
    memcpy(a->cache_v + p * a->Hkv * a->dv, a->v + t * a->Hkv * a->dv, sizeof(float) * (size_t)(a->Hkv * a->dv));
    if (a->kb && a->cache_kb) memcpy(a->cache_kb + p * a->H, a->kb + t * a->H, sizeof(float) * (size_t)a->H);
  }
}


/* What one call of a variant's entry does (its `part`; kernels_attention.h has the same values):
 * the whole attention (append this call's K/V rows to the caches, then every head), the
 * append alone, or heads h0 .. h1-1 of rows already appended. pass block splits an attention
 * into an append and a loop over heads (loopir.h attn_part); a head reads only its own q rows,
 * the caches and writes its own out columns, so heads are independent once appended. */
#define GAT_FA_WHOLE 0
#define GAT_FA_APPEND 1
#define GAT_FA_HEADS 2

/* ---- per variant: GAT_FA_DK, GAT_FA_DV, GAT_FA_POS, GAT_FA_REL, GAT_FA_NAME ---- */
#ifdef GAT_FA_GENERIC
#define GAT_FA_DK gat_fa_dk
#define GAT_FA_DV gat_fa_dv
#define GAT_FA_POS ((gat_fa_fe & 1) != 0)
#define GAT_FA_REL ((gat_fa_fe & 2) != 0)
#define GAT_FA_NAME(n) n
#endif

/* o = o * alpha + p.V for one key block of a tile: the tile's transposed output ot, its
 * probabilities st (nk keys), the block's V rows vb, ldvb apart */
static inline GAT_FA_FMA_ATTR void GAT_FA_NAME(gat_fa_pv)(gat_fa_v *ot, const gat_fa_v *st, const gat_fa_v *alpha,
                                                         const float *vb, int64_t ldvb, int nk GAT_FA_PARAMS) {
  GAT_FA_FMA_BEGIN
  GAT_FA_CONST(DK, GAT_FA_DK);
  GAT_FA_CONST(DV, GAT_FA_DV);
  GAT_FA_CONST(DM, (int)DK > (int)DV ? (int)DK : (int)DV);
  GAT_FA_CONST(NV, GAT_FA_NV_FOR(DM));
  enum { KR = GAT_FA_KR, NVM = GAT_FA_NV };
  /* o = o * alpha + p.V: KR values x NV lane vectors of accumulators */
  GAT_FA_CONST(EF, DV - DV % KR);
  for (int e0 = 0; e0 < EF; e0 += KR) {
    gat_fa_v c[KR][GAT_FA_SZ(NV, NVM)];
    for (int r = 0; r < KR; r++)
      for (int v = 0; v < NV; v++) c[r][v] = ot[(e0 + r) * NV + v] * alpha[v];
    const float *vp = vb + e0;
    for (int jj = 0; jj < nk; jj++, vp += ldvb) {
      gat_fa_v pj[GAT_FA_SZ(NV, NVM)];
      for (int v = 0; v < NV; v++) pj[v] = st[jj * NV + v];
      for (int r = 0; r < KR; r++) {
        const float vr = vp[r];
        for (int v = 0; v < NV; v++) c[r][v] = GAT_FA_FMA(vr, pj[v], c[r][v]);
      }
    }
    for (int r = 0; r < KR; r++)
      for (int v = 0; v < NV; v++) ot[(e0 + r) * NV + v] = c[r][v];
  }
  if ((int)EF < (int)DV) {
    gat_fa_v c[KR][GAT_FA_SZ(NV, NVM)];
    for (int r = 0; r < DV - EF; r++)
      for (int v = 0; v < NV; v++) c[r][v] = ot[(EF + r) * NV + v] * alpha[v];
    const float *vp = vb + EF;
    for (int jj = 0; jj < nk; jj++, vp += ldvb)
      for (int r = 0; r < DV - EF; r++) {
        const float vr = vp[r];
        for (int v = 0; v < NV; v++) c[r][v] = GAT_FA_FMA(vr, st[jj * NV + v], c[r][v]);
      }
    for (int r = 0; r < DV - EF; r++)
      for (int v = 0; v < NV; v++) ot[(EF + r) * NV + v] = c[r][v];
  }
}

/* one tile: queries t0 .. t0+nq-1 (nq <= QT) of head h, in lanes (NV lane vectors) */
static GAT_FA_FMA_ATTR void GAT_FA_NAME(gat_fa_tile)(const gat_attn_args *a, int64_t h, int64_t t0,
                                                       int nq GAT_FA_PARAMS) {
  GAT_FA_FMA_BEGIN
  GAT_FA_CONST(DK, GAT_FA_DK);
  GAT_FA_CONST(DV, GAT_FA_DV);
  GAT_FA_CONST(DM, (int)DK > (int)DV ? (int)DK : (int)DV);
  GAT_FA_CONST(KB, GAT_FA_KB_FOR(DM));
  GAT_FA_CONST(NV, GAT_FA_NV_FOR(DM));
  GAT_FA_CONST(QT, NV * GAT_FA_VL);
  /* with 4 lane vectors per tile (AVX-512) the block's V rows of head hk are packed
   * contiguously first: in the cache they are Hkv * DV floats apart, and the p.V loop, which
   * walks one column group down all the rows, then hits a handful of L1 sets; with fewer
   * queries per tile the copy costs more than it saves */
  GAT_FA_CONST(PACKV, NV >= 4);
  enum { KR = GAT_FA_KR, NVM = GAT_FA_NV, QTM = GAT_FA_NV * GAT_FA_VL };
  const int64_t H = a->H, hk = h / (H / a->Hkv), ldk = a->Hkv * DK, ldv = a->Hkv * DV;
  const int32_t *ps = GAT_FA_POS ? a->pos + t0 : NULL; /* the rows' positions: lanes need not be contiguous */
  int64_t ifirst = a->pos0 + t0, ilast = a->pos0 + t0 + nq - 1;
  if (GAT_FA_POS) {
    ifirst = ilast = ps[0];
    for (int x = 1; x < nq; x++) {
      ifirst = ps[x] < ifirst ? ps[x] : ifirst;
      ilast = ps[x] > ilast ? ps[x] : ilast;
    }
  }
  const float *rb = a->relbias;
  const int64_t rbl = a->relbias_len, rbc = (rbl - 1) / 2; /* bias of (i, j): rb[clamp(rbc + j - i)] */
  const float scale = (float)a->scale, w = (float)a->window;
  const float *kbc = a->kb && a->cache_kb ? a->cache_kb + h : NULL;
  /* the queries, transposed: lane l of vector v = query t0 + v VL + l at qt[d * NV + v] (the
   * largest variant: DM * NV <= 512) */
  gat_fa_v qt[GAT_FA_SZ(DK * NV, 2 * GAT_FA_MAXD)];
  gat_fa_v ot[GAT_FA_SZ(DV * NV, 2 * GAT_FA_MAXD)]; /* output accumulators, transposed likewise */
  gat_fa_v st[GAT_FA_SZ(KB * NV, GAT_FA_KB * NVM)]; /* scores, then probabilities, of one key block */
  float vbuf[GAT_FA_SZ(PACKV ? KB * DV : 1, NVM >= 4 ? 64 * GAT_FA_KB : 1)]; /* packed V rows, DV apart */
  gat_fa_v iv[GAT_FA_SZ(NV, NVM)], qbv[GAT_FA_SZ(NV, NVM)], m[GAT_FA_SZ(NV, NVM)], l[GAT_FA_SZ(NV, NVM)];
  float tmp[GAT_FA_SZ(QT, QTM)];
  int64_t rbo[GAT_FA_SZ(QT, QTM)];                     /* positions and a bias: per lane, rbc - i */
  float rbt[GAT_FA_SZ(QT + KB - 1, QTM + GAT_FA_KB - 1)]; /* a bias: one key block's biases, lane x,
                                                           key jj at rbt[KB - 1 - jj + x] */
  { /* row by row: contiguous reads of q, strided writes into L1 */
    float *qf = (float *)qt;
    for (int x = 0; x < QT; x++) {
      const float *qr = a->q + ((t0 + (x < nq ? x : 0)) * H + h) * DK;
      for (int d = 0; d < DK; d++) qf[d * QT + x] = x < nq ? qr[d] : 0.0f;
    }
  }
  if (GAT_FA_POS)
    for (int x = 0; x < QT; x++) tmp[x] = (float)ps[x < nq ? x : nq - 1];
  else
    for (int x = 0; x < QT; x++) tmp[x] = (float)(ifirst + (x < nq ? x : nq - 1));
  if (GAT_FA_POS && GAT_FA_REL)
    for (int x = 0; x < QT; x++) rbo[x] = rbc - ps[x < nq ? x : nq - 1];
  memcpy(iv, tmp, sizeof(float) * QT);
  for (int x = 0; x < QT; x++) tmp[x] = a->qb ? a->qb[(t0 + (x < nq ? x : nq - 1)) * H + h] : 0.0f;
  memcpy(qbv, tmp, sizeof(float) * QT);
  for (int v = 0; v < NV; v++) {
    m[v] = gat_fa_splat(-1e30f); /* finite: no inf - inf before the first visible key */
    l[v] = gat_fa_splat(0.0f);
  }
  for (int e = 0; e < DV; e++)
    for (int v = 0; v < NV; v++) ot[e * NV + v] = gat_fa_splat(0.0f);
  const int64_t jlo = a->window > 0 && ifirst - a->window + 1 > 0 ? ifirst - a->window + 1 : 0;
  for (int64_t j0 = jlo; j0 <= ilast; j0 += KB) {
    const int nk = ilast + 1 - j0 < KB ? (int)(ilast + 1 - j0) : KB;
    const float *vb = a->cache_v + j0 * ldv + hk * DV; /* the block's V rows, ldvb apart */
    int64_t ldvb = ldv;
    if (PACKV) {
      for (int jj = 0; jj < nk; jj++) memcpy(vbuf + jj * DV, vb + jj * ldv, sizeof(float) * DV);
      vb = vbuf;
      ldvb = DV;
    }
    /* raw scores q.k: KR keys x NV lane vectors of accumulators */
    for (int jj = 0; jj < nk; jj += KR) {
      const int kr = nk - jj < KR ? nk - jj : KR;
      const float *kp[KR];
      for (int r = 0; r < KR; r++) kp[r] = a->cache_k + (j0 + jj + (r < kr ? r : kr - 1)) * ldk + hk * DK;
      gat_fa_v c[KR][GAT_FA_SZ(NV, NVM)];
      for (int r = 0; r < KR; r++)
        for (int v = 0; v < NV; v++) c[r][v] = gat_fa_splat(0.0f);
      for (int d = 0; d < DK; d++) {
        gat_fa_v qd[GAT_FA_SZ(NV, NVM)];
        for (int v = 0; v < NV; v++) qd[v] = qt[d * NV + v];
        for (int r = 0; r < KR; r++) {
          const float kd = kp[r][d];
          for (int v = 0; v < NV; v++) c[r][v] = GAT_FA_FMA(kd, qd[v], c[r][v]);
        }
      }
      for (int r = 0; r < kr; r++)
        for (int v = 0; v < NV; v++) st[(jj + r) * NV + v] = c[r][v];
    }
    /* scale, biases, mask; the block's running max */
    const int need_mask = j0 + nk - 1 > ifirst || (a->window > 0 && j0 <= ilast - a->window);
    if (!GAT_FA_POS && GAT_FA_REL)
      for (int k = 0; k < QT + KB - 1; k++) {
        const int64_t r = rbc + j0 + KB - 1 - ifirst - k;
        rbt[k] = rb[r < 0 ? 0 : r >= rbl ? rbl - 1 : r];
      }
    gat_fa_v mn[GAT_FA_SZ(NV, NVM)];
    for (int v = 0; v < NV; v++) mn[v] = m[v];
    for (int jj = 0; jj < nk; jj++) {
      const int64_t j = j0 + jj;
      const float kbj = kbc ? kbc[j * H] : 0.0f;
      gat_fa_v rbv[GAT_FA_SZ(NV, NVM)];
      if (GAT_FA_REL && !GAT_FA_POS) memcpy(rbv, rbt + (KB - 1 - jj), sizeof(gat_fa_v) * NV);
      if (GAT_FA_REL && GAT_FA_POS) {
        for (int x = 0; x < QT; x++) {
          const int64_t r = rbo[x] + j;
          tmp[x] = rb[r < 0 ? 0 : r >= rbl ? rbl - 1 : r];
        }
        memcpy(rbv, tmp, sizeof(gat_fa_v) * NV);
      }
      for (int v = 0; v < NV; v++) {
        gat_fa_v s = GAT_FA_FMA(st[jj * NV + v], scale, qbv[v] + kbj);
        if (GAT_FA_REL) s += rbv[v];
        if (need_mask) s = gat_fa_mask(s, (float)j, iv[v], w);
        st[jj * NV + v] = s;
        mn[v] = gat_fa_max(mn[v], s);
      }
    }
    gat_fa_v alpha[GAT_FA_SZ(NV, NVM)], ls[GAT_FA_SZ(NV, NVM)];
    for (int v = 0; v < NV; v++) {
      alpha[v] = gat_fa_exp(m[v] - mn[v]);
      m[v] = mn[v];
      ls[v] = gat_fa_splat(0.0f);
    }
    for (int jj = 0; jj < nk; jj++)
      for (int v = 0; v < NV; v++) {
        const gat_fa_v p = gat_fa_exp(st[jj * NV + v] - m[v]);
        st[jj * NV + v] = p;
        ls[v] += p;
      }
    for (int v = 0; v < NV; v++) l[v] = GAT_FA_FMA(l[v], alpha[v], ls[v]);
    GAT_FA_NAME(gat_fa_pv)(ot, st, alpha, vb, ldvb, nk GAT_FA_PASS);
  }
  gat_fa_v inv[GAT_FA_SZ(NV, NVM)];
  for (int v = 0; v < NV; v++) inv[v] = 1.0f / l[v];
  for (int e = 0; e < DV; e++)
    for (int v = 0; v < NV; v++) ot[e * NV + v] *= inv[v];
  { /* row by row: strided reads from L1, contiguous writes of out */
    const float *of = (const float *)ot;
    for (int x = 0; x < nq; x++) {
      float *orow = a->out + ((t0 + x) * H + h) * DV;
      for (int e = 0; e < DV; e++) orow[e] = of[e * QT + x];
    }
  }
}

/* one query row t of head h (decode, tails): vectorized along the head dimension, the
 * output row in registers */
static GAT_FA_FMA_ATTR void GAT_FA_NAME(gat_fa_row)(const gat_attn_args *a, int64_t h, int64_t t GAT_FA_PARAMS) {
  GAT_FA_FMA_BEGIN
  GAT_FA_CONST(DK, GAT_FA_DK);
  GAT_FA_CONST(DV, GAT_FA_DV);
  enum { KB = GAT_FA_KB, VL = GAT_FA_VL, NM = GAT_FA_MAXD / GAT_FA_VL + 1 };
  GAT_FA_CONST(NKV, DK / VL);
  GAT_FA_CONST(NVV, DV / VL);
  GAT_FA_CONST(VT, DV % VL + 1); /* + 1: never an empty array */
  const int64_t H = a->H, hk = h / (H / a->Hkv), ldk = a->Hkv * DK, ldv = a->Hkv * DV;
  const int64_t i = GAT_FA_POS ? a->pos[t] : a->pos0 + t;
  const float *rb = a->relbias;
  const int64_t rbl = a->relbias_len, rbo = (rbl - 1) / 2 - i; /* a bias: key j's is rb[clamp(rbo + j)] */
  const float scale = (float)a->scale;
  const float qb = a->qb ? a->qb[t * H + h] : 0.0f;
  const float *kbc = a->kb && a->cache_kb ? a->cache_kb + h : NULL;
  const float *q = a->q + (t * H + h) * DK;
  gat_fa_v qv[GAT_FA_SZ(NKV + 1, NM)], ov[GAT_FA_SZ(NVV + 1, NM)];
  float otl[GAT_FA_SZ(VT, VL)], sc[KB], mx = -1e30f, l = 0.0f;
  memcpy(qv, q, NKV * sizeof qv[0]); /* one copy: a loop over an empty NKV warns at gcc -O0 */
  for (int c = 0; c < NVV; c++) ov[c] = gat_fa_splat(0.0f);
  for (int e = 0; e < VT; e++) otl[e] = 0.0f;
  const int64_t jlo = a->window > 0 && i - a->window + 1 > 0 ? i - a->window + 1 : 0;
  for (int64_t j0 = jlo; j0 <= i; j0 += KB) {
    const int nk = i + 1 - j0 < KB ? (int)(i + 1 - j0) : KB;
    float mb = mx;
    for (int jj = 0; jj < nk; jj++) {
      const float *kr = a->cache_k + (j0 + jj) * ldk + hk * DK;
      if (j0 + jj + 4 <= i) GAT_FA_PREFETCH(kr + 4 * ldk, DK);
      GAT_FA_PREFETCH(a->cache_v + (j0 + jj) * ldv + hk * DV, DV);
      gat_fa_v acc = gat_fa_splat(0.0f);
      for (int c = 0; c < NKV; c++) {
        gat_fa_v kv;
        memcpy(&kv, kr + c * VL, sizeof kv);
        acc = GAT_FA_FMA(qv[c], kv, acc);
      }
      float s = gat_fa_hsum(acc);
      for (int d = NKV * VL; d < DK; d++) s = GAT_FA_FMAS(q[d], kr[d], s);
      s = GAT_FA_FMAS(s, scale, kbc ? qb + kbc[(j0 + jj) * H] : qb);
      if (GAT_FA_REL) {
        const int64_t r = rbo + j0 + jj;
        s += rb[r < 0 ? 0 : r >= rbl ? rbl - 1 : r];
      }
      sc[jj] = s;
      mb = s > mb ? s : mb;
    }
    for (int jj = nk; jj < KB; jj++) sc[jj] = -INFINITY;
    const float alpha = mx - mb < -87.0f ? 0.0f : expf(mx - mb);
    mx = mb;
    gat_fa_v ls = gat_fa_splat(0.0f);
    for (int jj = 0; jj < KB; jj += VL) {
      gat_fa_v p;
      memcpy(&p, sc + jj, sizeof p);
      p = gat_fa_exp(p - mx);
      memcpy(sc + jj, &p, sizeof p);
      ls += p;
    }
    l = GAT_FA_FMAS(l, alpha, gat_fa_hsum(ls));
    for (int c = 0; c < NVV; c++) ov[c] *= alpha;
    for (int e = 0; e < VT - 1; e++) otl[e] *= alpha;
    for (int jj = 0; jj < nk; jj++) {
      const float p = sc[jj], *vr = a->cache_v + (j0 + jj) * ldv + hk * DV;
      for (int c = 0; c < NVV; c++) {
        gat_fa_v vv;
        memcpy(&vv, vr + c * VL, sizeof vv);
        ov[c] = GAT_FA_FMA(p, vv, ov[c]);
      }
      for (int e = 0; e < VT - 1; e++) otl[e] = GAT_FA_FMAS(p, vr[NVV * VL + e], otl[e]);
    }
  }
  float *out = a->out + (t * H + h) * DV;
  const float inv = 1.0f / l;
  for (int c = 0; c < NVV; c++) {
    const gat_fa_v r = ov[c] * inv;
    memcpy(out + c * VL, &r, sizeof r);
  }
  for (int e = 0; e < VT - 1; e++) out[NVV * VL + e] = otl[e] * inv;
}

/* One call, by `part` (GAT_FA_WHOLE, GAT_FA_APPEND, GAT_FA_HEADS): append the new rows; then
 * heads 0 .. H-1 (whole) or h0 .. min(h1, H)-1 (heads), each in prefill tiles or single rows */
GAT_FA_ENTRY void GAT_FA_NAME(gat_flash_attn)(const gat_attn_args *a, int part, int64_t h0,
                                              int64_t h1 GAT_FA_PARAMS) {
  GAT_FA_CONST(DM, GAT_FA_DK > GAT_FA_DV ? GAT_FA_DK : GAT_FA_DV);
  GAT_FA_CONST(QT, GAT_FA_NV_FOR(DM) * GAT_FA_VL);
  GAT_FA_CONST(MINQ, QT / 3 + 1); /* fewer queries left: one at a time */
  if (part != GAT_FA_HEADS) {
    if (GAT_FA_POS)
      gat_fa_append_pos(a);
    else
      gat_fa_append(a);
  }
  if (part == GAT_FA_APPEND) return;
  if (part == GAT_FA_WHOLE) h0 = 0, h1 = a->H;
  if (h1 > a->H) h1 = a->H;
  for (int64_t h = h0; h < h1; h++)
    for (int64_t t0 = 0; t0 < a->T; t0 += QT) {
      const int nq = a->T - t0 < QT ? (int)(a->T - t0) : QT;
      if (nq >= MINQ)
        GAT_FA_NAME(gat_fa_tile)(a, h, t0, nq GAT_FA_PASS);
      else
        for (int x = 0; x < nq; x++) GAT_FA_NAME(gat_fa_row)(a, h, t0 + x GAT_FA_PASS);
    }
}
