"""The ``shrinkage`` command: one sub-command per pillar.

    shrinkage thresholds plot --out runs/operators.png
    shrinkage weights train|sweep ...
    shrinkage codes learn|compare ...
    shrinkage activations eoc|train ...
    shrinkage report --out runs/demo

Each pillar's ``cli`` module defines ``register(subparsers)``; its handlers receive the
parsed ``argparse.Namespace``.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

# Sub-command modules; each exposes register(subparsers).
_COMMANDS = (
    "shrinkage.thresholds.cli",
    "shrinkage.weights.cli",
    "shrinkage.codes.cli",
    "shrinkage.activations.cli",
    "shrinkage.report",
)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="shrinkage",
        description="Sparse weights, codes and activations from one family of thresholding ops.",
    )
    parser.add_argument("--version", action="version", version=f"shrinkage {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for modname in _COMMANDS:
        try:
            mod = import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:  # pillar not present in this build
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except ValueError as e:  # bad input: say what and exit 2, no traceback
        print(f"shrinkage: error: {e}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
