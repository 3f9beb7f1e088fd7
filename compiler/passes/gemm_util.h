/* gemm_util.h — packed-weight bookkeeping shared by the GEMM passes (gemm.c
 * defines it; scalefold.c, prologue.c and glu.c use it). A LoopPack is keyed
 * by everything that decides its contents (parameter, orientation, folded
 * scales), so two GEMMs share a packed buffer exactly when the packed floats
 * would be equal. */
#ifndef GATTNC_GEMM_UTIL_H
#define GATTNC_GEMM_UTIL_H

#include "pass.h"

/* A key with the neutral scales: scale 1, no scale_param / scale_vec. */
void gemm_pack_key_init(LoopPack *key);
/* The persistent buffer packed by `key` (its param, N, K, sn, sk, scales,
 * vector flag; key->buf ignored), created with its LoopPack when new. */
int gemm_pack_get(LoopModule *m, const LoopPack *key);
/* The LoopPack filling buffer `buf`, or NULL. */
LoopPack *gemm_pack_of_buf(const LoopModule *m, int buf);
/* Drops the packs nobody reads any more (after a pass re-keyed GEMMs); their
 * buffers shrink to nothing. */
void gemm_packs_prune(LoopModule *m);
/* Every LC_GEMM kernel of the module (regions included), in order. */
void gemm_collect(LoopModule *m, PtrVec *out);

#endif
