/* Sparse (CSR) weight times dense activations, for exported Linear layers.
 *
 *     yt[r, :] = bias[r] + sum_{k in row r} val[k] * xt[col[k], :]
 *
 * xt is the input transposed to (in_features, batch) and yt the output as
 * (out_features, batch), both row-major: each non-zero scales one contiguous
 * row of the batch, which vectorises; batch 1 is a plain SpMV (a dot product
 * per row). The batch is cut into chunks of 2 vector registers that stay in
 * registers over a whole row. Threads get contiguous row ranges holding about
 * the same number of non-zeros. Column indices are int32, or uint16 (absolute
 * column, in_features <= 65536): 8 or 6 bytes per float32 non-zero instead of
 * the 12 of torch's int64 CSR. Shipped as source and compiled at first use by
 * shrinkage._native (SHRINKAGE_ABI comes from there, as a -D define).
 */
#include <stdint.h>
#include <stddef.h>
#include <stdatomic.h>
#include <pthread.h>
#include <unistd.h>
#include <sched.h>

#define NVEC 2 /* vector registers per batch chunk */

typedef float vf32 __attribute__((vector_size(64)));
typedef float vf32u __attribute__((vector_size(64), aligned(4)));
typedef double vf64 __attribute__((vector_size(64)));
typedef double vf64u __attribute__((vector_size(64), aligned(8)));

/* first row whose start offset is >= target */
static int64_t row_split(const int32_t *crow, int64_t n_rows, int64_t target) {
    int64_t lo = 0, hi = n_rows;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if ((int64_t)crow[mid] < target) lo = mid + 1; else hi = mid;
    }
    return lo;
}
#include "pool.h"

typedef struct {
    int64_t n_rows, B, n_chunks, nnz;
    const int32_t *crow;
    const void *col, *val, *bias, *xt;
    void *yt;
} job_t;

#define DEFINE_KERNEL(NAME, T, IDX, VT, VTU)                                           \
static void NAME##_rows(int64_t r0, int64_t r1, int64_t B, const int32_t *crow,       \
                        const IDX *col, const T *val, const T *bias, const T *xt,     \
                        T *yt) {                                                       \
    enum { VL = sizeof(VT) / sizeof(T), CH = NVEC * VL };                              \
    if (B == 1) {                                                                      \
        for (int64_t r = r0; r < r1; ++r) {                                            \
            int64_t k = crow[r], e = crow[r + 1];                                      \
            T a0 = 0, a1 = 0, a2 = 0, a3 = 0;                                          \
            for (; k + 4 <= e; k += 4) {                                               \
                a0 += val[k] * xt[col[k]];                                             \
                a1 += val[k + 1] * xt[col[k + 1]];                                     \
                a2 += val[k + 2] * xt[col[k + 2]];                                     \
                a3 += val[k + 3] * xt[col[k + 3]];                                     \
            }                                                                          \
            for (; k < e; ++k) a0 += val[k] * xt[col[k]];                              \
            yt[r] = (bias ? bias[r] : (T)0) + ((a0 + a1) + (a2 + a3));                 \
        }                                                                              \
        return;                                                                        \
    }                                                                                  \
    int64_t c0 = 0;                                                                    \
    for (; c0 + CH <= B; c0 += CH) {                                                   \
        for (int64_t r = r0; r < r1; ++r) {                                            \
            VT a[NVEC];                                                                \
            const T b = bias ? bias[r] : (T)0;                                         \
            for (int i = 0; i < NVEC; ++i) a[i] = (VT){0} + b;                         \
            for (int64_t k = crow[r], e = crow[r + 1]; k < e; ++k) {                   \
                const T v = val[k];                                                    \
                const T *xp = xt + (int64_t)col[k] * B + c0;                           \
                for (int i = 0; i < NVEC; ++i) a[i] += v * *(const VTU *)(xp + i * VL);\
            }                                                                          \
            T *yp = yt + r * B + c0;                                                   \
            for (int i = 0; i < NVEC; ++i) *(VTU *)(yp + i * VL) = a[i];               \
        }                                                                              \
    }                                                                                  \
    if (c0 < B) {                                                                      \
        const int64_t w = B - c0;                                                      \
        for (int64_t r = r0; r < r1; ++r) {                                            \
            T acc[CH];                                                                 \
            const T b = bias ? bias[r] : (T)0;                                         \
            for (int64_t j = 0; j < w; ++j) acc[j] = b;                                \
            for (int64_t k = crow[r], e = crow[r + 1]; k < e; ++k) {                   \
                const T v = val[k];                                                    \
                const T *xp = xt + (int64_t)col[k] * B + c0;                           \
                for (int64_t j = 0; j < w; ++j) acc[j] += v * xp[j];                   \
            }                                                                          \
            T *yp = yt + r * B + c0;                                                   \
            for (int64_t j = 0; j < w; ++j) yp[j] = acc[j];                            \
        }                                                                              \
    }                                                                                  \
}                                                                                      \
static void NAME##_chunk(const void *ctx, int64_t c) {                             \
    const job_t *j = (const job_t *)ctx;                                               \
    const int64_t r0 = c == 0 ? 0 : row_split(j->crow, j->n_rows, (j->nnz * c) / j->n_chunks); \
    const int64_t r1 = c == j->n_chunks - 1                                            \
                           ? j->n_rows                                                 \
                           : row_split(j->crow, j->n_rows, (j->nnz * (c + 1)) / j->n_chunks); \
    NAME##_rows(r0, r1, j->B, j->crow, (const IDX *)j->col, (const T *)j->val,         \
                (const T *)j->bias, (const T *)j->xt, (T *)j->yt);                     \
}                                                                                      \
void NAME(int64_t n_rows, int64_t B, const int32_t *crow, const IDX *col,             \
          const T *val, const T *bias, const T *xt, T *yt, int n_threads) {            \
    const int64_t nnz = crow[n_rows];                                                  \
    /* below ~32k multiply-adds handing work to another thread costs more than it saves */ \
    if (n_threads <= 1 || nnz * B < 32768 || n_rows < 2) {                             \
        NAME##_rows(0, n_rows, B, crow, col, val, bias, xt, yt);                       \
        return;                                                                        \
    }                                                                                  \
    int64_t n_chunks = 4 * (int64_t)n_threads;                                         \
    if (n_chunks > n_rows) n_chunks = n_rows;                                          \
    job_t j = {n_rows, B, n_chunks, nnz, crow, col, val, bias, xt, yt};               \
    run_chunks(NAME##_chunk, &j, n_chunks, n_threads);                                 \
}

DEFINE_KERNEL(shrinkage_spmm_f32_i32, float, int32_t, vf32, vf32u)
DEFINE_KERNEL(shrinkage_spmm_f32_u16, float, uint16_t, vf32, vf32u)
DEFINE_KERNEL(shrinkage_spmm_f64_i32, double, int32_t, vf64, vf64u)
DEFINE_KERNEL(shrinkage_spmm_f64_u16, double, uint16_t, vf64, vf64u)

/* dst (cols, rows) = src (rows, cols)^T, both row-major; in 32 x 32 tiles so both sides
 * stay in cache; column bands shared by the pool. Done here rather than by torch so
 * that it, too, never waits on a thread that is not running. */
typedef struct {
    int64_t rows, cols, n_chunks;
    const void *src;
    void *dst;
} tjob_t;

#define TILE 32
#define DEFINE_TRANSPOSE(NAME, T)                                                      \
static void NAME##_chunk(const void *ctx, int64_t c) {                                 \
    const tjob_t *j = (const tjob_t *)ctx;                                             \
    const T *src = (const T *)j->src;                                                  \
    T *dst = (T *)j->dst;                                                              \
    const int64_t c0 = j->cols * c / j->n_chunks, c1 = j->cols * (c + 1) / j->n_chunks; \
    for (int64_t i0 = 0; i0 < j->rows; i0 += TILE) {                                   \
        const int64_t i1 = i0 + TILE < j->rows ? i0 + TILE : j->rows;                  \
        for (int64_t k0 = c0; k0 < c1; k0 += TILE) {                                   \
            const int64_t k1 = k0 + TILE < c1 ? k0 + TILE : c1;                        \
            for (int64_t k = k0; k < k1; ++k)                                          \
                for (int64_t i = i0; i < i1; ++i)                                      \
                    dst[k * j->rows + i] = src[i * j->cols + k];                       \
        }                                                                              \
    }                                                                                  \
}                                                                                      \
void NAME(int64_t rows, int64_t cols, const T *src, T *dst, int n_threads) {           \
    int64_t n_chunks = rows * cols < 65536 || n_threads <= 1 ? 1 : 4 * (int64_t)n_threads; \
    if (n_chunks > cols) n_chunks = cols > 0 ? cols : 1;                               \
    tjob_t j = {rows, cols, n_chunks, src, dst};                                       \
    run_chunks(NAME##_chunk, &j, n_chunks, n_chunks == 1 ? 1 : n_threads);            \
}

DEFINE_TRANSPOSE(shrinkage_transpose_f32, float)
DEFINE_TRANSPOSE(shrinkage_transpose_f64, double)

/* SHRINKAGE_ABI is given on the command line (-D) by shrinkage._native. */
int shrinkage_spmm_abi(void) { return SHRINKAGE_ABI; }
