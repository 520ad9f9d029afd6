"""Finite-width theory against Monte Carlo on random networks, and the clipping rule against
its own criterion."""

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.stats import norm

from shrinkage.activations import (
    clip_for_depth,
    edge_of_chaos,
    finite_width,
    fluctuation_moments,
    moments,
    q_star_scan,
    safe_clip,
    width_for_depth,
)


def _cfg(act, s, frac):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if act == "relu":
            return edge_of_chaos("relu")
        return edge_of_chaos(act, s, m=safe_clip(act, s) * frac)


def _phi_and_slope(cfg):
    """phi and phi' of the config's activation as tensor functions (written out here, not
    taken from the library, so the reference is independent)."""
    if cfg.activation == "relu":
        return torch.relu, lambda h: (h > 0).to(h.dtype)
    tau, m = cfg.tau, cfg.m
    if cfg.activation == "clipped_relu":
        return (lambda h: (h - tau).clamp(0, m)), lambda h: ((h > tau) & (h < tau + m)).to(h.dtype)
    return (
        lambda h: h.sign() * (h.abs() - tau).clamp(0, m),
        lambda h: ((h.abs() > tau) & (h.abs() < tau + m)).to(h.dtype),
    )


def _monte_carlo(cfg, width, depth, nets, seed=0, chunk=25):
    """Random networks (fresh weights per layer, one input scaled so that v^1 = q*): the
    conditional variance v^L and ln(|g^1| / |g^L|) of a random output gradient, back-propagated
    through the same weights."""
    g = torch.Generator().manual_seed(seed)
    phi, slope = _phi_and_slope(cfg)
    sw, sb = cfg.sigma_w, cfg.sigma_b
    v_last, log_gain = [], []
    for start in range(0, nets, chunk):
        k = min(chunk, nets - start)
        x = torch.randn(k, width, 1, generator=g, dtype=torch.float32)
        x = x * (cfg.input_mean_square / x.pow(2).mean(1, keepdim=True)).sqrt()
        ws, slopes = [], []
        for _ in range(depth):
            w = torch.randn(k, width, width, generator=g, dtype=torch.float32) * (sw / width**0.5)
            b = torch.randn(k, width, 1, generator=g, dtype=torch.float32) * sb
            v = sw**2 * x.pow(2).mean((1, 2)) + sb**2
            h = torch.bmm(w, x) + b
            ws.append(w)
            slopes.append(slope(h))
            x = phi(h)
        v_last.append(v)
        grad = torch.randn(k, width, 1, generator=g, dtype=torch.float32)
        top = grad.norm(dim=(1, 2))
        for layer in range(depth - 1, 0, -1):
            grad = slopes[layer - 1] * torch.bmm(ws[layer].transpose(1, 2), grad)
        log_gain.append((grad.norm(dim=(1, 2)) / top).log())
    return torch.cat(v_last).double().numpy(), torch.cat(log_gain).double().numpy()


def test_fluctuation_moments_match_closed_forms_and_quadrature():
    cfg = _cfg("crelu", 0.85, 0.6)
    fm = fluctuation_moments(cfg, q=1.3)
    _, e2, d2 = moments("crelu", 1.3, tau=cfg.tau, m=cfg.m)
    assert fm["phi2"] == pytest.approx(e2, rel=1e-10)
    assert fm["dphi2"] == pytest.approx(d2, rel=1e-10)
    sd = math.sqrt(1.3)
    ref, _ = integrate.quad(
        lambda x: min(max(x - cfg.tau, 0.0), cfg.m) ** 4 * norm.pdf(x, scale=sd),
        cfg.tau,
        cfg.tau + cfg.m + 12 * sd,
        points=[cfg.tau + cfg.m],
        limit=200,
    )
    assert fm["phi4"] == pytest.approx(ref, rel=1e-8)
    assert fm["dphi4"] == pytest.approx(d2, rel=1e-10)  # phi' is 0 or 1


@pytest.mark.parametrize(
    "act,s,frac,width,depth,nets",
    [
        ("relu", None, None, 300, 15, 80),
        ("crelu", 0.85, 0.7, 100, 20, 150),
        ("crelu", 0.85, 0.7, 300, 15, 80),
        ("crelu", 0.85, 1.0, 300, 15, 80),  # near-tangent V: the chain is followed, not linearised
        ("cst", 0.85, 0.5, 300, 15, 80),
        pytest.param("crelu", 0.85, 0.5, 1000, 8, 24, marks=pytest.mark.slow),
    ],
)
def test_finite_width_prediction_matches_random_networks(act, s, frac, width, depth, nets):
    cfg = _cfg(act, s, frac)
    v, lg = _monte_carlo(cfg, width, depth, nets)
    fw = finite_width(cfg, width, depth)
    # sampling error of a standard deviation from n draws: sd / sqrt(2 n); 4 of those, plus 10 %
    # for the second-order closure
    for got, pred in ((v.std(), fw.q_sd[-1]), (lg.std(), fw.log_gain_sd)):
        assert abs(got - pred) <= 4 * got / math.sqrt(2 * nets) + 0.1 * pred
    assert abs(v.mean() - fw.q_mean[-1]) <= 4 * v.std() / math.sqrt(nets) + 0.02 * cfg.q_star


def test_gradient_spread_falls_like_one_over_sqrt_width():
    cfg = _cfg("crelu", 0.85, 0.5)
    a, b = finite_width(cfg, 250, 40).log_gain_sd, finite_width(cfg, 1000, 40).log_gain_sd
    assert a / b == pytest.approx(2.0, rel=0.1)


def test_sparse_activation_has_more_gradient_noise_than_relu():
    # r = 3 / p - 1 per layer and unit of 1 / N: p = 0.5 for ReLU, p < 0.15 at 85 % sparsity
    relu, crelu = (
        finite_width(_cfg("relu", None, None), 300, 30),
        finite_width(_cfg("crelu", 0.85, 0.5), 300, 30),
    )
    assert relu.per_layer_noise == pytest.approx(5 / 300, rel=1e-6)
    assert crelu.per_layer_noise > 3.5 * relu.per_layer_noise


def test_clip_for_depth_minimises_its_own_criterion():
    m, fw = clip_for_depth("crelu", 0.85, depth=40, width=300)
    m_safe = safe_clip("crelu", 0.85)
    assert 0 < m < m_safe
    cfg = edge_of_chaos("crelu", 0.85, m=m)
    assert cfg.stable
    assert fw.log_gain_sd == pytest.approx(finite_width(cfg, 300, 40).log_gain_sd)
    for frac in (0.1, 0.2, 0.3, 0.4, 0.6, 0.75, 0.9, 0.99):
        other = finite_width(_cfg("crelu", 0.85, frac), 300, 40).log_gain_sd
        assert fw.log_gain_sd <= other + 1e-9


def test_auto_m_and_auto_q_star_are_one_rule():
    a = edge_of_chaos("cst", 0.85, m="auto", depth=30, width=200)
    b = edge_of_chaos("cst", 0.85, q_star="auto", m=1.0, depth=30, width=200)
    assert a.m / math.sqrt(a.q_star) == pytest.approx(b.m / math.sqrt(b.q_star), rel=1e-9)
    assert a.stable and b.stable
    assert b.q_star == pytest.approx((1.0 / a.m) ** 2, rel=1e-9)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(q_star=0.0), "q_star"),
        (dict(q_star=float("nan")), "q_star"),
        (dict(q_star=float("inf")), "q_star"),
        (dict(q_star="big"), "q_star"),
        (dict(m="auto"), "depth"),
        (dict(q_star="auto", m="safe", depth=10, width=10), "numeric m"),
        (dict(m="auto", depth=0, width=10), "depth"),
        (dict(m="auto", depth=10, width=-3), "width"),
    ],
)
def test_bad_q_star_and_rule_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        edge_of_chaos("crelu", 0.85, **kw)


def test_width_for_depth_is_the_smallest_width_meeting_the_target():
    cfg = _cfg("crelu", 0.85, 0.5)
    n = width_for_depth(cfg, 30, target_sd=0.8)
    assert finite_width(cfg, n, 30).log_gain_sd <= 0.8
    assert finite_width(cfg, int(n * 0.97), 30).log_gain_sd > 0.8
    assert width_for_depth(_cfg("relu", None, None), 30, target_sd=0.8) < n
    with pytest.raises(ValueError, match="target_sd"):
        width_for_depth(cfg, 30, target_sd=0)


def test_q_star_scan_scaled_m_is_homogeneous_and_fixed_m_is_dent_tanner():
    scaled = q_star_scan("crelu", 0.85, [1.0, 4.0, 16.0], m="scaled", depth=20, width=300)
    for key in ("mu", "dV", "q_d2V", "kappa", "p_linear", "one_minus_rho", "log_gain_sd"):
        vals = [r[key] for r in scaled]
        assert np.allclose(vals, vals[0], rtol=1e-6, atol=1e-12), key
    assert scaled[2]["tau"] == pytest.approx(4 * scaled[0]["tau"])
    fixed = q_star_scan("crelu", 0.85, [1.0, 4.0, 16.0], m=1.0, depth=20, width=300)
    mus = [r["mu"] for r in fixed]
    assert mus == pytest.approx([1.0, 0.5, 0.25])
    # a larger q* at fixed m: flatter gain chi_1(q), a more strongly attracting q*, fewer
    # units in the linear window
    assert fixed[0]["kappa"] > fixed[1]["kappa"] > fixed[2]["kappa"]
    assert fixed[0]["dV"] > fixed[1]["dV"] > fixed[2]["dV"]
    assert fixed[0]["p_linear"] > fixed[1]["p_linear"] > fixed[2]["p_linear"]
