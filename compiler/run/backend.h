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
#include "pass.h"
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

/* The same entry points with optimizer options (compiler/passes/pass.h):
 * level, -fno-* switches, --dump-after, --profile. The functions above are
 * these at -O0 (the plain lowering). po may be NULL (= -O0). run_compiled_opt
 * compiles the generated C with backend_cflags(po). */
int backend_emit_c_opt(const IrModule *m, const char *out_c_path, const PassOptions *po, char *err, size_t errlen);
int backend_emit_c_embedded_opt(const IrModule *m, const char *out_c_path, const TensorSet *weights,
                                const char *weights_name, const PassOptions *po, char *err, size_t errlen);
int backend_dump_loops_opt(FILE *out, const IrModule *m, const PassOptions *po, char *err, size_t errlen);
int run_compiled_opt(const IrModule *m, const TensorSet *weights, const TensorSet *inputs, int step,
                     const PassOptions *po, TensorSet *outputs, char *err, size_t errlen);
/* Flags run_compiled_opt and `gattnc bench` give the C compiler for level
 * po->opt_level: "-O2" at -O0 (the plain code as before), "-O3 -march=native"
 * at -O1/-O2 (the micro-kernels pick their vector width from the target). */
const char *backend_cflags(const PassOptions *po);

/* The compiler used by run_compiled: $CC if set, else "cc". */
const char *backend_cc(void);

#endif
