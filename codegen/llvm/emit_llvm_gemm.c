/* emit_llvm_gemm.c — the GEMM micro-kernel of -O2 code (LC_GEMM) as LLVM
 * IR: the same algorithm, blocking and packed layout as the C text in
 * codegen/kernels/kernels_gemm.c, with explicit <VL x float> vectors and llvm.fma.
 *
 * VL and MR come from the target machine's features (AVX-512: 16 floats x 8
 * rows, AVX: 8 x 6, otherwise 4 x 4), NR = 2 * VL output columns per packed
 * panel, KC = 256. Packing (gat.gemm_pack) lays W out as panels of NR
 * columns x K rows, zero-padded; the tile kernel keeps 2 * MR vector
 * accumulators; at most max(MR / 3, 2) rows (decode) take the GEMV path,
 * gat.gemm_row with eight accumulators (four k in flight); the epilogue (row scale, bias, activation,
 * residual) runs per finished tile row, one vectorizable loop per step,
 * rounding to f32 after each step (activations computed in double).
 * gat.gemm_seg_f32: the segmented GEMM of pass_concat and the gate epilogue
 * of pass_gate (gat_gemm_seg_f32 of kernels_gemm.c). */
#include <string.h>

#include "emit_llvm_int.h"

#define GEMM_KC 256

/* epilogue activations: epi_act = 1 + the IrFn */
static const IrFn gemm_acts[] = {IR_FN_SILU, IR_FN_GELU_ERF, IR_FN_GELU_TANH, IR_FN_RELU, IR_FN_SIGMOID, IR_FN_TANH};

int ll_gemm_act_ok(int epi_act) {
  if (epi_act == 0) return 1;
  for (size_t i = 0; i < sizeof gemm_acts / sizeof gemm_acts[0]; i++)
    if (epi_act == 1 + (int)gemm_acts[i]) return 1;
  return 0;
}

typedef struct G {
  LL *L;
  LLVMTypeRef tvec, tvecp;
  int vl, mr, nr;
} G;

static LLVMValueRef begin(LL *L, const char *name, LLVMTypeRef ret, LLVMTypeRef *p, int n, int vl) {
  LLVMValueRef f = LLVMAddFunction(L->M, name, LLVMFunctionType(ret, p, (unsigned)n, 0));
  LLVMSetLinkage(f, LLVMInternalLinkage);
  char w[16];
  snprintf(w, sizeof w, "%d", vl * 32);
  LLVMAttributeRef a = LLVMCreateStringAttribute(L->C, "min-legal-vector-width", 22, w, (unsigned)strlen(w));
  LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, a);
  L->fn = f;
  LLVMPositionBuilderAtEnd(L->B, LLVMAppendBasicBlockInContext(L->C, f, "entry"));
  return f;
}

static LLVMValueRef I(G *g, int64_t v) { return ll_i64(g->L, v); }
static LLVMValueRef mul(G *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildMul(g->L->B, a, b, ""); }
static LLVMValueRef add(G *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(g->L->B, a, b, ""); }
static LLVMValueRef fp(G *g, LLVMValueRef p, LLVMValueRef i) { return ll_gep(g->L, g->L->tf32, p, i); }
static LLVMValueRef smin(G *g, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(g->L->B, LLVMBuildICmp(g->L->B, LLVMIntSLT, a, b, ""), a, b, "");
}

static LLVMValueRef vload(G *g, LLVMValueRef p) {
  LLVMValueRef v = LLVMBuildLoad2(g->L->B, g->tvec, LLVMBuildBitCast(g->L->B, p, g->tvecp, ""), "");
  LLVMSetAlignment(v, 4);
  return v;
}
static void vstore(G *g, LLVMValueRef v, LLVMValueRef p) {
  LLVMValueRef s = LLVMBuildStore(g->L->B, v, LLVMBuildBitCast(g->L->B, p, g->tvecp, ""));
  LLVMSetAlignment(s, 4);
}
static LLVMValueRef splat(G *g, LLVMValueRef s) {
  LL *L = g->L;
  LLVMValueRef v = LLVMBuildInsertElement(L->B, LLVMGetUndef(g->tvec), s, ll_i32(L, 0), "");
  return LLVMBuildShuffleVector(L->B, v, LLVMGetUndef(g->tvec),
                                LLVMConstNull(LLVMVectorType(L->ti32, (unsigned)g->vl)), "");
}
static LLVMValueRef fma_v(G *g, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
  char name[32];
  snprintf(name, sizeof name, "llvm.fma.v%df32", g->vl);
  LLVMTypeRef t[3] = {g->tvec, g->tvec, g->tvec};
  LLVMValueRef v[3] = {a, b, c};
  return ll_call(g->L, name, g->tvec, t, 3, v);
}
static LLVMValueRef ld(G *g, LLVMValueRef slot) { return LLVMBuildLoad2(g->L->B, g->tvec, slot, ""); }

/* c[i*ldc + j] (=|+=) t[i*NR + j] for i < mr, j < nr (scalar tails) */
static void store_tail(G *g, LLVMValueRef t, int tstride, LLVMValueRef c, LLVMValueRef ldc, LLVMValueRef mr,
                       LLVMValueRef nr, LLVMValueRef accum) {
  LL *L = g->L;
  LLLoop li, lj;
  ll_loop_begin(L, &li, mr, "i");
  ll_loop_begin(L, &lj, nr, "j");
  LLVMValueRef tv = LLVMBuildLoad2(L->B, L->tf32, fp(g, t, add(g, mul(g, li.iv, I(g, tstride)), lj.iv)), "");
  LLVMValueRef cp = fp(g, c, add(g, mul(g, li.iv, ldc), lj.iv));
  LLVMValueRef sum = LLVMBuildFAdd(L->B, LLVMBuildLoad2(L->B, L->tf32, cp, ""), tv, "");
  LLVMBuildStore(L->B, LLVMBuildSelect(L->B, accum, sum, tv, ""), cp);
  ll_loop_end(L, &lj);
  ll_loop_end(L, &li);
}

/* Init-time packing stays a call: inlined into NAME_init with the constant sizes of every
 * weight, LLVM unrolled each copy (mod_lm: 52K lines of IR, 9 s of -O2 in --emit=obj / --jit). */
static void set_noinline(LL *L, LLVMValueRef f) {
  LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                          LLVMCreateEnumAttribute(L->C, LLVMGetEnumAttributeKindForName("noinline", 8), 0));
}

/* gat.gemm_pack(dst, w, N, K, sn, sk, k0, kc, scale, alpha, vec, vec1): panels of NR columns;
 * folded scales (pass_scalefold): W * scale * alpha[0] * vec[k] (1 + vec[k] when vec1), rounded once */
static void build_pack(G *g) {
  LL *L = g->L;
  LLVMTypeRef p[12] = {L->tp8, L->tp8, L->ti64, L->ti64, L->ti64, L->ti64, L->ti64, L->ti64, L->tf64, L->tp8, L->tp8, L->ti32};
  LLVMValueRef f = begin(L, "gat.gemm_pack", L->tv, p, 12, g->vl);
  set_noinline(L, f);
  LLVMValueRef dst = LLVMBuildBitCast(L->B, LLVMGetParam(f, 0), L->tpf32, "");
  LLVMValueRef w = LLVMBuildBitCast(L->B, LLVMGetParam(f, 1), L->tpf32, "");
  LLVMValueRef N = LLVMGetParam(f, 2), sn = LLVMGetParam(f, 4), sk = LLVMGetParam(f, 5);
  LLVMValueRef k0 = LLVMGetParam(f, 6), kc = LLVMGetParam(f, 7);
  LLVMValueRef alpha = LLVMBuildBitCast(L->B, LLVMGetParam(f, 9), L->tpf32, "");
  LLVMValueRef vec = LLVMBuildBitCast(L->B, LLVMGetParam(f, 10), L->tpf32, "");
  LLVMValueRef vec1 = LLVMBuildICmp(L->B, LLVMIntNE, LLVMGetParam(f, 11), ll_i32(L, 0), "");
  /* s = alpha ? scale * alpha[0] : scale */
  LLVMBasicBlockRef e0 = LLVMGetInsertBlock(L->B), ya = ll_block(L, "alpha"), na = ll_block(L, "alpha.done");
  LLVMBuildCondBr(L->B, LLVMBuildIsNotNull(L->B, alpha, ""), ya, na);
  LLVMPositionBuilderAtEnd(L->B, ya);
  LLVMValueRef sa = LLVMBuildFMul(L->B, LLVMGetParam(f, 8),
                                  LLVMBuildFPExt(L->B, LLVMBuildLoad2(L->B, L->tf32, alpha, ""), L->tf64, ""), "");
  LLVMBuildBr(L->B, na);
  LLVMPositionBuilderAtEnd(L->B, na);
  LLVMValueRef sc = LLVMBuildPhi(L->B, L->tf64, "s");
  LLVMValueRef sv[2] = {LLVMGetParam(f, 8), sa};
  LLVMBasicBlockRef sb[2] = {e0, ya};
  LLVMAddIncoming(sc, sv, sb, 2);
  LLVMValueRef np = LLVMBuildSDiv(L->B, add(g, N, I(g, g->nr - 1)), I(g, g->nr), "");
  LLLoop lp, lk, lj;
  ll_loop_begin(L, &lp, np, "p");
  ll_loop_begin(L, &lk, kc, "k");
  LLVMValueRef k = add(g, k0, lk.iv);
  /* per k: s * vec(k) (vec loaded only when present) */
  LLVMBasicBlockRef e1 = LLVMGetInsertBlock(L->B), yv = ll_block(L, "vec"), nv = ll_block(L, "vec.done");
  LLVMBuildCondBr(L->B, LLVMBuildIsNotNull(L->B, vec, ""), yv, nv);
  LLVMPositionBuilderAtEnd(L->B, yv);
  LLVMValueRef vk = LLVMBuildFPExt(L->B, LLVMBuildLoad2(L->B, L->tf32, fp(g, vec, k), ""), L->tf64, "");
  vk = LLVMBuildSelect(L->B, vec1, LLVMBuildFAdd(L->B, ll_f64(L, 1.0), vk, ""), vk, "");
  LLVMValueRef svk = LLVMBuildFMul(L->B, sc, vk, "");
  LLVMBuildBr(L->B, nv);
  LLVMPositionBuilderAtEnd(L->B, nv);
  LLVMValueRef skv = LLVMBuildPhi(L->B, L->tf64, "sk");
  LLVMValueRef kv[2] = {sc, svk};
  LLVMBasicBlockRef kb[2] = {e1, yv};
  LLVMAddIncoming(skv, kv, kb, 2);
  ll_loop_begin(L, &lj, I(g, g->nr), "jj");
  LLVMValueRef j = add(g, mul(g, lp.iv, I(g, g->nr)), lj.iv);
  LLVMValueRef in = LLVMBuildICmp(L->B, LLVMIntSLT, j, N, "");
  LLVMValueRef jc = LLVMBuildSelect(L->B, in, j, LLVMBuildSub(L->B, N, I(g, 1), ""), "");
  LLVMValueRef v = LLVMBuildLoad2(L->B, L->tf32, fp(g, w, add(g, mul(g, jc, sn), mul(g, k, sk))), "");
  v = LLVMBuildFPTrunc(L->B, LLVMBuildFMul(L->B, LLVMBuildFPExt(L->B, v, L->tf64, ""), skv, ""), L->tf32, "");
  v = LLVMBuildSelect(L->B, in, v, LLVMConstReal(L->tf32, 0.0), "");
  LLVMValueRef di = add(g, mul(g, add(g, mul(g, lp.iv, kc), lk.iv), I(g, g->nr)), lj.iv);
  LLVMBuildStore(L->B, v, fp(g, dst, di));
  ll_loop_end(L, &lj);
  ll_loop_end(L, &lk);
  ll_loop_end(L, &lp);
  LLVMBuildRetVoid(L->B);

  /* gat.gemm_pack_vec(dst, b, N, scale, alpha): a folded bias, dst[n] = b[n] * scale * alpha[0] */
  LLVMTypeRef pv[5] = {L->tp8, L->tp8, L->ti64, L->tf64, L->tp8};
  f = begin(L, "gat.gemm_pack_vec", L->tv, pv, 5, g->vl);
  set_noinline(L, f);
  dst = LLVMBuildBitCast(L->B, LLVMGetParam(f, 0), L->tpf32, "");
  LLVMValueRef b = LLVMBuildBitCast(L->B, LLVMGetParam(f, 1), L->tpf32, "");
  alpha = LLVMBuildBitCast(L->B, LLVMGetParam(f, 4), L->tpf32, "");
  e0 = LLVMGetInsertBlock(L->B);
  ya = ll_block(L, "alpha");
  na = ll_block(L, "alpha.done");
  LLVMBuildCondBr(L->B, LLVMBuildIsNotNull(L->B, alpha, ""), ya, na);
  LLVMPositionBuilderAtEnd(L->B, ya);
  sa = LLVMBuildFMul(L->B, LLVMGetParam(f, 3), LLVMBuildFPExt(L->B, LLVMBuildLoad2(L->B, L->tf32, alpha, ""), L->tf64, ""), "");
  LLVMBuildBr(L->B, na);
  LLVMPositionBuilderAtEnd(L->B, na);
  sc = LLVMBuildPhi(L->B, L->tf64, "s");
  sv[0] = LLVMGetParam(f, 3);
  sv[1] = sa;
  sb[0] = e0;
  sb[1] = ya;
  LLVMAddIncoming(sc, sv, sb, 2);
  ll_loop_begin(L, &lj, LLVMGetParam(f, 2), "j");
  v = LLVMBuildFPExt(L->B, LLVMBuildLoad2(L->B, L->tf32, fp(g, b, lj.iv), ""), L->tf64, "");
  LLVMBuildStore(L->B, LLVMBuildFPTrunc(L->B, LLVMBuildFMul(L->B, v, sc, ""), L->tf32, ""), fp(g, dst, lj.iv));
  ll_loop_end(L, &lj);
  LLVMBuildRetVoid(L->B);
}

/* gat.gemm_tile(kc, a, lda, mr, b, c, ldc, nr, accumulate, ks): row i, column k of a at
 * a[i * lda + k * ks] (ks = 1: rows of the activation; lda = 1, ks = MR: a packed micro-panel) */
static void build_tile(G *g) {
  LL *L = g->L;
  LLVMTypeRef p[10] = {L->ti64, L->tpf32, L->ti64, L->ti64, L->tpf32, L->tpf32, L->ti64, L->ti64, L->ti1, L->ti64};
  LLVMValueRef f = begin(L, "gat.gemm_tile", L->tv, p, 10, g->vl);
  LLVMValueRef kc = LLVMGetParam(f, 0), a = LLVMGetParam(f, 1), lda = LLVMGetParam(f, 2), mr = LLVMGetParam(f, 3);
  LLVMValueRef b = LLVMGetParam(f, 4), c = LLVMGetParam(f, 5), ldc = LLVMGetParam(f, 6), nr = LLVMGetParam(f, 7);
  LLVMValueRef accum = LLVMGetParam(f, 8), ks = LLVMGetParam(f, 9);
  int MR = g->mr, VL = g->vl, NR = g->nr;
  LLVMValueRef ar[16], c0[16], c1[16];
  for (int i = 0; i < MR; i++) {
    LLVMValueRef row = smin(g, I(g, i), LLVMBuildSub(L->B, mr, I(g, 1), "")); /* tail rows repeat the last */
    ar[i] = fp(g, a, mul(g, row, lda));
    c0[i] = ll_alloca(L, g->tvec, "c0");
    c1[i] = ll_alloca(L, g->tvec, "c1");
    LLVMBuildStore(L->B, LLVMConstNull(g->tvec), c0[i]);
    LLVMBuildStore(L->B, LLVMConstNull(g->tvec), c1[i]);
  }
  LLLoop lk;
  ll_loop_begin(L, &lk, kc, "k");
  LLVMValueRef bk = fp(g, b, mul(g, lk.iv, I(g, NR)));
  LLVMValueRef b0 = vload(g, bk), b1 = vload(g, fp(g, bk, I(g, VL)));
  for (int i = 0; i < MR; i++) {
    LLVMValueRef s = splat(g, LLVMBuildLoad2(L->B, L->tf32, fp(g, ar[i], mul(g, lk.iv, ks)), ""));
    LLVMBuildStore(L->B, fma_v(g, s, b0, ld(g, c0[i])), c0[i]);
    LLVMBuildStore(L->B, fma_v(g, s, b1, ld(g, c1[i])), c1[i]);
  }
  ll_loop_end(L, &lk);
  LLVMBasicBlockRef full = ll_block(L, "full"), part = ll_block(L, "part");
  LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntEQ, nr, I(g, NR), ""), full, part);
  LLVMPositionBuilderAtEnd(L->B, full);
  for (int i = 0; i < MR; i++) {
    LLVMBasicBlockRef yes = ll_block(L, "row"), next = ll_block(L, "row.next");
    LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSLT, I(g, i), mr, ""), yes, next);
    LLVMPositionBuilderAtEnd(L->B, yes);
    LLVMValueRef ci = fp(g, c, mul(g, I(g, i), ldc));
    LLVMValueRef v0 = ld(g, c0[i]), v1 = ld(g, c1[i]);
    LLVMValueRef s0 = LLVMBuildFAdd(L->B, vload(g, ci), v0, ""), s1 = LLVMBuildFAdd(L->B, vload(g, fp(g, ci, I(g, VL))), v1, "");
    vstore(g, LLVMBuildSelect(L->B, accum, s0, v0, ""), ci);
    vstore(g, LLVMBuildSelect(L->B, accum, s1, v1, ""), fp(g, ci, I(g, VL)));
    LLVMBuildBr(L->B, next);
    LLVMPositionBuilderAtEnd(L->B, next);
  }
  LLVMBuildRetVoid(L->B);
  LLVMPositionBuilderAtEnd(L->B, part);
  LLVMValueRef t = LLVMBuildBitCast(L->B, ll_alloca(L, LLVMArrayType(L->tf32, (unsigned)(MR * NR)), "t"), L->tpf32, "");
  for (int i = 0; i < MR; i++) {
    vstore(g, ld(g, c0[i]), fp(g, t, I(g, i * NR)));
    vstore(g, ld(g, c1[i]), fp(g, t, I(g, i * NR + VL)));
  }
  store_tail(g, t, NR, c, ldc, mr, nr, accum);
  LLVMBuildRetVoid(L->B);
}

/* gat.gemm_row(kc, a, b, c, nr, accumulate): eight accumulators (four k in flight), summed as
 * (p + q) + (r + s) with the k tail in p, the order of gat_gemm_row in codegen/kernels/kernels_gemm.c
 * (bitwise its values: both fuse each multiply-add) */
static void build_row(G *g) {
  LL *L = g->L;
  LLVMTypeRef p[6] = {L->ti64, L->tpf32, L->tpf32, L->tpf32, L->ti64, L->ti1};
  LLVMValueRef f = begin(L, "gat.gemm_row", L->tv, p, 6, g->vl);
  LLVMValueRef kc = LLVMGetParam(f, 0), a = LLVMGetParam(f, 1), b = LLVMGetParam(f, 2), c = LLVMGetParam(f, 3);
  LLVMValueRef nr = LLVMGetParam(f, 4), accum = LLVMGetParam(f, 5);
  int VL = g->vl, NR = g->nr;
  LLVMValueRef acc[8];
  for (int i = 0; i < 8; i++) {
    acc[i] = ll_alloca(L, g->tvec, "p");
    LLVMBuildStore(L->B, LLVMConstNull(g->tvec), acc[i]);
  }
  LLLoop lk;
  LLVMValueRef k4 = LLVMBuildSDiv(L->B, kc, I(g, 4), "");
  ll_loop_begin(L, &lk, k4, "k4");
  for (int h = 0; h < 4; h++) {
    LLVMValueRef k = add(g, mul(g, lk.iv, I(g, 4)), I(g, h));
    LLVMValueRef s = splat(g, LLVMBuildLoad2(L->B, L->tf32, fp(g, a, k), ""));
    LLVMValueRef bk = fp(g, b, mul(g, k, I(g, NR)));
    LLVMBuildStore(L->B, fma_v(g, s, vload(g, bk), ld(g, acc[2 * h])), acc[2 * h]);
    LLVMBuildStore(L->B, fma_v(g, s, vload(g, fp(g, bk, I(g, VL))), ld(g, acc[2 * h + 1])), acc[2 * h + 1]);
  }
  ll_loop_end(L, &lk);
  {
    LLLoop lt; /* the k tail (kc % 4) into p */
    LLVMValueRef kt = mul(g, k4, I(g, 4));
    ll_loop_begin(L, &lt, LLVMBuildSub(L->B, kc, kt, ""), "kt");
    LLVMValueRef k = add(g, kt, lt.iv);
    LLVMValueRef s = splat(g, LLVMBuildLoad2(L->B, L->tf32, fp(g, a, k), ""));
    LLVMValueRef bk = fp(g, b, mul(g, k, I(g, NR)));
    LLVMBuildStore(L->B, fma_v(g, s, vload(g, bk), ld(g, acc[0])), acc[0]);
    LLVMBuildStore(L->B, fma_v(g, s, vload(g, fp(g, bk, I(g, VL))), ld(g, acc[1])), acc[1]);
    ll_loop_end(L, &lt);
  }
  LLVMValueRef v0 = LLVMBuildFAdd(L->B, LLVMBuildFAdd(L->B, ld(g, acc[0]), ld(g, acc[2]), ""),
                                  LLVMBuildFAdd(L->B, ld(g, acc[4]), ld(g, acc[6]), ""), "");
  LLVMValueRef v1 = LLVMBuildFAdd(L->B, LLVMBuildFAdd(L->B, ld(g, acc[1]), ld(g, acc[3]), ""),
                                  LLVMBuildFAdd(L->B, ld(g, acc[5]), ld(g, acc[7]), ""), "");
  /* a full panel: two vector stores (no scalar tail loop, which LLVM turns into a memcpy call) */
  LLVMBasicBlockRef full = ll_block(L, "full"), part = ll_block(L, "part");
  LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntEQ, nr, I(g, NR), ""), full, part);
  LLVMPositionBuilderAtEnd(L->B, full);
  {
    LLVMValueRef s0 = LLVMBuildFAdd(L->B, vload(g, c), v0, ""), s1 = LLVMBuildFAdd(L->B, vload(g, fp(g, c, I(g, VL))), v1, "");
    vstore(g, LLVMBuildSelect(L->B, accum, s0, v0, ""), c);
    vstore(g, LLVMBuildSelect(L->B, accum, s1, v1, ""), fp(g, c, I(g, VL)));
    LLVMBuildRetVoid(L->B);
  }
  LLVMPositionBuilderAtEnd(L->B, part);
  LLVMValueRef t = LLVMBuildBitCast(L->B, ll_alloca(L, LLVMArrayType(L->tf32, (unsigned)NR), "t"), L->tpf32, "");
  vstore(g, v0, t);
  vstore(g, v1, fp(g, t, I(g, VL)));
  store_tail(g, t, NR, c, I(g, 0), I(g, 1), nr, accum);
  LLVMBuildRetVoid(L->B);
}

/* gat.gemm_act(double v, i32 act) -> float */
static void build_act(G *g) {
  LL *L = g->L;
  LLVMTypeRef p[2] = {L->tf64, L->ti32};
  LLVMValueRef f = begin(L, "gat.gemm_act", L->tf32, p, 2, g->vl);
  LLVMValueRef v = LLVMGetParam(f, 0);
  LLVMBasicBlockRef def = ll_block(L, "none");
  int n = (int)(sizeof gemm_acts / sizeof gemm_acts[0]);
  LLVMValueRef sw = LLVMBuildSwitch(L->B, LLVMGetParam(f, 1), def, (unsigned)n);
  for (int i = 0; i < n; i++) {
    LLVMBasicBlockRef bb = ll_block(L, ir_fn_name(gemm_acts[i]));
    LLVMAddCase(sw, ll_i32(L, 1 + (int)gemm_acts[i]), bb);
    LLVMPositionBuilderAtEnd(L->B, bb);
    LLVMBuildRet(L->B, LLVMBuildFPTrunc(L->B, ll_unary(L, gemm_acts[i], v), L->tf32, ""));
  }
  LLVMPositionBuilderAtEnd(L->B, def);
  LLVMBuildRet(L->B, LLVMBuildFPTrunc(L->B, v, L->tf32, ""));
}

static LLVMValueRef call(LL *L, const char *name, LLVMValueRef *args, int n) {
  LLVMValueRef f = LLVMGetNamedFunction(L->M, name);
  return LLVMBuildCall2(L->B, LLVMGlobalGetValueType(f), f, args, (unsigned)n, "");
}

/* one step of the epilogue over ci[0 .. nr) when cond holds: ci[j] = ci[j] * (*p) (op 0), ci[j] + p[j]
 * (op 1), ci[j] * p[j] (op 6), act(ci[j]) in double (op 2), sigmoid / silu with gat.gemm_sigmoidf (op 3 / 4), relu in
 * float (op 5). A float product or sum of two floats equals the double one rounded to float (exact
 * in double), so these match the unfused ops; the activations as gat_gemm_epi of kernels_gemm.c.
 * Plain loops, tested once per call: LLVM vectorizes them. */
static void epi_loop(G *g, LLVMValueRef cond, LLVMValueRef ci, LLVMValueRef nr, LLVMValueRef p, LLVMValueRef act, int op) {
  LL *L = g->L;
  LLVMBasicBlockRef yes = ll_block(L, "epi.y"), done = ll_block(L, "epi.n");
  LLVMBuildCondBr(L->B, cond, yes, done);
  LLVMPositionBuilderAtEnd(L->B, yes);
  LLVMValueRef r = op == 0 ? LLVMBuildLoad2(L->B, L->tf32, p, "r") : NULL;
  LLLoop lj;
  ll_loop_begin(L, &lj, nr, "j");
  LLVMValueRef cp = fp(g, ci, lj.iv);
  LLVMValueRef x = LLVMBuildLoad2(L->B, L->tf32, cp, "");
  if (op == 0) {
    x = LLVMBuildFMul(L->B, x, r, "");
  } else if (op == 1) {
    x = LLVMBuildFAdd(L->B, x, LLVMBuildLoad2(L->B, L->tf32, fp(g, p, lj.iv), ""), "");
  } else if (op == 6) { /* the gate (pass_gate): x * y[j] */
    x = LLVMBuildFMul(L->B, x, LLVMBuildLoad2(L->B, L->tf32, fp(g, p, lj.iv), ""), "");
  } else if (op == 3 || op == 4) { /* sigmoid, silu: the float sigmoid */
    LLVMValueRef f = LLVMGetNamedFunction(L->M, "gat.gemm_sigmoidf");
    LLVMValueRef sg = LLVMBuildCall2(L->B, LLVMGlobalGetValueType(f), f, &x, 1, "");
    x = op == 3 ? sg : LLVMBuildFMul(L->B, x, sg, "");
  } else if (op == 5) { /* relu: x > 0 ? x : 0 in float (exact) */
    x = LLVMBuildSelect(L->B, LLVMBuildFCmp(L->B, LLVMRealOGT, x, LLVMConstReal(L->tf32, 0.0), ""), x,
                        LLVMConstReal(L->tf32, 0.0), "");
  } else {
    LLVMValueRef aargs[2] = {LLVMBuildFPExt(L->B, x, L->tf64, ""), act};
    LLVMValueRef f = LLVMGetNamedFunction(L->M, "gat.gemm_act");
    x = LLVMBuildCall2(L->B, LLVMGlobalGetValueType(f), f, aargs, 2, "");
  }
  LLVMBuildStore(L->B, x, cp);
  ll_loop_end(L, &lj);
  LLVMBuildBr(L->B, done);
  LLVMPositionBuilderAtEnd(L->B, done);
}

/* float gat.gemm_sigmoidf(float): gat_gemm_sigmoidf / gat_gemm_expnegf of codegen/kernels/kernels_gemm.c,
 * operation for operation (no contraction: GCC compiles that C in ISO mode, fp-contract off), so
 * the epilogue's sigmoid / silu values are the C build's bit for bit. Internal, alwaysinline. */
static void build_sigmoidf(G *g) {
  LL *L = g->L;
  LLVMTypeRef p[1] = {L->tf32};
  LLVMValueRef f = begin(L, "gat.gemm_sigmoidf", L->tf32, p, 1, g->vl);
  const char *attrs[] = {"alwaysinline", "nounwind", "readnone", "willreturn"};
  for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(L->C, LLVMGetEnumAttributeKindForName(attrs[i], strlen(attrs[i])), 0));
  LLVMBuilderRef B = L->B;
#define CF(v) LLVMConstReal(L->tf32, (double)(v))
  LLVMValueRef x = LLVMGetParam(f, 0);
  /* e = expnegf(x < 0 ? x : -x) */
  LLVMValueRef y = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, x, CF(0.0f), ""), x, LLVMBuildFNeg(B, x, ""), "");
  y = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGE, y, CF(-87.0f), ""), y, CF(-87.0f), "");
  LLVMValueRef n = LLVMBuildFSub(B, LLVMBuildFAdd(B, LLVMBuildFMul(B, y, CF(1.44269504f), ""), CF(12582912.0f), ""),
                                 CF(12582912.0f), "");
  LLVMValueRef r = LLVMBuildFSub(B, y, LLVMBuildFMul(B, n, CF(0.693145752f), ""), "");
  r = LLVMBuildFSub(B, r, LLVMBuildFMul(B, n, CF(1.42860677e-6f), ""), "");
  static const float c[] = {1.98412698e-4f, 1.38888889e-3f, 8.33333333e-3f, 4.16666667e-2f,
                            1.66666667e-1f, 0.5f,           1.0f,           1.0f};
  LLVMValueRef q = CF(c[0]);
  for (int i = 1; i < 8; i++) q = LLVMBuildFAdd(B, LLVMBuildFMul(B, q, r, ""), CF(c[i]), "");
  LLVMValueRef bits = LLVMBuildMul(B, LLVMBuildAdd(B, LLVMBuildFPToSI(B, n, L->ti32, ""), ll_i32(L, 127), ""),
                                   ll_i32(L, 8388608), "");
  LLVMValueRef e = LLVMBuildFMul(B, q, LLVMBuildBitCast(B, bits, L->tf32, ""), "");
  /* s = 1 / (1 + e); x >= 0 ? s : x < 0 ? e * s : x (NaN stays NaN) */
  LLVMValueRef s = LLVMBuildFDiv(B, CF(1.0f), LLVMBuildFAdd(B, CF(1.0f), e, ""), "");
  LLVMValueRef neg = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, x, CF(0.0f), ""), LLVMBuildFMul(B, e, s, ""), x, "");
  LLVMBuildRet(B, LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGE, x, CF(0.0f), ""), s, neg, ""));
#undef CF
}

/* gat.gemm_epi(ci, nr, rs, bias, act, ri): one finished tile row, rounding to f32 after each step
 * as the unfused ops store: row scale (rs: a pointer, NULL = 1), bias, act, residual */
static void build_epi(G *g) {
  LL *L = g->L;
  LLVMTypeRef p[6] = {L->tpf32, L->ti64, L->tpf32, L->tpf32, L->ti32, L->tpf32};
  LLVMValueRef f = begin(L, "gat.gemm_epi", L->tv, p, 6, g->vl);
  LLVMValueRef ci = LLVMGetParam(f, 0), nr = LLVMGetParam(f, 1), rs = LLVMGetParam(f, 2), bias = LLVMGetParam(f, 3);
  LLVMValueRef act = LLVMGetParam(f, 4), ri = LLVMGetParam(f, 5);
  epi_loop(g, LLVMBuildIsNotNull(L->B, rs, ""), ci, nr, rs, act, 0);
  epi_loop(g, LLVMBuildIsNotNull(L->B, bias, ""), ci, nr, bias, act, 1);
  LLVMValueRef is_sig = LLVMBuildICmp(L->B, LLVMIntEQ, act, ll_i32(L, 1 + (int)IR_FN_SIGMOID), "");
  LLVMValueRef is_silu = LLVMBuildICmp(L->B, LLVMIntEQ, act, ll_i32(L, 1 + (int)IR_FN_SILU), "");
  LLVMValueRef is_relu = LLVMBuildICmp(L->B, LLVMIntEQ, act, ll_i32(L, 1 + (int)IR_FN_RELU), "");
  LLVMValueRef other = LLVMBuildAnd(L->B, LLVMBuildICmp(L->B, LLVMIntNE, act, ll_i32(L, 0), ""),
                                    LLVMBuildNot(L->B, LLVMBuildOr(L->B, LLVMBuildOr(L->B, is_sig, is_silu, ""), is_relu, ""), ""), "");
  epi_loop(g, is_sig, ci, nr, NULL, act, 3);
  epi_loop(g, is_silu, ci, nr, NULL, act, 4);
  epi_loop(g, is_relu, ci, nr, NULL, act, 5);
  epi_loop(g, other, ci, nr, NULL, act, 2);
  epi_loop(g, LLVMBuildIsNotNull(L->B, ri, ""), ci, nr, ri, act, 1);
  LLVMBuildRetVoid(L->B);
}

static LLVMValueRef ptr_or_null(G *g, LLVMValueRef base, LLVMValueRef idx) {
  LL *L = g->L;
  return LLVMBuildSelect(L->B, LLVMBuildIsNull(L->B, base, ""), LLVMConstNull(L->tpf32), fp(g, base, idx), "");
}

static LLVMValueRef blocks(G *g, LLVMValueRef n, int b) {
  return LLVMBuildSDiv(g->L->B, add(g, n, I(g, b - 1)), I(g, b), "");
}

/* row tails of at most this many rows (and M that small) take the GEMV path: MR / 3 as GAT_ROWS of
 * codegen/kernels/kernels_gemm.c, at least 2 */
static int gemv_rows(const G *g) { return g->mr / 3 > 2 ? g->mr / 3 : 2; }

/* gat.gemm_f32(c, a, bp, w, sn, sk, scratch, bias, res, rs, M, N, K, act), all pointers i8* */
static void build_f32(G *g) {
  LL *L = g->L;
  LLVMTypeRef p[14] = {L->tp8, L->tp8, L->tp8, L->tp8,  L->ti64, L->ti64, L->tp8,
                       L->tp8, L->tp8, L->tp8, L->ti64, L->ti64, L->ti64, L->ti32};
  LLVMValueRef f = begin(L, "gat.gemm_f32", L->tv, p, 14, g->vl);
  LLVMValueRef P[14];
  for (int i = 0; i < 14; i++) P[i] = LLVMGetParam(f, (unsigned)i);
  LLVMValueRef c = LLVMBuildBitCast(L->B, P[0], L->tpf32, ""), a = LLVMBuildBitCast(L->B, P[1], L->tpf32, "");
  LLVMValueRef bp = LLVMBuildBitCast(L->B, P[2], L->tpf32, ""), w = LLVMBuildBitCast(L->B, P[3], L->tpf32, "");
  LLVMValueRef sn = P[4], sk = P[5], scratch = P[6];
  LLVMValueRef bias = LLVMBuildBitCast(L->B, P[7], L->tpf32, ""), res = LLVMBuildBitCast(L->B, P[8], L->tpf32, "");
  LLVMValueRef rs = LLVMBuildBitCast(L->B, P[9], L->tpf32, "");
  LLVMValueRef M = P[10], N = P[11], K = P[12], act = P[13];
  int NR = g->nr, MR = g->mr;
  LLVMValueRef has_epi = LLVMBuildOr(L->B, LLVMBuildOr(L->B, LLVMBuildIsNotNull(L->B, bias, ""), LLVMBuildIsNotNull(L->B, res, ""), ""),
                                     LLVMBuildOr(L->B, LLVMBuildIsNotNull(L->B, rs, ""),
                                                 LLVMBuildICmp(L->B, LLVMIntNE, act, ll_i32(L, 0), ""), ""), "");
  const int ROWS = gemv_rows(g);
  /* decode (a few rows, all on the GEMV path, W packed): panel by panel through the whole K, so the
   * packed weight is read as one sequential stream, as gat_gemm_f32 of codegen/kernels/kernels_gemm.c; the
   * same per-K-block row sums added in the same order as the blocked nest below (bitwise) */
  {
    LLVMBasicBlockRef dec = ll_block(L, "decode"), blk = ll_block(L, "blocked");
    LLVMBuildCondBr(L->B, LLVMBuildAnd(L->B, LLVMBuildIsNotNull(L->B, bp, ""), LLVMBuildICmp(L->B, LLVMIntSLE, M, I(g, ROWS), ""), ""),
                    dec, blk);
    LLVMPositionBuilderAtEnd(L->B, dec);
    LLLoop lj, li, lk;
    ll_loop_begin(L, &lj, blocks(g, N, NR), "jd");
    LLVMValueRef j0 = mul(g, lj.iv, I(g, NR));
    LLVMValueRef nr = smin(g, LLVMBuildSub(L->B, N, j0, ""), I(g, NR));
    LLVMValueRef pb = fp(g, bp, mul(g, mul(g, lj.iv, K), I(g, NR)));
    ll_loop_begin(L, &li, M, "id");
    LLVMValueRef ci = fp(g, c, add(g, mul(g, li.iv, N), j0));
    ll_loop_begin(L, &lk, blocks(g, K, GEMM_KC), "kd");
    LLVMValueRef k0 = mul(g, lk.iv, I(g, GEMM_KC));
    LLVMValueRef kc = smin(g, LLVMBuildSub(L->B, K, k0, ""), I(g, GEMM_KC));
    LLVMValueRef args[6] = {kc, fp(g, a, add(g, mul(g, li.iv, K), k0)), fp(g, pb, mul(g, k0, I(g, NR))), ci, nr,
                            LLVMBuildICmp(L->B, LLVMIntSGT, k0, I(g, 0), "")};
    call(L, "gat.gemm_row", args, 6);
    ll_loop_end(L, &lk);
    LLVMBasicBlockRef de = ll_block(L, "epi"), dn = ll_block(L, "epi.done");
    LLVMBuildCondBr(L->B, has_epi, de, dn);
    LLVMPositionBuilderAtEnd(L->B, de);
    LLVMValueRef eargs[6] = {ci, nr, ptr_or_null(g, rs, li.iv), ptr_or_null(g, bias, j0), act,
                             ptr_or_null(g, res, add(g, mul(g, li.iv, N), j0))};
    call(L, "gat.gemm_epi", eargs, 6);
    LLVMBuildBr(L->B, dn);
    LLVMPositionBuilderAtEnd(L->B, dn);
    ll_loop_end(L, &li);
    ll_loop_end(L, &lj);
    LLVMBuildRetVoid(L->B);
    LLVMPositionBuilderAtEnd(L->B, blk);
  }
  /* K blocks, row blocks of MC = 8 MR rows (packed once per K block into MR-row micro-panels when
   * more than ROWS rows), column panels, micro-panels: the nest of gat_gemm_f32 */
  const int MC = 8 * MR;
  LLVMValueRef ap = LLVMBuildBitCast(L->B, ll_alloca(L, LLVMArrayType(L->tf32, (unsigned)(MC * GEMM_KC)), "ap"), L->tpf32, "");
  LLLoop lkb, lic, ljb, lib;
  ll_loop_begin(L, &lkb, blocks(g, K, GEMM_KC), "kb");
  LLVMValueRef k0 = mul(g, lkb.iv, I(g, GEMM_KC));
  LLVMValueRef kc = smin(g, LLVMBuildSub(L->B, K, k0, ""), I(g, GEMM_KC));
  LLVMValueRef last = LLVMBuildICmp(L->B, LLVMIntEQ, add(g, k0, kc), K, "");
  LLVMValueRef accum = LLVMBuildICmp(L->B, LLVMIntSGT, k0, I(g, 0), "");
  ll_loop_begin(L, &lic, blocks(g, M, MC), "ic");
  LLVMValueRef ic = mul(g, lic.iv, I(g, MC));
  LLVMValueRef mc = smin(g, LLVMBuildSub(L->B, M, ic, ""), I(g, MC));
  {
    LLVMBasicBlockRef pk = ll_block(L, "pack.a"), go = ll_block(L, "packed.a");
    LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSGT, mc, I(g, ROWS), ""), pk, go);
    LLVMPositionBuilderAtEnd(L->B, pk);
    LLVMValueRef args[6] = {ap, fp(g, a, mul(g, ic, K)), K, mc, k0, kc};
    call(L, "gat.gemm_pack_a", args, 6);
    LLVMBuildBr(L->B, go);
    LLVMPositionBuilderAtEnd(L->B, go);
  }
  ll_loop_begin(L, &ljb, blocks(g, N, NR), "jb");
  LLVMValueRef j0 = mul(g, ljb.iv, I(g, NR));
  LLVMValueRef nr = smin(g, LLVMBuildSub(L->B, N, j0, ""), I(g, NR));
  /* the panel: packed at init, or packed now into scratch (-fno-pack) */
  LLVMBasicBlockRef packed = ll_block(L, "packed"), now = ll_block(L, "pack.now"), have = ll_block(L, "panel");
  LLVMBuildCondBr(L->B, LLVMBuildIsNotNull(L->B, bp, ""), packed, now);
  LLVMPositionBuilderAtEnd(L->B, packed);
  LLVMValueRef b_packed = fp(g, bp, add(g, mul(g, mul(g, ljb.iv, K), I(g, NR)), mul(g, k0, I(g, NR))));
  LLVMBuildBr(L->B, have);
  LLVMPositionBuilderAtEnd(L->B, now);
  {
    LLVMValueRef args[12] = {scratch, LLVMBuildBitCast(L->B, fp(g, w, mul(g, j0, sn)), L->tp8, ""), nr, K, sn, sk, k0, kc,
                             ll_f64(L, 1.0), LLVMConstNull(L->tp8), LLVMConstNull(L->tp8), ll_i32(L, 0)};
    call(L, "gat.gemm_pack", args, 12);
  }
  LLVMValueRef b_now = LLVMBuildBitCast(L->B, scratch, L->tpf32, "");
  LLVMBuildBr(L->B, have);
  LLVMPositionBuilderAtEnd(L->B, have);
  LLVMValueRef b = LLVMBuildPhi(L->B, L->tpf32, "b");
  LLVMValueRef bv[2] = {b_packed, b_now};
  LLVMBasicBlockRef bb[2] = {packed, now};
  LLVMAddIncoming(b, bv, bb, 2);
  ll_loop_begin(L, &lib, blocks(g, mc, MR), "ib");
  LLVMValueRef ir = mul(g, lib.iv, I(g, MR));
  LLVMValueRef i0 = add(g, ic, ir);
  LLVMValueRef mr = smin(g, LLVMBuildSub(L->B, mc, ir, ""), I(g, MR));
  LLVMBasicBlockRef rows = ll_block(L, "gemv"), tile = ll_block(L, "tile"), epi = ll_block(L, "epi.check");
  LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSLE, mr, I(g, ROWS), ""), rows, tile);
  LLVMPositionBuilderAtEnd(L->B, rows);
  {
    LLLoop li;
    ll_loop_begin(L, &li, mr, "i");
    LLVMValueRef r = add(g, i0, li.iv);
    LLVMValueRef args[6] = {kc, fp(g, a, add(g, mul(g, r, K), k0)), b, fp(g, c, add(g, mul(g, r, N), j0)), nr, accum};
    call(L, "gat.gemm_row", args, 6);
    ll_loop_end(L, &li);
    LLVMBuildBr(L->B, epi);
  }
  LLVMPositionBuilderAtEnd(L->B, tile);
  {
    /* the packed micro-panel: row i, column k at ap[ir * kc + k * MR + i] */
    LLVMValueRef args[10] = {kc, fp(g, ap, mul(g, ir, kc)), I(g, 1), mr, b, fp(g, c, add(g, mul(g, i0, N), j0)), N, nr, accum,
                             I(g, MR)};
    call(L, "gat.gemm_tile", args, 10);
    LLVMBuildBr(L->B, epi);
  }
  LLVMPositionBuilderAtEnd(L->B, epi);
  LLVMBasicBlockRef doepi = ll_block(L, "epi"), after = ll_block(L, "epi.done");
  LLVMBuildCondBr(L->B, LLVMBuildAnd(L->B, last, has_epi, ""), doepi, after);
  LLVMPositionBuilderAtEnd(L->B, doepi);
  {
    LLLoop li;
    ll_loop_begin(L, &li, mr, "i");
    LLVMValueRef r = add(g, i0, li.iv);
    LLVMValueRef args[6] = {fp(g, c, add(g, mul(g, r, N), j0)), nr, ptr_or_null(g, rs, r), ptr_or_null(g, bias, j0), act,
                            ptr_or_null(g, res, add(g, mul(g, r, N), j0))};
    call(L, "gat.gemm_epi", args, 6);
    ll_loop_end(L, &li);
    LLVMBuildBr(L->B, after);
  }
  LLVMPositionBuilderAtEnd(L->B, after);
  ll_loop_end(L, &lib);
  ll_loop_end(L, &ljb);
  ll_loop_end(L, &lic);
  ll_loop_end(L, &lkb);
  LLVMBuildRetVoid(L->B);
}

/* gat.gemm_pack_a(ap, a, lda, rows, k0, kc): rows of a (columns k0 .. k0 + kc) as MR-row
 * micro-panels, for each k the MR values of the panel's rows (zero rows past `rows`), panel after
 * panel (MR * kc floats each), as gat_gemm_pack_a of codegen/kernels/kernels_gemm.c */
static void build_pack_a(G *g) {
  LL *L = g->L;
  LLVMTypeRef p[6] = {L->tpf32, L->tpf32, L->ti64, L->ti64, L->ti64, L->ti64};
  LLVMValueRef f = begin(L, "gat.gemm_pack_a", L->tv, p, 6, g->vl);
  LLVMValueRef ap = LLVMGetParam(f, 0), a = LLVMGetParam(f, 1), lda = LLVMGetParam(f, 2), rows = LLVMGetParam(f, 3);
  LLVMValueRef k0 = LLVMGetParam(f, 4), kc = LLVMGetParam(f, 5);
  int MR = g->mr;
  LLLoop lp, lk, li;
  ll_loop_begin(L, &lp, blocks(g, rows, MR), "p");
  LLVMValueRef p0 = mul(g, lp.iv, I(g, MR));
  LLVMValueRef mr = smin(g, LLVMBuildSub(L->B, rows, p0, ""), I(g, MR));
  LLVMValueRef dst = fp(g, ap, mul(g, p0, kc));
  ll_loop_begin(L, &lk, kc, "k");
  ll_loop_begin(L, &li, I(g, MR), "i");
  LLVMValueRef row = add(g, p0, smin(g, li.iv, LLVMBuildSub(L->B, mr, I(g, 1), ""))); /* in range; zeroed below */
  LLVMValueRef v = LLVMBuildLoad2(L->B, L->tf32, fp(g, a, add(g, mul(g, row, lda), add(g, k0, lk.iv))), "");
  v = LLVMBuildSelect(L->B, LLVMBuildICmp(L->B, LLVMIntSLT, li.iv, mr, ""), v, LLVMConstReal(L->tf32, 0.0), "");
  LLVMBuildStore(L->B, v, fp(g, dst, add(g, mul(g, lk.iv, I(g, MR)), li.iv)));
  ll_loop_end(L, &li);
  ll_loop_end(L, &lk);
  ll_loop_end(L, &lp);
  LLVMBuildRetVoid(L->B);
}

/* gat.gemm_glu_f32(c, a, bw, bu, bias, biasu, rs, M, N, K, act): c = act(a.W^T [*rs] + bias) *
 * (a.U^T [*rs] + biasu), W and U packed; the loop nest of gat_gemm_glu_f32 in
 * codegen/kernels/kernels_gemm.c: rows in chunks of at most 4 MR, packed once with their whole K when that
 * fits the stack buffer (else per micro-panel and K block); per chunk and column panel both
 * products accumulate over K blocks of 128 in two local tiles; each step rounded to f32 */
#define GLU_KC 128
static void build_glu(G *g) {
  LL *L = g->L;
  LLVMTypeRef p[11] = {L->tp8, L->tp8, L->tp8, L->tp8, L->tp8, L->tp8, L->tp8, L->ti64, L->ti64, L->ti64, L->ti32};
  LLVMValueRef f = begin(L, "gat.gemm_glu_f32", L->tv, p, 11, g->vl);
  LLVMValueRef P[11];
  for (int i = 0; i < 11; i++) P[i] = i < 7 ? LLVMBuildBitCast(L->B, LLVMGetParam(f, (unsigned)i), L->tpf32, "") : LLVMGetParam(f, (unsigned)i);
  LLVMValueRef c = P[0], a = P[1], bw = P[2], bu = P[3], bias = P[4], biasu = P[5], rs = P[6];
  LLVMValueRef M = P[7], N = P[8], K = P[9], act = P[10];
  int NR = g->nr, MR = g->mr, MCG = 4 * MR, APACK = 8 * MR * GEMM_KC;
  LLVMValueRef tw = LLVMBuildBitCast(L->B, ll_alloca(L, LLVMArrayType(L->tf32, (unsigned)(MCG * NR)), "tw"), L->tpf32, "");
  LLVMValueRef tu = LLVMBuildBitCast(L->B, ll_alloca(L, LLVMArrayType(L->tf32, (unsigned)(MCG * NR)), "tu"), L->tpf32, "");
  LLVMValueRef ap = LLVMBuildBitCast(L->B, ll_alloca(L, LLVMArrayType(L->tf32, (unsigned)APACK), "ap"), L->tpf32, "");
  /* mcg = min(APACK / K / MR * MR, MCG); whole = mcg >= MR (else MR rows packed per K block) */
  LLVMValueRef mcg = mul(g, LLVMBuildSDiv(L->B, LLVMBuildSDiv(L->B, I(g, APACK), LLVMBuildSelect(L->B, LLVMBuildICmp(L->B, LLVMIntSGT, K, I(g, 0), ""), K, I(g, 1), ""), ""), I(g, MR), ""), I(g, MR));
  mcg = smin(g, mcg, I(g, MCG));
  LLVMValueRef whole = LLVMBuildICmp(L->B, LLVMIntSGE, mcg, I(g, MR), "whole");
  mcg = LLVMBuildSelect(L->B, whole, mcg, I(g, MR), "mcg");
  LLLoop lic, ljb, lkb, lir;
  ll_loop_begin(L, &lic, LLVMBuildSDiv(L->B, add(g, M, LLVMBuildSub(L->B, mcg, I(g, 1), "")), mcg, ""), "ic");
  LLVMValueRef ic = mul(g, lic.iv, mcg);
  LLVMValueRef mc = smin(g, LLVMBuildSub(L->B, M, ic, ""), mcg);
  {
    LLVMBasicBlockRef pk = ll_block(L, "pack"), go = ll_block(L, "packed");
    LLVMBuildCondBr(L->B, LLVMBuildAnd(L->B, whole, LLVMBuildICmp(L->B, LLVMIntSGT, mc, I(g, gemv_rows(g)), ""), ""), pk, go);
    LLVMPositionBuilderAtEnd(L->B, pk);
    LLVMValueRef args[6] = {ap, fp(g, a, mul(g, ic, K)), K, mc, I(g, 0), K};
    call(L, "gat.gemm_pack_a", args, 6);
    LLVMBuildBr(L->B, go);
    LLVMPositionBuilderAtEnd(L->B, go);
  }
  ll_loop_begin(L, &ljb, blocks(g, N, NR), "jb");
  LLVMValueRef j0 = mul(g, ljb.iv, I(g, NR));
  LLVMValueRef nr = smin(g, LLVMBuildSub(L->B, N, j0, ""), I(g, NR));
  LLVMValueRef poff = mul(g, mul(g, ljb.iv, K), I(g, NR));
  LLVMValueRef pw = fp(g, bw, poff), pu = fp(g, bu, poff);
  ll_loop_begin(L, &lkb, blocks(g, K, GLU_KC), "kb");
  LLVMValueRef k0 = mul(g, lkb.iv, I(g, GLU_KC));
  LLVMValueRef kc = smin(g, LLVMBuildSub(L->B, K, k0, ""), I(g, GLU_KC));
  LLVMValueRef accum = LLVMBuildICmp(L->B, LLVMIntSGT, k0, I(g, 0), "");
  LLVMValueRef kofs = mul(g, k0, I(g, NR));
  ll_loop_begin(L, &lir, blocks(g, mc, MR), "ir");
  LLVMValueRef ir = mul(g, lir.iv, I(g, MR));
  LLVMValueRef mr = smin(g, LLVMBuildSub(L->B, mc, ir, ""), I(g, MR));
  LLVMBasicBlockRef rows = ll_block(L, "gemv"), tile = ll_block(L, "tile"), done = ll_block(L, "ir.done");
  LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSLE, mr, I(g, gemv_rows(g)), ""), rows, tile);
  LLVMPositionBuilderAtEnd(L->B, rows);
  {
    LLLoop li;
    ll_loop_begin(L, &li, mr, "i");
    LLVMValueRef ar = fp(g, a, add(g, mul(g, add(g, ic, add(g, ir, li.iv)), K), k0));
    LLVMValueRef t0 = mul(g, add(g, ir, li.iv), I(g, NR));
    LLVMValueRef a1[6] = {kc, ar, fp(g, pw, kofs), fp(g, tw, t0), I(g, NR), accum};
    call(L, "gat.gemm_row", a1, 6);
    LLVMValueRef a2[6] = {kc, ar, fp(g, pu, kofs), fp(g, tu, t0), I(g, NR), accum};
    call(L, "gat.gemm_row", a2, 6);
    ll_loop_end(L, &li);
    LLVMBuildBr(L->B, done);
  }
  LLVMPositionBuilderAtEnd(L->B, tile);
  {
    /* the micro-panel: packed with the chunk, or packed now for this K block */
    LLVMBasicBlockRef now = ll_block(L, "pack.now"), have = ll_block(L, "panel"), pre = LLVMGetInsertBlock(L->B);
    LLVMValueRef api_whole = fp(g, ap, add(g, mul(g, ir, K), mul(g, k0, I(g, MR))));
    LLVMBuildCondBr(L->B, whole, have, now);
    LLVMPositionBuilderAtEnd(L->B, now);
    LLVMValueRef pa[6] = {ap, fp(g, a, mul(g, add(g, ic, ir), K)), K, mr, k0, kc};
    call(L, "gat.gemm_pack_a", pa, 6);
    LLVMBuildBr(L->B, have);
    LLVMPositionBuilderAtEnd(L->B, have);
    LLVMValueRef api = LLVMBuildPhi(L->B, L->tpf32, "api");
    LLVMValueRef av[2] = {api_whole, ap};
    LLVMBasicBlockRef ab[2] = {pre, now};
    LLVMAddIncoming(api, av, ab, 2);
    LLVMValueRef t0 = mul(g, ir, I(g, NR));
    LLVMValueRef a1[10] = {kc, api, I(g, 1), mr, fp(g, pw, kofs), fp(g, tw, t0), I(g, NR), I(g, NR), accum, I(g, MR)};
    call(L, "gat.gemm_tile", a1, 10);
    LLVMValueRef a2[10] = {kc, api, I(g, 1), mr, fp(g, pu, kofs), fp(g, tu, t0), I(g, NR), I(g, NR), accum, I(g, MR)};
    call(L, "gat.gemm_tile", a2, 10);
    LLVMBuildBr(L->B, done);
  }
  LLVMPositionBuilderAtEnd(L->B, done);
  ll_loop_end(L, &lir);
  ll_loop_end(L, &lkb);
  {
    LLLoop li, lj;
    ll_loop_begin(L, &li, mc, "i");
    LLVMValueRef r = add(g, ic, li.iv), t0 = mul(g, li.iv, I(g, NR));
    LLVMValueRef a1[6] = {fp(g, tw, t0), nr, ptr_or_null(g, rs, r), ptr_or_null(g, bias, j0), act, LLVMConstNull(L->tpf32)};
    call(L, "gat.gemm_epi", a1, 6);
    LLVMValueRef a2[6] = {fp(g, tu, t0), nr, ptr_or_null(g, rs, r), ptr_or_null(g, biasu, j0), ll_i32(L, 0), LLVMConstNull(L->tpf32)};
    call(L, "gat.gemm_epi", a2, 6);
    ll_loop_begin(L, &lj, nr, "j");
    LLVMValueRef x = LLVMBuildLoad2(L->B, L->tf32, fp(g, tw, add(g, t0, lj.iv)), "");
    LLVMValueRef y = LLVMBuildLoad2(L->B, L->tf32, fp(g, tu, add(g, t0, lj.iv)), "");
    /* a float product of two floats = the double product rounded once */
    LLVMBuildStore(L->B, LLVMBuildFMul(L->B, x, y, ""), fp(g, c, add(g, mul(g, r, N), add(g, j0, lj.iv))));
    ll_loop_end(L, &lj);
    ll_loop_end(L, &li);
  }
  ll_loop_end(L, &ljb);
  ll_loop_end(L, &lic);
  LLVMBuildRetVoid(L->B);
}

/* ---- segmented GEMM (pass_concat) and the gate epilogue (pass_gate) ---- */

/* one segment: {c, bp, bias, res, mul, N, act}, the gat_gemm_seg struct of codegen/kernels/kernels_gemm.c */
static LLVMTypeRef seg_type(LL *L) {
  LLVMTypeRef f[7] = {L->tpf32, L->tpf32, L->tpf32, L->tpf32, L->tpf32, L->ti64, L->ti32};
  return LLVMStructTypeInContext(L->C, f, 7, 0);
}

/* gat.gemm_epi_seg(ci, nr, rs, bias, act, y, ri): gat.gemm_epi without the residual, then the gate
 * ci[j] * y[j] (y NULL: none), then the residual, each step rounded to f32: the order of the
 * epilogue of gat_gemm_seg_f32 in codegen/kernels/kernels_gemm.c */
static void build_epi_seg(G *g) {
  LL *L = g->L;
  LLVMTypeRef p[7] = {L->tpf32, L->ti64, L->tpf32, L->tpf32, L->ti32, L->tpf32, L->tpf32};
  LLVMValueRef f = begin(L, "gat.gemm_epi_seg", L->tv, p, 7, g->vl);
  LLVMValueRef ci = LLVMGetParam(f, 0), nr = LLVMGetParam(f, 1), y = LLVMGetParam(f, 5), ri = LLVMGetParam(f, 6);
  LLVMValueRef args[6] = {ci, nr, LLVMGetParam(f, 2), LLVMGetParam(f, 3), LLVMGetParam(f, 4), LLVMConstNull(L->tpf32)};
  call(L, "gat.gemm_epi", args, 6);
  epi_loop(g, LLVMBuildIsNotNull(L->B, y, ""), ci, nr, y, NULL, 6);
  epi_loop(g, LLVMBuildIsNotNull(L->B, ri, ""), ci, nr, ri, NULL, 1);
  LLVMBuildRetVoid(L->B);
}

typedef struct SegF {
  LLVMValueRef c, bp, bias, res, mul, N, act, epi;
} SegF;

/* the fields of segment s, and whether it has an epilogue */
static SegF seg_load(G *g, LLVMValueRef sg, LLVMValueRef s, LLVMValueRef has_rs) {
  LL *L = g->L;
  LLVMTypeRef st = seg_type(L);
  LLVMValueRef sp = LLVMBuildGEP2(L->B, st, sg, &s, 1, "");
  LLVMValueRef v[7];
  LLVMTypeRef t[7] = {L->tpf32, L->tpf32, L->tpf32, L->tpf32, L->tpf32, L->ti64, L->ti32};
  for (int i = 0; i < 7; i++) v[i] = LLVMBuildLoad2(L->B, t[i], LLVMBuildStructGEP2(L->B, st, sp, (unsigned)i, ""), "");
  SegF r = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], NULL};
  LLVMValueRef e = LLVMBuildOr(L->B, has_rs, LLVMBuildIsNotNull(L->B, r.bias, ""), "");
  e = LLVMBuildOr(L->B, e, LLVMBuildICmp(L->B, LLVMIntNE, r.act, ll_i32(L, 0), ""), "");
  e = LLVMBuildOr(L->B, e, LLVMBuildIsNotNull(L->B, r.res, ""), "");
  r.epi = LLVMBuildOr(L->B, e, LLVMBuildIsNotNull(L->B, r.mul, ""), "seg.epi");
  return r;
}

/* the epilogue of row r, columns j0 .. j0 + nr of segment q, when it has one */
static void seg_epi_row(G *g, const SegF *q, LLVMValueRef rs, LLVMValueRef r, LLVMValueRef j0, LLVMValueRef nr) {
  LL *L = g->L;
  LLVMBasicBlockRef de = ll_block(L, "epi"), dn = ll_block(L, "epi.done");
  LLVMBuildCondBr(L->B, q->epi, de, dn);
  LLVMPositionBuilderAtEnd(L->B, de);
  LLVMValueRef rj = add(g, mul(g, r, q->N), j0);
  LLVMValueRef args[7] = {fp(g, q->c, rj), nr, ptr_or_null(g, rs, r), ptr_or_null(g, q->bias, j0), q->act,
                          ptr_or_null(g, q->mul, rj), ptr_or_null(g, q->res, rj)};
  call(L, "gat.gemm_epi_seg", args, 7);
  LLVMBuildBr(L->B, dn);
  LLVMPositionBuilderAtEnd(L->B, dn);
}

/* gat.gemm_seg_f32(a, rs, M, K, sg, nseg): segment s computes sg[s].c[M, sg[s].N] =
 * epilogue_s(a . W_s^T) from its packed weight sg[s].bp, as gat_gemm_seg_f32 of
 * codegen/kernels_gemm.c. Decode (M <= the GEMV rows): segment by segment, panel by panel through
 * the whole K (each packed weight one sequential stream), the decode path of gat.gemm_f32. Else the
 * nest of gat.gemm_f32 with the segments' panels one after another inside each row block: a's row
 * block is packed once per K block for all segments. Every value is computed by the same row / tile
 * / epilogue code in the same order as a separate gat.gemm_f32 call (bitwise). */
static void build_seg(G *g) {
  LL *L = g->L;
  LLVMTypeRef p[6] = {L->tp8, L->tp8, L->ti64, L->ti64, LLVMPointerType(seg_type(L), 0), L->ti32};
  LLVMValueRef f = begin(L, "gat.gemm_seg_f32", L->tv, p, 6, g->vl);
  set_noinline(L, f); /* one copy (M3: eight call sites inlined into forward doubled its IR) */
  LLVMValueRef a = LLVMBuildBitCast(L->B, LLVMGetParam(f, 0), L->tpf32, "");
  LLVMValueRef rs = LLVMBuildBitCast(L->B, LLVMGetParam(f, 1), L->tpf32, "");
  LLVMValueRef M = LLVMGetParam(f, 2), K = LLVMGetParam(f, 3), sg = LLVMGetParam(f, 4);
  LLVMValueRef nseg = LLVMBuildSExt(L->B, LLVMGetParam(f, 5), L->ti64, "");
  LLVMValueRef has_rs = LLVMBuildIsNotNull(L->B, rs, "");
  int NR = g->nr, MR = g->mr;
  const int ROWS = gemv_rows(g);
  {
    LLVMBasicBlockRef dec = ll_block(L, "decode"), blk = ll_block(L, "blocked");
    LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSLE, M, I(g, ROWS), ""), dec, blk);
    LLVMPositionBuilderAtEnd(L->B, dec);
    LLLoop ls, lj, li, lk;
    ll_loop_begin(L, &ls, nseg, "sd");
    SegF q = seg_load(g, sg, ls.iv, has_rs);
    ll_loop_begin(L, &lj, blocks(g, q.N, NR), "jd");
    LLVMValueRef j0 = mul(g, lj.iv, I(g, NR));
    LLVMValueRef nr = smin(g, LLVMBuildSub(L->B, q.N, j0, ""), I(g, NR));
    LLVMValueRef pb = fp(g, q.bp, mul(g, mul(g, lj.iv, K), I(g, NR)));
    ll_loop_begin(L, &li, M, "id");
    LLVMValueRef ci = fp(g, q.c, add(g, mul(g, li.iv, q.N), j0));
    ll_loop_begin(L, &lk, blocks(g, K, GEMM_KC), "kd");
    LLVMValueRef k0 = mul(g, lk.iv, I(g, GEMM_KC));
    LLVMValueRef kc = smin(g, LLVMBuildSub(L->B, K, k0, ""), I(g, GEMM_KC));
    LLVMValueRef args[6] = {kc, fp(g, a, add(g, mul(g, li.iv, K), k0)), fp(g, pb, mul(g, k0, I(g, NR))), ci, nr,
                            LLVMBuildICmp(L->B, LLVMIntSGT, k0, I(g, 0), "")};
    call(L, "gat.gemm_row", args, 6);
    ll_loop_end(L, &lk);
    seg_epi_row(g, &q, rs, li.iv, j0, nr);
    ll_loop_end(L, &li);
    ll_loop_end(L, &lj);
    ll_loop_end(L, &ls);
    LLVMBuildRetVoid(L->B);
    LLVMPositionBuilderAtEnd(L->B, blk);
  }
  const int MC = 8 * MR;
  LLVMValueRef ap = LLVMBuildBitCast(L->B, ll_alloca(L, LLVMArrayType(L->tf32, (unsigned)(MC * GEMM_KC)), "ap"), L->tpf32, "");
  LLLoop lkb, lic, ls, ljb, lib;
  ll_loop_begin(L, &lkb, blocks(g, K, GEMM_KC), "kb");
  LLVMValueRef k0 = mul(g, lkb.iv, I(g, GEMM_KC));
  LLVMValueRef kc = smin(g, LLVMBuildSub(L->B, K, k0, ""), I(g, GEMM_KC));
  LLVMValueRef last = LLVMBuildICmp(L->B, LLVMIntEQ, add(g, k0, kc), K, "");
  LLVMValueRef accum = LLVMBuildICmp(L->B, LLVMIntSGT, k0, I(g, 0), "");
  ll_loop_begin(L, &lic, blocks(g, M, MC), "ic");
  LLVMValueRef ic = mul(g, lic.iv, I(g, MC));
  LLVMValueRef mc = smin(g, LLVMBuildSub(L->B, M, ic, ""), I(g, MC));
  {
    LLVMBasicBlockRef pk = ll_block(L, "pack.a"), go = ll_block(L, "packed.a");
    LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSGT, mc, I(g, ROWS), ""), pk, go);
    LLVMPositionBuilderAtEnd(L->B, pk);
    LLVMValueRef args[6] = {ap, fp(g, a, mul(g, ic, K)), K, mc, k0, kc};
    call(L, "gat.gemm_pack_a", args, 6);
    LLVMBuildBr(L->B, go);
    LLVMPositionBuilderAtEnd(L->B, go);
  }
  ll_loop_begin(L, &ls, nseg, "s");
  SegF q = seg_load(g, sg, ls.iv, has_rs);
  LLVMValueRef N = q.N;
  ll_loop_begin(L, &ljb, blocks(g, N, NR), "jb");
  LLVMValueRef j0 = mul(g, ljb.iv, I(g, NR));
  LLVMValueRef nr = smin(g, LLVMBuildSub(L->B, N, j0, ""), I(g, NR));
  LLVMValueRef b = fp(g, q.bp, add(g, mul(g, mul(g, ljb.iv, K), I(g, NR)), mul(g, k0, I(g, NR))));
  ll_loop_begin(L, &lib, blocks(g, mc, MR), "ib");
  LLVMValueRef ir = mul(g, lib.iv, I(g, MR));
  LLVMValueRef i0 = add(g, ic, ir);
  LLVMValueRef mr = smin(g, LLVMBuildSub(L->B, mc, ir, ""), I(g, MR));
  LLVMBasicBlockRef rows = ll_block(L, "gemv"), tile = ll_block(L, "tile"), epi = ll_block(L, "epi.check");
  LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSLE, mr, I(g, ROWS), ""), rows, tile);
  LLVMPositionBuilderAtEnd(L->B, rows);
  {
    LLLoop li;
    ll_loop_begin(L, &li, mr, "i");
    LLVMValueRef r = add(g, i0, li.iv);
    LLVMValueRef args[6] = {kc, fp(g, a, add(g, mul(g, r, K), k0)), b, fp(g, q.c, add(g, mul(g, r, N), j0)), nr, accum};
    call(L, "gat.gemm_row", args, 6);
    ll_loop_end(L, &li);
    LLVMBuildBr(L->B, epi);
  }
  LLVMPositionBuilderAtEnd(L->B, tile);
  {
    LLVMValueRef args[10] = {kc, fp(g, ap, mul(g, ir, kc)), I(g, 1), mr, b, fp(g, q.c, add(g, mul(g, i0, N), j0)), N, nr, accum,
                             I(g, MR)};
    call(L, "gat.gemm_tile", args, 10);
    LLVMBuildBr(L->B, epi);
  }
  LLVMPositionBuilderAtEnd(L->B, epi);
  LLVMBasicBlockRef doepi = ll_block(L, "epi.rows"), after = ll_block(L, "epi.rows.done");
  LLVMBuildCondBr(L->B, last, doepi, after);
  LLVMPositionBuilderAtEnd(L->B, doepi);
  {
    LLLoop li;
    ll_loop_begin(L, &li, mr, "i");
    seg_epi_row(g, &q, rs, add(g, i0, li.iv), j0, nr);
    ll_loop_end(L, &li);
    LLVMBuildBr(L->B, after);
  }
  LLVMPositionBuilderAtEnd(L->B, after);
  ll_loop_end(L, &lib);
  ll_loop_end(L, &ljb);
  ll_loop_end(L, &ls);
  ll_loop_end(L, &lic);
  ll_loop_end(L, &lkb);
  LLVMBuildRetVoid(L->B);
}

void ll_gemm_seg_call(LL *L, int nseg, LLVMValueRef *ptrs, const int64_t *n, const int *act, LLVMValueRef a,
                      LLVMValueRef rs, LLVMValueRef M, LLVMValueRef K) {
  LLVMTypeRef st = seg_type(L);
  LLVMValueRef arr = ll_alloca(L, LLVMArrayType(st, (unsigned)nseg), "segs");
  for (int s = 0; s < nseg; s++) {
    LLVMValueRef idx[2] = {ll_i64(L, 0), ll_i64(L, s)};
    LLVMValueRef sp = LLVMBuildGEP2(L->B, LLVMArrayType(st, (unsigned)nseg), arr, idx, 2, "");
    for (int f = 0; f < 5; f++)
      LLVMBuildStore(L->B, LLVMBuildBitCast(L->B, ptrs[5 * s + f], L->tpf32, ""), LLVMBuildStructGEP2(L->B, st, sp, (unsigned)f, ""));
    LLVMBuildStore(L->B, ll_i64(L, n[s]), LLVMBuildStructGEP2(L->B, st, sp, 5, ""));
    LLVMBuildStore(L->B, ll_i32(L, act[s]), LLVMBuildStructGEP2(L->B, st, sp, 6, ""));
  }
  LLVMValueRef v[6] = {a, rs, M, K, LLVMBuildBitCast(L->B, arr, LLVMPointerType(st, 0), ""), ll_i32(L, nseg)};
  call(L, "gat.gemm_seg_f32", v, 6);
}

void ll_gemm_declare(LL *L) {
  if (LLVMGetNamedFunction(L->M, "gat.gemm_f32")) return;
  LLVMBasicBlockRef saved_bb = LLVMGetInsertBlock(L->B);
  LLVMValueRef saved_fn = L->fn;
  G g;
  g.L = L;
  g.vl = L->vl;
  g.mr = L->mr > 16 ? 16 : L->mr;
  g.nr = 2 * L->vl;
  g.tvec = LLVMVectorType(L->tf32, (unsigned)g.vl);
  g.tvecp = LLVMPointerType(g.tvec, 0);
  build_pack(&g);
  build_act(&g);
  build_tile(&g);
  build_row(&g);
  build_sigmoidf(&g);
  build_epi(&g);
  build_pack_a(&g);
  build_f32(&g);
  build_glu(&g);
  build_epi_seg(&g);
  build_seg(&g);
  L->fn = saved_fn;
  if (saved_bb) LLVMPositionBuilderAtEnd(L->B, saved_bb);
}
