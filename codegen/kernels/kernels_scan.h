/* kernels_scan.h — the chunked linear-attention scan kernels of -O2 code
 * (pass_chunk), written once in codegen/kernels/scan.c: gat_chunk_gla (GLA:
 * per-key decays) and gat_chunk_delta (the delta rule, with or without a
 * scalar decay per token), both f32, in chunks of KERNELS_SCAN_CHUNK tokens
 * with the intra-chunk terms as small matrix products, called when some LK_SCAN
 * kernel carries the scan_chunk hint (loopir.h). Here: their emission into
 * generated C, the call statements, the workspace size. docs/optimizer.md,
 * "Chunked scans", has the math. */
#ifndef GATTNC_KERNELS_SCAN_H
#define GATTNC_KERNELS_SCAN_H

#include "loopir.h"

/* Tokens per chunk (GAT_CS_C in scan.c; the workspace formulas depend on it). */
#define KERNELS_SCAN_CHUNK 64
/* Prefill calls with at least this many rows take the chunked kernel; fewer
 * (decode, short steps) run the per-token loop nest. */
#define KERNELS_SCAN_MIN_T 32

/* scan_chunk values (LoopKernel.scan_chunk) */
#define KERNELS_SCAN_GLA 1
#define KERNELS_SCAN_DELTA 2

/* Floats of f32 workspace a call needs (the scratch buffer args[7] of the hinted LK_SCAN). */
int64_t kernels_scan_ws_floats(int kind, int64_t K, int64_t V);
/* 1 if the module (regions included) has an LK_SCAN kernel with a scan_chunk hint. */
int kernels_scan_needed(const LoopModule *m);
/* The kernels' text (scan.c), once, if kernels_scan_needed. */
void kernels_scan_emit(StrBuf *o, const LoopModule *m);
/* The call statement of a hinted scan kernel k (no indentation, no newline), with the
 * row count given as the C expression T: `gat_chunk_gla(b.., ..., T, H, K, V, scale);`. */
void kernels_scan_call(StrBuf *o, const LoopKernel *k, const char *T);

#endif
