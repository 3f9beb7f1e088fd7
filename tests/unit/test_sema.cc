// test_sema.cc — sema + lowering (compiler/front/sema*.c, frontend.c): constant
// folding, shape inference of the builtins, parameter names and shapes,
// layer instantiation, scopes, scan/mixture/skip structure, imports, and the
// error messages (text and line:col). Expectations are derived by hand from
// docs/language.md and compiler/ir/ir.h, never copied from our own output.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

extern "C" {
#include "frontend.h"
#include "ir.h"
}

namespace {

struct Result {
  IrModule *m = nullptr;
  std::string diag;
  int errors = 0;
};

// Each compilation gets its own arena; they are freed at exit of the test.
struct ArenaHolder {
  std::vector<Arena *> arenas;
  ~ArenaHolder() {
    for (Arena *a : arenas) {
      arena_free(a);
      delete a;
    }
  }
} g_arenas;

Result compile(const std::string &src, const char *model = nullptr, int64_t max_seq = 0,
               const char *path = "test.gat") {
  diag_reset();
  char *buf = nullptr;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  diag_set_stream(f);
  Arena *a = new Arena;
  arena_init(a);
  g_arenas.arenas.push_back(a);
  FrontendOptions o = {model, max_seq};
  Result r;
  r.m = frontend_compile(a, path, src.c_str(), &o);
  r.errors = diag_error_count();
  fclose(f);
  diag_set_stream(nullptr);
  r.diag.assign(buf, len);
  free(buf);
  return r;
}

std::string verify(const IrModule *m) {
  char err[2048];
  if (ir_verify(m, err, sizeof err) == 0) return "";
  return err;
}

void collect_ops(IrBlock *b, IrOpKind k, std::vector<IrOp *> &out) {
  for (int i = 0; i < b->ops.len; i++) {
    IrOp *op = (IrOp *)b->ops.data[i];
    if (op->kind == k) out.push_back(op);
    for (int r = 0; r < op->nregions; r++) collect_ops(op->regions[r], k, out);
  }
}
std::vector<IrOp *> ops_of(const IrModule *m, IrOpKind k) {
  std::vector<IrOp *> v;
  collect_ops(m->body, k, v);
  return v;
}
std::string type_of(const IrValue *v) {
  char buf[128];
  ir_type_str(buf, sizeof buf, v->dtype, v->shape);
  return buf;
}
std::string shape_str(IrShape s) {
  char buf[128];
  ir_type_str(buf, sizeof buf, IR_F32, s);
  return buf;
}
std::string param_shape(const IrModule *m, const char *name) {
  IrParam *p = ir_module_find_param(m, name);
  return p ? shape_str(p->shape) : "<missing>";
}
const IrState *state_named(const IrModule *m, const std::string &name) {
  for (int i = 0; i < m->states.len; i++) {
    const IrState *s = (const IrState *)m->states.data[i];
    if (name == s->name) return s;
  }
  return nullptr;
}
std::string output_type(const IrModule *m) {
  auto outs = ops_of(m, IR_OP_OUTPUT);
  return outs.empty() ? "<none>" : type_of(outs[0]->in[0]);
}

// A model wrapper: `body` runs inside `model m { ... }` with input x.
std::string model(const std::string &input_type, const std::string &out_type, const std::string &body,
                  const std::string &prelude = "") {
  return prelude + "model m {\n  max T = 64\n  input x : " + input_type + "\n  output y : " + out_type + "\n" +
         body + "\n}\n";
}

#define EXPECT_OK(r) \
  do { \
    ASSERT_NE((r).m, nullptr) << (r).diag; \
    EXPECT_EQ(verify((r).m), "") << (r).diag; \
  } while (0)

#define EXPECT_ERROR(r, text) \
  do { \
    EXPECT_EQ((r).m, nullptr); \
    EXPECT_NE((r).diag.find(text), std::string::npos) << "diagnostics were:\n" << (r).diag; \
  } while (0)

// ---- constant folding ------------------------------------------------------
TEST(SemaFold, IntArithmeticStaysInt) {
  // 2 ** 3 = 8; 10 % 4 = 2; 6 / 3 = 2 (exact, stays int): 8 + 2 - 2 = 8
  auto r = compile(model("f32[T, 8]", "f32[T, 8]", "  const n = 2 ** 3 + 10 % 4 - 6 / 3\n  y = x as [T, n]"));
  EXPECT_OK(r);
  EXPECT_EQ(output_type(r.m), "f32[T, 8]");
}

TEST(SemaFold, FloatShapeArithmeticFoldsToIntegralDim) {
  // D * 0.5 / H with D = 64, H = 4 gives 8.0, a valid dimension.
  auto r = compile(model("f32[T, 64]", "f32[T, 4, 8, 2]", "  const D = 64, H = 4, K = D * 0.5 / H\n"
                                                          "  y = x as [T, H, K, 2]"));
  EXPECT_OK(r);
}

TEST(SemaFold, NonIntegralDimensionIsAnError) {
  auto r = compile(model("f32[T, 8]", "f32[T, 8]", "  z = x as [T, 7 / 2]\n  y = x"));
  // `7 / 2` sits at line 5 (after the model header, max T, input, output), column 16.
  EXPECT_ERROR(r, "test.gat:5:16: error: dimension '7 / 2' is 3.5; a dimension must be a positive integer");
}

TEST(SemaFold, ComparisonsLogicAndCasts) {
  // (3 < 4) and not (2 == 3) is true; int(true) + 1 = 2 iterations -> two params.
  auto r = compile(model("f32[T, 4]", "f32[T, 4]",
                         "  const c = (3 < 4) and not (2 == 3)\n"
                         "  repeat i in 0..int(c) + 1 @ \"l{i}\" { x = linear(x, 4) @ \"p\" }\n  y = x"));
  EXPECT_OK(r);
  EXPECT_EQ(r.m->params.len, 2);
  EXPECT_NE(ir_module_find_param(r.m, "l1.p.weight"), nullptr);
}

TEST(SemaFold, ScalarTimesTensorBecomesConstOp) {
  auto r = compile(model("f32[T, 4]", "f32[T, 4]", "  y = x * (2 ** -1)"));
  EXPECT_OK(r);
  auto consts = ops_of(r.m, IR_OP_CONST);
  ASSERT_EQ(consts.size(), 1u);
  EXPECT_DOUBLE_EQ(ir_op_float(consts[0], "value", 0), 0.5);
  EXPECT_EQ(type_of(consts[0]->out[0]), "f32[]");
}

// ---- builtins: shapes and parameters ----------------------------------------
TEST(SemaBuiltins, LinearWeightIsOutByIn) {
  auto r = compile(model("f32[T, 16]", "f32[T, 24]", "  y = linear(x, 24, bias: true) @ \"proj\""));
  EXPECT_OK(r);
  EXPECT_EQ(param_shape(r.m, "proj.weight"), "f32[24, 16]");
  EXPECT_EQ(param_shape(r.m, "proj.bias"), "f32[24]");
  IrParam *w = ir_module_find_param(r.m, "proj.weight");
  IrParam *b = ir_module_find_param(r.m, "proj.bias");
  EXPECT_EQ(w->init.kind, IR_INIT_LINEAR);
  // PyTorch's Linear bias: U(-1/sqrt(in), 1/sqrt(in)) with in = 16.
  EXPECT_EQ(b->init.kind, IR_INIT_UNIFORM);
  EXPECT_DOUBLE_EQ(b->init.b, 0.25);
  EXPECT_EQ(ops_of(r.m, IR_OP_LINEAR)[0]->nin, 3);
}

TEST(SemaBuiltins, EmbeddingAndGather) {
  auto r = compile("model m {\n input t : i32[T]\n output y : f32[T, 8]\n"
                   " y = embedding(t, 100, 8) @ \"emb\"\n}\n");
  EXPECT_OK(r);
  EXPECT_EQ(param_shape(r.m, "emb.weight"), "f32[100, 8]");
  IrParam *w = ir_module_find_param(r.m, "emb.weight");
  EXPECT_EQ(w->init.kind, IR_INIT_NORMAL);
  EXPECT_DOUBLE_EQ(w->init.b, 1.0);
  EXPECT_EQ(ops_of(r.m, IR_OP_GATHER).size(), 1u);
}

TEST(SemaBuiltins, NormsCreateWeightsWithPyTorchInit) {
  auto r = compile(model("f32[T, 4, 8]", "f32[T, 4, 8]",
                         "  a = rms_norm(x, over: 8) @ \"n1\"\n"
                         "  b = rms_norm(a, plus_one: true, eps: 1e-6) @ \"n2\"\n"
                         "  y = layer_norm(b) @ \"ln\" + l2_norm(b)"));
  EXPECT_OK(r);
  EXPECT_EQ(param_shape(r.m, "n1.weight"), "f32[8]");
  EXPECT_DOUBLE_EQ(ir_module_find_param(r.m, "n1.weight")->init.a, 1.0);
  EXPECT_DOUBLE_EQ(ir_module_find_param(r.m, "n2.weight")->init.a, 0.0);  // (1 + w) form starts at 0
  EXPECT_DOUBLE_EQ(ir_module_find_param(r.m, "ln.bias")->init.a, 0.0);
  auto rms = ops_of(r.m, IR_OP_RMS_NORM);
  ASSERT_EQ(rms.size(), 2u);
  EXPECT_EQ(ir_op_int(rms[1], "plus_one", -1), 1);
  EXPECT_DOUBLE_EQ(ir_op_float(rms[1], "eps", 0), 1e-6);
  EXPECT_EQ(ops_of(r.m, IR_OP_L2_NORM).size(), 1u);
}

TEST(SemaBuiltins, RmsNormOverChecksLastDim) {
  auto r = compile(model("f32[T, 4, 8]", "f32[T, 4, 8]", "  y = rms_norm(x, over: 16)"));
  EXPECT_ERROR(r, "rms_norm(over: 16) normalises over the last dimension, but x is f32[T, 4, 8]");
}

TEST(SemaBuiltins, CausalConvHasTailState) {
  auto r = compile(model("f32[T, 6]", "f32[T, 6]", "  y = causal_conv1d(x, kernel: 3) @ \"conv\""));
  EXPECT_OK(r);
  EXPECT_EQ(param_shape(r.m, "conv.weight"), "f32[6, 1, 3]");
  const IrState *s = state_named(r.m, "conv.conv_state");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(shape_str(s->shape), "f32[2, 6]");  // [W-1, C]
  EXPECT_STREQ(ir_op_str(ops_of(r.m, IR_OP_CONV1D)[0], "act", ""), "silu");
}

TEST(SemaBuiltins, AttentionKvCacheSizedByMaxT) {
  std::string body =
      "  q = x as [T, 4, 8]\n  k = linear(x, 16) @ \"k\" as [T, 2, 8]\n  v = linear(x, 32) @ \"v\" as [T, 2, 16]\n"
      "  o = attention(q, k, v, window: 5) @ \"attn\"\n  y = o as [T, 64]";
  auto r = compile(model("f32[T, 32]", "f32[T, 64]", body));
  EXPECT_OK(r);
  const IrState *kc = state_named(r.m, "attn.k_cache");
  const IrState *vc = state_named(r.m, "attn.v_cache");
  ASSERT_TRUE(kc && vc);
  EXPECT_EQ(shape_str(kc->shape), "f32[64, 2, 8]");  // max T = 64 from the file
  EXPECT_EQ(shape_str(vc->shape), "f32[64, 2, 16]");
  IrOp *att = ops_of(r.m, IR_OP_ATTENTION)[0];
  EXPECT_EQ(type_of(att->out[0]), "f32[T, 4, 16]");
  EXPECT_DOUBLE_EQ(ir_op_float(att, "scale", 0), 1.0 / std::sqrt(8.0));
  EXPECT_EQ(ir_op_int(att, "window", -1), 5);
  // --max-seq overrides the file's max T, caches follow.
  auto r2 = compile(model("f32[T, 32]", "f32[T, 64]", body), nullptr, 100);
  EXPECT_OK(r2);
  EXPECT_EQ(r2.m->max_T, 100);
  EXPECT_EQ(shape_str(state_named(r2.m, "attn.k_cache")->shape), "f32[100, 2, 8]");
}

TEST(SemaBuiltins, AttentionBiasAndGqaCheck) {
  auto r = compile(model("f32[T, 3, 8]", "f32[T, 3, 8]",
                         "  b = sum(x, axis: -1)\n  y = attention(x, x, x, qbias: b, kbias: b, scale: 1.0)"));
  EXPECT_OK(r);
  IrOp *att = ops_of(r.m, IR_OP_ATTENTION)[0];
  EXPECT_EQ(att->nin, 5);
  const IrState *kb = (const IrState *)r.m->states.data[ir_op_int(att, "state_kb", -1)];
  EXPECT_EQ(shape_str(kb->shape), "f32[64, 3]");
  auto bad = compile(model("f32[T, 3, 8]", "f32[T, 3, 8]", "  y = attention(x, (x as [T, 24]) as [T, 2, 12], x)"));
  EXPECT_ERROR(bad, "attention: q f32[T, 3, 8], k f32[T, 2, 12] and v f32[T, 3, 8] do not fit");
  auto gqa = compile(model("f32[T, 3, 8]", "f32[T, 3, 8]",
                           "  k = linear(x as [T, 24], 16) @ \"k\" as [T, 2, 8]\n  y = attention(x, k, k)"));
  EXPECT_ERROR(gqa, "3 query heads cannot be grouped over 2 key/value heads");
}

TEST(SemaBuiltins, TopkSplitConcatTranspose) {
  auto r = compile(model("f32[T, 8]", "f32[T, 8]",
                         "  w, idx = topk(softmax(x), 3)\n"
                         "  a, b = split(x, 3, 5)\n"
                         "  c = concat(b, a, axis: -1)\n"
                         "  t = transpose(x as [T, 2, 4], 0, 2, 1)\n"
                         "  y = c + float(idx[:, 0:1]) * 0 + t as [T, 8]"));
  EXPECT_OK(r);
  IrOp *tk = ops_of(r.m, IR_OP_TOPK)[0];
  EXPECT_EQ(type_of(tk->out[0]), "f32[T, 3]");
  EXPECT_EQ(type_of(tk->out[1]), "i32[T, 3]");
  IrOp *sp = ops_of(r.m, IR_OP_SPLIT)[0];
  EXPECT_EQ(type_of(sp->out[1]), "f32[T, 5]");
  EXPECT_EQ(ir_op_int(ops_of(r.m, IR_OP_CONCAT)[0], "axis", -1), 1);
  EXPECT_EQ(type_of(ops_of(r.m, IR_OP_TRANSPOSE)[0]->out[0]), "f32[T, 4, 2]");
  IrOp *sl = ops_of(r.m, IR_OP_SLICE)[0];
  EXPECT_EQ(ir_op_int(sl, "axis", -1), 1);
  EXPECT_EQ(ir_op_int(sl, "start", -1), 0);
  EXPECT_EQ(ir_op_int(sl, "stop", -1), 1);
}

TEST(SemaBuiltins, ReductionsAndBroadcasting) {
  auto r = compile(model("f32[T, 4, 1]", "f32[T, 4, 8]",
                         "  param b : f32[4, 8] = zeros()\n"
                         "  s = sum(x, axis: 0)\n"  // over T -> [4, 1]
                         "  y = x + b + mean(b, axis: 1) as [4, 1] + s"));
  EXPECT_OK(r);
  auto reds = ops_of(r.m, IR_OP_REDUCE);
  ASSERT_EQ(reds.size(), 2u);
  EXPECT_EQ(type_of(reds[0]->out[0]), "f32[4, 1]");
  EXPECT_STREQ(ir_op_str(reds[1], "kind", ""), "mean");
  auto bad = compile(model("f32[T, 4]", "f32[T, 4]", "  param b : f32[5] = zeros()\n  y = x + b"));
  EXPECT_ERROR(bad, "shapes f32[T, 4] and f32[5] of '+' cannot be broadcast together");
}

TEST(SemaBuiltins, ReshapeMustKeepElementCount) {
  auto r = compile(model("f32[T, 8]", "f32[T, 8]", "  y = x as [T, 3, 3]"));
  EXPECT_ERROR(r, "cannot reshape f32[T, 8] to f32[T, 3, 3]: the number of elements differs");
}

TEST(SemaBuiltins, PositionsAndSelect) {
  auto r = compile(model("f32[T]", "f32[T]", "  p = positions()\n  y = select(p > 3, x, 0.0)"));
  EXPECT_OK(r);
  EXPECT_EQ(type_of(ops_of(r.m, IR_OP_POSITION)[0]->out[0]), "i32[T]");
  EXPECT_EQ(ops_of(r.m, IR_OP_SELECT).size(), 1u);
}

// ---- layers, scopes, parameters ----------------------------------------------
const char *kAttnLayer =
    "layer attn(x: f32[T, D], heads: int, head_dim: int = D / heads) -> f32[T, D] {\n"
    "  q = linear(x, heads * head_dim) @ \"q_proj\"\n"
    "  return linear(q, D) @ \"o_proj\"\n"
    "}\n";

TEST(SemaLayers, ScopedParamNamesInRepeat) {
  auto r = compile(std::string(kAttnLayer) +
                   "model m {\n input x : f32[T, 32]\n output y : f32[T, 32]\n"
                   " repeat i in 0..2 @ \"model.layers.{i}\" { x = x + attn(x, heads: 4, head_dim: 4) @ \"attn\" }\n"
                   " y = x\n}\n");
  EXPECT_OK(r);
  EXPECT_EQ(param_shape(r.m, "model.layers.1.attn.q_proj.weight"), "f32[16, 32]");
  EXPECT_EQ(param_shape(r.m, "model.layers.0.attn.o_proj.weight"), "f32[32, 16]");
  EXPECT_EQ(r.m->params.len, 4);
  // ops keep the innermost layer as origin; model-level ops have none
  auto lin = ops_of(r.m, IR_OP_LINEAR);
  EXPECT_STREQ(lin[0]->origin, "attn");
  EXPECT_EQ(lin[0]->loc.line, 2);
  EXPECT_EQ(ops_of(r.m, IR_OP_BINARY)[0]->origin, nullptr);
}

TEST(SemaLayers, DefaultsUseBoundDims) {
  auto r = compile(std::string(kAttnLayer) + model("f32[T, 32]", "f32[T, 32]", "  y = attn(x, 2) @ \"a\""));
  EXPECT_OK(r);
  EXPECT_EQ(param_shape(r.m, "a.q_proj.weight"), "f32[32, 32]");  // head_dim = 32 / 2
}

TEST(SemaLayers, UnificationMismatchNamesBothShapes) {
  auto r = compile("layer f(a: f32[T, D], x: f32[T, D]) -> f32[T, D] { return a + x }\n" +
                   model("f32[T, 128]", "f32[T, 128]", "  z = linear(x, 64) @ \"p\"\n  y = f(x, z)"));
  EXPECT_ERROR(r, "argument 'x' of layer 'f' has shape f32[T, 64] but the layer expects f32[T, D] with D = 128");
}

TEST(SemaLayers, ReturnTypeIsChecked) {
  auto r = compile("layer f(x: f32[T, D]) -> f32[T, D] {\n  return linear(x, 3) @ \"p\"\n}\n" +
                   model("f32[T, 8]", "f32[T, 8]", "  y = f(x)"));
  EXPECT_ERROR(r, "test.gat:2:3: error: layer 'f' returns f32[T, 3] but declares f32[T, D] with D = 8");
}

TEST(SemaLayers, BadArguments) {
  std::string L = kAttnLayer;
  auto missing = compile(L + model("f32[T, 8]", "f32[T, 8]", "  y = attn(x)"));
  EXPECT_ERROR(missing, "missing argument 'heads' in call to layer 'attn'");
  auto unknown = compile(L + model("f32[T, 8]", "f32[T, 8]", "  y = attn(x, heads: 2, hedas: 3)"));
  EXPECT_ERROR(unknown, "layer 'attn' has no parameter 'hedas'");
  auto many = compile(L + model("f32[T, 8]", "f32[T, 8]", "  y = attn(x, 2, 4, 5)"));
  EXPECT_ERROR(many, "too many arguments: layer 'attn' takes 3");
  auto type = compile(L + model("f32[T, 8]", "f32[T, 8]", "  y = attn(x, heads: 2.5)"));
  EXPECT_ERROR(type, "argument 'heads' of layer 'attn' must be an int, but is 2.5");
  auto bkw = compile(model("f32[T, 8]", "f32[T, 8]", "  y = linear(x, 8, biass: true)"));
  EXPECT_ERROR(bkw, "'linear' has no argument 'biass'");
}

TEST(SemaLayers, RecursionIsAnError) {
  auto r = compile("layer f(x: f32[T, D]) -> f32[T, D] { return f(x) }\n" +
                   model("f32[T, 8]", "f32[T, 8]", "  y = f(x)"));
  EXPECT_ERROR(r, "test.gat:1:45: error: layer 'f' calls itself (recursion is not allowed)");
}

TEST(SemaLayers, DuplicateLayerHasNoteOnFirst) {
  auto r = compile("layer f(x: f32[T, D]) -> f32[T, D] { return x }\n"
                   "layer f(x: f32[T, D]) -> f32[T, D] { return x }\n" +
                   model("f32[T, 8]", "f32[T, 8]", "  y = f(x)"));
  EXPECT_ERROR(r, "test.gat:2:1: error: layer 'f' is defined twice");
  EXPECT_NE(r.diag.find("test.gat:1:1: note: first defined here"), std::string::npos) << r.diag;
}

TEST(SemaLayers, DuplicateParamNameWithNote) {
  auto r = compile(model("f32[T, 8]", "f32[T, 8]", "  a = linear(x, 8) @ \"p\"\n  y = linear(a, 8) @ \"p\""));
  EXPECT_ERROR(r, "test.gat:6:7: error: parameter 'p.weight' is created twice");
  EXPECT_NE(r.diag.find("test.gat:5:7: note: first created here"), std::string::npos) << r.diag;
}

TEST(SemaLayers, ExplicitParamsAndInitRules) {
  auto r = compile(model("f32[T, 4]", "f32[T, 4]",
                         "  param A_log : f32[4] = log_uniform(1, 16)\n"
                         "  param dt : f32[4] = dt_bias(0.001, 0.1)\n"
                         "  param w : f32[4]\n"
                         "  y = x * exp(A_log) + dt + w"));
  EXPECT_OK(r);
  EXPECT_EQ(ir_module_find_param(r.m, "A_log")->init.kind, IR_INIT_LOG_UNIFORM);
  EXPECT_DOUBLE_EQ(ir_module_find_param(r.m, "A_log")->init.b, 16.0);
  EXPECT_EQ(ir_module_find_param(r.m, "dt")->init.kind, IR_INIT_DT_BIAS);
  IrParam *w = ir_module_find_param(r.m, "w");
  EXPECT_EQ(w->init.kind, IR_INIT_NORMAL);  // default normal(0, 0.02)
  EXPECT_DOUBLE_EQ(w->init.b, 0.02);
}

// ---- compile-time if ---------------------------------------------------------------
const char *kGatedLayer =
    "layer gated(x: f32[T, D], use_gate: bool, mode: int = 0) -> f32[T, D] {\n"
    "  y = linear(x, D) @ \"o_proj\"\n"
    "  if use_gate {\n"
    "    g = sigmoid(linear(x, D) @ \"g_proj\")\n"
    "  } else if mode == 1 {\n"
    "    g = 2.0\n"
    "  } else {\n"
    "    param g : f32[D] = ones()\n"
    "  }\n"
    "  return y * g\n"   // g, bound in whichever branch ran, is visible here
    "}\n";

TEST(SemaIf, OnlyTheTakenBranchCreatesParameters) {
  auto r = compile(std::string(kGatedLayer) +
                   model("f32[T, 8]", "f32[T, 8]",
                         "  a = gated(x, true) @ \"l0\"\n  b = gated(x, false, mode: 1) @ \"l1\"\n"
                         "  c = gated(x, 3 < 2) @ \"l2\"\n  y = a + b + c"));
  EXPECT_OK(r);
  EXPECT_EQ(param_shape(r.m, "l0.g_proj.weight"), "f32[8, 8]");
  EXPECT_EQ(ir_module_find_param(r.m, "l1.g_proj.weight"), nullptr);
  EXPECT_EQ(ir_module_find_param(r.m, "l1.g"), nullptr);
  EXPECT_EQ(ir_module_find_param(r.m, "l2.g_proj.weight"), nullptr);
  EXPECT_EQ(param_shape(r.m, "l2.g"), "f32[8]");
  // o_proj x3, g_proj once, g once
  EXPECT_EQ(r.m->params.len, 5);
  EXPECT_EQ(ops_of(r.m, IR_OP_LINEAR).size(), 4u);
}

TEST(SemaIf, ModelLevelIfInRepeatAndReturnInBranch) {
  auto r = compile(model("f32[T, 8]", "f32[T, 8]",
                         "  repeat i in 0..4 @ \"layers.{i}\" {\n"
                         "    if i % 2 == 0 { x = linear(x, 8) @ \"even\" } else { x = x * 2 }\n"
                         "  }\n  y = x",
                         "layer pick(x: f32[T, D], k: int) -> f32[T, D] {\n"
                         "  if k == 0 { return x }\n  return -x\n}\n"));
  EXPECT_OK(r);
  EXPECT_EQ(r.m->params.len, 2);
  EXPECT_EQ(param_shape(r.m, "layers.0.even.weight"), "f32[8, 8]");
  EXPECT_EQ(param_shape(r.m, "layers.2.even.weight"), "f32[8, 8]");
  EXPECT_EQ(ir_module_find_param(r.m, "layers.1.even.weight"), nullptr);
}

TEST(SemaIf, ConditionMustBeCompileTimeBool) {
  auto i = compile(model("f32[T, 8]", "f32[T, 8]", "  if 1 { y = x } else { y = -x }"));
  EXPECT_ERROR(i, "test.gat:5:6: error: the condition of 'if' must be a compile-time bool, not an int ('1')");
  EXPECT_EQ(i.errors, 1) << i.diag;
  auto t = compile(model("f32[T, 8]", "f32[T, 8]", "  if x > 0 { y = x } else { y = -x }"));
  EXPECT_ERROR(t, "test.gat:5:6: error: the condition of 'if' must be a compile-time bool, not a run-time "
                  "f32[T, 8] tensor");
  EXPECT_EQ(t.errors, 1) << t.diag;
  // an undefined name in the condition: one error, no branch elaborated
  auto u = compile(model("f32[T, 8]", "f32[T, 8]", "  if flag { y = x }\n  y = x"));
  EXPECT_ERROR(u, "test.gat:5:6: error: undefined name 'flag'");
  EXPECT_EQ(u.errors, 1) << u.diag;
}

TEST(SemaIf, UntakenBranchIsNotChecked) {
  // Errors in the branch that is not taken are not reported (it is never
  // elaborated), like a layer that is never called.
  auto r = compile(model("f32[T, 8]", "f32[T, 8]", "  if false { y = linear(x, nope) @ \"p\" }\n  y = x"));
  EXPECT_OK(r);
}

TEST(SemaLayers, TemplatedParamNamesInRepeat) {
  // PyTorch nn.LSTM-style per-layer names; the local name drops the {...}.
  auto r = compile(model("f32[T, 4]", "f32[T, 4]",
                         "  repeat k in 0..3 @ \"rnn\" {\n"
                         "    param weight_ih_l{k} : f32[4, 4]\n"
                         "    param bias_l{k}_reverse : f32[4] = ones()\n"
                         "    x = matmul(x, weight_ih_l) + bias_l_reverse\n"
                         "  }\n  y = x"));
  EXPECT_OK(r);
  EXPECT_EQ(r.m->params.len, 6);
  EXPECT_EQ(param_shape(r.m, "rnn.weight_ih_l0"), "f32[4, 4]");
  EXPECT_EQ(param_shape(r.m, "rnn.weight_ih_l2"), "f32[4, 4]");
  EXPECT_EQ(param_shape(r.m, "rnn.bias_l1_reverse"), "f32[4]");
  EXPECT_EQ(ops_of(r.m, IR_OP_MATMUL).size(), 3u);
  auto undef = compile(model("f32[T, 4]", "f32[T, 4]", "  param w{j} : f32[4]\n  y = x * w"));
  EXPECT_ERROR(undef, "test.gat:5:3: error: undefined name 'j' in param name \"w{j}\"");
  EXPECT_EQ(undef.errors, 1) << undef.diag;
  auto notint = compile(model("f32[T, 4]", "f32[T, 4]", "  const f = 0.5\n  param w{f} : f32[4]\n  y = x * w"));
  EXPECT_ERROR(notint, "test.gat:6:3: error: '{f}' in param name \"w{f}\" must be a compile-time int, not a float");
  auto twice = compile(model("f32[T, 4]", "f32[T, 4]",
                             "  repeat k in 0..2 { param w{k} : f32[4] }\n  param w1 : f32[4]\n  y = x * w1"));
  EXPECT_ERROR(twice, "test.gat:6:3: error: parameter 'w1' is created twice");
}

// ---- names and poison ------------------------------------------------------------
TEST(SemaNames, UndefinedNameSuggestsAndPoisonSilencesFollowOns) {
  auto r = compile(model("f32[T, 8]", "f32[T, 8]",
                         "  const hidden = 8\n  z = linear(x, hiden) @ \"p\"\n  w = z * 2 + z\n  y = w"));
  EXPECT_ERROR(r, "test.gat:6:17: error: undefined name 'hiden'; did you mean 'hidden'?");
  EXPECT_EQ(r.errors, 1) << r.diag;
}

TEST(SemaNames, ErrorsInSeveralStatementsAreAllReported) {
  auto r = compile(model("f32[T, 8]", "f32[T, 8]", "  a = foo\n  b = bar\n  y = x"));
  EXPECT_EQ(r.errors, 2) << r.diag;
}

TEST(SemaNames, ElementAccessOutsideIndexNotation) {
  auto r = compile(model("f32[T, 8]", "f32[T, 8]", "  z = x[0, 1]\n  y = x"));
  EXPECT_ERROR(r, "element access 'x[0, 1]' is only allowed in index notation");
}

TEST(SemaNames, OutputsMustBeAssignedOnceWithTheirShape) {
  auto none = compile("model m {\n  input x : f32[T, 4]\n  output y : f32[T, 4]\n}\n");
  EXPECT_ERROR(none, "test.gat:3:3: error: output 'y' is never assigned");
  auto twice = compile(model("f32[T, 4]", "f32[T, 4]", "  y = x\n  y = x"));
  EXPECT_ERROR(twice, "output 'y' is assigned more than once");
  auto shape = compile(model("f32[T, 4]", "f32[T, 5]", "  y = x"));
  EXPECT_ERROR(shape, "output 'y' is declared f32[T, 5] but is assigned f32[T, 4]");
}

// ---- index notation ----------------------------------------------------------------
TEST(SemaIndex, MatmulByIndexNotation) {
  auto r = compile(model("f32[T, 6]", "f32[T, 3]",
                         "  param w : f32[3, 6] = zeros()\n  y[t, j] = sum(k) x[t, k] * w[j, k]"));
  EXPECT_OK(r);
  auto ix = ops_of(r.m, IR_OP_INDEX);
  ASSERT_EQ(ix.size(), 1u);
  EXPECT_EQ(ix[0]->nin, 2);
  ASSERT_NE(ix[0]->expr, nullptr);
  EXPECT_EQ(ix[0]->expr->kind, IR_EX_REDUCE);
  EXPECT_EQ(ix[0]->expr->extent, 6);
  EXPECT_EQ(ix[0]->expr->var, 2);  // output vars are v0, v1; the reduction gets v2
}

TEST(SemaIndex, ExtentConflictNamesBothShapes) {
  auto r = compile(model("f32[T, 6]", "f32[T, 6]",
                         "  param w : f32[4] = zeros()\n  y[t, j] = x[t, j] * w[j]"));
  EXPECT_ERROR(r, "index 'j' ranges over 6 in x (f32[T, 6]) but over 4 in w (f32[4])");
}

TEST(SemaIndex, AffineIndicesCheckedInBounds) {
  // i ranges over 4 (from z); 2*i + 1 reaches 7 < 9: fine.
  auto ok = compile(model("f32[T, 4]", "f32[T, 4]",
                          "  param z : f32[4] = zeros()\n  param u : f32[9] = zeros()\n"
                          "  v[i] = z[i] + u[2 * i + 1]\n  y = x + v"));
  EXPECT_OK(ok);
  IrExpr *e = ops_of(ok.m, IR_OP_INDEX)[0]->expr;
  ASSERT_EQ(e->kind, IR_EX_BINARY);
  ASSERT_EQ(e->b->kind, IR_EX_LOAD);
  EXPECT_EQ(e->b->idx[0].c, 1);
  EXPECT_EQ(e->b->idx[0].coef[0], 2);
  // i + 1 over 8 elements reaches 8: out of bounds.
  auto bad = compile(model("f32[T, 8]", "f32[T, 8]",
                           "  param z : f32[8] = zeros()\n  v[i] = z[i] * z[i + 1]\n  y = x + v"));
  EXPECT_ERROR(bad, "test.gat:6:19: error: index 'i + 1' of z (f32[8]) ranges over [1, 8] but dimension 0 has size 8");
}

TEST(SemaIndex, ExplicitRanges) {
  // l addresses no dimension (a value, and an affine index): its range is written
  auto r = compile(model("f32[T, 8]", "f32[T, 8]",
                         "  const L = 3\n  lb[l in 0..L, j] = l * 2.0 + x[0 + 0 * l, j]\n"
                         "  ev[i, l in 0..4] = x[i, 2*l + 1]\n  y = x + sum(lb, axis: 0) + sum(ev, axis: -1, keepdim: true)"));
  // x[0, ...] indexes T with a constant: rejected; use a non-T tensor instead
  EXPECT_ERROR(r, "index '0 + 0 * l' into the T dimension");
  auto ok = compile(model("f32[T, 8]", "f32[T, 8]",
                          "  const L = 3\n  param w : f32[8]\n  lb[l in 0..L, j] = l * 2.0 + w[j]\n"
                          "  ev[i, l in 0..4] = x[i, 2*l + 1]\n"
                          "  y = x + sum(lb, axis: 0) + sum(ev, axis: -1, keepdim: true)"));
  EXPECT_OK(ok);
  auto ix = ops_of(ok.m, IR_OP_INDEX);
  ASSERT_EQ(ix.size(), 2u);
  EXPECT_EQ(type_of(ix[0]->out[0]), "f32[3, 8]");
  EXPECT_EQ(type_of(ix[1]->out[0]), "f32[T, 4]");
  // 2*4 + 1 = 9 is out of bounds for 8: the bounds check covers explicit ranges
  auto oob = compile(model("f32[T, 8]", "f32[T, 8]", "  ev[i, l in 0..5] = x[i, 2*l + 1]\n  y = x"));
  EXPECT_ERROR(oob, "test.gat:5:27: error: index '2 * l + 1' of x (f32[T, 8]) ranges over [1, 9] but dimension 1 has size 8");
  auto conflict = compile(model("f32[T, 8]", "f32[T, 8]", "  z[i, j in 0..4] = x[i, j]\n  y = x"));
  EXPECT_ERROR(conflict, "test.gat:5:26: error: index 'j' ranges over 4 in its range 0..4 but over 8 in x (f32[T, 8])");
  auto notzero = compile(model("f32[T, 8]", "f32[T, 8]", "  z[j in 1..4] = 1.0 * j\n  y = x"));
  EXPECT_ERROR(notzero, "test.gat:5:10: error: the range of index 'j' must start at 0, not 1");
  auto notint = compile(model("f32[T, 8]", "f32[T, 8]", "  z[j in 0..2.5] = 1.0 * j\n  y = x"));
  EXPECT_ERROR(notint, "test.gat:5:13: error: the range of index 'j' must have compile-time int bounds ('2.5' is a float)");
  auto empty = compile(model("f32[T, 8]", "f32[T, 8]", "  z[j in 0..0] = 1.0 * j\n  y = x"));
  EXPECT_ERROR(empty, "test.gat:5:13: error: the range of index 'j' must be non-empty (0..0)");
}

TEST(SemaIndex, TDimensionNeedsLoopOrScanVariable) {
  auto r = compile(model("f32[T, 8]", "f32[T, 8]", "  y[t, j] = x[t, j] - x[t + 1, j]"));
  EXPECT_ERROR(r, "index 't + 1' into the T dimension of x (f32[T, 8]) must be an index ranging over T");
}

// ---- scan, mixture, skip ---------------------------------------------------------------
TEST(SemaRegions, ScanSignatureStatesAndResult) {
  auto r2 = compile(model("f32[T, 4]", "f32[T, 2, 4]",
                          "  y = scan t with S: f32[2, 4] = 1.5, n: f32[4] = 0 {\n"
                          "    S[a, b] = S[a, b] * 0.5 + x[t, b]\n"
                          "    n[b] = n[b] + x[t, b]\n"
                          "    emit = S\n"
                          "  }"));
  EXPECT_OK(r2);
  IrOp *scan = ops_of(r2.m, IR_OP_SCAN)[0];
  ASSERT_EQ(scan->nregions, 1);
  IrBlock *b = scan->regions[0];
  ASSERT_EQ(b->nargs, 3);
  EXPECT_EQ(type_of(b->args[0]), "i32[]");
  EXPECT_EQ(type_of(b->args[1]), "f32[2, 4]");
  EXPECT_EQ(b->nyield, 3);  // S', n', emit
  EXPECT_EQ(type_of(scan->out[0]), "f32[T, 2, 4]");
  const IrState *s = state_named(r2.m, "S");
  ASSERT_NE(s, nullptr);
  EXPECT_DOUBLE_EQ(s->init, 1.5);
  const IrAttr *st = ir_op_attr(scan, "states");
  ASSERT_TRUE(st && st->n == 2);
  // the load of x inside the body indexes T with the scan variable (a dynamic term)
  IrOp *ix = (IrOp *)b->ops.data[0];
  ASSERT_EQ(ix->kind, IR_OP_INDEX);
  EXPECT_EQ(ix->expr->b->kind, IR_EX_LOAD);
  EXPECT_GE(ix->expr->b->idx[0].dyn, 0);
}

TEST(SemaRegions, TwoScansInOneScopeGetDistinctStateNamesAndI32StatesKeepDtype) {
  auto r = compile(model("f32[T, 4]", "f32[T, 4]",
                         "  a = scan t with S: f32[4] = 0 {\n    S[j] = S[j] + x[t, j]\n    emit = S\n  }\n"
                         "  b = scan t with S: i32[4] = 0 {\n    S[j] = S[j] + 1\n    emit = S\n  }\n"
                         "  y = a + b"));
  EXPECT_OK(r);
  ASSERT_EQ(r.m->states.len, 2);
  EXPECT_STREQ(((IrState *)r.m->states.data[0])->name, "S");
  EXPECT_STRNE(((IrState *)r.m->states.data[1])->name, "S");
  EXPECT_EQ(type_of(ops_of(r.m, IR_OP_SCAN)[1]->out[0]), "i32[T, 4]");
}

TEST(SemaBuiltins, KeepdimReductionBroadcastsBack) {
  auto r = compile(model("f32[T, 4]", "f32[T, 4]", "  y = x / sum(x, axis: -1, keepdim: true)"));
  EXPECT_OK(r);
  auto bad = compile(model("f32[T, 4]", "f32[T, 4]", "  y = x / sum(x, axis: -1)"));
  EXPECT_ERROR(bad, "shapes f32[T, 4] and f32[T] of '/' cannot be broadcast together (shapes align from the right;");
}

TEST(SemaFold, IntegerOverflowIsAnError) {
  auto r = compile(model("f32[T, 4]", "f32[T, 4]", "  const a = 2 ** 62 * 4\n  y = x"));
  EXPECT_ERROR(r, "test.gat:5:13: error: integer overflow in a compile-time expression (4611686018427387904 * 4)");
}

TEST(SemaRegions, ScanWithoutEmitAndStateShapeErrors) {
  auto r = compile(model("f32[T, 4]", "f32[T, 4]",
                         "  y = scan t with h: f32[4] = 0 {\n    h[j] = h[j] + x[t, j]\n  }"));
  EXPECT_ERROR(r, "the scan body never assigns 'emit'");
  auto r2 = compile(model("f32[T, 4]", "f32[T, 4]",
                          "  y = scan t with h: f32[4] = 0 {\n    h = x\n    emit = h\n  }"));
  EXPECT_ERROR(r2, "state 'h' is f32[4] but is assigned f32[T, 4]");
}

TEST(SemaRegions, MixtureRegionsCapturesAndExpertScopes) {
  auto r = compile("import std\n" +
                   model("f32[T, 8]", "f32[T, 8]",
                         "  w, idx = topk(softmax(linear(x, 3) @ \"gate\"), 2)\n"
                         "  y = mixture e in 0..3 by idx weighted w {\n"
                         "    return swiglu(x, hidden: 16) @ \"experts.{e}\"\n"
                         "  }"));
  EXPECT_OK(r);
  IrOp *mx = ops_of(r.m, IR_OP_MIXTURE)[0];
  EXPECT_EQ(ir_op_int(mx, "experts", 0), 3);
  ASSERT_EQ(mx->nregions, 3);
  ASSERT_EQ(mx->nin, 3);  // idx, w, x (the per-token capture)
  EXPECT_EQ(type_of(mx->in[0]), "i32[T, 2]");
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(mx->regions[i]->nargs, 1);
    EXPECT_EQ(type_of(mx->regions[i]->args[0]), "f32[T, 8]");
  }
  EXPECT_EQ(param_shape(r.m, "experts.2.down_proj.weight"), "f32[8, 16]");
  EXPECT_EQ(type_of(mx->out[0]), "f32[T, 8]");
}

TEST(SemaRegions, MixtureRejectsSequenceOps) {
  auto r = compile(model("f32[T, 8]", "f32[T, 8]",
                         "  w, idx = topk(x, 2)\n"
                         "  y = mixture e in 0..8 by idx weighted w {\n"
                         "    return causal_conv1d(x) @ \"c{e}\"\n"
                         "  }"));
  EXPECT_ERROR(r, "'causal_conv1d' cannot be used inside a mixture or skip body");
  auto lo = compile(model("f32[T, 8]", "f32[T, 8]",
                          "  w, idx = topk(x, 2)\n  y = mixture e in 1..8 by idx weighted w {\n    return x\n  }"));
  EXPECT_ERROR(lo, "a mixture's experts must start at 0 (got 1)");
}

TEST(SemaRegions, SkipOperandsAndCondition) {
  auto r = compile(model("f32[T, 8]", "f32[T, 8]",
                         "  g = sigmoid(linear(x, 1) @ \"g\")\n"  // [T, 1] condition is accepted
                         "  h = x * 2\n"
                         "  h = h + g * linear(x, 8) @ \"mlp\" skip when g < 0.5\n"
                         "  y = h"));
  EXPECT_OK(r);
  IrOp *sk = ops_of(r.m, IR_OP_SKIP)[0];
  EXPECT_EQ(type_of(sk->in[0]), "f32[T]");
  EXPECT_EQ(type_of(sk->in[1]), "f32[T, 8]");
  // captures: h, g, x (each per token) after cond and prev
  EXPECT_EQ(sk->nin, 5);
  EXPECT_EQ(sk->regions[0]->nargs, 3);
  auto nocond = compile(model("f32[T, 8]", "f32[T, 8]", "  z = x skip when x\n  y = x"));
  EXPECT_ERROR(nocond, "'z' has no previous value");
}

// ---- imports and model selection ----------------------------------------------------------
TEST(SemaImports, RelativeImportsCyclesAndOnce) {
  char dir[] = "/tmp/gat_sema_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string d = dir;
  std::ofstream(d + "/a.gat") << "import \"b.gat\"\nconst width = 8\nlayer twice(x: f32[T, D]) -> f32[T, D] { return x * two }\n";
  std::ofstream(d + "/b.gat") << "import \"a.gat\"\nconst two = 2\n";
  std::string main_src = "import \"a.gat\"\nimport \"b.gat\"\nimport std\n" +
                         model("f32[T, width]", "f32[T, width]", "  y = twice(swiglu(x, hidden: 4) @ \"m\")");
  auto r = compile(main_src, nullptr, 0, (d + "/main.gat").c_str());
  EXPECT_OK(r);
  EXPECT_EQ(param_shape(r.m, "m.gate_proj.weight"), "f32[4, 8]");
  auto missing = compile("import \"nope.gat\"\n" + model("f32[T, 4]", "f32[T, 4]", "  y = x"), nullptr, 0,
                         (d + "/main.gat").c_str());
  EXPECT_ERROR(missing, "cannot read imported file");
}

TEST(SemaImports, ModelSelection) {
  std::string src = "model first {\n input x : f32[T, 2]\n output y : f32[T, 2]\n y = x\n}\n"
                    "model second {\n max T = 7\n input x : f32[T, 3]\n output y : f32[T, 3]\n y = x\n}\n";
  auto last = compile(src);
  EXPECT_OK(last);
  EXPECT_STREQ(last.m->name, "second");
  EXPECT_EQ(last.m->max_T, 7);
  auto chosen = compile(src, "first");
  EXPECT_OK(chosen);
  EXPECT_EQ(chosen.m->max_T, 2048);  // the default
  auto none = compile(src, "third");
  EXPECT_ERROR(none, "no model named 'third'");
}

// ---- every example and std layer lowers and verifies ---------------------------------------
TEST(SemaExamples, AllExamplesVerify) {
  for (const char *name : {"tiny_lm", "hybrid", "gru_kws"}) {
    std::string path = std::string(GAT_SOURCE_DIR) + "/examples/" + name + ".gat";
    size_t len;
    char *text = read_file(path.c_str(), &len);
    ASSERT_NE(text, nullptr) << path;
    auto r = compile(text, nullptr, 0, path.c_str());
    free(text);
    EXPECT_OK(r);
  }
}

TEST(SemaExamples, EveryStdLayerInstantiates) {
  const char *calls[] = {
      "swiglu(x, hidden: 24)", "geglu(x, hidden: 24)", "geglu_tanh(x, hidden: 24)", "reglu(x, hidden: 24)",
      "bilinear_glu(x, hidden: 24)", "glu(x, hidden: 24)", "gla(x, heads: 2)",
      "gated_attention(x, heads: 4, kv_heads: 2)", "gated_attention_qknorm(x, heads: 2)",
      "gru(x, hidden: 16)", "gru_reset_before(x, hidden: 16)", "lstm(x, hidden: 16)",
      "moe_ffn(x, experts: 4, hidden: 8)", "skip_gate(x)"};
  for (const char *c : calls) {
    auto r = compile("import std\n" + model("f32[T, 16]", "f32[T, 16]", std::string("  y = ") + c + " @ \"l\""));
    SCOPED_TRACE(c);
    EXPECT_OK(r);
  }
  auto g = compile("import std\n" + model("f32[T, 16]", "f32[T, 16]", "  y = gru(x, hidden: 16) @ \"gru\""));
  EXPECT_OK(g);
  EXPECT_EQ(param_shape(g.m, "gru.weight_ih_l0"), "f32[48, 16]");
  EXPECT_EQ(param_shape(g.m, "gru.bias_hh_l0"), "f32[48]");
  const IrState *h = state_named(g.m, "gru.h");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(shape_str(h->shape), "f32[16]");
}

}  // namespace
