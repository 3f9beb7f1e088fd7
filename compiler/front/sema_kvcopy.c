/* sema_kvcopy.c — `x = value skip when cond, kv: previous` (GateSkip's KV
 * copy, docs/layers.md "GateSkip's KV copy"): the attention inside the
 * skipped value keeps a full KV cache. For every token of a call, the cache
 * rows of the previous attention (layer l-1) are copied into this
 * attention's cache first; the kept tokens then run the attention at their
 * absolute positions and overwrite their own rows, so a skipped token's keys
 * and values are layer l-1's and later tokens still attend to it.
 *
 * The skip op gets attr kv_copy = [src_k, dst_k, src_v, dst_v (, src_kb,
 * dst_kb)] (pairs of state slots, ir.h IR_OP_SKIP) and no rows_state (the
 * rows are not packed). The source is the last attention before the
 * statement in the model body: a top-level attention, or the one inside an
 * earlier `kv: previous` skip (both write every row); a packed (MoD)
 * attention under a plain skip or route holds only its kept rows and is
 * refused, as are caches of another shape. */
#include <string.h>

#include "sema_internal.h"

static void find_attention(const IrBlock *b, const IrOp **first, int *n) {
  for (int i = 0; i < b->ops.len; i++) {
    const IrOp *op = b->ops.data[i];
    if (op->kind == IR_OP_ATTENTION) {
      if (!*first) *first = op;
      (*n)++;
    }
    for (int r = 0; r < op->nregions; r++) find_attention(op->regions[r], first, n);
  }
}

static const IrState *slot_state(Sema *S, int64_t slot) {
  if (slot < 0 || slot >= S->m->states.len) return NULL;
  return S->m->states.data[slot];
}

/* "[2, 8]": a cache row's shape (the dims after max_T). */
static const char *row_str(Sema *S, const IrState *st) {
  IrShape r = st->shape;
  r.rank--;
  for (int i = 0; i < r.rank; i++) r.dims[i] = r.dims[i + 1];
  const char *t = sema_type_str(S, st->dtype, r);
  const char *b = strchr(t, '[');
  return b ? b : t;
}

int sema_skip_kv_copy(Sema *S, AstStmt *st, IrOp *op, IrBlock *rb) {
  SrcLoc loc = st->skip_kv_loc;
  const IrOp *dst = NULL;
  int n = 0;
  find_attention(rb, &dst, &n);
  if (n == 0) {
    diag_error(loc, "'kv: previous' copies keys and values into an attention's KV cache, but the skipped value "
                    "has no attention");
    return -1;
  }
  if (n > 1) {
    diag_error(loc, "'kv: previous' needs exactly one attention in the skipped value, not %d", n);
    return -1;
  }
  /* the previous attention in the model body, before this statement */
  IrBlock *body = S->block;
  int at = body->ops.len - 1;
  while (at >= 0 && body->ops.data[at] != op) at--;
  const IrOp *src = NULL, *packed = NULL;
  for (int i = at - 1; i >= 0 && !src && !packed; i--) {
    const IrOp *p = body->ops.data[i];
    if (p->kind == IR_OP_ATTENTION) {
      src = p;
    } else if (p->nregions > 0) {
      const IrOp *a = NULL;
      int na = 0;
      for (int r = 0; r < p->nregions; r++) find_attention(p->regions[r], &a, &na);
      if (!a) continue;
      if (p->kind == IR_OP_SKIP && ir_op_attr(p, "kv_copy"))
        src = a;
      else
        packed = a;
    }
  }
  if (packed) {
    diag_error(loc, "'kv: previous': the previous attention runs under a skip or route without 'kv: previous', so "
                    "its KV cache holds only the tokens that ran it; there are no keys and values to copy for "
                    "every token");
    diag_note(packed->loc, "the previous attention is here");
    return -1;
  }
  if (!src) {
    diag_error(loc, "'kv: previous' needs an earlier attention to copy keys and values from (layer l-1's), "
                    "but there is none before this statement");
    return -1;
  }
  const char *keys[3] = {"state_k", "state_v", "state_kb"};
  const IrState *ds[3], *ss[3];
  int64_t dslot[3], sslot[3];
  for (int i = 0; i < 3; i++) {
    dslot[i] = ir_op_int(dst, keys[i], -1);
    sslot[i] = ir_op_int(src, keys[i], -1);
    ds[i] = slot_state(S, dslot[i]);
    ss[i] = slot_state(S, sslot[i]);
  }
  GAT_ASSERT(ds[0] && ds[1] && ss[0] && ss[1]);
  if (!ds[2] != !ss[2]) {
    diag_error(loc, "'kv: previous': %s has key biases (kb) and %s has none, so their KV caches differ",
               ds[2] ? "this attention" : "the previous attention", ds[2] ? "the previous attention" : "this one");
    diag_note(src->loc, "the previous attention is here");
    return -1;
  }
  for (int i = 0; i < 3; i++) {
    if (!ds[i]) continue;
    IrShape a = ds[i]->shape, b = ss[i]->shape;
    int same = a.rank == b.rank && ds[i]->dtype == ss[i]->dtype;
    for (int d = 1; same && d < a.rank; d++) same = a.dims[d] == b.dims[d];
    if (!same) {
      diag_error(loc, "'kv: previous': the previous attention caches keys %s and values %s per token, but this "
                      "attention caches keys %s and values %s; the copied rows must have the same shape",
                 row_str(S, ss[0]), row_str(S, ss[1]), row_str(S, ds[0]), row_str(S, ds[1]));
      diag_note(src->loc, "the previous attention is here");
      return -1;
    }
  }
  int64_t pairs[6];
  int np = 0;
  for (int i = 0; i < 3; i++)
    if (ds[i]) pairs[np++] = sslot[i], pairs[np++] = dslot[i];
  ir_op_set_ints(S->m, op, "kv_copy", np, pairs);
  return 0;
}
