"""Variance and correlation maps, their derivatives, fixed points and depth scales."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from shrinkage.activations import (
    EdgeOfChaosWarning,
    chi,
    correlation_map,
    d2V_dq2,
    depth_scales,
    dV_dq,
    edge_of_chaos,
    fixed_points,
    propagate,
    variance_map,
)
from shrinkage.activations._gauss import resolve

PARAMS = [
    ("crelu", 1.0, 1.5),
    ("cst", 1.44, 1.2),
    ("shifted_relu", 0.5, None),
    ("erf", 0.0, None),
    ("tanh", 0.0, None),
]


@pytest.mark.parametrize("name,tau,m", PARAMS)
def test_derivatives_match_finite_differences(name, tau, m):
    """dV/dq and d2V/dq2 equal central differences of V (step 1e-4, error O(h^2))."""
    q = np.array([0.4, 1.0, 2.5])
    h = 1e-4
    v = lambda x: variance_map(name, x, 1.7, 0.3, tau=tau, m=m)  # noqa: E731
    d1 = (v(q + h) - v(q - h)) / (2 * h)
    d2 = (v(q + h) - 2 * v(q) + v(q - h)) / h**2
    np.testing.assert_allclose(dV_dq(name, q, 1.7, 0.3, tau=tau, m=m), d1, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(d2V_dq2(name, q, 1.7, 0.3, tau=tau, m=m), d2, rtol=1e-4, atol=1e-5)


def _corr_reference(name, rho, q, sw, sb, tau, m):
    """C(rho) by nested adaptive quadrature (scipy quad, split at every kink) of a pure-Python
    phi written independently of the library."""
    if name == "crelu":
        phi = lambda x: min(max(x - tau, 0.0), m)  # noqa: E731
        kinks = [tau, tau + m]
    else:
        phi = lambda x: math.copysign(min(max(abs(x) - tau, 0.0), m), x)  # noqa: E731
        kinks = [-tau - m, -tau, tau, tau + m]
    s, c = math.sqrt(q), math.sqrt(1 - rho**2)
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731

    def inner(z1):
        pts = sorted((k / s - rho * z1) / c for k in kinks)
        edges = [-10.0] + [p for p in pts if -10 < p < 10] + [10.0]
        f = lambda z2: phi(s * (rho * z1 + c * z2)) * pdf(z2)  # noqa: E731
        return sum(
            integrate.quad(f, a, b, epsabs=1e-13, epsrel=1e-12)[0]
            for a, b in zip(edges[:-1], edges[1:])
        )

    edges = [-10.0] + sorted(k / s for k in kinks) + [10.0]
    g = lambda z1: phi(s * z1) * pdf(z1) * inner(z1) if phi(s * z1) != 0 else 0.0  # noqa: E731
    val = sum(
        integrate.quad(g, a, b, epsabs=1e-12, epsrel=1e-11, limit=100)[0]
        for a, b in zip(edges[:-1], edges[1:])
    )
    return (sw**2 * val + sb**2) / q


@pytest.mark.parametrize("name,tau,m", [("crelu", 1.0, 1.5), ("cst", 1.44, 1.2)])
def test_correlation_map_matches_2d_quadrature(name, tau, m):
    """The 1-D integral with the inner Gaussian expectation in closed form agrees with 2-D
    adaptive quadrature."""
    for rho in (-0.6, 0.9):
        got = correlation_map(name, rho, 1.3, 2.0, 0.5, tau=tau, m=m)
        ref = _corr_reference(name, rho, 1.3, 2.0, 0.5, tau, m)
        assert abs(got - ref) <= 1e-7 * abs(ref) + 1e-9


def test_correlation_map_known_kernels_and_rho_one():
    """ReLU gives the arc-cosine kernel and erf the arcsin kernel; C(1) = V(q*)/q* exactly;
    the callable path (2-D Gauss-Legendre panels) agrees with tanh's own at 1e-6."""
    rho = np.array([-0.9, -0.3, 0.0, 0.5, 0.99, 1.0])
    q = 1.7
    arc = q / (2 * np.pi) * (np.sqrt(1 - rho**2) + (np.pi - np.arccos(rho)) * rho)
    np.testing.assert_allclose(correlation_map("relu", rho, q, 1.0, 0.0), arc / q, rtol=1e-12)
    ek = 2 / np.pi * np.arcsin(2 * rho * q / (1 + 2 * q))
    np.testing.assert_allclose(
        correlation_map("erf", rho, q, 1.0, 0.0), ek / q, rtol=1e-10, atol=1e-14
    )
    v = variance_map("cst", q, 2.2, 0.4, tau=1.0, m=1.0)
    assert correlation_map("cst", 1.0, q, 2.2, 0.4, tau=1.0, m=1.0) == pytest.approx(
        v / q, rel=1e-15
    )
    a = correlation_map("tanh", rho[:-1], q, 1.2, 0.1)
    b = correlation_map(lambda x: torch.tanh(x), rho[:-1], q, 1.2, 0.1)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def _tanh_pair(q, rho, deriv):
    """E[f(u1) f(u2)] for f = tanh (or tanh'), u ~ N(0, q) with correlation rho, by scipy's
    adaptive 2-D quadrature, split at z1 = 0 and at z2 where the inner argument crosses 0."""
    f = (lambda x: 1 / math.cosh(x) ** 2) if deriv else math.tanh
    s, c = math.sqrt(q), math.sqrt(1 - rho**2)
    pdf = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731

    def inner(z1):
        mid = -rho * z1 / c  # where rho z1 + c z2 = 0: tanh's bend
        g = lambda z2: f(s * (rho * z1 + c * z2)) * pdf(z2)  # noqa: E731
        return sum(
            integrate.quad(g, a, b, epsabs=1e-14, epsrel=1e-12, limit=200)[0]
            for a, b in ((-12.0, mid), (mid, 12.0))
        )

    outer = lambda z1: f(s * z1) * pdf(z1) * inner(z1)  # noqa: E731
    return sum(
        integrate.quad(outer, a, b, epsabs=1e-13, epsrel=1e-11, limit=200)[0]
        for a, b in ((-12.0, 0.0), (0.0, 12.0))
    )


@pytest.mark.parametrize("q", [12.5, 400.0])
def test_wide_tanh_correlation_matches_adaptive_quadrature(q):
    """At large q* the inner expectation of the 2-D map follows tanh's bend (a fixed 64-point
    Gauss-Hermite rule was 2.7 % off for E[phi' phi'] at q* 12.5, rho 0): C and the slope
    chi_c against scipy's adaptive quadrature."""
    from shrinkage.activations.maps import _cross

    spec, tau, m = resolve("tanh", 0.0, None)
    for rho in (0.0, 0.3, 0.8):
        for deriv in (False, True):
            got = _cross(spec, q, np.array([rho]), tau, m, deriv)[0]
            ref = _tanh_pair(q, rho, deriv)
            assert abs(got - ref) <= 1e-8 * abs(ref) + 1e-12, (rho, deriv, got, ref)
    got = correlation_map("tanh", 0.3, q, 4.0, 0.5)
    assert got == pytest.approx((16.0 * _tanh_pair(q, 0.3, False) + 0.25) / q, rel=1e-8)


def test_correlation_map_matches_monte_carlo():
    """C(rho) for CST lies within 5 standard errors of a 10^6-sample Monte Carlo estimate."""
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(2, 1_000_000, generator=g, dtype=torch.float64)
    q, rho, tau, m = 1.0, 0.6, 1.2, 1.0
    u1 = math.sqrt(q) * z1
    u2 = math.sqrt(q) * (rho * z1 + math.sqrt(1 - rho**2) * z2)
    spec, _, _ = resolve("cst", tau, m)
    prod = spec.core(u1, tau, m) * spec.core(u2, tau, m)
    ref = correlation_map("cst", rho, q, 1.0, 0.0, tau=tau, m=m)
    assert abs(float(prod.mean()) - ref) <= 5 * float(prod.std()) / 1000


def test_chi_is_the_slope_of_the_correlation_map_at_one():
    """chi = C'(1) (Price's theorem), checked by a one-sided difference of C."""
    q, sw, sb, tau, m = 1.0, 2.0, 0.5, 0.8, 1.3
    h = 1e-6
    slope = (
        correlation_map("crelu", 1.0, q, sw, sb, tau=tau, m=m)
        - correlation_map("crelu", 1 - h, q, sw, sb, tau=tau, m=m)
    ) / h
    assert slope == pytest.approx(chi("crelu", q, sw, tau=tau, m=m), rel=1e-3)


def test_propagate_iterates_the_maps():
    """propagate's q^l is V applied l-1 times; rho^l follows C with the running q^l."""
    out = propagate("cst", 0.5, 5, 2.0, 0.6, tau=1.0, m=1.0, rho0=0.3)
    q = 0.5
    for layer in range(5):
        assert out["q"][layer] == pytest.approx(q, rel=1e-13)
        q = variance_map("cst", q, 2.0, 0.6, tau=1.0, m=1.0)
    c = 4.0 * correlation_map("cst", 0.3, 0.5, 1.0, 0.0, tau=1.0, m=1.0) * 0.5 + 0.36
    assert out["rho"][1] == pytest.approx(c / out["q"][1], rel=1e-12)


def test_fixed_points_find_every_crossing():
    """Every returned point solves V(q) = q; stable ones have V' < 1; between consecutive fixed
    points V - q keeps one sign (checked on a dense grid: nothing missed)."""
    with pytest.warns(EdgeOfChaosWarning):
        cfg = edge_of_chaos("cst", 0.85, m=2.0)  # the note's example: q* plus a spurious pair
    sw, sb, tau, m = cfg.sigma_w, cfg.sigma_b, cfg.tau, cfg.m
    fps = fixed_points("cst", sw, sb, tau=tau, m=m)
    assert len(fps) == 3
    for p in fps:
        assert variance_map("cst", p.q, sw, sb, tau=tau, m=m) == pytest.approx(p.q, rel=1e-10)
        assert (p.kind == "stable") == (p.slope < 1)
    grid = np.linspace(sb**2, sw**2 * m**2 + sb**2, 20001)
    f = variance_map("cst", grid, sw, sb, tau=tau, m=m) - grid
    assert np.count_nonzero(np.diff(np.sign(f))) == 3


def test_depth_scales():
    """xi_q = -1/ln V'(q*); at the edge of chaos xi_c is infinite; in the ordered phase
    (chi < 1) xi_c = -1/ln chi."""
    xi_q, xi_c = depth_scales("crelu", 1.0, 2.6, 0.74, tau=1.036, m=1.0)
    assert xi_q == pytest.approx(-1 / math.log(dV_dq("crelu", 1.0, 2.6, 0.74, tau=1.036, m=1.0)))
    xi_q, xi_c = depth_scales("tanh", 0.5, 0.9, 0.1)
    assert xi_c == pytest.approx(-1 / math.log(chi("tanh", 0.5, 0.9)), rel=1e-9)
    q_star = [p.q for p in fixed_points("tanh", 3.0, 0.3) if p.kind == "stable"][0]
    xi_q, xi_c = depth_scales("tanh", q_star, 3.0, 0.3)  # chaotic: c* < 1, finite xi_c
    assert chi("tanh", q_star, 3.0) > 1 and math.isfinite(xi_c) and xi_c > 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="sigma_w"):
        variance_map("relu", 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="sigma_b"):
        variance_map("relu", 1.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="rho"):
        correlation_map("relu", 1.5, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="depth"):
        propagate("relu", 1.0, 0, 1.0, 0.0)
    with pytest.raises(ValueError, match="q_star"):
        correlation_map("relu", 0.5, 0.0, 1.0, 0.0)


def test_depth_scales_and_correlation_map_name_what_they_cannot_use():
    """Found by probing: a q_star that is not the length map's fixed point reached scipy's
    "f(a) and f(b) must have different signs"; q_star=inf gave NaN; text rho was read."""
    import torch
    from torch import nn

    from shrinkage.activations import correlation_map, depth_scales, edge_of_chaos, init_

    with pytest.raises(ValueError, match="not a fixed point of the length map"):
        depth_scales("tanh", 1.0, 2.5, 0.3)
    with pytest.raises(ValueError, match="q_star must be finite"):
        correlation_map("tanh", 0.3, float("inf"), 1.5, 0.1)
    with pytest.raises(ValueError, match="rho must be numbers"):
        correlation_map("tanh", "0.3", 1.0, 1.5, 0.1)
    with pytest.raises(ValueError, match="lazy"):
        init_(nn.Sequential(nn.LazyLinear(3)), edge_of_chaos("tanh"))
    lazy = nn.Sequential(nn.LazyLinear(3))
    lazy(torch.ones(1, 5))  # materialised: initialised as any Linear
    init_(lazy, edge_of_chaos("tanh"))
