/* Layers that skip zero activations as well as zero weights: a stack of
 *
 *     x_l = phi_l(W_l x_{l-1} + b_l)
 *
 * run in one call, visiting only the non-zero entries of each layer's input. For each
 * active input feature j, its column of W is added, scaled by x_j, into the output:
 * W stored column-wise, either dense (W^T, in x out: a column is a contiguous run, the
 * update an axpy) or sparse (CSC: the column's non-zeros, their rows int32 or uint16).
 * The activation (ReLU, shifted ReLU, soft threshold and their clipped forms) is applied
 * to the finished output and the result compacted, in the same pass, into the list of
 * non-zeros the next layer reads: per active feature, the samples where it is non-zero
 * and their values. Bytes read per layer: the active columns only (for a layer with 85 %
 * zero inputs and 95 % zero weights, 0.15 x 0.05 of the dense matrix, plus its column
 * offsets).
 *
 * A batch is cut into contiguous groups of samples, one per thread (the pool of pool.h);
 * inside a group each column read serves every sample that uses it. The caller supplies
 * the workspace (shrinkage_actchain_work bytes), so a call allocates nothing.
 * Shipped as source, compiled at first use by shrinkage._native (SHRINKAGE_ABI comes from
 * there, as a -D define).
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <stdatomic.h>
#include <pthread.h>
#include <unistd.h>
#include <sched.h>
#include "pool.h"

enum { K_DENSE_T = 0, K_CSC_I32 = 1, K_CSC_U16 = 2 };
enum { A_NONE = 0, A_RELU = 1, A_SHIFTED = 2, A_SOFT = 3, A_CRELU = 4, A_CST = 5 };

typedef struct {
    int64_t in, out;
    int32_t kind; /* K_DENSE_T: W^T (in x out); K_CSC_*: W column-wise */
    int32_t act;  /* A_* */
    double tau, m;
    const void *w;         /* K_DENSE_T: W^T; CSC: the values */
    const int32_t *colptr; /* CSC: in + 1 offsets */
    const void *rows;      /* CSC: the row of each value (int32 or uint16) */
    const void *bias;      /* out values, or NULL */
} act_layer_t;

#define ALIGN(x) (((x) + 63) & ~(size_t)63)
#define PF_FAR 3 /* the CSC kernels read this many active columns ahead into L2 */

static int64_t widest(const act_layer_t *L, int n) {
    int64_t w = 1;
    for (int l = 0; l < n; ++l) {
        if (L[l].in > w) w = L[l].in;
        if (L[l].out > w) w = L[l].out;
    }
    return w;
}

/* one group's workspace: Z (bc x W), values and samples of the non-zeros (bc x W each),
 * active features, their offsets, a cursor per feature */
static size_t group_bytes(int64_t W, int64_t bc, size_t elem) {
    return 2 * ALIGN((size_t)(bc * W) * elem) + ALIGN((size_t)(bc * W) * 4) +
           3 * ALIGN((size_t)(W + 1) * 4);
}

int64_t shrinkage_actchain_work(int n_layers, const act_layer_t *L, int64_t B, int n_threads,
                                int elem_size) {
    int64_t groups = B < n_threads ? B : n_threads;
    if (groups < 1) groups = 1;
    const int64_t bc = (B + groups - 1) / groups;
    return (int64_t)(groups * group_bytes(widest(L, n_layers), bc > 0 ? bc : 1, elem_size));
}

typedef struct {
    int n_layers;
    const act_layer_t *L;
    int64_t B, groups, W;
    const void *x;
    void *y;
    char *work;
    size_t stride;
} chain_job_t;

/* Z (bc x out) += W x with W in CSC form, over the active features of A: the body of the
 * two CSC kernels below (T the value type, IDX the row index type) */
#define CSC_BODY(T, IDX)                                                                 \
    const T *v = (const T *)l->w;                                                       \
    const IDX *rows = (const IDX *)l->rows;                                             \
    const int32_t *cp = l->colptr;                                                      \
    const int64_t out = l->out;                                                         \
    for (int64_t f = 0; f < A->nf; ++f) {                                               \
        const int64_t j = A->feat[f];                                                   \
        const int64_t k0 = cp[j], k1 = cp[j + 1];                                       \
        /* Columns are short streams at random places: read ahead in step with this    \
         * one, a cache line per line consumed here, the next active column into L1 and  \
         * the one PF_FAR ahead into L2 (measured: 2-3x less time than no read-ahead     \
         * when the matrix is not in cache) */                                          \
        int64_t b1 = 0, n1 = 0, b2 = 0, n2 = 0;                                         \
        if (f + 1 < A->nf) {                                                            \
            b1 = cp[A->feat[f + 1]];                                                    \
            n1 = cp[A->feat[f + 1] + 1] - b1;                                           \
        }                                                                               \
        if (f + PF_FAR < A->nf) {                                                       \
            b2 = cp[A->feat[f + PF_FAR]];                                               \
            n2 = cp[A->feat[f + PF_FAR] + 1] - b2;                                      \
        }                                                                               \
        for (int32_t t = A->ptr[f]; t < A->ptr[f + 1]; ++t) {                           \
            const T a = A->val[t];                                                      \
            T *z = bc == 1 ? Z : Z + (int64_t)A->samp[t] * out;                         \
            int64_t k = k0;                                                             \
            for (; k + 16 <= k1; k += 16) {                                             \
                const int64_t d = k - k0;                                               \
                if (d < n1) {                                                           \
                    __builtin_prefetch(v + b1 + d, 0, 3);                               \
                    if (!(d & (64 / sizeof(IDX) - 1))) __builtin_prefetch(rows + b1 + d, 0, 3); \
                }                                                                       \
                if (d < n2) {                                                           \
                    __builtin_prefetch(v + b2 + d, 0, 2);                               \
                    if (!(d & (64 / sizeof(IDX) - 1))) __builtin_prefetch(rows + b2 + d, 0, 2); \
                }                                                                       \
                /* the rows of a column are distinct: load four, then store four */     \
                for (int q = 0; q < 16; q += 4) {                                       \
                    const IDX r0 = rows[k + q], r1 = rows[k + q + 1], r2 = rows[k + q + 2], \
                              r3 = rows[k + q + 3];                                     \
                    const T z0 = z[r0], z1 = z[r1], z2 = z[r2], z3 = z[r3];             \
                    z[r0] = z0 + a * v[k + q];                                          \
                    z[r1] = z1 + a * v[k + q + 1];                                      \
                    z[r2] = z2 + a * v[k + q + 2];                                      \
                    z[r3] = z3 + a * v[k + q + 3];                                      \
                }                                                                       \
            }                                                                           \
            for (; k < k1; ++k) z[rows[k]] += a * v[k];                                 \
        }                                                                               \
        for (int64_t d = k1 - k0; d < n1; d += 64 / sizeof(T)) { /* longer columns */    \
            __builtin_prefetch(v + b1 + d, 0, 3);                                       \
            __builtin_prefetch(rows + b1 + d, 0, 3);                                    \
        }                                                                               \
        for (int64_t d = k1 - k0; d < n2; d += 64 / sizeof(T)) {                        \
            __builtin_prefetch(v + b2 + d, 0, 2);                                       \
            __builtin_prefetch(rows + b2 + d, 0, 2);                                    \
        }                                                                               \
    }

#define DEFINE_CHAIN(SFX, T)                                                            \
typedef struct {                                                                        \
    int64_t nf;      /* active features */                                             \
    int32_t *feat;   /* their indices, increasing */                                   \
    int32_t *ptr;    /* nf + 1 offsets into samp / val */                              \
    int32_t *samp;   /* the sample of each non-zero (unused with one sample) */        \
    T *val;          /* its value */                                                   \
} sp_##SFX;                                                                             \
                                                                                        \
/* written so that a NaN passes through (every comparison with NaN is false), as it does \
 * through torch's relu and clamp */                                                    \
static inline T phi_##SFX(T z, int act, T tau, T m) {                                   \
    T a, s;                                                                             \
    switch (act) {                                                                      \
    case A_RELU: return z <= 0 ? (T)0 : z;                                              \
    case A_SHIFTED: a = z - tau; return a <= 0 ? (T)0 : a;                              \
    case A_CRELU: a = z - tau; a = a <= 0 ? (T)0 : a; return a > m ? m : a;             \
    case A_SOFT:                                                                        \
    case A_CST:                                                                         \
        s = z < 0 ? (T)-1 : (T)1;                                                       \
        a = (z < 0 ? -z : z) - tau;                                                     \
        a = a <= 0 ? (T)0 : a;                                                          \
        if (act == A_CST) a = a > m ? m : a;                                            \
        return s * a;                                                                   \
    default: return z;                                                                  \
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* rows of z (bc x n, row stride n) <- phi(rows), in place */                           \
static void activate_##SFX(T *z, int64_t count, int act, T tau, T m) {                  \
    if (act == A_NONE) return;                                                          \
    if (act == A_RELU) {                                                                \
        for (int64_t i = 0; i < count; ++i) z[i] = z[i] <= 0 ? (T)0 : z[i];             \
        return;                                                                         \
    }                                                                                   \
    for (int64_t i = 0; i < count; ++i) z[i] = phi_##SFX(z[i], act, tau, m);            \
}                                                                                       \
                                                                                        \
/* the non-zeros of bc dense rows (length n, row stride ld) as lists per feature */     \
static void compact_##SFX(const T *src, int64_t ld, int64_t bc, int64_t n, sp_##SFX *A,  \
                          int32_t *pos) {                                               \
    if (bc == 1) { /* branch-free: the slot is written, kept if the value is non-zero */ \
        int64_t nf = 0;                                                                 \
        for (int64_t j = 0; j < n; ++j) {                                               \
            const T v = src[j];                                                         \
            A->feat[nf] = (int32_t)j;                                                   \
            A->val[nf] = v;                                                             \
            nf += v != 0;                                                               \
        }                                                                               \
        for (int64_t f = 0; f <= nf; ++f) A->ptr[f] = (int32_t)f;                       \
        A->nf = nf;                                                                     \
        return;                                                                         \
    }                                                                                   \
    for (int64_t j = 0; j < n; ++j) pos[j] = 0;                                         \
    for (int64_t b = 0; b < bc; ++b)                                                    \
        for (int64_t j = 0; j < n; ++j) pos[j] += src[b * ld + j] != 0;                 \
    int64_t nf = 0, off = 0;                                                            \
    for (int64_t j = 0; j < n; ++j) {                                                   \
        const int32_t c = pos[j];                                                       \
        pos[j] = (int32_t)off;                                                          \
        if (!c) continue;                                                               \
        A->feat[nf] = (int32_t)j;                                                       \
        A->ptr[nf++] = (int32_t)off;                                                    \
        off += c;                                                                       \
    }                                                                                   \
    A->ptr[nf] = (int32_t)off;                                                          \
    A->nf = nf;                                                                         \
    for (int64_t b = 0; b < bc; ++b)                                                    \
        for (int64_t j = 0; j < n; ++j) {                                               \
            const T v = src[b * ld + j];                                                \
            if (v != 0) {                                                               \
                const int32_t t = pos[j]++;                                             \
                A->samp[t] = (int32_t)b;                                                \
                A->val[t] = v;                                                          \
            }                                                                           \
        }                                                                               \
}                                                                                       \
                                                                                        \
/* Z (bc x out) += W x over the active features of A */                                 \
static void dense_t_##SFX(const act_layer_t *l, const sp_##SFX *A, int64_t bc, T *Z) {   \
    const T *WT = (const T *)l->w;                                                      \
    const int64_t out = l->out;                                                         \
    if (bc == 1) { /* four columns per sweep of z: a quarter of the z traffic */         \
        int64_t f = 0;                                                                  \
        for (; f + 4 <= A->nf; f += 4) {                                                \
            for (int64_t q = f + 4; q < f + 8 && q < A->nf; ++q) /* the next four starts */ \
                for (int64_t o = 0; o < out && o < 512; o += 64 / sizeof(T))            \
                    __builtin_prefetch(WT + (int64_t)A->feat[q] * out + o, 0, 3);       \
            const T a0 = A->val[f], a1 = A->val[f + 1], a2 = A->val[f + 2],             \
                    a3 = A->val[f + 3];                                                 \
            const T *c0 = WT + (int64_t)A->feat[f] * out;                               \
            const T *c1 = WT + (int64_t)A->feat[f + 1] * out;                           \
            const T *c2 = WT + (int64_t)A->feat[f + 2] * out;                           \
            const T *c3 = WT + (int64_t)A->feat[f + 3] * out;                           \
            for (int64_t o = 0; o < out; ++o)                                           \
                Z[o] += (a0 * c0[o] + a1 * c1[o]) + (a2 * c2[o] + a3 * c3[o]);          \
        }                                                                               \
        for (; f < A->nf; ++f) {                                                        \
            const T a = A->val[f];                                                      \
            const T *c = WT + (int64_t)A->feat[f] * out;                                \
            for (int64_t o = 0; o < out; ++o) Z[o] += a * c[o];                         \
        }                                                                               \
        return;                                                                         \
    }                                                                                   \
    for (int64_t f = 0; f < A->nf; ++f) {                                               \
        const T *c = WT + (int64_t)A->feat[f] * out;                                    \
        for (int32_t t = A->ptr[f]; t < A->ptr[f + 1]; ++t) {                           \
            const T a = A->val[t];                                                      \
            T *z = Z + (int64_t)A->samp[t] * out;                                       \
            for (int64_t o = 0; o < out; ++o) z[o] += a * c[o];                         \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
                                                                                        \
static void csc_i32_##SFX(const act_layer_t *l, const sp_##SFX *A, int64_t bc, T *Z) {   \
    CSC_BODY(T, int32_t)                                                                \
}                                                                                       \
static void csc_u16_##SFX(const act_layer_t *l, const sp_##SFX *A, int64_t bc, T *Z) {   \
    CSC_BODY(T, uint16_t)                                                               \
}                                                                                       \
                                                                                        \
/* the whole stack for samples [b0, b1) */                                              \
static void run_group_##SFX(const chain_job_t *j, int64_t g) {                          \
    const int64_t b0 = j->B * g / j->groups, b1 = j->B * (g + 1) / j->groups;           \
    const int64_t bc = b1 - b0, W = j->W;                                               \
    if (bc <= 0) return;                                                                \
    char *p = j->work + (size_t)g * j->stride;                                          \
    T *Z = (T *)p;                                                                      \
    p += ALIGN((size_t)(bc * W) * sizeof(T));                                           \
    sp_##SFX A;                                                                         \
    A.val = (T *)p;                                                                     \
    p += ALIGN((size_t)(bc * W) * sizeof(T));                                           \
    A.samp = (int32_t *)p;                                                              \
    p += ALIGN((size_t)(bc * W) * 4);                                                   \
    A.feat = (int32_t *)p;                                                              \
    p += ALIGN((size_t)(W + 1) * 4);                                                    \
    A.ptr = (int32_t *)p;                                                               \
    p += ALIGN((size_t)(W + 1) * 4);                                                    \
    int32_t *pos = (int32_t *)p;                                                        \
    const act_layer_t *L = j->L;                                                        \
    const int64_t in0 = L[0].in;                                                        \
    compact_##SFX((const T *)j->x + b0 * in0, in0, bc, in0, &A, pos);                   \
    for (int li = 0; li < j->n_layers; ++li) {                                          \
        const act_layer_t *l = &L[li];                                                  \
        const int64_t out = l->out;                                                     \
        const int last = li == j->n_layers - 1;                                         \
        T *dst = last ? (T *)j->y + b0 * out : Z;                                       \
        const T *bias = (const T *)l->bias;                                             \
        for (int64_t b = 0; b < bc; ++b) {                                              \
            if (bias) memcpy(dst + b * out, bias, (size_t)out * sizeof(T));             \
            else memset(dst + b * out, 0, (size_t)out * sizeof(T));                     \
        }                                                                               \
        if (l->kind == K_DENSE_T) dense_t_##SFX(l, &A, bc, dst);                        \
        else if (l->kind == K_CSC_I32) csc_i32_##SFX(l, &A, bc, dst);                   \
        else csc_u16_##SFX(l, &A, bc, dst);                                             \
        activate_##SFX(dst, bc * out, l->act, (T)l->tau, (T)l->m);                      \
        if (!last) compact_##SFX(Z, out, bc, out, &A, pos);                             \
    }                                                                                   \
}                                                                                       \
static void group_chunk_##SFX(const void *ctx, int64_t g) {                             \
    run_group_##SFX((const chain_job_t *)ctx, g);                                       \
}                                                                                       \
/* y (B x out_last) = the stack applied to x (B x in_0), both row-major; work holds      \
 * shrinkage_actchain_work(...) bytes, 64-byte aligned */                               \
void shrinkage_actchain_##SFX(int n_layers, const act_layer_t *L, int64_t B, const T *x, \
                              T *y, void *work, int n_threads) {                        \
    if (n_layers < 1 || B < 1) return;                                                  \
    int64_t groups = B < n_threads ? B : n_threads;                                     \
    if (groups < 1) groups = 1;                                                         \
    const int64_t bc = (B + groups - 1) / groups;                                       \
    const int64_t W = widest(L, n_layers);                                              \
    chain_job_t j = {n_layers, L, B, groups, W, x, y, (char *)work,                    \
                     group_bytes(W, bc, sizeof(T))};                                    \
    if (groups == 1) {                                                                  \
        run_group_##SFX(&j, 0);                                                         \
        return;                                                                         \
    }                                                                                   \
    run_chunks(group_chunk_##SFX, &j, groups, n_threads);                               \
}

DEFINE_CHAIN(f32, float)
DEFINE_CHAIN(f64, double)

/* SHRINKAGE_ABI is given on the command line (-D) by shrinkage._native. */
int shrinkage_actmm_abi(void) { return SHRINKAGE_ABI; }
