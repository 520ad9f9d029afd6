"""Figures of the activations pillar: the variance map, V'(q*) and V''(q*) against the
clipping level, the maps against finite-width networks (matplotlib's object API: no pyplot,
no backend switch; atomic writes)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .._io import save_figure
from ._gauss import _SPECS, zero_fraction
from .eoc import _solve, edge_of_chaos, q_star_scan, safe_clip
from .finite_width import finite_width
from .maps import propagate, variance_map
from .simulate import first_layer_rho, simulate, simulate_gain

__all__ = [
    "plot_maps",
    "plot_theory_vs_simulation",
    "plot_q_star_scan",
    "plot_finite_width",
]


def _family(cfg):
    """(name, tau, m) for V(q) curves at several clipping levels of cfg's activation."""
    spec = _SPECS[cfg.activation]
    if not spec.clipped:
        return [(cfg.activation, None)]
    ms = sorted({cfg.m * f for f in (0.5, 1.0, 1.25, 1.5, 2.0)})
    return [(cfg.activation, m) for m in ms]


def plot_maps(cfg, out):
    """V(q) against q for several m (each at its own edge of chaos) and V'(q*), V''(q*) vs m."""
    out = Path(out)
    paths = []
    fig = Figure(figsize=(5.2, 4.2))
    ax = fig.subplots()
    qmax = 4 * cfg.q_star
    for name, m in _family(cfg):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = edge_of_chaos(name, cfg.sparsity if cfg.tau > 0 else None, cfg.q_star, m=m)
        qmax = max(qmax, 1.2 * max(p.q for p in c.fixed_points))
    q = np.linspace(1e-3, qmax, 600) * 1.0
    for name, m in _family(cfg):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = edge_of_chaos(name, cfg.sparsity if cfg.tau > 0 else None, cfg.q_star, m=m)
        v = variance_map(name, q, c.sigma_w, c.sigma_b, tau=c.tau, m=c.m)
        lab = "unclipped" if m is None else f"m = {m:.3g}" + (" (safe)" if m == cfg.m else "")
        ax.plot(q, v - q, label=lab + ("" if c.stable else ", unstable"), lw=1.2)
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(cfg.q_star, color="gray", ls=":", lw=0.8)
    ax.set(
        xlabel="q", ylabel="V(q) - q", title=f"{cfg.activation}, s = {cfg.sparsity:.2f}: V(q) - q"
    )
    ax.set_ylim(-0.5 * cfg.q_star, 0.5 * cfg.q_star)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(save_figure(fig, out / "variance_map.png", dpi=90))
    if cfg.m is not None:
        ms = np.linspace(0.2, 2.5, 60) * cfg.m
        dv, d2v = [], []
        for m in ms:  # V'(q*), V''(q*) at each m's own edge of chaos (no fixed-point scan)
            _, _, w2, _, _, g1, g2 = _solve(cfg.activation, cfg.sparsity, cfg.q_star, float(m))
            dv.append(w2 * g1)
            d2v.append(w2 * g2)
        fig = Figure(figsize=(5.2, 4.0))
        ax = fig.subplots()
        ax.plot(ms, dv, label="V'(q*)")
        ax.plot(ms, d2v, label="V''(q*)")
        ms_safe = safe_clip(cfg.activation, cfg.sparsity, cfg.q_star)
        ax.axvline(ms_safe, color="r", ls="--", lw=0.9, label=f"safe m = {ms_safe:.3g}")
        ax.axhline(1, color="k", lw=0.5)
        ax.set(xlabel="m", title=f"{cfg.activation}, s = {cfg.sparsity:.2f}, q* = {cfg.q_star:g}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(save_figure(fig, out / "dV_vs_m.png", dpi=90))
    return paths


def plot_theory_vs_simulation(cfg, path, depth=100, width=300, n_nets=4, seed=0, rho0=0.5):
    """q^l, rho^l and the fraction of zeros per layer: the maps against finite-width networks."""
    sim = simulate(cfg, depth, width, n_inputs=2, seed=seed, rho0=rho0, n_nets=n_nets)
    th = propagate(
        cfg.activation,
        cfg.q_star,
        depth,
        cfg.sigma_w,
        cfg.sigma_b,
        cfg.tau,
        cfg.m,
        rho0=first_layer_rho(cfg, rho0),
    )
    layers = np.arange(1, depth + 1)
    fig = Figure(figsize=(12, 3.6))
    ax = fig.subplots(1, 3)
    qs = sim["q"].reshape(-1, depth)
    with np.errstate(all="ignore"):
        for row in qs:
            ax[0].plot(layers, row, color="C0", alpha=0.25, lw=0.7)
    ax[0].plot(layers, th["q"], "k", lw=1.5, label="theory V^l")
    ax[0].set(xlabel="layer", ylabel="q^l", yscale="log")
    ax[0].legend(fontsize=8)
    for row in sim["rho"]:
        ax[1].plot(layers, row, color="C1", alpha=0.4, lw=0.7)
    ax[1].plot(layers, th["rho"], "k", lw=1.5, label="theory C^l")
    ax[1].set(xlabel="layer", ylabel="rho^l", ylim=(0, 1.02))
    ax[1].legend(fontsize=8)
    for row in sim["sparsity"]:
        ax[2].plot(layers, row, color="C2", alpha=0.4, lw=0.7)
    with np.errstate(all="ignore"):
        qth = np.where(np.isfinite(th["q"]), th["q"], 1e300)
        zf = zero_fraction(cfg.activation, qth, cfg.tau, cfg.m)
    ax[2].plot(layers, zf, "k", lw=1.5, label="theory")
    ax[2].axhline(cfg.sparsity, color="r", ls=":", lw=0.8, label="target")
    ax[2].set(xlabel="layer", ylabel="fraction of zeros", ylim=(0, 1))
    ax[2].legend(fontsize=8)
    m = "" if cfg.m is None else f", m = {cfg.m:.3g}"
    fig.suptitle(
        f"{cfg.activation}, s = {cfg.sparsity:.2f}{m}: theory vs {n_nets} networks of "
        f"width {width}",
        fontsize=10,
    )
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
    return path


def plot_q_star_scan(act, sparsity, q_stars, fixed_m, path, depth=50, width=300):
    """The maps against q*, with m scaled (m = mu_safe sqrt(q*): every curve on top of the
    others, by homogeneity) and with m fixed (Dent & Tanner's larger q*): V'(q*), kappa =
    d ln chi_1 / d ln q, the fraction p of units in the linear window, 1 - rho after ``depth``
    layers, and the finite-width gradient spread at ``width``. Writes ``path`` and the rows
    as ``path.json``; returns (path, rows)."""
    from .._io import write_json

    scaled = q_star_scan(act, sparsity, q_stars, m="scaled", depth=depth, width=width)
    fixed = q_star_scan(act, sparsity, q_stars, m=fixed_m, depth=depth, width=width)
    keys = (
        ("dV", "V'(q*)"),
        ("kappa", "d ln chi_1 / d ln q"),
        ("p_linear", "units in the linear window"),
        ("one_minus_rho", f"1 - rho after {depth} layers"),
        ("log_gain_sd", f"sd ln |g1|/|gL| (width {width})"),
    )
    fig = Figure(figsize=(3.2 * len(keys), 3.2))
    axes = fig.subplots(1, len(keys))
    for ax, (k, label) in zip(axes, keys):
        ax.plot([r["q_star"] for r in scaled], [r[k] for r in scaled], "o-", label="m scaled")
        ax.plot(
            [r["q_star"] for r in fixed], [r[k] for r in fixed], "s--", label=f"m = {fixed_m:g}"
        )
        ax.set(xscale="log", xlabel="q*", title=label)
        if k == "one_minus_rho":
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{act} at sparsity {sparsity:g}", fontsize=10)
    fig.tight_layout()
    path = save_figure(fig, path, dpi=90)
    write_json(Path(path).with_suffix(".json"), {"m_scaled": scaled, "m_fixed": fixed})
    return Path(path), {"m_scaled": scaled, "m_fixed": fixed}


def plot_finite_width(cfg, widths, depth, path, n_nets=40, seed=0):
    """Finite-width prediction (``finite_width``) against Monte Carlo on random networks
    (``simulate_gain``): the spread of v^L and of ln(|g^1| / |g^L|) against width."""
    pred_q, pred_g, mc_q, mc_g = [], [], [], []
    for n in widths:
        fw = finite_width(cfg, n, depth)
        sim = simulate_gain(cfg, depth, n, n_nets=n_nets, seed=seed)
        pred_q.append(fw.q_sd[-1])
        pred_g.append(fw.log_gain_sd)
        mc_q.append(float(np.std(sim["v_last"])))
        mc_g.append(float(np.std(sim["log_gain"])))
    fig = Figure(figsize=(8.4, 3.4))
    ax = fig.subplots(1, 2)
    for a, pred, mc, title in (
        (ax[0], pred_q, mc_q, f"sd of q at layer {depth}"),
        (ax[1], pred_g, mc_g, f"sd of ln |g1| / |g{depth}|"),
    ):
        a.plot(widths, pred, "-", label="finite-width theory")
        err = [m / np.sqrt(2 * n_nets) for m in mc]
        a.errorbar(widths, mc, yerr=err, fmt="o", capsize=3, label=f"{n_nets} random networks")
        a.set(xscale="log", yscale="log", xlabel="width", title=title)
        a.legend(fontsize=8)
    m = "" if cfg.m is None else f", m = {cfg.m:.3g}"
    fig.suptitle(f"{cfg.activation} at sparsity {cfg.sparsity:g}{m}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)
