/* vecmath.c — f32 elementwise functions for gattnc -O2 `f32_math` loop nests:
 * exp, expm1, tanh, log, sigmoid, silu, softplus, logsigmoid, gelu_tanh, relu,
 * rsqrt, max, min. Written once: the C backend copies this file into the code
 * it generates, the LLVM backend links its bitcode (clang, -ffp-contract=off)
 * into each module, so both builds compute the same bits.
 *
 * Why our own: libm's expf/tanhf/logf are calls a compiler cannot vectorize,
 * so an elementwise nest with a gate ran one element at a time. These are
 * branch-free (selects become blends) and use only float arithmetic, float <->
 * uint32 bit copies (memcpy) and integer adds/shifts, so gcc and clang
 * vectorize the loops that call them with plain -O3 (no -ffast-math, no
 * vector extensions: the same text is the --target=portable code).
 *
 * The math (written from the definitions):
 *   e^x  = 2^n e^r, n = round(x / ln 2) by the 1.5 * 2^23 shifter, r = x - n ln 2
 *          with ln 2 split in two parts (Cody-Waite, n ln2_hi exact), |r| <= ln2/2,
 *          e^r by its Taylor polynomial of degree 7 (truncation < 6e-9 relative),
 *          2^n applied as 2^(n/2) * 2^(n - n/2) so both factors are normal floats
 *          for x in [-104, 89] (the clamp): overflow gives inf, subnormal results
 *          are rounded once, NaN propagates.
 *   e^x - 1 (for tanh) = 2^n q(r) + (2^n - 1), q(r) = e^r - 1 by Taylor (degree 8):
 *          no cancellation for small x (n = 0).
 *   tanh |x| = u / (u + 2) with u = e^(2|x|) - 1, |x| clamped to 9.5 (tanh = 1 in
 *          float beyond 9.01), sign copied back.
 *   log(1 + u), 0 <= u <= 1 = 2 atanh(s), s = u / (2 + u) (no rounding of 1 + u),
 *          or ln 2 + 2 atanh(s) with s = (u - 1) / (u + 3) for u > sqrt 2 - 1;
 *          |s| <= 0.1716, atanh series to s^11.
 *   log x = k ln 2 + 2 atanh((m - 1) / (m + 1)), x = m 2^k, m in [sqrt 1/2, sqrt 2)
 *          (subnormals scaled by 2^23 first; 0, negatives, inf and NaN by select).
 *   sigmoid x = 1 / (1 + e^-x), silu x = x / (1 + e^-x), softplus x = max(x, 0) +
 *          log(1 + e^-|x|) (x itself above 20, as the runtime), logsigmoid x =
 *          min(x, 0) - log(1 + e^-|x|), gelu_tanh x = x / (1 + e^(-2y)) with
 *          y = sqrt(2/pi) (x + 0.044715 x^3) (0.5 (1 + tanh y) = sigmoid(2y), no
 *          cancellation for negative x).
 * Measured against double libm (tests/unit/test_vecmath.cc, every float of wide
 * ranges): exp 1.2 ulp, tanh 2.4 ulp, sigmoid/silu 2.5 ulp, softplus/logsigmoid
 * 2.7 ulp, log 2 ulp; gelu_tanh 2.5 ulp for x >= -5 (below, the result is
 * < 1e-5 |x| and inherits the float rounding of y: up to 2e-5 relative).
 *
 * GAT_VM_FN: static inline in generated C (unused ones cost nothing); the
 * bitcode build defines it empty so every function is kept for linking. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef GAT_VM_FN
#if defined(__GNUC__) || defined(__clang__)
#define GAT_VM_FN static inline __attribute__((unused)) /* not every model calls every one */
#else
#define GAT_VM_FN static inline
#endif
#endif
GAT_VM_FN float gat_vm_asf(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }
GAT_VM_FN uint32_t gat_vm_asu(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }
/* c ? a : b as a bit blend: a float ?: becomes a branch that GCC's PRE fills with the
 * arithmetic after it, and then AVX2/SSE loops stay scalar (-ftrapping-math) */
GAT_VM_FN float gat_vm_sel(int c, float a, float b) {
  const uint32_t m = 0u - (uint32_t)c;
  return gat_vm_asf((gat_vm_asu(a) & m) | (gat_vm_asu(b) & ~m));
}
/* e^x = 2^n e^r, r = x - n ln2 (two-part ln2), Taylor degree 7, 2^n as two normal factors */
GAT_VM_FN float gat_vm_expf(float x) {
  float xc = gat_vm_sel(x < -104.0f, -104.0f, x);
  xc = gat_vm_sel(xc > 89.0f, 89.0f, xc);
  const float t = xc * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: rounds to an integer */
  const float n = t - 12582912.0f;
  float r = xc - n * 0.693145751953125f;
  r = r - n * 1.428606765330187e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t ni = (int32_t)(gat_vm_asu(t) - 0x4B400000u); /* n, from the shifter's mantissa */
  const int32_t n1 = ni / 2, n2 = ni - n1;
  return p * gat_vm_asf((uint32_t)(n1 + 127) << 23) * gat_vm_asf((uint32_t)(n2 + 127) << 23);
}
/* e^x - 1 for |x| <= 19: 2^n q(r) + (2^n - 1), q = e^r - 1 (Taylor degree 8) */
GAT_VM_FN float gat_vm_expm1f(float x) {
  const float t = x * 1.44269504088896341f + 12582912.0f;
  const float n = t - 12582912.0f;
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.428606765330187e-06f;
  float q = 1.0f / 40320.0f;
  q = q * r + 1.0f / 5040.0f;
  q = q * r + 1.0f / 720.0f;
  q = q * r + 1.0f / 120.0f;
  q = q * r + 1.0f / 24.0f;
  q = q * r + 1.0f / 6.0f;
  q = q * r + 0.5f;
  q = q * r * r + r;
  const float s = gat_vm_asf((uint32_t)((int32_t)(gat_vm_asu(t) - 0x4B400000u) + 127) << 23);
  return s * q + (s - 1.0f);
}
GAT_VM_FN float gat_vm_tanhf(float x) {
  const float a = gat_vm_sel(fabsf(x) > 9.5f, 9.5f, fabsf(x)); /* tanh(9.5) rounds to 1 */
  const float u = gat_vm_expm1f(2.0f * a);
  return copysignf(u / (u + 2.0f), x);
}
/* log(1 + u) for 0 <= u <= 1: 2 atanh(u / (2 + u)), or ln2 + 2 atanh((u - 1) / (u + 3)) */
GAT_VM_FN float gat_vm_log1pf01(float u) {
  const int big = u > 0.41421356f;
  const float s = gat_vm_sel(big, u - 1.0f, u) / gat_vm_sel(big, u + 3.0f, u + 2.0f);
  const float s2 = s * s;
  float p = 1.0f / 11.0f;
  p = p * s2 + 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  const float l = 2.0f * s + 2.0f * s * (p * s2);
  return l + gat_vm_sel(big, 0.693147180559945309f, 0.0f);
}
/* log x = k ln2 + 2 atanh((m - 1) / (m + 1)), x = m 2^k, m in [sqrt(1/2), sqrt 2) */
GAT_VM_FN float gat_vm_logf(float x) {
  const int sub = x < 1.17549435e-38f;
  const uint32_t b = gat_vm_asu(gat_vm_sel(sub, x * 8388608.0f, x));
  const float m1 = gat_vm_asf((b & 0x007FFFFFu) | 0x3F800000u); /* in [1, 2) */
  const int hi = m1 > 1.41421356f;
  const float m = gat_vm_sel(hi, m1 * 0.5f, m1);
  const float kf = (float)((int32_t)((b >> 23) & 0xFFu) - 127 + hi - 23 * sub);
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  float p = 1.0f / 11.0f;
  p = p * s2 + 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f;
  p = p * s2 + 1.0f / 5.0f;
  p = p * s2 + 1.0f / 3.0f;
  const float l = kf * 0.693145751953125f + (2.0f * s + (2.0f * s * (p * s2) + kf * 1.428606765330187e-06f));
  const float r = gat_vm_sel(x == 0.0f, -INFINITY, gat_vm_sel(x < 0.0f, NAN, l));
  return gat_vm_sel(x != x || x == INFINITY, x, r);
}
GAT_VM_FN float gat_vm_sigmoidf(float x) { return 1.0f / (1.0f + gat_vm_expf(-x)); }
GAT_VM_FN float gat_vm_siluf(float x) { return x / (1.0f + gat_vm_expf(-x)); }
GAT_VM_FN float gat_vm_softplusf(float x) {
  const float v = gat_vm_sel(x > 0.0f, x, 0.0f) + gat_vm_log1pf01(gat_vm_expf(-fabsf(x)));
  return gat_vm_sel(x > 20.0f, x, v);
}
GAT_VM_FN float gat_vm_logsigmoidf(float x) {
  return gat_vm_sel(x < 0.0f, x, 0.0f) - gat_vm_log1pf01(gat_vm_expf(-fabsf(x)));
}
/* 0.5 x (1 + tanh y) = x sigmoid(2y), y = sqrt(2/pi) (x + 0.044715 x^3) */
GAT_VM_FN float gat_vm_gelu_tanhf(float x) {
  const float y = 0.797884560802865356f * (x + 0.044715f * x * x * x);
  return x / (1.0f + gat_vm_expf(-2.0f * y));
}
GAT_VM_FN float gat_vm_reluf(float x) { return gat_vm_sel(x > 0.0f, x, 0.0f); }
GAT_VM_FN float gat_vm_rsqrtf(float x) { return 1.0f / sqrtf(x); }
GAT_VM_FN float gat_vm_maxf(float a, float b) { return gat_vm_sel(a > b, a, b); }
GAT_VM_FN float gat_vm_minf(float a, float b) { return gat_vm_sel(a < b, a, b); }
