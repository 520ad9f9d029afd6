"""``shrinkage thresholds plot``: a figure of every operator and every penalty."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backend_bases import FigureCanvasBase

from ..thresholds import PENALTIES, describe
from ..thresholds.plots import plot_operators

_FORMATS = tuple(f".{k}" for k in FigureCanvasBase.get_supported_filetypes())


def register(sub) -> None:
    p = sub.add_parser("thresholds", help="the operator family")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    plot = s.add_parser("plot", help="plot every prox, activation and penalty")
    plot.add_argument("--out", default="runs/operators.png", help="PNG path")
    plot.add_argument("--lam", type=float, default=1.0, help="penalty weight (default 1)")
    plot.set_defaults(func=_plot, out_file=_FORMATS)
    desc = s.add_parser("list", help="list the penalties with their formulas")
    desc.set_defaults(func=_list)


def _list(args) -> int:
    for name in PENALTIES:
        print(describe(name))
    return 0


def _plot(args) -> int:
    out = plot_operators(Path(args.out), lam=args.lam)
    print(f"wrote {out}")
    return 0
