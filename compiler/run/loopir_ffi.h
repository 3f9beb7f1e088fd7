/* loopir_ffi.h — the calling harness both compiled paths of `gattnc run`
 * share: run_compiled_opt (loopir_run.c, the generated C built and dlopened)
 * and run_jit_opt (loopir_jit.c, the LLVM JIT). Both hand over the same
 * typed entry points (NAME_sizeof, NAME_arena_bytes, NAME_init,
 * NAME_message, NAME_forward); this module matches the inputs to the
 * module's signature, passes the weights as an in-memory safetensors blob,
 * and calls forward through libffi as (model, inputs..., int32 T,
 * outputs...), chunk by chunk, with the state carried between chunks. */
#ifndef GATTNC_LOOPIR_FFI_H
#define GATTNC_LOOPIR_FFI_H

#include <stddef.h>
#include <stdint.h>

#include "ir.h"
#include "tensor.h"

/* A compiled model: its entry points (filled in by the caller: dlsym, or
 * the JIT's lookup) and, once loopir_ffi_call has run, its state. */
typedef struct LoopirFfiModel {
  size_t (*f_size)(void);
  size_t (*f_arena)(void);
  int (*f_init)(void *model, void *arena, size_t arena_bytes, const void *blob, size_t blob_len);
  const char *(*f_msg)(const void *model);
  void *f_forward;
  /* optional: called once after init, before the first forward (run --set: the
     model's run-time skip knobs); nonzero fails the call with err set */
  int (*after_init)(void *model, void *ud, char *err, size_t errlen);
  void *after_init_ud;
  /* owned; kept after the call so the caller can read the model's counters */
  void *model, *arena;
  unsigned char *blob; /* the weights blob: the model may bind into it */
} LoopirFfiModel;

/* Matches `inputs` by name to m->inputs into in_t[0..m->inputs.len) and
 * finds the one T all T dims share (1 when no input has one). Returns 0, or
 * -1 with the user-facing message in err. */
int loopir_ffi_bind_inputs(const IrModule *m, const TensorSet *inputs, const Tensor **in_t, int64_t *T, char *err,
                           size_t errlen);

/* A safetensors blob of every tensor in s (header padded to 8 bytes);
 * xmalloc'ed, *len its length. */
unsigned char *loopir_ffi_weights_blob(const TensorSet *s, size_t *len);

/* Initializes fm's model with `weights`, adds m's outputs (T rows long) to
 * `outputs`, and calls forward `step` tokens at a time (0 = all T at once),
 * copying each chunk's outputs into place. Returns 0, or -1 with err set
 * (the model's own message when init or forward fails). */
int loopir_ffi_call(LoopirFfiModel *fm, const IrModule *m, const TensorSet *weights, const Tensor **in_t, int64_t T,
                    int step, TensorSet *outputs, char *err, size_t errlen);

/* run --count FILE: writes the counters of a --count build (NAME_count_*,
 * codegen/c/emit_count.h) of `model` to path as JSON, in the format of the
 * interpreter's GAT_INTERP_COUNT plus the calls of every region. sym(ud,
 * "NAME_count_ops") finds the entry points (dlsym, or the JIT's lookup; NULL
 * when missing). Returns 0, or -1 with err set. */
int loopir_ffi_write_counts(void *(*sym)(void *ud, const char *name), void *ud, const char *name, const void *model,
                            const char *path, char *err, size_t errlen);

/* Frees what loopir_ffi_call allocated in fm (safe on a zeroed fm). */
void loopir_ffi_release(LoopirFfiModel *fm);

#endif
