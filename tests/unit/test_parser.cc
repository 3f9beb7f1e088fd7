// test_parser.cc — the .gat front end (grammar/lexer.l, grammar/parser.y,
// compiler/front/ast.c): every construct of docs/language.md, precedence, newline
// handling, and error reporting with exact positions.
//
// Expected trees are written by hand from the grammar and precedence rules in
// docs/language.md, in the S-expression format documented at the top of
// compiler/front/ast.c; error expectations are the positions a reader counts in the
// source text.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" {
#include "ast.h"
#include "diag.h"
}

namespace {

// One parse with diagnostics captured into `errors`.
struct Parsed {
  Arena arena;
  AstFile *file = nullptr;
  std::string errors;
  int nerrors = 0;

  explicit Parsed(const std::string &src, const char *name = "t.gat") {
    arena_init(&arena);
    diag_reset();
    char *buf = nullptr;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    diag_set_stream(mem);
    file = parse_source(&arena, name, src.c_str());
    fflush(mem);
    errors.assign(buf, len);
    nerrors = diag_error_count();
    diag_set_stream(nullptr);
    fclose(mem);
    free(buf);
  }
  ~Parsed() {
    arena_free(&arena);
    diag_reset();
  }
  std::string dump() const {
    char *buf = nullptr;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    ast_dump(mem, file);
    fclose(mem);
    std::string s(buf, len);
    free(buf);
    return s;
  }
  const AstDecl *decl(int i) const {
    EXPECT_LT(i, file->decls.len);
    return static_cast<const AstDecl *>(file->decls.items[i]);
  }
  const AstStmt *stmt(int d, int i) const {
    const AstDecl *dd = decl(d);
    EXPECT_LT(i, dd->body.len);
    return static_cast<const AstStmt *>(dd->body.items[i]);
  }
};

std::string expr_text(const AstExpr *e) {
  char *buf = nullptr;
  size_t len = 0;
  FILE *mem = open_memstream(&buf, &len);
  ast_dump_expr(mem, e);
  fclose(mem);
  std::string s(buf, len);
  free(buf);
  return s;
}

// Parses `x = <src>` inside a model and returns the dump of the right side.
std::string expr(const std::string &src) {
  Parsed p("model m {\n  x = " + src + "\n}\n");
  EXPECT_EQ(p.nerrors, 0) << src << "\n" << p.errors;
  if (p.nerrors || !p.file || p.file->decls.len != 1 || p.decl(0)->body.len != 1) return "<error>";
  return expr_text(p.stmt(0, 0)->value);
}

// Parses statements inside a model and returns the model's dump line.
std::string stmts(const std::string &body) {
  Parsed p("model m {\n" + body + "\n}\n");
  EXPECT_EQ(p.nerrors, 0) << body << "\n" << p.errors;
  return p.dump();
}

bool contains(const std::string &hay, const std::string &needle) {
  return hay.find(needle) != std::string::npos;
}

// ---- whole examples from docs/language.md ----------------------------------------

TEST(Parser, DocsFirstModel) {
  Parsed p(R"(import std

model tiny_lm {
  const vocab = 256, d = 128, n_layers = 2
  max T = 1024                       # the longest sequence the compiled code accepts
  input  tokens : i32[T]             # T: the sequence length of one call
  output logits : f32[T, vocab]

  x = embedding(tokens, vocab, d) @ "model.embeddings"
  repeat i in 0..n_layers @ "model.layers.{i}" {
    x = x + gla(rms_norm(x) @ "attn_norm", heads: 4) @ "attn"
    x = x + swiglu(rms_norm(x) @ "mlp_norm", hidden: 352) @ "mlp"
  }
  logits = linear(rms_norm(x) @ "model.norm", vocab) @ "lm_head"
}
)");
  ASSERT_EQ(p.nerrors, 0) << p.errors;
  EXPECT_EQ(p.dump(),
            "(import std)\n"
            "(model tiny_lm"
            " (const (vocab 256) (d 128) (n_layers 2))"
            " (maxseq T 1024)"
            " (input tokens (i32 T))"
            " (output logits (f32 T vocab))"
            " (assign (x) (call embedding tokens vocab d @\"model.embeddings\"))"
            " (repeat i 0 n_layers @\"model.layers.{i}\""
            " (assign (x) (+ x (call gla (call rms_norm x @\"attn_norm\") heads:4 @\"attn\")))"
            " (assign (x) (+ x (call swiglu (call rms_norm x @\"mlp_norm\") hidden:352 @\"mlp\"))))"
            " (assign (logits) (call linear (call rms_norm x @\"model.norm\") vocab @\"lm_head\")))\n");
}

TEST(Parser, GlaLayer) {
  Parsed p(R"(
layer gla(x: f32[T, D], heads: int, expand_k: f32 = 0.5, expand_v: f32 = 1.0,
          gate_rank: int = 16) -> f32[T, D] {
  let H = heads, K = D * expand_k / H, V = D * expand_v / H
  q  = linear(x, H*K) @ "q_proj"  as [T, H, K]
  k  = linear(x, H*K) @ "k_proj"  as [T, H, K]
  v  = linear(x, H*V) @ "v_proj"  as [T, H, V]
  gk = logsigmoid(linear(linear(x, gate_rank) @ "gk_proj.0", H*K, bias: true) @ "gk_proj.1") / 16
         as [T, H, K]
  o = scan t with S: f32[H, K, V] = 0 {
        S[h, i, j] = exp(gk[t, h, i]) * S[h, i, j] + k[t, h, i] * v[t, h, j]
        emit[h, j] = sum(i) q[t, h, i] * S[h, i, j] * K ** -0.5
      }
  o = rms_norm(o, over: V) @ "g_norm_swish_gate" * silu(linear(x, H*V) @ "g_proj" as [T, H, V])
  return linear(o as [T, H*V], D) @ "o_proj"
}
)");
  ASSERT_EQ(p.nerrors, 0) << p.errors;
  ASSERT_EQ(p.file->decls.len, 1);
  const AstDecl *d = p.decl(0);
  EXPECT_EQ(d->kind, AST_DECL_LAYER);
  EXPECT_STREQ(d->name, "gla");
  ASSERT_EQ(d->params.len, 5);
  ASSERT_EQ(d->rets.len, 1);
  ASSERT_EQ(d->body.len, 8);
  EXPECT_EQ(p.dump(),
            "(layer gla (params (x (f32 T D)) (heads int) (expand_k float 0.5) (expand_v float 1.0)"
            " (gate_rank int 16)) (-> (f32 T D))"
            " (let (H heads) (K (/ (* D expand_k) H)) (V (/ (* D expand_v) H)))"
            " (assign (q) (as (call linear x (* H K) @\"q_proj\") T H K))"
            " (assign (k) (as (call linear x (* H K) @\"k_proj\") T H K))"
            " (assign (v) (as (call linear x (* H V) @\"v_proj\") T H V))"
            // `as` is postfix and binds tighter than '/', also across the line break
            " (assign (gk) (/ (call logsigmoid (call linear (call linear x gate_rank @\"gk_proj.0\")"
            " (* H K) bias:true @\"gk_proj.1\")) (as 16 T H K)))"
            " (assign (o) (scan t ((S (f32 H K V) 0))"
            " (assign (S [h i j]) (+ (* (call exp (index gk t h i)) (index S h i j))"
            " (* (index k t h i) (index v t h j))))"
            " (assign (emit [h j]) (sum (i) (* (* (index q t h i) (index S h i j)) (** K (neg 0.5)))))))"
            " (assign (o) (* (call rms_norm o over:V @\"g_norm_swish_gate\")"
            " (call silu (as (call linear x (* H V) @\"g_proj\") T H V))))"
            " (return (call linear (as o T (* H V)) D @\"o_proj\")))\n");
}

TEST(Parser, SwigluLayer) {
  Parsed p(R"(layer swiglu(x: f32[T, D], hidden: int) -> f32[T, D] {
  return linear(silu(linear(x, hidden) @ "gate_proj") * linear(x, hidden) @ "up_proj", D) @ "down_proj"
})");
  ASSERT_EQ(p.nerrors, 0) << p.errors;
  EXPECT_EQ(p.dump(),
            "(layer swiglu (params (x (f32 T D)) (hidden int)) (-> (f32 T D))"
            " (return (call linear (* (call silu (call linear x hidden @\"gate_proj\"))"
            " (call linear x hidden @\"up_proj\")) D @\"down_proj\")))\n");
}

TEST(Parser, MixtureExample) {
  std::string d = stmts(R"(
p = softmax(linear(x, 8) @ "gate")
w, idx = topk(p, 2)
y = mixture e in 0..8 by idx weighted w / sum(w, axis: -1) {
  return swiglu(x, hidden: 704) @ "experts.{e}"
})");
  EXPECT_EQ(d,
            "(model m (assign (p) (call softmax (call linear x 8 @\"gate\")))"
            " (assign (w idx) (call topk p 2))"
            " (assign (y) (mixture e 0 8 idx (/ w (call sum w axis:(neg 1))) ()"
            " (call swiglu x hidden:704 @\"experts.{e}\"))))\n");
}

TEST(Parser, MixtureBodyKeepsStatementsBeforeReturn) {
  Parsed p("model m {\n y = mixture e in 0..n by i weighted w {\n  h = f(x)\n  return h\n }\n}\n");
  ASSERT_EQ(p.nerrors, 0) << p.errors;
  const AstExpr *m = p.stmt(0, 0)->value;
  ASSERT_EQ(m->kind, AST_EXPR_MIXTURE);
  EXPECT_EQ(m->body.len, 1);
  EXPECT_EQ(expr_text(m->result), "h");
  EXPECT_EQ(p.dump(), "(model m (assign (y) (mixture e 0 n i w ((assign (h) (call f x))) h)))\n");
}

TEST(Parser, SkipExample) {
  std::string d = stmts(R"(
g = sigmoid(linear(h, d, bias: true) @ "gate")
x = x + g * swiglu(h, hidden: 1408) @ "mlp" skip when mean(g) < 0.1)");
  EXPECT_EQ(d,
            "(model m (assign (g) (call sigmoid (call linear h d bias:true @\"gate\")))"
            " (assign (x) (+ x (* g (call swiglu h hidden:1408 @\"mlp\")))"
            " (skip-when (< (call mean g) 0.1))))\n");
}

TEST(Parser, ScanWithSeveralStates) {
  std::string d = stmts(
      "o = scan t with h: f32[D] = 0, c: f32[D] = 0.5 {\n"
      "  c = c + x[t]\n  h = tanh(c)\n  emit = h\n}");
  EXPECT_EQ(d,
            "(model m (assign (o) (scan t ((h (f32 D) 0) (c (f32 D) 0.5))"
            " (assign (c) (+ c (index x t))) (assign (h) (call tanh c)) (assign (emit) h))))\n");
}

// ---- precedence -------------------------------------------------------------------

TEST(Precedence, Arithmetic) {
  EXPECT_EQ(expr("a + b * c"), "(+ a (* b c))");
  EXPECT_EQ(expr("a * b + c"), "(+ (* a b) c)");
  EXPECT_EQ(expr("a - b - c"), "(- (- a b) c)");
  EXPECT_EQ(expr("a / b % c"), "(% (/ a b) c)");
  EXPECT_EQ(expr("(a + b) * c"), "(* (+ a b) c)");
}

TEST(Precedence, PowerAndUnaryMinus) {
  EXPECT_EQ(expr("-x ** 2"), "(neg (** x 2))");
  EXPECT_EQ(expr("a ** b ** c"), "(** a (** b c))");
  EXPECT_EQ(expr("K ** -0.5"), "(** K (neg 0.5))");
  EXPECT_EQ(expr("-a * b"), "(* (neg a) b)");
  EXPECT_EQ(expr("a - -b"), "(- a (neg b))");
  EXPECT_EQ(expr("2 ** -x * y"), "(* (** 2 (neg x)) y)");
}

TEST(Precedence, LogicAndComparison) {
  EXPECT_EQ(expr("a or b and c"), "(or a (and b c))");
  EXPECT_EQ(expr("a and b or c"), "(or (and a b) c)");
  EXPECT_EQ(expr("not a and b"), "(and (not a) b)");
  EXPECT_EQ(expr("a < b + 1"), "(< a (+ b 1))");
  EXPECT_EQ(expr("a + 1 >= b * 2 and c != d"), "(and (>= (+ a 1) (* b 2)) (!= c d))");
  EXPECT_EQ(expr("a == b"), "(== a b)");
  EXPECT_EQ(expr("a <= b"), "(<= a b)");
  EXPECT_EQ(expr("a > b"), "(> a b)");
}

TEST(Precedence, ComparisonsAreNonAssociative) {
  Parsed p("model m {\n  x = a < b < c\n}\n");
  EXPECT_EQ(p.nerrors, 1);
  EXPECT_TRUE(contains(p.errors, "t.gat:2:13: error: unexpected '<'")) << p.errors;
}

TEST(Precedence, ReductionExtendsRight) {
  EXPECT_EQ(expr("a + sum(i) b[i] * c[i]"), "(+ a (sum (i) (* (index b i) (index c i))))");
  EXPECT_EQ(expr("sum(i) b[i] + c"), "(sum (i) (+ (index b i) c))");
  EXPECT_EQ(expr("(sum(i) b[i]) + c"), "(+ (sum (i) (index b i)) c)");
  EXPECT_EQ(expr("sum(i, j) a[i, j]"), "(sum (i j) (index a i j))");
  EXPECT_EQ(expr("max(k) min(j) a[k, j]"), "(max (k) (min (j) (index a k j)))");
  EXPECT_EQ(expr("mean(i) (x[i] - m) ** 2"), "(mean (i) (** (- (index x i) m) 2))");
  EXPECT_EQ(expr("sum(i) not m[i]"), "(sum (i) (not (index m i)))");
}

TEST(Precedence, ReductionOrCall) {
  EXPECT_EQ(expr("max(i) x[i]"), "(max (i) (index x i))");
  EXPECT_EQ(expr("max(a, b) - 1"), "(- (call max a b) 1)");
  EXPECT_EQ(expr("max(a, b)"), "(call max a b)");
  EXPECT_EQ(expr("min(a, 0.0)"), "(call min a 0.0)");
  EXPECT_EQ(expr("mean(g)"), "(call mean g)");
  EXPECT_EQ(expr("sum(x, axis: -1)"), "(call sum x axis:(neg 1))");
  // unary minus after the ')' makes it a call minus something
  EXPECT_EQ(expr("sum(i) -x[i]"), "(- (call sum i) (index x i))");
  EXPECT_EQ(expr("sum(i) (-x[i])"), "(sum (i) (neg (index x i)))");
  EXPECT_EQ(expr("f(sum(x), 2)"), "(call f (call sum x) 2)");
  EXPECT_EQ(expr("sum(x) @ \"s\""), "(call sum x @\"s\")");
  EXPECT_EQ(expr("sum(x) as [T]"), "(as (call sum x) T)");
  EXPECT_EQ(expr("sum(i) 2.0"), "(sum (i) 2.0)");
  EXPECT_EQ(expr("sum(i) (x[i])"), "(sum (i) (index x i))");
  EXPECT_EQ(expr("sum(i) \"s\""), "(sum (i) \"s\")");
  EXPECT_EQ(expr("sum(i) true"), "(sum (i) true)");
}

TEST(Precedence, ReductionVariablesMustBeNames) {
  Parsed p("model m {\n  x = sum(i, 2) a[i]\n  y = max(k: j) a[j]\n}\n");
  EXPECT_EQ(p.nerrors, 2) << p.errors;
  EXPECT_TRUE(contains(p.errors, "t.gat:2:14: error: the variables of a reduction 'sum(...) expr' must be plain names"))
      << p.errors;
  EXPECT_TRUE(contains(p.errors, "t.gat:3:11: error: the variables of a reduction 'max(...) expr'")) << p.errors;
}

TEST(Precedence, PostfixAsAndScope) {
  EXPECT_EQ(expr("linear(x, 4) @ \"q\" as [T, 2, 2]"), "(as (call linear x 4 @\"q\") T 2 2)");
  EXPECT_EQ(expr("a * b as [T]"), "(* a (as b T))");
  EXPECT_EQ(expr("x as [T] as [T, 1]"), "(as (as x T) T 1)");
  EXPECT_EQ(expr("f(x) @ \"a\" + g(y) @ \"b\""), "(+ (call f x @\"a\") (call g y @\"b\"))");
  EXPECT_EQ(expr("-x as [T]"), "(neg (as x T))");
  EXPECT_EQ(expr("x ** y as [T]"), "(** x (as y T))");
  EXPECT_EQ(expr("x as []"), "(as x)");
}

TEST(Precedence, ScopeOnlyAfterCall) {
  Parsed p("model m {\n  x = y @ \"s\"\n}\n");
  EXPECT_EQ(p.nerrors, 1);
  EXPECT_TRUE(contains(p.errors, "t.gat:2:9: error: a scope '@ \"...\"' can only follow a call")) << p.errors;
}

// ---- statements and declarations -------------------------------------------------

TEST(Statements, AllForms) {
  std::string d = stmts(R"(
  const a = 1, b = a * 2
  let H = 4
  input tokens : i32[T]
  output y : f32[T, D]
  param w : f32[D]
  param u : f32[D, 2] = normal(0, 0.02)
  max T = 2048
  w2, idx = topk(p, 2)
  y[i, j] = sum(k) a[i, k] * b[k, j]
  z = x skip when c
  repeat i in 0..n { x = x + 1 }
  repeat i in 1..n+1 @ "l.{i}" { }
)");
  EXPECT_EQ(d,
            "(model m (const (a 1) (b (* a 2))) (let (H 4)) (input tokens (i32 T)) (output y (f32 T D))"
            " (param w (f32 D)) (param u (f32 D 2) (call normal 0 0.02)) (maxseq T 2048)"
            " (assign (w2 idx) (call topk p 2))"
            " (assign (y [i j]) (sum (k) (* (index a i k) (index b k j))))"
            " (assign (z) x (skip-when c))"
            " (repeat i 0 n (assign (x) (+ x 1)))"
            " (repeat i 1 (+ n 1) @\"l.{i}\"))\n");
}

TEST(Statements, AssignFieldsAndKinds) {
  Parsed p("model m {\n  a, b = f(x)\n  S[h, i] = 1\n  emit[h] = 2\n  emit = 3\n  max T = 16\n}\n");
  ASSERT_EQ(p.nerrors, 0) << p.errors;
  const AstStmt *s0 = p.stmt(0, 0);
  EXPECT_EQ(s0->kind, AST_STMT_ASSIGN);
  ASSERT_EQ(s0->names.len, 2);
  EXPECT_STREQ((const char *)s0->names.items[1], "b");
  EXPECT_EQ(s0->indices.len, 0);
  const AstStmt *s1 = p.stmt(0, 1);
  ASSERT_EQ(s1->names.len, 1);
  EXPECT_STREQ((const char *)s1->names.items[0], "S");
  ASSERT_EQ(s1->indices.len, 2);
  EXPECT_STREQ((const char *)s1->indices.items[1], "i");
  const AstStmt *s2 = p.stmt(0, 2);
  EXPECT_STREQ((const char *)s2->names.items[0], "emit");
  EXPECT_EQ(s2->indices.len, 1);
  const AstStmt *s3 = p.stmt(0, 3);
  EXPECT_STREQ((const char *)s3->names.items[0], "emit");
  EXPECT_EQ(s3->indices.len, 0);
  const AstStmt *s4 = p.stmt(0, 4);
  EXPECT_EQ(s4->kind, AST_STMT_MAXSEQ);
  EXPECT_STREQ((const char *)s4->names.items[0], "T");
  EXPECT_EQ(s4->value->ival, 16);
}

TEST(Statements, ReturnTuple) {
  Parsed p("layer two(x: f32[T]) -> (f32[T], i32[T]) {\n  return x, y\n}\nlayer one(x: f32[T]) {\n  return x\n}\n");
  ASSERT_EQ(p.nerrors, 0) << p.errors;
  EXPECT_EQ(p.dump(),
            "(layer two (params (x (f32 T))) (-> (f32 T) (i32 T)) (return (tuple x y)))\n"
            "(layer one (params (x (f32 T))) (->) (return x))\n");
  EXPECT_EQ(p.stmt(0, 0)->value->kind, AST_EXPR_TUPLE);
  EXPECT_EQ(p.stmt(1, 0)->value->kind, AST_EXPR_NAME);
}

TEST(Statements, RepeatScopeAfterCallBelongsToRepeat) {
  Parsed p("model m {\n  repeat i in 0..int(n) @ \"s.{i}\" {\n  }\n}\n");
  ASSERT_EQ(p.nerrors, 0) << p.errors;
  const AstStmt *r = p.stmt(0, 0);
  EXPECT_STREQ(r->scope, "s.{i}");
  EXPECT_EQ(r->hi->kind, AST_EXPR_CALL);
  EXPECT_EQ(r->hi->scope, nullptr);
  EXPECT_EQ(r->scope_loc.line, 2);
  EXPECT_EQ(r->scope_loc.col, 27);
}

TEST(Statements, IfElseIfElse) {
  // Braces are required; `else if` nests an if as the whole else branch;
  // `else` may start the line after '}' (the newline does not end the if).
  std::string d = stmts(R"(
  if use_gate { g = f(x) @ "g"; y = y * g }
  if a and not b {
  } else if n > 2 {
    z = 1
  }
  else {
    z = 2
  }
  if c { } else { }
)");
  EXPECT_EQ(d,
            "(model m (if use_gate ((assign (g) (call f x @\"g\")) (assign (y) (* y g))))"
            " (if (and a (not b)) () (else (if (> n 2) ((assign (z) 1)) (else (assign (z) 2)))))"
            " (if c () (else)))\n");
  Parsed p("layer l(x: f32[T]) -> f32[T] {\n  if k == 1 {\n    return x\n  } else {\n    return -x\n  }\n}\n");
  ASSERT_EQ(p.nerrors, 0) << p.errors;
  const AstStmt *s = p.stmt(0, 0);
  EXPECT_EQ(s->kind, AST_STMT_IF);
  EXPECT_EQ(s->loc.line, 2);
  EXPECT_EQ(s->loc.col, 3);
  EXPECT_EQ(s->cond->kind, AST_EXPR_BINARY);
  EXPECT_EQ(s->body.len, 1);
  EXPECT_EQ(s->else_body.len, 1);
  EXPECT_EQ(s->has_else, 1);
  EXPECT_EQ(static_cast<const AstStmt *>(s->else_body.items[0])->kind, AST_STMT_RETURN);
}

TEST(Statements, IfSyntaxErrors) {
  Parsed missing_brace("model m {\n  if c x = 1\n}\n");
  EXPECT_EQ(missing_brace.nerrors, 1) << missing_brace.errors;
  EXPECT_TRUE(contains(missing_brace.errors, "t.gat:2:8: error: unexpected identifier")) << missing_brace.errors;
  Parsed dangling("model m {\n  else { x = 1 }\n}\n");
  EXPECT_TRUE(contains(dangling.errors, "t.gat:2:3: error: unexpected 'else'")) << dangling.errors;
  // `if`/`else` are keywords now, not names
  Parsed kw("model m {\n  if = 1\n}\n");
  EXPECT_TRUE(contains(kw.errors, "t.gat:2:6: error: unexpected '='")) << kw.errors;
}

TEST(Statements, TemplatedParamNames) {
  EXPECT_EQ(stmts("  param weight_ih_l{k} : f32[H]\n  param w{i}_{j}_b : f32[2] = zeros()"),
            "(model m (param weight_ih_l{k} (f32 H)) (param w{i}_{j}_b (f32 2) (call zeros)))\n");
  // the pieces must touch
  Parsed blank("model m {\n  param w {k} : f32[2]\n  param w{k} b : f32[2]\n  param a b : f32[2]\n}\n");
  EXPECT_EQ(blank.nerrors, 3) << blank.errors;
  EXPECT_TRUE(contains(blank.errors, "t.gat:2:11: error: a templated param name is written without blanks"))
      << blank.errors;
  EXPECT_TRUE(contains(blank.errors, "t.gat:3:14: error: unexpected identifier after the param name 'w{k}'"))
      << blank.errors;
  EXPECT_TRUE(contains(blank.errors, "t.gat:4:11: error: unexpected identifier after the param name 'a'"))
      << blank.errors;
}

TEST(Statements, IndexNotationExplicitRanges) {
  EXPECT_EQ(stmts("  lb[l in 0..L, j] = w[j]\n  emit[h in 0..H+1] = 1\n  y[i, j] = 2"),
            "(model m (assign (lb [(l 0 L) j]) (index w j)) (assign (emit [(h 0 (+ H 1))]) 1)"
            " (assign (y [i j]) 2))\n");
  Parsed p("model m {\n  lb[i, l in 0..L] = 1\n  y[i, j] = 2\n}\n");
  ASSERT_EQ(p.nerrors, 0) << p.errors;
  const AstStmt *s = p.stmt(0, 0);
  ASSERT_EQ(s->indices.len, 2);
  ASSERT_EQ(s->index_hi.len, 2);
  ASSERT_EQ(s->index_lo.len, 2);
  EXPECT_EQ(s->index_hi.items[0], nullptr);
  EXPECT_EQ(static_cast<const AstExpr *>(s->index_hi.items[1])->kind, AST_EXPR_NAME);
  EXPECT_EQ(static_cast<const AstExpr *>(s->index_lo.items[1])->ival, 0);
  EXPECT_EQ(p.stmt(0, 1)->index_hi.len, 0);  // no range written: empty lists
}

TEST(Declarations, TopLevel) {
  Parsed p("import std\nimport \"other.gat\"\nconst n = 3, m = n + 1\nmodel a {}\nmodel b { x = 1 }\n");
  ASSERT_EQ(p.nerrors, 0) << p.errors;
  EXPECT_EQ(p.dump(),
            "(import std)\n(import \"other.gat\")\n(const (n 3) (m (+ n 1)))\n(model a)\n"
            "(model b (assign (x) 1))\n");
  EXPECT_EQ(p.decl(0)->import_is_path, 0);
  EXPECT_EQ(p.decl(1)->import_is_path, 1);
  EXPECT_EQ(p.decl(2)->kind, AST_DECL_CONST);
  EXPECT_EQ(p.decl(2)->stmt->kind, AST_STMT_CONST);
}

TEST(Declarations, Types) {
  Parsed p("layer f(a: int, b: float, c: bool, d: str, e: f32, g: i32, h: f32[], k: i32[T], "
           "l: f32[T, D * 2]) -> f32[] { return a }\n");
  ASSERT_EQ(p.nerrors, 0) << p.errors;
  EXPECT_EQ(p.dump(),
            "(layer f (params (a int) (b float) (c bool) (d str) (e float) (g int) (h (f32)) (k (i32 T))"
            " (l (f32 T (* D 2)))) (-> (f32)) (return a))\n");
  const AstParam *h = static_cast<const AstParam *>(p.decl(0)->params.items[6]);
  EXPECT_EQ(h->type->kind, AST_TYPE_TENSOR);
  EXPECT_STREQ(h->type->dtype, "f32");
  EXPECT_EQ(h->type->dims.len, 0);
  // int(x) and float(x) stay calls in expressions
  EXPECT_EQ(expr("int(x) + float(y)"), "(+ (call int x) (call float y))");
}

TEST(Declarations, UnknownTypes) {
  Parsed p("layer f(a: integer, b: f16[T]) { return a }\n");
  EXPECT_EQ(p.nerrors, 2);
  EXPECT_TRUE(contains(p.errors, "t.gat:1:12: error: unknown type 'integer'")) << p.errors;
  EXPECT_TRUE(contains(p.errors, "t.gat:1:24: error: unknown tensor type 'f16'")) << p.errors;
}

// ---- expressions -----------------------------------------------------------------

TEST(Expressions, LiteralsAndLexing) {
  EXPECT_EQ(expr("1e-5"), "1e-05");
  EXPECT_EQ(expr("2."), "2.0");
  EXPECT_EQ(expr("0.5 + 1.5e3"), "(+ 0.5 1.5e+03)");
  EXPECT_EQ(expr("\"a\\\"b\\\\c\\nd\""), "\"a\\\"b\\\\c\\nd\"");
  EXPECT_EQ(expr("true and false"), "(and true false)");
  EXPECT_EQ(expr("9223372036854775807"), "9223372036854775807");
  Parsed p("model m {\n  x = \"a\\\"b\"\n  repeat i in 0..8 {}\n}\n");
  ASSERT_EQ(p.nerrors, 0) << p.errors;
  EXPECT_STREQ(p.stmt(0, 0)->value->sval, "a\"b");
  const AstStmt *r = p.stmt(0, 1);
  EXPECT_EQ(r->lo->kind, AST_EXPR_INT);
  EXPECT_EQ(r->lo->ival, 0);
  EXPECT_EQ(r->hi->ival, 8);
}

TEST(Expressions, SlicesAndIndexing) {
  EXPECT_EQ(expr("x[0:H, :]"), "(index x (slice 0 H) (slice _ _))");
  EXPECT_EQ(expr("x[:H]"), "(index x (slice _ H))");
  EXPECT_EQ(expr("x[1:]"), "(index x (slice 1 _))");
  EXPECT_EQ(expr("w[j + H, 2*i + 1]"), "(index w (+ j H) (+ (* 2 i) 1))");
}

TEST(Expressions, CallsAndKeywordArgs) {
  EXPECT_EQ(expr("f()"), "(call f)");
  EXPECT_EQ(expr("f(x, hidden: 1408)"), "(call f x hidden:1408)");
  EXPECT_EQ(expr("attention(q, k, v, scale: dk**-0.5, window: 0)"),
            "(call attention q k v scale:(** dk (neg 0.5)) window:0)");
  EXPECT_EQ(expr("gelu(x, approx: \"tanh\")"), "(call gelu x approx:\"tanh\")");
  Parsed p("model m {\n  x = f(a, key: b)\n}\n");
  ASSERT_EQ(p.nerrors, 0);
  const AstExpr *c = p.stmt(0, 0)->value;
  ASSERT_EQ(c->args.len, 2);
  const AstArg *a0 = static_cast<const AstArg *>(c->args.items[0]);
  const AstArg *a1 = static_cast<const AstArg *>(c->args.items[1]);
  EXPECT_EQ(a0->name, nullptr);
  EXPECT_STREQ(a1->name, "key");
  EXPECT_EQ(a1->loc.col, 12);
}

TEST(Expressions, LongListsGrow) {
  std::string src = "f(";
  std::string want = "(call f";
  for (int i = 0; i < 100; i++) {
    src += (i ? ", " : "") + std::to_string(i);
    want += " " + std::to_string(i);
  }
  EXPECT_EQ(expr(src + ")"), want + ")");
}

TEST(Expressions, Locations) {
  Parsed p("model m {\n  x = a + f(b) * c\n  y = -z\n}\n");
  ASSERT_EQ(p.nerrors, 0);
  const AstStmt *s = p.stmt(0, 0);
  EXPECT_EQ(s->loc.line, 2);
  EXPECT_EQ(s->loc.col, 3);
  EXPECT_EQ(s->loc.file, p.file->file_id);
  const AstExpr *add = s->value;  // (+ a (* (call f b) c)): located at its first token `a`
  EXPECT_EQ(add->loc.line, 2);
  EXPECT_EQ(add->loc.col, 7);
  EXPECT_EQ(add->rhs->loc.col, 11);       // the product starts at `f`
  EXPECT_EQ(add->rhs->lhs->loc.col, 11);  // the call
  EXPECT_EQ(add->rhs->rhs->loc.col, 18);  // c
  const AstExpr *neg = p.stmt(0, 1)->value;
  EXPECT_EQ(neg->loc.line, 3);
  EXPECT_EQ(neg->loc.col, 7);
  EXPECT_EQ(p.decl(0)->loc.line, 1);
  EXPECT_EQ(p.decl(0)->loc.col, 1);
}

// ---- newlines ---------------------------------------------------------------------

TEST(Newlines, ContinuationInsideBracketsAndAfterOperators) {
  EXPECT_EQ(expr("f(a,\n      b)"), "(call f a b)");
  EXPECT_EQ(expr("a +\n  b"), "(+ a b)");
  EXPECT_EQ(expr("a *\n\n  # comment\n  b"), "(* a b)");
  EXPECT_EQ(expr("x[i,\n j]"), "(index x i j)");
  EXPECT_EQ(expr("(a\n + b)"), "(+ a b)");
  EXPECT_EQ(expr("a and\n b"), "(and a b)");
  EXPECT_EQ(expr("f(x)\n  @ \"s\""), "(call f x @\"s\")");
  EXPECT_EQ(expr("f(x)\n  # a comment line\n\n  as [T, 2]"), "(as (call f x) T 2)");
  EXPECT_EQ(stmts("x =\n  1"), "(model m (assign (x) 1))\n");
  EXPECT_EQ(stmts("a,\n b = f()"), "(model m (assign (a b) (call f)))\n");
}

TEST(Newlines, SeparateStatements) {
  EXPECT_EQ(stmts("\n\n  x = a\n\n\n  y = b  # trailing comment\n\n"),
            "(model m (assign (x) a) (assign (y) b))\n");
  EXPECT_EQ(stmts("x = a; y = b;; z = c;"), "(model m (assign (x) a) (assign (y) b) (assign (z) c))\n");
  // a name that merely starts with `as` does not continue the line
  EXPECT_EQ(stmts("x = a\nassume = b"), "(model m (assign (x) a) (assign (assume) b))\n");
  // a newline after a call ends the statement; `- b` on the next line is not a continuation
  Parsed p("model m {\n  x = f(a)\n  - b\n}\n");
  EXPECT_EQ(p.nerrors, 1);
  EXPECT_TRUE(contains(p.errors, "t.gat:3:3: error: unexpected '-', expected statement")) << p.errors;
}

TEST(Newlines, HeadersAndBraces) {
  // a header may continue after `->`, and its '{' may go on the next line
  Parsed p("layer f(x: f32[T]) ->\n    f32[T]\n{\n  return x\n}\nmodel m\n{\n  repeat i in 0..2\n  {\n  }\n}\n");
  ASSERT_EQ(p.nerrors, 0) << p.errors;
  EXPECT_EQ(p.dump(), "(layer f (params (x (f32 T))) (-> (f32 T)) (return x))\n(model m (repeat i 0 2))\n");
}

TEST(Newlines, BracesRestoreStatementNewlines) {
  // a scan body inside a call's parentheses still has one statement per line
  EXPECT_EQ(stmts("y = f(scan t with s: f32[] = 0 {\n  s = s + 1\n  emit = s\n}, 2)"),
            "(model m (assign (y) (call f (scan t ((s (f32) 0)) (assign (s) (+ s 1)) (assign (emit) s)) 2)))\n");
}

TEST(Newlines, EmptyAndCommentOnlyFiles) {
  Parsed a("");
  EXPECT_EQ(a.nerrors, 0);
  EXPECT_EQ(a.dump(), "");
  Parsed b("# only a comment\n\n   \n# another");
  EXPECT_EQ(b.nerrors, 0);
  EXPECT_EQ(b.dump(), "");
  Parsed c("model m {} ; model n {}");
  EXPECT_EQ(c.nerrors, 0) << c.errors;
  EXPECT_EQ(c.dump(), "(model m)\n(model n)\n");
}

// ---- errors -----------------------------------------------------------------------

TEST(Errors, SeveralSyntaxErrorsInOneRun) {
  Parsed p(
      "model m {\n"             // 1
      "  x = f(a, )\n"          // 2: ')' at col 12
      "  y = 1\n"               // 3
      "  z = [1]\n"             // 4: '[' at col 7
      "  w = 2\n"               // 5
      "  in = 3\n"              // 6: keyword at col 3
      "  v = 4\n"               // 7
      "}\n"
      "model n { input x i32[T] }\n");  // 9: ':' missing, identifier at col 19
  EXPECT_EQ(p.nerrors, 4) << p.errors;
  EXPECT_TRUE(contains(p.errors, "t.gat:2:12: error: unexpected ')', expected expression\n")) << p.errors;
  EXPECT_TRUE(contains(p.errors, "t.gat:4:7: error: unexpected '[', expected expression\n")) << p.errors;
  EXPECT_TRUE(contains(p.errors, "t.gat:6:3: error: unexpected 'in', expected statement, newline or '}'\n"))
      << p.errors;
  EXPECT_TRUE(contains(p.errors, "t.gat:9:19: error: unexpected identifier, expected ':'\n")) << p.errors;
  // the caret line
  EXPECT_TRUE(contains(p.errors, "    x = f(a, )\n             ^\n")) << p.errors;
  // statements around the errors survive
  ASSERT_NE(p.file, nullptr);
  EXPECT_EQ(p.dump(), "(model m (assign (y) 1) (assign (w) 2) (assign (v) 4))\n(model n)\n");
}

TEST(Errors, MessagesUseReadableTokenNames) {
  Parsed a("model m {\n  x = (a + b\n}\n");
  EXPECT_TRUE(contains(a.errors, "t.gat:3:1: error: unexpected '}', expected operator or ')'")) << a.errors;
  Parsed b("model m {\n  x = a\n");
  EXPECT_TRUE(contains(b.errors, "t.gat:3:1: error: unexpected end of file, expected statement, newline or '}'"))
      << b.errors;
  Parsed c("layer f(x: f32[T) {}\n");
  EXPECT_TRUE(contains(c.errors, "t.gat:1:17: error: unexpected ')', expected operator, ',' or ']'")) << c.errors;
  Parsed d("model m {\n  max(i) = 2\n}\n");
  EXPECT_TRUE(contains(d.errors, "t.gat:2:6: error: unexpected '(', expected identifier")) << d.errors;
  Parsed e("model m {\n  y = x skip x\n}\n");
  EXPECT_TRUE(contains(e.errors, "t.gat:2:14: error: unexpected identifier, expected 'when'")) << e.errors;
  Parsed f("model {}\n");
  EXPECT_TRUE(contains(f.errors, "t.gat:1:7: error: unexpected '{', expected identifier")) << f.errors;
  Parsed g("x = 1\n");
  EXPECT_TRUE(contains(g.errors, "t.gat:1:1: error: unexpected identifier, expected declaration")) << g.errors;
}

TEST(Errors, LexerErrors) {
  Parsed p(
      "model m {\n"
      "  a = 3 $ 4\n"        // unknown character at col 9
      "  b = \"abc\n"        // unterminated string at col 7
      "  c = 12ab + 1e\n"    // bad numbers at cols 7 and 14
      "  d = \"x\\q\"\n"     // unknown escape: the backslash at col 9
      "  e = 99999999999999999999\n"  // too large at col 7
      "}\n");
  EXPECT_TRUE(contains(p.errors, "t.gat:2:9: error: unknown character '$'\n")) << p.errors;
  EXPECT_TRUE(contains(p.errors, "t.gat:3:7: error: unterminated string\n")) << p.errors;
  EXPECT_TRUE(contains(p.errors, "t.gat:4:7: error: bad number '12ab'\n")) << p.errors;
  EXPECT_TRUE(contains(p.errors, "t.gat:4:14: error: bad number '1e'\n")) << p.errors;
  EXPECT_TRUE(contains(p.errors, "t.gat:5:9: error: unknown escape sequence '\\q' in string\n")) << p.errors;
  EXPECT_TRUE(contains(p.errors, "t.gat:6:7: error: integer literal '99999999999999999999' is too large\n"))
      << p.errors;
}

TEST(Errors, StructuralChecks) {
  Parsed p(
      "model m {\n"
      "  y = mixture e in 0..8 by idx weighted w { h = 1 }\n"  // no return: points at `h` (col 45)
      "  param w : f32[D] = 3\n"                               // init not a call (col 22)
      "}\n");
  EXPECT_EQ(p.nerrors, 2) << p.errors;
  EXPECT_TRUE(contains(p.errors, "t.gat:2:45: error: a mixture body must end with 'return expr'")) << p.errors;
  EXPECT_TRUE(contains(p.errors, "t.gat:3:22: error: a param's initializer must be an init call")) << p.errors;
}

TEST(Dump, IsDeterministic) {
  const char *src = "model m {\n  x = sum(i) a[i] * 2 @ \"s\"\n}\n";
  Parsed a(src);
  Parsed b(src);
  EXPECT_EQ(a.nerrors, 1);  // `2 @` : a scope must follow a call
  EXPECT_EQ(a.dump(), b.dump());
  EXPECT_EQ(a.errors, b.errors);
}

}  // namespace
