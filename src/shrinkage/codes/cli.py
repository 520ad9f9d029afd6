"""``shrinkage codes learn|compare``: dictionaries on natural-image patches, and the sweep.

shrinkage codes learn --penalty cel0 --atoms 512 --lam 0.27 --patches 100000 --out runs/x
shrinkage codes compare --penalties l1,l0,l1/2,cel0 --atoms 256,512 --out runs/cmp
shrinkage codes sweep --atoms 64,128,256 --patches 50000 --out runs/sweep   (resumable)
"""

from __future__ import annotations

from pathlib import Path


def _floats(s):
    return tuple(float(v) for v in s.split(",") if v.strip())


def _ints(s):
    return tuple(int(v) for v in s.split(",") if v.strip())


def _strs(s):
    return tuple(v.strip() for v in s.split(",") if v.strip())


_NO_RELAX = "l0 codes by hard thresholding from zero, not from their CEL0 relaxation"


def _stopping_args(p) -> None:
    p.add_argument(
        "--learn-tol",
        type=float,
        default=0.0,
        help="stop before --epochs once --max-no-improvement passes in a row lowered the "
        "objective by at most this (relative); 0 (default): exactly --epochs passes",
    )
    p.add_argument("--max-no-improvement", type=int, default=3, help="see --learn-tol")
    p.add_argument(
        "--monitor",
        type=int,
        default=0,
        help="judge convergence on the energy of this many fixed training patches "
        "(default 0: each pass's mean energy)",
    )


def _check_stopping_args(args) -> None:
    from .._checks import check_int_at_least, check_nonnegative

    check_int_at_least("--epochs", args.epochs, 1)
    check_nonnegative("--learn-tol", args.learn_tol)
    check_int_at_least("--max-no-improvement", args.max_no_improvement, 1)
    check_int_at_least("--monitor", args.monitor, 0)


def _stopping_kw(args) -> dict:
    return dict(
        learn_tol=args.learn_tol, max_no_improvement=args.max_no_improvement, monitor=args.monitor
    )


def register(sub) -> None:
    p = sub.add_parser("codes", help="sparse coding and dictionary learning beyond l1")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    learn = s.add_parser("learn", help="learn one dictionary on whitened natural-image patches")
    learn.add_argument("--penalty", default="cel0", help="l1, l0, l1/2, cel0, ... (default cel0)")
    learn.add_argument("--lam", type=float, default=0.27, help="penalty weight (default 0.27)")
    learn.add_argument("--atoms", type=int, default=512, help="dictionary size (default 512)")
    learn.add_argument("--patches", type=int, default=100_000, help="training patches")
    learn.add_argument("--test", type=int, default=2000, help="held-out patches (default 2000)")
    learn.add_argument("--size", type=int, default=16, help="patch side in pixels (default 16)")
    learn.add_argument(
        "--epochs", type=int, default=1, help="passes over the patches (the cap with --learn-tol)"
    )
    _stopping_args(learn)
    learn.add_argument("--batch-size", type=int, default=256)
    learn.add_argument("--lr", type=float, default=1.0, help="gradient-update step (default 1)")
    learn.add_argument("--update", default="bcd", choices=("bcd", "gradient"))
    learn.add_argument("--seed", type=int, default=0)
    learn.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    learn.add_argument("--no-analysis", action="store_true", help="skip Gabor fits and tuning")
    learn.add_argument("--no-relax", action="store_true", help=_NO_RELAX)
    learn.add_argument("--out", default="runs/codes_learn", help="output folder")
    learn.set_defaults(func=_learn)

    cmp = s.add_parser("compare", help="error vs sparsity of several penalties, lam swept")
    cmp.add_argument("--penalties", default="l1,l0,l1/2,cel0")
    cmp.add_argument("--atoms", default="256", help="comma-separated dictionary sizes")
    cmp.add_argument(
        "--thresholds",
        default="0.2,0.35,0.5,0.7,1.0",
        help="common zeroing thresholds; each penalty's lam follows from them",
    )
    cmp.add_argument("--patches", type=int, default=20000)
    cmp.add_argument("--test", type=int, default=2000)
    cmp.add_argument("--size", type=int, default=16)
    cmp.add_argument("--epochs", type=int, default=1, help="passes (the cap with --learn-tol)")
    _stopping_args(cmp)
    cmp.add_argument("--batch-size", type=int, default=256)
    cmp.add_argument("--update", default="bcd", choices=("bcd", "gradient"))
    cmp.add_argument("--seed", type=int, default=0)
    cmp.add_argument("--threads", type=int, default=1)
    cmp.add_argument("--no-analysis", action="store_true")
    cmp.add_argument("--no-relax", action="store_true", help=_NO_RELAX)
    cmp.add_argument(
        "--continuation", type=int, default=0, help="lam-continuation stages for held-out codes"
    )
    cmp.add_argument("--out", default="runs/codes_compare")
    cmp.set_defaults(func=_compare)

    sw = s.add_parser(
        "sweep", help="overcompleteness sweep on streamed patches (resumable, one run per file)"
    )
    sw.add_argument("--penalties", default="l1,l0,l1/2,cel0")
    sw.add_argument("--atoms", default="64,128,256,512,1024", help="comma-separated sizes")
    sw.add_argument("--thresholds", default="0.35,0.5,0.7,1.0", help="common zeroing thresholds")
    sw.add_argument("--patches", type=int, default=200_000, help="training patches per run")
    sw.add_argument("--chunk", type=int, default=10_000, help="patches per streamed chunk")
    sw.add_argument("--images", default=None, help="folder or file of images (default: bundled)")
    sw.add_argument("--test", type=int, default=2000, help="held-out patches")
    sw.add_argument("--size", type=int, default=16)
    sw.add_argument("--batch-size", type=int, default=256)
    sw.add_argument("--seed", type=int, default=0)
    sw.add_argument("--threads", type=int, default=1)
    sw.add_argument("--no-relax", action="store_true", help=_NO_RELAX)
    sw.add_argument(
        "--analyse-max", type=int, default=64, help="atoms per run given Gabor fits and types"
    )
    sw.add_argument(
        "--learn-tol",
        type=float,
        default=0.0,
        help="stop a run once --max-no-improvement chunks in a row lowered the monitor's "
        "energy by at most this (relative); 0: all --patches",
    )
    sw.add_argument("--max-no-improvement", type=int, default=3)
    sw.add_argument("--monitor", type=int, default=2000, help="monitor patches (--learn-tol)")
    sw.add_argument("--out", default="runs/codes_sweep", help="output (and resume) folder")
    sw.set_defaults(func=_sweep)


def _learn(args) -> int:
    import numpy as np
    import torch

    from .._io import write_json
    from . import v1
    from .experiments import learn

    _check_stopping_args(args)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    res = learn(
        args.penalty,
        args.lam,
        args.atoms,
        n_patches=args.patches,
        n_test=args.test,
        size=args.size,
        n_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        update=args.update,
        seed=args.seed,
        analyse=not args.no_analysis,
        relax=not args.no_relax,
        progress=True,
        **_stopping_kw(args),
    )
    out.mkdir(parents=True, exist_ok=True)
    from .._io import atomic_path

    with atomic_path(out / "dictionary.npy") as tmp:
        np.save(tmp, res["D"])
    metrics = dict(res["metrics"])
    if "summary" in res:
        metrics["v1"] = res["summary"]
        fits = res["fits"]
        write_json(out / "gabor.json", {k: v.tolist() for k, v in fits.items()})
        v1.plot_nxny({args.penalty: fits}, out / "nxny.png")
        v1.plot_orientation_hist({args.penalty: fits}, out / "orientations.png")
        v1.plot_tuning(res["tuning"], out / "tuning.png")
    v1.plot_atoms(
        res["D"],
        out / "atoms.png",
        shape=(args.size, args.size),
        title=f"{args.penalty}, lam={args.lam:g}",
    )
    write_json(out / "metrics.json", metrics)
    print(
        f"{metrics['epochs_run']} passes ("
        + ("converged" if metrics["converged"] else "not converged, stopped at --epochs")
        + f"), {metrics['resampled_atoms']} atoms resampled"
    )
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


def _compare(args) -> int:
    import torch

    from .experiments import compare

    _check_stopping_args(args)
    torch.set_num_threads(args.threads)
    res = compare(
        _strs(args.penalties),
        _ints(args.atoms),
        _floats(args.thresholds),
        n_patches=args.patches,
        n_test=args.test,
        size=args.size,
        n_epochs=args.epochs,
        batch_size=args.batch_size,
        update=args.update,
        seed=args.seed,
        continuation=args.continuation,
        relax=not args.no_relax,
        analyse=not args.no_analysis,
        progress=True,
        out=args.out,
        **_stopping_kw(args),
    )
    for m in res["matched"]:
        print(m)
    print(f"wrote {args.out}")
    return 0


def _sweep(args) -> int:
    import torch

    from .sweep import sweep

    torch.set_num_threads(args.threads)
    res = sweep(
        args.out,
        _strs(args.penalties),
        _ints(args.atoms),
        _floats(args.thresholds),
        n_patches=args.patches,
        chunk=args.chunk,
        n_test=args.test,
        n_monitor=args.monitor,
        size=args.size,
        images=args.images,
        batch_size=args.batch_size,
        seed=args.seed,
        relax=not args.no_relax,
        learn_tol=args.learn_tol,
        max_no_improvement=args.max_no_improvement,
        analyse_max=args.analyse_max,
    )
    for u in res["units"]:
        print(u)
    print(f"wrote {args.out}")
    return 0
