"""l1 codes by covariance coordinate descent in a compiled kernel (CPU, float32 / float64).

Per row, ``min_z 1/2 ||x - z D||^2 + lam ||z||_1`` is solved from ``G = D D^T`` and
``b = x D^T`` (torch / BLAS): coordinate descent with the covariance update
``z_j <- soft(z_j + c_j / G_jj, lam / G_jj)``, ``c = b - z G`` (Friedman, Hastie & Tibshirani
2010) on a small working set per row, then an exact solve on the support and signs found,
accepted when every other atom satisfies ``|c_j| <= lam (1 + min(tol, 1e-3))``: the codes
are the lasso solution (up to that slack), not a tol-accurate one. Where the solve is
refused, CD's codes at ``tol`` are the answer; a support of more non-zeros than features
(singular: no exact solve can take it) must also be stationary,
``|c_j - lam sign z_j| <= sqrt(tol) lam``, before the row is flagged converged. The same
library holds
the block-coordinate dictionary update of ``_learn`` (``bcd_sweep``, in blocks of atoms
with one BLAS product each above 64 atoms) and the batch statistics it reads, from the
codes' non-zeros (``code_stats``). The C source is
``shrinkage/_native/lasso_cd.c``, built at first use by ``shrinkage._native``;
``solve_l1_cd`` returns None where it cannot run (no compiler,
``SHRINKAGE_NO_COMPILE=1``, a non-CPU tensor, another dtype) and callers use the torch FISTA
paths (``shrinkage.codes._fast``).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from .. import _native

_BCD_BLOCK = 64  # atoms per block of the dictionary update (one BLAS product each)
_KKT_SLACK = 1e-3  # same meaning as in _fast: an atom must beat lam by this much to count


class _Kernel:
    """ctypes handle: ``fn[dtype]`` / ``bcd[dtype]`` are ``shrinkage_lasso_cd_f32`` /
    ``shrinkage_bcd_f32`` and their ``_f64`` twins."""

    def __init__(self, lib: ctypes.CDLL, path: Path, flags: list[str]):
        self.lib, self.path, self.flags = lib, path, flags
        self.fn = {}
        for dt, name in ((torch.float32, "f32"), (torch.float64, "f64")):
            f = getattr(lib, f"shrinkage_lasso_cd_{name}")
            f.restype = ctypes.c_int
            f.argtypes = (
                [ctypes.c_int64] * 3
                + [ctypes.c_void_p] * 4
                + [ctypes.c_double] * 3
                + [ctypes.c_int64, ctypes.c_int]
                + [ctypes.c_void_p] * 4
                + [ctypes.c_int]
            )
            self.fn[dt] = f
        vp, i64 = ctypes.c_void_p, ctypes.c_int64
        self.bcd = self._bind("shrinkage_bcd", [i64] * 2 + [vp] * 3)
        self.stats = self._bind("shrinkage_code_stats", [i64] * 3 + [vp] * 6 + [ctypes.c_int])
        self.bcd_block = self._bind("shrinkage_bcd_block", [i64] * 4 + [vp] * 4)

    def _bind(self, stem: str, argtypes: list) -> dict:
        """dtype -> ``<stem>_f32`` / ``<stem>_f64``, returning an int status."""
        out = {}
        for dt, name in ((torch.float32, "f32"), (torch.float64, "f64")):
            f = getattr(self.lib, f"{stem}_{name}")
            f.restype = ctypes.c_int
            f.argtypes = argtypes
            out[dt] = f
        return out


_LIB = _native.NativeLibrary(
    "codes",
    _Kernel,
    "compiled l1 coordinate-descent encoder",
    "the torch FISTA encoder",
)


def load() -> _Kernel | None:
    """The compiled kernel (built on the first call), or None with one RuntimeWarning."""
    return _LIB.load()


def usable(X: torch.Tensor) -> bool:
    """Whether ``solve_l1_cd`` can run on X (CPU float32/float64) without building."""
    return X.device.type == "cpu" and X.dtype in (torch.float32, torch.float64)


def solve_l1_cd(X, D, G, lam, tol, max_iter, Z0=None, energy=False):
    """l1 codes of the rows of X; returns (codes, iterations, converged[, energies]) or None.

    ``G = D D^T``. ``max_iter`` bounds a row's iterations (coordinate sweeps of its working
    set plus optimality scans of all atoms); ``tol`` is the relative change of a sweep below
    which CD stops when the exact solve on the support is refused (singular G_SS). ``Z0``:
    warm start. ``energy``: also each row's ``1/2 ||x - z D||^2 + lam ||z||_1`` (float64), from
    the kernel's own b and c at no extra pass over the codes. None when the kernel cannot
    run here.

    Examples
    --------
    >>> D = torch.eye(3, dtype=torch.float64); X = torch.tensor([[2.0, -0.5, 1.0]])
    >>> r = solve_l1_cd(X.double(), D, D @ D.T, 1.0, 1e-4, 100)
    >>> r is None or r[0].tolist() == [[1.0, 0.0, 0.0]]
    True
    """
    if not usable(X):
        return None
    kern = load()
    if kern is None:
        return None
    n, k = X.shape[0], D.shape[0]
    dt = X.dtype
    B = (X @ D.T).contiguous()
    G = G.contiguous()
    idiag = (1.0 / torch.diagonal(G)).contiguous()
    warm = Z0 is not None
    Z = Z0.to(dtype=dt).contiguous().clone() if warm else torch.empty(n, k, dtype=dt)
    iters = torch.zeros(n, dtype=torch.int64)
    flags = torch.zeros(n, dtype=torch.uint8)
    eps = torch.finfo(dt).eps
    slack = max(min(_KKT_SLACK, tol), 1e3 * eps)
    xx = torch.linalg.vector_norm(X, dim=1, dtype=torch.float64) ** 2 if energy else None
    E = torch.empty(n, dtype=torch.float64) if energy else None
    rc = kern.fn[dt](
        n,
        k,
        D.shape[1],
        G.data_ptr(),
        B.data_ptr(),
        idiag.data_ptr(),
        Z.data_ptr(),
        float(lam),
        float(tol),
        float(slack),
        int(max_iter),
        int(warm),
        iters.data_ptr(),
        flags.data_ptr(),
        xx.data_ptr() if energy else None,
        E.data_ptr() if energy else None,
        torch.get_num_threads(),
    )
    if rc != 0:
        raise MemoryError("shrinkage: the l1 coordinate-descent encoder ran out of memory")
    out = (Z, iters, (flags & 1).bool())
    return (*out, E) if energy else out


def code_stats(Z, X, D, threads: int = 1):
    """``(X - Z D, Z^T Z, Z^T X)`` from the non-zeros of the codes Z by the compiled kernel
    (the dictionary update's statistics of a mini-batch); None where it cannot run or when
    over a quarter of Z is non-zero (dense products are then as cheap). ``threads``: the
    pool's threads to share it among; learning keeps 1 (measured at 256 atoms on two cores:
    two threads made a pass slower, the pool's helper contending with torch's OpenMP
    workers still spinning after the products around it).

    Examples
    --------
    >>> Z = torch.tensor([[0.0, 2.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    >>> out = code_stats(Z, torch.ones(4, 2), torch.eye(2))  # 2 of 8 codes non-zero
    >>> out is None or [t.tolist() for t in out[1:]]  # Z^T Z and Z^T X
    [[[1.0, 0.0], [0.0, 4.0]], [[1.0, 1.0], [2.0, 2.0]]]
    >>> out is None or out[0][0].tolist()  # X - Z D, first row
    [1.0, -1.0]
    """
    if not (usable(Z) and X.dtype == D.dtype == Z.dtype and X.device == D.device == Z.device):
        return None
    kern = load()
    if kern is None:
        return None
    Z, X, D = Z.contiguous(), X.contiguous(), D.contiguous()
    (n, k), p = Z.shape, X.shape[1]
    R = torch.empty(n, p, dtype=Z.dtype)
    AZ = torch.empty(k, k, dtype=Z.dtype)
    BZ = torch.empty(k, p, dtype=Z.dtype)
    ptrs = (Z.data_ptr(), X.data_ptr(), D.data_ptr(), R.data_ptr(), AZ.data_ptr(), BZ.data_ptr())
    rc = kern.stats[Z.dtype](n, k, p, *ptrs, int(threads))
    if rc < 0:
        raise MemoryError("shrinkage: the dictionary statistics ran out of memory")
    return None if rc else (R, AZ, BZ)


def bcd_sweep(D, A, B) -> bool:
    """One block-coordinate pass over the atoms of D in place (see ``_learn._bcd_sweep``) by
    the compiled kernel; False (D untouched) where it cannot run."""
    if not (usable(D) and D.is_contiguous() and A.dtype == B.dtype == D.dtype):
        return False
    if A.device.type != "cpu" or B.device.type != "cpu":
        return False
    kern = load()
    if kern is None:
        return False
    A, B = A.contiguous(), B.contiguous()
    k, p = D.shape
    if k <= _BCD_BLOCK:
        if kern.bcd[D.dtype](k, p, A.data_ptr(), B.data_ptr(), D.data_ptr()):
            raise MemoryError("shrinkage: the dictionary update ran out of memory")
        return True
    # Blocks of atoms: B_J - A_J D for a block is one BLAS product (D read once per block,
    # not once per atom); the kernel then corrects for the block's own earlier moves.
    delta = torch.empty(_BCD_BLOCK, p, dtype=D.dtype)
    for j0 in range(0, k, _BCD_BLOCK):
        j1 = min(k, j0 + _BCD_BLOCK)
        C = torch.addmm(B[j0:j1], A[j0:j1], D, alpha=-1)
        ptrs = (A.data_ptr(), C.data_ptr(), D.data_ptr(), delta.data_ptr())
        if kern.bcd_block[D.dtype](k, p, j0, j1 - j0, *ptrs):
            raise MemoryError("shrinkage: the dictionary update ran out of memory")
    return True
