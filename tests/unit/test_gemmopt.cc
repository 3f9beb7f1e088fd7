// test_gemmopt.cc — the -O2 GEMM rewrites on small modules:
// scalefold (static constants, ReZero's alpha and RMSNorm weights folded
// into the packed weights), prologue (RMSNorm as a per-row scale inside the
// GEMM), glu (silu(x Wg) * (x Wu) as one GEMM). Each test checks the loop
// IR the pass leaves (which kernels and packs exist) and then runs the
// compiled -O2 code against the reference interpreter (double accumulation,
// the definition of the model's meaning) within the -O2 tolerance.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <cstring>
#include <string>
#include <vector>

#include <dirent.h>
#include <unistd.h>

extern "C" {
#include "backend.h"
#include "frontend.h"
#include "interp.h"
#include "ir.h"
#include "pass.h"
#include "tensor.h"
}

#include "loop_fixtures.h"

namespace {

using namespace loop_fixtures;

void collect(const PtrVec *ks, LoopCallKind call, std::vector<const LoopKernel *> &out) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = (const LoopKernel *)ks->data[i];
    if (k->kind == LK_CALL && k->call == call) out.push_back(k);
    for (int r = 0; r < k->nregions; r++) collect(&k->regions[r]->kernels, call, out);
  }
}

std::vector<const LoopKernel *> calls(const LoopModule *m, LoopCallKind call) {
  std::vector<const LoopKernel *> v;
  collect(&m->kernels, call, v);
  return v;
}

const LoopPack *pack_of(const LoopModule *m, int buf) {
  for (int i = 0; i < m->packs.len; i++)
    if (((const LoopPack *)m->packs.data[i])->buf == buf) return (const LoopPack *)m->packs.data[i];
  return nullptr;
}

int param_index(const LoopModule *m, const char *name) {
  for (int i = 0; i < m->nparams; i++)
    if (!strcmp(m->params[i].name, name)) return i;
  return -1;
}

// Weights from `gattnc init`'s rules, then every tensor perturbed so no norm
// weight is all ones and no ReZero alpha is zero (folding must matter).
void make_weights(const IrModule *m, TensorSet *w) {
  weights_init(m, 7, w);
  for (int i = 0; i < w->n; i++) {
    Tensor *t = &w->t[i];
    if (t->dtype != IR_F32) continue;
    float *d = (float *)t->data;
    for (int64_t j = 0; j < tensor_numel(t); j++) d[j] += (float)(0.3 * std::sin(1.7 * (double)j + i));
  }
}

// max |compiled - interpreter| / max |interpreter| over output `name`
double rel_err(const TensorSet &a, const TensorSet &b, const char *name) {
  const Tensor *x = tensorset_find(&a, name), *y = tensorset_find(&b, name);
  EXPECT_TRUE(x && y) << name;
  if (!x || !y) return 1e30;
  double worst = 0, scale = 1e-30;
  for (int64_t i = 0; i < tensor_numel(x); i++) {
    double p = ((const float *)x->data)[i], q = ((const float *)y->data)[i];
    worst = std::fmax(worst, std::fabs(p - q));
    scale = std::fmax(scale, std::fabs(q));
  }
  return worst / scale;
}

// Runs the module compiled with `o` and interpreted on the same weights and
// inputs (every input f32 [T, D], filled from a formula); returns the worst
// relative error over `outs`.
double compiled_vs_interp(const IrModule *m, const PassOptions &o, int T, std::vector<const char *> outs) {
  TensorSet w = {0, 0, nullptr}, in = {0, 0, nullptr}, got = {0, 0, nullptr}, want = {0, 0, nullptr};
  make_weights(m, &w);
  for (int i = 0; i < m->inputs.len; i++) {
    const IrIO *io = (const IrIO *)m->inputs.data[i];
    int64_t dims[IR_MAX_RANK];
    const IrShape &s = io->shape;
    for (int d = 0; d < s.rank; d++) dims[d] = s.dims[d] == IR_DIM_T ? T : s.dims[d];
    Tensor *t = tensorset_add(&in, io->name, IR_F32, s.rank, dims);
    for (int64_t j = 0; j < tensor_numel(t); j++) ((float *)t->data)[j] = (float)std::sin(0.37 * (double)j + 0.1 * i);
  }
  char err[2048] = "";
  EXPECT_EQ(run_compiled_opt(m, &w, &in, 0, &o, &got, err, sizeof err), 0) << err;
  InterpSession *s = interp_new(m, &w, err, sizeof err);
  EXPECT_NE(s, nullptr) << err;
  double worst = 1e30;
  if (s) {
    EXPECT_EQ(interp_forward(s, &in, &want, err, sizeof err), 0) << err;
    interp_free(s);
    worst = 0;
    for (const char *n : outs) worst = std::fmax(worst, rel_err(got, want, n));
  }
  tensorset_free(&w);
  tensorset_free(&in);
  tensorset_free(&got);
  tensorset_free(&want);
  return worst;
}

// A pre-norm block: RMSNorm read by three linears (one with bias and a
// static 1/8 scale), a ReZero residual with a parameter alpha, and a SwiGLU.
const char *kBlock = R"(import std
model blk {
  max T = 32
  input x : f32[T, 40]
  output y : f32[T, 40]
  output z : f32[T, 24]
  param resweight : f32[1] = zeros()
  h = rms_norm(x, eps: 1e-6) @ "norm"
  q = linear(h, 24) @ "q"
  k = linear(h, 24, bias: true) @ "k" * 0.125
  z = q * k + linear(h, 24) @ "v"
  u = x + resweight * linear(tanh(z), 40, bias: true) @ "o"
  y = u + swiglu(rms_norm(u, eps: 1e-5, plus_one: true) @ "norm2", hidden: 72) @ "mlp"
}
)";

TEST(GemmOpt, ScalefoldFoldsNormWeightConstantAndAlpha) {
  Compiled c(kBlock);
  ASSERT_NE(c.m, nullptr);
  PassOptions o;
  pass_options_init(&o, 2);
  o.prologue = 0;  // keep the norms to see their weights go
  o.glu = 0;
  Lowered l(c.m, o);
  ASSERT_NE(l.lm, nullptr) << l.err;
  // both norms lost their weight: it lives in the consumers' packed weights
  auto norms = calls(l.lm, LC_RMS_NORM);
  ASSERT_EQ(norms.size(), 2u);
  for (auto *n : norms) EXPECT_LT(n->args[1], 0);
  int g1 = param_index(l.lm, "norm.weight"), g2 = param_index(l.lm, "norm2.weight");
  int alpha = param_index(l.lm, "resweight");
  ASSERT_GE(g1, 0);
  ASSERT_GE(g2, 0);
  ASSERT_GE(alpha, 0);
  int with_g1 = 0, with_g2 = 0, eighth = 0, with_alpha = 0, scaled_bias = 0;
  for (auto *g : calls(l.lm, LC_GEMM)) {
    const LoopPack *p = pack_of(l.lm, g->args[1]);
    ASSERT_NE(p, nullptr);
    with_g1 += p->scale_vec == g1 && !p->vec_plus_one;
    with_g2 += p->scale_vec == g2 && p->vec_plus_one;
    if (p->scale == 0.125) {
      eighth++;
      const LoopPack *b = pack_of(l.lm, g->args[2]);  // bias k.bias scaled by 1/8 at init
      ASSERT_NE(b, nullptr);
      EXPECT_TRUE(b->vector);
      EXPECT_EQ(b->scale, 0.125);
      scaled_bias++;
    }
    if (p->scale_param == alpha) {
      with_alpha++;
      const LoopPack *b = pack_of(l.lm, g->args[2]);
      ASSERT_NE(b, nullptr);
      EXPECT_EQ(b->scale_param, alpha);
      EXPECT_GE(g->args[3], 0);  // x + alpha * (...) is the residual epilogue now
      scaled_bias++;
    }
  }
  EXPECT_EQ(with_g1, 3);  // q, k, v
  EXPECT_EQ(with_g2, 2);  // gate, up
  EXPECT_EQ(eighth, 1);
  EXPECT_EQ(with_alpha, 1);
  EXPECT_EQ(scaled_bias, 2);
  // no unused pack remains
  for (int i = 0; i < l.lm->packs.len; i++)
    EXPECT_GT(loop_buf_reads(l.lm, ((const LoopPack *)l.lm->packs.data[i])->buf), 0);
  // -fno-fold-scales: the plain GEMM packs
  o.fold_scales = 0;
  Lowered u(c.m, o);
  ASSERT_NE(u.lm, nullptr) << u.err;
  for (int i = 0; i < u.lm->packs.len; i++) {
    const LoopPack *p = (const LoopPack *)u.lm->packs.data[i];
    EXPECT_EQ(p->scale, 1.0);
    EXPECT_LT(p->scale_vec, 0);
    EXPECT_LT(p->scale_param, 0);
  }
  for (auto *n : calls(u.lm, LC_RMS_NORM)) EXPECT_GE(n->args[1], 0);
}

TEST(GemmOpt, PrologueAndGluRemoveTheIntermediates) {
  Compiled c(kBlock);
  ASSERT_NE(c.m, nullptr);
  PassOptions o;
  pass_options_init(&o, 2);
  Lowered l(c.m, o);
  ASSERT_NE(l.lm, nullptr) << l.err;
  EXPECT_EQ(calls(l.lm, LC_RMS_NORM).size(), 0u);  // both norms became row scales
  int row_scaled = 0, glu = 0, silu = 0;
  for (auto *g : calls(l.lm, LC_GEMM)) {
    if (g->nargs > 6 && g->args[6] >= 0) {
      row_scaled++;
    }
    if (g->nargs > 7 && g->args[7] >= 0) {
      glu++;
      silu += g->epi_act == 1 + (int)IR_FN_SILU;  // swiglu; q * k has no activation
      EXPECT_NE(pack_of(l.lm, g->args[7]), nullptr);
    }
  }
  EXPECT_EQ(row_scaled, 3);  // q*k, v and the fused gate/up
  EXPECT_EQ(glu, 2);         // q * k and silu(gate) * up
  EXPECT_EQ(silu, 1);
  EXPECT_EQ(calls(l.lm, LC_GEMM).size(), 5u);  // q*k v o gate*up down
  // each pass switched off on its own
  o.glu = 0;
  Lowered u(c.m, o);
  ASSERT_NE(u.lm, nullptr) << u.err;
  EXPECT_EQ(calls(u.lm, LC_GEMM).size(), 7u);
  o.glu = 1;
  o.prologue = 0;
  Lowered v(c.m, o);
  ASSERT_NE(v.lm, nullptr) << v.err;
  EXPECT_EQ(calls(v.lm, LC_RMS_NORM).size(), 2u);
}

// Numerics: every combination of the new passes against the interpreter.
TEST(GemmOpt, CompiledMatchesInterpreter) {
  Compiled c(kBlock);
  ASSERT_NE(c.m, nullptr);
  // (each run compiles the model: a few combinations, not all eight)
  for (int mask : {7, 1, 4}) {
    PassOptions o;
    pass_options_init(&o, 2);
    o.fold_scales = mask & 1;
    o.prologue = (mask >> 1) & 1;
    o.glu = (mask >> 2) & 1;
    for (int T : {2, 13}) EXPECT_LE(compiled_vs_interp(c.m, o, T, {"y", "z"}), 2e-5) << "mask " << mask << " T " << T;
  }
  // -O0 and -O1 are untouched by the new passes: the rewrites are -O2 only
  for (int lvl = 0; lvl < 2; lvl++) {
    PassOptions o;
    pass_options_init(&o, lvl);
    Lowered l(c.m, o);
    ASSERT_NE(l.lm, nullptr) << l.err;
    EXPECT_EQ(l.lm->packs.len, 0);
    EXPECT_EQ(calls(l.lm, LC_RMS_NORM).size(), 2u);
  }
}

// A norm whose output is also read by a non-GEMM keeps its weight and stays.
TEST(GemmOpt, NormWithOtherReadersIsLeftAlone) {
  Compiled c(R"(model t {
  max T = 8
  input x : f32[T, 16]
  output y : f32[T, 16]
  h = rms_norm(x) @ "n"
  y = linear(h, 16) @ "a" + h
}
)");
  ASSERT_NE(c.m, nullptr);
  PassOptions o;
  pass_options_init(&o, 2);
  Lowered l(c.m, o);
  ASSERT_NE(l.lm, nullptr) << l.err;
  auto norms = calls(l.lm, LC_RMS_NORM);
  ASSERT_EQ(norms.size(), 1u);
  EXPECT_GE(norms[0]->args[1], 0);
  EXPECT_LE(compiled_vs_interp(c.m, o, 5, {"y"}), 2e-5);
}

// --target: the generated C of every example and benchmark model compiles
// warning-free with gcc and clang in strict ISO mode for each target, and a
// build for a CPU without the target's features stops at the #error.
std::string slurp(const std::string &path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int sh(const std::string &cmd) { return std::system((cmd + " > /dev/null 2>&1").c_str()); }

#ifdef GAT_SANITIZED
static const bool kSanitized = true;
#else
static const bool kSanitized = false;
#endif

TEST(GemmOpt, TargetsCompileWarningFreeWithGccAndClang) {
  std::vector<std::string> models;  // every examples/*.gat and bench/*.gat
  for (const char *sub : {"examples", "bench"}) {
    DIR *d = opendir((std::string(GAT_SOURCE_DIR) + "/" + sub).c_str());
    ASSERT_NE(d, nullptr) << sub;
    while (struct dirent *e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 4 && n.compare(n.size() - 4, 4, ".gat") == 0) models.push_back(std::string(sub) + "/" + n);
    }
    closedir(d);
  }
  ASSERT_GE(models.size(), 9u);
  struct {
    int target;
    const char *march;
  } targets[] = {{LT_PORTABLE, "x86-64"}, {LT_X86_64, "x86-64"}, {LT_AVX2, "x86-64-v3"}, {LT_AVX512, "skylake-avx512"}};
  std::vector<std::string> ccs = {"gcc"};
  if (sh("command -v clang") == 0) ccs.push_back("clang");
  std::string dir = "/tmp/gat_test_gemmopt_" + std::to_string((long)getpid());
  ASSERT_EQ(sh("mkdir -p " + dir), 0);
  for (const std::string &rel : models) {
    std::string path = std::string(GAT_SOURCE_DIR) + "/" + rel;
    std::string text = slurp(path);
    ASSERT_FALSE(text.empty()) << path;
    Arena a;
    arena_init(&a);
    FrontendOptions fo;
    memset(&fo, 0, sizeof fo);
    fo.max_seq = 64;
    IrModule *m = frontend_compile(&a, path.c_str(), text.c_str(), &fo);
    ASSERT_NE(m, nullptr) << path;
    for (auto &t : targets) {
      PassOptions o;
      pass_options_init(&o, 2);
      o.target = t.target;
      std::string c = dir + "/m.c";
      char err[2048] = "";
      ASSERT_EQ(backend_emit_c_opt(m, c.c_str(), &o, err, sizeof err), 0) << err;
      /* The sanitizer build (GAT_SANITIZED) emits every model for every target under
       * ASan/UBSan but leaves the compilers' verdict, which cannot differ, to the
       * normal build. gcc at -O1 (-Wmaybe-uninitialized needs the optimizer); clang's
       * warnings all come from its front end, so -fsyntax-only says the same, faster. */
      if (kSanitized) continue;
      for (auto &cc : ccs) {
        std::string cmd = cc + " -std=c11 -Wall -Wextra -pedantic -Werror -march=" + t.march + " -I" +
                          GAT_SOURCE_DIR + "/runtime " +
                          (cc == "gcc" ? "-O1 -c " + c + " -o " + dir + "/m.o" : "-fsyntax-only " + c);
        EXPECT_EQ(sh(cmd), 0) << rel << " target " << t.target << ": " << cmd;
      }
      if (t.target == LT_AVX2 || t.target == LT_AVX512) {  // the wrong CPU: a clear #error
        std::string cmd = "gcc -std=c11 -march=x86-64 -I" + std::string(GAT_SOURCE_DIR) + "/runtime -c " + c +
                          " -o " + dir + "/m.o 2>&1 | grep -q 'generated with gattnc --target='";
        EXPECT_EQ(std::system(cmd.c_str()), 0) << rel << " target " << t.target;
      }
    }
    arena_free(&a);
  }
  sh("rm -rf " + dir);
}

// Index-notation contractions with the bias on the left and an activation
// around the whole value (GateSkip's gate, the GRU input projection) become
// GEMMs with the activation as epilogue, also when the gate is then read by
// an elementwise product (the fuse pass used to swallow the nest first).
const char *kIndexGates = R"(model gates {
  max T = 64
  input x : f32[T, 40]
  output y : f32[T, 40]
  output z : f32[T, 40]
  param gw : f32[40, 40] = normal(0, 0.3)
  param gb : f32[40] = normal(0, 1)
  param lw : f32[40, 40] = normal(0, 0.3)
  param lb : f32[40] = normal(0, 1)
  param sw : f32[40, 40] = normal(0, 0.3)
  param sb : f32[40] = normal(0, 1)
  param tw : f32[40, 40] = normal(0, 0.3)
  g[t, j] = sigmoid(gb[j] + sum(k) x[t, k] * gw[j, k])
  l[t, j] = lb[j] + sum(k) x[t, k] * lw[j, k]
  y = x + g * l
  s[t, j] = silu((sum(k) x[t, k] * sw[j, k]) + sb[j])
  u[t, j] = tanh(sum(k) tw[j, k] * x[t, k])
  z = s + u
}
)";

TEST(GemmOpt, IndexContractionsWithLeftBiasAndActivationAreGemms) {
  Compiled c(kIndexGates);
  ASSERT_NE(c.m, nullptr);
  PassOptions o;
  pass_options_init(&o, 2);
  o.concat = 0;  // else s and u (both on x) are one segmented GEMM (pass concat, test_concat.cc)
  Lowered l(c.m, o);
  ASSERT_NE(l.lm, nullptr) << l.err;
  auto gemms = calls(l.lm, LC_GEMM);
  // g * l became one GLU GEMM (sigmoid(x G^T + gb) * (x L^T + lb)); s and u their own
  EXPECT_EQ(gemms.size(), 3u);
  int glu = 0, silu = 0, tanh_ = 0;
  for (auto *g : gemms) {
    if (g->nargs > 7 && g->args[7] >= 0) {
      glu++;
      EXPECT_EQ(g->epi_act, 1 + (int)IR_FN_SIGMOID);
      EXPECT_GE(g->args[2], 0);
      EXPECT_GE(g->args[8], 0);
    }
    if (g->epi_act == 1 + (int)IR_FN_SILU) {
      silu++;
      EXPECT_GE(g->args[2], 0);
    }
    if (g->epi_act == 1 + (int)IR_FN_TANH) {
      tanh_++;
      EXPECT_LT(g->args[2], 0);
    }
  }
  EXPECT_EQ(glu, 1);
  EXPECT_EQ(silu, 1);
  EXPECT_EQ(tanh_, 1);
  // without glu the gate is a GEMM of its own (not swallowed by fuse)
  o.glu = 0;
  Lowered u(c.m, o);
  ASSERT_NE(u.lm, nullptr) << u.err;
  EXPECT_EQ(calls(u.lm, LC_GEMM).size(), 4u);
  o.glu = 1;
  for (int T : {1, 5, 13, 64}) EXPECT_LE(compiled_vs_interp(c.m, o, T, {"y", "z"}), 2e-5) << "T " << T;
}

// Shapes that take every path of the micro-kernel: several K blocks (K > 256),
// several packed row blocks (M > 96), row tails, column tails (N % 32 != 0),
// the GEMV (T = 1), the GLU GEMM, a sigmoid gate and -fno-pack; every target
// this machine runs.
TEST(GemmOpt, BlockingPathsAgreeOnEveryTarget) {
  Compiled c(R"(import std
model big {
  max T = 160
  input x : f32[T, 300]
  output y : f32[T, 70]
  output z : f32[T, 300]
  param gw : f32[70, 300] = normal(0, 0.05)
  param gb : f32[70] = normal(0, 1)
  g[t, j] = sigmoid(gb[j] + sum(k) x[t, k] * gw[j, k])
  y = linear(x, 70, bias: true) @ "l" * g
  z = swiglu(x, hidden: 50) @ "mlp"
}
)");
  ASSERT_NE(c.m, nullptr);
  for (int t : {(int)LT_NATIVE, (int)LT_PORTABLE, (int)LT_X86_64, (int)LT_AVX2, (int)LT_AVX512}) {
    if (t == LT_AVX512 && sh("grep -q avx512f /proc/cpuinfo") != 0) continue;
    if (t == LT_AVX2 && sh("grep -q avx2 /proc/cpuinfo") != 0) continue;
    for (int pack : {1, 0}) {
      if (!pack && t != LT_NATIVE) continue;
      PassOptions o;
      pass_options_init(&o, 2);
      o.target = t;
      o.pack = pack;
      for (int T : {1, 150}) EXPECT_LE(compiled_vs_interp(c.m, o, T, {"y", "z"}), 2e-5) << "target " << t << " pack " << pack << " T " << T;
    }
  }
}

// The targets that run on this machine give the interpreter's results.
TEST(GemmOpt, TargetsRunAndAgree) {
  Compiled c(kBlock);
  ASSERT_NE(c.m, nullptr);
  for (int t : {(int)LT_PORTABLE, (int)LT_X86_64, (int)LT_AVX512}) {
    if (t == LT_AVX512 && sh("grep -q avx512f /proc/cpuinfo") != 0) continue;
    PassOptions o;
    pass_options_init(&o, 2);
    o.target = t;
    EXPECT_LE(compiled_vs_interp(c.m, o, 13, {"y", "z"}), 2e-5) << "target " << t;
  }
}

}  // namespace
