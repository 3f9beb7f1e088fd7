// test_emit_api.cc — bad input through the public API of generated C.
//
// A small language model (embedding -> rms_norm -> linear) is compiled from
// .gat source to C; a C program (kApiProgram below, compiled with the
// generated files and the runtime under -fsanitize=address,undefined) calls
// NAME_init / NAME_init_tensors / NAME_forward / NAME_reset the way a user
// would, with the weight files this test writes: a good one and one per kind
// of damage (missing, extra, misnamed tensor, wrong dtype, wrong shape,
// truncated file, data offsets outside the file, hostile header lengths,
// misaligned blob), plus run-time misuse (token id >= vocab, T > max,
// T = 0, arena too small or misaligned, forward before init, NULL
// pointers). Each case must give its own status, never crash or read out of
// bounds (the sanitizers abort otherwise), and name the tensor involved.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "backend.h"
#include "diag.h"
#include "frontend.h"
#include "gat_runtime.h"
#include "ir.h"
#include "tensor.h"
}

namespace {

const char *kModel = R"(import std
model api {
  max T = 8
  input  tokens : i32[T]
  output logits : f32[T, 16]
  x = embedding(tokens, 16, 8) @ "emb"
  logits = linear(rms_norm(x) @ "norm", 16) @ "head"
}
)";

// argv[1] = the good weights file, then pairs (case name, weights file) that
// init must reject. Prints one line per case: "<case> <status> <message>".
const char *kApiProgram = R"(#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api.h"

static _Alignas(64) unsigned char arena[API_ARENA_BYTES + API_WEIGHTS_BYTES + 64];
static _Alignas(64) unsigned char blob_mem[1 << 16];
static float out[API_MAX_T * 16], out2[API_MAX_T * 16];

static size_t load(const char *path, unsigned char *dst, size_t cap) {
  FILE *f = fopen(path, "rb");
  size_t n;
  if (!f) { printf("cannot open %s\n", path); exit(2); }
  n = fread(dst, 1, cap, f);
  fclose(f);
  return n;
}

static void report(const char *what, int st, const api *m) {
  printf("%s %d %s\n", what, st, api_message(m));
}

int main(int argc, char **argv) {
  api m;
  int32_t toks[API_MAX_T + 1] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  size_t n = load(argv[1], blob_mem, sizeof blob_mem);
  int i, st;

  /* damaged files */
  for (i = 2; i + 1 < argc; i += 2) {
    size_t k = load(argv[i + 1], blob_mem + 8, sizeof blob_mem - 8);
    report(argv[i], api_init(&m, arena, API_ARENA_BYTES, blob_mem + 8, k), &m);
  }
  n = load(argv[1], blob_mem, sizeof blob_mem);

  /* before init */
  memset(&m, 0, sizeof m);
  report("forward_before_init", api_forward(&m, toks, 1, out), &m);
  report("reset_before_init", api_reset(&m), &m);

  /* arena */
  report("arena_small", api_init(&m, arena, API_ARENA_BYTES - 1, blob_mem, n), &m);
  report("arena_misaligned", api_init(&m, arena + 4, API_ARENA_BYTES, blob_mem, n), &m);
  report("arena_null", api_init(&m, NULL, API_ARENA_BYTES, blob_mem, n), &m);
  report("weights_null", api_init(&m, arena, API_ARENA_BYTES, NULL, n), &m);

  /* a misaligned blob: rejected without room, copied into the arena with room */
  memmove(blob_mem + 1, blob_mem, n);
  report("misaligned_no_room", api_init(&m, arena, API_ARENA_BYTES, blob_mem + 1, n), &m);
  st = api_init(&m, arena, sizeof arena, blob_mem + 1, n);
  report("misaligned_copied", st, &m);
  if (st == GAT_OK) {
    memset(blob_mem, 0xff, sizeof blob_mem); /* the model must not read the blob any more */
    st = api_forward(&m, toks, 3, out2);
    report("misaligned_forward", st, &m);
  }
  n = load(argv[1], blob_mem, sizeof blob_mem);

  /* good weights: the run-time checks */
  report("init_ok", api_init(&m, arena, API_ARENA_BYTES, blob_mem, n), &m);
  report("forward_ok", api_forward(&m, toks, 3, out), &m);
  printf("same_as_misaligned %d\n", memcmp(out, out2, sizeof(float) * 3 * 16) == 0);
  api_reset(&m);
  report("T_zero", api_forward(&m, toks, 0, out), &m);
  report("T_negative", api_forward(&m, toks, -5, out), &m);
  report("T_too_long", api_forward(&m, toks, API_MAX_T + 1, out), &m);
  report("fill_to_max", api_forward(&m, toks, API_MAX_T, out), &m);
  report("past_max", api_forward(&m, toks, 1, out), &m);
  api_reset(&m);
  toks[1] = 16;
  report("token_eq_vocab", api_forward(&m, toks, 3, out), &m);
  toks[1] = -1;
  api_reset(&m);
  report("token_negative", api_forward(&m, toks, 3, out), &m);
  toks[1] = 2;
  api_reset(&m);
  report("input_null", api_forward(&m, NULL, 3, out), &m);
  report("output_null", api_forward(&m, toks, 3, NULL), &m);
  report("model_null", api_forward(NULL, toks, 3, out), &m);

  /* init_tensors: a NULL entry names its tensor; a misaligned one too */
  {
    const void *ptrs[API_NUM_PARAMS];
    for (i = 0; i < API_NUM_PARAMS; i++) ptrs[i] = m.w[i];
    ptrs[API_NUM_PARAMS - 1] = NULL;
    report("tensors_null_entry", api_init_tensors(&m, arena, API_ARENA_BYTES, ptrs), &m);
    api_init(&m, arena, API_ARENA_BYTES, blob_mem, n);
    for (i = 0; i < API_NUM_PARAMS; i++) ptrs[i] = m.w[i];
    ptrs[0] = (const unsigned char *)ptrs[0] + 2;
    report("tensors_misaligned", api_init_tensors(&m, arena, API_ARENA_BYTES, ptrs), &m);
  }
  return 0;
}
)";

std::string tmpdir() {
  char d[] = "/tmp/gat-test-api-XXXXXX";
  EXPECT_NE(mkdtemp(d), nullptr);
  return d;
}

std::string slurp(const std::string &p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Entry {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string data;
};

struct Damage {
  int64_t beg = -1, end = -1;  // data_offsets override of the last entry
  int64_t header_len = -1;     // header length override
  int64_t cut = 0;             // bytes removed from the end
};

std::string make_blob(const std::vector<Entry> &es, const Damage &dm = Damage()) {
  std::string h = "{", data;
  for (size_t i = 0; i < es.size(); i++) {
    const Entry &e = es[i];
    int64_t b = (int64_t)data.size(), en = b + (int64_t)e.data.size();
    if (i + 1 == es.size() && dm.beg >= 0) b = dm.beg, en = dm.end;
    h += std::string(i ? "," : "") + "\"" + e.name + "\":{\"dtype\":\"" + e.dtype + "\",\"shape\":[";
    for (size_t k = 0; k < e.shape.size(); k++) h += (k ? "," : "") + std::to_string(e.shape[k]);
    h += "],\"data_offsets\":[" + std::to_string(b) + "," + std::to_string(en) + "]}";
    data += e.data;
  }
  h += "}";
  while (h.size() % 8) h += " ";
  uint64_t hl = dm.header_len >= 0 ? (uint64_t)dm.header_len : h.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; i++) out[i] = (char)(hl >> (8 * i));
  out += h + data;
  out.resize(out.size() - (size_t)dm.cut);
  return out;
}

void put(const std::string &path, const std::string &bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

}  // namespace

TEST(EmitApi, BadInputThroughTheGeneratedApi) {
  Arena a;
  arena_init(&a);
  FrontendOptions fo = {nullptr, 0};
  IrModule *m = frontend_compile(&a, "api.gat", kModel, &fo);
  ASSERT_NE(m, nullptr);
  std::string d = tmpdir();
  char err[512] = "";
  ASSERT_EQ(backend_emit_c(m, (d + "/api.c").c_str(), err, sizeof err), 0) << err;

  // the model's weights, as entries we can damage
  TensorSet w = {0, 0, nullptr};
  weights_init(m, 4, &w);
  std::vector<Entry> good;
  for (int i = 0; i < w.n; i++) {
    Entry e;
    e.name = w.t[i].name;
    e.dtype = "F32";
    for (int k = 0; k < w.t[i].rank; k++) e.shape.push_back(w.t[i].dims[k]);
    e.data.assign((const char *)w.t[i].data, (size_t)tensor_numel(&w.t[i]) * 4);
    good.push_back(e);
  }
  tensorset_free(&w);
  ASSERT_GE(good.size(), 3u);
  const std::string first = good[0].name, last = good.back().name;
  put(d + "/good.st", make_blob(good));

  // case -> (expected status, text the message must contain)
  std::map<std::string, std::pair<int, std::string>> want;
  std::vector<std::string> files;
  auto damaged = [&](const std::string &name, const std::string &bytes, int status, const std::string &text) {
    put(d + "/" + name + ".st", bytes);
    files.push_back(name);
    want[name] = {status, text};
  };
  {
    auto es = good;
    es.pop_back();
    damaged("missing", make_blob(es), GAT_ERR_MISSING_TENSOR, "'" + last + "' is missing");
  }
  {
    auto es = good;
    es.push_back({"extra.bias", "F32", {2}, std::string(8, '\0')});
    damaged("extra", make_blob(es), GAT_ERR_UNEXPECTED_TENSOR, "'extra.bias' is not a parameter");
  }
  {
    auto es = good;
    es[0].name += "s";
    damaged("misnamed", make_blob(es), GAT_ERR_UNEXPECTED_TENSOR, "'" + first + "s' is not a parameter");
  }
  {
    auto es = good;
    es[0].dtype = "I32";
    damaged("dtype", make_blob(es), GAT_ERR_DTYPE, "'" + first + "' must be F32");
  }
  {
    auto es = good;
    es[0].dtype = "F16";
    es[0].data.resize(es[0].data.size() / 2);
    damaged("dtype_f16", make_blob(es), GAT_ERR_DTYPE, "'" + first + "' must be F32");
  }
  {
    auto es = good;
    es[0].shape[0] += 1;
    es[0].data += std::string((size_t)es[0].shape.back() * 4, '\0');
    damaged("shape", make_blob(es), GAT_ERR_SHAPE, "'" + first + "' has dim 0");
  }
  {
    auto es = good;
    es[0].shape.push_back(1);
    damaged("rank", make_blob(es), GAT_ERR_SHAPE, "'" + first + "' has rank 3");
  }
  {
    Damage dm;
    dm.cut = 4;
    damaged("truncated", make_blob(good, dm), GAT_ERR_TRUNCATED, "'" + last + "' needs");
  }
  {
    Damage dm;
    dm.cut = (int64_t)make_blob(good).size() - 20;  // inside the header
    damaged("truncated_header", make_blob(good, dm), GAT_ERR_TRUNCATED, "header of");
  }
  {
    Damage dm;
    dm.beg = 1 << 20, dm.end = (1 << 20) + (int64_t)good.back().data.size();
    damaged("offsets_outside", make_blob(good, dm), GAT_ERR_OFFSETS, "'" + last + "' ends at");
  }
  {
    Damage dm;
    dm.beg = 8, dm.end = 4;
    damaged("offsets_reversed", make_blob(good, dm), GAT_ERR_OFFSETS, "'" + last + "' has data_offsets");
  }
  {
    Damage dm;
    dm.beg = (int64_t)4000000000000000000, dm.end = dm.beg + (int64_t)good.back().data.size();
    damaged("offsets_huge", make_blob(good, dm), GAT_ERR_OFFSETS, "'" + last + "'");
  }
  {
    Damage dm;
    dm.header_len = (int64_t)0x7fffffffffffffff;
    damaged("header_len_huge", make_blob(good, dm), GAT_ERR_HEADER, "exceeds");
  }
  {
    Damage dm;
    dm.header_len = 1 << 20;  // below the limit but beyond the file
    damaged("header_len_past_end", make_blob(good, dm), GAT_ERR_TRUNCATED, "header of 1048576 bytes");
  }
  damaged("tiny_file", std::string("\x10\0\0", 3), GAT_ERR_TRUNCATED, "shorter than");
  {
    std::string b = make_blob(good);
    b[8] = '[';
    damaged("bad_json", b, GAT_ERR_HEADER, "not a JSON object");
  }

  // run-time cases of the program itself
  want["forward_before_init"] = {GAT_ERR_NOT_INITIALIZED, "before a successful init"};
  want["reset_before_init"] = {GAT_ERR_NOT_INITIALIZED, "before a successful init"};
  want["arena_small"] = {GAT_ERR_ARENA_TOO_SMALL, "API_ARENA_BYTES"};
  want["arena_misaligned"] = {GAT_ERR_ALIGNMENT, "arena is not 8-byte aligned"};
  want["arena_null"] = {GAT_ERR_ARGUMENT, "arena is NULL"};
  want["weights_null"] = {GAT_ERR_ARGUMENT, "NULL weights"};
  want["misaligned_no_room"] = {GAT_ERR_ALIGNMENT, "'" + first + "' is not 4-byte aligned"};
  want["misaligned_copied"] = {GAT_OK, ""};
  want["misaligned_forward"] = {GAT_OK, ""};
  want["init_ok"] = {GAT_OK, ""};
  want["forward_ok"] = {GAT_OK, ""};
  want["T_zero"] = {GAT_ERR_SEQ_TOO_LONG, "T = 0"};
  want["T_negative"] = {GAT_ERR_SEQ_TOO_LONG, "T = -5"};
  want["T_too_long"] = {GAT_ERR_SEQ_TOO_LONG, "T = 9 at position 0"};
  want["fill_to_max"] = {GAT_OK, ""};
  want["past_max"] = {GAT_ERR_SEQ_TOO_LONG, "T = 1 at position 8"};
  want["token_eq_vocab"] = {GAT_ERR_TOKEN_RANGE, "index 16 at position 1 is outside [0, 16) in gather from '" + first + "'"};
  want["token_negative"] = {GAT_ERR_TOKEN_RANGE, "index -1 at position 1"};
  want["input_null"] = {GAT_ERR_ARGUMENT, "input 'tokens' is NULL"};
  want["output_null"] = {GAT_ERR_ARGUMENT, "output 'logits' is NULL"};
  want["model_null"] = {GAT_ERR_ARGUMENT, ""};
  want["tensors_null_entry"] = {GAT_ERR_MISSING_TENSOR, "'" + last + "' is NULL"};
  want["tensors_misaligned"] = {GAT_ERR_ALIGNMENT, "'" + first + "' is not 4-byte aligned"};

  // build and run the program, with the sanitizers on
  put(d + "/prog.c", kApiProgram);
  std::string cc = std::string(backend_cc()) + " -std=c11 -Wall -Wextra -pedantic -Werror -g -O1 " +
                   "-fsanitize=address,undefined -fno-sanitize-recover=all -I" GAT_SOURCE_DIR "/runtime -I" + d + " " +
                   d + "/prog.c " + d + "/api.c " GAT_SOURCE_DIR "/runtime/gat_runtime.c " GAT_SOURCE_DIR
                   "/runtime/gat_safetensors.c -o " + d + "/prog -lm > " + d + "/cc.txt 2>&1";
  ASSERT_EQ(system(cc.c_str()), 0) << slurp(d + "/cc.txt");
  std::string run = "ASAN_OPTIONS=detect_leaks=0 " + d + "/prog " + d + "/good.st";
  for (const std::string &f : files) run += " " + f + " " + d + "/" + f + ".st";
  run += " > " + d + "/out.txt 2>&1";
  int rc = system(run.c_str());
  std::string out = slurp(d + "/out.txt");
  ASSERT_EQ(rc, 0) << out;

  std::map<std::string, std::pair<int, std::string>> got;
  std::istringstream lines(out);
  std::string line;
  bool same = false;
  while (std::getline(lines, line)) {
    std::istringstream ls(line);
    std::string name;
    int st;
    ls >> name >> st;
    std::string msg;
    std::getline(ls, msg);
    if (!msg.empty() && msg[0] == ' ') msg.erase(0, 1);
    if (name == "same_as_misaligned") same = st == 1;
    else got[name] = {st, msg};
  }
  EXPECT_TRUE(same) << "a misaligned blob copied into the arena must give the same logits";
  for (auto &kv : want) {
    auto it = got.find(kv.first);
    ASSERT_NE(it, got.end()) << kv.first << " missing from the output:\n" << out;
    EXPECT_EQ(it->second.first, kv.second.first)
        << kv.first << ": got " << gat_status_string(it->second.first) << " (" << it->second.second << ")";
    EXPECT_NE(it->second.second.find(kv.second.second), std::string::npos)
        << kv.first << ": message '" << it->second.second << "' lacks '" << kv.second.second << "'";
  }
  // the bad inputs the API must tell apart: each its own status
  std::vector<std::string> distinct = {"missing", "extra", "dtype", "shape", "truncated", "offsets_outside",
                                       "header_len_huge", "token_eq_vocab", "T_too_long", "arena_small",
                                       "misaligned_no_room", "input_null", "forward_before_init"};
  std::set<int> seen;
  for (const std::string &c : distinct) EXPECT_TRUE(seen.insert(got[c].first).second) << c << " shares its status";

  std::string rm = "rm -rf " + d;
  EXPECT_EQ(system(rm.c_str()), 0);
  arena_free(&a);
  diag_reset();
}
