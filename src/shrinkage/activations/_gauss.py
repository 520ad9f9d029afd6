"""Gaussian moments of activations: closed forms per activation, quadrature for any callable.

For X = sqrt(q) z, z ~ N(0, 1) the maps need

    E[phi(X)], E[phi(X)^2], E[phi'(X)^2],  and  g^(k)(q) = d^k/dq^k E[phi(X)^2].

The derivatives come without differentiating phi: d/dq of the N(0, q) density is the density
times He_2(z) / (2q), hence g^(k)(q) = E[phi(X)^2 He_2k(z)] / (2q)^k (He_2 = z^2 - 1,
He_4 = z^4 - 6 z^2 + 3). Quadrature uses that identity; the closed forms differentiate the
formulas of Price et al. (ICLR 2024; the guide: ``docs/guide/activations.md``).

One activation is one ``_Spec``: its torch core from ``shrinkage.thresholds``, its
kinks, and (optionally) its closed forms. Adding an activation is adding one spec.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import quad_vec
from scipy.special import erf as _erf
from scipy.special import ndtr, ndtri

from .._checks import check_nonnegative, check_positive
from ..thresholds import CST, CReLU, ShiftedReLU, SoftThreshold, cores
from ._docs import fill_doc

_SQRT2PI = math.sqrt(2.0 * math.pi)


def _pdf(x):
    return np.exp(-0.5 * np.square(x)) / _SQRT2PI


def _Q(x):  # upper tail, accurate far out
    return ndtr(-x)


class Erf(torch.nn.Module):
    """phi(x) = erf(x), the smooth activation with closed-form Gaussian maps."""

    def forward(self, x):
        return torch.erf(x)


# ---- the one-sided family min(max(x - tau, 0), m), m = inf for the unclipped ones ----------
def _ab(q, tau, m):
    s = np.sqrt(q)
    a = tau / s
    b = np.where(np.isinf(m), np.inf, (tau + m) / s)
    return s, a, b


def _zero_if_inf(m, v):
    return np.where(np.isinf(m), 0.0, v)


def _half_moments(q, tau, m):
    s, a, b = _ab(q, tau, m)
    pa, pb = _pdf(a), _zero_if_inf(m, _pdf(np.where(np.isinf(b), 0.0, b)))
    mass = _Q(a) - _Q(b)  # P(tau < X < tau + m)
    mQb = _zero_if_inf(m, np.where(np.isinf(m), 0.0, m) * _Q(b))
    mean = s * (pa - pb) - tau * mass + mQb
    mm = np.where(np.isinf(m), 0.0, m)
    second = (q + tau**2) * mass - tau * s * pa + s * (tau - mm) * pb + mm * mQb
    return mean, second, mass


def _half_derivs(q, tau, m):
    s, a, b = _ab(q, tau, m)
    bb = np.where(np.isinf(b), 0.0, b)
    pb = _zero_if_inf(m, _pdf(bb))
    pa = _pdf(a)
    ba = _zero_if_inf(m, bb - a)
    d1 = _Q(a) - _Q(b) - ba * pb
    d2 = (a * pa - bb * pb - ba * (bb**2 - 1.0) * pb) / (2.0 * q)
    return d1, d2


def _half_cond(mu, sd, tau, m, deriv):
    """E[h(mu + sd Z)] (or of h') for h = min(max(x - tau, 0), m)."""
    a = (tau - mu) / sd
    b = np.where(np.isinf(m), np.inf, (tau + m - mu) / sd)
    mass = _Q(a) - _Q(b)
    if deriv:
        return mass
    bb = np.where(np.isinf(b), 0.0, b)
    pb = _zero_if_inf(m, _pdf(bb))
    mm = np.where(np.isinf(m), 0.0, m)
    return sd * (_pdf(a) - pb) + (mu - tau) * mass + mm * _Q(b)


# ---- closed forms per family -------------------------------------------------------------
def _cf_half(q, tau, m):
    mean, second, d2 = _half_moments(q, tau, m)
    return mean, second, d2


def _cf_odd(q, tau, m):
    _, second, d2 = _half_moments(q, tau, m)
    return np.zeros_like(second), 2.0 * second, 2.0 * d2


def _der_half(q, tau, m):
    return _half_derivs(q, tau, m)


def _der_odd(q, tau, m):
    d1, d2 = _half_derivs(q, tau, m)
    return 2.0 * d1, 2.0 * d2


def _cond_half(mu, sd, tau, m, deriv):
    return _half_cond(mu, sd, tau, m, deriv)


def _cond_odd(mu, sd, tau, m, deriv):
    # phi(x) = h(x) - h(-x) and phi'(x) = h'(x) + h'(-x); Z is symmetric.
    f, g = _half_cond(mu, sd, tau, m, deriv), _half_cond(-mu, sd, tau, m, deriv)
    return f + g if deriv else f - g


def _cf_erf(q, tau, m):
    second = (2.0 / math.pi) * np.arcsin(2.0 * q / (1.0 + 2.0 * q))
    return np.zeros_like(q), second, 4.0 / (math.pi * np.sqrt(1.0 + 4.0 * q))


def _der_erf(q, tau, m):
    u, v = 1.0 + 2.0 * q, 1.0 + 4.0 * q
    d1 = 4.0 / (math.pi * u * np.sqrt(v))
    d2 = -(8.0 / math.pi) * (1.0 / (u**2 * np.sqrt(v)) + 1.0 / (u * v**1.5))
    return d1, d2


def _cond_erf(mu, sd, tau, m, deriv):
    w = 1.0 + 2.0 * sd**2
    if deriv:
        return 2.0 / math.sqrt(math.pi) * np.exp(-(mu**2) / w) / np.sqrt(w)
    return _erf(mu / np.sqrt(w))


@dataclass(frozen=True)
class _Spec:
    name: str
    core: Callable  # torch (x, tau, m) -> phi(x)
    module: Callable  # (tau, m) -> nn.Module
    has_tau: bool
    clipped: bool
    odd: bool
    kinks: Callable | None = None  # (tau, m) -> points where phi is not smooth
    closed: Callable | None = None  # (q, tau, m) -> (E phi, E phi^2, E phi'^2)
    derivs: Callable | None = None  # (q, tau, m) -> (g', g'')
    cond: Callable | None = None  # (mu, sd, tau, m, deriv) -> E[phi(mu + sd Z)] or E[phi'(...)]
    deriv_bound: float | None = None  # sup_q |g'(q)|, for the certified fixed-point scan

    def zero_fraction(self, q, tau):
        """P(phi(X) = 0), X ~ N(0, q)."""
        if not self.has_tau:
            return np.full_like(np.asarray(q, float), 0.5 if self.name == "relu" else 0.0)
        a = tau / np.sqrt(q)
        return 1.0 - 2.0 * _Q(a) if self.odd else 1.0 - _Q(a)

    def tau_for(self, sparsity, q):
        """The tau whose fraction of zeros at variance q is ``sparsity``."""
        if self.odd:  # erf(tau / sqrt(2q)) = s
            return math.sqrt(q) * float(ndtri(0.5 + 0.5 * sparsity))
        return math.sqrt(q) * float(ndtri(sparsity))


def _half_kinks(tau, m):
    return [tau] if m is None else [tau, tau + m]


def _odd_kinks(tau, m):
    k = _half_kinks(tau, m)
    return [-x for x in k] + k


# The thresholding activations come in two families, one-sided (relu) and odd (soft
# threshold), whose Gaussian moments have closed forms in (tau, m): the kinks, the formulas
# and sup |g'| of each family.
_FAMILIES = {
    False: (_half_kinks, _cf_half, _der_half, _cond_half, 1.0),
    True: (_odd_kinks, _cf_odd, _der_odd, _cond_odd, 2.0),
}


def _unclipped(kinks, closed, derivs, cond, has_tau):
    """A family's functions at m = inf, and at tau = 0 for an activation without threshold."""

    def at(tau):
        return tau if has_tau else 0.0

    return (
        kinks if has_tau else (lambda tau, m: kinks(0.0, None)),
        lambda q, tau, m: closed(q, at(tau), np.inf),
        lambda q, tau, m: derivs(q, at(tau), np.inf),
        lambda mu, sd, tau, m, d: cond(mu, sd, at(tau), np.inf, d),
    )


def _thresholding(name, core, cls, *, odd, clipped=False, has_tau=True) -> _Spec:
    """The spec of a thresholding activation of the ``odd`` (or one-sided) family, from its
    tensor core ``core(x, tau[, m])`` and its module class ``cls``."""
    kinks, closed, derivs, cond, bound = _FAMILIES[odd]
    if clipped:
        phi, module = core, (lambda tau, m: cls(tau=tau, m=m))
    elif has_tau:
        phi, module = (lambda x, tau, m: core(x, tau)), (lambda tau, m: cls(tau=tau))
    else:
        phi, module = (lambda x, tau, m: core(x, 0.0)), (lambda tau, m: cls(tau=0.0))
    if not clipped:
        kinks, closed, derivs, cond = _unclipped(kinks, closed, derivs, cond, has_tau)
    return _Spec(
        name,
        phi,
        module,
        has_tau=has_tau,
        clipped=clipped,
        odd=odd,
        kinks=kinks,
        closed=closed,
        derivs=derivs,
        cond=cond,
        deriv_bound=bound,
    )


_SPECS = {
    "relu": _thresholding("relu", cores.shifted_relu, ShiftedReLU, odd=False, has_tau=False),
    "shifted_relu": _thresholding("shifted_relu", cores.shifted_relu, ShiftedReLU, odd=False),
    "soft_threshold": _thresholding("soft_threshold", cores.soft, SoftThreshold, odd=True),
    "clipped_relu": _thresholding(
        "clipped_relu", cores.clipped_relu, CReLU, odd=False, clipped=True
    ),
    "clipped_soft_threshold": _thresholding(
        "clipped_soft_threshold", cores.clipped_soft_threshold, CST, odd=True, clipped=True
    ),
    "tanh": _Spec(
        "tanh",
        lambda x, tau, m: torch.tanh(x),
        lambda tau, m: torch.nn.Tanh(),
        has_tau=False,
        clipped=False,
        odd=True,
        # |g'| = |E[phi'^2 + phi phi'']| <= 1 + max |tanh * 2 tanh sech^2| < 1.5
        deriv_bound=1.5,
    ),
    "erf": _Spec(
        "erf",
        lambda x, tau, m: torch.erf(x),
        lambda tau, m: Erf(),
        has_tau=False,
        clipped=False,
        odd=True,
        closed=_cf_erf,
        derivs=_der_erf,
        cond=_cond_erf,
        deriv_bound=4.0 / math.pi,
    ),
}
ALIASES = {"crelu": "clipped_relu", "cst": "clipped_soft_threshold"}
ACTIVATION_NAMES = tuple(_SPECS) + tuple(ALIASES)


def _callable_spec(fn) -> _Spec:
    # never the bare function name: a user's function called "relu" or "tanh" must not pick
    # up the closed forms or the bounds of the built-in activation of that name
    name = f"<callable {getattr(fn, '__name__', type(fn).__name__)}>"
    return _Spec(
        name,
        lambda x, tau, m: fn(x),
        lambda tau, m: _Lambda(fn),
        has_tau=False,
        clipped=False,
        odd=False,
        kinks=getattr(fn, "kinks", None),
    )


class _Lambda(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def resolve(act, tau=0.0, m=None) -> tuple[_Spec, float, float | None]:
    """Check (act, tau, m) before any work; return the spec and the numeric tau, m."""
    if callable(act) and not isinstance(act, str):
        if isinstance(act, torch.nn.Module) and hasattr(act, "tau") and hasattr(act, "m"):
            return _module_spec(act)
        spec = _callable_spec(act)
    else:
        key = ALIASES.get(act, act) if isinstance(act, str) else act
        if key not in _SPECS:
            known = ", ".join(repr(n) for n in ACTIVATION_NAMES)
            raise ValueError(f"unknown activation {act!r}; known: {known}, or a callable")
        spec = _SPECS[key]
    tau = 0.0 if tau is None else tau
    check_nonnegative("tau", tau)
    tau = float(tau)
    if tau > 0 and not spec.has_tau:
        hint = " (use 'shifted_relu' for a threshold)" if spec.name == "relu" else ""
        raise ValueError(f"activation {spec.name!r} takes no threshold, got tau={tau!r}{hint}")
    if spec.clipped:
        if m is None:
            raise ValueError(
                f"activation {spec.name!r} needs a clipping magnitude m > 0, got m=None"
            )
        check_positive("m", m)
        m = float(m)
    elif m is not None:
        raise ValueError(
            f"activation {spec.name!r} takes no clipping magnitude, got m={m!r} "
            "(use 'clipped_relu' or 'clipped_soft_threshold')"
        )
    return spec, tau, m


def _module_spec(mod):
    for name in ("clipped_relu", "clipped_soft_threshold", "shifted_relu", "soft_threshold"):
        cls = type(_SPECS[name].module(0.5, 1.0 if _SPECS[name].clipped else None))
        if type(mod) is cls:
            return _SPECS[name], float(mod.tau), mod.m
    raise ValueError(f"cannot read an activation from module {mod!r}")


def _as_q(q):
    was_torch = isinstance(q, torch.Tensor)
    if isinstance(q, str | bytes | bool) or (
        not was_torch and np.asarray(q).dtype.kind not in "iuf"
    ):
        raise ValueError(f"q must be a number > 0 or an array of them, got {q!r:.60}")
    arr = q.detach().cpu().double().numpy() if was_torch else np.asarray(q, dtype=np.float64)
    check_positive("q", arr)
    return arr, (q if was_torch else None)


def _back(ref, *arrays):
    """numpy in numpy out; torch in, float64 torch out on the input's device; scalar in, float."""
    if ref is not None:
        out = tuple(torch.as_tensor(a, dtype=torch.float64, device=ref.device) for a in arrays)
    else:
        out = tuple(a if np.ndim(a) else float(a) for a in arrays)
    return out if len(out) > 1 else out[0]


# ---- quadrature ----------------------------------------------------------------------------
_ZMAX = 12.0  # N(0,1) mass beyond 12 is 4e-33


_X_SCALES = 2.0 ** np.arange(-2, 6)


def _gl(n):
    x, w = np.polynomial.legendre.leggauss(n)
    return x, w


def _nodes(q, kinks, n=64, panels=4):
    """Gauss-Legendre nodes on [-ZMAX, ZMAX] in z, split at the kinks of phi(sqrt(q) z).

    Returns z (nq, K), weights (nq, K) including the Gaussian density."""
    q = np.atleast_1d(q)
    base = np.linspace(-_ZMAX, _ZMAX, panels * 6 + 1)  # fixed panels of width 1
    br = [np.broadcast_to(base, (q.size, base.size))]
    # phi's own scale (x ~ 1: where tanh bends, a threshold's neighbourhood) is a width
    # 1 / sqrt(q) in z: at large q panels of width 1 miss it (tanh's E phi'^2 was 8 % off at
    # q = 1e6, 200x at 1e8), so edges at x = +-2^j, j = -2..5, as well
    scales = np.concatenate([-_X_SCALES, _X_SCALES])
    br.append(np.clip(scales[None, :] / np.sqrt(q)[:, None], -_ZMAX, _ZMAX))
    if kinks:
        kz = np.clip(np.asarray(kinks, float)[None, :] / np.sqrt(q)[:, None], -_ZMAX, _ZMAX)
        br.append(kz)
    edges = np.sort(np.concatenate(br, axis=1), axis=1)
    lo, hi = edges[:, :-1], edges[:, 1:]
    x, w = _gl(n)
    half = 0.5 * (hi - lo)
    z = (0.5 * (hi + lo))[..., None] + half[..., None] * x
    wz = half[..., None] * w * _pdf(z)
    return z.reshape(q.size, -1), wz.reshape(q.size, -1)


def _phi_np(spec, tau, m, x, deriv=False):
    t = torch.as_tensor(x, dtype=torch.float64)
    if not deriv:
        with torch.no_grad():
            return spec.core(t, tau, m).numpy()
    t = t.clone().requires_grad_(True)
    y = spec.core(t, tau, m)
    (g,) = torch.autograd.grad(y.sum(), t)
    return g.numpy()


def _quad_all(spec, q, tau, m, n=64):
    """E phi, E phi^2, E phi'^2, g', g'' by piecewise Gauss-Legendre (float64)."""
    kinks = spec.kinks(tau, m) if callable(spec.kinks) else spec.kinks
    shape = np.shape(q)
    qf = np.atleast_1d(q).ravel()
    z, w = _nodes(qf, kinks, n=n)
    out = _moments(spec, tau, m, qf, z, w)
    return tuple(o.reshape(shape) for o in out)


def _hermite_all(spec, q, tau, m, n=200):
    """The same by Gauss-Hermite (fast and exact for smooth phi; slow to converge at kinks)."""
    zq, wq = np.polynomial.hermite_e.hermegauss(n)
    wq = wq / math.sqrt(2 * math.pi)
    shape = np.shape(q)
    qf = np.atleast_1d(q).ravel()
    out = _moments(spec, tau, m, qf, zq, wq)
    return tuple(o.reshape(shape) for o in out)


def _moments(spec, tau, m, q, z, w):
    """E phi, E phi^2, E phi'^2, g', g'' at the variances ``q`` (n,) from standard normal
    quadrature nodes ``z`` and weights ``w``: one set per variance (n, k) or shared (k,)."""
    x = np.sqrt(q)[:, None] * z
    phi = _phi_np(spec, tau, m, x)
    dphi = _phi_np(spec, tau, m, x, deriv=True)
    p2 = phi**2
    return (
        (w * phi).sum(1),
        (w * p2).sum(1),
        (w * dphi**2).sum(1),
        (w * p2 * (z**2 - 1)).sum(1) / (2 * q),
        (w * p2 * (z**4 - 6 * z**2 + 3)).sum(1) / (4 * q**2),
    )


def _adaptive_all(spec, q, tau, m, rtol=1e-10):
    """The same five integrals by adaptive Gauss-Kronrod (scipy ``quad_vec``) in z, for
    callables whose kinks are unknown: jumps in phi' are found by subdivision."""
    shape = np.shape(q)
    qf = np.atleast_1d(q).ravel()
    sq = np.sqrt(qf)

    def f(z):
        x = sq * z
        phi = _phi_np(spec, tau, m, x)
        dphi = _phi_np(spec, tau, m, x, deriv=True)
        p2 = phi**2
        w = _pdf(z)
        return w * np.concatenate(
            [phi, p2, dphi**2, p2 * (z**2 - 1) / (2 * qf), p2 * (z**4 - 6 * z**2 + 3) / (4 * qf**2)]
        )

    val, _ = quad_vec(f, -_ZMAX, _ZMAX, epsabs=1e-13, epsrel=rtol, limit=10_000)
    return tuple(v.reshape(shape) for v in val.reshape(5, qf.size))


def _all(spec, q, tau, m, method="auto"):
    """(E phi, E phi^2, E phi'^2, g', g'') as float64 arrays shaped like q."""
    if method == "auto":
        method = "closed" if spec.closed is not None else "quad"
    if method == "closed":
        if spec.closed is None:
            raise ValueError(f"no closed form for activation {spec.name!r}; use method='quad'")
        mm = np.inf if m is None else m
        e1, e2, e3 = spec.closed(q, tau, mm)
        d1, d2 = spec.derivs(q, tau, mm)
        return e1, e2, e3, d1, d2
    if method == "quad":
        if spec.kinks is None and spec.name not in ("tanh", "erf"):
            return _adaptive_all(spec, q, tau, m)
        return _quad_all(spec, q, tau, m)
    if method == "hermite":
        return _hermite_all(spec, q, tau, m)
    raise ValueError(f"unknown method {method!r}; known: 'auto', 'closed', 'quad', 'hermite'")


def _second(spec, q, tau, m):
    """E[phi(sqrt(q) z)^2] alone (the hot path of the fixed-point scans)."""
    if spec.closed is not None:
        return spec.closed(q, tau, np.inf if m is None else m)[1]
    return _all(spec, q, tau, m)[1]


@fill_doc
def moments(act, q, tau=0.0, m=None, method="auto"):
    """Gaussian moments (E[phi(X)], E[phi(X)^2], E[phi'(X)^2]) for X ~ N(0, q), float64.

    Closed forms for relu, shifted_relu, soft_threshold, clipped_relu (crelu),
    clipped_soft_threshold (cst) and erf (Price et al., ICLR 2024);
    otherwise (``method="quad"``) Gauss-Legendre split at the kinks (named activations, or a
    callable with a ``kinks`` attribute listing them), adaptive Gauss-Kronrod for any other
    callable; or Gauss-Hermite (``method="hermite"``, smooth phi only). Vectorised over q.

    Parameters
    ----------
    %(act, q, tau, m, method)s

    Returns
    -------
    tuple of three
        (E[phi(X)], E[phi(X)^2], E[phi'(X)^2]), each a float for a scalar ``q``, a float64
        numpy array shaped like an array ``q``, a float64 tensor on the device of a tensor
        ``q``.

    Raises
    ------
    ValueError
        An unknown activation name; ``tau`` < 0, or > 0 for an activation without a
        threshold; ``m`` missing for a clipped activation, given for another, or not > 0;
        ``q`` not > 0 (or NaN); an unknown ``method``, or ``"closed"`` for an activation
        without a closed form.

    Examples
    --------
    For ReLU at q = 1: E[phi] = 1 / sqrt(2 pi), E[phi^2] = E[phi'^2] = 1/2.

    >>> moments("relu", 1.0)
    (0.3989422804014327, 0.5, 0.5)

    The closed form of CST agrees with the quadrature:

    >>> import numpy as np
    >>> closed = moments("cst", 2.0, tau=0.5, m=1.0)
    >>> np.allclose(closed, moments("cst", 2.0, tau=0.5, m=1.0, method="quad"), rtol=1e-9)
    True
    """
    spec, tau, m = resolve(act, tau, m)
    qa, ref = _as_q(q)
    e1, e2, e3, _, _ = _all(spec, qa, tau, m, method)
    return _back(ref, e1, e2, e3)


@fill_doc
def zero_fraction(act, q, tau=0.0, m=None):
    """Fraction of exact zeros P(phi(X) = 0), X ~ N(0, q).

    Phi(tau / sqrt q) for the one-sided activations (1/2 for relu), erf(tau / sqrt(2q)) for
    the soft thresholds (0 for tanh and erf); m plays no part.

    Parameters
    ----------
    act : str or torch.nn.Module
        A name from ``ACTIVATION_NAMES`` or a thresholding module of
        ``shrinkage.thresholds`` (its tau and m are used). A plain callable is refused.
    %(q, tau, m)s

    Returns
    -------
    float, numpy.ndarray or torch.Tensor
        P(phi(X) = 0) in [0, 1): a float for a scalar ``q``, a float64 numpy array shaped
        like an array ``q``, a float64 tensor on the device of a tensor ``q``.

    Raises
    ------
    ValueError
        An unknown activation name; ``tau`` < 0, or > 0 for an activation without a
        threshold; ``m`` missing for a clipped activation, given for another, or not > 0;
        ``q`` not > 0; a callable activation (the fraction is known for the named ones only).

    Examples
    --------
    One standard deviation either side of 0 is zeroed by a soft threshold at tau = sqrt(q):

    >>> round(zero_fraction("cst", 1.0, tau=1.0, m=1.0), 4)
    0.6827
    >>> import numpy as np
    >>> zero_fraction("shifted_relu", np.array([1.0, 4.0]), tau=1.0)
    array([0.84134475, 0.69146246])
    """
    spec, tau, m = resolve(act, tau, m)
    qa, ref = _as_q(q)
    if spec.name not in _SPECS:
        raise ValueError(f"the fraction of zeros is known only for {', '.join(_SPECS)}")
    return _back(ref, np.asarray(spec.zero_fraction(qa, tau), dtype=np.float64))
