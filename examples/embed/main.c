/* main.c — a C program that embeds a model compiled by gattnc.
 *
 * The build (CMakeLists.txt next to this file) runs
 *   gattnc init examples/tiny_lm.gat -o tiny_lm.safetensors --seed 1
 *   gattnc examples/tiny_lm.gat -o tiny_lm.c
 * and compiles tiny_lm.c, the runtime and this file into `embed_demo`. A
 * second executable, `embed_demo_static`, is built from the same source
 * with -DEMBED_WEIGHTS and the weights compiled in (`--embed-weights`).
 *
 * tiny_lm has a byte vocabulary (256 tokens), so the prompt's bytes are its
 * tokens. The program reads the weights with plain fopen/fread, runs the
 * prompt in one forward call (prefill), then generates tokens one call at a
 * time (decode, greedy argmax), and prints them with timings. With random
 * weights the text is gibberish; the point is the API. At the end it checks
 * that one prefill call over the whole sequence reproduces the logits the
 * token-by-token calls produced (state carried in the arena).
 *
 * usage: embed_demo [--weights W.safetensors] [--prompt TEXT] [--tokens N] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tiny_lm.h"

#define VOCAB 256

/* All the model's memory: the arena (scratch + recurrent state) is static,
 * so the model itself never allocates. */
static _Alignas(64) unsigned char arena[TINY_LM_ARENA_BYTES];
static float logits[TINY_LM_MAX_T * VOCAB];      /* outputs of one call */
static float step_logits[TINY_LM_MAX_T * VOCAB]; /* the last row of every call */
static int32_t tokens[TINY_LM_MAX_T];

#ifndef EMBED_WEIGHTS
/* The whole file in one malloc'd buffer (suitably aligned for the floats
 * inside a safetensors file). */
static void *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf = NULL;
  size_t cap = 0, n = 0;
  if (!f) return NULL;
  for (;;) {
    if (n == cap) {
      unsigned char *nb;
      cap = cap ? 2 * cap : (size_t)1 << 20;
      nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    {
      size_t got = fread(buf + n, 1, cap - n, f);
      n += got;
      if (got == 0) break;
    }
  }
  fclose(f);
  *len = n;
  return buf;
}
#endif

static int argmax(const float *row, int n) {
  int best = 0, i;
  for (i = 1; i < n; i++)
    if (row[i] > row[best]) best = i;
  return best;
}

static void print_token(int t) {
  if (t >= 32 && t < 127 && t != '\\')
    putchar(t);
  else
    printf("\\x%02x", t);
}

static double ms_since(uint64_t t0) { return (double)(gat_time_ns() - t0) / 1e6; }

int main(int argc, char **argv) {
  const char *prompt = "Hello, gated world!";
  const char *weights_path = "tiny_lm.safetensors";
  int n_new = 32, P, i, st;
  tiny_lm m;
  uint64_t t0;
  double t_prefill, t_decode, maxdiff = 0;
  int mismatches = 0;

  for (i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--weights") && i + 1 < argc)
      weights_path = argv[++i];
    else if (!strcmp(argv[i], "--prompt") && i + 1 < argc)
      prompt = argv[++i];
    else if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
      n_new = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--weights W.safetensors] [--prompt TEXT] [--tokens N]\n", argv[0]);
      return 2;
    }
  }
  if (tiny_lm_outputs[0].dims[1] != VOCAB) {
    fprintf(stderr, "this program expects a vocabulary of %d tokens\n", VOCAB);
    return 1;
  }
  P = (int)strlen(prompt);
  if (P < 1 || n_new < 1 || P + n_new > TINY_LM_MAX_T) {
    fprintf(stderr, "need 1 <= prompt bytes, 1 <= tokens, and prompt + tokens <= %d\n", TINY_LM_MAX_T);
    return 2;
  }
  for (i = 0; i < P; i++) tokens[i] = (unsigned char)prompt[i];

  /* 1. init: bind the weights, check them against the model's table */
#ifdef EMBED_WEIGHTS
  (void)weights_path;
  st = tiny_lm_init_embedded(&m, arena, sizeof arena);
  printf("weights: compiled into the program (%zu bytes)\n", (size_t)TINY_LM_WEIGHTS_BYTES);
#else
  size_t wlen = 0;
  void *blob = read_file(weights_path, &wlen);
  if (!blob) {
    fprintf(stderr, "cannot read %s\n", weights_path);
    return 1;
  }
  st = tiny_lm_init(&m, arena, sizeof arena, blob, wlen);
  printf("weights: %s (%zu bytes)\n", weights_path, wlen);
#endif
  if (st != GAT_OK) {
    fprintf(stderr, "init failed: %s: %s\n", gat_status_string(st), tiny_lm_message(&m));
    return 1;
  }
  printf("model: tiny_lm, %d parameter tensors, arena %zu bytes, max T %d\n", TINY_LM_NUM_PARAMS,
         (size_t)TINY_LM_ARENA_BYTES, TINY_LM_MAX_T);

  /* 2. prefill: the whole prompt in one call; the last row predicts the next token */
  t0 = gat_time_ns();
  st = tiny_lm_forward(&m, tokens, P, logits);
  t_prefill = ms_since(t0);
  if (st != GAT_OK) {
    fprintf(stderr, "prefill failed: %s\n", tiny_lm_message(&m));
    return 1;
  }
  memcpy(step_logits + (P - 1) * VOCAB, logits + (P - 1) * VOCAB, sizeof(float) * VOCAB);

  /* 3. decode: one token per call, greedy; the state continues from the prefill */
  t0 = gat_time_ns();
  for (i = 0; i < n_new; i++) {
    const float *last = step_logits + (P + i - 1) * VOCAB;
    tokens[P + i] = argmax(last, VOCAB);
    if (i + 1 == n_new) break; /* the last token needs no logits */
    st = tiny_lm_forward(&m, &tokens[P + i], 1, logits);
    if (st != GAT_OK) {
      fprintf(stderr, "decode failed at token %d: %s\n", i, tiny_lm_message(&m));
      return 1;
    }
    memcpy(step_logits + (P + i) * VOCAB, logits, sizeof(float) * VOCAB);
  }
  t_decode = ms_since(t0);

  printf("prompt:    \"%s\" (%d tokens)\n", prompt, P);
  printf("generated: \"");
  for (i = 0; i < n_new; i++) print_token(tokens[P + i]);
  printf("\"\ntoken ids:");
  for (i = 0; i < n_new; i++) printf(" %d", (int)tokens[P + i]);
  printf("\nprefill:   %d tokens in %.3f ms (%.0f tokens/s)\n", P, t_prefill, P / (t_prefill / 1e3 + 1e-12));
  printf("decode:    %d tokens in %.3f ms (%.0f tokens/s)\n", n_new - 1, t_decode,
         (n_new - 1) / (t_decode / 1e3 + 1e-12));

  /* 4. check: one call over prompt + generated tokens gives the same logits */
  tiny_lm_reset(&m);
  st = tiny_lm_forward(&m, tokens, P + n_new - 1, logits);
  if (st != GAT_OK) {
    fprintf(stderr, "check failed: %s\n", tiny_lm_message(&m));
    return 1;
  }
  for (i = P - 1; i < P + n_new - 1; i++) {
    int j;
    for (j = 0; j < VOCAB; j++) {
      double d = fabs((double)logits[i * VOCAB + j] - step_logits[i * VOCAB + j]);
      if (d > maxdiff) maxdiff = d;
    }
    if (argmax(logits + i * VOCAB, VOCAB) != tokens[i + 1]) mismatches++;
  }
  printf("check:     one prefill of %d tokens vs token-by-token: max |logit diff| = %.3g, %d argmax mismatches\n",
         P + n_new - 1, maxdiff, mismatches);
#ifndef EMBED_WEIGHTS
  free(blob);
#endif
  if (maxdiff > 1e-4 || mismatches) {
    printf("FAILED\n");
    return 1;
  }
  printf("ok\n");
  return 0;
}
