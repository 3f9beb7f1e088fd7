/* emit_llvm_ctl.c — the LLVM backend's kernel functions and the control
 * kernels around regions: LK_SCAN (a loop over t running its region, then
 * the stacked emits and the double-buffered state copies), LK_MIXTURE
 * (route rows to experts, run each expert's region on its rows, add back in
 * double weighted by the gate) and LK_SKIP (run a region on the rows whose
 * condition is 0), plus LK_COPY. Same statements as codegen/c/emit_c.c, the
 * --count increments (emit_llvm_count.c) included. */
#include <string.h>

#include "emit_count.h"
#include "emit_knobs.h"
#include "emit_llvm_int.h"
#include "gat_runtime.h"
#include "kernels_scan.h"

static void kernel_name(StrBuf *sb, const LoopModule *m, const LoopKernel *k) {
  sb_printf(sb, "%s_k%d_%s", m->name, k->id, k->opname ? k->opname : "op");
  if (k->line > 0) sb_printf(sb, "_L%d", k->line);
}

void ll_call_kernel(LL *L, const LoopKernel *k) {
  if (k->id < 0 || k->id >= L->nkfn || !L->kfn[k->id]) {
    ll_fail(L, "LLVM backend: kernel k%d has no function", k->id);
    return;
  }
  LLVMValueRef st = LLVMBuildCall2(L->B, L->t_kern, L->kfn[k->id], &L->ctx, 1, "st");
  LLVMBasicBlockRef bad = ll_block(L, "fail"), ok = ll_block(L, "ok");
  LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntNE, st, ll_i32(L, GAT_OK), ""), bad, ok);
  LLVMPositionBuilderAtEnd(L->B, bad);
  LLVMBuildRet(L->B, st);
  LLVMPositionBuilderAtEnd(L->B, ok);
}

static void region_calls(LL *L, const LoopRegion *r) {
  for (int i = 0; i < r->kernels.len && !L->failed; i++) ll_call_kernel(L, r->kernels.data[i]);
}

static const LoopBuf *lbuf(LL *L, int id) {
  if (id < 0 || id >= L->m->bufs.len) {
    ll_fail(L, "LLVM backend: buffer %d out of range", id);
    return L->m->bufs.data[0];
  }
  return loop_buf(L->m, id);
}

static LLVMValueRef bp(LL *L, int id) {
  if (id < 0 || id >= L->m->bufs.len || !L->bufp[id]) {
    ll_fail(L, "LLVM backend: buffer %d used but not bound", id);
    return LLVMConstNull(L->tpf32);
  }
  return L->bufp[id];
}

/* &buf[i] */
static LLVMValueRef at(LL *L, int id, LLVMValueRef i) { return ll_gep(L, ll_buf_elt(L, lbuf(L, id)), bp(L, id), i); }

static LLVMValueRef mul(LL *L, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildMul(L->B, a, b, ""); }
static LLVMValueRef add(LL *L, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(L->B, a, b, ""); }

static void set_tvar(LL *L, int tvar, LLVMValueRef n) {
  LLVMValueRef p;
  if (tvar == 0) {
    p = LLVMBuildStructGEP2(L->B, L->t_ctx, L->ctx, 2, "");
  } else {
    LLVMValueRef idx[3] = {ll_i32(L, 0), ll_i32(L, 3), ll_i32(L, tvar)};
    p = LLVMBuildInBoundsGEP2(L->B, L->t_ctx, L->ctx, idx, 3, "");
  }
  LLVMBuildStore(L->B, n, p);
}

static void emit_scan(LL *L, const LoopKernel *k) {
  if (k->nregions < 1 || k->args[0] < 0) {
    ll_fail(L, "LLVM backend: malformed scan k%d", k->id);
    return;
  }
  const LoopRegion *r = k->regions[0];
  if (k->scan_chunk) { /* -O2 pass_chunk: prefill in chunks (codegen/kernels/scan.c), as emit_c.c */
    LLVMValueRef T = ll_tvar(L, k->tvar);
    LLVMBasicBlockRef yes = ll_block(L, "chunked"), no = ll_block(L, "per_token");
    LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSGE, T, ll_i64(L, KERNELS_SCAN_MIN_T), ""), yes, no);
    LLVMPositionBuilderAtEnd(L->B, yes);
    LLVMValueRef p[8] = {bp(L, k->args[2]), bp(L, k->args[3]), bp(L, k->args[4]), bp(L, k->args[5]),
                         k->args[6] >= 0 ? bp(L, k->args[6]) : NULL, bp(L, k->state_bufs[0]), bp(L, k->xs[0]),
                         bp(L, k->args[7])};
    ll_scan_chunk_call(L, k, T, p);
    LLVMBuildRet(L->B, ll_i32(L, GAT_OK));
    LLVMPositionBuilderAtEnd(L->B, no);
  }
  LLLoop lp;
  ll_loop_begin(L, &lp, ll_tvar(L, k->tvar), "t");
  LLVMValueRef t = lp.iv;
  LLVMBuildStore(L->B, LLVMBuildTrunc(L->B, t, L->ti32, ""), LLVMBuildBitCast(L->B, bp(L, k->args[0]), L->tpi32, ""));
  region_calls(L, r);
  for (int i = 0; i < k->nxs; i++) {
    const LoopBuf *emit = lbuf(L, r->yields[k->nstates + i]);
    LLVMValueRef ee = ll_buf_elems_from(L, emit, 0);
    ll_memcpy(L, at(L, k->xs[i], mul(L, t, ee)), bp(L, emit->id), ll_bytes(L, emit, ee), 0);
  }
  for (int i = 0; i < k->nstates; i++) {
    if (!k->state_tmp || k->state_tmp[i] < 0) continue;
    const LoopBuf *sb = lbuf(L, k->state_bufs[i]);
    ll_memcpy(L, bp(L, k->state_tmp[i]), bp(L, r->yields[i]), ll_bytes(L, sb, ll_buf_elems_from(L, sb, 0)), 0);
  }
  for (int i = 0; i < k->nstates; i++) {
    int from = k->state_tmp && k->state_tmp[i] >= 0 ? k->state_tmp[i] : r->yields[i];
    if (from == k->state_bufs[i]) continue;
    const LoopBuf *sb = lbuf(L, k->state_bufs[i]);
    ll_memcpy(L, bp(L, k->state_bufs[i]), bp(L, from), ll_bytes(L, sb, ll_buf_elems_from(L, sb, 0)), 1);
  }
  ll_loop_end(L, &lp);
}

/* copies the n routed rows of every x into the region's arguments, sets the
 * region's row count, runs the region */
static void gather_rows(LL *L, const LoopKernel *k, const LoopRegion *r, LLVMValueRef n, int rows) {
  if (r->nargs < k->nxs) {
    ll_fail(L, "LLVM backend: region of k%d has fewer arguments than rows", k->id);
    return;
  }
  for (int i = 0; i < k->nxs; i++) {
    const LoopBuf *x = lbuf(L, k->xs[i]);
    LLVMValueRef re = ll_buf_elems_from(L, x, 1);
    LLLoop lp;
    ll_loop_begin(L, &lp, n, "r");
    LLVMValueRef src = LLVMBuildSExt(L->B, LLVMBuildLoad2(L->B, L->ti32, at(L, rows, lp.iv), ""), L->ti64, "");
    ll_memcpy(L, at(L, r->args[i], mul(L, lp.iv, re)), at(L, k->xs[i], mul(L, src, re)), ll_bytes(L, x, re), 0);
    ll_loop_end(L, &lp);
  }
  set_tvar(L, r->tvar, n);
  region_calls(L, r);
}

static LLVMValueRef load_i32(LL *L, int buf, LLVMValueRef i) {
  if (ll_buf_elt(L, lbuf(L, buf)) != L->ti32) {
    ll_fail(L, "not supported by the LLVM backend: non-i32 index buffer %d", buf);
    return ll_i32(L, 0);
  }
  return LLVMBuildLoad2(L->B, L->ti32, at(L, buf, i), "");
}

static LLVMValueRef load_d(LL *L, int buf, LLVMValueRef i) {
  LLVMTypeRef et = ll_buf_elt(L, lbuf(L, buf));
  LLVMValueRef v = LLVMBuildLoad2(L->B, et, at(L, buf, i), "");
  if (et == L->tf32) return LLVMBuildFPExt(L->B, v, L->tf64, "");
  if (et == L->ti32) return LLVMBuildSIToFP(L->B, v, L->tf64, "");
  return v;
}

/* rows[n++] = t (n in an i64 slot) */
static void push_row(LL *L, LLVMValueRef nslot, int rows, LLVMValueRef t) {
  LLVMValueRef n = LLVMBuildLoad2(L->B, L->ti64, nslot, "n");
  LLVMBuildStore(L->B, LLVMBuildTrunc(L->B, t, L->ti32, ""), at(L, rows, n));
  LLVMBuildStore(L->B, add(L, n, ll_i64(L, 1)), nslot);
}

static void emit_mixture(LL *L, const LoopKernel *k) {
  const LoopBuf *out = lbuf(L, k->out);
  int idx = k->args[0], w = k->args[1], rows = k->args[2];
  LLVMValueRef T = ll_tvar(L, k->tvar), K = ll_size(L, k->sizes[0]), RE = ll_buf_elems_from(L, out, 1);
  LLVMValueRef TK = mul(L, T, K), TRE = mul(L, T, RE);
  { /* expert indices in range */
    LLLoop lp;
    ll_loop_begin(L, &lp, TK, "i");
    LLVMValueRef e = load_i32(L, idx, lp.iv);
    LLVMValueRef badc = LLVMBuildOr(L->B, LLVMBuildICmp(L->B, LLVMIntSLT, e, ll_i32(L, 0), ""),
                                    LLVMBuildICmp(L->B, LLVMIntSGE, e, ll_i32(L, k->nregions), ""), "");
    LLVMBasicBlockRef bad = ll_block(L, "mix.bad"), ok = ll_block(L, "mix.ok");
    LLVMBuildCondBr(L->B, badc, bad, ok);
    LLVMPositionBuilderAtEnd(L->B, bad);
    StrBuf f = {0};
    sb_printf(&f, "expert index %%ld at row %%lld is outside [0, %d) in mixture", k->nregions);
    ll_where_text(&f, k);
    LLVMValueRef a[2] = {LLVMBuildSExt(L->B, e, L->ti64, ""), LLVMBuildSDiv(L->B, lp.iv, K, "")};
    ll_error_return(L, ll_model(L), GAT_ERR_TOKEN_RANGE, sb_cstr(&f), a, 2);
    sb_free(&f);
    LLVMPositionBuilderAtEnd(L->B, ok);
    ll_loop_end(L, &lp);
  }
  int cbase = emit_count_base(L->m, k); /* --count: tokens, then rows/calls per expert (emit_count.h) */
  ll_count_add(L, cbase, T);
  int acc = k->args[3] >= 0 ? k->args[3] : k->out;
  const LoopBuf *accb = lbuf(L, acc);
  {
    LLVMTypeRef at3[3] = {L->tp8, L->ti32, L->ti64};
    LLVMValueRef av[3] = {LLVMBuildBitCast(L->B, bp(L, acc), L->tp8, ""), ll_i32(L, 0), ll_bytes(L, accb, TRE)};
    ll_call(L, "memset", L->tp8, at3, 3, av);
  }
  LLVMValueRef nslot = ll_alloca(L, L->ti64, "n");
  LLVMValueRef found = ll_alloca(L, L->ti1, "found");
  LLVMValueRef wts = ll_alloca(L, L->tf64, "wt");
  for (int e = 0; e < k->nregions && !L->failed; e++) {
    const LoopRegion *r = k->regions[e];
    LLVMBuildStore(L->B, ll_i64(L, 0), nslot);
    LLLoop lt, lj;
    ll_loop_begin(L, &lt, T, "t");
    LLVMBuildStore(L->B, LLVMConstInt(L->ti1, 0, 0), found);
    ll_loop_begin(L, &lj, K, "j");
    LLVMValueRef hit = LLVMBuildICmp(L->B, LLVMIntEQ, load_i32(L, idx, add(L, mul(L, lt.iv, K), lj.iv)), ll_i32(L, e), "");
    LLVMValueRef first = LLVMBuildAnd(L->B, hit, LLVMBuildNot(L->B, LLVMBuildLoad2(L->B, L->ti1, found, ""), ""), "");
    LLVMBasicBlockRef yes = ll_block(L, "hit"), no = ll_block(L, "next");
    LLVMBuildCondBr(L->B, first, yes, no);
    LLVMPositionBuilderAtEnd(L->B, yes);
    push_row(L, nslot, rows, lt.iv);
    LLVMBuildStore(L->B, LLVMConstInt(L->ti1, 1, 0), found);
    LLVMBuildBr(L->B, no);
    LLVMPositionBuilderAtEnd(L->B, no);
    ll_loop_end(L, &lj);
    ll_loop_end(L, &lt);
    LLVMValueRef n = LLVMBuildLoad2(L->B, L->ti64, nslot, "n");
    LLVMBasicBlockRef run = ll_block(L, "expert"), done = ll_block(L, "expert.done");
    LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSGT, n, ll_i64(L, 0), ""), run, done);
    LLVMPositionBuilderAtEnd(L->B, run);
    if (cbase >= 0) {
      ll_count_add(L, cbase + 1 + 2 * e, n);
      ll_count_add(L, cbase + 2 + 2 * e, ll_i64(L, 1));
    }
    gather_rows(L, k, r, n, rows);
    if (r->nyield < 1) {
      ll_fail(L, "LLVM backend: mixture region without a result");
      return;
    }
    LLLoop lr, lq, lw;
    ll_loop_begin(L, &lr, n, "r");
    LLVMValueRef t = LLVMBuildSExt(L->B, load_i32(L, rows, lr.iv), L->ti64, "t");
    LLVMBuildStore(L->B, ll_f64(L, 0.0), wts);
    ll_loop_begin(L, &lw, K, "j");
    LLVMValueRef tj = add(L, mul(L, t, K), lw.iv);
    LLVMBasicBlockRef yes2 = ll_block(L, "w"), no2 = ll_block(L, "w.next");
    LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntEQ, load_i32(L, idx, tj), ll_i32(L, e), ""), yes2, no2);
    LLVMPositionBuilderAtEnd(L->B, yes2);
    LLVMBuildStore(L->B, LLVMBuildFAdd(L->B, LLVMBuildLoad2(L->B, L->tf64, wts, ""), load_d(L, w, tj), ""), wts);
    LLVMBuildBr(L->B, no2);
    LLVMPositionBuilderAtEnd(L->B, no2);
    ll_loop_end(L, &lw);
    LLVMValueRef wt = LLVMBuildLoad2(L->B, L->tf64, wts, "wt");
    ll_loop_begin(L, &lq, RE, "q");
    LLVMValueRef oi = add(L, mul(L, t, RE), lq.iv);
    LLVMValueRef y = load_d(L, r->yields[0], add(L, mul(L, lr.iv, RE), lq.iv));
    LLVMValueRef sum = LLVMBuildFAdd(L->B, load_d(L, acc, oi), LLVMBuildFMul(L->B, wt, y, ""), "");
    LLVMTypeRef et = ll_buf_elt(L, accb);
    if (et == L->tf32) sum = LLVMBuildFPTrunc(L->B, sum, L->tf32, "");
    else if (et != L->tf64) ll_fail(L, "not supported by the LLVM backend: mixture accumulator type");
    LLVMBuildStore(L->B, sum, at(L, acc, oi));
    ll_loop_end(L, &lq);
    ll_loop_end(L, &lr);
    LLVMBuildBr(L->B, done);
    LLVMPositionBuilderAtEnd(L->B, done);
  }
  if (acc != k->out) {
    LLLoop lp;
    ll_loop_begin(L, &lp, TRE, "i");
    LLVMValueRef v = load_d(L, acc, lp.iv);
    if (ll_buf_elt(L, out) == L->tf32) v = LLVMBuildFPTrunc(L->B, v, L->tf32, "");
    else ll_fail(L, "not supported by the LLVM backend: mixture output type");
    LLVMBuildStore(L->B, v, at(L, k->out, lp.iv));
    ll_loop_end(L, &lp);
  }
}

static void emit_skip(LL *L, const LoopKernel *k) {
  const LoopBuf *out = lbuf(L, k->out);
  if (k->nregions < 1 || k->regions[0]->nyield < 1) {
    ll_fail(L, "LLVM backend: malformed skip k%d", k->id);
    return;
  }
  const LoopRegion *r = k->regions[0];
  int cond = k->args[0], prev = k->args[1], rows = k->args[2];
  LLVMValueRef T = ll_tvar(L, k->tvar), RE = ll_buf_elems_from(L, out, 1);
  ll_memcpy(L, bp(L, k->out), bp(L, prev), ll_bytes(L, out, mul(L, T, RE)), 0);
  LLVMValueRef nslot = ll_alloca(L, L->ti64, "n");
  LLVMBuildStore(L->B, ll_i64(L, 0), nslot);
  /* the capacity/threshold/cut: run-time values in the model (emit_llvm_knobs.c, emit_knobs.h) */
  int knob = emit_knobs_index(L->m, k);
  LLVMValueRef model = ll_model(L);
  LLVMValueRef tau = LLVMBuildLoad2(L->B, L->tf64, ll_knob_ptr(L, model, 0, ll_i32(L, knob)), "tau");
  if (k->reals[0] > 0 || k->reals[1] > 0) {
    /* a router (`route top(...) by r`, loopir.h LK_SKIP): the rows of rank < keep */
    LLVMValueRef keep, capv = LLVMBuildLoad2(L->B, L->tf64, ll_knob_ptr(L, model, 1, ll_i32(L, knob)), "cap");
    if (k->reals[0] > 0) {
      LLVMValueRef c = LLVMBuildFSub(L->B, LLVMBuildFMul(L->B, capv, LLVMBuildSIToFP(L->B, T, L->tf64, ""), ""),
                                     ll_f64(L, 1e-9), "");
      LLVMTypeRef d = L->tf64;
      keep = LLVMBuildFPToSI(L->B, ll_call(L, "llvm.ceil.f64", L->tf64, &d, 1, &c), L->ti64, "");
      keep = LLVMBuildSelect(L->B, LLVMBuildICmp(L->B, LLVMIntSLT, keep, ll_i64(L, 1), ""), ll_i64(L, 1), keep, "keep");
    } else {
      LLVMValueRef kk = LLVMBuildFPToSI(L->B, capv, L->ti64, "");
      keep = LLVMBuildSelect(L->B, LLVMBuildICmp(L->B, LLVMIntSLT, T, kk, ""), T, kk, "keep");
    }
    LLVMBasicBlockRef ranked = ll_block(L, "route.rank"), routed = ll_block(L, "route.done");
    { /* one token and a threshold (tau >= 0): kept iff sigmoid(r) >= tau */
      LLVMBasicBlockRef one = ll_block(L, "route.one"), yes = ll_block(L, "route.keep");
      LLVMBuildCondBr(L->B, LLVMBuildAnd(L->B, LLVMBuildICmp(L->B, LLVMIntEQ, T, ll_i64(L, 1), ""),
                                         LLVMBuildFCmp(L->B, LLVMRealOGE, tau, ll_f64(L, 0.0), ""), ""),
                      one, ranked);
      LLVMPositionBuilderAtEnd(L->B, one);
      LLVMValueRef sg = ll_unary(L, IR_FN_SIGMOID, load_d(L, cond, ll_i64(L, 0)));
      LLVMBuildCondBr(L->B, LLVMBuildFCmp(L->B, LLVMRealOGE, sg, tau, ""), yes, routed);
      LLVMPositionBuilderAtEnd(L->B, yes);
      push_row(L, nslot, rows, ll_i64(L, 0));
      LLVMBuildBr(L->B, routed);
    }
    LLVMPositionBuilderAtEnd(L->B, ranked);
    LLVMValueRef rank = ll_alloca(L, L->ti64, "rank");
    LLLoop lt, lu;
    ll_loop_begin(L, &lt, T, "t");
    LLVMBuildStore(L->B, ll_i64(L, 0), rank);
    LLVMValueRef rt = load_d(L, cond, lt.iv);
    ll_loop_begin(L, &lu, T, "u");
    LLVMValueRef ru = load_d(L, cond, lu.iv);
    LLVMValueRef before = LLVMBuildOr(L->B, LLVMBuildFCmp(L->B, LLVMRealOGT, ru, rt, ""),
                                      LLVMBuildAnd(L->B, LLVMBuildFCmp(L->B, LLVMRealOEQ, ru, rt, ""),
                                                   LLVMBuildICmp(L->B, LLVMIntSLT, lu.iv, lt.iv, ""), ""), "");
    LLVMValueRef rk = LLVMBuildLoad2(L->B, L->ti64, rank, "");
    LLVMBuildStore(L->B, LLVMBuildAdd(L->B, rk, LLVMBuildZExt(L->B, before, L->ti64, ""), ""), rank);
    ll_loop_end(L, &lu);
    LLVMBasicBlockRef kept = ll_block(L, "route.kept"), next = ll_block(L, "route.next");
    LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSLT, LLVMBuildLoad2(L->B, L->ti64, rank, ""), keep, ""), kept, next);
    LLVMPositionBuilderAtEnd(L->B, kept);
    push_row(L, nslot, rows, lt.iv);
    LLVMBuildBr(L->B, next);
    LLVMPositionBuilderAtEnd(L->B, next);
    ll_loop_end(L, &lt);
    LLVMBuildBr(L->B, routed);
    LLVMPositionBuilderAtEnd(L->B, routed);
  } else { /* plain skip: kept iff cond[t] == 0 */
    LLLoop lt;
    ll_loop_begin(L, &lt, T, "t");
    LLVMValueRef c = load_d(L, cond, lt.iv);
    LLVMBasicBlockRef yes = ll_block(L, "skip.row"), no = ll_block(L, "skip.next");
    /* a threshold skip (loopir.h skip_cmp; the cut is the run-time knob): kept iff not
       (c CMP cut), NaN kept, hence the unordered predicates */
    static const LLVMRealPredicate keep_if[4] = {LLVMRealUGE, LLVMRealUGT, LLVMRealULE, LLVMRealULT};
    LLVMValueRef kept = k->skip_cmp > 0 && k->skip_cmp <= 4
                            ? LLVMBuildFCmp(L->B, keep_if[k->skip_cmp - 1], c, tau, "")
                            : LLVMBuildFCmp(L->B, LLVMRealOEQ, c, ll_f64(L, 0.0), "");
    LLVMBuildCondBr(L->B, kept, yes, no);
    LLVMPositionBuilderAtEnd(L->B, yes);
    push_row(L, nslot, rows, lt.iv);
    LLVMBuildBr(L->B, no);
    LLVMPositionBuilderAtEnd(L->B, no);
    ll_loop_end(L, &lt);
  }
  int cbase = emit_count_base(L->m, k); /* --count: tokens, kept rows, calls (emit_count.h) */
  ll_count_add(L, cbase, T);
  LLVMValueRef n = LLVMBuildLoad2(L->B, L->ti64, nslot, "n");
  LLVMBasicBlockRef run = ll_block(L, "skip.run"), done = ll_block(L, "skip.done");
  LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSGT, n, ll_i64(L, 0), ""), run, done);
  LLVMPositionBuilderAtEnd(L->B, run);
  if (cbase >= 0) {
    ll_count_add(L, cbase + 1, n);
    ll_count_add(L, cbase + 2, ll_i64(L, 1));
  }
  gather_rows(L, k, r, n, rows);
  LLLoop lr;
  ll_loop_begin(L, &lr, n, "r");
  LLVMValueRef t = LLVMBuildSExt(L->B, load_i32(L, rows, lr.iv), L->ti64, "");
  ll_memcpy(L, at(L, k->out, mul(L, t, RE)), at(L, r->yields[0], mul(L, lr.iv, RE)), ll_bytes(L, out, RE), 0);
  ll_loop_end(L, &lr);
  if (k->nstates > 0) { /* rows_state: the packed sequence grew by n rows */
    LLVMValueRef sp = at(L, k->state_bufs[0], ll_i64(L, 0));
    LLVMValueRef nv = LLVMBuildTrunc(L->B, n, L->ti32, "");
    if (ll_buf_elt(L, lbuf(L, k->state_bufs[0])) != L->ti32)
      ll_fail(L, "not supported by the LLVM backend: skip row state of a non-i32 buffer");
    else
      LLVMBuildStore(L->B, LLVMBuildAdd(L->B, LLVMBuildLoad2(L->B, L->ti32, sp, ""), nv, ""), sp);
  }
  LLVMBuildBr(L->B, done);
  LLVMPositionBuilderAtEnd(L->B, done);
}

/* LK_TILE (pass block): the blocking loop; its variable lives in the context, where the leaves'
   calls read it (as emit_c.c) */
static void emit_tile(LL *L, const LoopKernel *k) {
  if (k->nregions != 1 || k->nsizes != 1 || k->tile_step <= 0) {
    ll_fail(L, "LLVM backend: malformed tile loop k%d", k->id);
    return;
  }
  LLLoop lp;
  ll_loop_range(L, &lp, ll_i64(L, 0), ll_size(L, k->sizes[0]), k->tile_step, "tile");
  LLVMBuildStore(L->B, lp.iv, ll_tile_ptr(L, k->tile_var));
  region_calls(L, k->regions[0]);
  ll_loop_end(L, &lp);
}

static void define_kernel(LL *L, const LoopKernel *k) {
  L->fn = L->kfn[k->id];
  L->kern = k;
  L->ctx = LLVMGetParam(L->fn, 0);
  LLVMPositionBuilderAtEnd(L->B, LLVMAppendBasicBlockInContext(L->C, L->fn, "entry"));
  ll_kernel_bufs(L, k);
  switch (k->kind) {
  case LK_LOOP: ll_emit_loop_kernel(L, k); break;
  case LK_CALL: ll_emit_call_kernel(L, k); break;
  case LK_COPY: {
    if (k->nsizes < 1) {
      ll_fail(L, "LLVM backend: malformed copy k%d", k->id);
      break;
    }
    const LoopBuf *ob = lbuf(L, k->out);
    ll_memcpy(L, bp(L, k->out), bp(L, k->args[0]), ll_bytes(L, ob, ll_size(L, k->sizes[0])), 0);
    break;
  }
  case LK_SCAN: emit_scan(L, k); break;
  case LK_MIXTURE: emit_mixture(L, k); break;
  case LK_SKIP: emit_skip(L, k); break;
  case LK_TILE: emit_tile(L, k); break;
  default: ll_fail(L, "not supported by the LLVM backend: kernel kind %d (k%d)", (int)k->kind, k->id); break;
  }
  LLVMBuildRet(L->B, ll_i32(L, GAT_OK));
}

static void max_id(const PtrVec *ks, int *mx) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = ks->data[i];
    if (k->id > *mx) *mx = k->id;
    for (int r = 0; r < k->nregions; r++) max_id(&k->regions[r]->kernels, mx);
  }
}

static void declare_kernels(LL *L, const PtrVec *ks) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = ks->data[i];
    if (k->id < 0 || k->id >= L->nkfn || L->kfn[k->id]) {
      ll_fail(L, "LLVM backend: kernel id %d is not unique", k->id);
      return;
    }
    StrBuf nm = {0};
    kernel_name(&nm, L->m, k);
    L->kfn[k->id] = LLVMAddFunction(L->M, sb_cstr(&nm), L->t_kern);
    LLVMSetLinkage(L->kfn[k->id], LLVMInternalLinkage);
    sb_free(&nm);
    for (int r = 0; r < k->nregions; r++) declare_kernels(L, &k->regions[r]->kernels);
  }
}

static void define_kernels(LL *L, const PtrVec *ks) {
  for (int i = 0; i < ks->len && !L->failed; i++) {
    const LoopKernel *k = ks->data[i];
    define_kernel(L, k);
    for (int r = 0; r < k->nregions; r++) define_kernels(L, &k->regions[r]->kernels);
  }
}

void ll_emit_kernels(LL *L, const PtrVec *ks) {
  int mx = -1;
  max_id(ks, &mx);
  L->nkfn = mx + 1;
  L->kfn = xcalloc((size_t)L->nkfn + 1, sizeof *L->kfn);
  declare_kernels(L, ks);
  if (!L->failed) define_kernels(L, ks);
}
