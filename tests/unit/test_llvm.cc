// test_llvm.cc — the LLVM backend: modules built from .gat models
// through the LLVM C API verify and optimize at every level; --emit writes
// textual IR, bitcode and an object file plus the same NAME.h as the C
// backend; the object file links with a small C program exactly like the
// compiled NAME.c would, and its results match a linear layer computed here
// from the weights (an independent reference) and the reference interpreter;
// the in-process JIT (run_jit_opt) agrees as well; constructs the backend
// does not support give a clear error instead of code.
#include <gtest/gtest.h>

#include "loop_fixtures.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "backend.h"
#include "backend_llvm.h"
#include "frontend.h"
#include "interp.h"
#include "ir.h"
#include "pass.h"
#include "tensor.h"
#ifdef GAT_HAVE_LLVM
#include "emit_llvm.h"
#endif
}

namespace {

const char *kLinear = R"(import std
model lin {
  max T = 8
  input x : f32[T, 6]
  output y : f32[T, 5]
  y = linear(x, 5, bias: true) @ "fc"
}
)";

// scan (rnn state), norms, softmax, gather, GEMM with an epilogue at -O2
const char *kRich = R"(import std
model rich {
  max T = 16
  input ids : i32[T]
  output y : f32[T, 8]
  output p : f32[T, 8]
  h = embedding(ids, 11, 16) @ "emb"
  g = silu(linear(rms_norm(h) @ "norm", 24) @ "up")
  r = gru(g, hidden: 16) @ "rnn"
  y = linear(r, 8) @ "out" + linear(h, 8) @ "skip"
  p = softmax(y)
}
)";

using Model = loop_fixtures::Compiled;  // a .gat source compiled to graph IR

std::string tmpdir() {
  char d[] = "/tmp/gattnc-llvm-test-XXXXXX";
  EXPECT_NE(mkdtemp(d), nullptr);
  return d;
}

std::string slurp(const std::string &p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

double max_rel(const Tensor *got, const Tensor *want) {
  double err = 0, scale = 1e-30;
  int64_t n = tensor_numel(want);
  for (int64_t i = 0; i < n; i++) {
    double g = want->dtype == IR_F32 ? ((float *)got->data)[i] : ((int32_t *)got->data)[i];
    double w = want->dtype == IR_F32 ? ((float *)want->data)[i] : ((int32_t *)want->data)[i];
    err = std::max(err, std::isnan(g - w) ? INFINITY : std::fabs(g - w));
    scale = std::max(scale, std::fabs(w));
  }
  return err / scale;
}

void random_inputs(const IrModule *m, int64_t T, TensorSet *in) {
  uint64_t s = 12345;
  for (int i = 0; i < m->inputs.len; i++) {
    const IrIO *io = (const IrIO *)m->inputs.data[i];
    int64_t dims[IR_MAX_RANK];
    for (int d = 0; d < io->shape.rank; d++) dims[d] = io->shape.dims[d] == IR_DIM_T ? T : io->shape.dims[d];
    Tensor *t = tensorset_add(in, io->name, io->dtype, io->shape.rank, dims);
    for (int64_t e = 0; e < tensor_numel(t); e++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      if (io->dtype == IR_I32)
        ((int32_t *)t->data)[e] = (int32_t)((s >> 33) % 11);
      else
        ((float *)t->data)[e] = (float)((double)(s >> 11) / 9007199254740992.0 * 2 - 1);
    }
  }
}

void interp_ref(const IrModule *m, const TensorSet *w, const TensorSet *in, TensorSet *out) {
  char err[512];
  InterpSession *s = interp_new(m, w, err, sizeof err);
  ASSERT_NE(s, nullptr) << err;
  ASSERT_EQ(interp_forward(s, in, out, err, sizeof err), 0) << err;
  interp_free(s);
}

TEST(Llvm, AvailableInThisBuild) {
#ifdef GAT_HAVE_LLVM
  EXPECT_EQ(backend_llvm_available(), 1);
#else
  EXPECT_EQ(backend_llvm_available(), 0);
  Model md(kLinear);
  char err[512];
  LlvmEmitOptions eo = {"obj", nullptr, nullptr};
  EXPECT_NE(backend_emit_llvm(md.m, "/tmp/x.o", &eo, nullptr, err, sizeof err), 0);
  EXPECT_NE(std::string(err).find("without the LLVM backend"), std::string::npos) << err;
#endif
}

#ifdef GAT_HAVE_LLVM

TEST(Llvm, ModulesVerifyAtEveryLevel) {
  for (const char *src : {kLinear, kRich}) {
    Model md(src);
    ASSERT_NE(md.m, nullptr);
    for (int level = 0; level <= 2; level++) {
      Arena a;
      arena_init(&a);
      char err[1024] = "";
      PassOptions po;
      pass_options_init(&po, level);
      LoopModule *lm = pipeline_run(&a, md.m, "t", &po, err, sizeof err);
      ASSERT_NE(lm, nullptr) << err;
      LlvmTarget t = {nullptr, nullptr, nullptr};
      LLVMTargetMachineRef tm = emit_llvm_target_machine(&t, err, sizeof err);
      ASSERT_NE(tm, nullptr) << err;
      LLVMContextRef ctx = LLVMContextCreate();
      LLVMModuleRef mod = emit_llvm_module(lm, ctx, tm, err, sizeof err); /* verifies before optimizing */
      EXPECT_NE(mod, nullptr) << "-O" << level << ": " << err;
      if (mod) {
        EXPECT_NE(LLVMGetNamedFunction(mod, "t_forward"), nullptr);
        EXPECT_NE(LLVMGetNamedFunction(mod, "t_init"), nullptr);
        EXPECT_NE(LLVMGetNamedGlobal(mod, "t_params"), nullptr);
        LLVMDisposeModule(mod);
      }
      LLVMContextDispose(ctx);
      LLVMDisposeTargetMachine(tm);
      arena_free(&a);
    }
  }
}

TEST(Llvm, EmitsIrBitcodeObjectAndTheCHeader) {
  Model md(kRich);
  ASSERT_NE(md.m, nullptr);
  std::string d = tmpdir();
  char err[1024] = "";
  PassOptions po;
  pass_options_init(&po, 2);
  for (const char *kind : {"llvm", "bc", "obj", "asm"}) {
    std::string ext = !strcmp(kind, "llvm") ? ".ll" : !strcmp(kind, "bc") ? ".bc" : !strcmp(kind, "obj") ? ".o" : ".s";
    LlvmEmitOptions eo = {kind, nullptr, nullptr};
    std::string out = d + "/rich" + ext;
    ASSERT_EQ(backend_emit_llvm(md.m, out.c_str(), &eo, &po, err, sizeof err), 0) << kind << ": " << err;
    std::string text = slurp(out);
    EXPECT_GT(text.size(), 100u) << kind;
    if (ext == ".ll") EXPECT_NE(text.find("define i32 @rich_forward("), std::string::npos);
    if (ext == ".bc") EXPECT_EQ(text.substr(0, 2), "BC");
    if (ext == ".o") EXPECT_EQ(text.substr(1, 3), "ELF");
  }
  /* NAME.h is the C backend's header, byte for byte */
  std::string dc = tmpdir();
  ASSERT_EQ(backend_emit_c_opt(md.m, (dc + "/rich.c").c_str(), &po, err, sizeof err), 0) << err;
  EXPECT_EQ(slurp(d + "/rich.h"), slurp(dc + "/rich.h"));
  /* a foreign target: textual IR for aarch64 */
  LlvmEmitOptions eo = {"llvm", "aarch64-linux-gnu", "generic"};
  ASSERT_EQ(backend_emit_llvm(md.m, (d + "/arm.ll").c_str(), &eo, &po, err, sizeof err), 0) << err;
  EXPECT_NE(slurp(d + "/arm.ll").find("aarch64"), std::string::npos);
  LlvmEmitOptions bad = {"obj", "no-such-arch-x", nullptr};
  EXPECT_NE(backend_emit_llvm(md.m, (d + "/bad.o").c_str(), &bad, &po, err, sizeof err), 0);
  EXPECT_NE(std::string(err).find("no-such-arch-x"), std::string::npos) << err;
  std::system(("rm -rf '" + d + "' '" + dc + "'").c_str());
}

/* the object file linked into a C program: y = x . W^T + b from the weights, by hand */
TEST(Llvm, ObjectLinksIntoACProgramAndComputesTheLinearLayer) {
  Model md(kLinear);
  ASSERT_NE(md.m, nullptr);
  std::string d = tmpdir();
  char err[1024] = "";
  TensorSet w = {}, in = {};
  weights_init(md.m, 7, &w);
  ASSERT_EQ(safetensors_write((d + "/w.safetensors").c_str(), &w, err, sizeof err), 0) << err;
  const Tensor *W = nullptr, *B = nullptr;
  for (int i = 0; i < w.n; i++) (w.t[i].rank == 2 ? W : B) = &w.t[i];
  ASSERT_TRUE(W && B);
  const int T = 3;
  random_inputs(md.m, T, &in);
  FILE *f = fopen((d + "/x.bin").c_str(), "wb");
  fwrite(in.t[0].data, 4, (size_t)T * 6, f);
  fclose(f);
  for (int level : {0, 2}) {
    PassOptions po;
    pass_options_init(&po, level);
    LlvmEmitOptions eo = {"obj", nullptr, nullptr};
    ASSERT_EQ(backend_emit_llvm(md.m, (d + "/lin.o").c_str(), &eo, &po, err, sizeof err), 0) << err;
    std::ofstream(d + "/main.c") << R"(#include <stdio.h>
#include <stdlib.h>
#include "lin.h"
int main(int argc, char **argv) {
  static unsigned char blob[1 << 16], arena[LIN_ARENA_BYTES + 64];
  static float x[3 * 6], y[3 * 5];
  FILE *f = fopen(argv[1], "rb");
  size_t n = fread(blob, 1, sizeof blob, f);
  fclose(f);
  f = fopen(argv[2], "rb");
  if (fread(x, 4, 18, f) != 18) return 3;
  fclose(f);
  lin m;
  if (lin_init(&m, arena, sizeof arena, blob, n) != GAT_OK) { fprintf(stderr, "%s\n", lin_message(&m)); return 1; }
  if (lin_forward(&m, x, 3, y) != GAT_OK) { fprintf(stderr, "%s\n", lin_message(&m)); return 1; }
  if (lin_forward(&m, x, 8, y) != GAT_ERR_SEQ_TOO_LONG) return 4; /* position 3 + 8 > max T */
  printf("%s\n", lin_message(&m));
  f = fopen(argv[3], "wb");
  fwrite(y, 4, 15, f);
  fclose(f);
  return 0;
}
)";
    std::string rt = std::string(GAT_SOURCE_DIR) + "/runtime";
    std::string cmd = "cc -std=c11 -O1 -I'" + rt + "' -I'" + d + "' '" + d + "/main.c' '" + d + "/lin.o' '" + rt +
                      "/gat_runtime.c' '" + rt + "/gat_safetensors.c' -lm -o '" + d + "/prog' 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::string run = "'" + d + "/prog' '" + d + "/w.safetensors' '" + d + "/x.bin' '" + d + "/y.bin' > '" + d + "/msg.txt'";
    ASSERT_EQ(std::system(run.c_str()), 0);
    EXPECT_NE(slurp(d + "/msg.txt").find("at most 8 tokens"), std::string::npos) << slurp(d + "/msg.txt");
    std::string y = slurp(d + "/y.bin");
    ASSERT_EQ(y.size(), 60u);
    const float *yf = (const float *)y.data(), *xf = (const float *)in.t[0].data;
    for (int t = 0; t < T; t++)
      for (int o = 0; o < 5; o++) {
        double want = ((const float *)B->data)[o];
        for (int k = 0; k < 6; k++) want += (double)xf[t * 6 + k] * ((const float *)W->data)[o * 6 + k];
        EXPECT_NEAR(yf[t * 5 + o], want, 1e-5 * (1 + std::fabs(want))) << "-O" << level << " t " << t << " o " << o;
      }
  }
  tensorset_free(&w);
  tensorset_free(&in);
  std::system(("rm -rf '" + d + "'").c_str());
}

/* JIT vs the reference interpreter, prefill and token by token, -O0 and -O2 */
TEST(Llvm, JitMatchesTheInterpreter) {
  Model md(kRich);
  ASSERT_NE(md.m, nullptr);
  TensorSet w = {}, in = {}, ref = {};
  weights_init(md.m, 3, &w);
  random_inputs(md.m, 13, &in);
  interp_ref(md.m, &w, &in, &ref);
  for (int level : {0, 2})
    for (int step : {0, 1}) {
      char err[1024] = "";
      TensorSet out = {};
      PassOptions po;
      pass_options_init(&po, level);
      ASSERT_EQ(run_jit_opt(md.m, &w, &in, step, &po, &out, err, sizeof err), 0) << err;
      ASSERT_EQ(out.n, ref.n);
      for (int i = 0; i < ref.n; i++)
        EXPECT_LE(max_rel(&out.t[i], &ref.t[i]), level ? 1e-4 : 1e-6) << ref.t[i].name << " -O" << level << " step " << step;
      tensorset_free(&out);
    }
  /* the model's own checks run in the JIT too */
  TensorSet bad = {}, out = {};
  int64_t dims[1] = {4};
  Tensor *t = tensorset_add(&bad, "ids", IR_I32, 1, dims);
  ((int32_t *)t->data)[2] = 99; /* outside the embedding table */
  char err[1024] = "";
  EXPECT_NE(run_jit_opt(md.m, &w, &bad, 0, nullptr, &out, err, sizeof err), 0);
  EXPECT_NE(std::string(err).find("outside [0, 11)"), std::string::npos) << err;
  tensorset_free(&bad);
  tensorset_free(&out);
  tensorset_free(&w);
  tensorset_free(&in);
  tensorset_free(&ref);
}

// -O2 attention calls run the flash kernel of codegen/kernels/attention.c, linked as bitcode: GQA, qb/kb biases, a
// sliding window, head dims that are no multiple of the vector width (dk 6, dv 10), T past one
// 64-key block; the GEMMs get folded norm scales (rms_norm -> linear) and the GLU pair (swiglu)
const char *kAttn = R"(import std
model fattn {
  max T = 160
  input x : f32[T, 24]
  output y : f32[T, 40]
  output z : f32[T, 32]
  output u : f32[T, 24]
  q = linear(x, 24) @ "q" as [T, 4, 6]
  k = linear(x, 12) @ "k" as [T, 2, 6]
  v = linear(x, 20) @ "v" as [T, 2, 10]
  b = linear(x, 4) @ "qb"
  c = linear(x, 4) @ "kb"
  y = attention(q, k, v, qbias: b, kbias: c) as [T, 40]
  q2 = linear(x, 32) @ "q2" as [T, 2, 16]
  k2 = linear(x, 32) @ "k2" as [T, 2, 16]
  z = attention(q2, k2, k2, window: 37) as [T, 32]
  u = swiglu(rms_norm(x) @ "n", hidden: 40) @ "mlp"
}
)";

// a routed block with attention over the routed tokens (route top .. threshold: the
// one-token path, KV cache rows counted by the skip's row state)
const char *kRouted = R"(import std
layer blk(x: f32[T, D], heads: int) -> f32[T, D] {
  return gated_attention(rms_norm(x) @ "ln", heads: heads) @ "attn"
}
model routed {
  max T = 32
  input x : f32[T, 16]
  output y : f32[T, 16]
  h = x
  r = linear(h, 1) @ "router"
  h = h + r * blk(h, heads: 2) route top(0.5 * T, threshold: 0.5) by r
  y = h
}
)";

/* the interpreter fed `step` rows per call (outputs concatenated): the reference of decode runs */
void interp_steps(const IrModule *m, const TensorSet *w, const TensorSet *in, int64_t step, TensorSet *out) {
  char err[512];
  InterpSession *s = interp_new(m, w, err, sizeof err);
  ASSERT_NE(s, nullptr) << err;
  int64_t T = in->t[0].dims[0];
  for (int64_t t0 = 0; t0 < T; t0 += step) {
    int64_t n = std::min(step, T - t0);
    TensorSet part = {}, po = {};
    for (int i = 0; i < in->n; i++) {
      const Tensor *src = &in->t[i];
      int64_t dims[IR_MAX_RANK];
      memcpy(dims, src->dims, sizeof dims);
      int64_t row = tensor_numel(src) / src->dims[0];
      dims[0] = n;
      Tensor *d = tensorset_add(&part, src->name, src->dtype, src->rank, dims);
      memcpy(d->data, (const char *)src->data + 4 * t0 * row, (size_t)(4 * n * row));
    }
    ASSERT_EQ(interp_forward(s, &part, &po, err, sizeof err), 0) << err;
    for (int i = 0; i < po.n; i++) {
      const Tensor *src = &po.t[i];
      int64_t row = tensor_numel(src) / src->dims[0];
      Tensor *d = tensorset_find(out, src->name);
      if (!d) {
        int64_t dims[IR_MAX_RANK];
        memcpy(dims, src->dims, sizeof dims);
        dims[0] = T;
        d = tensorset_add(out, src->name, src->dtype, src->rank, dims);
      }
      memcpy((char *)d->data + 4 * t0 * row, src->data, (size_t)(4 * n * row));
    }
    tensorset_free(&part);
    tensorset_free(&po);
  }
  interp_free(s);
}

void jit_vs_interp_steps(const char *src, int64_t T, std::initializer_list<int> steps, double tol) {
  Model md(src);
  ASSERT_NE(md.m, nullptr);
  TensorSet w = {}, in = {};
  weights_init(md.m, 7, &w);
  random_inputs(md.m, T, &in);
  for (int step : steps) {
    TensorSet ref = {}, out = {};
    interp_steps(md.m, &w, &in, step ? step : T, &ref);
    char err[1024] = "";
    PassOptions po;
    pass_options_init(&po, 2);
    ASSERT_EQ(run_jit_opt(md.m, &w, &in, step, &po, &out, err, sizeof err), 0) << err;
    ASSERT_EQ(out.n, ref.n);
    for (int i = 0; i < ref.n; i++) {
      Tensor *o = tensorset_find(&out, ref.t[i].name);
      ASSERT_NE(o, nullptr);
      EXPECT_LE(max_rel(o, &ref.t[i]), tol) << ref.t[i].name << " step " << step;
    }
    tensorset_free(&ref);
    tensorset_free(&out);
  }
  tensorset_free(&w);
  tensorset_free(&in);
}

TEST(Llvm, FlashAttentionAndFoldedGemmsMatchTheInterpreter) {
  jit_vs_interp_steps(kAttn, 150, {0, 1, 7}, 1e-4);
  /* the flash kernel really is in the -O2 module: one variant per head-dim pair, dims made constants */
  Model md(kAttn);
  ASSERT_NE(md.m, nullptr);
  std::string d = tmpdir();
  PassOptions po;
  pass_options_init(&po, 2);
  char err[1024] = "";
  LlvmEmitOptions eo = {"llvm", nullptr, nullptr};
  ASSERT_EQ(backend_emit_llvm(md.m, (d + "/fattn.ll").c_str(), &eo, &po, err, sizeof err), 0) << err;
  std::string ir = slurp(d + "/fattn.ll");
  EXPECT_NE(ir.find("@gat_flash_attn_6_10("), std::string::npos);
  EXPECT_NE(ir.find("@gat_flash_attn_16_16("), std::string::npos);
  EXPECT_EQ(ir.find("@gat_k_attention("), std::string::npos);
  std::system(("rm -rf '" + d + "'").c_str());
}

TEST(Llvm, RoutedDecodeMatchesTheInterpreter) { jit_vs_interp_steps(kRouted, 20, {0, 1, 3}, 1e-4); }

TEST(Llvm, UnsupportedFeaturesGiveAClearError) {
  Model md(kLinear);
  ASSERT_NE(md.m, nullptr);
  PassOptions po;
  pass_options_init(&po, 0);
  char err[1024] = "";
  LlvmEmitOptions eo = {"obj", "i686-linux-gnu", nullptr}; /* no 64-bit pointers */
  EXPECT_NE(backend_emit_llvm(md.m, "/tmp/gattnc-llvm-never.o", &eo, &po, err, sizeof err), 0);
  EXPECT_NE(std::string(err).find("not supported by the LLVM backend"), std::string::npos) << err;
}

/* --count / --profile (emit_llvm_count.c): only an instrumented build has counters, timing and
   their API; a plain build's IR has none of it (the counted builds' results are checked against
   the interpreter's counters by tests/e2e/test_llvm_count.py) */
TEST(Llvm, CountersAndProfilingOnlyInInstrumentedBuilds) {
  Model md(kRouted);
  ASSERT_NE(md.m, nullptr);
  std::string d = tmpdir();
  char err[1024] = "";
  LlvmEmitOptions eo = {"llvm", nullptr, nullptr};
  std::string text[4];
  for (int v = 0; v < 4; v++) {
    PassOptions po;
    pass_options_init(&po, 2);
    po.count = v & 1;
    po.profile = (v >> 1) & 1;
    std::string N = "r" + std::to_string(v), out = d + "/" + N + ".ll"; /* the model is named after the file */
    ASSERT_EQ(backend_emit_llvm(md.m, out.c_str(), &eo, &po, err, sizeof err), 0) << v << ": " << err;
    text[v] = slurp(out);
    bool cnt = v & 1, prof = (v >> 1) & 1;
    for (const char *s : {"_count_ops(", "_count_tokens(", "_count_rows(", "_count_calls(", "_count_clear("})
      EXPECT_EQ(text[v].find("@" + N + s) != std::string::npos, cnt) << s << " in build " << v;
    for (const char *s : {"_profile_count(", "_profile_ns(", "_profile_clear("})
      EXPECT_EQ(text[v].find("@" + N + s) != std::string::npos, prof) << s << " in build " << v;
    EXPECT_EQ(text[v].find("@gat_time_ns(") != std::string::npos, prof) << v;
    EXPECT_EQ(text[v].find("_prof_ns") != std::string::npos, prof) << v;
  }
  /* the model struct: the counters between the error record and the knobs, in a --count build only */
  for (int v = 0; v < 4; v++) {
    std::string N = "r" + std::to_string(v);
    size_t at = text[v].find("%" + N + " = type {");
    ASSERT_NE(at, std::string::npos) << v;
    std::string ty = text[v].substr(at, text[v].find('\n', at) - at);
    EXPECT_EQ(ty.find("%gat_error, [1 x double], [1 x double] }") != std::string::npos, !(v & 1)) << ty;
    EXPECT_EQ(ty.find("%gat_error, [3 x i64], [1 x double], [1 x double] }") != std::string::npos, (v & 1) != 0) << ty;
  }
  std::system(("rm -rf '" + d + "'").c_str());
}

#endif

}  // namespace
