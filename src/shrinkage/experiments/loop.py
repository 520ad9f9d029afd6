"""The one training loop of the MNIST experiments, and a thread-count context manager.

:func:`fit` runs mini-batch training of a classifier with cross-entropy: a fresh permutation
per epoch from a seeded generator, optional gradient-norm clipping, a progress bar, callbacks
before and after each optimizer step (a learning-rate rule, ``Sparsifier.step``), a record per
epoch made by the caller's ``on_epoch`` (evaluation, the activation meter, FLOPs), and, with
``out``, ``history.json`` after every epoch and a checkpoint from which an interrupted run
resumes where it stopped (same batches, same result).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._checks import check_int_at_least
from .._io import check_writable_dir, save_torch, write_json

__all__ = ["num_threads", "fit", "FitResult", "EpochStats", "steps_per_epoch", "CHECKPOINT"]

CHECKPOINT = "checkpoint.pt"


@contextmanager
def num_threads(n: int | None):
    """Run the block with ``n`` torch intra-op threads and restore the previous count after
    (``None``: leave it as it is). Anything but None or an integer >= 1 is a ValueError
    (every command's ``--threads`` goes through here).

    >>> with num_threads(1):
    ...     torch.get_num_threads()
    1
    """
    if n is None:
        yield
        return
    n = check_int_at_least("threads", n, 1)
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def steps_per_epoch(n: int, batch_size: int, max_batches: int | None = None) -> int:
    """Batches in one pass over ``n`` examples, capped at ``max_batches``."""
    steps = math.ceil(n / batch_size)
    return min(steps, max_batches) if max_batches else steps


@dataclass(frozen=True)
class EpochStats:
    """What the loop measured in one epoch, handed to ``on_epoch``."""

    epoch: int
    step: int  # optimizer steps so far
    train_loss: float  # running mean over the epoch's batches
    train_acc: float
    seconds: float  # since the start of training (resumed runs included)


@dataclass
class FitResult:
    history: list[dict]
    steps: int
    diverged_at: int | None  # the step whose loss was not finite (stop_on_nonfinite)
    seconds: float


def fit(
    model,
    optimizer,
    x,
    y,
    *,
    batch_size: int,
    total_steps: int,
    per_epoch: int,
    on_epoch: Callable[[EpochStats], dict],
    seed: int = 0,
    clip: float | None = None,
    before_step: Iterable[Callable[[int], object]] = (),
    after_step: Iterable[Callable[[], object]] = (),
    stop_on_nonfinite: bool = False,
    desc: str | None = None,
    postfix: Callable[[], dict] | None = None,
    log: Callable[[dict], str] | None = None,
    out=None,
    state: dict | None = None,
    key=None,
) -> FitResult:
    """Train ``model`` for ``total_steps`` optimizer steps, ``per_epoch`` batches an epoch.

    ``before_step`` callables get the step index before the forward pass; ``after_step``
    callables run after ``optimizer.step()``. ``on_epoch(stats)`` returns the epoch's record
    (a dict for ``history``, to which the loop adds ``seconds``); ``log(record)``, if given,
    is a line for the progress bar. ``desc`` turns the progress bar on. With ``out``,
    ``out/history.json`` is written after every epoch and ``out/checkpoint.pt`` holds the
    model, the optimizer, the ``state`` objects (anything with ``state_dict`` and
    ``load_state_dict``), the generator and the history; a later call with the same ``key``
    (the run's configuration) resumes from it.
    """
    if out is not None:
        check_writable_dir(out)
    gen = torch.Generator().manual_seed(seed)
    objects = {"model": model, "optimizer": optimizer, **(state or {})}
    ckpt = Path(out) / CHECKPOINT if out is not None else None
    run = _resume(ckpt, key, objects, gen) or {"history": [], "step": 0, "diverged_at": None}
    history, step = run["history"], run["step"]
    t0 = time.perf_counter() - (history[-1]["seconds"] if history else 0.0)
    bar = tqdm(total=total_steps, initial=step, desc=desc, leave=False) if desc else None
    while step < total_steps and run["diverged_at"] is None:
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        sums = [0.0, 0, 0]  # loss * n, correct, n
        for b in range(per_epoch):
            if step >= total_steps:
                break
            idx = perm[b * batch_size : (b + 1) * batch_size].to(x.device)
            for fn in before_step:
                fn(step)
            loss = _step(model, optimizer, x[idx], y[idx], clip, stop_on_nonfinite, sums)
            if loss is None:
                run["diverged_at"] = step
                break
            step += 1
            for fn in after_step:
                fn()
            if bar is not None:
                bar.update(1)
                if b % 20 == 0:
                    bar.set_postfix(loss=f"{loss:.3f}", **(postfix() if postfix else {}))
        history.append(_record(on_epoch, len(history) + 1, step, sums, t0))
        if bar is not None and log is not None:
            bar.write(log(history[-1]))
        if out is not None:
            run["step"] = step
            write_json(Path(out) / "history.json", history)
            _save(ckpt, key, objects, gen, run)
    if bar is not None:
        bar.close()
    return FitResult(history, step, run["diverged_at"], time.perf_counter() - t0)


def _record(on_epoch, epoch, step, sums, t0) -> dict:
    n = max(sums[2], 1)
    stats = EpochStats(epoch, step, sums[0] / n, sums[1] / n, time.perf_counter() - t0)
    record = on_epoch(stats)
    record["seconds"] = time.perf_counter() - t0  # evaluation included
    return record


def _step(model, optimizer, xb, yb, clip, stop_on_nonfinite, sums):
    """One optimizer step; returns the batch loss, or None when it is not finite and
    ``stop_on_nonfinite`` (then nothing is updated)."""
    logits = model(xb)
    loss = F.cross_entropy(logits, yb)
    if stop_on_nonfinite and not torch.isfinite(loss):
        return None
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    value = float(loss.detach())
    sums[0] += value * len(yb)
    sums[1] += int((logits.argmax(1) == yb).sum())
    sums[2] += len(yb)
    return value


def _save(path, key, objects, gen, run) -> None:
    blob = {name: obj.state_dict() for name, obj in objects.items()}
    save_torch(path, {"key": key, "objects": blob, "generator": gen.get_state(), "run": run})


def _resume(path, key, objects, gen) -> dict | None:
    """The saved run if ``path`` holds a checkpoint of the same ``key``, its objects loaded."""
    if path is None or not path.is_file():
        return None
    blob = torch.load(path, weights_only=False)
    if blob.get("key") != key or set(blob["objects"]) != set(objects):
        return None  # another run's checkpoint: start afresh (it is overwritten)
    for name, obj in objects.items():
        obj.load_state_dict(blob["objects"][name])
    gen.set_state(blob["generator"])
    return blob["run"]
