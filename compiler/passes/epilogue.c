/* epilogue.c — pass_epilogue (-O2; off with -fno-fuse or -fno-tile): folds
 * the elementwise consumer of a GEMM into the GEMM's epilogue, so the tile is
 * finished while it is in L1 and the intermediate buffer disappears.
 *
 * Rewrites: GEMM G -> out O, where O's only reader is a later LK_LOOP kernel
 * C of the same kernel list covering O's whole shape with
 *     C = act(O)        (act among kernels_gemm_act_ok: silu, gelu, relu, ...)
 *     C = O + R / R + O (R a dense buffer of the same shape: residual add)
 * into G -> C's output with epi_act / args[3] = R; C is deleted. Order inside
 * the epilogue is bias, act, residual (each rounded to f32 as the unfused ops
 * store), so act after a residual is not taken. Needs: pass_gemm. Breaks:
 * nothing; results are bitwise those of GEMM + separate kernels. */
#include "fuse_util.h"
#include "kernels_gemm.h"

static int reads_buf(const LoopExpr *e, int buf) {
  return e && ((e->kind == LX_LOAD && e->buf == buf) || reads_buf(e->a, buf) || reads_buf(e->b, buf) ||
               reads_buf(e->c, buf));
}

static int epilogue_once(LoopModule *m, PtrVec *ks) {
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *g = ks->data[i];
    if (g->kind != LK_CALL || g->call != LC_GEMM) continue;
    const LoopBuf *ob = loop_buf(m, g->out);
    if (ob->kind != LB_SCRATCH || ob->persistent || loop_buf_reads(m, g->out) != 1) continue;
    for (int j = i + 1; j < ks->len; j++) {
      LoopKernel *c = ks->data[j];
      if (c->kind != LK_LOOP || !reads_buf(c->body, g->out)) { /* not O's reader: look further */
        if (loop_kernel_writes(c, g->out)) break;
        continue;
      }
      if (!fuse_whole_output(m, c) || c->tvar != g->tvar) continue;
      const LoopExpr *e = c->body;
      int rank = c->rank;
      int take = 0, res = -1, act = 0;
      if (e->kind == LX_UNARY && !g->epi_act && g->args[3] < 0 && kernels_gemm_act_ok(e->fn) &&
          fuse_identity_load(m, e->a, rank, c->ext) && e->a->buf == g->out) {
        take = 1;
        act = 1 + (int)e->fn;
      } else if (e->kind == LX_BINARY && e->fn == IR_FN_ADD && e->dtype == IR_F32 && g->args[3] < 0 &&
                 fuse_identity_load(m, e->a, rank, c->ext) && fuse_identity_load(m, e->b, rank, c->ext)) {
        if (e->a->buf == g->out && e->b->buf != g->out)
          res = e->b->buf, take = 1;
        else if (e->b->buf == g->out && e->a->buf != g->out)
          res = e->a->buf, take = 1;
        if (take) {
          const LoopBuf *rb = loop_buf(m, res);
          if (rb->dtype != IR_F32 || res == c->out) take = 0;
          for (int q = i + 1; take && q < j; q++) /* R must already hold its value when G runs */
            if (loop_kernel_writes(ks->data[q], res)) take = 0;
        }
      }
      if (!take) break; /* O's only reader is not a fusable epilogue */
      if (loop_buf(m, c->out)->dtype != IR_F32 || loop_buf_writes(m, c->out) != 1) break;
      for (int q = i + 1; q < j; q++) /* nothing in between may touch C's output */
        if (loop_kernel_writes(ks->data[q], c->out) || loop_kernel_reads(ks->data[q], c->out)) return 0;
      g->out = c->out;
      if (act) g->epi_act = act;
      if (res >= 0) g->args[3] = res;
      g->what = c->what;
      fuse_remove_at(ks, j);
      return 1;
    }
  }
  return 0;
}

static void epilogue_list(LoopModule *m, PtrVec *ks) {
  while (epilogue_once(m, ks)) {
  }
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = ks->data[i];
    for (int r = 0; r < k->nregions; r++) epilogue_list(m, &k->regions[r]->kernels);
  }
}

void pass_epilogue(LoopModule *m, const PassOptions *o) {
  (void)o;
  epilogue_list(m, &m->kernels);
}
