/* loopir_lower.c — graph IR → loop IR, one kernel per op (-O0 semantics).
 *
 * Every SSA value gets its own buffer (scratch in the arena, or the caller's
 * pointer for params and inputs); nothing aliases, so later passes (fusion,
 * memory planning) start from the simplest correct program. Elementwise
 * ops, index ops, reductions, contractions and data movement become LK_LOOP
 * nests whose loads follow numpy broadcasting; row-wise ops with their own
 * numerics (softmax, norms, RoPE, conv, attention, top-k, gather) become
 * calls into the runtime. Regions: scan = a loop over t around the region's
 * kernels with the state slots bound to the region arguments; mixture = per
 * expert gather → region → weighted scatter-add (only experts with tokens);
 * skip = gather kept rows → region → scatter over a copy of `prev`. */
#include <math.h>
#include <string.h>

#include "gat_limits.h"
#include "loopir.h"

typedef struct Lower {
  LoopModule *m;
  const IrModule *im;
  int *vbuf;      /* IrValue id -> buffer id */
  int *state_buf; /* state slot -> buffer id */
  char *err;
  size_t errlen;
  int failed;
  int cur_base;   /* inside a skip region with attr rows_state: its i32[1] state buffer
                     (rows of earlier calls; positions there are base + row), else -1 */
  int cur_pos;    /* inside a mixture/skip region: the i32 buffer of the absolute
                     positions of its rows (gathered like the other per-token
                     operands); -1 at the top, where a position is pos0 + t */
} Lower;

static void lower_fail(Lower *L, const IrOp *op, const char *msg) {
  if (L->failed) return;
  L->failed = 1;
  snprintf(L->err, L->errlen, "%s:%d: cannot lower %s: %s",
           op->loc.file ? diag_file_name(op->loc.file) : "<ir>", op->loc.line, ir_op_name(op->kind), msg);
}

static int buf_of(Lower *L, const IrValue *v) {
  GAT_ASSERT(v->id >= 0 && v->id < L->im->next_value_id);
  GAT_ASSERT(L->vbuf[v->id] >= 0);
  return L->vbuf[v->id];
}

static int new_value_buf(Lower *L, const IrValue *v, int tvar) {
  char name[32];
  snprintf(name, sizeof name, "%%%d", v->id);
  LoopBuf *b = loop_buf_new(L->m, LB_SCRATCH, v->dtype, v->shape, tvar, name);
  L->vbuf[v->id] = b->id;
  return b->id;
}

static LoopKernel *kernel_for(Lower *L, const IrOp *op, LoopKernelKind kind, int tvar, PtrVec *into) {
  LoopKernel *k = loop_kernel_new(L->m, kind);
  k->origin = op->origin;
  k->file = op->loc.file ? diag_file_name(op->loc.file) : NULL;
  k->line = op->loc.line;
  k->col = op->loc.col;
  k->opname = ir_op_name(op->kind);
  k->tvar = tvar;
  if (op->nout > 0) {
    char ty[128];
    ir_type_str(ty, sizeof ty, op->out[0]->dtype, op->out[0]->shape);
    k->what = arena_strdup(L->m->arena, ty);
  }
  ptrvec_push(into, k);
  return k;
}

static LoopSize size_k(int64_t k) {
  LoopSize s = {k, 0, 0};
  return s;
}
/* product of dims [from, to) of a shape, T counted symbolically */
static LoopSize size_dims(IrShape s, int from, int to, int tvar) {
  LoopSize r = {1, 0, tvar};
  for (int i = from; i < to; i++) {
    if (s.dims[i] == IR_DIM_T)
      r.tpow++;
    else
      r.k *= s.dims[i];
  }
  return r;
}

static LoopExpr *expr_load(Lower *L, int buf, int nidx) {
  LoopExpr *e = loop_expr_new(L->m, LX_LOAD, loop_buf(L->m, buf)->dtype);
  e->buf = buf;
  e->nidx = nidx;
  e->idx = ARENA_ARRAY(L->m->arena, LoopIndex, nidx ? nidx : 1);
  for (int i = 0; i < nidx; i++) e->idx[i].dyn_buf = -1;
  return e;
}
static void idx_var(LoopIndex *ix, int var, int64_t c) {
  ix->c = c;
  ix->nterms = 1;
  ix->var[0] = var;
  ix->coef[0] = 1;
}

/* Load of `buf` broadcast into a domain of rank r (numpy, right-aligned). */
static LoopExpr *load_bcast(Lower *L, int buf, int r, const int64_t *ext) {
  IrShape s = loop_buf(L->m, buf)->shape;
  LoopExpr *e = expr_load(L, buf, s.rank);
  for (int d = 0; d < s.rank; d++) {
    int od = d + r - s.rank;
    if (s.dims[d] == 1 && ext[od] != 1)
      e->idx[d].c = 0;
    else
      idx_var(&e->idx[d], od, 0);
  }
  return e;
}

static LoopKernel *loop_kernel(Lower *L, const IrOp *op, int tvar, PtrVec *into, int out,
                               LoopExpr *body) {
  LoopKernel *k = kernel_for(L, op, LK_LOOP, tvar, into);
  IrShape s = loop_buf(L->m, out)->shape;
  k->out = out;
  k->rank = s.rank;
  for (int i = 0; i < s.rank; i++) k->ext[i] = s.dims[i];
  k->body = body;
  return k;
}

static LoopExpr *expr_bin(Lower *L, IrFn fn, IrDType dt, LoopExpr *a, LoopExpr *b) {
  LoopExpr *e = loop_expr_new(L->m, LX_BINARY, dt);
  e->fn = fn;
  e->a = a;
  e->b = b;
  return e;
}

/* Converts an index-op body; operands map to buffers, dyn operands too. */
static LoopExpr *conv_index_expr(Lower *L, const IrOp *op, const IrExpr *x, IrDType dt) {
  LoopExpr *e;
  switch (x->kind) {
  case IR_EX_CONST:
    e = loop_expr_new(L->m, LX_CONST, dt);
    e->f = x->fval;
    return e;
  case IR_EX_LOAD: {
    int buf = buf_of(L, op->in[x->operand]);
    e = expr_load(L, buf, x->nidx);
    for (int i = 0; i < x->nidx; i++) {
      const IrAffine *a = &x->idx[i];
      LoopIndex *ix = &e->idx[i];
      ix->c = a->c;
      ix->nterms = a->nterms;
      for (int k = 0; k < a->nterms; k++) {
        ix->var[k] = a->var[k];
        ix->coef[k] = a->coef[k];
      }
      ix->dyn_buf = a->dyn >= 0 ? buf_of(L, op->in[a->dyn]) : -1;
      ix->dyn_coef = a->dyn_coef;
    }
    return e;
  }
  case IR_EX_VAR:
    e = loop_expr_new(L->m, LX_VAR, dt);
    e->var = x->var;
    return e;
  case IR_EX_UNARY:
    e = loop_expr_new(L->m, LX_UNARY, dt);
    e->fn = x->fn;
    e->a = conv_index_expr(L, op, x->a, dt);
    return e;
  case IR_EX_BINARY:
    return expr_bin(L, x->fn, dt, conv_index_expr(L, op, x->a, dt), conv_index_expr(L, op, x->b, dt));
  case IR_EX_SELECT:
    e = loop_expr_new(L->m, LX_SELECT, dt);
    e->a = conv_index_expr(L, op, x->a, dt);
    e->b = conv_index_expr(L, op, x->b, dt);
    e->c = conv_index_expr(L, op, x->c, dt);
    return e;
  case IR_EX_REDUCE:
    e = loop_expr_new(L->m, LX_REDUCE, dt);
    e->red = x->reduce;
    e->var = x->var;
    e->extent = x->extent;
    e->a = conv_index_expr(L, op, x->a, dt);
    return e;
  }
  gat_unreachable();
}

static LoopExpr *expr_reduce(Lower *L, IrReduceKind k, int var, int64_t ext, IrDType dt, LoopExpr *body) {
  LoopExpr *e = loop_expr_new(L->m, LX_REDUCE, dt);
  e->red = k;
  e->var = var;
  e->extent = ext;
  e->a = body;
  return e;
}

static void lower_block(Lower *L, const IrBlock *b, PtrVec *into, int tvar);

/* Region arguments of mixture/skip: one buffer per arg with the region's tvar. */
static LoopRegion *lower_region(Lower *L, const IrBlock *r, int tvar, int bind_args) {
  LoopRegion *reg = loop_region_new(L->m, tvar);
  reg->nargs = r->nargs;
  reg->args = ARENA_ARRAY(L->m->arena, int, r->nargs ? r->nargs : 1);
  for (int i = 0; i < r->nargs; i++) {
    if (bind_args) new_value_buf(L, r->args[i], tvar);
    reg->args[i] = buf_of(L, r->args[i]);
  }
  lower_block(L, r, &reg->kernels, tvar);
  reg->nyield = r->nyield;
  reg->yields = ARENA_ARRAY(L->m->arena, int, r->nyield ? r->nyield : 1);
  for (int i = 0; i < r->nyield; i++) reg->yields[i] = buf_of(L, r->yields[i]);
  return reg;
}

static int io_index(const PtrVec *v, const char *name) {
  for (int i = 0; i < v->len; i++)
    if (strcmp(((IrIO *)v->data[i])->name, name) == 0) return i;
  return -1;
}

/* Does b (or a region nested in it) read positions? rope_only: count only
 * rope, which needs the rows' absolute positions even in a packed region. */
static int block_uses_position(const IrBlock *b, int rope_only) {
  for (int i = 0; i < b->ops.len; i++) {
    const IrOp *op = b->ops.data[i];
    if (op->kind == IR_OP_ROPE || (op->kind == IR_OP_POSITION && !rope_only)) return 1;
    for (int r = 0; r < op->nregions; r++)
      if (block_uses_position(op->regions[r], rope_only)) return 1;
  }
  return 0;
}

/* ---- per-op lowering: one helper per op family; `out` is the op's first result buffer ---- */

/* A model input: the caller's pointer, no kernel. */
static void lower_input(Lower *L, const IrOp *op, int tvar) {
  const IrValue *r0 = op->out[0];
  int i = io_index(&L->im->inputs, ir_op_str(op, "name", ""));
  if (i < 0) return lower_fail(L, op, "unknown input");
  LoopBuf *b = loop_buf_new(L->m, LB_INPUT, r0->dtype, r0->shape, tvar, ir_op_str(op, "name", ""));
  b->index = i;
  L->vbuf[r0->id] = b->id;
}

/* A weight: the caller's pointer, no kernel. */
static void lower_param(Lower *L, const IrOp *op, int tvar) {
  const IrValue *r0 = op->out[0];
  const char *name = ir_op_str(op, "name", "");
  int i;
  for (i = 0; i < L->im->params.len; i++)
    if (strcmp(((IrParam *)L->im->params.data[i])->name, name) == 0) break;
  if (i == L->im->params.len) return lower_fail(L, op, "unknown parameter");
  LoopBuf *b = loop_buf_new(L->m, LB_PARAM, r0->dtype, r0->shape, tvar, name);
  b->index = i;
  L->vbuf[r0->id] = b->id;
}

/* A model output: a copy into the caller's pointer, so no value aliases it. */
static void lower_output(Lower *L, const IrOp *op, PtrVec *into, int tvar) {
  const char *name = ir_op_str(op, "name", "");
  int i = io_index(&L->im->outputs, name);
  if (i < 0) return lower_fail(L, op, "unknown output");
  const IrValue *v = op->in[0];
  LoopBuf *b = loop_buf_new(L->m, LB_OUTPUT, v->dtype, v->shape, tvar, name);
  b->index = i;
  LoopKernel *k = kernel_for(L, op, LK_COPY, tvar, into);
  k->args[0] = buf_of(L, v);
  k->out = b->id;
  k->sizes[0] = size_dims(v->shape, 0, v->shape.rank, tvar);
  k->nsizes = 1;
}

/* pos0 + t: the absolute position of row t at the top level. */
static LoopExpr *expr_top_position(Lower *L) {
  LoopExpr *v = loop_expr_new(L->m, LX_VAR, IR_I32);
  v->var = 0;
  return expr_bin(L, IR_FN_ADD, IR_I32, loop_expr_new(L->m, LX_POS0, IR_I32), v);
}

/* position: pos0 + t at the top, base + row in a packed region, the gathered positions in a routed one. */
static void lower_position(Lower *L, const IrOp *op, PtrVec *into, int tvar, int out) {
  if (L->cur_base >= 0) { /* a packed region: base + row */
    LoopExpr *b = expr_load(L, L->cur_base, 1);
    b->idx[0].c = 0;
    LoopExpr *v = loop_expr_new(L->m, LX_VAR, IR_I32);
    v->var = 0;
    loop_kernel(L, op, tvar, into, out, expr_bin(L, IR_FN_ADD, IR_I32, b, v));
    return;
  }
  if (L->cur_pos >= 0) { /* the routed rows' own positions */
    LoopExpr *e = expr_load(L, L->cur_pos, 1);
    idx_var(&e->idx[0], 0, 0);
    loop_kernel(L, op, tvar, into, out, e);
    return;
  }
  loop_kernel(L, op, tvar, into, out, expr_top_position(L));
}

/* The IrFn of a unary/binary op: attr fn is an int, or a name in parsed IR text. */
static IrFn op_fn(const IrOp *op) {
  IrFn fn = (IrFn)ir_op_int(op, "fn", 0);
  if (ir_op_attr(op, "fn") && ir_op_attr(op, "fn")->kind == IR_ATTR_STR) fn = (IrFn)ir_fn_from_name(ir_op_str(op, "fn", ""));
  return fn;
}

/* const, unary, binary, select, cast: one loop nest over the result with broadcast loads. */
static void lower_elementwise(Lower *L, const IrOp *op, PtrVec *into, int tvar, int out) {
  const IrValue *r0 = op->out[0];
  int r = r0->shape.rank;
  const int64_t *ext = r0->shape.dims;
  LoopExpr *e;
  switch (op->kind) {
  case IR_OP_CONST:
    e = loop_expr_new(L->m, LX_CONST, r0->dtype);
    e->f = ir_op_float(op, "value", 0);
    break;
  case IR_OP_UNARY:
    e = loop_expr_new(L->m, LX_UNARY, op->in[0]->dtype);
    e->fn = op_fn(op);
    e->a = load_bcast(L, buf_of(L, op->in[0]), r, ext);
    break;
  case IR_OP_BINARY: {
    IrFn fn = op_fn(op);
    e = expr_bin(L, fn, op->in[0]->dtype, load_bcast(L, buf_of(L, op->in[0]), r, ext),
                 load_bcast(L, buf_of(L, op->in[1]), r, ext));
    break;
  }
  case IR_OP_SELECT:
    e = loop_expr_new(L->m, LX_SELECT, r0->dtype);
    e->a = load_bcast(L, buf_of(L, op->in[0]), r, ext);
    e->b = load_bcast(L, buf_of(L, op->in[1]), r, ext);
    e->c = load_bcast(L, buf_of(L, op->in[2]), r, ext);
    break;
  case IR_OP_CAST:
    e = load_bcast(L, buf_of(L, op->in[0]), r, ext);
    break;
  default:
    gat_unreachable();
  }
  loop_kernel(L, op, tvar, into, out, e);
}

/* Indexes the batch dims [0, rank-2) of a matmul operand x broadcast into the result's. */
static void matmul_batch_idx(LoopExpr *lx, IrShape x, int r, const int64_t *ext) {
  for (int d = 0; d < x.rank - 2; d++) {
    int od = d + (r - 2) - (x.rank - 2);
    if (x.dims[d] == 1 && ext[od] != 1) lx->idx[d].c = 0; else idx_var(&lx->idx[d], od, 0);
  }
}

/* out[..., i, j] = sum_k a[..., i, k] * b[..., k, j]; reduction var = r */
static void lower_matmul(Lower *L, const IrOp *op, PtrVec *into, int tvar, int out) {
  const IrValue *a = op->in[0], *b = op->in[1], *r0 = op->out[0];
  int r = r0->shape.rank, kv = r;
  IrDType dt = r0->dtype;
  int64_t K = a->shape.dims[a->shape.rank - 1];
  LoopExpr *la = expr_load(L, buf_of(L, a), a->shape.rank), *lb = expr_load(L, buf_of(L, b), b->shape.rank);
  matmul_batch_idx(la, a->shape, r, r0->shape.dims);
  matmul_batch_idx(lb, b->shape, r, r0->shape.dims);
  idx_var(&la->idx[a->shape.rank - 2], r - 2, 0);
  idx_var(&la->idx[a->shape.rank - 1], kv, 0);
  idx_var(&lb->idx[b->shape.rank - 2], kv, 0);
  idx_var(&lb->idx[b->shape.rank - 1], r - 1, 0);
  loop_kernel(L, op, tvar, into, out, expr_reduce(L, IR_RED_SUM, kv, K, dt, expr_bin(L, IR_FN_MUL, dt, la, lb)));
}

/* out[..., n] = sum_k x[..., k] * w[n, k] (+ bias[n]) */
static void lower_linear(Lower *L, const IrOp *op, PtrVec *into, int tvar, int out) {
  const IrValue *x = op->in[0], *w = op->in[1];
  int r = op->out[0]->shape.rank, kv = r;
  IrDType dt = op->out[0]->dtype;
  int64_t IN = w->shape.dims[1];
  LoopExpr *lx = expr_load(L, buf_of(L, x), x->shape.rank), *lw = expr_load(L, buf_of(L, w), 2);
  for (int d = 0; d < x->shape.rank - 1; d++) idx_var(&lx->idx[d], d, 0);
  idx_var(&lx->idx[x->shape.rank - 1], kv, 0);
  idx_var(&lw->idx[0], r - 1, 0);
  idx_var(&lw->idx[1], kv, 0);
  LoopExpr *e = expr_reduce(L, IR_RED_SUM, kv, IN, dt, expr_bin(L, IR_FN_MUL, dt, lx, lw));
  if (op->nin > 2) {
    LoopExpr *lb = expr_load(L, buf_of(L, op->in[2]), 1);
    idx_var(&lb->idx[0], r - 1, 0);
    e = expr_bin(L, IR_FN_ADD, dt, e, lb);
  }
  loop_kernel(L, op, tvar, into, out, e);
}

/* reduce over attr axes: kept dims take the result's variables, reduced dims new ones after them. */
static void lower_reduce(Lower *L, const IrOp *op, PtrVec *into, int tvar, int out) {
  const IrValue *x = op->in[0];
  const IrAttr *axes = ir_op_attr(op, "axes");
  IrReduceKind kind = (IrReduceKind)ir_op_int(op, "kind", 0);
  const char *ks = ir_op_str(op, "kind", NULL);
  if (ks) kind = !strcmp(ks, "sum") ? IR_RED_SUM : !strcmp(ks, "max") ? IR_RED_MAX : !strcmp(ks, "min") ? IR_RED_MIN : IR_RED_MEAN;
  int is_red[IR_MAX_RANK] = {0}, var_of[IR_MAX_RANK];
  for (int i = 0; axes && i < axes->n; i++) {
    int64_t ax = axes->ints[i] < 0 ? axes->ints[i] + x->shape.rank : axes->ints[i];
    if (ax < 0 || ax >= x->shape.rank) return lower_fail(L, op, "axis out of range");
    is_red[ax] = 1;
  }
  int ov = 0, rv = op->out[0]->shape.rank;
  for (int d = 0; d < x->shape.rank; d++) var_of[d] = is_red[d] ? rv++ : ov++;
  LoopExpr *e = expr_load(L, buf_of(L, x), x->shape.rank);
  for (int d = 0; d < x->shape.rank; d++) idx_var(&e->idx[d], var_of[d], 0);
  /* one nested reduction per axis, innermost = last axis */
  for (int d = x->shape.rank - 1; d >= 0; d--)
    if (is_red[d]) e = expr_reduce(L, kind, var_of[d], x->shape.dims[d], op->out[0]->dtype, e);
  loop_kernel(L, op, tvar, into, out, e);
}

/* LK_CALL kernel for op writing `out` with the given call kind; the caller fills args and sizes. */
static LoopKernel *call_kernel(Lower *L, const IrOp *op, PtrVec *into, int tvar, int out, LoopCallKind call) {
  LoopKernel *k = kernel_for(L, op, LK_CALL, tvar, into);
  k->call = call;
  k->out = out;
  return k;
}

/* softmax, the norms, gather, top-k: runtime row kernels sized [rows, row(, inner)]. */
static void lower_row_call(Lower *L, const IrOp *op, PtrVec *into, int tvar, int out) {
  const IrValue *x = op->in[0];
  LoopKernel *k;
  switch (op->kind) {
  case IR_OP_SOFTMAX: {
    int64_t ax = ir_op_int(op, "axis", -1);
    if (ax < 0) ax += x->shape.rank;
    k = call_kernel(L, op, into, tvar, out, LC_SOFTMAX);
    k->args[0] = buf_of(L, x);
    k->nargs = 1;
    k->sizes[0] = size_dims(x->shape, 0, (int)ax, tvar);
    k->sizes[1] = size_dims(x->shape, (int)ax, (int)ax + 1, tvar);
    k->sizes[2] = size_dims(x->shape, (int)ax + 1, x->shape.rank, tvar);
    k->nsizes = 3;
    return;
  }
  case IR_OP_RMS_NORM:
  case IR_OP_LAYER_NORM:
  case IR_OP_L2_NORM:
    k = call_kernel(L, op, into, tvar, out,
                    op->kind == IR_OP_RMS_NORM ? LC_RMS_NORM : op->kind == IR_OP_LAYER_NORM ? LC_LAYER_NORM : LC_L2_NORM);
    k->nargs = 3;
    for (int i = 0; i < op->nin && i < 3; i++) k->args[i] = buf_of(L, op->in[i]);
    k->sizes[0] = size_dims(x->shape, 0, x->shape.rank - 1, tvar);
    k->sizes[1] = size_dims(x->shape, x->shape.rank - 1, x->shape.rank, tvar);
    k->nsizes = 2;
    k->reals[0] = ir_op_float(op, "eps", op->kind == IR_OP_L2_NORM ? 1e-6 : 1e-5);
    k->reals[1] = (double)ir_op_int(op, "plus_one", 0);
    return;
  case IR_OP_GATHER: {
    const IrValue *ix = op->in[1];
    k = call_kernel(L, op, into, tvar, out, LC_GATHER);
    k->args[0] = buf_of(L, x);
    k->args[1] = buf_of(L, ix);
    k->nargs = 2;
    k->sizes[0] = size_dims(ix->shape, 0, ix->shape.rank, tvar);
    k->sizes[1] = size_dims(x->shape, 0, 1, tvar);
    k->sizes[2] = size_dims(x->shape, 1, x->shape.rank, tvar);
    k->nsizes = 3;
    return;
  }
  case IR_OP_TOPK:
    k = call_kernel(L, op, into, tvar, out, LC_TOPK);
    k->args[0] = buf_of(L, x);
    k->args[1] = buf_of(L, op->out[1]);
    k->nargs = 2;
    k->sizes[0] = size_dims(x->shape, 0, x->shape.rank - 1, tvar);
    k->sizes[1] = size_dims(x->shape, x->shape.rank - 1, x->shape.rank, tvar);
    k->sizes[2] = size_k(ir_op_int(op, "k", 1));
    k->nsizes = 3;
    return;
  default:
    gat_unreachable();
  }
}

/* reshape, transpose, concat, split/slice: copies and permuted or offset loop nests. */
static void lower_layout(Lower *L, const IrOp *op, PtrVec *into, int tvar, int out) {
  const IrValue *r0 = op->out[0];
  int r = r0->shape.rank;
  switch (op->kind) {
  case IR_OP_RESHAPE: {
    LoopKernel *k = kernel_for(L, op, LK_COPY, tvar, into);
    k->args[0] = buf_of(L, op->in[0]);
    k->out = out;
    k->sizes[0] = size_dims(r0->shape, 0, r, tvar);
    k->nsizes = 1;
    return;
  }
  case IR_OP_TRANSPOSE: {
    const IrAttr *perm = ir_op_attr(op, "perm");
    const IrValue *x = op->in[0];
    if (!perm || perm->n != r) return lower_fail(L, op, "bad perm");
    LoopExpr *e = expr_load(L, buf_of(L, x), x->shape.rank);
    for (int i = 0; i < r; i++) idx_var(&e->idx[perm->ints[i]], i, 0);
    loop_kernel(L, op, tvar, into, out, e);
    return;
  }
  case IR_OP_CONCAT: {
    int64_t ax = ir_op_int(op, "axis", 0), off = 0;
    if (ax < 0) ax += r;
    for (int i = 0; i < op->nin; i++) {
      const IrValue *x = op->in[i];
      LoopExpr *e = expr_load(L, buf_of(L, x), x->shape.rank);
      for (int d = 0; d < r; d++) idx_var(&e->idx[d], d, 0);
      LoopKernel *k = kernel_for(L, op, LK_LOOP, tvar, into);
      k->out = out;
      k->rank = r;
      for (int d = 0; d < r; d++) k->ext[d] = x->shape.dims[d];
      k->out_off[ax] = off;
      k->body = e;
      if (x->shape.dims[ax] == IR_DIM_T) return lower_fail(L, op, "concat along T");
      off += x->shape.dims[ax];
    }
    return;
  }
  case IR_OP_SPLIT:
  case IR_OP_SLICE: {
    int64_t ax = ir_op_int(op, "axis", 0), start = ir_op_int(op, "start", 0);
    if (ax < 0) ax += r;
    const IrValue *x = op->in[0];
    for (int i = 0; i < op->nout; i++) {
      LoopExpr *e = expr_load(L, buf_of(L, x), x->shape.rank);
      for (int d = 0; d < r; d++) idx_var(&e->idx[d], d, d == ax ? start : 0);
      loop_kernel(L, op, tvar, into, buf_of(L, op->out[i]), e);
      if (op->out[i]->shape.dims[ax] == IR_DIM_T && op->nout > 1) return lower_fail(L, op, "split along T");
      start += op->out[i]->shape.dims[ax];
    }
    return;
  }
  default:
    gat_unreachable();
  }
}

/* RoPE: a runtime call; in a mixture/skip region it also gets the rows' positions. */
static void lower_rope(Lower *L, const IrOp *op, PtrVec *into, int tvar, int out) {
  const IrValue *x = op->in[0];
  LoopKernel *k = call_kernel(L, op, into, tvar, out, LC_ROPE);
  k->args[0] = buf_of(L, x);
  k->nargs = 1;
  for (int d = 0; d < 3; d++) k->sizes[d] = size_dims(x->shape, d, d + 1, tvar);
  k->sizes[3] = size_k(ir_op_int(op, "dims", x->shape.dims[2]));
  k->nsizes = 4;
  k->reals[0] = ir_op_float(op, "base", 10000.0);
  if (L->cur_pos >= 0) { /* in a mixture/skip region: the rows' own positions (loopir.h LC_ROPE) */
    k->args[1] = L->cur_pos;
    k->nargs = 2;
  }
}

/* Causal depthwise conv1d: a runtime call over its state slot (the last rows of earlier calls). */
static void lower_conv1d(Lower *L, const IrOp *op, PtrVec *into, int tvar, int out) {
  const IrValue *x = op->in[0], *w = op->in[1];
  int64_t slot = ir_op_int(op, "state", -1);
  if (slot < 0 || slot >= L->im->states.len) return lower_fail(L, op, "bad state slot");
  LoopKernel *k = call_kernel(L, op, into, tvar, out, LC_CONV1D);
  k->args[0] = buf_of(L, x);
  k->args[1] = buf_of(L, w);
  k->args[2] = op->nin > 2 ? buf_of(L, op->in[2]) : -1;
  k->args[3] = L->state_buf[slot];
  k->nargs = 4;
  k->sizes[0] = size_dims(x->shape, 0, 1, tvar);
  k->sizes[1] = size_k(x->shape.dims[1]);
  k->sizes[2] = size_k(w->shape.dims[2]);
  k->nsizes = 3;
  k->reals[0] = strcmp(ir_op_str(op, "act", "none"), "silu") == 0 ? 1 : 0;
}

/* Attention: a runtime call with its KV-cache states and an f64 scores scratch (args: loopir.h LC_ATTENTION). */
static void lower_attention(Lower *L, const IrOp *op, PtrVec *into, int tvar, int out) {
  LoopModule *m = L->m;
  const IrValue *q = op->in[0], *kk = op->in[1], *v = op->in[2];
  int64_t sk = ir_op_int(op, "state_k", -1), sv = ir_op_int(op, "state_v", -1),
          skb = ir_op_int(op, "state_kb", -1);
  if (sk < 0 || sv < 0 || sk >= L->im->states.len || sv >= L->im->states.len) return lower_fail(L, op, "bad KV state slots");
  /* attr relbias: the last operand is the Toeplitz bias table (ir.h); it goes to
     args[9] and its length to sizes[6], so a kernel can tell it is there. */
  int rbi = ir_op_attr(op, "relbias") ? (int)ir_op_int(op, "relbias", -1) : -1;
  int biased = op->nin - (rbi >= 0) > 3;
  if (rbi >= 0 && rbi != op->nin - 1) return lower_fail(L, op, "relbias must be the last operand");
  if (biased && (skb < 0 || skb >= L->im->states.len)) return lower_fail(L, op, "bad kb state slot");
  LoopBuf *scratch = loop_buf_new(m, LB_SCRATCH, IR_F32, ir_shape_scalar(), tvar, "scores");
  scratch->is_f64 = 1;
  scratch->bytes = 8 * (m->max_T > 0 ? m->max_T : 1);
  LoopKernel *k = call_kernel(L, op, into, tvar, out, LC_ATTENTION);
  k->args[0] = buf_of(L, q);
  k->args[1] = buf_of(L, kk);
  k->args[2] = buf_of(L, v);
  k->args[3] = biased ? buf_of(L, op->in[3]) : -1;
  k->args[4] = biased ? buf_of(L, op->in[4]) : -1;
  k->args[5] = L->state_buf[sk];
  k->args[6] = L->state_buf[sv];
  k->args[7] = biased ? L->state_buf[skb] : -1;
  k->args[8] = scratch->id;
  k->args[9] = rbi >= 0 ? buf_of(L, op->in[rbi]) : -1;
  k->nargs = 10;
  if (L->cur_base >= 0) { /* under a skip/route: positions continue the packed rows */
    k->args[10] = L->cur_base;
    k->nargs = 11;
  } else if (L->cur_pos >= 0) { /* under a `kv: previous` skip: the rows' absolute positions (loopir.h) */
    k->args[10] = -1;
    k->args[11] = L->cur_pos;
    k->nargs = 12;
  }
  k->sizes[0] = size_dims(q->shape, 0, 1, tvar);
  k->sizes[1] = size_k(q->shape.dims[1]);
  k->sizes[2] = size_k(kk->shape.dims[1]);
  k->sizes[3] = size_k(q->shape.dims[2]);
  k->sizes[4] = size_k(v->shape.dims[2]);
  k->sizes[5] = size_k(ir_op_int(op, "window", 0));
  k->sizes[6] = size_k(rbi >= 0 ? op->in[rbi]->shape.dims[0] : 0);
  k->nsizes = 7;
  k->reals[0] = ir_op_float(op, "scale", 1.0 / sqrt((double)q->shape.dims[2]));
}

/* scan: LK_SCAN around the region, the states bound to its arguments, swaps double-buffered. */
static void lower_scan(Lower *L, const IrOp *op, PtrVec *into, int tvar) {
  LoopModule *m = L->m;
  const IrAttr *st = ir_op_attr(op, "states");
  const IrBlock *reg = op->nregions ? op->regions[0] : NULL;
  int n = st ? st->n : 0;
  if (!reg || reg->nargs != n + 1 || reg->nyield != n + op->nout || op->nout < 1)
    return lower_fail(L, op, "bad scan region");
  int *res = ARENA_ARRAY(m->arena, int, op->nout);
  for (int i = 0; i < op->nout; i++) res[i] = new_value_buf(L, op->out[i], tvar);
  LoopKernel *k = kernel_for(L, op, LK_SCAN, tvar, into);
  LoopBuf *tb = loop_buf_new(m, LB_SCRATCH, IR_I32, ir_shape_scalar(), tvar, "t");
  L->vbuf[reg->args[0]->id] = tb->id;
  k->nstates = n;
  k->state_bufs = ARENA_ARRAY(m->arena, int, n ? n : 1);
  for (int i = 0; i < n; i++) {
    if (st->ints[i] < 0 || st->ints[i] >= L->im->states.len) return lower_fail(L, op, "bad state slot");
    k->state_bufs[i] = L->state_buf[st->ints[i]];
    L->vbuf[reg->args[i + 1]->id] = k->state_bufs[i];
  }
  k->args[0] = tb->id;
  k->out = res[0];
  k->nxs = op->nout; /* the stacked results, one per emitted value */
  k->xs = res;
  k->nregions = 1;
  k->regions = ARENA_ARRAY(m->arena, LoopRegion *, 1);
  k->regions[0] = lower_region(L, reg, tvar, 0);
  /* s_i' may be s_j's old buffer (a swap): all new values must be read
   * before any state is overwritten, so such values go through a copy. */
  k->state_tmp = ARENA_ARRAY(m->arena, int, n ? n : 1);
  for (int i = 0; i < n; i++) {
    k->state_tmp[i] = -1;
    for (int j = 0; j < n; j++)
      if (j != i && k->regions[0]->yields[i] == k->state_bufs[j]) {
        const LoopBuf *sb = loop_buf(m, k->state_bufs[i]);
        k->state_tmp[i] = loop_buf_new(m, LB_SCRATCH, sb->dtype, sb->shape, sb->tvar, "state_swap")->id;
        break;
      }
  }
}

/* GateSkip's KV copy (attr kv_copy): the cache rows of the call's tokens come from
   the previous attention first (LC_COPY_ROWS, loopir.h). Returns 0 after a failure. */
static int lower_kv_copy(Lower *L, const IrOp *op, const IrAttr *kvc, PtrVec *into, int tvar) {
  if (L->cur_pos >= 0 || L->cur_base >= 0 || tvar != 0 || kvc->n % 2 != 0) {
    lower_fail(L, op, "kv_copy outside the model body");
    return 0;
  }
  for (int i = 0; i < kvc->n; i += 2) {
    int64_t a = kvc->ints[i], b = kvc->ints[i + 1];
    if (a < 0 || b < 0 || a >= L->im->states.len || b >= L->im->states.len) {
      lower_fail(L, op, "bad kv_copy slot");
      return 0;
    }
    const IrState *sa = L->im->states.data[a];
    LoopKernel *ck = kernel_for(L, op, LK_CALL, tvar, into);
    ck->call = LC_COPY_ROWS;
    ck->opname = "kv_copy";
    ck->out = L->state_buf[b];
    ck->args[0] = L->state_buf[a];
    ck->nargs = 1;
    ck->sizes[0] = (LoopSize){1, 1, tvar};
    ck->sizes[1] = size_dims(sa->shape, 1, sa->shape.rank, tvar);
    ck->nsizes = 2;
  }
  return 1;
}

/* A skip's router and threshold attrs into reals/skip_cmp: see LK_SKIP in loopir.h. */
static void skip_set_router(LoopKernel *k, const IrOp *op) {
  k->reals[0] = ir_op_float(op, "capacity", 0.0);
  k->reals[1] = (double)ir_op_int(op, "top_k", 0);
  k->reals[2] = ir_op_float(op, "threshold", -1.0);
  if (ir_op_attr(op, "cmp")) { /* a threshold skip: LoopKernel.skip_cmp */
    static const char *const cmps[] = {"lt", "le", "gt", "ge"};
    const char *c = ir_op_str(op, "cmp", "lt");
    for (int i = 0; i < 4; i++)
      if (!strcmp(c, cmps[i])) k->skip_cmp = i + 1;
    k->reals[3] = ir_op_float(op, "cut", 0.0);
  }
}

/* The buffer of the enclosing block's positions for a mixture/skip kernel k just pushed:
   the parent's own, else a fresh pos0 + t kernel placed before k. */
static int mix_parent_positions(Lower *L, const IrOp *op, LoopKernel *k, PtrVec *into, int tvar) {
  if (L->cur_pos >= 0) return L->cur_pos;
  LoopModule *m = L->m;
  LoopBuf *pb = loop_buf_new(m, LB_SCRATCH, IR_I32, ir_shape(1, (int64_t[]){IR_DIM_T}), tvar, "positions");
  LoopKernel *pk = loop_kernel(L, op, tvar, into, pb->id, expr_top_position(L));
  pk->opname = "position";
  /* the kernel must run before the mixture/skip kernel: swap them */
  GAT_ASSERT(into->len >= 2 && into->data[into->len - 2] == k);
  into->data[into->len - 2] = pk;
  into->data[into->len - 1] = k;
  return pb->id;
}

/* Lowers the mixture/skip regions of op into k, each with its own row variable; with want_pos
   each region gets one more argument, its rows' positions. */
static void lower_mix_regions(Lower *L, const IrOp *op, LoopKernel *k, int nx_ir, int want_pos, int64_t rows_state) {
  LoopModule *m = L->m;
  int saved_pos = L->cur_pos, saved_base = L->cur_base;
  if (rows_state >= 0) L->cur_base = k->state_bufs[0];
  for (int e = 0; e < op->nregions; e++) {
    if (op->regions[e]->nargs != nx_ir || op->regions[e]->nyield != 1)
      return lower_fail(L, op, "region signature does not match the operands");
    int rtv = m->ntvars++;
    int parg = -1;
    if (want_pos)
      parg = loop_buf_new(m, LB_SCRATCH, IR_I32, ir_shape(1, (int64_t[]){IR_DIM_T}), rtv, "positions")->id;
    L->cur_pos = parg;
    LoopRegion *reg = lower_region(L, op->regions[e], rtv, 1);
    L->cur_pos = saved_pos;
    if (e == op->nregions - 1) L->cur_base = saved_base;
    if (want_pos) {
      int *args = ARENA_ARRAY(m->arena, int, reg->nargs + 1);
      for (int i = 0; i < reg->nargs; i++) args[i] = reg->args[i];
      args[reg->nargs++] = parg;
      reg->args = args;
    }
    k->regions[e] = reg;
  }
}

/* mixture / skip: gather rows -> regions -> scatter (LK_MIXTURE / LK_SKIP in loopir.h). */
static void lower_mixture_skip(Lower *L, const IrOp *op, PtrVec *into, int tvar, int out) {
  LoopModule *m = L->m;
  int mix = op->kind == IR_OP_MIXTURE;
  int nfixed = 2;
  if (op->nregions < 1) return lower_fail(L, op, "no regions");
  const IrAttr *kvc = mix ? NULL : ir_op_attr(op, "kv_copy");
  if (kvc && !lower_kv_copy(L, op, kvc, into, tvar)) return;
  LoopKernel *k = kernel_for(L, op, mix ? LK_MIXTURE : LK_SKIP, tvar, into);
  LoopBuf *rows = loop_buf_new(m, LB_SCRATCH, IR_I32, ir_shape(1, (int64_t[]){IR_DIM_T}), tvar, "rows");
  k->args[0] = buf_of(L, op->in[0]);
  k->args[1] = buf_of(L, op->in[1]);
  k->args[2] = rows->id;
  if (mix) {
    LoopBuf *acc = loop_buf_new(m, LB_SCRATCH, IR_F32, op->out[0]->shape, tvar, "mix_acc");
    acc->is_f64 = 1;
    acc->bytes = gat_size_mul(acc->bytes, 2);
    k->args[3] = acc->id;
  }
  k->out = out;
  if (mix) k->sizes[0] = size_k(op->in[0]->shape.dims[1]);
  if (!mix) skip_set_router(k, op); /* a router (route top(...) by r): see LK_SKIP in loopir.h */
  k->nxs = op->nin - nfixed;
  k->xs = ARENA_ARRAY(m->arena, int, k->nxs ? k->nxs : 1);
  for (int i = 0; i < k->nxs; i++) k->xs[i] = buf_of(L, op->in[nfixed + i]);
  k->nregions = op->nregions;
  k->regions = ARENA_ARRAY(m->arena, LoopRegion *, op->nregions);
  /* Positions read inside the regions: the enclosing block's positions
     travel as one more gathered operand (the last xs / region arg). */
  int nx_ir = k->nxs;
  int want_pos = 0;
  int64_t rows_state = mix ? -1 : ir_op_int(op, "rows_state", -1);
  if (rows_state >= 0) { /* packed rows: LK_SKIP state_bufs[0] (loopir.h) */
    if (rows_state >= L->im->states.len) return lower_fail(L, op, "bad rows_state slot");
    k->nstates = 1;
    k->state_bufs = ARENA_ARRAY(m->arena, int, 1);
    k->state_bufs[0] = L->state_buf[rows_state];
  }
  for (int e = 0; e < op->nregions; e++) want_pos |= block_uses_position(op->regions[e], rows_state >= 0);
  want_pos |= kvc != NULL; /* the attention of a `kv: previous` region needs its rows' positions */
  if (want_pos) {
    int pos_parent = mix_parent_positions(L, op, k, into, tvar);
    int *xs = ARENA_ARRAY(m->arena, int, k->nxs + 1);
    for (int i = 0; i < k->nxs; i++) xs[i] = k->xs[i];
    xs[k->nxs++] = pos_parent;
    k->xs = xs;
  }
  lower_mix_regions(L, op, k, nx_ir, want_pos, rows_state);
}

static void lower_op(Lower *L, const IrOp *op, PtrVec *into, int tvar) {
  switch (op->kind) {
  case IR_OP_INPUT:
    return lower_input(L, op, tvar);
  case IR_OP_PARAM:
    return lower_param(L, op, tvar);
  case IR_OP_OUTPUT:
    return lower_output(L, op, into, tvar);
  case IR_OP_SCAN: /* makes its own result buffers */
    return lower_scan(L, op, into, tvar);
  default:
    break;
  }
  /* every other op computes its results into fresh scratch buffers */
  int out = -1;
  for (int i = 0; i < op->nout; i++) {
    int b = new_value_buf(L, op->out[i], tvar);
    if (i == 0) out = b;
  }
  switch (op->kind) {
  case IR_OP_CONST:
  case IR_OP_UNARY:
  case IR_OP_BINARY:
  case IR_OP_SELECT:
  case IR_OP_CAST:
    return lower_elementwise(L, op, into, tvar, out);
  case IR_OP_POSITION:
    return lower_position(L, op, into, tvar, out);
  case IR_OP_MATMUL:
    return lower_matmul(L, op, into, tvar, out);
  case IR_OP_LINEAR:
    return lower_linear(L, op, into, tvar, out);
  case IR_OP_INDEX:
    if (!op->expr) return lower_fail(L, op, "index op without a body");
    loop_kernel(L, op, tvar, into, out, conv_index_expr(L, op, op->expr, op->out[0]->dtype));
    return;
  case IR_OP_REDUCE:
    return lower_reduce(L, op, into, tvar, out);
  case IR_OP_SOFTMAX:
  case IR_OP_RMS_NORM:
  case IR_OP_LAYER_NORM:
  case IR_OP_L2_NORM:
  case IR_OP_GATHER:
  case IR_OP_TOPK:
    return lower_row_call(L, op, into, tvar, out);
  case IR_OP_RESHAPE:
  case IR_OP_TRANSPOSE:
  case IR_OP_CONCAT:
  case IR_OP_SPLIT:
  case IR_OP_SLICE:
    return lower_layout(L, op, into, tvar, out);
  case IR_OP_ROPE:
    return lower_rope(L, op, into, tvar, out);
  case IR_OP_CONV1D:
    return lower_conv1d(L, op, into, tvar, out);
  case IR_OP_ATTENTION:
    return lower_attention(L, op, into, tvar, out);
  case IR_OP_MIXTURE:
  case IR_OP_SKIP:
    return lower_mixture_skip(L, op, into, tvar, out);
  default:
    return lower_fail(L, op, "op kind not supported by the loop IR");
  }
}

static void lower_block(Lower *L, const IrBlock *b, PtrVec *into, int tvar) {
  for (int i = 0; i < b->ops.len && !L->failed; i++) lower_op(L, b->ops.data[i], into, tvar);
}

static LoopTensorInfo *copy_io(Arena *a, const PtrVec *v) {
  LoopTensorInfo *t = ARENA_ARRAY(a, LoopTensorInfo, v->len ? v->len : 1);
  for (int i = 0; i < v->len; i++) {
    const IrIO *io = v->data[i];
    t[i].name = arena_strdup(a, io->name);
    t[i].dtype = io->dtype;
    t[i].shape = io->shape;
  }
  return t;
}

LoopModule *loop_lower(Arena *a, const IrModule *im, const char *c_name, char *err, size_t errlen) {
  Lower L;
  memset(&L, 0, sizeof L);
  L.m = loop_module_new(a, c_name, im->max_T);
  L.im = im;
  L.err = err;
  L.errlen = errlen;
  L.cur_pos = -1;
  L.cur_base = -1;
  L.vbuf = ARENA_ARRAY(a, int, im->next_value_id + 1);
  for (int i = 0; i <= im->next_value_id; i++) L.vbuf[i] = -1;
  LoopModule *m = L.m;
  m->nparams = im->params.len;
  m->params = ARENA_ARRAY(a, LoopTensorInfo, m->nparams ? m->nparams : 1);
  for (int i = 0; i < m->nparams; i++) {
    const IrParam *p = im->params.data[i];
    m->params[i].name = arena_strdup(a, p->name);
    m->params[i].dtype = p->dtype;
    m->params[i].shape = p->shape;
  }
  m->ninputs = im->inputs.len;
  m->inputs = copy_io(a, &im->inputs);
  m->noutputs = im->outputs.len;
  m->outputs = copy_io(a, &im->outputs);
  m->nstates = im->states.len;
  m->states = ARENA_ARRAY(a, LoopTensorInfo, m->nstates ? m->nstates : 1);
  L.state_buf = ARENA_ARRAY(a, int, m->nstates ? m->nstates : 1);
  for (int i = 0; i < m->nstates; i++) {
    const IrState *s = im->states.data[i];
    m->states[i].name = arena_strdup(a, s->name);
    m->states[i].dtype = s->dtype;
    m->states[i].shape = s->shape;
    m->states[i].init = s->init;
    LoopBuf *b = loop_buf_new(m, LB_STATE, s->dtype, s->shape, 0, s->name);
    b->index = i;
    L.state_buf[i] = b->id;
  }
  lower_block(&L, im->body, &m->kernels, 0);
  if (L.failed) return NULL;
  loop_module_layout(m);
  return m;
}
