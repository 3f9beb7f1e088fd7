/* ir.h — the graph IR: what a .gat model means, after sema and lowering.
 *
 * A module is a list of parameters (weights, with an init rule and a PyTorch
 * shape), inputs, outputs, persistent state slots (scan state, short-conv
 * tails, KV caches) and one top-level block of ops in SSA form. Values are
 * tensors with a dtype and a static shape in which one symbolic dimension, T
 * (IR_DIM_T), stands for the sequence length of the current call, bounded by
 * module->max_T. Inside the region of a mixture or skip op, T stands for the
 * number of rows (tokens) routed into that region.
 *
 * Ops may own regions (IrBlock): scan (one step of a recurrence), mixture
 * (one region per expert), skip (the branch computed for kept tokens).
 * Regions see values of enclosing blocks directly (implicit capture), except
 * per-token tensors of mixture/skip, which are passed as explicit operands
 * and arrive gathered as region arguments.
 *
 * The interpreter (interp.c) defines the semantics; every backend must match
 * it. ir_print/ir_parse give a deterministic text form that round-trips;
 * ir_verify checks the invariants and runs after every pass. */
#ifndef GATTNC_IR_H
#define GATTNC_IR_H

#include <stdint.h>
#include <stdio.h>

#include "diag.h"
#include "util.h"

#define IR_MAX_RANK 8
#define IR_DIM_T (-1) /* the symbolic sequence dimension */

typedef enum IrDType { IR_F32, IR_I32 } IrDType;

typedef struct IrShape {
  int rank;
  int64_t dims[IR_MAX_RANK]; /* each > 0, or IR_DIM_T */
} IrShape;

/* Scalar functions, shared by elementwise ops and index expressions. */
typedef enum IrFn {
  /* unary */
  IR_FN_NEG, IR_FN_EXP, IR_FN_LOG, IR_FN_SQRT, IR_FN_RSQRT, IR_FN_ABS, IR_FN_TANH,
  IR_FN_SIGMOID, IR_FN_LOGSIGMOID, IR_FN_SILU, IR_FN_RELU, IR_FN_GELU_ERF,
  IR_FN_GELU_TANH, IR_FN_SOFTPLUS, IR_FN_NOT, /* 1 if x == 0 else 0 */
  /* binary */
  IR_FN_ADD, IR_FN_SUB, IR_FN_MUL, IR_FN_DIV, IR_FN_POW, IR_FN_MAX, IR_FN_MIN,
  IR_FN_MOD, /* integer remainder / fmod */
  IR_FN_LT, IR_FN_LE, IR_FN_GT, IR_FN_GE, IR_FN_EQ, IR_FN_NE, /* 1 or 0, in the operand dtype */
  IR_FN_AND, IR_FN_OR,
  IR_FN_COUNT_
} IrFn;
int ir_fn_arity(IrFn f);
const char *ir_fn_name(IrFn f); /* "exp", "add", ... (the text form) */
int ir_fn_from_name(const char *s); /* -1 if unknown */

typedef enum IrReduceKind { IR_RED_SUM, IR_RED_MAX, IR_RED_MIN, IR_RED_MEAN } IrReduceKind;

typedef enum IrInitKind {
  IR_INIT_NORMAL,       /* a = mean, b = std */
  IR_INIT_UNIFORM,      /* U(a, b) */
  IR_INIT_CONST,        /* every element = a (zeros, ones) */
  IR_INIT_LINEAR,       /* PyTorch nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = last dim
                           (for conv weights [C,1,W] the product of the dims after the first) */
  IR_INIT_LOG_UNIFORM,  /* log(U(a, b)) — e.g. GDN's A_log */
  IR_INIT_DT_BIAS,      /* inverse softplus of dt ~ exp(U(log a, log b)), e.g. GDN's dt_bias */
  IR_INIT_EYE,          /* identity-like: 1 where the last two indices are equal, 0 elsewhere */
  IR_INIT_ONE_HOT_LAST  /* 1 where the last index is the last of its dim, 0 elsewhere (DenseFormer's
                           alphas: all weight on the newest block output) */
} IrInitKind;

typedef struct IrInit {
  IrInitKind kind;
  double a, b;
} IrInit;

typedef struct IrParam {
  const char *name; /* fully scoped, e.g. "model.layers.3.attn.q_proj.weight" */
  IrDType dtype;
  IrShape shape;    /* static, PyTorch layout */
  IrInit init;
  SrcLoc loc;
} IrParam;

typedef struct IrIO { /* an input or output of the model */
  const char *name;
  IrDType dtype;
  IrShape shape; /* may contain IR_DIM_T */
} IrIO;

typedef struct IrState { /* persists across forward calls; set to `init` by reset */
  const char *name;      /* scoped name for dumps, e.g. "model.layers.0.attn.scan.S" */
  IrDType dtype;
  IrShape shape;         /* static; a KV cache is [max_T, Hkv, d] */
  double init;
} IrState;

typedef struct IrValue IrValue;
typedef struct IrOp IrOp;
typedef struct IrBlock IrBlock;
typedef struct IrExpr IrExpr;

struct IrValue {
  int id;           /* unique in the module; printed as %id */
  IrDType dtype;
  IrShape shape;
  IrOp *def;        /* NULL for a block argument */
  IrBlock *block;   /* the block that defines it (arg or op result) */
  int index;        /* result index in def, or argument index in block */
};

/* ---- attributes: a small ordered key/value list, printed in order ------- */
typedef enum IrAttrKind { IR_ATTR_INT, IR_ATTR_FLOAT, IR_ATTR_STR, IR_ATTR_INTS } IrAttrKind;
typedef struct IrAttr {
  const char *key;
  IrAttrKind kind;
  int64_t i;
  double f;
  const char *s;
  int n;          /* INTS: count */
  int64_t *ints;  /* INTS: values */
} IrAttr;

/* ---- index expressions (the body of IR_OP_INDEX) ------------------------
 * An index op computes out[v0, .., v{r-1}] = body for every point of its
 * output; v0..v{r-1} are the output loop variables (extent = output dims),
 * reductions introduce further variables. Loads address an operand of the op
 * with one affine index per operand dimension:
 *   idx = const + sum_k coef_k * var_k + dyn_coef * (scalar operand `dyn`)
 * where `dyn` (if >= 0) is the op operand number of a rank-0 i32 value (e.g.
 * the step index of an enclosing scan). Every load must stay in bounds for
 * every point of the iteration space; ir_verify checks it statically. */
#define IR_MAX_AFFINE 4
typedef struct IrAffine {
  int64_t c;
  int nterms;
  int var[IR_MAX_AFFINE];
  int64_t coef[IR_MAX_AFFINE];
  int dyn;          /* operand number of a scalar i32 operand, or -1 */
  int64_t dyn_coef;
} IrAffine;

typedef enum IrExprKind {
  IR_EX_CONST,  /* fval */
  IR_EX_LOAD,   /* operand number `operand`, one IrAffine per operand dim */
  IR_EX_VAR,    /* the value of loop variable `var` as a number */
  IR_EX_UNARY,  /* fn, a */
  IR_EX_BINARY, /* fn, a, b */
  IR_EX_SELECT, /* a != 0 ? b : c */
  IR_EX_REDUCE  /* reduce kind over variable `var` with extent `extent` (may be IR_DIM_T), body a */
} IrExprKind;

struct IrExpr {
  IrExprKind kind;
  double fval;
  int operand;
  int nidx;
  IrAffine *idx;
  int var;
  int64_t extent;
  IrFn fn;
  IrReduceKind reduce;
  IrExpr *a, *b, *c;
};

/* ---- ops ---------------------------------------------------------------- */
typedef enum IrOpKind {
  /* leaves */
  IR_OP_INPUT,     /* attr name; result = the input tensor */
  IR_OP_PARAM,     /* attr name (a module param); result = the weight tensor */
  IR_OP_CONST,     /* attr value (float); result = tensor of that shape filled with it */
  IR_OP_POSITION,  /* result i32[T]: absolute positions pos0 + t (pos0 = tokens before this call) */
  IR_OP_OUTPUT,    /* attr name; operand 0 = the value returned under that name; no result */
  /* elementwise (numpy broadcasting between operands) */
  IR_OP_UNARY,     /* attr fn */
  IR_OP_BINARY,    /* attr fn */
  IR_OP_SELECT,    /* (cond, a, b): cond != 0 ? a : b, broadcast */
  IR_OP_CAST,      /* to the result dtype (f32->i32 truncates toward zero) */
  /* contractions */
  IR_OP_MATMUL,    /* a[..., M, K] x b[..., K, N] -> [..., M, N]; batch dims broadcast */
  IR_OP_LINEAR,    /* x[..., IN], w[OUT, IN] (, b[OUT]) -> x w^T + b : [..., OUT] */
  IR_OP_INDEX,     /* generic index-notation op: expr (see above) */
  /* reductions and normalisations */
  /* Axis attributes (reduce, softmax, concat, split, slice) may be negative:
     -1 is the last axis, as in PyTorch. */
  IR_OP_REDUCE,    /* attr kind (sum|max|min|mean), attr axes (ints); axes removed */
  IR_OP_SOFTMAX,   /* attr axis */
  IR_OP_RMS_NORM,  /* x (, w) over the last axis: x / sqrt(mean(x^2) + eps) * w; attrs eps, plus_one (w -> 1+w) */
  IR_OP_LAYER_NORM,/* x (, w (, b)) over the last axis; attr eps */
  IR_OP_L2_NORM,   /* x over the last axis: x / sqrt(sum(x^2) + eps); attr eps */
  /* data movement */
  IR_OP_GATHER,    /* (table[V, ...], idx i32[...]) -> idx.shape ++ table.shape[1:]; idx out of range = runtime error */
  IR_OP_TOPK,      /* x[..., N] -> (values f32[..., k], indices i32[..., k]) over the last axis, descending,
                      ties to the lower index; attr k */
  IR_OP_RESHAPE,   /* to the result shape (same element count; T maps to T) */
  IR_OP_TRANSPOSE, /* attr perm (ints) */
  IR_OP_CONCAT,    /* attr axis; any number of operands */
  IR_OP_SPLIT,     /* attr axis, attr sizes (ints); one result per size */
  IR_OP_SLICE,     /* attr axis, start, stop: x[..., start:stop, ...] */
  /* sequence ops with persistent state */
  IR_OP_ROPE,      /* x[T, ..., D] rotated at positions pos0 + t; attrs base (float, default 10000), dims (rotated
                      leading features, even, <= D), rotate_half layout (non-interleaved). Inside a
                      mixture/skip region each row rotates at the absolute position of the token it
                      was gathered from (also in a packed rows_state region, where attention positions
                      are packed) */
  IR_OP_CONV1D,    /* causal depthwise conv: x[T, C], w[C, 1, W] (, b[C]); attr act ("none"|"silu"),
                      attr state (slot of the [W-1, C] tail of previous inputs) */
  IR_OP_ATTENTION, /* q[T, H, dk], k[T, Hkv, dk], v[T, Hkv, dv] (, qb[T, H], kb[T, H]) -> [T, H, dv].
                      Softmax over cached keys j <= i (absolute positions) of q.k*scale (+ qb[i] + kb[j]
                      when the bias operands are present); attrs scale, causal (always 1 for now),
                      window (0 = unlimited: key j visible iff i - window < j), state_k, state_v
                      (and state_kb when biased): KV cache slots [max_T, Hkv, d] (and [max_T, H]).
                      Query head h uses KV head h / (H / Hkv).
                      Optional relative-position bias: attr relbias = the index of an extra last
                      operand rb f32[R] (R = 2M - 1 odd, no T); the logit of (i, j) gets
                      rb[clamp(M - 1 + j - i, 0, R - 1)] (a Toeplitz term, Mega's rel_pos_bias).
                      Test for it with ir_op_attr(op, "relbias"); it needs no cache slot. */
  IR_OP_SCAN,      /* region 0: args (t: i32[], s_0 .. s_{n-1}) ; yields (s_0' .. s_{n-1}', emit_0 ..).
                      One result per emitted value, stacked over t: [T] ++ emit.shape. attr states (ints): the state
                      slot of each s_i; states start from their slot and are written back at the end. */
  IR_OP_MIXTURE,   /* operands (idx i32[T, K], w f32[T, K], x_1 .. x_n [T, ...]); attr experts = E;
                      E regions, each with args (x_1' .. x_n') of shape [T', ...] (the rows routed to
                      that expert) yielding y [T', ...]. Result [T, ...]: sum_k w[t,k] * y_{idx[t,k]}[t].
                      Experts not chosen by any token are not run. idx out of [0, E) = runtime error. */
  IR_OP_SKIP,      /* operands (cond [T], prev [T, ...], x_1 .. x_n [T, ...]); region 0 with args
                      (x_1' .. x_n') over the kept rows (cond == 0) yielding y. Result: prev[t] where
                      cond[t] != 0, y at the kept rows elsewhere. Skipped rows are not computed.
                      As a router (`route top(...) by r`, Mixture-of-Depths) it has attr capacity = c
                      (float in (0, 1]) or top_k = k (int >= 1), and cond is the score r f32[T]: the kept
                      rows are the n = ceil(c * T - 1e-9) (or min(k, T)) rows with the largest r, ties
                      to the lower row, in row order. With attr threshold = tau (float in [0, 1]) a call
                      with T == 1 keeps its row iff sigmoid(r) >= tau instead (causal decode).
                      attr rows_state (optional, an i32[1] state slot) counts the rows the region ran
                      on in earlier calls (base); the kept rows then have positions base + 0 .. base +
                      n - 1 inside the region (packed: attention there sees only kept tokens, its KV
                      cache rows are packed), and the slot grows by n after each call.
                      A threshold skip (`skip when s < tau`, tau a compile-time number) has attrs
                      cmp = "lt" | "le" | "gt" | "ge" and cut = tau (float, already rounded to f32):
                      cond is then the score s f32[T] and row t is skipped iff s[t] cmp cut
                      (compared in double). cut, capacity, top_k and threshold are the values the
                      generated code can change at run time (NAME_set_skip_threshold /
                      NAME_set_route_capacity, `gattnc run --set`; docs/layers.md).
                      attr kv_copy (ints [src_0, dst_0, src_1, dst_1, ...], state slots of equal
                      shape [max_T, ...]; `skip when c, kv: previous`, GateSkip): before the kept
                      rows are chosen, rows pos0 .. pos0 + T - 1 of each src slot are copied to the
                      same rows of its dst slot (marked written); the region's attention (whose
                      caches are the dst slots) then runs at the rows' absolute positions, no
                      rows_state. Only in the model body. */
  IR_OP_COUNT_
} IrOpKind;
const char *ir_op_name(IrOpKind k); /* the text form: "input", "param", ..., "skip" */
int ir_op_from_name(const char *s);

struct IrOp {
  IrOpKind kind;
  int nin;
  IrValue **in;
  int nout;
  IrValue **out;
  int nattr;
  IrAttr *attrs;
  IrExpr *expr;      /* IR_OP_INDEX */
  int nregions;
  IrBlock **regions;
  IrBlock *parent;
  SrcLoc loc;
  const char *origin; /* the .gat layer this op came from (for kernel names), or NULL */
};

struct IrBlock {
  int nargs;
  IrValue **args;
  PtrVec ops;        /* IrOp*, in order */
  int nyield;
  IrValue **yields;  /* region results (unused for the top block) */
  IrOp *parent;      /* owning op, NULL for the module body */
};

typedef struct IrModule {
  Arena *arena;
  const char *name;
  int64_t max_T;
  PtrVec params;  /* IrParam* */
  PtrVec inputs;  /* IrIO* */
  PtrVec outputs; /* IrIO* */
  PtrVec states;  /* IrState* */
  IrBlock *body;
  int next_value_id;
} IrModule;

/* ---- construction (ir.c) ------------------------------------------------ */
IrModule *ir_module_new(Arena *a, const char *name, int64_t max_T);
/* Frees the heap vectors (op lists, module tables) of m; its arena memory stays
 * with the arena. For tests and long-running tools; m is dead afterwards. */
void ir_module_release(IrModule *m);
IrParam *ir_module_add_param(IrModule *m, const char *name, IrDType dt, IrShape shape, IrInit init, SrcLoc loc);
IrParam *ir_module_find_param(const IrModule *m, const char *name);
IrIO *ir_module_add_input(IrModule *m, const char *name, IrDType dt, IrShape shape);
IrIO *ir_module_add_output(IrModule *m, const char *name, IrDType dt, IrShape shape);
int ir_module_add_state(IrModule *m, const char *name, IrDType dt, IrShape shape, double init); /* slot */

IrBlock *ir_block_new(IrModule *m, IrOp *parent);
IrValue *ir_block_add_arg(IrModule *m, IrBlock *b, IrDType dt, IrShape shape);
void ir_block_set_yields(IrModule *m, IrBlock *b, int n, IrValue **vals);

/* Appends a new op at the end of block b. Operands are copied. */
IrOp *ir_op_new(IrModule *m, IrBlock *b, IrOpKind kind, int nin, IrValue *const *in, SrcLoc loc);
IrValue *ir_op_add_result(IrModule *m, IrOp *op, IrDType dt, IrShape shape);
/* Appends an operand (mixture/skip ops discover their captures while their
 * region is being built). Returns the operand number. */
int ir_op_add_operand(IrModule *m, IrOp *op, IrValue *v);
IrBlock *ir_op_add_region(IrModule *m, IrOp *op);
void ir_op_set_int(IrModule *m, IrOp *op, const char *key, int64_t v);
void ir_op_set_float(IrModule *m, IrOp *op, const char *key, double v);
void ir_op_set_str(IrModule *m, IrOp *op, const char *key, const char *v);
void ir_op_set_ints(IrModule *m, IrOp *op, const char *key, int n, const int64_t *v);
const IrAttr *ir_op_attr(const IrOp *op, const char *key); /* NULL if absent */
int64_t ir_op_int(const IrOp *op, const char *key, int64_t deflt);
double ir_op_float(const IrOp *op, const char *key, double deflt);
const char *ir_op_str(const IrOp *op, const char *key, const char *deflt);

/* Index expressions, allocated in the module arena. */
IrExpr *ir_expr_const(IrModule *m, double v);
IrExpr *ir_expr_load(IrModule *m, int operand, int nidx, const IrAffine *idx);
IrExpr *ir_expr_var(IrModule *m, int var);
IrExpr *ir_expr_unary(IrModule *m, IrFn fn, IrExpr *a);
IrExpr *ir_expr_binary(IrModule *m, IrFn fn, IrExpr *a, IrExpr *b);
IrExpr *ir_expr_select(IrModule *m, IrExpr *c, IrExpr *a, IrExpr *b);
IrExpr *ir_expr_reduce(IrModule *m, IrReduceKind k, int var, int64_t extent, IrExpr *body);

/* Shapes */
IrShape ir_shape(int rank, const int64_t *dims);
IrShape ir_shape_scalar(void);
int ir_shape_eq(IrShape a, IrShape b);
int ir_shape_has_T(IrShape s);
int64_t ir_shape_numel(IrShape s, int64_t T); /* T substituted; INT64_MAX if it overflows (gat_limits.h) */
/* "f32[T, 512]" into buf */
void ir_type_str(char *buf, size_t n, IrDType dt, IrShape s);
const char *ir_dtype_name(IrDType dt);

/* ---- text form (ir_print.c, ir_parse.c) --------------------------------- */
void ir_print(FILE *out, const IrModule *m);
char *ir_print_to_string(const IrModule *m); /* heap string; caller frees */
/* Parses the text form; errors go through diag with locations in `display_name`.
 * Returns NULL on error. */
IrModule *ir_parse(Arena *a, const char *display_name, const char *text);
/* One op's line (no regions: " { ... }" stands for them), values numbered as
 * in ir_print of the whole module; for messages. Heap string; caller frees. */
char *ir_op_to_string(const IrModule *m, const IrOp *op);
/* An index expression in its S-expression form; heap string, caller frees. */
char *ir_expr_to_string(const IrExpr *e);
/* Parses an index expression's S-expression form (as in the `expr` attribute)
 * into m's arena; lowering may build index ops from text this way. Returns
 * NULL on error and writes the message, prefixed with the 0-based character
 * offset ("at 12: ..."), into err; *err_offset (may be NULL) gets the offset. */
IrExpr *ir_expr_parse(IrModule *m, const char *text, char *err, size_t errlen, int *err_offset);

/* ---- verification (ir_verify.c) ----------------------------------------- */
/* Checks SSA dominance, operand/result counts, dtypes and shapes of every op,
 * attribute presence, region signatures, state slot shapes and in-bounds
 * affine loads. Returns 0 if valid; otherwise writes the first problem into
 * err (with the op's text form) and returns -1. */
int ir_verify(const IrModule *m, char *err, size_t errlen);

#endif
