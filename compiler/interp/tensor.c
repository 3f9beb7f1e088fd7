/* tensor.c — TensorSet: the named host tensors the compiler's tools pass
 * around (weights, inputs, interpreter outputs). A set owns its names and
 * data; tensorset_free releases everything. Lookups are linear: sets hold a
 * model's parameters, a few hundred names at most. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tensor.h"

/* A file may declare an empty tensor of shape [2^32, 2^32, 0]: its byte size
 * (0) is valid, but multiplying the dims in order would overflow first. A
 * zero dim is looked for first; a non-empty tensor's count saturates
 * (readers have checked its byte size against the file, so it never does). */
int64_t tensor_numel(const Tensor *t) {
  for (int i = 0; i < t->rank; i++)
    if (t->dims[i] == 0) return 0;
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) {
    if (n > INT64_MAX / t->dims[i]) return INT64_MAX;
    n *= t->dims[i];
  }
  return n;
}

Tensor *tensorset_add(TensorSet *s, const char *name, IrDType dt, int rank, const int64_t *dims) {
  GAT_ASSERT(rank >= 0 && rank <= IR_MAX_RANK);
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 8;
    s->t = xrealloc(s->t, sizeof(Tensor) * (size_t)s->cap);
  }
  Tensor *t = &s->t[s->n++];
  memset(t, 0, sizeof *t);
  t->name = xstrdup(name);
  t->dtype = dt;
  t->rank = rank;
  for (int i = 0; i < rank; i++) {
    GAT_ASSERT(dims[i] >= 0);
    t->dims[i] = dims[i];
  }
  /* Both dtypes are 4 bytes wide. */
  t->data = xcalloc((size_t)tensor_numel(t), 4);
  return t;
}

Tensor *tensorset_find(const TensorSet *s, const char *name) {
  for (int i = 0; i < s->n; i++)
    if (strcmp(s->t[i].name, name) == 0) return &s->t[i];
  return NULL;
}

void tensorset_free(TensorSet *s) {
  for (int i = 0; i < s->n; i++) {
    free(s->t[i].name);
    free(s->t[i].data);
  }
  free(s->t);
  s->t = NULL;
  s->n = s->cap = 0;
}
