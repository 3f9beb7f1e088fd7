/* f32math.c — pass_f32math (-O2): short all-f32 loop nests compute in float.
 *
 * The plain lowering evaluates every expression in double and rounds once
 * per store, like the interpreter. For a nest whose loads and stores are all
 * f32 and whose arithmetic is a few basic operations, double buys little
 * (the inputs carry 24 bits) and costs half the vector width plus a
 * conversion per load and store; the scan steps of GLA / DeltaNet / GRU spend
 * their time in exactly such nests. This pass sets LoopKernel.f32_math on
 * them: lets, body and reductions are then evaluated in float, and the C
 * backend (codegen/c/emit_c.c) makes them vectorizable:
 *   - the elementwise functions exp, log, tanh, sigmoid, silu, softplus,
 *     logsigmoid, gelu_tanh, relu, rsqrt, max, min become the branch-free
 *     float functions of codegen/kernels/kernels_math.c (at most ~2.7 ulp from
 *     double libm), so a gate nest is a vector loop instead of one libm call
 *     per element;
 *   - a sum/mean whose operand reads consecutive elements along the summed
 *     variable accumulates in 8..32 independent partial sums (lanes) added
 *     pairwise at the end: the compiler vectorizes the lane loop, which it
 *     may not do for one accumulator without reassociation.
 * Results move by float rounding (about 1e-7 relative per operation, the
 * summation order of lane sums: see docs/optimizer.md), the same order of
 * error as the f32 GEMM micro-kernel. Not converted: anything with i32
 * values or f64 scratch, comparisons and logic (a rounding difference could
 * flip them), gelu_erf, pow, mod, reductions over more than F32MATH_MAX_RED
 * terms or over T. Backends without the float functions may evaluate them
 * in double and round (the LLVM backend builds the same functions as IR:
 * codegen/kernels/vecmath.c, linked as bitcode by emit_llvm_kernels.c). */
#include "pass.h"

#include "kernels_math.h"

#define F32MATH_MAX_RED 4096

static int f32_ok(const LoopModule *m, const LoopExpr *e) {
  if (!e) return 1;
  if (e->dtype != IR_F32) return 0;
  switch (e->kind) {
  case LX_CONST:
  case LX_TEMP: break;
  case LX_LOAD: {
    const LoopBuf *b = loop_buf(m, e->buf);
    if (b->is_f64 || b->dtype != IR_F32) return 0;
    break;
  }
  case LX_UNARY:
    if (e->fn != IR_FN_NEG && !kernels_math_unary_f32(e->fn)) return 0; /* a float version exists */
    break;
  case LX_BINARY:
    if (!(e->fn == IR_FN_ADD || e->fn == IR_FN_SUB || e->fn == IR_FN_MUL || e->fn == IR_FN_DIV ||
          e->fn == IR_FN_MAX || e->fn == IR_FN_MIN))
      return 0;
    break;
  case LX_SELECT: break;
  case LX_REDUCE:
    if (!(e->red == IR_RED_SUM || e->red == IR_RED_MEAN || e->red == IR_RED_MAX || e->red == IR_RED_MIN) ||
        e->extent == IR_DIM_T || e->extent > F32MATH_MAX_RED)
      return 0;
    break;
  default: return 0; /* variables (integers), pos0 */
  }
  return f32_ok(m, e->a) && f32_ok(m, e->b) && f32_ok(m, e->c);
}

static void f32_kernel(LoopModule *m, LoopKernel *k, void *ctx) {
  (void)ctx;
  if (k->kind != LK_LOOP || !k->body) return;
  const LoopBuf *o = loop_buf(m, k->out);
  if (o->is_f64 || o->dtype != IR_F32 || !f32_ok(m, k->body)) return;
  for (int l = 0; l < k->nlets; l++)
    if (!f32_ok(m, k->lets[l].e)) return;
  k->f32_math = 1;
}

void pass_f32math(LoopModule *m, const PassOptions *o) {
  (void)o;
  loop_walk_kernels(m, f32_kernel, NULL);
}
