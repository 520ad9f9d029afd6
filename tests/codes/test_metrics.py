"""Metrics against direct numpy formulas."""

import math

import numpy as np
import torch

from shrinkage.codes import active_fraction, atom_usage, relative_error, snr_db


def test_metrics_match_numpy():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 6))
    D = rng.standard_normal((9, 6))
    Z = rng.standard_normal((20, 9)) * (rng.random((20, 9)) < 0.3)
    R = X - Z @ D
    assert math.isclose(
        relative_error(X, D, Z), np.mean((R**2).sum(1) / (X**2).sum(1)), rel_tol=1e-12
    )
    assert math.isclose(snr_db(X, D, Z), 10 * np.log10((X**2).sum() / (R**2).sum()), rel_tol=1e-12)
    assert math.isclose(active_fraction(Z), np.count_nonzero(Z) / Z.size)
    np.testing.assert_allclose(atom_usage(Z), (Z != 0).mean(0))
    # torch in gives the same numbers.
    assert math.isclose(
        relative_error(torch.tensor(X), torch.tensor(D), torch.tensor(Z)),
        relative_error(X, D, Z),
        rel_tol=1e-12,
    )


def test_edge_cases():
    D = np.eye(2)
    X = np.array([[0.0, 0.0], [1.0, 2.0]])
    Z = np.array([[0.0, 0.0], [1.0, 2.0]])
    assert relative_error(X, D, Z) == 0.0  # the zero row is skipped, the other is exact
    assert snr_db(X, D, Z) == math.inf


def test_snr_of_all_zero_signals_is_minus_infinity_not_a_crash():
    X = np.zeros((3, 2))
    D = np.eye(2)
    assert snr_db(X, D, np.ones((3, 2))) == -math.inf
    assert snr_db(X, D, np.zeros((3, 2))) == math.inf


def test_no_rows_and_nan_codes_are_not_read_as_results():
    """snr_db of no rows is NaN (it was inf, a perfect fit); a NaN code is neither active nor
    inactive: active_fraction and that atom's usage are NaN (NaN != 0 counted it active)."""
    D = np.eye(2)
    assert math.isnan(snr_db(np.zeros((0, 2)), D, np.zeros((0, 2))))
    Z = np.array([[0.0, np.nan], [1.0, 0.0]])
    assert math.isnan(active_fraction(Z))
    usage = atom_usage(Z)
    assert usage[0] == 0.5 and math.isnan(usage[1])
    assert active_fraction(torch.tensor([[0.0, 2.0]])) == 0.5  # no NaN: counted as before
