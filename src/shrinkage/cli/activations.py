"""``shrinkage activations eoc|plot|theory|train|reproduce|levers``: edge-of-chaos configs,
their maps and finite-width theory, and deep sparse networks trained on MNIST.

The options of ``train``, ``reproduce`` and ``levers`` are generated from the fields of
``ActivationsRecipe``, whose defaults they take.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from ..activations import edge_of_chaos
from ..activations.plots import (
    plot_finite_width,
    plot_maps,
    plot_q_star_scan,
    plot_theory_vs_simulation,
)
from ..experiments.activations import (
    DEFAULT_SPARSITY,
    ActivationsRecipe,
    RunSkippedWarning,
    describe,
    grid_labels,
    lever_study,
    lever_table,
    markdown_table,
    reproduce,
    train_run,
)

_NAMES = (
    "relu",
    "shifted_relu",
    "soft_threshold",
    "clipped_relu",
    "crelu",
    "clipped_soft_threshold",
    "cst",
    "tanh",
    "erf",
)


def _m_arg(text):
    if text.lower() == "none":
        return None
    if text in ("safe", "auto"):
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--m must be 'safe', 'auto', a number or none, got {text!r}") from None


def _q_arg(text):
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--q-star must be a number > 0 or 'auto', got {text!r}") from None


def register(sub) -> None:
    p = sub.add_parser("activations", help="edge-of-chaos init for sparse activations")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    eoc = s.add_parser("eoc", help="print the edge-of-chaos config and write its plots")
    _common(eoc)
    eoc.add_argument("--out", default="runs/activations_eoc", help="folder for the plots")
    eoc.add_argument("--nets", type=int, default=4, help="simulated networks (default 4)")
    eoc.add_argument("--seed", type=int, default=0)
    eoc.add_argument("--no-plots", action="store_true", help="only print the config")
    eoc.set_defaults(func=_eoc)

    plot = s.add_parser("plot", help="V(q) for several m, V'(q*) and V''(q*) against m")
    _common(plot)
    plot.add_argument("--out", default="runs/activations_eoc", help="folder for the plots")
    plot.set_defaults(func=_plot)

    th = s.add_parser(
        "theory", help="the maps against q* (m scaled and fixed) and finite width vs Monte Carlo"
    )
    _common(th)
    th.add_argument("--q-stars", default="0.25,1,4,16", help="q* values (comma-separated)")
    th.add_argument("--fixed-m", type=float, default=1.0, help="m held fixed in the q* scan")
    th.add_argument("--widths", default="100,300,1000", help="widths for the finite-width plot")
    th.add_argument("--nets", type=int, default=40, help="Monte Carlo networks per width")
    th.add_argument("--out", default="runs/activations_theory", help="folder for the plots")
    th.set_defaults(func=_theory)

    tr = s.add_parser("train", help="train one edge-of-chaos network on MNIST")
    ActivationsRecipe.add_arguments(tr, defaults={"out": "runs/activations_train"})
    tr.add_argument("--resume", action="store_true", help="continue the run kept in --out")
    tr.set_defaults(func=_train)

    rep = s.add_parser(
        "reproduce",
        help="the reproduction grid: ReLU vs CReLU/CST at 0.7/0.85/0.9, depth 50 and 100, "
        "unclipped, a deep CNN",
    )
    ActivationsRecipe.add_arguments(
        rep,
        skip=("activation", "sparsity", "model", "depth", "seed", "out"),
        defaults={},
    )
    rep.add_argument(
        "--only",
        default=None,
        help=f"comma-separated row labels to run, from: {', '.join(grid_labels())}",
    )
    rep.add_argument("--out", default="runs/activations_reproduce", help="folder for results")
    rep.set_defaults(func=_reproduce)

    lev = s.add_parser("levers", help="the lever study: one change at a time from the recipe")
    ActivationsRecipe.add_arguments(lev, skip=("out",), defaults={"n_train": 20_000, "epochs": 2.0})
    lev.add_argument("--out", default="runs/activations_levers", help="folder for results")
    lev.set_defaults(func=_levers)


def _common(p):
    p.add_argument("--activation", default="cst", help=f"one of {', '.join(_NAMES)}")
    p.add_argument(
        "--sparsity",
        type=float,
        default=None,
        help=f"target fraction of zeros in (0, 1) (not for relu, tanh, erf; default "
        f"{DEFAULT_SPARSITY} for the others, as activations train)",
    )
    p.add_argument("--q-star", type=_q_arg, default=1.0, help="fixed point q* or auto (default 1)")
    p.add_argument(
        "--m",
        type=_m_arg,
        default="safe",
        help="clipping level: 'safe' (default), 'auto' (for --depth and --width), a number, "
        "or none",
    )
    p.add_argument("--depth", type=int, default=100, help="layers (default 100)")
    p.add_argument("--width", type=int, default=300, help="width (default 300)")


def _cfg(args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        options = {k: getattr(args, k) for k in ("q_star", "m", "depth", "width")}
        sparsity = args.sparsity
        if sparsity is None and args.activation not in ("relu", "tanh", "erf"):
            sparsity = DEFAULT_SPARSITY  # the commands' own default ran into "got None"
        cfg = edge_of_chaos(args.activation, sparsity, **options)
    for w in caught:
        print(f"warning: {w.message}")
    return cfg


def _eoc(args) -> int:
    if args.nets < 1:  # checked before the config and any plot (not after two are written)
        raise ValueError(f"--nets must be an integer >= 1, got {args.nets}")
    cfg = _cfg(args)
    print(cfg)
    if args.no_plots:
        return 0
    out = Path(args.out)
    for path in plot_maps(cfg, out):
        print(f"wrote {path}")
    path = plot_theory_vs_simulation(
        cfg,
        out / "theory_vs_simulation.png",
        depth=args.depth,
        width=args.width,
        n_nets=args.nets,
        seed=args.seed,
    )
    print(f"wrote {path}")
    return 0


def _plot(args) -> int:
    cfg = _cfg(args)
    for path in plot_maps(cfg, Path(args.out)):
        print(f"wrote {path}")
    return 0


def _numbers(option, text, kind=float):
    try:
        values = [kind(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"{option} must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"{option} needs at least one value, got {text!r}")
    return values


def _theory(args) -> int:
    cfg = _cfg(args)
    out = Path(args.out)
    q_stars = _numbers("--q-stars", args.q_stars)
    widths = _numbers("--widths", args.widths, int)
    path, rows = plot_q_star_scan(
        cfg.activation,
        cfg.sparsity,
        q_stars,
        args.fixed_m,
        out / "q_star_scan.png",
        depth=args.depth,
        width=args.width,
    )
    print(f"wrote {path} and {path.with_suffix('.json')}")
    path = plot_finite_width(cfg, widths, args.depth, out / "finite_width.png", n_nets=args.nets)
    print(f"wrote {path}")
    return 0


def _train(args) -> int:
    res = train_run(ActivationsRecipe.from_args(args).check(), resume=args.resume)
    for line in describe(res):
        print(line)
    print(f"wrote {Path(args.out) / 'result.json'} and {Path(args.out) / 'train.png'}")
    return 1 if "diverged" in res["flags"] else 0


def _reproduce(args) -> int:
    skip = ("activation", "sparsity", "model", "depth", "seed", "out")
    base = ActivationsRecipe.from_args(args, skip=skip).check()
    only = None if args.only is None else [t.strip() for t in args.only.split(",") if t.strip()]
    with warnings.catch_warnings():
        # each skipped run is printed below, with the others
        warnings.simplefilter("ignore", RunSkippedWarning)
        summary = reproduce(args.out, base, only=only)
    if summary:
        print(markdown_table(summary))
    for r in summary:
        for flag in r["flags"]:
            print(f"FLAG {r['label']} seed {r['seed']}: {flag}")
    if summary:
        print(f"wrote {Path(args.out) / 'summary.json'}, summary.csv, table.md and reproduce.png")
    return _report_skipped(Path(args.out))


def _report_skipped(out: Path) -> int:
    """Print the runs a grid skipped (``skipped.json``); 1 if there are any."""
    skipped = json.loads((out / "skipped.json").read_text())
    for s in skipped:
        where = f"remove {s['out']!r} to run it"
        print(f"SKIPPED {s['label']} seed {s['seed']}: {s['error']} ({where})")
    if skipped:
        print(f"{len(skipped)} run(s) skipped, listed in {out / 'skipped.json'}")
    return 1 if skipped else 0


def _levers(args) -> int:
    base = ActivationsRecipe.from_args(args, skip=("out",)).check()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunSkippedWarning)
        rows = lever_study(args.out, base)
    print(lever_table(rows))
    print(f"wrote {Path(args.out) / 'levers.json'} and levers.md")
    return _report_skipped(Path(args.out))
