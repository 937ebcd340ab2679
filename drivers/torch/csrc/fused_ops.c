/* Fused elementwise CPU kernels for the decoder block: the residual add with RMSNorm,
 * and rotary embedding with the KV-cache store. Each replaces several torch ops (and
 * their dispatch cost, which dominates at small batch) with one pass over the rows.
 * Storage is float32 or bfloat16; rounding to the storage type happens where the
 * reference (transformers) rounds: after the add, after normalizing, after the
 * weight multiply. Rotary math is done in float32 and rounded once.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "storage.h"

/* One row of llmos_add_rms_norm; always inlined so constant dtypes drop their branches. */
static inline __attribute__((always_inline)) void norm_row(void *residual, const void *delta,
                                                           void *out, const void *weight,
                                                           int64_t base, int64_t dim, float eps,
                                                           int dtype, int weight_dtype) {
    float lanes[16] = {0}; /* lane-wise partial sums: a vector reduction, not a serial chain */
    int64_t i = 0;
    for (; i + 16 <= dim; i += 16)
        for (int l = 0; l < 16; l++) {
            float x = get(residual, base + i + l, dtype);
            if (delta != NULL) {
                x = as_stored(x + get(delta, base + i + l, dtype), dtype);
                put(residual, base + i + l, x, dtype);
            }
            lanes[l] += x * x;
        }
    float squares = 0.0f;
    for (; i < dim; i++) {
        float x = get(residual, base + i, dtype);
        if (delta != NULL) {
            x = as_stored(x + get(delta, base + i, dtype), dtype);
            put(residual, base + i, x, dtype);
        }
        squares += x * x;
    }
    for (int l = 0; l < 16; l++) squares += lanes[l];
    const float scale = 1.0f / sqrtf(squares / (float)dim + eps);
    for (i = 0; i < dim; i++) {
        const float normed = as_stored(get(residual, base + i, dtype) * scale, dtype);
        put(out, base + i, get(weight, i, weight_dtype) * normed, dtype);
    }
}

/* For each of `rows` rows of `dim`: if `delta` is given, residual += delta (rounded to the
 * storage type); then out = weight * to_storage(residual * rsqrt(mean(residual^2) + eps)).
 * The weight is float32 or the storage type (`weight_dtype`). */
void llmos_add_rms_norm(void *residual, const void *delta, void *out, const void *weight,
                        int64_t rows, int64_t dim, float eps, int32_t dtype,
                        int32_t weight_dtype, int32_t num_threads) {
#pragma omp parallel for num_threads(num_threads) schedule(static) if (rows > 8)
    for (int64_t r = 0; r < rows; r++) {
        if (dtype == DTYPE_BF16 && weight_dtype == DTYPE_BF16)
            norm_row(residual, delta, out, weight, r * dim, dim, eps, DTYPE_BF16, DTYPE_BF16);
        else if (dtype == DTYPE_F32 && weight_dtype == DTYPE_F32)
            norm_row(residual, delta, out, weight, r * dim, dim, eps, DTYPE_F32, DTYPE_F32);
        else
            norm_row(residual, delta, out, weight, r * dim, dim, eps, dtype, weight_dtype);
    }
}

/* One token of llmos_rope_store; always inlined so a constant dtype vectorizes it. */
static inline __attribute__((always_inline)) void rope_token(
    void *qkv, int64_t t, int32_t heads, int32_t kv_heads, int32_t head_dim,
    const float *cos_row, const float *sin_row, int64_t slot, void *cache, int64_t num_slots,
    int dtype) {
    const int32_t half = head_dim / 2, rotated = heads + kv_heads;
    const int64_t width = (int64_t)(heads + 2 * kv_heads) * head_dim;
    const int64_t element = dtype == DTYPE_BF16 ? 2 : 4;
    for (int32_t h = 0; h < rotated; h++) {
        const int64_t at = t * width + (int64_t)h * head_dim;
        for (int32_t i = 0; i < half; i++) {
            const float x1 = get(qkv, at + i, dtype), x2 = get(qkv, at + half + i, dtype);
            put(qkv, at + i, x1 * cos_row[i] - x2 * sin_row[i], dtype);
            put(qkv, at + half + i, x2 * cos_row[half + i] + x1 * sin_row[half + i], dtype);
        }
    }
    for (int32_t kv = 0; kv < 2; kv++) {
        for (int32_t h = 0; h < kv_heads; h++) {
            const int64_t from = t * width + (int64_t)(heads + kv * kv_heads + h) * head_dim;
            const int64_t to = (((int64_t)kv * kv_heads + h) * num_slots + slot) * head_dim;
            memcpy((char *)cache + to * element, (const char *)qkv + from * element,
                   (size_t)(head_dim * element));
        }
    }
}

/* qkv is [tokens, (heads + 2 * kv_heads) * head_dim]: q heads, then k, then v. Rotate the
 * q and k heads in place (rotate-half layout, cos/sin float32 tables [positions, head_dim]
 * indexed by each token's position), then store k and v of every token into one layer's
 * pool [2, kv_heads, num_slots, head_dim] at the token's slot. */
void llmos_rope_store(void *qkv, int64_t tokens, int32_t heads, int32_t kv_heads,
                      int32_t head_dim, const float *cos_table, const float *sin_table,
                      const int64_t *positions, const int64_t *slots, void *cache,
                      int64_t num_slots, int32_t dtype, int32_t num_threads) {
#pragma omp parallel for num_threads(num_threads) schedule(static) if (tokens > 16)
    for (int64_t t = 0; t < tokens; t++) {
        const float *cos_row = cos_table + positions[t] * head_dim;
        const float *sin_row = sin_table + positions[t] * head_dim;
        if (dtype == DTYPE_BF16)
            rope_token(qkv, t, heads, kv_heads, head_dim, cos_row, sin_row, slots[t], cache,
                       num_slots, DTYPE_BF16);
        else
            rope_token(qkv, t, heads, kv_heads, head_dim, cos_row, sin_row, slots[t], cache,
                       num_slots, DTYPE_F32);
    }
}
