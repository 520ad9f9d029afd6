"""The ``shrinkage`` command: one sub-command group per pillar, and the report.

    shrinkage thresholds plot --out runs/operators.png
    shrinkage weights train|sweep|finetune ...
    shrinkage codes learn|compare ...
    shrinkage activations eoc|plot|train|reproduce ...
    shrinkage report --out runs/demo

Each module of this package defines ``register(subparsers)``; its handlers receive the
parsed ``argparse.Namespace``. The command line sits on top of everything else: it is the
only place that chooses a matplotlib backend (the library draws through the object API).

Errors: every refusal is one line, ``shrinkage: error: ...``, exit status 2, never a
traceback: bad options (argparse's own messages included), a ValueError from the library,
a file that cannot be read or written. ``--out`` is checked before any work (a folder by
default; a command whose ``--out`` is a file says so with ``set_defaults(out_file=SUFFIXES)``).
Ctrl-C prints one line and exits 130 (the long commands keep a checkpoint: ``--resume``).
"""

from __future__ import annotations

import argparse
import os
import sys

import matplotlib

from .. import __version__
from .._io import check_writable_dir, check_writable_file
from . import activations, codes, report, thresholds, weights

# Sub-command modules, in the order of the help text.
_COMMANDS = (thresholds, weights, codes, activations, report)


class _Parser(argparse.ArgumentParser):
    """argparse with the command's one-line error format (no usage dump)."""

    def error(self, message):
        self.exit(2, f"shrinkage: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="shrinkage",
        description="Sparse weights, codes and activations from one family of thresholding ops.",
    )
    parser.add_argument("--version", action="version", version=f"shrinkage {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in _COMMANDS:
        mod.register(sub)
    return parser


def check_out(args) -> None:
    """``--out`` checked before any work: a writable folder (or file, see the module doc)."""
    out = getattr(args, "out", None)
    if out is None:
        return
    suffixes = getattr(args, "out_file", None)
    if suffixes is not None:
        check_writable_file(out, "--out", suffixes)
    else:
        check_writable_dir(out, "--out")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    matplotlib.use("Agg")  # files only, no window: the command's choice, not the library's
    try:
        check_out(args)
        result = args.func(args)
    except KeyboardInterrupt as e:
        why = f": {e}" if str(e) else ""
        print(f"\nshrinkage: interrupted{why}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (``| head``): nothing wrong with the input
        # stdout's buffer cannot be flushed now: point it at /dev/null so exit stays quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, OSError) as e:  # bad input, unreadable or unwritable files
        print(f"shrinkage: error: {_message(e)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:
        if not _out_of_memory(e):
            raise
        print(
            f"shrinkage: error: out of memory ({str(e).splitlines()[0][:160] or 'MemoryError'}):"
            " choose a smaller model (--depth, --width), batch or data set",
            file=sys.stderr,
        )
        return 2
    return int(result or 0)


def _out_of_memory(e: BaseException) -> bool:
    """torch reports a failed CPU allocation as a RuntimeError, Python as MemoryError."""
    text = str(e)
    return isinstance(e, MemoryError) or "can't allocate memory" in text or "out of memory" in text


def _message(e: Exception) -> str:
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.strerror}: {e.filename!r}"
    return str(e)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
