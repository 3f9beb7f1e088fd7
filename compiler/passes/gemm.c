/* gemm.c — pass_gemm (-O2; off with -fno-tile): contractions with a weight
 * operand become calls of the register-blocked, cache-tiled GEMM micro-kernel
 * (codegen/kernels/gemm.c), and their weights are packed at init.
 *
 * Rewrites: an LK_LOOP kernel whose body is
 *     sum_k A[i.., k] * W[n, k]   (linear)   or   sum_k A[i.., k] * W[k, n]  (matmul)
 * optionally + bias[n] (on either side: index notation writes
 * `b[j] + sum(k) ...`) and optionally wrapped as a whole in an activation the
 * epilogue has (kernels_gemm_act_ok: `sigmoid(b[j] + sum(k) x[t, k] * w[j, k])`,
 * GateSkip's gate), where A is a dense row-major [M.., K] buffer read in
 * place (no broadcasting), W a rank-2 parameter and the domain [M.., N] the
 * whole output, into LK_CALL LC_GEMM (epi_act = the activation). Matching
 * here, before pass_fuse, keeps such a nest from being fused into its
 * elementwise reader as a plain loop. With packing on (default) each weight
 * gets one persistent arena buffer of ceil(N/32)*32*K floats filled by
 * NAME_init (LoopPack; one per weight and orientation, shared by every use);
 * with -fno-pack the kernel packs KC x NR slices into a per-call scratch.
 * Needs: the plain lowering (loop_lower). Breaks: exact -O0 rounding: the
 * GEMM accumulates in f32 (products of f32 values, fused multiply-add), so
 * results differ from the double-accumulating reference by a few f32 ulps
 * times sqrt(K) (relative ~1e-6 for K = 512). */
#include <string.h>

#include "gemm_util.h"
#include "kernels_gemm.h"

static int is_var(const LoopIndex *ix, int var) {
  return ix->nterms == 1 && ix->var[0] == var && ix->coef[0] == 1 && ix->c == 0 && ix->dyn_buf < 0;
}

typedef struct GemmMatch {
  int a, w, bias, act; /* act: 0 or 1 + the IrFn of an activation wrapping the whole value */
  int64_t K, N, sn, sk;
} GemmMatch;

/* Is x the load of a dense [ext[0..r-2].., K] buffer at [v0, .., v{r-2}, kv]? */
static int match_a(const LoopModule *m, const LoopKernel *k, const LoopExpr *x, int kv, int64_t K) {
  if (x->kind != LX_LOAD || x->round) return 0;
  const LoopBuf *b = loop_buf(m, x->buf);
  int r = k->rank;
  if (b->is_f64 || b->dtype != IR_F32 || b->shape.rank != r || x->nidx != r) return 0;
  if (b->tvar != k->tvar && ir_shape_has_T(b->shape)) return 0;
  for (int d = 0; d < r - 1; d++)
    if (b->shape.dims[d] != k->ext[d] || !is_var(&x->idx[d], d)) return 0;
  return b->shape.dims[r - 1] == K && is_var(&x->idx[r - 1], kv);
}

static int match_w(const LoopModule *m, const LoopKernel *k, const LoopExpr *x, int kv, GemmMatch *g) {
  if (x->kind != LX_LOAD || x->round) return 0;
  const LoopBuf *b = loop_buf(m, x->buf);
  int n = k->rank - 1;
  if (b->kind != LB_PARAM || b->dtype != IR_F32 || b->shape.rank != 2 || x->nidx != 2) return 0;
  if (is_var(&x->idx[0], n) && is_var(&x->idx[1], kv) && b->shape.dims[0] == g->N && b->shape.dims[1] == g->K) {
    g->sn = g->K, g->sk = 1; /* linear: W[N, K] */
  } else if (is_var(&x->idx[0], kv) && is_var(&x->idx[1], n) && b->shape.dims[0] == g->K && b->shape.dims[1] == g->N) {
    g->sn = 1, g->sk = g->N; /* matmul: W[K, N] */
  } else {
    return 0;
  }
  g->w = x->buf;
  return 1;
}

static int match_gemm(const LoopModule *m, const LoopKernel *k, GemmMatch *g) {
  memset(g, 0, sizeof *g);
  g->bias = -1;
  if (k->kind != LK_LOOP || k->rank < 1 || !k->body) return 0;
  const LoopBuf *ob = loop_buf(m, k->out);
  if (ob->dtype != IR_F32 || ob->is_f64 || ob->shape.rank != k->rank) return 0;
  for (int d = 0; d < k->rank; d++)
    if (k->out_off[d] != 0 || ob->shape.dims[d] != k->ext[d]) return 0;
  g->N = k->ext[k->rank - 1];
  if (g->N == IR_DIM_T) return 0;
  const LoopExpr *e = k->body;
  /* act(...) around the whole value (GateSkip's sigmoid(b + x W^T)): the GEMM epilogue applies it
   * after the bias, as the unfused kernel would (the -O0 nest keeps the sum in double; the epilogue
   * rounds it to f32 first, within the GEMM's f32-accumulation tolerance) */
  if (e->kind == LX_UNARY && !e->round && kernels_gemm_act_ok(e->fn) && e->a) {
    g->act = 1 + (int)e->fn;
    e = e->a;
  }
  /* + bias[n] on either side (`b[n] + sum_k ...` is how index notation writes it) */
  if (e->kind == LX_BINARY && e->fn == IR_FN_ADD && !e->round &&
      ((e->b->kind == LX_LOAD && e->a->kind == LX_REDUCE) || (e->a->kind == LX_LOAD && e->b->kind == LX_REDUCE))) {
    const LoopExpr *bl = e->b->kind == LX_LOAD ? e->b : e->a;
    const LoopBuf *bb = loop_buf(m, bl->buf);
    if (bl->round || bb->is_f64 || bb->dtype != IR_F32 || bb->shape.rank != 1 || bb->shape.dims[0] != g->N ||
        bl->nidx != 1 || !is_var(&bl->idx[0], k->rank - 1))
      return 0;
    g->bias = bl->buf;
    e = bl == e->b ? e->a : e->b;
  }
  if (e->kind != LX_REDUCE || e->red != IR_RED_SUM || e->extent == IR_DIM_T || e->var < k->rank) return 0;
  g->K = e->extent;
  const LoopExpr *p = e->a;
  if (p->kind != LX_BINARY || p->fn != IR_FN_MUL) return 0;
  if (match_a(m, k, p->a, e->var, g->K) && match_w(m, k, p->b, e->var, g)) {
    g->a = p->a->buf;
    return 1;
  }
  if (match_a(m, k, p->b, e->var, g->K) && match_w(m, k, p->a, e->var, g)) {
    g->a = p->b->buf;
    return 1;
  }
  return 0;
}

void gemm_pack_key_init(LoopPack *key) {
  memset(key, 0, sizeof *key);
  key->scale = 1.0;
  key->scale_param = key->scale_vec = -1;
  key->buf = -1;
}

static int pack_same(const LoopPack *p, const LoopPack *q) {
  return p->param == q->param && p->N == q->N && p->K == q->K && p->sn == q->sn && p->sk == q->sk &&
         p->scale == q->scale && p->scale_param == q->scale_param && p->scale_vec == q->scale_vec &&
         p->vec_plus_one == q->vec_plus_one && p->vector == q->vector;
}

int gemm_pack_get(LoopModule *m, const LoopPack *key) {
  for (int i = 0; i < m->packs.len; i++) {
    const LoopPack *p = m->packs.data[i];
    if (pack_same(p, key)) return p->buf;
  }
  int64_t n = key->vector ? key->N : (key->N + LOOP_PACK_NR - 1) / LOOP_PACK_NR * LOOP_PACK_NR * key->K;
  char name[64];
  snprintf(name, sizeof name, "%s #%d%s", key->vector ? "scaled" : "packed", key->param,
           key->scale != 1.0 || key->scale_param >= 0 || key->scale_vec >= 0 ? " (scaled)" : "");
  LoopBuf *b = loop_buf_new(m, LB_SCRATCH, IR_F32, ir_shape(1, (int64_t[]){n}), 0, name);
  b->persistent = 1;
  LoopPack *p = ARENA_NEW(m->arena, LoopPack);
  *p = *key;
  p->buf = b->id;
  ptrvec_push(&m->packs, p);
  return b->id;
}

LoopPack *gemm_pack_of_buf(const LoopModule *m, int buf) {
  for (int i = 0; i < m->packs.len; i++) {
    LoopPack *p = m->packs.data[i];
    if (p->buf == buf) return p;
  }
  return NULL;
}

void gemm_packs_prune(LoopModule *m) {
  int w = 0;
  for (int i = 0; i < m->packs.len; i++) {
    LoopPack *p = m->packs.data[i];
    if (loop_buf_reads(m, p->buf) > 0) {
      m->packs.data[w++] = p;
    } else {
      LoopBuf *b = (LoopBuf *)loop_buf(m, p->buf);
      b->bytes = 0; /* layout gives it a token slot; nothing is packed into it */
      b->shape = ir_shape(1, (int64_t[]){1});
    }
  }
  m->packs.len = w;
}

static void collect_list(PtrVec *ks, PtrVec *out) {
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = ks->data[i];
    if (k->kind == LK_CALL && k->call == LC_GEMM) ptrvec_push(out, k);
    for (int r = 0; r < k->nregions; r++) collect_list(&k->regions[r]->kernels, out);
  }
}

void gemm_collect(LoopModule *m, PtrVec *out) { collect_list(&m->kernels, out); }

static int pack_for(LoopModule *m, const GemmMatch *g) {
  LoopPack key;
  gemm_pack_key_init(&key);
  key.param = loop_buf(m, g->w)->index;
  key.N = g->N;
  key.K = g->K;
  key.sn = g->sn;
  key.sk = g->sk;
  return gemm_pack_get(m, &key);
}

static void gemm_kernels(LoopModule *m, PtrVec *ks, const PassOptions *o, int *scratch) {
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = ks->data[i];
    for (int r = 0; r < k->nregions; r++) gemm_kernels(m, &k->regions[r]->kernels, o, scratch);
    GemmMatch g;
    if (!match_gemm(m, k, &g)) continue;
    LoopSize M = {1, 0, k->tvar};
    for (int d = 0; d < k->rank - 1; d++) {
      if (k->ext[d] == IR_DIM_T)
        M.tpow++;
      else
        M.k *= k->ext[d];
    }
    k->kind = LK_CALL;
    k->call = LC_GEMM;
    for (int a = 0; a < LOOP_MAX_ARGS; a++) k->args[a] = -1;
    k->args[0] = g.a;
    k->args[2] = g.bias;
    k->args[4] = g.w;
    if (o->pack) {
      k->args[1] = pack_for(m, &g);
    } else {
      if (*scratch < 0) {
        LoopBuf *s = loop_buf_new(m, LB_SCRATCH, IR_F32, ir_shape(1, (int64_t[]){256 * LOOP_PACK_NR}), 0, "gemm_pack_scratch");
        *scratch = s->id;
      }
      k->args[5] = *scratch;
    }
    k->nargs = 6;
    k->sizes[0] = M;
    k->sizes[1] = (LoopSize){g.N, 0, 0};
    k->sizes[2] = (LoopSize){g.K, 0, 0};
    k->nsizes = 3;
    k->w_sn = g.sn;
    k->w_sk = g.sk;
    k->epi_act = g.act;
    k->body = NULL;
  }
}

void pass_gemm(LoopModule *m, const PassOptions *o) {
  int scratch = -1;
  gemm_kernels(m, &m->kernels, o, &scratch);
}
