/* fuzz_forward.c — libFuzzer target: fuzz_lm_forward / fuzz_lm_reset of a
 * compiled model (tests/fuzz/fuzz_lm.gat) driven by a hostile caller: token
 * ids outside the vocabulary, T <= 0, T beyond FUZZ_LM_MAX_T, sequences of
 * calls that run past the maximum position, NULL buffers, calls before init.
 * Buffers are heap copies of exactly the size the call may touch, so ASan
 * sees any access out of them. The status must also be the documented one:
 * GAT_ERR_SEQ_TOO_LONG for a bad T, GAT_ERR_TOKEN_RANGE for a bad token,
 * GAT_OK otherwise.
 *
 * Input: a list of calls. Byte c selects the call: c % 8 == 0 reset, 1 NULL
 * tokens, otherwise forward with T from the next byte (signed; -128 and 127
 * stand for INT32_MIN and INT32_MAX) and, when 1 <= T <= MAX_T, T token bytes
 * (signed; -128/127 = INT32_MIN/INT32_MAX). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_lm.h"

#define VOCAB 16 /* fuzz_lm.gat: const vocab */

static void *weights[FUZZ_LM_NUM_PARAMS];

/* Deterministic small weights bound through init_tensors. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  uint32_t s = 12345;
  for (int i = 0; i < FUZZ_LM_NUM_PARAMS; i++) {
    const gat_tensor_spec *p = &fuzz_lm_params[i];
    size_t n = 1;
    for (int k = 0; k < p->rank; k++) n *= (size_t)p->dims[k];
    weights[i] = aligned_alloc(64, (n * 4 + 63) / 64 * 64);
    if (!weights[i]) abort();
    for (size_t j = 0; j < n; j++) {
      s = s * 1664525u + 1013904223u;
      if (p->dtype == GAT_F32)
        ((float *)weights[i])[j] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.5f;
      else
        ((int32_t *)weights[i])[j] = (int32_t)(s >> 28);
    }
  }
  return 0;
}

static int32_t fuzz_int(int8_t b) {
  return b == -128 ? INT32_MIN : b == 127 ? INT32_MAX : (int32_t)b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static _Alignas(64) unsigned char arena[FUZZ_LM_ARENA_BYTES];
  fuzz_lm m;
  memset(&m, 0, sizeof m);
  int32_t tok0 = 0;
  float out0[VOCAB];
  if (fuzz_lm_forward(&m, &tok0, 1, out0) == GAT_OK) {
    fprintf(stderr, "fuzz_forward: forward before init succeeded\n");
    abort();
  }
  if (fuzz_lm_init_tensors(&m, arena, sizeof arena, (const void *const *)weights) != GAT_OK) {
    fprintf(stderr, "fuzz_forward: init_tensors: %s\n", fuzz_lm_message(&m));
    abort();
  }
  int64_t pos = 0;   /* what the position must be, -1 after a failed call */
  size_t i = 0;
  while (i < size) {
    uint8_t c = data[i++];
    if (c % 8 == 0) {
      if (fuzz_lm_reset(&m) != GAT_OK) abort();
      pos = 0;
      continue;
    }
    if (i >= size) break;
    int32_t T = fuzz_int((int8_t)data[i++]);
    int bad_T = T < 1 || T > FUZZ_LM_MAX_T || (pos >= 0 && pos + T > FUZZ_LM_MAX_T);
    int32_t n = (T >= 1 && T <= FUZZ_LM_MAX_T) ? T : 1;
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)n);
    float *logits = malloc(sizeof(float) * (size_t)n * VOCAB);
    if (!tokens || !logits) abort();
    int bad_tok = 0;
    for (int32_t k = 0; k < n; k++) {
      int8_t b = i < size ? (int8_t)data[i++] : 0;
      tokens[k] = fuzz_int(b);
      if (tokens[k] < 0 || tokens[k] >= VOCAB) bad_tok = 1;
    }
    int null_tokens = c % 8 == 1;
    int st = fuzz_lm_forward(&m, null_tokens ? NULL : tokens, T, logits);
    int want = null_tokens ? GAT_ERR_ARGUMENT : bad_T ? GAT_ERR_SEQ_TOO_LONG : bad_tok ? GAT_ERR_TOKEN_RANGE : GAT_OK;
    /* after a failed call the position is unspecified: only T's range is certain then */
    int unsure = pos < 0 && !null_tokens && !(T < 1 || T > FUZZ_LM_MAX_T);
    if (!unsure && st != want && !(null_tokens && st != GAT_OK)) {
      fprintf(stderr, "fuzz_forward: T=%d pos=%lld: status %d (%s), expected %d\n", (int)T, (long long)pos, st,
              fuzz_lm_message(&m), want);
      abort();
    }
    if (st == GAT_OK) {
      for (int32_t k = 0; k < n * VOCAB; k++)
        if (isnan(logits[k])) {
          fprintf(stderr, "fuzz_forward: NaN logit at %d\n", (int)k);
          abort();
        }
      pos = pos >= 0 ? pos + T : -1;
      if (pos >= 0 && fuzz_lm_position(&m) != pos) abort();
    } else if (st == GAT_ERR_SEQ_TOO_LONG && !null_tokens && fuzz_lm_position(&m) == pos) {
      /* rejected up front: nothing ran */
    } else {
      pos = -1;
    }
    free(logits);
    free(tokens);
  }
  return 0;
}
