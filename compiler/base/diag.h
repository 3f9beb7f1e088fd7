/* diag.h — user-facing diagnostics: `file:line:col: error: message`, the
 * source line and a caret. Errors are counted and compilation goes on where
 * it can; the driver stops between stages when diag_error_count() > 0.
 *
 * Every AST node and IR op carries a SrcLoc. Files are registered once with
 * diag_add_file() and referred to by a small integer, so locations stay tiny
 * and the source text is at hand for the caret line. */
#ifndef GATTNC_DIAG_H
#define GATTNC_DIAG_H

#include <stdarg.h>
#include <stdio.h>

typedef struct SrcLoc {
  int file; /* index from diag_add_file; 0 = no location */
  int line; /* 1-based; 0 = unknown */
  int col;  /* 1-based */
} SrcLoc;

/* Registers a file's text (copied) under its display name; returns its id (>= 1). */
int diag_add_file(const char *name, const char *text);
const char *diag_file_name(int file);
const char *diag_file_text(int file);

void diag_error(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_verror(SrcLoc loc, const char *fmt, va_list ap);
void diag_note(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_warning(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An error with no source position (bad command line, unreadable file). */
void diag_plain_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* An error about a whole file (a weights or inputs file): `path: error: message`. */
void diag_file_error(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int diag_error_count(void);
/* Where diagnostics go (default stderr); tests point this at a memstream. */
void diag_set_stream(FILE *f);
/* Forgets errors and registered files (tests run many compilations). */
void diag_reset(void);
/* Stop reporting after this many errors (default 20). */
void diag_set_max_errors(int n);

#endif
