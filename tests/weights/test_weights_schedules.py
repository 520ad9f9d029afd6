"""Schedules are pure functions of the step with the documented formulas."""

import numpy as np
import pytest

from shrinkage.weights import Constant, Cubic, Linear
from shrinkage.weights._schedules import evaluate


def test_cubic_matches_zhu_gupta_formula():
    """s(t) = s_f + (s_i - s_f)(1 - (t - t0)/T)^3 inside the window, clamped outside."""
    sched = Cubic(start=10, end=110, initial=0.1)
    t = np.arange(0, 200)
    frac = np.clip((t - 10) / 100.0, 0.0, 1.0)
    ref = 0.9 + (0.1 - 0.9) * (1.0 - frac) ** 3
    got = np.array([sched(int(s), 0.9) for s in t])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    assert got[0] == 0.1 and got[-1] == 0.9
    assert np.all(np.diff(got) >= -1e-12)


def test_schedules_are_pure():
    """Calling out of order or twice gives the same value (no hidden state)."""
    for sched in (Cubic(0, 50), Linear(5, 25), Constant(3)):
        a = [sched(t, 0.8) for t in (40, 2, 17, 40)]
        assert a[0] == a[3]
        assert [sched(t, 0.8) for t in (40, 2, 17)] == a[:3]


def test_linear_and_constant():
    lin = Linear(start=10, end=20)
    assert [lin(t, 0.5) for t in (0, 10, 15, 20, 99)] == [0.0, 0.0, 0.25, 0.5, 0.5]
    c = Constant(start=4)
    assert [c(t, 0.7) for t in (0, 3, 4, 100)] == [0.0, 0.0, 0.7, 0.7]


@pytest.mark.parametrize("cls", [Cubic, Linear])
def test_end_must_exceed_start(cls):
    with pytest.raises(ValueError, match="end must be > start"):
        cls(start=100, end=100)
    with pytest.raises(ValueError, match="start"):
        cls(start=-1, end=10)


def test_bad_initial_and_bad_callable():
    with pytest.raises(ValueError, match="initial"):
        Cubic(0, 10, initial=1.0)
    with pytest.raises(ValueError, match=r"returned sparsity 1.5 at step 3"):
        evaluate(lambda t: 1.5, 3, 0.9)
    assert evaluate(lambda t: 0.01 * t, 3, 0.9) == pytest.approx(0.03)
