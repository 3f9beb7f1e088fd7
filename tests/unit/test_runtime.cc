// test_runtime.cc — the tiny runtime: safetensors binding against a model
// table (every bad-input case gets its own distinct status and a message
// naming the tensor), arena helpers, and the row kernels against values
// derived by hand from their formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "gat_runtime.h"
}

namespace {

struct Entry {
  std::string name, dtype;
  std::vector<int64_t> shape;
  int64_t beg, end;  // -1: computed (packed)
};

// Builds a safetensors blob by hand. Data bytes are filled with 0..n so
// pointers can be checked. Header padded with spaces to a multiple of 8.
std::vector<unsigned char> make_blob(const std::vector<Entry> &es, int64_t data_bytes = -1,
                                     const std::string &extra = "") {
  std::string h = "{";
  int64_t off = 0;
  for (size_t i = 0; i < es.size(); i++) {
    const Entry &e = es[i];
    int64_t n = e.dtype == "F16" || e.dtype == "BF16" ? 2 : e.dtype == "F64" || e.dtype == "I64" ? 8 : 4;
    for (int64_t d : e.shape) n *= d;
    int64_t b = e.beg >= 0 ? e.beg : off, en = e.end >= 0 ? e.end : off + n;
    off = std::max(off, en);
    if (i) h += ",";
    h += "\"" + e.name + "\":{\"dtype\":\"" + e.dtype + "\",\"shape\":[";
    for (size_t k = 0; k < e.shape.size(); k++) h += (k ? "," : "") + std::to_string(e.shape[k]);
    h += "],\"data_offsets\":[" + std::to_string(b) + "," + std::to_string(en) + "]}";
  }
  h += extra + "}";
  while ((8 + h.size()) % 8) h += " ";
  if (data_bytes < 0) data_bytes = off;
  std::vector<unsigned char> blob(8 + h.size() + (size_t)data_bytes);
  uint64_t hl = h.size();
  for (int i = 0; i < 8; i++) blob[i] = (unsigned char)(hl >> (8 * i));
  memcpy(blob.data() + 8, h.data(), h.size());
  for (int64_t i = 0; i < data_bytes; i++) blob[8 + h.size() + i] = (unsigned char)i;
  return blob;
}

const gat_tensor_spec kSpecs[] = {
    {"emb.weight", GAT_F32, 2, {4, 3}},
    {"norm.weight", GAT_F32, 1, {3}},
    {"ids", GAT_I32, 1, {2}},
};
const int kN = 3;

std::vector<Entry> good_entries() {
  return {{"emb.weight", "F32", {4, 3}, -1, -1},
          {"norm.weight", "F32", {3}, -1, -1},
          {"ids", "I32", {2}, -1, -1}};
}

// Copies into 8-aligned storage (vector<unsigned char> data is malloc-aligned anyway).
int bind_blob(const std::vector<unsigned char> &blob, const void **ptrs, gat_error *e) {
  return gat_st_bind(blob.data(), blob.size(), kSpecs, kN, ptrs, e);
}

}  // namespace

TEST(Safetensors, BindsGoodBlob) {
  auto blob = make_blob(good_entries(), -1, ",\"__metadata__\":{\"format\":\"pt\",\"x\":\"[1,{\\\"a\\\":null}]\"}");
  const void *p[kN];
  gat_error e;
  ASSERT_EQ(bind_blob(blob, p, &e), GAT_OK) << e.msg;
  size_t hdr = blob.size() - (48 + 12 + 8);
  EXPECT_EQ((const unsigned char *)p[0], blob.data() + hdr);
  EXPECT_EQ((const unsigned char *)p[1], blob.data() + hdr + 48);
  EXPECT_EQ((const unsigned char *)p[2], blob.data() + hdr + 60);
}

TEST(Safetensors, OrderInHeaderDoesNotMatter) {
  auto es = good_entries();
  std::swap(es[0], es[2]);
  auto blob = make_blob(es);
  const void *p[kN];
  gat_error e;
  EXPECT_EQ(bind_blob(blob, p, &e), GAT_OK) << e.msg;
}

TEST(Safetensors, MissingTensor) {
  auto es = good_entries();
  es.pop_back();
  auto blob = make_blob(es);
  const void *p[kN];
  gat_error e;
  EXPECT_EQ(bind_blob(blob, p, &e), GAT_ERR_MISSING_TENSOR);
  EXPECT_NE(std::string(e.msg).find("'ids'"), std::string::npos) << e.msg;
  EXPECT_EQ(p[0], nullptr);  // nothing half-bound on failure
}

TEST(Safetensors, UnexpectedTensor) {
  auto es = good_entries();
  es.push_back({"lm_head.bias", "F32", {2}, -1, -1});
  auto blob = make_blob(es);
  const void *p[kN];
  gat_error e;
  EXPECT_EQ(bind_blob(blob, p, &e), GAT_ERR_UNEXPECTED_TENSOR);
  EXPECT_NE(std::string(e.msg).find("lm_head.bias"), std::string::npos) << e.msg;
}

TEST(Safetensors, MisnamedTensor) {
  auto es = good_entries();
  es[1].name = "norm.weigth";
  auto blob = make_blob(es);
  const void *p[kN];
  gat_error e;
  EXPECT_EQ(bind_blob(blob, p, &e), GAT_ERR_UNEXPECTED_TENSOR);
  EXPECT_NE(std::string(e.msg).find("norm.weigth"), std::string::npos) << e.msg;
}

TEST(Safetensors, EscapedNameMatches) {
  auto es = good_entries();
  es[1].name = "norm\\u002eweight";  // JSON escape of '.'
  auto blob = make_blob(es);
  const void *p[kN];
  gat_error e;
  EXPECT_EQ(bind_blob(blob, p, &e), GAT_OK) << e.msg;
}

TEST(Safetensors, WrongDtype) {
  for (const char *dt : {"F16", "I32", "BF16", "F64"}) {
    auto es = good_entries();
    es[0].dtype = dt;
    auto blob = make_blob(es);
    const void *p[kN];
    gat_error e;
    EXPECT_EQ(bind_blob(blob, p, &e), GAT_ERR_DTYPE) << dt;
    EXPECT_NE(std::string(e.msg).find("emb.weight"), std::string::npos) << e.msg;
  }
}

TEST(Safetensors, WrongShape) {
  auto es = good_entries();
  es[0].shape = {3, 4};
  auto blob = make_blob(es);
  const void *p[kN];
  gat_error e;
  EXPECT_EQ(bind_blob(blob, p, &e), GAT_ERR_SHAPE);
  EXPECT_NE(std::string(e.msg).find("emb.weight"), std::string::npos) << e.msg;
  es[0].shape = {12};
  blob = make_blob(es);
  EXPECT_EQ(bind_blob(blob, p, &e), GAT_ERR_SHAPE);
}

TEST(Safetensors, Truncated) {
  auto blob = make_blob(good_entries());
  const void *p[kN];
  gat_error e;
  // cut inside the data section, inside the header, and inside the length
  for (size_t cut : {blob.size() - 1, blob.size() - 20, (size_t)20, (size_t)5, (size_t)0}) {
    std::vector<unsigned char> b(blob.begin(), blob.begin() + cut);
    EXPECT_EQ(gat_st_bind(blob.data(), b.size(), kSpecs, kN, p, &e), GAT_ERR_TRUNCATED) << cut;
  }
  std::vector<unsigned char> b(blob.begin(), blob.end() - 4);
  gat_st_bind(b.data(), b.size(), kSpecs, kN, p, &e);
  EXPECT_NE(std::string(e.msg).find("'ids'"), std::string::npos) << e.msg;
}

TEST(Safetensors, OffsetsOutside) {
  auto es = good_entries();
  es[1].beg = 4096;
  es[1].end = 4096 + 12;  // not packed: the header lies
  auto blob = make_blob(es, 60);
  const void *p[kN];
  gat_error e;
  EXPECT_EQ(bind_blob(blob, p, &e), GAT_ERR_OFFSETS);
  EXPECT_NE(std::string(e.msg).find("norm.weight"), std::string::npos) << e.msg;
}

TEST(Safetensors, OffsetsInconsistentOrHuge) {
  const void *p[kN];
  gat_error e;
  auto es = good_entries();
  es[0].beg = 8;
  es[0].end = 4;  // begin > end
  EXPECT_EQ(bind_blob(make_blob(es, 60), p, &e), GAT_ERR_OFFSETS);
  es = good_entries();
  es[0].beg = 0;
  es[0].end = 44;  // wrong size for [4, 3] f32
  EXPECT_EQ(bind_blob(make_blob(es, 60), p, &e), GAT_ERR_OFFSETS);
  EXPECT_NE(std::string(e.msg).find("emb.weight"), std::string::npos) << e.msg;
  // offsets that would wrap around 2^64
  auto blob = make_blob(good_entries());
  std::string s(blob.begin(), blob.end());
  size_t at = s.find("[0,48]");
  ASSERT_NE(at, std::string::npos);
  std::string huge = "[18446744073709551615,18446744073709551615]";
  std::string h2 = s.substr(8, s.find_last_of('}') - 8 + 1);
  h2.replace(h2.find("[0,48]"), 6, huge);
  std::vector<Entry> none;
  std::vector<unsigned char> b2(8 + h2.size() + 68);
  for (int i = 0; i < 8; i++) b2[i] = (unsigned char)((uint64_t)h2.size() >> (8 * i));
  memcpy(b2.data() + 8, h2.data(), h2.size());
  int st = gat_st_bind(b2.data(), b2.size(), kSpecs, kN, p, &e);
  EXPECT_EQ(st, GAT_ERR_OFFSETS) << e.msg;
  h2.replace(h2.find(huge), huge.size(), "[0,184467440737095516150]");  // overflows u64
  std::vector<unsigned char> b3(8 + h2.size() + 68);
  for (int i = 0; i < 8; i++) b3[i] = (unsigned char)((uint64_t)h2.size() >> (8 * i));
  memcpy(b3.data() + 8, h2.data(), h2.size());
  EXPECT_EQ(gat_st_bind(b3.data(), b3.size(), kSpecs, kN, p, &e), GAT_ERR_HEADER);
}

TEST(Safetensors, HostileHeaderLength) {
  const void *p[kN];
  gat_error e;
  std::vector<unsigned char> b(64, ' ');
  for (uint64_t hl : {~(uint64_t)0, (uint64_t)1 << 63, (uint64_t)200 << 20}) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hl >> (8 * i));
    EXPECT_EQ(gat_st_bind(b.data(), b.size(), kSpecs, kN, p, &e), GAT_ERR_HEADER) << hl;
  }
  uint64_t hl = 1000;  // plausible but longer than the blob
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hl >> (8 * i));
  EXPECT_EQ(gat_st_bind(b.data(), b.size(), kSpecs, kN, p, &e), GAT_ERR_TRUNCATED);
  hl = 0;
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hl >> (8 * i));
  EXPECT_EQ(gat_st_bind(b.data(), b.size(), kSpecs, kN, p, &e), GAT_ERR_HEADER);
}

TEST(Safetensors, MalformedJson) {
  const void *p[kN];
  gat_error e;
  for (std::string h : {"[1,2]", "{\"emb.weight\":", "{\"emb.weight\":{\"dtype\":\"F32\",\"shape\":[4,3]}}",
                        "{\"emb.weight\":{\"dtype\":\"F32\",\"shape\":[4,3],\"data_offsets\":[0,48]}",
                        "{\"x\\q\":1}", "{\"__metadata__\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
                        "{} trailing"}) {
    std::vector<unsigned char> b(8 + h.size() + 64);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h.size() >> (8 * i));
    memcpy(b.data() + 8, h.data(), h.size());
    EXPECT_EQ(gat_st_bind(b.data(), b.size(), kSpecs, kN, p, &e), GAT_ERR_HEADER) << h;
  }
}

TEST(Safetensors, DuplicateTensor) {
  auto es = good_entries();
  es.push_back(es[1]);
  const void *p[kN];
  gat_error e;
  EXPECT_EQ(bind_blob(make_blob(es), p, &e), GAT_ERR_HEADER);
  EXPECT_NE(std::string(e.msg).find("norm.weight"), std::string::npos) << e.msg;
}

TEST(Safetensors, Misaligned) {
  auto blob = make_blob(good_entries());
  std::vector<unsigned char> shifted(blob.size() + 1);
  memcpy(shifted.data() + 1, blob.data(), blob.size());
  const void *p[kN];
  gat_error e;
  EXPECT_EQ(gat_st_bind(shifted.data() + 1, blob.size(), kSpecs, kN, p, &e), GAT_ERR_ALIGNMENT);
}

TEST(Safetensors, MisalignedIsCopiedIntoSpare) {
  auto blob = make_blob(good_entries());
  std::vector<unsigned char> shifted(blob.size() + 1);
  memcpy(shifted.data() + 1, blob.data(), blob.size());
  const void *p[kN];
  gat_error e;
  // 12 + 3 + 2 floats/ints = 68 bytes of copies; one byte short fails, naming a tensor
  alignas(8) unsigned char spare[68 + 3];
  EXPECT_EQ(gat_st_bind_copy(shifted.data() + 1, blob.size(), kSpecs, kN, p, spare, 67, &e), GAT_ERR_ALIGNMENT);
  EXPECT_NE(std::string(e.msg).find("tensor 'emb.weight'"), std::string::npos) << e.msg;
  EXPECT_NE(std::string(e.msg).find("68 needed"), std::string::npos) << e.msg;
  ASSERT_EQ(gat_st_bind_copy(shifted.data() + 1, blob.size(), kSpecs, kN, p, spare, 68, &e), GAT_OK) << e.msg;
  for (int i = 0; i < kN; i++) {
    EXPECT_EQ((uintptr_t)p[i] % 4, 0u) << i;
    EXPECT_TRUE((const unsigned char *)p[i] >= spare && (const unsigned char *)p[i] < spare + sizeof spare) << i;
  }
  // the data section starts after the header; make_blob fills byte k of it with k
  const unsigned char *emb = (const unsigned char *)p[0], *ids = (const unsigned char *)p[2];
  for (int k = 0; k < 48; k++) EXPECT_EQ(emb[k], (unsigned char)k);
  for (int k = 0; k < 8; k++) EXPECT_EQ(ids[k], (unsigned char)(60 + k));
  // aligned blobs never touch spare
  ASSERT_EQ(gat_st_bind_copy(blob.data(), blob.size(), kSpecs, kN, p, nullptr, 0, &e), GAT_OK) << e.msg;
  EXPECT_EQ(p[0], blob.data() + (blob.size() - 68));
}

TEST(Safetensors, NullArguments) {
  const void *p[kN];
  gat_error e;
  EXPECT_EQ(gat_st_bind(nullptr, 10, kSpecs, kN, p, &e), GAT_ERR_ARGUMENT);
}

// A table whose byte size does not fit in 64 bits: 4 * 2^62 * 8 wrapped to
// 0, so data_offsets [0, 0] bound the tensor to no bytes and init read past
// the blob. The size is now checked: a shape error naming the tensor.
TEST(Safetensors, HugeSpecSizeDoesNotWrap) {
  const int64_t big = (int64_t)1 << 62;
  const gat_tensor_spec spec[] = {{"a.weight", GAT_F32, 2, {big, 8}}};
  std::string h = "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(big) +
                  ",8],\"data_offsets\":[0,0]}}";
  while ((8 + h.size()) % 8) h += " ";
  std::vector<unsigned char> blob(8 + h.size());
  for (int i = 0; i < 8; i++) blob[i] = (unsigned char)((uint64_t)h.size() >> (8 * i));
  memcpy(blob.data() + 8, h.data(), h.size());
  const void *p[1] = {nullptr};
  gat_error e;
  EXPECT_EQ(gat_st_bind(blob.data(), blob.size(), spec, 1, p, &e), GAT_ERR_SHAPE) << e.msg;
  EXPECT_NE(std::string(e.msg).find("a.weight"), std::string::npos) << e.msg;
  EXPECT_NE(std::string(e.msg).find("overflows"), std::string::npos) << e.msg;
  EXPECT_EQ(p[0], nullptr);
  // 2^61 x 2 elements: 2^64 bytes, one past what 64 bits hold
  const gat_tensor_spec spec2[] = {{"a.weight", GAT_F32, 2, {(int64_t)1 << 61, 2}}};
  std::string h2 = "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string((int64_t)1 << 61) +
                   ",2],\"data_offsets\":[0,0]}}";
  while ((8 + h2.size()) % 8) h2 += " ";
  std::vector<unsigned char> blob2(8 + h2.size());
  for (int i = 0; i < 8; i++) blob2[i] = (unsigned char)((uint64_t)h2.size() >> (8 * i));
  memcpy(blob2.data() + 8, h2.data(), h2.size());
  EXPECT_EQ(gat_st_bind(blob2.data(), blob2.size(), spec2, 1, p, &e), GAT_ERR_SHAPE) << e.msg;
}

TEST(Runtime, StatusStringsDistinct) {
  for (int i = 0; i < GAT_STATUS_COUNT_; i++)
    for (int j = i + 1; j < GAT_STATUS_COUNT_; j++)
      EXPECT_STRNE(gat_status_string(i), gat_status_string(j));
  EXPECT_STREQ(gat_status_string(GAT_STATUS_COUNT_ + 5), "unknown status");
}

TEST(Runtime, Arena) {
  alignas(64) unsigned char mem[100];
  gat_arena a;
  gat_arena_init(&a, mem, sizeof mem);
  void *p1 = gat_arena_alloc(&a, 3, 1);
  void *p2 = gat_arena_alloc(&a, 8, 16);
  EXPECT_EQ(p1, (void *)mem);
  EXPECT_EQ(p2, (void *)(mem + 16));
  EXPECT_EQ(gat_arena_alloc(&a, 77, 1), nullptr);
  EXPECT_NE(gat_arena_alloc(&a, 76, 1), nullptr);
  EXPECT_EQ(gat_arena_alloc(&a, 1, 3), nullptr);  // not a power of two
  EXPECT_EQ(gat_arena_alloc(&a, (size_t)-1, 1), nullptr);
}

TEST(Runtime, Timer) {
  uint64_t a = gat_time_ns(), b = gat_time_ns();
  EXPECT_GE(b, a);
}

TEST(Kernels, SoftmaxMiddleAxis) {
  // [1, 3, 2]: softmax over the middle axis, columns independent
  float x[6] = {0, 10, 1, 10, 2, 10}, y[6];
  gat_k_softmax(y, x, 1, 3, 2);
  double z = 1 + std::exp(1.0) + std::exp(2.0);
  EXPECT_NEAR(y[0], 1 / z, 1e-7);
  EXPECT_NEAR(y[2], std::exp(1.0) / z, 1e-7);
  EXPECT_NEAR(y[4], std::exp(2.0) / z, 1e-7);
  EXPECT_NEAR(y[1], 1.0 / 3, 1e-7);
}

TEST(Kernels, Norms) {
  float x[2] = {3, 4}, w[2] = {2, 0.5f}, y[2];
  gat_k_rms_norm(y, x, w, 1, 2, 0.0, 0);
  double r = std::sqrt(12.5);
  EXPECT_NEAR(y[0], 3 / r * 2, 1e-6);
  EXPECT_NEAR(y[1], 4 / r * 0.5, 1e-6);
  gat_k_rms_norm(y, x, w, 1, 2, 0.0, 1);
  EXPECT_NEAR(y[0], 3 / r * 3, 1e-6);
  gat_k_l2_norm(y, x, 1, 2, 0.0);
  EXPECT_NEAR(y[0], 0.6, 1e-7);
  EXPECT_NEAR(y[1], 0.8, 1e-7);
  float b[2] = {1, -1};
  gat_k_layer_norm(y, x, w, b, 1, 2, 0.0);  // mean 3.5, var 0.25
  EXPECT_NEAR(y[0], -1 * 2 + 1, 1e-6);
  EXPECT_NEAR(y[1], 1 * 0.5 - 1, 1e-6);
}

TEST(Kernels, GatherChecksRange) {
  float table[6] = {1, 2, 3, 4, 5, 6}, out[4];
  int32_t idx[2] = {2, 0};
  int64_t bad = -1;
  ASSERT_EQ(gat_k_gather(out, table, idx, 2, 3, 2, &bad), GAT_OK);
  EXPECT_EQ(out[0], 5);
  EXPECT_EQ(out[3], 2);
  int32_t idx2[2] = {1, 3};
  EXPECT_EQ(gat_k_gather(out, table, idx2, 2, 3, 2, &bad), GAT_ERR_TOKEN_RANGE);
  EXPECT_EQ(bad, 1);
  int32_t idx3[1] = {-1};
  EXPECT_EQ(gat_k_gather(out, table, idx3, 1, 3, 2, &bad), GAT_ERR_TOKEN_RANGE);
}

TEST(Kernels, TopkTiesToLowerIndex) {
  float x[5] = {1, 3, 2, 3, 0}, v[3];
  int32_t i[3];
  gat_k_topk(v, i, x, 1, 5, 3);
  EXPECT_EQ(i[0], 1);
  EXPECT_EQ(i[1], 3);
  EXPECT_EQ(i[2], 2);
  EXPECT_EQ(v[2], 2);
}

TEST(Kernels, Rope) {
  // D = 4, dims = 4: pairs (0,2) with freq 1, (1,3) with freq base^-0.5
  float x[4] = {1, 2, 3, 4}, y[4];
  gat_k_rope(y, x, 1, 1, 4, 3, 100.0, 4);
  double a0 = 3.0, a1 = 3.0 / 10.0;
  EXPECT_NEAR(y[0], 1 * std::cos(a0) - 3 * std::sin(a0), 1e-6);
  EXPECT_NEAR(y[2], 3 * std::cos(a0) + 1 * std::sin(a0), 1e-6);
  EXPECT_NEAR(y[1], 2 * std::cos(a1) - 4 * std::sin(a1), 1e-6);
  EXPECT_NEAR(y[3], 4 * std::cos(a1) + 2 * std::sin(a1), 1e-6);
}

TEST(Kernels, Conv1dStreamingEqualsPrefill) {
  // C = 1, W = 3, weights (1, 10, 100): y[t] = x[t-2] + 10 x[t-1] + 100 x[t]
  float w[3] = {1, 10, 100}, x[4] = {1, 2, 3, 4}, y[4], tail[2] = {0, 0};
  gat_k_conv1d(y, x, w, nullptr, tail, 4, 1, 3, 0);
  EXPECT_EQ(y[0], 100);
  EXPECT_EQ(y[1], 210);
  EXPECT_EQ(y[3], 2 + 30 + 400);
  EXPECT_EQ(tail[0], 3);
  EXPECT_EQ(tail[1], 4);
  float tail2[2] = {0, 0}, y1;
  for (int t = 0; t < 4; t++) {
    gat_k_conv1d(&y1, &x[t], w, nullptr, tail2, 1, 1, 3, 0);
    EXPECT_EQ(y1, y[t]);
  }
}

TEST(Kernels, AttentionSingleKeyAndWindow) {
  // H = Hkv = 1, dk = dv = 1. With two keys, softmax weights by q.k*scale.
  float q[2] = {1, 1}, k[2] = {0, 1}, v[2] = {10, 20}, out[2];
  float ck[4], cv[4];
  double scratch[4];
  gat_attn_args a = {out, q, k, v, nullptr, nullptr, ck, cv, nullptr, 2, 1, 1, 1, 1, 0, 4, 0, 2.0, scratch};
  gat_k_attention(&a);
  EXPECT_NEAR(out[0], 10, 1e-6);
  double w0 = 1, w1 = std::exp(2.0);
  EXPECT_NEAR(out[1], (10 * w0 + 20 * w1) / (w0 + w1), 1e-5);
  a.window = 1;  // only the current key visible
  gat_k_attention(&a);
  EXPECT_NEAR(out[1], 20, 1e-6);
}
