"""Figure of the family: each prox (as a shrinkage map), each activation, each penalty."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._checks import check_nonnegative
from .._io import save_figure
from ._activations import ACTIVATIONS
from ._api import penalty, prox, threshold
from ._penalties import PENALTIES

_PARAMS = {"cel0": {"a": 0.7}}


def plot_operators(out, lam: float = 1.0, tau: float = 1.0, m: float = 1.5) -> Path:
    """Write a 3-panel PNG: proxes, activations (tau, m) and penalty values; returns the path."""
    check_nonnegative("lam", lam)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.linspace(-4, 4, 2001)
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    for name in PENALTIES:
        p = _PARAMS.get(name, {})
        label = f"{name} (zero below {threshold(name, lam, **p):.2f})"
        axes[0].plot(x, prox(name, x, lam, **p), label=label)
        axes[2].plot(x, penalty(name, x, lam, **p), label=name)
    axes[0].plot(x, x, "k:", lw=0.8, label="identity")
    axes[0].set_title(f"prox, lam={lam:g}, step=1 (cel0: a=0.7)")
    for name, fn in ACTIVATIONS.items():
        y = fn(x, tau, m) if name.startswith("clipped") else fn(x, tau)
        axes[1].plot(x, y, label=name)
    axes[1].set_title(f"activations, tau={tau:g}, m={m:g}")
    axes[2].set_title(f"penalty G(u), lam={lam:g}")
    axes[2].set_ylim(-0.1, 3.5)
    for ax in axes:
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlabel("x")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = save_figure(fig, out, dpi=110)
    plt.close(fig)
    return path
