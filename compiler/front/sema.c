/* sema.c — semantic analysis and lowering of a .gat program to graph IR, in
 * one elaborating walk over the AST.
 *
 * Why one walk instead of "typed AST, then lower" (as architecture.md
 * sketches): a layer has no single type. `gla(x, heads: 4)` binds D from the
 * argument's shape, folds K = D * expand_k / H, and only then do the shapes
 * of its statements exist; the next call with other constants gives other
 * shapes and other parameter names. Checking is therefore per instance, like
 * template instantiation, and the instance's IR is the natural place to keep
 * the result. The walk carries an environment mapping names to compile-time
 * scalars (int, float, bool, str) or tensors (IrValue*), folds all scalar
 * arithmetic as it goes, and emits ops into the current block.
 *
 * This file holds values and environments, expression evaluation, layer
 * instantiation, statements, scan/mixture/skip and the model entry point.
 * Builtin calls live in sema_builtins.c, index notation in sema_index.c.
 *
 * Errors are reported with diag_error and produce VAL_POISON, which every
 * consumer passes on silently, so one mistake gives one message and the walk
 * goes on to find errors in other statements. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gat_limits.h"
#include "sema.h"
#include "sema_internal.h"

/* ---- values --------------------------------------------------------------- */
Val val_poison(void) {
  Val v;
  memset(&v, 0, sizeof v);
  v.kind = VAL_POISON;
  return v;
}
Val val_int(int64_t i) {
  Val v = val_poison();
  v.kind = VAL_INT;
  v.i = i;
  return v;
}
Val val_float(double f) {
  Val v = val_poison();
  v.kind = VAL_FLOAT;
  v.f = f;
  return v;
}
Val val_bool(int b) {
  Val v = val_poison();
  v.kind = VAL_BOOL;
  v.i = b != 0;
  return v;
}
Val val_str(const char *s) {
  Val v = val_poison();
  v.kind = VAL_STR;
  v.s = s;
  return v;
}
Val val_tensor(IrValue *t) {
  Val v = val_poison();
  v.kind = VAL_TENSOR;
  v.t = t;
  return v;
}
int val_is_scalar(Val v) {
  return v.kind == VAL_INT || v.kind == VAL_FLOAT || v.kind == VAL_BOOL || v.kind == VAL_STR;
}
int val_is_number(Val v) { return v.kind == VAL_INT || v.kind == VAL_FLOAT || v.kind == VAL_BOOL; }
double val_num(Val v) { return v.kind == VAL_FLOAT ? v.f : (double)v.i; }
const char *val_kind_name(Val v) {
  switch (v.kind) {
  case VAL_INT: return "an int";
  case VAL_FLOAT: return "a float";
  case VAL_BOOL: return "a bool";
  case VAL_STR: return "a string";
  case VAL_TENSOR: return "a tensor";
  case VAL_TUPLE: return "several values";
  case VAL_NONE: return "nothing";
  case VAL_POISON: return "an invalid value";
  }
  return "?";
}

const char *sema_type_str(Sema *S, IrDType dt, IrShape s) {
  char buf[256];
  ir_type_str(buf, sizeof buf, dt, s);
  return arena_strdup(S->a, buf);
}

/* ---- expression text for messages --------------------------------------- */
static int binop_prec(AstBinOp op) {
  switch (op) {
  case AST_OR: return 1;
  case AST_AND: return 2;
  case AST_LT: case AST_LE: case AST_GT: case AST_GE: case AST_EQ: case AST_NE: return 3;
  case AST_ADD: case AST_SUB: return 4;
  case AST_MUL: case AST_DIV: case AST_MOD: return 5;
  case AST_POW: return 7;
  }
  return 0;
}
static const char *binop_text(AstBinOp op) {
  static const char *const t[] = {"+", "-", "*", "/", "%", "**", "<", "<=", ">", ">=", "==", "!=", "and", "or"};
  return t[op];
}
static void expr_text(StrBuf *sb, const AstExpr *e, int prec) {
  if (!e) return;
  char buf[64];
  switch (e->kind) {
  case AST_EXPR_INT: sb_printf(sb, "%lld", (long long)e->ival); break;
  case AST_EXPR_FLOAT: format_double(buf, sizeof buf, e->fval); sb_append(sb, buf); break;
  case AST_EXPR_STRING: sb_printf(sb, "\"%s\"", e->sval); break;
  case AST_EXPR_BOOL: sb_append(sb, e->ival ? "true" : "false"); break;
  case AST_EXPR_NAME: sb_append(sb, e->name); break;
  case AST_EXPR_BINARY: {
    int p = binop_prec(e->binop);
    if (p < prec) sb_append(sb, "(");
    expr_text(sb, e->lhs, e->binop == AST_POW ? p + 1 : p);
    sb_printf(sb, " %s ", binop_text(e->binop));
    expr_text(sb, e->rhs, e->binop == AST_POW ? p : p + 1);
    if (p < prec) sb_append(sb, ")");
    break;
  }
  case AST_EXPR_UNARY:
    if (prec > 6) sb_append(sb, "(");
    sb_append(sb, e->unop == AST_NEG ? "-" : "not ");
    expr_text(sb, e->lhs, 6);
    if (prec > 6) sb_append(sb, ")");
    break;
  case AST_EXPR_CALL:
    sb_printf(sb, "%s(", e->name);
    for (int i = 0; i < e->args.len; i++) {
      const AstArg *a = e->args.items[i];
      if (i) sb_append(sb, ", ");
      if (a->name) sb_printf(sb, "%s: ", a->name);
      expr_text(sb, a->value, 0);
    }
    sb_append(sb, ")");
    if (e->scope) sb_printf(sb, " @ \"%s\"", e->scope);
    break;
  case AST_EXPR_INDEX:
    sb_printf(sb, "%s[", e->name);
    for (int i = 0; i < e->args.len; i++) {
      if (i) sb_append(sb, ", ");
      expr_text(sb, e->args.items[i], 0);
    }
    sb_append(sb, "]");
    break;
  case AST_EXPR_SLICE:
    expr_text(sb, e->lo, 0);
    sb_append(sb, ":");
    expr_text(sb, e->hi, 0);
    break;
  case AST_EXPR_AS:
    expr_text(sb, e->lhs, 8);
    sb_append(sb, " as [");
    for (int i = 0; i < e->args.len; i++) {
      if (i) sb_append(sb, ", ");
      expr_text(sb, e->args.items[i], 0);
    }
    sb_append(sb, "]");
    break;
  case AST_EXPR_REDUCE: {
    static const char *const rn[] = {"sum", "max", "min", "mean"};
    if (prec > 0) sb_append(sb, "(");
    sb_printf(sb, "%s(", rn[e->reduce]);
    for (int i = 0; i < e->vars.len; i++) sb_printf(sb, "%s%s", i ? ", " : "", (const char *)e->vars.items[i]);
    sb_append(sb, ") ");
    expr_text(sb, e->lhs, 0);
    if (prec > 0) sb_append(sb, ")");
    break;
  }
  case AST_EXPR_TUPLE:
    sb_append(sb, "(");
    for (int i = 0; i < e->args.len; i++) {
      if (i) sb_append(sb, ", ");
      expr_text(sb, e->args.items[i], 0);
    }
    sb_append(sb, ")");
    break;
  case AST_EXPR_SCAN: sb_append(sb, "scan ..."); break;
  case AST_EXPR_MIXTURE: sb_append(sb, "mixture ..."); break;
  }
}
char *sema_expr_str(Sema *S, const AstExpr *e) {
  StrBuf sb = {0};
  expr_text(&sb, e, 0);
  char *r = arena_strdup(S->a, sb_cstr(&sb));
  sb_free(&sb);
  return r;
}

/* ---- environments ------------------------------------------------------- */
Env *env_new(Sema *S, Env *parent, int barrier) {
  Env *e = ARENA_NEW(S->a, Env);
  e->parent = parent;
  e->barrier = barrier;
  return e;
}
void env_define(Sema *S, Env *e, const char *name, Val v, SrcLoc loc) {
  Binding *b = ARENA_NEW(S->a, Binding);
  b->name = name;
  b->v = v;
  b->loc = loc;
  b->next = e->head;
  e->head = b;
}
static Binding *frame_find(Env *e, const char *name) {
  for (Binding *b = e->head; b; b = b->next)
    if (strcmp(b->name, name) == 0) return b;
  return NULL;
}
Binding *env_lookup(Env *e, const char *name) {
  for (; e; e = e->parent) {
    Binding *b = frame_find(e, name);
    if (b) return b;
  }
  return NULL;
}
/* The binding a plain assignment rebinds: nearest one not behind a barrier. */
static Binding *env_lookup_local(Env *e, const char *name) {
  for (; e; e = e->parent) {
    Binding *b = frame_find(e, name);
    if (b) return b;
    if (e->barrier) break;
  }
  return NULL;
}

/* ---- "did you mean" ------------------------------------------------------- */
static int edit_distance(const char *a, const char *b) {
  int la = (int)strlen(a), lb = (int)strlen(b);
  if (la > 40 || lb > 40) return 99;
  int d[41][41];
  for (int i = 0; i <= la; i++) d[i][0] = i;
  for (int j = 0; j <= lb; j++) d[0][j] = j;
  for (int i = 1; i <= la; i++)
    for (int j = 1; j <= lb; j++) {
      int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
      d[i][j] = c;
    }
  return d[la][lb];
}
static const char *const builtin_names[] = {
    "linear", "matmul", "embedding", "gather", "softmax", "sum", "mean", "max", "min",
    "rms_norm", "layer_norm", "l2_norm", "rope", "causal_conv1d", "attention", "topk", "concat",
    "split", "transpose", "positions", "float", "int", "select", "exp", "log", "sqrt", "rsqrt",
    "abs", "tanh", "sigmoid", "logsigmoid", "silu", "relu", "softplus", "gelu", NULL};

static void consider(const char *name, const char *cand, const char **best, int *bestd) {
  if (strcmp(name, cand) == 0) return;
  int d = edit_distance(name, cand);
  int lim = (int)strlen(name) / 3 + 1;
  if (lim > 3) lim = 3;
  if (d <= lim && d < *bestd) {
    *bestd = d;
    *best = cand;
  }
}
void sema_undefined(Sema *S, const char *name, SrcLoc loc) {
  const char *best = NULL;
  int bestd = 99;
  for (Env *e = S->env; e; e = e->parent)
    for (Binding *b = e->head; b; b = b->next) consider(name, b->name, &best, &bestd);
  for (int i = 0; i < S->layers.len; i++) consider(name, ((AstDecl *)S->layers.data[i])->name, &best, &bestd);
  for (int i = 0; builtin_names[i]; i++) consider(name, builtin_names[i], &best, &bestd);
  if (best)
    diag_error(loc, "undefined name '%s'; did you mean '%s'?", name, best);
  else
    diag_error(loc, "undefined name '%s'", name);
}

static AstDecl *find_layer(Sema *S, const char *name) {
  for (int i = 0; i < S->layers.len; i++) {
    AstDecl *d = S->layers.data[i];
    if (strcmp(d->name, name) == 0) return d;
  }
  return NULL;
}

/* ---- scopes ------------------------------------------------------------- */
const char *sema_join_scope(Sema *S, const char *a, const char *b) {
  if (!b || !*b) return a;
  if (!a || !*a) return b;
  return arena_printf(S->a, "%s.%s", a, b);
}
/* Substitutes `{name}` with compile-time ints (or strings) of the current
 * env; `what` names the text in messages ("scope", "param name"). */
static const char *subst_template(Sema *S, const char *raw, SrcLoc loc, const char *what);
const char *sema_subst_scope(Sema *S, const char *raw, SrcLoc loc) { return subst_template(S, raw, loc, "scope"); }
const char *sema_subst_param_name(Sema *S, const char *raw, SrcLoc loc) {
  return subst_template(S, raw, loc, "param name");
}
static const char *subst_template(Sema *S, const char *raw, SrcLoc loc, const char *what) {
  if (!raw) return NULL;
  if (!strchr(raw, '{')) return raw;
  StrBuf sb = {0};
  const char *p = raw;
  int ok = 1;
  while (*p) {
    if (*p != '{') {
      sb_appendn(&sb, p++, 1);
      continue;
    }
    const char *e = strchr(p, '}');
    if (!e) {
      diag_error(loc, "unterminated '{' in %s \"%s\"", what, raw);
      ok = 0;
      break;
    }
    char *name = arena_strndup(S->a, p + 1, (size_t)(e - p - 1));
    Binding *b = env_lookup(S->env, name);
    if (!b) {
      diag_error(loc, "undefined name '%s' in %s \"%s\"", name, what, raw);
      ok = 0;
    } else if (b->v.kind == VAL_INT) {
      sb_printf(&sb, "%lld", (long long)b->v.i);
    } else if (b->v.kind == VAL_STR) {
      sb_append(&sb, b->v.s);
    } else if (b->v.kind != VAL_POISON) {
      diag_error(loc, "'{%s}' in %s \"%s\" must be a compile-time int, not %s", name, what, raw,
                 val_kind_name(b->v));
      ok = 0;
    } else {
      ok = 0;
    }
    p = e + 1;
  }
  const char *r = ok ? arena_strdup(S->a, sb_cstr(&sb)) : NULL;
  sb_free(&sb);
  return r;
}

/* ---- capture into mixture/skip regions ------------------------------------ */
static int block_within(IrBlock *b, IrBlock *outer) {
  while (b) {
    if (b == outer) return 1;
    b = b->parent ? b->parent->parent : NULL;
  }
  return 0;
}
static IrValue *use_in(Sema *S, Region *R, IrValue *v) {
  if (!R || block_within(v->block, R->cur)) return v;
  v = use_in(S, R->parent, v);
  if (v->shape.rank < 1 || v->shape.dims[0] != IR_DIM_T) return v; /* weights etc.: direct capture */
  for (int i = 0; i < R->outer.len; i++)
    if (R->outer.data[i] == v) return R->cur->args[i];
  ir_op_add_operand(S->m, R->op, v);
  ptrvec_push(&R->outer, v);
  for (int i = 0; i < R->blocks.len; i++) ir_block_add_arg(S->m, R->blocks.data[i], v->dtype, v->shape);
  return R->cur->args[R->outer.len - 1];
}
IrValue *sema_use(Sema *S, IrValue *v) { return use_in(S, S->region, v); }

/* ---- names, dims, types --------------------------------------------------- */
Val sema_lookup_name(Sema *S, const char *name, SrcLoc loc) {
  Binding *b = env_lookup(S->env, name);
  if (!b) {
    if (strcmp(name, "T") == 0)
      diag_error(loc, "'T' is the sequence dimension; it can only be used in shapes");
    else if (find_layer(S, name))
      diag_error(loc, "'%s' is a layer; call it with arguments", name);
    else
      sema_undefined(S, name, loc);
    return val_poison();
  }
  if (b->v.kind == VAL_TENSOR) return val_tensor(sema_use(S, b->v.t));
  return b->v;
}

int64_t sema_eval_dim(Sema *S, AstExpr *e) {
  if (e->kind == AST_EXPR_NAME && strcmp(e->name, "T") == 0 && !env_lookup(S->env, "T")) return IR_DIM_T;
  Val v = sema_eval(S, e);
  if (v.kind == VAL_POISON) return -2;
  char *txt = sema_expr_str(S, e);
  /* Dimensions beyond 2^31 - 1 are refused so element counts stay far from
   * int64 overflow everywhere downstream. */
  if ((v.kind == VAL_INT && v.i > INT32_MAX) || (v.kind == VAL_FLOAT && v.f > INT32_MAX)) {
    diag_error(e->loc, "dimension '%s' is too large (more than %d)", txt, INT32_MAX);
    return -2;
  }
  if (v.kind == VAL_INT && v.i > 0) return v.i;
  if (v.kind == VAL_FLOAT && v.f > 0 && v.f == floor(v.f)) return (int64_t)v.f;
  if (v.kind == VAL_INT)
    diag_error(e->loc, "dimension '%s' is %lld; a dimension must be a positive integer", txt, (long long)v.i);
  else if (v.kind == VAL_FLOAT) {
    char buf[64];
    format_double(buf, sizeof buf, v.f);
    diag_error(e->loc, "dimension '%s' is %s; a dimension must be a positive integer", txt, buf);
  } else
    diag_error(e->loc, "dimension '%s' is %s; a dimension must be a positive integer", txt, val_kind_name(v));
  return -2;
}

int sema_eval_type_shape(Sema *S, AstType *t, IrShape *out) {
  memset(out, 0, sizeof *out);
  if (t->dims.len > IR_MAX_RANK) {
    diag_error(t->loc, "tensors have at most %d dimensions", IR_MAX_RANK);
    return -1;
  }
  int ok = 0;
  out->rank = t->dims.len;
  for (int i = 0; i < t->dims.len; i++) {
    int64_t d = sema_eval_dim(S, t->dims.items[i]);
    if (d == -2) ok = -1;
    out->dims[i] = d == -2 ? 1 : d;
  }
  return ok;
}
static IrDType dtype_of(AstType *t) { return t->dtype && strcmp(t->dtype, "i32") == 0 ? IR_I32 : IR_F32; }

/* ---- expressions -------------------------------------------------------- */
static Val eval_scan(Sema *S, AstExpr *e);
static Val eval_mixture(Sema *S, AstExpr *e);
static Val instantiate_layer(Sema *S, AstDecl *L, AstExpr *call);

static Val eval_expr(Sema *S, AstExpr *e);
static Val sema_eval_node(Sema *S, AstExpr *e);

Val sema_eval(Sema *S, AstExpr *e) {
  int errs = diag_error_count();
  Val v = eval_expr(S, e);
  return e ? sema_stream_filter(S, e, v, errs) : v;
}

static Val eval_expr(Sema *S, AstExpr *e) {
  if (!e) return val_poison();
  if (S->eval_depth >= SEMA_MAX_DEPTH) {
    if (!S->depth_reported) /* once: the poison unwinds through every enclosing level */
      diag_error(e->loc, "expression or layer calls nested too deeply (limit %d)", SEMA_MAX_DEPTH);
    S->depth_reported = 1;
    return val_poison();
  }
  S->eval_depth++;
  Val v = sema_eval_node(S, e);
  S->eval_depth--;
  return v;
}

static Val sema_eval_node(Sema *S, AstExpr *e) {
  switch (e->kind) {
  case AST_EXPR_INT: return val_int(e->ival);
  case AST_EXPR_FLOAT: return val_float(e->fval);
  case AST_EXPR_STRING: return val_str(e->sval);
  case AST_EXPR_BOOL: return val_bool((int)e->ival);
  case AST_EXPR_NAME: return sema_lookup_name(S, e->name, e->loc);
  case AST_EXPR_BINARY: {
    Val a = sema_eval(S, e->lhs);
    Val b = sema_eval(S, e->rhs);
    return sema_binary(S, e->binop, a, b, e->loc);
  }
  case AST_EXPR_UNARY: {
    Val a = sema_eval(S, e->lhs);
    return sema_unary_fn(S, e->unop == AST_NEG ? IR_FN_NEG : IR_FN_NOT, a, e->loc,
                         e->unop == AST_NEG ? "-" : "not");
  }
  case AST_EXPR_CALL: {
    AstDecl *L = find_layer(S, e->name);
    if (L) return instantiate_layer(S, L, e);
    int found = 0;
    Val v = sema_call_builtin(S, e, &found);
    if (found) return v;
    if (env_lookup(S->env, e->name))
      diag_error(e->loc, "'%s' is a value, not a function or layer", e->name);
    else {
      const char *best = NULL;
      int bestd = 99;
      for (int i = 0; i < S->layers.len; i++)
        consider(e->name, ((AstDecl *)S->layers.data[i])->name, &best, &bestd);
      for (int i = 0; builtin_names[i]; i++) consider(e->name, builtin_names[i], &best, &bestd);
      if (best)
        diag_error(e->loc, "unknown layer or builtin '%s'; did you mean '%s'?", e->name, best);
      else
        diag_error(e->loc, "unknown layer or builtin '%s'", e->name);
    }
    for (int i = 0; i < e->args.len; i++) sema_eval(S, ((AstArg *)e->args.items[i])->value);
    return val_poison();
  }
  case AST_EXPR_INDEX: return sema_slice(S, e);
  case AST_EXPR_SLICE:
    diag_error(e->loc, "a slice 'lo:hi' is only allowed inside [...]");
    return val_poison();
  case AST_EXPR_AS: {
    Val x = sema_eval(S, e->lhs);
    return sema_reshape(S, x, e);
  }
  case AST_EXPR_REDUCE:
    diag_error(e->loc, "a reduction '%s' over index variables is only allowed in index notation "
                       "(y[i] = sum(j) ...); for a whole axis use the call form, e.g. sum(x, axis: -1)",
               sema_expr_str(S, e));
    return val_poison();
  case AST_EXPR_SCAN: return eval_scan(S, e);
  case AST_EXPR_MIXTURE: return eval_mixture(S, e);
  case AST_EXPR_TUPLE: {
    Val t = val_poison();
    t.kind = VAL_TUPLE;
    t.n = e->args.len;
    t.items = ARENA_ARRAY(S->a, Val, t.n ? t.n : 1);
    int bad = 0;
    for (int i = 0; i < t.n; i++) {
      t.items[i] = sema_eval(S, e->args.items[i]);
      if (t.items[i].kind == VAL_POISON) bad = 1;
    }
    return bad ? val_poison() : t;
  }
  }
  gat_unreachable();
}

/* ---- statements ----------------------------------------------------------- */
typedef struct RetCtx {
  int returned;
  Val value;
  SrcLoc loc;
} RetCtx;

static void exec_stmts(Sema *S, AstList *body, RetCtx *ret);

static OutputDecl *find_output(Sema *S, const char *name) {
  for (int i = 0; i < S->outputs.len; i++) {
    OutputDecl *o = S->outputs.data[i];
    if (strcmp(o->name, name) == 0) return o;
  }
  return NULL;
}

/* Binds `name` to v as an assignment does: emit and scan states, model
 * outputs, rebinding, or a new local. */
static void assign_name(Sema *S, const char *name, Val v, SrcLoc loc) {
  if (!S->scan && strcmp(name, "emit") == 0) {
    diag_error(loc, "'emit' is only allowed inside a scan (it gives the value stacked into the scan's result)");
    return;
  }
  if (S->scan && strcmp(name, "emit") == 0 && S->env == S->scan->frame) {
    if (v.kind == VAL_POISON) {
      S->scan->emit_loc = loc;
      return;
    }
    if (S->scan->emit || S->scan->emit_loc.line) {
      diag_error(loc, "'emit' is assigned more than once in this scan");
      diag_note(S->scan->emit_loc, "first assigned here");
      return;
    }
    if (v.kind != VAL_TENSOR) {
      diag_error(loc, "'emit' must be a tensor, not %s", val_kind_name(v));
      return;
    }
    if (sema_stream_check_emit(S, v.t, loc) < 0) {
      S->scan->emit_loc = loc;
      return;
    }
    S->scan->emit = v.t;
    S->scan->emit_loc = loc;
    return;
  }
  if (S->scan) {
    Binding *b = env_lookup_local(S->env, name);
    if (b && frame_find(S->scan->frame, name) == b) {
      for (int i = 0; i < S->scan->nstates; i++) {
        if (strcmp(S->scan->state_names[i], name) != 0) continue;
        if (v.kind == VAL_POISON) {
          b->v = v;
          return;
        }
        if (v.kind != VAL_TENSOR || !ir_shape_eq(v.t->shape, S->scan->state_shapes[i])) {
          diag_error(loc, "state '%s' is %s but is assigned %s", name,
                     sema_type_str(S, S->scan->state_dtypes[i], S->scan->state_shapes[i]),
                     v.kind == VAL_TENSOR ? sema_type_str(S, v.t->dtype, v.t->shape) : val_kind_name(v));
          b->v = val_poison();
          return;
        }
        v.t = sema_cast(S, v.t, S->scan->state_dtypes[i], loc); /* index notation computes in f32 */
        b->v = v;
        return;
      }
    }
  }
  if (S->layer_depth == 0 && S->block == S->m->body && !S->scan) {
    OutputDecl *o = find_output(S, name);
    if (o) {
      if (o->value || o->assigned_at.line) {
        diag_error(loc, "output '%s' is assigned more than once", name);
        diag_note(o->assigned_at, "first assigned here");
        return;
      }
      o->assigned_at = loc;
      if (v.kind == VAL_POISON) return;
      if (v.kind != VAL_TENSOR) {
        diag_error(loc, "output '%s' must be a tensor, not %s", name, val_kind_name(v));
        return;
      }
      if (v.t->dtype != o->dtype || !ir_shape_eq(v.t->shape, o->shape)) {
        diag_error(loc, "output '%s' is declared %s but is assigned %s", name,
                   sema_type_str(S, o->dtype, o->shape), sema_type_str(S, v.t->dtype, v.t->shape));
        return;
      }
      o->value = v.t;
      env_define(S, S->model_env, name, v, loc);
      return;
    }
  }
  Binding *b = env_lookup_local(S->env, name);
  if (b) {
    b->v = v;
    b->loc = loc;
  } else {
    env_define(S, S->env, name, v, loc);
  }
}

static Val eval_skip(Sema *S, AstStmt *st);

static void exec_assign(Sema *S, AstStmt *st) {
  if (st->indices.len > 0) {
    const char *target = st->names.items[0];
    const IrShape *want = NULL;
    if (S->scan)
      for (int i = 0; i < S->scan->nstates; i++)
        if (strcmp(S->scan->state_names[i], target) == 0) want = &S->scan->state_shapes[i];
    if (st->skip_when) diag_error(st->skip_when->loc, "'skip when' cannot be used with index notation");
    if (st->route_top) diag_error(st->route_top->loc, "'route' cannot be used with index notation");
    Val v = sema_index_assign(S, st, want);
    assign_name(S, target, v, st->loc);
    return;
  }
  if (st->skip_when || st->route_top) {
    if (st->names.len != 1) {
      diag_error(st->loc, "'%s' needs exactly one target", st->skip_when ? "skip when" : "route");
      return;
    }
    Val v = eval_skip(S, st);
    assign_name(S, st->names.items[0], v, st->loc);
    return;
  }
  Val v = sema_eval(S, st->value);
  if (st->names.len == 1) {
    if (v.kind == VAL_TUPLE) {
      diag_error(st->loc, "the right side gives %d values; write %d names on the left", v.n, v.n);
      v = val_poison();
    } else if (v.kind == VAL_NONE) {
      diag_error(st->loc, "the right side gives no value");
      v = val_poison();
    }
    assign_name(S, st->names.items[0], v, st->loc);
    return;
  }
  if (v.kind != VAL_POISON && (v.kind != VAL_TUPLE || v.n != st->names.len)) {
    diag_error(st->loc, "%d names on the left but the right side gives %d value%s", st->names.len,
               v.kind == VAL_TUPLE ? v.n : 1, v.kind == VAL_TUPLE && v.n != 1 ? "s" : "");
    v = val_poison();
  }
  for (int i = 0; i < st->names.len; i++)
    assign_name(S, st->names.items[i], v.kind == VAL_TUPLE ? v.items[i] : val_poison(), st->loc);
}

static int eval_init(Sema *S, AstExpr *e, IrInit *init) {
  memset(init, 0, sizeof *init);
  if (!e) {
    init->kind = IR_INIT_NORMAL;
    init->b = 0.02;
    return 0;
  }
  static const struct {
    const char *name;
    IrInitKind kind;
    int nargs;
  } rules[] = {
      {"normal", IR_INIT_NORMAL, 2},   {"uniform", IR_INIT_UNIFORM, 2},
      {"zeros", IR_INIT_CONST, 0},     {"ones", IR_INIT_CONST, 0},
      {"constant", IR_INIT_CONST, 1},  {"log_uniform", IR_INIT_LOG_UNIFORM, 2},
      {"dt_bias", IR_INIT_DT_BIAS, 2}, {"eye", IR_INIT_EYE, 0},
      {"one_hot_last", IR_INIT_ONE_HOT_LAST, 0},
  };
  if (e->kind != AST_EXPR_CALL) {
    diag_error(e->loc, "a param's init must be a rule such as normal(0, 0.02), zeros() or ones()");
    return -1;
  }
  for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
    if (strcmp(rules[r].name, e->name) != 0) continue;
    if (e->args.len != rules[r].nargs) {
      diag_error(e->loc, "init rule '%s' takes %d argument%s, got %d", e->name, rules[r].nargs,
                 rules[r].nargs == 1 ? "" : "s", e->args.len);
      return -1;
    }
    double v[2] = {0, 0};
    for (int i = 0; i < e->args.len; i++) {
      AstArg *a = e->args.items[i];
      Val x = sema_eval(S, a->value);
      if (x.kind == VAL_POISON) return -1;
      if (!val_is_number(x)) {
        diag_error(a->loc, "init rule arguments must be compile-time numbers, not %s", val_kind_name(x));
        return -1;
      }
      v[i] = val_num(x);
    }
    init->kind = rules[r].kind;
    init->a = v[0];
    init->b = v[1];
    if (strcmp(e->name, "ones") == 0) init->a = 1;
    return 0;
  }
  diag_error(e->loc, "unknown init rule '%s' (normal, uniform, zeros, ones, constant, log_uniform, "
                     "dt_bias, eye)", e->name);
  return -1;
}

/* After an `if` whose condition failed, neither branch runs; binding the
 * names either branch would bind to poison keeps later uses (and outputs
 * assigned there) from producing follow-on errors. */
static void poison_branch_names(Sema *S, AstList *body) {
  for (int i = 0; i < body->len; i++) {
    AstStmt *st = body->items[i];
    if (!st) continue;
    if (st->kind == AST_STMT_IF) {
      poison_branch_names(S, &st->body);
      poison_branch_names(S, &st->else_body);
      continue;
    }
    if (st->kind != AST_STMT_ASSIGN && st->kind != AST_STMT_LET && st->kind != AST_STMT_CONST &&
        st->kind != AST_STMT_PARAM)
      continue;
    for (int k = 0; k < st->names.len; k++) {
      const char *name = st->names.items[k];
      if (strcmp(name, "emit") == 0 && S->scan) {
        if (!S->scan->emit) S->scan->emit_loc = st->loc;
        continue;
      }
      OutputDecl *o = S->layer_depth == 0 && !S->scan ? find_output(S, name) : NULL;
      if (o) {
        if (!o->value && !o->assigned_at.line) o->assigned_at = st->loc;
        continue;
      }
      Binding *b = env_lookup_local(S->env, name);
      if (b) b->v = val_poison();
      else env_define(S, S->env, name, val_poison(), st->loc);
    }
  }
}

/* const and let: bind each name to its value (const: a compile-time scalar). */
static void exec_let(Sema *S, AstStmt *st) {
  for (int i = 0; i < st->names.len; i++) {
    const char *name = st->names.items[i];
    Val v = sema_eval(S, st->values.items[i]);
    if (st->kind == AST_STMT_CONST && v.kind != VAL_POISON && !val_is_scalar(v)) {
      diag_error(((AstExpr *)st->values.items[i])->loc,
                 "const '%s' must be a compile-time scalar, not %s (use let or a plain assignment)",
                 name, val_kind_name(v));
      v = val_poison();
    }
    if (v.kind == VAL_TUPLE || v.kind == VAL_NONE) {
      diag_error(st->loc, "'%s' cannot hold %s", name, val_kind_name(v));
      v = val_poison();
    }
    env_define(S, S->env, name, v, st->loc);
  }
}

/* input and output declarations: a model input op, or an output to assign later. */
static void exec_io_decl(Sema *S, AstStmt *st) {
  const char *name = st->names.items[0];
  const char *what = st->kind == AST_STMT_INPUT ? "input" : "output";
  if (S->layer_depth > 0 || S->block != S->m->body || S->env != S->model_env) {
    diag_error(st->loc, "'%s' declarations belong at the top level of a model", what);
    return;
  }
  if (st->type->kind != AST_TYPE_TENSOR) {
    diag_error(st->type->loc, "%s '%s' must have a tensor type such as f32[T, 64]", what, name);
    env_define(S, S->env, name, val_poison(), st->loc);
    return;
  }
  IrShape shape;
  if (sema_eval_type_shape(S, st->type, &shape) < 0) {
    env_define(S, S->env, name, val_poison(), st->loc);
    return;
  }
  IrDType dt = dtype_of(st->type);
  for (int i = 0; i < S->m->inputs.len; i++)
    if (strcmp(((IrIO *)S->m->inputs.data[i])->name, name) == 0) {
      diag_error(st->loc, "'%s' is already declared as an input", name);
      return;
    }
  if (find_output(S, name)) {
    diag_error(st->loc, "'%s' is already declared as an output", name);
    diag_note(find_output(S, name)->loc, "declared here");
    return;
  }
  if (st->kind == AST_STMT_INPUT) {
    ir_module_add_input(S->m, name, dt, shape);
    IrOp *op = sema_op(S, IR_OP_INPUT, 0, NULL, st->loc);
    ir_op_set_str(S->m, op, "name", name);
    IrValue *v = ir_op_add_result(S->m, op, dt, shape);
    env_define(S, S->env, name, val_tensor(v), st->loc);
  } else {
    OutputDecl *o = ARENA_NEW(S->a, OutputDecl);
    o->name = name;
    o->dtype = dt;
    o->shape = shape;
    o->loc = st->loc;
    ptrvec_push(&S->outputs, o);
  }
}

/* param: a weight of the model, named in the current scope. */
static void exec_param(Sema *S, AstStmt *st) {
  /* A templated name `weight_ih_l{k}` gives the full name weight_ih_l0 and
   * binds the local name with the `{...}` parts removed (weight_ih_l), so
   * the body of a repeat can use it. */
  const char *name = st->names.items[0];
  const char *local = name;
  if (strchr(name, '{')) {
    StrBuf sb = {0};
    for (const char *p = name; *p; p++) {
      if (*p == '{') {
        const char *e = strchr(p, '}');
        if (e) {
          p = e;
          continue;
        }
      }
      sb_appendn(&sb, p, 1);
    }
    local = arena_strdup(S->a, sb_cstr(&sb));
    sb_free(&sb);
    name = sema_subst_param_name(S, name, st->loc);
    if (!name) {
      env_define(S, S->env, local, val_poison(), st->loc);
      return;
    }
  }
  Val result = val_poison();
  if (st->type->kind != AST_TYPE_TENSOR) {
    diag_error(st->type->loc, "param '%s' must have a tensor type such as f32[64]", name);
  } else {
    IrShape shape;
    IrInit init;
    int ok = sema_eval_type_shape(S, st->type, &shape) == 0;
    if (ok && ir_shape_has_T(shape)) {
      diag_error(st->type->loc, "param '%s' cannot have the sequence dimension T in its shape", name);
      ok = 0;
    }
    if (eval_init(S, st->init, &init) < 0) ok = 0;
    if (ok) {
      IrValue *v = sema_param(S, sema_join_scope(S, S->scope, name), dtype_of(st->type), shape, init, st->loc);
      if (v) result = val_tensor(v);
    }
  }
  env_define(S, S->env, local, result, st->loc);
}

/* repeat i in lo..hi: the body once per i, each in its own environment (and scope). */
static void exec_repeat(Sema *S, AstStmt *st, RetCtx *ret) {
  Val lo = sema_eval(S, st->lo), hi = sema_eval(S, st->hi);
  if (lo.kind == VAL_POISON || hi.kind == VAL_POISON) return;
  if (lo.kind != VAL_INT || hi.kind != VAL_INT) {
    AstExpr *badb = lo.kind != VAL_INT ? st->lo : st->hi;
    diag_error(badb->loc, "repeat bounds must be compile-time ints ('%s' is %s)", sema_expr_str(S, badb),
               val_kind_name(lo.kind != VAL_INT ? lo : hi));
    return;
  }
  if (hi.i > lo.i && (uint64_t)hi.i - (uint64_t)lo.i > GAT_LIMIT_REPEAT) {
    diag_error(st->hi->loc, "repeat %lld..%lld has %llu iterations; the limit is %d", (long long)lo.i,
               (long long)hi.i, (unsigned long long)((uint64_t)hi.i - (uint64_t)lo.i), GAT_LIMIT_REPEAT);
    return;
  }
  Env *saved_env = S->env;
  const char *saved_scope = S->scope;
  for (int64_t i = lo.i; i < hi.i; i++) {
    S->env = env_new(S, saved_env, 0);
    env_define(S, S->env, st->var, val_int(i), st->loc);
    if (st->scope) {
      const char *s = sema_subst_scope(S, st->scope, st->scope_loc);
      S->scope = s ? sema_join_scope(S, saved_scope, s) : saved_scope;
    }
    int errs = diag_error_count();
    exec_stmts(S, &st->body, ret);
    S->env = saved_env;
    S->scope = saved_scope;
    if (diag_error_count() > errs) break; /* the same mistake in every iteration: say it once */
    if (ret && ret->returned) break;
  }
}

/* max T = N: the largest T the model accepts. */
static void exec_max_seq(Sema *S, AstStmt *st) {
  if (S->layer_depth > 0 || S->block != S->m->body) {
    diag_error(st->loc, "'max T = N' belongs at the top level of a model");
    return;
  }
  Val v = sema_eval(S, st->value);
  if (v.kind == VAL_POISON) return;
  if (v.kind != VAL_INT || v.i < 1) {
    diag_error(st->loc, "max T must be a positive compile-time int");
    return;
  }
  if (v.i > GAT_LIMIT_MAX_T) {
    diag_error(st->loc, "max T = %lld is out of range: the limit is %lld (2^31 - 1)", (long long)v.i,
               (long long)GAT_LIMIT_MAX_T);
    return;
  }
  S->m->max_T = v.i;
}

/* if at compile time: elaborates the taken branch only. */
static void exec_if(Sema *S, AstStmt *st, RetCtx *ret) {
  /* A compile-time choice: only the taken branch is elaborated, in the
   * current environment, so its bindings (and parameters) exist after the
   * `if` exactly as if the branch had been written inline. */
  Val c = sema_eval(S, st->cond);
  if (c.kind == VAL_POISON) return;
  if (c.kind != VAL_BOOL) {
    const char *what = c.kind == VAL_TENSOR
                           ? arena_printf(S->a, "a run-time %s tensor (use select(c, a, b) to choose per element)",
                                          sema_type_str(S, c.t->dtype, c.t->shape))
                           : val_kind_name(c);
    diag_error(st->cond->loc, "the condition of 'if' must be a compile-time bool, not %s ('%s')", what,
               sema_expr_str(S, st->cond));
    poison_branch_names(S, &st->body);
    poison_branch_names(S, &st->else_body);
    return;
  }
  exec_stmts(S, c.i ? &st->body : &st->else_body, ret);
}

static void exec_stmt(Sema *S, AstStmt *st, RetCtx *ret) {
  switch (st->kind) {
  case AST_STMT_CONST:
  case AST_STMT_LET: exec_let(S, st); return;
  case AST_STMT_ASSIGN: exec_assign(S, st); return;
  case AST_STMT_INPUT:
  case AST_STMT_OUTPUT: exec_io_decl(S, st); return;
  case AST_STMT_PARAM: exec_param(S, st); return;
  case AST_STMT_REPEAT: exec_repeat(S, st, ret); return;
  case AST_STMT_RETURN: {
    if (!ret) {
      diag_error(st->loc, "'return' is only allowed in a layer (or a mixture body)");
      return;
    }
    ret->returned = 1;
    ret->value = sema_eval(S, st->value);
    ret->loc = st->loc;
    return;
  }
  case AST_STMT_MAXSEQ: exec_max_seq(S, st); return;
  case AST_STMT_IF: exec_if(S, st, ret); return;
  }
}

static void exec_stmts(Sema *S, AstList *body, RetCtx *ret) {
  for (int i = 0; i < body->len; i++) {
    AstStmt *st = body->items[i];
    if (!st) continue;
    if (ret && ret->returned) {
      diag_error(st->loc, "statement after 'return' is never reached");
      return;
    }
    exec_stmt(S, st, ret);
  }
}

/* ---- layer instantiation ------------------------------------------------------ */
static void collect_names(const AstExpr *e, const char **names, int *n, int cap) {
  if (!e) return;
  if (e->kind == AST_EXPR_NAME) {
    if (strcmp(e->name, "T") == 0) return;
    for (int i = 0; i < *n; i++)
      if (strcmp(names[i], e->name) == 0) return;
    if (*n < cap) names[(*n)++] = e->name;
    return;
  }
  collect_names(e->lhs, names, n, cap);
  collect_names(e->rhs, names, n, cap);
  if (e->kind == AST_EXPR_CALL) {
    for (int i = 0; i < e->args.len; i++) collect_names(((AstArg *)e->args.items[i])->value, names, n, cap);
  } else if (e->kind == AST_EXPR_AS || e->kind == AST_EXPR_INDEX || e->kind == AST_EXPR_TUPLE) {
    for (int i = 0; i < e->args.len; i++) collect_names(e->args.items[i], names, n, cap);
  }
}

/* "f32[T, D] with D = 128" for messages, evaluated in env. */
static const char *pattern_str(Sema *S, AstType *t, Env *env) {
  StrBuf sb = {0};
  sb_printf(&sb, "%s[", t->dtype ? t->dtype : "f32");
  const char *names[16];
  int n = 0;
  for (int i = 0; i < t->dims.len; i++) {
    if (i) sb_append(&sb, ", ");
    expr_text(&sb, t->dims.items[i], 0);
    collect_names(t->dims.items[i], names, &n, 16);
  }
  sb_append(&sb, "]");
  int first = 1;
  for (int i = 0; i < n; i++) {
    Binding *b = env_lookup(env, names[i]);
    if (!b || (b->v.kind != VAL_INT && b->v.kind != VAL_FLOAT)) continue;
    char buf[64];
    if (b->v.kind == VAL_INT)
      snprintf(buf, sizeof buf, "%lld", (long long)b->v.i);
    else
      format_double(buf, sizeof buf, b->v.f);
    sb_printf(&sb, "%s%s = %s", first ? " with " : ", ", names[i], buf);
    first = 0;
  }
  const char *r = arena_strdup(S->a, sb_cstr(&sb));
  sb_free(&sb);
  return r;
}

/* Checks a scalar argument against its declared type; converts int -> float. */
static int check_scalar_arg(Sema *S, AstParam *p, Val *v, SrcLoc loc, const char *layer) {
  (void)S;
  if (v->kind == VAL_POISON) return -1;
  const char *want = NULL;
  switch (p->type->kind) {
  case AST_TYPE_INT:
    if (v->kind == VAL_INT) return 0;
    if (v->kind == VAL_FLOAT && v->f == floor(v->f) && fabs(v->f) < 1e15) {
      *v = val_int((int64_t)v->f);
      return 0;
    }
    want = "an int";
    break;
  case AST_TYPE_FLOAT:
    if (v->kind == VAL_FLOAT) return 0;
    if (v->kind == VAL_INT) {
      *v = val_float((double)v->i);
      return 0;
    }
    want = "a float";
    break;
  case AST_TYPE_BOOL:
    if (v->kind == VAL_BOOL) return 0;
    want = "a bool";
    break;
  case AST_TYPE_STR:
    if (v->kind == VAL_STR) return 0;
    want = "a string";
    break;
  case AST_TYPE_TENSOR: break;
  }
  if (v->kind == VAL_FLOAT && p->type->kind == AST_TYPE_INT) {
    char buf[64];
    format_double(buf, sizeof buf, v->f);
    diag_error(loc, "argument '%s' of layer '%s' must be an int, but is %s", p->name, layer, buf);
  } else {
    diag_error(loc, "argument '%s' of layer '%s' must be %s, not %s", p->name, layer, want, val_kind_name(*v));
  }
  return -1;
}

/* The actual arguments of a call to layer L, by parameter: vals/locs/given[k] for param k.
   Returns 0, or -1 after an error (too many, unknown or repeated names, poison values). */
static int layer_match_args(Sema *S, AstDecl *L, AstExpr *call, Val *vals, SrcLoc *locs, int *given) {
  int np = L->params.len;
  int bad = 0, pos = 0;
  for (int i = 0; i < call->args.len; i++) {
    AstArg *arg = call->args.items[i];
    Val v = sema_eval(S, arg->value);
    int k = -1;
    if (!arg->name) {
      if (pos >= np) {
        diag_error(arg->loc, "too many arguments: layer '%s' takes %d", L->name, np);
        bad = 1;
        continue;
      }
      k = pos++;
    } else {
      for (int j = 0; j < np; j++)
        if (strcmp(((AstParam *)L->params.items[j])->name, arg->name) == 0) k = j;
      if (k < 0) {
        diag_error(arg->loc, "layer '%s' has no parameter '%s'", L->name, arg->name);
        diag_note(L->loc, "'%s' is defined here", L->name);
        bad = 1;
        continue;
      }
      if (given[k]) {
        diag_error(arg->loc, "argument '%s' of layer '%s' is given twice", arg->name, L->name);
        bad = 1;
        continue;
      }
    }
    given[k] = 1;
    vals[k] = v;
    locs[k] = arg->loc;
    if (v.kind == VAL_POISON) bad = 1;
  }
  return bad ? -1 : 0;
}

/* Binds tensor argument k's value and the plain names of its shape pattern in frame.
   Returns 0, or -1 after an error. */
static int layer_bind_tensor(Sema *S, AstDecl *L, AstExpr *call, Env *frame, int k, const Val *vals,
                             const SrcLoc *locs, const int *given) {
  AstParam *p = L->params.items[k];
  if (!given[k]) {
    diag_error(call->loc, "missing argument '%s' in call to layer '%s'", p->name, L->name);
    return -1;
  }
  if (vals[k].kind != VAL_TENSOR) {
    diag_error(locs[k], "argument '%s' of layer '%s' must be a tensor %s, not %s", p->name, L->name,
               pattern_str(S, p->type, frame), val_kind_name(vals[k]));
    return -1;
  }
  IrValue *t = vals[k].t;
  if (t->dtype != dtype_of(p->type) || t->shape.rank != p->type->dims.len) {
    diag_error(locs[k], "argument '%s' of layer '%s' has shape %s but the layer expects %s", p->name,
               L->name, sema_type_str(S, t->dtype, t->shape), pattern_str(S, p->type, frame));
    return -1;
  }
  int bad = 0;
  for (int d = 0; d < p->type->dims.len; d++) {
    AstExpr *de = p->type->dims.items[d];
    if (de->kind != AST_EXPR_NAME || strcmp(de->name, "T") == 0 || env_lookup(frame, de->name)) continue;
    if (t->shape.dims[d] == IR_DIM_T) {
      diag_error(locs[k], "argument '%s' of layer '%s' has shape %s: dimension '%s' would be the sequence "
                 "dimension; write T in the layer's pattern", p->name, L->name,
                 sema_type_str(S, t->dtype, t->shape), de->name);
      bad = 1;
      continue;
    }
    env_define(S, frame, de->name, val_int(t->shape.dims[d]), de->loc);
  }
  env_define(S, frame, p->name, vals[k], p->loc);
  return bad ? -1 : 0;
}

/* Binds every parameter of L in frame (S->env is frame afterwards): A explicit scalars, B tensors
   with their pattern names, C scalar defaults; then D checks every tensor pattern. Returns 0 or -1. */
static int layer_bind_params(Sema *S, AstDecl *L, AstExpr *call, Env *frame, Val *vals, const SrcLoc *locs,
                             const int *given) {
  int np = L->params.len, bad = 0;
  /* A: explicit scalar arguments. */
  for (int k = 0; k < np; k++) {
    AstParam *p = L->params.items[k];
    if (!given[k] || p->type->kind == AST_TYPE_TENSOR) continue;
    if (check_scalar_arg(S, p, &vals[k], locs[k], L->name) < 0) bad = 1;
    env_define(S, frame, p->name, vals[k], p->loc);
  }
  /* B: tensor arguments; bind the plain names of their shape patterns. */
  for (int k = 0; k < np; k++)
    if (((AstParam *)L->params.items[k])->type->kind == AST_TYPE_TENSOR &&
        layer_bind_tensor(S, L, call, frame, k, vals, locs, given) < 0)
      bad = 1;
  /* C: defaults of scalar parameters (may use earlier names and bound dims).
   * A default that calls the layer itself recurses like the body would. */
  S->env = frame;
  ptrvec_push(&S->inst_stack, L);
  for (int k = 0; k < np; k++) {
    AstParam *p = L->params.items[k];
    if (given[k] || p->type->kind == AST_TYPE_TENSOR) continue;
    if (!p->deflt) {
      diag_error(call->loc, "missing argument '%s' in call to layer '%s'", p->name, L->name);
      bad = 1;
      env_define(S, frame, p->name, val_poison(), p->loc);
      continue;
    }
    Val v = sema_eval(S, p->deflt);
    if (check_scalar_arg(S, p, &v, p->deflt->loc, L->name) < 0) bad = 1;
    env_define(S, frame, p->name, v, p->loc);
  }
  S->inst_stack.len--;
  /* D: every dimension of every tensor pattern must now agree. */
  for (int k = 0; k < np && !bad; k++) {
    AstParam *p = L->params.items[k];
    if (p->type->kind != AST_TYPE_TENSOR) continue;
    IrValue *t = vals[k].t;
    for (int d = 0; d < p->type->dims.len; d++) {
      int64_t want = sema_eval_dim(S, p->type->dims.items[d]);
      if (want == -2) {
        bad = 1;
        break;
      }
      if (want != t->shape.dims[d]) {
        diag_error(locs[k], "argument '%s' of layer '%s' has shape %s but the layer expects %s", p->name,
                   L->name, sema_type_str(S, t->dtype, t->shape), pattern_str(S, p->type, frame));
        bad = 1;
        break;
      }
    }
  }
  return bad ? -1 : 0;
}

/* The value a layer body returned, checked against the declared return type(s) evaluated
   in the instance's env; poison after an error. */
static Val layer_check_result(Sema *S, AstDecl *L, const RetCtx *ret) {
  Val result = ret->value;
  int nr = L->rets.len;
  if ((nr == 1 && result.kind == VAL_TUPLE) || (nr > 1 && (result.kind != VAL_TUPLE || result.n != nr))) {
    diag_error(ret->loc, "layer '%s' declares %d result%s but returns %d", L->name, nr, nr == 1 ? "" : "s",
               result.kind == VAL_TUPLE ? result.n : 1);
    result = val_poison();
  }
  for (int r = 0; r < nr && result.kind != VAL_POISON; r++) {
    AstType *ty = L->rets.items[r];
    Val rv = nr == 1 ? result : result.items[r];
    if (ty->kind != AST_TYPE_TENSOR) {
      AstParam fake = {.loc = ty->loc, .name = "result", .type = ty};
      if (check_scalar_arg(S, &fake, &rv, ret->loc, L->name) < 0) result = val_poison();
      continue;
    }
    if (rv.kind == VAL_POISON) {
      result = val_poison();
      break;
    }
    if (rv.kind != VAL_TENSOR) {
      diag_error(ret->loc, "layer '%s' must return a tensor %s, not %s", L->name, pattern_str(S, ty, S->env),
                 val_kind_name(rv));
      result = val_poison();
      break;
    }
    IrShape want;
    if (sema_eval_type_shape(S, ty, &want) < 0) {
      result = val_poison();
      break;
    }
    if (rv.t->dtype != dtype_of(ty) || !ir_shape_eq(rv.t->shape, want)) {
      diag_error(ret->loc, "layer '%s' returns %s but declares %s", L->name,
                 sema_type_str(S, rv.t->dtype, rv.t->shape), pattern_str(S, ty, S->env));
      result = val_poison();
    }
  }
  return result;
}

static Val instantiate_layer(Sema *S, AstDecl *L, AstExpr *call) {
  for (int i = 0; i < S->inst_stack.len; i++)
    if (S->inst_stack.data[i] == L) {
      diag_error(call->loc, "layer '%s' calls itself (recursion is not allowed)", L->name);
      return val_poison();
    }
  int np = L->params.len;
  Val *vals = ARENA_ARRAY(S->a, Val, np ? np : 1);
  SrcLoc *locs = ARENA_ARRAY(S->a, SrcLoc, np ? np : 1);
  int *given = ARENA_ARRAY(S->a, int, np ? np : 1);
  int bad = layer_match_args(S, L, call, vals, locs, given) < 0;
  const char *sub = call->scope ? sema_subst_scope(S, call->scope, call->scope_loc) : NULL;
  if (call->scope && !sub) bad = 1;
  if (bad) return val_poison();

  Env *frame = env_new(S, S->globals, 1);
  Env *saved_env = S->env;
  if (layer_bind_params(S, L, call, frame, vals, locs, given) < 0) {
    S->env = saved_env;
    return val_poison();
  }

  const char *saved_scope = S->scope, *saved_origin = S->origin;
  ScanCtx *saved_scan = S->scan;
  S->scope = sema_join_scope(S, S->scope, sub);
  S->origin = L->name;
  S->scan = NULL;
  S->layer_depth++;
  ptrvec_push(&S->inst_stack, L);
  RetCtx ret = {0};
  int errs = diag_error_count();
  exec_stmts(S, &L->body, &ret);
  /* errors inside the body point into the layer (often a std file): say
   * which call instantiated it, innermost first, as a chain of notes */
  if (diag_error_count() > errs) diag_note(call->loc, "in layer '%s', called from here", L->name);
  Val result = ret.value;
  if (!ret.returned) {
    if (L->rets.len > 0 && diag_error_count() == errs)
      diag_error(L->loc, "layer '%s' ends without 'return'", L->name);
    result = L->rets.len > 0 ? val_poison() : (Val){.kind = VAL_NONE};
  } else if (result.kind != VAL_POISON && L->rets.len > 0) {
    result = layer_check_result(S, L, &ret);
  }
  S->inst_stack.len--;
  S->layer_depth--;
  S->scan = saved_scan;
  S->scope = saved_scope;
  S->origin = saved_origin;
  S->env = saved_env;
  return result;
}

/* ---- scan ------------------------------------------------------------------- */
static Val eval_scan(Sema *S, AstExpr *e) {
  if (S->token_only) {
    diag_error(e->loc, "a scan cannot run inside a mixture or skip body (those run token by token)");
    return val_poison();
  }
  IrModule *m = S->m;
  int ns = e->states.len;
  IrShape *shapes = ARENA_ARRAY(S->a, IrShape, ns ? ns : 1);
  IrDType *dts = ARENA_ARRAY(S->a, IrDType, ns ? ns : 1);
  double *inits = ARENA_ARRAY(S->a, double, ns ? ns : 1);
  const char **names = ARENA_ARRAY(S->a, const char *, ns ? ns : 1);
  int bad = 0;
  for (int i = 0; i < ns; i++) {
    AstScanState *st = e->states.items[i];
    names[i] = st->name;
    if (st->type->kind != AST_TYPE_TENSOR) {
      diag_error(st->type->loc, "scan state '%s' must have a tensor type such as f32[H, K]", st->name);
      bad = 1;
      continue;
    }
    if (sema_eval_type_shape(S, st->type, &shapes[i]) < 0) {
      bad = 1;
      continue;
    }
    if (ir_shape_has_T(shapes[i])) {
      diag_error(st->type->loc, "scan state '%s' cannot have the sequence dimension T", st->name);
      bad = 1;
    }
    dts[i] = dtype_of(st->type);
    Val iv = st->init ? sema_eval(S, st->init) : val_int(0);
    if (iv.kind == VAL_POISON) {
      bad = 1;
    } else if (!val_is_number(iv)) {
      diag_error(st->init->loc, "the initial value of state '%s' must be a compile-time number, not %s",
                 st->name, val_kind_name(iv));
      bad = 1;
    } else {
      inits[i] = val_num(iv);
    }
  }
  if (bad) return val_poison();

  IrOp *op = sema_op(S, IR_OP_SCAN, 0, NULL, e->loc);
  IrBlock *rb = ir_op_add_region(m, op);
  int64_t *slots = ARENA_ARRAY(S->a, int64_t, ns ? ns : 1);
  Env *frame = env_new(S, S->env, 1);
  IrValue *targ = ir_block_add_arg(m, rb, IR_I32, ir_shape_scalar());
  env_define(S, frame, e->name, val_tensor(targ), e->loc);
  for (int i = 0; i < ns; i++) {
    slots[i] = sema_state(S, sema_join_scope(S, S->scope, names[i]), dts[i], shapes[i], inits[i]);
    IrValue *a = ir_block_add_arg(m, rb, dts[i], shapes[i]);
    env_define(S, frame, names[i], val_tensor(a), ((AstScanState *)e->states.items[i])->loc);
  }
  ir_op_set_ints(m, op, "states", ns, slots);

  ScanCtx ctx = {.frame = frame, .nstates = ns, .state_names = names, .state_shapes = shapes,
                 .state_dtypes = dts, .parent = S->scan};
  Env *saved_env = S->env;
  IrBlock *saved_block = S->block;
  S->env = frame;
  S->block = rb;
  S->scan = &ctx;
  int errs = diag_error_count();
  exec_stmts(S, &e->body, NULL);
  S->scan = ctx.parent;
  S->env = saved_env;
  S->block = saved_block;

  IrValue **ys = ARENA_ARRAY(S->a, IrValue *, ns + 1);
  for (int i = 0; i < ns; i++) {
    Binding *b = frame_find(frame, names[i]);
    if (b->v.kind != VAL_TENSOR) bad = 1;
    else ys[i] = b->v.t;
  }
  if (!ctx.emit) {
    if (!ctx.emit_loc.line && diag_error_count() == errs)
      diag_error(e->loc, "the scan body never assigns 'emit' (the value stacked into the result)");
    bad = 1;
  } else if (ctx.emit->shape.rank + 1 > IR_MAX_RANK) {
    diag_error(ctx.emit_loc, "'emit' has too many dimensions");
    bad = 1;
  }
  if (bad) {
    /* keep the region well-formed so a later ir_verify of partial IR does not trip */
    return val_poison();
  }
  ys[ns] = ctx.emit;
  ir_block_set_yields(m, rb, ns + 1, ys);
  IrShape rs;
  memset(&rs, 0, sizeof rs);
  rs.rank = ctx.emit->shape.rank + 1;
  rs.dims[0] = IR_DIM_T;
  for (int i = 0; i < ctx.emit->shape.rank; i++) rs.dims[i + 1] = ctx.emit->shape.dims[i];
  return val_tensor(ir_op_add_result(m, op, ctx.emit->dtype, rs));
}

/* ---- mixture -------------------------------------------------------------- */
static int is_tokens_by(IrValue *v, IrDType dt, int64_t *k) {
  if (v->dtype != dt || v->shape.rank != 2 || v->shape.dims[0] != IR_DIM_T || v->shape.dims[1] < 1) return 0;
  *k = v->shape.dims[1];
  return 1;
}

static Val eval_mixture(Sema *S, AstExpr *e) {
  IrModule *m = S->m;
  Val lo = sema_eval(S, e->lo), hi = sema_eval(S, e->hi);
  Val idx = sema_eval(S, e->idx), w = sema_eval(S, e->weights);
  if (lo.kind == VAL_POISON || hi.kind == VAL_POISON || idx.kind == VAL_POISON || w.kind == VAL_POISON)
    return val_poison();
  if (lo.kind != VAL_INT || hi.kind != VAL_INT) {
    AstExpr *badb = lo.kind != VAL_INT ? e->lo : e->hi;
    diag_error(badb->loc, "mixture bounds must be compile-time ints ('%s' is %s)", sema_expr_str(S, badb),
               val_kind_name(lo.kind != VAL_INT ? lo : hi));
    return val_poison();
  }
  if (lo.i != 0) {
    diag_error(e->lo->loc, "a mixture's experts must start at 0 (got %lld)", (long long)lo.i);
    return val_poison();
  }
  if (hi.i < 1) {
    diag_error(e->hi->loc, "a mixture needs at least one expert");
    return val_poison();
  }
  if (hi.i > GAT_LIMIT_EXPERTS) {
    diag_error(e->hi->loc, "a mixture of %lld experts is over the limit of %d experts", (long long)hi.i,
               GAT_LIMIT_EXPERTS);
    return val_poison();
  }
  int64_t k1 = 0, k2 = 0;
  if (idx.kind != VAL_TENSOR || !is_tokens_by(idx.t, IR_I32, &k1)) {
    diag_error(e->idx->loc, "the expert indices of a mixture must be i32[T, K], not %s",
               idx.kind == VAL_TENSOR ? sema_type_str(S, idx.t->dtype, idx.t->shape) : val_kind_name(idx));
    return val_poison();
  }
  if (w.kind == VAL_TENSOR && w.t->dtype == IR_I32) w.t = sema_cast(S, w.t, IR_F32, e->weights->loc);
  if (w.kind != VAL_TENSOR || !is_tokens_by(w.t, IR_F32, &k2) || k1 != k2) {
    diag_error(e->weights->loc, "the weights of a mixture must be f32[T, %lld] like its indices %s, not %s",
               (long long)k1, sema_type_str(S, idx.t->dtype, idx.t->shape),
               w.kind == VAL_TENSOR ? sema_type_str(S, w.t->dtype, w.t->shape) : val_kind_name(w));
    return val_poison();
  }
  IrValue *ins[2] = {idx.t, w.t};
  IrOp *op = sema_op(S, IR_OP_MIXTURE, 2, ins, e->loc);
  ir_op_set_int(m, op, "experts", hi.i);
  Region R = {.op = op, .parent = S->region};
  Env *saved_env = S->env;
  IrBlock *saved_block = S->block;
  IrShape yshape;
  int have_y = 0, bad = 0;
  IrValue **ys = ARENA_ARRAY(S->a, IrValue *, hi.i);
  S->region = &R;
  S->token_only++;
  for (int64_t ex = 0; ex < hi.i && !bad; ex++) {
    IrBlock *rb = ir_op_add_region(m, op);
    for (int i = 0; i < R.outer.len; i++) {
      IrValue *o = R.outer.data[i];
      ir_block_add_arg(m, rb, o->dtype, o->shape);
    }
    ptrvec_push(&R.blocks, rb);
    R.cur = rb;
    S->block = rb;
    S->env = env_new(S, saved_env, 1);
    env_define(S, S->env, e->name, val_int(ex), e->loc);
    RetCtx ret = {0};
    int errs = diag_error_count();
    exec_stmts(S, &e->body, &ret);
    Val y = e->result ? sema_eval(S, e->result) : ret.value;
    SrcLoc yl = e->result ? e->result->loc : ret.loc;
    if (!e->result && !ret.returned) {
      diag_error(e->loc, "a mixture body must end with 'return expr'");
      bad = 1;
    } else if (y.kind == VAL_POISON) {
      bad = 1;
    } else if (y.kind != VAL_TENSOR || y.t->shape.rank < 1 || y.t->shape.dims[0] != IR_DIM_T) {
      diag_error(yl, "a mixture body must return a per-token tensor [T, ...], not %s",
                 y.kind == VAL_TENSOR ? sema_type_str(S, y.t->dtype, y.t->shape) : val_kind_name(y));
      bad = 1;
    } else {
      if (y.t->dtype != IR_F32) y.t = sema_cast(S, y.t, IR_F32, yl);
      if (have_y && !ir_shape_eq(yshape, y.t->shape)) {
        diag_error(yl, "expert %lld returns %s but expert 0 returned %s", (long long)ex,
                   sema_type_str(S, IR_F32, y.t->shape), sema_type_str(S, IR_F32, yshape));
        bad = 1;
      }
      yshape = y.t->shape;
      have_y = 1;
      ys[ex] = y.t;
    }
    if (diag_error_count() > errs) bad = 1;
  }
  S->token_only--;
  S->region = R.parent;
  S->env = saved_env;
  S->block = saved_block;
  ptrvec_free(&R.outer);
  if (bad) {
    ptrvec_free(&R.blocks);
    return val_poison();
  }
  for (int64_t ex = 0; ex < hi.i; ex++) ir_block_set_yields(m, R.blocks.data[ex], 1, &ys[ex]);
  ptrvec_free(&R.blocks);
  return val_tensor(ir_op_add_result(m, op, IR_F32, yshape));
}

/* ---- skip ----------------------------------------------------------------- */
/* `skip when cond`, and `route top(...) by r` (sema_route.c), which is a skip
 * whose condition operand is the router score and whose attributes choose
 * the kept rows. */
static Val eval_skip(Sema *S, AstStmt *st) {
  IrModule *m = S->m;
  const char *name = st->names.items[0];
  int route = st->route_top != NULL;
  AstExpr *ce = route ? st->route_by : st->skip_when;
  const char *what = route ? "route" : "skip when";
  /* `skip when SCORE < tau` (or <=, >, >=) with tau a compile-time number:
     the comparison moves into the skip op (attrs cmp, cut; ir.h IR_OP_SKIP)
     so that tau stays a value the generated code can change at run time. */
  const char *cmp = NULL;
  double cut = 0;
  Val cond;
  if (!route && ce->kind == AST_EXPR_BINARY &&
      (ce->binop == AST_LT || ce->binop == AST_LE || ce->binop == AST_GT || ce->binop == AST_GE)) {
    static const char *const names[] = {"lt", "le", "gt", "ge"};
    static const char *const flipped[] = {"gt", "ge", "lt", "le"};
    int which = ce->binop == AST_LT ? 0 : ce->binop == AST_LE ? 1 : ce->binop == AST_GT ? 2 : 3;
    Val a = sema_eval(S, ce->lhs), b = sema_eval(S, ce->rhs);
    if (a.kind == VAL_TENSOR && val_is_number(b)) {
      cond = a, cmp = names[which], cut = val_num(b);
    } else if (val_is_number(a) && b.kind == VAL_TENSOR) {
      cond = b, cmp = flipped[which], cut = val_num(a);
    } else if (a.kind == VAL_POISON || b.kind == VAL_POISON) {
      cond = val_poison();
    } else {
      cond = sema_binary(S, ce->binop, a, b, ce->loc);
    }
  } else {
    cond = sema_eval(S, ce);
  }
  Binding *pb = env_lookup(S->env, name);
  if (!pb) {
    diag_error(st->loc, "'%s' has no previous value for the %s tokens to keep; "
                        "'%s' needs an existing binding", name, route ? "unrouted" : "skipped", what);
    return val_poison();
  }
  Val prev = sema_lookup_name(S, name, st->loc);
  if (cond.kind == VAL_POISON || prev.kind == VAL_POISON) return val_poison();
  if (prev.kind != VAL_TENSOR || prev.t->shape.rank < 1 || prev.t->shape.dims[0] != IR_DIM_T) {
    diag_error(st->loc, "'%s' needs '%s' to be a per-token tensor [T, ...], not %s", what, name,
               prev.kind == VAL_TENSOR ? sema_type_str(S, prev.t->dtype, prev.t->shape) : val_kind_name(prev));
    return val_poison();
  }
  if (cond.kind == VAL_TENSOR && cond.t->shape.rank == 2 && cond.t->shape.dims[0] == IR_DIM_T &&
      cond.t->shape.dims[1] == 1) {
    int64_t d = IR_DIM_T;
    IrValue *in = cond.t;
    cond = val_tensor(sema_op1(S, IR_OP_RESHAPE, 1, &in, in->dtype, ir_shape(1, &d), ce->loc));
  }
  if (cond.kind != VAL_TENSOR || cond.t->shape.rank != 1 || cond.t->shape.dims[0] != IR_DIM_T) {
    diag_error(ce->loc, "the %s of '%s' must give one value per token (shape [T]), not %s",
               route ? "score" : "condition", what,
               cond.kind == VAL_TENSOR ? sema_type_str(S, cond.t->dtype, cond.t->shape) : val_kind_name(cond));
    return val_poison();
  }
  if ((route || cmp) && cond.t->dtype != IR_F32) cond.t = sema_cast(S, cond.t, IR_F32, ce->loc);
  IrValue *ins[2] = {cond.t, prev.t};
  IrOp *op = sema_op(S, IR_OP_SKIP, 2, ins, st->loc);
  if (route && sema_route_attrs(S, st, op) != 0) return val_poison();
  if (cmp) { /* compared as an f32 tensor with a scalar, as PyTorch does: tau rounded to f32 */
    ir_op_set_str(m, op, "cmp", cmp);
    ir_op_set_float(m, op, "cut", (double)(float)cut);
  }
  IrBlock *rb = ir_op_add_region(m, op);
  Region R = {.op = op, .parent = S->region, .cur = rb};
  ptrvec_push(&R.blocks, rb);
  IrBlock *saved_block = S->block;
  S->region = &R;
  S->block = rb;
  S->token_only++;
  Val y = sema_eval(S, st->value);
  S->token_only--;
  S->region = R.parent;
  S->block = saved_block;
  ptrvec_free(&R.outer);
  ptrvec_free(&R.blocks);
  if (y.kind == VAL_POISON) return val_poison();
  if (y.kind == VAL_TENSOR && y.t->dtype != prev.t->dtype) {
    IrBlock *sb = S->block;
    S->block = rb;
    y.t = sema_cast(S, y.t, prev.t->dtype, st->value->loc);
    S->block = sb;
  }
  if (y.kind != VAL_TENSOR || !ir_shape_eq(y.t->shape, prev.t->shape)) {
    diag_error(st->value->loc, "the value is %s but '%s' (kept for skipped tokens) is %s",
               y.kind == VAL_TENSOR ? sema_type_str(S, y.t->dtype, y.t->shape) : val_kind_name(y), name,
               sema_type_str(S, prev.t->dtype, prev.t->shape));
    return val_poison();
  }
  ir_block_set_yields(m, rb, 1, &y.t);
  /* Attention under a skip/route sees only the tokens that ran the branch,
     as one shorter sequence: their KV cache rows are packed, and a counter
     state (attr rows_state) says how many rows earlier calls appended. */
  if (st->skip_kv) { /* GateSkip's KV copy instead of packed rows (sema_kvcopy.c) */
    if (sema_skip_kv_copy(S, st, op, rb) != 0) return val_poison();
  } else if (sema_block_has_attention(rb)) {
    int64_t one = 1;
    int slot = sema_state(S, sema_join_scope(S, S->scope, "routed_rows"), IR_I32, ir_shape(1, &one), 0);
    ir_op_set_int(m, op, "rows_state", slot);
  }
  return val_tensor(ir_op_add_result(m, op, prev.t->dtype, prev.t->shape));
}

/* ---- size limits ------------------------------------------------------------ */
/* Sizes are known only once `max T` (which may come last) and --max-seq are
 * final, so every tensor is checked here, after the walk: each dimension and
 * the element count at max T stay under the limits (gat_limits.h), which keeps
 * every size the later stages compute exact. The first offender is reported
 * (one oversized tensor usually makes many). Returns -1 after reporting. */
static int sizes_check_value(Sema *S, const IrValue *v, SrcLoc loc) {
  for (int i = 0; i < v->shape.rank; i++)
    if (v->shape.dims[i] > GAT_LIMIT_DIM) {
      diag_error(loc, "tensor %s: dimension %lld is over the limit of %lld",
                 sema_type_str(S, v->dtype, v->shape), (long long)v->shape.dims[i], (long long)GAT_LIMIT_DIM);
      return -1;
    }
  int64_t n = ir_shape_numel(v->shape, S->m->max_T);
  if (n > GAT_LIMIT_NUMEL) {
    diag_error(loc, "tensor %s has %lld elements at max T = %lld, over the limit of 2^40 per tensor",
               sema_type_str(S, v->dtype, v->shape), (long long)n, (long long)S->m->max_T);
    return -1;
  }
  return 0;
}
static int sizes_check_block(Sema *S, const IrBlock *b) {
  SrcLoc loc0 = b->parent ? b->parent->loc : (SrcLoc){0};
  for (int i = 0; i < b->nargs; i++)
    if (sizes_check_value(S, b->args[i], loc0) < 0) return -1;
  for (int i = 0; i < b->ops.len; i++) {
    const IrOp *op = b->ops.data[i];
    for (int r = 0; r < op->nout; r++)
      if (sizes_check_value(S, op->out[r], op->loc) < 0) return -1;
    for (int r = 0; r < op->nregions; r++)
      if (sizes_check_block(S, op->regions[r]) < 0) return -1;
  }
  return 0;
}

/* ---- program and model ----------------------------------------------------- */
static IrModule *lower_model(Sema *S, AstDecl *model, const FrontendOptions *o) {
  int errs0 = diag_error_count();
  S->m = ir_module_new(S->a, model->name, 2048);
  namemap_free(&S->param_names); /* forget anything the file-level consts made */
  S->param_numel = 0;
  namemap_free(&S->state_names);
  S->block = S->m->body;
  S->scope = "";
  S->model_env = env_new(S, S->globals, 1);
  S->env = S->model_env;
  exec_stmts(S, &model->body, NULL);
  for (int i = 0; i < S->outputs.len; i++) {
    OutputDecl *od = S->outputs.data[i];
    if (!od->value) {
      if (!od->assigned_at.line)
        diag_error(od->loc, "output '%s' is never assigned", od->name);
      continue;
    }
    IrOp *op = sema_op(S, IR_OP_OUTPUT, 1, &od->value, od->assigned_at);
    ir_op_set_str(S->m, op, "name", od->name);
    ir_module_add_output(S->m, od->name, od->dtype, od->shape);
  }
  if (o && o->max_seq > 0) S->m->max_T = o->max_seq;
  /* KV caches were sized with the max_T known when they were created; `max T`
   * may come later in the body and --max-seq overrides it: resize now. */
  for (int i = 0; i < S->m->states.len; i++) {
    IrState *st = S->m->states.data[i];
    if (st->shape.rank >= 1 && st->shape.dims[0] == -3) st->shape.dims[0] = S->m->max_T;
  }
  if (diag_error_count() == errs0) sizes_check_block(S, S->m->body);
  if (diag_error_count() > errs0) return NULL;
  sema_stream_warn_module(S);
  return S->m;
}

IrModule *sema_lower_program(Arena *a, AstFile *const *files, int nfiles, const AstFile *main_file,
                             const FrontendOptions *o) {
  Sema sema;
  memset(&sema, 0, sizeof sema);
  Sema *S = &sema;
  S->a = a;
  S->globals = env_new(S, NULL, 1);
  S->env = S->globals;
  S->scope = "";
  /* A scratch module so file-level consts that (wrongly) build tensors have
   * somewhere to go; the real module is created per model. */
  S->m = ir_module_new(a, "<consts>", 2048);
  S->block = S->m->body;
  int errs0 = diag_error_count();
  for (int f = 0; f < nfiles; f++) {
    const AstFile *file = files[f];
    for (int i = 0; i < file->decls.len; i++) {
      AstDecl *d = file->decls.items[i];
      if (d->kind == AST_DECL_LAYER) {
        AstDecl *prev = find_layer(S, d->name);
        if (prev) {
          diag_error(d->loc, "layer '%s' is defined twice", d->name);
          diag_note(prev->loc, "first defined here");
          continue;
        }
        for (int p = 0; p < d->params.len; p++)
          for (int q = 0; q < p; q++)
            if (strcmp(((AstParam *)d->params.items[p])->name, ((AstParam *)d->params.items[q])->name) == 0)
              diag_error(((AstParam *)d->params.items[p])->loc, "parameter '%s' of layer '%s' is declared twice",
                         ((AstParam *)d->params.items[p])->name, d->name);
        ptrvec_push(&S->layers, d);
      } else if (d->kind == AST_DECL_CONST && d->stmt) {
        AstStmt *st = d->stmt;
        for (int k = 0; k < st->names.len; k++) {
          const char *name = st->names.items[k];
          Binding *prev = frame_find(S->globals, name);
          if (prev) {
            diag_error(st->loc, "const '%s' is defined twice", name);
            diag_note(prev->loc, "first defined here");
            continue;
          }
          Val v = sema_eval(S, st->values.items[k]);
          if (v.kind != VAL_POISON && !val_is_scalar(v)) {
            diag_error(st->loc, "const '%s' must be a compile-time scalar, not %s", name, val_kind_name(v));
            v = val_poison();
          }
          env_define(S, S->globals, name, v, st->loc);
        }
      }
    }
  }
  for (int f = 0; f < nfiles; f++)
    for (int i = 0; i < files[f]->decls.len; i++) {
      AstDecl *d = files[f]->decls.items[i];
      if (d->kind != AST_DECL_MODEL) continue;
      for (int g = 0; g <= f; g++)
        for (int j = 0; j < (g == f ? i : files[g]->decls.len); j++) {
          AstDecl *p = files[g]->decls.items[j];
          if (p->kind == AST_DECL_MODEL && strcmp(p->name, d->name) == 0) {
            diag_error(d->loc, "model '%s' is defined twice", d->name);
            diag_note(p->loc, "first defined here");
            g = f + 1; /* one message per duplicate */
            break;
          }
        }
    }
  AstDecl *model = NULL;
  if (o && o->model_name) {
    for (int f = 0; f < nfiles; f++)
      for (int i = 0; i < files[f]->decls.len; i++) {
        AstDecl *d = files[f]->decls.items[i];
        if (d->kind == AST_DECL_MODEL && strcmp(d->name, o->model_name) == 0) model = d;
      }
    if (!model) {
      diag_plain_error("no model named '%s' in %s", o->model_name, main_file->path);
      ptrvec_free(&S->layers);
      namemap_free(&S->param_names);
      namemap_free(&S->state_names);
      return NULL;
    }
  } else {
    for (int i = 0; i < main_file->decls.len; i++) {
      AstDecl *d = main_file->decls.items[i];
      if (d->kind == AST_DECL_MODEL) model = d;
    }
    if (!model) {
      SrcLoc top = {main_file->file_id, 1, 1};
      if (top.file > 0)
        diag_error(top, "no model in this file (write `model NAME { ... }`, or import this file from one)");
      else
        diag_plain_error("%s defines no model", main_file->path);
      ptrvec_free(&S->layers);
      namemap_free(&S->param_names);
      namemap_free(&S->state_names);
      return NULL;
    }
  }
  IrModule *m = diag_error_count() > errs0 ? NULL : lower_model(S, model, o);
  ptrvec_free(&S->layers);
  ptrvec_free(&S->inst_stack);
  ptrvec_free(&S->outputs);
  ptrvec_free(&S->stream_warned);
  namemap_free(&S->param_names);
  namemap_free(&S->state_names);
  return diag_error_count() > errs0 ? NULL : m;
}
