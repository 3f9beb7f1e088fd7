/* memplan.c — liveness-based memory planning of the arena (-O1 and -O2).
 *
 * loop_module_layout gives every buffer its own slice; this pass lets
 * scratch buffers whose lifetimes do not overlap share bytes. The arena is
 * laid out as [state][persistent scratch][planned scratch], every slice
 * 64-byte aligned. State buffers (scan states, conv tails, KV caches) and
 * persistent scratch (weights packed at init) keep their own slices: their
 * contents must survive between calls.
 *
 * Liveness. Every kernel, at every depth, gets a position in pre-order (a
 * control kernel before the kernels of its regions); a control kernel spans
 * its own position up to the last position of its regions. A buffer that a
 * kernel names (loads, including dynamic indices and -O2 lets; out; call
 * and copy arguments; states, scan temporaries, xs; region arguments and
 * yields of a control kernel) is live over that kernel's span. Inside an
 * LK_SCAN the body runs once per time step, so a use anywhere in it makes
 * the buffer live over the whole span of the outermost enclosing scan;
 * mixture and skip regions run once per call, one after the other, so
 * their kernels keep their own positions (an expert's temporaries can share
 * bytes with the next expert's). A buffer's live interval is the hull of
 * its uses: scratch is never read before it is written within one call
 * (the arena is not cleared between calls, so nothing could rely on it).
 *
 * Packing: greedy by size (largest first), each buffer best-fit into the
 * lowest-waste gap among the already placed buffers whose intervals meet
 * its own; a second order (by interval start) is tried too and the smaller
 * arena kept. The lower bound is the state and persistent bytes plus the
 * largest sum of live (aligned) scratch bytes at any position. */
#include <stdlib.h>
#include <string.h>

#include "gat_limits.h"
#include "pass.h"

static int64_t mp_align(int64_t x) { return (x + 63) & ~(int64_t)63; }

/* aligned size a buffer takes in the arena (empty buffers keep a token slot) */
int64_t memplan_buf_size(const LoopBuf *b) { return mp_align(b->bytes > 0 ? b->bytes : 4); }

typedef struct LiveCtx {
  const LoopModule *m;
  int *first, *last;
  int pos;
} LiveCtx;

static void live_use(LiveCtx *c, int buf, int lo, int hi) {
  if (buf < 0 || buf >= c->m->bufs.len) return;
  if (c->first[buf] < 0 || lo < c->first[buf]) c->first[buf] = lo;
  if (hi > c->last[buf]) c->last[buf] = hi;
}

static void live_expr(LiveCtx *c, const LoopExpr *e, int lo, int hi) {
  if (!e) return;
  if (e->kind == LX_LOAD) {
    live_use(c, e->buf, lo, hi);
    for (int i = 0; i < e->nidx; i++)
      if (e->idx[i].dyn_buf >= 0) live_use(c, e->idx[i].dyn_buf, lo, hi);
  }
  live_expr(c, e->a, lo, hi);
  live_expr(c, e->b, lo, hi);
  live_expr(c, e->c, lo, hi);
}

/* Last position of kernel list ks starting at position p (pre-order, no side effects). */
static int live_span_end(const PtrVec *ks, int p);

static int live_kernel_end(const LoopKernel *k, int p) {
  int end = p;
  for (int r = 0; r < k->nregions; r++) end = live_span_end(&k->regions[r]->kernels, end + 1) - 1;
  return end;
}

static int live_span_end(const PtrVec *ks, int p) {
  for (int i = 0; i < ks->len; i++) p = live_kernel_end(ks->data[i], p) + 1;
  return p; /* first position after the list */
}

/* scan_lo/scan_hi: span of the outermost enclosing LK_SCAN, or -1 */
static void live_kernels(LiveCtx *c, const PtrVec *ks, int scan_lo, int scan_hi) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = ks->data[i];
    int p = c->pos++;
    int end = live_kernel_end(k, p);
    int lo = scan_lo >= 0 ? scan_lo : p, hi = scan_lo >= 0 ? scan_hi : end;
    live_use(c, k->out, lo, hi);
    for (int a = 0; a < LOOP_MAX_ARGS; a++) live_use(c, k->args[a], lo, hi);
    for (int s = 0; s < k->ncat; s++) { /* segmented GEMM (pass_concat) */
      live_use(c, k->cat[s].out, lo, hi);
      live_use(c, k->cat[s].w, lo, hi);
      live_use(c, k->cat[s].bias, lo, hi);
      live_use(c, k->cat[s].res, lo, hi);
    }
    if (k->kind == LK_LOOP) {
      live_expr(c, k->body, lo, hi);
      for (int l = 0; l < k->nlets; l++) live_expr(c, k->lets[l].e, lo, hi);
      live_expr(c, k->sweep_at, lo, hi); /* pass_scanfuse */
      live_expr(c, k->sweep_val, lo, hi);
    }
    for (int s = 0; s < k->nstates; s++) {
      live_use(c, k->state_bufs[s], lo, hi);
      if (k->state_tmp) live_use(c, k->state_tmp[s], lo, hi);
    }
    for (int x = 0; x < k->nxs; x++) live_use(c, k->xs[x], lo, hi);
    int inner_lo = scan_lo, inner_hi = scan_hi;
    if (k->kind == LK_SCAN && scan_lo < 0) inner_lo = p, inner_hi = end;
    for (int r = 0; r < k->nregions; r++) {
      const LoopRegion *g = k->regions[r];
      for (int a = 0; a < g->nargs; a++) live_use(c, g->args[a], lo, hi);
      for (int y = 0; y < g->nyield; y++) live_use(c, g->yields[y], lo, hi);
      live_kernels(c, &g->kernels, inner_lo, inner_hi);
    }
    GAT_ASSERT(c->pos == end + 1);
  }
}

int memplan_liveness(const LoopModule *m, int *first, int *last) {
  LiveCtx c = {m, first, last, 0};
  for (int i = 0; i < m->bufs.len; i++) first[i] = last[i] = -1;
  live_kernels(&c, &m->kernels, -1, -1);
  return c.pos;
}

/* 1 for the buffers the planner may share: scratch, not persistent, used by some kernel */
static int mp_shared(const LoopBuf *b, const int *first) {
  return b->kind == LB_SCRATCH && !b->persistent && first[b->id] >= 0;
}

int64_t memplan_live_peak(const LoopModule *m, const int *first, const int *last, int npos) {
  int64_t *delta = xcalloc((size_t)npos + 2, sizeof *delta);
  for (int i = 0; i < m->bufs.len; i++) {
    const LoopBuf *b = m->bufs.data[i];
    if (!mp_shared(b, first)) continue;
    delta[first[i]] += memplan_buf_size(b);
    delta[last[i] + 1] -= memplan_buf_size(b);
  }
  int64_t cur = 0, peak = 0;
  for (int p = 0; p <= npos; p++) {
    cur += delta[p];
    if (cur > peak) peak = cur;
  }
  free(delta);
  return peak;
}

typedef struct MpItem {
  int buf;
  int lo, hi;
  int64_t size;
  int64_t off;
} MpItem;

static int mp_by_size(const void *a, const void *b) {
  const MpItem *x = a, *y = b;
  if (x->size != y->size) return x->size > y->size ? -1 : 1;
  if (x->hi - x->lo != y->hi - y->lo) return (y->hi - y->lo) - (x->hi - x->lo);
  return x->buf - y->buf;
}

static int mp_by_start(const void *a, const void *b) {
  const MpItem *x = a, *y = b;
  if (x->lo != y->lo) return x->lo - y->lo;
  if (x->size != y->size) return x->size > y->size ? -1 : 1;
  return x->buf - y->buf;
}

static int mp_by_off(const void *a, const void *b) {
  const MpItem *x = *(MpItem *const *)a, *y = *(MpItem *const *)b;
  return x->off < y->off ? -1 : x->off > y->off;
}

/* Places items in their current order; returns the bytes used. */
static int64_t mp_pack(MpItem *it, int n) {
  MpItem **conf = xmalloc(sizeof *conf * (size_t)(n + 1));
  int64_t top = 0;
  for (int i = 0; i < n; i++) {
    int nc = 0;
    for (int j = 0; j < i; j++)
      if (it[j].lo <= it[i].hi && it[i].lo <= it[j].hi) conf[nc++] = &it[j];
    qsort(conf, (size_t)nc, sizeof *conf, mp_by_off);
    int64_t prev = 0, best = -1, best_gap = INT64_MAX;
    for (int j = 0; j < nc; j++) {
      int64_t gap = conf[j]->off - prev;
      if (gap >= it[i].size && gap < best_gap) best = prev, best_gap = gap;
      if (conf[j]->off + conf[j]->size > prev) prev = conf[j]->off + conf[j]->size;
    }
    it[i].off = best >= 0 ? best : prev;
    if (it[i].off + it[i].size > top) top = it[i].off + it[i].size;
  }
  free(conf);
  return top;
}

void pass_memplan(LoopModule *m, const PassOptions *o) {
  (void)o;
  /* The layout's arena (every buffer its own aligned slice) bounds every
   * offset and sum below, unless it saturated (loop_module_layout): then
   * the sums could overflow, and pipeline_run refuses the module anyway. */
  if (m->arena_bytes == INT64_MAX) return;
  int nb = m->bufs.len;
  int *first = xmalloc(sizeof(int) * (size_t)(nb + 1)), *last = xmalloc(sizeof(int) * (size_t)(nb + 1));
  memplan_liveness(m, first, last);
  /* state, then persistent scratch: own slices, in buffer order */
  int64_t off = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < nb; i++) {
      LoopBuf *b = m->bufs.data[i];
      if (pass == 0 ? b->kind != LB_STATE : !(b->kind == LB_SCRATCH && b->persistent)) continue;
      b->offset = off;
      off += memplan_buf_size(b);
    }
    if (pass == 0) m->state_bytes = off;
  }
  int64_t base = off;
  MpItem *it = xmalloc(sizeof *it * (size_t)(nb + 1)), *best = xmalloc(sizeof *best * (size_t)(nb + 1));
  int n = 0;
  for (int i = 0; i < nb; i++) {
    LoopBuf *b = m->bufs.data[i];
    if (b->kind != LB_SCRATCH || b->persistent) continue;
    if (first[i] < 0) {
      b->offset = base; /* named by no kernel (fused away): never touched */
      continue;
    }
    it[n++] = (MpItem){i, first[i], last[i], memplan_buf_size(b), 0};
  }
  int64_t best_top = -1;
  int (*orders[2])(const void *, const void *) = {mp_by_size, mp_by_start};
  for (int h = 0; h < 2; h++) {
    qsort(it, (size_t)n, sizeof *it, orders[h]);
    int64_t top = mp_pack(it, n);
    if (best_top < 0 || top < best_top) {
      best_top = top;
      memcpy(best, it, sizeof *it * (size_t)n);
    }
  }
  for (int i = 0; i < n; i++) ((LoopBuf *)m->bufs.data[best[i].buf])->offset = base + best[i].off;
  off = base + (best_top > 0 ? best_top : 0);
  m->arena_bytes = off > 0 ? off : 64;
  free(it);
  free(best);
  free(first);
  free(last);
}

int64_t memplan_lower_bound(const LoopModule *m) {
  int nb = m->bufs.len;
  int *first = xmalloc(sizeof(int) * (size_t)(nb + 1)), *last = xmalloc(sizeof(int) * (size_t)(nb + 1));
  int npos = memplan_liveness(m, first, last);
  int64_t fixed = 0;
  for (int i = 0; i < nb; i++) {
    const LoopBuf *b = m->bufs.data[i];
    if (b->kind == LB_STATE || (b->kind == LB_SCRATCH && b->persistent)) fixed += memplan_buf_size(b);
  }
  int64_t lb = fixed + memplan_live_peak(m, first, last, npos);
  free(first);
  free(last);
  return lb > 0 ? lb : 64;
}
