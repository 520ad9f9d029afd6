"""The native kernels under AddressSanitizer and UndefinedBehaviorSanitizer, in one test.

Both C libraries are rebuilt with ``-fsanitize=address,undefined`` (a fresh cache folder) and
driven in a subprocess (``tests/_sanitize.py``; libasan must be loaded first, so the
subprocess runs with ``LD_PRELOAD``) through the library's own paths: exported layers on edge
shapes and on the fuzzer's damaged checkpoints, the l1 encoder and the dictionary update.
A second run reads out of bounds on purpose and must be stopped by AddressSanitizer, so a
build that is not instrumented cannot pass for a clean one. ``SHRINKAGE_FUZZ_CASES`` sets how
many fuzzed checkpoints are driven through the kernels (default 60).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import shrinkage
from shrinkage import _native

pytestmark = pytest.mark.slow  # sanitized builds and a subprocess

ROOT = Path(__file__).resolve().parents[1]


def _runtime(tmp_path) -> tuple[list[str] | None, str]:
    """(the libraries to preload, why not) for this machine's compiler."""
    cc = _native.compiler()
    if cc is None:
        return None, "no C compiler"
    libs = []
    for name in ("libasan.so", "libstdc++.so.6"):
        res = subprocess.run(
            [*cc.split(), f"-print-file-name={name}"], capture_output=True, text=True
        )
        path = res.stdout.strip()
        if res.returncode or not os.path.isabs(path) or not os.path.exists(path):
            return None, f"{cc} has no {name} to preload (the sanitizer runtime is not installed)"
        libs.append(path)
    src = tmp_path / "probe.c"
    src.write_text("int probe(int *a, int i) { return a[i] + 1; }\n")
    res = subprocess.run(
        [
            *cc.split(),
            "-fsanitize=address,undefined",
            "-shared",
            "-fPIC",
            "-o",
            str(tmp_path / "p.so"),
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    if res.returncode:
        return None, f"{cc} cannot build with -fsanitize=address,undefined: {res.stderr[-300:]}"
    return libs, ""


def _run(args, libs, cache, timeout=900):
    env = dict(os.environ)
    env.update(
        LD_PRELOAD=" ".join(libs),
        ASAN_OPTIONS="detect_leaks=0:halt_on_error=1",
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
        SHRINKAGE_CACHE=str(cache),
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(Path(shrinkage.__file__).parents[1]), str(ROOT)]),
    )
    return subprocess.run(
        [sys.executable, "-m", "tests._sanitize", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_native_kernels_under_address_and_undefined_behaviour_sanitizers(tmp_path):
    libs, why = _runtime(tmp_path)
    if libs is None:
        pytest.skip(why)
    cases = os.environ.get("SHRINKAGE_FUZZ_CASES", "60")
    res = _run(["--fuzz-cases", cases], libs, tmp_path / "cache")
    assert res.returncode == 0, res.stderr[-4000:]
    assert "-fsanitize=address,undefined" in res.stdout and "no report" in res.stdout
    # the same build catches a real out-of-bounds read: it is instrumented
    res = _run(["--self-check"], libs, tmp_path / "cache")
    assert res.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in res.stderr, res.stderr[-2000:]
    assert "spmm.c" in res.stderr
