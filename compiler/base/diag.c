/* diag.c — error reporting with caret lines; see diag.h. */
#include "diag.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct DiagFile {
  char *name;
  char *text;
} DiagFile;

static DiagFile *files;
static int nfiles;
static int nerrors;
static int max_errors = 20;
static FILE *out;

int diag_add_file(const char *name, const char *text) {
  files = xrealloc(files, sizeof(DiagFile) * (size_t)(nfiles + 1));
  files[nfiles].name = xstrdup(name);
  files[nfiles].text = xstrdup(text ? text : "");
  return ++nfiles;
}
const char *diag_file_name(int file) {
  return file >= 1 && file <= nfiles ? files[file - 1].name : "<unknown>";
}
const char *diag_file_text(int file) {
  return file >= 1 && file <= nfiles ? files[file - 1].text : NULL;
}

void diag_set_stream(FILE *f) { out = f; }
void diag_set_max_errors(int n) { max_errors = n; }
int diag_error_count(void) { return nerrors; }
void diag_reset(void) {
  for (int i = 0; i < nfiles; i++) {
    free(files[i].name);
    free(files[i].text);
  }
  free(files);
  files = NULL;
  nfiles = 0;
  nerrors = 0;
}

static void print_caret(SrcLoc loc) {
  FILE *o = out ? out : stderr;
  const char *text = diag_file_text(loc.file);
  if (!text || loc.line <= 0) return;
  const char *p = text;
  for (int l = 1; l < loc.line && *p; p++)
    if (*p == '\n') l++;
  const char *e = strchr(p, '\n');
  size_t n = e ? (size_t)(e - p) : strlen(p);
  fprintf(o, "  %.*s\n  ", (int)n, p);
  for (int c = 1; c < loc.col && (size_t)(c - 1) < n; c++) fputc(p[c - 1] == '\t' ? '\t' : ' ', o);
  fputs("^\n", o);
}

static void report(const char *kind, SrcLoc loc, const char *fmt, va_list ap) {
  FILE *o = out ? out : stderr;
  if (loc.file > 0)
    fprintf(o, "%s:%d:%d: %s: ", diag_file_name(loc.file), loc.line, loc.col, kind);
  else
    fprintf(o, "gattnc: %s: ", kind);
  vfprintf(o, fmt, ap);
  fputc('\n', o);
  if (loc.file > 0) print_caret(loc);
}

void diag_verror(SrcLoc loc, const char *fmt, va_list ap) {
  nerrors++;
  if (nerrors > max_errors) return;
  report("error", loc, fmt, ap);
  if (nerrors == max_errors) {
    FILE *o = out ? out : stderr;
    fprintf(o, "gattnc: too many errors; stopping here\n");
  }
}
void diag_error(SrcLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror(loc, fmt, ap);
  va_end(ap);
}
void diag_note(SrcLoc loc, const char *fmt, ...) {
  if (nerrors > max_errors) return;
  va_list ap;
  va_start(ap, fmt);
  report("note", loc, fmt, ap);
  va_end(ap);
}
void diag_warning(SrcLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  report("warning", loc, fmt, ap);
  va_end(ap);
}
void diag_file_error(const char *path, const char *fmt, ...) {
  FILE *o = out ? out : stderr;
  va_list ap;
  va_start(ap, fmt);
  nerrors++;
  fprintf(o, "%s: error: ", path);
  vfprintf(o, fmt, ap);
  fputc('\n', o);
  va_end(ap);
}
void diag_plain_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  nerrors++;
  report("error", (SrcLoc){0, 0, 0}, fmt, ap);
  va_end(ap);
}
