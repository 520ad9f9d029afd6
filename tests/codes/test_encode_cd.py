"""The compiled coordinate-descent l1 encoder (solver="cd", the l1 default) against
scikit-learn's lasso, the torch FISTA paths and the lasso's optimality conditions."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from shrinkage.codes import _cd, encode, objective
from tests.codes._problems import sparse_problem

pytestmark = pytest.mark.skipif(_cd.load() is None, reason="no C compiler: CD kernel unavailable")


@pytest.fixture(scope="module")
def patch_problem():
    """Olshausen-whitened 8x8 patches of a photograph; a 2x overcomplete dictionary of other
    patches (correlated atoms, as after data initialisation)."""
    from shrinkage.data import natural_images, patches

    P = patches(natural_images(["camera"]), size=8, n=400, whiten="olshausen", seed=0)
    D = P[:128] / np.linalg.norm(P[:128], axis=1, keepdims=True)
    return P[200:240], D


def _lasso(X, D, lam):
    """scikit-learn's coordinate descent to a tight tolerance, row by row (alpha = lam / p)."""
    return np.stack(
        [
            Lasso(alpha=lam / X.shape[1], fit_intercept=False, tol=1e-13, max_iter=500000)
            .fit(D.T, x)
            .coef_
            for x in X
        ]
    )


def _kkt_violation(X, D, Z, lam):
    """Largest violation of the lasso optimality conditions relative to lam: c = (x - z D) D^T
    equals lam sign(z_j) on the support and |c_j| <= lam off it."""
    C = (X - Z @ D) @ D.T
    on = Z != 0
    v_on = np.abs(C - lam * np.sign(Z))[on]
    v_off = np.maximum(np.abs(C[~on]) - lam, 0.0)
    return max(v_on.max(initial=0.0), v_off.max(initial=0.0)) / lam


def _rel_gap(X, D, Z, ref, lam):
    o = float(objective(X, D, Z, "l1", lam))
    r = float(objective(X, D, ref, "l1", lam))
    return (o - r) / r


@pytest.mark.parametrize("data", ["random", "patches"])
@pytest.mark.parametrize("lam", [0.05, 0.3])
def test_cd_float64_is_the_lasso_solution(data, lam, patch_problem):
    X, D = sparse_problem() if data == "random" else patch_problem
    Z, info = encode(X, D, "l1", lam, solver="cd", return_info=True)
    assert info["converged"]
    # The kernel's own energies (from b and c) are the objective of the codes it returns.
    assert abs(info["objective"] - float(objective(X, D, Z, "l1", lam))) < 1e-12
    ref = _lasso(X, D, lam)
    assert abs(_rel_gap(X, D, Z, ref, lam)) < 1e-10
    np.testing.assert_array_equal(Z != 0, ref != 0)
    np.testing.assert_allclose(Z, ref, atol=1e-7)
    # Exact, not tol-accurate: the optimality conditions hold to rounding.
    assert _kkt_violation(X, D, Z, lam) < 1e-9


def test_dense_codes_on_a_square_dictionary_are_exact():
    """About half the atoms active on a square random dictionary (ill-conditioned, many sign
    flips on the way): the exact solves that extend the last factor and the active-set steps
    between them still end on the lasso solution, row by row."""
    rng = np.random.default_rng(3)
    D = rng.standard_normal((96, 96))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((24, 96))
    lam = 0.02
    Z, info = encode(X, D, "l1", lam, solver="cd", max_iter=5000, return_info=True)
    assert info["converged"] and (Z != 0).mean() > 0.3
    ref = _lasso(X, D, lam)
    assert abs(_rel_gap(X, D, Z, ref, lam)) < 1e-8
    assert _kkt_violation(X, D, Z, lam) < 1e-8


@pytest.mark.parametrize("data", ["random", "patches"])
def test_cd_float32_matches_the_lasso(data, patch_problem):
    X, D = sparse_problem(seed=1) if data == "random" else patch_problem
    lam = 0.1
    Xt = torch.as_tensor(X, dtype=torch.float32)
    Dt = torch.as_tensor(D, dtype=torch.float32)
    Z, info = encode(Xt, Dt, "l1", lam, return_info=True)  # the l1 default
    assert Z.dtype == torch.float32 and info["converged"]
    Z = Z.double().numpy()
    ref = _lasso(X, D, lam)
    assert abs(_rel_gap(X, D, Z, ref, lam)) < 1e-6
    # Same support, but for atoms whose coefficient is at float32 rounding level.
    differ = (Z != 0) != (ref != 0)
    assert np.all(np.abs(ref[differ]) < 1e-4) and np.all(np.abs(Z[differ]) < 1e-4)
    assert _kkt_violation(X, D, Z, lam) < 1e-4


def test_cd_is_the_l1_default_and_agrees_with_the_torch_paths(patch_problem):
    X, D = patch_problem
    lam = 0.1
    # tol also sets how far past lam an atom's |c_j| may be (1e-8 here) and still count
    # as optimal, as in the working-set FISTA.
    default = encode(X, D, "l1", lam, tol=1e-8)
    np.testing.assert_array_equal(default, encode(X, D, "l1", lam, solver="cd", tol=1e-8))
    ws = encode(X, D, "l1", lam, solver="fista", working_set=True, tol=1e-8, max_iter=20000)
    np.testing.assert_allclose(default, ws, atol=1e-8)


@pytest.fixture
def reset_cd():
    yield
    _cd._LIB.reset()


def test_without_a_compiler_cd_falls_back_to_fista(monkeypatch, reset_cd):
    X, D = sparse_problem(seed=2)
    monkeypatch.setenv("SHRINKAGE_NO_COMPILE", "1")
    _cd._LIB.reset()
    with pytest.warns(RuntimeWarning, match="coordinate-descent encoder unavailable"):
        Z, info = encode(X, D, "l1", 0.3, tol=1e-8, return_info=True)
    assert info["step"] is not None  # a proximal-gradient path ran
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        Zcd = encode(X, D, "l1", 0.3, solver="cd", tol=1e-8)
    np.testing.assert_array_equal(Z, Zcd)
    monkeypatch.delenv("SHRINKAGE_NO_COMPILE")
    _cd._LIB.reset()
    fast, info = encode(X, D, "l1", 0.3, return_info=True)
    assert info["step"] is None  # the compiled kernel ran this time
    np.testing.assert_allclose(fast, Z, atol=1e-7)


def test_zero_row_and_lam_above_lam_max():
    X, D = sparse_problem(n=6, seed=3)
    X[2] = 0.0
    Z, info = encode(X, D, "l1", 0.3, return_info=True)
    assert info["converged"] and not np.any(Z[2]) and np.all(np.any(Z[[0, 1, 3]], axis=1))
    assert info["n_iter_per_sample"][2] == 1  # one optimality scan proves it
    lam_max = np.abs(X @ D.T).max()
    Z, info = encode(X, D, "l1", 1.0001 * lam_max, return_info=True)
    assert info["converged"] and not np.any(Z)
    Z = encode(X, D, "l1", 0.999 * lam_max)
    assert np.count_nonzero(Z) == 1


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_duplicated_and_opposite_atoms(sign):
    """Each atom appears twice (or with its negative): G_SS is singular whenever both copies
    enter, the lasso solution is not unique, its energy is. Near-copies make CD slow (over
    1000 iterations for a row here), so max_iter is raised."""
    rng = np.random.default_rng(4)
    base = rng.standard_normal((20, 16))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    D = np.concatenate([base, sign * base])
    X = rng.standard_normal((25, 16)) * 2.0
    lam = 0.2
    Z, info = encode(X, D, "l1", lam, tol=1e-10, max_iter=5000, return_info=True)
    assert info["converged"] and np.all(np.isfinite(Z))
    ref = _lasso(X, base, lam)
    assert abs(_rel_gap(X, D, Z, np.concatenate([ref, 0 * ref], 1), lam)) < 1e-9
    assert _kkt_violation(X, D, Z, lam) < 1e-6
    # Near-duplicates: distinct atoms again, and exact solutions.
    D2 = np.concatenate([base, sign * base + 0.05 * rng.standard_normal(base.shape)])
    D2 /= np.linalg.norm(D2, axis=1, keepdims=True)
    Z2, info = encode(X, D2, "l1", lam, tol=1e-10, max_iter=5000, return_info=True)
    assert info["converged"]
    assert abs(_rel_gap(X, D2, Z2, _lasso(X, D2, lam), lam)) < 1e-9


def test_warm_start_continuation_batches_and_threads():
    X, D = sparse_problem(n=40, seed=5)
    lam = 0.1
    ref = encode(X, D, "l1", lam)
    np.testing.assert_allclose(encode(X, D, "l1", lam, continuation=3), ref, atol=1e-10)
    np.testing.assert_allclose(encode(X, D, "l1", lam, batch_size=7), ref, atol=1e-12)
    _, info = encode(X, D, "l1", lam, init=ref, return_info=True)
    assert info["converged"] and info["n_iter"] <= 3
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        np.testing.assert_array_equal(encode(X, D, "l1", lam), ref)
    finally:
        torch.set_num_threads(n)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # capped on purpose
def test_max_iter_bounds_the_work():
    X, D = sparse_problem(seed=6)
    Z, info = encode(X, D, "l1", 0.01, max_iter=3, return_info=True)
    assert info["n_iter"] <= 3 and not info["converged"]
    assert abs(info["objective"] - float(objective(X, D, Z, "l1", 0.01))) < 1e-12


def test_large_support_leaves_the_packed_path():
    """More than 256 non-zeros per row: sweeps on G's rows instead of a packed G_AA and no
    exact solve; CD alone must still reach the minimiser."""
    rng = np.random.default_rng(7)
    p, k = 300, 360
    D = rng.standard_normal((k, p))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((2, p))
    lam = 0.05
    Z, info = encode(X, D, "l1", lam, tol=1e-10, max_iter=5000, return_info=True)
    assert info["converged"] and (Z != 0).sum(1).min() > 256
    ref = _lasso(X, D, lam)
    assert abs(_rel_gap(X, D, Z, ref, lam)) < 1e-12
    np.testing.assert_array_equal(Z != 0, ref != 0)


def test_cd_rejects_what_it_cannot_solve():
    X, D = sparse_problem(n=3)
    with pytest.raises(ValueError, match="solver='cd' needs penalty='l1'"):
        encode(X, D, "l0", 0.1, solver="cd")
    with pytest.raises(ValueError, match="FISTA options"):
        encode(X, D, "l1", 0.1, solver="cd", working_set=True)
    with pytest.raises(ValueError, match="monotone"):
        encode(X, D, "l1", 0.1, solver="cd", monotone=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_runs_the_torch_path():
    X, D = sparse_problem(seed=8)
    Xc = torch.as_tensor(X, device="cuda")
    Dc = torch.as_tensor(D, device="cuda")
    Z, info = encode(Xc, Dc, "l1", 0.3, tol=1e-8, return_info=True)
    assert Z.device.type == "cuda" and info["step"] is not None
    np.testing.assert_allclose(Z.cpu().numpy(), encode(X, D, "l1", 0.3), atol=1e-6)


def test_rows_flagged_converged_on_singular_supports_are_at_the_minimum():
    """Supports with more atoms than features (16 atoms, 4 features, lam 1e-3): the exact
    solve is refused and CD's codes are the answer. At tol alone they were flagged converged
    up to 7 % above the minimum's energy; now a row is converged only with a stationary
    support, and such rows are at scikit-learn's minimum."""
    rng = np.random.default_rng(1)
    p, k, lam = 4, 16, 1e-3
    D = rng.standard_normal((k, p))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((40, p))
    Dt = torch.tensor(D)
    Z, _, conv = _cd.solve_l1_cd(torch.tensor(X), Dt, Dt @ Dt.T, lam, 1e-4, 1000)
    assert bool(conv.any())
    e = objective(X, D, Z.numpy(), "l1", lam, reduce="none")
    for i in np.flatnonzero(conv.numpy()):
        ref = Lasso(alpha=lam / p, fit_intercept=False, tol=1e-12, max_iter=500_000).fit(D.T, X[i])
        e_ref = 0.5 * ((X[i] - ref.coef_ @ D) ** 2).sum() + lam * np.abs(ref.coef_).sum()
        assert e[i] <= e_ref * (1 + 1e-4) + 1e-12, (i, e[i], e_ref)
