/* Element access for float32 and bfloat16 storage, shared by the native kernels.
 * Arithmetic is float32; bfloat16 rounds to nearest, ties to even, as torch does.
 * All branch-free on the value, so loops over them vectorize. */
#ifndef LLMOS_STORAGE_H
#define LLMOS_STORAGE_H

#include <stdint.h>
#include <string.h>

enum { DTYPE_F32 = 0, DTYPE_BF16 = 1 };

static inline float bf16_to_f32(uint16_t x) {
    uint32_t bits = (uint32_t)x << 16;
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

/* The nearest bfloat16, as its 16 bits; NaN stays (quiet) NaN. */
static inline uint16_t f32_to_bf16(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const uint32_t rounded = bits + 0x7fffu + ((bits >> 16) & 1u);
    const uint32_t quiet = bits | 0x00400000u;
    return (uint16_t)(((bits & 0x7fffffffu) > 0x7f800000u ? quiet : rounded) >> 16);
}

/* The value as bfloat16 storage would hold it, kept as a float. */
static inline float round_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

/* Element i of float32 or bfloat16 storage, as a float. */
static inline float get(const void *base, int64_t i, int dtype) {
    return dtype == DTYPE_BF16 ? bf16_to_f32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

/* Store x as element i, rounded to the storage type. */
static inline void put(void *base, int64_t i, float x, int dtype) {
    if (dtype == DTYPE_BF16)
        ((uint16_t *)base)[i] = f32_to_bf16(x);
    else
        ((float *)base)[i] = x;
}

/* The value as the storage type would hold it (a no-op for float32). */
static inline float as_stored(float x, int dtype) { return dtype == DTYPE_BF16 ? round_bf16(x) : x; }

#endif
