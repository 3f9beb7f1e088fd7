/* pass.h — the optimizer: options, the passes and the pipeline that runs them.
 *
 * Graph passes rewrite the graph IR (IrModule) in place; loop passes rewrite
 * the loop IR after lowering. Every pass has one file in compiler/passes/
 * and an entry `void pass_NAME(Module *m, const PassOptions *o)`; the list of
 * passes, in order, lives in one place: pipeline.c. Pass names are the keys
 * of `--dump-after=NAME`. After every pass the pipeline runs the verifier of
 * the IR it works on (ir_verify / loop_verify) when o->verify is set.
 *
 * Levels: -O0 runs no optimizing pass (one plain loop nest per op, double
 * accumulation, exactly the code of the plain lowering); -O1 adds graph
 * clean-up (dce, cse) and elementwise loop fusion; -O2 adds the tiled,
 * register-blocked GEMM micro-kernel with weights packed at init and GEMM
 * epilogue fusion. -fno-fuse / -fno-tile / -fno-pack switch single passes
 * off so that each effect can be measured on its own. */
#ifndef GATTNC_PASS_H
#define GATTNC_PASS_H

#include <stdio.h>

#include "ir.h"
#include "loopir.h"

typedef struct PassOptions {
  int opt_level;          /* 0, 1, 2 */
  int fuse;               /* elementwise + epilogue fusion (-fno-fuse clears) */
  int tile;               /* GEMM micro-kernel with register and cache tiling (-fno-tile clears) */
  int pack;               /* weights packed at init into the micro-kernel layout (-fno-pack clears) */
  int verify;             /* verify after every pass (on by default; tests and debug) */
  int profile;            /* generated code times every top-level kernel (--profile) */
  const char *dump_after; /* print the IR after this pass to dump_out, or NULL */
  FILE *dump_out;         /* NULL = stdout */
} PassOptions;

/* Defaults of a level: every pass the level has switched on, verify on. */
void pass_options_init(PassOptions *o, int opt_level);

/* ---- graph passes (IrModule, in place) ---- */
void pass_dce(IrModule *m, const PassOptions *o);
void pass_cse(IrModule *m, const PassOptions *o);

/* ---- loop passes (LoopModule, in place) ---- */
void pass_gemm(LoopModule *m, const PassOptions *o);
void pass_epilogue(LoopModule *m, const PassOptions *o);
void pass_fuse(LoopModule *m, const PassOptions *o);

/* ---- the pipeline (pipeline.c) ---- */
/* Clones im (graph passes never touch the caller's module), runs the graph
 * passes of o's level, lowers, runs the loop passes and lays out the arena.
 * NULL + err on failure (lowering error, a verifier failure after a pass, an
 * unknown --dump-after name). */
LoopModule *pipeline_run(Arena *a, const IrModule *im, const char *c_name, const PassOptions *o, char *err,
                         size_t errlen);
/* The pass names in pipeline order ("dce", "cse", "lower", "gemm", ...), NULL-terminated. */
const char *const *pipeline_pass_names(void);
int pipeline_has_pass(const char *name);

/* ---- loop IR helpers shared by the loop passes (loop_util.c) ---- */
/* Number of places that read buffer `buf` (loads, call/copy arguments, region
 * bindings, scan results, ...), over the whole module. */
int loop_buf_reads(const LoopModule *m, int buf);
/* Number of kernels that write `buf` as their `out`. */
int loop_buf_writes(const LoopModule *m, int buf);
/* 1 if kernel k writes buffer buf in any way (out, state updates, caches). */
int loop_kernel_writes(const LoopKernel *k, int buf);
/* Structural checks of the loop IR; 0 or -1 with a message. */
int loop_verify(const LoopModule *m, char *err, size_t errlen);

#endif
