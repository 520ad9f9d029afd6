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


# -- found by probing (docs/reliability.md) ---------------------------------------------
def _X64():
    import torch

    return torch.randn(64, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "lam, match",
    [(np.array([0.1, 0.2]), "lam must be one number"), ("0.1", "lam must be a number")],
)
def test_a_lam_that_is_not_one_number_is_refused_by_name(lam, match):
    import torch

    from shrinkage.codes import learn_dictionary

    X, D = _ok()
    with pytest.raises(ValueError, match=match):
        encode(X, D, "l1", lam)
    if isinstance(lam, np.ndarray):
        with pytest.raises(ValueError, match=match):
            encode(X, D, "l1", torch.as_tensor(lam))
    with pytest.raises(ValueError, match=match):
        learn_dictionary(X, 2, "l1", lam)
    with pytest.raises(ValueError, match=match):
        SparseCoding(2, lam=lam).fit(X)
    assert encode(X, D, "l1", torch.tensor(0.1)).shape == (3, 6)  # one number as a tensor


def test_learning_refuses_an_infinite_rate_and_an_empty_X_before_any_work():
    import torch

    from shrinkage.codes import learn_dictionary

    with pytest.raises(ValueError, match="lr must be finite"):
        learn_dictionary(_X64(), 4, update="gradient", lr=float("inf"))
    with pytest.raises(ValueError, match="lr must be finite"):
        SparseCoding(4, update="gradient", lr=float("inf")).fit(_X64().numpy())
    with pytest.raises(ValueError, match="X has no rows"):
        learn_dictionary(torch.zeros(0, 8, dtype=torch.float64), 4)


def test_a_state_that_does_not_fit_the_call_is_refused_before_any_batch(monkeypatch):
    import copy

    import torch

    from shrinkage.codes import LearnState, _learn, learn_dictionary

    X = _X64()
    saved = []
    kw = dict(batch_size=16, n_epochs=2, learn_tol=0)
    learn_dictionary(X, 4, on_batch=lambda s: saved.append(copy.deepcopy(s)), **kw)
    monkeypatch.setattr(_learn, "learn_step", lambda *a, **k: pytest.fail("a batch ran"))
    D = saved[0].D
    bad = {
        "a pass over 64 rows": (X[:40], saved[0]),
        "a pass over 64 rows, but X has 128": (torch.cat([X, X]), saved[0]),
        "holds 6 atoms but n_atoms=4": (X, LearnState(D=torch.cat([D, D[:2]]))),
        "state.D is torch.float32": (X, LearnState(D=D.float())),
        r"state.A has shape \(3, 3\)": (X, LearnState(D=D.clone(), A=torch.eye(3).double())),
    }
    for match, (XX, st) in bad.items():
        with pytest.raises(ValueError, match=match):
            learn_dictionary(XX, 4, state=copy.deepcopy(st), **kw)
    with pytest.raises(TypeError, match="state must be a LearnState, got dict"):
        learn_dictionary(X, 4, state={"D": D}, **kw)
    with pytest.raises(TypeError, match="state.D must be a torch.Tensor, got ndarray"):
        learn_dictionary(X, 4, state=LearnState(D=D.numpy()), **kw)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(relaxation="foo"), "unknown relaxation 'foo'"),
        (dict(foo=1), "penalty 'l0' got unknown parameter"),
    ],
)
def test_a_bad_encoder_option_is_refused_before_the_l1_stage(kw, match, monkeypatch):
    """init="l1" learns with l1 first, without the penalty's own options: they are checked
    before that stage, and the error names the penalty asked for."""
    from shrinkage.codes import _learn, learn_dictionary

    monkeypatch.setattr(_learn, "learn_step", lambda *a, **k: pytest.fail("a batch ran"))
    with pytest.raises(ValueError, match=match):
        learn_dictionary(_X64(), 4, "l0", 0.1, batch_size=32, **kw)


def test_partial_fit_keeps_its_dtype_and_refuses_a_changed_atom_count():
    """A later call in another float dtype learns in the first call's dtype (its statistics
    are in it), as if given that dtype; set_params is checked on every call, and n_atoms
    cannot change under a dictionary already learned."""
    import copy

    X = _X64().numpy()
    sc = SparseCoding(4, random_state=0, n_epochs=3, batch_size=16, learn_tol=0).fit(X)
    ref = copy.deepcopy(sc)
    sc.partial_fit(X.astype(np.float32))
    ref.partial_fit(X.astype(np.float32).astype(np.float64))
    assert sc.components_.dtype == np.float64
    np.testing.assert_array_equal(sc.components_, ref.components_)
    sc.set_params(n_atoms=10)
    with pytest.raises(ValueError, match="n_atoms=10 but the dictionary learned so far has 4"):
        sc.partial_fit(X)
    sc.set_params(n_atoms=4, batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        sc.partial_fit(X)
