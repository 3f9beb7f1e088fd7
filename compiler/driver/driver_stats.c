/* driver_stats.c — `gattnc FILE --stats [-O0|-O1|-O2] [-T N]`: what the
 * optimizer made of a model, without writing any code.
 *
 * Prints the arena (state, persistent packed weights, planned scratch)
 * against the liveness lower bound of memplan.c (the ratio is what the
 * planner's packing heuristic costs), the arena one slice per buffer would
 * take, the weight bytes the caller binds, the kernels per kind (at every
 * depth; calls by runtime kernel) and the operation counts of the loop IR
 * for a T-token prefill and for one decode token after T tokens, taken as
 * F(T + 1) - F(T) (exact for per-row work and causal attention; mixtures
 * count every expert on every row, an upper bound). */
#include <stdio.h>
#include <string.h>

#include "driver.h"
#include "pass.h"

static const char *const stats_call_names[] = {"softmax", "rms_norm", "layer_norm", "l2_norm", "gather",
                                               "topk",    "rope",     "conv1d",     "attention", "gemm"};
#define STATS_NCALLS ((int)(sizeof stats_call_names / sizeof stats_call_names[0]))

typedef struct StatsCount {
  int kinds[LK_TILE + 1];
  int calls[STATS_NCALLS];
} StatsCount;

static void stats_count(const PtrVec *ks, StatsCount *c) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = ks->data[i];
    c->kinds[k->kind]++;
    if (k->kind == LK_CALL && (int)k->call < STATS_NCALLS) c->calls[k->call]++;
    for (int r = 0; r < k->nregions; r++) stats_count(&k->regions[r]->kernels, c);
  }
}

static void stats_bytes(const char *what, int64_t b) {
  printf("  %-34s %14lld bytes (%.2f MiB)\n", what, (long long)b, (double)b / (1024.0 * 1024.0));
}

int driver_stats(const IrModule *im, const DriverOptions *o) {
  char err[1024];
  PassOptions po;
  driver_pass_options(o, &po);
  po.dump_after = NULL;
  Arena a;
  arena_init(&a);
  LoopModule *m = pipeline_run(&a, im, "stats", &po, err, sizeof err);
  if (!m) {
    fprintf(stderr, "gattnc: error: %s\n", err);
    arena_free(&a);
    return 1;
  }
  int64_t state = 0, persistent = 0, unplanned = 0, weights = 0;
  for (int i = 0; i < m->bufs.len; i++) {
    const LoopBuf *b = m->bufs.data[i];
    if (b->kind == LB_STATE) state += memplan_buf_size(b);
    if (b->kind == LB_SCRATCH && b->persistent) persistent += memplan_buf_size(b);
    if (b->kind == LB_STATE || b->kind == LB_SCRATCH) unplanned += memplan_buf_size(b);
  }
  for (int i = 0; i < m->nparams; i++) weights += 4 * ir_shape_numel(m->params[i].shape, 1);
  int64_t lb = memplan_lower_bound(m);
  int planned = po.opt_level >= 1 && po.memplan;
  printf("gattnc stats %s: -O%d, max T = %lld, arena %s\n", o->input, po.opt_level, (long long)m->max_T,
         planned ? "planned by liveness (memplan)" : "one slice per buffer (no memplan)");
  printf("arena:\n");
  stats_bytes("total", m->arena_bytes);
  stats_bytes("state", state);
  stats_bytes("persistent (packed weights)", persistent);
  stats_bytes("scratch", m->arena_bytes - state - persistent);
  stats_bytes("liveness lower bound", lb);
  printf("  %-34s %14.4f\n", "ratio arena / lower bound", (double)m->arena_bytes / (double)lb);
  stats_bytes("one slice per buffer", unplanned);
  printf("weights:\n");
  stats_bytes("parameters", weights);
  printf("  %-34s %14d\n", "tensors", m->nparams);
  StatsCount c;
  memset(&c, 0, sizeof c);
  stats_count(&m->kernels, &c);
  static const char *const kind_names[] = {"loop", "call", "copy", "scan", "mixture", "skip", "tile"};
  int total = 0;
  for (int k = 0; k <= LK_TILE; k++) total += c.kinds[k];
  printf("kernels: %d top level, %d in all\n", m->kernels.len, total);
  for (int k = 0; k <= LK_TILE; k++)
    if (c.kinds[k]) printf("  %-34s %14d\n", kind_names[k], c.kinds[k]);
  for (int k = 0; k < STATS_NCALLS; k++)
    if (c.calls[k]) printf("    call %-29s %14d\n", stats_call_names[k], c.calls[k]);
  int64_t T = o->bench_T > 0 ? o->bench_T : 512;
  if (T > m->max_T) T = m->max_T;
  double fp = driver_bench_flops(m, T), fd = driver_bench_flops(m, T + 1) - fp;
  printf("FLOPs (from the loop IR; mixtures: every expert on every row):\n");
  char what[64];
  snprintf(what, sizeof what, "prefill, T = %lld", (long long)T);
  printf("  %-34s %14.4g (%.3f GFLOP)\n", what, fp, fp * 1e-9);
  snprintf(what, sizeof what, "decode, per token at position %lld", (long long)T);
  printf("  %-34s %14.4g (%.3f MFLOP)\n", what, fd, fd * 1e-6);
  arena_free(&a);
  return 0;
}
