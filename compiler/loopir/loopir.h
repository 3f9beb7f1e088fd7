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
 *   - LK_TILE (-O2, pass_block): a blocking loop `for v in 0..n step s`
 *     around a region; the micro-kernel calls at its leaves compute the block
 *     the enclosing tile variables select (LoopKernel.blk_var).
 * Lowering (loopir_lower.c) makes one kernel per graph-IR op, which is what
 * -O0 emits; the -O1/-O2 passes (compiler/passes/, docs/optimizer.md) then
 * rewrite the module, e.g. fusing LK_LOOP kernels into one domain with
 * several stores and turning contractions into LC_GEMM calls.
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
  LX_CONST, LX_LOAD, LX_VAR, LX_POS0, LX_UNARY, LX_BINARY, LX_SELECT, LX_REDUCE,
  LX_TEMP /* -O2 (pass_licm): the value of let number `var` of the enclosing LK_LOOP kernel
             (k->lets[var], see LoopLet); never rounded itself (round = 0) */
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

/* LC_ROPE: args[0] x, sizes T, H, D, dims, reals[0] base; row t rotates at position pos0 + t,
   or, when nargs > 1 (inside a mixture/skip region), at args[1][t]: an i32[T] buffer of the
   rows' absolute positions (gattnc runtime gat_k_rope_pos). */
typedef enum LoopCallKind {
  LC_SOFTMAX, LC_RMS_NORM, LC_LAYER_NORM, LC_L2_NORM, LC_GATHER, LC_TOPK, LC_ROPE, LC_CONV1D,
  LC_ATTENTION,
  LC_GEMM /* -O2 (pass_gemm): out[M, N] = epilogue(a[M, K] . W^T); args[0] a, args[1] W packed
             (a persistent buffer filled at init, see LoopPack) or -1, args[2] bias[N] or -1,
             args[3] residual[M, N] or -1, args[4] the raw weight (param) when not packed,
             args[5] per-call packing scratch when not packed; sizes M, N, K; epi_act below.
             args[6] row scale rs[M] (f32) or -1 (pass_prologue: a folded RMSNorm; the
             accumulator of row m is multiplied by rs[m] before the bias).
             args[7] second packed weight U or -1 (pass_glu: out = act(a.W^T [*rs] + bias)
             * (a.U^T [*rs] + args[8]), each step rounded to f32; epi_act applies to the W
             product only, args[3] must then be -1), args[8] the bias of U or -1. The args
             after [5] are absent (-1) unless nargs covers them.
             args[9] gate y[M, N] (f32) or -1 (pass_gate: out = act(a.W^T [*rs] + bias) * y,
             each step rounded to f32; args[3], args[7] then -1).
             ncat > 0 (pass_concat): one GEMM over several packed weights that read the same
             a (and row scale args[6]): segment s = cat[s] computes cat[s].out[M, cat[s].n]
             = epilogue_s(a . W_s^T); out = cat[0].out, sizes[1] = the sum of the n, args[1..5],
             args[7..9] and epi_act unused (-1 / 0). See LoopGemmSeg. */
  ,LC_COPY_ROWS /* GateSkip's KV copy (graph-IR skip attr kv_copy), emitted just before the LK_SKIP
                   kernel at the top level: rows pos0 .. pos0 + T - 1 of state args[0] are copied
                   to the same rows of state `out` (gat_k_copy_rows); sizes T, row elements */
} LoopCallKind;

/* One output segment of a concatenated GEMM (LC_GEMM with ncat > 0, pass_concat): columns
 * [n0, n0 + n) of the concatenated product, written to their own buffer `out` [M, n] with their
 * own packed weight `w` (a persistent LoopPack buffer), bias[n] or -1, residual res[M, n] or -1
 * and epilogue activation act (0 or 1 + IrFn): exactly what the separate LC_GEMM computed. */
typedef struct LoopGemmSeg {
  int out, w, bias, res, act;
  int64_t n;
} LoopGemmSeg;

typedef enum LoopKernelKind { LK_LOOP, LK_CALL, LK_COPY, LK_SCAN, LK_MIXTURE, LK_SKIP, LK_TILE } LoopKernelKind;

typedef struct LoopRegion {
  int tvar;     /* row variable of this region (own for mixture/skip, inherited for scan) */
  int nargs;
  int *args;    /* buffers bound to the region's arguments */
  int nyield;
  int *yields;  /* buffers holding the region's results */
  PtrVec kernels; /* LoopKernel* */
} LoopRegion;

/* A loop-invariant temporary of an LK_LOOP kernel (-O2, pass_licm).
 * The kernel's loop order is its domain loops v0 .. v{rank-1}, outermost
 * first; with red_outer set it is v0 .. v{rank-2}, v_R, v{rank-1} where v_R
 * is the variable of the body's one reduction (see red_outer). A let of
 * `level` L is evaluated once per iteration of the first L loops of that
 * order (L = 0: once per kernel call, before all loops), in index order, as
 * a double: exactly the value its expression `e` would have had at the
 * places LX_TEMP nodes now stand (including `round` of e's root). `e` uses
 * only the variables of those L loops, lets of smaller index, and loads of
 * buffers the kernel does not write; it may contain reductions over their
 * own variables. Evaluating every LX_TEMP in place (e inlined) is correct. */
typedef struct LoopLet {
  int level;
  LoopExpr *e;
} LoopLet;

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
  int nlets;           /* LK_LOOP, -O2: loop-invariant temporaries, see LoopLet */
  LoopLet *lets;
  int red_outer;       /* LK_LOOP schedule hint, -O2 (pass_interchange): the body holds exactly one
                          LX_REDUCE R (sum, not inside a select branch) and ext[rank-1] is a constant;
                          run R's loop outside the innermost domain loop: per v0..v{rank-2}, an array
                          acc[ext[rank-1]] of doubles set to 0, then for v_R: for v{rank-1}:
                          acc[v{rank-1}] += R's operand, then for v{rank-1}: out = body with R read as
                          acc[v{rank-1}]. Same additions in the same order per element, so the same
                          result as the plain nest; a backend may ignore the flag. */
  int f32_math;        /* LK_LOOP, -O2 (pass_f32math): evaluate lets, body and reductions in IEEE
                          single precision (float; each operation rounded to float, exp as expf, ...)
                          instead of double. Set only when every value is f32 and the expressions
                          use only + - * /, neg, max, min, select, the functions of
                          codegen/kernels/kernels_math.h (exp, log, sqrt, rsqrt, abs, tanh, sigmoid, silu,
                          softplus, logsigmoid, gelu_tanh, relu), sum/mean/max/min over a constant
                          extent; results differ from -O0 by float rounding (~1e-7 rel). The C
                          backend uses float functions of its own (<= 2.6 ulp) and sums unit-stride
                          reductions in lanes (summation order changes); a backend may evaluate the
                          functions in double and round. */
  LoopExpr *sweep_at;  /* LK_LOOP with red_outer, -O2 (pass_scanfuse): NULL, or an LX_LOAD naming a second
                          store of the kernel (buffer sweep_at->buf at index sweep_at->idx, over the kernel's
                          domain and reduction variables), made in the reduction sweep: for every v_R and
                          v{rank-1} (inside both loops), sweep_at = sweep_val (rounded to the buffer's
                          dtype) first, then acc[v{rank-1}] += R's operand, whose loads of that buffer read
                          the value just stored. The index visits every element of the buffer once; lets
                          and the body outside R's operand never read the buffer. A scan step's state
                          update S'[..] = f(S[..]) fused with the output reduction o = sum(i) q S'. */
  LoopExpr *sweep_val;
  /* LK_CALL: args are buffers (-1 = absent), sizes and reals are call-specific */
  LoopCallKind call;
  int nargs;
  int args[LOOP_MAX_ARGS];
  int nsizes;
  LoopSize sizes[LOOP_MAX_ARGS];
  double reals[4];
  int epi_act;         /* LC_GEMM: 0 = none, else 1 + the IrFn applied after the bias */
  int64_t w_sn, w_sk;  /* LC_GEMM: strides of the weight along N and K (linear: K, 1; matmul: 1, N) */
  int attn_fast;       /* LC_ATTENTION schedule hint, -O2 (pass_attention): 1 = the C backend calls its
                          emitted flash kernel gat_flash_attn_DK_DV (codegen/kernels/attention.c)
                          instead of the runtime's gat_k_attention. Arguments, sizes and semantics are
                          unchanged and equal gat_k_attention's (new K/V/kb rows appended at
                          pos0 .. pos0+T-1 first, same visible keys, biases, scale, GQA, window);
                          only the arithmetic differs: f32 accumulation with FMA and a polynomial exp
                          instead of double (about 1e-6 relative). Set only when args[10] == -1 (no
                          packed skip/route rows; relbias args[9] and positions args[11] allowed: a
                          kernel variant each), dk and dv are constants <= 256 and T is the
                          only row-dependent size; args[8] (the scores scratch) is unused then. A
                          backend may ignore the flag and call gat_k_attention. */
  int attn_part;       /* LC_ATTENTION with attn_fast, -O2 (pass_block): LOOP_ATTN_WHOLE (0): the call
                          appends its K/V rows and runs every head; LOOP_ATTN_APPEND: only the
                          append; LOOP_ATTN_HEADS: only heads [v, v + blk_len[1]) (v the tile
                          variable blk_var[1], clamped to H) of rows an APPEND call of the same
                          arguments made earlier. pass_block writes an APPEND kernel followed by a
                          tile loop over heads around a HEADS leaf; heads are independent (each
                          reads its own q rows and the caches, writes its own out columns). */
  int scan_chunk;      /* LK_SCAN schedule hint, -O2 (pass_chunk): 0 = none; 1 = the region is GLA's
                          S' = diag(e^gk_t) S + k_t v_t^T, o_t = scale S'^T q_t per head; 2 = the delta
                          rule u = beta_t (v_t - a_t S^T k_t), S' = a_t S + k_t u^T, o_t = scale S'^T q_t
                          (a_t = 1 without decay). Then args[2] q, args[3] k ([T, H, K]), args[4] v
                          ([T, H, V] / [T, H, G, V]), args[5] gk [T, H, K] (GLA) or beta [T, H(, G)],
                          args[6] decay [T, H(, G)] or -1, args[7] an f32 workspace scratch; sizes[0..3]
                          = H, G, K, V (constants), reals[0] = scale; one state (state_bufs[0]) and one
                          emitted result (xs[0]). With T >= KERNELS_SCAN_MIN_T rows both backends call
                          the chunked kernel of codegen/kernels/scan.c (C: its text, LLVM: its
                          bitcode) instead of running the region
                          per token: same final state and outputs up to f32 rounding. A backend may
                          ignore the hint (the region stays exact). */
  /* LK_COPY: args[0] -> out, sizes[0] elements */
  /* LK_SCAN: args[0] = t buffer, args[1] = emit-stacked result; state_bufs[i] per state;
     region yields = (s_0' .. s_{n-1}', emit).
     LK_MIXTURE: args[0] idx, args[1] w, args[2] rows scratch, args[3] f64 accumulator
     [T, row] (experts add into it in double, rounded once, like the interpreter), out;
     x_1..x_n in xs;
     sizes[0] = K, E = nregions. LK_SKIP: args[0] cond, args[1] prev, args[2] rows, out; xs.
     LK_SKIP semantics: out = prev; rows[0..n) = the kept rows in increasing order; if n > 0,
     the region's args (tvar rows = n) get xs gathered at those rows, the region runs, and its
     yield's n rows are scattered to out at those rows. Plain skip: kept iff cond[t] == 0.
     LK_SKIP as a router (`route top(...) by r`, graph-IR skip with capacity/top_k): a router
     iff reals[0] > 0 or reals[1] > 0; cond (f32[T]) is then the score r; reals[0] = capacity
     c, reals[1] = top_k k (exactly one is > 0), reals[2] = threshold tau (< 0: none).
     keep = c > 0 ? max(1, ceil(c * T - 1e-9)) : min(k, T), computed in double; row t is kept
     iff rank(t) < keep, rank(t) = #{u : r[u] > r[t] or (r[u] == r[t] and u < t)} (descending,
     ties to the lower row). If tau >= 0 and T == 1, row 0 is kept iff
     1 / (1 + exp(-(double)r[0])) >= tau instead.
     LK_SKIP with nstates == 1 (graph-IR attr rows_state; an attention runs in the region):
     state_bufs[0] is an i32[1] state holding the rows the region ran on in earlier calls
     (base); the region's rows form one packed sequence, so positions inside the region are
     base + row, and after the region ran (n > 0) state_bufs[0][0] += n. LC_ATTENTION kernels
     in such a region have nargs == 11 and args[10] = that buffer: their pos0 (KV cache row of
     the first query, keys 0 .. pos0 + row visible) is args[10][0] instead of the tokens
     before this call. Backends without this must refuse nargs > 10 (pass_attention does).
     LC_ATTENTION with nargs == 12 and args[11] >= 0 (args[10] == -1): an attention in a
     `kv: previous` skip region (graph-IR attr kv_copy, preceded by LC_COPY_ROWS kernels):
     args[11] is the region's i32[T] buffer of absolute positions; row t's K/V go to cache row
     args[11][t] and query t sees keys j <= args[11][t] (gat_attn_args.pos).
     Execution counters (m->count, codegen/c/emit_count.h): per LK_MIXTURE/LK_SKIP kernel in
     pre-order, tokens += T on entry, and per region that runs: rows += n, calls += 1. */
  int skip_cmp;        /* LK_SKIP threshold skip (graph-IR attrs cmp/cut): 0 = none (kept iff cond == 0),
                          1 lt, 2 le, 3 gt, 4 ge: row t is skipped iff (double)cond[t] CMP reals[3]
                          (cond f32[T] is the score). reals[3] (cut) and, for routers, reals[0..2]
                          are the defaults of the skip op's run-time knobs: the C backend reads
                          them from the model (NAME_set_skip_threshold / NAME_set_route_capacity,
                          codegen/c/emit_knobs.c); a backend without knobs uses them as constants. */
  int ncat;            /* LC_GEMM, -O2 (pass_concat): number of segments (0 = a plain GEMM) */
  LoopGemmSeg *cat;
  /* LK_TILE (-O2, pass_block): for tile variable `tile_var` (0 .. m->ntiles-1, one per LK_TILE
     kernel) = 0, tile_step, 2 * tile_step, ... < sizes[0], run regions[0] (tvar inherited, no
     arguments or yields). tile_par = 1: the iterations write disjoint outputs and read nothing
     another iteration writes, so they may run in any order or at once (threads, issue-level
     plan); 0 = in order. A tile loop has no other effect: removing it and running its leaves
     with their blocks widened to the whole extent computes the same bits. */
  int tile_var;
  int64_t tile_step;
  int tile_par;
  /* LC_GEMM under LK_TILE kernels: blk_var[0] >= 0: the call computes only rows
     [v, min(v + blk_len[0], M)) of its result, v = that enclosing tile variable; blk_var[1]
     likewise for columns [v, min(v + blk_len[1], N)). -1 = the whole extent. Row blocks are
     multiples of every target's micro-tile rows (LOOP_BLOCK_M) and column blocks of the
     packed panel width (LOOP_PACK_NR), so each element sees the same tile/row code and
     additions as without blocks (the same bits). Only packed, unsegmented GEMMs (plain or GLU)
     take column blocks; segmented ones (pass_concat / pass_gate) take row blocks only.
     LC_ATTENTION (attn_part LOOP_ATTN_HEADS): blk_var[1] selects the heads, blk_var[0] is -1. */
  int blk_var[2];
  int64_t blk_len[2];
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
/* LoopKernel.attn_part */
#define LOOP_ATTN_WHOLE 0
#define LOOP_ATTN_APPEND 1
#define LOOP_ATTN_HEADS 2

/* Row blocks of a blocked GEMM (pass_block, LoopKernel.blk_var) are multiples of this: of every
 * target's register-tile rows (4, 6, 12) and row-block (32, 48, 96) of codegen/kernels/gemm.c. */
#define LOOP_BLOCK_M 96

/* --target: what the emitted GEMM kernels assume about the CPU. NATIVE picks
 * the vector width from the compiler's target macros; PORTABLE is plain C11
 * loops (no vector extensions; 4 x 8 tiles); the others fix width and register
 * block, rows x columns (X86_64: SSE2 4 floats, 6 x 8; AVX2: 8 floats + FMA,
 * 6 x 16; AVX512: 16 floats, 12 x 32; codegen/kernels/gemm.c GAT_MR x GAT_NR)
 * and #error when compiled for a CPU without the features. */
typedef enum LoopTarget { LT_NATIVE, LT_PORTABLE, LT_X86_64, LT_AVX2, LT_AVX512 } LoopTarget;
typedef struct LoopPack {
  int param;          /* parameter index */
  int buf;            /* destination: a persistent scratch buffer */
  int64_t N, K, sn, sk;
  /* Folded static scales (pass_scalefold; all neutral when made by pass_gemm):
   * packed W'[n, k] = (float)((double)W[n, k] * scale * alpha * vec(k)), one rounding, where
   * alpha = param #scale_param's first element (or 1 when -1) and vec(k) = param
   * #scale_vec[k] (1 + that when vec_plus_one; 1 when scale_vec is -1). */
  double scale;       /* static factor (1.0 = none) */
  int scale_param;    /* -1 or a parameter with one element (ReZero alpha) */
  int scale_vec;      /* -1 or a parameter of K elements (an RMSNorm weight g) */
  int vec_plus_one;
  int vector;         /* 1: not panels but a plain copy dst[n] = (float)(W[n] * scale * alpha) of an
                         N-element parameter (a folded bias); K = 1, sn = 1, sk = 0, scale_vec -1 */
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
  int ntiles;         /* tile variables (LK_TILE kernels) */
  int nkernels;
  int64_t state_bytes;  /* the state lives in [0, state_bytes) of the arena */
  int64_t arena_bytes;
  PtrVec packs;         /* LoopPack*: weights packed by NAME_init (pass_gemm) */
  int profile;          /* emit per-kernel timing (--profile) */
  int count;            /* emit execution counters per mixture expert / skip region (--count;
                           codegen/c/emit_count.c): rows and calls of every region, tokens offered */
  int opt_level;        /* for the generated file's comment */
  int target;           /* LoopTarget the GEMM kernels are specialised for (--target) */
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
/* Lanes of a float sum/mean in an f32_math nest (0: the plain sequential loop):
 * 32, 16 or 8 partial sums when the reduced operand is unit-stride along the
 * reduction variable and the extent is at least 64, 32 or 16. Both backends use
 * this one rule, so they add in the same order (docs/optimizer.md, "Vectorized
 * f32 nests"). */
int loop_sum_lanes(const LoopExpr *x);

/* ---- lowering from the graph IR (loopir_lower.c) ---------------------------- */
/* NULL + err when an op cannot be lowered. The module is verified beforehand. */
LoopModule *loop_lower(Arena *a, const IrModule *im, const char *c_name, char *err, size_t errlen);

/* ---- text form (loopir_print.c): `gattnc FILE --dump-loops` ------------------ */
void loop_print(FILE *out, const LoopModule *m);

#endif
