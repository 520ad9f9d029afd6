/* The sparsifier's per-step work on CPU tensors, in C: the exact k-th smallest score
 * (the global threshold), ST-3's forward weight, gmp's scores and mask update.
 *
 * The threshold. One pass counts, for each of a few sorted edges e_j, how many entries lie
 * below (x < e_j), and how many equal `skip`, and copies the entries of one interval
 * [lo, hi), except those equal to `skip`, into a small buffer. From the counts the caller
 * knows where the k-th smallest lies: at `skip` (an exact hit, no selection at all),
 * inside the buffered interval (a selection among its few entries), or between two other
 * edges (a second pass buffers that interval). With the edges put around the previous
 * step's threshold, one pass over the weights and a selection among a few hundred entries
 * replace a selection over all of them. The counts are blocked so that each block's int32
 * sums vectorise; the entries to keep are flagged by a vectorised loop and copied from
 * the rare groups of 8 holding one; past `cap` entries they are only counted.
 *
 * ST-3's forward weight, w + (gamma_r sign(w) max(|w| - tau, 0) - w) (the straight-through
 * form, as torch computes it: the same operations in the same order on each entry), in two
 * passes over each row r instead of a dozen tensor operations: the first sums |w| and the
 * |w| above tau (in double) for gamma_r = 1.01 / (rho_r + 0.01), rho_r = (kept mean + 1e-6)
 * / (mean + 1e-6), the second writes. Rows are shared by the thread pool.
 *
 * gmp: the forward weight w * mask and its gradient; the step's scores (|w| where the mask
 * is set, -1 elsewhere) made on the fly by the threshold's pass, then mask = scores > tau
 * and the raw weights outside it set to +0 (masked_fill's value) in one pass.
 *
 * Shipped as source, compiled at first use by shrinkage._native (SHRINKAGE_ABI comes from
 * there, as a -D define).
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <math.h>
#include <float.h>
#include <stdatomic.h>
#include <pthread.h>
#include <unistd.h>
#include <sched.h>
#include "pool.h"

#define BLOCK 4096 /* entries per block: int32 block sums cannot overflow */
#define MAX_EDGES 16

/* One fused loop per block, which the compiler vectorises: the scores, then for each the
 * counts below the (up to) 4 edges, the count equal to skip, the non-finite count and
 * the largest score (both on the bit pattern: integer operations, exact and vectorisable;
 * for scores >= 0 or -1 the largest signed bit pattern is the largest score), and the
 * flag of the scores to keep. */
#define DEFINE_SELECT(SFX, T, ABS, IT, EXP)                                             \
__attribute__((noinline)) static void scan_block_##SFX(                                  \
    const T *w, int64_t len, T scale, const uint8_t *mask, const T *e, T lo, T hi,      \
    T skip, T *sb, uint8_t *f, int32_t *counts, IT *mx) {                               \
    int32_t c0 = 0, c1 = 0, c2 = 0, c3 = 0, ceq = 0, bad = 0;                           \
    IT m = *mx;                                                                         \
    const T e0 = e[0], e1 = e[1], e2 = e[2], e3 = e[3];                                 \
    for (int64_t i = 0; i < len; ++i) {                                                 \
        T s = ABS(w[i]);                                                                \
        if (mask) s = mask[i] ? s : (T)-1;                                              \
        else s = s * scale;                                                             \
        IT bits;                                                                        \
        memcpy(&bits, &s, sizeof bits);                                                \
        bad += (bits & EXP) == EXP;                                                     \
        m = bits > m ? bits : m;                                                        \
        c0 += s < e0;                                                                   \
        c1 += s < e1;                                                                   \
        c2 += s < e2;                                                                   \
        c3 += s < e3;                                                                   \
        ceq += s == skip;                                                               \
        f[i] = (s >= lo) & (s < hi) & (s != skip);                                      \
        sb[i] = s;                                                                      \
    }                                                                                   \
    counts[0] += c0;                                                                    \
    counts[1] += c1;                                                                    \
    counts[2] += c2;                                                                    \
    counts[3] += c3;                                                                    \
    counts[4] += ceq;                                                                   \
    counts[5] += bad;                                                                   \
    *mx = m;                                                                            \
}                                                                                       \
/* The usual block (no mask, no value to count apart): the counts below the 4 edges, the  \
 * largest score and the flags only (measured: a fifth less time than the block above). A \
 * non-finite score shows in the largest bit pattern (>= EXP); the caller then redoes the \
 * block above to count them. */                                                        \
__attribute__((noinline)) static void scan_fast_##SFX(                                  \
    const T *w, int64_t len, T scale, const T *e, T lo, T hi, uint8_t *f,               \
    int32_t *counts, IT *mx) {                                                          \
    int32_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;                                             \
    IT m = *mx;                                                                         \
    const T e0 = e[0], e1 = e[1], e2 = e[2], e3 = e[3];                                 \
    for (int64_t i = 0; i < len; ++i) {                                                 \
        const T s = ABS(w[i]) * scale;                                                  \
        IT bits;                                                                        \
        memcpy(&bits, &s, sizeof bits);                                                \
        m = bits > m ? bits : m;                                                        \
        c0 += s < e0;                                                                   \
        c1 += s < e1;                                                                   \
        c2 += s < e2;                                                                   \
        c3 += s < e3;                                                                   \
        f[i] = (s >= lo) & (s < hi);                                                    \
    }                                                                                   \
    counts[0] += c0;                                                                    \
    counts[1] += c1;                                                                    \
    counts[2] += c2;                                                                    \
    counts[3] += c3;                                                                    \
    *mx = m;                                                                            \
}                                                                                       \
/* One tensor's share of the pass over the scores s of its n weights w: s = |w| * scale  \
 * (as torch rounds |w| * scale in T), or, with a mask, |w| where it is set and -1       \
 * elsewhere. Adds to lt[j] the #(s < e_j) for the m <= MAX_EDGES edges, to *n_eq the    \
 * #(s == skip) (unless n_eq is NULL), to *n_bad the non-finite scores; raises *smax to   \
 * the largest score; appends the scores with lo <= s < hi and s != skip to buf from     \
 * position n_kept (only the first cap are stored) and returns the new count. */         \
int64_t shrinkage_scan_##SFX(const T *w, int64_t n, double scale, const uint8_t *mask,  \
                             const T *edges, int m, int64_t *lt, int64_t *n_eq, T lo,   \
                             T hi, T skip, T *buf, int64_t cap, int64_t n_kept, T *smax,  \
                             int64_t *n_bad) {                                          \
    if (m > MAX_EDGES) m = MAX_EDGES;                                                   \
    int64_t c = n_kept;                                                                 \
    int64_t total[MAX_EDGES + 2] = {0};                                                 \
    T mx0 = *smax;                                                                      \
    IT mx;                                                                              \
    memcpy(&mx, &mx0, sizeof mx);                                                       \
    if (mx0 < 0) /* the smallest IT, below every bit pattern >= 0 (no signed shift) */  \
        mx = -(IT)1 - (IT)(((uint64_t)1 << (8 * sizeof(IT) - 1)) - 1);                  \
    const int usual = !mask && skip != skip; /* skip NaN: nothing counted apart */      \
    T sb[BLOCK];                                                                        \
    uint8_t flags[BLOCK + 8] = {0}; /* a short last group reads stale bytes: not used */ \
    for (int j0 = 0; j0 < (m > 0 ? m : 1); j0 += 4) {                                   \
        /* edges four at a time (one pass per four; the sparsifier uses at most five) */ \
        T e[4];                                                                         \
        for (int t = 0; t < 4; ++t) e[t] = j0 + t < m ? edges[j0 + t] : (T)INFINITY;    \
        const int first = j0 == 0;                                                      \
        for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {                                     \
            const int64_t len = n - i0 < BLOCK ? n - i0 : BLOCK;                        \
            int32_t counts[6] = {0};                                                    \
            IT bm = mx;                                                                 \
            int fast = usual;                                                           \
            if (fast) {                                                                 \
                scan_fast_##SFX(w + i0, len, (T)scale, e, first ? lo : (T)INFINITY,     \
                                first ? hi : (T)INFINITY, flags, counts, &bm);          \
                if (bm >= (IT)EXP) { /* a non-finite score: the full block counts it */ \
                    fast = 0;                                                           \
                    bm = mx;                                                            \
                    memset(counts, 0, sizeof counts);                                   \
                }                                                                       \
            }                                                                           \
            if (!fast)                                                                  \
                scan_block_##SFX(w + i0, len, (T)scale, mask ? mask + i0 : NULL, e,     \
                                 first ? lo : (T)INFINITY, first ? hi : (T)INFINITY,    \
                                 skip, sb, flags, counts, &bm);                         \
            for (int t = 0; t < 4 && j0 + t < m; ++t) total[j0 + t] += counts[t];        \
            if (!first) continue;                                                       \
            total[MAX_EDGES] += counts[4];                                              \
            total[MAX_EDGES + 1] += counts[5];                                          \
            mx = bm;                                                                    \
            /* groups of 8 without a flag are skipped 8 bytes at a time */              \
            for (int64_t g = 0; g < len; g += 8) {                                      \
                uint64_t word;                                                          \
                memcpy(&word, flags + g, 8);                                            \
                if (!word) continue;                                                    \
                const int64_t ge = g + 8 <= len ? g + 8 : len;                          \
                for (int64_t i = g; i < ge; ++i)                                        \
                    if (flags[i]) {                                                     \
                        if (c < cap) buf[c] = fast ? ABS(w[i0 + i]) * (T)scale : sb[i]; \
                        ++c;                                                            \
                    }                                                                   \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    for (int j = 0; j < m; ++j) lt[j] += total[j];                                      \
    if (n_eq) *n_eq += total[MAX_EDGES];                                                \
    *n_bad += total[MAX_EDGES + 1];                                                     \
    T best;                                                                             \
    memcpy(&best, &mx, sizeof best);                                                    \
    if (n > 0 && best > *smax) *smax = best;                                            \
    return c;                                                                           \
}                                                                                       \
                                                                                        \
/* The k-th smallest (1-based, 1 <= k <= m) of a[0..m), reordering a; *n_le and *n_lt    \
 * get how many entries are <= it and < it. Hoare partition around the median of three. */ \
T shrinkage_select_##SFX(T *a, int64_t m, int64_t k, int64_t *n_le, int64_t *n_lt) {    \
    int64_t lo = 0, hi = m - 1;                                                         \
    const int64_t want = k - 1;                                                         \
    while (hi > lo) {                                                                   \
        const int64_t mid = lo + (hi - lo) / 2;                                         \
        T p0 = a[lo], p1 = a[mid], p2 = a[hi], t;                                       \
        if (p1 < p0) { t = p0; p0 = p1; p1 = t; }                                       \
        if (p2 < p1) { t = p1; p1 = p2; p2 = t; }                                       \
        if (p1 < p0) { t = p0; p0 = p1; p1 = t; }                                       \
        const T pivot = p1;                                                             \
        int64_t i = lo, j = hi;                                                         \
        while (i <= j) {                                                                \
            while (a[i] < pivot) ++i;                                                   \
            while (pivot < a[j]) --j;                                                   \
            if (i <= j) {                                                               \
                t = a[i]; a[i] = a[j]; a[j] = t;                                        \
                ++i; --j;                                                               \
            }                                                                           \
        }                                                                               \
        /* a[lo..j] <= pivot <= a[i..hi]; entries between j and i equal the pivot */    \
        if (want <= j) hi = j;                                                          \
        else if (want >= i) lo = i;                                                     \
        else { lo = hi = want; a[want] = pivot; }                                       \
    }                                                                                   \
    const T v = a[want];                                                                \
    int64_t le = 0, lt = 0;                                                             \
    for (int64_t i = 0; i < m; ++i) {                                                   \
        le += a[i] <= v;                                                                \
        lt += a[i] < v;                                                                 \
    }                                                                                   \
    *n_le = le;                                                                         \
    *n_lt = lt;                                                                         \
    return v;                                                                           \
}

/* The usual step of the threshold search in one call (no Python between the tensors): the
 * pass over nt tensors with the edges g - 4w, g - w, g + w, g + 4w (rounded to T), keeping
 * [g - w, g + w), then, when the k-th smallest lies there and every kept score was stored,
 * the selection among them. Returns 0 with *v, *n_le (#scores <= v), *n_lt (#scores < v);
 * 1 when the caller's general search must answer (edges that collapse on rounding, the k-th
 * outside the central interval, more kept than cap); 2 for a non-finite score. *n_kept gets
 * the number in [g - w, g + w), smax[t] tensor t's largest score. */
#define DEFINE_KTH(SFX, T)                                                              \
int shrinkage_kth_step_##SFX(const T *const *ws, const int64_t *ns, const double *scales, \
                             int nt, double g, double w, int64_t k, T *buf, int64_t cap, \
                             T *v, int64_t *n_le, int64_t *n_lt, int64_t *n_kept,       \
                             T *smax) {                                                 \
    const T e[4] = {(T)(g - 4.0 * w), (T)(g - w), (T)(g + w), (T)(g + 4.0 * w)};       \
    for (int t = 0; t < 4; ++t)                                                         \
        if (!isfinite(e[t])) return 1;                                                  \
    if (!(e[0] < e[1] && e[1] < g && g < e[2] && e[2] < e[3])) return 1;                \
    int64_t lt[4] = {0, 0, 0, 0}, bad = 0, c = 0;                                       \
    for (int t = 0; t < nt; ++t) {                                                      \
        smax[t] = -(T)INFINITY;                                                         \
        c = shrinkage_scan_##SFX(ws[t], ns[t], scales[t], NULL, e, 4, lt, NULL, e[1],   \
                                 e[2], (T)NAN, buf, cap, c, &smax[t], &bad);            \
    }                                                                                   \
    *n_kept = c;                                                                        \
    if (bad) return 2;                                                                  \
    if (!(lt[1] < k && k <= lt[2]) || c > cap) return 1;                                \
    int64_t c_le, c_lt;                                                                 \
    *v = shrinkage_select_##SFX(buf, c, k - lt[1], &c_le, &c_lt);                       \
    *n_le = lt[1] + c_le;                                                               \
    *n_lt = lt[1] + c_lt;                                                               \
    return 0;                                                                           \
}

typedef struct {
    int64_t rows, row_len, n_chunks;
    const void *w;
    void *out;
    double tau;
    int rescale;
} st3_job_t;

/* The row sums may be reassociated (vectorised partial sums, as torch's own sums are):
 * only the order of additions inside a row's mean changes, not any entry's formula. */
#define ROW_SUMS_ATTR __attribute__((noinline, optimize("associative-math", "no-signed-zeros", \
                                                          "no-trapping-math")))
#define DEFINE_SPARSIFY(SFX, T, ABS)                                                    \
ROW_SUMS_ATTR static void row_sums_##SFX(const T *w, int64_t L, T tau, T *all, T *kept) { \
    T sa = 0, sk = 0;                                                                   \
    for (int64_t i = 0; i < L; ++i) {                                                   \
        const T a = ABS(w[i]);                                                          \
        sa += a;                                                                        \
        sk += a > tau ? a : (T)0;                                                       \
    }                                                                                   \
    *all = sa;                                                                          \
    *kept = sk;                                                                         \
}                                                                                       \
static void st3_rows_##SFX(const st3_job_t *j, int64_t r0, int64_t r1) {                 \
    const T tau = (T)j->tau;                                                            \
    const int64_t L = j->row_len;                                                       \
    for (int64_t r = r0; r < r1; ++r) {                                                 \
        const T *w = (const T *)j->w + r * L;                                           \
        T *o = (T *)j->out + r * L;                                                     \
        T gamma = 1;                                                                    \
        if (j->rescale) {                                                               \
            T sa, sk;                                                                   \
            row_sums_##SFX(w, L, tau, &sa, &sk);                                        \
            const T kept_mean = sk / (T)L, mean = sa / (T)L;                            \
            const T rho = (kept_mean + (T)1e-6) / (mean + (T)1e-6);                     \
            gamma = (T)1.01 / (rho + (T)0.01);                                          \
        }                                                                               \
        for (int64_t i = 0; i < L; ++i) {                                               \
            const T x = w[i];                                                           \
            T c = ABS(x) - tau;                                                         \
            c = c > 0 ? c : (T)0;                                                       \
            const T sgn = (T)((x > 0) - (x < 0));                                       \
            T y = sgn * c;                                                              \
            if (j->rescale) y = y * gamma;                                              \
            o[i] = x + (y - x);                                                         \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
static void st3_chunk_##SFX(const void *ctx, int64_t c) {                               \
    const st3_job_t *j = (const st3_job_t *)ctx;                                        \
    st3_rows_##SFX(j, j->rows * c / j->n_chunks, j->rows * (c + 1) / j->n_chunks);      \
}                                                                                       \
/* out (rows x row_len) = ST-3's straight-through forward weight of w at threshold tau */ \
void shrinkage_st3_forward_##SFX(const T *w, T *out, int64_t rows, int64_t row_len,     \
                                 double tau, int rescale, int n_threads) {              \
    st3_job_t j = {rows, row_len, 1, w, out, tau, rescale};                             \
    if (n_threads <= 1 || rows < 2 || rows * row_len < 65536) {                         \
        st3_rows_##SFX(&j, 0, rows);                                                    \
        return;                                                                         \
    }                                                                                   \
    j.n_chunks = rows < 4 * (int64_t)n_threads ? rows : 4 * (int64_t)n_threads;         \
    run_chunks(st3_chunk_##SFX, &j, j.n_chunks, n_threads);                             \
}                                                                                       \
/* out = x * mask, as torch multiplies by a bool tensor (x * 1 or x * 0, signed zero     \
 * included): gmp's forward weight and its gradient */                                  \
void shrinkage_mask_mul_##SFX(const T *x, const uint8_t *mask, T *out, int64_t n) {     \
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * (T)mask[i];                         \
}                                                                                       \
/* gmp's update: the scores (|w| where the mask is set, -1 elsewhere) above tau stay in  \
 * the mask; the raw weights outside it are set to +0 (masked_fill's value) */           \
void shrinkage_gmp_update_##SFX(T *w, uint8_t *mask, double tau, int64_t n) {           \
    const T t = (T)tau;                                                                 \
    for (int64_t i = 0; i < n; ++i) {                                                   \
        const T s = mask[i] ? ABS(w[i]) : (T)-1;                                        \
        const uint8_t keep = s > t;                                                     \
        mask[i] = keep;                                                                 \
        w[i] = keep ? w[i] : (T)0;                                                      \
    }                                                                                   \
}

DEFINE_SELECT(f32, float, __builtin_fabsf, int32_t, (int32_t)0x7f800000)
DEFINE_SELECT(f64, double, __builtin_fabs, int64_t, (int64_t)0x7ff0000000000000LL)
DEFINE_SPARSIFY(f32, float, __builtin_fabsf)
DEFINE_KTH(f32, float)
DEFINE_SPARSIFY(f64, double, __builtin_fabs)
DEFINE_KTH(f64, double)

/* SHRINKAGE_ABI is given on the command line (-D) by shrinkage._native. */
int shrinkage_prune_abi(void) { return SHRINKAGE_ABI; }
