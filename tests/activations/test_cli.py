"""``shrinkage activations eoc|plot|train``."""

import json

import pytest

from shrinkage.cli import main


def test_eoc_prints_config(capsys):
    assert (
        main(["activations", "eoc", "--activation", "cst", "--sparsity", "0.85", "--no-plots"]) == 0
    )
    out = capsys.readouterr().out
    assert "clipped_soft_threshold" in out and "sigma_w" in out and "stable" in out


def test_eoc_writes_plots(tmp_path):
    assert (
        main(
            [
                "activations",
                "eoc",
                "--activation",
                "crelu",
                "--sparsity",
                "0.7",
                "--depth",
                "6",
                "--width",
                "40",
                "--nets",
                "2",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    for name in ("variance_map.png", "dV_vs_m.png", "theory_vs_simulation.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_unstable_request_warns(capsys):
    assert (
        main(
            [
                "activations",
                "eoc",
                "--activation",
                "soft_threshold",
                "--sparsity",
                "0.7",
                "--no-plots",
            ]
        )
        == 0
    )
    assert "warning: unstable configuration" in capsys.readouterr().out


@pytest.mark.slow
def test_train_quick_writes_json(tmp_path):
    """A tiny run trains, measures per-layer sparsity on train and test data and writes them."""
    out = tmp_path / "run"
    assert (
        main(
            [
                "activations",
                "train",
                "--activation",
                "crelu",
                "--sparsity",
                "0.85",
                "--quick",
                "--epochs",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads((out / "result.json").read_text())
    assert len(res["test_sparsity_per_layer"]) == res["depth"] == 8
    assert 0.6 < res["test_sparsity_mean"] < 1.0 and 0.6 < res["train_sparsity_mean"] < 1.0
    assert 0.0 <= res["test_acc"] <= 1.0 and (out / "train.png").exists()


def test_bad_input_is_a_clean_error(capsys):
    assert main(["activations", "eoc", "--activation", "swish", "--sparsity", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "unknown activation 'swish'" in err and "'cst'" in err
    assert main(["activations", "eoc", "--activation", "cst", "--sparsity", "1.5"]) == 2


def test_markdown_table_reports_gap_and_failure():
    from shrinkage.experiments.activations import markdown_table

    row = dict(
        m=None,
        target_sparsity=None,
        train_acc=0.9,
        test_sparsity=0.5,
        train_sparsity=0.5,
        diverged=False,
        diverged_at_step=None,
        init_q_last=1.0,
    )
    rows = [
        dict(row, label="relu", test_acc=0.95),
        dict(row, label="cst", m=0.9, target_sparsity=0.85, test_acc=0.93),
        dict(row, label="st", test_acc=0.1, diverged=True, diverged_at_step=0),
    ]
    text = markdown_table(rows)
    assert "| cst | 0.9 | 0.9300 | -2.0 |" in text
    assert "loss not finite at step 0" in text


def test_options_do_what_they_say(capsys):
    """An explicit --m is the level trained with (it was multiplied by --m-scale); --m-scale
    with an explicit --m is refused; --n-train 0 is not 'everything'."""
    from shrinkage.experiments.activations import _edge_of_chaos, train_run

    cfg, _ = _edge_of_chaos("crelu", 0.85, 1.0, 1.0, 0.7)
    assert cfg.m == 1.0
    safe, _ = _edge_of_chaos("crelu", 0.85, 1.0, "safe", 0.7)
    plain, _ = _edge_of_chaos("crelu", 0.85, 1.0, "safe", 1.0)
    assert safe.m == pytest.approx(0.7 * plain.m)
    argv = ["activations", "train", "--activation", "crelu", "--sparsity", "0.85", "--m", "1.0"]
    assert main([*argv, "--m-scale", "0.5"]) == 2
    assert "--m-scale scales the safe clipping level" in capsys.readouterr().err
    with pytest.raises(ValueError, match="n_train must be an integer >= 1"):
        train_run("crelu", 0.85, n_train=0)


@pytest.mark.slow
def test_train_resumes_bitwise_after_an_interruption(tmp_path, monkeypatch):
    from shrinkage.experiments import checkpoint, loop
    from shrinkage.experiments.activations import train_run

    monkeypatch.setattr(checkpoint, "EVERY_SECONDS", 0.0)
    kw = dict(quick=True, n_train=512, epochs=2.0, progress=False, seed=3)
    whole = train_run("crelu", 0.85, out=tmp_path / "a", **kw)
    real, calls = loop._step, []

    def dies(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(loop, "_step", dies)
    with pytest.raises(KeyboardInterrupt):
        train_run("crelu", 0.85, out=tmp_path / "b", **kw)
    monkeypatch.setattr(loop, "_step", real)
    with pytest.raises(ValueError, match="pass --resume"):
        train_run("crelu", 0.85, out=tmp_path / "b", resume=False, **kw)
    resumed = train_run("crelu", 0.85, out=tmp_path / "b", resume=True, **kw)
    for key in ("test_acc", "train_acc", "test_sparsity_per_layer", "steps"):
        assert resumed[key] == whole[key], key
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in whole["history"]]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in resumed["history"]] == strip
