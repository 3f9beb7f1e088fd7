/* main.c — the gattnc command line. Parses options into a DriverOptions and
 * hands over to driver.c, which runs the pipeline in order. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "gat_limits.h"
#include "loopir.h" /* LOOP_BLOCK_M: -fblock-rows */

/* --target=NAME of the C backend's GEMM kernels: the LoopTarget number
 * (loopir.h), or -1 when NAME is not one (then it is an LLVM target triple). */
static int gemm_target_of(const char *t) {
  static const char *const names[] = {"native", "portable", "x86-64", "avx2", "avx512"};
  for (int i = 0; i < 5; i++)
    if (!strcmp(t, names[i])) return i;
  return -1;
}

/* The compiler's walks over syntax trees, IR expressions and layer calls
 * recurse as deep as the program nests (docs/language.md, "Nesting depth":
 * the parser and sema bound it), so the pipeline runs on a thread with a
 * large stack; the pages are only committed as they are used. */
enum { MAIN_STACK_BYTES = 1024 * 1024 * 1024 };

typedef struct MainJob {
  DriverOptions *o;
  int rc;
} MainJob;

static void *main_thread_run(void *arg) {
  MainJob *j = arg;
  j->rc = driver_main(j->o);
  return NULL;
}

static int main_run_big_stack(DriverOptions *o) {
  MainJob j = {o, 1};
  pthread_attr_t at;
  pthread_t th;
  if (pthread_attr_init(&at) == 0) {
    int ok = pthread_attr_setstacksize(&at, MAIN_STACK_BYTES) == 0 && pthread_create(&th, &at, main_thread_run, &j) == 0;
    pthread_attr_destroy(&at);
    if (ok) {
      pthread_join(th, NULL);
      return j.rc;
    }
  }
  return driver_main(o); /* no thread (address space limits): the ordinary stack */
}

static void usage(FILE *f) {
  fputs(
      "usage: gattnc FILE.gat [-o NAME.c] [options]     compile a model to C (NAME.c + NAME.h)\n"
      "       gattnc FILE.gat -o NAME.c --embed-weights W.safetensors   ... + NAME_weights.c\n"
      "       gattnc FILE.gat --dump-ir | --dump-loops  print the graph IR / the loop IR\n"
      "       gattnc run FILE --interp --weights W.safetensors --inputs IN.safetensors -o OUT.safetensors\n"
      "       gattnc run FILE --weights W --inputs IN -o OUT   (compiled C, through libffi)\n"
      "       gattnc init FILE -o W.safetensors [--seed N]\n"
      "       gattnc check-weights FILE W.safetensors      W fits FILE and holds no NaN/Inf (prints ok)\n"
      "       gattnc bench FILE [--weights W] [-T 512] [--decode 128] [--reps 5]   -O0 vs -O2, per kernel\n"
      "\n"
      "FILE is a .gat model, or graph IR text (.ir) as printed by --dump-ir.\n"
      "options:\n"
      "  -o PATH            output file\n"
      "  --dump-ast         print the syntax tree and stop\n"
      "  --dump-ir          print the graph IR and stop\n"
      "  --dump-loops       print the loop IR (what the C backend emits from) and stop\n"
      "  --embed-weights W  also write NAME_weights.c: the weights W.safetensors as constant\n"
      "                     arrays, bound by NAME_init_embedded (no file system needed)\n"
      "  --model NAME       which model of the file to compile (default: the last one)\n"
      "  --max-seq N        the largest T the compiled model accepts (overrides `max T = N`)\n"
      "  --interp           (run) use the reference interpreter\n"
      "  --weights PATH     (run) weights; default: `gattnc init` weights with --seed\n"
      "  --inputs PATH      (run) inputs, one tensor per model input\n"
      "  --step K           (run) feed the inputs K tokens per call (1 = decode token by token);\n"
      "                     outputs are concatenated along T\n"
      "  --seed N           (init, run) seed of the random weights (default 0)\n"
      "  --no-verify        skip verifying the compiler's own IR (input .ir files are always verified)\n"
      "  -O0 -O1 -O2        optimisation level (default -O2; docs/optimizer.md): -O0 one plain\n"
      "                     loop nest per op, -O1 + dce/cse/elementwise fusion, -O2 + GEMM\n"
      "                     micro-kernel, weights packed at init, GEMM epilogue fusion\n"
      "  -fno-fuse -fno-tile -fno-pack   switch single optimizations off\n"
      "  -fno-fold-scales -fno-prologue -fno-glu   (also -O2 passes; docs/optimizer.md)\n"
      "  -fno-chunk         GLA / DeltaNet scans token by token in prefill too (no chunked kernel)\n"
      "  -fno-concat        no segmented GEMM over projections of the same input (pass concat)\n"
      "  -fno-gate          y * sigmoid(x W) not as a GEMM epilogue (pass gate)\n"
      "  -fno-scanfuse      scan state update and output sum as separate sweeps (pass scanfuse)\n"
      "  -fscanfuse         pass scanfuse with the LLVM backend too (off there by default)\n"
      "  -fno-block         GEMMs as one call each, no row/column blocking loops (pass block)\n"
      "  -fblock-rows=N     pass block's row blocks: N rows (a multiple of 96; default 768)\n"
      "  --target=T         GEMM kernels for T: native (default), portable, x86-64, avx2, avx512\n"
      "  -march=X           C compiler -march for run/bench (default from --target, else native)\n"
      "  -fno-memplan       one arena slice per buffer (no liveness-based sharing; -O1+)\n"
      "  -fno-f32-math      -O2 loop nests in double, sequential sums (no pass f32math)\n"
      "  --stats            print arena bytes (state, scratch, persistent) against the liveness\n"
      "                     lower bound, weight bytes, kernels per kind and FLOPs (-T N) and stop\n"
      "  --plot OUT.svg     (bench) also sweep T = 64, 128, ... and plot -O0 vs -O2 prefill time\n"
      "  --dump-after=NAME  print the IR after pass NAME (dce, cse, dce2, lower, gemm, epilogue,\n"
      "                     fuse, layout, memplan, ...) and stop\n"
      "  --profile          generated code times each kernel (NAME_profile_*)\n"
      "  --emit=KIND        c (default), or with the LLVM backend: llvm (NAME.ll), bc, obj (NAME.o),\n"
      "                     asm; NAME.h is written next to it as for C\n"
      "  --target TRIPLE    (LLVM) target triple, default the host; -mcpu=CPU its CPU (default host,\n"
      "                     also for run --jit)\n"
      "  --jit              (run) compile in-process with LLVM ORC instead of the C compiler\n"
      "  --backend=c|llvm   (bench) llvm: compare the C build with the LLVM object and JIT;\n"
      "                     (run) llvm: run the LLVM object (--emit=obj, linked by cc) instead of C\n"
      "  --count            generated code counts the rows and calls of every mixture expert\n"
      "                     and skip region (NAME_count_*; docs/layers.md)\n"
      "  --count FILE       (run) write those counters as JSON (interpreter, compiled C or --jit)\n"
      "  --set KEY[:I]=V    (run) run-time skip threshold / route capacity: KEY threshold or\n"
      "                     capacity, I the skip/route statement (default all; docs/layers.md)\n"
      "  --version, --help\n",
      f);
}

static int need_arg(int argc, char **argv, int i) {
  if (i + 1 >= argc) {
    fprintf(stderr, "gattnc: error: option '%s' needs a value\n", argv[i]);
    return 0;
  }
  return 1;
}

static int parse_int(const char *opt, const char *s, long long *out) {
  char *end;
  long long v = strtoll(s, &end, 10);
  if (!*s || *end) {
    fprintf(stderr, "gattnc: error: option '%s' expects an integer, got '%s'\n", opt, s);
    return 0;
  }
  *out = v;
  return 1;
}

/* What main does after one argument: go on with the next, or exit with a status. */
enum { MAIN_ARG_NEXT = -1 };

/* The subcommand in argv[1], if any; returns the index of the first option. */
static int main_parse_command(int argc, char **argv, DriverOptions *o) {
  static const struct {
    const char *name;
    DriverCommand command;
  } cmds[] = {{"run", DRIVER_RUN}, {"init", DRIVER_INIT}, {"check-weights", DRIVER_CHECK_WEIGHTS}, {"bench", DRIVER_BENCH}};
  o->command = DRIVER_COMPILE;
  for (size_t c = 0; argc > 1 && c < sizeof cmds / sizeof cmds[0]; c++)
    if (strcmp(argv[1], cmds[c].name) == 0) {
      o->command = cmds[c].command;
      return 2;
    }
  return 1;
}

/* Options without a value that switch one setting; returns 0 when a is none of them. */
static int main_parse_flag(DriverOptions *o, const char *a) {
  if (!strcmp(a, "--dump-ast")) o->dump_ast = 1;
  else if (!strcmp(a, "--dump-ir")) o->dump_ir = 1;
  else if (!strcmp(a, "--dump-loops")) o->dump_loops = 1;
  else if (!strcmp(a, "--interp")) o->interp = 1;
  else if (!strcmp(a, "--no-verify")) o->verify = 0;
  else if (!strcmp(a, "-fno-fuse")) o->no_fuse = 1;
  else if (!strcmp(a, "-fno-tile")) o->no_tile = 1;
  else if (!strcmp(a, "-fno-pack")) o->no_pack = 1;
  else if (!strcmp(a, "-fno-fold-scales")) o->no_fold_scales = 1;
  else if (!strcmp(a, "-fno-prologue")) o->no_prologue = 1;
  else if (!strcmp(a, "-fno-glu")) o->no_glu = 1;
  else if (!strcmp(a, "-fno-chunk")) o->no_chunk = 1;
  else if (!strcmp(a, "-fno-concat")) o->no_concat = 1;
  else if (!strcmp(a, "-fno-gate")) o->no_gate = 1;
  else if (!strcmp(a, "-fno-scanfuse")) o->no_scanfuse = 1;
  else if (!strcmp(a, "-fscanfuse")) o->force_scanfuse = 1;
  else if (!strcmp(a, "-fno-block")) o->no_block = 1;
  else if (!strcmp(a, "-fno-memplan")) o->no_memplan = 1;
  else if (!strcmp(a, "-fno-f32-math")) o->no_f32_math = 1;
  else if (!strcmp(a, "--stats")) o->stats = 1;
  else if (!strcmp(a, "--profile")) o->profile = 1;
  else if (!strcmp(a, "--jit")) o->jit = 1;
  else if (!strcmp(a, "-O0") || !strcmp(a, "-O1") || !strcmp(a, "-O2")) o->opt_level = a[2] - '0';
  else return 0;
  return 1;
}

/* Options with an integer value (argv[*i + 1], consumed): MAIN_ARG_NEXT, 2 on an error,
   or 0 when argv[*i] is none of them. */
static int main_parse_int_option(DriverOptions *o, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  long long v;
  if (strcmp(a, "--max-seq") && strcmp(a, "--step") && strcmp(a, "--seed") && strcmp(a, "-T") &&
      strcmp(a, "--decode") && strcmp(a, "--reps"))
    return 0;
  if (!need_arg(argc, argv, *i) || !parse_int(a, argv[*i + 1], &v)) return 2;
  if (!strcmp(a, "--max-seq")) {
    if (v < 1 || v > GAT_LIMIT_MAX_T) {
      fprintf(stderr, "gattnc: error: --max-seq must be in 1..%lld\n", (long long)GAT_LIMIT_MAX_T);
      return 2;
    }
    o->max_seq = v;
  } else if (!strcmp(a, "--step")) {
    if (v < 0) {
      fprintf(stderr, "gattnc: error: --step must not be negative\n");
      return 2;
    }
    o->step = v;
  } else if (!strcmp(a, "--seed")) {
    o->seed = (uint64_t)v;
  } else { /* -T, --decode, --reps (bench) */
    if (v < 0 || (v < 1 && a[1] == 'T')) {
      fprintf(stderr, "gattnc: error: '%s' must be positive\n", a);
      return 2;
    }
    if (a[1] == 'T') o->bench_T = v;
    else if (a[2] == 'd') o->bench_decode = v;
    else o->bench_reps = v > 0 ? v : 1;
  }
  (*i)++;
  return MAIN_ARG_NEXT;
}

/* Options with a string value (the next argument, or after '=' in the same one):
   MAIN_ARG_NEXT, 2 on an error, or 0 when argv[*i] is none of them. */
static int main_parse_str_option(DriverOptions *o, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  const char **dst = !strcmp(a, "-o")              ? &o->output
                     : !strcmp(a, "--embed-weights") ? &o->embed_weights
                     : !strcmp(a, "--model")         ? &o->model
                     : !strcmp(a, "--weights")       ? &o->weights
                     : !strcmp(a, "--inputs")        ? &o->inputs
                     : !strcmp(a, "--plot")          ? &o->bench_plot
                     : !strcmp(a, "--dump-after")    ? &o->dump_after
                                                     : NULL;
  if (dst) {
    if (!need_arg(argc, argv, *i)) return 2;
    *dst = argv[++*i];
    return MAIN_ARG_NEXT;
  }
  if (!strncmp(a, "--dump-after=", 13)) {
    o->dump_after = a + 13;
  } else if (!strcmp(a, "--set")) {
    if (!need_arg(argc, argv, *i)) return 2;
    if (o->nsets >= 32) {
      fprintf(stderr, "gattnc: error: at most 32 --set options\n");
      return 2;
    }
    o->sets[o->nsets++] = argv[++*i];
  } else if (!strcmp(a, "--count")) {
    /* compile: a flag; run: the JSON file the counters go to */
    if (o->command == DRIVER_RUN) {
      if (!need_arg(argc, argv, *i)) return 2;
      o->count_path = argv[++*i];
    } else {
      o->count = 1;
    }
  } else {
    return 0;
  }
  return MAIN_ARG_NEXT;
}

/* Backend and target options (--target, -march, --emit, -mcpu, --backend): MAIN_ARG_NEXT,
   2 on an error, or 0 when argv[*i] is none of them. */
static int main_parse_backend_option(DriverOptions *o, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  if (!strncmp(a, "--target=", 9) && gemm_target_of(a + 9) >= 0) { /* C backend GEMM target */
    o->gemm_target = gemm_target_of(a + 9);
  } else if (!strncmp(a, "-march=", 7)) {
    o->march = a + 7;
  } else if (!strncmp(a, "-fblock-rows=", 13)) { /* pass block's row step */
    long long v;
    if (!parse_int("-fblock-rows", a + 13, &v)) return 2;
    if (v < LOOP_BLOCK_M || v > (1 << 20) || v % LOOP_BLOCK_M) {
      fprintf(stderr, "gattnc: error: -fblock-rows must be a multiple of %d in %d..%d, not %lld\n", LOOP_BLOCK_M,
              LOOP_BLOCK_M, 1 << 20, v);
      return 2;
    }
    o->block_rows = v;
  } else if (!strncmp(a, "--emit=", 7)) { /* LLVM backend options (driver_llvm.c) */
    o->emit = a + 7;
    if (strcmp(o->emit, "c") && strcmp(o->emit, "llvm") && strcmp(o->emit, "bc") && strcmp(o->emit, "obj") &&
        strcmp(o->emit, "asm")) {
      fprintf(stderr, "gattnc: error: --emit must be c, llvm, bc, obj or asm, not '%s'\n", o->emit);
      return 2;
    }
  } else if (!strcmp(a, "--target") || !strncmp(a, "--target=", 9)) {
    if (a[8] != '=' && !need_arg(argc, argv, *i)) return 2;
    o->target = a[8] == '=' ? a + 9 : argv[++*i];
  } else if (!strncmp(a, "-mcpu=", 6)) {
    o->mcpu = a + 6;
  } else if (!strncmp(a, "--backend=", 10)) {
    o->backend = a + 10;
    if (strcmp(o->backend, "c") && strcmp(o->backend, "llvm")) {
      fprintf(stderr, "gattnc: error: --backend must be c or llvm, not '%s'\n", o->backend);
      return 2;
    }
  } else {
    return 0;
  }
  return MAIN_ARG_NEXT;
}

/* One command-line argument at argv[*i] (advancing *i past a value it takes):
   MAIN_ARG_NEXT, or the status main exits with (0 after --help/--version, 2 on an error). */
static int main_parse_arg(DriverOptions *o, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  int rc;
  if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(a, "--version")) {
    printf("gattnc 0.1.0\n");
#if GAT_HAVE_LLVM
    printf("backends: c llvm\n"); /* tests probe this line: the LLVM backend is optional */
#else
    printf("backends: c\n");
#endif
    return 0;
  }
  if (main_parse_flag(o, a)) return MAIN_ARG_NEXT;
  if ((rc = main_parse_int_option(o, argc, argv, i)) != 0) return rc;
  if ((rc = main_parse_str_option(o, argc, argv, i)) != 0) return rc;
  if ((rc = main_parse_backend_option(o, argc, argv, i)) != 0) return rc;
  if (a[0] == '-' && a[1]) {
    fprintf(stderr, "gattnc: error: unknown option '%s' (see gattnc --help)\n", a);
    return 2;
  }
  if (!o->input) {
    o->input = a;
  } else if (o->command == DRIVER_CHECK_WEIGHTS && !o->weights) {
    o->weights = a;
  } else {
    fprintf(stderr, "gattnc: error: more than one input file ('%s' and '%s')\n", o->input, a);
    return 2;
  }
  return MAIN_ARG_NEXT;
}

int main(int argc, char **argv) {
  DriverOptions o;
  memset(&o, 0, sizeof o);
  o.opt_level = 2;
  o.verify = 1;
  o.bench_T = 512;
  o.bench_decode = 128;
  o.bench_reps = 5;
  for (int i = main_parse_command(argc, argv, &o); i < argc; i++) {
    int rc = main_parse_arg(&o, argc, argv, &i);
    if (rc != MAIN_ARG_NEXT) return rc;
  }
  if (!o.input) {
    usage(stderr);
    return 2;
  }
  return main_run_big_stack(&o);
}
