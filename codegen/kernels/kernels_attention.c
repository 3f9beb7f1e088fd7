/* kernels_attention.c — the C backend's side of the flash-style attention
 * kernel of -O2 code (LC_ATTENTION calls marked attn_fast by
 * pass_attention): its source, codegen/kernels/attention.c (algorithm,
 * tiles, features), pasted into NAME.c with its support code once and its
 * per-variant part once per (DK, DV, features) in use, under #defines that
 * make them constants; and the variants a module needs, which the LLVM
 * backend links by the same names. */
#include "kernels_attention.h"

#include <string.h>

/* codegen/kernels/attention.c, its lines embedded at build time (cmake/gat_embed.c) */
extern const char *const gat_kernel_attention_text[];

static int attn_is_fast(const LoopKernel *k) { return k->kind == LK_CALL && k->call == LC_ATTENTION && k->attn_fast; }

int kernels_attention_features(const LoopKernel *k) {
  int f = 0;
  if (k->nargs > 11 && k->args[11] >= 0) f |= KERNELS_ATTENTION_POS;
  if (k->nargs > 9 && k->args[9] >= 0) f |= KERNELS_ATTENTION_RELBIAS;
  return f;
}

/* head dims and features of every attn_fast call (regions included), deduplicated, into
   dims[3 * n] */
static void attn_collect(const PtrVec *ks, int64_t *dims, int *n, int cap) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = ks->data[i];
    if (attn_is_fast(k)) {
      int64_t dk = k->sizes[3].k, dv = k->sizes[4].k, fe = kernels_attention_features(k);
      int seen = 0;
      for (int j = 0; j < *n; j++) seen |= dims[3 * j] == dk && dims[3 * j + 1] == dv && dims[3 * j + 2] == fe;
      GAT_ASSERT(seen || *n < cap); /* pass_attention marks at most that many variants */
      if (!seen) {
        dims[3 * *n] = dk;
        dims[3 * *n + 1] = dv;
        dims[3 * *n + 2] = fe;
        (*n)++;
      }
    }
    for (int r = 0; r < k->nregions; r++) attn_collect(&k->regions[r]->kernels, dims, n, cap);
  }
}

int kernels_attention_needed(const LoopModule *m) {
  int64_t dims[3 * KERNELS_ATTENTION_MAX_VARIANTS];
  int n = 0;
  attn_collect(&m->kernels, dims, &n, KERNELS_ATTENTION_MAX_VARIANTS);
  return n > 0;
}

/* "_p", "_r", "_pr" or nothing: the name suffix of a feature set */
static void attn_suffix_features(StrBuf *o, int fe) {
  if (fe) sb_printf(o, "_%s%s", fe & KERNELS_ATTENTION_POS ? "p" : "", fe & KERNELS_ATTENTION_RELBIAS ? "r" : "");
}

void kernels_attention_fn_name(StrBuf *o, const LoopKernel *k) {
  GAT_ASSERT(attn_is_fast(k));
  sb_printf(o, "gat_flash_attn_%lld_%lld", (long long)k->sizes[3].k, (long long)k->sizes[4].k);
  attn_suffix_features(o, kernels_attention_features(k));
}

void kernels_attention_emit(StrBuf *o, const LoopModule *m) {
  int64_t dims[3 * KERNELS_ATTENTION_MAX_VARIANTS];
  int n = 0;
  attn_collect(&m->kernels, dims, &n, KERNELS_ATTENTION_MAX_VARIANTS);
  if (n == 0) return;
  /* attention.c: the support code up to its "per variant" line, then the variants */
  const char *const *body = gat_kernel_attention_text;
  while (*body && strncmp(*body, "/* ---- per variant", 19) != 0) body++;
  GAT_ASSERT(*body);
  sb_append(o, "/* ---- flash attention kernel (gattnc -O2; codegen/kernels/attention.c) ---- */\n");
  for (const char *const *l = gat_kernel_attention_text; l != body; l++) sb_append(o, *l);
  for (int v = 0; v < n; v++) {
    const int fe = (int)dims[3 * v + 2];
    sb_printf(o, "\n#define GAT_FA_DK %lld\n#define GAT_FA_DV %lld\n#define GAT_FA_POS %d\n#define GAT_FA_REL %d\n",
              (long long)dims[3 * v], (long long)dims[3 * v + 1], (fe & KERNELS_ATTENTION_POS) != 0,
              (fe & KERNELS_ATTENTION_RELBIAS) != 0);
    sb_printf(o, "#define GAT_FA_NAME(n) n##_%lld_%lld", (long long)dims[3 * v], (long long)dims[3 * v + 1]);
    attn_suffix_features(o, fe);
    sb_append(o, "\n");
    for (const char *const *l = body; *l; l++) sb_append(o, *l);
    sb_append(o, "#undef GAT_FA_DK\n#undef GAT_FA_DV\n#undef GAT_FA_POS\n#undef GAT_FA_REL\n#undef GAT_FA_NAME\n");
  }
  sb_append(o, "/* ---- end of the flash attention kernel ---- */\n\n");
}
