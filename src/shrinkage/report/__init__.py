"""``shrinkage report``: one run across the three pillars, as HTML, Markdown and JSON.

shrinkage report --out runs/demo                  # the demo scale (minutes on 2 cores)
shrinkage report --quick --out runs/quick         # tiny data, under a minute
shrinkage report --sections weights,codes         # a subset
"""

from __future__ import annotations

import platform
import shlex
import sys
import time
from pathlib import Path

from ._document import Figure, Section, Table, render_html, render_markdown, write_report
from ._sections import SCALES, SECTIONS

__all__ = [
    "run_report",
    "Section",
    "Table",
    "Figure",
    "render_html",
    "render_markdown",
    "write_report",
    "SECTIONS",
    "SCALES",
    "register",
]


def _parse_sections(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in SECTIONS]
    if bad or not names:
        raise ValueError(
            f"sections={value!r}: unknown section(s) {bad}; known: {', '.join(SECTIONS)}"
        )
    return names


def run_report(
    out,
    sections=tuple(SECTIONS),
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    argv: list[str] | None = None,
) -> dict:
    """Run the chosen sections and write report.html, report.md, results.json under ``out``.

    Returns ``{"paths": {...}, "sections": {key: Section}}``.
    """
    import numpy as np
    import torch

    from .. import __version__

    sections = list(sections)
    for name in sections:
        if name not in SECTIONS:
            raise ValueError(f"unknown section {name!r}; known: {', '.join(SECTIONS)}")
    out = Path(out)
    t0 = time.perf_counter()
    done = []
    for name in sections:
        torch.manual_seed(seed)
        done.append(SECTIONS[name](seed=seed, quick=quick, progress=progress))
    cmd = "shrinkage " + " ".join(shlex.quote(a) for a in (argv or ["report", "--out", str(out)]))
    header = {
        "command": cmd,
        "scale": "quick (tiny data, checks the pipeline)" if quick else "demo",
        "seed": seed,
        "shrinkage": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "total seconds": round(time.perf_counter() - t0, 1),
    }
    paths = write_report(out, "shrinkage report", header, done)
    return {"paths": paths, "sections": {s.key: s for s in done}, "header": header}


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
