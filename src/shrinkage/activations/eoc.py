"""Edge-of-chaos initialisation for a target activation sparsity, and the safe clipping level.

Given phi, a target fraction of zeros s and a fixed point q* (Price et al., ICLR 2024):

    tau       so that P(phi(sqrt(q*) z) = 0) = s   (Phi^-1(s) sqrt q*, or Phi^-1((1+s)/2) sqrt q*)
    sigma_w^2 = 1 / E[phi'(sqrt(q*) z)^2]          (chi = 1)
    sigma_b^2 = q* - sigma_w^2 E[phi(sqrt(q*) z)^2] (V(q*) = q*)

Unclipped shifted ReLU / soft threshold then have V'(q*) = 1 and V''(q*) > 0: q* is
half-stable and finite-width noise above q* grows without bound. Clipping at m makes V'(q*) < 1,
but too large an m creates a second pair of fixed points; ``safe_clip`` finds the largest m
for which q* is the only, globally attracting, fixed point.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from .._checks import check_int_at_least, check_open_unit, check_positive, check_scalar
from ._docs import fill_doc
from ._gauss import _SPECS, ALIASES, _all, _second, resolve
from .finite_width import finite_width, fluctuation_moments
from .maps import FixedPoint, _ScanError, depth_scales, fixed_points, propagate


class EdgeOfChaosWarning(UserWarning):
    """The requested initialisation is not stable (``q*`` is not the unique attracting fixed
    point)."""


@fill_doc
@dataclass(frozen=True)
class EoCConfig:
    """An edge-of-chaos initialisation and its diagnosis (see ``edge_of_chaos``).

    Frozen; built by ``edge_of_chaos``, read by ``init_``,
    ``shrinkage.models.mlp`` and the finite-width functions. Each parameter is also an
    attribute of the same name.

    Parameters
    ----------
    activation : str
        Canonical activation name (aliases resolved: ``"cst"`` is stored as
        ``"clipped_soft_threshold"``).
    sparsity : float
        Fraction of exact zeros of phi(sqrt(``q*``) z).
    %(q_star)s
    tau : float
        Threshold (0 for relu, tanh, erf).
    m : float or None
        Clipping magnitude (None for the unclipped activations).
    sigma_w : float
        Weight scale: weights N(0, sigma_w^2 / fan_in); chosen so that chi = 1.
    sigma_b : float
        Bias scale: biases N(0, sigma_b^2); chosen so that V(``q*``) = ``q*``.
    chi : float
        sigma_w^2 E[phi'(sqrt(``q*``) z)^2], 1 up to rounding.
    dV : float
        V'(``q*``): below 1 when ``q*`` attracts.
    d2V : float
        V''(``q*``).
    fixed_points : tuple of FixedPoint, optional
        Every fixed point of V found. Default ().
    stable : bool, optional
        Whether ``q*`` is the unique attracting fixed point. Default False.

    Attributes
    ----------
    input_mean_square : float
        E[phi(sqrt(``q*``) z)^2] = (``q*`` - sigma_b^2) / sigma_w^2: the mean square per input
        coordinate that puts the first layer at ``q*``.

    Examples
    --------
    >>> cfg = edge_of_chaos("cst", sparsity=0.85)
    >>> cfg.activation, round(cfg.tau, 4), cfg.stable
    ('clipped_soft_threshold', 1.4395, True)
    >>> cfg.module()
    CST(tau=1.44, m=1.327)
    >>> round(cfg.sigma_w**2 * cfg.input_mean_square + cfg.sigma_b**2, 12) == cfg.q_star
    True
    """

    activation: str
    sparsity: float
    q_star: float
    tau: float
    m: float | None
    sigma_w: float
    sigma_b: float
    chi: float
    dV: float
    d2V: float
    fixed_points: tuple[FixedPoint, ...] = field(default_factory=tuple)
    stable: bool = False

    def module(self):
        """A fresh activation module from ``shrinkage.thresholds`` with this tau and m."""
        return _SPECS[self.activation].module(self.tau, self.m)

    @property
    def input_mean_square(self) -> float:
        """E[phi(sqrt(``q*``) z)^2]: the mean square per input coordinate that makes the first
        layer's variance sigma_w^2 |x|^2 / N + sigma_b^2 equal ``q*``."""
        return (self.q_star - self.sigma_b**2) / self.sigma_w**2

    def __str__(self) -> str:
        m = "none" if self.m is None else f"{self.m:.6g}"
        fps = ", ".join(str(p) for p in self.fixed_points) or "none found"
        verdict = (
            "stable: q* is the unique attracting fixed point"
            if self.stable
            else "NOT stable: q* is not the unique attracting fixed point"
        )
        return (
            f"edge of chaos for {self.activation} at sparsity {self.sparsity:.4g}, "
            f"q* = {self.q_star:.6g}\n"
            f"  tau = {self.tau:.6g}, m = {m}\n"
            f"  sigma_w = {self.sigma_w:.6g} (sigma_w^2 = {self.sigma_w**2:.6g}), "
            f"sigma_b = {self.sigma_b:.6g} (sigma_b^2 = {self.sigma_b**2:.6g})\n"
            f"  chi = {self.chi:.12g}, V'(q*) = {self.dV:.6g}, V''(q*) = {self.d2V:.6g}\n"
            f"  fixed points: {fps}\n"
            f"  {verdict}"
        )


def _canonical(act) -> str:
    if not isinstance(act, str):
        raise ValueError(
            f"edge_of_chaos needs a named activation, got {act!r}; known: "
            + ", ".join(repr(n) for n in tuple(_SPECS) + tuple(ALIASES))
        )
    spec, _, _ = resolve(act, 0.0, 1.0 if ALIASES.get(act, act) in _CLIPPED else None)
    return spec.name


_CLIPPED = ("clipped_relu", "clipped_soft_threshold")


def _solve(name, sparsity, q_star, m):
    spec = _SPECS[name]
    tau = spec.tau_for(sparsity, q_star) if spec.has_tau else 0.0
    e = _all(spec, np.array([q_star]), tau, m)
    e1, e2, e3, g1, g2 = (float(v[0]) for v in e)
    if not e3 > 0.0:  # E[phi'(z)^2] underflows: the slope is 0 almost everywhere
        raise ValueError(
            f"{name} with m={m!r} at q*={q_star:g}: E[phi'(z)^2] = {e3:g}, so no sigma_w "
            "reaches the edge of chaos (chi = sigma_w^2 E[phi'^2] = 1); m is too small"
        )
    w2 = 1.0 / e3
    b2 = q_star - w2 * e2
    return spec, tau, w2, b2, e3, g1, g2


def _is_stable(fps, q_star, dv, rtol):
    if len(fps) != 1:
        return False
    p = fps[0]
    return abs(p.q - q_star) <= 1e3 * rtol * q_star and p.kind == "stable" and dv < 1.0


def _check_common(sparsity, q_star, name):
    spec = _SPECS[name]
    if spec.has_tau:
        sparsity = check_open_unit("sparsity", sparsity)
        if not spec.odd and sparsity < 0.5:
            raise ValueError(
                f"{name} zeroes at least half of N(0, q) inputs (tau >= 0): sparsity must be in "
                f"[0.5, 1), got sparsity={sparsity!r}"
            )
    elif sparsity is not None:
        s0 = 0.5 if name == "relu" else 0.0
        sparsity = check_open_unit("sparsity", sparsity, closed_low=True)
        if abs(sparsity - s0) > 1e-12:
            raise ValueError(
                f"{name} has no threshold: its fraction of zeros is {s0}, "
                f"got sparsity={sparsity!r} (use 'shifted_relu', 'soft_threshold', 'crelu' or "
                "'cst' for other sparsities)"
            )
    if isinstance(q_star, bool) or np.ndim(q_star) != 0:
        raise ValueError(f"q_star must be one number > 0 or 'auto', got q_star={q_star!r}")
    check_positive("q_star", q_star)
    if not math.isfinite(float(q_star)):
        raise ValueError(f"q_star must be a finite number > 0, got q_star={q_star!r}")
    return sparsity, float(q_star)


def edge_of_chaos(
    act, sparsity=None, q_star=1.0, m="safe", strict=False, rtol=1e-9, *, depth=None, width=None
):
    """Edge-of-chaos initialisation (tau, sigma_w, sigma_b) for a target fraction of zeros.

    ``m``: ``"safe"`` (the largest stable clipping level, ``safe_clip``), ``"auto"`` (the
    level that a network of the given ``depth`` and ``width`` trains best with, by the
    finite-width criterion of ``clip_for_depth``), a float, or None (only for unclipped
    activations, which ignore ``"safe"`` and ``"auto"``). ``q_star="auto"`` with a numeric
    ``m`` chooses ``q*`` instead: CReLU and CST depend on m and ``q*`` only through m /
    sqrt(``q*``), so this is the same rule seen from a fixed m, as in Dent & Tanner's larger-``q*``
    initialisation (arXiv 2602.05779). Returns a frozen ``EoCConfig`` with chi, V'(``q*``),
    V''(``q*``), every fixed point of V and whether ``q*`` is the unique attracting one. An unstable
    configuration (unclipped shifted ReLU / soft threshold, or m above the safe level) warns
    with ``EdgeOfChaosWarning``, or raises ValueError with ``strict=True``.

    The three equations (Price et al., ICLR 2024): tau makes P(phi(sqrt(``q*``) z) = 0) equal
    ``sparsity`` (tau = Phi^-1(s) sqrt ``q*``, or Phi^-1((1 + s) / 2) sqrt ``q*`` for the soft
    thresholds); sigma_w^2 = 1 / E[phi'(sqrt(``q*``) z)^2] (chi = 1); sigma_b^2 =
    ``q*`` - sigma_w^2 E[phi(sqrt(``q*``) z)^2] (V(``q*``) = ``q*``).

    Parameters
    ----------
    act : str
        A named activation: ``"relu"``, ``"shifted_relu"``, ``"soft_threshold"``,
        ``"clipped_relu"``/``"crelu"``, ``"clipped_soft_threshold"``/``"cst"``, ``"tanh"``,
        ``"erf"``.
    sparsity : float or None, optional
        Target fraction of zeros: in (0, 1) for the soft thresholds, [0.5, 1) for shifted
        ReLU and CReLU; for relu, tanh and erf None or their own fraction (0.5, 0, 0).
        Default None.
    q_star : float or "auto", optional
        The fixed point ``q*`` > 0 (finite); ``"auto"`` (clipped activations with a numeric
        ``m``, and ``depth`` and ``width`` given) chooses it for that m. Default 1.0.
    m : "safe", "auto", float or None, optional
        Clipping magnitude of CReLU and CST: ``"safe"`` (``safe_clip``), ``"auto"``
        (``clip_for_depth``, needs ``depth`` and ``width``), or a number > 0. The
        unclipped activations take None (and ignore ``"safe"`` and ``"auto"``).
        Default ``"safe"``.
    strict : bool, optional
        Raise ValueError instead of warning when the configuration is unstable.
        Default False.
    rtol : float, optional
        Relative tolerance of the fixed-point scan (``fixed_points``). Default 1e-9.
    depth : int or None, optional
        Network depth (>= 2), for ``m="auto"`` and ``q_star="auto"``. Default None.
    width : int or None, optional
        Network width (>= 1), for ``m="auto"`` and ``q_star="auto"``. Default None.

    Returns
    -------
    EoCConfig
        tau, m, sigma_w, sigma_b and the diagnosis (chi, V'(``q*``), V''(``q*``), the fixed points,
        ``stable``).

    Raises
    ------
    ValueError
        ``act`` is not a known name (callables are refused); ``sparsity`` out of its range
        for the activation; ``q_star`` not a finite number > 0 nor ``"auto"``, or
        ``"auto"`` without a clipped activation and a numeric ``m``; ``m`` invalid for the
        activation; ``"auto"`` without ``depth`` and ``width`` (or ``depth`` < 2,
        ``width`` < 1); no edge of chaos at this ``q*`` (it would need sigma_b^2 < 0); no safe
        clipping level; the configuration is unstable and ``strict`` is True.

    Warns
    -----
    EdgeOfChaosWarning
        When ``q*`` is not the unique attracting fixed point and ``strict`` is False.

    Examples
    --------
    >>> cfg = edge_of_chaos("cst", sparsity=0.85)
    >>> cfg.stable, round(cfg.chi, 12)
    (True, 1.0)
    >>> from shrinkage.activations import zero_fraction
    >>> round(zero_fraction("cst", cfg.q_star, tau=cfg.tau, m=cfg.m), 12)
    0.85

    Unclipped thresholds are never stable at the edge of chaos:

    >>> edge_of_chaos("shifted_relu", 0.85, strict=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unstable configuration: unclipped shifted_relu at the edge of chaos has ...
    """
    name = _canonical(act)
    spec = _SPECS[name]
    try:
        return _edge_of_chaos(name, spec, sparsity, q_star, m, strict, rtol, depth, width)
    except _ScanError as e:
        raise ValueError(f"{name} at sparsity={sparsity!r}, q_star={q_star!r}: {e}") from None


def _edge_of_chaos(name, spec, sparsity, q_star, m, strict, rtol, depth, width):
    auto_q = _check_auto(name, spec, q_star, m, depth, width)
    sparsity, q_star = _check_common(sparsity, 1.0 if auto_q else q_star, name)
    if auto_q:
        mu = clip_for_depth(name, sparsity, depth, width, q_star=1.0)[0]
        q_star = (float(m) / mu) ** 2
    elif spec.clipped and isinstance(m, str) and m == "auto":
        m = clip_for_depth(name, sparsity, depth, width, q_star=q_star)[0]
    m, safe_fps = _clip_level(name, spec, sparsity, q_star, m, rtol)
    if sparsity is None:
        sparsity = 0.5 if name == "relu" else 0.0
    spec, tau, w2, b2, e3, g1, g2 = _solve(name, sparsity, q_star, m)
    if b2 < -1e-12 * q_star:
        raise ValueError(
            f"no edge of chaos for {name} at q_star={q_star!r}: it needs sigma_b^2 = {b2:.4g} < 0; "
            "choose a smaller q_star"
        )
    b2 = max(b2, 0.0)
    dv, d2v = w2 * g1, w2 * g2
    if name == "relu" or (not spec.clipped and not spec.odd and tau == 0.0):
        # V(q) = q for every q: a line of neutral fixed points
        fps = (FixedPoint(q_star, dv, "neutral (every q > 0 is a fixed point)"),)
        stable = True
    elif spec.has_tau and not spec.clipped:
        # V'' = sigma_w^2 a p(a) / q (twice that for ST) > 0: V is strictly convex and touches
        # the diagonal at q* (V'(q*) = chi = 1), so q* is the only fixed point, half-stable.
        fps = (FixedPoint(q_star, dv, "half-stable"),)
        stable = False
    else:
        fps = safe_fps
        if fps is None:
            fps = tuple(fixed_points(name, math.sqrt(w2), math.sqrt(b2), tau, m, rtol=rtol))
        stable = _is_stable(fps, q_star, dv, rtol)
    cfg = EoCConfig(
        activation=name,
        sparsity=float(sparsity),
        q_star=q_star,
        tau=float(tau),
        m=m,
        sigma_w=math.sqrt(w2),
        sigma_b=math.sqrt(b2),
        chi=w2 * e3,
        dV=dv,
        d2V=d2v,
        fixed_points=fps,
        stable=stable,
    )
    if not stable:
        why = _why_unstable(cfg, spec)
        if strict:
            raise ValueError(f"unstable configuration: {why}")
        warnings.warn(f"unstable configuration: {why}", EdgeOfChaosWarning, stacklevel=3)
    return cfg


def _check_auto(name, spec, q_star, m, depth, width) -> bool:
    """Whether q* is to be chosen by the rule; the 'auto' arguments checked before any work."""
    auto_q = isinstance(q_star, str)
    if auto_q and q_star != "auto":
        raise ValueError(f"q_star must be a number > 0 or 'auto', got q_star={q_star!r}")
    if auto_q and (not spec.clipped or isinstance(m, str) or m is None):
        raise ValueError(
            "q_star='auto' needs a clipped activation ('crelu', 'cst') and a numeric m, "
            f"got act={name!r}, m={m!r}"
        )
    auto_m = spec.clipped and isinstance(m, str) and m == "auto"
    if (auto_q or auto_m) and (depth is None or width is None):
        raise ValueError(
            f"m='auto' and q_star='auto' need the network's depth and width, got depth={depth!r}, "
            f"width={width!r}"
        )
    # checked whenever given, even where this m and q* do not read them: a typo must not pass
    if depth is not None:
        check_int_at_least("depth", depth, 2)
    if width is not None:
        check_int_at_least("width", width)
    return auto_q


def _clip_level(name, spec, sparsity, q_star, m, rtol):
    """(m as a float or None, the fixed points found on the way to the safe m or None)."""
    if not spec.clipped:
        if m is not None and m not in ("safe", "auto"):
            raise ValueError(f"{name} takes no clipping magnitude, got m={m!r}")
        return None, None
    if isinstance(m, str):
        if m != "safe":
            raise ValueError(f"m must be 'safe', 'auto', a number > 0 or None, got m={m!r}")
        return _safe_clip(name, sparsity, q_star, rtol=rtol)
    if m is None:
        raise ValueError(f"{name} needs m: 'safe' or a number > 0, got m=None")
    if isinstance(m, bool):
        raise ValueError(f"m must be 'safe', 'auto', a number > 0 or None, got m={m!r}")
    check_positive("m", m)
    if not math.isfinite(float(m)):
        raise ValueError(
            f"m must be a finite number > 0 (an unclipped activation is "
            f"{'shifted_relu' if name == 'clipped_relu' else 'soft_threshold'}), got m={m!r}"
        )
    return float(m), None


def _why_unstable(cfg: EoCConfig, spec) -> str:
    name, q_star, fps = cfg.activation, cfg.q_star, cfg.fixed_points
    if not spec.clipped and spec.has_tau:
        return (
            f"unclipped {name} at the edge of chaos has V'(q*) = {cfg.dV:.6g} and "
            f"V''(q*) = {cfg.d2V:.4g} > 0: q* is half-stable and finite-width noise grows "
            "without bound; clip it ('crelu' / 'cst')"
        )
    if spec.clipped:
        return (
            f"q* = {q_star:g} is not the unique attracting fixed point (fixed points: "
            + ", ".join(str(p) for p in fps)
            + f"); the largest safe m is {safe_clip(name, cfg.sparsity, q_star):.6g}"
        )
    return f"q* = {q_star:g} is not attracting (fixed points: {fps})"


def _stable_at(name, sparsity, q_star, m, rtol, with_points=False):
    spec, tau, w2, b2, e3, g1, g2 = _solve(name, sparsity, q_star, m)
    fps = (
        ()
        if b2 <= 0
        else tuple(fixed_points(name, math.sqrt(w2), math.sqrt(b2), tau, m, rtol=rtol))
    )
    ok = b2 > 0 and _is_stable(fps, q_star, w2 * g1, rtol)
    return (ok, fps) if with_points else ok


def _margin(name, sparsity, q_star, m, n=600):
    """max_q G(q), G(q) = (V(q) - q) / (q - q*) (G(q*) = V'(q*) - 1), over (sigma_b^2, sup V].

    q* is the only fixed point exactly when G < 0 everywhere, so the safe m solves margin = 0."""
    spec, tau, w2, b2, e3, g1, g2 = _solve(name, sparsity, q_star, m)
    lo, hi = max(b2, 1e-9 * q_star), w2 * m**2 + b2
    if hi <= lo:
        return w2 * g1 - 1.0

    def G(x):
        x = np.asarray(x, dtype=np.float64)
        d = x - q_star
        near = np.abs(d) < 1e-4 * q_star
        dd = np.where(near, 1.0, d)
        val = (w2 * _second(spec, x, tau, m) + b2 - x) / dd
        return np.where(near, w2 * g1 - 1.0, val)

    x = np.geomspace(lo, hi, n)
    g = G(x)
    i = int(np.argmax(g))
    a, b = x[max(i - 1, 0)], x[min(i + 1, n - 1)]
    if b > a:
        res = minimize_scalar(
            lambda t: -float(G(np.array([t]))[0]),
            bounds=(a, b),
            method="bounded",
            options={"xatol": 1e-12 * b},
        )
        return max(float(g[i]), -float(res.fun))
    return float(g[i])


@fill_doc
def safe_clip(act, sparsity, q_star=1.0, tol=1e-5, rtol=1e-9, m_max=None):
    """The largest clipping level m for which ``q*`` is the unique, globally attracting fixed point
    of V at the edge of chaos (Price et al., ICLR 2024 prescribe it from plots; this computes it).

    ``q*`` is the only fixed point iff G(q) = (V(q) - q) / (q - ``q*``) < 0 on (sigma_b^2, sup V];
    the level where max G = 0 (a tangency: a new pair of fixed points is born) is found by Brent's
    method, then the result, lowered by ``tol`` relative, is confirmed by the certified scan of
    ``fixed_points`` (and lowered further until it is). V is non-decreasing for CReLU and
    CST (g' = Phi(b) - Phi(a) - (b - a) p(b) >= 0), so a unique fixed point attracts globally.

    Parameters
    ----------
    %(act_clipped, sparsity)s
    q_star : float, optional
        The fixed point ``q*`` > 0 (finite). Default 1.0. The result scales as sqrt(``q*``).
    tol : float, optional
        Relative margin > 0 below the critical level. Default 1e-5.
    rtol : float, optional
        Relative tolerance of the certifying fixed-point scan. Default 1e-9.
    m_max : float or None, optional
        Search cap, as a multiple of sqrt(``q*``); None (default) for 1e3.

    Returns
    -------
    float
        The largest certified safe clipping level m.

    Raises
    ------
    ValueError
        ``act`` not a clipped activation; ``sparsity`` or ``q_star`` out of range; ``tol``
        not > 0; no stable level exists, or none could be certified.

    Warns
    -----
    EdgeOfChaosWarning
        When ``q*`` stays stable up to the cap; that level is returned.

    Examples
    --------
    >>> 1.2 <= safe_clip("cst", 0.85) < 1.5
    True

    At the safe level ``q*`` is the unique attracting fixed point:

    >>> edge_of_chaos("cst", 0.85, m=safe_clip("cst", 0.85)).stable
    True
    """
    name = _canonical(act)
    if name not in _CLIPPED:
        raise ValueError(f"safe_clip needs a clipped activation ('crelu' or 'cst'), got {act!r}")
    sparsity, q_star = _check_common(sparsity, q_star, name)
    check_positive("tol", tol)
    if not tol < 1:  # m = crit (1 - tol) must stay > 0
        raise ValueError(f"tol must be in (0, 1), got tol={tol!r}")
    if m_max is not None:
        check_positive("m_max", m_max)
        check_scalar("m_max", m_max)  # finite: inf (or 0, NaN) would mean "no cap" silently
    try:
        return _safe_clip(name, sparsity, q_star, tol, rtol, m_max)[0]
    except _ScanError as e:
        raise ValueError(f"{name} at sparsity={sparsity!r}, q_star={q_star:g}: {e}") from None


def _safe_clip(name, sparsity, q_star, tol=1e-5, rtol=1e-9, m_max=None):
    """(m, fixed points at m) for validated arguments."""
    sq = math.sqrt(q_star)
    lo = 0.4 * sq
    while _margin(name, sparsity, q_star, lo) >= 0:
        lo /= 2
        if lo < 1e-6 * sq:
            raise ValueError(f"no stable clipping level for {name} at sparsity {sparsity}")
    hi = 2 * lo
    cap = (m_max or 1e3) * sq
    if cap < hi:
        raise ValueError(
            f"m_max={m_max!r} caps the search below m = {hi:.4g}, where {name} at sparsity "
            f"{sparsity} is still stable; raise m_max (a multiple of sqrt(q*)) or leave it None"
        )
    while _margin(name, sparsity, q_star, hi) < 0:
        if hi >= cap:  # stable all the way to the cap: the cap is the answer
            warnings.warn(
                f"{name} at sparsity {sparsity} is stable up to m = {hi:.4g}; returning it",
                EdgeOfChaosWarning,
                stacklevel=2,
            )
            return hi, _stable_at(name, sparsity, q_star, hi, rtol, True)[1]
        # the last step lands on the cap itself: doubling past it gave up on a level
        # between the two (m_max=1.5 returned 0.8 for cst at 0.85, whose safe m is 1.327)
        lo, hi = hi, min(2 * hi, cap)
    crit = brentq(lambda t: _margin(name, sparsity, q_star, t), lo, hi, xtol=1e-3 * tol * lo)
    m = crit * (1 - tol)
    for _ in range(60):
        ok, fps = _stable_at(name, sparsity, q_star, m, rtol, True)
        if ok:
            return m, fps
        m *= 1 - tol
    raise ValueError(
        f"no certifiably safe clipping level for {name} at sparsity={sparsity:g}, "
        f"q_star={q_star:g}: the fixed points near the critical m = {crit:.6g} could not be "
        "separated from q*; choose another sparsity, or pass m as a number (checked, with a "
        "warning when unstable)"
    )


def _config(name, sparsity, q_star, m):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return edge_of_chaos(name, sparsity, q_star=q_star, m=m)


@fill_doc
def clip_for_depth(act, sparsity, depth, width, q_star=1.0, grid=12):
    """The clipping level for a target sparsity at a given depth and width: the m (at fixed
    ``q*``, equivalently mu = m / sqrt(``q*``)) that minimises the predicted spread of the gradient
    across depth, sd ln(|g^1| / |g^L|) from ``finite_width``, among the levels at which
    ``q*`` is the unique attracting fixed point (m < ``safe_clip``).

    The criterion is the finite-width one: it weighs the flatter gain chi_1(q) and the
    stronger attraction of ``q*`` that a smaller m (a larger ``q*`` at fixed m) brings against the
    fewer units left in the linear window (more gradient noise per layer). Returns
    ``(m, FiniteWidth at m)``; scanned on a log grid of ``grid`` points between 0.05 and
    0.999 of the safe level, then refined by bounded Brent search.

    Parameters
    ----------
    %(act_clipped, sparsity, depth, width)s
    q_star : float, optional
        The fixed point ``q*`` > 0. Default 1.0.
    grid : int, optional
        Points of the initial log grid, >= 3. Default 12.

    Returns
    -------
    tuple
        ``(m, fw)``: the clipping level (float, below ``safe_clip``) and the
        ``FiniteWidth`` prediction at it.

    Raises
    ------
    ValueError
        ``depth`` < 2, ``width`` < 1 or ``grid`` < 3 (not integers included), and whatever
        ``safe_clip`` raises.

    Examples
    --------
    Each candidate m costs a certified fixed-point scan and a finite-width prediction, so
    this takes seconds; a coarse grid keeps it short:

    >>> m, fw = clip_for_depth("crelu", 0.85, depth=10, width=100, grid=3)
    >>> 0.2 < m / safe_clip("crelu", 0.85) < 1, fw.depth, fw.width
    (True, 10, 100)
    """
    name = _canonical(act)
    depth = check_int_at_least("depth", depth, 2)
    width = check_int_at_least("width", width)
    grid = check_int_at_least("grid", grid, 3)
    m_safe = safe_clip(name, sparsity, q_star)

    def sd(log_frac):
        m = m_safe * math.exp(log_frac)
        return finite_width(_config(name, sparsity, q_star, m), width, depth).log_gain_sd

    xs = np.linspace(math.log(0.05), math.log(0.999), grid)
    ys = np.array([sd(x) for x in xs])
    i = int(np.argmin(ys))
    lo, hi = xs[max(i - 1, 0)], xs[min(i + 1, grid - 1)]
    best_x, best_y = xs[i], ys[i]
    if hi > lo:
        res = minimize_scalar(sd, bounds=(lo, hi), method="bounded", options={"xatol": 1e-3})
        if res.fun < best_y:
            best_x, best_y = float(res.x), float(res.fun)
    m = m_safe * math.exp(best_x)
    return m, finite_width(_config(name, sparsity, q_star, m), width, depth)


@fill_doc
def q_star_scan(act, sparsity, q_stars, m="scaled", depth=50, width=300) -> list[dict]:
    """The maps as functions of ``q*``: for each ``q*``, the edge-of-chaos config with ``m`` either
    ``"scaled"`` (m = mu sqrt(``q*``), mu the safe level at ``q*`` = 1: every dimensionless quantity
    is the same, by homogeneity) or a fixed number (the Dent & Tanner scan: mu = m / sqrt(``q*``)
    falls as ``q*`` grows). Each row: ``q*``, m, mu, tau, sigma_w, sigma_b, V'(``q*``), ``q*``
    V''(``q*``), kappa = d ln chi_1 / d ln q, the fraction p of units in the linear window, the
    depth scales xi_q and xi_c, 1 - rho after ``depth`` layers from rho = 0, the finite-width spread
    sd ln(|g^1| / |g^L|) at ``width`` and ``depth``, and whether ``q*`` is the unique attracting
    fixed point.

    Parameters
    ----------
    %(act_clipped, sparsity)s
    q_stars : iterable of float
        The ``q*`` values, each > 0.
    m : "scaled" or float, optional
        ``"scaled"`` (m = mu sqrt(``q*``)) or one clipping level > 0 for every ``q*``.
        Default ``"scaled"``.
    depth : int, optional
        Depth of the finite-width prediction and of the correlation run, >= 2. Default 50.
    width : int, optional
        Width of the finite-width prediction, >= 1. Default 300.

    Returns
    -------
    list of dict
        One row per ``q*``, keys ``q_star``, ``m``, ``mu``, ``tau``, ``sigma_w``, ``sigma_b``,
        ``dV``, ``q_d2V``, ``kappa``, ``p_linear``, ``xi_q``, ``xi_c``,
        ``one_minus_rho``, ``log_gain_sd``, ``stable``.

    Raises
    ------
    ValueError
        ``act`` not a clipped activation; ``sparsity`` out of range; a ``q*`` not > 0; ``m`` a
        string other than ``"scaled"`` or a number not > 0; ``depth`` < 2 or ``width`` < 1.

    Examples
    --------
    With m scaled, every dimensionless quantity is the same at each ``q*``:

    >>> rows = q_star_scan("crelu", 0.85, [1.0, 4.0], m="scaled")
    >>> abs(rows[0]["kappa"] - rows[1]["kappa"]) < 1e-6
    True
    """
    name = _canonical(act)
    rows = []
    mu_safe = safe_clip(name, sparsity, 1.0)
    for qs in q_stars:
        check_positive("q_star", qs)
        mm = mu_safe * math.sqrt(qs) if isinstance(m, str) and m == "scaled" else m
        if isinstance(mm, str):
            raise ValueError(f"m must be 'scaled' or a number > 0, got m={m!r}")
        cfg = _config(name, sparsity, float(qs), mm)
        fw = finite_width(cfg, width, depth)
        xi_q, xi_c = depth_scales(name, qs, cfg.sigma_w, cfg.sigma_b, cfg.tau, cfg.m)
        rho = propagate(name, qs, depth + 1, cfg.sigma_w, cfg.sigma_b, cfg.tau, cfg.m, rho0=0.0)
        rows.append(
            {
                "q_star": float(qs),
                "m": cfg.m,
                "mu": cfg.m / math.sqrt(qs),
                "tau": cfg.tau,
                "sigma_w": cfg.sigma_w,
                "sigma_b": cfg.sigma_b,
                "dV": cfg.dV,
                "q_d2V": qs * cfg.d2V,
                "kappa": fw.kappa,
                "p_linear": fluctuation_moments(cfg)["dphi2"],
                "xi_q": xi_q,
                "xi_c": xi_c,
                "one_minus_rho": float(1.0 - rho["rho"][depth]),
                "log_gain_sd": fw.log_gain_sd,
                "stable": cfg.stable,
            }
        )
    return rows
