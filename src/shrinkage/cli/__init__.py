"""The ``shrinkage`` command: one sub-command group per pillar, and the report.

    shrinkage thresholds plot --out runs/operators.png
    shrinkage weights train|sweep|finetune ...
    shrinkage codes learn|compare ...
    shrinkage activations eoc|plot|train|reproduce ...
    shrinkage report --out runs/demo

Each module of this package defines ``register(subparsers)``; its handlers receive the
parsed ``argparse.Namespace``. The command line sits on top of everything else: it is the
only place that chooses a matplotlib backend (the library draws through the object API).
"""

from __future__ import annotations

import argparse
import sys

import matplotlib

from .. import __version__
from . import activations, codes, report, thresholds, weights

# Sub-command modules, in the order of the help text.
_COMMANDS = (thresholds, weights, codes, activations, report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shrinkage",
        description="Sparse weights, codes and activations from one family of thresholding ops.",
    )
    parser.add_argument("--version", action="version", version=f"shrinkage {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in _COMMANDS:
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    matplotlib.use("Agg")  # files only, no window: the command's choice, not the library's
    try:
        result = args.func(args)
    except ValueError as e:  # bad input: say what and exit 2, no traceback
        print(f"shrinkage: error: {e}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
