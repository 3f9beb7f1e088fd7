/* parser.y — the .gat grammar (docs/language.md, "Grammar summary").
 *
 * Pure, reentrant and conflict-free (%expect 0). Actions only build AST nodes
 * through the constructors of compiler/front/ast.c and set each node's location to
 * its first token (@1); a few purely syntactic checks (a reduction's variables
 * are names, a mixture body ends with `return`, type names are known) are
 * done here because they are about how the text is written, not what it
 * means. Everything else is sema's job.
 *
 * Syntax errors are reported by yyreport_syntax_error as
 * `unexpected X, expected Y` with readable token names; `error` rules at
 * the statement and declaration level resynchronise on the next newline,
 * ';' or '}' so one run reports several errors.
 *
 * Two places need care to stay conflict-free:
 *
 * 1. `sum`/`max`/`min`/`mean` are both reductions and ordinary calls. Both
 *    start with `KW '(' args ')'`; the token after ')' decides. If it can
 *    start a primary expression (identifier, literal, '(', true/false, a
 *    reduction keyword, scan, mixture, not), it is a reduction and the
 *    arguments must be plain names: `max(i) x[i]`. Anything else (an
 *    operator including '-', ')', ',', newline, `as`, `@` ...) makes it a
 *    call: `max(a, b) - 1`, `sum(x, axis: -1)`. Hence a reduction body is an
 *    `nexpr`, an expression that does not start with unary minus. The body
 *    extends as far right as possible (the reduction rule has the lowest
 *    precedence, so every binary operator is shifted into the body).
 *
 * 2. `@ "scope"` follows a call, but a `repeat i in 0..n @ "s"` header also
 *    has one after an expression. After a call the parser always takes the
 *    '@' as the call's scope (precedence CALL_NO_SCOPE < '@'); the repeat rule
 *    then moves the scope of a call that ends the range up to the repeat, so
 *    in a repeat header a trailing `@ STRING` always belongs to the repeat. */

%code requires {
#include "ast.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* Everything one parse needs, shared by the scanner (as yyextra) and the
 * parser (as a %parse-param). */
/* How deep '(', '[' and '{' may nest (docs/language.md, "Nesting depth"). */
#define PARSE_MAX_NESTING 256

typedef struct ParseState {
  Arena *arena;
  int file;           /* diag file id */
  const char *text;   /* the whole source, NUL-terminated */
  size_t pos;         /* byte offset of the scanner */
  int line, col;      /* 1-based position of the scanner */
  char *opens;        /* stack of open '(', '[' and '{' (heap) */
  int nopens, capopens;
  int last_can_end;   /* the previous token may end a statement */
  int too_deep;       /* brackets nested past PARSE_MAX_NESTING: input ended there */
  AstFile *result;
} ParseState;
}

%code provides {
int gat_yylex(GAT_YYSTYPE *lvalp, GAT_YYLTYPE *llocp, yyscan_t scanner);
}

%code {
#include <string.h>

static void gat_yyerror(GAT_YYLTYPE *loc, yyscan_t scanner, ParseState *ps, const char *msg);

#define LOC(l) ((SrcLoc){ps->file, (l).first_line, (l).first_column})
#define NEW_EXPR(kind, l) ast_expr_new(ps->arena, (kind), LOC(l))
#define BIN(op, a, b, l) ast_expr_binary(ps->arena, (op), (a), (b), LOC(l))

static AstList list1(Arena *a, void *item) {
  AstList l = {0, NULL};
  ast_list_push(a, &l, item);
  return l;
}

/* Name lists hold const char*; AstList stores void*. */
static void push_name(Arena *a, AstList *l, const char *name) { ast_list_push(a, l, (void *)name); }
static AstList names1(Arena *a, const char *name) {
  AstList l = {0, NULL};
  push_name(a, &l, name);
  return l;
}

static AstType *type_from_name(ParseState *ps, const char *name, SrcLoc loc) {
  if (!strcmp(name, "int") || !strcmp(name, "i32")) return ast_type_new(ps->arena, AST_TYPE_INT, loc);
  if (!strcmp(name, "float") || !strcmp(name, "f32")) return ast_type_new(ps->arena, AST_TYPE_FLOAT, loc);
  if (!strcmp(name, "bool")) return ast_type_new(ps->arena, AST_TYPE_BOOL, loc);
  if (!strcmp(name, "str")) return ast_type_new(ps->arena, AST_TYPE_STR, loc);
  diag_error(loc, "unknown type '%s' (expected int, float, bool, str, f32 or i32)", name);
  return ast_type_new(ps->arena, AST_TYPE_FLOAT, loc);
}

static AstType *tensor_type(ParseState *ps, const char *name, AstList dims, SrcLoc loc) {
  AstType *t = ast_type_new(ps->arena, AST_TYPE_TENSOR, loc);
  if (strcmp(name, "f32") && strcmp(name, "i32")) {
    diag_error(loc, "unknown tensor type '%s' (expected f32[...] or i32[...])", name);
    name = "f32";
  }
  t->dtype = name;
  t->dims = dims;
  return t;
}

static AstExpr *make_call(ParseState *ps, const char *name, AstList args, SrcLoc loc) {
  AstExpr *e = ast_expr_new(ps->arena, AST_EXPR_CALL, loc);
  e->name = name;
  e->args = args;
  return e;
}

static AstReduceKind reduce_kind(const char *kw) {
  if (!strcmp(kw, "sum")) return AST_RED_SUM;
  if (!strcmp(kw, "max")) return AST_RED_MAX;
  if (!strcmp(kw, "min")) return AST_RED_MIN;
  return AST_RED_MEAN;
}

/* `sum(i, j) body`: the argument list was parsed like a call's; check that
 * it is a list of index variable names. */
static AstExpr *make_reduce(ParseState *ps, const char *kw, AstList args, AstExpr *body, SrcLoc loc) {
  AstExpr *e = ast_expr_new(ps->arena, AST_EXPR_REDUCE, loc);
  e->reduce = reduce_kind(kw);
  e->name = kw;
  e->lhs = body;
  if (args.len == 0) diag_error(loc, "'%s(...)' as a reduction needs at least one index variable", kw);
  for (int i = 0; i < args.len; i++) {
    AstArg *a = args.items[i];
    if (a->name || a->value->kind != AST_EXPR_NAME) {
      diag_error(a->loc, "the variables of a reduction '%s(...) expr' must be plain names", kw);
      continue;
    }
    ast_list_push(ps->arena, &e->vars, (void *)a->value->name);
  }
  return e;
}

static AstStmt *make_assign(ParseState *ps, AstList names, AstList indices, AstExpr *value, SrcLoc loc) {
  AstStmt *s = ast_stmt_new(ps->arena, AST_STMT_ASSIGN, loc);
  s->names = names;
  s->indices = indices;
  s->value = value;
  return s;
}

/* `y[i, l in 0..L] = e`: the index names go into indices; explicit ranges,
 * if any index has one, into index_lo/index_hi (parallel, NULL for none). */
static AstStmt *make_index_assign(ParseState *ps, const char *target, AstList ixvars, AstExpr *value, SrcLoc loc) {
  AstList names = {0, NULL};
  int ranged = 0;
  for (int i = 0; i < ixvars.len; i++) {
    AstExpr *v = ixvars.items[i];
    push_name(ps->arena, &names, v->name);
    ranged |= v->hi != NULL;
  }
  AstStmt *s = make_assign(ps, names1(ps->arena, target), names, value, loc);
  if (ranged)
    for (int i = 0; i < ixvars.len; i++) {
      AstExpr *v = ixvars.items[i];
      ast_list_push(ps->arena, &s->index_lo, v->lo);
      ast_list_push(ps->arena, &s->index_hi, v->hi);
    }
  return s;
}

static AstStmt *make_repeat(ParseState *ps, const char *var, AstExpr *lo, AstExpr *hi, const char *scope,
                            SrcLoc scope_loc, AstList body, SrcLoc loc) {
  AstStmt *s = ast_stmt_new(ps->arena, AST_STMT_REPEAT, loc);
  s->var = var;
  s->lo = lo;
  s->hi = hi;
  /* See note 2 at the top: `0..f(n) @ "s"` parsed the scope onto f(n). */
  if (!scope && hi && hi->kind == AST_EXPR_CALL && hi->scope) {
    scope = hi->scope;
    scope_loc = hi->scope_loc;
    hi->scope = NULL;
  }
  s->scope = scope;
  s->scope_loc = scope_loc;
  s->body = body;
  return s;
}

/* Whether token b starts right where token a ends (no blank between). */
static int tokens_touch(GAT_YYLTYPE a, GAT_YYLTYPE b) {
  return a.last_line == b.first_line && a.last_column == b.first_column;
}

static AstStmt *make_if(ParseState *ps, AstExpr *cond, AstList body, AstStmt *else_if, int has_else,
                        SrcLoc loc) {
  AstStmt *s = ast_stmt_new(ps->arena, AST_STMT_IF, loc);
  s->cond = cond;
  s->body = body;
  s->has_else = has_else;
  if (else_if) ast_list_push(ps->arena, &s->else_body, else_if);
  return s;
}

/* `targets = value route top(cap [, threshold: tau]) by score`: the words `top`
 * and `threshold` are plain names (not reserved), checked here. */
static AstStmt *make_route(ParseState *ps, AstStmt *s, const char *top, SrcLoc top_loc, AstExpr *cap,
                           AstExpr *score, const char *opt, AstExpr *opt_value, SrcLoc opt_loc) {
  if (strcmp(top, "top") != 0)
    diag_error(top_loc, "expected 'top(...)' after 'route', not '%s'", top);
  if (opt && strcmp(opt, "threshold") != 0)
    diag_error(opt_loc, "unknown route option '%s' (the only one is 'threshold: tau')", opt);
  s->route_top = cap;
  s->route_by = score;
  s->route_threshold = opt ? opt_value : NULL;
  return s;
}

/* `targets = value skip when cond, kv: previous` (GateSkip's KV copy): the words
 * `kv` and `previous` are plain names (not reserved), checked here. */
static void make_skip_kv(ParseState *ps, AstStmt *s, const char *opt, SrcLoc opt_loc, AstExpr *value) {
  (void)ps;
  if (strcmp(opt, "kv") != 0) {
    diag_error(opt_loc, "unknown skip option '%s' (the only one is 'kv: previous')", opt);
    return;
  }
  if (value->kind != AST_EXPR_NAME || strcmp(value->name, "previous") != 0) {
    diag_error(value->loc, "'kv:' of a skip must be 'previous' (copy the previous attention's keys and values)");
    return;
  }
  s->skip_kv = value->name;
  s->skip_kv_loc = opt_loc;
}

static AstExpr *make_mixture(ParseState *ps, const char *var, AstExpr *lo, AstExpr *hi, AstExpr *idx,
                             AstExpr *weights, AstList body, SrcLoc loc) {
  AstExpr *e = ast_expr_new(ps->arena, AST_EXPR_MIXTURE, loc);
  e->name = var;
  e->lo = lo;
  e->hi = hi;
  e->idx = idx;
  e->weights = weights;
  AstStmt *last = body.len ? body.items[body.len - 1] : NULL;
  if (!last || last->kind != AST_STMT_RETURN) {
    diag_error(last ? last->loc : loc, "a mixture body must end with 'return expr'");
    e->body = body;
  } else {
    body.len--;
    e->body = body;
    e->result = last->value;
  }
  return e;
}
}

%define api.pure full
%define api.prefix {gat_yy}
%define api.token.prefix {TK_}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%param {yyscan_t scanner}
%parse-param {ParseState *ps}

%union {
  int64_t ival;
  double fval;
  const char *str;
  AstExpr *expr;
  AstStmt *stmt;
  AstType *type;
  AstDecl *decl;
  AstArg *arg;
  AstParam *param;
  AstScanState *state;
  AstList list;
}

%token NEWLINE
%token <str> NAME STRING
%token <ival> INT
%token <fval> FLOAT
%token IMPORT MODEL LAYER CONST LET INPUT OUTPUT PARAM RETURN REPEAT IN SCAN WITH EMIT
%token MIXTURE BY WEIGHTED SKIP WHEN AS AND OR NOT IF ELSE ROUTE
%token <ival> TRUE FALSE
%token <str> SUM MAX MIN MEAN
%token DOTDOT ARROW POW LE GE EQ NE

%type <decl> decl
%type <stmt> stmt const_stmt bindings if_stmt
%type <expr> ixvar expr nexpr postfix primary call reduction scan mixture index
%type <type> type
%type <arg> arg
%type <param> param
%type <state> state
%type <str> redkw pname
%type <list> stmt_seq stmts_ne stmts_sep block names exprs exprs_opt args args_opt
%type <list> ixvars indices params params_opt ret_opt types states

/* Loosest first. REDUCE_BODY and CALL_NO_SCOPE are rule precedences only. */
%precedence REDUCE_BODY
%left OR
%left AND
%nonassoc EQ NE '<' LE '>' GE
%left '+' '-'
%left '*' '/' '%'
%precedence UNARY
%right POW
%precedence CALL_NO_SCOPE
%precedence '@'

%%

/* ---- file ----------------------------------------------------------------- */

/* decls separated by newlines or ';'; leading, trailing and repeated
 * separators are fine. Declarations go straight into ps->result so a parse
 * that gives up early still returns what it built. */
file: %empty | decls_ne | decls_sep ;
decls_ne: decl_item | decls_sep decl_item ;
decls_sep: sep | decls_ne sep | decls_sep sep ;
decl_item: decl { if ($1) ast_list_push(ps->arena, &ps->result->decls, $1); } ;
sep: NEWLINE | ';' ;

decl:
    IMPORT NAME {
      $$ = ast_decl_new(ps->arena, AST_DECL_IMPORT, LOC(@1));
      $$->name = $2;
    }
  | IMPORT STRING {
      $$ = ast_decl_new(ps->arena, AST_DECL_IMPORT, LOC(@1));
      $$->name = $2;
      $$->import_is_path = 1;
    }
  | const_stmt {
      $$ = ast_decl_new(ps->arena, AST_DECL_CONST, LOC(@1));
      $$->stmt = $1;
    }
  | LAYER NAME '(' params_opt ')' ret_opt block {
      $$ = ast_decl_new(ps->arena, AST_DECL_LAYER, LOC(@1));
      $$->name = $2;
      $$->params = $4;
      $$->rets = $6;
      $$->body = $7;
    }
  | MODEL NAME block {
      $$ = ast_decl_new(ps->arena, AST_DECL_MODEL, LOC(@1));
      $$->name = $2;
      $$->body = $3;
    }
  | error { $$ = NULL; }
  ;

params_opt: %empty { $$ = (AstList){0, NULL}; } | params ;
params:
    param { $$ = list1(ps->arena, $1); }
  | params ',' param { $$ = $1; ast_list_push(ps->arena, &$$, $3); }
  ;
param:
    NAME ':' type {
      $$ = ARENA_NEW(ps->arena, AstParam);
      $$->loc = LOC(@1);
      $$->name = $1;
      $$->type = $3;
    }
  | NAME ':' type '=' expr {
      $$ = ARENA_NEW(ps->arena, AstParam);
      $$->loc = LOC(@1);
      $$->name = $1;
      $$->type = $3;
      $$->deflt = $5;
    }
  ;
ret_opt:
    %empty { $$ = (AstList){0, NULL}; }
  | ARROW type { $$ = list1(ps->arena, $2); }
  | ARROW '(' types ')' { $$ = $3; }
  ;
types:
    type { $$ = list1(ps->arena, $1); }
  | types ',' type { $$ = $1; ast_list_push(ps->arena, &$$, $3); }
  ;

/* Type names are identifiers (`int`, `f32`, ...), mapped here, so that
 * `int(x)` and `float(x)` stay ordinary calls in expressions. */
type:
    NAME { $$ = type_from_name(ps, $1, LOC(@1)); }
  | NAME '[' exprs_opt ']' { $$ = tensor_type(ps, $1, $3, LOC(@1)); }
  ;

/* ---- statements ----------------------------------------------------------- */

/* The '{' may also go on the next line (the newline after a header that
 * ends in a name or ']' would otherwise end the statement). */
block:
    '{' stmt_seq '}' { $$ = $2; }
  | NEWLINE '{' stmt_seq '}' { $$ = $3; }
  ;

/* Same separator scheme as the file. The shape (rather than a leading
 * optional-separator nonterminal) lets the state right after '{' or after a
 * separator shift `error` directly, so an error in the first statement of a
 * block does not throw the whole block away. */
stmt_seq: %empty { $$ = (AstList){0, NULL}; } | stmts_ne | stmts_sep ;
stmts_ne:
    stmt { $$ = (AstList){0, NULL}; if ($1) ast_list_push(ps->arena, &$$, $1); }
  | stmts_sep stmt { $$ = $1; if ($2) ast_list_push(ps->arena, &$$, $2); }
    /* Recovery from junk after a complete statement (`x = 1 1`) or after a
     * newline (LAC reports those before reducing the separator): without
     * this the parser would pop the list built so far to find a state that
     * accepts `error`, losing the block's earlier statements. */
  | stmts_ne error { $$ = $1; }
  ;
stmts_sep:
    sep { $$ = (AstList){0, NULL}; }
  | stmts_ne sep { $$ = $1; }
  | stmts_sep sep { $$ = $1; }
  ;

stmt:
    const_stmt
  | LET bindings { $$ = $2; $$->kind = AST_STMT_LET; $$->loc = LOC(@1); }
  | INPUT NAME ':' type {
      $$ = ast_stmt_new(ps->arena, AST_STMT_INPUT, LOC(@1));
      push_name(ps->arena, &$$->names, $2);
      $$->type = $4;
    }
  | OUTPUT NAME ':' type {
      $$ = ast_stmt_new(ps->arena, AST_STMT_OUTPUT, LOC(@1));
      push_name(ps->arena, &$$->names, $2);
      $$->type = $4;
    }
  | PARAM pname ':' type {
      $$ = ast_stmt_new(ps->arena, AST_STMT_PARAM, LOC(@1));
      push_name(ps->arena, &$$->names, $2);
      $$->type = $4;
    }
  | PARAM pname ':' type '=' expr {
      $$ = ast_stmt_new(ps->arena, AST_STMT_PARAM, LOC(@1));
      push_name(ps->arena, &$$->names, $2);
      $$->type = $4;
      $$->init = $6;
      if ($6->kind != AST_EXPR_CALL)
        diag_error($6->loc, "a param's initializer must be an init call such as normal(0, 0.02)");
    }
  | MAX NAME '=' expr {
      $$ = ast_stmt_new(ps->arena, AST_STMT_MAXSEQ, LOC(@1));
      push_name(ps->arena, &$$->names, $2);
      $$->value = $4;
    }
  | names '=' expr { $$ = make_assign(ps, $1, (AstList){0, NULL}, $3, LOC(@1)); }
  | names '=' expr SKIP WHEN expr {
      $$ = make_assign(ps, $1, (AstList){0, NULL}, $3, LOC(@1));
      $$->skip_when = $6;
    }
  | names '=' expr SKIP WHEN expr ',' NAME ':' expr {
      $$ = make_assign(ps, $1, (AstList){0, NULL}, $3, LOC(@1));
      $$->skip_when = $6;
      make_skip_kv(ps, $$, $8, LOC(@8), $10);
    }
  | names '=' expr ROUTE NAME '(' expr ')' BY expr {
      $$ = make_route(ps, make_assign(ps, $1, (AstList){0, NULL}, $3, LOC(@1)), $5, LOC(@5), $7, $10, NULL, NULL,
                      LOC(@5));
    }
  | names '=' expr ROUTE NAME '(' expr ',' NAME ':' expr ')' BY expr {
      $$ = make_route(ps, make_assign(ps, $1, (AstList){0, NULL}, $3, LOC(@1)), $5, LOC(@5), $7, $14, $9, $11,
                      LOC(@9));
    }
  | NAME '[' ixvars ']' '=' expr { $$ = make_index_assign(ps, $1, $3, $6, LOC(@1)); }
  | EMIT '=' expr { $$ = make_assign(ps, names1(ps->arena, "emit"), (AstList){0, NULL}, $3, LOC(@1)); }
  | EMIT '[' ixvars ']' '=' expr { $$ = make_index_assign(ps, "emit", $3, $6, LOC(@1)); }
  | REPEAT NAME IN expr DOTDOT expr block {
      $$ = make_repeat(ps, $2, $4, $6, NULL, (SrcLoc){0, 0, 0}, $7, LOC(@1));
    }
  | REPEAT NAME IN expr DOTDOT expr '@' STRING block {
      $$ = make_repeat(ps, $2, $4, $6, $8, LOC(@8), $9, LOC(@1));
    }
  | if_stmt
  | RETURN exprs {
      $$ = ast_stmt_new(ps->arena, AST_STMT_RETURN, LOC(@1));
      if ($2.len == 1) {
        $$->value = $2.items[0];
      } else {
        $$->value = NEW_EXPR(AST_EXPR_TUPLE, @2);
        $$->value->args = $2;
      }
    }
  | error { $$ = NULL; }
  ;

/* `if c { } else if d { } else { }`: braces are required, so there is no
 * dangling else; `else if` nests an if statement as the whole else branch. */
if_stmt:
    IF expr block { $$ = make_if(ps, $2, $3, NULL, 0, LOC(@1)); }
  | IF expr block ELSE block { $$ = make_if(ps, $2, $3, NULL, 1, LOC(@1)); $$->else_body = $5; }
  | IF expr block ELSE if_stmt { $$ = make_if(ps, $2, $3, $5, 1, LOC(@1)); }
  ;

/* A param's name, possibly templated: `weight_ih_l{k}`, `w{i}_{j}_proj`.
 * The pieces must touch (no blanks), which the locations tell; the result
 * is the raw text with `{name}` kept for sema to substitute. */
pname:
    NAME
  | pname '{' NAME '}' {
      if (!tokens_touch(@1, @2) || !tokens_touch(@2, @3) || !tokens_touch(@3, @4))
        diag_error(LOC(@2), "a templated param name is written without blanks, as in weight_l{k}");
      $$ = arena_printf(ps->arena, "%s{%s}", $1, $3);
    }
  | pname NAME {
      if (!tokens_touch(@1, @2) || $1[strlen($1) - 1] != '}')
        diag_error(LOC(@2), "unexpected identifier after the param name '%s'", $1);
      $$ = arena_printf(ps->arena, "%s%s", $1, $2);
    }
  ;

const_stmt: CONST bindings { $$ = $2; $$->kind = AST_STMT_CONST; $$->loc = LOC(@1); } ;

/* `a = 1, b = 2`: the statement kind and location are set by the caller. */
bindings:
    NAME '=' expr {
      $$ = ast_stmt_new(ps->arena, AST_STMT_LET, LOC(@1));
      push_name(ps->arena, &$$->names, $1);
      ast_list_push(ps->arena, &$$->values, $3);
    }
  | bindings ',' NAME '=' expr {
      $$ = $1;
      push_name(ps->arena, &$$->names, $3);
      ast_list_push(ps->arena, &$$->values, $5);
    }
  ;

/* The output indices of index notation: `i` or `i in 0..n` (an explicit
 * range), kept as NAME nodes with lo/hi set for a range. */
ixvars:
    ixvar { $$ = list1(ps->arena, $1); }
  | ixvars ',' ixvar { $$ = $1; ast_list_push(ps->arena, &$$, $3); }
  ;
ixvar:
    NAME { $$ = NEW_EXPR(AST_EXPR_NAME, @1); $$->name = $1; }
  | NAME IN expr DOTDOT expr {
      $$ = NEW_EXPR(AST_EXPR_NAME, @1);
      $$->name = $1;
      $$->lo = $3;
      $$->hi = $5;
    }
  ;

names:
    NAME { $$ = names1(ps->arena, $1); }
  | names ',' NAME { $$ = $1; push_name(ps->arena, &$$, $3); }
  ;

/* ---- expressions ---------------------------------------------------------- */

exprs:
    expr { $$ = list1(ps->arena, $1); }
  | exprs ',' expr { $$ = $1; ast_list_push(ps->arena, &$$, $3); }
  ;
exprs_opt: %empty { $$ = (AstList){0, NULL}; } | exprs ;

expr:
    expr OR expr  { $$ = BIN(AST_OR, $1, $3, @1); }
  | expr AND expr { $$ = BIN(AST_AND, $1, $3, @1); }
  | expr EQ expr  { $$ = BIN(AST_EQ, $1, $3, @1); }
  | expr NE expr  { $$ = BIN(AST_NE, $1, $3, @1); }
  | expr '<' expr { $$ = BIN(AST_LT, $1, $3, @1); }
  | expr LE expr  { $$ = BIN(AST_LE, $1, $3, @1); }
  | expr '>' expr { $$ = BIN(AST_GT, $1, $3, @1); }
  | expr GE expr  { $$ = BIN(AST_GE, $1, $3, @1); }
  | expr '+' expr { $$ = BIN(AST_ADD, $1, $3, @1); }
  | expr '-' expr { $$ = BIN(AST_SUB, $1, $3, @1); }
  | expr '*' expr { $$ = BIN(AST_MUL, $1, $3, @1); }
  | expr '/' expr { $$ = BIN(AST_DIV, $1, $3, @1); }
  | expr '%' expr { $$ = BIN(AST_MOD, $1, $3, @1); }
  | expr POW expr { $$ = BIN(AST_POW, $1, $3, @1); }
  | '-' expr %prec UNARY { $$ = ast_expr_unary(ps->arena, AST_NEG, $2, LOC(@1)); }
  | NOT expr %prec UNARY { $$ = ast_expr_unary(ps->arena, AST_NOT, $2, LOC(@1)); }
  | postfix
  | reduction
  ;

/* An expression that does not start with unary minus: the body of a
 * reduction (see note 1 at the top). The right operands are full exprs. */
nexpr:
    nexpr OR expr  { $$ = BIN(AST_OR, $1, $3, @1); }
  | nexpr AND expr { $$ = BIN(AST_AND, $1, $3, @1); }
  | nexpr EQ expr  { $$ = BIN(AST_EQ, $1, $3, @1); }
  | nexpr NE expr  { $$ = BIN(AST_NE, $1, $3, @1); }
  | nexpr '<' expr { $$ = BIN(AST_LT, $1, $3, @1); }
  | nexpr LE expr  { $$ = BIN(AST_LE, $1, $3, @1); }
  | nexpr '>' expr { $$ = BIN(AST_GT, $1, $3, @1); }
  | nexpr GE expr  { $$ = BIN(AST_GE, $1, $3, @1); }
  | nexpr '+' expr { $$ = BIN(AST_ADD, $1, $3, @1); }
  | nexpr '-' expr { $$ = BIN(AST_SUB, $1, $3, @1); }
  | nexpr '*' expr { $$ = BIN(AST_MUL, $1, $3, @1); }
  | nexpr '/' expr { $$ = BIN(AST_DIV, $1, $3, @1); }
  | nexpr '%' expr { $$ = BIN(AST_MOD, $1, $3, @1); }
  | nexpr POW expr { $$ = BIN(AST_POW, $1, $3, @1); }
  | NOT expr %prec UNARY { $$ = ast_expr_unary(ps->arena, AST_NOT, $2, LOC(@1)); }
  | postfix
  | reduction
  ;

reduction:
    redkw '(' args_opt ')' nexpr %prec REDUCE_BODY { $$ = make_reduce(ps, $1, $3, $5, LOC(@1)); }
  ;
redkw: SUM | MAX | MIN | MEAN ;

postfix:
    primary
  | postfix AS '[' exprs_opt ']' {
      $$ = NEW_EXPR(AST_EXPR_AS, @1);
      $$->lhs = $1;
      $$->args = $4;
    }
  | call '@' STRING {
      $$ = $1;
      $$->scope = $3;
      $$->scope_loc = LOC(@3);
    }
  ;

primary:
    INT    { $$ = NEW_EXPR(AST_EXPR_INT, @1); $$->ival = $1; }
  | FLOAT  { $$ = NEW_EXPR(AST_EXPR_FLOAT, @1); $$->fval = $1; }
  | STRING { $$ = NEW_EXPR(AST_EXPR_STRING, @1); $$->sval = $1; }
  | TRUE   { $$ = NEW_EXPR(AST_EXPR_BOOL, @1); $$->ival = 1; }
  | FALSE  { $$ = NEW_EXPR(AST_EXPR_BOOL, @1); $$->ival = 0; }
  | NAME   { $$ = NEW_EXPR(AST_EXPR_NAME, @1); $$->name = $1; }
  | '(' expr ')' { $$ = $2; }
  | NAME '[' indices ']' {
      $$ = NEW_EXPR(AST_EXPR_INDEX, @1);
      $$->name = $1;
      $$->args = $3;
    }
  | call %prec CALL_NO_SCOPE
  | scan
  | mixture
  ;

call:
    NAME '(' args_opt ')' { $$ = make_call(ps, $1, $3, LOC(@1)); }
  | redkw '(' args_opt ')' { $$ = make_call(ps, $1, $3, LOC(@1)); }
  ;
args_opt: %empty { $$ = (AstList){0, NULL}; } | args ;
args:
    arg { $$ = list1(ps->arena, $1); }
  | args ',' arg { $$ = $1; ast_list_push(ps->arena, &$$, $3); }
  ;
arg:
    expr {
      $$ = ARENA_NEW(ps->arena, AstArg);
      $$->loc = LOC(@1);
      $$->value = $1;
    }
  | NAME ':' expr {
      $$ = ARENA_NEW(ps->arena, AstArg);
      $$->loc = LOC(@1);
      $$->name = $1;
      $$->value = $3;
    }
  ;

indices:
    index { $$ = list1(ps->arena, $1); }
  | indices ',' index { $$ = $1; ast_list_push(ps->arena, &$$, $3); }
  ;
index:
    expr
  | expr ':' expr { $$ = NEW_EXPR(AST_EXPR_SLICE, @1); $$->lo = $1; $$->hi = $3; }
  | expr ':'      { $$ = NEW_EXPR(AST_EXPR_SLICE, @1); $$->lo = $1; }
  | ':' expr      { $$ = NEW_EXPR(AST_EXPR_SLICE, @1); $$->hi = $2; }
  | ':'           { $$ = NEW_EXPR(AST_EXPR_SLICE, @1); }
  ;

scan:
    SCAN NAME WITH states block {
      $$ = NEW_EXPR(AST_EXPR_SCAN, @1);
      $$->name = $2;
      $$->states = $4;
      $$->body = $5;
    }
  ;
states:
    state { $$ = list1(ps->arena, $1); }
  | states ',' state { $$ = $1; ast_list_push(ps->arena, &$$, $3); }
  ;
state:
    NAME ':' type '=' expr {
      $$ = ARENA_NEW(ps->arena, AstScanState);
      $$->loc = LOC(@1);
      $$->name = $1;
      $$->type = $3;
      $$->init = $5;
    }
  ;

mixture:
    MIXTURE NAME IN expr DOTDOT expr BY expr WEIGHTED expr block {
      $$ = make_mixture(ps, $2, $4, $6, $8, $10, $11, LOC(@1));
    }
  ;

%%

/* ---- error messages ------------------------------------------------------- */

/* Readable names for tokens in messages: what the user typed, quoted, or a
 * word for token classes. */
static const char *token_text(yysymbol_kind_t k) {
  switch (k) {
  case YYSYMBOL_YYEOF: return "end of file";
  case YYSYMBOL_NEWLINE: return "newline";
  case YYSYMBOL_NAME: return "identifier";
  case YYSYMBOL_STRING: return "string";
  case YYSYMBOL_INT: return "integer";
  case YYSYMBOL_FLOAT: return "number";
  case YYSYMBOL_IMPORT: return "'import'";
  case YYSYMBOL_MODEL: return "'model'";
  case YYSYMBOL_LAYER: return "'layer'";
  case YYSYMBOL_CONST: return "'const'";
  case YYSYMBOL_LET: return "'let'";
  case YYSYMBOL_INPUT: return "'input'";
  case YYSYMBOL_OUTPUT: return "'output'";
  case YYSYMBOL_PARAM: return "'param'";
  case YYSYMBOL_RETURN: return "'return'";
  case YYSYMBOL_REPEAT: return "'repeat'";
  case YYSYMBOL_IN: return "'in'";
  case YYSYMBOL_SCAN: return "'scan'";
  case YYSYMBOL_WITH: return "'with'";
  case YYSYMBOL_EMIT: return "'emit'";
  case YYSYMBOL_MIXTURE: return "'mixture'";
  case YYSYMBOL_BY: return "'by'";
  case YYSYMBOL_WEIGHTED: return "'weighted'";
  case YYSYMBOL_SKIP: return "'skip'";
  case YYSYMBOL_WHEN: return "'when'";
  case YYSYMBOL_ROUTE: return "'route'";
  case YYSYMBOL_AS: return "'as'";
  case YYSYMBOL_AND: return "'and'";
  case YYSYMBOL_OR: return "'or'";
  case YYSYMBOL_NOT: return "'not'";
  case YYSYMBOL_IF: return "'if'";
  case YYSYMBOL_ELSE: return "'else'";
  case YYSYMBOL_TRUE: return "'true'";
  case YYSYMBOL_FALSE: return "'false'";
  case YYSYMBOL_SUM: return "'sum'";
  case YYSYMBOL_MAX: return "'max'";
  case YYSYMBOL_MIN: return "'min'";
  case YYSYMBOL_MEAN: return "'mean'";
  case YYSYMBOL_DOTDOT: return "'..'";
  case YYSYMBOL_ARROW: return "'->'";
  case YYSYMBOL_POW: return "'**'";
  case YYSYMBOL_LE: return "'<='";
  case YYSYMBOL_GE: return "'>='";
  case YYSYMBOL_EQ: return "'=='";
  case YYSYMBOL_NE: return "'!='";
  default: return yysymbol_name(k); /* single characters: "'('" */
  }
}

/* Token classes that collapse into one word in "expected ..." lists, since
 * listing 15 ways to start an expression helps nobody. A class is present
 * when its marker token is expected: INT only where an expression may start,
 * LET only where a statement may, LAYER only where a declaration may, '**'
 * only right after an operand. */
static int token_starts_expr(yysymbol_kind_t k) {
  switch (k) {
  case YYSYMBOL_NAME: case YYSYMBOL_INT: case YYSYMBOL_FLOAT: case YYSYMBOL_STRING:
  case YYSYMBOL_TRUE: case YYSYMBOL_FALSE: case YYSYMBOL_NOT: case YYSYMBOL_SUM:
  case YYSYMBOL_MAX: case YYSYMBOL_MIN: case YYSYMBOL_MEAN: case YYSYMBOL_SCAN:
  case YYSYMBOL_MIXTURE:
    return 1;
  default:
    return !strcmp(yysymbol_name(k), "'('") || !strcmp(yysymbol_name(k), "'-'");
  }
}
static int token_starts_stmt(yysymbol_kind_t k) {
  switch (k) {
  case YYSYMBOL_NAME: case YYSYMBOL_CONST: case YYSYMBOL_LET: case YYSYMBOL_INPUT:
  case YYSYMBOL_OUTPUT: case YYSYMBOL_PARAM: case YYSYMBOL_MAX: case YYSYMBOL_EMIT:
  case YYSYMBOL_REPEAT: case YYSYMBOL_RETURN: case YYSYMBOL_IF:
    return 1;
  default:
    return 0;
  }
}
static int token_starts_decl(yysymbol_kind_t k) {
  return k == YYSYMBOL_IMPORT || k == YYSYMBOL_CONST || k == YYSYMBOL_LAYER || k == YYSYMBOL_MODEL;
}
static int token_is_binop(yysymbol_kind_t k) {
  switch (k) {
  case YYSYMBOL_OR: case YYSYMBOL_AND: case YYSYMBOL_EQ: case YYSYMBOL_NE: case YYSYMBOL_LE:
  case YYSYMBOL_GE: case YYSYMBOL_POW:
    return 1;
  default: {
    const char *n = yysymbol_name(k);
    return n[0] == '\'' && n[1] && strchr("+-*/%<>", n[1]) && n[2] == '\'';
  }
  }
}

static int token_is_postfix(yysymbol_kind_t k) {
  const char *n = yysymbol_name(k);
  return k == YYSYMBOL_AS || !strcmp(n, "'('") || !strcmp(n, "'['") || !strcmp(n, "'@'");
}

static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, ParseState *ps) {
  (void)scanner;
  if (ps->too_deep) return 0; /* the one error is the nesting limit's */
  enum { MAX_EXPECTED = 128, MAX_LISTED = 5 };
  yysymbol_kind_t expected[MAX_EXPECTED];
  int n = yypcontext_expected_tokens(ctx, expected, MAX_EXPECTED);
  if (n < 0) n = 0;
  int has_int = 0, has_let = 0, has_layer = 0, has_star = 0, has_newline = 0;
  for (int i = 0; i < n; i++) {
    has_newline |= expected[i] == YYSYMBOL_NEWLINE;
    has_int |= expected[i] == YYSYMBOL_INT;
    has_let |= expected[i] == YYSYMBOL_LET;
    has_layer |= expected[i] == YYSYMBOL_LAYER;
    has_star |= expected[i] == YYSYMBOL_POW;
  }
  const char *words[MAX_EXPECTED + 4];
  int nw = 0;
  if (has_layer) words[nw++] = "declaration";
  if (has_let) words[nw++] = "statement";
  if (has_int) words[nw++] = "expression";
  if (has_star) words[nw++] = "operator";
  for (int i = 0; i < n; i++) {
    yysymbol_kind_t k = expected[i];
    if (has_layer && token_starts_decl(k)) continue;
    if (has_let && token_starts_stmt(k)) continue;
    if (has_int && token_starts_expr(k)) continue;
    /* Right after an operand, the postfix continuations are noise next to
     * "operator"; ';' is implied by newline. */
    if (has_star && (token_is_binop(k) || token_is_postfix(k))) continue;
    if (has_newline && !strcmp(yysymbol_name(k), "';'")) continue;
    words[nw++] = token_text(k);
  }
  StrBuf sb = {0};
  yysymbol_kind_t got = yypcontext_token(ctx);
  /* '@' after an operand that is not a call: say what scopes attach to. */
  if (has_star && !strcmp(yysymbol_name(got), "'@'")) {
    sb_append(&sb, "a scope '@ \"...\"' can only follow a call, such as linear(x, 64) @ \"q_proj\"");
    nw = 0;
  } else {
    sb_printf(&sb, "unexpected %s", token_text(got));
  }
  if (nw > 0 && nw <= MAX_LISTED) {
    sb_append(&sb, ", expected ");
    for (int i = 0; i < nw; i++) {
      if (i) sb_append(&sb, i == nw - 1 ? " or " : ", ");
      sb_append(&sb, words[i]);
    }
  }
  const GAT_YYLTYPE *l = yypcontext_location(ctx);
  diag_error(LOC(*l), "%s", sb_cstr(&sb));
  sb_free(&sb);
  return 0;
}

static void gat_yyerror(GAT_YYLTYPE *loc, yyscan_t scanner, ParseState *ps, const char *msg) {
  (void)scanner;
  if (ps->too_deep) return;
  if (!strcmp(msg, "memory exhausted")) /* Bison's stack: long prefix chains such as `- - - x` */
    msg = "nested too deeply (the parser's stack is full)";
  diag_error(LOC(*loc), "%s", msg);
}
