/* emit_llvm_scan.c — the chunked linear-attention scan kernels of -O2 code
 * (LK_SCAN kernels marked scan_chunk by pass_chunk, loopir.h) built as LLVM
 * IR: the algorithm, chunk size, workspace layout (kernels_scan_ws_floats)
 * and operation order of the C text in codegen/kernels/kernels_scan.c, with explicit
 * <VL x float> vectors and llvm.fma in the small GEMM and llvm.fma where the
 * C text's FMA contraction fuses a multiply-add.
 *
 *   gat.cs_gemm(M, N, Kd, a, lda, b, ldb, c, ldc, acc): c = (acc ? c : 0) + a . b;
 *     column blocks of 2 VL outermost, MR rows x 2 vectors of accumulators
 *     (AVX-512: VL 16, MR 8; AVX: 8, 4; otherwise 4, 4), left-over rows one
 *     at a time, left-over columns as row axpys.
 *   gat.chunk_gla(q, k, v, gk, S, o, ws, T, H, K, V, scale)
 *   gat.chunk_delta(q, k, v, beta, decay, S, o, ws, T, H, G, K, V, scale)
 *     (decay may be null: DeltaNet without a decay).
 * Each is defined the first time a kernel calls it (ll_scan_chunk_call), so a
 * model without a marked scan carries none of them. The per-chunk math is in
 * kernels_scan.c's comments and docs/optimizer.md ("Chunked scans"). */
#include <string.h>

#include "emit_llvm_int.h"
#include "kernels_scan.h"

#define CS_C KERNELS_SCAN_CHUNK
#define CS_MAXLOG 30.0 /* GLA: largest |cumulative log decay| of a chunk for the factored form */

typedef struct SC {
  LL *L;
  int vl, mr;
  LLVMTypeRef tv;
  LLVMValueRef gemm; /* gat.cs_gemm */
} SC;

/* ---- small builders ---- */
static LLVMValueRef I(SC *s, int64_t v) { return ll_i64(s->L, v); }
static LLVMValueRef F(SC *s, float v) { return LLVMConstReal(s->L->tf32, (double)v); }
static LLVMValueRef D(SC *s, double v) { return LLVMConstReal(s->L->tf64, v); }
static LLVMValueRef add(SC *s, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(s->L->B, a, b, ""); }
static LLVMValueRef sub(SC *s, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSub(s->L->B, a, b, ""); }
static LLVMValueRef mul(SC *s, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildMul(s->L->B, a, b, ""); }
static LLVMValueRef fmul(SC *s, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(s->L->B, a, b, ""); }
static LLVMValueRef smin(SC *s, LLVMValueRef a, LLVMValueRef b) { return ll_smin(s->L, a, b); }
static LLVMValueRef fg(SC *s, LLVMValueRef p, LLVMValueRef i) { return ll_gep(s->L, s->L->tf32, p, i); }
static LLVMValueRef dg(SC *s, LLVMValueRef p, LLVMValueRef i) { return ll_gep(s->L, s->L->tf64, p, i); }
static LLVMValueRef ldf(SC *s, LLVMValueRef p) { return LLVMBuildLoad2(s->L->B, s->L->tf32, p, ""); }
static LLVMValueRef ldd(SC *s, LLVMValueRef p) { return LLVMBuildLoad2(s->L->B, s->L->tf64, p, ""); }
static void st(SC *s, LLVMValueRef v, LLVMValueRef p) { LLVMBuildStore(s->L->B, v, p); }
static LLVMValueRef vld(SC *s, LLVMValueRef p) { return ll_vload(s->L, s->tv, p); }
static void vst(SC *s, LLVMValueRef v, LLVMValueRef p) { ll_vstore(s->L, v, p); }
static LLVMValueRef splat(SC *s, LLVMValueRef x) { return ll_vsplat(s->L, s->tv, x); }
static LLVMValueRef vfma(SC *s, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) { return ll_vfma(s->L, s->tv, a, b, c); }
/* a * b + c rounded once (the C text's contracted multiply-add) */
static LLVMValueRef sfma(SC *s, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) { return ll_fma_f32(s->L, a, b, c); }
/* the libm function of an intrinsic (llvm.exp.f32 -> expf, llvm.exp.f64 -> exp, llvm.log.f64 -> log) */
static LLVMValueRef math1(SC *s, const char *name, LLVMTypeRef t, LLVMValueRef x) {
  return ll_call(s->L, name, t, &t, 1, &x);
}
static LLVMValueRef slot(SC *s, LLVMTypeRef t, LLVMValueRef v) {
  LLVMValueRef p = ll_alloca(s->L, t, "");
  LLVMBuildStore(s->L->B, v, p);
  return p;
}
static LLVMValueRef get(SC *s, LLVMTypeRef t, LLVMValueRef p) { return LLVMBuildLoad2(s->L->B, t, p, ""); }

/* for (iv = from; iv < to; iv += step) (ll_loop_range) */
typedef LLLoop Lp;
static void lbegin(SC *s, Lp *lp, LLVMValueRef from, LLVMValueRef to, int64_t step, const char *name) {
  ll_loop_range(s->L, lp, from, to, step, name);
}
static void lend(SC *s, Lp *lp) { ll_loop_end(s->L, lp); }
/* if (cond) { ... } : returns the join block for if_end */
static LLVMBasicBlockRef if_begin(SC *s, LLVMValueRef cond, const char *name) {
  LLVMBasicBlockRef yes = ll_block(s->L, name), done = ll_block(s->L, "endif");
  LLVMBuildCondBr(s->L->B, cond, yes, done);
  LLVMPositionBuilderAtEnd(s->L->B, yes);
  return done;
}
static void if_end(SC *s, LLVMBasicBlockRef done) {
  LLVMBuildBr(s->L->B, done);
  LLVMPositionBuilderAtEnd(s->L->B, done);
}

static LLVMValueRef begin_fn(SC *s, const char *name, LLVMTypeRef *p, int n) {
  LL *L = s->L;
  LLVMValueRef f = LLVMAddFunction(L->M, name, LLVMFunctionType(L->tv, p, (unsigned)n, 0));
  LLVMSetLinkage(f, LLVMInternalLinkage);
  char w[16];
  snprintf(w, sizeof w, "%d", s->vl * 32);
  LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                          LLVMCreateStringAttribute(L->C, "min-legal-vector-width", 22, w, (unsigned)strlen(w)));
  /* out of line: a call per scan and prefill (the chunk kernels), per product and chunk (gat.cs_gemm,
     seven call sites in gat.chunk_delta) */
  LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                          LLVMCreateEnumAttribute(L->C, LLVMGetEnumAttributeKindForName("noinline", 8), 0));
  L->fn = f;
  LLVMPositionBuilderAtEnd(L->B, LLVMAppendBasicBlockInContext(L->C, f, "entry"));
  return f;
}
static void call_gemm(SC *s, LLVMValueRef M, LLVMValueRef N, LLVMValueRef Kd, LLVMValueRef a, LLVMValueRef lda,
                      LLVMValueRef b, LLVMValueRef ldb, LLVMValueRef c, LLVMValueRef ldc, int acc) {
  LLVMValueRef v[10] = {M, N, Kd, a, lda, b, ldb, c, ldc, LLVMConstInt(s->L->ti1, (unsigned long long)acc, 0)};
  LLVMBuildCall2(s->L->B, LLVMGlobalGetValueType(s->gemm), s->gemm, v, 10, "");
}

/* ---- gat.cs_gemm ---- */
static void build_gemm(SC *s) {
  LL *L = s->L;
  s->gemm = LLVMGetNamedFunction(L->M, "gat.cs_gemm");
  if (s->gemm) return;
  LLVMTypeRef p[10] = {L->ti64, L->ti64, L->ti64, L->tpf32, L->ti64, L->tpf32, L->ti64, L->tpf32, L->ti64, L->ti1};
  LLVMValueRef f = begin_fn(s, "gat.cs_gemm", p, 10);
  s->gemm = f;
  LLVMValueRef M = LLVMGetParam(f, 0), N = LLVMGetParam(f, 1), Kd = LLVMGetParam(f, 2), a = LLVMGetParam(f, 3);
  LLVMValueRef lda = LLVMGetParam(f, 4), b = LLVMGetParam(f, 5), ldb = LLVMGetParam(f, 6), c = LLVMGetParam(f, 7);
  LLVMValueRef ldc = LLVMGetParam(f, 8), acc = LLVMGetParam(f, 9);
  const int VL = s->vl, MR = s->mr, NR = 2 * VL;
  LLVMValueRef z = LLVMConstNull(s->tv);
  LLVMValueRef x0[8], x1[8], ar[8], cr[8];
  for (int r = 0; r < MR; r++) {
    x0[r] = ll_alloca(L, s->tv, "x0");
    x1[r] = ll_alloca(L, s->tv, "x1");
  }
  Lp ln, lm, lk, lr;
  lbegin(s, &ln, I(s, 0), sub(s, N, I(s, NR - 1)), NR, "n0"); /* n0 + 2 VL <= N */
  LLVMValueRef n = ln.iv;
  lbegin(s, &lm, I(s, 0), sub(s, M, I(s, MR - 1)), MR, "m"); /* m + MR <= M */
  for (int r = 0; r < MR; r++) {
    LLVMValueRef row = add(s, lm.iv, I(s, r));
    ar[r] = fg(s, a, mul(s, row, lda));
    cr[r] = fg(s, c, add(s, mul(s, row, ldc), n));
    LLVMValueRef c0 = vld(s, cr[r]), c1 = vld(s, fg(s, cr[r], I(s, VL)));
    st(s, LLVMBuildSelect(L->B, acc, c0, z, ""), x0[r]);
    st(s, LLVMBuildSelect(L->B, acc, c1, z, ""), x1[r]);
  }
  lbegin(s, &lk, I(s, 0), Kd, 1, "k");
  {
    LLVMValueRef bp = fg(s, b, add(s, mul(s, lk.iv, ldb), n));
    LLVMValueRef b0 = vld(s, bp), b1 = vld(s, fg(s, bp, I(s, VL)));
    for (int r = 0; r < MR; r++) {
      LLVMValueRef av = splat(s, ldf(s, fg(s, ar[r], lk.iv)));
      st(s, vfma(s, av, b0, get(s, s->tv, x0[r])), x0[r]);
      st(s, vfma(s, av, b1, get(s, s->tv, x1[r])), x1[r]);
    }
  }
  lend(s, &lk);
  for (int r = 0; r < MR; r++) {
    vst(s, get(s, s->tv, x0[r]), cr[r]);
    vst(s, get(s, s->tv, x1[r]), fg(s, cr[r], I(s, VL)));
  }
  lend(s, &lm);
  lbegin(s, &lr, lm.iv, M, 1, "mr"); /* left-over rows of this column block */
  {
    LLVMValueRef a1 = fg(s, a, mul(s, lr.iv, lda)), c1p = fg(s, c, add(s, mul(s, lr.iv, ldc), n));
    LLVMValueRef c0 = vld(s, c1p), c1 = vld(s, fg(s, c1p, I(s, VL)));
    st(s, LLVMBuildSelect(L->B, acc, c0, z, ""), x0[0]);
    st(s, LLVMBuildSelect(L->B, acc, c1, z, ""), x1[0]);
    lbegin(s, &lk, I(s, 0), Kd, 1, "k1");
    LLVMValueRef bp = fg(s, b, add(s, mul(s, lk.iv, ldb), n));
    LLVMValueRef av = splat(s, ldf(s, fg(s, a1, lk.iv)));
    st(s, vfma(s, av, vld(s, bp), get(s, s->tv, x0[0])), x0[0]);
    st(s, vfma(s, av, vld(s, fg(s, bp, I(s, VL))), get(s, s->tv, x1[0])), x1[0]);
    lend(s, &lk);
    vst(s, get(s, s->tv, x0[0]), c1p);
    vst(s, get(s, s->tv, x1[0]), fg(s, c1p, I(s, VL)));
  }
  lend(s, &lr);
  lend(s, &ln);
  LLVMValueRef n0 = ln.iv;
  /* left-over columns: row axpys */
  LLVMBasicBlockRef done = if_begin(s, LLVMBuildICmp(L->B, LLVMIntSLT, n0, N, ""), "tail");
  lbegin(s, &lm, I(s, 0), M, 1, "tm");
  {
    LLVMValueRef crow = fg(s, c, mul(s, lm.iv, ldc));
    LLVMBasicBlockRef d2 = if_begin(s, LLVMBuildNot(L->B, acc, ""), "zero");
    Lp lz;
    lbegin(s, &lz, n0, N, 1, "tz");
    st(s, F(s, 0.0f), fg(s, crow, lz.iv));
    lend(s, &lz);
    if_end(s, d2);
    lbegin(s, &lk, I(s, 0), Kd, 1, "tk");
    LLVMValueRef av = ldf(s, fg(s, a, add(s, mul(s, lm.iv, lda), lk.iv)));
    LLVMValueRef brow = fg(s, b, mul(s, lk.iv, ldb));
    Lp lj;
    lbegin(s, &lj, n0, N, 1, "tj");
    LLVMValueRef cp = fg(s, crow, lj.iv);
    st(s, sfma(s, av, ldf(s, fg(s, brow, lj.iv)), ldf(s, cp)), cp);
    lend(s, &lj);
    lend(s, &lk);
  }
  lend(s, &lm);
  if_end(s, done);
  LLVMBuildRetVoid(L->B);
}

/* gat_cs_exp: e^x in f32 for |x| <= 87, 2^n times a degree-6 Taylor polynomial of r */
static LLVMValueRef cs_exp(SC *s, LLVMValueRef x) {
  LL *L = s->L;
  LLVMValueRef lo = F(s, -87.0f), hi = F(s, 87.0f);
  x = LLVMBuildSelect(L->B, LLVMBuildFCmp(L->B, LLVMRealOLT, x, lo, ""), lo,
                      LLVMBuildSelect(L->B, LLVMBuildFCmp(L->B, LLVMRealOGT, x, hi, ""), hi, x, ""), "");
  LLVMValueRef nf = fmul(s, x, F(s, 1.44269504f));
  nf = LLVMBuildSelect(L->B, LLVMBuildFCmp(L->B, LLVMRealOLT, nf, F(s, 0.0f), ""),
                       LLVMBuildFSub(L->B, nf, F(s, 0.5f), ""), LLVMBuildFAdd(L->B, nf, F(s, 0.5f), ""), "");
  LLVMValueRef ni = LLVMBuildFPToSI(L->B, nf, L->ti32, "");
  LLVMValueRef fn = LLVMBuildSIToFP(L->B, ni, L->tf32, "");
  LLVMValueRef nn = LLVMBuildFNeg(L->B, fn, "");
  LLVMValueRef r = sfma(s, nn, F(s, 0.693145751953125f), x);
  r = sfma(s, nn, F(s, 1.428606765330187e-06f), r);
  LLVMValueRef p = sfma(s, r, F(s, 0.0013888889f), F(s, 0.0083333333f));
  p = sfma(s, r, p, F(s, 0.041666667f));
  p = sfma(s, r, p, F(s, 0.16666667f));
  p = sfma(s, r, p, F(s, 0.5f));
  p = sfma(s, r, p, F(s, 1.0f));
  p = sfma(s, r, p, F(s, 1.0f));
  LLVMValueRef e = LLVMBuildShl(L->B, LLVMBuildAdd(L->B, ni, ll_i32(L, 127), ""), ll_i32(L, 23), "");
  return fmul(s, p, LLVMBuildBitCast(L->B, e, L->tf32, ""));
}

/* ---- gat.chunk_gla ---- */
static LLVMValueRef build_gla(SC *s) {
  LL *L = s->L;
  LLVMTypeRef p[12] = {L->tpf32, L->tpf32, L->tpf32, L->tpf32, L->tpf32, L->tpf32, L->tpf32,
                       L->ti64,  L->ti64,  L->ti64,  L->ti64,  L->tf32};
  LLVMValueRef f = begin_fn(s, "gat.chunk_gla", p, 12);
  LLVMValueRef q = LLVMGetParam(f, 0), k = LLVMGetParam(f, 1), v = LLVMGetParam(f, 2), gk = LLVMGetParam(f, 3);
  LLVMValueRef S = LLVMGetParam(f, 4), o = LLVMGetParam(f, 5), ws = LLVMGetParam(f, 6), T = LLVMGetParam(f, 7);
  LLVMValueRef H = LLVMGetParam(f, 8), K = LLVMGetParam(f, 9), V = LLVMGetParam(f, 10), scale = LLVMGetParam(f, 11);
  LLVMValueRef C = I(s, CS_C), CK = mul(s, C, K);
  LLVMValueRef b = LLVMBuildBitCast(L->B, ws, L->tpf64, ""); /* [C, K] cumulative log decay */
  LLVMValueRef qt = fg(s, ws, mul(s, I(s, 2), CK));        /* [C, K]: e^b, then q e^b scale */
  LLVMValueRef kt = fg(s, qt, CK), kh = fg(s, kt, CK);     /* k e^-b, k e^(b_n - b) */
  LLVMValueRef ktT = fg(s, kh, CK), khT = fg(s, ktT, CK);  /* [K, C] */
  LLVMValueRef A = fg(s, khT, CK), en = fg(s, A, I(s, CS_C * CS_C));
  LLVMValueRef ok = slot(s, L->ti32, ll_i32(L, 1));
  LLVMValueRef HV = mul(s, H, V);
  Lp lh, lc, lt, li, lj;
  lbegin(s, &lh, I(s, 0), H, 1, "h");
  LLVMValueRef Sh = fg(s, S, mul(s, mul(s, lh.iv, K), V));
  lbegin(s, &lc, I(s, 0), T, CS_C, "c0");
  LLVMValueRef c0 = lc.iv;
  LLVMValueRef n = smin(s, sub(s, T, c0), C);
  st(s, ll_i32(L, 1), ok);
  lbegin(s, &lt, I(s, 0), n, 1, "t");
  {
    LLVMValueRef g = fg(s, gk, mul(s, add(s, mul(s, add(s, c0, lt.iv), H), lh.iv), K));
    LLVMValueRef bt = dg(s, b, mul(s, lt.iv, K));
    LLVMValueRef has = LLVMBuildICmp(L->B, LLVMIntSGT, lt.iv, I(s, 0), "");
    lbegin(s, &li, I(s, 0), K, 1, "i");
    LLVMValueRef cur = dg(s, bt, li.iv);
    LLVMValueRef pp = LLVMBuildSelect(L->B, has, dg(s, bt, sub(s, li.iv, K)), cur, "");
    LLVMValueRef prev = LLVMBuildSelect(L->B, has, ldd(s, pp), D(s, 0.0), "");
    LLVMValueRef x = LLVMBuildFAdd(L->B, prev, LLVMBuildFPExt(L->B, ldf(s, fg(s, g, li.iv)), L->tf64, ""), "");
    st(s, x, cur);
    LLVMValueRef in = LLVMBuildAnd(L->B, LLVMBuildFCmp(L->B, LLVMRealOLE, x, D(s, CS_MAXLOG), ""),
                                   LLVMBuildFCmp(L->B, LLVMRealOGE, x, D(s, -CS_MAXLOG), ""), "");
    st(s, LLVMBuildAnd(L->B, get(s, L->ti32, ok), LLVMBuildZExt(L->B, in, L->ti32, ""), ""), ok);
    lend(s, &li);
  }
  lend(s, &lt);
  LLVMBasicBlockRef steep = ll_block(L, "steep"), fact = ll_block(L, "factored"), next = ll_block(L, "chunk.next");
  LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntEQ, get(s, L->ti32, ok), ll_i32(L, 0), ""), steep, fact);
  /* steep decays: the recurrence itself for this chunk */
  LLVMPositionBuilderAtEnd(L->B, steep);
  lbegin(s, &lt, c0, add(s, c0, n), 1, "ts");
  {
    LLVMValueRef row = add(s, mul(s, lt.iv, H), lh.iv);
    LLVMValueRef qr = fg(s, q, mul(s, row, K)), kr = fg(s, k, mul(s, row, K)), g = fg(s, gk, mul(s, row, K));
    LLVMValueRef vr = fg(s, v, mul(s, row, V)), orow = fg(s, o, mul(s, row, V));
    lbegin(s, &lj, I(s, 0), V, 1, "j0");
    st(s, F(s, 0.0f), fg(s, orow, lj.iv));
    lend(s, &lj);
    lbegin(s, &li, I(s, 0), K, 1, "is");
    LLVMValueRef e = math1(s, "llvm.exp.f32", L->tf32, ldf(s, fg(s, g, li.iv)));
    LLVMValueRef ki = ldf(s, fg(s, kr, li.iv)), qi = fmul(s, ldf(s, fg(s, qr, li.iv)), scale);
    LLVMValueRef si = fg(s, Sh, mul(s, li.iv, V));
    lbegin(s, &lj, I(s, 0), V, 1, "js");
    LLVMValueRef sp = fg(s, si, lj.iv), op = fg(s, orow, lj.iv);
    LLVMValueRef sv = sfma(s, e, ldf(s, sp), fmul(s, ki, ldf(s, fg(s, vr, lj.iv))));
    st(s, sv, sp);
    st(s, sfma(s, qi, sv, ldf(s, op)), op);
    lend(s, &lj);
    lend(s, &li);
  }
  lend(s, &lt);
  LLVMBuildBr(L->B, next);
  /* the factored form */
  LLVMPositionBuilderAtEnd(L->B, fact);
  lbegin(s, &li, I(s, 0), mul(s, n, K), 1, "e");
  st(s, cs_exp(s, LLVMBuildFPTrunc(L->B, ldd(s, dg(s, b, li.iv)), L->tf32, "")), fg(s, qt, li.iv));
  lend(s, &li);
  LLVMValueRef last = mul(s, sub(s, n, I(s, 1)), K);
  lbegin(s, &li, I(s, 0), K, 1, "en");
  st(s, ldf(s, fg(s, qt, add(s, last, li.iv))), fg(s, en, li.iv));
  lend(s, &li);
  lbegin(s, &lt, I(s, 0), n, 1, "tf");
  {
    LLVMValueRef row = mul(s, add(s, mul(s, add(s, c0, lt.iv), H), lh.iv), K);
    LLVMValueRef qr = fg(s, q, row), kr = fg(s, k, row), tk = mul(s, lt.iv, K);
    LLVMValueRef qtr = fg(s, qt, tk), ktr = fg(s, kt, tk), khr = fg(s, kh, tk);
    lbegin(s, &li, I(s, 0), K, 1, "if");
    LLVMValueRef qe = ldf(s, fg(s, qtr, li.iv)), kv = ldf(s, fg(s, kr, li.iv));
    LLVMValueRef ie = LLVMBuildFDiv(L->B, F(s, 1.0f), qe, "");
    st(s, fmul(s, kv, ie), fg(s, ktr, li.iv));
    st(s, fmul(s, kv, fmul(s, ldf(s, fg(s, en, li.iv)), ie)), fg(s, khr, li.iv));
    st(s, fmul(s, fmul(s, ldf(s, fg(s, qr, li.iv)), qe), scale), fg(s, qtr, li.iv));
    lend(s, &li);
  }
  lend(s, &lt);
  lbegin(s, &li, I(s, 0), K, 1, "iT");
  lbegin(s, &lt, I(s, 0), n, 1, "tT");
  {
    LLVMValueRef src = add(s, mul(s, lt.iv, K), li.iv), dst = add(s, mul(s, li.iv, C), lt.iv);
    st(s, ldf(s, fg(s, kt, src)), fg(s, ktT, dst));
    st(s, ldf(s, fg(s, kh, src)), fg(s, khT, dst));
  }
  lend(s, &lt);
  lend(s, &li);
  LLVMValueRef vr = fg(s, v, mul(s, add(s, mul(s, c0, H), lh.iv), V));
  LLVMValueRef orow = fg(s, o, mul(s, add(s, mul(s, c0, H), lh.iv), V));
  call_gemm(s, n, n, K, qt, K, ktT, C, A, C, 0);
  lbegin(s, &lt, I(s, 0), n, 1, "tz");
  lbegin(s, &lj, add(s, lt.iv, I(s, 1)), n, 1, "sz");
  st(s, F(s, 0.0f), fg(s, A, add(s, mul(s, lt.iv, C), lj.iv)));
  lend(s, &lj);
  lend(s, &lt);
  call_gemm(s, n, V, K, qt, K, Sh, V, orow, HV, 0);
  call_gemm(s, n, V, n, A, C, vr, HV, orow, HV, 1);
  lbegin(s, &li, I(s, 0), K, 1, "id");
  {
    LLVMValueRef e = ldf(s, fg(s, en, li.iv));
    LLVMValueRef si = fg(s, Sh, mul(s, li.iv, V));
    lbegin(s, &lj, I(s, 0), V, 1, "jd");
    LLVMValueRef sp = fg(s, si, lj.iv);
    st(s, fmul(s, ldf(s, sp), e), sp);
    lend(s, &lj);
  }
  lend(s, &li);
  call_gemm(s, K, V, n, khT, C, vr, HV, Sh, V, 1);
  LLVMBuildBr(L->B, next);
  LLVMPositionBuilderAtEnd(L->B, next);
  lend(s, &lc);
  lend(s, &lh);
  LLVMBuildRetVoid(L->B);
  return f;
}

/* ---- gat.chunk_delta ---- */
static LLVMValueRef build_delta(SC *s) {
  LL *L = s->L;
  LLVMTypeRef p[14] = {L->tpf32, L->tpf32, L->tpf32, L->tpf32, L->tpf32, L->tpf32, L->tpf32,
                       L->tpf32, L->ti64,  L->ti64,  L->ti64,  L->ti64,  L->ti64,  L->tf32};
  LLVMValueRef f = begin_fn(s, "gat.chunk_delta", p, 14);
  LLVMValueRef q = LLVMGetParam(f, 0), k = LLVMGetParam(f, 1), v = LLVMGetParam(f, 2), beta = LLVMGetParam(f, 3);
  LLVMValueRef decay = LLVMGetParam(f, 4), S = LLVMGetParam(f, 5), o = LLVMGetParam(f, 6), ws = LLVMGetParam(f, 7);
  LLVMValueRef T = LLVMGetParam(f, 8), H = LLVMGetParam(f, 9), G = LLVMGetParam(f, 10), K = LLVMGetParam(f, 11);
  LLVMValueRef V = LLVMGetParam(f, 12), scale = LLVMGetParam(f, 13);
  LLVMValueRef C = I(s, CS_C), CC = I(s, CS_C * CS_C), CK = mul(s, K, C);
  LLVMValueRef lp = LLVMBuildBitCast(L->B, ws, L->tpf64, ""); /* [C] cumulative log decay */
  LLVMValueRef ep = dg(s, lp, C), ip = dg(s, ep, C);           /* P_t, 1 / P_t */
  LLVMValueRef rn = fg(s, ws, I(s, 6 * CS_C));                 /* [C]: P_n / P_s */
  LLVMValueRef kT = fg(s, rn, C), kdT = fg(s, kT, CK), QK = fg(s, kdT, CK), KK = fg(s, QK, CC);
  LLVMValueRef Mm = fg(s, KK, CC), R = fg(s, Mm, CC), Tm = fg(s, R, CC), W = fg(s, Tm, CC);
  LLVMValueRef U = fg(s, W, mul(s, C, V));
  LLVMValueRef ldqk = mul(s, H, K), HG = mul(s, H, G), ldv = mul(s, HG, V);
  LLVMValueRef hasdecay = LLVMBuildIsNotNull(L->B, decay, "");
  LLVMValueRef acc = slot(s, L->tf64, D(s, 0.0));
  Lp lh, lc, lt, li, lj, lg, ls, lu;
  lbegin(s, &lh, I(s, 0), H, 1, "h");
  lbegin(s, &lc, I(s, 0), T, CS_C, "c0");
  LLVMValueRef c0 = lc.iv;
  LLVMValueRef n = smin(s, sub(s, T, c0), C);
  LLVMValueRef qkoff = mul(s, add(s, mul(s, c0, H), lh.iv), K);
  LLVMValueRef qr = fg(s, q, qkoff), kr = fg(s, k, qkoff);
  lbegin(s, &lt, I(s, 0), n, 1, "tk");
  lbegin(s, &li, I(s, 0), K, 1, "ik");
  st(s, ldf(s, fg(s, kr, add(s, mul(s, lt.iv, ldqk), li.iv))), fg(s, kT, add(s, mul(s, li.iv, C), lt.iv)));
  lend(s, &li);
  lend(s, &lt);
  call_gemm(s, n, n, K, qr, ldqk, kT, C, QK, C, 0);
  call_gemm(s, n, n, K, kr, ldqk, kT, C, KK, C, 0);
  lbegin(s, &lg, I(s, 0), G, 1, "g");
  {
    LLVMValueRef hg = add(s, mul(s, lh.iv, G), lg.iv);
    LLVMValueRef Sh = fg(s, S, mul(s, mul(s, hg, K), V));
    LLVMValueRef voff = mul(s, add(s, mul(s, add(s, mul(s, c0, H), lh.iv), G), lg.iv), V);
    LLVMValueRef vr = fg(s, v, voff), orow = fg(s, o, voff);
    st(s, D(s, 0.0), acc);
    lbegin(s, &lt, I(s, 0), n, 1, "tl");
    {
      LLVMBasicBlockRef d = if_begin(s, hasdecay, "decay");
      LLVMValueRef a = ldf(s, fg(s, decay, add(s, mul(s, add(s, c0, lt.iv), HG), hg)));
      LLVMValueRef lg2 = math1(s, "llvm.log.f64", L->tf64, LLVMBuildFPExt(L->B, a, L->tf64, ""));
      LLVMValueRef pos = LLVMBuildFCmp(L->B, LLVMRealOGT, a, F(s, 0.0f), ""); /* a = 0: P = 0 from here on */
      LLVMValueRef inc = LLVMBuildSelect(L->B, pos, lg2, D(s, -1e4), "");
      st(s, LLVMBuildFAdd(L->B, get(s, L->tf64, acc), inc, ""), acc);
      if_end(s, d);
      st(s, get(s, L->tf64, acc), dg(s, lp, lt.iv));
    }
    lend(s, &lt);
    LLVMValueRef lpn = ldd(s, dg(s, lp, sub(s, n, I(s, 1))));
    LLVMValueRef far = LLVMBuildOr(L->B, LLVMBuildFCmp(L->B, LLVMRealOLT, lpn, D(s, -600.0), ""),
                                   LLVMBuildFCmp(L->B, LLVMRealOGT, lpn, D(s, 600.0), ""), "");
    lbegin(s, &lt, I(s, 0), n, 1, "te");
    {
      LLVMValueRef x = ldd(s, dg(s, lp, lt.iv));
      st(s, math1(s, "llvm.exp.f64", L->tf64, x), dg(s, ep, lt.iv));
      st(s, math1(s, "llvm.exp.f64", L->tf64, LLVMBuildFNeg(L->B, x, "")), dg(s, ip, lt.iv));
    }
    lend(s, &lt);
    /* r[t, s] = P_t / P_s: products of P_t and 1 / P_s unless the range is extreme */
    {
      LLVMBasicBlockRef yf = ll_block(L, "far"), nf = ll_block(L, "near"), dn = ll_block(L, "r.done");
      LLVMBuildCondBr(L->B, far, yf, nf);
      for (int w = 0; w < 2; w++) {
        LLVMPositionBuilderAtEnd(L->B, w ? nf : yf);
        lbegin(s, &lt, I(s, 0), n, 1, "tr");
        lbegin(s, &ls, I(s, 0), add(s, lt.iv, I(s, 1)), 1, "sr");
        LLVMValueRef r;
        if (!w)
          r = math1(s, "llvm.exp.f64", L->tf64,
                    LLVMBuildFSub(L->B, ldd(s, dg(s, lp, lt.iv)), ldd(s, dg(s, lp, ls.iv)), ""));
        else
          r = fmul(s, ldd(s, dg(s, ep, lt.iv)), ldd(s, dg(s, ip, ls.iv)));
        st(s, LLVMBuildFPTrunc(L->B, r, L->tf32, ""), fg(s, R, add(s, mul(s, lt.iv, C), ls.iv)));
        lend(s, &ls);
        lend(s, &lt);
        LLVMBuildBr(L->B, dn);
      }
      LLVMPositionBuilderAtEnd(L->B, dn);
    }
    /* Tm = (I + B)^-1 diag(beta), row by row */
    lbegin(s, &lt, I(s, 0), n, 1, "ti");
    {
      LLVMValueRef tr = fg(s, Tm, mul(s, lt.iv, C));
      lbegin(s, &ls, I(s, 0), n, 1, "si");
      st(s, LLVMBuildSelect(L->B, LLVMBuildICmp(L->B, LLVMIntEQ, ls.iv, lt.iv, ""), F(s, 1.0f), F(s, 0.0f), ""),
         fg(s, tr, ls.iv));
      lend(s, &ls);
      LLVMValueRef bt = ldf(s, fg(s, beta, add(s, mul(s, add(s, c0, lt.iv), HG), hg)));
      lbegin(s, &ls, I(s, 0), lt.iv, 1, "sf");
      LLVMValueRef ts = add(s, mul(s, lt.iv, C), ls.iv);
      LLVMValueRef fv = fmul(s, fmul(s, bt, ldf(s, fg(s, R, ts))), ldf(s, fg(s, KK, ts)));
      LLVMValueRef nfv = LLVMBuildFNeg(L->B, fv, "");
      LLVMValueRef xs = fg(s, Tm, mul(s, ls.iv, C));
      lbegin(s, &lu, I(s, 0), add(s, ls.iv, I(s, 1)), 1, "u");
      LLVMValueRef tp = fg(s, tr, lu.iv);
      st(s, sfma(s, nfv, ldf(s, fg(s, xs, lu.iv)), ldf(s, tp)), tp);
      lend(s, &lu);
      lend(s, &ls);
    }
    lend(s, &lt);
    lbegin(s, &lt, I(s, 0), n, 1, "tb");
    lbegin(s, &ls, I(s, 0), add(s, lt.iv, I(s, 1)), 1, "sb");
    {
      LLVMValueRef tp = fg(s, Tm, add(s, mul(s, lt.iv, C), ls.iv));
      st(s, fmul(s, ldf(s, tp), ldf(s, fg(s, beta, add(s, mul(s, add(s, c0, ls.iv), HG), hg)))), tp);
    }
    lend(s, &ls);
    lend(s, &lt);
    /* W = V - diag(P) K S0; U = Tm W */
    call_gemm(s, n, V, K, kr, ldqk, Sh, V, W, V, 0);
    lbegin(s, &lt, I(s, 0), n, 1, "tw");
    {
      LLVMValueRef nP = LLVMBuildFNeg(L->B, LLVMBuildFPTrunc(L->B, ldd(s, dg(s, ep, lt.iv)), L->tf32, ""), "");
      LLVMValueRef wr = fg(s, W, mul(s, lt.iv, V)), vt = fg(s, vr, mul(s, lt.iv, ldv));
      lbegin(s, &lj, I(s, 0), V, 1, "jw");
      LLVMValueRef wp = fg(s, wr, lj.iv);
      st(s, sfma(s, nP, ldf(s, wp), ldf(s, fg(s, vt, lj.iv))), wp);
      lend(s, &lj);
    }
    lend(s, &lt);
    call_gemm(s, n, V, n, Tm, C, W, V, U, V, 0);
    /* O = scale (diag(P) Q S0 + M U) */
    lbegin(s, &lt, I(s, 0), n, 1, "tm");
    {
      lbegin(s, &ls, I(s, 0), add(s, lt.iv, I(s, 1)), 1, "sm");
      LLVMValueRef ts = add(s, mul(s, lt.iv, C), ls.iv);
      st(s, fmul(s, fmul(s, scale, ldf(s, fg(s, R, ts))), ldf(s, fg(s, QK, ts))), fg(s, Mm, ts));
      lend(s, &ls);
      lbegin(s, &ls, add(s, lt.iv, I(s, 1)), n, 1, "sz");
      st(s, F(s, 0.0f), fg(s, Mm, add(s, mul(s, lt.iv, C), ls.iv)));
      lend(s, &ls);
    }
    lend(s, &lt);
    call_gemm(s, n, V, K, qr, ldqk, Sh, V, orow, ldv, 0);
    lbegin(s, &lt, I(s, 0), n, 1, "to");
    {
      LLVMValueRef fv = fmul(s, scale, LLVMBuildFPTrunc(L->B, ldd(s, dg(s, ep, lt.iv)), L->tf32, ""));
      LLVMValueRef ot = fg(s, orow, mul(s, lt.iv, ldv));
      lbegin(s, &lj, I(s, 0), V, 1, "jo");
      LLVMValueRef op = fg(s, ot, lj.iv);
      st(s, fmul(s, ldf(s, op), fv), op);
      lend(s, &lj);
    }
    lend(s, &lt);
    call_gemm(s, n, V, n, Mm, C, U, V, orow, ldv, 1);
    /* S = P_n S0 + (k P_n / P)^T U */
    LLVMValueRef nl = sub(s, n, I(s, 1));
    LLVMValueRef Pn = LLVMBuildFPTrunc(L->B, ldd(s, dg(s, ep, nl)), L->tf32, "");
    lbegin(s, &ls, I(s, 0), n, 1, "sn");
    st(s, ldf(s, fg(s, R, add(s, mul(s, nl, C), ls.iv))), fg(s, rn, ls.iv));
    lend(s, &ls);
    lbegin(s, &li, I(s, 0), K, 1, "is");
    {
      lbegin(s, &ls, I(s, 0), n, 1, "sk");
      LLVMValueRef ic = add(s, mul(s, li.iv, C), ls.iv);
      st(s, fmul(s, ldf(s, fg(s, kT, ic)), ldf(s, fg(s, rn, ls.iv))), fg(s, kdT, ic));
      lend(s, &ls);
      LLVMValueRef si = fg(s, Sh, mul(s, li.iv, V));
      lbegin(s, &lj, I(s, 0), V, 1, "js");
      LLVMValueRef sp = fg(s, si, lj.iv);
      st(s, fmul(s, ldf(s, sp), Pn), sp);
      lend(s, &lj);
    }
    lend(s, &li);
    call_gemm(s, K, V, n, kdT, C, U, V, Sh, V, 1);
  }
  lend(s, &lg);
  lend(s, &lc);
  lend(s, &lh);
  LLVMBuildRetVoid(L->B);
  return f;
}

void ll_scan_chunk_call(LL *L, const LoopKernel *k, LLVMValueRef T, LLVMValueRef *ptr) {
  const int delta = k->scan_chunk == KERNELS_SCAN_DELTA;
  const char *name = delta ? "gat.chunk_delta" : "gat.chunk_gla";
  LLVMValueRef fn = LLVMGetNamedFunction(L->M, name);
  if (!fn) {
    LLVMBasicBlockRef saved_bb = LLVMGetInsertBlock(L->B);
    LLVMValueRef saved_fn = L->fn;
    SC s;
    memset(&s, 0, sizeof s);
    s.L = L;
    s.vl = L->vl >= 16 ? 16 : L->vl >= 8 ? 8 : 4;
    s.mr = s.vl == 16 ? 8 : 4; /* GAT_CS_MR */
    s.tv = LLVMVectorType(L->tf32, (unsigned)s.vl);
    build_gemm(&s);
    fn = delta ? build_delta(&s) : build_gla(&s);
    L->fn = saved_fn;
    if (saved_bb) LLVMPositionBuilderAtEnd(L->B, saved_bb);
  }
  LLVMValueRef p[8];
  for (int i = 0; i < 8; i++)
    p[i] = ptr[i] ? LLVMBuildBitCast(L->B, ptr[i], L->tpf32, "") : LLVMConstNull(L->tpf32);
  LLVMValueRef H = ll_i64(L, k->sizes[0].k), G = ll_i64(L, k->sizes[1].k), K = ll_i64(L, k->sizes[2].k),
               V = ll_i64(L, k->sizes[3].k), sc = LLVMConstReal(L->tf32, (double)(float)k->reals[0]);
  if (delta) {
    LLVMValueRef a[14] = {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], T, H, G, K, V, sc};
    LLVMBuildCall2(L->B, LLVMGlobalGetValueType(fn), fn, a, 14, "");
  } else {
    LLVMValueRef a[12] = {p[0], p[1], p[2], p[3], p[5], p[6], p[7], T, H, K, V, sc};
    LLVMBuildCall2(L->B, LLVMGlobalGetValueType(fn), fn, a, 12, "");
  }
}
