/* emit_llvm.c — the LLVM backend's basics and its two main kernel kinds:
 * builder helpers (constants, counted loops, calls, buffer pointers), the
 * expression trees of LK_LOOP kernels, and LK_CALL kernels (runtime row
 * kernels and the GEMM). Mirrors codegen/c/emit_c.c statement for statement,
 * so the two backends compute the same values: arithmetic in double, f32
 * rounding at stores and at `round` marks, the same libm functions. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "emit_llvm_int.h"

#include <llvm-c/DebugInfo.h> /* LLVMTemporaryMDNode: the self-referring loop ID */
#include "kernels_gemm.h"
#include "gat_runtime.h"
#include "kernels_attention.h"

void ll_fail(LL *L, const char *fmt, ...) {
  if (L->failed) return;
  L->failed = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(L->err, L->errlen, fmt, ap);
  va_end(ap);
}

LLVMValueRef ll_i64(LL *L, int64_t v) { return LLVMConstInt(L->ti64, (unsigned long long)v, 1); }
LLVMValueRef ll_i32(LL *L, int32_t v) { return LLVMConstInt(L->ti32, (unsigned long long)(int64_t)v, 1); }
LLVMValueRef ll_f64(LL *L, double v) { return LLVMConstReal(L->tf64, v); }
/* the value type of expressions: double, or float in an f32_math kernel (pass_f32math) */
static LLVMTypeRef ll_ft(LL *L) { return L->f32 ? L->tf32 : L->tf64; }
static LLVMValueRef ll_fc(LL *L, double v) { return LLVMConstReal(ll_ft(L), L->f32 ? (double)(float)v : v); }

LLVMValueRef ll_func(LL *L, const char *name, LLVMTypeRef fty) {
  LLVMValueRef f = LLVMGetNamedFunction(L->M, name);
  if (!f) f = LLVMAddFunction(L->M, name, fty);
  return f;
}

LLVMValueRef ll_call(LL *L, const char *name, LLVMTypeRef ret, LLVMTypeRef *args, int nargs, LLVMValueRef *vals) {
  LLVMTypeRef fty = LLVMFunctionType(ret, args, (unsigned)nargs, 0);
  LLVMValueRef f = ll_func(L, name, fty);
  return LLVMBuildCall2(L->B, fty, f, vals, (unsigned)nargs, "");
}

LLVMValueRef ll_cstr(LL *L, const char *s) {
  LLVMValueRef init = LLVMConstStringInContext(L->C, s, (unsigned)strlen(s), 0);
  LLVMValueRef g = LLVMAddGlobal(L->M, LLVMTypeOf(init), ".str");
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
  LLVMValueRef z[2] = {ll_i32(L, 0), ll_i32(L, 0)};
  return LLVMConstInBoundsGEP2(LLVMTypeOf(init), g, z, 2);
}

LLVMValueRef ll_alloca(LL *L, LLVMTypeRef t, const char *name) {
  LLVMBasicBlockRef cur = LLVMGetInsertBlock(L->B);
  LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(L->fn);
  LLVMValueRef first = LLVMGetFirstInstruction(entry);
  if (first)
    LLVMPositionBuilderBefore(L->B, first);
  else
    LLVMPositionBuilderAtEnd(L->B, entry);
  LLVMValueRef a = LLVMBuildAlloca(L->B, t, name);
  LLVMPositionBuilderAtEnd(L->B, cur);
  return a;
}

LLVMBasicBlockRef ll_block(LL *L, const char *name) { return LLVMAppendBasicBlockInContext(L->C, L->fn, name); }

void ll_loop_range(LL *L, LLLoop *lp, LLVMValueRef from, LLVMValueRef to, int64_t step, const char *name) {
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(L->B);
  lp->head = ll_block(L, name);
  LLVMBasicBlockRef body = ll_block(L, "body");
  lp->exit = ll_block(L, "exit");
  lp->step = step;
  lp->no_unroll = 0;
  LLVMBuildBr(L->B, lp->head);
  LLVMPositionBuilderAtEnd(L->B, lp->head);
  lp->iv = LLVMBuildPhi(L->B, L->ti64, name);
  LLVMAddIncoming(lp->iv, &from, &pre, 1);
  LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSLT, lp->iv, to, ""), body, lp->exit);
  LLVMPositionBuilderAtEnd(L->B, body);
}

void ll_loop_begin(LL *L, LLLoop *lp, LLVMValueRef n, const char *name) { ll_loop_range(L, lp, ll_i64(L, 0), n, 1, name); }

void ll_loop_end(LL *L, LLLoop *lp) {
  LLVMValueRef next = LLVMBuildNSWAdd(L->B, lp->iv, ll_i64(L, lp->step), "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(L->B);
  LLVMValueRef br = LLVMBuildBr(L->B, lp->head);
  LLVMAddIncoming(lp->iv, &next, &latch, 1);
  LLVMPositionBuilderAtEnd(L->B, lp->exit);
  if (lp->no_unroll) { /* !llvm.loop !0, !0 = !{!0, !{!"llvm.loop.unroll.disable"}} */
    LLVMMetadataRef tmp = LLVMTemporaryMDNode(L->C, NULL, 0);
    LLVMMetadataRef name = LLVMMDStringInContext2(L->C, "llvm.loop.unroll.disable", 24);
    LLVMMetadataRef ops[2] = {tmp, LLVMMDNodeInContext2(L->C, &name, 1)};
    LLVMMetadataRef id = LLVMMDNodeInContext2(L->C, ops, 2);
    LLVMMetadataReplaceAllUsesWith(tmp, id); /* the loop ID refers to itself; frees tmp */
    LLVMSetMetadata(br, LLVMGetMDKindIDInContext(L->C, "llvm.loop", 9), LLVMMetadataAsValue(L->C, id));
  }
}

/* ---- sizes and buffers ------------------------------------------------------------ */
LLVMValueRef ll_model(LL *L) {
  LLVMValueRef p = LLVMBuildStructGEP2(L->B, L->t_ctx, L->ctx, 0, "");
  return LLVMBuildLoad2(L->B, L->t_pmodel, p, "m");
}

LLVMValueRef ll_model_field(LL *L, LLVMValueRef model, int field) {
  return LLVMBuildStructGEP2(L->B, L->t_model, model, (unsigned)field, "");
}

LLVMValueRef ll_pos(LL *L) { return LLVMBuildLoad2(L->B, L->ti64, ll_model_field(L, ll_model(L), 2), "pos"); }

LLVMValueRef ll_tvar(LL *L, int tvar) {
  if (tvar == 0) return LLVMBuildLoad2(L->B, L->ti64, LLVMBuildStructGEP2(L->B, L->t_ctx, L->ctx, 2, ""), "T");
  if (tvar < 0 || tvar >= L->m->ntvars) {
    ll_fail(L, "not supported by the LLVM backend: row variable %d", tvar);
    return ll_i64(L, 0);
  }
  LLVMValueRef idx[3] = {ll_i32(L, 0), ll_i32(L, 3), ll_i32(L, tvar)};
  return LLVMBuildLoad2(L->B, L->ti64, LLVMBuildInBoundsGEP2(L->B, L->t_ctx, L->ctx, idx, 3, ""), "rows");
}

/* &c->tile[v]: the variable of an LK_TILE loop (pass block) */
LLVMValueRef ll_tile_ptr(LL *L, int v) {
  if (v < 0 || v >= L->m->ntiles) {
    ll_fail(L, "LLVM backend: tile variable %d out of range", v);
    v = 0;
  }
  LLVMValueRef idx[3] = {ll_i32(L, 0), ll_i32(L, 6), ll_i32(L, v)};
  return LLVMBuildInBoundsGEP2(L->B, L->t_ctx, L->ctx, idx, 3, "");
}

/* a blocked GEMM's rows (d = 0) or columns (d = 1), an attention's heads (d = 1): [c->tile[v], +len)
   of the enclosing tile loop (loopir.h blk_var), or [0, n) */
static void block_bounds(LL *L, const LoopKernel *k, int d, LLVMValueRef n, LLVMValueRef *lo, LLVMValueRef *hi) {
  if (k->blk_var[d] < 0) {
    *lo = ll_i64(L, 0), *hi = n;
    return;
  }
  *lo = LLVMBuildLoad2(L->B, L->ti64, ll_tile_ptr(L, k->blk_var[d]), "blk");
  *hi = LLVMBuildAdd(L->B, *lo, ll_i64(L, k->blk_len[d]), "");
}

LLVMValueRef ll_size(LL *L, LoopSize s) {
  LLVMValueRef v = ll_i64(L, s.k);
  for (int i = 0; i < s.tpow; i++) v = LLVMBuildMul(L->B, v, ll_tvar(L, s.tvar), "");
  return v;
}

static LLVMValueRef ll_dim(LL *L, int64_t d, int tvar) { return d == IR_DIM_T ? ll_tvar(L, tvar) : ll_i64(L, d); }

LLVMValueRef ll_buf_elems_from(LL *L, const LoopBuf *b, int from) {
  LLVMValueRef v = ll_i64(L, 1);
  for (int i = from; i < b->shape.rank; i++) v = LLVMBuildMul(L->B, v, ll_dim(L, b->shape.dims[i], b->tvar), "");
  return v;
}

LLVMTypeRef ll_buf_elt(LL *L, const LoopBuf *b) {
  if (b->is_f64) return L->tf64;
  return b->dtype == IR_F32 ? L->tf32 : L->ti32;
}

LLVMValueRef ll_bytes(LL *L, const LoopBuf *b, LLVMValueRef nelems) {
  return LLVMBuildMul(L->B, nelems, ll_i64(L, b->is_f64 ? 8 : 4), "");
}

LLVMValueRef ll_gep(LL *L, LLVMTypeRef elt, LLVMValueRef p, LLVMValueRef i) {
  return LLVMBuildInBoundsGEP2(L->B, elt, p, &i, 1, "");
}

LLVMValueRef ll_vload(LL *L, LLVMTypeRef tv, LLVMValueRef p) {
  LLVMValueRef v = LLVMBuildLoad2(L->B, tv, LLVMBuildBitCast(L->B, p, LLVMPointerType(tv, 0), ""), "");
  LLVMSetAlignment(v, 4);
  return v;
}
void ll_vstore(LL *L, LLVMValueRef v, LLVMValueRef p) {
  LLVMValueRef s = LLVMBuildStore(L->B, v, LLVMBuildBitCast(L->B, p, LLVMPointerType(LLVMTypeOf(v), 0), ""));
  LLVMSetAlignment(s, 4);
}
LLVMValueRef ll_vsplat(LL *L, LLVMTypeRef tv, LLVMValueRef x) {
  LLVMValueRef v = LLVMBuildInsertElement(L->B, LLVMGetUndef(tv), x, ll_i32(L, 0), "");
  return LLVMBuildShuffleVector(L->B, v, LLVMGetUndef(tv), LLVMConstNull(LLVMVectorType(L->ti32, LLVMGetVectorSize(tv))),
                                "");
}
LLVMValueRef ll_vfma(LL *L, LLVMTypeRef tv, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
  char name[32];
  snprintf(name, sizeof name, "llvm.fma.v%uf32", LLVMGetVectorSize(tv));
  LLVMTypeRef t[3] = {tv, tv, tv};
  LLVMValueRef v[3] = {a, b, c};
  return ll_call(L, name, tv, t, 3, v);
}
LLVMValueRef ll_fma_f32(LL *L, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
  LLVMTypeRef t[3] = {L->tf32, L->tf32, L->tf32};
  LLVMValueRef v[3] = {a, b, c};
  return ll_call(L, "llvm.fma.f32", L->tf32, t, 3, v);
}
LLVMValueRef ll_smin(LL *L, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(L->B, LLVMBuildICmp(L->B, LLVMIntSLT, a, b, ""), a, b, "");
}

void ll_memcpy(LL *L, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef nbytes, int move) {
  LLVMTypeRef at[3] = {L->tp8, L->tp8, L->ti64};
  LLVMValueRef av[3] = {LLVMBuildBitCast(L->B, dst, L->tp8, ""), LLVMBuildBitCast(L->B, src, L->tp8, ""), nbytes};
  ll_call(L, move ? "memmove" : "memcpy", L->tp8, at, 3, av);
}

static void mark_expr(char *used, const LoopExpr *e, int nbufs) {
  if (!e) return;
  if (e->kind == LX_LOAD) {
    if (e->buf >= 0 && e->buf < nbufs) used[e->buf] = 1;
    for (int i = 0; i < e->nidx; i++)
      if (e->idx[i].dyn_buf >= 0 && e->idx[i].dyn_buf < nbufs) used[e->idx[i].dyn_buf] = 1;
  }
  mark_expr(used, e->a, nbufs);
  mark_expr(used, e->b, nbufs);
  mark_expr(used, e->c, nbufs);
}

static void mark(char *used, int b, int nbufs) {
  if (b >= 0 && b < nbufs) used[b] = 1;
}

void ll_kernel_bufs(LL *L, const LoopKernel *k) {
  int n = L->m->bufs.len;
  char *used = calloc((size_t)n + 1, 1);
  mark(used, k->out, n);
  for (int i = 0; i < LOOP_MAX_ARGS; i++) mark(used, k->args[i], n);
  for (int i = 0; i < k->ncat; i++) { /* a segmented GEMM's segments (pass_concat) */
    mark(used, k->cat[i].out, n), mark(used, k->cat[i].w, n);
    mark(used, k->cat[i].bias, n), mark(used, k->cat[i].res, n);
  }
  if (k->kind == LK_LOOP) {
    mark_expr(used, k->body, n);
    for (int i = 0; i < k->nlets; i++) mark_expr(used, k->lets[i].e, n);
    mark_expr(used, k->sweep_at, n); /* pass_scanfuse */
    mark_expr(used, k->sweep_val, n);
  }
  for (int i = 0; i < k->nstates; i++) {
    mark(used, k->state_bufs[i], n);
    if (k->state_tmp) mark(used, k->state_tmp[i], n);
  }
  for (int i = 0; i < k->nxs; i++) mark(used, k->xs[i], n);
  for (int r = 0; r < k->nregions; r++) {
    for (int i = 0; i < k->regions[r]->nargs; i++) mark(used, k->regions[r]->args[i], n);
    for (int i = 0; i < k->regions[r]->nyield; i++) mark(used, k->regions[r]->yields[i], n);
  }
  LLVMValueRef model = NULL;
  for (int i = 0; i < n; i++) {
    L->bufp[i] = NULL;
    if (!used[i]) continue;
    const LoopBuf *b = L->m->bufs.data[i];
    LLVMTypeRef pt = LLVMPointerType(ll_buf_elt(L, b), 0);
    LLVMValueRef raw = NULL;
    switch (b->kind) {
    case LB_SCRATCH:
    case LB_STATE: {
      LLVMValueRef a = LLVMBuildLoad2(L->B, L->tp8, LLVMBuildStructGEP2(L->B, L->t_ctx, L->ctx, 1, ""), "a");
      raw = ll_gep(L, L->ti8, a, ll_i64(L, b->offset));
      break;
    }
    case LB_PARAM: {
      if (!model) model = ll_model(L);
      LLVMValueRef idx[3] = {ll_i32(L, 0), ll_i32(L, 1), ll_i32(L, b->index)};
      raw = LLVMBuildLoad2(L->B, L->tp8, LLVMBuildInBoundsGEP2(L->B, L->t_model, model, idx, 3, ""), "w");
      break;
    }
    case LB_INPUT:
    case LB_OUTPUT: {
      LLVMValueRef idx[3] = {ll_i32(L, 0), ll_i32(L, b->kind == LB_INPUT ? 4 : 5), ll_i32(L, b->index)};
      raw = LLVMBuildLoad2(L->B, L->tp8, LLVMBuildInBoundsGEP2(L->B, L->t_ctx, L->ctx, idx, 3, ""), "io");
      break;
    }
    default: ll_fail(L, "not supported by the LLVM backend: buffer kind %d", (int)b->kind); break;
    }
    if (raw) L->bufp[i] = LLVMBuildBitCast(L->B, raw, pt, b->name ? b->name : "");
  }
  free(used);
}

static LLVMValueRef ll_bufptr(LL *L, int b) {
  if (b < 0 || b >= L->m->bufs.len || !L->bufp[b]) {
    ll_fail(L, "LLVM backend: buffer %d used but not bound", b);
    return LLVMConstNull(L->tp8);
  }
  return L->bufp[b];
}

/* ---- errors ------------------------------------------------------------------------- */
void ll_fmt_text(StrBuf *o, const char *s) {
  for (; s && *s; s++) {
    if (*s == '%') sb_append(o, "%");
    sb_appendn(o, s, 1);
  }
}

void ll_where_text(StrBuf *o, const LoopKernel *k) {
  if (k->origin) {
    sb_append(o, " in layer ");
    ll_fmt_text(o, k->origin);
  }
  if (k->file) {
    sb_append(o, " at ");
    ll_fmt_text(o, k->file);
    sb_printf(o, ":%d", k->line);
  }
}

void ll_error_return(LL *L, LLVMValueRef model, int status, const char *fmt, LLVMValueRef *args, int nargs) {
  LLVMTypeRef pt[2] = {L->tp8, L->ti32};
  LLVMTypeRef fty = LLVMFunctionType(L->ti32, pt, 2, 1);
  LLVMValueRef f = ll_func(L, "gat_error_set", fty);
  LLVMValueRef av[12];
  av[0] = LLVMBuildBitCast(L->B, ll_model_field(L, model, 4), L->tp8, "");
  av[1] = ll_i32(L, status);
  av[2] = ll_cstr(L, fmt);
  for (int i = 0; i < nargs && i < 9; i++) av[3 + i] = args[i];
  LLVMValueRef r = LLVMBuildCall2(L->B, fty, f, av, (unsigned)(3 + nargs), "");
  LLVMBuildRet(L->B, r);
}

/* ---- scalar helpers (the runtime header's inline functions) -------------------------- */
static LLVMValueRef call1(LL *L, const char *name, LLVMValueRef a) {
  LLVMTypeRef t = L->tf64;
  return ll_call(L, name, L->tf64, &t, 1, &a);
}

static LLVMValueRef fsel(LL *L, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b, LLVMValueRef t, LLVMValueRef f) {
  return LLVMBuildSelect(L->B, LLVMBuildFCmp(L->B, p, a, b, ""), t, f, "");
}

LLVMValueRef ll_to_i32(LL *L, LLVMValueRef d) {
  LLVMTypeRef t = L->tf64;
  return ll_call(L, "gat.to_i32", L->ti32, &t, 1, &d);
}

LLVMValueRef ll_unary(LL *L, IrFn fn, LLVMValueRef a) {
  if (LLVMTypeOf(a) == L->tf32) { /* f32_math: the float functions of the C backend (codegen/kernels/vecmath.c, linked as bitcode) */
    LLVMValueRef r = ll_unary_f32(L, fn, a);
    if (r) return r;
    /* not produced by pass_f32math: in double, rounded back */
    return LLVMBuildFPTrunc(L->B, ll_unary(L, fn, LLVMBuildFPExt(L->B, a, L->tf64, "")), L->tf32, "");
  }
  switch (fn) {
  case IR_FN_NEG: return LLVMBuildFNeg(L->B, a, "");
  case IR_FN_EXP: return call1(L, "exp", a);
  case IR_FN_LOG: return call1(L, "log", a);
  case IR_FN_SQRT: return call1(L, "llvm.sqrt.f64", a);
  case IR_FN_RSQRT: return LLVMBuildFDiv(L->B, ll_f64(L, 1.0), call1(L, "llvm.sqrt.f64", a), "");
  case IR_FN_ABS: return call1(L, "llvm.fabs.f64", a);
  case IR_FN_TANH: return call1(L, "tanh", a);
  case IR_FN_SIGMOID: return call1(L, "gat.sigmoid", a);
  case IR_FN_LOGSIGMOID: return call1(L, "gat.logsigmoid", a);
  case IR_FN_SILU: return call1(L, "gat.silu", a);
  case IR_FN_RELU: return call1(L, "gat.relu", a);
  case IR_FN_GELU_ERF: return call1(L, "gat.gelu_erf", a);
  case IR_FN_GELU_TANH: return call1(L, "gat.gelu_tanh", a);
  case IR_FN_SOFTPLUS: return call1(L, "gat.softplus", a);
  case IR_FN_NOT: return fsel(L, LLVMRealOEQ, a, ll_f64(L, 0.0), ll_f64(L, 1.0), ll_f64(L, 0.0));
  default: ll_fail(L, "not supported by the LLVM backend: unary function %s", ir_fn_name(fn)); return a;
  }
}

static LLVMValueRef bool_d(LL *L, LLVMValueRef c) { return LLVMBuildSelect(L->B, c, ll_fc(L, 1.0), ll_fc(L, 0.0), ""); }

static LLVMValueRef ll_binary(LL *L, IrFn fn, IrDType dt, LLVMValueRef a, LLVMValueRef b) {
  LLVMValueRef z = ll_fc(L, 0.0);
  if (L->f32 && (fn == IR_FN_POW || fn == IR_FN_MOD || (fn == IR_FN_DIV && dt == IR_I32))) {
    /* not produced by pass_f32math: in double, rounded back */
    L->f32 = 0;
    LLVMValueRef r = ll_binary(L, fn, dt, LLVMBuildFPExt(L->B, a, L->tf64, ""), LLVMBuildFPExt(L->B, b, L->tf64, ""));
    L->f32 = 1;
    return LLVMBuildFPTrunc(L->B, r, L->tf32, "");
  }
  switch (fn) {
  case IR_FN_ADD: return LLVMBuildFAdd(L->B, a, b, "");
  case IR_FN_SUB: return LLVMBuildFSub(L->B, a, b, "");
  case IR_FN_MUL: return LLVMBuildFMul(L->B, a, b, "");
  case IR_FN_DIV: {
    LLVMValueRef q = LLVMBuildFDiv(L->B, a, b, "");
    if (dt == IR_I32) q = LLVMBuildSIToFP(L->B, ll_to_i32(L, q), L->tf64, "");
    return q;
  }
  case IR_FN_POW: {
    LLVMTypeRef t[2] = {L->tf64, L->tf64};
    LLVMValueRef v[2] = {a, b};
    return ll_call(L, "pow", L->tf64, t, 2, v);
  }
  case IR_FN_MAX: return fsel(L, LLVMRealOGT, a, b, a, b);
  case IR_FN_MIN: return fsel(L, LLVMRealOLT, a, b, a, b);
  case IR_FN_MOD: {
    LLVMTypeRef t[2] = {L->tf64, L->tf64};
    LLVMValueRef v[2] = {a, b};
    return ll_call(L, dt == IR_I32 ? "gat.imod" : "fmod", L->tf64, t, 2, v);
  }
  case IR_FN_LT: return bool_d(L, LLVMBuildFCmp(L->B, LLVMRealOLT, a, b, ""));
  case IR_FN_LE: return bool_d(L, LLVMBuildFCmp(L->B, LLVMRealOLE, a, b, ""));
  case IR_FN_GT: return bool_d(L, LLVMBuildFCmp(L->B, LLVMRealOGT, a, b, ""));
  case IR_FN_GE: return bool_d(L, LLVMBuildFCmp(L->B, LLVMRealOGE, a, b, ""));
  case IR_FN_EQ: return bool_d(L, LLVMBuildFCmp(L->B, LLVMRealOEQ, a, b, ""));
  case IR_FN_NE: return bool_d(L, LLVMBuildFCmp(L->B, LLVMRealUNE, a, b, ""));
  case IR_FN_AND:
    return bool_d(L, LLVMBuildAnd(L->B, LLVMBuildFCmp(L->B, LLVMRealUNE, a, z, ""),
                                  LLVMBuildFCmp(L->B, LLVMRealUNE, b, z, ""), ""));
  case IR_FN_OR:
    return bool_d(L, LLVMBuildOr(L->B, LLVMBuildFCmp(L->B, LLVMRealUNE, a, z, ""),
                                 LLVMBuildFCmp(L->B, LLVMRealUNE, b, z, ""), ""));
  default: ll_fail(L, "not supported by the LLVM backend: binary function %s", ir_fn_name(fn)); return a;
  }
}

/* ---- expressions ---------------------------------------------------------------------- */
static LLVMValueRef ll_var(LL *L, int v) {
  if (v < 0 || v >= (int)(sizeof L->vars / sizeof L->vars[0]) || !L->vars[v]) {
    ll_fail(L, "not supported by the LLVM backend: loop variable v%d outside its loop", v);
    return ll_i64(L, 0);
  }
  return L->vars[v];
}

/* a load of buffer buf in an -O2 loop kernel does not alias its (restrict) output */
static void ll_mark_load(LL *L, LLVMValueRef ld, int buf) {
  if (L->restrict_out >= 0 && buf != L->restrict_out && L->md_noalias)
    LLVMSetMetadata(ld, LLVMGetMDKindIDInContext(L->C, "noalias", 7), L->md_noalias);
}

/* alias scope metadata of kernel k's output: a domain and a scope named after the module and
 * kernel (string names: unique per kernel, so kernels inlined into one function stay apart) */
static void ll_restrict_begin(LL *L, const LoopKernel *k) {
  L->restrict_out = -1;
  L->md_scope = L->md_noalias = NULL;
  if (L->m->opt_level < 2) return;
  char nm[256];
  snprintf(nm, sizeof nm, "%s.k%d.domain", L->m->name, k->id);
  LLVMMetadataRef dname = LLVMMDStringInContext2(L->C, nm, strlen(nm));
  LLVMMetadataRef dom = LLVMMDNodeInContext2(L->C, &dname, 1);
  snprintf(nm, sizeof nm, "%s.k%d.out", L->m->name, k->id);
  LLVMMetadataRef sc[2] = {LLVMMDStringInContext2(L->C, nm, strlen(nm)), dom};
  LLVMMetadataRef scope = LLVMMDNodeInContext2(L->C, sc, 2);
  LLVMMetadataRef list = LLVMMDNodeInContext2(L->C, &scope, 1);
  L->md_scope = L->md_noalias = LLVMMetadataAsValue(L->C, list);
  L->restrict_out = k->out;
}

static LLVMValueRef ll_index(LL *L, const LoopIndex *ix) {
  LLVMValueRef v = ll_i64(L, ix->c);
  for (int t = 0; t < ix->nterms; t++)
    v = LLVMBuildAdd(L->B, v, LLVMBuildMul(L->B, ll_i64(L, ix->coef[t]), ll_var(L, ix->var[t]), ""), "");
  if (ix->dyn_buf >= 0) {
    LLVMValueRef d = LLVMBuildLoad2(L->B, L->ti32, ll_bufptr(L, ix->dyn_buf), "dyn");
    ll_mark_load(L, d, ix->dyn_buf);
    v = LLVMBuildAdd(L->B, v, LLVMBuildMul(L->B, ll_i64(L, ix->dyn_coef), LLVMBuildSExt(L->B, d, L->ti64, ""), ""), "");
  }
  return v;
}

static LLVMValueRef ll_flat(LL *L, const LoopBuf *b, const LoopIndex *idx) {
  LLVMValueRef v = ll_i64(L, 0);
  for (int d = 0; d < b->shape.rank; d++) {
    LLVMValueRef t = ll_index(L, &idx[d]);
    for (int e = d + 1; e < b->shape.rank; e++) t = LLVMBuildMul(L->B, t, ll_dim(L, b->shape.dims[e], b->tvar), "");
    v = LLVMBuildAdd(L->B, v, t, "");
  }
  return v;
}

static int expr_may_fault(const LoopExpr *x) {
  if (!x) return 0;
  if (x->kind == LX_LOAD || x->kind == LX_REDUCE) return 1;
  return expr_may_fault(x->a) || expr_may_fault(x->b) || expr_may_fault(x->c);
}

static LLVMValueRef ll_expr(LL *L, int ktvar, const LoopExpr *x);

static LLVMValueRef ll_load(LL *L, const LoopExpr *x) {
  if (x->buf < 0 || x->buf >= L->m->bufs.len) {
    ll_fail(L, "LLVM backend: load from buffer %d", x->buf);
    return ll_fc(L, 0);
  }
  const LoopBuf *b = loop_buf(L->m, x->buf);
  LLVMTypeRef et = ll_buf_elt(L, b);
  LLVMValueRef v = LLVMBuildLoad2(L->B, et, ll_gep(L, et, ll_bufptr(L, x->buf), ll_flat(L, b, x->idx)), "");
  ll_mark_load(L, v, x->buf);
  if (et == L->ti32) return LLVMBuildSIToFP(L->B, v, ll_ft(L), "");
  if (et != ll_ft(L)) return et == L->tf32 ? LLVMBuildFPExt(L->B, v, L->tf64, "") : LLVMBuildFPTrunc(L->B, v, L->tf32, "");
  return v;
}

/* the reduction of a red_outer body (not inside a select branch: loopir.h) */
static const LoopExpr *ll_find_reduce(const LoopExpr *e) {
  if (!e) return NULL;
  if (e->kind == LX_REDUCE) return e;
  const LoopExpr *r = ll_find_reduce(e->a);
  if (!r) r = ll_find_reduce(e->b);
  if (!r) r = ll_find_reduce(e->c);
  return r;
}

/* f32_math lane sums, as codegen/c/emit_c.c emit_reduce_lanes (the rule: loop_sum_lanes) */
static int red_lanes(const LL *L, const LoopExpr *x) { return L->f32 ? loop_sum_lanes(x) : 0; }

/* float sum over v of x->a in `lanes` partial sums: lane l adds the terms v = l, l + lanes, ...
 * (the tail v >= main adds into lanes 0..), then the lanes are added pairwise (l += l + w for
 * w = lanes/2 .. 1): the additions of the C backend in the same order, so the same float result.
 * The lane loop has no loop-carried dependence: LLVM vectorizes it without reassociation. */
static LLVMValueRef ll_reduce_lanes(LL *L, int ktvar, const LoopExpr *x, int lanes) {
  int64_t n = x->extent, main = n / lanes * lanes;
  LLVMTypeRef at = LLVMArrayType(L->tf32, (unsigned)lanes);
  LLVMValueRef arr = ll_alloca(L, at, "lanes");
  LLVMValueRef lp0 = LLVMBuildBitCast(L->B, arr, L->tpf32, "");
  for (int i = 0; i < lanes; i++) LLVMBuildStore(L->B, ll_fc(L, 0.0), ll_gep(L, L->tf32, lp0, ll_i64(L, i)));
  LLVMValueRef saved = L->vars[x->var];
  LLLoop lo, ll;
  ll_loop_begin(L, &lo, ll_i64(L, main / lanes), "redo");
  LLVMValueRef base = LLVMBuildNSWMul(L->B, lo.iv, ll_i64(L, lanes), "");
  ll_loop_begin(L, &ll, ll_i64(L, lanes), "redl");
  L->vars[x->var] = LLVMBuildNSWAdd(L->B, base, ll.iv, "");
  LLVMValueRef v = ll_expr(L, ktvar, x->a);
  LLVMValueRef ap = ll_gep(L, L->tf32, lp0, ll.iv);
  LLVMBuildStore(L->B, LLVMBuildFAdd(L->B, LLVMBuildLoad2(L->B, L->tf32, ap, ""), v, ""), ap);
  ll_loop_end(L, &ll);
  ll_loop_end(L, &lo);
  if (main < n) { /* the tail: fewer than `lanes` terms, into lanes 0.. */
    LLLoop lt;
    ll_loop_begin(L, &lt, ll_i64(L, n - main), "redt");
    L->vars[x->var] = LLVMBuildNSWAdd(L->B, lt.iv, ll_i64(L, main), "");
    LLVMValueRef tv = ll_expr(L, ktvar, x->a);
    LLVMValueRef tp = ll_gep(L, L->tf32, lp0, lt.iv);
    LLVMBuildStore(L->B, LLVMBuildFAdd(L->B, LLVMBuildLoad2(L->B, L->tf32, tp, ""), tv, ""), tp);
    ll_loop_end(L, &lt);
  }
  L->vars[x->var] = saved;
  LLVMValueRef lv[64];
  for (int i = 0; i < lanes; i++) lv[i] = LLVMBuildLoad2(L->B, L->tf32, ll_gep(L, L->tf32, lp0, ll_i64(L, i)), "");
  for (int w = lanes / 2; w > 0; w /= 2)
    for (int i = 0; i < w; i++) lv[i] = LLVMBuildFAdd(L->B, lv[i], lv[i + w], "");
  LLVMValueRef res = lv[0];
  if (x->red == IR_RED_MEAN) res = LLVMBuildFDiv(L->B, res, ll_fc(L, (double)n), "");
  return res;
}

static LLVMValueRef ll_reduce(LL *L, int ktvar, const LoopExpr *x) {
  if (x->var < 0 || x->var >= (int)(sizeof L->vars / sizeof L->vars[0])) {
    ll_fail(L, "not supported by the LLVM backend: reduction variable v%d", x->var);
    return ll_fc(L, 0);
  }
  int lanes = red_lanes(L, x);
  if (lanes) return ll_reduce_lanes(L, ktvar, x, lanes);
  LLVMValueRef acc = ll_alloca(L, ll_ft(L), "r");
  double init = x->red == IR_RED_MAX ? -INFINITY : x->red == IR_RED_MIN ? INFINITY : 0.0;
  LLVMBuildStore(L->B, ll_fc(L, init), acc);
  LLVMValueRef ext = ll_dim(L, x->extent, ktvar);
  LLLoop lp;
  ll_loop_begin(L, &lp, ext, "red");
  /* a chain of dependent adds (or max/min) that does not vectorize: unrolling it gains little
   * and, fully unrolled in every nest of a model, made modules of 530,000 lines (mixattn_lm:
   * 25-29 s to JIT, now 20-22 s); gcc -O2 does not unroll these either */
  lp.no_unroll = 1;
  LLVMValueRef saved = L->vars[x->var];
  L->vars[x->var] = lp.iv;
  LLVMValueRef v = ll_expr(L, ktvar, x->a);
  LLVMValueRef r = LLVMBuildLoad2(L->B, ll_ft(L), acc, "");
  if (x->red == IR_RED_MAX)
    r = fsel(L, LLVMRealOGT, r, v, r, v);
  else if (x->red == IR_RED_MIN)
    r = fsel(L, LLVMRealOLT, r, v, r, v);
  else if (x->red == IR_RED_SUM || x->red == IR_RED_MEAN)
    r = LLVMBuildFAdd(L->B, r, v, "");
  else
    ll_fail(L, "not supported by the LLVM backend: reduction kind %d", (int)x->red);
  LLVMBuildStore(L->B, r, acc);
  ll_loop_end(L, &lp);
  L->vars[x->var] = saved;
  LLVMValueRef res = LLVMBuildLoad2(L->B, ll_ft(L), acc, "");
  if (x->red == IR_RED_MEAN) res = LLVMBuildFDiv(L->B, res, LLVMBuildSIToFP(L->B, ext, ll_ft(L), ""), "");
  return res;
}

static LLVMValueRef ll_select(LL *L, int ktvar, const LoopExpr *x) {
  LLVMValueRef c = LLVMBuildFCmp(L->B, LLVMRealUNE, ll_expr(L, ktvar, x->a), ll_fc(L, 0.0), "");
  if (!expr_may_fault(x->b) && !expr_may_fault(x->c))
    return LLVMBuildSelect(L->B, c, ll_expr(L, ktvar, x->b), ll_expr(L, ktvar, x->c), "");
  /* a load in a branch may be out of range when the branch is not taken (padding) */
  LLVMBasicBlockRef bt = ll_block(L, "sel.t"), bf = ll_block(L, "sel.f"), bj = ll_block(L, "sel.j");
  LLVMBuildCondBr(L->B, c, bt, bf);
  LLVMPositionBuilderAtEnd(L->B, bt);
  LLVMValueRef vt = ll_expr(L, ktvar, x->b);
  LLVMBasicBlockRef et = LLVMGetInsertBlock(L->B);
  LLVMBuildBr(L->B, bj);
  LLVMPositionBuilderAtEnd(L->B, bf);
  LLVMValueRef vf = ll_expr(L, ktvar, x->c);
  LLVMBasicBlockRef ef = LLVMGetInsertBlock(L->B);
  LLVMBuildBr(L->B, bj);
  LLVMPositionBuilderAtEnd(L->B, bj);
  LLVMValueRef phi = LLVMBuildPhi(L->B, ll_ft(L), "sel");
  LLVMValueRef vs[2] = {vt, vf};
  LLVMBasicBlockRef bs[2] = {et, ef};
  LLVMAddIncoming(phi, vs, bs, 2);
  return phi;
}

static LLVMValueRef ll_expr_raw(LL *L, int ktvar, const LoopExpr *x) {
  if (!x) {
    ll_fail(L, "LLVM backend: missing expression");
    return ll_fc(L, 0);
  }
  switch (x->kind) {
  case LX_CONST: return ll_fc(L, x->f);
  case LX_LOAD: return ll_load(L, x);
  case LX_VAR: return LLVMBuildSIToFP(L->B, ll_var(L, x->var), ll_ft(L), "");
  case LX_POS0: return LLVMBuildSIToFP(L->B, ll_pos(L), ll_ft(L), "");
  case LX_UNARY: return ll_unary(L, x->fn, ll_expr(L, ktvar, x->a));
  case LX_BINARY: {
    LLVMValueRef a = ll_expr(L, ktvar, x->a);
    LLVMValueRef b = ll_expr(L, ktvar, x->b);
    return ll_binary(L, x->fn, x->dtype, a, b);
  }
  case LX_SELECT: return ll_select(L, ktvar, x);
  case LX_REDUCE:
    if (x == L->red_acc) /* red_outer: summed into acc[] before the store loop */
      return LLVMBuildLoad2(L->B, ll_ft(L), ll_gep(L, ll_ft(L), L->red_acc_p, L->vars[L->red_acc_var]), "");
    return ll_reduce(L, ktvar, x);
  case LX_TEMP: /* a loop-invariant let (pass_licm): evaluating it in place is exact; LLVM hoists it */
    if (!L->kern || x->var < 0 || x->var >= L->kern->nlets) {
      ll_fail(L, "LLVM backend: let %d outside its kernel", x->var);
      return ll_fc(L, 0);
    }
    if (L->letv && L->letv[x->var]) return L->letv[x->var]; /* computed at its loop level */
    return ll_expr(L, ktvar, L->kern->lets[x->var].e);
  default: ll_fail(L, "not supported by the LLVM backend: loop expression kind %d", (int)x->kind); return ll_fc(L, 0);
  }
}

/* value rounded to dtype (f32 or i32), back in double */
static LLVMValueRef ll_round(LL *L, IrDType dt, LLVMValueRef v) {
  if (L->f32) /* f32_math: every f32 value is a float already */
    return dt == IR_F32 ? v : LLVMBuildSIToFP(L->B, ll_to_i32(L, LLVMBuildFPExt(L->B, v, L->tf64, "")), L->tf32, "");
  if (dt == IR_F32) return LLVMBuildFPExt(L->B, LLVMBuildFPTrunc(L->B, v, L->tf32, ""), L->tf64, "");
  return LLVMBuildSIToFP(L->B, ll_to_i32(L, v), L->tf64, "");
}

static LLVMValueRef ll_expr(LL *L, int ktvar, const LoopExpr *x) {
  LLVMValueRef v = ll_expr_raw(L, ktvar, x);
  return x && x->round ? ll_round(L, x->dtype, v) : v;
}

/* ---- LK_LOOP ------------------------------------------------------------------------------ */
void ll_emit_loop_kernel(LL *L, const LoopKernel *k) {
  if (k->out < 0 || k->out >= L->m->bufs.len || k->rank < 0 || k->rank > IR_MAX_RANK) {
    ll_fail(L, "LLVM backend: malformed loop kernel k%d", k->id);
    return;
  }
  const LoopBuf *ob = loop_buf(L->m, k->out);
  LLLoop lp[IR_MAX_RANK];
  memset(L->vars, 0, sizeof L->vars);
  ll_restrict_begin(L, k);
  L->f32 = k->f32_math != 0;
  /* lets (pass_licm) of level l are computed once per iteration of the first l loops, as the C
   * backend does (libm calls may set errno, so LLVM would not hoist them itself); with red_outer
   * the innermost level's lets are computed inside the reduction loop (as the C backend does) */
  int maxlev = k->red_outer ? k->rank - 1 : k->rank;
  /* red_outer (pass_interchange, loopir.h): the sum's loop outside the innermost domain loop,
   * accumulating acc[v_j] (same additions in the same order), so the innermost loop runs along
   * contiguous memory and vectorizes without reassociation */
  const LoopExpr *red = k->red_outer && k->rank > 0 && k->ext[k->rank - 1] != IR_DIM_T ? ll_find_reduce(k->body) : NULL;
  if (red && (red->red != IR_RED_SUM || red->var < 0 || red->var >= (int)(sizeof L->vars / sizeof L->vars[0])))
    red = NULL;
  if (k->sweep_at && !red) {
    ll_fail(L, "LLVM backend: sweep store of kernel k%d without its red_outer sum", k->id);
    return;
  }
  int nouter = red ? k->rank - 1 : k->rank;
  L->letv = k->nlets > 0 ? xcalloc((size_t)k->nlets, sizeof *L->letv) : NULL;
  for (int d = 0; d <= nouter; d++) {
    if (d > 0) {
      ll_loop_begin(L, &lp[d - 1], ll_dim(L, k->ext[d - 1], k->tvar), "v");
      L->vars[d - 1] = lp[d - 1].iv;
    }
    for (int i = 0; i < k->nlets && d <= maxlev; i++)
      if (k->lets[i].level == d) L->letv[i] = ll_expr(L, k->tvar, k->lets[i].e);
  }
  if (red) {
    int j = k->rank - 1;
    LLVMValueRef E = ll_i64(L, k->ext[j]);
    LLVMValueRef accp = LLVMBuildBitCast(L->B, ll_alloca(L, LLVMArrayType(ll_ft(L), (unsigned)k->ext[j]), "acc"),
                                         LLVMPointerType(ll_ft(L), 0), "");
    LLLoop lz, lr, lj;
    ll_loop_begin(L, &lz, E, "z");
    LLVMBuildStore(L->B, ll_fc(L, 0.0), ll_gep(L, ll_ft(L), accp, lz.iv));
    ll_loop_end(L, &lz);
    ll_loop_begin(L, &lr, ll_dim(L, red->extent, k->tvar), "red");
    L->vars[red->var] = lr.iv;
    for (int i = 0; i < k->nlets; i++)
      if (k->lets[i].level == k->rank) L->letv[i] = ll_expr(L, k->tvar, k->lets[i].e);
    ll_loop_begin(L, &lj, E, "v");
    L->vars[j] = lj.iv;
    if (k->sweep_at) { /* pass_scanfuse: the second store, before the term that reads it (no alias scope:
                          the loads of the sweep buffer carry the out scope's noalias) */
      const LoopBuf *sb = loop_buf(L->m, k->sweep_at->buf);
      LLVMValueRef sv = ll_expr(L, k->tvar, k->sweep_val);
      LLVMTypeRef set = ll_buf_elt(L, sb);
      LLVMValueRef sst;
      if (L->f32) sv = LLVMBuildFPExt(L->B, sv, L->tf64, "");
      if (sb->dtype == IR_F32) {
        sst = LLVMBuildFPTrunc(L->B, sv, L->tf32, "");
        if (set == L->tf64) sst = LLVMBuildFPExt(L->B, sst, L->tf64, "");
      } else {
        sst = ll_to_i32(L, sv);
        if (set == L->tf64) sst = LLVMBuildSIToFP(L->B, sst, L->tf64, "");
      }
      LLVMBuildStore(L->B, sst, ll_gep(L, set, ll_bufptr(L, sb->id), ll_flat(L, sb, k->sweep_at->idx)));
    }
    LLVMValueRef add = ll_expr(L, k->tvar, red->a);
    LLVMValueRef ap = ll_gep(L, ll_ft(L), accp, lj.iv);
    LLVMBuildStore(L->B, LLVMBuildFAdd(L->B, LLVMBuildLoad2(L->B, ll_ft(L), ap, ""), add, ""), ap);
    ll_loop_end(L, &lj);
    ll_loop_end(L, &lr);
    for (int i = 0; i < k->nlets; i++) /* defined in the reduction loop only */
      if (k->lets[i].level == k->rank) L->letv[i] = NULL;
    L->vars[red->var] = NULL;
    ll_loop_begin(L, &lp[j], E, "v");
    L->vars[j] = lp[j].iv;
    L->red_acc = red;
    L->red_acc_p = accp;
    L->red_acc_var = j;
  }
  LLVMValueRef val = ll_expr(L, k->tvar, k->body);
  L->red_acc = NULL;
  LoopIndex oidx[IR_MAX_RANK];
  memset(oidx, 0, sizeof oidx);
  for (int d = 0; d < k->rank; d++) {
    oidx[d].c = k->out_off[d];
    oidx[d].nterms = 1;
    oidx[d].var[0] = d;
    oidx[d].coef[0] = 1;
    oidx[d].dyn_buf = -1;
  }
  LLVMTypeRef et = ll_buf_elt(L, ob);
  LLVMValueRef st;
  if (L->f32) val = LLVMBuildFPExt(L->B, val, L->tf64, ""); /* exact: a float widened and rounded back */
  L->f32 = 0;
  if (ob->dtype == IR_F32) {
    st = LLVMBuildFPTrunc(L->B, val, L->tf32, "");
    if (et == L->tf64) st = LLVMBuildFPExt(L->B, st, L->tf64, "");
  } else {
    st = ll_to_i32(L, val);
    if (et == L->tf64) st = LLVMBuildSIToFP(L->B, st, L->tf64, "");
  }
  LLVMValueRef sti = LLVMBuildStore(L->B, st, ll_gep(L, et, ll_bufptr(L, k->out), ll_flat(L, ob, oidx)));
  if (L->md_scope) LLVMSetMetadata(sti, LLVMGetMDKindIDInContext(L->C, "alias.scope", 11), L->md_scope);
  for (int d = k->rank - 1; d >= 0; d--) ll_loop_end(L, &lp[d]);
  L->restrict_out = -1;
  L->md_scope = L->md_noalias = NULL;
  memset(L->vars, 0, sizeof L->vars);
  free(L->letv);
  L->letv = NULL;
}

/* ---- LK_CALL -------------------------------------------------------------------------------- */
static LLVMValueRef p8(LL *L, int buf) {
  if (buf < 0) return LLVMConstNull(L->tp8);
  return LLVMBuildBitCast(L->B, ll_bufptr(L, buf), L->tp8, "");
}

/* a runtime function whose parameters are (P = i8*, I = i64, D = double, W = i32) */
static void rt_call(LL *L, const char *name, const char *sig, LLVMValueRef *vals) {
  LLVMTypeRef t[LOOP_MAX_ARGS + 8];
  int n = (int)strlen(sig);
  for (int i = 0; i < n; i++)
    t[i] = sig[i] == 'P' ? L->tp8 : sig[i] == 'I' ? L->ti64 : sig[i] == 'D' ? L->tf64 : L->ti32;
  ll_call(L, name, L->tv, t, n, vals);
}

static void emit_gather(LL *L, const LoopKernel *k, LLVMValueRef *s) {
  LLVMValueRef bad = ll_alloca(L, L->ti64, "bad");
  LLVMBuildStore(L->B, ll_i64(L, 0), bad);
  LLVMTypeRef t[7] = {L->tp8, L->tp8, L->tp8, L->ti64, L->ti64, L->ti64, L->tp8};
  LLVMValueRef v[7] = {p8(L, k->out), p8(L, k->args[0]), p8(L, k->args[1]), s[0], s[1], s[2],
                       LLVMBuildBitCast(L->B, bad, L->tp8, "")};
  LLVMValueRef r = ll_call(L, "gat_k_gather", L->ti32, t, 7, v);
  LLVMBasicBlockRef eb = ll_block(L, "gather.err"), ok = ll_block(L, "gather.ok");
  LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntNE, r, ll_i32(L, GAT_OK), ""), eb, ok);
  LLVMPositionBuilderAtEnd(L->B, eb);
  StrBuf f = {0};
  sb_append(&f, "index %ld at position %lld is outside [0, %lld) in gather");
  const LoopBuf *tb = loop_buf(L->m, k->args[0]);
  if (tb->kind == LB_PARAM && tb->name) {
    sb_append(&f, " from '");
    ll_fmt_text(&f, tb->name);
    sb_append(&f, "'");
  }
  ll_where_text(&f, k);
  LLVMValueRef b = LLVMBuildLoad2(L->B, L->ti64, bad, "");
  LLVMValueRef idx = LLVMBuildLoad2(L->B, L->ti32, ll_gep(L, L->ti32, ll_bufptr(L, k->args[1]), b), "");
  LLVMValueRef a[3] = {LLVMBuildSExt(L->B, idx, L->ti64, ""), b, s[1]};
  ll_error_return(L, ll_model(L), GAT_ERR_TOKEN_RANGE, sb_cstr(&f), a, 3);
  sb_free(&f);
  LLVMPositionBuilderAtEnd(L->B, ok);
}

/* gat_attn_args is filled by byte offset (offsetof in this build's runtime
 * header: the same LP64 layout as the targets this backend accepts), after
 * zeroing it, so fields added to the struct later start out absent. */
static void attn_store(LL *L, LLVMValueRef base, size_t off, LLVMValueRef v) {
  LLVMValueRef p = ll_gep(L, L->ti8, base, ll_i64(L, (int64_t)off));
  LLVMBuildStore(L->B, v, LLVMBuildBitCast(L->B, p, LLVMPointerType(LLVMTypeOf(v), 0), ""));
}

static void emit_attention(LL *L, const LoopKernel *k, LLVMValueRef *s) {
  LLVMValueRef A = ll_alloca(L, LLVMArrayType(L->ti64, (unsigned)((sizeof(gat_attn_args) + 7) / 8)), "attn");
  LLVMValueRef a8 = LLVMBuildBitCast(L->B, A, L->tp8, "");
  {
    LLVMTypeRef t3[3] = {L->tp8, L->ti32, L->ti64};
    LLVMValueRef v3[3] = {a8, ll_i32(L, 0), ll_i64(L, (int64_t)sizeof(gat_attn_args))};
    ll_call(L, "memset", L->tp8, t3, 3, v3);
  }
#define AT(field, v) attn_store(L, a8, offsetof(gat_attn_args, field), v)
  AT(out, p8(L, k->out));
  AT(q, p8(L, k->args[0]));
  AT(k, p8(L, k->args[1]));
  AT(v, p8(L, k->args[2]));
  AT(qb, p8(L, k->args[3]));
  AT(kb, p8(L, k->args[4]));
  AT(cache_k, p8(L, k->args[5]));
  AT(cache_v, p8(L, k->args[6]));
  AT(cache_kb, p8(L, k->args[7]));
  AT(T, s[0]);
  AT(H, s[1]);
  AT(Hkv, s[2]);
  AT(dk, s[3]);
  AT(dv, s[4]);
  AT(window, s[5]);
  if (k->nargs > 10 && k->args[10] >= 0) { /* under a skip/route: the packed row count (loopir.h LK_SKIP) */
    LLVMValueRef rc = LLVMBuildLoad2(L->B, L->ti32, ll_bufptr(L, k->args[10]), "rows0");
    AT(pos0, LLVMBuildSExt(L->B, rc, L->ti64, ""));
  } else {
    AT(pos0, ll_pos(L));
  }
  AT(max_T, ll_i64(L, L->m->max_T));
  AT(scale, ll_f64(L, k->reals[0]));
  AT(scratch, p8(L, k->args[8]));
  if (k->nargs > 9 && k->args[9] >= 0) {
    AT(relbias, p8(L, k->args[9]));
    AT(relbias_len, s[6]);
  }
  if (k->nargs > 11 && k->args[11] >= 0) AT(pos, p8(L, k->args[11])); /* `kv: previous` region (loopir.h) */
#undef AT
  if (k->attn_fast && k->sizes[3].tpow == 0 && k->sizes[4].tpow == 0) { /* -O2 pass_attention, its part (pass block) */
    LLVMValueRef h[2];
    block_bounds(L, k, 1, ll_i64(L, 0), &h[0], &h[1]);
    ll_flash_attn_call(L, k->sizes[3].k, k->sizes[4].k, kernels_attention_features(k), a8, k->attn_part, h);
    return;
  }
  rt_call(L, "gat_k_attention", "P", &a8);
}

void ll_emit_call_kernel(LL *L, const LoopKernel *k) {
  LLVMValueRef s[LOOP_MAX_ARGS];
  if (k->nsizes < 0 || k->nsizes > LOOP_MAX_ARGS) {
    ll_fail(L, "LLVM backend: malformed call kernel k%d", k->id);
    return;
  }
  for (int i = 0; i < LOOP_MAX_ARGS; i++) s[i] = i < k->nsizes ? ll_size(L, k->sizes[i]) : ll_i64(L, 0);
  switch (k->call) {
  case LC_SOFTMAX: {
    LLVMValueRef v[5] = {p8(L, k->out), p8(L, k->args[0]), s[0], s[1], s[2]};
    rt_call(L, "gat_k_softmax", "PPIII", v);
    break;
  }
  case LC_RMS_NORM: {
    LLVMValueRef v[7] = {p8(L, k->out), p8(L, k->args[0]), p8(L, k->args[1]), s[0], s[1], ll_f64(L, k->reals[0]),
                         ll_i32(L, k->reals[1] != 0)};
    rt_call(L, "gat_k_rms_norm", "PPPIIDW", v);
    break;
  }
  case LC_LAYER_NORM: {
    LLVMValueRef v[7] = {p8(L, k->out), p8(L, k->args[0]), p8(L, k->args[1]), p8(L, k->args[2]), s[0], s[1],
                         ll_f64(L, k->reals[0])};
    rt_call(L, "gat_k_layer_norm", "PPPPIID", v);
    break;
  }
  case LC_L2_NORM: {
    LLVMValueRef v[5] = {p8(L, k->out), p8(L, k->args[0]), s[0], s[1], ll_f64(L, k->reals[0])};
    rt_call(L, "gat_k_l2_norm", "PPIID", v);
    break;
  }
  case LC_GATHER: emit_gather(L, k, s); break;
  case LC_TOPK: {
    LLVMValueRef v[6] = {p8(L, k->out), p8(L, k->args[1]), p8(L, k->args[0]), s[0], s[1], s[2]};
    rt_call(L, "gat_k_topk", "PPPIII", v);
    break;
  }
  case LC_ROPE: {
    if (k->nargs > 1 && k->args[1] >= 0) { /* in a region: the rows' own positions (loopir.h LC_ROPE) */
      LLVMValueRef v[8] = {p8(L, k->out), p8(L, k->args[0]), s[0], s[1], s[2], p8(L, k->args[1]), ll_f64(L, k->reals[0]), s[3]};
      rt_call(L, "gat_k_rope_pos", "PPIIIPDI", v);
      break;
    }
    LLVMValueRef v[8] = {p8(L, k->out), p8(L, k->args[0]), s[0], s[1], s[2], ll_pos(L), ll_f64(L, k->reals[0]), s[3]};
    rt_call(L, "gat_k_rope", "PPIIIIDI", v);
    break;
  }
  case LC_CONV1D: {
    LLVMValueRef v[9] = {p8(L, k->out), p8(L, k->args[0]), p8(L, k->args[1]), p8(L, k->args[2]), p8(L, k->args[3]),
                         s[0], s[1], s[2], ll_i32(L, k->reals[0] != 0)};
    rt_call(L, "gat_k_conv1d", "PPPPPIIIW", v);
    break;
  }
  case LC_ATTENTION: emit_attention(L, k, s); break;
  case LC_COPY_ROWS: { /* GateSkip's KV copy (loopir.h) */
    LLVMValueRef v[5] = {p8(L, k->out), p8(L, k->args[0]), ll_pos(L), s[0], s[1]};
    rt_call(L, "gat_k_copy_rows", "PPIII", v);
    break;
  }
  case LC_GEMM: {
    for (int i = 10; i < k->nargs && i < LOOP_MAX_ARGS; i++)
      if (k->args[i] >= 0) {
        ll_fail(L, "not supported by the LLVM backend: GEMM argument %d (k%d)", i, k->id);
        return;
      }
    if (!ll_gemm_act_ok(k->epi_act)) {
      ll_fail(L, "not supported by the LLVM backend: GEMM epilogue activation %d", k->epi_act);
      return;
    }
    int rs = k->nargs > 6 ? k->args[6] : -1;
    if (k->ncat > 0 || (k->nargs > 9 && k->args[9] >= 0)) { /* pass_concat / pass_gate: gat_gemm_seg_f32 */
      const int n = k->ncat > 0 ? k->ncat : 1;
      LLVMValueRef *ptrs = calloc((size_t)n * 5, sizeof *ptrs);
      int64_t *ns = calloc((size_t)n, sizeof *ns);
      int *acts = calloc((size_t)n, sizeof *acts);
      for (int c = 0; c < n; c++) {
        LoopGemmSeg g;
        if (k->ncat > 0) {
          g = k->cat[c];
        } else { /* a gated GEMM: one segment */
          g.out = k->out, g.w = k->args[1], g.bias = k->args[2], g.res = k->args[3], g.act = k->epi_act;
          g.n = k->sizes[1].k;
        }
        if (!ll_gemm_act_ok(g.act) || g.w < 0) {
          ll_fail(L, "not supported by the LLVM backend: GEMM segment %d of k%d (activation %d, weight %d)", c, k->id,
                  g.act, g.w);
          break;
        }
        LLVMValueRef v[5] = {p8(L, g.out), p8(L, g.w), p8(L, g.bias), p8(L, g.res), p8(L, k->ncat > 0 ? -1 : k->args[9])};
        memcpy(ptrs + 5 * c, v, sizeof v);
        ns[c] = g.n, acts[c] = g.act;
      }
      LLVMValueRef rows[2] = {NULL, NULL}; /* pass block: a row block only */
      if (k->blk_var[0] >= 0) block_bounds(L, k, 0, s[0], &rows[0], &rows[1]);
      if (!L->failed) ll_gemm_seg_call(L, n, ptrs, ns, acts, p8(L, k->args[0]), p8(L, rs), s[0], s[2], rows);
      free(ptrs), free(ns), free(acts);
      break;
    }
    if (k->nargs > 7 && k->args[7] >= 0) { /* GLU product (pass_glu), both weights packed */
      LLVMValueRef v[15] = {p8(L, k->out), p8(L, k->args[0]), p8(L, k->args[1]), p8(L, k->args[7]), p8(L, k->args[2]),
                            p8(L, k->nargs > 8 ? k->args[8] : -1), p8(L, rs), s[0], s[1], s[2], ll_i32(L, kernels_gemm_act_code(k->epi_act))};
      if (k->blk_var[0] >= 0 || k->blk_var[1] >= 0) { /* pass block: one block of the result */
        block_bounds(L, k, 0, s[0], &v[11], &v[12]);
        block_bounds(L, k, 1, s[1], &v[13], &v[14]);
        rt_call(L, "gat_gemm_glu_f32_blk", "PPPPPPPIIIWIIII", v);
      } else {
        rt_call(L, "gat_gemm_glu_f32", "PPPPPPPIIIW", v);
      }
      break;
    }
    LLVMValueRef v[18] = {p8(L, k->out),  p8(L, k->args[0]), p8(L, k->args[1]), p8(L, k->args[1] >= 0 ? -1 : k->args[4]),
                          ll_i64(L, k->w_sn), ll_i64(L, k->w_sk), p8(L, k->args[5]), p8(L, k->args[2]),
                          p8(L, k->args[3]), p8(L, rs), s[0], s[1], s[2], ll_i32(L, kernels_gemm_act_code(k->epi_act))};
    if (k->blk_var[0] >= 0 || k->blk_var[1] >= 0) { /* pass block: one block of the result */
      block_bounds(L, k, 0, s[0], &v[14], &v[15]);
      block_bounds(L, k, 1, s[1], &v[16], &v[17]);
      rt_call(L, "gat_gemm_f32_blk", "PPPPIIPPPPIIIWIIII", v);
    } else {
      rt_call(L, "gat_gemm_f32", "PPPPIIPPPPIIIW", v);
    }
    break;
  }
  default: ll_fail(L, "not supported by the LLVM backend: call kind %d in kernel k%d (%s)", (int)k->call, k->id,
                   k->opname ? k->opname : "?");
  }
}
