/* emit_llvm_knobs.c — the run-time thresholds and capacities of skips and
 * routes in the LLVM backend, as codegen/c/emit_knobs.c writes them for C:
 * the model-struct fields `double skip_tau[n], skip_cap[n]` (after the error
 * record and a --count build's counters, as NAME.h declares them when the
 * model has skip kernels), their
 * compile-time defaults stored by init, and the API NAME_skip_ops / _kind /
 * _line / _col / _skip_threshold / _set_skip_threshold / _route_capacity /
 * _set_route_capacity with the C backend's checks and messages. The skip
 * kernels (emit_llvm_ctl.c) read the values from the model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit_knobs.h"
#include "emit_llvm_int.h"
#include "gat_runtime.h"

enum { KNOB_NONE = 0, KNOB_CUT = 1, KNOB_CAPACITY = 2, KNOB_TOPK = 3 };

static int knob_kind(const LoopKernel *k) {
  if (k->reals[0] > 0) return KNOB_CAPACITY;
  if (k->reals[1] > 0) return KNOB_TOPK;
  return k->skip_cmp > 0 ? KNOB_CUT : KNOB_NONE;
}

/* the skip kernels in the pre-order of emit_knobs.c (emit_knobs_index numbers them) */
static void collect(const PtrVec *ks, const LoopKernel **out, int *n) {
  for (int j = 0; j < ks->len; j++) {
    const LoopKernel *k = ks->data[j];
    if (k->kind == LK_SKIP) out[(*n)++] = k;
    for (int r = 0; r < k->nregions; r++) collect(&k->regions[r]->kernels, out, n);
  }
}

LLVMValueRef ll_knob_ptr(LL *L, LLVMValueRef model, int cap, LLVMValueRef i) {
  LLVMValueRef idx[3] = {ll_i32(L, 0), ll_i32(L, ll_knob_field(L) + (cap ? 1 : 0)), i};
  return LLVMBuildInBoundsGEP2(L->B, L->t_model, model, idx, 3, "");
}

static LLVMValueRef const_table(LL *L, const char *name, LLVMTypeRef t, LLVMValueRef *vals, int n) {
  LLVMValueRef init = LLVMConstArray(t, vals, (unsigned)n);
  LLVMValueRef g = LLVMAddGlobal(L->M, LLVMTypeOf(init), name);
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  return g;
}

static LLVMValueRef tab_load(LL *L, LLVMValueRef g, LLVMTypeRef t, int n, LLVMValueRef i64) {
  LLVMValueRef idx[2] = {ll_i64(L, 0), i64};
  return LLVMBuildLoad2(L->B, t, LLVMBuildInBoundsGEP2(L->B, LLVMArrayType(t, (unsigned)n), g, idx, 2, ""), "");
}

static LLVMValueRef begin(LL *L, const char *N, const char *what, LLVMTypeRef ret, LLVMTypeRef *p, int np) {
  char name[512];
  snprintf(name, sizeof name, "%s_%s", N, what);
  LLVMValueRef f = ll_func(L, name, LLVMFunctionType(ret, p, (unsigned)np, 0));
  L->fn = f;
  LLVMPositionBuilderAtEnd(L->B, LLVMAppendBasicBlockInContext(L->C, f, "entry"));
  return f;
}

/* if (bad) return gat_error_set(&m->err, GAT_ERR_ARGUMENT, fmt, args...) */
static void fail_if(LL *L, LLVMValueRef bad, LLVMValueRef model, const char *fmt, LLVMValueRef *args, int nargs) {
  LLVMBasicBlockRef e = ll_block(L, "bad"), ok = ll_block(L, "ok");
  LLVMBuildCondBr(L->B, bad, e, ok);
  LLVMPositionBuilderAtEnd(L->B, e);
  ll_error_return(L, model, GAT_ERR_ARGUMENT, fmt, args, nargs);
  LLVMPositionBuilderAtEnd(L->B, ok);
}

static void ret_if_null(LL *L, LLVMValueRef p, LLVMValueRef v) {
  LLVMBasicBlockRef e = ll_block(L, "null"), ok = ll_block(L, "ok");
  LLVMBuildCondBr(L->B, LLVMBuildIsNull(L->B, p, ""), e, ok);
  LLVMPositionBuilderAtEnd(L->B, e);
  LLVMBuildRet(L->B, v);
  LLVMPositionBuilderAtEnd(L->B, ok);
}

/* 0 <= i < n */
static LLVMValueRef in_range(LL *L, LLVMValueRef i, int n) {
  return LLVMBuildAnd(L->B, LLVMBuildICmp(L->B, LLVMIntSGE, i, ll_i32(L, 0), ""),
                      LLVMBuildICmp(L->B, LLVMIntSLT, i, ll_i32(L, n), ""), "");
}

static LLVMValueRef fc(LL *L, LLVMRealPredicate p, LLVMValueRef a, double b) {
  return LLVMBuildFCmp(L->B, p, a, ll_f64(L, b), "");
}

void ll_knobs_init(LL *L, LLVMValueRef model) {
  int n = emit_knobs_n(L->m);
  if (n == 0) return;
  const LoopKernel **ks = xcalloc((size_t)n, sizeof *ks);
  int cnt = 0;
  collect(&L->m->kernels, ks, &cnt);
  for (int i = 0; i < cnt; i++) {
    int kind = knob_kind(ks[i]);
    double tau = kind == KNOB_CUT ? ks[i]->reals[3] : kind == KNOB_NONE ? -1.0 : ks[i]->reals[2];
    double cap = kind == KNOB_CAPACITY ? ks[i]->reals[0] : kind == KNOB_TOPK ? ks[i]->reals[1] : -1.0;
    LLVMBuildStore(L->B, ll_f64(L, tau), ll_knob_ptr(L, model, 0, ll_i32(L, i)));
    LLVMBuildStore(L->B, ll_f64(L, cap), ll_knob_ptr(L, model, 1, ll_i32(L, i)));
  }
  free(ks);
}

void ll_emit_knobs(LL *L) {
  const LoopModule *m = L->m;
  const char *N = m->name;
  int n = emit_knobs_n(m);
  const LoopKernel **ks = xcalloc((size_t)(n > 0 ? n : 1), sizeof *ks);
  int cnt = 0;
  collect(&m->kernels, ks, &cnt);
  LLVMTypeRef pm = L->t_pmodel, ti = L->ti32, td = L->tf64;
  LLVMValueRef f;

  f = begin(L, N, "skip_ops", ti, NULL, 0);
  LLVMBuildRet(L->B, ll_i32(L, n));

  LLVMValueRef g_kind = NULL, g_line = NULL, g_col = NULL, g_ikind = NULL;
  if (n > 0) {
    static const char *const names[4] = {"skip", "threshold", "route", "route_top_k"};
    LLVMValueRef *kv = xcalloc((size_t)n, sizeof *kv), *lv = xcalloc((size_t)n, sizeof *lv);
    LLVMValueRef *cv = xcalloc((size_t)n, sizeof *cv), *iv = xcalloc((size_t)n, sizeof *iv);
    for (int i = 0; i < n; i++) {
      int kind = knob_kind(ks[i]);
      kv[i] = ll_cstr(L, names[kind]);
      iv[i] = ll_i32(L, kind);
      lv[i] = ll_i32(L, ks[i]->line);
      cv[i] = ll_i32(L, ks[i]->col);
    }
    g_kind = const_table(L, "skip_kind_names", L->tp8, kv, n);
    g_ikind = const_table(L, "skip_kind_tab", ti, iv, n);
    g_line = const_table(L, "skip_line_tab", ti, lv, n);
    g_col = const_table(L, "skip_col_tab", ti, cv, n);
    free(kv);
    free(lv);
    free(cv);
    free(iv);
  }
  /* skip_kind / skip_line / skip_col (int i): the tables, "" / 0 out of range */
  struct {
    const char *what;
    LLVMValueRef g;
    LLVMTypeRef t;
  } tabs[3] = {{"skip_kind", g_kind, L->tp8}, {"skip_line", g_line, ti}, {"skip_col", g_col, ti}};
  for (int t = 0; t < 3; t++) {
    f = begin(L, N, tabs[t].what, tabs[t].t, &ti, 1);
    LLVMValueRef none = t == 0 ? ll_cstr(L, "") : ll_i32(L, 0);
    if (n == 0) {
      LLVMBuildRet(L->B, none);
      continue;
    }
    LLVMValueRef i = LLVMGetParam(f, 0);
    LLVMBasicBlockRef yes = ll_block(L, "in"), no = ll_block(L, "out");
    LLVMBuildCondBr(L->B, in_range(L, i, n), yes, no);
    LLVMPositionBuilderAtEnd(L->B, no);
    LLVMBuildRet(L->B, none);
    LLVMPositionBuilderAtEnd(L->B, yes);
    LLVMBuildRet(L->B, tab_load(L, tabs[t].g, tabs[t].t, n, LLVMBuildSExt(L->B, i, L->ti64, "")));
  }
  /* skip_threshold / route_capacity (const NAME *m, int i): the model's value, -1 without one */
  LLVMTypeRef pi[2] = {pm, ti};
  for (int cap = 0; cap < 2; cap++) {
    f = begin(L, N, cap ? "route_capacity" : "skip_threshold", td, pi, 2);
    if (n == 0) {
      LLVMBuildRet(L->B, ll_f64(L, -1.0));
      continue;
    }
    LLVMValueRef mm = LLVMGetParam(f, 0), i = LLVMGetParam(f, 1);
    LLVMValueRef ok = LLVMBuildAnd(L->B, LLVMBuildIsNotNull(L->B, mm, ""), in_range(L, i, n), "");
    LLVMBasicBlockRef yes = ll_block(L, "in"), no = ll_block(L, "out");
    LLVMBuildCondBr(L->B, ok, yes, no);
    LLVMPositionBuilderAtEnd(L->B, no);
    LLVMBuildRet(L->B, ll_f64(L, -1.0));
    LLVMPositionBuilderAtEnd(L->B, yes);
    LLVMBuildRet(L->B, LLVMBuildLoad2(L->B, td, ll_knob_ptr(L, mm, cap, LLVMBuildSExt(L->B, i, L->ti64, "")), ""));
  }
  /* set_skip_threshold / set_route_capacity (NAME *m, int i, double v) */
  LLVMTypeRef pid[3] = {pm, ti, td};
  char range_fmt[96];
  snprintf(range_fmt, sizeof range_fmt, "skip %%d: the model has %d skips/routes", n);
  for (int cap = 0; cap < 2; cap++) {
    f = begin(L, N, cap ? "set_route_capacity" : "set_skip_threshold", ti, pid, 3);
    LLVMValueRef mm = LLVMGetParam(f, 0), i = LLVMGetParam(f, 1), v = LLVMGetParam(f, 2);
    ret_if_null(L, mm, ll_i32(L, GAT_ERR_ARGUMENT));
    if (n == 0) {
      ll_error_return(L, mm, GAT_ERR_ARGUMENT, "skip %d: the model has no skip or route", &i, 1);
      continue;
    }
    fail_if(L, LLVMBuildNot(L->B, in_range(L, i, n), ""), mm, range_fmt, &i, 1);
    LLVMValueRef i64 = LLVMBuildSExt(L->B, i, L->ti64, "");
    LLVMValueRef k = tab_load(L, g_ikind, ti, n, i64);
    LLVMValueRef il[2] = {i, tab_load(L, g_line, ti, n, i64)};
    LLVMValueRef iv[2] = {i, v};
    LLVMValueRef slot = ll_knob_ptr(L, mm, cap, i64);
    if (!cap) {
      fail_if(L, LLVMBuildICmp(L->B, LLVMIntEQ, k, ll_i32(L, KNOB_NONE), ""), mm,
              "skip %d (line %d) has no threshold: its condition is not 'score < tau'", il, 2);
      LLVMTypeRef t1 = td;
      LLVMValueRef av = ll_call(L, "llvm.fabs.f64", td, &t1, 1, &v);
      fail_if(L, LLVMBuildOr(L->B, fc(L, LLVMRealUNO, v, 0.0), fc(L, LLVMRealOGT, av, 3.4e38), ""), mm,
              "skip %d: threshold is not a finite f32", &i, 1);
      LLVMBasicBlockRef cut = ll_block(L, "cut"), route = ll_block(L, "route");
      LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntEQ, k, ll_i32(L, KNOB_CUT), ""), cut, route);
      LLVMPositionBuilderAtEnd(L->B, cut);
      LLVMBuildStore(L->B, LLVMBuildFPExt(L->B, LLVMBuildFPTrunc(L->B, v, L->tf32, ""), td, ""), slot);
      LLVMBuildRet(L->B, ll_i32(L, GAT_OK));
      LLVMPositionBuilderAtEnd(L->B, route);
      fail_if(L, fc(L, LLVMRealOGT, v, 1.0), mm, "route %d: threshold %g compares with sigmoid(score); it must be <= 1",
              iv, 2);
      LLVMBuildStore(L->B, LLVMBuildSelect(L->B, fc(L, LLVMRealOLT, v, 0.0), ll_f64(L, -1.0), v, ""), slot);
    } else {
      fail_if(L, LLVMBuildICmp(L->B, LLVMIntSLT, k, ll_i32(L, KNOB_CAPACITY), ""), mm,
              "skip %d (line %d) is not a route: it has no capacity", il, 2);
      LLVMValueRef okc = LLVMBuildAnd(L->B, fc(L, LLVMRealOGT, v, 0.0), fc(L, LLVMRealOLE, v, 1.0), "");
      fail_if(L, LLVMBuildAnd(L->B, LLVMBuildICmp(L->B, LLVMIntEQ, k, ll_i32(L, KNOB_CAPACITY), ""), LLVMBuildNot(L->B, okc, ""), ""),
              mm, "route %d: capacity %g must be in (0, 1]", iv, 2);
      LLVMTypeRef t1 = td;
      LLVMValueRef fl = ll_call(L, "llvm.floor.f64", td, &t1, 1, &v);
      LLVMValueRef okk = LLVMBuildAnd(L->B, LLVMBuildAnd(L->B, fc(L, LLVMRealOGE, v, 1.0), fc(L, LLVMRealOLE, v, 2147483647.0), ""),
                                      LLVMBuildFCmp(L->B, LLVMRealOEQ, fl, v, ""), "");
      fail_if(L, LLVMBuildAnd(L->B, LLVMBuildICmp(L->B, LLVMIntEQ, k, ll_i32(L, KNOB_TOPK), ""), LLVMBuildNot(L->B, okk, ""), ""),
              mm, "route %d: top(k) needs an integer k >= 1, not %g", iv, 2);
      LLVMBuildStore(L->B, v, slot);
    }
    LLVMBuildRet(L->B, ll_i32(L, GAT_OK));
  }
  free(ks);
}
