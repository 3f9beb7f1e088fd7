/* cse.c — pass_cse (-O1 and up): common subexpression elimination on the
 * graph IR.
 *
 * Rewrites: an op without regions or state that has the same kind,
 * operands, attributes, index expression and result types as an earlier op
 * of the same block (or of an enclosing block, which dominates) is replaced
 * by it: every use of its results is redirected, and pass_dce removes it.
 * Typical catches: a parameter or input read twice, the same position/rope
 * computed by two layers, repeated casts and broadcasts. Needs: a verified
 * module. Breaks: nothing (duplicates are left dead for pass_dce). */
#include <stdlib.h>
#include <string.h>

#include "pass.h"

static int pure_kind(const IrOp *op) {
  if (op->nregions > 0) return 0;
  switch (op->kind) {
  case IR_OP_OUTPUT:
  case IR_OP_SCAN:
  case IR_OP_CONV1D:
  case IR_OP_ATTENTION:
  case IR_OP_MIXTURE:
  case IR_OP_SKIP: return 0;
  default: return 1;
  }
}

static void op_key(StrBuf *k, const IrOp *op) {
  char ty[160];
  sb_printf(k, "%d|", (int)op->kind);
  for (int i = 0; i < op->nin; i++) sb_printf(k, "%d,", op->in[i]->id);
  sb_append(k, "|");
  for (int i = 0; i < op->nattr; i++) {
    const IrAttr *a = &op->attrs[i];
    char f[64];
    format_double(f, sizeof f, a->f);
    sb_printf(k, "%s:%d:%lld:%s:", a->key, (int)a->kind, (long long)a->i, f);
    if (a->s) sb_append(k, a->s);
    for (int j = 0; j < a->n; j++) sb_printf(k, ",%lld", (long long)a->ints[j]);
    sb_append(k, ";");
  }
  if (op->expr) {
    char *e = ir_expr_to_string(op->expr);
    sb_append(k, e);
    free(e);
  }
  for (int i = 0; i < op->nout; i++) {
    ir_type_str(ty, sizeof ty, op->out[i]->dtype, op->out[i]->shape);
    sb_printf(k, "|%s", ty);
  }
}

typedef struct CseTable {
  int n, cap;
  char **keys;
  IrOp **ops;
} CseTable;

static IrOp *cse_find(const CseTable *t, const char *key) {
  for (int i = t->n - 1; i >= 0; i--)
    if (strcmp(t->keys[i], key) == 0) return t->ops[i];
  return NULL;
}

static void cse_add(CseTable *t, const char *key, IrOp *op) {
  if (t->n == t->cap) {
    t->cap = t->cap ? 2 * t->cap : 64;
    t->keys = xrealloc(t->keys, sizeof *t->keys * (size_t)t->cap);
    t->ops = xrealloc(t->ops, sizeof *t->ops * (size_t)t->cap);
  }
  t->keys[t->n] = xstrdup(key);
  t->ops[t->n++] = op;
}

/* repl[id] = the value that replaces value id, or NULL */
static void cse_block(IrBlock *b, CseTable *t, IrValue **repl) {
  int mark = t->n;
  for (int i = 0; i < b->ops.len; i++) {
    IrOp *op = b->ops.data[i];
    for (int j = 0; j < op->nin; j++)
      if (repl[op->in[j]->id]) op->in[j] = repl[op->in[j]->id];
    for (int r = 0; r < op->nregions; r++) {
      if (op->kind == IR_OP_MIXTURE || op->kind == IR_OP_SKIP) {
        /* T means other rows inside: nothing of the enclosing block may be reused there */
        CseTable inner = {0, 0, NULL, NULL};
        cse_block(op->regions[r], &inner, repl);
        free(inner.keys);
        free(inner.ops);
      } else {
        cse_block(op->regions[r], t, repl);
      }
    }
    if (!pure_kind(op) || op->nout == 0) continue;
    StrBuf k = {0};
    op_key(&k, op);
    IrOp *prev = cse_find(t, sb_cstr(&k));
    if (prev && prev->nout == op->nout) {
      for (int j = 0; j < op->nout; j++) repl[op->out[j]->id] = prev->out[j];
    } else {
      cse_add(t, sb_cstr(&k), op);
    }
    sb_free(&k);
  }
  for (int i = 0; i < b->nyield; i++)
    if (repl[b->yields[i]->id]) b->yields[i] = repl[b->yields[i]->id];
  /* ops of this block do not dominate what follows its parent's region */
  for (int i = mark; i < t->n; i++) free(t->keys[i]);
  t->n = mark;
}

void pass_cse(IrModule *m, const PassOptions *o) {
  (void)o;
  CseTable t = {0, 0, NULL, NULL};
  IrValue **repl = xcalloc((size_t)m->next_value_id + 1, sizeof *repl);
  cse_block(m->body, &t, repl);
  free(t.keys);
  free(t.ops);
  free(repl);
}
