/* driver.h — the one place that calls every stage, in order. */
#ifndef GATTNC_DRIVER_H
#define GATTNC_DRIVER_H

#include <stdint.h>

typedef enum DriverCommand { DRIVER_COMPILE, DRIVER_RUN, DRIVER_INIT, DRIVER_BENCH } DriverCommand;

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
  const char *dump_after;     /* --dump-after=NAME: print the IR after that pass and stop */
  int profile;                /* --profile: time every kernel in the generated code */
  int64_t bench_T;            /* bench: prefill length (-T) */
  int64_t bench_decode;       /* bench: decode steps (--decode) */
  int64_t bench_reps;         /* bench: timed repetitions (--reps) */
} DriverOptions;

/* Returns the process exit status: 0 ok, 1 errors in the input, 2 usage. */
int driver_main(const DriverOptions *o);

struct IrModule;
struct Arena;
struct PassOptions;
/* driver_bench.c: `gattnc bench` on a loaded module. */
int driver_bench(const struct IrModule *m, const DriverOptions *o);
/* The optimizer options the command line asked for. */
void driver_pass_options(const DriverOptions *o, struct PassOptions *po);

#endif
