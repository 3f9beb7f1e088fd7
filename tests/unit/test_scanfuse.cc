// test_scanfuse.cc — pass scanfuse (a scan step's state update fused into the
// output reduction's sweep: LoopKernel.sweep_at / sweep_val) on small models:
// what it leaves for a GLA and a DeltaNet step (one nest fewer per step, the
// state written by the reduction kernel), the dependencies that keep nests
// apart, the flags and levels that turn it off, --dump-after=scanfuse and the
// generated C. Numerics (against the interpreter and -fno-scanfuse, prefill
// and decode, both backends) are tests/e2e/test_scanfuse.py.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

extern "C" {
#include "backend.h"
}

#include "loop_fixtures.h"

namespace {

using namespace loop_fixtures;

const LoopKernel *find_scan(const PtrVec *ks) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = (const LoopKernel *)ks->data[i];
    if (k->kind == LK_SCAN) return k;
    for (int r = 0; r < k->nregions; r++)
      if (const LoopKernel *s = find_scan(&k->regions[r]->kernels)) return s;
  }
  return nullptr;
}

struct Step {
  int nests = 0, sweeps = 0;
  const LoopKernel *fused = nullptr;
  int state = -1;
};

Step step_of(const LoopModule *m) {
  Step s;
  const LoopKernel *scan = find_scan(&m->kernels);
  if (!scan) return s;
  s.state = scan->state_bufs[0];
  const PtrVec *ks = &scan->regions[0]->kernels;
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = (const LoopKernel *)ks->data[i];
    if (k->kind != LK_LOOP) continue;
    s.nests++;
    if (k->sweep_at) {
      s.sweeps++;
      s.fused = k;
    }
  }
  return s;
}

PassOptions opts(int level, bool scanfuse = true) {
  PassOptions o;
  pass_options_init(&o, level);
  o.chunk = 0;  // the per-token step is what runs at every T then (the region is the same either way)
  o.scanfuse = scanfuse ? 1 : 0;
  return o;
}

const char *kGla = R"(import std
model g {
  max T = 16
  input x : f32[T, 32]
  output y : f32[T, 32]
  y = gla(x, heads: 2) @ "gla"
}
)";

const char *kDelta = R"(import std
model d {
  max T = 16
  input x : f32[T, 32]
  output y : f32[T, 32]
  y = gated_deltanet(x, heads: 2, head_dim: 16) @ "gdn"
}
)";

TEST(ScanFuse, GlaStepIsOneSweep) {
  Compiled c(kGla);
  ASSERT_NE(c.m, nullptr);
  Lowered off(c.m, opts(2, false)), on(c.m, opts(2));
  ASSERT_NE(off.lm, nullptr) << off.err;
  ASSERT_NE(on.lm, nullptr) << on.err;
  Step a = step_of(off.lm), b = step_of(on.lm);
  EXPECT_EQ(a.nests, 2);  // S' = exp(gk) S + k v^T; o = sum(i) q S'
  EXPECT_EQ(a.sweeps, 0);
  EXPECT_EQ(b.nests, 1);
  ASSERT_EQ(b.sweeps, 1);
  const LoopKernel *k = b.fused;
  EXPECT_TRUE(k->red_outer);
  EXPECT_EQ(k->sweep_at->buf, b.state);  // in place (scan_inplace), now stored in the sweep
  EXPECT_EQ(k->sweep_at->nidx, 3);
  EXPECT_TRUE(loop_kernel_writes(k, b.state));
  EXPECT_EQ(loop_buf_writes(on.lm, b.state), 1);
  EXPECT_GE(loop_kernel_reads(k, b.state), 2);  // the old value in the update, the new one in the sum
  EXPECT_TRUE(k->f32_math);
}

TEST(ScanFuse, DeltaStepLosesOneSweep) {
  Compiled c(kDelta);
  ASSERT_NE(c.m, nullptr);
  Lowered off(c.m, opts(2, false)), on(c.m, opts(2));
  ASSERT_NE(off.lm, nullptr) << off.err;
  ASSERT_NE(on.lm, nullptr) << on.err;
  Step a = step_of(off.lm), b = step_of(on.lm);
  EXPECT_EQ(a.nests, 3);  // u = beta (v - a k^T S); S' = a S + k u^T; o = q^T S'
  EXPECT_EQ(b.nests, 2);  // u must be complete before the update starts
  ASSERT_EQ(b.sweeps, 1);
  EXPECT_EQ(b.fused->sweep_at->buf, b.state);
  EXPECT_EQ(b.fused->sweep_at->nidx, 4);  // [H, G, K, V]
}

TEST(ScanFuse, FlagsAndLevelsTurnItOff) {
  Compiled c(kGla);
  ASSERT_NE(c.m, nullptr);
  EXPECT_TRUE(pipeline_has_pass("scanfuse"));
  for (int level : {0, 1}) {
    Lowered l(c.m, opts(level));
    ASSERT_NE(l.lm, nullptr) << l.err;
    EXPECT_EQ(step_of(l.lm).sweeps, 0) << "-O" << level;
  }
  Lowered nf(c.m, opts(2, false));
  EXPECT_EQ(step_of(nf.lm).sweeps, 0);
  PassOptions d = opts(2);
  d.f32_math = 0;  // both nests in double: still one sweep
  Lowered dbl(c.m, d);
  ASSERT_NE(dbl.lm, nullptr) << dbl.err;
  EXPECT_EQ(step_of(dbl.lm).sweeps, 1);
  EXPECT_FALSE(step_of(dbl.lm).fused->f32_math);
}

TEST(ScanFuse, DependenciesKeepNestsApart) {
  // the output reads the new state outside its sum too (S[h, 0, j]): only the sum's operand
  // may read what the sweep stores
  const char *outside = R"(import std
model u {
  max T = 8
  input q : f32[T, 2, 4]
  input k : f32[T, 2, 4]
  input v : f32[T, 2, 4]
  output y : f32[T, 2, 4]
  y = scan t with S: f32[2, 4, 4] = 0 {
    S[h, i, j] = 0.5 * S[h, i, j] + k[t, h, i] * v[t, h, j]
    emit[h, j] = S[h, 0, j] + sum(i) q[t, h, i] * S[h, i, j]
  }
}
)";
  // the sum's operand (sum(i) takes the whole expression) also reads S[h, 0, j]: not the
  // element the sweep has just stored
  const char *other_index = R"(import std
model u {
  max T = 8
  input q : f32[T, 2, 4]
  input k : f32[T, 2, 4]
  input v : f32[T, 2, 4]
  output y : f32[T, 2, 4]
  y = scan t with S: f32[2, 4, 4] = 0 {
    S[h, i, j] = 0.5 * S[h, i, j] + k[t, h, i] * v[t, h, j]
    emit[h, j] = sum(i) q[t, h, i] * S[h, i, j] + S[h, 0, j]
  }
}
)";
  // the legal form of the same step, as a control
  const char *plain = R"(import std
model u {
  max T = 8
  input q : f32[T, 2, 4]
  input k : f32[T, 2, 4]
  input v : f32[T, 2, 4]
  output y : f32[T, 2, 4]
  y = scan t with S: f32[2, 4, 4] = 0 {
    S[h, i, j] = 0.5 * S[h, i, j] + k[t, h, i] * v[t, h, j]
    emit[h, j] = silu(v[t, h, j]) * sum(i) q[t, h, i] * S[h, i, j]
  }
}
)";
  for (auto [src, want] : std::vector<std::pair<const char *, int>>{{outside, 0}, {other_index, 0}, {plain, 1}}) {
    Compiled c(src);
    ASSERT_NE(c.m, nullptr);
    Lowered l(c.m, opts(2));
    ASSERT_NE(l.lm, nullptr) << l.err;
    EXPECT_EQ(step_of(l.lm).sweeps, want) << src;
  }
}

std::string slurp(const std::string &path) {
  std::string text;
  FILE *g = fopen(path.c_str(), "r");
  if (!g) return text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, g)) > 0) text.append(buf, n);
  fclose(g);
  return text;
}

TEST(ScanFuse, DumpAndGeneratedC) {
  Compiled c(kGla);
  ASSERT_NE(c.m, nullptr);
  std::string path = std::string(GAT_BINARY_DIR) + "/test_scanfuse_dump.txt";
  FILE *f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  PassOptions o = opts(2);
  o.dump_after = "scanfuse";
  o.dump_out = f;
  Lowered l(c.m, o);
  fclose(f);
  ASSERT_NE(l.lm, nullptr) << l.err;
  std::string text = slurp(path);
  EXPECT_NE(text.find("red_outer f32_math sweep b"), std::string::npos) << text;
  // the C: the state store and the accumulation in the same innermost loop, the state a
  // restrict (written) parameter of the nest helper
  std::string cpath = std::string(GAT_BINARY_DIR) + "/test_scanfuse_gla.c";
  char err[1024] = "";
  PassOptions o2 = opts(2);
  ASSERT_EQ(backend_emit_c_opt(c.m, cpath.c_str(), &o2, err, sizeof err), 0) << err;
  std::string src = slurp(cpath);
  int S = step_of(l.lm).state;
  std::string store = "      b" + std::to_string(S) + "[";
  size_t p = src.find(store);
  ASSERT_NE(p, std::string::npos);
  size_t acc = src.find("acc[v1] += ", p);
  ASSERT_NE(acc, std::string::npos);
  EXPECT_EQ(src.substr(p, acc - p).find("}"), std::string::npos);  // no loop closes in between
  EXPECT_NE(src.find("float *restrict b" + std::to_string(S) + ","), std::string::npos);
  std::remove(path.c_str());
  std::remove(cpath.c_str());
}

}  // namespace
