/* chunk.c — pass_chunk (-O2, -fno-chunk): recognises the scans of the std
 * library's linear-attention layers and marks them for the chunked prefill
 * kernels of codegen/kernels/scan.c (LoopKernel.scan_chunk, loopir.h).
 *
 * Two region shapes are recognised, exactly as loop_lower + pass_fuse leave
 * them for compiler/front/std/gla.gat and compiler/front/std/deltanet.gat (t is the scan
 * index, every other index a plain domain or reduction variable):
 *   GLA (2 kernels):   S'[h,i,j] = exp(gk[t,h,i]) * S[h,i,j] + k[t,h,i] * v[t,h,j]
 *                      e[h,j]    = sum(i) q[t,h,i] * S'[h,i,j] * c
 *   delta rule (3):    u[h,(g),j]     = beta[t,h,(g)] * (v[t,h,(g),j] - [a *] sum(i) k[t,h,i] * S[h,(g),i,j])
 *                      S'[h,(g),i,j] = [a *] S[h,(g),i,j] + k[t,h,i] * u[h,(g),j]
 *                      e[h,(g),j]    = sum(i) q[t,h,i] * S'[h,(g),i,j] * c
 *                      with a = decay[t,h,(g)] in both or in neither (Gated DeltaNet / DeltaNet;
 *                      (g) the grouped value heads of Gated DeltaNet's state [H, G, K, V]).
 * Products match in either operand order; anything else (another body, more
 * kernels, more states, an unfused -fno-fuse region) keeps the per-token
 * scan. The region itself is left as it is: the hint only adds a second way
 * to run the kernel, taken by the C backend for calls with T >=
 * KERNELS_SCAN_MIN_T (decode and short steps keep the region), so the state
 * the two leave behind is the same and a prefill can be followed by decode
 * calls. The pass also adds the kernel's f32 workspace as a scratch buffer
 * (args[7]), so the memory planner sees it. */
#include <string.h>

#include "kernels_scan.h"
#include "pass.h"

typedef struct ChunkCtx {
  const LoopModule *m;
  int tbuf, tvar;
  int nouts;      /* region kernel outputs: never an outer operand */
  int outs[4];
} ChunkCtx;

/* index = the plain variable v */
static int idx_is_var(const LoopIndex *ix, int v) {
  return ix->c == 0 && ix->nterms == 1 && ix->var[0] == v && ix->coef[0] == 1 && ix->dyn_buf < 0;
}

/* index = t (the scan's step buffer) */
static int idx_is_t(const LoopIndex *ix, int tbuf) {
  return ix->c == 0 && ix->nterms == 0 && ix->dyn_buf == tbuf && ix->dyn_coef == 1;
}

static int buf_f32(const LoopBuf *b) { return b->dtype == IR_F32 && !b->is_f64; }

/* e = buf[vars...] of a region-local buffer whose shape is exts; the buffer id or -1 */
static int load_vars(const ChunkCtx *c, const LoopExpr *e, int n, const int *vars, const int64_t *exts) {
  if (!e || e->kind != LX_LOAD || e->nidx != n) return -1;
  const LoopBuf *b = loop_buf(c->m, e->buf);
  if (!buf_f32(b) || b->shape.rank != n) return -1;
  for (int d = 0; d < n; d++)
    if (!idx_is_var(&e->idx[d], vars[d]) || b->shape.dims[d] != exts[d]) return -1;
  return e->buf;
}

/* e = buf[t, vars...] of an outer [T, exts...] buffer the region does not write; the id or -1 */
static int load_t(const ChunkCtx *c, const LoopExpr *e, int n, const int *vars, const int64_t *exts) {
  if (!e || e->kind != LX_LOAD || e->nidx != n + 1) return -1;
  const LoopBuf *b = loop_buf(c->m, e->buf);
  if (!buf_f32(b) || b->shape.rank != n + 1 || b->shape.dims[0] != IR_DIM_T || b->tvar != c->tvar) return -1;
  if (!idx_is_t(&e->idx[0], c->tbuf)) return -1;
  for (int d = 0; d < n; d++)
    if (!idx_is_var(&e->idx[d + 1], vars[d]) || b->shape.dims[d + 1] != exts[d]) return -1;
  for (int i = 0; i < c->nouts; i++)
    if (c->outs[i] == e->buf) return -1;
  return e->buf;
}

static int is_bin(const LoopExpr *e, IrFn fn) { return e && e->kind == LX_BINARY && e->fn == fn; }

/* The scale factor of `sum(r) x` forms: e is mul(y, const) or mul(const, y) -> *y, *scale;
 * else *y = e, *scale = 1. */
static void split_scale(const LoopExpr *e, const LoopExpr **y, double *scale) {
  *y = e;
  *scale = 1.0;
  if (!is_bin(e, IR_FN_MUL)) return;
  if (e->b && e->b->kind == LX_CONST) *y = e->a, *scale = e->b->f;
  else if (e->a && e->a->kind == LX_CONST) *y = e->b, *scale = e->a->f;
}

/* e = [c *] sum(r < K) q[t, h, r] * B[pre..., r, j] [* c]: the output of the
 * emission kernel. B must be buffer sbuf (the new state). Returns q or -1 and the scale. */
static int match_emit(const ChunkCtx *c, const LoopExpr *e, int hvar, int npre, const int *pre,
                      const int64_t *pre_ext, int jvar, int64_t K, int64_t V, int sbuf, double *scale) {
  const LoopExpr *sum;
  double s1, s2;
  split_scale(e, &sum, &s1);
  if (!sum || sum->kind != LX_REDUCE || sum->red != IR_RED_SUM || sum->extent != K) return -1;
  int r = sum->var;
  const LoopExpr *prod;
  split_scale(sum->a, &prod, &s2);
  if (!is_bin(prod, IR_FN_MUL)) return -1;
  int qv[2] = {hvar, r};
  int64_t qe[2] = {pre_ext[0], K};
  int sv[4], n = 0;
  int64_t se[4];
  for (int d = 0; d < npre; d++) sv[n] = pre[d], se[n++] = pre_ext[d];
  sv[n] = r, se[n++] = K;
  sv[n] = jvar, se[n++] = V;
  for (int sw = 0; sw < 2; sw++) {
    const LoopExpr *a = sw ? prod->b : prod->a, *b = sw ? prod->a : prod->b;
    int q = load_t(c, a, 2, qv, qe);
    if (q >= 0 && load_vars(c, b, n, sv, se) == sbuf) {
      *scale = s1 * s2;
      return q;
    }
  }
  return -1;
}

/* GLA: body of the state kernel, domain [H, K, V] */
static int match_gla_state(const ChunkCtx *c, const LoopExpr *e, int sbuf, const int64_t *ext, int *gk, int *kb,
                           int *vb) {
  if (!is_bin(e, IR_FN_ADD)) return 0;
  int hik[2] = {0, 1}, hj[2] = {0, 2}, hij[3] = {0, 1, 2};
  int64_t e_hk[2] = {ext[0], ext[1]}, e_hv[2] = {ext[0], ext[2]};
  for (int sw = 0; sw < 2; sw++) {
    const LoopExpr *dec = sw ? e->b : e->a, *kv = sw ? e->a : e->b;
    if (!is_bin(dec, IR_FN_MUL) || !is_bin(kv, IR_FN_MUL)) continue;
    int ok = 0;
    for (int s2 = 0; s2 < 2 && !ok; s2++) {
      const LoopExpr *ex = s2 ? dec->b : dec->a, *st = s2 ? dec->a : dec->b;
      if (!ex || ex->kind != LX_UNARY || ex->fn != IR_FN_EXP) continue;
      *gk = load_t(c, ex->a, 2, hik, e_hk);
      ok = *gk >= 0 && load_vars(c, st, 3, hij, ext) == sbuf;
    }
    if (!ok) continue;
    for (int s3 = 0; s3 < 2; s3++) {
      *kb = load_t(c, s3 ? kv->b : kv->a, 2, hik, e_hk);
      *vb = load_t(c, s3 ? kv->a : kv->b, 2, hj, e_hv);
      if (*kb >= 0 && *vb >= 0) return 1;
    }
  }
  return 0;
}

static int plain_kernel(const LoopKernel *k, int rank) {
  if (k->kind != LK_LOOP || k->rank != rank || k->nlets || k->red_outer || !k->body) return 0;
  for (int d = 0; d < rank; d++)
    if (k->out_off[d] != 0) return 0;
  return 1;
}

/* a buffer dims == exts (all constant) */
static int shape_is(const LoopBuf *b, int n, const int64_t *exts) {
  if (!buf_f32(b) || b->shape.rank != n) return 0;
  for (int d = 0; d < n; d++)
    if (b->shape.dims[d] != exts[d]) return 0;
  return 1;
}

/* the stacked emission [T, exts...] */
static int result_is(const ChunkCtx *c, const LoopBuf *b, int n, const int64_t *exts) {
  if (!buf_f32(b) || b->shape.rank != n + 1 || b->shape.dims[0] != IR_DIM_T || b->tvar != c->tvar) return 0;
  for (int d = 0; d < n; d++)
    if (b->shape.dims[d + 1] != exts[d]) return 0;
  return 1;
}

static int try_gla(ChunkCtx *c, LoopKernel *k, const LoopBuf *S) {
  const LoopRegion *r = k->regions[0];
  if (r->kernels.len != 2 || S->shape.rank != 3) return 0;
  const LoopKernel *ks = r->kernels.data[0], *ke = r->kernels.data[1];
  const int64_t *ext = S->shape.dims; /* H, K, V */
  if (!plain_kernel(ks, 3) || !plain_kernel(ke, 2) || ks->out != r->yields[0] || ke->out != r->yields[1]) return 0;
  for (int d = 0; d < 3; d++)
    if (ks->ext[d] != ext[d]) return 0;
  int64_t hv[2] = {ext[0], ext[2]};
  if (ke->ext[0] != ext[0] || ke->ext[1] != ext[2]) return 0;
  if (!shape_is(loop_buf(c->m, ks->out), 3, ext) || !shape_is(loop_buf(c->m, ke->out), 2, hv)) return 0;
  if (!result_is(c, loop_buf(c->m, k->xs[0]), 2, hv)) return 0;
  c->nouts = 2, c->outs[0] = ks->out, c->outs[1] = ke->out;
  int gk, kb, vb;
  if (!match_gla_state(c, ks->body, S->id, ext, &gk, &kb, &vb)) return 0;
  int pre[1] = {0};
  int64_t pre_ext[1] = {ext[0]};
  double scale;
  int q = match_emit(c, ke->body, 0, 1, pre, pre_ext, 1, ext[1], ext[2], ks->out, &scale);
  if (q < 0 || q == gk) return 0;
  k->scan_chunk = KERNELS_SCAN_GLA;
  k->args[2] = q, k->args[3] = kb, k->args[4] = vb, k->args[5] = gk, k->args[6] = -1;
  k->sizes[0].k = ext[0], k->sizes[1].k = 1, k->sizes[2].k = ext[1], k->sizes[3].k = ext[2];
  k->reals[0] = scale;
  return 1;
}

/* [a *] x with a = decay[t, h, (g)]: *x and *dec (-1 without the factor) */
static void split_decay(const ChunkCtx *c, const LoopExpr *e, int ng, const int *hg, const int64_t *hge,
                        const LoopExpr **x, int *dec) {
  *x = e, *dec = -1;
  if (!is_bin(e, IR_FN_MUL)) return;
  for (int sw = 0; sw < 2; sw++) {
    int d = load_t(c, sw ? e->b : e->a, ng, hg, hge);
    if (d >= 0) {
      *x = sw ? e->a : e->b, *dec = d;
      return;
    }
  }
}

static int try_delta(ChunkCtx *c, LoopKernel *k, const LoopBuf *S) {
  const LoopRegion *r = k->regions[0];
  int gated = S->shape.rank == 4;
  if (r->kernels.len != 3 || (S->shape.rank != 3 && !gated)) return 0;
  const LoopKernel *ku = r->kernels.data[0], *ks = r->kernels.data[1], *ke = r->kernels.data[2];
  int rs = S->shape.rank, rv = rs - 1; /* state rank, vector rank */
  const int64_t *ext = S->shape.dims;  /* H, (G,) K, V */
  int64_t H = ext[0], G = gated ? ext[1] : 1, K = ext[rs - 2], V = ext[rs - 1];
  int64_t vext[3] = {H, gated ? G : V, V}; /* [H, (G,) V] */
  if (!plain_kernel(ku, rv) || !plain_kernel(ks, rs) || !plain_kernel(ke, rv)) return 0;
  if (ks->out != r->yields[0] || ke->out != r->yields[1]) return 0;
  for (int d = 0; d < rs; d++)
    if (ks->ext[d] != ext[d]) return 0;
  for (int d = 0; d < rv; d++)
    if (ku->ext[d] != vext[d] || ke->ext[d] != vext[d]) return 0;
  if (!shape_is(loop_buf(c->m, ku->out), rv, vext) || !shape_is(loop_buf(c->m, ks->out), rs, ext) ||
      !shape_is(loop_buf(c->m, ke->out), rv, vext) || !result_is(c, loop_buf(c->m, k->xs[0]), rv, vext))
    return 0;
  c->nouts = 3, c->outs[0] = ku->out, c->outs[1] = ks->out, c->outs[2] = ke->out;
  int ng = gated ? 2 : 1;
  int hg[2] = {0, 1};
  int64_t hge[2] = {H, G};
  int hk[2] = {0, -1};
  int64_t hke[2] = {H, K};
  /* u = beta * (v - [a *] sum(r) k[t, h, r] * S[h, (g), r, j]), domain vars h, (g), j */
  const LoopExpr *e = ku->body;
  if (!is_bin(e, IR_FN_MUL)) return 0;
  int beta = -1;
  const LoopExpr *diff = NULL;
  for (int sw = 0; sw < 2 && beta < 0; sw++) {
    beta = load_t(c, sw ? e->b : e->a, ng, hg, hge);
    diff = sw ? e->a : e->b;
  }
  if (beta < 0 || !is_bin(diff, IR_FN_SUB)) return 0;
  int jv = rv - 1;
  int vvars[3] = {0, 1, 2};
  int vb = load_t(c, diff->a, rv, vvars, vext);
  if (vb < 0) return 0;
  const LoopExpr *sum;
  int dec_u;
  split_decay(c, diff->b, ng, hg, hge, &sum, &dec_u);
  if (!sum || sum->kind != LX_REDUCE || sum->red != IR_RED_SUM || sum->extent != K || !is_bin(sum->a, IR_FN_MUL))
    return 0;
  hk[1] = sum->var;
  int kb = -1;
  int svars[4], n = 0;
  for (int d = 0; d < ng; d++) svars[n++] = d;
  svars[n++] = sum->var;
  svars[n++] = jv;
  for (int sw = 0; sw < 2 && kb < 0; sw++) {
    int kk = load_t(c, sw ? sum->a->b : sum->a->a, 2, hk, hke);
    if (kk >= 0 && load_vars(c, sw ? sum->a->a : sum->a->b, rs, svars, ext) == S->id) kb = kk;
  }
  if (kb < 0) return 0;
  /* S' = [a *] S + k[t, h, i] * u[h, (g), j], domain vars h, (g), i, j */
  e = ks->body;
  if (!is_bin(e, IR_FN_ADD)) return 0;
  int ok = 0;
  int svars2[4];
  for (int d = 0; d < rs; d++) svars2[d] = d;
  int hi[2] = {0, rs - 2};
  int uvars[3];
  n = 0;
  for (int d = 0; d < ng; d++) uvars[n++] = d;
  uvars[n++] = rs - 1;
  for (int sw = 0; sw < 2 && !ok; sw++) {
    const LoopExpr *old = sw ? e->b : e->a, *upd = sw ? e->a : e->b, *st;
    int dec_s;
    split_decay(c, old, ng, hg, hge, &st, &dec_s);
    if (dec_s != dec_u || load_vars(c, st, rs, svars2, ext) != S->id || !is_bin(upd, IR_FN_MUL)) continue;
    for (int s2 = 0; s2 < 2 && !ok; s2++)
      ok = load_t(c, s2 ? upd->b : upd->a, 2, hi, hke) == kb &&
           load_vars(c, s2 ? upd->a : upd->b, rv, uvars, vext) == ku->out;
  }
  if (!ok) return 0;
  /* e = sum(r) q[t, h, r] * S'[h, (g), r, j] * c */
  double scale;
  int q = match_emit(c, ke->body, 0, ng, hg, hge, jv, K, V, ks->out, &scale);
  if (q < 0) return 0;
  k->scan_chunk = KERNELS_SCAN_DELTA;
  k->args[2] = q, k->args[3] = kb, k->args[4] = vb, k->args[5] = beta, k->args[6] = dec_u;
  k->sizes[0].k = H, k->sizes[1].k = G, k->sizes[2].k = K, k->sizes[3].k = V;
  k->reals[0] = scale;
  return 1;
}

static void chunk_kernel(LoopModule *m, LoopKernel *k, void *ctx) {
  (void)ctx;
  if (k->kind != LK_SCAN || k->scan_chunk || k->nstates != 1 || k->nxs != 1 || k->nregions != 1) return;
  if (k->state_tmp && k->state_tmp[0] >= 0) return;
  for (int i = 2; i < LOOP_MAX_ARGS; i++)
    if (k->args[i] >= 0) return;
  const LoopRegion *r = k->regions[0];
  if (r->nargs != 2 || r->nyield != 2 || r->args[0] != k->args[0] || r->args[1] != k->state_bufs[0]) return;
  const LoopBuf *S = loop_buf(m, k->state_bufs[0]);
  if (!buf_f32(S)) return;
  for (int d = 0; d < S->shape.rank; d++)
    if (S->shape.dims[d] <= 0) return; /* constant dims only */
  ChunkCtx c = {m, k->args[0], k->tvar, 0, {0}};
  if (!try_gla(&c, k, S) && !try_delta(&c, k, S)) {
    k->scan_chunk = 0;
    return;
  }
  for (int i = 0; i < 4; i++) k->sizes[i].tpow = 0, k->sizes[i].tvar = 0;
  k->nsizes = 4;
  int64_t ws = kernels_scan_ws_floats(k->scan_chunk, k->sizes[2].k, k->sizes[3].k);
  k->args[7] = loop_buf_new(m, LB_SCRATCH, IR_F32, ir_shape(1, (int64_t[]){ws}), 0, "chunk_ws")->id;
}

void pass_chunk(LoopModule *m, const PassOptions *o) {
  (void)o;
  loop_walk_kernels(m, chunk_kernel, NULL);
}
