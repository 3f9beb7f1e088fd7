/* emit_knobs.c — the run-time thresholds and capacities of skips and routes
 * (see emit_knobs.h): which kernels have them, the model-struct fields, the
 * defaults set by init and the NAME_skip_* / NAME_set_* API. The skip kernels
 * themselves (emit_c.c emit_skip) read the values from the model, so a caller
 * trades quality for speed without recompiling. */
#include "emit_knobs.h"

#include <stdio.h>
#include <string.h>

#include "emit_c.h"

/* Kinds, as the generated table stores them. */
enum { KNOB_NONE = 0, KNOB_CUT = 1, KNOB_CAPACITY = 2, KNOB_TOPK = 3 };

static int knob_kind(const LoopKernel *k) {
  if (k->reals[0] > 0) return KNOB_CAPACITY;
  if (k->reals[1] > 0) return KNOB_TOPK;
  return k->skip_cmp > 0 ? KNOB_CUT : KNOB_NONE;
}

typedef int (*KnobVisit)(const LoopKernel *k, int i, void *ud);
/* Pre-order over kernels and their regions (the order of the counters). */
static int knob_walk(const PtrVec *ks, int *i, KnobVisit visit, void *ud) {
  for (int j = 0; j < ks->len; j++) {
    const LoopKernel *k = ks->data[j];
    if (k->kind == LK_SKIP) {
      if (visit && visit(k, *i, ud)) return 1;
      (*i)++;
    }
    for (int r = 0; r < k->nregions; r++)
      if (knob_walk(&k->regions[r]->kernels, i, visit, ud)) return 1;
  }
  return 0;
}

int emit_knobs_n(const LoopModule *m) {
  int i = 0;
  knob_walk(&m->kernels, &i, NULL, NULL);
  return i;
}

typedef struct KnobFind {
  const LoopKernel *k;
  int i;
} KnobFind;

static int knob_find_visit(const LoopKernel *k, int i, void *ud) {
  KnobFind *f = ud;
  if (k != f->k) return 0;
  f->i = i;
  return 1;
}

int emit_knobs_index(const LoopModule *m, const LoopKernel *k) {
  KnobFind f = {k, -1};
  int i = 0;
  if (k->kind != LK_SKIP) return -1;
  knob_walk(&m->kernels, &i, knob_find_visit, &f);
  return f.i;
}

void emit_knobs_field(StrBuf *sb, const LoopModule *m) {
  int n = emit_knobs_n(m);
  if (n == 0) return;
  sb_printf(sb, "  double skip_tau[%d];    /* per skip/route: run-time threshold (%s_set_skip_threshold) */\n", n,
            m->name);
  sb_printf(sb, "  double skip_cap[%d];    /* per route: run-time capacity or count (%s_set_route_capacity) */\n", n,
            m->name);
}

void emit_knobs_decls(StrBuf *sb, const LoopModule *m) {
  const char *N = m->name;
  sb_printf(sb,
            "/* Run-time knobs of the `skip when` / `route` statements, numbered in model\n"
            " * order (regions included, as the --count ops list them minus mixtures).\n"
            " * Defaults are the compile-time values; set them between forward calls.\n"
            " * threshold: a `skip when s < tau` skip (also <=, >, >=) skips row t iff\n"
            " *   s[t] < tau (tau rounded to f32); a route runs a one-token call iff\n"
            " *   sigmoid(r) >= tau (tau in [0, 1]; a negative tau removes the rule).\n"
            " * capacity: a route keeps the top ceil(c * T) tokens (0 < c <= 1), or for\n"
            " *   `top(k)` the top min(k, T) (an integer k >= 1).\n"
            " * Setters return GAT_OK or GAT_ERR_ARGUMENT (bad index, value, or a knob\n"
            " * the statement does not have; see %s_message). Kept across reset. */\n"
            "int %s_skip_ops(void);\n"
            "const char *%s_skip_kind(int i);   /* \"skip\", \"threshold\", \"route\", \"route_top_k\" */\n"
            "int %s_skip_line(int i);           /* .gat line and column of the statement */\n"
            "int %s_skip_col(int i);\n"
            "double %s_skip_threshold(const %s *m, int i);  /* -1 where there is none */\n"
            "int %s_set_skip_threshold(%s *m, int i, double tau);\n"
            "double %s_route_capacity(const %s *m, int i);  /* c, or k for top(k); -1 for a skip */\n"
            "int %s_set_route_capacity(%s *m, int i, double c);\n\n",
            N, N, N, N, N, N, N, N, N, N, N, N, N);
}

typedef struct KnobTables {
  StrBuf kind, line, col, tau, cap;
} KnobTables;

static void knob_double(StrBuf *sb, double v) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.17g", v);
  sb_append(sb, buf);
  if (!strpbrk(buf, ".eEn")) sb_append(sb, ".0");
}

static int knob_table_visit(const LoopKernel *k, int i, void *ud) {
  KnobTables *t = ud;
  const char *sep = i ? ", " : "";
  int kind = knob_kind(k);
  sb_printf(&t->kind, "%s%d", sep, kind);
  sb_printf(&t->line, "%s%d", sep, k->line);
  sb_printf(&t->col, "%s%d", sep, k->col);
  sb_append(&t->tau, sep);
  knob_double(&t->tau, kind == KNOB_CUT ? k->reals[3] : kind == KNOB_NONE ? -1.0 : k->reals[2]);
  sb_append(&t->cap, sep);
  knob_double(&t->cap, kind == KNOB_CAPACITY ? k->reals[0] : kind == KNOB_TOPK ? k->reals[1] : -1.0);
  return 0;
}

void emit_knobs_defs(StrBuf *sb, const LoopModule *m) {
  const char *N = m->name;
  int n = emit_knobs_n(m);
  sb_printf(sb, "/* ---- run-time knobs of skips and routes (codegen/emit_knobs.h) ---- */\n");
  sb_printf(sb, "int %s_skip_ops(void) { return %d; }\n", N, n);
  if (n == 0) {
    sb_printf(sb, "const char *%s_skip_kind(int i) { (void)i; return \"\"; }\n", N);
    sb_printf(sb, "int %s_skip_line(int i) { (void)i; return 0; }\n", N);
    sb_printf(sb, "int %s_skip_col(int i) { (void)i; return 0; }\n", N);
    sb_printf(sb, "double %s_skip_threshold(const %s *m, int i) { (void)m; (void)i; return -1.0; }\n", N, N);
    sb_printf(sb, "double %s_route_capacity(const %s *m, int i) { (void)m; (void)i; return -1.0; }\n", N, N);
    sb_printf(sb,
              "int %s_set_skip_threshold(%s *m, int i, double tau) {\n"
              "  (void)tau;\n"
              "  if (!m) return GAT_ERR_ARGUMENT;\n"
              "  return gat_error_set(&m->err, GAT_ERR_ARGUMENT, \"skip %%d: the model has no skip or route\", i);\n"
              "}\n",
              N, N);
    sb_printf(sb,
              "int %s_set_route_capacity(%s *m, int i, double c) {\n"
              "  (void)c;\n"
              "  if (!m) return GAT_ERR_ARGUMENT;\n"
              "  return gat_error_set(&m->err, GAT_ERR_ARGUMENT, \"skip %%d: the model has no skip or route\", i);\n"
              "}\n\n",
              N, N);
    return;
  }
  KnobTables t;
  memset(&t, 0, sizeof t);
  int i = 0;
  knob_walk(&m->kernels, &i, knob_table_visit, &t);
  sb_printf(sb, "static const int %s_skip_kind_tab[%d] = {%s}; /* 0 skip, 1 threshold, 2 route, 3 route_top_k */\n", N,
            n, sb_cstr(&t.kind));
  sb_printf(sb, "static const int %s_skip_line_tab[%d] = {%s};\n", N, n, sb_cstr(&t.line));
  sb_printf(sb, "static const int %s_skip_col_tab[%d] = {%s};\n", N, n, sb_cstr(&t.col));
  sb_printf(sb, "static const double %s_skip_tau0[%d] = {%s};\n", N, n, sb_cstr(&t.tau));
  sb_printf(sb, "static const double %s_skip_cap0[%d] = {%s};\n", N, n, sb_cstr(&t.cap));
  sb_printf(sb,
            "const char *%s_skip_kind(int i) {\n"
            "  static const char *const names[4] = {\"skip\", \"threshold\", \"route\", \"route_top_k\"};\n"
            "  return i >= 0 && i < %d ? names[%s_skip_kind_tab[i]] : \"\";\n"
            "}\n",
            N, n, N);
  sb_printf(sb, "int %s_skip_line(int i) { return i >= 0 && i < %d ? %s_skip_line_tab[i] : 0; }\n", N, n, N);
  sb_printf(sb, "int %s_skip_col(int i) { return i >= 0 && i < %d ? %s_skip_col_tab[i] : 0; }\n", N, n, N);
  sb_printf(sb, "double %s_skip_threshold(const %s *m, int i) { return m && i >= 0 && i < %d ? m->skip_tau[i] : -1.0; }\n",
            N, N, n);
  sb_printf(sb, "double %s_route_capacity(const %s *m, int i) { return m && i >= 0 && i < %d ? m->skip_cap[i] : -1.0; }\n",
            N, N, n);
  sb_printf(sb,
            "int %s_set_skip_threshold(%s *m, int i, double tau) {\n"
            "  if (!m) return GAT_ERR_ARGUMENT;\n"
            "  if (i < 0 || i >= %d) return gat_error_set(&m->err, GAT_ERR_ARGUMENT, \"skip %%d: the model has %d skips/routes\", i);\n"
            "  int k = %s_skip_kind_tab[i];\n"
            "  if (k == 0) return gat_error_set(&m->err, GAT_ERR_ARGUMENT, \"skip %%d (line %%d) has no threshold: its condition is not 'score < tau'\", i, %s_skip_line_tab[i]);\n"
            "  if (isnan(tau) || fabs(tau) > 3.4e38) return gat_error_set(&m->err, GAT_ERR_ARGUMENT, \"skip %%d: threshold is not a finite f32\", i);\n"
            "  if (k == 1) { m->skip_tau[i] = (double)(float)tau; return GAT_OK; }\n"
            "  if (tau > 1) return gat_error_set(&m->err, GAT_ERR_ARGUMENT, \"route %%d: threshold %%g compares with sigmoid(score); it must be <= 1\", i, tau);\n"
            "  m->skip_tau[i] = tau < 0 ? -1.0 : tau;\n"
            "  return GAT_OK;\n"
            "}\n",
            N, N, n, n, N, N);
  sb_printf(sb,
            "int %s_set_route_capacity(%s *m, int i, double c) {\n"
            "  if (!m) return GAT_ERR_ARGUMENT;\n"
            "  if (i < 0 || i >= %d) return gat_error_set(&m->err, GAT_ERR_ARGUMENT, \"skip %%d: the model has %d skips/routes\", i);\n"
            "  int k = %s_skip_kind_tab[i];\n"
            "  if (k < 2) return gat_error_set(&m->err, GAT_ERR_ARGUMENT, \"skip %%d (line %%d) is not a route: it has no capacity\", i, %s_skip_line_tab[i]);\n"
            "  if (k == 2 && !(c > 0 && c <= 1)) return gat_error_set(&m->err, GAT_ERR_ARGUMENT, \"route %%d: capacity %%g must be in (0, 1]\", i, c);\n"
            "  if (k == 3 && !(c >= 1 && c <= 2147483647.0 && floor(c) == c)) return gat_error_set(&m->err, GAT_ERR_ARGUMENT, \"route %%d: top(k) needs an integer k >= 1, not %%g\", i, c);\n"
            "  m->skip_cap[i] = c;\n"
            "  return GAT_OK;\n"
            "}\n\n",
            N, N, n, n, N, N);
  sb_free(&t.kind);
  sb_free(&t.line);
  sb_free(&t.col);
  sb_free(&t.tau);
  sb_free(&t.cap);
}

void emit_knobs_init(StrBuf *sb, const LoopModule *m) {
  int n = emit_knobs_n(m);
  if (n == 0) return;
  sb_printf(sb, "  memcpy(m->skip_tau, %s_skip_tau0, sizeof m->skip_tau); /* knobs start at the compile-time values */\n",
            m->name);
  sb_printf(sb, "  memcpy(m->skip_cap, %s_skip_cap0, sizeof m->skip_cap);\n", m->name);
}
