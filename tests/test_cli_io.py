"""The command line and the atomic writers."""

import json
from pathlib import Path

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


# -- every command: --out checked first, one-line errors, Ctrl-C -----------------------------
_OUT_COMMANDS = {
    "codes learn": (["codes", "learn"], "shrinkage.cli.codes", "learn"),
    "codes compare": (["codes", "compare"], "shrinkage.cli.codes", "compare"),
    "codes sweep": (["codes", "sweep"], "shrinkage.cli.codes", "sweep"),
    "activations train": (
        ["activations", "train", "--activation", "crelu", "--sparsity", "0.85"],
        "shrinkage.cli.activations",
        "train_run",
    ),
    "activations eoc": (["activations", "eoc"], "shrinkage.cli.activations", "edge_of_chaos"),
    "report": (["report"], "shrinkage.cli.report", "run_report"),
    "weights train": (["weights", "train"], "shrinkage.cli.weights", "train_run"),
    "weights sweep": (["weights", "sweep"], "shrinkage.cli.weights", "sweep"),
    "thresholds plot": (["thresholds", "plot"], "shrinkage.cli.thresholds", "plot_operators"),
}


def _no_work(*args, **kwargs):
    raise AssertionError("the command started its work before checking --out")


@pytest.mark.parametrize("name", sorted(_OUT_COMMANDS))
@pytest.mark.parametrize("where", ["a file", "below a file"])
def test_every_command_checks_out_before_any_work(name, where, tmp_path, monkeypatch, capsys):
    import importlib

    argv, module, work = _OUT_COMMANDS[name]
    monkeypatch.setattr(importlib.import_module(module), work, _no_work)
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    out = blocker if where == "a file" else blocker / "sub" / "x.png"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shrinkage: error: ") and "--out" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_library_entry_points_check_out_before_any_work(tmp_path, monkeypatch):
    from shrinkage.experiments import codes

    blocker = tmp_path / "taken"
    blocker.write_text("")
    monkeypatch.setattr(codes, "_sweep", _no_work)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        codes.compare(out=blocker)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_out_under_proc_is_refused_even_for_root(tmp_path, capsys):
    """os.access says yes to root for /proc (and for read-only mounts); the check makes an
    unnamed file instead, so `report --out /proc/x` is refused before its training, and a
    writable folder is left as it was."""
    from shrinkage._io import check_writable_dir

    assert main(["report", "--out", "/proc/shrinkage-report"]) == 2
    assert "is not writable" in capsys.readouterr().err
    assert check_writable_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_out_folder_is_refused(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(["thresholds", "plot", "--out", str(ro / "a" / "ops.png")]) == 2
        assert "not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize(
    "argv, says",
    [
        (["codes", "learn", "--atoms", "1.5"], "argument --atoms: invalid int value"),
        (["codes", "compare", "--penalties", ","], "argument --penalties: expected at least one"),
        (["codes", "compare", "--atoms", "16,x"], "argument --atoms: expected comma-separated"),
        (["weights", "sweep", "--sparsities", ","], "argument --sparsities: expected at least"),
        (["codes", "learn", "--threads", "0"], "threads must be an integer >= 1"),
        (["codes", "compare", "--threads", "0"], "threads must be an integer >= 1"),
        (["codes", "sweep", "--atoms", "0,64"], "atoms must be an integer >= 1"),
        (["codes", "learn", "--learn-tol", "-1"], "learn_tol must be >= 0"),
        (["weights", "train", "--threads", "0"], "threads must be an integer >= 1"),
        (["thresholds", "plot", "--out", "ops"], "--out='ops' needs a file extension among"),
        (["weights", "train", "--no-such-option"], "unrecognized arguments: --no-such-option"),
        # the sixth probe: values past float32 or int64, a finetune checkpoint torch cannot
        # read (a traceback, exit 1), a section asked for twice (run twice)
        (["weights", "train", "--lr", "1e300"], "lr must be at most 3.403e+38"),
        (["activations", "train", "--lr", "1e300"], "lr must be at most 3.403e+38"),
        (["weights", "train", "--seed", "99999999999999999999"], "seed must be an integer in"),
        (["weights", "train", "--seed", "-1"], "seed must be an integer >= 0"),
        (["weights", "finetune", "--checkpoint", "junk.pt"], "is not a saved state_dict"),
        (["report", "--sections", "weights,weights"], "sections lists 'weights' more than once"),
        (["weights", "sweep", "--penalty", "l0"], "unrecognized arguments: --penalty"),
    ],
)
def test_command_errors_are_one_line_naming_the_option(argv, says, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"{not a checkpoint}")
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors exit from the parser
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("shrinkage: error: ") and says in err, err
    assert "usage:" not in err and "Traceback" not in err and ".ops" not in err
    assert len(err.strip().splitlines()) == 1


def test_activations_threads_zero_is_refused(monkeypatch):
    from shrinkage.experiments import loop

    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        with loop.num_threads(0):
            pass


def test_ctrl_c_prints_one_line(monkeypatch, tmp_path, capsys):
    import shrinkage.cli.thresholds as th

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(th, "plot_operators", interrupted)
    assert main(["thresholds", "plot", "--out", str(tmp_path / "o.png")]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "shrinkage: interrupted"


def test_a_figure_path_without_extension_is_a_clear_error(tmp_path):
    from matplotlib.figure import Figure

    from shrinkage._io import save_figure

    with pytest.raises(ValueError, match="file extension must be one of"):
        save_figure(Figure(), tmp_path / "fig")
    assert list(tmp_path.iterdir()) == []


def test_missing_data_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHRINKAGE_DATA", str(tmp_path / "nowhere"))
    assert main(["weights", "train", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shrinkage: error: SHRINKAGE_DATA=") and len(err.splitlines()) == 1


def test_activations_eoc_runs_on_its_own_defaults(capsys):
    """The default cst with no --sparsity ran into "sparsity must be a number, got None";
    it takes activations train's default, 0.85."""
    assert main(["activations", "eoc", "--no-plots"]) == 0
    assert "sparsity 0.85" in capsys.readouterr().out.replace("=", " ")
