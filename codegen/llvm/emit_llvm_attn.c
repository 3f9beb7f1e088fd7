/* emit_llvm_attn.c — the flash attention kernel of -O2 code (LC_ATTENTION
 * calls marked attn_fast by pass_attention) built as LLVM IR: the algorithm
 * of the C text in codegen/kernels/kernels_attention.c, with explicit <VL x float>
 * vectors, llvm.fma and the same polynomial e^x, one copy per head-dim pair
 * (DK, DV constants, so LLVM unrolls the d loops).
 *
 * gat.flash_DK_DV(gat_attn_args *) appends the new K/V (kb) rows to the
 * caches at pos0 .. pos0+T-1 like the reference, then per head takes the
 * queries in tiles of QT = 2 VL (gat.fa_tile: queries in vector lanes, keys
 * in blocks of KB = 64, online softmax with running max/sum per lane, q.k and
 * p.V register-blocked over KR keys / value columns x 2 lane vectors); fewer
 * than QT/3 + 1 queries left (decode): one query at a time, vectorized along
 * the head dimension (gat.fa_row). Accumulation in f32 as the C kernel (about
 * 1e-6 relative to the double reference). VL and KR follow the GEMM kernel's
 * target choice (AVX-512: 16 x 8, AVX: 8 x 6, else 4 x 4).
 *
 * Variants (fe, kernels_attention.h; names gat.flash_DK_DV_p, _r, _pr): with
 * KERNELS_ATTENTION_POS query/row t sits at pos[t] (cache row, causal limit;
 * gat_attn_args.pos), a tile's key range spans its lanes' smallest to largest
 * position; with KERNELS_ATTENTION_RELBIAS the logit of (i, j) gets
 * relbias[clamp(c + j - i)] (contiguous rows: from a per-block table of
 * QT + KB - 1 entries read as lane vectors; positions: gathered per key). The
 * plain variant is built exactly as before. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "emit_llvm_int.h"
#include "gat_runtime.h"
#include "kernels_attention.h"

#define FA_KB 64

typedef struct FA {
  LL *L;
  int vl, kr, qt;
  int64_t dk, dv;
  int fe; /* KERNELS_ATTENTION_POS | KERNELS_ATTENTION_RELBIAS */
  LLVMTypeRef tv, tvi;
  LLVMValueRef A; /* the args pointer (i8*) of the function being built */
} FA;

/* ---- small builders ---- */
static LLVMValueRef I(FA *f, int64_t v) { return ll_i64(f->L, v); }
static LLVMValueRef F(FA *f, double v) { return LLVMConstReal(f->L->tf32, v); }
static LLVMValueRef add(FA *f, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(f->L->B, a, b, ""); }
static LLVMValueRef sub(FA *f, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSub(f->L->B, a, b, ""); }
static LLVMValueRef mul(FA *f, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildMul(f->L->B, a, b, ""); }
static LLVMValueRef smin(FA *f, LLVMValueRef a, LLVMValueRef b) { return ll_smin(f->L, a, b); }
static LLVMValueRef smax(FA *f, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(f->L->B, LLVMBuildICmp(f->L->B, LLVMIntSGT, a, b, ""), a, b, "");
}
static LLVMValueRef fgep(FA *f, LLVMValueRef p, LLVMValueRef i) { return ll_gep(f->L, f->L->tf32, p, i); }
static LLVMValueRef ldf(FA *f, LLVMValueRef p) { return LLVMBuildLoad2(f->L->B, f->L->tf32, p, ""); }
static LLVMValueRef vld(FA *f, LLVMValueRef p) { return ll_vload(f->L, f->tv, p); }
static void vst(FA *f, LLVMValueRef v, LLVMValueRef p) { ll_vstore(f->L, v, p); }
static LLVMValueRef splat(FA *f, LLVMValueRef s) { return ll_vsplat(f->L, f->tv, s); }
static LLVMValueRef vfma(FA *f, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) { return ll_vfma(f->L, f->tv, a, b, c); }
static LLVMValueRef sfma(FA *f, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) { return ll_fma_f32(f->L, a, b, c); }
/* a slot (alloca) holding a value of type t, initialized to v */
static LLVMValueRef slot(FA *f, LLVMTypeRef t, LLVMValueRef v) {
  LLVMValueRef s = ll_alloca(f->L, t, "");
  LLVMBuildStore(f->L->B, v, s);
  return s;
}
static LLVMValueRef get(FA *f, LLVMTypeRef t, LLVMValueRef s) { return LLVMBuildLoad2(f->L->B, t, s, ""); }
/* a float array of n elements on the stack, 64-byte aligned; returns float* */
static LLVMValueRef farray(FA *f, int64_t n, const char *name) {
  LLVMValueRef a = ll_alloca(f->L, LLVMArrayType(f->L->tf32, (unsigned)n), name);
  LLVMSetAlignment(a, 64);
  return LLVMBuildBitCast(f->L->B, a, f->L->tpf32, "");
}

/* gat_attn_args fields by byte offset (offsetof in this build's runtime header) */
static LLVMValueRef field(FA *f, size_t off, LLVMTypeRef t) {
  LL *L = f->L;
  LLVMValueRef p = ll_gep(L, L->ti8, f->A, ll_i64(L, (int64_t)off));
  return LLVMBuildLoad2(L->B, t, LLVMBuildBitCast(L->B, p, LLVMPointerType(t, 0), ""), "");
}
#define FP(name) field(f, offsetof(gat_attn_args, name), f->L->tpf32)
#define FI(name) field(f, offsetof(gat_attn_args, name), f->L->ti64)

/* pos[t] as i64 (variants with per-row positions) */
static LLVMValueRef row_pos(FA *f, LLVMValueRef t) {
  LL *L = f->L;
  LLVMValueRef ps = field(f, offsetof(gat_attn_args, pos), L->tpi32);
  return LLVMBuildSExt(L->B, LLVMBuildLoad2(L->B, L->ti32, ll_gep(L, L->ti32, ps, t), ""), L->ti64, "");
}
/* relbias[clamp(r, 0, len - 1)] */
static LLVMValueRef rb_at(FA *f, LLVMValueRef rb, LLVMValueRef len, LLVMValueRef r) {
  return ldf(f, fgep(f, rb, smax(f, smin(f, r, sub(f, len, I(f, 1))), I(f, 0))));
}

/* for (iv = from; iv < to; iv += step) (ll_loop_range) */
typedef LLLoop Loop;
static void loop_begin(FA *f, Loop *lp, LLVMValueRef from, LLVMValueRef to, int64_t step, const char *name) {
  ll_loop_range(f->L, lp, from, to, step, name);
}
static void loop_end(FA *f, Loop *lp) { ll_loop_end(f->L, lp); }

/* p ? p + i : zero (a pointer to a float 0: optional biases read without a branch) */
static LLVMValueRef opt_ptr(FA *f, LLVMValueRef p, LLVMValueRef i, LLVMValueRef zero) {
  LL *L = f->L;
  LLVMValueRef nn = LLVMBuildIsNotNull(L->B, p, "");
  LLVMValueRef safe = LLVMBuildSelect(L->B, nn, p, zero, "");
  return LLVMBuildSelect(L->B, nn, fgep(f, safe, i), zero, "");
}

/* e^x for x <= 0 (-inf allowed), lane-wise; 0 below -87. 2^n * p(r), n = round(x log2 e),
 * r = x - n ln 2 (two parts), p of degree 7: the constants of kernels_attention.c */
static LLVMValueRef vexp(FA *f, LLVMValueRef x) {
  LL *L = f->L;
  LLVMValueRef lo = splat(f, F(f, -87.0));
  LLVMValueRef small = LLVMBuildFCmp(L->B, LLVMRealOLT, x, lo, "");
  x = LLVMBuildSelect(L->B, small, lo, x, "");
  LLVMValueRef big = splat(f, F(f, 12582912.0));
  LLVMValueRef t = vfma(f, x, splat(f, F(f, 1.44269504088896341)), big);
  LLVMValueRef n = LLVMBuildFSub(L->B, t, big, "");
  LLVMValueRef nn = LLVMBuildFNeg(L->B, n, "");
  LLVMValueRef r = vfma(f, nn, splat(f, F(f, 0.693145751953125)), x);
  r = vfma(f, nn, splat(f, F(f, 1.428606765330187e-06)), r);
  static const double c[] = {1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1.0, 1.0};
  LLVMValueRef p = splat(f, F(f, 1.0 / 5040));
  for (int i = 0; i < 7; i++) p = vfma(f, p, r, splat(f, F(f, c[i])));
  LLVMValueRef ti = LLVMBuildBitCast(L->B, t, f->tvi, "");
  LLVMValueRef e = LLVMBuildAdd(L->B, LLVMBuildSub(L->B, ti, splat(f, ll_i32(L, 0x4B400000)), ""),
                                splat(f, ll_i32(L, 127)), "");
  e = LLVMBuildShl(L->B, e, splat(f, ll_i32(L, 23)), "");
  p = LLVMBuildFMul(L->B, p, LLVMBuildBitCast(L->B, e, f->tv, ""), "");
  return LLVMBuildSelect(L->B, small, LLVMConstNull(f->tv), p, "");
}

static LLVMValueRef vmax(FA *f, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(f->L->B, LLVMBuildFCmp(f->L->B, LLVMRealOGT, a, b, ""), a, b, "");
}

/* lanes lo .. lo+n-1 of v */
static LLVMValueRef part(FA *f, LLVMValueRef v, int lo, int n) {
  LL *L = f->L;
  LLVMValueRef idx[16];
  for (int i = 0; i < n; i++) idx[i] = ll_i32(L, lo + i);
  return LLVMBuildShuffleVector(L->B, v, LLVMGetUndef(LLVMTypeOf(v)), LLVMConstVector(idx, (unsigned)n), "");
}
/* the sum of the lanes: halves added until 4 are left, then (c0 + c2) + (c1 + c3) */
static LLVMValueRef hsum(FA *f, LLVMValueRef v) {
  LL *L = f->L;
  for (int n = f->vl; n > 4; n /= 2) v = LLVMBuildFAdd(L->B, part(f, v, 0, n / 2), part(f, v, n / 2, n / 2), "");
  LLVMValueRef e[4];
  for (int i = 0; i < 4; i++) e[i] = LLVMBuildExtractElement(L->B, v, ll_i32(L, i), "");
  return LLVMBuildFAdd(L->B, LLVMBuildFAdd(L->B, e[0], e[2], ""), LLVMBuildFAdd(L->B, e[1], e[3], ""), "");
}

static LLVMValueRef begin_fn(FA *f, const char *name, LLVMTypeRef *p, int n) {
  LL *L = f->L;
  LLVMValueRef fn = LLVMAddFunction(L->M, name, LLVMFunctionType(L->tv, p, (unsigned)n, 0));
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  char w[16];
  snprintf(w, sizeof w, "%d", f->vl * 32);
  LLVMAttributeRef a = LLVMCreateStringAttribute(L->C, "min-legal-vector-width", 22, w, (unsigned)strlen(w));
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, a);
  L->fn = fn;
  LLVMPositionBuilderAtEnd(L->B, LLVMAppendBasicBlockInContext(L->C, fn, "entry"));
  f->A = LLVMGetParam(fn, 0);
  return fn;
}

/* the head geometry every function needs */
typedef struct Geo {
  LLVMValueRef H, hk, ldk, ldv, pos0, scale, window, wf, zero;
} Geo;
static void geo(FA *f, Geo *g, LLVMValueRef h) {
  LL *L = f->L;
  g->H = FI(H);
  g->hk = LLVMBuildSDiv(L->B, h, LLVMBuildSDiv(L->B, g->H, FI(Hkv), ""), "hk");
  g->ldk = mul(f, FI(Hkv), I(f, f->dk));
  g->ldv = mul(f, FI(Hkv), I(f, f->dv));
  g->pos0 = FI(pos0);
  g->scale = LLVMBuildFPTrunc(L->B, field(f, offsetof(gat_attn_args, scale), L->tf64), L->tf32, "scale");
  g->window = FI(window);
  g->wf = LLVMBuildSIToFP(L->B, g->window, L->tf32, "w");
  g->zero = slot(f, L->tf32, F(f, 0.0));
}

/* j >= first visible key of query i: jlo = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0 */
static LLVMValueRef first_key(FA *f, Geo *g, LLVMValueRef i) {
  LL *L = f->L;
  LLVMValueRef lo = add(f, sub(f, i, g->window), I(f, 1));
  LLVMValueRef c = LLVMBuildAnd(L->B, LLVMBuildICmp(L->B, LLVMIntSGT, g->window, I(f, 0), ""),
                                LLVMBuildICmp(L->B, LLVMIntSGT, lo, I(f, 0), ""), "");
  return LLVMBuildSelect(L->B, c, lo, I(f, 0), "jlo");
}

/* ---- gat.fa_row(A, h, t): one query, vectorized along the head dimension ---- */
static LLVMValueRef build_row(FA *f, const char *name) {
  LL *L = f->L;
  LLVMTypeRef p[3] = {L->tp8, L->ti64, L->ti64};
  LLVMValueRef fn = begin_fn(f, name, p, 3);
  LLVMValueRef h = LLVMGetParam(fn, 1), t = LLVMGetParam(fn, 2);
  const int VL = f->vl, NKV = (int)(f->dk / VL), NVV = (int)(f->dv / VL), NVT = (int)(f->dv % VL);
  Geo g;
  geo(f, &g, h);
  LLVMValueRef i = f->fe & KERNELS_ATTENTION_POS ? row_pos(f, t) : add(f, g.pos0, t);
  LLVMValueRef th = add(f, mul(f, t, g.H), h);
  LLVMValueRef rb = NULL, rbl = NULL, rbo = NULL; /* relbias of key j: rb[clamp(rbo + j)] */
  if (f->fe & KERNELS_ATTENTION_RELBIAS) {
    rb = FP(relbias);
    rbl = FI(relbias_len);
    rbo = sub(f, LLVMBuildSDiv(L->B, sub(f, rbl, I(f, 1)), I(f, 2), ""), i);
  }
  LLVMValueRef qb = ldf(f, opt_ptr(f, FP(qb), th, g.zero));
  LLVMValueRef kbp = FP(kb), kbcp = FP(cache_kb);
  LLVMValueRef has_kb = LLVMBuildAnd(L->B, LLVMBuildIsNotNull(L->B, kbp, ""), LLVMBuildIsNotNull(L->B, kbcp, ""), "");
  LLVMValueRef kbc = LLVMBuildSelect(L->B, has_kb, fgep(f, kbcp, h), LLVMConstNull(L->tpf32), "kbc");
  LLVMValueRef q = fgep(f, FP(q), mul(f, th, I(f, f->dk)));
  LLVMValueRef ck = FP(cache_k), cv = FP(cache_v);
  LLVMValueRef *qv = xcalloc((size_t)NKV + 1, sizeof *qv);
  LLVMValueRef *ov = xcalloc((size_t)NVV + 1, sizeof *ov);
  LLVMValueRef otl[16];
  for (int c = 0; c < NKV; c++) qv[c] = vld(f, fgep(f, q, I(f, (int64_t)c * VL)));
  for (int c = 0; c < NVV; c++) ov[c] = slot(f, f->tv, LLVMConstNull(f->tv));
  for (int e = 0; e < NVT; e++) otl[e] = slot(f, L->tf32, F(f, 0.0));
  LLVMValueRef sc = farray(f, FA_KB, "sc");
  LLVMValueRef mx = slot(f, L->tf32, F(f, -1e30)), l = slot(f, L->tf32, F(f, 0.0));
  LLVMValueRef mb = ll_alloca(L, L->tf32, "mb");
  Loop lb, lj, lp;
  LLVMValueRef iend = add(f, i, I(f, 1));
  loop_begin(f, &lb, first_key(f, &g, i), iend, FA_KB, "j0");
  LLVMValueRef j0 = lb.iv;
  LLVMValueRef nk = smin(f, sub(f, iend, j0), I(f, FA_KB));
  LLVMBuildStore(L->B, get(f, L->tf32, mx), mb);
  loop_begin(f, &lj, I(f, 0), nk, 1, "jj");
  {
    LLVMValueRef j = add(f, j0, lj.iv);
    LLVMValueRef kr = fgep(f, ck, add(f, mul(f, j, g.ldk), mul(f, g.hk, I(f, f->dk))));
    LLVMValueRef acc = LLVMConstNull(f->tv);
    for (int c = 0; c < NKV; c++) acc = vfma(f, qv[c], vld(f, fgep(f, kr, I(f, (int64_t)c * VL))), acc);
    LLVMValueRef s = NKV > 0 ? hsum(f, acc) : F(f, 0.0);
    for (int64_t d = (int64_t)NKV * VL; d < f->dk; d++) s = sfma(f, ldf(f, fgep(f, q, I(f, d))), ldf(f, fgep(f, kr, I(f, d))), s);
    LLVMValueRef kbv = ldf(f, opt_ptr(f, kbc, mul(f, j, g.H), g.zero));
    LLVMValueRef bias = LLVMBuildSelect(L->B, has_kb, LLVMBuildFAdd(L->B, qb, kbv, ""), qb, "");
    s = sfma(f, s, g.scale, bias);
    if (rb) s = LLVMBuildFAdd(L->B, s, rb_at(f, rb, rbl, add(f, rbo, j)), "");
    LLVMBuildStore(L->B, s, fgep(f, sc, lj.iv));
    LLVMValueRef m0 = get(f, L->tf32, mb);
    LLVMBuildStore(L->B, LLVMBuildSelect(L->B, LLVMBuildFCmp(L->B, LLVMRealOGT, s, m0, ""), s, m0, ""), mb);
  }
  loop_end(f, &lj);
  loop_begin(f, &lp, nk, I(f, FA_KB), 1, "pad");
  LLVMBuildStore(L->B, F(f, -INFINITY), fgep(f, sc, lp.iv));
  loop_end(f, &lp);
  LLVMValueRef mbv = get(f, L->tf32, mb), mxv = get(f, L->tf32, mx);
  LLVMValueRef dm = LLVMBuildFSub(L->B, mxv, mbv, "");
  LLVMTypeRef tf = L->tf32;
  LLVMValueRef ex = ll_call(L, "expf", L->tf32, &tf, 1, &dm);
  LLVMValueRef alpha = LLVMBuildSelect(L->B, LLVMBuildFCmp(L->B, LLVMRealOLT, dm, F(f, -87.0), ""), F(f, 0.0), ex, "alpha");
  LLVMBuildStore(L->B, mbv, mx);
  LLVMValueRef ls = LLVMConstNull(f->tv), msp = splat(f, mbv);
  for (int jj = 0; jj < FA_KB; jj += VL) {
    LLVMValueRef pp = fgep(f, sc, I(f, jj));
    LLVMValueRef pv = vexp(f, LLVMBuildFSub(L->B, vld(f, pp), msp, ""));
    vst(f, pv, pp);
    ls = LLVMBuildFAdd(L->B, ls, pv, "");
  }
  LLVMBuildStore(L->B, sfma(f, get(f, L->tf32, l), alpha, hsum(f, ls)), l);
  LLVMValueRef asp = splat(f, alpha);
  for (int c = 0; c < NVV; c++) LLVMBuildStore(L->B, LLVMBuildFMul(L->B, get(f, f->tv, ov[c]), asp, ""), ov[c]);
  for (int e = 0; e < NVT; e++) LLVMBuildStore(L->B, LLVMBuildFMul(L->B, get(f, L->tf32, otl[e]), alpha, ""), otl[e]);
  loop_begin(f, &lj, I(f, 0), nk, 1, "jj");
  {
    LLVMValueRef pj = ldf(f, fgep(f, sc, lj.iv)), psp = splat(f, pj);
    LLVMValueRef vr = fgep(f, cv, add(f, mul(f, add(f, j0, lj.iv), g.ldv), mul(f, g.hk, I(f, f->dv))));
    for (int c = 0; c < NVV; c++)
      LLVMBuildStore(L->B, vfma(f, psp, vld(f, fgep(f, vr, I(f, (int64_t)c * VL))), get(f, f->tv, ov[c])), ov[c]);
    for (int e = 0; e < NVT; e++)
      LLVMBuildStore(L->B, sfma(f, pj, ldf(f, fgep(f, vr, I(f, (int64_t)NVV * VL + e))), get(f, L->tf32, otl[e])), otl[e]);
  }
  loop_end(f, &lj);
  loop_end(f, &lb);
  LLVMValueRef out = fgep(f, FP(out), mul(f, th, I(f, f->dv)));
  LLVMValueRef inv = LLVMBuildFDiv(L->B, F(f, 1.0), get(f, L->tf32, l), "inv"), isp = splat(f, inv);
  for (int c = 0; c < NVV; c++) vst(f, LLVMBuildFMul(L->B, get(f, f->tv, ov[c]), isp, ""), fgep(f, out, I(f, (int64_t)c * VL)));
  for (int e = 0; e < NVT; e++)
    LLVMBuildStore(L->B, LLVMBuildFMul(L->B, get(f, L->tf32, otl[e]), inv, ""), fgep(f, out, I(f, (int64_t)NVV * VL + e)));
  LLVMBuildRetVoid(L->B);
  free(qv);
  free(ov);
  return fn;
}

/* ---- gat.fa_tile(A, h, t0, nq): queries t0 .. t0+nq-1 of head h in lanes ---- */

/* o = o * alpha + p.V for value columns e0 .. e0+nr-1 (nr <= KR) of one key block */
static void pv_block(FA *f, LLVMValueRef ot, LLVMValueRef st, LLVMValueRef vbase, LLVMValueRef e0, int nr,
                     LLVMValueRef nk, LLVMValueRef ldv, LLVMValueRef *alpha) {
  LL *L = f->L;
  const int VL = f->vl, QT = f->qt;
  LLVMValueRef c0[16], c1[16];
  for (int r = 0; r < nr; r++) {
    LLVMValueRef op = fgep(f, ot, mul(f, add(f, e0, I(f, r)), I(f, QT)));
    c0[r] = slot(f, f->tv, LLVMBuildFMul(L->B, vld(f, op), alpha[0], ""));
    c1[r] = slot(f, f->tv, LLVMBuildFMul(L->B, vld(f, fgep(f, op, I(f, VL))), alpha[1], ""));
  }
  LLVMValueRef vp = fgep(f, vbase, e0);
  Loop lj;
  loop_begin(f, &lj, I(f, 0), nk, 1, "pv");
  LLVMValueRef sp = fgep(f, st, mul(f, lj.iv, I(f, QT)));
  LLVMValueRef p0 = vld(f, sp), p1 = vld(f, fgep(f, sp, I(f, VL)));
  LLVMValueRef vr = fgep(f, vp, mul(f, lj.iv, ldv));
  for (int r = 0; r < nr; r++) {
    LLVMValueRef x = splat(f, ldf(f, fgep(f, vr, I(f, r))));
    LLVMBuildStore(L->B, vfma(f, x, p0, get(f, f->tv, c0[r])), c0[r]);
    LLVMBuildStore(L->B, vfma(f, x, p1, get(f, f->tv, c1[r])), c1[r]);
  }
  loop_end(f, &lj);
  for (int r = 0; r < nr; r++) {
    LLVMValueRef op = fgep(f, ot, mul(f, add(f, e0, I(f, r)), I(f, QT)));
    vst(f, get(f, f->tv, c0[r]), op);
    vst(f, get(f, f->tv, c1[r]), fgep(f, op, I(f, VL)));
  }
}

static LLVMValueRef build_tile(FA *f, const char *name) {
  LL *L = f->L;
  LLVMTypeRef p[4] = {L->tp8, L->ti64, L->ti64, L->ti64};
  LLVMValueRef fn = begin_fn(f, name, p, 4);
  LLVMValueRef h = LLVMGetParam(fn, 1), t0 = LLVMGetParam(fn, 2), nq = LLVMGetParam(fn, 3);
  const int VL = f->vl, QT = f->qt, KR = f->kr;
  Geo g;
  geo(f, &g, h);
  LLVMValueRef ifirst, ilast;
  const int has_pos = (f->fe & KERNELS_ATTENTION_POS) != 0, has_rb = (f->fe & KERNELS_ATTENTION_RELBIAS) != 0;
  if (has_pos) { /* the lanes' smallest and largest positions */
    LLVMValueRef lo = slot(f, L->ti64, row_pos(f, t0)), hi = slot(f, L->ti64, get(f, L->ti64, lo));
    Loop lm;
    loop_begin(f, &lm, I(f, 1), nq, 1, "pm");
    LLVMValueRef px = row_pos(f, add(f, t0, lm.iv));
    LLVMBuildStore(L->B, smin(f, get(f, L->ti64, lo), px), lo);
    LLVMBuildStore(L->B, smax(f, get(f, L->ti64, hi), px), hi);
    loop_end(f, &lm);
    ifirst = get(f, L->ti64, lo);
    ilast = get(f, L->ti64, hi);
  } else {
    ifirst = add(f, g.pos0, t0);
    ilast = sub(f, add(f, ifirst, nq), I(f, 1));
  }
  LLVMValueRef rb = NULL, rbl = NULL, rbc = NULL, rbt = NULL, rbo = NULL, rtmp = NULL;
  if (has_rb) { /* bias of (i, j): rb[clamp(rbc + j - i)] */
    rb = FP(relbias);
    rbl = FI(relbias_len);
    rbc = LLVMBuildSDiv(L->B, sub(f, rbl, I(f, 1)), I(f, 2), "rbc");
    if (has_pos) { /* per lane rbo[x] = rbc - pos[x], gathered into rtmp per key */
      rbo = ll_alloca(L, LLVMArrayType(L->ti64, (unsigned)QT), "rbo");
      rbo = LLVMBuildBitCast(L->B, rbo, L->tpi64, "");
      rtmp = farray(f, QT, "rtmp");
    } else { /* one key block's biases: lane x, key jj at rbt[KB - 1 - jj + x] */
      rbt = farray(f, QT + FA_KB - 1, "rbt");
    }
  }
  LLVMValueRef qt = farray(f, f->dk * QT, "qt"), ot = farray(f, f->dv * QT, "ot");
  LLVMValueRef st = farray(f, (FA_KB + KR) * QT, "st"), tmp = farray(f, QT, "tmp");
  LLVMValueRef H = g.H, qp = FP(q), qbp = FP(qb);
  LLVMValueRef last = sub(f, nq, I(f, 1));
  Loop lx, ld;
  /* the queries transposed (lane x = query t0 + x; lanes past nq hold zeros), their positions
     and qb */
  loop_begin(f, &lx, I(f, 0), I(f, QT), 1, "x");
  {
    LLVMValueRef in = LLVMBuildICmp(L->B, LLVMIntSLT, lx.iv, nq, "");
    LLVMValueRef xc = smin(f, lx.iv, last);
    LLVMValueRef row = fgep(f, qp, mul(f, add(f, mul(f, add(f, t0, LLVMBuildSelect(L->B, in, lx.iv, I(f, 0), "")), H), h),
                                          I(f, f->dk)));
    loop_begin(f, &ld, I(f, 0), I(f, f->dk), 1, "d");
    LLVMValueRef v = LLVMBuildSelect(L->B, in, ldf(f, fgep(f, row, ld.iv)), F(f, 0.0), "");
    LLVMBuildStore(L->B, v, fgep(f, qt, add(f, mul(f, ld.iv, I(f, QT)), lx.iv)));
    loop_end(f, &ld);
    LLVMValueRef tx = add(f, t0, xc);
    LLVMValueRef ix = has_pos ? row_pos(f, tx) : add(f, ifirst, xc);
    if (rbo) LLVMBuildStore(L->B, sub(f, rbc, ix), ll_gep(L, L->ti64, rbo, lx.iv));
    LLVMBuildStore(L->B, LLVMBuildSIToFP(L->B, ix, L->tf32, ""), fgep(f, tmp, lx.iv));
    LLVMBuildStore(L->B, ldf(f, opt_ptr(f, qbp, add(f, mul(f, tx, H), h), g.zero)), fgep(f, ot, lx.iv));
  }
  loop_end(f, &lx);
  LLVMValueRef iv[2] = {vld(f, tmp), vld(f, fgep(f, tmp, I(f, VL)))};
  LLVMValueRef qbv[2] = {vld(f, ot), vld(f, fgep(f, ot, I(f, VL)))}; /* ot as scratch before it is zeroed */
  {
    LLVMTypeRef t3[3] = {L->tp8, L->ti32, L->ti64};
    LLVMValueRef v3[3] = {LLVMBuildBitCast(L->B, ot, L->tp8, ""), ll_i32(L, 0), I(f, f->dv * QT * 4)};
    ll_call(L, "memset", L->tp8, t3, 3, v3);
  }
  LLVMValueRef m[2], l[2];
  for (int v = 0; v < 2; v++) {
    m[v] = slot(f, f->tv, splat(f, F(f, -1e30))); /* finite: no inf - inf before the first visible key */
    l[v] = slot(f, f->tv, LLVMConstNull(f->tv));
  }
  LLVMValueRef kbp = FP(kb), kbcp = FP(cache_kb);
  LLVMValueRef has_kb = LLVMBuildAnd(L->B, LLVMBuildIsNotNull(L->B, kbp, ""), LLVMBuildIsNotNull(L->B, kbcp, ""), "");
  LLVMValueRef kbc = LLVMBuildSelect(L->B, has_kb, fgep(f, kbcp, h), LLVMConstNull(L->tpf32), "kbc");
  LLVMValueRef ck = fgep(f, FP(cache_k), mul(f, g.hk, I(f, f->dk)));
  LLVMValueRef cvh = fgep(f, FP(cache_v), mul(f, g.hk, I(f, f->dv)));
  LLVMValueRef wpos = LLVMBuildICmp(L->B, LLVMIntSGT, g.window, I(f, 0), "");
  LLVMValueRef wsp = splat(f, g.wf), ssp = splat(f, g.scale);
  Loop lb, lk, lj;
  LLVMValueRef iend = add(f, ilast, I(f, 1));
  loop_begin(f, &lb, first_key(f, &g, ifirst), iend, FA_KB, "j0");
  LLVMValueRef j0 = lb.iv;
  LLVMValueRef nk = smin(f, sub(f, iend, j0), I(f, FA_KB));
  /* raw scores q.k: KR keys x 2 lane vectors of accumulators */
  loop_begin(f, &lk, I(f, 0), nk, KR, "jj");
  {
    LLVMValueRef kr = smin(f, sub(f, nk, lk.iv), I(f, KR));
    LLVMValueRef kp[16], c0[16], c1[16];
    for (int r = 0; r < KR; r++) {
      LLVMValueRef jr = add(f, add(f, j0, lk.iv), smin(f, I(f, r), sub(f, kr, I(f, 1))));
      kp[r] = fgep(f, ck, mul(f, jr, g.ldk));
      c0[r] = slot(f, f->tv, LLVMConstNull(f->tv));
      c1[r] = slot(f, f->tv, LLVMConstNull(f->tv));
    }
    loop_begin(f, &ld, I(f, 0), I(f, f->dk), 1, "d");
    LLVMValueRef qd = fgep(f, qt, mul(f, ld.iv, I(f, QT)));
    LLVMValueRef q0 = vld(f, qd), q1 = vld(f, fgep(f, qd, I(f, VL)));
    for (int r = 0; r < KR; r++) {
      LLVMValueRef kd = splat(f, ldf(f, fgep(f, kp[r], ld.iv)));
      LLVMBuildStore(L->B, vfma(f, kd, q0, get(f, f->tv, c0[r])), c0[r]);
      LLVMBuildStore(L->B, vfma(f, kd, q1, get(f, f->tv, c1[r])), c1[r]);
    }
    loop_end(f, &ld);
    for (int r = 0; r < KR; r++) { /* rows past nk land in the spare KR rows of st */
      LLVMValueRef sp = fgep(f, st, mul(f, add(f, lk.iv, I(f, r)), I(f, QT)));
      vst(f, get(f, f->tv, c0[r]), sp);
      vst(f, get(f, f->tv, c1[r]), fgep(f, sp, I(f, VL)));
    }
  }
  loop_end(f, &lk);
  /* scale, biases, mask; the block's running max */
  LLVMValueRef mn[2];
  for (int v = 0; v < 2; v++) mn[v] = slot(f, f->tv, get(f, f->tv, m[v]));
  if (rbt) {
    Loop lr;
    loop_begin(f, &lr, I(f, 0), I(f, QT + FA_KB - 1), 1, "rbk");
    LLVMValueRef r = sub(f, sub(f, add(f, rbc, add(f, j0, I(f, FA_KB - 1))), ifirst), lr.iv);
    LLVMBuildStore(L->B, rb_at(f, rb, rbl, r), fgep(f, rbt, lr.iv));
    loop_end(f, &lr);
  }
  loop_begin(f, &lj, I(f, 0), nk, 1, "jj");
  {
    LLVMValueRef j = add(f, j0, lj.iv);
    LLVMValueRef rbp = NULL; /* this key's lane biases: QT floats */
    if (rbt) rbp = fgep(f, rbt, sub(f, I(f, FA_KB - 1), lj.iv));
    if (rtmp) {
      Loop lr;
      loop_begin(f, &lr, I(f, 0), I(f, QT), 1, "rbx");
      LLVMValueRef o = LLVMBuildLoad2(L->B, L->ti64, ll_gep(L, L->ti64, rbo, lr.iv), "");
      LLVMBuildStore(L->B, rb_at(f, rb, rbl, add(f, o, j)), fgep(f, rtmp, lr.iv));
      loop_end(f, &lr);
      rbp = rtmp;
    }
    LLVMValueRef kbj = splat(f, ldf(f, opt_ptr(f, kbc, mul(f, j, H), g.zero)));
    LLVMValueRef jsp = splat(f, LLVMBuildSIToFP(L->B, j, L->tf32, ""));
    LLVMValueRef sp = fgep(f, st, mul(f, lj.iv, I(f, QT)));
    for (int v = 0; v < 2; v++) {
      LLVMValueRef pv = v ? fgep(f, sp, I(f, VL)) : sp;
      LLVMValueRef s = vfma(f, vld(f, pv), ssp, LLVMBuildFAdd(L->B, qbv[v], kbj, ""));
      if (rbp) s = LLVMBuildFAdd(L->B, s, vld(f, v ? fgep(f, rbp, I(f, VL)) : rbp), "");
      LLVMValueRef vis = LLVMBuildFCmp(L->B, LLVMRealOLE, jsp, iv[v], "");
      LLVMValueRef inw = LLVMBuildFCmp(L->B, LLVMRealOLT, LLVMBuildFSub(L->B, iv[v], wsp, ""), jsp, "");
      vis = LLVMBuildAnd(L->B, vis, LLVMBuildSelect(L->B, wpos, inw, LLVMConstAllOnes(LLVMTypeOf(inw)), ""), "");
      s = LLVMBuildSelect(L->B, vis, s, splat(f, F(f, -INFINITY)), "");
      vst(f, s, pv);
      LLVMBuildStore(L->B, vmax(f, get(f, f->tv, mn[v]), s), mn[v]);
    }
  }
  loop_end(f, &lj);
  LLVMValueRef alpha[2], ls[2];
  for (int v = 0; v < 2; v++) {
    LLVMValueRef mnv = get(f, f->tv, mn[v]);
    alpha[v] = vexp(f, LLVMBuildFSub(L->B, get(f, f->tv, m[v]), mnv, ""));
    LLVMBuildStore(L->B, mnv, m[v]);
    ls[v] = slot(f, f->tv, LLVMConstNull(f->tv));
  }
  loop_begin(f, &lj, I(f, 0), nk, 1, "jj");
  {
    LLVMValueRef sp = fgep(f, st, mul(f, lj.iv, I(f, QT)));
    for (int v = 0; v < 2; v++) {
      LLVMValueRef pv = v ? fgep(f, sp, I(f, VL)) : sp;
      LLVMValueRef pr = vexp(f, LLVMBuildFSub(L->B, vld(f, pv), get(f, f->tv, m[v]), ""));
      vst(f, pr, pv);
      LLVMBuildStore(L->B, LLVMBuildFAdd(L->B, get(f, f->tv, ls[v]), pr, ""), ls[v]);
    }
  }
  loop_end(f, &lj);
  for (int v = 0; v < 2; v++) LLVMBuildStore(L->B, vfma(f, get(f, f->tv, l[v]), alpha[v], get(f, f->tv, ls[v])), l[v]);
  /* o = o * alpha + p.V: KR value columns x 2 lane vectors */
  LLVMValueRef vbase = fgep(f, cvh, mul(f, j0, g.ldv));
  int64_t ef = f->dv - f->dv % KR;
  if (ef > 0) {
    Loop le;
    loop_begin(f, &le, I(f, 0), I(f, ef), KR, "e0");
    pv_block(f, ot, st, vbase, le.iv, KR, nk, g.ldv, alpha);
    loop_end(f, &le);
  }
  if (ef < f->dv) pv_block(f, ot, st, vbase, I(f, ef), (int)(f->dv - ef), nk, g.ldv, alpha);
  loop_end(f, &lb);
  /* normalize, then row by row: strided reads from the stack, contiguous writes of out */
  LLVMValueRef inv[2];
  for (int v = 0; v < 2; v++) inv[v] = LLVMBuildFDiv(L->B, splat(f, F(f, 1.0)), get(f, f->tv, l[v]), "");
  Loop le, lq;
  loop_begin(f, &le, I(f, 0), I(f, f->dv), 1, "e");
  {
    LLVMValueRef op = fgep(f, ot, mul(f, le.iv, I(f, QT)));
    vst(f, LLVMBuildFMul(L->B, vld(f, op), inv[0], ""), op);
    LLVMValueRef op1 = fgep(f, op, I(f, VL));
    vst(f, LLVMBuildFMul(L->B, vld(f, op1), inv[1], ""), op1);
  }
  loop_end(f, &le);
  LLVMValueRef outp = FP(out);
  loop_begin(f, &lq, I(f, 0), nq, 1, "x");
  {
    LLVMValueRef orow = fgep(f, outp, mul(f, add(f, mul(f, add(f, t0, lq.iv), H), h), I(f, f->dv)));
    loop_begin(f, &le, I(f, 0), I(f, f->dv), 1, "e");
    LLVMBuildStore(L->B, ldf(f, fgep(f, ot, add(f, mul(f, le.iv, I(f, QT)), lq.iv))), fgep(f, orow, le.iv));
    loop_end(f, &le);
  }
  loop_end(f, &lq);
  LLVMBuildRetVoid(L->B);
  return fn;
}

/* memcpy of n floats */
static void fcopy(FA *f, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef n) {
  ll_memcpy(f->L, dst, src, mul(f, n, I(f, 4)), 0);
}

/* ---- gat.flash_DK_DV(A): append, then every head, tiles or single rows ---- */
static LLVMValueRef build_flash(FA *f, const char *name, LLVMValueRef tile, LLVMValueRef row) {
  LL *L = f->L;
  LLVMValueRef fn = begin_fn(f, name, &L->tp8, 1);
  LLVMValueRef T = FI(T), H = FI(H), Hkv = FI(Hkv), pos0 = FI(pos0);
  LLVMValueRef ck = FP(cache_k), cv = FP(cache_v), kp = FP(k), vp = FP(v), kbp = FP(kb), ckb = FP(cache_kb);
  LLVMValueRef nkr = mul(f, Hkv, I(f, f->dk)), nvr = mul(f, Hkv, I(f, f->dv));
  LLVMValueRef has_kb = LLVMBuildAnd(L->B, LLVMBuildIsNotNull(L->B, kbp, ""), LLVMBuildIsNotNull(L->B, ckb, ""), "");
  Loop lt;
  loop_begin(f, &lt, I(f, 0), T, 1, "t");
  {
    LLVMValueRef pt = f->fe & KERNELS_ATTENTION_POS ? row_pos(f, lt.iv) : add(f, pos0, lt.iv);
    fcopy(f, fgep(f, ck, mul(f, pt, nkr)), fgep(f, kp, mul(f, lt.iv, nkr)), nkr);
    fcopy(f, fgep(f, cv, mul(f, pt, nvr)), fgep(f, vp, mul(f, lt.iv, nvr)), nvr);
    LLVMBasicBlockRef yes = ll_block(L, "kb"), no = ll_block(L, "kb.done");
    LLVMBuildCondBr(L->B, has_kb, yes, no);
    LLVMPositionBuilderAtEnd(L->B, yes);
    fcopy(f, fgep(f, ckb, mul(f, pt, H)), fgep(f, kbp, mul(f, lt.iv, H)), H);
    LLVMBuildBr(L->B, no);
    LLVMPositionBuilderAtEnd(L->B, no);
  }
  loop_end(f, &lt);
  Loop lh, lq, lx;
  loop_begin(f, &lh, I(f, 0), H, 1, "h");
  loop_begin(f, &lq, I(f, 0), T, f->qt, "t0");
  {
    LLVMValueRef nq = smin(f, sub(f, T, lq.iv), I(f, f->qt));
    LLVMBasicBlockRef bt = ll_block(L, "tile"), br = ll_block(L, "rows"), done = ll_block(L, "t0.next");
    LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSGE, nq, I(f, f->qt / 3 + 1), ""), bt, br);
    LLVMPositionBuilderAtEnd(L->B, bt);
    LLVMValueRef a4[4] = {f->A, lh.iv, lq.iv, nq};
    LLVMBuildCall2(L->B, LLVMGlobalGetValueType(tile), tile, a4, 4, "");
    LLVMBuildBr(L->B, done);
    LLVMPositionBuilderAtEnd(L->B, br);
    loop_begin(f, &lx, I(f, 0), nq, 1, "x");
    LLVMValueRef a3[3] = {f->A, lh.iv, add(f, lq.iv, lx.iv)};
    LLVMBuildCall2(L->B, LLVMGlobalGetValueType(row), row, a3, 3, "");
    loop_end(f, &lx);
    LLVMBuildBr(L->B, done);
    LLVMPositionBuilderAtEnd(L->B, done);
  }
  loop_end(f, &lq);
  loop_end(f, &lh);
  LLVMBuildRetVoid(L->B);
  return fn;
}

LLVMValueRef ll_flash_attn_fn(LL *L, int64_t dk, int64_t dv, int fe) {
  char name[64], tname[64], rname[64], sfx[8] = "";
  if (fe)
    snprintf(sfx, sizeof sfx, "_%s%s", fe & KERNELS_ATTENTION_POS ? "p" : "", fe & KERNELS_ATTENTION_RELBIAS ? "r" : "");
  snprintf(name, sizeof name, "gat.flash_%lld_%lld%s", (long long)dk, (long long)dv, sfx);
  LLVMValueRef fn = LLVMGetNamedFunction(L->M, name);
  if (fn) return fn;
  snprintf(tname, sizeof tname, "gat.fa_tile_%lld_%lld%s", (long long)dk, (long long)dv, sfx);
  snprintf(rname, sizeof rname, "gat.fa_row_%lld_%lld%s", (long long)dk, (long long)dv, sfx);
  LLVMBasicBlockRef saved_bb = LLVMGetInsertBlock(L->B);
  LLVMValueRef saved_fn = L->fn;
  FA f;
  memset(&f, 0, sizeof f);
  f.L = L;
  f.vl = L->vl >= 16 ? 16 : L->vl >= 8 ? 8 : 4;
  f.kr = f.vl == 16 ? 8 : f.vl == 8 ? 6 : 4;
  f.qt = 2 * f.vl;
  f.dk = dk;
  f.dv = dv;
  f.fe = fe;
  f.tv = LLVMVectorType(L->tf32, (unsigned)f.vl);
  f.tvi = LLVMVectorType(L->ti32, (unsigned)f.vl);
  LLVMValueRef tile = build_tile(&f, tname);
  LLVMValueRef row = build_row(&f, rname);
  fn = build_flash(&f, name, tile, row);
  L->fn = saved_fn;
  if (saved_bb) LLVMPositionBuilderAtEnd(L->B, saved_bb);
  return fn;
}
