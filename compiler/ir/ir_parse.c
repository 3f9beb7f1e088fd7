/* ir_parse.c — reads the graph IR text form written by ir_print.c (format in
 * docs/internals.md, "Graph IR") back into a module. Tests write IR by hand in
 * this form, and passes are tested text-in/text-out, so the parser has to be
 * friendly to humans: every error names file:line:col through diag, and any
 * garbled or truncated input ends in an error, never a crash.
 *
 * It is a hand-written recursive-descent parser over a small tokenizer.
 * Newlines carry no meaning; the grammar is unambiguous without them. The
 * first error stops the parse (longjmp back to ir_parse, which returns NULL);
 * what was allocated stays in the caller's arena.
 *
 * Value names (%foo) are only names: every definition gets a fresh IrValue,
 * in text order, so the printer's dense numbering reproduces the input when
 * the input came from the printer. Names are scoped: a region's values are
 * invisible after the region, and a name may not be defined twice while
 * visible. Index expressions (the `expr` attribute) have their own small
 * parser, ir_expr_parse, also usable by lowering to build index ops. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "gat_limits.h"
#include "ir.h"

/* ======================= index expressions ============================== */

typedef struct ExprParser {
  IrModule *m;
  const char *text;
  int pos;
  int depth;
  char *err;
  size_t errlen;
  int err_offset;
  jmp_buf fail;
} ExprParser;

static void ex_fail(ExprParser *p, int at, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));
static void ex_fail(ExprParser *p, int at, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  p->err_offset = at;
  if (p->err && p->errlen) snprintf(p->err, p->errlen, "at %d: %s", at, msg);
  longjmp(p->fail, 1);
}

static void ex_skip_space(ExprParser *p) {
  while (p->text[p->pos] == ' ' || p->text[p->pos] == '\t' || p->text[p->pos] == '\n' ||
         p->text[p->pos] == '\r')
    p->pos++;
}

/* An atom is a maximal run of characters other than space and parentheses. */
static int ex_atom(ExprParser *p, int *start) {
  ex_skip_space(p);
  *start = p->pos;
  while (p->text[p->pos] && !strchr(" \t\r\n()", p->text[p->pos])) p->pos++;
  return p->pos - *start;
}

/* Reads decimal digits at s[*i] (at most 18, so no overflow). */
static int ex_digits(ExprParser *p, const char *s, int *i, int base, int64_t *out) {
  int64_t v = 0;
  int n = 0;
  while (s[*i] >= '0' && s[*i] <= '9') {
    if (n >= 18) ex_fail(p, base + *i, "number too large");
    v = v * 10 + (s[*i] - '0');
    (*i)++;
    n++;
  }
  *out = v;
  return n;
}

/* "v12" (exactly) -> 12 */
static int ex_var_name(ExprParser *p, const char *s, int len, int base) {
  int i = 1;
  int64_t v;
  if (len < 2 || s[0] != 'v' || ex_digits(p, s, &i, base, &v) == 0 || i != len)
    ex_fail(p, base, "expected a loop variable like v2, got '%.*s'", len, s);
  if (v > 1000000) ex_fail(p, base, "loop variable number too large");
  return (int)v;
}

/* affine := term (('+' | '-') term)* with a leading '-' allowed;
 * term := INT | INT '*' vK | INT '*' $N | vK | $N */
static void ex_affine(ExprParser *p, const char *s, int len, int base, IrAffine *a) {
  memset(a, 0, sizeof *a);
  a->dyn = -1;
  int i = 0;
  if (len == 0) ex_fail(p, base, "expected an index");
  while (i < len) {
    int64_t sign = 1;
    if (s[i] == '-') {
      sign = -1;
      i++;
    } else if (s[i] == '+') {
      if (i == 0) ex_fail(p, base, "an index cannot start with '+'");
      i++;
    } else if (i > 0) {
      ex_fail(p, base + i, "expected '+' or '-' in index '%.*s'", len, s);
    }
    int64_t coef = sign;
    int has_num = 0;
    if (s[i] >= '0' && s[i] <= '9') {
      int64_t n;
      ex_digits(p, s, &i, base, &n);
      coef = sign * n;
      has_num = 1;
      if (s[i] == '*') {
        i++;
        has_num = 0;
        if (s[i] != 'v' && s[i] != '$') ex_fail(p, base + i, "expected vK or $N after '*'");
      }
    }
    if (has_num) {
      a->c += coef;
      continue;
    }
    if (s[i] == 'v' || s[i] == '$') {
      char what = s[i++];
      int64_t n;
      int at = base + i;
      if (ex_digits(p, s, &i, base, &n) == 0) ex_fail(p, at, "expected a number after '%c'", what);
      if (n > 1000000) ex_fail(p, at, "number too large");
      if (what == '$') {
        if (a->dyn >= 0 && a->dyn != (int)n)
          ex_fail(p, at, "an index may use only one dynamic operand");
        a->dyn_coef = a->dyn >= 0 ? a->dyn_coef + coef : coef;
        a->dyn = (int)n;
      } else {
        int k = 0;
        while (k < a->nterms && a->var[k] != (int)n) k++;
        if (k == a->nterms) {
          if (a->nterms == IR_MAX_AFFINE)
            ex_fail(p, at, "an index may use at most %d loop variables", IR_MAX_AFFINE);
          a->var[a->nterms] = (int)n;
          a->coef[a->nterms++] = coef;
        } else {
          a->coef[k] += coef;
        }
      }
      continue;
    }
    ex_fail(p, base + i, "malformed index '%.*s'", len, s);
  }
}

static IrExpr *ex_expr(ExprParser *p);

static int ex_at_close(ExprParser *p) {
  ex_skip_space(p);
  return p->text[p->pos] == ')';
}

static IrExpr *ex_list(ExprParser *p, int open_at) {
  int start;
  int len = ex_atom(p, &start);
  const char *s = p->text + start;
  if (len == 0) ex_fail(p, p->pos, "expected an operator after '('");
  char head[32];
  if (len >= (int)sizeof head) ex_fail(p, start, "unknown operator '%.*s'", len, s);
  memcpy(head, s, (size_t)len);
  head[len] = 0;
  IrExpr *e = NULL;

  if (strcmp(head, "var") == 0) {
    int vs, vl = ex_atom(p, &vs);
    e = ir_expr_var(p->m, ex_var_name(p, p->text + vs, vl, vs));
  } else if (strcmp(head, "load") == 0) {
    int ns, nl = ex_atom(p, &ns);
    int i = 0;
    int64_t operand;
    if (nl == 0 || ex_digits(p, p->text + ns, &i, ns, &operand) == 0 || i != nl)
      ex_fail(p, ns, "expected an operand number after 'load'");
    if (operand > 1000000) ex_fail(p, ns, "operand number too large");
    IrAffine idx[IR_MAX_RANK];
    int n = 0;
    while (!ex_at_close(p)) {
      if (!p->text[p->pos]) break;
      if (p->text[p->pos] == '(') ex_fail(p, p->pos, "load indices are affine forms, not expressions");
      if (n == IR_MAX_RANK) ex_fail(p, p->pos, "too many indices in load (at most %d)", IR_MAX_RANK);
      int as, al = ex_atom(p, &as);
      ex_affine(p, p->text + as, al, as, &idx[n++]);
    }
    e = ir_expr_load(p->m, (int)operand, n, idx);
  } else if (strcmp(head, "select") == 0) {
    IrExpr *c = ex_expr(p);
    IrExpr *a = ex_expr(p);
    IrExpr *b = ex_expr(p);
    e = ir_expr_select(p->m, c, a, b);
  } else {
    /* A reduction's first atom is its variable binding "vK:extent"; `max`
     * and `min` are also binary functions, told apart by that atom. */
    int is_red_name = !strcmp(head, "sum") || !strcmp(head, "mean") || !strcmp(head, "max") ||
                      !strcmp(head, "min");
    int save = p->pos;
    int bs, bl = ex_atom(p, &bs);
    const char *bind = p->text + bs;
    const char *colon = bl > 0 ? memchr(bind, ':', (size_t)bl) : NULL;
    if (is_red_name && bl > 0 && bind[0] == 'v' && colon) {
      IrReduceKind k = !strcmp(head, "sum")    ? IR_RED_SUM
                       : !strcmp(head, "mean") ? IR_RED_MEAN
                       : !strcmp(head, "max")  ? IR_RED_MAX
                                               : IR_RED_MIN;
      int vl = (int)(colon - bind);
      int var = ex_var_name(p, bind, vl, bs);
      const char *ext = colon + 1;
      int el = bl - vl - 1;
      int64_t extent;
      if (el == 1 && ext[0] == 'T') {
        extent = IR_DIM_T;
      } else {
        int i = 0;
        if (el == 0 || ex_digits(p, ext, &i, bs + vl + 1, &extent) == 0 || i != el || extent <= 0)
          ex_fail(p, bs + vl + 1, "a reduction extent is a positive integer or T");
      }
      IrExpr *body = ex_expr(p);
      e = ir_expr_reduce(p->m, k, var, extent, body);
    } else if (!strcmp(head, "sum") || !strcmp(head, "mean")) {
      ex_fail(p, bs, "expected a reduction binding like v2:128 after '%s'", head);
    } else {
      p->pos = save;
      int fn = ir_fn_from_name(head);
      if (fn < 0) ex_fail(p, start, "unknown operator '%s'", head);
      if (ir_fn_arity((IrFn)fn) == 1) {
        e = ir_expr_unary(p->m, (IrFn)fn, ex_expr(p));
      } else {
        IrExpr *a = ex_expr(p);
        IrExpr *b = ex_expr(p);
        e = ir_expr_binary(p->m, (IrFn)fn, a, b);
      }
    }
  }
  ex_skip_space(p);
  if (p->text[p->pos] != ')') {
    if (!p->text[p->pos]) ex_fail(p, open_at, "unclosed '(' (expected ')' for '%s')", head);
    ex_fail(p, p->pos, "expected ')' to close '%s'", head);
  }
  p->pos++;
  return e;
}

static IrExpr *ex_expr(ExprParser *p) {
  ex_skip_space(p);
  if (p->text[p->pos] == '(') {
    int open_at = p->pos++;
    if (++p->depth > 200) ex_fail(p, open_at, "expression nested too deeply");
    IrExpr *e = ex_list(p, open_at);
    p->depth--;
    return e;
  }
  if (p->text[p->pos] == ')') ex_fail(p, p->pos, "expected an expression, got ')'");
  int start, len = ex_atom(p, &start);
  if (len == 0) ex_fail(p, start, "expected an expression, got the end");
  char buf[64];
  if (len >= (int)sizeof buf) ex_fail(p, start, "malformed number '%.*s'", len, p->text + start);
  memcpy(buf, p->text + start, (size_t)len);
  buf[len] = 0;
  char *end;
  double v = strtod(buf, &end);
  if (end != buf + len || !((buf[0] >= '0' && buf[0] <= '9') || buf[0] == '-' || buf[0] == '.' ||
                            buf[0] == 'i' || buf[0] == 'n'))
    ex_fail(p, start, "expected a number or '(', got '%s'%s", buf,
            buf[0] == 'v' ? " (a loop variable's value is written (var vK))" : "");
  return ir_expr_const(p->m, v);
}

IrExpr *ir_expr_parse(IrModule *m, const char *text, char *err, size_t errlen, int *err_offset) {
  ExprParser p;
  memset(&p, 0, sizeof p);
  p.m = m;
  p.text = text ? text : "";
  p.err = err;
  p.errlen = errlen;
  if (setjmp(p.fail)) {
    if (err_offset) *err_offset = p.err_offset;
    return NULL;
  }
  IrExpr *e = ex_expr(&p);
  ex_skip_space(&p);
  if (p.text[p.pos]) ex_fail(&p, p.pos, "unexpected text after the expression");
  if (err_offset) *err_offset = -1;
  return e;
}

/* ========================== the module text =============================== */

typedef enum TokKind { TK_EOF, TK_WORD, TK_INT, TK_FLOAT, TK_STRING, TK_VALUE, TK_PUNCT } TokKind;

typedef struct Token {
  TokKind kind;
  const char *start;
  int len;
  int line, col;
  int64_t ival;
  double fval;
  char *sval; /* STRING: unescaped, in the arena */
  int raw;    /* STRING: had escapes (its columns no longer map 1:1) */
} Token;

typedef struct Sym {
  const char *name;
  int len;
  IrValue *v;
  int next; /* the previous symbol of the same hash bucket, or -1 */
} Sym;

/* Buckets of the symbol stack (a chain per bucket, newest first, popped with
 * the stack), so a module of many values reads in linear time. */
enum { SYM_BUCKETS = 1 << 14 };

typedef struct Parser {
  Arena *arena;
  IrModule *m;
  int file;
  const char *text;
  int pos, line, col;
  Token tok; /* the current (lookahead) token */
  Sym *syms;
  int nsyms, capsyms;
  int *bucket; /* SYM_BUCKETS heads (index into syms, -1 empty), allocated with the first symbol */
  jmp_buf fail;
} Parser;

static SrcLoc tok_loc(const Parser *p, const Token *t) { return (SrcLoc){p->file, t->line, t->col}; }

static void fail_at(Parser *p, SrcLoc loc, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));
static void fail_at(Parser *p, SrcLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror(loc, fmt, ap);
  va_end(ap);
  longjmp(p->fail, 1);
}

static const char *tok_desc(const Token *t, char *buf, size_t n) {
  switch (t->kind) {
    case TK_EOF: return "the end of the input";
    case TK_STRING: return "a string";
    default: snprintf(buf, n, "'%.*s'", t->len > 40 ? 40 : t->len, t->start); return buf;
  }
}

/* ---- tokenizer ---- */

static void advance_char(Parser *p) {
  if (p->text[p->pos] == '\n') {
    p->line++;
    p->col = 1;
  } else {
    p->col++;
  }
  p->pos++;
}

static int is_word_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_word_char(char c) { return is_word_start(c) || (c >= '0' && c <= '9') || c == '.'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static void lex(Parser *p) {
  for (;;) {
    char c = p->text[p->pos];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      advance_char(p);
    } else if (c == '#') {
      while (p->text[p->pos] && p->text[p->pos] != '\n') advance_char(p);
    } else {
      break;
    }
  }
  Token *t = &p->tok;
  memset(t, 0, sizeof *t);
  t->start = p->text + p->pos;
  t->line = p->line;
  t->col = p->col;
  char c = p->text[p->pos];
  SrcLoc here = tok_loc(p, t);
  if (!c) {
    t->kind = TK_EOF;
    return;
  }
  if (is_word_start(c) && !(c == 'i' && !strncmp(t->start, "inf", 3) && !is_word_char(t->start[3])) &&
      !(c == 'n' && !strncmp(t->start, "nan", 3) && !is_word_char(t->start[3]))) {
    t->kind = TK_WORD;
    while (is_word_char(p->text[p->pos])) advance_char(p);
  } else if (is_digit(c) || c == '-' || c == 'i' || c == 'n') {
    /* numbers, including format_double's inf, -inf, nan, -nan */
    int isfloat = 0;
    if (c == '-') advance_char(p);
    const char *q = p->text + p->pos;
    if (!strncmp(q, "inf", 3) || !strncmp(q, "nan", 3)) {
      for (int i = 0; i < 3; i++) advance_char(p);
      isfloat = 1;
    } else {
      if (!is_digit(p->text[p->pos])) fail_at(p, here, "expected a number after '-'");
      while (is_digit(p->text[p->pos])) advance_char(p);
      if (p->text[p->pos] == '.') {
        isfloat = 1;
        advance_char(p);
        while (is_digit(p->text[p->pos])) advance_char(p);
      }
      if (p->text[p->pos] == 'e' || p->text[p->pos] == 'E') {
        isfloat = 1;
        advance_char(p);
        if (p->text[p->pos] == '+' || p->text[p->pos] == '-') advance_char(p);
        if (!is_digit(p->text[p->pos])) fail_at(p, here, "malformed number: missing exponent digits");
        while (is_digit(p->text[p->pos])) advance_char(p);
      }
    }
    if (is_word_char(p->text[p->pos])) fail_at(p, here, "malformed number");
    t->len = (int)(p->text + p->pos - t->start);
    char buf[64];
    if (t->len >= (int)sizeof buf) fail_at(p, here, "number too long");
    memcpy(buf, t->start, (size_t)t->len);
    buf[t->len] = 0;
    if (isfloat) {
      t->kind = TK_FLOAT;
      t->fval = strtod(buf, NULL);
      if (!strcmp(buf, "-nan")) t->fval = -NAN;
    } else {
      t->kind = TK_INT;
      errno = 0;
      t->ival = strtoll(buf, NULL, 10);
      if (errno == ERANGE) fail_at(p, here, "integer out of range");
      t->fval = (double)t->ival;
    }
    return;
  } else if (c == '%') {
    advance_char(p);
    if (!is_word_char(p->text[p->pos]) && !is_digit(p->text[p->pos]))
      fail_at(p, here, "expected a value name after '%%'");
    while (is_word_char(p->text[p->pos])) advance_char(p);
    t->kind = TK_VALUE;
  } else if (c == '"') {
    StrBuf sb = {0};
    advance_char(p);
    for (;;) {
      char d = p->text[p->pos];
      if (!d || d == '\n') {
        sb_free(&sb);
        fail_at(p, here, "unterminated string");
      }
      if (d == '"') break;
      if (d == '\\') {
        t->raw = 1;
        advance_char(p);
        char e = p->text[p->pos];
        if (e == 'n')
          sb_append(&sb, "\n");
        else if (e == 't')
          sb_append(&sb, "\t");
        else if (e == '"' || e == '\\')
          sb_appendn(&sb, &e, 1);
        else {
          sb_free(&sb);
          fail_at(p, (SrcLoc){p->file, p->line, p->col}, "unknown escape in string");
        }
        advance_char(p);
        continue;
      }
      sb_appendn(&sb, &d, 1);
      advance_char(p);
    }
    advance_char(p);
    t->kind = TK_STRING;
    t->sval = arena_strdup(p->arena, sb_cstr(&sb));
    sb_free(&sb);
  } else if (strchr("=,:[](){}", c)) {
    advance_char(p);
    t->kind = TK_PUNCT;
  } else {
    if ((unsigned char)c >= 32 && (unsigned char)c < 127)
      fail_at(p, here, "unexpected character '%c'", c);
    fail_at(p, here, "unexpected byte 0x%02x", (unsigned char)c);
  }
  t->len = (int)(p->text + p->pos - t->start);
}

/* The token after the current one, without consuming anything. */
static Token peek2(Parser *p) {
  Token save = p->tok;
  int pos = p->pos, line = p->line, col = p->col;
  lex(p);
  Token next = p->tok;
  p->tok = save;
  p->pos = pos;
  p->line = line;
  p->col = col;
  return next;
}

static int tok_is(const Token *t, TokKind k, const char *s) {
  return t->kind == k && (!s || ((int)strlen(s) == t->len && !strncmp(t->start, s, (size_t)t->len)));
}
static int at_punct(Parser *p, char c) { return p->tok.kind == TK_PUNCT && p->tok.start[0] == c; }
static int at_word(Parser *p, const char *w) { return tok_is(&p->tok, TK_WORD, w); }

static void expected(Parser *p, const char *what) __attribute__((noreturn));
static void expected(Parser *p, const char *what) {
  char buf[64];
  fail_at(p, tok_loc(p, &p->tok), "expected %s, got %s", what, tok_desc(&p->tok, buf, sizeof buf));
}

static void expect_punct(Parser *p, char c) {
  if (!at_punct(p, c)) {
    char what[8];
    snprintf(what, sizeof what, "'%c'", c);
    expected(p, what);
  }
  lex(p);
}
static void expect_word(Parser *p, const char *w) {
  if (!at_word(p, w)) {
    char what[64];
    snprintf(what, sizeof what, "'%s'", w);
    expected(p, what);
  }
  lex(p);
}
static const char *expect_string(Parser *p) {
  if (p->tok.kind != TK_STRING) expected(p, "a string");
  const char *s = p->tok.sval;
  lex(p);
  return s;
}
static int64_t expect_int(Parser *p) {
  if (p->tok.kind != TK_INT) expected(p, "an integer");
  int64_t v = p->tok.ival;
  lex(p);
  return v;
}
static double expect_number(Parser *p) {
  if (p->tok.kind != TK_INT && p->tok.kind != TK_FLOAT) expected(p, "a number");
  double v = p->tok.fval;
  lex(p);
  return v;
}

/* ---- names ---- */

static unsigned sym_hash(const char *s, int len) {
  unsigned h = 2166136261u;
  for (int i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h & (SYM_BUCKETS - 1);
}
static IrValue *sym_lookup(Parser *p, const Token *t) {
  if (!p->bucket) return NULL;
  for (int i = p->bucket[sym_hash(t->start, t->len)]; i >= 0; i = p->syms[i].next)
    if (p->syms[i].len == t->len && !memcmp(p->syms[i].name, t->start, (size_t)t->len)) return p->syms[i].v;
  return NULL;
}
/* Leaves a region's scope: drops the symbols above `scope`. */
static void sym_pop_to(Parser *p, int scope) {
  while (p->nsyms > scope) {
    const Sym *y = &p->syms[--p->nsyms];
    p->bucket[sym_hash(y->name, y->len)] = y->next;
  }
}
static void sym_define(Parser *p, const Token *t, IrValue *v) {
  if (sym_lookup(p, t))
    fail_at(p, tok_loc(p, t), "redefinition of value %.*s", t->len, t->start);
  if (p->nsyms == p->capsyms) {
    p->capsyms = p->capsyms ? 2 * p->capsyms : 64;
    p->syms = xrealloc(p->syms, sizeof(Sym) * (size_t)p->capsyms);
  }
  if (!p->bucket) {
    p->bucket = xmalloc(sizeof(int) * SYM_BUCKETS);
    for (int i = 0; i < SYM_BUCKETS; i++) p->bucket[i] = -1;
  }
  unsigned h = sym_hash(t->start, t->len);
  p->syms[p->nsyms] = (Sym){t->start, t->len, v, p->bucket[h]};
  p->bucket[h] = p->nsyms++;
}
static IrValue *use_value(Parser *p) {
  if (p->tok.kind != TK_VALUE) expected(p, "a value (%name)");
  IrValue *v = sym_lookup(p, &p->tok);
  if (!v)
    fail_at(p, tok_loc(p, &p->tok), "use of undefined value %.*s", p->tok.len, p->tok.start);
  lex(p);
  return v;
}

/* ---- types ---- */

/* type := ('f32' | 'i32') '[' (dim (',' dim)*)? ']' ; dim := INT | 'T' */
static void parse_type(Parser *p, IrDType *dt, IrShape *s) {
  Token first = p->tok;
  if (at_word(p, "f32"))
    *dt = IR_F32;
  else if (at_word(p, "i32"))
    *dt = IR_I32;
  else
    expected(p, "a type (f32[...] or i32[...])");
  lex(p);
  expect_punct(p, '[');
  memset(s, 0, sizeof *s);
  while (!at_punct(p, ']')) {
    if (s->rank > 0) expect_punct(p, ',');
    if (s->rank == IR_MAX_RANK)
      fail_at(p, tok_loc(p, &p->tok), "too many dimensions (at most %d)", IR_MAX_RANK);
    if (at_word(p, "T")) {
      s->dims[s->rank++] = IR_DIM_T;
      lex(p);
    } else if (p->tok.kind == TK_INT) {
      if (p->tok.ival <= 0) fail_at(p, tok_loc(p, &p->tok), "a dimension must be positive or T");
      if (p->tok.ival > GAT_LIMIT_DIM)
        fail_at(p, tok_loc(p, &p->tok), "dimension %lld is over the limit of %lld", (long long)p->tok.ival,
                (long long)GAT_LIMIT_DIM);
      s->dims[s->rank++] = p->tok.ival;
      lex(p);
    } else {
      expected(p, "a dimension (a positive integer or T)");
    }
  }
  int64_t n = ir_shape_numel(*s, p->m ? p->m->max_T : 1);
  if (n > GAT_LIMIT_NUMEL)
    fail_at(p, tok_loc(p, &first), "this tensor has %lld elements at max_T = %lld, over the limit of 2^40",
            (long long)n, (long long)(p->m ? p->m->max_T : 1));
  lex(p);
}

/* ---- ops ---- */

static void parse_block_ops(Parser *p, IrBlock *b, int in_region);

/* attr := WORD '=' (INT | FLOAT | STRING | '[' (INT (',' INT)*)? ']') */
static void parse_attrs(Parser *p, IrOp *op) {
  expect_punct(p, '{');
  for (int n = 0; !at_punct(p, '}'); n++) {
    if (n > 0) expect_punct(p, ',');
    if (p->tok.kind != TK_WORD) expected(p, "an attribute name");
    Token key = p->tok;
    char *k = arena_strndup(p->arena, key.start, (size_t)key.len);
    if (ir_op_attr(op, k) || (op->expr && !strcmp(k, "expr")))
      fail_at(p, tok_loc(p, &key), "duplicate attribute '%s'", k);
    lex(p);
    expect_punct(p, '=');
    Token val = p->tok;
    if (op->kind == IR_OP_INDEX && !strcmp(k, "expr")) {
      if (val.kind != TK_STRING) expected(p, "the index expression as a string");
      char err[256];
      int off = 0;
      op->expr = ir_expr_parse(p->m, val.sval, err, sizeof err, &off);
      if (!op->expr) {
        /* Without escapes the string's characters sit at consecutive columns. */
        SrcLoc at = tok_loc(p, &val);
        if (!val.raw) at.col += 1 + off;
        const char *msg = strchr(err, ':');
        fail_at(p, at, "in index expression: %s", msg ? msg + 2 : err);
      }
      lex(p);
    } else if (val.kind == TK_INT) {
      ir_op_set_int(p->m, op, k, val.ival);
      lex(p);
    } else if (val.kind == TK_FLOAT) {
      ir_op_set_float(p->m, op, k, val.fval);
      lex(p);
    } else if (val.kind == TK_STRING) {
      ir_op_set_str(p->m, op, k, val.sval);
      lex(p);
    } else if (at_punct(p, '[')) {
      lex(p);
      /* The list grows in the arena, so an error midway leaks nothing. */
      int n = 0, cap = 8;
      int64_t *v = ARENA_ARRAY(p->arena, int64_t, cap);
      while (!at_punct(p, ']')) {
        if (n > 0) expect_punct(p, ',');
        if (p->tok.kind != TK_INT) expected(p, "an integer");
        if (n == cap) {
          int64_t *w = ARENA_ARRAY(p->arena, int64_t, cap * 2);
          memcpy(w, v, sizeof(int64_t) * (size_t)n);
          v = w;
          cap *= 2;
        }
        v[n++] = p->tok.ival;
        lex(p);
      }
      lex(p);
      ir_op_set_ints(p->m, op, k, n, v);
    } else {
      expected(p, "an attribute value (integer, float, string or [integers])");
    }
  }
  lex(p);
}

static int find_file(const char *name) {
  for (int i = 1; diag_file_text(i); i++)
    if (!strcmp(diag_file_name(i), name)) return i;
  return diag_add_file(name, NULL);
}

/* region := '(' (VALUE ':' type (',' VALUE ':' type)*)? ')' '{' op* 'yield' (VALUE (',' VALUE)*)? '}' */
static void parse_region(Parser *p, IrOp *op) {
  IrBlock *b = ir_op_add_region(p->m, op);
  int scope = p->nsyms;
  expect_punct(p, '(');
  while (!at_punct(p, ')')) {
    if (b->nargs > 0) expect_punct(p, ',');
    if (p->tok.kind != TK_VALUE) expected(p, "a region argument (%name)");
    Token name = p->tok;
    lex(p);
    expect_punct(p, ':');
    IrDType dt;
    IrShape s;
    parse_type(p, &dt, &s);
    sym_define(p, &name, ir_block_add_arg(p->m, b, dt, s));
  }
  lex(p);
  expect_punct(p, '{');
  parse_block_ops(p, b, 1);
  expect_word(p, "yield");
  IrValue **ys = NULL; /* as many as the region carries (scans of many states) */
  int n = 0, cap = 0;
  if (p->tok.kind == TK_VALUE) {
    for (;;) {
      if (n == cap) {
        cap = cap ? cap * 2 : 16;
        IrValue **w = ARENA_ARRAY(p->arena, IrValue *, cap);
        if (n) memcpy(w, ys, sizeof(IrValue *) * (size_t)n);
        ys = w;
      }
      ys[n++] = use_value(p);
      if (!at_punct(p, ',')) break;
      lex(p);
    }
  }
  ir_block_set_yields(p->m, b, n, ys);
  expect_punct(p, '}');
  sym_pop_to(p, scope);
}

/* op := (VALUE (',' VALUE)* '=')? WORD (VALUE (',' VALUE)*)? ('{' attrs '}')?
 *       (':' type (',' type)*)? ('loc' '(' STRING ':' INT ':' INT ')')?
 *       ('origin' STRING)? ('{' region+ '}')? */
static void parse_op(Parser *p, IrBlock *b) {
  Token *names = NULL; /* a scan has one result per state */
  int nres = 0, cap = 0;
  if (p->tok.kind == TK_VALUE) {
    for (;;) {
      if (nres == cap) {
        cap = cap ? cap * 2 : 16;
        Token *w = ARENA_ARRAY(p->arena, Token, cap);
        if (nres) memcpy(w, names, sizeof(Token) * (size_t)nres);
        names = w;
      }
      names[nres++] = p->tok;
      lex(p);
      if (!at_punct(p, ',')) break;
      lex(p);
      if (p->tok.kind != TK_VALUE) expected(p, "a result name (%name)");
    }
    expect_punct(p, '=');
  }
  if (p->tok.kind != TK_WORD) expected(p, "an op name");
  Token optok = p->tok;
  char name[32];
  snprintf(name, sizeof name, "%.*s", optok.len > 31 ? 31 : optok.len, optok.start);
  int kind = optok.len < 31 ? ir_op_from_name(name) : -1;
  if (kind < 0) fail_at(p, tok_loc(p, &optok), "unknown op '%.*s'", optok.len, optok.start);
  lex(p);
  IrOp *op = ir_op_new(p->m, b, (IrOpKind)kind, 0, NULL, (SrcLoc){0, 0, 0});
  if (p->tok.kind == TK_VALUE) {
    for (;;) {
      ir_op_add_operand(p->m, op, use_value(p));
      if (!at_punct(p, ',')) break;
      lex(p);
    }
  }
  if (at_punct(p, '{')) {
    Token next = peek2(p);
    if (!tok_is(&next, TK_PUNCT, "(")) parse_attrs(p, op);
  }
  if (op->kind == IR_OP_INDEX && !op->expr)
    fail_at(p, tok_loc(p, &optok), "index op without an expr attribute");
  if (at_punct(p, ':')) {
    Token colon = p->tok;
    if (nres == 0) fail_at(p, tok_loc(p, &colon), "an op without results has no result types");
    lex(p);
    for (int i = 0;; i++) {
      if (i == nres)
        fail_at(p, tok_loc(p, &p->tok), "more result types than results (%d)", nres);
      IrDType dt;
      IrShape s;
      parse_type(p, &dt, &s);
      ir_op_add_result(p->m, op, dt, s);
      if (!at_punct(p, ',')) break;
      lex(p);
    }
    if (op->nout != nres)
      fail_at(p, tok_loc(p, &colon), "%d results but %d result types", nres, op->nout);
  } else if (nres > 0) {
    expected(p, "':' and the result types");
  }
  if (at_word(p, "loc")) {
    lex(p);
    expect_punct(p, '(');
    const char *file = expect_string(p);
    expect_punct(p, ':');
    Token lt = p->tok;
    int64_t line = expect_int(p);
    expect_punct(p, ':');
    int64_t col = expect_int(p);
    if (line <= 0 || col <= 0 || line > 100000000 || col > 100000000)
      fail_at(p, tok_loc(p, &lt), "a location's line and column must be positive");
    expect_punct(p, ')');
    op->loc = (SrcLoc){find_file(file), (int)line, (int)col};
  }
  if (at_word(p, "origin")) {
    lex(p);
    op->origin = expect_string(p);
  }
  if (at_punct(p, '{')) {
    lex(p);
    if (!at_punct(p, '(')) expected(p, "'(' starting a region");
    while (at_punct(p, '(')) parse_region(p, op);
    expect_punct(p, '}');
  }
  /* Results become visible only after the op's own regions. */
  for (int i = 0; i < nres; i++) sym_define(p, &names[i], op->out[i]);
}

static void parse_block_ops(Parser *p, IrBlock *b, int in_region) {
  for (;;) {
    if (in_region && at_word(p, "yield")) return;
    if (at_punct(p, '}')) {
      if (in_region) expected(p, "'yield' ending the region");
      return;
    }
    if (p->tok.kind == TK_EOF) expected(p, in_region ? "'yield'" : "'}' closing the body");
    parse_op(p, b);
  }
}

/* ---- module header ---- */

static IrInit parse_init(Parser *p) {
  IrInit in = {IR_INIT_CONST, 0, 0};
  static const struct {
    const char *name;
    IrInitKind kind;
    int nargs;
  } rules[] = {{"normal", IR_INIT_NORMAL, 2},         {"uniform", IR_INIT_UNIFORM, 2},
               {"constant", IR_INIT_CONST, 1},        {"linear", IR_INIT_LINEAR, 0},
               {"log_uniform", IR_INIT_LOG_UNIFORM, 2}, {"dt_bias", IR_INIT_DT_BIAS, 2},
               {"eye", IR_INIT_EYE, 0},               {"one_hot_last", IR_INIT_ONE_HOT_LAST, 0}};
  for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
    if (!at_word(p, rules[i].name)) continue;
    lex(p);
    in.kind = rules[i].kind;
    if (rules[i].nargs > 0) {
      expect_punct(p, '(');
      in.a = expect_number(p);
      if (rules[i].nargs > 1) {
        expect_punct(p, ',');
        in.b = expect_number(p);
      }
      expect_punct(p, ')');
    }
    return in;
  }
  expected(p, "an init rule (normal, uniform, constant, linear, log_uniform, dt_bias, eye)");
}

static void check_unique(Parser *p, const PtrVec *v, size_t name_off, const char *name, const Token *at,
                         const char *what) {
  for (int i = 0; i < v->len; i++)
    if (!strcmp(*(const char **)((const char *)v->data[i] + name_off), name))
      fail_at(p, tok_loc(p, at), "duplicate %s \"%s\"", what, name);
}

static void parse_header_line(Parser *p) {
  Token kw = p->tok;
  lex(p);
  Token nt = p->tok;
  const char *name = expect_string(p);
  expect_punct(p, ':');
  IrDType dt;
  IrShape s;
  Token tt = p->tok;
  parse_type(p, &dt, &s);
  if (tok_is(&kw, TK_WORD, "param")) {
    check_unique(p, &p->m->params, offsetof(IrParam, name), name, &nt, "param");
    if (ir_shape_has_T(s)) fail_at(p, tok_loc(p, &tt), "a param's shape must be static (no T)");
    expect_word(p, "init");
    IrInit in = parse_init(p);
    ir_module_add_param(p->m, name, dt, s, in, (SrcLoc){0, 0, 0});
  } else if (tok_is(&kw, TK_WORD, "input")) {
    check_unique(p, &p->m->inputs, offsetof(IrIO, name), name, &nt, "input");
    ir_module_add_input(p->m, name, dt, s);
  } else if (tok_is(&kw, TK_WORD, "output")) {
    check_unique(p, &p->m->outputs, offsetof(IrIO, name), name, &nt, "output");
    ir_module_add_output(p->m, name, dt, s);
  } else {
    if (ir_shape_has_T(s)) fail_at(p, tok_loc(p, &tt), "a state's shape must be static (no T)");
    expect_punct(p, '=');
    ir_module_add_state(p->m, name, dt, s, expect_number(p));
  }
}

/* module := 'module' (WORD | STRING) 'max_T' INT header* 'body' '{' op* '}' EOF */
static void parse_module(Parser *p) {
  lex(p);
  expect_word(p, "module");
  const char *name;
  if (p->tok.kind == TK_WORD) {
    name = arena_strndup(p->arena, p->tok.start, (size_t)p->tok.len);
    lex(p);
  } else if (p->tok.kind == TK_STRING) {
    name = p->tok.sval;
    lex(p);
  } else {
    expected(p, "the module name");
  }
  expect_word(p, "max_T");
  Token mt = p->tok;
  int64_t max_T = expect_int(p);
  if (max_T <= 0) fail_at(p, tok_loc(p, &mt), "max_T must be positive");
  if (max_T > GAT_LIMIT_MAX_T)
    fail_at(p, tok_loc(p, &mt), "max_T %lld is over the limit of %lld", (long long)max_T, (long long)GAT_LIMIT_MAX_T);
  p->m = ir_module_new(p->arena, name, max_T);
  while (at_word(p, "param") || at_word(p, "input") || at_word(p, "output") || at_word(p, "state"))
    parse_header_line(p);
  expect_word(p, "body");
  expect_punct(p, '{');
  parse_block_ops(p, p->m->body, 0);
  expect_punct(p, '}');
  if (p->tok.kind != TK_EOF) expected(p, "the end of the input after the body");
}

IrModule *ir_parse(Arena *a, const char *display_name, const char *text) {
  Parser p;
  memset(&p, 0, sizeof p);
  p.arena = a;
  p.text = text ? text : "";
  p.file = diag_add_file(display_name ? display_name : "<ir>", p.text);
  p.line = 1;
  p.col = 1;
  IrModule *volatile result = NULL;
  if (setjmp(p.fail) == 0) {
    parse_module(&p);
    result = p.m;
  } else if (p.m) {
    ir_module_release(p.m); /* the arena keeps the rest */
  }
  free(p.syms);
  free(p.bucket);
  return result;
}
