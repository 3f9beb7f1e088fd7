/* driver_bench.h — the pieces both benchmark commands share: `gattnc
 * bench` (driver_bench.c, -O0 against -O2 of the C backend) and `gattnc
 * bench --backend=llvm` (driver_llvm.c, the C backend against the LLVM
 * one). Both write weights and random inputs into a temporary directory,
 * generate a small timing program (bench_main.c) around the compiled model,
 * run it, and read its prefill outputs back to check the builds agree; the
 * helpers here are the parts of that which do not depend on what is being
 * compared. */
#ifndef GATTNC_DRIVER_BENCH_H
#define GATTNC_DRIVER_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "driver.h"
#include "ir.h"
#include "tensor.h"
#include "util.h"

/* Writes n bytes to path. Returns 0, or -1. */
int bench_write_raw(const char *path, const void *data, size_t n);

/* The weights: o->weights read into w (0), or `gattnc init` weights with
 * o->seed when no file is given; a read error is reported on stderr (-1). */
int bench_weights_load(const IrModule *m, const DriverOptions *o, TensorSet *w);

/* Random inputs of `rows` tokens added to `in` and written raw to
 * DIR/inI.bin: i32 token ids below the smallest gather table, f32 uniform
 * in [-1, 1), from a xorshift stream seeded by `seed`. Returns 0, or -1
 * with err set. */
int bench_inputs_write(const IrModule *m, const char *dir, int64_t rows, uint64_t seed, TensorSet *in, char *err,
                       size_t errlen);

/* The text of two forward calls of model `name` in the timing program: all
 * T tokens at once (`call`: NAME_forward(m, in0, ..., (int32_t)T, out0, ...))
 * and the token at step s (`call1`: inputs offset by s rows, T = 1). */
void bench_forward_calls(const IrModule *m, const char *name, StrBuf *call, StrBuf *call1);

/* Timing-program statements writing each output outI (T rows if it has a T
 * dim) to argv[2 + nin + I]. */
void bench_output_writes(StrBuf *h, const IrModule *m);

/* Reads DIR/outI.bin, as the timing program wrote them, into `out` (T rows).
 * Returns 0, or -1 with err set. */
int bench_outputs_read(const IrModule *m, const char *dir, int64_t T, TensorSet *out, char *err, size_t errlen);

/* max |a - b| / max |b| over all outputs (INFINITY if any difference is NaN). */
double bench_max_rel_diff(const TensorSet *a, const TensorSet *b);

/* Compiles DIR/bench_main.c with DIR/model_file (the model's .c or .o) and
 * the runtime into DIR/bench (`cc -std=c11 cflags ...`, log in DIR/cc.log)
 * and starts it on wpath, DIR/../inI.bin and DIR/outI.bin; returns its
 * stdout to read (pclose it), or NULL with err set. */
FILE *bench_build_start(const IrModule *m, const char *dir, const char *cflags, const char *model_file,
                        const char *wpath, char *err, size_t errlen);

/* rm -rf dir, unless GAT_KEEP_TMP is set. */
void bench_tmpdir_remove(const char *dir);

#endif
