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


# -- checkpoints as the run goes, Ctrl-C, damaged and foreign checkpoints ----------------------
def _fit_every_step(out, *, fail_at=None, sigint_at=None, resume=None, key="run"):
    """_fit's problem, with a checkpoint after every step and an interruption before step
    ``fail_at`` (an exception: the last checkpoint is the previous step's) or a Ctrl-C
    (SIGINT, delivered in this process) during step ``sigint_at``."""
    import signal

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = _problem()

    def before(step):
        if step == fail_at:
            raise RuntimeError("the machine went away")
        if step == sigint_at:
            signal.raise_signal(signal.SIGINT)

    res = fit(
        model,
        opt,
        x,
        y,
        batch_size=8,
        total_steps=30,
        per_epoch=12,
        on_epoch=lambda st: {"epoch": st.epoch, "step": st.step, "loss": st.train_loss},
        seed=1,
        before_step=[before],
        out=out,
        key=key,
        resume=resume,
        checkpoint_every=0.0,
    )
    return model, res


def _same_run(a, b):
    (ma, ra), (mb, rb) = a, b
    for p, q in zip(ma.parameters(), mb.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in ra.history]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in rb.history] == strip
    assert ra.steps == rb.steps == 30


def test_a_run_killed_within_an_epoch_resumes_bitwise(tmp_path):
    """Checkpoints within an epoch keep the batch order, the running sums and the global RNG
    (dropout): killed at step 17 (epoch 2 of 3), resumed, the run is the uninterrupted one."""
    whole = _fit_every_step(tmp_path / "a")
    with pytest.raises(RuntimeError, match="went away"):
        _fit_every_step(tmp_path / "b", fail_at=17)
    assert len(json.loads((tmp_path / "b" / "history.json").read_text())) == 1
    _same_run(whole, _fit_every_step(tmp_path / "b", resume=True))


def test_ctrl_c_saves_at_the_step_boundary_and_says_how_to_resume(tmp_path):
    whole = _fit_every_step(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt, match="keeps step 6 of 30; rerun with --resume"):
        _fit_every_step(tmp_path / "b", sigint_at=5)
    _same_run(whole, _fit_every_step(tmp_path / "b", resume=True))


def test_a_checkpoint_in_the_way_is_never_overwritten_silently(tmp_path):
    from shrinkage.experiments.checkpoint import CheckpointError

    with pytest.raises(RuntimeError):
        _fit_every_step(tmp_path, fail_at=4, key={"lr": 0.1, "epochs": 3})
    with pytest.raises(CheckpointError, match="pass --resume"):
        _fit_every_step(tmp_path, resume=False, key={"lr": 0.1, "epochs": 3})
    with pytest.raises(CheckpointError, match=r"another run \(lr: 0.2 now, 0.1 there\)"):
        _fit_every_step(tmp_path, resume=True, key={"lr": 0.2, "epochs": 3})


@pytest.mark.parametrize("damage", ["flip", "truncate", "header"])
def test_a_damaged_checkpoint_is_refused_by_name(tmp_path, damage):
    from shrinkage.experiments.checkpoint import CheckpointError

    with pytest.raises(RuntimeError):
        _fit_every_step(tmp_path, fail_at=4)
    path = tmp_path / CHECKPOINT
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0x10
    elif damage == "truncate":
        raw = raw[: len(raw) - 100]
    else:
        raw[3] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=str(path)):
        _fit_every_step(tmp_path, resume=True)


def test_divergence_stops_the_run_and_says_where():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=1e6)
    x, y = _problem()
    res = fit(
        model,
        opt,
        x,
        y,
        batch_size=8,
        total_steps=30,
        per_epoch=12,
        on_epoch=lambda st: {"epoch": st.epoch},
        stop_on_nonfinite=True,
        diverge_factor=1e3,
    )
    assert res.diverged_at is not None and res.diverged_at < 30 and res.steps == res.diverged_at
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_checkpoint_from_before_a_setting_existed_resumes_at_its_default(tmp_path):
    """A recipe field added later (rigl_every, rescale, ...): a checkpoint whose key lacks it
    resumes when the run uses the field's default, and is another run's otherwise."""
    from shrinkage.experiments.checkpoint import Checkpoint, CheckpointError

    Checkpoint(tmp_path, {"lr": 0.1}).save({"step": 3})
    now = {"lr": 0.1, "rescale": "default"}
    defaults = {"rescale": "default", "epochs": 20}
    assert Checkpoint(tmp_path, now, resume=True, defaults=defaults).load() == {"step": 3}
    with pytest.raises(CheckpointError, match="rescale: 'off' now, 'default' there"):
        Checkpoint(tmp_path, {**now, "rescale": "off"}, resume=True, defaults=defaults).load()
    with pytest.raises(CheckpointError, match="rescale: 'default' now, None there"):
        Checkpoint(tmp_path, now, resume=True).load()  # without defaults: as before
