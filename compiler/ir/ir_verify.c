/* ir_verify.c — the graph IR verifier, run after lowering and after every
 * pass (the QBE `ssacheck` idea): a pass that breaks an invariant is caught
 * at the pass, not three stages later in generated C.
 *
 * What it checks (docs/internals.md, "Graph IR", lists the rules):
 *  - the module tables: unique names, static param and state shapes;
 *  - SSA: every operand is defined earlier in its block or in an enclosing
 *    block; region values are invisible outside their region; no value is
 *    defined twice; per-token ([T, ...]) values do not cross into mixture or
 *    skip regions except as explicit operands (T means other rows there);
 *  - per op kind: operand/result counts, dtypes, attributes, and the result
 *    types recomputed from the operand types (numpy broadcasting where the op
 *    broadcasts; T broadcasts only with T or 1);
 *  - state slots named by attention, conv1d and scan exist with the right
 *    shapes; region signatures match the op's operands and results;
 *  - param/input/output ops agree with the module tables; every output is
 *    produced exactly once;
 *  - index expressions: variables bound, loads well-formed and provably in
 *    bounds (see check_affine for the simple rule used).
 *
 * The first problem found ends the walk (longjmp); the message starts with
 * the offending op's text line, numbered as in ir_print's dump. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "gat_limits.h"
#include "ir.h"

#define MAX_VARS 64 /* loop variables an index expression may use: v0..v63 */

typedef struct Verifier {
  const IrModule *m;
  char *err;
  size_t errlen;
  int nids;
  const IrValue **defined; /* by id: the value defined under that id */
  unsigned char *live;     /* by id: visible at the current point */
  const IrBlock **tscope;  /* by id: innermost mixture/skip region around the definition */
  int *out_count;          /* per module output: output ops naming it */
  jmp_buf fail;
} Verifier;

static void vfail(Verifier *v, const IrOp *op, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));
static void vfail(Verifier *v, const IrOp *op, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (v->err && v->errlen) {
    if (op) {
      char *line = ir_op_to_string(v->m, op);
      snprintf(v->err, v->errlen, "`%s`: %s", line, msg);
      free(line);
    } else {
      snprintf(v->err, v->errlen, "%s", msg);
    }
  }
  longjmp(v->fail, 1);
}

/* ---- small helpers ---------------------------------------------------------- */

typedef struct TypeStr {
  char s[256];
} TypeStr;
static TypeStr tstr(IrDType dt, IrShape s) {
  TypeStr t;
  ir_type_str(t.s, sizeof t.s, dt, s);
  return t;
}
static TypeStr vstr(const IrValue *x) { return tstr(x->dtype, x->shape); }

static void need_counts(Verifier *v, const IrOp *op, int min_in, int max_in, int nout) {
  if (op->nin < min_in || (max_in >= 0 && op->nin > max_in)) {
    if (min_in == max_in)
      vfail(v, op, "%s takes %d operand%s, not %d", ir_op_name(op->kind), min_in, min_in == 1 ? "" : "s",
            op->nin);
    if (max_in < 0)
      vfail(v, op, "%s takes at least %d operands, not %d", ir_op_name(op->kind), min_in, op->nin);
    vfail(v, op, "%s takes %d to %d operands, not %d", ir_op_name(op->kind), min_in, max_in, op->nin);
  }
  if (nout >= 0 && op->nout != nout)
    vfail(v, op, "%s has %d result%s, not %d", ir_op_name(op->kind), nout, nout == 1 ? "" : "s", op->nout);
  if (op->nregions != 0 && op->kind != IR_OP_SCAN && op->kind != IR_OP_MIXTURE && op->kind != IR_OP_SKIP)
    vfail(v, op, "%s has no regions, but this one has %d", ir_op_name(op->kind), op->nregions);
}

static void need_dtype(Verifier *v, const IrOp *op, const IrValue *x, IrDType dt, const char *what) {
  if (x->dtype != dt)
    vfail(v, op, "%s must be %s, got %s", what, ir_dtype_name(dt), vstr(x).s);
}

static void need_rank(Verifier *v, const IrOp *op, const IrValue *x, int rank, const char *what) {
  if (x->shape.rank != rank) vfail(v, op, "%s must have rank %d, got %s", what, rank, vstr(x).s);
}

/* The result type must be exactly what the op computes from its operands. */
static void need_result(Verifier *v, const IrOp *op, int i, IrDType dt, IrShape s) {
  const IrValue *r = op->out[i];
  if (r->dtype != dt || !ir_shape_eq(r->shape, s))
    vfail(v, op, "result %d has type %s, but the op computes %s", i, vstr(r).s, tstr(dt, s).s);
}

static const IrAttr *need_attr(Verifier *v, const IrOp *op, const char *key, IrAttrKind kind) {
  static const char *const kind_names[] = {"an integer", "a float", "a string", "a list of integers"};
  const IrAttr *a = ir_op_attr(op, key);
  if (!a) vfail(v, op, "missing attribute '%s' (%s)", key, kind_names[kind]);
  /* Integers are acceptable where a float is expected. */
  if (a->kind != kind && !(kind == IR_ATTR_FLOAT && a->kind == IR_ATTR_INT))
    vfail(v, op, "attribute '%s' must be %s", key, kind_names[kind]);
  return a;
}
static int64_t need_int(Verifier *v, const IrOp *op, const char *key) {
  return need_attr(v, op, key, IR_ATTR_INT)->i;
}
static double need_float(Verifier *v, const IrOp *op, const char *key) {
  const IrAttr *a = need_attr(v, op, key, IR_ATTR_FLOAT);
  return a->kind == IR_ATTR_INT ? (double)a->i : a->f;
}
static const char *need_str(Verifier *v, const IrOp *op, const char *key) {
  return need_attr(v, op, key, IR_ATTR_STR)->s;
}
static int64_t opt_int(Verifier *v, const IrOp *op, const char *key, int64_t deflt) {
  return ir_op_attr(op, key) ? need_int(v, op, key) : deflt;
}

/* Axes may count from the end (-1 = last), as in the interpreter; returns
 * the axis in [0, rank). */
static int64_t need_axis(Verifier *v, const IrOp *op, const char *key, int rank) {
  int64_t ax = need_int(v, op, key);
  if (ax < -rank || ax >= rank) vfail(v, op, "%s %lld is out of range for rank %d", key, (long long)ax, rank);
  return ax < 0 ? ax + rank : ax;
}

static void dim_str(char *buf, size_t n, int64_t d) {
  if (d == IR_DIM_T)
    snprintf(buf, n, "T");
  else
    snprintf(buf, n, "%lld", (long long)d);
}

/* numpy broadcasting; T only pairs with T or 1 */
static int broadcast(IrShape a, IrShape b, IrShape *out) {
  IrShape r;
  memset(&r, 0, sizeof r);
  r.rank = a.rank > b.rank ? a.rank : b.rank;
  for (int i = 0; i < r.rank; i++) {
    int64_t da = i < a.rank ? a.dims[a.rank - 1 - i] : 1;
    int64_t db = i < b.rank ? b.dims[b.rank - 1 - i] : 1;
    int64_t d;
    if (da == db)
      d = da;
    else if (da == 1)
      d = db;
    else if (db == 1)
      d = da;
    else
      return 0;
    r.dims[r.rank - 1 - i] = d;
  }
  *out = r;
  return 1;
}

static const IrState *need_state(Verifier *v, const IrOp *op, const char *key, IrShape want) {
  int64_t slot = need_int(v, op, key);
  if (slot < 0 || slot >= v->m->states.len)
    vfail(v, op, "%s = %lld names no state slot (the module has %d)", key, (long long)slot, v->m->states.len);
  const IrState *s = v->m->states.data[slot];
  if (s->dtype != IR_F32 || !ir_shape_eq(s->shape, want))
    vfail(v, op, "%s: state slot %lld \"%s\" is %s, but the op needs %s", key, (long long)slot, s->name,
          tstr(s->dtype, s->shape).s, tstr(IR_F32, want).s);
  return s;
}

static IrShape shape_of(int rank, const int64_t *dims) { return ir_shape(rank, dims); }

/* ---- index expressions -------------------------------------------------------- */

typedef struct VarEnv {
  int bound[MAX_VARS];
  int64_t extent[MAX_VARS];
} VarEnv;

/* Is value x the step argument (arg 0) of an enclosing scan's region? */
static int is_scan_step(const IrValue *x) {
  return !x->def && x->block && x->index == 0 && x->block->parent && x->block->parent->kind == IR_OP_SCAN;
}

static int mul_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static int add_ok(int64_t a, int64_t b, int64_t *r) { return !__builtin_add_overflow(a, b, r); }

/* An index problem: the message shows the whole expression too. */
static void afail(Verifier *v, const IrOp *op, const IrExpr *e, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));
static void afail(Verifier *v, const IrOp *op, const IrExpr *e, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char *es = ir_expr_to_string(e);
  char ctx[160];
  snprintf(ctx, sizeof ctx, "%.150s", es);
  free(es);
  vfail(v, op, "in %s: %s", ctx, msg);
}

/* One affine index of a load into a dimension of size `dim`. The rule, kept
 * simple on purpose:
 *  - a "T-ranged" term is a variable with extent T, or a dynamic operand
 *    (`$N`). If the index has one, it must be that term alone with
 *    coefficient 1 and offset 0, indexing a T dimension; a variable with
 *    extent T or the step argument of an enclosing scan (both range over
 *    [0, T), T <= max_T) may also index a static dimension >= max_T. Other
 *    dynamic operands are unknown values and may only index a T dimension
 *    (the runtime bound of T is the only thing we can lean on).
 *  - otherwise every variable has a static extent; the minimum and maximum of
 *    the affine form over the variables' ranges must lie in [0, dim) (for a
 *    T dimension, in [0, 1): T may be 1). */
static void check_affine(Verifier *v, const IrOp *op, const IrExpr *e, int d, int64_t dim, const VarEnv *env) {
  const IrAffine *a = &e->idx[d];
  char dims[32];
  dim_str(dims, sizeof dims, dim);
#define AFAIL(...) afail(v, op, e, __VA_ARGS__)
  if (a->nterms < 0 || a->nterms > IR_MAX_AFFINE) AFAIL("index %d has a bad term count", d);
  int tterms = 0, tvar_ok_static = 1, nonzero = 0;
  for (int k = 0; k < a->nterms; k++) {
    int var = a->var[k];
    if (var < 0 || var >= MAX_VARS || !env->bound[var])
      AFAIL("index %d of load %d uses v%d, which is not bound here", d, e->operand, var);
    if (a->coef[k] == 0) continue;
    nonzero++;
    if (env->extent[var] == IR_DIM_T) tterms++;
  }
  if (a->dyn >= 0) {
    if (a->dyn >= op->nin) AFAIL("index %d of load %d uses $%d, but the op has %d operands", d, e->operand, a->dyn, op->nin);
    const IrValue *x = op->in[a->dyn];
    if (x->dtype != IR_I32 || x->shape.rank != 0)
      AFAIL("dynamic index $%d must be a scalar i32[] operand, got %s", a->dyn, vstr(x).s);
    if (a->dyn_coef != 0) {
      nonzero++;
      tterms++;
      if (!is_scan_step(x)) tvar_ok_static = 0;
    }
  }
  if (tterms > 0) {
    int single = tterms == 1 && nonzero == 1 && a->c == 0;
    int64_t coef = 0;
    for (int k = 0; k < a->nterms; k++)
      if (a->coef[k] != 0) coef = a->coef[k];
    if (a->dyn >= 0 && a->dyn_coef != 0) coef = a->dyn_coef;
    if (!single || coef != 1)
      AFAIL("index %d of load %d: a term ranging over T (a T-extent variable or a dynamic operand) must stand "
            "alone with coefficient 1 and offset 0",
            d, e->operand);
    if (dim != IR_DIM_T && !(tvar_ok_static && dim >= v->m->max_T))
      AFAIL("index %d of load %d ranges over [0, T) but indexes a dimension of size %s", d, e->operand, dims);
    return;
  }
  int64_t lo = a->c, hi = a->c;
  for (int k = 0; k < a->nterms; k++) {
    int64_t span;
    if (!mul_ok(a->coef[k], env->extent[a->var[k]] - 1, &span))
      AFAIL("index %d of load %d overflows", d, e->operand);
    if (!add_ok(span < 0 ? lo : hi, span, span < 0 ? &lo : &hi))
      AFAIL("index %d of load %d overflows", d, e->operand);
  }
  int64_t limit = dim == IR_DIM_T ? 1 : dim;
  if (lo < 0 || hi >= limit)
    AFAIL("index %d of load %d ranges over [%lld, %lld], out of bounds for a dimension of size %s", d, e->operand,
          (long long)lo, (long long)hi, dims);
#undef AFAIL
}

static void check_expr(Verifier *v, const IrOp *op, const IrExpr *e, VarEnv *env, int depth) {
  if (!e) vfail(v, op, "index expression has a missing subexpression");
  if (depth > 1000) vfail(v, op, "index expression nested too deeply");
  switch (e->kind) {
    case IR_EX_CONST: return;
    case IR_EX_VAR:
      if (e->var < 0 || e->var >= MAX_VARS || !env->bound[e->var])
        vfail(v, op, "index expression uses (var v%d), which is not bound here", e->var);
      return;
    case IR_EX_LOAD: {
      if (e->operand < 0 || e->operand >= op->nin)
        vfail(v, op, "index expression loads operand %d, but the op has %d operands", e->operand, op->nin);
      const IrValue *x = op->in[e->operand];
      if (e->nidx != x->shape.rank)
        vfail(v, op, "load %d has %d indices, but operand %d is %s", e->operand, e->nidx, e->operand, vstr(x).s);
      for (int d = 0; d < e->nidx; d++) check_affine(v, op, e, d, x->shape.dims[d], env);
      return;
    }
    case IR_EX_UNARY:
    case IR_EX_BINARY: {
      int want = e->kind == IR_EX_UNARY ? 1 : 2;
      if (e->fn < 0 || e->fn >= IR_FN_COUNT_) vfail(v, op, "index expression has an unknown function");
      if (ir_fn_arity(e->fn) != want)
        vfail(v, op, "index expression applies '%s' to %d argument%s", ir_fn_name(e->fn), want, want == 1 ? "" : "s");
      check_expr(v, op, e->a, env, depth + 1);
      if (want == 2) check_expr(v, op, e->b, env, depth + 1);
      return;
    }
    case IR_EX_SELECT:
      check_expr(v, op, e->a, env, depth + 1);
      check_expr(v, op, e->b, env, depth + 1);
      check_expr(v, op, e->c, env, depth + 1);
      return;
    case IR_EX_REDUCE:
      if (e->reduce < IR_RED_SUM || e->reduce > IR_RED_MEAN) vfail(v, op, "index expression has an unknown reduction");
      if (e->var < 0 || e->var >= MAX_VARS)
        vfail(v, op, "reduction variable v%d out of range (at most v%d)", e->var, MAX_VARS - 1);
      if (env->bound[e->var]) vfail(v, op, "reduction rebinds v%d, which is already bound", e->var);
      if (e->extent <= 0 && e->extent != IR_DIM_T)
        vfail(v, op, "reduction over v%d has extent %lld (must be positive or T)", e->var, (long long)e->extent);
      env->bound[e->var] = 1;
      env->extent[e->var] = e->extent;
      check_expr(v, op, e->a, env, depth + 1);
      env->bound[e->var] = 0;
      return;
  }
  vfail(v, op, "index expression has an unknown node kind %d", (int)e->kind);
}

static void verify_index(Verifier *v, const IrOp *op) {
  need_counts(v, op, 0, -1, 1);
  if (!op->expr) vfail(v, op, "index op without an expression");
  const IrValue *r = op->out[0];
  VarEnv env;
  memset(&env, 0, sizeof env);
  for (int i = 0; i < r->shape.rank; i++) {
    env.bound[i] = 1;
    env.extent[i] = r->shape.dims[i];
  }
  check_expr(v, op, op->expr, &env, 0);
}

/* ---- region ops ------------------------------------------------------------------ */

static void need_arg(Verifier *v, const IrOp *op, int r, const IrBlock *b, int i, IrDType dt, IrShape s) {
  const IrValue *a = b->args[i];
  if (a->dtype != dt || !ir_shape_eq(a->shape, s))
    vfail(v, op, "region %d argument %d is %s, but must be %s", r, i, vstr(a).s, tstr(dt, s).s);
}

static void verify_scan(Verifier *v, const IrOp *op) {
  need_counts(v, op, 0, 0, -1);
  if (op->nout < 1) vfail(v, op, "scan needs at least one result");
  if (op->nregions != 1) vfail(v, op, "scan has one region, not %d", op->nregions);
  const IrAttr *st = need_attr(v, op, "states", IR_ATTR_INTS);
  const IrBlock *b = op->regions[0];
  int n = st->n;
  for (int i = 0; i < n; i++) {
    if (st->ints[i] < 0 || st->ints[i] >= v->m->states.len)
      vfail(v, op, "states[%d] = %lld names no state slot (the module has %d)", i, (long long)st->ints[i],
            v->m->states.len);
    for (int j = 0; j < i; j++)
      if (st->ints[j] == st->ints[i]) vfail(v, op, "state slot %lld appears twice in states", (long long)st->ints[i]);
  }
  if (b->nargs != n + 1)
    vfail(v, op, "scan region takes the step and %d states (%d arguments), not %d arguments", n, n + 1, b->nargs);
  need_arg(v, op, 0, b, 0, IR_I32, ir_shape_scalar());
  for (int i = 0; i < n; i++) {
    const IrState *s = v->m->states.data[st->ints[i]];
    need_arg(v, op, 0, b, i + 1, s->dtype, s->shape);
  }
  int ne = op->nout;
  if (b->nyield != n + ne)
    vfail(v, op, "scan region must yield %d new states and %d emitted value%s (%d values), not %d", n, ne,
          ne == 1 ? "" : "s", n + ne, b->nyield);
  for (int i = 0; i < n; i++) {
    const IrValue *y = b->yields[i];
    if (y->dtype != b->args[i + 1]->dtype || !ir_shape_eq(y->shape, b->args[i + 1]->shape))
      vfail(v, op, "scan yields %s for state %d, which is %s", vstr(y).s, i, vstr(b->args[i + 1]).s);
  }
  for (int j = 0; j < ne; j++) {
    const IrValue *emit = b->yields[n + j];
    if (emit->shape.rank >= IR_MAX_RANK)
      vfail(v, op, "scan emits a value of rank %d; the result would be too big", emit->shape.rank);
    IrShape rs;
    memset(&rs, 0, sizeof rs);
    rs.rank = emit->shape.rank + 1;
    rs.dims[0] = IR_DIM_T;
    for (int i = 0; i < emit->shape.rank; i++) rs.dims[i + 1] = emit->shape.dims[i];
    need_result(v, op, j, emit->dtype, rs);
  }
}

/* The per-token operands of mixture/skip, starting at `first`, arrive as the
 * region arguments. */
static void need_token_operands(Verifier *v, const IrOp *op, int first) {
  for (int i = first; i < op->nin; i++)
    if (op->in[i]->shape.rank < 1 || op->in[i]->shape.dims[0] != IR_DIM_T)
      vfail(v, op, "operand %d must be per-token ([T, ...]), got %s", i, vstr(op->in[i]).s);
  for (int r = 0; r < op->nregions; r++) {
    const IrBlock *b = op->regions[r];
    if (b->nargs != op->nin - first)
      vfail(v, op, "region %d has %d arguments, but the op passes %d per-token operands", r, b->nargs,
            op->nin - first);
    for (int i = first; i < op->nin; i++) need_arg(v, op, r, b, i - first, op->in[i]->dtype, op->in[i]->shape);
    if (b->nyield != 1) vfail(v, op, "region %d must yield one value, not %d", r, b->nyield);
    const IrValue *y = b->yields[0];
    if (y->shape.rank < 1 || y->shape.dims[0] != IR_DIM_T)
      vfail(v, op, "region %d yields %s, which is not per-token ([T, ...])", r, vstr(y).s);
  }
}

static void verify_mixture(Verifier *v, const IrOp *op) {
  need_counts(v, op, 2, -1, 1);
  const IrValue *idx = op->in[0], *w = op->in[1];
  need_dtype(v, op, idx, IR_I32, "the expert index (operand 0)");
  need_dtype(v, op, w, IR_F32, "the expert weights (operand 1)");
  need_rank(v, op, idx, 2, "the expert index (operand 0)");
  if (idx->shape.dims[0] != IR_DIM_T || !ir_shape_eq(idx->shape, w->shape))
    vfail(v, op, "expert index %s and weights %s must both be [T, K]", vstr(idx).s, vstr(w).s);
  int64_t E = need_int(v, op, "experts");
  if (E < 1) vfail(v, op, "experts = %lld must be positive", (long long)E);
  if (op->nregions != E) vfail(v, op, "experts = %lld, but the op has %d regions", (long long)E, op->nregions);
  need_token_operands(v, op, 2);
  const IrValue *y0 = op->regions[0]->yields[0];
  need_dtype(v, op, y0, IR_F32, "the value an expert yields");
  for (int r = 1; r < op->nregions; r++) {
    const IrValue *y = op->regions[r]->yields[0];
    if (y->dtype != y0->dtype || !ir_shape_eq(y->shape, y0->shape))
      vfail(v, op, "region %d yields %s, but region 0 yields %s", r, vstr(y).s, vstr(y0).s);
  }
  need_result(v, op, 0, y0->dtype, y0->shape);
}

static void verify_skip(Verifier *v, const IrOp *op) {
  need_counts(v, op, 2, -1, 1);
  if (op->nregions != 1) vfail(v, op, "skip has one region, not %d", op->nregions);
  const IrValue *cond = op->in[0], *prev = op->in[1];
  if (cond->shape.rank != 1 || cond->shape.dims[0] != IR_DIM_T)
    vfail(v, op, "the condition (operand 0) must be [T], got %s", vstr(cond).s);
  if (prev->shape.rank < 1 || prev->shape.dims[0] != IR_DIM_T)
    vfail(v, op, "the kept value (operand 1) must be per-token ([T, ...]), got %s", vstr(prev).s);
  need_token_operands(v, op, 2);
  const IrValue *y = op->regions[0]->yields[0];
  if (y->dtype != prev->dtype || !ir_shape_eq(y->shape, prev->shape))
    vfail(v, op, "the region yields %s, but the kept value (operand 1) is %s", vstr(y).s, vstr(prev).s);
  need_result(v, op, 0, prev->dtype, prev->shape);
  /* a router: a score, one way to size the kept set, a threshold in [0, 1] */
  const IrAttr *cap = ir_op_attr(op, "capacity"), *topk = ir_op_attr(op, "top_k"), *tau = ir_op_attr(op, "threshold");
  if (cap && topk) vfail(v, op, "a router has capacity or top_k, not both");
  if (cap && !(cap->kind == IR_ATTR_FLOAT && cap->f > 0 && cap->f <= 1))
    vfail(v, op, "capacity must be a float in (0, 1]");
  if (topk && !(topk->kind == IR_ATTR_INT && topk->i >= 1)) vfail(v, op, "top_k must be an int >= 1");
  if (tau && !(cap || topk)) vfail(v, op, "threshold needs capacity or top_k (a router)");
  if (tau && !(tau->kind == IR_ATTR_FLOAT && tau->f >= 0 && tau->f <= 1)) vfail(v, op, "threshold must be in [0, 1]");
  if ((cap || topk) && cond->dtype != IR_F32) vfail(v, op, "a router's score (operand 0) must be f32");
  const IrAttr *cmp = ir_op_attr(op, "cmp"), *cut = ir_op_attr(op, "cut");
  if (cmp) { /* a threshold skip: skipped iff cond cmp cut */
    if (cap || topk) vfail(v, op, "a router has no cmp");
    if (cmp->kind != IR_ATTR_STR || (strcmp(cmp->s, "lt") && strcmp(cmp->s, "le") && strcmp(cmp->s, "gt") &&
                                      strcmp(cmp->s, "ge")))
      vfail(v, op, "cmp must be \"lt\", \"le\", \"gt\" or \"ge\"");
    need_attr(v, op, "cut", IR_ATTR_FLOAT);
    if (cond->dtype != IR_F32) vfail(v, op, "a threshold skip's score (operand 0) must be f32");
  } else if (cut) {
    vfail(v, op, "cut needs cmp");
  }
  const IrAttr *rs = ir_op_attr(op, "rows_state");
  if (rs) {
    if (rs->kind != IR_ATTR_INT || rs->i < 0 || rs->i >= v->m->states.len)
      vfail(v, op, "rows_state names no state slot");
    const IrState *s = v->m->states.data[rs->i];
    if (s->dtype != IR_I32 || s->shape.rank != 1 || s->shape.dims[0] != 1)
      vfail(v, op, "rows_state: state slot %lld \"%s\" must be i32[1]", (long long)rs->i, s->name);
  }
  const IrAttr *kvc = ir_op_attr(op, "kv_copy"); /* GateSkip's KV copy: pairs of equal state slots */
  if (kvc) {
    if (kvc->kind != IR_ATTR_INTS || kvc->n < 2 || kvc->n % 2 != 0) {
      vfail(v, op, "kv_copy must be a list of (src, dst) state slot pairs");
      return;
    }
    if (rs || cap || topk || op->parent != v->m->body) vfail(v, op, "kv_copy is for a plain skip in the module body");
    for (int i = 0; i < kvc->n; i++)
      if (kvc->ints[i] < 0 || kvc->ints[i] >= v->m->states.len) {
        vfail(v, op, "kv_copy names no state slot");
        return;
      }
    for (int i = 0; i < kvc->n; i += 2) {
      const IrState *a = v->m->states.data[kvc->ints[i]], *b = v->m->states.data[kvc->ints[i + 1]];
      if (a->dtype != b->dtype || !ir_shape_eq(a->shape, b->shape) || a->shape.dims[0] != v->m->max_T)
        vfail(v, op, "kv_copy: state slots \"%s\" and \"%s\" must have the same shape [max_T, ...]", a->name,
              b->name);
    }
  }
}

/* ---- the other ops ------------------------------------------------------------------ */

static const IrIO *find_io(const PtrVec *v, const char *name) {
  for (int i = 0; i < v->len; i++) {
    const IrIO *io = v->data[i];
    if (!strcmp(io->name, name)) return io;
  }
  return NULL;
}

static void verify_norm(Verifier *v, const IrOp *op, int max_in) {
  need_counts(v, op, 1, max_in, 1);
  const IrValue *x = op->in[0];
  need_dtype(v, op, x, IR_F32, "the input");
  if (x->shape.rank < 1) vfail(v, op, "the input must have rank >= 1");
  int64_t D = x->shape.dims[x->shape.rank - 1];
  for (int i = 1; i < op->nin; i++) {
    need_dtype(v, op, op->in[i], IR_F32, i == 1 ? "the weight" : "the bias");
    if (op->in[i]->shape.rank != 1 || op->in[i]->shape.dims[0] != D)
      vfail(v, op, "operand %d is %s, but must be [%s] (the last axis of the input)", i, vstr(op->in[i]).s,
            D == IR_DIM_T ? "T" : "D");
  }
  double eps = need_float(v, op, "eps");
  if (!(eps >= 0)) vfail(v, op, "eps must be >= 0");
  need_result(v, op, 0, IR_F32, x->shape);
}

/* Ops that bring values into or out of the module body: input, param, const, position, output. */
static void verify_source_op(Verifier *v, const IrOp *op, const IrBlock *b) {
  const IrModule *m = v->m;
  switch (op->kind) {
    case IR_OP_INPUT: {
      need_counts(v, op, 0, 0, 1);
      if (b != m->body) vfail(v, op, "input ops belong in the module body, not in a region");
      const char *name = need_str(v, op, "name");
      const IrIO *io = find_io(&m->inputs, name);
      if (!io) vfail(v, op, "there is no module input \"%s\"", name);
      need_result(v, op, 0, io->dtype, io->shape);
      return;
    }
    case IR_OP_PARAM: {
      need_counts(v, op, 0, 0, 1);
      const char *name = need_str(v, op, "name");
      const IrParam *p = ir_module_find_param(m, name);
      if (!p) vfail(v, op, "there is no param \"%s\"", name);
      need_result(v, op, 0, p->dtype, p->shape);
      return;
    }
    case IR_OP_CONST:
      need_counts(v, op, 0, 0, 1);
      need_float(v, op, "value");
      return;
    case IR_OP_POSITION: {
      need_counts(v, op, 0, 0, 1);
      int64_t t = IR_DIM_T;
      need_result(v, op, 0, IR_I32, shape_of(1, &t));
      return;
    }
    case IR_OP_OUTPUT: {
      need_counts(v, op, 1, 1, 0);
      if (b != m->body) vfail(v, op, "output ops belong in the module body, not in a region");
      const char *name = need_str(v, op, "name");
      for (int i = 0; i < m->outputs.len; i++) {
        const IrIO *io = m->outputs.data[i];
        if (strcmp(io->name, name)) continue;
        if (op->in[0]->dtype != io->dtype || !ir_shape_eq(op->in[0]->shape, io->shape))
          vfail(v, op, "output \"%s\" is declared %s, but the value is %s", name, tstr(io->dtype, io->shape).s,
                vstr(op->in[0]).s);
        if (++v->out_count[i] > 1) vfail(v, op, "output \"%s\" is produced more than once", name);
        return;
      }
      vfail(v, op, "there is no module output \"%s\"", name);
    }
    default:
      gat_unreachable();
  }
}

/* Elementwise ops: unary and binary functions, select, cast (operands broadcast). */
static void verify_elementwise(Verifier *v, const IrOp *op) {
  switch (op->kind) {
    case IR_OP_UNARY: {
      need_counts(v, op, 1, 1, 1);
      const char *fn = need_str(v, op, "fn");
      int f = ir_fn_from_name(fn);
      if (f < 0 || ir_fn_arity((IrFn)f) != 1) vfail(v, op, "'%s' is not a unary function", fn);
      need_result(v, op, 0, op->in[0]->dtype, op->in[0]->shape);
      return;
    }
    case IR_OP_BINARY: {
      need_counts(v, op, 2, 2, 1);
      const char *fn = need_str(v, op, "fn");
      int f = ir_fn_from_name(fn);
      if (f < 0 || ir_fn_arity((IrFn)f) != 2) vfail(v, op, "'%s' is not a binary function", fn);
      const IrValue *a = op->in[0], *c = op->in[1];
      if (a->dtype != c->dtype) vfail(v, op, "operand dtypes differ: %s and %s", vstr(a).s, vstr(c).s);
      IrShape s;
      if (!broadcast(a->shape, c->shape, &s))
        vfail(v, op, "operand shapes %s and %s do not broadcast", vstr(a).s, vstr(c).s);
      need_result(v, op, 0, a->dtype, s);
      return;
    }
    case IR_OP_SELECT: {
      need_counts(v, op, 3, 3, 1);
      const IrValue *c = op->in[0], *a = op->in[1], *bb = op->in[2];
      if (a->dtype != bb->dtype) vfail(v, op, "the two branches differ in dtype: %s and %s", vstr(a).s, vstr(bb).s);
      IrShape s1, s2;
      if (!broadcast(c->shape, a->shape, &s1) || !broadcast(s1, bb->shape, &s2))
        vfail(v, op, "operand shapes %s, %s and %s do not broadcast", vstr(c).s, vstr(a).s, vstr(bb).s);
      need_result(v, op, 0, a->dtype, s2);
      return;
    }
    case IR_OP_CAST:
      need_counts(v, op, 1, 1, 1);
      need_result(v, op, 0, op->out[0]->dtype, op->in[0]->shape);
      return;
    default:
      gat_unreachable();
  }
}

/* Contractions: matmul (batched, broadcast) and linear (x W^T + b). */
static void verify_contraction(Verifier *v, const IrOp *op) {
  switch (op->kind) {
    case IR_OP_MATMUL: {
      need_counts(v, op, 2, 2, 1);
      const IrValue *a = op->in[0], *c = op->in[1];
      need_dtype(v, op, a, IR_F32, "operand 0");
      need_dtype(v, op, c, IR_F32, "operand 1");
      if (a->shape.rank < 2 || c->shape.rank < 2) vfail(v, op, "matmul operands need rank >= 2");
      int64_t M = a->shape.dims[a->shape.rank - 2], K = a->shape.dims[a->shape.rank - 1];
      int64_t K2 = c->shape.dims[c->shape.rank - 2], N = c->shape.dims[c->shape.rank - 1];
      if (K != K2)
        vfail(v, op, "inner dimensions differ: %s x %s", vstr(a).s, vstr(c).s);
      IrShape ba = a->shape, bb = c->shape, s;
      ba.rank -= 2;
      bb.rank -= 2;
      if (!broadcast(ba, bb, &s)) vfail(v, op, "batch dimensions of %s and %s do not broadcast", vstr(a).s, vstr(c).s);
      if (s.rank + 2 > IR_MAX_RANK) vfail(v, op, "result rank too large");
      s.dims[s.rank++] = M;
      s.dims[s.rank++] = N;
      need_result(v, op, 0, IR_F32, s);
      return;
    }
    case IR_OP_LINEAR: {
      need_counts(v, op, 2, 3, 1);
      const IrValue *x = op->in[0], *w = op->in[1];
      need_dtype(v, op, x, IR_F32, "the input");
      need_dtype(v, op, w, IR_F32, "the weight");
      if (x->shape.rank < 1) vfail(v, op, "the input must have rank >= 1");
      need_rank(v, op, w, 2, "the weight");
      int64_t IN = x->shape.dims[x->shape.rank - 1], OUT = w->shape.dims[0];
      if (w->shape.dims[1] != IN)
        vfail(v, op, "weight %s does not match input %s (want [OUT, IN] with IN = the input's last dim)",
              vstr(w).s, vstr(x).s);
      if (op->nin == 3) {
        need_dtype(v, op, op->in[2], IR_F32, "the bias");
        if (op->in[2]->shape.rank != 1 || op->in[2]->shape.dims[0] != OUT)
          vfail(v, op, "bias %s must be [OUT] with OUT = %s", vstr(op->in[2]).s, vstr(w).s);
      }
      IrShape s = x->shape;
      s.dims[s.rank - 1] = OUT;
      need_result(v, op, 0, IR_F32, s);
      return;
    }
    default:
      gat_unreachable();
  }
}

/* Reductions and row-wise ops: reduce, softmax, the norms, gather, top-k. */
static void verify_row_op(Verifier *v, const IrOp *op) {
  switch (op->kind) {
    case IR_OP_REDUCE: {
      need_counts(v, op, 1, 1, 1);
      const IrValue *x = op->in[0];
      const char *k = need_str(v, op, "kind");
      if (strcmp(k, "sum") && strcmp(k, "max") && strcmp(k, "min") && strcmp(k, "mean"))
        vfail(v, op, "reduce kind \"%s\" is not sum, max, min or mean", k);
      const IrAttr *ax = need_attr(v, op, "axes", IR_ATTR_INTS);
      if (ax->n == 0) vfail(v, op, "reduce needs at least one axis");
      IrShape s;
      memset(&s, 0, sizeof s);
      int gone[IR_MAX_RANK] = {0};
      for (int i = 0; i < ax->n; i++) {
        int64_t a = ax->ints[i] < 0 ? ax->ints[i] + x->shape.rank : ax->ints[i];
        if (a < 0 || a >= x->shape.rank)
          vfail(v, op, "axis %lld is out of range for %s", (long long)ax->ints[i], vstr(x).s);
        if (gone[a]) vfail(v, op, "reduce axes must be distinct");
        gone[a] = 1;
      }
      for (int d = 0; d < x->shape.rank; d++)
        if (!gone[d]) s.dims[s.rank++] = x->shape.dims[d];
      need_result(v, op, 0, x->dtype, s);
      return;
    }
    case IR_OP_SOFTMAX: {
      need_counts(v, op, 1, 1, 1);
      need_dtype(v, op, op->in[0], IR_F32, "the input");
      need_axis(v, op, "axis", op->in[0]->shape.rank);
      need_result(v, op, 0, IR_F32, op->in[0]->shape);
      return;
    }
    case IR_OP_RMS_NORM: {
      verify_norm(v, op, 2);
      int64_t po = opt_int(v, op, "plus_one", 0);
      if (po != 0 && po != 1) vfail(v, op, "plus_one must be 0 or 1");
      if (po && op->nin < 2) vfail(v, op, "plus_one needs a weight operand");
      return;
    }
    case IR_OP_LAYER_NORM: verify_norm(v, op, 3); return;
    case IR_OP_L2_NORM: verify_norm(v, op, 1); return;
    case IR_OP_GATHER: {
      need_counts(v, op, 2, 2, 1);
      const IrValue *t = op->in[0], *ix = op->in[1];
      need_dtype(v, op, ix, IR_I32, "the index (operand 1)");
      if (t->shape.rank < 1) vfail(v, op, "the table must have rank >= 1");
      if (ix->shape.rank + t->shape.rank - 1 > IR_MAX_RANK) vfail(v, op, "result rank too large");
      IrShape s = ix->shape;
      for (int d = 1; d < t->shape.rank; d++) s.dims[s.rank++] = t->shape.dims[d];
      need_result(v, op, 0, t->dtype, s);
      return;
    }
    case IR_OP_TOPK: {
      need_counts(v, op, 1, 1, 2);
      const IrValue *x = op->in[0];
      need_dtype(v, op, x, IR_F32, "the input");
      if (x->shape.rank < 1) vfail(v, op, "the input must have rank >= 1");
      int64_t k = need_int(v, op, "k"), N = x->shape.dims[x->shape.rank - 1];
      if (k < 1 || (N != IR_DIM_T && k > N))
        vfail(v, op, "k = %lld is out of range for %s", (long long)k, vstr(x).s);
      IrShape s = x->shape;
      s.dims[s.rank - 1] = k;
      need_result(v, op, 0, IR_F32, s);
      need_result(v, op, 1, IR_I32, s);
      return;
    }
    default:
      gat_unreachable();
  }
}

/* Data movement: reshape, transpose, concat, split, slice. */
static void verify_layout(Verifier *v, const IrOp *op) {
  switch (op->kind) {
    case IR_OP_RESHAPE: {
      need_counts(v, op, 1, 1, 1);
      const IrValue *x = op->in[0], *r = op->out[0];
      int tx = 0, tr = 0;
      int64_t nx = 1, nr = 1;
      for (int d = 0; d < x->shape.rank; d++)
        if (x->shape.dims[d] == IR_DIM_T) tx++; else nx = gat_size_mul(nx, x->shape.dims[d]);
      for (int d = 0; d < r->shape.rank; d++)
        if (r->shape.dims[d] == IR_DIM_T) tr++; else nr = gat_size_mul(nr, r->shape.dims[d]);
      if (tx != tr || nx != nr)
        vfail(v, op, "cannot reshape %s to %s (element counts differ)", vstr(x).s, vstr(r).s);
      need_result(v, op, 0, x->dtype, r->shape);
      return;
    }
    case IR_OP_TRANSPOSE: {
      need_counts(v, op, 1, 1, 1);
      const IrValue *x = op->in[0];
      const IrAttr *perm = need_attr(v, op, "perm", IR_ATTR_INTS);
      if (perm->n != x->shape.rank) vfail(v, op, "perm has %d entries for %s", perm->n, vstr(x).s);
      IrShape s;
      memset(&s, 0, sizeof s);
      s.rank = x->shape.rank;
      int seen[IR_MAX_RANK] = {0};
      for (int i = 0; i < perm->n; i++) {
        int64_t p = perm->ints[i];
        if (p < 0 || p >= x->shape.rank || seen[p]) vfail(v, op, "perm is not a permutation of 0..%d", x->shape.rank - 1);
        seen[p] = 1;
        s.dims[i] = x->shape.dims[p];
      }
      need_result(v, op, 0, x->dtype, s);
      return;
    }
    case IR_OP_CONCAT: {
      need_counts(v, op, 1, -1, 1);
      const IrValue *x0 = op->in[0];
      int64_t ax = need_axis(v, op, "axis", x0->shape.rank);
      IrShape s = x0->shape;
      int64_t total = 0;
      for (int i = 0; i < op->nin; i++) {
        const IrValue *x = op->in[i];
        if (x->dtype != x0->dtype || x->shape.rank != x0->shape.rank)
          vfail(v, op, "operand %d is %s, unlike operand 0 %s", i, vstr(x).s, vstr(x0).s);
        for (int d = 0; d < s.rank; d++)
          if (d != ax && x->shape.dims[d] != s.dims[d])
            vfail(v, op, "operand %d is %s; all dims but the axis must match %s", i, vstr(x).s, vstr(x0).s);
        if (x->shape.dims[ax] == IR_DIM_T && op->nin > 1)
          vfail(v, op, "cannot concatenate along a T dimension");
        total += x->shape.dims[ax];
      }
      s.dims[ax] = op->nin == 1 ? x0->shape.dims[ax] : total;
      need_result(v, op, 0, x0->dtype, s);
      return;
    }
    case IR_OP_SPLIT: {
      need_counts(v, op, 1, 1, -1);
      const IrValue *x = op->in[0];
      int64_t ax = need_axis(v, op, "axis", x->shape.rank);
      const IrAttr *sz = need_attr(v, op, "sizes", IR_ATTR_INTS);
      if (op->nout != sz->n) vfail(v, op, "split has %d sizes but %d results", sz->n, op->nout);
      if (x->shape.dims[ax] == IR_DIM_T) vfail(v, op, "cannot split a T dimension");
      int64_t sum = 0;
      for (int i = 0; i < sz->n; i++) {
        if (sz->ints[i] <= 0) vfail(v, op, "split sizes must be positive");
        sum += sz->ints[i];
      }
      if (sum != x->shape.dims[ax])
        vfail(v, op, "split sizes sum to %lld, but axis %lld of %s has %lld", (long long)sum, (long long)ax,
              vstr(x).s, (long long)x->shape.dims[ax]);
      for (int i = 0; i < sz->n; i++) {
        IrShape s = x->shape;
        s.dims[ax] = sz->ints[i];
        need_result(v, op, i, x->dtype, s);
      }
      return;
    }
    case IR_OP_SLICE: {
      need_counts(v, op, 1, 1, 1);
      const IrValue *x = op->in[0];
      int64_t ax = need_axis(v, op, "axis", x->shape.rank);
      int64_t start = need_int(v, op, "start"), stop = need_int(v, op, "stop");
      int64_t dim = x->shape.dims[ax];
      if (dim == IR_DIM_T) vfail(v, op, "cannot slice a T dimension (use an index op)");
      if (start < 0 || stop > dim || start >= stop)
        vfail(v, op, "slice bounds [%lld, %lld) are invalid for a dimension of size %lld", (long long)start,
              (long long)stop, (long long)dim);
      IrShape s = x->shape;
      s.dims[ax] = stop - start;
      need_result(v, op, 0, x->dtype, s);
      return;
    }
    default:
      gat_unreachable();
  }
}

/* RoPE and the causal conv1d with its state. */
static void verify_rope_conv(Verifier *v, const IrOp *op) {
  switch (op->kind) {
    case IR_OP_ROPE: {
      need_counts(v, op, 1, 1, 1);
      const IrValue *x = op->in[0];
      need_dtype(v, op, x, IR_F32, "the input");
      if (x->shape.rank < 2 || x->shape.dims[0] != IR_DIM_T)
        vfail(v, op, "the input must be [T, ..., D] (usually [T, H, D]), got %s", vstr(x).s);
      int64_t D = x->shape.dims[x->shape.rank - 1];
      if (ir_op_attr(op, "base") && !(need_float(v, op, "base") > 0)) vfail(v, op, "base must be positive");
      int64_t dims = opt_int(v, op, "dims", D);
      if (dims <= 0 || dims % 2 || D == IR_DIM_T || dims > D)
        vfail(v, op, "dims = %lld must be even and in (0, D] for %s", (long long)dims, vstr(x).s);
      need_result(v, op, 0, IR_F32, x->shape);
      return;
    }
    case IR_OP_CONV1D: {
      need_counts(v, op, 2, 3, 1);
      const IrValue *x = op->in[0], *w = op->in[1];
      need_dtype(v, op, x, IR_F32, "the input");
      need_dtype(v, op, w, IR_F32, "the weight");
      need_rank(v, op, x, 2, "the input ([T, C])");
      if (x->shape.dims[0] != IR_DIM_T || x->shape.dims[1] == IR_DIM_T)
        vfail(v, op, "the input must be [T, C], got %s", vstr(x).s);
      int64_t C = x->shape.dims[1];
      need_rank(v, op, w, 3, "the weight ([C, 1, W])");
      if (w->shape.dims[0] != C || w->shape.dims[1] != 1)
        vfail(v, op, "weight %s must be [C, 1, W] with C = %lld", vstr(w).s, (long long)C);
      int64_t W = w->shape.dims[2];
      if (op->nin == 3) {
        need_dtype(v, op, op->in[2], IR_F32, "the bias");
        if (op->in[2]->shape.rank != 1 || op->in[2]->shape.dims[0] != C)
          vfail(v, op, "bias %s must be [C] with C = %lld", vstr(op->in[2]).s, (long long)C);
      }
      const char *act = need_str(v, op, "act");
      if (strcmp(act, "none") && strcmp(act, "silu")) vfail(v, op, "act \"%s\" is not \"none\" or \"silu\"", act);
      if (W > 1 || ir_op_attr(op, "state")) {
        int64_t dims[2] = {W - 1, C};
        if (W <= 1) vfail(v, op, "a width-1 conv keeps no state");
        need_state(v, op, "state", shape_of(2, dims));
      }
      need_result(v, op, 0, IR_F32, x->shape);
      return;
    }
    default:
      gat_unreachable();
  }
}

/* Attention: q, k, v (and the score biases qb, kb; a relbias table) against its KV-cache states. */
static void verify_attention(Verifier *v, const IrOp *op) {
  const IrModule *m = v->m;
  /* relbias, when present, is the last operand (its index in the attr). */
  int rbi = ir_op_attr(op, "relbias") ? (int)ir_op_int(op, "relbias", -1) : -1;
  int nqkv = op->nin - (rbi >= 0);
  if (rbi >= 0 && rbi != op->nin - 1) vfail(v, op, "relbias = %d must name the last operand", rbi);
  if (nqkv != 3 && nqkv != 5) need_counts(v, op, 3, 3, 1);
  need_counts(v, op, 3, 6, 1);
  const IrValue *q = op->in[0], *k = op->in[1], *vv = op->in[2];
  const char *names[5] = {"q", "k", "v", "qb", "kb"};
  if (rbi >= 0) {
    const IrValue *rb = op->in[rbi];
    need_dtype(v, op, rb, IR_F32, "relbias");
    need_rank(v, op, rb, 1, "relbias");
    if (rb->shape.dims[0] == IR_DIM_T || rb->shape.dims[0] % 2 == 0)
      vfail(v, op, "relbias %s must have an odd length without T", vstr(rb).s);
  }
  for (int i = 0; i < nqkv; i++) {
    need_dtype(v, op, op->in[i], IR_F32, names[i]);
    need_rank(v, op, op->in[i], i < 3 ? 3 : 2, names[i]);
    if (op->in[i]->shape.dims[0] != IR_DIM_T)
      vfail(v, op, "%s must be per-token ([T, ...]), got %s", names[i], vstr(op->in[i]).s);
    for (int d = 1; d < op->in[i]->shape.rank; d++)
      if (op->in[i]->shape.dims[d] == IR_DIM_T) vfail(v, op, "%s may have T only as its first dim", names[i]);
  }
  int64_t H = q->shape.dims[1], dk = q->shape.dims[2], Hkv = k->shape.dims[1], dv = vv->shape.dims[2];
  if (k->shape.dims[2] != dk) vfail(v, op, "q %s and k %s differ in head size", vstr(q).s, vstr(k).s);
  if (vv->shape.dims[1] != Hkv) vfail(v, op, "k %s and v %s differ in head count", vstr(k).s, vstr(vv).s);
  if (H % Hkv) vfail(v, op, "%lld query heads do not divide into %lld KV heads", (long long)H, (long long)Hkv);
  for (int i = 3; i < nqkv; i++)
    if (op->in[i]->shape.dims[1] != H)
      vfail(v, op, "%s must be [T, H] with H = %lld, got %s", names[i], (long long)H, vstr(op->in[i]).s);
  need_float(v, op, "scale");
  if (opt_int(v, op, "causal", 1) != 1) vfail(v, op, "only causal attention (causal = 1) is supported");
  if (opt_int(v, op, "window", 0) < 0) vfail(v, op, "window must be >= 0");
  int64_t sk[3] = {m->max_T, Hkv, dk}, sv[3] = {m->max_T, Hkv, dv}, skb[2] = {m->max_T, H};
  need_state(v, op, "state_k", shape_of(3, sk));
  need_state(v, op, "state_v", shape_of(3, sv));
  if (nqkv == 5) need_state(v, op, "state_kb", shape_of(2, skb));
  int64_t rs[3] = {IR_DIM_T, H, dv};
  need_result(v, op, 0, IR_F32, shape_of(3, rs));
}

static void verify_kind(Verifier *v, const IrOp *op, const IrBlock *b) {
  switch (op->kind) {
    case IR_OP_INPUT:
    case IR_OP_PARAM:
    case IR_OP_CONST:
    case IR_OP_POSITION:
    case IR_OP_OUTPUT:
      verify_source_op(v, op, b);
      return;
    case IR_OP_UNARY:
    case IR_OP_BINARY:
    case IR_OP_SELECT:
    case IR_OP_CAST:
      verify_elementwise(v, op);
      return;
    case IR_OP_MATMUL:
    case IR_OP_LINEAR:
      verify_contraction(v, op);
      return;
    case IR_OP_REDUCE:
    case IR_OP_SOFTMAX:
    case IR_OP_RMS_NORM:
    case IR_OP_LAYER_NORM:
    case IR_OP_L2_NORM:
    case IR_OP_GATHER:
    case IR_OP_TOPK:
      verify_row_op(v, op);
      return;
    case IR_OP_RESHAPE:
    case IR_OP_TRANSPOSE:
    case IR_OP_CONCAT:
    case IR_OP_SPLIT:
    case IR_OP_SLICE:
      verify_layout(v, op);
      return;
    case IR_OP_ROPE:
    case IR_OP_CONV1D:
      verify_rope_conv(v, op);
      return;
    case IR_OP_ATTENTION: verify_attention(v, op); return;
    case IR_OP_INDEX: verify_index(v, op); return;
    case IR_OP_SCAN: verify_scan(v, op); return;
    case IR_OP_MIXTURE: verify_mixture(v, op); return;
    case IR_OP_SKIP: verify_skip(v, op); return;
    case IR_OP_COUNT_: break;
  }
  vfail(v, op, "unknown op kind %d", (int)op->kind);
}

/* ---- SSA walk ------------------------------------------------------------------------ */

static void define_value(Verifier *v, const IrOp *op, const IrValue *x, const IrBlock *tscope) {
  if (!x) vfail(v, op, "a result or region argument is missing (NULL)");
  if (x->id < 0 || x->id >= v->nids)
    vfail(v, op, "value id %d is out of range (the module allocated %d ids)", x->id, v->nids);
  if (v->defined[x->id]) vfail(v, op, "value id %d is defined twice", x->id);
  /* the size limits every later stage relies on (gat_limits.h); also after a
   * --max-seq that raised max_T of a .ir file */
  for (int d = 0; d < x->shape.rank; d++)
    if (x->shape.dims[d] > GAT_LIMIT_DIM)
      vfail(v, op, "%s: a dimension is over the limit of %lld", vstr(x).s, (long long)GAT_LIMIT_DIM);
  if (ir_shape_numel(x->shape, v->m->max_T) > GAT_LIMIT_NUMEL)
    vfail(v, op, "%s has more than 2^40 elements at max_T = %lld", vstr(x).s, (long long)v->m->max_T);
  v->defined[x->id] = x;
  v->live[x->id] = 1;
  v->tscope[x->id] = tscope;
}

/* A value is usable if it is visible here; a per-token value must also come
 * from the same mixture/skip region (T means different rows across them). */
static void use_value(Verifier *v, const IrOp *op, const IrValue *x, const char *what, int i,
                      const IrBlock *tscope) {
  if (!x) vfail(v, op, "%s %d is missing (NULL)", what, i);
  if (x->id < 0 || x->id >= v->nids || v->defined[x->id] != x || !v->live[x->id])
    vfail(v, op, "%s %d is not defined before this point (SSA: it must be defined earlier in this block or "
                 "an enclosing one)", what, i);
  if (ir_shape_has_T(x->shape) && v->tscope[x->id] != tscope)
    vfail(v, op, "%s %d is a per-token value captured across a mixture/skip region boundary; pass it as an "
                 "operand", what, i);
}

static void verify_block(Verifier *v, const IrBlock *b, const IrOp *owner, const IrBlock *tscope) {
  for (int i = 0; i < b->nargs; i++) {
    if (b->args[i] && b->args[i]->def) vfail(v, owner, "region argument %d is also an op result", i);
    define_value(v, owner, b->args[i], tscope);
  }
  for (int i = 0; i < b->ops.len; i++) {
    const IrOp *op = b->ops.data[i];
    if (!op) vfail(v, owner, "a block holds a NULL op");
    if (op->kind < 0 || op->kind >= IR_OP_COUNT_) vfail(v, NULL, "an op has the unknown kind %d", (int)op->kind);
    if (op->parent != b) vfail(v, op, "the op's parent pointer does not name its block");
    for (int j = 0; j < op->nin; j++) use_value(v, op, op->in[j], "operand", j, tscope);
    for (int r = 0; r < op->nregions; r++) {
      const IrBlock *rb = op->regions[r];
      if (!rb) vfail(v, op, "region %d is missing (NULL)", r);
      if (rb->parent != op) vfail(v, op, "region %d's parent pointer does not name the op", r);
      int new_t = op->kind == IR_OP_MIXTURE || op->kind == IR_OP_SKIP;
      verify_block(v, rb, op, new_t ? rb : tscope);
    }
    for (int j = 0; j < op->nout; j++) {
      if (!op->out[j]) vfail(v, op, "result %d is missing (NULL)", j);
      if (op->out[j]->def != op) vfail(v, op, "result %d does not point back to its op", j);
    }
    verify_kind(v, op, b);
    for (int j = 0; j < op->nout; j++) define_value(v, op, op->out[j], tscope);
  }
  for (int i = 0; i < b->nyield; i++) use_value(v, owner, b->yields[i], "yielded value", i, tscope);
  if (owner == NULL && b->nyield) vfail(v, NULL, "the module body yields values");
  /* Leaving the block: its values go out of scope. */
  for (int i = 0; i < b->nargs; i++) v->live[b->args[i]->id] = 0;
  for (int i = 0; i < b->ops.len; i++) {
    const IrOp *op = b->ops.data[i];
    for (int j = 0; j < op->nout; j++) v->live[op->out[j]->id] = 0;
  }
}

/* ---- module tables -------------------------------------------------------------------- */

static void check_static_shape(Verifier *v, IrShape s, const char *what, const char *name) {
  if (s.rank < 0 || s.rank > IR_MAX_RANK) vfail(v, NULL, "%s \"%s\" has a bad rank %d", what, name, s.rank);
  for (int d = 0; d < s.rank; d++)
    if (s.dims[d] <= 0)
      vfail(v, NULL, "%s \"%s\" must have a static shape with positive dims", what, name);
}

static void check_tables(Verifier *v) {
  const IrModule *m = v->m;
  if (m->max_T <= 0) vfail(v, NULL, "max_T must be positive");
  if (m->max_T > GAT_LIMIT_MAX_T) vfail(v, NULL, "max_T is over the limit of %lld", (long long)GAT_LIMIT_MAX_T);
  int64_t param_numel = 0;
  for (int i = 0; i < m->params.len; i++) {
    const IrParam *p = m->params.data[i];
    check_static_shape(v, p->shape, "param", p->name);
    param_numel = gat_size_add(param_numel, ir_shape_numel(p->shape, 1));
    if (param_numel > GAT_LIMIT_PARAM_NUMEL)
      vfail(v, NULL, "param \"%s\" brings the module over the limit of 2^40 parameter elements", p->name);
    for (int j = 0; j < i; j++)
      if (!strcmp(((const IrParam *)m->params.data[j])->name, p->name))
        vfail(v, NULL, "param \"%s\" is declared twice", p->name);
  }
  for (int k = 0; k < 2; k++) {
    const PtrVec *io = k ? &m->outputs : &m->inputs;
    for (int i = 0; i < io->len; i++) {
      const IrIO *x = io->data[i];
      for (int d = 0; d < x->shape.rank; d++)
        if (x->shape.dims[d] <= 0 && x->shape.dims[d] != IR_DIM_T)
          vfail(v, NULL, "%s \"%s\" has a non-positive dimension", k ? "output" : "input", x->name);
      for (int j = 0; j < i; j++)
        if (!strcmp(((const IrIO *)io->data[j])->name, x->name))
          vfail(v, NULL, "%s \"%s\" is declared twice", k ? "output" : "input", x->name);
    }
  }
  for (int i = 0; i < m->states.len; i++) {
    const IrState *s = m->states.data[i];
    check_static_shape(v, s->shape, "state", s->name);
  }
}

int ir_verify(const IrModule *m, char *err, size_t errlen) {
  Verifier v;
  memset(&v, 0, sizeof v);
  v.m = m;
  v.err = err;
  v.errlen = errlen;
  v.nids = m->next_value_id > 0 ? m->next_value_id : 1;
  v.defined = xcalloc((size_t)v.nids, sizeof *v.defined);
  v.live = xcalloc((size_t)v.nids, 1);
  v.tscope = xcalloc((size_t)v.nids, sizeof *v.tscope);
  v.out_count = xcalloc((size_t)(m->outputs.len + 1), sizeof(int));
  if (err && errlen) err[0] = 0;
  volatile int rc = -1;
  if (setjmp(v.fail) == 0) {
    check_tables(&v);
    if (!m->body) vfail(&v, NULL, "the module has no body");
    verify_block(&v, m->body, NULL, NULL);
    for (int i = 0; i < m->outputs.len; i++)
      if (v.out_count[i] == 0)
        vfail(&v, NULL, "module output \"%s\" is never produced (no output op names it)",
              ((const IrIO *)m->outputs.data[i])->name);
    rc = 0;
  }
  free(v.defined);
  free(v.live);
  free(v.tscope);
  free(v.out_count);
  return rc;
}
