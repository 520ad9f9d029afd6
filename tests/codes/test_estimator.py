"""SparseCoding follows the scikit-learn estimator contract."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimator

from shrinkage.codes import SparseCoding, objective


@pytest.mark.slow
def test_sklearn_check_estimator():
    """Every scikit-learn estimator check passes; the only one not run is the array-API check,
    which scikit-learn itself skips unless SCIPY_ARRAY_API is set (we compute in torch)."""
    res = check_estimator(SparseCoding(n_atoms=3, n_epochs=2, random_state=0), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in res if r["status"] == "failed"]
    assert not failed
    skipped = {r["check_name"] for r in res if r["status"] == "skipped"}
    assert skipped <= {"check_array_api_input"}
    assert len(res) > 40


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((120, 10))


def test_fit_transform_inverse_score():
    X = _data()
    sc = SparseCoding(6, penalty="cel0", lam=0.1, n_epochs=3, batch_size=32, random_state=0)
    assert sc.fit(X) is sc
    # init="l1": an l1 stage of at most 3 passes, then at most 3 with CEL0.
    assert sc.components_.shape == (6, 10) and 2 <= sc.n_iter_ <= 6
    assert sc.n_steps_ == sc.n_iter_ * (120 // 32)
    np.testing.assert_allclose(np.linalg.norm(sc.components_, axis=1), 1.0)
    Z = sc.transform(X)
    np.testing.assert_allclose(sc.inverse_transform(Z), Z @ sc.components_)
    assert sc.score(X) == pytest.approx(-float(objective(X, sc.components_, Z, "cel0", 0.1)))
    # Same random_state, same dictionary.
    sc2 = SparseCoding(6, penalty="cel0", lam=0.1, n_epochs=3, batch_size=32, random_state=0)
    np.testing.assert_allclose(sc2.fit(X).components_, sc.components_)


def test_partial_fit_continues_and_improves():
    X = _data()
    sc = SparseCoding(6, lam=0.1, batch_size=40, random_state=0)
    sc.partial_fit(X)
    first, n1 = sc.score(X), sc.n_steps_
    for _ in range(5):
        sc.partial_fit(X)
    assert sc.n_steps_ == 6 * n1 and sc.n_iter_ == 6
    assert sc.score(X) > first


def test_float32_preserved():
    X = _data().astype(np.float32)
    sc = SparseCoding(4, n_epochs=1, learn_tol=0, random_state=0).fit(X)
    assert sc.components_.dtype == np.float32 and sc.transform(X).dtype == np.float32


def test_a_device_set_after_fit_is_checked_by_transform_and_score():
    """set_params(device=...) after fit reached torch's raw error (fit alone checked it);
    inverse_transform, numpy only, does not read it."""
    X = _data()
    sc = SparseCoding(n_atoms=4, n_epochs=2, random_state=0).fit(X)
    codes = sc.transform(X)
    sc.set_params(device="meta")
    for call in (lambda: sc.transform(X), lambda: sc.score(X)):
        with pytest.raises(ValueError, match="device='meta' holds no data"):
            call()
    np.testing.assert_allclose(sc.inverse_transform(codes), codes @ sc.components_)
    sc.set_params(device="cpu")
    np.testing.assert_array_equal(sc.transform(X), codes)
