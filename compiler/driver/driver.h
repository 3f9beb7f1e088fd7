/* driver.h — the one place that calls every stage, in order. */
#ifndef GATTNC_DRIVER_H
#define GATTNC_DRIVER_H

#include <stdint.h>

typedef enum DriverCommand { DRIVER_COMPILE, DRIVER_RUN, DRIVER_INIT, DRIVER_BENCH, DRIVER_CHECK_WEIGHTS } DriverCommand;

typedef struct DriverOptions {
  DriverCommand command;
  const char *input;   /* .gat or .ir */
  const char *output;  /* -o */
  const char *model;
  const char *weights;
  const char *inputs;
  int64_t max_seq;
  int64_t step;
  uint64_t seed;
  int opt_level;
  int dump_ast, dump_ir, interp, verify;
  int dump_loops;             /* --dump-loops: print the loop IR and stop */
  const char *embed_weights;  /* --embed-weights W: also write NAME_weights.c */
  int no_fuse, no_tile, no_pack; /* -fno-fuse, -fno-tile, -fno-pack */
  int no_fold_scales, no_prologue, no_glu; /* -fno-fold-scales, -fno-prologue, -fno-glu */
  int no_chunk;                            /* -fno-chunk */
  int no_concat, no_gate;                  /* -fno-concat, -fno-gate */
  int no_scanfuse;                         /* -fno-scanfuse */
  int no_block;                            /* -fno-block */
  long long block_rows;                    /* -fblock-rows=N (0: pass block's default) */
  int force_scanfuse;                      /* -fscanfuse: also with the LLVM backend */
  int no_memplan;             /* -fno-memplan: one arena slice per buffer */
  int no_f32_math;            /* -fno-f32-math: -O2 loop nests stay in double (no pass f32math) */
  int stats;                  /* --stats: print arena, weight, kernel and FLOP statistics and stop */
  const char *bench_plot;     /* bench --plot OUT.svg: T sweep of -O0 vs -O2 prefill time */
  const char *dump_after;     /* --dump-after=NAME: print the IR after that pass and stop */
  int gemm_target;            /* --target=native|portable|x86-64|avx2|avx512 (LoopTarget; 0 = native) */
  const char *march;          /* -march=X for the C compiler of run/bench */
  int profile;                /* --profile: time every kernel in the generated code */
  int count;                  /* --count (compile): generated code counts mixture/skip work */
  const char *count_path;     /* --count FILE (run): write the execution counters as JSON */
  const char *sets[32];       /* --set KEY[:I]=VALUE (run): skip thresholds / route capacities (ir_knobs.h) */
  int nsets;
  int64_t bench_T;            /* bench: prefill length (-T) */
  int64_t bench_decode;       /* bench: decode steps (--decode) */
  int64_t bench_reps;         /* bench: timed repetitions (--reps) */
  const char *emit;           /* --emit=c|llvm|bc|obj|asm (NULL = c); non-C kinds use the LLVM backend */
  const char *target;         /* --target TRIPLE (LLVM backend; NULL = host) */
  const char *mcpu;           /* -mcpu=CPU (LLVM backend; NULL = host CPU) */
  int jit;                    /* run --jit: compile in-process with LLVM ORC instead of cc */
  const char *backend;        /* bench --backend=c|llvm (NULL = c) */
} DriverOptions;

/* Returns the process exit status: 0 ok, 1 errors in the input, 2 usage. */
int driver_main(const DriverOptions *o);

struct IrModule;
struct Arena;
struct PassOptions;
/* driver_bench.c: `gattnc bench` on a loaded module. */
int driver_bench(const struct IrModule *m, const DriverOptions *o);
struct LoopModule;
/* driver_bench.c: operation count of a T-row prefill, from the loop IR. */
double driver_bench_flops(const struct LoopModule *lm, int64_t T);
/* driver_stats.c: `gattnc FILE --stats`. */
int driver_stats(const struct IrModule *m, const DriverOptions *o);
/* driver_plot.c: a self-contained log-log SVG line plot of n series (x[s][i], y[s][i], i < npts[s]). */
int driver_plot_svg(const char *path, const char *title, const char *xlabel, const char *ylabel, int nseries,
                    const char *const *names, const int *npts, const double *const *x, const double *const *y);
/* driver_llvm.c: the LLVM backend's commands (--emit=llvm|bc|obj|asm, bench --backend=llvm). */
int driver_llvm_compile(const struct IrModule *m, const DriverOptions *o);
int driver_llvm_bench(const struct IrModule *m, const DriverOptions *o);
/* The optimizer options the command line asked for. */
void driver_pass_options(const DriverOptions *o, struct PassOptions *po);

#endif
