/* scan_inplace.c — pass_scan_inplace (-O2): a scan state whose new value is
 * computed elementwise from its old value is updated in place.
 *
 * The plain lowering computes the new state S' of a scan step into its own
 * buffer, lets the rest of the step read S', and copies S' back over S at
 * the end of every step (a memmove of the whole state per token). When the
 * one kernel U writing S' is a loop nest over S's whole shape that reads S
 * only at its own output element (S'[x] = f(S[x], ...)), no kernel after U
 * in the step reads the old S, no yield of the step (an emitted row, another
 * state's new value) is the old S, and nothing before U reads S', then U may
 * store into S directly: every element is read before it is overwritten and
 * no one needs the old value afterwards. The later readers of S' read S, the
 * region yields S, and the scan's copy-back disappears (emit_scan skips a
 * state whose yield is the state itself). */
#include "fuse_util.h"

/* 1 if every load of buf in e is at the identity index of the domain */
static int loads_identity(const LoopModule *m, const LoopExpr *e, int buf, const LoopKernel *k) {
  if (!e) return 1;
  if (e->kind == LX_LOAD) {
    for (int d = 0; d < e->nidx; d++)
      if (e->idx[d].dyn_buf == buf) return 0;
    if (e->buf == buf && !fuse_identity_load(m, e, k->rank, k->ext)) return 0;
  }
  return loads_identity(m, e->a, buf, k) && loads_identity(m, e->b, buf, k) && loads_identity(m, e->c, buf, k);
}

static void expr_rename(LoopExpr *e, int from, int to) {
  if (!e) return;
  if (e->kind == LX_LOAD) {
    if (e->buf == from) e->buf = to;
    for (int d = 0; d < e->nidx; d++)
      if (e->idx[d].dyn_buf == from) e->idx[d].dyn_buf = to;
  }
  expr_rename(e->a, from, to);
  expr_rename(e->b, from, to);
  expr_rename(e->c, from, to);
}

static void kernel_rename(LoopKernel *k, int from, int to) {
  expr_rename(k->body, from, to);
  for (int l = 0; l < k->nlets; l++) expr_rename(k->lets[l].e, from, to);
  if (k->out == from) k->out = to;
  for (int i = 0; i < LOOP_MAX_ARGS; i++)
    if (k->args[i] == from) k->args[i] = to;
  for (int i = 0; i < k->nstates; i++)
    if (k->state_bufs[i] == from) k->state_bufs[i] = to;
  for (int i = 0; i < k->nxs; i++)
    if (k->xs[i] == from) k->xs[i] = to;
  for (int r = 0; r < k->nregions; r++) {
    LoopRegion *g = k->regions[r];
    for (int i = 0; i < g->nargs; i++)
      if (g->args[i] == from) g->args[i] = to;
    for (int i = 0; i < g->nyield; i++)
      if (g->yields[i] == from) g->yields[i] = to;
    for (int i = 0; i < g->kernels.len; i++) kernel_rename(g->kernels.data[i], from, to);
  }
}

static int same_shape(const LoopBuf *a, const LoopBuf *b) {
  if (a->dtype != b->dtype || a->is_f64 || b->is_f64 || a->shape.rank != b->shape.rank) return 0;
  for (int d = 0; d < a->shape.rank; d++)
    if (a->shape.dims[d] != b->shape.dims[d] || a->shape.dims[d] == IR_DIM_T) return 0;
  return 1;
}

static int try_state(LoopModule *m, LoopKernel *scan, int si) {
  LoopRegion *r = scan->regions[0];
  int s = scan->state_bufs[si], y = r->yields[si];
  if (y == s || (scan->state_tmp && scan->state_tmp[si] >= 0)) return 0;
  if (!same_shape(loop_buf(m, s), loop_buf(m, y))) return 0;
  /* y is the new value of this state only. Every yield is read after the
   * step's kernels have run (the emitted rows are copied out, the new states
   * copied back), so a yield of s other than this state's own would read the
   * value U wrote, not the old state it names: `emit = p` before `p[j] = ...`
   * emits the previous token's state, which in-place storage would overwrite. */
  for (int i = 0; i < r->nyield; i++) {
    if (i < scan->nstates && i != si && r->yields[i] == y) return 0;
    if (i != si && r->yields[i] == s) return 0;
  }
  for (int i = 0; i < r->nargs; i++) /* the step's arguments are (t, states...) themselves */
    if (r->args[i] == y) return 0;
  /* the one writer of y in the step */
  int u = -1;
  for (int i = 0; i < r->kernels.len; i++) {
    LoopKernel *k = r->kernels.data[i];
    if (loop_kernel_writes(k, y)) {
      if (u >= 0) return 0;
      u = i;
    }
    if (loop_kernel_writes(k, s)) return 0;
  }
  if (u < 0) return 0;
  LoopKernel *U = r->kernels.data[u];
  if (U->kind != LK_LOOP || U->nlets || !fuse_whole_output(m, U)) return 0;
  if (loop_kernel_reads(U, y) || !loads_identity(m, U->body, s, U)) return 0;
  for (int i = 0; i < u; i++)
    if (loop_kernel_reads(r->kernels.data[i], y)) return 0;
  for (int i = u + 1; i < r->kernels.len; i++)
    if (loop_kernel_reads(r->kernels.data[i], s)) return 0;
  /* y must not be visible outside the step: reads = those in the region's
   * kernels plus its yields */
  int inside = 0;
  for (int i = 0; i < r->kernels.len; i++) inside += loop_kernel_reads(r->kernels.data[i], y);
  for (int i = 0; i < r->nyield; i++) inside += r->yields[i] == y;
  if (loop_buf_reads(m, y) != inside || loop_buf_writes(m, y) != 1) return 0;
  /* rewrite */
  U->out = s;
  for (int i = u + 1; i < r->kernels.len; i++) kernel_rename(r->kernels.data[i], y, s);
  for (int i = 0; i < r->nyield; i++)
    if (r->yields[i] == y) r->yields[i] = s;
  return 1;
}

static void inplace_kernel(LoopModule *m, LoopKernel *k, void *ctx) {
  (void)ctx;
  if (k->kind != LK_SCAN || k->nregions != 1) return;
  for (int i = 0; i < k->nstates; i++) try_state(m, k, i);
}

void pass_scan_inplace(LoopModule *m, const PassOptions *o) {
  (void)o;
  loop_walk_kernels(m, inplace_kernel, NULL);
}
