/* block.c — pass block (-O2, packed weights, -fno-block): the blocking
 * loops of the GEMMs become loop-IR loops.
 *
 * A packed GEMM call (LC_GEMM, pass_gemm) computes out[M, N]. This pass puts
 * it inside LK_TILE kernels: when N is wider than one column block, a loop
 * over column blocks of BLOCK_N columns, and inside it a loop over row
 * blocks of 768 rows (-fblock-rows); the call becomes the leaf that computes the block
 * its tile variables select (blk_var / blk_len, loopir.h). Inside the leaf
 * the micro-kernel keeps its own K blocks, activation packing and register
 * tiles (codegen/kernels/gemm.c).
 *
 *   k31 linear: tile i0 in 0..1024 step 256 parallel {
 *     k32 linear: tile i1 in 0..1*T step 768 parallel {
 *       k7 linear: b9 = gemm(b8, b20, ...; 1*T, 1024, 256) rows [i1, +768) cols [i0, +256)
 *
 * Every block starts at a multiple of every target's register-tile rows
 * and packed panel width, so each output element is computed by the same
 * tile or row code with the same additions as the unblocked call: the bits
 * do not change (tests/e2e/test_block.py checks it against -fno-block).
 * The blocks are independent (each writes its own rectangle of out and
 * reads only a, the weights and its own rows of the epilogue operands), so
 * the loops are marked parallel. Segmented and gated GEMMs (pass_concat,
 * pass_gate) get row blocks only: their segments' columns are not one
 * range; GEMMs with unpacked weights (per-call packing scratch) stay
 * single calls. GLU products (pass_glu) are blocked like plain GEMMs.
 *
 * The order is BLIS's outermost one: column blocks outside, so a KC x 256
 * slice of the packed weight (256 KB) stays in L2 while all the rows of a
 * row block pass over it; the activations are packed once per column block
 * (1/512 of the multiply-adds). Row blocks outside the K loop would read
 * the whole weight once per row block instead: 96-row blocks measured 9%
 * slower on M1's prefill (512 x 512 x 512 projections, AVX2), so the row
 * blocks are large (768 rows: one block up to T = 768; -fblock-rows=N
 * sets them, a multiple of 96: the tests use 96 to cross blocks at small T).
 *
 * Flash attention (pass_attention's attn_fast calls) becomes the K/V append
 * followed by a loop over heads (attn_part, loopir.h):
 *
 *   k40 attention: b30 = attention(b27, b28, b29, ...) flash append-only
 *   k52 attention: tile i3 in 0..8 step 1 parallel {
 *     k11 attention: b30 = attention(b27, b28, b29, ...) heads [i3, +1) flash
 *
 * Each head runs the same query tiles and key blocks as in the single call
 * (the same bits); heads are independent once every row is appended. */
#include "pass.h"

#define BLOCK_N 256
#define BLOCK_M_DEFAULT (8 * LOOP_BLOCK_M)

static LoopKernel *tile_around(LoopModule *m, LoopKernel *leaf, LoopSize extent, int64_t step, int *var) {
  LoopKernel *t = loop_kernel_new(m, LK_TILE);
  t->origin = leaf->origin, t->file = leaf->file, t->line = leaf->line, t->col = leaf->col;
  t->opname = leaf->opname; /* kernel names (and bench's -O0 rows) follow the layer */
  t->what = leaf->what;
  t->tvar = leaf->tvar;
  t->tile_var = *var = m->ntiles++;
  t->tile_step = step;
  t->tile_par = 1;
  t->nsizes = 1;
  t->sizes[0] = extent;
  t->nregions = 1;
  t->regions = arena_alloc(m->arena, sizeof(LoopRegion *));
  t->regions[0] = loop_region_new(m, leaf->tvar);
  return t;
}

/* the kernel that replaces k in its list: k itself, or the tile loops around it */
static LoopKernel *block_gemm(LoopModule *m, LoopKernel *k, int64_t bm) {
  if (k->kind != LK_CALL || k->call != LC_GEMM || k->nsizes != 3) return k;
  const int seg = k->ncat > 0 || (k->nargs > 9 && k->args[9] >= 0);
  if (!seg && k->args[1] < 0) return k;
  const LoopSize M = k->sizes[0];
  const int64_t N = k->sizes[1].tpow ? -1 : k->sizes[1].k;
  const int rows = M.tpow > 0 || M.k > bm;
  const int cols = !seg && N > BLOCK_N;
  if (!rows && !cols) return k;
  LoopKernel *outer = NULL, *inner = NULL;
  if (cols) {
    outer = inner = tile_around(m, k, (LoopSize){N, 0, k->tvar}, BLOCK_N, &k->blk_var[1]);
    k->blk_len[1] = BLOCK_N;
  }
  if (rows) {
    LoopKernel *t = tile_around(m, k, M, bm, &k->blk_var[0]);
    k->blk_len[0] = bm;
    if (inner)
      ptrvec_push(&inner->regions[0]->kernels, t);
    else
      outer = t;
    inner = t;
  }
  ptrvec_push(&inner->regions[0]->kernels, k);
  return outer;
}

/* A flash attention over H > 1 heads: pushes its append and the loop over heads onto out, or
 * returns 0 (k stays as it is). */
static int block_attention(LoopModule *m, LoopKernel *k, PtrVec *out) {
  if (k->kind != LK_CALL || k->call != LC_ATTENTION || !k->attn_fast || k->attn_part != LOOP_ATTN_WHOLE ||
      k->nsizes < 2 || k->sizes[1].tpow || k->sizes[1].k < 2)
    return 0;
  LoopKernel *app = loop_kernel_new(m, LK_CALL);
  const int id = app->id;
  *app = *k; /* a call's arguments and sizes are inline arrays */
  app->id = id;
  app->attn_part = LOOP_ATTN_APPEND;
  k->attn_part = LOOP_ATTN_HEADS;
  LoopKernel *t = tile_around(m, k, k->sizes[1], 1, &k->blk_var[1]);
  k->blk_len[1] = 1;
  ptrvec_push(&t->regions[0]->kernels, k);
  ptrvec_push(out, app);
  ptrvec_push(out, t);
  return 1;
}

static void block_kernels(LoopModule *m, PtrVec *ks, int64_t bm) {
  PtrVec out = {0};
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = ks->data[i];
    for (int r = 0; r < k->nregions; r++) block_kernels(m, &k->regions[r]->kernels, bm);
    if (!block_attention(m, k, &out)) ptrvec_push(&out, block_gemm(m, k, bm));
  }
  ptrvec_free(ks);
  *ks = out;
}

void pass_block(LoopModule *m, const PassOptions *o) {
  int64_t bm = o->block_rows > 0 && o->block_rows % LOOP_BLOCK_M == 0 ? o->block_rows : BLOCK_M_DEFAULT;
  block_kernels(m, &m->kernels, bm);
}
