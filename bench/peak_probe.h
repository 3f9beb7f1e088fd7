/* peak_probe.h — the single-core FMA peak probe of `gattnc bench` and
 * bench/run.py: independent multiply-add chains on vectors of the target's
 * native width, all in registers, so the loop runs at the FMA units' rate.
 *
 * The chain count has to cover the FMA latency times the units (4 cycles x 2
 * on current x86 cores: 8 chains) while the chains plus the multiplier fit in
 * the register file: 12 of 32 zmm on AVX-512, 10 of 16 ymm on AVX/AVX2, 8 of
 * 16 xmm otherwise. (12 chains of 512-bit vectors on an AVX2 target need 24
 * ymm registers and spill, which measured 7.7 instead of ~100 GFLOP/s.)
 * Built with the flags of the code it is compared with (-march), so "% of
 * peak" is against the peak of that instruction set. Without FMA (plain
 * x86-64) a * x + x is a multiply and an add: still 2 flops per lane.
 *
 * GNU C (vector extensions); other compilers get no probe. */
#if defined(__GNUC__) || defined(__clang__)
#if defined(__AVX512F__)
#define GAT_PEAK_BYTES 64
#define GAT_PEAK_CHAINS 12
#elif defined(__AVX__)
#define GAT_PEAK_BYTES 32
#define GAT_PEAK_CHAINS 10
#else
#define GAT_PEAK_BYTES 16
#define GAT_PEAK_CHAINS 8
#endif
/* flops of one iteration of the probe's outer loop */
#define GAT_PEAK_FLOPS_PER_ITER (GAT_PEAK_CHAINS * (GAT_PEAK_BYTES / 4) * 2)
typedef float gat_peak_v __attribute__((vector_size(GAT_PEAK_BYTES)));
/* gcc contracts a * x + x into an FMA only when told; clang does by default */
#if defined(__clang__)
/* clang splits 512-bit vectors in two for skylake-avx512 (it prefers 256-bit)
 * unless the function asks for them */
#define GAT_PEAK_ATTR __attribute__((noinline, min_vector_width(GAT_PEAK_BYTES * 8)))
#else
#define GAT_PEAK_ATTR __attribute__((noinline, optimize("fp-contract=fast")))
#endif
/* the probe writes its result here: a function that writes memory cannot be
 * moved across the clock reads around it or called once for several timings */
static volatile float gat_peak_sink;
/* ... and reads its multiplier back from here: with a constant one gcc folded
 * a chain away (constant propagation into the noinline function) */
static volatile float gat_peak_in;
static GAT_PEAK_ATTR float gat_peak_probe(long n, float s) {
  gat_peak_in = s;
  gat_peak_v a[GAT_PEAK_CHAINS], x = (gat_peak_v){0} + gat_peak_in;
  int i, j;
  long k;
  /* different in every lane: a splat would be computed as one scalar (clang did) */
  for (i = 0; i < GAT_PEAK_CHAINS; i++)
    for (j = 0; j < GAT_PEAK_BYTES / 4; j++) a[i][j] = gat_peak_in * (float)(i * 64 + j);
  for (k = 0; k < n; k++)
    for (i = 0; i < GAT_PEAK_CHAINS; i++) a[i] = a[i] * x + x;
  for (i = 1; i < GAT_PEAK_CHAINS; i++) a[0] += a[i];
  float r = 0.0f; /* every lane, or a compiler computes lane 0 alone */
  for (j = 0; j < GAT_PEAK_BYTES / 4; j++) r += a[0][j];
  gat_peak_sink = r;
  return r;
}
#define GAT_HAVE_PEAK_PROBE 1
#endif
