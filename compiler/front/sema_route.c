/* sema_route.c — the router of `x = value route top(c * T [, threshold:
 * tau]) by r` (Mixture-of-Depths, Raposo et al. 2024): which tokens of
 * a call compute `value`. The statement becomes a skip op (sema.c eval_skip)
 * whose condition operand is the score r and whose attributes say how the
 * kept rows are chosen (ir.h IR_OP_SKIP):
 *   capacity = c (float, 0 < c <= 1): the top ceil(c * T) tokens by r, or
 *   top_k = k (int >= 1): the top min(k, T) tokens by r,
 *   threshold = tau (float, optional): calls of one token (decode) keep the
 *     token iff sigmoid(r) >= tau instead (top-1 of 1 would always keep it).
 * Capacity and threshold are compile-time values (consts, layer arguments,
 * `if` choices), folded here. */
#include <math.h>
#include <string.h>

#include "sema_internal.h"

static int route_is_T(Sema *S, const AstExpr *e) {
  return e->kind == AST_EXPR_NAME && strcmp(e->name, "T") == 0 && !env_lookup(S->env, "T");
}

/* A compile-time number, or -1 with an error at e. */
static int route_number(Sema *S, AstExpr *e, const char *what, double *out) {
  Val v = sema_eval(S, e);
  if (v.kind == VAL_POISON) return -1;
  if (!val_is_number(v)) {
    diag_error(e->loc, "%s must be a compile-time number, not %s", what,
               v.kind == VAL_TENSOR ? sema_type_str(S, v.t->dtype, v.t->shape) : val_kind_name(v));
    return -1;
  }
  *out = val_num(v);
  return 0;
}

int sema_block_has_attention(const IrBlock *b) {
  for (int i = 0; i < b->ops.len; i++) {
    const IrOp *op = b->ops.data[i];
    if (op->kind == IR_OP_ATTENTION) return 1;
    for (int r = 0; r < op->nregions; r++)
      if (sema_block_has_attention(op->regions[r])) return 1;
  }
  return 0;
}

int sema_attention_allowed(Sema *S) {
  return S->region && S->region->op->kind == IR_OP_SKIP && !S->region->parent && S->token_only == 1;
}

int sema_route_attrs(Sema *S, AstStmt *st, IrOp *op) {
  AstExpr *cap = st->route_top;
  double c = -1, k = -1;
  if (route_is_T(S, cap)) {
    c = 1.0;
  } else if (cap->kind == AST_EXPR_BINARY && cap->binop == AST_MUL && (route_is_T(S, cap->lhs) || route_is_T(S, cap->rhs))) {
    if (route_number(S, route_is_T(S, cap->lhs) ? cap->rhs : cap->lhs, "the capacity c of 'route top(c * T)'", &c) < 0)
      return -1;
  } else if (cap->kind == AST_EXPR_BINARY && cap->binop == AST_DIV && route_is_T(S, cap->lhs)) {
    double d;
    if (route_number(S, cap->rhs, "the divisor of 'route top(T / n)'", &d) < 0) return -1;
    if (!(d >= 1)) {
      diag_error(cap->rhs->loc, "'route top(T / n)' needs n >= 1");
      return -1;
    }
    c = 1.0 / d;
  } else {
    Val v = sema_eval(S, cap);
    if (v.kind == VAL_POISON) return -1;
    if (v.kind != VAL_INT || v.i < 1) {
      diag_error(cap->loc, "'route top(...)' takes c * T (a fraction of the tokens, 0 < c <= 1) or a token count "
                           "(an int >= 1)");
      return -1;
    }
    k = (double)v.i;
  }
  if (c >= 0) {
    if (!(c > 0 && c <= 1)) {
      char buf[64];
      format_double(buf, sizeof buf, c);
      diag_error(cap->loc, "the capacity of 'route top(c * T)' is %s; it must be in (0, 1]", buf);
      return -1;
    }
    ir_op_set_float(S->m, op, "capacity", c);
  } else {
    ir_op_set_int(S->m, op, "top_k", (int64_t)k);
  }
  if (st->route_threshold) {
    double tau;
    if (route_number(S, st->route_threshold, "the threshold of 'route'", &tau) < 0) return -1;
    if (!(tau >= 0 && tau <= 1)) {
      char buf[64];
      format_double(buf, sizeof buf, tau);
      diag_error(st->route_threshold->loc, "the threshold of 'route' is %s; it compares with sigmoid(score), so it "
                                           "must be in [0, 1]", buf);
      return -1;
    }
    ir_op_set_float(S->m, op, "threshold", tau);
  }
  return 0;
}
