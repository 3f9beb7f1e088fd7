/* emit_llvm_api.c — the LLVM backend's module: the types NAME.h describes
 * (model struct, tensor specs, error record), the runtime's inline scalar
 * helpers as internal functions, the exported tables and entry points
 * (NAME_init / _init_tensors / _forward / _reset / _status / _message /
 * _position / _sizeof / _arena_bytes, same ABI and messages as NAME.c), and
 * emit_llvm_module: build, LLVMVerifyModule, then LLVM's pass pipeline. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "emit_knobs.h"
#include "emit_llvm_int.h"
#include "gat_runtime.h"

void ll_build_types(LL *L) {
  LLVMContextRef C = L->C;
  const LoopModule *m = L->m;
  L->tv = LLVMVoidTypeInContext(C);
  L->ti1 = LLVMInt1TypeInContext(C);
  L->ti8 = LLVMInt8TypeInContext(C);
  L->ti32 = LLVMInt32TypeInContext(C);
  L->ti64 = LLVMInt64TypeInContext(C);
  L->tf32 = LLVMFloatTypeInContext(C);
  L->tf64 = LLVMDoubleTypeInContext(C);
  L->tp8 = LLVMPointerType(L->ti8, 0);
  L->tpf32 = LLVMPointerType(L->tf32, 0);
  L->tpi32 = LLVMPointerType(L->ti32, 0);
  L->tpf64 = LLVMPointerType(L->tf64, 0);
  L->tpi64 = LLVMPointerType(L->ti64, 0);
  LLVMTypeRef ef[2] = {L->ti32, LLVMArrayType(L->ti8, GAT_MSG_LEN)};
  L->t_err = LLVMStructCreateNamed(C, "gat_error");
  LLVMStructSetBody(L->t_err, ef, 2, 0);
  int nknobs = emit_knobs_n(m); /* double skip_tau[n], skip_cap[n] (NAME.h, emit_knobs_field) */
  /* --count: uint64_t count[slots] between err and the knobs (NAME.h, emit_count_field) */
  LLVMTypeRef mf[8] = {L->tp8, LLVMArrayType(L->tp8, (unsigned)(m->nparams > 0 ? m->nparams : 1)), L->ti64, L->ti32,
                       L->t_err};
  int nf = 5;
  if (m->count) mf[nf++] = ll_count_type(L);
  if (nknobs > 0) {
    mf[nf++] = LLVMArrayType(L->tf64, (unsigned)nknobs);
    mf[nf++] = LLVMArrayType(L->tf64, (unsigned)nknobs);
  }
  L->t_model = LLVMStructCreateNamed(C, m->name);
  LLVMStructSetBody(L->t_model, mf, (unsigned)nf, 0);
  L->t_pmodel = LLVMPointerType(L->t_model, 0);
  LLVMTypeRef cf[7] = {L->t_pmodel, L->tp8, L->ti64, LLVMArrayType(L->ti64, (unsigned)(m->ntvars > 0 ? m->ntvars : 1)),
                       LLVMArrayType(L->tp8, (unsigned)(m->ninputs > 0 ? m->ninputs : 1)),
                       LLVMArrayType(L->tp8, (unsigned)(m->noutputs > 0 ? m->noutputs : 1)),
                       LLVMArrayType(L->ti64, (unsigned)(m->ntiles > 0 ? m->ntiles : 1))}; /* tile variables */
  L->t_ctx = LLVMStructCreateNamed(C, "ctx");
  LLVMStructSetBody(L->t_ctx, cf, 7, 0);
  L->t_pctx = LLVMPointerType(L->t_ctx, 0);
  LLVMTypeRef sf[4] = {L->tp8, L->ti32, L->ti32, LLVMArrayType(L->ti64, GAT_MAX_RANK)};
  L->t_spec = LLVMStructCreateNamed(C, "gat_tensor_spec");
  LLVMStructSetBody(L->t_spec, sf, 4, 0);
  LLVMTypeRef af[19];
  for (int i = 0; i < 9; i++) af[i] = L->tp8;
  for (int i = 9; i < 17; i++) af[i] = L->ti64;
  af[17] = L->tf64;
  af[18] = L->tp8;
  L->t_attn = LLVMStructCreateNamed(C, "gat_attn_args");
  LLVMStructSetBody(L->t_attn, af, 19, 0);
  L->t_kern = LLVMFunctionType(L->ti32, &L->t_pctx, 1, 0);
}

/* ---- function scaffolding ---------------------------------------------------------- */
static LLVMValueRef fn_begin(LL *L, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, int n, int internal) {
  LLVMTypeRef fty = LLVMFunctionType(ret, params, (unsigned)n, 0);
  LLVMValueRef f = ll_func(L, name, fty);
  if (internal) LLVMSetLinkage(f, LLVMInternalLinkage);
  L->fn = f;
  LLVMPositionBuilderAtEnd(L->B, LLVMAppendBasicBlockInContext(L->C, f, "entry"));
  return f;
}

/* if (bad) { <builder here> } ... : returns the continue block */
static LLVMBasicBlockRef guard(LL *L, LLVMValueRef bad) {
  LLVMBasicBlockRef b = ll_block(L, "err"), ok = ll_block(L, "ok");
  LLVMBuildCondBr(L->B, bad, b, ok);
  LLVMPositionBuilderAtEnd(L->B, b);
  return ok;
}

static LLVMValueRef is_null(LL *L, LLVMValueRef p) { return LLVMBuildIsNull(L->B, p, ""); }

static void ret_status_if_null(LL *L, LLVMValueRef p, int status) {
  LLVMBasicBlockRef ok = guard(L, is_null(L, p));
  LLVMBuildRet(L->B, ll_i32(L, status));
  LLVMPositionBuilderAtEnd(L->B, ok);
}

static LLVMValueRef d1(LL *L, const char *name, LLVMValueRef a) {
  LLVMTypeRef t = L->tf64;
  return ll_call(L, name, L->tf64, &t, 1, &a);
}

/* the runtime header's static inline functions, same formulas and order */
static void build_helpers(LL *L) {
  LLVMTypeRef d = L->tf64, dd[2] = {L->tf64, L->tf64};
  LLVMValueRef f, x, one = ll_f64(L, 1.0), zero = ll_f64(L, 0.0);

  f = fn_begin(L, "gat.to_i32", L->ti32, &d, 1, 1);
  x = LLVMGetParam(f, 0);
  {
    LLVMValueRef r = LLVMBuildSelect(L->B, LLVMBuildFCmp(L->B, LLVMRealOLE, x, ll_f64(L, -2147483648.0), ""),
                                     ll_i32(L, INT32_MIN), ll_i32(L, 0), "");
    LLVMBasicBlockRef conv = ll_block(L, "conv"), done = ll_block(L, "done");
    LLVMValueRef special = LLVMBuildOr(L->B, LLVMBuildFCmp(L->B, LLVMRealUNO, x, x, ""),
                                       LLVMBuildOr(L->B, LLVMBuildFCmp(L->B, LLVMRealOGE, x, ll_f64(L, 2147483647.0), ""),
                                                   LLVMBuildFCmp(L->B, LLVMRealOLE, x, ll_f64(L, -2147483648.0), ""), ""),
                                       "");
    r = LLVMBuildSelect(L->B, LLVMBuildFCmp(L->B, LLVMRealOGE, x, ll_f64(L, 2147483647.0), ""), ll_i32(L, INT32_MAX), r, "");
    LLVMBuildCondBr(L->B, special, done, conv);
    LLVMPositionBuilderAtEnd(L->B, done);
    LLVMBuildRet(L->B, r);
    LLVMPositionBuilderAtEnd(L->B, conv);
    LLVMBuildRet(L->B, LLVMBuildFPToSI(L->B, x, L->ti32, ""));
  }

  f = fn_begin(L, "gat.imod", L->tf64, dd, 2, 1);
  {
    LLVMValueRef ia = LLVMBuildFPToSI(L->B, LLVMGetParam(f, 0), L->ti64, "");
    LLVMValueRef ib = LLVMBuildFPToSI(L->B, LLVMGetParam(f, 1), L->ti64, "");
    LLVMValueRef z = LLVMBuildOr(L->B, LLVMBuildICmp(L->B, LLVMIntEQ, ib, ll_i64(L, 0), ""),
                                 LLVMBuildICmp(L->B, LLVMIntEQ, ib, ll_i64(L, -1), ""), "");
    LLVMBasicBlockRef ok = guard(L, z);
    LLVMBuildRet(L->B, zero);
    LLVMPositionBuilderAtEnd(L->B, ok);
    LLVMBuildRet(L->B, LLVMBuildSIToFP(L->B, LLVMBuildSRem(L->B, ia, ib, ""), L->tf64, ""));
  }

  f = fn_begin(L, "gat.sigmoid", d, &d, 1, 1);
  x = LLVMGetParam(f, 0);
  LLVMBuildRet(L->B, LLVMBuildFDiv(L->B, one, LLVMBuildFAdd(L->B, one, d1(L, "exp", LLVMBuildFNeg(L->B, x, "")), ""), ""));

  f = fn_begin(L, "gat.silu", d, &d, 1, 1);
  x = LLVMGetParam(f, 0);
  LLVMBuildRet(L->B, LLVMBuildFDiv(L->B, x, LLVMBuildFAdd(L->B, one, d1(L, "exp", LLVMBuildFNeg(L->B, x, "")), ""), ""));

  f = fn_begin(L, "gat.relu", d, &d, 1, 1);
  x = LLVMGetParam(f, 0);
  LLVMBuildRet(L->B, LLVMBuildSelect(L->B, LLVMBuildFCmp(L->B, LLVMRealOGT, x, zero, ""), x, zero, ""));

  f = fn_begin(L, "gat.softplus", d, &d, 1, 1);
  x = LLVMGetParam(f, 0);
  {
    LLVMBasicBlockRef ok = guard(L, LLVMBuildFCmp(L->B, LLVMRealOGT, x, ll_f64(L, 20.0), ""));
    LLVMBuildRet(L->B, x);
    LLVMPositionBuilderAtEnd(L->B, ok);
    LLVMBuildRet(L->B, d1(L, "log1p", d1(L, "exp", x)));
  }

  f = fn_begin(L, "gat.logsigmoid", d, &d, 1, 1);
  x = LLVMGetParam(f, 0);
  {
    LLVMBasicBlockRef ok = guard(L, LLVMBuildFCmp(L->B, LLVMRealOGE, x, zero, ""));
    LLVMBuildRet(L->B, LLVMBuildFNeg(L->B, d1(L, "log1p", d1(L, "exp", LLVMBuildFNeg(L->B, x, ""))), ""));
    LLVMPositionBuilderAtEnd(L->B, ok);
    LLVMBuildRet(L->B, LLVMBuildFSub(L->B, x, d1(L, "log1p", d1(L, "exp", x)), ""));
  }

  f = fn_begin(L, "gat.gelu_erf", d, &d, 1, 1);
  x = LLVMGetParam(f, 0);
  {
    LLVMValueRef h = LLVMBuildFMul(L->B, ll_f64(L, 0.5), x, "");
    LLVMValueRef e = d1(L, "erf", LLVMBuildFMul(L->B, x, ll_f64(L, 0.70710678118654752440), ""));
    LLVMBuildRet(L->B, LLVMBuildFMul(L->B, h, LLVMBuildFAdd(L->B, one, e, ""), ""));
  }

  f = fn_begin(L, "gat.gelu_tanh", d, &d, 1, 1);
  x = LLVMGetParam(f, 0);
  {
    LLVMValueRef h = LLVMBuildFMul(L->B, ll_f64(L, 0.5), x, "");
    LLVMValueRef c = LLVMBuildFMul(L->B, LLVMBuildFMul(L->B, LLVMBuildFMul(L->B, ll_f64(L, 0.044715), x, ""), x, ""), x, "");
    LLVMValueRef in = LLVMBuildFMul(L->B, ll_f64(L, 0.79788456080286535588), LLVMBuildFAdd(L->B, x, c, ""), "");
    LLVMBuildRet(L->B, LLVMBuildFMul(L->B, h, LLVMBuildFAdd(L->B, one, d1(L, "tanh", in), ""), ""));
  }
}

/* ---- tables ---------------------------------------------------------------------------- */
static LLVMValueRef spec_table(LL *L, const char *what, const LoopTensorInfo *t, int n) {
  int cnt = n > 0 ? n : 1;
  LLVMValueRef *rows = xcalloc((size_t)cnt, sizeof *rows);
  for (int i = 0; i < cnt; i++) {
    LLVMValueRef dims[GAT_MAX_RANK];
    for (int d = 0; d < GAT_MAX_RANK; d++)
      dims[d] = ll_i64(L, i < n && d < t[i].shape.rank ? (t[i].shape.dims[d] == IR_DIM_T ? -1 : t[i].shape.dims[d]) : 0);
    LLVMValueRef f[4] = {ll_cstr(L, i < n ? t[i].name : ""), ll_i32(L, i < n && t[i].dtype != IR_F32 ? GAT_I32 : GAT_F32),
                         ll_i32(L, i < n ? t[i].shape.rank : 0), LLVMConstArray(L->ti64, dims, GAT_MAX_RANK)};
    rows[i] = LLVMConstNamedStruct(L->t_spec, f, 4);
  }
  StrBuf nm = {0};
  sb_printf(&nm, "%s_%s", L->m->name, what);
  LLVMValueRef init = LLVMConstArray(L->t_spec, rows, (unsigned)cnt);
  LLVMValueRef g = LLVMAddGlobal(L->M, LLVMTypeOf(init), sb_cstr(&nm));
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  sb_free(&nm);
  free(rows);
  return g;
}

static LLVMValueRef err_ptr(LL *L, LLVMValueRef model) { return LLVMBuildBitCast(L->B, ll_model_field(L, model, 4), L->tp8, ""); }

static void error_clear(LL *L, LLVMValueRef model) {
  LLVMValueRef e = err_ptr(L, model);
  LLVMTypeRef t = L->tp8;
  ll_call(L, "gat_error_clear", L->tv, &t, 1, &e);
}

static LLVMValueRef load_field(LL *L, LLVMValueRef model, int field, LLVMTypeRef t) {
  return LLVMBuildLoad2(L->B, t, ll_model_field(L, model, field), "");
}

/* m->w[i] as i8* */
static LLVMValueRef model_w(LL *L, LLVMValueRef model, int i) {
  LLVMValueRef idx[3] = {ll_i32(L, 0), ll_i32(L, 1), ll_i32(L, i)};
  return LLVMBuildLoad2(L->B, L->tp8, LLVMBuildInBoundsGEP2(L->B, L->t_model, model, idx, 3, ""), "");
}

/* ---- entry points --------------------------------------------------------------------------- */
void ll_emit_api(LL *L) {
  const LoopModule *m = L->m;
  const char *N = m->name;
  StrBuf nm = {0}, up = {0};
  for (const char *p = N; *p; p++) {
    char ch = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    sb_appendn(&up, &ch, 1);
  }
  const char *U = sb_cstr(&up);
#define NAME(s) (nm.len = 0, sb_printf(&nm, "%s_%s", N, s), sb_cstr(&nm))
  LLVMTypeRef pm = L->t_pmodel;
  int64_t model_size = (int64_t)LLVMABISizeOfType(L->td, L->t_model);
  ll_emit_count(L);   /* --count: NAME_count_* */
  ll_emit_profile(L); /* --profile: the timing globals and NAME_profile_* */

  fn_begin(L, NAME("sizeof"), L->ti64, NULL, 0, 0);
  LLVMBuildRet(L->B, ll_i64(L, model_size));
  fn_begin(L, NAME("arena_bytes"), L->ti64, NULL, 0, 0);
  LLVMBuildRet(L->B, ll_i64(L, m->arena_bytes));

  LLVMValueRef f = fn_begin(L, NAME("status"), L->ti32, &pm, 1, 0), mm = LLVMGetParam(f, 0);
  ret_status_if_null(L, mm, GAT_ERR_ARGUMENT);
  LLVMBuildRet(L->B, LLVMBuildLoad2(L->B, L->ti32, LLVMBuildBitCast(L->B, err_ptr(L, mm), L->tpi32, ""), ""));

  f = fn_begin(L, NAME("message"), L->tp8, &pm, 1, 0);
  mm = LLVMGetParam(f, 0);
  {
    LLVMBasicBlockRef ok = guard(L, is_null(L, mm));
    LLVMBuildRet(L->B, ll_cstr(L, "NULL model"));
    LLVMPositionBuilderAtEnd(L->B, ok);
    LLVMValueRef idx[3] = {ll_i32(L, 0), ll_i32(L, 1), ll_i32(L, 0)};
    LLVMBuildRet(L->B, LLVMBuildInBoundsGEP2(L->B, L->t_err, ll_model_field(L, mm, 4), idx, 3, ""));
  }

  f = fn_begin(L, NAME("position"), L->ti64, &pm, 1, 0);
  mm = LLVMGetParam(f, 0);
  {
    LLVMBasicBlockRef ok = guard(L, is_null(L, mm));
    LLVMBuildRet(L->B, ll_i64(L, 0));
    LLVMPositionBuilderAtEnd(L->B, ok);
    LLVMBuildRet(L->B, load_field(L, mm, 2, L->ti64));
  }

  /* reset */
  LLVMValueRef f_reset = fn_begin(L, NAME("reset"), L->ti32, &pm, 1, 0);
  mm = LLVMGetParam(f_reset, 0);
  ret_status_if_null(L, mm, GAT_ERR_ARGUMENT);
  {
    LLVMBasicBlockRef ok = guard(L, LLVMBuildICmp(L->B, LLVMIntEQ, load_field(L, mm, 3, L->ti32), ll_i32(L, 0), ""));
    ll_error_return(L, mm, GAT_ERR_NOT_INITIALIZED, "reset before a successful init", NULL, 0);
    LLVMPositionBuilderAtEnd(L->B, ok);
  }
  LLVMBuildStore(L->B, ll_i64(L, 0), ll_model_field(L, mm, 2));
  for (int i = 0; i < m->bufs.len; i++) {
    const LoopBuf *b = m->bufs.data[i];
    if (b->kind != LB_STATE) continue;
    double init = m->states[b->index].init;
    LLVMValueRef arena = load_field(L, mm, 0, L->tp8);
    LLVMTypeRef et = b->dtype == IR_F32 ? L->tf32 : L->ti32;
    LLVMValueRef s = LLVMBuildBitCast(L->B, ll_gep(L, L->ti8, arena, ll_i64(L, b->offset)), LLVMPointerType(et, 0), "");
    LLVMValueRef v = b->dtype == IR_F32 ? LLVMConstReal(L->tf32, (float)init) : ll_i32(L, (int32_t)(long long)init);
    LLLoop lp;
    ll_loop_begin(L, &lp, ll_i64(L, b->bytes / 4), "i");
    LLVMBuildStore(L->B, v, ll_gep(L, et, s, lp.iv));
    ll_loop_end(L, &lp);
  }
  error_clear(L, mm);
  LLVMBuildRet(L->B, ll_i32(L, GAT_OK));

  /* init_arena(m, arena, len) */
  LLVMTypeRef ia_t[3] = {pm, L->tp8, L->ti64};
  LLVMValueRef f_ia = fn_begin(L, NAME("init_arena"), L->ti32, ia_t, 3, 1);
  mm = LLVMGetParam(f_ia, 0);
  LLVMValueRef arena = LLVMGetParam(f_ia, 1), alen = LLVMGetParam(f_ia, 2);
  ret_status_if_null(L, mm, GAT_ERR_ARGUMENT);
  {
    LLVMTypeRef t3[3] = {L->tp8, L->ti32, L->ti64};
    LLVMValueRef v3[3] = {LLVMBuildBitCast(L->B, mm, L->tp8, ""), ll_i32(L, 0), ll_i64(L, model_size)};
    ll_call(L, "memset", L->tp8, t3, 3, v3);
  }
  LLVMBasicBlockRef ok = guard(L, is_null(L, arena));
  ll_error_return(L, mm, GAT_ERR_ARGUMENT, "arena is NULL", NULL, 0);
  LLVMPositionBuilderAtEnd(L->B, ok);
  ok = guard(L, LLVMBuildICmp(L->B, LLVMIntULT, alen, ll_i64(L, m->arena_bytes), ""));
  {
    StrBuf fm = {0};
    sb_printf(&fm, "arena of %%lu bytes, the model needs %%lu (%s_ARENA_BYTES)", U);
    LLVMValueRef a[2] = {alen, ll_i64(L, m->arena_bytes)};
    ll_error_return(L, mm, GAT_ERR_ARENA_TOO_SMALL, sb_cstr(&fm), a, 2);
    sb_free(&fm);
  }
  LLVMPositionBuilderAtEnd(L->B, ok);
  ok = guard(L, LLVMBuildICmp(L->B, LLVMIntNE,
                              LLVMBuildAnd(L->B, LLVMBuildPtrToInt(L->B, arena, L->ti64, ""), ll_i64(L, 7), ""),
                              ll_i64(L, 0), ""));
  ll_error_return(L, mm, GAT_ERR_ALIGNMENT, "arena is not 8-byte aligned", NULL, 0);
  LLVMPositionBuilderAtEnd(L->B, ok);
  LLVMBuildRet(L->B, ll_i32(L, GAT_OK));

  /* init_done(m, arena): pack GEMM weights, reset */
  LLVMTypeRef id_t[2] = {pm, L->tp8};
  LLVMValueRef f_id = fn_begin(L, NAME("init_done"), L->ti32, id_t, 2, 1);
  mm = LLVMGetParam(f_id, 0);
  arena = LLVMGetParam(f_id, 1);
  LLVMBuildStore(L->B, arena, ll_model_field(L, mm, 0));
  LLVMBuildStore(L->B, ll_i32(L, 1), ll_model_field(L, mm, 3));
  ll_knobs_init(L, mm);
  for (int i = 0; i < m->packs.len; i++) {
    const LoopPack *p = m->packs.data[i];
    LLVMValueRef dst = ll_gep(L, L->ti8, arena, ll_i64(L, loop_buf(m, p->buf)->offset));
    LLVMValueRef w = model_w(L, mm, p->param);
    LLVMValueRef alpha = p->scale_param >= 0 ? model_w(L, mm, p->scale_param) : LLVMConstNull(L->tp8);
    if (p->vector) { /* a folded bias (pass_scalefold) */
      LLVMTypeRef t5[5] = {L->tp8, L->tp8, L->ti64, L->tf64, L->tp8};
      LLVMValueRef v5[5] = {dst, w, ll_i64(L, p->N), ll_f64(L, p->scale), alpha};
      ll_call(L, "gat_gemm_pack_vec", L->tv, t5, 5, v5);
      continue;
    }
    LLVMTypeRef t12[12] = {L->tp8, L->tp8, L->ti64, L->ti64, L->ti64, L->ti64, L->ti64, L->ti64, L->tf64, L->tp8, L->tp8, L->ti32};
    LLVMValueRef v12[12] = {dst, w, ll_i64(L, p->N), ll_i64(L, p->K), ll_i64(L, p->sn), ll_i64(L, p->sk), ll_i64(L, 0),
                            ll_i64(L, p->K), ll_f64(L, p->scale), alpha,
                            p->scale_vec >= 0 ? model_w(L, mm, p->scale_vec) : LLVMConstNull(L->tp8),
                            ll_i32(L, p->scale_vec >= 0 && p->vec_plus_one)};
    ll_call(L, "gat_gemm_pack", L->tv, t12, 12, v12);
  }
  LLVMBuildRet(L->B, LLVMBuildCall2(L->B, LLVMGlobalGetValueType(f_reset), f_reset, &mm, 1, ""));

  /* init(m, arena, len, weights, wlen) */
  LLVMTypeRef in_t[5] = {pm, L->tp8, L->ti64, L->tp8, L->ti64};
  f = fn_begin(L, NAME("init"), L->ti32, in_t, 5, 0);
  {
    LLVMValueRef a3[3] = {LLVMGetParam(f, 0), LLVMGetParam(f, 1), LLVMGetParam(f, 2)};
    LLVMValueRef st = LLVMBuildCall2(L->B, LLVMGlobalGetValueType(f_ia), f_ia, a3, 3, "st");
    LLVMBasicBlockRef ok2 = guard(L, LLVMBuildICmp(L->B, LLVMIntNE, st, ll_i32(L, GAT_OK), ""));
    LLVMBuildRet(L->B, st);
    LLVMPositionBuilderAtEnd(L->B, ok2);
    mm = a3[0];
    LLVMValueRef widx[3] = {ll_i32(L, 0), ll_i32(L, 1), ll_i32(L, 0)};
    LLVMTypeRef bt[8] = {L->tp8, L->ti64, L->tp8, L->ti32, L->tp8, L->tp8, L->ti64, L->tp8};
    LLVMValueRef bv[8] = {LLVMGetParam(f, 3), LLVMGetParam(f, 4), LLVMBuildBitCast(L->B, L->g_params, L->tp8, ""),
                          ll_i32(L, m->nparams),
                          LLVMBuildBitCast(L->B, LLVMBuildInBoundsGEP2(L->B, L->t_model, mm, widx, 3, ""), L->tp8, ""),
                          ll_gep(L, L->ti8, a3[1], ll_i64(L, m->arena_bytes)),
                          LLVMBuildSub(L->B, a3[2], ll_i64(L, m->arena_bytes), ""), err_ptr(L, mm)};
    st = ll_call(L, "gat_st_bind_copy", L->ti32, bt, 8, bv);
    ok2 = guard(L, LLVMBuildICmp(L->B, LLVMIntNE, st, ll_i32(L, GAT_OK), ""));
    LLVMBuildRet(L->B, st);
    LLVMPositionBuilderAtEnd(L->B, ok2);
    LLVMValueRef a2[2] = {mm, a3[1]};
    LLVMBuildRet(L->B, LLVMBuildCall2(L->B, LLVMGlobalGetValueType(f_id), f_id, a2, 2, ""));
  }

  /* init_tensors(m, arena, len, tensors) */
  LLVMTypeRef it_t[4] = {pm, L->tp8, L->ti64, LLVMPointerType(L->tp8, 0)};
  f = fn_begin(L, NAME("init_tensors"), L->ti32, it_t, 4, 0);
  {
    LLVMValueRef a3[3] = {LLVMGetParam(f, 0), LLVMGetParam(f, 1), LLVMGetParam(f, 2)};
    LLVMValueRef tens = LLVMGetParam(f, 3);
    mm = a3[0];
    LLVMValueRef st = LLVMBuildCall2(L->B, LLVMGlobalGetValueType(f_ia), f_ia, a3, 3, "st");
    LLVMBasicBlockRef ok2 = guard(L, LLVMBuildICmp(L->B, LLVMIntNE, st, ll_i32(L, GAT_OK), ""));
    LLVMBuildRet(L->B, st);
    LLVMPositionBuilderAtEnd(L->B, ok2);
    ok2 = guard(L, is_null(L, tens));
    ll_error_return(L, mm, GAT_ERR_ARGUMENT, "tensor table is NULL", NULL, 0);
    LLVMPositionBuilderAtEnd(L->B, ok2);
    for (int i = 0; i < m->nparams; i++) {
      LLVMValueRef t = LLVMBuildLoad2(L->B, L->tp8, ll_gep(L, L->tp8, tens, ll_i64(L, i)), "");
      LLVMValueRef name = ll_cstr(L, m->params[i].name);
      ok2 = guard(L, is_null(L, t));
      ll_error_return(L, mm, GAT_ERR_MISSING_TENSOR, "tensor '%s' is NULL", &name, 1);
      LLVMPositionBuilderAtEnd(L->B, ok2);
      ok2 = guard(L, LLVMBuildICmp(L->B, LLVMIntNE, LLVMBuildAnd(L->B, LLVMBuildPtrToInt(L->B, t, L->ti64, ""), ll_i64(L, 3), ""),
                                   ll_i64(L, 0), ""));
      ll_error_return(L, mm, GAT_ERR_ALIGNMENT, "data of tensor '%s' is not 4-byte aligned in memory", &name, 1);
      LLVMPositionBuilderAtEnd(L->B, ok2);
      LLVMValueRef idx[3] = {ll_i32(L, 0), ll_i32(L, 1), ll_i32(L, i)};
      LLVMBuildStore(L->B, t, LLVMBuildInBoundsGEP2(L->B, L->t_model, mm, idx, 3, ""));
    }
    LLVMValueRef a2[2] = {mm, a3[1]};
    LLVMBuildRet(L->B, LLVMBuildCall2(L->B, LLVMGlobalGetValueType(f_id), f_id, a2, 2, ""));
  }

  /* forward(m, inputs..., int32 T, outputs...) */
  int np = 2 + m->ninputs + m->noutputs;
  LLVMTypeRef *ft = xcalloc((size_t)np, sizeof *ft);
  ft[0] = pm;
  for (int i = 0; i < m->ninputs; i++) ft[1 + i] = m->inputs[i].dtype == IR_F32 ? L->tpf32 : L->tpi32;
  ft[1 + m->ninputs] = L->ti32;
  for (int i = 0; i < m->noutputs; i++) ft[2 + m->ninputs + i] = m->outputs[i].dtype == IR_F32 ? L->tpf32 : L->tpi32;
  f = fn_begin(L, NAME("forward"), L->ti32, ft, np, 0);
  free(ft);
  mm = LLVMGetParam(f, 0);
  ret_status_if_null(L, mm, GAT_ERR_ARGUMENT);
  ok = guard(L, LLVMBuildICmp(L->B, LLVMIntEQ, load_field(L, mm, 3, L->ti32), ll_i32(L, 0), ""));
  ll_error_return(L, mm, GAT_ERR_NOT_INITIALIZED, "forward before a successful init", NULL, 0);
  LLVMPositionBuilderAtEnd(L->B, ok);
  for (int i = 0; i < m->ninputs + m->noutputs; i++) {
    int isin = i < m->ninputs;
    LLVMValueRef p = LLVMGetParam(f, (unsigned)(isin ? 1 + i : 2 + i));
    LLVMValueRef name = ll_cstr(L, isin ? m->inputs[i].name : m->outputs[i - m->ninputs].name);
    ok = guard(L, is_null(L, p));
    ll_error_return(L, mm, GAT_ERR_ARGUMENT, isin ? "input '%s' is NULL" : "output '%s' is NULL", &name, 1);
    LLVMPositionBuilderAtEnd(L->B, ok);
  }
  LLVMValueRef T32 = LLVMGetParam(f, (unsigned)(1 + m->ninputs));
  LLVMValueRef T = LLVMBuildSExt(L->B, T32, L->ti64, "T");
  LLVMValueRef pos = load_field(L, mm, 2, L->ti64);
  ok = guard(L, LLVMBuildOr(L->B, LLVMBuildICmp(L->B, LLVMIntSLT, T, ll_i64(L, 1), ""),
                            LLVMBuildICmp(L->B, LLVMIntSGT, T, LLVMBuildSub(L->B, ll_i64(L, m->max_T), pos, ""), ""), ""));
  {
    LLVMValueRef a[3] = {T, pos, ll_i64(L, m->max_T)};
    ll_error_return(L, mm, GAT_ERR_SEQ_TOO_LONG,
                    "T = %ld at position %lld: the model was compiled for at most %lld tokens", a, 3);
  }
  LLVMPositionBuilderAtEnd(L->B, ok);
  LLVMValueRef c = ll_alloca(L, L->t_ctx, "c");
  {
    LLVMTypeRef t3[3] = {L->tp8, L->ti32, L->ti64};
    LLVMValueRef v3[3] = {LLVMBuildBitCast(L->B, c, L->tp8, ""), ll_i32(L, 0),
                          ll_i64(L, (int64_t)LLVMABISizeOfType(L->td, L->t_ctx))};
    ll_call(L, "memset", L->tp8, t3, 3, v3);
  }
  LLVMBuildStore(L->B, mm, LLVMBuildStructGEP2(L->B, L->t_ctx, c, 0, ""));
  LLVMBuildStore(L->B, load_field(L, mm, 0, L->tp8), LLVMBuildStructGEP2(L->B, L->t_ctx, c, 1, ""));
  LLVMBuildStore(L->B, T, LLVMBuildStructGEP2(L->B, L->t_ctx, c, 2, ""));
  for (int i = 0; i < m->ninputs + m->noutputs; i++) {
    int isin = i < m->ninputs;
    LLVMValueRef p = LLVMGetParam(f, (unsigned)(isin ? 1 + i : 2 + i));
    LLVMValueRef idx[3] = {ll_i32(L, 0), ll_i32(L, isin ? 4 : 5), ll_i32(L, isin ? i : i - m->ninputs)};
    LLVMBuildStore(L->B, LLVMBuildBitCast(L->B, p, L->tp8, ""), LLVMBuildInBoundsGEP2(L->B, L->t_ctx, c, idx, 3, ""));
  }
  L->ctx = c;
  for (int i = 0; i < m->kernels.len && !L->failed; i++) {
    LLVMValueRef t0 = ll_profile_begin(L); /* --profile: time each top-level kernel */
    ll_call_kernel(L, m->kernels.data[i]);
    ll_profile_end(L, i, t0);
  }
  LLVMBuildStore(L->B, LLVMBuildAdd(L->B, pos, T, ""), ll_model_field(L, mm, 2));
  error_clear(L, mm);
  LLVMBuildRet(L->B, ll_i32(L, GAT_OK));
  ll_emit_knobs(L);
#undef NAME
  sb_free(&nm);
  sb_free(&up);
}

/* ---- the module -------------------------------------------------------------------------------- */
static int has_feature(const char *features, const char *f) {
  size_t n = strlen(f);
  for (const char *p = features; p && (p = strstr(p, f)) != NULL; p += n)
    if (p[n] == ',' || p[n] == 0) return 1;
  return 0;
}

/* The vector width (floats) of the hand-built kernels for `-mcpu=CPU` without a feature string
 * (the host's features are always spelled out, emit_llvm_target.c): the C API has no query of
 * a CPU's features, so x86 CPUs that LLVM 14 knows are listed by their widest float vectors
 * (AVX-512F: 16, AVX: 8). 0 = no entry (4-wide kernels, SSE/NEON and anything unknown). */
static int cpu_vector_width(LLVMTargetMachineRef tm, const char *feat) {
  static const char *const avx512[] = {"knl", "knm", "skylake-avx512", "skx", "cascadelake", "cooperlake",
                                        "cannonlake", "icelake-client", "icelake-server", "tigerlake",
                                        "sapphirerapids", "rocketlake", "x86-64-v4"};
  static const char *const avx[] = {"sandybridge", "corei7-avx", "ivybridge", "core-avx-i", "haswell", "core-avx2",
                                     "broadwell", "skylake", "alderlake", "bdver1", "bdver2", "bdver3", "bdver4",
                                     "btver2", "znver1", "znver2", "znver3", "x86-64-v3"};
  if (feat && *feat) return 0;
  char *triple = LLVMGetTargetMachineTriple(tm), *cpu = LLVMGetTargetMachineCPU(tm);
  int vl = 0;
  if (!strncmp(triple, "x86_64", 6) || !strncmp(triple, "i686", 4) || !strncmp(triple, "i386", 4)) {
    for (size_t i = 0; i < sizeof avx512 / sizeof avx512[0] && !vl; i++)
      if (!strcmp(cpu, avx512[i])) vl = 16;
    for (size_t i = 0; i < sizeof avx / sizeof avx[0] && !vl; i++)
      if (!strcmp(cpu, avx[i])) vl = 8;
  }
  LLVMDisposeMessage(triple);
  LLVMDisposeMessage(cpu);
  return vl;
}

LLVMModuleRef emit_llvm_module(const LoopModule *m, LLVMContextRef ctx, LLVMTargetMachineRef tm, char *err,
                               size_t errlen) {
  LL L;
  memset(&L, 0, sizeof L);
  L.m = m;
  L.C = ctx;
  L.err = err;
  L.errlen = errlen;
  L.M = LLVMModuleCreateWithNameInContext(m->name, ctx);
  L.B = LLVMCreateBuilderInContext(ctx);
  char *triple = LLVMGetTargetMachineTriple(tm);
  LLVMSetTarget(L.M, triple);
  LLVMDisposeMessage(triple);
  L.td = LLVMCreateTargetDataLayout(tm);
  LLVMSetModuleDataLayout(L.M, L.td);
  char *feat = LLVMGetTargetMachineFeatureString(tm);
  int cpu_vl = cpu_vector_width(tm, feat);
  if (has_feature(feat, "+avx512f") || cpu_vl == 16)
    L.vl = 16;
  else if (has_feature(feat, "+avx") || cpu_vl == 8)
    L.vl = 8;
  else
    L.vl = 4;
  LLVMDisposeMessage(feat);
  L.bufp = xcalloc((size_t)m->bufs.len + 1, sizeof *L.bufp);
  if (LLVMPointerSize(L.td) != 8) ll_fail(&L, "not supported by the LLVM backend: targets without 64-bit pointers");
  if (!L.failed) {
    ll_build_types(&L);
    build_helpers(&L);
    L.g_params = spec_table(&L, "params", m->params, m->nparams);
    L.g_inputs = spec_table(&L, "inputs", m->inputs, m->ninputs);
    L.g_outputs = spec_table(&L, "outputs", m->outputs, m->noutputs);
    ll_emit_kernels(&L, &m->kernels);
  }
  if (!L.failed) ll_emit_api(&L);
  ll_link_kernels(&L);
  free(L.bufp);
  free(L.kfn);
  LLVMDisposeBuilder(L.B);
  LLVMDisposeTargetData(L.td);
  if (L.failed) {
    LLVMDisposeModule(L.M);
    return NULL;
  }
  return ll_verify_optimize(L.M, tm, "default<O2>", 1,
                            "LLVM backend: the generated module", err, errlen);
}

/* Verifies M (LLVMVerifyModule) and runs LLVM's pipeline `pipeline` on it with
 * loop and SLP vectorization (and loop unrolling when unroll). Returns M, or
 * NULL with the reason in err ("WHAT does not verify: ...", "WHAT: optimization
 * failed: ...") after disposing M. */
LLVMModuleRef ll_verify_optimize(LLVMModuleRef M, LLVMTargetMachineRef tm, const char *pipeline, int unroll,
                                 const char *what, char *err, size_t errlen) {
  char *msg = NULL;
  if (LLVMVerifyModule(M, LLVMReturnStatusAction, &msg)) {
    snprintf(err, errlen, "%s does not verify: %.600s", what, msg ? msg : "?");
    LLVMDisposeMessage(msg);
    LLVMDisposeModule(M);
    return NULL;
  }
  LLVMDisposeMessage(msg);
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
  LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
  if (unroll) LLVMPassBuilderOptionsSetLoopUnrolling(po, 1);
  LLVMErrorRef e = LLVMRunPasses(M, pipeline, tm, po);
  LLVMDisposePassBuilderOptions(po);
  if (e) {
    char *em = LLVMGetErrorMessage(e);
    snprintf(err, errlen, "%s: optimization failed: %s", what, em);
    LLVMDisposeErrorMessage(em);
    LLVMDisposeModule(M);
    return NULL;
  }
  return M;
}
