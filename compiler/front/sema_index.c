/* sema_index.c — index notation: `y[i, j] = sum(k) a[i, k] * b[k, j]` becomes
 * one IR_OP_INDEX whose operands are the distinct tensors the right side reads
 * and whose IrExpr body computes one output element.
 *
 * Two passes over the right side. The first infers each index variable's
 * extent from the dimensions it indexes directly (`a[i, k]` gives i and k the
 * sizes of a's dims), reporting conflicts with both shapes. The second builds
 * the IrExpr: loads with affine indices (checked in bounds for every value of
 * the variables, since the verifier and the backends rely on it), constants
 * for compile-time scalars, unary/binary nodes for elementwise builtins, and
 * reduce nodes. A T dimension may only be indexed by a variable ranging over
 * T or by the scan variable of the enclosing scan (exactly `t`), which becomes
 * the load's dynamic term; inside a scan step only the latter, for tensors
 * from outside the step (sema_stream.c). */
#include <math.h>
#include <string.h>

#include "sema_internal.h"

#define IX_MAX_VARS 32
#define IX_MAX_OPS 64

typedef struct IxVar {
  const char *name;
  int64_t extent; /* 0 = not known yet */
  const char *src;      /* "x (f32[T, 64])": where the extent came from */
} IxVar;

typedef struct Ix {
  Sema *S;
  IxVar vars[IX_MAX_VARS];
  int nvars;
  int visible[IX_MAX_VARS]; /* stack of var ids in scope */
  int nvisible;
  const AstExpr *red_node[IX_MAX_VARS];
  int red_first[IX_MAX_VARS];
  int nred;
  IrValue *ops[IX_MAX_OPS];
  int nops;
  int bad;
  int depth; /* of ix_build, against IX_MAX_DEPTH */
} Ix;

/* An index expression is one C expression in the generated code: nesting
 * beyond this would exceed C compilers' bracket limits (clang: 256) and the
 * IR verifier's (docs/language.md, "Nesting depth"). */
#define IX_MAX_DEPTH 100

static int ix_var(Ix *ix, const char *name) {
  for (int i = ix->nvisible - 1; i >= 0; i--)
    if (strcmp(ix->vars[ix->visible[i]].name, name) == 0) return ix->visible[i];
  return -1;
}
static int ix_new_var(Ix *ix, const char *name, SrcLoc loc) {
  if (ix->nvars >= IX_MAX_VARS) {
    diag_error(loc, "too many index variables (at most %d)", IX_MAX_VARS);
    ix->bad = 1;
    return -1;
  }
  ix->vars[ix->nvars].name = name;
  ix->vars[ix->nvars].extent = 0;
  ix->vars[ix->nvars].src = NULL;
  return ix->nvars++;
}
static int ix_operand(Ix *ix, IrValue *v, SrcLoc loc) {
  for (int i = 0; i < ix->nops; i++)
    if (ix->ops[i] == v) return i;
  if (ix->nops >= IX_MAX_OPS) {
    diag_error(loc, "index notation reads too many tensors (at most %d)", IX_MAX_OPS);
    ix->bad = 1;
    return 0;
  }
  ix->ops[ix->nops] = v;
  return ix->nops++;
}
static const char *dim_str(int64_t d) {
  static char buf[4][32];
  static int k;
  k = (k + 1) % 4;
  if (d == IR_DIM_T) return "T";
  snprintf(buf[k], sizeof buf[k], "%lld", (long long)d);
  return buf[k];
}

/* Looks a tensor up for a load; NULL after an error. */
static IrValue *ix_tensor(Ix *ix, const char *name, SrcLoc loc) {
  Val v = sema_lookup_name(ix->S, name, loc);
  if (v.kind == VAL_POISON) {
    ix->bad = 1;
    return NULL;
  }
  if (v.kind != VAL_TENSOR) {
    diag_error(loc, "'%s' is %s and cannot be indexed", name, val_kind_name(v));
    ix->bad = 1;
    return NULL;
  }
  return v.t;
}

static void ix_unify(Ix *ix, int var, int64_t d, const char *src, SrcLoc loc) {
  IxVar *v = &ix->vars[var];
  if (!v->extent) {
    v->extent = d;
    v->src = src;
  } else if (v->extent != d) {
    diag_error(loc, "index '%s' ranges over %s in %s but over %s in %s", v->name, dim_str(v->extent), v->src,
               dim_str(d), src);
    ix->bad = 1;
  }
}

/* ---- pass 1: extents ------------------------------------------------------ */
static void ix_infer(Ix *ix, AstExpr *e) {
  if (!e || ix->bad) return;
  switch (e->kind) {
  case AST_EXPR_REDUCE: {
    int first = ix->nvars;
    GAT_ASSERT(ix->nred < IX_MAX_VARS);
    ix->red_node[ix->nred] = e;
    ix->red_first[ix->nred++] = first;
    int saved = ix->nvisible;
    for (int i = 0; i < e->vars.len; i++) {
      int id = ix_new_var(ix, e->vars.items[i], e->loc);
      if (id < 0) return;
      ix->visible[ix->nvisible++] = id;
    }
    ix_infer(ix, e->lhs);
    ix->nvisible = saved;
    return;
  }
  case AST_EXPR_INDEX: {
    if (ix_var(ix, e->name) >= 0) {
      diag_error(e->loc, "'%s' is an index variable and cannot be indexed", e->name);
      ix->bad = 1;
      return;
    }
    IrValue *t = ix_tensor(ix, e->name, e->loc);
    if (!t) return;
    const char *src = arena_printf(ix->S->a, "%s (%s)", e->name, sema_type_str(ix->S, t->dtype, t->shape));
    if (e->args.len != t->shape.rank) {
      diag_error(e->loc, "%s has %d dimension%s but is indexed with %d", src, t->shape.rank,
                 t->shape.rank == 1 ? "" : "s", e->args.len);
      ix->bad = 1;
      return;
    }
    for (int p = 0; p < e->args.len; p++) {
      AstExpr *ie = e->args.items[p];
      if (ie->kind == AST_EXPR_SLICE) {
        diag_error(ie->loc, "slices cannot be used in index notation");
        ix->bad = 1;
        return;
      }
      if (ie->kind == AST_EXPR_NAME) {
        int v = ix_var(ix, ie->name);
        if (v >= 0) ix_unify(ix, v, t->shape.dims[p], src, ie->loc);
      }
    }
    return;
  }
  case AST_EXPR_BINARY: ix_infer(ix, e->lhs); ix_infer(ix, e->rhs); return;
  case AST_EXPR_UNARY: ix_infer(ix, e->lhs); return;
  case AST_EXPR_CALL:
    for (int i = 0; i < e->args.len; i++) ix_infer(ix, ((AstArg *)e->args.items[i])->value);
    return;
  default: return;
  }
}

/* ---- pass 2: the expression ------------------------------------------------ */
/* True when e mentions no index variable, tensor or reduction: then it is an
 * ordinary compile-time expression and folds to a constant. */
static int ix_static(Ix *ix, const AstExpr *e) {
  if (!e) return 1;
  switch (e->kind) {
  case AST_EXPR_INT: case AST_EXPR_FLOAT: case AST_EXPR_BOOL: return 1;
  case AST_EXPR_NAME: {
    if (ix_var(ix, e->name) >= 0) return 0;
    Binding *b = env_lookup(ix->S->env, e->name);
    return !b || b->v.kind != VAL_TENSOR;
  }
  case AST_EXPR_BINARY: return ix_static(ix, e->lhs) && ix_static(ix, e->rhs);
  case AST_EXPR_UNARY: return ix_static(ix, e->lhs);
  case AST_EXPR_CALL:
    for (int i = 0; i < e->args.len; i++)
      if (!ix_static(ix, ((AstArg *)e->args.items[i])->value)) return 0;
    return 1;
  default: return 0;
  }
}

static int ix_eval_static(Ix *ix, AstExpr *e, double *out) {
  Val v = sema_eval(ix->S, e);
  if (v.kind == VAL_POISON) {
    ix->bad = 1;
    return -1;
  }
  if (!val_is_number(v)) {
    diag_error(e->loc, "'%s' is %s; index notation computes with numbers", sema_expr_str(ix->S, e), val_kind_name(v));
    ix->bad = 1;
    return -1;
  }
  *out = val_num(v);
  return 0;
}

/* Index arithmetic on user numbers (x[1000000000000 * i]) must not overflow:
 * every constant and coefficient is clamped to +-2^41, far beyond any valid
 * index (dimensions are below 2^31), so a clamped index always fails the
 * bounds check instead of wrapping into range. */
#define AFF_CAP ((int64_t)1 << 41)
static int64_t aff_clamp(int64_t x) { return x > AFF_CAP ? AFF_CAP : x < -AFF_CAP ? -AFF_CAP : x; }
static int64_t aff_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return (a < 0) != (b < 0) ? -AFF_CAP : AFF_CAP;
  return aff_clamp(r);
}
static void aff_add_term(Ix *ix, IrAffine *a, int var, int64_t coef, SrcLoc loc) {
  for (int i = 0; i < a->nterms; i++)
    if (a->var[i] == var) {
      a->coef[i] = aff_clamp(a->coef[i] + coef);
      return;
    }
  if (a->nterms >= IR_MAX_AFFINE) {
    diag_error(loc, "an index may combine at most %d index variables", IR_MAX_AFFINE);
    ix->bad = 1;
    return;
  }
  a->var[a->nterms] = var;
  a->coef[a->nterms++] = coef;
}
static void aff_scale(IrAffine *a, int64_t k) {
  a->c = aff_mul(a->c, k);
  for (int i = 0; i < a->nterms; i++) a->coef[i] = aff_mul(a->coef[i], k);
  a->dyn_coef = aff_mul(a->dyn_coef, k);
}
static int aff_is_const(const IrAffine *a) { return a->nterms == 0 && a->dyn < 0; }

static int ix_affine(Ix *ix, AstExpr *e, IrAffine *out) {
  memset(out, 0, sizeof *out);
  out->dyn = -1;
  if (ix_static(ix, e)) {
    double d;
    if (ix_eval_static(ix, e, &d) < 0) return -1;
    if (d != floor(d)) {
      diag_error(e->loc, "index '%s' is not an integer", sema_expr_str(ix->S, e));
      ix->bad = 1;
      return -1;
    }
    out->c = fabs(d) < (double)AFF_CAP ? (int64_t)d : d < 0 ? -AFF_CAP : AFF_CAP;
    return 0;
  }
  switch (e->kind) {
  case AST_EXPR_NAME: {
    int v = ix_var(ix, e->name);
    if (v >= 0) {
      aff_add_term(ix, out, v, 1, e->loc);
      return ix->bad ? -1 : 0;
    }
    IrValue *t = ix_tensor(ix, e->name, e->loc);
    if (!t) return -1;
    if (t->shape.rank != 0 || t->dtype != IR_I32) {
      diag_error(e->loc, "'%s' (%s) cannot be used as an index; indices are index variables, ints and "
                         "the scan variable", e->name, sema_type_str(ix->S, t->dtype, t->shape));
      ix->bad = 1;
      return -1;
    }
    out->dyn = ix_operand(ix, t, e->loc);
    out->dyn_coef = 1;
    return 0;
  }
  case AST_EXPR_UNARY:
    if (e->unop == AST_NEG) {
      if (ix_affine(ix, e->lhs, out) < 0) return -1;
      aff_scale(out, -1);
      return 0;
    }
    break;
  case AST_EXPR_BINARY: {
    if (e->binop != AST_ADD && e->binop != AST_SUB && e->binop != AST_MUL) break;
    IrAffine a, b;
    if (ix_affine(ix, e->lhs, &a) < 0 || ix_affine(ix, e->rhs, &b) < 0) return -1;
    if (e->binop == AST_MUL) {
      if (aff_is_const(&a)) {
        aff_scale(&b, a.c);
        *out = b;
        return 0;
      }
      if (aff_is_const(&b)) {
        aff_scale(&a, b.c);
        *out = a;
        return 0;
      }
      break;
    }
    if (e->binop == AST_SUB) aff_scale(&b, -1);
    *out = a;
    out->c = aff_clamp(out->c + b.c);
    for (int i = 0; i < b.nterms; i++) aff_add_term(ix, out, b.var[i], b.coef[i], e->loc);
    if (b.dyn >= 0) {
      if (out->dyn >= 0 && out->dyn != b.dyn) break;
      out->dyn = b.dyn;
      out->dyn_coef = aff_clamp(out->dyn_coef + b.dyn_coef);
    }
    return ix->bad ? -1 : 0;
  }
  default: break;
  }
  diag_error(e->loc, "index '%s' must be affine in the index variables (such as i, j + 4 or 2*i + 1)",
             sema_expr_str(ix->S, e));
  ix->bad = 1;
  return -1;
}

/* Checks one load index against the dimension it addresses. */
static int ix_check_bounds(Ix *ix, AstExpr *ie, IrAffine *a, IrValue *t, int p, const char *name) {
  int64_t d = t->shape.dims[p];
  const char *ty = sema_type_str(ix->S, t->dtype, t->shape);
  if (d == IR_DIM_T) {
    int loopvar = a->nterms == 1 && a->coef[0] == 1 && a->c == 0 && a->dyn < 0 &&
                  ix->vars[a->var[0]].extent == IR_DIM_T;
    int scanvar = a->nterms == 0 && a->dyn >= 0 && a->dyn_coef == 1 && a->c == 0;
    int st = sema_stream_check_load(ix->S, ie, sema_expr_str(ix->S, ie), t, name, a->dyn >= 0 ? ix->ops[a->dyn] : NULL,
                                    scanvar, loopvar ? ix->vars[a->var[0]].name : NULL);
    if (st < 0) {
      ix->bad = 1;
      return -1;
    }
    if (st == 0) return 0;
    /* outside scans there is no scan variable: a scalar tensor would pick any token */
    if (!loopvar) {
      diag_error(ie->loc, "index '%s' into the T dimension of %s (%s) must be an index ranging over T or "
                          "the scan variable, without offset", sema_expr_str(ix->S, ie), name, ty);
      ix->bad = 1;
      return -1;
    }
    return 0;
  }
  if (a->dyn >= 0 && a->dyn_coef != 0) {
    diag_error(ie->loc, "index '%s' of %s (%s): the scan variable can only index a T dimension, and "
                        "dimension %d has size %lld", sema_expr_str(ix->S, ie), name, ty, p, (long long)d);
    ix->bad = 1;
    return -1;
  }
  int64_t lo = a->c, hi = a->c;
  for (int i = 0; i < a->nterms; i++) {
    int64_t ext = ix->vars[a->var[i]].extent;
    if (a->coef[i] == 0) continue;
    if (ext == IR_DIM_T) {
      diag_error(ie->loc, "index '%s' of %s (%s): '%s' ranges over T and cannot index dimension %d of size %lld",
                 sema_expr_str(ix->S, ie), name, ty, ix->vars[a->var[i]].name, p, (long long)d);
      ix->bad = 1;
      return -1;
    }
    int64_t span = aff_mul(a->coef[i], ext - 1); /* clamped: still beyond any dimension */
    if (span < 0) lo += span;
    else hi += span;
  }
  if (lo < 0 || hi >= d) {
    diag_error(ie->loc, "index '%s' of %s (%s) ranges over [%lld, %lld] but dimension %d has size %lld",
               sema_expr_str(ix->S, ie), name, ty, (long long)lo, (long long)hi, p, (long long)d);
    ix->bad = 1;
    return -1;
  }
  return 0;
}

static IrFn ix_binop_fn(AstBinOp op) {
  static const IrFn map[] = {IR_FN_ADD, IR_FN_SUB, IR_FN_MUL, IR_FN_DIV, IR_FN_MOD, IR_FN_POW, IR_FN_LT,
                             IR_FN_LE,  IR_FN_GT,  IR_FN_GE,  IR_FN_EQ,  IR_FN_NE,  IR_FN_AND, IR_FN_OR};
  return map[op];
}

static IrExpr *ix_build_node(Ix *ix, AstExpr *e);

static IrExpr *ix_build(Ix *ix, AstExpr *e) {
  if (ix->bad) return NULL;
  if (ix->depth >= IX_MAX_DEPTH) {
    diag_error(e->loc, "index expression nested too deeply (limit %d)", IX_MAX_DEPTH);
    ix->bad = 1;
    return NULL;
  }
  ix->depth++;
  IrExpr *r = ix_build_node(ix, e);
  ix->depth--;
  return r;
}

static IrExpr *ix_build_node(Ix *ix, AstExpr *e) {
  Sema *S = ix->S;
  IrModule *m = S->m;
  if (ix->bad) return NULL;
  if (ix_static(ix, e)) {
    double d;
    if (ix_eval_static(ix, e, &d) < 0) return NULL;
    return ir_expr_const(m, d);
  }
  switch (e->kind) {
  case AST_EXPR_NAME: {
    int v = ix_var(ix, e->name);
    if (v >= 0) {
      if (ix->vars[v].extent == IR_DIM_T && !sema_stream_scan(S))
        sema_stream_warn(S, e->loc, "index '%s' ranges over T and is used as a number: it counts the tokens of the "
                                    "current call from 0, so one call of T tokens and T calls of one token "
                                    "(prefill and decode) see different numbers (positions() gives absolute "
                                    "positions)", e->name);
      return ir_expr_var(m, v);
    }
    IrValue *t = ix_tensor(ix, e->name, e->loc);
    if (!t) return NULL;
    if (sema_stream_check_value(S, t, e->loc) < 0) {
      ix->bad = 1;
      return NULL;
    }
    if (t->shape.rank != 0) {
      diag_error(e->loc, "tensor '%s' (%s) needs indices in index notation, e.g. %s[i, ...]", e->name,
                 sema_type_str(S, t->dtype, t->shape), e->name);
      ix->bad = 1;
      return NULL;
    }
    return ir_expr_load(m, ix_operand(ix, t, e->loc), 0, NULL);
  }
  case AST_EXPR_INDEX: {
    IrValue *t = ix_tensor(ix, e->name, e->loc);
    if (!t) return NULL;
    IrAffine idx[IR_MAX_RANK];
    for (int p = 0; p < e->args.len; p++) {
      if (ix_affine(ix, e->args.items[p], &idx[p]) < 0) return NULL;
      if (ix_check_bounds(ix, e->args.items[p], &idx[p], t, p, e->name) < 0) return NULL;
    }
    return ir_expr_load(m, ix_operand(ix, t, e->loc), e->args.len, idx);
  }
  case AST_EXPR_BINARY: {
    IrExpr *a = ix_build(ix, e->lhs), *b = ix_build(ix, e->rhs);
    if (!a || !b) return NULL;
    return ir_expr_binary(m, ix_binop_fn(e->binop), a, b);
  }
  case AST_EXPR_UNARY: {
    IrExpr *a = ix_build(ix, e->lhs);
    if (!a) return NULL;
    return ir_expr_unary(m, e->unop == AST_NEG ? IR_FN_NEG : IR_FN_NOT, a);
  }
  case AST_EXPR_CALL: {
    int npos = 0;
    AstExpr *args[3] = {NULL, NULL, NULL};
    const char *approx = "none";
    for (int i = 0; i < e->args.len; i++) {
      AstArg *a = e->args.items[i];
      if (a->name) {
        if (strcmp(e->name, "gelu") == 0 && strcmp(a->name, "approx") == 0 && a->value->kind == AST_EXPR_STRING) {
          approx = a->value->sval;
          continue;
        }
        diag_error(a->loc, "keyword argument '%s' is not supported for '%s' in index notation", a->name, e->name);
        ix->bad = 1;
        return NULL;
      }
      if (npos < 3) args[npos] = a->value;
      npos++;
    }
    int arity;
    int fn = sema_fn_of_name(e->name, &arity);
    if (strcmp(e->name, "gelu") == 0) {
      fn = strcmp(approx, "tanh") == 0 ? IR_FN_GELU_TANH : IR_FN_GELU_ERF;
      arity = 1;
    }
    if (fn >= 0 && npos == arity) {
      IrExpr *a = ix_build(ix, args[0]);
      if (!a) return NULL;
      if (arity == 1) return ir_expr_unary(m, (IrFn)fn, a);
      IrExpr *b = ix_build(ix, args[1]);
      return b ? ir_expr_binary(m, (IrFn)fn, a, b) : NULL;
    }
    if (strcmp(e->name, "select") == 0 && npos == 3) {
      IrExpr *c = ix_build(ix, args[0]), *a = ix_build(ix, args[1]), *b = ix_build(ix, args[2]);
      return c && a && b ? ir_expr_select(m, c, a, b) : NULL;
    }
    if (strcmp(e->name, "float") == 0 && npos == 1) return ix_build(ix, args[0]);
    diag_error(e->loc, "'%s' cannot be used inside index notation (only elementwise functions such as exp, "
                       "sigmoid, max(a, b) and select); compute it in a separate statement", e->name);
    ix->bad = 1;
    return NULL;
  }
  case AST_EXPR_REDUCE: {
    int first = -1;
    for (int i = 0; i < ix->nred; i++)
      if (ix->red_node[i] == e) first = ix->red_first[i];
    GAT_ASSERT(first >= 0);
    int saved = ix->nvisible;
    for (int i = 0; i < e->vars.len; i++) ix->visible[ix->nvisible++] = first + i;
    for (int i = 0; i < e->vars.len; i++) {
      IxVar *v = &ix->vars[first + i];
      if (!v->extent) {
        diag_error(e->loc, "cannot infer the range of '%s': it does not directly index a dimension of any tensor",
                   v->name);
        ix->bad = 1;
      } else if (v->extent == IR_DIM_T && S->token_only) {
        diag_error(e->loc, "a reduction over T ('%s') cannot be used inside a mixture or skip body", v->name);
        ix->bad = 1;
      } else if (v->extent == IR_DIM_T && !sema_stream_scan(S)) {
        /* inside a step the load of the T axis is the error (sema_stream_check_load) */
        sema_stream_warn(S, e->loc, "a reduction over '%s', which ranges over T, sees only the tokens of the current "
                                    "call, so one call of T tokens and T calls of one token (prefill and decode) "
                                    "give different results", v->name);
      }
    }
    IrExpr *body = ix->bad ? NULL : ix_build(ix, e->lhs);
    ix->nvisible = saved;
    if (!body) return NULL;
    static const IrReduceKind rk[] = {IR_RED_SUM, IR_RED_MAX, IR_RED_MIN, IR_RED_MEAN};
    for (int i = e->vars.len - 1; i >= 0; i--)
      body = ir_expr_reduce(m, rk[e->reduce], first + i, ix->vars[first + i].extent, body);
    return body;
  }
  case AST_EXPR_SLICE:
    diag_error(e->loc, "slices cannot be used in index notation");
    break;
  case AST_EXPR_AS:
    diag_error(e->loc, "'as [...]' cannot be used inside index notation; reshape in a separate statement");
    break;
  default:
    diag_error(e->loc, "this expression cannot be used inside index notation");
    break;
  }
  ix->bad = 1;
  return NULL;
}

Val sema_index_assign(Sema *S, AstStmt *st, const IrShape *want) {
  Ix ixs;
  memset(&ixs, 0, sizeof ixs);
  Ix *ix = &ixs;
  ix->S = S;
  const char *target = st->names.items[0];
  int r = st->indices.len;
  if (r > IR_MAX_RANK) {
    diag_error(st->loc, "tensors have at most %d dimensions", IR_MAX_RANK);
    return val_poison();
  }
  for (int i = 0; i < r; i++) {
    const char *name = st->indices.items[i];
    for (int j = 0; j < i; j++)
      if (strcmp(name, st->indices.items[j]) == 0) {
        diag_error(st->loc, "index '%s' appears twice on the left of '='", name);
        return val_poison();
      }
    int id = ix_new_var(ix, name, st->loc);
    ix->visible[ix->nvisible++] = id;
  }
  if (want) {
    if (want->rank != r) {
      diag_error(st->loc, "state '%s' is %s but is assigned with %d index%s", target,
                 sema_type_str(S, IR_F32, *want), r, r == 1 ? "" : "es");
      return val_poison();
    }
    const char *src = arena_printf(S->a, "state %s (%s)", target, sema_type_str(S, IR_F32, *want));
    for (int i = 0; i < r; i++) ix_unify(ix, i, want->dims[i], src, st->loc);
  }
  /* Explicit ranges `y[l in 0..L, j] = ...` fix an index's extent first, so
   * an index that addresses no dimension (used only as a value, or only in
   * affine positions) still has one; dimensions it does address must agree. */
  for (int i = 0; i < r && i < st->index_hi.len; i++) {
    AstExpr *lo_e = st->index_lo.items[i], *hi_e = st->index_hi.items[i];
    if (!hi_e) continue;
    Val lo = sema_eval(S, lo_e), hi = sema_eval(S, hi_e);
    if (lo.kind == VAL_POISON || hi.kind == VAL_POISON) return val_poison();
    if (lo.kind != VAL_INT || hi.kind != VAL_INT) {
      AstExpr *bad = lo.kind != VAL_INT ? lo_e : hi_e;
      diag_error(bad->loc, "the range of index '%s' must have compile-time int bounds ('%s' is %s)",
                 ix->vars[i].name, sema_expr_str(S, bad), val_kind_name(lo.kind != VAL_INT ? lo : hi));
      return val_poison();
    }
    if (lo.i != 0) {
      diag_error(lo_e->loc, "the range of index '%s' must start at 0, not %lld", ix->vars[i].name,
                 (long long)lo.i);
      return val_poison();
    }
    if (hi.i < 1) {
      diag_error(hi_e->loc, "the range of index '%s' must be non-empty (0..%lld)", ix->vars[i].name,
                 (long long)hi.i);
      return val_poison();
    }
    ix_unify(ix, i, hi.i, arena_printf(S->a, "its range 0..%s", sema_expr_str(S, hi_e)), st->loc);
  }
  if (ix->bad) return val_poison();
  ix_infer(ix, st->value);
  if (ix->bad) return val_poison();
  IrShape shape;
  memset(&shape, 0, sizeof shape);
  shape.rank = r;
  for (int i = 0; i < r; i++) {
    if (!ix->vars[i].extent) {
      diag_error(st->loc, "cannot infer the range of '%s': it does not directly index a dimension of any tensor "
                          "on the right", ix->vars[i].name);
      return val_poison();
    }
    shape.dims[i] = ix->vars[i].extent;
  }
  IrExpr *body = ix_build(ix, st->value);
  if (!body || ix->bad) return val_poison();
  IrOp *op = sema_op(S, IR_OP_INDEX, ix->nops, ix->ops, st->loc);
  op->expr = body;
  return val_tensor(ir_op_add_result(S->m, op, IR_F32, shape));
}
