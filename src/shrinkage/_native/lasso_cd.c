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
#define PTOL0 1e-2 /* first CD tolerance (relative change) before an exact solve is tried */
#define ROW_CONVERGED 1
#define ROW_EXACT 2

typedef struct {
    int64_t n, k, max_iter, rows_per_chunk;
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

/* Solve M x = r in place (r <- x) for the symmetric positive semi-definite M (lower
 * triangle used and overwritten by its Cholesky factor; right-looking, so the trailing
 * updates are contiguous). diag[] holds M's diagonal on entry, 1 / L_jj on return. A pivot
 * below rel_tol times its diagonal marks an atom that depends on the earlier ones
 * (duplicated or collinear atoms): it is left out of the system (diag[j] = 0, x_j = 0),
 * which is the factor of M without that row and column. */
static void chol_solve(double *restrict M, double *restrict r, int64_t m, double *restrict diag,
                       double *restrict col, double rel_tol) {
    for (int64_t j = 0; j < m; ++j) {
        double *Mj = M + j * m;
        const double d = Mj[j];
        if (!(d > rel_tol * diag[j] && d > 1e-300)) {
            diag[j] = 0;
            for (int64_t i = j + 1; i < m; ++i) M[i * m + j] = 0;
            continue;
        }
        const double sd = sqrt(d), is = 1.0 / sd;
        Mj[j] = sd;
        diag[j] = is;
        for (int64_t i = j + 1; i < m; ++i) {
            M[i * m + j] *= is;
            col[i] = M[i * m + j];
        }
        for (int64_t i = j + 1; i < m; ++i) {
            double *restrict Mi = M + i * m;
            const double f = col[i];
            for (int64_t l = j + 1; l <= i; ++l) Mi[l] -= f * col[l];
        }
    }
    for (int64_t i = 0; i < m; ++i) {
        double s = r[i];
        const double *Mi = M + i * m;
        for (int64_t t = 0; t < i; ++t) s -= Mi[t] * r[t];
        r[i] = s * diag[i];
    }
    for (int64_t i = m - 1; i >= 0; --i) {
        const double x = r[i] * diag[i];
        r[i] = x;
        const double *Mi = M + i * m;
        for (int64_t t = 0; t < i; ++t) r[t] -= Mi[t] * x;
    }
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
#include "lasso_cd_impl.h"
#undef REAL
#undef SFX
#undef EPS

#define REAL double
#define SFX(name) name##_f64
#define EPS DBL_EPSILON
#include "lasso_cd_impl.h"
#undef REAL
#undef SFX
#undef EPS

/* SHRINKAGE_ABI is given on the command line (-D) by shrinkage._native. */
int shrinkage_codes_abi(void) { return SHRINKAGE_ABI; }
