"""ST-3 against its ablations and the methods it claims to beat (STR, RigL, GMP) on MNIST.

Issue 15. For each model: tune one learning rate per method on MNIST's held-out validation
images (the last 10k of the 60k training images; the test images are not read), at one
sparsity and a shorter budget; then train every method at every sparsity and seed with its
learning rate and the one recipe of :class:`~shrinkage.experiments.weights.TrainConfig`, plus
the dense model, plus variants of one method with one recipe field changed (``--variants``,
e.g. ``st3:scope=layer``: the layer-wise threshold spreads sparsity, hence MACs, differently;
``st3:rescale=off`` and ``st3:schedule=constant``: two of ST-3's ingredients taken out; row
``st3/scope=layer``, run with the lr tuned for st3, at the preset's variant sparsities).
Writes under ``--out``: ``tune/`` and ``final/`` (``shrinkage weights sweep`` folders, with
``sweep.csv`` and its plots) and per model ``<model>_summary.json``, ``<model>_table.md``
(accuracy mean and standard deviation, the paired differences to st3 per seed, the MACs each
method needs to stay within 0.5 point of dense, the tuning grid) and
``<model>_acc_vs_macs.png``; calls for different ``--models`` can share ``--out``.

    python benchmarks/weights_competitors.py --preset reduced --threads 1 --out runs/comp_reduced
    python benchmarks/weights_competitors.py --preset full --threads 1 --out runs/comp_full
    python benchmarks/weights_competitors.py --preset reduced --seeds 0,1,2 --threads 1 \
        --out runs/comp_reduced   # three seeds
    python benchmarks/weights_competitors.py --quick --out runs/comp_quick   # smoke run
    python benchmarks/weights_competitors.py --preset full --report-only --out runs/comp_full

Finished runs are reused (an interrupted call resumes); each stage prints what it does.
``--report-only`` trains nothing: it writes the tables and plots of the runs already finished
under ``--out`` (a grid run partly, e.g. a variant at some seeds only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from shrinkage._io import save_figure, write_json, write_text
from shrinkage.experiments.recipe import comma_list
from shrinkage.experiments.weights import TrainConfig, summarize, sweep

ALL = ("st3", "st3sigma", "hard_ste", "soft_nograd", "gmp", "str", "rigl")
PRESETS = {
    # about 45 minutes of one core: LeNet-300-100 only, one seed, short schedules
    "reduced": {
        "models": {"lenet_300_100": (ALL, (0.98, 0.995), (0,))},
        "epochs": 8,
        "tune_epochs": 3,
        "variant_sparsities": (0.995,),
    },
    # the comparison: 20 epochs, 3 seeds (LeNet-5: its 5 methods plus st3sigma, whose
    # per-layer scaling moves MACs between layers only where layers differ, 2 seeds)
    "full": {
        "models": {
            "lenet_300_100": (ALL, (0.98, 0.99, 0.995), (0, 1, 2)),
            "lenet5": (
                ("st3", "st3sigma", "hard_ste", "gmp", "str", "rigl"),
                (0.99, 0.995),
                (0, 1),
            ),
        },
        "epochs": 20,
        "tune_epochs": 8,
        "variant_sparsities": None,  # every sparsity of the model
    },
}
VARIANTS = ("st3:scope=layer", "st3:rescale=off", "st3:schedule=constant")
TUNE_SPARSITY = 0.99
LRS = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8)
QUICK = {"subset": 512, "test_subset": 200, "max_batches": 4, "batch_size": 64}


def _runs(train, cfg, model, methods, sparsities, seeds, folder: Path, data=None) -> list:
    """``sweep``'s rows; with ``train`` False only the finished runs of that grid already in
    ``folder`` (nothing is trained)."""
    if train:
        return sweep(cfg, [model], methods, sparsities, seeds, folder, data=data)
    if not folder.is_dir():
        return []
    sps, seeds = {float(s) for s in sparsities}, {int(x) for x in seeds}
    return [
        r
        for r in summarize(folder)
        if r["model"] == model
        and r["method"] in methods
        and float(r["sparsity"]) in sps
        and int(r["seed"]) in seeds
    ]


def tune(model, methods, lrs, base: TrainConfig, out: Path, data=None, train=True) -> dict:
    """Validation accuracy of every (method, lr) at TUNE_SPARSITY (dense at 0); returns
    ``{method: {"lr": best, "val_acc": {lr: acc}}}``, the best being the first highest."""
    grid: dict[str, dict] = {}
    for lr in lrs:
        folder = out / "tune" / model / f"lr{lr:g}"
        cfg = base.replace(lr=lr, eval_split="val")
        print(f"tune {model} lr {lr:g}: {', '.join(methods)} + dense", flush=True)
        rows = _runs(train, cfg, model, methods, [TUNE_SPARSITY], [0], folder, data)
        rows += _runs(train, cfg, model, ["dense"], [0.0], [0], folder, data)
        for r in rows:
            grid.setdefault(r["method"], {})[lr] = r["test_acc"]  # on the validation images
    return {
        m: {"lr": max(accs, key=lambda lr: (accs[lr], -lrs.index(lr))), "val_acc": accs}
        for m, accs in grid.items()
    }


def parse_variant(spec: str) -> tuple[str, str, str]:
    """``"st3:scope=layer"`` -> ``("st3", "scope", "layer")``."""
    method, _, change = spec.partition(":")
    key, _, value = change.partition("=")
    if method not in ALL or not key or not value:
        raise ValueError(f"a variant is METHOD:FIELD=VALUE with METHOD in {ALL}, got {spec!r}")
    return method, key, value


def final(
    model,
    methods,
    sparsities,
    seeds,
    lrs: dict,
    base,
    out: Path,
    variants=(),
    data=None,
    train=True,
) -> list:
    """Every method at every sparsity and seed with its tuned lr (test accuracy), dense, and
    the ``variants`` ``(method, field, value, sparsities)`` (rows ``<method>/<field>=<value>``,
    the method's lr); with ``train`` False, the finished ones only."""
    folder = out / "final" / model
    for m in methods:
        print(f"final {model} {m} lr {lrs[m]['lr']:g}", flush=True)
        _runs(train, base.replace(lr=lrs[m]["lr"]), model, [m], sparsities, seeds, folder, data)
    print(f"final {model} dense lr {lrs['dense']['lr']:g}", flush=True)
    dense_cfg = base.replace(lr=lrs["dense"]["lr"])
    _runs(train, dense_cfg, model, ["dense"], [0.0], seeds, folder, data)
    rows = summarize(folder) if folder.is_dir() else []
    for m, key, value, sps in variants:
        if m not in methods:
            continue
        print(f"final {model} {m} {key}={value} lr {lrs[m]['lr']:g}", flush=True)
        cfg = base.replace(lr=lrs[m]["lr"], **{key: type(getattr(base, key))(value)})
        where = out / "final" / f"{model}_{key}={value}"
        for r in _runs(train, cfg, model, [m], sps, seeds, where, data):
            rows.append({**r, "method": f"{m}/{key}={value}"})
    return rows


def _cells(rows, method, s):
    return sorted(
        (r for r in rows if r["method"] == method and float(r["sparsity"]) == s),
        key=lambda r: int(r["seed"]),
    )


def summary(rows: list[dict]) -> dict:
    """Per method and sparsity: accuracies by seed, mean, sd (ddof 1), MACs; per method: the
    paired differences st3 - method (same seed); the dense model; the least MACs within 0.5
    point of the dense mean."""
    dense = [100 * r["test_acc"] for r in rows if r["method"] == "dense"]
    names = list(dict.fromkeys(r["method"] for r in rows))
    order = [x for m in ALL for x in (m, *sorted(n for n in names if n.startswith(m + "/")))]
    methods = [m for m in order if m in names]
    sps = sorted({float(r["sparsity"]) for r in rows if r["method"] != "dense"})
    out = {"dense": {"acc": dense, "mean": float(np.mean(dense)) if dense else None}}
    out["dense_macs"] = rows[0]["dense_macs"] if rows else None
    cells = {}
    for m in methods:
        for s in sps:
            hit = _cells(rows, m, s)
            if not hit:
                continue
            acc = [100 * r["test_acc"] for r in hit]
            ref = {int(r["seed"]): 100 * r["test_acc"] for r in _cells(rows, "st3", s)}
            cells[f"{m}@{s:g}"] = {
                "method": m,
                "sparsity": s,
                "seeds": [int(r["seed"]) for r in hit],
                "acc": acc,
                "mean": float(np.mean(acc)),
                "sd": float(np.std(acc, ddof=1)) if len(acc) > 1 else None,
                "sparse_macs": float(np.mean([float(r["sparse_macs"]) for r in hit])),
                # seeds whose loss blew up (the accuracy is where training stopped)
                "diverged": [int(r["seed"]) for r in hit if str(r.get("diverged")) == "True"],
                "st3_minus": [
                    ref[int(r["seed"])] - 100 * r["test_acc"] for r in hit if int(r["seed"]) in ref
                ],
            }
    out["cells"] = cells
    budget = {}
    for m in methods:
        ok = [
            c["sparse_macs"]
            for c in cells.values()
            if c["method"] == m
            and dense
            and not c["diverged"]
            and c["mean"] >= out["dense"]["mean"] - 0.5
        ]
        budget[m] = min(ok) if ok else None
    out["macs_within_half_point"] = budget
    out["methods"], out["sparsities"] = methods, sps
    return out


def table(model: str, summ: dict, tuned: dict) -> str:
    """The Markdown tables of one model (see the module docstring)."""
    sps, methods, cells = summ["sparsities"], summ["methods"], summ["cells"]
    d = summ["dense"]
    lines = [
        f"**{model}**: dense {d['mean']:.2f} % (by seed: "
        f"{' / '.join(f'{a:.2f}' for a in d['acc'])}, lr {tuned['dense']['lr']:g}, "
        f"{summ['dense_macs']:,.0f} MACs)",
        "",
        "| method | lr | " + " | ".join(f"s = {s:g}: acc % (MACs)" for s in sps) + " |",
        "|" + " --- |" * (len(sps) + 2),
    ]
    for m in methods:
        row = []
        for s in sps:
            c = cells.get(f"{m}@{s:g}")
            if c is None:
                row.append("")
                continue
            sd = f" ± {c['sd']:.2f}" if c["sd"] is not None else ""
            seeds = f" ({'/'.join(f'{a:.2f}' for a in c['acc'])})" if len(c["acc"]) > 1 else ""
            bad = f", diverged: seed {'/'.join(map(str, c['diverged']))}" if c["diverged"] else ""
            row.append(f"{c['mean']:.2f}{sd}{seeds} ({c['sparse_macs'] / 1e3:.1f}k{bad})")
        lr = tuned[m.split("/")[0]]["lr"]
        lines.append(f"| {m} | {lr:g} | " + " | ".join(row) + " |")
    lines += ["", "st3 minus method, points, per seed (positive: st3 better):", ""]
    lines += ["| method | " + " | ".join(f"s = {s:g}" for s in sps) + " |"]
    lines += ["|" + " --- |" * (len(sps) + 1)]
    for m in methods:
        if m == "st3":
            continue
        row = []
        for s in sps:
            c = cells.get(f"{m}@{s:g}")
            diffs = c["st3_minus"] if c else []
            mean = f" (mean {np.mean(diffs):+.2f})" if len(diffs) > 1 else ""
            row.append(" / ".join(f"{x:+.2f}" for x in diffs) + mean)
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    lines += ["", "Least sparse MACs with mean accuracy within 0.5 point of dense:", ""]
    lines += ["| method | MACs | share of dense |", "| --- | --- | --- |"]
    for m in methods:
        v = summ["macs_within_half_point"][m]
        if v is None:
            lines.append(f"| {m} | none of these runs | |")
        else:
            lines.append(f"| {m} | {v:,.0f} | {100 * v / summ['dense_macs']:.2f} % |")
    lrs = sorted({lr for t in tuned.values() for lr in t["val_acc"]})
    lines += ["", f"Tuning (validation accuracy %, s = {TUNE_SPARSITY:g}, dense at 0):", ""]
    lines += ["| method | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " | chosen |"]
    lines += ["|" + " --- |" * (len(lrs) + 2)]
    for m in [*(m for m in methods if "/" not in m), "dense"]:
        accs = tuned[m]["val_acc"]
        cells_ = [f"{100 * accs[lr]:.2f}" if lr in accs else "" for lr in lrs]
        lines.append(f"| {m} | " + " | ".join(cells_) + f" | {tuned[m]['lr']:g} |")
    return "\n".join(lines)


def plot(model: str, summ: dict, path: Path, span: float = 5.0) -> Path:
    """Accuracy against sparse MACs (log), one line per method (mean, bars min to max over
    seeds), the dense model and the dense - 0.5 point line. The axis shows ``span`` points
    below dense; a cell further below (a collapsed run) is a triangle on the lower edge,
    labelled with its accuracy, so that it does not flatten the others."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    d = summ["dense"]["mean"]
    means = [c["mean"] for c in summ["cells"].values()]
    floor = None
    if d is not None and means and min(means) < d - span:
        floor = min([m for m in means if m >= d - span] + [d - 0.5]) - 0.2
    for i, m in enumerate(summ["methods"]):
        cs = sorted(
            (c for c in summ["cells"].values() if c["method"] == m), key=lambda c: c["sparsity"]
        )
        shown = [c for c in cs if floor is None or c["mean"] >= floor]
        x = [c["sparse_macs"] for c in shown]
        mean = np.array([c["mean"] for c in shown])
        lo = mean - np.array([min(c["acc"]) for c in shown])
        hi = np.array([max(c["acc"]) for c in shown]) - mean
        color = f"C{i % 10}"
        ax.errorbar(x, mean, yerr=[lo, hi], marker="o", capsize=3, color=color, label=m)
        for c in cs:
            if floor is not None and c["mean"] < floor:
                ax.plot([c["sparse_macs"]], [floor], "v", color=color, ms=8, clip_on=False)
                ax.annotate(f"{c['mean']:.1f} %", (c["sparse_macs"], floor), color=color,
                            xytext=(4, 4), textcoords="offset points", fontsize=7)  # fmt: skip
    if d is not None:
        ax.axhline(d, color="k", lw=0.8, label=f"dense ({summ['dense_macs']:,.0f} MACs)")
        ax.axhline(d - 0.5, color="k", lw=0.8, ls="--", label="dense - 0.5 point")
    if floor is not None:
        ax.set_ylim(floor, d + 0.3)
    ax.set_xscale("log")
    ax.set(xlabel="sparse MACs per image (log)", ylabel="test accuracy (%)", title=model)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="reduced")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (not a measurement)")
    p.add_argument("--models", type=comma_list(str), help="only these models of the preset")
    p.add_argument("--methods", type=comma_list(str), help="only these methods")
    p.add_argument("--lrs", type=comma_list(float), default=LRS, help="the tuning grid")
    p.add_argument(
        "--variants",
        type=comma_list(str),
        default=VARIANTS,
        help="METHOD:FIELD=VALUE runs, with the method's tuned lr (a field of TrainConfig)",
    )
    p.add_argument("--no-variants", action="store_true", help="no variant runs (methods only)")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: the tables and plots of the finished runs under --out",
    )
    p.add_argument(
        "--seeds", type=comma_list(int), help="these seeds instead of the preset's (e.g. 0,1,2)"
    )
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="runs/competitors")
    args = p.parse_args(argv)
    preset = PRESETS[args.preset]
    out = Path(args.out)
    common = {"threads": args.threads, "progress": False}
    epochs, tune_epochs = preset["epochs"], preset["tune_epochs"]
    if args.quick:
        common.update(QUICK)
        epochs = tune_epochs = 1
    texts = []
    for model, (methods, sparsities, seeds) in preset["models"].items():
        if args.models and model not in args.models:
            continue
        methods = [m for m in methods if not args.methods or m in args.methods]
        if args.seeds:
            seeds = tuple(args.seeds)
        if args.quick:
            sparsities, seeds = sparsities[:1], seeds[:1]
        base = TrainConfig(model=model, epochs=tune_epochs, **common)
        train = not args.report_only
        tuned = tune(model, methods, list(args.lrs), base, out, train=train)
        if not train:  # methods never tuned under --out have no lr, hence no runs
            methods = [m for m in methods if m in tuned]
            if "dense" not in tuned:
                print(f"{model}: no finished runs under {out}", flush=True)
                continue
        final_cfg = base.replace(epochs=epochs)
        vsps = preset["variant_sparsities"] or sparsities
        if args.quick:
            vsps = sparsities
        variants = [(*parse_variant(v), vsps) for v in (() if args.no_variants else args.variants)]
        rows = final(
            model, methods, sparsities, seeds, tuned, final_cfg, out, variants, train=train
        )
        summ = summary(rows)
        plot(model, summ, out / f"{model}_acc_vs_macs.png")
        report = {"preset": args.preset, "quick": args.quick, "epochs": epochs}
        write_json(out / f"{model}_summary.json", {**report, "tuned": tuned, "summary": summ})
        texts.append(table(model, summ, tuned))
        write_text(out / f"{model}_table.md", texts[-1] + "\n")
    print("\n\n".join(texts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
