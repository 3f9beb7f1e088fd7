/* attention.c — pass_attention (-O2; off with -fno-tile): attention calls
 * switch from the runtime's reference kernel gat_k_attention (double
 * accumulation, a score row per query) to the emitted flash-style kernel
 * (codegen/kernels/attention.c: f32, tiles of queries x blocks of keys,
 * online softmax, no T x T buffer), by setting LoopKernel.attn_fast.
 *
 * Rewrites: LK_CALL LC_ATTENTION kernels whose features the flash kernel has:
 * causal softmax over the KV cache, GQA, sliding window, scale, the qb/kb
 * biases (forgetting attention), KV-cache append; head dims constant and at
 * most KERNELS_ATTENTION_MAX_D; a relative-position bias (args[9], attr
 * relbias, sizes[6] its constant length) and per-row positions (args[11], a
 * `kv: previous` region; args[10] then -1), each through a kernel variant of
 * its own (kernels_attention_features). Anything else stays on the reference
 * kernel: any argument or size slot beyond the ones listed in loopir.h /
 * loopir_lower.c when this pass was written (nargs > 12, args[10] set (a
 * skip/route region's packed rows), nsizes > 7, reals[1..3] set), so that a
 * feature added to the op later is never silently dropped. Needs: the plain
 * lowering. Breaks: exact -O0 rounding (f32 accumulation and a polynomial
 * exp, ~1e-6 relative). */
#include "kernels_attention.h"
#include "pass.h"

static int attn_size_const(const LoopSize *s) { return s->tpow == 0; }

static int attn_supported(const LoopKernel *k) {
  if (k->kind != LK_CALL || k->call != LC_ATTENTION) return 0;
  if (k->nargs > 12 || k->nsizes < 6 || k->nsizes > 7) return 0;
  if (k->nargs > 10 && k->args[10] >= 0) return 0; /* packed rows of a skip/route region */
  if (k->nargs > 9 && k->args[9] >= 0 && k->nsizes < 7) return 0; /* relbias without its length */
  if (k->reals[1] != 0 || k->reals[2] != 0 || k->reals[3] != 0) return 0; /* only reals[0] = scale known */
  if (k->nsizes > 6 && !attn_size_const(&k->sizes[6])) return 0;
  if (k->nsizes > 6 && (k->nargs > 9 && k->args[9] >= 0 ? k->sizes[6].k < 1 : k->sizes[6].k != 0)) return 0;
  for (int i = 1; i <= 5; i++)
    if (!attn_size_const(&k->sizes[i])) return 0;
  int64_t H = k->sizes[1].k, Hkv = k->sizes[2].k, dk = k->sizes[3].k, dv = k->sizes[4].k;
  if (H < 1 || Hkv < 1 || H % Hkv != 0 || k->sizes[5].k < 0) return 0;
  return dk >= 1 && dv >= 1 && dk <= KERNELS_ATTENTION_MAX_D && dv <= KERNELS_ATTENTION_MAX_D;
}

typedef struct AttnCtx {
  int64_t dims[3 * KERNELS_ATTENTION_MAX_VARIANTS];
  int n;
} AttnCtx;

static void attention_kernel(LoopModule *m, LoopKernel *k, void *vctx) {
  (void)m;
  AttnCtx *c = vctx;
  if (!attn_supported(k)) return;
  int64_t dk = k->sizes[3].k, dv = k->sizes[4].k, fe = kernels_attention_features(k);
  int seen = 0;
  for (int i = 0; i < c->n; i++) seen |= c->dims[3 * i] == dk && c->dims[3 * i + 1] == dv && c->dims[3 * i + 2] == fe;
  if (!seen) {
    if (c->n == KERNELS_ATTENTION_MAX_VARIANTS) return; /* one kernel copy per variant: enough of them */
    c->dims[3 * c->n] = dk;
    c->dims[3 * c->n + 1] = dv;
    c->dims[3 * c->n + 2] = fe;
    c->n++;
  }
  k->attn_fast = 1;
}

void pass_attention(LoopModule *m, const PassOptions *o) {
  (void)o;
  AttnCtx c;
  c.n = 0;
  loop_walk_kernels(m, attention_kernel, &c);
}
