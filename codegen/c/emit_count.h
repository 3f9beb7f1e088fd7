/* emit_count.h — execution counters in the generated C (`gattnc --count`).
 *
 * A counting build keeps, per model instance, one counter block per mixture
 * or skip kernel (LK_MIXTURE / LK_SKIP, regions included, in the pre-order
 * the interpreter's GAT_INTERP_COUNT uses): the tokens offered to the op, and
 * per region (expert, or the kept branch of a skip) the rows it computed and
 * the number of times it ran. Unchosen experts and skipped tokens do no work
 * and therefore add nothing: the counters are how tests prove the routing
 * really saves the work, not just that the outputs agree.
 *
 * Counter slots of the op with base b: b + 0 tokens; b + 1 + 2e rows of
 * region e; b + 2 + 2e calls of region e. They live in the model struct
 * (`uint64_t count[NAME_COUNT_SLOTS]`), are zeroed by init and by
 * NAME_count_clear, and survive reset. */
#ifndef GATTNC_EMIT_COUNT_H
#define GATTNC_EMIT_COUNT_H

#include "loopir.h"

/* Number of counted ops / counter slots of m (0 when m->count is off). */
int emit_count_nops(const LoopModule *m);
int emit_count_nslots(const LoopModule *m);
/* The first slot of kernel k, or -1 when k is not counted. */
int emit_count_base(const LoopModule *m, const LoopKernel *k);
/* The counted kernels in op order with their first slots: fills ks[0..n) and
 * bases[0..n) (arrays of at least emit_count_nops(m) entries); returns n. */
int emit_count_list(const LoopModule *m, const LoopKernel **ks, int *bases);
/* NAME.h: the struct field (inside the model struct) and the declarations. */
void emit_count_field(StrBuf *sb, const LoopModule *m);
void emit_count_decls(StrBuf *sb, const LoopModule *m);
/* NAME.c: the op tables and the NAME_count_* definitions. */
void emit_count_defs(StrBuf *sb, const LoopModule *m);

#endif
