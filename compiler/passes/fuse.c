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
 * result is bitwise the unfused one.
 *
 * Bounded: a fused body stays below FUSE_MAX_NODES nodes and FUSE_MAX_DEPTH
 * (a nesting weight close to the parentheses the C backend prints, so
 * clang's default bracket depth of 256 holds), however long the chain of
 * statements: a chain of 10,000 `z = z + x` becomes kernels of bounded size,
 * in linear memory (a producer read once is moved, not copied) and without
 * rescanning the kernels already found unfusable. */
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

enum { FUSE_MAX_NODES = 1024, FUSE_MAX_DEPTH = 160 };

/* Node count and nesting weight of e: 2 per node (the parentheses and call
 * of its C form), 2 more for a rounded (inlined) value's casts. Capped a
 * little above the limits, so a walk costs at most that much. */
static void expr_size(const LoopExpr *e, int depth, int *nodes, int *maxdepth) {
  if (!e || *nodes > FUSE_MAX_NODES || *maxdepth > FUSE_MAX_DEPTH) return;
  depth += 2 + 2 * e->round;
  ++*nodes;
  if (depth > *maxdepth) *maxdepth = depth;
  expr_size(e->a, depth, nodes, maxdepth);
  expr_size(e->b, depth, nodes, maxdepth);
  expr_size(e->c, depth, nodes, maxdepth);
}

/* Whether inlining body (nreads times) into c stays within the limits;
 * conservatively as if every load sat at c's deepest point. */
static int fuse_fits(const LoopExpr *c, const LoopExpr *body, int nreads) {
  int cn = 0, cd = 0, pn = 0, pd = 0;
  expr_size(c, 0, &cn, &cd);
  expr_size(body, 0, &pn, &pd);
  return cn + (int64_t)pn * nreads <= FUSE_MAX_NODES && cd + pd + 2 <= FUSE_MAX_DEPTH;
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

/* The producer is deleted after the substitution, so its body itself
 * replaces the first load (*moved set) and only further loads get copies. */
static LoopExpr *substitute(LoopModule *m, LoopExpr *e, int buf, LoopExpr *body, IrDType dt, int *moved) {
  if (!e) return NULL;
  if (e->kind == LX_LOAD && e->buf == buf) {
    LoopExpr *c = *moved ? copy_expr(m, body) : body;
    *moved = 1;
    c->round = 1;
    c->dtype = dt; /* the store rounded to the buffer's dtype */
    return c;
  }
  e->a = substitute(m, e->a, buf, body, dt, moved);
  e->b = substitute(m, e->b, buf, body, dt, moved);
  e->c = substitute(m, e->c, buf, body, dt, moved);
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

/* Fuses the first fusable producer at index >= *from (the order of the
 * original rescan from 0: nothing before *from can fuse). On success sets
 * *from to where the next search must start: the producer's place, or the
 * first earlier kernel whose output the producer read (its readers changed,
 * so it may fuse now). */
/* reads[b] += delta for every read of a buffer in e (as loop_buf_reads counts). */
static void add_reads(const LoopExpr *e, int *reads, int delta) {
  if (!e) return;
  if (e->kind == LX_LOAD) {
    reads[e->buf] += delta;
    for (int i = 0; i < e->nidx; i++)
      if (e->idx[i].dyn_buf >= 0) reads[e->idx[i].dyn_buf] += delta;
  }
  add_reads(e->a, reads, delta);
  add_reads(e->b, reads, delta);
  add_reads(e->c, reads, delta);
}

static int fuse_once(LoopModule *m, PtrVec *ks, int *from, int *reads, int *writes) {
  char *rd = xcalloc((size_t)m->bufs.len + 1, 1);
  int *rlist = xmalloc(sizeof(int) * ((size_t)m->bufs.len + 1));
  int done = 0;
  for (int i = *from; i < ks->len && !done; i++) {
    LoopKernel *p = ks->data[i];
    if (p->kind != LK_LOOP || !fuse_whole_output(m, p)) continue;
    const LoopBuf *ob = loop_buf(m, p->out);
    if (ob->kind != LB_SCRATCH || ob->persistent) continue;
    int nreads = -1; /* reads[], writes[]: kept up to date across fusions (one module walk in all) */
    for (int j = i + 1; j < ks->len; j++) {
      LoopKernel *c = ks->data[j];
      int here = c->kind == LK_LOOP ? count_loads(c->body, p->out) : 0;
      if (here == 0) {
        if (c->kind != LK_LOOP && loop_kernel_writes(c, p->out)) break;
        continue;
      }
      if (c->rank != p->rank || c->tvar != p->tvar) break;
      int same = 1;
      for (int d = 0; d < p->rank; d++) same &= c->ext[d] == p->ext[d];
      if (!same || !fuse_fits(c->body, p->body, here)) break;
      if (nreads < 0) nreads = writes[p->out] == 1 ? reads[p->out] : 0;
      if (here != nreads || !loads_ok(m, c->body, p->out, p->rank, p->ext, 0)) break;
      if (has_reduce(p->body) && nreads != 1) break;
      memset(rd, 0, (size_t)m->bufs.len + 1);
      collect_reads(p->body, rd);
      int nr = 0;
      for (int b = 0; b < m->bufs.len; b++)
        if (rd[b]) rlist[nr++] = b;
      int clash = 0;
      for (int q = i + 1; q < j && !clash; q++)
        for (int k = 0; k < nr && !clash; k++)
          if (loop_kernel_writes(ks->data[q], rlist[k])) clash = 1;
      if (clash) break;
      add_reads(p->body, reads, here - 1); /* now read `here` times, from c */
      reads[p->out] = 0;
      writes[p->out] = 0;
      int moved = 0;
      c->body = substitute(m, c->body, p->out, p->body, ob->dtype, &moved);
      fuse_remove_at(ks, i);
      int back = i;
      for (int e = 0; e < i; e++) {
        const LoopKernel *k = ks->data[e];
        if (k->out >= 0 && k->out < m->bufs.len && rd[k->out]) {
          back = e;
          break;
        }
      }
      *from = back;
      done = 1;
      break;
    }
  }
  free(rd);
  free(rlist);
  return done;
}

static void fuse_list(LoopModule *m, PtrVec *ks, int *reads, int *writes) {
  int from = 0;
  while (fuse_once(m, ks, &from, reads, writes)) {
  }
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = ks->data[i];
    for (int r = 0; r < k->nregions; r++) fuse_list(m, &k->regions[r]->kernels, reads, writes);
  }
}

void pass_fuse(LoopModule *m, const PassOptions *o) {
  (void)o;
  int *reads = xmalloc(sizeof(int) * ((size_t)m->bufs.len + 1));
  int *writes = xmalloc(sizeof(int) * ((size_t)m->bufs.len + 1));
  loop_buf_reads_all(m, reads);
  loop_buf_writes_all(m, writes);
  fuse_list(m, &m->kernels, reads, writes);
  free(reads);
  free(writes);
}
