/* fuzz_ir.c — libFuzzer target: the graph IR text parser (.ir files as
 * printed by --dump-ir, which the driver accepts as input) and the verifier
 * on whatever parses. A module that parses and verifies must print and parse
 * back; the second print must equal the first (the text form round-trips). */
#include "diag.h"
#include "fuzz_common.h"
#include "ir.h"

static FILE *sink;

/* Graph IR modules keep their operand lists on the heap and are never freed
 * (gattnc exits after one compile), so leak reports here would be noise. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "detect_leaks=0"; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!sink) sink = fuzz_diag_sink();
  diag_set_stream(sink);
  diag_reset();
  char *text = fuzz_text_dup(data, size);
  Arena a;
  arena_init(&a);
  IrModule *m = ir_parse(&a, "fuzz.ir", text);
  if (m && diag_error_count() == 0) {
    char err[2048];
    if (ir_verify(m, err, sizeof err) == 0) {
      char *p1 = ir_print_to_string(m);
      Arena b;
      arena_init(&b);
      diag_reset();
      IrModule *m2 = ir_parse(&b, "fuzz2.ir", p1);
      if (!m2 || diag_error_count() > 0) {
        fprintf(stderr, "fuzz_ir: a verified module's text does not parse back:\n%s\n", p1);
        abort();
      }
      char *p2 = ir_print_to_string(m2);
      if (strcmp(p1, p2) != 0) {
        fprintf(stderr, "fuzz_ir: print/parse/print differs:\n%s\n----\n%s\n", p1, p2);
        abort();
      }
      free(p2);
      arena_free(&b);
      free(p1);
    }
  }
  arena_free(&a);
  free(text);
  diag_reset();
  return 0;
}
