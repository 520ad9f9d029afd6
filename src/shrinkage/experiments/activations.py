"""Deep sparse-activation networks trained on MNIST: one run (``train_run``), the
reproduction grid (``reproduce``) and the lever study (``lever_study``).

Every run is one ``ActivationsRecipe`` (a frozen dataclass; its fields are the command
line's options and what ``config.json`` records)::

    from shrinkage.experiments.activations import ActivationsRecipe, train_run
    res = train_run(ActivationsRecipe(activation="crelu", sparsity=0.85, depth=50, width=300))
    res["test_acc"], res["test_sparsity_per_layer"]

The recipe (``docs/guide/activations.md`` has the study behind it): the edge-of-chaos
initialisation with the clipping level of ``shrinkage.activations.clip_for_depth``
(``m="auto"``: the level that minimises the predicted finite-width spread of the gradient over
the network's depth), inputs scaled so that the first layer sits at q*, Adam at 3e-4 with a
linear warm-up over a fifth of the first epoch and cosine decay, batch 128, gradient-norm clip
1, and the thresholds held at the target sparsity during training by
``shrinkage.activations.SparsityControl`` (``control``, the moving-average weight; 0
keeps them fixed, as in Price et al., ICLR 2024).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import data
from .._checks import (
    check_choice,
    check_device,
    check_float32_range,
    check_int_at_least,
    check_nonnegative,
    check_open_unit,
    check_positive,
    check_seed,
)
from .._io import write_json, write_text
from ..activations import (
    ActivationSparsity,
    EdgeOfChaosWarning,
    SparsityControl,
    edge_of_chaos,
    finite_width,
    unit_census,
)
from ..models.mlp import deep_cnn, hidden_layers, mlp
from ._plots import plot_diagnostics, plot_reproduction, plot_training
from .checkpoint import CheckpointError
from .loop import CHECKPOINT, fit, num_threads, steps_per_epoch
from .recipe import Recipe
from .recipe import option as _h

__all__ = [
    "ActivationsRecipe",
    "train_run",
    "reproduce",
    "lever_study",
    "markdown_table",
    "GRID",
    "LEVERS",
    "RunSkippedWarning",
    "grid_labels",
]

_OPTIMIZERS = ("adam", "amsgrad", "sgd")
_SCHEDULES = ("cosine", "constant")
_MODELS = ("mlp", "cnn")
DEFAULT_SPARSITY = 0.85
_NO_THRESHOLD = ("relu", "tanh", "erf")
_UNSTABLE_Q = 1e3  # q^L at initialisation above this many q*: the variance map ran away


@dataclass(frozen=True)
class ActivationsRecipe(Recipe):
    """Everything one run depends on; each default is also the command line's
    (``shrinkage activations train``)."""

    activation: str = field(
        default="crelu",
        metadata=_h("relu, shifted_relu, soft_threshold, crelu, cst (or their long names)"),
    )
    sparsity: float | None = field(
        default=None,
        metadata=_h(f"target fraction of zeros (default {DEFAULT_SPARSITY} unless relu)"),
    )
    model: str = field(default="mlp", metadata=_h("mlp | cnn (3x3 'same' convolutions)"))
    depth: int = field(default=50, metadata=_h("hidden layers"))
    width: int = field(default=300, metadata=_h("units per layer (channels for cnn)"))
    m: str = field(
        default="auto",
        metadata=_h("clipping level: auto (clip_for_depth), safe (largest stable), a number"),
    )
    q_star: float = field(default=1.0, metadata=_h("fixed point of the variance map"))
    control: float = field(
        default=0.1,
        metadata=_h("SparsityControl momentum holding the target sparsity (0: fixed tau)"),
    )
    optimizer: str = field(
        default="adam", metadata=_h("adam | amsgrad (Adam, AMSGrad variant) | sgd (momentum 0.9)")
    )
    lr: float = field(default=3e-4, metadata=_h("peak learning rate"))
    warmup: float = field(default=0.2, metadata=_h("linear warm-up, in epochs"))
    schedule: str = field(default="cosine", metadata=_h("cosine | constant after warm-up"))
    batch_size: int = 128
    weight_decay: float = 0.0
    grad_clip: float = field(default=1.0, metadata=_h("gradient-norm clip (0: none)"))
    epochs: float = field(default=3.0, metadata=_h("passes over the training images"))
    input_pool: int = field(default=1, metadata=_h("average-pool the 28x28 images by this"))
    n_train: int | None = field(default=None, metadata=_h("train on the first N images"))
    n_eval: int = field(default=10_000, metadata=_h("test images evaluated"))
    seed: int = 0
    threads: int | None = field(default=1, metadata=_h("torch CPU threads (inside the run)"))
    device: str | None = field(default=None, metadata=_h("torch device (unset: cpu)"))
    progress: bool = field(default=True, metadata=_h("no progress bar", flag="--no-progress"))
    out: str | None = field(default=None, metadata=_h("output folder"))

    def check(self) -> ActivationsRecipe:
        check_device("device", self.device)
        check_choice("model", self.model, _MODELS)
        check_choice("optimizer", self.optimizer, _OPTIMIZERS)
        check_choice("schedule", self.schedule, _SCHEDULES)
        check_int_at_least("depth", self.depth, 2)
        check_int_at_least("width", self.width, 1)
        check_int_at_least("batch_size", self.batch_size, 1)
        check_int_at_least("input_pool", self.input_pool, 1)
        check_int_at_least("n_eval", self.n_eval, 1)
        for name in ("lr", "epochs", "q_star"):
            check_positive(name, getattr(self, name))
            if not math.isfinite(float(getattr(self, name))):
                raise ValueError(f"{name} must be finite, got {name}={getattr(self, name)!r}")
        for name in ("warmup", "weight_decay", "grad_clip", "control"):
            check_nonnegative(name, getattr(self, name))
        if self.control > 1:
            raise ValueError(f"control must be in [0, 1], got control={self.control!r}")
        if self.warmup > self.epochs:
            raise ValueError(
                f"warmup must not be longer than training, got warmup={self.warmup!r} and "
                f"epochs={self.epochs!r}"
            )
        for name in ("n_train", "threads"):
            if getattr(self, name) is not None:
                check_int_at_least(name, getattr(self, name), 1)
        check_seed("seed", self.seed)
        check_float32_range("lr", self.lr)
        check_float32_range("weight_decay", self.weight_decay)
        if self.input_pool > 1 and 28 % self.input_pool:
            raise ValueError(f"input_pool must divide 28, got input_pool={self.input_pool!r}")
        _m_value(self.m)
        if self.sparsity is not None:
            check_open_unit("sparsity", self.sparsity)
        return self

    def config(self):
        """The edge-of-chaos config of this recipe and the text of the EdgeOfChaosWarnings it
        raised (unclipped activations ignore ``m="auto"`` and ``"safe"``)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EdgeOfChaosWarning)
            cfg = edge_of_chaos(
                self.activation,
                self.target_sparsity,
                q_star=self.q_star,
                m=_m_value(self.m),
                depth=self.depth,
                width=self.width,
            )
        texts = [str(w.message) for w in caught if issubclass(w.category, EdgeOfChaosWarning)]
        return cfg, texts

    @property
    def target_sparsity(self) -> float | None:
        """``sparsity``, or its default for an activation with a threshold."""
        if self.sparsity is None and self.activation not in _NO_THRESHOLD:
            return DEFAULT_SPARSITY
        return self.sparsity


def _m_value(m):
    if isinstance(m, int | float):
        check_positive("m", m)
        return float(m)
    if m in ("auto", "safe"):
        return m
    try:
        value = float(m)
    except (TypeError, ValueError):
        raise ValueError(f"m must be 'auto', 'safe' or a number > 0, got m={m!r}") from None
    check_positive("m", value)
    if not math.isfinite(value):
        raise ValueError(f"m must be finite, got m={m!r}")
    return value


# ---- one run ------------------------------------------------------------------------------
def train_run(
    recipe: ActivationsRecipe | str | None = None,
    sparsity=None,
    *,
    resume: bool | None = None,
    **changes,
) -> dict:
    """Train one edge-of-chaos network on MNIST and measure accuracy and activation sparsity.

    Parameters
    ----------
    recipe : ActivationsRecipe, str or None
        The run; a string is the activation's name (then ``sparsity`` and ``changes`` give
        the rest, on top of the defaults).
    sparsity : float, optional
        The target fraction of zeros, when ``recipe`` is a name.
    resume : bool, optional
        What to do with the checkpoint of an interrupted run in ``out`` (see
        ``shrinkage.experiments.loop.fit``): True continues it (bitwise as if never
        stopped), False refuses to overwrite it, None continues one of the same recipe.
    **changes
        Fields of ``ActivationsRecipe`` to change.

    Returns
    -------
    dict
        JSON-ready: the config, test and train accuracy, per-layer activation sparsity (test
        and train), its largest distance to the target, the history per epoch, the initial
        q^l, the finite-width prediction for the config, and ``flags`` (``"diverged"``: the
        loss stopped being finite; ``"collapsed"``: final accuracy near chance or 20 points
        below its best epoch; ``"unstable_init"``: q^L ran away at initialisation). With
        ``out`` also ``result.json``, ``config.json``, ``history.json`` and ``train.png``; an
        interrupted run resumes from ``checkpoint.pt``.

    Raises
    ------
    ValueError
        A field out of range (named), or an ``out`` holding a finished run of another recipe
        (``run_cached`` replaces such a stale run), before any work.

    Examples
    --------
    >>> res = train_run("crelu", 0.85, depth=4, width=16, epochs=0.25, n_train=512,
    ...                 n_eval=256, progress=False)
    >>> sorted(k for k in res if k.startswith("test_acc"))
    ['test_acc']
    """
    if isinstance(recipe, str):
        changes = {"activation": recipe, "sparsity": sparsity, **changes}
        recipe = None
    elif sparsity is not None:
        changes = {"sparsity": sparsity, **changes}
    recipe = (recipe or ActivationsRecipe()).replace(**changes).check()
    if recipe.out is not None:
        _check_out(recipe.out, recipe)
    cfg, warning_text = recipe.config()
    with num_threads(recipe.threads):
        res = _train(recipe, cfg, resume)
    res["warnings"] = warning_text
    return _write(res, recipe)


_NOT_RECIPE = ("out", "progress", "threads")  # fields that do not change the numbers


def _check_out(out, recipe=None) -> None:
    """``out`` a folder, and (given the run's ``recipe``) not one holding a finished run of
    another recipe (its ``config.json`` and results would be written over)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a folder, got out={str(out)!r}, which is a file")
    if recipe is not None:
        recipe.refuse_other_run(out, ignore=_NOT_RECIPE)


def _images(recipe, dev):
    xtr, ytr = data.mnist("train")
    xte, yte = data.mnist("test")
    # more than the source holds would silently train (or test) on fewer: refused
    for name, want, have, split in (
        ("n_train", recipe.n_train, len(xtr), "training"),
        ("n_eval", recipe.n_eval, len(xte), "test"),
    ):
        if want is not None and want > have:
            raise ValueError(
                f"{name} must be at most the {have:,} MNIST {split} images of this source, "
                f"got {name}={want!r}"
            )
    if recipe.n_train:
        xtr, ytr = xtr[: recipe.n_train], ytr[: recipe.n_train]
    xte, yte = xte[: recipe.n_eval], yte[: recipe.n_eval]
    if recipe.model == "cnn" or recipe.input_pool > 1:
        xtr, xte = (t.reshape(-1, 1, 28, 28) for t in (xtr, xte))
        if recipe.input_pool > 1:
            xtr, xte = (nn.functional.avg_pool2d(t, recipe.input_pool) for t in (xtr, xte))
        if recipe.model == "mlp":
            xtr, xte = xtr.flatten(1), xte.flatten(1)
    return tuple(t.to(dev) for t in (xtr, ytr, xte, yte))


def _network(recipe, cfg, n_in):
    if recipe.model == "cnn":
        return deep_cnn(recipe.depth, recipe.width, cfg)
    return mlp(recipe.depth, recipe.width, cfg, in_features=n_in)


def _optimizer(recipe, net):
    if recipe.optimizer in ("adam", "amsgrad"):
        # AMSGrad keeps the largest second moment seen: a weight whose unit is rarely in the
        # linear window gets no step blown up by a second moment that decayed meanwhile
        return torch.optim.Adam(
            net.parameters(),
            lr=recipe.lr,
            weight_decay=recipe.weight_decay,
            amsgrad=recipe.optimizer == "amsgrad",
        )
    return torch.optim.SGD(
        net.parameters(), lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay
    )


def _lr_rule(recipe, opt, total, warm):
    """Linear warm-up over ``warm`` steps, then cosine decay (or constant) to ``total``."""

    def set_lr(step):
        f = 1.0
        if warm and step < warm:
            f = (step + 1) / warm
        elif recipe.schedule == "cosine":
            f = 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
        for g in opt.param_groups:
            g["lr"] = recipe.lr * f

    return set_lr


def _evaluate(net, x, y, batch=1000):
    net.eval()
    correct, loss_sum = 0, 0.0
    with ActivationSparsity(net) as sp, torch.no_grad():
        for i in range(0, len(x), batch):
            out = net(x[i : i + batch])
            loss_sum += float(nn.functional.cross_entropy(out, y[i : i + batch], reduction="sum"))
            correct += int((out.argmax(1) == y[i : i + batch]).sum())
    return correct / len(x), loss_sum / len(x), sp.per_layer


def _layer_variances(net, x):
    """Mean square of every hidden pre-activation on a batch (the empirical q^l)."""
    qs = []
    with contextlib.ExitStack() as hooks, torch.no_grad():
        for layer in hidden_layers(net):
            handle = layer.register_forward_hook(
                lambda m, i, o: qs.append(float(o.double().pow(2).mean()))
            )
            hooks.callback(handle.remove)
        net(x)
    return qs


def _controlled(recipe, cfg):
    return recipe.control > 0 and cfg.tau > 0


def _train(recipe, cfg, resume=None) -> dict:
    torch.manual_seed(recipe.seed)
    dev = torch.device(recipe.device or "cpu")
    xtr, ytr, xte, yte = _images(recipe, dev)
    net = _network(recipe, cfg, xtr[0].numel()).to(dev)
    init_q = _layer_variances(net, xte[:256])
    init_census = unit_census(net, xte[:512])
    ctl = (
        SparsityControl(net, cfg.sparsity, momentum=recipe.control)
        if _controlled(recipe, cfg)
        else None
    )
    per_epoch = steps_per_epoch(len(xtr), recipe.batch_size)
    total = max(1, int(round(recipe.epochs * per_epoch)))
    opt = _optimizer(recipe, net)

    grads = _GradMeter(hidden_layers(net))

    def on_epoch(st):
        te_acc, te_loss, te_sp = _evaluate(net, xte, yte)
        return {
            "epoch": st.epoch,
            "step": st.step,
            "train_loss": st.train_loss,
            "train_acc_running": st.train_acc,
            "test_acc": te_acc,
            "test_loss": te_loss,
            "test_sparsity_mean": float(np.nanmean(te_sp)),
            "test_sparsity_per_layer": te_sp,
            "grad_norm_per_layer": grads.take(),
            "census": unit_census(net, xte[:512]),
        }

    run = fit(
        net,
        opt,
        xtr,
        ytr,
        batch_size=recipe.batch_size,
        total_steps=total,
        per_epoch=per_epoch,
        on_epoch=on_epoch,
        seed=recipe.seed,
        clip=recipe.grad_clip,
        before_step=[_lr_rule(recipe, opt, total, int(recipe.warmup * per_epoch))],
        after_step=[grads.add] + ([ctl.step] if ctl else []),
        stop_on_nonfinite=True,
        desc=f"{cfg.activation} s={cfg.sparsity:.2f}" if recipe.progress else None,
        out=recipe.out,
        state={"grads": grads, **({"control": ctl} if ctl else {})},
        key=_key(recipe),
        resume=resume,
    )
    if ctl:
        ctl.remove()
    res = _result(recipe, cfg, run, net, (xtr, ytr, xte, yte), init_q)
    res["init_census"] = init_census
    return res


class _GradMeter:
    """Mean gradient norm of each hidden layer's weight over the steps since the last take():
    where the gradient is lost, layer by layer, as training goes."""

    def __init__(self, layers):
        self.layers = layers
        self.sums = np.zeros(len(layers))
        self.n = 0

    def add(self):
        self.sums += [
            0.0 if m.weight.grad is None else float(m.weight.grad.norm()) for m in self.layers
        ]
        self.n += 1

    def take(self) -> list[float]:
        out = (self.sums / max(self.n, 1)).tolist()
        self.sums[:] = 0.0
        self.n = 0
        return out

    def state_dict(self) -> dict:
        return {"sums": torch.tensor(self.sums), "n": self.n}

    def load_state_dict(self, state: dict) -> None:
        self.sums = state["sums"].numpy().astype(float).copy()
        self.n = int(state["n"])


def _key(recipe) -> dict:
    skip = ("progress", "out", "threads", "device")
    return {k: v for k, v in recipe.to_dict().items() if k not in skip}


def _flags(res, cfg) -> list[str]:
    flags = []
    if res["diverged"]:
        flags.append("diverged")
    accs = [h["test_acc"] for h in res["history"]] or [res["test_acc"]]
    if res["test_acc"] < 0.2 or res["test_acc"] < max(accs) - 0.2:
        flags.append("collapsed")
    q_last = res["init_q_per_layer"][-1] if res["init_q_per_layer"] else float("nan")
    if not math.isfinite(q_last) or q_last > _UNSTABLE_Q * cfg.q_star:
        flags.append("unstable_init")
    return flags


def _result(recipe, cfg, run, net, tensors, init_q) -> dict:
    t_start = time.perf_counter() - run.seconds
    xtr, ytr, xte, yte = tensors
    te_acc, te_loss, te_sp = _evaluate(net, xte, yte)
    tr_acc, tr_loss, tr_sp = _evaluate(net, xtr[: recipe.n_eval], ytr[: recipe.n_eval])
    keys = ("q_star", "tau", "m", "sigma_w", "sigma_b", "chi", "dV", "d2V", "stable")
    fw = finite_width(cfg, recipe.width, recipe.depth) if recipe.model == "mlp" else None
    target = None if cfg.activation == "relu" else cfg.sparsity
    res = {
        "activation": cfg.activation,
        "target_sparsity": target,
        "recipe": _key(recipe),
        "depth": recipe.depth,
        "width": recipe.width,
        "epochs": recipe.epochs,
        "config": {k: getattr(cfg, k) for k in keys},
        "fixed_points": [str(p) for p in cfg.fixed_points],
        "predicted_log_gain_sd": None if fw is None else fw.log_gain_sd,
        "warnings": [],
        "n_train": len(xtr),
        "n_eval": len(xte),
        "steps": run.steps,
        "diverged": run.diverged_at is not None,
        "diverged_at_step": run.diverged_at,
        "init_q_per_layer": init_q,
        "test_acc": te_acc,
        "test_loss": te_loss,
        "train_acc": tr_acc,
        "train_loss": tr_loss,
        "test_sparsity_per_layer": te_sp,
        "train_sparsity_per_layer": tr_sp,
        "test_sparsity_mean": float(np.nanmean(te_sp)),
        "train_sparsity_mean": float(np.nanmean(tr_sp)),
        "sparsity_max_error": None
        if target is None
        else float(np.nanmax(np.abs(np.asarray(te_sp) - target))),
        "taus": [float(m.tau.mean()) for m in net.modules() if hasattr(m, "tau")],
        "history": run.history,
        "seconds": time.perf_counter() - t_start,
    }
    res["flags"] = _flags(res, cfg)
    return res


def _write(res, recipe) -> dict:
    if recipe.out is not None:
        out = Path(recipe.out)
        write_json(out / "config.json", recipe.to_dict())
        write_json(out / "result.json", res)
        plot_training(res, out / "train.png")
        plot_diagnostics(res, out / "diagnostics.png")
        (out / CHECKPOINT).unlink(missing_ok=True)
    return res


def describe(res) -> list[str]:
    """What a run printed: accuracy, sparsity against the target, and every flag."""
    lines = [
        f"test accuracy {res['test_acc']:.4f}, train accuracy {res['train_acc']:.4f}",
        f"activation sparsity: test {res['test_sparsity_mean']:.4f}, train "
        f"{res['train_sparsity_mean']:.4f}"
        + (
            ""
            if res["target_sparsity"] is None
            else f" (target {res['target_sparsity']:.2f}; every test layer within "
            f"{res['sparsity_max_error']:.3f} of it)"
        ),
    ]
    notes = {
        "diverged": f"FLAG diverged: the loss was not finite at step {res['diverged_at_step']}",
        "collapsed": "FLAG collapsed: the final accuracy is near chance or 20 points below the "
        "best epoch's",
        "unstable_init": "FLAG unstable_init: the pre-activation variance ran away at "
        f"initialisation (q at the last layer {res['init_q_per_layer'][-1]:.3g})",
    }
    lines += [notes[f] for f in res["flags"]]
    return lines


# ---- the reproduction grid ----------------------------------------------------------------
# (label, activation, sparsity, model, depth, seeds, changes to the recipe for this row)
_CNN = {"width": 32, "input_pool": 2}
GRID = tuple(
    [(f"relu_d{d}", "relu", None, "mlp", d, s, {}) for d, s in ((50, 3), (100, 2))]
    + [
        (f"{a}_{sp:.2f}_d{d}", a, sp, "mlp", d, s, {})
        for d, s in ((50, 3), (100, 2))
        for a in ("crelu", "cst")
        for sp in (0.85, 0.9, 0.7)
    ]
    + [
        (f"{a}_0.85_d{d}", a, 0.85, "mlp", d, s, {})
        for d, s in ((50, 3), (100, 2))
        for a in ("shifted_relu", "soft_threshold")
    ]
    + [
        ("relu_cnn_d20", "relu", None, "cnn", 20, 1, _CNN),
        ("crelu_0.85_cnn_d20", "crelu", 0.85, "cnn", 20, 1, _CNN),
    ]
)


def _row(label, seed, res) -> dict:
    return {
        "label": label,
        "seed": seed,
        "activation": res["activation"],
        "target_sparsity": res["target_sparsity"],
        "model": res["recipe"]["model"],
        "depth": res["recipe"]["depth"],
        "width": res["recipe"]["width"],
        "m": res["config"]["m"],
        "test_acc": res["test_acc"],
        "train_acc": res["train_acc"],
        "test_sparsity": res["test_sparsity_mean"],
        "sparsity_max_error": res["sparsity_max_error"],
        "flags": res["flags"],
        "init_q_last": res["init_q_per_layer"][-1],
        "seconds": res["seconds"],
    }


def cached_result(path: Path, recipe) -> dict | None:
    """The stored result of ``recipe`` at ``path``, only if it was made with the same recipe
    (None too for a file that is not a readable result: the run is made again, and its
    result replaces the file)."""
    if not path.is_file():
        return None
    try:
        res = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return None
    return res if isinstance(res, dict) and res.get("recipe") == _key(recipe) else None


def run_cached(recipe, resume: bool | None = None) -> dict:
    """The result of ``recipe`` in its folder ``recipe.out``: read back when it was made with
    the same recipe, else trained there (``train_run``, ``resume`` as there). For grids and
    benchmarks that own their run folders: a finished run of another recipe there is stale
    and replaced (``train_run`` alone refuses to write over it)."""
    cached = cached_result(Path(recipe.out) / "result.json", recipe)
    if cached is not None:
        return cached
    (Path(recipe.out) / "config.json").unlink(missing_ok=True)
    return train_run(recipe) if resume is None else train_run(recipe, resume=resume)


class RunSkippedWarning(UserWarning):
    """A run of a grid (``reproduce``, ``lever_study``) that could not be made: its folder
    holds a checkpoint that cannot be used (damaged, or written by an older version). The
    grid goes on with the other runs and lists the skipped ones in ``skipped.json``."""


def _run_or_skip(recipe, label, seed, skipped) -> dict | None:
    """The run's result (read back or trained), or None with the run appended to
    ``skipped`` and a RunSkippedWarning when its folder's checkpoint is in the way."""
    try:
        return run_cached(recipe)
    except CheckpointError as e:
        skipped.append({"label": label, "seed": seed, "out": recipe.out, "error": str(e)})
        warnings.warn(
            f"{label} seed {seed} skipped: {e} (remove {recipe.out!r} to run it again); "
            "the grid goes on",
            RunSkippedWarning,
            stacklevel=3,
        )
        return None


def grid_labels(rows=GRID) -> list[str]:
    """The row labels of the reproduction grid, in its order (the values ``only`` takes)."""
    return [r[0] for r in rows]


def reproduce(
    out, base: ActivationsRecipe | None = None, rows=GRID, only=None, **changes
) -> list[dict]:
    """Run the reproduction grid: ReLU at its edge of chaos against CReLU and CST at 0.7, 0.85
    and 0.9, at depth 50 (three seeds) and 100 (two), the unclipped shifted ReLU and soft
    threshold at 0.85, and a depth-20 CNN (32 channels, 14 x 14 inputs) with its ReLU twin;
    one recipe for every row (``base`` with ``changes``), seed 0 of every row first. Writes
    ``out/<label>/seed<k>/result.json`` as each run ends, ``out/summary.json``,
    ``out/summary.csv``, ``out/table.md`` and ``out/reproduce.png``.
    A row whose stored result was made with the same recipe is read back, so an interrupted
    grid resumes; ``only`` (labels, see ``grid_labels``) restricts the grid. A run whose
    folder holds a checkpoint that cannot be used is skipped with a ``RunSkippedWarning``,
    listed in ``out/skipped.json`` (an empty list when none) and under the table; the other
    runs go on.

    Raises
    ------
    ValueError
        ``only`` names a label that is not in the grid, or a recipe field is out of range,
        before any run.
    """
    base = (base or ActivationsRecipe()).replace(**changes)
    out = Path(out)
    _check_out(out)
    if only is not None:
        if isinstance(only, str):
            only = [only]
        only = list(only)
        known = grid_labels(rows)
        unknown = [t for t in only if t not in known]
        if unknown or not only:
            raise ValueError(
                f"only: unknown row label(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                f"the grid's labels are {', '.join(known)}"
            )
    recipes = []
    rows = [r for r in rows if not only or r[0] in only]
    # seed 0 of every row first: an interrupted grid still covers every row
    for seed in range(max((r[5] for r in rows), default=0)):
        for label, act, sp, model, depth, seeds, extra in rows:
            if seed >= seeds:
                continue
            r = base.replace(
                activation=act,
                sparsity=sp,
                model=model,
                depth=depth,
                seed=seed,
                out=str(out / label / f"seed{seed}"),
                **extra,
            )
            recipes.append((label, r.check()))
    summary, skipped = [], []
    write_json(out / "skipped.json", skipped)
    for label, r in recipes:
        res = _run_or_skip(r, label, r.seed, skipped)
        if res is not None:
            summary.append(_row(label, r.seed, res))
        _write_summary(out, summary, skipped)
    return summary


def _write_summary(out, summary, skipped=()):
    write_json(out / "skipped.json", list(skipped))
    if not summary:
        return
    write_json(out / "summary.json", summary)
    cols = [k for k in summary[0] if k != "flags"] + ["flags"]
    lines = [",".join(cols)] + [
        ",".join(
            ";".join(r[c]) if c == "flags" else ("" if r[c] is None else str(r[c])) for c in cols
        )
        for r in summary
    ]
    write_text(out / "summary.csv", "\n".join(lines) + "\n")
    write_text(out / "table.md", markdown_table(summary) + _skipped_lines(skipped) + "\n")
    plot_reproduction(summary, out / "reproduce.png")


def _skipped_lines(skipped) -> str:
    return "".join(f"\n\nNot run: {s['label']} seed {s['seed']} ({s['error']})" for s in skipped)


def _mean_by_label(summary):
    groups = {}
    for r in summary:
        groups.setdefault(r["label"], []).append(r)
    return groups


def markdown_table(summary: list[dict]) -> str:
    """Mean (and spread) over seeds per row, the gap to the ReLU row of the same model and
    depth, sparsity against the target, and what went wrong (flags, any seed)."""
    groups = _mean_by_label(summary)
    base = {}
    for rs in groups.values():
        if rs[0]["activation"] == "relu":
            base[(rs[0]["model"], rs[0]["depth"])] = np.mean([r["test_acc"] for r in rs])
    lines = [
        "| run | model | depth | width | m | seeds | test acc (mean ± sd) | gap to ReLU "
        "(points) | test sparsity | worst layer vs target | flags |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, rs in groups.items():
        acc = np.array([r["test_acc"] for r in rs])
        ref = base.get((rs[0]["model"], rs[0]["depth"]))
        gap = (
            ""
            if ref is None or rs[0]["activation"] == "relu"
            else f"{100 * (acc.mean() - ref):+.2f}"
        )
        m = "-" if rs[0]["m"] is None else f"{rs[0]['m']:.3g}"
        tgt = rs[0]["target_sparsity"]
        err = max((r["sparsity_max_error"] or 0.0) for r in rs)
        flags = sorted({f for r in rs for f in r["flags"]})
        lines.append(
            f"| {label} | {rs[0]['model']} | {rs[0]['depth']} | {rs[0]['width']} | {m} | "
            f"{len(rs)} | {100 * acc.mean():.2f} ± {100 * acc.std():.2f} | {gap} | "
            f"{np.mean([r['test_sparsity'] for r in rs]):.3f} | "
            f"{'-' if tgt is None else f'{err:.3f}'} | {', '.join(flags)} |"
        )
    return "\n".join(lines)


# ---- the lever study ----------------------------------------------------------------------
# (lever, what changes relative to the study's base recipe)
LEVERS = (
    ("base (the recipe)", {}),
    ("relu at its edge of chaos", {"activation": "relu", "sparsity": None}),
    ("thresholds fixed (control 0, the paper)", {"control": 0.0}),
    ("m = safe level", {"m": "safe"}),
    ("m = 0.7 x safe (previous default)", {"m": "0.7safe"}),
    ("m = 0.25 x safe (q* = 16 at fixed m)", {"m": "0.25safe"}),
    ("Adam lr 1e-4", {"lr": 1e-4}),
    ("Adam lr 1e-3", {"lr": 1e-3}),
    ("SGD lr 0.01", {"optimizer": "sgd", "lr": 0.01}),
    ("batch 32, lr 1.5e-4", {"batch_size": 32, "lr": 1.5e-4}),
    ("no gradient clip", {"grad_clip": 0.0}),
    ("no warm-up", {"warmup": 0.0}),
    ("width 600", {"width": 600}),
    ("width 1000", {"width": 1000}),
    ("depth 20", {"depth": 20}),
)


def lever_study(out, base: ActivationsRecipe | None = None, levers=LEVERS, **changes) -> list[dict]:
    """One change at a time from ``base`` (default: CReLU at 0.85, depth 50, width 300, 20,000
    training images, 2 epochs): accuracy, sparsity and the flags of each, written to
    ``out/levers.json`` and ``out/levers.md`` as each run ends (resumable like
    ``reproduce``, and like it skipping a run whose checkpoint cannot be used, listed in
    ``out/skipped.json``)."""
    from ..activations import safe_clip

    base = (base or ActivationsRecipe(n_train=20_000, epochs=2.0)).replace(**changes)
    out = Path(out)
    rows, skipped = [], []
    write_json(out / "skipped.json", skipped)
    for i, (lever, delta) in enumerate(levers):
        delta = dict(delta)
        if isinstance(delta.get("m"), str) and delta["m"].endswith("safe") and delta["m"] != "safe":
            probe = base.replace(**{k: v for k, v in delta.items() if k != "m"})
            level = safe_clip(probe.activation, probe.target_sparsity, probe.q_star)
            delta["m"] = f"{float(delta['m'][:-4]) * level:.6g}"
        r = base.replace(**delta, out=str(out / f"lever{i:02d}")).check()
        res = _run_or_skip(r, lever, r.seed, skipped)
        if res is None:
            write_json(out / "skipped.json", skipped)
            continue
        rows.append(
            {
                "lever": lever,
                "change": {k: v for k, v in delta.items()},
                "test_acc": res["test_acc"],
                "train_acc": res["train_acc"],
                "test_sparsity": res["test_sparsity_mean"],
                "sparsity_max_error": res["sparsity_max_error"] if res["target_sparsity"] else None,
                "m": res["config"]["m"],
                "flags": res["flags"],
                "seconds": res["seconds"],
            }
        )
        write_json(out / "levers.json", rows)
        write_text(out / "levers.md", lever_table(rows) + _skipped_lines(skipped) + "\n")
    return rows


def lever_table(rows) -> str:
    """The lever study as Markdown, each row's accuracy against the base row's."""
    base = rows[0]["test_acc"] if rows else float("nan")
    lines = [
        "| lever | test acc | vs base (points) | test sparsity | worst layer vs target | flags |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        err = "-" if r["sparsity_max_error"] is None else f"{r['sparsity_max_error']:.3f}"
        lines.append(
            f"| {r['lever']} | {100 * r['test_acc']:.2f} | {100 * (r['test_acc'] - base):+.2f} | "
            f"{r['test_sparsity']:.3f} | {err} | {', '.join(r['flags'])} |"
        )
    return "\n".join(lines)
