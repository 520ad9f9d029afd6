"""The working-set l1 FISTA path of encode (the fallback of the compiled CD) against the plain
FISTA path, scikit-learn and the KKT conditions of the lasso."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from shrinkage.codes import encode, objective
from tests.codes._problems import sparse_problem


def _kkt_violation(X, D, Z, lam):
    """Largest violation of the lasso optimality conditions, relative to lam:
    c = (x - z D) D^T must equal lam sign(z_j) on the support and satisfy |c_j| <= lam off it."""
    C = (X - Z @ D) @ D.T
    on = Z != 0
    v_on = np.abs(C - lam * np.sign(Z))[on]
    v_off = np.maximum(np.abs(C[~on]) - lam, 0.0)
    return max(v_on.max(initial=0.0), v_off.max(initial=0.0)) / lam


@pytest.mark.parametrize("lam", [0.05, 0.3, 1.0])
def test_working_set_matches_plain_path_and_sklearn(lam):
    X, D = sparse_problem()
    fast, fi = encode(X, D, "l1", lam, working_set=True, tol=1e-8, return_info=True)
    plain, pi = encode(
        X, D, "l1", lam, working_set=False, tol=1e-10, max_iter=50000, return_info=True
    )
    assert fi["converged"] and pi["converged"]
    assert abs(fi["objective"] - pi["objective"]) <= 1e-9 * max(1.0, pi["objective"])
    ref = np.stack(
        [
            Lasso(alpha=lam / X.shape[1], fit_intercept=False, tol=1e-12, max_iter=200000)
            .fit(D.T, x)
            .coef_
            for x in X
        ]
    )
    np.testing.assert_allclose(fast, ref, atol=1e-6)
    assert _kkt_violation(X, D, fast, lam) < 1e-6


def test_working_set_is_the_l1_fista_default_and_solves_exactly():
    X, D = sparse_problem(seed=1)
    default = encode(X, D, "l1", 0.3, solver="fista", tol=1e-4)
    explicit = encode(X, D, "l1", 0.3, working_set=True, tol=1e-4)
    np.testing.assert_array_equal(default, explicit)
    # The support-and-sign solve makes the codes exact, not just tol-accurate.
    assert _kkt_violation(X, D, default, 0.3) < 1e-8


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # capped on purpose
def test_anti_correlated_atoms_do_not_break_the_step():
    """Pairs of nearly opposite atoms: a power iteration from all-ones sees none of their
    top eigenvalue; the step must still be safe (same minimum as the plain path)."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((20, 16))
    D = np.concatenate([base, -base + 0.05 * rng.standard_normal((20, 16))])
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((25, 16)) * 2.0
    f = objective(
        X, D, encode(X, D, "l1", 0.2, working_set=True, tol=1e-8, max_iter=20000), "l1", 0.2
    )
    p = objective(
        X, D, encode(X, D, "l1", 0.2, working_set=False, tol=1e-11, max_iter=100000), "l1", 0.2
    )
    assert np.isfinite(f) and abs(f - p) <= 1e-7 * p
    # Slow rows stop at max_iter FISTA iterations in all, unconverged.
    _, info = encode(X, D, "l1", 0.2, working_set=True, tol=1e-8, max_iter=300, return_info=True)
    assert info["n_iter"] <= 300 and not info["converged"]


def test_float32_tensor_batches_init_and_continuation():
    X, D = sparse_problem(seed=4)
    ref = encode(X, D, "l1", 0.3, working_set=False, tol=1e-10, max_iter=50000)
    Xt, Dt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(D, dtype=torch.float32)
    Z32 = encode(Xt, Dt, "l1", 0.3, working_set=True, tol=1e-4)
    assert isinstance(Z32, torch.Tensor) and Z32.dtype == torch.float32
    e32 = float(objective(X, D, Z32.double().numpy(), "l1", 0.3))
    assert abs(e32 - float(objective(X, D, ref, "l1", 0.3))) < 1e-4
    # Rows are independent: batches give the same codes.
    np.testing.assert_allclose(encode(X, D, "l1", 0.3, batch_size=7), encode(X, D, "l1", 0.3))
    # Continuation and a warm start reach the same minimiser; a warm start at it stops early.
    np.testing.assert_allclose(encode(X, D, "l1", 0.3, continuation=3, tol=1e-8), ref, atol=1e-6)
    _, info = encode(X, D, "l1", 0.3, init=ref, tol=1e-6, return_info=True)
    assert info["converged"] and info["n_iter"] <= 5


def test_all_zero_codes_when_lam_dominates():
    X, D = sparse_problem(n=5, seed=5)
    lam = 1.01 * np.abs(X @ D.T).max()
    Z, info = encode(X, D, "l1", lam, working_set=True, return_info=True)
    assert info["converged"] and not np.any(Z)


def test_working_set_rejects_other_solvers_and_penalties():
    X, D = sparse_problem(n=3)
    with pytest.raises(ValueError, match="working_set=True needs penalty='l1'"):
        encode(X, D, "l0", 0.1, working_set=True)
    with pytest.raises(ValueError, match="solver='ista'"):
        encode(X, D, "l1", 0.1, solver="ista", working_set=True)
