"""Train deep sparse-activation networks on MNIST: the reproduction behind ``shrinkage
activations train`` and the results tables, reusable from other reports.

>>> res = train_run("crelu", 0.85, depth=100, width=128, epochs=3, out="runs/x")  # doctest: +SKIP
>>> res["test_acc"], res["test_sparsity_mean"]                                   # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import data
from .._checks import check_int_at_least, check_nonnegative, check_positive
from .._io import check_writable_dir, write_json
from ..activations import ActivationSparsity, EdgeOfChaosWarning, edge_of_chaos
from ..models.mlp import hidden_layers, mlp
from ._plots import plot_training
from .loop import CHECKPOINT, fit, num_threads, steps_per_epoch

# The recipe found in docs/results.md: Adam, small lr, linear warm-up, cosine decay,
# and (train_run's m_scale) a clipping level at 0.7 of the safe one.
DEFAULT_RECIPE = {
    "optimizer": "adam",
    "lr": 3e-4,
    "warmup": 0.2,  # fraction of the first epoch
    "schedule": "cosine",
    "batch_size": 128,
    "weight_decay": 0.0,
    "grad_clip": 1.0,
}


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
    hooks = [
        h.register_forward_hook(lambda m, i, o: qs.append(float(o.double().pow(2).mean())))
        for h in hidden_layers(net)
    ]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return qs


def train_run(
    activation: str,
    sparsity: float | None = None,
    *,
    depth: int = 100,
    width: int = 128,
    epochs: float = 1.0,
    m="safe",
    m_scale: float = 0.7,
    q_star: float = 1.0,
    optimizer: str | None = None,
    lr: float | None = None,
    warmup: float | None = None,
    schedule: str | None = None,
    batch_size: int | None = None,
    weight_decay: float | None = None,
    grad_clip: float | None = None,
    n_train: int | None = None,
    n_eval: int = 10_000,
    seed: int = 0,
    threads: int | None = 1,
    device: str | None = None,
    out=None,
    progress: bool = True,
    quick: bool = False,
    resume: bool | None = None,
) -> dict:
    """Train an edge-of-chaos MLP on MNIST and measure accuracy and activation sparsity.

    The config comes from :func:`edge_of_chaos` (``m="safe"`` times ``m_scale`` for clipped
    activations, a number ``m`` as it is; the default 0.7 keeps finite-width networks away
    from the near-tangency of V just above q*, where chi > 1 and gradients explode); unstable
    configurations are trained anyway and their failure is recorded (``diverged``, the step
    where the loss stopped being finite, the initial q^l per layer).
    ``device`` (default CPU) holds the data and the model. ``quick=True`` shrinks everything
    (depth 8, width 32, 2k examples) for tests and smoke runs. ``threads`` applies inside the
    call only.
    Recipe keywords left at None take :data:`DEFAULT_RECIPE`. Returns a JSON-ready dict; with
    ``out`` also writes ``out/result.json``, ``out/history.json`` and ``out/train.png``, and
    keeps ``out/checkpoint.pt`` as it goes (``resume``: see
    :func:`shrinkage.experiments.loop.fit`).
    """
    given = dict(
        optimizer=optimizer,
        lr=lr,
        warmup=warmup,
        schedule=schedule,
        batch_size=batch_size,
        weight_decay=weight_decay,
        grad_clip=grad_clip,
    )
    rec = {**DEFAULT_RECIPE, **{k: v for k, v in given.items() if v is not None}}
    for name, value in (("n_train", n_train), ("n_eval", n_eval)):
        if value is not None:  # 0 is not "everything"
            check_int_at_least(name, value, 1)
    if quick:
        depth, width, n_train, n_eval = (
            min(depth, 8),
            min(width, 32),
            n_train or 2000,
            min(n_eval, 1000),
        )
    size = dict(depth=depth, width=width, epochs=epochs, m_scale=m_scale, seed=seed)
    _check(rec, size)
    cfg, warning_text = _edge_of_chaos(activation, sparsity, q_star, m, m_scale)
    with num_threads(threads):
        res = _train(cfg, rec, size, (n_train, n_eval), device, out, progress, resume)
    res["warnings"] = warning_text
    return _write(res, out)


def _check(rec, size) -> None:
    check_int_at_least("depth", size["depth"])
    check_int_at_least("width", size["width"])
    check_positive("epochs", size["epochs"])
    check_positive("lr", rec["lr"])
    check_positive("m_scale", size["m_scale"])
    check_nonnegative("warmup", rec["warmup"])
    check_int_at_least("batch_size", int(rec["batch_size"]))
    if rec["optimizer"] not in ("adam", "sgd"):
        raise ValueError(f"unknown optimizer {rec['optimizer']!r}; known: 'adam', 'sgd'")
    if rec["schedule"] not in ("cosine", "constant"):
        raise ValueError(f"unknown schedule {rec['schedule']!r}; known: 'cosine', 'constant'")


def _edge_of_chaos(activation, sparsity, q_star, m, m_scale):
    """The config at ``m`` (``"safe"``: the largest safe level times ``m_scale``), and the
    text of the EdgeOfChaosWarnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EdgeOfChaosWarning)
        cfg = edge_of_chaos(activation, sparsity, q_star=q_star, m=m)
        # m_scale scales the safe level only: an explicit m is the level trained with
        if m == "safe" and cfg.m is not None and m_scale != 1.0:
            cfg = edge_of_chaos(activation, sparsity, q_star=q_star, m=cfg.m * m_scale)
    return cfg, [str(w.message) for w in caught if issubclass(w.category, EdgeOfChaosWarning)]


def _mnist(n_train, n_eval, dev):
    xtr, ytr = data.mnist("train")
    xte, yte = data.mnist("test")
    if n_train:
        xtr, ytr = xtr[:n_train], ytr[:n_train]
    xte, yte = xte[:n_eval], yte[:n_eval]
    return tuple(t.to(dev) for t in (xtr, ytr, xte, yte))


def _optimizer(rec, net):
    if rec["optimizer"] == "adam":
        return torch.optim.Adam(net.parameters(), lr=rec["lr"], weight_decay=rec["weight_decay"])
    return torch.optim.SGD(
        net.parameters(), lr=rec["lr"], momentum=0.9, weight_decay=rec["weight_decay"]
    )


def _lr_rule(rec, opt, total, warm):
    """Linear warm-up over ``warm`` steps, then cosine decay (or constant) to ``total``."""

    def set_lr(step):
        f = 1.0
        if warm and step < warm:
            f = (step + 1) / warm
        elif rec["schedule"] == "cosine":
            f = 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
        for g in opt.param_groups:
            g["lr"] = rec["lr"] * f

    return set_lr


def _train(cfg, rec, size, counts, device, out, progress, resume=None) -> dict:
    torch.manual_seed(size["seed"])
    dev = torch.device(device or "cpu")
    xtr, ytr, xte, yte = _mnist(*counts, dev)
    bs = int(rec["batch_size"])
    net = mlp(size["depth"], size["width"], cfg).to(dev)
    init_q = _layer_variances(net, xte[:256])
    per_epoch = steps_per_epoch(len(xtr), bs)
    total = max(1, int(round(size["epochs"] * per_epoch)))
    opt = _optimizer(rec, net)

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
        }

    run = fit(
        net,
        opt,
        xtr,
        ytr,
        batch_size=bs,
        total_steps=total,
        per_epoch=per_epoch,
        on_epoch=on_epoch,
        seed=size["seed"],
        clip=rec["grad_clip"],
        before_step=[_lr_rule(rec, opt, total, int(rec["warmup"] * per_epoch))],
        stop_on_nonfinite=True,
        desc=f"{cfg.activation} s={cfg.sparsity:.2f}" if progress else None,
        out=out,
        resume=resume,
        key={
            "activation": cfg.activation,
            "sparsity": cfg.sparsity,
            "m": cfg.m,
            "q_star": cfg.q_star,
            "n": list(counts),
            **size,
            **rec,
        },
    )
    return _result(cfg, rec, size, run, net, (xtr, ytr, xte, yte), init_q, counts[1])


def _result(cfg, rec, size, run, net, tensors, init_q, n_eval) -> dict:
    t_start = time.perf_counter() - run.seconds
    xtr, ytr, xte, yte = tensors
    te_acc, te_loss, te_sp = _evaluate(net, xte, yte)
    tr_acc, tr_loss, tr_sp = _evaluate(net, xtr[:n_eval], ytr[:n_eval])
    keys = ("q_star", "tau", "m", "sigma_w", "sigma_b", "chi", "dV", "d2V", "stable")
    return {
        "activation": cfg.activation,
        "target_sparsity": cfg.sparsity,
        "config": {k: getattr(cfg, k) for k in keys},
        "fixed_points": [str(p) for p in cfg.fixed_points],
        "warnings": [],
        "depth": size["depth"],
        "width": size["width"],
        "epochs": size["epochs"],
        "m_scale": size["m_scale"],
        "seed": size["seed"],
        "recipe": rec,
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
        "history": run.history,
        "seconds": time.perf_counter() - t_start,
    }


def _write(res, out) -> dict:
    if out is not None:
        out = Path(out)
        write_json(out / "result.json", res)
        plot_training(res, out / "train.png")
        (out / CHECKPOINT).unlink(missing_ok=True)
    return res


# The reproduction table: (label, activation, sparsity, m_scale).
TABLE = (
    ("relu", "relu", None, 1.0),
    ("shifted_relu_0.70", "shifted_relu", 0.7, 1.0),
    ("shifted_relu_0.85", "shifted_relu", 0.85, 1.0),
    ("soft_threshold_0.70", "soft_threshold", 0.7, 1.0),
    ("soft_threshold_0.85", "soft_threshold", 0.85, 1.0),
    ("crelu_0.70", "crelu", 0.7, 1.0),
    ("crelu_0.85", "crelu", 0.85, 1.0),
    ("cst_0.70", "cst", 0.7, 1.0),
    ("cst_0.85", "cst", 0.85, 1.0),
    ("crelu_0.70_m0.7", "crelu", 0.7, 0.7),
    ("crelu_0.85_m0.7", "crelu", 0.85, 0.7),
    ("cst_0.70_m0.7", "cst", 0.7, 0.7),
    ("cst_0.85_m0.7", "cst", 0.85, 0.7),
)


def reproduce(out, rows=TABLE, progress=True, **kw) -> list[dict]:
    """Run the reproduction table (ReLU baseline, unclipped, clipped at the safe m and at 0.7 of
    it) with :func:`train_run`; writes ``out/<label>/result.json`` and ``out/summary.json``.
    Rows whose result.json already exists are read back, so an interrupted run resumes."""
    out = check_writable_dir(out)
    summary = []
    for label, act, s, ms in rows:
        path = out / label / "result.json"
        if path.exists():
            res = json.loads(path.read_text())
        else:
            res = train_run(act, s, m_scale=ms, out=out / label, progress=progress, **kw)
        row = {
            "label": label,
            "activation": res["activation"],
            "target_sparsity": s,
            "m": res["config"]["m"],
            "m_scale": ms,
            "stable": res["config"]["stable"],
            "test_acc": res["test_acc"],
            "train_acc": res["train_acc"],
            "test_sparsity": res["test_sparsity_mean"],
            "train_sparsity": res["train_sparsity_mean"],
            "diverged": res["diverged"],
            "diverged_at_step": res["diverged_at_step"],
            "init_q_last": res["init_q_per_layer"][-1],
            "seconds": res["seconds"],
        }
        summary.append(row)
        write_json(out / "summary.json", summary)
    return summary


def markdown_table(summary: list[dict], baseline: str = "relu") -> str:
    """The reproduction table as Markdown (accuracy, gap to the ReLU baseline, sparsity)."""
    base = next((r["test_acc"] for r in summary if r["label"] == baseline), None)
    lines = [
        "| run | m | test acc | gap to ReLU (points) | train acc | test sparsity | "
        "train sparsity | target | what happened |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in summary:
        m = "-" if r["m"] is None else f"{r['m']:.3g}"
        gap = "" if base is None else f"{100 * (r['test_acc'] - base):+.1f}"
        tgt = "-" if r["target_sparsity"] is None else f"{r['target_sparsity']:.2f}"
        if r["diverged"]:
            note = f"loss not finite at step {r['diverged_at_step']}"
        elif r["init_q_last"] != r["init_q_last"] or r["init_q_last"] > 1e3:
            note = f"q at the last layer {r['init_q_last']:.1e} at init"
        elif r["test_acc"] < 0.15:
            note = "chance accuracy"
        else:
            note = ""
        lines.append(
            f"| {r['label']} | {m} | {r['test_acc']:.4f} | {gap} | {r['train_acc']:.4f} | "
            f"{r['test_sparsity']:.3f} | {r['train_sparsity']:.3f} | {tgt} | {note} |"
        )
    return "\n".join(lines)
