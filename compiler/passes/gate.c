/* gate.c — pass_gate (-O2; off with -fno-gate, -fno-fuse, -fno-tile or
 * -fno-pack; both backends): a product y * act(G) where G is a GEMM becomes
 * G's epilogue, so act(G) is never written and the multiply kernel is gone.
 *
 * Rewrites: GEMM G -> O (packed, no residual, no GLU, not gated yet),
 * optionally O -> copy (a reshape: same elements) -> X, optionally
 * X -> unary act(X) -> Z (act an epilogue activation, G without one yet), and
 *     C = Z * Y  (or Y * Z)   an f32 LK_LOOP over the whole output, identity loads
 * where every intermediate (O, X, Z) is scratch read only by the next step,
 * into G -> C's output with epi_act = act and args[9] = Y (the gate):
 *     out = act(A.W^T [*rs] + bias) * Y          (gat_gemm_seg_f32 epilogue)
 * G moves to C's place (Y, e.g. gated attention's attention output, is only
 * ready there); nothing between G and C may write A, the row scale or the
 * bias. Gated attention's output gate attn * sigmoid(x Wg + b) is the case
 * that matters; Y may itself be another GEMM's output (act(..) * other).
 * Needs: pass_gemm (and pass_epilogue, pass_glu before it: a product of two
 * GEMMs is glu's). Runs before fuse, which would otherwise merge act into C.
 * Breaks: nothing beyond rounding: act is the GEMM epilogue's (sigmoid, silu:
 * the float exp, a few f32 ulps) instead of the fused nest's; every step is
 * rounded to f32 as the unfused kernels store. The LLVM backend builds the
 * same epilogue (gat_gemm_seg_f32 of codegen/kernels/gemm.c, linked as bitcode). */
#include "fuse_util.h"
#include "gemm_util.h"
#include "kernels_gemm.h"

static int arg(const LoopKernel *k, int i) { return i < k->nargs ? k->args[i] : -1; }

static int writer_before(const PtrVec *ks, int before, int buf) {
  for (int i = before - 1; i >= 0; i--)
    if (loop_kernel_writes(ks->data[i], buf)) return i;
  return -1;
}

/* a scratch temporary with one writer and one reader */
static int temp_ok(const LoopModule *m, int buf) {
  const LoopBuf *b = loop_buf(m, buf);
  return b->kind == LB_SCRATCH && !b->persistent && !b->is_f64 && b->dtype == IR_F32 && loop_buf_reads(m, buf) == 1 &&
         loop_buf_writes(m, buf) == 1;
}

static int64_t numel(const LoopModule *m, int buf) { return loop_shape_numel_max(loop_buf(m, buf)->shape, m->max_T); }

/* Tries C = ks[j] with the gated side `side` (0: body->a, 1: body->b); need_act: only a chain
 * with an activation (y * sigmoid(G) rather than G' * sigmoid(G) gated on G'). */
static int gate_try(LoopModule *m, PtrVec *ks, int j, int side, int need_act) {
  LoopKernel *c = ks->data[j];
  const LoopExpr *e = c->body;
  int x = side ? e->b->buf : e->a->buf, y = side ? e->a->buf : e->b->buf;
  if (x == y || loop_buf(m, y)->dtype != IR_F32 || loop_buf(m, y)->is_f64) return 0;
  int chain[3], nchain = 0, act = 0;
  int cur = x;
  for (;;) {
    if (!temp_ok(m, cur) || numel(m, cur) != numel(m, c->out)) return 0;
    int p = writer_before(ks, j, cur);
    if (p < 0) return 0;
    LoopKernel *w = ks->data[p];
    if (w->tvar != c->tvar) return 0;
    if (w->kind == LK_CALL && w->call == LC_GEMM) {
      if (w->ncat || w->args[1] < 0 || arg(w, 3) >= 0 || arg(w, 7) >= 0 || arg(w, 9) >= 0) return 0;
      if (w->out != cur || w->sizes[1].tpow || (act && w->epi_act)) return 0;
      /* G moves to j: its inputs must not change in between */
      int watch[3] = {w->args[0], arg(w, 6), w->args[2]};
      for (int q = p + 1; q < j; q++)
        for (int a = 0; a < 3; a++)
          if (watch[a] >= 0 && loop_kernel_writes(ks->data[q], watch[a])) return 0;
      if (!act) act = w->epi_act;
      if (need_act && !act) return 0;
      w->out = c->out;
      w->epi_act = act;
      for (int a = w->nargs; a < 10; a++) w->args[a] = -1;
      if (w->nargs < 10) w->nargs = 10;
      w->args[9] = y;
      w->what = c->what;
      /* remove the chain, C's old place gets G, G's old place goes */
      int del[4], nd = 0;
      for (int q = 0; q < nchain; q++) del[nd++] = chain[q];
      del[nd++] = p;
      ks->data[j] = w;
      for (int a = 0; a < nd; a++) /* descending */
        for (int b = a + 1; b < nd; b++)
          if (del[b] > del[a]) {
            int t = del[a];
            del[a] = del[b], del[b] = t;
          }
      for (int a = 0; a < nd; a++) fuse_remove_at(ks, del[a]);
      return 1;
    }
    if (nchain == 2) return 0;
    if (w->kind == LK_COPY && w->out == cur && w->args[0] >= 0 && numel(m, w->args[0]) == numel(m, cur) &&
        w->sizes[0].k * (w->sizes[0].tpow ? m->max_T : 1) == numel(m, cur)) {
      chain[nchain++] = p;
      cur = w->args[0];
      continue;
    }
    if (w->kind == LK_LOOP && !act && fuse_whole_output(m, w) && w->nlets == 0 && !w->red_outer && !w->f32_math &&
        w->body->kind == LX_UNARY && kernels_gemm_act_ok(w->body->fn) && w->body->a &&
        fuse_identity_load(m, w->body->a, w->rank, w->ext) && w->body->a->dtype == IR_F32) {
      act = 1 + (int)w->body->fn;
      chain[nchain++] = p;
      cur = w->body->a->buf;
      continue;
    }
    return 0;
  }
}

static int gate_once(LoopModule *m, PtrVec *ks) {
  for (int j = 0; j < ks->len; j++) {
    LoopKernel *c = ks->data[j];
    if (c->kind != LK_LOOP || !fuse_whole_output(m, c) || c->nlets || c->red_outer) continue;
    const LoopExpr *e = c->body;
    if (e->kind != LX_BINARY || e->fn != IR_FN_MUL || e->dtype != IR_F32 || e->round) continue;
    if (!fuse_identity_load(m, e->a, c->rank, c->ext) || !fuse_identity_load(m, e->b, c->rank, c->ext)) continue;
    const LoopBuf *cb = loop_buf(m, c->out);
    if (cb->dtype != IR_F32 || loop_buf_writes(m, c->out) != 1) continue;
    if (e->a->buf == c->out || e->b->buf == c->out) continue;
    for (int need_act = 1; need_act >= 0; need_act--)
      if (gate_try(m, ks, j, 1, need_act) || gate_try(m, ks, j, 0, need_act)) return 1;
  }
  return 0;
}

static void gate_list(LoopModule *m, PtrVec *ks) {
  while (gate_once(m, ks)) {
  }
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = ks->data[i];
    for (int r = 0; r < k->nregions; r++) gate_list(m, &k->regions[r]->kernels);
  }
}

void pass_gate(LoopModule *m, const PassOptions *o) {
  (void)o;
  gate_list(m, &m->kernels);
}
