/* loop_util.c — analyses the loop passes share: who reads and who writes a
 * buffer, and loop_verify, the structural check the pipeline runs after
 * every loop pass. Slow (a walk over the whole module per query) and fine:
 * modules have hundreds of kernels, not millions. */
#include <stdlib.h>
#include <string.h>

#include "pass.h"

/* The reads of buf, or with all != NULL of every buffer: all[b] += each read
 * of b (one walk serves passes that would ask about every buffer). */
#define HIT(x) (all ? ((x) >= 0 ? (all[(x)]++, 0) : 0) : (x) == buf)

static int expr_reads(const LoopExpr *e, int buf, int *all) {
  if (!e) return 0;
  int n = 0;
  if (e->kind == LX_LOAD) {
    n += HIT(e->buf);
    for (int i = 0; i < e->nidx; i++) n += HIT(e->idx[i].dyn_buf);
  }
  return n + expr_reads(e->a, buf, all) + expr_reads(e->b, buf, all) + expr_reads(e->c, buf, all);
}

static int kernels_reads(const PtrVec *ks, int buf, int *all);

static int kernel_reads(const LoopKernel *k, int buf, int *all) {
  int n = 0;
  switch (k->kind) {
  case LK_LOOP:
    n += expr_reads(k->body, buf, all);
    if (k->sweep_at) { /* pass_scanfuse: the sweep store's value and dynamic indices */
      n += expr_reads(k->sweep_val, buf, all);
      for (int i = 0; i < k->sweep_at->nidx; i++) n += HIT(k->sweep_at->idx[i].dyn_buf);
    }
    break;
  case LK_CALL:
  case LK_COPY:
    for (int i = 0; i < LOOP_MAX_ARGS; i++) n += HIT(k->args[i]);
    for (int i = 0; i < k->ncat; i++) /* segmented GEMM (pass_concat) */
      n += HIT(k->cat[i].w) + HIT(k->cat[i].bias) + HIT(k->cat[i].res);
    break;
  default: /* control kernels: everything they name counts as read */
    for (int i = 0; i < LOOP_MAX_ARGS; i++) n += HIT(k->args[i]);
    for (int i = 0; i < k->nstates; i++) n += HIT(k->state_bufs[i]);
    for (int i = 0; i < k->nxs; i++) n += HIT(k->xs[i]);
    for (int r = 0; r < k->nregions; r++) {
      const LoopRegion *g = k->regions[r];
      for (int i = 0; i < g->nargs; i++) n += HIT(g->args[i]);
      for (int i = 0; i < g->nyield; i++) n += HIT(g->yields[i]);
      n += kernels_reads(&g->kernels, buf, all);
    }
    break;
  }
  return n;
}
#undef HIT

static int kernels_reads(const PtrVec *ks, int buf, int *all) {
  int n = 0;
  for (int i = 0; i < ks->len; i++) n += kernel_reads(ks->data[i], buf, all);
  return n;
}

int loop_buf_reads(const LoopModule *m, int buf) { return kernels_reads(&m->kernels, buf, NULL); }

void loop_buf_reads_all(const LoopModule *m, int *reads) {
  memset(reads, 0, sizeof(int) * (size_t)m->bufs.len);
  kernels_reads(&m->kernels, -1, reads);
}

int loop_kernel_reads(const LoopKernel *k, int buf) { return kernel_reads(k, buf, NULL); }

static void walk_kernels(LoopModule *m, PtrVec *ks, void (*fn)(LoopModule *, LoopKernel *, void *), void *ctx) {
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = ks->data[i];
    fn(m, k, ctx);
    for (int r = 0; r < k->nregions; r++) walk_kernels(m, &k->regions[r]->kernels, fn, ctx);
  }
}

void loop_walk_kernels(LoopModule *m, void (*fn)(LoopModule *, LoopKernel *, void *), void *ctx) {
  walk_kernels(m, &m->kernels, fn, ctx);
}

static int kernels_writes(const PtrVec *ks, int buf) {
  int n = 0;
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = ks->data[i];
    n += k->out == buf;
    n += k->sweep_at && k->sweep_at->buf == buf; /* pass_scanfuse */
    for (int s = 1; s < k->ncat; s++) n += k->cat[s].out == buf; /* cat[0].out is k->out */
    for (int r = 0; r < k->nregions; r++) n += kernels_writes(&k->regions[r]->kernels, buf);
  }
  return n;
}

int loop_buf_writes(const LoopModule *m, int buf) { return kernels_writes(&m->kernels, buf); }

static void kernels_writes_all(const PtrVec *ks, int *writes) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = ks->data[i];
    if (k->out >= 0) writes[k->out]++;
    if (k->sweep_at && k->sweep_at->buf >= 0) writes[k->sweep_at->buf]++;
    for (int s = 1; s < k->ncat; s++)
      if (k->cat[s].out >= 0) writes[k->cat[s].out]++;
    for (int r = 0; r < k->nregions; r++) kernels_writes_all(&k->regions[r]->kernels, writes);
  }
}

void loop_buf_writes_all(const LoopModule *m, int *writes) {
  memset(writes, 0, sizeof(int) * (size_t)m->bufs.len);
  kernels_writes_all(&m->kernels, writes);
}

int loop_kernel_writes(const LoopKernel *k, int buf) {
  if (k->out == buf) return 1;
  if (k->sweep_at && k->sweep_at->buf == buf) return 1; /* pass_scanfuse */
  for (int s = 0; s < k->ncat; s++)
    if (k->cat[s].out == buf) return 1;
  if (k->kind == LK_CALL || k->kind == LK_LOOP || k->kind == LK_COPY) {
    /* calls with state update it in place (conv tail, KV caches), top-k writes args[1] */
    if (k->kind == LK_CALL)
      for (int i = 0; i < LOOP_MAX_ARGS; i++)
        if (k->args[i] == buf && k->args[i] >= 0 && (k->call == LC_CONV1D || k->call == LC_ATTENTION || k->call == LC_TOPK))
          return 1;
    return 0;
  }
  return kernel_reads(k, buf, NULL) > 0; /* control kernels: conservatively, anything they touch */
}

/* ---- verification ---- */
typedef struct VCtx {
  const LoopModule *m;
  char *err;
  size_t errlen;
  int bad;
  int64_t *tile_step; /* per tile variable: its step while inside its LK_TILE, else 0 */
  char *tile_seen;    /* per tile variable: an LK_TILE kernel defines it */
} VCtx;

static void vfail(VCtx *v, const LoopKernel *k, const char *what) {
  if (v->bad) return;
  v->bad = 1;
  snprintf(v->err, v->errlen, "loop IR: kernel k%d (%s): %s", k ? k->id : -1, k && k->opname ? k->opname : "-", what);
}

static int vbuf_ok(VCtx *v, int b) { return b >= 0 && b < v->m->bufs.len; }

static void verify_expr(VCtx *v, const LoopKernel *k, const LoopExpr *e) {
  if (!e || v->bad) return;
  if (e->kind == LX_LOAD) {
    if (!vbuf_ok(v, e->buf)) return vfail(v, k, "load of an unknown buffer");
    if (e->nidx != loop_buf(v->m, e->buf)->shape.rank && !loop_buf(v->m, e->buf)->is_f64)
      return vfail(v, k, "load with an index count different from the buffer's rank");
  }
  if ((e->kind == LX_UNARY || e->kind == LX_BINARY || e->kind == LX_SELECT || e->kind == LX_REDUCE) && !e->a)
    return vfail(v, k, "expression without operand");
  if (e->kind == LX_TEMP && (e->var < 0 || e->var >= k->nlets || e->round))
    return vfail(v, k, "reference to an unknown let");
  verify_expr(v, k, e->a);
  verify_expr(v, k, e->b);
  verify_expr(v, k, e->c);
}

static void verify_kernels(VCtx *v, const PtrVec *ks) {
  for (int i = 0; i < ks->len && !v->bad; i++) {
    const LoopKernel *k = ks->data[i];
    if (k->out >= 0 && !vbuf_ok(v, k->out)) return vfail(v, k, "unknown output buffer");
    for (int a = 0; a < LOOP_MAX_ARGS; a++)
      if (k->args[a] >= 0 && !vbuf_ok(v, k->args[a])) return vfail(v, k, "unknown argument buffer");
    if (k->kind == LK_LOOP) {
      if (k->out < 0 || !k->body) return vfail(v, k, "loop without output or body");
      if (k->rank != loop_buf(v->m, k->out)->shape.rank) return vfail(v, k, "domain rank differs from the output's");
      verify_expr(v, k, k->body);
      for (int l = 0; l < k->nlets && !v->bad; l++) {
        if (!k->lets[l].e || k->lets[l].level < 0 || k->lets[l].level > k->rank + (k->red_outer ? 1 : 0))
          return vfail(v, k, "let without expression or with a bad level");
        verify_expr(v, k, k->lets[l].e);
      }
      if (k->sweep_at || k->sweep_val) { /* pass_scanfuse */
        if (!k->sweep_at || !k->sweep_val || k->sweep_at->kind != LX_LOAD || !k->red_outer || k->sweep_at->round)
          return vfail(v, k, "sweep store without red_outer, destination or value");
        verify_expr(v, k, k->sweep_at);
        verify_expr(v, k, k->sweep_val);
        if (!v->bad && (k->sweep_at->buf == k->out || loop_buf(v->m, k->sweep_at->buf)->is_f64 ||
                        loop_buf(v->m, k->sweep_at->buf)->kind == LB_PARAM || loop_buf(v->m, k->sweep_at->buf)->kind == LB_INPUT))
          return vfail(v, k, "sweep store into the output, an f64 scratch, a parameter or an input");
      }
    }
    if (k->kind == LK_CALL && k->call == LC_GEMM) {
      if (k->args[0] < 0 || k->out < 0) return vfail(v, k, "gemm without input or output");
      if (k->ncat > 0) { /* segmented GEMM (pass_concat): packed weights, sizes[1] = the sum of the n */
        int64_t n = 0;
        for (int s = 0; s < k->ncat && !v->bad; s++) {
          const LoopGemmSeg *g = &k->cat[s];
          if (!vbuf_ok(v, g->out) || !vbuf_ok(v, g->w) || !loop_buf(v->m, g->w)->persistent || g->n <= 0 ||
              (g->bias >= 0 && !vbuf_ok(v, g->bias)) || (g->res >= 0 && !vbuf_ok(v, g->res)))
            return vfail(v, k, "gemm segment with a bad buffer or size");
          n += g->n;
        }
        if (k->cat[0].out != k->out || k->nsizes != 3 || k->sizes[1].tpow || n != k->sizes[1].k ||
            k->args[1] >= 0 || k->epi_act)
          return vfail(v, k, "segmented gemm: out, N or plain-gemm fields inconsistent");
      if (k->blk_var[1] >= 0) return vfail(v, k, "segmented gemm with column blocks");
        continue;
      }
      if (k->args[1] < 0 && (k->blk_var[0] >= 0 || k->blk_var[1] >= 0))
        return vfail(v, k, "blocks of an unpacked gemm (its packing scratch is per call)");
      if (k->args[1] < 0 && k->args[4] < 0) return vfail(v, k, "gemm without weights");
      if (k->args[1] < 0 && k->args[5] < 0) return vfail(v, k, "unpacked gemm without packing scratch");
      if (k->nsizes != 3) return vfail(v, k, "gemm needs sizes M, N, K");
    }
    /* pass_block: a leaf's blocks name enclosing tile loops of the same step, multiples of
       what keeps the bits (loopir.h blk_var) */
    const int attn = k->kind == LK_CALL && k->call == LC_ATTENTION;
    if (attn && (k->attn_part < LOOP_ATTN_WHOLE || k->attn_part > LOOP_ATTN_HEADS ||
                 (k->attn_part != LOOP_ATTN_WHOLE && !k->attn_fast) ||
                 (k->attn_part == LOOP_ATTN_HEADS) != (k->blk_var[1] >= 0) || k->blk_var[0] >= 0))
      return vfail(v, k, "attention part without the flash kernel, or heads without a head block");
    if (!attn && k->attn_part) return vfail(v, k, "attention part on a kernel other than an attention");
    for (int d = 0; d < 2; d++) {
      if (k->blk_var[d] < 0) continue;
      if (k->kind != LK_CALL || (k->call != LC_GEMM && !attn))
        return vfail(v, k, "a block on a kernel other than a gemm or an attention");
      if (k->blk_var[d] >= v->m->ntiles || v->tile_step[k->blk_var[d]] != k->blk_len[d])
        return vfail(v, k, "a block whose tile variable is not an enclosing tile loop of the same step");
      if (k->blk_len[d] <= 0 || (!attn && k->blk_len[d] % (d ? LOOP_PACK_NR : LOOP_BLOCK_M)))
        return vfail(v, k, "a gemm block that is not a multiple of the panel width / micro-tile rows");
    }
    if (k->kind == LK_TILE) {
      if (k->nregions != 1 || k->nsizes != 1 || k->tile_step <= 0 || k->tile_var < 0 || k->tile_var >= v->m->ntiles)
        return vfail(v, k, "tile loop without one region, an extent, a step and a tile variable");
      if (v->tile_seen[k->tile_var]) return vfail(v, k, "a tile variable defined twice");
      const LoopRegion *r = k->regions[0];
      if (r->tvar != k->tvar || r->nargs || r->nyield) return vfail(v, k, "tile region with its own rows, arguments or yields");
      v->tile_seen[k->tile_var] = 1;
      v->tile_step[k->tile_var] = k->tile_step;
      verify_kernels(v, &r->kernels);
      v->tile_step[k->tile_var] = 0;
      continue;
    }
    for (int r = 0; r < k->nregions; r++) verify_kernels(v, &k->regions[r]->kernels);
  }
}

int loop_verify(const LoopModule *m, char *err, size_t errlen) {
  VCtx v = {m, err, errlen, 0, NULL, NULL};
  for (int i = 0; i < m->bufs.len; i++)
    if (((LoopBuf *)m->bufs.data[i])->id != i) {
      snprintf(err, errlen, "loop IR: buffer %d has id %d", i, ((LoopBuf *)m->bufs.data[i])->id);
      return -1;
    }
  for (int i = 0; i < m->packs.len; i++) {
    const LoopPack *p = m->packs.data[i];
    if (p->param < 0 || p->param >= m->nparams || !vbuf_ok(&v, p->buf) || !loop_buf(m, p->buf)->persistent) {
      snprintf(err, errlen, "loop IR: pack %d has a bad parameter or buffer", i);
      return -1;
    }
  }
  v.tile_step = calloc((size_t)m->ntiles + 1, sizeof *v.tile_step);
  v.tile_seen = calloc((size_t)m->ntiles + 1, 1);
  if (!v.tile_step || !v.tile_seen) {
    free(v.tile_step), free(v.tile_seen);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  verify_kernels(&v, &m->kernels);
  free(v.tile_step), free(v.tile_seen);
  return v.bad ? -1 : 0;
}
