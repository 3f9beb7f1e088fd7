/* kernels_gemm.c — the C backend's side of the GEMM micro-kernel of -O2 code
 * (LC_GEMM): its source, codegen/kernels/gemm.c (the algorithm, blocking and
 * layout are described there), pasted once into NAME.c after a block that
 * fixes the vector width and register rows for --target; the calls of its
 * segmented form; and which epilogue activations it has, with their numbers.
 * The LLVM backend links the same file's bitcode (emit_llvm_kernels.c). */
#include "kernels_gemm.h"

#include <string.h>

/* codegen/kernels/gemm.c, its lines embedded at build time (cmake/gat_embed.c) */
extern const char *const gat_kernel_gemm_text[];

/* the epilogue activations in the order of gemm.c's GAT_ACT_* (GAT_ACT_NONE = 0) */
static const IrFn gemm_acts[] = {IR_FN_SILU, IR_FN_GELU_ERF, IR_FN_GELU_TANH, IR_FN_RELU, IR_FN_SIGMOID, IR_FN_TANH};

int kernels_gemm_act_ok(IrFn fn) { return kernels_gemm_act_code(1 + (int)fn) > 0; }

int kernels_gemm_act_code(int epi_act) {
  if (epi_act == 0) return 0;
  for (size_t i = 0; i < sizeof gemm_acts / sizeof gemm_acts[0]; i++)
    if (epi_act == 1 + (int)gemm_acts[i]) return 1 + (int)i;
  return -1;
}

/* The vector width and register block per --target (LoopTarget). */
static const char *gemm_text_target[] = {
    /* LT_NATIVE: gemm.c decides from the compiler's target macros */
    "",
    /* LT_PORTABLE */
    "/* --target=portable: plain C11 loops, no vector extensions */\n"
    "#define GAT_PORTABLE 1\n"
    "#define GAT_VL 4\n"
    "#define GAT_MR 4\n",
    /* LT_X86_64 */
    "/* --target=x86-64: SSE2 (every x86-64 CPU), 128-bit vectors */\n"
    "#if !defined(__x86_64__) && !defined(_M_X64)\n"
    "#error \"generated with gattnc --target=x86-64: compile for x86-64 (or regenerate with --target=portable)\"\n"
    "#endif\n"
    "#define GAT_VL 4\n"
    "#define GAT_MR 6\n",
    /* LT_AVX2 */
    "/* --target=avx2: AVX2 + FMA (x86-64-v3), 256-bit vectors */\n"
    "#if !defined(__AVX2__) || !defined(__FMA__)\n"
    "#error \"generated with gattnc --target=avx2: compile with -march=x86-64-v3 (or -mavx2 -mfma), or regenerate with another --target\"\n"
    "#endif\n"
    "#define GAT_VL 8\n"
    "#define GAT_MR 6\n",
    /* LT_AVX512 */
    "/* --target=avx512: AVX-512F, 512-bit vectors */\n"
    "#if !defined(__AVX512F__)\n"
    "#error \"generated with gattnc --target=avx512: compile with -march=skylake-avx512 (or -mavx512f), or regenerate with another --target\"\n"
    "#endif\n"
    "#define GAT_VL 16\n"
    "#define GAT_MR 12\n",
};

static void seg_ptr(StrBuf *o, int b) {
  if (b >= 0)
    sb_printf(o, "b%d", b);
  else
    sb_append(o, "NULL");
}

void kernels_gemm_seg_call(StrBuf *o, const LoopKernel *k, const char *M, const char *K, const char *rows) {
  const int n = k->ncat > 0 ? k->ncat : 1;
  sb_printf(o, "{\n    const gat_gemm_seg sg_[%d] = {", n);
  for (int s = 0; s < n; s++) {
    LoopGemmSeg g;
    if (k->ncat > 0) {
      g = k->cat[s];
    } else { /* a gated GEMM (pass_gate): one segment */
      g.out = k->out, g.w = k->args[1], g.bias = k->args[2], g.res = k->args[3], g.act = k->epi_act;
      g.n = k->sizes[1].k;
    }
    sb_printf(o, "%s{b%d, b%d, ", s ? ", " : "", g.out, g.w);
    seg_ptr(o, g.bias);
    sb_append(o, ", ");
    seg_ptr(o, g.res);
    sb_append(o, ", ");
    seg_ptr(o, k->ncat > 0 ? -1 : k->args[9]);
    sb_printf(o, ", %lld, %d}", (long long)g.n, kernels_gemm_act_code(g.act));
  }
  sb_printf(o, "};\n    gat_gemm_seg_f32%s(b%d, ", rows ? "_blk" : "", k->args[0]);
  seg_ptr(o, k->nargs > 6 ? k->args[6] : -1);
  sb_printf(o, ", %s, %s, sg_, %d%s%s);\n  }\n", M, K, n, rows ? ", " : "", rows ? rows : "");
}

void kernels_gemm_emit(StrBuf *o) { kernels_gemm_emit_target(o, LT_NATIVE); }

void kernels_gemm_emit_target(StrBuf *o, int target) {
  if (target < LT_NATIVE || target > LT_AVX512) target = LT_NATIVE;
  sb_append(o, "/* ---- GEMM micro-kernel (gattnc -O2; codegen/kernels/gemm.c) ---- */\n");
  sb_append(o, gemm_text_target[target]);
  for (const char *const *l = gat_kernel_gemm_text; *l; l++) sb_append(o, *l);
  sb_append(o, "/* ---- end of the GEMM micro-kernel ---- */\n\n");
}
