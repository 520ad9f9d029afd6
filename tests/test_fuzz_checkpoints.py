"""Damaged checkpoints, exported and training ones: never a crash, never a silent result.

``tests/_fuzz.py`` damages the checkpoints the library writes (bytes and decoded elements)
and runs each case in its own forked process; this test runs it in a subprocess and requires
every case to end in a refusal (a ValueError / TypeError naming the problem, or the user's own
``torch.load`` failing) or in the undamaged result. ``SHRINKAGE_FUZZ_CASES`` sets the budget
(default 90; ``make fuzz`` runs 3000).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import shrinkage

pytestmark = pytest.mark.slow  # a subprocess forking one process per case

ROOT = Path(__file__).resolve().parents[1]


def test_damaged_checkpoints_never_crash_hang_or_pass_silently(tmp_path):
    cases = int(os.environ.get("SHRINKAGE_FUZZ_CASES", "90"))
    report_path = tmp_path / "fuzz.json"
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        SHRINKAGE_CACHE=os.environ.get("SHRINKAGE_CACHE", str(tmp_path / "cache")),
        PYTHONPATH=os.pathsep.join([str(Path(shrinkage.__file__).parents[1]), str(ROOT)]),
    )
    res = subprocess.run(
        [sys.executable, "-m", "tests._fuzz", "--cases", str(cases), "--json", str(report_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60 + 10 * cases,
    )
    assert report_path.is_file(), res.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["failures"] == [], json.dumps(report["failures"][:5], indent=1)
    counts = report["counts"]
    assert sum(sum(c.values()) for c in counts.values()) == cases
    for kind, c in counts.items():
        assert c["crash"] == c["hang"] == c["silent"] == c["unclean"] == 0, kind
        assert c["refused"] > 0, f"{kind}: no case reached the library's checks"
    assert res.returncode == 0, res.stderr[-3000:]
