/* interp.h — the reference interpreter of the graph IR. It defines what a
 * model means: every backend is tested against it. Arithmetic accumulates in
 * double and rounds to the value's dtype (f32) when a value is stored.
 *
 * A session holds the model's persistent state (scan states, conv tails, KV
 * caches, the position counter), so T tokens in one call and T calls of one
 * token can be compared. */
#ifndef GATTNC_INTERP_H
#define GATTNC_INTERP_H

#include "ir.h"
#include "tensor.h"

typedef struct InterpSession InterpSession;

/* Checks `weights` against the module's params (missing, unexpected, dtype,
 * shape: each a distinct message naming the tensor). NULL + err on failure. */
InterpSession *interp_new(const IrModule *m, const TensorSet *weights, char *err, size_t errlen);
/* Runs one forward call. Inputs must match the module's inputs by name, with
 * the same T for every T dimension; 1 <= T and pos + T <= max_T. Outputs are
 * added to `outputs` (which the caller frees). 0 or -1 + err. */
int interp_forward(InterpSession *s, const TensorSet *inputs, TensorSet *outputs, char *err, size_t errlen);
/* The input checks of interp_forward that do not depend on a session (names,
 * dtypes, shapes, one T, T >= 1), with its messages; *T receives T. The
 * compiled run paths call it so every backend refuses the same inputs. */
int interp_check_inputs(const IrModule *m, const TensorSet *inputs, int64_t *T, char *err, size_t errlen);
void interp_reset(InterpSession *s);
void interp_free(InterpSession *s);

#endif
