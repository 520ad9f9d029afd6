"""The MNIST experiments: one training run (``train_run``) and a grid of them (``sweep``).

Both are plain functions so the CLI and the cross-pillar report call the same code::

    from shrinkage.experiments.weights import TrainConfig, train_run
    result = train_run(TrainConfig(model="lenet5", method="st3", sparsity=0.99, epochs=2,
                                   max_batches=20, out="runs/quick"))
    result["test_acc"]

Recipe (the same for every method): SGD with Nesterov momentum 0.9, cosine learning-rate
decay, weight decay on weights (raw ones, pruned included, as in ST-3; none on biases),
gradient-norm clip 3.0, batch 128, 50k training images, accuracy on the 10k test images
(``eval_split="val"``: on the 10k validation images held out of MNIST's training set instead,
for tuning; the test images are then not read). The cubic schedule runs from ``prune_start``
to ``prune_end`` (fractions of all steps). ``str`` follows the same schedule (its decay
controller tracks it). ``rigl`` is sparse from the first step: the schedule and ``scope`` do not
apply; its masks change every ``rigl_every`` steps until ``rigl_end`` of training, with drop
fraction ``rigl_drop`` and layer densities ``rigl_distribution``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils import parametrize

from .. import models
from .._checks import (
    check_choice,
    check_distinct,
    check_float32_range,
    check_floor,
    check_int_at_least,
    check_nonnegative,
    check_open_unit,
    check_positive,
    check_seed,
)
from .._io import check_writable_dir, read_json, save_torch, write_json, write_text
from ..activations import EoCConfig, edge_of_chaos, init_, safe_clip
from ..data import mnist
from ..models.mlp import ScaleInput
from ..thresholds import PENALTIES
from ..weights import METHODS, Constant, Cubic, Linear, Sparsifier, effective_macs, flops
from ._plots import plot_history, plot_sweep
from .loop import CHECKPOINT, fit, num_threads, steps_per_epoch
from .recipe import Recipe
from .recipe import option as _h

__all__ = ["TrainConfig", "train_run", "sweep", "MODELS", "build_model"]

MODELS = ("lenet5", "lenet_300_100", "resnet_small", "mlp")
_OPTIMIZERS = ("sgd", "adam")
_SCHEDULES = ("cubic", "linear", "constant")
_EVAL_SPLITS = ("test", "val")


# the activations ``NAME:SPARSITY`` can name (an edge-of-chaos config at that sparsity)
_SPARSE_ACTIVATIONS = ("shifted_relu", "soft_threshold", "crelu", "cst")


def parse_activation(spec: str | None, m_scale: float = 0.7):
    """``None``/``"relu"`` -> None; ``"NAME:SPARSITY"`` (e.g. ``"cst:0.85"``) -> the
    edge-of-chaos config of ``shrinkage.activations.edge_of_chaos``, clipped at
    ``m_scale`` times the largest safe level for the clipped activations.

    Below the safe level, not at it: right at it the variance map nearly touches the
    diagonal above q*, and finite-width networks drift there (``docs/guide/activations.md``).
    """
    if spec is None or spec == "relu":
        return None
    name, sep, sparsity = spec.partition(":")
    if not sep:
        raise ValueError(
            f"activation must be 'relu' or 'NAME:SPARSITY' such as 'cst:0.85', got {spec!r}"
        )
    try:
        s = float(sparsity)
    except ValueError:
        raise ValueError(f"activation {spec!r}: sparsity {sparsity!r} is not a number") from None
    if name not in _SPARSE_ACTIVATIONS:
        raise ValueError(
            f"activation {spec!r}: NAME must be one of {', '.join(_SPARSE_ACTIVATIONS)} (the "
            "activations with a sparsity; plain ReLU is 'relu', with no sparsity)"
        )
    check_open_unit("activation sparsity", s)
    check_positive("m_scale", m_scale)
    probe = edge_of_chaos(name, s, m=None) if name in ("shifted_relu", "soft_threshold") else None
    if probe is not None:  # unclipped: allowed, but the user asked for an unstable init
        return probe
    m = m_scale * safe_clip(name, s)
    return edge_of_chaos(name, s, m=m)


def build_model(name: str, activation=None, depth: int = 20, width: int = 300):
    """``lenet5`` | ``lenet_300_100`` | ``resnet_small`` | ``mlp`` from ``shrinkage.models``.

    ``activation``: ``None`` (ReLU: PyTorch's init, at its edge of chaos for ``mlp``), a
    module factory, or an edge-of-chaos
    config (``parse_activation``): every hidden activation becomes that sparse activation,
    weights are initialised from it and inputs scaled so the first layer sits at q*.
    """
    check_choice("model", name, MODELS)
    if name == "mlp":
        # A deep plain-ReLU net with PyTorch's default init loses its signal with depth;
        # the baseline is ReLU at its own edge of chaos (sigma_w^2 = 2).
        relu = edge_of_chaos("relu")
        return models.mlp(depth, width, activation if activation is not None else relu)
    if isinstance(activation, EoCConfig):
        net = init_(getattr(models, name)(activation=activation.module), activation)
        return torch.nn.Sequential(ScaleInput(activation.input_mean_square), net)
    return getattr(models, name)(activation=activation)


@dataclass(frozen=True)
class TrainConfig(Recipe):
    """Everything one run depends on (recorded in ``config.json``); each field's default is
    also the command line's (``shrinkage weights train|sweep``)."""

    model: str = field(default="lenet5", metadata=_h(" | ".join(MODELS)))
    method: str = field(default="st3", metadata=_h(" | ".join((*METHODS, "dense"))))
    sparsity: float = field(default=0.99, metadata=_h("final fraction of zero weights"))
    epochs: int = field(default=20, metadata=_h("passes over the training images"))
    seed: int = 0
    batch_size: int = 128
    lr: float = field(default=0.1, metadata=_h("learning rate"))
    momentum: float = 0.9
    weight_decay: float = 1e-4
    clip: float = field(default=3.0, metadata=_h("gradient-norm clip (0: none)"))
    schedule: str = field(default="cubic", metadata=_h(" | ".join(_SCHEDULES)))
    prune_start: float = field(default=0.02, metadata=_h("fraction of all steps"))
    prune_end: float = field(default=0.5, metadata=_h("fraction of all steps"))
    scope: str = field(default="global", metadata=_h("global | layer (not rigl)"))
    rescale: str = field(
        default="default",
        metadata=_h("ST-3's per-channel rescale: default (the method's) | on | off"),
    )
    rigl_distribution: str = field(
        default="erk", metadata=_h("rigl's layer densities: erk | uniform")
    )
    rigl_every: int = field(default=100, metadata=_h("steps between rigl's mask updates"))
    rigl_drop: float = field(default=0.3, metadata=_h("rigl's initial drop fraction"))
    rigl_init: str = field(
        default="dense",
        metadata=_h("rigl's starting weights: dense (masked, the paper) | sparse (fan-in scaled)"),
    )
    rigl_end: float = field(
        default=0.75, metadata=_h("fraction of all steps after which rigl's masks are frozen")
    )
    min_density: float = field(
        default=0.0, metadata=_h("floor on each layer's density (no layer pruned away)")
    )
    activation: str | None = field(
        default=None,
        metadata=_h(
            "relu (default) or NAME:SPARSITY with an edge-of-chaos init, e.g. cst:0.85 or "
            "crelu:0.85: sparse weights and sparse activations in one network"
        ),
    )
    m_scale: float = field(
        default=0.7, metadata=_h("clipping level / largest safe level (clipped activations)")
    )
    depth: int = field(default=20, metadata=_h("hidden layers of --model mlp"))
    width: int = field(default=300, metadata=_h("width of --model mlp"))
    optimizer: str = field(default="sgd", metadata=_h("sgd (Nesterov) | adam"))
    penalty: str = field(default="l1", metadata=_h("prox_ste operator (method prox_ste only)"))
    penalty_params: dict = field(default_factory=dict, metadata={"cli": False})
    subset: int | None = field(default=None, metadata=_h("use only the first N train images"))
    test_subset: int | None = field(default=None, metadata=_h("use only N test images"))
    eval_split: str = field(
        default="test",
        metadata=_h(
            "test | val: report accuracy on the 10k validation images held out of MNIST's "
            "training set (for tuning; the test images are not read)"
        ),
    )
    max_batches: int | None = field(default=None, metadata=_h("cap on batches per epoch"))
    threads: int | None = field(default=None, metadata=_h("torch CPU threads"))
    progress: bool = field(default=True, metadata=_h("no progress bar", flag="--no-progress"))
    out: str | None = field(default=None, metadata=_h("output folder"))

    def check(self) -> TrainConfig:
        check_choice("model", self.model, MODELS)
        check_choice("method", self.method, (*METHODS, "dense"))
        check_open_unit("sparsity", self.sparsity, closed_low=True)
        check_int_at_least("epochs", self.epochs, 1)
        check_int_at_least("batch_size", self.batch_size, 1)
        check_sgd(self)
        check_positive("m_scale", self.m_scale)
        check_choice("schedule", self.schedule, _SCHEDULES)
        check_choice("optimizer", self.optimizer, _OPTIMIZERS)
        check_choice("eval_split", self.eval_split, _EVAL_SPLITS)
        check_choice("rescale", self.rescale, ("default", "on", "off"))
        if self.rescale != "default" and self.method in ("gmp", "rigl", "dense"):
            raise ValueError(
                f"rescale {self.rescale!r} does not apply to method {self.method!r} (no "
                "threshold to compensate); leave rescale at 'default'"
            )
        check_choice("rigl_distribution", self.rigl_distribution, ("erk", "uniform"))
        check_choice("rigl_init", self.rigl_init, ("dense", "sparse"))
        check_int_at_least("rigl_every", self.rigl_every, 1)
        if not 0.0 < self.rigl_drop <= 1.0:
            raise ValueError(f"rigl_drop must be in (0, 1], got rigl_drop={self.rigl_drop!r}")
        if not 0.0 < self.rigl_end <= 1.0:
            raise ValueError(f"rigl_end must be in (0, 1], got rigl_end={self.rigl_end!r}")
        if self.method == "rigl" and self.scope != "global":
            raise ValueError(
                f"scope {self.scope!r} does not apply to rigl (its layer densities are "
                "rigl_distribution: erk | uniform); leave scope at 'global'"
            )
        check_open_unit("min_density", self.min_density, closed_low=True)
        check_floor(self.min_density, self.sparsity)  # as Sparsifier, before the data
        check_choice("scope", self.scope, ("global", "layer"))
        check_choice("penalty", self.penalty, PENALTIES)
        if self.method != "prox_ste" and (self.penalty != "l1" or self.penalty_params):
            raise ValueError(
                f"penalty only applies to method prox_ste (it would be ignored), got "
                f"penalty={self.penalty!r} with method={self.method!r}"
            )
        check_int_at_least("depth", self.depth, 1)
        check_int_at_least("width", self.width, 1)
        parse_activation(self.activation, self.m_scale)  # fails early on a bad spec
        if not 0.0 <= self.prune_start < self.prune_end <= 1.0:
            raise ValueError(
                "need 0 <= prune_start < prune_end <= 1 (fractions of training), got "
                f"prune_start={self.prune_start}, prune_end={self.prune_end}"
            )
        for name in ("subset", "test_subset", "max_batches", "threads"):
            if getattr(self, name) is not None:
                check_int_at_least(name, getattr(self, name), 1)
        return self


def _schedule(cfg: TrainConfig, total: int):
    start = int(round(cfg.prune_start * total))
    end = max(start + 1, int(round(cfg.prune_end * total)))
    if cfg.schedule == "cubic":
        return Cubic(start, end)
    if cfg.schedule == "linear":
        return Linear(start, end)
    return Constant(start)


def check_sgd(cfg) -> None:
    """The optimiser's numbers of a weights recipe (TrainConfig, FinetuneConfig): a finite
    lr > 0, momentum in [0, 1), weight decay and gradient clip finite and >= 0 (a negative
    clip flips every gradient: ascent; momentum 1 or more diverges)."""
    for name in ("lr", "momentum", "weight_decay", "clip"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {name}={v!r}")
    check_positive("lr", cfg.lr)
    check_float32_range("lr", cfg.lr)
    check_float32_range("weight_decay", cfg.weight_decay)
    check_seed("seed", cfg.seed)
    if not 0.0 <= cfg.momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got momentum={cfg.momentum!r}")
    check_nonnegative("weight_decay", cfg.weight_decay)
    check_nonnegative("clip", cfg.clip)


def _data(cfg, split: str = "test"):
    """MNIST's 50k training images and the ``split`` ("test" or "val") to report on; ``cfg``
    gives ``subset`` / ``test_subset`` (a TrainConfig or a FinetuneConfig)."""
    x, y = mnist("train")
    xt, yt = mnist(split)
    # more than the source holds would silently train (or test) on fewer: refused
    sizes = (("subset", cfg.subset, len(x)), ("test_subset", cfg.test_subset, len(xt)))
    for name, want, have in sizes:
        if want is not None and want > have:
            raise ValueError(
                f"{name} must be at most the {have:,} images of this source, got {name}={want!r}"
            )
    if cfg.subset:
        x, y = x[: cfg.subset], y[: cfg.subset]
    if cfg.test_subset:
        xt, yt = xt[: cfg.test_subset], yt[: cfg.test_subset]
    return x, y, xt, yt


@torch.no_grad()
def evaluate(model, x, y, batch_size: int = 1000) -> float:
    """Top-1 accuracy (eval mode; the parametrized weights computed once)."""
    was = model.training
    model.eval()
    correct = 0
    with parametrize.cached():
        for i in range(0, len(x), batch_size):
            correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    model.train(was)
    return correct / len(x)


def _sparse_state(model, sp) -> float:
    if sp is None:
        return 0.0
    return 1.0 - sp.density()


def _sparsifier(cfg: TrainConfig, model, total: int):
    if cfg.method == "dense":
        return None
    if cfg.method == "rigl":
        return Sparsifier(
            model,
            cfg.sparsity,
            method="rigl",
            min_density=cfg.min_density,
            method_params={
                "update_end": max(1, int(round(cfg.rigl_end * total))),
                "update_every": cfg.rigl_every,
                "drop_fraction": cfg.rigl_drop,
                "distribution": cfg.rigl_distribution,
                "init": cfg.rigl_init,
                "seed": cfg.seed,
            },
        )
    return Sparsifier(
        model,
        cfg.sparsity,
        method=cfg.method,
        schedule=_schedule(cfg, total),
        scope=cfg.scope,
        penalty=cfg.penalty if cfg.method == "prox_ste" else None,
        penalty_params=cfg.penalty_params or None,
        min_density=cfg.min_density,
        rescale={"default": None, "on": True, "off": False}[cfg.rescale],
    )


def _optimizer(cfg: TrainConfig, model):
    """Weight decay on weights (raw ones, pruned included, as in ST-3), none on biases."""
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0},
    ]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)


def train_run(config: TrainConfig | dict, data=None, resume: bool | None = None) -> dict:
    """Train one model with one method; returns the result dict (also ``out/result.json``).

    ``data`` = ``(x_train, y_train, x_test, y_test)`` tensors replaces MNIST (tests use tiny
    synthetic sets). With ``out`` set, writes ``config.json``, ``history.json`` (after every
    epoch), ``report.txt`` / ``result.json``, ``model.pt`` (the squashed state_dict, loadable
    by the plain architecture) and ``curves.png``, and keeps ``checkpoint.pt`` as it goes
    (removed once the result is written): ``resume`` says whether to continue the run found
    there (see ``shrinkage.experiments.loop.fit``; a resumed run ends bitwise identical
    to an uninterrupted one on the same ``threads``). ``threads`` applies inside the call
    only.

    A run whose loss stops being finite, or exceeds 1000 times its first loss, stops there:
    ``result["diverged"]`` is True and ``diverged_at_step`` says when (the command exits 1).
    An ``out`` that holds a run of another recipe (its ``config.json`` or ``result.json``) is
    refused before anything is written (ValueError); a finished run of the same recipe is
    run again.
    """
    cfg = TrainConfig(**config) if isinstance(config, dict) else config
    cfg.check()
    if cfg.out:
        check_writable_dir(cfg.out)
        # a folder holding another recipe's run (finished or not) is not written over:
        # its config.json would otherwise be replaced first, its results next
        _previous(Path(cfg.out), cfg)
    with num_threads(cfg.threads):
        return _train(cfg, data, resume)


# A loss this many times the first one is a run that blew up (lr too large), not training.
DIVERGE_FACTOR = 1e3


def _begin_run(cfg, data, load, check_steps=None):
    """What every MNIST weights run does first: the data (``data``, else ``load()``),
    ``check_steps(steps per epoch)`` (a recipe check that needs the data's size), then
    ``config.json`` written into ``cfg.out`` (if set), the seed; returns ``(out, (x, y,
    x_test, y_test), steps per epoch, total steps)``."""
    out = Path(cfg.out) if cfg.out else None
    tensors = data if data is not None else load()  # refuses a subset larger than the source
    per_epoch = steps_per_epoch(len(tensors[0]), cfg.batch_size, cfg.max_batches)
    if check_steps is not None:
        check_steps(per_epoch)
    if out is not None:
        write_json(out / "config.json", cfg.to_dict())
    torch.manual_seed(cfg.seed)
    return out, tensors, per_epoch, per_epoch * cfg.epochs


def _train(cfg: TrainConfig, data, resume) -> dict:
    out, (x, y, xt, yt), per_epoch, total = _begin_run(
        cfg, data, lambda: _data(cfg, cfg.eval_split)
    )
    act_cfg = parse_activation(cfg.activation, cfg.m_scale)
    model = build_model(cfg.model, act_cfg, cfg.depth, cfg.width)
    in_shape = (1, *x.shape[1:])
    sp = _sparsifier(cfg, model, total)
    opt = _optimizer(cfg, model)
    lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)

    def on_epoch(st):
        rep = flops(model, in_shape, pruned=sp.layer_names if sp else None)
        return {
            "epoch": st.epoch,
            "train_loss": st.train_loss,
            "train_acc": st.train_acc,
            "test_acc": evaluate(model, xt, yt),
            "target_sparsity": _target(sp),
            "sparsity": _sparse_state(model, sp),
            "dense_macs": rep.dense_macs,
            "sparse_macs": rep.sparse_macs,
            **({"learned_sparsity": sp.learned_sparsity} if cfg.method == "str" else {}),
        }

    run = fit(
        model,
        opt,
        x,
        y,
        on_epoch=on_epoch,
        after_step=[lr_sched.step] + ([sp.step] if sp is not None else []),
        desc=f"{cfg.model} {cfg.method} s={cfg.sparsity}" if cfg.progress else None,
        postfix=lambda: {"s": f"{_target(sp):.3f}"},
        log=functools.partial(_epoch_line, split=cfg.eval_split),
        out=out,
        state={"scheduler": lr_sched, **({"sparsifier": sp} if sp is not None else {})},
        **loop_settings(cfg, total, per_epoch),
        key_defaults=TrainConfig().to_dict(),  # a checkpoint from before a field existed
        resume=resume,
        stop_on_nonfinite=True,
        diverge_factor=DIVERGE_FACTOR,
    )
    return _finish(cfg, model, sp, act_cfg, run, (xt, yt), in_shape, out)


def loop_settings(cfg, total: int, per_epoch: int) -> dict:
    """The shared loop's settings that a weights recipe (``TrainConfig``, ``FinetuneConfig``)
    fixes: batch size, step counts, seed, gradient clip, and the resume key (the recipe but
    the fields that do not change the run)."""
    return {
        "batch_size": cfg.batch_size,
        "total_steps": total,
        "per_epoch": per_epoch,
        "seed": cfg.seed,
        "clip": cfg.clip,
        # what the numbers depend on: not where they are written (a run folder spelled
        # "run/", given as an absolute path or moved resumes as itself)
        "key": cfg.replace(progress=True, threads=None, out=None).to_dict(),
    }


def _epoch_line(rec: dict, split: str = "test") -> str:
    return (
        f"epoch {rec['epoch']}: loss {rec['train_loss']:.4f} "
        f"{'val' if split == 'val' else 'test'} acc {100 * rec['test_acc']:.2f}% "
        f"sparsity {rec['sparsity']:.4f} MACs {rec['sparse_macs']:,.0f}"
    )


def _finish(cfg, model, sp, act_cfg, run, test, in_shape, out) -> dict:
    """Squash, measure and write the result of a finished run."""
    t_start = time.perf_counter() - run.seconds  # resumed runs count their earlier epochs
    xt, yt = test
    history = run.history
    report = flops(model, in_shape, pruned=sp.layer_names if sp else None)
    empty_layers = list(sp.empty_layers) if sp is not None else []
    if sp is not None:
        sp.squash()
    acc_squashed = evaluate(model, xt, yt)
    # Zero weights and zero activations together, counted on the test set.
    eff = effective_macs(model, [(xt[i : i + 1000],) for i in range(0, len(xt), 1000)])
    result = {
        "config": cfg.to_dict(),
        "diverged": run.diverged_at is not None,
        "diverged_at_step": run.diverged_at,
        "diverged_loss": run.diverged_loss,
        "empty_layers": empty_layers,  # pruned to density 0: the network is disconnected
        "eval_split": cfg.eval_split,  # test_acc is measured on this split
        "test_acc": history[-1]["test_acc"],
        "test_acc_squashed": acc_squashed,
        "sparsity": history[-1]["sparsity"],
        "dense_macs": report.dense_macs,
        "sparse_macs": report.sparse_macs,
        "params": report.params,
        "nonzero": report.nonzero,
        "seconds": time.perf_counter() - t_start,
        "history": history,
        "report": report.to_dict(),
        "activation": _activation_summary(act_cfg),
        "effective_macs": eff,
    }
    if out is not None:
        write_text(out / "report.txt", str(report) + "\n")
        save_torch(out / "model.pt", model.state_dict())
        title = f"{cfg.model} {cfg.method} s={cfg.sparsity}"
        plot_history(history, out / "curves.png", title, split=cfg.eval_split)
        write_json(out / "result.json", result)
        (out / CHECKPOINT).unlink(missing_ok=True)
    result["report_table"] = str(report)
    return result


def _activation_summary(act_cfg) -> dict | None:
    if act_cfg is None:
        return None
    keys = ("sparsity", "tau", "m", "sigma_w", "sigma_b")
    return {"name": act_cfg.activation, **{k: getattr(act_cfg, k) for k in keys}}


def _target(sp) -> float:
    return 0.0 if sp is None else sp.current_sparsity


# -- sweeps ------------------------------------------------------------------------------
CSV_FIELDS = (
    "model",
    "method",
    "sparsity",
    "seed",
    "epochs",
    "diverged",
    "test_acc",
    "actual_sparsity",
    "params",
    "nonzero",
    "dense_macs",
    "sparse_macs",
    "seconds",
)


# Fields that do not change a run's numbers: never compared, never in the CSV.
_NOT_RECIPE = ("out", "progress", "threads")
# The recipe: every other field of TrainConfig (the grid's are columns above already).
RECIPE_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(TrainConfig)
    if f.name not in _NOT_RECIPE and f.name not in CSV_FIELDS
)


def recipe_of(config: dict) -> dict:
    """The fields of a run's config that decide its numbers (all but out, progress, threads),
    with TrainConfig's defaults for fields an older result does not have."""
    full = {**TrainConfig().to_dict(), **config}
    return {k: v for k, v in full.items() if k not in _NOT_RECIPE}


def _recipe_diff(want: dict, have: dict) -> str:
    keys = [k for k in want if want[k] != have.get(k)]
    return ", ".join(f"{k} {want[k]!r} here, {have.get(k)!r} there" for k in keys[:6])


def _row(res: dict) -> dict:
    c = recipe_of(res["config"])
    recipe = {k: json.dumps(c[k]) if isinstance(c[k], dict) else c[k] for k in RECIPE_FIELDS}
    return {
        "model": c["model"],
        "method": c["method"] if c["method"] != "prox_ste" else f"prox_ste:{c['penalty']}",
        "sparsity": c["sparsity"],
        "seed": c["seed"],
        "epochs": c["epochs"],
        "diverged": bool(res.get("diverged", False)),
        "test_acc": res["test_acc"],
        "actual_sparsity": res["sparsity"],
        "params": res["params"],
        "nonzero": res["nonzero"],
        "dense_macs": res["dense_macs"],
        "sparse_macs": res["sparse_macs"],
        "seconds": res["seconds"],
        **recipe,
    }


def run_name(model: str, method: str, sparsity: float, seed: int, penalty: str = "l1") -> str:
    tag = method if method != "prox_ste" else f"prox_ste-{penalty.replace('/', '_')}"
    return f"{model}_{tag}_s{sparsity:g}_seed{seed}"


def sweep(
    base: TrainConfig | dict,
    models,
    methods,
    sparsities,
    seeds,
    out,
    data=None,
) -> list[dict]:
    """Train every (model, method, sparsity, seed) with the same recipe ``base``.

    A run whose folder under ``out`` already holds a result of the same whole config is not
    redone, and one that was interrupted resumes from its checkpoint (an interrupted sweep
    goes on where it stopped). A run folder made with another recipe is never reused nor
    overwritten: the sweep refuses to start, naming the run and the fields that differ.
    ``out/sweep.csv`` (one row per run, its recipe in the last columns) and the plots
    ``out/<model>_acc_vs_sparsity.png`` / ``out/<model>_acc_vs_macs.png`` summarise every
    finished run under ``out`` (so sweeps with different grids, same recipe, can share a
    folder). ``method`` may be ``prox_ste:<penalty>``. Returns the CSV rows.
    """
    base = TrainConfig(**base) if isinstance(base, dict) else base
    specs = []
    for model in models:
        check_choice("model", model, MODELS)
        for method in methods:
            meth, _, pen = method.partition(":")
            check_choice("method", meth, (*METHODS, "dense"))
            for s in sparsities:
                check_open_unit("sparsity", s, closed_low=True)
                for seed in seeds:
                    specs.append((model, meth, pen or "l1", float(s), int(seed)))
    # one run named twice (a repeated method, sparsity or seed) would be trained twice
    check_distinct("models", list(models))
    # "prox_ste" is "prox_ste:l1": the same runs under two names
    check_distinct("methods", [m if m != "prox_ste" else "prox_ste:l1" for m in methods])
    check_distinct("sparsities", [float(x) for x in sparsities])
    check_distinct("seeds", [int(x) for x in seeds])
    names = {}
    for sp in specs:
        name = run_name(sp[0], sp[1], sp[3], sp[4], sp[2])
        if name in names:
            field = "sparsities" if names[name][3] != sp[3] else "methods"
            a, b = (names[name][3], sp[3]) if field == "sparsities" else (names[name][1:3], sp[1:3])
            raise ValueError(
                f"{field} must name distinct runs: {a!r} and {b!r} share the run folder {name!r}"
            )
        names[name] = sp
    out = check_writable_dir(out)
    _refuse_other_folder(out, base)
    runs = []
    for model, meth, pen, s, seed in specs:
        run_dir = out / run_name(model, meth, s, seed, pen)
        cfg = base.replace(
            model=model, method=meth, penalty=pen, sparsity=s, seed=seed, out=str(run_dir)
        ).check()
        runs.append((run_dir, cfg, _previous(run_dir, cfg)))
    for i, (run_dir, cfg, done) in enumerate(runs, 1):
        if done:
            continue
        res = train_run(cfg, data=data, resume=True)
        print(
            f"[{i}/{len(specs)}] {run_dir.name}: {res['eval_split']} acc "
            f"{100 * res['test_acc']:.2f}% "
            f"sparsity {res['sparsity']:.4f} ({res['seconds']:.0f}s)"
            + (f", DIVERGED at step {res['diverged_at_step']}" if res["diverged"] else ""),
            flush=True,
        )
    return summarize(out)


def _previous(run_dir: Path, cfg: TrainConfig) -> bool:
    """Whether ``run_dir`` holds a finished run of ``cfg``; ValueError when it holds a run
    (finished or not) of another recipe."""
    for name in ("result.json", "config.json"):
        path = run_dir / name
        if not path.is_file():
            continue
        want, have = recipe_of(cfg.to_dict()), recipe_of(_read_run_json(path)[1])
        if want != have:
            raise ValueError(
                f"{run_dir} holds a run of another recipe ({_recipe_diff(want, have)}); "
                "choose another output folder or remove that run"
            )
        if name == "result.json":
            return True
    return False


# A sweep's grid: the fields that vary between the runs of one sweep folder.
_GRID = ("model", "method", "penalty", "sparsity", "seed")


def _read_run_json(path: Path) -> tuple[dict, dict]:
    """(what the file holds, the run's config) of a run's ``config.json`` or
    ``result.json``; ValueError naming a damaged file."""
    saved = read_json(path, "remove the run folder to redo it")
    if not isinstance(saved, dict):
        raise ValueError(f"{path} does not hold a run's JSON object; remove the run folder")
    config = saved.get("config", saved) if path.name == "result.json" else saved
    if not isinstance(config, dict):
        raise ValueError(f"{path} does not hold a run's config; remove the run folder")
    return saved, config


def _sweep_recipe(config: dict) -> dict:
    return {k: v for k, v in recipe_of(config).items() if k not in _GRID}


def _refuse_other_folder(out: Path, base: TrainConfig) -> None:
    """A sweep folder holds the runs of one recipe (its table and plots average seeds of
    it) and nothing of another command: refuse ``out`` otherwise, before any run."""
    for name in ("config.json", "sweep.json", "compare.json"):
        if (out / name).is_file():
            raise ValueError(
                f"{out} holds the output of another command ({name}: a single run, a codes "
                "sweep or a comparison); a weights sweep writes sweep.csv and one folder per "
                "run: choose another output folder"
            )
    want = _sweep_recipe(base.to_dict())
    for path in sorted(out.glob("*/config.json")) + sorted(out.glob("*/result.json")):
        have = _sweep_recipe(_read_run_json(path)[1])
        if have != want:
            raise ValueError(
                f"{path.parent} holds a run of another recipe ({_recipe_diff(want, have)}); "
                "a sweep folder holds one recipe (its table and plots average the seeds of "
                "it): choose another output folder"
            )


def summarize(out) -> list[dict]:
    """Collect every ``result.json`` under ``out`` into ``sweep.csv`` and per-model plots
    (ValueError when they are not runs of one recipe: their means would mix recipes)."""
    out = Path(out)
    rows, recipes = [], {}
    for p in sorted(out.glob("*/result.json")):
        res, config = _read_run_json(p)
        recipes.setdefault(json.dumps(_sweep_recipe(config), sort_keys=True), p.parent)
        if len(recipes) > 1:
            first = next(iter(recipes.values()))
            raise ValueError(
                f"{first} and {p.parent} are runs of different recipes; summarize the runs "
                "of one recipe (one sweep folder per recipe)"
            )
        rows.append(_row(res))
    rows.sort(key=lambda r: (r["model"], r["method"], r["sparsity"], r["seed"]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS + RECIPE_FIELDS)
    w.writeheader()
    w.writerows(rows)
    write_text(out / "sweep.csv", buf.getvalue())
    for model in sorted({r["model"] for r in rows}):
        sub = [r for r in rows if r["model"] == model and r["method"] != "dense"]
        if sub:
            plot_sweep(
                sub,
                out / f"{model}_acc_vs_sparsity.png",
                out / f"{model}_acc_vs_macs.png",
                title=f"{model} on MNIST",
            )
    return rows


def markdown_table(rows: list[dict], model: str) -> str:
    """Mean test accuracy (%) over seeds per method x sparsity, with the seed count and the
    mean sparse MACs; a Markdown table for the results page."""
    sub = [r for r in rows if r["model"] == model]
    sps = sorted({float(r["sparsity"]) for r in sub})
    methods = sorted({r["method"] for r in sub})
    head = "| method | " + " | ".join(f"s = {s:g}" for s in sps) + " |"
    lines = [head, "|" + " --- |" * (len(sps) + 1)]
    for m in methods:
        cells = []
        for s in sps:
            accs = [
                100 * float(r["test_acc"])
                for r in sub
                if r["method"] == m and float(r["sparsity"]) == s
            ]
            macs = [
                float(r["sparse_macs"])
                for r in sub
                if r["method"] == m and float(r["sparsity"]) == s
            ]
            if not accs:
                cells.append("")
                continue
            seeds = (
                f" (n={len(accs)}: " + "/".join(f"{a:.2f}" for a in accs) + ")"
                if len(accs) > 1
                else ""
            )
            cells.append(f"{np.mean(accs):.2f}{seeds}, {np.mean(macs) / 1e3:.0f}k MACs")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
