// test_block.cc — pass block (-O2): GEMM row and column blocks as LK_TILE
// loops around the micro-kernel calls. What the pass makes (the loops, their
// steps and the leaves' blocks), what it leaves alone, the switches that turn
// it off, what the verifier refuses, and the text of --dump-loops. That the
// blocks change no bit is tests/e2e/test_block.py (every example and M1-M6,
// both backends, against -fno-block and the interpreter).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "loop_fixtures.h"

namespace {

using namespace loop_fixtures;

void collect(const PtrVec *ks, LoopKernelKind kind, std::vector<LoopKernel *> &out) {
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = (LoopKernel *)ks->data[i];
    if (k->kind == kind && (kind != LK_CALL || k->call == LC_GEMM)) out.push_back(k);
    for (int r = 0; r < k->nregions; r++) collect(&k->regions[r]->kernels, kind, out);
  }
}

std::vector<LoopKernel *> find(const LoopModule *m, LoopKernelKind kind) {
  std::vector<LoopKernel *> v;
  collect(&m->kernels, kind, v);
  return v;
}

std::string dump(const LoopModule *m) {
  char *buf = nullptr;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  loop_print(f, m);
  fclose(f);
  std::string s(buf, len);
  free(buf);
  return s;
}

// a wide projection (two column blocks and a tail), a narrow one, a gated one (row blocks only)
// and a GLU
const char *kModel = R"(import std
model blk {
  max T = 300
  input x : f32[T, 40]
  output y : f32[T, 600]
  output z : f32[T, 24]
  output g : f32[T, 24]
  output f : f32[T, 32]
  y = linear(x, 600, bias: true) @ "wide"
  z = linear(x, 24) @ "narrow"
  g = z * sigmoid(linear(x, 24) @ "gate")
  f = silu(linear(x, 32) @ "w1") * linear(x, 32) @ "w3"
}
)";

PassOptions opts(int level) {
  PassOptions o;
  pass_options_init(&o, level);
  o.concat = 0;  // keep the projections apart: one leaf each
  return o;
}

TEST(Block, GemmsGetRowAndColumnTileLoops) {
  Compiled c(kModel);
  ASSERT_NE(c.m, nullptr);
  Lowered l(c.m, opts(2));
  ASSERT_NE(l.lm, nullptr) << l.err;
  int both = 0, rows_only = 0, none = 0;
  for (LoopKernel *g : find(l.lm, LK_CALL)) {
    const bool gated = g->nargs > 9 && g->args[9] >= 0;
    none += g->blk_var[0] < 0;
    ASSERT_GE(g->blk_var[0], 0) << "k" << g->id;  // T rows: always a row loop
    EXPECT_EQ(g->blk_len[0], 8 * LOOP_BLOCK_M);  // the default -fblock-rows
    if (g->sizes[1].k > 256) {
      EXPECT_FALSE(gated);
      ASSERT_GE(g->blk_var[1], 0);
      EXPECT_EQ(g->blk_len[1] % LOOP_PACK_NR, 0);
      both++;
    } else {
      EXPECT_EQ(g->blk_var[1], -1);  // one column block: no loop
      rows_only++;
    }
  }
  EXPECT_EQ(both, 1);       // wide
  EXPECT_EQ(rows_only, 3);  // narrow, gate, the GLU
  EXPECT_EQ(none, 0);
  // every tile loop: parallel, one region on the parent's rows, its leaf's step
  auto tiles = find(l.lm, LK_TILE);
  EXPECT_EQ((int)tiles.size(), 5);
  EXPECT_EQ(l.lm->ntiles, 5);
  for (LoopKernel *t : tiles) {
    EXPECT_TRUE(t->tile_par);
    ASSERT_EQ(t->nregions, 1);
    EXPECT_EQ(t->regions[0]->tvar, t->tvar);
  }
}

TEST(Block, DumpShowsTheLoopsAndTheLeafBlocks) {
  Compiled c(kModel);
  ASSERT_NE(c.m, nullptr);
  Lowered l(c.m, opts(2));
  ASSERT_NE(l.lm, nullptr) << l.err;
  std::string d = dump(l.lm);
  // column blocks outside, row blocks inside (BLIS's order: the weight slice stays in L2)
  EXPECT_NE(d.find("tile i0 in 0..600 step 256 parallel {"), std::string::npos) << d;
  EXPECT_NE(d.find("tile i1 in 0..1*T step 768 parallel {"), std::string::npos) << d;
  EXPECT_NE(d.find("rows [i1, +768) cols [i0, +256)"), std::string::npos) << d;
  // -fblock-rows
  PassOptions o = opts(2);
  o.block_rows = 192;
  Lowered l2(c.m, o);
  ASSERT_NE(l2.lm, nullptr) << l2.err;
  EXPECT_NE(dump(l2.lm).find("rows [i1, +192) cols [i0, +256)"), std::string::npos) << dump(l2.lm);
}

TEST(Block, SwitchesAndLevelsTurnItOff) {
  Compiled c(kModel);
  ASSERT_NE(c.m, nullptr);
  for (int variant = 0; variant < 4; variant++) {
    PassOptions o = opts(variant == 3 ? 1 : 2);
    if (variant == 0) o.block = 0;
    if (variant == 1) o.pack = 0;
    if (variant == 2) o.tile = 0;
    Lowered l(c.m, o);
    ASSERT_NE(l.lm, nullptr) << l.err;
    EXPECT_TRUE(find(l.lm, LK_TILE).empty()) << "variant " << variant;
    EXPECT_EQ(l.lm->ntiles, 0);
    for (LoopKernel *g : find(l.lm, LK_CALL)) EXPECT_EQ(g->blk_var[0], -1);
  }
}

TEST(Block, RowLoopsAtAnyMaxT) {
  Compiled c(R"(import std
model small {
  max T = 8
  input x : f32[T, 16]
  output y : f32[T, 600]
  param w : f32[16, 16] = normal(0, 0.1)
  y = linear(matmul(x, w), 600)
}
)");
  ASSERT_NE(c.m, nullptr);
  Lowered l(c.m, opts(2));
  ASSERT_NE(l.lm, nullptr) << l.err;
  for (LoopKernel *g : find(l.lm, LK_CALL)) EXPECT_GE(g->blk_var[0], 0);  // T rows even at max T = 8
}

TEST(Block, VerifierRefusesBadBlocks) {
  Compiled c(kModel);
  ASSERT_NE(c.m, nullptr);
  Lowered l(c.m, opts(2));
  ASSERT_NE(l.lm, nullptr) << l.err;
  char err[512];
  ASSERT_EQ(loop_verify(l.lm, err, sizeof err), 0) << err;
  LoopKernel *wide = nullptr;
  for (LoopKernel *g : find(l.lm, LK_CALL))
    if (g->blk_var[1] >= 0) wide = g;
  ASSERT_NE(wide, nullptr);
  wide->blk_len[1] = 128;  // not the step of its tile loop
  EXPECT_NE(loop_verify(l.lm, err, sizeof err), 0);
  EXPECT_NE(std::string(err).find("same step"), std::string::npos) << err;
  wide->blk_len[1] = 256;
  wide->blk_len[0] = 100;  // not a multiple of every target's micro-tile rows
  auto tiles = find(l.lm, LK_TILE);
  for (LoopKernel *t : tiles)
    if (t->tile_var == wide->blk_var[0]) t->tile_step = 100;
  EXPECT_NE(loop_verify(l.lm, err, sizeof err), 0);
  EXPECT_NE(std::string(err).find("multiple"), std::string::npos) << err;
  for (LoopKernel *t : tiles)
    if (t->tile_var == wide->blk_var[0]) t->tile_step = 768;
  wide->blk_len[0] = 768;
  ASSERT_EQ(loop_verify(l.lm, err, sizeof err), 0) << err;
  // a block whose variable is no enclosing loop: move the leaf out of its tiles
  // a column block named after a loop that does not enclose the leaf (another GEMM's)
  wide->blk_var[1] = (wide->blk_var[1] + 2) % l.lm->ntiles;
  EXPECT_NE(loop_verify(l.lm, err, sizeof err), 0);
}

}  // namespace
