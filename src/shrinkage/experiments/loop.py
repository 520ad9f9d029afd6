"""The one training loop of the MNIST experiments, and a thread-count context manager.

:func:`fit` runs mini-batch training of a classifier with cross-entropy: a fresh permutation
per epoch from a seeded generator, optional gradient-norm clipping, a progress bar, callbacks
before and after each optimizer step (a learning-rate rule, ``Sparsifier.step``), a record per
epoch made by the caller's ``on_epoch`` (evaluation, the activation meter, FLOPs), and, with
``out``, ``history.json`` after every epoch and a checkpoint, as it goes, from which an
interrupted run resumes where it stopped (same batches, same result, bit for bit).
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
from .._io import check_writable_dir, write_json
from .checkpoint import CHECKPOINT, Checkpoint, CheckpointError, interrupt_guard

__all__ = ["num_threads", "fit", "FitResult", "EpochStats", "steps_per_epoch", "CHECKPOINT"]


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
    diverged_loss: float | None = None  # the loss that stopped it (None: not finite or none)


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
    diverge_factor: float | None = None,
    desc: str | None = None,
    postfix: Callable[[], dict] | None = None,
    log: Callable[[dict], str] | None = None,
    out=None,
    state: dict | None = None,
    key=None,
    resume: bool | None = None,
    checkpoint_every: float | None = None,
) -> FitResult:
    """Train ``model`` for ``total_steps`` optimizer steps, ``per_epoch`` batches an epoch.

    ``before_step`` callables get the step index before the forward pass; ``after_step``
    callables run after ``optimizer.step()``. ``on_epoch(stats)`` returns the epoch's record
    (a dict for ``history``, to which the loop adds ``seconds``); ``log(record)``, if given,
    is a line for the progress bar. ``desc`` turns the progress bar on.

    Divergence: with ``stop_on_nonfinite``, training stops (nothing updated) at the first
    step whose loss or gradient norm is not finite, or, with ``diverge_factor``, whose loss
    exceeds ``diverge_factor`` times the run's first loss (at least 1); ``diverged_at`` says
    where.

    With ``out``, ``out/history.json`` is written after every epoch, and ``out/checkpoint.pt``
    (:class:`~shrinkage.experiments.checkpoint.Checkpoint`, atomic, verified on reading) after
    every epoch and every ``checkpoint_every`` seconds (default
    :data:`~shrinkage.experiments.checkpoint.EVERY_SECONDS`) within one: the model, the
    optimizer, the ``state`` objects (anything with ``state_dict`` and ``load_state_dict``),
    the generators, the position in the epoch and the history. A later call with the same
    ``key`` (the run's configuration) resumes from it and ends bitwise identical to an
    uninterrupted run; ``resume`` says what to do with a checkpoint found there (see
    :class:`~shrinkage.experiments.checkpoint.Checkpoint`). The first Ctrl-C stops at the
    next step boundary after a checkpoint (KeyboardInterrupt says where it is).
    """
    if out is not None:
        check_writable_dir(out)
    gen = torch.Generator().manual_seed(seed)
    objects = {"model": model, "optimizer": optimizer, **(state or {})}
    ckpt = Checkpoint(out, key, resume, checkpoint_every) if out is not None else None
    run = _fresh()
    saved = ckpt.load() if ckpt is not None else None
    if saved is not None:
        run = _restore(ckpt.path, saved, objects, gen)
    history, step = run["history"], run["step"]
    t0 = time.perf_counter() - run["seconds"]
    bar = tqdm(total=total_steps, initial=step, desc=desc, leave=False) if desc else None
    with interrupt_guard(enabled=ckpt is not None) as guard:
        while step < total_steps and run["diverged_at"] is None:
            model.train()
            epoch_gen = gen.get_state()  # a checkpoint within the epoch redraws its batches
            perm = torch.randperm(len(x), generator=gen)
            sums = run.pop("sums", None) or [0.0, 0, 0]  # loss * n, correct, n
            for b in range(run.pop("batch", 0), per_epoch):
                if step >= total_steps:
                    break
                idx = perm[b * batch_size : (b + 1) * batch_size].to(x.device)
                for fn in before_step:
                    fn(step)
                loss = _step(model, optimizer, x[idx], y[idx], clip, stop_on_nonfinite, sums)
                if _diverged(loss, run, diverge_factor, stop_on_nonfinite):
                    run["diverged_at"] = step
                    break
                step += 1
                for fn in after_step:
                    fn()
                if bar is not None:
                    bar.update(1)
                    if b % 20 == 0:
                        bar.set_postfix(loss=f"{loss:.3f}", **(postfix() if postfix else {}))
                if ckpt is not None and (guard.requested or ckpt.due()) and b + 1 < per_epoch:
                    run.update(step=step, seconds=time.perf_counter() - t0)
                    _save(ckpt, objects, epoch_gen, run, batch=b + 1, sums=sums)
                    _stop_if_asked(guard, ckpt, step, total_steps)
            history.append(_record(on_epoch, len(history) + 1, step, sums, t0))
            if bar is not None and log is not None:
                bar.write(log(history[-1]))
            if out is not None:
                run.update(step=step, seconds=history[-1]["seconds"])
                write_json(Path(out) / "history.json", history)
                _save(ckpt, objects, gen.get_state(), run)
                _stop_if_asked(guard, ckpt, step, total_steps)
    if bar is not None:
        bar.close()
    return FitResult(
        history, step, run["diverged_at"], time.perf_counter() - t0, run.get("diverged_loss")
    )


def _fresh() -> dict:
    return {"history": [], "step": 0, "diverged_at": None, "seconds": 0.0, "first_loss": None}


def _diverged(loss, run, factor, nonfinite) -> bool:
    if loss is None:
        return True
    if run["first_loss"] is None:
        run["first_loss"] = loss
    if factor and loss > factor * max(run["first_loss"], 1.0):
        run["diverged_loss"] = loss
        return True
    return False


def _stop_if_asked(guard, ckpt, step, total) -> None:
    if guard.requested:
        raise KeyboardInterrupt(
            f"checkpoint {str(ckpt.path)!r} keeps step {step} of {total}; rerun with --resume "
            "(resume=True) to continue"
        )


def _record(on_epoch, epoch, step, sums, t0) -> dict:
    n = max(sums[2], 1)
    stats = EpochStats(epoch, step, sums[0] / n, sums[1] / n, time.perf_counter() - t0)
    record = on_epoch(stats)
    record["seconds"] = time.perf_counter() - t0  # evaluation included
    return record


def _step(model, optimizer, xb, yb, clip, stop_on_nonfinite, sums):
    """One optimizer step; returns the batch loss, or None when the loss or the gradient
    norm is not finite and ``stop_on_nonfinite`` (then nothing is updated)."""
    logits = model(xb)
    loss = F.cross_entropy(logits, yb)
    if stop_on_nonfinite and not torch.isfinite(loss):
        return None
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip or stop_on_nonfinite:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip or math.inf)
        if stop_on_nonfinite and not torch.isfinite(norm):
            return None
    optimizer.step()
    value = float(loss.detach())
    sums[0] += value * len(yb)
    sums[1] += int((logits.argmax(1) == yb).sum())
    sums[2] += len(yb)
    return value


def _save(ckpt, objects, gen_state, run, batch=0, sums=None) -> None:
    """The run at a step boundary: at ``batch`` of the epoch whose generator state before
    its permutation is ``gen_state`` (0: the epoch is done and ``gen_state`` is the next's)."""
    ckpt.save(
        {
            "objects": {name: obj.state_dict() for name, obj in objects.items()},
            "generator": gen_state,
            "torch_rng": torch.get_rng_state(),
            "run": {**run, "batch": batch, "sums": list(sums) if sums else None},
        }
    )


def _restore(path, saved, objects, gen) -> dict:
    """Load a checkpoint's objects and generators; returns its run record. CheckpointError
    when its content does not fit this run."""
    what = f"checkpoint {str(path)!r}"
    try:
        blob_objects, run = saved["objects"], dict(saved["run"])
        if set(blob_objects) != set(objects):
            raise ValueError(f"holds {sorted(blob_objects)}, this run needs {sorted(objects)}")
        _check_run(run)
        for name, obj in objects.items():
            obj.load_state_dict(blob_objects[name])
        gen.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
        raise CheckpointError(f"{what} does not fit this run: {type(e).__name__}: {e}") from None
    for p in objects["model"].parameters():
        if not bool(torch.isfinite(p).all()):
            raise CheckpointError(f"{what} holds non-finite model parameters")
    return run


def _check_run(run: dict) -> None:
    ints = {"step": 0, "batch": 0}
    for k, low in ints.items():
        v = run.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{k} must be an integer >= {low}, got {v!r}")
    if not isinstance(run.get("history"), list) or not all(
        isinstance(h, dict) for h in run["history"]
    ):
        raise ValueError("history must be a list of records")
    seconds = run.get("seconds")
    if not isinstance(seconds, float | int) or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
    sums = run.get("sums")
    if sums is not None and (not isinstance(sums, list) or len(sums) != 3):
        raise ValueError(f"sums must be 3 numbers, got {sums!r}")
    d = run.get("diverged_at")
    if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 0):
        raise ValueError(f"diverged_at must be None or a step, got {d!r}")
