"""Compiled CSR kernels for exported Linear layers, built from C source at first use.

The C source (``spmm_source.SOURCE``) is compiled with the system C compiler into a
per-user cache folder (``$SHRINKAGE_CACHE``, else ``$XDG_CACHE_HOME/shrinkage``, else
``~/.cache/shrinkage``) and loaded with ctypes; no binary is shipped. The file name
carries a hash of the source, the compiler, the flags and the CPU, so a changed source
or another machine builds its own copy. Set ``SHRINKAGE_NO_COMPILE=1`` to never compile.

``load()`` returns a :class:`Kernels` handle, or ``None`` (with one ``RuntimeWarning``)
when no compiler works; callers then fall back to torch's own sparse kernels.
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
from pathlib import Path

import torch

from .spmm_source import SOURCE

__all__ = ["Kernels", "load", "available", "cache_dir"]

_ABI = 3
_lock = threading.Lock()
_state: dict = {"tried": False, "kernels": None, "error": None}

# Tried in order: tuned for this CPU first, then generic.
_FLAG_SETS = (
    ["-O3", "-march=native", "-pthread"],
    ["-O3", "-pthread"],
)


class Kernels:
    """ctypes handle on the compiled library: ``fn(dtype, index_bits)`` -> C function."""

    def __init__(self, lib: ctypes.CDLL, path: Path, flags: list[str]):
        self.lib = lib
        self.path = path
        self.flags = flags
        self._fns = {}
        for dt, dname in ((torch.float32, "f32"), (torch.float64, "f64")):
            for bits, iname in ((32, "i32"), (16, "u16")):
                f = getattr(lib, f"shrinkage_spmm_{dname}_{iname}")
                f.restype = None
                f.argtypes = (
                    [ctypes.c_int64, ctypes.c_int64] + [ctypes.c_void_p] * 6 + [ctypes.c_int]
                )
                self._fns[(dt, bits)] = f
        self._transpose = {}
        for dt, dname in ((torch.float32, "f32"), (torch.float64, "f64")):
            f = getattr(lib, f"shrinkage_transpose_{dname}")
            f.restype = None
            f.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
            f.argtypes += [ctypes.c_int]
            self._transpose[dt] = f

    def transpose(self, x: torch.Tensor) -> torch.Tensor:
        """Contiguous ``x.t()`` of a contiguous 2-D float32/float64 CPU tensor."""
        rows, cols = x.shape
        out = torch.empty((cols, rows), dtype=x.dtype)
        self._transpose[x.dtype](rows, cols, x.data_ptr(), out.data_ptr(), torch.get_num_threads())
        return out

    def fn(self, dtype: torch.dtype, index_bits: int):
        return self._fns.get((dtype, index_bits))


def cache_dir() -> Path:
    root = os.environ.get("SHRINKAGE_CACHE")
    if root:
        return Path(root) / "kernels"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "shrinkage" / "kernels"


def _compiler() -> str | None:
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


def _build(cc: str, flags: list[str]) -> Path:
    src = SOURCE.encode()
    key = hashlib.sha256(
        src + " ".join([cc, *flags]).encode() + _cpu_tag().encode() + str(_ABI).encode()
    ).hexdigest()[:16]
    out_dir = cache_dir()
    target = out_dir / f"spmm-{key}.so"
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".spmm-", suffix=".so")
    os.close(fd)
    src_file = Path(tmp).with_suffix(".c")
    src_file.write_text(SOURCE)
    try:
        cmd = [*cc.split(), *flags, "-fPIC", "-shared", "-o", tmp, str(src_file)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {res.stderr.strip()[-500:]}")
        os.replace(tmp, target)  # atomic: concurrent builders never see half a file
    finally:
        Path(tmp).unlink(missing_ok=True)
        src_file.unlink(missing_ok=True)
    return target


def _try_load() -> Kernels | None:
    if os.environ.get("SHRINKAGE_NO_COMPILE", "") not in ("", "0"):
        _state["error"] = "SHRINKAGE_NO_COMPILE is set"
        return None
    cc = _compiler()
    if cc is None:
        _state["error"] = "no C compiler found (looked for $CC, gcc, cc, clang)"
        return None
    errors = []
    for flags in _FLAG_SETS:
        try:
            path = _build(cc, flags)
            lib = ctypes.CDLL(str(path))
            if lib.shrinkage_spmm_abi() != _ABI:
                raise RuntimeError(f"{path} has a different ABI")
            return Kernels(lib, path, flags)
        except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as exc:
            errors.append(str(exc))
    _state["error"] = "; ".join(errors)
    return None


def load() -> Kernels | None:
    """The compiled kernels (built on first call, then cached), or None if unavailable."""
    if _state["tried"]:
        return _state["kernels"]
    with _lock:
        if not _state["tried"]:
            kernels = _try_load()
            _state["kernels"] = kernels
            _state["tried"] = True
            if kernels is None:
                warnings.warn(
                    "shrinkage: compiled sparse kernels unavailable "
                    f"({_state['error']}); using torch's sparse kernels instead",
                    RuntimeWarning,
                    stacklevel=2,
                )
    return _state["kernels"]


def available() -> bool:
    return load() is not None


def _reset() -> None:
    """Forget the loaded library (tests use it to simulate a machine without a compiler)."""
    with _lock:
        _state.update(tried=False, kernels=None, error=None)
