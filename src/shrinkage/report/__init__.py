"""The main job: one run across the three pillars, as HTML, Markdown and JSON
(``run_report``; the command is ``shrinkage report``, in ``shrinkage.cli.report``)."""

from __future__ import annotations

import platform
import shlex
import time

import numpy as np
import torch

from .. import __version__
from .._checks import check_seed
from .._io import check_writable_dir
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
]


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
    sections = list(sections)
    for name in sections:
        if name not in SECTIONS:
            raise ValueError(f"unknown section {name!r}; known: {', '.join(SECTIONS)}")
    twice = sorted({n for n in sections if sections.count(n) > 1})
    if twice:  # it ran twice and printed twice, with one entry in results.json
        raise ValueError(f"sections lists {', '.join(map(repr, twice))} more than once")
    seed = check_seed("seed", seed)
    out = check_writable_dir(out)
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
