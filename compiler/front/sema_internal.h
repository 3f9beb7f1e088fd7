/* sema_internal.h — what the files of the elaborating walk share: values
 * (compile-time scalars or IR tensors), environments, the walk's state, and
 * the entry points of its parts: sema.c (statements, layers, models, scan,
 * mixture, skip), sema_builtins.c (builtin calls and elementwise emission),
 * sema_index.c (index notation). Nothing outside sema*.c includes this. */
#ifndef GATTNC_SEMA_INTERNAL_H
#define GATTNC_SEMA_INTERNAL_H

#include "ast.h"
#include "frontend.h"
#include "ir.h"

typedef enum ValKind {
  VAL_POISON, /* an error was already reported: suppress follow-on errors */
  VAL_NONE,   /* "no value" (unset optional argument) */
  VAL_INT,
  VAL_FLOAT,
  VAL_BOOL,
  VAL_STR,
  VAL_TENSOR,
  VAL_TUPLE
} ValKind;

typedef struct Val {
  ValKind kind;
  int64_t i;       /* INT, BOOL */
  double f;        /* FLOAT */
  const char *s;   /* STR */
  IrValue *t;      /* TENSOR */
  int n;           /* TUPLE */
  struct Val *items;
} Val;

typedef struct Binding {
  const char *name;
  Val v;
  SrcLoc loc;
  struct Binding *next;
} Binding;

/* One lexical frame. Reads walk to the root; plain assignments rebind the
 * nearest existing binding but never cross a barrier frame (layer bodies,
 * scan/mixture bodies), so a region cannot rebind a value of its parent. */
typedef struct Env {
  Binding *head;
  struct Env *parent;
  int barrier;
} Env;

/* The body of a mixture or skip op being built: per-token tensors from
 * outside become extra operands and region arguments (same order in every
 * region of the op). */
typedef struct Region {
  IrOp *op;
  PtrVec outer;   /* IrValue* captured, in operand order (operand = first_capture + i) */
  PtrVec blocks;  /* IrBlock* regions created so far */
  IrBlock *cur;
  struct Region *parent;
} Region;

typedef struct ScanCtx {
  Env *frame;       /* holds t and the states */
  IrValue *emit;
  SrcLoc emit_loc;
  int nstates;
  const char **state_names;
  IrShape *state_shapes;
  IrDType *state_dtypes;
  struct ScanCtx *parent;
} ScanCtx;

typedef struct OutputDecl {
  const char *name;
  IrDType dtype;
  IrShape shape;
  SrcLoc loc;
  IrValue *value;
  SrcLoc assigned_at;
} OutputDecl;

/* name -> pointer, open addressing; keys are not copied (arena strings). */
typedef struct NameMap {
  const char **keys;
  void **vals;
  int cap, len;
} NameMap;
void *namemap_get(const NameMap *m, const char *key);
void namemap_put(NameMap *m, const char *key, void *val);
void namemap_free(NameMap *m);

typedef struct Sema {
  Arena *a;
  IrModule *m;
  PtrVec layers;      /* AstDecl* (layer declarations of every file) */
  Env *globals;       /* file-level consts */
  IrBlock *block;     /* where ops are appended */
  const char *scope;  /* "" at the root */
  const char *origin; /* innermost layer being instantiated, or NULL */
  PtrVec inst_stack;  /* AstDecl* of the layers being instantiated (recursion check) */
  Region *region;     /* innermost mixture/skip body, or NULL */
  int token_only;     /* > 0 inside a mixture/skip body */
  ScanCtx *scan;      /* innermost scan body, or NULL */
  int layer_depth;    /* 0 in the model body */
  int eval_depth;     /* sema_eval nesting (expressions and layer calls), <= SEMA_MAX_DEPTH */
  int depth_reported; /* the error for exceeding it was given */
  PtrVec outputs;     /* OutputDecl* */
  Env *model_env;
  Env *env;           /* the frame statements and expressions use */
  NameMap param_names; /* IrParam* by full name (big models: avoid quadratic lookups) */
  NameMap state_names; /* (void*)1 for every state name in use */
  PtrVec stream_warned; /* SrcLoc* already warned about (sema_stream.c) */
  int64_t param_numel; /* elements of all parameters so far (gat_limits.h) */
} Sema;

/* ---- sema.c ---- */
Val val_poison(void);
Val val_int(int64_t i);
Val val_float(double f);
Val val_bool(int b);
Val val_str(const char *s);
Val val_tensor(IrValue *t);
int val_is_scalar(Val v);
int val_is_number(Val v);
double val_num(Val v);
const char *val_kind_name(Val v);
const char *sema_type_str(Sema *S, IrDType dt, IrShape s); /* arena string "f32[T, 4]" */
char *sema_expr_str(Sema *S, const AstExpr *e);            /* source-like text of an expression */

Env *env_new(Sema *S, Env *parent, int barrier);
void env_define(Sema *S, Env *e, const char *name, Val v, SrcLoc loc);
Binding *env_lookup(Env *e, const char *name);

/* How deep expressions and layer calls may nest (docs/language.md, "Nesting
 * depth"): every later walk over the program recurses at most this deep. */
#define SEMA_MAX_DEPTH 10000
Val sema_eval(Sema *S, AstExpr *e);
/* Evaluates a name the way an expression does (mapping captured tensors into
 * the current region); reports undefined names. */
Val sema_lookup_name(Sema *S, const char *name, SrcLoc loc);
/* A dimension: a positive int or T (IR_DIM_T); -2 after an error. */
int64_t sema_eval_dim(Sema *S, AstExpr *e);
int sema_eval_type_shape(Sema *S, AstType *t, IrShape *out); /* 0 ok, -1 error reported */
/* Makes an outer tensor usable in the current block (mixture/skip capture). */
IrValue *sema_use(Sema *S, IrValue *v);
void sema_undefined(Sema *S, const char *name, SrcLoc loc);
const char *sema_join_scope(Sema *S, const char *a, const char *b);
const char *sema_subst_scope(Sema *S, const char *raw, SrcLoc loc); /* NULL on error */
const char *sema_subst_param_name(Sema *S, const char *raw, SrcLoc loc); /* the same for `param w{k}` */

/* ---- emission helpers (sema_builtins.c) ---- */
IrOp *sema_op(Sema *S, IrOpKind kind, int nin, IrValue *const *in, SrcLoc loc);
IrValue *sema_op1(Sema *S, IrOpKind kind, int nin, IrValue *const *in, IrDType dt, IrShape shape,
                  SrcLoc loc);
IrValue *sema_const(Sema *S, double v, IrDType dt, SrcLoc loc); /* 0-d constant */
IrValue *sema_cast(Sema *S, IrValue *v, IrDType dt, SrcLoc loc);
IrValue *sema_param(Sema *S, const char *full_name, IrDType dt, IrShape shape, IrInit init,
                    SrcLoc loc); /* NULL after a duplicate error */
int sema_state(Sema *S, const char *name, IrDType dt, IrShape shape, double init); /* unique name; slot */
int sema_broadcast(IrShape a, IrShape b, IrShape *out);
Val sema_binary(Sema *S, AstBinOp op, Val a, Val b, SrcLoc loc);
Val sema_unary_fn(Sema *S, IrFn fn, Val a, SrcLoc loc, const char *what);
Val sema_call_builtin(Sema *S, AstExpr *call, int *found);
Val sema_reshape(Sema *S, Val x, AstExpr *as);
Val sema_slice(Sema *S, AstExpr *e);
int sema_fold_fn(IrFn fn, double a, double b, double *out);
int sema_fn_of_name(const char *name, int *arity); /* elementwise builtin -> IrFn, or -1 */

/* ---- sema_route.c ---- */
/* Sets the router attributes (capacity or top_k, threshold) of the skip op
 * that `st` (an assignment with `route top(...) by r`) lowers to. 0, or -1
 * after reporting an error. */
int sema_route_attrs(Sema *S, AstStmt *st, IrOp *op);
/* Does b (or a region in it) hold an attention op? */
int sema_block_has_attention(const IrBlock *b);
/* `skip when cond, kv: previous`: sets the skip op's attr kv_copy (sema_kvcopy.c); -1 after an error */
int sema_skip_kv_copy(Sema *S, AstStmt *st, IrOp *op, IrBlock *rb);
/* May attention be used here? Under one skip/route (not a mixture, not nested). */
int sema_attention_allowed(Sema *S);

/* ---- sema_index.c ---- */
/* Lowers `target[vars] = value`; returns the new tensor (or poison). `want`
 * (may be NULL) is a required output shape (scan states). */
Val sema_index_assign(Sema *S, AstStmt *st, const IrShape *want);

/* ---- sema_stream.c: the streaming contract (docs/language.md) ---- */
/* The innermost scan whose step is being built (also from a layer called in
 * the step), or NULL. */
IrOp *sema_stream_scan(Sema *S);
int sema_stream_is_scan_var(const IrValue *v);
/* v has a T axis and comes from outside the step being built. */
int sema_stream_is_outer_T(Sema *S, const IrValue *v);
/* Called for every op sema creates: inside a step, reports reads of outer T
 * axes, nested scans, positions() and values of the scan variable. */
void sema_stream_check_op(Sema *S, IrOp *op);
/* `emit = x` with an outer T tensor x; -1 after reporting. */
int sema_stream_check_emit(Sema *S, IrValue *v, SrcLoc loc);
/* A load of the T axis of t in index notation: 1 outside any step (the caller
 * applies its own rule), 0 when it reads exactly the step's token (dyn_only:
 * the index is the scalar `dyn` alone), -1 after reporting. range_var names
 * an index variable ranging over T used as the index, ixtext the index text. */
int sema_stream_check_load(Sema *S, const AstExpr *ie, const char *ixtext, const IrValue *t, const char *name,
                           const IrValue *dyn, int dyn_only, const char *range_var);
/* A scalar tensor used as a number in index notation; -1 after reporting the scan variable. */
int sema_stream_check_value(Sema *S, const IrValue *v, SrcLoc loc);
/* What sema_eval returns: poison for a step-local value with a T axis (which
 * only a reported violation makes; reports one if none was). */
Val sema_stream_filter(Sema *S, const AstExpr *e, Val v, int errs_before);
/* A warning about a sequence-level construct, once per source location. */
void sema_stream_warn(Sema *S, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Warns about the sequence-level ops of the finished model outside scans. */
void sema_stream_warn_module(Sema *S);

#endif
