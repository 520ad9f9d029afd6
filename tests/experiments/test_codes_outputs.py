"""``codes learn|compare`` output folders: the checkpoint outlives the last result file, the
dictionaries are written atomically before the "done" marker, another command's folder is
refused before any work, and a monitor larger than the training set is refused."""

import argparse
import json
import re

import numpy as np
import pytest

import shrinkage.cli as shrinkage_cli
from shrinkage.cli import codes as cli
from shrinkage.codes import v1
from shrinkage.experiments import codes as ec
from shrinkage.experiments import codes_sweep as sw

TINY = ["--penalty", "l1", "--lam", "0.3", "--atoms", "4", "--patches", "200", "--test", "50"]
TINY += ["--size", "6", "--no-analysis"]


def _run(argv):
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return args.func(args)


def test_learn_keeps_checkpoint_until_metrics_written(tmp_path, monkeypatch):
    """A Ctrl-C while `codes learn` writes its figures once left no checkpoint (removed by
    learn() before the command wrote anything): --resume learned the dictionary again. Now
    the checkpoint stays until metrics.json is written, and --resume picks it up."""
    out = tmp_path / "x"

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(v1, "plot_atoms", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        _run(["codes", "learn", *TINY, "--out", str(out)])
    assert (out / "checkpoint.pt").is_file()
    assert not (out / "metrics.json").exists()
    monkeypatch.undo()
    restored = []
    real = ec._learn_state
    monkeypatch.setattr(ec, "_learn_state", lambda *a, **k: restored.append(1) or real(*a, **k))
    assert _run(["codes", "learn", *TINY, "--out", str(out), "--resume"]) == 0
    assert restored, "the finished learning was not resumed from the checkpoint"
    assert (out / "metrics.json").is_file() and (out / "atoms.png").is_file()
    assert not (out / "checkpoint.pt").exists()


def test_learn_library_call_removes_checkpoint_after_on_done(tmp_path):
    """Without the command, learn() still ends with no checkpoint; an on_done that fails
    leaves it for a resume."""
    kw = dict(penalty="l1", lam=0.3, n_atoms=4, n_patches=200, n_test=50, size=6, analyse=False)
    ec.learn(out=tmp_path / "a", **kw)
    assert not (tmp_path / "a" / "checkpoint.pt").exists()

    def fail(res):
        assert "D" in res and (tmp_path / "b" / "checkpoint.pt").is_file()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        ec.learn(out=tmp_path / "b", on_done=fail, **kw)
    assert (tmp_path / "b" / "checkpoint.pt").is_file()


def _fake_compare():
    rows = [
        {"penalty": "l1", "n_atoms": 4, "threshold": t, "relative_error": e, "active_fraction": a}
        for t, e, a in ((0.3, 0.4, 0.2), (0.8, 0.6, 0.05))
    ]
    result = {"rows": rows, "matched": [], "error_levels": [0.5], "config": {}}
    dicts = {("l1", 4, r["threshold"]): np.full((4, 36), r["threshold"]) for r in rows}
    return result, dicts


def test_compare_writes_dictionaries_atomically_and_marker_last(tmp_path, monkeypatch):
    """`codes compare` once wrote compare.json first and each D_*.npy with a plain np.save:
    a kill during the second left a compare.json listing every run beside a truncated .npy
    under its final name. Now no half-written .npy is ever under its name, and compare.json
    (the "done" marker) is written only after every dictionary."""
    result, dicts = _fake_compare()
    real, calls = np.save, []

    def killed_save(file, arr, *a, **k):
        calls.append(file)
        if len(calls) == 2:
            with open(file, "wb") as fh:
                fh.write(b"\x93NUMPY" + b"\0" * 40)  # the first bytes only
            raise KeyboardInterrupt
        return real(file, arr, *a, **k)

    monkeypatch.setattr(np, "save", killed_save)
    with pytest.raises(KeyboardInterrupt):
        ec.write_outputs(result, dicts, {}, tmp_path)
    monkeypatch.undo()
    assert not (tmp_path / "compare.json").exists()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert not [n for n in names if n.startswith(".")], names  # no temporary file left
    for p in tmp_path.glob("D_*.npy"):
        assert np.load(p).shape == (4, 36)
    ec.write_outputs(result, dicts, {}, tmp_path)
    assert json.loads((tmp_path / "compare.json").read_text())["rows"] == result["rows"]
    for (_, _, thr), D in dicts.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"D_l1_4_{thr}.npy"), D)


def _compare_folder(path):
    path.mkdir()
    (path / "compare.json").write_text(json.dumps({"rows": [], "config": {}}))
    (path / "nxny.png").write_bytes(b"comparison's figure")
    return path


def _weights_sweep_folder(path):
    run = path / "lenet_300_100_st3_s0.5_seed0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"method": "st3"}))
    (run / "result.json").write_text(json.dumps({"config": {"method": "st3"}}))
    (path / "sweep.csv").write_text("model,method\nlenet_300_100,st3\n")
    return path


def _snapshot(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "make, held",
    [(_compare_folder, "codes compare.*compare.json"), (_weights_sweep_folder, "weights sweep")],
)
def test_learn_and_sweep_refuse_another_commands_folder(tmp_path, monkeypatch, make, held):
    """A `codes compare` folder (no config.json) was accepted by `codes learn --out` and
    `codes sweep --out`, which replaced its figures; `codes sweep` replaced a weights
    sweep's sweep.csv. Both now refuse, before any work, naming what the folder holds."""
    folder = make(tmp_path / "other")
    before = _snapshot(folder)
    monkeypatch.setattr(ec, "_learn", lambda *a, **k: pytest.fail("learning started"))
    monkeypatch.setattr(sw, "held_out", lambda *a, **k: pytest.fail("sweep started"))
    pattern = rf"{re.escape(str(folder))} holds the output of another command \(.*{held}"
    with pytest.raises(ValueError, match=pattern) as e:
        ec.learn(out=folder, penalty="l1", n_atoms=4, n_patches=200, n_test=50, size=6)
    assert "--out" in str(e.value)
    with pytest.raises(ValueError, match=pattern):
        sw.sweep(folder, penalties=("l1",), atoms=(4,), thresholds=(0.5,), size=6)
    assert _snapshot(folder) == before


def test_compare_refuses_a_weights_sweep_folder(tmp_path, monkeypatch):
    """`codes compare` refused folders with a config.json only: a weights sweep's folder
    (its runs and sweep.csv, no config.json at the top) was written over."""
    folder = _weights_sweep_folder(tmp_path / "other")
    before = _snapshot(folder)
    monkeypatch.setattr(ec, "_sweep", lambda *a, **k: pytest.fail("comparison started"))
    with pytest.raises(ValueError, match="holds the output of another command.*weights sweep"):
        ec.compare(out=folder, penalties=("l1",), atoms=(4,), thresholds=(0.5,), size=6)
    assert _snapshot(folder) == before


def test_monitor_larger_than_training_patches_refused(tmp_path, monkeypatch, capsys):
    """`codes learn --monitor 100000 --patches 300` once monitored the 300 patches there
    are and recorded monitor 100000; now refused by name with both numbers."""
    out = tmp_path / "m"
    with pytest.raises(ValueError, match=r"--monitor.*300 training patches.*monitor=100000"):
        ec.LearnRecipe(monitor=100_000, n_patches=300).check()
    with pytest.raises(ValueError, match=r"--monitor.*300 training patches.*monitor=301"):
        ec.CompareRecipe(monitor=301, n_patches=300).check()
    ec.LearnRecipe(monitor=300, n_patches=300).check()
    monkeypatch.setattr(ec, "_learn", lambda *a, **k: pytest.fail("learning started"))
    rc = shrinkage_cli.main(["codes", "learn", *TINY, "--monitor", "1000", "--out", str(out)])
    assert rc == 2 and "--monitor" in capsys.readouterr().err
    assert not out.exists()
    monkeypatch.undo()
    # own data with fewer rows than n_patches
    Xtr, Xte = np.random.default_rng(0).standard_normal((2, 40, 36))
    with pytest.raises(ValueError, match=r"--monitor.*40 training patches.*monitor=50"):
        ec.learn(data=(Xtr, Xte), monitor=50, n_atoms=4, size=6, analyse=False)
