"""The three sections of ``shrinkage report``: each runs its pillar at demo scale (or tiny,
with ``quick``) through the experiment functions of ``shrinkage.experiments``, and returns
a Section."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure as MplFigure

from ..activations import edge_of_chaos
from ..activations.plots import plot_maps
from ..codes.v1 import plot_atoms
from ..experiments import activations as act_experiments
from ..experiments.codes import compare, plot_tradeoff
from ..experiments.weights import TrainConfig
from ..experiments.weights import train_run as weights_train_run
from ._document import Figure, Section, Table

# Demo scale fits the 10-minute budget of `make demo` on 2 CPU cores; quick is for tests.
SCALES = {
    "weights": {
        "demo": dict(
            sparsities=(0.9, 0.95, 0.98), epochs=3, subset=None, test_subset=None, max_batches=None
        ),
        "quick": dict(
            sparsities=(0.5, 0.9), epochs=2, subset=2048, test_subset=500, max_batches=16
        ),
    },
    "codes": {
        "demo": dict(
            atoms=128,
            size=16,
            n_patches=6000,
            n_test=1000,
            thresholds=(0.25, 0.4, 0.6, 0.9),
            n_epochs=1,
        ),
        "quick": dict(
            atoms=16, size=8, n_patches=400, n_test=100, thresholds=(0.3, 0.8), n_epochs=1
        ),
    },
    "activations": {
        "demo": dict(depth=50, width=128, epochs=2.0, n_train=50000, n_eval=10000),
        "quick": dict(depth=8, width=32, epochs=1.0, n_train=1000, n_eval=500),
    },
}


def weights_section(seed: int = 0, quick: bool = False, progress: bool = True) -> Section:
    sc = SCALES["weights"]["quick" if quick else "demo"]
    t0 = time.perf_counter()
    s = Section(
        "weights", "Sparse weights: ST-3 vs gradual magnitude pruning (LeNet-300-100, MNIST)"
    )
    runs = _weights_runs(sc, seed, progress)
    s.numbers = {
        "runs": [{k: v for k, v in r.items() if k != "report"} for r in runs],
        "epochs": sc["epochs"],
        "seed": seed,
    }
    s.paragraphs.append(
        f"Each run trains LeNet-300-100 from scratch for {sc['epochs']} epoch(s) with the same "
        "optimiser and seed; the sparsity rises on a cubic schedule and the model is then "
        "squashed to a plain dense-format network, whose test accuracy is reported."
    )
    _weights_tables(s, runs)
    _weights_figure(s, runs)
    s.commands = [
        "shrinkage weights sweep --model lenet_300_100 --methods st3,st3sigma,gmp,hard_ste,"
        "soft_nograd --sparsities 0.9,0.95,0.98,0.99,0.995 --seeds 0,1 --epochs 20 "
        "--out runs/sweep_lenet300",
        "shrinkage weights train --model lenet5 --method st3 --sparsity 0.99 --epochs 20 "
        "--seed 0 --out runs/lenet5_st3_99",
    ]
    s.seconds = time.perf_counter() - t0
    return s


def _weights_runs(sc, seed, progress) -> list[dict]:
    """ST-3 and GMP at every sparsity of the scale, same recipe and seed."""
    runs = []
    for method in ("st3", "gmp"):
        for sparsity in sc["sparsities"]:
            cfg = TrainConfig(
                model="lenet_300_100",
                method=method,
                sparsity=sparsity,
                epochs=sc["epochs"],
                seed=seed,
                subset=sc["subset"],
                test_subset=sc["test_subset"],
                max_batches=sc["max_batches"],
                progress=progress,
            )
            res = weights_train_run(cfg)
            runs.append(
                {
                    "method": method,
                    "sparsity": sparsity,
                    "test_acc": res["test_acc_squashed"],
                    "measured_sparsity": res["sparsity"],
                    "dense_macs": res["dense_macs"],
                    "sparse_macs": res["sparse_macs"],
                    "seconds": res["seconds"],
                    "report": res["report"],
                }
            )
    return runs


def _weights_tables(s: Section, runs) -> None:
    s.tables.append(
        Table(
            "Test accuracy (squashed model) and MACs",
            [
                "method",
                "target sparsity",
                "measured sparsity",
                "test accuracy %",
                "sparse MACs",
                "dense MACs",
            ],
            [
                [
                    r["method"],
                    r["sparsity"],
                    round(r["measured_sparsity"], 4),
                    round(100 * r["test_acc"], 2),
                    int(r["sparse_macs"]),
                    int(r["dense_macs"]),
                ]
                for r in runs
            ],
        )
    )
    top = max((r for r in runs if r["method"] == "st3"), key=lambda r: r["sparsity"])
    layers = top["report"]["layers"]
    s.tables.append(
        Table(
            f"Per-layer sparsity and MACs, ST-3 at {top['sparsity']:.0%}",
            ["layer", "shape", "density", "dense MACs", "sparse MACs"],
            [
                [
                    ly["name"],
                    "x".join(map(str, ly["shape"])),
                    round(ly["density"], 4),
                    int(ly["dense_macs"]),
                    int(ly["sparse_macs"]),
                ]
                for ly in layers
            ],
        )
    )


def _weights_figure(s: Section, runs) -> None:
    fig = MplFigure(figsize=(6, 4))
    ax = fig.subplots()
    for method, style in (("st3", "o-"), ("gmp", "s--")):
        rs = [r for r in runs if r["method"] == method]
        ax.plot(
            [100 * r["sparsity"] for r in rs],
            [100 * r["test_acc"] for r in rs],
            style,
            label=method,
        )
    ax.set_xlabel("weight sparsity %")
    ax.set_ylabel("test accuracy %")
    ax.set_title("LeNet-300-100 on MNIST")
    ax.legend()
    ax.grid(alpha=0.3)
    s.add_figure(
        fig, "Test accuracy against weight sparsity, ST-3 and GMP, same recipe.", "accuracy"
    )


def codes_section(seed: int = 0, quick: bool = False, progress: bool = True) -> Section:
    sc = SCALES["codes"]["quick" if quick else "demo"]
    t0 = time.perf_counter()
    s = Section("codes", "Sparse codes: l1 vs CEL0 on natural-image patches")
    sizes = {k: v for k, v in sc.items() if k != "atoms"}  # fields of CompareRecipe
    res = compare(
        penalties=("l1", "cel0"),
        atoms=(sc["atoms"],),
        seed=seed,
        analyse=True,  # the V1 analyses of the dictionary nearest the middle error
        progress=progress,
        **sizes,
    )
    rows = res["rows"]
    s.numbers = {"rows": rows, "matched": res["matched"], "config": res["config"]}
    s.numbers["receptive_fields"] = _receptive_fields(rows)
    s.paragraphs.append(
        f"One dictionary of {sc['atoms']} atoms is learned per penalty and lam on "
        f"{sc['n_patches']} whitened {sc['size']}x{sc['size']} patches of the bundled natural "
        f"images; the curves are measured on {sc['n_test']} held-out patches."
    )
    _codes_tables(s, res)
    _receptive_fields_table(s, s.numbers["receptive_fields"])
    _codes_figures(s, res, sc["atoms"])
    s.commands = [
        "shrinkage codes compare --penalties l1,l0,l1/2,cel0 --atoms 256,512,1024 "
        "--out runs/codes_compare",
        "shrinkage codes learn --penalty cel0 --atoms 512 --lam 0.27 --patches 100000 "
        "--out runs/codes_cel0",
    ]
    s.seconds = time.perf_counter() - t0
    return s


def _codes_tables(s: Section, res: dict) -> None:
    rows = res["rows"]
    s.tables.append(
        Table(
            "Held-out relative error and active fraction",
            [
                "penalty",
                "lam",
                "relative error",
                "active fraction",
                "non-zeros per patch",
                "dead atoms",
            ],
            [
                [
                    r["penalty"],
                    round(r["lam"], 4),
                    round(r["relative_error"], 4),
                    round(r["active_fraction"], 4),
                    round(r["nonzeros_per_patch"], 2),
                    r["dead_atoms"],
                ]
                for r in rows
            ],
        )
    )
    matched = [m for m in res["matched"] if m.get("l1") and m.get("cel0")]
    if matched:
        s.tables.append(
            Table(
                "Active fraction each penalty needs at a matched relative error",
                ["relative error", "l1", "cel0", "l1 / cel0"],
                [
                    [
                        m["relative_error"],
                        round(m["l1"], 4),
                        round(m["cel0"], 4),
                        round(m["l1"] / m["cel0"], 2),
                    ]
                    for m in matched
                ],
            )
        )


# (key in the analysed row, column heading) of the receptive-field table
_V1_COLUMNS = (
    ("v1_gabor_fraction", "Gabor fit R^2 >= 0.8"),
    ("v1_r2_median", "median R^2"),
    ("v1_f_median", "median frequency (cycles/pixel)"),
    ("v1_nx_median", "median nx"),
    ("v1_ny_median", "median ny"),
    ("v1_selective_fraction", "orientation selective"),
    ("type_gabor", "type: Gabor/edge"),
    ("type_blob", "type: blob"),
    ("type_low-frequency", "type: low-frequency"),
    ("type_unstructured", "type: unstructured"),
)


def _receptive_fields(rows) -> list[dict]:
    """The rows the V1 analyses were run on (one per penalty), with their summaries."""
    keep = ("penalty", "lam", "relative_error", "active_fraction")
    return [
        {k: r[k] for k in keep + tuple(c for c, _ in _V1_COLUMNS) if k in r}
        for r in rows
        if "v1_gabor_fraction" in r
    ]


def _receptive_fields_table(s: Section, analysed: list[dict]) -> None:
    if not analysed:
        return
    s.paragraphs.append(
        "Receptive fields of the dictionary nearest the middle error, per penalty: 2-D Gabor "
        "fits (Ringach 2002: nx, ny are the envelope widths in cycles), orientation tuning "
        "to gratings, and each atom's type (shrinkage.codes.v1)."
    )
    s.tables.append(
        Table(
            "Receptive fields (fractions of the atoms, medians over the well-fit ones)",
            ["penalty", "relative error", "active fraction"] + [h for _, h in _V1_COLUMNS],
            [
                [r["penalty"], round(r["relative_error"], 4), round(r["active_fraction"], 4)]
                + [round(float(r[c]), 3) if r.get(c) is not None else "" for c, _ in _V1_COLUMNS]
                for r in analysed
            ],
        )
    )


def _codes_figures(s: Section, res: dict, atoms: int) -> None:
    """The trade-off curves and the atoms of the CEL0 dictionary the receptive-field table
    describes (the one the V1 analyses ran on), else the one nearest the median error."""
    rows = res["rows"]
    cel0 = [r for r in rows if r["penalty"] == "cel0"]
    analysed = [r for r in cel0 if "v1_gabor_fraction" in r]
    if analysed:  # picking the median again could break a tie the other way: another lam
        best = analysed[0]
    else:
        mid = np.median([q["relative_error"] for q in cel0])
        best = min(cel0, key=lambda r: abs(r["relative_error"] - mid))
    D = res["dictionaries"][("cel0", atoms, best["threshold"])]
    with tempfile.TemporaryDirectory() as tmp:
        plot_tradeoff(rows, Path(tmp) / "tradeoff.png")
        plot_atoms(D, Path(tmp) / "atoms.png", max_atoms=64)
        s.figures.append(
            Figure(
                "Held-out relative error against the fraction of active coefficients: "
                "lower-left is better.",
                (Path(tmp) / "tradeoff.png").read_bytes(),
                "codes_tradeoff.png",
            )
        )
        s.figures.append(
            Figure(
                f"CEL0 atoms (lam={best['lam']:.3g}): the first 64 atoms of the dictionary, "
                "each scaled to its own range.",
                (Path(tmp) / "atoms.png").read_bytes(),
                "codes_atoms.png",
            )
        )


def activations_section(seed: int = 0, quick: bool = False, progress: bool = True) -> Section:
    sc = SCALES["activations"]["quick" if quick else "demo"]
    t0 = time.perf_counter()
    s = Section("activations", "Sparse activations: CST at 85 % at the edge of chaos")
    _eoc_config(s)
    _activations_training(s, sc, seed, progress)
    s.commands = [
        "shrinkage activations eoc --activation cst --sparsity 0.85 --out runs/eoc_cst",
        "shrinkage activations theory --activation cst --sparsity 0.85 --depth 50 --width 300 "
        "--out runs/theory_cst",
        # deep sparse activations need width (docs/activations-results.md)
        "shrinkage activations train --activation cst --sparsity 0.85 --depth 20 --width 2048 "
        "--out runs/act_cst85_wide",
        "shrinkage activations reproduce --out runs/act_grid",
    ]
    s.seconds = time.perf_counter() - t0
    return s


def _eoc_config(s: Section) -> None:
    """CST at 85 %, q* = 1, the largest safe m: the configuration and its maps."""
    cfg = edge_of_chaos("cst", 0.85, q_star=1.0, m="safe")
    s.numbers["config"] = {
        k: getattr(cfg, k)
        for k in (
            "activation",
            "sparsity",
            "q_star",
            "tau",
            "m",
            "sigma_w",
            "sigma_b",
            "chi",
            "dV",
            "d2V",
            "stable",
        )
    }
    s.numbers["config"]["fixed_points"] = [str(p) for p in cfg.fixed_points]
    s.paragraphs.append(str(cfg))
    s.tables.append(
        Table(
            "Edge-of-chaos configuration (q* = 1, largest safe m)",
            ["quantity", "value"],
            [[k, v] for k, v in s.numbers["config"].items() if k not in ("fixed_points",)],
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        paths = plot_maps(cfg, Path(tmp))
        for i, p in enumerate(paths if isinstance(paths, list | tuple) else [paths]):
            p = Path(p)
            s.figures.append(
                Figure(_MAP_CAPTIONS.get(i, p.stem), p.read_bytes(), f"activations_{p.stem}.png")
            )


def _activations_training(s: Section, sc: dict, seed: int, progress: bool) -> None:
    """A short MNIST run of the configuration: accuracy and activation sparsity per layer."""
    res = act_experiments.train_run("cst", 0.85, seed=seed, progress=progress, threads=None, **sc)
    keep = (
        "depth",
        "width",
        "epochs",
        "test_acc",
        "train_acc",
        "test_sparsity_mean",
        "train_sparsity_mean",
        "diverged",
        "seconds",
        "recipe",
    )
    s.numbers["training"] = {k: res[k] for k in keep}
    s.numbers["training"]["test_sparsity_per_layer"] = res["test_sparsity_per_layer"]
    s.tables.append(
        Table(
            f"Short training run: depth {res['depth']}, width {res['width']}, "
            f"{res['epochs']} epoch(s), MNIST",
            [
                "test accuracy %",
                "train accuracy %",
                "test activation sparsity",
                "train activation sparsity",
                "target",
            ],
            [
                [
                    round(100 * res["test_acc"], 2),
                    round(100 * res["train_acc"], 2),
                    round(res["test_sparsity_mean"], 4),
                    round(res["train_sparsity_mean"], 4),
                    0.85,
                ]
            ],
        )
    )
    fig = MplFigure(figsize=(6, 3.5))
    ax = fig.subplots()
    sp = res["test_sparsity_per_layer"]
    ax.plot(range(1, len(sp) + 1), sp, ".-", label="measured (test set)")
    ax.axhline(0.85, color="k", ls=":", label="target 0.85")
    ax.set_ylim(0, 1)
    ax.set_xlabel("layer")
    ax.set_ylabel("fraction of exact zeros")
    ax.legend()
    ax.grid(alpha=0.3)
    s.add_figure(fig, "Activation sparsity per layer after training, on the test set.", "sparsity")


_MAP_CAPTIONS = {
    0: "V(q) - q for several clipping levels m, each at its own edge of chaos: a zero is a "
    "fixed point of the variance map; only up to the safe m is q* the single one.",
    1: "V'(q*) and V''(q*) against the clipping level m.",
}

SECTIONS = {"weights": weights_section, "codes": codes_section, "activations": activations_section}
