"""Figures of the weights pillar: training curves and sweep summaries (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

from .._io import save_figure


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: list[dict], path, title: str = "") -> Path:
    """Loss, test accuracy and sparsity per epoch."""
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    ax[0].plot(ep, [h["train_loss"] for h in history], marker="o")
    ax[0].set(xlabel="epoch", ylabel="train loss", yscale="log")
    ax[1].plot(ep, [100 * h["test_acc"] for h in history], marker="o")
    ax[1].set(xlabel="epoch", ylabel="test accuracy (%)")
    ax[2].plot(ep, [h["target_sparsity"] for h in history], label="scheduled", marker="o")
    ax[2].plot(ep, [h["sparsity"] for h in history], label="actual", ls="--")
    ax[2].set(xlabel="epoch", ylabel="sparsity")
    ax[2].legend()
    fig.suptitle(title)
    fig.tight_layout()
    out = save_figure(fig, path, dpi=90)
    plt.close(fig)
    return out


def plot_sweep(rows: list[dict], path_acc, path_macs, title: str = "") -> tuple[Path, Path]:
    """Accuracy vs sparsity and accuracy vs sparse MACs, one line per method (mean over seeds,
    bars from min to max)."""
    import numpy as np

    plt = _plt()
    methods = sorted({r["method"] for r in rows})
    outs = []
    for xkey, path, xlabel in (
        ("sparsity", path_acc, "sparsity (log scale of 1 - s)"),
        ("sparse_macs", path_macs, "MACs per image (sparse)"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        all_x = set()
        for m in methods:
            by_s: dict[float, list] = {}
            for r in rows:
                if r["method"] == m:
                    by_s.setdefault(r["sparsity"], []).append(r)
            ss = sorted(by_s)
            acc = [np.array([100 * r["test_acc"] for r in by_s[s]]) for s in ss]
            xs = [np.mean([r[xkey] for r in by_s[s]]) for s in ss]
            if xkey == "sparsity":
                xs = [1 - x for x in xs]
            all_x.update(xs)
            mean = np.array([a.mean() for a in acc])
            lo = mean - np.array([a.min() for a in acc])
            hi = np.array([a.max() for a in acc]) - mean
            ax.errorbar(xs, mean, yerr=[lo, hi], marker="o", capsize=3, label=m)
        if len(all_x) > 1:
            ax.set_xscale("log")
        if xkey == "sparsity":
            ax.invert_xaxis()
            ax.set_xlabel("density 1 - s (log; sparser to the right)")
        else:
            ax.set_xlabel(xlabel + " (log)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        outs.append(save_figure(fig, path, dpi=90))
        plt.close(fig)
    return outs[0], outs[1]
