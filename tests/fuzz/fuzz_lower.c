/* fuzz_lower.c — libFuzzer target (optional: not in run.sh's default list, as
 * it needs the instrumented code generator): .gat text through the front end
 * and then the -O2 graph passes and the lowering to the loop IR, the input of
 * both backends, with the verifier after every pass. A model the front end
 * accepts may still be refused by the back end with a message; a crash,
 * sanitizer report or GAT_ASSERT is a bug. */
#include "backend.h"
#include "diag.h"
#include "frontend.h"
#include "fuzz_common.h"
#include "ir.h"
#include "pass.h"

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
      fprintf(stderr, "fuzz_lower: the front end accepted the input but its IR does not verify:\n%s\n", err);
      abort();
    }
    PassOptions po;
    pass_options_init(&po, 2);
    po.verify = 1;
    if (backend_dump_loops_opt(NULL, m, &po, err, sizeof err) != 0 && getenv("FUZZ_VERBOSE"))
      fprintf(stderr, "fuzz_lower: refused: %s\n", err);
  }
  arena_free(&a);
  free(text);
  diag_reset();
  return 0;
}
