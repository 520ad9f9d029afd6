"""Pruning a trained model by fine-tuning: ST-3 vs one-shot magnitude + fine-tune vs GMP.

For each model: train it densely (``shrinkage weights train --method dense``), then for each
target sparsity and method run ``shrinkage weights finetune`` from that checkpoint with the
same recipe, and record test accuracy against fine-tune epochs. Writes ``finetune.csv``,
``finetune.json``, ``finetune_table.md`` and ``finetune.png`` under ``--out``.

    python benchmarks/weights_finetune.py --out runs/finetune_bench            # the docs table
    python benchmarks/weights_finetune.py --quick --out runs/finetune_quick    # ~2 min smoke run

Finished runs (their ``result.json``) are reused, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import torch
from matplotlib.figure import Figure

from shrinkage._io import save_figure, write_json, write_text
from shrinkage.experiments.finetune import FinetuneConfig, finetune
from shrinkage.experiments.weights import TrainConfig, train_run

LABELS = {
    "st3": "ST-3 fine-tune",
    "oneshot": "one-shot magnitude + fine-tune",
    "gmp": "GMP fine-tune",
}


def _dense(model: str, epochs: int, out: Path, common: dict) -> tuple[Path, float]:
    run = out / model / "dense"
    if not (run / "result.json").is_file():
        cfg = TrainConfig(model=model, method="dense", epochs=epochs, out=str(run), **common)
        res = train_run(cfg)
        print(f"{model} dense, {epochs} epochs: test acc {100 * res['test_acc']:.2f}%", flush=True)
    res = json.loads((run / "result.json").read_text())
    return run / "model.pt", res["test_acc"]


def _rows(results: list[dict]) -> list[dict]:
    rows = []
    for r in results:
        c = r["config"]
        for p in r["curve"]:
            rows.append(
                {
                    "model": c["model"],
                    "method": c["method"],
                    "target": c["sparsity"],
                    "epoch": p["epoch"],
                    "test_acc": p["test_acc"],
                    "sparsity": p["sparsity"],
                }
            )
    return rows


def table(results: list[dict], dense_acc: dict, show=None) -> str:
    """Markdown: per model and method, test accuracy (%) after 0 / 1 / ... fine-tune epochs
    (``show``: the epochs to list, default every whole epoch)."""
    sps = sorted({r["config"]["sparsity"] for r in results})
    epochs = max(r["config"]["epochs"] for r in results)
    show = list(range(epochs + 1)) if show is None else list(show)
    ep = " / ".join(str(e) for e in show)
    head = "| model (dense acc) | method | " + " | ".join(f"{100 * s:g} %: ep {ep}" for s in sps)
    lines = [head + " |", "|" + " --- |" * (len(sps) + 2)]
    for model in dict.fromkeys(r["config"]["model"] for r in results):
        for method in LABELS:
            cells = []
            for s in sps:
                hit = [
                    r
                    for r in results
                    if r["config"]["model"] == model
                    and r["config"]["method"] == method
                    and r["config"]["sparsity"] == s
                ]
                if not hit:
                    cells.append("")
                    continue
                pts = {p["epoch"]: p["test_acc"] for p in hit[0]["curve"]}
                cells.append(" / ".join(f"{100 * pts[float(e)]:.2f}" for e in show))
            if any(cells):
                name = f"{model} ({100 * dense_acc[model]:.2f})"
                lines.append(f"| {name} | {LABELS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: list[dict], dense_acc: dict, path: Path) -> None:
    models = list(dict.fromkeys(r["config"]["model"] for r in results))
    sps = sorted({r["config"]["sparsity"] for r in results})
    fig = Figure(figsize=(4 * len(sps), 3.2 * len(models)))  # object API: no pyplot, no backend
    axes = fig.subplots(len(models), len(sps), squeeze=False)
    for i, model in enumerate(models):
        for j, s in enumerate(sps):
            ax = axes[i][j]
            for method, label in LABELS.items():
                for r in results:
                    c = r["config"]
                    if (c["model"], c["method"], c["sparsity"]) == (model, method, s):
                        ep = [p["epoch"] for p in r["curve"]]
                        acc = [100 * p["test_acc"] for p in r["curve"]]
                        ax.plot(ep, acc, marker="o", ms=3, label=label)
            ax.axhline(100 * dense_acc[model], color="grey", ls="--", lw=1, label="dense")
            lo = min(  # per model: the lowest point after the first half epoch
                [
                    100 * p["test_acc"]
                    for r in results
                    if r["config"]["model"] == model
                    for p in r["curve"][1:]
                ]
                + [100 * dense_acc[model] - 1]
            )
            ax.set_ylim(max(lo - 0.5, 0), 100 * dense_acc[model] + 0.5)
            ax.set(title=f"{model}, {100 * s:g} % zeros", xlabel="fine-tune epoch")
            if j == 0:
                ax.set_ylabel("test accuracy (%)")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/finetune_bench")
    p.add_argument("--quick", action="store_true", help="tiny subsets, 1 epoch: a smoke run")
    p.add_argument("--models", default="lenet_300_100,lenet5")
    p.add_argument("--methods", default="st3,oneshot,gmp")
    p.add_argument("--sparsities", default="0.95,0.98,0.99")
    p.add_argument("--epochs", type=int, default=2, help="fine-tune epochs")
    p.add_argument("--dense-epochs", default="lenet_300_100=8,lenet5=4")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--table-epochs", default=None, help="epochs listed in the table, e.g. 0,2,8")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    dense_epochs = dict(kv.split("=") for kv in args.dense_epochs.split(","))
    common = {"threads": args.threads, "progress": False}
    epochs = args.epochs
    if args.quick:
        common.update(subset=2048, test_subset=1000)
        epochs = 1
        dense_epochs = {m: "1" for m in dense_epochs}
    results, dense_acc = [], {}
    for model in args.models.split(","):
        ckpt, dense_acc[model] = _dense(model, int(dense_epochs.get(model, 4)), out, common)
        for s in (float(v) for v in args.sparsities.split(",")):
            for method in args.methods.split(","):
                run = out / model / f"{method}_s{s:g}"
                if (run / "result.json").is_file():
                    res = json.loads((run / "result.json").read_text())
                else:
                    cfg = FinetuneConfig(
                        checkpoint=str(ckpt),
                        model=model,
                        method=method,
                        sparsity=s,
                        epochs=epochs,
                        out=str(run),
                        **common,
                    )
                    res = finetune(cfg)
                    curve = " ".join(f"{100 * c['test_acc']:.2f}" for c in res["curve"])
                    print(
                        f"{model} {method} s={s:g}: acc per half epoch {curve} "
                        f"({res['seconds']:.0f} s)",
                        flush=True,
                    )
                results.append(res)
    rows = _rows(results)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_text(out / "finetune.csv", buf.getvalue())
    write_json(out / "finetune.json", {"dense_acc": dense_acc, "rows": rows})
    show = None if args.table_epochs is None else [int(e) for e in args.table_epochs.split(",")]
    md = table(results, dense_acc, show)
    write_text(out / "finetune_table.md", md + "\n")
    plot(results, dense_acc, out / "finetune.png")
    print(md)
    print(f"wrote {out}/finetune.csv, finetune.json, finetune_table.md, finetune.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
