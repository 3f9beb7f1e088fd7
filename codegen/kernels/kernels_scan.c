/* kernels_scan.c — the C backend's side of the chunked linear-attention scan
 * kernels that -O2 code calls for prefill instead of the per-token loop nest of
 * an LK_SCAN kernel marked by pass_chunk (scan_chunk, loopir.h): their source,
 * codegen/kernels/scan.c (the algorithm is described there), pasted once into
 * NAME.c; the calls; and the workspace size the pass reserves. The LLVM backend
 * links the same file's bitcode (emit_llvm_kernels.c). */
#include "kernels_scan.h"

/* codegen/kernels/scan.c, its lines embedded at build time (cmake/gat_embed.c) */
extern const char *const gat_kernel_scan_text[];

int64_t kernels_scan_ws_floats(int kind, int64_t K, int64_t V) {
  const int64_t C = KERNELS_SCAN_CHUNK;
  if (kind == KERNELS_SCAN_GLA) return 8 * C * K + C * C + 2 * K; /* GAT_CS_WS_GLA */
  return 2 * C * K + 5 * C * C + 2 * C * V + 7 * C;                 /* GAT_CS_WS_DELTA */
}

static int scan_any(const PtrVec *ks) {
  for (int i = 0; i < ks->len; i++) {
    const LoopKernel *k = ks->data[i];
    if (k->kind == LK_SCAN && k->scan_chunk) return 1;
    for (int r = 0; r < k->nregions; r++)
      if (scan_any(&k->regions[r]->kernels)) return 1;
  }
  return 0;
}

int kernels_scan_needed(const LoopModule *m) { return scan_any(&m->kernels); }

void kernels_scan_emit(StrBuf *o, const LoopModule *m) {
  if (!kernels_scan_needed(m)) return;
  sb_append(o, "/* ---- chunked linear-attention scans (gattnc -O2; codegen/kernels/scan.c) ---- */\n");
  for (const char *const *l = gat_kernel_scan_text; *l; l++) sb_append(o, *l);
  sb_append(o, "/* ---- end of the chunked scan kernels ---- */\n\n");
}

void kernels_scan_call(StrBuf *o, const LoopKernel *k, const char *T) {
  /* args: [2] q, [3] k, [4] v, [5] gk (GLA) or beta (delta), [6] decay or -1, [7] workspace;
     sizes: [0] H, [1] G, [2] K, [3] V; reals[0] the scale */
  long long H = (long long)k->sizes[0].k, G = (long long)k->sizes[1].k, K = (long long)k->sizes[2].k,
            V = (long long)k->sizes[3].k;
  if (k->scan_chunk == KERNELS_SCAN_GLA)
    sb_printf(o, "gat_chunk_gla(b%d, b%d, b%d, b%d, b%d, b%d, (float *)b%d, %s, %lld, %lld, %lld, (float)%.17g);",
              k->args[2], k->args[3], k->args[4], k->args[5], k->state_bufs[0], k->xs[0], k->args[7], T, H, K,
              V, k->reals[0]);
  else {
    StrBuf dec = {0};
    if (k->args[6] >= 0) sb_printf(&dec, "b%d", k->args[6]);
    else sb_append(&dec, "NULL");
    sb_printf(o, "gat_chunk_delta(b%d, b%d, b%d, b%d, %s, b%d, b%d, (float *)b%d, %s, %lld, %lld, %lld, %lld, (float)%.17g);",
              k->args[2], k->args[3], k->args[4], k->args[5], sb_cstr(&dec), k->state_bufs[0], k->xs[0],
              k->args[7], T, H, G, K, V, k->reals[0]);
    sb_free(&dec);
  }
}
