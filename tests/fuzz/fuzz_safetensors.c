/* fuzz_safetensors.c — libFuzzer target: the compiler's safetensors reader
 * (compiler/interp/safetensors.c, used by `gattnc run` for weights and inputs and by
 * --embed-weights). Every input must be read or rejected with a message;
 * what is read must hold exactly the bytes its shape announces. */
#include "fuzz_common.h"
#include "tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* an exact-size heap copy so that ASan sees any read past the blob */
  unsigned char *buf = malloc(size ? size : 1);
  if (!buf) abort();
  if (size) memcpy(buf, data, size);
  TensorSet s = {0};
  char err[512];
  if (safetensors_read_mem(buf, size, &s, err, sizeof err) == 0) {
    volatile unsigned char sum = 0;
    for (int i = 0; i < s.n; i++) {
      const Tensor *t = &s.t[i];
      int64_t n = tensor_numel(t);
      if (n < 0) abort();
      /* touch the last element: the reader allocated what the shape says */
      if (n > 0) sum ^= ((const unsigned char *)t->data)[(size_t)n * 4 - 1];
    }
    (void)sum;
  } else if (err[0] == '\0') {
    fprintf(stderr, "fuzz_safetensors: rejected without a message\n");
    abort();
  }
  tensorset_free(&s);
  free(buf);
  return 0;
}
