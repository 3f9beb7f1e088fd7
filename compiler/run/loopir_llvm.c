/* loopir_llvm.c — the driver-facing entry of the LLVM backend
 * (backend_llvm.h): graph IR → optimizer pipeline → loop IR → LLVM module
 * (codegen/emit_llvm*.c) → NAME.ll / NAME.bc / NAME.o / NAME.s, plus the
 * C backend's NAME.h so the object links into a C program exactly like
 * the compiled NAME.c would. Without LLVM this file only reports that. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend_llvm.h"
#include "emit_c.h"
#include "loopir.h"

#ifdef GAT_HAVE_LLVM
#include "emit_llvm.h"

int backend_llvm_available(void) { return 1; }

int backend_emit_llvm(const IrModule *im, const char *out_path, const LlvmEmitOptions *eo, const PassOptions *po,
                      char *err, size_t errlen) {
  PassOptions opts;
  if (po)
    opts = *po;
  else
    pass_options_init(&opts, 0);
  StrBuf dir = {0}, base = {0}, ident = {0}, hpath = {0};
  const char *slash = strrchr(out_path, '/');
  const char *b = slash ? slash + 1 : out_path;
  if (slash) sb_appendn(&dir, out_path, (size_t)(slash - out_path + 1));
  const char *dot = strrchr(b, '.');
  sb_appendn(&base, b, dot && dot != b ? (size_t)(dot - b) : strlen(b));
  emit_c_model_ident(&ident, sb_cstr(&base));
  sb_printf(&hpath, "%s%s.h", sb_cstr(&dir), sb_cstr(&base));
  int rc = -1;
  Arena a;
  arena_init(&a);
  LLVMTargetMachineRef tm = NULL;
  LLVMContextRef ctx = NULL;
  LLVMModuleRef mod = NULL;
  LoopModule *m = pipeline_run(&a, im, sb_cstr(&ident), &opts, err, errlen);
  if (!m) goto done;
  LlvmTarget t = {eo->triple, eo->cpu, NULL};
  tm = emit_llvm_target_machine(&t, err, errlen);
  if (!tm) goto done;
  ctx = LLVMContextCreate();
  mod = emit_llvm_module(m, ctx, tm, err, errlen);
  if (!mod) goto done;
  if (emit_llvm_write(mod, tm, eo->kind, out_path, err, errlen) != 0) goto done;
  FILE *fh = fopen(sb_cstr(&hpath), "wb");
  if (!fh) {
    snprintf(err, errlen, "cannot write %s: %s", sb_cstr(&hpath), strerror(errno));
    goto done;
  }
  int bad = emit_c_header(fh, m) != 0;
  if (fclose(fh) != 0) bad = 1;
  if (bad) {
    snprintf(err, errlen, "write error on %s", sb_cstr(&hpath));
    goto done;
  }
  rc = 0;
done:
  if (mod) LLVMDisposeModule(mod);
  if (ctx) LLVMContextDispose(ctx);
  if (tm) LLVMDisposeTargetMachine(tm);
  arena_free(&a);
  sb_free(&dir);
  sb_free(&base);
  sb_free(&ident);
  sb_free(&hpath);
  return rc;
}

#else /* !GAT_HAVE_LLVM */

int backend_llvm_available(void) { return 0; }

int backend_emit_llvm(const IrModule *im, const char *out_path, const LlvmEmitOptions *eo, const PassOptions *po,
                      char *err, size_t errlen) {
  (void)im, (void)out_path, (void)eo, (void)po;
  snprintf(err, errlen, "this gattnc was built without the LLVM backend (cmake -DGAT_WITH_LLVM=ON, needs llvm-dev 14): "
                        "use --emit=c");
  return -1;
}

#endif
