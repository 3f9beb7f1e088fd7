/* weights_init.c — deterministic random initial weights (`gattnc init`, and
 * tests that need a runnable model without a checkpoint).
 *
 * Every parameter gets its own generator, seeded from the user's seed and an
 * FNV-1a hash of the parameter's name, so adding or renaming one parameter
 * never changes the values of another. The generator is xoshiro256**
 * (seeded through splitmix64); normals come from Box–Muller. Only plain
 * double arithmetic and libm functions are used, and every value is rounded
 * to f32 once, so the bytes are the same on every platform we build on. The
 * init kinds are documented in ir.h (IrInitKind). */
#include <math.h>
#include <string.h>

#include "tensor.h"

typedef struct WiRng {
  uint64_t s[4];
  int have_spare; /* Box–Muller makes normals in pairs */
  double spare;
} WiRng;

static uint64_t wi_splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t wi_fnv1a(const char *s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    h ^= *c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

static uint64_t wi_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t wi_next(WiRng *r) {
  uint64_t *s = r->s;
  uint64_t result = wi_rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = wi_rotl(s[3], 45);
  return result;
}

static void wi_seed(WiRng *r, uint64_t seed, const char *name) {
  uint64_t x = seed ^ wi_fnv1a(name);
  for (int i = 0; i < 4; i++) r->s[i] = wi_splitmix64(&x);
  r->have_spare = 0;
}

/* Uniform in [0, 1) with 53 random bits. */
static double wi_uniform01(WiRng *r) { return (double)(wi_next(r) >> 11) * 0x1.0p-53; }

static double wi_normal(WiRng *r) {
  if (r->have_spare) {
    r->have_spare = 0;
    return r->spare;
  }
  double u1 = 1.0 - wi_uniform01(r); /* (0, 1]: log(u1) is finite */
  double u2 = wi_uniform01(r);
  double rad = sqrt(-2.0 * log(u1));
  double ang = 6.283185307179586 * u2;
  r->spare = rad * sin(ang);
  r->have_spare = 1;
  return rad * cos(ang);
}

static double wi_value(WiRng *r, const IrParam *p, const int64_t *idx) {
  double a = p->init.a, b = p->init.b;
  switch (p->init.kind) {
    case IR_INIT_NORMAL: return a + b * wi_normal(r);
    case IR_INIT_UNIFORM: return a + (b - a) * wi_uniform01(r);
    case IR_INIT_CONST: return a;
    case IR_INIT_LINEAR: {
      /* fan_in is the last dim; for conv weights [C, 1, W] that is also the
       * product of the dims after the first, as PyTorch computes it. */
      int64_t fan_in = p->shape.rank ? p->shape.dims[p->shape.rank - 1] : 1;
      double bound = 1.0 / sqrt((double)fan_in);
      return -bound + 2.0 * bound * wi_uniform01(r);
    }
    case IR_INIT_LOG_UNIFORM: return log(a + (b - a) * wi_uniform01(r));
    case IR_INIT_DT_BIAS: {
      double la = log(a), lb = log(b);
      double dt = exp(la + (lb - la) * wi_uniform01(r));
      return dt + log(-expm1(-dt)); /* softplus^-1(dt) */
    }
    case IR_INIT_EYE: {
      int rk = p->shape.rank;
      if (rk < 2) return 1.0;
      return idx[rk - 1] == idx[rk - 2] ? 1.0 : 0.0;
    }
    case IR_INIT_ONE_HOT_LAST: {
      /* DenseFormer: Z_i starts as X_i, the newest of the averaged outputs */
      int rk = p->shape.rank;
      if (rk < 1) return 1.0;
      return idx[rk - 1] == p->shape.dims[rk - 1] - 1 ? 1.0 : 0.0;
    }
  }
  gat_unreachable();
}

void weights_init(const IrModule *m, uint64_t seed, TensorSet *out) {
  for (int i = 0; i < m->params.len; i++) {
    const IrParam *p = m->params.data[i];
    for (int d = 0; d < p->shape.rank; d++) GAT_ASSERT(p->shape.dims[d] >= 0);
    Tensor *t = tensorset_add(out, p->name, p->dtype, p->shape.rank, p->shape.dims);
    WiRng r;
    wi_seed(&r, seed, p->name);
    int64_t n = tensor_numel(t), idx[IR_MAX_RANK];
    memset(idx, 0, sizeof idx);
    for (int64_t k = 0; k < n; k++) {
      double v = wi_value(&r, p, idx);
      if (p->dtype == IR_F32) ((float *)t->data)[k] = (float)v;
      else ((int32_t *)t->data)[k] = (int32_t)v;
      for (int d = p->shape.rank - 1; d >= 0; d--) { /* row-major multi-index */
        if (++idx[d] < p->shape.dims[d]) break;
        idx[d] = 0;
      }
    }
  }
}
