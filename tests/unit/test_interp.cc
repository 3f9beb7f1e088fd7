// test_interp.cc — the reference interpreter (compiler/interp/interp.c) and the
// deterministic weight init (compiler/interp/weights_init.c), through the C API.
// Modules are built with the ir.c constructors; expectations are worked out
// by hand (or from the op's formula written independently here), never
// copied from the interpreter's own output. State tests check that T tokens
// in one call equal T calls of one token.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

extern "C" {
#include "interp.h"
}

namespace {

const int64_t TT = IR_DIM_T;

IrShape S(std::initializer_list<int64_t> d) {
  std::vector<int64_t> v(d);
  return ir_shape((int)v.size(), v.data());
}

IrAffine A(int var, int64_t coef = 1, int64_t c = 0) {
  IrAffine a;
  memset(&a, 0, sizeof a);
  a.c = c;
  a.nterms = 1;
  a.var[0] = var;
  a.coef[0] = coef;
  a.dyn = -1;
  return a;
}
IrAffine Dyn(int operand) {
  IrAffine a;
  memset(&a, 0, sizeof a);
  a.dyn = operand;
  a.dyn_coef = 1;
  return a;
}

struct Mod {
  Arena arena;
  IrModule *m;
  SrcLoc noloc = {0, 0, 0};
  explicit Mod(int64_t max_T = 64) {
    arena_init(&arena);
    m = ir_module_new(&arena, "t", max_T);
  }
  ~Mod() { arena_free(&arena); }
  IrBlock *top() { return m->body; }
  IrValue *res(IrOp *op, IrDType dt, IrShape sh) { return ir_op_add_result(m, op, dt, sh); }
  IrValue *input(const char *name, IrDType dt, IrShape sh) {
    ir_module_add_input(m, name, dt, sh);
    IrOp *op = ir_op_new(m, top(), IR_OP_INPUT, 0, nullptr, noloc);
    ir_op_set_str(m, op, "name", name);
    return res(op, dt, sh);
  }
  IrValue *param(const char *name, IrShape sh, IrInit init = {IR_INIT_NORMAL, 0.0, 1.0}, IrBlock *b = nullptr) {
    if (!ir_module_find_param(m, name)) ir_module_add_param(m, name, IR_F32, sh, init, noloc);
    IrOp *op = ir_op_new(m, b ? b : top(), IR_OP_PARAM, 0, nullptr, noloc);
    ir_op_set_str(m, op, "name", name);
    return res(op, IR_F32, sh);
  }
  IrValue *cnst(double v, IrDType dt, IrShape sh, IrBlock *b = nullptr) {
    IrOp *op = ir_op_new(m, b ? b : top(), IR_OP_CONST, 0, nullptr, noloc);
    ir_op_set_float(m, op, "value", v);
    return res(op, dt, sh);
  }
  IrOp *op(IrOpKind k, std::vector<IrValue *> in, IrBlock *b = nullptr) {
    return ir_op_new(m, b ? b : top(), k, (int)in.size(), in.data(), noloc);
  }
  IrValue *op1(IrOpKind k, std::vector<IrValue *> in, IrDType dt, IrShape sh, IrBlock *b = nullptr) {
    return res(op(k, in, b), dt, sh);
  }
  IrValue *fn(const char *f, std::vector<IrValue *> in, IrDType dt, IrShape sh, IrBlock *b = nullptr) {
    IrOp *o = op(in.size() == 1 ? IR_OP_UNARY : IR_OP_BINARY, in, b);
    ir_op_set_str(m, o, "fn", f);
    return res(o, dt, sh);
  }
  void output(const char *name, IrValue *v) {
    ir_module_add_output(m, name, v->dtype, v->shape);
    IrOp *o = op(IR_OP_OUTPUT, {v});
    ir_op_set_str(m, o, "name", name);
  }
};

struct TS {
  TensorSet s = {0, 0, nullptr};
  ~TS() { tensorset_free(&s); }
  TS &f(const char *name, std::vector<int64_t> dims, std::vector<float> vals) {
    Tensor *t = tensorset_add(&s, name, IR_F32, (int)dims.size(), dims.data());
    EXPECT_EQ((size_t)tensor_numel(t), vals.size()) << name;
    if (!vals.empty()) memcpy(t->data, vals.data(), 4 * vals.size());
    return *this;
  }
  TS &i(const char *name, std::vector<int64_t> dims, std::vector<int32_t> vals) {
    Tensor *t = tensorset_add(&s, name, IR_I32, (int)dims.size(), dims.data());
    EXPECT_EQ((size_t)tensor_numel(t), vals.size()) << name;
    if (!vals.empty()) memcpy(t->data, vals.data(), 4 * vals.size());
    return *this;
  }
  std::vector<float> fv(const char *name) const {
    Tensor *t = tensorset_find(&s, name);
    if (!t) return {};
    float *p = (float *)t->data;
    return std::vector<float>(p, p + tensor_numel(t));
  }
  std::vector<int32_t> iv(const char *name) const {
    Tensor *t = tensorset_find(&s, name);
    if (!t) return {};
    int32_t *p = (int32_t *)t->data;
    return std::vector<int32_t>(p, p + tensor_numel(t));
  }
};

// Runs one call on a fresh session; returns the error ("" on success).
std::string run1(Mod &M, const TS &w, const TS &in, TS &out) {
  char err[512] = "";
  InterpSession *s = interp_new(M.m, &w.s, err, sizeof err);
  if (!s) return err;
  int rc = interp_forward(s, &in.s, &out.s, err, sizeof err);
  interp_free(s);
  return rc == 0 ? "" : (err[0] ? err : "error without message");
}

void expect_near(const std::vector<float> &got, const std::vector<double> &want, double tol = 1e-6) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); i++)
    EXPECT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << "element " << i;
}

bool contains(const std::string &s, const char *needle) { return s.find(needle) != std::string::npos; }

}  // namespace

// ---- elementwise ------------------------------------------------------------

TEST(InterpElementwise, UnaryFunctions) {
  const std::vector<float> xs = {-30.0f, -1.5f, 0.0f, 0.7f, 25.0f};
  struct Case {
    const char *fn;
    double (*ref)(double);
  } cases[] = {
      {"neg", [](double x) { return -x; }},
      {"exp", [](double x) { return std::exp(x); }},
      {"abs", [](double x) { return std::fabs(x); }},
      {"tanh", [](double x) { return std::tanh(x); }},
      {"sigmoid", [](double x) { return 1 / (1 + std::exp(-x)); }},
      {"logsigmoid", [](double x) { return -std::log(1 + std::exp(-x)); }},
      {"silu", [](double x) { return x / (1 + std::exp(-x)); }},
      {"relu", [](double x) { return x > 0 ? x : 0.0; }},
      {"gelu", [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }},
      {"gelu_tanh",
       [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }},
      {"softplus", [](double x) { return x > 20 ? x : std::log(1 + std::exp(x)); }},
      {"not", [](double x) { return x == 0 ? 1.0 : 0.0; }},
  };
  for (const Case &c : cases) {
    Mod M;
    IrValue *x = M.input("x", IR_F32, S({5}));
    M.output("y", M.fn(c.fn, {x}, IR_F32, S({5})));
    TS w, in, out;
    in.f("x", {5}, xs);
    ASSERT_EQ(run1(M, w, in, out), "") << c.fn;
    std::vector<double> want;
    for (float v : xs) want.push_back(c.ref(v));
    SCOPED_TRACE(c.fn);
    expect_near(out.fv("y"), want, 2e-7);
  }
  // log/sqrt/rsqrt on positive inputs
  Mod M;
  IrValue *x = M.input("x", IR_F32, S({3}));
  M.output("log", M.fn("log", {x}, IR_F32, S({3})));
  M.output("rsqrt", M.fn("rsqrt", {x}, IR_F32, S({3})));
  TS w, in, out;
  in.f("x", {3}, {0.25f, 1.0f, 4.0f});
  ASSERT_EQ(run1(M, w, in, out), "");
  expect_near(out.fv("log"), {std::log(0.25), 0.0, std::log(4.0)});
  expect_near(out.fv("rsqrt"), {2.0, 1.0, 0.5});
}

TEST(InterpElementwise, BinaryBroadcastSelectCast) {
  Mod M;
  IrValue *a = M.input("a", IR_F32, S({2, 3}));
  IrValue *b = M.input("b", IR_F32, S({3}));
  IrValue *col = M.input("col", IR_F32, S({2, 1}));
  M.output("sub", M.fn("sub", {a, b}, IR_F32, S({2, 3})));
  M.output("outer", M.fn("mul", {col, b}, IR_F32, S({2, 3})));
  M.output("lt", M.fn("lt", {a, b}, IR_F32, S({2, 3})));
  M.output("max", M.fn("max", {a, b}, IR_F32, S({2, 3})));
  IrValue *cond = M.fn("gt", {a, b}, IR_F32, S({2, 3}));
  M.output("sel", M.op1(IR_OP_SELECT, {cond, a, col}, IR_F32, S({2, 3})));
  M.output("cast", M.op1(IR_OP_CAST, {a}, IR_I32, S({2, 3})));
  TS w, in, out;
  in.f("a", {2, 3}, {1, 2, 3, -4.5f, 5, 6.75f}).f("b", {3}, {10, 2, 1}).f("col", {2, 1}, {-1, 3});
  ASSERT_EQ(run1(M, w, in, out), "");
  expect_near(out.fv("sub"), {-9, 0, 2, -14.5, 3, 5.75});
  expect_near(out.fv("outer"), {-10, -2, -1, 30, 6, 3});
  expect_near(out.fv("lt"), {1, 0, 0, 1, 0, 0});
  expect_near(out.fv("max"), {10, 2, 3, 10, 5, 6.75});
  expect_near(out.fv("sel"), {-1, -1, 3, 3, 5, 6.75});
  EXPECT_EQ(out.iv("cast"), (std::vector<int32_t>{1, 2, 3, -4, 5, 6}));
}

TEST(InterpElementwise, IntegerArithmetic) {
  Mod M;
  IrValue *a = M.input("a", IR_I32, S({4}));
  IrValue *b = M.input("b", IR_I32, S({4}));
  M.output("div", M.fn("div", {a, b}, IR_I32, S({4})));
  M.output("mod", M.fn("mod", {a, b}, IR_I32, S({4})));
  M.output("mul", M.fn("mul", {a, b}, IR_I32, S({4})));
  TS w, in, out;
  in.i("a", {4}, {-7, 7, 65536, 9}).i("b", {4}, {2, -2, 65536, 3});
  ASSERT_EQ(run1(M, w, in, out), "");
  EXPECT_EQ(out.iv("div"), (std::vector<int32_t>{-3, -3, 1, 3}));  // truncation toward zero
  EXPECT_EQ(out.iv("mod"), (std::vector<int32_t>{-1, 1, 0, 0}));   // sign of the dividend
  EXPECT_EQ(out.iv("mul"), (std::vector<int32_t>{-14, -14, 0, 27}));  // 2^32 wraps to 0
  TS in2, out2;
  in2.i("a", {4}, {1, 2, 3, 4}).i("b", {4}, {1, 0, 1, 1});
  std::string err = run1(M, w, in2, out2);
  EXPECT_TRUE(contains(err, "division by zero")) << err;
}

// ---- contractions, reductions, norms -------------------------------------------

TEST(InterpMath, MatmulLinear) {
  Mod M;
  IrValue *a = M.input("a", IR_F32, S({2, 3}));
  IrValue *b = M.input("b", IR_F32, S({3, 2}));
  M.output("ab", M.op1(IR_OP_MATMUL, {a, b}, IR_F32, S({2, 2})));
  IrValue *ba = M.input("ba", IR_F32, S({2, 1, 3}));  // batch 2, broadcast against b
  M.output("bab", M.op1(IR_OP_MATMUL, {ba, b}, IR_F32, S({2, 1, 2})));
  IrValue *x = M.input("x", IR_F32, S({TT, 2}));
  IrValue *wt = M.param("w", S({3, 2}));
  IrValue *bias = M.param("bias", S({3}));
  M.output("lin", M.op1(IR_OP_LINEAR, {x, wt, bias}, IR_F32, S({TT, 3})));
  TS w, in, out;
  w.f("w", {3, 2}, {1, 0, 0, 1, 1, 1}).f("bias", {3}, {0.5f, -0.5f, 0});
  in.f("a", {2, 3}, {1, 2, 3, 4, 5, 6}).f("b", {3, 2}, {7, 8, 9, 10, 11, 12});
  in.f("ba", {2, 1, 3}, {1, 0, 0, 0, 0, 2}).f("x", {2, 2}, {1, 2, -3, 4});
  ASSERT_EQ(run1(M, w, in, out), "");
  expect_near(out.fv("ab"), {58, 64, 139, 154});
  expect_near(out.fv("bab"), {7, 8, 22, 24});
  expect_near(out.fv("lin"), {1.5, 1.5, 3, -2.5, 3.5, 1});
}

TEST(InterpMath, ReduceSoftmaxNorms) {
  Mod M;
  IrValue *x = M.input("x", IR_F32, S({2, 3}));
  const int64_t ax1[] = {1}, ax0[] = {0}, ax01[] = {0, 1};
  IrOp *r1 = M.op(IR_OP_REDUCE, {x});
  ir_op_set_str(M.m, r1, "kind", "sum");
  ir_op_set_ints(M.m, r1, "axes", 1, ax1);
  M.output("sum1", M.res(r1, IR_F32, S({2})));
  IrOp *r2 = M.op(IR_OP_REDUCE, {x});
  ir_op_set_str(M.m, r2, "kind", "max");
  ir_op_set_ints(M.m, r2, "axes", 1, ax0);
  M.output("max0", M.res(r2, IR_F32, S({3})));
  IrOp *r3 = M.op(IR_OP_REDUCE, {x});
  ir_op_set_str(M.m, r3, "kind", "mean");
  ir_op_set_ints(M.m, r3, "axes", 2, ax01);
  M.output("mean", M.res(r3, IR_F32, S({})));
  IrOp *r4 = M.op(IR_OP_REDUCE, {x});
  ir_op_set_str(M.m, r4, "kind", "min");
  ir_op_set_ints(M.m, r4, "axes", 1, ax1);
  M.output("min1", M.res(r4, IR_F32, S({2})));
  IrOp *sm = M.op(IR_OP_SOFTMAX, {x});
  ir_op_set_int(M.m, sm, "axis", -1);
  M.output("sm", M.res(sm, IR_F32, S({2, 3})));
  IrValue *v = M.input("v", IR_F32, S({2}));
  IrValue *g = M.param("g", S({2}));
  IrOp *rn = M.op(IR_OP_RMS_NORM, {v, g});
  ir_op_set_float(M.m, rn, "eps", 0.0);
  M.output("rms", M.res(rn, IR_F32, S({2})));
  IrOp *rn1 = M.op(IR_OP_RMS_NORM, {v, g});
  ir_op_set_float(M.m, rn1, "eps", 0.0);
  ir_op_set_int(M.m, rn1, "plus_one", 1);
  M.output("rms1", M.res(rn1, IR_F32, S({2})));
  IrValue *bb = M.param("bb", S({2}));
  IrOp *ln = M.op(IR_OP_LAYER_NORM, {v, g, bb});
  ir_op_set_float(M.m, ln, "eps", 1e-5);
  M.output("ln", M.res(ln, IR_F32, S({2})));
  IrOp *l2 = M.op(IR_OP_L2_NORM, {v});
  ir_op_set_float(M.m, l2, "eps", 0.0);
  M.output("l2", M.res(l2, IR_F32, S({2})));
  TS w, in, out;
  w.f("g", {2}, {1, 2}).f("bb", {2}, {10, 20});
  in.f("x", {2, 3}, {1, 2, 3, 4, -5, 6}).f("v", {2}, {3, 4});
  ASSERT_EQ(run1(M, w, in, out), "");
  expect_near(out.fv("sum1"), {6, 5});
  expect_near(out.fv("max0"), {4, 2, 6});
  expect_near(out.fv("mean"), {11.0 / 6});
  expect_near(out.fv("min1"), {1, -5});
  double z1 = std::exp(1) + std::exp(2) + std::exp(3), z2 = std::exp(4) + std::exp(-5) + std::exp(6);
  expect_near(out.fv("sm"), {std::exp(1) / z1, std::exp(2) / z1, std::exp(3) / z1, std::exp(4) / z2,
                             std::exp(-5) / z2, std::exp(6) / z2});
  double rms = std::sqrt(12.5);
  expect_near(out.fv("rms"), {3 / rms, 8 / rms});
  expect_near(out.fv("rms1"), {6 / rms, 12 / rms});
  // layer norm of [3, 4]: mean 3.5, var 0.25
  double inv = 1 / std::sqrt(0.25 + 1e-5);
  expect_near(out.fv("ln"), {-0.5 * inv + 10, 0.5 * inv * 2 + 20});
  expect_near(out.fv("l2"), {0.6, 0.8});
}

// ---- data movement -------------------------------------------------------------

TEST(InterpData, GatherWithLocationInError) {
  int file = diag_add_file("ex.gat", "line1\nline2\n");
  Mod M;
  IrValue *ids = M.input("ids", IR_I32, S({TT}));
  IrValue *tab = M.param("emb", S({3, 2}));
  IrOp *g = M.op(IR_OP_GATHER, {tab, ids});
  g->loc = SrcLoc{file, 9, 7};
  M.output("y", M.res(g, IR_F32, S({TT, 2})));
  TS w, in, out;
  w.f("emb", {3, 2}, {0, 1, 10, 11, 20, 21});
  in.i("ids", {3}, {2, 0, 2});
  ASSERT_EQ(run1(M, w, in, out), "");
  expect_near(out.fv("y"), {20, 21, 0, 1, 20, 21});
  TS in2, out2;
  in2.i("ids", {2}, {1, 3});
  std::string err = run1(M, w, in2, out2);
  EXPECT_TRUE(contains(err, "gather")) << err;
  EXPECT_TRUE(contains(err, "ex.gat:9:7")) << err;
  EXPECT_TRUE(contains(err, "index 3")) << err;
  EXPECT_TRUE(contains(err, "[0, 3)")) << err;
  TS in3, out3;
  in3.i("ids", {1}, {-1});
  EXPECT_TRUE(contains(run1(M, w, in3, out3), "out of range"));
}

TEST(InterpData, TopkTiesAndShapes) {
  Mod M;
  IrValue *x = M.input("x", IR_F32, S({2, 4}));
  IrOp *tk = M.op(IR_OP_TOPK, {x});
  ir_op_set_int(M.m, tk, "k", 2);
  M.output("v", M.res(tk, IR_F32, S({2, 2})));
  M.output("i", M.res(tk, IR_I32, S({2, 2})));
  TS w, in, out;
  in.f("x", {2, 4}, {1, 3, 3, 2, -1, -2, -0.5f, -3});
  ASSERT_EQ(run1(M, w, in, out), "");
  expect_near(out.fv("v"), {3, 3, -0.5, -1});
  EXPECT_EQ(out.iv("i"), (std::vector<int32_t>{1, 2, 2, 0}));
}

TEST(InterpData, ReshapeTransposeConcatSplitSlice) {
  Mod M;
  IrValue *x = M.input("x", IR_F32, S({2, 3}));
  M.output("r", M.op1(IR_OP_RESHAPE, {x}, IR_F32, S({3, 2})));
  IrOp *tr = M.op(IR_OP_TRANSPOSE, {x});
  const int64_t perm[] = {1, 0};
  ir_op_set_ints(M.m, tr, "perm", 2, perm);
  M.output("t", M.res(tr, IR_F32, S({3, 2})));
  IrOp *cc = M.op(IR_OP_CONCAT, {x, x});
  ir_op_set_int(M.m, cc, "axis", 1);
  M.output("c", M.res(cc, IR_F32, S({2, 6})));
  IrOp *sp = M.op(IR_OP_SPLIT, {x});
  const int64_t sizes[] = {1, 2};
  ir_op_set_int(M.m, sp, "axis", 1);
  ir_op_set_ints(M.m, sp, "sizes", 2, sizes);
  M.output("s0", M.res(sp, IR_F32, S({2, 1})));
  M.output("s1", M.res(sp, IR_F32, S({2, 2})));
  IrOp *sl = M.op(IR_OP_SLICE, {x});
  ir_op_set_int(M.m, sl, "axis", 0);
  ir_op_set_int(M.m, sl, "start", 1);
  ir_op_set_int(M.m, sl, "stop", 2);
  M.output("sl", M.res(sl, IR_F32, S({1, 3})));
  TS w, in, out;
  in.f("x", {2, 3}, {1, 2, 3, 4, 5, 6});
  ASSERT_EQ(run1(M, w, in, out), "");
  expect_near(out.fv("r"), {1, 2, 3, 4, 5, 6});
  expect_near(out.fv("t"), {1, 4, 2, 5, 3, 6});
  expect_near(out.fv("c"), {1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6});
  expect_near(out.fv("s0"), {1, 4});
  expect_near(out.fv("s1"), {2, 3, 5, 6});
  expect_near(out.fv("sl"), {4, 5, 6});
}

TEST(InterpData, IndexExpressions) {
  Mod M;
  IrValue *a = M.input("a", IR_F32, S({2, 3}));
  IrValue *v = M.input("v", IR_F32, S({3}));
  // mv[v0] = sum_{v1 < 3} a[v0, v1] * v[v1]
  IrOp *mv = M.op(IR_OP_INDEX, {a, v});
  IrAffine la[2] = {A(0), A(1)}, lv[1] = {A(1)};
  mv->expr = ir_expr_reduce(M.m, IR_RED_SUM, 1, 3,
                            ir_expr_binary(M.m, IR_FN_MUL, ir_expr_load(M.m, 0, 2, la), ir_expr_load(M.m, 1, 1, lv)));
  M.output("mv", M.res(mv, IR_F32, S({2})));
  // sh[v0, v1] = a[1 - v0, 2*v1] + v0 (affine with negative coefficient, var as value)
  IrOp *sh = M.op(IR_OP_INDEX, {a});
  IrAffine ls[2] = {A(0, -1, 1), A(1, 2, 0)};
  sh->expr = ir_expr_binary(M.m, IR_FN_ADD, ir_expr_load(M.m, 0, 2, ls), ir_expr_var(M.m, 0));
  M.output("sh", M.res(sh, IR_F32, S({2, 2})));
  // mx[v0] = max_{v1 < 3} (a[v0, v1] > 2 ? a[v0, v1] : -a[v0, v1])
  IrOp *mx = M.op(IR_OP_INDEX, {a});
  IrExpr *ld = ir_expr_load(M.m, 0, 2, la);
  mx->expr = ir_expr_reduce(
      M.m, IR_RED_MAX, 1, 3,
      ir_expr_select(M.m, ir_expr_binary(M.m, IR_FN_GT, ld, ir_expr_const(M.m, 2)), ld, ir_expr_unary(M.m, IR_FN_NEG, ld)));
  M.output("mx", M.res(mx, IR_F32, S({2})));
  TS w, in, out;
  in.f("a", {2, 3}, {1, 2, 3, -4, -5, 6}).f("v", {3}, {1, 10, 100});
  ASSERT_EQ(run1(M, w, in, out), "");
  expect_near(out.fv("mv"), {321, 546});
  expect_near(out.fv("sh"), {-4, 6, 1 + 1, 3 + 1});
  expect_near(out.fv("mx"), {3, 6});
}

// ---- sequence ops with state -------------------------------------------------

namespace {

// A module whose outputs depend on persistent state: scan (cumulative sum
// with a dynamic load of x[t]), conv1d with a tail, attention with a KV cache,
// rope and position. Used to compare one call of T tokens with T calls.
struct SeqModel {
  Mod M{16};
  SeqModel(int64_t window = 0) {
    IrModule *m = M.m;
    IrValue *x = M.input("x", IR_F32, S({TT, 2}));
    // scan: s' = s * 0.5 + x[t]; emit s'
    int slot = ir_module_add_state(m, "scan.s", IR_F32, S({2}), 1.0);
    IrOp *sc = M.op(IR_OP_SCAN, {});
    const int64_t states[] = {slot};
    ir_op_set_ints(m, sc, "states", 1, states);
    IrBlock *r = ir_op_add_region(m, sc);
    IrValue *t = ir_block_add_arg(m, r, IR_I32, S({}));
    IrValue *sv = ir_block_add_arg(m, r, IR_F32, S({2}));
    IrOp *ld = M.op(IR_OP_INDEX, {x, t}, r);
    IrAffine li[2] = {Dyn(1), A(0)};
    ld->expr = ir_expr_load(m, 0, 2, li);
    IrValue *xt = M.res(ld, IR_F32, S({2}));
    IrValue *half = M.cnst(0.5, IR_F32, S({}), r);
    IrValue *sh = M.fn("mul", {sv, half}, IR_F32, S({2}), r);
    IrValue *s2 = M.fn("add", {sh, xt}, IR_F32, S({2}), r);
    IrValue *ys[2] = {s2, s2};
    ir_block_set_yields(m, r, 2, ys);
    M.output("scan", M.res(sc, IR_F32, S({TT, 2})));
    // conv1d, W = 3, silu
    int cs = ir_module_add_state(m, "conv.tail", IR_F32, S({2, 2}), 0.0);
    IrValue *cw = M.param("conv.weight", S({2, 1, 3}));
    IrValue *cb = M.param("conv.bias", S({2}));
    IrOp *cv = M.op(IR_OP_CONV1D, {x, cw, cb});
    ir_op_set_str(m, cv, "act", "silu");
    ir_op_set_int(m, cv, "state", cs);
    M.output("conv", M.res(cv, IR_F32, S({TT, 2})));
    // attention: q [T, 2, 2] from x, k/v [T, 1, 2], GQA 2:1, biases
    IrValue *q = M.op1(IR_OP_RESHAPE, {M.op1(IR_OP_CONCAT, {x, x}, IR_F32, S({TT, 4}))}, IR_F32, S({TT, 2, 2}));
    ir_op_set_int(m, q->def->in[0]->def, "axis", 1);
    IrValue *qr = M.op1(IR_OP_ROPE, {q}, IR_F32, S({TT, 2, 2}));
    ir_op_set_float(m, qr->def, "base", 100.0);
    ir_op_set_int(m, qr->def, "dims", 2);
    M.output("rope", qr);
    IrValue *k = M.op1(IR_OP_RESHAPE, {M.fn("tanh", {x}, IR_F32, S({TT, 2}))}, IR_F32, S({TT, 1, 2}));
    IrValue *v = M.op1(IR_OP_RESHAPE, {x}, IR_F32, S({TT, 1, 2}));
    IrValue *qb = M.fn("mul", {x, M.cnst(0.25, IR_F32, S({}))}, IR_F32, S({TT, 2}));
    IrValue *kb = M.fn("neg", {qb}, IR_F32, S({TT, 2}));
    int sk = ir_module_add_state(m, "kv.k", IR_F32, S({16, 1, 2}), 0.0);
    int sv2 = ir_module_add_state(m, "kv.v", IR_F32, S({16, 1, 2}), 0.0);
    int skb = ir_module_add_state(m, "kv.kb", IR_F32, S({16, 2}), 0.0);
    IrOp *at = M.op(IR_OP_ATTENTION, {qr, k, v, qb, kb});
    ir_op_set_float(m, at, "scale", 0.7);
    ir_op_set_int(m, at, "causal", 1);
    ir_op_set_int(m, at, "window", window);
    ir_op_set_int(m, at, "state_k", sk);
    ir_op_set_int(m, at, "state_v", sv2);
    ir_op_set_int(m, at, "state_kb", skb);
    M.output("attn", M.res(at, IR_F32, S({TT, 2, 2})));
    M.output("pos", M.op1(IR_OP_POSITION, {}, IR_I32, S({TT})));
  }
  void weights(TS &w) {
    w.f("conv.weight", {2, 1, 3}, {0.5f, -1, 2, 1, 0.25f, -0.5f}).f("conv.bias", {2}, {0.1f, -0.2f});
  }
};

const std::vector<float> kSeqX = {0.3f, -1.2f, 0.8f, 0.4f, -0.6f, 1.5f, 2.0f, -0.1f, 0.05f, 0.9f};

}  // namespace

TEST(InterpState, ScanConvRopeByHand) {
  SeqModel sm;
  TS w, in, out;
  sm.weights(w);
  in.f("x", {3, 2}, {1, 2, 3, 4, 5, 6});
  ASSERT_EQ(run1(sm.M, w, in, out), "");
  // scan from s = 1: s1 = 0.5 + x0, ...
  expect_near(out.fv("scan"), {1.5, 2.5, 3.75, 5.25, 6.875, 8.625});
  // conv channel 0 at t = 2: 0.5*1 - 1*3 + 2*5 + 0.1 = 7.6 -> silu
  auto silu = [](double z) { return z / (1 + std::exp(-z)); };
  std::vector<float> conv = out.fv("conv");
  ASSERT_EQ(conv.size(), 6u);
  EXPECT_NEAR(conv[0], silu(2 * 1 + 0.1), 1e-6);
  EXPECT_NEAR(conv[1], silu(-0.5 * 2 - 0.2), 1e-6);
  EXPECT_NEAR(conv[2], silu(-1 * 1 + 2 * 3 + 0.1), 1e-6);
  EXPECT_NEAR(conv[4], silu(0.5 * 1 - 1 * 3 + 2 * 5 + 0.1), 1e-6);
  EXPECT_NEAR(conv[5], silu(1 * 2 + 0.25 * 4 - 0.5 * 6 - 0.2), 1e-6);
  // rope dims = 2 of D = 2 per head, base 100: pair (x0, x1) rotated by angle = pos
  std::vector<float> rope = out.fv("rope");
  ASSERT_EQ(rope.size(), 12u);
  EXPECT_NEAR(rope[0], 1, 1e-6);
  EXPECT_NEAR(rope[1], 2, 1e-6);
  EXPECT_NEAR(rope[4], 3 * std::cos(1.0) - 4 * std::sin(1.0), 1e-6);
  EXPECT_NEAR(rope[5], 4 * std::cos(1.0) + 3 * std::sin(1.0), 1e-6);
  EXPECT_NEAR(rope[10], 5 * std::cos(2.0) - 6 * std::sin(2.0), 1e-6);
  EXPECT_EQ(out.iv("pos"), (std::vector<int32_t>{0, 1, 2}));
}

TEST(InterpState, AttentionByHand) {
  SeqModel sm;
  TS w, in, out;
  sm.weights(w);
  in.f("x", {2, 2}, {1, 2, 3, 4});
  ASSERT_EQ(run1(sm.M, w, in, out), "");
  std::vector<float> at = out.fv("attn"), rope = out.fv("rope");
  ASSERT_EQ(at.size(), 8u);
  // Position 0 sees only itself: output = v0 = x0 for both heads.
  EXPECT_NEAR(at[0], 1, 1e-6);
  EXPECT_NEAR(at[1], 2, 1e-6);
  EXPECT_NEAR(at[2], 1, 1e-6);
  EXPECT_NEAR(at[3], 2, 1e-6);
  // Position 1, head h: logits_j = 0.7 * q1h . tanh(x_j) + 0.25 x1[h] - 0.25 xj[h]
  double x[2][2] = {{1, 2}, {3, 4}};
  for (int h = 0; h < 2; h++) {
    double l[2];
    for (int j = 0; j < 2; j++) {
      double dot = rope[4 + 2 * h] * std::tanh(x[j][0]) + rope[4 + 2 * h + 1] * std::tanh(x[j][1]);
      l[j] = 0.7 * dot + 0.25 * x[1][h] - 0.25 * x[j][h];
    }
    double m = std::max(l[0], l[1]), e0 = std::exp(l[0] - m), e1 = std::exp(l[1] - m);
    double p0 = e0 / (e0 + e1), p1 = e1 / (e0 + e1);
    EXPECT_NEAR(at[4 + 2 * h], p0 * 1 + p1 * 3, 1e-6);
    EXPECT_NEAR(at[4 + 2 * h + 1], p0 * 2 + p1 * 4, 1e-6);
  }
  // Window 1: every query sees only its own key.
  SeqModel sw(1);
  TS out1;
  ASSERT_EQ(run1(sw.M, w, in, out1), "");
  expect_near(out1.fv("attn"), {1, 2, 1, 2, 3, 4, 3, 4});
}

TEST(InterpState, OneCallEqualsTokenByToken) {
  for (int window : {0, 2}) {
    SeqModel sm(window);
    TS w;
    sm.weights(w);
    char err[512];
    InterpSession *all = interp_new(sm.M.m, &w.s, err, sizeof err);
    ASSERT_NE(all, nullptr) << err;
    TS in, out;
    in.f("x", {5, 2}, kSeqX);
    ASSERT_EQ(interp_forward(all, &in.s, &out.s, err, sizeof err), 0) << err;
    InterpSession *step = interp_new(sm.M.m, &w.s, err, sizeof err);
    // Split 1 + 2 + 1 + 1 tokens: state must carry over exactly.
    int splits[] = {1, 2, 1, 1}, at = 0;
    std::vector<std::vector<float>> got(5);
    const char *names[] = {"scan", "conv", "rope", "attn", "pos"};
    for (int n : splits) {
      TS i1, o1;
      i1.f("x", {n, 2}, std::vector<float>(kSeqX.begin() + 2 * at, kSeqX.begin() + 2 * (at + n)));
      ASSERT_EQ(interp_forward(step, &i1.s, &o1.s, err, sizeof err), 0) << err;
      for (int k = 0; k < 4; k++) {
        std::vector<float> v = o1.fv(names[k]);
        got[k].insert(got[k].end(), v.begin(), v.end());
      }
      std::vector<int32_t> p = o1.iv("pos");
      for (int32_t q : p) got[4].push_back((float)q);
      at += n;
    }
    for (int k = 0; k < 4; k++) {
      std::vector<float> ref = out.fv(names[k]);
      ASSERT_EQ(ref.size(), got[k].size()) << names[k];
      for (size_t i = 0; i < ref.size(); i++) EXPECT_EQ(ref[i], got[k][i]) << names[k] << " element " << i;
    }
    EXPECT_EQ(got[4], (std::vector<float>{0, 1, 2, 3, 4}));
    // After a reset the session starts over.
    interp_reset(step);
    TS i2, o2;
    i2.f("x", {5, 2}, kSeqX);
    ASSERT_EQ(interp_forward(step, &i2.s, &o2.s, err, sizeof err), 0) << err;
    EXPECT_EQ(o2.fv("attn"), out.fv("attn"));
    EXPECT_EQ(o2.fv("scan"), out.fv("scan"));
    interp_free(all);
    interp_free(step);
  }
}

TEST(InterpState, MaxTIsEnforcedAcrossCalls) {
  SeqModel sm;  // max_T = 16
  TS w;
  sm.weights(w);
  char err[512];
  InterpSession *s = interp_new(sm.M.m, &w.s, err, sizeof err);
  ASSERT_NE(s, nullptr);
  TS in;
  in.f("x", {5, 2}, kSeqX);
  for (int i = 0; i < 3; i++) {
    TS out;
    ASSERT_EQ(interp_forward(s, &in.s, &out.s, err, sizeof err), 0) << err;
  }
  TS out;
  EXPECT_EQ(interp_forward(s, &in.s, &out.s, err, sizeof err), -1);  // 15 + 5 > 16
  EXPECT_TRUE(contains(err, "max_T = 16")) << err;
  EXPECT_EQ(out.s.n, 0);
  TS one, out1;
  one.f("x", {1, 2}, {1, 1});
  EXPECT_EQ(interp_forward(s, &one.s, &out1.s, err, sizeof err), 0) << err;  // 16 fits exactly
  interp_free(s);
}

// ---- mixture and skip -----------------------------------------------------------

TEST(InterpRegions, MixtureWeightsAndUnusedExperts) {
  Mod M;
  IrModule *m = M.m;
  IrValue *idx = M.input("idx", IR_I32, S({TT, 2}));
  IrValue *wt = M.input("w", IR_F32, S({TT, 2}));
  IrValue *x = M.input("x", IR_F32, S({TT, 2}));
  IrValue *tab = M.param("tab", S({2, 2}));
  IrOp *mx = M.op(IR_OP_MIXTURE, {idx, wt, x});
  ir_op_set_int(m, mx, "experts", 3);
  // expert 0: y = 2x; expert 1: y = x + 1; expert 2: gathers row 99 (fails if ever run)
  IrBlock *r0 = ir_op_add_region(m, mx);
  IrValue *a0 = ir_block_add_arg(m, r0, IR_F32, S({TT, 2}));
  IrValue *y0 = M.fn("mul", {a0, M.cnst(2, IR_F32, S({}), r0)}, IR_F32, S({TT, 2}), r0);
  ir_block_set_yields(m, r0, 1, &y0);
  IrBlock *r1 = ir_op_add_region(m, mx);
  IrValue *a1 = ir_block_add_arg(m, r1, IR_F32, S({TT, 2}));
  IrValue *y1 = M.fn("add", {a1, M.cnst(1, IR_F32, S({}), r1)}, IR_F32, S({TT, 2}), r1);
  ir_block_set_yields(m, r1, 1, &y1);
  IrBlock *r2 = ir_op_add_region(m, mx);
  ir_block_add_arg(m, r2, IR_F32, S({TT, 2}));
  IrValue *bad = M.cnst(99, IR_I32, S({TT}), r2);
  IrValue *y2 = M.op1(IR_OP_GATHER, {tab, bad}, IR_F32, S({TT, 2}), r2);
  ir_block_set_yields(m, r2, 1, &y2);
  M.output("y", M.res(mx, IR_F32, S({TT, 2})));
  TS w, in, out;
  w.f("tab", {2, 2}, {0, 0, 0, 0});
  in.i("idx", {3, 2}, {0, 1, 1, 0, 1, 1}).f("w", {3, 2}, {0.5f, 0.25f, 0.75f, 0.125f, 1, 2});
  in.f("x", {3, 2}, {1, 2, 3, 4, 5, 6});
  ASSERT_EQ(run1(M, w, in, out), "");
  expect_near(out.fv("y"), {0.5 * 2 + 0.25 * 2, 0.5 * 4 + 0.25 * 3, 0.75 * 4 + 0.125 * 6, 0.75 * 5 + 0.125 * 8,
                            3 * 6, 3 * 7});
  TS in2, out2;
  in2.i("idx", {1, 2}, {0, 2}).f("w", {1, 2}, {1, 1}).f("x", {1, 2}, {1, 1});
  EXPECT_TRUE(contains(run1(M, w, in2, out2), "index 99"));  // expert 2 runs when chosen
  TS in3, out3;
  in3.i("idx", {1, 2}, {0, 3}).f("w", {1, 2}, {1, 1}).f("x", {1, 2}, {1, 1});
  std::string err = run1(M, w, in3, out3);
  EXPECT_TRUE(contains(err, "mixture")) << err;
  EXPECT_TRUE(contains(err, "expert index 3")) << err;
}

TEST(InterpRegions, SkipKeepsPrevRows) {
  Mod M;
  IrModule *m = M.m;
  IrValue *cond = M.input("cond", IR_F32, S({TT}));
  IrValue *prev = M.input("prev", IR_F32, S({TT, 2}));
  IrValue *x = M.input("x", IR_F32, S({TT, 2}));
  IrOp *sk = M.op(IR_OP_SKIP, {cond, prev, x});
  IrBlock *r = ir_op_add_region(m, sk);
  IrValue *a = ir_block_add_arg(m, r, IR_F32, S({TT, 2}));
  // y = 10 x + position (positions of the routed rows are absolute)
  IrValue *p = M.op1(IR_OP_CAST, {M.op1(IR_OP_POSITION, {}, IR_I32, S({TT}), r)}, IR_F32, S({TT}), r);
  IrValue *p2 = M.op1(IR_OP_RESHAPE, {p}, IR_F32, S({TT, 1}), r);
  IrValue *y = M.fn("add", {M.fn("mul", {a, M.cnst(10, IR_F32, S({}), r)}, IR_F32, S({TT, 2}), r), p2}, IR_F32,
                    S({TT, 2}), r);
  ir_block_set_yields(m, r, 1, &y);
  M.output("y", M.res(sk, IR_F32, S({TT, 2})));
  TS w, in, out;
  in.f("cond", {3}, {0, 1, 0}).f("prev", {3, 2}, {-1, -2, -3, -4, -5, -6}).f("x", {3, 2}, {1, 2, 3, 4, 5, 6});
  ASSERT_EQ(run1(M, w, in, out), "");
  expect_near(out.fv("y"), {10, 20, -3, -4, 52, 62});
  TS in2, out2;  // every row skipped: the region never runs
  in2.f("cond", {2}, {1, 1}).f("prev", {2, 2}, {7, 8, 9, 10}).f("x", {2, 2}, {0, 0, 0, 0});
  ASSERT_EQ(run1(M, w, in2, out2), "");
  expect_near(out2.fv("y"), {7, 8, 9, 10});
}

// ---- error paths ---------------------------------------------------------------------

TEST(InterpErrors, Inputs) {
  Mod M(8);
  IrValue *tok = M.input("tokens", IR_I32, S({TT}));
  IrValue *f = M.input("feat", IR_F32, S({TT, 3}));
  M.output("t", tok);
  M.output("f", f);
  TS w;
  struct Case {
    TS in;
    const char *needle[3];
  };
  std::vector<std::pair<std::function<void(TS &)>, std::vector<const char *>>> cases = {
      {[](TS &i) { i.f("feat", {2, 3}, std::vector<float>(6)); }, {"missing input 'tokens'"}},
      {[](TS &i) { i.f("tokens", {2}, {0, 0}).f("feat", {2, 3}, std::vector<float>(6)); },
       {"input 'tokens'", "dtype f32", "i32[T]"}},
      {[](TS &i) { i.i("tokens", {2, 1}, {0, 0}).f("feat", {2, 3}, std::vector<float>(6)); },
       {"input 'tokens'", "rank 2"}},
      {[](TS &i) { i.i("tokens", {2}, {0, 0}).f("feat", {2, 4}, std::vector<float>(8)); },
       {"input 'feat'", "dimension 1 is 4", "f32[T, 3]"}},
      {[](TS &i) { i.i("tokens", {2}, {0, 0}).f("feat", {3, 3}, std::vector<float>(9)); },
       {"input 'feat'", "dimension 0 is 3", "T = 2"}},
      {[](TS &i) { i.i("tokens", {0}, {}).f("feat", {0, 3}, {}); }, {"T = 0"}},
      {[](TS &i) { i.i("tokens", {9}, std::vector<int32_t>(9)).f("feat", {9, 3}, std::vector<float>(27)); },
       {"max_T = 8"}},
      {[](TS &i) {
         i.i("tokens", {1}, {0}).f("feat", {1, 3}, {0, 0, 0}).f("extra", {1}, {0});
       },
       {"unexpected input 'extra'"}},
  };
  for (auto &c : cases) {
    TS in, out;
    c.first(in);
    std::string err = run1(M, w, in, out);
    for (const char *n : c.second) EXPECT_TRUE(contains(err, n)) << "message: " << err << "\nmissing: " << n;
    EXPECT_EQ(out.s.n, 0);
  }
  TS in, out;
  in.i("tokens", {2}, {4, 5}).f("feat", {2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(run1(M, w, in, out), "");
  EXPECT_EQ(out.iv("t"), (std::vector<int32_t>{4, 5}));
}

TEST(InterpErrors, Weights) {
  Mod M;
  IrValue *x = M.input("x", IR_F32, S({TT, 2}));
  IrValue *wt = M.param("lin.weight", S({3, 2}));
  M.output("y", M.op1(IR_OP_LINEAR, {x, wt}, IR_F32, S({TT, 3})));
  char err[512];
  {
    TS w;
    EXPECT_EQ(interp_new(M.m, &w.s, err, sizeof err), nullptr);
    EXPECT_TRUE(contains(err, "missing weight 'lin.weight'")) << err;
    EXPECT_TRUE(contains(err, "f32[3, 2]")) << err;
  }
  {
    TS w;
    w.i("lin.weight", {3, 2}, std::vector<int32_t>(6));
    EXPECT_EQ(interp_new(M.m, &w.s, err, sizeof err), nullptr);
    EXPECT_TRUE(contains(err, "weight 'lin.weight' has dtype i32")) << err;
  }
  {
    TS w;
    w.f("lin.weight", {2, 3}, std::vector<float>(6));
    EXPECT_EQ(interp_new(M.m, &w.s, err, sizeof err), nullptr);
    EXPECT_TRUE(contains(err, "weight 'lin.weight' has shape [2, 3], expected f32[3, 2]")) << err;
  }
  {
    TS w;
    w.f("lin.weight", {3, 2}, std::vector<float>(6)).f("lin.bias", {3}, {0, 0, 0});
    EXPECT_EQ(interp_new(M.m, &w.s, err, sizeof err), nullptr);
    EXPECT_TRUE(contains(err, "unexpected weight 'lin.bias'")) << err;
  }
}

// ---- weights_init -------------------------------------------------------------------

TEST(WeightsInit, DeterministicAndIndependentOfOtherParams) {
  Mod A, B;
  IrInit nrm = {IR_INIT_NORMAL, 0.0, 1.0};
  ir_module_add_param(A.m, "a", IR_F32, S({7}), nrm, A.noloc);
  ir_module_add_param(A.m, "b", IR_F32, S({3, 5}), nrm, A.noloc);
  ir_module_add_param(B.m, "b", IR_F32, S({3, 5}), nrm, B.noloc);
  TS w1, w2, w3, w4;
  weights_init(A.m, 42, &w1.s);
  weights_init(A.m, 42, &w2.s);
  weights_init(B.m, 42, &w3.s);
  weights_init(A.m, 43, &w4.s);
  EXPECT_EQ(w1.fv("a"), w2.fv("a"));
  EXPECT_EQ(w1.fv("b"), w2.fv("b"));
  EXPECT_EQ(w1.fv("b"), w3.fv("b"));
  EXPECT_NE(w1.fv("b"), w4.fv("b"));
  std::vector<float> b = w1.fv("b");
  EXPECT_NE(w1.fv("a"), std::vector<float>(b.begin(), b.begin() + 7));
}

TEST(WeightsInit, Distributions) {
  Mod M;
  SrcLoc nl = M.noloc;
  ir_module_add_param(M.m, "n", IR_F32, S({200, 100}), IrInit{IR_INIT_NORMAL, 1.0, 0.5}, nl);
  ir_module_add_param(M.m, "u", IR_F32, S({20000}), IrInit{IR_INIT_UNIFORM, -2.0, 3.0}, nl);
  ir_module_add_param(M.m, "c", IR_F32, S({4}), IrInit{IR_INIT_CONST, 0.25, 0.0}, nl);
  ir_module_add_param(M.m, "lin", IR_F32, S({64, 16}), IrInit{IR_INIT_LINEAR, 0, 0}, nl);
  ir_module_add_param(M.m, "conv", IR_F32, S({64, 1, 4}), IrInit{IR_INIT_LINEAR, 0, 0}, nl);
  ir_module_add_param(M.m, "alog", IR_F32, S({1000}), IrInit{IR_INIT_LOG_UNIFORM, 1.0, 16.0}, nl);
  ir_module_add_param(M.m, "dt", IR_F32, S({1000}), IrInit{IR_INIT_DT_BIAS, 0.001, 0.1}, nl);
  ir_module_add_param(M.m, "eye", IR_F32, S({2, 3, 3}), IrInit{IR_INIT_EYE, 0, 0}, nl);
  TS w;
  weights_init(M.m, 7, &w.s);
  auto stats = [](const std::vector<float> &v, double *mean, double *sd) {
    double s = 0, ss = 0;
    for (float x : v) s += x;
    *mean = s / (double)v.size();
    for (float x : v) ss += (x - *mean) * (x - *mean);
    *sd = std::sqrt(ss / (double)v.size());
  };
  double mean, sd;
  stats(w.fv("n"), &mean, &sd);
  EXPECT_NEAR(mean, 1.0, 0.02);
  EXPECT_NEAR(sd, 0.5, 0.02);
  std::vector<float> u = w.fv("u");
  stats(u, &mean, &sd);
  EXPECT_NEAR(mean, 0.5, 0.05);
  EXPECT_NEAR(sd, 5 / std::sqrt(12.0), 0.05);
  for (float x : u) ASSERT_TRUE(x >= -2 && x <= 3);
  EXPECT_EQ(w.fv("c"), (std::vector<float>{0.25f, 0.25f, 0.25f, 0.25f}));
  float lo = 1, hi = -1;
  for (float x : w.fv("lin")) lo = std::min(lo, x), hi = std::max(hi, x);
  EXPECT_GE(lo, -0.25f);
  EXPECT_LE(hi, 0.25f);
  EXPECT_LT(lo, -0.2f);  // the whole range is used
  EXPECT_GT(hi, 0.2f);
  for (float x : w.fv("conv")) ASSERT_TRUE(std::fabs(x) <= 0.5f);  // 1/sqrt(1*4)
  for (float x : w.fv("alog")) ASSERT_TRUE(x >= 0.0f && x <= (float)std::log(16.0) + 1e-6f);
  for (float x : w.fv("dt")) {
    double dt = std::log1p(std::exp((double)x));  // softplus recovers dt
    ASSERT_TRUE(dt >= 0.001 * 0.999 && dt <= 0.1 * 1.001) << dt;
  }
  std::vector<float> eye = w.fv("eye");
  for (int b = 0; b < 2; b++)
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 3; j++) EXPECT_EQ(eye[b * 9 + i * 3 + j], i == j ? 1.0f : 0.0f);
}
