/* Paged decode attention for the CPU: one query token per process, keys and
 * values read in place from the page pool through each process's block table.
 *
 * The pool of one layer is [2, kv_heads, num_slots, head_dim] (K then V),
 * slot = frame * page_size + offset. Work is split over (process, kv head)
 * pairs; each pair converts a page of K (then V) into a small float buffer,
 * scores its query heads against it, and accumulates the softmax-weighted V,
 * all in float32. Storage is float32 or bfloat16 (round to nearest even).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage.h"

/* Convert n floats' worth of storage at element offset `at` into dst. */
static void load(float *restrict dst, const void *src, int64_t at, int64_t n, int dtype) {
    if (dtype == DTYPE_BF16) {
        const uint16_t *s = (const uint16_t *)src + at;
        for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
    } else {
        memcpy(dst, (const float *)src + at, (size_t)n * sizeof(float));
    }
}

static void store(void *dst, int64_t at, const float *restrict src, int64_t n, int dtype) {
    if (dtype == DTYPE_BF16) {
        uint16_t *d = (uint16_t *)dst + at;
        for (int64_t i = 0; i < n; i++) d[i] = f32_to_bf16(src[i]);
    } else {
        memcpy((float *)dst + at, src, (size_t)n * sizeof(float));
    }
}

/* 16 floats, in whatever SIMD registers the target has (GCC/Clang vector extension). */
typedef float vf16 __attribute__((vector_size(64)));

static inline vf16 vload(const float *p) {
    vf16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vstore(float *p, vf16 v) { memcpy(p, &v, sizeof v); }

enum { MAX_VECTORS = 8 }; /* head_dim up to 128 stays in registers */
#define VECTOR_DIM(d) ((d) % 16 == 0 && (d) <= 16 * MAX_VECTORS)

/* Pairwise transpose-and-add: with rows' partial sums spread over lanes, each step
 * halves the vectors and doubles the rows one vector holds; after four steps lane t
 * holds row t's whole sum (a 16x16 transpose-reduce in 15 steps, not 16 reductions). */
static inline vf16 fold1(vf16 a, vf16 b) {
    return __builtin_shufflevector(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30) +
           __builtin_shufflevector(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
}

static inline vf16 fold2(vf16 a, vf16 b) {
    return __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29) +
           __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
}

static inline vf16 fold4(vf16 a, vf16 b) {
    return __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27) +
           __builtin_shufflevector(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
}

static inline vf16 fold8(vf16 a, vf16 b) {
    return __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
           __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
}

/* Lane t = the sum of part[t]'s lanes, for 16 vectors. */
static inline vf16 transpose_sum(vf16 part[16]) {
    for (int i = 0; i < 8; i++) part[i] = fold1(part[2 * i], part[2 * i + 1]);
    for (int i = 0; i < 4; i++) part[i] = fold2(part[2 * i], part[2 * i + 1]);
    for (int i = 0; i < 2; i++) part[i] = fold4(part[2 * i], part[2 * i + 1]);
    return fold8(part[0], part[1]);
}

/* scores[h * n + t] = q_h . rows[t] for every query head h and row t of one page.
 * Each head's query is held in registers while the page's rows stream past; rows
 * are read straight from the pool (float32 or bfloat16) when d is a multiple of 16,
 * else from a float32 copy. */
static inline __attribute__((always_inline)) void score_page(const float *restrict qf,
                                                             const float *restrict rows,
                                                             int32_t count, int32_t group,
                                                             int32_t d, float *restrict out,
                                                             int32_t n) {
    for (int32_t h = 0; h < group; h++) {
        const float *qh = qf + (int64_t)h * d;
        float *scores = out + (int64_t)h * n;
        if (VECTOR_DIM(d)) {
            vf16 qv[MAX_VECTORS];
            for (int32_t j = 0; j < d / 16; j++) qv[j] = vload(qh + 16 * j);
            for (int32_t t0 = 0; t0 < count; t0 += 16) { /* 16 rows, one reduction */
                const int32_t rows16 = count - t0 < 16 ? count - t0 : 16;
                vf16 part[16];
                for (int32_t t = 0; t < 16; t++) {
                    vf16 acc = {0};
                    for (int32_t j = 0; t < rows16 && j < d / 16; j++)
                        acc += qv[j] * vload(rows + (int64_t)(t0 + t) * d + 16 * j);
                    part[t] = acc;
                }
                const vf16 sums = transpose_sum(part);
                memcpy(scores + t0, &sums, sizeof(float) * (size_t)rows16);
            }
        } else {
            for (int32_t t = 0; t < count; t++) {
                float acc = 0.0f;
                for (int32_t i = 0; i < d; i++) acc += qh[i] * rows[(int64_t)t * d + i];
                scores[t] = acc;
            }
        }
    }
}

/* acc_h += sum_t weights[h * n + t] * rows[t] for every head h, over one page
 * (rows as in score_page). */
static inline __attribute__((always_inline)) void weigh_page(float *restrict acc,
                                                             const float *restrict rows,
                                                             int32_t count, int32_t group,
                                                             int32_t d,
                                                             const float *restrict weights,
                                                             int32_t n) {
    for (int32_t h = 0; h < group; h++) {
        float *ah = acc + (int64_t)h * d;
        const float *w = weights + (int64_t)h * n;
        if (VECTOR_DIM(d)) {
            vf16 av[MAX_VECTORS];
            for (int32_t j = 0; j < d / 16; j++) av[j] = vload(ah + 16 * j);
            for (int32_t t = 0; t < count; t++)
                for (int32_t j = 0; j < d / 16; j++)
                    av[j] += w[t] * vload(rows + (int64_t)t * d + 16 * j);
            for (int32_t j = 0; j < d / 16; j++) vstore(ah + 16 * j, av[j]);
        } else {
            for (int32_t t = 0; t < count; t++)
                for (int32_t i = 0; i < d; i++) ah[i] += w[t] * rows[(int64_t)t * d + i];
        }
    }
}

/* e^x for x <= 0 (softmax after subtracting the maximum), branch-free so loops vectorize:
 * 2^k * p(r) with r = x - k ln 2 in [-ln2/2, ln2/2] and a degree-6 polynomial (< 2 ulp). */
static inline float exp_neg(float x) {
    x = x < -87.0f ? -87.0f : x;
    const float shift = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const float k = (x * 1.44269504f + shift) - shift;
    const float r = (x - k * 0.693359375f) + k * 2.12194440e-4f;
    float poly = 1.3981999507e-3f;
    poly = poly * r + 8.3334519073e-3f;
    poly = poly * r + 4.1665795894e-2f;
    poly = poly * r + 1.6666665459e-1f;
    poly = poly * r + 5.0000001201e-1f;
    poly = poly * r * r + r + 1.0f;
    int32_t bits;
    memcpy(&bits, &poly, sizeof bits);
    bits += (int32_t)k << 23;
    memcpy(&poly, &bits, sizeof poly);
    return poly;
}

typedef struct Problem Problem;
static void prefetch_page(const Problem *p, const int32_t *table, int32_t pos, int32_t len,
                          int64_t base);

struct Problem {
    const void *q;        /* [batch, heads, head_dim], rows q_stride elements apart */
    const void *cache;    /* one layer's pool: [2, kv_heads, num_slots, head_dim] */
    void *out;            /* [batch, heads, head_dim] */
    const int32_t *tables; /* [batch, table_width] frames */
    const int32_t *lens;  /* [batch] context lengths (this token included) */
    int64_t q_stride, table_width, num_slots;
    int32_t heads, kv_heads, head_dim, page_size, window, dtype;
    float scale;
};

/* Ask for the page holding `pos` (if any) while the current one is being computed:
 * pages are scattered, so the hardware prefetcher cannot guess the next one. */
static void prefetch_page(const Problem *p, const int32_t *table, int32_t pos, int32_t len,
                          int64_t base) {
    if (pos >= len) return;
    const int32_t width = p->dtype == DTYPE_BF16 ? 2 : 4, page = p->page_size;
    const int64_t slot = (int64_t)table[pos / page] * page;
    const char *start = (const char *)p->cache + (base + slot * p->head_dim) * width;
    const int64_t bytes = (int64_t)page * p->head_dim * width;
    for (int64_t at = 0; at < bytes; at += 64) __builtin_prefetch(start + at, 0, 3);
}

/* In-place softmax of s[0..n), with lane-wise maximum and sum (no serial chain). */
static void softmax(float *s, int32_t n) {
    float lanes[16], top = -INFINITY, sum = 0.0f;
    const int32_t whole = n - n % 16;
    for (int32_t l = 0; l < 16; l++) lanes[l] = -INFINITY;
    for (int32_t t = 0; t < whole; t += 16)
        for (int32_t l = 0; l < 16; l++) lanes[l] = s[t + l] > lanes[l] ? s[t + l] : lanes[l];
    for (int32_t t = whole; t < n; t++) top = s[t] > top ? s[t] : top;
    for (int32_t l = 0; l < 16; l++) top = lanes[l] > top ? lanes[l] : top;
    for (int32_t l = 0; l < 16; l++) lanes[l] = 0.0f;
    for (int32_t t = 0; t < whole; t += 16)
        for (int32_t l = 0; l < 16; l++) {
            s[t + l] = exp_neg(s[t + l] - top);
            lanes[l] += s[t + l];
        }
    for (int32_t t = whole; t < n; t++) {
        s[t] = exp_neg(s[t] - top);
        sum += s[t];
    }
    for (int32_t l = 0; l < 16; l++) sum += lanes[l];
    const float inv = 1.0f / sum;
    for (int32_t t = 0; t < n; t++) s[t] *= inv;
}

/* The page's rows as float32: in place for a float32 pool, else converted into
 * `scratch` (once per page, then read from L1 by every query head). */
static inline const float *page_rows(const Problem *p, float *scratch, int64_t at, int32_t count,
                                     int32_t d) {
    if (p->dtype == DTYPE_F32) return (const float *)p->cache + at;
    load(scratch, p->cache, at, (int64_t)count * d, p->dtype);
    return scratch;
}

/* One (process, kv head) pair. Scratch holds group*head_dim + page*head_dim floats.
 * Always inlined, so a constant head_dim unrolls the inner loops. */
static inline __attribute__((always_inline)) void attend_dim(const Problem *p, int32_t b,
                                                             int32_t kvh, float *scores,
                                                             float *scratch, const int32_t d) {
    const int32_t group = p->heads / p->kv_heads, page = p->page_size;
    const int32_t len = p->lens[b];
    const int32_t lo = (p->window > 0 && len > p->window) ? len - p->window : 0;
    const int32_t n = len - lo;
    float *qf = scratch;            /* [group, d] */
    float *rows = scratch + group * d; /* [page, d] */
    const int64_t k_base = (int64_t)kvh * p->num_slots * d;
    const int64_t v_base = ((int64_t)p->kv_heads + kvh) * p->num_slots * d;
    const int32_t *table = p->tables + (int64_t)b * p->table_width;
    const int32_t first_head = kvh * group;

    load(qf, p->q, (int64_t)b * p->q_stride + (int64_t)first_head * d, (int64_t)group * d, p->dtype);
    for (int64_t i = 0; i < (int64_t)group * d; i++) qf[i] *= p->scale;

    for (int32_t pos = lo; pos < len;) {
        const int32_t offset = pos % page, count = (len - pos < page - offset) ? len - pos : page - offset;
        const int64_t slot = (int64_t)table[pos / page] * page + offset;
        prefetch_page(p, table, pos + count, len, k_base);
        const float *src = page_rows(p, rows, k_base + slot * d, count, d);
        score_page(qf, src, count, group, d, scores + (pos - lo), n);
        pos += count;
    }

    float *acc = qf; /* the query is no longer needed: reuse it for the output */
    for (int32_t h = 0; h < group; h++) softmax(scores + (int64_t)h * n, n);
    memset(acc, 0, (size_t)group * d * sizeof(float));
    for (int32_t pos = lo; pos < len;) {
        const int32_t offset = pos % page, count = (len - pos < page - offset) ? len - pos : page - offset;
        const int64_t slot = (int64_t)table[pos / page] * page + offset;
        prefetch_page(p, table, pos + count, len, v_base);
        const float *src = page_rows(p, rows, v_base + slot * d, count, d);
        weigh_page(acc, src, count, group, d, scores + (pos - lo), n);
        pos += count;
    }
    store(p->out, ((int64_t)b * p->heads + first_head) * d, acc, (int64_t)group * d, p->dtype);
}

static void attend(const Problem *p, int32_t b, int32_t kvh, float *scores, float *scratch) {
    if (p->head_dim == 64) attend_dim(p, b, kvh, scores, scratch, 64);
    else if (p->head_dim == 128) attend_dim(p, b, kvh, scores, scratch, 128);
    else attend_dim(p, b, kvh, scores, scratch, p->head_dim);
}

/* A per-thread buffer that only grows, so steps after the first touch no fresh memory. */
typedef struct {
    float *data;
    size_t size;
} Buffer;
static _Thread_local Buffer tl_scores, tl_scratch;

static float *thread_buffer(Buffer *buffer, size_t floats) {
    if (buffer->size < floats) {
        float *grown = realloc(buffer->data, floats * sizeof(float));
        if (grown == NULL) return NULL;
        buffer->data = grown;
        buffer->size = floats;
    }
    return buffer->data;
}

/* Attend every process's query over its paged context. Returns 0, or -1 when
 * scratch memory could not be allocated (out is then incomplete). */
int llmos_paged_decode(const void *q, const void *cache, void *out, const int32_t *tables,
                       const int32_t *lens, int32_t batch, int64_t q_stride,
                       int64_t table_width, int64_t num_slots,
                       int32_t heads, int32_t kv_heads, int32_t head_dim, int32_t page_size,
                       int32_t window, int32_t dtype, float scale, int32_t num_threads) {
    const Problem p = {q, cache, out, tables, lens, q_stride, table_width, num_slots, heads,
                       kv_heads, head_dim, page_size, window, dtype, scale};
    int32_t longest = 1;
    for (int32_t b = 0; b < batch; b++) longest = lens[b] > longest ? lens[b] : longest;
    const int32_t group = heads / kv_heads;
    const int64_t tasks = (int64_t)batch * kv_heads;
    int failed = 0;
#pragma omp parallel num_threads(num_threads) reduction(| : failed)
    {
        float *scores = thread_buffer(&tl_scores, (size_t)group * (size_t)longest);
        float *scratch = thread_buffer(&tl_scratch, (size_t)(group + page_size) * (size_t)head_dim);
        /* Every thread takes part in the loop (a worksharing rule), even one without memory. */
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < tasks; task++) {
            if (scores == NULL || scratch == NULL)
                failed = 1;
            else
                attend(&p, (int32_t)(task / kv_heads), (int32_t)(task % kv_heads), scores, scratch);
        }
    }
    return failed ? -1 : 0;
}
