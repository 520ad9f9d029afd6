"""Compiled CSR kernels for exported Linear layers, built from C source at first use.

The C source (``shrinkage/_native/spmm.c``) is compiled and cached by ``shrinkage._native``
(per-user cache folder, ``SHRINKAGE_NO_COMPILE=1`` to never compile) and loaded with
ctypes; no binary is shipped.

``load()`` returns a ``Kernels`` handle, or ``None`` (with one ``RuntimeWarning``)
when no compiler works; callers then fall back to torch's own sparse kernels.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from ... import _native

__all__ = ["Kernels", "load", "available", "cache_dir"]

# Read at each build (tests replace it to make every build fail).
_FLAG_SETS = _native.FLAG_SETS
cache_dir = _native.cache_dir


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


_LIB = _native.NativeLibrary(
    "spmm",
    Kernels,
    "compiled sparse kernels",
    "torch's sparse kernels",
    flag_sets=lambda: _FLAG_SETS,
)


def load() -> Kernels | None:
    """The compiled kernels (built on first call, then cached), or None if unavailable."""
    return _LIB.load()


def available() -> bool:
    return load() is not None


def _reset() -> None:
    """Forget the loaded library (tests use it to simulate a machine without a compiler)."""
    _LIB.reset()
