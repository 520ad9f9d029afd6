"""Planted sparse-coding problems: signals made of a few atoms of a known dictionary.

The test bed of dictionary learning (Aharon, Elad & Bruckstein 2006, K-SVD; scikit-learn's
``make_sparse_coded_signal``): does learning find the atoms the data were made of? Measured
by ``atom_recovery``.
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import check_int_at_least, check_nonnegative, check_scalar


def planted_problem(
    n_samples: int = 3000,
    n_atoms: int = 40,
    n_features: int = 16,
    n_active: int = 3,
    noise: float = 0.01,
    amplitude=(1.0, 2.0),
    seed: int = 0,
):
    """Signals ``x = z D + noise`` with a random unit-norm dictionary D (rows Gaussian, then
    normalised) and codes z with exactly ``n_active`` non-zeros per row, at atoms drawn
    uniformly without replacement, of random sign and magnitude uniform in ``amplitude``;
    noise is Gaussian with standard deviation ``noise`` per feature.

    Returns ``(X, D, Z)``: (n_samples, n_features), (n_atoms, n_features), (n_samples,
    n_atoms) float64 arrays.

    The generative model of the K-SVD experiments (Aharon, Elad & Bruckstein 2006); learning
    a dictionary on X and comparing it with D (``atom_recovery``) measures whether
    learning finds the atoms the data were made of.

    Parameters
    ----------
    n_samples : int, default 3000
        Number of signals, >= 1.
    n_atoms : int, default 40
        Number of atoms of the planted dictionary, >= 1.
    n_features : int, default 16
        Dimension of the signals, >= 1.
    n_active : int, default 3
        Non-zero coefficients per code, between 0 and ``n_atoms``.
    noise : float, default 0.01
        Standard deviation of the Gaussian noise added to each feature, >= 0.
    amplitude : (float, float), default (1.0, 2.0)
        ``(low, high)`` with ``0 <= low <= high``: range of the coefficients' magnitudes.
    seed : int, default 0
        Seed of ``numpy.random.default_rng``; the same seed gives the same problem.

    Returns
    -------
    X : numpy.ndarray
        (n_samples, n_features) signals ``Z @ D + noise``.
    D : numpy.ndarray
        (n_atoms, n_features) planted dictionary, unit-norm rows.
    Z : numpy.ndarray
        (n_samples, n_atoms) planted codes, ``n_active`` non-zeros per row.

    Raises
    ------
    ValueError
        When a size is not an integer in range, ``n_active > n_atoms``, ``noise`` is not
        a finite number >= 0, or ``amplitude`` is not a pair ``(low, high)`` with
        ``0 <= low <= high < inf``.

    Examples
    --------
    >>> X, D, Z = planted_problem(100, 8, 6, 2, seed=1)
    >>> X.shape, D.shape, int((Z != 0).sum(1).max())
    ((100, 6), (8, 6), 2)

    Without noise the signals are exactly the planted codes times the planted atoms:

    >>> X, D, Z = planted_problem(50, 8, 6, 2, noise=0.0, seed=1)
    >>> bool(np.allclose(np.linalg.norm(D, axis=1), 1.0)), bool(np.array_equal(X, Z @ D))
    (True, True)
    """
    n_samples = check_int_at_least("n_samples", n_samples, 1)
    n_atoms = check_int_at_least("n_atoms", n_atoms, 1)
    n_features = check_int_at_least("n_features", n_features, 1)
    n_active = check_int_at_least("n_active", n_active, 0)
    if n_active > n_atoms:
        raise ValueError(f"n_active must be <= n_atoms = {n_atoms}, got n_active={n_active}")
    check_nonnegative("noise", noise)
    check_scalar("noise", noise)  # finite: inf noise made every signal inf / NaN
    lo, hi = (float(a) for a in amplitude)
    if not 0 <= lo <= hi or not math.isfinite(hi):
        raise ValueError(
            f"amplitude must be (low, high) with 0 <= low <= high < inf, got {amplitude}"
        )
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((n_atoms, n_features))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = np.zeros((n_samples, n_atoms))
    idx = np.argsort(rng.random((n_samples, n_atoms)), axis=1)[:, :n_active]
    vals = rng.choice([-1.0, 1.0], (n_samples, n_active)) * rng.uniform(
        lo, hi, (n_samples, n_active)
    )
    np.put_along_axis(Z, idx, vals, axis=1)
    X = Z @ D + noise * rng.standard_normal((n_samples, n_features))
    return X, D, Z


def matched_cosines(D_true, D) -> np.ndarray:
    """For each true atom, the largest ``|cos|`` with a learned atom (sign and order free).

    Parameters
    ----------
    D_true : array_like
        (n_true, n_features) reference atoms, e.g. the ``D`` of ``planted_problem``.
    D : array_like
        (n_atoms, n_features) learned atoms; their number may differ from ``n_true``.

    Returns
    -------
    numpy.ndarray
        float64, shape (n_true,): the absolute cosine similarity of each true atom with its
        closest learned atom, in [0, 1].

    Raises
    ------
    ValueError
        When D_true or D is not 2-D, has no atom or a NaN or inf, their widths differ,
        or an atom of either is zero.

    Examples
    --------
    >>> D_true = np.eye(2)
    >>> matched_cosines(D_true, np.array([[0.0, -3.0], [1.0, 1.0]])).round(4)
    array([0.7071, 1.    ])
    """
    A = np.asarray(D_true, dtype=np.float64)
    B = np.asarray(D, dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[1]:
        raise ValueError(
            f"D_true and D must be (n_atoms, n_features) with the same n_features, got "
            f"{A.shape} and {B.shape}"
        )
    if len(A) == 0 or len(B) == 0:
        raise ValueError(f"D_true and D need at least one atom each, got {A.shape} and {B.shape}")
    if not (np.isfinite(A).all() and np.isfinite(B).all()):
        raise ValueError("D_true and D must be finite (a NaN atom matches nothing, silently)")
    na = np.linalg.norm(A, axis=1, keepdims=True)
    nb = np.linalg.norm(B, axis=1, keepdims=True)
    if (na == 0).any() or (nb == 0).any():
        raise ValueError("a zero atom has no direction: every atom needs a non-zero norm")
    return np.abs((A / na) @ (B / nb).T).max(axis=1)


def atom_recovery(D_true, D, cos: float = 0.95) -> float:
    """Fraction of the true atoms that some learned atom matches with ``|cos| >= cos``.

    The recovery rate of dictionary-learning benchmarks on planted problems (Aharon, Elad &
    Bruckstein 2006): a true atom counts as found when a learned atom points along it up to
    sign, whatever the order of the atoms.

    Parameters
    ----------
    D_true : array_like
        (n_true, n_features) reference atoms.
    D : array_like
        (n_atoms, n_features) learned atoms.
    cos : float, default 0.95
        Threshold on ``|cos|``, in (0, 1].

    Returns
    -------
    float
        The fraction in [0, 1] of the rows of ``D_true`` whose ``matched_cosines``
        value is at least ``cos``.

    Raises
    ------
    ValueError
        When ``cos`` is not in (0, 1], or as ``matched_cosines`` (shapes, zero atoms).

    Examples
    --------
    >>> D = np.eye(3)
    >>> atom_recovery(D, -D[[2, 0, 1]]), atom_recovery(D, D[:2])
    (1.0, 0.6666666666666666)
    """
    if not 0 < cos <= 1:
        raise ValueError(f"cos must be in (0, 1], got cos={cos!r}")
    return float((matched_cosines(D_true, D) >= cos).mean())


__all__ = ["planted_problem", "matched_cosines", "atom_recovery"]
