/* safetensors.c — reading and writing the safetensors format used for
 * weights, inputs and outputs of `gattnc run` and the tests.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 * (`{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}, ...}`
 * plus an optional `__metadata__` object), then the data section; offsets are
 * relative to its start. The header rules are the runtime's (gat_st_walk in
 * runtime/gat_safetensors.c), so the compiler and compiled models accept
 * exactly the same files; this file adds the whole-set checks (unique names,
 * exact tiling, by sorting: O(n log n)) and every error names the tensor it
 * is about. F32 and I32 are stored as they
 * are; F64/F16/BF16 become f32 and I64 becomes i32 (range-checked) on read.
 * Writing is deterministic so files can be compared byte for byte. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gat_runtime.h"
#include "tensor.h"

/* the safetensors format's own header limit (also the runtime's) */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

typedef enum StDType { ST_F32, ST_I32, ST_F64, ST_F16, ST_BF16, ST_I64 } StDType;

typedef struct StEntry {
  char *name; /* unescaped, owned */
  StDType dtype;
  int rank;
  int64_t dims[IR_MAX_RANK];
  uint64_t begin, end;
} StEntry;

typedef struct StList {
  StEntry *v;
  int n, cap;
} StList;

static int st_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int st_fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static float st_half_to_float(uint16_t h) {
  int sign = (h >> 15) & 1, exp = (h >> 10) & 31, mant = h & 1023;
  float v;
  if (exp == 0)
    v = ldexpf((float)mant, -24); /* zero or subnormal */
  else if (exp == 31)
    v = mant ? NAN : INFINITY;
  else
    v = ldexpf((float)(mant | 1024), exp - 25);
  return sign ? -v : v;
}

static uint64_t st_load_le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static int st_cmp_begin(const void *a, const void *b) {
  const StEntry *x = *(const StEntry *const *)a, *y = *(const StEntry *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static int st_cmp_entry_name(const void *a, const void *b) {
  const StEntry *x = *(const StEntry *const *)a, *y = *(const StEntry *const *)b;
  return strcmp(x->name, y->name);
}

/* gat_st_walk's visitor: keeps each tensor, its name unescaped. */
static int st_collect(void *ctx, const gat_st_tensor *t, gat_error *e) {
  StList *l = ctx;
  (void)e;
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 16;
    l->v = xrealloc(l->v, (size_t)l->cap * sizeof *l->v);
  }
  StEntry *s = &l->v[l->n++];
  s->name = xmalloc(t->name_len + 1);
  gat_st_unescape(t->name, t->name_len, s->name);
  s->dtype = (StDType)t->dtype;
  s->rank = t->rank;
  for (int i = 0; i < t->rank; i++) s->dims[i] = (int64_t)t->dims[i];
  s->begin = t->begin;
  s->end = t->end;
  return GAT_OK;
}

/* The rules gat_st_walk leaves to its caller: names unique, and the tensors
 * tiling the data section (sorted by offsets, each starts where the last
 * ended; empty tensors sort before a tensor starting at the same byte). */
static int st_check_set(StEntry **by, int n, uint64_t data_len, char *err, size_t errlen) {
  qsort(by, (size_t)n, sizeof *by, st_cmp_entry_name);
  for (int i = 1; i < n; i++)
    if (strcmp(by[i - 1]->name, by[i]->name) == 0)
      return st_fail(err, errlen, "safetensors: tensor '%s' appears twice in the header", by[i]->name);
  qsort(by, (size_t)n, sizeof *by, st_cmp_begin);
  uint64_t pos = 0;
  const StEntry *prev = NULL;
  for (int i = 0; i < n; i++) {
    if (by[i]->begin > pos)
      return st_fail(err, errlen, "safetensors: the data section has a gap: bytes [%llu, %llu) before tensor '%s' "
                     "belong to no tensor", (unsigned long long)pos, (unsigned long long)by[i]->begin, by[i]->name);
    if (by[i]->begin < pos)
      return st_fail(err, errlen, "safetensors: tensor '%s' overlaps tensor '%s' in the data section", by[i]->name,
                     prev ? prev->name : "?");
    if (by[i]->end > by[i]->begin) prev = by[i];
    pos = by[i]->end;
  }
  if (pos != data_len)
    return st_fail(err, errlen, "safetensors: %llu trailing bytes after the last tensor's data",
                   (unsigned long long)(data_len - pos));
  return 0;
}

/* Converts one validated entry's bytes into a tensor of `out`. */
static int st_convert(const StEntry *e, const unsigned char *data, TensorSet *out, char *err, size_t errlen) {
  IrDType dt = (e->dtype == ST_I32 || e->dtype == ST_I64) ? IR_I32 : IR_F32;
  Tensor *t = tensorset_add(out, e->name, dt, e->rank, e->dims);
  int64_t n = tensor_numel(t);
  const unsigned char *p = data + e->begin;
  float *f = t->data;
  int32_t *q = t->data;
  for (int64_t i = 0; i < n; i++) {
    switch (e->dtype) {
      case ST_F32: {
        uint32_t bits = (uint32_t)st_load_le(p + 4 * i, 4);
        memcpy(&f[i], &bits, 4);
        break;
      }
      case ST_I32: q[i] = (int32_t)(uint32_t)st_load_le(p + 4 * i, 4); break;
      case ST_F64: {
        uint64_t bits = st_load_le(p + 8 * i, 8);
        double d;
        memcpy(&d, &bits, 8);
        f[i] = (float)d;
        break;
      }
      case ST_F16: f[i] = st_half_to_float((uint16_t)st_load_le(p + 2 * i, 2)); break;
      case ST_BF16: {
        uint32_t bits = (uint32_t)st_load_le(p + 2 * i, 2) << 16;
        memcpy(&f[i], &bits, 4);
        break;
      }
      case ST_I64: {
        int64_t v = (int64_t)st_load_le(p + 8 * i, 8);
        if (v < INT32_MIN || v > INT32_MAX)
          return st_fail(err, errlen,
                         "safetensors: tensor '%s': I64 element %lld (%lld) does not fit in i32", e->name,
                         (long long)i, (long long)v);
        q[i] = (int32_t)v;
        break;
      }
    }
  }
  return 0;
}

int safetensors_read_mem(const unsigned char *buf, size_t len, TensorSet *out, char *err, size_t errlen) {
  StList l = {0};
  gat_error e;
  uint64_t data_len = 0;
  int rc = 0;
  StEntry **by = NULL;
  if (gat_st_walk(buf, len, st_collect, &l, &data_len, &e) != GAT_OK) {
    rc = st_fail(err, errlen, "safetensors: %s", e.msg);
    goto done;
  }
  by = xcalloc((size_t)(l.n ? l.n : 1), sizeof *by);
  for (int i = 0; i < l.n; i++) by[i] = &l.v[i];
  if (st_check_set(by, l.n, data_len, err, errlen) < 0) {
    rc = -1;
    goto done;
  }
  {
    const unsigned char *data = buf + (len - (size_t)data_len);
    TensorSet tmp = {0};
    for (int i = 0; i < l.n; i++)
      if (st_convert(&l.v[i], data, &tmp, err, errlen) < 0) {
        tensorset_free(&tmp);
        rc = -1;
        goto done;
      }
    /* Move the tensors into out only once everything succeeded. */
    for (int i = 0; i < tmp.n; i++) {
      Tensor *t = tensorset_add(out, tmp.t[i].name, tmp.t[i].dtype, tmp.t[i].rank, tmp.t[i].dims);
      free(t->data);
      t->data = tmp.t[i].data;
      tmp.t[i].data = NULL;
    }
    tensorset_free(&tmp);
  }
done:
  for (int i = 0; i < l.n; i++) free(l.v[i].name);
  free(l.v);
  free(by);
  return rc;
}

/* Reads no more of the file than its header length allows: an absurd length
 * (an endless device such as /dev/zero, a text file) stops the reading after
 * 8 bytes, and safetensors_read_mem reports it; a valid header bounds the
 * data by the parameter limit (4 bytes x 2^40 elements). */
static char *st_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(f);
    errno = EISDIR;
    return NULL;
  }
  size_t cap = 65536, n = 0, limit = 8;
  char *buf = malloc(cap);
  int e = buf ? 0 : ENOMEM;
  while (!e) {
    if (n == 8 && limit == 8) {
      uint64_t hlen = st_load_le((const unsigned char *)buf, 8);
      uint64_t most = hlen >= 2 && hlen <= ST_MAX_HEADER ? 8 + hlen + ((uint64_t)4 << 40) : 8;
      limit = most < SIZE_MAX ? (size_t)most : SIZE_MAX;
    }
    if (n == cap) {
      char *bigger = cap <= SIZE_MAX / 2 ? realloc(buf, 2 * cap) : NULL;
      if (!bigger) {
        e = ENOMEM;
        break;
      }
      buf = bigger;
      cap *= 2;
    }
    size_t want = cap - n < limit - n ? cap - n : limit - n;
    size_t got = want ? fread(buf + n, 1, want, f) : 0;
    n += got;
    if (got == 0) e = ferror(f) ? EIO : -1;
  }
  fclose(f);
  if (e != -1) {
    free(buf);
    errno = e;
    return NULL;
  }
  *len = n;
  return buf;
}

int safetensors_read(const char *path, TensorSet *out, char *err, size_t errlen) {
  size_t len = 0;
  char *buf = st_read_file(path, &len);
  if (!buf) return st_fail(err, errlen, "safetensors: cannot read '%s': %s", path, strerror(errno));
  int rc = safetensors_read_mem((const unsigned char *)buf, len, out, err, errlen);
  free(buf);
  return rc;
}

static int st_cmp_name(const void *a, const void *b) {
  const Tensor *x = *(const Tensor *const *)a, *y = *(const Tensor *const *)b;
  return strcmp(x->name, y->name);
}

static void st_json_string(StrBuf *sb, const char *s) {
  sb_append(sb, "\"");
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"' || *c == '\\') sb_printf(sb, "\\%c", *c);
    else if (*c < 0x20) sb_printf(sb, "\\u%04x", *c);
    else sb_appendn(sb, (const char *)c, 1);
  }
  sb_append(sb, "\"");
}

int safetensors_write(const char *path, const TensorSet *s, char *err, size_t errlen) {
  const Tensor **order = xcalloc((size_t)(s->n ? s->n : 1), sizeof *order);
  for (int i = 0; i < s->n; i++) order[i] = &s->t[i];
  qsort(order, (size_t)s->n, sizeof *order, st_cmp_name);
  StrBuf hdr = {0};
  sb_append(&hdr, "{");
  uint64_t off = 0;
  for (int i = 0; i < s->n; i++) {
    const Tensor *t = order[i];
    uint64_t nbytes = (uint64_t)tensor_numel(t) * 4;
    if (i) sb_append(&hdr, ",");
    st_json_string(&hdr, t->name);
    sb_printf(&hdr, ":{\"dtype\":\"%s\",\"shape\":[", t->dtype == IR_F32 ? "F32" : "I32");
    for (int d = 0; d < t->rank; d++) sb_printf(&hdr, "%s%lld", d ? "," : "", (long long)t->dims[d]);
    sb_printf(&hdr, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
              (unsigned long long)(off + nbytes));
    off += nbytes;
  }
  sb_append(&hdr, "}");
  /* Pad so the data section starts 8-byte aligned. */
  while (hdr.len % 8) sb_append(&hdr, " ");
  FILE *f = fopen(path, "wb");
  if (!f) {
    sb_free(&hdr);
    free(order);
    return st_fail(err, errlen, "safetensors: cannot open '%s' for writing", path);
  }
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hdr.len >> (8 * i));
  int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hdr.data, 1, hdr.len, f) == hdr.len;
  for (int i = 0; ok && i < s->n; i++) {
    const Tensor *t = order[i];
    int64_t n = tensor_numel(t);
    const uint32_t *w = t->data;
    unsigned char b[4096];
    int64_t k = 0;
    while (ok && k < n) {
      size_t m = 0;
      for (; k < n && m + 4 <= sizeof b; k++, m += 4) {
        uint32_t v = w[k];
        b[m] = (unsigned char)v, b[m + 1] = (unsigned char)(v >> 8);
        b[m + 2] = (unsigned char)(v >> 16), b[m + 3] = (unsigned char)(v >> 24);
      }
      ok = fwrite(b, 1, m, f) == m;
    }
  }
  if (fclose(f) != 0) ok = 0;
  sb_free(&hdr);
  free(order);
  if (!ok) return st_fail(err, errlen, "safetensors: error while writing '%s'", path);
  return 0;
}
