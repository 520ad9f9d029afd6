/* The work-claiming thread pool shared by shrinkage's C libraries (included, not compiled
 * on its own): run_chunks(fn, ctx, n_chunks, n_threads). */
#ifndef SHRINKAGE_POOL_H
#define SHRINKAGE_POOL_H
#include <stdint.h>
#include <stddef.h>
#include <stdatomic.h>
#include <pthread.h>
#include <unistd.h>
#include <sched.h>

/* ---- a small work-claiming thread pool -------------------------------------
 *
 * The work is cut into chunks. The calling thread publishes the job and claims chunks
 * itself; helper threads claim what is left when they get a CPU.
 * Unlike an OpenMP region there is no barrier with threads that never started: on a
 * machine shared with other jobs a helper that is not scheduled simply does nothing,
 * instead of stalling the call for a scheduler tick (measured: 0.3 ms job -> 8-16 ms
 * with 2 OpenMP threads under load). The caller waits only for chunks a helper
 * actually claimed.
 *
 * state = (generation << 32) | next chunk. The caller makes the generation odd while
 * it writes the job fields and even again to publish them with chunk 0; a claim is a
 * compare-and-swap on the whole word, so a helper holding a stale job never claims.
 */
#define MAX_HELPERS 63
#define SPIN 2000

typedef void (*chunk_fn)(const void *ctx, int64_t chunk);

static struct {
    pthread_mutex_t mu, run_mu;
    pthread_cond_t cv;
    pid_t pid;
    int n_helpers;
    _Atomic uint64_t state;
    _Atomic int64_t done;
    _Atomic int sleepers;
    _Atomic(chunk_fn) fn;
    _Atomic(const void *) ctx;
    _Atomic int64_t n_chunks;
    _Atomic int helpers; /* helpers allowed on the current job */
} P = {.mu = PTHREAD_MUTEX_INITIALIZER,
       .run_mu = PTHREAD_MUTEX_INITIALIZER,
       .cv = PTHREAD_COND_INITIALIZER};

static pthread_mutex_t pool_init_mu = PTHREAD_MUTEX_INITIALIZER;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* 1: ran a chunk, 0: nothing to claim, -1: lost a race (try again) */
static int try_claim(int helper_id) {
    uint64_t s = atomic_load(&P.state);
    uint32_t gen = (uint32_t)(s >> 32), c = (uint32_t)s;
    if (gen & 1u) return 0;
    int64_t n = atomic_load(&P.n_chunks);
    chunk_fn fn = atomic_load(&P.fn);
    const void *ctx = atomic_load(&P.ctx);
    if (helper_id >= atomic_load(&P.helpers) || (int64_t)c >= n || fn == NULL) return 0;
    if (!atomic_compare_exchange_strong(&P.state, &s, s + 1)) return -1;
    fn(ctx, (int64_t)c);
    atomic_fetch_add(&P.done, 1);
    return 1;
}

static int work_left(int helper_id) {
    uint64_t s = atomic_load(&P.state);
    return !((s >> 32) & 1u) && (int64_t)(uint32_t)s < atomic_load(&P.n_chunks) &&
           helper_id < atomic_load(&P.helpers);
}

static void *helper_main(void *arg) {
    const int id = (int)(intptr_t)arg;
    long idle = 0;
    for (;;) {
        int r = try_claim(id);
        if (r != 0) { idle = 0; continue; }
        if (++idle < SPIN) { cpu_relax(); continue; }
        pthread_mutex_lock(&P.mu);
        atomic_fetch_add(&P.sleepers, 1);
        if (!work_left(id)) pthread_cond_wait(&P.cv, &P.mu);
        atomic_fetch_sub(&P.sleepers, 1);
        pthread_mutex_unlock(&P.mu);
        idle = 0;
    }
    return NULL;
}

/* Make sure `want` helpers exist (after a fork the child has none: start afresh). */
static void ensure_helpers(int want) {
    if (want > MAX_HELPERS) want = MAX_HELPERS;
    pid_t me = getpid();
    if (P.pid == me && P.n_helpers >= want) return;
    pthread_mutex_lock(&pool_init_mu);
    if (P.pid != me) {
        pthread_mutex_init(&P.mu, NULL);
        pthread_mutex_init(&P.run_mu, NULL);
        pthread_cond_init(&P.cv, NULL);
        atomic_store(&P.state, 0);
        atomic_store(&P.n_chunks, 0);
        atomic_store(&P.sleepers, 0);
        P.n_helpers = 0;
        P.pid = me;
    }
    while (P.n_helpers < want) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int err = pthread_create(&th, &attr, helper_main, (void *)(intptr_t)P.n_helpers);
        pthread_attr_destroy(&attr);
        if (err) break; /* fewer helpers: the caller does more chunks */
        P.n_helpers++;
    }
    pthread_mutex_unlock(&pool_init_mu);
}

/* Run fn(ctx, 0..n_chunks-1) on the caller plus up to n_threads-1 helpers. */
static void run_chunks(chunk_fn fn, const void *ctx, int64_t n_chunks, int n_threads) {
    if (n_threads > 1) ensure_helpers(n_threads - 1);
    if (n_threads <= 1 || P.n_helpers == 0 || pthread_mutex_trylock(&P.run_mu) != 0) {
        /* one thread, no helpers, or another caller owns the pool: do it all here */
        for (int64_t c = 0; c < n_chunks; ++c) fn(ctx, c);
        return;
    }
    uint32_t gen = (uint32_t)(atomic_load(&P.state) >> 32);
    atomic_store(&P.state, (uint64_t)(gen + 1u) << 32); /* odd: writing the job */
    atomic_store(&P.fn, fn);
    atomic_store(&P.ctx, ctx);
    atomic_store(&P.n_chunks, n_chunks);
    atomic_store(&P.helpers, n_threads - 1);
    atomic_store(&P.done, 0);
    atomic_store(&P.state, (uint64_t)(gen + 2u) << 32); /* even: published, chunk 0 */
    if (atomic_load(&P.sleepers) > 0) {
        pthread_mutex_lock(&P.mu);
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.mu);
    }
    for (;;) {
        int r = try_claim(-1);
        if (r == 0) break;
    }
    while (atomic_load(&P.done) < n_chunks) cpu_relax();
    atomic_store(&P.n_chunks, 0);
    pthread_mutex_unlock(&P.run_mu);
}

#endif /* SHRINKAGE_POOL_H */
