/* fuzz_bind.c — libFuzzer target: the runtime's safetensors binder
 * (runtime/gat_safetensors.c) as a generated model calls it: fuzz_lm_init
 * with a hostile weights blob. Every blob must be bound or rejected with a
 * status and message; a bound model must run one token. The blob's address
 * alignment and the arena's spare room (for copying unaligned tensors) vary
 * with the input length, so both binding paths get exercised. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_lm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t shift = size & 3;                /* blob misaligned by 0..3 bytes */
  int spare = (size & 4) != 0;            /* arena with or without room for copies */
  size_t arena_len = FUZZ_LM_ARENA_BYTES + (spare ? FUZZ_LM_WEIGHTS_BYTES : 0);
  unsigned char *mem = malloc(size + shift + 1);
  void *arena = aligned_alloc(64, (arena_len + 63) / 64 * 64);
  if (!mem || !arena) abort();
  unsigned char *blob = mem + shift;
  if (size) memcpy(blob, data, size);
  /* an exact-size copy: ASan flags any read past the blob's end */
  unsigned char *exact = malloc(size ? size : 1);
  if (!exact) abort();
  if (size) memcpy(exact, data, size);

  fuzz_lm m;
  memset(&m, 0, sizeof m);
  int st = fuzz_lm_init(&m, arena, arena_len, shift ? (const void *)blob : (const void *)exact, size);
  if (st == GAT_OK) {
    int32_t tok = 1;
    float logits[16];
    st = fuzz_lm_forward(&m, &tok, 1, logits);
    if (st != GAT_OK) {
      fprintf(stderr, "fuzz_bind: bound weights but forward failed: %s\n", fuzz_lm_message(&m));
      abort();
    }
  } else if (st < 0 || st >= GAT_STATUS_COUNT_ || fuzz_lm_message(&m)[0] == '\0') {
    fprintf(stderr, "fuzz_bind: rejected with status %d and message '%s'\n", st, fuzz_lm_message(&m));
    abort();
  }
  free(exact);
  free(arena);
  free(mem);
  return 0;
}
