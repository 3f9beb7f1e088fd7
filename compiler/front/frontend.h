/* frontend.h — from .gat source to the graph IR: parse, resolve imports
 * (the standard library is compiled into gattnc), check, instantiate layers,
 * fold constants, infer shapes and emit IR. Errors go through diag. */
#ifndef GATTNC_FRONTEND_H
#define GATTNC_FRONTEND_H

#include "ast.h"
#include "ir.h"

typedef struct FrontendOptions {
  const char *model_name; /* which `model` to compile; NULL = the only (or last) one in the file */
  int64_t max_seq;        /* > 0 overrides the file's `max T = N`; default 2048 when neither is given */
} FrontendOptions;

/* The standard library: every .gat file of compiler/front/std, embedded at build time
 * (cmake/embed.cmake), in name order; the table ends with {NULL, NULL}.
 * `import std` imports all of them. */
typedef struct GatStdFile {
  const char *name; /* e.g. "std.gat" */
  const char *text;
} GatStdFile;
extern const GatStdFile gat_std_files[];

/* Parses and lowers the file at `path` (its text already read). Returns NULL
 * if any error was reported. The module lives in arena `a`. */
IrModule *frontend_compile(Arena *a, const char *path, const char *text, const FrontendOptions *o);

#endif
