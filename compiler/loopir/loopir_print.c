/* loopir_print.c — the text form of the loop IR (`gattnc FILE --dump-loops`).
 * Deterministic; one line per buffer, an indented block per kernel. Every
 * backend consumes exactly what this prints. */
#include "loopir.h"

static const char *const buf_kind_names[] = {"scratch", "state", "param", "input", "output"};
static const char *const call_names[] = {"softmax", "rms_norm", "layer_norm", "l2_norm", "gather",
                                         "topk", "rope", "conv1d", "attention", "gemm", "copy_rows"};

static void pr_ind(FILE *f, int n) {
  for (int i = 0; i < n; i++) fputs("  ", f);
}

static void pr_dim(FILE *f, int64_t d, int tvar) {
  if (d != IR_DIM_T)
    fprintf(f, "%lld", (long long)d);
  else if (tvar == 0)
    fputs("T", f);
  else
    fprintf(f, "R%d", tvar);
}

static void pr_size(FILE *f, LoopSize s) {
  fprintf(f, "%lld", (long long)s.k);
  for (int i = 0; i < s.tpow; i++) {
    fputs("*", f);
    pr_dim(f, IR_DIM_T, s.tvar);
  }
}

static void pr_index(FILE *f, const LoopIndex *ix) {
  int any = 0;
  for (int t = 0; t < ix->nterms; t++) {
    if (any) fputs("+", f);
    if (ix->coef[t] != 1) fprintf(f, "%lld*", (long long)ix->coef[t]);
    fprintf(f, "v%d", ix->var[t]);
    any = 1;
  }
  if (ix->dyn_buf >= 0) {
    fprintf(f, "%s%lld*b%d[]", any ? "+" : "", (long long)ix->dyn_coef, ix->dyn_buf);
    any = 1;
  }
  if (ix->c || !any) fprintf(f, "%s%lld", any && ix->c >= 0 ? "+" : "", (long long)ix->c);
}

static void pr_expr_raw(FILE *f, const LoopExpr *e, int tvar);
/* an inlined producer's value, rounded as its store would: f32(...) / i32(...) */
static void pr_expr(FILE *f, const LoopExpr *e, int tvar) {
  if (!e->round) {
    pr_expr_raw(f, e, tvar);
    return;
  }
  fprintf(f, "%s(", ir_dtype_name(e->dtype));
  pr_expr_raw(f, e, tvar);
  fputs(")", f);
}

static void pr_expr_raw(FILE *f, const LoopExpr *e, int tvar) {
  char buf[64];
  switch (e->kind) {
  case LX_CONST:
    format_double(buf, sizeof buf, e->f);
    fputs(buf, f);
    break;
  case LX_LOAD:
    fprintf(f, "b%d[", e->buf);
    for (int i = 0; i < e->nidx; i++) {
      if (i) fputs(", ", f);
      pr_index(f, &e->idx[i]);
    }
    fputs("]", f);
    break;
  case LX_VAR: fprintf(f, "v%d", e->var); break;
  case LX_POS0: fputs("pos0", f); break;
  case LX_UNARY:
    fprintf(f, "%s(", ir_fn_name(e->fn));
    pr_expr(f, e->a, tvar);
    fputs(")", f);
    break;
  case LX_BINARY:
    fprintf(f, "%s(", ir_fn_name(e->fn));
    pr_expr(f, e->a, tvar);
    fputs(", ", f);
    pr_expr(f, e->b, tvar);
    fputs(")", f);
    break;
  case LX_SELECT:
    fputs("select(", f);
    pr_expr(f, e->a, tvar);
    fputs(", ", f);
    pr_expr(f, e->b, tvar);
    fputs(", ", f);
    pr_expr(f, e->c, tvar);
    fputs(")", f);
    break;
  case LX_REDUCE: {
    static const char *const rn[] = {"sum", "max", "min", "mean"};
    fprintf(f, "%s(v%d < ", rn[e->red], e->var);
    pr_dim(f, e->extent, tvar);
    fputs(") ", f);
    pr_expr(f, e->a, tvar);
    break;
  }
  case LX_TEMP: fprintf(f, "l%d", e->var); break;
  }
}

static void pr_kernels(FILE *f, const LoopModule *m, const PtrVec *ks, int depth);

static void pr_region(FILE *f, const LoopModule *m, const LoopRegion *r, int depth, const char *label) {
  pr_ind(f, depth);
  fprintf(f, "%s (rows ", label);
  pr_dim(f, IR_DIM_T, r->tvar);
  fputs(") args(", f);
  for (int i = 0; i < r->nargs; i++) fprintf(f, "%sb%d", i ? ", " : "", r->args[i]);
  fputs(") yields(", f);
  for (int i = 0; i < r->nyield; i++) fprintf(f, "%sb%d", i ? ", " : "", r->yields[i]);
  fputs(") {\n", f);
  pr_kernels(f, m, &r->kernels, depth + 1);
  pr_ind(f, depth);
  fputs("}\n", f);
}

static void pr_kernel(FILE *f, const LoopModule *m, const LoopKernel *k, int depth) {
  pr_ind(f, depth);
  fprintf(f, "k%d %s", k->id, k->opname ? k->opname : "op");
  if (k->origin) fprintf(f, " @%s", k->origin);
  if (k->line) fprintf(f, " L%d", k->line);
  fputs(": ", f);
  switch (k->kind) {
  case LK_LOOP:
    /* -O2 schedule: lets (let lN@level = e) and the reduction-outside flag */
    for (int l = 0; l < k->nlets; l++) {
      fprintf(f, "let l%d@%d = ", l, k->lets[l].level);
      pr_expr(f, k->lets[l].e, k->tvar);
      fputs("; ", f);
    }
    if (k->red_outer) fputs("red_outer ", f);
    if (k->f32_math) fputs("f32_math ", f);
    if (k->sweep_at) { /* pass_scanfuse: a second store made in the reduction sweep */
      fputs("sweep ", f);
      pr_expr(f, k->sweep_at, k->tvar);
      fputs(" = ", f);
      pr_expr(f, k->sweep_val, k->tvar);
      fputs("; ", f);
    }
    fputs("for (", f);
    for (int d = 0; d < k->rank; d++) {
      if (d) fputs(", ", f);
      fprintf(f, "v%d < ", d);
      pr_dim(f, k->ext[d], k->tvar);
    }
    fprintf(f, ") b%d[", k->out);
    for (int d = 0; d < k->rank; d++) {
      if (d) fputs(", ", f);
      fprintf(f, "v%d", d);
      if (k->out_off[d]) fprintf(f, "+%lld", (long long)k->out_off[d]);
    }
    fputs("] = ", f);
    pr_expr(f, k->body, k->tvar);
    fputs("\n", f);
    break;
  case LK_CALL:
    fprintf(f, "b%d = %s(", k->out, call_names[k->call]);
    for (int i = 0; i < k->nargs; i++) {
      if (i) fputs(", ", f);
      if (k->args[i] >= 0)
        fprintf(f, "b%d", k->args[i]);
      else
        fputs("-", f);
    }
    fputs("; ", f);
    for (int i = 0; i < k->nsizes; i++) {
      if (i) fputs(", ", f);
      pr_size(f, k->sizes[i]);
    }
    fputs(")", f);
    if (k->call == LC_GEMM && k->epi_act) fprintf(f, " epilogue %s", ir_fn_name((IrFn)(k->epi_act - 1)));
    for (int d = 0; d < 2; d++) /* pass_block: the block of the result this call computes */
      if (k->blk_var[d] >= 0)
        fprintf(f, " %s [i%d, +%lld)", !d ? "rows" : k->call == LC_ATTENTION ? "heads" : "cols", k->blk_var[d],
                (long long)k->blk_len[d]);
    for (int c = 0; c < k->ncat; c++) { /* segmented GEMM (pass_concat) */
      const LoopGemmSeg *g = &k->cat[c];
      fprintf(f, "%s b%d = w b%d", c ? "," : " segments", g->out, g->w);
      if (g->bias >= 0) fprintf(f, " + b%d", g->bias);
      if (g->act) fprintf(f, " %s", ir_fn_name((IrFn)(g->act - 1)));
      if (g->res >= 0) fprintf(f, " + res b%d", g->res);
      fprintf(f, " [%lld]", (long long)g->n);
    }
    if (k->call == LC_ATTENTION && k->attn_fast) fputs(" flash", f);
    if (k->call == LC_ATTENTION && k->attn_part == LOOP_ATTN_APPEND) fputs(" append-only", f);
    fputs("\n", f);
    break;
  case LK_COPY:
    fprintf(f, "copy b%d <- b%d (", k->out, k->args[0]);
    pr_size(f, k->sizes[0]);
    fputs(" elems)\n", f);
    break;
  case LK_SCAN:
    fprintf(f, "scan t=b%d over ", k->args[0]);
    pr_dim(f, IR_DIM_T, k->tvar);
    fprintf(f, " -> b%d, states(", k->out);
    for (int i = 0; i < k->nstates; i++) {
      fprintf(f, "%sb%d", i ? ", " : "", k->state_bufs[i]);
      if (k->state_tmp && k->state_tmp[i] >= 0) fprintf(f, " via b%d", k->state_tmp[i]);
    }
    fputs(")", f);
    if (k->scan_chunk) /* pass_chunk: prefill runs the chunked kernel (codegen/kernels/scan.c) */
      fprintf(f, " chunked %s(q b%d, k b%d, v b%d, %s b%d, decay b%d, ws b%d; H %lld G %lld K %lld V %lld, scale %g)",
              k->scan_chunk == 1 ? "gla" : "delta", k->args[2], k->args[3], k->args[4],
              k->scan_chunk == 1 ? "gk" : "beta", k->args[5], k->args[6], k->args[7], (long long)k->sizes[0].k,
              (long long)k->sizes[1].k, (long long)k->sizes[2].k, (long long)k->sizes[3].k, k->reals[0]);
    fputs("\n", f);
    pr_region(f, m, k->regions[0], depth + 1, "step");
    break;
  case LK_TILE: /* pass_block: a blocking loop around micro-kernel calls */
    fprintf(f, "tile i%d in 0..", k->tile_var);
    pr_size(f, k->sizes[0]);
    fprintf(f, " step %lld%s {\n", (long long)k->tile_step, k->tile_par ? " parallel" : "");
    pr_kernels(f, m, &k->regions[0]->kernels, depth + 1);
    pr_ind(f, depth);
    fputs("}\n", f);
    break;
  case LK_MIXTURE:
  case LK_SKIP:
    fprintf(f, "%s b%d <- (b%d, b%d; rows b%d", k->kind == LK_MIXTURE ? "mixture" : "skip", k->out,
            k->args[0], k->args[1], k->args[2]);
    if (k->kind == LK_MIXTURE && k->args[3] >= 0) fprintf(f, "; acc b%d", k->args[3]);
    if (k->kind == LK_SKIP && (k->reals[0] > 0 || k->reals[1] > 0)) {
      if (k->reals[0] > 0) fprintf(f, "; route top %g*T", k->reals[0]);
      else fprintf(f, "; route top %lld", (long long)k->reals[1]);
      if (k->reals[2] >= 0) fprintf(f, " threshold %g", k->reals[2]);
    }
    if (k->kind == LK_SKIP && k->skip_cmp > 0 && k->skip_cmp <= 4)
      fprintf(f, "; skipped iff b%d %s %.9g", k->args[0], (const char *[]){"<", "<=", ">", ">="}[k->skip_cmp - 1],
              k->reals[3]);
    fputs("; x", f);
    for (int i = 0; i < k->nxs; i++) fprintf(f, "%sb%d", i ? ", " : " ", k->xs[i]);
    fputs(")\n", f);
    for (int r = 0; r < k->nregions; r++) {
      char label[32];
      snprintf(label, sizeof label, k->kind == LK_MIXTURE ? "expert %d" : "kept%.0d", r);
      pr_region(f, m, k->regions[r], depth + 1, label);
    }
    break;
  }
}

static void pr_kernels(FILE *f, const LoopModule *m, const PtrVec *ks, int depth) {
  for (int i = 0; i < ks->len; i++) pr_kernel(f, m, ks->data[i], depth);
}

void loop_print(FILE *f, const LoopModule *m) {
  fprintf(f, "loops %s max_T=%lld arena=%lld state=%lld\n", m->name, (long long)m->max_T,
          (long long)m->arena_bytes, (long long)m->state_bytes);
  for (int i = 0; i < m->bufs.len; i++) {
    const LoopBuf *b = m->bufs.data[i];
    fprintf(f, "  b%d %s %s[", b->id, buf_kind_names[b->kind], b->is_f64 ? "f64" : ir_dtype_name(b->dtype));
    for (int d = 0; d < b->shape.rank; d++) {
      if (d) fputs(", ", f);
      pr_dim(f, b->shape.dims[d], b->tvar);
    }
    fputs("]", f);
    if (b->offset >= 0) fprintf(f, " @%lld", (long long)b->offset);
    if (b->kind == LB_PARAM || b->kind == LB_INPUT || b->kind == LB_OUTPUT || b->kind == LB_STATE)
      fprintf(f, " #%d", b->index);
    if (b->name) fprintf(f, " \"%s\"", b->name);
    if (b->persistent) fputs(" persistent", f);
    fputs("\n", f);
  }
  for (int i = 0; i < m->packs.len; i++) {
    const LoopPack *p = m->packs.data[i];
    fprintf(f, "  pack b%d <- param #%d [N %lld, K %lld, strides %lld, %lld] at init\n", p->buf, p->param,
            (long long)p->N, (long long)p->K, (long long)p->sn, (long long)p->sk);
  }
  pr_kernels(f, m, &m->kernels, 1);
}
