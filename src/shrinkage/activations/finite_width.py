"""Finite-width corrections to the edge-of-chaos maps, and the clipping rule built on them.

For one input and weights drawn afresh in each layer, the conditional variance of the
pre-activations, v^l = sigma_w^2 |phi(h^{l-1})|^2 / N + sigma_b^2, is *exactly* a Markov chain:
given v^l the N pre-activations are i.i.d. N(0, v^l), so

    v^{l+1} = sigma_w^2 (1/N) sum_i phi(sqrt(v^l) z_i)^2 + sigma_b^2,     z_i ~ N(0, 1),
    E[v^{l+1} | v^l] = V(v^l),   Var[v^{l+1} | v^l] = sigma_w^4 Var[phi(sqrt(v^l) z)^2] / N.

Linearised about q* (d = v - q*), d' = V'(q*) d + V''(q*) d^2 / 2 + eta with
Var eta = s^2 = sigma_w^4 (E phi^4 - (E phi^2)^2) / N: the mean and variance of d over depth
follow in closed form (``finite_width``). The backward pass under gradient independence
multiplies |g|^2 per layer by (sigma_w^2 / N) sum_i phi'(h_i)^2 zeta_i^2, whose mean is
chi_1(v) = sigma_w^2 E[phi'(sqrt(v) z)^2] and whose relative variance is
r / N = (3 E[phi'^4] / E[phi'^2]^2 - 1) / N: for a 0/1 derivative that is (3 / p - 1) / N with
p = P(phi' != 0), so a sparse activation (p = 0.15) has about four times ReLU's (p = 0.5)
gradient noise at the same width. With kappa = d ln chi_1 / d ln q at q*,

    ln(|g^1|^2 / |g^L|^2) ~ sum_l [kappa d^l / q* + eps_l],   Var eps_l = r / N,

whose mean and variance ``finite_width`` also returns. ``kappa`` is what a larger q* at
fixed m changes (Dent & Tanner, arXiv 2602.05779): CReLU and CST are jointly homogeneous in
(x, tau, m), so at the edge of chaos everything depends on q* and m only through
mu = m / sqrt(q*); a smaller mu makes chi_1 flatter in q (smaller kappa) and V more strongly
attracting (smaller V'(q*)), but leaves fewer units in the linear window (smaller p, more
gradient noise). ``clip_for_depth`` picks the mu that minimises
the predicted spread sd ln(|g^1| / |g^L|) at a given depth and width, among the stable ones.
The mean of that log gain carries an O(depth / N) bias from the forward-backward dependence
that gradient independence ignores; its spread is what the tests check against networks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._checks import check_int_at_least, check_positive, check_scalar
from ._cfg import check_config
from ._docs import fill_doc
from ._gauss import _SPECS, _nodes, _phi_np

__all__ = ["FiniteWidth", "finite_width", "fluctuation_moments", "width_for_depth"]


def _moments_on(cfg, q, n=64):
    """(E phi^2, E phi^4, E phi'^2, E phi'^4) at X ~ N(0, q) for an array q (float64); ``n``
    Gauss-Legendre nodes per unit panel (the integrands are polynomial times Gaussian between
    kinks, so 16 already give ~1e-10)."""
    spec = _SPECS[cfg.activation]
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    kinks = spec.kinks(cfg.tau, cfg.m) if callable(spec.kinks) else spec.kinks
    z, w = _nodes(q, kinks, n=n)
    x = np.sqrt(q)[:, None] * z
    f = _phi_np(spec, cfg.tau, cfg.m, x)
    d = _phi_np(spec, cfg.tau, cfg.m, x, deriv=True)
    return (w * f**2).sum(1), (w * f**4).sum(1), (w * d**2).sum(1), (w * d**4).sum(1)


@fill_doc
def fluctuation_moments(cfg, q=None) -> dict:
    """E[phi^2], E[phi^4], E[phi'^2], E[phi'^4] at X ~ N(0, q) (default ``q*``), float64.

    Piecewise Gauss-Legendre split at the kinks of phi (exact to ~1e-12 for the named
    activations); ``cfg`` is an ``EoCConfig``. These are the
    inputs of the finite-width noise: the forward variance chain fluctuates with
    Var[phi^2] = E phi^4 - (E phi^2)^2, the backward gain with E phi'^4 / (E phi'^2)^2.

    Parameters
    ----------
    %(cfg)s
    q : float or None, optional
        The variance of X (> 0); None (default) for ``cfg.q_star``.

    Returns
    -------
    dict
        ``phi2``, ``phi4``, ``dphi2``, ``dphi4``: E[phi^2], E[phi^4], E[phi'^2], E[phi'^4]
        as floats. For a 0/1 derivative ``dphi2`` is the fraction p of units in the
        linear window.

    Raises
    ------
    ValueError
        If ``q`` is given and not > 0.
    TypeError
        If ``cfg`` is not an edge-of-chaos config (for example the activation's name).

    Examples
    --------
    ReLU at q = 1: E[phi^2] = 1/2, E[phi^4] = 3/2, and phi' is 1 on half the inputs:

    >>> from shrinkage.activations import edge_of_chaos
    >>> fm = fluctuation_moments(edge_of_chaos("relu"))
    >>> {k: round(v, 12) for k, v in fm.items()}
    {'phi2': 0.5, 'phi4': 1.5, 'dphi2': 0.5, 'dphi4': 0.5}
    """
    check_config(cfg)
    if q is not None:
        check_positive("q", q)
        check_scalar("q", q)  # finite: q = inf gave NaN moments, silently
    e2, e4, d2, d4 = _moments_on(cfg, cfg.q_star if q is None else q)
    return {
        "phi2": float(e2[0]),
        "phi4": float(e4[0]),
        "dphi2": float(d2[0]),
        "dphi4": float(d4[0]),
    }


@dataclass(frozen=True)
class FiniteWidth:
    """Predicted finite-width statistics of an edge-of-chaos network (see the module docstring).

    Returned by ``finite_width``; frozen, each parameter is also an attribute.

    Parameters
    ----------
    width : int
        Units per layer N.
    depth : int
        Number of layers L.
    q_mean : numpy.ndarray
        (depth,) mean over networks of the conditional pre-activation variance v^l of one
        input (v^1 = ``q*`` exactly when the input is scaled for it).
    q_sd : numpy.ndarray
        (depth,) its standard deviation over networks (0 at layer 1).
    log_gain_mean : float
        Mean of ln(|g^1| / |g^L|), the log ratio of the back-propagated gradient norms at
        the first and last hidden layers.
    log_gain_sd : float
        Its standard deviation: the spread ``clip_for_depth`` minimises.
    per_layer_noise : float
        r / N at ``q*``, the relative variance of the per-layer gradient factor, with
        r = 3 E[phi'^4] / E[phi'^2]^2 - 1 (3 / p - 1 for a 0/1 derivative).
    kappa : float
        d ln chi_1 / d ln q at ``q*``.

    Attributes
    ----------
    rms_log_gain : float
        sqrt(log_gain_mean^2 + log_gain_sd^2).

    Examples
    --------
    ReLU leaves half its units in the linear window (p = 1/2), so r = 3 / p - 1 = 5:

    >>> from shrinkage.activations import edge_of_chaos, finite_width
    >>> fw = finite_width(edge_of_chaos("relu"), width=300, depth=50)
    >>> round(float(fw.per_layer_noise) * 300, 9), float(fw.q_sd[0]), fw.q_mean.shape
    (5.0, 0.0, (50,))
    """

    width: int
    depth: int
    q_mean: np.ndarray
    q_sd: np.ndarray
    log_gain_mean: float
    log_gain_sd: float
    per_layer_noise: float
    kappa: float

    @property
    def rms_log_gain(self) -> float:
        return math.hypot(self.log_gain_mean, self.log_gain_sd)


def _grid(cfg, width, depth, n):
    qs, w2, b2 = cfg.q_star, cfg.sigma_w**2, cfg.sigma_b**2
    e2, e4, _, _ = _moments_on(cfg, qs)
    spread = math.sqrt(w2**2 * max(e4[0] - e2[0] ** 2, 0.0) / width * depth)
    hi = qs + 12.0 * spread + qs
    if cfg.m is not None:
        hi = min(hi, w2 * cfg.m**2 * (2.0 if _SPECS[cfg.activation].odd else 1.0) + b2)
        hi = max(hi, 1.5 * qs)
    lo = max(b2, 1e-6 * qs) if b2 > 0 else 1e-4 * qs
    return np.geomspace(lo, hi, n) if b2 <= 0 else np.linspace(lo, hi, n)


@fill_doc
def finite_width(cfg, width: int, depth: int, grid: int = 300) -> FiniteWidth:
    """Finite-width prediction for ``cfg`` at ``width`` and ``depth`` (module docstring).

    The variance chain is propagated as a density on a grid of ``grid`` points with the
    Gaussian (central-limit) transition N(V(v), s^2(v)), s^2(v) = sigma_w^4 Var[phi^2] / N, from
    v^1 = ``q*`` (the input is scaled so); no linearisation, so the near-tangent V of a clipping
    level close to the safe one is followed too. The log gain ln(|g^1|^2 / |g^L|^2) adds, per
    layer 1 .. L-1, ln chi_1(v^l) - r(v^l) / (2N) (the Jensen term of the gradient noise) plus
    an independent noise of variance r(v^l) / N; its mean and variance come from forward
    recursions on the joint law of (v^l, partial sum). Checked against Monte Carlo on random
    networks in the tests (widths 100-1000).

    Parameters
    ----------
    %(cfg)s
    width : int
        Units per layer N, >= 1.
    depth : int
        Number of layers L, >= 2.
    grid : int, optional
        Points of the grid carrying the density of v, >= 50. Default 300.

    Returns
    -------
    FiniteWidth
        The predicted spread of the variance over depth and the mean and spread of the log
        gradient gain.

    Raises
    ------
    ValueError
        If ``width`` < 1, ``depth`` < 2 or ``grid`` < 50 (or not integers).
    TypeError
        If ``cfg`` is not an edge-of-chaos config (for example the activation's name).

    Examples
    --------
    At width 300 and depth 50 the variance of CReLU's last layer spreads by about 0.15
    around ``q*`` = 1:

    >>> from shrinkage.activations import edge_of_chaos
    >>> fw = finite_width(edge_of_chaos("crelu", 0.85, m=1.3), width=300, depth=50)
    >>> bool(0.05 < fw.q_sd[-1] < 0.3)
    True
    """
    check_config(cfg)
    width = check_int_at_least("width", width)
    depth = check_int_at_least("depth", depth, 2)
    grid = check_int_at_least("grid", grid, 50)
    qs, w2, b2 = cfg.q_star, cfg.sigma_w**2, cfg.sigma_b**2
    v = _grid(cfg, width, depth, grid)
    e2, e4, d2, d4 = _moments_on(cfg, v, n=16)
    mean_next = w2 * e2 + b2
    sd_next = np.sqrt(np.maximum(w2**2 * (e4 - e2**2) / width, 1e-300))
    with np.errstate(divide="ignore", invalid="ignore"):
        chi1 = w2 * d2
        r = np.where(d2 > 0, 3.0 * d4 / np.where(d2 > 0, d2, 1.0) ** 2 - 1.0, 0.0)
        f = np.where(chi1 > 0, np.log(np.where(chi1 > 0, chi1, 1.0)), -50.0) - 0.5 * r / width
    noise = r / width

    def kernel(mu, sd):
        # rows: from-state; mass beyond the grid is folded onto its end points
        edges = np.concatenate([[-np.inf], 0.5 * (v[1:] + v[:-1]), [np.inf]])
        from scipy.special import ndtr

        c = ndtr((edges[None, :] - mu[:, None]) / sd[:, None])
        return np.diff(c, axis=1)

    P = kernel(mean_next, sd_next)
    e2s, e4s, d2s, d4s = _moments_on(cfg, qs)
    pi = kernel(
        np.array([w2 * e2s[0] + b2]), np.sqrt(np.maximum(w2**2 * (e4s - e2s**2) / width, 1e-300))
    )[0]
    # layer 1 sits at q* exactly
    f1 = math.log(w2 * d2s[0]) - 0.5 * (3.0 * d4s[0] / d2s[0] ** 2 - 1.0) / width
    n1 = (3.0 * d4s[0] / d2s[0] ** 2 - 1.0) / width
    A = f1 * pi
    B = (f1**2 + n1) * pi
    q_mean, q_sd = [qs], [0.0]
    for layer in range(1, depth):
        m1 = float(pi @ v)
        q_mean.append(m1)
        q_sd.append(math.sqrt(max(float(pi @ v**2) - m1**2, 0.0)))
        if layer == depth - 1:
            break
        A = A + f * pi
        B = B + 2.0 * f * A - f**2 * pi + noise * pi
        pi, A, B = pi @ P, A @ P, B @ P
    mean_s = float(A.sum())
    var_s = max(float(B.sum()) - mean_s**2, 0.0)
    eps = 1e-4
    lo_, hi_ = _moments_on(cfg, np.array([qs * (1 - eps), qs * (1 + eps)]))[2]
    kappa = (math.log(hi_) - math.log(lo_)) / (math.log1p(eps) - math.log1p(-eps))
    return FiniteWidth(
        width=width,
        depth=depth,
        q_mean=np.array(q_mean),
        q_sd=np.array(q_sd),
        log_gain_mean=0.5 * mean_s,
        log_gain_sd=0.5 * math.sqrt(var_s),
        per_layer_noise=n1,
        kappa=kappa,
    )


@fill_doc
def width_for_depth(cfg, depth, target_sd=0.5, max_width=100_000):
    """The smallest width at which the predicted spread sd ln(|g^1| / |g^L|) of ``cfg`` at
    ``depth`` is at most ``target_sd`` (ReLU at its edge of chaos meets 0.5 at depth 50 and
    width ~250). The spread falls like 1 / sqrt(width) and the per-layer noise is
    (3 / p - 1) / N, so an activation that leaves a fraction p of units in its linear window
    needs about (3 / p - 1) / 5 times ReLU's width at the same depth (four times at p = 0.15).

    Found by doubling from 64, then bisection to 1 % of the width, each step one
    ``finite_width`` prediction.

    Parameters
    ----------
    %(cfg, depth)s
    target_sd : float, optional
        The largest acceptable sd ln(|g^1| / |g^L|), > 0. Default 0.5.
    max_width : int, optional
        Give up beyond this width. Default 100_000.

    Returns
    -------
    int
        The width (within 1 %).

    Raises
    ------
    ValueError
        If ``depth`` < 2, ``target_sd`` is not > 0, or no width up to ``max_width`` meets
        the target.
    TypeError
        If ``cfg`` is not an edge-of-chaos config (for example the activation's name).

    Examples
    --------
    ReLU at depth 50 needs a width of about 250:

    >>> from shrinkage.activations import edge_of_chaos
    >>> 200 < width_for_depth(edge_of_chaos("relu"), 50) < 300
    True
    """
    check_config(cfg)
    depth = check_int_at_least("depth", depth, 2)
    check_positive("target_sd", target_sd)
    lo, hi = 2, 64
    while finite_width(cfg, hi, depth).log_gain_sd > target_sd:
        lo, hi = hi, hi * 2
        if hi > max_width:
            raise ValueError(
                f"no width up to max_width={max_width} brings the gradient spread of "
                f"{cfg.activation} at depth {depth} to target_sd={target_sd}"
            )
    while hi - lo > max(1, lo // 100):
        mid = (lo + hi) // 2
        if finite_width(cfg, mid, depth).log_gain_sd > target_sd:
            lo = mid
        else:
            hi = mid
    return hi
