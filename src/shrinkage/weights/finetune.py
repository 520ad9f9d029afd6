"""Prune a trained dense model during a short fine-tune (``shrinkage weights finetune``).

The most common use of weight sparsity: a model is already trained; reach the target
sparsity while fine-tuning it briefly, then hand back a plain dense-format model::

    from shrinkage.weights.finetune import FinetuneConfig, finetune
    res = finetune(FinetuneConfig(checkpoint="runs/dense/model.pt", model="lenet5",
                                  method="st3", sparsity=0.99, epochs=2, out="runs/ft"))
    res["test_acc"], res["curve"]          # final accuracy, accuracy against fine-tune epochs

Methods (the same recipe for all, only the pruning differs):

- ``st3`` (or any :data:`~shrinkage.weights.METHODS` entry): the Sparsifier from the trained
  weights, cubic schedule s(t) = s_f (1 - (1 - t / T)^3) from the first step to
  ``prune_end`` of the fine-tune, then held at s_f (thresholds still recomputed each step);
- ``gmp``: gradual magnitude pruning with sticky masks on the same schedule (Zhu & Gupta 2017);
- ``oneshot``: global magnitude pruning to s_f before the first step (the k smallest |w| over
  all pruned layers), then the same fine-tune with that mask fixed.

Recipe: SGD, Nesterov momentum 0.9, lr 0.01 with cosine decay to 0, weight decay 1e-4 on
weights (raw ones, pruned included), none on biases, gradient-norm clip 3, batch 128.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .._checks import check_choice, check_int_at_least, check_open_unit, check_positive
from .._io import save_torch, write_json, write_text
from ._flops import flops
from ._schedules import Constant, Cubic
from ._sparsifier import METHODS, Sparsifier
from .train import MODELS, build_model, evaluate

__all__ = ["FinetuneConfig", "finetune", "load_dense", "FINETUNE_METHODS"]

FINETUNE_METHODS = (*METHODS, "oneshot")
"""Pruning during the fine-tune: any Sparsifier method, or ``oneshot`` magnitude pruning."""


@dataclass
class FinetuneConfig:
    """Everything one fine-tune depends on (recorded in ``config.json``)."""

    checkpoint: str = ""
    model: str = "lenet5"
    method: str = "st3"
    sparsity: float = 0.99
    epochs: int = 2
    seed: int = 0
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    clip: float = 3.0
    prune_end: float = 0.5  # fraction of the fine-tune's steps at which s_f is reached
    scope: str = "global"
    evals_per_epoch: int = 2  # points of the accuracy curve per epoch
    subset: int | None = None
    test_subset: int | None = None
    max_batches: int | None = None
    threads: int | None = None
    progress: bool = True
    out: str | None = None

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
        check_positive("lr", self.lr)
        check_choice("scope", self.scope, ("global", "layer"))
        if not 0.0 < self.prune_end <= 1.0:
            raise ValueError(f"prune_end must be in (0, 1], got prune_end={self.prune_end!r}")
        for name in ("subset", "test_subset", "max_batches", "threads"):
            if getattr(self, name) is not None:
                check_int_at_least(name, getattr(self, name), 1)
        return self


def load_dense(model: str, checkpoint, depth: int = 20, width: int = 300) -> torch.nn.Module:
    """Build ``model`` (a name of :data:`~shrinkage.weights.train.MODELS`) and load a state
    dict from ``checkpoint`` (``model.pt`` of ``shrinkage weights train``, or a dict holding
    it under ``"state_dict"`` / ``"model"``). A mismatch is a ValueError naming the keys."""
    net = build_model(model, None, depth, width)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
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
            "(choose the architecture with --model)"
        )
    net.load_state_dict(state)
    return net


def _mnist(cfg: FinetuneConfig):
    from ..data import mnist

    x, y = mnist("train")
    xt, yt = mnist("test")
    if cfg.subset:
        x, y = x[: cfg.subset], y[: cfg.subset]
    if cfg.test_subset:
        xt, yt = xt[: cfg.test_subset], yt[: cfg.test_subset]
    return x, y, xt, yt


def finetune(config: FinetuneConfig | dict, data=None) -> dict:
    """Fine-tune a trained dense model while pruning it to ``sparsity``; returns the result.

    ``data`` = ``(x_train, y_train, x_test, y_test)`` replaces MNIST. The result holds
    ``curve``: test accuracy and sparsity at fine-tune epoch 0 (before the first step: the
    dense model, or the one-shot pruned one), then ``evals_per_epoch`` times per epoch.
    With ``out`` set, writes ``config.json``, ``result.json``, ``report.txt`` and
    ``model.pt`` (squashed: the plain architecture loads it).
    """
    cfg = FinetuneConfig(**config) if isinstance(config, dict) else config
    cfg.check()
    model = load_dense(cfg.model, cfg.checkpoint)  # a bad checkpoint fails before any work
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out) if cfg.out else None
    if out is not None:
        write_json(out / "config.json", asdict(cfg))
    x, y, xt, yt = data if data is not None else _mnist(cfg)
    torch.manual_seed(cfg.seed)
    in_shape = (1, *x.shape[1:])
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    if cfg.max_batches:
        steps_per_epoch = min(steps_per_epoch, cfg.max_batches)
    total = steps_per_epoch * cfg.epochs
    if cfg.method == "oneshot":
        # gmp at the final sparsity from step 0: the global magnitude mask, then kept
        sp = Sparsifier(model, cfg.sparsity, method="gmp", schedule=Constant(), scope=cfg.scope)
    else:
        end = max(1, int(round(cfg.prune_end * total)))
        sp = Sparsifier(
            model, cfg.sparsity, method=cfg.method, schedule=Cubic(0, end), scope=cfg.scope
        )
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.momentum > 0,
    )
    lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    gen = torch.Generator().manual_seed(cfg.seed)
    marks = {
        min(steps_per_epoch, round(i * steps_per_epoch / cfg.evals_per_epoch))
        for i in range(1, cfg.evals_per_epoch + 1)
    }

    def point(epoch: float) -> dict:
        return {
            "epoch": epoch,
            "test_acc": evaluate(model, xt, yt),
            "sparsity": 1.0 - sp.density(),
            "target_sparsity": sp.current_sparsity,
            "seconds": time.perf_counter() - t0,
        }

    t0 = time.perf_counter()
    curve = [point(0.0)]
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"finetune {cfg.model} {cfg.method} s={cfg.sparsity}")
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for b in range(steps_per_epoch):
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            lr_sched.step()
            sp.step()
            if bar is not None:
                bar.update(1)
            if b + 1 in marks:
                curve.append(point(round(epoch + (b + 1) / steps_per_epoch, 4)))
                if bar is not None:
                    bar.write(
                        f"epoch {curve[-1]['epoch']:g}: test acc "
                        f"{100 * curve[-1]['test_acc']:.2f}% sparsity {curve[-1]['sparsity']:.4f}"
                    )
    if bar is not None:
        bar.close()
    report = flops(model, in_shape, pruned=sp.layer_names)
    sp.squash()
    acc_squashed = evaluate(model, xt, yt)
    result = {
        "config": asdict(cfg),
        "test_acc": curve[-1]["test_acc"],
        "test_acc_squashed": acc_squashed,
        "sparsity": curve[-1]["sparsity"],
        "dense_macs": report.dense_macs,
        "sparse_macs": report.sparse_macs,
        "curve": curve,
        "seconds": time.perf_counter() - t0,
        "report": report.to_dict(),
    }
    if out is not None:
        write_text(out / "report.txt", str(report) + "\n")
        save_torch(out / "model.pt", model.state_dict())
        write_json(out / "result.json", result)
    result["report_table"] = str(report)
    return result
