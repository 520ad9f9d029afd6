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

from .._checks import check_int_at_least, check_nonnegative, check_positive
from ._gauss import _all, _as_q, _back, _nodes, _phi_np, _second, resolve


def _sig(sigma_w, sigma_b):
    check_positive("sigma_w", sigma_w)
    check_nonnegative("sigma_b", sigma_b)
    return float(sigma_w) ** 2, float(sigma_b) ** 2


def variance_map(act, q, sigma_w, sigma_b, tau=0.0, m=None, method="auto"):
    """V(q) = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2.

    >>> round(variance_map("relu", 2.0, sigma_w=2**0.5, sigma_b=0.0), 12)
    2.0
    """
    spec, tau, m = resolve(act, tau, m)
    w2, b2 = _sig(sigma_w, sigma_b)
    qa, ref = _as_q(q)
    return _back(ref, w2 * _all(spec, qa, tau, m, method)[1] + b2)


def dV_dq(act, q, sigma_w, sigma_b=0.0, tau=0.0, m=None, method="auto"):
    """V'(q) = sigma_w^2 E[phi'^2 + phi phi''] = sigma_w^2 E[phi^2 (z^2 - 1)] / (2q).

    For CReLU: sigma_w^2 (Phi(b) - Phi(a) - (b - a) p(b)), a = tau/sqrt q, b = (tau+m)/sqrt q.

    >>> round(dV_dq("shifted_relu", 1.0, sigma_w=1.0, tau=0.0), 12)
    0.5
    """
    spec, tau, m = resolve(act, tau, m)
    w2, _ = _sig(sigma_w, sigma_b)
    qa, ref = _as_q(q)
    return _back(ref, w2 * _all(spec, qa, tau, m, method)[3])


def d2V_dq2(act, q, sigma_w, sigma_b=0.0, tau=0.0, m=None, method="auto"):
    """V''(q) = sigma_w^2 E[phi^2 (z^4 - 6 z^2 + 3)] / (4 q^2).

    Unclipped shifted ReLU: sigma_w^2 a p(a) / (2q) > 0 for tau > 0 (the instability).

    >>> d2V_dq2("shifted_relu", 1.0, sigma_w=1.0, tau=1.0) > 0
    True
    """
    spec, tau, m = resolve(act, tau, m)
    w2, _ = _sig(sigma_w, sigma_b)
    qa, ref = _as_q(q)
    return _back(ref, w2 * _all(spec, qa, tau, m, method)[4])


def chi(act, q_star, sigma_w, tau=0.0, m=None, method="auto"):
    """chi = C'(1) = sigma_w^2 E[phi'(sqrt(q*) z)^2]; the edge of chaos is chi = 1.

    >>> round(chi("relu", 1.0, sigma_w=2**0.5), 12)
    1.0
    """
    spec, tau, m = resolve(act, tau, m)
    check_positive("sigma_w", sigma_w)
    qa, ref = _as_q(q_star)
    return _back(ref, float(sigma_w) ** 2 * _all(spec, qa, tau, m, method)[2])


# ---- two-point expectations ---------------------------------------------------------------
def _cross(spec, q, rho, tau, m, deriv=False, n2=64):
    """E[f(u1) f(u2)], f = phi (or phi'), u1, u2 ~ N(0, q) with correlation rho; float64.

    One-dimensional: E_z1[f(sqrt q z1) E_z2 f(sqrt q (rho z1 + sqrt(1-rho^2) z2))], with the
    inner expectation in closed form where the spec has one (else Gauss-Hermite), the outer by
    Gauss-Legendre split at the kinks. rho = +-1 use the one-point moments exactly."""
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
            zh, wh = np.polynomial.hermite_e.hermegauss(n2)
            wh = wh / math.sqrt(2 * math.pi)
            x = mu[..., None] + sd[..., None] * zh
            g = (_phi_np(spec, tau, m, x, deriv=deriv) * wh).sum(-1)
        out[inner] = (g * (w * f1)[None, :]).sum(1)
    return out.reshape(rho.shape)


def correlation_map(act, rho, q_star, sigma_w, sigma_b, tau=0.0, m=None):
    """C(rho) = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*, u1, u2 ~ N(0, q*) with
    correlation rho. A one-dimensional integral with the inner Gaussian expectation in closed
    form (2-D quadrature for callables); exactly V(q*)/q* at rho = 1.

    >>> round(float(correlation_map("relu", 1.0, 1.0, 2**0.5, 0.0)), 12)
    1.0
    """
    spec, tau, m = resolve(act, tau, m)
    w2, b2 = _sig(sigma_w, sigma_b)
    check_positive("q_star", q_star)
    r, ref = _rho(rho)
    return _back(ref, (w2 * _cross(spec, float(q_star), r, tau, m) + b2) / float(q_star))


def _rho(rho):
    ref = rho if isinstance(rho, torch.Tensor) else None
    r = rho.detach().cpu().double().numpy() if ref is not None else np.asarray(rho, np.float64)
    if np.any(np.abs(r) > 1) or np.any(np.isnan(r)):
        raise ValueError(f"rho must lie in [-1, 1], got rho={rho!r}")
    return r, ref


def propagate(act, q0, depth, sigma_w, sigma_b, tau=0.0, m=None, rho0=None):
    """Iterate the maps: q^l (and rho^l if rho0 is given) for l = 1..depth, q^1 = q0.

    Returns a dict with ``q`` (depth,) and ``rho`` (depth,) or None. Between two inputs of the
    same variance, rho^{l+1} = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q^{l+1}.

    >>> propagate("relu", 1.0, 3, 2**0.5, 0.0)["q"]
    array([1., 1., 1.])
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


def depth_scales(act, q_star, sigma_w, sigma_b, tau=0.0, m=None):
    """(xi_q, xi_c): xi_q = -1 / ln V'(q*), xi_c = -1 / ln chi_c(c*) (Schoenholz et al. 2017),
    chi_c = sigma_w^2 E[phi'(u1) phi'(u2)] at the stable correlation c*; inf where the rate is 1.

    >>> depth_scales("relu", 1.0, 2**0.5, 0.0)
    (inf, inf)
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
        c_star = brentq(gap, 0.0, 1 - h, xtol=1e-13) if gap(0.0) > 0 else 0.0
    chi_c = c1 if c_star >= 1.0 else w2 * _cross(spec, q_star, np.array([c_star]), tau, m, True)[0]

    def xi(rate):
        rate = abs(rate)
        return math.inf if rate >= 1 - 1e-12 or rate <= 0 else -1.0 / math.log(rate)

    return xi(slope), xi(chi_c)


# ---- fixed points -------------------------------------------------------------------------
@dataclass(frozen=True)
class FixedPoint:
    """A fixed point q = V(q) with slope V'(q) and kind ``stable`` (V' < 1), ``unstable``
    (V' > 1) or ``half-stable`` (V touches the diagonal without crossing)."""

    q: float
    slope: float
    kind: str

    def __str__(self) -> str:
        return f"q={self.q:.6g} ({self.kind}, V'={self.slope:.6g})"


def fixed_points(act, sigma_w, sigma_b, tau=0.0, m=None, q_max=None, rtol=1e-9):
    """All fixed points of V on (0, q_max], each with its stability, by a certified scan.

    F(q) = V(q) - q has |F'| <= L = sigma_w^2 sup|g'| + 1 (sup|g'| is known per activation),
    so an interval [l, r] with |F(l)| + |F(r)| > L (r - l) holds no root. Intervals that are
    not certified are halved until their width is below ``rtol * r``; the survivors are the
    fixed points (sign change: brentq; touching: half-stable). Points closer than rtol merge.
    No fixed point lies below sigma_b^2 (V >= sigma_b^2); for a bounded activation none lies
    above sup V = sigma_w^2 sup phi^2 + sigma_b^2, the default q_max then. Unbounded ones
    default to q_max = 1e4 (V grows linearly there).

    Examples
    --------
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
        noise = 1e-13 * np.maximum(1.0, np.abs(pts))
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
