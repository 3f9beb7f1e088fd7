/* fuse.c — pass_fuse (-O1 and up; off with -fno-fuse): elementwise fusion
 * of producer → consumer chains of LK_LOOP kernels into one loop nest.
 *
 * Rewrites: producer P (LK_LOOP covering its whole scratch output O, the
 * only writer of O) whose every reader is one later LK_LOOP kernel C of the
 * same kernel list, with C's domain equal to P's and every load of O in C at
 * [v0, .., v{r-1}] outside any reduction of C. Each such load is replaced by
 * a copy of P's body marked `round` (the value is rounded to O's dtype as
 * P's store did), and P is deleted, so chains collapse into a single nest
 * and O is never written. A producer with a reduction is only inlined into a
 * consumer that reads it once (no recomputation). Nothing may write a buffer
 * P reads between P and C. Needs: the plain lowering. Breaks: nothing; the
 * result is bitwise the unfused one. */
#include <string.h>
#include <stdlib.h>

#include "fuse_util.h"

static int has_reduce(const LoopExpr *e) {
  return e && (e->kind == LX_REDUCE || has_reduce(e->a) || has_reduce(e->b) || has_reduce(e->c));
}

static int count_loads(const LoopExpr *e, int buf) {
  if (!e) return 0;
  return (e->kind == LX_LOAD && e->buf == buf) + count_loads(e->a, buf) + count_loads(e->b, buf) +
         count_loads(e->c, buf);
}

/* Every load of buf in e is an identity load outside reductions. */
static int loads_ok(const LoopModule *m, const LoopExpr *e, int buf, int rank, const int64_t *ext, int in_red) {
  if (!e) return 1;
  if (e->kind == LX_LOAD && e->buf == buf) return !in_red && fuse_identity_load(m, e, rank, ext);
  if (e->kind == LX_LOAD)
    for (int i = 0; i < e->nidx; i++)
      if (e->idx[i].dyn_buf == buf) return 0;
  int r = in_red || e->kind == LX_REDUCE;
  return loads_ok(m, e->a, buf, rank, ext, r) && loads_ok(m, e->b, buf, rank, ext, r) &&
         loads_ok(m, e->c, buf, rank, ext, r);
}

static LoopExpr *copy_expr(LoopModule *m, const LoopExpr *e) {
  if (!e) return NULL;
  LoopExpr *c = loop_expr_new(m, e->kind, e->dtype);
  *c = *e;
  if (e->kind == LX_LOAD) {
    c->idx = ARENA_ARRAY(m->arena, LoopIndex, e->nidx ? e->nidx : 1);
    memcpy(c->idx, e->idx, sizeof(LoopIndex) * (size_t)e->nidx);
  }
  c->a = copy_expr(m, e->a);
  c->b = copy_expr(m, e->b);
  c->c = copy_expr(m, e->c);
  return c;
}

static LoopExpr *substitute(LoopModule *m, LoopExpr *e, int buf, const LoopExpr *body, IrDType dt) {
  if (!e) return NULL;
  if (e->kind == LX_LOAD && e->buf == buf) {
    LoopExpr *c = copy_expr(m, body);
    c->round = 1;
    c->dtype = dt; /* the store rounded to the buffer's dtype */
    return c;
  }
  e->a = substitute(m, e->a, buf, body, dt);
  e->b = substitute(m, e->b, buf, body, dt);
  e->c = substitute(m, e->c, buf, body, dt);
  return e;
}

static void collect_reads(const LoopExpr *e, char *rd) {
  if (!e) return;
  if (e->kind == LX_LOAD) {
    rd[e->buf] = 1;
    for (int i = 0; i < e->nidx; i++)
      if (e->idx[i].dyn_buf >= 0) rd[e->idx[i].dyn_buf] = 1;
  }
  collect_reads(e->a, rd);
  collect_reads(e->b, rd);
  collect_reads(e->c, rd);
}

static int fuse_once(LoopModule *m, PtrVec *ks) {
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *p = ks->data[i];
    if (p->kind != LK_LOOP || !fuse_whole_output(m, p)) continue;
    const LoopBuf *ob = loop_buf(m, p->out);
    if (ob->kind != LB_SCRATCH || ob->persistent || loop_buf_writes(m, p->out) != 1) continue;
    int nreads = loop_buf_reads(m, p->out);
    if (nreads == 0) continue;
    for (int j = i + 1; j < ks->len; j++) {
      LoopKernel *c = ks->data[j];
      int here = c->kind == LK_LOOP ? count_loads(c->body, p->out) : 0;
      if (here == 0) {
        if (c->kind != LK_LOOP && loop_kernel_writes(c, p->out)) break;
        continue;
      }
      if (here != nreads || c->rank != p->rank || c->tvar != p->tvar) break;
      int same = 1;
      for (int d = 0; d < p->rank; d++) same &= c->ext[d] == p->ext[d];
      if (!same || !loads_ok(m, c->body, p->out, p->rank, p->ext, 0)) break;
      if (has_reduce(p->body) && nreads != 1) break;
      char *rd = xcalloc((size_t)m->bufs.len + 1, 1);
      collect_reads(p->body, rd);
      int clash = 0;
      for (int q = i + 1; q < j && !clash; q++)
        for (int b = 0; b < m->bufs.len && !clash; b++)
          if (rd[b] && loop_kernel_writes(ks->data[q], b)) clash = 1;
      free(rd);
      if (clash) break;
      c->body = substitute(m, c->body, p->out, p->body, ob->dtype);
      fuse_remove_at(ks, i);
      return 1;
    }
  }
  return 0;
}

static void fuse_list(LoopModule *m, PtrVec *ks) {
  while (fuse_once(m, ks)) {
  }
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = ks->data[i];
    for (int r = 0; r < k->nregions; r++) fuse_list(m, &k->regions[r]->kernels);
  }
}

void pass_fuse(LoopModule *m, const PassOptions *o) {
  (void)o;
  fuse_list(m, &m->kernels);
}
