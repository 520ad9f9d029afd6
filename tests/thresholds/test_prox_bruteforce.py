"""Every prox against brute-force minimisation of 1/2 (u - x)^2 + step G(u) on a fine grid."""

import numpy as np
import pytest
import torch

from shrinkage.thresholds import PENALTIES, penalty, prox, threshold

CASES = [
    ("l1", {}, 0.7, 1.0),
    ("l1", {}, 0.3, 0.5),
    ("l0", {}, 0.7, 1.0),
    ("l0", {}, 0.2, 2.0),
    ("l1/2", {}, 0.7, 1.0),
    ("l1/2", {}, 0.4, 0.5),
    ("l2/3", {}, 0.7, 1.0),
    ("l2/3", {}, 0.25, 2.0),
    ("cel0", {"a": 0.8}, 0.7, 1.0),
    ("cel0", {"a": 1.2}, 0.3, 0.5),
    ("mcp", {"gamma": 3.0}, 0.7, 1.0),
    ("mcp", {"gamma": 1.5}, 0.5, 1.2),
    ("scad", {"gamma": 3.7}, 0.7, 1.0),
    ("scad", {"gamma": 2.5}, 0.4, 0.8),
]


def objective(name, u, x, lam, step, params):
    return 0.5 * (u - x) ** 2 + step * penalty(name, u, lam, **params)


def brute_force(name, x, lam, step, params):
    grid = np.linspace(-8.0, 8.0, 320_001)  # spacing 5e-5
    g = objective(name, grid, 0.0, lam, step, params) - 0.5 * grid**2  # step * G(u)
    # 1/2 (u - x)^2 + step G(u) for each x at once, in chunks to bound memory.
    out = np.empty_like(x)
    for i, xi in enumerate(x):
        obj = 0.5 * (grid - xi) ** 2 + g
        out[i] = grid[np.argmin(obj)]
    return out


def test_every_penalty_is_covered():
    assert {c[0] for c in CASES} == set(PENALTIES)


@pytest.mark.parametrize("name,params,lam,step", CASES)
def test_prox_matches_grid_minimiser(name, params, lam, step):
    thr = threshold(name, lam, step, **params)
    x = np.concatenate(
        [
            np.linspace(-5.0, 5.0, 101),
            # at and around the threshold, and around the knees of the piecewise forms
            thr + np.array([-1e-3, -1e-4, 1e-3, 2e-2]),
            -(thr + np.array([-1e-3, 1e-3])),
            [(1 + step) * lam + 0.01, params.get("gamma", 3.0) * lam + 0.01],
        ]
    )
    got = prox(name, x, lam, step, **params)
    ref = brute_force(name, x, lam, step, params)
    f_got = objective(name, got, x, lam, step, params)
    f_ref = objective(name, ref, x, lam, step, params)
    # The prox is a global minimiser: its objective is never above the grid's best.
    assert np.all(f_got <= f_ref + 1e-8), np.max(f_got - f_ref)
    # Away from ties (where two minimisers exist) it is the grid's argmin itself.
    far = np.abs(np.abs(x) - thr) > 5e-3
    assert np.allclose(got[far], ref[far], atol=2e-4)


@pytest.mark.parametrize("name,params,lam,step", CASES)
def test_threshold_is_exact_boundary(name, params, lam, step):
    thr = threshold(name, lam, step, **params)
    below = np.array([thr * (1 - 1e-9), thr * 0.5, 0.0])
    assert np.all(prox(name, below, lam, step, **params) == 0)
    above = np.array([thr * (1 + 1e-6) + 1e-9])
    assert np.all(prox(name, above, lam, step, **params) != 0)


@pytest.mark.parametrize("name", ["l0", "l1/2", "l2/3"])
def test_tie_point_objectives_equal(name):
    """At the threshold of a discontinuous prox, 0 and the jump value tie."""
    lam, step = 0.6, 1.0
    thr = threshold(name, lam, step)
    x = np.array([thr + 1e-7])
    u = prox(name, x, lam, step)
    assert u[0] != 0
    f_u = objective(name, u, x, lam, step, {})
    f_0 = objective(name, np.zeros(1), x, lam, step, {})
    assert abs(f_u[0] - f_0[0]) < 1e-5


def test_torch_and_numpy_agree():
    x = np.linspace(-3, 3, 61)
    for name in PENALTIES:
        params = {"a": 0.9} if name == "cel0" else {}
        a = prox(name, x, 0.5, 1.0, **params)
        b = prox(name, torch.from_numpy(x), 0.5, 1.0, **params).numpy()
        assert isinstance(a, np.ndarray)
        np.testing.assert_array_equal(a, b)
