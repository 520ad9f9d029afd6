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
