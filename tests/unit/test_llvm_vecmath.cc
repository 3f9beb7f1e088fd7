// test_llvm_vecmath.cc — the f32 functions and lane sums of -O2 f32_math nests in the LLVM
// backend (codegen/kernels/vecmath.c linked as bitcode, emit_llvm_kernels.c, emit_llvm.c), the counterpart of test_vecmath.cc:
//   - accuracy: a module of loops y[i] = F(x[i]) built with the backend's IR functions
//     (emit_llvm_vecmath_module), JIT-compiled with ORC for the host, run over the same wide
//     input ranges as test_vecmath.cc and compared with F computed in double from libm; the
//     same ulp bounds (exp 1.5, tanh/sigmoid/silu 3, softplus/logsigmoid 3.5, gelu_tanh 3 for
//     x >= -1 and 5e-5 relative below, log 2.5);
//   - special values (NaN, infinities, overflow, zero, negative log), as test_vecmath.cc;
//   - the optimized loops are vectorized and call nothing (no libm);
//   - the IR functions give the values of the C text (codegen/kernels/vecmath.c, emitted by kernels_math.c) compiled with
//     -ffp-contract=off (the same operations in the same order): bitwise equal;
//   - a model with lane sums and gates, JIT vs the C build at -O2 (equal up to float
//     contraction of the C compiler: 1e-6 relative) and vs sums in double (float rounding
//     bound: 2e-7 of the sum of magnitudes); the -O2 module calls no expf/tanhf/gat.sigmoid.
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
#include <string>
#include <vector>

extern "C" {
#include "backend.h"
#include "backend_llvm.h"
#include "frontend.h"
#include "ir.h"
#include "kernels_math.h"
#include "pass.h"
#include "tensor.h"
#include "util.h"
#ifdef GAT_HAVE_LLVM
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>

#include "emit_llvm.h"
#endif
}

#include "vecmath_ref.h"

#ifdef GAT_HAVE_LLVM
namespace {

const char *kFns[] = {"exp", "tanh", "sigmoid", "silu", "softplus", "logsigmoid", "gelu_tanh", "log"};
typedef VmFn LoopFn;

// the vecmath module JIT-compiled; fn("exp") -> gat_vm_test_exp; ir: the optimized module text
struct Jit {
  LLVMOrcLLJITRef J = nullptr;
  std::string ir, err;
  Jit() {
    char e[1024] = "";
    emit_llvm_init_targets(0);
    LlvmTarget t = {nullptr, nullptr, nullptr};
    LLVMTargetMachineRef tm = emit_llvm_target_machine(&t, e, sizeof e);
    if (!tm) {
      err = e;
      return;
    }
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    LLVMModuleRef mod = emit_llvm_vecmath_module(LLVMOrcThreadSafeContextGetContext(tsc), tm, e, sizeof e);
    LLVMDisposeTargetMachine(tm);
    if (!mod) {
      err = e;
      LLVMOrcDisposeThreadSafeContext(tsc);
      return;
    }
    char *txt = LLVMPrintModuleToString(mod);
    ir = txt;
    LLVMDisposeMessage(txt);
    LLVMOrcJITTargetMachineBuilderRef jtmb = nullptr;
    LLVMOrcLLJITBuilderRef jb = nullptr;
    if (LLVMErrorRef x = LLVMOrcJITTargetMachineBuilderDetectHost(&jtmb)) {
      fail(x, mod, tsc);
      return;
    }
    jb = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, jtmb);
    if (LLVMErrorRef x = LLVMOrcCreateLLJIT(&J, jb)) {
      J = nullptr;
      fail(x, mod, tsc);
      return;
    }
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod, tsc);
    LLVMOrcDisposeThreadSafeContext(tsc);
    if (LLVMErrorRef x = LLVMOrcLLJITAddLLVMIRModule(J, LLVMOrcLLJITGetMainJITDylib(J), tsm)) {
      LLVMOrcDisposeThreadSafeModule(tsm);
      fail(x, nullptr, nullptr);
    }
  }
  void fail(LLVMErrorRef x, LLVMModuleRef mod, LLVMOrcThreadSafeContextRef tsc) {
    char *m = LLVMGetErrorMessage(x);
    err = m;
    LLVMDisposeErrorMessage(m);
    if (mod) LLVMDisposeModule(mod);
    if (tsc) LLVMOrcDisposeThreadSafeContext(tsc);
  }
  ~Jit() {
    if (J) LLVMConsumeError(LLVMOrcDisposeLLJIT(J));
  }
  LoopFn fn(const char *name) {
    if (!J) return nullptr;
    LLVMOrcExecutorAddress a = 0;
    std::string s = std::string("gat_vm_test_") + name;
    if (LLVMErrorRef x = LLVMOrcLLJITLookup(J, &a, s.c_str())) {
      LLVMConsumeError(x);
      return nullptr;
    }
    return (LoopFn)(uintptr_t)a;
  }
};

Jit &jit() {
  static Jit j;
  return j;
}

ErrStat measure(const char *f, const std::vector<float> &xs, double lo, double hi) {
  return vm_measure(jit().fn(f), f, xs, lo, hi);
}

TEST(LlvmVecmath, AccuracyAgainstDoubleLibm) {
  ASSERT_NE(jit().J, nullptr) << jit().err;
  std::vector<float> wide = float_walk(1e-30f, 200.0f, 331, true);
  std::vector<float> pos = float_walk(1e-45f, 3e38f, 997, false);
  struct Case {
    const char *f;
    double lo, hi, bound_ulp;
  } cases[] = {
      {"exp", -87.3, 88.7, 1.5},        {"tanh", -200, 200, 3},         {"sigmoid", -87, 200, 3},
      {"silu", -87, 200, 3},            {"softplus", -200, 200, 3.5},   {"logsigmoid", -200, 200, 3.5},
      {"gelu_tanh", -1, 200, 3},        {"log", 1e-45, 3e38, 2.5},
  };
  for (const Case &c : cases) {
    ErrStat st = measure(c.f, std::string(c.f) == "log" ? pos : wide, c.lo, c.hi);
    std::printf("  %-10s on [%g, %g]: max %.2f ulp (at x = %.9g), max relative %.3g, %ld points\n", c.f, c.lo, c.hi,
                st.max_ulp, st.at_ulp, st.max_rel, st.n);
    EXPECT_GT(st.n, 100000) << c.f;
    EXPECT_LE(st.max_ulp, c.bound_ulp) << c.f << " at x = " << st.at_ulp;
    EXPECT_EQ(st.bad_special, 0) << c.f << ": overflow/underflow results";
  }
  ErrStat g = measure("gelu_tanh", wide, -9, -1);
  std::printf("  gelu_tanh  on [-9, -1]: max relative %.3g\n", g.max_rel);
  EXPECT_LE(g.max_rel, 5e-5);
}

TEST(LlvmVecmath, SpecialValues) {
  ASSERT_NE(jit().J, nullptr) << jit().err;
  auto f1 = [](const char *f, float x) {
    float y = 0;
    jit().fn(f)(&x, &y, 1);
    return y;
  };
  vm_expect_special_values(f1, kFns, (int)(sizeof kFns / sizeof kFns[0]));
}

// the body of `define ... @gat_vm_test_F(` in the optimized module text
std::string fn_text(const std::string &ir, const char *f) {
  size_t at = ir.find(std::string("@gat_vm_test_") + f + "("); /* the definition: nothing calls them */
  if (at == std::string::npos) return "";
  size_t end = ir.find("\n}\n", at);
  return ir.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

TEST(LlvmVecmath, LoopsAreVectorizedWithoutCalls) {
  ASSERT_NE(jit().J, nullptr) << jit().err;
  const std::string &ir = jit().ir;
  for (const char *f : kFns) {
    std::string body = fn_text(ir, f);
    ASSERT_FALSE(body.empty()) << f;
    EXPECT_NE(body.find(" x float>"), std::string::npos) << f << ": not vectorized\n" << body.substr(0, 2000);
    // only intrinsics may be called (fabs, copysign)
    for (size_t p = body.find("call "); p != std::string::npos; p = body.find("call ", p + 1)) {
      size_t at = body.find('@', p), eol = body.find('\n', p);
      ASSERT_NE(at, std::string::npos);
      EXPECT_TRUE(at < eol && body.compare(at, 6, "@llvm.") == 0) << f << ": " << body.substr(p, eol - p);
    }
  }
}

bool have(const char *cc) { return std::system((std::string("command -v ") + cc + " > /dev/null 2>&1").c_str()) == 0; }

TEST(LlvmVecmath, SameValuesAsTheCText) {
  ASSERT_NE(jit().J, nullptr) << jit().err;
  const char *cc = std::getenv("CC") ? std::getenv("CC") : "cc";
  if (!have(cc)) GTEST_SKIP() << "no C compiler";
  char tmpl[] = "/tmp/gat_llvm_vecmath_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl, c = dir + "/vm.c", so = dir + "/vm.so";
  StrBuf sb = {0};
  kernels_math_emit(&sb);
  std::string src = std::string("#include <math.h>\n#include <stdint.h>\n#include <string.h>\n\n") + sb_cstr(&sb);
  sb_free(&sb);
  for (const char *f : kFns)
    src += std::string("void t_") + f + "(const float *x, float *restrict y, int64_t n) {\n" +
           "  for (int64_t i = 0; i < n; i++) y[i] = gat_vm_" + f + "f(x[i]);\n}\n";
  std::ofstream(c) << src;
  std::string cmd = std::string(cc) + " -std=c11 -O3 -march=native -ffp-contract=off -shared -fPIC -o " + so + " " + c + " -lm";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  void *h = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr);
  std::vector<float> xs = float_walk(1e-30f, 200.0f, 1997, true);
  for (float s : {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-45f, 89.0f, -104.0f, 9.5f}) xs.push_back(s);
  std::vector<float> a(xs.size()), b(xs.size());
  for (const char *f : kFns) {
    LoopFn cf = (LoopFn)dlsym(h, (std::string("t_") + f).c_str());
    ASSERT_NE(cf, nullptr);
    cf(xs.data(), a.data(), (int64_t)xs.size());
    jit().fn(f)(xs.data(), b.data(), (int64_t)xs.size());
    long diff = 0;
    size_t first = 0;
    for (size_t i = 0; i < xs.size(); i++)
      if (std::memcmp(&a[i], &b[i], 4) != 0 && !(std::isnan(a[i]) && std::isnan(b[i])))
        if (diff++ == 0) first = i;
    EXPECT_EQ(diff, 0) << f << ": " << diff << " of " << xs.size() << " differ, first at x = " << xs[first] << ": C "
                       << a[first] << ", LLVM " << b[first];
  }
  dlclose(h);
  std::system(("rm -rf " + dir).c_str());
}

// ---- lane sums and gates in a model: JIT vs the C build vs double ----

TEST(LlvmVecmath, LaneSumsAndGatesInAModel) {
  Arena ar;
  arena_init(&ar);
  FrontendOptions fo = {nullptr, 0};
  IrModule *m = frontend_compile(&ar, "t.gat", kVmSums, &fo);
  ASSERT_NE(m, nullptr);
  char err[1024] = "";
  PassOptions o2;
  pass_options_init(&o2, 2);
  {
    // the optimized module: float functions inlined, no libm / double helper calls
    Arena a2;
    arena_init(&a2);
    LoopModule *lm = pipeline_run(&a2, m, "t", &o2, err, sizeof err);
    ASSERT_NE(lm, nullptr) << err;
    LlvmTarget t = {nullptr, nullptr, nullptr};
    LLVMTargetMachineRef tm = emit_llvm_target_machine(&t, err, sizeof err);
    ASSERT_NE(tm, nullptr) << err;
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod = emit_llvm_module(lm, ctx, tm, err, sizeof err);
    ASSERT_NE(mod, nullptr) << err;
    char *txt = LLVMPrintModuleToString(mod);
    std::string ir = txt;
    LLVMDisposeMessage(txt);
    for (const char *bad : {"@expf", "@tanhf", "@logf", "@exp(", "@log1p(", "@gat.sigmoid", "@gat.silu", "@gat.softplus"})
      EXPECT_EQ(ir.find(bad), std::string::npos) << bad;
    EXPECT_NE(ir.find(" x float>"), std::string::npos) << "no vector code";
    LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
    arena_free(&a2);
  }
  const int T = 5, N = 100;
  TensorSet w = {0, 0, nullptr}, in = {0, 0, nullptr}, outc = {0, 0, nullptr}, outj = {0, 0, nullptr};
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
  ASSERT_EQ(run_compiled_opt(m, &w, &in, 0, &o2, &outc, err, sizeof err), 0) << err;
  ASSERT_EQ(run_jit_opt(m, &w, &in, 0, &o2, &outj, err, sizeof err), 0) << err;
  auto get = [](TensorSet &ts, const char *n) { return (const float *)tensorset_find(&ts, n)->data; };
  double worst_d = 0, worst_m = 0, vs_c = 0;
  long bitdiff = 0;
  for (int t = 0; t < T; t++) {
    double d = 0, mm = 0, mag = 0, magm = 0;
    for (int j = 0; j < N; j++) {
      double x = a[t * N + j], y = b[t * N + j];
      d += x * y;
      mag += std::fabs(x * y);
      mm += y / (1.0 + std::exp(-x));
      magm += std::fabs(y / (1.0 + std::exp(-x)));
    }
    mm /= N;
    magm /= N;
    worst_d = std::fmax(worst_d, std::fabs(get(outj, "d")[t] - d) / mag);
    worst_m = std::fmax(worst_m, std::fabs(get(outj, "mn")[t] - mm) / magm);
  }
  for (const char *o : {"d", "mn", "s", "g"}) {
    const Tensor *tc = tensorset_find(&outc, o);
    const float *pc = get(outc, o), *pj = get(outj, o);
    for (int64_t i = 0; i < tensor_numel(tc); i++) {
      bitdiff += std::memcmp(&pc[i], &pj[i], 4) != 0;
      vs_c = std::fmax(vs_c, std::fabs((double)pc[i] - pj[i]) / std::fmax(1.0, std::fabs((double)pc[i])));
    }
  }
  std::printf("  JIT lane sums vs double: d %.3g, mean %.3g (of the sum of magnitudes); JIT vs C build: max %.3g, "
              "%ld values not bitwise equal\n",
              worst_d, worst_m, vs_c, bitdiff);
  EXPECT_LE(worst_d, 2e-7);
  EXPECT_LE(worst_m, 2e-7);
  EXPECT_LE(vs_c, 1e-6);
  tensorset_free(&in);
  tensorset_free(&outc);
  tensorset_free(&outj);
  arena_free(&ar);
}

} // namespace
#endif
