/* gemm_timing.c — old vs new GEMM micro-kernel text, interleaved in one
 * process (bench/gemm_timing.sh builds it): gat_gemm_f32 and gat_gemm_glu_f32
 * on M1's shapes and a few small ones, thread CPU time (the machine is
 * shared), median of the repetitions, plus the worst relative error of each
 * against a double reference written from the definition (bias, row scale,
 * residual, sigmoid/silu epilogues; packed and -fno-pack). Usage:
 * gemm_timing [reps] [check]. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
typedef void (*packf)(float *, const float *, int64_t, int64_t);
typedef void (*gemmf)(float *, const float *, const float *, const float *, float *, const float *, const float *, const float *, int64_t, int64_t, int64_t, int);
typedef void (*gluf)(float *, const float *, const float *, const float *, const float *, const float *, const float *, int64_t, int64_t, int64_t, int);
void old_pack(float *, const float *, int64_t, int64_t);
void old_f32(float *, const float *, const float *, const float *, float *, const float *, const float *, const float *, int64_t, int64_t, int64_t, int);
void old_glu(float *, const float *, const float *, const float *, const float *, const float *, const float *, int64_t, int64_t, int64_t, int);
void new_pack(float *, const float *, int64_t, int64_t);
void new_f32(float *, const float *, const float *, const float *, float *, const float *, const float *, const float *, int64_t, int64_t, int64_t, int);
void new_glu(float *, const float *, const float *, const float *, const float *, const float *, const float *, int64_t, int64_t, int64_t, int);
static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static float *rnd(int64_t n, float s) { float *p = malloc(n * 4); for (int64_t i = 0; i < n; i++) p[i] = s * ((float)rand() / RAND_MAX - 0.5f); return p; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
static double sig(double v) { return 1 / (1 + exp(-v)); }
static double silu(double v) { return v / (1 + exp(-v)); }
/* reference in double */
static double check_gemm(const float *c, const float *a, const float *w, const float *bias, const float *res, const float *rs, int64_t M, int64_t N, int64_t K, int act) {
  double md = 0, mx = 0;
  for (int64_t i = 0; i < M; i++) for (int64_t j = 0; j < N; j++) {
    double s = 0; for (int64_t k = 0; k < K; k++) s += (double)a[i * K + k] * w[j * K + k];
    if (rs) s *= rs[i]; if (bias) s += bias[j]; if (act == 1) s = sig(s); if (act == 2) s = silu(s); if (res) s += res[i * N + j];
    double d = fabs(s - c[i * N + j]); if (d > md) md = d; if (fabs(s) > mx) mx = fabs(s);
  }
  return md / mx;
}
static double check_glu(const float *c, const float *a, const float *w, const float *u, const float *bias, const float *rs, int64_t M, int64_t N, int64_t K) {
  double md = 0, mx = 0;
  for (int64_t i = 0; i < M; i++) for (int64_t j = 0; j < N; j++) {
    double s = 0, t = 0; for (int64_t k = 0; k < K; k++) { s += (double)a[i * K + k] * w[j * K + k]; t += (double)a[i * K + k] * u[j * K + k]; }
    if (rs) { s *= rs[i]; t *= rs[i]; } if (bias) s += bias[j];
    double v = silu(s) * t;
    double d = fabs(v - c[i * N + j]); if (d > md) md = d; if (fabs(v) > mx) mx = fabs(v);
  }
  return md / mx;
}
typedef float pv __attribute__((vector_size(64)));
static __attribute__((noinline, optimize("fp-contract=fast"))) float probe(long n, float s) {
  pv a[12], x = (pv){0} + s; int i; long k;
  for (i = 0; i < 12; i++) a[i] = x * (float)i;
  for (k = 0; k < n; k++) for (i = 0; i < 12; i++) a[i] = a[i] * x + x;
  for (i = 1; i < 12; i++) a[0] += a[i];
  return a[0][0];
}
int main(int argc, char **argv) {
  { double t0 = now(); float s = probe(20000000, 0.999f); printf("probe %.1f GF/s (%g)\n", 20000000.0 * 12 * 32 / (now() - t0) * 1e-9, (double)s); }
  int reps = argc > 1 ? atoi(argv[1]) : 9, check = argc > 2 ? atoi(argv[2]) : 1;
  int64_t shapes[][4] = {{512, 512, 512, 0}, {512, 512, 1408, 0}, {512, 1408, 512, 1}, {1, 512, 512, 0}, {7, 512, 512, 0}, {100, 704, 512, 0}, {37, 12, 40, 0}};
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
    int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2]; int glu = (int)shapes[si][3];
    float *a = rnd(M * K, 2), *w = rnd(N * K, 0.1f), *u = rnd(N * K, 0.1f), *bias = rnd(N, 1), *res = rnd(M * N, 1), *rs = rnd(M, 1);
    for (int64_t i = 0; i < M; i++) rs[i] += 1.5f;
    int64_t np = (N + 31) / 32 * 32 * K;
    float *po = malloc(np * 4), *pn = malloc(np * 4), *puo = malloc(np * 4), *pun = malloc(np * 4), *co = malloc(M * N * 4), *cn = malloc(M * N * 4), *scr = malloc(256 * 32 * 4 * 4);
    old_pack(po, w, N, K); new_pack(pn, w, N, K); old_pack(puo, u, N, K); new_pack(pun, u, N, K);
    double to[64], tn[64];
    for (int r = 0; r < reps; r++) {
      for (int v = 0; v < 2; v++) {
        int nw = (r + v) & 1; float *c = nw ? cn : co; double t0 = now();
        int inner = M < 16 ? 200 : 1;
        for (int q = 0; q < inner; q++) {
        if (glu) (nw ? new_glu : old_glu)(c, a, nw ? pn : po, nw ? pun : puo, bias, NULL, rs, M, N, K, 10 /* silu */);
        else (nw ? new_f32 : old_f32)(c, a, nw ? pn : po, w, scr, bias, NULL, NULL, M, N, K, 0);
        }
        (nw ? tn : to)[r] = (now() - t0) / inner;
      }
    }
    qsort(to, reps, 8, cmpd); qsort(tn, reps, 8, cmpd);
    double fl = 2.0 * M * N * K * (glu ? 2 : 1);
    printf("M=%4ld N=%4ld K=%4ld %s: old %8.3f ms %6.1f GF/s | new %8.3f ms %6.1f GF/s  (x%.2f)\n", (long)M, (long)N, (long)K, glu ? "glu " : "gemm",
           to[reps / 2] * 1e3, fl / to[reps / 2] * 1e-9, tn[reps / 2] * 1e3, fl / tn[reps / 2] * 1e-9, to[reps / 2] / tn[reps / 2]);
    if (check && !glu) {
      /* all epilogue variants, packed and -fno-pack */
      for (int var = 0; var < 4; var++) {
        const float *bb = var & 1 ? bias : NULL; const float *rr = var & 2 ? res : NULL; const float *ss = var >= 2 ? rs : NULL;
        int act = var == 3 ? 8 : 0; int ract = var == 3 ? 1 : 0;
        new_f32(cn, a, pn, w, scr, bb, rr, ss, M, N, K, act);
        double e1 = check_gemm(cn, a, w, bb, rr, ss, M, N, K, ract);
        old_f32(co, a, po, w, scr, bb, rr, ss, M, N, K, act);
        double e0 = check_gemm(co, a, w, bb, rr, ss, M, N, K, ract);
        new_f32(cn, a, NULL, w, scr, bb, rr, ss, M, N, K, act);
        double e2 = check_gemm(cn, a, w, bb, rr, ss, M, N, K, ract);
        printf("   var %d err old %.2e new %.2e new-nopack %.2e%s\n", var, e0, e1, e2, e1 > 1e-5 || e2 > 1e-5 ? "  BAD" : "");
      }
    }
    if (check && glu) {
      double e0 = check_glu(co, a, w, u, bias, rs, M, N, K), e1 = check_glu(cn, a, w, u, bias, rs, M, N, K);
      printf("   glu err old %.2e new %.2e%s  bitwise-equal-to-old %d\n", e0, e1, e1 > 1e-5 ? " BAD" : "", !memcmp(co, cn, M * N * 4));
    }
    free(a); free(w); free(u); free(bias); free(res); free(rs); free(po); free(pn); free(puo); free(pun); free(co); free(cn); free(scr);
  }
  return 0;
}
