/* sema.h — the interface between frontend.c (which parses files and follows
 * imports) and the elaborating walk in sema*.c (which checks the program and
 * emits graph IR in one pass). Only frontend.c and sema*.c include this. */
#ifndef GATTNC_SEMA_H
#define GATTNC_SEMA_H

#include "ast.h"
#include "frontend.h"
#include "ir.h"

/* Lowers the model chosen by `o` (or the last model of `main_file`) of a
 * program made of `files` (imports first, in the order they were reached;
 * `main_file` is one of them). Returns NULL if an error was reported. */
IrModule *sema_lower_program(Arena *a, AstFile *const *files, int nfiles, const AstFile *main_file,
                             const FrontendOptions *o);

#endif
