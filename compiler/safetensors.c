/* safetensors.c — reading and writing the safetensors format used for
 * weights, inputs and outputs of `gattnc run` and the tests.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 * (`{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}, ...}`
 * plus an optional `__metadata__` object), then the data section; offsets are
 * relative to its start. Files come from users and other tools, so reading
 * trusts nothing: every size and offset is checked before it is used, and
 * every error names the tensor it is about. F32 and I32 are stored as they
 * are; F64/F16/BF16 become f32 and I64 becomes i32 (range-checked) on read.
 * Writing is deterministic so files can be compared byte for byte. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tensor.h"

/* The reference implementation refuses headers above 100 MB; so do we. */
#define ST_MAX_HEADER 100000000ULL

typedef enum StDType { ST_F32, ST_I32, ST_F64, ST_F16, ST_BF16, ST_I64 } StDType;
static const struct {
  const char *name;
  int size;
} st_dtypes[] = {{"F32", 4}, {"I32", 4}, {"F64", 8}, {"F16", 2}, {"BF16", 2}, {"I64", 8}};

typedef struct StEntry {
  const char *name; /* points into the cJSON tree */
  StDType dtype;
  int rank;
  int64_t dims[IR_MAX_RANK];
  uint64_t begin, end;
} StEntry;

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

/* A JSON number that is an exact non-negative integer below 2^53. Returns 0
 * on success, -1 if not integral or too large, -2 if negative. */
static int st_json_uint(const cJSON *item, uint64_t *out) {
  if (!cJSON_IsNumber(item)) return -1;
  double v = item->valuedouble;
  if (v != v) return -1;
  if (v < 0) return -2;
  if (v != floor(v) || v > 9007199254740992.0) return -1;
  *out = (uint64_t)v;
  return 0;
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

/* Parses one header entry into e; -1 + err on a malformed entry. */
static int st_parse_entry(const cJSON *item, StEntry *e, uint64_t data_len, char *err, size_t errlen) {
  const char *name = item->string;
  e->name = name;
  if (!cJSON_IsObject(item))
    return st_fail(err, errlen, "safetensors: tensor '%s': header entry is not a JSON object", name);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
  const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
  if (!cJSON_IsString(dt))
    return st_fail(err, errlen, "safetensors: tensor '%s': missing or non-string \"dtype\"", name);
  int found = -1;
  for (int i = 0; i < (int)(sizeof st_dtypes / sizeof st_dtypes[0]); i++)
    if (strcmp(dt->valuestring, st_dtypes[i].name) == 0) found = i;
  if (found < 0)
    return st_fail(err, errlen,
                   "safetensors: tensor '%s': unsupported dtype \"%s\" (expected F32, I32, F64, F16, BF16 or I64)",
                   name, dt->valuestring);
  e->dtype = (StDType)found;
  if (!cJSON_IsArray(shape))
    return st_fail(err, errlen, "safetensors: tensor '%s': missing or non-array \"shape\"", name);
  int rank = cJSON_GetArraySize(shape);
  if (rank > IR_MAX_RANK)
    return st_fail(err, errlen, "safetensors: tensor '%s': rank %d exceeds the maximum of %d", name, rank,
                   IR_MAX_RANK);
  e->rank = rank;
  uint64_t numel = 1;
  int overflow = 0;
  for (int i = 0; i < rank; i++) {
    uint64_t d;
    int r = st_json_uint(cJSON_GetArrayItem(shape, i), &d);
    if (r == -2)
      return st_fail(err, errlen, "safetensors: tensor '%s': negative dimension %d in \"shape\"", name, i);
    if (r < 0)
      return st_fail(err, errlen, "safetensors: tensor '%s': dimension %d of \"shape\" is not a valid integer",
                     name, i);
    e->dims[i] = (int64_t)d;
    if (d != 0 && numel > (UINT64_MAX / 16) / d) overflow = 1;
    else numel *= d;
  }
  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
    return st_fail(err, errlen, "safetensors: tensor '%s': \"data_offsets\" must be an array [begin, end]", name);
  if (st_json_uint(cJSON_GetArrayItem(offs, 0), &e->begin) < 0 ||
      st_json_uint(cJSON_GetArrayItem(offs, 1), &e->end) < 0)
    return st_fail(err, errlen, "safetensors: tensor '%s': \"data_offsets\" are not non-negative integers", name);
  if (e->begin > e->end)
    return st_fail(err, errlen, "safetensors: tensor '%s': data_offsets begin %llu is after end %llu", name,
                   (unsigned long long)e->begin, (unsigned long long)e->end);
  if (e->end > data_len)
    return st_fail(err, errlen,
                   "safetensors: tensor '%s': data_offsets [%llu, %llu] lie outside the %llu-byte data section",
                   name, (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)data_len);
  if (overflow)
    return st_fail(err, errlen, "safetensors: tensor '%s': element count of \"shape\" overflows", name);
  uint64_t nbytes = numel * (uint64_t)st_dtypes[found].size;
  if (e->end - e->begin != nbytes)
    return st_fail(err, errlen,
                   "safetensors: tensor '%s': data_offsets span %llu bytes but shape and dtype %s need %llu",
                   name, (unsigned long long)(e->end - e->begin), st_dtypes[found].name,
                   (unsigned long long)nbytes);
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
  if (len < 8) return st_fail(err, errlen, "safetensors: file is %zu bytes, shorter than the 8-byte header length", len);
  uint64_t hlen = st_load_le(buf, 8);
  if (hlen > ST_MAX_HEADER)
    return st_fail(err, errlen, "safetensors: header length %llu is absurdly large (limit %llu)",
                   (unsigned long long)hlen, ST_MAX_HEADER);
  if (hlen > len - 8)
    return st_fail(err, errlen, "safetensors: header length %llu exceeds the %zu bytes after the length field "
                   "(truncated file?)", (unsigned long long)hlen, len - 8);
  const char *json = (const char *)buf + 8;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)hlen, &end, 0);
  if (!root) {
    size_t at = end ? (size_t)(end - json) : 0;
    return st_fail(err, errlen, "safetensors: header is not valid JSON (near byte %zu of the header)", at);
  }
  for (const char *c = end; c < json + hlen; c++)
    if (*c != ' ' && *c != '\t' && *c != '\n' && *c != '\r' && *c != 0) {
      cJSON_Delete(root);
      return st_fail(err, errlen, "safetensors: trailing garbage after the JSON header");
    }
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return st_fail(err, errlen, "safetensors: header is not a JSON object");
  }
  uint64_t data_len = len - 8 - hlen;
  const unsigned char *data = buf + 8 + hlen;
  int cap = cJSON_GetArraySize(root);
  StEntry *entries = xcalloc((size_t)(cap ? cap : 1), sizeof(StEntry));
  StEntry **sorted = xcalloc((size_t)(cap ? cap : 1), sizeof(StEntry *));
  int n = 0, rc = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, root) {
    if (!item->string) continue;
    if (strcmp(item->string, "__metadata__") == 0) continue;
    for (int i = 0; i < n; i++)
      if (strcmp(entries[i].name, item->string) == 0) {
        rc = st_fail(err, errlen, "safetensors: tensor '%s' appears twice in the header", item->string);
        goto done;
      }
    if (st_parse_entry(item, &entries[n], data_len, err, errlen) < 0) {
      rc = -1;
      goto done;
    }
    sorted[n] = &entries[n];
    n++;
  }
  /* Overlapping tensors would alias; empty tensors occupy no bytes. */
  qsort(sorted, (size_t)n, sizeof *sorted, st_cmp_begin);
  const StEntry *prev = NULL;
  for (int i = 0; i < n; i++) {
    if (sorted[i]->begin == sorted[i]->end) continue;
    if (prev && sorted[i]->begin < prev->end) {
      rc = st_fail(err, errlen, "safetensors: tensor '%s' overlaps tensor '%s' in the data section",
                   sorted[i]->name, prev->name);
      goto done;
    }
    prev = sorted[i];
  }
  {
    TensorSet tmp = {0};
    for (int i = 0; i < n; i++)
      if (st_convert(&entries[i], data, &tmp, err, errlen) < 0) {
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
  free(sorted);
  free(entries);
  cJSON_Delete(root);
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
