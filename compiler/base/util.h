/* util.h — the small toolbox every compiler stage uses: a bump arena,
 * growable vectors, a string builder and the internal-assert channel.
 *
 * User errors never go through here: they are diagnostics (diag.h). A failed
 * GAT_ASSERT is a compiler bug; it prints where and aborts. */
#ifndef GATTNC_UTIL_H
#define GATTNC_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- internal bugs ---------------------------------------------------- */
void gat_internal_error(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
#define GAT_ASSERT(cond)                                                      \
  do {                                                                        \
    if (!(cond)) gat_internal_error(__FILE__, __LINE__, "assertion failed: %s", #cond); \
  } while (0)
#define gat_unreachable() gat_internal_error(__FILE__, __LINE__, "unreachable")

/* ---- heap helpers that never return NULL ------------------------------ */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* ---- arena: allocate many small objects, free them all at once --------- */
typedef struct ArenaChunk ArenaChunk;
typedef struct Arena {
  ArenaChunk *head;
} Arena;
void arena_init(Arena *a);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t n); /* zeroed, 16-byte aligned */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ARENA_NEW(a, T) ((T *)arena_alloc((a), sizeof(T)))
#define ARENA_ARRAY(a, T, n) ((T *)arena_alloc((a), sizeof(T) * (size_t)(n)))

/* ---- growable vector of pointers (heap-backed, owner frees) ------------ */
typedef struct PtrVec {
  void **data;
  int len, cap;
} PtrVec;
void ptrvec_push(PtrVec *v, void *p);
void ptrvec_free(PtrVec *v);

/* ---- string builder ---------------------------------------------------- */
typedef struct StrBuf {
  char *data; /* always NUL-terminated once anything was appended */
  size_t len, cap;
} StrBuf;
void sb_append(StrBuf *sb, const char *s);
void sb_appendn(StrBuf *sb, const char *s, size_t n);
void sb_printf(StrBuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vprintf(StrBuf *sb, const char *fmt, va_list ap);
void sb_free(StrBuf *sb);
const char *sb_cstr(StrBuf *sb); /* "" when empty */

/* ---- files ------------------------------------------------------------ */
/* Reads a whole file; returns NULL (errno set) on failure. *len may be NULL.
 * The text is NUL-terminated. errno is EISDIR for a directory, EFBIG when the
 * file holds more than `limit` bytes, ENOMEM when it does not fit in memory. */
char *read_file(const char *path, size_t *len);
char *read_file_limit(const char *path, size_t *len, size_t limit);

/* Formats a double so that it parses back to the same value and prints the
 * same on every platform ("%.17g" trimmed to the shortest round-trip form). */
void format_double(char *buf, size_t n, double v);

#endif
