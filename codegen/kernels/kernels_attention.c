/* kernels_attention.c — the text of the flash-style attention kernel that -O2
 * code calls instead of the runtime's gat_k_attention (LC_ATTENTION calls
 * marked attn_fast by pass_attention; loopir.h).
 *
 * Algorithm: the new K/V (and kb) rows are appended to the caches exactly as
 * the reference does; then, per head, the queries are taken in tiles of
 * QT = NV vector widths (NV = 4 with AVX-512: 64 queries; else 2; heads above
 * 128 keep 2 so the stack blocks stay small). A tile holds its queries in
 * vector lanes (q transposed into a DK x QT block on the stack), walks the
 * visible keys in blocks of KB (64; 32 or 16 for heads above 64 or 128) and
 * keeps a running max m, sum l and output O (DV x QT, transposed) per lane:
 * per block, S = q.k (register block of KR keys x NV lane vectors, the key
 * element broadcast, like the GEMM micro-kernel), then scale + qb + kb, the
 * causal/window mask (only in blocks that need it), the new max,
 * alpha = e^(m_old - m_new), P = e^(S - m_new), l = l alpha + sum P,
 * O = O alpha + P.V (register block of KR value columns x NV lane vectors;
 * with NV = 4 the block's V rows are first packed contiguously, because in
 * the cache they are Hkv * DV floats apart and the column-group walk down
 * the rows would thrash a few L1 sets). No T x T buffer: the largest
 * temporaries are one KB x QT score block and one KB x DV V block. The lane
 * layout makes every softmax step lane-wise (no horizontal reductions) and
 * needs no transposition of the K/V caches. Fewer than QT/3 + 1 queries left
 * (decode, small steps): one query at a time, vectorized along the head
 * dimension with the output row in registers. e^x is a polynomial (about
 * 1e-7 relative) so it vectorizes.
 *
 * Specialization: the head dims DK, DV are compile-time constants (one copy
 * of the tile and row functions per pair in use), so the d loops unroll and
 * the accumulators stay in registers. Calls with per-row positions
 * (gat_attn_args.pos, GateSkip's `kv: previous`) and/or a relative-position
 * bias (relbias, Mega) get variants of their own (suffix _p, _r, _pr; the
 * "@" lines of attn_text_body), emitted only when a model has such a call, so
 * other models get the plain kernel unchanged. Accumulation is f32 with FMA
 * contraction enabled for these functions only; -O0/-O1 (and -fno-tile) keep
 * the double-accumulating reference kernel. */
#include "kernels_attention.h"

#include <string.h>

/* support code, once per module */
static const char *attn_text_head =
    "/* ---- flash attention kernel (gattnc -O2; codegen/kernels_attention.c) ------------\n"
    " * Same semantics as the runtime's gat_k_attention (new K/V rows appended to the caches\n"
    " * at pos0 .. pos0+T-1 first, causal softmax over cached keys, GQA, window, qb/kb\n"
    " * biases) in f32: online softmax over blocks of GAT_FA_KB keys, no T x T buffer.\n"
    " * Prefill: tiles of NV lane vectors of queries of one head (NV = 4 with AVX-512, else 2;\n"
    " * queries transposed), so scores, running max/sum, exp and the p.V update are all\n"
    " * lane-wise; the q.k and p.V products are register-blocked like the GEMM micro-kernel\n"
    " * (GAT_FA_KR keys or values x NV lane vectors of accumulators). Few queries (decode):\n"
    " * one query at a time, vectorized along the head dimension. */\n"
    "#if defined(__AVX512F__)\n"
    "#define GAT_FA_VL 16 /* 4 x 4 = 16 of the 32 registers accumulate */\n"
    "#define GAT_FA_NV 4\n"
    "#define GAT_FA_KR 4\n"
    "#elif defined(__AVX__)\n"
    "#define GAT_FA_VL 8\n"
    "#define GAT_FA_NV 2\n"
    "#define GAT_FA_KR 6\n"
    "#else\n"
    "#define GAT_FA_VL 4\n"
    "#define GAT_FA_NV 2\n"
    "#define GAT_FA_KR 4\n"
    "#endif\n"
    "#define GAT_FA_KB 64\n"
    "#if (defined(__GNUC__) || defined(__clang__)) && !defined(GAT_NO_VECTOR_EXT)\n"
    "#define GAT_FA_VEC 1\n"
    "typedef float gat_fa_v __attribute__((vector_size(GAT_FA_VL * 4)));\n"
    "typedef int32_t gat_fa_vi __attribute__((vector_size(GAT_FA_VL * 4)));\n"
    "typedef float gat_fa_vu __attribute__((vector_size(GAT_FA_VL * 4), aligned(4), may_alias));\n"
    "#else\n"
    "#undef GAT_FA_VL\n"
    "#define GAT_FA_VL 1 /* plain C: a \"vector\" is one float */\n"
    "typedef float gat_fa_v;\n"
    "#endif\n"
    "/* lane vectors per prefill tile for head dims up to dm: at most 2 above 128 (the tile's\n"
    " * transposed q and o blocks live on the stack) */\n"
    "#define GAT_FA_NV_FOR(dm) ((dm) > 128 && GAT_FA_NV > 2 ? 2 : GAT_FA_NV)\n"
    "/* keys per block: the block's scores and its packed V rows stay within 16 KB each */\n"
    "#define GAT_FA_KB_FOR(dm) ((dm) <= 64 ? GAT_FA_KB : (dm) <= 128 ? GAT_FA_KB / 2 : GAT_FA_KB / 4)\n"
    "#if defined(__GNUC__) || defined(__clang__)\n"
    "#define GAT_FA_UNUSED __attribute__((unused)) /* not every model has every head size */\n"
    "#else\n"
    "#define GAT_FA_UNUSED\n"
    "#endif\n"
    "/* contraction of a*b+c into one FMA: on for the kernels only (ISO C mode turns it off) */\n"
    "#if defined(__clang__)\n"
    "#define GAT_FA_FMA_ATTR\n"
    "#define GAT_FA_FMA_BEGIN _Pragma(\"clang fp contract(fast)\")\n"
    "#elif defined(__GNUC__)\n"
    "#define GAT_FA_FMA_ATTR __attribute__((optimize(\"fp-contract=fast\")))\n"
    "#define GAT_FA_FMA_BEGIN\n"
    "#else\n"
    "#define GAT_FA_FMA_ATTR\n"
    "#define GAT_FA_FMA_BEGIN\n"
    "#endif\n"
    "\n"
    "/* software prefetch of a row slice (cache rows of one head are a page or more apart, past\n"
    " * the reach of the hardware prefetchers) */\n"
    "#if defined(__GNUC__) || defined(__clang__)\n"
    "#define GAT_FA_PREFETCH(p, n)                                                        \\\n"
    "  do {                                                                               \\\n"
    "    for (int pf_ = 0; pf_ < (n); pf_ += 16) __builtin_prefetch((const float *)(p) + pf_); \\\n"
    "  } while (0)\n"
    "#else\n"
    "#define GAT_FA_PREFETCH(p, n) ((void)0)\n"
    "#endif\n"
    "\n"
    "static inline GAT_FA_FMA_ATTR gat_fa_v gat_fa_splat(float x) { return (gat_fa_v){0} + x; }\n"
    "\n"
    "/* e^x for x <= 0 (-inf allowed), lane-wise; 0 below -87 (where e^x < 2^-125).\n"
    " * 2^n * p(r), n = round(x log2 e), r = x - n ln 2 (two-part), p of degree 7:\n"
    " * about 1e-7 relative. */\n"
    "static inline GAT_FA_FMA_ATTR gat_fa_v gat_fa_exp(gat_fa_v x) {\n"
    "  GAT_FA_FMA_BEGIN\n"
    "#ifdef GAT_FA_VEC\n"
    "  const gat_fa_v lo = gat_fa_splat(-87.0f);\n"
    "  const gat_fa_vi small = x < lo;\n"
    "  x = (gat_fa_v)(((gat_fa_vi)x & ~small) | ((gat_fa_vi)lo & small));\n"
    "  const gat_fa_v t = x * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: rounds to an integer */\n"
    "  const gat_fa_v n = t - 12582912.0f;\n"
    "  gat_fa_v r = x - n * 0.693145751953125f;\n"
    "  r = r - n * 1.428606765330187e-06f;\n"
    "  gat_fa_v p = gat_fa_splat(1.0f / 5040);\n"
    "  p = p * r + 1.0f / 720;\n"
    "  p = p * r + 1.0f / 120;\n"
    "  p = p * r + 1.0f / 24;\n"
    "  p = p * r + 1.0f / 6;\n"
    "  p = p * r + 0.5f;\n"
    "  p = p * r + 1.0f;\n"
    "  p = p * r + 1.0f;\n"
    "  const gat_fa_vi e = (((gat_fa_vi)t - 0x4B400000) + 127) << 23;\n"
    "  p = p * (gat_fa_v)e;\n"
    "  return (gat_fa_v)((gat_fa_vi)p & ~small);\n"
    "#else\n"
    "  return x < -87.0f ? 0.0f : expf(x);\n"
    "#endif\n"
    "}\n"
    "\n"
    "static inline GAT_FA_FMA_ATTR gat_fa_v gat_fa_max(gat_fa_v a, gat_fa_v b) {\n"
    "#ifdef GAT_FA_VEC\n"
    "  const gat_fa_vi m = a > b;\n"
    "  return (gat_fa_v)(((gat_fa_vi)a & m) | ((gat_fa_vi)b & ~m));\n"
    "#else\n"
    "  return a > b ? a : b;\n"
    "#endif\n"
    "}\n"
    "\n"
    "/* s where key j is visible from query i (j <= i, and i - w < j when w > 0), else -inf */\n"
    "static inline GAT_FA_FMA_ATTR gat_fa_v gat_fa_mask(gat_fa_v s, float j, gat_fa_v i, float w) {\n"
    "#ifdef GAT_FA_VEC\n"
    "  const gat_fa_v jv = gat_fa_splat(j);\n"
    "  gat_fa_vi vis = jv <= i;\n"
    "  if (w > 0) vis &= i - w < jv;\n"
    "  return (gat_fa_v)(((gat_fa_vi)s & vis) | ((gat_fa_vi)gat_fa_splat(-INFINITY) & ~vis));\n"
    "#else\n"
    "  return j <= i && (w <= 0 || i - w < j) ? s : -INFINITY;\n"
    "#endif\n"
    "}\n"
    "\n"
    "/* the sum of the lanes: halves added until 4 lanes are left */\n"
    "static inline GAT_FA_FMA_ATTR float gat_fa_hsum(gat_fa_v v) {\n"
    "#if defined(GAT_FA_VEC) && GAT_FA_VL >= 4\n"
    "  typedef float gat_fa_v4 __attribute__((vector_size(16)));\n"
    "#if GAT_FA_VL == 16\n"
    "  typedef float gat_fa_v8 __attribute__((vector_size(32)));\n"
    "  gat_fa_v8 a, b;\n"
    "  memcpy(&a, &v, sizeof a);\n"
    "  memcpy(&b, (const char *)&v + sizeof a, sizeof b);\n"
    "  a += b;\n"
    "#else\n"
    "  gat_fa_v a = v;\n"
    "#endif\n"
    "#if GAT_FA_VL >= 8\n"
    "  gat_fa_v4 c, d;\n"
    "  memcpy(&c, &a, sizeof c);\n"
    "  memcpy(&d, (const char *)&a + sizeof c, sizeof d);\n"
    "  c += d;\n"
    "#else\n"
    "  gat_fa_v4 c = a;\n"
    "#endif\n"
    "  return (c[0] + c[2]) + (c[1] + c[3]);\n"
    "#else\n"
    "  float t[GAT_FA_VL], s = 0;\n"
    "  memcpy(t, &v, sizeof t);\n"
    "  for (int l = 0; l < GAT_FA_VL; l++) s += t[l];\n"
    "  return s;\n"
    "#endif\n"
    "}\n"
    "\n"
    "/* the reference's cache append: rows pos0 .. pos0+T-1 of cache_k, cache_v (and cache_kb) */\n"
    "static GAT_FA_UNUSED void gat_fa_append(const gat_attn_args *a) {\n"
    "  for (int64_t t = 0; t < a->T; t++) {\n"
    "    memcpy(a->cache_k + (a->pos0 + t) * a->Hkv * a->dk, a->k + t * a->Hkv * a->dk,\n"
    "           sizeof(float) * (size_t)(a->Hkv * a->dk));\n"
    "    memcpy(a->cache_v + (a->pos0 + t) * a->Hkv * a->dv, a->v + t * a->Hkv * a->dv,\n"
    "           sizeof(float) * (size_t)(a->Hkv * a->dv));\n"
    "    if (a->kb && a->cache_kb)\n"
    "      memcpy(a->cache_kb + (a->pos0 + t) * a->H, a->kb + t * a->H, sizeof(float) * (size_t)a->H);\n"
    "  }\n"
    "}\n";

/* the cache append of calls with per-row positions (gat_attn_args.pos: GateSkip's KV copy),
   once per module that has such a call */
static const char *attn_text_append_pos =
    "\n"
    "/* the reference's cache append with per-row positions: row t at cache row pos[t] */\n"
    "static GAT_FA_UNUSED void gat_fa_append_pos(const gat_attn_args *a) {\n"
    "  for (int64_t t = 0; t < a->T; t++) {\n"
    "    const int64_t p = a->pos[t];\n"
    "    memcpy(a->cache_k + p * a->Hkv * a->dk, a->k + t * a->Hkv * a->dk, sizeof(float) * (size_t)(a->Hkv * a->dk));\n"
    "    memcpy(a->cache_v + p * a->Hkv * a->dv, a->v + t * a->Hkv * a->dv, sizeof(float) * (size_t)(a->Hkv * a->dv));\n"
    "    if (a->kb && a->cache_kb) memcpy(a->cache_kb + p * a->H, a->kb + t * a->H, sizeof(float) * (size_t)a->H);\n"
    "  }\n"
    "}\n";

/* per (DK, DV, features) variant: "$$" stands for the name suffix _DK_DV (+ _p, _r, _pr),
   GAT_FA_DK / GAT_FA_DV are #defined around it. A line that starts with "@" + letters + " "
   is emitted (without that prefix) only in the variants where every letter holds: p = per-row
   positions (gat_attn_args.pos), P = none, r = a relative-position bias (relbias), R = none.
   The plain variant (P, R) is the kernel as it was before the two features. */
static const char *attn_text_body =
    "/* one tile: queries t0 .. t0+nq-1 (nq <= QT) of head h, in lanes (NV lane vectors) */\n"
    "static GAT_FA_FMA_ATTR void gat_fa_tile$$(const gat_attn_args *a, int64_t h, int64_t t0, int nq) {\n"
    "  GAT_FA_FMA_BEGIN\n"
    "  enum { DK = GAT_FA_DK, DV = GAT_FA_DV, DM = DK > DV ? DK : DV, KR = GAT_FA_KR };\n"
    "  enum { KB = GAT_FA_KB_FOR(DM), NV = GAT_FA_NV_FOR(DM), QT = NV * GAT_FA_VL };\n"
    "  const int64_t H = a->H, hk = h / (H / a->Hkv), ldk = a->Hkv * DK, ldv = a->Hkv * DV;\n"
    "@P   const int64_t pos0 = a->pos0, ifirst = pos0 + t0, ilast = pos0 + t0 + nq - 1;\n"
    "@p   const int32_t *ps = a->pos + t0; /* the rows' positions: lanes need not be contiguous */\n"
    "@p   int64_t ifirst = ps[0], ilast = ps[0];\n"
    "@p   for (int x = 1; x < nq; x++) {\n"
    "@p     ifirst = ps[x] < ifirst ? ps[x] : ifirst;\n"
    "@p     ilast = ps[x] > ilast ? ps[x] : ilast;\n"
    "@p   }\n"
    "@r   const float *rb = a->relbias;\n"
    "@r   const int64_t rbl = a->relbias_len, rbc = (rbl - 1) / 2; /* bias of (i, j): rb[clamp(rbc + j - i)] */\n"
    "  const float scale = (float)a->scale, w = (float)a->window;\n"
    "  const float *kbc = a->kb && a->cache_kb ? a->cache_kb + h : NULL;\n"
    "  gat_fa_v qt[DK][NV]; /* the queries, transposed: lane l of vector v = query t0 + v VL + l */\n"
    "  gat_fa_v ot[DV][NV]; /* output accumulators, transposed */\n"
    "  gat_fa_v st[KB][NV]; /* scores, then probabilities, of one key block */\n"
    "  /* with 4 lane vectors per tile (AVX-512) the block's V rows of head hk are packed\n"
    "   * contiguously first: in the cache they are Hkv * DV floats apart, and the p.V loop, which\n"
    "   * walks one column group down all the rows, then hits a handful of L1 sets; with fewer\n"
    "   * queries per tile the copy costs more than it saves */\n"
    "  enum { PACKV = NV >= 4 };\n"
    "  float vbuf[PACKV ? KB : 1][DV];\n"
    "  gat_fa_v iv[NV], qbv[NV], m[NV], l[NV];\n"
    "  float tmp[QT];\n"
    "  { /* row by row: contiguous reads of q, strided writes into L1 */\n"
    "    float *qf = (float *)qt;\n"
    "    for (int x = 0; x < QT; x++) {\n"
    "      const float *qr = a->q + ((t0 + (x < nq ? x : 0)) * H + h) * DK;\n"
    "      for (int d = 0; d < DK; d++) qf[d * QT + x] = x < nq ? qr[d] : 0.0f;\n"
    "    }\n"
    "  }\n"
    "@P   for (int x = 0; x < QT; x++) tmp[x] = (float)(ifirst + (x < nq ? x : nq - 1));\n"
    "@p   for (int x = 0; x < QT; x++) tmp[x] = (float)ps[x < nq ? x : nq - 1];\n"
    "@pr   int64_t rbo[QT]; /* per lane: rbc - i */\n"
    "@pr   for (int x = 0; x < QT; x++) rbo[x] = rbc - ps[x < nq ? x : nq - 1];\n"
    "@Pr   float rbt[QT + KB - 1]; /* one key block's biases: lane x, key jj at rbt[KB - 1 - jj + x] */\n"
    "  memcpy(iv, tmp, sizeof tmp);\n"
    "  for (int x = 0; x < QT; x++) tmp[x] = a->qb ? a->qb[(t0 + (x < nq ? x : nq - 1)) * H + h] : 0.0f;\n"
    "  memcpy(qbv, tmp, sizeof tmp);\n"
    "  for (int v = 0; v < NV; v++) {\n"
    "    m[v] = gat_fa_splat(-1e30f); /* finite: no inf - inf before the first visible key */\n"
    "    l[v] = gat_fa_splat(0.0f);\n"
    "  }\n"
    "  for (int e = 0; e < DV; e++)\n"
    "    for (int v = 0; v < NV; v++) ot[e][v] = gat_fa_splat(0.0f);\n"
    "  const int64_t jlo = a->window > 0 && ifirst - a->window + 1 > 0 ? ifirst - a->window + 1 : 0;\n"
    "  for (int64_t j0 = jlo; j0 <= ilast; j0 += KB) {\n"
    "    const int nk = ilast + 1 - j0 < KB ? (int)(ilast + 1 - j0) : KB;\n"
    "    const float *vb = a->cache_v + j0 * ldv + hk * DV; /* the block's V rows, ldvb apart */\n"
    "    int64_t ldvb = ldv;\n"
    "    if (PACKV) {\n"
    "      for (int jj = 0; jj < nk; jj++) memcpy(vbuf[jj], vb + jj * ldv, sizeof vbuf[jj]);\n"
    "      vb = vbuf[0];\n"
    "      ldvb = DV;\n"
    "    }\n"
    "    /* raw scores q.k: KR keys x NV lane vectors of accumulators */\n"
    "    for (int jj = 0; jj < nk; jj += KR) {\n"
    "      const int kr = nk - jj < KR ? nk - jj : KR;\n"
    "      const float *kp[KR];\n"
    "      for (int r = 0; r < KR; r++) kp[r] = a->cache_k + (j0 + jj + (r < kr ? r : kr - 1)) * ldk + hk * DK;\n"
    "      gat_fa_v c[KR][NV];\n"
    "      for (int r = 0; r < KR; r++)\n"
    "        for (int v = 0; v < NV; v++) c[r][v] = gat_fa_splat(0.0f);\n"
    "      for (int d = 0; d < DK; d++) {\n"
    "        gat_fa_v qd[NV];\n"
    "        for (int v = 0; v < NV; v++) qd[v] = qt[d][v];\n"
    "        for (int r = 0; r < KR; r++) {\n"
    "          const float kd = kp[r][d];\n"
    "          for (int v = 0; v < NV; v++) c[r][v] += kd * qd[v];\n"
    "        }\n"
    "      }\n"
    "      for (int r = 0; r < kr; r++)\n"
    "        for (int v = 0; v < NV; v++) st[jj + r][v] = c[r][v];\n"
    "    }\n"
    "    /* scale, biases, mask; the block's running max */\n"
    "    const int need_mask = j0 + nk - 1 > ifirst || (a->window > 0 && j0 <= ilast - a->window);\n"
    "@Pr     for (int k = 0; k < QT + KB - 1; k++) {\n"
    "@Pr       const int64_t r = rbc + j0 + KB - 1 - ifirst - k;\n"
    "@Pr       rbt[k] = rb[r < 0 ? 0 : r >= rbl ? rbl - 1 : r];\n"
    "@Pr     }\n"
    "    gat_fa_v mn[NV];\n"
    "    for (int v = 0; v < NV; v++) mn[v] = m[v];\n"
    "    for (int jj = 0; jj < nk; jj++) {\n"
    "      const int64_t j = j0 + jj;\n"
    "      const float kbj = kbc ? kbc[j * H] : 0.0f;\n"
    "@r       gat_fa_v rbv[NV];\n"
    "@Pr       memcpy(rbv, rbt + (KB - 1 - jj), sizeof rbv);\n"
    "@pr       for (int x = 0; x < QT; x++) {\n"
    "@pr         const int64_t r = rbo[x] + j;\n"
    "@pr         tmp[x] = rb[r < 0 ? 0 : r >= rbl ? rbl - 1 : r];\n"
    "@pr       }\n"
    "@pr       memcpy(rbv, tmp, sizeof rbv);\n"
    "      for (int v = 0; v < NV; v++) {\n"
    "@R         gat_fa_v s = st[jj][v] * scale + (qbv[v] + kbj);\n"
    "@r         gat_fa_v s = st[jj][v] * scale + (qbv[v] + kbj) + rbv[v];\n"
    "        if (need_mask) s = gat_fa_mask(s, (float)j, iv[v], w);\n"
    "        st[jj][v] = s;\n"
    "        mn[v] = gat_fa_max(mn[v], s);\n"
    "      }\n"
    "    }\n"
    "    gat_fa_v alpha[NV], ls[NV];\n"
    "    for (int v = 0; v < NV; v++) {\n"
    "      alpha[v] = gat_fa_exp(m[v] - mn[v]);\n"
    "      m[v] = mn[v];\n"
    "      ls[v] = gat_fa_splat(0.0f);\n"
    "    }\n"
    "    for (int jj = 0; jj < nk; jj++)\n"
    "      for (int v = 0; v < NV; v++) {\n"
    "        const gat_fa_v p = gat_fa_exp(st[jj][v] - m[v]);\n"
    "        st[jj][v] = p;\n"
    "        ls[v] += p;\n"
    "      }\n"
    "    for (int v = 0; v < NV; v++) l[v] = l[v] * alpha[v] + ls[v];\n"
    "    /* o = o * alpha + p.V: KR values x NV lane vectors of accumulators */\n"
    "    enum { EF = DV - DV % KR };\n"
    "    for (int e0 = 0; e0 < EF; e0 += KR) {\n"
    "      gat_fa_v c[KR][NV];\n"
    "      for (int r = 0; r < KR; r++)\n"
    "        for (int v = 0; v < NV; v++) c[r][v] = ot[e0 + r][v] * alpha[v];\n"
    "      const float *vp = vb + e0;\n"
    "      for (int jj = 0; jj < nk; jj++, vp += ldvb) {\n"
    "        gat_fa_v pj[NV];\n"
    "        for (int v = 0; v < NV; v++) pj[v] = st[jj][v];\n"
    "        for (int r = 0; r < KR; r++) {\n"
    "          const float vr = vp[r];\n"
    "          for (int v = 0; v < NV; v++) c[r][v] += vr * pj[v];\n"
    "        }\n"
    "      }\n"
    "      for (int r = 0; r < KR; r++)\n"
    "        for (int v = 0; v < NV; v++) ot[e0 + r][v] = c[r][v];\n"
    "    }\n"
    "    if ((int)EF < (int)DV) {\n"
    "      gat_fa_v c[KR][NV];\n"
    "      for (int r = 0; r < DV - EF; r++)\n"
    "        for (int v = 0; v < NV; v++) c[r][v] = ot[EF + r][v] * alpha[v];\n"
    "      const float *vp = vb + EF;\n"
    "      for (int jj = 0; jj < nk; jj++, vp += ldvb)\n"
    "        for (int r = 0; r < DV - EF; r++) {\n"
    "          const float vr = vp[r];\n"
    "          for (int v = 0; v < NV; v++) c[r][v] += vr * st[jj][v];\n"
    "        }\n"
    "      for (int r = 0; r < DV - EF; r++)\n"
    "        for (int v = 0; v < NV; v++) ot[EF + r][v] = c[r][v];\n"
    "    }\n"
    "  }\n"
    "  gat_fa_v inv[NV];\n"
    "  for (int v = 0; v < NV; v++) inv[v] = 1.0f / l[v];\n"
    "  for (int e = 0; e < DV; e++)\n"
    "    for (int v = 0; v < NV; v++) ot[e][v] *= inv[v];\n"
    "  { /* row by row: strided reads from L1, contiguous writes of out */\n"
    "    const float *of = (const float *)ot;\n"
    "    for (int x = 0; x < nq; x++) {\n"
    "      float *orow = a->out + ((t0 + x) * H + h) * DV;\n"
    "      for (int e = 0; e < DV; e++) orow[e] = of[e * QT + x];\n"
    "    }\n"
    "  }\n"
    "}\n"
    "\n"
    "/* one query row t of head h (decode, tails): vectorized along the head dimension, the\n"
    " * output row in registers */\n"
    "static GAT_FA_FMA_ATTR void gat_fa_row$$(const gat_attn_args *a, int64_t h, int64_t t) {\n"
    "  GAT_FA_FMA_BEGIN\n"
    "  enum { DK = GAT_FA_DK, DV = GAT_FA_DV, KB = GAT_FA_KB, VL = GAT_FA_VL };\n"
    "  enum { NKV = DK / VL, NVV = DV / VL, VT = DV % VL + 1 /* + 1: never an empty array */ };\n"
    "  const int64_t H = a->H, hk = h / (H / a->Hkv), ldk = a->Hkv * DK, ldv = a->Hkv * DV;\n"
    "@P   const int64_t i = a->pos0 + t;\n"
    "@p   const int64_t i = a->pos[t];\n"
    "@r   const float *rb = a->relbias;\n"
    "@r   const int64_t rbl = a->relbias_len, rbo = (rbl - 1) / 2 - i; /* bias of key j: rb[clamp(rbo + j)] */\n"
    "  const float scale = (float)a->scale;\n"
    "  const float qb = a->qb ? a->qb[t * H + h] : 0.0f;\n"
    "  const float *kbc = a->kb && a->cache_kb ? a->cache_kb + h : NULL;\n"
    "  const float *q = a->q + (t * H + h) * DK;\n"
    "  gat_fa_v qv[NKV + 1], ov[NVV + 1];\n"
    "  float otl[VT], sc[KB], mx = -1e30f, l = 0.0f;\n"
    "  memcpy(qv, q, NKV * sizeof qv[0]); /* one copy: a loop over an empty NKV warns at gcc -O0 */\n"
    "  for (int c = 0; c < NVV; c++) ov[c] = gat_fa_splat(0.0f);\n"
    "  for (int e = 0; e < VT; e++) otl[e] = 0.0f;\n"
    "  const int64_t jlo = a->window > 0 && i - a->window + 1 > 0 ? i - a->window + 1 : 0;\n"
    "  for (int64_t j0 = jlo; j0 <= i; j0 += KB) {\n"
    "    const int nk = i + 1 - j0 < KB ? (int)(i + 1 - j0) : KB;\n"
    "    float mb = mx;\n"
    "    for (int jj = 0; jj < nk; jj++) {\n"
    "      const float *kr = a->cache_k + (j0 + jj) * ldk + hk * DK;\n"
    "      if (j0 + jj + 4 <= i) GAT_FA_PREFETCH(kr + 4 * ldk, DK);\n"
    "      GAT_FA_PREFETCH(a->cache_v + (j0 + jj) * ldv + hk * DV, DV);\n"
    "      gat_fa_v acc = gat_fa_splat(0.0f);\n"
    "      for (int c = 0; c < NKV; c++) {\n"
    "        gat_fa_v kv;\n"
    "        memcpy(&kv, kr + c * VL, sizeof kv);\n"
    "        acc += qv[c] * kv;\n"
    "      }\n"
    "      float s = gat_fa_hsum(acc);\n"
    "      for (int d = NKV * VL; d < DK; d++) s += q[d] * kr[d];\n"
    "      s = s * scale + (kbc ? qb + kbc[(j0 + jj) * H] : qb);\n"
    "@r       {\n"
    "@r         const int64_t r = rbo + j0 + jj;\n"
    "@r         s += rb[r < 0 ? 0 : r >= rbl ? rbl - 1 : r];\n"
    "@r       }\n"
    "      sc[jj] = s;\n"
    "      mb = s > mb ? s : mb;\n"
    "    }\n"
    "    for (int jj = nk; jj < KB; jj++) sc[jj] = -INFINITY;\n"
    "    const float alpha = mx - mb < -87.0f ? 0.0f : expf(mx - mb);\n"
    "    mx = mb;\n"
    "    gat_fa_v ls = gat_fa_splat(0.0f);\n"
    "    for (int jj = 0; jj < KB; jj += VL) {\n"
    "      gat_fa_v p;\n"
    "      memcpy(&p, sc + jj, sizeof p);\n"
    "      p = gat_fa_exp(p - mx);\n"
    "      memcpy(sc + jj, &p, sizeof p);\n"
    "      ls += p;\n"
    "    }\n"
    "    l = l * alpha + gat_fa_hsum(ls);\n"
    "    for (int c = 0; c < NVV; c++) ov[c] *= alpha;\n"
    "    for (int e = 0; e < VT - 1; e++) otl[e] *= alpha;\n"
    "    for (int jj = 0; jj < nk; jj++) {\n"
    "      const float p = sc[jj], *vr = a->cache_v + (j0 + jj) * ldv + hk * DV;\n"
    "      for (int c = 0; c < NVV; c++) {\n"
    "        gat_fa_v vv;\n"
    "        memcpy(&vv, vr + c * VL, sizeof vv);\n"
    "        ov[c] += p * vv;\n"
    "      }\n"
    "      for (int e = 0; e < VT - 1; e++) otl[e] += p * vr[NVV * VL + e];\n"
    "    }\n"
    "  }\n"
    "  float *out = a->out + (t * H + h) * DV;\n"
    "  const float inv = 1.0f / l;\n"
    "  for (int c = 0; c < NVV; c++) {\n"
    "    const gat_fa_v r = ov[c] * inv;\n"
    "    memcpy(out + c * VL, &r, sizeof r);\n"
    "  }\n"
    "  for (int e = 0; e < VT - 1; e++) out[NVV * VL + e] = otl[e] * inv;\n"
    "}\n"
    "\n"
    "/* the whole call: append the new rows, then every head, prefill tiles or single rows */\n"
    "static GAT_FA_UNUSED void gat_flash_attn$$(const gat_attn_args *a) {\n"
    "  enum { DM = GAT_FA_DK > GAT_FA_DV ? GAT_FA_DK : GAT_FA_DV };\n"
    "  enum { QT = GAT_FA_NV_FOR(DM) * GAT_FA_VL, MINQ = QT / 3 + 1 /* fewer queries left: one at a time */ };\n"
    "@P   gat_fa_append(a);\n"
    "@p   gat_fa_append_pos(a);\n"
    "  for (int64_t h = 0; h < a->H; h++)\n"
    "    for (int64_t t0 = 0; t0 < a->T; t0 += QT) {\n"
    "      const int nq = a->T - t0 < QT ? (int)(a->T - t0) : QT;\n"
    "      if (nq >= MINQ)\n"
    "        gat_fa_tile$$(a, h, t0, nq);\n"
    "      else\n"
    "        for (int x = 0; x < nq; x++) gat_fa_row$$(a, h, t0 + x);\n"
    "    }\n"
    "}\n";

static int attn_is_fast(const LoopKernel *k) { return k->kind == LK_CALL && k->call == LC_ATTENTION && k->attn_fast; }

int kernels_attention_features(const LoopKernel *k) {
  int f = 0;
  if (k->nargs > 11 && k->args[11] >= 0) f |= KERNELS_ATTENTION_POS;
  if (k->nargs > 9 && k->args[9] >= 0) f |= KERNELS_ATTENTION_RELBIAS;
  return f;
}

/* head dims and features of every attn_fast call (regions included), deduplicated, into
   dims[3 * n] */
static void attn_collect(const PtrVec *ks, int64_t *dims, int *n, int cap) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = ks->data[i];
    if (attn_is_fast(k)) {
      int64_t dk = k->sizes[3].k, dv = k->sizes[4].k, fe = kernels_attention_features(k);
      int seen = 0;
      for (int j = 0; j < *n; j++) seen |= dims[3 * j] == dk && dims[3 * j + 1] == dv && dims[3 * j + 2] == fe;
      GAT_ASSERT(seen || *n < cap); /* pass_attention marks at most that many variants */
      if (!seen) {
        dims[3 * *n] = dk;
        dims[3 * *n + 1] = dv;
        dims[3 * *n + 2] = fe;
        (*n)++;
      }
    }
    for (int r = 0; r < k->nregions; r++) attn_collect(&k->regions[r]->kernels, dims, n, cap);
  }
}

int kernels_attention_needed(const LoopModule *m) {
  int64_t dims[3 * KERNELS_ATTENTION_MAX_VARIANTS];
  int n = 0;
  attn_collect(&m->kernels, dims, &n, KERNELS_ATTENTION_MAX_VARIANTS);
  return n > 0;
}

/* "_p", "_r", "_pr" or nothing: the name suffix of a feature set */
static void attn_suffix_features(StrBuf *o, int fe) {
  if (fe) sb_printf(o, "_%s%s", fe & KERNELS_ATTENTION_POS ? "p" : "", fe & KERNELS_ATTENTION_RELBIAS ? "r" : "");
}

/* one line of attn_text_body (without its newline), its "@" condition checked against the
   features fe, "$$" replaced by suffix */
static void attn_emit_line(StrBuf *o, const char *p, size_t n, int fe, const char *suffix) {
  if (n > 0 && p[0] == '@') {
    size_t i = 1;
    int keep = 1;
    for (; i < n && p[i] != ' '; i++) {
      const int want = p[i] == 'p' || p[i] == 'P' ? KERNELS_ATTENTION_POS : KERNELS_ATTENTION_RELBIAS;
      const int on = (fe & want) != 0;
      keep &= (p[i] == 'p' || p[i] == 'r') ? on : !on;
    }
    if (!keep) return;
    p += i + 1;
    n -= i + 1;
  }
  const char *end = p + n;
  while (p < end) {
    const char *q = p;
    while (q + 1 < end && !(q[0] == '$' && q[1] == '$')) q++;
    if (q + 1 >= end) {
      sb_appendn(o, p, (size_t)(end - p));
      break;
    }
    sb_appendn(o, p, (size_t)(q - p));
    sb_append(o, suffix);
    p = q + 2;
  }
  sb_append(o, "\n");
}

void kernels_attention_fn_name(StrBuf *o, const LoopKernel *k) {
  GAT_ASSERT(attn_is_fast(k));
  sb_printf(o, "gat_flash_attn_%lld_%lld", (long long)k->sizes[3].k, (long long)k->sizes[4].k);
  attn_suffix_features(o, kernels_attention_features(k));
}

void kernels_attention_emit(StrBuf *o, const LoopModule *m) {
  int64_t dims[3 * KERNELS_ATTENTION_MAX_VARIANTS];
  int n = 0, any_pos = 0;
  attn_collect(&m->kernels, dims, &n, KERNELS_ATTENTION_MAX_VARIANTS);
  if (n == 0) return;
  sb_append(o, attn_text_head);
  for (int v = 0; v < n; v++) any_pos |= (dims[3 * v + 2] & KERNELS_ATTENTION_POS) != 0;
  if (any_pos) sb_append(o, attn_text_append_pos);
  for (int v = 0; v < n; v++) {
    const int fe = (int)dims[3 * v + 2];
    StrBuf suffix = {0};
    sb_printf(&suffix, "_%lld_%lld", (long long)dims[3 * v], (long long)dims[3 * v + 1]);
    attn_suffix_features(&suffix, fe);
    sb_printf(o, "\n#define GAT_FA_DK %lld\n#define GAT_FA_DV %lld\n", (long long)dims[3 * v],
              (long long)dims[3 * v + 1]);
    for (const char *p = attn_text_body; *p;) {
      const char *nl = strchr(p, '\n');
      const size_t len = nl ? (size_t)(nl - p) : strlen(p);
      attn_emit_line(o, p, len, fe, sb_cstr(&suffix));
      p += len + (nl ? 1 : 0);
    }
    sb_free(&suffix);
    sb_append(o, "#undef GAT_FA_DK\n#undef GAT_FA_DV\n");
  }
  sb_append(o, "/* ---- end of the flash attention kernel ---- */\n\n");
}
