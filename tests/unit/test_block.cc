// test_block.cc — pass block (-O2): GEMM row and column blocks as LK_TILE
// loops around the micro-kernel calls, and flash attention as its K/V append
// followed by a loop over heads. What the pass makes (the loops, their
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
    if (kind == LK_CALL && k->kind == LK_CALL && k->call == LC_ATTENTION && k->attn_fast) out.push_back(k);
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

// two attentions: 4 query heads over 2 KV heads, and one head (nothing to split)
const char *kAttnModel = R"(import std
model att {
  max T = 64
  input x : f32[T, 32]
  output y : f32[T, 32]
  output z : f32[T, 8]
  q = linear(x, 32) @ "q" as [T, 4, 8]
  k = linear(x, 16) @ "k" as [T, 2, 8]
  v = linear(x, 16) @ "v" as [T, 2, 8]
  y = attention(q, k, v) as [T, 32]
  q1 = linear(x, 8) @ "q1" as [T, 1, 8]
  k1 = linear(x, 8) @ "k1" as [T, 1, 8]
  z = attention(q1, k1, k1) as [T, 8]
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

TEST(Block, AttentionBecomesItsAppendAndALoopOverHeads) {
  Compiled c(kAttnModel);
  ASSERT_NE(c.m, nullptr);
  Lowered l(c.m, opts(2));
  ASSERT_NE(l.lm, nullptr) << l.err;
  int appends = 0, heads = 0, whole = 0;
  for (LoopKernel *k : find(l.lm, LK_CALL)) {
    if (k->call != LC_ATTENTION) continue;
    appends += k->attn_part == LOOP_ATTN_APPEND;
    whole += k->attn_part == LOOP_ATTN_WHOLE;
    if (k->attn_part == LOOP_ATTN_HEADS) {
      heads++;
      EXPECT_EQ(k->blk_var[0], -1);
      ASSERT_GE(k->blk_var[1], 0);
      EXPECT_EQ(k->blk_len[1], 1);
      EXPECT_EQ(k->sizes[1].k, 4);  // the loop runs over the 4 query heads
    }
  }
  EXPECT_EQ(appends, 1);
  EXPECT_EQ(heads, 1);
  EXPECT_EQ(whole, 1);  // the one-head attention stays one call
  // the append comes first, then the loop, in the same list (the text shows the order)
  std::string d = dump(l.lm);
  const size_t a = d.find("flash append-only"), t = d.find("in 0..4 step 1 parallel {"), h = d.find("heads [i");
  ASSERT_NE(a, std::string::npos) << d;
  ASSERT_NE(t, std::string::npos) << d;
  ASSERT_NE(h, std::string::npos) << d;
  EXPECT_LT(a, t);
  EXPECT_LT(t, h);
  // -fno-block: one whole call each
  PassOptions o = opts(2);
  o.block = 0;
  Lowered l0(c.m, o);
  ASSERT_NE(l0.lm, nullptr) << l0.err;
  for (LoopKernel *k : find(l0.lm, LK_CALL))
    if (k->call == LC_ATTENTION) EXPECT_EQ(k->attn_part, LOOP_ATTN_WHOLE);
}

TEST(Block, VerifierRefusesBadAttentionParts) {
  Compiled c(kAttnModel);
  ASSERT_NE(c.m, nullptr);
  Lowered l(c.m, opts(2));
  ASSERT_NE(l.lm, nullptr) << l.err;
  char err[512];
  ASSERT_EQ(loop_verify(l.lm, err, sizeof err), 0) << err;
  LoopKernel *hd = nullptr, *app = nullptr;
  for (LoopKernel *k : find(l.lm, LK_CALL))
    if (k->call == LC_ATTENTION && k->attn_part == LOOP_ATTN_HEADS) hd = k;
    else if (k->call == LC_ATTENTION && k->attn_part == LOOP_ATTN_APPEND) app = k;
  ASSERT_NE(hd, nullptr);
  ASSERT_NE(app, nullptr);
  const int v = hd->blk_var[1];
  hd->blk_var[1] = -1;  // heads without a head block
  EXPECT_NE(loop_verify(l.lm, err, sizeof err), 0);
  EXPECT_NE(std::string(err).find("head block"), std::string::npos) << err;
  hd->blk_var[1] = v;
  hd->attn_fast = 0;  // a part of the reference kernel, which has none
  EXPECT_NE(loop_verify(l.lm, err, sizeof err), 0);
  hd->attn_fast = 1;
  app->blk_var[1] = v;  // an append with a block
  app->blk_len[1] = 1;
  EXPECT_NE(loop_verify(l.lm, err, sizeof err), 0);
  app->blk_var[1] = -1;
  hd->blk_len[1] = 2;  // not its loop's step
  EXPECT_NE(loop_verify(l.lm, err, sizeof err), 0);
  EXPECT_NE(std::string(err).find("same step"), std::string::npos) << err;
  hd->blk_len[1] = 1;
  ASSERT_EQ(loop_verify(l.lm, err, sizeof err), 0) << err;
}

// The loop IR users see for a wide linear layer, a multi-head attention and a GLA scan at -O2:
// tests/golden/blocks.loops is `gattnc tests/golden/blocks.gat -O2 --dump-loops`, compared
// whole. After a deliberate change of the passes, check the difference and rewrite the file
// with GAT_UPDATE_GOLDEN=1 ./test_block --gtest_filter=Block.GoldenLoopIr.
TEST(Block, GoldenLoopIr) {
  const std::string gat = GAT_SOURCE_DIR "/tests/golden/blocks.gat", golden = GAT_SOURCE_DIR "/tests/golden/blocks.loops";
  const std::string cmd = GAT_BINARY_DIR "/gattnc '" + gat + "' -O2 --dump-loops";
  FILE *p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr) << cmd;
  std::string got;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) got.append(buf, n);
  ASSERT_EQ(pclose(p), 0) << cmd << "\n" << got;
  if (getenv("GAT_UPDATE_GOLDEN")) {
    FILE *f = fopen(golden.c_str(), "wb");
    ASSERT_NE(f, nullptr) << golden;
    fwrite(got.data(), 1, got.size(), f);
    fclose(f);
  }
  FILE *f = fopen(golden.c_str(), "rb");
  ASSERT_NE(f, nullptr) << golden;
  std::string want;
  for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) want.append(buf, n);
  fclose(f);
  // the three forms, so a difference in them reads plainly before the whole-text comparison
  EXPECT_NE(got.find("tile i0 in 0..320 step 256 parallel {"), std::string::npos);
  EXPECT_NE(got.find("flash append-only"), std::string::npos);
  EXPECT_NE(got.find("chunked gla("), std::string::npos);
  EXPECT_EQ(got, want) << "the -O2 loop IR of " << gat << " differs from " << golden
                       << " (GAT_UPDATE_GOLDEN=1 rewrites it)";
}

}  // namespace
