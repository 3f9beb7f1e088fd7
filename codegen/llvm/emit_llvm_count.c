/* emit_llvm_count.c — the instrumented builds in the LLVM backend, as the C
 * backend writes them:
 *
 * --count (codegen/c/emit_count.h): the model-struct field `uint64_t
 * count[NAME_COUNT_SLOTS]` (right after the error record, before the skip
 * knobs, where NAME.h puts it), the increments of the mixture and skip
 * kernels (emit_llvm_ctl.c calls ll_count_add at the points emit_c.c
 * counts), and NAME_count_ops / _kind / _line / _col / _origin / _regions /
 * _tokens / _rows / _calls / _clear with the C definitions' range checks.
 *
 * --profile (emit_c.c): internal globals NAME_prof_ns / NAME_prof_calls /
 * NAME_prof_names with one entry per top-level kernel (+1), gat_time_ns()
 * around each top-level kernel call of NAME_forward (ll_profile_begin/_end,
 * nothing added when the kernel fails), and NAME_profile_count / _name / _ns /
 * _calls / _clear. The kernel names are the C backend's function names.
 *
 * A build with neither flag emits none of this. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit_c.h"
#include "emit_count.h"
#include "emit_llvm_int.h"
#include "gat_runtime.h"

int ll_knob_field(const LL *L) { return L->m->count ? 6 : 5; }

LLVMTypeRef ll_count_type(LL *L) {
  int n = emit_count_nslots(L->m);
  return LLVMArrayType(L->ti64, (unsigned)(n > 0 ? n : 1));
}

/* &model->count[slot] (slot an i64 value) */
static LLVMValueRef count_ptr(LL *L, LLVMValueRef model, LLVMValueRef slot) {
  LLVMValueRef idx[3] = {ll_i32(L, 0), ll_i32(L, 5), slot};
  return LLVMBuildInBoundsGEP2(L->B, L->t_model, model, idx, 3, "");
}

void ll_count_add(LL *L, int slot, LLVMValueRef v) {
  if (slot < 0 || !L->m->count) return;
  LLVMValueRef p = count_ptr(L, ll_model(L), ll_i64(L, slot));
  LLVMBuildStore(L->B, LLVMBuildAdd(L->B, LLVMBuildLoad2(L->B, L->ti64, p, ""), v, ""), p);
}

static LLVMValueRef table(LL *L, const char *N, const char *what, LLVMTypeRef t, LLVMValueRef *vals, int n, int constant) {
  char name[512];
  snprintf(name, sizeof name, "%s_%s", N, what);
  LLVMValueRef init = vals ? LLVMConstArray(t, vals, (unsigned)n) : LLVMConstNull(LLVMArrayType(t, (unsigned)n));
  LLVMValueRef g = LLVMAddGlobal(L->M, LLVMTypeOf(init), name);
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, constant);
  LLVMSetLinkage(g, constant ? LLVMPrivateLinkage : LLVMInternalLinkage);
  return g;
}

/* g[i] of a [n x t] global, i an i32 value */
static LLVMValueRef tab_ptr(LL *L, LLVMValueRef g, LLVMTypeRef t, int n, LLVMValueRef i) {
  LLVMValueRef idx[2] = {ll_i64(L, 0), LLVMBuildSExt(L->B, i, L->ti64, "")};
  return LLVMBuildInBoundsGEP2(L->B, LLVMArrayType(t, (unsigned)n), g, idx, 2, "");
}

static LLVMValueRef tab_load(LL *L, LLVMValueRef g, LLVMTypeRef t, int n, LLVMValueRef i) {
  return LLVMBuildLoad2(L->B, t, tab_ptr(L, g, t, n, i), "");
}

static LLVMValueRef begin(LL *L, const char *N, const char *what, LLVMTypeRef ret, LLVMTypeRef *p, int np) {
  char name[512];
  snprintf(name, sizeof name, "%s_%s", N, what);
  LLVMValueRef f = ll_func(L, name, LLVMFunctionType(ret, p, (unsigned)np, 0));
  L->fn = f;
  LLVMPositionBuilderAtEnd(L->B, LLVMAppendBasicBlockInContext(L->C, f, "entry"));
  return f;
}

/* if (!ok) return none; continues where ok holds */
static void ret_unless(LL *L, LLVMValueRef ok, LLVMValueRef none) {
  LLVMBasicBlockRef yes = ll_block(L, "in"), no = ll_block(L, "out");
  LLVMBuildCondBr(L->B, ok, yes, no);
  LLVMPositionBuilderAtEnd(L->B, no);
  LLVMBuildRet(L->B, none);
  LLVMPositionBuilderAtEnd(L->B, yes);
}

/* 0 <= i < n (i32) */
static LLVMValueRef in_range(LL *L, LLVMValueRef i, LLVMValueRef n) {
  return LLVMBuildAnd(L->B, LLVMBuildICmp(L->B, LLVMIntSGE, i, ll_i32(L, 0), ""), LLVMBuildICmp(L->B, LLVMIntSLT, i, n, ""),
                      "");
}

void ll_emit_count(LL *L) {
  const LoopModule *m = L->m;
  const char *N = m->name;
  if (!m->count) return;
  int nops = emit_count_nops(m), n = nops > 0 ? nops : 1;
  const LoopKernel **ks = xcalloc((size_t)n, sizeof *ks);
  int *bases = xcalloc((size_t)n, sizeof *bases);
  emit_count_list(m, ks, bases);
  LLVMValueRef *kind = xcalloc((size_t)n, sizeof *kind), *line = xcalloc((size_t)n, sizeof *line);
  LLVMValueRef *col = xcalloc((size_t)n, sizeof *col), *origin = xcalloc((size_t)n, sizeof *origin);
  LLVMValueRef *regions = xcalloc((size_t)n, sizeof *regions), *base = xcalloc((size_t)n, sizeof *base);
  for (int i = 0; i < n; i++) {
    const LoopKernel *k = i < nops ? ks[i] : NULL;
    kind[i] = ll_cstr(L, !k ? "" : k->kind == LK_MIXTURE ? "mixture" : "skip");
    line[i] = ll_i32(L, k ? k->line : 0);
    col[i] = ll_i32(L, k ? k->col : 0);
    origin[i] = ll_cstr(L, k && k->origin ? k->origin : "");
    regions[i] = ll_i32(L, k ? k->nregions : 0);
    base[i] = ll_i32(L, k ? bases[i] : 0);
  }
  LLVMTypeRef ti = L->ti32, tp = L->tp8, pm = L->t_pmodel;
  LLVMValueRef g_kind = table(L, N, "cnt_kind", tp, kind, n, 1), g_line = table(L, N, "cnt_line", ti, line, n, 1);
  LLVMValueRef g_col = table(L, N, "cnt_col", ti, col, n, 1), g_origin = table(L, N, "cnt_origin", tp, origin, n, 1);
  LLVMValueRef g_regions = table(L, N, "cnt_regions", ti, regions, n, 1), g_base = table(L, N, "cnt_base", ti, base, n, 1);
  free(kind), free(line), free(col), free(origin), free(regions), free(base), free(ks), free(bases);
  LLVMValueRef nv = ll_i32(L, nops), f;

  f = begin(L, N, "count_ops", ti, NULL, 0);
  LLVMBuildRet(L->B, nv);
  /* count_kind / _line / _col / _origin / _regions (int op): the tables, "" / 0 out of range */
  struct {
    const char *what;
    LLVMValueRef g;
    LLVMTypeRef t;
  } tabs[5] = {{"count_kind", g_kind, tp},
               {"count_line", g_line, ti},
               {"count_col", g_col, ti},
               {"count_origin", g_origin, tp},
               {"count_regions", g_regions, ti}};
  for (int t = 0; t < 5; t++) {
    f = begin(L, N, tabs[t].what, tabs[t].t, &ti, 1);
    LLVMValueRef op = LLVMGetParam(f, 0);
    ret_unless(L, in_range(L, op, nv), tabs[t].t == tp ? ll_cstr(L, "") : ll_i32(L, 0));
    LLVMBuildRet(L->B, tab_load(L, tabs[t].g, tabs[t].t, n, op));
  }
  /* count_tokens (const NAME *m, int op) */
  LLVMTypeRef p2[2] = {pm, ti};
  f = begin(L, N, "count_tokens", L->ti64, p2, 2);
  {
    LLVMValueRef mm = LLVMGetParam(f, 0), op = LLVMGetParam(f, 1);
    ret_unless(L, LLVMBuildAnd(L->B, LLVMBuildIsNotNull(L->B, mm, ""), in_range(L, op, nv), ""), ll_i64(L, 0));
    LLVMValueRef b = LLVMBuildSExt(L->B, tab_load(L, g_base, ti, n, op), L->ti64, "");
    LLVMBuildRet(L->B, LLVMBuildLoad2(L->B, L->ti64, count_ptr(L, mm, b), ""));
  }
  /* count_rows / count_calls (const NAME *m, int op, int region): slot base + 1 (+1) + 2 region */
  LLVMTypeRef p3[3] = {pm, ti, ti};
  for (int calls = 0; calls < 2; calls++) {
    f = begin(L, N, calls ? "count_calls" : "count_rows", L->ti64, p3, 3);
    LLVMValueRef mm = LLVMGetParam(f, 0), op = LLVMGetParam(f, 1), r = LLVMGetParam(f, 2);
    ret_unless(L, LLVMBuildAnd(L->B, LLVMBuildIsNotNull(L->B, mm, ""), in_range(L, op, nv), ""), ll_i64(L, 0));
    ret_unless(L, in_range(L, r, tab_load(L, g_regions, ti, n, op)), ll_i64(L, 0));
    LLVMValueRef s = LLVMBuildAdd(L->B, tab_load(L, g_base, ti, n, op),
                                  LLVMBuildAdd(L->B, ll_i32(L, 1 + calls), LLVMBuildMul(L->B, ll_i32(L, 2), r, ""), ""), "");
    LLVMBuildRet(L->B, LLVMBuildLoad2(L->B, L->ti64, count_ptr(L, mm, LLVMBuildSExt(L->B, s, L->ti64, "")), ""));
  }
  /* count_clear (NAME *m) */
  f = begin(L, N, "count_clear", L->tv, &pm, 1);
  {
    LLVMValueRef mm = LLVMGetParam(f, 0);
    LLVMBasicBlockRef yes = ll_block(L, "clear"), no = ll_block(L, "done");
    LLVMBuildCondBr(L->B, LLVMBuildIsNotNull(L->B, mm, ""), yes, no);
    LLVMPositionBuilderAtEnd(L->B, yes);
    LLVMTypeRef t3[3] = {L->tp8, L->ti32, L->ti64};
    LLVMValueRef v3[3] = {LLVMBuildBitCast(L->B, ll_model_field(L, mm, 5), L->tp8, ""), ll_i32(L, 0),
                          ll_i64(L, (int64_t)LLVMABISizeOfType(L->td, ll_count_type(L)))};
    ll_call(L, "memset", L->tp8, t3, 3, v3);
    LLVMBuildBr(L->B, no);
    LLVMPositionBuilderAtEnd(L->B, no);
    LLVMBuildRetVoid(L->B);
  }
}

/* ---- --profile ------------------------------------------------------------------------------ */
/* emit_c.c's name of the function of top-level kernel k */
static void c_kernel_name(StrBuf *sb, const LoopModule *m, const LoopKernel *k) {
  sb_printf(sb, "%s_k%d_", m->name, k->id);
  if (k->origin) {
    const char *o = strrchr(k->origin, '.');
    emit_c_ident(sb, o && o[1] ? o + 1 : k->origin);
    sb_append(sb, "_");
  }
  sb_append(sb, k->opname ? k->opname : "op");
  if (k->line > 0) sb_printf(sb, "_L%d", k->line);
}

static LLVMValueRef prof_global(LL *L, const char *what) {
  char name[512];
  snprintf(name, sizeof name, "%s_%s", L->m->name, what);
  return LLVMGetNamedGlobal(L->M, name);
}

void ll_emit_profile(LL *L) {
  const LoopModule *m = L->m;
  const char *N = m->name;
  if (!m->profile) return;
  int n = m->kernels.len + 1;
  LLVMValueRef *names = xcalloc((size_t)n, sizeof *names);
  for (int i = 0; i < n; i++) {
    StrBuf kn = {0};
    if (i < m->kernels.len) c_kernel_name(&kn, m, m->kernels.data[i]);
    names[i] = ll_cstr(L, sb_cstr(&kn));
    sb_free(&kn);
  }
  LLVMValueRef g_ns = table(L, N, "prof_ns", L->ti64, NULL, n, 0), g_calls = table(L, N, "prof_calls", L->ti64, NULL, n, 0);
  LLVMValueRef g_names = table(L, N, "prof_names", L->tp8, names, n, 1);
  free(names);
  LLVMTypeRef ti = L->ti32;
  LLVMValueRef f = begin(L, N, "profile_count", ti, NULL, 0);
  LLVMBuildRet(L->B, ll_i32(L, m->kernels.len));
  /* profile_name / _ns / _calls (int i): no range check, as in NAME.c */
  f = begin(L, N, "profile_name", L->tp8, &ti, 1);
  LLVMBuildRet(L->B, tab_load(L, g_names, L->tp8, n, LLVMGetParam(f, 0)));
  f = begin(L, N, "profile_ns", L->ti64, &ti, 1);
  LLVMBuildRet(L->B, tab_load(L, g_ns, L->ti64, n, LLVMGetParam(f, 0)));
  f = begin(L, N, "profile_calls", L->ti64, &ti, 1);
  LLVMBuildRet(L->B, tab_load(L, g_calls, L->ti64, n, LLVMGetParam(f, 0)));
  begin(L, N, "profile_clear", L->tv, NULL, 0);
  for (int g = 0; g < 2; g++) {
    LLVMTypeRef t3[3] = {L->tp8, L->ti32, L->ti64};
    LLVMValueRef v3[3] = {LLVMBuildBitCast(L->B, g ? g_calls : g_ns, L->tp8, ""), ll_i32(L, 0), ll_i64(L, 8 * (int64_t)n)};
    ll_call(L, "memset", L->tp8, t3, 3, v3);
  }
  LLVMBuildRetVoid(L->B);
}

LLVMValueRef ll_profile_begin(LL *L) {
  if (!L->m->profile) return NULL;
  return ll_call(L, "gat_time_ns", L->ti64, NULL, 0, NULL);
}

void ll_profile_end(LL *L, int i, LLVMValueRef t0) {
  if (!L->m->profile || !t0) return;
  int n = L->m->kernels.len + 1;
  LLVMValueRef dt = LLVMBuildSub(L->B, ll_call(L, "gat_time_ns", L->ti64, NULL, 0, NULL), t0, "");
  LLVMValueRef vals[2] = {dt, ll_i64(L, 1)};
  const char *what[2] = {"prof_ns", "prof_calls"};
  for (int g = 0; g < 2; g++) {
    LLVMValueRef p = tab_ptr(L, prof_global(L, what[g]), L->ti64, n, ll_i32(L, i));
    LLVMBuildStore(L->B, LLVMBuildAdd(L->B, LLVMBuildLoad2(L->B, L->ti64, p, ""), vals[g], ""), p);
  }
}
