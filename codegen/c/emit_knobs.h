/* emit_knobs.h — run-time knobs of skips and routes in the generated C.
 *
 * Every LK_SKIP kernel (a `skip when` or `route` statement, regions
 * included, numbered in the pre-order the counters use) has two values the
 * caller may change between forward calls without recompiling:
 *   skip_tau[i]: the cut of a threshold skip (`skip when s < tau`: row t is
 *     skipped iff s[t] < tau, rounded to f32 like the compile-time value), or
 *     a route's decode threshold (-1 = none);
 *   skip_cap[i]: a route's capacity c (top ceil(c * T)) or count k (top(k)).
 * They live in the model struct, start at the compile-time values in init
 * and survive reset. API (declared in NAME.h): NAME_skip_ops, NAME_skip_kind,
 * NAME_skip_line, NAME_skip_col, NAME_skip_threshold, NAME_set_skip_threshold,
 * NAME_route_capacity, NAME_set_route_capacity (docs/layers.md, "Run-time
 * thresholds and capacities"). */
#ifndef GATTNC_EMIT_KNOBS_H
#define GATTNC_EMIT_KNOBS_H

#include "loopir.h"

/* Number of skip kernels of m; the index of skip kernel k (-1 if k is none). */
int emit_knobs_n(const LoopModule *m);
int emit_knobs_index(const LoopModule *m, const LoopKernel *k);
/* NAME.h: the struct fields (inside the model struct) and the declarations. */
void emit_knobs_field(StrBuf *sb, const LoopModule *m);
void emit_knobs_decls(StrBuf *sb, const LoopModule *m);
/* NAME.c: the tables and function definitions; the defaults set in init. */
void emit_knobs_defs(StrBuf *sb, const LoopModule *m);
void emit_knobs_init(StrBuf *sb, const LoopModule *m);

#endif
