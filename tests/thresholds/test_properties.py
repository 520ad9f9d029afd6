"""Hypothesis properties every prox in the family must have."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shrinkage.thresholds import PENALTIES, lam_for_threshold, penalty, prox, threshold

PARAMS = {"cel0": {"a": 0.9}, "mcp": {"gamma": 3.0}, "scad": {"gamma": 3.7}}
names = st.sampled_from(PENALTIES)
lams = st.floats(0.01, 3.0)
steps = st.floats(0.1, 1.0)
xs = st.lists(st.floats(-20, 20, allow_nan=False), min_size=1, max_size=30)


def _p(name):
    return PARAMS.get(name, {})


@settings(max_examples=150, deadline=None)
@given(names, xs, lams, steps)
def test_odd_symmetry(name, x, lam, step):
    x = np.array(x)
    np.testing.assert_array_equal(
        prox(name, -x, lam, step, **_p(name)), -prox(name, x, lam, step, **_p(name))
    )


@settings(max_examples=150, deadline=None)
@given(names, xs, lams, steps)
def test_monotone_non_decreasing(name, x, lam, step):
    x = np.sort(np.array(x))
    y = prox(name, x, lam, step, **_p(name))
    assert np.all(np.diff(y) >= -1e-12)


@settings(max_examples=100, deadline=None)
@given(names, lams, steps)
def test_prox_of_zero_is_zero(name, lam, step):
    assert prox(name, np.zeros(3), lam, step, **_p(name)).tolist() == [0.0, 0.0, 0.0]


@settings(max_examples=150, deadline=None)
@given(names, lams, steps, st.floats(0.0, 0.999999))
def test_exact_zero_below_threshold(name, lam, step, frac):
    thr = threshold(name, lam, step, **_p(name))
    x = np.array([frac * thr, -frac * thr])
    assert np.all(prox(name, x, lam, step, **_p(name)) == 0.0)


@settings(max_examples=150, deadline=None)
@given(names, xs, lams, steps)
def test_never_worse_than_x_or_zero(name, x, lam, step):
    x = np.array(x)
    p = _p(name)

    def f(u):
        return 0.5 * (u - x) ** 2 + step * penalty(name, u, lam, **p)

    fu = f(prox(name, x, lam, step, **p))
    tol = 1e-9 * (1 + np.abs(x) ** 2)
    assert np.all(fu <= f(x) + tol)
    assert np.all(fu <= f(np.zeros_like(x)) + tol)


@settings(max_examples=100, deadline=None)
@given(names, st.floats(0.01, 5.0), steps)
def test_lam_for_threshold_inverts_threshold(name, thr, step):
    if name == "cel0":
        step = min(step, 0.9)  # a^2 step < 1 with a = 0.9... needs step < 1.23
    lam = lam_for_threshold(name, thr, step, **_p(name))
    assert np.isclose(threshold(name, lam, step, **_p(name)), thr, rtol=1e-10)
