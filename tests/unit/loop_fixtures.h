// loop_fixtures.h — fixtures the loop-IR unit tests share (test_loopfast.cc, test_llvm*.cc,
// test_gemmopt.cc, test_passes.cc): a .gat source compiled to graph IR, a
// graph module lowered through the pass pipeline at a level or with given
// options, and small builders for hand-made loop modules (buffers, loop
// kernels, loads and arithmetic) for tests that feed a pass a nest it must
// or must not rewrite. A header, not a .cc: tests/CMakeLists.txt makes every
// tests/unit/*.cc its own executable.
#ifndef GATTNC_TESTS_LOOP_FIXTURES_H
#define GATTNC_TESTS_LOOP_FIXTURES_H

#include <cstring>
#include <vector>

extern "C" {
#include "frontend.h"
#include "ir.h"
#include "pass.h"
}

namespace loop_fixtures {

// A .gat source compiled by the front end (m is null on an error).
struct Compiled {
  Arena a;
  IrModule *m = nullptr;
  explicit Compiled(const char *src) {
    arena_init(&a);
    FrontendOptions fo;
    memset(&fo, 0, sizeof fo);
    m = frontend_compile(&a, "test.gat", src, &fo);
  }
  ~Compiled() { arena_free(&a); }
  Compiled(const Compiled &) = delete;
  Compiled &operator=(const Compiled &) = delete;
};

// m through the pass pipeline (lm is null, with the message in err, on an error).
struct Lowered {
  Arena a;
  LoopModule *lm = nullptr;
  char err[2048] = "";
  Lowered(const IrModule *m, const PassOptions &o) {
    arena_init(&a);
    lm = pipeline_run(&a, m, "t", &o, err, sizeof err);
  }
  // at -O`level` with that level's default options
  Lowered(const IrModule *m, int level) {
    arena_init(&a);
    PassOptions o;
    pass_options_init(&o, level);
    lm = pipeline_run(&a, m, "t", &o, err, sizeof err);
  }
  ~Lowered() { arena_free(&a); }
  Lowered(const Lowered &) = delete;
  Lowered &operator=(const Lowered &) = delete;
};

// ---- hand-built loop modules ---------------------------------------------------

// a scratch f32 buffer of shape `dims`; returns its id
inline int scratch_buf(LoopModule *m, std::vector<int64_t> dims, const char *name) {
  return loop_buf_new(m, LB_SCRATCH, IR_F32, ir_shape((int)dims.size(), dims.data()), 0, name)->id;
}

// an LK_LOOP kernel writing `out` over extents `ext`, appended to m's kernels (body to fill in)
inline LoopKernel *loop_nest(LoopModule *m, int out, std::vector<int64_t> ext) {
  LoopKernel *k = loop_kernel_new(m, LK_LOOP);
  k->out = out;
  k->rank = (int)ext.size();
  for (size_t d = 0; d < ext.size(); d++) k->ext[d] = ext[d];
  ptrvec_push(&m->kernels, k);
  return k;
}

// the index expression `v` (loop or reduction variable v, coefficient 1)
inline LoopIndex ix_var(int v) {
  LoopIndex x;
  memset(&x, 0, sizeof x);
  x.nterms = 1;
  x.var[0] = v;
  x.coef[0] = 1;
  x.dyn_buf = -1;
  return x;
}

// buf[vars[0], vars[1], ...]
inline LoopExpr *load(LoopModule *m, int buf, std::vector<int> vars) {
  LoopExpr *e = loop_expr_new(m, LX_LOAD, IR_F32);
  e->buf = buf;
  e->nidx = (int)vars.size();
  e->idx = (LoopIndex *)arena_alloc(m->arena, vars.size() * sizeof(LoopIndex));
  for (size_t i = 0; i < vars.size(); i++) e->idx[i] = ix_var(vars[i]);
  return e;
}

inline LoopExpr *bin(LoopModule *m, IrFn fn, LoopExpr *a, LoopExpr *b) {
  LoopExpr *e = loop_expr_new(m, LX_BINARY, IR_F32);
  e->fn = fn;
  e->a = a;
  e->b = b;
  return e;
}

inline LoopExpr *un(LoopModule *m, IrFn fn, LoopExpr *a) {
  LoopExpr *e = loop_expr_new(m, LX_UNARY, IR_F32);
  e->fn = fn;
  e->a = a;
  return e;
}

// sum over reduction variable `var` in [0, extent) of a
inline LoopExpr *sum_over(LoopModule *m, int var, int64_t extent, LoopExpr *a) {
  LoopExpr *r = loop_expr_new(m, LX_REDUCE, IR_F32);
  r->var = var;
  r->extent = extent;
  r->red = IR_RED_SUM;
  r->a = a;
  return r;
}

}  // namespace loop_fixtures

#endif
