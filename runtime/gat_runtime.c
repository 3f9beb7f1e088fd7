/* gat_runtime.c — status strings, the message buffer, arena helpers, the
 * timing hook and the row kernels generated models call. Everything works on
 * caller-provided memory; nothing here allocates or keeps global state.
 * Arithmetic accumulates in double and rounds once when storing, the same
 * rule as the reference interpreter, so results agree to float rounding. */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 199309L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#endif
#include "gat_runtime.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const char *gat_status_string(int status) {
  switch (status) {
  case GAT_OK: return "ok";
  case GAT_ERR_MISSING_TENSOR: return "missing tensor";
  case GAT_ERR_UNEXPECTED_TENSOR: return "unexpected tensor";
  case GAT_ERR_DTYPE: return "wrong dtype";
  case GAT_ERR_SHAPE: return "wrong shape";
  case GAT_ERR_TRUNCATED: return "truncated weights";
  case GAT_ERR_HEADER: return "malformed safetensors header";
  case GAT_ERR_OFFSETS: return "bad data offsets";
  case GAT_ERR_TOKEN_RANGE: return "index out of range";
  case GAT_ERR_SEQ_TOO_LONG: return "sequence too long";
  case GAT_ERR_ARENA_TOO_SMALL: return "arena too small";
  case GAT_ERR_ALIGNMENT: return "misaligned data";
  case GAT_ERR_ARGUMENT: return "bad argument";
  case GAT_ERR_NOT_INITIALIZED: return "model not initialized";
  default: return "unknown status";
  }
}

int gat_error_set(gat_error *e, int status, const char *fmt, ...) {
  if (e) {
    va_list ap;
    va_start(ap, fmt);
    e->status = status;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
  }
  return status;
}

void gat_error_clear(gat_error *e) {
  if (e) {
    e->status = GAT_OK;
    e->msg[0] = 0;
  }
}

void gat_arena_init(gat_arena *a, void *mem, size_t len) {
  a->base = (unsigned char *)mem;
  a->len = mem ? len : 0;
  a->used = 0;
}

void *gat_arena_alloc(gat_arena *a, size_t n, size_t align) {
  uintptr_t base = (uintptr_t)a->base;
  size_t pad;
  if (align == 0 || (align & (align - 1)) != 0 || !a->base) return NULL;
  pad = (size_t)((align - ((base + a->used) & (align - 1))) & (align - 1));
  if (pad > a->len - a->used || n > a->len - a->used - pad) return NULL;
  a->used += pad;
  {
    void *p = a->base + a->used;
    a->used += n;
    return p;
  }
}

uint64_t gat_time_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- row kernels ------------------------------------------------------------ */
void gat_k_softmax(float *out, const float *x, int64_t outer, int64_t n, int64_t inner) {
  int64_t o, i, j;
  for (o = 0; o < outer; o++)
    for (i = 0; i < inner; i++) {
      const float *xr = x + o * n * inner + i;
      float *yr = out + o * n * inner + i;
      double mx = -INFINITY, sum = 0;
      for (j = 0; j < n; j++)
        if (xr[j * inner] > mx) mx = xr[j * inner];
      for (j = 0; j < n; j++) sum += exp(xr[j * inner] - mx);
      for (j = 0; j < n; j++) yr[j * inner] = (float)(exp(xr[j * inner] - mx) / sum);
    }
}

void gat_k_rms_norm(float *out, const float *x, const float *w, int64_t rows, int64_t n,
                    double eps, int plus_one) {
  int64_t r, j;
  for (r = 0; r < rows; r++) {
    const float *xr = x + r * n;
    double ss = 0, inv;
    for (j = 0; j < n; j++) ss += (double)xr[j] * xr[j];
    inv = 1.0 / sqrt(ss / (double)n + eps);
    for (j = 0; j < n; j++) {
      double wj = w ? (plus_one ? 1.0 + w[j] : (double)w[j]) : 1.0;
      out[r * n + j] = (float)(xr[j] * inv * wj);
    }
  }
}

void gat_k_layer_norm(float *out, const float *x, const float *w, const float *b, int64_t rows,
                      int64_t n, double eps) {
  int64_t r, j;
  for (r = 0; r < rows; r++) {
    const float *xr = x + r * n;
    double mean = 0, var = 0, inv;
    for (j = 0; j < n; j++) mean += xr[j];
    mean /= (double)n;
    for (j = 0; j < n; j++) var += (xr[j] - mean) * (xr[j] - mean);
    inv = 1.0 / sqrt(var / (double)n + eps);
    for (j = 0; j < n; j++) {
      double y = (xr[j] - mean) * inv;
      if (w) y *= w[j];
      if (b) y += b[j];
      out[r * n + j] = (float)y;
    }
  }
}

void gat_k_l2_norm(float *out, const float *x, int64_t rows, int64_t n, double eps) {
  int64_t r, j;
  for (r = 0; r < rows; r++) {
    double ss = 0, inv;
    for (j = 0; j < n; j++) ss += (double)x[r * n + j] * x[r * n + j];
    inv = 1.0 / sqrt(ss + eps);
    for (j = 0; j < n; j++) out[r * n + j] = (float)(x[r * n + j] * inv);
  }
}

int gat_k_gather(void *out, const void *table, const int32_t *idx, int64_t nidx, int64_t V,
                 int64_t row, int64_t *bad) {
  int64_t i;
  for (i = 0; i < nidx; i++)
    if (idx[i] < 0 || idx[i] >= V) {
      if (bad) *bad = i;
      return GAT_ERR_TOKEN_RANGE;
    }
  for (i = 0; i < nidx; i++)
    memcpy((char *)out + (size_t)(i * row) * 4, (const char *)table + (size_t)(idx[i] * row) * 4,
           (size_t)row * 4);
  return GAT_OK;
}

void gat_k_topk(float *vals, int32_t *idxs, const float *x, int64_t rows, int64_t n, int64_t k) {
  int64_t r, s, j, q;
  for (r = 0; r < rows; r++) {
    const float *xr = x + r * n;
    /* selection: the s-th pick is the largest element not yet picked; the
     * strict '>' keeps the lower index on ties. O(n k), fine for routers. */
    for (s = 0; s < k; s++) {
      int64_t best = -1;
      for (j = 0; j < n; j++) {
        int taken = 0;
        for (q = 0; q < s; q++)
          if (idxs[r * k + q] == j) taken = 1;
        if (taken) continue;
        if (best < 0 || xr[j] > xr[best]) best = j;
      }
      idxs[r * k + s] = (int32_t)best;
      vals[r * k + s] = best >= 0 ? xr[best] : 0.0f;
    }
  }
}

void gat_k_rope(float *out, const float *x, int64_t T, int64_t H, int64_t D, int64_t pos0,
                double base, int64_t dims) {
  int64_t t, h, i, half = dims / 2;
  for (t = 0; t < T; t++)
    for (h = 0; h < H; h++) {
      const float *xr = x + (t * H + h) * D;
      float *yr = out + (t * H + h) * D;
      for (i = 0; i < half; i++) {
        double inv_freq = pow(base, -(double)(2 * i) / (double)dims);
        double ang = (double)(pos0 + t) * inv_freq, c = cos(ang), s = sin(ang);
        double x1 = xr[i], x2 = xr[i + half];
        yr[i] = (float)(x1 * c - x2 * s);
        yr[i + half] = (float)(x2 * c + x1 * s);
      }
      for (i = 2 * half; i < D; i++) yr[i] = xr[i];
    }
}

void gat_k_conv1d(float *out, const float *x, const float *w, const float *b, float *tail,
                  int64_t T, int64_t C, int64_t W, int act) {
  int64_t t, c, j, r;
  for (t = 0; t < T; t++)
    for (c = 0; c < C; c++) {
      double acc = b ? (double)b[c] : 0.0;
      for (j = 0; j < W; j++) {
        int64_t src = t - W + 1 + j; /* < 0: from the tail of earlier calls */
        double xv = src >= 0 ? x[src * C + c] : tail[(W - 1 + src) * C + c];
        acc += (double)w[c * W + j] * xv;
      }
      out[t * C + c] = (float)(act == 1 ? gat_silu(acc) : acc);
    }
  /* new tail = the last W-1 rows of (old tail ++ x), oldest first */
  for (r = 0; r < W - 1; r++) {
    int64_t src = T - (W - 1) + r; /* index into x; < 0: into the old tail */
    if (src < 0) {
      int64_t from = W - 1 + src; /* >= r, so moving forward is safe in place */
      for (c = 0; c < C; c++) tail[r * C + c] = tail[from * C + c];
    } else {
      for (c = 0; c < C; c++) tail[r * C + c] = x[src * C + c];
    }
  }
}

void gat_k_attention(const gat_attn_args *a) {
  int64_t t, h, j, d, group = a->H / a->Hkv;
  for (t = 0; t < a->T; t++) {
    memcpy(a->cache_k + (a->pos0 + t) * a->Hkv * a->dk, a->k + t * a->Hkv * a->dk,
           sizeof(float) * (size_t)(a->Hkv * a->dk));
    memcpy(a->cache_v + (a->pos0 + t) * a->Hkv * a->dv, a->v + t * a->Hkv * a->dv,
           sizeof(float) * (size_t)(a->Hkv * a->dv));
    if (a->kb && a->cache_kb)
      memcpy(a->cache_kb + (a->pos0 + t) * a->H, a->kb + t * a->H, sizeof(float) * (size_t)a->H);
  }
  for (t = 0; t < a->T; t++) {
    int64_t i = a->pos0 + t;
    int64_t j0 = a->window > 0 && i - a->window + 1 > 0 ? i - a->window + 1 : 0;
    for (h = 0; h < a->H; h++) {
      int64_t hk = h / group;
      const float *q = a->q + (t * a->H + h) * a->dk;
      double mx = -INFINITY, sum = 0;
      float *o = a->out + (t * a->H + h) * a->dv;
      for (j = j0; j <= i; j++) {
        const float *kr = a->cache_k + (j * a->Hkv + hk) * a->dk;
        double s = 0;
        for (d = 0; d < a->dk; d++) s += (double)q[d] * kr[d];
        s *= a->scale;
        if (a->qb) s += a->qb[t * a->H + h];
        if (a->kb && a->cache_kb) s += a->cache_kb[j * a->H + h];
        if (a->relbias) {
          int64_t r = (a->relbias_len - 1) / 2 + j - i;
          s += a->relbias[r < 0 ? 0 : r >= a->relbias_len ? a->relbias_len - 1 : r];
        }
        a->scratch[j - j0] = s;
        if (s > mx) mx = s;
      }
      for (j = j0; j <= i; j++) {
        a->scratch[j - j0] = exp(a->scratch[j - j0] - mx);
        sum += a->scratch[j - j0];
      }
      for (d = 0; d < a->dv; d++) {
        double acc = 0;
        for (j = j0; j <= i; j++) acc += a->scratch[j - j0] * a->cache_v[(j * a->Hkv + hk) * a->dv + d];
        o[d] = (float)(acc / sum);
      }
    }
  }
}
