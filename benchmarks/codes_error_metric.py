"""Does the l1 / l0 / CEL0 comparison depend on how the held-out error is averaged?

``shrinkage codes sweep`` reports the relative error as the mean over patches of
||x - r D||^2 / ||x||^2: every patch counts alike, so the low-energy patches that lam-based
codes leave at zero (error 1 each) weigh as much as the rest. The reference's "relative form
of the MSE on whitened pixels" can also be read over the whole set, sum ||x - r D||^2 /
sum ||x||^2, which weighs each patch by its energy. This script encodes the sweep's
held-out patches again with every stored dictionary (the sweep's codes: same lam, l0 from
its CEL0 relaxation when the sweep did so), records both errors, and redoes the
matched-error table (each penalty's active fraction at three error levels from the first
to the third quartile, and l1's over it) under each definition.

    python benchmarks/codes_error_metric.py runs/codes/sweep200k     # ~5 min on one core
    python benchmarks/codes_error_metric.py --quick --out runs/x     # a tiny sweep first

Writes ``error_metric.json`` (per run both errors and the active fraction; both tables),
``error_metric.csv`` (the tables) and ``error_metric.png`` (l1 over CEL0 and over l0
against the number of atoms, one line per error level, both definitions), and prints the
tables. Re-reading is resumable: runs already in ``error_metric.json`` are not encoded
again.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from shrinkage._io import atomic_path, save_figure, write_json
from shrinkage.codes import encode, relative_error
from shrinkage.experiments.codes import RELAXATIONS, _error_levels, _matched
from shrinkage.experiments.codes_sweep import held_out, sweep

METRICS = ("mean_error", "global_error")
QUICK = dict(
    penalties=("l1", "l0", "cel0"),
    atoms=(8, 16),
    thresholds=(0.35, 0.5, 0.7, 1.0),
    n_patches=400,
    chunk=200,
    n_test=200,
    n_monitor=0,
    size=6,
    analyse_max=0,
)


def reread(folder: Path, out: Path, progress: bool = True) -> list[dict]:
    """Both errors of every finished run of the sweep in ``folder`` (read back from
    ``out/error_metric.json`` when already there)."""
    cfg = json.loads((folder / "config.json").read_text())
    X, _ = held_out(cfg["images"], cfg["size"], cfg["n_test"], cfg["n_monitor"], cfg["seed"])
    path = out / "error_metric.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    done = {(r["penalty"], r["n_atoms"], r["threshold"]) for r in rows}
    runs = sorted((folder / "runs").glob("*/result.json"))
    for res_path in tqdm(runs, desc="re-encode", unit="run", disable=not progress):
        res = json.loads(res_path.read_text())
        key = (res["penalty"], res["n_atoms"], res["threshold"])
        if key in done:
            continue
        D = np.load(res_path.parent / "D.npy")
        warm = {"relaxation": RELAXATIONS[res["penalty"]]} if res.get("relaxed") else {}
        Z = encode(X, D, res["penalty"], res["lam"], max_iter=1000, tol=1e-4, **warm)
        rows.append(
            dict(
                penalty=key[0],
                n_atoms=key[1],
                threshold=key[2],
                mean_error=relative_error(X, D, Z),
                global_error=float(((X - Z @ D) ** 2).sum() / (X**2).sum()),
                active_fraction=float((Z != 0).mean()),
                sweep_error=res["relative_error"],
            )
        )
        write_json(path, {"rows": rows})  # as it goes: an interrupted re-read resumes
    return rows


def tables(rows: list[dict]) -> dict:
    """The matched-error table under each error definition."""
    pens = sorted({r["penalty"] for r in rows}, key=lambda p: (p != "l1", p))
    sizes = sorted({r["n_atoms"] for r in rows})
    result = {}
    for metric in METRICS:
        as_sweep = [dict(r, relative_error=r[metric]) for r in rows]
        levels = _error_levels(as_sweep)
        result[metric] = {"levels": levels, "matched": _matched(as_sweep, pens, sizes, levels)}
    return result


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}x"


def report(res: dict) -> list[list]:
    lines = []
    for metric in METRICS:
        print(f"\n{metric}: levels {res[metric]['levels']}")
        print("atoms  error   l1/l0   l1/cel0  l1/l1/2")
        for e in res[metric]["matched"]:
            cells = [e.get(f"l1_over_{p}") for p in ("l0", "cel0", "l1/2")]
            print(f"{e['n_atoms']:5d}  {e['relative_error']:.3f}  " + "  ".join(map(_fmt, cells)))
            lines.append([metric, e["n_atoms"], e["relative_error"], *cells])
    return lines


def plot(res: dict, path: Path) -> None:
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, pen in zip(axes, ("cel0", "l0")):
        for metric, style in zip(METRICS, ("-", "--")):
            for i, lev in enumerate(res[metric]["levels"]):
                pts = [
                    (e["n_atoms"], e[f"l1_over_{pen}"])
                    for e in res[metric]["matched"]
                    if e["relative_error"] == lev and e.get(f"l1_over_{pen}")
                ]
                if pts:
                    x, y = zip(*pts)
                    ax.plot(x, y, style, marker="o", color=f"C{i}", label=f"{metric} {lev:g}")
        ax.axhline(3, color="k", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("atoms")
        ax.set_title(f"l1 non-zeros / {pen} non-zeros at equal error")
    axes[0].set_ylabel("ratio")
    axes[1].legend(fontsize=7)
    save_figure(fig, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep", nargs="?", help="a finished `shrinkage codes sweep` folder")
    ap.add_argument("--out", default=None, help="output folder (default: the sweep folder)")
    ap.add_argument("--quick", action="store_true", help="run a tiny sweep into --out first")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        if args.out is None:
            ap.error("--quick needs --out")
        folder = Path(args.out) / "sweep"
        sweep(folder, plots=False, threads=args.threads, **QUICK)
    elif args.sweep is None:
        ap.error("give a sweep folder (or --quick --out DIR)")
    else:
        folder = Path(args.sweep)
        if not (folder / "config.json").exists():
            ap.error(f"{folder} holds no sweep (no config.json)")
    out = Path(args.out) if args.out else folder
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    rows = reread(folder, out, progress=not args.no_progress)
    res = tables(rows)
    write_json(out / "error_metric.json", {"rows": rows, **res})
    lines = report(res)
    with atomic_path(out / "error_metric.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["metric", "n_atoms", "error", "l1_over_l0", "l1_over_cel0", "l1_over_l1/2"])
        w.writerows(lines)
    plot(res, out / "error_metric.png")
    print(f"wrote {out / 'error_metric.json'}, .csv and .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
