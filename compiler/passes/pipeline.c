/* pipeline.c — the optimizer's pass list, in order, in one place.
 *
 *   graph IR:  dce → cse → dce            (-O1+)
 *   lower:     loop_lower (one kernel per op, the -O0 program)
 *   loop IR:   gemm (-O2, tile) → attention (-O2, tile) → scalefold → prologue (-O2, packed) → epilogue (-O2, tile + fuse)
 *              → glu (-O2, packed + fuse) → gate (-O2, packed + fuse, -fno-gate) → fuse (-O1+, fuse)
 *              → chunk (-O2, -fno-chunk) → interchange → scan_inplace → licm → f32math (-O2; licm
 *              after the others: it needs the final kernel outputs and loop orders)
 *              → scanfuse (-O2, -fno-scanfuse; after licm/f32math: merges finished nests, lets included)
 *              → concat (-O2, packed, -fno-concat; last, so no other pass sees segmented GEMMs)
 *   layout:    arena offsets, one slice per buffer (always)
 *   memplan:   arena offsets by liveness, scratch shared (-O1+, -fno-memplan; memplan.c)
 *   block:     GEMM row/column blocks as LK_TILE loops around the micro-kernel calls (-O2, packed,
 *              -fno-block; after memplan: it moves kernels into regions, which changes no
 *              buffer's lifetime)
 *
 * Each entry names the pass (the `--dump-after` key), the IR it works on and
 * the condition under which it runs. After every pass that ran, the IR is
 * verified (ir_verify or loop_verify) when o->verify is set, and printed if
 * its name is o->dump_after. -O0 runs only `lower` and `layout`, so its
 * output is exactly the plain lowering. */
#include <stdlib.h>
#include <string.h>

#include "gat_limits.h"
#include "pass.h"

typedef enum { ON_GRAPH, ON_LOWER, ON_LOOP, ON_LAYOUT } PassIr;

typedef struct PassEntry {
  const char *name;
  PassIr ir;
  void (*graph)(IrModule *, const PassOptions *);
  void (*loop)(LoopModule *, const PassOptions *);
} PassEntry;

static const PassEntry pass_list[] = {
    {"dce", ON_GRAPH, pass_dce, NULL},
    {"cse", ON_GRAPH, pass_cse, NULL},
    {"dce2", ON_GRAPH, pass_dce, NULL},
    {"lower", ON_LOWER, NULL, NULL},
    {"gemm", ON_LOOP, NULL, pass_gemm},
    {"attention", ON_LOOP, NULL, pass_attention},
    {"scalefold", ON_LOOP, NULL, pass_scalefold},
    {"prologue", ON_LOOP, NULL, pass_prologue},
    {"epilogue", ON_LOOP, NULL, pass_epilogue},
    {"glu", ON_LOOP, NULL, pass_glu},
    {"gate", ON_LOOP, NULL, pass_gate},
    {"fuse", ON_LOOP, NULL, pass_fuse},
    {"chunk", ON_LOOP, NULL, pass_chunk},
    {"interchange", ON_LOOP, NULL, pass_interchange},
    {"scan_inplace", ON_LOOP, NULL, pass_scan_inplace},
    {"licm", ON_LOOP, NULL, pass_licm},
    {"f32math", ON_LOOP, NULL, pass_f32math},
    {"scanfuse", ON_LOOP, NULL, pass_scanfuse},
    {"concat", ON_LOOP, NULL, pass_concat},
    {"layout", ON_LAYOUT, NULL, NULL},
    {"memplan", ON_LOOP, NULL, pass_memplan},
    {"block", ON_LOOP, NULL, pass_block},
};
#define NPASSES ((int)(sizeof pass_list / sizeof pass_list[0]))

static int pass_enabled(const PassEntry *p, const PassOptions *o) {
  const char *n = p->name;
  if (!strcmp(n, "lower") || !strcmp(n, "layout")) return 1;
  if (!strcmp(n, "dce") || !strcmp(n, "cse") || !strcmp(n, "dce2")) return o->opt_level >= 1;
  if (!strcmp(n, "gemm")) return o->opt_level >= 2 && o->tile;
  if (!strcmp(n, "attention")) return o->opt_level >= 2 && o->tile;
  if (!strcmp(n, "epilogue")) return o->opt_level >= 2 && o->tile && o->fuse;
  if (!strcmp(n, "scalefold")) return o->opt_level >= 2 && o->tile && o->pack && o->fold_scales;
  if (!strcmp(n, "prologue")) return o->opt_level >= 2 && o->tile && o->pack && o->prologue;
  if (!strcmp(n, "glu")) return o->opt_level >= 2 && o->tile && o->pack && o->fuse && o->glu;
  if (!strcmp(n, "gate")) return o->opt_level >= 2 && o->tile && o->pack && o->fuse && o->gate;
  if (!strcmp(n, "concat")) return o->opt_level >= 2 && o->tile && o->pack && o->concat;
  if (!strcmp(n, "fuse")) return o->opt_level >= 1 && o->fuse;
  if (!strcmp(n, "chunk")) return o->opt_level >= 2 && o->chunk;
  if (!strcmp(n, "memplan")) return o->opt_level >= 1 && o->memplan;
  if (!strcmp(n, "block")) return o->opt_level >= 2 && o->tile && o->pack && o->block;
  if (!strcmp(n, "interchange") || !strcmp(n, "scan_inplace") || !strcmp(n, "licm")) return o->opt_level >= 2;
  if (!strcmp(n, "f32math")) return o->opt_level >= 2 && o->f32_math;
  if (!strcmp(n, "scanfuse")) return o->opt_level >= 2 && o->scanfuse;
  return 0;
}

void pass_options_init(PassOptions *o, int opt_level) {
  memset(o, 0, sizeof *o);
  o->opt_level = opt_level;
  o->fuse = o->tile = o->pack = 1;
  o->f32_math = 1;
  o->fold_scales = o->prologue = o->glu = 1;
  o->chunk = 1;
  o->concat = o->gate = 1;
  o->scanfuse = 1;
  o->memplan = 1;
  o->block = 1;
  o->verify = 1;
}

const char *const *pipeline_pass_names(void) {
  static const char *names[NPASSES + 1];
  for (int i = 0; i < NPASSES; i++) names[i] = pass_list[i].name;
  names[NPASSES] = NULL;
  return names;
}

int pipeline_has_pass(const char *name) {
  for (int i = 0; i < NPASSES; i++)
    if (!strcmp(pass_list[i].name, name)) return 1;
  return 0;
}

LoopModule *pipeline_run(Arena *a, const IrModule *im, const char *c_name, const PassOptions *o, char *err,
                         size_t errlen) {
  FILE *dump = o->dump_out ? o->dump_out : stdout;
  if (o->dump_after && !pipeline_has_pass(o->dump_after)) {
    StrBuf names = {0};
    for (int i = 0; i < NPASSES; i++) sb_printf(&names, "%s%s", i ? ", " : "", pass_list[i].name);
    snprintf(err, errlen, "--dump-after: unknown pass '%s' (passes: %s)", o->dump_after, sb_cstr(&names));
    sb_free(&names);
    return NULL;
  }
  /* graph passes work on a copy: the text form round-trips exactly */
  IrModule *gm = (IrModule *)im;
  int any_graph = 0;
  for (int i = 0; i < NPASSES; i++) any_graph |= pass_list[i].ir == ON_GRAPH && pass_enabled(&pass_list[i], o);
  if (any_graph) {
    char *text = ir_print_to_string(im);
    gm = ir_parse(a, im->name ? im->name : "<module>", text);
    free(text);
    if (!gm) {
      snprintf(err, errlen, "internal error: the graph IR does not read back for the optimizer");
      return NULL;
    }
  }
  LoopModule *lm = NULL;
  for (int i = 0; i < NPASSES; i++) {
    const PassEntry *p = &pass_list[i];
    if (!pass_enabled(p, o)) {
      /* a pass this level skips: its dump is the IR as it stands */
      if (o->dump_after && !strcmp(o->dump_after, p->name)) {
        if (p->ir == ON_GRAPH)
          ir_print(dump, gm);
        else if (lm)
          loop_print(dump, lm);
      }
      continue;
    }
    char verr[2048] = "";
    int bad = 0;
    switch (p->ir) {
    case ON_GRAPH:
      p->graph(gm, o);
      if (o->verify && ir_verify(gm, verr, sizeof verr) != 0) bad = 1;
      break;
    case ON_LOWER:
      lm = loop_lower(a, gm, c_name, err, errlen);
      if (!lm) {
        if (gm != im) ir_module_release(gm);
        return NULL;
      }
      lm->opt_level = o->opt_level;
      lm->target = o->target;
      lm->profile = o->profile;
      lm->count = o->count;
      if (o->verify && loop_verify(lm, verr, sizeof verr) != 0) bad = 1;
      break;
    case ON_LOOP:
      p->loop(lm, o);
      if (o->verify && loop_verify(lm, verr, sizeof verr) != 0) bad = 1;
      break;
    case ON_LAYOUT:
      loop_module_layout(lm);
      break;
    }
    if (bad) {
      snprintf(err, errlen, "internal error: the IR does not verify after pass '%s': %s", p->name, verr);
      if (gm != im) ir_module_release(gm);
      return NULL;
    }
    if (o->dump_after && !strcmp(o->dump_after, p->name)) {
      if (p->ir == ON_GRAPH)
        ir_print(dump, gm);
      else
        loop_print(dump, lm);
    }
  }
  if (gm != im) ir_module_release(gm);
  if (lm && lm->arena_bytes > GAT_LIMIT_ARENA_BYTES) {
    snprintf(err, errlen,
             "the model needs an arena of %s%lld bytes at max T = %lld, over the limit of 2^48 bytes "
             "(%lld); lower max T (or --max-seq) or the model's sizes",
             lm->arena_bytes == INT64_MAX ? "more than " : "", (long long)lm->arena_bytes, (long long)lm->max_T,
             (long long)GAT_LIMIT_ARENA_BYTES);
    return NULL;
  }
  return lm;
}
