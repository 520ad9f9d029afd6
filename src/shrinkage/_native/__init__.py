"""Compile, cache and load the package's small C libraries (shipped as source, built at first use).

Each library is a ``.c`` file of this folder (package data, with the headers it includes:
``pool.h``, the work-claiming thread pool ``run_chunks(fn, ctx, n_chunks, n_threads)`` they
share, and ``lasso_cd_impl.h``, a solver written once and instantiated per precision by the
preprocessor). ``LIBRARIES`` lists them. ``NativeLibrary`` compiles one with the
system C compiler (``$CC``, else gcc, cc or clang), ``-DSHRINKAGE_ABI=<abi>``, into a per-user
cache folder
(``$SHRINKAGE_CACHE/kernels``, else ``$XDG_CACHE_HOME/shrinkage/kernels``, else
``~/.cache/shrinkage/kernels``) and loads it with ctypes. The file name carries a hash of
the sources, the compiler, the flags, the CPU and the ABI number, so a changed source or
another machine builds its own copy; the build goes to a temporary file renamed into place,
so concurrent builders never load half a file. ``SHRINKAGE_NO_COMPILE=1`` disables every
build. When no build works, ``load()`` returns None after one ``RuntimeWarning`` and the
callers use their torch code instead.

``python -m shrinkage._native --info`` says what is built and where; ``--build`` builds every
library now (``--strict`` adds ``-Wall -Wextra -Werror``, as CI does).
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
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "NativeLibrary",
    "Library",
    "LIBRARIES",
    "cache_dir",
    "compiler",
    "build",
    "FLAG_SETS",
    "WARNINGS",
    "SOURCE_DIR",
]

SOURCE_DIR = Path(__file__).resolve().parent
"""The folder of the C sources (``*.c``, ``*.h``)."""

# Every warning an error: what CI builds with (``python -m shrinkage._native --build --strict``).
WARNINGS = ("-Wall", "-Wextra", "-Werror")


@dataclass(frozen=True)
class Library:
    """One C library: its source file in ``SOURCE_DIR``, its ABI number (the library's
    ``shrinkage_<name>_abi()`` returns it) and linker arguments."""

    source: str
    abi: int
    libs: tuple[str, ...] = ()
    cflags: tuple[str, ...] = ()  # compiler options of this library only


LIBRARIES = {
    "codes": Library("lasso_cd.c", abi=3, libs=("-lm",)),  # l1 CD encoder, BCD update
    "spmm": Library("spmm.c", abi=3),  # CSR x dense kernels of exported layers
    "actmm": Library("actmm.c", abi=1),  # exported layer stacks skipping zero activations
    # the sparsifier's step: exact thresholds, ST-3's forward (no FMA contraction, so that each
    # entry is rounded as torch's separate operations round it), gmp's mask
    "prune": Library("prune.c", abi=1, cflags=("-ffp-contract=off",)),
}

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


def _sources_digest() -> bytes:
    """Every C source and header of ``SOURCE_DIR`` (a header change rebuilds all)."""
    files = sorted(SOURCE_DIR.glob("*.[ch]"))
    return b"".join(f.name.encode() + f.read_bytes() for f in files)


def build(
    name: str,
    source: str,
    cc: str,
    flags: Sequence[str],
    abi: int,
    libs: Sequence[str] = (),
    cflags: Sequence[str] = (),
) -> Path:
    """Compile ``SOURCE_DIR/source`` into ``cache_dir()/<name>-<hash>.so`` unless it is
    there already, with ``-DSHRINKAGE_ABI=<abi>``.

    ``libs`` are linker arguments (``-lm``) put after the source file; ``cflags`` compiler
    options of this library added to ``flags``."""
    flags = [*flags, *cflags]
    defines = [f"-DSHRINKAGE_ABI={int(abi)}", f"-I{SOURCE_DIR}"]
    key = hashlib.sha256(
        _sources_digest()
        + " ".join([cc, source, *flags, *defines[:1], *libs]).encode()
        + _cpu_tag().encode()
    ).hexdigest()[:16]
    out_dir = cache_dir()
    target = out_dir / f"{name}-{key}.so"
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}-", suffix=".so")
    os.close(fd)
    try:
        cmd = [*cc.split(), *flags, *defines, "-fPIC", "-shared", "-o", tmp]
        cmd += [str(SOURCE_DIR / source), *libs]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[-500:]}")
        os.replace(tmp, target)  # atomic: concurrent builders never see half a file
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


class NativeLibrary:
    """One C library, compiled and loaded once per process on the first ``load``.

    ``wrap(lib, path, flags)`` turns the ctypes handle into what ``load`` returns; the
    library must export ``int shrinkage_<name>_abi(void)`` returning ``abi``.
    ``flag_sets`` (a callable, read at each build) lists the flag sets to try in order.
    ``libs``: linker arguments. ``what`` and ``fallback`` word the warning given when
    nothing builds.

    Usage: ``LIB = NativeLibrary("mylib", Handle, "compiled X", "torch's X")`` at import (the
    name a key of ``LIBRARIES``), then ``h = LIB.load()`` where needed, with the torch
    path when ``h is None``.
    """

    def __init__(
        self,
        name: str,
        wrap: Callable,
        what: str,
        fallback: str,
        flag_sets: Callable[[], Sequence[Sequence[str]]] = lambda: FLAG_SETS,
    ):
        spec = LIBRARIES[name]
        self.name, self.source, self.abi = name, spec.source, spec.abi
        self.wrap, self.what, self.fallback = wrap, what, fallback
        self.flag_sets = flag_sets
        self.libs = spec.libs
        self.cflags = spec.cflags
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
                path = build(self.name, self.source, cc, flags, self.abi, self.libs, self.cflags)
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


def build_all(strict: bool = False) -> dict[str, Path]:
    """Build every library of ``LIBRARIES`` now with the first flag set that works
    (``strict``: each with ``WARNINGS`` added); returns name -> path. Raises
    RuntimeError naming the library and the compiler's message when one does not build."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (looked for $CC, gcc, cc, clang)")
    out = {}
    for name, spec in LIBRARIES.items():
        errors = []
        for flags in FLAG_SETS:
            flags = [*flags, *WARNINGS] if strict else list(flags)
            try:
                path = build(name, spec.source, cc, flags, spec.abi, spec.libs, spec.cflags)
                if getattr(ctypes.CDLL(str(path)), f"shrinkage_{name}_abi")() != spec.abi:
                    raise RuntimeError(f"{path} has a different ABI")
                out[name] = path
                break
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                errors.append(str(exc))
        else:
            raise RuntimeError(f"library {name!r} does not build: " + "; ".join(errors))
    return out


def info() -> dict:
    """What building would use: compiler, cache folder, flag sets, the libraries' sources."""
    cc = compiler()
    version = None
    if cc is not None:
        res = subprocess.run([*cc.split(), "--version"], capture_output=True, text=True)
        version = (res.stdout or res.stderr).splitlines()[0] if res.returncode == 0 else None
    return {
        "compiler": cc,
        "compiler_version": version,
        "cache_dir": str(cache_dir()),
        "source_dir": str(SOURCE_DIR),
        "flag_sets": [list(f) for f in FLAG_SETS],
        "no_compile": os.environ.get("SHRINKAGE_NO_COMPILE", "") not in ("", "0"),
        "libraries": {
            name: {
                "source": spec.source,
                "abi": spec.abi,
                "libs": list(spec.libs),
                "cflags": list(spec.cflags),
            }
            for name, spec in LIBRARIES.items()
        },
    }
