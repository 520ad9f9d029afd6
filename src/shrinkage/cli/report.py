"""``shrinkage report``: one run across the three pillars, as HTML, Markdown and JSON.

shrinkage report --out runs/demo                  # the demo scale (minutes on 2 cores)
shrinkage report --quick --out runs/quick         # tiny data, under a minute
shrinkage report --sections weights,codes         # a subset
"""

from __future__ import annotations

import sys

from ..report import SECTIONS, run_report


def _parse_sections(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in SECTIONS]
    if bad or not names:
        raise ValueError(
            f"sections={value!r}: unknown section(s) {bad}; known: {', '.join(SECTIONS)}"
        )
    return names


def register(sub) -> None:
    p = sub.add_parser("report", help="run the cross-pillar report (the main job)")
    p.add_argument("--out", default="runs/demo", help="output folder")
    p.add_argument("--quick", action="store_true", help="tiny data: checks the pipeline in <1 min")
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_main)


def _main(args) -> int:
    sections = _parse_sections(args.sections)
    res = run_report(
        args.out,
        sections,
        quick=args.quick,
        seed=args.seed,
        progress=not args.no_progress,
        argv=sys.argv[1:],
    )
    for path in res["paths"].values():
        print(f"wrote {path}")
    return 0
