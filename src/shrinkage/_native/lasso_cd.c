/* l1 sparse codes (the lasso) by covariance coordinate descent, one row at a time.
 *
 * Row problem: min_z 1/2 z G z - b z + lam |z|_1 with G = D D^T (k x k) and b = x D^T,
 * both computed by the caller (BLAS). c = b - z G (minus the gradient) drives the
 * coordinate update (Friedman, Hastie & Tibshirani 2010, "covariance updates"):
 *
 *     z_j <- soft(z_j + c_j / G_jj, lam / G_jj),   c <- c - (z_j' - z_j) G_j.
 *
 * Working set: each row sweeps only its active set A (its support plus the atoms that
 * violate |c_j| <= lam the most), on a packed copy of G_AA, so a sweep costs |A|^2 and
 * not |A| k. Once a sweep changes nothing beyond a loose tolerance, the codes are solved
 * exactly on their support and signs (Cholesky of G_SS); with c = b - z G recomputed
 * from the few non-zeros, |c_j| <= lam on every other atom proves the result is the
 * lasso minimiser. Otherwise the violators join A and CD goes on (from the exact solve
 * when it lowers the energy), with a finer tolerance when the solve was refused.
 * Rows are shared by the threads of the pool.
 */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <float.h>
#include <stdatomic.h>
#include <pthread.h>

#define PACK_MAX 256  /* active sets up to this size sweep on a packed G_AA */
#define POLISH_MAX 256 /* largest support solved exactly */
#define POLISH_ROUNDS 4 /* exact solves per attempt, each without the atoms whose sign flipped */
#define MIN_ADD 16 /* fewest atoms added to a row's active set at a time */
#define PTOL0 1e-2 /* first CD tolerance (relative change) before an exact solve is tried,
                    * at 256 atoms or fewer (scaled by 256 / atoms above) */
#define ROW_CONVERGED 1
#define ROW_EXACT 2

typedef struct {
    int64_t n, k, p, max_iter, rows_per_chunk; /* p: features, the rank bound of a support */
    const void *G, *B, *idiag;
    void *Z;
    double lam, tol, slack;
    int warm;
    const double *xx;
    double *energy;
    int64_t *iters;
    uint8_t *flags;
    _Atomic int failed;
} cd_job_t;

typedef struct { /* shrinkage_code_stats's job: Z as rows of (column, value) */
    int64_t n, k, p, n_chunks;
    const int64_t *rowptr;
    const int32_t *cols;
    const void *vals, *X, *D;
    void *R, *AZ, *BZ;
} stats_job_t;

/* a . b over n entries, reassociated into vector partial sums (only the order of the
 * additions inside one dot product changes, as in any BLAS) */
__attribute__((noinline, optimize("associative-math", "no-signed-zeros", "no-trapping-math")))
static double dotd(const double *restrict a, const double *restrict b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

/* Rows [from, m) of the Cholesky factor L of the symmetric positive semi-definite M (row
 * stride ld; the lower triangle of those rows holds M on entry, L on return), rows before
 * `from` being L's already. Row by row ("up-looking"): L_ij = (M_ij - L_i. . L_j.) / L_jj;
 * a row depends only on M's row and the rows above it, so a factor whose first rows (atoms)
 * are unchanged is extended, not redone. The new rows are taken CHOL_RB at a time: their
 * entries left of the block come in tiles of CHOL_RB rows x 4 columns, so that one read of
 * 4 rows above serves CHOL_RB rows (4 x 4 tiles with AVX-512's 32 vector registers, 2 x 4
 * with AVX2's 16; measured on a 170-atom factor: about 1.3x faster than 1 x 4).
 * diag[] holds M's diagonal on entry for the new rows, 1 / L_jj on return. A pivot below
 * rel_tol times its diagonal marks an atom that depends on the earlier ones (duplicated or
 * collinear atoms): it is left out of the system (diag[j] = 0, L_ij = 0 below it, x_j = 0),
 * which is the factor of M without that row and column. */
#if defined(__AVX512F__)
#define CHOL_RB 4
#else
#define CHOL_RB 2
#endif
/* the entries L_ij, j in [j, j + 4), of row L given s_k = L_i. . L_(j+k). over the
 * columns left of j: the block's own triangle, in order (B, C, D are rows j + 1..3) */
__attribute__((optimize("associative-math", "no-signed-zeros", "no-trapping-math")))
static inline void chol_tri(double *L, const double *B, const double *C, const double *D,
                            const double *diag, int64_t j, double s0, double s1, double s2,
                            double s3) {
    L[j] = diag[j] == 0 ? 0.0 : (L[j] - s0) * diag[j];
    s1 += L[j] * B[j];
    L[j + 1] = diag[j + 1] == 0 ? 0.0 : (L[j + 1] - s1) * diag[j + 1];
    s2 += L[j] * C[j] + L[j + 1] * C[j + 1];
    L[j + 2] = diag[j + 2] == 0 ? 0.0 : (L[j + 2] - s2) * diag[j + 2];
    s3 += L[j] * D[j] + L[j + 1] * D[j + 1] + L[j + 2] * D[j + 2];
    L[j + 3] = diag[j + 3] == 0 ? 0.0 : (L[j + 3] - s3) * diag[j + 3];
}
/* row i's entries L_ij for j in [j, i), the rows above complete (the pivot is the caller's) */
__attribute__((optimize("associative-math", "no-signed-zeros", "no-trapping-math")))
static void chol_row_from(double *restrict M, int64_t ld, int64_t i, int64_t j,
                          double *restrict diag) {
    double *Li = M + i * ld;
    for (; j + 4 <= i; j += 4) {
        const double *A = M + j * ld, *B = A + ld, *C = B + ld, *D = C + ld;
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (int64_t t = 0; t < j; ++t) {
            const double x = Li[t];
            s0 += x * A[t];
            s1 += x * B[t];
            s2 += x * C[t];
            s3 += x * D[t];
        }
        chol_tri(Li, B, C, D, diag, j, s0, s1, s2, s3);
    }
    for (; j < i; ++j)
        Li[j] = diag[j] == 0 ? 0.0 : (Li[j] - dotd(Li, M + j * ld, j)) * diag[j];
}
/* the 4 entries L_ij, j in [j, j + 4), of CHOL_RB consecutive rows i0.. (j + 4 <= i0): each
 * row's dot products with the 4 rows j.. share one read of those rows */
__attribute__((optimize("associative-math", "no-signed-zeros", "no-trapping-math")))
static void chol_tile(double *restrict M, int64_t ld, int64_t i0, int64_t j,
                      const double *restrict diag) {
    const double *A = M + j * ld, *B = A + ld, *C = B + ld, *D = C + ld;
    double *L0 = M + i0 * ld, *L1 = L0 + ld;
    double s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
#if CHOL_RB == 4
    double *L2 = L1 + ld, *L3 = L2 + ld;
    double s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
#endif
    for (int64_t t = 0; t < j; ++t) {
        const double a = A[t], b = B[t], c = C[t], d = D[t];
        const double x0 = L0[t], x1 = L1[t];
        s00 += x0 * a; s01 += x0 * b; s02 += x0 * c; s03 += x0 * d;
        s10 += x1 * a; s11 += x1 * b; s12 += x1 * c; s13 += x1 * d;
#if CHOL_RB == 4
        const double x2 = L2[t], x3 = L3[t];
        s20 += x2 * a; s21 += x2 * b; s22 += x2 * c; s23 += x2 * d;
        s30 += x3 * a; s31 += x3 * b; s32 += x3 * c; s33 += x3 * d;
#endif
    }
    chol_tri(L0, B, C, D, diag, j, s00, s01, s02, s03);
    chol_tri(L1, B, C, D, diag, j, s10, s11, s12, s13);
#if CHOL_RB == 4
    chol_tri(L2, B, C, D, diag, j, s20, s21, s22, s23);
    chol_tri(L3, B, C, D, diag, j, s30, s31, s32, s33);
#endif
}
static void chol_rows(double *restrict M, int64_t ld, int64_t from, int64_t m,
                      double *restrict diag, double rel_tol) {
    for (int64_t i0 = from; i0 < m; i0 += CHOL_RB) {
        const int64_t nb = m - i0 < CHOL_RB ? m - i0 : CHOL_RB;
        int64_t j0 = 0;
        if (nb == CHOL_RB)
            for (; j0 + 4 <= i0; j0 += 4) chol_tile(M, ld, i0, j0, diag);
        for (int64_t i = i0; i < i0 + nb; ++i) {
            double *Li = M + i * ld;
            chol_row_from(M, ld, i, j0, diag);
            const double d = Li[i] - dotd(Li, Li, i);
            if (!(d > rel_tol * diag[i] && d > 1e-300)) {
                diag[i] = 0;
                continue;
            }
            const double sd = sqrt(d);
            Li[i] = sd;
            diag[i] = 1.0 / sd;
        }
    }
}

/* r <- the solution x of L L^T x = r (L from chol_rows, m rows, stride ld); x_j = 0 for a
 * left-out atom */
static void chol_subst(const double *restrict M, int64_t ld, int64_t m,
                       const double *restrict diag, double *restrict r) {
    for (int64_t i = 0; i < m; ++i) r[i] = (r[i] - dotd(M + i * ld, r, i)) * diag[i];
    for (int64_t i = m - 1; i >= 0; --i) {
        const double x = r[i] * diag[i];
        r[i] = x;
        const double *Mi = M + i * ld;
        for (int64_t t = 0; t < i; ++t) r[t] -= Mi[t] * x;
    }
}

/* qsort order of (key, index) pairs: key ascending, then index */
static int by_key(const void *pa, const void *pb) {
    const double *a = (const double *)pa, *b = (const double *)pb;
    if (a[0] != b[0]) return a[0] < b[0] ? -1 : 1;
    return (a[1] > b[1]) - (a[1] < b[1]);
}

/* Per-thread scratch memory, kept between calls (the pool's helpers are long-lived). */
typedef struct {
    void *mem;
    size_t size;
} scratch_t;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p) {
    scratch_t *s = (scratch_t *)p;
    free(s->mem);
    free(s);
}

static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_free); }

static void *scratch(size_t size) {
    pthread_once(&scratch_once, scratch_init);
    scratch_t *s = (scratch_t *)pthread_getspecific(scratch_key);
    if (s == NULL) {
        s = (scratch_t *)calloc(1, sizeof(*s));
        if (s == NULL || pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->size < size) {
        free(s->mem);
        s->mem = malloc(size);
        s->size = s->mem ? size : 0;
    }
    return s->mem;
}

#include "pool.h"

/* The two precisions of the solver: the template instantiated by the preprocessor. */
#define REAL float
#define SFX(name) name##_f32
#define EPS FLT_EPSILON
#define SMALLEST FLT_MIN
#include "lasso_cd_impl.h"
#undef REAL
#undef SFX
#undef EPS
#undef SMALLEST

#define REAL double
#define SFX(name) name##_f64
#define EPS DBL_EPSILON
#define SMALLEST DBL_MIN
#include "lasso_cd_impl.h"
#undef REAL
#undef SFX
#undef EPS
#undef SMALLEST

/* SHRINKAGE_ABI is given on the command line (-D) by shrinkage._native. */
int shrinkage_codes_abi(void) { return SHRINKAGE_ABI; }
