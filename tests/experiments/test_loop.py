"""The shared training loop: resume after an interruption gives the uninterrupted run, and the
thread-count context manager leaves torch as it found it."""

import argparse
import dataclasses
import json

import pytest
import torch
from torch import nn

from shrinkage.experiments.loop import CHECKPOINT, fit, num_threads
from shrinkage.experiments.weights import TrainConfig


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=g)
    y = (x @ torch.randn(6, 3, generator=g)).argmax(1)
    return x, y


def _fit(out, stop_at=None, total=9, key="run"):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    x, y = _problem()

    def on_epoch(st):
        if st.epoch == stop_at:
            raise KeyboardInterrupt  # the run dies after the previous epoch's checkpoint
        return {"epoch": st.epoch, "step": st.step, "loss": st.train_loss}

    res = fit(
        model,
        opt,
        x,
        y,
        batch_size=32,
        total_steps=total,
        per_epoch=3,
        on_epoch=on_epoch,
        seed=1,
        after_step=[sched.step],
        out=out,
        state={"scheduler": sched},
        key=key,
    )
    return model, res


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    whole, res = _fit(tmp_path / "a")
    assert [h["step"] for h in res.history] == [3, 6, 9]
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "b", stop_at=3)
    assert (tmp_path / "b" / CHECKPOINT).is_file()
    assert len(json.loads((tmp_path / "b" / "history.json").read_text())) == 2
    resumed, res_b = _fit(tmp_path / "b")
    for p, q in zip(whole.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in res.history]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in res_b.history] == strip


def test_a_checkpoint_of_another_run_is_ignored(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, stop_at=2, key="other")
    _, res = _fit(tmp_path, key="run")
    assert [h["step"] for h in res.history] == [3, 6, 9]  # trained from step 0


def test_num_threads_restores_the_count():
    torch.set_num_threads(2)
    with num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), num_threads(1):
        raise RuntimeError
    assert torch.get_num_threads() == 2
    with num_threads(None):
        assert torch.get_num_threads() == 2


def test_command_line_defaults_are_the_recipe_defaults():
    """Every option generated from TrainConfig defaults to its field's default, and parsing
    options back gives the recipe (frozen: changed only through replace)."""
    p = argparse.ArgumentParser()
    TrainConfig.add_arguments(p)
    args = p.parse_args([])
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.metadata.get("cli", True):
            assert getattr(args, f.name) == getattr(defaults, f.name), f.name
    cfg = TrainConfig.from_args(p.parse_args(["--epochs", "3", "--no-progress", "--lr", "0.2"]))
    assert (cfg.epochs, cfg.progress, cfg.lr) == (3, False, 0.2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 4
    assert cfg.replace(epochs=4).epochs == 4 and cfg.to_dict()["epochs"] == 3
