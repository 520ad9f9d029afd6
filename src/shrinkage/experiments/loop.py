"""The one training loop of the MNIST experiments, and a thread-count context manager.

``fit`` runs mini-batch training of a classifier with cross-entropy: a fresh permutation
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

    Examples
    --------
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
    key_defaults: dict | None = None,
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
    (``Checkpoint``, atomic, verified on reading) after
    every epoch and every ``checkpoint_every`` seconds (default
    ``EVERY_SECONDS``) within one: the model, the
    optimizer, the ``state`` objects (anything with ``state_dict`` and ``load_state_dict``),
    the generators, the position in the epoch and the history. A later call with the same
    ``key`` (the run's configuration) resumes from it and ends bitwise identical to an
    uninterrupted run on the same number of torch threads (another count changes the
    float sums' order: weights then differ in the last bits) (``key_defaults``: the values
    of settings that a key written before they existed lacks); ``resume`` says what to do
    with a checkpoint found there (see ``Checkpoint``). The first Ctrl-C stops at the
    next step boundary after a checkpoint (KeyboardInterrupt says where it is).
    """
    if out is not None:
        check_writable_dir(out)
    gen = torch.Generator().manual_seed(seed)
    objects = {"model": model, "optimizer": optimizer, **(state or {})}
    ckpt = None
    if out is not None:
        ckpt = Checkpoint(out, key, resume, checkpoint_every, defaults=key_defaults)
    run = _fresh()
    saved = ckpt.load() if ckpt is not None else None
    if saved is not None:
        run = _restore(ckpt.path, saved, objects, gen, (total_steps, per_epoch, batch_size, len(x)))
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


def _restore(path, saved, objects, gen, limits) -> dict:
    """Load a checkpoint's objects and generators; returns its run record. CheckpointError
    when its content does not fit this run (checked before anything is loaded: the saved
    state of each object has the structure of this run's, every tensor the right shape and
    dtype and a finite value; the position lies within the run)."""
    what = f"checkpoint {str(path)!r}"
    try:
        if not isinstance(saved, dict):
            raise ValueError(f"the payload is a {type(saved).__name__}, not a dict")
        blob_objects, run = saved["objects"], saved["run"]
        if not isinstance(blob_objects, dict) or set(blob_objects) != set(objects):
            got = sorted(blob_objects) if isinstance(blob_objects, dict) else blob_objects
            raise ValueError(f"holds {got!r}, this run needs {sorted(objects)}")
        if not isinstance(run, dict):
            raise ValueError(f"the run record is a {type(run).__name__}, not a dict")
        run = dict(run)
        _check_run(run, *limits)
        for name, obj in objects.items():
            _check_state(name, obj, blob_objects[name])
        for key in ("generator", "torch_rng"):
            t = saved[key]
            if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.dim() != 1:
                raise ValueError(f"{key} must be a 1-d uint8 tensor")
        torch.Generator().set_state(saved["generator"])  # a bad state raises here, not later
        for name, obj in objects.items():
            obj.load_state_dict(blob_objects[name])
        gen.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
        raise CheckpointError(f"{what} does not fit this run: {type(e).__name__}: {e}") from None
    return run


def _check_state(name, obj, saved) -> None:
    """The saved state of ``obj`` has the structure of its current one (ValueError if not):
    the same keys, list lengths (a list of records may have grown), tensor shapes and dtypes,
    value types; every float finite. An optimizer's per-parameter state must fit its
    parameters."""
    fresh = obj.state_dict()
    if not isinstance(obj, torch.optim.Optimizer):
        _same(name, fresh, saved)
        return
    if not isinstance(saved, dict) or set(saved) != set(fresh):
        raise ValueError(f"{name} must hold state and param_groups")
    _same(f"{name}.param_groups", fresh["param_groups"], saved["param_groups"], grow=False)
    params = [p for g in obj.param_groups for p in g["params"]]
    if not isinstance(saved["state"], dict):
        raise ValueError(f"{name}.state must be a dict")
    for k, entry in saved["state"].items():
        if not isinstance(k, int) or not 0 <= k < len(params) or not isinstance(entry, dict):
            raise ValueError(f"{name}.state[{k!r}] is not the state of a parameter")
        for key, t in entry.items():
            p = params[k]
            if not isinstance(t, torch.Tensor) or (
                t.dim() and (t.shape != p.shape or t.dtype != p.dtype)
            ):
                raise ValueError(f"{name}.state[{k}][{key!r}] does not fit its parameter")
            _finite(f"{name}.state[{k}][{key!r}]", t)


def _same(where, fresh, saved, grow=True) -> None:
    if fresh is None:  # None now, maybe a tensor later (a mask, ties): the owner checks it
        if saved is not None and not isinstance(saved, torch.Tensor):
            raise ValueError(f"{where} must be None or a tensor, got {saved!r}")
        _finite(where, saved)
        return
    if isinstance(fresh, torch.Tensor):
        if not isinstance(saved, torch.Tensor) or saved.dtype != fresh.dtype:
            raise ValueError(f"{where} must be a {fresh.dtype} tensor")
        if saved.shape != fresh.shape:
            raise ValueError(f"{where} must have shape {tuple(fresh.shape)}")
        _finite(where, saved)
    elif isinstance(fresh, dict):
        if not isinstance(saved, dict) or set(saved) != set(fresh):
            raise ValueError(f"{where} must be a dict with keys {sorted(map(str, fresh))}")
        for k in fresh:
            _same(f"{where}.{k}", fresh[k], saved[k], grow)
    elif isinstance(fresh, list | tuple):
        if not isinstance(saved, list | tuple):
            raise ValueError(f"{where} must be a list")
        if grow and (not fresh or all(isinstance(v, dict) for v in fresh)):
            _finite(where, saved)  # records that grow as the run goes (points, epochs)
            return
        if len(fresh) != len(saved):
            raise ValueError(f"{where} must have {len(fresh)} entries")
        for i, (a, b) in enumerate(zip(fresh, saved)):
            _same(f"{where}[{i}]", a, b, grow)
    elif type(saved) is not type(fresh) and not (isinstance(fresh, float) and type(saved) is int):
        raise ValueError(f"{where} must be a {type(fresh).__name__}, got {saved!r}")
    elif isinstance(fresh, float) and not math.isfinite(saved):
        raise ValueError(f"{where} must be finite, got {saved!r}")


def _finite(where, value) -> None:
    """Every floating tensor and float inside ``value`` is finite."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"{where} holds NaN or inf")
    elif isinstance(value, dict):
        for k, v in value.items():
            _finite(f"{where}.{k}", v)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _finite(f"{where}[{i}]", v)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} holds {value!r}")


_RUN_KEYS = {"history", "step", "diverged_at", "seconds", "first_loss", "batch", "sums"}


def _check_run(run: dict, total_steps: int, per_epoch: int, batch_size: int, n: int) -> None:
    missing = _RUN_KEYS - set(run)
    if missing:
        raise ValueError(f"the run record lacks {sorted(missing)}")
    for k, high in (("step", total_steps), ("batch", per_epoch)):
        v = run.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= high:
            raise ValueError(f"{k} must be an integer in [0, {high}], got {v!r}")
    history = run.get("history")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ValueError("history must be a list of records")
    step, batch = run["step"], run["batch"]
    # one record per epoch begun and finished: mid-epoch, step - batch is whole epochs
    epochs = (step - batch) // per_epoch if batch else -(-step // per_epoch)
    if len(history) != epochs:
        raise ValueError(f"history holds {len(history)} epochs, the position says {epochs}")
    seconds = run.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, float | int):
        raise ValueError(f"seconds must be a number, got {seconds!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be finite and >= 0, got {seconds!r}")
    sums = run["sums"]
    if batch and not (
        isinstance(sums, list)
        and len(sums) == 3
        and isinstance(sums[0], float | int)
        and not isinstance(sums[0], bool)
        and math.isfinite(sums[0])
        and sums[0] >= 0
        and all(type(v) is int for v in sums[1:])
        and 0 <= sums[1] <= sums[2] == min(batch * batch_size, n)
    ):
        raise ValueError(f"sums must be the running sums of {batch} batches, got {sums!r}")
    if not batch and sums is not None:
        raise ValueError(f"sums must be None at an epoch's end, got {sums!r}")
    for k in ("diverged_at", "first_loss", "diverged_loss"):
        v = run.get(k)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{k} must be None or a number >= 0, got {v!r}")
