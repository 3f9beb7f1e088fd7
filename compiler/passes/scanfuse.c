/* scanfuse.c — pass_scanfuse (-O2; off with -fno-scanfuse): inside a scan
 * step, the state update and the output reduction become one sweep over the
 * state.
 *
 * After interchange / scan_inplace / licm / f32math a GLA step is two nests,
 *   U: for (h, i, j)        S[h, i, j] = f(S[h, i, j], gk, k, v)
 *   R: red_outer for (h, j) o[h, j] = F(sum(i) q[h, i] * S[h, i, j] * c)
 * so every token reads the state twice (U reads and writes it, R reads it
 * again with the reduction loop i outside the contiguous j loop). R's loop
 * order (h, i, j) is U's order, so U's store can run inside R's sweep, just
 * before the term that reads it: the kernel keeps R's output and gets a
 * second store (LoopKernel.sweep_at / sweep_val, loopir.h), the state is
 * read once per token. The delta rule's step (u = beta (v - k^T S);
 * S' = a S + k u^T; o = q^T S') loses one of its three sweeps the same way
 * (the first one must finish u before the update starts).
 *
 * Conditions (U before R in one kernel list inside an LK_SCAN region):
 *   - U is an LK_LOOP over its whole output S without reductions (in body or
 *     lets), reading S only at its own element; R has red_outer with a sum
 *     over a constant extent; same row variable and same f32_math.
 *   - U's domain is R's loop order (v0 .. v{r-2}, v_R, v{r-1}) with equal
 *     extents, and R reads S only inside its sum's operand, only at the
 *     element the sweep has just stored (U's identity index mapped to R's
 *     variables); R's lets and epilogue never read S; U does not read R's
 *     output.
 *   - The kernels between U and R neither touch S nor write what U reads
 *     (U moves down to R's place).
 * U's lets join R's (U's loop level L is R's level L: same loop order), U's
 * body becomes sweep_val with variables renamed, U disappears. Each value is
 * computed by the same expression and rounded at the same store, so results
 * are bitwise those of -fno-scanfuse.
 *
 * The elementwise nests after a reduction inside a step (an output gate,
 * a scale) are already in R: pass fuse inlines R into such consumers before
 * interchange, so R's body is their F(sum). Norms with a row statistic and
 * the std layers' output norm and gate (outside the scan, a row call and the
 * o_proj / gate GEMM epilogue) are not touched.
 * Needs: interchange (red_outer), runs after licm and f32math. Breaks:
 * nothing (both backends emit sweep stores). */
#include <stdlib.h>
#include <string.h>

#include "fuse_util.h"

static int has_reduce(const LoopExpr *e) {
  return e && (e->kind == LX_REDUCE || has_reduce(e->a) || has_reduce(e->b) || has_reduce(e->c));
}

static LoopExpr *find_reduce(LoopExpr *e) {
  if (!e || e->kind == LX_REDUCE) return e;
  LoopExpr *r = find_reduce(e->a);
  if (!r) r = find_reduce(e->b);
  return r ? r : find_reduce(e->c);
}

static int count_loads(const LoopExpr *e, int buf) {
  if (!e) return 0;
  int n = 0;
  if (e->kind == LX_LOAD) {
    n += e->buf == buf;
    for (int d = 0; d < e->nidx; d++) n += e->idx[d].dyn_buf == buf;
  }
  return n + count_loads(e->a, buf) + count_loads(e->b, buf) + count_loads(e->c, buf);
}

/* every load of buf in e is at [ord[0], .., ord[n-1]] (plain variables) */
static int loads_at(const LoopExpr *e, int buf, const int *ord, int n) {
  if (!e) return 1;
  if (e->kind == LX_LOAD) {
    for (int d = 0; d < e->nidx; d++)
      if (e->idx[d].dyn_buf == buf) return 0;
    if (e->buf == buf) {
      if (e->nidx != n || e->round) return 0;
      for (int d = 0; d < n; d++) {
        const LoopIndex *ix = &e->idx[d];
        if (!(ix->nterms == 1 && ix->var[0] == ord[d] && ix->coef[0] == 1 && ix->c == 0 && ix->dyn_buf < 0)) return 0;
      }
    }
  }
  return loads_at(e->a, buf, ord, n) && loads_at(e->b, buf, ord, n) && loads_at(e->c, buf, ord, n);
}

static void collect_reads(const LoopExpr *e, char *rd) {
  if (!e) return;
  if (e->kind == LX_LOAD) {
    rd[e->buf] = 1;
    for (int d = 0; d < e->nidx; d++)
      if (e->idx[d].dyn_buf >= 0) rd[e->idx[d].dyn_buf] = 1;
  }
  collect_reads(e->a, rd);
  collect_reads(e->b, rd);
  collect_reads(e->c, rd);
}

/* a copy of U's expression e in R's variables (map) with let references shifted by tshift */
static LoopExpr *copy_mapped(LoopModule *m, const LoopExpr *e, const int *map, int nmap, int tshift) {
  if (!e) return NULL;
  LoopExpr *c = loop_expr_new(m, e->kind, e->dtype);
  *c = *e;
  if (e->kind == LX_VAR && e->var >= 0 && e->var < nmap) c->var = map[e->var];
  if (e->kind == LX_TEMP) c->var = e->var + tshift;
  if (e->kind == LX_LOAD) {
    c->idx = ARENA_ARRAY(m->arena, LoopIndex, e->nidx ? e->nidx : 1);
    memcpy(c->idx, e->idx, sizeof(LoopIndex) * (size_t)e->nidx);
    for (int d = 0; d < e->nidx; d++)
      for (int t = 0; t < c->idx[d].nterms; t++)
        if (c->idx[d].var[t] >= 0 && c->idx[d].var[t] < nmap) c->idx[d].var[t] = map[c->idx[d].var[t]];
  }
  c->a = copy_mapped(m, e->a, map, nmap, tshift);
  c->b = copy_mapped(m, e->b, map, nmap, tshift);
  c->c = copy_mapped(m, e->c, map, nmap, tshift);
  return c;
}

/* Fuse U = ks[i] into R = ks[j]; 1 if done. */
static int try_pair(LoopModule *m, PtrVec *ks, int i, int j) {
  LoopKernel *U = ks->data[i], *R = ks->data[j];
  if (U->kind != LK_LOOP || R->kind != LK_LOOP || !R->red_outer || R->sweep_at || U->sweep_at || U->red_outer)
    return 0;
  if (U->tvar != R->tvar || U->f32_math != R->f32_math || U->rank != R->rank + 1 || R->rank < 1) return 0;
  int S = U->out;
  if (S == R->out || !fuse_whole_output(m, U) || has_reduce(U->body)) return 0;
  for (int l = 0; l < U->nlets; l++)
    if (has_reduce(U->lets[l].e) || count_loads(U->lets[l].e, S) || count_loads(U->lets[l].e, R->out)) return 0;
  const LoopBuf *sb = loop_buf(m, S);
  if (sb->is_f64 || sb->kind == LB_PARAM || sb->kind == LB_INPUT) return 0;
  LoopExpr *red = find_reduce(R->body);
  int jv = R->rank - 1;
  if (!red || red->red != IR_RED_SUM || red->extent == IR_DIM_T || R->ext[jv] == IR_DIM_T) return 0;
  /* R's loop order, which U's domain must be */
  int ord[IR_MAX_RANK + 1];
  for (int d = 0; d < jv; d++) ord[d] = d;
  ord[jv] = red->var;
  ord[jv + 1] = jv;
  for (int p = 0; p <= jv + 1; p++) {
    int64_t e = ord[p] == red->var ? red->extent : R->ext[ord[p]];
    if (U->ext[p] != e || e == IR_DIM_T) return 0;
  }
  for (int d = 0; d < U->rank; d++)
    if (U->out_off[d]) return 0;
  /* S: read by U only at its own element, by R only in the sum's operand at the swept element */
  int ident[IR_MAX_RANK + 1];
  for (int d = 0; d < U->rank; d++) ident[d] = d;
  if (!loads_at(U->body, S, ident, U->rank) || count_loads(U->body, R->out)) return 0;
  int in_sum = count_loads(red->a, S);
  if (in_sum == 0 || count_loads(R->body, S) != in_sum || !loads_at(red->a, S, ord, U->rank)) return 0;
  for (int l = 0; l < R->nlets; l++)
    if (count_loads(R->lets[l].e, S)) return 0;
  /* U moves down to R: nothing in between touches S or writes what U reads */
  char *rd = xcalloc((size_t)m->bufs.len + 1, 1);
  collect_reads(U->body, rd);
  for (int l = 0; l < U->nlets; l++) collect_reads(U->lets[l].e, rd);
  int clash = 0;
  for (int q = i + 1; q < j && !clash; q++) {
    LoopKernel *k = ks->data[q];
    if (loop_kernel_reads(k, S) || loop_kernel_writes(k, S)) clash = 1;
    for (int l = 0; l < k->nlets && !clash; l++) clash = count_loads(k->lets[l].e, S) > 0;
    for (int b = 0; b < m->bufs.len && !clash; b++)
      if (rd[b] && loop_kernel_writes(k, b)) clash = 1;
  }
  free(rd);
  if (clash) return 0;
  /* rewrite: U's variables p -> ord[p], U's lets after R's */
  LoopExpr *at = loop_expr_new(m, LX_LOAD, sb->dtype);
  at->buf = S;
  at->nidx = U->rank;
  at->idx = ARENA_ARRAY(m->arena, LoopIndex, U->rank);
  memset(at->idx, 0, sizeof(LoopIndex) * (size_t)U->rank);
  for (int p = 0; p < U->rank; p++) {
    at->idx[p].nterms = 1;
    at->idx[p].var[0] = ord[p];
    at->idx[p].coef[0] = 1;
    at->idx[p].dyn_buf = -1;
  }
  int nl = R->nlets + U->nlets;
  if (U->nlets) {
    LoopLet *lets = arena_alloc(m->arena, sizeof(LoopLet) * (size_t)nl);
    for (int l = 0; l < R->nlets; l++) lets[l] = R->lets[l];
    for (int l = 0; l < U->nlets; l++) {
      lets[R->nlets + l].level = U->lets[l].level; /* same loop order: same level */
      lets[R->nlets + l].e = copy_mapped(m, U->lets[l].e, ord, U->rank, R->nlets);
    }
    R->lets = lets;
  }
  R->sweep_val = copy_mapped(m, U->body, ord, U->rank, R->nlets);
  R->nlets = nl;
  R->sweep_at = at;
  fuse_remove_at(ks, i);
  return 1;
}

static int fuse_once(LoopModule *m, PtrVec *ks) {
  for (int j = 0; j < ks->len; j++)
    for (int i = j - 1; i >= 0; i--)
      if (try_pair(m, ks, i, j)) return 1;
  return 0;
}

static void scanfuse_list(LoopModule *m, PtrVec *ks, int in_scan) {
  if (in_scan)
    while (fuse_once(m, ks)) {
    }
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = ks->data[i];
    for (int r = 0; r < k->nregions; r++) scanfuse_list(m, &k->regions[r]->kernels, in_scan || k->kind == LK_SCAN);
  }
}

void pass_scanfuse(LoopModule *m, const PassOptions *o) {
  (void)o;
  scanfuse_list(m, &m->kernels, 0);
}
