/* ir_print.c — the graph IR's deterministic text form (the format is fixed
 * in docs/internals.md, "Graph IR"). Dumps are test oracles and the input of
 * ir_parse, so printing must be a pure function of the module's structure:
 * values are renumbered densely in program order (an op's results, then its
 * regions' arguments and ops), never printed by their stored ids, so that
 * print(parse(print(m))) == print(m) byte for byte.
 *
 * The same machinery prints single op lines (ir_op_to_string) for verifier
 * messages and index expressions (ir_expr_to_string). */
#include <stdlib.h>
#include <string.h>

#include "ir.h"

typedef struct Printer {
  StrBuf *sb;
  int *num; /* value id -> printed number, -1 while unnumbered */
  int nnum;
  int next;
} Printer;

/* ---- value numbering ------------------------------------------------------ */

static void number_value(Printer *p, const IrValue *v) {
  if (!v || v->id < 0 || v->id >= p->nnum) return;
  p->num[v->id] = p->next++;
}

static void number_block(Printer *p, const IrBlock *b);
static void number_op(Printer *p, const IrOp *op) {
  for (int i = 0; i < op->nout; i++) number_value(p, op->out[i]);
  for (int r = 0; r < op->nregions; r++) number_block(p, op->regions[r]);
}
static void number_block(Printer *p, const IrBlock *b) {
  if (!b) return;
  for (int i = 0; i < b->nargs; i++) number_value(p, b->args[i]);
  for (int i = 0; i < b->ops.len; i++) number_op(p, b->ops.data[i]);
}

static void printer_init(Printer *p, StrBuf *sb, const IrModule *m) {
  p->sb = sb;
  p->nnum = m->next_value_id > 0 ? m->next_value_id : 1;
  p->num = xmalloc(sizeof(int) * (size_t)p->nnum);
  for (int i = 0; i < p->nnum; i++) p->num[i] = -1;
  p->next = 0;
  number_block(p, m->body);
}

/* Values the walk did not reach (a malformed module: an operand defined
 * nowhere) get the next numbers on first use, so verifier messages still
 * show something stable. */
static void print_value(Printer *p, const IrValue *v) {
  if (!v) {
    sb_append(p->sb, "%<null>");
    return;
  }
  if (v->id < 0 || v->id >= p->nnum) {
    sb_printf(p->sb, "%%<bad id %d>", v->id);
    return;
  }
  if (p->num[v->id] < 0) p->num[v->id] = p->next++;
  sb_printf(p->sb, "%%%d", p->num[v->id]);
}

/* ---- small pieces --------------------------------------------------------- */

static void print_double(StrBuf *sb, double v) {
  char buf[64];
  format_double(buf, sizeof buf, v);
  sb_append(sb, buf);
}

static void print_type(StrBuf *sb, IrDType dt, IrShape s) {
  char buf[256];
  ir_type_str(buf, sizeof buf, dt, s);
  sb_append(sb, buf);
}

static void print_string(StrBuf *sb, const char *s) {
  sb_append(sb, "\"");
  for (const char *c = s ? s : ""; *c; c++) {
    if (*c == '"' || *c == '\\')
      sb_printf(sb, "\\%c", *c);
    else if (*c == '\n')
      sb_append(sb, "\\n");
    else if (*c == '\t')
      sb_append(sb, "\\t");
    else
      sb_appendn(sb, c, 1);
  }
  sb_append(sb, "\"");
}

/* A module name prints bare when it is a plain word, quoted otherwise. */
static void print_word_or_string(StrBuf *sb, const char *s) {
  int plain = s && *s && !(*s >= '0' && *s <= '9');
  for (const char *c = s ? s : ""; *c && plain; c++)
    plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            *c == '_' || *c == '.' || *c == '-';
  if (plain)
    sb_append(sb, s);
  else
    print_string(sb, s);
}

static void print_affine(StrBuf *sb, const IrAffine *a) {
  size_t start = sb->len;
  /* Terms join with '+' unless the next one carries its own '-'. */
#define JOIN(neg)                                                   \
  do {                                                              \
    if (sb->len > start && !(neg)) sb_append(sb, "+");              \
  } while (0)
  for (int i = 0; i < a->nterms; i++) {
    JOIN(a->coef[i] < 0);
    if (a->coef[i] == 1)
      sb_printf(sb, "v%d", a->var[i]);
    else
      sb_printf(sb, "%lld*v%d", (long long)a->coef[i], a->var[i]);
  }
  if (a->dyn >= 0) {
    JOIN(a->dyn_coef < 0);
    if (a->dyn_coef == 1)
      sb_printf(sb, "$%d", a->dyn);
    else
      sb_printf(sb, "%lld*$%d", (long long)a->dyn_coef, a->dyn);
  }
  if (a->c != 0 || sb->len == start) {
    JOIN(a->c < 0);
    sb_printf(sb, "%lld", (long long)a->c);
  }
#undef JOIN
}

static const char *reduce_name(IrReduceKind k) {
  switch (k) {
    case IR_RED_SUM: return "sum";
    case IR_RED_MAX: return "max";
    case IR_RED_MIN: return "min";
    case IR_RED_MEAN: return "mean";
  }
  return "?";
}

static void print_expr(StrBuf *sb, const IrExpr *e) {
  if (!e) {
    sb_append(sb, "<null>");
    return;
  }
  switch (e->kind) {
    case IR_EX_CONST: print_double(sb, e->fval); return;
    case IR_EX_VAR: sb_printf(sb, "(var v%d)", e->var); return;
    case IR_EX_LOAD:
      sb_printf(sb, "(load %d", e->operand);
      for (int i = 0; i < e->nidx; i++) {
        sb_append(sb, " ");
        print_affine(sb, &e->idx[i]);
      }
      sb_append(sb, ")");
      return;
    case IR_EX_UNARY:
      sb_printf(sb, "(%s ", e->fn >= 0 && e->fn < IR_FN_COUNT_ ? ir_fn_name(e->fn) : "?");
      print_expr(sb, e->a);
      sb_append(sb, ")");
      return;
    case IR_EX_BINARY:
      sb_printf(sb, "(%s ", e->fn >= 0 && e->fn < IR_FN_COUNT_ ? ir_fn_name(e->fn) : "?");
      print_expr(sb, e->a);
      sb_append(sb, " ");
      print_expr(sb, e->b);
      sb_append(sb, ")");
      return;
    case IR_EX_SELECT:
      sb_append(sb, "(select ");
      print_expr(sb, e->a);
      sb_append(sb, " ");
      print_expr(sb, e->b);
      sb_append(sb, " ");
      print_expr(sb, e->c);
      sb_append(sb, ")");
      return;
    case IR_EX_REDUCE:
      sb_printf(sb, "(%s v%d:", reduce_name(e->reduce), e->var);
      if (e->extent == IR_DIM_T)
        sb_append(sb, "T");
      else
        sb_printf(sb, "%lld", (long long)e->extent);
      sb_append(sb, " ");
      print_expr(sb, e->a);
      sb_append(sb, ")");
      return;
  }
  sb_append(sb, "<bad expr>");
}

static void print_attr_value(StrBuf *sb, const IrAttr *a) {
  switch (a->kind) {
    case IR_ATTR_INT: sb_printf(sb, "%lld", (long long)a->i); return;
    case IR_ATTR_FLOAT: print_double(sb, a->f); return;
    case IR_ATTR_STR: print_string(sb, a->s); return;
    case IR_ATTR_INTS:
      sb_append(sb, "[");
      for (int i = 0; i < a->n; i++) sb_printf(sb, "%s%lld", i ? ", " : "", (long long)a->ints[i]);
      sb_append(sb, "]");
      return;
  }
}

/* The op line up to (not including) its regions. */
static void print_op_line(Printer *p, const IrOp *op) {
  StrBuf *sb = p->sb;
  for (int i = 0; i < op->nout; i++) {
    if (i) sb_append(sb, ", ");
    print_value(p, op->out[i]);
  }
  if (op->nout) sb_append(sb, " = ");
  sb_append(sb, op->kind >= 0 && op->kind < IR_OP_COUNT_ ? ir_op_name(op->kind) : "<bad op>");
  for (int i = 0; i < op->nin; i++) {
    sb_append(sb, i ? ", " : " ");
    print_value(p, op->in[i]);
  }
  /* An index op's expression prints as its first attribute, `expr`. */
  int first = 1;
  if (op->kind == IR_OP_INDEX && op->expr) {
    StrBuf e = {0};
    print_expr(&e, op->expr);
    sb_append(sb, " {expr = ");
    print_string(sb, sb_cstr(&e));
    sb_free(&e);
    first = 0;
  }
  for (int i = 0; i < op->nattr; i++) {
    const IrAttr *a = &op->attrs[i];
    if (op->kind == IR_OP_INDEX && op->expr && strcmp(a->key, "expr") == 0) continue;
    sb_append(sb, first ? " {" : ", ");
    first = 0;
    sb_printf(sb, "%s = ", a->key);
    print_attr_value(sb, a);
  }
  if (!first) sb_append(sb, "}");
  for (int i = 0; i < op->nout; i++) {
    sb_append(sb, i ? ", " : " : ");
    if (op->out[i])
      print_type(sb, op->out[i]->dtype, op->out[i]->shape);
    else
      sb_append(sb, "<null>");
  }
  if (op->loc.file > 0 && op->loc.line > 0) {
    sb_append(sb, " loc(");
    print_string(sb, diag_file_name(op->loc.file));
    sb_printf(sb, ":%d:%d)", op->loc.line, op->loc.col);
  }
  if (op->origin) {
    sb_append(sb, " origin ");
    print_string(sb, op->origin);
  }
}

static void indent(StrBuf *sb, int depth) {
  for (int i = 0; i < depth; i++) sb_append(sb, "  ");
}

static void print_ops(Printer *p, const IrBlock *b, int depth);

static void print_op(Printer *p, const IrOp *op, int depth) {
  indent(p->sb, depth);
  print_op_line(p, op);
  if (op->nregions > 0) {
    sb_append(p->sb, " {\n");
    for (int r = 0; r < op->nregions; r++) {
      const IrBlock *b = op->regions[r];
      indent(p->sb, depth + 1);
      sb_append(p->sb, "(");
      for (int i = 0; b && i < b->nargs; i++) {
        if (i) sb_append(p->sb, ", ");
        print_value(p, b->args[i]);
        sb_append(p->sb, " : ");
        print_type(p->sb, b->args[i]->dtype, b->args[i]->shape);
      }
      sb_append(p->sb, ") {\n");
      if (b) print_ops(p, b, depth + 2);
      indent(p->sb, depth + 2);
      sb_append(p->sb, "yield");
      for (int i = 0; b && i < b->nyield; i++) {
        sb_append(p->sb, i ? ", " : " ");
        print_value(p, b->yields[i]);
      }
      sb_append(p->sb, "\n");
      indent(p->sb, depth + 1);
      sb_append(p->sb, "}\n");
    }
    indent(p->sb, depth);
    sb_append(p->sb, "}");
  }
  sb_append(p->sb, "\n");
}

static void print_ops(Printer *p, const IrBlock *b, int depth) {
  for (int i = 0; i < b->ops.len; i++) print_op(p, b->ops.data[i], depth);
}

static void print_init(StrBuf *sb, IrInit in) {
  switch (in.kind) {
    case IR_INIT_NORMAL: sb_append(sb, "normal("); break;
    case IR_INIT_UNIFORM: sb_append(sb, "uniform("); break;
    case IR_INIT_LOG_UNIFORM: sb_append(sb, "log_uniform("); break;
    case IR_INIT_DT_BIAS: sb_append(sb, "dt_bias("); break;
    case IR_INIT_CONST:
      sb_append(sb, "constant(");
      print_double(sb, in.a);
      sb_append(sb, ")");
      return;
    case IR_INIT_LINEAR: sb_append(sb, "linear"); return;
    case IR_INIT_EYE: sb_append(sb, "eye"); return;
    case IR_INIT_ONE_HOT_LAST: sb_append(sb, "one_hot_last"); return;
  }
  print_double(sb, in.a);
  sb_append(sb, ", ");
  print_double(sb, in.b);
  sb_append(sb, ")");
}

static void print_module(StrBuf *sb, const IrModule *m) {
  Printer p;
  printer_init(&p, sb, m);
  sb_append(sb, "module ");
  print_word_or_string(sb, m->name);
  sb_printf(sb, " max_T %lld\n", (long long)m->max_T);
  for (int i = 0; i < m->params.len; i++) {
    const IrParam *pr = m->params.data[i];
    sb_append(sb, "param ");
    print_string(sb, pr->name);
    sb_append(sb, " : ");
    print_type(sb, pr->dtype, pr->shape);
    sb_append(sb, " init ");
    print_init(sb, pr->init);
    sb_append(sb, "\n");
  }
  for (int k = 0; k < 2; k++) {
    const PtrVec *v = k ? &m->outputs : &m->inputs;
    for (int i = 0; i < v->len; i++) {
      const IrIO *io = v->data[i];
      sb_append(sb, k ? "output " : "input ");
      print_string(sb, io->name);
      sb_append(sb, " : ");
      print_type(sb, io->dtype, io->shape);
      sb_append(sb, "\n");
    }
  }
  for (int i = 0; i < m->states.len; i++) {
    const IrState *s = m->states.data[i];
    sb_append(sb, "state ");
    print_string(sb, s->name);
    sb_append(sb, " : ");
    print_type(sb, s->dtype, s->shape);
    sb_append(sb, " = ");
    print_double(sb, s->init);
    sb_append(sb, "\n");
  }
  sb_append(sb, "body {\n");
  if (m->body) print_ops(&p, m->body, 1);
  sb_append(sb, "}\n");
  free(p.num);
}

char *ir_print_to_string(const IrModule *m) {
  StrBuf sb = {0};
  print_module(&sb, m);
  char *s = xstrdup(sb_cstr(&sb));
  sb_free(&sb);
  return s;
}

void ir_print(FILE *out, const IrModule *m) {
  char *s = ir_print_to_string(m);
  fputs(s, out);
  free(s);
}

char *ir_op_to_string(const IrModule *m, const IrOp *op) {
  StrBuf sb = {0};
  Printer p;
  printer_init(&p, &sb, m);
  print_op_line(&p, op);
  if (op->nregions > 0) sb_append(&sb, " { ... }");
  free(p.num);
  char *s = xstrdup(sb_cstr(&sb));
  sb_free(&sb);
  return s;
}

char *ir_expr_to_string(const IrExpr *e) {
  StrBuf sb = {0};
  print_expr(&sb, e);
  char *s = xstrdup(sb_cstr(&sb));
  sb_free(&sb);
  return s;
}
