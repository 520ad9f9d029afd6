"""``shrinkage codes learn|compare|sweep``: dictionaries on natural-image patches, and the
sweeps.

shrinkage codes learn --penalty cel0 --atoms 512 --lam 0.27 --patches 100000 --out runs/x
shrinkage codes compare --penalties l1,l0,l1/2,cel0 --atoms 256,512 --out runs/cmp
shrinkage codes sweep --atoms 64,128,256 --patches 50000 --out runs/sweep   (resumable)

The options are generated from ``LearnRecipe``,
``CompareRecipe`` and
``SweepRecipe``, whose defaults they take (one torch
thread unless ``--threads`` says otherwise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._io import atomic_path, write_json
from ..codes import v1
from ..experiments.codes import CompareRecipe, LearnRecipe, compare, learn
from ..experiments.codes_sweep import SweepRecipe, sweep


def register(sub) -> None:
    p = sub.add_parser("codes", help="sparse coding and dictionary learning beyond l1")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    learn_p = s.add_parser("learn", help="learn one dictionary on whitened natural-image patches")
    LearnRecipe.add_arguments(learn_p, defaults={"threads": 1})
    learn_p.add_argument("--out", default="runs/codes_learn", help="output folder")
    learn_p.add_argument(
        "--resume", action="store_true", help="continue the interrupted run kept in --out"
    )
    learn_p.set_defaults(func=_learn)

    cmp = s.add_parser("compare", help="error vs sparsity of several penalties, lam swept")
    CompareRecipe.add_arguments(cmp, defaults={"threads": 1})
    cmp.add_argument("--out", default="runs/codes_compare")
    cmp.set_defaults(func=_compare)

    sw = s.add_parser(
        "sweep", help="overcompleteness sweep on streamed patches (resumable, one run per file)"
    )
    SweepRecipe.add_arguments(sw, defaults={"threads": 1})
    sw.add_argument("--out", default="runs/codes_sweep", help="output (and resume) folder")
    sw.set_defaults(func=_sweep)


def _learn(args) -> int:
    recipe = LearnRecipe.from_args(args).check()
    out = Path(args.out)
    # the results are written before learn() removes the checkpoint: an interrupted write
    # is resumed (--resume) from the finished learning
    res = learn(
        recipe,
        progress=True,
        out=out,
        resume=args.resume,
        on_done=lambda res: _write_learned(out, recipe, res),
    )
    metrics = res["metrics"]
    ran = f"{metrics['epochs_run']} passes"
    if recipe.learn_tol > 0:
        ran += " (converged)" if metrics["converged"] else " (not converged: stopped at --epochs)"
    print(f"{ran}, {metrics['resampled_atoms']} atoms resampled")
    print(
        f"relative error {metrics['relative_error']:.4f}, active fraction "
        f"{metrics['active_fraction']:.4f}"
        + (
            f", Gabor-like {metrics['v1']['gabor_fraction']:.2f}, orientation selective "
            f"{metrics['v1']['selective_fraction']:.2f}"
            if "v1" in metrics
            else ""
        )
    )
    print(f"wrote {out}")
    return 0


def _write_learned(out: Path, recipe: LearnRecipe, res: dict) -> None:
    """``codes learn``'s files, ``metrics.json`` last; ``res["metrics"]`` gains the V1
    summary (``"v1"``) when the dictionary was analysed."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", recipe.to_dict())
    with atomic_path(out / "dictionary.npy") as tmp:
        np.save(tmp, res["D"])
    metrics = res["metrics"]
    if "summary" in res:
        metrics["v1"] = res["summary"]
        fits = res["fits"]
        write_json(out / "gabor.json", {k: v.tolist() for k, v in fits.items()})
        v1.plot_nxny({recipe.penalty: fits}, out / "nxny.png")
        v1.plot_orientation_hist({recipe.penalty: fits}, out / "orientations.png")
        v1.plot_tuning(res["tuning"], out / "tuning.png")
    v1.plot_atoms(
        res["D"],
        out / "atoms.png",
        shape=(recipe.size, recipe.size),
        title=f"{recipe.penalty}, lam={recipe.lam:g}",
    )
    write_json(out / "metrics.json", metrics)


def _compare(args) -> int:
    res = compare(CompareRecipe.from_args(args).check(), progress=True, out=args.out)
    for m in res["matched"]:
        print(m)
    print(f"wrote {args.out}")
    return 0


def _sweep(args) -> int:
    res = sweep(args.out, SweepRecipe.from_args(args).check(), progress=True)
    for u in res["units"]:
        print(u)
    if "note" in res:
        print(res["note"])
    print(f"wrote {args.out}")
    return 0
