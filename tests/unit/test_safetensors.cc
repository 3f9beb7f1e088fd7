// test_safetensors.cc — safetensors reading/writing (compiler/safetensors.c):
// round trips, deterministic output, dtype conversions checked against
// hand-derived values, and corrupt files that must each be rejected with a
// message naming the problem (and the tensor, when there is one).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "tensor.h"
}

namespace {

typedef std::vector<unsigned char> Bytes;

// A file from a header string and raw data bytes (header length as given).
Bytes make_file(const std::string &hdr, const Bytes &data, int64_t hlen_override = -1) {
  Bytes b;
  uint64_t n = hlen_override >= 0 ? (uint64_t)hlen_override : hdr.size();
  for (int i = 0; i < 8; i++) b.push_back((unsigned char)(n >> (8 * i)));
  b.insert(b.end(), hdr.begin(), hdr.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

Bytes le_bytes(uint64_t v, int n) {
  Bytes b;
  for (int i = 0; i < n; i++) b.push_back((unsigned char)(v >> (8 * i)));
  return b;
}

std::string read_err(const Bytes &file, int *rc, TensorSet *out = nullptr) {
  TensorSet local = {0, 0, nullptr};
  char err[512] = "";
  *rc = safetensors_read_mem(file.data(), file.size(), out ? out : &local, err, sizeof err);
  tensorset_free(&local);
  return err;
}

// Expects rejection with an error message containing every one of `needles`.
void expect_reject(const Bytes &file, std::initializer_list<const char *> needles) {
  int rc = 0;
  std::string err = read_err(file, &rc);
  EXPECT_EQ(rc, -1) << "accepted a corrupt file";
  for (const char *n : needles) EXPECT_NE(err.find(n), std::string::npos) << "message: " << err << "\nmissing: " << n;
}

std::string tmp_path(const char *name) {
  return std::string(GAT_BINARY_DIR) + "/" + name;
}

}  // namespace

TEST(Safetensors, RoundTrip) {
  TensorSet s = {0, 0, nullptr};
  int64_t d1[2] = {2, 3};
  Tensor *a = tensorset_add(&s, "z.weight", IR_F32, 2, d1);
  for (int i = 0; i < 6; i++) ((float *)a->data)[i] = 0.5f * (float)i - 1.25f;
  int64_t d2[1] = {4};
  Tensor *b = tensorset_add(&s, "a \"quoted\" name", IR_I32, 1, d2);
  int32_t iv[4] = {-7, 0, 2147483647, -2147483647 - 1};
  memcpy(b->data, iv, sizeof iv);
  Tensor *c = tensorset_add(&s, "scalar", IR_F32, 0, nullptr);
  ((float *)c->data)[0] = 3.0f;
  char err[256];
  std::string path = tmp_path("st_roundtrip.safetensors");
  ASSERT_EQ(safetensors_write(path.c_str(), &s, err, sizeof err), 0) << err;

  TensorSet r = {0, 0, nullptr};
  ASSERT_EQ(safetensors_read(path.c_str(), &r, err, sizeof err), 0) << err;
  ASSERT_EQ(r.n, 3);
  for (int i = 0; i < s.n; i++) {
    Tensor *o = &s.t[i];
    Tensor *t = tensorset_find(&r, o->name);
    ASSERT_NE(t, nullptr) << o->name;
    EXPECT_EQ(t->dtype, o->dtype);
    ASSERT_EQ(t->rank, o->rank);
    for (int d = 0; d < t->rank; d++) EXPECT_EQ(t->dims[d], o->dims[d]);
    EXPECT_EQ(memcmp(t->data, o->data, 4 * (size_t)tensor_numel(t)), 0);
  }
  tensorset_free(&r);

  // Header: 8-byte aligned data section, names sorted.
  size_t len = 0;
  char *raw = read_file(path.c_str(), &len);
  ASSERT_NE(raw, nullptr);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | (unsigned char)raw[i];
  EXPECT_EQ(hlen % 8, 0u);
  std::string hdr(raw + 8, hlen);
  EXPECT_LT(hdr.find("a \\\"quoted"), hdr.find("\"scalar\""));
  EXPECT_LT(hdr.find("\"scalar\""), hdr.find("\"z.weight\""));
  // Data: sorted order, little-endian: first the i32 tensor.
  EXPECT_EQ((unsigned char)raw[8 + hlen], (unsigned char)0xf9);  // -7 = 0xfffffff9
  EXPECT_EQ(len, 8 + hlen + 4 * (4 + 1 + 6));
  free(raw);

  // Deterministic regardless of insertion order.
  TensorSet s2 = {0, 0, nullptr};
  for (int i = s.n - 1; i >= 0; i--) {
    Tensor *t = tensorset_add(&s2, s.t[i].name, s.t[i].dtype, s.t[i].rank, s.t[i].dims);
    memcpy(t->data, s.t[i].data, 4 * (size_t)tensor_numel(t));
  }
  std::string path2 = tmp_path("st_roundtrip2.safetensors");
  ASSERT_EQ(safetensors_write(path2.c_str(), &s2, err, sizeof err), 0);
  size_t l1, l2;
  char *f1 = read_file(path.c_str(), &l1), *f2 = read_file(path2.c_str(), &l2);
  ASSERT_EQ(l1, l2);
  EXPECT_EQ(memcmp(f1, f2, l1), 0);
  free(f1);
  free(f2);
  tensorset_free(&s);
  tensorset_free(&s2);
}

TEST(Safetensors, EmptySetAndMetadata) {
  TensorSet s = {0, 0, nullptr};
  char err[256];
  std::string path = tmp_path("st_empty.safetensors");
  ASSERT_EQ(safetensors_write(path.c_str(), &s, err, sizeof err), 0);
  TensorSet r = {0, 0, nullptr};
  ASSERT_EQ(safetensors_read(path.c_str(), &r, err, sizeof err), 0) << err;
  EXPECT_EQ(r.n, 0);
  // __metadata__ is ignored, zero-sized tensors are fine.
  Bytes f = make_file(
      "{\"__metadata__\":{\"format\":\"pt\"},\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
      "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
      le_bytes(0x40490fdb, 4));
  int rc;
  std::string e = read_err(f, &rc, &r);
  ASSERT_EQ(rc, 0) << e;
  ASSERT_EQ(r.n, 2);
  EXPECT_EQ(tensorset_find(&r, "e")->dims[0], 0);
  EXPECT_FLOAT_EQ(((float *)tensorset_find(&r, "x")->data)[0], 3.14159274f);
  tensorset_free(&r);
}

TEST(Safetensors, Conversions) {
  Bytes data;
  // F16: 1.0, -2.0, 65504, smallest subnormal 2^-24, +inf, 0.333 (0x3555 = 0.33325195)
  for (uint16_t h : {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x3555}) {
    Bytes b = le_bytes(h, 2);
    data.insert(data.end(), b.begin(), b.end());
  }
  // BF16: 1.0 (0x3F80), -0.5 (0xBF00)
  for (uint16_t h : {0x3F80, 0xBF00}) {
    Bytes b = le_bytes(h, 2);
    data.insert(data.end(), b.begin(), b.end());
  }
  // F64: 0.1 -> rounds to the nearest float
  double d = 0.1;
  uint64_t bits;
  memcpy(&bits, &d, 8);
  Bytes b64 = le_bytes(bits, 8);
  data.insert(data.end(), b64.begin(), b64.end());
  // I64: -5, 2^31 - 1
  for (int64_t v : {(int64_t)-5, (int64_t)2147483647}) {
    Bytes b = le_bytes((uint64_t)v, 8);
    data.insert(data.end(), b.begin(), b.end());
  }
  std::string hdr =
      "{\"h\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[0,12]},"
      "\"bf\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]},"
      "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[16,24]},"
      "\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[24,40]}}";
  TensorSet r = {0, 0, nullptr};
  int rc;
  std::string e = read_err(make_file(hdr, data), &rc, &r);
  ASSERT_EQ(rc, 0) << e;
  float *h = (float *)tensorset_find(&r, "h")->data;
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], 65504.0f);
  EXPECT_EQ(h[3], std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(h[4]) && h[4] > 0);
  EXPECT_EQ(h[5], 0.33325195f);
  float *bf = (float *)tensorset_find(&r, "bf")->data;
  EXPECT_EQ(bf[0], 1.0f);
  EXPECT_EQ(bf[1], -0.5f);
  Tensor *dt = tensorset_find(&r, "d");
  EXPECT_EQ(dt->dtype, IR_F32);
  EXPECT_EQ(((float *)dt->data)[0], 0.1f);
  Tensor *it = tensorset_find(&r, "i");
  EXPECT_EQ(it->dtype, IR_I32);
  EXPECT_EQ(((int32_t *)it->data)[0], -5);
  EXPECT_EQ(((int32_t *)it->data)[1], 2147483647);
  tensorset_free(&r);
}

static const char *kOk = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

TEST(SafetensorsCorrupt, TooShort) { expect_reject(Bytes{1, 2, 3}, {"shorter than"}); }

TEST(SafetensorsCorrupt, HeaderLengthHuge) {
  expect_reject(make_file(kOk, Bytes(8, 0), (int64_t)1 << 40), {"absurdly large"});
}

TEST(SafetensorsCorrupt, Truncated) {
  Bytes f = make_file(kOk, Bytes(8, 0));
  f.resize(20);  // cut inside the header
  expect_reject(f, {"exceeds", "truncated"});
  Bytes g = make_file(kOk, Bytes(8, 0));
  g.resize(g.size() - 3);  // cut inside the data
  expect_reject(g, {"'w'", "outside"});
}

TEST(SafetensorsCorrupt, BadJson) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",", Bytes(8, 0)), {"not valid JSON"});
  expect_reject(make_file("[1, 2, 3]", Bytes(8, 0)), {"not a JSON object"});
  expect_reject(make_file(std::string(kOk) + " xyz", Bytes(8, 0)), {"trailing garbage"});
}

TEST(SafetensorsCorrupt, OffsetsOutside) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", Bytes(8, 0)),
                {"'w'", "outside"});
}

TEST(SafetensorsCorrupt, BeginAfterEnd) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", Bytes(8, 0)),
                {"'w'", "after end"});
}

TEST(SafetensorsCorrupt, Overlapping) {
  expect_reject(make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                          Bytes(12, 0)),
                {"'b'", "overlaps", "'a'"});
}

TEST(SafetensorsCorrupt, WrongByteCount) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", Bytes(8, 0)),
                {"'w'", "8 bytes", "need 12"});
}

TEST(SafetensorsCorrupt, NegativeDim) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", Bytes(8, 0)),
                {"'w'", "negative dimension"});
}

TEST(SafetensorsCorrupt, FractionalDim) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", Bytes(8, 0)),
                {"'w'", "not a valid integer"});
}

TEST(SafetensorsCorrupt, ShapeOverflow) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                          "\"data_offsets\":[0,8]}}",
                          Bytes(8, 0)),
                {"'w'", "overflows"});
}

TEST(SafetensorsCorrupt, RankTooLarge) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
                          Bytes(4, 0)),
                {"'w'", "rank 9"});
}

TEST(SafetensorsCorrupt, UnknownDtype) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", Bytes(8, 0)),
                {"'w'", "unsupported dtype", "Q4"});
}

TEST(SafetensorsCorrupt, MissingFields) {
  expect_reject(make_file("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", Bytes(8, 0)), {"'w'", "dtype"});
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", Bytes(8, 0)),
                {"'w'", "shape"});
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", Bytes(8, 0)),
                {"'w'", "data_offsets"});
  expect_reject(make_file("{\"w\":7}", Bytes(8, 0)), {"'w'", "not a JSON object"});
}

TEST(SafetensorsCorrupt, DuplicateNames) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                          "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                          Bytes(8, 0)),
                {"'w'", "twice"});
}

TEST(SafetensorsCorrupt, I64OutOfRange) {
  expect_reject(make_file("{\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
                          le_bytes((uint64_t)1 << 40, 8)),
                {"'i'", "does not fit"});
}

TEST(SafetensorsCorrupt, FailedReadLeavesSetUntouched) {
  TensorSet r = {0, 0, nullptr};
  int rc;
  read_err(make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                     "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[4,12]}}",
                     [] {
                       Bytes b(4, 0);
                       Bytes v = le_bytes((uint64_t)1 << 40, 8);
                       b.insert(b.end(), v.begin(), v.end());
                       return b;
                     }()),
           &rc, &r);
  EXPECT_EQ(rc, -1);
  EXPECT_EQ(r.n, 0);
}

TEST(SafetensorsCorrupt, UnreadableFile) {
  TensorSet r = {0, 0, nullptr};
  char err[256];
  EXPECT_EQ(safetensors_read("/nonexistent/dir/x.safetensors", &r, err, sizeof err), -1);
  EXPECT_NE(std::string(err).find("cannot read"), std::string::npos);
}

// A directory and an endless device are read errors, not an EIO or an
// out-of-memory abort: /dev/zero stops after its 8-byte header length (0).
TEST(SafetensorsCorrupt, DirectoryAndEndlessDevice) {
  TensorSet r = {0, 0, nullptr};
  char err[256];
  EXPECT_EQ(safetensors_read("/tmp", &r, err, sizeof err), -1);
  EXPECT_NE(std::string(err).find("directory"), std::string::npos) << err;
  EXPECT_EQ(safetensors_read("/dev/zero", &r, err, sizeof err), -1);
  EXPECT_EQ(r.n, 0);
}
