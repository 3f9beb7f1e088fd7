/* fuzz_gat.c — libFuzzer target: .gat text through the whole front end
 * (lexer, parser, imports of the embedded std library, sema, lowering to the
 * graph IR). A module the front end accepts must pass the IR verifier and
 * survive a print/parse round trip of its text form; anything else (crash,
 * sanitizer report, GAT_ASSERT, verifier failure) is a bug. */
#include "diag.h"
#include "frontend.h"
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
  FrontendOptions fo = {NULL, 0};
  IrModule *m = frontend_compile(&a, "fuzz.gat", text, &fo);
  if (m && diag_error_count() == 0) {
    char err[2048];
    if (ir_verify(m, err, sizeof err) != 0) {
      fprintf(stderr, "fuzz_gat: the front end accepted the input but its IR does not verify:\n%s\n", err);
      abort();
    }
    char *printed = ir_print_to_string(m);
    Arena b;
    arena_init(&b);
    diag_reset();
    IrModule *back = ir_parse(&b, "fuzz.ir", printed);
    if (!back || diag_error_count() > 0) {
      fprintf(stderr, "fuzz_gat: the printed IR does not parse back:\n%s\n", printed);
      abort();
    }
    arena_free(&b);
    free(printed);
  }
  arena_free(&a);
  free(text);
  diag_reset();
  return 0;
}
