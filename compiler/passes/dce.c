/* dce.c — pass_dce (-O1 and up): dead code elimination on the graph IR.
 *
 * Rewrites: removes ops none of whose results is used (by an operand or a
 * region yield anywhere in the module), repeatedly, in every block. Kept
 * whatever its uses: output, input, ops with persistent state (scan, conv1d,
 * attention) and ops with regions (mixture, skip), whose effects go beyond
 * their results. A removed gather or index op no longer reports an
 * out-of-range index at run time (it computed nothing anyone reads). Needs:
 * a verified module. Breaks: nothing. */
#include <stdlib.h>

#include "pass.h"

static void count_uses(const IrBlock *b, int *uses) {
  for (int i = 0; i < b->ops.len; i++) {
    const IrOp *op = b->ops.data[i];
    for (int j = 0; j < op->nin; j++) uses[op->in[j]->id]++;
    for (int r = 0; r < op->nregions; r++) count_uses(op->regions[r], uses);
  }
  for (int i = 0; i < b->nyield; i++) uses[b->yields[i]->id]++;
}

static int has_effect(const IrOp *op) {
  switch (op->kind) {
  case IR_OP_OUTPUT:
  case IR_OP_INPUT:
  case IR_OP_SCAN:
  case IR_OP_CONV1D:
  case IR_OP_ATTENTION:
  case IR_OP_MIXTURE:
  case IR_OP_SKIP: return 1;
  default: return op->nregions > 0;
  }
}

static int sweep(IrBlock *b, const int *uses) {
  int removed = 0, n = 0;
  for (int i = 0; i < b->ops.len; i++) {
    IrOp *op = b->ops.data[i];
    int live = has_effect(op) || op->nout == 0;
    for (int j = 0; j < op->nout && !live; j++) live = uses[op->out[j]->id] > 0;
    if (live) {
      for (int r = 0; r < op->nregions; r++) removed += sweep(op->regions[r], uses);
      b->ops.data[n++] = op;
    } else {
      removed++;
    }
  }
  b->ops.len = n;
  return removed;
}

void pass_dce(IrModule *m, const PassOptions *o) {
  (void)o;
  for (;;) {
    int *uses = xcalloc((size_t)m->next_value_id + 1, sizeof *uses);
    count_uses(m->body, uses);
    int removed = sweep(m->body, uses);
    free(uses);
    if (!removed) break;
  }
}
