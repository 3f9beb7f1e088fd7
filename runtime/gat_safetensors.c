/* gat_safetensors.c — the strict safetensors header rules (gat_st_walk, also
 * used by the compiler's reader) and the binder that turns a weights blob
 * into one pointer per parameter of a model, without allocating.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 *  "__metadata__": {...}}, then the data section; offsets are relative to it.
 * The blob comes from the outside world, so every length and offset is
 * checked before use, with arithmetic that cannot overflow, and any file two
 * tools could read differently (duplicate keys, float offsets, overlapping or
 * gapped data, odd padding) is refused rather than guessed at. Status choice:
 * a header that does not fit the blob is TRUNCATED (HEADER when the length
 * is absurd); data ranges past the end are TRUNCATED when the header
 * describes a densely packed file (the file was cut short) and OFFSETS
 * otherwise (the header lies). Cost: linear in the header, plus
 * O(n log n) for the tiling check; name lookup is a binary search when the
 * table is sorted by name (linear otherwise). */
#include <string.h>

#include "gat_runtime.h"

#define ST_MAX_HEADER ((uint64_t)100 << 20) /* the safetensors format's own limit */
#define ST_NAME_MSG 96                      /* bytes of a name quoted in messages */

static const struct {
  const char *name;
  unsigned size;
} st_dtypes[] = {{"F32", 4}, {"I32", 4}, {"F64", 8}, {"F16", 2}, {"BF16", 2}, {"I64", 8}};
#define ST_NDTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

typedef struct st_scan {
  const char *p, *end;
} st_scan;

static void st_ws(st_scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int st_eat(st_scan *s, char c) {
  st_ws(s);
  if (s->p < s->end && *s->p == c) {
    s->p++;
    return 1;
  }
  return 0;
}

static int st_hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static long st_hex4(const char *p) {
  long v = 0;
  int i;
  for (i = 0; i < 4; i++) {
    int h = st_hex(p[i]);
    if (h < 0) return -1;
    v = (v << 4) | h;
  }
  return v;
}

/* Is the whole header well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF)? Returns the offset of the first bad byte, or -1. */
static long st_utf8_bad(const unsigned char *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    size_t k, len;
    unsigned long cp;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return (long)i;
    if (n - i < len) return (long)i;
    for (k = 1; k < len; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return (long)i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return (long)i;
    i += len;
  }
  return -1;
}

/* A JSON string: its raw (still escaped) bytes in *str, *n. Escapes must be
 * valid, surrogate escapes must pair up, and U+0000 is refused (it would cut
 * a C string short, so two readers could see two different names). */
static int st_string(st_scan *s, const char **str, size_t *n) {
  st_ws(s);
  if (s->p >= s->end || *s->p != '"') return 0;
  s->p++;
  *str = s->p;
  while (s->p < s->end && *s->p != '"') {
    if ((unsigned char)*s->p < 0x20) return 0;
    if (*s->p == '\\') {
      s->p++;
      if (s->p >= s->end) return 0;
      if (*s->p == 'u') {
        long cp;
        if (s->end - s->p < 5 || (cp = st_hex4(s->p + 1)) < 0 || cp == 0) return 0;
        s->p += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return 0;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          long lo;
          if (s->end - s->p < 7 || s->p[1] != '\\' || s->p[2] != 'u' || (lo = st_hex4(s->p + 3)) < 0xDC00 ||
              lo > 0xDFFF)
            return 0;
          s->p += 6;
        }
      } else if (!strchr("\"\\/bfnrt", *s->p) || !*s->p) {
        return 0;
      }
    }
    s->p++;
  }
  if (s->p >= s->end) return 0;
  *n = (size_t)(s->p - *str);
  s->p++;
  return 1;
}

/* Decodes a string checked by st_string one UTF-8 byte at a time. */
typedef struct st_dec {
  const char *p, *end;
  unsigned char buf[4];
  int nbuf, ibuf;
} st_dec;

static int st_dec_next(st_dec *d) {
  unsigned long cp;
  if (d->ibuf < d->nbuf) return d->buf[d->ibuf++];
  if (d->p >= d->end) return -1;
  if (*d->p != '\\') return (unsigned char)*d->p++;
  d->p++;
  switch (*d->p++) {
  case 'b': return '\b';
  case 'f': return '\f';
  case 'n': return '\n';
  case 'r': return '\r';
  case 't': return '\t';
  case 'u': break;
  default: return (unsigned char)d->p[-1];
  }
  cp = (unsigned long)st_hex4(d->p);
  d->p += 4;
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned long)st_hex4(d->p + 2) - 0xDC00);
    d->p += 6;
  }
  d->ibuf = 0;
  if (cp < 0x80) return (int)cp;
  if (cp < 0x800) {
    d->buf[0] = (unsigned char)(0xC0 | (cp >> 6));
    d->buf[1] = (unsigned char)(0x80 | (cp & 0x3F));
    d->nbuf = 2;
  } else if (cp < 0x10000) {
    d->buf[0] = (unsigned char)(0xE0 | (cp >> 12));
    d->buf[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    d->buf[2] = (unsigned char)(0x80 | (cp & 0x3F));
    d->nbuf = 3;
  } else {
    d->buf[0] = (unsigned char)(0xF0 | (cp >> 18));
    d->buf[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    d->buf[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    d->buf[3] = (unsigned char)(0x80 | (cp & 0x3F));
    d->nbuf = 4;
  }
  return d->buf[d->ibuf++];
}

static void st_dec_init(st_dec *d, const char *raw, size_t n) {
  d->p = raw;
  d->end = raw + n;
  d->nbuf = d->ibuf = 0;
}

/* strcmp of the decoded string raw[0..n) against the C string c. */
static int st_str_cmp(const char *raw, size_t n, const char *c) {
  st_dec d;
  if (!memchr(raw, '\\', n)) { /* nothing to decode: the common case */
    size_t cl = strlen(c);
    int r = memcmp(raw, c, n < cl ? n : cl);
    return r ? r : n < cl ? -1 : n > cl;
  }
  st_dec_init(&d, raw, n);
  for (;;) {
    int x = st_dec_next(&d), y = (unsigned char)*c;
    if (x < 0) return y ? -1 : 0;
    if (x != y) return x < y ? -1 : 1;
    c++;
  }
}

/* Do two raw strings decode to the same text? */
static int st_raw_eq(const char *a, size_t na, const char *b, size_t nb) {
  st_dec x, y;
  st_dec_init(&x, a, na);
  st_dec_init(&y, b, nb);
  for (;;) {
    int u = st_dec_next(&x), v = st_dec_next(&y);
    if (u != v) return 0;
    if (u < 0) return 1;
  }
}

void gat_st_unescape(const char *raw, size_t n, char *out) {
  st_dec d;
  int c;
  st_dec_init(&d, raw, n);
  while ((c = st_dec_next(&d)) >= 0) *out++ = (char)c;
  *out = 0;
}

/* A name for messages: decoded, cut to fit. */
static void st_name_copy(char *dst, size_t cap, const char *raw, size_t n) {
  st_dec d;
  size_t k = 0;
  int c;
  if (!memchr(raw, '\\', n)) {
    k = n < cap - 1 ? n : cap - 1;
    memcpy(dst, raw, k);
    dst[k] = 0;
    return;
  }
  st_dec_init(&d, raw, n);
  while (k + 1 < cap && (c = st_dec_next(&d)) >= 0) dst[k++] = (char)c;
  dst[k] = 0;
}

/* A plain decimal integer that fits in 64 bits. 1 on success; 0 for
 * anything else, with *why saying what was wrong. */
static int st_uint(st_scan *s, uint64_t *v, const char **why) {
  uint64_t x = 0;
  const char *start;
  st_ws(s);
  start = s->p;
  *why = "is not an integer";
  if (s->p < s->end && *s->p == '-') {
    *why = "is negative";
    return 0;
  }
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
    unsigned d = (unsigned)(*s->p - '0');
    if (x > (UINT64_MAX - d) / 10) {
      *why = "does not fit in 64 bits";
      return 0;
    }
    x = x * 10 + d;
    s->p++;
  }
  if (s->p == start) return 0;
  if (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E')) {
    *why = "is not an integer (no fraction or exponent allowed)";
    return 0;
  }
  if (*start == '0' && s->p - start > 1) {
    *why = "has a leading zero";
    return 0;
  }
  *v = x;
  return 1;
}

/* The __metadata__ object: string keys (each once) to string values. The
 * duplicate check rescans the earlier pairs, so the key count is capped. */
static int st_metadata(st_scan *s, gat_error *e) {
  const char *key, *val, *first;
  size_t klen, vlen;
  int count = 0;
  if (!st_eat(s, '{')) return gat_error_set(e, GAT_ERR_HEADER, "__metadata__ is not a JSON object");
  first = s->p;
  if (st_eat(s, '}')) return GAT_OK;
  do {
    st_scan r;
    int i;
    char nm[ST_NAME_MSG];
    if (!st_string(s, &key, &klen) || !st_eat(s, ':'))
      return gat_error_set(e, GAT_ERR_HEADER, "malformed __metadata__ key");
    st_name_copy(nm, sizeof nm, key, klen);
    if (++count > GAT_ST_MAX_METADATA)
      return gat_error_set(e, GAT_ERR_HEADER, "__metadata__ has more than %d keys", GAT_ST_MAX_METADATA);
    if (!st_string(s, &val, &vlen))
      return gat_error_set(e, GAT_ERR_HEADER, "__metadata__ value of '%s' is not a string", nm);
    r.p = first;
    r.end = s->end;
    for (i = 1; i < count; i++) {
      const char *k2, *v2;
      size_t k2n, v2n;
      /* already validated: these cannot fail */
      st_string(&r, &k2, &k2n);
      st_eat(&r, ':');
      st_string(&r, &v2, &v2n);
      st_eat(&r, ',');
      if (st_raw_eq(k2, k2n, key, klen))
        return gat_error_set(e, GAT_ERR_HEADER, "__metadata__ key '%s' appears twice", nm);
    }
  } while (st_eat(s, ','));
  if (!st_eat(s, '}')) return gat_error_set(e, GAT_ERR_HEADER, "malformed __metadata__");
  return GAT_OK;
}

/* One tensor entry {"dtype": .., "shape": [..], "data_offsets": [b, e]},
 * each key exactly once and no other key. */
static int st_entry(st_scan *s, gat_st_tensor *t, const char *nm, gat_error *e) {
  int have_dtype = 0, have_shape = 0, have_off = 0;
  const char *why;
  t->rank = 0;
  if (!st_eat(s, '{')) return gat_error_set(e, GAT_ERR_HEADER, "entry of tensor '%s' is not a JSON object", nm);
  if (st_eat(s, '}')) return gat_error_set(e, GAT_ERR_HEADER, "tensor '%s' lacks dtype, shape and data_offsets", nm);
  do {
    const char *key;
    size_t klen;
    if (!st_string(s, &key, &klen) || !st_eat(s, ':'))
      return gat_error_set(e, GAT_ERR_HEADER, "malformed entry of tensor '%s'", nm);
    if (st_str_cmp(key, klen, "dtype") == 0) {
      const char *v;
      size_t vn;
      int i;
      if (have_dtype++) return gat_error_set(e, GAT_ERR_HEADER, "tensor '%s' has two \"dtype\" keys", nm);
      if (!st_string(s, &v, &vn)) return gat_error_set(e, GAT_ERR_HEADER, "dtype of tensor '%s' is not a string", nm);
      t->dtype = -1;
      for (i = 0; i < ST_NDTYPES; i++)
        if (st_str_cmp(v, vn, st_dtypes[i].name) == 0) t->dtype = i;
      if (t->dtype < 0) {
        char d[16];
        st_name_copy(d, sizeof d, v, vn);
        return gat_error_set(e, GAT_ERR_DTYPE,
                             "tensor '%s' has unsupported dtype \"%s\" (F32, I32, F64, F16, BF16 or I64 expected)", nm, d);
      }
    } else if (st_str_cmp(key, klen, "shape") == 0) {
      if (have_shape++) return gat_error_set(e, GAT_ERR_HEADER, "tensor '%s' has two \"shape\" keys", nm);
      if (!st_eat(s, '[')) return gat_error_set(e, GAT_ERR_HEADER, "shape of tensor '%s' is not an array", nm);
      if (!st_eat(s, ']')) {
        do {
          uint64_t d;
          if (!st_uint(s, &d, &why))
            return gat_error_set(e, GAT_ERR_HEADER, "dimension %d of tensor '%s' %s", (int)t->rank, nm, why);
          if (d > (uint64_t)INT64_MAX)
            return gat_error_set(e, GAT_ERR_HEADER, "dimension %d of tensor '%s' does not fit in 63 bits", (int)t->rank,
                                 nm);
          if (t->rank >= GAT_MAX_RANK)
            return gat_error_set(e, GAT_ERR_SHAPE, "tensor '%s' has more than %d dims", nm, GAT_MAX_RANK);
          t->dims[t->rank++] = d;
        } while (st_eat(s, ','));
        if (!st_eat(s, ']')) return gat_error_set(e, GAT_ERR_HEADER, "malformed shape of tensor '%s'", nm);
      }
    } else if (st_str_cmp(key, klen, "data_offsets") == 0) {
      if (have_off++) return gat_error_set(e, GAT_ERR_HEADER, "tensor '%s' has two \"data_offsets\" keys", nm);
      if (!st_eat(s, '[')) return gat_error_set(e, GAT_ERR_HEADER, "data_offsets of tensor '%s' is not an array", nm);
      if (!st_uint(s, &t->begin, &why))
        return gat_error_set(e, GAT_ERR_HEADER, "data_offsets of tensor '%s': the begin offset %s", nm, why);
      if (!st_eat(s, ',')) return gat_error_set(e, GAT_ERR_HEADER, "data_offsets of tensor '%s' is not [begin, end]", nm);
      if (!st_uint(s, &t->end, &why))
        return gat_error_set(e, GAT_ERR_HEADER, "data_offsets of tensor '%s': the end offset %s", nm, why);
      if (!st_eat(s, ']')) return gat_error_set(e, GAT_ERR_HEADER, "data_offsets of tensor '%s' is not [begin, end]", nm);
    } else {
      char k[ST_NAME_MSG];
      st_name_copy(k, sizeof k, key, klen);
      return gat_error_set(e, GAT_ERR_HEADER, "tensor '%s' has an unknown key \"%s\"", nm, k);
    }
  } while (st_eat(s, ','));
  if (!st_eat(s, '}')) return gat_error_set(e, GAT_ERR_HEADER, "malformed entry of tensor '%s'", nm);
  if (!have_dtype || !have_shape || !have_off)
    return gat_error_set(e, GAT_ERR_HEADER, "tensor '%s' lacks %s", nm,
                         !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
  return GAT_OK;
}

/* product(dims) * size, or UINT64_MAX when it does not fit in 64 bits. A
 * zero dim makes the tensor empty whatever the others are. */
static uint64_t st_nbytes(const gat_st_tensor *t) {
  uint64_t n = st_dtypes[t->dtype].size;
  int i, zero = 0;
  for (i = 0; i < t->rank; i++) {
    if (t->dims[i] == 0) zero = 1;
    else if (n != UINT64_MAX) n = n > UINT64_MAX / t->dims[i] ? UINT64_MAX : n * t->dims[i];
  }
  return zero ? 0 : n;
}

/* The header length field against the blob: *hlen on success. */
static int st_header_len(const unsigned char *b, size_t len, uint64_t *hlen, gat_error *e) {
  int i;
  *hlen = 0;
  if (!b && len > 0) return gat_error_set(e, GAT_ERR_ARGUMENT, "NULL weights blob");
  if (len < 8)
    return gat_error_set(e, GAT_ERR_TRUNCATED, "weights blob of %zu bytes is shorter than the 8-byte header length",
                         len);
  for (i = 7; i >= 0; i--) *hlen = (*hlen << 8) | b[i];
  if (*hlen > ST_MAX_HEADER)
    return gat_error_set(e, GAT_ERR_HEADER, "header length %llu exceeds the 100 MiB limit", (unsigned long long)*hlen);
  if (*hlen > len - 8)
    return gat_error_set(e, GAT_ERR_TRUNCATED, "header of %llu bytes but only %zu bytes follow (truncated file?)",
                         (unsigned long long)*hlen, len - 8);
  if (*hlen < 2) return gat_error_set(e, GAT_ERR_HEADER, "header length %llu is too small", (unsigned long long)*hlen);
  return GAT_OK;
}

int gat_st_walk(const void *blob, size_t len, gat_st_visit_fn visit, void *ctx, uint64_t *data_len_out,
                gat_error *e) {
  const unsigned char *b = (const unsigned char *)blob;
  uint64_t hlen = 0, data_len, max_end = 0, total = 0, outside_end = 0;
  long bad;
  int st, outside = 0;
  char outside_name[ST_NAME_MSG];
  st_scan s;

  gat_error_clear(e);
  if ((st = st_header_len(b, len, &hlen, e)) != GAT_OK) return st;
  data_len = (uint64_t)(len - 8 - (size_t)hlen);
  if (data_len_out) *data_len_out = data_len;
  if ((bad = st_utf8_bad(b + 8, (size_t)hlen)) >= 0)
    return gat_error_set(e, GAT_ERR_HEADER, "header is not valid UTF-8 (byte %ld)", bad);
  s.p = (const char *)b + 8;
  s.end = s.p + hlen;

  if (!st_eat(&s, '{')) return gat_error_set(e, GAT_ERR_HEADER, "header is not a JSON object");
  if (!st_eat(&s, '}')) {
    int have_meta = 0;
    do {
      const char *name;
      size_t nlen;
      char nm[ST_NAME_MSG];
      gat_st_tensor t;
      uint64_t nbytes;
      if (!st_string(&s, &name, &nlen) || !st_eat(&s, ':'))
        return gat_error_set(e, GAT_ERR_HEADER, "malformed header near byte %ld (a bad name or escape?)",
                             (long)(s.p - (const char *)b - 8));
      st_name_copy(nm, sizeof nm, name, nlen);
      if (st_str_cmp(name, nlen, "__metadata__") == 0) {
        if (have_meta++) return gat_error_set(e, GAT_ERR_HEADER, "__metadata__ appears twice");
        if ((st = st_metadata(&s, e)) != GAT_OK) return st;
        continue;
      }
      t.name = name;
      t.name_len = nlen;
      if ((st = st_entry(&s, &t, nm, e)) != GAT_OK) return st;
      nbytes = st_nbytes(&t);
      if (nbytes == UINT64_MAX)
        return gat_error_set(e, GAT_ERR_SHAPE, "tensor '%s': the byte size of its shape overflows 64 bits", nm);
      if (t.begin > t.end || t.end - t.begin != nbytes)
        return gat_error_set(e, GAT_ERR_OFFSETS, "tensor '%s' has data_offsets [%llu, %llu] for %llu bytes of %s",
                             nm, (unsigned long long)t.begin, (unsigned long long)t.end, (unsigned long long)nbytes,
                             st_dtypes[t.dtype].name);
      if (t.end > max_end) max_end = t.end;
      total = total > UINT64_MAX - nbytes ? UINT64_MAX : total + nbytes;
      if (t.end > data_len) {
        /* decided once the whole header is known: cut file or lying header */
        if (!outside++) {
          outside_end = t.end;
          memcpy(outside_name, nm, sizeof nm);
        }
        continue;
      }
      if (visit && (st = visit(ctx, &t, e)) != GAT_OK) return st;
    } while (st_eat(&s, ','));
    if (!st_eat(&s, '}'))
      return gat_error_set(e, GAT_ERR_HEADER, "malformed header near byte %ld", (long)(s.p - (const char *)b - 8));
  }
  st_ws(&s);
  if (s.p != s.end) {
    if (*s.p == 0)
      return gat_error_set(e, GAT_ERR_HEADER, "header padded with NUL bytes (only spaces may pad the header)");
    return gat_error_set(e, GAT_ERR_HEADER, "trailing bytes after the header's JSON object (byte %ld)",
                         (long)(s.p - (const char *)b - 8));
  }
  if (outside) {
    if (max_end == total)
      return gat_error_set(e, GAT_ERR_TRUNCATED, "tensor '%s' needs %llu data bytes but the file has %llu (truncated?)",
                           outside_name, (unsigned long long)outside_end, (unsigned long long)data_len);
    return gat_error_set(e, GAT_ERR_OFFSETS, "data of tensor '%s' ends at %llu, outside the %llu-byte data section",
                         outside_name, (unsigned long long)outside_end, (unsigned long long)data_len);
  }
  return GAT_OK;
}

/* ---- the binder ---------------------------------------------------------- */

typedef struct st_bind_ctx {
  const gat_tensor_spec *specs;
  int nspecs, sorted;
  const void **ptrs;
  const unsigned char *data;
  uint64_t data_len;
  int nonempty; /* tiling check: ptrs[0..nonempty) sorted by address */
} st_bind_ctx;

static int st_find_spec(const st_bind_ctx *c, const char *raw, size_t n) {
  int i;
  if (c->sorted) {
    int lo = 0, hi = c->nspecs - 1;
    while (lo <= hi) {
      int mid = lo + (hi - lo) / 2, r = st_str_cmp(raw, n, c->specs[mid].name);
      if (r == 0) return mid;
      if (r < 0) hi = mid - 1;
      else lo = mid + 1;
    }
    return -1;
  }
  for (i = 0; i < c->nspecs; i++)
    if (st_str_cmp(raw, n, c->specs[i].name) == 0) return i;
  return -1;
}

static int st_visit_bind(void *ctx, const gat_st_tensor *t, gat_error *e) {
  st_bind_ctx *c = (st_bind_ctx *)ctx;
  char nm[ST_NAME_MSG];
  int idx = st_find_spec(c, t->name, t->name_len), i;
  const gat_tensor_spec *sp;
  st_name_copy(nm, sizeof nm, t->name, t->name_len);
  if (idx < 0) return gat_error_set(e, GAT_ERR_UNEXPECTED_TENSOR, "tensor '%s' is not a parameter of this model", nm);
  if (c->ptrs[idx]) return gat_error_set(e, GAT_ERR_HEADER, "tensor '%s' appears twice", nm);
  sp = &c->specs[idx];
  if (t->dtype != sp->dtype)
    return gat_error_set(e, GAT_ERR_DTYPE, "tensor '%s' must be %s (the file has %s)", nm,
                         sp->dtype == GAT_F32 ? "F32" : "I32", st_dtypes[t->dtype].name);
  if (t->rank != sp->rank)
    return gat_error_set(e, GAT_ERR_SHAPE, "tensor '%s' has rank %d, the model expects %d", nm, (int)t->rank,
                         (int)sp->rank);
  for (i = 0; i < t->rank; i++)
    if (sp->dims[i] < 0 || t->dims[i] != (uint64_t)sp->dims[i])
      return gat_error_set(e, GAT_ERR_SHAPE, "tensor '%s' has dim %d = %llu, the model expects %lld", nm, i,
                           (unsigned long long)t->dims[i], (long long)sp->dims[i]);
  c->ptrs[idx] = c->data + t->begin;
  return GAT_OK;
}

/* Is data + off the start of a non-empty tensor, or the end of the data? */
static int st_is_boundary(const st_bind_ctx *c, uint64_t off) {
  const unsigned char *want = c->data + off;
  int lo = 0, hi = c->nonempty - 1;
  if (off == c->data_len) return 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    uintptr_t m = (uintptr_t)c->ptrs[mid];
    if (m == (uintptr_t)want) return 1;
    if (m < (uintptr_t)want) lo = mid + 1;
    else hi = mid - 1;
  }
  return 0;
}

/* Tiling, second half (the sum of the sizes equals the data length, checked
 * before): if 0 starts a non-empty tensor and every non-empty tensor ends
 * where another begins or at the end, the non-empty tensors cover the data
 * section, and covering it with exactly its length in bytes leaves no room
 * for overlap. Empty tensors must sit on such a boundary. */
static int st_visit_tiling(void *ctx, const gat_st_tensor *t, gat_error *e) {
  const st_bind_ctx *c = (const st_bind_ctx *)ctx;
  char nm[ST_NAME_MSG];
  uint64_t at = t->end > t->begin ? t->end : t->begin;
  if (st_is_boundary(c, at)) return GAT_OK;
  st_name_copy(nm, sizeof nm, t->name, t->name_len);
  return gat_error_set(e, GAT_ERR_OFFSETS,
                       "tensor '%s' %s at byte %llu, where no other tensor begins: tensors overlap or leave a gap", nm,
                       t->end > t->begin ? "ends" : "(empty) sits", (unsigned long long)at);
}

static void st_sift(const void **a, int root, int n) {
  for (;;) {
    int child = 2 * root + 1;
    const void *tmp;
    if (child >= n) return;
    if (child + 1 < n && (uintptr_t)a[child + 1] > (uintptr_t)a[child]) child++;
    if ((uintptr_t)a[root] >= (uintptr_t)a[child]) return;
    tmp = a[root];
    a[root] = a[child];
    a[child] = tmp;
    root = child;
  }
}

/* Heapsort by address: in place, O(n log n), no recursion. */
static void st_sort_ptrs(const void **a, int n) {
  int i;
  for (i = n / 2 - 1; i >= 0; i--) st_sift(a, i, n);
  for (i = n - 1; i > 0; i--) {
    const void *tmp = a[0];
    a[0] = a[i];
    a[i] = tmp;
    st_sift(a, 0, i);
  }
}

static uint64_t st_spec_bytes(const gat_tensor_spec *sp) {
  gat_st_tensor t;
  int i;
  t.dtype = sp->dtype;
  t.rank = sp->rank;
  for (i = 0; i < sp->rank && i < GAT_MAX_RANK; i++) t.dims[i] = sp->dims[i] < 0 ? 0 : (uint64_t)sp->dims[i];
  return st_nbytes(&t);
}

static int st_unbind(const void **ptrs, int n, int status) {
  int i;
  for (i = 0; i < n; i++) ptrs[i] = NULL;
  return status;
}

int gat_st_bind(const void *blob, size_t len, const gat_tensor_spec *specs, int nspecs,
                const void **ptrs, gat_error *e) {
  return gat_st_bind_copy(blob, len, specs, nspecs, ptrs, NULL, 0, e);
}

/* Tensors whose data is not 4-byte aligned in memory are copied into
 * `spare` (when it has room), so that generated code never forms a
 * misaligned float pointer (undefined behaviour, and a trap on some CPUs). */
int gat_st_bind_copy(const void *blob, size_t len, const gat_tensor_spec *specs, int nspecs,
                     const void **ptrs, void *spare, size_t spare_len, gat_error *e) {
  st_bind_ctx c;
  uint64_t total = 0;
  int i, st, misaligned = -1;

  gat_error_clear(e);
  if (!blob || !specs || (nspecs > 0 && !ptrs) || nspecs < 0)
    return gat_error_set(e, GAT_ERR_ARGUMENT, "NULL weights blob or table");
  for (i = 0; i < nspecs; i++) {
    ptrs[i] = NULL;
    if (specs[i].rank < 0 || specs[i].rank > GAT_MAX_RANK || (specs[i].dtype != GAT_F32 && specs[i].dtype != GAT_I32))
      return gat_error_set(e, GAT_ERR_ARGUMENT, "parameter table entry %d is malformed", i);
  }
  c.specs = specs;
  c.nspecs = nspecs;
  c.ptrs = ptrs;
  c.sorted = 1;
  for (i = 1; i < nspecs; i++)
    if (strcmp(specs[i - 1].name, specs[i].name) >= 0) c.sorted = 0;
  {
    uint64_t hlen;
    if ((st = st_header_len((const unsigned char *)blob, len, &hlen, e)) != GAT_OK) return st;
    c.data_len = (uint64_t)(len - 8 - (size_t)hlen);
    c.data = (const unsigned char *)blob + 8 + hlen;
  }
  if ((st = gat_st_walk(blob, len, st_visit_bind, &c, NULL, e)) != GAT_OK) return st_unbind(ptrs, nspecs, st);
  for (i = 0; i < nspecs; i++)
    if (!ptrs[i])
      return st_unbind(ptrs, nspecs,
                       gat_error_set(e, GAT_ERR_MISSING_TENSOR, "tensor '%s' is missing from the weights", specs[i].name));

  /* Tiling. Every tensor of the blob is bound to a distinct spec, so the
   * specs' sizes are the tensors' sizes (each at most the data length). */
  for (i = 0; i < nspecs; i++) {
    uint64_t nb = st_spec_bytes(&specs[i]);
    total = total > UINT64_MAX - nb ? UINT64_MAX : total + nb;
  }
  if (total != c.data_len)
    return st_unbind(ptrs, nspecs,
                     gat_error_set(e, GAT_ERR_OFFSETS,
                                   total < c.data_len
                                       ? "the tensors cover %llu of the %llu data bytes (a gap or trailing data)"
                                       : "the tensors need %llu bytes but the data section has %llu: they overlap",
                                   (unsigned long long)total, (unsigned long long)c.data_len));
  c.nonempty = 0;
  for (i = 0; i < nspecs; i++)
    if (st_spec_bytes(&specs[i]) > 0) {
      const void *tmp = ptrs[c.nonempty];
      ptrs[c.nonempty++] = ptrs[i];
      ptrs[i] = tmp;
    }
  st_sort_ptrs(ptrs, c.nonempty);
  if (c.data_len > 0 && (c.nonempty == 0 || ptrs[0] != (const void *)c.data))
    return st_unbind(ptrs, nspecs,
                     gat_error_set(e, GAT_ERR_OFFSETS, "no tensor starts at byte 0 of the data section (a gap)"));
  st = gat_st_walk(blob, len, st_visit_tiling, &c, NULL, e);
  st_unbind(ptrs, nspecs, GAT_OK);
  if (st != GAT_OK) return st;
  /* rebind (the sort reordered ptrs); the same walk succeeded above */
  if ((st = gat_st_walk(blob, len, st_visit_bind, &c, NULL, e)) != GAT_OK) return st_unbind(ptrs, nspecs, st);

  for (i = 0; i < nspecs; i++)
    if ((uintptr_t)ptrs[i] % 4 != 0 && misaligned < 0) misaligned = i;
  if (misaligned >= 0) {
    /* copy every misaligned tensor into spare, 4-byte aligned */
    unsigned char *sp = (unsigned char *)spare;
    size_t used = sp ? (size_t)((4 - ((uintptr_t)sp & 3)) & 3) : 0, need = used;
    for (i = 0; i < nspecs; i++)
      if ((uintptr_t)ptrs[i] % 4 != 0) need += (size_t)st_spec_bytes(&specs[i]);
    if (!sp || need > spare_len)
      return st_unbind(ptrs, nspecs,
                       gat_error_set(e, GAT_ERR_ALIGNMENT,
                                     "data of tensor '%s' is not 4-byte aligned in memory and there is no room to "
                                     "copy it (%zu spare arena bytes, %zu needed)",
                                     specs[misaligned].name, sp ? spare_len : (size_t)0, need));
    for (i = 0; i < nspecs; i++)
      if ((uintptr_t)ptrs[i] % 4 != 0) {
        size_t nb = (size_t)st_spec_bytes(&specs[i]);
        memcpy(sp + used, ptrs[i], nb);
        ptrs[i] = sp + used;
        used += nb;
      }
  }
  return GAT_OK;
}
