/* glu.c — pass_glu (-O2; off with -fno-glu, -fno-fuse, -fno-tile or
 * -fno-pack): the GLU product of two GEMMs on the same activation becomes
 * one GEMM with two packed weights, so neither [M, N] product is written.
 *
 * Rewrites: G1 -> O1 (packed W, any epilogue activation, bias b1),
 * G2 -> O2 (packed U, no activation, bias b2), both reading the same A with
 * the same M, N, K (and the same row scale, see pass_prologue), no residual,
 * and C = O1 * O2 (or O2 * O1), an LK_LOOP over the whole [M, N] that is the
 * only reader of O1 and O2, into one LC_GEMM at C's place:
 *     out = act(A.W^T + b1) * (A.U^T + b2)        (args[7] = U, args[8] = b2)
 * computed tile by tile by gat_gemm_glu_f32. SwiGLU's silu(x Wg) * (x Wu)
 * is the case that matters. Nothing between G1/G2 and C may write A, the row
 * scale, the biases or C's output. Needs: pass_gemm, pass_epilogue (which
 * moved silu into G1). Breaks: nothing beyond pass_gemm's rounding: the
 * steps are rounded to f32 as the unfused kernels store them. */
#include "fuse_util.h"
#include "gemm_util.h"

static int arg(const LoopKernel *k, int i) { return i < k->nargs ? k->args[i] : -1; }

static int gemm_producer(const LoopModule *m, const PtrVec *ks, int before, int buf) {
  for (int i = 0; i < before; i++) {
    const LoopKernel *g = ks->data[i];
    if (g->kind == LK_CALL && g->call == LC_GEMM && g->out == buf) return i;
  }
  (void)m;
  return -1;
}

static int same_size(LoopSize a, LoopSize b) { return a.k == b.k && a.tpow == b.tpow && a.tvar == b.tvar; }

static int glu_once(LoopModule *m, PtrVec *ks) {
  for (int j = 0; j < ks->len; j++) {
    LoopKernel *c = ks->data[j];
    if (c->kind != LK_LOOP || !fuse_whole_output(m, c)) continue;
    const LoopExpr *e = c->body;
    if (e->kind != LX_BINARY || e->fn != IR_FN_MUL || e->dtype != IR_F32) continue;
    if (!fuse_identity_load(m, e->a, c->rank, c->ext) || !fuse_identity_load(m, e->b, c->rank, c->ext)) continue;
    if (e->a->buf == e->b->buf) continue;
    int i1 = gemm_producer(m, ks, j, e->a->buf), i2 = gemm_producer(m, ks, j, e->b->buf);
    if (i1 < 0 || i2 < 0) continue;
    LoopKernel *g1 = ks->data[i1], *g2 = ks->data[i2];
    if (g2->epi_act && !g1->epi_act) { /* the activated product goes first */
      LoopKernel *t = g1;
      g1 = g2, g2 = t;
      int ti = i1;
      i1 = i2, i2 = ti;
    }
    if (g2->epi_act || arg(g1, 3) >= 0 || arg(g2, 3) >= 0 || arg(g1, 7) >= 0 || arg(g2, 7) >= 0) continue;
    if (g1->args[1] < 0 || g2->args[1] < 0 || g1->args[0] != g2->args[0] || arg(g1, 6) != arg(g2, 6)) continue;
    if (!same_size(g1->sizes[0], g2->sizes[0]) || !same_size(g1->sizes[1], g2->sizes[1]) ||
        !same_size(g1->sizes[2], g2->sizes[2]) || g1->tvar != c->tvar || g2->tvar != c->tvar)
      continue;
    int ok = 1;
    for (int q = 0; q < 2; q++) {
      const LoopKernel *g = q ? g2 : g1;
      const LoopBuf *ob = loop_buf(m, g->out);
      if (ob->kind != LB_SCRATCH || ob->persistent || loop_buf_reads(m, g->out) != 1 || loop_buf_writes(m, g->out) != 1)
        ok = 0;
    }
    const LoopBuf *cb = loop_buf(m, c->out);
    if (!ok || cb->dtype != IR_F32 || loop_buf_writes(m, c->out) != 1) continue;
    int first = i1 < i2 ? i1 : i2;
    int watch[5] = {g1->args[0], arg(g1, 6), g1->args[2], g2->args[2], c->out};
    for (int q = first + 1; q < j && ok; q++)
      for (int w = 0; w < 5; w++)
        if (watch[w] >= 0 && ks->data[q] != g1 && ks->data[q] != g2 && loop_kernel_writes(ks->data[q], watch[w]))
          ok = 0;
    if (!ok) continue;
    /* g1 becomes the GLU GEMM and takes C's place */
    g1->out = c->out;
    g1->args[7] = g2->args[1];
    g1->args[8] = g2->args[2];
    if (g1->nargs < 9) {
      for (int a = g1->nargs; a < 9; a++)
        if (a != 7 && a != 8 && a != 6) g1->args[a] = -1;
      g1->nargs = 9;
    }
    g1->what = c->what;
    ks->data[j] = g1;
    int hi = i1 > i2 ? i1 : i2, lo = i1 < i2 ? i1 : i2;
    fuse_remove_at(ks, hi);
    fuse_remove_at(ks, lo);
    return 1;
  }
  return 0;
}

static void glu_list(LoopModule *m, PtrVec *ks) {
  while (glu_once(m, ks)) {
  }
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = ks->data[i];
    for (int r = 0; r < k->nregions; r++) glu_list(m, &k->regions[r]->kernels);
  }
}

void pass_glu(LoopModule *m, const PassOptions *o) {
  (void)o;
  glu_list(m, &m->kernels);
  gemm_packs_prune(m);
}
