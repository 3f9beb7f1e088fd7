// test_passes.cc — what each optimizer pass rewrites, on small graph-IR
// modules written in the text form: dce removes dead ops only, cse merges
// duplicates, gemm recognises linear/matmul-with-weight nests (and nothing
// else), epilogue folds activation and residual into the GEMM, fuse merges
// elementwise chains and marks the rounding of inlined producers; the
// pipeline verifies after every pass, knows its pass names, and -O0 is the
// plain lowering. Numerics: fused code (-O1) is compared bitwise with -O0,
// and -O2 against values computed here in double from the math.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "backend.h"
#include "interp.h"
#include "ir.h"
#include "pass.h"
#include "tensor.h"
}

#include "loop_fixtures.h"

namespace {

using loop_fixtures::Lowered;

struct Parsed {
  Arena a;
  IrModule *m;
  explicit Parsed(const char *text) {
    arena_init(&a);
    m = ir_parse(&a, "test.ir", text);
  }
  ~Parsed() {
    if (m) ir_module_release(m);
    arena_free(&a);
  }
};

int count_ops(const IrBlock *b, IrOpKind k) {
  int n = 0;
  for (int i = 0; i < b->ops.len; i++) n += ((IrOp *)b->ops.data[i])->kind == k;
  return n;
}

std::string verify(const IrModule *m) {
  char err[1024] = "";
  return ir_verify(m, err, sizeof err) == 0 ? "" : err;
}

const char *kDead = R"(module t max_T 16
param "w" : f32[8, 4] init linear
input "x" : f32[T, 4]
output "y" : f32[T, 8]
body {
  %0 = input {name = "x"} : f32[T, 4]
  %1 = param {name = "w"} : f32[8, 4]
  %2 = unary %0 {fn = "exp"} : f32[T, 4]
  %3 = unary %2 {fn = "tanh"} : f32[T, 4]
  %4 = param {name = "w"} : f32[8, 4]
  %5 = linear %0, %4 : f32[T, 8]
  %6 = linear %0, %1 : f32[T, 8]
  %7 = binary %5, %6 {fn = "add"} : f32[T, 8]
  output %7 {name = "y"}
}
)";

TEST(Passes, DceRemovesDeadChainOnly) {
  Parsed p(kDead);
  ASSERT_NE(p.m, nullptr);
  PassOptions o;
  pass_options_init(&o, 1);
  EXPECT_EQ(count_ops(p.m->body, IR_OP_UNARY), 2);
  pass_dce(p.m, &o);
  EXPECT_EQ(verify(p.m), "");
  EXPECT_EQ(count_ops(p.m->body, IR_OP_UNARY), 0);  // exp -> tanh, never used
  EXPECT_EQ(count_ops(p.m->body, IR_OP_LINEAR), 2);
  EXPECT_EQ(count_ops(p.m->body, IR_OP_OUTPUT), 1);
  EXPECT_EQ(count_ops(p.m->body, IR_OP_INPUT), 1);
}

TEST(Passes, CseMergesDuplicateParamAndLinear) {
  Parsed p(kDead);
  ASSERT_NE(p.m, nullptr);
  PassOptions o;
  pass_options_init(&o, 1);
  pass_cse(p.m, &o);
  pass_dce(p.m, &o);
  EXPECT_EQ(verify(p.m), "");
  EXPECT_EQ(count_ops(p.m->body, IR_OP_PARAM), 1);   // the two reads of "w"
  EXPECT_EQ(count_ops(p.m->body, IR_OP_LINEAR), 1);  // then the two identical linears
  // the add now reads the same value twice
  for (int i = 0; i < p.m->body->ops.len; i++) {
    IrOp *op = (IrOp *)p.m->body->ops.data[i];
    if (op->kind == IR_OP_BINARY) EXPECT_EQ(op->in[0], op->in[1]);
  }
}

const char *kMlp = R"(module t max_T 16
param "w1" : f32[45, 67] init linear
param "b1" : f32[45] init linear
param "w2" : f32[67, 45] init linear
param "m" : f32[67, 5] init linear
input "x" : f32[T, 67]
output "y" : f32[T, 67]
output "z" : f32[T, 5]
body {
  %0 = input {name = "x"} : f32[T, 67]
  %1 = param {name = "w1"} : f32[45, 67]
  %2 = param {name = "b1"} : f32[45]
  %3 = linear %0, %1, %2 : f32[T, 45]
  %4 = unary %3 {fn = "gelu"} : f32[T, 45]
  %5 = param {name = "w2"} : f32[67, 45]
  %6 = linear %4, %5 : f32[T, 67]
  %7 = binary %6, %0 {fn = "add"} : f32[T, 67]
  %8 = param {name = "m"} : f32[67, 5]
  %9 = matmul %7, %8 : f32[T, 5]
  %10 = unary %9 {fn = "exp"} : f32[T, 5]
  %11 = unary %10 {fn = "neg"} : f32[T, 5]
  %12 = binary %11, %9 {fn = "mul"} : f32[T, 5]
  output %7 {name = "y"}
  output %12 {name = "z"}
}
)";

// the call kernels of a kernel list, in order, the leaves of tile loops (pass block) included
void calls_of(const PtrVec *ks, std::vector<const LoopKernel *> &out) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = (const LoopKernel *)ks->data[i];
    if (k->kind == LK_CALL) out.push_back(k);
    if (k->kind == LK_TILE) calls_of(&k->regions[0]->kernels, out);
  }
}

int count_calls(const LoopModule *m, LoopCallKind c) {
  std::vector<const LoopKernel *> v;
  calls_of(&m->kernels, v);
  int n = 0;
  for (const LoopKernel *k : v) n += k->call == c;
  return n;
}

const LoopKernel *first_gemm(const LoopModule *m, int nth = 0) {
  std::vector<const LoopKernel *> v;
  calls_of(&m->kernels, v);
  for (const LoopKernel *k : v)
    if (k->call == LC_GEMM && nth-- == 0) return k;
  return nullptr;
}

TEST(Passes, GemmRecognisesLinearAndMatmulWithWeights) {
  Parsed p(kMlp);
  ASSERT_NE(p.m, nullptr);
  PassOptions o;
  pass_options_init(&o, 2);
  o.fuse = 0;
  Lowered l(p.m, o);
  ASSERT_NE(l.lm, nullptr) << l.err;
  EXPECT_EQ(count_calls(l.lm, LC_GEMM), 3);
  EXPECT_EQ(l.lm->packs.len, 3);
  const LoopKernel *g0 = first_gemm(l.lm, 0), *g2 = first_gemm(l.lm, 2);
  ASSERT_TRUE(g0 && g2);
  EXPECT_GE(g0->args[2], 0);  // bias taken into the call
  EXPECT_EQ(g0->w_sn, 67);    // linear: W[N, K]
  EXPECT_EQ(g0->w_sk, 1);
  EXPECT_EQ(g2->w_sn, 1);     // matmul: W[K, N]
  EXPECT_EQ(g2->w_sk, 5);
  // packed weights: ceil(N / 32) * 32 * K floats each, persistent, inside the arena
  const LoopPack *pk = (const LoopPack *)l.lm->packs.data[0];
  const LoopBuf *pb = loop_buf(l.lm, pk->buf);
  EXPECT_TRUE(pb->persistent);
  EXPECT_EQ(pb->bytes, 4 * 64 * 67);
  EXPECT_LE(pb->offset + pb->bytes, l.lm->arena_bytes);
}

TEST(Passes, GemmLeavesNonWeightContractionsAlone) {
  // a matmul of two activations has no weight to pack: stays a loop nest
  Parsed p(R"(module t max_T 8
input "a" : f32[T, 6]
input "b" : f32[6, 3]
output "y" : f32[T, 3]
body {
  %0 = input {name = "a"} : f32[T, 6]
  %1 = input {name = "b"} : f32[6, 3]
  %2 = matmul %0, %1 : f32[T, 3]
  output %2 {name = "y"}
}
)");
  ASSERT_NE(p.m, nullptr);
  PassOptions o;
  pass_options_init(&o, 2);
  Lowered l(p.m, o);
  ASSERT_NE(l.lm, nullptr) << l.err;
  EXPECT_EQ(count_calls(l.lm, LC_GEMM), 0);
  EXPECT_EQ(l.lm->packs.len, 0);
}

TEST(Passes, EpilogueFoldsActivationAndResidual) {
  Parsed p(kMlp);
  ASSERT_NE(p.m, nullptr);
  PassOptions o;
  pass_options_init(&o, 2);
  Lowered l(p.m, o);
  ASSERT_NE(l.lm, nullptr) << l.err;
  const LoopKernel *g0 = first_gemm(l.lm, 0), *g1 = first_gemm(l.lm, 1);
  ASSERT_TRUE(g0 && g1);
  EXPECT_EQ(g0->epi_act, 1 + (int)IR_FN_GELU_ERF);
  EXPECT_GE(g1->args[3], 0);  // + x as residual
  EXPECT_EQ(g1->epi_act, 0);
  // -fno-fuse: no epilogue
  o.fuse = 0;
  Lowered u(p.m, o);
  ASSERT_NE(u.lm, nullptr) << u.err;
  EXPECT_EQ(first_gemm(u.lm, 0)->epi_act, 0);
  EXPECT_LT(first_gemm(u.lm, 1)->args[3], 0);
  EXPECT_GT(u.lm->kernels.len, l.lm->kernels.len);
}

TEST(Passes, FuseMergesElementwiseChainWithRounding) {
  Parsed p(kMlp);
  ASSERT_NE(p.m, nullptr);
  PassOptions o0, o1;
  pass_options_init(&o0, 0);
  pass_options_init(&o1, 1);
  Lowered a(p.m, o0), b(p.m, o1);
  ASSERT_NE(a.lm, nullptr) << a.err;
  ASSERT_NE(b.lm, nullptr) << b.err;
  // exp -> neg -> mul(., %9) becomes one nest at -O1; the matmul %9 is read twice by
  // that nest, and a producer with a reduction is only inlined into a single read
  EXPECT_LT(b.lm->kernels.len, a.lm->kernels.len);
  int rounded = 0;
  for (int i = 0; i < b.lm->kernels.len; i++) {
    const LoopKernel *k = (const LoopKernel *)b.lm->kernels.data[i];
    if (k->kind == LK_LOOP && k->body && k->body->kind == LX_BINARY && k->body->fn == IR_FN_MUL)
      rounded += k->body->a->round;
  }
  EXPECT_EQ(rounded, 1);
}

TEST(Passes, PipelineNamesAndPlainO0) {
  const char *const *names = pipeline_pass_names();
  int n = 0;
  for (; names[n]; n++) EXPECT_TRUE(pipeline_has_pass(names[n]));
  EXPECT_GE(n, 6);
  EXPECT_FALSE(pipeline_has_pass("nosuch"));
  Parsed p(kMlp);
  ASSERT_NE(p.m, nullptr);
  PassOptions o;
  pass_options_init(&o, 0);
  Lowered l(p.m, o);
  ASSERT_NE(l.lm, nullptr);
  Arena a;
  arena_init(&a);
  char err[256];
  LoopModule *plain = loop_lower(&a, p.m, "t", err, sizeof err);
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->kernels.len, l.lm->kernels.len);
  EXPECT_EQ(plain->arena_bytes, l.lm->arena_bytes);
  EXPECT_EQ(count_calls(l.lm, LC_GEMM), 0);
  arena_free(&a);
  o.dump_after = "bogus";
  Lowered bad(p.m, o);
  EXPECT_EQ(bad.lm, nullptr);
  EXPECT_NE(std::string(bad.err).find("unknown pass"), std::string::npos);
}

// Numerics: -O1 (fusion) is bitwise -O0; -O2 matches the math within 1e-4.
TEST(Passes, FusedIsBitwisePlainAndGemmMatchesMath) {
  Parsed p(kMlp);
  ASSERT_NE(p.m, nullptr);
  TensorSet w = {0, 0, nullptr}, in = {0, 0, nullptr};
  weights_init(p.m, 3, &w);
  int64_t dx[2] = {7, 67};
  Tensor *x = tensorset_add(&in, "x", IR_F32, 2, dx);
  for (int i = 0; i < 7 * 67; i++) ((float *)x->data)[i] = (float)std::sin(0.37 * i);
  TensorSet out[3] = {{0, 0, nullptr}, {0, 0, nullptr}, {0, 0, nullptr}};
  char err[1024] = "";
  for (int lvl = 0; lvl < 3; lvl++) {
    PassOptions o;
    pass_options_init(&o, lvl);
    ASSERT_EQ(run_compiled_opt(p.m, &w, &in, 0, &o, &out[lvl], err, sizeof err), 0) << err;
  }
  for (const char *name : {"y", "z"}) {
    const Tensor *a = tensorset_find(&out[0], name), *b = tensorset_find(&out[1], name);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(memcmp(a->data, b->data, (size_t)tensor_numel(a) * 4), 0) << name;
  }
  // y = x + gelu(x W1^T + b1) W2^T from the math, in double
  const float *W1 = (const float *)tensorset_find(&w, "w1")->data, *B1 = (const float *)tensorset_find(&w, "b1")->data,
              *W2 = (const float *)tensorset_find(&w, "w2")->data, *X = (const float *)x->data;
  const float *Y = (const float *)tensorset_find(&out[2], "y")->data;
  double worst = 0, scale = 0;
  for (int t = 0; t < 7; t++) {
    double h[45];
    for (int j = 0; j < 45; j++) {
      double s = B1[j];
      for (int k = 0; k < 67; k++) s += (double)X[t * 67 + k] * W1[j * 67 + k];
      h[j] = (float)(0.5 * s * (1 + std::erf(s / std::sqrt(2.0))));
    }
    for (int j = 0; j < 67; j++) {
      double s = 0;
      for (int k = 0; k < 45; k++) s += h[k] * W2[j * 45 + k];
      double want = s + X[t * 67 + j];
      worst = std::fmax(worst, std::fabs(Y[t * 67 + j] - want));
      scale = std::fmax(scale, std::fabs(want));
    }
  }
  EXPECT_LE(worst / scale, 1e-4);
  tensorset_free(&w);
  tensorset_free(&in);
  for (auto &o : out) tensorset_free(&o);
}

}  // namespace
