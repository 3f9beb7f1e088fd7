/* ast.h — the syntax tree the parser builds (grammar/parser.y) and sema
 * reads. Nodes live in one Arena per compilation and are never freed one by
 * one. Every node carries the SrcLoc of its first token.
 *
 * The tree is deliberately close to the text: sema does name resolution,
 * constant folding and shape inference, the parser does none of it. */
#ifndef GATTNC_AST_H
#define GATTNC_AST_H

#include <stdint.h>

#include "diag.h"
#include "util.h"

typedef struct AstExpr AstExpr;
typedef struct AstStmt AstStmt;
typedef struct AstType AstType;
typedef struct AstDecl AstDecl;

/* A list of node pointers (arena-allocated array). */
typedef struct AstList {
  int len;
  void **items;
} AstList;
void ast_list_push(Arena *a, AstList *l, void *item); /* amortized growth in the arena */

typedef enum AstBinOp {
  AST_ADD, AST_SUB, AST_MUL, AST_DIV, AST_MOD, AST_POW, /* a ** b */
  AST_LT, AST_LE, AST_GT, AST_GE, AST_EQ, AST_NE,
  AST_AND, AST_OR
} AstBinOp;

typedef enum AstUnOp { AST_NEG, AST_NOT } AstUnOp;

typedef enum AstReduceKind { AST_RED_SUM, AST_RED_MAX, AST_RED_MIN, AST_RED_MEAN } AstReduceKind;

typedef enum AstExprKind {
  AST_EXPR_INT,     /* ival */
  AST_EXPR_FLOAT,   /* fval */
  AST_EXPR_STRING,  /* sval (escapes resolved) */
  AST_EXPR_BOOL,    /* ival 0/1: `true`, `false` */
  AST_EXPR_NAME,    /* name; also the dimension symbol T */
  AST_EXPR_BINARY,  /* binop, lhs, rhs */
  AST_EXPR_UNARY,   /* unop, lhs */
  AST_EXPR_CALL,    /* name(args) [@ scope]; args are AstArg */
  AST_EXPR_INDEX,   /* name[indices]: element access in index notation, or slicing
                       when some index is an AST_EXPR_SLICE */
  AST_EXPR_SLICE,   /* lo:hi inside [...]; lo/hi may be NULL (":" alone = whole dim) */
  AST_EXPR_AS,      /* lhs as [dims]: reshape; dims are AstExpr (may contain T) */
  AST_EXPR_REDUCE,  /* sum(i, j) body: reduce over index variables (vars = list of char*) */
  AST_EXPR_SCAN,    /* scan var with states { body } */
  AST_EXPR_MIXTURE, /* mixture var in lo..hi by idx weighted weights { body; return expr } */
  AST_EXPR_TUPLE    /* (a, b): only as a layer's multi-value return */
} AstExprKind;

typedef struct AstArg {
  SrcLoc loc;
  const char *name; /* keyword name, or NULL for positional */
  AstExpr *value;
} AstArg;

/* `S: f32[H, K, V] = 0` in a scan header. */
typedef struct AstScanState {
  SrcLoc loc;
  const char *name;
  AstType *type;
  AstExpr *init; /* compile-time scalar the state starts from after reset */
} AstScanState;

struct AstExpr {
  AstExprKind kind;
  SrcLoc loc;
  int64_t ival;
  double fval;
  const char *sval;
  const char *name; /* NAME, CALL callee, INDEX base, REDUCE/SCAN/MIXTURE variable */
  AstBinOp binop;
  AstUnOp unop;
  AstReduceKind reduce;
  AstExpr *lhs, *rhs;
  AstList args;      /* CALL: AstArg*; INDEX: AstExpr* (indices); AS: AstExpr* (dims);
                        TUPLE: AstExpr* */
  AstList vars;      /* REDUCE: const char* index variables */
  const char *scope; /* CALL: the `@ "scope"` string, raw (with {i} unsubstituted), or NULL */
  SrcLoc scope_loc;
  /* SCAN */
  AstList states; /* AstScanState* */
  AstList body;   /* SCAN, MIXTURE: AstStmt* */
  /* MIXTURE: mixture var in lo..hi by idx weighted weights { body; return result } */
  AstExpr *lo, *hi, *idx, *weights, *result;
};

typedef enum AstStmtKind {
  AST_STMT_CONST,  /* const a = 1, b = 2  (names/values: parallel lists) */
  AST_STMT_LET,    /* let a = expr, b = expr */
  AST_STMT_ASSIGN, /* targets = value [skip when cond]; or name[i, j] = value (index notation) */
  AST_STMT_INPUT,  /* input name : type */
  AST_STMT_OUTPUT, /* output name : type */
  AST_STMT_PARAM,  /* param name : type [init call] */
  AST_STMT_REPEAT, /* repeat var in lo..hi [@ scope] { body } */
  AST_STMT_RETURN, /* return value */
  AST_STMT_MAXSEQ, /* max T = value: the compiled upper bound of the sequence dim */
  AST_STMT_IF      /* if cond { body } [else { else_body }]: compile-time choice;
                      `else if` is an else_body holding one AST_STMT_IF */
} AstStmtKind;

struct AstStmt {
  AstStmtKind kind;
  SrcLoc loc;
  /* CONST/LET: names (const char*) and values (AstExpr*) in parallel */
  AstList names;
  AstList values;
  /* ASSIGN: targets (const char*, len >= 1; several for `a, b = topk(...)`),
     indices (const char* index variables of `name[i, j] = ...`, empty if none;
     the target is then names.items[0]) */
  AstList indices;
  AstExpr *value;
  AstExpr *skip_when; /* ASSIGN: `skip when cond`, or NULL */
  const char *skip_kv; /* ASSIGN: `skip when cond, kv: previous` ("previous"), or NULL */
  SrcLoc skip_kv_loc;  /* where `kv` is written */
  /* ASSIGN: `route top(route_top [, threshold: route_threshold]) by route_by`
     (Mixture-of-Depths: only the top tokens by score compute the value);
     route_top NULL when absent, route_threshold NULL when not written */
  AstExpr *route_top, *route_by, *route_threshold;
  /* INPUT/OUTPUT/PARAM: name = names.items[0] */
  AstType *type;
  AstExpr *init; /* PARAM: an init call such as normal(0, 0.02), or NULL for the default */
  /* REPEAT */
  const char *var;
  AstExpr *lo, *hi;
  const char *scope;
  SrcLoc scope_loc;
  AstList body; /* AstStmt* (REPEAT, IF) */
  /* IF: the condition (must fold to a compile-time bool) and the else branch
     (empty without `else`); the then branch is `body`. */
  AstExpr *cond;
  AstList else_body; /* AstStmt* */
  int has_else;      /* IF: an `else` was written (else_body may still be empty) */
  /* ASSIGN with indices: explicit ranges `y[l in 0..L, j] = ...`, parallel to
     indices; items are AstExpr* upper bounds or NULL (lower bound in
     index_lo, also parallel, NULL when no range was written). Empty lists
     when no index has a range. */
  AstList index_lo, index_hi;
};

typedef enum AstTypeKind {
  AST_TYPE_INT,    /* compile-time integer */
  AST_TYPE_FLOAT,  /* compile-time float (written `float` or bare `f32`) */
  AST_TYPE_BOOL,   /* compile-time bool */
  AST_TYPE_STR,    /* compile-time string */
  AST_TYPE_TENSOR  /* dtype[dims] */
} AstTypeKind;

struct AstType {
  AstTypeKind kind;
  SrcLoc loc;
  const char *dtype; /* TENSOR: "f32" or "i32" */
  AstList dims;      /* TENSOR: AstExpr* (names such as T or D, ints, arithmetic) */
};

typedef struct AstParam { /* a layer's formal parameter */
  SrcLoc loc;
  const char *name;
  AstType *type;
  AstExpr *deflt; /* or NULL */
} AstParam;

typedef enum AstDeclKind {
  AST_DECL_IMPORT, /* import std | import "file.gat": name */
  AST_DECL_LAYER,  /* layer name(params) -> ret { body } */
  AST_DECL_MODEL,  /* model name { body } */
  AST_DECL_CONST   /* file-level const (stmt) */
} AstDeclKind;

struct AstDecl {
  AstDeclKind kind;
  SrcLoc loc;
  const char *name;  /* IMPORT: module name or path; LAYER/MODEL: name */
  int import_is_path; /* IMPORT: 1 for a quoted path */
  AstList params;    /* LAYER: AstParam* */
  AstList rets;      /* LAYER: AstType* (usually one) */
  AstList body;      /* LAYER/MODEL: AstStmt* */
  AstStmt *stmt;     /* CONST */
};

typedef struct AstFile {
  const char *path;
  int file_id; /* diag file id */
  AstList decls; /* AstDecl* */
} AstFile;

/* Parses `text` (registered with diag under `display_name`). Syntax errors are
 * reported through diag; returns the (possibly partial) tree, or NULL if
 * nothing could be built. */
AstFile *parse_source(Arena *a, const char *display_name, const char *text);

/* A readable, deterministic dump of the tree (S-expressions), for tests.
 * The format is documented at the top of compiler/ast.c. */
void ast_dump(FILE *out, const AstFile *f);
void ast_dump_expr(FILE *out, const AstExpr *e);
void ast_dump_stmt(FILE *out, const AstStmt *s);

/* Node constructors (compiler/front/ast.c): zeroed, arena-allocated nodes with the
 * kind and location set. The parser builds every node through these; later
 * stages may use them to synthesize nodes. */
AstExpr *ast_expr_new(Arena *a, AstExprKind kind, SrcLoc loc);
AstExpr *ast_expr_binary(Arena *a, AstBinOp op, AstExpr *lhs, AstExpr *rhs, SrcLoc loc);
AstExpr *ast_expr_unary(Arena *a, AstUnOp op, AstExpr *operand, SrcLoc loc);
AstStmt *ast_stmt_new(Arena *a, AstStmtKind kind, SrcLoc loc);
AstType *ast_type_new(Arena *a, AstTypeKind kind, SrcLoc loc);
AstDecl *ast_decl_new(Arena *a, AstDeclKind kind, SrcLoc loc);

#endif
