/* scalefold.c — pass_scalefold (-O2 with packed weights; off with
 * -fno-fold-scales, -fno-tile or -fno-pack): static scales that sit next to
 * a GEMM are multiplied into its packed weight when NAME_init packs it, so
 * the forward pass never applies them.
 *
 * Rewrites (LoopPack's scale fields say what init computes):
 *   1. G -> O, O's only reader a later LK_LOOP C = O * s (or s * O) over O's
 *      whole shape, s a constant or a one-element parameter (ReZero's alpha,
 *      `x + resweight * linear(h)`): G's pack becomes s·W, its bias s·b (a
 *      scaled copy of the bias parameter packed at init, LoopPack.vector),
 *      G writes C's output and C disappears. G must have no activation,
 *      residual or row scale yet (so this runs before pass_epilogue, which
 *      then takes the residual add `x + ...` into the GEMM).
 *   2. An LC_RMS_NORM whose weight g is a parameter and whose output is read
 *      only as the activation (args[0]) of packed GEMMs: every such GEMM's
 *      pack becomes W·diag(g) (1 + g with plus_one), and the norm stops
 *      multiplying by g (args[1] = -1).
 * Needs: pass_gemm with packing. Breaks: exact -O2 rounding by about one f32
 * ulp per element (W·s is rounded once at init instead of the product at run
 * time; exact for power-of-two constants such as 0.125). */
#include <math.h>

#include "fuse_util.h"
#include "gemm_util.h"

static int count_loads(const LoopExpr *e, int buf) {
  if (!e) return 0;
  return (e->kind == LX_LOAD && e->buf == buf) + count_loads(e->a, buf) + count_loads(e->b, buf) +
         count_loads(e->c, buf);
}

static int gemm_plain(const LoopKernel *g) {
  return g->args[1] >= 0 && !g->epi_act && g->args[3] < 0 && !(g->nargs > 6 && g->args[6] >= 0) &&
         !(g->nargs > 7 && g->args[7] >= 0);
}

static const LoopKernel *const_writer(const PtrVec *ks, int buf) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = ks->data[i];
    if (k->out == buf) return k;
    for (int r = 0; r < k->nregions; r++) {
      const LoopKernel *w = const_writer(&k->regions[r]->kernels, buf);
      if (w) return w;
    }
  }
  return NULL;
}

/* s in C's body: a finite constant (*c) or a load of a one-element f32 parameter (*param). */
static int scale_operand(const LoopModule *m, const LoopExpr *x, double *c, int *param) {
  if (x->round) return 0;
  if (x->kind == LX_CONST) {
    if (!isfinite(x->f)) return 0;
    *c = x->f;
    return 1;
  }
  if (x->kind != LX_LOAD) return 0;
  const LoopBuf *b = loop_buf(m, x->buf);
  if (b->kind == LB_SCRATCH && !b->is_f64 && loop_shape_numel_max(b->shape, 1) == 1 && loop_buf_writes(m, x->buf) == 1) {
    const LoopKernel *w = const_writer(&m->kernels, x->buf); /* a literal materialised as a [] tensor */
    if (!w || w->kind != LK_LOOP || w->body->kind != LX_CONST || !isfinite(w->body->f)) return 0;
    *c = b->dtype == IR_F32 ? (double)(float)w->body->f : w->body->f;
    return b->dtype == IR_F32;
  }
  if (b->kind != LB_PARAM || b->dtype != IR_F32 || b->is_f64 || loop_shape_numel_max(b->shape, 1) != 1) return 0;
  for (int d = 0; d < x->nidx; d++)
    if (x->idx[d].nterms || x->idx[d].c || x->idx[d].dyn_buf >= 0) return 0;
  *param = b->index;
  return 1;
}

/* The bias of g scaled by (c, param): a vector pack of the bias parameter. */
static int scaled_bias(LoopModule *m, int bias, double c, int param) {
  const LoopBuf *b = loop_buf(m, bias);
  LoopPack key;
  gemm_pack_key_init(&key);
  if (b->kind == LB_PARAM) {
    key.param = b->index;
    key.N = loop_shape_numel_max(b->shape, 1);
  } else {
    const LoopPack *p = gemm_pack_of_buf(m, bias);
    if (!p || !p->vector) return -1;
    key = *p;
  }
  if (param >= 0 && key.scale_param >= 0) return -1;
  key.vector = 1;
  key.K = 1, key.sn = 1, key.sk = 0;
  key.scale *= c;
  if (param >= 0) key.scale_param = param;
  return gemm_pack_get(m, &key);
}

static int fold_scalar_once(LoopModule *m, PtrVec *ks) {
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *g = ks->data[i];
    if (g->kind != LK_CALL || g->call != LC_GEMM || !gemm_plain(g)) continue;
    const LoopBuf *ob = loop_buf(m, g->out);
    if (ob->kind != LB_SCRATCH || ob->persistent || loop_buf_reads(m, g->out) != 1 || loop_buf_writes(m, g->out) != 1)
      continue;
    for (int j = i + 1; j < ks->len; j++) {
      LoopKernel *c = ks->data[j];
      int named = 0;
      for (int a = 0; a < LOOP_MAX_ARGS; a++) named |= c->args[a] == g->out;
      if (c->kind != LK_LOOP) {
        if (named || loop_kernel_writes(c, g->out)) break; /* O's reader is not a loop nest */
        continue;
      }
      if (!count_loads(c->body, g->out)) continue;
      const LoopExpr *e = c->body;
      if (e->kind != LX_BINARY || !((e->a->kind == LX_LOAD && e->a->buf == g->out) ||
                                    (e->b->kind == LX_LOAD && e->b->buf == g->out)))
        break;
      if (!fuse_whole_output(m, c) || c->tvar != g->tvar || e->fn != IR_FN_MUL || e->dtype != IR_F32) break;
      const LoopExpr *ol = e->a->kind == LX_LOAD && e->a->buf == g->out ? e->a : e->b;
      const LoopExpr *sx = ol == e->a ? e->b : e->a;
      double s = 1.0;
      int sp = -1;
      if (!fuse_identity_load(m, ol, c->rank, c->ext) || !scale_operand(m, sx, &s, &sp)) break;
      const LoopBuf *cb = loop_buf(m, c->out);
      if (cb->dtype != IR_F32 || cb->is_f64 || loop_buf_writes(m, c->out) != 1) break;
      int clash = 0;
      for (int q = i + 1; q < j; q++) /* G now writes C's output earlier */
        clash |= loop_kernel_writes(ks->data[q], c->out) || loop_kernel_reads(ks->data[q], c->out);
      if (clash) break;
      const LoopPack *p = gemm_pack_of_buf(m, g->args[1]);
      if (!p || p->vector || (sp >= 0 && p->scale_param >= 0)) break;
      int nb = -1;
      if (g->args[2] >= 0 && (nb = scaled_bias(m, g->args[2], s, sp)) < 0) break;
      LoopPack key = *p;
      key.scale *= s;
      if (sp >= 0) key.scale_param = sp;
      g->args[1] = gemm_pack_get(m, &key);
      if (nb >= 0) g->args[2] = nb;
      g->out = c->out;
      g->what = c->what;
      fuse_remove_at(ks, j);
      return 1;
    }
  }
  return 0;
}

static void fold_scalar_list(LoopModule *m, PtrVec *ks) {
  while (fold_scalar_once(m, ks)) {
  }
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = ks->data[i];
    for (int r = 0; r < k->nregions; r++) fold_scalar_list(m, &k->regions[r]->kernels);
  }
}

static void collect_norms(PtrVec *ks, PtrVec *out) {
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = ks->data[i];
    if (k->kind == LK_CALL && k->call == LC_RMS_NORM) ptrvec_push(out, k);
    for (int r = 0; r < k->nregions; r++) collect_norms(&k->regions[r]->kernels, out);
  }
}

static void fold_norm_weights(LoopModule *m) {
  PtrVec norms = {0}, gemms = {0};
  collect_norms(&m->kernels, &norms);
  gemm_collect(m, &gemms);
  for (int i = 0; i < norms.len; i++) {
    LoopKernel *n = norms.data[i];
    if (n->args[1] < 0) continue;
    const LoopBuf *gb = loop_buf(m, n->args[1]), *ob = loop_buf(m, n->out);
    if (gb->kind != LB_PARAM || gb->dtype != IR_F32 || gb->shape.rank != 1 || n->sizes[1].tpow ||
        gb->shape.dims[0] != n->sizes[1].k)
      continue;
    if (ob->kind != LB_SCRATCH || ob->persistent) continue;
    int users = 0, ok = 1;
    for (int j = 0; j < gemms.len && ok; j++) {
      const LoopKernel *g = gemms.data[j];
      int here = 0;
      for (int a = 0; a < LOOP_MAX_ARGS; a++) here += g->args[a] == n->out;
      if (!here) continue;
      const LoopPack *p = gemm_pack_of_buf(m, g->args[1]);
      if (here != 1 || g->args[0] != n->out || !p || p->vector || p->scale_vec >= 0 || p->K != n->sizes[1].k)
        ok = 0;
      users++;
    }
    if (!ok || users == 0 || users != loop_buf_reads(m, n->out)) continue;
    for (int j = 0; j < gemms.len; j++) {
      LoopKernel *g = gemms.data[j];
      if (g->args[0] != n->out) continue;
      LoopPack key = *gemm_pack_of_buf(m, g->args[1]);
      key.scale_vec = gb->index;
      key.vec_plus_one = n->reals[1] != 0;
      g->args[1] = gemm_pack_get(m, &key);
    }
    n->args[1] = -1;
    n->reals[1] = 0;
  }
  ptrvec_free(&norms);
  ptrvec_free(&gemms);
}

void pass_scalefold(LoopModule *m, const PassOptions *o) {
  (void)o;
  fold_scalar_list(m, &m->kernels);
  fold_norm_weights(m);
  gemm_packs_prune(m);
}
