"""The command line and the atomic writers."""

import json

import numpy as np
import pytest

from shrinkage._io import atomic_path, write_json
from shrinkage.cli import main


def test_thresholds_plot_writes_png(tmp_path, capsys):
    out = tmp_path / "sub" / "ops.png"
    assert main(["thresholds", "plot", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    img = matplotlib.image.imread(out)
    assert img.shape[0] > 500 and img.std() > 0.05  # a real figure, not a blank canvas


def test_bad_cli_input_is_a_clean_error(tmp_path, capsys):
    out = tmp_path / "ops.png"
    assert main(["thresholds", "plot", "--lam", "-1", "--out", str(out)]) == 2
    assert "lam must be >= 0" in capsys.readouterr().err
    assert not out.exists()


def test_list_prints_every_penalty(capsys):
    from shrinkage.thresholds import PENALTIES

    assert main(["thresholds", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in lines] == list(PENALTIES)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "r.json"
    write_json(p, {"a": np.float32(1.5), "b": np.arange(3)})
    assert json.loads(p.read_text()) == {"a": 1.5, "b": [0, 1, 2]}
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("crash mid-write")
    assert json.loads(p.read_text())["a"] == 1.5
    assert list(tmp_path.iterdir()) == [p]  # no temporary left behind


def test_atomic_write_has_the_usual_file_mode(tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    p = write_json(tmp_path / "r.json", {})
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask
