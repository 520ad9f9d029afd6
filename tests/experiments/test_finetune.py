"""Pruning a trained dense model during a fine-tune (finetune, ``shrinkage weights finetune``)."""

import argparse
import json

import numpy as np
import pytest
import torch

from shrinkage.cli import main
from shrinkage.cli.weights import register
from shrinkage.experiments.finetune import FinetuneConfig, finetune, load_dense
from shrinkage.experiments.weights import TrainConfig, evaluate, train_run
from shrinkage.models import lenet5, lenet_300_100
from tests.experiments._digits import digits

N_WEIGHTS = 266_200  # LeNet-300-100


_data = digits


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    """A LeNet-300-100 trained densely on the synthetic digits: (checkpoint path, data)."""
    out = tmp_path_factory.mktemp("dense")
    data = _data()
    cfg = TrainConfig(
        model="lenet_300_100", method="dense", epochs=2, batch_size=32, lr=0.05, progress=False
    )
    train_run(cfg.replace(out=str(out)), data=data)
    return out / "model.pt", data


def _cfg(ckpt, method, out=None, **kw):
    base = dict(
        checkpoint=str(ckpt),
        model="lenet_300_100",
        method=method,
        sparsity=0.9,
        epochs=1,
        batch_size=32,
        lr=0.02,
        progress=False,
        out=None if out is None else str(out),
    )
    return FinetuneConfig(**{**base, **kw})


def _weights(model):
    return [p for n, p in model.named_parameters() if n.endswith("weight")]


@pytest.mark.parametrize("method", ["st3", "gmp", "oneshot"])
def test_finetune_reaches_the_sparsity_and_writes_a_plain_checkpoint(dense, tmp_path, method):
    ckpt, data = dense
    res = finetune(_cfg(ckpt, method, tmp_path / method), data=data)
    plain = lenet_300_100()
    plain.load_state_dict(torch.load(tmp_path / method / "model.pt", weights_only=True))
    zeros = sum(int((w == 0).sum()) for w in _weights(plain))
    assert zeros == int(0.9 * N_WEIGHTS)
    assert res["sparsity"] == pytest.approx(0.9, abs=1e-5)
    assert evaluate(plain, data[2], data[3]) == res["test_acc"] == res["test_acc_squashed"]
    saved = json.loads((tmp_path / method / "result.json").read_text())
    assert [c["epoch"] for c in saved["curve"]] == [0.0, 0.5, 1.0]


def test_gradual_methods_start_from_the_dense_model(dense):
    """Epoch 0 of st3 / gmp is the dense checkpoint itself: its accuracy, no zero."""
    ckpt, data = dense
    ref = evaluate(load_dense("lenet_300_100", ckpt), data[2], data[3])
    for method in ("st3", "gmp"):
        first = finetune(_cfg(ckpt, method, max_batches=2), data=data)["curve"][0]
        assert first["test_acc"] == ref and first["sparsity"] == 0.0


def test_oneshot_is_global_magnitude_pruning_and_its_mask_stays(dense):
    """Epoch 0 of oneshot = the dense model with the k smallest |w| (all layers together)
    zeroed (numpy reference)."""
    ckpt, data = dense
    ref = load_dense("lenet_300_100", ckpt)
    ws = [w.detach().numpy() for w in _weights(ref)]
    flat = np.concatenate([np.abs(w).ravel() for w in ws])
    k = int(0.9 * flat.size)
    cut = np.sort(flat)[k - 1]
    masks = [np.abs(w) > cut for w in ws]
    with torch.no_grad():
        for w, m in zip(_weights(ref), masks):
            w.mul_(torch.from_numpy(m))
    res = finetune(_cfg(ckpt, "oneshot"), data=data)
    assert res["curve"][0]["test_acc"] == evaluate(ref, data[2], data[3])
    assert res["curve"][0]["sparsity"] == pytest.approx(0.9, abs=1e-5)


def test_oneshot_zeros_after_fine_tune_are_the_initial_mask(dense, tmp_path):
    ckpt, data = dense
    ws = [w.detach().numpy() for w in _weights(load_dense("lenet_300_100", ckpt))]
    flat = np.concatenate([np.abs(w).ravel() for w in ws])
    cut = np.sort(flat)[int(0.9 * flat.size) - 1]
    finetune(_cfg(ckpt, "oneshot", tmp_path), data=data)
    plain = lenet_300_100()
    plain.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    for w0, w in zip(ws, _weights(plain)):
        np.testing.assert_array_equal(w.detach().numpy() != 0, np.abs(w0) > cut)


def test_an_interrupted_finetune_resumes_to_the_uninterrupted_result(dense, tmp_path, interrupt):
    """Killed after epoch 1's checkpoint (at the first evaluation of epoch 2), the same call
    again finishes with the weights and the curve of a run never stopped."""
    import shrinkage.experiments.finetune as ft

    ckpt, data = dense
    whole = finetune(_cfg(ckpt, "st3", tmp_path / "a", epochs=2), data=data)
    interrupt(ft, "evaluate", 4)  # epoch 0, 0.5, 1.0 measured; then the run dies
    with pytest.raises(KeyboardInterrupt):
        finetune(_cfg(ckpt, "st3", tmp_path / "b", epochs=2), data=data)
    interrupt.restore()
    assert (tmp_path / "b" / "checkpoint.pt").is_file()
    again = finetune(_cfg(ckpt, "st3", tmp_path / "b", epochs=2), data=data)
    assert not (tmp_path / "b" / "checkpoint.pt").exists()

    def points(res):
        return [{k: v for k, v in c.items() if k != "seconds"} for c in res["curve"]]

    assert [c["epoch"] for c in again["curve"]] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert points(again) == points(whole)
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_a_checkpoint_of_another_architecture_is_refused_before_any_work(tmp_path):
    bad = tmp_path / "lenet5.pt"
    torch.save(lenet5().state_dict(), bad)
    with pytest.raises(ValueError, match=r"does not fit model 'lenet_300_100'.*--model"):
        finetune(_cfg(bad, "st3", tmp_path / "out"), data=_data(32, 16))
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="unknown method 'magnitude'"):
        _cfg(bad, "magnitude").check()
    with pytest.raises(ValueError, match="is not a file"):
        _cfg(tmp_path / "nope.pt", "st3").check()
    with pytest.raises(ValueError, match=r"sparsity must be in \(0, 1\)"):
        _cfg(bad, "st3", sparsity=1.0).check()


@pytest.mark.slow
def test_cli_finetune_on_mnist_prints_the_curve(dense, tmp_path, capsys):
    ckpt, _ = dense
    out = tmp_path / "ft"
    argv = ["weights", "finetune", "--checkpoint", str(ckpt), "--model", "lenet_300_100"]
    argv += ["--sparsity", "0.95", "--epochs", "1", "--subset", "256", "--test-subset", "200"]
    argv += ["--batch-size", "64", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    res = json.loads((out / "result.json").read_text())
    assert res["sparsity"] == pytest.approx(0.95, abs=1e-5)
    printed = capsys.readouterr().out
    assert f"{100 * res['test_acc']:7.2f}%" in printed
    assert main(["weights", "finetune", "--checkpoint", str(ckpt), "--sparsity", "0.9"]) == 2


def test_the_command_line_takes_the_recipe_defaults_and_requires_the_checkpoint(capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["weights", "finetune", "--checkpoint", "m.pt", "--lr", "0.02"])
    assert FinetuneConfig.from_args(args) == FinetuneConfig(
        checkpoint="m.pt", lr=0.02, out="runs/finetune"
    )
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["weights", "finetune", "--sparsity", "0.9"])
    assert stop.value.code == 2
    assert "--checkpoint" in capsys.readouterr().err


def test_a_folder_holding_another_run_is_refused_before_any_work(dense, tmp_path):
    """A fine-tune into a finished train run's folder (reading its model.pt) or into another
    fine-tune's with another recipe once replaced that run's files, exit 0."""
    ckpt, data = dense
    train_dir = ckpt.parent
    before = {p.name: p.read_bytes() for p in train_dir.iterdir()}
    with pytest.raises(ValueError, match="holds a run of another command"):
        finetune(_cfg(ckpt, "st3", train_dir), data=data)
    assert {p.name: p.read_bytes() for p in train_dir.iterdir()} == before
    out = tmp_path / "ft"
    finetune(_cfg(ckpt, "gmp", out, sparsity=0.5, max_batches=2), data=data)
    first = (out / "result.json").read_bytes()
    with pytest.raises(ValueError, match="another recipe \\(sparsity 0.9 here, 0.5 there"):
        finetune(_cfg(ckpt, "gmp", out, sparsity=0.9, max_batches=2), data=data)
    assert (out / "result.json").read_bytes() == first
    # the same recipe runs again (another thread count is the same recipe)
    finetune(_cfg(ckpt, "gmp", out, sparsity=0.5, max_batches=2, threads=1), data=data)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"clip": -1.0}, "clip must be >= 0"),
        ({"clip": float("nan")}, "clip must be a finite number"),
        ({"weight_decay": -1e-4}, "weight_decay must be >= 0"),
        ({"momentum": 1.0}, "momentum must be in \\[0, 1\\)"),
        ({"momentum": -0.1}, "momentum must be in \\[0, 1\\)"),
        ({"lr": float("inf")}, "lr must be a finite number"),
    ],
)
def test_optimiser_numbers_are_refused_by_name(dense, change, match):
    """A negative clip made every step gradient ascent (clip_grad_norm_ scales by -1/||g||),
    silently; NaN and inf failed only once training had started."""
    ckpt, _ = dense
    with pytest.raises(ValueError, match=match):
        _cfg(ckpt, "st3", **change).check()
    with pytest.raises(ValueError, match=match):
        TrainConfig(**change).check()
    with pytest.raises(ValueError, match="m_scale must be > 0"):
        TrainConfig(m_scale=float("nan")).check()


def test_a_subset_larger_than_the_source_is_refused_before_anything_is_written(
    monkeypatch, tmp_path
):
    from shrinkage.experiments import weights as ew

    monkeypatch.setattr(ew, "mnist", lambda split: (torch.zeros(100, 1, 28, 28), torch.zeros(100)))
    for field in ("subset", "test_subset"):
        cfg = TrainConfig(**{field: 101}, out=str(tmp_path / field), progress=False)
        with pytest.raises(ValueError, match=f"{field} must be at most the 100 images"):
            train_run(cfg)
        assert not (tmp_path / field / "config.json").exists()
