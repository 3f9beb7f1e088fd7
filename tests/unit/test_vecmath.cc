// test_vecmath.cc — the f32 functions of -O2 f32_math nests (codegen/kernels/vecmath.c)
// and the lane sums of the C backend (codegen/c/emit_c.c):
//   - accuracy: the emitted function text is compiled (cc -O3 -march=native, the
//     flags of -O2 builds) with loops calling each function, and every result over
//     wide input ranges (float bit patterns walked with a stride, both signs) is
//     compared with the function computed in double from libm; the maximum error in
//     ulps of the double value is printed and bounded;
//   - special values (NaN, infinities, overflow, zero, negative log);
//   - the text compiles warning-free with gcc and clang -std=c11 -Wall -Wextra
//     -pedantic -Werror, also when no function is used, and gcc vectorizes a loop
//     calling each function;
//   - lane sums: generated -O2 code of small models sums unit-stride reductions in
//     lanes (and leaves strided ones sequential), and its results match sums
//     computed here in double within float rounding (the observed error vs -O0 is
//     printed).
#include <gtest/gtest.h>

#include <dlfcn.h>
#include <unistd.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "backend.h"
#include "frontend.h"
#include "interp.h"
#include "ir.h"
#include "kernels_math.h"
#include "pass.h"
#include "tensor.h"
#include "util.h"
}

#include "loop_fixtures.h"
#include "vecmath_ref.h"

namespace {

using namespace loop_fixtures;

const char *kFns[] = {"exp", "tanh", "sigmoid", "silu", "softplus", "logsigmoid", "gelu_tanh", "log"};

std::string work_dir() {
  static std::string d;
  if (d.empty()) {
    char tmpl[] = "/tmp/gat_vecmath_XXXXXX";
    const char *p = mkdtemp(tmpl);
    d = p ? p : "/tmp";
  }
  return d;
}

std::string math_text() {
  StrBuf sb = {0};
  kernels_math_emit(&sb);
  std::string s = sb_cstr(&sb);
  sb_free(&sb);
  return s;
}

// the prelude of generated code + one loop per function: y[i] = f(x[i])
std::string wrapper_source() {
  std::string s = "#include <math.h>\n#include <stdint.h>\n#include <string.h>\n\n" + math_text();
  for (const char *f : kFns) {
    s += std::string("void t_") + f + "(const float *x, float *restrict y, int64_t n) {\n";
    s += std::string("  for (int64_t i = 0; i < n; i++) y[i] = gat_vm_") + f + "f(x[i]);\n}\n";
  }
  return s;
}

void write_file(const std::string &path, const std::string &text) {
  std::ofstream f(path);
  f << text;
}

int sh(const std::string &cmd) { return std::system(cmd.c_str()); }

bool have(const char *cc) { return sh(std::string("command -v ") + cc + " > /dev/null 2>&1") == 0; }

typedef VmFn LoopFn;

struct Lib {
  void *h = nullptr;
  Lib() {
    std::string dir = work_dir(), c = dir + "/vm.c", so = dir + "/vm.so";
    write_file(c, wrapper_source());
    const char *cc = std::getenv("CC") ? std::getenv("CC") : "cc";
    std::string cmd = std::string(cc) + " -std=c11 -O3 -march=native -shared -fPIC -o " + so + " " + c + " -lm";
    if (sh(cmd) != 0) return;
    h = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  }
  ~Lib() {
    if (h) dlclose(h);
  }
  LoopFn fn(const char *name) { return h ? (LoopFn)dlsym(h, (std::string("t_") + name).c_str()) : nullptr; }
};

Lib &lib() {
  static Lib l;
  return l;
}

// references in double from libm, written from the definitions
ErrStat measure(const char *f, const std::vector<float> &xs, double lo, double hi) {
  return vm_measure(lib().fn(f), f, xs, lo, hi);
}

TEST(Vecmath, AccuracyAgainstDoubleLibm) {
  ASSERT_NE(lib().h, nullptr) << "could not compile/load " << work_dir() << "/vm.c";
  // small to large magnitudes, both signs: about 2 million points per walk
  std::vector<float> wide = float_walk(1e-30f, 200.0f, 331, true);
  std::vector<float> pos = float_walk(1e-45f, 3e38f, 997, false);
  struct Case {
    const char *f;
    double lo, hi, bound_ulp;
  } cases[] = {
      {"exp", -87.3, 88.7, 1.5},
      {"tanh", -200, 200, 3},
      {"sigmoid", -87, 200, 3},
      {"silu", -87, 200, 3},
      {"softplus", -200, 200, 3.5},
      {"logsigmoid", -200, 200, 3.5},
      {"gelu_tanh", -1, 200, 3},
      {"log", 1e-45, 3e38, 2.5},
  };
  for (const Case &c : cases) {
    ErrStat st = measure(c.f, std::string(c.f) == "log" ? pos : wide, c.lo, c.hi);
    std::printf("  %-10s on [%g, %g]: max %.2f ulp (at x = %.9g), max relative %.3g, %ld points\n", c.f, c.lo, c.hi,
                st.max_ulp, st.at_ulp, st.max_rel, st.n);
    EXPECT_GT(st.n, 100000) << c.f;
    EXPECT_LE(st.max_ulp, c.bound_ulp) << c.f << " at x = " << st.at_ulp;
    EXPECT_EQ(st.bad_special, 0) << c.f << ": overflow/underflow results";
  }
  // gelu_tanh below -1: x sigmoid(2y) inherits the float rounding of y = sqrt(2/pi) (x +
  // 0.044715 x^3) through e^(-2y), relative error ~ |2y| 2^-23: bounded relative to the value
  // down to -9 (|gelu| > 1e-28 |x|); the error relative to |x| stays below 1e-7 everywhere
  ErrStat g = measure("gelu_tanh", wide, -9, -1);
  std::printf("  gelu_tanh  on [-9, -1]: max relative %.3g\n", g.max_rel);
  EXPECT_LE(g.max_rel, 5e-5);
}

TEST(Vecmath, SpecialValues) {
  ASSERT_NE(lib().h, nullptr);
  auto f1 = [](const char *f, float x) {
    float y = 0;
    lib().fn(f)(&x, &y, 1);
    return y;
  };
  vm_expect_special_values(f1, kFns, (int)(sizeof kFns / sizeof kFns[0]));
}

TEST(Vecmath, TextCompilesCleanAndVectorizes) {
  std::string dir = work_dir();
  // unused: only the prelude
  write_file(dir + "/unused.c", "#include <math.h>\n#include <stdint.h>\n#include <string.h>\n\n" + math_text() +
                                    "int gat_vm_dummy(void);\nint gat_vm_dummy(void) { return 0; }\n");
  write_file(dir + "/used.c", wrapper_source());
  int compilers = 0;
  for (const char *cc : {"gcc", "clang"}) {
    if (!have(cc)) continue;
    compilers++;
    for (const char *src : {"unused.c", "used.c"})
      for (const char *march : {"", "-march=native", "-DGAT_NO_VECTOR_EXT"}) {
        std::string cmd = std::string(cc) + " -std=c11 -O2 -Wall -Wextra -pedantic -Werror " + march + " -c -o " +
                          dir + "/x.o " + dir + "/" + src;
        EXPECT_EQ(sh(cmd), 0) << cmd;
      }
  }
  EXPECT_GT(compilers, 0);
  if (!have("gcc")) GTEST_SKIP() << "no gcc for the vectorization report";
  // gcc reports every loop it vectorized: one per function (the y[i] = f(x[i]) loops)
  std::string log = dir + "/vec.txt";
  ASSERT_EQ(sh("gcc -std=c11 -O3 -march=x86-64-v3 -fopt-info-vec-optimized=" + log + " -c -o " + dir + "/y.o " + dir +
               "/used.c"),
            0);
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string rep = ss.str();
  std::string src = wrapper_source();
  for (const char *fn : kFns) {
    // the line of `for (...) y[i] = gat_vm_<fn>f(x[i]);`
    std::string needle = std::string("y[i] = gat_vm_") + fn + "f(x[i])";
    size_t at = src.find(needle);
    ASSERT_NE(at, std::string::npos);
    int line = 1;
    for (size_t i = 0; i < at; i++) line += src[i] == '\n';
    std::string tag = "used.c:" + std::to_string(line) + ":";
    bool vec = false;
    for (size_t p = rep.find(tag); p != std::string::npos; p = rep.find(tag, p + 1)) {
      size_t eol = rep.find('\n', p);
      if (rep.substr(p, eol == std::string::npos ? std::string::npos : eol - p).find("loop vectorized") != std::string::npos)
        vec = true;
    }
    EXPECT_TRUE(vec) << fn << ": gcc did not vectorize the loop at " << tag << "\n" << rep;
  }
}

// ---- lane sums in generated code ------------------------------------------------------

std::string read_text(const std::string &path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(Vecmath, LaneSumsInGeneratedCode) {
  Compiled c(kVmSums);
  ASSERT_NE(c.m, nullptr);
  char err[1024] = "";
  std::string dir = work_dir();
  PassOptions o2;
  pass_options_init(&o2, 2);
  ASSERT_EQ(backend_emit_c_opt(c.m, (dir + "/t.c").c_str(), &o2, err, sizeof err), 0) << err;
  std::string text = read_text(dir + "/t.c");
  // d and m: unit-stride sums of 100 terms: 32 lanes + a tail of 4; s: stride 3, sequential
  EXPECT_NE(text.find("[32] = {0.0f}"), std::string::npos) << text;
  EXPECT_NE(text.find("v1 - 96]"), std::string::npos) << "the tail of 4 terms";
  EXPECT_NE(text.find("gat_vm_sigmoidf("), std::string::npos);
  EXPECT_NE(text.find("gat_vm_gelu_tanhf("), std::string::npos);
  EXPECT_EQ(text.find("gat_sigmoid("), std::string::npos) << "sigmoid still in double";
  size_t lanes = 0;
  for (size_t p = text.find("partial sums"); p != std::string::npos; p = text.find("partial sums", p + 1)) lanes++;
  EXPECT_EQ(lanes, 2u) << "d and m in lanes, s (stride 3) sequential";
  for (const char *cc : {"gcc", "clang"}) {
    if (!have(cc)) continue;
    std::string cmd = std::string(cc) + " -std=c11 -O2 -Wall -Wextra -pedantic -Werror -I" GAT_SOURCE_DIR "/runtime -c -o " +
                      dir + "/t.o " + dir + "/t.c";
    EXPECT_EQ(sh(cmd), 0) << cmd;
  }
  PassOptions portable = o2;
  portable.target = LT_PORTABLE;
  ASSERT_EQ(backend_emit_c_opt(c.m, (dir + "/tp.c").c_str(), &portable, err, sizeof err), 0) << err;
  EXPECT_EQ(sh("cc -std=c11 -O2 -Wall -Wextra -pedantic -Werror -DGAT_NO_VECTOR_EXT -I" GAT_SOURCE_DIR
               "/runtime -c -o " + dir + "/tp.o " + dir + "/tp.c"),
            0);

  // numbers: -O0 and -O2 against the sums in double
  const int T = 5, N = 100;
  TensorSet w = {0, 0, nullptr}, in = {0, 0, nullptr}, out0 = {0, 0, nullptr}, out2 = {0, 0, nullptr};
  int64_t da[2] = {T, N}, dc[3] = {T, 64, 3};
  float *a = (float *)tensorset_add(&in, "a", IR_F32, 2, da)->data;
  float *b = (float *)tensorset_add(&in, "b", IR_F32, 2, da)->data;
  float *cc = (float *)tensorset_add(&in, "c", IR_F32, 3, dc)->data;
  unsigned s = 7;
  auto rnd = [&s]() {
    s = s * 1664525u + 1013904223u;
    return (float)((s >> 8) * (1.0 / 16777216.0) * 8.0 - 4.0);
  };
  for (int i = 0; i < T * N; i++) a[i] = rnd(), b[i] = rnd();
  for (int i = 0; i < T * 64 * 3; i++) cc[i] = rnd();
  PassOptions o0;
  pass_options_init(&o0, 0);
  ASSERT_EQ(run_compiled_opt(c.m, &w, &in, 0, &o0, &out0, err, sizeof err), 0) << err;
  ASSERT_EQ(run_compiled_opt(c.m, &w, &in, 0, &o2, &out2, err, sizeof err), 0) << err;
  auto get = [](TensorSet &ts, const char *n) { return (const float *)tensorset_find(&ts, n)->data; };
  double worst_d = 0, worst_m = 0, worst_g = 0, vs_o0 = 0;
  for (int t = 0; t < T; t++) {
    double d = 0, m = 0, mag = 0, magm = 0;
    for (int j = 0; j < N; j++) {
      double x = a[t * N + j], y = b[t * N + j];
      d += x * y;
      mag += std::fabs(x * y);
      m += y / (1.0 + std::exp(-x));
      magm += std::fabs(y / (1.0 + std::exp(-x)));
    }
    m /= N;
    magm /= N;
    // relative to the sum of magnitudes: the bound of a float sum does not depend on cancellation
    worst_d = std::fmax(worst_d, std::fabs(get(out2, "d")[t] - d) / mag);
    worst_m = std::fmax(worst_m, std::fabs(get(out2, "mn")[t] - m) / magm);
    vs_o0 = std::fmax(vs_o0, std::fabs(get(out2, "d")[t] - get(out0, "d")[t]) / mag);
    EXPECT_LE(std::fabs(get(out0, "d")[t] - d) / mag, 1e-7);
    for (int i = 0; i < 3; i++) {
      double sum = 0, sm = 0;
      for (int j = 0; j < 64; j++) sum += cc[(t * 64 + j) * 3 + i], sm += std::fabs(cc[(t * 64 + j) * 3 + i]);
      EXPECT_LE(std::fabs(get(out2, "s")[t * 3 + i] - sum) / sm, 1e-6);
    }
    for (int j = 0; j < N; j++) {
      double x = a[t * N + j], y = b[t * N + j];
      double yy = 0.79788456080286535588 * (y + 0.044715 * y * y * y);
      double gv = x * (y / (1 + std::exp(-y))) + std::tanh(x) * std::log1p(std::exp(y)) -
                  (x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x))) * (y / (1 + std::exp(-2 * yy)));
      double scale = std::fabs(x * (y / (1 + std::exp(-y)))) + std::fabs(std::tanh(x) * std::log1p(std::exp(y))) + 1e-3;
      worst_g = std::fmax(worst_g, std::fabs(get(out2, "g")[t * N + j] - gv) / scale);
    }
  }
  std::printf("  lane sums of 100 products: max |O2 - exact| / sum|terms| = %.3g (vs -O0: %.3g); mean of sigmoid "
              "products %.3g; gate expression %.3g\n",
              worst_d, vs_o0, worst_m, worst_g);
  // float sums of 100 terms in 32 lanes: at most (100/32 + 5 + 1) u sum|terms|, u = 2^-24 (~5.4e-7)
  EXPECT_LE(worst_d, 6e-7);
  EXPECT_LE(worst_m, 1e-6);
  EXPECT_LE(worst_g, 2e-6);
  tensorset_free(&in);
  tensorset_free(&out0);
  tensorset_free(&out2);
}

}  // namespace
