/* util.c — arena, vectors, string builder, file reading, internal errors. */
#include "util.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

void gat_internal_error(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "gattnc: internal error at %s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n(this is a bug in gattnc, not in your model)\n");
  abort();
}

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) gat_internal_error(__FILE__, __LINE__, "out of memory (%zu bytes)", n);
  return p;
}
void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) gat_internal_error(__FILE__, __LINE__, "out of memory");
  return p;
}
void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) gat_internal_error(__FILE__, __LINE__, "out of memory (%zu bytes)", n);
  return q;
}
char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = xmalloc(n);
  memcpy(d, s, n);
  return d;
}

struct ArenaChunk {
  ArenaChunk *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

void arena_init(Arena *a) { a->head = NULL; }
void arena_free(Arena *a) {
  ArenaChunk *c = a->head;
  while (c) {
    ArenaChunk *n = c->next;
    free(c);
    c = n;
  }
  a->head = NULL;
}
void *arena_alloc(Arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!a->head || a->head->cap - a->head->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    ArenaChunk *c = xmalloc(sizeof(ArenaChunk) + cap);
    c->next = a->head;
    c->used = 0;
    c->cap = cap;
    a->head = c;
  }
  void *p = a->head->data + a->head->used;
  a->head->used += n;
  memset(p, 0, n);
  return p;
}
char *arena_strndup(Arena *a, const char *s, size_t n) {
  char *d = arena_alloc(a, n + 1);
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}
char *arena_strdup(Arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }
char *arena_printf(Arena *a, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *d = arena_alloc(a, (size_t)n + 1);
  vsnprintf(d, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  return d;
}

void ptrvec_push(PtrVec *v, void *p) {
  if (v->len == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 8;
    v->data = xrealloc(v->data, sizeof(void *) * (size_t)v->cap);
  }
  v->data[v->len++] = p;
}
void ptrvec_free(PtrVec *v) {
  free(v->data);
  v->data = NULL;
  v->len = v->cap = 0;
}

void sb_appendn(StrBuf *sb, const char *s, size_t n) {
  if (sb->len + n + 1 > sb->cap) {
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + n + 1) cap *= 2;
    sb->data = xrealloc(sb->data, cap);
    sb->cap = cap;
  }
  memcpy(sb->data + sb->len, s, n);
  sb->len += n;
  sb->data[sb->len] = 0;
}
void sb_append(StrBuf *sb, const char *s) { sb_appendn(sb, s, strlen(s)); }
void sb_vprintf(StrBuf *sb, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  if (sb->len + (size_t)n + 1 > sb->cap) {
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + (size_t)n + 1) cap *= 2;
    sb->data = xrealloc(sb->data, cap);
    sb->cap = cap;
  }
  vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  sb->len += (size_t)n;
}
void sb_printf(StrBuf *sb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  sb_vprintf(sb, fmt, ap);
  va_end(ap);
}
void sb_free(StrBuf *sb) {
  free(sb->data);
  sb->data = NULL;
  sb->len = sb->cap = 0;
}
const char *sb_cstr(StrBuf *sb) { return sb->data ? sb->data : ""; }

char *read_file_limit(const char *path, size_t *len, size_t limit) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  /* fopen opens a directory; reading it would fail with a vague EIO */
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(f);
    errno = EISDIR;
    return NULL;
  }
  /* realloc, not xrealloc: a huge or endless file (/dev/zero) is the user's
   * error, reported as such, not an internal out-of-memory abort */
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap + 1);
  int err = buf ? 0 : ENOMEM;
  while (!err) {
    if (n == cap) {
      if (cap > limit) {
        err = EFBIG;
        break;
      }
      char *bigger = cap <= (SIZE_MAX - 1) / 2 ? realloc(buf, 2 * cap + 1) : NULL;
      if (!bigger) {
        err = ENOMEM;
        break;
      }
      buf = bigger;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (n > limit) err = EFBIG;
    else if (got == 0) err = ferror(f) ? EIO : -1;
  }
  fclose(f);
  if (err != -1) {
    free(buf);
    errno = err;
    return NULL;
  }
  buf[n] = 0;
  if (len) *len = n;
  return buf;
}

char *read_file(const char *path, size_t *len) { return read_file_limit(path, len, SIZE_MAX - 1); }

void format_double(char *buf, size_t n, double v) {
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  /* make it visibly a float literal */
  if (!strpbrk(buf, ".eEn")) {
    size_t l = strlen(buf);
    if (l + 2 < n) {
      buf[l] = '.';
      buf[l + 1] = '0';
      buf[l + 2] = 0;
    }
  }
}
