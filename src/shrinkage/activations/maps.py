"""Large-width Gaussian-process maps of a deep network (Poole et al. 2016; Schoenholz et al. 2017;
Price et al., ICLR 2024).

Layers h^l = W^l phi(h^{l-1}) + b^l, W_ij ~ N(0, sigma_w^2 / N), b_i ~ N(0, sigma_b^2):

    q^{l+1}   = V(q^l) = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2          (variance map)
    rho^{l+1} = C(rho^l) = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*    (correlation map)
    chi       = C'(1) = sigma_w^2 E[phi'(sqrt(q*) z)^2]                      (edge of chaos: 1)

All maps work in float64, take the activation by name (``relu``, ``shifted_relu``,
``soft_threshold``, ``clipped_relu``/``crelu``, ``clipped_soft_threshold``/``cst``, ``tanh``,
``erf``) or as a callable, with keywords ``tau=`` and ``m=``, and are vectorised over q / rho.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import brentq

from .._checks import check_int_at_least, check_nonnegative, check_positive, check_scalar
from ._docs import fill_doc
from ._gauss import _X_SCALES, _ZMAX, _all, _as_q, _back, _nodes, _phi_np, _second, resolve


def _sig(sigma_w, sigma_b):
    check_positive("sigma_w", sigma_w)
    check_nonnegative("sigma_b", sigma_b)
    # one finite number each (text such as "1.4" would be read as a number)
    return check_scalar("sigma_w", sigma_w) ** 2, check_scalar("sigma_b", sigma_b) ** 2


@fill_doc
def variance_map(act, q, sigma_w, sigma_b, tau=0.0, m=None, method="auto"):
    """The variance map V(q) = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2, z ~ N(0, 1).

    The pre-activation variance of the next layer of a wide random network, given variance
    q in this one (Poole et al. 2016); its fixed points ``q*`` = V(``q*``) are the variances a deep
    network settles at.

    Parameters
    ----------
    %(act, q, sigma_w, sigma_b, tau, m, method)s

    Returns
    -------
    %(returns_like_q)s

    Raises
    ------
    %(raises_map_arguments)s

    Examples
    --------
    ReLU with sigma_w^2 = 2, sigma_b = 0 (He et al. 2015) keeps every variance: V(q) = q.

    >>> round(variance_map("relu", 2.0, sigma_w=2**0.5, sigma_b=0.0), 12)
    2.0
    >>> import numpy as np
    >>> variance_map("relu", np.array([0.5, 1.0, 4.0]), sigma_w=2**0.5, sigma_b=0.0)
    array([0.5, 1. , 4. ])
    """
    spec, tau, m = resolve(act, tau, m)
    w2, b2 = _sig(sigma_w, sigma_b)
    qa, ref = _as_q(q)
    return _back(ref, w2 * _all(spec, qa, tau, m, method)[1] + b2)


def _scaled_moment(k, act, q, sigma_w, sigma_b, tau, m, method):
    """sigma_w^2 times the k-th Gaussian expectation of ``_all`` (3: V'/sigma_w^2, 4: V'')."""
    spec, tau, m = resolve(act, tau, m)
    w2, _ = _sig(sigma_w, sigma_b)
    qa, ref = _as_q(q)
    return _back(ref, w2 * _all(spec, qa, tau, m, method)[k])


@fill_doc
def dV_dq(act, q, sigma_w, sigma_b=0.0, tau=0.0, m=None, method="auto"):
    """V'(q) = sigma_w^2 E[phi'^2 + phi phi''] = sigma_w^2 E[phi^2 (z^2 - 1)] / (2q).

    For CReLU: sigma_w^2 (Phi(b) - Phi(a) - (b - a) p(b)), a = tau/sqrt q, b = (tau+m)/sqrt q.
    The second form needs no derivative of phi, so kinks cost nothing. V'(``q*``) < 1 makes the
    fixed point ``q*`` attracting.

    %(derivative_sections)s

    Examples
    --------
    >>> round(dV_dq("shifted_relu", 1.0, sigma_w=1.0, tau=0.0), 12)
    0.5

    It is the slope of ``variance_map`` (a central difference agrees):

    >>> h = 1e-5
    >>> v = [variance_map("cst", q, 2.0, 0.5, tau=1.0, m=1.0) for q in (1 - h, 1 + h)]
    >>> abs((v[1] - v[0]) / (2 * h) - dV_dq("cst", 1.0, 2.0, 0.5, tau=1.0, m=1.0)) < 1e-8
    True
    """
    return _scaled_moment(3, act, q, sigma_w, sigma_b, tau, m, method)


@fill_doc
def d2V_dq2(act, q, sigma_w, sigma_b=0.0, tau=0.0, m=None, method="auto"):
    """V''(q) = sigma_w^2 E[phi^2 (z^4 - 6 z^2 + 3)] / (4 q^2).

    Unclipped shifted ReLU: sigma_w^2 a p(a) / (2q) > 0 for tau > 0 (the instability: at the
    edge of chaos V'(``q*``) = 1, so V > q just above ``q*`` and the variance drifts away; Price et
    al., ICLR 2024).

    %(derivative_sections)s

    Examples
    --------
    >>> d2V_dq2("shifted_relu", 1.0, sigma_w=1.0, tau=1.0) > 0
    True

    Clipping bends V the other way here:

    >>> d2V_dq2("cst", 1.0, sigma_w=2.0, tau=1.0, m=1.0) < 0
    True
    """
    return _scaled_moment(4, act, q, sigma_w, sigma_b, tau, m, method)


@fill_doc
def chi(act, q_star, sigma_w, tau=0.0, m=None, method="auto"):
    """chi = C'(1) = sigma_w^2 E[phi'(sqrt(``q*``) z)^2]; the edge of chaos is chi = 1.

    The slope of the correlation map at rho = 1 (Schoenholz et al. 2017): chi < 1 is the
    ordered phase (nearby inputs merge with depth), chi > 1 the chaotic one (they separate);
    chi is also the mean per-layer factor of the squared gradient norm.

    Parameters
    ----------
    %(act)s
    q_star : float, array_like or torch.Tensor
        Fixed-point variance(s) ``q*`` > 0; vectorised.
    sigma_w : float
        Weight scale > 0.
    %(tau, m, method)s

    Returns
    -------
    float, numpy.ndarray or torch.Tensor
        chi: a float for a scalar ``q_star``, else an array or float64 tensor like it.

    Raises
    ------
    ValueError
        An unknown activation name; ``tau`` < 0, or > 0 for an activation without a
        threshold; ``m`` missing for a clipped activation, given for another, or not > 0;
        ``q_star`` or ``sigma_w`` not > 0; an unknown ``method``.

    Examples
    --------
    >>> round(chi("relu", 1.0, sigma_w=2**0.5), 12)
    1.0

    ``edge_of_chaos`` chooses sigma_w so that chi = 1:

    >>> from shrinkage.activations import edge_of_chaos
    >>> cfg = edge_of_chaos("cst", 0.85)
    >>> round(chi("cst", cfg.q_star, cfg.sigma_w, tau=cfg.tau, m=cfg.m), 12)
    1.0
    """
    spec, tau, m = resolve(act, tau, m)
    check_positive("sigma_w", sigma_w)
    qa, ref = _as_q(q_star)
    return _back(ref, float(sigma_w) ** 2 * _all(spec, qa, tau, m, method)[2])


# ---- two-point expectations ---------------------------------------------------------------
def _cross(spec, q, rho, tau, m, deriv=False):
    """E[f(u1) f(u2)], f = phi (or phi'), u1, u2 ~ N(0, q) with correlation rho; float64.

    One-dimensional: E_z1[f(sqrt q z1) E_z2 f(sqrt q (rho z1 + sqrt(1-rho^2) z2))], with the
    inner expectation in closed form where the spec has one (else ``_inner``'s panels), the
    outer by Gauss-Legendre split at the kinks. rho = +-1 use the one-point moments exactly."""
    rho = np.asarray(rho, dtype=np.float64)
    flat = rho.ravel()
    out = np.empty_like(flat)
    sq = math.sqrt(q)
    kinks = spec.kinks(tau, m) if callable(spec.kinks) else spec.kinks
    z, w = _nodes(np.array([q]), kinks, n=32 if spec.cond is None else 48)
    z, w = z[0], w[0]
    f1 = _phi_np(spec, tau, m, sq * z, deriv=deriv)
    edge = np.abs(flat) >= 1.0
    if edge.any():
        e = _all(spec, np.array([q]), tau, m, "auto")
        same = e[2][0] if deriv else e[1][0]
        # rho = -1: E[f(u) f(-u)]
        opp = float((w * f1 * _phi_np(spec, tau, m, -sq * z, deriv=deriv)).sum())
        out[edge] = np.where(flat[edge] > 0, same, opp)
    inner = ~edge
    if inner.any():
        r = flat[inner][:, None]
        mu = r * sq * z[None, :]
        sd = sq * np.sqrt(1.0 - r**2)
        if spec.cond is not None:
            mm = np.inf if m is None else m
            g = spec.cond(mu, np.broadcast_to(sd, mu.shape), tau, mm, deriv)
        else:
            g = np.concatenate(
                [
                    _inner(spec, tau, m, mu[i : i + 8], sd[i : i + 8], kinks, deriv)
                    for i in range(0, len(mu), 8)
                ]
            )
        out[inner] = (g * (w * f1)[None, :]).sum(1)
    return out.reshape(rho.shape)


def _inner(spec, tau, m, mu, sd, kinks, deriv, n=8):
    """E_z f(mu + sd z), z ~ N(0, 1), for mu (r, k) and sd (r, 1): Gauss-Legendre in z on
    panels of width 1 split where mu + sd z crosses phi's kinks, 0 and +-2^j (j = -2..5).
    At a wide sd a fixed Gauss-Hermite rule misses phi's bend at x ~ 1 (tanh at q* 12.5:
    E[phi'(u1) phi'(u2)] 2.7 % off at rho = 0); these panels follow it, as ``_nodes`` does
    for the one-point moments."""
    base = np.linspace(-_ZMAX, _ZMAX, 25)
    xb = np.concatenate([-_X_SCALES, [0.0], _X_SCALES, np.asarray(kinks or [], float)])
    with np.errstate(divide="ignore", invalid="ignore"):
        zb = (xb[None, None, :] - mu[..., None]) / sd[..., None]
    zb = np.clip(np.nan_to_num(zb, nan=_ZMAX), -_ZMAX, _ZMAX)
    edges = np.concatenate([np.broadcast_to(base, mu.shape + base.shape), zb], axis=-1)
    edges.sort(axis=-1)
    lo, hi = edges[..., :-1], edges[..., 1:]
    x, w = np.polynomial.legendre.leggauss(n)
    half = 0.5 * (hi - lo)
    z = (0.5 * (hi + lo))[..., None] + half[..., None] * x
    wz = half[..., None] * w * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    f = _phi_np(spec, tau, m, mu[..., None, None] + sd[..., None, None] * z, deriv=deriv)
    return (f * wz).sum((-2, -1))


@fill_doc
def correlation_map(act, rho, q_star, sigma_w, sigma_b, tau=0.0, m=None):
    """C(rho) = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / ``q*``, u1, u2 ~ N(0, ``q*``) with
    correlation rho. A one-dimensional integral with the inner Gaussian expectation in closed
    form (2-D quadrature for callables); exactly V(``q*``)/``q*`` at rho = 1.

    Parameters
    ----------
    %(act)s
    rho : float, array_like or torch.Tensor
        Input correlation(s) in [-1, 1]; vectorised.
    q_star : float
        The variance ``q*`` > 0 of both inputs (a fixed point of V for the map to be iterated).
    %(sigma_w, sigma_b, tau, m)s

    Returns
    -------
    numpy.ndarray or torch.Tensor
        C(rho), shaped like ``rho`` (a 0-d array for a scalar ``rho``; float64 tensor on
        ``rho``'s device for a tensor).

    Raises
    ------
    ValueError
        An unknown activation name; ``tau`` < 0, or > 0 for an activation without a
        threshold; ``m`` missing for a clipped activation, given for another, or not > 0;
        ``rho`` outside [-1, 1] or NaN; ``q_star`` or ``sigma_w`` not > 0; ``sigma_b`` < 0.

    Examples
    --------
    >>> round(float(correlation_map("relu", 1.0, 1.0, 2**0.5, 0.0)), 12)
    1.0

    Uncorrelated inputs come out correlated through ReLU's mean: C(0) = 2 E[phi]^2 = 1/pi.

    >>> import math
    >>> abs(float(correlation_map("relu", 0.0, 1.0, 2**0.5, 0.0)) - 1 / math.pi) < 1e-12
    True
    """
    spec, tau, m = resolve(act, tau, m)
    w2, b2 = _sig(sigma_w, sigma_b)
    check_positive("q_star", q_star)
    if not math.isfinite(float(q_star)):
        raise ValueError(f"q_star must be finite, got q_star={q_star!r}")
    r, ref = _rho(rho)
    return _back(ref, (w2 * _cross(spec, float(q_star), r, tau, m) + b2) / float(q_star))


def _rho(rho):
    ref = rho if isinstance(rho, torch.Tensor) else None
    if ref is None and (isinstance(rho, str | bytes) or np.asarray(rho).dtype.kind not in "biuf"):
        raise ValueError(f"rho must be numbers in [-1, 1], got rho={rho!r}")
    r = rho.detach().cpu().double().numpy() if ref is not None else np.asarray(rho, np.float64)
    if np.any(np.abs(r) > 1) or np.any(np.isnan(r)):
        raise ValueError(f"rho must lie in [-1, 1], got rho={rho!r}")
    return r, ref


@fill_doc
def propagate(act, q0, depth, sigma_w, sigma_b, tau=0.0, m=None, rho0=None):
    """Iterate the maps: q^l (and rho^l if rho0 is given) for l = 1..depth, q^1 = q0.

    Between two inputs of the same variance,
    rho^{l+1} = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q^{l+1}. A variance that
    overflows is inf from there on (and rho NaN).

    Parameters
    ----------
    %(act)s
    q0 : float
        The first layer's variance q^1 > 0.
    %(depth_any, sigma_w, sigma_b, tau, m)s
    rho0 : float or None, optional
        The first layer's correlation rho^1 in [-1, 1] between two inputs; None (default)
        propagates the variance only.

    Returns
    -------
    dict
        ``q``: numpy array (depth,) of q^1 .. q^depth; ``rho``: numpy array (depth,) of
        rho^1 .. rho^depth, or None without ``rho0``.

    Raises
    ------
    ValueError
        An unknown activation name; ``tau`` < 0, or > 0 for an activation without a
        threshold; ``m`` missing for a clipped activation, given for another, or not > 0;
        ``depth`` not an integer >= 1; ``q0`` or ``sigma_w`` not > 0; ``sigma_b`` < 0;
        ``rho0`` outside [-1, 1].

    Examples
    --------
    >>> propagate("relu", 1.0, 3, 2**0.5, 0.0)["q"]
    array([1., 1., 1.])

    ReLU at its edge of chaos makes orthogonal inputs ever more alike:

    >>> propagate("relu", 1.0, 4, 2**0.5, 0.0, rho0=0.0)["rho"].round(4)
    array([0.    , 0.3183, 0.4937, 0.6048])
    """
    spec, tau, m = resolve(act, tau, m)
    depth = check_int_at_least("depth", depth)
    w2, b2 = _sig(sigma_w, sigma_b)
    check_positive("q0", q0)
    q = np.empty(depth)
    rho = None if rho0 is None else np.empty(depth)
    q[0] = float(q0)
    if rho is not None:
        rho[0] = float(_rho(rho0)[0])
    for i in range(1, depth):
        with np.errstate(over="ignore", invalid="ignore"):
            q[i] = w2 * _all(spec, np.array([q[i - 1]]), tau, m)[1][0] + b2
        if not np.isfinite(q[i]) or q[i] > 1e300:
            q[i:] = np.inf
            if rho is not None:
                rho[i:] = np.nan
            break
        if rho is not None:
            c = w2 * _cross(spec, q[i - 1], np.array([rho[i - 1]]), tau, m)[0] + b2
            rho[i] = min(1.0, max(-1.0, c / q[i]))
    return {"q": q, "rho": rho}


@fill_doc
def depth_scales(act, q_star, sigma_w, sigma_b, tau=0.0, m=None):
    """Depth scales (xi_q, xi_c) over which the variance and the correlation reach their
    fixed points (Schoenholz et al. 2017).

    xi_q = -1 / ln V'(``q*``), xi_c = -1 / ln chi_c(``c*``), chi_c = sigma_w^2 E[phi'(u1) phi'(u2)]
    at the stable correlation ``c*`` (``c*`` = 1 unless chi > 1, the chaotic phase, where ``c*`` < 1
    solves C(c) = c); inf where the rate is 1 (no exponential approach: signals travel
    arbitrarily deep).

    Parameters
    ----------
    %(act, q_star, sigma_w, sigma_b, tau, m)s

    Returns
    -------
    tuple of two floats
        (xi_q, xi_c), each > 0 or ``inf``.

    Raises
    ------
    ValueError
        An unknown activation name; ``tau`` < 0, or > 0 for an activation without a
        threshold; ``m`` missing for a clipped activation, given for another, or not > 0;
        ``q_star`` or ``sigma_w`` not > 0; ``sigma_b`` < 0.

    Examples
    --------
    >>> depth_scales("relu", 1.0, 2**0.5, 0.0)
    (inf, inf)

    Clipping makes ``q*`` attracting, with a finite xi_q; the correlation stays critical
    (chi = 1):

    >>> import math
    >>> from shrinkage.activations import edge_of_chaos
    >>> c = edge_of_chaos("cst", 0.85)
    >>> xi_q, xi_c = depth_scales("cst", 1.0, c.sigma_w, c.sigma_b, tau=c.tau, m=c.m)
    >>> round(xi_q, 6) == round(-1 / math.log(c.dV), 6), xi_c
    (True, inf)
    """
    spec, tau, m = resolve(act, tau, m)
    w2, b2 = _sig(sigma_w, sigma_b)
    check_positive("q_star", q_star)
    e = _all(spec, np.array([float(q_star)]), tau, m)
    slope = w2 * e[3][0]
    c1 = w2 * e[2][0]
    c_star = 1.0
    if c1 > 1 + 1e-12:  # chaotic phase: rho = 1 is unstable; the stable c* < 1 solves C(c) = c

        def gap(r):
            return (w2 * _cross(spec, q_star, np.array([r]), tau, m)[0] + b2) / q_star - r

        h = 1e-4
        if gap(0.0) > 0 and not gap(1 - h) < 0:
            # C(c) - c does not change sign below 1: q_star is not the length map's fixed
            # point for these sigmas (brentq's "f(a) and f(b) must have different signs")
            raise ValueError(
                f"q_star={q_star!r} is not a fixed point of the length map for sigma_w="
                f"{sigma_w!r}, sigma_b={sigma_b!r} (no correlation fixed point below 1); "
                "take q_star from fixed_points or edge_of_chaos"
            )
        c_star = brentq(gap, 0.0, 1 - h, xtol=1e-13) if gap(0.0) > 0 else 0.0
    chi_c = c1 if c_star >= 1.0 else w2 * _cross(spec, q_star, np.array([c_star]), tau, m, True)[0]

    def xi(rate):
        rate = abs(rate)
        return math.inf if rate >= 1 - 1e-12 or rate <= 0 else -1.0 / math.log(rate)

    return xi(slope), xi(chi_c)


# ---- fixed points -------------------------------------------------------------------------
@dataclass(frozen=True)
class FixedPoint:
    """A fixed point q = V(q) of the variance map, with its slope and kind.

    Returned by ``fixed_points`` and kept in ``EoCConfig.fixed_points``; ``str``
    gives ``q=<q> (<kind>, V'=<slope>)``.

    Parameters
    ----------
    q : float
        The fixed point, q = V(q) > 0.
    slope : float
        V'(q).
    kind : str
        ``"stable"`` (V' < 1: nearby variances are drawn in), ``"unstable"`` (V' > 1),
        ``"half-stable"`` (V touches the diagonal without crossing), or, from
        ``edge_of_chaos`` for ReLU, ``"neutral (every q > 0 is a fixed point)"``.

    Examples
    --------
    >>> p = FixedPoint(1.0, 0.84, "stable")
    >>> print(p)
    q=1 (stable, V'=0.84)
    >>> p.slope < 1
    True
    """

    q: float
    slope: float
    kind: str

    def __str__(self) -> str:
        return f"q={self.q:.6g} ({self.kind}, V'={self.slope:.6g})"


@fill_doc
def fixed_points(act, sigma_w, sigma_b, tau=0.0, m=None, q_max=None, rtol=1e-9):
    """All fixed points of V on (0, q_max], each with its stability, by a certified scan.

    F(q) = V(q) - q has |F'| <= L = sigma_w^2 sup|g'| + 1 (sup|g'| is known per activation),
    so an interval [l, r] with |F(l)| + |F(r)| > L (r - l) holds no root. Intervals that are
    not certified are halved until their width is below ``rtol * r``; the survivors are the
    fixed points (sign change: brentq; touching: half-stable). Points closer than rtol merge.
    No fixed point lies below sigma_b^2 (V >= sigma_b^2); for a bounded activation none lies
    above sup V = sigma_w^2 sup phi^2 + sigma_b^2, the default q_max then. Unbounded ones
    default to q_max = 1e4 (V grows linearly there).

    Parameters
    ----------
    %(act, sigma_w, sigma_b, tau, m)s
    q_max : float or None, optional
        Upper end of the scan, > 0; None (default) for sup V (bounded activations) or 1e4.
    rtol : float, optional
        Relative width > 0 below which an interval is no longer split; fixed points closer
        than this merge. Default 1e-9.

    Returns
    -------
    list of FixedPoint
        In increasing q; empty when there is none on (sigma_b^2, q_max].

    Raises
    ------
    ValueError
        An unknown activation name; ``tau`` < 0, or > 0 for an activation without a
        threshold; ``m`` missing for a clipped activation, given for another, or not > 0;
        ``sigma_w``, ``q_max`` or ``rtol`` not > 0; ``sigma_b`` < 0; the scan could not
        separate the fixed points within 5e6 evaluations (V hugs the diagonal).

    Warns
    -----
    UserWarning
        For a callable activation: sup|g'| is estimated on a grid, so the scan is not
        certified.

    Examples
    --------
    A clipping level m = 2, above the safe one, gives CST two fixed points besides ``q*`` = 1:

    >>> from shrinkage.activations import edge_of_chaos
    >>> c = edge_of_chaos("cst", 0.85, m=2.0, strict=False)  # too large an m: warns
    >>> [round(p.q, 2) for p in fixed_points("cst", c.sigma_w, c.sigma_b, tau=c.tau, m=c.m)]
    [1.0, 1.05, 12.19]
    """
    spec, tau, m = resolve(act, tau, m)
    w2, b2 = _sig(sigma_w, sigma_b)
    if q_max is None:
        q_max = _default_q_max(spec, w2, b2, m)
    check_positive("q_max", q_max)
    check_positive("rtol", rtol)
    q_lo = max(b2, 1e-12 * q_max)
    if q_lo >= q_max:
        return []
    bound = spec.deriv_bound
    certified = bound is not None
    if bound is None:  # a callable: estimate sup|g'| on a grid, with a margin (not certified)
        grid = np.geomspace(q_lo, q_max, 400)
        bound = 2.0 * float(np.max(np.abs(_all(spec, grid, tau, m)[3]))) + 1e-12
    lip = w2 * bound + 1.0

    def F(x):
        return w2 * _second(spec, x, tau, m) + b2 - x

    def slope(x):
        return float(w2 * _all(spec, np.array([x]), tau, m)[3][0])

    finals = _scan(F, q_lo, q_max, lip, rtol)
    if not finals:
        return []
    out = _points(finals, F, slope, rtol)
    if not certified:
        warnings.warn(
            "fixed points of a callable activation: sup|g'| was estimated, not bounded; the "
            "scan is not certified",
            stacklevel=2,
        )
    return out


class _ScanError(ValueError):
    """The certified scan for fixed points gave up (bad input for this precision)."""


def _default_q_max(spec, w2, b2, m):
    """sup V for a bounded activation (no fixed point above it); 1e4 for unbounded ones."""
    if spec.clipped:
        return w2 * m**2 + b2
    if spec.name in ("tanh", "erf"):
        return w2 + b2
    return 1e4


def _scan(F, q_lo, q_max, lip, rtol):
    """Halve every interval not certified root-free until it is narrower than rtol: the
    survivors as (lo, hi, F(lo), F(hi)) arrays."""
    x = np.geomspace(q_lo, q_max, 65)
    f = F(x)
    lo, hi, flo, fhi = x[:-1], x[1:], f[:-1], f[1:]
    finals = []
    evals = 0
    while lo.size:
        keep = np.abs(flo) + np.abs(fhi) <= lip * (hi - lo) * (1 + 1e-12)
        lo, hi, flo, fhi = lo[keep], hi[keep], flo[keep], fhi[keep]
        small = (hi - lo) <= rtol * hi
        if small.any():
            finals.append((lo[small], hi[small], flo[small], fhi[small]))
        lo, hi, flo, fhi = lo[~small], hi[~small], flo[~small], fhi[~small]
        if not lo.size:
            break
        mid = 0.5 * (lo + hi)
        fm = F(mid)
        evals += mid.size
        if evals > 5_000_000:
            raise _ScanError(
                f"the fixed points of V on [{q_lo:.3g}, {q_max:.3g}] could not be separated to "
                f"rtol={rtol:g} in 5e6 evaluations (V hugs the diagonal over a long range): "
                "pass a larger rtol, or choose a less extreme configuration"
            )
        lo, hi = np.concatenate([lo, mid]), np.concatenate([mid, hi])
        flo, fhi = np.concatenate([flo, fm]), np.concatenate([fm, fhi])
    return finals


def _points(finals, F, slope, rtol):
    """One FixedPoint per sign change of a cluster of touching intervals, or one half-stable
    point where the cluster only touches zero."""
    L, H, FL, FH = (np.concatenate(a) for a in zip(*finals))
    order = np.argsort(L)
    L, H, FL, FH = L[order], H[order], FL[order], FH[order]
    # Clusters of touching intervals hold one fixed point, or several sign changes. Values
    # within rounding of zero carry no sign: a touching point is one half-stable fixed point,
    # not a swarm of roots made of rounding noise.
    out = []
    start = 0
    for i in range(1, L.size + 1):
        if i < L.size and L[i] <= H[i - 1] * (1 + 4 * rtol):
            continue
        sl = slice(start, i)
        start = i
        pts = np.concatenate([L[sl], H[sl]])
        vals = np.concatenate([FL[sl], FH[sl]])
        o = np.argsort(pts, kind="stable")
        pts, vals = pts[o], vals[o]
        # relative to q: V(q) - q scales with q (CReLU and CST exactly: scaling q*, sigma_b,
        # tau and m together scales V), and a floor of 1e-13 for q < 1 called a crossing at
        # q* = 1e-6 "half-stable", a stable config unstable
        noise = 1e-13 * np.abs(pts)
        signed = np.abs(vals) > noise
        sp, sv = pts[signed], vals[signed]
        change = np.flatnonzero(np.sign(sv[:-1]) != np.sign(sv[1:]))
        if change.size:
            for j in change:
                r = _root(F, sp[j], sp[j + 1])
                out.append(FixedPoint(float(r), slope(r), "stable" if sv[j] > 0 else "unstable"))
        else:
            j = int(np.argmin(np.abs(vals)))
            r = float(pts[j])
            out.append(FixedPoint(r, slope(r), "half-stable"))
    return out


def _root(F, a, b):
    return brentq(lambda x: float(F(np.array([x]))[0]), a, b, xtol=1e-15, rtol=1e-15)
