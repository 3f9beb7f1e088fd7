// vecmath_ref.h — what test_vecmath.cc (the C functions of kernels_math.c)
// and test_llvm_vecmath.cc (their LLVM IR twins) measure the same way: the
// double reference of each float function, walks over the float range, and
// the maximum error in ulps of the reference.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

// out[i] = f(in[i]) for i < n: one float function under test
typedef void (*VmFn)(const float *, float *, int64_t);

inline double vm_ref(const std::string &f, double x) {
  if (f == "exp") return std::exp(x);
  if (f == "tanh") return std::tanh(x);
  if (f == "sigmoid") return 1.0 / (1.0 + std::exp(-x));
  if (f == "silu") return x / (1.0 + std::exp(-x));
  if (f == "softplus") return x > 20 ? x : std::log1p(std::exp(x));
  if (f == "logsigmoid") return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x));
  if (f == "gelu_tanh") {
    double y = 0.79788456080286535588 * (x + 0.044715 * x * x * x);
    return x / (1.0 + std::exp(-2.0 * y)); // = 0.5 x (1 + tanh y), without its cancellation
  }
  if (f == "log") return std::log(x);
  return NAN;
}

// every `stride`-th float in [lo, hi] (lo, hi >= 0), with its negation when both_signs
inline std::vector<float> float_walk(float lo, float hi, uint32_t stride, bool both_signs) {
  uint32_t a, b;
  std::memcpy(&a, &lo, 4);
  std::memcpy(&b, &hi, 4);
  std::vector<float> xs;
  for (uint64_t u = a; u <= b; u += stride) {
    float x;
    uint32_t v = (uint32_t)u;
    std::memcpy(&x, &v, 4);
    xs.push_back(x);
    if (both_signs) xs.push_back(-x);
  }
  return xs;
}

struct ErrStat {
  double max_ulp = 0, max_rel = 0, at_ulp = 0;
  long n = 0, bad_special = 0;
};

// max error of fn (the function f) over xs restricted to [lo, hi], in ulps of the
// reference (normal float results only; results beyond FLT_MAX must be inf, below
// FLT_MIN within 2 of the smallest normals' ulp); an empty ErrStat when fn is NULL
inline ErrStat vm_measure(VmFn fn, const char *f, const std::vector<float> &xs, double lo, double hi) {
  ErrStat st;
  if (!fn) return st;
  std::vector<float> in, out;
  for (float x : xs)
    if (x >= lo && x <= hi) in.push_back(x);
  out.resize(in.size());
  fn(in.data(), out.data(), (int64_t)in.size());
  for (size_t i = 0; i < in.size(); i++) {
    double r = vm_ref(f, in[i]), g = out[i];
    if (std::fabs(r) > FLT_MAX) {
      st.bad_special += !(std::isinf(g) && (g > 0) == (r > 0));
      continue;
    }
    if (std::fabs(r) < FLT_MIN) {
      st.bad_special += std::fabs(g - r) > 2.0 * std::ldexp(1.0, -149) * 8;
      continue;
    }
    int e;
    std::frexp(r, &e);
    double ulp = std::ldexp(1.0, e - 24);
    double u = std::fabs(g - r) / ulp;
    if (!(u <= st.max_ulp)) {
      st.max_ulp = u;
      st.at_ulp = in[i];
    }
    st.max_rel = std::fmax(st.max_rel, std::fabs(g - r) / std::fabs(r));
    st.n++;
  }
  return st;
}

// the special values every float function must get exactly (NaN in, NaN out;
// saturation at +-inf and beyond the float range; exact zeros and ones);
// f1(name, x) evaluates one function at one point. Needs gtest.
template <class F1>
void vm_expect_special_values(F1 f1, const char *const *fns, int nfns) {
  const float inf = INFINITY, nan = NAN;
  for (int i = 0; i < nfns; i++) EXPECT_TRUE(std::isnan(f1(fns[i], nan))) << fns[i] << "(NaN)";
  EXPECT_EQ(f1("exp", -inf), 0.0f);
  EXPECT_EQ(f1("exp", -200.0f), 0.0f);
  EXPECT_EQ(f1("exp", inf), inf);
  EXPECT_EQ(f1("exp", 89.0f), inf);
  EXPECT_EQ(f1("exp", 0.0f), 1.0f);
  EXPECT_GT(f1("exp", -100.0f), 0.0f); // subnormal: e^-100 = 3.7e-44
  EXPECT_NEAR(f1("exp", -100.0f), 3.720076e-44f, 2e-45f);
  EXPECT_EQ(f1("tanh", inf), 1.0f);
  EXPECT_EQ(f1("tanh", -inf), -1.0f);
  EXPECT_EQ(f1("tanh", 0.0f), 0.0f);
  EXPECT_TRUE(std::signbit(f1("tanh", -0.0f)));
  EXPECT_EQ(f1("sigmoid", inf), 1.0f);
  EXPECT_EQ(f1("sigmoid", -inf), 0.0f);
  EXPECT_EQ(f1("sigmoid", 0.0f), 0.5f);
  EXPECT_EQ(f1("silu", inf), inf);
  EXPECT_EQ(f1("silu", -200.0f), 0.0f);
  EXPECT_EQ(f1("softplus", inf), inf);
  EXPECT_EQ(f1("softplus", -inf), 0.0f);
  EXPECT_EQ(f1("softplus", 30.0f), 30.0f);
  EXPECT_EQ(f1("logsigmoid", -inf), -inf);
  EXPECT_EQ(f1("logsigmoid", inf), 0.0f);
  EXPECT_EQ(f1("gelu_tanh", inf), inf);
  EXPECT_TRUE(std::isnan(f1("gelu_tanh", -inf))); // -inf * 0, as the runtime's double formula
  EXPECT_EQ(f1("gelu_tanh", 0.0f), 0.0f);
  EXPECT_EQ(f1("log", 0.0f), -inf);
  EXPECT_EQ(f1("log", 1.0f), 0.0f);
  EXPECT_EQ(f1("log", inf), inf);
  EXPECT_TRUE(std::isnan(f1("log", -1.0f)));
}

// a model with lane sums (sum, mean, a strided sum) and every f32 gate function:
// both tests compile it and compare the backends with double
static const char *const kVmSums = R"(model t {
  max T = 8
  input a : f32[T, 100]
  input b : f32[T, 100]
  input c : f32[T, 64, 3]
  output d : f32[T]
  output mn : f32[T]
  output s : f32[T, 3]
  output g : f32[T, 100]
  d[t] = sum(j) a[t, j] * b[t, j]
  mn[t] = mean(j) sigmoid(a[t, j]) * b[t, j]
  s[t, i] = sum(j) c[t, j, i]
  g[t, j] = a[t, j] * silu(b[t, j]) + tanh(a[t, j]) * softplus(b[t, j]) - logsigmoid(a[t, j]) * gelu(b[t, j], approx: "tanh")
}
)";
