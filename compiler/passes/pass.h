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
  int f32_math;           /* -O2 pass f32math: short all-f32 loop nests in float (on by default; tests clear it) */
  int fold_scales;        /* static scales / RMSNorm weights folded into packed weights (-fno-fold-scales) */
  int prologue;           /* RMSNorm as a GEMM row scale, never materialised (-fno-prologue) */
  int glu;                /* GLU product of two GEMMs as one GEMM (-fno-glu) */
  int chunk;              /* -O2 pass chunk: chunked prefill of GLA / delta-rule scans (-fno-chunk) */
  int concat;             /* -O2 pass concat: GEMMs on the same input as one segmented GEMM (-fno-concat) */
  int gate;               /* -O2 pass gate: y * act(GEMM) as the GEMM's epilogue (-fno-gate) */
  int scanfuse;           /* -O2 pass scanfuse: scan state update + output sum in one sweep (-fno-scanfuse) */
  int block;              /* -O2 pass block: GEMM row/column blocks as LK_TILE loops (-fno-block) */
  int64_t block_rows;     /* pass block's row step (-fblock-rows=N, a multiple of LOOP_BLOCK_M); 0: 768 */
  int memplan;            /* liveness-based arena planning, -O1+ (-fno-memplan clears; memplan.c) */
  int verify;             /* verify after every pass (on by default; tests and debug) */
  int profile;            /* generated code times every top-level kernel (--profile) */
  int count;              /* generated code counts mixture/skip region rows (--count, NAME_count_*) */
  const char *count_path; /* run_compiled_opt: write those counters as JSON here (run --count FILE) */
  const char *const *knob_sets; /* run_compiled_opt: `--set KEY[:I]=V` values given to the model's
                                   NAME_set_skip_threshold / NAME_set_route_capacity after init */
  int nknob_sets;
  const char *dump_after; /* print the IR after this pass to dump_out, or NULL */
  int target;             /* LoopTarget of the emitted GEMM kernels (--target; 0 = native) */
  const char *march;      /* -march=X given to the C compiler by run/bench, or NULL (backend_cflags) */
  const char *llvm_cpu;   /* -mcpu=CPU of `run --jit` / `run --backend=llvm` (host CPU when NULL) */
  int run_obj;            /* run_compiled_opt: link the LLVM backend's object (--emit=obj) instead of
                             compiling the generated C (`run --backend=llvm`; loopir_run.c) */
  FILE *dump_out;         /* NULL = stdout */
} PassOptions;

/* Defaults of a level: every pass the level has switched on, verify on. */
void pass_options_init(PassOptions *o, int opt_level);

/* ---- graph passes (IrModule, in place) ---- */
void pass_dce(IrModule *m, const PassOptions *o);
void pass_cse(IrModule *m, const PassOptions *o);

/* ---- loop passes (LoopModule, in place) ---- */
void pass_gemm(LoopModule *m, const PassOptions *o);
void pass_attention(LoopModule *m, const PassOptions *o);
void pass_epilogue(LoopModule *m, const PassOptions *o);
void pass_fuse(LoopModule *m, const PassOptions *o);
void pass_scalefold(LoopModule *m, const PassOptions *o);
void pass_prologue(LoopModule *m, const PassOptions *o);
void pass_glu(LoopModule *m, const PassOptions *o);
void pass_chunk(LoopModule *m, const PassOptions *o);
void pass_gate(LoopModule *m, const PassOptions *o);
void pass_concat(LoopModule *m, const PassOptions *o);
void pass_interchange(LoopModule *m, const PassOptions *o);
void pass_scan_inplace(LoopModule *m, const PassOptions *o);
void pass_licm(LoopModule *m, const PassOptions *o);
void pass_f32math(LoopModule *m, const PassOptions *o);
void pass_scanfuse(LoopModule *m, const PassOptions *o);
/* block.c: blocking loops (LK_TILE) around micro-kernel calls; runs after memplan. */
void pass_block(LoopModule *m, const PassOptions *o);
/* memplan.c: arena offsets by liveness (replaces loop_module_layout's one slice per buffer). */
void pass_memplan(LoopModule *m, const PassOptions *o);
/* Live interval [first[b], last[b]] of every buffer over kernel positions (pre-order over all
 * depths; a use inside an LK_SCAN body covers the whole outermost scan); -1 if unused.
 * Returns the number of positions. */
int memplan_liveness(const LoopModule *m, int *first, int *last);
/* Largest sum of aligned sizes of live non-persistent scratch buffers at any position. */
int64_t memplan_live_peak(const LoopModule *m, const int *first, const int *last, int npos);
/* State + persistent bytes + memplan_live_peak: no layout of this liveness can be smaller. */
int64_t memplan_lower_bound(const LoopModule *m);
/* Bytes a buffer takes in the arena (64-byte aligned; empty buffers keep a token slot). */
int64_t memplan_buf_size(const LoopBuf *b);

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
/* reads[b] = loop_buf_reads(m, b) for every buffer b < m->bufs.len, in one walk. */
void loop_buf_reads_all(const LoopModule *m, int *reads);
/* writes[b] = loop_buf_writes(m, b) for every buffer b, in one walk. */
void loop_buf_writes_all(const LoopModule *m, int *writes);
/* Number of places kernel k (and its regions) reads `buf`, as loop_buf_reads counts them. */
int loop_kernel_reads(const LoopKernel *k, int buf);
/* Calls fn on every kernel of the module, region kernels after their control kernel. */
void loop_walk_kernels(LoopModule *m, void (*fn)(LoopModule *, LoopKernel *, void *), void *ctx);
/* Number of kernels that write `buf` as their `out`. */
int loop_buf_writes(const LoopModule *m, int buf);
/* 1 if kernel k writes buffer buf in any way (out, state updates, caches). */
int loop_kernel_writes(const LoopKernel *k, int buf);
/* Structural checks of the loop IR; 0 or -1 with a message. */
int loop_verify(const LoopModule *m, char *err, size_t errlen);

#endif
