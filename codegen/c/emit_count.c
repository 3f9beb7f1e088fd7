/* emit_count.c — the execution counters of a `--count` build (see
 * emit_count.h for the slot layout): which kernels are counted, the counter
 * field of the model struct, and the NAME_count_* API. The increments
 * themselves are emitted by emit_c.c's mixture and skip kernels, at the
 * point where a region is about to run on its n gathered rows. */
#include "emit_count.h"

#include <string.h>

#include "emit_c.h"

static int count_is_counted(const LoopKernel *k) { return k->kind == LK_MIXTURE || k->kind == LK_SKIP; }

static int count_slots_of(const LoopKernel *k) { return 1 + 2 * k->nregions; }

/* Pre-order walk (a kernel, then its regions), the order the interpreter lists
 * its ops in. Calls visit(k, op number, base slot) for counted kernels; stops
 * and returns 1 when visit returns nonzero. */
typedef int (*CountVisit)(const LoopKernel *k, int op, int base, void *ud);
static int count_walk(const PtrVec *ks, int *op, int *slot, CountVisit visit, void *ud) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = ks->data[i];
    if (count_is_counted(k)) {
      if (visit && visit(k, *op, *slot, ud)) return 1;
      (*op)++;
      *slot += count_slots_of(k);
    }
    for (int r = 0; r < k->nregions; r++)
      if (count_walk(&k->regions[r]->kernels, op, slot, visit, ud)) return 1;
  }
  return 0;
}

int emit_count_nops(const LoopModule *m) {
  int op = 0, slot = 0;
  if (!m->count) return 0;
  count_walk(&m->kernels, &op, &slot, NULL, NULL);
  return op;
}

int emit_count_nslots(const LoopModule *m) {
  int op = 0, slot = 0;
  if (!m->count) return 0;
  count_walk(&m->kernels, &op, &slot, NULL, NULL);
  return slot;
}

typedef struct CountFind {
  const LoopKernel *k;
  int base;
} CountFind;

static int count_find_visit(const LoopKernel *k, int op, int base, void *ud) {
  CountFind *f = ud;
  (void)op;
  if (k != f->k) return 0;
  f->base = base;
  return 1;
}

int emit_count_base(const LoopModule *m, const LoopKernel *k) {
  int op = 0, slot = 0;
  CountFind f = {k, -1};
  if (!m->count || !count_is_counted(k)) return -1;
  count_walk(&m->kernels, &op, &slot, count_find_visit, &f);
  return f.base;
}

typedef struct CountList {
  const LoopKernel **ks;
  int *bases;
} CountList;

static int count_list_visit(const LoopKernel *k, int op, int base, void *ud) {
  CountList *l = ud;
  l->ks[op] = k;
  l->bases[op] = base;
  return 0;
}

int emit_count_list(const LoopModule *m, const LoopKernel **ks, int *bases) {
  int op = 0, slot = 0;
  CountList l = {ks, bases};
  if (!m->count) return 0;
  count_walk(&m->kernels, &op, &slot, count_list_visit, &l);
  return op;
}

void emit_count_field(StrBuf *sb, const LoopModule *m) {
  int n = emit_count_nslots(m);
  if (!m->count) return;
  sb_printf(sb, "  uint64_t count[%d];      /* --count: execution counters (%s_count_*) */\n", n > 0 ? n : 1,
            m->name);
}

void emit_count_decls(StrBuf *sb, const LoopModule *m) {
  const char *N = m->name;
  if (!m->count) return;
  sb_printf(sb,
            "/* --count build: execution counters of every mixture and skip op, in model\n"
            " * order. tokens = rows offered to the op (summed over calls); rows/calls of\n"
            " * region r = rows that expert r (or the kept branch of a skip, r = 0) computed\n"
            " * and how often it ran. Unchosen experts and skipped tokens add nothing.\n"
            " * Zeroed by init and %s_count_clear, kept across reset. */\n"
            "int %s_count_ops(void);\n"
            "const char *%s_count_kind(int op);    /* \"mixture\" or \"skip\" */\n"
            "int %s_count_line(int op);            /* .gat line and column of the op */\n"
            "int %s_count_col(int op);\n"
            "const char *%s_count_origin(int op);  /* the layer it came from, or \"\" */\n"
            "int %s_count_regions(int op);         /* experts, or 1 for a skip */\n"
            "uint64_t %s_count_tokens(const %s *m, int op);\n"
            "uint64_t %s_count_rows(const %s *m, int op, int region);\n"
            "uint64_t %s_count_calls(const %s *m, int op, int region);\n"
            "void %s_count_clear(%s *m);\n\n",
            N, N, N, N, N, N, N, N, N, N, N, N, N, N, N);
}

typedef struct CountTables {
  StrBuf kind, line, col, origin, regions, base;
} CountTables;

static int count_table_visit(const LoopKernel *k, int op, int base, void *ud) {
  CountTables *t = ud;
  const char *sep = op ? ", " : "";
  sb_printf(&t->kind, "%s\"%s\"", sep, k->kind == LK_MIXTURE ? "mixture" : "skip");
  sb_printf(&t->line, "%s%d", sep, k->line);
  sb_printf(&t->col, "%s%d", sep, k->col);
  sb_append(&t->origin, sep);
  emit_c_string_literal(&t->origin, k->origin ? k->origin : "");
  sb_printf(&t->regions, "%s%d", sep, k->nregions);
  sb_printf(&t->base, "%s%d", sep, base);
  return 0;
}

void emit_count_defs(StrBuf *sb, const LoopModule *m) {
  const char *N = m->name;
  if (!m->count) return;
  CountTables t;
  memset(&t, 0, sizeof t);
  int op = 0, slot = 0;
  count_walk(&m->kernels, &op, &slot, count_table_visit, &t);
  int n = op > 0 ? op : 1;
  if (op == 0) {
    sb_append(&t.kind, "\"\"");
    sb_append(&t.line, "0");
    sb_append(&t.col, "0");
    sb_append(&t.origin, "\"\"");
    sb_append(&t.regions, "0");
    sb_append(&t.base, "0");
  }
  sb_printf(sb, "/* --count: the counted ops (mixture / skip kernels, model order) */\n");
  sb_printf(sb, "static const char *const %s_cnt_kind[%d] = {%s};\n", N, n, sb_cstr(&t.kind));
  sb_printf(sb, "static const int %s_cnt_line[%d] = {%s};\n", N, n, sb_cstr(&t.line));
  sb_printf(sb, "static const int %s_cnt_col[%d] = {%s};\n", N, n, sb_cstr(&t.col));
  sb_printf(sb, "static const char *const %s_cnt_origin[%d] = {%s};\n", N, n, sb_cstr(&t.origin));
  sb_printf(sb, "static const int %s_cnt_regions[%d] = {%s};\n", N, n, sb_cstr(&t.regions));
  sb_printf(sb, "static const int %s_cnt_base[%d] = {%s};\n", N, n, sb_cstr(&t.base));
  /* Out-of-range queries answer 0 / "" rather than read past the tables. */
  sb_printf(sb, "#define %s_CNT_OK(op) ((op) >= 0 && (op) < %d)\n", N, op);
  sb_printf(sb, "int %s_count_ops(void) { return %d; }\n", N, op);
  sb_printf(sb, "const char *%s_count_kind(int op) { return %s_CNT_OK(op) ? %s_cnt_kind[op] : \"\"; }\n", N, N, N);
  sb_printf(sb, "int %s_count_line(int op) { return %s_CNT_OK(op) ? %s_cnt_line[op] : 0; }\n", N, N, N);
  sb_printf(sb, "int %s_count_col(int op) { return %s_CNT_OK(op) ? %s_cnt_col[op] : 0; }\n", N, N, N);
  sb_printf(sb, "const char *%s_count_origin(int op) { return %s_CNT_OK(op) ? %s_cnt_origin[op] : \"\"; }\n", N, N, N);
  sb_printf(sb, "int %s_count_regions(int op) { return %s_CNT_OK(op) ? %s_cnt_regions[op] : 0; }\n", N, N, N);
  sb_printf(sb,
            "uint64_t %s_count_tokens(const %s *m, int op) { return m && %s_CNT_OK(op) ? m->count[%s_cnt_base[op]] : 0; }\n",
            N, N, N, N);
  sb_printf(sb,
            "uint64_t %s_count_rows(const %s *m, int op, int region) {\n"
            "  return m && %s_CNT_OK(op) && region >= 0 && region < %s_cnt_regions[op] ? m->count[%s_cnt_base[op] + 1 + 2 * region] : 0;\n"
            "}\n",
            N, N, N, N, N);
  sb_printf(sb,
            "uint64_t %s_count_calls(const %s *m, int op, int region) {\n"
            "  return m && %s_CNT_OK(op) && region >= 0 && region < %s_cnt_regions[op] ? m->count[%s_cnt_base[op] + 2 + 2 * region] : 0;\n"
            "}\n",
            N, N, N, N, N);
  sb_printf(sb, "void %s_count_clear(%s *m) { if (m) memset(m->count, 0, sizeof m->count); }\n\n", N, N);
  sb_free(&t.kind);
  sb_free(&t.line);
  sb_free(&t.col);
  sb_free(&t.origin);
  sb_free(&t.regions);
  sb_free(&t.base);
}
