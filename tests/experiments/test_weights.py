"""train_run / sweep / the CLI on tiny data: files, consistency of the squashed checkpoint."""

import csv
import json

import pytest
import torch

from shrinkage.cli import main
from shrinkage.experiments.weights import TrainConfig, evaluate, markdown_table, sweep, train_run
from shrinkage.models import lenet_300_100
from tests.experiments._digits import digits

_data = digits


@pytest.mark.filterwarnings("error")  # a normal run warns about nothing
def test_train_run_writes_everything_and_the_checkpoint_is_plain(tmp_path):
    data = _data()
    cfg = TrainConfig(
        model="lenet_300_100",
        method="st3",
        sparsity=0.9,
        epochs=3,
        batch_size=32,
        lr=0.05,
        progress=False,
        out=str(tmp_path / "r"),
    )
    res = train_run(cfg, data=data)
    out = tmp_path / "r"
    files = ("config.json", "history.json", "result.json", "report.txt", "model.pt", "curves.png")
    for name in files:
        assert (out / name).is_file(), name
    hist = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert hist[-1]["target_sparsity"] == pytest.approx(0.9)
    assert res["sparsity"] == pytest.approx(0.9, abs=1e-4)
    assert res["sparse_macs"] == pytest.approx(0.1 * res["dense_macs"], rel=1e-3)
    # squash changes nothing, and a model built without shrinkage reproduces the accuracy
    assert res["test_acc_squashed"] == res["test_acc"]
    plain = lenet_300_100()
    plain.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    assert evaluate(plain, data[2], data[3]) == res["test_acc"]
    zeros = sum(int((p == 0).sum()) for n, p in plain.named_parameters() if n.endswith("weight"))
    assert zeros == int(0.9 * 266_200)
    assert res["test_acc"] > 0.3  # learns something on a separable problem (chance: 0.1)


def test_train_config_errors():
    with pytest.raises(ValueError, match="prune_start"):
        TrainConfig(prune_start=0.6, prune_end=0.5).check()
    with pytest.raises(ValueError, match="unknown model"):
        TrainConfig(model="vgg").check()
    with pytest.raises(ValueError, match="max_batches"):
        TrainConfig(max_batches=0).check()
    with pytest.raises(ValueError, match=r"min_density=0.2 .*sparsity=0.9"):
        TrainConfig(sparsity=0.9, min_density=0.2).check()
    TrainConfig(sparsity=0.99, min_density=0.01).check()  # the floor at the target: allowed


@pytest.mark.slow
def test_sweep_csv_plots_and_resume(tmp_path):
    data = _data(n=128, nt=64)
    base = TrainConfig(model="lenet_300_100", epochs=1, batch_size=64, progress=False)
    rows = sweep(base, ["lenet_300_100"], ["st3", "gmp"], [0.9], [0], tmp_path, data=data)
    got = [(r["method"], r["sparsity"], r["seed"]) for r in rows]
    assert got == [("gmp", 0.9, 0), ("st3", 0.9, 0)]
    with open(tmp_path / "sweep.csv") as f:
        assert len(list(csv.DictReader(f))) == 2
    assert (tmp_path / "lenet_300_100_acc_vs_sparsity.png").stat().st_size > 1000
    assert (tmp_path / "lenet_300_100_acc_vs_macs.png").stat().st_size > 1000
    table = markdown_table(rows, "lenet_300_100").splitlines()
    assert table[0] == "| method | s = 0.9 |"
    acc_st3 = 100 * [r for r in rows if r["method"] == "st3"][0]["test_acc"]
    assert table[3].startswith(f"| st3 | {acc_st3:.2f}, ")
    done = tmp_path / "lenet_300_100_st3_s0.9_seed0" / "result.json"
    stamp = done.stat().st_mtime_ns
    sweep(base, ["lenet_300_100"], ["st3"], [0.9], [0], tmp_path, data=data)
    assert done.stat().st_mtime_ns == stamp  # finished runs are not redone


@pytest.mark.slow
def test_cli_train_on_mnist_subset(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(
        [
            "weights",
            "train",
            "--model",
            "lenet5",
            "--method",
            "gmp",
            "--sparsity",
            "0.95",
            "--epochs",
            "1",
            "--subset",
            "256",
            "--test-subset",
            "200",
            "--max-batches",
            "2",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "total" in text and "test accuracy" in text
    res = json.loads((out / "result.json").read_text())
    assert res["sparsity"] == pytest.approx(0.95, abs=1e-4)
    assert res["config"]["model"] == "lenet5"


def test_cli_bad_input_is_a_clean_error(tmp_path, capsys):
    rc = main(["weights", "train", "--sparsity", "1.2", "--out", str(tmp_path)])
    assert rc == 2
    assert "sparsity" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # argparse refuses it, in the same format
        main(["weights", "sweep", "--sparsities", "0.9,x", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("shrinkage: error: argument --sparsities")


def test_sweep_reuses_a_run_only_when_its_whole_recipe_matches(tmp_path):
    """Same folder, another recipe: refused before any training, naming the run and the
    fields; the CSV records the recipe of every run."""
    data = _data(n=128, nt=64)
    base = TrainConfig(model="lenet_300_100", epochs=1, batch_size=64, progress=False)
    sweep(base, ["lenet_300_100"], ["st3"], [0.9], [0], tmp_path, data=data)
    done = tmp_path / "lenet_300_100_st3_s0.9_seed0" / "result.json"
    before = done.read_bytes()
    for change in ({"epochs": 2}, {"lr": 0.05}, {"schedule": "linear"}, {"clip": 0.0}):
        with pytest.raises(ValueError, match=f"another recipe \\({next(iter(change))} "):
            sweep(base.replace(**change), ["lenet_300_100"], ["st3"], [0.9], [0], tmp_path, data)
    assert done.read_bytes() == before  # nothing redone, nothing overwritten
    # progress and thread count do not change the numbers: the run is reused
    sweep(
        base.replace(progress=True, threads=1),
        ["lenet_300_100"],
        ["st3"],
        [0.9],
        [0],
        tmp_path,
        data,
    )
    assert done.read_bytes() == before
    with open(tmp_path / "sweep.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["lr"], row["batch_size"], row["schedule"], row["clip"]) == (
        "0.1",
        "64",
        "cubic",
        "3.0",
    )
    assert row["diverged"] == "False"


def test_an_interrupted_run_resumes_bitwise(tmp_path, monkeypatch, interrupt):
    """weights train killed in the middle of an epoch, then resumed: the same model, the same
    history, the same result as the uninterrupted run (checkpoints after every step here)."""
    from shrinkage.experiments import checkpoint, loop

    monkeypatch.setattr(checkpoint, "EVERY_SECONDS", 0.0)
    data = _data(n=256, nt=64)
    cfg = TrainConfig(
        model="lenet_300_100",
        method="st3",
        sparsity=0.9,
        epochs=2,
        batch_size=32,
        lr=0.05,
        progress=False,
    )
    whole = train_run(cfg.replace(out=str(tmp_path / "a")), data=data)
    interrupt(loop, "_step", 11)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg.replace(out=str(tmp_path / "b")), data=data)
    interrupt.restore()
    with pytest.raises(ValueError, match="pass --resume"):
        train_run(cfg.replace(out=str(tmp_path / "b")), data=data, resume=False)
    resumed = train_run(cfg.replace(out=str(tmp_path / "b")), data=data, resume=True)
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for key in ("test_acc", "sparsity", "nonzero"):
        assert resumed[key] == whole[key]
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in whole["history"]]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in resumed["history"]] == strip
    assert not (tmp_path / "b" / "checkpoint.pt").exists()


def test_a_diverging_run_is_reported_not_successful(tmp_path):
    data = _data(n=256, nt=64)
    cfg = TrainConfig(
        model="lenet_300_100", epochs=2, batch_size=32, lr=1e6, progress=False, out=str(tmp_path)
    )
    res = train_run(cfg, data=data)
    assert res["diverged"] and res["diverged_at_step"] < 16
    assert json.loads((tmp_path / "result.json").read_text())["diverged"] is True


def test_the_command_exits_1_on_a_diverged_run(tmp_path, monkeypatch, capsys):
    import shrinkage.cli.weights as cli_weights

    data = _data(n=256, nt=64)
    real = cli_weights.train_run
    monkeypatch.setattr(cli_weights, "train_run", lambda cfg, resume: real(cfg, data, resume))
    argv = ["weights", "train", "--model", "lenet_300_100", "--epochs", "1", "--lr", "1e6"]
    assert main([*argv, "--batch-size", "32", "--no-progress", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "shrinkage: error: training diverged at step" in err and "lower --lr (got 1e+06)" in err


def test_options_that_would_be_ignored_are_refused():
    with pytest.raises(ValueError, match="penalty only applies to method prox_ste"):
        TrainConfig(method="st3", penalty="l1/2").check()
    TrainConfig(method="prox_ste", penalty="l1/2").check()
    with pytest.raises(ValueError, match="rescale 'on' does not apply to method 'rigl'"):
        TrainConfig(method="rigl", rescale="on").check()


def test_rigl_init_is_checked_and_reaches_the_sparsifier(monkeypatch):
    import shrinkage.experiments.weights as ew

    with pytest.raises(ValueError, match="unknown rigl_init 'he'"):
        TrainConfig(method="rigl", rigl_init="he").check()
    seen = []
    real = ew.Sparsifier
    monkeypatch.setattr(
        ew, "Sparsifier", lambda *a, **k: seen.append(k["method_params"]["init"]) or real(*a, **k)
    )
    cfg = TrainConfig(
        model="lenet_300_100", method="rigl", sparsity=0.9, epochs=1, batch_size=64, progress=False
    )
    for value in ("sparse", "dense"):
        train_run(cfg.replace(rigl_init=value), data=_data(n=64, nt=32))
    assert seen == ["sparse", "dense"]


def test_rescale_off_reaches_the_sparsifier(monkeypatch):
    """--rescale off: st3 without its per-channel rescale (the ablation), on only when asked."""
    import shrinkage.experiments.weights as ew

    seen = []
    real = ew.Sparsifier
    monkeypatch.setattr(
        ew, "Sparsifier", lambda *a, **k: seen.append(k["rescale"]) or real(*a, **k)
    )
    cfg = TrainConfig(model="lenet_300_100", sparsity=0.5, epochs=1, batch_size=64, progress=False)
    for value in ("off", "on", "default"):
        train_run(cfg.replace(rescale=value), data=_data(n=64, nt=32))
    assert seen == [False, True, None]


def test_a_disconnected_network_says_so(tmp_path):
    from shrinkage.weights import PrunedLayerWarning

    data = _data(n=128, nt=64)
    cfg = TrainConfig(
        model="lenet_300_100",
        method="st3sigma",
        schedule="constant",
        sparsity=0.99,
        epochs=1,
        batch_size=64,
        progress=False,
    )
    with pytest.warns(PrunedLayerWarning):
        res = train_run(cfg, data=data)
    assert res["empty_layers"]
    res = train_run(cfg.replace(min_density=0.01), data=data)
    assert res["empty_layers"] == []


@pytest.mark.slow
def test_cli_sweep_runs_str_and_rigl_at_the_exact_sparsity(tmp_path, monkeypatch):
    """`weights sweep --methods str,rigl`: both train under the sweep's one recipe; str ends at
    exactly floor(s N) zeros, rigl's masks hold exactly the complement (a connection grown
    where the gradient keeps being 0, from a dead unit, may still be 0)."""
    import shrinkage.cli.weights as cli_weights

    data = _data(n=256, nt=64)
    real = cli_weights.sweep
    monkeypatch.setattr(cli_weights, "sweep", lambda *a: real(*a, data=data))
    argv = ["weights", "sweep", "--model", "lenet_300_100", "--methods", "str,rigl"]
    argv += ["--sparsities", "0.95", "--seeds", "0", "--epochs", "2", "--batch-size", "32"]
    argv += ["--rigl-every", "3", "--no-progress", "--out", str(tmp_path)]
    assert main(argv) == 0
    with open(tmp_path / "sweep.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"str", "rigl"}
    zeros = {m: int(r["params"]) - int(r["nonzero"]) for m, r in rows.items()}
    assert zeros["str"] == int(0.95 * 266_200)
    assert 0 <= zeros["rigl"] - int(0.95 * 266_200) < 100
    assert rows["rigl"]["rigl_every"] == "3"
    res = json.loads((tmp_path / "lenet_300_100_str_s0.95_seed0" / "result.json").read_text())
    assert 0.0 <= res["history"][-1]["learned_sparsity"] <= 1.0
    res = json.loads((tmp_path / "lenet_300_100_rigl_s0.95_seed0" / "result.json").read_text())
    assert res["test_acc"] > 0.2  # learns something (chance: 0.1)


def test_eval_split_val_never_reads_the_test_images(monkeypatch):
    """Tuning runs (eval_split='val') measure on MNIST's held-out validation images."""
    import shrinkage.experiments.weights as ew

    asked = []

    def fake_mnist(split):
        asked.append(split)
        x, y, xt, yt = _data(n=128, nt=64)
        return (x, y) if split == "train" else (xt, yt)

    monkeypatch.setattr(ew, "mnist", fake_mnist)
    cfg = TrainConfig(model="lenet_300_100", sparsity=0.5, epochs=1, batch_size=64, progress=False)
    res = train_run(cfg.replace(eval_split="val"))
    assert asked == ["train", "val"] and res["eval_split"] == "val"
    with pytest.raises(ValueError, match="unknown eval_split 'train'"):
        cfg.replace(eval_split="train").check()
    with pytest.raises(ValueError, match="scope 'layer' does not apply to rigl"):
        cfg.replace(method="rigl", scope="layer").check()


def test_a_folder_holding_another_recipes_run_is_not_written_over(tmp_path):
    """`weights train --out runA` twice with another sparsity replaced every file of the
    first run (and a second run killed early left its config.json over the first's
    results); now refused before anything is written. The same recipe runs again."""
    data = _data(n=64, nt=32)
    cfg = TrainConfig(
        model="lenet_300_100", sparsity=0.5, epochs=1, batch_size=32, progress=False,
        out=str(tmp_path / "runA"),
    )  # fmt: skip
    train_run(cfg, data=data)
    before = {p.name: p.read_bytes() for p in (tmp_path / "runA").iterdir()}
    with pytest.raises(ValueError, match="holds a run of another recipe.*sparsity"):
        train_run(cfg.replace(sparsity=0.9), data=data)
    assert {p.name: p.read_bytes() for p in (tmp_path / "runA").iterdir()} == before
    again = train_run(cfg, data=data)
    assert again["config"]["sparsity"] == 0.5
