/* prologue.c — pass_prologue (-O2; off with -fno-prologue, -fno-tile or
 * -fno-pack): an RMSNorm read only by GEMMs is never materialised.
 *
 * Rewrites: an LC_RMS_NORM N without weight (pass_scalefold folded g into the
 * consumers' packed weights) over x [R.., n], whose output is read only as
 * the activation args[0] of LC_GEMM kernels of the same kernel list (after
 * N, nothing writing x in between), into
 *     rs[R..] = rsqrt(mean_k x[R.., k]^2 + eps)     (an LK_LOOP, f32 [R..])
 * and every consumer GEMM reads x itself with args[6] = rs: the micro-kernel
 * multiplies row m of its accumulator by rs[m] before the bias, so
 * x/rms(x)·g·W^T = rs ⊙ (x·(W·diag g)^T). The normalised activation is never
 * written. Needs: pass_gemm (packed), pass_scalefold. Breaks: exact -O2
 * rounding (rs is rounded to f32 and applied after the dot product; relative
 * differences of a few f32 ulps). */
#include "gemm_util.h"

static LoopExpr *ex(LoopModule *m, LoopExprKind kind) { return loop_expr_new(m, kind, IR_F32); }

static LoopExpr *load_row(LoopModule *m, int buf, int rank, int kvar) {
  LoopExpr *l = ex(m, LX_LOAD);
  l->buf = buf;
  l->nidx = rank;
  l->idx = ARENA_ARRAY(m->arena, LoopIndex, rank);
  for (int d = 0; d < rank; d++) {
    l->idx[d].nterms = 1;
    l->idx[d].var[0] = d == rank - 1 ? kvar : d;
    l->idx[d].coef[0] = 1;
    l->idx[d].dyn_buf = -1;
  }
  return l;
}

static int prologue_once(LoopModule *m, PtrVec *ks) {
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *n = ks->data[i];
    if (n->kind != LK_CALL || n->call != LC_RMS_NORM || n->args[1] >= 0 || n->args[0] < 0) continue;
    const LoopBuf *xb = loop_buf(m, n->args[0]), *ob = loop_buf(m, n->out);
    if (xb->is_f64 || xb->dtype != IR_F32 || xb->shape.rank < 2 || ob->kind != LB_SCRATCH || ob->persistent) continue;
    if (ir_shape_has_T(xb->shape) && xb->tvar != n->tvar) continue;
    int nreads = loop_buf_reads(m, n->out), found = 0, ok = 1, last = -1;
    for (int j = i + 1; j < ks->len && ok && found < nreads; j++) {
      LoopKernel *g = ks->data[j];
      int here = 0;
      for (int a = 0; a < LOOP_MAX_ARGS; a++) here += g->args[a] == n->out;
      if (g->kind == LK_LOOP || !here) {
        if (g->kind != LK_LOOP && loop_kernel_writes(g, n->out)) ok = 0;
        if (loop_kernel_writes(g, n->args[0])) ok = 0; /* x must still hold its value */
        continue;
      }
      if (g->kind != LK_CALL || g->call != LC_GEMM || here != 1 || g->args[0] != n->out || g->args[1] < 0 ||
          (g->nargs > 6 && g->args[6] >= 0) || g->tvar != n->tvar) {
        ok = 0;
        break;
      }
      found++;
      last = j;
      if (loop_kernel_writes(g, n->args[0])) ok = 0;
    }
    if (!ok || found == 0 || found != nreads) continue;
    /* the row scale */
    int rank = xb->shape.rank - 1;
    IrShape rs_shape = xb->shape;
    rs_shape.rank = rank;
    LoopBuf *rb = loop_buf_new(m, LB_SCRATCH, IR_F32, rs_shape, xb->tvar, "rms row scale");
    LoopExpr *sq = ex(m, LX_BINARY);
    sq->fn = IR_FN_MUL;
    sq->a = load_row(m, n->args[0], rank + 1, rank);
    sq->b = load_row(m, n->args[0], rank + 1, rank);
    LoopExpr *mean = ex(m, LX_REDUCE);
    mean->red = IR_RED_MEAN;
    mean->var = rank;
    mean->extent = xb->shape.dims[rank];
    mean->a = sq;
    LoopExpr *eps = ex(m, LX_CONST);
    eps->f = n->reals[0];
    LoopExpr *sum = ex(m, LX_BINARY);
    sum->fn = IR_FN_ADD;
    sum->a = mean;
    sum->b = eps;
    LoopExpr *body = ex(m, LX_UNARY);
    body->fn = IR_FN_RSQRT;
    body->a = sum;
    for (int j = i + 1; j <= last; j++) {
      LoopKernel *g = ks->data[j];
      if (g->kind != LK_CALL || g->call != LC_GEMM || g->args[0] != n->out) continue;
      g->args[0] = n->args[0];
      g->args[6] = rb->id;
      if (g->nargs < 7) g->nargs = 7;
    }
    n->kind = LK_LOOP;
    for (int a = 0; a < LOOP_MAX_ARGS; a++) n->args[a] = -1;
    n->nargs = n->nsizes = 0;
    n->out = rb->id;
    n->rank = rank;
    for (int d = 0; d < rank; d++) {
      n->ext[d] = rs_shape.dims[d];
      n->out_off[d] = 0;
    }
    n->body = body;
    n->what = "1/rms(x) per row, applied by the GEMMs reading x (prologue)";
    return 1;
  }
  return 0;
}

static void prologue_list(LoopModule *m, PtrVec *ks) {
  while (prologue_once(m, ks)) {
  }
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = ks->data[i];
    for (int r = 0; r < k->nregions; r++) prologue_list(m, &k->regions[r]->kernels);
  }
}

void pass_prologue(LoopModule *m, const PassOptions *o) {
  (void)o;
  prologue_list(m, &m->kernels);
}
