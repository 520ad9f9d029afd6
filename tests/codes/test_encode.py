"""encode and objective against scikit-learn, brute force and the monotonicity they promise."""

import itertools

import numpy as np
import pytest
import torch
from sklearn.decomposition import sparse_encode
from sklearn.linear_model import Lasso

from shrinkage.codes import encode, encode_batches, lipschitz, objective
from shrinkage.thresholds import prox


def _problem(n=12, k=24, p=16, seed=0, unit=True):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((k, p))
    if unit:
        D /= np.linalg.norm(D, axis=1, keepdims=True)
    else:
        D *= rng.uniform(0.5, 1.5, size=(k, 1)) / np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((n, p))
    return X, D


@pytest.mark.parametrize("solver", ["fista", "ista"])
def test_l1_matches_sklearn_lasso(solver):
    """l1 codes equal scikit-learn's Lasso solution with alpha = lam / n_features."""
    X, D = _problem()
    lam = 0.3
    Z = encode(X, D, "l1", lam, solver=solver, tol=1e-10, max_iter=50000)
    ref = np.stack(
        [
            Lasso(alpha=lam / X.shape[1], fit_intercept=False, tol=1e-12, max_iter=100000)
            .fit(D.T, x)
            .coef_
            for x in X
        ]
    )
    np.testing.assert_allclose(Z, ref, atol=1e-5)
    # sparse_encode takes our lam as is (it divides by n_features itself).
    S = sparse_encode(X, D, algorithm="lasso_lars", alpha=lam)
    assert abs(float(objective(X, D, Z, "l1", lam)) - float(objective(X, D, S, "l1", lam))) < 1e-7


def test_lipschitz_is_spectral_norm_squared():
    _, D = _problem(k=30, p=10, seed=3)
    exact = np.linalg.norm(D, 2) ** 2
    assert abs(lipschitz(torch.as_tensor(D)) - exact) < 1e-6 * exact


NONCONVEX = [
    ("l0", {}),
    ("l1/2", {}),
    ("l2/3", {}),
    ("cel0", {}),
    ("mcp", {"gamma": 3.0}),
    ("scad", {"gamma": 3.7}),
]


@pytest.mark.parametrize("name,params", NONCONVEX + [("l1", {})])
@pytest.mark.parametrize("solver", ["fista", "ista"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # capped on purpose
def test_energy_never_increases(name, params, solver):
    """Monotone FISTA and ISTA: each row's energy after k+1 iterations <= after k (from zero).

    Plain FISTA for l1 is not promised monotone, so l1 is checked with monotone=True."""
    X, D = _problem(n=8, k=20, p=12, seed=1, unit=False)
    prev = objective(X, D, np.zeros((8, 20)), name, 0.2, reduce="none", **params)
    for k in range(1, 25):
        Z = encode(X, D, name, 0.2, solver=solver, max_iter=k, tol=0.0, monotone=True, **params)
        e = objective(X, D, Z, name, 0.2, reduce="none", **params)
        assert np.all(e <= prev + 1e-12), (k, (e - prev).max())
        prev = e


def test_fista_l1_reaches_the_minimum_faster_than_ista():
    X, D = _problem(seed=2)
    _, fi = encode(X, D, "l1", 0.3, tol=1e-6, max_iter=20000, return_info=True)
    _, ii = encode(X, D, "l1", 0.3, solver="ista", tol=1e-6, max_iter=20000, return_info=True)
    assert abs(fi["objective"] - ii["objective"]) < 1e-5
    assert fi["n_iter"] < ii["n_iter"]


def test_cel0_uses_each_atom_norm():
    """With a = each atom's norm, the CEL0 energy equals the l0 energy at the l0 global minimiser
    (brute force over all supports) and never goes below it (Soubies et al. 2015)."""
    rng = np.random.default_rng(4)
    D = rng.standard_normal((5, 6)) * rng.uniform(0.4, 2.0, size=(5, 1))
    x = rng.standard_normal((1, 6))
    lam = 0.15
    best, best_r = np.inf, None
    for m in range(6):
        for s in itertools.combinations(range(5), m):
            r = np.zeros((1, 5))
            if s:
                sol, *_ = np.linalg.lstsq(D[list(s)].T, x[0], rcond=None)
                r[0, list(s)] = sol
            e = float(objective(x, D, r, "l0", lam))
            if e < best:
                best, best_r = e, r
    assert abs(float(objective(x, D, best_r, "cel0", lam)) - best) < 1e-10
    # a = 1 for every atom is a different (wrong) penalty here: its energy differs.
    assert abs(float(objective(x, D, best_r, "cel0", lam, a=1.0)) - best) > 1e-3
    Z = encode(np.repeat(x, 3, 0), D, "cel0", lam, tol=1e-7, max_iter=3000, continuation=2)
    assert float(objective(x, D, Z[:1], "cel0", lam)) >= best - 1e-9


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # capped on purpose
def test_l0_result_is_a_hard_threshold_fixed_point():
    X, D = _problem(seed=5)
    step = 0.9 / np.linalg.norm(D, 2) ** 2
    for cont in (0, 3):
        Z = encode(X, D, "l0", 0.05, step=step, tol=1e-13, max_iter=3000, continuation=cont)
        again = prox("l0", Z + step * (X - Z @ D) @ D.T, 0.05, step)
        np.testing.assert_allclose(again, Z, atol=1e-8)


def test_types_devices_batches_and_init():
    X, D = _problem(seed=6)
    Zt = encode(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(D), "l1/2", 0.1)
    assert isinstance(Zt, torch.Tensor) and Zt.dtype == torch.float32
    Zn, info = encode(X, D, "l1/2", 0.1, return_info=True)
    assert isinstance(Zn, np.ndarray) and Zn.dtype == np.float64
    assert set(info) >= {"n_iter", "objective", "converged", "n_iter_per_sample"}
    np.testing.assert_allclose(Zt.numpy(), Zn, atol=1e-3)
    # Rows are independent: batches and subsets give the same codes.
    np.testing.assert_allclose(encode(X, D, "l1/2", 0.1, batch_size=5), Zn, atol=1e-10)
    np.testing.assert_allclose(encode(X[3:7], D, "l1/2", 0.1), Zn[3:7], atol=1e-10)
    # A warm start at the solution stops at once.
    _, info2 = encode(X, D, "l1/2", 0.1, init=Zn, return_info=True)
    assert info2["n_iter"] <= 2 and info2["objective"] <= info["objective"] + 1e-12


def test_objective_by_hand():
    X, D = _problem(n=3, k=4, p=5, seed=7, unit=False)
    Z = np.random.default_rng(0).standard_normal((3, 4))
    a = np.linalg.norm(D, axis=1)
    knee = np.sqrt(2 * 0.3) / a
    phi = np.where(np.abs(Z) <= knee, 0.3 - a**2 / 2 * (np.abs(Z) - knee) ** 2, 0.3)
    by_hand = 0.5 * ((X - Z @ D) ** 2).sum(1) + phi.sum(1)
    np.testing.assert_allclose(objective(X, D, Z, "cel0", 0.3, reduce="none"), by_hand)


@pytest.mark.parametrize("name", ["l1", "cel0", "l0"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # capped on purpose
def test_gram_form_equals_residual_form(name):
    X, D = _problem(seed=8, unit=False)
    a = encode(X, D, name, 0.2, gram=True, tol=1e-9, max_iter=3000)
    b = encode(X, D, name, 0.2, gram=False, tol=1e-9, max_iter=3000)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_encode_batches_streams_the_same_codes():
    X, D = _problem(n=30, seed=9)
    parts = list(encode_batches((X[i : i + 7] for i in range(0, 30, 7)), D, "cel0", 0.1))
    assert [len(p) for p in parts] == [7, 7, 7, 7, 2]
    np.testing.assert_allclose(np.concatenate(parts), encode(X, D, "cel0", 0.1), atol=1e-10)


def _l0_global_minimum(X, D, lam):
    """Brute force over every support: the least-squares fit on S costs lam |S| more."""
    best = 0.5 * (X**2).sum(1)
    for r in range(1, D.shape[0] + 1):
        for S in itertools.combinations(range(D.shape[0]), r):
            DS = D[list(S)]
            coef = np.linalg.lstsq(DS.T, X.T, rcond=None)[0]
            best = np.minimum(best, 0.5 * ((X - coef.T @ DS) ** 2).sum(1) + lam * r)
    return best


@pytest.mark.parametrize("seed,lam", [(0, 0.05), (1, 0.2)])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # capped on purpose
def test_l0_from_its_cel0_relaxation_gets_closer_to_the_global_minimum(seed, lam):
    """relaxation="cel0": the l0 energy never exceeds that of the CEL0 codes it starts from,
    never goes below the brute-force global minimum, and its mean gap to that minimum is well
    under half the gap of hard thresholding from zero."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((10, 8))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((60, 8))
    best = _l0_global_minimum(X, D, lam)

    def energy(Z):
        return objective(X, D, Z, "l0", lam, reduce="none")

    kw = dict(tol=1e-10, max_iter=5000)
    from_zero = energy(encode(X, D, "l0", lam, **kw))
    from_cel0 = energy(encode(X, D, "cel0", lam, **kw))
    Z, info = encode(X, D, "l0", lam, relaxation="cel0", return_info=True, **kw)
    relaxed = energy(Z)
    assert np.all(relaxed <= from_cel0 + 1e-10)
    assert np.all(relaxed >= best - 1e-9)
    assert np.mean(relaxed - best) < 0.5 * np.mean(from_zero - best)
    assert info["objective"] == pytest.approx(float(relaxed.mean()), rel=1e-10)


def test_relaxation_is_checked_before_any_work():
    X, D = _problem(seed=8)
    with pytest.raises(ValueError, match="relaxation"):
        encode(X, D, "l0", 0.1, relaxation="l3")
    with pytest.raises(ValueError, match="not both"):
        encode(X, D, "l0", 0.1, relaxation="cel0", init=np.zeros((len(X), len(D))))


def _lasso_energies(X, D, lam):
    """Per-row 1/2 ||x - z D||^2 + lam ||z||_1 of scikit-learn's Lasso (alpha = lam / p on
    the design D^T), an independent reference."""
    p = X.shape[1]
    out = []
    for x in X:
        z = Lasso(alpha=lam / p, fit_intercept=False, tol=1e-12, max_iter=200_000).fit(D.T, x)
        out.append(0.5 * ((x - z.coef_ @ D) ** 2).sum() + lam * np.abs(z.coef_).sum())
    return np.array(out)


def test_working_set_on_supports_larger_than_the_features():
    """Working-set FISTA (the l1 encoder on GPUs and without a compiler) when the codes have
    more non-zeros than the signals have features: the exact support solve is singular. It
    once emptied the support (all-zero codes, 120x the optimum's energy) and reported rows
    converged at 9x; now no row is below the reference, rows flagged converged are at it,
    and the others say so."""
    rng = np.random.default_rng(0)
    D = np.array(rng.standard_normal((8, 5)))
    X = rng.standard_normal((6, 5)) * 2
    lam = 0.01
    Z, info = encode(X, D, "l1", lam, solver="fista", working_set=True, return_info=True,
                     max_iter=5000)  # fmt: skip
    e = objective(X, D, Z, "l1", lam, reduce="none")
    ref = _lasso_energies(X, D, lam)
    assert np.all(e >= ref * (1 - 1e-6))
    assert np.all(e <= ref * 1.01 + 1e-9), e / ref
    rng = np.random.default_rng(2)
    D = rng.standard_normal((32, 16))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((12, 16))
    with pytest.warns(Warning, match="did not converge"):
        Z, info = encode(X, D, "l1", 1e-3, solver="fista", return_info=True)
    e = objective(X, D, Z, "l1", 1e-3, reduce="none")
    ref = _lasso_energies(X, D, 1e-3)
    conv = np.asarray(info["converged"])
    assert np.all(e[conv] <= ref[conv] * 1.01)
