/* sema_stream.c — the streaming contract (docs/language.md "The streaming
 * contract"): one call with T tokens must give what T calls of one token give,
 * because the generated code keeps scan states, caches and conv tails between
 * calls. This file holds the checks that enforce it.
 *
 * Inside a scan step the contract is a hard rule: a step sees its own token,
 * so a tensor from outside the step that has a T axis may be read only at the
 * scan variable (x[t, ...] in index notation, with exactly `t`). Every other
 * read of such a tensor (a reduction over T, an offset t - 1, a constant row,
 * a whole-tensor builtin, a nested scan) would see the other tokens of the
 * call, so prefill and decode would disagree silently: those are errors. The
 * scan variable itself counts the tokens of the call from 0, so its value
 * must not be used either (only its use as an index).
 *
 * Outside scans, sequence-level operations (reductions, softmax and matmuls
 * over T, gathers from per-token tables, T x T values) are legal but see only
 * the tokens of the current call; they draw one warning per source location.
 * `route top(...)` is not warned about: its per-call behaviour and its decode
 * rule are part of its definition.
 *
 * "Inside a step" is decided from the IR block being built (its chain of
 * owning ops), not from the AST, so it holds in layers instantiated from a
 * step too. */
#include <stdarg.h>
#include <string.h>

#include "sema_internal.h"

/* ---- where are we ------------------------------------------------------------ */
static int is_scan_region(const IrBlock *b) { return b && b->parent && b->parent->kind == IR_OP_SCAN; }

IrOp *sema_stream_scan(Sema *S) {
  for (IrBlock *b = S->block; b; b = b->parent ? b->parent->parent : NULL)
    if (is_scan_region(b)) return b->parent;
  return NULL;
}

int sema_stream_is_scan_var(const IrValue *v) {
  return v && !v->def && v->index == 0 && is_scan_region(v->block);
}

/* Was v defined outside the region of `scan` (so: not computed by the step)? */
static int defined_outside(const IrOp *scan, const IrValue *v) {
  for (IrBlock *b = v->block; b; b = b->parent ? b->parent->parent : NULL)
    if (b == scan->regions[0]) return 0;
  return 1;
}

/* An outer tensor with a T axis, read from inside a step. */
int sema_stream_is_outer_T(Sema *S, const IrValue *v) {
  IrOp *scan = sema_stream_scan(S);
  return scan && v && ir_shape_has_T(v->shape) && defined_outside(scan, v);
}

/* The name the current environment gives v, or NULL. */
static const char *name_of(Sema *S, const IrValue *v) {
  for (Env *e = S->env; e; e = e->parent)
    for (Binding *b = e->head; b; b = b->next)
      if (b->v.kind == VAL_TENSOR && b->v.t == v) return b->name;
  return NULL;
}
static const char *scan_var_name(Sema *S, IrOp *scan) {
  const char *n = scan ? name_of(S, scan->regions[0]->args[0]) : NULL;
  return n ? arena_printf(S->a, "'%s'", n) : "";
}
static const char *tensor_desc(Sema *S, const IrValue *v) {
  const char *n = name_of(S, v);
  const char *ty = sema_type_str(S, v->dtype, v->shape);
  return n ? arena_printf(S->a, "'%s' (%s)", n, ty) : arena_printf(S->a, "a tensor from outside the scan (%s)", ty);
}

static void note_contract(IrOp *scan) {
  diag_note(scan->loc, "the scan runs once per token and keeps its state between calls, so T tokens in one call "
                       "must give what T calls of one token give (prefill and decode); a step that reads other "
                       "tokens of the call breaks that");
}

/* ---- errors inside a step ------------------------------------------------------ */
static const char *op_word(IrOpKind k) {
  switch (k) {
  case IR_OP_UNARY: case IR_OP_BINARY: case IR_OP_SELECT: case IR_OP_CAST: return "this elementwise operation";
  case IR_OP_REDUCE: return "this reduction";
  case IR_OP_RESHAPE: return "this reshape";
  case IR_OP_SLICE: return "this slice";
  case IR_OP_SKIP: return "this skip or route";
  case IR_OP_MIXTURE: return "this mixture";
  default: return NULL;
  }
}

void sema_stream_check_op(Sema *S, IrOp *op) {
  IrOp *scan = sema_stream_scan(S);
  if (!scan || op->kind == IR_OP_INDEX) return; /* index notation checks each load (sema_index.c) */
  if (op->kind == IR_OP_SCAN) {
    diag_error(op->loc, "a scan cannot run inside a scan step: it would run over all the tokens of the call, "
                        "and a step sees only its own token");
    note_contract(scan);
    return;
  }
  if (op->kind == IR_OP_POSITION) {
    diag_error(op->loc, "positions() inside a scan step gives the positions of all the tokens of the call; "
                        "compute p = positions() before the scan and read p[t] in the step");
    note_contract(scan);
    return;
  }
  for (int i = 0; i < op->nin; i++) {
    IrValue *v = op->in[i];
    if (sema_stream_is_scan_var(v)) {
      diag_error(op->loc, "the scan variable %s can only index the T axis of a tensor (x[t, ...]); its value "
                          "counts the tokens of the call from 0, so prefill and decode would see different "
                          "numbers (for the position, read p[t] with p = positions() computed before the scan)",
                 scan_var_name(S, scan));
      note_contract(scan);
      return;
    }
    if (!ir_shape_has_T(v->shape) || !defined_outside(scan, v)) continue;
    const char *w = op_word(op->kind);
    const char *n = name_of(S, v);
    diag_error(op->loc, "a scan step may read the T axis of %s only at the scan variable%s%s, as %s[t, ...] in "
                        "index notation; %s%s%s reads every token of the call",
               tensor_desc(S, v), *scan_var_name(S, scan) ? " " : "", scan_var_name(S, scan), n ? n : "x",
               w ? "" : "'", w ? w : ir_op_name(op->kind), w ? "" : "'");
    note_contract(scan);
    return;
  }
}

int sema_stream_check_emit(Sema *S, IrValue *v, SrcLoc loc) {
  if (!sema_stream_is_outer_T(S, v)) return 0;
  IrOp *scan = sema_stream_scan(S);
  diag_error(loc, "'emit' gives %s, all the tokens of the call, at every step; a scan step may read the T axis "
                  "of an outer tensor only at the scan variable, as x[t, ...]",
             tensor_desc(S, v));
  note_contract(scan);
  return -1;
}

int sema_stream_check_load(Sema *S, const AstExpr *ie, const char *ixtext, const IrValue *t, const char *name,
                           const IrValue *dyn, int dyn_only, const char *range_var) {
  IrOp *scan = sema_stream_scan(S);
  if (!scan) return 1;
  if (dyn_only && dyn == scan->regions[0]->args[0]) return 0;
  if (!defined_outside(scan, t)) return 0; /* a T axis computed in the step: its op was already reported */
  const char *tn = scan_var_name(S, scan);
  const char *ty = sema_type_str(S, t->dtype, t->shape);
  if (range_var)
    diag_error(ie->loc, "a scan step may read the T axis of %s (%s) only at the scan variable%s%s, not over the "
                        "range of '%s', which covers every token of the call",
               name, ty, *tn ? " " : "", tn, range_var);
  else
    diag_error(ie->loc, "a scan step may read the T axis of %s (%s) only at the scan variable%s%s, not at '%s'",
               name, ty, *tn ? " " : "", tn, ixtext);
  note_contract(scan);
  return -1;
}

int sema_stream_check_value(Sema *S, const IrValue *v, SrcLoc loc) {
  IrOp *scan = sema_stream_scan(S);
  if (!scan || !sema_stream_is_scan_var(v)) return 0;
  diag_error(loc, "the scan variable %s can only index the T axis of a tensor (x[t, ...]); its value counts the "
                  "tokens of the call from 0, so prefill and decode would see different numbers (for the "
                  "position, read p[t] with p = positions() computed before the scan)",
             scan_var_name(S, scan));
  note_contract(scan);
  return -1;
}

static int val_has_step_T(Sema *S, IrOp *scan, Val v) {
  if (v.kind == VAL_TENSOR) return ir_shape_has_T(v.t->shape) && !defined_outside(scan, v.t);
  if (v.kind == VAL_TUPLE)
    for (int i = 0; i < v.n; i++)
      if (val_has_step_T(S, scan, v.items[i])) return 1;
  return 0;
}

Val sema_stream_filter(Sema *S, const AstExpr *e, Val v, int errs_before) {
  IrOp *scan = sema_stream_scan(S);
  if (!scan || !val_has_step_T(S, scan, v)) return v;
  /* Only a violation reported above can give a step-local value a T axis; if
   * none was, say so here rather than let the value through. */
  if (diag_error_count() == errs_before) {
    diag_error(e->loc, "'%s' has a T axis inside a scan step, where a step sees only its own token",
               sema_expr_str(S, e));
    note_contract(scan);
  }
  return val_poison();
}

/* ---- warnings outside scans ------------------------------------------------------ */
void sema_stream_warn(Sema *S, SrcLoc loc, const char *fmt, ...) {
  for (int i = 0; i < S->stream_warned.len; i++) {
    const SrcLoc *w = S->stream_warned.data[i];
    if (w->file == loc.file && w->line == loc.line && w->col == loc.col) return;
  }
  SrcLoc *keep = ARENA_NEW(S->a, SrcLoc);
  *keep = loc;
  ptrvec_push(&S->stream_warned, keep);
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  diag_warning(loc, "%s", msg);
}
static void warn_per_call(Sema *S, SrcLoc loc, const char *what) {
  sema_stream_warn(S, loc, "%s sees only the tokens of the current call, so one call of T tokens and T calls of "
                           "one token (prefill and decode) give different results", what);
}

static int count_T(IrShape s) {
  int n = 0;
  for (int i = 0; i < s.rank; i++) n += s.dims[i] == IR_DIM_T;
  return n;
}
static int axis_of(const IrOp *op, const char *key, int rank) {
  int64_t a = ir_op_int(op, key, -1);
  return (int)(a < 0 ? a + rank : a);
}
/* Does a reshape keep every token's elements together and in place? It does
 * when the fixed extents before and after the T axis stay the same. */
static int reshape_keeps_tokens(IrShape a, IrShape b) {
  int64_t pa = 1, pb = 1;
  int ta = -1, tb = -1;
  for (int i = 0; i < a.rank; i++)
    if (a.dims[i] == IR_DIM_T) ta = i;
  for (int i = 0; i < b.rank; i++)
    if (b.dims[i] == IR_DIM_T) tb = i;
  if (ta < 0 || tb < 0) return 1;
  for (int i = 0; i < ta; i++) pa *= a.dims[i];
  for (int i = 0; i < tb; i++) pb *= b.dims[i];
  return pa == pb;
}

static void warn_op(Sema *S, IrOp *op) {
  IrShape x = op->nin > 0 ? op->in[0]->shape : ir_shape_scalar();
  int rank = x.rank;
  int in_T2 = 0;
  for (int i = 0; i < op->nin; i++)
    if (count_T(op->in[i]->shape) >= 2) in_T2 = 1;
  switch (op->kind) {
  case IR_OP_REDUCE: {
    const IrAttr *ax = ir_op_attr(op, "axes");
    for (int i = 0; ax && i < ax->n; i++) {
      int64_t a = ax->ints[i] < 0 ? ax->ints[i] + rank : ax->ints[i];
      if (a >= 0 && a < rank && x.dims[a] == IR_DIM_T) {
        warn_per_call(S, op->loc, arena_printf(S->a, "a %s over the T axis", ir_op_str(op, "kind", "reduction")));
        return;
      }
    }
    break;
  }
  case IR_OP_SOFTMAX: {
    int a = axis_of(op, "axis", rank);
    if (a >= 0 && a < rank && x.dims[a] == IR_DIM_T) {
      warn_per_call(S, op->loc, "softmax over the T axis");
      return;
    }
    break;
  }
  case IR_OP_MATMUL:
    if (rank >= 1 && x.dims[rank - 1] == IR_DIM_T) {
      warn_per_call(S, op->loc, "a matmul that sums over the T axis");
      return;
    }
    break;
  case IR_OP_GATHER:
    if (rank >= 1 && x.dims[0] == IR_DIM_T) {
      warn_per_call(S, op->loc, "gather from a table with one row per token");
      return;
    }
    break;
  case IR_OP_LINEAR: case IR_OP_RMS_NORM: case IR_OP_LAYER_NORM: case IR_OP_L2_NORM: case IR_OP_TOPK:
    if (rank >= 1 && x.dims[rank - 1] == IR_DIM_T) {
      warn_per_call(S, op->loc, arena_printf(S->a, "'%s' over a last axis that is T", ir_op_name(op->kind)));
      return;
    }
    break;
  case IR_OP_RESHAPE:
    if (!reshape_keeps_tokens(x, op->out[0]->shape)) {
      warn_per_call(S, op->loc, "a reshape that moves elements between tokens");
      return;
    }
    break;
  default: break;
  }
  if (in_T2) return; /* a T x T value was already warned about where it was made */
  for (int i = 0; i < op->nout; i++)
    if (count_T(op->out[i]->shape) >= 2) {
      warn_per_call(S, op->loc, arena_printf(S->a, "a value with two T axes (%s, every token paired with every "
                                                   "token)", sema_type_str(S, op->out[i]->dtype, op->out[i]->shape)));
      return;
    }
}

static void warn_block(Sema *S, IrBlock *b) {
  for (int i = 0; i < b->ops.len; i++) {
    IrOp *op = b->ops.data[i];
    if (op->kind == IR_OP_SCAN) continue; /* steps are held to the hard rule above */
    warn_op(S, op); /* index notation warns about reductions over T as it is built (sema_index.c) */
    for (int r = 0; r < op->nregions; r++) warn_block(S, op->regions[r]);
  }
}

void sema_stream_warn_module(Sema *S) { warn_block(S, S->m->body); }
