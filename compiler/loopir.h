/* loopir.h — the loop IR: what backends print, between the graph IR and C.
 *
 * A LoopModule is a list of buffers and a list of kernels run in order by
 * `forward`. Buffers are arena slices (scratch values and persistent state)
 * or pointers the caller hands in (weights, inputs, outputs); all are dense
 * row-major, sized for max_T. A kernel is one of:
 *   - LK_LOOP: a loop nest over a domain writing out[v + off] = body, where
 *     the body is a small expression tree (loads with affine indices,
 *     arithmetic, selects, nested reductions). Elementwise ops, index ops,
 *     reductions, contractions and data movement all lower to this.
 *   - LK_CALL: a runtime row kernel (softmax, norms, gather, top-k, RoPE,
 *     conv, attention) with buffer arguments and sizes.
 *   - LK_COPY: a flat copy (reshape, outputs).
 *   - LK_SCAN / LK_MIXTURE / LK_SKIP: control around regions of kernels.
 * At -O0 (all this issue builds) there is one kernel per graph-IR op; fusion
 * will later merge LK_LOOP kernels by giving one domain several stores.
 *
 * Sizes may depend on a row count: dims equal to IR_DIM_T in a buffer's
 * shape (or a kernel's domain) stand for row variable `tvar` (0 = the T of
 * the call; mixture experts and skip regions get their own, counting the
 * rows routed there). The loop IR never refers to the graph IR or the AST
 * except for the IrDType/IrShape/IrFn/IrReduceKind vocabulary it shares. */
#ifndef GATTNC_LOOPIR_H
#define GATTNC_LOOPIR_H

#include <stdint.h>
#include <stdio.h>

#include "ir.h"
#include "util.h"

typedef enum LoopBufKind { LB_SCRATCH, LB_STATE, LB_PARAM, LB_INPUT, LB_OUTPUT } LoopBufKind;

typedef struct LoopBuf {
  int id;
  LoopBufKind kind;
  IrDType dtype;
  IrShape shape;     /* IR_DIM_T dims mean row variable `tvar` */
  int tvar;
  int64_t offset;    /* arena byte offset (scratch, state) */
  int64_t bytes;     /* size at the maximum row count */
  int index;         /* param / input / output / state number */
  const char *name;  /* for dumps and comments */
  int is_f64;        /* scratch of doubles (attention scores); dtype ignored */
  int persistent;    /* scratch filled once at init (packed weights): never reused, never reset */
} LoopBuf;

/* A size k * T^tpow where T is a row variable. */
typedef struct LoopSize {
  int64_t k;
  int tpow;
  int tvar;
} LoopSize;

/* idx = c + sum coef_k * var_k + dyn_coef * (scalar i32 buffer dyn_buf) */
typedef struct LoopIndex {
  int64_t c;
  int nterms;
  int var[IR_MAX_AFFINE + 2];
  int64_t coef[IR_MAX_AFFINE + 2];
  int dyn_buf; /* -1: none */
  int64_t dyn_coef;
} LoopIndex;

typedef enum LoopExprKind {
  LX_CONST, LX_LOAD, LX_VAR, LX_POS0, LX_UNARY, LX_BINARY, LX_SELECT, LX_REDUCE
} LoopExprKind;

typedef struct LoopExpr LoopExpr;
struct LoopExpr {
  LoopExprKind kind;
  IrDType dtype;      /* of the value computed (integer mod vs fmod) */
  double f;           /* LX_CONST */
  int buf, nidx;      /* LX_LOAD */
  LoopIndex *idx;
  int var;            /* LX_VAR, LX_REDUCE */
  int64_t extent;     /* LX_REDUCE; IR_DIM_T = the kernel's row variable */
  IrFn fn;
  IrReduceKind red;
  LoopExpr *a, *b, *c;
  int round;          /* the value is rounded to `dtype` before use (an inlined producer's store) */
};

typedef enum LoopCallKind {
  LC_SOFTMAX, LC_RMS_NORM, LC_LAYER_NORM, LC_L2_NORM, LC_GATHER, LC_TOPK, LC_ROPE, LC_CONV1D,
  LC_ATTENTION,
  LC_GEMM /* -O2 (pass_gemm): out[M, N] = epilogue(a[M, K] . W^T); args[0] a, args[1] W packed
             (a persistent buffer filled at init, see LoopPack) or -1, args[2] bias[N] or -1,
             args[3] residual[M, N] or -1, args[4] the raw weight (param) when not packed,
             args[5] per-call packing scratch when not packed; sizes M, N, K; epi_act below */
} LoopCallKind;

typedef enum LoopKernelKind { LK_LOOP, LK_CALL, LK_COPY, LK_SCAN, LK_MIXTURE, LK_SKIP } LoopKernelKind;

typedef struct LoopRegion {
  int tvar;     /* row variable of this region (own for mixture/skip, inherited for scan) */
  int nargs;
  int *args;    /* buffers bound to the region's arguments */
  int nyield;
  int *yields;  /* buffers holding the region's results */
  PtrVec kernels; /* LoopKernel* */
} LoopRegion;

#define LOOP_MAX_ARGS 12
typedef struct LoopKernel {
  LoopKernelKind kind;
  int id;              /* order of creation: k<id> in names */
  const char *origin;  /* .gat layer, or NULL */
  const char *file;    /* source display name, or NULL */
  int line, col;
  const char *opname;  /* graph-IR op it came from ("linear", ...) */
  const char *what;    /* one-line description (types), for comments */
  int tvar;            /* row variable of the block it runs in */
  /* LK_LOOP */
  int out;
  int rank;
  int64_t ext[IR_MAX_RANK];   /* domain; IR_DIM_T allowed */
  int64_t out_off[IR_MAX_RANK];
  LoopExpr *body;
  /* LK_CALL: args are buffers (-1 = absent), sizes and reals are call-specific */
  LoopCallKind call;
  int nargs;
  int args[LOOP_MAX_ARGS];
  int nsizes;
  LoopSize sizes[LOOP_MAX_ARGS];
  double reals[4];
  int epi_act;         /* LC_GEMM: 0 = none, else 1 + the IrFn applied after the bias */
  int64_t w_sn, w_sk;  /* LC_GEMM: strides of the weight along N and K (linear: K, 1; matmul: 1, N) */
  /* LK_COPY: args[0] -> out, sizes[0] elements */
  /* LK_SCAN: args[0] = t buffer, args[1] = emit-stacked result; state_bufs[i] per state;
     region yields = (s_0' .. s_{n-1}', emit).
     LK_MIXTURE: args[0] idx, args[1] w, args[2] rows scratch, args[3] f64 accumulator
     [T, row] (experts add into it in double, rounded once, like the interpreter), out;
     x_1..x_n in xs;
     sizes[0] = K, E = nregions. LK_SKIP: args[0] cond, args[1] prev, args[2] rows, out; xs. */
  int nstates;
  int *state_bufs;
  int *state_tmp;      /* LK_SCAN: per state, a scratch copy of its new value when that value
                          is another state's old buffer (swap: double-buffered), else -1 */
  int nxs;
  int *xs;
  int nregions;
  LoopRegion **regions;
} LoopKernel;

typedef struct LoopTensorInfo { /* params, inputs, outputs, states as the API sees them */
  const char *name;
  IrDType dtype;
  IrShape shape;
  double init; /* states */
} LoopTensorInfo;

/* A weight packed at init into the GEMM micro-kernel layout: panels of NR
 * output columns, each K rows of NR floats, zero-padded (NR <= LOOP_PACK_NR). */
#define LOOP_PACK_NR 32
typedef struct LoopPack {
  int param;          /* parameter index */
  int buf;            /* destination: a persistent scratch buffer */
  int64_t N, K, sn, sk;
} LoopPack;

typedef struct LoopModule {
  Arena *arena;
  const char *name;   /* C identifier prefix */
  int64_t max_T;
  int nparams, ninputs, noutputs, nstates;
  LoopTensorInfo *params, *inputs, *outputs, *states;
  PtrVec bufs;        /* LoopBuf* by id */
  PtrVec kernels;     /* top-level LoopKernel* in run order */
  int ntvars;         /* row variables: 0 = T, then one per mixture expert / skip region */
  int nkernels;
  int64_t state_bytes;  /* the state lives in [0, state_bytes) of the arena */
  int64_t arena_bytes;
  PtrVec packs;         /* LoopPack*: weights packed by NAME_init (pass_gemm) */
  int profile;          /* emit per-kernel timing (--profile) */
  int opt_level;        /* for the generated file's comment */
} LoopModule;

/* ---- construction (loopir.c) ---------------------------------------------- */
LoopModule *loop_module_new(Arena *a, const char *name, int64_t max_T);
LoopBuf *loop_buf_new(LoopModule *m, LoopBufKind kind, IrDType dt, IrShape shape, int tvar,
                      const char *name);
LoopBuf *loop_buf(const LoopModule *m, int id);
LoopKernel *loop_kernel_new(LoopModule *m, LoopKernelKind kind);
LoopRegion *loop_region_new(LoopModule *m, int tvar);
LoopExpr *loop_expr_new(LoopModule *m, LoopExprKind kind, IrDType dt);
/* Places scratch and state buffers in the arena (state first, 64-byte aligned). */
void loop_module_layout(LoopModule *m);
int64_t loop_shape_numel_max(IrShape s, int64_t max_T);

/* ---- lowering from the graph IR (loopir_lower.c) ---------------------------- */
/* NULL + err when an op cannot be lowered. The module is verified beforehand. */
LoopModule *loop_lower(Arena *a, const IrModule *im, const char *c_name, char *err, size_t errlen);

/* ---- text form (loopir_print.c): `gattnc FILE --dump-loops` ------------------ */
void loop_print(FILE *out, const LoopModule *m);

#endif
