/* loopir.c — constructing loop IR modules and laying out the arena. Every
 * object lives in the module's arena; buffer and kernel lists are PtrVecs. */
#include "loopir.h"

#include "gat_limits.h"

LoopModule *loop_module_new(Arena *a, const char *name, int64_t max_T) {
  LoopModule *m = ARENA_NEW(a, LoopModule);
  m->arena = a;
  m->name = arena_strdup(a, name);
  m->max_T = max_T;
  m->ntvars = 1;
  return m;
}

int64_t loop_shape_numel_max(IrShape s, int64_t max_T) { return ir_shape_numel(s, max_T); }

/* 1 when every load of e that uses variable v reads consecutive elements
 * along v (v only in the last index, coefficient 1) and e holds no
 * reduction of its own; *uses counts the loads that use v. */
static int expr_unit_stride(const LoopExpr *e, int v, int *uses) {
  if (!e) return 1;
  if (e->kind == LX_REDUCE) return 0;
  if (e->kind == LX_LOAD) {
    for (int d = 0; d < e->nidx; d++)
      for (int t = 0; t < e->idx[d].nterms; t++) {
        if (e->idx[d].var[t] != v) continue;
        if (d != e->nidx - 1 || e->idx[d].coef[t] != 1) return 0;
        ++*uses;
      }
  }
  return expr_unit_stride(e->a, v, uses) && expr_unit_stride(e->b, v, uses) && expr_unit_stride(e->c, v, uses);
}

/* With one float accumulator every addition waits for the previous one and,
 * without reassociation (-ffast-math), no compiler vectorizes; with L
 * independent partial sums over a unit-stride operand the lane loop is a
 * vector loop (L = 32: four AVX2 / two AVX-512 vectors, enough chains to hide
 * the add latency). The order of the additions changes: allowed for f32_math
 * nests, which already round in float. */
int loop_sum_lanes(const LoopExpr *x) {
  if (!(x->red == IR_RED_SUM || x->red == IR_RED_MEAN) || x->extent == IR_DIM_T) return 0;
  int uses = 0;
  if (!expr_unit_stride(x->a, x->var, &uses) || uses == 0) return 0;
  return x->extent >= 64 ? 32 : x->extent >= 32 ? 16 : x->extent >= 16 ? 8 : 0;
}

LoopBuf *loop_buf_new(LoopModule *m, LoopBufKind kind, IrDType dt, IrShape shape, int tvar,
                      const char *name) {
  LoopBuf *b = ARENA_NEW(m->arena, LoopBuf);
  b->id = m->bufs.len;
  b->kind = kind;
  b->dtype = dt;
  b->shape = shape;
  b->tvar = tvar;
  b->offset = -1;
  b->bytes = gat_size_mul(4, loop_shape_numel_max(shape, m->max_T)); /* saturates: see layout */
  b->name = name ? arena_strdup(m->arena, name) : NULL;
  ptrvec_push(&m->bufs, b);
  return b;
}

LoopBuf *loop_buf(const LoopModule *m, int id) {
  GAT_ASSERT(id >= 0 && id < m->bufs.len);
  return m->bufs.data[id];
}

LoopKernel *loop_kernel_new(LoopModule *m, LoopKernelKind kind) {
  LoopKernel *k = ARENA_NEW(m->arena, LoopKernel);
  k->kind = kind;
  k->id = m->nkernels++;
  k->out = -1;
  for (int i = 0; i < LOOP_MAX_ARGS; i++) k->args[i] = -1;
  k->tile_var = k->blk_var[0] = k->blk_var[1] = -1;
  return k;
}

LoopRegion *loop_region_new(LoopModule *m, int tvar) {
  LoopRegion *r = ARENA_NEW(m->arena, LoopRegion);
  r->tvar = tvar;
  return r;
}

LoopExpr *loop_expr_new(LoopModule *m, LoopExprKind kind, IrDType dt) {
  LoopExpr *e = ARENA_NEW(m->arena, LoopExpr);
  e->kind = kind;
  e->dtype = dt;
  e->buf = -1;
  return e;
}

static int64_t align64(int64_t x) { return (x + 63) & ~(int64_t)63; }

/* Each buffer is below 2^42 bytes (the graph IR's limits), but their sum is
 * not bounded by anything: it saturates at INT64_MAX, which pipeline_run
 * then refuses as over GAT_LIMIT_ARENA_BYTES, rather than wrap. */
void loop_module_layout(LoopModule *m) {
  int64_t off = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < m->bufs.len; i++) {
      LoopBuf *b = m->bufs.data[i];
      if (b->kind != (pass == 0 ? LB_STATE : LB_SCRATCH)) continue;
      b->offset = off;
      int64_t end = gat_size_add(off, b->bytes > 0 ? b->bytes : 4);
      off = end > INT64_MAX - 63 ? INT64_MAX : align64(end);
    }
    if (pass == 0) m->state_bytes = off;
  }
  m->arena_bytes = off > 0 ? off : 64;
}
