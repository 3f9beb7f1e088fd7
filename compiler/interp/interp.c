/* interp.c — the reference interpreter of the graph IR: it DEFINES what a
 * module means, and every backend is tested against it (docs/internals.md,
 * "Interpreter", lists the decisions taken where ir.h leaves room).
 *
 * Values live as double arrays indexed by value id; every stored element is
 * already rounded to its dtype (f32 through (float), i32 by truncation), so
 * results follow f32 semantics while reductions, contractions and the inner
 * arithmetic of fused ops (norms, softmax, attention, conv) run in double.
 * Ops are evaluated one by one in program order; ops with regions (scan,
 * mixture, skip) evaluate their region block recursively with their own
 * sequence length T and per-row absolute positions (the `IcCtx`).
 *
 * The session holds the persistent state: one buffer per IrState slot, a
 * per-slot "row written" mask for KV caches, and pos0, the number of tokens
 * seen since the last reset. Errors are returned with a message naming the op
 * and its source location; nothing here aborts on bad user input. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"

#define IC_MAX_VARS 64

typedef struct IVal {
  int rank;
  int64_t dims[IR_MAX_RANK];
  int64_t n;
  double *d;  /* NULL until computed */
  int owned;  /* 0: borrowed from the session's weights */
} IVal;

/* Per block evaluation: its sequence length and the absolute position of
 * each row (pos0 + t at the top; the routed rows' positions in regions). */
/* Execution counter (GAT_INTERP_COUNT=path): per mixture op, the (token,
 * expert) rows each expert region ran on; per skip op, the rows its region ran
 * on. Tests use it to prove that unchosen experts and skipped tokens do no
 * work, which equal outputs alone cannot show. Counts accumulate over the
 * session's calls and are rewritten to the file after every call. */
typedef struct IcCount {
  const IrOp *op;
  int64_t *rows;   /* per expert (mixture) or [0] (skip) */
  int64_t *calls;  /* times each region ran (same indexing), as a --count build counts them */
  int64_t tokens;  /* rows offered to the op (sum of its T over calls) */
} IcCount;

typedef struct IcCtx {
  int64_t T;
  const int64_t *pos;
  /* the rows' token positions in the whole sequence (pos0 + t of the top-level
     row each came from): what rope rotates by. Equal to pos except inside a
     packed skip region (rows_state), where pos is the packed KV-cache row. */
  const int64_t *apos;
} IcCtx;

struct InterpSession {
  const IrModule *m;
  double **params;    /* per module param, in module order */
  double **states;    /* per state slot */
  int64_t *state_n;
  unsigned char **written; /* per slot, rows written into a KV cache (lazily allocated) */
  int64_t pos0;
  char *count_path;   /* GAT_INTERP_COUNT, or NULL: no counting */
  IcCount *counts;
  int ncounts;
  /* per forward call */
  IVal *vals;
  int nvals;
  const TensorSet *inputs;
  TensorSet *outputs;
  char *err;
  size_t errlen;
};

/* ---- errors --------------------------------------------------------------- */

static int ic_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ic_fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* "interp: gather %2 at ex.gat:9:7: <message>" */
static int ic_op_fail(InterpSession *s, const IrOp *op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ic_op_fail(InterpSession *s, const IrOp *op, const char *fmt, ...) {
  char where[256] = "";
  int used = snprintf(where, sizeof where, "%s", ir_op_name(op->kind));
  if (op->nout > 0 && used < (int)sizeof where)
    used += snprintf(where + used, sizeof where - (size_t)used, " %%%d", op->out[0]->id);
  if (op->loc.line > 0 && used < (int)sizeof where) {
    const char *file = op->loc.file > 0 ? diag_file_name(op->loc.file) : NULL;
    snprintf(where + used, sizeof where - (size_t)used, " at %s:%d:%d", file ? file : "<unknown>", op->loc.line,
             op->loc.col);
  }
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return ic_fail(s->err, s->errlen, "interp: %s: %s", where, msg);
}

/* ---- scalar semantics ------------------------------------------------------ */

/* Rounds a double to what a value of dtype dt can hold. f32 -> i32 truncates
 * toward zero, saturates at the i32 range and maps NaN to 0. */
static double ic_round(IrDType dt, double x) {
  if (dt == IR_F32) return (double)(float)x;
  if (x != x) return 0.0;
  if (x >= 2147483647.0) return 2147483647.0;
  if (x <= -2147483648.0) return -2147483648.0;
  return trunc(x);
}

static double ic_sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}

static double ic_fn1(IrFn f, double x) {
  switch (f) {
    case IR_FN_NEG: return -x;
    case IR_FN_EXP: return exp(x);
    case IR_FN_LOG: return log(x);
    case IR_FN_SQRT: return sqrt(x);
    case IR_FN_RSQRT: return 1.0 / sqrt(x);
    case IR_FN_ABS: return fabs(x);
    case IR_FN_TANH: return tanh(x);
    case IR_FN_SIGMOID: return ic_sigmoid(x);
    case IR_FN_LOGSIGMOID: return (x < 0 ? x : 0.0) - log1p(exp(-fabs(x)));
    case IR_FN_SILU: return x * ic_sigmoid(x);
    case IR_FN_RELU: return x > 0 ? x : (x != x ? x : 0.0);
    case IR_FN_GELU_ERF: return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440));
    case IR_FN_GELU_TANH: {
      double inner = 0.79788456080286535588 * (x + 0.044715 * x * x * x); /* sqrt(2/pi) */
      return 0.5 * x * (1.0 + tanh(inner));
    }
    case IR_FN_SOFTPLUS: return x > 20.0 ? x : log1p(exp(x)); /* PyTorch's threshold 20 */
    case IR_FN_NOT: return x == 0 ? 1.0 : 0.0;
    default: gat_unreachable();
  }
}

static double ic_fn2(IrFn f, double a, double b) {
  switch (f) {
    case IR_FN_ADD: return a + b;
    case IR_FN_SUB: return a - b;
    case IR_FN_MUL: return a * b;
    case IR_FN_DIV: return a / b;
    case IR_FN_POW: return pow(a, b);
    case IR_FN_MAX: return (a != a || b != b) ? NAN : (a > b ? a : b);
    case IR_FN_MIN: return (a != a || b != b) ? NAN : (a < b ? a : b);
    case IR_FN_MOD: return fmod(a, b);
    case IR_FN_LT: return a < b;
    case IR_FN_LE: return a <= b;
    case IR_FN_GT: return a > b;
    case IR_FN_GE: return a >= b;
    case IR_FN_EQ: return a == b;
    case IR_FN_NE: return a != b;
    case IR_FN_AND: return a != 0 && b != 0;
    case IR_FN_OR: return a != 0 || b != 0;
    default: gat_unreachable();
  }
}

/* ---- values ----------------------------------------------------------------- */

static void ic_resolve(IrShape sh, int64_t T, IVal *v) {
  v->rank = sh.rank;
  v->n = 1;
  for (int i = 0; i < sh.rank; i++) {
    v->dims[i] = sh.dims[i] == IR_DIM_T ? T : sh.dims[i];
    v->n *= v->dims[i];
  }
}

static void ic_release(IVal *v) {
  if (v->owned) free(v->d);
  v->d = NULL;
  v->owned = 0;
}

/* Allocates (zeroed) storage for value v with its declared shape at ctx T. */
static IVal *ic_def(InterpSession *s, const IrValue *v, const IcCtx *c) {
  GAT_ASSERT(v->id >= 0 && v->id < s->nvals);
  IVal *iv = &s->vals[v->id];
  ic_release(iv);
  ic_resolve(v->shape, c->T, iv);
  iv->d = xcalloc((size_t)(iv->n ? iv->n : 1), sizeof(double));
  iv->owned = 1;
  return iv;
}

static IVal *ic_get(InterpSession *s, const IrValue *v) {
  GAT_ASSERT(v->id >= 0 && v->id < s->nvals);
  return &s->vals[v->id];
}

/* Fetches all operands of op; fails if one was never computed (invalid IR). */
static int ic_operands(InterpSession *s, const IrOp *op, IVal **in, int max) {
  if (op->nin > max) return ic_op_fail(s, op, "too many operands (%d)", op->nin);
  for (int i = 0; i < op->nin; i++) {
    in[i] = ic_get(s, op->in[i]);
    if (!in[i]->d) return ic_op_fail(s, op, "operand %d (%%%d) used before it is defined", i, op->in[i]->id);
  }
  return 0;
}

static int64_t ic_prod(const int64_t *d, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; i++) p *= d[i];
  return p;
}

static const char *ic_dims_str(char *buf, size_t n, const IVal *v) {
  size_t used = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < v->rank && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)v->dims[i]);
  if (used < n) snprintf(buf + used, n - used, "]");
  return buf;
}

static int ic_norm_axis(int64_t axis, int rank) { return (int)(axis < 0 ? axis + rank : axis); }

/* ---- elementwise with numpy broadcasting ------------------------------------ */

typedef struct IcBcast {
  int rank;
  int64_t dims[IR_MAX_RANK];
  int nops;
  int64_t strides[4][IR_MAX_RANK];
} IcBcast;

/* Sets up strides for operands broadcast to out; -1 if incompatible. */
static int ic_bcast_setup(IcBcast *b, const IVal *out, int nops, IVal *const *ops) {
  b->rank = out->rank;
  b->nops = nops;
  memcpy(b->dims, out->dims, sizeof b->dims);
  for (int k = 0; k < nops; k++) {
    const IVal *v = ops[k];
    if (v->rank > out->rank) return -1;
    int64_t st = 1;
    for (int i = out->rank - 1; i >= 0; i--) {
      int j = i - (out->rank - v->rank);
      if (j < 0) {
        b->strides[k][i] = 0;
        continue;
      }
      if (v->dims[j] == out->dims[i]) b->strides[k][i] = st;
      else if (v->dims[j] == 1) b->strides[k][i] = 0;
      else return -1;
      st *= v->dims[j];
    }
  }
  return 0;
}

/* Advances the output multi-index idx by one element, keeping each
 * operand's offset in off[] in step. */
static void ic_bcast_next(const IcBcast *b, int64_t *idx, int64_t *off) {
  for (int d = b->rank - 1; d >= 0; d--) {
    for (int k = 0; k < b->nops; k++) off[k] += b->strides[k][d];
    if (++idx[d] < b->dims[d]) return;
    for (int k = 0; k < b->nops; k++) off[k] -= b->strides[k][d] * b->dims[d];
    idx[d] = 0;
  }
}

static int ic_elementwise(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[4];
  if (ic_operands(s, op, in, 4) < 0) return -1;
  int want = op->kind == IR_OP_SELECT ? 3 : op->kind == IR_OP_BINARY ? 2 : 1;
  if (op->nin != want || op->nout != 1) return ic_op_fail(s, op, "expects %d operands and 1 result", want);
  IrFn fn = IR_FN_ADD;
  if (op->kind == IR_OP_UNARY || op->kind == IR_OP_BINARY) {
    const char *name = ir_op_str(op, "fn", NULL);
    int f = name ? ir_fn_from_name(name) : -1;
    if (f < 0 || ir_fn_arity((IrFn)f) != want)
      return ic_op_fail(s, op, "missing or invalid fn attribute '%s'", name ? name : "");
    fn = (IrFn)f;
  }
  IrDType odt = op->out[0]->dtype;
  IVal *out = ic_def(s, op->out[0], c);
  IcBcast b;
  if (ic_bcast_setup(&b, out, op->nin, in) < 0) {
    char b1[96], b2[96];
    return ic_op_fail(s, op, "operand shape %s does not broadcast to the result shape %s",
                      ic_dims_str(b1, sizeof b1, in[op->nin - 1]), ic_dims_str(b2, sizeof b2, out));
  }
  /* i32 arithmetic wraps like two's complement ints, not like doubles. */
  int int_path = op->kind == IR_OP_BINARY && odt == IR_I32 && op->in[0]->dtype == IR_I32 &&
                 op->in[1]->dtype == IR_I32 &&
                 (fn == IR_FN_ADD || fn == IR_FN_SUB || fn == IR_FN_MUL || fn == IR_FN_DIV || fn == IR_FN_MOD);
  double *o = out->d;
  int bad = 0;
  int64_t idx[IR_MAX_RANK] = {0}, off[4] = {0, 0, 0, 0};
  for (int64_t e = 0; e < out->n; e++, ic_bcast_next(&b, idx, off)) {
    double r;
    if (op->kind == IR_OP_UNARY) {
      r = ic_fn1(fn, in[0]->d[off[0]]);
    } else if (op->kind == IR_OP_SELECT) {
      r = in[0]->d[off[0]] != 0 ? in[1]->d[off[1]] : in[2]->d[off[2]];
    } else if (op->kind == IR_OP_CAST) {
      r = in[0]->d[off[0]];
    } else if (int_path) {
      int64_t x = (int64_t)in[0]->d[off[0]], y = (int64_t)in[1]->d[off[1]], z = 0;
      if ((fn == IR_FN_DIV || fn == IR_FN_MOD) && y == 0) {
        bad = 1;
        y = 1;
      }
      switch (fn) {
        case IR_FN_ADD: z = x + y; break;
        case IR_FN_SUB: z = x - y; break;
        case IR_FN_MUL: z = x * y; break;
        case IR_FN_DIV: z = x / y; break;
        default: z = x % y; break;
      }
      r = (double)(int32_t)(uint32_t)(uint64_t)z;
    } else {
      r = ic_fn2(fn, in[0]->d[off[0]], in[1]->d[off[1]]);
    }
    o[e] = ic_round(odt, r);
  }
  if (bad) return ic_op_fail(s, op, "integer %s by zero", fn == IR_FN_DIV ? "division" : "remainder");
  return 0;
}

/* ---- contractions --------------------------------------------------------- */

static int ic_matmul(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[2];
  if (op->nin != 2 || op->nout != 1) return ic_op_fail(s, op, "expects 2 operands and 1 result");
  if (ic_operands(s, op, in, 2) < 0) return -1;
  IVal *a = in[0], *bm = in[1];
  if (a->rank < 2 || bm->rank < 2) return ic_op_fail(s, op, "operands must have rank >= 2");
  IVal *out = ic_def(s, op->out[0], c);
  int64_t M = a->dims[a->rank - 2], K = a->dims[a->rank - 1];
  int64_t K2 = bm->dims[bm->rank - 2], N = bm->dims[bm->rank - 1];
  if (K != K2 || out->rank < 2 || out->dims[out->rank - 2] != M || out->dims[out->rank - 1] != N)
    return ic_op_fail(s, op, "inner dimensions %lld and %lld (or the result shape) do not match", (long long)K,
                      (long long)K2);
  /* Broadcast the batch dims: treat each operand as [batch..., 1] elements of size M*K / K*N. */
  IVal ob = *out, ab = *a, bb = *bm;
  ob.rank = out->rank - 2, ab.rank = a->rank - 2, bb.rank = bm->rank - 2;
  IVal *bops[2] = {&ab, &bb};
  IcBcast b;
  if (ic_bcast_setup(&b, &ob, 2, bops) < 0) return ic_op_fail(s, op, "batch dimensions do not broadcast");
  int64_t nb = ic_prod(ob.dims, 0, ob.rank);
  double *o = out->d;
  int64_t idx[IR_MAX_RANK] = {0}, off[4] = {0, 0, 0, 0};
  for (int64_t e = 0; e < nb; e++, ic_bcast_next(&b, idx, off)) {
    const double *A = a->d + off[0] * M * K, *B = bm->d + off[1] * K * N;
    double *O = o + e * M * N;
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double acc = 0;
        for (int64_t k = 0; k < K; k++) acc += A[i * K + k] * B[k * N + j];
        O[i * N + j] = ic_round(IR_F32, acc);
      }
  }
  return 0;
}

static int ic_linear(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[3];
  if ((op->nin != 2 && op->nin != 3) || op->nout != 1) return ic_op_fail(s, op, "expects 2 or 3 operands");
  if (ic_operands(s, op, in, 3) < 0) return -1;
  IVal *x = in[0], *w = in[1], *bias = op->nin == 3 ? in[2] : NULL;
  if (x->rank < 1 || w->rank != 2) return ic_op_fail(s, op, "expects x[..., IN] and w[OUT, IN]");
  int64_t IN = x->dims[x->rank - 1], OUT = w->dims[0];
  if (w->dims[1] != IN) return ic_op_fail(s, op, "weight has %lld input features, x has %lld", (long long)w->dims[1], (long long)IN);
  if (bias && bias->n != OUT) return ic_op_fail(s, op, "bias has %lld elements, expected %lld", (long long)bias->n, (long long)OUT);
  IVal *out = ic_def(s, op->out[0], c);
  int64_t rows = IN ? x->n / IN : 0;
  if (out->n != rows * OUT) return ic_op_fail(s, op, "result shape does not match [..., %lld]", (long long)OUT);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t o = 0; o < OUT; o++) {
      double acc = 0;
      const double *xr = x->d + r * IN, *wr = w->d + o * IN;
      for (int64_t k = 0; k < IN; k++) acc += xr[k] * wr[k];
      if (bias) acc += bias->d[o];
      out->d[r * OUT + o] = ic_round(IR_F32, acc);
    }
  return 0;
}

/* ---- index expressions ---------------------------------------------------- */

typedef struct IcExprEnv {
  InterpSession *s;
  const IrOp *op;
  IVal **in;
  int64_t vars[IC_MAX_VARS];
  int64_t T;
  int failed;
} IcExprEnv;

static double ic_expr_eval(IcExprEnv *env, const IrExpr *e) {
  if (env->failed) return 0;
  switch (e->kind) {
    case IR_EX_CONST: return e->fval;
    case IR_EX_VAR:
      if (e->var < 0 || e->var >= IC_MAX_VARS) {
        env->failed = 1;
        ic_op_fail(env->s, env->op, "loop variable v%d out of range", e->var);
        return 0;
      }
      return (double)env->vars[e->var];
    case IR_EX_LOAD: {
      if (e->operand < 0 || e->operand >= env->op->nin) {
        env->failed = 1;
        ic_op_fail(env->s, env->op, "load from operand %d, but the op has %d", e->operand, env->op->nin);
        return 0;
      }
      const IVal *v = env->in[e->operand];
      if (e->nidx != v->rank) {
        env->failed = 1;
        ic_op_fail(env->s, env->op, "load of operand %d uses %d indices for rank %d", e->operand, e->nidx, v->rank);
        return 0;
      }
      int64_t off = 0;
      for (int i = 0; i < e->nidx; i++) {
        const IrAffine *a = &e->idx[i];
        int64_t x = a->c;
        for (int k = 0; k < a->nterms; k++) {
          if (a->var[k] < 0 || a->var[k] >= IC_MAX_VARS) {
            env->failed = 1;
            ic_op_fail(env->s, env->op, "affine index uses bad variable v%d", a->var[k]);
            return 0;
          }
          x += a->coef[k] * env->vars[a->var[k]];
        }
        if (a->dyn >= 0) {
          if (a->dyn >= env->op->nin || env->in[a->dyn]->n != 1) {
            env->failed = 1;
            ic_op_fail(env->s, env->op, "dynamic index operand %d is not a scalar operand", a->dyn);
            return 0;
          }
          x += a->dyn_coef * (int64_t)env->in[a->dyn]->d[0];
        }
        if (x < 0 || x >= v->dims[i]) {
          env->failed = 1;
          ic_op_fail(env->s, env->op, "load of operand %d: index %lld of dimension %d is outside [0, %lld)",
                     e->operand, (long long)x, i, (long long)v->dims[i]);
          return 0;
        }
        off = off * v->dims[i] + x;
      }
      return v->d[off];
    }
    case IR_EX_UNARY: return ic_fn1(e->fn, ic_expr_eval(env, e->a));
    case IR_EX_BINARY: {
      double x = ic_expr_eval(env, e->a);
      return ic_fn2(e->fn, x, ic_expr_eval(env, e->b));
    }
    case IR_EX_SELECT:
      return ic_expr_eval(env, e->a) != 0 ? ic_expr_eval(env, e->b) : ic_expr_eval(env, e->c);
    case IR_EX_REDUCE: {
      int64_t ext = e->extent == IR_DIM_T ? env->T : e->extent;
      if (e->var < 0 || e->var >= IC_MAX_VARS || ext < 1) {
        env->failed = 1;
        ic_op_fail(env->s, env->op, "bad reduction variable v%d or extent %lld", e->var, (long long)ext);
        return 0;
      }
      double acc = 0;
      for (int64_t i = 0; i < ext && !env->failed; i++) {
        env->vars[e->var] = i;
        double x = ic_expr_eval(env, e->a);
        if (i == 0 && (e->reduce == IR_RED_MAX || e->reduce == IR_RED_MIN)) acc = x;
        else if (e->reduce == IR_RED_SUM || e->reduce == IR_RED_MEAN) acc += x;
        else if (e->reduce == IR_RED_MAX) acc = (x > acc || x != x) ? x : acc;
        else acc = (x < acc || x != x) ? x : acc;
      }
      return e->reduce == IR_RED_MEAN ? acc / (double)ext : acc;
    }
  }
  gat_unreachable();
}

static int ic_index(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[64];
  if (!op->expr || op->nout != 1) return ic_op_fail(s, op, "index op without an expression");
  if (ic_operands(s, op, in, 64) < 0) return -1;
  IVal *out = ic_def(s, op->out[0], c);
  if (out->rank > IC_MAX_VARS) return ic_op_fail(s, op, "rank too large");
  IcExprEnv env;
  memset(&env, 0, sizeof env);
  env.s = s, env.op = op, env.in = in, env.T = c->T;
  IrDType odt = op->out[0]->dtype;
  for (int64_t e = 0; e < out->n; e++) {
    int64_t rem = e;
    for (int d = out->rank - 1; d >= 0; d--) {
      env.vars[d] = rem % out->dims[d];
      rem /= out->dims[d];
    }
    double x = ic_expr_eval(&env, op->expr);
    if (env.failed) return -1;
    out->d[e] = ic_round(odt, x);
  }
  return 0;
}

/* ---- reductions and normalisations ---------------------------------------- */

static int ic_reduce(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[1];
  if (op->nin != 1 || op->nout != 1) return ic_op_fail(s, op, "expects 1 operand");
  if (ic_operands(s, op, in, 1) < 0) return -1;
  IVal *x = in[0];
  const char *kname = ir_op_str(op, "kind", "sum");
  IrReduceKind kind;
  if (strcmp(kname, "sum") == 0) kind = IR_RED_SUM;
  else if (strcmp(kname, "max") == 0) kind = IR_RED_MAX;
  else if (strcmp(kname, "min") == 0) kind = IR_RED_MIN;
  else if (strcmp(kname, "mean") == 0) kind = IR_RED_MEAN;
  else return ic_op_fail(s, op, "unknown reduction kind '%s'", kname);
  const IrAttr *axes = ir_op_attr(op, "axes");
  if (!axes || axes->kind != IR_ATTR_INTS) return ic_op_fail(s, op, "missing axes attribute");
  int red[IR_MAX_RANK] = {0};
  for (int i = 0; i < axes->n; i++) {
    int a = ic_norm_axis(axes->ints[i], x->rank);
    if (a < 0 || a >= x->rank) return ic_op_fail(s, op, "axis %lld out of range", (long long)axes->ints[i]);
    red[a] = 1;
  }
  IVal *out = ic_def(s, op->out[0], c);
  /* Output strides over the kept axes. */
  int64_t ostride[IR_MAX_RANK], st = 1, count = 1;
  for (int i = x->rank - 1; i >= 0; i--) {
    if (red[i]) {
      ostride[i] = 0;
      count *= x->dims[i];
    } else {
      ostride[i] = st;
      st *= x->dims[i];
    }
  }
  if (st != out->n) return ic_op_fail(s, op, "result shape does not match the reduced operand");
  double *acc = xcalloc((size_t)(out->n ? out->n : 1), sizeof(double));
  unsigned char *seen = xcalloc((size_t)(out->n ? out->n : 1), 1);
  int64_t idx[IR_MAX_RANK] = {0}, o = 0;
  for (int64_t e = 0; e < x->n; e++) {
    double v = x->d[e];
    if (!seen[o] || kind == IR_RED_SUM || kind == IR_RED_MEAN) {
      acc[o] = seen[o] ? acc[o] + v : v;
      seen[o] = 1;
    } else if (kind == IR_RED_MAX) {
      if (v > acc[o] || v != v) acc[o] = v;
    } else if (v < acc[o] || v != v) {
      acc[o] = v;
    }
    for (int d = x->rank - 1; d >= 0; d--) {
      o += ostride[d];
      if (++idx[d] < x->dims[d]) break;
      o -= ostride[d] * x->dims[d];
      idx[d] = 0;
    }
  }
  for (int64_t i = 0; i < out->n; i++)
    out->d[i] = ic_round(op->out[0]->dtype, kind == IR_RED_MEAN ? acc[i] / (double)count : acc[i]);
  free(acc);
  free(seen);
  return 0;
}

static int ic_softmax(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[1];
  if (op->nin != 1 || op->nout != 1) return ic_op_fail(s, op, "expects 1 operand");
  if (ic_operands(s, op, in, 1) < 0) return -1;
  IVal *x = in[0];
  int ax = ic_norm_axis(ir_op_int(op, "axis", -1), x->rank);
  if (ax < 0 || ax >= x->rank) return ic_op_fail(s, op, "axis out of range");
  IVal *out = ic_def(s, op->out[0], c);
  if (out->n != x->n) return ic_op_fail(s, op, "result shape differs from the operand");
  int64_t outer = ic_prod(x->dims, 0, ax), len = x->dims[ax], inner = ic_prod(x->dims, ax + 1, x->rank);
  double *tmp = xcalloc((size_t)(len ? len : 1), sizeof(double));
  for (int64_t a = 0; a < outer; a++)
    for (int64_t b = 0; b < inner; b++) {
      const double *xp = x->d + a * len * inner + b;
      double mx = -INFINITY, sum = 0;
      for (int64_t i = 0; i < len; i++) mx = xp[i * inner] > mx ? xp[i * inner] : mx;
      for (int64_t i = 0; i < len; i++) sum += tmp[i] = exp(xp[i * inner] - mx);
      for (int64_t i = 0; i < len; i++) out->d[a * len * inner + b + i * inner] = ic_round(IR_F32, tmp[i] / sum);
    }
  free(tmp);
  return 0;
}

/* rms_norm, layer_norm, l2_norm: all normalise over the last axis. */
static int ic_norm(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[3];
  int maxin = op->kind == IR_OP_LAYER_NORM ? 3 : op->kind == IR_OP_RMS_NORM ? 2 : 1;
  if (op->nin < 1 || op->nin > maxin || op->nout != 1) return ic_op_fail(s, op, "expects 1 to %d operands", maxin);
  if (ic_operands(s, op, in, 3) < 0) return -1;
  IVal *x = in[0], *w = op->nin > 1 ? in[1] : NULL, *b = op->nin > 2 ? in[2] : NULL;
  if (x->rank < 1) return ic_op_fail(s, op, "operand must have rank >= 1");
  int64_t D = x->dims[x->rank - 1], rows = D ? x->n / D : 0;
  if ((w && w->n != D) || (b && b->n != D))
    return ic_op_fail(s, op, "weight/bias must have %lld elements (the last dimension)", (long long)D);
  double eps = ir_op_float(op, "eps", op->kind == IR_OP_L2_NORM ? 1e-6 : 1e-5);
  int plus_one = (int)ir_op_int(op, "plus_one", 0);
  IVal *out = ic_def(s, op->out[0], c);
  if (out->n != x->n) return ic_op_fail(s, op, "result shape differs from the operand");
  for (int64_t r = 0; r < rows; r++) {
    const double *xr = x->d + r * D;
    double *o = out->d + r * D;
    double mean = 0, ss = 0;
    if (op->kind == IR_OP_LAYER_NORM) {
      for (int64_t i = 0; i < D; i++) mean += xr[i];
      mean /= (double)D;
    }
    for (int64_t i = 0; i < D; i++) ss += (xr[i] - mean) * (xr[i] - mean);
    double inv = op->kind == IR_OP_L2_NORM ? 1.0 / sqrt(ss + eps) : 1.0 / sqrt(ss / (double)D + eps);
    for (int64_t i = 0; i < D; i++) {
      double y = (xr[i] - mean) * inv;
      if (w) y *= plus_one ? 1.0 + w->d[i] : w->d[i];
      if (b) y += b->d[i];
      o[i] = ic_round(IR_F32, y);
    }
  }
  return 0;
}

/* ---- data movement -------------------------------------------------------- */

static int ic_gather(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[2];
  if (op->nin != 2 || op->nout != 1) return ic_op_fail(s, op, "expects (table, indices)");
  if (ic_operands(s, op, in, 2) < 0) return -1;
  IVal *tab = in[0], *idx = in[1];
  if (tab->rank < 1) return ic_op_fail(s, op, "table must have rank >= 1");
  int64_t V = tab->dims[0], row = ic_prod(tab->dims, 1, tab->rank);
  IVal *out = ic_def(s, op->out[0], c);
  if (out->n != idx->n * row) return ic_op_fail(s, op, "result shape does not match indices ++ table row");
  for (int64_t i = 0; i < idx->n; i++) {
    int64_t id = (int64_t)idx->d[i];
    if (id < 0 || id >= V)
      return ic_op_fail(s, op, "index %lld at position %lld is out of range [0, %lld)", (long long)id, (long long)i,
                        (long long)V);
    memcpy(out->d + i * row, tab->d + id * row, sizeof(double) * (size_t)row);
  }
  return 0;
}

static int ic_topk(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[1];
  if (op->nin != 1 || op->nout != 2) return ic_op_fail(s, op, "expects 1 operand and 2 results");
  if (ic_operands(s, op, in, 1) < 0) return -1;
  IVal *x = in[0];
  int64_t k = ir_op_int(op, "k", 0);
  if (x->rank < 1) return ic_op_fail(s, op, "operand must have rank >= 1");
  int64_t N = x->dims[x->rank - 1], rows = N ? x->n / N : 0;
  if (k < 1 || k > N) return ic_op_fail(s, op, "k = %lld must be in [1, %lld]", (long long)k, (long long)N);
  IVal *ov = ic_def(s, op->out[0], c), *oi = ic_def(s, op->out[1], c);
  if (ov->n != rows * k || oi->n != rows * k) return ic_op_fail(s, op, "result shapes do not match [..., k]");
  unsigned char *used = xcalloc((size_t)N, 1);
  for (int64_t r = 0; r < rows; r++) {
    const double *xr = x->d + r * N;
    memset(used, 0, (size_t)N);
    for (int64_t j = 0; j < k; j++) {
      /* Descending; NaN ranks above everything (as torch.topk); ties keep
       * the lower index because only a strictly better value replaces. */
      int64_t best = -1;
      for (int64_t i = 0; i < N; i++) {
        if (used[i]) continue;
        if (best < 0) { best = i; continue; }
        double a = xr[i], b = xr[best];
        if (b != b) continue;
        if (a != a || a > b) best = i;
      }
      used[best] = 1;
      ov->d[r * k + j] = xr[best];
      oi->d[r * k + j] = (double)best;
    }
  }
  free(used);
  return 0;
}

static int ic_reshape(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[1];
  if (op->nin != 1 || op->nout != 1) return ic_op_fail(s, op, "expects 1 operand");
  if (ic_operands(s, op, in, 1) < 0) return -1;
  IVal *out = ic_def(s, op->out[0], c);
  if (out->n != in[0]->n)
    return ic_op_fail(s, op, "element counts differ (%lld vs %lld)", (long long)in[0]->n, (long long)out->n);
  memcpy(out->d, in[0]->d, sizeof(double) * (size_t)out->n);
  return 0;
}

static int ic_transpose(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[1];
  if (op->nin != 1 || op->nout != 1) return ic_op_fail(s, op, "expects 1 operand");
  if (ic_operands(s, op, in, 1) < 0) return -1;
  IVal *x = in[0];
  const IrAttr *perm = ir_op_attr(op, "perm");
  if (!perm || perm->kind != IR_ATTR_INTS || perm->n != x->rank) return ic_op_fail(s, op, "perm must list every axis");
  IVal *out = ic_def(s, op->out[0], c);
  int64_t xstride[IR_MAX_RANK], st = 1, pstride[IR_MAX_RANK];
  for (int i = x->rank - 1; i >= 0; i--) xstride[i] = st, st *= x->dims[i];
  unsigned seen = 0;
  for (int i = 0; i < x->rank; i++) {
    int64_t p = perm->ints[i];
    if (p < 0 || p >= x->rank || (seen & (1u << p)) || out->dims[i] != x->dims[p])
      return ic_op_fail(s, op, "perm is not a permutation matching the result shape");
    seen |= 1u << p;
    pstride[i] = xstride[p];
  }
  int64_t idx[IR_MAX_RANK] = {0}, off = 0;
  for (int64_t e = 0; e < out->n; e++) {
    out->d[e] = x->d[off];
    for (int d = out->rank - 1; d >= 0; d--) {
      off += pstride[d];
      if (++idx[d] < out->dims[d]) break;
      off -= pstride[d] * out->dims[d];
      idx[d] = 0;
    }
  }
  return 0;
}

static int ic_concat(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[64];
  if (op->nin < 1 || op->nout != 1) return ic_op_fail(s, op, "expects operands");
  if (ic_operands(s, op, in, 64) < 0) return -1;
  IVal *out = ic_def(s, op->out[0], c);
  int ax = ic_norm_axis(ir_op_int(op, "axis", 0), out->rank);
  if (ax < 0 || ax >= out->rank) return ic_op_fail(s, op, "axis out of range");
  int64_t outer = ic_prod(out->dims, 0, ax), inner = ic_prod(out->dims, ax + 1, out->rank), total = 0;
  for (int i = 0; i < op->nin; i++) {
    if (in[i]->rank != out->rank) return ic_op_fail(s, op, "operand %d has the wrong rank", i);
    for (int d = 0; d < out->rank; d++)
      if (d != ax && in[i]->dims[d] != out->dims[d]) return ic_op_fail(s, op, "operand %d has the wrong shape", i);
    total += in[i]->dims[ax];
  }
  if (total != out->dims[ax]) return ic_op_fail(s, op, "concatenated sizes do not add up to the result");
  double *o = out->d;
  for (int64_t a = 0; a < outer; a++)
    for (int i = 0; i < op->nin; i++) {
      int64_t chunk = in[i]->dims[ax] * inner;
      memcpy(o, in[i]->d + a * chunk, sizeof(double) * (size_t)chunk);
      o += chunk;
    }
  return 0;
}

/* split and slice: each result is x[..., start:start+len, ...] on one axis. */
static int ic_copy_range(InterpSession *s, const IrOp *op, const IcCtx *c, const IVal *x, int ax, int64_t start,
                         int64_t len, int res) {
  IVal *out = ic_def(s, op->out[res], c);
  int64_t outer = ic_prod(x->dims, 0, ax), inner = ic_prod(x->dims, ax + 1, x->rank);
  if (start < 0 || len < 0 || start + len > x->dims[ax] || out->n != outer * len * inner)
    return ic_op_fail(s, op, "range [%lld, %lld) does not fit axis %d of size %lld (or the result shape)",
                      (long long)start, (long long)(start + len), ax, (long long)x->dims[ax]);
  for (int64_t a = 0; a < outer; a++)
    memcpy(out->d + a * len * inner, x->d + (a * x->dims[ax] + start) * inner, sizeof(double) * (size_t)(len * inner));
  return 0;
}

static int ic_split_slice(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[1];
  if (op->nin != 1) return ic_op_fail(s, op, "expects 1 operand");
  if (ic_operands(s, op, in, 1) < 0) return -1;
  IVal *x = in[0];
  int ax = ic_norm_axis(ir_op_int(op, "axis", 0), x->rank);
  if (ax < 0 || ax >= x->rank) return ic_op_fail(s, op, "axis out of range");
  if (op->kind == IR_OP_SLICE) {
    int64_t n = x->dims[ax];
    int64_t start = ir_op_int(op, "start", 0), stop = ir_op_int(op, "stop", n);
    if (start < 0) start += n;
    if (stop < 0) stop += n;
    if (op->nout != 1) return ic_op_fail(s, op, "expects 1 result");
    return ic_copy_range(s, op, c, x, ax, start, stop - start, 0);
  }
  const IrAttr *sizes = ir_op_attr(op, "sizes");
  if (!sizes || sizes->kind != IR_ATTR_INTS || sizes->n != op->nout)
    return ic_op_fail(s, op, "sizes must have one entry per result");
  int64_t start = 0;
  for (int i = 0; i < sizes->n; i++) {
    if (ic_copy_range(s, op, c, x, ax, start, sizes->ints[i], i) < 0) return -1;
    start += sizes->ints[i];
  }
  if (start != x->dims[ax]) return ic_op_fail(s, op, "sizes add up to %lld, axis has %lld", (long long)start, (long long)x->dims[ax]);
  return 0;
}

/* ---- sequence ops with persistent state ----------------------------------- */

static int ic_state_slot(InterpSession *s, const IrOp *op, const char *key, int64_t need, int required) {
  int64_t slot = ir_op_int(op, key, -1);
  if (slot < 0 && !required) return -1;
  if (slot < 0 || slot >= s->m->states.len)
    return ic_op_fail(s, op, "attribute %s = %lld is not a state slot", key, (long long)slot), -2;
  if (need >= 0 && s->state_n[slot] != need)
    return ic_op_fail(s, op, "state slot %lld has %lld elements, expected %lld", (long long)slot,
                      (long long)s->state_n[slot], (long long)need), -2;
  return (int)slot;
}

static int ic_rope(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[1];
  if (op->nin != 1 || op->nout != 1) return ic_op_fail(s, op, "expects 1 operand");
  if (ic_operands(s, op, in, 1) < 0) return -1;
  IVal *x = in[0];
  if (x->rank < 2 || x->dims[0] != c->T) return ic_op_fail(s, op, "operand must be [T, ..., D]");
  int64_t D = x->dims[x->rank - 1], dims = ir_op_int(op, "dims", D);
  double base = ir_op_float(op, "base", 10000.0);
  if (dims < 0 || dims > D || dims % 2) return ic_op_fail(s, op, "dims = %lld must be even and <= %lld", (long long)dims, (long long)D);
  IVal *out = ic_def(s, op->out[0], c);
  if (out->n != x->n) return ic_op_fail(s, op, "result shape differs from the operand");
  int64_t per_t = x->n / c->T, half = dims / 2;
  memcpy(out->d, x->d, sizeof(double) * (size_t)x->n);
  for (int64_t t = 0; t < c->T; t++)
    for (int64_t i = 0; i < half; i++) {
      double freq = pow(base, -2.0 * (double)i / (double)dims);
      double ang = (double)c->apos[t] * freq, cs = cos(ang), sn = sin(ang);
      for (int64_t r = 0; r < per_t / D; r++) {
        const double *xr = x->d + t * per_t + r * D;
        double *o = out->d + t * per_t + r * D;
        double x1 = xr[i], x2 = xr[i + half];
        o[i] = ic_round(IR_F32, x1 * cs - x2 * sn);
        o[i + half] = ic_round(IR_F32, x2 * cs + x1 * sn);
      }
    }
  return 0;
}

static int ic_conv1d(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[3];
  if ((op->nin != 2 && op->nin != 3) || op->nout != 1) return ic_op_fail(s, op, "expects (x, w[, b])");
  if (ic_operands(s, op, in, 3) < 0) return -1;
  IVal *x = in[0], *w = in[1], *b = op->nin == 3 ? in[2] : NULL;
  if (x->rank != 2 || w->rank != 3 || w->dims[1] != 1 || w->dims[0] != x->dims[1])
    return ic_op_fail(s, op, "expects x[T, C] and w[C, 1, W]");
  int64_t T = x->dims[0], C = x->dims[1], W = w->dims[2];
  if (b && b->n != C) return ic_op_fail(s, op, "bias must have %lld elements", (long long)C);
  const char *act = ir_op_str(op, "act", "none");
  int silu = strcmp(act, "silu") == 0;
  if (!silu && strcmp(act, "none") != 0) return ic_op_fail(s, op, "unknown activation '%s'", act);
  int slot = W > 1 ? ic_state_slot(s, op, "state", (W - 1) * C, 1) : -1;
  if (slot == -2) return -1;
  IVal *out = ic_def(s, op->out[0], c);
  if (out->n != T * C) return ic_op_fail(s, op, "result shape must be [T, C]");
  /* ext = tail (W-1 rows of earlier inputs) ++ x */
  int64_t rows = W - 1 + T;
  double *ext = xcalloc((size_t)(rows * C), sizeof(double));
  if (slot >= 0) memcpy(ext, s->states[slot], sizeof(double) * (size_t)((W - 1) * C));
  memcpy(ext + (W - 1) * C, x->d, sizeof(double) * (size_t)(T * C));
  for (int64_t t = 0; t < T; t++)
    for (int64_t ch = 0; ch < C; ch++) {
      double acc = 0;
      for (int64_t j = 0; j < W; j++) acc += w->d[ch * W + j] * ext[(t + j) * C + ch];
      if (b) acc += b->d[ch];
      if (silu) acc = acc * ic_sigmoid(acc);
      out->d[t * C + ch] = ic_round(IR_F32, acc);
    }
  if (slot >= 0) memcpy(s->states[slot], ext + T * C, sizeof(double) * (size_t)((W - 1) * C));
  free(ext);
  return 0;
}

static int ic_attention(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[6];
  /* attr relbias: the (last) operand holding the Toeplitz bias table, see ir.h */
  int rbi = ir_op_attr(op, "relbias") ? (int)ir_op_int(op, "relbias", -1) : -1;
  int nqkv = op->nin - (rbi >= 0);
  if ((nqkv != 3 && nqkv != 5) || (rbi >= 0 && rbi != op->nin - 1) || op->nout != 1)
    return ic_op_fail(s, op, "expects (q, k, v[, qb, kb][, relbias])");
  if (ic_operands(s, op, in, 6) < 0) return -1;
  IVal *q = in[0], *k = in[1], *v = in[2], *qb = nqkv == 5 ? in[3] : NULL, *kb = nqkv == 5 ? in[4] : NULL;
  IVal *rb = rbi >= 0 ? in[rbi] : NULL;
  int64_t rb_n = rb ? rb->n : 0, rb_c = (rb_n - 1) / 2;
  if (q->rank != 3 || k->rank != 3 || v->rank != 3) return ic_op_fail(s, op, "q, k, v must have rank 3");
  int64_t T = q->dims[0], H = q->dims[1], dk = q->dims[2], Hkv = k->dims[1], dv = v->dims[2];
  if (k->dims[0] != T || v->dims[0] != T || T != c->T || k->dims[2] != dk || v->dims[1] != Hkv || Hkv < 1 ||
      H % Hkv != 0)
    return ic_op_fail(s, op, "inconsistent q/k/v shapes (H must be a multiple of Hkv)");
  if (qb && (qb->n != T * H || kb->n != T * H)) return ic_op_fail(s, op, "biases must be [T, H]");
  double scale = ir_op_float(op, "scale", 1.0 / sqrt((double)dk));
  int causal = (int)ir_op_int(op, "causal", 1);
  int64_t window = ir_op_int(op, "window", 0);
  int64_t cap = s->m->max_T;
  int sk = ic_state_slot(s, op, "state_k", cap * Hkv * dk, 1);
  if (sk < 0) return -1;
  int sv = ic_state_slot(s, op, "state_v", cap * Hkv * dv, 1);
  if (sv < 0) return -1;
  int skb = -1;
  if (qb) {
    skb = ic_state_slot(s, op, "state_kb", cap * H, 1);
    if (skb < 0) return -1;
  }
  double *K = s->states[sk], *Vc = s->states[sv], *KB = skb >= 0 ? s->states[skb] : NULL;
  if (!s->written[sk]) s->written[sk] = xcalloc((size_t)cap, 1);
  unsigned char *wr = s->written[sk];
  /* Append this call's keys and values at their absolute positions. */
  int64_t maxpos = 0;
  for (int64_t t = 0; t < T; t++) {
    int64_t p = c->pos[t];
    if (p < 0 || p >= cap) return ic_op_fail(s, op, "position %lld is outside the KV cache of %lld rows", (long long)p, (long long)cap);
    memcpy(K + p * Hkv * dk, k->d + t * Hkv * dk, sizeof(double) * (size_t)(Hkv * dk));
    memcpy(Vc + p * Hkv * dv, v->d + t * Hkv * dv, sizeof(double) * (size_t)(Hkv * dv));
    if (KB) memcpy(KB + p * H, kb->d + t * H, sizeof(double) * (size_t)H);
    wr[p] = 1;
    if (p > maxpos) maxpos = p;
  }
  IVal *out = ic_def(s, op->out[0], c);
  if (out->n != T * H * dv) return ic_op_fail(s, op, "result shape must be [T, H, dv]");
  /* Without causality every written row up to the last one is visible. */
  int64_t hi_all = 0;
  for (int64_t j = 0; j < cap; j++)
    if (wr[j]) hi_all = j;
  if (maxpos > hi_all) hi_all = maxpos;
  double *p = xcalloc((size_t)cap, sizeof(double));
  double *acc = xcalloc((size_t)(dv ? dv : 1), sizeof(double));
  int64_t group = H / Hkv;
  for (int64_t t = 0; t < T; t++) {
    int64_t i = c->pos[t];
    int64_t hi = causal ? i : hi_all;
    int64_t lo = window > 0 ? i - window + 1 : 0;
    if (lo < 0) lo = 0;
    for (int64_t h = 0; h < H; h++) {
      int64_t g = h / group;
      const double *qv = q->d + (t * H + h) * dk;
      double mx = -INFINITY;
      for (int64_t j = lo; j <= hi; j++) {
        if (!wr[j]) continue;
        const double *kv = K + (j * Hkv + g) * dk;
        double dot = 0;
        for (int64_t d = 0; d < dk; d++) dot += qv[d] * kv[d];
        double l = dot * scale;
        if (qb) l += qb->d[t * H + h] + KB[j * H + h];
        if (rb) {
          int64_t r = rb_c + j - i;
          l += rb->d[r < 0 ? 0 : r >= rb_n ? rb_n - 1 : r];
        }
        p[j] = l;
        if (l > mx) mx = l;
      }
      double sum = 0;
      for (int64_t d = 0; d < dv; d++) acc[d] = 0;
      for (int64_t j = lo; j <= hi; j++) {
        if (!wr[j]) continue;
        double e = exp(p[j] - mx);
        sum += e;
        const double *vv = Vc + (j * Hkv + g) * dv;
        for (int64_t d = 0; d < dv; d++) acc[d] += e * vv[d];
      }
      double *o = out->d + (t * H + h) * dv;
      for (int64_t d = 0; d < dv; d++) o[d] = ic_round(IR_F32, sum > 0 ? acc[d] / sum : 0.0);
    }
  }
  free(p);
  free(acc);
  return 0;
}

/* ---- ops with regions ----------------------------------------------------- */

static int ic_block(InterpSession *s, const IrBlock *b, const IcCtx *c);

/* Makes `iv` an owned copy of n doubles with value v's shape at ctx T. */
static IVal *ic_set_arg(InterpSession *s, const IrValue *v, const IcCtx *c, const double *src, int64_t n) {
  IVal *iv = ic_def(s, v, c);
  GAT_ASSERT(iv->n == n);
  memcpy(iv->d, src, sizeof(double) * (size_t)n);
  return iv;
}

static int ic_scan(InterpSession *s, const IrOp *op, const IcCtx *c) {
  const IrAttr *st = ir_op_attr(op, "states");
  int ns = st && st->kind == IR_ATTR_INTS ? st->n : 0;
  if (op->nregions != 1) return ic_op_fail(s, op, "expects one region");
  const IrBlock *r = op->regions[0];
  if (r->nargs != 1 + ns || r->nyield != ns + op->nout)
    return ic_op_fail(s, op, "region has %d args and %d yields; expected %d and %d", r->nargs, r->nyield, 1 + ns,
                      ns + op->nout);
  for (int i = 0; i < ns; i++) {
    int64_t slot = st->ints[i];
    if (slot < 0 || slot >= s->m->states.len) return ic_op_fail(s, op, "state slot %lld does not exist", (long long)slot);
    IVal ta, ty;
    ic_resolve(r->args[1 + i]->shape, c->T, &ta);
    ic_resolve(r->yields[i]->shape, c->T, &ty);
    if (ta.n != s->state_n[slot] || ty.n != s->state_n[slot])
      return ic_op_fail(s, op, "state %d does not match slot %lld (%lld elements)", i, (long long)slot,
                        (long long)s->state_n[slot]);
  }
  /* heap arrays: a scan has as many states and outputs as the model declares */
  IVal **outs = xcalloc((size_t)op->nout + 1, sizeof(IVal *));
  double **tmp = xcalloc((size_t)ns + 1, sizeof(double *));
  int rc = -1;
  for (int i = 0; i < op->nout; i++) {
    outs[i] = ic_def(s, op->out[i], c);
    if (outs[i]->rank < 1 || outs[i]->dims[0] != c->T) {
      ic_op_fail(s, op, "result %d must be [T, ...]", i);
      goto done;
    }
  }
  for (int i = 0; i < ns; i++)
    ic_set_arg(s, r->args[1 + i], c, s->states[st->ints[i]], s->state_n[st->ints[i]]);
  for (int64_t t = 0; t < c->T; t++) {
    double tv = (double)t;
    ic_set_arg(s, r->args[0], c, &tv, 1);
    if (ic_block(s, r, c) < 0) goto done;
    for (int i = 0; i < op->nout; i++) {
      IVal *y = ic_get(s, r->yields[ns + i]);
      int64_t row = outs[i]->n / c->T;
      if (!y->d || y->n != row) {
        ic_op_fail(s, op, "emitted value %d has %lld elements, expected %lld", i, (long long)y->n, (long long)row);
        goto done;
      }
      memcpy(outs[i]->d + t * row, y->d, sizeof(double) * (size_t)row);
    }
    /* Copy the new states into the args; a yield may alias an arg. */
    for (int i = 0; i < ns; i++) {
      IVal *y = ic_get(s, r->yields[i]);
      if (!y->d) {
        ic_op_fail(s, op, "state %d was not computed", i);
        goto done;
      }
      tmp[i] = xmalloc(sizeof(double) * (size_t)y->n);
      memcpy(tmp[i], y->d, sizeof(double) * (size_t)y->n);
    }
    for (int i = 0; i < ns; i++) {
      ic_set_arg(s, r->args[1 + i], c, tmp[i], s->state_n[st->ints[i]]);
      free(tmp[i]);
      tmp[i] = NULL;
    }
  }
  for (int i = 0; i < ns; i++) {
    IVal *a = ic_get(s, r->args[1 + i]);
    for (int64_t e = 0; e < a->n; e++) s->states[st->ints[i]][e] = a->d[e];
  }
  rc = 0;
done:
  for (int i = 0; i < ns; i++) free(tmp[i]);
  free(tmp);
  free(outs);
  return rc;
}

/* The counter of a mixture/skip op, or NULL when counting is off. */
static IcCount *ic_count_of(InterpSession *s, const IrOp *op) {
  if (!s->count_path) return NULL;
  for (int i = 0; i < s->ncounts; i++)
    if (s->counts[i].op == op) return &s->counts[i];
  return NULL;
}

/* Registers every mixture and skip op in program order (regions included),
 * so the file lists them in the order they appear in the model. */
static void ic_count_collect(InterpSession *s, const IrBlock *b) {
  for (int i = 0; i < b->ops.len; i++) {
    const IrOp *op = b->ops.data[i];
    if (op->kind == IR_OP_MIXTURE || op->kind == IR_OP_SKIP) {
      s->counts = xrealloc(s->counts, sizeof(IcCount) * (size_t)(s->ncounts + 1));
      IcCount *k = &s->counts[s->ncounts++];
      k->op = op;
      k->rows = xcalloc((size_t)(op->kind == IR_OP_MIXTURE ? op->nregions + 1 : 1), sizeof(int64_t));
      k->calls = xcalloc((size_t)(op->kind == IR_OP_MIXTURE ? op->nregions + 1 : 1), sizeof(int64_t));
      k->tokens = 0;
    }
    for (int r = 0; r < op->nregions; r++) ic_count_collect(s, op->regions[r]);
  }
}

static void ic_count_write(InterpSession *s) {
  FILE *f = fopen(s->count_path, "w");
  if (!f) return; /* counting is a test aid; an unwritable path only loses the file */
  fprintf(f, "{\"ops\": [");
  for (int i = 0; i < s->ncounts; i++) {
    const IcCount *k = &s->counts[i];
    const IrOp *op = k->op;
    fprintf(f, "%s\n  {\"kind\": \"%s\", \"line\": %d, \"col\": %d, \"origin\": \"%s\", \"tokens\": %lld, ",
            i ? "," : "", op->kind == IR_OP_MIXTURE ? "mixture" : "skip", op->loc.line, op->loc.col,
            op->origin ? op->origin : "", (long long)k->tokens);
    if (op->kind == IR_OP_MIXTURE) {
      fprintf(f, "\"experts\": [");
      for (int e = 0; e < op->nregions; e++) fprintf(f, "%s%lld", e ? ", " : "", (long long)k->rows[e]);
      fprintf(f, "], \"calls\": [");
      for (int e = 0; e < op->nregions; e++) fprintf(f, "%s%lld", e ? ", " : "", (long long)k->calls[e]);
      fprintf(f, "]}");
    } else {
      fprintf(f, "\"rows\": %lld, \"calls\": %lld}", (long long)k->rows[0], (long long)k->calls[0]);
    }
  }
  fprintf(f, "\n]}\n");
  fclose(f);
}

/* Runs `r` over the rows `rows[0..n)` of the per-token operands
 * op->in[first..]; returns the region's yield (valid until the next run). */
static IVal *ic_run_rows(InterpSession *s, const IrOp *op, const IrBlock *r, int first, const IcCtx *c,
                         const int64_t *rows, int64_t n) {
  int nx = op->nin - first;
  if (r->nargs != nx || r->nyield != 1) {
    ic_op_fail(s, op, "region has %d args and %d yields; expected %d and 1", r->nargs, r->nyield, nx);
    return NULL;
  }
  int64_t *pos = xmalloc(sizeof(int64_t) * (size_t)(2 * n));
  for (int64_t i = 0; i < n; i++) pos[i] = c->pos[rows[i]], pos[n + i] = c->apos[rows[i]];
  IcCtx sub = {n, pos, pos + n};
  for (int a = 0; a < nx; a++) {
    IVal *x = ic_get(s, op->in[first + a]);
    IVal *arg = ic_def(s, r->args[a], &sub);
    int64_t row = x->n / c->T;
    if (x->rank < 1 || x->dims[0] != c->T || arg->n != n * row) {
      free(pos);
      ic_op_fail(s, op, "per-token operand %d must be [T, ...] like region argument %d", first + a, a);
      return NULL;
    }
    for (int64_t i = 0; i < n; i++)
      memcpy(arg->d + i * row, x->d + rows[i] * row, sizeof(double) * (size_t)row);
  }
  int rc = ic_block(s, r, &sub);
  free(pos);
  if (rc < 0) return NULL;
  IVal *y = ic_get(s, r->yields[0]);
  if (!y->d) {
    ic_op_fail(s, op, "region yield was not computed");
    return NULL;
  }
  return y;
}

static int ic_mixture(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[64];
  if (op->nin < 3 || op->nout != 1) return ic_op_fail(s, op, "expects (idx, w, x...)");
  if (ic_operands(s, op, in, 64) < 0) return -1;
  IVal *idx = in[0], *w = in[1];
  int64_t E = ir_op_int(op, "experts", op->nregions);
  if (E != op->nregions) return ic_op_fail(s, op, "experts = %lld but the op has %d regions", (long long)E, op->nregions);
  if (idx->rank != 2 || idx->dims[0] != c->T || w->n != idx->n)
    return ic_op_fail(s, op, "idx and w must be [T, K]");
  int64_t T = c->T, K = idx->dims[1];
  for (int64_t i = 0; i < idx->n; i++) {
    int64_t e = (int64_t)idx->d[i];
    if (e < 0 || e >= E)
      return ic_op_fail(s, op, "expert index %lld (token %lld, slot %lld) is out of range [0, %lld)", (long long)e,
                        (long long)(i / K), (long long)(i % K), (long long)E);
  }
  IVal *out = ic_def(s, op->out[0], c);
  IcCount *cnt0 = ic_count_of(s, op);
  if (cnt0) cnt0->tokens += T;
  int64_t row = out->n / T;
  double *acc = xcalloc((size_t)(out->n ? out->n : 1), sizeof(double));
  int64_t *rows = xmalloc(sizeof(int64_t) * (size_t)T);
  double *coef = xmalloc(sizeof(double) * (size_t)T);
  int rc = 0;
  for (int64_t e = 0; e < E && rc == 0; e++) {
    int64_t n = 0;
    for (int64_t t = 0; t < T; t++) {
      double wsum = 0;
      int hit = 0;
      for (int64_t k = 0; k < K; k++)
        if ((int64_t)idx->d[t * K + k] == e) hit = 1, wsum += w->d[t * K + k];
      if (hit) rows[n] = t, coef[n++] = wsum;
    }
    if (n == 0) continue; /* experts no token chose are not run */
    IcCount *cnt = ic_count_of(s, op);
    if (cnt) cnt->rows[e] += n, cnt->calls[e]++;
    IVal *y = ic_run_rows(s, op, op->regions[e], 2, c, rows, n);
    if (!y) { rc = -1; break; }
    if (y->n != n * row) { rc = ic_op_fail(s, op, "expert %lld yields %lld elements, expected %lld", (long long)e, (long long)y->n, (long long)(n * row)); break; }
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < row; j++) acc[rows[i] * row + j] += coef[i] * y->d[i * row + j];
  }
  /* The result value may have been reused inside a region; re-fetch it. */
  out = ic_get(s, op->out[0]);
  if (rc == 0)
    for (int64_t i = 0; i < out->n; i++) out->d[i] = ic_round(IR_F32, acc[i]);
  free(acc);
  free(rows);
  free(coef);
  return rc;
}

static int ic_skip(InterpSession *s, const IrOp *op, const IcCtx *c) {
  IVal *in[64];
  if (op->nin < 2 || op->nout != 1 || op->nregions != 1) return ic_op_fail(s, op, "expects (cond, prev, x...) and one region");
  if (ic_operands(s, op, in, 64) < 0) return -1;
  IVal *cond = in[0], *prev = in[1];
  int64_t T = c->T;
  if (cond->n != T) return ic_op_fail(s, op, "cond must be [T]");
  IVal *out = ic_def(s, op->out[0], c);
  if (prev->n != out->n) return ic_op_fail(s, op, "prev must have the result's shape");
  memcpy(out->d, prev->d, sizeof(double) * (size_t)out->n);
  int64_t row = out->n / T, n = 0;
  int64_t *rows = xmalloc(sizeof(int64_t) * (size_t)T);
  const IrAttr *cap = ir_op_attr(op, "capacity"), *topk = ir_op_attr(op, "top_k"), *tau = ir_op_attr(op, "threshold");
  if (tau && T == 1) {
    /* a router in causal decode: sigmoid(r) against the threshold */
    if (1.0 / (1.0 + exp(-cond->d[0])) >= tau->f) rows[n++] = 0;
  } else if (cap || topk) {
    /* a router: the top `keep` rows by score, ties to the lower row; a row's
       rank is the number of rows ahead of it */
    int64_t keep = cap ? (int64_t)ceil(cap->f * (double)T - 1e-9) : (topk->i < T ? topk->i : T);
    if (keep < 1) keep = 1;
    for (int64_t t = 0; t < T; t++) {
      int64_t rank = 0;
      for (int64_t u = 0; u < T; u++)
        if (cond->d[u] > cond->d[t] || (cond->d[u] == cond->d[t] && u < t)) rank++;
      if (rank < keep) rows[n++] = t;
    }
  } else if (ir_op_attr(op, "cmp")) {
    /* a threshold skip (`skip when s < tau`): skipped iff s[t] cmp cut */
    const char *cmp = ir_op_str(op, "cmp", "lt");
    double cut = ir_op_float(op, "cut", 0.0);
    int lt = !strcmp(cmp, "lt"), le = !strcmp(cmp, "le"), gt = !strcmp(cmp, "gt");
    for (int64_t t = 0; t < T; t++) {
      double v = cond->d[t];
      int skipped = lt ? v < cut : le ? v <= cut : gt ? v > cut : v >= cut;
      if (!skipped) rows[n++] = t;
    }
  } else {
    for (int64_t t = 0; t < T; t++)
      if (cond->d[t] == 0) rows[n++] = t;
  }
  IcCount *cnt = ic_count_of(s, op);
  if (cnt) cnt->rows[0] += n, cnt->tokens += T, cnt->calls[0] += n > 0;
  int rc = 0;
  /* kv_copy (GateSkip, `kv: previous`): every row of the call first gets the
     previous attention's cache rows; the kept rows' attention overwrites its own */
  const IrAttr *kvc = ir_op_attr(op, "kv_copy");
  for (int i = 0; kvc && i + 1 < kvc->n; i += 2) {
    int64_t a = kvc->ints[i], b = kvc->ints[i + 1], cap = s->m->max_T;
    if (a < 0 || b < 0 || a >= s->m->states.len || b >= s->m->states.len || s->state_n[a] != s->state_n[b] ||
        s->state_n[a] % cap != 0) {
      free(rows);
      return ic_op_fail(s, op, "bad kv_copy slots %lld -> %lld", (long long)a, (long long)b);
    }
    int64_t w = s->state_n[a] / cap;
    if (!s->written[b]) s->written[b] = xcalloc((size_t)cap, 1);
    for (int64_t t = 0; t < T; t++) {
      int64_t p = c->pos[t];
      if (p < 0 || p >= cap) {
        free(rows);
        return ic_op_fail(s, op, "position %lld is outside the KV cache of %lld rows", (long long)p, (long long)cap);
      }
      memcpy(s->states[b] + p * w, s->states[a] + p * w, sizeof(double) * (size_t)w);
      s->written[b][p] = 1;
    }
  }
  /* rows_state: the kept rows form one packed sequence across calls, so their
     positions inside the region continue from the rows of earlier calls */
  IcCtx packed = *c;
  int64_t *ppos = NULL;
  int rs = ic_state_slot(s, op, "rows_state", 1, 0);
  if (rs == -2) {
    free(rows);
    return -1;
  }
  if (rs >= 0) {
    ppos = xmalloc(sizeof(int64_t) * (size_t)T);
    int64_t base = (int64_t)s->states[rs][0];
    for (int64_t i = 0; i < n; i++) ppos[rows[i]] = base + i;
    packed.pos = ppos;
    s->states[rs][0] = (double)(base + n);
  }
  if (n > 0) {
    IVal *y = ic_run_rows(s, op, op->regions[0], 2, &packed, rows, n);
    if (!y) rc = -1;
    else if (y->n != n * row) rc = ic_op_fail(s, op, "region yields %lld elements, expected %lld", (long long)y->n, (long long)(n * row));
    else
      for (int64_t i = 0; i < n; i++)
        memcpy(out->d + rows[i] * row, y->d + i * row, sizeof(double) * (size_t)row);
  }
  free(rows);
  free(ppos);
  return rc;
}

/* ---- leaves and dispatch -------------------------------------------------- */

static int ic_leaf(InterpSession *s, const IrOp *op, const IcCtx *c) {
  const IrModule *m = s->m;
  if (op->nout != 1) return ic_op_fail(s, op, "expects one result");
  const IrValue *rv = op->out[0];
  switch (op->kind) {
    case IR_OP_INPUT: {
      const char *name = ir_op_str(op, "name", "");
      const Tensor *t = tensorset_find(s->inputs, name);
      if (!t) return ic_op_fail(s, op, "no input named '%s'", name);
      IVal *v = ic_def(s, rv, c);
      if (v->n != tensor_numel(t)) return ic_op_fail(s, op, "input '%s' has the wrong size", name);
      for (int64_t i = 0; i < v->n; i++)
        v->d[i] = t->dtype == IR_F32 ? (double)((const float *)t->data)[i] : (double)((const int32_t *)t->data)[i];
      if (rv->dtype != t->dtype)
        for (int64_t i = 0; i < v->n; i++) v->d[i] = ic_round(rv->dtype, v->d[i]);
      return 0;
    }
    case IR_OP_PARAM: {
      const char *name = ir_op_str(op, "name", "");
      for (int i = 0; i < m->params.len; i++) {
        const IrParam *p = m->params.data[i];
        if (strcmp(p->name, name) != 0) continue;
        IVal *v = &s->vals[rv->id];
        ic_release(v);
        ic_resolve(rv->shape, c->T, v);
        if (v->n != ir_shape_numel(p->shape, 0)) return ic_op_fail(s, op, "param '%s' has a different shape", name);
        v->d = s->params[i]; /* borrowed: weights are read-only */
        v->owned = 0;
        return 0;
      }
      return ic_op_fail(s, op, "no parameter named '%s'", name);
    }
    case IR_OP_CONST: {
      IVal *v = ic_def(s, rv, c);
      double x = ic_round(rv->dtype, ir_op_float(op, "value", 0.0));
      for (int64_t i = 0; i < v->n; i++) v->d[i] = x;
      return 0;
    }
    case IR_OP_POSITION: {
      IVal *v = ic_def(s, rv, c);
      if (v->n != c->T) return ic_op_fail(s, op, "result must be i32[T]");
      for (int64_t i = 0; i < v->n; i++) v->d[i] = ic_round(rv->dtype, (double)c->pos[i]);
      return 0;
    }
    default: gat_unreachable();
  }
}

static int ic_output(InterpSession *s, const IrOp *op) {
  if (op->nin != 1) return ic_op_fail(s, op, "expects one operand");
  IVal *in[1];
  if (ic_operands(s, op, in, 1) < 0) return -1;
  const char *name = ir_op_str(op, "name", "");
  IrDType dt = op->in[0]->dtype;
  for (int i = 0; i < s->m->outputs.len; i++) {
    const IrIO *io = s->m->outputs.data[i];
    if (strcmp(io->name, name) == 0) dt = io->dtype;
  }
  if (tensorset_find(s->outputs, name)) return ic_op_fail(s, op, "output '%s' is produced twice", name);
  Tensor *t = tensorset_add(s->outputs, name, dt, in[0]->rank, in[0]->dims);
  for (int64_t i = 0; i < in[0]->n; i++) {
    if (dt == IR_F32) ((float *)t->data)[i] = (float)in[0]->d[i];
    else ((int32_t *)t->data)[i] = (int32_t)ic_round(IR_I32, in[0]->d[i]);
  }
  return 0;
}

static int ic_op(InterpSession *s, const IrOp *op, const IcCtx *c) {
  switch (op->kind) {
    case IR_OP_INPUT:
    case IR_OP_PARAM:
    case IR_OP_CONST:
    case IR_OP_POSITION: return ic_leaf(s, op, c);
    case IR_OP_OUTPUT: return ic_output(s, op);
    case IR_OP_UNARY:
    case IR_OP_BINARY:
    case IR_OP_SELECT:
    case IR_OP_CAST: return ic_elementwise(s, op, c);
    case IR_OP_MATMUL: return ic_matmul(s, op, c);
    case IR_OP_LINEAR: return ic_linear(s, op, c);
    case IR_OP_INDEX: return ic_index(s, op, c);
    case IR_OP_REDUCE: return ic_reduce(s, op, c);
    case IR_OP_SOFTMAX: return ic_softmax(s, op, c);
    case IR_OP_RMS_NORM:
    case IR_OP_LAYER_NORM:
    case IR_OP_L2_NORM: return ic_norm(s, op, c);
    case IR_OP_GATHER: return ic_gather(s, op, c);
    case IR_OP_TOPK: return ic_topk(s, op, c);
    case IR_OP_RESHAPE: return ic_reshape(s, op, c);
    case IR_OP_TRANSPOSE: return ic_transpose(s, op, c);
    case IR_OP_CONCAT: return ic_concat(s, op, c);
    case IR_OP_SPLIT:
    case IR_OP_SLICE: return ic_split_slice(s, op, c);
    case IR_OP_ROPE: return ic_rope(s, op, c);
    case IR_OP_CONV1D: return ic_conv1d(s, op, c);
    case IR_OP_ATTENTION: return ic_attention(s, op, c);
    case IR_OP_SCAN: return ic_scan(s, op, c);
    case IR_OP_MIXTURE: return ic_mixture(s, op, c);
    case IR_OP_SKIP: return ic_skip(s, op, c);
    case IR_OP_COUNT_: break;
  }
  return ic_op_fail(s, op, "unknown op kind %d", (int)op->kind);
}

static int ic_block(InterpSession *s, const IrBlock *b, const IcCtx *c) {
  for (int i = 0; i < b->ops.len; i++)
    if (ic_op(s, b->ops.data[i], c) < 0) return -1;
  return 0;
}

/* ---- sessions --------------------------------------------------------------- */

static void ic_shape_str(char *buf, size_t n, int rank, const int64_t *dims) {
  IVal v;
  v.rank = rank;
  memcpy(v.dims, dims, sizeof(int64_t) * (size_t)rank);
  ic_dims_str(buf, n, &v);
}

InterpSession *interp_new(const IrModule *m, const TensorSet *weights, char *err, size_t errlen) {
  for (int i = 0; i < m->params.len; i++) {
    const IrParam *p = m->params.data[i];
    const Tensor *t = tensorset_find(weights, p->name);
    char want[160], got[160];
    ir_type_str(want, sizeof want, p->dtype, p->shape);
    if (!t) {
      ic_fail(err, errlen, "missing weight '%s' (the model needs %s)", p->name, want);
      return NULL;
    }
    if (t->dtype != p->dtype) {
      ic_fail(err, errlen, "weight '%s' has dtype %s, expected %s", p->name, ir_dtype_name(t->dtype), want);
      return NULL;
    }
    int same = t->rank == p->shape.rank;
    for (int d = 0; same && d < t->rank; d++) same = t->dims[d] == p->shape.dims[d];
    if (!same) {
      ic_shape_str(got, sizeof got, t->rank, t->dims);
      ic_fail(err, errlen, "weight '%s' has shape %s, expected %s", p->name, got, want);
      return NULL;
    }
  }
  for (int i = 0; i < weights->n; i++)
    if (!ir_module_find_param(m, weights->t[i].name)) {
      ic_fail(err, errlen, "unexpected weight '%s': model '%s' has no such parameter", weights->t[i].name, m->name);
      return NULL;
    }
  InterpSession *s = xcalloc(1, sizeof *s);
  s->m = m;
  s->params = xcalloc((size_t)(m->params.len + 1), sizeof(double *));
  for (int i = 0; i < m->params.len; i++) {
    const IrParam *p = m->params.data[i];
    const Tensor *t = tensorset_find(weights, p->name);
    int64_t n = tensor_numel(t);
    s->params[i] = xmalloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t k = 0; k < n; k++)
      s->params[i][k] = t->dtype == IR_F32 ? (double)((const float *)t->data)[k] : (double)((const int32_t *)t->data)[k];
  }
  int ns = m->states.len;
  s->states = xcalloc((size_t)(ns + 1), sizeof(double *));
  s->state_n = xcalloc((size_t)(ns + 1), sizeof(int64_t));
  s->written = xcalloc((size_t)(ns + 1), sizeof(unsigned char *));
  for (int i = 0; i < ns; i++) {
    const IrState *st = m->states.data[i];
    s->state_n[i] = ir_shape_numel(st->shape, m->max_T);
    s->states[i] = xmalloc(sizeof(double) * (size_t)(s->state_n[i] ? s->state_n[i] : 1));
  }
  const char *cp = getenv("GAT_INTERP_COUNT");
  if (cp && *cp) {
    s->count_path = xstrdup(cp);
    ic_count_collect(s, m->body);
  }
  interp_reset(s);
  return s;
}

void interp_reset(InterpSession *s) {
  for (int i = 0; i < s->m->states.len; i++) {
    const IrState *st = s->m->states.data[i];
    double v = ic_round(st->dtype, st->init);
    for (int64_t k = 0; k < s->state_n[i]; k++) s->states[i][k] = v;
    if (s->written[i]) memset(s->written[i], 0, (size_t)s->m->max_T);
  }
  s->pos0 = 0;
}

void interp_free(InterpSession *s) {
  if (!s) return;
  for (int i = 0; i < s->m->params.len; i++) free(s->params[i]);
  for (int i = 0; i < s->m->states.len; i++) {
    free(s->states[i]);
    free(s->written[i]);
  }
  free(s->params);
  free(s->states);
  free(s->state_n);
  free(s->written);
  for (int i = 0; i < s->ncounts; i++) free(s->counts[i].rows), free(s->counts[i].calls);
  free(s->counts);
  free(s->count_path);
  free(s);
}

/* Validates the inputs against the module and finds T. */
static int ic_check_inputs(InterpSession *s, const TensorSet *inputs, int64_t *T_out, char *err, size_t errlen) {
  if (interp_check_inputs(s->m, inputs, T_out, err, errlen) < 0) return -1;
  if (s->pos0 + *T_out > s->m->max_T)
    return ic_fail(err, errlen, "sequence too long: %lld tokens already seen + T = %lld exceeds max_T = %lld "
                   "(reset the session)", (long long)s->pos0, (long long)*T_out, (long long)s->m->max_T);
  return 0;
}

int interp_check_inputs(const IrModule *m, const TensorSet *inputs, int64_t *T_out, char *err, size_t errlen) {
  int64_t T = -1;
  const char *T_from = NULL;
  for (int i = 0; i < m->inputs.len; i++) {
    const IrIO *io = m->inputs.data[i];
    const Tensor *t = tensorset_find(inputs, io->name);
    char want[160];
    ir_type_str(want, sizeof want, io->dtype, io->shape);
    if (!t) return ic_fail(err, errlen, "missing input '%s' (the model needs %s)", io->name, want);
    if (t->dtype != io->dtype)
      return ic_fail(err, errlen, "input '%s' has dtype %s, expected %s", io->name, ir_dtype_name(t->dtype), want);
    if (t->rank != io->shape.rank)
      return ic_fail(err, errlen, "input '%s' has rank %d, expected %s", io->name, t->rank, want);
    for (int d = 0; d < t->rank; d++) {
      if (io->shape.dims[d] == IR_DIM_T) {
        if (T < 0) {
          T = t->dims[d];
          T_from = io->name;
        } else if (t->dims[d] != T) {
          return ic_fail(err, errlen, "input '%s' dimension %d is %lld, but T = %lld from input '%s'", io->name, d,
                         (long long)t->dims[d], (long long)T, T_from);
        }
      } else if (t->dims[d] != io->shape.dims[d]) {
        return ic_fail(err, errlen, "input '%s' dimension %d is %lld, expected %s", io->name, d,
                       (long long)t->dims[d], want);
      }
    }
  }
  for (int i = 0; i < inputs->n; i++) {
    int known = 0;
    for (int k = 0; k < m->inputs.len; k++)
      if (strcmp(((const IrIO *)m->inputs.data[k])->name, inputs->t[i].name) == 0) known = 1;
    if (!known) return ic_fail(err, errlen, "unexpected input '%s': model '%s' has no such input", inputs->t[i].name, m->name);
  }
  if (T < 0) T = 1; /* no input mentions T: one step */
  if (T < 1) return ic_fail(err, errlen, "T = %lld: a call needs at least one token", (long long)T);
  *T_out = T;
  return 0;
}

int interp_forward(InterpSession *s, const TensorSet *inputs, TensorSet *outputs, char *err, size_t errlen) {
  int64_t T = 1;
  if (ic_check_inputs(s, inputs, &T, err, errlen) < 0) return -1;
  s->nvals = s->m->next_value_id;
  s->vals = xcalloc((size_t)(s->nvals + 1), sizeof(IVal));
  s->inputs = inputs;
  s->err = err;
  s->errlen = errlen;
  TensorSet outs = {0};
  s->outputs = &outs;
  int64_t *pos = xmalloc(sizeof(int64_t) * (size_t)T);
  for (int64_t t = 0; t < T; t++) pos[t] = s->pos0 + t;
  IcCtx c = {T, pos, pos};
  int rc = ic_block(s, s->m->body, &c);
  for (int i = 0; rc == 0 && i < s->m->outputs.len; i++) {
    const IrIO *io = s->m->outputs.data[i];
    if (!tensorset_find(&outs, io->name)) rc = ic_fail(err, errlen, "output '%s' was never produced", io->name);
  }
  for (int i = 0; i < s->nvals; i++) ic_release(&s->vals[i]);
  free(s->vals);
  s->vals = NULL;
  free(pos);
  if (rc == 0) {
    /* Hand the outputs over only on success. */
    for (int i = 0; i < outs.n; i++) {
      Tensor *t = tensorset_add(outputs, outs.t[i].name, outs.t[i].dtype, outs.t[i].rank, outs.t[i].dims);
      free(t->data);
      t->data = outs.t[i].data;
      outs.t[i].data = NULL;
    }
    s->pos0 += T;
    if (s->count_path) ic_count_write(s);
  }
  tensorset_free(&outs);
  return rc;
}
