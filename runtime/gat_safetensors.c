/* gat_safetensors.c — binds a safetensors blob to a model's parameter table
 * without allocating: a minimal JSON scanner walks the header in place.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 *  "__metadata__": {...}}, then the data section; offsets are relative to it.
 * The blob comes from the outside world, so every length and offset is
 * checked before use, with arithmetic that cannot overflow. Status choice:
 * a header that does not fit the blob is TRUNCATED (HEADER when the length
 * is absurd); data ranges past the end are TRUNCATED when the header
 * describes a densely packed file (the file was cut short) and OFFSETS
 * otherwise (the header lies). */
#include <string.h>

#include "gat_runtime.h"

#define ST_MAX_HEADER ((uint64_t)100 << 20) /* the safetensors format's own limit */

/* Bytes of a tensor of the given dims (4-byte elements), or 0 when the count
 * does not fit in 64 bits or in size_t: a spec table is outside input too
 * (hand-written, or from another gattnc), and a wrapped size would let
 * data_offsets [0, 0] bind a huge tensor to no bytes at all. */
static uint64_t st_tensor_bytes(const int64_t *dims, int rank) {
  uint64_t n = 4;
  int i;
  for (i = 0; i < rank; i++) {
    uint64_t d;
    if (dims[i] < 0) return 0;
    d = (uint64_t)dims[i];
    if (d != 0 && n > UINT64_MAX / d) return 0;
    n *= d;
  }
  if (n > (uint64_t)SIZE_MAX) return 0;
  return n;
}

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

/* A JSON string: returns its raw (still escaped) bytes in *str and *n. */
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
        int i;
        for (i = 0; i < 4; i++) {
          s->p++;
          if (s->p >= s->end || !strchr("0123456789abcdefABCDEF", *s->p) || !*s->p) return 0;
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

static int st_hex(char c) {
  return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* Does the escaped JSON string raw[0..n) decode to the C string c? */
static int st_str_eq(const char *raw, size_t n, const char *c) {
  size_t i = 0;
  while (i < n) {
    int ch = (unsigned char)raw[i++];
    if (ch == '\\') {
      int e = raw[i++];
      switch (e) {
      case 'b': ch = '\b'; break;
      case 'f': ch = '\f'; break;
      case 'n': ch = '\n'; break;
      case 'r': ch = '\r'; break;
      case 't': ch = '\t'; break;
      case 'u':
        ch = (st_hex(raw[i]) << 12) | (st_hex(raw[i + 1]) << 8) | (st_hex(raw[i + 2]) << 4) |
             st_hex(raw[i + 3]);
        i += 4;
        if (ch >= 0x80) return 0; /* parameter names are ASCII */
        break;
      default: ch = e; break;
      }
    }
    if (*c == 0 || (unsigned char)*c != ch) return 0;
    c++;
  }
  return *c == 0;
}

static int st_uint(st_scan *s, uint64_t *v) {
  uint64_t x = 0;
  int digits = 0;
  st_ws(s);
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
    unsigned d = (unsigned)(*s->p - '0');
    if (x > (UINT64_MAX - d) / 10) return 0; /* overflow */
    x = x * 10 + d;
    s->p++;
    digits++;
  }
  if (!digits) return 0;
  *v = x;
  return 1;
}

/* Skips any JSON value (used for __metadata__ and unknown keys). */
static int st_skip(st_scan *s, int depth) {
  const char *str;
  size_t n;
  if (depth > 16) return 0;
  st_ws(s);
  if (s->p >= s->end) return 0;
  if (*s->p == '"') return st_string(s, &str, &n);
  if (*s->p == '{' || *s->p == '[') {
    char close = *s->p == '{' ? '}' : ']';
    int obj = *s->p == '{';
    s->p++;
    if (st_eat(s, close)) return 1;
    do {
      if (obj && (!st_string(s, &str, &n) || !st_eat(s, ':'))) return 0;
      if (!st_skip(s, depth + 1)) return 0;
    } while (st_eat(s, ','));
    return st_eat(s, close);
  }
  /* number, true, false, null */
  if (!strchr("-0123456789tfn", *s->p) || !*s->p) return 0;
  while (s->p < s->end && *s->p && strchr("+-0123456789.eEtruefalsn", *s->p)) s->p++;
  return 1;
}

static void st_name_copy(char *dst, size_t cap, const char *raw, size_t n) {
  size_t k = n < cap - 1 ? n : cap - 1;
  memcpy(dst, raw, k);
  dst[k] = 0;
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
  const unsigned char *b = (const unsigned char *)blob;
  uint64_t hlen = 0, data_len, max_end = 0, total = 0;
  const unsigned char *data;
  st_scan s;
  int i, outside = -1, misaligned = -1;
  char outside_name[96];
  uint64_t outside_end = 0;

  gat_error_clear(e);
  if (!blob || !specs || (nspecs > 0 && !ptrs) || nspecs < 0)
    return gat_error_set(e, GAT_ERR_ARGUMENT, "NULL weights blob or table");
  for (i = 0; i < nspecs; i++) ptrs[i] = NULL;
  if (len < 8)
    return gat_error_set(e, GAT_ERR_TRUNCATED, "weights blob of %zu bytes is shorter than the 8-byte header length", len);
  for (i = 7; i >= 0; i--) hlen = (hlen << 8) | b[i];
  if (hlen > ST_MAX_HEADER)
    return gat_error_set(e, GAT_ERR_HEADER, "header length %llu exceeds the 100 MiB limit",
                         (unsigned long long)hlen);
  if (hlen > len - 8)
    return gat_error_set(e, GAT_ERR_TRUNCATED, "header of %llu bytes but only %zu bytes follow",
                         (unsigned long long)hlen, len - 8);
  if (hlen < 2) return gat_error_set(e, GAT_ERR_HEADER, "header length %llu is too small", (unsigned long long)hlen);
  data = b + 8 + hlen;
  data_len = (uint64_t)(len - 8 - (size_t)hlen);
  s.p = (const char *)b + 8;
  s.end = s.p + hlen;

  if (!st_eat(&s, '{')) return gat_error_set(e, GAT_ERR_HEADER, "header is not a JSON object");
  if (!st_eat(&s, '}')) {
    do {
      const char *name, *key;
      size_t nlen, klen;
      int idx = -1, have_dtype = 0, have_shape = 0, have_off = 0, rank = 0, dt = -1;
      uint64_t dims[GAT_MAX_RANK], beg = 0, end = 0, nbytes;
      char nm[96];

      if (!st_string(&s, &name, &nlen) || !st_eat(&s, ':'))
        return gat_error_set(e, GAT_ERR_HEADER, "malformed header near byte %ld",
                             (long)(s.p - (const char *)b));
      st_name_copy(nm, sizeof nm, name, nlen);
      if (st_str_eq(name, nlen, "__metadata__")) {
        if (!st_skip(&s, 0)) return gat_error_set(e, GAT_ERR_HEADER, "malformed __metadata__");
        continue;
      }
      for (i = 0; i < nspecs; i++)
        if (st_str_eq(name, nlen, specs[i].name)) {
          idx = i;
          break;
        }
      if (idx < 0)
        return gat_error_set(e, GAT_ERR_UNEXPECTED_TENSOR, "tensor '%s' is not a parameter of this model", nm);
      if (ptrs[idx]) return gat_error_set(e, GAT_ERR_HEADER, "tensor '%s' appears twice", nm);
      if (!st_eat(&s, '{')) return gat_error_set(e, GAT_ERR_HEADER, "entry of tensor '%s' is not an object", nm);
      if (!st_eat(&s, '}')) {
        do {
          if (!st_string(&s, &key, &klen) || !st_eat(&s, ':'))
            return gat_error_set(e, GAT_ERR_HEADER, "malformed entry of tensor '%s'", nm);
          if (st_str_eq(key, klen, "dtype")) {
            const char *v;
            size_t vn;
            if (!st_string(&s, &v, &vn)) return gat_error_set(e, GAT_ERR_HEADER, "bad dtype of tensor '%s'", nm);
            dt = st_str_eq(v, vn, "F32") ? GAT_F32 : st_str_eq(v, vn, "I32") ? GAT_I32 : -2;
            have_dtype = 1;
          } else if (st_str_eq(key, klen, "shape")) {
            if (!st_eat(&s, '[')) return gat_error_set(e, GAT_ERR_HEADER, "bad shape of tensor '%s'", nm);
            if (!st_eat(&s, ']')) {
              do {
                uint64_t d;
                if (!st_uint(&s, &d)) return gat_error_set(e, GAT_ERR_HEADER, "bad shape of tensor '%s'", nm);
                if (rank >= GAT_MAX_RANK)
                  return gat_error_set(e, GAT_ERR_SHAPE, "tensor '%s' has more than %d dims", nm, GAT_MAX_RANK);
                dims[rank++] = d;
              } while (st_eat(&s, ','));
              if (!st_eat(&s, ']')) return gat_error_set(e, GAT_ERR_HEADER, "bad shape of tensor '%s'", nm);
            }
            have_shape = 1;
          } else if (st_str_eq(key, klen, "data_offsets")) {
            if (!st_eat(&s, '[') || !st_uint(&s, &beg) || !st_eat(&s, ',') || !st_uint(&s, &end) ||
                !st_eat(&s, ']'))
              return gat_error_set(e, GAT_ERR_HEADER, "bad data_offsets of tensor '%s'", nm);
            have_off = 1;
          } else if (!st_skip(&s, 0)) {
            return gat_error_set(e, GAT_ERR_HEADER, "malformed entry of tensor '%s'", nm);
          }
        } while (st_eat(&s, ','));
        if (!st_eat(&s, '}')) return gat_error_set(e, GAT_ERR_HEADER, "malformed entry of tensor '%s'", nm);
      }
      if (!have_dtype || !have_shape || !have_off)
        return gat_error_set(e, GAT_ERR_HEADER, "tensor '%s' lacks dtype, shape or data_offsets", nm);
      if (dt != specs[idx].dtype)
        return gat_error_set(e, GAT_ERR_DTYPE, "tensor '%s' must be %s", nm,
                             specs[idx].dtype == GAT_F32 ? "F32" : "I32");
      if (rank != specs[idx].rank)
        return gat_error_set(e, GAT_ERR_SHAPE, "tensor '%s' has rank %d, the model expects %d", nm,
                             rank, (int)specs[idx].rank);
      for (i = 0; i < rank; i++)
        if (dims[i] != (uint64_t)specs[idx].dims[i])
          return gat_error_set(e, GAT_ERR_SHAPE, "tensor '%s' has dim %d = %llu, the model expects %lld",
                               nm, i, (unsigned long long)dims[i], (long long)specs[idx].dims[i]);
      nbytes = st_tensor_bytes(specs[idx].dims, rank);
      if (nbytes == 0 && rank > 0) {
        for (i = 0; i < rank && specs[idx].dims[i] != 0; i++) continue;
        if (i == rank) return gat_error_set(e, GAT_ERR_SHAPE, "tensor '%s' is too large to address", nm);
      }
      if (total + nbytes < total) return gat_error_set(e, GAT_ERR_SHAPE, "tensor '%s' is too large to address", nm);
      if (beg > end || end - beg != nbytes)
        return gat_error_set(e, GAT_ERR_OFFSETS, "tensor '%s' has data_offsets [%llu, %llu] for %llu bytes",
                             nm, (unsigned long long)beg, (unsigned long long)end, (unsigned long long)nbytes);
      if (end > max_end) max_end = end;
      total += nbytes;
      if (end > data_len) {
        if (outside < 0) {
          outside = idx;
          outside_end = end;
          st_name_copy(outside_name, sizeof outside_name, name, nlen);
        }
        ptrs[idx] = data; /* marks it seen; never dereferenced (we fail below) */
        continue;
      }
      if (((uintptr_t)(data + beg)) % 4 != 0 && misaligned < 0) {
        misaligned = idx; /* reported once the whole header is known to be well-formed */
      }
      ptrs[idx] = data + beg;
    } while (st_eat(&s, ','));
    if (!st_eat(&s, '}')) return gat_error_set(e, GAT_ERR_HEADER, "malformed header near byte %ld", (long)(s.p - (const char *)b));
  }
  st_ws(&s);
  if (s.p != s.end) return gat_error_set(e, GAT_ERR_HEADER, "trailing bytes after the header object");
  if (outside >= 0) {
    for (i = 0; i < nspecs; i++) ptrs[i] = NULL;
    if (max_end == total)
      return gat_error_set(e, GAT_ERR_TRUNCATED, "tensor '%s' needs %llu data bytes but the file has %llu",
                           outside_name, (unsigned long long)outside_end, (unsigned long long)data_len);
    return gat_error_set(e, GAT_ERR_OFFSETS, "data of tensor '%s' ends at %llu, outside the %llu-byte data section",
                         outside_name, (unsigned long long)outside_end, (unsigned long long)data_len);
  }
  for (i = 0; i < nspecs; i++)
    if (!ptrs[i]) {
      int j;
      for (j = 0; j < nspecs; j++) ptrs[j] = NULL;
      return gat_error_set(e, GAT_ERR_MISSING_TENSOR, "tensor '%s' is missing from the weights", specs[i].name);
    }
  if (misaligned >= 0) {
    /* copy every misaligned tensor into spare, 4-byte aligned */
    unsigned char *sp = (unsigned char *)spare;
    size_t used = sp ? (size_t)((4 - ((uintptr_t)sp & 3)) & 3) : 0, need = used;
    for (i = 0; i < nspecs; i++)
      if ((uintptr_t)ptrs[i] % 4 != 0) {
        size_t nb = (size_t)st_tensor_bytes(specs[i].dims, specs[i].rank); /* bound above: exact */
        if (need + nb < need) need = SIZE_MAX;
        else need += nb;
      }
    if (!sp || need > spare_len) {
      for (i = 0; i < nspecs; i++) ptrs[i] = NULL;
      return gat_error_set(e, GAT_ERR_ALIGNMENT,
                           "data of tensor '%s' is not 4-byte aligned in memory and there is no room to copy it "
                           "(%zu spare arena bytes, %zu needed)",
                           specs[misaligned].name, sp ? spare_len : (size_t)0, need);
    }
    for (i = 0; i < nspecs; i++)
      if ((uintptr_t)ptrs[i] % 4 != 0) {
        size_t nb = (size_t)st_tensor_bytes(specs[i].dims, specs[i].rank);
        memcpy(sp + used, ptrs[i], nb);
        ptrs[i] = sp + used;
        used += nb;
      }
  }
  return GAT_OK;
}
