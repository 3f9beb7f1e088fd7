/* emit_llvm_math.c — the f32 elementwise functions of -O2 `f32_math` nests
 * (pass_f32math) built as LLVM IR: the same algorithms, operations and
 * operation order as the C text of codegen/kernels_math.c (range reduction
 * by the 1.5 * 2^23 shifter, two-part ln 2, Taylor / atanh polynomials,
 * selects instead of branches), so a gate nest is a loop LLVM vectorizes
 * (no libm call in it) and its values are those of the C build compiled by
 * GCC (ISO C: no FMA contraction; here no contraction either: plain fmul and
 * fadd, no fast-math flags).
 *
 * Each function is an internal, alwaysinline `float gat.vm.NAME(float)`,
 * built on first use. emit_llvm_vecmath_module wraps them in exported loops
 * for tests/unit/test_llvm_vecmath.cc. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "emit_llvm_int.h"

static LLVMValueRef cf(LL *L, float v) { return LLVMConstReal(L->tf32, (double)v); }
static LLVMValueRef ci(LL *L, uint32_t v) { return LLVMConstInt(L->ti32, v, 0); }
static LLVMValueRef fmul(LL *L, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(L->B, a, b, ""); }
static LLVMValueRef fadd(LL *L, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(L->B, a, b, ""); }
static LLVMValueRef fsub(LL *L, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(L->B, a, b, ""); }
static LLVMValueRef fdiv(LL *L, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFDiv(L->B, a, b, ""); }
static LLVMValueRef fcmp(LL *L, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFCmp(L->B, p, a, b, "");
}
static LLVMValueRef sel(LL *L, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSelect(L->B, c, a, b, ""); }
static LLVMValueRef asu(LL *L, LLVMValueRef f) { return LLVMBuildBitCast(L->B, f, L->ti32, ""); }
static LLVMValueRef asf(LL *L, LLVMValueRef u) { return LLVMBuildBitCast(L->B, u, L->tf32, ""); }
static LLVMValueRef intr1(LL *L, const char *name, LLVMValueRef a) {
  LLVMTypeRef t = L->tf32;
  return ll_call(L, name, L->tf32, &t, 1, &a);
}
static LLVMValueRef fabsv(LL *L, LLVMValueRef a) { return intr1(L, "llvm.fabs.f32", a); }

/* Horner steps p = p * r + c_i, in order */
static LLVMValueRef horner(LL *L, LLVMValueRef r, const float *c, int n) {
  LLVMValueRef p = cf(L, c[0]);
  for (int i = 1; i < n; i++) p = fadd(L, fmul(L, p, r), cf(L, c[i]));
  return p;
}

/* 2^k as a float for an i32 k in the normal range: (k + 127) << 23 */
static LLVMValueRef pow2i(LL *L, LLVMValueRef k) {
  return asf(L, LLVMBuildShl(L->B, LLVMBuildAdd(L->B, k, ci(L, 127), ""), ci(L, 23), ""));
}

/* n (as float and as the shifter's integer) and r = x - n ln2 (two-part ln2) */
static LLVMValueRef reduce_ln2(LL *L, LLVMValueRef x, LLVMValueRef *ni) {
  LLVMValueRef t = fadd(L, fmul(L, x, cf(L, 1.44269504088896341f)), cf(L, 12582912.0f));
  LLVMValueRef n = fsub(L, t, cf(L, 12582912.0f));
  LLVMValueRef r = fsub(L, x, fmul(L, n, cf(L, 0.693145751953125f)));
  r = fsub(L, r, fmul(L, n, cf(L, 1.428606765330187e-06f)));
  *ni = LLVMBuildSub(L->B, asu(L, t), ci(L, 0x4B400000u), "");
  return r;
}

static LLVMValueRef vm_call(LL *L, const char *name, LLVMValueRef a);

static void body_exp(LL *L, LLVMValueRef x) {
  LLVMValueRef xc = sel(L, fcmp(L, LLVMRealOLT, x, cf(L, -104.0f)), cf(L, -104.0f), x);
  xc = sel(L, fcmp(L, LLVMRealOGT, xc, cf(L, 89.0f)), cf(L, 89.0f), xc);
  LLVMValueRef ni;
  LLVMValueRef r = reduce_ln2(L, xc, &ni);
  static const float c[] = {1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f,
                            1.0f / 6.0f,    0.5f,          1.0f,          1.0f};
  LLVMValueRef p = horner(L, r, c, 8);
  LLVMValueRef n1 = LLVMBuildSDiv(L->B, ni, ci(L, 2), "");
  LLVMValueRef n2 = LLVMBuildSub(L->B, ni, n1, "");
  LLVMBuildRet(L->B, fmul(L, fmul(L, p, pow2i(L, n1)), pow2i(L, n2)));
}

static void body_expm1(LL *L, LLVMValueRef x) {
  LLVMValueRef ni;
  LLVMValueRef r = reduce_ln2(L, x, &ni);
  static const float c[] = {1.0f / 40320.0f, 1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f,
                            1.0f / 24.0f,    1.0f / 6.0f,    0.5f};
  LLVMValueRef q = horner(L, r, c, 7);
  q = fadd(L, fmul(L, fmul(L, q, r), r), r);
  LLVMValueRef s = pow2i(L, ni);
  LLVMBuildRet(L->B, fadd(L, fmul(L, s, q), fsub(L, s, cf(L, 1.0f))));
}

static void body_tanh(LL *L, LLVMValueRef x) {
  LLVMValueRef ax = fabsv(L, x);
  LLVMValueRef a = sel(L, fcmp(L, LLVMRealOGT, ax, cf(L, 9.5f)), cf(L, 9.5f), ax);
  LLVMValueRef u = vm_call(L, "expm1", fmul(L, cf(L, 2.0f), a));
  LLVMValueRef q = fdiv(L, u, fadd(L, u, cf(L, 2.0f)));
  LLVMTypeRef t2[2] = {L->tf32, L->tf32};
  LLVMValueRef v2[2] = {q, x};
  LLVMBuildRet(L->B, ll_call(L, "llvm.copysign.f32", L->tf32, t2, 2, v2));
}

/* 2 s + 2 s (p(s^2) s^2) with the atanh series to s^11 */
static LLVMValueRef atanh2(LL *L, LLVMValueRef s, LLVMValueRef *s2o) {
  LLVMValueRef s2 = fmul(L, s, s);
  static const float c[] = {1.0f / 11.0f, 1.0f / 9.0f, 1.0f / 7.0f, 1.0f / 5.0f, 1.0f / 3.0f};
  LLVMValueRef p = horner(L, s2, c, 5);
  *s2o = s2;
  return fmul(L, p, s2);
}

static void body_log1p01(LL *L, LLVMValueRef u) {
  LLVMValueRef big = fcmp(L, LLVMRealOGT, u, cf(L, 0.41421356f));
  LLVMValueRef s = fdiv(L, sel(L, big, fsub(L, u, cf(L, 1.0f)), u),
                        sel(L, big, fadd(L, u, cf(L, 3.0f)), fadd(L, u, cf(L, 2.0f))));
  LLVMValueRef s2;
  LLVMValueRef ps2 = atanh2(L, s, &s2);
  LLVMValueRef l = fadd(L, fmul(L, cf(L, 2.0f), s), fmul(L, fmul(L, cf(L, 2.0f), s), ps2));
  LLVMBuildRet(L->B, fadd(L, l, sel(L, big, cf(L, 0.693147180559945309f), cf(L, 0.0f))));
}

static void body_log(LL *L, LLVMValueRef x) {
  LLVMValueRef sub = fcmp(L, LLVMRealOLT, x, cf(L, 1.17549435e-38f));
  LLVMValueRef b = asu(L, sel(L, sub, fmul(L, x, cf(L, 8388608.0f)), x));
  LLVMValueRef m1 = asf(L, LLVMBuildOr(L->B, LLVMBuildAnd(L->B, b, ci(L, 0x007FFFFFu), ""), ci(L, 0x3F800000u), ""));
  LLVMValueRef hi = fcmp(L, LLVMRealOGT, m1, cf(L, 1.41421356f));
  LLVMValueRef m = sel(L, hi, fmul(L, m1, cf(L, 0.5f)), m1);
  LLVMValueRef e = LLVMBuildSub(L->B, LLVMBuildAnd(L->B, LLVMBuildLShr(L->B, b, ci(L, 23), ""), ci(L, 0xFFu), ""),
                                ci(L, 127), "");
  e = LLVMBuildAdd(L->B, e, LLVMBuildZExt(L->B, hi, L->ti32, ""), "");
  e = LLVMBuildSub(L->B, e, LLVMBuildMul(L->B, ci(L, 23), LLVMBuildZExt(L->B, sub, L->ti32, ""), ""), "");
  LLVMValueRef kf = LLVMBuildSIToFP(L->B, e, L->tf32, "");
  LLVMValueRef s = fdiv(L, fsub(L, m, cf(L, 1.0f)), fadd(L, m, cf(L, 1.0f)));
  LLVMValueRef s2;
  LLVMValueRef ps2 = atanh2(L, s, &s2);
  LLVMValueRef s2x = fmul(L, cf(L, 2.0f), s);
  LLVMValueRef l = fadd(L, fmul(L, kf, cf(L, 0.693145751953125f)),
                        fadd(L, s2x, fadd(L, fmul(L, s2x, ps2), fmul(L, kf, cf(L, 1.428606765330187e-06f)))));
  LLVMValueRef r = sel(L, fcmp(L, LLVMRealOEQ, x, cf(L, 0.0f)), cf(L, -INFINITY),
                       sel(L, fcmp(L, LLVMRealOLT, x, cf(L, 0.0f)), cf(L, NAN), l));
  LLVMValueRef keep = LLVMBuildOr(L->B, fcmp(L, LLVMRealUNE, x, x), fcmp(L, LLVMRealOEQ, x, cf(L, INFINITY)), "");
  LLVMBuildRet(L->B, sel(L, keep, x, r));
}

static LLVMValueRef one_plus_exp_neg(LL *L, LLVMValueRef y) {
  return fadd(L, cf(L, 1.0f), vm_call(L, "exp", LLVMBuildFNeg(L->B, y, "")));
}

static void body_sigmoid(LL *L, LLVMValueRef x) { LLVMBuildRet(L->B, fdiv(L, cf(L, 1.0f), one_plus_exp_neg(L, x))); }
static void body_silu(LL *L, LLVMValueRef x) { LLVMBuildRet(L->B, fdiv(L, x, one_plus_exp_neg(L, x))); }

static void body_softplus(LL *L, LLVMValueRef x) {
  LLVMValueRef e = vm_call(L, "exp", LLVMBuildFNeg(L->B, fabsv(L, x), ""));
  LLVMValueRef v = fadd(L, sel(L, fcmp(L, LLVMRealOGT, x, cf(L, 0.0f)), x, cf(L, 0.0f)), vm_call(L, "log1p01", e));
  LLVMBuildRet(L->B, sel(L, fcmp(L, LLVMRealOGT, x, cf(L, 20.0f)), x, v));
}

static void body_logsigmoid(LL *L, LLVMValueRef x) {
  LLVMValueRef e = vm_call(L, "exp", LLVMBuildFNeg(L->B, fabsv(L, x), ""));
  LLVMBuildRet(L->B, fsub(L, sel(L, fcmp(L, LLVMRealOLT, x, cf(L, 0.0f)), x, cf(L, 0.0f)), vm_call(L, "log1p01", e)));
}

static void body_gelu_tanh(LL *L, LLVMValueRef x) {
  LLVMValueRef c = fmul(L, fmul(L, fmul(L, cf(L, 0.044715f), x), x), x);
  LLVMValueRef y = fmul(L, cf(L, 0.797884560802865356f), fadd(L, x, c));
  LLVMBuildRet(L->B, fdiv(L, x, fadd(L, cf(L, 1.0f), vm_call(L, "exp", fmul(L, cf(L, -2.0f), y)))));
}

static void body_relu(LL *L, LLVMValueRef x) {
  LLVMBuildRet(L->B, sel(L, fcmp(L, LLVMRealOGT, x, cf(L, 0.0f)), x, cf(L, 0.0f)));
}

static void body_rsqrt(LL *L, LLVMValueRef x) { LLVMBuildRet(L->B, fdiv(L, cf(L, 1.0f), intr1(L, "llvm.sqrt.f32", x))); }

static const struct {
  const char *name;
  void (*body)(LL *, LLVMValueRef);
} vm_fns[] = {
    {"exp", body_exp},         {"expm1", body_expm1},         {"tanh", body_tanh},     {"log1p01", body_log1p01},
    {"log", body_log},         {"sigmoid", body_sigmoid},     {"silu", body_silu},     {"softplus", body_softplus},
    {"logsigmoid", body_logsigmoid}, {"gelu_tanh", body_gelu_tanh}, {"relu", body_relu}, {"rsqrt", body_rsqrt},
};

/* float gat.vm.NAME(float): defined on first use (internal, alwaysinline, no memory access) */
static LLVMValueRef vm_fn(LL *L, const char *name) {
  char full[64];
  snprintf(full, sizeof full, "gat.vm.%s", name);
  LLVMValueRef f = LLVMGetNamedFunction(L->M, full);
  if (f) return f;
  int which = -1;
  for (size_t i = 0; i < sizeof vm_fns / sizeof vm_fns[0]; i++)
    if (strcmp(vm_fns[i].name, name) == 0) which = (int)i;
  LLVMTypeRef fty = LLVMFunctionType(L->tf32, &L->tf32, 1, 0);
  f = LLVMAddFunction(L->M, full, fty);
  LLVMSetLinkage(f, LLVMInternalLinkage);
  const char *attrs[] = {"alwaysinline", "nounwind", "readnone", "willreturn", "nofree", "nosync"};
  for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(L->C, LLVMGetEnumAttributeKindForName(attrs[i], strlen(attrs[i])), 0));
  /* build the body with a saved builder position */
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(L->B);
  LLVMValueRef savefn = L->fn;
  L->fn = f;
  LLVMPositionBuilderAtEnd(L->B, LLVMAppendBasicBlockInContext(L->C, f, "entry"));
  if (which >= 0)
    vm_fns[which].body(L, LLVMGetParam(f, 0));
  else {
    ll_fail(L, "LLVM backend: no float function %s", name);
    LLVMBuildRet(L->B, LLVMGetParam(f, 0));
  }
  L->fn = savefn;
  if (cur) LLVMPositionBuilderAtEnd(L->B, cur);
  return f;
}

static LLVMValueRef vm_call(LL *L, const char *name, LLVMValueRef a) {
  LLVMValueRef f = vm_fn(L, name);
  return LLVMBuildCall2(L->B, LLVMGlobalGetValueType(f), f, &a, 1, "");
}

LLVMValueRef ll_unary_f32(LL *L, IrFn fn, LLVMValueRef a) {
  switch (fn) {
  case IR_FN_NEG: return LLVMBuildFNeg(L->B, a, "");
  case IR_FN_EXP: return vm_call(L, "exp", a);
  case IR_FN_LOG: return vm_call(L, "log", a);
  case IR_FN_SQRT: return intr1(L, "llvm.sqrt.f32", a);
  case IR_FN_RSQRT: return vm_call(L, "rsqrt", a);
  case IR_FN_ABS: return fabsv(L, a);
  case IR_FN_TANH: return vm_call(L, "tanh", a);
  case IR_FN_SIGMOID: return vm_call(L, "sigmoid", a);
  case IR_FN_LOGSIGMOID: return vm_call(L, "logsigmoid", a);
  case IR_FN_SILU: return vm_call(L, "silu", a);
  case IR_FN_RELU: return vm_call(L, "relu", a);
  case IR_FN_GELU_TANH: return vm_call(L, "gelu_tanh", a);
  case IR_FN_SOFTPLUS: return vm_call(L, "softplus", a);
  default: return NULL; /* not produced by pass_f32math */
  }
}

/* ---- test module: void NAME(const float *x, float *restrict y, i64 n) { y[i] = gat.vm.NAME(x[i]) } ---- */
LLVMModuleRef emit_llvm_vecmath_module(LLVMContextRef ctx, LLVMTargetMachineRef tm, char *err, size_t errlen) {
  static const char *names[] = {"exp", "tanh", "sigmoid", "silu", "softplus", "logsigmoid", "gelu_tanh", "log"};
  LL L;
  memset(&L, 0, sizeof L);
  L.C = ctx;
  L.err = err;
  L.errlen = errlen;
  L.M = LLVMModuleCreateWithNameInContext("gat_vecmath", ctx);
  L.B = LLVMCreateBuilderInContext(ctx);
  char *triple = LLVMGetTargetMachineTriple(tm);
  LLVMSetTarget(L.M, triple);
  LLVMDisposeMessage(triple);
  L.td = LLVMCreateTargetDataLayout(tm);
  LLVMSetModuleDataLayout(L.M, L.td);
  L.tv = LLVMVoidTypeInContext(ctx);
  L.ti1 = LLVMInt1TypeInContext(ctx);
  L.ti32 = LLVMInt32TypeInContext(ctx);
  L.ti64 = LLVMInt64TypeInContext(ctx);
  L.tf32 = LLVMFloatTypeInContext(ctx);
  L.tpf32 = LLVMPointerType(L.tf32, 0);
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char nm[64];
    snprintf(nm, sizeof nm, "gat_vm_test_%s", names[i]);
    LLVMTypeRef pt[3] = {L.tpf32, L.tpf32, L.ti64};
    LLVMValueRef f = LLVMAddFunction(L.M, nm, LLVMFunctionType(L.tv, pt, 3, 0));
    unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
    LLVMAddAttributeAtIndex(f, 2, LLVMCreateEnumAttribute(ctx, noalias, 0));
    LLVMAddAttributeAtIndex(f, 1, LLVMCreateEnumAttribute(ctx, noalias, 0));
    L.fn = f;
    LLVMPositionBuilderAtEnd(L.B, LLVMAppendBasicBlockInContext(ctx, f, "entry"));
    LLLoop lp;
    ll_loop_begin(&L, &lp, LLVMGetParam(f, 2), "i");
    LLVMValueRef x = LLVMBuildLoad2(L.B, L.tf32, ll_gep(&L, L.tf32, LLVMGetParam(f, 0), lp.iv), "");
    LLVMBuildStore(L.B, vm_call(&L, names[i], x), ll_gep(&L, L.tf32, LLVMGetParam(f, 1), lp.iv));
    ll_loop_end(&L, &lp);
    LLVMBuildRetVoid(L.B);
  }
  LLVMDisposeBuilder(L.B);
  LLVMDisposeTargetData(L.td);
  if (L.failed) {
    LLVMDisposeModule(L.M);
    return NULL;
  }
  return ll_verify_optimize(L.M, tm, "default<O3>", 0, "vecmath module", err, errlen);
}
