/* tensor.h — host tensors the compiler's tools pass around: weights and
 * inputs read from safetensors, interpreter outputs, random initial weights.
 * Data is heap-owned by the TensorSet (tensorset_free releases it). Only the
 * compiler uses this; generated code and runtime/ have their own, malloc-free
 * types. */
#ifndef GATTNC_TENSOR_H
#define GATTNC_TENSOR_H

#include <stdint.h>

#include "ir.h"

typedef struct Tensor {
  char *name;
  IrDType dtype;  /* f32 or i32 */
  int rank;
  int64_t dims[IR_MAX_RANK];
  void *data;     /* float* or int32_t*, numel elements */
} Tensor;

typedef struct TensorSet {
  int n, cap;
  Tensor *t;
} TensorSet;

int64_t tensor_numel(const Tensor *t);
/* Adds a zero-filled tensor (name copied) and returns it. */
Tensor *tensorset_add(TensorSet *s, const char *name, IrDType dt, int rank, const int64_t *dims);
Tensor *tensorset_find(const TensorSet *s, const char *name);
void tensorset_free(TensorSet *s);

/* safetensors files (safetensors.c). Reading validates everything: header
 * length, JSON, dtypes (F32, I32; F64/F16/BF16/I64 are converted on read),
 * shapes, offsets inside the file, overlapping or unsorted data, duplicate
 * names. Writing is deterministic (names in sorted order, `__metadata__`
 * omitted). Return 0, or -1 with a message in err. */
int safetensors_read(const char *path, TensorSet *out, char *err, size_t errlen);
int safetensors_read_mem(const unsigned char *buf, size_t len, TensorSet *out, char *err, size_t errlen);
int safetensors_write(const char *path, const TensorSet *s, char *err, size_t errlen);

/* Deterministic random weights for every parameter of m, following each
 * param's IrInit (weights_init.c). Same seed, same bytes, on every platform. */
void weights_init(const IrModule *m, uint64_t seed, TensorSet *out);

#endif
