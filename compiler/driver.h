/* driver.h — the one place that calls every stage, in order. */
#ifndef GATTNC_DRIVER_H
#define GATTNC_DRIVER_H

#include <stdint.h>

typedef enum DriverCommand { DRIVER_COMPILE, DRIVER_RUN, DRIVER_INIT } DriverCommand;

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
} DriverOptions;

/* Returns the process exit status: 0 ok, 1 errors in the input, 2 usage. */
int driver_main(const DriverOptions *o);

#endif
