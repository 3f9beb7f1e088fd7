// test_safetensors.cc — safetensors reading/writing (compiler/interp/safetensors.c):
// round trips, deterministic output, dtype conversions checked against
// hand-derived values, and corrupt files that must each be rejected with a
// message naming the problem (and the tensor, when there is one). The rule
// table at the end runs every case through both readers (the compiler's and
// the runtime binder, gat_st_bind_copy) and checks that they agree.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <iterator>

extern "C" {
#include "gat_runtime.h"
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
  expect_reject(make_file(kOk, Bytes(8, 0), (int64_t)1 << 40), {"100 MiB"});
}

TEST(SafetensorsCorrupt, Truncated) {
  Bytes f = make_file(kOk, Bytes(8, 0));
  f.resize(20);  // cut inside the header
  expect_reject(f, {"only", "truncated"});
  Bytes g = make_file(kOk, Bytes(8, 0));
  g.resize(g.size() - 3);  // cut inside the data
  expect_reject(g, {"'w'", "truncated"});
}

TEST(SafetensorsCorrupt, BadJson) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",", Bytes(8, 0)), {"malformed"});
  expect_reject(make_file("[1, 2, 3]", Bytes(8, 0)), {"not a JSON object"});
  expect_reject(make_file(std::string(kOk) + " xyz", Bytes(8, 0)), {"trailing bytes"});
}

TEST(SafetensorsCorrupt, OffsetsOutside) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", Bytes(8, 0)),
                {"'w'", "outside"});
}

TEST(SafetensorsCorrupt, BeginAfterEnd) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", Bytes(8, 0)),
                {"'w'", "data_offsets [8, 0]"});
}

TEST(SafetensorsCorrupt, Overlapping) {
  expect_reject(make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                          Bytes(12, 0)),
                {"'b'", "overlaps", "'a'"});
}

TEST(SafetensorsCorrupt, WrongByteCount) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", Bytes(8, 0)),
                {"'w'", "[0, 8]", "12 bytes"});
}

TEST(SafetensorsCorrupt, NegativeDim) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", Bytes(8, 0)),
                {"'w'", "is negative"});
}

TEST(SafetensorsCorrupt, FractionalDim) {
  expect_reject(make_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", Bytes(8, 0)),
                {"'w'", "not an integer"});
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
                {"'w'", "more than 8 dims"});
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

// ---- one rule set: the compiler's reader and the runtime binder agree ------

namespace {

struct Spec {
  std::string name;
  std::vector<int64_t> dims;
};

// The compiler's verdict: accepted, or the message.
bool compiler_accepts(const Bytes &f, std::string *msg) {
  int rc = 0;
  *msg = read_err(f, &rc);
  return rc == 0;
}

// The runtime's verdict on the same bytes, for a model whose parameters are
// `specs` (all F32). The blob is copied to 8-aligned storage; misaligned data
// goes to a spare buffer, so alignment never decides the verdict.
bool runtime_accepts(const Bytes &f, const std::vector<Spec> &specs, std::string *msg) {
  std::vector<gat_tensor_spec> tab(specs.size());
  for (size_t i = 0; i < specs.size(); i++) {
    tab[i].name = specs[i].name.c_str();
    tab[i].dtype = GAT_F32;
    tab[i].rank = (int32_t)specs[i].dims.size();
    for (size_t d = 0; d < specs[i].dims.size(); d++) tab[i].dims[d] = specs[i].dims[d];
  }
  std::vector<uint64_t> store(f.size() / 8 + 1);
  memcpy(store.data(), f.data(), f.size());
  std::vector<uint64_t> spare(f.size() / 8 + 2);
  std::vector<const void *> ptrs(specs.size() + 1);
  gat_error e;
  int st = gat_st_bind_copy(store.data(), f.size(), tab.data(), (int)tab.size(), ptrs.data(), spare.data(),
                            spare.size() * 8, &e);
  *msg = e.msg;
  return st == GAT_OK;
}

Bytes read_bytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string data_path(const char *name) { return std::string(GAT_SOURCE_DIR) + "/tests/data/safetensors/" + name; }

// a[2], b[1] (F32) packed into 12 bytes: the base of the hand-made cases.
const char *kA = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
const char *kB = "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}";

struct RuleCase {
  const char *label;
  std::string header;
  size_t data_len;
  bool accept;
  int64_t hlen_delta;  // header length field minus the header's real length
  std::vector<Spec> specs;
};

std::vector<RuleCase> rule_cases() {
  std::string A = kA, B = kB;
  std::vector<Spec> ab = {{"a", {2}}, {"b", {1}}};
  std::vector<Spec> abe = {{"a", {2}}, {"b", {1}}, {"e", {0}}};
  auto ent = [](const char *name, const char *rest) { return std::string("\"") + name + "\":{" + rest + "}"; };
  return {
      {"valid", "{" + A + "," + B + "}", 12, true, 0, ab},
      {"valid, entries in any order", "{" + B + "," + A + "}", 12, true, 0, ab},
      {"valid, metadata", "{\"__metadata__\":{\"format\":\"pt\",\"x\":\"y\"}," + A + "," + B + "}", 12, true, 0, ab},
      {"valid, space padding", "{" + A + "," + B + "}     ", 12, true, 0, ab},
      {"valid, JSON whitespace", "{ " + A + " ,\n\t" + B + " }\r\n", 12, true, 0, ab},
      {"valid, keys in any order", "{\"a\":{\"data_offsets\":[0,8],\"shape\":[2],\"dtype\":\"F32\"}," + B + "}", 12,
       true, 0, ab},
      {"valid, escaped name", "{\"\\u0061\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," + B + "}", 12,
       true, 0, ab},
      {"valid, empty tensor at a boundary", "{" + A + "," + B + "," + ent("e", "\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]") + "}",
       12, true, 0, abe},
      {"valid, empty tensor at the end", "{" + A + "," + B + "," + ent("e", "\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[12,12]") + "}",
       12, true, 0, abe},
      {"empty tensor inside another", "{" + A + "," + B + "," + ent("e", "\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]") + "}",
       12, false, 0, abe},
      {"duplicate tensor name", "{" + A + "," + B + "," + B + "}", 12, false, 0, ab},
      {"duplicate dtype key", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," + B + "}",
       12, false, 0, ab},
      {"duplicate shape key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"shape\":[2],\"data_offsets\":[0,8]}," + B + "}",
       12, false, 0, ab},
      {"duplicate data_offsets key",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12],\"data_offsets\":[0,8]}," + B + "}", 12, false, 0,
       ab},
      {"escaped duplicate key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"\\u0064type\":\"F32\"}," + B + "}",
       12, false, 0, ab},
      {"duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}," + A + "," + B + "}", 12, false, 0, ab},
      {"two metadata objects", "{\"__metadata__\":{},\"__metadata__\":{}," + A + "," + B + "}", 12, false, 0, ab},
      {"metadata value not a string", "{\"__metadata__\":{\"k\":1}," + A + "," + B + "}", 12, false, 0, ab},
      {"unknown key in an entry", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}," + B + "}", 12,
       false, 0, ab},
      {"float offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}," + B + "}", 12, false, 0, ab},
      {"exponent offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8e0]}," + B + "}", 12, false, 0, ab},
      {"negative zero offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-0,8]}," + B + "}", 12, false, 0, ab},
      {"leading zero offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,08]}," + B + "}", 12, false, 0, ab},
      {"float dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}," + B + "}", 12, false, 0, ab},
      {"offset past 2^64", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551616]}," + B + "}", 12,
       false, 0, ab},
      {"begin after end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}," + B + "}", 12, false, 0, ab},
      {"size disagrees with shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12, false, 0,
       {{"a", {2}}}},
      {"overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
       12, false, 0, ab},
      {"same range twice", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
       8, false, 0, {{"a", {1}}, {"b", {1}}}},
      {"gap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
       16, false, 0, ab},
      {"gap at the start", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
       16, false, 0, ab},
      {"trailing data", "{" + A + "," + B + "}", 16, false, 0, ab},
      {"data past the end", "{" + A + "," + B + "}", 10, false, 0, ab},
      {"name with U+0000", "{\"a\\u0000x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," + B + "}", 12, false, 0,
       {{"a\x01x", {2}}, {"b", {1}}}},
      {"lone surrogate", "{\"a\\ud800\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," + B + "}", 12, false, 0, ab},
      {"bad escape", "{\"a\\x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," + B + "}", 12, false, 0, ab},
      {"raw control byte in a name", "{\"a\n\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," + B + "}", 12,
       false, 0, ab},
      {"invalid UTF-8", "{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," + B + "}", 12, false, 0, ab},
      {"NUL padding", "{" + A + "," + B + "}" + std::string(3, '\0'), 12, false, 0, ab},
      {"trailing comma", "{" + A + "," + B + ",}", 12, false, 0, ab},
      {"trailing text", "{" + A + "," + B + "} x", 12, false, 0, ab},
      {"header length one short", "{" + A + "," + B + "}", 12, false, -1, ab},
      {"header length one long", "{" + A + "," + B + "}", 12, false, 1, ab},
      {"unsupported dtype", "{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}," + B + "}", 12, false, 0, ab},
      {"rank 9", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}," + B + "}", 12, false, 0,
       ab},
      {"shape bytes overflow",
       "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}," + B + "}", 12, false, 0, ab},
      {"missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}," + B + "}", 12, false, 0, ab},
      {"not an object", "[1,2]", 12, false, 0, ab},
  };
}

}  // namespace

TEST(SafetensorsRules, BothReadersAgreeOnEveryCase) {
  for (const RuleCase &c : rule_cases()) {
    Bytes data(c.data_len);
    for (size_t i = 0; i < data.size(); i++) data[i] = (unsigned char)(0x3f * (i % 4 == 3));  // finite floats
    Bytes f = make_file(c.header, data, (int64_t)c.header.size() + c.hlen_delta);
    std::string cm, rm;
    bool ca = compiler_accepts(f, &cm), ra = runtime_accepts(f, c.specs, &rm);
    EXPECT_EQ(ca, c.accept) << c.label << ": compiler says: " << cm;
    EXPECT_EQ(ra, c.accept) << c.label << ": runtime says: " << rm;
    if (!c.accept) {
      EXPECT_FALSE(cm.empty()) << c.label;
      EXPECT_FALSE(rm.empty()) << c.label;
    }
  }
}

// The reproducers: tiny_lm's weights with one thing in the header changed.
TEST(SafetensorsRules, ReproducersRejectedByBoth) {
  Bytes good = read_bytes(data_path("tiny_lm_w.safetensors"));
  ASSERT_GT(good.size(), 8u);
  TensorSet ref = {0, 0, nullptr};
  std::string msg;
  int rc = 0;
  msg = read_err(good, &rc, &ref);
  ASSERT_EQ(rc, 0) << msg;
  std::vector<Spec> specs;
  for (int i = 0; i < ref.n; i++) specs.push_back({ref.t[i].name, std::vector<int64_t>(ref.t[i].dims, ref.t[i].dims + ref.t[i].rank)});
  tensorset_free(&ref);
  ASSERT_TRUE(runtime_accepts(good, specs, &msg)) << msg;
  struct {
    const char *file, *compiler_says, *runtime_says;
  } cases[] = {
      {"st_dupkey_offsets.st", "two \"data_offsets\"", "two \"data_offsets\""},
      {"st_dupkey_shape_split.st", "two \"shape\"", "two \"shape\""},
      {"st_dupkey_dtype.st", "two \"dtype\"", "two \"dtype\""},
      {"st_overlap_same.st", "overlaps", "overlap"},
      {"st_name_with_u0000.st", "malformed header", "malformed header"},
      {"st_offsets_float.st", "fraction or exponent", "fraction or exponent"},
      {"st_header_nul_padding.st", "NUL", "NUL"},
      {"st_extra_trailing_data.st", "trailing bytes", "trailing data"},
      {"st_hlen_short_by_1.st", "", ""},
  };
  for (const auto &c : cases) {
    Bytes f = read_bytes(data_path(c.file));
    ASSERT_GT(f.size(), 8u) << c.file;
    std::string cm, rm;
    EXPECT_FALSE(compiler_accepts(f, &cm)) << c.file;
    EXPECT_FALSE(runtime_accepts(f, specs, &rm)) << c.file;
    EXPECT_NE(cm.find(c.compiler_says), std::string::npos) << c.file << ": " << cm;
    EXPECT_NE(rm.find(c.runtime_says), std::string::npos) << c.file << ": " << rm;
    EXPECT_FALSE(cm.empty() || rm.empty()) << c.file;
  }
}

// Every tensor file the repository holds loads, through both readers.
TEST(SafetensorsRules, RepositoryFilesLoad) {
  for (const char *rel : {"tests/data/safetensors/tiny_lm_w.safetensors"}) {
    Bytes f = read_bytes(std::string(GAT_SOURCE_DIR) + "/" + rel);
    std::string m;
    EXPECT_TRUE(compiler_accepts(f, &m)) << rel << ": " << m;
  }
}

// 40,000 one-element tensors: both readers are O(n log n), well under a second.
TEST(SafetensorsRules, ManyTensorsReadFast) {
  const int n = 40000;
  std::string h = "{";
  std::vector<Spec> specs;
  char name[32];
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof name, "t%05d", i);
    // header order differs from offset order: tensor i gets slot (i * 7919) % n
    int slot = (int)(((int64_t)i * 7919) % n);
    h += std::string(i ? "," : "") + "\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" +
         std::to_string(4 * slot) + "," + std::to_string(4 * slot + 4) + "]}";
    specs.push_back({name, {1}});
  }
  h += "}";
  Bytes f = make_file(h, Bytes(4 * (size_t)n, 0));
  std::string m;
  // CPU time, so that other jobs on the machine do not decide the verdict
  std::clock_t t0 = std::clock();
  EXPECT_TRUE(compiler_accepts(f, &m)) << m;
  std::clock_t t1 = std::clock();
  EXPECT_TRUE(runtime_accepts(f, specs, &m)) << m;
  std::clock_t t2 = std::clock();
  double c = (double)(t1 - t0) / CLOCKS_PER_SEC, r = (double)(t2 - t1) / CLOCKS_PER_SEC;
  printf("40000 tensors: compiler reader %.3f s, runtime binder %.3f s (CPU)\n", c, r);
  EXPECT_LT(c, 1.0);
  EXPECT_LT(r, 1.0);
  // a duplicate among them is still found
  std::string dup = h.substr(0, h.size() - 1) + ",\"t00007\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}";
  EXPECT_FALSE(compiler_accepts(make_file(dup, Bytes(4 * (size_t)n, 0)), &m));
  EXPECT_NE(m.find("twice"), std::string::npos) << m;
  EXPECT_FALSE(runtime_accepts(make_file(dup, Bytes(4 * (size_t)n, 0)), specs, &m));
  EXPECT_NE(m.find("twice"), std::string::npos) << m;
}

// Random damage to tiny_lm's weights (deterministic xorshift): whatever the
// compiler accepts with the model's tensor set the runtime accepts, whatever
// it rejects the runtime rejects.
TEST(SafetensorsRules, BothReadersAgreeOnDamagedFiles) {
  Bytes good = read_bytes(data_path("tiny_lm_w.safetensors"));
  ASSERT_GT(good.size(), 8u);
  TensorSet ref = {0, 0, nullptr};
  int rc = 0;
  std::string msg = read_err(good, &rc, &ref);
  ASSERT_EQ(rc, 0) << msg;
  std::vector<Spec> specs;
  for (int i = 0; i < ref.n; i++) specs.push_back({ref.t[i].name, std::vector<int64_t>(ref.t[i].dims, ref.t[i].dims + ref.t[i].rank)});
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = hlen << 8 | good[i];
  uint64_t x = 88172645463325252ULL;
  auto rnd = [&x]() { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; };
  const char alph[] = "{}[]\",:0123456789.eE- \\u";
  int accepted = 0;
  for (int it = 0; it < 1500; it++) {
    Bytes f = good;
    for (int k = 1 + (int)(rnd() % 3); k > 0; k--) {
      size_t at = 8 + rnd() % (hlen + 8);
      f[at] = rnd() % 2 ? (unsigned char)alph[rnd() % (sizeof alph - 1)] : (unsigned char)rnd();
    }
    if (rnd() % 8 == 0) f.resize(f.size() - rnd() % 64);
    TensorSet s = {0, 0, nullptr};
    std::string cm = read_err(f, &rc, &s), rm;
    bool c = rc == 0, same_set = c && s.n == ref.n;
    for (int i = 0; same_set && i < s.n; i++) {
      Tensor *t = tensorset_find(&ref, s.t[i].name);
      same_set = t && t->rank == s.t[i].rank && t->dtype == s.t[i].dtype &&
                 std::equal(t->dims, t->dims + t->rank, s.t[i].dims);
    }
    tensorset_free(&s);
    bool r = runtime_accepts(f, specs, &rm);
    if (c && !same_set) {
      EXPECT_FALSE(r) << "damage " << it << ": another tensor set, yet the runtime bound it";
      continue;
    }
    accepted += c;
    EXPECT_EQ(c, r) << "damage " << it << ": compiler: " << (c ? "ok" : cm) << " | runtime: " << (r ? "ok" : rm);
  }
  EXPECT_GT(accepted, 0);  // some damage (inside the data) leaves a valid file
  tensorset_free(&ref);
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

// An empty tensor whose other dims multiply past 64 bits ([2^32, 2^32, 0]) is a
// valid file; counting its elements must not overflow (found by fuzz_safetensors,
// tests/fuzz/regress/safetensors/empty_tensor_huge_dims.st).
TEST(SafetensorsCorrupt, EmptyTensorWithHugeDims) {
  TensorSet r = {0, 0, nullptr};
  char err[256];
  ASSERT_EQ(safetensors_read(GAT_SOURCE_DIR "/tests/fuzz/regress/safetensors/empty_tensor_huge_dims.st", &r, err,
                             sizeof err),
            0)
      << err;
  ASSERT_EQ(r.n, 1);
  EXPECT_EQ(tensor_numel(&r.t[0]), 0);
  tensorset_free(&r);
}
