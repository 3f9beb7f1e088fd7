/* emit_c.c — writes NAME.c from the loop IR: one static function per kernel
 * (named k<id>_<layer>_L<line>, with a comment pointing at the .gat source),
 * the parameter tables, and the entry points init/forward/reset.
 *
 * Generated code is plain C11 (gcc/clang -std=c11 -pedantic -Wall -Wextra
 * clean): no allocation, no VLAs, no mutable globals; everything lives in
 * the model struct and the caller's arena. Arithmetic is done in double and
 * rounded when stored, like the reference interpreter. Buffers are reached
 * through a per-call context (arena base, T, row counts of regions, the
 * caller's input/output pointers). Kernels return a status; the runtime
 * checks that can fail (index ranges, T bounds) set the model's message. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "emit_c.h"
#include "emit_count.h"
#include "emit_knobs.h"
#include "kernels_attention.h"
#include "kernels_gemm.h"
#include "kernels_math.h"
#include "kernels_scan.h"

typedef struct Emit {
  const LoopModule *m;
  StrBuf *o;
  int nred; /* reduction accumulators of the current kernel */
  const LoopExpr *red_acc; /* LK_LOOP red_outer: this reduction reads acc[v<red_acc_var>] */
  int red_acc_var;
  int f32; /* LK_LOOP f32_math: values are float, not double */
} Emit;

static void ind(StrBuf *sb, int n) {
  for (int i = 0; i < n; i++) sb_append(sb, "  ");
}

static void tvar_str(StrBuf *sb, int tvar) {
  if (tvar == 0)
    sb_append(sb, "c->T");
  else
    sb_printf(sb, "c->rows[%d]", tvar);
}

static void size_str(StrBuf *sb, LoopSize s) {
  sb_printf(sb, "((int64_t)%lld", (long long)s.k);
  for (int i = 0; i < s.tpow; i++) {
    sb_append(sb, " * ");
    tvar_str(sb, s.tvar);
  }
  sb_append(sb, ")");
}

static void dim_str(StrBuf *sb, int64_t d, int tvar) {
  if (d == IR_DIM_T)
    tvar_str(sb, tvar);
  else
    sb_printf(sb, "%lld", (long long)d);
}

/* numel of dims [from, rank) of buffer b, as a C expression */
static void buf_elems_from(StrBuf *sb, const LoopBuf *b, int from) {
  sb_append(sb, "((int64_t)1");
  for (int i = from; i < b->shape.rank; i++) {
    sb_append(sb, " * ");
    dim_str(sb, b->shape.dims[i], b->tvar);
  }
  sb_append(sb, ")");
}

static void double_lit(StrBuf *sb, double v) {
  char buf[64];
  if (isnan(v)) {
    sb_append(sb, "NAN");
    return;
  }
  if (isinf(v)) {
    sb_append(sb, v > 0 ? "INFINITY" : "(-INFINITY)");
    return;
  }
  format_double(buf, sizeof buf, v);
  if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
  if (v < 0)
    sb_printf(sb, "(%s)", buf);
  else
    sb_append(sb, buf);
}

static void comment_text(StrBuf *sb, const char *s) {
  for (; s && *s; s++) {
    if (s[0] == '*' && s[1] == '/') {
      sb_append(sb, "* /");
      s++;
    } else if ((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f) {
      sb_appendn(sb, s, 1);
    }
  }
}

/* ---- buffers a kernel touches ------------------------------------------------- */
static void mark_expr(char *used, const LoopExpr *e) {
  if (!e) return;
  if (e->kind == LX_LOAD) {
    used[e->buf] = 1;
    for (int i = 0; i < e->nidx; i++)
      if (e->idx[i].dyn_buf >= 0) used[e->idx[i].dyn_buf] = 1;
  }
  mark_expr(used, e->a);
  mark_expr(used, e->b);
  mark_expr(used, e->c);
}

static void mark_kernel(char *used, const LoopKernel *k) {
  if (k->out >= 0) used[k->out] = 1;
  for (int i = 0; i < LOOP_MAX_ARGS; i++)
    if (k->args[i] >= 0) used[k->args[i]] = 1;
  for (int i = 0; i < k->ncat; i++) { /* segmented GEMM (pass_concat) */
    const LoopGemmSeg *g = &k->cat[i];
    used[g->out] = used[g->w] = 1;
    if (g->bias >= 0) used[g->bias] = 1;
    if (g->res >= 0) used[g->res] = 1;
  }
  mark_expr(used, k->body);
  mark_expr(used, k->sweep_at); /* pass_scanfuse */
  mark_expr(used, k->sweep_val);
  for (int i = 0; i < k->nstates; i++) {
    used[k->state_bufs[i]] = 1;
    if (k->state_tmp && k->state_tmp[i] >= 0) used[k->state_tmp[i]] = 1;
  }
  for (int i = 0; i < k->nxs; i++) used[k->xs[i]] = 1;
  for (int r = 0; r < k->nregions; r++) {
    for (int i = 0; i < k->regions[r]->nargs; i++) used[k->regions[r]->args[i]] = 1;
    for (int i = 0; i < k->regions[r]->nyield; i++) used[k->regions[r]->yields[i]] = 1;
  }
}

/* restrict_out: the buffer an -O2 LK_LOOP kernel writes (declared restrict:
 * distinct buffers never overlap, and the kernel reaches its output only
 * through this pointer), or -1 */
static void buf_decl(Emit *E, const LoopBuf *b, int restrict_out) {
  StrBuf *o = E->o;
  const char *ct = b->is_f64 ? "double" : emit_c_ctype(b->dtype);
  const char *rq = b->id == restrict_out ? "restrict " : "";
  ind(o, 1);
  switch (b->kind) {
  case LB_SCRATCH:
  case LB_STATE:
    sb_printf(o, "%s *%sb%d = (%s *)(void *)(c->a + %lld);", ct, rq, b->id, ct, (long long)b->offset);
    break;
  case LB_PARAM:
    sb_printf(o, "const %s *b%d = (const %s *)c->m->w[%d];", ct, b->id, ct, b->index);
    break;
  case LB_INPUT:
    sb_printf(o, "const %s *b%d = (const %s *)c->in[%d];", ct, b->id, ct, b->index);
    break;
  case LB_OUTPUT:
    sb_printf(o, "%s *%sb%d = (%s *)c->out[%d];", ct, rq, b->id, ct, b->index);
    break;
  }
  sb_printf(o, " (void)b%d;", b->id); /* not every kernel reads every buffer it names */
  if (b->name) {
    sb_append(o, " /* ");
    comment_text(o, b->name);
    sb_append(o, " */");
  }
  sb_append(o, "\n");
}

static void kernel_decls(Emit *E, const LoopKernel *k) {
  char *used = xcalloc((size_t)E->m->bufs.len + 1, 1);
  mark_kernel(used, k);
  for (int l = 0; l < k->nlets; l++) mark_expr(used, k->lets[l].e);
  int restrict_out = k->kind == LK_LOOP && E->m->opt_level >= 2 ? k->out : -1;
  for (int i = 0; i < E->m->bufs.len; i++)
    if (used[i]) buf_decl(E, E->m->bufs.data[i], restrict_out);
  free(used);
}

/* ---- expressions ---------------------------------------------------------------- */
static void emit_index(StrBuf *sb, const LoopIndex *ix) {
  sb_printf(sb, "(%lld", (long long)ix->c);
  for (int t = 0; t < ix->nterms; t++) sb_printf(sb, " + %lld * v%d", (long long)ix->coef[t], ix->var[t]);
  if (ix->dyn_buf >= 0) sb_printf(sb, " + %lld * (int64_t)b%d[0]", (long long)ix->dyn_coef, ix->dyn_buf);
  sb_append(sb, ")");
}

/* flat offset of a multi-index into buffer b */
static void emit_flat(StrBuf *sb, const LoopBuf *b, const LoopIndex *idx) {
  if (b->shape.rank == 0) {
    sb_append(sb, "0");
    return;
  }
  sb_append(sb, "(");
  for (int d = 0; d < b->shape.rank; d++) {
    if (d) sb_append(sb, " + ");
    emit_index(sb, &idx[d]);
    for (int e = d + 1; e < b->shape.rank; e++) {
      sb_append(sb, " * ");
      dim_str(sb, b->shape.dims[e], b->tvar);
    }
  }
  sb_append(sb, ")");
}

static void emit_expr(Emit *E, StrBuf *pre, int depth, int ktvar, const LoopExpr *x, StrBuf *o);

static void emit_unary(StrBuf *o, IrFn fn, const char *a) {
  switch (fn) {
  case IR_FN_NEG: sb_printf(o, "(-%s)", a); break;
  case IR_FN_EXP: sb_printf(o, "exp(%s)", a); break;
  case IR_FN_LOG: sb_printf(o, "log(%s)", a); break;
  case IR_FN_SQRT: sb_printf(o, "sqrt(%s)", a); break;
  case IR_FN_RSQRT: sb_printf(o, "(1.0 / sqrt(%s))", a); break;
  case IR_FN_ABS: sb_printf(o, "fabs(%s)", a); break;
  case IR_FN_TANH: sb_printf(o, "tanh(%s)", a); break;
  case IR_FN_SIGMOID: sb_printf(o, "gat_sigmoid(%s)", a); break;
  case IR_FN_LOGSIGMOID: sb_printf(o, "gat_logsigmoid(%s)", a); break;
  case IR_FN_SILU: sb_printf(o, "gat_silu(%s)", a); break;
  case IR_FN_RELU: sb_printf(o, "gat_relu(%s)", a); break;
  case IR_FN_GELU_ERF: sb_printf(o, "gat_gelu_erf(%s)", a); break;
  case IR_FN_GELU_TANH: sb_printf(o, "gat_gelu_tanh(%s)", a); break;
  case IR_FN_SOFTPLUS: sb_printf(o, "gat_softplus(%s)", a); break;
  case IR_FN_NOT: sb_printf(o, "(%s == 0.0 ? 1.0 : 0.0)", a); break;
  default: gat_unreachable();
  }
}

static void emit_binary(StrBuf *o, IrFn fn, IrDType dt, const char *a, const char *b) {
  switch (fn) {
  case IR_FN_ADD: sb_printf(o, "(%s + %s)", a, b); break;
  case IR_FN_SUB: sb_printf(o, "(%s - %s)", a, b); break;
  case IR_FN_MUL: sb_printf(o, "(%s * %s)", a, b); break;
  case IR_FN_DIV:
    if (dt == IR_I32)
      sb_printf(o, "(double)gat_to_i32(%s / %s)", a, b);
    else
      sb_printf(o, "(%s / %s)", a, b);
    break;
  case IR_FN_POW: sb_printf(o, "pow(%s, %s)", a, b); break;
  case IR_FN_MAX: sb_printf(o, "gat_max(%s, %s)", a, b); break;
  case IR_FN_MIN: sb_printf(o, "gat_min(%s, %s)", a, b); break;
  case IR_FN_MOD:
    if (dt == IR_I32)
      sb_printf(o, "gat_imod(%s, %s)", a, b);
    else
      sb_printf(o, "fmod(%s, %s)", a, b);
    break;
  case IR_FN_LT: sb_printf(o, "(%s < %s ? 1.0 : 0.0)", a, b); break;
  case IR_FN_LE: sb_printf(o, "(%s <= %s ? 1.0 : 0.0)", a, b); break;
  case IR_FN_GT: sb_printf(o, "(%s > %s ? 1.0 : 0.0)", a, b); break;
  case IR_FN_GE: sb_printf(o, "(%s >= %s ? 1.0 : 0.0)", a, b); break;
  case IR_FN_EQ: sb_printf(o, "(%s == %s ? 1.0 : 0.0)", a, b); break;
  case IR_FN_NE: sb_printf(o, "(%s != %s ? 1.0 : 0.0)", a, b); break;
  case IR_FN_AND: sb_printf(o, "(%s != 0.0 && %s != 0.0 ? 1.0 : 0.0)", a, b); break;
  case IR_FN_OR: sb_printf(o, "(%s != 0.0 || %s != 0.0 ? 1.0 : 0.0)", a, b); break;
  default: gat_unreachable();
  }
}

/* Emits the value of x into o; statements it needs first (reduction loops)
 * go to pre at indentation depth. */
static void emit_expr_raw(Emit *E, StrBuf *pre, int depth, int ktvar, const LoopExpr *x, StrBuf *o);

/* ---- f32_math sums in lanes ---------------------------------------------------------- */
/* Lanes for a sum/mean of an f32_math kernel (0: the plain sequential loop;
 * loop_sum_lanes has the rule, shared with the LLVM backend). */
static int red_lanes(const Emit *E, const LoopExpr *x) { return E->f32 ? loop_sum_lanes(x) : 0; }

/* float rN = sum over v of x->a in `lanes` partial sums: lane l adds the
 * terms v = l, l + lanes, ... (the tail v >= main adds into lanes 0..),
 * then the lanes are added pairwise (l += l + w for w = lanes/2 .. 1). */
static void emit_reduce_lanes(Emit *E, StrBuf *pre, int depth, int ktvar, const LoopExpr *x, int r, int lanes) {
  int v = x->var;
  int64_t n = x->extent, main = n / lanes * lanes;
  StrBuf inner = {0}, inner2 = {0};
  ind(pre, depth);
  sb_printf(pre, "float r%d;\n", r);
  ind(pre, depth);
  sb_append(pre, "{\n");
  ind(pre, depth + 1);
  sb_printf(pre, "float r%dl[%d] = {0.0f}; /* partial sums, vectorizable */\n", r, lanes);
  ind(pre, depth + 1);
  sb_printf(pre, "for (int64_t v%do = 0; v%do < %lld; v%do += %d) {\n", v, v, (long long)main, v, lanes);
  ind(pre, depth + 2);
  sb_printf(pre, "for (int64_t v%dl = 0; v%dl < %d; v%dl++) {\n", v, v, lanes, v);
  ind(pre, depth + 3);
  sb_printf(pre, "const int64_t v%d = v%do + v%dl;\n", v, v, v);
  emit_expr(E, pre, depth + 3, ktvar, x->a, &inner); /* no reduction inside: nothing goes to pre */
  ind(pre, depth + 3);
  sb_printf(pre, "r%dl[v%dl] += %s;\n", r, v, sb_cstr(&inner));
  ind(pre, depth + 2);
  sb_append(pre, "}\n");
  ind(pre, depth + 1);
  sb_append(pre, "}\n");
  if (main < n) {
    ind(pre, depth + 1);
    sb_printf(pre, "for (int64_t v%d = %lld; v%d < %lld; v%d++) {\n", v, (long long)main, v, (long long)n, v);
    emit_expr(E, pre, depth + 2, ktvar, x->a, &inner2);
    ind(pre, depth + 2);
    sb_printf(pre, "r%dl[v%d - %lld] += %s;\n", r, v, (long long)main, sb_cstr(&inner2));
    ind(pre, depth + 1);
    sb_append(pre, "}\n");
  }
  ind(pre, depth + 1);
  sb_printf(pre, "for (int r%dw = %d; r%dw > 0; r%dw /= 2)\n", r, lanes / 2, r, r);
  ind(pre, depth + 2);
  sb_printf(pre, "for (int r%di = 0; r%di < r%dw; r%di++) r%dl[r%di] += r%dl[r%di + r%dw];\n", r, r, r, r, r, r, r, r,
            r);
  ind(pre, depth + 1);
  sb_printf(pre, "r%d = r%dl[0];\n", r, r);
  ind(pre, depth);
  sb_append(pre, "}\n");
  if (x->red == IR_RED_MEAN) {
    ind(pre, depth);
    sb_printf(pre, "r%d /= (float)%lld;\n", r, (long long)n);
  }
  sb_free(&inner);
  sb_free(&inner2);
}
/* An inlined producer (pass_fuse) is rounded to its dtype as its store was. */
static void emit_expr(Emit *E, StrBuf *pre, int depth, int ktvar, const LoopExpr *x, StrBuf *o) {
  if (!x->round || (E->f32 && x->dtype == IR_F32)) { /* f32_math: every value is a float already */
    emit_expr_raw(E, pre, depth, ktvar, x, o);
    return;
  }
  StrBuf v = {0};
  emit_expr_raw(E, pre, depth, ktvar, x, &v);
  if (x->dtype == IR_F32)
    sb_printf(o, "((double)(float)(%s))", sb_cstr(&v));
  else
    sb_printf(o, "((double)gat_to_i32(%s))", sb_cstr(&v));
  sb_free(&v);
}

static void emit_expr_raw(Emit *E, StrBuf *pre, int depth, int ktvar, const LoopExpr *x, StrBuf *o) {
  StrBuf a = {0}, b = {0}, c = {0};
  switch (x->kind) {
  case LX_CONST:
    if (E->f32) sb_append(o, "((float)");
    double_lit(o, x->f);
    if (E->f32) sb_append(o, ")");
    break;
  case LX_LOAD: {
    const LoopBuf *bf = loop_buf(E->m, x->buf);
    sb_printf(o, E->f32 ? "b%d[" : "(double)b%d[", x->buf);
    emit_flat(o, bf, x->idx);
    sb_append(o, "]");
    break;
  }
  case LX_VAR: sb_printf(o, "(double)v%d", x->var); break;
  case LX_POS0: sb_append(o, "(double)c->m->pos"); break;
  case LX_TEMP: sb_printf(o, "l%d", x->var); break;
  case LX_UNARY:
    emit_expr(E, pre, depth, ktvar, x->a, &a);
    if (E->f32 && x->fn != IR_FN_NEG) { /* pass_f32math allows only functions with a float version */
      const char *name = kernels_math_unary_f32(x->fn); /* codegen/kernels/kernels_math.c: vectorizable */
      GAT_ASSERT(name);
      sb_printf(o, "%s(%s)", name, sb_cstr(&a));
    } else {
      emit_unary(o, x->fn, sb_cstr(&a));
    }
    break;
  case LX_BINARY:
    emit_expr(E, pre, depth, ktvar, x->a, &a);
    emit_expr(E, pre, depth, ktvar, x->b, &b);
    if (E->f32 && (x->fn == IR_FN_MAX || x->fn == IR_FN_MIN)) /* f32_math: max/min in float */
      sb_printf(o, "gat_vm_%sf(%s, %s)", x->fn == IR_FN_MAX ? "max" : "min", sb_cstr(&a), sb_cstr(&b));
    else
      emit_binary(o, x->fn, x->dtype, sb_cstr(&a), sb_cstr(&b));
    break;
  case LX_SELECT:
    emit_expr(E, pre, depth, ktvar, x->a, &a);
    emit_expr(E, pre, depth, ktvar, x->b, &b);
    emit_expr(E, pre, depth, ktvar, x->c, &c);
    /* both branches as arguments, so both loads are unconditional (every index is in
     * bounds: sema checks them over the whole range). A `c ? b[i] : d[i]` becomes
     * masked loads, which GCC 12.2 -O3 -mavx2 miscompiles in short nested loops: it
     * reuses the first vector's mask for all of them (tests/gen/regress/select_branch_loads_*.gat). */
    sb_printf(o, "%s(%s != %s, %s, %s)", E->f32 ? "gat_vm_sel" : "gat_sel", sb_cstr(&a), E->f32 ? "0.0f" : "0.0",
              sb_cstr(&b), sb_cstr(&c));
    break;
  case LX_REDUCE: {
    if (x == E->red_acc) { /* red_outer: summed into acc[] before the store loop */
      sb_printf(o, "acc[v%d]", E->red_acc_var);
      break;
    }
    int r = E->nred++;
    StrBuf ext = {0}, inner = {0};
    dim_str(&ext, x->extent, ktvar);
    int lanes = red_lanes(E, x);
    if (lanes) {
      emit_reduce_lanes(E, pre, depth, ktvar, x, r, lanes);
      sb_printf(o, "r%d", r);
      sb_free(&ext);
      break;
    }
    ind(pre, depth);
    sb_printf(pre, "%s r%d = %s;\n", E->f32 ? "float" : "double", r,
              x->red == IR_RED_MAX ? "-INFINITY" : x->red == IR_RED_MIN ? "INFINITY" : E->f32 ? "0.0f" : "0.0");
    ind(pre, depth);
    sb_printf(pre, "for (int64_t v%d = 0; v%d < %s; v%d++) {\n", x->var, x->var, sb_cstr(&ext), x->var);
    emit_expr(E, pre, depth + 1, ktvar, x->a, &inner);
    ind(pre, depth + 1);
    if (x->red == IR_RED_MAX)
      sb_printf(pre, "r%d = %s(r%d, %s);\n", r, E->f32 ? "gat_vm_maxf" : "gat_max", r, sb_cstr(&inner));
    else if (x->red == IR_RED_MIN)
      sb_printf(pre, "r%d = %s(r%d, %s);\n", r, E->f32 ? "gat_vm_minf" : "gat_min", r, sb_cstr(&inner));
    else
      sb_printf(pre, "r%d += %s;\n", r, sb_cstr(&inner));
    ind(pre, depth);
    sb_append(pre, "}\n");
    if (x->red == IR_RED_MEAN) {
      ind(pre, depth);
      sb_printf(pre, "r%d /= (%s)%s;\n", r, E->f32 ? "float" : "double", sb_cstr(&ext));
    }
    sb_printf(o, "r%d", r);
    sb_free(&ext);
    sb_free(&inner);
    break;
  }
  }
  sb_free(&a);
  sb_free(&b);
  sb_free(&c);
}

static void store_value(StrBuf *o, IrDType dt, const char *v) {
  if (dt == IR_F32)
    sb_printf(o, "(float)(%s)", v);
  else
    sb_printf(o, "gat_to_i32(%s)", v);
}

/* ---- kernels -------------------------------------------------------------------- */
static int kernels_have_gemm(const PtrVec *ks) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = ks->data[i];
    if (k->kind == LK_CALL && k->call == LC_GEMM) return 1;
    for (int r = 0; r < k->nregions; r++)
      if (kernels_have_gemm(&k->regions[r]->kernels)) return 1;
  }
  return 0;
}
static int kernels_have_f32_math(const PtrVec *ks) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = ks->data[i];
    if (k->kind == LK_LOOP && k->f32_math) return 1;
    for (int r = 0; r < k->nregions; r++)
      if (kernels_have_f32_math(&k->regions[r]->kernels)) return 1;
  }
  return 0;
}
static int loop_module_has_gemm(const LoopModule *m) { return m->packs.len > 0 || kernels_have_gemm(&m->kernels); }

static void kernel_name(StrBuf *sb, const LoopModule *m, const LoopKernel *k) {
  sb_printf(sb, "%s_k%d_", m->name, k->id);
  if (k->origin) {
    const char *o = strrchr(k->origin, '.');
    emit_c_ident(sb, o && o[1] ? o + 1 : k->origin);
    sb_append(sb, "_");
  }
  sb_append(sb, k->opname ? k->opname : "op");
  if (k->line > 0) sb_printf(sb, "_L%d", k->line);
}

static void emit_kernel(Emit *E, const LoopKernel *k);

static void emit_region_calls(Emit *E, const LoopRegion *r, int depth) {
  StrBuf *o = E->o;
  for (int i = 0; i < r->kernels.len; i++) {
    ind(o, depth);
    sb_append(o, "if ((st = ");
    kernel_name(o, E->m, r->kernels.data[i]);
    sb_append(o, "(c)) != GAT_OK) return st;\n");
  }
}

/* the store out[v + off] = value of an LK_LOOP kernel, at depth */
static void emit_loop_store(Emit *E, const LoopKernel *k, const char *val, int depth) {
  StrBuf *o = E->o;
  const LoopBuf *ob = loop_buf(E->m, k->out);
  LoopIndex oidx[IR_MAX_RANK];
  memset(oidx, 0, sizeof oidx);
  for (int d = 0; d < k->rank; d++) {
    oidx[d].c = k->out_off[d];
    oidx[d].nterms = 1;
    oidx[d].var[0] = d;
    oidx[d].coef[0] = 1;
    oidx[d].dyn_buf = -1;
  }
  StrBuf st = {0};
  ind(o, depth);
  sb_printf(o, "b%d[", k->out);
  emit_flat(o, ob, oidx);
  sb_append(o, "] = ");
  store_value(&st, ob->dtype, val);
  sb_printf(o, "%s;\n", sb_cstr(&st));
  sb_free(&st);
}

static void emit_open_loop(Emit *E, int var, int64_t ext, int tvar, int depth) {
  StrBuf e = {0};
  dim_str(&e, ext, tvar);
  ind(E->o, depth);
  sb_printf(E->o, "for (int64_t v%d = 0; v%d < %s; v%d++) {\n", var, var, sb_cstr(&e), var);
  sb_free(&e);
}

static void emit_close(Emit *E, int depth) {
  ind(E->o, depth);
  sb_append(E->o, "}\n");
}

/* lets of one level (pass_licm), in index order */
static void emit_lets(Emit *E, const LoopKernel *k, int level, int depth) {
  for (int l = 0; l < k->nlets; l++) {
    if (k->lets[l].level != level) continue;
    StrBuf pre = {0}, val = {0};
    emit_expr(E, &pre, depth, k->tvar, k->lets[l].e, &val);
    sb_append(E->o, sb_cstr(&pre));
    ind(E->o, depth);
    sb_printf(E->o, "const %s l%d = %s;\n", E->f32 ? "float" : "double", l, sb_cstr(&val));
    sb_free(&pre);
    sb_free(&val);
  }
}

static const LoopExpr *find_reduce_expr(const LoopExpr *e) {
  if (!e) return NULL;
  if (e->kind == LX_REDUCE) return e;
  const LoopExpr *r = find_reduce_expr(e->a);
  if (!r) r = find_reduce_expr(e->b);
  if (!r) r = find_reduce_expr(e->c);
  return r;
}

/* -O2 schedule (see LoopLet and red_outer in loopir.h): braces at every
 * level, lets right after the loop that makes them computable, and with
 * red_outer the reduction loop outside the innermost domain loop. */
static void emit_loop_sched(Emit *E, const LoopKernel *k) {
  StrBuf *o = E->o;
  int depth = 1;
  E->f32 = k->f32_math;
  int nouter = k->red_outer ? k->rank - 1 : k->rank;
  ind(o, depth++);
  sb_append(o, "{\n");
  emit_lets(E, k, 0, depth);
  for (int d = 0; d < nouter; d++) {
    emit_open_loop(E, d, k->ext[d], k->tvar, depth++);
    emit_lets(E, k, d + 1, depth);
  }
  if (k->red_outer) {
    const LoopExpr *r = find_reduce_expr(k->body);
    int j = k->rank - 1;
    GAT_ASSERT(r && r->red == IR_RED_SUM && k->ext[j] != IR_DIM_T);
    ind(o, depth);
    sb_printf(o, "%s acc[%lld];\n", E->f32 ? "float" : "double", (long long)k->ext[j]);
    ind(o, depth);
    sb_printf(o, "for (int64_t v%d = 0; v%d < %lld; v%d++) acc[v%d] = 0;\n", j, j, (long long)k->ext[j], j, j);
    emit_open_loop(E, r->var, r->extent, k->tvar, depth++);
    emit_lets(E, k, k->rank, depth);
    emit_open_loop(E, j, k->ext[j], k->tvar, depth++);
    StrBuf pre = {0}, val = {0};
    if (k->sweep_at) { /* pass_scanfuse: the second store, before the term that reads it */
      const LoopBuf *sb = loop_buf(E->m, k->sweep_at->buf);
      StrBuf spre = {0}, sval = {0}, st = {0};
      emit_expr(E, &spre, depth, k->tvar, k->sweep_val, &sval);
      sb_append(o, sb_cstr(&spre));
      ind(o, depth);
      sb_printf(o, "b%d[", sb->id);
      emit_flat(o, sb, k->sweep_at->idx);
      sb_append(o, "] = ");
      store_value(&st, sb->dtype, sb_cstr(&sval));
      sb_printf(o, "%s;\n", sb_cstr(&st));
      sb_free(&spre);
      sb_free(&sval);
      sb_free(&st);
    }
    emit_expr(E, &pre, depth, k->tvar, r->a, &val);
    sb_append(o, sb_cstr(&pre));
    ind(o, depth);
    sb_printf(o, "acc[v%d] += %s;\n", j, sb_cstr(&val));
    sb_free(&pre);
    sb_free(&val);
    emit_close(E, --depth);
    emit_close(E, --depth);
    emit_open_loop(E, j, k->ext[j], k->tvar, depth++);
    E->red_acc = r;
    E->red_acc_var = j;
  }
  StrBuf pre = {0}, val = {0};
  emit_expr(E, &pre, depth, k->tvar, k->body, &val);
  E->red_acc = NULL;
  sb_append(o, sb_cstr(&pre));
  emit_loop_store(E, k, sb_cstr(&val), depth);
  sb_free(&pre);
  sb_free(&val);
  while (depth > 1) emit_close(E, --depth);
  E->f32 = 0;
}

static void emit_loop_body(Emit *E, const LoopKernel *k) {
  if (k->nlets || k->red_outer || k->f32_math) {
    emit_loop_sched(E, k);
    return;
  }
  StrBuf *o = E->o;
  const LoopBuf *ob = loop_buf(E->m, k->out);
  int depth = 1;
  for (int d = 0; d < k->rank; d++) {
    StrBuf ext = {0};
    dim_str(&ext, k->ext[d], k->tvar);
    ind(o, depth++);
    sb_printf(o, "for (int64_t v%d = 0; v%d < %s; v%d++)%s\n", d, d, sb_cstr(&ext), d,
              d == k->rank - 1 ? " {" : "");
    sb_free(&ext);
  }
  if (k->rank == 0) {
    ind(o, depth++);
    sb_append(o, "{\n");
  }
  StrBuf pre = {0}, val = {0}, st = {0};
  emit_expr(E, &pre, depth, k->tvar, k->body, &val);
  sb_append(o, sb_cstr(&pre));
  LoopIndex oidx[IR_MAX_RANK];
  memset(oidx, 0, sizeof oidx);
  for (int d = 0; d < k->rank; d++) {
    oidx[d].c = k->out_off[d];
    oidx[d].nterms = 1;
    oidx[d].var[0] = d;
    oidx[d].coef[0] = 1;
    oidx[d].dyn_buf = -1;
  }
  ind(o, depth);
  sb_printf(o, "b%d[", k->out);
  emit_flat(o, ob, oidx);
  sb_append(o, "] = ");
  store_value(&st, ob->dtype, sb_cstr(&val));
  sb_printf(o, "%s;\n", sb_cstr(&st));
  ind(o, depth - 1);
  sb_append(o, "}\n");
  sb_free(&pre);
  sb_free(&val);
  sb_free(&st);
}

static void arg_or_null(StrBuf *o, int buf) {
  if (buf >= 0)
    sb_printf(o, "b%d", buf);
  else
    sb_append(o, "NULL");
}

/* Text placed inside a printf format string literal: escaped for C, '%'
 * doubled, so any layer, file or tensor name is safe there. */
static void fmt_text(StrBuf *o, const char *s) {
  StrBuf lit = {0};
  emit_c_string_literal(&lit, s);
  for (size_t i = 1; i + 1 < lit.len; i++) {
    if (lit.data[i] == '%') sb_append(o, "%");
    sb_appendn(o, lit.data + i, 1);
  }
  sb_free(&lit);
}

/* " in layer L at file:line", in a comment (fmt = 0) or a format string (fmt = 1) */
static void where_text_as(StrBuf *o, const LoopKernel *k, int fmt) {
  if (k->origin) {
    sb_append(o, " in layer ");
    if (fmt) fmt_text(o, k->origin);
    else comment_text(o, k->origin);
  }
  if (k->file) {
    sb_append(o, " at ");
    if (fmt) fmt_text(o, k->file);
    else comment_text(o, k->file);
    sb_printf(o, ":%d", k->line);
  }
}

static void where_text(StrBuf *o, const LoopKernel *k) { where_text_as(o, k, 0); }

/* LC_GATHER: the runtime gather, its out-of-range index reported with the table and source line. */
static void emit_call_gather(Emit *E, const LoopKernel *k, StrBuf *s) {
  StrBuf *o = E->o;
  sb_append(o, "{\n");
  ind(o, 2);
  sb_append(o, "int64_t bad = 0;\n");
  ind(o, 2);
  sb_printf(o, "if (gat_k_gather(b%d, b%d, b%d, %s, %s, %s, &bad) != GAT_OK)\n", k->out, k->args[0], k->args[1],
            sb_cstr(&s[0]), sb_cstr(&s[1]), sb_cstr(&s[2]));
  ind(o, 3);
  sb_printf(o, "return gat_error_set(&c->m->err, GAT_ERR_TOKEN_RANGE, \"index %%ld at position %%lld is outside [0, %%lld) in gather");
  {
    const LoopBuf *tb = loop_buf(E->m, k->args[0]);
    if (tb->kind == LB_PARAM && tb->name) { /* name the table: the tensor the index is for */
      sb_append(o, " from '");
      fmt_text(o, tb->name);
      sb_append(o, "'");
    }
  }
  where_text_as(o, k, 1);
  sb_printf(o, "\", (long)b%d[bad], (long long)bad, (long long)%s);\n", k->args[1], sb_cstr(&s[1]));
  ind(o, 1);
  sb_append(o, "}\n");
}

/* LC_ATTENTION: a gat_attn_args block, then the runtime kernel or the emitted flash kernel. */
static void emit_call_attention(Emit *E, const LoopKernel *k, StrBuf *s) {
  StrBuf *o = E->o;
  sb_append(o, "{\n");
  ind(o, 2);
  sb_append(o, "gat_attn_args A;\n");
  ind(o, 2);
  sb_append(o, "memset(&A, 0, sizeof A);\n");
  ind(o, 2);
  sb_printf(o, "A.out = b%d; A.q = b%d; A.k = b%d; A.v = b%d;\n", k->out, k->args[0], k->args[1], k->args[2]);
  ind(o, 2);
  sb_append(o, "A.qb = ");
  arg_or_null(o, k->args[3]);
  sb_append(o, "; A.kb = ");
  arg_or_null(o, k->args[4]);
  sb_printf(o, "; A.cache_k = b%d; A.cache_v = b%d; A.cache_kb = ", k->args[5], k->args[6]);
  arg_or_null(o, k->args[7]);
  sb_append(o, ";\n");
  ind(o, 2);
  sb_printf(o, "A.T = %s; A.H = %s; A.Hkv = %s; A.dk = %s; A.dv = %s; A.window = %s;\n", sb_cstr(&s[0]),
            sb_cstr(&s[1]), sb_cstr(&s[2]), sb_cstr(&s[3]), sb_cstr(&s[4]), sb_cstr(&s[5]));
  ind(o, 2);
  if (k->nargs > 10 && k->args[10] >= 0) /* under a skip/route: the packed row count (loopir.h) */
    sb_printf(o, "A.pos0 = (int64_t)b%d[0]; A.max_T = %lld; A.scale = ", k->args[10], (long long)E->m->max_T);
  else
    sb_printf(o, "A.pos0 = c->m->pos; A.max_T = %lld; A.scale = ", (long long)E->m->max_T);
  double_lit(o, k->reals[0]);
  sb_printf(o, "; A.scratch = b%d;\n", k->args[8]);
  if (k->nargs > 9 && k->args[9] >= 0) { /* relative-position bias table (attr relbias) */
    ind(o, 2);
    sb_printf(o, "A.relbias = b%d; A.relbias_len = %s;\n", k->args[9], sb_cstr(&s[6]));
  }
  if (k->nargs > 11 && k->args[11] >= 0) { /* `kv: previous` region: the rows' positions (loopir.h) */
    ind(o, 2);
    sb_printf(o, "A.pos = b%d;\n", k->args[11]);
  }
  ind(o, 2);
  if (k->attn_fast) { /* -O2 pass_attention: the flash kernel emitted into this file; its part (pass block) */
    kernels_attention_fn_name(o, k);
    if (k->attn_part == LOOP_ATTN_HEADS)
      sb_printf(o, "(&A, %d, c->tile[%d], c->tile[%d] + %lld);\n", KERNELS_ATTENTION_HEADS, k->blk_var[1],
                k->blk_var[1], (long long)k->blk_len[1]);
    else
      sb_printf(o, "(&A, %d, 0, 0);\n", k->attn_part);
  } else {
    sb_append(o, "gat_k_attention(&A);\n");
  }
  ind(o, 1);
  sb_append(o, "}\n");
}

/* the bounds "lo, hi" of a blocked GEMM's rows (d = 0) or columns (d = 1): the block of the
 * enclosing tile variable (pass block, loopir.h blk_var), or 0 .. n */
static void gemm_block_bounds(StrBuf *o, const LoopKernel *k, int d, const char *n) {
  if (k->blk_var[d] >= 0)
    sb_printf(o, "c->tile[%d], c->tile[%d] + %lld", k->blk_var[d], k->blk_var[d], (long long)k->blk_len[d]);
  else
    sb_printf(o, "0, %s", n);
}

/* the end of a plain or GLU GEMM call: sizes M, N, K, the activation code and, for a leaf of
 * tile loops (pass block), the bounds of its block */
static void gemm_call_tail(StrBuf *o, const LoopKernel *k, StrBuf *s) {
  sb_printf(o, ", %s, %s, %s, %d", sb_cstr(&s[0]), sb_cstr(&s[1]), sb_cstr(&s[2]), kernels_gemm_act_code(k->epi_act));
  if (k->blk_var[0] >= 0 || k->blk_var[1] >= 0) {
    sb_append(o, ", ");
    gemm_block_bounds(o, k, 0, sb_cstr(&s[0]));
    sb_append(o, ", ");
    gemm_block_bounds(o, k, 1, sb_cstr(&s[1]));
  }
  sb_append(o, ");\n");
}

/* LC_GEMM: the segmented, GLU or plain micro-kernel GEMM (-O2). */
static void emit_call_gemm(StrBuf *o, const LoopKernel *k, StrBuf *s) {
  if (k->ncat > 0 || (k->nargs > 9 && k->args[9] >= 0)) { /* pass_concat / pass_gate */
    StrBuf rows = {0};
    if (k->blk_var[0] >= 0) gemm_block_bounds(&rows, k, 0, sb_cstr(&s[0]));
    kernels_gemm_seg_call(o, k, sb_cstr(&s[0]), sb_cstr(&s[2]), k->blk_var[0] >= 0 ? sb_cstr(&rows) : NULL);
    sb_free(&rows);
    return;
  }
  if (k->nargs > 7 && k->args[7] >= 0) { /* GLU product (pass_glu), both weights packed */
    const int blk = k->blk_var[0] >= 0 || k->blk_var[1] >= 0; /* pass block: one block of the result */
    sb_printf(o, "gat_gemm_glu_f32%s(b%d, b%d, b%d, b%d, ", blk ? "_blk" : "", k->out, k->args[0], k->args[1], k->args[7]);
    arg_or_null(o, k->args[2]);
    sb_append(o, ", ");
    arg_or_null(o, k->args[8]);
    sb_append(o, ", ");
    arg_or_null(o, k->args[6]);
    gemm_call_tail(o, k, s);
    return;
  }
  const int blk = k->blk_var[0] >= 0 || k->blk_var[1] >= 0; /* pass block: one block of the result */
  sb_printf(o, "gat_gemm_f32%s(b%d, b%d, ", blk ? "_blk" : "", k->out, k->args[0]);
  arg_or_null(o, k->args[1]);
  sb_append(o, ", ");
  arg_or_null(o, k->args[1] >= 0 ? -1 : k->args[4]);
  sb_printf(o, ", %lld, %lld, ", (long long)k->w_sn, (long long)k->w_sk);
  arg_or_null(o, k->args[5]);
  sb_append(o, ", ");
  arg_or_null(o, k->args[2]);
  sb_append(o, ", ");
  arg_or_null(o, k->args[3]);
  sb_append(o, ", ");
  arg_or_null(o, k->nargs > 6 ? k->args[6] : -1);
  gemm_call_tail(o, k, s);
}

/* LK_TILE (pass block): the blocking loop; its variable lives in the context, where the
 * leaves' calls read it */
static void emit_tile(Emit *E, const LoopKernel *k) {
  StrBuf *o = E->o;
  StrBuf n = {0};
  size_str(&n, k->sizes[0]);
  ind(o, 1);
  sb_append(o, "int st = GAT_OK;\n");
  ind(o, 1);
  sb_printf(o, "for (int64_t i = 0; i < %s; i += %lld) {%s\n", sb_cstr(&n), (long long)k->tile_step,
            k->tile_par ? " /* parallel */" : "");
  ind(o, 2);
  sb_printf(o, "c->tile[%d] = i;\n", k->tile_var);
  emit_region_calls(E, k->regions[0], 2);
  ind(o, 1);
  sb_append(o, "}\n");
  ind(o, 1);
  sb_append(o, "(void)st;\n");
  sb_free(&n);
}

static void emit_call(Emit *E, const LoopKernel *k) {
  StrBuf *o = E->o;
  StrBuf s[LOOP_MAX_ARGS];
  memset(s, 0, sizeof s);
  for (int i = 0; i < k->nsizes; i++) size_str(&s[i], k->sizes[i]);
  ind(o, 1);
  switch (k->call) {
  case LC_SOFTMAX:
    sb_printf(o, "gat_k_softmax(b%d, b%d, %s, %s, %s);\n", k->out, k->args[0], sb_cstr(&s[0]), sb_cstr(&s[1]),
              sb_cstr(&s[2]));
    break;
  case LC_RMS_NORM:
    sb_printf(o, "gat_k_rms_norm(b%d, b%d, ", k->out, k->args[0]);
    arg_or_null(o, k->args[1]);
    sb_printf(o, ", %s, %s, ", sb_cstr(&s[0]), sb_cstr(&s[1]));
    double_lit(o, k->reals[0]);
    sb_printf(o, ", %d);\n", k->reals[1] != 0);
    break;
  case LC_LAYER_NORM:
    sb_printf(o, "gat_k_layer_norm(b%d, b%d, ", k->out, k->args[0]);
    arg_or_null(o, k->args[1]);
    sb_append(o, ", ");
    arg_or_null(o, k->args[2]);
    sb_printf(o, ", %s, %s, ", sb_cstr(&s[0]), sb_cstr(&s[1]));
    double_lit(o, k->reals[0]);
    sb_append(o, ");\n");
    break;
  case LC_L2_NORM:
    sb_printf(o, "gat_k_l2_norm(b%d, b%d, %s, %s, ", k->out, k->args[0], sb_cstr(&s[0]), sb_cstr(&s[1]));
    double_lit(o, k->reals[0]);
    sb_append(o, ");\n");
    break;
  case LC_GATHER:
    emit_call_gather(E, k, s);
    break;
  case LC_TOPK:
    sb_printf(o, "gat_k_topk(b%d, b%d, b%d, %s, %s, %s);\n", k->out, k->args[1], k->args[0], sb_cstr(&s[0]),
              sb_cstr(&s[1]), sb_cstr(&s[2]));
    break;
  case LC_ROPE:
    if (k->nargs > 1 && k->args[1] >= 0) /* in a region: the rows' own positions (loopir.h LC_ROPE) */
      sb_printf(o, "gat_k_rope_pos(b%d, b%d, %s, %s, %s, b%d, ", k->out, k->args[0], sb_cstr(&s[0]), sb_cstr(&s[1]),
                sb_cstr(&s[2]), k->args[1]);
    else
      sb_printf(o, "gat_k_rope(b%d, b%d, %s, %s, %s, c->m->pos, ", k->out, k->args[0], sb_cstr(&s[0]),
                sb_cstr(&s[1]), sb_cstr(&s[2]));
    double_lit(o, k->reals[0]);
    sb_printf(o, ", %s);\n", sb_cstr(&s[3]));
    break;
  case LC_COPY_ROWS: /* GateSkip's KV copy (loopir.h) */
    sb_printf(o, "gat_k_copy_rows(b%d, b%d, c->m->pos, %s, %s);\n", k->out, k->args[0], sb_cstr(&s[0]),
              sb_cstr(&s[1]));
    break;
  case LC_CONV1D:
    sb_printf(o, "gat_k_conv1d(b%d, b%d, b%d, ", k->out, k->args[0], k->args[1]);
    arg_or_null(o, k->args[2]);
    sb_printf(o, ", b%d, %s, %s, %s, %d);\n", k->args[3], sb_cstr(&s[0]), sb_cstr(&s[1]), sb_cstr(&s[2]),
              k->reals[0] != 0);
    break;
  case LC_ATTENTION:
    emit_call_attention(E, k, s);
    break;
  case LC_GEMM:
    emit_call_gemm(o, k, s);
    break;
  }
  for (int i = 0; i < LOOP_MAX_ARGS; i++) sb_free(&s[i]);
}

static void emit_scan(Emit *E, const LoopKernel *k) {
  StrBuf *o = E->o;
  const LoopRegion *r = k->regions[0];
  StrBuf T = {0};
  tvar_str(&T, k->tvar);
  ind(o, 1);
  sb_append(o, "int st = GAT_OK;\n");
  ind(o, 1);
  sb_append(o, "(void)st;\n");
  if (k->scan_chunk) { /* -O2 pass_chunk: prefill in chunks (codegen/kernels/scan.c) */
    ind(o, 1);
    sb_printf(o, "if (%s >= %d) {\n", sb_cstr(&T), KERNELS_SCAN_MIN_T);
    ind(o, 2);
    kernels_scan_call(o, k, sb_cstr(&T));
    sb_append(o, "\n");
    ind(o, 2);
    sb_append(o, "return GAT_OK;\n");
    ind(o, 1);
    sb_append(o, "}\n");
  }
  ind(o, 1);
  sb_printf(o, "for (int64_t t = 0; t < %s; t++) {\n", sb_cstr(&T));
  ind(o, 2);
  sb_printf(o, "b%d[0] = (int32_t)t;\n", k->args[0]);
  emit_region_calls(E, r, 2);
  /* emitted rows first: one may be an old state the copies below overwrite */
  for (int i = 0; i < k->nxs; i++) {
    const LoopBuf *emit = loop_buf(E->m, r->yields[k->nstates + i]);
    StrBuf ee = {0};
    buf_elems_from(&ee, emit, 0);
    ind(o, 2);
    sb_printf(o, "memcpy(b%d + t * %s, b%d, sizeof(b%d[0]) * (size_t)%s);\n", k->xs[i], sb_cstr(&ee), emit->id,
              emit->id, sb_cstr(&ee));
    sb_free(&ee);
  }
  /* a new value that is another state's old buffer is saved first (double
   * buffering), so the order of the state copies below does not matter */
  for (int i = 0; i < k->nstates; i++) {
    if (!k->state_tmp || k->state_tmp[i] < 0) continue;
    StrBuf se = {0};
    buf_elems_from(&se, loop_buf(E->m, k->state_bufs[i]), 0);
    ind(o, 2);
    sb_printf(o, "memcpy(b%d, b%d, sizeof(b%d[0]) * (size_t)%s);\n", k->state_tmp[i], r->yields[i],
              k->state_bufs[i], sb_cstr(&se));
    sb_free(&se);
  }
  for (int i = 0; i < k->nstates; i++) {
    int from = k->state_tmp && k->state_tmp[i] >= 0 ? k->state_tmp[i] : r->yields[i];
    if (from == k->state_bufs[i]) continue;
    StrBuf se = {0};
    buf_elems_from(&se, loop_buf(E->m, k->state_bufs[i]), 0);
    ind(o, 2);
    sb_printf(o, "memmove(b%d, b%d, sizeof(b%d[0]) * (size_t)%s);\n", k->state_bufs[i], from,
              k->state_bufs[i], sb_cstr(&se));
    sb_free(&se);
  }
  ind(o, 1);
  sb_append(o, "}\n");
  sb_free(&T);
}

/* mixture and skip: gather rows into the region's argument buffers, run the
 * region, scatter the result back. */
static void emit_gather_rows(Emit *E, const LoopKernel *k, const LoopRegion *r, int depth) {
  StrBuf *o = E->o;
  for (int i = 0; i < k->nxs; i++) {
    const LoopBuf *x = loop_buf(E->m, k->xs[i]);
    StrBuf re = {0};
    buf_elems_from(&re, x, 1);
    ind(o, depth);
    sb_printf(o, "for (int64_t r = 0; r < n; r++) memcpy(b%d + r * %s, b%d + (int64_t)b%d[r] * %s, sizeof(b%d[0]) * (size_t)%s);\n",
              r->args[i], sb_cstr(&re), k->xs[i], k->args[2], sb_cstr(&re), k->xs[i], sb_cstr(&re));
    sb_free(&re);
  }
  ind(o, depth);
  tvar_str(o, r->tvar);
  sb_append(o, " = n;\n");
  emit_region_calls(E, r, depth);
}

static void emit_mixture(Emit *E, const LoopKernel *k) {
  StrBuf *o = E->o;
  const LoopBuf *out = loop_buf(E->m, k->out);
  StrBuf T = {0}, K = {0}, re = {0};
  tvar_str(&T, k->tvar);
  size_str(&K, k->sizes[0]);
  buf_elems_from(&re, out, 1);
  int idx = k->args[0], w = k->args[1], rows = k->args[2];
  ind(o, 1);
  sb_append(o, "int st = GAT_OK;\n");
  ind(o, 1);
  sb_append(o, "(void)st;\n");
  ind(o, 1);
  sb_printf(o, "const int64_t T = %s, K = %s, RE = %s;\n", sb_cstr(&T), sb_cstr(&K), sb_cstr(&re));
  ind(o, 1);
  sb_printf(o, "for (int64_t i = 0; i < T * K; i++)\n");
  ind(o, 2);
  sb_printf(o, "if (b%d[i] < 0 || b%d[i] >= %d)\n", idx, idx, k->nregions);
  ind(o, 3);
  sb_printf(o, "return gat_error_set(&c->m->err, GAT_ERR_TOKEN_RANGE, \"expert index %%ld at row %%lld is outside [0, %d) in mixture",
            k->nregions);
  where_text_as(o, k, 1);
  sb_printf(o, "\", (long)b%d[i], (long long)(i / K));\n", idx);
  int acc = k->args[3] >= 0 ? k->args[3] : k->out; /* double accumulator (interpreter rounding) */
  int cbase = emit_count_base(E->m, k); /* --count: tokens, then rows/calls per expert */
  if (cbase >= 0) {
    ind(o, 1);
    sb_printf(o, "c->m->count[%d] += (uint64_t)T;\n", cbase);
  }
  ind(o, 1);
  sb_printf(o, "memset(b%d, 0, sizeof(b%d[0]) * (size_t)(T * RE));\n", acc, acc);
  for (int e = 0; e < k->nregions; e++) {
    const LoopRegion *r = k->regions[e];
    ind(o, 1);
    sb_printf(o, "{ /* expert %d */\n", e);
    ind(o, 2);
    sb_append(o, "int64_t n = 0;\n");
    ind(o, 2);
    sb_append(o, "for (int64_t t = 0; t < T; t++)\n");
    ind(o, 3);
    sb_append(o, "for (int64_t j = 0; j < K; j++)\n");
    ind(o, 4);
    sb_printf(o, "if (b%d[t * K + j] == %d) { b%d[n++] = (int32_t)t; break; }\n", idx, e, rows);
    ind(o, 2);
    sb_append(o, "if (n > 0) {\n");
    if (cbase >= 0) {
      ind(o, 3);
      sb_printf(o, "c->m->count[%d] += (uint64_t)n; c->m->count[%d]++;\n", cbase + 1 + 2 * e, cbase + 2 + 2 * e);
    }
    emit_gather_rows(E, k, r, 3);
    ind(o, 3);
    sb_append(o, "for (int64_t r = 0; r < n; r++) {\n");
    ind(o, 4);
    sb_printf(o, "int64_t t = b%d[r];\n", rows);
    ind(o, 4);
    sb_append(o, "double wt = 0.0;\n");
    ind(o, 4);
    sb_printf(o, "for (int64_t j = 0; j < K; j++) if (b%d[t * K + j] == %d) wt += b%d[t * K + j];\n", idx, e, w);
    ind(o, 4);
    if (acc == k->out)
      sb_printf(o, "for (int64_t q = 0; q < RE; q++) b%d[t * RE + q] = (float)(b%d[t * RE + q] + wt * b%d[r * RE + q]);\n",
                k->out, k->out, r->yields[0]);
    else
      sb_printf(o, "for (int64_t q = 0; q < RE; q++) b%d[t * RE + q] += wt * b%d[r * RE + q];\n", acc, r->yields[0]);
    ind(o, 3);
    sb_append(o, "}\n");
    ind(o, 2);
    sb_append(o, "}\n");
    ind(o, 1);
    sb_append(o, "}\n");
  }
  if (acc != k->out) {
    ind(o, 1);
    sb_printf(o, "for (int64_t i = 0; i < T * RE; i++) b%d[i] = (float)b%d[i];\n", k->out, acc);
  }
  sb_free(&T);
  sb_free(&K);
  sb_free(&re);
}

static void emit_skip(Emit *E, const LoopKernel *k) {
  StrBuf *o = E->o;
  const LoopBuf *out = loop_buf(E->m, k->out);
  const LoopRegion *r = k->regions[0];
  StrBuf T = {0}, re = {0};
  tvar_str(&T, k->tvar);
  buf_elems_from(&re, out, 1);
  int cond = k->args[0], prev = k->args[1], rows = k->args[2];
  ind(o, 1);
  sb_append(o, "int st = GAT_OK;\n");
  ind(o, 1);
  sb_append(o, "(void)st;\n");
  ind(o, 1);
  sb_printf(o, "const int64_t T = %s, RE = %s;\n", sb_cstr(&T), sb_cstr(&re));
  ind(o, 1);
  sb_append(o, "int64_t n = 0;\n");
  ind(o, 1);
  sb_printf(o, "memcpy(b%d, b%d, sizeof(b%d[0]) * (size_t)(T * RE));\n", k->out, prev, k->out);
  ind(o, 1);
  int knob = emit_knobs_index(E->m, k); /* capacity/threshold/cut: run-time values (emit_knobs.h) */
  if (k->reals[0] > 0 || k->reals[1] > 0) {
    /* a router (route top(...) by r; loopir.h LK_SKIP): the rows of rank < keep */
    if (k->reals[0] > 0) {
      sb_printf(o, "int64_t keep = (int64_t)ceil(c->m->skip_cap[%d] * (double)T - 1e-9);\n", knob);
      ind(o, 1);
      sb_append(o, "if (keep < 1) keep = 1;\n");
    } else {
      sb_printf(o, "int64_t keep = T < (int64_t)c->m->skip_cap[%d] ? T : (int64_t)c->m->skip_cap[%d];\n", knob, knob);
    }
    ind(o, 1);
    sb_printf(o, "if (T == 1 && c->m->skip_tau[%d] >= 0) { if (1.0 / (1.0 + exp(-(double)b%d[0])) >= c->m->skip_tau[%d]) "
                 "b%d[n++] = 0; } else\n", knob, cond, knob, rows);
    ind(o, 1);
    sb_append(o, "for (int64_t t = 0; t < T; t++) {\n");
    ind(o, 2);
    sb_append(o, "int64_t rank = 0;\n");
    ind(o, 2);
    sb_printf(o, "for (int64_t u = 0; u < T && rank < keep; u++) rank += b%d[u] > b%d[t] || (b%d[u] == b%d[t] && u < t);\n",
              cond, cond, cond, cond);
    ind(o, 2);
    sb_printf(o, "if (rank < keep) b%d[n++] = (int32_t)t;\n", rows);
    ind(o, 1);
    sb_append(o, "}\n");
  } else if (k->skip_cmp > 0 && k->skip_cmp <= 4) { /* `skip when s < tau`: skipped iff s[t] CMP tau */
    static const char *const keep_if[4] = {">=", ">", "<=", "<"}; /* the negation: kept rows */
    sb_printf(o, "for (int64_t t = 0; t < T; t++) if ((double)b%d[t] %s c->m->skip_tau[%d] || isnan(b%d[t])) b%d[n++] = (int32_t)t;\n",
              cond, keep_if[k->skip_cmp - 1], knob, cond, rows);
  } else {
    sb_printf(o, "for (int64_t t = 0; t < T; t++) if (b%d[t] == 0) b%d[n++] = (int32_t)t;\n", cond, rows);
  }
  int cbase = emit_count_base(E->m, k); /* --count: tokens, kept rows, calls */
  if (cbase >= 0) {
    ind(o, 1);
    sb_printf(o, "c->m->count[%d] += (uint64_t)T;\n", cbase);
  }
  ind(o, 1);
  sb_append(o, "if (n > 0) {\n");
  if (cbase >= 0) {
    ind(o, 2);
    sb_printf(o, "c->m->count[%d] += (uint64_t)n; c->m->count[%d]++;\n", cbase + 1, cbase + 2);
  }
  emit_gather_rows(E, k, r, 2);
  ind(o, 2);
  sb_printf(o, "for (int64_t r = 0; r < n; r++) memcpy(b%d + (int64_t)b%d[r] * RE, b%d + r * RE, sizeof(b%d[0]) * (size_t)RE);\n",
            k->out, rows, r->yields[0], k->out);
  if (k->nstates > 0) { /* rows_state: the packed sequence grew by n rows */
    ind(o, 2);
    sb_printf(o, "b%d[0] += (int32_t)n;\n", k->state_bufs[0]);
  }
  ind(o, 1);
  sb_append(o, "}\n");
  sb_free(&T);
  sb_free(&re);
}

/* -O2 scheduled nests run in a helper whose output is a restrict parameter:
 * compilers honour restrict on parameters (also after inlining), not on
 * locals, and without it the inner loops of a kernel inlined into forward
 * stay scalar. Only the output: with the read-only inputs restrict as well,
 * GCC 12 -O3 -mavx2 changed the results of a scan step once the helpers
 * were inlined into the scan loop (test_loopfast TransposedNumbersMatchO0). */
static int kernel_has_nest_fn(const Emit *E, const LoopKernel *k) {
  return k->kind == LK_LOOP && E->m->opt_level >= 2 && (k->nlets || k->red_outer || k->f32_math);
}

static void emit_nest_params(Emit *E, const LoopKernel *k, int decl) {
  char *used = xcalloc((size_t)E->m->bufs.len + 1, 1);
  mark_kernel(used, k);
  for (int l = 0; l < k->nlets; l++) mark_expr(used, k->lets[l].e);
  for (int i = 0; i < E->m->bufs.len; i++) {
    if (!used[i]) continue;
    const LoopBuf *b = E->m->bufs.data[i];
    int wr = i == k->out || (k->sweep_at && i == k->sweep_at->buf); /* pass_scanfuse: a second output */
    if (decl)
      sb_printf(E->o, ", %s%s *%sb%d", wr ? "" : "const ", b->is_f64 ? "double" : emit_c_ctype(b->dtype),
                wr ? "restrict " : "", i);
    else
      sb_printf(E->o, ", b%d", i);
  }
  free(used);
}

static void emit_nest_fn(Emit *E, const LoopKernel *k) {
  StrBuf *o = E->o;
  sb_append(o, "static void ");
  kernel_name(o, E->m, k);
  sb_printf(o, "_nest(%s_ctx *c", E->m->name);
  emit_nest_params(E, k, 1);
  sb_append(o, ") {\n  (void)c;\n");
  emit_loop_sched(E, k);
  sb_append(o, "}\n\n");
  E->nred = 0;
}

static void emit_kernel(Emit *E, const LoopKernel *k) {
  StrBuf *o = E->o;
  E->nred = 0;
  if (kernel_has_nest_fn(E, k)) emit_nest_fn(E, k);
  sb_printf(o, "/* k%d: %s", k->id, k->opname ? k->opname : "op");
  if (k->what) {
    sb_append(o, " -> ");
    comment_text(o, k->what);
  }
  where_text(o, k);
  if (k->file) sb_printf(o, ":%d", k->col);
  sb_append(o, " */\nstatic int ");
  kernel_name(o, E->m, k);
  sb_printf(o, "(%s_ctx *c) {\n", E->m->name);
  kernel_decls(E, k);
  switch (k->kind) {
  case LK_LOOP:
    if (kernel_has_nest_fn(E, k)) {
      ind(o, 1);
      kernel_name(o, E->m, k);
      sb_append(o, "_nest(c");
      emit_nest_params(E, k, 0);
      sb_append(o, ");\n");
    } else {
      emit_loop_body(E, k);
    }
    break;
  case LK_CALL: emit_call(E, k); break;
  case LK_COPY: {
    StrBuf s = {0};
    size_str(&s, k->sizes[0]);
    ind(o, 1);
    sb_printf(o, "memcpy(b%d, b%d, sizeof(b%d[0]) * (size_t)%s);\n", k->out, k->args[0], k->out, sb_cstr(&s));
    sb_free(&s);
    break;
  }
  case LK_SCAN: emit_scan(E, k); break;
  case LK_MIXTURE: emit_mixture(E, k); break;
  case LK_SKIP: emit_skip(E, k); break;
  case LK_TILE: emit_tile(E, k); break;
  }
  sb_append(o, "  return GAT_OK;\n}\n\n");
  for (int r = 0; r < k->nregions; r++)
    for (int i = 0; i < k->regions[r]->kernels.len; i++) emit_kernel(E, k->regions[r]->kernels.data[i]);
}

static void emit_protos(Emit *E, const PtrVec *ks) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = ks->data[i];
    sb_append(E->o, "static int ");
    kernel_name(E->o, E->m, k);
    sb_printf(E->o, "(%s_ctx *c);\n", E->m->name);
    for (int r = 0; r < k->nregions; r++) emit_protos(E, &k->regions[r]->kernels);
  }
}

static void emit_spec_table(StrBuf *o, const char *N, const char *what, const LoopTensorInfo *t, int n) {
  sb_printf(o, "const gat_tensor_spec %s_%s[%d] = {\n", N, what, n > 0 ? n : 1);
  for (int i = 0; i < n; i++) {
    sb_append(o, "  {");
    emit_c_string_literal(o, t[i].name);
    sb_printf(o, ", %s, %d, {", t[i].dtype == IR_F32 ? "GAT_F32" : "GAT_I32", t[i].shape.rank);
    for (int d = 0; d < t[i].shape.rank; d++) sb_printf(o, "%s%lld", d ? ", " : "", (long long)t[i].shape.dims[d]);
    sb_append(o, "}},\n");
  }
  if (n == 0) sb_append(o, "  {\"\", GAT_F32, 0, {0}},\n");
  sb_append(o, "};\n");
}

/* The file comment, includes, the per-call context type and the tensor spec tables. */
static void emit_c_prelude(StrBuf *sb, const LoopModule *m, const char *N, const char *header_name) {
  sb_printf(sb,
            "/* %s.c — generated by gattnc; do not edit.\n"
            " * One function per kernel, in the order forward runs them; each names the\n"
            " * .gat layer and line it came from. Links with the gattnc runtime\n"
            " * (gat_runtime.c, gat_safetensors.c) and libm. No allocation, no mutable\n"
            " * globals: every byte of state is in the model struct and its arena. */\n",
            N);
  sb_append(sb, "#include <math.h>\n#include <string.h>\n\n");
  sb_printf(sb, "#include \"%s\"\n\n", header_name);
  sb_printf(sb,
            "/* Per-call context: where buffers are and how many rows they hold. */\n"
            "typedef struct %s_ctx {\n"
            "  %s *m;\n"
            "  unsigned char *a;\n"
            "  int64_t T;\n"
            "  int64_t rows[%d]; /* rows routed into each mixture expert / skip region */\n"
            "  int64_t tile[%d]; /* the variables of the blocking loops (LK_TILE kernels) */\n"
            "  const void *in[%d];\n"
            "  void *out[%d];\n"
            "} %s_ctx;\n\n",
            N, N, m->ntvars, m->ntiles > 0 ? m->ntiles : 1, m->ninputs > 0 ? m->ninputs : 1, m->noutputs > 0 ? m->noutputs : 1, N);
  emit_spec_table(sb, N, "params", m->params, m->nparams);
  sb_append(sb, "/* -1 stands for T */\n");
  emit_spec_table(sb, N, "inputs", m->inputs, m->ninputs);
  emit_spec_table(sb, N, "outputs", m->outputs, m->noutputs);
  sb_append(sb, "\n");
}

/* --profile: per-kernel time and call counters and their accessors. */
static void emit_c_profile_defs(StrBuf *sb, const LoopModule *m, const char *N) {
  sb_printf(sb, "/* --profile: nanoseconds and calls per top-level kernel (a profiling build only). */\n");
  sb_printf(sb, "static uint64_t %s_prof_ns[%d], %s_prof_calls[%d];\n", N, m->kernels.len + 1, N, m->kernels.len + 1);
  sb_printf(sb, "static const char *const %s_prof_names[%d] = {\n", N, m->kernels.len + 1);
  for (int i = 0; i < m->kernels.len; i++) {
    StrBuf kn = {0};
    kernel_name(&kn, m, m->kernels.data[i]);
    sb_append(sb, "  ");
    emit_c_string_literal(sb, sb_cstr(&kn));
    sb_append(sb, ",\n");
    sb_free(&kn);
  }
  sb_append(sb, "  \"\"};\n");
  sb_printf(sb, "int %s_profile_count(void) { return %d; }\n", N, m->kernels.len);
  sb_printf(sb, "const char *%s_profile_name(int i) { return %s_prof_names[i]; }\n", N, N);
  sb_printf(sb, "uint64_t %s_profile_ns(int i) { return %s_prof_ns[i]; }\n", N, N);
  sb_printf(sb, "uint64_t %s_profile_calls(int i) { return %s_prof_calls[i]; }\n", N, N);
  sb_printf(sb, "void %s_profile_clear(void) { memset(%s_prof_ns, 0, sizeof %s_prof_ns); memset(%s_prof_calls, 0, sizeof %s_prof_calls); }\n\n", N, N, N, N, N);
}

/* NAME_sizeof .. NAME_position, and NAME_reset: the state buffers back to their initial values. */
static void emit_c_reset_fn(StrBuf *sb, const LoopModule *m, const char *N, const char *U) {
  sb_printf(sb, "size_t %s_sizeof(void) { return sizeof(%s); }\n", N, N);
  sb_printf(sb, "size_t %s_arena_bytes(void) { return %s_ARENA_BYTES; }\n", N, U);
  sb_printf(sb, "int %s_status(const %s *m) { return m ? m->err.status : GAT_ERR_ARGUMENT; }\n", N, N);
  sb_printf(sb, "const char *%s_message(const %s *m) { return m ? m->err.msg : \"NULL model\"; }\n", N, N);
  sb_printf(sb, "int64_t %s_position(const %s *m) { return m ? m->pos : 0; }\n\n", N, N);

  sb_printf(sb, "int %s_reset(%s *m) {\n", N, N);
  sb_append(sb, "  if (!m) return GAT_ERR_ARGUMENT;\n");
  sb_append(sb, "  if (!m->ready) return gat_error_set(&m->err, GAT_ERR_NOT_INITIALIZED, \"reset before a successful init\");\n");
  sb_append(sb, "  m->pos = 0;\n");
  for (int i = 0; i < m->bufs.len; i++) {
    const LoopBuf *b = m->bufs.data[i];
    if (b->kind != LB_STATE) continue;
    double init = m->states[b->index].init;
    sb_append(sb, "  { /* ");
    comment_text(sb, b->name);
    sb_append(sb, " */\n");
    sb_printf(sb, "    %s *s = (%s *)(void *)(m->arena + %lld);\n", emit_c_ctype(b->dtype), emit_c_ctype(b->dtype),
              (long long)b->offset);
    sb_printf(sb, "    for (int64_t i = 0; i < %lld; i++) s[i] = ", (long long)(b->bytes / 4));
    if (b->dtype == IR_F32) {
      sb_append(sb, "(float)");
      double_lit(sb, init);
    } else {
      sb_printf(sb, "%lld", (long long)init);
    }
    sb_append(sb, ";\n  }\n");
  }
  sb_append(sb, "  gat_error_clear(&m->err);\n  return GAT_OK;\n}\n\n");
}

/* The weights packed into the GEMM micro-kernel layout at init (-O2), with their folded scales. */
static void emit_c_pack_calls(StrBuf *sb, const LoopModule *m) {
  if (m->packs.len) sb_append(sb, "  /* weights packed into the GEMM micro-kernel layout (-O2) */\n");
  for (int i = 0; i < m->packs.len; i++) {
    const LoopPack *p = m->packs.data[i];
    StrBuf sc = {0}; /* folded scales (pass_scalefold) */
    double_lit(&sc, p->scale);
    if (p->scale_param >= 0)
      sb_printf(&sc, ", (const float *)m->w[%d]", p->scale_param);
    else
      sb_append(&sc, ", NULL");
    if (p->vector) {
      sb_printf(sb, "  gat_gemm_pack_vec((float *)(void *)(m->arena + %lld), (const float *)m->w[%d], %lld, %s);\n",
                (long long)loop_buf(m, p->buf)->offset, p->param, (long long)p->N, sb_cstr(&sc));
      sb_free(&sc);
      continue;
    }
    if (p->scale_vec >= 0)
      sb_printf(&sc, ", (const float *)m->w[%d], %d", p->scale_vec, p->vec_plus_one);
    else
      sb_append(&sc, ", NULL, 0");
    sb_printf(sb, "  gat_gemm_pack((float *)(void *)(m->arena + %lld), (const float *)m->w[%d], %lld, %lld, %lld, %lld, 0, %lld, %s);\n",
              (long long)loop_buf(m, p->buf)->offset, p->param, (long long)p->N, (long long)p->K, (long long)p->sn,
              (long long)p->sk, (long long)p->K, sb_cstr(&sc));
    sb_free(&sc);
  }
}

/* NAME_init (from safetensors bytes) and NAME_init_tensors (from a pointer table), over shared arena checks. */
static void emit_c_init_fns(StrBuf *sb, const LoopModule *m, const char *N, const char *U) {
  /* init: arena checks shared by the three ways to bind weights */
  sb_printf(sb, "static int %s_init_arena(%s *m, void *arena, size_t arena_len) {\n", N, N);
  sb_append(sb, "  if (!m) return GAT_ERR_ARGUMENT;\n  memset(m, 0, sizeof *m);\n");
  sb_append(sb, "  if (!arena) return gat_error_set(&m->err, GAT_ERR_ARGUMENT, \"arena is NULL\");\n");
  sb_printf(sb,
            "  if (arena_len < %s_ARENA_BYTES)\n"
            "    return gat_error_set(&m->err, GAT_ERR_ARENA_TOO_SMALL, \"arena of %%lu bytes, the model needs %%lu (%s_ARENA_BYTES)\", (unsigned long)arena_len, (unsigned long)%s_ARENA_BYTES);\n",
            U, U, U);
  sb_append(sb, "  if ((uintptr_t)arena % 8 != 0) return gat_error_set(&m->err, GAT_ERR_ALIGNMENT, \"arena is not 8-byte aligned\");\n");
  sb_append(sb, "  return GAT_OK;\n}\n\n");
  sb_printf(sb, "static int %s_init_done(%s *m, void *arena) {\n", N, N);
  sb_append(sb, "  m->arena = (unsigned char *)arena;\n  m->ready = 1;\n");
  emit_knobs_init(sb, m);
  emit_c_pack_calls(sb, m);
  sb_printf(sb, "  return %s_reset(m);\n}\n\n", N);

  sb_printf(sb, "int %s_init(%s *m, void *arena, size_t arena_len, const void *weights, size_t weights_len) {\n", N, N);
  sb_printf(sb, "  int st = %s_init_arena(m, arena, arena_len);\n", N);
  sb_append(sb, "  if (st != GAT_OK) return st;\n");
  sb_append(sb, "  /* misaligned tensors are copied into the arena bytes beyond the model's own */\n");
  sb_printf(sb,
            "  st = gat_st_bind_copy(weights, weights_len, %s_params, %s_NUM_PARAMS, m->w, (unsigned char *)arena + %s_ARENA_BYTES,\n"
            "                        arena_len - %s_ARENA_BYTES, &m->err);\n",
            N, U, U, U);
  sb_append(sb, "  if (st != GAT_OK) return st;\n");
  sb_printf(sb, "  return %s_init_done(m, arena);\n}\n\n", N);

  sb_printf(sb, "int %s_init_tensors(%s *m, void *arena, size_t arena_len, const void *const *tensors) {\n", N, N);
  sb_printf(sb, "  int st = %s_init_arena(m, arena, arena_len);\n", N);
  sb_append(sb, "  if (st != GAT_OK) return st;\n");
  sb_append(sb, "  if (!tensors) return gat_error_set(&m->err, GAT_ERR_ARGUMENT, \"tensor table is NULL\");\n");
  sb_printf(sb, "  for (int i = 0; i < %s_NUM_PARAMS; i++) {\n", U);
  sb_printf(sb, "    if (!tensors[i]) return gat_error_set(&m->err, GAT_ERR_MISSING_TENSOR, \"tensor '%%s' is NULL\", %s_params[i].name);\n", N);
  sb_printf(sb,
            "    if ((uintptr_t)tensors[i] %% 4 != 0)\n"
            "      return gat_error_set(&m->err, GAT_ERR_ALIGNMENT, \"data of tensor '%%s' is not 4-byte aligned in memory\", %s_params[i].name);\n",
            N);
  sb_append(sb, "    m->w[i] = tensors[i];\n  }\n");
  sb_printf(sb, "  return %s_init_done(m, arena);\n}\n\n", N);
}

/* NAME_forward: argument checks, the context, then every top-level kernel in order. */
static void emit_c_forward_fn(StrBuf *sb, const LoopModule *m, const char *N, const char *U) {
  sb_printf(sb, "int %s_forward(%s *m", N, N);
  for (int i = 0; i < m->ninputs; i++) sb_printf(sb, ", const %s *in%d", emit_c_ctype(m->inputs[i].dtype), i);
  sb_append(sb, ", int32_t T");
  for (int i = 0; i < m->noutputs; i++) sb_printf(sb, ", %s *out%d", emit_c_ctype(m->outputs[i].dtype), i);
  sb_append(sb, ") {\n");
  sb_printf(sb, "  %s_ctx c;\n  int st;\n", N);
  sb_append(sb, "  if (!m) return GAT_ERR_ARGUMENT;\n");
  sb_append(sb, "  if (!m->ready) return gat_error_set(&m->err, GAT_ERR_NOT_INITIALIZED, \"forward before a successful init\");\n");
  for (int i = 0; i < m->ninputs; i++) {
    sb_printf(sb, "  if (!in%d) return gat_error_set(&m->err, GAT_ERR_ARGUMENT, \"input '%%s' is NULL\", %s_inputs[%d].name);\n", i, N, i);
  }
  for (int i = 0; i < m->noutputs; i++) {
    sb_printf(sb, "  if (!out%d) return gat_error_set(&m->err, GAT_ERR_ARGUMENT, \"output '%%s' is NULL\", %s_outputs[%d].name);\n", i, N, i);
  }
  sb_printf(sb,
            "  if (T < 1 || (int64_t)T > %s_MAX_T - m->pos)\n"
            "    return gat_error_set(&m->err, GAT_ERR_SEQ_TOO_LONG, \"T = %%ld at position %%lld: the model was compiled for at most %%lld tokens\", (long)T, (long long)m->pos, (long long)%s_MAX_T);\n",
            U, U);
  sb_append(sb, "  memset(&c, 0, sizeof c);\n  c.m = m;\n  c.a = m->arena;\n  c.T = T;\n");
  for (int i = 0; i < m->ninputs; i++) sb_printf(sb, "  c.in[%d] = in%d;\n", i, i);
  for (int i = 0; i < m->noutputs; i++) sb_printf(sb, "  c.out[%d] = out%d;\n", i, i);
  for (int i = 0; i < m->kernels.len; i++) {
    if (m->profile) sb_append(sb, "  { uint64_t t0_ = gat_time_ns();\n");
    sb_append(sb, "  if ((st = ");
    kernel_name(sb, m, m->kernels.data[i]);
    sb_append(sb, "(&c)) != GAT_OK) return st;\n");
    if (m->profile)
      sb_printf(sb, "  %s_prof_ns[%d] += gat_time_ns() - t0_; %s_prof_calls[%d]++; }\n", N, i, N, i);
  }
  sb_append(sb, "  m->pos += T;\n  gat_error_clear(&m->err);\n  return GAT_OK;\n}\n");
}

int emit_c_source(FILE *out, const LoopModule *m, const char *header_name) {
  StrBuf sb = {0};
  Emit E = {m, &sb, 0, NULL, 0, 0};
  const char *N = m->name;
  StrBuf up = {0};
  for (const char *p = N; *p; p++) {
    char ch = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    sb_appendn(&up, &ch, 1);
  }
  const char *U = sb_cstr(&up);
  emit_c_prelude(&sb, m, N, header_name);
  if (loop_module_has_gemm(m)) kernels_gemm_emit_target(&sb, m->target);
  kernels_attention_emit(&sb, m); /* nothing unless pass_attention marked a call */
  kernels_scan_emit(&sb, m);      /* nothing unless pass_chunk marked a scan */
  if (kernels_have_f32_math(&m->kernels)) kernels_math_emit(&sb); /* float functions of f32_math nests */
  if (m->profile) emit_c_profile_defs(&sb, m, N);
  emit_count_defs(&sb, m);
  emit_knobs_defs(&sb, m);
  emit_protos(&E, &m->kernels);
  sb_append(&sb, "\n");
  for (int i = 0; i < m->kernels.len; i++) emit_kernel(&E, m->kernels.data[i]);

  /* ---- entry points ---- */
  emit_c_reset_fn(&sb, m, N, U);
  emit_c_init_fns(&sb, m, N, U);
  emit_c_forward_fn(&sb, m, N, U);

  size_t w = fwrite(sb_cstr(&sb), 1, sb.len, out);
  int ok = w == sb.len;
  sb_free(&sb);
  sb_free(&up);
  return ok ? 0 : -1;
}

/* ---- NAME_weights.c ------------------------------------------------------------ */
/* Floats as C99 hex literals: exact, and the same bytes on every platform. */
static void f32_lit(StrBuf *sb, float f) {
  if (isnan(f))
    sb_append(sb, "NAN");
  else if (isinf(f))
    sb_append(sb, f > 0 ? "INFINITY" : "-INFINITY");
  else
    sb_printf(sb, "%af", (double)f);
}

int emit_c_weights(FILE *out, const LoopModule *m, const char *header_name, const char *source,
                   const void *const *data) {
  StrBuf sb = {0};
  const char *N = m->name;
  int ok = 1;
  sb_printf(&sb,
            "/* %s_weights.c — generated by gattnc from ",
            N);
  comment_text(&sb, source);
  sb_printf(&sb,
            "; do not edit.\n"
            " * The parameters of %s as constant arrays (hex float literals, exact),\n"
            " * for targets without a file system: link this file with %s.c and call\n"
            " * %s_init_embedded(&m, arena, arena_len) instead of %s_init. */\n",
            N, N, N, N);
  sb_append(&sb, "#include <math.h>\n\n");
  sb_printf(&sb, "#include \"%s\"\n\n", header_name);
  for (int i = 0; i < m->nparams; i++) {
    const LoopTensorInfo *p = &m->params[i];
    int64_t n = ir_shape_numel(p->shape, 1);
    char ty[160];
    ir_type_str(ty, sizeof ty, p->dtype, p->shape);
    sb_append(&sb, "/* ");
    comment_text(&sb, p->name);
    sb_printf(&sb, " : %s */\n", ty);
    sb_printf(&sb, "static const %s %s_w%d[%lld] = {", emit_c_ctype(p->dtype), N, i, (long long)(n > 0 ? n : 1));
    if (n == 0) sb_append(&sb, "0");
    for (int64_t e = 0; e < n; e++) {
      sb_append(&sb, e % 16 == 0 ? "\n  " : " ");
      if (p->dtype == IR_F32) {
        f32_lit(&sb, ((const float *)data[i])[e]);
      } else {
        int32_t v = ((const int32_t *)data[i])[e];
        if (v == INT32_MIN)
          sb_append(&sb, "(-2147483647 - 1)");
        else
          sb_printf(&sb, "%ld", (long)v);
      }
      if (e + 1 < n) sb_append(&sb, ",");
    }
    sb_append(&sb, "\n};\n\n");
    /* write as we go: weight files can be large */
    if (fwrite(sb_cstr(&sb), 1, sb.len, out) != sb.len) ok = 0;
    sb.len = 0;
  }
  sb_printf(&sb, "static const void *const %s_embedded[%d] = {", N, m->nparams > 0 ? m->nparams : 1);
  for (int i = 0; i < m->nparams; i++)
    sb_printf(&sb, "%s%s_w%d%s", i % 4 == 0 ? "\n  " : " ", N, i, i + 1 < m->nparams ? "," : "");
  if (m->nparams == 0) sb_append(&sb, "0");
  sb_append(&sb, "\n};\n\n");
  sb_printf(&sb,
            "int %s_init_embedded(%s *m, void *arena, size_t arena_len) {\n"
            "  return %s_init_tensors(m, arena, arena_len, %s_embedded);\n"
            "}\n",
            N, N, N, N);
  if (fwrite(sb_cstr(&sb), 1, sb.len, out) != sb.len) ok = 0;
  sb_free(&sb);
  return ok ? 0 : -1;
}
