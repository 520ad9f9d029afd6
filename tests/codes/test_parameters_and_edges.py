"""Inputs at the edges of the codes pillar (the fifth bad-input probe): each once gave a
silent wrong answer or an error from deep inside numpy / torch."""

import math
import warnings

import numpy as np
import pytest
import torch

from shrinkage.codes import (
    SparseCoding,
    atom_usage,
    encode,
    learn_dictionary,
    lipschitz,
    matched_cosines,
    objective,
    planted_problem,
    relative_error,
    snr_db,
)


def test_metrics_hold_over_float32s_whole_range_and_keep_nan_rows():
    """Squared float32 signals overflowed near 1e19 (NaN) and underflowed near 1e-23 (a
    perfect fit); the metrics now compute in float64. A NaN row made relative_error 0.0."""
    rng = np.random.default_rng(0)
    X, D = rng.standard_normal((4, 3)), np.eye(3)
    Z = X * 0.5
    ref = relative_error(X, D, Z), snr_db(X, D, Z)
    for scale in (1e20, 1e-25):
        Xs, Zs = (X * scale).astype(np.float32), (Z * scale).astype(np.float32)
        assert relative_error(Xs, D, Zs) == pytest.approx(ref[0], rel=1e-5)
        assert snr_db(Xs, D, Zs) == pytest.approx(ref[1], rel=1e-5)
    Xn = X.copy()
    Xn[1, 0] = np.nan
    assert math.isnan(relative_error(Xn, D, Z))
    assert atom_usage(np.zeros((0, 3))).tolist() == [0.0, 0.0, 0.0]


def test_learning_on_signals_with_no_residual_keeps_unit_atoms():
    """All-zero data left resampled atoms at norm 0.002 (their jitter normalised); a
    residual with no direction now gets a random one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = learn_dictionary(np.zeros((20, 4)), 3, n_epochs=3)
        sc = SparseCoding(3, random_state=0, n_epochs=3).fit(np.zeros((20, 4)))
    torch.testing.assert_close(st.D.norm(dim=1), torch.ones(3, dtype=st.D.dtype))
    np.testing.assert_allclose(np.linalg.norm(sc.components_, axis=1), 1.0, rtol=1e-6)


def test_penalty_parameters_as_arrays():
    """cel0's per-atom a as a numpy array works as a tensor does; another length, or an array
    for a parameter that takes one number, is named (numpy / torch errors before); scad's
    gamma = inf is refused (all-zero codes and a 'raise max_iter' warning before)."""
    rng = np.random.default_rng(0)
    D, X = rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    a = np.linalg.norm(D, axis=1) * 0.9
    z_np = encode(X, D, "cel0", 0.1, a=a)
    z_t = encode(X, D, "cel0", 0.1, a=torch.as_tensor(a))
    np.testing.assert_allclose(z_np, z_t)
    assert objective(X, D, z_np, "cel0", 0.1, a=a) == pytest.approx(
        float(objective(X, D, z_np, "cel0", 0.1, a=torch.as_tensor(a)))
    )
    with pytest.raises(ValueError, match=r"cel0's a must be one number or one value per atom"):
        encode(X, D, "cel0", 0.1, a=torch.ones(2))
    with pytest.raises(ValueError, match="mcp's gamma must be one number, got shape"):
        encode(X, D, "mcp", 0.1, gamma=np.array([3.0, 4.0, 5.0]))
    with pytest.raises(ValueError, match="scad needs a finite gamma"):
        encode(X, D, "scad", 0.1, gamma=float("inf"))


def test_helpers_name_what_they_cannot_use():
    rng = np.random.default_rng(0)
    D, X = rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    with pytest.raises(ValueError, match="lam"):
        objective(X, D, np.zeros((2, 3)), lam=float("inf"))
    assert lipschitz(D) == pytest.approx(np.linalg.norm(D, 2) ** 2, rel=1e-6)
    with pytest.raises(ValueError, match="random_state"):
        learn_dictionary(X, 3, random_state=None, n_epochs=1)
    with pytest.raises(ValueError, match="at least one atom"):
        matched_cosines(np.eye(3), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="finite"):
        matched_cosines(np.eye(3), np.array([[np.nan, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="amplitude"):
        planted_problem(5, 4, 3, 1, amplitude=(1, float("inf")))
    with pytest.raises(ValueError, match="noise"):
        planted_problem(5, 4, 3, 1, noise=float("inf"))


def test_proximal_gradient_warns_when_the_atom_norms_spread():
    """FISTA's step follows the largest atom: at 100x it stopped at 1.75x the optimum's
    energy, reported converged, with no word; a spread over 30x now warns (CD does not)."""
    rng = np.random.default_rng(5)
    D = rng.standard_normal((4, 6))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((5, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encode(X, D * np.array([[10.0], [1], [1], [1]]), "l1", 0.1, solver="fista")
        encode(X, D * np.array([[100.0], [1], [1], [1]]), "l1", 0.1)  # CD
    with pytest.warns(UserWarning, match=r"atom norms from 1 to 100 \(100x\).*solver='cd'"):
        encode(X, D * np.array([[100.0], [1], [1], [1]]), "l1", 0.1, solver="fista")
