// test_concat.cc — passes concat (GEMMs on the same input as one segmented
// GEMM, LoopGemmSeg) and gate (y * act(GEMM) as the GEMM's epilogue, args[9])
// on small modules: which kernels they leave, the dependencies they must
// respect, the flags and levels that turn them off, and that the generated C
// carries the segmented call. Numerics (against the interpreter, with and
// without the passes, prefill and decode) are tests/e2e/test_concat_gate.py.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

extern "C" {
#include "backend.h"
}

#include "loop_fixtures.h"

namespace {

using namespace loop_fixtures;

void collect(const PtrVec *ks, std::vector<const LoopKernel *> &out) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = (const LoopKernel *)ks->data[i];
    if (k->kind == LK_CALL && k->call == LC_GEMM) out.push_back(k);
    for (int r = 0; r < k->nregions; r++) collect(&k->regions[r]->kernels, out);
  }
}

std::vector<const LoopKernel *> gemms(const LoopModule *m) {
  std::vector<const LoopKernel *> v;
  collect(&m->kernels, v);
  return v;
}

int arg(const LoopKernel *k, int i) { return i < k->nargs ? k->args[i] : -1; }

// four projections of one norm (bias, silu, residual, odd sizes), a gate and its mirror
const char *kProj = R"(import std
model proj {
  max T = 32
  input x : f32[T, 67]
  input u : f32[T, 40]
  output q : f32[T, 45]
  output k : f32[T, 33]
  output r : f32[T, 67]
  output o : f32[T, 40]
  output p : f32[T, 40]
  h = rms_norm(x, eps: 1e-5) @ "norm"
  q = linear(h, 45, bias: true) @ "q"
  k = silu(linear(h, 33) @ "k")
  r = x + linear(h, 67) @ "r"
  o = u * sigmoid(linear(h, 40, bias: true) @ "g")
  p = sigmoid(linear(h, 40) @ "g2") * linear(u, 40) @ "pu"
}
)";

TEST(Concat, ProjectionsOfOneInputBecomeOneSegmentedGemm) {
  Compiled c(kProj);
  ASSERT_NE(c.m, nullptr);
  Lowered l(c.m, 2);
  ASSERT_NE(l.lm, nullptr) << l.err;
  int seg = 0, gated = 0, plain = 0;
  for (auto *g : gemms(l.lm)) {
    if (g->ncat) {
      seg++;
      ASSERT_EQ(g->ncat, 3);  // q, k, r (g and g2 are gated, pu reads u)
      EXPECT_EQ(g->cat[0].out, g->out);
      EXPECT_EQ(g->sizes[1].k, 45 + 33 + 67);
      EXPECT_EQ(g->cat[0].n, 45);
      EXPECT_GE(g->cat[0].bias, 0);
      EXPECT_EQ(g->cat[1].act, 1 + (int)IR_FN_SILU);
      EXPECT_GE(g->cat[2].res, 0);
      EXPECT_GE(arg(g, 6), 0);  // the norm's row scale (pass prologue) is shared
      for (int s = 0; s < g->ncat; s++) {
        EXPECT_TRUE(loop_buf(l.lm, g->cat[s].w)->persistent);
        EXPECT_TRUE(loop_kernel_writes(g, g->cat[s].out));
        EXPECT_EQ(loop_buf_writes(l.lm, g->cat[s].out), 1);
        EXPECT_GT(loop_buf_reads(l.lm, g->cat[s].w), 0);  // its pack is still read
      }
    } else if (arg(g, 9) >= 0) {
      gated++;
      EXPECT_EQ(g->epi_act, 1 + (int)IR_FN_SIGMOID);
    } else {
      plain++;
    }
  }
  EXPECT_EQ(seg, 1);
  EXPECT_EQ(gated, 2);  // u * sigmoid(g) and sigmoid(g2) * pu (gated on g2, not on pu)
  EXPECT_EQ(plain, 1);  // pu
  char err[512] = "";
  EXPECT_EQ(loop_verify(l.lm, err, sizeof err), 0) << err;
}

TEST(Concat, FlagsAndLevelsTurnThePassesOff) {
  Compiled c(kProj);
  ASSERT_NE(c.m, nullptr);
  struct Case {
    int level, concat, gate, pack;
    int want_seg, want_gated;
  } cases[] = {{2, 0, 1, 1, 0, 2}, {2, 1, 0, 1, 1, 0}, {2, 0, 0, 1, 0, 0}, {2, 1, 1, 0, 0, 0}, {1, 1, 1, 1, 0, 0},
               {0, 1, 1, 1, 0, 0}};
  for (const Case &cs : cases) {
    PassOptions o;
    pass_options_init(&o, cs.level);
    o.concat = cs.concat, o.gate = cs.gate, o.pack = cs.pack;
    Lowered l(c.m, o);
    ASSERT_NE(l.lm, nullptr) << l.err;
    int seg = 0, gated = 0;
    for (auto *g : gemms(l.lm)) seg += g->ncat > 0, gated += arg(g, 9) >= 0;
    EXPECT_EQ(seg, cs.want_seg) << "O" << cs.level << " concat " << cs.concat << " gate " << cs.gate;
    EXPECT_EQ(gated, cs.want_gated) << "O" << cs.level << " concat " << cs.concat << " gate " << cs.gate;
  }
  // without gate, g and g2 join the segmented GEMM (sigmoid in their epilogue)
  PassOptions o;
  pass_options_init(&o, 2);
  o.gate = 0;
  Lowered l(c.m, o);
  ASSERT_NE(l.lm, nullptr) << l.err;
  for (auto *g : gemms(l.lm))
    if (g->ncat) EXPECT_EQ(g->ncat, 5);
}

// A projection whose residual is another projection's output, or whose
// input is rewritten in between, is not merged.
TEST(Concat, DependenciesKeepGemmsApart) {
  Compiled c(R"(model dep {
  max T = 16
  input x : f32[T, 24]
  output y : f32[T, 16]
  output z : f32[T, 16]
  q = linear(x, 16) @ "q"
  y = q + linear(x, 16) @ "r"
  z = linear(y, 16) @ "z" + linear(x, 16) @ "w"
}
)");
  ASSERT_NE(c.m, nullptr);
  Lowered l(c.m, 2);
  ASSERT_NE(l.lm, nullptr) << l.err;
  for (auto *g : gemms(l.lm))
    for (int s = 0; s < g->ncat; s++) {
      // r's residual is q: q and r never share a segmented GEMM
      for (int t = 0; t < g->ncat; t++) EXPECT_NE(g->cat[s].res, g->cat[t].out);
    }
  char err[512] = "";
  EXPECT_EQ(loop_verify(l.lm, err, sizeof err), 0) << err;
}

TEST(Concat, DumpAndGeneratedC) {
  Compiled c(kProj);
  ASSERT_NE(c.m, nullptr);
  PassOptions o;
  pass_options_init(&o, 2);
  std::string path = std::string(GAT_BINARY_DIR) + "/test_concat_dump.txt";
  FILE *f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  o.dump_after = "concat";
  o.dump_out = f;
  Lowered l(c.m, o);
  fclose(f);
  ASSERT_NE(l.lm, nullptr) << l.err;
  std::string text;
  {
    FILE *g = fopen(path.c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, g)) > 0) text.append(buf, n);
    fclose(g);
  }
  EXPECT_NE(text.find(" segments b"), std::string::npos) << text;
  EXPECT_NE(text.find("epilogue sigmoid"), std::string::npos) << text;
  // the C: one segmented call of 3 and two gated calls of one segment
  std::string cpath = std::string(GAT_BINARY_DIR) + "/test_concat_proj.c";
  char err[1024] = "";
  PassOptions o2;
  pass_options_init(&o2, 2);
  ASSERT_EQ(backend_emit_c_opt(c.m, cpath.c_str(), &o2, err, sizeof err), 0) << err;
  std::string src;
  {
    FILE *g = fopen(cpath.c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, g)) > 0) src.append(buf, n);
    fclose(g);
  }
  // pass block: row blocks, gat_gemm_seg_f32_blk(..., sg_, n, c->tile[i], c->tile[i] + 96)
  EXPECT_NE(src.find("sg_, 3, c->tile["), std::string::npos);
  size_t ones = 0;
  for (size_t p = src.find("sg_, 1, c->tile["); p != std::string::npos; p = src.find("sg_, 1, c->tile[", p + 1)) ones++;
  EXPECT_EQ(ones, 2u);
  std::remove(path.c_str());
  std::remove(cpath.c_str());
}

}  // namespace
