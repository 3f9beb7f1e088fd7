/* fuzz_common.h — what every libFuzzer target of tests/fuzz shares: the input
 * as a NUL-terminated string (the parsers take C strings) and a sink for the
 * compiler's diagnostics, which would otherwise flood the fuzzer's output. */
#ifndef GAT_FUZZ_COMMON_H
#define GAT_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The parsers stop at the first NUL, as the driver refuses files holding one;
 * a copy keeps ASan able to see reads past the end of the text. */
static inline char *fuzz_text_dup(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s) abort();
  memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

/* Diagnostics go to /dev/null unless FUZZ_VERBOSE is set (to see why an input is rejected). */
static inline FILE *fuzz_diag_sink(void) {
  if (getenv("FUZZ_VERBOSE")) return stderr;
  FILE *f = fopen("/dev/null", "w");
  if (!f) abort();
  return f;
}

#endif
