/* ir_knobs.h — `gattnc run --set KEY[:I]=VALUE`: run-time values of the
 * thresholds and capacities of skip/route statements (docs/layers.md,
 * "Run-time thresholds and capacities").
 *
 * KEY is `threshold` (the tau of `skip when s < tau`, or a route's decode
 * threshold) or `capacity` (a route's c of top(c * T), or k of top(k)).
 * I numbers the skip/route statements in model order (regions included);
 * without it the value goes to every statement that has that knob. The
 * interpreter and the JIT read the IR, so for them the value is written into
 * the skip ops' attributes; a compiled C model gets it through its
 * NAME_set_skip_threshold / NAME_set_route_capacity after init. */
#ifndef GATTNC_IR_KNOBS_H
#define GATTNC_IR_KNOBS_H

#include <stddef.h>

#include "ir.h"

typedef struct IrKnob {
  int capacity; /* 0: threshold, 1: capacity */
  int index;    /* skip number, or -1 = all */
  double value;
} IrKnob;

/* Parses one --set argument; -1 with a message in err when malformed. */
int ir_knob_parse(const char *spec, IrKnob *k, char *err, size_t errlen);
/* Applies the knobs to the skip ops of m; -1 with a message when a value is
 * out of range, an index names no skip, or a knob matches no statement. */
int ir_knobs_apply(IrModule *m, const char *const *specs, int n, char *err, size_t errlen);

#endif
