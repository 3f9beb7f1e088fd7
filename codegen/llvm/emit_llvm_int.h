/* emit_llvm_int.h — state and helpers shared by the files of the LLVM
 * backend (emit_llvm*.c); not for other modules.
 *
 * The module mirrors NAME.c: a per-call context struct (model pointer, arena
 * base, T, row counts of regions, input/output pointers), one internal
 * function `i32 kernel(ctx*)` per loop-IR kernel, the runtime's inline
 * scalar helpers as internal functions, and the exported entry points. */
#ifndef GATTNC_EMIT_LLVM_INT_H
#define GATTNC_EMIT_LLVM_INT_H

#include "emit_llvm.h"

typedef struct LL {
  const LoopModule *m;
  LLVMContextRef C;
  LLVMModuleRef M;
  LLVMBuilderRef B;
  LLVMTargetDataRef td;
  /* types */
  LLVMTypeRef tv, ti1, ti8, ti32, ti64, tf32, tf64, tp8, tpf32, tpi32, tpf64, tpi64;
  LLVMTypeRef t_err, t_model, t_pmodel, t_ctx, t_pctx, t_spec, t_attn, t_kern;
  /* exported tables (NAME_params, ...) */
  LLVMValueRef g_params, g_inputs, g_outputs;
  /* current function */
  LLVMValueRef fn, ctx;
  const LoopKernel *kern; /* the kernel being defined (its lets) */
  int f32;                /* expressions in float (an f32_math kernel), else double */
  LLVMValueRef *letv;     /* values of the current kernel's lets computed at their level, or NULL */
  LLVMValueRef *bufp;   /* typed pointer of each buffer used by the current kernel */
  LLVMValueRef vars[64]; /* loop variables (i64) by number */
  /* -O2 LK_LOOP kernels: the output buffer is "restrict" as in the C backend's _nest helpers,
     told to LLVM by scoped alias metadata (stores: alias.scope, loads of other buffers: noalias) */
  int restrict_out;     /* the kernel's out buffer, or -1 */
  /* red_outer (pass_interchange): the reduction summed into acc[v_j] (red_acc_p) before the store loop */
  const LoopExpr *red_acc;
  LLVMValueRef red_acc_p;
  int red_acc_var;
  LLVMValueRef md_scope, md_noalias;
  LLVMValueRef *kfn;    /* kernel functions by LoopKernel id */
  int nkfn;
  int vl;               /* the widest float vectors of the target (floats): kernel variants */
  int failed;
  char *err;
  size_t errlen;
} LL;

/* ---- emit_llvm.c: basics, expressions, loop and call kernels ---- */
void ll_fail(LL *L, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
LLVMValueRef ll_i64(LL *L, int64_t v);
LLVMValueRef ll_i32(LL *L, int32_t v);
LLVMValueRef ll_f64(LL *L, double v);
/* An external or internal function by name, declared with type fty if new. */
LLVMValueRef ll_func(LL *L, const char *name, LLVMTypeRef fty);
LLVMValueRef ll_call(LL *L, const char *name, LLVMTypeRef ret, LLVMTypeRef *args, int nargs, LLVMValueRef *vals);
/* A private constant C string; returns an i8* to it. */
LLVMValueRef ll_cstr(LL *L, const char *s);
/* alloca in the entry block of the current function */
LLVMValueRef ll_alloca(LL *L, LLVMTypeRef t, const char *name);
LLVMBasicBlockRef ll_block(LL *L, const char *name);

/* Counted loop 0 <= iv < n (i64), built as head/body/exit blocks; ll_loop_range: for (iv = from;
 * iv < to; iv += step). iv (the head's phi) stays usable after the loop. */
typedef struct LLLoop {
  LLVMBasicBlockRef head, exit;
  LLVMValueRef iv;
  int64_t step;
  int no_unroll; /* set between begin and end: the loop gets llvm.loop.unroll.disable */
} LLLoop;
void ll_loop_begin(LL *L, LLLoop *lp, LLVMValueRef n, const char *name);
void ll_loop_range(LL *L, LLLoop *lp, LLVMValueRef from, LLVMValueRef to, int64_t step, const char *name);
void ll_loop_end(LL *L, LLLoop *lp);
LLVMModuleRef ll_verify_optimize(LLVMModuleRef M, LLVMTargetMachineRef tm, const char *pipeline, int unroll,
                                 const char *what, char *err, size_t errlen);

LLVMValueRef ll_tvar(LL *L, int tvar);                     /* T or rows[tvar] as i64 */
LLVMValueRef ll_size(LL *L, LoopSize s);
LLVMValueRef ll_tile_ptr(LL *L, int v);                   /* &c->tile[v] (LK_TILE, pass block) */                   /* k * T^tpow as i64 */
LLVMValueRef ll_buf_elems_from(LL *L, const LoopBuf *b, int from);
LLVMTypeRef ll_buf_elt(LL *L, const LoopBuf *b);           /* float / i32 / double */
LLVMValueRef ll_gep(LL *L, LLVMTypeRef elt, LLVMValueRef p, LLVMValueRef i);
/* memcpy/memmove/memset of n elements of buffer b's element type */
void ll_memcpy(LL *L, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef nbytes, int move);
/* Vector helpers of the hand-built kernels (flash attention, chunked scans): tv is a float
 * vector type; loads and stores are unaligned (align 4); fma calls llvm.fma (rounded once). */
LLVMValueRef ll_vload(LL *L, LLVMTypeRef tv, LLVMValueRef p);
void ll_vstore(LL *L, LLVMValueRef v, LLVMValueRef p);
LLVMValueRef ll_vsplat(LL *L, LLVMTypeRef tv, LLVMValueRef x);
LLVMValueRef ll_vfma(LL *L, LLVMTypeRef tv, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c);
LLVMValueRef ll_fma_f32(LL *L, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c);
LLVMValueRef ll_smin(LL *L, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef ll_bytes(LL *L, const LoopBuf *b, LLVMValueRef nelems);
LLVMValueRef ll_model(LL *L);                             /* c->m */
LLVMValueRef ll_model_field(LL *L, LLVMValueRef model, int field); /* pointer to a model field */
LLVMValueRef ll_pos(LL *L);                               /* c->m->pos (i64) */
/* gat_error_set(&c->m->err, status, fmt, i64 args...) and return it from the current function */
void ll_error_return(LL *L, LLVMValueRef model, int status, const char *fmt, LLVMValueRef *args, int nargs);
/* text with '%' doubled (for names inside a printf format) */
void ll_fmt_text(StrBuf *o, const char *s);
void ll_where_text(StrBuf *o, const LoopKernel *k);

/* Computes L->bufp for every buffer kernel k touches (at the current point). */
void ll_kernel_bufs(LL *L, const LoopKernel *k);
void ll_emit_loop_kernel(LL *L, const LoopKernel *k);
void ll_emit_call_kernel(LL *L, const LoopKernel *k);
/* helpers of the runtime header rebuilt in IR: gat_sigmoid etc. */
LLVMValueRef ll_unary(LL *L, IrFn fn, LLVMValueRef a);
LLVMValueRef ll_to_i32(LL *L, LLVMValueRef d);            /* gat_to_i32 */

/* ---- emit_llvm_ctl.c: scan / mixture / skip and the kernel functions ---- */
void ll_emit_kernels(LL *L, const PtrVec *ks); /* declares and defines every kernel function */
void ll_call_kernel(LL *L, const LoopKernel *k); /* if ((st = k(c)) != 0) return st; */


/* ---- emit_llvm_kernels.c: the kernels of codegen/kernels/, linked as bitcode ---- */
/* f32_math: fn of a float value with the float functions of codegen/kernels/vecmath.c
   (vectorizable, no libm); NULL for functions without a float form */
LLVMValueRef ll_unary_f32(LL *L, IrFn fn, LLVMValueRef a);
/* the GEMM of codegen/kernels/gemm.c (LC_GEMM): 1 if its epilogue has the loop IR's epi_act */
int ll_gemm_act_ok(int epi_act);
/* gat_gemm_seg_f32 (pass_concat / pass_gate): nseg segments, ptrs[5 s ..] = i8* c, packed W, bias, residual,
   gate y (NULL: none) of segment s, n[s] its columns, epi_act[s] its epilogue; a, rs i8*, M, K i64;
   rows[0] NULL, or rows [rows[0], rows[1]) only (gat_gemm_seg_f32_blk, pass block) */
void ll_gemm_seg_call(LL *L, int nseg, LLVMValueRef *ptrs, const int64_t *n, const int *epi_act, LLVMValueRef a,
                      LLVMValueRef rs, LLVMValueRef M, LLVMValueRef K, const LLVMValueRef *rows);
/* the call of the chunked scan kernel of codegen/kernels/scan.c (gat_chunk_gla / gat_chunk_delta) of an
   LK_SCAN kernel k with a scan_chunk hint on T rows; ptr: q, k, v, gk or beta, decay (or NULL), S, o,
   workspace */
void ll_scan_chunk_call(LL *L, const LoopKernel *k, LLVMValueRef T, LLVMValueRef *ptr);
/* calls the flash attention kernel of codegen/kernels/attention.c for attn_fast calls with head dims dk, dv
   and features fe (kernels_attention_features) on the gat_attn_args at `args` (i8*); ll_link_kernels links
   that variant */
void ll_flash_attn_call(LL *L, int64_t dk, int64_t dv, int fe, LLVMValueRef args, int part, const LLVMValueRef *heads);
/* links the kernels the module calls into it, internal (vecmath always-inline); before optimizing */
void ll_link_kernels(LL *L);

/* ---- emit_llvm_knobs.c: run-time skip thresholds / route capacities (codegen/c/emit_knobs.h) ---- */
/* &model->skip_tau[i] (cap 0) or &model->skip_cap[i] (cap 1), double*; only when emit_knobs_n > 0 */
LLVMValueRef ll_knob_ptr(LL *L, LLVMValueRef model, int cap, LLVMValueRef i);
void ll_knobs_init(LL *L, LLVMValueRef model); /* the compile-time values, stored by init */
void ll_emit_knobs(LL *L);                     /* NAME_skip_ops ... NAME_set_route_capacity */

/* ---- emit_llvm_count.c: --count counters and --profile timing (codegen/c/emit_count.h) ---- */
int ll_knob_field(const LL *L);     /* index of skip_tau in the model struct (skip_cap follows) */
LLVMTypeRef ll_count_type(LL *L);   /* uint64_t count[NAME_COUNT_SLOTS]: model field 5 of a --count build */
void ll_count_add(LL *L, int slot, LLVMValueRef v); /* c->m->count[slot] += v (i64); nothing for slot < 0 */
void ll_emit_count(LL *L);          /* NAME_count_* (nothing unless m->count) */
void ll_emit_profile(LL *L);        /* NAME_prof_* globals and NAME_profile_* (nothing unless m->profile) */
LLVMValueRef ll_profile_begin(LL *L); /* t0 = gat_time_ns(), or NULL without --profile */
void ll_profile_end(LL *L, int i, LLVMValueRef t0); /* prof_ns[i] += gat_time_ns() - t0; prof_calls[i]++ */

/* ---- emit_llvm_api.c ---- */
void ll_build_types(LL *L);
void ll_emit_api(LL *L);

#endif
