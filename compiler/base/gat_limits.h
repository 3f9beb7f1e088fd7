/* gat_limits.h — the sizes gattnc accepts (docs/language.md, "Limits"), and the
 * checked arithmetic that keeps every size computation below them exact.
 *
 * The limits are chosen so that nothing derived from an accepted model can
 * overflow int64: a dimension fits in 31 bits, a tensor holds at most 2^40
 * elements (2^42 bytes) at max T, and the arena of generated code stays below
 * 2^48 bytes, so offsets and byte counts in the compiler, the generated C and
 * the runtime are exact. Exceeding one is a user error naming the limit,
 * never a wrapped size. */
#ifndef GATTNC_GAT_LIMITS_H
#define GATTNC_GAT_LIMITS_H

#include <stdint.h>

#define GAT_LIMIT_MAX_T ((int64_t)INT32_MAX)          /* `max T` and --max-seq */
#define GAT_LIMIT_DIM ((int64_t)INT32_MAX)            /* one dimension of a tensor */
#define GAT_LIMIT_NUMEL ((int64_t)1 << 40)            /* elements of one tensor, T = max T */
#define GAT_LIMIT_PARAM_NUMEL ((int64_t)1 << 40)      /* elements of all parameters together */
#define GAT_LIMIT_ARENA_BYTES ((int64_t)1 << 48)      /* NAME_ARENA_BYTES of generated code */
#define GAT_LIMIT_EXPERTS 4096                        /* experts of one mixture */
#define GAT_LIMIT_REPEAT 65536                        /* iterations of one repeat */
#define GAT_LIMIT_SOURCE_BYTES ((int64_t)1 << 28)     /* a .gat or .ir file (256 MiB) */

/* a * b and a + b for sizes (non-negative): INT64_MAX when the exact result
 * does not fit, so a saturated size always fails the limit check after it. */
static inline int64_t gat_size_mul(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}
static inline int64_t gat_size_add(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;
}

#endif
