// test_codegen.cc — the C backend end to end: small graph-IR modules built
// with the ir.c constructors (every op kind), lowered to loop IR, emitted as
// C, compiled by the system compiler and run through dlopen + libffi
// (run_compiled). Results are compared with the reference interpreter and,
// for small cases, with values computed here from the math. Also: gcc and
// clang accept the output with -std=c11 -Wall -Wextra -pedantic -Werror, the
// object references no malloc/calloc/realloc/free, emission is
// byte-deterministic, and bad input gives distinct statuses.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "backend.h"
#include "interp.h"
#include "ir.h"
#include "tensor.h"
}

namespace {

IrShape sh(std::vector<int64_t> d) { return ir_shape((int)d.size(), d.data()); }
const int64_t T_ = IR_DIM_T;

struct Mod {
  Arena a;
  IrModule *m;
  explicit Mod(int64_t maxT) {
    arena_init(&a);
    m = ir_module_new(&a, "t", maxT);
  }
  ~Mod() { arena_free(&a); }
  IrBlock *body() { return m->body; }
  IrOp *op(IrBlock *b, IrOpKind k, std::vector<IrValue *> in) {
    return ir_op_new(m, b, k, (int)in.size(), in.data(), SrcLoc{0, 7, 3});
  }
  IrValue *op1(IrBlock *b, IrOpKind k, std::vector<IrValue *> in, IrDType dt, IrShape s, IrOp **o = nullptr) {
    IrOp *x = op(b, k, in);
    x->origin = "model.layers.0.test";
    if (o) *o = x;
    return ir_op_add_result(m, x, dt, s);
  }
  IrValue *input(const char *name, IrDType dt, IrShape s) {
    ir_module_add_input(m, name, dt, s);
    IrOp *o;
    IrValue *v = op1(body(), IR_OP_INPUT, {}, dt, s, &o);
    ir_op_set_str(m, o, "name", name);
    return v;
  }
  IrValue *param(IrBlock *b, const char *name, IrShape s, double lo = -1, double hi = 1) {
    if (!ir_module_find_param(m, name)) ir_module_add_param(m, name, IR_F32, s, IrInit{IR_INIT_UNIFORM, lo, hi}, SrcLoc{0, 0, 0});
    IrOp *o;
    IrValue *v = op1(b, IR_OP_PARAM, {}, IR_F32, s, &o);
    ir_op_set_str(m, o, "name", name);
    return v;
  }
  IrValue *un(IrBlock *b, const char *fn, IrValue *x) {
    IrOp *o;
    IrValue *v = op1(b, IR_OP_UNARY, {x}, x->dtype, x->shape, &o);
    ir_op_set_str(m, o, "fn", fn);
    return v;
  }
  IrValue *bin(IrBlock *b, const char *fn, IrValue *x, IrValue *y, IrShape s) {
    IrOp *o;
    IrValue *v = op1(b, IR_OP_BINARY, {x, y}, x->dtype, s, &o);
    ir_op_set_str(m, o, "fn", fn);
    return v;
  }
  IrValue *konst(IrBlock *b, double val, IrDType dt, IrShape s) {
    IrOp *o;
    IrValue *v = op1(b, IR_OP_CONST, {}, dt, s, &o);
    ir_op_set_float(m, o, "value", val);
    return v;
  }
  void output(const char *name, IrValue *v) {
    ir_module_add_output(m, name, v->dtype, v->shape);
    IrOp *o = op(body(), IR_OP_OUTPUT, {v});
    ir_op_set_str(m, o, "name", name);
  }
};

void fill_inputs(const IrModule *m, int64_t T, TensorSet *in, uint32_t seed, int32_t imax) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.5f, 1.5f);
  for (int i = 0; i < m->inputs.len; i++) {
    const IrIO *io = (const IrIO *)m->inputs.data[i];
    int64_t dims[IR_MAX_RANK];
    for (int d = 0; d < io->shape.rank; d++) dims[d] = io->shape.dims[d] == IR_DIM_T ? T : io->shape.dims[d];
    Tensor *t = tensorset_add(in, io->name, io->dtype, io->shape.rank, dims);
    for (int64_t e = 0; e < tensor_numel(t); e++) {
      if (io->dtype == IR_F32)
        ((float *)t->data)[e] = u(rng);
      else
        ((int32_t *)t->data)[e] = (int32_t)(rng() % (uint32_t)imax);
    }
  }
}

std::string verify(const IrModule *m) {
  char err[512] = "";
  return ir_verify(m, err, sizeof err) == 0 ? "" : err;
}

// Max normalized error |a - b| / (1 + |b|) over all outputs.
double compare(const TensorSet &a, const TensorSet &b, std::string *where) {
  double worst = 0;
  EXPECT_EQ(a.n, b.n);
  for (int i = 0; i < a.n && i < b.n; i++) {
    const Tensor *x = &a.t[i];
    const Tensor *y = tensorset_find(&b, x->name);
    EXPECT_NE(y, nullptr) << x->name;
    if (!y) continue;
    EXPECT_EQ(tensor_numel(x), tensor_numel(y)) << x->name;
    for (int64_t e = 0; e < tensor_numel(x) && e < tensor_numel(y); e++) {
      double p = x->dtype == IR_F32 ? ((float *)x->data)[e] : ((int32_t *)x->data)[e];
      double q = y->dtype == IR_F32 ? ((float *)y->data)[e] : ((int32_t *)y->data)[e];
      double d = std::fabs(p - q) / (1 + std::fabs(q));
      if (!(d <= worst)) {
        worst = std::isnan(d) ? 1e30 : d;
        *where = std::string(x->name) + "[" + std::to_string(e) + "] compiled " + std::to_string(p) +
                 " interp " + std::to_string(q);
      }
    }
  }
  return worst;
}

// Runs the module compiled (with `step`) and interpreted (whole sequence in
// one call) and checks they agree within tol.
void check_against_interp(Mod &md, int64_t T, int step, double tol, int32_t imax = 4, uint64_t seed = 1) {
  ASSERT_EQ(verify(md.m), "");
  TensorSet w = {0, 0, nullptr}, in = {0, 0, nullptr}, out_c = {0, 0, nullptr}, out_i = {0, 0, nullptr};
  weights_init(md.m, seed, &w);
  fill_inputs(md.m, T, &in, (uint32_t)seed + 7, imax);
  char err[512] = "";
  ASSERT_EQ(run_compiled(md.m, &w, &in, step, &out_c, err, sizeof err), 0) << err;
  InterpSession *s = interp_new(md.m, &w, err, sizeof err);
  ASSERT_NE(s, nullptr) << err;
  ASSERT_EQ(interp_forward(s, &in, &out_i, err, sizeof err), 0) << err;
  interp_free(s);
  std::string where;
  double e = compare(out_c, out_i, &where);
  EXPECT_LE(e, tol) << where;
  tensorset_free(&w);
  tensorset_free(&in);
  tensorset_free(&out_c);
  tensorset_free(&out_i);
}

std::string tmpdir() {
  char d[] = "/tmp/gat-test-cg-XXXXXX";
  EXPECT_NE(mkdtemp(d), nullptr);
  return d;
}

std::string slurp(const std::string &p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// ---- module builders ---------------------------------------------------------
// Elementwise, broadcasting, select, cast, const, position.
void build_elementwise(Mod &md) {
  IrBlock *b = md.body();
  IrValue *x = md.input("x", IR_F32, sh({T_, 4}));
  IrValue *w = md.param(b, "w", sh({4}));
  IrValue *u = md.un(b, "silu", x);
  IrValue *p = md.bin(b, "mul", u, w, sh({T_, 4}));
  IrValue *h = md.konst(b, 0.25, IR_F32, sh({1}));
  IrValue *g = md.bin(b, "gt", x, h, sh({T_, 4}));
  IrValue *sel = md.op1(b, IR_OP_SELECT, {g, p, md.un(b, "tanh", x)}, IR_F32, sh({T_, 4}));
  IrValue *pos = md.op1(b, IR_OP_POSITION, {}, IR_I32, sh({T_}));
  IrValue *posf = md.op1(b, IR_OP_CAST, {pos}, IR_F32, sh({T_}));
  IrValue *pr = md.op1(b, IR_OP_RESHAPE, {posf}, IR_F32, sh({T_, 1}));
  IrValue *y = md.bin(b, "add", sel, pr, sh({T_, 4}));
  IrValue *tr = md.op1(b, IR_OP_CAST, {md.bin(b, "mul", x, md.konst(b, 3.0, IR_F32, sh({})), sh({T_, 4}))}, IR_I32,
                       sh({T_, 4}));
  md.output("y", y);
  md.output("trunc", tr);
  for (const char *fn : {"exp", "sigmoid", "logsigmoid", "softplus", "gelu", "gelu_tanh", "relu", "abs", "neg"})
    md.output(fn, md.un(b, fn, x));
  md.output("pow", md.bin(b, "pow", md.un(b, "abs", x), md.konst(b, 1.5, IR_F32, sh({})), sh({T_, 4})));
}

}  // namespace

TEST(Codegen, ElementwiseMatchesHandComputed) {
  Mod md(16);
  build_elementwise(md);
  ASSERT_EQ(verify(md.m), "");
  TensorSet w = {0, 0, nullptr}, in = {0, 0, nullptr}, out = {0, 0, nullptr};
  int64_t d4[1] = {4}, dx[2] = {2, 4};
  float wv[4] = {1, -2, 0.5f, 3}, xv[8] = {0.5f, -1, 2, 0.1f, -0.3f, 0.26f, 1, -2};
  memcpy(tensorset_add(&w, "w", IR_F32, 1, d4)->data, wv, sizeof wv);
  memcpy(tensorset_add(&in, "x", IR_F32, 2, dx)->data, xv, sizeof xv);
  char err[512] = "";
  ASSERT_EQ(run_compiled(md.m, &w, &in, 0, &out, err, sizeof err), 0) << err;
  const float *y = (const float *)tensorset_find(&out, "y")->data;
  for (int t = 0; t < 2; t++)
    for (int j = 0; j < 4; j++) {
      double x = xv[t * 4 + j];
      double e = (x > 0.25 ? x / (1 + std::exp(-x)) * wv[j] : std::tanh(x)) + t;
      EXPECT_NEAR(y[t * 4 + j], e, 1e-6) << t << "," << j;
    }
  const int32_t *tr = (const int32_t *)tensorset_find(&out, "trunc")->data;
  EXPECT_EQ(tr[1], -3);  // trunc toward zero
  EXPECT_EQ(tr[4], 0);   // -0.9 -> 0
  EXPECT_EQ(tr[2], 6);
  tensorset_free(&w);
  tensorset_free(&in);
  tensorset_free(&out);
}

TEST(Codegen, ElementwiseMatchesInterp) {
  Mod md(16);
  build_elementwise(md);
  check_against_interp(md, 5, 0, 1e-6);
}

// gather (embedding) -> rms_norm -> linear(+bias) -> softmax; layer_norm, l2_norm
void build_lm(Mod &md, int64_t V) {
  IrBlock *b = md.body();
  IrValue *tok = md.input("tokens", IR_I32, sh({T_}));
  IrValue *emb = md.param(b, "emb.weight", sh({V, 8}));
  IrValue *x = md.op1(b, IR_OP_GATHER, {tok, emb}, IR_F32, sh({T_, 8}));
  // gather operands are (table, idx)
  IrOp *g = x->def;
  g->in[0] = emb;
  g->in[1] = tok;
  IrOp *o;
  IrValue *n = md.op1(b, IR_OP_RMS_NORM, {x, md.param(b, "norm.weight", sh({8}))}, IR_F32, sh({T_, 8}), &o);
  ir_op_set_float(md.m, o, "eps", 1e-5);
  IrValue *l = md.op1(b, IR_OP_LINEAR, {n, md.param(b, "head.weight", sh({6, 8})), md.param(b, "head.bias", sh({6}))},
                      IR_F32, sh({T_, 6}));
  IrValue *sm = md.op1(b, IR_OP_SOFTMAX, {l}, IR_F32, sh({T_, 6}), &o);
  ir_op_set_int(md.m, o, "axis", 1);
  md.output("probs", sm);
  IrValue *ln = md.op1(b, IR_OP_LAYER_NORM, {x, md.param(b, "ln.weight", sh({8})), md.param(b, "ln.bias", sh({8}))},
                       IR_F32, sh({T_, 8}), &o);
  ir_op_set_float(md.m, o, "eps", 1e-5);
  md.output("ln", ln);
  IrValue *l2 = md.op1(b, IR_OP_L2_NORM, {x}, IR_F32, sh({T_, 8}), &o);
  ir_op_set_float(md.m, o, "eps", 1e-6);
  md.output("l2", l2);
  IrValue *sm0 = md.op1(b, IR_OP_SOFTMAX, {x}, IR_F32, sh({T_, 8}), &o);
  ir_op_set_int(md.m, o, "axis", 0);  // over T: a non-last axis
  md.output("sm0", sm0);
}

TEST(Codegen, LanguageModelPiecesMatchInterp) {
  Mod md(32);
  build_lm(md, 10);
  check_against_interp(md, 7, 0, 2e-6, 10);
}

TEST(Codegen, TokenOutOfRangeIsAStatus) {
  Mod md(32);
  build_lm(md, 10);
  TensorSet w = {0, 0, nullptr}, in = {0, 0, nullptr}, out = {0, 0, nullptr};
  weights_init(md.m, 1, &w);
  int64_t d[1] = {3};
  int32_t *tk = (int32_t *)tensorset_add(&in, "tokens", IR_I32, 1, d)->data;
  tk[0] = 1, tk[1] = 10, tk[2] = 2;
  char err[512] = "";
  EXPECT_NE(run_compiled(md.m, &w, &in, 0, &out, err, sizeof err), 0);
  EXPECT_NE(std::string(err).find("index 10 at position 1"), std::string::npos) << err;
  EXPECT_NE(std::string(err).find("gather"), std::string::npos) << err;
  tensorset_free(&w);
  tensorset_free(&in);
  tensorset_free(&out);
}

TEST(Codegen, SequenceTooLongIsAStatus) {
  Mod md(4);
  build_lm(md, 10);
  TensorSet w = {0, 0, nullptr}, in = {0, 0, nullptr}, out = {0, 0, nullptr};
  weights_init(md.m, 1, &w);
  fill_inputs(md.m, 5, &in, 3, 10);
  char err[512] = "";
  EXPECT_NE(run_compiled(md.m, &w, &in, 0, &out, err, sizeof err), 0);
  EXPECT_NE(std::string(err).find("at most 4 tokens"), std::string::npos) << err;
  // 2 + 2 fits, 3 + 2 does not: the position counts
  tensorset_free(&out);
  out = {0, 0, nullptr};
  EXPECT_NE(run_compiled(md.m, &w, &in, 3, &out, err, sizeof err), 0);
  EXPECT_NE(std::string(err).find("position 3"), std::string::npos) << err;
  tensorset_free(&w);
  tensorset_free(&in);
  tensorset_free(&out);
}

TEST(Codegen, BadWeightsAreStatuses) {
  Mod md(8);
  build_lm(md, 10);
  char err[512] = "";
  struct Case {
    const char *what, *expect;
  } cases[] = {{"missing", "'head.bias' is missing"},
               {"extra", "'extra.weight' is not a parameter"},
               {"shape", "tensor 'norm.weight' has dim 0 = 9"},
               {"dtype", "tensor 'ln.bias' must be F32"}};
  for (const Case &c : cases) {
    TensorSet w = {0, 0, nullptr}, in = {0, 0, nullptr}, out = {0, 0, nullptr}, w2 = {0, 0, nullptr};
    weights_init(md.m, 1, &w);
    for (int i = 0; i < w.n; i++) {
      Tensor *t = &w.t[i];
      std::string name = t->name;
      if (std::string(c.what) == "missing" && name == "head.bias") continue;
      int64_t dims[IR_MAX_RANK];
      memcpy(dims, t->dims, sizeof dims);
      IrDType dt = t->dtype;
      if (std::string(c.what) == "shape" && name == "norm.weight") dims[0] = 9;
      if (std::string(c.what) == "dtype" && name == "ln.bias") dt = IR_I32;
      tensorset_add(&w2, t->name, dt, t->rank, dims);
    }
    if (std::string(c.what) == "extra") {
      int64_t d[1] = {2};
      tensorset_add(&w2, "extra.weight", IR_F32, 1, d);
    }
    fill_inputs(md.m, 2, &in, 3, 10);
    EXPECT_NE(run_compiled(md.m, &w2, &in, 0, &out, err, sizeof err), 0) << c.what;
    EXPECT_NE(std::string(err).find(c.expect), std::string::npos) << c.what << ": " << err;
    tensorset_free(&w);
    tensorset_free(&w2);
    tensorset_free(&in);
    tensorset_free(&out);
  }
}

// matmul (batch broadcast), transpose, concat, split, slice, reshape, reduce, index, topk
void build_shapes(Mod &md) {
  IrBlock *b = md.body();
  IrOp *o;
  IrValue *x = md.input("x", IR_F32, sh({T_, 2, 3}));
  IrValue *w = md.param(b, "w", sh({3, 4}));
  IrValue *mm = md.op1(b, IR_OP_MATMUL, {x, w}, IR_F32, sh({T_, 2, 4}));
  md.output("mm", mm);
  IrValue *tp = md.op1(b, IR_OP_TRANSPOSE, {mm}, IR_F32, sh({4, T_, 2}), &o);
  int64_t perm[3] = {2, 0, 1};
  ir_op_set_ints(md.m, o, "perm", 3, perm);
  md.output("tp", tp);
  IrValue *cc = md.op1(b, IR_OP_CONCAT, {x, mm}, IR_F32, sh({T_, 2, 7}), &o);
  ir_op_set_int(md.m, o, "axis", 2);
  md.output("cc", cc);
  IrOp *sp = md.op(b, IR_OP_SPLIT, {cc});
  sp->origin = "split";
  IrValue *s1 = ir_op_add_result(md.m, sp, IR_F32, sh({T_, 2, 5}));
  IrValue *s2 = ir_op_add_result(md.m, sp, IR_F32, sh({T_, 2, 2}));
  ir_op_set_int(md.m, sp, "axis", 2);
  int64_t sizes[2] = {5, 2};
  ir_op_set_ints(md.m, sp, "sizes", 2, sizes);
  md.output("s1", s1);
  md.output("s2", s2);
  IrValue *sl = md.op1(b, IR_OP_SLICE, {cc}, IR_F32, sh({T_, 1, 7}), &o);
  ir_op_set_int(md.m, o, "axis", 1);
  ir_op_set_int(md.m, o, "start", 1);
  ir_op_set_int(md.m, o, "stop", 2);
  md.output("sl", sl);
  IrValue *rs = md.op1(b, IR_OP_RESHAPE, {mm}, IR_F32, sh({T_, 8}));
  for (const char *k : {"sum", "max", "min", "mean"}) {
    IrValue *r = md.op1(b, IR_OP_REDUCE, {rs}, IR_F32, sh({T_}), &o);
    ir_op_set_str(md.m, o, "kind", k);
    int64_t ax[1] = {1};
    ir_op_set_ints(md.m, o, "axes", 1, ax);
    md.output((std::string("red_") + k).c_str(), r);
  }
  IrValue *r2 = md.op1(b, IR_OP_REDUCE, {x}, IR_F32, sh({3}), &o);  // over T and axis 1
  ir_op_set_str(md.m, o, "kind", "sum");
  int64_t ax2[2] = {0, 1};
  ir_op_set_ints(md.m, o, "axes", 2, ax2);
  md.output("red_T", r2);
  // index op: out[t, j] = sum_k rs[t, k] * w[k % 3 ... ] -> use rs[t, k] * rs[t, j] (Gram row) + 2
  IrValue *ix = md.op1(b, IR_OP_INDEX, {rs}, IR_F32, sh({T_, 8}), &o);
  IrAffine a1[2] = {{0, 1, {0}, {1}, -1, 0}, {0, 1, {2}, {1}, -1, 0}};
  IrAffine a2[2] = {{0, 1, {0}, {1}, -1, 0}, {0, 1, {1}, {1}, -1, 0}};
  o->expr = ir_expr_binary(
      md.m, IR_FN_ADD,
      ir_expr_reduce(md.m, IR_RED_SUM, 2, 8,
                     ir_expr_binary(md.m, IR_FN_MUL, ir_expr_load(md.m, 0, 2, a1), ir_expr_load(md.m, 0, 2, a2))),
      ir_expr_const(md.m, 2.0));
  md.output("index", ix);
  IrOp *tk = md.op(b, IR_OP_TOPK, {rs});
  IrValue *tv = ir_op_add_result(md.m, tk, IR_F32, sh({T_, 3}));
  IrValue *ti = ir_op_add_result(md.m, tk, IR_I32, sh({T_, 3}));
  ir_op_set_int(md.m, tk, "k", 3);
  md.output("topv", tv);
  md.output("topi", ti);
}

TEST(Codegen, ShapesAndContractionsMatchInterp) {
  Mod md(16);
  build_shapes(md);
  check_against_interp(md, 5, 0, 2e-6);
}

TEST(Codegen, MatmulHandComputed) {
  Mod md(4);
  build_shapes(md);
  TensorSet w = {0, 0, nullptr}, in = {0, 0, nullptr}, out = {0, 0, nullptr};
  int64_t dw[2] = {3, 4}, dx[3] = {1, 2, 3};
  float *wp = (float *)tensorset_add(&w, "w", IR_F32, 2, dw)->data;
  float *xp = (float *)tensorset_add(&in, "x", IR_F32, 3, dx)->data;
  for (int i = 0; i < 12; i++) wp[i] = (float)(i + 1);
  for (int i = 0; i < 6; i++) xp[i] = (float)(i % 3 - 1);
  char err[512] = "";
  ASSERT_EQ(run_compiled(md.m, &w, &in, 0, &out, err, sizeof err), 0) << err;
  const float *mm = (const float *)tensorset_find(&out, "mm")->data;
  // row x = (-1, 0, 1): -w[0,:] + w[2,:] = (8, 8, 8, 8)
  for (int j = 0; j < 4; j++) EXPECT_EQ(mm[j], 8);
  const float *tp = (const float *)tensorset_find(&out, "tp")->data;  // [4, 1, 2]
  EXPECT_EQ(tp[2 * 2 + 1], mm[1 * 4 + 2]);
  const int32_t *ti = (const int32_t *)tensorset_find(&out, "topi")->data;
  EXPECT_EQ(ti[0], 0);  // all eight equal to 8: ties to the lower index
  EXPECT_EQ(ti[2], 2);
  tensorset_free(&w);
  tensorset_free(&in);
  tensorset_free(&out);
}

// rope, conv1d with state, attention with KV cache (+ biases, GQA, window)
void build_seq(Mod &md, bool biased, int64_t window) {
  IrBlock *b = md.body();
  IrOp *o;
  IrValue *x = md.input("x", IR_F32, sh({T_, 8}));
  int cs = ir_module_add_state(md.m, "conv.tail", IR_F32, sh({3, 8}), 0.0);
  IrValue *cv = md.op1(b, IR_OP_CONV1D, {x, md.param(b, "conv.weight", sh({8, 1, 4})), md.param(b, "conv.bias", sh({8}))},
                       IR_F32, sh({T_, 8}), &o);
  ir_op_set_str(md.m, o, "act", "silu");
  ir_op_set_int(md.m, o, "state", cs);
  md.output("conv", cv);
  IrValue *q = md.op1(b, IR_OP_RESHAPE, {md.op1(b, IR_OP_LINEAR, {cv, md.param(b, "q.weight", sh({8, 8}))}, IR_F32, sh({T_, 8}))},
                      IR_F32, sh({T_, 2, 4}));
  IrValue *k = md.op1(b, IR_OP_RESHAPE, {md.op1(b, IR_OP_LINEAR, {x, md.param(b, "k.weight", sh({4, 8}))}, IR_F32, sh({T_, 4}))},
                      IR_F32, sh({T_, 1, 4}));
  IrValue *v = md.op1(b, IR_OP_RESHAPE, {md.op1(b, IR_OP_LINEAR, {x, md.param(b, "v.weight", sh({3, 8}))}, IR_F32, sh({T_, 3}))},
                      IR_F32, sh({T_, 1, 3}));
  IrValue *qr = md.op1(b, IR_OP_ROPE, {q}, IR_F32, sh({T_, 2, 4}), &o);
  ir_op_set_float(md.m, o, "base", 100.0);
  ir_op_set_int(md.m, o, "dims", 4);
  IrValue *kr = md.op1(b, IR_OP_ROPE, {k}, IR_F32, sh({T_, 1, 4}), &o);
  ir_op_set_float(md.m, o, "base", 100.0);
  ir_op_set_int(md.m, o, "dims", 2);
  md.output("rope", qr);
  std::vector<IrValue *> ins = {qr, kr, v};
  if (biased) {
    ins.push_back(md.op1(b, IR_OP_LINEAR, {x, md.param(b, "qb.weight", sh({2, 8}))}, IR_F32, sh({T_, 2})));
    ins.push_back(md.op1(b, IR_OP_LINEAR, {x, md.param(b, "kb.weight", sh({2, 8}))}, IR_F32, sh({T_, 2})));
  }
  int sk = ir_module_add_state(md.m, "attn.k", IR_F32, sh({md.m->max_T, 1, 4}), 0.0);
  int sv = ir_module_add_state(md.m, "attn.v", IR_F32, sh({md.m->max_T, 1, 3}), 0.0);
  IrValue *at = md.op1(b, IR_OP_ATTENTION, ins, IR_F32, sh({T_, 2, 3}), &o);
  ir_op_set_float(md.m, o, "scale", 0.5);
  ir_op_set_int(md.m, o, "causal", 1);
  ir_op_set_int(md.m, o, "window", window);
  ir_op_set_int(md.m, o, "state_k", sk);
  ir_op_set_int(md.m, o, "state_v", sv);
  if (biased) ir_op_set_int(md.m, o, "state_kb", ir_module_add_state(md.m, "attn.kb", IR_F32, sh({md.m->max_T, 2}), 0.0));
  md.output("attn", at);
}

TEST(Codegen, SequenceOpsMatchInterp) {
  Mod md(16);
  build_seq(md, false, 0);
  check_against_interp(md, 9, 0, 2e-6);
}

TEST(Codegen, SequenceOpsStreamingEqualsPrefill) {
  for (int biased = 0; biased < 2; biased++) {
    Mod md(16);
    build_seq(md, biased, biased ? 3 : 0);
    check_against_interp(md, 9, 1, 2e-6);  // decode one token at a time vs interp prefill
    check_against_interp(md, 9, 4, 2e-6);  // chunks of 4
  }
}

// scan: h = a * h + x_t (elementwise decay), emits h * 2
void build_scan(Mod &md) {
  IrBlock *b = md.body();
  IrValue *x = md.input("x", IR_F32, sh({T_, 4}));
  IrValue *a = md.un(b, "sigmoid", md.param(b, "decay", sh({4})));
  int slot = ir_module_add_state(md.m, "scan.h", IR_F32, sh({4}), 0.5);
  IrOp *sc = md.op(b, IR_OP_SCAN, {});
  sc->origin = "model.layers.0.rec";
  IrValue *res = ir_op_add_result(md.m, sc, IR_F32, sh({T_, 4}));
  int64_t st[1] = {slot};
  ir_op_set_ints(md.m, sc, "states", 1, st);
  IrBlock *r = ir_op_add_region(md.m, sc);
  IrValue *t = ir_block_add_arg(md.m, r, IR_I32, sh({}));
  IrValue *h = ir_block_add_arg(md.m, r, IR_F32, sh({4}));
  // xt[j] = x[t, j] through an index op with a dynamic index
  IrOp *o;
  IrValue *xt = md.op1(r, IR_OP_INDEX, {x, t}, IR_F32, sh({4}), &o);
  IrAffine ia[2] = {{0, 0, {0}, {0}, 1, 1}, {0, 1, {0}, {1}, -1, 0}};
  o->expr = ir_expr_load(md.m, 0, 2, ia);
  IrValue *hn = md.bin(r, "add", md.bin(r, "mul", a, h, sh({4})), xt, sh({4}));
  IrValue *h2 = md.bin(r, "mul", hn, md.konst(r, 2.0, IR_F32, sh({})), sh({4}));
  IrValue *ys[2] = {hn, h2};
  ir_block_set_yields(md.m, r, 2, ys);
  md.output("h2", res);
}

TEST(Codegen, ScanMatchesInterpAndHandComputed) {
  Mod md(16);
  build_scan(md);
  check_against_interp(md, 6, 0, 1e-6);
  check_against_interp(md, 6, 1, 1e-6);
  TensorSet w = {0, 0, nullptr}, in = {0, 0, nullptr}, out = {0, 0, nullptr};
  int64_t d4[1] = {4}, dx[2] = {2, 4};
  float *dp = (float *)tensorset_add(&w, "decay", IR_F32, 1, d4)->data;
  float *xp = (float *)tensorset_add(&in, "x", IR_F32, 2, dx)->data;
  for (int i = 0; i < 4; i++) dp[i] = 0, xp[i] = 1, xp[4 + i] = (float)i;
  char err[512] = "";
  ASSERT_EQ(run_compiled(md.m, &w, &in, 0, &out, err, sizeof err), 0) << err;
  const float *h = (const float *)tensorset_find(&out, "h2")->data;
  // a = 0.5, h0 = 0.5: h1 = 1.25, h2 = 0.625 + j; emitted doubled
  for (int j = 0; j < 4; j++) {
    EXPECT_FLOAT_EQ(h[j], 2 * 1.25f);
    EXPECT_FLOAT_EQ(h[4 + j], 2 * (0.625f + j));
  }
  tensorset_free(&w);
  tensorset_free(&in);
  tensorset_free(&out);
}

// scan whose new state is another state's old buffer: a' = b + x_t, b' = a;
// emits b'. Copying a <- (b + x_t) first and then b <- a would give b the
// new a: the generated code must read every new value before any write.
void build_swap_scan(Mod &md) {
  IrBlock *b = md.body();
  IrValue *x = md.input("x", IR_F32, sh({T_, 3}));
  int sa = ir_module_add_state(md.m, "swap.a", IR_F32, sh({3}), 1.0);
  int sb = ir_module_add_state(md.m, "swap.b", IR_F32, sh({3}), 2.0);
  IrOp *sc = md.op(b, IR_OP_SCAN, {});
  sc->origin = "model.layers.0.swap";
  IrValue *res = ir_op_add_result(md.m, sc, IR_F32, sh({T_, 3}));
  int64_t st[2] = {sa, sb};
  ir_op_set_ints(md.m, sc, "states", 2, st);
  IrBlock *r = ir_op_add_region(md.m, sc);
  IrValue *t = ir_block_add_arg(md.m, r, IR_I32, sh({}));
  IrValue *ha = ir_block_add_arg(md.m, r, IR_F32, sh({3}));
  IrValue *hb = ir_block_add_arg(md.m, r, IR_F32, sh({3}));
  IrOp *o;
  IrValue *xt = md.op1(r, IR_OP_INDEX, {x, t}, IR_F32, sh({3}), &o);
  IrAffine ia[2] = {{0, 0, {0}, {0}, 1, 1}, {0, 1, {0}, {1}, -1, 0}};
  o->expr = ir_expr_load(md.m, 0, 2, ia);
  IrValue *na = md.bin(r, "add", hb, xt, sh({3}));
  IrValue *ys[3] = {na, ha, ha};
  ir_block_set_yields(md.m, r, 3, ys);
  md.output("b", res);
}

TEST(Codegen, ScanStateSwapIsDoubleBuffered) {
  Mod md(16);
  build_swap_scan(md);
  ASSERT_EQ(verify(md.m), "");
  check_against_interp(md, 5, 0, 0);
  check_against_interp(md, 5, 1, 0);
  TensorSet w = {0, 0, nullptr}, in = {0, 0, nullptr}, out = {0, 0, nullptr};
  int64_t dx[2] = {4, 3};
  float *xp = (float *)tensorset_add(&in, "x", IR_F32, 2, dx)->data;
  for (int i = 0; i < 12; i++) xp[i] = (float)(10 * (i / 3 + 1));  // x_t = 10 (t + 1)
  char err[512] = "";
  ASSERT_EQ(run_compiled(md.m, &w, &in, 0, &out, err, sizeof err), 0) << err;
  const float *bv = (const float *)tensorset_find(&out, "b")->data;
  // (a, b): (1, 2) -> (12, 1) -> (21, 12) -> (42, 21) -> (61, 42); emits the new b
  const float want[4] = {1, 12, 21, 42};
  for (int t = 0; t < 4; t++)
    for (int j = 0; j < 3; j++) EXPECT_EQ(bv[t * 3 + j], want[t]) << t << "," << j;
  tensorset_free(&w);
  tensorset_free(&in);
  tensorset_free(&out);
}

// mixture: softmax-renormalized top-2 of 3 experts (linear + silu each); skip over a gate
void build_moe(Mod &md) {
  IrBlock *b = md.body();
  IrOp *o;
  IrValue *x = md.input("x", IR_F32, sh({T_, 4}));
  IrValue *logits = md.op1(b, IR_OP_LINEAR, {x, md.param(b, "router.weight", sh({3, 4}))}, IR_F32, sh({T_, 3}));
  IrOp *tk = md.op(b, IR_OP_TOPK, {logits});
  IrValue *tv = ir_op_add_result(md.m, tk, IR_F32, sh({T_, 2}));
  IrValue *ti = ir_op_add_result(md.m, tk, IR_I32, sh({T_, 2}));
  ir_op_set_int(md.m, tk, "k", 2);
  IrValue *wts = md.op1(b, IR_OP_SOFTMAX, {tv}, IR_F32, sh({T_, 2}), &o);
  ir_op_set_int(md.m, o, "axis", 1);
  IrOp *mx = md.op(b, IR_OP_MIXTURE, {ti, wts, x});
  mx->origin = "model.layers.0.moe";
  ir_op_set_int(md.m, mx, "experts", 3);
  IrValue *y = ir_op_add_result(md.m, mx, IR_F32, sh({T_, 5}));
  for (int e = 0; e < 3; e++) {
    IrBlock *r = ir_op_add_region(md.m, mx);
    IrValue *xa = ir_block_add_arg(md.m, r, IR_F32, sh({T_, 4}));
    std::string wn = "experts." + std::to_string(e) + ".weight";
    IrValue *h = md.un(r, "silu", md.op1(r, IR_OP_LINEAR, {xa, md.param(r, wn.c_str(), sh({5, 4}))}, IR_F32, sh({T_, 5})));
    IrValue *ys[1] = {h};
    ir_block_set_yields(md.m, r, 1, ys);
  }
  md.output("moe", y);
  // skip: rows with x[t, 0] > 0 keep prev (= y), the others get tanh(linear(x))
  IrValue *cond = md.op1(b, IR_OP_SLICE, {x}, IR_F32, sh({T_, 1}), &o);
  ir_op_set_int(md.m, o, "axis", 1);
  ir_op_set_int(md.m, o, "start", 0);
  ir_op_set_int(md.m, o, "stop", 1);
  IrValue *c1 = md.op1(b, IR_OP_RESHAPE, {md.bin(b, "gt", cond, md.konst(b, 0.0, IR_F32, sh({})), sh({T_, 1}))},
                       IR_F32, sh({T_}));
  IrOp *sk = md.op(b, IR_OP_SKIP, {c1, y, x});
  sk->origin = "model.layers.0.gate";
  IrValue *z = ir_op_add_result(md.m, sk, IR_F32, sh({T_, 5}));
  IrBlock *r = ir_op_add_region(md.m, sk);
  IrValue *xa = ir_block_add_arg(md.m, r, IR_F32, sh({T_, 4}));
  IrValue *h = md.un(r, "tanh", md.op1(r, IR_OP_LINEAR, {xa, md.param(r, "skip.weight", sh({5, 4}))}, IR_F32, sh({T_, 5})));
  IrValue *ys[1] = {h};
  ir_block_set_yields(md.m, r, 1, ys);
  md.output("skip", z);
}

TEST(Codegen, MixtureAndSkipMatchInterp) {
  Mod md(32);
  build_moe(md);
  check_against_interp(md, 11, 0, 2e-6);
  check_against_interp(md, 11, 1, 2e-6);  // experts with no tokens are skipped
  check_against_interp(md, 11, 0, 2e-6, 4, 99);
}

// ---- the generated source itself ----------------------------------------------
void build_all(Mod &md) {
  build_moe(md);
}

TEST(Codegen, CompilesPedanticWithGccAndClangAndHasNoMalloc) {
  std::string d = tmpdir();
  std::vector<std::pair<std::string, void (*)(Mod &)>> mods = {
      {"ew", build_elementwise}, {"lm", [](Mod &m) { build_lm(m, 10); }}, {"shapes", build_shapes},
      {"seq", [](Mod &m) { build_seq(m, true, 2); }}, {"scan", build_scan}, {"moe", build_moe}};
  for (auto &p : mods) {
    Mod md(16);
    p.second(md);
    char err[512] = "";
    std::string c = d + "/" + p.first + ".c";
    ASSERT_EQ(backend_emit_c(md.m, c.c_str(), err, sizeof err), 0) << err;
    for (const char *cc : {"gcc", "clang"}) {
      std::string o = d + "/" + p.first + "_" + cc + ".o";
      std::string cmd = std::string(cc) + " -std=c11 -Wall -Wextra -pedantic -Werror -O1 -I" GAT_SOURCE_DIR "/runtime -c " + c +
                        " -o " + o + " 2>" + d + "/err.txt";
      EXPECT_EQ(system(cmd.c_str()), 0) << cc << " " << p.first << ":\n" << slurp(d + "/err.txt");
      std::string nm = "nm -u " + o + " | grep -wE 'malloc|calloc|realloc|free' > " + d + "/nm.txt";
      EXPECT_NE(system(nm.c_str()), 0) << p.first << ": " << slurp(d + "/nm.txt");
    }
  }
  for (const char *rt : {"gat_runtime.c", "gat_safetensors.c"})
    for (const char *cc : {"gcc", "clang"}) {
      std::string o = d + "/rt.o";
      std::string cmd = std::string(cc) + " -std=c11 -Wall -Wextra -pedantic -Werror -c " GAT_SOURCE_DIR "/runtime/" + rt +
                        " -o " + o + " 2>" + d + "/err.txt";
      EXPECT_EQ(system(cmd.c_str()), 0) << rt << ":\n" << slurp(d + "/err.txt");
      std::string nm = "nm -u " + o + " | grep -wE 'malloc|calloc|realloc|free' > /dev/null";
      EXPECT_NE(system(nm.c_str()), 0) << rt;
    }
  std::string rm = "rm -rf " + d;
  EXPECT_EQ(system(rm.c_str()), 0);
}

TEST(Codegen, EmissionIsDeterministic) {
  std::string d = tmpdir();
  std::string a, h;
  for (int i = 0; i < 2; i++) {
    Mod md(16);  // a fresh module each time: nothing may depend on addresses
    build_moe(md);
    build_scan(md);
    char err[512] = "";
    std::string c = d + "/m" + std::to_string(i) + ".c";
    ASSERT_EQ(backend_emit_c(md.m, c.c_str(), err, sizeof err), 0) << err;
    std::string src = slurp(c), hdr = slurp(d + "/m" + std::to_string(i) + ".h");
    // the name differs by design (m0 / m1); compare after renaming
    for (std::string *s : {&src, &hdr}) {
      std::string from = "m" + std::to_string(i), to = "mX";
      for (size_t p = 0; (p = s->find(from, p)) != std::string::npos; p += to.size()) s->replace(p, from.size(), to);
      from = "M" + std::to_string(i), to = "MX";
      for (size_t p = 0; (p = s->find(from, p)) != std::string::npos; p += to.size()) s->replace(p, from.size(), to);
    }
    if (i == 0) {
      a = src;
      h = hdr;
    } else {
      EXPECT_TRUE(a == src) << "C source differs";
      EXPECT_TRUE(h == hdr) << "header differs";
    }
  }
  std::string rm = "rm -rf " + d;
  EXPECT_EQ(system(rm.c_str()), 0);
}

TEST(Codegen, KernelsNamedAfterLayersAndLines) {
  std::string d = tmpdir();
  Mod md(16);
  build_scan(md);
  char err[512] = "";
  std::string c = d + "/named.c";
  ASSERT_EQ(backend_emit_c(md.m, c.c_str(), err, sizeof err), 0) << err;
  std::string src = slurp(c);
  EXPECT_NE(src.find("named_k"), std::string::npos);
  EXPECT_NE(src.find("_rec_scan_L7("), std::string::npos) << src.substr(0, 2000);
  EXPECT_NE(src.find("in layer model.layers.0.rec"), std::string::npos);
  std::string hdr = slurp(d + "/named.h");
  EXPECT_NE(hdr.find("#define NAMED_ARENA_BYTES"), std::string::npos);
  EXPECT_NE(hdr.find("int named_forward(named *m, const float *x, int32_t T, float *h2);"), std::string::npos)
      << hdr;
  std::string rm = "rm -rf " + d;
  EXPECT_EQ(system(rm.c_str()), 0);
}

TEST(Codegen, DumpLoops) {
  Mod md(16);
  build_moe(md);
  char *buf = nullptr;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  char err[512] = "";
  ASSERT_EQ(backend_dump_loops(f, md.m, err, sizeof err), 0) << err;
  fclose(f);
  std::string s(buf, len);
  free(buf);
  EXPECT_NE(s.find("mixture"), std::string::npos) << s;
  EXPECT_NE(s.find("expert 2 (rows R3)"), std::string::npos) << s;
  EXPECT_NE(s.find("sum(v2 < 4)"), std::string::npos) << s;
}
