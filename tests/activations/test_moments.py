"""Gaussian moments: closed forms against adaptive quadrature (scipy) and Monte Carlo."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from shrinkage.activations import moments, zero_fraction
from shrinkage.activations._gauss import _SPECS, _all, resolve

CASES = [
    ("relu", 0.0, None),
    ("shifted_relu", 0.7, None),
    ("soft_threshold", 1.2, None),
    ("crelu", 1.0, 1.5),
    ("cst", 1.44, 1.2),
    ("clipped_relu", 0.3, 0.4),
    ("erf", 0.0, None),
]
QS = [0.05, 0.6, 1.0, 3.7, 25.0]


def _reference(name, q, tau, m):
    """E phi, E phi^2, E phi'^2, g', g'' by scipy.integrate.quad in x, split at the kinks;
    g^(k) from d^k/dq^k of the N(0, q) density (He_2k(x / sqrt q) / (2q)^k)."""
    spec, tau, m = resolve(name, tau, m)
    kinks = sorted(spec.kinks(tau, m)) if spec.kinks else []
    s = math.sqrt(q)

    def phi(x):
        return float(spec.core(torch.tensor([x], dtype=torch.float64), tau, m)[0])

    def dphi(x):
        t = torch.tensor([x], dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(spec.core(t, tau, m).sum(), t)
        return float(g[0])

    def dens(x):
        return math.exp(-x * x / (2 * q)) / math.sqrt(2 * math.pi * q)

    edges = [-14 * s] + [k for k in kinks if abs(k) < 14 * s] + [14 * s]

    def integ(f):
        tot = 0.0
        for a, b in zip(edges[:-1], edges[1:]):
            tot += integrate.quad(f, a, b, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
        return tot

    he2 = lambda x: x * x / q - 1  # noqa: E731
    he4 = lambda x: (x / s) ** 4 - 6 * x * x / q + 3  # noqa: E731
    return (
        integ(lambda x: phi(x) * dens(x)),
        integ(lambda x: phi(x) ** 2 * dens(x)),
        integ(lambda x: dphi(x) ** 2 * dens(x)),
        integ(lambda x: phi(x) ** 2 * he2(x) * dens(x)) / (2 * q),
        integ(lambda x: phi(x) ** 2 * he4(x) * dens(x)) / (4 * q * q),
    )


def _close(a, b, rtol):
    return abs(a - b) <= rtol * abs(b) + 1e-13  # exact zeros (E phi of odd phi, relu V'')


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")  # at exact zeros
@pytest.mark.parametrize("name,tau,m", CASES)
def test_closed_forms_match_adaptive_quadrature(name, tau, m):
    """Every closed form (moments and the first two q-derivatives of E phi^2) agrees with
    scipy's adaptive quadrature to a relative error of 1e-8."""
    spec, t, mm = resolve(name, tau, m)
    q = np.array([0.6, 3.7]) if name != "shifted_relu" else np.array(QS)
    closed = _all(spec, q, t, mm, "closed")
    for i, qi in enumerate(q):
        ref = _reference(name, float(qi), tau, m)
        for k in range(5):
            assert _close(closed[k][i], ref[k], 1e-8), (name, qi, k, closed[k][i], ref[k])


@pytest.mark.parametrize("name,tau,m", CASES)
def test_closed_forms_match_own_quadrature_on_a_grid(name, tau, m):
    """The library's piecewise Gauss-Legendre quadrature (used for callables) matches the
    closed forms on a q grid spanning 3 decades."""
    spec, t, mm = resolve(name, tau, m)
    q = np.geomspace(0.02, 40, 25)
    closed = _all(spec, q, t, mm, "closed")
    quad = _all(spec, q, t, mm, "quad")
    for c, r in zip(closed, quad):
        np.testing.assert_allclose(c, r, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("name,tau,m", CASES)
def test_closed_forms_match_monte_carlo(name, tau, m):
    """Monte Carlo with 10^6 draws lies within 5 standard errors of each closed form."""
    spec, t, mm = resolve(name, tau, m)
    q = 1.3
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1_000_000, generator=g, dtype=torch.float64) * math.sqrt(q)
    xr = x.clone().requires_grad_(True)
    y = spec.core(xr, t, mm)
    (dy,) = torch.autograd.grad(y.sum(), xr)
    y = y.detach()
    mean, second, d2 = moments(name, q, tau=tau, m=m)
    for est, ref in ((y, mean), (y**2, second), (dy**2, d2)):
        se = float(est.std()) / 1000.0
        assert abs(float(est.mean()) - ref) <= 5 * se + 1e-12


def test_tanh_quadrature_agrees_with_gauss_hermite_and_callable():
    """tanh has no closed form: piecewise Gauss-Legendre, adaptive quadrature of a plain callable
    (1e-9) and Gauss-Hermite (slower to converge: poles of sech near the axis, 1e-4) agree."""
    q = np.array([0.1, 1.0, 5.0])
    a = np.array(moments("tanh", q))
    b = np.array(moments("tanh", q, method="hermite"))
    c = np.array(moments(torch.tanh, q))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-15)
    np.testing.assert_allclose(a, c, rtol=1e-9, atol=1e-15)


def test_callable_with_kinks_matches_closed_form():
    """A user callable (here CST written by hand) gets the CST closed-form values by adaptive
    quadrature, and by the faster split Gauss-Legendre once it declares its kinks."""

    def my_cst(x):
        return torch.sign(x) * torch.clamp(x.abs() - 1.0, min=0.0, max=0.8)

    q = np.array([0.5, 2.0])
    got = np.array(moments(my_cst, q))
    ref = np.array(moments("cst", q, tau=1.0, m=0.8))
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-12)
    my_cst.kinks = [-1.8, -1.0, 1.0, 1.8]
    np.testing.assert_allclose(np.array(moments(my_cst, q)), ref, rtol=1e-10, atol=1e-15)


def test_types_follow_the_input():
    """Scalar in, float out; numpy in, numpy out of the same shape; torch in, float64 torch out."""
    assert isinstance(moments("crelu", 1.0, tau=0.5, m=1.0)[1], float)
    q = np.ones((2, 3))
    assert moments("crelu", q, tau=0.5, m=1.0)[1].shape == (2, 3)
    out = moments("cst", torch.ones(4), tau=0.5, m=1.0)[2]
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == (4,)


@pytest.mark.parametrize(
    "name,tau,m",
    [c for c in CASES if _SPECS.get(c[0]) is None or _SPECS[c[0]].has_tau or c[0] == "relu"],
)
def test_zero_fraction_matches_monte_carlo(name, tau, m):
    """The closed-form fraction of exact zeros equals the empirical one (5 standard errors)."""
    spec, t, mm = resolve(name, tau, m)
    x = torch.randn(400_000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    emp = float((spec.core(x * math.sqrt(2.0), t, mm) == 0).double().mean())
    ref = zero_fraction(name, 2.0, tau=tau, m=m)
    assert abs(emp - ref) <= 5 * math.sqrt(ref * (1 - ref) / x.numel())


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="unknown activation 'gelu'.*'crelu'"):
        moments("gelu", 1.0)
    with pytest.raises(ValueError, match="tau"):
        moments("shifted_relu", 1.0, tau=-0.1)
    with pytest.raises(ValueError, match="m must be > 0"):
        moments("crelu", 1.0, tau=0.1, m=0.0)
    with pytest.raises(ValueError, match="needs a clipping magnitude"):
        moments("cst", 1.0, tau=0.1)
    with pytest.raises(ValueError, match="takes no clipping"):
        moments("shifted_relu", 1.0, tau=0.1, m=1.0)
    with pytest.raises(ValueError, match="q must be > 0"):
        moments("relu", np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="takes no threshold"):
        moments("relu", 1.0, tau=0.5)


def test_a_callable_named_like_a_builtin_activation_is_not_taken_for_it():
    def relu(x):  # not a ReLU at all
        return 2 * x

    with pytest.raises(ValueError, match="known only for"):
        zero_fraction(relu, 1.0)
    # its moments come from quadrature of the function itself, not ReLU's closed forms
    assert abs(moments(relu, 1.0)[1] - 4.0) < 1e-6


@pytest.mark.parametrize("q", [1.0, 1e4, 1e6, 1e8])
def test_tanh_moments_at_large_variance_match_quadrature_in_x(q):
    """tanh has no kink to split at: fixed panels of width 1 in z missed its bend (width
    1 / sqrt(q) in z) once q passed ~1e4 (E phi'^2 8 % off at 1e6, 200x at 1e8, and the edge
    of chaos with it). Reference: scipy's adaptive quadrature in x = sqrt(q) z."""
    import math

    from scipy.integrate import quad

    from shrinkage.activations import edge_of_chaos, moments

    def gauss(x):
        return math.exp(-x * x / (2 * q)) / math.sqrt(2 * math.pi * q)

    def expect(f, half):
        return quad(lambda x: f(x) * gauss(x), -half, half, points=[0.0], limit=2000,
                    epsabs=0.0, epsrel=1e-12)[0]  # fmt: skip

    e_dphi2 = expect(lambda x: (1 - math.tanh(x) ** 2) ** 2, 60.0)
    # 1 - tanh^2 lives where tanh bends: its expectation converges where tanh^2's would not
    e_phi2 = 1.0 - expect(lambda x: 1 - math.tanh(x) ** 2, 60.0)
    m = moments("tanh", q)
    assert m[2] == pytest.approx(e_dphi2, rel=1e-9)
    assert m[1] == pytest.approx(e_phi2, rel=1e-9)
    if q == 1e6:
        assert edge_of_chaos("tanh", q_star=q).sigma_w ** 2 == pytest.approx(1 / e_dphi2, rel=1e-6)
