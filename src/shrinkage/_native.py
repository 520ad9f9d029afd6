"""Compile, cache and load the package's small C libraries (built at first use, never shipped).

Each library is C source held in a Python string. :class:`NativeLibrary` compiles it with the
system C compiler (``$CC``, else gcc, cc or clang) into a per-user cache folder
(``$SHRINKAGE_CACHE/kernels``, else ``$XDG_CACHE_HOME/shrinkage/kernels``, else
``~/.cache/shrinkage/kernels``) and loads it with ctypes. The file name carries a hash of
the source, the compiler, the flags, the CPU and the ABI number, so a changed source or
another machine builds its own copy; the build goes to a temporary file renamed into place,
so concurrent builders never load half a file. ``SHRINKAGE_NO_COMPILE=1`` disables every
build. When no build works, ``load()`` returns None after one ``RuntimeWarning`` and the
callers use their torch code instead.

``POOL_SOURCE`` is the C work-claiming thread pool that the libraries share
(``run_chunks(fn, ctx, n_chunks, n_threads)``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["NativeLibrary", "cache_dir", "compiler", "FLAG_SETS", "POOL_SOURCE"]

# Tried in order: tuned for this CPU first, then generic.
FLAG_SETS = (
    ["-O3", "-march=native", "-pthread"],
    ["-O3", "-pthread"],
)


def cache_dir() -> Path:
    """Folder of the compiled libraries (created on the first build)."""
    root = os.environ.get("SHRINKAGE_CACHE")
    if root:
        return Path(root) / "kernels"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "shrinkage" / "kernels"


def compiler() -> str | None:
    """The C compiler to use: ``$CC`` when it exists, else gcc, cc or clang; None if none."""
    cc = os.environ.get("CC")
    if cc and shutil.which(cc.split()[0]):
        return cc
    for name in ("gcc", "cc", "clang"):
        if shutil.which(name):
            return name
    return None


def _cpu_tag() -> str:
    # -march=native code must not be reused on another CPU sharing the cache folder.
    try:
        with open("/proc/cpuinfo") as fh:
            info = [ln for ln in fh if ln.startswith(("model name", "flags"))][:2]
    except OSError:
        info = [platform.processor()]
    return "".join(info) + platform.machine() + sys.platform


def build(
    name: str, source: str, cc: str, flags: Sequence[str], abi: int, libs: Sequence[str] = ()
) -> Path:
    """Compile ``source`` into ``cache_dir()/<name>-<hash>.so`` unless it is there already.

    ``libs`` are linker arguments (``-lm``) put after the source file."""
    key = hashlib.sha256(
        source.encode()
        + " ".join([cc, *flags, *libs]).encode()
        + _cpu_tag().encode()
        + str(abi).encode()
    ).hexdigest()[:16]
    out_dir = cache_dir()
    target = out_dir / f"{name}-{key}.so"
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}-", suffix=".so")
    os.close(fd)
    src_file = Path(tmp).with_suffix(".c")
    src_file.write_text(source)
    try:
        cmd = [*cc.split(), *flags, "-fPIC", "-shared", "-o", tmp, str(src_file), *libs]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[-500:]}")
        os.replace(tmp, target)  # atomic: concurrent builders never see half a file
    finally:
        Path(tmp).unlink(missing_ok=True)
        src_file.unlink(missing_ok=True)
    return target


class NativeLibrary:
    """One C library, compiled and loaded once per process on the first :meth:`load`.

    ``wrap(lib, path, flags)`` turns the ctypes handle into what :meth:`load` returns; the
    library must export ``int shrinkage_<name>_abi(void)`` returning ``abi``.
    ``flag_sets`` (a callable, read at each build) lists the flag sets to try in order.
    ``libs``: linker arguments. ``what`` and ``fallback`` word the warning given when
    nothing builds.

    Usage: ``LIB = NativeLibrary("mylib", SOURCE, 1, Handle, "compiled X", "torch's X")``
    at import, then ``h = LIB.load()`` where needed, with the torch path when ``h is None``.
    """

    def __init__(
        self,
        name: str,
        source: str,
        abi: int,
        wrap: Callable,
        what: str,
        fallback: str,
        flag_sets: Callable[[], Sequence[Sequence[str]]] = lambda: FLAG_SETS,
        libs: Sequence[str] = (),
    ):
        self.name, self.source, self.abi = name, source, abi
        self.wrap, self.what, self.fallback = wrap, what, fallback
        self.flag_sets = flag_sets
        self.libs = tuple(libs)
        self._lock = threading.Lock()
        self._tried = False
        self._handle = None
        self.error: str | None = None

    def _try_load(self):
        if os.environ.get("SHRINKAGE_NO_COMPILE", "") not in ("", "0"):
            self.error = "SHRINKAGE_NO_COMPILE is set"
            return None
        cc = compiler()
        if cc is None:
            self.error = "no C compiler found (looked for $CC, gcc, cc, clang)"
            return None
        errors = []
        for flags in self.flag_sets():
            flags = list(flags)
            try:
                path = build(self.name, self.source, cc, flags, self.abi, self.libs)
                lib = ctypes.CDLL(str(path))
                if getattr(lib, f"shrinkage_{self.name}_abi")() != self.abi:
                    raise RuntimeError(f"{path} has a different ABI")
                return self.wrap(lib, path, flags)
            except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as exc:
                errors.append(str(exc))
        self.error = "; ".join(errors)
        return None

    def load(self):
        """The wrapped library (built on the first call, then cached), or None."""
        if self._tried:
            return self._handle
        with self._lock:
            if not self._tried:
                self._handle = self._try_load()
                self._tried = True
                if self._handle is None:
                    warnings.warn(
                        f"shrinkage: {self.what} unavailable ({self.error}); "
                        f"using {self.fallback} instead",
                        RuntimeWarning,
                        stacklevel=3,
                    )
        return self._handle

    def reset(self) -> None:
        """Forget the loaded library (tests use it to simulate a machine without a compiler)."""
        with self._lock:
            self._tried = False
            self._handle = None
            self.error = None


POOL_SOURCE = r"""#include <stdint.h>
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
"""
