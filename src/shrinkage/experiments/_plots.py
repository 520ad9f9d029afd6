"""Figures of the experiments: training curves and sweep summaries (matplotlib's object API:
no pyplot, no backend switch; atomic writes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .._io import save_figure

# the accuracy's split as the figures name it
_SPLIT_NAMES = {"test": "test", "val": "validation"}


def plot_history(history: list[dict], path, title: str = "", split: str = "test") -> Path:
    """Loss, accuracy (on ``split``: "test" or "val") and sparsity per epoch."""
    ep = [h["epoch"] for h in history]
    fig = Figure(figsize=(12, 3.4))
    ax = fig.subplots(1, 3)
    ax[0].plot(ep, [h["train_loss"] for h in history], marker="o")
    ax[0].set(xlabel="epoch", ylabel="train loss", yscale="log")
    ax[1].plot(ep, [100 * h["test_acc"] for h in history], marker="o")
    ax[1].set(xlabel="epoch", ylabel=f"{_SPLIT_NAMES[split]} accuracy (%)")
    ax[2].plot(ep, [h["target_sparsity"] for h in history], label="scheduled", marker="o")
    ax[2].plot(ep, [h["sparsity"] for h in history], label="actual", ls="--")
    ax[2].set(xlabel="epoch", ylabel="sparsity")
    ax[2].legend()
    fig.suptitle(title)
    fig.tight_layout()
    out = save_figure(fig, path, dpi=90)
    return out


def plot_sweep(rows: list[dict], path_acc, path_macs, title: str = "") -> tuple[Path, Path]:
    """Accuracy vs sparsity and accuracy vs sparse MACs, one line per method (mean over seeds,
    bars from min to max); accuracy on the rows' ``eval_split`` (test when absent)."""
    methods = sorted({r["method"] for r in rows})
    split = _SPLIT_NAMES[rows[0].get("eval_split") or "test"] if rows else "test"
    outs = []
    for xkey, path, xlabel in (
        ("sparsity", path_acc, "sparsity (log scale of 1 - s)"),
        ("sparse_macs", path_macs, "MACs per image (sparse)"),
    ):
        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
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
        ax.set_ylabel(f"{split} accuracy (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        outs.append(save_figure(fig, path, dpi=90))
    return outs[0], outs[1]


def plot_training(res: dict, path):
    """Per-layer measured activation sparsity (train, test, target) and the learning curve."""
    fig = Figure(figsize=(10, 3.6))
    ax = fig.subplots(1, 2)
    layers = np.arange(1, len(res["test_sparsity_per_layer"]) + 1)
    ax[0].plot(layers, res["train_sparsity_per_layer"], label="train", lw=1)
    ax[0].plot(layers, res["test_sparsity_per_layer"], label="test", lw=1)
    if res["target_sparsity"] is not None:
        ax[0].axhline(res["target_sparsity"], color="k", ls="--", lw=0.8, label="target")
    ax[0].set(xlabel="layer", ylabel="fraction of exact zeros", ylim=(0, 1))
    ax[0].legend(fontsize=8)
    h = res["history"]
    if h:
        ax[1].plot([e["epoch"] for e in h], [e["test_acc"] for e in h], "o-", label="test acc")
        ax[1].plot(
            [e["epoch"] for e in h],
            [e["train_acc_running"] for e in h],
            "s--",
            label="train acc (running)",
        )
    ax[1].set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    ax[1].legend(fontsize=8)
    m = res["config"]["m"]
    fig.suptitle(
        f"{res['activation']} s={res['test_sparsity_mean']:.2f}"
        + (f" m={m:.3g}" if m else "")
        + f", depth {res['depth']}, width {res['width']}:"
        f" test acc {res['test_acc']:.3f}",
        fontsize=10,
    )
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
    return path


def plot_reproduction(summary: list[dict], path) -> Path:
    """Test accuracy per row of the reproduction grid (mean over seeds, each seed a dot), one
    panel per model and depth, the ReLU row as a dashed line; below, the measured activation
    sparsity of every row against its target."""
    panels = sorted({(r["model"], r["depth"]) for r in summary})
    fig = Figure(figsize=(max(6, 4.2 * len(panels)), 6.4))
    axes = np.atleast_2d(fig.subplots(2, len(panels), squeeze=False))
    for j, (model, depth) in enumerate(panels):
        rows = [r for r in summary if r["model"] == model and r["depth"] == depth]
        labels = list(dict.fromkeys(r["label"] for r in rows))
        acc = [[100 * r["test_acc"] for r in rows if r["label"] == lab] for lab in labels]
        sp = [[r["test_sparsity"] for r in rows if r["label"] == lab] for lab in labels]
        tgt = [next(r["target_sparsity"] for r in rows if r["label"] == lab) for lab in labels]
        x = np.arange(len(labels))
        ax, bx = axes[0, j], axes[1, j]
        ax.bar(x, [np.mean(a) for a in acc], color="0.75")
        for i, a in enumerate(acc):
            ax.plot([i] * len(a), a, "k.", ms=4)
        relu = [np.mean(a) for lab, a in zip(labels, acc) if lab.startswith("relu")]
        if relu:
            ax.axhline(relu[0], color="C3", ls="--", lw=1, label="ReLU")
            ax.legend(fontsize=8)
        ax.set(ylabel="test accuracy (%)", ylim=(0, 100), title=f"{model}, depth {depth}")
        ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
        bx.bar(x, [np.mean(s) for s in sp], color="0.75", label="measured (test)")
        bx.plot(x, [np.nan if t is None else t for t in tgt], "r_", ms=14, mew=2, label="target")
        bx.set(ylabel="activation sparsity", ylim=(0, 1))
        bx.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
        bx.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def plot_diagnostics(res: dict, path) -> Path:
    """Why a run trains or stalls, per layer: units dead on every input and units in the
    linear window (at initialisation and after each epoch), the gradient norm of each layer's
    weight (mean over each epoch's steps) and the measured sparsity against the target."""
    hist = [h for h in res["history"] if "census" in h]
    fig = Figure(figsize=(13, 3.4))
    ax = fig.subplots(1, 4)
    snaps = [("init", res.get("init_census"))] + [
        (f"epoch {h['epoch']}", h["census"]) for h in hist
    ]
    snaps = [(t, c) for t, c in snaps if c]
    for k, (title, key) in enumerate((("dead units", "dead"), ("in the linear window", "linear"))):
        for i, (label, census) in enumerate(snaps):
            ax[k].plot(
                range(1, len(census) + 1),
                [c[key] for c in census],
                lw=1,
                color=str(0.75 * (1 - i / max(len(snaps) - 1, 1))),
                label=label,
            )
        ax[k].set(xlabel="layer", title=title, ylim=(0, 1))
    if snaps:
        ax[0].legend(fontsize=7)
    for i, h in enumerate(hist):
        g = np.maximum(np.asarray(h["grad_norm_per_layer"]), 1e-30)
        ax[2].plot(
            range(1, len(g) + 1),
            g,
            lw=1,
            color=str(0.75 * (1 - i / max(len(hist) - 1, 1))),
            label=f"epoch {h['epoch']}",
        )
    ax[2].set(xlabel="layer", title="gradient norm of W", yscale="log")
    for i, h in enumerate(hist):
        sp = h["test_sparsity_per_layer"]
        ax[3].plot(
            range(1, len(sp) + 1),
            sp,
            lw=1,
            color=str(0.75 * (1 - i / max(len(hist) - 1, 1))),
            label=f"epoch {h['epoch']}",
        )
    if res["target_sparsity"] is not None:
        ax[3].axhline(res["target_sparsity"], color="r", ls="--", lw=0.8, label="target")
    ax[3].set(xlabel="layer", title="activation sparsity (test)", ylim=(0, 1))
    ax[3].legend(fontsize=7)
    fig.suptitle(
        f"{res['activation']}, depth {res['depth']}, width {res['width']}: test acc "
        f"{res['test_acc']:.3f}",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)
