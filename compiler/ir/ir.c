/* ir.c — building graph IR modules: modules, blocks, ops, values, attributes
 * and index expressions. Everything is allocated in the module's arena;
 * op/value lists grow in heap PtrVecs owned by their block (freed never:
 * a module lives as long as its compilation). See ir.h for the semantics. */
#include "ir.h"
#include "gat_limits.h"

#include <string.h>

static const char *const fn_names[IR_FN_COUNT_] = {
    [IR_FN_NEG] = "neg", [IR_FN_EXP] = "exp", [IR_FN_LOG] = "log", [IR_FN_SQRT] = "sqrt",
    [IR_FN_RSQRT] = "rsqrt", [IR_FN_ABS] = "abs", [IR_FN_TANH] = "tanh",
    [IR_FN_SIGMOID] = "sigmoid", [IR_FN_LOGSIGMOID] = "logsigmoid", [IR_FN_SILU] = "silu",
    [IR_FN_RELU] = "relu", [IR_FN_GELU_ERF] = "gelu", [IR_FN_GELU_TANH] = "gelu_tanh",
    [IR_FN_SOFTPLUS] = "softplus", [IR_FN_NOT] = "not", [IR_FN_ADD] = "add",
    [IR_FN_SUB] = "sub", [IR_FN_MUL] = "mul", [IR_FN_DIV] = "div", [IR_FN_POW] = "pow",
    [IR_FN_MAX] = "max", [IR_FN_MIN] = "min", [IR_FN_MOD] = "mod", [IR_FN_LT] = "lt",
    [IR_FN_LE] = "le", [IR_FN_GT] = "gt", [IR_FN_GE] = "ge", [IR_FN_EQ] = "eq",
    [IR_FN_NE] = "ne", [IR_FN_AND] = "and", [IR_FN_OR] = "or",
};

int ir_fn_arity(IrFn f) { return f <= IR_FN_NOT ? 1 : 2; }
const char *ir_fn_name(IrFn f) {
  GAT_ASSERT(f >= 0 && f < IR_FN_COUNT_);
  return fn_names[f];
}
int ir_fn_from_name(const char *s) {
  for (int i = 0; i < IR_FN_COUNT_; i++)
    if (strcmp(fn_names[i], s) == 0) return i;
  return -1;
}

static const char *const op_names[IR_OP_COUNT_] = {
    [IR_OP_INPUT] = "input", [IR_OP_PARAM] = "param", [IR_OP_CONST] = "const",
    [IR_OP_POSITION] = "position", [IR_OP_OUTPUT] = "output", [IR_OP_UNARY] = "unary",
    [IR_OP_BINARY] = "binary", [IR_OP_SELECT] = "select", [IR_OP_CAST] = "cast",
    [IR_OP_MATMUL] = "matmul", [IR_OP_LINEAR] = "linear", [IR_OP_INDEX] = "index",
    [IR_OP_REDUCE] = "reduce", [IR_OP_SOFTMAX] = "softmax", [IR_OP_RMS_NORM] = "rms_norm",
    [IR_OP_LAYER_NORM] = "layer_norm", [IR_OP_L2_NORM] = "l2_norm", [IR_OP_GATHER] = "gather",
    [IR_OP_TOPK] = "topk", [IR_OP_RESHAPE] = "reshape", [IR_OP_TRANSPOSE] = "transpose",
    [IR_OP_CONCAT] = "concat", [IR_OP_SPLIT] = "split", [IR_OP_SLICE] = "slice",
    [IR_OP_ROPE] = "rope", [IR_OP_CONV1D] = "conv1d", [IR_OP_ATTENTION] = "attention",
    [IR_OP_SCAN] = "scan", [IR_OP_MIXTURE] = "mixture", [IR_OP_SKIP] = "skip",
};
const char *ir_op_name(IrOpKind k) {
  GAT_ASSERT(k >= 0 && k < IR_OP_COUNT_);
  return op_names[k];
}
int ir_op_from_name(const char *s) {
  for (int i = 0; i < IR_OP_COUNT_; i++)
    if (strcmp(op_names[i], s) == 0) return i;
  return -1;
}

IrModule *ir_module_new(Arena *a, const char *name, int64_t max_T) {
  IrModule *m = ARENA_NEW(a, IrModule);
  m->arena = a;
  m->name = arena_strdup(a, name);
  m->max_T = max_T;
  m->body = ir_block_new(m, NULL);
  return m;
}

IrParam *ir_module_add_param(IrModule *m, const char *name, IrDType dt, IrShape shape, IrInit init,
                             SrcLoc loc) {
  IrParam *p = ARENA_NEW(m->arena, IrParam);
  p->name = arena_strdup(m->arena, name);
  p->dtype = dt;
  p->shape = shape;
  p->init = init;
  p->loc = loc;
  ptrvec_push(&m->params, p);
  return p;
}
IrParam *ir_module_find_param(const IrModule *m, const char *name) {
  for (int i = 0; i < m->params.len; i++) {
    IrParam *p = m->params.data[i];
    if (strcmp(p->name, name) == 0) return p;
  }
  return NULL;
}
static IrIO *new_io(IrModule *m, const char *name, IrDType dt, IrShape shape) {
  IrIO *io = ARENA_NEW(m->arena, IrIO);
  io->name = arena_strdup(m->arena, name);
  io->dtype = dt;
  io->shape = shape;
  return io;
}
IrIO *ir_module_add_input(IrModule *m, const char *name, IrDType dt, IrShape shape) {
  IrIO *io = new_io(m, name, dt, shape);
  ptrvec_push(&m->inputs, io);
  return io;
}
IrIO *ir_module_add_output(IrModule *m, const char *name, IrDType dt, IrShape shape) {
  IrIO *io = new_io(m, name, dt, shape);
  ptrvec_push(&m->outputs, io);
  return io;
}
int ir_module_add_state(IrModule *m, const char *name, IrDType dt, IrShape shape, double init) {
  IrState *s = ARENA_NEW(m->arena, IrState);
  s->name = arena_strdup(m->arena, name);
  s->dtype = dt;
  s->shape = shape;
  s->init = init;
  ptrvec_push(&m->states, s);
  return m->states.len - 1;
}

IrBlock *ir_block_new(IrModule *m, IrOp *parent) {
  IrBlock *b = ARENA_NEW(m->arena, IrBlock);
  b->parent = parent;
  return b;
}
static IrValue *new_value(IrModule *m, IrDType dt, IrShape shape) {
  IrValue *v = ARENA_NEW(m->arena, IrValue);
  v->id = m->next_value_id++;
  v->dtype = dt;
  v->shape = shape;
  return v;
}
IrValue *ir_block_add_arg(IrModule *m, IrBlock *b, IrDType dt, IrShape shape) {
  IrValue *v = new_value(m, dt, shape);
  v->block = b;
  v->index = b->nargs;
  IrValue **args = ARENA_ARRAY(m->arena, IrValue *, b->nargs + 1);
  if (b->nargs) memcpy(args, b->args, sizeof(IrValue *) * (size_t)b->nargs);
  args[b->nargs++] = v;
  b->args = args;
  return v;
}
void ir_block_set_yields(IrModule *m, IrBlock *b, int n, IrValue **vals) {
  b->yields = ARENA_ARRAY(m->arena, IrValue *, n ? n : 1);
  if (n) memcpy(b->yields, vals, sizeof(IrValue *) * (size_t)n);
  b->nyield = n;
}

IrOp *ir_op_new(IrModule *m, IrBlock *b, IrOpKind kind, int nin, IrValue *const *in, SrcLoc loc) {
  IrOp *op = ARENA_NEW(m->arena, IrOp);
  op->kind = kind;
  op->nin = nin;
  op->in = ARENA_ARRAY(m->arena, IrValue *, nin ? nin : 1);
  if (nin) memcpy(op->in, in, sizeof(IrValue *) * (size_t)nin);
  op->parent = b;
  op->loc = loc;
  if (b) ptrvec_push(&b->ops, op);
  return op;
}
IrValue *ir_op_add_result(IrModule *m, IrOp *op, IrDType dt, IrShape shape) {
  IrValue *v = new_value(m, dt, shape);
  v->def = op;
  v->block = op->parent;
  v->index = op->nout;
  IrValue **out = ARENA_ARRAY(m->arena, IrValue *, op->nout + 1);
  if (op->nout) memcpy(out, op->out, sizeof(IrValue *) * (size_t)op->nout);
  out[op->nout++] = v;
  op->out = out;
  return v;
}
int ir_op_add_operand(IrModule *m, IrOp *op, IrValue *v) {
  IrValue **in = ARENA_ARRAY(m->arena, IrValue *, op->nin + 1);
  if (op->nin) memcpy(in, op->in, sizeof(IrValue *) * (size_t)op->nin);
  in[op->nin] = v;
  op->in = in;
  return op->nin++;
}
IrBlock *ir_op_add_region(IrModule *m, IrOp *op) {
  IrBlock *b = ir_block_new(m, op);
  IrBlock **r = ARENA_ARRAY(m->arena, IrBlock *, op->nregions + 1);
  if (op->nregions) memcpy(r, op->regions, sizeof(IrBlock *) * (size_t)op->nregions);
  r[op->nregions++] = b;
  op->regions = r;
  return b;
}

static IrAttr *attr_slot(IrModule *m, IrOp *op, const char *key) {
  for (int i = 0; i < op->nattr; i++)
    if (strcmp(op->attrs[i].key, key) == 0) return &op->attrs[i];
  IrAttr *a = ARENA_ARRAY(m->arena, IrAttr, op->nattr + 1);
  if (op->nattr) memcpy(a, op->attrs, sizeof(IrAttr) * (size_t)op->nattr);
  op->attrs = a;
  IrAttr *s = &a[op->nattr++];
  s->key = arena_strdup(m->arena, key);
  return s;
}
void ir_op_set_int(IrModule *m, IrOp *op, const char *key, int64_t v) {
  IrAttr *a = attr_slot(m, op, key);
  a->kind = IR_ATTR_INT;
  a->i = v;
}
void ir_op_set_float(IrModule *m, IrOp *op, const char *key, double v) {
  IrAttr *a = attr_slot(m, op, key);
  a->kind = IR_ATTR_FLOAT;
  a->f = v;
}
void ir_op_set_str(IrModule *m, IrOp *op, const char *key, const char *v) {
  IrAttr *a = attr_slot(m, op, key);
  a->kind = IR_ATTR_STR;
  a->s = arena_strdup(m->arena, v);
}
void ir_op_set_ints(IrModule *m, IrOp *op, const char *key, int n, const int64_t *v) {
  IrAttr *a = attr_slot(m, op, key);
  a->kind = IR_ATTR_INTS;
  a->n = n;
  a->ints = ARENA_ARRAY(m->arena, int64_t, n ? n : 1);
  if (n) memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
}
const IrAttr *ir_op_attr(const IrOp *op, const char *key) {
  for (int i = 0; i < op->nattr; i++)
    if (strcmp(op->attrs[i].key, key) == 0) return &op->attrs[i];
  return NULL;
}
int64_t ir_op_int(const IrOp *op, const char *key, int64_t deflt) {
  const IrAttr *a = ir_op_attr(op, key);
  if (!a) return deflt;
  return a->kind == IR_ATTR_FLOAT ? (int64_t)a->f : a->i;
}
double ir_op_float(const IrOp *op, const char *key, double deflt) {
  const IrAttr *a = ir_op_attr(op, key);
  if (!a) return deflt;
  return a->kind == IR_ATTR_INT ? (double)a->i : a->f;
}
const char *ir_op_str(const IrOp *op, const char *key, const char *deflt) {
  const IrAttr *a = ir_op_attr(op, key);
  return a && a->kind == IR_ATTR_STR ? a->s : deflt;
}

static IrExpr *new_expr(IrModule *m, IrExprKind k) {
  IrExpr *e = ARENA_NEW(m->arena, IrExpr);
  e->kind = k;
  return e;
}
IrExpr *ir_expr_const(IrModule *m, double v) {
  IrExpr *e = new_expr(m, IR_EX_CONST);
  e->fval = v;
  return e;
}
IrExpr *ir_expr_load(IrModule *m, int operand, int nidx, const IrAffine *idx) {
  IrExpr *e = new_expr(m, IR_EX_LOAD);
  e->operand = operand;
  e->nidx = nidx;
  e->idx = ARENA_ARRAY(m->arena, IrAffine, nidx ? nidx : 1);
  if (nidx) memcpy(e->idx, idx, sizeof(IrAffine) * (size_t)nidx);
  return e;
}
IrExpr *ir_expr_var(IrModule *m, int var) {
  IrExpr *e = new_expr(m, IR_EX_VAR);
  e->var = var;
  return e;
}
IrExpr *ir_expr_unary(IrModule *m, IrFn fn, IrExpr *a) {
  IrExpr *e = new_expr(m, IR_EX_UNARY);
  e->fn = fn;
  e->a = a;
  return e;
}
IrExpr *ir_expr_binary(IrModule *m, IrFn fn, IrExpr *a, IrExpr *b) {
  IrExpr *e = new_expr(m, IR_EX_BINARY);
  e->fn = fn;
  e->a = a;
  e->b = b;
  return e;
}
IrExpr *ir_expr_select(IrModule *m, IrExpr *c, IrExpr *a, IrExpr *b) {
  IrExpr *e = new_expr(m, IR_EX_SELECT);
  e->a = c;
  e->b = a;
  e->c = b;
  return e;
}
IrExpr *ir_expr_reduce(IrModule *m, IrReduceKind k, int var, int64_t extent, IrExpr *body) {
  IrExpr *e = new_expr(m, IR_EX_REDUCE);
  e->reduce = k;
  e->var = var;
  e->extent = extent;
  e->a = body;
  return e;
}

IrShape ir_shape(int rank, const int64_t *dims) {
  IrShape s;
  memset(&s, 0, sizeof s);
  GAT_ASSERT(rank >= 0 && rank <= IR_MAX_RANK);
  s.rank = rank;
  for (int i = 0; i < rank; i++) s.dims[i] = dims[i];
  return s;
}
IrShape ir_shape_scalar(void) { return ir_shape(0, NULL); }
int ir_shape_eq(IrShape a, IrShape b) {
  if (a.rank != b.rank) return 0;
  for (int i = 0; i < a.rank; i++)
    if (a.dims[i] != b.dims[i]) return 0;
  return 1;
}
int ir_shape_has_T(IrShape s) {
  for (int i = 0; i < s.rank; i++)
    if (s.dims[i] == IR_DIM_T) return 1;
  return 0;
}
int64_t ir_shape_numel(IrShape s, int64_t T) {
  int64_t n = 1;
  for (int i = 0; i < s.rank; i++) n = gat_size_mul(n, s.dims[i] == IR_DIM_T ? T : s.dims[i]);
  return n;
}
const char *ir_dtype_name(IrDType dt) { return dt == IR_F32 ? "f32" : "i32"; }
void ir_type_str(char *buf, size_t n, IrDType dt, IrShape s) {
  size_t used = (size_t)snprintf(buf, n, "%s[", ir_dtype_name(dt));
  for (int i = 0; i < s.rank && used < n; i++) {
    if (s.dims[i] == IR_DIM_T)
      used += (size_t)snprintf(buf + used, n - used, "%sT", i ? ", " : "");
    else
      used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)s.dims[i]);
  }
  if (used < n) snprintf(buf + used, n - used, "]");
}

/* Modules live in their arena, but op lists and module tables are heap
 * PtrVecs; tests that build many modules under LeakSanitizer release them
 * here before dropping the arena. The module must not be used afterwards. */
static void block_release(IrBlock *b) {
  if (!b) return;
  for (int i = 0; i < b->ops.len; i++) {
    IrOp *op = b->ops.data[i];
    for (int r = 0; r < op->nregions; r++) block_release(op->regions[r]);
  }
  ptrvec_free(&b->ops);
}
void ir_module_release(IrModule *m) {
  if (!m) return;
  block_release(m->body);
  ptrvec_free(&m->params);
  ptrvec_free(&m->inputs);
  ptrvec_free(&m->outputs);
  ptrvec_free(&m->states);
}
