/* backend.h — what the driver calls to turn a graph-IR module into code.
 *
 * backend_emit_c lowers to the loop IR and writes NAME.c and NAME.h (NAME =
 * basename of out_c_path without ".c", made a C identifier). run_compiled
 * emits the C into a temporary directory, compiles it with the system
 * compiler (`cc -O2 -shared -fPIC`, plus the runtime sources; with
 * -fsanitize=address,undefined when gattnc itself is an ASan build), dlopens it and
 * calls the typed entry points through libffi. Both return 0, or -1 with a
 * message in err. */
#ifndef GATTNC_BACKEND_H
#define GATTNC_BACKEND_H

#include <stddef.h>
#include <stdio.h>

#include "ir.h"
#include "tensor.h"

int backend_emit_c(const IrModule *m, const char *out_c_path, char *err, size_t errlen);

/* backend_emit_c plus NAME_weights.c next to NAME.c (`--embed-weights`):
 * `weights` as constant arrays and NAME_init_embedded. Every parameter must
 * be present with its dtype and shape, and nothing else (errors name the
 * tensor). weights_name (the file, for a comment) may be NULL. */
int backend_emit_c_embedded(const IrModule *m, const char *out_c_path, const TensorSet *weights,
                            const char *weights_name, char *err, size_t errlen);

/* The loop IR text of m (`--dump-loops`). */
int backend_dump_loops(FILE *out, const IrModule *m, char *err, size_t errlen);

/* Runs m compiled: weights bound by name, inputs matched by name to
 * m->inputs (every T dim the same length), outputs added to `outputs` in
 * m->outputs order. step = tokens per forward call (0 = all at once); the
 * state carries over between calls, outputs are concatenated along T. */
int run_compiled(const IrModule *m, const TensorSet *weights, const TensorSet *inputs, int step,
                 TensorSet *outputs, char *err, size_t errlen);

/* The compiler used by run_compiled: $CC if set, else "cc". */
const char *backend_cc(void);

#endif
