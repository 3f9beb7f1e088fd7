/* emit_llvm_target.c — targets and output files of the LLVM backend: the
 * target machine for the host or a `--target` triple / `-mcpu`, and writing
 * a module as textual IR, bitcode or a relocatable object (PIC, so the
 * object links into executables and shared libraries alike). */
#include <string.h>

#include <llvm-c/BitWriter.h>
#include <llvm-c/Target.h>

#include "emit_llvm.h"

int emit_llvm_init_targets(int all) {
  static int native_done, all_done;
  if (!native_done) {
    if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter()) return -1;
    native_done = 1;
  }
  if (all && !all_done) {
    LLVMInitializeAllTargetInfos();
    LLVMInitializeAllTargets();
    LLVMInitializeAllTargetMCs();
    LLVMInitializeAllAsmPrinters();
    all_done = 1;
  }
  return 0;
}

LLVMTargetMachineRef emit_llvm_target_machine(const LlvmTarget *t, char *err, size_t errlen) {
  int host = !t->triple || !*t->triple;
  if (emit_llvm_init_targets(!host) != 0) {
    snprintf(err, errlen, "LLVM: cannot initialize the native target");
    return NULL;
  }
  char *triple = host ? LLVMGetDefaultTargetTriple() : LLVMCreateMessage(t->triple);
  char *hcpu = NULL, *hfeat = NULL;
  const char *cpu = t->cpu, *feat = t->features;
  if (!cpu || !*cpu || !strcmp(cpu, "native")) {
    if (host || (cpu && !strcmp(cpu, "native"))) {
      hcpu = LLVMGetHostCPUName();
      cpu = hcpu;
      if (!feat) {
        hfeat = LLVMGetHostCPUFeatures();
        feat = hfeat;
      }
    } else {
      cpu = "generic";
    }
  }
  LLVMTargetRef target = NULL;
  char *msg = NULL;
  LLVMTargetMachineRef tm = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
    snprintf(err, errlen, "unknown --target '%s': %s", triple, msg ? msg : "");
  } else {
    tm = LLVMCreateTargetMachine(target, triple, cpu, feat ? feat : "", LLVMCodeGenLevelAggressive, LLVMRelocPIC,
                                 LLVMCodeModelDefault);
    if (!tm) snprintf(err, errlen, "LLVM cannot create a target machine for '%s' (cpu '%s')", triple, cpu);
  }
  LLVMDisposeMessage(msg);
  LLVMDisposeMessage(triple);
  LLVMDisposeMessage(hcpu);
  LLVMDisposeMessage(hfeat);
  return tm;
}

int emit_llvm_write(LLVMModuleRef mod, LLVMTargetMachineRef tm, const char *kind, const char *path, char *err,
                    size_t errlen) {
  char *msg = NULL;
  if (!strcmp(kind, "llvm")) {
    if (LLVMPrintModuleToFile(mod, path, &msg)) {
      snprintf(err, errlen, "cannot write %s: %s", path, msg ? msg : "");
      LLVMDisposeMessage(msg);
      return -1;
    }
    return 0;
  }
  if (!strcmp(kind, "bc")) {
    if (LLVMWriteBitcodeToFile(mod, path) != 0) {
      snprintf(err, errlen, "cannot write %s", path);
      return -1;
    }
    return 0;
  }
  if (!strcmp(kind, "obj") || !strcmp(kind, "asm")) {
    /* the API takes a non-const file name */
    char *p = LLVMCreateMessage(path);
    int bad = LLVMTargetMachineEmitToFile(tm, mod, p, !strcmp(kind, "obj") ? LLVMObjectFile : LLVMAssemblyFile, &msg);
    LLVMDisposeMessage(p);
    if (bad) {
      snprintf(err, errlen, "cannot write %s: %s", path, msg ? msg : "");
      LLVMDisposeMessage(msg);
      return -1;
    }
    return 0;
  }
  snprintf(err, errlen, "unknown --emit kind '%s'", kind);
  return -1;
}
