/* gat_runtime.c — status strings, the message buffer, arena helpers, the
 * timing hook and the row kernels generated models call. Everything works on
 * caller-provided memory; nothing here allocates or keeps global state.
 * Arithmetic accumulates in double and rounds once when storing, the same
 * rule as the reference interpreter, so results agree to float rounding; the
 * one exception is the conv's silu, evaluated in f32 on the rounded sums (a few
 * ulps). The loops are written to vectorize (-O3): contiguous innermost loops,
 * partial sums for reductions, cos/sin and weights hoisted out of the hot loops,
 * stack buffers instead of allocation (see docs/optimizer.md, "Runtime kernels"). */
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

/* sum of x[j]^2 (centre 0) or (x[j] - centre)^2 in double over 8 interleaved partial
 * sums: the serial chain of one accumulator is bound by the add latency and does not
 * vectorize (no reassociation in ISO C); the order changes results by ~1e-16 relative */
static double rt_sum_sq(const float *x, int64_t n, double centre) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0, k;
  for (; j + 8 <= n; j += 8)
    for (k = 0; k < 8; k++) {
      const double d = (double)x[j + k] - centre;
      s[k] += d * d;
    }
  for (; j < n; j++) {
    const double d = (double)x[j] - centre;
    s[0] += d * d;
  }
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

static double rt_sum(const float *x, int64_t n) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0, k;
  for (; j + 8 <= n; j += 8)
    for (k = 0; k < 8; k++) s[k] += x[j + k];
  for (; j < n; j++) s[0] += x[j];
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

void gat_k_rms_norm(float *out, const float *x, const float *w, int64_t rows, int64_t n,
                    double eps, int plus_one) {
  int64_t r, j;
  for (r = 0; r < rows; r++) {
    const float *xr = x + r * n;
    float *yr = out + r * n;
    const double inv = 1.0 / sqrt(rt_sum_sq(xr, n, 0.0) / (double)n + eps);
    if (!w)
      for (j = 0; j < n; j++) yr[j] = (float)(xr[j] * inv);
    else if (plus_one)
      for (j = 0; j < n; j++) yr[j] = (float)(xr[j] * inv * (1.0 + w[j]));
    else
      for (j = 0; j < n; j++) yr[j] = (float)(xr[j] * inv * w[j]);
  }
}

void gat_k_layer_norm(float *out, const float *x, const float *w, const float *b, int64_t rows,
                      int64_t n, double eps) {
  int64_t r, j;
  for (r = 0; r < rows; r++) {
    const float *xr = x + r * n;
    float *yr = out + r * n;
    const double mean = rt_sum(xr, n) / (double)n;
    const double inv = 1.0 / sqrt(rt_sum_sq(xr, n, mean) / (double)n + eps);
    for (j = 0; j < n; j++) {
      double y = (xr[j] - mean) * inv;
      if (w) y *= w[j];
      if (b) y += b[j];
      yr[j] = (float)y;
    }
  }
}

void gat_k_l2_norm(float *out, const float *x, int64_t rows, int64_t n, double eps) {
  int64_t r, j;
  for (r = 0; r < rows; r++) {
    const double inv = 1.0 / sqrt(rt_sum_sq(x + r * n, n, 0.0) + eps);
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

/* ---- RoPE ------------------------------------------------------------------
 * The angle of pair i at position p is p * inv_freq_i, inv_freq_i = base^(-2i/dims),
 * evaluated in double like the interpreter and the float64 PyTorch references of the
 * tests (PyTorch models usually take cos/sin of f32 angles, which moves them by up to
 * about p * 2^-24; the interpreter is the reference, so double it is). cos/sin are
 * computed once per (row, i) and shared by the H heads. For consecutive positions the
 * (cos, sin) pair advances by the angle-addition formula, a rotation by inv_freq_i
 * (four multiplies, vectorizable), and is re-anchored with libm every ROPE_ANCHOR rows,
 * which keeps it within ~1e-15 of libm's values. The rotation itself is done in
 * double and rounded once, as the interpreter does. Pairs are taken ROPE_ICH at a
 * time (stack buffers, no allocation). */
#define ROPE_ICH 64
#define ROPE_ANCHOR 16

/* Row t's position is pos[t] when pos is given (rows gathered into a
 * mixture/skip region keep their own positions), else pos0 + t. */
static void rope_rows(float *out, const float *x, int64_t T, int64_t H, int64_t D, int64_t pos0,
                      const int32_t *pos, double base, int64_t dims) {
  int64_t t, h, i, i0, half = dims / 2;
  double invf[ROPE_ICH], c1[ROPE_ICH], s1[ROPE_ICH], cs[ROPE_ICH], sn[ROPE_ICH];
  float a[ROPE_ICH], b[ROPE_ICH];
  for (i0 = 0; i0 < half; i0 += ROPE_ICH) {
    const int64_t ni = half - i0 < ROPE_ICH ? half - i0 : ROPE_ICH;
    int64_t prev = 0, since = ROPE_ANCHOR; /* rows since the last libm anchor */
    for (i = 0; i < ni; i++) {
      invf[i] = pow(base, -(double)(2 * (i0 + i)) / (double)dims);
      c1[i] = cos(invf[i]);
      s1[i] = sin(invf[i]);
    }
    for (t = 0; t < T; t++) {
      const int64_t p = pos ? (int64_t)pos[t] : pos0 + t;
      if (t > 0 && p == prev) {
        /* same position as the row before (routed rows): same cos/sin */
      } else if (t > 0 && p == prev + 1 && since < ROPE_ANCHOR) {
        for (i = 0; i < ni; i++) {
          const double c = cs[i] * c1[i] - sn[i] * s1[i];
          sn[i] = sn[i] * c1[i] + cs[i] * s1[i];
          cs[i] = c;
        }
        since++;
      } else {
        for (i = 0; i < ni; i++) {
          const double ang = (double)p * invf[i];
          cs[i] = cos(ang);
          sn[i] = sin(ang);
        }
        since = 1;
      }
      prev = p;
      for (h = 0; h < H; h++) {
        const float *xr = x + (t * H + h) * D + i0;
        float *yr = out + (t * H + h) * D + i0;
        /* local copies: out may be x (in place), and the loop below then needs no
         * aliasing checks to vectorize */
        memcpy(a, xr, sizeof(float) * (size_t)ni);
        memcpy(b, xr + half, sizeof(float) * (size_t)ni);
        for (i = 0; i < ni; i++) {
          const double x1 = a[i], x2 = b[i];
          yr[i] = (float)(x1 * cs[i] - x2 * sn[i]);
          yr[i + half] = (float)(x2 * cs[i] + x1 * sn[i]);
        }
      }
    }
  }
  if (out != x && 2 * half < D)
    for (t = 0; t < T * H; t++)
      memcpy(out + t * D + 2 * half, x + t * D + 2 * half, sizeof(float) * (size_t)(D - 2 * half));
}

void gat_k_rope(float *out, const float *x, int64_t T, int64_t H, int64_t D, int64_t pos0,
                double base, int64_t dims) {
  rope_rows(out, x, T, H, D, pos0, NULL, base, dims);
}

void gat_k_rope_pos(float *out, const float *x, int64_t T, int64_t H, int64_t D, const int32_t *pos,
                    double base, int64_t dims) {
  rope_rows(out, x, T, H, D, 0, pos, base, dims);
}

/* ---- causal depthwise conv ------------------------------------------------------
 * Time outer, channels innermost and contiguous: output row t, CONV_CCH channels at a
 * time, is acc[c] = b[c] + sum_j w[c, j] * src_j[c] over the rows src_j of (tail ++ x),
 * a loop that vectorizes along c; every stream (x rows, the out row, w) is read front to
 * back. W = 4, the usual short conv, is one fused pass (w read as 4-wide groups, the sum
 * in registers); other W a pass per tap. Accumulation in double (FMA where available),
 * rounded once, as the interpreter. The silu runs on the rounded f32 sums with a
 * vectorizable f32 e^x (conv_silu_f32), a few f32 ulps from the interpreter's double
 * silu. Row pointers of the first CONV_WMAX taps are kept; wider kernels recompute the rest. */
#define CONV_CCH 256
#define CONV_WMAX 16
/* a * b + c for a, b floats widened to double and c a double: an FMA where the target has
 * one (GCC and Clang inline and vectorize fma there), elsewhere the expression, not a slow
 * libm call. Both give the same bits: the product of two floats is exact in double, so
 * only the addition rounds. That matters: the LLVM backend's code (the JIT) calls the
 * runtime built into gattnc, compiled for plain x86-64, while the C build compiles this
 * file for the host CPU, and the two must agree bit for bit. */
#if defined(__FMA__)
#define GAT_FMA(a, b, c) fma(a, b, c)
#else
#define GAT_FMA(a, b, c) ((a) * (b) + (c))
#endif
/* The f32 arithmetic of conv_silu_f32 rounds every product and sum (no contraction, even
 * when this file is built in GNU mode, where gcc contracts by default): an FMA there would
 * change the bits with the target (see GAT_FMA). */
#if defined(__clang__)
#define GAT_NO_CONTRACT_ATTR
#define GAT_NO_CONTRACT_BEGIN _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define GAT_NO_CONTRACT_ATTR __attribute__((optimize("fp-contract=off")))
#define GAT_NO_CONTRACT_BEGIN
#else
#define GAT_NO_CONTRACT_ATTR
#define GAT_NO_CONTRACT_BEGIN
#endif

/* y[k] = a[k] * sigmoid(a[k]) for n <= CONV_CCH values, f32. e^-a = 2^m * P(r) with
 * m = round(-a log2 e), r = -a - m ln 2 (two-part ln 2), P the degree-7 Taylor polynomial
 * (|r| <= 0.35: error < 6e-9); 2^m is built from the exponent bits of the rounding
 * constant through uint32 arrays (memcpy, no type punning) so every loop vectorizes. */
static GAT_NO_CONTRACT_ATTR void conv_silu_f32(float *y, const float *a, int64_t n) {
  GAT_NO_CONTRACT_BEGIN
  float tt[CONV_CCH], pp[CONV_CCH];
  uint32_t bits[CONV_CCH];
  int64_t k;
  for (k = 0; k < n; k++) {
    float z = -a[k];
    z = z < -87.0f ? -87.0f : z; /* e^z stays a normal float; beyond, the result is exact anyway */
    z = z > 88.0f ? 88.0f : z;
    {
      const float t = z * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: rounds to an integer */
      const float m = t - 12582912.0f;
      const float r = (z - m * 0.693145751953125f) - m * 1.428606765330187e-06f;
      float p = 1.0f / 5040;
      p = p * r + 1.0f / 720;
      p = p * r + 1.0f / 120;
      p = p * r + 1.0f / 24;
      p = p * r + 1.0f / 6;
      p = p * r + 0.5f;
      p = p * r + 1.0f;
      p = p * r + 1.0f;
      tt[k] = t;
      pp[k] = p;
    }
  }
  memcpy(bits, tt, sizeof(float) * (size_t)n);
  for (k = 0; k < n; k++) bits[k] = (bits[k] - 0x4B400000u + 127u) << 23; /* 2^m */
  memcpy(tt, bits, sizeof(float) * (size_t)n);
  for (k = 0; k < n; k++) y[k] = a[k] / (pp[k] * tt[k] + 1.0f);
}

void gat_k_conv1d(float *out, const float *x, const float *w, const float *b, float *tail,
                  int64_t T, int64_t C, int64_t W, int act) {
  int64_t t, c, j, r;
  double acc[CONV_CCH];
  float rowf[CONV_CCH];
  int64_t c0;
  /* t outer and whole rows inner: every stream (x rows, out row, w) is read front to
   * back, which the hardware prefetchers follow (a channel-block-outer order strides
   * through rows a page apart and is bound by memory latency) */
  for (t = 0; t < T; t++) {
    const float *xr[CONV_WMAX];
    for (j = 0; j < W && j < CONV_WMAX; j++) {
      const int64_t src = t - W + 1 + j; /* < 0: from the tail of earlier calls */
      xr[j] = src >= 0 ? x + src * C : tail + (W - 1 + src) * C;
    }
    for (c0 = 0; c0 < C; c0 += CONV_CCH) {
      const int64_t nc = C - c0 < CONV_CCH ? C - c0 : CONV_CCH;
      if (W == 4) { /* the usual short conv: one fused pass, w read as 4-wide groups */
        const float *x0 = xr[0] + c0, *x1 = xr[1] + c0, *x2 = xr[2] + c0, *x3 = xr[3] + c0;
        const float *wc = w + c0 * 4;
        if (b) {
          const float *bc = b + c0;
          for (c = 0; c < nc; c++)
            acc[c] = GAT_FMA((double)wc[4 * c + 3], x3[c],
                             GAT_FMA((double)wc[4 * c + 2], x2[c],
                                     GAT_FMA((double)wc[4 * c + 1], x1[c], GAT_FMA((double)wc[4 * c], x0[c], (double)bc[c]))));
        } else {
          for (c = 0; c < nc; c++)
            acc[c] = GAT_FMA((double)wc[4 * c + 3], x3[c],
                             GAT_FMA((double)wc[4 * c + 2], x2[c],
                                     GAT_FMA((double)wc[4 * c + 1], x1[c], (double)wc[4 * c] * x0[c])));
        }
      } else {
        for (c = 0; c < nc; c++) acc[c] = b ? (double)b[c0 + c] : 0.0;
        for (j = 0; j < W; j++) {
          const int64_t src = t - W + 1 + j;
          const float *xj = (j < CONV_WMAX ? xr[j] : src >= 0 ? x + src * C : tail + (W - 1 + src) * C) + c0;
          const float *wj = w + c0 * W + j;
          for (c = 0; c < nc; c++) acc[c] = GAT_FMA((double)wj[c * W], xj[c], acc[c]);
        }
      }
      if (act == 1) {
        for (c = 0; c < nc; c++) rowf[c] = (float)acc[c];
        conv_silu_f32(out + t * C + c0, rowf, nc);
      } else {
        for (c = 0; c < nc; c++) out[t * C + c0 + c] = (float)acc[c];
      }
    }
  }
  /* new tail = the last W-1 rows of (old tail ++ x), oldest first */
  for (r = 0; r < W - 1; r++) {
    int64_t src = T - (W - 1) + r; /* index into x; < 0: into the old tail */
    if (src < 0) {
      int64_t from = W - 1 + src; /* >= r, so moving forward is safe in place */
      memmove(tail + r * C, tail + from * C, sizeof(float) * (size_t)C);
    } else {
      memcpy(tail + r * C, x + src * C, sizeof(float) * (size_t)C);
    }
  }
}

void gat_k_copy_rows(float *dst, const float *src, int64_t pos0, int64_t T, int64_t row) {
  if (T > 0 && row > 0) memcpy(dst + pos0 * row, src + pos0 * row, sizeof(float) * (size_t)(T * row));
}

void gat_k_attention(const gat_attn_args *a) {
  int64_t t, h, j, d, group = a->H / a->Hkv;
  for (t = 0; t < a->T; t++) {
    int64_t p = a->pos ? (int64_t)a->pos[t] : a->pos0 + t;
    memcpy(a->cache_k + p * a->Hkv * a->dk, a->k + t * a->Hkv * a->dk, sizeof(float) * (size_t)(a->Hkv * a->dk));
    memcpy(a->cache_v + p * a->Hkv * a->dv, a->v + t * a->Hkv * a->dv, sizeof(float) * (size_t)(a->Hkv * a->dv));
    if (a->kb && a->cache_kb) memcpy(a->cache_kb + p * a->H, a->kb + t * a->H, sizeof(float) * (size_t)a->H);
  }
  for (t = 0; t < a->T; t++) {
    int64_t i = a->pos ? (int64_t)a->pos[t] : a->pos0 + t;
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
