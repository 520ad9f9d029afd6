"""Does width close the gap? ReLU against CReLU and CST at 85 % activation sparsity, one
recipe, at several widths: the finite-width theory says the per-layer gradient noise of a
sparse activation is (3 / p - 1) / N, p the fraction of units in the linear window (0.14
here, against 0.5 for ReLU), so the gap to ReLU at the same width should shrink as the
width grows.

    python benchmarks/activations_width.py --out runs/act_width        # ~1.5 h on one core
    python benchmarks/activations_width.py --quick --out runs/x         # seconds

Writes ``width.json`` (every run: width, activation, test accuracy, sparsity, the predicted
gradient spread) and ``width.png`` (accuracy and gap to ReLU against width), and prints the
table; each run's folder is reused when its recipe matches (resumable).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matplotlib.figure import Figure

from shrinkage._io import save_figure, write_json
from shrinkage.experiments.activations import ActivationsRecipe, run_cached

ROWS = (("relu", None), ("crelu", 0.85), ("cst", 0.85))


def run(out, widths, depth, n_train, epochs, seeds, lr, batch_size):
    out = Path(out)
    rows = []
    for seed in seeds:
        for width in widths:
            for act, s in ROWS:
                r = ActivationsRecipe(
                    activation=act,
                    sparsity=s,
                    depth=depth,
                    width=width,
                    epochs=epochs,
                    n_train=n_train,
                    n_eval=10_000,
                    seed=seed,
                    lr=lr,
                    batch_size=batch_size,
                    progress=False,
                )
                path = out / f"{act}_w{width}_s{seed}"
                r = r.replace(out=str(path))
                res = run_cached(r)
                rows.append(
                    {
                        "activation": act,
                        "width": width,
                        "seed": seed,
                        "test_acc": res["test_acc"],
                        "test_sparsity": res["test_sparsity_mean"],
                        "predicted_log_gain_sd": res["predicted_log_gain_sd"],
                        "flags": res["flags"],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
                write_json(out / "width.json", rows)
    plot(rows, out / "width.png", depth)
    return rows


def plot(rows, path, depth):
    fig = Figure(figsize=(9, 3.6))
    ax = fig.subplots(1, 2)
    widths = sorted({r["width"] for r in rows})

    def mean(act, w):
        v = [r["test_acc"] for r in rows if r["activation"] == act and r["width"] == w]
        return 100 * sum(v) / len(v)

    for act, _ in ROWS:
        ax[0].plot(widths, [mean(act, w) for w in widths], "o-", label=act)
        if act != "relu":
            ax[1].plot(
                widths,
                [mean("relu", w) - mean(act, w) for w in widths],
                "o-",
                label=f"{act} at 85 %",
            )
    ax[0].set(
        xscale="log", xlabel="width", ylabel="test accuracy (%)", title=f"depth {depth}, one recipe"
    )
    ax[1].set(
        xscale="log",
        xlabel="width",
        ylabel="points below ReLU at the same width",
        title="gap to ReLU",
    )
    ax[1].axhline(0, color="k", lw=0.5)
    for a in ax:
        a.set_xticks(widths, [str(w) for w in widths])
        a.minorticks_off()
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", default="128,256,512,1024")
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--n-train", type=int, default=20_000)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--seeds", default="0")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--out", default="runs/act_width")
    a = p.parse_args(argv)
    widths = [int(w) for w in a.widths.split(",") if w.strip()]
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    if a.quick:
        widths, a.depth, a.n_train, a.epochs = [16, 32], 3, 500, 0.5
    run(a.out, widths, a.depth, a.n_train, a.epochs, seeds, a.lr, a.batch_size)


if __name__ == "__main__":
    main()
