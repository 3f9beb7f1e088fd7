/* kernels_attention.h — the flash-style attention kernel of -O2 code
 * (pass_attention), written once in codegen/kernels/attention.c: its emission
 * into generated C (static functions placed in NAME.c, one specialization per
 * (dk, dv, features) variant of the module's LC_ATTENTION calls marked
 * attn_fast, portable C11 with a GCC/Clang vector-extension fast path and a
 * plain-loop fallback), the variants a module needs and their names, which
 * the LLVM backend links by the same names. f32 accumulation, online softmax
 * over key blocks, no T x T buffer. */
#ifndef GATTNC_KERNELS_ATTENTION_H
#define GATTNC_KERNELS_ATTENTION_H

#include "loopir.h"

/* Largest head dims the emitted kernel takes (its tiles live on the stack);
 * pass_attention leaves bigger heads on the reference kernel. */
#define KERNELS_ATTENTION_MAX_D 256
/* Most distinct (dk, dv, features) variants per module (one kernel copy each). */
#define KERNELS_ATTENTION_MAX_VARIANTS 64

/* Features of an LC_ATTENTION call that select a kernel variant (one copy per dims and
 * feature set in use; a module without them emits exactly the plain variant): per-row
 * positions (args[11], gat_attn_args.pos) and a relative-position bias (args[9], relbias). */
#define KERNELS_ATTENTION_POS 1
#define KERNELS_ATTENTION_RELBIAS 2
int kernels_attention_features(const LoopKernel *k);
/* The `part` argument of a variant's entry, gat_flash_attn_DK_DV(&A, part, h0, h1): the whole
 * call, the K/V append alone, or heads [h0, h1) of appended rows (LoopKernel.attn_part; the
 * values of attention.c's GAT_FA_WHOLE, GAT_FA_APPEND, GAT_FA_HEADS). */
#define KERNELS_ATTENTION_WHOLE LOOP_ATTN_WHOLE
#define KERNELS_ATTENTION_APPEND LOOP_ATTN_APPEND
#define KERNELS_ATTENTION_HEADS LOOP_ATTN_HEADS
/* 1 if the module (regions included) has an LC_ATTENTION call marked attn_fast. */
int kernels_attention_needed(const LoopModule *m);
/* The support code and one gat_flash_attn_DK_DV[_p|_r|_pr] per variant in use. */
void kernels_attention_emit(StrBuf *o, const LoopModule *m);
/* The name of the function an attn_fast call `k` calls with its gat_attn_args. */
void kernels_attention_fn_name(StrBuf *o, const LoopKernel *k);

#endif
