/* licm.c — pass_licm (-O2): loop-invariant code motion for LK_LOOP kernels.
 *
 * The lowering writes every kernel as one expression evaluated in the
 * innermost loop, so a factor like exp(gk[t, h, i]) of a [h, i, j] nest is
 * recomputed for every j, and loads the C compiler cannot prove unchanged
 * by the kernel's store are reloaded. This pass moves each maximal
 * subexpression that does not depend on the inner loops into a let
 * (LoopLet) of the outermost loop level where all its inputs are known, and
 * leaves an LX_TEMP in its place. A let holds the double the expression
 * would have had, so results do not change by a bit.
 *
 * Not hoisted: loads of the kernel's own output (the kernel may have
 * changed them), anything inside a select branch (evaluated only when the
 * condition holds: a hoisted load there could read outside its buffer), and
 * trivial leaves (constants, variables). Identical lets of one level are
 * shared. The level of an expression is the position, in the kernel's loop
 * order (LoopLet), of the innermost loop whose variable it uses; a
 * reduction's own variable does not count inside it. */
#include <string.h>

#include "pass.h"

#define LICM_INF 1000
#define LICM_MAX_BOUND 16

typedef struct Licm {
  LoopModule *m;
  LoopKernel *k;
  int ord[IR_MAX_RANK + 1]; /* loop order: variables, outermost first */
  int nord;
  const LoopExpr *red;      /* the red_outer reduction, or NULL */
  PtrVec lets;              /* LoopLet* under construction */
} Licm;

static int var_level(const Licm *c, int v, const int *bound, int nbound) {
  for (int i = 0; i < nbound; i++)
    if (bound[i] == v) return 0;
  for (int p = 0; p < c->nord; p++)
    if (c->ord[p] == v) return p + 1;
  return LICM_INF;
}

static int max_i(int a, int b) { return a > b ? a : b; }

static int expr_level(const Licm *c, const LoopExpr *e, int *bound, int nbound) {
  if (!e) return 0;
  switch (e->kind) {
  case LX_CONST:
  case LX_POS0: return 0;
  case LX_TEMP: return ((const LoopLet *)c->lets.data[e->var])->level;
  case LX_VAR: return var_level(c, e->var, bound, nbound);
  case LX_LOAD: {
    if (e->buf == c->k->out) return LICM_INF;
    int l = 0;
    for (int d = 0; d < e->nidx; d++) {
      const LoopIndex *ix = &e->idx[d];
      if (ix->dyn_buf == c->k->out) return LICM_INF;
      for (int t = 0; t < ix->nterms; t++)
        if (ix->coef[t] != 0) l = max_i(l, var_level(c, ix->var[t], bound, nbound));
    }
    return l;
  }
  case LX_REDUCE: {
    if (nbound >= LICM_MAX_BOUND) return LICM_INF;
    bound[nbound] = e->var;
    int l = expr_level(c, e->a, bound, nbound + 1);
    if (e->extent == IR_DIM_T) l = max_i(l, 0);
    return l;
  }
  default:
    return max_i(expr_level(c, e->a, bound, nbound), max_i(expr_level(c, e->b, bound, nbound),
                                                           expr_level(c, e->c, bound, nbound)));
  }
}

static int expr_equal(const LoopExpr *a, const LoopExpr *b) {
  if (!a || !b) return a == b;
  if (a->kind != b->kind || a->dtype != b->dtype || a->round != b->round) return 0;
  switch (a->kind) {
  case LX_CONST:
    if (memcmp(&a->f, &b->f, sizeof a->f) != 0) return 0;
    break;
  case LX_LOAD:
    if (a->buf != b->buf || a->nidx != b->nidx) return 0;
    for (int d = 0; d < a->nidx; d++) {
      const LoopIndex *x = &a->idx[d], *y = &b->idx[d];
      if (x->c != y->c || x->nterms != y->nterms || x->dyn_buf != y->dyn_buf ||
          (x->dyn_buf >= 0 && x->dyn_coef != y->dyn_coef))
        return 0;
      for (int t = 0; t < x->nterms; t++)
        if (x->var[t] != y->var[t] || x->coef[t] != y->coef[t]) return 0;
    }
    break;
  case LX_VAR:
  case LX_TEMP:
    if (a->var != b->var) return 0;
    break;
  case LX_UNARY:
  case LX_BINARY:
    if (a->fn != b->fn) return 0;
    break;
  case LX_REDUCE:
    if (a->var != b->var || a->extent != b->extent || a->red != b->red) return 0;
    break;
  default: break;
  }
  return expr_equal(a->a, b->a) && expr_equal(a->b, b->b) && expr_equal(a->c, b->c);
}

static int hoistable_kind(const LoopExpr *e) {
  return e->kind != LX_CONST && e->kind != LX_VAR && e->kind != LX_POS0 && e->kind != LX_TEMP;
}

static void hoist(Licm *c, LoopExpr **xp, int cur);

static void hoist_children(Licm *c, LoopExpr *x, int cur) {
  if (x->kind == LX_REDUCE) {
    /* the red_outer reduction's operand runs inside all loops of the order;
     * any other reduction adds a loop whose variable is not in the order */
    hoist(c, &x->a, x == c->red ? c->nord : cur + 1);
    return;
  }
  if (x->a) hoist(c, &x->a, cur);
  if (x->kind == LX_SELECT) return; /* branches are evaluated conditionally */
  if (x->b) hoist(c, &x->b, cur);
  if (x->c) hoist(c, &x->c, cur);
}

/* cur: loops enclosing the place where *xp is evaluated (one more inside a
 * reduction loop that is not in the order) */
static void hoist(Licm *c, LoopExpr **xp, int cur) {
  LoopExpr *x = *xp;
  if (!x) return;
  int bound[LICM_MAX_BOUND];
  int l = x == c->red ? LICM_INF : expr_level(c, x, bound, 0);
  if (!hoistable_kind(x) || l >= cur) {
    hoist_children(c, x, cur);
    return;
  }
  hoist_children(c, x, l); /* parts invariant in outer loops still get lets of their own */
  int id = -1;
  for (int i = 0; i < c->lets.len && id < 0; i++) {
    const LoopLet *t = c->lets.data[i];
    if (t->level == l && expr_equal(t->e, x)) id = i;
  }
  if (id < 0) {
    LoopLet *t = ARENA_NEW(c->m->arena, LoopLet);
    t->level = l;
    t->e = x;
    id = c->lets.len;
    ptrvec_push(&c->lets, t);
  }
  LoopExpr *ref = loop_expr_new(c->m, LX_TEMP, x->dtype);
  ref->var = id;
  *xp = ref;
}

static const LoopExpr *the_reduce(const LoopExpr *e) {
  if (!e) return NULL;
  if (e->kind == LX_REDUCE) return e;
  const LoopExpr *r = the_reduce(e->a);
  if (!r) r = the_reduce(e->b);
  if (!r) r = the_reduce(e->c);
  return r;
}

static void licm_kernel(LoopModule *m, LoopKernel *k, void *ctx) {
  (void)ctx;
  if (k->kind != LK_LOOP || k->nlets || !k->body) return;
  Licm c;
  memset(&c, 0, sizeof c);
  c.m = m;
  c.k = k;
  for (int d = 0; d < k->rank; d++) c.ord[c.nord++] = d;
  if (k->red_outer) {
    c.red = the_reduce(k->body);
    GAT_ASSERT(c.red && k->rank >= 1);
    c.ord[k->rank - 1] = c.red->var;
    c.ord[k->rank] = k->rank - 1;
    c.nord = k->rank + 1;
  }
  hoist(&c, &k->body, c.nord);
  if (c.lets.len) {
    k->nlets = c.lets.len;
    k->lets = arena_alloc(m->arena, sizeof(LoopLet) * (size_t)c.lets.len);
    for (int i = 0; i < c.lets.len; i++) k->lets[i] = *(LoopLet *)c.lets.data[i];
  }
  ptrvec_free(&c.lets);
}

void pass_licm(LoopModule *m, const PassOptions *o) {
  (void)o;
  loop_walk_kernels(m, licm_kernel, NULL);
}
