"""The C libraries: real files shipped as package data, built with every warning an error."""

import ctypes
import json

import pytest

from shrinkage import _native
from shrinkage._native.__main__ import main


def test_info_lists_every_library_and_its_source(capsys):
    assert main(["--info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["libraries"]) == set(_native.LIBRARIES) == {"codes", "spmm", "actmm", "prune"}
    for lib in info["libraries"].values():
        assert (_native.SOURCE_DIR / lib["source"]).is_file()
    assert (_native.SOURCE_DIR / "pool.h").is_file()


@pytest.mark.skipif(_native.compiler() is None, reason="no C compiler")
def test_strict_build_has_no_warning_and_the_abi_comes_from_the_define(
    tmp_path, monkeypatch, capsys
):
    """-Wall -Wextra -Werror: a warning fails the build (and this test, in CI)."""
    monkeypatch.setenv("SHRINKAGE_CACHE", str(tmp_path))
    assert main(["--build", "--strict"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in lines] == list(_native.LIBRARIES)
    for ln in lines:
        name, path = ln.split(": ")
        lib = ctypes.CDLL(path)
        assert getattr(lib, f"shrinkage_{name}_abi")() == _native.LIBRARIES[name].abi
        assert path.startswith(str(tmp_path))


@pytest.mark.skipif(_native.compiler() is None, reason="no C compiler")
def test_a_failing_build_names_the_library(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHRINKAGE_CACHE", str(tmp_path))
    monkeypatch.setattr(_native, "FLAG_SETS", (["-this-flag-does-not-exist"],))
    assert main(["--build"]) == 1
    assert "library 'codes' does not build" in capsys.readouterr().err
