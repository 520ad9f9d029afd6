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
