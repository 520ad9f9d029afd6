"""Reconstruction and sparsity metrics of a code (numpy or torch in; Python floats out)."""

from __future__ import annotations

import math

import numpy as np

from ._encode import _to_tensor


def _prep(X, D, codes):
    Xt = _to_tensor(X, "X")
    Dt = _to_tensor(D, "D", dtype=Xt.dtype, device=Xt.device)
    Zt = _to_tensor(codes, "codes", dtype=Xt.dtype, device=Xt.device)
    if Zt.shape != (Xt.shape[0], Dt.shape[0]) or Dt.shape[1] != Xt.shape[1]:
        raise ValueError(
            f"shapes do not match: X {tuple(Xt.shape)}, D {tuple(Dt.shape)} (n_atoms, n_features),"
            f" codes {tuple(Zt.shape)} (n_samples, n_atoms)"
        )
    return Xt, Dt, Zt


def relative_error(X, D, codes) -> float:
    """Mean over rows of ||x - r D||^2 / ||x||^2 (rows with x = 0 are skipped).

    >>> relative_error(np.array([[1.0, 1.0]]), np.eye(2), np.array([[1.0, 0.0]]))
    0.5
    """
    Xt, Dt, Zt = _prep(X, D, codes)
    num = ((Xt - Zt @ Dt) ** 2).sum(1)
    den = (Xt**2).sum(1)
    keep = den > 0
    if not bool(keep.any()):
        return 0.0
    return float((num[keep] / den[keep]).mean())


def snr_db(X, D, codes) -> float:
    """10 log10(sum ||x||^2 / sum ||x - r D||^2), in decibels (inf for a perfect fit).

    >>> round(snr_db(np.array([[1.0, 1.0]]), np.eye(2), np.array([[1.0, 0.9]])), 3)
    23.01
    """
    Xt, Dt, Zt = _prep(X, D, codes)
    err = float(((Xt - Zt @ Dt) ** 2).sum())
    sig = float((Xt**2).sum())
    if err == 0:
        return math.inf
    return 10.0 * math.log10(sig / err)


def active_fraction(codes) -> float:
    """Mean fraction of non-zero coefficients per code.

    >>> active_fraction(np.array([[0.0, 1.0], [0.0, 0.0]]))
    0.25
    """
    Zt = _to_tensor(codes, "codes")
    if Zt.numel() == 0:
        return 0.0
    return float((Zt != 0).double().mean())


def atom_usage(codes) -> np.ndarray:
    """Fraction of samples in which each atom is active, shape (n_atoms,).

    Atoms at 0 are dead; atoms near 1 are always on.

    >>> atom_usage(np.array([[0.0, 1.0], [2.0, 1.0]]))
    array([0.5, 1. ])
    """
    Zt = _to_tensor(codes, "codes")
    if Zt.ndim != 2:
        raise ValueError(f"codes must be 2-D (n_samples, n_atoms), got shape {tuple(Zt.shape)}")
    return (Zt != 0).double().mean(0).cpu().numpy()


__all__ = ["relative_error", "snr_db", "active_fraction", "atom_usage"]
