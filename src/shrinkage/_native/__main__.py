"""``python -m shrinkage._native --info | --build [--strict]``: the C libraries at a glance.

``--info`` prints the compiler, the cache folder, the flag sets and each library's source;
``--build`` compiles every library now (``--strict``: with ``-Wall -Wextra -Werror``, as CI
does) and prints where each one is; the exit status is 1 when one does not build.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import build_all, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m shrinkage._native", description=__doc__)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--info", action="store_true", help="what a build would use (JSON)")
    what.add_argument("--build", action="store_true", help="build every library now")
    p.add_argument("--strict", action="store_true", help="--build with -Wall -Wextra -Werror")
    args = p.parse_args(argv)
    if args.info:
        print(json.dumps(info(), indent=2))
        return 0
    try:
        paths = build_all(strict=args.strict)
    except RuntimeError as e:
        print(f"shrinkage._native: {e}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
