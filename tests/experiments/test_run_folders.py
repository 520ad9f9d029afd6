"""Weights runs and sweeps: what a run folder may hold, resumes that must not go on silently,
and recorded settings that must match what ran (the eighth bad-input probe)."""

import json
import shutil

import pytest
import torch

from shrinkage.cli import main
from shrinkage.experiments import checkpoint
from shrinkage.experiments.finetune import FinetuneConfig, finetune
from shrinkage.experiments.weights import (
    TrainConfig,
    parse_activation,
    summarize,
    sweep,
    train_run,
)
from tests.experiments._digits import digits


def _data(n=128, nt=64):
    return digits(n, nt)


BASE = TrainConfig(
    model="lenet_300_100",
    method="st3",
    sparsity=0.9,
    epochs=1,
    batch_size=32,
    lr=0.05,
    progress=False,
)


def test_a_sweep_folder_holds_one_recipe(tmp_path):
    """Two sweeps of different recipes into one folder were pooled into one curve (their means
    reported as seeds of one recipe); the second is now refused before it trains."""
    data = _data()
    out = tmp_path / "sw"
    sweep(BASE, ["lenet_300_100"], ["st3"], [0.9], [0], out, data=data)
    with pytest.raises(ValueError, match=r"another recipe \(epochs 2 here, 1 there"):
        sweep(BASE.replace(epochs=2), ["lenet_300_100"], ["st3"], [0.9], [1], out, data=data)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["lenet_300_100_st3_s0.9_seed0"]
    # the same recipe with another grid shares the folder, as documented
    rows = sweep(BASE, ["lenet_300_100"], ["st3"], [0.9], [1], out, data=data)
    assert [r["seed"] for r in rows] == [0, 1]
    # summarize on its own refuses runs of two recipes put side by side by hand
    other = out / "lenet_300_100_st3_s0.9_seed1"
    res = json.loads((other / "result.json").read_text())
    res["config"]["lr"] = 0.5
    (other / "result.json").write_text(json.dumps(res))
    with pytest.raises(ValueError, match="runs of different recipes"):
        summarize(out)


def test_a_sweep_refuses_another_commands_folder_and_names_a_damaged_file(tmp_path):
    data = _data()
    for marker in ("config.json", "sweep.json", "compare.json"):
        folder = tmp_path / marker.replace(".", "_")
        folder.mkdir()
        (folder / marker).write_text("{}")
        with pytest.raises(ValueError, match=f"output of another command \\({marker}"):
            sweep(BASE, ["lenet_300_100"], ["st3"], [0.9], [0], folder, data=data)
        assert sorted(p.name for p in folder.iterdir()) == [marker]  # nothing written
    folder = tmp_path / "damaged"
    (folder / "somerun").mkdir(parents=True)
    (folder / "somerun" / "result.json").write_text('{"config": ')
    with pytest.raises(ValueError, match="somerun/result.json is not valid JSON"):
        sweep(BASE, ["lenet_300_100"], ["st3"], [0.9], [0], folder, data=data)
    (folder / "somerun" / "result.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="does not hold a run's JSON object"):
        sweep(BASE, ["lenet_300_100"], ["st3"], [0.9], [0], folder, data=data)
    assert not any(p.name.startswith("lenet") for p in folder.iterdir())


def test_a_repeated_method_is_named_as_such():
    with pytest.raises(ValueError, match="methods must be distinct.*prox_ste:l1"):
        sweep(BASE, ["lenet_300_100"], ["prox_ste", "prox_ste:l1"], [0.9], [0], "unused")


def test_penalty_scope_and_activation_names_are_checked_with_the_recipe():
    """They failed after the data was loaded and config.json written (which then blocked the
    corrected command), with messages that named neither the option nor what is allowed."""
    with pytest.raises(ValueError, match="unknown penalty 'foo'"):
        TrainConfig(method="prox_ste", penalty="foo").check()
    with pytest.raises(ValueError, match="unknown scope 'foo'"):
        TrainConfig(scope="foo").check()
    for spec in ("relu:0.5", "tanh:0.5"):
        with pytest.raises(ValueError, match="NAME must be one of shifted_relu, soft_threshold"):
            parse_activation(spec)
        with pytest.raises(ValueError, match="NAME must be one of"):
            TrainConfig(activation=spec).check()
    assert parse_activation("crelu:0.85").activation == "clipped_relu"


def test_a_run_resumes_in_its_folder_however_the_folder_is_spelled(
    tmp_path, monkeypatch, interrupt
):
    """The resume key held ``out``: "run/" or the absolute path of "run" was another run's
    checkpoint (refused with --resume, silently replaced without)."""
    from shrinkage.experiments import loop

    monkeypatch.setattr(checkpoint, "EVERY_SECONDS", 0.0)
    data = _data()
    cfg = BASE.replace(epochs=2)
    whole = train_run(cfg.replace(out=str(tmp_path / "a")), data=data)
    interrupt(loop, "_step", 6)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg.replace(out="b"), data=data)
    interrupt.restore()
    restored, real_restore = [], loop._restore

    def restore(*a, **k):
        restored.append(1)
        return real_restore(*a, **k)

    monkeypatch.setattr(loop, "_restore", restore)
    again = train_run(cfg.replace(out=str(tmp_path / "b") + "/"), data=data, resume=True)
    assert restored == [1]  # continued, not started again
    assert again["test_acc"] == whole["test_acc"]
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_key_that_still_holds_out_resumes(tmp_path):
    """Checkpoints written while the key held the output folder still resume."""
    key = {"lr": 0.1, "out": None}
    checkpoint.save_checkpoint(tmp_path / "checkpoint.pt", {"lr": 0.1, "out": "elsewhere"}, 7)
    assert checkpoint.Checkpoint(tmp_path, key, True).load() == 7
    with pytest.raises(checkpoint.CheckpointError, match="lr: 0.2 now, 0.1 there"):
        checkpoint.Checkpoint(tmp_path, {"lr": 0.2, "out": None}, True).load()


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    """Two dense LeNet-300-100s of different accuracy: (path a, path b, data)."""
    out = tmp_path_factory.mktemp("dense")
    data = _data(n=256)
    train_run(BASE.replace(method="dense", epochs=2, out=str(out / "a")), data=data)
    train_run(BASE.replace(method="dense", epochs=1, lr=1e-4, out=str(out / "b")), data=data)
    return out / "a" / "model.pt", out / "b" / "model.pt", data


def _ft(ckpt, out, **kw):
    base = dict(
        checkpoint=str(ckpt), model="lenet_300_100", method="st3", sparsity=0.9, epochs=2,
        batch_size=32, lr=0.02, progress=False, out=str(out),
    )  # fmt: skip
    return FinetuneConfig(**{**base, **kw})


def test_a_finetune_does_not_resume_on_a_replaced_model_file(dense, tmp_path, interrupt):
    """The resume key held the checkpoint's path only: after the file was replaced the
    fine-tune went on, its curve starting at the old model's accuracy."""
    import shrinkage.experiments.finetune as ft

    a, b, data = dense
    given = tmp_path / "dense.pt"
    shutil.copy(a, given)
    interrupt(ft, "evaluate", 4)
    with pytest.raises(KeyboardInterrupt):
        finetune(_ft(given, tmp_path / "ft"), data=data)
    interrupt.restore()
    shutil.copy(b, given)  # another model under the same name
    with pytest.raises(ValueError, match="checkpoint_sha256"):
        finetune(_ft(given, tmp_path / "ft"), data=data, resume=True)
    shutil.copy(a, given)  # the same bytes again: the run goes on
    res = finetune(_ft(given, tmp_path / "ft"), data=data, resume=True)
    assert len(res["checkpoint_sha256"]) == 64
    seconds = [p["seconds"] for p in res["curve"]]
    # a resumed run's curve clock goes on from its last point (it restarted at 0)
    assert seconds == sorted(seconds), seconds


def test_more_evals_than_steps_per_epoch_is_refused_before_anything_is_written(dense, tmp_path):
    a, _, data = dense  # 256 images in batches of 32: 8 steps an epoch
    out = tmp_path / "ft"
    with pytest.raises(ValueError, match="evals_per_epoch must be at most the 8 steps"):
        finetune(_ft(a, out, evals_per_epoch=9), data=data)
    assert not out.exists() or not any(out.iterdir())
    res = finetune(_ft(a, out, evals_per_epoch=8, epochs=1), data=data)
    assert len(res["curve"]) == 9  # the point before the first step, then every step


def test_validation_runs_are_labelled_validation(tmp_path, monkeypatch, capsys):
    """--eval-split val results were labelled "test" in the epoch lines and the figures."""
    import shrinkage.experiments._plots as plots

    labels = []
    real = plots.Figure

    class Spy(real):
        def subplots(self, *a, **k):
            axes = super().subplots(*a, **k)
            for ax in getattr(axes, "flat", [axes]):
                orig = ax.set_ylabel

                def spy(label, *aa, _orig=orig, **kk):
                    labels.append(label)
                    return _orig(label, *aa, **kk)

                ax.set_ylabel = spy
            return axes

    monkeypatch.setattr(plots, "Figure", Spy)
    plots.plot_history(
        [{"epoch": 1, "train_loss": 1.0, "test_acc": 0.5, "target_sparsity": 0.5, "sparsity": 0.5}],
        tmp_path / "h.png",
        split="val",
    )
    rows = [{"method": "st3", "sparsity": 0.9, "sparse_macs": 10.0, "test_acc": 0.5,
             "eval_split": "val"}]  # fmt: skip
    plots.plot_sweep(rows, tmp_path / "a.png", tmp_path / "b.png")
    assert "validation accuracy (%)" in labels and "test accuracy (%)" not in labels
    from shrinkage.experiments.weights import _epoch_line

    rec = {"epoch": 1, "train_loss": 1.0, "test_acc": 0.5, "sparsity": 0.5, "sparse_macs": 1}
    assert "val acc 50.00%" in _epoch_line(rec, split="val")
    assert "test acc" in _epoch_line(rec)


def test_an_impossible_model_size_is_a_one_line_error(tmp_path, capsys):
    rc = main(
        ["weights", "train", "--model", "mlp", "--depth", "100000", "--width", "100000",
         "--epochs", "1", "--subset", "200", "--test-subset", "100", "--no-progress",
         "--out", str(tmp_path / "big")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("shrinkage: error: out of memory") and "--depth, --width" in err
    assert "Traceback" not in err
