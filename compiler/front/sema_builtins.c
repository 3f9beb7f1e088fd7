/* sema_builtins.c — the builtin functions of .gat (docs/language.md, "Builtins")
 * and the elementwise arithmetic every expression uses: argument binding,
 * shape checks, folding of compile-time scalars, and emission of the matching
 * graph IR ops. Parameter-creating builtins (linear, embedding, norms,
 * causal_conv1d) name their weights as PyTorch does, under the call's scope.
 *
 * Operators and elementwise functions fold when all operands are compile-time
 * scalars; otherwise scalars become 0-d IR_OP_CONST tensors and shapes follow
 * numpy broadcasting (T broadcasts only against T or 1). Mixed i32/f32
 * operands are computed in f32. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gat_limits.h"
#include "sema_internal.h"

/* ---- emission helpers ---------------------------------------------------- */
IrOp *sema_op(Sema *S, IrOpKind kind, int nin, IrValue *const *in, SrcLoc loc) {
  IrOp *op = ir_op_new(S->m, S->block, kind, nin, in, loc);
  op->origin = S->origin;
  sema_stream_check_op(S, op);
  return op;
}
IrValue *sema_op1(Sema *S, IrOpKind kind, int nin, IrValue *const *in, IrDType dt, IrShape shape, SrcLoc loc) {
  IrOp *op = sema_op(S, kind, nin, in, loc);
  return ir_op_add_result(S->m, op, dt, shape);
}
IrValue *sema_const(Sema *S, double v, IrDType dt, SrcLoc loc) {
  IrOp *op = sema_op(S, IR_OP_CONST, 0, NULL, loc);
  ir_op_set_float(S->m, op, "value", v);
  return ir_op_add_result(S->m, op, dt, ir_shape_scalar());
}
IrValue *sema_cast(Sema *S, IrValue *v, IrDType dt, SrcLoc loc) {
  if (v->dtype == dt) return v;
  return sema_op1(S, IR_OP_CAST, 1, &v, dt, v->shape, loc);
}
static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}
void *namemap_get(const NameMap *m, const char *key) {
  if (!m->cap) return NULL;
  for (uint64_t i = hash_str(key) & (uint64_t)(m->cap - 1);; i = (i + 1) & (uint64_t)(m->cap - 1)) {
    if (!m->keys[i]) return NULL;
    if (strcmp(m->keys[i], key) == 0) return m->vals[i];
  }
}
void namemap_put(NameMap *m, const char *key, void *val) {
  if (2 * (m->len + 1) > m->cap) {
    NameMap bigger = {0};
    bigger.cap = m->cap ? 2 * m->cap : 64;
    bigger.keys = xcalloc((size_t)bigger.cap, sizeof(char *));
    bigger.vals = xcalloc((size_t)bigger.cap, sizeof(void *));
    for (int i = 0; i < m->cap; i++)
      if (m->keys[i]) namemap_put(&bigger, m->keys[i], m->vals[i]);
    namemap_free(m);
    *m = bigger;
  }
  uint64_t i = hash_str(key) & (uint64_t)(m->cap - 1);
  while (m->keys[i] && strcmp(m->keys[i], key) != 0) i = (i + 1) & (uint64_t)(m->cap - 1);
  if (!m->keys[i]) m->len++;
  m->keys[i] = key;
  m->vals[i] = val;
}
void namemap_free(NameMap *m) {
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

IrValue *sema_param(Sema *S, const char *full_name, IrDType dt, IrShape shape, IrInit init, SrcLoc loc) {
  IrParam *prev = namemap_get(&S->param_names, full_name);
  if (prev) {
    diag_error(loc, "parameter '%s' is created twice; give the calls distinct scopes (@ \"...\")", full_name);
    diag_note(prev->loc, "first created here");
    return NULL;
  }
  /* checked before anything multiplies these dims (docs/language.md, Limits) */
  for (int i = 0; i < shape.rank; i++)
    if (shape.dims[i] > GAT_LIMIT_DIM) {
      diag_error(loc, "parameter '%s' would be %s: dimension %lld is over the limit of %lld", full_name,
                 sema_type_str(S, dt, shape), (long long)shape.dims[i], (long long)GAT_LIMIT_DIM);
      return NULL;
    }
  int64_t n = ir_shape_numel(shape, 1);
  if (n > GAT_LIMIT_NUMEL) {
    diag_error(loc, "parameter '%s' would be %s: %lld elements, over the limit of 2^40 per tensor", full_name,
               sema_type_str(S, dt, shape), (long long)n);
    return NULL;
  }
  if (gat_size_add(S->param_numel, n) > GAT_LIMIT_PARAM_NUMEL) {
    diag_error(loc, "parameter '%s' brings the model over the limit of 2^40 parameter elements", full_name);
    return NULL;
  }
  S->param_numel += n;
  IrParam *p = ir_module_add_param(S->m, full_name, dt, shape, init, loc);
  namemap_put(&S->param_names, p->name, p);
  IrOp *op = sema_op(S, IR_OP_PARAM, 0, NULL, loc);
  ir_op_set_str(S->m, op, "name", full_name);
  return ir_op_add_result(S->m, op, dt, shape);
}
/* State slots are named for dumps only, but two in one scope (two scans
 * with a state S, two attention calls) would print alike: number repeats. */
int sema_state(Sema *S, const char *name, IrDType dt, IrShape shape, double init) {
  const char *n = name;
  for (int k = 2; namemap_get(&S->state_names, n); k++) n = arena_printf(S->a, "%s#%d", name, k);
  namemap_put(&S->state_names, n, (void *)1);
  return ir_module_add_state(S->m, n, dt, shape, init);
}
static IrInit init_of(IrInitKind k, double a, double b) {
  IrInit i = {k, a, b};
  return i;
}
static const char *type_of(Sema *S, Val v) {
  return v.kind == VAL_TENSOR ? sema_type_str(S, v.t->dtype, v.t->shape) : val_kind_name(v);
}

int sema_broadcast(IrShape a, IrShape b, IrShape *out) {
  int r = a.rank > b.rank ? a.rank : b.rank;
  IrShape s;
  memset(&s, 0, sizeof s);
  s.rank = r;
  for (int i = 0; i < r; i++) {
    int64_t da = i < a.rank ? a.dims[a.rank - 1 - i] : 1;
    int64_t db = i < b.rank ? b.dims[b.rank - 1 - i] : 1;
    int64_t d;
    if (da == db) d = da;
    else if (da == 1) d = db;
    else if (db == 1) d = da;
    else return -1;
    s.dims[r - 1 - i] = d;
  }
  *out = s;
  return 0;
}

/* ---- scalar folding ----------------------------------------------------- */
int sema_fold_fn(IrFn fn, double a, double b, double *out) {
  double r;
  switch (fn) {
  case IR_FN_NEG: r = -a; break;
  case IR_FN_EXP: r = exp(a); break;
  case IR_FN_LOG: r = log(a); break;
  case IR_FN_SQRT: r = sqrt(a); break;
  case IR_FN_RSQRT: r = 1.0 / sqrt(a); break;
  case IR_FN_ABS: r = fabs(a); break;
  case IR_FN_TANH: r = tanh(a); break;
  case IR_FN_SIGMOID: r = 1.0 / (1.0 + exp(-a)); break;
  case IR_FN_LOGSIGMOID: r = a < 0 ? a - log1p(exp(a)) : -log1p(exp(-a)); break;
  case IR_FN_SILU: r = a / (1.0 + exp(-a)); break;
  case IR_FN_RELU: r = a > 0 ? a : 0; break;
  case IR_FN_GELU_ERF: r = 0.5 * a * (1.0 + erf(a / sqrt(2.0))); break;
  case IR_FN_GELU_TANH: r = 0.5 * a * (1.0 + tanh(sqrt(2.0 / M_PI) * (a + 0.044715 * a * a * a))); break;
  case IR_FN_SOFTPLUS: r = a > 20 ? a : log1p(exp(a)); break;
  case IR_FN_NOT: r = a == 0; break;
  case IR_FN_ADD: r = a + b; break;
  case IR_FN_SUB: r = a - b; break;
  case IR_FN_MUL: r = a * b; break;
  case IR_FN_DIV: r = a / b; break;
  case IR_FN_POW: r = pow(a, b); break;
  case IR_FN_MAX: r = a > b ? a : b; break;
  case IR_FN_MIN: r = a < b ? a : b; break;
  case IR_FN_MOD: r = fmod(a, b); break;
  case IR_FN_LT: r = a < b; break;
  case IR_FN_LE: r = a <= b; break;
  case IR_FN_GT: r = a > b; break;
  case IR_FN_GE: r = a >= b; break;
  case IR_FN_EQ: r = a == b; break;
  case IR_FN_NE: r = a != b; break;
  case IR_FN_AND: r = a != 0 && b != 0; break;
  case IR_FN_OR: r = a != 0 || b != 0; break;
  default: return -1;
  }
  *out = r;
  return 0;
}

static const struct {
  const char *name;
  IrFn fn;
} unary_fns[] = {
    {"exp", IR_FN_EXP},         {"log", IR_FN_LOG},       {"sqrt", IR_FN_SQRT},
    {"rsqrt", IR_FN_RSQRT},     {"abs", IR_FN_ABS},       {"tanh", IR_FN_TANH},
    {"sigmoid", IR_FN_SIGMOID}, {"logsigmoid", IR_FN_LOGSIGMOID}, {"silu", IR_FN_SILU},
    {"relu", IR_FN_RELU},       {"softplus", IR_FN_SOFTPLUS},
};
int sema_fn_of_name(const char *name, int *arity) {
  for (size_t i = 0; i < sizeof unary_fns / sizeof unary_fns[0]; i++)
    if (strcmp(unary_fns[i].name, name) == 0) {
      *arity = 1;
      return unary_fns[i].fn;
    }
  if (strcmp(name, "max") == 0 || strcmp(name, "min") == 0) {
    *arity = 2;
    return name[1] == 'a' ? IR_FN_MAX : IR_FN_MIN;
  }
  return -1;
}

static IrFn fn_of_binop(AstBinOp op) {
  switch (op) {
  case AST_ADD: return IR_FN_ADD;
  case AST_SUB: return IR_FN_SUB;
  case AST_MUL: return IR_FN_MUL;
  case AST_DIV: return IR_FN_DIV;
  case AST_MOD: return IR_FN_MOD;
  case AST_POW: return IR_FN_POW;
  case AST_LT: return IR_FN_LT;
  case AST_LE: return IR_FN_LE;
  case AST_GT: return IR_FN_GT;
  case AST_GE: return IR_FN_GE;
  case AST_EQ: return IR_FN_EQ;
  case AST_NE: return IR_FN_NE;
  case AST_AND: return IR_FN_AND;
  case AST_OR: return IR_FN_OR;
  }
  gat_unreachable();
}
static const char *binop_sym(AstBinOp op) {
  static const char *const t[] = {"+", "-", "*", "/", "%", "**", "<", "<=", ">", ">=", "==", "!=", "and", "or"};
  return t[op];
}

static Val fold_binary(Sema *S, AstBinOp op, Val a, Val b, SrcLoc loc) {
  if (a.kind == VAL_STR || b.kind == VAL_STR) {
    if (a.kind == VAL_STR && b.kind == VAL_STR && (op == AST_EQ || op == AST_NE))
      return val_bool((strcmp(a.s, b.s) == 0) == (op == AST_EQ));
    if (a.kind == VAL_STR && b.kind == VAL_STR && op == AST_ADD)
      return val_str(arena_printf(S->a, "%s%s", a.s, b.s));
    diag_error(loc, "operator '%s' cannot be applied to %s and %s", binop_sym(op), val_kind_name(a), val_kind_name(b));
    return val_poison();
  }
  if (op == AST_AND) return val_bool(val_num(a) != 0 && val_num(b) != 0);
  if (op == AST_OR) return val_bool(val_num(a) != 0 || val_num(b) != 0);
  int ints = a.kind != VAL_FLOAT && b.kind != VAL_FLOAT;
  if (ints) {
    int64_t x = a.i, y = b.i, r;
    switch (op) {
    case AST_ADD:
      if (__builtin_add_overflow(x, y, &r)) break;
      return val_int(r);
    case AST_SUB:
      if (__builtin_sub_overflow(x, y, &r)) break;
      return val_int(r);
    case AST_MUL:
      if (__builtin_mul_overflow(x, y, &r)) break;
      return val_int(r);
    case AST_DIV:
      if (y == 0) {
        diag_error(loc, "division by zero in a compile-time expression");
        return val_poison();
      }
      if (y == -1) {
        if (x == INT64_MIN) break;
        return val_int(-x);
      }
      if (x % y == 0) return val_int(x / y);
      return val_float((double)x / (double)y);
    case AST_MOD:
      if (y == 0) {
        diag_error(loc, "modulo by zero in a compile-time expression");
        return val_poison();
      }
      if (y == -1) return val_int(0);
      return val_int(((x % y) + y) % y);
    case AST_POW:
      if (y >= 0) {
        int64_t p = 1;
        int ovf = 0;
        if (x == 0 || x == 1) p = y == 0 ? 1 : x;
        else if (x == -1) p = y % 2 ? -1 : 1;
        else /* |x| >= 2 overflows within 63 steps, so this loop is short */
          for (int64_t i = 0; i < y && !ovf; i++) ovf = __builtin_mul_overflow(p, x, &p);
        if (ovf) break;
        return val_int(p);
      }
      return val_float(pow((double)x, (double)y));
    case AST_LT: return val_bool(x < y);
    case AST_LE: return val_bool(x <= y);
    case AST_GT: return val_bool(x > y);
    case AST_GE: return val_bool(x >= y);
    case AST_EQ: return val_bool(x == y);
    case AST_NE: return val_bool(x != y);
    default: break;
    }
    if (op == AST_ADD || op == AST_SUB || op == AST_MUL || op == AST_POW) {
      diag_error(loc, "integer overflow in a compile-time expression (%lld %s %lld)", (long long)x, binop_sym(op),
                 (long long)y);
      return val_poison();
    }
  }
  double x = val_num(a), y = val_num(b), r = 0;
  if ((op == AST_DIV || op == AST_MOD) && y == 0) {
    diag_error(loc, "division by zero in a compile-time expression");
    return val_poison();
  }
  sema_fold_fn(fn_of_binop(op), x, y, &r);
  if (op >= AST_LT && op <= AST_NE) return val_bool(r != 0);
  return val_float(r);
}

/* A scalar as a 0-d tensor usable with `like`'s dtype where exact. */
static IrValue *scalar_tensor(Sema *S, Val s, IrDType prefer, SrcLoc loc) {
  if (prefer == IR_I32 && s.kind != VAL_FLOAT) return sema_const(S, (double)s.i, IR_I32, loc);
  return sema_const(S, val_num(s), IR_F32, loc);
}

/* Broadcasting aligns shapes from the right, so [T, K] against [T] (a
 * reduction's result) fails; say how to keep the axis. */
static const char *broadcast_hint(IrShape a, IrShape b) {
  if (a.rank == b.rank) return "";
  IrShape lo = a.rank < b.rank ? a : b, hi = a.rank < b.rank ? b : a;
  for (int i = 0; i < lo.rank; i++)
    if (lo.dims[i] != hi.dims[i]) return "";
  return " (shapes align from the right; to keep a reduced axis write keepdim: true, or reshape with as [...])";
}

Val sema_binary(Sema *S, AstBinOp op, Val a, Val b, SrcLoc loc) {
  if (a.kind == VAL_POISON || b.kind == VAL_POISON) return val_poison();
  if (a.kind == VAL_TUPLE || b.kind == VAL_TUPLE || a.kind == VAL_NONE || b.kind == VAL_NONE) {
    diag_error(loc, "operator '%s' cannot be applied to %s and %s", binop_sym(op), val_kind_name(a),
               val_kind_name(b));
    return val_poison();
  }
  if (val_is_scalar(a) && val_is_scalar(b)) return fold_binary(S, op, a, b, loc);
  if (a.kind == VAL_STR || b.kind == VAL_STR) {
    diag_error(loc, "operator '%s' cannot be applied to %s and %s", binop_sym(op), type_of(S, a), type_of(S, b));
    return val_poison();
  }
  /* at least one tensor */
  int need_f32 = op == AST_DIV || op == AST_POW;
  IrDType dt = IR_I32;
  if (a.kind == VAL_TENSOR && a.t->dtype == IR_F32) dt = IR_F32;
  if (b.kind == VAL_TENSOR && b.t->dtype == IR_F32) dt = IR_F32;
  if (a.kind == VAL_FLOAT || b.kind == VAL_FLOAT || need_f32) dt = IR_F32;
  IrValue *x = a.kind == VAL_TENSOR ? sema_cast(S, a.t, dt, loc) : scalar_tensor(S, a, dt, loc);
  IrValue *y = b.kind == VAL_TENSOR ? sema_cast(S, b.t, dt, loc) : scalar_tensor(S, b, dt, loc);
  IrShape rs;
  if (sema_broadcast(x->shape, y->shape, &rs) < 0) {
    diag_error(loc, "shapes %s and %s of '%s' cannot be broadcast together%s", type_of(S, a), type_of(S, b),
               binop_sym(op), broadcast_hint(x->shape, y->shape));
    return val_poison();
  }
  IrValue *ins[2] = {x, y};
  IrOp *o = sema_op(S, IR_OP_BINARY, 2, ins, loc);
  ir_op_set_str(S->m, o, "fn", ir_fn_name(fn_of_binop(op)));
  return val_tensor(ir_op_add_result(S->m, o, dt, rs));
}

static Val binary_fn(Sema *S, IrFn fn, Val a, Val b, SrcLoc loc, const char *what) {
  if (a.kind == VAL_POISON || b.kind == VAL_POISON) return val_poison();
  if (!(val_is_number(a) || a.kind == VAL_TENSOR) || !(val_is_number(b) || b.kind == VAL_TENSOR)) {
    diag_error(loc, "'%s' needs numbers or tensors, not %s and %s", what, val_kind_name(a), val_kind_name(b));
    return val_poison();
  }
  if (val_is_number(a) && val_is_number(b)) {
    if (a.kind != VAL_FLOAT && b.kind != VAL_FLOAT)
      return val_int(fn == IR_FN_MAX ? (a.i > b.i ? a.i : b.i) : (a.i < b.i ? a.i : b.i));
    double r;
    sema_fold_fn(fn, val_num(a), val_num(b), &r);
    return val_float(r);
  }
  IrDType dt = IR_I32;
  if ((a.kind == VAL_TENSOR && a.t->dtype == IR_F32) || (b.kind == VAL_TENSOR && b.t->dtype == IR_F32) ||
      a.kind == VAL_FLOAT || b.kind == VAL_FLOAT)
    dt = IR_F32;
  IrValue *x = a.kind == VAL_TENSOR ? sema_cast(S, a.t, dt, loc) : scalar_tensor(S, a, dt, loc);
  IrValue *y = b.kind == VAL_TENSOR ? sema_cast(S, b.t, dt, loc) : scalar_tensor(S, b, dt, loc);
  IrShape rs;
  if (sema_broadcast(x->shape, y->shape, &rs) < 0) {
    diag_error(loc, "shapes %s and %s of '%s' cannot be broadcast together", type_of(S, a), type_of(S, b), what);
    return val_poison();
  }
  IrValue *ins[2] = {x, y};
  IrOp *o = sema_op(S, IR_OP_BINARY, 2, ins, loc);
  ir_op_set_str(S->m, o, "fn", ir_fn_name(fn));
  return val_tensor(ir_op_add_result(S->m, o, dt, rs));
}

Val sema_unary_fn(Sema *S, IrFn fn, Val a, SrcLoc loc, const char *what) {
  if (a.kind == VAL_POISON) return val_poison();
  if (val_is_number(a)) {
    if (fn == IR_FN_NOT) return val_bool(val_num(a) == 0);
    if (fn == IR_FN_NEG && a.kind != VAL_FLOAT) return val_int(-a.i);
    if (fn == IR_FN_ABS && a.kind != VAL_FLOAT) return val_int(a.i < 0 ? -a.i : a.i);
    double r;
    sema_fold_fn(fn, val_num(a), 0, &r);
    return val_float(r);
  }
  if (a.kind != VAL_TENSOR) {
    diag_error(loc, "'%s' cannot be applied to %s", what, val_kind_name(a));
    return val_poison();
  }
  IrValue *x = a.t;
  int keeps_int = fn == IR_FN_NEG || fn == IR_FN_ABS || fn == IR_FN_NOT || fn == IR_FN_RELU;
  if (!keeps_int) x = sema_cast(S, x, IR_F32, loc);
  IrOp *o = sema_op(S, IR_OP_UNARY, 1, &x, loc);
  ir_op_set_str(S->m, o, "fn", ir_fn_name(fn));
  return val_tensor(ir_op_add_result(S->m, o, x->dtype, x->shape));
}

/* ---- argument binding ------------------------------------------------------ */
#define MAX_BARGS 12
typedef struct Args {
  Val v[MAX_BARGS];
  SrcLoc loc[MAX_BARGS];
  int given[MAX_BARGS];
  const char *fname;
  SrcLoc call_loc;
} Args;

/* Binds call arguments to `names` (positional order; the first nreq are
 * required). Returns 0, or -1 if an error was reported or an argument is
 * poison. */
static int bind_args(Sema *S, AstExpr *call, const char *const *names, int nreq, Args *A) {
  memset(A, 0, sizeof *A);
  A->fname = call->name;
  A->call_loc = call->loc;
  int n = 0;
  while (names[n]) n++;
  GAT_ASSERT(n <= MAX_BARGS);
  int pos = 0, bad = 0;
  for (int i = 0; i < call->args.len; i++) {
    AstArg *arg = call->args.items[i];
    Val v = sema_eval(S, arg->value);
    if (v.kind == VAL_POISON) bad = 1;
    int k = -1;
    if (!arg->name) {
      if (pos >= n) {
        diag_error(arg->loc, "too many arguments to '%s' (it takes at most %d)", call->name, n);
        bad = 1;
        continue;
      }
      k = pos++;
    } else {
      for (int j = 0; j < n; j++)
        if (strcmp(names[j], arg->name) == 0) k = j;
      if (k < 0) {
        StrBuf sb = {0};
        for (int j = 0; j < n; j++) sb_printf(&sb, "%s%s", j ? ", " : "", names[j]);
        diag_error(arg->loc, "'%s' has no argument '%s' (arguments: %s)", call->name, arg->name, sb_cstr(&sb));
        sb_free(&sb);
        bad = 1;
        continue;
      }
      if (A->given[k]) {
        diag_error(arg->loc, "argument '%s' of '%s' is given twice", arg->name, call->name);
        bad = 1;
        continue;
      }
    }
    A->given[k] = 1;
    A->v[k] = v;
    A->loc[k] = arg->loc;
  }
  for (int k = 0; k < nreq; k++)
    if (!A->given[k]) {
      diag_error(call->loc, "missing argument '%s' in call to '%s'", names[k], call->name);
      bad = 1;
    }
  for (int k = 0; k < n; k++)
    if (!A->given[k]) A->v[k].kind = VAL_NONE;
  return bad ? -1 : 0;
}

static IrValue *arg_tensor(Sema *S, Args *A, int k, const char *what) {
  (void)S;
  Val v = A->v[k];
  if (v.kind == VAL_TENSOR) return v.t;
  diag_error(A->loc[k].line ? A->loc[k] : A->call_loc, "'%s' needs a tensor for '%s', not %s", A->fname, what,
             val_kind_name(v));
  return NULL;
}
static int arg_int(Sema *S, Args *A, int k, const char *what, int64_t deflt, int64_t *out) {
  (void)S;
  Val v = A->v[k];
  if (v.kind == VAL_NONE) {
    *out = deflt;
    return 0;
  }
  if (v.kind == VAL_INT) {
    *out = v.i;
    return 0;
  }
  if (v.kind == VAL_FLOAT && v.f == floor(v.f) && fabs(v.f) < 1e15) {
    *out = (int64_t)v.f;
    return 0;
  }
  diag_error(A->loc[k], "'%s' needs a compile-time int for '%s', not %s", A->fname, what, val_kind_name(v));
  return -1;
}
static int arg_float(Sema *S, Args *A, int k, const char *what, double deflt, double *out) {
  (void)S;
  Val v = A->v[k];
  if (v.kind == VAL_NONE) {
    *out = deflt;
    return 0;
  }
  if (v.kind == VAL_INT || v.kind == VAL_FLOAT) {
    *out = val_num(v);
    return 0;
  }
  diag_error(A->loc[k], "'%s' needs a compile-time number for '%s', not %s", A->fname, what, val_kind_name(v));
  return -1;
}
static int arg_bool(Sema *S, Args *A, int k, const char *what, int deflt, int *out) {
  (void)S;
  Val v = A->v[k];
  if (v.kind == VAL_NONE) {
    *out = deflt;
    return 0;
  }
  if (v.kind == VAL_BOOL) {
    *out = (int)v.i;
    return 0;
  }
  diag_error(A->loc[k], "'%s' needs true or false for '%s', not %s", A->fname, what, val_kind_name(v));
  return -1;
}
static int arg_str(Sema *S, Args *A, int k, const char *what, const char *deflt, const char **out) {
  (void)S;
  Val v = A->v[k];
  if (v.kind == VAL_NONE) {
    *out = deflt;
    return 0;
  }
  if (v.kind == VAL_STR) {
    *out = v.s;
    return 0;
  }
  diag_error(A->loc[k], "'%s' needs a string for '%s', not %s", A->fname, what, val_kind_name(v));
  return -1;
}
static int norm_axis(Sema *S, Args *A, int k, int64_t axis, int rank, int *out) {
  (void)S;
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    diag_error(A->loc[k].line ? A->loc[k] : A->call_loc, "axis %lld is out of range for a tensor of rank %d",
               (long long)axis, rank);
    return -1;
  }
  *out = (int)a;
  return 0;
}
static int reject_token_only(Sema *S, SrcLoc loc, const char *what) {
  if (!S->token_only) return 0;
  diag_error(loc, "'%s' cannot be used inside a mixture or skip body: those run token by token on the "
                  "selected rows only", what);
  return -1;
}
static const char *call_scope(Sema *S, AstExpr *call, int *bad) {
  if (!call->scope) return S->scope;
  const char *s = sema_subst_scope(S, call->scope, call->scope_loc);
  if (!s) {
    *bad = 1;
    return S->scope;
  }
  return sema_join_scope(S, S->scope, s);
}
static IrShape shape_with_last(IrShape s, int64_t last) {
  s.dims[s.rank - 1] = last;
  return s;
}
static Val tuple2(Sema *S, IrValue *a, IrValue *b) {
  Val t = val_poison();
  t.kind = VAL_TUPLE;
  t.n = 2;
  t.items = ARENA_ARRAY(S->a, Val, 2);
  t.items[0] = val_tensor(a);
  t.items[1] = val_tensor(b);
  return t;
}
static int need_rank(Sema *S, IrValue *x, int min_rank, SrcLoc loc, const char *fname, const char *what) {
  if (x->shape.rank >= min_rank) return 0;
  diag_error(loc, "'%s' needs %s of rank at least %d, but it is %s", fname, what, min_rank,
             sema_type_str(S, x->dtype, x->shape));
  return -1;
}
static int last_dim_fixed(Sema *S, IrValue *x, SrcLoc loc, const char *fname) {
  if (x->shape.rank >= 1 && x->shape.dims[x->shape.rank - 1] != IR_DIM_T) return 0;
  diag_error(loc, "'%s' works over the last dimension, which cannot be T (argument is %s)", fname,
             sema_type_str(S, x->dtype, x->shape));
  return -1;
}

/* ---- reshape and slices ------------------------------------------------------ */
Val sema_reshape(Sema *S, Val x, AstExpr *as) {
  IrShape s;
  memset(&s, 0, sizeof s);
  int bad = 0;
  if (as->args.len > IR_MAX_RANK) {
    diag_error(as->loc, "tensors have at most %d dimensions", IR_MAX_RANK);
    return val_poison();
  }
  s.rank = as->args.len;
  for (int i = 0; i < s.rank; i++) {
    int64_t d = sema_eval_dim(S, as->args.items[i]);
    if (d == -2) bad = 1;
    s.dims[i] = d;
  }
  if (x.kind == VAL_POISON || bad) return val_poison();
  if (x.kind != VAL_TENSOR) {
    diag_error(as->loc, "'as [...]' reshapes a tensor, not %s", val_kind_name(x));
    return val_poison();
  }
  int tx = 0, ts = 0;
  int64_t nx = 1, ns = 1;
  for (int i = 0; i < x.t->shape.rank; i++) {
    if (x.t->shape.dims[i] == IR_DIM_T) tx++;
    else if (__builtin_mul_overflow(nx, x.t->shape.dims[i], &nx)) nx = -2;
  }
  for (int i = 0; i < s.rank; i++) {
    if (s.dims[i] == IR_DIM_T) ts++;
    else if (__builtin_mul_overflow(ns, s.dims[i], &ns)) ns = -1;
  }
  if (tx != ts || nx != ns) {
    diag_error(as->loc, "cannot reshape %s to %s: the number of elements differs", type_of(S, x),
               sema_type_str(S, x.t->dtype, s));
    return val_poison();
  }
  if (ir_shape_eq(s, x.t->shape)) return x;
  IrValue *in = x.t;
  return val_tensor(sema_op1(S, IR_OP_RESHAPE, 1, &in, in->dtype, s, as->loc));
}

Val sema_slice(Sema *S, AstExpr *e) {
  int has_slice = 0;
  for (int i = 0; i < e->args.len; i++)
    if (((AstExpr *)e->args.items[i])->kind == AST_EXPR_SLICE) has_slice = 1;
  if (!has_slice) {
    diag_error(e->loc, "element access '%s' is only allowed in index notation (y[i, j] = ...); "
                       "to take part of a tensor use a slice such as x[0:4, :]", sema_expr_str(S, e));
    return val_poison();
  }
  Val base = sema_lookup_name(S, e->name, e->loc);
  if (base.kind == VAL_POISON) return base;
  if (base.kind != VAL_TENSOR) {
    diag_error(e->loc, "'%s' is %s and cannot be sliced", e->name, val_kind_name(base));
    return val_poison();
  }
  IrValue *x = base.t;
  int rank = x->shape.rank;
  if (e->args.len > rank) {
    diag_error(e->loc, "'%s' has %d dimension%s (%s) but is indexed with %d", e->name, rank, rank == 1 ? "" : "s",
               type_of(S, base), e->args.len);
    return val_poison();
  }
  int64_t start[IR_MAX_RANK], stop[IR_MAX_RANK];
  int drop[IR_MAX_RANK] = {0};
  int bad = 0;
  for (int i = 0; i < rank; i++) {
    int64_t d = x->shape.dims[i];
    start[i] = 0;
    stop[i] = d;
    if (i >= e->args.len) continue;
    AstExpr *ix = e->args.items[i];
    AstExpr *lo = ix->kind == AST_EXPR_SLICE ? ix->lo : ix;
    AstExpr *hi = ix->kind == AST_EXPR_SLICE ? ix->hi : NULL;
    if (d == IR_DIM_T) {
      if (ix->kind != AST_EXPR_SLICE || lo || hi) {
        diag_error(ix->loc, "dimension %d of '%s' is T; only ':' (all of it) can be taken from it", i, e->name);
        bad = 1;
      }
      continue;
    }
    int64_t v[2] = {0, d};
    AstExpr *ends[2] = {lo, hi};
    for (int j = 0; j < 2; j++) {
      if (!ends[j]) continue;
      Val ev = sema_eval(S, ends[j]);
      if (ev.kind == VAL_POISON) {
        bad = 1;
        continue;
      }
      if (ev.kind != VAL_INT) {
        diag_error(ends[j]->loc, "slice bounds must be compile-time ints, not %s", val_kind_name(ev));
        bad = 1;
        continue;
      }
      v[j] = ev.i < 0 ? ev.i + d : ev.i;
    }
    if (ix->kind != AST_EXPR_SLICE) {
      v[1] = v[0] + 1;
      drop[i] = 1;
    }
    if (!bad && (v[0] < 0 || v[1] > d || v[0] >= v[1])) {
      diag_error(ix->loc, "slice %s of dimension %d of '%s' (%s) is empty or out of bounds", sema_expr_str(S, ix),
                 i, e->name, type_of(S, base));
      bad = 1;
    }
    start[i] = v[0];
    stop[i] = v[1];
  }
  if (bad) return val_poison();
  for (int i = 0; i < rank; i++) {
    if (start[i] == 0 && stop[i] == x->shape.dims[i]) continue;
    IrShape s = x->shape;
    s.dims[i] = stop[i] - start[i];
    IrOp *op = sema_op(S, IR_OP_SLICE, 1, &x, e->loc);
    ir_op_set_int(S->m, op, "axis", i);
    ir_op_set_int(S->m, op, "start", start[i]);
    ir_op_set_int(S->m, op, "stop", stop[i]);
    x = ir_op_add_result(S->m, op, x->dtype, s);
  }
  IrShape s;
  memset(&s, 0, sizeof s);
  for (int i = 0; i < rank; i++)
    if (!drop[i]) s.dims[s.rank++] = x->shape.dims[i];
  if (s.rank != rank) x = sema_op1(S, IR_OP_RESHAPE, 1, &x, x->dtype, s, e->loc);
  return val_tensor(x);
}

/* ---- builtins ------------------------------------------------------------ */
static Val bi_reduce(Sema *S, AstExpr *call, IrReduceKind kind) {
  static const char *const names[] = {"x", "axis", "keepdim", NULL};
  static const char *const kn[] = {"sum", "max", "min", "mean"};
  Args A;
  if (bind_args(S, call, names, 1, &A) < 0) return val_poison();
  IrValue *x = arg_tensor(S, &A, 0, "x");
  int64_t axis;
  int keepdim;
  if (!x || arg_int(S, &A, 1, "axis", -1, &axis) < 0 || arg_bool(S, &A, 2, "keepdim", 0, &keepdim) < 0)
    return val_poison();
  if (x->shape.rank < 1) {
    diag_error(call->loc, "'%s' needs a tensor of rank at least 1, not %s", call->name,
               sema_type_str(S, x->dtype, x->shape));
    return val_poison();
  }
  int ax;
  if (norm_axis(S, &A, 1, axis, x->shape.rank, &ax) < 0) return val_poison();
  if (x->shape.dims[ax] == IR_DIM_T && reject_token_only(S, call->loc, "a reduction over T") < 0)
    return val_poison();
  if (kind == IR_RED_MEAN) x = sema_cast(S, x, IR_F32, call->loc);
  IrShape s;
  memset(&s, 0, sizeof s);
  for (int i = 0; i < x->shape.rank; i++)
    if (i != ax) s.dims[s.rank++] = x->shape.dims[i];
  IrOp *op = sema_op(S, IR_OP_REDUCE, 1, &x, call->loc);
  ir_op_set_str(S->m, op, "kind", kn[kind]);
  int64_t axes[1] = {ax};
  ir_op_set_ints(S->m, op, "axes", 1, axes);
  IrValue *r = ir_op_add_result(S->m, op, x->dtype, s);
  if (keepdim) { /* the reduced axis stays as size 1, for broadcasting back */
    IrShape k = x->shape;
    k.dims[ax] = 1;
    r = sema_op1(S, IR_OP_RESHAPE, 1, &r, r->dtype, k, call->loc);
  }
  return val_tensor(r);
}

static Val bi_linear(Sema *S, AstExpr *call) {
  static const char *const names[] = {"x", "out", "bias", NULL};
  Args A;
  int bad = 0;
  const char *scope = call_scope(S, call, &bad);
  if (bind_args(S, call, names, 2, &A) < 0 || bad) return val_poison();
  IrValue *x = arg_tensor(S, &A, 0, "x");
  int64_t out;
  int bias;
  if (!x || arg_int(S, &A, 1, "out", 0, &out) < 0 || arg_bool(S, &A, 2, "bias", 0, &bias) < 0) return val_poison();
  if (need_rank(S, x, 1, A.loc[0], "linear", "x") < 0 || last_dim_fixed(S, x, A.loc[0], "linear") < 0)
    return val_poison();
  if (out < 1) {
    diag_error(A.loc[1], "linear: the output size must be a positive int, got %lld", (long long)out);
    return val_poison();
  }
  x = sema_cast(S, x, IR_F32, call->loc);
  int64_t in = x->shape.dims[x->shape.rank - 1];
  int64_t wd[2] = {out, in};
  IrValue *w = sema_param(S, sema_join_scope(S, scope, "weight"), IR_F32, ir_shape(2, wd),
                          init_of(IR_INIT_LINEAR, 0, 0), call->loc);
  IrValue *b = NULL;
  if (bias) {
    double r = 1.0 / sqrt((double)in);
    b = sema_param(S, sema_join_scope(S, scope, "bias"), IR_F32, ir_shape(1, &out),
                   init_of(IR_INIT_UNIFORM, -r, r), call->loc);
    if (!b) return val_poison();
  }
  if (!w) return val_poison();
  IrValue *ins[3] = {x, w, b};
  return val_tensor(sema_op1(S, IR_OP_LINEAR, bias ? 3 : 2, ins, IR_F32, shape_with_last(x->shape, out), call->loc));
}

static Val bi_matmul(Sema *S, AstExpr *call) {
  static const char *const names[] = {"a", "b", NULL};
  Args A;
  if (bind_args(S, call, names, 2, &A) < 0) return val_poison();
  IrValue *a = arg_tensor(S, &A, 0, "a"), *b = arg_tensor(S, &A, 1, "b");
  if (!a || !b) return val_poison();
  if (need_rank(S, a, 2, A.loc[0], "matmul", "a") < 0 || need_rank(S, b, 2, A.loc[1], "matmul", "b") < 0)
    return val_poison();
  int ra = a->shape.rank, rb = b->shape.rank;
  int64_t M = a->shape.dims[ra - 2], K = a->shape.dims[ra - 1], K2 = b->shape.dims[rb - 2], N = b->shape.dims[rb - 1];
  IrShape ba = a->shape, bb = b->shape, bs;
  ba.rank -= 2;
  bb.rank -= 2;
  if (K != K2 || sema_broadcast(ba, bb, &bs) < 0 || bs.rank + 2 > IR_MAX_RANK) {
    diag_error(call->loc, "matmul: shapes %s and %s do not fit [..., M, K] x [..., K, N]",
               sema_type_str(S, a->dtype, a->shape), sema_type_str(S, b->dtype, b->shape));
    return val_poison();
  }
  if (K == IR_DIM_T && reject_token_only(S, call->loc, "a matmul contracting over T") < 0) return val_poison();
  a = sema_cast(S, a, IR_F32, call->loc);
  b = sema_cast(S, b, IR_F32, call->loc);
  bs.dims[bs.rank++] = M;
  bs.dims[bs.rank++] = N;
  IrValue *ins[2] = {a, b};
  return val_tensor(sema_op1(S, IR_OP_MATMUL, 2, ins, IR_F32, bs, call->loc));
}

static Val do_gather(Sema *S, AstExpr *call, IrValue *table, IrValue *ids, SrcLoc idloc) {
  if (ids->dtype != IR_I32) {
    diag_error(idloc, "'%s' needs i32 indices, not %s", call->name, sema_type_str(S, ids->dtype, ids->shape));
    return val_poison();
  }
  if (table->shape.rank < 1 || ids->shape.rank + table->shape.rank - 1 > IR_MAX_RANK) {
    diag_error(call->loc, "'%s': cannot index %s with %s", call->name,
               sema_type_str(S, table->dtype, table->shape), sema_type_str(S, ids->dtype, ids->shape));
    return val_poison();
  }
  if (table->shape.dims[0] == IR_DIM_T && reject_token_only(S, call->loc, "gather from a per-token table") < 0)
    return val_poison();
  IrShape s = ids->shape;
  for (int i = 1; i < table->shape.rank; i++) s.dims[s.rank++] = table->shape.dims[i];
  IrValue *ins[2] = {table, ids};
  return val_tensor(sema_op1(S, IR_OP_GATHER, 2, ins, table->dtype, s, call->loc));
}

static Val bi_embedding(Sema *S, AstExpr *call) {
  static const char *const names[] = {"ids", "vocab", "dim", NULL};
  Args A;
  int bad = 0;
  const char *scope = call_scope(S, call, &bad);
  if (bind_args(S, call, names, 3, &A) < 0 || bad) return val_poison();
  IrValue *ids = arg_tensor(S, &A, 0, "ids");
  int64_t vocab, dim;
  if (!ids || arg_int(S, &A, 1, "vocab", 0, &vocab) < 0 || arg_int(S, &A, 2, "dim", 0, &dim) < 0)
    return val_poison();
  if (vocab < 1 || dim < 1) {
    diag_error(call->loc, "embedding: vocab and dim must be positive (got %lld and %lld)", (long long)vocab,
               (long long)dim);
    return val_poison();
  }
  if (ids->dtype != IR_I32) {
    diag_error(A.loc[0], "embedding needs i32 token ids, not %s", sema_type_str(S, ids->dtype, ids->shape));
    return val_poison();
  }
  int64_t wd[2] = {vocab, dim};
  IrValue *w = sema_param(S, sema_join_scope(S, scope, "weight"), IR_F32, ir_shape(2, wd),
                          init_of(IR_INIT_NORMAL, 0, 1), call->loc);
  if (!w) return val_poison();
  return do_gather(S, call, w, ids, A.loc[0]);
}

static Val bi_softmax(Sema *S, AstExpr *call) {
  static const char *const names[] = {"x", "axis", NULL};
  Args A;
  if (bind_args(S, call, names, 1, &A) < 0) return val_poison();
  IrValue *x = arg_tensor(S, &A, 0, "x");
  int64_t axis;
  int ax;
  if (!x || arg_int(S, &A, 1, "axis", -1, &axis) < 0) return val_poison();
  if (need_rank(S, x, 1, A.loc[0], "softmax", "x") < 0 || norm_axis(S, &A, 1, axis, x->shape.rank, &ax) < 0)
    return val_poison();
  if (x->shape.dims[ax] == IR_DIM_T && reject_token_only(S, call->loc, "softmax over T") < 0) return val_poison();
  x = sema_cast(S, x, IR_F32, call->loc);
  IrOp *op = sema_op(S, IR_OP_SOFTMAX, 1, &x, call->loc);
  ir_op_set_int(S->m, op, "axis", ax);
  return val_tensor(ir_op_add_result(S->m, op, IR_F32, x->shape));
}

static Val bi_rms_norm(Sema *S, AstExpr *call) {
  static const char *const names[] = {"x", "eps", "plus_one", "weight", "over", NULL};
  Args A;
  int bad = 0;
  const char *scope = call_scope(S, call, &bad);
  if (bind_args(S, call, names, 1, &A) < 0 || bad) return val_poison();
  IrValue *x = arg_tensor(S, &A, 0, "x");
  double eps;
  int plus_one, weight;
  int64_t over;
  if (!x || arg_float(S, &A, 1, "eps", 1e-5, &eps) < 0 || arg_bool(S, &A, 2, "plus_one", 0, &plus_one) < 0 ||
      arg_bool(S, &A, 3, "weight", 1, &weight) < 0 || arg_int(S, &A, 4, "over", 0, &over) < 0)
    return val_poison();
  if (need_rank(S, x, 1, A.loc[0], "rms_norm", "x") < 0 || last_dim_fixed(S, x, A.loc[0], "rms_norm") < 0)
    return val_poison();
  int64_t D = x->shape.dims[x->shape.rank - 1];
  if (A.given[4] && over != D) {
    diag_error(A.loc[4], "rms_norm(over: %lld) normalises over the last dimension, but x is %s", (long long)over,
               sema_type_str(S, x->dtype, x->shape));
    return val_poison();
  }
  x = sema_cast(S, x, IR_F32, call->loc);
  IrValue *ins[2] = {x, NULL};
  if (weight) {
    ins[1] = sema_param(S, sema_join_scope(S, scope, "weight"), IR_F32, ir_shape(1, &D),
                        init_of(IR_INIT_CONST, plus_one ? 0.0 : 1.0, 0), call->loc);
    if (!ins[1]) return val_poison();
  }
  IrOp *op = sema_op(S, IR_OP_RMS_NORM, weight ? 2 : 1, ins, call->loc);
  ir_op_set_float(S->m, op, "eps", eps);
  ir_op_set_int(S->m, op, "plus_one", plus_one);
  return val_tensor(ir_op_add_result(S->m, op, IR_F32, x->shape));
}

static Val bi_layer_norm(Sema *S, AstExpr *call) {
  static const char *const names[] = {"x", "eps", "bias", "weight", NULL};
  Args A;
  int bad = 0;
  const char *scope = call_scope(S, call, &bad);
  if (bind_args(S, call, names, 1, &A) < 0 || bad) return val_poison();
  IrValue *x = arg_tensor(S, &A, 0, "x");
  double eps;
  int bias, weight;
  if (!x || arg_float(S, &A, 1, "eps", 1e-5, &eps) < 0 || arg_bool(S, &A, 2, "bias", 1, &bias) < 0 ||
      arg_bool(S, &A, 3, "weight", 1, &weight) < 0)
    return val_poison();
  if (need_rank(S, x, 1, A.loc[0], "layer_norm", "x") < 0 || last_dim_fixed(S, x, A.loc[0], "layer_norm") < 0)
    return val_poison();
  if (bias && !weight) {
    diag_error(call->loc, "layer_norm: a bias needs a weight (weight: false needs bias: false)");
    return val_poison();
  }
  int64_t D = x->shape.dims[x->shape.rank - 1];
  x = sema_cast(S, x, IR_F32, call->loc);
  IrValue *ins[3] = {x, NULL, NULL};
  int n = 1;
  if (weight) {
    ins[n++] = sema_param(S, sema_join_scope(S, scope, "weight"), IR_F32, ir_shape(1, &D),
                          init_of(IR_INIT_CONST, 1, 0), call->loc);
    if (!ins[1]) return val_poison();
  }
  if (bias) {
    ins[n++] = sema_param(S, sema_join_scope(S, scope, "bias"), IR_F32, ir_shape(1, &D),
                          init_of(IR_INIT_CONST, 0, 0), call->loc);
    if (!ins[2]) return val_poison();
  }
  IrOp *op = sema_op(S, IR_OP_LAYER_NORM, n, ins, call->loc);
  ir_op_set_float(S->m, op, "eps", eps);
  return val_tensor(ir_op_add_result(S->m, op, IR_F32, x->shape));
}

static Val bi_l2_norm(Sema *S, AstExpr *call) {
  static const char *const names[] = {"x", "eps", NULL};
  Args A;
  if (bind_args(S, call, names, 1, &A) < 0) return val_poison();
  IrValue *x = arg_tensor(S, &A, 0, "x");
  double eps;
  if (!x || arg_float(S, &A, 1, "eps", 1e-6, &eps) < 0) return val_poison();
  if (need_rank(S, x, 1, A.loc[0], "l2_norm", "x") < 0 || last_dim_fixed(S, x, A.loc[0], "l2_norm") < 0)
    return val_poison();
  x = sema_cast(S, x, IR_F32, call->loc);
  IrOp *op = sema_op(S, IR_OP_L2_NORM, 1, &x, call->loc);
  ir_op_set_float(S->m, op, "eps", eps);
  return val_tensor(ir_op_add_result(S->m, op, IR_F32, x->shape));
}

static Val bi_rope(Sema *S, AstExpr *call) {
  static const char *const names[] = {"x", "base", "dims", NULL};
  Args A;
  if (bind_args(S, call, names, 1, &A) < 0) return val_poison();
  /* allowed in mixture/skip/route bodies: the selected rows keep their own
     absolute positions there (ir.h IR_OP_ROPE) */
  IrValue *x = arg_tensor(S, &A, 0, "x");
  double base;
  int64_t dims;
  if (!x) return val_poison();
  if (x->dtype != IR_F32 || x->shape.rank != 3 || x->shape.dims[0] != IR_DIM_T || x->shape.dims[2] == IR_DIM_T) {
    diag_error(A.loc[0], "rope needs x of shape f32[T, H, D], not %s", sema_type_str(S, x->dtype, x->shape));
    return val_poison();
  }
  int64_t D = x->shape.dims[2];
  if (arg_float(S, &A, 1, "base", 10000.0, &base) < 0 || arg_int(S, &A, 2, "dims", D, &dims) < 0)
    return val_poison();
  if (dims < 2 || dims % 2 || dims > D) {
    diag_error(A.given[2] ? A.loc[2] : call->loc, "rope: dims must be even and between 2 and D = %lld, got %lld",
               (long long)D, (long long)dims);
    return val_poison();
  }
  IrOp *op = sema_op(S, IR_OP_ROPE, 1, &x, call->loc);
  ir_op_set_float(S->m, op, "base", base);
  ir_op_set_int(S->m, op, "dims", dims);
  return val_tensor(ir_op_add_result(S->m, op, IR_F32, x->shape));
}

static Val bi_conv1d(Sema *S, AstExpr *call) {
  static const char *const names[] = {"x", "kernel", "act", "bias", NULL};
  Args A;
  int bad = 0;
  const char *scope = call_scope(S, call, &bad);
  if (bind_args(S, call, names, 1, &A) < 0 || bad) return val_poison();
  if (reject_token_only(S, call->loc, "causal_conv1d") < 0) return val_poison();
  IrValue *x = arg_tensor(S, &A, 0, "x");
  int64_t W;
  const char *act;
  int bias;
  if (!x || arg_int(S, &A, 1, "kernel", 4, &W) < 0 || arg_str(S, &A, 2, "act", "silu", &act) < 0 ||
      arg_bool(S, &A, 3, "bias", 0, &bias) < 0)
    return val_poison();
  if (x->shape.rank != 2 || x->shape.dims[0] != IR_DIM_T || x->shape.dims[1] == IR_DIM_T) {
    diag_error(A.loc[0], "causal_conv1d needs x of shape f32[T, C], not %s", sema_type_str(S, x->dtype, x->shape));
    return val_poison();
  }
  if (W < 2) {
    diag_error(A.loc[1], "causal_conv1d: kernel must be at least 2, got %lld", (long long)W);
    return val_poison();
  }
  if (strcmp(act, "silu") != 0 && strcmp(act, "none") != 0) {
    diag_error(A.loc[2], "causal_conv1d: act must be \"silu\" or \"none\", not \"%s\"", act);
    return val_poison();
  }
  x = sema_cast(S, x, IR_F32, call->loc);
  int64_t C = x->shape.dims[1];
  int64_t wd[3] = {C, 1, W};
  IrValue *ins[3] = {x, NULL, NULL};
  ins[1] = sema_param(S, sema_join_scope(S, scope, "weight"), IR_F32, ir_shape(3, wd),
                      init_of(IR_INIT_LINEAR, 0, 0), call->loc);
  if (!ins[1]) return val_poison();
  if (bias) {
    double r = 1.0 / sqrt((double)W);
    ins[2] = sema_param(S, sema_join_scope(S, scope, "bias"), IR_F32, ir_shape(1, &C),
                        init_of(IR_INIT_UNIFORM, -r, r), call->loc);
    if (!ins[2]) return val_poison();
  }
  int64_t sd[2] = {W - 1, C};
  int slot = sema_state(S, sema_join_scope(S, scope, "conv_state"), IR_F32, ir_shape(2, sd), 0.0);
  IrOp *op = sema_op(S, IR_OP_CONV1D, bias ? 3 : 2, ins, call->loc);
  ir_op_set_str(S->m, op, "act", act);
  ir_op_set_int(S->m, op, "state", slot);
  return val_tensor(ir_op_add_result(S->m, op, IR_F32, x->shape));
}

static int is_thd(IrValue *v) {
  return v->dtype == IR_F32 && v->shape.rank == 3 && v->shape.dims[0] == IR_DIM_T && v->shape.dims[1] != IR_DIM_T &&
         v->shape.dims[2] != IR_DIM_T;
}

static Val bi_attention(Sema *S, AstExpr *call) {
  static const char *const names[] = {"q", "k", "v", "scale", "window", "qbias", "kbias", "relbias", NULL};
  Args A;
  int bad = 0;
  const char *scope = call_scope(S, call, &bad);
  if (bind_args(S, call, names, 3, &A) < 0 || bad) return val_poison();
  /* under one skip/route, attention runs over the routed tokens only (sema.c eval_skip) */
  if (!sema_attention_allowed(S) && reject_token_only(S, call->loc, "attention") < 0) return val_poison();
  IrValue *q = arg_tensor(S, &A, 0, "q"), *k = arg_tensor(S, &A, 1, "k"), *v = arg_tensor(S, &A, 2, "v");
  if (!q || !k || !v) return val_poison();
  const char *qn[3] = {"q", "k", "v"};
  IrValue *qkv[3] = {q, k, v};
  for (int i = 0; i < 3; i++)
    if (!is_thd(qkv[i])) {
      diag_error(A.loc[i], "attention needs %s of shape f32[T, heads, dim], not %s", qn[i],
                 sema_type_str(S, qkv[i]->dtype, qkv[i]->shape));
      return val_poison();
    }
  int64_t H = q->shape.dims[1], dk = q->shape.dims[2], Hkv = k->shape.dims[1], dv = v->shape.dims[2];
  if (k->shape.dims[2] != dk || v->shape.dims[1] != Hkv) {
    diag_error(call->loc, "attention: q %s, k %s and v %s do not fit q[T, H, d], k[T, Hkv, d], v[T, Hkv, dv]",
               sema_type_str(S, q->dtype, q->shape), sema_type_str(S, k->dtype, k->shape),
               sema_type_str(S, v->dtype, v->shape));
    return val_poison();
  }
  if (H % Hkv != 0) {
    diag_error(call->loc, "attention: %lld query heads cannot be grouped over %lld key/value heads "
                          "(H must be a multiple of Hkv)", (long long)H, (long long)Hkv);
    return val_poison();
  }
  double scale;
  int64_t window;
  if (arg_float(S, &A, 3, "scale", 1.0 / sqrt((double)dk), &scale) < 0 ||
      arg_int(S, &A, 4, "window", 0, &window) < 0)
    return val_poison();
  if (window < 0) {
    diag_error(A.loc[4], "attention: window must be >= 0 (0 = unlimited)");
    return val_poison();
  }
  int biased = A.given[5] || A.given[6];
  IrValue *qb = NULL, *kb = NULL;
  if (biased) {
    if (!A.given[5] || !A.given[6]) {
      diag_error(call->loc, "attention: qbias and kbias must be given together");
      return val_poison();
    }
    qb = arg_tensor(S, &A, 5, "qbias");
    kb = arg_tensor(S, &A, 6, "kbias");
    if (!qb || !kb) return val_poison();
    int64_t bd[2] = {IR_DIM_T, H};
    IrShape want = ir_shape(2, bd);
    IrValue *bs[2] = {qb, kb};
    for (int i = 0; i < 2; i++)
      if (!ir_shape_eq(bs[i]->shape, want)) {
        diag_error(A.loc[5 + i], "attention: %s must be f32[T, %lld], not %s", names[5 + i], (long long)H,
                   sema_type_str(S, bs[i]->dtype, bs[i]->shape));
        return val_poison();
      }
    qb = sema_cast(S, qb, IR_F32, call->loc);
    kb = sema_cast(S, kb, IR_F32, call->loc);
  }
  /* relbias: a Toeplitz term b[c + j - i] on the logits (c = centre of an odd-length
     table, i.e. distance 0; Mega's rel_pos_bias). It needs no cache: it depends only
     on the absolute positions, which prefill and decode share. */
  IrValue *rb = NULL;
  if (A.given[7]) {
    rb = arg_tensor(S, &A, 7, "relbias");
    if (!rb) return val_poison();
    if (rb->dtype != IR_F32 || rb->shape.rank != 1 || rb->shape.dims[0] == IR_DIM_T || rb->shape.dims[0] % 2 == 0) {
      diag_error(A.loc[7], "attention: relbias must be f32[2*M - 1] (one value per distance j - i from "
                           "-(M - 1) to M - 1, centre = distance 0), not %s",
                 sema_type_str(S, rb->dtype, rb->shape));
      return val_poison();
    }
  }
  /* -3 marks "max_T": lower_model fixes the size once max T is final. */
  int64_t kd[3] = {-3, Hkv, dk}, vd[3] = {-3, Hkv, dv}, bd[2] = {-3, H};
  int sk = sema_state(S, sema_join_scope(S, scope, "k_cache"), IR_F32, ir_shape(3, kd), 0.0);
  int sv = sema_state(S, sema_join_scope(S, scope, "v_cache"), IR_F32, ir_shape(3, vd), 0.0);
  IrValue *ins[6] = {q, k, v, qb, kb, NULL};
  int nin = biased ? 5 : 3;
  if (rb) ins[nin++] = rb;
  IrOp *op = sema_op(S, IR_OP_ATTENTION, nin, ins, call->loc);
  if (rb) ir_op_set_int(S->m, op, "relbias", nin - 1);
  ir_op_set_float(S->m, op, "scale", scale);
  ir_op_set_int(S->m, op, "causal", 1);
  ir_op_set_int(S->m, op, "window", window);
  ir_op_set_int(S->m, op, "state_k", sk);
  ir_op_set_int(S->m, op, "state_v", sv);
  if (biased) {
    int sb = sema_state(S, sema_join_scope(S, scope, "kb_cache"), IR_F32, ir_shape(2, bd), 0.0);
    ir_op_set_int(S->m, op, "state_kb", sb);
  }
  int64_t od[3] = {IR_DIM_T, H, dv};
  return val_tensor(ir_op_add_result(S->m, op, IR_F32, ir_shape(3, od)));
}

static Val bi_topk(Sema *S, AstExpr *call) {
  static const char *const names[] = {"x", "k", NULL};
  Args A;
  if (bind_args(S, call, names, 2, &A) < 0) return val_poison();
  IrValue *x = arg_tensor(S, &A, 0, "x");
  int64_t k;
  if (!x || arg_int(S, &A, 1, "k", 1, &k) < 0) return val_poison();
  if (need_rank(S, x, 1, A.loc[0], "topk", "x") < 0 || last_dim_fixed(S, x, A.loc[0], "topk") < 0)
    return val_poison();
  int64_t N = x->shape.dims[x->shape.rank - 1];
  if (k < 1 || k > N) {
    diag_error(A.loc[1], "topk: k = %lld must be between 1 and the last dimension %lld", (long long)k, (long long)N);
    return val_poison();
  }
  x = sema_cast(S, x, IR_F32, call->loc);
  IrOp *op = sema_op(S, IR_OP_TOPK, 1, &x, call->loc);
  ir_op_set_int(S->m, op, "k", k);
  IrShape s = shape_with_last(x->shape, k);
  IrValue *vals = ir_op_add_result(S->m, op, IR_F32, s);
  IrValue *idx = ir_op_add_result(S->m, op, IR_I32, s);
  return tuple2(S, vals, idx);
}

/* Variadic builtins: positional tensors/ints plus `axis:`. */
static int collect_variadic(Sema *S, AstExpr *call, Val *pos, SrcLoc *locs, int *npos, int64_t *axis, int *has_axis) {
  *npos = 0;
  *axis = -1;
  *has_axis = 0;
  int bad = 0;
  for (int i = 0; i < call->args.len; i++) {
    AstArg *arg = call->args.items[i];
    Val v = sema_eval(S, arg->value);
    if (v.kind == VAL_POISON) bad = 1;
    if (arg->name) {
      if (strcmp(arg->name, "axis") != 0) {
        diag_error(arg->loc, "'%s' has no argument '%s'", call->name, arg->name);
        bad = 1;
      } else if (v.kind != VAL_POISON) {
        if (v.kind != VAL_INT) {
          diag_error(arg->loc, "'%s' needs a compile-time int for 'axis', not %s", call->name, val_kind_name(v));
          bad = 1;
        } else {
          *axis = v.i;
          *has_axis = 1;
        }
      }
      continue;
    }
    if (*npos >= 64) {
      diag_error(arg->loc, "too many arguments to '%s'", call->name);
      return -1;
    }
    locs[*npos] = arg->loc;
    pos[(*npos)++] = v;
  }
  return bad ? -1 : 0;
}

static Val bi_concat(Sema *S, AstExpr *call) {
  Val pos[64];
  SrcLoc locs[64];
  int n, has_axis;
  int64_t axis;
  if (collect_variadic(S, call, pos, locs, &n, &axis, &has_axis) < 0) return val_poison();
  if (n < 1) {
    diag_error(call->loc, "concat needs at least one tensor");
    return val_poison();
  }
  IrValue *ins[64];
  IrDType dt = IR_I32;
  for (int i = 0; i < n; i++) {
    if (pos[i].kind != VAL_TENSOR) {
      diag_error(locs[i], "concat joins tensors, not %s", val_kind_name(pos[i]));
      return val_poison();
    }
    ins[i] = pos[i].t;
    if (ins[i]->dtype == IR_F32) dt = IR_F32;
  }
  int rank = ins[0]->shape.rank;
  int64_t a = axis < 0 ? axis + rank : axis;
  if (rank < 1 || a < 0 || a >= rank) {
    diag_error(call->loc, "concat: axis %lld is out of range for %s", (long long)axis,
               sema_type_str(S, ins[0]->dtype, ins[0]->shape));
    return val_poison();
  }
  IrShape s = ins[0]->shape;
  s.dims[a] = 0;
  for (int i = 0; i < n; i++) {
    IrShape si = ins[i]->shape;
    int ok = si.rank == rank && si.dims[a] != IR_DIM_T;
    for (int d = 0; ok && d < rank; d++)
      if (d != a && si.dims[d] != ins[0]->shape.dims[d]) ok = 0;
    if (!ok) {
      diag_error(locs[i], "concat along axis %lld: %s does not fit %s", (long long)a,
                 sema_type_str(S, ins[i]->dtype, si), sema_type_str(S, ins[0]->dtype, ins[0]->shape));
      return val_poison();
    }
    s.dims[a] += si.dims[a];
    ins[i] = sema_cast(S, ins[i], dt, call->loc);
  }
  IrOp *op = sema_op(S, IR_OP_CONCAT, n, ins, call->loc);
  ir_op_set_int(S->m, op, "axis", a);
  return val_tensor(ir_op_add_result(S->m, op, dt, s));
}

static Val bi_split(Sema *S, AstExpr *call) {
  Val pos[64];
  SrcLoc locs[64];
  int n, has_axis;
  int64_t axis;
  if (collect_variadic(S, call, pos, locs, &n, &axis, &has_axis) < 0) return val_poison();
  if (n < 2 || pos[0].kind != VAL_TENSOR) {
    diag_error(call->loc, "split needs a tensor and at least one size: split(x, 64, 64, axis: -1)");
    return val_poison();
  }
  IrValue *x = pos[0].t;
  int rank = x->shape.rank;
  int64_t a = axis < 0 ? axis + rank : axis;
  if (rank < 1 || a < 0 || a >= rank || x->shape.dims[a] == IR_DIM_T) {
    diag_error(call->loc, "split: axis %lld of %s cannot be split", (long long)axis,
               sema_type_str(S, x->dtype, x->shape));
    return val_poison();
  }
  int64_t sizes[64], total = 0;
  for (int i = 1; i < n; i++) {
    if (pos[i].kind != VAL_INT || pos[i].i < 1) {
      diag_error(locs[i], "split sizes must be positive compile-time ints");
      return val_poison();
    }
    sizes[i - 1] = pos[i].i;
    total += pos[i].i;
  }
  if (total != x->shape.dims[a]) {
    diag_error(call->loc, "split: the sizes add up to %lld but axis %lld of %s has %lld", (long long)total,
               (long long)a, sema_type_str(S, x->dtype, x->shape), (long long)x->shape.dims[a]);
    return val_poison();
  }
  IrOp *op = sema_op(S, IR_OP_SPLIT, 1, &x, call->loc);
  ir_op_set_int(S->m, op, "axis", a);
  ir_op_set_ints(S->m, op, "sizes", n - 1, sizes);
  Val t = val_poison();
  t.kind = VAL_TUPLE;
  t.n = n - 1;
  t.items = ARENA_ARRAY(S->a, Val, n - 1);
  for (int i = 0; i < n - 1; i++) {
    IrShape s = x->shape;
    s.dims[a] = sizes[i];
    t.items[i] = val_tensor(ir_op_add_result(S->m, op, x->dtype, s));
  }
  return t;
}

static Val bi_transpose(Sema *S, AstExpr *call) {
  Val pos[64];
  SrcLoc locs[64];
  int n, has_axis;
  int64_t axis;
  if (collect_variadic(S, call, pos, locs, &n, &axis, &has_axis) < 0) return val_poison();
  if (has_axis) {
    diag_error(call->loc, "transpose takes a permutation, not 'axis'");
    return val_poison();
  }
  if (n < 1 || pos[0].kind != VAL_TENSOR) {
    diag_error(call->loc, "transpose needs a tensor: transpose(x, 1, 0)");
    return val_poison();
  }
  IrValue *x = pos[0].t;
  int rank = x->shape.rank;
  int64_t perm[IR_MAX_RANK];
  if (n == 1 && rank == 2) {
    perm[0] = 1;
    perm[1] = 0;
  } else {
    int seen[IR_MAX_RANK] = {0};
    int ok = n - 1 == rank;
    for (int i = 1; ok && i < n; i++) {
      if (pos[i].kind != VAL_INT || pos[i].i < 0 || pos[i].i >= rank || seen[pos[i].i]) ok = 0;
      else {
        seen[pos[i].i] = 1;
        perm[i - 1] = pos[i].i;
      }
    }
    if (!ok) {
      diag_error(call->loc, "transpose of %s needs a permutation of 0..%d", sema_type_str(S, x->dtype, x->shape),
                 rank - 1);
      return val_poison();
    }
  }
  IrShape s = x->shape;
  for (int i = 0; i < rank; i++) s.dims[i] = x->shape.dims[perm[i]];
  IrOp *op = sema_op(S, IR_OP_TRANSPOSE, 1, &x, call->loc);
  ir_op_set_ints(S->m, op, "perm", rank, perm);
  return val_tensor(ir_op_add_result(S->m, op, x->dtype, s));
}

static Val bi_select(Sema *S, AstExpr *call) {
  static const char *const names[] = {"cond", "a", "b", NULL};
  Args A;
  if (bind_args(S, call, names, 3, &A) < 0) return val_poison();
  for (int i = 0; i < 3; i++)
    if (!val_is_number(A.v[i]) && A.v[i].kind != VAL_TENSOR) {
      diag_error(A.loc[i], "select needs numbers or tensors, not %s", val_kind_name(A.v[i]));
      return val_poison();
    }
  if (val_is_number(A.v[0]) && val_is_number(A.v[1]) && val_is_number(A.v[2])) return val_num(A.v[0]) != 0 ? A.v[1] : A.v[2];
  IrDType dt = IR_I32;
  for (int i = 1; i < 3; i++)
    if ((A.v[i].kind == VAL_TENSOR && A.v[i].t->dtype == IR_F32) || A.v[i].kind == VAL_FLOAT) dt = IR_F32;
  IrValue *ins[3];
  ins[0] = A.v[0].kind == VAL_TENSOR ? A.v[0].t : scalar_tensor(S, A.v[0], A.v[0].kind == VAL_FLOAT ? IR_F32 : IR_I32, call->loc);
  for (int i = 1; i < 3; i++)
    ins[i] = A.v[i].kind == VAL_TENSOR ? sema_cast(S, A.v[i].t, dt, call->loc) : scalar_tensor(S, A.v[i], dt, call->loc);
  IrShape s, s2;
  if (sema_broadcast(ins[0]->shape, ins[1]->shape, &s) < 0 || sema_broadcast(s, ins[2]->shape, &s2) < 0) {
    diag_error(call->loc, "select: shapes %s, %s and %s cannot be broadcast together",
               sema_type_str(S, ins[0]->dtype, ins[0]->shape), sema_type_str(S, ins[1]->dtype, ins[1]->shape),
               sema_type_str(S, ins[2]->dtype, ins[2]->shape));
    return val_poison();
  }
  return val_tensor(sema_op1(S, IR_OP_SELECT, 3, ins, dt, s2, call->loc));
}

static Val bi_cast(Sema *S, AstExpr *call, IrDType to) {
  static const char *const names[] = {"x", NULL};
  Args A;
  if (bind_args(S, call, names, 1, &A) < 0) return val_poison();
  Val v = A.v[0];
  if (val_is_number(v)) {
    if (to == IR_F32) return val_float(val_num(v));
    return val_int((int64_t)val_num(v)); /* truncates toward zero, like the IR cast */
  }
  if (v.kind != VAL_TENSOR) {
    diag_error(A.loc[0], "'%s' converts numbers or tensors, not %s", call->name, val_kind_name(v));
    return val_poison();
  }
  return val_tensor(sema_cast(S, v.t, to, call->loc));
}

static Val bi_gelu(Sema *S, AstExpr *call) {
  static const char *const names[] = {"x", "approx", NULL};
  Args A;
  if (bind_args(S, call, names, 1, &A) < 0) return val_poison();
  const char *approx;
  if (arg_str(S, &A, 1, "approx", "none", &approx) < 0) return val_poison();
  if (strcmp(approx, "none") != 0 && strcmp(approx, "tanh") != 0) {
    diag_error(A.loc[1], "gelu: approx must be \"none\" or \"tanh\", not \"%s\"", approx);
    return val_poison();
  }
  return sema_unary_fn(S, approx[0] == 't' ? IR_FN_GELU_TANH : IR_FN_GELU_ERF, A.v[0], call->loc, "gelu");
}

Val sema_call_builtin(Sema *S, AstExpr *call, int *found) {
  const char *n = call->name;
  *found = 1;
  int arity;
  int fn = sema_fn_of_name(n, &arity);
  if (fn >= 0 && arity == 1) {
    static const char *const names[] = {"x", NULL};
    Args A;
    if (bind_args(S, call, names, 1, &A) < 0) return val_poison();
    return sema_unary_fn(S, (IrFn)fn, A.v[0], call->loc, n);
  }
  if (strcmp(n, "max") == 0 || strcmp(n, "min") == 0 || strcmp(n, "sum") == 0 || strcmp(n, "mean") == 0) {
    int npos = 0;
    for (int i = 0; i < call->args.len; i++)
      if (!((AstArg *)call->args.items[i])->name) npos++;
    if (fn >= 0 && npos == 2 && call->args.len == 2) {
      AstArg *a0 = call->args.items[0], *a1 = call->args.items[1];
      Val a = sema_eval(S, a0->value), b = sema_eval(S, a1->value);
      return binary_fn(S, (IrFn)fn, a, b, call->loc, n);
    }
    IrReduceKind k = n[0] == 's' ? IR_RED_SUM : strcmp(n, "mean") == 0 ? IR_RED_MEAN : strcmp(n, "max") == 0 ? IR_RED_MAX : IR_RED_MIN;
    return bi_reduce(S, call, k);
  }
  if (strcmp(n, "gelu") == 0) return bi_gelu(S, call);
  if (strcmp(n, "linear") == 0) return bi_linear(S, call);
  if (strcmp(n, "matmul") == 0) return bi_matmul(S, call);
  if (strcmp(n, "embedding") == 0) return bi_embedding(S, call);
  if (strcmp(n, "gather") == 0) {
    static const char *const names[] = {"table", "ids", NULL};
    Args A;
    if (bind_args(S, call, names, 2, &A) < 0) return val_poison();
    IrValue *t = arg_tensor(S, &A, 0, "table"), *ids = arg_tensor(S, &A, 1, "ids");
    if (!t || !ids) return val_poison();
    return do_gather(S, call, t, ids, A.loc[1]);
  }
  if (strcmp(n, "softmax") == 0) return bi_softmax(S, call);
  if (strcmp(n, "rms_norm") == 0) return bi_rms_norm(S, call);
  if (strcmp(n, "layer_norm") == 0) return bi_layer_norm(S, call);
  if (strcmp(n, "l2_norm") == 0) return bi_l2_norm(S, call);
  if (strcmp(n, "rope") == 0) return bi_rope(S, call);
  if (strcmp(n, "causal_conv1d") == 0) return bi_conv1d(S, call);
  if (strcmp(n, "attention") == 0) return bi_attention(S, call);
  if (strcmp(n, "topk") == 0) return bi_topk(S, call);
  if (strcmp(n, "concat") == 0) return bi_concat(S, call);
  if (strcmp(n, "split") == 0) return bi_split(S, call);
  if (strcmp(n, "transpose") == 0) return bi_transpose(S, call);
  if (strcmp(n, "select") == 0) return bi_select(S, call);
  if (strcmp(n, "float") == 0) return bi_cast(S, call, IR_F32);
  if (strcmp(n, "int") == 0) return bi_cast(S, call, IR_I32);
  if (strcmp(n, "positions") == 0) {
    static const char *const names[] = {NULL};
    Args A;
    if (bind_args(S, call, names, 0, &A) < 0) return val_poison();
    if (reject_token_only(S, call->loc, "positions") < 0) return val_poison();
    int64_t d = IR_DIM_T;
    return val_tensor(sema_op1(S, IR_OP_POSITION, 0, NULL, IR_I32, ir_shape(1, &d), call->loc));
  }
  *found = 0;
  return val_poison();
}
