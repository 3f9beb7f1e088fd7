/* kernels_attention.h — emission of the flash-style attention kernel into
 * generated C (-O2, pass_attention). Like the GEMM micro-kernel
 * (kernels_gemm.h) the kernel is text: static functions placed in NAME.c,
 * one specialization per (dk, dv) pair of the module's LC_ATTENTION calls
 * marked attn_fast, portable C11 with a GCC/Clang vector-extension fast path
 * (width from __AVX512F__ / __AVX__, else 128 bits) and a plain-loop
 * fallback. f32 accumulation, online softmax over key blocks, no T x T
 * buffer. */
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
/* 1 if the module (regions included) has an LC_ATTENTION call marked attn_fast. */
int kernels_attention_needed(const LoopModule *m);
/* The support code and one gat_flash_attn_DK_DV per head-dim pair in use. */
void kernels_attention_emit(StrBuf *o, const LoopModule *m);
/* The name of the function an attn_fast call `k` calls with its gat_attn_args. */
void kernels_attention_fn_name(StrBuf *o, const LoopKernel *k);

#endif
