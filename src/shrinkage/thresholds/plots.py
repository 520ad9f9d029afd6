"""Figure of the family: each prox (as a shrinkage map), each activation, each penalty.

Figures are built with matplotlib's object API (no pyplot, no backend switch), so they can be
drawn from a notebook or a server alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .._checks import check_nonnegative
from .._io import save_figure
from ._activations import ACTIVATIONS
from ._api import penalty, prox, threshold
from ._penalties import PENALTIES

__all__ = ["operators_figure", "plot_operators"]

_PARAMS = {"cel0": {"a": 0.7}}


def operators_figure(lam: float = 1.0, tau: float = 1.0, m: float = 1.5) -> Figure:
    """A 4-panel figure: every registered penalty's prox and value at ``lam``, and the
    activations at ``tau`` (clipped at ``m``)."""
    check_nonnegative("lam", lam)
    x = np.linspace(-4, 4, 2001)
    fig = Figure(figsize=(13, 10))
    axes = fig.subplots(2, 2)
    ax_prox, ax_pen, ax_relu, ax_st = axes.ravel()
    for name in PENALTIES:
        p = _PARAMS.get(name, {})
        label = f"{name} (zero below {threshold(name, lam, **p):.2f})"
        ax_prox.plot(x, prox(name, x, lam, **p), label=label)
        ax_pen.plot(x, penalty(name, x, lam, **p), label=name)
    ax_prox.plot(x, x, "k:", lw=0.8, label="identity")
    ax_prox.set_title(f"prox as a shrinkage map: lam={lam:g}, step=1 (cel0: a=0.7)")
    ax_pen.set_title(f"penalty G(u), lam={lam:g}")
    ax_pen.set_ylim(-0.1, 3.5)
    # Clipped activations drawn dashed over their unclipped parents.
    for ax, names in (
        (ax_relu, ("shifted_relu", "clipped_relu")),
        (ax_st, ("soft_threshold", "clipped_soft_threshold")),
    ):
        ax.plot(
            x,
            np.maximum(x, 0) if ax is ax_relu else x,
            "k:",
            lw=0.8,
            label="relu" if ax is ax_relu else "identity",
        )
        for name in names:
            fn = ACTIVATIONS[name]
            clipped = name.startswith("clipped")
            y = fn(x, tau, m) if clipped else fn(x, tau)
            ax.plot(x, y, "--" if clipped else "-", lw=2.2 if not clipped else 1.8, label=name)
        ax.set_title(f"activations: tau={tau:g}, m={m:g}")
    for ax in axes.ravel():
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlabel("x")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_operators(out, lam: float = 1.0, tau: float = 1.0, m: float = 1.5) -> Path:
    """Write ``operators_figure`` as a PNG at ``out`` (atomically); returns the path."""
    return save_figure(operators_figure(lam, tau, m), out, dpi=110)
