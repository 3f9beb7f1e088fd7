/* kernels_math.h — the f32 elementwise functions that -O2 `f32_math` loop
 * nests call (codegen/kernels/kernels_math.c): their C text, emitted once into
 * NAME.c, and which IR functions they cover. */
#ifndef GATTNC_KERNELS_MATH_H
#define GATTNC_KERNELS_MATH_H

#include "ir.h"
#include "util.h"

/* Appends the functions (static inline, branch-free, plain C11: unused ones
 * cost nothing and the loops calling them vectorize) to sb. */
void kernels_math_emit(StrBuf *sb);

/* The name of the emitted float function computing unary fn, or NULL when
 * there is none (then an f32_math nest cannot use fn). */
const char *kernels_math_unary_f32(IrFn fn);

#endif
