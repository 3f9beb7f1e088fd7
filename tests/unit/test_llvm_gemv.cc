// test_llvm_gemv.cc — the LLVM backend's -O2 GEMM (codegen/kernels/gemm.c, linked as bitcode) against a naive
// double reference computed here from the weights: the decode GEMV path (M = 1, 2: each packed
// panel streamed through the whole K, eight accumulators), the blocked path with packed A (row
// blocks of 8 MR rows, micro-panel tails, GEMV row tails), K = 263 (no multiple of the K blocks of
// 256 / 128 nor of the GEMV's 4-way unroll), N = 45 / 37 / 33 (no multiple of the 32-column
// panel), the f32 sigmoid / silu epilogue and the double gelu one, bias and residual, the GLU pair
// (swiglu) and -fno-pack (W packed per call). Run through the JIT, prefill and token by token.
// Tolerance: |got - ref| <= 1e-5 * (1 + |ref|) per element (f32 accumulation of 263 terms of
// size ~0.03 and a few-ulp float sigmoid stay below 1e-6; a wrong or missing term moves an
// output by ~1e-2).
#include <gtest/gtest.h>

#include "loop_fixtures.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "backend.h"
#include "backend_llvm.h"
#include "frontend.h"
#include "ir.h"
#include "pass.h"
#include "tensor.h"
}

#ifdef GAT_HAVE_LLVM
namespace {

const int K = 263;

const char *kGemm = R"(import std
model gm {
  max T = 80
  input x : f32[T, 263]
  input r : f32[T, 45]
  output y : f32[T, 45]
  output z : f32[T, 37]
  output v : f32[T, 33]
  output u : f32[T, 263]
  y = silu(linear(x, 45, bias: true) @ "fc") + r
  z = sigmoid(linear(x, 37) @ "g")
  v = gelu(linear(x, 33) @ "h")
  u = swiglu(x, hidden: 45) @ "mlp"
}
)";

using Model = loop_fixtures::Compiled;  // a .gat source compiled to graph IR

const float *W(const TensorSet *w, const char *name) {
  const Tensor *t = tensorset_find(w, name);
  EXPECT_NE(t, nullptr) << name;
  return t ? (const float *)t->data : nullptr;
}

/* out[t, n] = sum_k a[t, k] * w[n, k] in double */
std::vector<double> matmul(const std::vector<double> &a, int T, int Kd, const float *w, int N) {
  std::vector<double> o((size_t)T * N, 0.0);
  for (int t = 0; t < T; t++)
    for (int n = 0; n < N; n++) {
      double s = 0;
      for (int k = 0; k < Kd; k++) s += a[(size_t)t * Kd + k] * (double)w[(size_t)n * Kd + k];
      o[(size_t)t * N + n] = s;
    }
  return o;
}

double silu(double v) { return v / (1.0 + std::exp(-v)); }

void check(const TensorSet *out, const char *name, const std::vector<double> &ref, const std::string &what) {
  const Tensor *t = tensorset_find(out, name);
  ASSERT_NE(t, nullptr) << name;
  ASSERT_EQ((size_t)tensor_numel(t), ref.size()) << name;
  const float *g = (const float *)t->data;
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    double e = std::fabs((double)g[i] - ref[i]) / (1.0 + std::fabs(ref[i]));
    if (!(e <= worst)) worst = e, at = i;
  }
  EXPECT_LE(worst, 1e-5) << name << " " << what << " at " << at << ": " << g[at] << " vs " << ref[at];
}

void run_case(const IrModule *m, const TensorSet *w, int T, int step, int pack) {
  TensorSet in = {}, out = {};
  int64_t dx[2] = {T, K}, dr[2] = {T, 45};
  Tensor *x = tensorset_add(&in, "x", IR_F32, 2, dx), *r = tensorset_add(&in, "r", IR_F32, 2, dr);
  uint64_t s = 0x9e3779b97f4a7c15ull + (uint64_t)T;
  auto rnd = [&s]() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(s >> 11) / 9007199254740992.0 * 2 - 1);
  };
  for (int64_t i = 0; i < tensor_numel(x); i++) ((float *)x->data)[i] = rnd();
  for (int64_t i = 0; i < tensor_numel(r); i++) ((float *)r->data)[i] = rnd();
  PassOptions po;
  pass_options_init(&po, 2);
  po.pack = pack;
  char err[1024] = "";
  ASSERT_EQ(run_jit_opt(m, w, &in, step, &po, &out, err, sizeof err), 0) << err;

  std::vector<double> a((size_t)T * K), rr((size_t)T * 45);
  for (size_t i = 0; i < a.size(); i++) a[i] = ((const float *)x->data)[i];
  for (size_t i = 0; i < rr.size(); i++) rr[i] = ((const float *)r->data)[i];
  std::string what = "T " + std::to_string(T) + " step " + std::to_string(step) + (pack ? "" : " -fno-pack");

  std::vector<double> y = matmul(a, T, K, W(w, "fc.weight"), 45);
  const float *b = W(w, "fc.bias");
  for (int t = 0; t < T; t++)
    for (int n = 0; n < 45; n++) y[(size_t)t * 45 + n] = silu(y[(size_t)t * 45 + n] + b[n]) + rr[(size_t)t * 45 + n];
  check(&out, "y", y, what);

  std::vector<double> z = matmul(a, T, K, W(w, "g.weight"), 37);
  for (double &e : z) e = 1.0 / (1.0 + std::exp(-e));
  check(&out, "z", z, what);

  std::vector<double> v = matmul(a, T, K, W(w, "h.weight"), 33);
  for (double &e : v) e = 0.5 * e * (1.0 + std::erf(e / std::sqrt(2.0)));
  check(&out, "v", v, what);

  std::vector<double> gt = matmul(a, T, K, W(w, "mlp.gate_proj.weight"), 45);
  std::vector<double> up = matmul(a, T, K, W(w, "mlp.up_proj.weight"), 45);
  for (size_t i = 0; i < gt.size(); i++) gt[i] = silu(gt[i]) * up[i];
  check(&out, "u", matmul(gt, T, 45, W(w, "mlp.down_proj.weight"), K), what);

  tensorset_free(&in);
  tensorset_free(&out);
}

/* M = 1, 2 (decode GEMV), 3 (a micro-panel tail), 7, and row counts around the row blocks of
 * 8 MR (AVX-512: 64, AVX: 48) with GEMV (2 rows) and micro-panel tails */
TEST(LlvmGemm, PrefillRowCountsMatchADoubleReference) {
  Model md(kGemm);
  ASSERT_NE(md.m, nullptr);
  TensorSet w = {};
  weights_init(md.m, 5, &w);
  for (int T : {1, 2, 3, 7, 50, 66, 69, 80}) run_case(md.m, &w, T, 0, 1);
  tensorset_free(&w);
}

/* decode: one and two rows per call (the GEMV stream), and a tail of one */
TEST(LlvmGemm, DecodeStepsMatchADoubleReference) {
  Model md(kGemm);
  ASSERT_NE(md.m, nullptr);
  TensorSet w = {};
  weights_init(md.m, 6, &w);
  run_case(md.m, &w, 5, 1, 1);
  run_case(md.m, &w, 7, 2, 1);
  tensorset_free(&w);
}

/* -fno-pack: W packed per call into scratch, no decode stream (the blocked nest for every M) */
TEST(LlvmGemm, UnpackedWeightsMatchADoubleReference) {
  Model md(kGemm);
  ASSERT_NE(md.m, nullptr);
  TensorSet w = {};
  weights_init(md.m, 7, &w);
  for (int T : {1, 2, 69}) run_case(md.m, &w, T, 0, 0);
  run_case(md.m, &w, 4, 1, 0);
  tensorset_free(&w);
}

/* ---- segmented GEMM (pass_concat) and the gate epilogue (pass_gate): gat_gemm_seg_f32 ---------
 * Four projections of one RMSNorm output (the row scale of pass_prologue, the norm weight folded
 * into the packed weights) with N = 45, 33, 45, 31 (odd, no multiple of the 32-column panel) and
 * their own epilogues: bias, silu, residual, gelu (double), joined into one segmented GEMM; two
 * gated GEMMs, out = sigmoid(h.Wg^T + b) * u and out = (h.Wp^T) * u (no activation). K = 263.
 * Reference: double from the weights, rms in double. Same tolerance as above (1e-5 (1 + |ref|)).
 * The segmented outputs must also equal the run with both passes off bit for bit (each segment
 * computed by the same row / tile / epilogue code as its own gat_gemm_f32). */
const char *kSeg = R"(import std
model gs {
  max T = 80
  input x : f32[T, 263]
  input u : f32[T, 37]
  input r : f32[T, 45]
  output q : f32[T, 45]
  output k : f32[T, 33]
  output v : f32[T, 45]
  output w : f32[T, 31]
  output o : f32[T, 37]
  output p : f32[T, 37]
  h = rms_norm(x, eps: 1e-5) @ "norm"
  q = linear(h, 45, bias: true) @ "q"
  k = silu(linear(h, 33) @ "k")
  v = r + linear(h, 45) @ "v"
  w = gelu(linear(h, 31) @ "w")
  o = u * sigmoid(linear(h, 37, bias: true) @ "g")
  p = u * linear(h, 37) @ "g2"
}
)";

int count_seg(const PtrVec *ks, int *gated) {
  int n = 0;
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = (const LoopKernel *)ks->data[i];
    if (k->kind == LK_CALL && k->call == LC_GEMM) {
      n += k->ncat > 0;
      *gated += k->ncat == 0 && k->nargs > 9 && k->args[9] >= 0;
    }
    if (k->kind == LK_TILE) n += count_seg(&k->regions[0]->kernels, gated); /* pass block's row loops */
  }
  return n;
}

void seg_case(const IrModule *m, const TensorSet *w, int T, int step) {
  TensorSet in = {}, out = {}, out0 = {};
  int64_t dx[2] = {T, K}, du[2] = {T, 37}, dr[2] = {T, 45};
  Tensor *x = tensorset_add(&in, "x", IR_F32, 2, dx), *u = tensorset_add(&in, "u", IR_F32, 2, du);
  Tensor *r = tensorset_add(&in, "r", IR_F32, 2, dr);
  uint64_t s = 0x2545f4914f6cdd1dull + (uint64_t)T;
  auto rnd = [&s]() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(s >> 11) / 9007199254740992.0 * 2 - 1);
  };
  for (Tensor *t : {x, u, r})
    for (int64_t i = 0; i < tensor_numel(t); i++) ((float *)t->data)[i] = rnd();
  PassOptions po;
  pass_options_init(&po, 2);
  po.concat = po.gate = 1;
  {
    loop_fixtures::Lowered l(m, po);
    ASSERT_NE(l.lm, nullptr) << l.err;
    int gated = 0;
    EXPECT_EQ(count_seg(&l.lm->kernels, &gated), 1);
    EXPECT_EQ(gated, 2);
  }
  char err[1024] = "";
  ASSERT_EQ(run_jit_opt(m, w, &in, step, &po, &out, err, sizeof err), 0) << err;
  PassOptions po0 = po;
  po0.concat = po0.gate = 0;
  ASSERT_EQ(run_jit_opt(m, w, &in, step, &po0, &out0, err, sizeof err), 0) << err;
  std::string what = "T " + std::to_string(T) + " step " + std::to_string(step);

  /* h = x / sqrt(mean(x^2) + eps) * norm.weight */
  std::vector<double> h((size_t)T * K);
  const float *g = W(w, "norm.weight");
  for (int t = 0; t < T; t++) {
    double ss = 0;
    for (int k = 0; k < K; k++) ss += (double)((const float *)x->data)[(size_t)t * K + k] * ((const float *)x->data)[(size_t)t * K + k];
    double inv = 1.0 / std::sqrt(ss / K + 1e-5);
    for (int k = 0; k < K; k++) h[(size_t)t * K + k] = (double)((const float *)x->data)[(size_t)t * K + k] * inv * g[k];
  }
  auto in_at = [](const Tensor *t, size_t i) { return (double)((const float *)t->data)[i]; };
  std::vector<double> q = matmul(h, T, K, W(w, "q.weight"), 45);
  for (int t = 0; t < T; t++)
    for (int n = 0; n < 45; n++) q[(size_t)t * 45 + n] += W(w, "q.bias")[n];
  check(&out, "q", q, what);
  std::vector<double> kk = matmul(h, T, K, W(w, "k.weight"), 33);
  for (double &e : kk) e = silu(e);
  check(&out, "k", kk, what);
  std::vector<double> v = matmul(h, T, K, W(w, "v.weight"), 45);
  for (size_t i = 0; i < v.size(); i++) v[i] += in_at(r, i);
  check(&out, "v", v, what);
  std::vector<double> ww = matmul(h, T, K, W(w, "w.weight"), 31);
  for (double &e : ww) e = 0.5 * e * (1.0 + std::erf(e / std::sqrt(2.0)));
  check(&out, "w", ww, what);
  std::vector<double> o = matmul(h, T, K, W(w, "g.weight"), 37);
  for (int t = 0; t < T; t++)
    for (int n = 0; n < 37; n++) {
      double z = o[(size_t)t * 37 + n] + W(w, "g.bias")[n];
      o[(size_t)t * 37 + n] = in_at(u, (size_t)t * 37 + n) / (1.0 + std::exp(-z));
    }
  check(&out, "o", o, what);
  std::vector<double> pp = matmul(h, T, K, W(w, "g2.weight"), 37);
  for (size_t i = 0; i < pp.size(); i++) pp[i] *= in_at(u, i);
  check(&out, "p", pp, what);
  for (const char *name : {"q", "k", "v", "w"}) { /* concat: bitwise the separate GEMMs */
    const Tensor *a = tensorset_find(&out, name), *b = tensorset_find(&out0, name);
    ASSERT_TRUE(a && b) << name;
    EXPECT_EQ(memcmp(a->data, b->data, (size_t)tensor_numel(a) * sizeof(float)), 0) << name << " " << what;
  }
  tensorset_free(&in);
  tensorset_free(&out);
  tensorset_free(&out0);
}

/* prefill: M = 1, 2 (decode GEMV: segment by segment, panel by panel), 7, 50 .. 80 (row blocks of
 * 8 MR, micro-panel and GEMV row tails: a packed once per K block for all segments) */
TEST(LlvmGemmSeg, SegmentedAndGatedMatchADoubleReference) {
  Model md(kSeg);
  ASSERT_NE(md.m, nullptr);
  TensorSet w = {};
  weights_init(md.m, 9, &w);
  for (int T : {1, 2, 7, 50, 63, 66, 69, 80}) seg_case(md.m, &w, T, 0);
  tensorset_free(&w);
}

/* decode: one and two rows per call */
TEST(LlvmGemmSeg, DecodeStepsMatchADoubleReference) {
  Model md(kSeg);
  ASSERT_NE(md.m, nullptr);
  TensorSet w = {};
  weights_init(md.m, 10, &w);
  seg_case(md.m, &w, 5, 1);
  seg_case(md.m, &w, 7, 2);
  tensorset_free(&w);
}

}  // namespace
#endif
