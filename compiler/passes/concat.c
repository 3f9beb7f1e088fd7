/* concat.c — pass_concat (-O2; off with -fno-concat, -fno-tile or -fno-pack;
 * both backends): GEMMs that read the same activation become one
 * segmented GEMM, as if their weights were concatenated along N.
 *
 * Rewrites: plain packed GEMMs G0, G1, .. of one kernel list (no GLU second
 * weight, no gate, constant N <= CONCAT_MAX_N = 128: where it pays) with the same input A, row scale (pass
 * prologue), M, K and row variable, into G0 with ncat segments
 * (LoopGemmSeg: each G's output, packed weight, bias, residual, activation
 * and N; sizes[1] = the sum of the N). Gi moves up to G0's place, so nothing
 * between G0 and Gi may write Gi's inputs (A, row scale, bias, residual) or
 * read or write Gi's output. M3's beta and decay projections (N = 4 each)
 * are the case in the benchmark models; M1's q/k/v and GLA's q/k/v (N >= 256)
 * stay separate GEMMs (measured: no gain, see CONCAT_MAX_N); one call of gat_gemm_seg_f32 packs each row
 * block of A once for all of them and walks the segments' panels in turn.
 * Runs last among the loop passes, so no other pass meets a segmented GEMM
 * (they only look at k->out; loop_util.c and memplan.c know the segments).
 * Breaks: nothing: each segment is computed by the same tile / row /
 * epilogue code in the same order as its own GEMM (bitwise). The LLVM
 * backend builds the same segmented GEMM (gat_gemm_seg_f32 of codegen/kernels/gemm.c, linked as bitcode). */
#include "fuse_util.h"
#include "gemm_util.h"

static int arg(const LoopKernel *k, int i) { return i < k->nargs ? k->args[i] : -1; }

static int same_size(LoopSize a, LoopSize b) { return a.k == b.k && a.tpow == b.tpow && a.tvar == b.tvar; }

/* Only projections with at most this many outputs join a segmented GEMM: that is where it was
 * measured to pay (one packing of A shared by GEMMs too narrow to amortise their own: 1.2-1.3x for
 * N <= 64, 1.03-1.07x for N = 128); with N = 512 (M1's q/k/v) the segmented call ran as fast as
 * the separate ones, prefill and decode (docs/optimizer.md). */
#define CONCAT_MAX_N 128

static int plain_gemm(const LoopKernel *g) {
  return g->kind == LK_CALL && g->call == LC_GEMM && g->ncat == 0 && g->args[1] >= 0 && arg(g, 7) < 0 &&
         arg(g, 9) < 0 && g->nsizes == 3 && g->sizes[1].tpow == 0 && g->sizes[1].k > 0 &&
         g->sizes[1].k <= CONCAT_MAX_N;
}

static int joinable(const LoopKernel *g, const LoopKernel *h) {
  return plain_gemm(h) && h->args[0] == g->args[0] && arg(h, 6) == arg(g, 6) && h->tvar == g->tvar &&
         same_size(h->sizes[0], g->sizes[0]) && same_size(h->sizes[2], g->sizes[2]);
}

/* h = ks[j] can run at position i (before everything in i+1 .. j-1) */
static int movable(const PtrVec *ks, int i, int j) {
  const LoopKernel *h = ks->data[j];
  int in[4] = {h->args[0], arg(h, 6), h->args[2], arg(h, 3)};
  for (int a = 0; a < 4; a++)
    if (in[a] == h->out) return 0;
  for (int q = i + 1; q < j; q++) {
    const LoopKernel *k = ks->data[q];
    for (int a = 0; a < 4; a++)
      if (in[a] >= 0 && loop_kernel_writes(k, in[a])) return 0;
    if (loop_kernel_writes(k, h->out) || loop_kernel_reads(k, h->out)) return 0;
  }
  return 1;
}

static void seg_of(LoopGemmSeg *s, const LoopKernel *g) {
  s->out = g->out;
  s->w = g->args[1];
  s->bias = g->args[2];
  s->res = arg(g, 3);
  s->act = g->epi_act;
  s->n = g->sizes[1].k;
}

static void concat_list(LoopModule *m, PtrVec *ks) {
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *g = ks->data[i];
    if (!plain_gemm(g)) continue;
    int nseg = 1; /* an upper bound of the segments */
    for (int j = i + 1; j < ks->len; j++)
      if (joinable(g, ks->data[j])) nseg++;
    if (nseg < 2) continue;
    LoopGemmSeg *segs = ARENA_ARRAY(m->arena, LoopGemmSeg, nseg);
    seg_of(&segs[0], g);
    int n = 1;
    int64_t total = g->sizes[1].k;
    for (int j = i + 1; j < ks->len;) {
      LoopKernel *h = ks->data[j];
      /* movable() again: the kernels before j may have moved up already; h must not read a
       * segment's output (a residual q + linear(h)): the segments run side by side */
      int reads_seg = 0;
      for (int q = 0; q < n; q++)
        reads_seg |= h->args[0] == segs[q].out || arg(h, 6) == segs[q].out || h->args[2] == segs[q].out ||
                     arg(h, 3) == segs[q].out;
      if (!reads_seg && joinable(g, h) && movable(ks, i, j)) {
        seg_of(&segs[n++], h);
        total += h->sizes[1].k;
        fuse_remove_at(ks, j);
        continue;
      }
      j++;
    }
    if (n < 2) continue;
    g->ncat = n;
    g->cat = segs;
    g->sizes[1].k = total;
    g->args[1] = g->args[2] = g->args[4] = -1;
    if (g->nargs > 3) g->args[3] = -1;
    g->epi_act = 0;
    g->what = "segmented gemm (pass concat)";
  }
  for (int i = 0; i < ks->len; i++) {
    LoopKernel *k = ks->data[i];
    for (int r = 0; r < k->nregions; r++) concat_list(m, &k->regions[r]->kernels);
  }
}

void pass_concat(LoopModule *m, const PassOptions *o) {
  (void)o;
  concat_list(m, &m->kernels);
}
