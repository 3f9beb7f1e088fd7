/* fuse_util.h — small helpers of the two fusion passes (epilogue.c, fuse.c). */
#ifndef GATTNC_FUSE_UTIL_H
#define GATTNC_FUSE_UTIL_H

#include "pass.h"

/* 1 if load x reads buf at exactly [v0, .., v{rank-1}] of a domain whose
 * extents equal the buffer's shape. */
static inline int fuse_identity_load(const LoopModule *m, const LoopExpr *x, int rank, const int64_t *ext) {
  if (x->kind != LX_LOAD || x->round) return 0;
  const LoopBuf *b = loop_buf(m, x->buf);
  if (b->is_f64 || b->shape.rank != rank || x->nidx != rank) return 0;
  for (int d = 0; d < rank; d++) {
    const LoopIndex *ix = &x->idx[d];
    if (b->shape.dims[d] != ext[d]) return 0;
    if (!(ix->nterms == 1 && ix->var[0] == d && ix->coef[0] == 1 && ix->c == 0 && ix->dyn_buf < 0)) return 0;
  }
  return 1;
}

/* 1 if kernel k covers exactly its whole output buffer (no concat offsets). */
static inline int fuse_whole_output(const LoopModule *m, const LoopKernel *k) {
  const LoopBuf *o = loop_buf(m, k->out);
  if (k->kind != LK_LOOP || o->is_f64 || o->shape.rank != k->rank) return 0;
  for (int d = 0; d < k->rank; d++)
    if (k->out_off[d] != 0 || o->shape.dims[d] != k->ext[d]) return 0;
  return 1;
}

static inline void fuse_remove_at(PtrVec *v, int i) {
  for (int j = i; j + 1 < v->len; j++) v->data[j] = v->data[j + 1];
  v->len--;
}

#endif
