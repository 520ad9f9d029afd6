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
def test_train_small_writes_json(tmp_path, capsys):
    """A tiny run trains, measures per-layer sparsity on train and test data, holds it at the
    target and writes it with the recipe."""
    out = tmp_path / "run"
    argv = [
        "activations",
        "train",
        "--activation",
        "crelu",
        "--sparsity",
        "0.85",
        "--depth",
        "8",
        "--width",
        "32",
        "--epochs",
        "1",
        "--n-train",
        "2000",
        "--n-eval",
        "500",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    res = json.loads((out / "result.json").read_text())
    assert len(res["test_sparsity_per_layer"]) == res["depth"] == 8
    assert res["sparsity_max_error"] < 0.05
    assert 0.0 <= res["test_acc"] <= 1.0 and (out / "train.png").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["depth"] == 8 and cfg["m"] == "auto" and cfg["control"] == 0.1
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "target 0.85" in printed


@pytest.mark.parametrize(
    "flag,value,match",
    [
        ("--m", "big", "m must be"),
        ("--lr", "0", "lr"),
        ("--control", "2", "control"),
        ("--n-train", "0", "n_train"),
        ("--model", "rnn", "model"),
        ("--sparsity", "1.2", "sparsity"),
        ("--warmup", "9", "warmup"),
        ("--input-pool", "5", "input_pool"),
        ("--seed", "-1", "seed must be an integer >= 0"),
        # more images than the source holds: refused, not silently fewer
        ("--n-train", "1000000000", "n_train must be at most the"),
        ("--n-eval", "10001", "n_eval must be at most the 10,000 MNIST test images"),
    ],
)
def test_train_options_refused_before_any_work(tmp_path, capsys, flag, value, match):
    out = tmp_path / "never"
    assert main(["activations", "train", flag, value, "--out", str(out)]) == 2
    assert match in capsys.readouterr().err
    assert not out.exists()


def test_bad_input_is_a_clean_error(capsys):
    assert main(["activations", "eoc", "--activation", "swish", "--sparsity", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "unknown activation 'swish'" in err and "'cst'" in err
    assert main(["activations", "eoc", "--activation", "cst", "--sparsity", "1.5"]) == 2


def test_markdown_table_reports_gap_spread_and_flags():
    from shrinkage.experiments.activations import markdown_table

    row = dict(
        model="mlp",
        depth=50,
        width=300,
        m=None,
        target_sparsity=None,
        train_acc=0.9,
        test_sparsity=0.5,
        sparsity_max_error=None,
        flags=[],
        init_q_last=1.0,
        seconds=1.0,
    )
    rows = [
        dict(row, label="relu", activation="relu", seed=0, test_acc=0.95),
        dict(row, label="relu", activation="relu", seed=1, test_acc=0.97),
        dict(
            row,
            label="cst",
            activation="clipped_soft_threshold",
            seed=0,
            m=0.9,
            target_sparsity=0.85,
            sparsity_max_error=0.01,
            test_acc=0.93,
        ),
        dict(
            row,
            label="st",
            activation="soft_threshold",
            seed=0,
            test_acc=0.1,
            target_sparsity=0.85,
            sparsity_max_error=0.2,
            flags=["diverged"],
        ),
    ]
    text = markdown_table(rows)
    assert "| relu | mlp | 50 | 300 | - | 2 | 96.00 ± 1.00 |  |" in text
    assert "| cst | mlp | 50 | 300 | 0.9 | 1 | 93.00 ± 0.00 | -3.00 | 0.500 | 0.010 |  |" in text
    assert text.rstrip().endswith("| diverged |")


@pytest.mark.slow
def test_train_resumes_bitwise_after_an_interruption(tmp_path, monkeypatch, interrupt):
    """activations train killed within an epoch keeps a checkpoint; resumed, it ends as the
    uninterrupted run (checkpoints after every step here); without resume it is not
    overwritten."""
    from shrinkage.experiments import checkpoint, loop
    from shrinkage.experiments.activations import train_run

    monkeypatch.setattr(checkpoint, "EVERY_SECONDS", 0.0)
    kw = dict(depth=4, width=16, epochs=2.0, n_train=512, n_eval=256, progress=False, seed=3)
    whole = train_run("crelu", 0.85, out=str(tmp_path / "a"), **kw)
    interrupt(loop, "_step", 5)
    with pytest.raises(KeyboardInterrupt):
        train_run("crelu", 0.85, out=str(tmp_path / "b"), **kw)
    interrupt.restore()
    with pytest.raises(ValueError, match="pass --resume"):
        train_run("crelu", 0.85, out=str(tmp_path / "b"), resume=False, **kw)
    resumed = train_run("crelu", 0.85, out=str(tmp_path / "b"), resume=True, **kw)
    for key in ("test_acc", "train_acc", "test_sparsity_per_layer", "steps"):
        assert resumed[key] == whole[key], key
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in whole["history"]]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in resumed["history"]] == strip


@pytest.mark.parametrize("plots", [[], ["--no-plots"]])
def test_eoc_refuses_no_networks_before_writing_anything(tmp_path, capsys, plots):
    """--nets 0 failed after two plots were written; with --no-plots -1 was accepted."""
    for nets in ("0", "-1"):
        args = ["activations", "eoc", "--activation", "crelu", "--sparsity", "0.85"]
        args += ["--nets", nets, "--out", str(tmp_path / "o"), *plots]
        assert main(args) == 2
        assert "--nets must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
