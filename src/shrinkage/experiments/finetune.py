"""Prune a trained dense model during a short fine-tune (``shrinkage weights finetune``).

The most common use of weight sparsity: a model is already trained; reach the target
sparsity while fine-tuning it briefly, then hand back a plain dense-format model::

    from shrinkage.experiments.finetune import FinetuneConfig, finetune
    res = finetune(FinetuneConfig(checkpoint="runs/dense/model.pt", model="lenet5",
                                  method="st3", sparsity=0.99, epochs=2, out="runs/ft"))
    res["test_acc"], res["curve"]          # final accuracy, accuracy against fine-tune epochs

Methods (the same recipe for all, only the pruning differs):

- ``st3`` (or any ``METHODS`` entry): the Sparsifier from the trained
  weights, cubic schedule s(t) = s_f (1 - (1 - t / T)^3) from the first step to
  ``prune_end`` of the fine-tune, then held at s_f (thresholds still recomputed each step);
- ``gmp``: gradual magnitude pruning with sticky masks on the same schedule (Zhu & Gupta 2017);
- ``oneshot``: global magnitude pruning to s_f before the first step (the k smallest |w| over
  all pruned layers), then the same fine-tune with that mask fixed.

Recipe: SGD, Nesterov momentum 0.9, lr 0.01 with cosine decay to 0, weight decay 1e-4 on
weights (raw ones, pruned included), none on biases, gradient-norm clip 3, batch 128. The
steps are those of the shared loop ``shrinkage.experiments.loop.fit``.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .._checks import check_choice, check_int_at_least, check_open_unit
from .._io import check_writable_dir, save_torch, write_json, write_text
from ..weights import METHODS, Constant, Cubic, Sparsifier, flops
from .loop import CHECKPOINT, fit, num_threads
from .recipe import Recipe
from .recipe import option as _h
from .weights import MODELS, _begin_run, _data, build_model, check_sgd, evaluate, loop_settings

__all__ = ["FinetuneConfig", "finetune", "load_dense", "FINETUNE_METHODS"]

FINETUNE_METHODS = (*(m for m in METHODS if m != "rigl"), "oneshot")
"""Pruning during the fine-tune: any Sparsifier method but ``rigl`` (sparse from the first step,
on a random mask: nothing to fine-tune from), or ``oneshot`` magnitude pruning."""


@dataclass(frozen=True)
class FinetuneConfig(Recipe):
    """Everything one fine-tune depends on (recorded in ``config.json``); each field's default
    is also the command line's (``shrinkage weights finetune``)."""

    checkpoint: str = field(
        default="",
        metadata=_h(
            "state_dict of the trained dense model (model.pt of weights train)", required=True
        ),
    )
    model: str = field(default="lenet5", metadata=_h("architecture: " + " | ".join(MODELS)))
    method: str = field(default="st3", metadata=_h(" | ".join(FINETUNE_METHODS)))
    sparsity: float = field(default=0.99, metadata=_h("final fraction of zero weights"))
    epochs: int = field(default=2, metadata=_h("fine-tune passes over the training images"))
    batch_size: int = 128
    lr: float = field(default=0.01, metadata=_h("SGD learning rate"))
    momentum: float = 0.9
    weight_decay: float = 1e-4
    clip: float = field(default=3.0, metadata=_h("gradient-norm clip (0: none)"))
    prune_end: float = field(
        default=0.5, metadata=_h("fraction of the fine-tune's steps at which s_f is reached")
    )
    scope: str = field(default="global", metadata=_h("global | layer"))
    evals_per_epoch: int = field(default=2, metadata=_h("points of the accuracy curve per epoch"))
    subset: int | None = field(default=None, metadata=_h("use only the first N train images"))
    test_subset: int | None = field(default=None, metadata=_h("use only N test images"))
    seed: int = 0
    max_batches: int | None = field(default=None, metadata=_h("cap on batches per epoch"))
    threads: int | None = field(default=None, metadata=_h("torch CPU threads"))
    progress: bool = field(default=True, metadata=_h("no progress bar", flag="--no-progress"))
    out: str | None = field(default=None, metadata=_h("output folder"))

    def check(self) -> FinetuneConfig:
        if not isinstance(self.checkpoint, str | Path) or not str(self.checkpoint):
            raise ValueError(f"checkpoint must be a path to a state_dict, got {self.checkpoint!r}")
        if not Path(self.checkpoint).is_file():
            raise ValueError(f"checkpoint {str(self.checkpoint)!r} is not a file")
        check_choice("model", self.model, MODELS)
        check_choice("method", self.method, FINETUNE_METHODS)
        check_open_unit("sparsity", self.sparsity)
        check_int_at_least("epochs", self.epochs, 1)
        check_int_at_least("batch_size", self.batch_size, 1)
        check_int_at_least("evals_per_epoch", self.evals_per_epoch, 1)
        check_sgd(self)
        check_choice("scope", self.scope, ("global", "layer"))
        if not 0.0 < self.prune_end <= 1.0:
            raise ValueError(f"prune_end must be in (0, 1], got prune_end={self.prune_end!r}")
        for name in ("subset", "test_subset", "max_batches", "threads"):
            if getattr(self, name) is not None:
                check_int_at_least(name, getattr(self, name), 1)
        return self


def load_dense(model: str, checkpoint, depth: int = 20, width: int = 300) -> torch.nn.Module:
    """Build ``model`` (a name of ``MODELS``) and load a
    state dict from ``checkpoint`` (``model.pt`` of ``shrinkage weights train``, or a dict
    holding it under ``"state_dict"`` / ``"model"``).

    Raises
    ------
    ValueError
        The checkpoint holds no state dict, or one that does not fit ``model`` (the missing,
        unexpected and wrongly shaped keys are named).
    """
    net = build_model(model, None, depth, width)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, IndexError, ValueError) as e:
        hint = (
            " (a run's checkpoint.pt holds its training state: give its model.pt)"
            if Path(checkpoint).name == "checkpoint.pt"
            else ""
        )
        raise ValueError(
            f"checkpoint {str(checkpoint)!r} is not a saved state_dict that torch.load can "
            f"read{hint}: {str(e).splitlines()[0][:120]}"
        ) from None
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {str(checkpoint)!r} holds no state_dict")
    mine = net.state_dict()
    missing = sorted(set(mine) - set(state))
    unexpected = sorted(set(state) - set(mine))
    shapes = [k for k in mine if k in state and tuple(state[k].shape) != tuple(mine[k].shape)]
    if missing or unexpected or shapes:
        raise ValueError(
            f"checkpoint {str(checkpoint)!r} does not fit model {model!r}: "
            f"missing {missing[:4]}, unexpected {unexpected[:4]}, wrong shape {shapes[:4]} "
            "(choose the architecture with --model; fine-tuning takes the default sizes and "
            "plain activations: an mlp of another --depth / --width, or a model trained with "
            "--activation, is not supported)"
        )
    net.load_state_dict(state)
    return net


def finetune(config: FinetuneConfig | dict, data=None, resume: bool | None = None) -> dict:
    """Fine-tune a trained dense model while pruning it to ``sparsity``; returns the result.

    Parameters
    ----------
    config : FinetuneConfig or dict
        The recipe (a dict is turned into one).
    data : tuple of tensors, optional
        ``(x_train, y_train, x_test, y_test)`` replaces MNIST (tests use tiny sets).
    resume : bool, optional
        What to do with the checkpoint of an interrupted fine-tune in ``out`` (see
        ``shrinkage.experiments.loop.fit``).

    Returns
    -------
    dict
        ``test_acc`` (before squash) and ``test_acc_squashed``, ``sparsity``, dense and sparse
        MACs, ``history`` (one record per epoch) and ``curve``: test accuracy and sparsity at
        fine-tune epoch 0 (before the first step: the dense model, or the one-shot pruned
        one), then ``evals_per_epoch`` times per epoch. With ``out`` set, ``config.json``,
        ``history.json``, ``result.json``, ``report.txt`` and ``model.pt`` (squashed: the
        plain architecture loads it) are written; an interrupted fine-tune resumes from
        ``checkpoint.pt``. ``threads`` applies inside the call only.

    Raises
    ------
    ValueError
        A bad field, or a checkpoint that does not fit ``model``, before any work.
    """
    cfg = FinetuneConfig(**config) if isinstance(config, dict) else config
    cfg.check()
    if cfg.out:
        check_writable_dir(cfg.out)
        cfg.refuse_other_run(cfg.out)  # another run's results (a train run's too) stay
    model = load_dense(cfg.model, cfg.checkpoint)  # a bad checkpoint fails before any work
    digest = _file_digest(cfg.checkpoint)
    with num_threads(cfg.threads):
        return _finetune(cfg, model, data, resume, digest)


def _file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _Curve:
    """Test accuracy and sparsity ``evals_per_epoch`` times an epoch (an ``after_step``
    callback of the loop); its points travel in the loop's checkpoint."""

    def __init__(self, measure, per_epoch: int, evals_per_epoch: int):
        self.measure = measure
        self.per_epoch = per_epoch
        self.marks = {
            min(per_epoch, round(i * per_epoch / evals_per_epoch))
            for i in range(1, evals_per_epoch + 1)
        }
        self.steps = 0
        self.t0 = time.perf_counter()
        self.points = [self._point(0.0)]

    def _point(self, epoch: float) -> dict:
        return {**self.measure(epoch), "seconds": time.perf_counter() - self.t0}

    def after_step(self) -> None:
        self.steps += 1
        epoch, b = divmod(self.steps - 1, self.per_epoch)
        if b + 1 in self.marks:
            self.points.append(self._point(round(epoch + (b + 1) / self.per_epoch, 4)))

    def state_dict(self) -> dict:
        return {"steps": self.steps, "points": list(self.points)}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        self.points = list(state["points"])
        # a resumed run's clock goes on from its last point, not from 0
        self.t0 = time.perf_counter() - float(self.points[-1].get("seconds", 0.0))


def _check_evals(cfg: FinetuneConfig, per_epoch: int) -> None:
    if cfg.evals_per_epoch > per_epoch:
        raise ValueError(
            f"evals_per_epoch must be at most the {per_epoch} steps of an epoch (batch_size "
            f"{cfg.batch_size}, max_batches {cfg.max_batches}), got "
            f"evals_per_epoch={cfg.evals_per_epoch}"
        )


def _finetune(cfg: FinetuneConfig, model, data, resume=None, digest=None) -> dict:
    out, (x, y, xt, yt), per_epoch, total = _begin_run(
        cfg, data, lambda: _data(cfg), functools.partial(_check_evals, cfg)
    )
    in_shape = (1, *x.shape[1:])
    sp = _sparsifier(cfg, model, total)
    opt = _optimizer(cfg, model)
    lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)

    def measure(epoch: float) -> dict:
        return {
            "epoch": epoch,
            "test_acc": evaluate(model, xt, yt),
            "sparsity": 1.0 - sp.density(),
            "target_sparsity": sp.current_sparsity,
        }

    curve = _Curve(measure, per_epoch, cfg.evals_per_epoch)
    settings = loop_settings(cfg, total, per_epoch)
    # the model fine-tuned is the file's content, not its name: a replaced file is another run
    settings["key"] = {**settings["key"], "checkpoint_sha256": digest}

    def on_epoch(st) -> dict:
        last = curve.points[-1]  # the epoch's last step is always a point of the curve
        return {
            "epoch": st.epoch,
            "train_loss": st.train_loss,
            "train_acc": st.train_acc,
            "test_acc": last["test_acc"],
            "target_sparsity": last["target_sparsity"],
            "sparsity": last["sparsity"],
        }

    run = fit(
        model,
        opt,
        x,
        y,
        on_epoch=on_epoch,
        after_step=[lr_sched.step, sp.step, curve.after_step],
        desc=f"finetune {cfg.model} {cfg.method} s={cfg.sparsity}" if cfg.progress else None,
        postfix=lambda: {"s": f"{sp.current_sparsity:.3f}"},
        log=_epoch_line,
        out=out,
        state={"scheduler": lr_sched, "sparsifier": sp, "curve": curve},
        resume=resume,
        **settings,
    )
    return _finish(cfg, model, sp, curve, run, (xt, yt), in_shape, out, digest)


def _finish(cfg, model, sp, curve, run, test, in_shape, out, digest=None) -> dict:
    """Count the MACs, squash, evaluate the plain model and write the run's files."""
    xt, yt = test
    report = flops(model, in_shape, pruned=sp.layer_names)
    sp.squash()
    result = {
        "config": cfg.to_dict(),
        "checkpoint_sha256": digest,  # the dense model's file, as read
        "test_acc": curve.points[-1]["test_acc"],
        "test_acc_squashed": evaluate(model, xt, yt),
        "sparsity": curve.points[-1]["sparsity"],
        "dense_macs": report.dense_macs,
        "sparse_macs": report.sparse_macs,
        "curve": curve.points,
        "history": run.history,
        "seconds": run.seconds,
        "report": report.to_dict(),
    }
    if out is not None:
        write_text(out / "report.txt", str(report) + "\n")
        save_torch(out / "model.pt", model.state_dict())
        write_json(out / "result.json", result)
        (out / CHECKPOINT).unlink(missing_ok=True)
    result["report_table"] = str(report)
    return result


def _sparsifier(cfg: FinetuneConfig, model, total: int) -> Sparsifier:
    if cfg.method == "oneshot":
        # gmp at the final sparsity from step 0: the global magnitude mask, then kept
        return Sparsifier(model, cfg.sparsity, method="gmp", schedule=Constant(), scope=cfg.scope)
    end = max(1, int(round(cfg.prune_end * total)))
    return Sparsifier(
        model, cfg.sparsity, method=cfg.method, schedule=Cubic(0, end), scope=cfg.scope
    )


def _optimizer(cfg: FinetuneConfig, model):
    """Weight decay on weights (raw ones, pruned included), none on biases."""
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0},
    ]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)


def _epoch_line(rec: dict) -> str:
    return (
        f"fine-tune epoch {rec['epoch']}: loss {rec['train_loss']:.4f} "
        f"test acc {100 * rec['test_acc']:.2f}% sparsity {rec['sparsity']:.4f}"
    )
