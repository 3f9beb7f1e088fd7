/* ast.c — AST node constructors, list growth and the S-expression dump.
 *
 * The parser (grammar/parser.y) builds every node through the constructors
 * here so that nodes always start zeroed with kind and location set. The dump
 * is the test oracle for the parser: it shows structure only (no locations),
 * deterministically, one declaration per line.
 *
 * Dump format (one line per top-level declaration):
 *   decls    (import std) | (import "path.gat") | (const (a E) (b E))
 *            (layer NAME (params (x TYPE) (y TYPE E)...) (-> TYPE...) STMT...)
 *            (model NAME STMT...)
 *   types    int | float | bool | str | (f32 E...) | (i32 E...)   ; f32[] = (f32)
 *   stmts    (const (a E)...) | (let (a E)...)
 *            (assign (x y) E) | (assign (x) E (skip-when E))
 *            (assign (x) E (route-top CAP SCORE [THRESHOLD]))
 *            (assign (S [i j]) E)                      ; index notation, emit too
 *            (input x TYPE) | (output x TYPE) | (param w TYPE [E])
 *            (maxseq T E) | (repeat i LO HI [@"scope"] STMT...) | (return E)
 *            (if COND (STMT...) [(else STMT...)])       ; else only when written
 *            (assign (y [(l LO HI) j]) E)               ; an index with a range
 *   exprs    42 | 0.5 (floats always show '.', 'e' or "nan"/"inf") | "str"
 *            true | false | NAME (bare identifier)
 *            (+ a b) - * / % ** < <= > >= == != and or: (OP lhs rhs)
 *            (neg x) | (not x)
 *            (call f ARG... [@"scope"])  ; keyword args print as name:E
 *            (index x E...) | (slice LO HI)  ; a missing bound prints as _
 *            (as E DIM...) | (sum (i j) BODY) | (max ...) | (min ...) | (mean ...)
 *            (scan t ((S TYPE INIT)...) STMT...)
 *            (mixture e LO HI IDX WEIGHTS (STMT...) RESULT)
 *            (tuple E...)
 */
#include "ast.h"

#include <string.h>

void ast_list_push(Arena *a, AstList *l, void *item) {
  /* Capacity is implicit (AstList has no cap field): 4 slots at first, then
   * the array moves to a twice-as-large arena block whenever len reaches a
   * power of two >= 4, so pushes stay amortized O(1). */
  int n = l->len;
  if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
    void **items = ARENA_ARRAY(a, void *, n == 0 ? 4 : 2 * n);
    if (n) memcpy(items, l->items, sizeof(void *) * (size_t)n);
    l->items = items;
  }
  l->items[l->len++] = item;
}

AstExpr *ast_expr_new(Arena *a, AstExprKind kind, SrcLoc loc) {
  AstExpr *e = ARENA_NEW(a, AstExpr);
  e->kind = kind;
  e->loc = loc;
  return e;
}

AstExpr *ast_expr_binary(Arena *a, AstBinOp op, AstExpr *lhs, AstExpr *rhs, SrcLoc loc) {
  AstExpr *e = ast_expr_new(a, AST_EXPR_BINARY, loc);
  e->binop = op;
  e->lhs = lhs;
  e->rhs = rhs;
  return e;
}

AstExpr *ast_expr_unary(Arena *a, AstUnOp op, AstExpr *operand, SrcLoc loc) {
  AstExpr *e = ast_expr_new(a, AST_EXPR_UNARY, loc);
  e->unop = op;
  e->lhs = operand;
  return e;
}

AstStmt *ast_stmt_new(Arena *a, AstStmtKind kind, SrcLoc loc) {
  AstStmt *s = ARENA_NEW(a, AstStmt);
  s->kind = kind;
  s->loc = loc;
  return s;
}

AstType *ast_type_new(Arena *a, AstTypeKind kind, SrcLoc loc) {
  AstType *t = ARENA_NEW(a, AstType);
  t->kind = kind;
  t->loc = loc;
  return t;
}

AstDecl *ast_decl_new(Arena *a, AstDeclKind kind, SrcLoc loc) {
  AstDecl *d = ARENA_NEW(a, AstDecl);
  d->kind = kind;
  d->loc = loc;
  return d;
}

/* ---- dump ------------------------------------------------------------------ */

static const char *binop_text(AstBinOp op) {
  switch (op) {
  case AST_ADD: return "+";
  case AST_SUB: return "-";
  case AST_MUL: return "*";
  case AST_DIV: return "/";
  case AST_MOD: return "%";
  case AST_POW: return "**";
  case AST_LT: return "<";
  case AST_LE: return "<=";
  case AST_GT: return ">";
  case AST_GE: return ">=";
  case AST_EQ: return "==";
  case AST_NE: return "!=";
  case AST_AND: return "and";
  case AST_OR: return "or";
  }
  gat_unreachable();
}

static const char *reduce_text(AstReduceKind k) {
  switch (k) {
  case AST_RED_SUM: return "sum";
  case AST_RED_MAX: return "max";
  case AST_RED_MIN: return "min";
  case AST_RED_MEAN: return "mean";
  }
  gat_unreachable();
}

static void dump_string(FILE *out, const char *s) {
  fputc('"', out);
  for (const char *p = s ? s : ""; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(out, "\\%c", *p);
    else if (*p == '\n')
      fputs("\\n", out);
    else if (*p == '\t')
      fputs("\\t", out);
    else
      fputc(*p, out);
  }
  fputc('"', out);
}

static void dump_type(FILE *out, const AstType *t);
static void dump_stmts(FILE *out, const AstList *l);

/* A NULL expression only occurs for the open bounds of a slice (and in
 * partial trees after syntax errors): it prints as `_`. */
void ast_dump_expr(FILE *out, const AstExpr *e) {
  if (!e) {
    fputs("_", out);
    return;
  }
  switch (e->kind) {
  case AST_EXPR_INT: fprintf(out, "%lld", (long long)e->ival); break;
  case AST_EXPR_FLOAT: {
    char buf[64];
    format_double(buf, sizeof buf, e->fval);
    fputs(buf, out);
    break;
  }
  case AST_EXPR_STRING: dump_string(out, e->sval); break;
  case AST_EXPR_BOOL: fputs(e->ival ? "true" : "false", out); break;
  case AST_EXPR_NAME: fputs(e->name, out); break;
  case AST_EXPR_BINARY:
    fprintf(out, "(%s ", binop_text(e->binop));
    ast_dump_expr(out, e->lhs);
    fputc(' ', out);
    ast_dump_expr(out, e->rhs);
    fputc(')', out);
    break;
  case AST_EXPR_UNARY:
    fputs(e->unop == AST_NEG ? "(neg " : "(not ", out);
    ast_dump_expr(out, e->lhs);
    fputc(')', out);
    break;
  case AST_EXPR_CALL:
    fprintf(out, "(call %s", e->name);
    for (int i = 0; i < e->args.len; i++) {
      const AstArg *arg = e->args.items[i];
      fputc(' ', out);
      if (arg->name) fprintf(out, "%s:", arg->name);
      ast_dump_expr(out, arg->value);
    }
    if (e->scope) {
      fputs(" @", out);
      dump_string(out, e->scope);
    }
    fputc(')', out);
    break;
  case AST_EXPR_INDEX:
    fprintf(out, "(index %s", e->name);
    for (int i = 0; i < e->args.len; i++) {
      fputc(' ', out);
      ast_dump_expr(out, e->args.items[i]);
    }
    fputc(')', out);
    break;
  case AST_EXPR_SLICE:
    fputs("(slice ", out);
    ast_dump_expr(out, e->lo);
    fputc(' ', out);
    ast_dump_expr(out, e->hi);
    fputc(')', out);
    break;
  case AST_EXPR_AS:
    fputs("(as ", out);
    ast_dump_expr(out, e->lhs);
    for (int i = 0; i < e->args.len; i++) {
      fputc(' ', out);
      ast_dump_expr(out, e->args.items[i]);
    }
    fputc(')', out);
    break;
  case AST_EXPR_REDUCE:
    fprintf(out, "(%s (", reduce_text(e->reduce));
    for (int i = 0; i < e->vars.len; i++) fprintf(out, "%s%s", i ? " " : "", (const char *)e->vars.items[i]);
    fputs(") ", out);
    ast_dump_expr(out, e->lhs);
    fputc(')', out);
    break;
  case AST_EXPR_SCAN:
    fprintf(out, "(scan %s (", e->name);
    for (int i = 0; i < e->states.len; i++) {
      const AstScanState *st = e->states.items[i];
      fprintf(out, "%s(%s ", i ? " " : "", st->name);
      dump_type(out, st->type);
      fputc(' ', out);
      ast_dump_expr(out, st->init);
      fputc(')', out);
    }
    fputc(')', out);
    dump_stmts(out, &e->body);
    fputc(')', out);
    break;
  case AST_EXPR_MIXTURE:
    fprintf(out, "(mixture %s ", e->name);
    ast_dump_expr(out, e->lo);
    fputc(' ', out);
    ast_dump_expr(out, e->hi);
    fputc(' ', out);
    ast_dump_expr(out, e->idx);
    fputc(' ', out);
    ast_dump_expr(out, e->weights);
    fputs(" (", out);
    for (int i = 0; i < e->body.len; i++) {
      if (i) fputc(' ', out);
      ast_dump_stmt(out, e->body.items[i]);
    }
    fputs(") ", out);
    ast_dump_expr(out, e->result);
    fputc(')', out);
    break;
  case AST_EXPR_TUPLE:
    fputs("(tuple", out);
    for (int i = 0; i < e->args.len; i++) {
      fputc(' ', out);
      ast_dump_expr(out, e->args.items[i]);
    }
    fputc(')', out);
    break;
  }
}

static void dump_type(FILE *out, const AstType *t) {
  if (!t) {
    fputs("_", out);
    return;
  }
  switch (t->kind) {
  case AST_TYPE_INT: fputs("int", out); break;
  case AST_TYPE_FLOAT: fputs("float", out); break;
  case AST_TYPE_BOOL: fputs("bool", out); break;
  case AST_TYPE_STR: fputs("str", out); break;
  case AST_TYPE_TENSOR:
    fprintf(out, "(%s", t->dtype);
    for (int i = 0; i < t->dims.len; i++) {
      fputc(' ', out);
      ast_dump_expr(out, t->dims.items[i]);
    }
    fputc(')', out);
    break;
  }
}

/* Statements of a body, each preceded by a space. */
static void dump_stmts(FILE *out, const AstList *l) {
  for (int i = 0; i < l->len; i++) {
    fputc(' ', out);
    ast_dump_stmt(out, l->items[i]);
  }
}

static void dump_bindings(FILE *out, const char *head, const AstStmt *s) {
  fprintf(out, "(%s", head);
  for (int i = 0; i < s->names.len; i++) {
    fprintf(out, " (%s ", (const char *)s->names.items[i]);
    ast_dump_expr(out, i < s->values.len ? s->values.items[i] : NULL);
    fputc(')', out);
  }
  fputc(')', out);
}

void ast_dump_stmt(FILE *out, const AstStmt *s) {
  switch (s->kind) {
  case AST_STMT_CONST: dump_bindings(out, "const", s); break;
  case AST_STMT_LET: dump_bindings(out, "let", s); break;
  case AST_STMT_ASSIGN:
    fputs("(assign (", out);
    for (int i = 0; i < s->names.len; i++) fprintf(out, "%s%s", i ? " " : "", (const char *)s->names.items[i]);
    if (s->indices.len) {
      fputs(" [", out);
      for (int i = 0; i < s->indices.len; i++) {
        const char *ix = s->indices.items[i];
        if (i < s->index_hi.len && s->index_hi.items[i]) {
          fprintf(out, "%s(%s ", i ? " " : "", ix);
          ast_dump_expr(out, s->index_lo.items[i]);
          fputc(' ', out);
          ast_dump_expr(out, s->index_hi.items[i]);
          fputc(')', out);
        } else {
          fprintf(out, "%s%s", i ? " " : "", ix);
        }
      }
      fputc(']', out);
    }
    fputs(") ", out);
    ast_dump_expr(out, s->value);
    if (s->skip_when) {
      fputs(" (skip-when ", out);
      ast_dump_expr(out, s->skip_when);
      if (s->skip_kv) fprintf(out, " (kv %s)", s->skip_kv);
      fputc(')', out);
    }
    if (s->route_top) {
      fputs(" (route-top ", out);
      ast_dump_expr(out, s->route_top);
      fputc(' ', out);
      ast_dump_expr(out, s->route_by);
      if (s->route_threshold) {
        fputc(' ', out);
        ast_dump_expr(out, s->route_threshold);
      }
      fputc(')', out);
    }
    fputc(')', out);
    break;
  case AST_STMT_INPUT:
  case AST_STMT_OUTPUT:
  case AST_STMT_PARAM:
    fprintf(out, "(%s %s ",
            s->kind == AST_STMT_INPUT ? "input" : s->kind == AST_STMT_OUTPUT ? "output" : "param",
            s->names.len ? (const char *)s->names.items[0] : "_");
    dump_type(out, s->type);
    if (s->init) {
      fputc(' ', out);
      ast_dump_expr(out, s->init);
    }
    fputc(')', out);
    break;
  case AST_STMT_REPEAT:
    fprintf(out, "(repeat %s ", s->var);
    ast_dump_expr(out, s->lo);
    fputc(' ', out);
    ast_dump_expr(out, s->hi);
    if (s->scope) {
      fputs(" @", out);
      dump_string(out, s->scope);
    }
    dump_stmts(out, &s->body);
    fputc(')', out);
    break;
  case AST_STMT_RETURN:
    fputs("(return ", out);
    ast_dump_expr(out, s->value);
    fputc(')', out);
    break;
  case AST_STMT_MAXSEQ:
    fprintf(out, "(maxseq %s ", s->names.len ? (const char *)s->names.items[0] : "_");
    ast_dump_expr(out, s->value);
    fputc(')', out);
    break;
  case AST_STMT_IF:
    fputs("(if ", out);
    ast_dump_expr(out, s->cond);
    fputs(" (", out);
    for (int i = 0; i < s->body.len; i++) {
      if (i) fputc(' ', out);
      ast_dump_stmt(out, s->body.items[i]);
    }
    fputc(')', out);
    if (s->has_else) {
      fputs(" (else", out);
      dump_stmts(out, &s->else_body);
      fputc(')', out);
    }
    fputc(')', out);
    break;
  }
}

static void dump_decl(FILE *out, const AstDecl *d) {
  switch (d->kind) {
  case AST_DECL_IMPORT:
    fputs("(import ", out);
    if (d->import_is_path)
      dump_string(out, d->name);
    else
      fputs(d->name, out);
    fputc(')', out);
    break;
  case AST_DECL_CONST: ast_dump_stmt(out, d->stmt); break;
  case AST_DECL_LAYER:
    fprintf(out, "(layer %s (params", d->name);
    for (int i = 0; i < d->params.len; i++) {
      const AstParam *p = d->params.items[i];
      fprintf(out, " (%s ", p->name);
      dump_type(out, p->type);
      if (p->deflt) {
        fputc(' ', out);
        ast_dump_expr(out, p->deflt);
      }
      fputc(')', out);
    }
    fputs(") (->", out);
    for (int i = 0; i < d->rets.len; i++) {
      fputc(' ', out);
      dump_type(out, d->rets.items[i]);
    }
    fputc(')', out);
    dump_stmts(out, &d->body);
    fputc(')', out);
    break;
  case AST_DECL_MODEL:
    fprintf(out, "(model %s", d->name);
    dump_stmts(out, &d->body);
    fputc(')', out);
    break;
  }
}

void ast_dump(FILE *out, const AstFile *f) {
  if (!f) return;
  for (int i = 0; i < f->decls.len; i++) {
    dump_decl(out, f->decls.items[i]);
    fputc('\n', out);
  }
}
