/* interchange.c — pass_interchange (-O2): reductions whose operand walks
 * memory with a large stride get their loop moved outside the innermost
 * domain loop (LoopKernel.red_outer).
 *
 * A kernel out[.., j] = F(sum(i) E(.., i, j)) whose E reads, say, S[i, j]
 * runs i innermost and so walks S with stride ext(j). With red_outer the
 * emitter keeps one double accumulator per j instead and runs j innermost:
 * for i: for j: acc[j] += E — contiguous, vectorizable, and each element
 * still sums the same terms in the same order (bitwise the same result).
 * The pass only sets the flag when the innermost loop then strides better:
 * it counts the loads of E that are neither invariant (stride 0) nor
 * contiguous (stride 1) in the innermost variable of each order. */
#include "pass.h"

#define INTERCHANGE_MAX_ACC 4096 /* doubles of accumulator on the generated stack */

/* the single reduction of the body, or NULL (none, several, or one inside a
 * select branch, where it would be evaluated only conditionally) */
static void find_reduce(const LoopExpr *e, int in_branch, const LoopExpr **found, int *count, int *bad) {
  if (!e) return;
  if (e->kind == LX_REDUCE) {
    (*count)++;
    *found = e;
    if (in_branch) *bad = 1;
  }
  find_reduce(e->a, in_branch, found, count, bad);
  find_reduce(e->b, in_branch || e->kind == LX_SELECT, found, count, bad);
  find_reduce(e->c, in_branch || e->kind == LX_SELECT, found, count, bad);
}

/* flat element stride of variable v in load x; -1 if unknown (f64 scratch) */
static int64_t load_stride(const LoopModule *m, const LoopExpr *x, int v) {
  const LoopBuf *b = loop_buf(m, x->buf);
  if (b->is_f64 || x->nidx != b->shape.rank) return -1;
  int64_t stride = 0, inner = 1;
  for (int d = b->shape.rank - 1; d >= 0; d--) {
    for (int t = 0; t < x->idx[d].nterms; t++)
      if (x->idx[d].var[t] == v) stride += x->idx[d].coef[t] * inner;
    int64_t dim = b->shape.dims[d] == IR_DIM_T ? m->max_T : b->shape.dims[d];
    inner *= dim;
  }
  return stride;
}

/* loads of e that stride badly (not 0, not 1) in variable v */
static int bad_strides(const LoopModule *m, const LoopExpr *e, int v) {
  if (!e) return 0;
  int n = 0;
  if (e->kind == LX_LOAD) {
    int64_t s = load_stride(m, e, v);
    n += s != 0 && s != 1;
  }
  return n + bad_strides(m, e->a, v) + bad_strides(m, e->b, v) + bad_strides(m, e->c, v);
}

static int uses_var(const LoopExpr *e, int v) {
  if (!e) return 0;
  if (e->kind == LX_VAR && e->var == v) return 1;
  if (e->kind == LX_LOAD)
    for (int d = 0; d < e->nidx; d++)
      for (int t = 0; t < e->idx[d].nterms; t++)
        if (e->idx[d].var[t] == v) return 1;
  return uses_var(e->a, v) || uses_var(e->b, v) || uses_var(e->c, v);
}

static void interchange_kernel(LoopModule *m, LoopKernel *k, void *ctx) {
  (void)ctx;
  if (k->kind != LK_LOOP || k->rank < 1 || k->red_outer || k->nlets) return;
  int64_t n = k->ext[k->rank - 1];
  if (n == IR_DIM_T || n < 2 || n > INTERCHANGE_MAX_ACC) return;
  const LoopExpr *r = NULL;
  int count = 0, bad = 0;
  find_reduce(k->body, 0, &r, &count, &bad);
  if (count != 1 || bad || r->red != IR_RED_SUM) return;
  int j = k->rank - 1;
  /* the operand must vary with j (else there is nothing to vectorize over) */
  if (!uses_var(r->a, j)) return;
  if (bad_strides(m, r->a, j) < bad_strides(m, r->a, r->var)) k->red_outer = 1;
}

void pass_interchange(LoopModule *m, const PassOptions *o) {
  (void)o;
  loop_walk_kernels(m, interchange_kernel, NULL);
}
