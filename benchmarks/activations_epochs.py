"""Does training longer close the gap? ReLU against CReLU and CST at 85 % activation sparsity,
the default recipe of ``shrinkage activations train`` (depth 50, width 300, full MNIST) with
more epochs: the reproduction grid trains 3, the paper trains far longer (its budget is not in
our material), and the lever study found that more optimiser steps (smaller batches, no
warm-up) help the clipped activations most.

    python benchmarks/activations_epochs.py --epochs 12 --out runs/act_epochs   # ~45 min / core
    python benchmarks/activations_epochs.py --epochs 24 --width 600 --lr 1.5e-4 \
        --optimizer amsgrad --out runs/act_w600              # ~45 min per activation and core
    python benchmarks/activations_epochs.py --quick --out runs/x                 # seconds

Each activation is one ``shrinkage activations train --activation ACT --epochs E --out
OUT/ACT`` run (``--resume`` continues an interrupted one; a finished run with the same recipe
is read back). Writes ``epochs.json`` (per activation and epoch: test accuracy, mean test
sparsity and its worst layer's distance to the target, the flags) and ``epochs.png`` (test
accuracy per epoch, and the gap to ReLU per epoch), and prints the table. The cosine
schedule spans the whole budget, so epoch 3 of a 12-epoch run is not a 3-epoch run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matplotlib.figure import Figure

from shrinkage._io import save_figure, write_json
from shrinkage.experiments.activations import ActivationsRecipe, run_cached

ROWS = (("relu", None), ("crelu", 0.85), ("cst", 0.85))


def run(out, epochs, seed=0, quick=False, **changes) -> list[dict]:
    """Train (or read back) every row; returns one record per activation with its curve.
    ``changes``: recipe fields set for every row (width, lr, optimizer)."""
    out = Path(out)
    rows = []
    for act, s in ROWS:
        r = ActivationsRecipe(activation=act, sparsity=s, epochs=epochs, seed=seed, progress=False)
        r = r.replace(**changes)
        if quick:
            r = r.replace(depth=3, width=32, n_train=256, n_eval=128, batch_size=64)
        path = out / act
        r = r.replace(out=str(path))
        res = run_cached(r, resume=True)
        curve = [
            {
                "epoch": h["epoch"],
                "test_acc": h["test_acc"],
                "test_sparsity": h["test_sparsity_mean"],
                "worst_layer_error": (
                    None if s is None else max(abs(x - s) for x in h["test_sparsity_per_layer"])
                ),
            }
            for h in res["history"]
        ]
        rows.append({"activation": act, "sparsity": s, "curve": curve, "flags": res["flags"]})
        print(json.dumps({"activation": act, "test_acc": res["test_acc"]}), flush=True)
        write_json(out / "epochs.json", rows)
    plot(rows, out / "epochs.png", r.width)
    print(table(rows))
    return rows


def table(rows) -> str:
    """Markdown: test accuracy per epoch, one column per activation, and the gaps to ReLU."""
    by = {r["activation"]: {c["epoch"]: 100 * c["test_acc"] for c in r["curve"]} for r in rows}
    acts = [r["activation"] for r in rows]
    sparse = [a for a in acts if a != "relu"]
    head = "| epoch | " + " | ".join(acts) + " | " + " | ".join(f"{a} gap" for a in sparse) + " |"
    lines = [head, "|" + " ---: |" * (1 + len(acts) + len(sparse))]
    for e in sorted(by.get("relu", {})):
        cells = [f"{by[a][e]:.2f}" if e in by[a] else "" for a in acts]
        gaps = [f"{by[a][e] - by['relu'][e]:+.2f}" if e in by[a] else "" for a in sparse]
        lines.append(f"| {e:g} | " + " | ".join(cells + gaps) + " |")
    return "\n".join(lines)


def plot(rows, path, width=300):
    fig = Figure(figsize=(9, 3.6))
    ax = fig.subplots(1, 2)
    relu = {
        c["epoch"]: c["test_acc"] for r in rows if r["activation"] == "relu" for c in r["curve"]
    }
    for i, r in enumerate(rows):
        color = f"C{i}"  # one colour per activation in both panels
        e = [c["epoch"] for c in r["curve"]]
        acc = [100 * c["test_acc"] for c in r["curve"]]
        label = r["activation"] + ("" if r["sparsity"] is None else f" at {r['sparsity']:g}")
        ax[0].plot(e, acc, "o-", ms=3, color=color, label=label)
        if r["activation"] != "relu":
            pts = [(c["epoch"], 100 * (relu[c["epoch"]] - c["test_acc"])) for c in r["curve"]]
            pts = [p for p in pts if p[0] in relu]
            x, gap = [p[0] for p in pts], [p[1] for p in pts]
            ax[1].plot(x, gap, "o-", ms=3, color=color, label=label)
    title = f"depth 50, width {width}, one recipe"
    ax[0].set(xlabel="epoch", ylabel="test accuracy (%)", title=title)
    ax[1].set(xlabel="epoch", ylabel="points below ReLU", title="gap to ReLU (target: 1)")
    ax[1].axhline(1, color="k", lw=0.6, ls="--")
    for a in ax:
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=float, default=12.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=300, help="units per layer (default 300)")
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (default 3e-4)")
    p.add_argument("--optimizer", default="adam", help="adam | amsgrad | sgd (default adam)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--out", default="runs/act_epochs")
    a = p.parse_args(argv)
    if not a.epochs > 0:
        p.error(f"--epochs must be > 0, got {a.epochs}")
    changes = {"lr": a.lr, "optimizer": a.optimizer, "width": a.width}  # --quick: width 32
    run(a.out, 2.0 if a.quick else a.epochs, a.seed, a.quick, **changes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
