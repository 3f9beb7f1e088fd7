/* ir_knobs.c — `gattnc run --set KEY[:I]=VALUE` on the graph IR (see
 * ir_knobs.h): rewrites the cut/threshold/capacity/top_k attributes of the
 * skip ops, with the same checks and the same rounding as the generated
 * NAME_set_skip_threshold / NAME_set_route_capacity (codegen/c/emit_knobs.c),
 * so that the interpreter, the JIT and compiled C agree on a --set run. */
#include "ir_knobs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ir_knob_parse(const char *spec, IrKnob *k, char *err, size_t errlen) {
  const char *whole = spec, *eq = strchr(spec, '=');
  size_t klen = eq ? (size_t)(eq - spec) : 0;
  k->index = -1;
  if (eq && klen >= 9 && !strncmp(spec, "threshold", 9)) {
    k->capacity = 0;
    klen -= 9, spec += 9;
  } else if (eq && klen >= 8 && !strncmp(spec, "capacity", 8)) {
    k->capacity = 1;
    klen -= 8, spec += 8;
  } else {
    snprintf(err, errlen, "--set takes threshold[:I]=VALUE or capacity[:I]=VALUE, not '%s'", spec);
    return -1;
  }
  char *end;
  if (klen > 0) { /* ":I" */
    if (*spec != ':' || klen < 2) goto bad;
    long i = strtol(spec + 1, &end, 10);
    if (end != eq || i < 0 || i > 1000000) goto bad;
    k->index = (int)i;
  }
  k->value = strtod(eq + 1, &end);
  if (end == eq + 1 || *end || isnan(k->value) || isinf(k->value)) goto bad;
  return 0;
bad:
  snprintf(err, errlen, "--set: malformed '%s' (threshold[:I]=VALUE or capacity[:I]=VALUE, I a skip number)", whole);
  return -1;
}

typedef struct KnobWalk {
  IrModule *m;
  const IrKnob *k;
  int next;     /* number of the next skip op */
  int applied;  /* statements the knob went to */
  int failed;
  char *err;
  size_t errlen;
} KnobWalk;

static void knob_drop_attr(IrOp *op, const char *key) {
  for (int i = 0; i < op->nattr; i++)
    if (!strcmp(op->attrs[i].key, key)) {
      op->attrs[i] = op->attrs[--op->nattr];
      return;
    }
}

/* Applies w->k to skip op number i; returns 0 when it has no such knob. */
static int knob_apply_op(KnobWalk *w, IrOp *op, int i) {
  const IrKnob *k = w->k;
  int route = ir_op_attr(op, "capacity") || ir_op_attr(op, "top_k");
  if (!k->capacity) {
    if (ir_op_attr(op, "cmp")) {
      if (fabs(k->value) > 3.4e38) goto range;
      ir_op_set_float(w->m, op, "cut", (double)(float)k->value); /* as the f32 comparison */
      return 1;
    }
    if (!route) return 0;
    if (k->value > 1) goto range;
    if (k->value < 0) knob_drop_attr(op, "threshold"); /* no decode rule */
    else ir_op_set_float(w->m, op, "threshold", k->value);
    return 1;
  }
  if (!route) return 0;
  if (ir_op_attr(op, "capacity")) {
    if (!(k->value > 0 && k->value <= 1)) goto range;
    ir_op_set_float(w->m, op, "capacity", k->value);
  } else {
    if (!(k->value >= 1 && k->value <= 2147483647.0 && floor(k->value) == k->value)) goto range;
    ir_op_set_int(w->m, op, "top_k", (int64_t)k->value);
  }
  return 1;
range:
  snprintf(w->err, w->errlen, "--set: %s %g is out of range for skip %d (line %d)%s",
           k->capacity ? "capacity" : "threshold", k->value, i, op->loc.line,
           k->capacity ? ": a route's capacity is in (0, 1], a top(k) count an integer >= 1"
                       : route ? ": a route's threshold is <= 1 (negative: none)" : "");
  w->failed = 1;
  return 1;
}

static void knob_walk(KnobWalk *w, IrBlock *b) {
  for (int j = 0; j < b->ops.len && !w->failed; j++) {
    IrOp *op = b->ops.data[j];
    if (op->kind == IR_OP_SKIP) {
      int i = w->next++;
      if (w->k->index < 0 || w->k->index == i) {
        if (knob_apply_op(w, op, i)) {
          w->applied++;
        } else if (w->k->index == i) {
          snprintf(w->err, w->errlen, "--set: skip %d (line %d) has no %s", i, op->loc.line,
                   w->k->capacity ? "capacity (it is not a route)" : "threshold (its condition is not 'score < tau')");
          w->failed = 1;
        }
      }
    }
    for (int r = 0; r < op->nregions; r++) knob_walk(w, op->regions[r]);
  }
}

int ir_knobs_apply(IrModule *m, const char *const *specs, int n, char *err, size_t errlen) {
  for (int s = 0; s < n; s++) {
    IrKnob k;
    if (ir_knob_parse(specs[s], &k, err, errlen) < 0) return -1;
    KnobWalk w = {m, &k, 0, 0, 0, err, errlen};
    knob_walk(&w, m->body);
    if (w.failed) return -1;
    if (k.index >= w.next) {
      snprintf(err, errlen, "--set %s: the model has %d skip/route statements", specs[s], w.next);
      return -1;
    }
    if (w.applied == 0) {
      snprintf(err, errlen, "--set %s: no skip/route statement has a %s", specs[s],
               k.capacity ? "capacity" : "threshold");
      return -1;
    }
  }
  return 0;
}
