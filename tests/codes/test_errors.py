"""Bad input: clear errors that name the problem."""

import numpy as np
import pytest

from shrinkage.codes import SparseCoding, encode
from shrinkage.data import patches


def _ok():
    rng = np.random.default_rng(0)
    D = rng.standard_normal((6, 4))
    return rng.standard_normal((3, 4)), D / np.linalg.norm(D, axis=1, keepdims=True)


def test_zero_atom():
    X, D = _ok()
    D[2] = 0
    with pytest.raises(ValueError, match="zero atom"):
        encode(X, D)


def test_wrong_width():
    X, D = _ok()
    with pytest.raises(ValueError, match="features"):
        encode(X[:, :3], D)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf(bad):
    X, D = _ok()
    X[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        encode(X, D)


def test_negative_lam():
    X, D = _ok()
    with pytest.raises(ValueError, match="lam"):
        encode(X, D, "l1", -0.1)


def test_cel0_step_too_large():
    X, D = _ok()
    with pytest.raises(ValueError, match=r"a\*\*2 \* step < 1"):
        encode(X, D, "cel0", 0.1, step=1.5)


def test_unknown_penalty_and_solver():
    X, D = _ok()
    with pytest.raises(ValueError, match="penalty"):
        encode(X, D, "l3")
    with pytest.raises(ValueError, match="solver"):
        encode(X, D, "l1", solver="lars")


def test_image_smaller_than_patch():
    with pytest.raises(ValueError, match="smaller than the patch size"):
        patches([np.random.default_rng(0).random((10, 12))], size=16, n=5)


def test_estimator_wrong_width_after_fit():
    X, _ = _ok()
    sc = SparseCoding(2, n_epochs=1, learn_tol=0, random_state=0).fit(np.vstack([X] * 4))
    with pytest.raises(ValueError, match="features"):
        sc.transform(X[:, :3])


# -- silent numerics: half precision, divergence, unconverged rows -------------------------
def _float_problem(n=40, f=64, k=128, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    D = torch.randn(k, f, generator=g)
    return torch.randn(n, f, generator=g), D / D.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("penalty", ["l1", "l0", "cel0", "l1/2"])
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_precision_input_gives_the_float32_codes_in_its_dtype(penalty, half):
    """float16 / bfloat16 are solved in float32 (CPU half has no Cholesky, and the iterations
    lose their way in 11 bits); the codes come back in X's dtype."""
    import torch

    X, D = _float_problem()
    dt = getattr(torch, half)
    Z = encode(X.to(dt), D.to(dt), penalty, 0.1)
    assert Z.dtype == dt and bool(torch.isfinite(Z).all())
    ref = encode(X.to(dt).float(), D.to(dt).float(), penalty, 0.1).to(dt)
    assert torch.equal(Z, ref)


@pytest.mark.parametrize("solver", ["fista", "ista"])
def test_a_step_that_diverges_is_an_error_not_converged(solver):
    """step=10 blows the iterations up: once reported converged=True with an infinite
    objective; now a ValueError giving the step and the safe default."""
    X, D = _ok()
    with pytest.raises(ValueError, match=r"encode diverged: .*step=10; the default step"):
        encode(X, D, "l1", 0.1, step=10, solver=solver, return_info=True)


def test_unconverged_rows_give_a_convergence_warning():
    from sklearn.exceptions import ConvergenceWarning

    X, D = _float_problem()
    with pytest.warns(
        ConvergenceWarning, match=r"40 of 40 row\(s\) did not converge in max_iter=2"
    ):
        _, info = encode(X, D, "l0", 0.1, max_iter=2, tol=0.0, return_info=True)
    assert not info["converged"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encode(X, D, "l1", 0.1)  # converges: no warning


@pytest.mark.parametrize("solver", ["cd", "fista", "ista"])
def test_no_rows_give_no_codes(solver):
    """An empty X once failed with range()'s 'arg 3 must not be zero'."""
    X, D = _ok()
    Z = encode(X[:0], D, "l1", 0.1, solver=solver)
    assert Z.shape == (0, D.shape[0])


def test_atoms_too_small_to_square_are_refused():
    """||d||^2 underflowing float32 made the default step 1 / 0 (ZeroDivisionError); found by
    the property suite."""
    import torch

    D = torch.tensor([[5.7644e-24]])
    for solver in (None, "fista"):
        with pytest.raises(ValueError, match="squares under- or overflow torch.float32"):
            encode(torch.ones(1, 1), D, "l1", 0.0, solver=solver)
    Z = encode(torch.ones(1, 1, dtype=torch.float64), D.double(), "l1", 0.0, solver="fista")
    assert Z.shape == (1, 1) and bool(torch.isfinite(Z).all())


def test_complex_text_and_boolean_inputs_are_named_not_coerced():
    """A complex array would lose its imaginary part and True would read as 1.0: both are
    refused, naming the argument."""
    import torch

    X, D = _ok()
    with pytest.raises(ValueError, match=r"X must be real, got a complex array \(complex128\)"):
        encode(X + 1j, D)
    with pytest.raises(ValueError, match="D must be real, got a complex tensor"):
        encode(torch.as_tensor(X), torch.as_tensor(D, dtype=torch.complex64))
    with pytest.raises(ValueError, match="X must hold numbers, got <U1"):
        encode([["a", "b", "c", "d"]], D)
    with pytest.raises(ValueError, match="lam must be a number >= 0, got True"):
        encode(X, D, "l1", True)
    with pytest.raises(ValueError, match="lam must be a number >= 0, got True"):
        SparseCoding(n_atoms=3, lam=True).fit(np.vstack([X, X]))
    # integer data are numbers: taken as float64
    Z = encode(np.round(X * 3).astype(int), D, "l1", 0.1)
    assert Z.dtype == np.float64
