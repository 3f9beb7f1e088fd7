/* emit_llvm_kernels.c — the LLVM backend's side of the kernels written once in
 * C (codegen/kernels/): clang compiles them to bitcode at build time
 * (CMakeLists.txt, -ffp-contract=off -fno-math-errno, as ISO C code is built
 * by gcc), gattnc carries the bitcode, and each module that calls one links
 * it in (LLVMLinkModules2). The linked functions are made internal and
 * always-inline and lose the target attributes clang gave them, so the
 * module's target machine (-mcpu) decides the instructions and the
 * optimizer removes what is not called. The C backend copies the same files
 * as text (kernels_math.c), so both builds compute the same bits.
 *
 * Today: the f32 elementwise functions of -O2 `f32_math` nests
 * (kernels/vecmath.c), inlined everywhere; the GEMM micro-kernel
 * (kernels/gemm.c) and the chunked linear-attention scans (kernels/scan.c),
 * one bitcode per vector width, called; and the flash attention kernel
 * (kernels/attention.c), one bitcode per vector width linked once per (DK,
 * DV, features) variant with those made constants. */
#include <stdio.h>
#include <string.h>

#include <llvm-c/BitReader.h>
#include <llvm-c/Linker.h>

#include "emit_llvm_int.h"
#include "kernels_attention.h"
#include "kernels_gemm.h"
#include "kernels_math.h"
#include "kernels_scan.h"

/* codegen/kernels/vecmath.c, gemm.c and scan.c (per vector width) as bitcode (cmake/gat_embed.c) */
extern const unsigned char gat_kernel_vecmath_bc[], gat_kernel_gemm_v16_bc[], gat_kernel_gemm_v8_bc[],
    gat_kernel_gemm_v4_bc[], gat_kernel_scan_v16_bc[], gat_kernel_scan_v8_bc[], gat_kernel_scan_v4_bc[];
extern const size_t gat_kernel_vecmath_bc_size, gat_kernel_gemm_v16_bc_size, gat_kernel_gemm_v8_bc_size,
    gat_kernel_gemm_v4_bc_size, gat_kernel_scan_v16_bc_size, gat_kernel_scan_v8_bc_size, gat_kernel_scan_v4_bc_size;
/* codegen/kernels/attention.c, generic over the head dims and features (GAT_FA_GENERIC), per vector width */
extern const unsigned char gat_kernel_attention_v16_bc[], gat_kernel_attention_v8_bc[], gat_kernel_attention_v4_bc[];
extern const size_t gat_kernel_attention_v16_bc_size, gat_kernel_attention_v8_bc_size, gat_kernel_attention_v4_bc_size;

/* The kernels compiled once per vector width: each one's bitcode for 16, 8 and 4 floats */
typedef struct KernelBc {
  const char *name; /* for messages: NAME_vW.bc */
  const unsigned char *bc[3];
  const size_t *size[3];
} KernelBc;
static const KernelBc KBC_GEMM = {"gemm",
                                  {gat_kernel_gemm_v16_bc, gat_kernel_gemm_v8_bc, gat_kernel_gemm_v4_bc},
                                  {&gat_kernel_gemm_v16_bc_size, &gat_kernel_gemm_v8_bc_size, &gat_kernel_gemm_v4_bc_size}};
static const KernelBc KBC_SCAN = {"scan",
                                  {gat_kernel_scan_v16_bc, gat_kernel_scan_v8_bc, gat_kernel_scan_v4_bc},
                                  {&gat_kernel_scan_v16_bc_size, &gat_kernel_scan_v8_bc_size, &gat_kernel_scan_v4_bc_size}};
static const KernelBc KBC_ATTENTION = {
    "attention",
    {gat_kernel_attention_v16_bc, gat_kernel_attention_v8_bc, gat_kernel_attention_v4_bc},
    {&gat_kernel_attention_v16_bc_size, &gat_kernel_attention_v8_bc_size, &gat_kernel_attention_v4_bc_size}};
/* the variant of the module's vector width: 0 (16 floats), 1 (8) or 2 (4) */
static int kbc_variant(const LL *L) { return L->vl >= 16 ? 0 : L->vl >= 8 ? 1 : 2; }

static LLVMValueRef vm_call(LL *L, const char *name, LLVMValueRef a) {
  LLVMTypeRef t = L->tf32;
  return ll_call(L, name, L->tf32, &t, 1, &a);
}

static LLVMValueRef intr1(LL *L, const char *name, LLVMValueRef a) {
  LLVMTypeRef t = L->tf32;
  return ll_call(L, name, L->tf32, &t, 1, &a);
}

LLVMValueRef ll_unary_f32(LL *L, IrFn fn, LLVMValueRef a) {
  switch (fn) {
  case IR_FN_NEG: return LLVMBuildFNeg(L->B, a, "");
  case IR_FN_SQRT: return intr1(L, "llvm.sqrt.f32", a);
  case IR_FN_ABS: return intr1(L, "llvm.fabs.f32", a);
  default: {
    const char *name = kernels_math_unary_f32(fn);
    return name ? vm_call(L, name, a) : NULL; /* NULL: not produced by pass_f32math */
  }
  }
}

int ll_gemm_act_ok(int epi_act) { return kernels_gemm_act_code(epi_act) >= 0; }

/* one segment: {c, bp, bias, res, mul, N, act}, the gat_gemm_seg struct of codegen/kernels/gemm.c */
void ll_gemm_seg_call(LL *L, int nseg, LLVMValueRef *ptrs, const int64_t *n, const int *epi_act, LLVMValueRef a,
                      LLVMValueRef rs, LLVMValueRef M, LLVMValueRef K, const LLVMValueRef *rows) {
  LLVMTypeRef f[7] = {L->tpf32, L->tpf32, L->tpf32, L->tpf32, L->tpf32, L->ti64, L->ti32};
  LLVMTypeRef st = LLVMStructTypeInContext(L->C, f, 7, 0), at = LLVMArrayType(st, (unsigned)nseg);
  LLVMValueRef arr = ll_alloca(L, at, "segs");
  for (int s = 0; s < nseg; s++) {
    LLVMValueRef idx[2] = {ll_i64(L, 0), ll_i64(L, s)};
    LLVMValueRef sp = LLVMBuildGEP2(L->B, at, arr, idx, 2, "");
    for (int k = 0; k < 5; k++)
      LLVMBuildStore(L->B, LLVMBuildBitCast(L->B, ptrs[5 * s + k], L->tpf32, ""), LLVMBuildStructGEP2(L->B, st, sp, (unsigned)k, ""));
    LLVMBuildStore(L->B, ll_i64(L, n[s]), LLVMBuildStructGEP2(L->B, st, sp, 5, ""));
    LLVMBuildStore(L->B, ll_i32(L, kernels_gemm_act_code(epi_act[s])), LLVMBuildStructGEP2(L->B, st, sp, 6, ""));
  }
  LLVMTypeRef t[8] = {L->tp8, L->tp8, L->ti64, L->ti64, L->tp8, L->ti32, L->ti64, L->ti64};
  LLVMValueRef v[8] = {a, rs, M, K, LLVMBuildBitCast(L->B, arr, L->tp8, ""), ll_i32(L, nseg), NULL, NULL};
  if (rows && rows[0]) {
    v[6] = rows[0], v[7] = rows[1];
    ll_call(L, "gat_gemm_seg_f32_blk", L->tv, t, 8, v);
  } else {
    ll_call(L, "gat_gemm_seg_f32", L->tv, t, 6, v);
  }
}

/* the arguments kernels_scan_call gives the C build: q, k, v, gk (GLA) or beta and decay (delta, NULL
   without one), S, o, workspace, T, H, (G,) K, V, scale */
void ll_scan_chunk_call(LL *L, const LoopKernel *k, LLVMValueRef T, LLVMValueRef *ptr) {
  const int delta = k->scan_chunk == KERNELS_SCAN_DELTA;
  LLVMValueRef p[8];
  for (int i = 0; i < 8; i++) p[i] = ptr[i] ? LLVMBuildBitCast(L->B, ptr[i], L->tpf32, "") : LLVMConstNull(L->tpf32);
  LLVMValueRef H = ll_i64(L, k->sizes[0].k), G = ll_i64(L, k->sizes[1].k), K = ll_i64(L, k->sizes[2].k),
               V = ll_i64(L, k->sizes[3].k), sc = LLVMConstReal(L->tf32, (double)(float)k->reals[0]);
  LLVMTypeRef t[14];
  for (int i = 0; i < 14; i++) t[i] = i < 8 ? L->tpf32 : L->ti64;
  t[13] = L->tf32;
  if (delta) {
    LLVMValueRef a[14] = {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], T, H, G, K, V, sc};
    ll_call(L, "gat_chunk_delta", L->tv, t, 14, a);
  } else {
    LLVMValueRef a[12] = {p[0], p[1], p[2], p[3], p[5], p[6], p[7], T, H, K, V, sc};
    t[6] = L->tpf32, t[7] = t[8] = t[9] = t[10] = L->ti64, t[11] = L->tf32;
    ll_call(L, "gat_chunk_gla", L->tv, t, 12, a);
  }
}

/* Whether M declares (calls) a function whose name starts with `prefix` without defining it. */
static int calls_prefix(LLVMModuleRef M, const char *prefix) {
  const size_t np = strlen(prefix);
  for (LLVMValueRef f = LLVMGetFirstFunction(M); f; f = LLVMGetNextFunction(f)) {
    size_t n = 0;
    const char *name = LLVMGetValueName2(f, &n);
    if (LLVMIsDeclaration(f) && n > np && strncmp(name, prefix, np) == 0) return 1;
  }
  return 0;
}

/* Links one kernel bitcode into L->M: target and layout of the module, clang's CPU attributes
 * removed (the module's target machine decides), the definitions internal afterwards so unused
 * ones are deleted and none is exported; always-inline when `inline_all`. */
static void link_module(LL *L, LLVMModuleRef km, const char *what, int inline_all);

static void link_bitcode(LL *L, const unsigned char *bc, size_t size, const char *what, int inline_all) {
  LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRange((const char *)bc, size, what, 0);
  LLVMModuleRef km = NULL;
  if (LLVMParseBitcodeInContext2(L->C, buf, &km)) {
    LLVMDisposeMemoryBuffer(buf);
    ll_fail(L, "LLVM backend: the embedded kernel bitcode %s does not load (this is a bug)", what);
    return;
  }
  LLVMDisposeMemoryBuffer(buf);
  link_module(L, km, what, inline_all);
}

/* link_bitcode's second half, for a parsed kernel module km (consumed) */
static void link_module(LL *L, LLVMModuleRef km, const char *what, int inline_all) {
  LLVMSetTarget(km, LLVMGetTarget(L->M));
  LLVMSetModuleDataLayout(km, L->td);
  static const char *const drop[] = {"target-cpu", "target-features", "tune-cpu"};
  unsigned inl = LLVMGetEnumAttributeKindForName("alwaysinline", 12);
  StrBuf defs = {0}; /* the kernel module's definitions, NUL-separated */
  for (LLVMValueRef f = LLVMGetFirstFunction(km); f; f = LLVMGetNextFunction(f)) {
    if (LLVMIsDeclaration(f)) continue;
    size_t n = 0;
    const char *name = LLVMGetValueName2(f, &n);
    sb_appendn(&defs, name, n);
    sb_appendn(&defs, "", 1); /* the separator */
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
      LLVMRemoveStringAttributeAtIndex(f, LLVMAttributeFunctionIndex, drop[i], (unsigned)strlen(drop[i]));
    if (inline_all) LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(L->C, inl, 0));
  }
  if (LLVMLinkModules2(L->M, km)) { /* km is destroyed either way */
    ll_fail(L, "LLVM backend: linking the kernel bitcode %s failed (this is a bug)", what);
    sb_free(&defs);
    return;
  }
  for (size_t at = 0; at < defs.len; at += strlen(defs.data + at) + 1) {
    LLVMValueRef f = LLVMGetNamedFunction(L->M, defs.data + at);
    if (f) LLVMSetLinkage(f, LLVMInternalLinkage);
  }
  sb_free(&defs);
}

/* void gat_flash_attn_DK_DV[_p|_r|_pr](gat_attn_args *, i32 part, i64 h0, i64 h1, i32 dk, i32 dv, i32 fe):
 * declared here, defined by link_attention; the dims and features are passed too, though the
 * definition ignores them; part and the heads [h0, h1) as attention.c's entry takes them */
void ll_flash_attn_call(LL *L, int64_t dk, int64_t dv, int fe, LLVMValueRef args, int part, const LLVMValueRef *heads) {
  char name[96];
  snprintf(name, sizeof name, "gat_flash_attn_%lld_%lld%s%s%s", (long long)dk, (long long)dv, fe ? "_" : "",
           fe & KERNELS_ATTENTION_POS ? "p" : "", fe & KERNELS_ATTENTION_RELBIAS ? "r" : "");
  LLVMTypeRef t[7] = {L->tp8, L->ti32, L->ti64, L->ti64, L->ti32, L->ti32, L->ti32};
  LLVMValueRef v[7] = {args, ll_i32(L, part), heads[0], heads[1], ll_i32(L, (int)dk), ll_i32(L, (int)dv), ll_i32(L, fe)};
  ll_call(L, name, L->tv, t, 7, v);
}

/* Links attention.c's bitcode once for the variant `name` (gat_flash_attn_DK_DV[_p|_r|_pr]): its
 * entry gat_flash_attn renamed, its dims and features replaced by constants before linking, so
 * the module's optimizer sees constant loops (helpers get them by interprocedural constant
 * propagation: each link has its own internal copies). */
static void link_attention(LL *L, const char *name) {
  long long dk = 0, dv = 0;
  char sfx[4] = "";
  /* the generic build's stack arrays hold heads up to KERNELS_ATTENTION_MAX_D (pass_attention's limit) */
  if (sscanf(name, "gat_flash_attn_%lld_%lld_%3[pr]", &dk, &dv, sfx) < 2 || dk <= 0 || dv <= 0 ||
      dk > KERNELS_ATTENTION_MAX_D || dv > KERNELS_ATTENTION_MAX_D) {
    ll_fail(L, "LLVM backend: unknown attention kernel %s (this is a bug)", name);
    return;
  }
  const int fe = (strchr(sfx, 'p') ? KERNELS_ATTENTION_POS : 0) | (strchr(sfx, 'r') ? KERNELS_ATTENTION_RELBIAS : 0);
  const int v = kbc_variant(L);
  const unsigned char *bc = KBC_ATTENTION.bc[v];
  const size_t size = *KBC_ATTENTION.size[v];
  LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRange((const char *)bc, size, "attention.bc", 0);
  LLVMModuleRef km = NULL;
  const int bad = LLVMParseBitcodeInContext2(L->C, buf, &km);
  LLVMDisposeMemoryBuffer(buf);
  LLVMValueRef f = bad ? NULL : LLVMGetNamedFunction(km, "gat_flash_attn");
  if (!f || LLVMCountParams(f) != 7) {
    if (km) LLVMDisposeModule(km);
    ll_fail(L, "LLVM backend: the embedded kernel bitcode attention.bc does not load (this is a bug)");
    return;
  }
  LLVMSetValueName2(f, name, strlen(name));
  const long long val[3] = {dk, dv, fe}; /* its last three parameters (GAT_FA_PARAMS) */
  for (unsigned i = 4; i < 7; i++) {
    LLVMValueRef p = LLVMGetParam(f, i);
    LLVMReplaceAllUsesWith(p, LLVMConstInt(LLVMTypeOf(p), (unsigned long long)val[i - 4], 0));
  }
  link_module(L, km, "attention.bc", 0);
}

static void link_width_variant(LL *L, const KernelBc *k) {
  static const char *const sfx[3] = {"v16", "v8", "v4"};
  const int v = kbc_variant(L);
  char what[32];
  snprintf(what, sizeof what, "%s_%s.bc", k->name, sfx[v]);
  link_bitcode(L, k->bc[v], *k->size[v], what, 0);
}

void ll_link_kernels(LL *L) {
  if (L->failed) return;
  { /* the attention variants the module calls (collected first: linking adds functions) */
    StrBuf names = {0};
    for (LLVMValueRef f = LLVMGetFirstFunction(L->M); f; f = LLVMGetNextFunction(f)) {
      size_t n = 0;
      const char *name = LLVMGetValueName2(f, &n);
      if (LLVMIsDeclaration(f) && n > 15 && strncmp(name, "gat_flash_attn_", 15) == 0) {
        sb_appendn(&names, name, n);
        sb_appendn(&names, "", 1);
      }
    }
    for (size_t at = 0; at < names.len && !L->failed; at += strlen(names.data + at) + 1)
      link_attention(L, names.data + at);
    sb_free(&names);
  }
  if (calls_prefix(L->M, "gat_vm_")) link_bitcode(L, gat_kernel_vecmath_bc, gat_kernel_vecmath_bc_size, "vecmath.bc", 1);
  /* the variant of the target's vector width: VL floats, the register rows gemm.c gives it
     (scan.c's GAT_CS_VL likewise) */
  if (!L->failed && calls_prefix(L->M, "gat_gemm_")) link_width_variant(L, &KBC_GEMM);
  if (!L->failed && calls_prefix(L->M, "gat_chunk_")) link_width_variant(L, &KBC_SCAN);
}

/* ---- test module: void gat_vm_test_NAME(const float *x, float *restrict y, i64 n) { y[i] = F(x[i]) } ---- */
LLVMModuleRef emit_llvm_vecmath_module(LLVMContextRef ctx, LLVMTargetMachineRef tm, char *err, size_t errlen) {
  static const char *names[] = {"exp", "tanh", "sigmoid", "silu", "softplus", "logsigmoid", "gelu_tanh", "log"};
  static const IrFn fns[] = {IR_FN_EXP,  IR_FN_TANH,       IR_FN_SIGMOID,   IR_FN_SILU,
                             IR_FN_SOFTPLUS, IR_FN_LOGSIGMOID, IR_FN_GELU_TANH, IR_FN_LOG};
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
    LLVMBuildStore(L.B, ll_unary_f32(&L, fns[i], x), ll_gep(&L, L.tf32, LLVMGetParam(f, 1), lp.iv));
    ll_loop_end(&L, &lp);
    LLVMBuildRetVoid(L.B);
  }
  ll_link_kernels(&L);
  LLVMDisposeBuilder(L.B);
  LLVMDisposeTargetData(L.td);
  if (L.failed) {
    LLVMDisposeModule(L.M);
    return NULL;
  }
  return ll_verify_optimize(L.M, tm, "default<O3>", 0, "vecmath module", err, errlen);
}
