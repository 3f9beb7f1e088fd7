// test_attention_relbias.cc — the relative-position bias of attention
// (`attention(..., relbias: b)`, ir.h IR_OP_ATTENTION attr relbias) in the
// runtime's reference kernel gat_k_attention, against hand-derived softmax
// weights: with q = 0 the logits are the bias alone, so each output is
// sum_j e^{b[c + j - i]} v_j / sum_j e^{b[c + j - i]}; distances beyond the
// table reuse its farthest entry; decode (pos0 > 0) reads the same entries.
#include <gtest/gtest.h>
#include <cmath>
#include "gat_runtime.h"

namespace {

// b has 5 entries: distances j - i = -2 .. 2, centre c = 2.
const float kBias[5] = {0.5f, -1.0f, 2.0f, 7.0f, 9.0f};

double expect_row(int i, const float *v) {  // keys 0..i, q = 0
  double num = 0, den = 0;
  for (int j = 0; j <= i; j++) {
    int r = 2 + j - i;
    if (r < 0) r = 0;
    double w = std::exp((double)kBias[r]);
    num += w * v[j];
    den += w;
  }
  return num / den;
}

gat_attn_args args(float *out, const float *q, const float *k, const float *v, float *ck, float *cv,
                   double *scratch, int64_t T, int64_t pos0) {
  gat_attn_args a = {};
  a.out = out; a.q = q; a.k = k; a.v = v; a.cache_k = ck; a.cache_v = cv;
  a.T = T; a.H = 1; a.Hkv = 1; a.dk = 1; a.dv = 1; a.pos0 = pos0; a.max_T = 8; a.scale = 1.0;
  a.scratch = scratch;
  a.relbias = kBias;
  a.relbias_len = 5;
  return a;
}

}  // namespace

TEST(AttentionRelbias, PrefillUsesToeplitzEntriesAndClampsFarDistances) {
  float q[5] = {0, 0, 0, 0, 0}, k[5] = {1, 2, 3, 4, 5}, v[5] = {1, 10, 100, 1000, 10000}, out[5];
  float ck[8], cv[8];
  double scratch[8];
  gat_attn_args a = args(out, q, k, v, ck, cv, scratch, 5, 0);
  gat_k_attention(&a);
  for (int i = 0; i < 5; i++) EXPECT_NEAR(out[i], expect_row(i, v), 1e-3 * expect_row(i, v)) << "row " << i;
  // row 1: keys at distance 1 (b[1] = -1) and 0 (b[2] = 2)
  double w0 = std::exp(-1.0), w1 = std::exp(2.0);
  EXPECT_NEAR(out[1], (1 * w0 + 10 * w1) / (w0 + w1), 1e-4);
}

TEST(AttentionRelbias, DecodeMatchesPrefill) {
  float q[5] = {0, 0, 0, 0, 0}, k[5] = {1, 2, 3, 4, 5}, v[5] = {1, 10, 100, 1000, 10000}, out[5], one;
  float ck[8], cv[8];
  double scratch[8];
  gat_attn_args a = args(out, q, k, v, ck, cv, scratch, 5, 0);
  gat_k_attention(&a);
  float ck2[8], cv2[8];
  for (int t = 0; t < 5; t++) {
    gat_attn_args d = args(&one, q + t, k + t, v + t, ck2, cv2, scratch, 1, t);
    gat_k_attention(&d);
    EXPECT_FLOAT_EQ(one, out[t]) << "position " << t;
  }
}

TEST(AttentionRelbias, NullMeansNoBias) {
  float q[2] = {0, 0}, k[2] = {1, 2}, v[2] = {10, 20}, out[2];
  float ck[8], cv[8];
  double scratch[8];
  gat_attn_args a = args(out, q, k, v, ck, cv, scratch, 2, 0);
  a.relbias = nullptr;
  gat_k_attention(&a);
  EXPECT_NEAR(out[1], 15, 1e-5);  // equal weights without a bias
}
