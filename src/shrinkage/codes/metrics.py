"""Reconstruction and sparsity metrics of a code (numpy or torch in; Python floats out)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ._docs import fill_doc
from ._encode import _to_tensor


def _prep(X, D, codes):
    # float64 throughout: squared float32 signals overflow near 1e19 (NaN) and underflow
    # near 1e-23 (a "perfect fit"), both within float32's range
    Xt = _to_tensor(X, "X", dtype=torch.float64)
    Dt = _to_tensor(D, "D", dtype=Xt.dtype, device=Xt.device)
    Zt = _to_tensor(codes, "codes", dtype=Xt.dtype, device=Xt.device)
    if Zt.shape != (Xt.shape[0], Dt.shape[0]) or Dt.shape[1] != Xt.shape[1]:
        raise ValueError(
            f"shapes do not match: X {tuple(Xt.shape)}, D {tuple(Dt.shape)} (n_atoms, n_features),"
            f" codes {tuple(Zt.shape)} (n_samples, n_atoms)"
        )
    return Xt, Dt, Zt


@fill_doc
def relative_error(X, D, codes) -> float:
    """Mean over rows of ||x - r D||^2 / ||x||^2 (rows with x = 0 are skipped).

    The fraction of each signal's energy that its reconstruction ``r D`` misses, averaged
    over the rows: 0 for a perfect fit, 1 for codes that are all zero.

    %(reconstruction_parameters)s

    Returns
    -------
    float
        The mean relative squared error; 0.0 when every row of X is zero; NaN when the
        inputs hold NaN.

    Raises
    ------
    %(raises_shapes, raises_not_array)s

    Examples
    --------
    >>> relative_error(np.array([[1.0, 1.0]]), np.eye(2), np.array([[1.0, 0.0]]))
    0.5
    >>> relative_error(np.array([[1.0, 1.0]]), np.eye(2), np.zeros((1, 2)))
    1.0
    """
    Xt, Dt, Zt = _prep(X, D, codes)
    num = ((Xt - Zt @ Dt) ** 2).sum(1)
    den = (Xt**2).sum(1)
    keep = den != 0  # a NaN row stays, and makes the mean NaN (den > 0 dropped it)
    if not bool(keep.any()):
        return 0.0
    return float((num[keep] / den[keep]).mean())


@fill_doc
def snr_db(X, D, codes) -> float:
    """10 log10(sum ||x||^2 / sum ||x - r D||^2), in decibels (inf for a perfect fit).

    Signal and error energies are summed over all rows before the ratio (unlike
    ``relative_error``, which averages per-row ratios), so large signals weigh more.

    %(reconstruction_parameters)s

    Returns
    -------
    float
        The signal-to-noise ratio in dB; ``math.inf`` when the reconstruction is exact,
        ``-math.inf`` when X is all zeros and the reconstruction is not, NaN when X has no
        rows (nothing was measured) or the inputs hold NaN.

    Raises
    ------
    %(raises_shapes, raises_not_array)s

    Examples
    --------
    Missing 0.1 of a signal of energy 2 leaves an error of energy 0.01:
    ``10 log10(2 / 0.01) = 23.01`` dB.

    >>> round(snr_db(np.array([[1.0, 1.0]]), np.eye(2), np.array([[1.0, 0.9]])), 3)
    23.01
    >>> snr_db(np.array([[1.0, 1.0]]), np.eye(2), np.array([[1.0, 1.0]]))
    inf
    """
    Xt, Dt, Zt = _prep(X, D, codes)
    if Xt.shape[0] == 0:
        return math.nan  # no rows: not a perfect fit
    err = float(((Xt - Zt @ Dt) ** 2).sum())
    sig = float((Xt**2).sum())
    if err == 0:
        return math.inf
    if sig == 0:
        return -math.inf  # all-zero signals, a non-zero reconstruction: no signal at all
    return 10.0 * math.log10(sig / err)


@fill_doc
def active_fraction(codes) -> float:
    """Mean fraction of non-zero coefficients per code.

    The number of exact non-zeros divided by the number of coefficients (the l0 "norm"
    per code over n_atoms, averaged over the codes).

    Parameters
    ----------
    codes : torch.Tensor or numpy.ndarray
        Codes of any shape, usually (n_samples, n_atoms).

    Returns
    -------
    float
        The fraction in [0, 1]; 0.0 for empty codes; NaN when a code is NaN (a failed
        encode: neither active nor inactive).

    Raises
    ------
    %(raises_codes_not_array)s

    Examples
    --------
    >>> active_fraction(np.array([[0.0, 1.0], [0.0, 0.0]]))
    0.25
    """
    Zt = _to_tensor(codes, "codes")
    if Zt.numel() == 0:
        return 0.0
    return float(_active(Zt).mean())


def _active(Zt):
    """1.0 where a code is non-zero, 0.0 where it is zero, NaN where it is NaN (``!= 0``
    alone would count a NaN as active)."""
    return (Zt != 0).double().masked_fill(Zt.isnan(), math.nan)


@fill_doc
def atom_usage(codes) -> np.ndarray:
    """Fraction of samples in which each atom is active, shape (n_atoms,).

    Atoms at 0 are dead; atoms near 1 are always on.

    Parameters
    ----------
    %(codes)s

    Returns
    -------
    numpy.ndarray
        float64, shape (n_atoms,): for each atom the fraction of the rows where its
        coefficient is non-zero (NaN for an atom with a NaN coefficient). Its mean is
        ``active_fraction``.

    Raises
    ------
    ValueError
        When ``codes`` is not 2-D.
    %(raises_codes_not_array)s

    Examples
    --------
    >>> Z = np.array([[0.0, 1.0], [2.0, 1.0]])
    >>> atom_usage(Z)
    array([0.5, 1. ])
    >>> float(atom_usage(Z).mean()) == active_fraction(Z)
    True
    """
    Zt = _to_tensor(codes, "codes")
    if Zt.ndim != 2:
        raise ValueError(f"codes must be 2-D (n_samples, n_atoms), got shape {tuple(Zt.shape)}")
    if Zt.shape[0] == 0:
        return np.zeros(Zt.shape[1])  # no sample: no atom used (active_fraction's 0.0)
    return _active(Zt).mean(0).cpu().numpy()


__all__ = ["relative_error", "snr_db", "active_fraction", "atom_usage"]
