// test_ir.cc — the graph IR text form (ir_print, ir_parse) and verifier
// (ir_verify). Expected texts are written by hand from the format in
// docs/internals.md ("Graph IR"); the golden files in tests/golden/ are
// hand-written IR in canonical form, so print(parse(file)) must give the file
// back (minus its comment lines). The verifier is checked on valid modules and
// on many kinds of invalid ones, each with the problem named in the message.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "diag.h"
#include "ir.h"
#include "util.h"
}

namespace {

const SrcLoc kNoLoc = {0, 0, 0};

std::string Golden(const std::string &name) {
  std::ifstream f(std::string(GAT_SOURCE_DIR) + "/tests/golden/" + name);
  EXPECT_TRUE(f.good()) << "cannot open golden file " << name;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The golden file without its '#' comment lines: what the printer must produce.
std::string StripComments(const std::string &text) {
  std::istringstream in(text);
  std::string line, out;
  while (std::getline(in, line))
    if (line.empty() || line[0] != '#') out += line + "\n";
  return out;
}

std::string Print(const IrModule *m) {
  char *s = ir_print_to_string(m);
  std::string r(s);
  free(s);
  return r;
}

std::string OpLine(const IrModule *m, const IrOp *op) {
  char *s = ir_op_to_string(m, op);
  std::string r(s);
  free(s);
  return r;
}

std::string ExprText(const IrExpr *e) {
  char *s = ir_expr_to_string(e);
  std::string r(s);
  free(s);
  return r;
}

IrShape Shape(std::initializer_list<int64_t> dims) {
  std::vector<int64_t> d(dims);
  return ir_shape((int)d.size(), d.data());
}
const int64_t T = IR_DIM_T;

// Each test gets a fresh arena and diagnostics captured into a string.
class IrTest : public ::testing::Test {
 protected:
  void SetUp() override {
    arena_init(&arena_);
    diag_reset();
    diag_set_max_errors(1000);
    stream_ = open_memstream(&buf_, &len_);
    diag_set_stream(stream_);
  }
  void TearDown() override {
    for (IrModule *m : modules_) ir_module_release(m);
    diag_set_stream(nullptr);
    fclose(stream_);
    free(buf_);
    diag_reset();
    arena_free(&arena_);
  }
  // Forgets registered files and starts a fresh capture.
  void ResetDiags() {
    diag_reset();
    diag_set_stream(nullptr);
    fclose(stream_);
    free(buf_);
    buf_ = nullptr;
    len_ = 0;
    stream_ = open_memstream(&buf_, &len_);
    diag_set_stream(stream_);
  }
  std::string Diags() {
    fflush(stream_);
    return std::string(buf_ ? buf_ : "", len_);
  }
  IrModule *Parse(const std::string &text, const char *name = "t.ir") {
    IrModule *m = ir_parse(&arena_, name, text.c_str());
    if (m) modules_.push_back(m);
    return m;
  }
  IrModule *NewModule(const char *name, int64_t max_T) {
    IrModule *m = ir_module_new(&arena_, name, max_T);
    modules_.push_back(m);
    return m;
  }
  // Parses text that must be valid syntax, then returns the verifier's verdict.
  std::string VerifyText(const std::string &text) {
    IrModule *m = Parse(text);
    EXPECT_NE(m, nullptr) << "parse failed: " << Diags() << "\n" << text;
    if (!m) return "<parse error>";
    char err[1024];
    if (ir_verify(m, err, sizeof err) == 0) return "";
    EXPECT_STRNE(err, "");
    return err;
  }
  void ExpectRoundTrip(const std::string &file) {
    std::string text = Golden(file);
    IrModule *m = Parse(text, file.c_str());
    ASSERT_NE(m, nullptr) << Diags();
    std::string printed = Print(m);
    EXPECT_EQ(printed, StripComments(text)) << "printing " << file << " does not give the file back";
    IrModule *m2 = Parse(printed, "again.ir");
    ASSERT_NE(m2, nullptr) << Diags();
    EXPECT_EQ(Print(m2), printed);
    char err[1024];
    EXPECT_EQ(ir_verify(m, err, sizeof err), 0) << err;
  }
  Arena arena_;
  std::vector<IrModule *> modules_;  // released in TearDown (their op lists are heap vectors)
  FILE *stream_ = nullptr;
  char *buf_ = nullptr;
  size_t len_ = 0;
};

// ============================== printing ====================================

TEST_F(IrTest, PrintsConstructedModule) {
  IrModule *m = NewModule("tiny", 128);
  IrInit normal = {IR_INIT_NORMAL, 0.0, 0.02};
  ir_module_add_param(m, "emb.weight", IR_F32, Shape({16, 4}), normal, kNoLoc);
  ir_module_add_input(m, "tokens", IR_I32, Shape({T}));
  ir_module_add_output(m, "h", IR_F32, Shape({T, 4}));
  IrOp *in = ir_op_new(m, m->body, IR_OP_INPUT, 0, nullptr, kNoLoc);
  ir_op_set_str(m, in, "name", "tokens");
  IrValue *tok = ir_op_add_result(m, in, IR_I32, Shape({T}));
  IrOp *pp = ir_op_new(m, m->body, IR_OP_PARAM, 0, nullptr, kNoLoc);
  ir_op_set_str(m, pp, "name", "emb.weight");
  IrValue *w = ir_op_add_result(m, pp, IR_F32, Shape({16, 4}));
  IrValue *gin[2] = {w, tok};
  IrOp *g = ir_op_new(m, m->body, IR_OP_GATHER, 2, gin, kNoLoc);
  IrValue *x = ir_op_add_result(m, g, IR_F32, Shape({T, 4}));
  IrOp *u = ir_op_new(m, m->body, IR_OP_UNARY, 1, &x, kNoLoc);
  ir_op_set_str(m, u, "fn", "silu");
  IrValue *y = ir_op_add_result(m, u, IR_F32, Shape({T, 4}));
  IrOp *o = ir_op_new(m, m->body, IR_OP_OUTPUT, 1, &y, kNoLoc);
  ir_op_set_str(m, o, "name", "h");

  const char *expected =
      "module tiny max_T 128\n"
      "param \"emb.weight\" : f32[16, 4] init normal(0.0, 0.02)\n"
      "input \"tokens\" : i32[T]\n"
      "output \"h\" : f32[T, 4]\n"
      "body {\n"
      "  %0 = input {name = \"tokens\"} : i32[T]\n"
      "  %1 = param {name = \"emb.weight\"} : f32[16, 4]\n"
      "  %2 = gather %1, %0 : f32[T, 4]\n"
      "  %3 = unary %2 {fn = \"silu\"} : f32[T, 4]\n"
      "  output %3 {name = \"h\"}\n"
      "}\n";
  EXPECT_EQ(Print(m), expected);
  char err[512];
  EXPECT_EQ(ir_verify(m, err, sizeof err), 0) << err;
}

TEST_F(IrTest, PrintsEveryInitRuleAndStateInit) {
  IrModule *m = NewModule("inits", 4);
  IrInitKind kinds[] = {IR_INIT_NORMAL, IR_INIT_UNIFORM, IR_INIT_CONST,   IR_INIT_LINEAR,
                        IR_INIT_LOG_UNIFORM, IR_INIT_DT_BIAS, IR_INIT_EYE};
  const char *names[] = {"a", "b", "c", "d", "e", "f", "g"};
  for (int i = 0; i < 7; i++) {
    IrInit in = {kinds[i], -0.5, 2.0};
    ir_module_add_param(m, names[i], IR_F32, Shape({3, 3}), in, kNoLoc);
  }
  ir_module_add_state(m, "s", IR_F32, Shape({2}), -1.5);
  ir_module_add_state(m, "scalar", IR_I32, Shape({}), 0.0);
  const char *expected =
      "module inits max_T 4\n"
      "param \"a\" : f32[3, 3] init normal(-0.5, 2.0)\n"
      "param \"b\" : f32[3, 3] init uniform(-0.5, 2.0)\n"
      "param \"c\" : f32[3, 3] init constant(-0.5)\n"
      "param \"d\" : f32[3, 3] init linear\n"
      "param \"e\" : f32[3, 3] init log_uniform(-0.5, 2.0)\n"
      "param \"f\" : f32[3, 3] init dt_bias(-0.5, 2.0)\n"
      "param \"g\" : f32[3, 3] init eye\n"
      "state \"s\" : f32[2] = -1.5\n"
      "state \"scalar\" : i32[] = 0.0\n"
      "body {\n"
      "}\n";
  EXPECT_EQ(Print(m), expected);
  // and they parse back to the same values
  IrModule *m2 = Parse(expected);
  ASSERT_NE(m2, nullptr) << Diags();
  ASSERT_EQ(m2->params.len, 7);
  for (int i = 0; i < 7; i++) {
    const IrParam *p = (const IrParam *)m2->params.data[i];
    EXPECT_EQ(p->init.kind, kinds[i]) << names[i];
    if (kinds[i] != IR_INIT_LINEAR && kinds[i] != IR_INIT_EYE) {
      EXPECT_EQ(p->init.a, -0.5);
    }
  }
  EXPECT_EQ(((const IrParam *)m2->params.data[0])->init.b, 2.0);
  EXPECT_EQ(((const IrState *)m2->states.data[0])->init, -1.5);
  EXPECT_EQ(Print(m2), expected);
}

TEST_F(IrTest, PrintsAttributesOfEveryKindInOrder) {
  IrModule *m = NewModule("attrs", 4);
  IrOp *op = ir_op_new(m, m->body, IR_OP_CONST, 0, nullptr, kNoLoc);
  ir_op_set_int(m, op, "n", -12);
  ir_op_set_float(m, op, "half", 0.5);
  ir_op_set_float(m, op, "eps", 1e-5);
  ir_op_set_float(m, op, "two", 2.0);
  ir_op_set_float(m, op, "big", -std::numeric_limits<double>::infinity());
  ir_op_set_str(m, op, "s", "a \"q\" \\ b");
  int64_t ints[3] = {1, -2, 3};
  ir_op_set_ints(m, op, "list", 3, ints);
  ir_op_set_ints(m, op, "empty", 0, nullptr);
  ir_op_add_result(m, op, IR_F32, Shape({}));
  EXPECT_EQ(OpLine(m, op),
            "%0 = const {n = -12, half = 0.5, eps = 1e-05, two = 2.0, big = -inf, s = \"a \\\"q\\\" \\\\ b\", "
            "list = [1, -2, 3], empty = []} : f32[]");
  // Parse the printed op back and check the stored attribute values.
  std::string text = std::string("module attrs max_T 4\nbody {\n  ") + OpLine(m, op) + "\n}\n";
  IrModule *m2 = Parse(text);
  ASSERT_NE(m2, nullptr) << Diags();
  const IrOp *op2 = (const IrOp *)m2->body->ops.data[0];
  ASSERT_EQ(op2->nattr, 8);
  EXPECT_EQ(op2->attrs[0].kind, IR_ATTR_INT);
  EXPECT_EQ(op2->attrs[0].i, -12);
  EXPECT_EQ(op2->attrs[2].kind, IR_ATTR_FLOAT);
  EXPECT_EQ(op2->attrs[2].f, 1e-5);
  EXPECT_EQ(op2->attrs[3].kind, IR_ATTR_FLOAT);  // "2.0" is a float, not an int
  EXPECT_EQ(op2->attrs[4].f, -std::numeric_limits<double>::infinity());
  EXPECT_STREQ(op2->attrs[5].s, "a \"q\" \\ b");
  EXPECT_EQ(op2->attrs[6].kind, IR_ATTR_INTS);
  ASSERT_EQ(op2->attrs[6].n, 3);
  EXPECT_EQ(op2->attrs[6].ints[1], -2);
  EXPECT_EQ(op2->attrs[7].n, 0);
  EXPECT_EQ(Print(m2), text);
}

TEST_F(IrTest, RenumbersValuesDenselyInProgramOrder) {
  // Build a scan whose region arguments are created before the op's result:
  // stored ids are (args 0, 1; emit 2; result 3), printed order is result
  // first, then the region's values.
  IrModule *m = NewModule("order", 8);
  ir_module_add_state(m, "s", IR_F32, Shape({2}), 0.0);
  ir_module_add_output(m, "y", IR_F32, Shape({T, 2}));
  IrOp *scan = ir_op_new(m, m->body, IR_OP_SCAN, 0, nullptr, kNoLoc);
  int64_t states[1] = {0};
  ir_op_set_ints(m, scan, "states", 1, states);
  IrBlock *r = ir_op_add_region(m, scan);
  ir_block_add_arg(m, r, IR_I32, Shape({}));
  IrValue *s = ir_block_add_arg(m, r, IR_F32, Shape({2}));
  IrOp *neg = ir_op_new(m, r, IR_OP_UNARY, 1, &s, kNoLoc);
  ir_op_set_str(m, neg, "fn", "neg");
  IrValue *ns = ir_op_add_result(m, neg, IR_F32, Shape({2}));
  IrValue *ys[2] = {ns, ns};
  ir_block_set_yields(m, r, 2, ys);
  IrValue *out = ir_op_add_result(m, scan, IR_F32, Shape({T, 2}));
  ir_op_new(m, m->body, IR_OP_OUTPUT, 1, &out, kNoLoc);
  ir_op_set_str(m, (IrOp *)m->body->ops.data[1], "name", "y");
  EXPECT_EQ(out->id, 3);  // the premise of this test
  const char *expected =
      "module order max_T 8\n"
      "output \"y\" : f32[T, 2]\n"
      "state \"s\" : f32[2] = 0.0\n"
      "body {\n"
      "  %0 = scan {states = [0]} : f32[T, 2] {\n"
      "    (%1 : i32[], %2 : f32[2]) {\n"
      "      %3 = unary %2 {fn = \"neg\"} : f32[2]\n"
      "      yield %3, %3\n"
      "    }\n"
      "  }\n"
      "  output %0 {name = \"y\"}\n"
      "}\n";
  EXPECT_EQ(Print(m), expected);
  char err[512];
  EXPECT_EQ(ir_verify(m, err, sizeof err), 0) << err;
}

TEST_F(IrTest, PrintsAffineIndexForms) {
  IrModule *m = NewModule("aff", 8);
  IrAffine idx[5];
  memset(idx, 0, sizeof idx);
  for (auto &a : idx) a.dyn = -1;
  idx[0].nterms = 1, idx[0].var[0] = 0, idx[0].coef[0] = 1;                         // v0
  idx[1].nterms = 1, idx[1].var[0] = 1, idx[1].coef[0] = 2, idx[1].c = 3;           // 2*v1+3
  idx[2].nterms = 1, idx[2].var[0] = 0, idx[2].coef[0] = 1, idx[2].c = -1;          // v0-1
  idx[3].dyn = 2, idx[3].dyn_coef = 1;                                              // $2
  idx[4].nterms = 1, idx[4].var[0] = 3, idx[4].coef[0] = -1, idx[4].dyn = 2, idx[4].dyn_coef = 1, idx[4].c = 4;
  IrAffine zero;
  memset(&zero, 0, sizeof zero);
  zero.dyn = -1;
  IrExpr *l = ir_expr_load(m, 0, 5, idx);
  IrExpr *z = ir_expr_load(m, 1, 1, &zero);
  IrExpr *e = ir_expr_reduce(m, IR_RED_MAX, 3, T,
                             ir_expr_select(m, ir_expr_var(m, 3), ir_expr_unary(m, IR_FN_EXP, l),
                                            ir_expr_binary(m, IR_FN_MIN, z, ir_expr_const(m, 0.25))));
  EXPECT_EQ(ExprText(e), "(max v3:T (select (var v3) (exp (load 0 v0 2*v1+3 v0-1 $2 -1*v3+$2+4)) (min (load 1 0) 0.25)))");
  // ir_expr_parse reads it back into the same structure.
  char err[256];
  IrExpr *p = ir_expr_parse(m, ExprText(e).c_str(), err, sizeof err, nullptr);
  ASSERT_NE(p, nullptr) << err;
  EXPECT_EQ(p->kind, IR_EX_REDUCE);
  EXPECT_EQ(p->reduce, IR_RED_MAX);
  EXPECT_EQ(p->extent, T);
  const IrExpr *pl = p->a->b->a;
  ASSERT_EQ(pl->kind, IR_EX_LOAD);
  ASSERT_EQ(pl->nidx, 5);
  EXPECT_EQ(pl->idx[1].coef[0], 2);
  EXPECT_EQ(pl->idx[1].c, 3);
  EXPECT_EQ(pl->idx[2].c, -1);
  EXPECT_EQ(pl->idx[3].nterms, 0);
  EXPECT_EQ(pl->idx[3].dyn, 2);
  EXPECT_EQ(pl->idx[4].coef[0], -1);
  EXPECT_EQ(pl->idx[4].var[0], 3);
  EXPECT_EQ(pl->idx[4].dyn_coef, 1);
  EXPECT_EQ(pl->idx[4].c, 4);
  EXPECT_EQ(p->a->c->fn, IR_FN_MIN);  // binary min, told apart from the reduction
  EXPECT_EQ(ExprText(p), ExprText(e));
}

TEST_F(IrTest, PrintsLocationAndOrigin) {
  int file = diag_add_file("model.gat", "x\n");
  IrModule *m = NewModule("loc", 8);
  IrOp *op = ir_op_new(m, m->body, IR_OP_POSITION, 0, nullptr, SrcLoc{file, 3, 14});
  op->origin = "rope";
  ir_op_add_result(m, op, IR_I32, Shape({T}));
  EXPECT_EQ(OpLine(m, op), "%0 = position : i32[T] loc(\"model.gat\":3:14) origin \"rope\"");
  std::string text = std::string("module loc max_T 8\nbody {\n  ") + OpLine(m, op) + "\n}\n";
  IrModule *m2 = Parse(text);
  ASSERT_NE(m2, nullptr) << Diags();
  const IrOp *op2 = (const IrOp *)m2->body->ops.data[0];
  EXPECT_EQ(op2->loc.file, file);  // an already registered file is reused
  EXPECT_EQ(op2->loc.line, 3);
  EXPECT_EQ(op2->loc.col, 14);
  EXPECT_STREQ(op2->origin, "rope");
}

// ============================== round trips =================================

TEST_F(IrTest, RoundTripSpecExample) { ExpectRoundTrip("spec_example.ir"); }
TEST_F(IrTest, RoundTripAllPlainOps) { ExpectRoundTrip("ops_all.ir"); }
TEST_F(IrTest, RoundTripMixtureTwoExperts) { ExpectRoundTrip("mixture.ir"); }
TEST_F(IrTest, RoundTripSkip) { ExpectRoundTrip("skip.ir"); }
TEST_F(IrTest, RoundTripScanTwoStates) { ExpectRoundTrip("scan.ir"); }

TEST_F(IrTest, GoldensCoverEveryOpKind) {
  bool seen[IR_OP_COUNT_] = {};
  struct Walk {
    static void Block(const IrBlock *b, bool *seen) {
      for (int i = 0; i < b->ops.len; i++) {
        const IrOp *op = (const IrOp *)b->ops.data[i];
        seen[op->kind] = true;
        for (int r = 0; r < op->nregions; r++) Block(op->regions[r], seen);
      }
    }
  };
  for (const char *f : {"spec_example.ir", "ops_all.ir", "mixture.ir", "skip.ir", "scan.ir"}) {
    IrModule *m = Parse(Golden(f), f);
    ASSERT_NE(m, nullptr) << Diags();
    Walk::Block(m->body, seen);
  }
  for (int k = 0; k < IR_OP_COUNT_; k++) EXPECT_TRUE(seen[k]) << "no golden uses " << ir_op_name((IrOpKind)k);
}

TEST_F(IrTest, ParseFillsModuleTablesAndOps) {
  IrModule *m = Parse(Golden("spec_example.ir"), "spec_example.ir");
  ASSERT_NE(m, nullptr) << Diags();
  EXPECT_STREQ(m->name, "tiny");
  EXPECT_EQ(m->max_T, 1024);
  ASSERT_EQ(m->params.len, 3);
  const IrParam *p0 = (const IrParam *)m->params.data[0];
  EXPECT_STREQ(p0->name, "model.embeddings.weight");
  EXPECT_EQ(p0->init.kind, IR_INIT_NORMAL);
  EXPECT_EQ(p0->init.b, 1.0);
  EXPECT_TRUE(ir_shape_eq(p0->shape, Shape({256, 128})));
  EXPECT_EQ(((const IrParam *)m->params.data[2])->init.kind, IR_INIT_LOG_UNIFORM);
  ASSERT_EQ(m->inputs.len, 1);
  EXPECT_EQ(((const IrIO *)m->inputs.data[0])->dtype, IR_I32);
  EXPECT_TRUE(ir_shape_eq(((const IrIO *)m->inputs.data[0])->shape, Shape({T})));
  ASSERT_EQ(m->outputs.len, 1);
  ASSERT_EQ(m->states.len, 1);
  EXPECT_TRUE(ir_shape_eq(((const IrState *)m->states.data[0])->shape, Shape({4, 16, 32})));
  ASSERT_EQ(m->body->ops.len, 10);
  const IrOp *g = (const IrOp *)m->body->ops.data[2];
  EXPECT_EQ(g->kind, IR_OP_GATHER);
  EXPECT_EQ(g->in[0], ((const IrOp *)m->body->ops.data[1])->out[0]);  // operands resolve to the defs
  EXPECT_STREQ(diag_file_name(g->loc.file), "ex.gat");
  EXPECT_EQ(g->loc.line, 9);
  EXPECT_EQ(g->loc.col, 7);
  EXPECT_STREQ(g->origin, "embedding");
  const IrOp *topk = (const IrOp *)m->body->ops.data[3];
  ASSERT_EQ(topk->nout, 2);
  EXPECT_EQ(topk->out[1]->dtype, IR_I32);
  EXPECT_EQ(ir_op_int(topk, "k", 0), 2);
  const IrOp *idx = (const IrOp *)m->body->ops.data[7];
  ASSERT_EQ(idx->kind, IR_OP_INDEX);
  ASSERT_NE(idx->expr, nullptr);
  EXPECT_EQ(idx->nattr, 0);  // expr lives in op->expr, not as a string attribute
  EXPECT_EQ(idx->expr->kind, IR_EX_REDUCE);
  EXPECT_EQ(idx->expr->var, 2);
  EXPECT_EQ(idx->expr->extent, 128);
  const IrOp *scan = (const IrOp *)m->body->ops.data[8];
  ASSERT_EQ(scan->nregions, 1);
  const IrBlock *r = scan->regions[0];
  ASSERT_EQ(r->nargs, 2);
  ASSERT_EQ(r->nyield, 2);
  const IrOp *inner = (const IrOp *)r->ops.data[0];
  EXPECT_EQ(inner->in[1], r->args[0]);  // %10, the step
  EXPECT_EQ(inner->in[2], g->out[0]);   // %2 captured from the body
  EXPECT_EQ(inner->expr->b->idx[0].dyn, 1);
  EXPECT_EQ(r->yields[1], ((const IrOp *)r->ops.data[1])->out[0]);
  EXPECT_EQ(r->parent, scan);
}

TEST_F(IrTest, ParsesCommentsAndArbitraryValueNames) {
  const char *text =
      "# leading comment\n"
      "module m max_T 4   # trailing comment\n"
      "input \"x\" : f32[T]\n"
      "output \"y\" : f32[T]\n"
      "body {\n"
      "  %x = input {name = \"x\"} : f32[T]\n"
      "  %neg.1 = unary %x {fn = \"neg\"} : f32[T]  # comment\n"
      "  output %neg.1 {name = \"y\"}\n"
      "}\n";
  IrModule *m = Parse(text);
  ASSERT_NE(m, nullptr) << Diags();
  EXPECT_EQ(Print(m),
            "module m max_T 4\n"
            "input \"x\" : f32[T]\n"
            "output \"y\" : f32[T]\n"
            "body {\n"
            "  %0 = input {name = \"x\"} : f32[T]\n"
            "  %1 = unary %0 {fn = \"neg\"} : f32[T]\n"
            "  output %1 {name = \"y\"}\n"
            "}\n");
}

// ============================ parser errors =================================

struct BadInput {
  const char *text;
  const char *where;  // "line:col"
  const char *msg;
};

TEST_F(IrTest, ParserErrorsCarryLineAndColumn) {
  const BadInput cases[] = {
      {"module m max_T 4\nbody {\n  %0 = frobnicate : f32[]\n}\n", "3:8", "unknown op 'frobnicate'"},
      {"module m max_T 4\nbody {\n  %0 = unary %9 {fn = \"neg\"} : f32[]\n}\n", "3:14", "use of undefined value %9"},
      {"module m max_T 4\nbody {\n  %0 = position\n}\n", "4:1", "expected ':' and the result types"},
      {"module m max_T 4\ninput \"x\" : f32[T, 0]\nbody {\n}\n", "2:20", "dimension must be positive"},
      {"module m max_T 4\ninput \"x : f32[T]\nbody {\n}\n", "2:7", "unterminated string"},
      {"module m max_T 4\nbody {\n  %0 = const {value = 1.0} : f32[]\n  %0 = const {value = 2.0} : f32[]\n}\n",
       "4:3", "redefinition of value %0"},
      {"module m max_T 4\nbody {\n  %0, %1 = position : i32[T]\n}\n", "3:21", "2 results but 1 result types"},
      {"module m max_T 4\nbody {\n  %0 = const {value = 1.0} : f32[]\n  %1 = index %0 {expr = \"(add (load 0) (frob 1.0))\"} : f32[]\n}\n",
       "4:41", "unknown operator 'frob'"},
      {"module m max_T 4\nparam \"w\" : f32[2] init gaussian\nbody {\n}\n", "2:25", "expected an init rule"},
      {"module m max_T 4\nbody {\n  %0 = const {value = 1.0} : f32[]\n}\ntrailing\n", "5:1", "expected the end of the input"},
      {"module m max_T 4\nbody {\n  %0 = const {value = 1.0 : f32[]\n}\n", "3:27", "expected ','"},
      {"module m max_T 4\nbody {\n  %0 = scan {states = []} : f32[T] {\n    (%1 : i32[]) {\n    }\n  }\n}\n", "5:5",
       "expected 'yield'"},
  };
  for (const auto &c : cases) {
    ResetDiags();
    IrModule *m = Parse(c.text, "bad.ir");
    EXPECT_EQ(m, nullptr) << c.text;
    std::string d = Diags();
    std::string loc = std::string("bad.ir:") + c.where + ": error: ";
    EXPECT_NE(d.find(loc), std::string::npos) << "want " << loc << " in:\n" << d;
    EXPECT_NE(d.find(c.msg), std::string::npos) << "want '" << c.msg << "' in:\n" << d;
    EXPECT_NE(d.find("^"), std::string::npos) << "no caret line:\n" << d;
  }
}

TEST_F(IrTest, ExprParserReportsOffsets) {
  IrModule *m = NewModule("e", 4);
  struct {
    const char *text;
    int offset;
    const char *msg;
  } cases[] = {
      {"(load 0 v0+)", 11, "malformed index"},
      {"(add 1.0)", 8, "expected an expression"},
      {"(sum v2 (load 0 v2))", 5, "reduction binding"},
      {"(exp v1)", 5, "(var vK)"},
      {"(load 0 v0", 0, "unclosed '('"},
      {"(mul 1.0 2.0) 3.0", 14, "unexpected text"},
      {"(max v1:0 1.0)", 8, "extent"},
      {"(load 0 v0+v1+v2+v3+v4)", 21, "at most 4"},
  };
  for (const auto &c : cases) {
    char err[256] = "";
    int off = -7;
    EXPECT_EQ(ir_expr_parse(m, c.text, err, sizeof err, &off), nullptr) << c.text;
    EXPECT_EQ(off, c.offset) << c.text << ": " << err;
    EXPECT_NE(strstr(err, c.msg), nullptr) << c.text << ": " << err;
  }
}

TEST_F(IrTest, TruncatedInputsFailCleanly) {
  std::string text = StripComments(Golden("spec_example.ir"));
  size_t last = text.rfind('}');
  for (size_t n = 0; n <= last; n++) {
    diag_reset();
    IrModule *m = Parse(text.substr(0, n), "cut.ir");
    EXPECT_EQ(m, nullptr) << "prefix of length " << n << " parsed";
  }
  EXPECT_NE(Parse(text.substr(0, last + 1), "whole.ir"), nullptr);
}

TEST_F(IrTest, GarbledInputsNeverCrash) {
  // Deterministic byte mutations of every golden: parse, and when that
  // succeeds, verify and print; nothing may crash (run under ASan in CI).
  uint32_t seed = 12345;
  auto rnd = [&seed]() { return seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff; };
  const char alphabet[] = "%{}()[],:=\"#$-+*01T9vxe.\n \\";
  int parsed = 0;
  for (const char *f : {"spec_example.ir", "ops_all.ir", "mixture.ir", "skip.ir", "scan.ir"}) {
    std::string base = Golden(f);
    for (int iter = 0; iter < 300; iter++) {
      std::string t = base;
      int edits = 1 + rnd() % 3;
      for (int e = 0; e < edits; e++) {
        size_t pos = rnd() % t.size();
        switch (rnd() % 3) {
          case 0: t[pos] = alphabet[rnd() % (sizeof alphabet - 1)]; break;
          case 1: t.erase(pos, 1 + rnd() % 8); break;
          default: t.insert(pos, 1, alphabet[rnd() % (sizeof alphabet - 1)]); break;
        }
      }
      diag_reset();
      IrModule *m = Parse(t, "garbled.ir");
      if (!m) continue;
      parsed++;
      char err[1024];
      ir_verify(m, err, sizeof err);
      std::string p = Print(m);
      IrModule *m2 = Parse(p, "garbled2.ir");
      ASSERT_NE(m2, nullptr) << "printed form of an accepted input does not parse:\n" << p << Diags();
      EXPECT_EQ(Print(m2), p);
    }
  }
  EXPECT_GT(parsed, 0);  // some mutations (e.g. in comments) keep the text valid
}

// ============================== verifier ====================================

TEST_F(IrTest, VerifierAcceptsGoldens) {
  for (const char *f : {"spec_example.ir", "ops_all.ir", "mixture.ir", "skip.ir", "scan.ir"})
    EXPECT_EQ(VerifyText(Golden(f)), "") << f;
}

struct BadModule {
  const char *name;
  const char *text;
  const char *msg;
};

// Header shared by the invalid modules below.
const char *kHead =
    "module bad max_T 16\n"
    "param \"w\" : f32[4, 8] init linear\n"
    "input \"x\" : f32[T, 8]\n"
    "input \"ids\" : i32[T]\n"
    "output \"y\" : f32[T, 4]\n"
    "state \"k\" : f32[16, 2, 4] = 0.0\n"
    "state \"v\" : f32[8, 2, 4] = 0.0\n"
    "state \"h\" : f32[4] = 0.0\n"
    "body {\n"
    "  %x = input {name = \"x\"} : f32[T, 8]\n"
    "  %ids = input {name = \"ids\"} : i32[T]\n"
    "  %w = param {name = \"w\"} : f32[4, 8]\n"
    "  %y = linear %x, %w : f32[T, 4]\n"
    "  %q = reshape %x : f32[T, 2, 4]\n";
const char *kTail = "  output %y {name = \"y\"}\n}\n";

TEST_F(IrTest, VerifierRejectsInvalidModules) {
  const BadModule cases[] = {
      {"broadcast", "  %a = const {value = 1.0} : f32[3]\n  %b = binary %y, %a {fn = \"add\"} : f32[T, 4]\n",
       "do not broadcast"},
      {"T broadcasts only with T or 1", "  %a = const {value = 1.0} : f32[5, 4]\n  %b = binary %y, %a {fn = \"add\"} : f32[T, 4]\n",
       "do not broadcast"},
      {"binary result shape", "  %b = binary %y, %y {fn = \"add\"} : f32[T, 8]\n", "but the op computes f32[T, 4]"},
      {"gather index dtype", "  %g = gather %w, %x : f32[T, 8, 8]\n", "must be i32"},
      {"topk index result dtype", "  %v, %i = topk %y {k = 2} : f32[T, 2], f32[T, 2]\n",
       "result 1 has type f32[T, 2], but the op computes i32[T, 2]"},
      {"topk k too large", "  %v, %i = topk %y {k = 5} : f32[T, 5], i32[T, 5]\n", "k = 5 is out of range"},
      {"topk result count", "  %v = topk %y {k = 2} : f32[T, 2]\n", "has 2 results, not 1"},
      {"matmul inner dims", "  %m = matmul %x, %w : f32[T, 8]\n", "inner dimensions differ"},
      {"linear weight", "  %l = linear %y, %w : f32[T, 4]\n", "does not match input"},
      {"matmul dtype", "  %c = cast %x : i32[T, 8]\n  %m = matmul %c, %c : f32[T, 8]\n", "operand 0 must be f32"},
      {"softmax axis", "  %s = softmax %y {axis = 2} : f32[T, 4]\n", "axis 2 is out of range for rank 2"},
      {"reduce axes", "  %r = reduce %y {kind = \"sum\", axes = [3]} : f32[T]\n", "axis 3 is out of range"},
      {"reduce kind", "  %r = reduce %y {kind = \"prod\", axes = [1]} : f32[T]\n", "reduce kind \"prod\""},
      {"split sizes", "  %a, %b = split %y {axis = 1, sizes = [1, 2]} : f32[T, 1], f32[T, 2]\n", "sum to 3"},
      {"slice bounds", "  %s = slice %y {axis = 1, start = 2, stop = 6} : f32[T, 4]\n", "slice bounds [2, 6)"},
      {"reshape count", "  %r = reshape %y : f32[T, 3]\n", "element counts differ"},
      {"transpose perm", "  %t = transpose %q {perm = [0, 0, 2]} : f32[T, 2, 4]\n", "not a permutation"},
      {"missing attribute", "  %u = unary %y : f32[T, 4]\n", "missing attribute 'fn'"},
      {"unknown function", "  %u = unary %y {fn = \"add\"} : f32[T, 4]\n", "not a unary function"},
      {"conv act", "  %cw = const {value = 1.0} : f32[8, 1, 1]\n  %c = conv1d %x, %cw {act = \"relu\"} : f32[T, 8]\n",
       "act \"relu\""},
      {"conv state shape", "  %cw = const {value = 1.0} : f32[8, 1, 3]\n  %c = conv1d %x, %cw {act = \"none\", state = 2} : f32[T, 8]\n",
       "state: state slot 2 \"h\" is f32[4], but the op needs f32[2, 8]"},
      {"attention state slot shape",
       "  %k = reshape %x : f32[T, 2, 4]\n  %a = attention %q, %k, %k {scale = 0.5, state_k = 0, state_v = 1} : f32[T, 2, 4]\n",
       "state_v: state slot 1 \"v\" is f32[8, 2, 4], but the op needs f32[16, 2, 4]"},
      {"attention missing slot",
       "  %k = reshape %x : f32[T, 2, 4]\n  %a = attention %q, %k, %k {scale = 0.5, state_k = 0, state_v = 7} : f32[T, 2, 4]\n",
       "state_v = 7 names no state slot"},
      {"scan states vs region args",
       "  %s = scan {states = [2]} : f32[T, 4] {\n    (%t : i32[]) {\n      yield %t\n    }\n  }\n",
       "takes the step and 1 states (2 arguments), not 1"},
      {"scan yield shape",
       "  %s = scan {states = [2]} : f32[T, 4] {\n    (%t : i32[], %h : f32[4]) {\n"
       "      %z = const {value = 0.0} : f32[2]\n      yield %z, %h\n    }\n  }\n",
       "scan yields f32[2] for state 0"},
      {"scan result from emit",
       "  %s = scan {states = [2]} : f32[T, 8] {\n    (%t : i32[], %h : f32[4]) {\n      yield %h, %h\n    }\n  }\n",
       "but the op computes f32[T, 4]"},
      {"mixture regions vs experts",
       "  %v, %i = topk %y {k = 2} : f32[T, 2], i32[T, 2]\n"
       "  %m = mixture %i, %v, %y {experts = 3} : f32[T, 4] {\n"
       "    (%a : f32[T, 4]) {\n      yield %a\n    }\n    (%b : f32[T, 4]) {\n      yield %b\n    }\n  }\n",
       "experts = 3, but the op has 2 regions"},
      {"mixture region argument",
       "  %v, %i = topk %y {k = 2} : f32[T, 2], i32[T, 2]\n"
       "  %m = mixture %i, %v, %y {experts = 2} : f32[T, 4] {\n"
       "    (%a : f32[T, 4]) {\n      yield %a\n    }\n    (%b : f32[T, 8]) {\n      yield %b\n    }\n  }\n",
       "region 1 argument 0 is f32[T, 8], but must be f32[T, 4]"},
      {"per-token capture into a mixture region",
       "  %v, %i = topk %y {k = 2} : f32[T, 2], i32[T, 2]\n"
       "  %m = mixture %i, %v, %y {experts = 1} : f32[T, 4] {\n"
       "    (%a : f32[T, 4]) {\n      %b = binary %a, %y {fn = \"add\"} : f32[T, 4]\n      yield %b\n    }\n  }\n",
       "captured across a mixture/skip region boundary"},
      {"skip yield", "  %c = cast %ids : f32[T]\n  %s = skip %c, %y, %x : f32[T, 4] {\n    (%a : f32[T, 8]) {\n      yield %a\n    }\n  }\n",
       "the region yields f32[T, 8], but the kept value (operand 1) is f32[T, 4]"},
      {"unknown param", "  %p = param {name = \"nope\"} : f32[4, 8]\n", "there is no param \"nope\""},
      {"param shape", "  %p = param {name = \"w\"} : f32[8, 4]\n", "result 0 has type f32[8, 4], but the op computes f32[4, 8]"},
      {"unknown input", "  %p = input {name = \"nope\"} : f32[T, 8]\n", "there is no module input \"nope\""},
      {"output twice", "  output %y {name = \"y\"}\n", "output \"y\" is produced more than once"},
      {"output type", "  output %x {name = \"y\"}\n", "declared f32[T, 4], but the value is f32[T, 8]"},
      {"index out of bounds", "  %i = index %w {expr = \"(load 0 v0 v1+1)\"} : f32[4, 8]\n",
       "ranges over [1, 8], out of bounds for a dimension of size 8"},
      {"index negative", "  %i = index %w {expr = \"(load 0 v0 -1*v1)\"} : f32[4, 8]\n", "ranges over [-7, 0]"},
      {"index unbound variable", "  %i = index %w {expr = \"(load 0 v0 v2)\"} : f32[4, 8]\n", "uses v2, which is not bound"},
      {"index var expression unbound", "  %i = index %w {expr = \"(var v5)\"} : f32[4, 8]\n", "(var v5), which is not bound"},
      {"index rank", "  %i = index %w {expr = \"(load 0 v0)\"} : f32[4, 8]\n", "load 0 has 1 indices, but operand 0 is f32[4, 8]"},
      {"index operand number", "  %i = index %w {expr = \"(load 3 v0 v1)\"} : f32[4, 8]\n", "loads operand 3, but the op has 1"},
      {"index T with offset", "  %i = index %x {expr = \"(load 0 v0+1 v1)\"} : f32[T, 8]\n", "coefficient 1 and offset 0"},
      {"index T var into static dim", "  %i = index %w {expr = \"(load 0 v0 v1)\"} : f32[T, 8]\n",
       "ranges over [0, T) but indexes a dimension of size 4"},
      {"index dyn not scalar i32", "  %i = index %x, %ids {expr = \"(load 0 $1 v0)\"} : f32[8]\n",
       "must be a scalar i32[] operand"},
      {"index reduction shadowing", "  %i = index %w {expr = \"(sum v1:8 (load 0 v0 v1))\"} : f32[4, 8]\n",
       "rebinds v1"},
      {"index T reduction", "  %i = index %x {expr = \"(sum v1:T (load 0 v1 2*v0))\"} : f32[8]\n",
       "ranges over [0, 14], out of bounds for a dimension of size 8"},
  };
  std::vector<std::string> kinds;
  for (const auto &c : cases) {
    std::string err = VerifyText(std::string(kHead) + c.text + kTail);
    EXPECT_NE(err, "") << c.name << ": accepted";
    EXPECT_NE(err.find(c.msg), std::string::npos) << c.name << ": message is\n  " << err << "\nwant\n  " << c.msg;
    EXPECT_EQ(err[0], '`') << c.name << ": the message should start with the op's text: " << err;
  }
  // The module used as the base is itself valid.
  EXPECT_EQ(VerifyText(std::string(kHead) + kTail), "");
}

TEST_F(IrTest, VerifierMessageShowsTheOffendingOp) {
  std::string err = VerifyText(std::string(kHead) + "  %s = softmax %y {axis = 2} : f32[T, 4]\n" + kTail);
  EXPECT_EQ(err, "`%5 = softmax %3 {axis = 2} : f32[T, 4]`: axis 2 is out of range for rank 2");
}

TEST_F(IrTest, VerifierRejectsMissingOutput) {
  std::string err = VerifyText(
      "module m max_T 4\noutput \"y\" : f32[T]\noutput \"z\" : f32[T]\nbody {\n"
      "  %0 = position : i32[T]\n  %1 = cast %0 : f32[T]\n  output %1 {name = \"y\"}\n}\n");
  EXPECT_NE(err.find("module output \"z\" is never produced"), std::string::npos) << err;
}

TEST_F(IrTest, VerifierAcceptsIndexBoundaryCases) {
  // Loads that touch exactly the first and last elements, a scan step
  // indexing a static dimension >= max_T, and a dyn operand into a T dim.
  std::string text =
      "module ok max_T 8\n"
      "param \"w\" : f32[4, 8] init linear\n"
      "param \"cache\" : f32[8, 3] init linear\n"
      "input \"x\" : f32[T, 8]\n"
      "output \"y\" : f32[T, 4]\n"
      "state \"h\" : f32[3] = 0.0\n"
      "body {\n"
      "  %0 = input {name = \"x\"} : f32[T, 8]\n"
      "  %1 = param {name = \"w\"} : f32[4, 8]\n"
      "  %2 = index %1 {expr = \"(add (load 0 -1*v0+3 -1*v1+7) (load 0 v0 v1))\"} : f32[4, 8]\n"
      "  %3 = param {name = \"cache\"} : f32[8, 3]\n"
      "  %4 = scan {states = [0]} : f32[T, 3] {\n"
      "    (%5 : i32[], %6 : f32[3]) {\n"
      "      %7 = index %3, %6, %0, %5 {expr = \"(add (load 0 $3 v0) (mul (load 1 v0) (load 2 $3 2*v0+1)))\"} : f32[3]\n"
      "      yield %7, %7\n"
      "    }\n"
      "  }\n"
      "  %8 = index %0, %1 {expr = \"(sum v2:8 (mul (load 0 v0 v2) (load 1 v1 v2)))\"} : f32[T, 4]\n"
      "  output %8 {name = \"y\"}\n"
      "}\n";
  EXPECT_EQ(VerifyText(text), "");
  // ... while one past either end is rejected
  std::string past = text;
  past.replace(past.find("-1*v1+7"), 7, "-1*v1+8");
  EXPECT_NE(VerifyText(past).find("ranges over [1, 8]"), std::string::npos);
  // ... and an unknown dyn operand (not a scan step) may not index a static dim
  std::string unknown =
      "module u max_T 8\nparam \"c\" : f32[8, 3] init linear\noutput \"y\" : f32[3]\nbody {\n"
      "  %0 = param {name = \"c\"} : f32[8, 3]\n  %1 = const {value = 0.0} : i32[]\n"
      "  %2 = index %0, %1 {expr = \"(load 0 $1 v0)\"} : f32[3]\n  output %2 {name = \"y\"}\n}\n";
  EXPECT_NE(VerifyText(unknown).find("ranges over [0, T) but indexes a dimension of size 8"), std::string::npos);
}

TEST_F(IrTest, VerifierAcceptsInterpreterConventions) {
  // Negative axes count from the end; a scan may emit several values (one
  // result each); rope takes [T, ..., D] and defaults base.
  std::string text =
      "module conv max_T 8\n"
      "input \"x\" : f32[T, 2, 4]\n"
      "output \"y\" : f32[T, 2]\n"
      "state \"h\" : f32[4] = 0.0\n"
      "body {\n"
      "  %0 = input {name = \"x\"} : f32[T, 2, 4]\n"
      "  %1 = softmax %0 {axis = -1} : f32[T, 2, 4]\n"
      "  %2 = reduce %1 {kind = \"max\", axes = [-1]} : f32[T, 2]\n"
      "  %3, %4 = split %1 {axis = -1, sizes = [1, 3]} : f32[T, 2, 1], f32[T, 2, 3]\n"
      "  %5 = reshape %0 : f32[T, 8]\n"
      "  %6 = rope %5 {dims = 8} : f32[T, 8]\n"
      "  %7, %8 = scan {states = [0]} : f32[T, 4], f32[T] {\n"
      "    (%9 : i32[], %10 : f32[4]) {\n"
      "      %11 = reduce %10 {kind = \"sum\", axes = [0]} : f32[]\n"
      "      yield %10, %10, %11\n"
      "    }\n"
      "  }\n"
      "  output %2 {name = \"y\"}\n"
      "}\n";
  EXPECT_EQ(VerifyText(text), "");
  std::string bad = text;
  bad.replace(bad.find("f32[T, 4], f32[T] {"), 19, "f32[T, 4], f32[T, 4] {");
  EXPECT_NE(VerifyText(bad).find("result 1 has type f32[T, 4], but the op computes f32[T]"), std::string::npos);
  bad = text;
  bad.replace(bad.find("axis = -1} : f32[T, 2, 4]"), 9, "axis = -4");
  EXPECT_NE(VerifyText(bad).find("axis -4 is out of range for rank 3"), std::string::npos);
}

// SSA violations cannot be written in the text form (the parser resolves
// names in order), so these modules are built with the constructors.
TEST_F(IrTest, VerifierRejectsUseBeforeDefinition) {
  IrModule *m = NewModule("ssa", 4);
  IrOp *neg = ir_op_new(m, m->body, IR_OP_UNARY, 0, nullptr, kNoLoc);
  ir_op_set_str(m, neg, "fn", "neg");
  IrOp *c = ir_op_new(m, m->body, IR_OP_CONST, 0, nullptr, kNoLoc);
  ir_op_set_float(m, c, "value", 1.0);
  IrValue *cv = ir_op_add_result(m, c, IR_F32, Shape({}));
  ir_op_add_operand(m, neg, cv);  // uses the const defined after it
  ir_op_add_result(m, neg, IR_F32, Shape({}));
  char err[512];
  EXPECT_EQ(ir_verify(m, err, sizeof err), -1);
  EXPECT_NE(strstr(err, "operand 0 is not defined before this point"), nullptr) << err;
  EXPECT_NE(strstr(err, "unary"), nullptr) << err;
}

TEST_F(IrTest, VerifierRejectsRegionValueUsedOutside) {
  IrModule *m = NewModule("ssa", 4);
  ir_module_add_state(m, "s", IR_F32, Shape({2}), 0.0);
  IrOp *scan = ir_op_new(m, m->body, IR_OP_SCAN, 0, nullptr, kNoLoc);
  int64_t st[1] = {0};
  ir_op_set_ints(m, scan, "states", 1, st);
  IrBlock *r = ir_op_add_region(m, scan);
  ir_block_add_arg(m, r, IR_I32, Shape({}));
  IrValue *s = ir_block_add_arg(m, r, IR_F32, Shape({2}));
  IrValue *ys[2] = {s, s};
  ir_block_set_yields(m, r, 2, ys);
  ir_op_add_result(m, scan, IR_F32, Shape({T, 2}));
  IrOp *leak = ir_op_new(m, m->body, IR_OP_UNARY, 1, &s, kNoLoc);  // the region's %s, outside
  ir_op_set_str(m, leak, "fn", "neg");
  ir_op_add_result(m, leak, IR_F32, Shape({2}));
  char err[512];
  EXPECT_EQ(ir_verify(m, err, sizeof err), -1);
  EXPECT_NE(strstr(err, "not defined before this point"), nullptr) << err;
}

TEST_F(IrTest, VerifierRejectsValueDefinedTwice) {
  IrModule *m = NewModule("ssa", 4);
  IrOp *c = ir_op_new(m, m->body, IR_OP_CONST, 0, nullptr, kNoLoc);
  ir_op_set_float(m, c, "value", 1.0);
  ir_op_add_result(m, c, IR_F32, Shape({}));
  IrOp *d = ir_op_new(m, m->body, IR_OP_CONST, 0, nullptr, kNoLoc);
  ir_op_set_float(m, d, "value", 2.0);
  IrValue *dv = ir_op_add_result(m, d, IR_F32, Shape({}));
  dv->id = 0;  // a broken pass reusing an id
  char err[512];
  EXPECT_EQ(ir_verify(m, err, sizeof err), -1);
  EXPECT_NE(strstr(err, "defined twice"), nullptr) << err;
}

}  // namespace
