"""Checkpoints of long runs: written atomically as the run goes, verified when read back.

A checkpoint file is a header line (format and the SHA-256 of what follows) and a
``torch.save`` of ``{"key": ..., "payload": ...}``; it is read with ``weights_only=True``
after the digest matched, so a file damaged on disk (a flipped bit, a truncated copy) is
refused with a ValueError naming it, never unpickled. ``key`` is the run's configuration:
a checkpoint is resumed only by the run that wrote it.

``Checkpoint`` is what a training loop holds (``shrinkage.experiments.loop.fit`` and
the dictionary learning of ``shrinkage.experiments.codes.learn`` use it):

- ``resume=True`` (``--resume``): continue the run saved there, if any; a checkpoint of
  another configuration is an error naming the fields that differ;
- ``resume=False`` (a command without ``--resume``): start afresh, but refuse to overwrite
  the checkpoint of an interrupted run (the error says to pass ``--resume``);
- ``resume=None`` (library calls): continue a checkpoint of the same configuration, start
  afresh over one of another configuration.

``save(payload)`` writes now; ``due()`` says whether ``every`` seconds have passed since the
last save. ``interrupt_guard`` turns the first Ctrl-C into a request the loop honours at
its next step boundary (after saving), so an interruption keeps every finished step.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from .._io import atomic_path

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "interrupt_guard",
    "CHECKPOINT",
    "EVERY_SECONDS",
]

CHECKPOINT = "checkpoint.pt"
EVERY_SECONDS = 60.0  # a long run loses at most this much work to a crash
_MAGIC = b"shrinkage-checkpoint 1 sha256 "


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: damaged, of another run, or in the way."""


def save_checkpoint(path, key, payload) -> Path:
    """Write ``{"key", "payload"}`` to ``path`` atomically, with its digest."""
    buf = io.BytesIO()
    torch.save({"key": key, "payload": payload}, buf)
    data = buf.getvalue()
    head = _MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(head + data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def load_checkpoint(path) -> tuple[object, object]:
    """``(key, payload)`` of a checkpoint written by ``save_checkpoint``; CheckpointError
    when the file is damaged (its digest does not match) or not a checkpoint."""
    path = Path(path)
    raw = path.read_bytes()
    line, _, data = raw.partition(b"\n")
    what = f"checkpoint {str(path)!r}"
    if not line.startswith(_MAGIC):
        raise CheckpointError(f"{what} is not a shrinkage checkpoint (or its header is damaged)")
    if hashlib.sha256(data).hexdigest().encode() != line[len(_MAGIC) :]:
        raise CheckpointError(
            f"{what} is damaged (its content does not match its digest); remove it to start afresh"
        )
    try:
        blob = torch.load(io.BytesIO(data), weights_only=True)
    except Exception as e:  # a digest-valid file torch cannot read: another version's
        raise CheckpointError(f"{what} cannot be read: {type(e).__name__}: {e}") from None
    if not isinstance(blob, dict) or set(blob) != {"key", "payload"}:
        raise CheckpointError(f"{what} does not hold a key and a payload")
    return blob["key"], blob["payload"]


def _diff(want, have) -> str:
    if isinstance(want, dict) and isinstance(have, dict):
        keys = [k for k in {**have, **want} if want.get(k) != have.get(k)]
        return ", ".join(f"{k}: {want.get(k)!r} now, {have.get(k)!r} there" for k in keys[:6])
    return f"{want!r} now, {have!r} there"


class Checkpoint:
    """The checkpoint of one run in ``folder/checkpoint.pt`` (see the module docstring)."""

    def __init__(
        self,
        folder,
        key,
        resume: bool | None = None,
        every: float | None = None,
        defaults: dict | None = None,
    ):
        if resume not in (None, True, False):
            raise ValueError(f"resume must be True, False or None, got {resume!r}")
        self.path = Path(folder) / CHECKPOINT
        self.key = key
        # the values of settings an older checkpoint's key lacks (fields added since)
        self.defaults = defaults or {}
        self.resume = resume
        self.every = EVERY_SECONDS if every is None else float(every)
        self._last = time.monotonic()

    def load(self):
        """The saved payload to continue from, or None to start afresh (CheckpointError when
        a checkpoint is in the way, see the module docstring)."""
        if not self.path.is_file():
            return None
        if self.resume is False:
            raise CheckpointError(
                f"{str(self.path)!r} holds the checkpoint of an interrupted run: pass --resume "
                "(resume=True) to continue it, or remove it to start afresh"
            )
        key, payload = load_checkpoint(self.path)
        if isinstance(key, dict) and isinstance(self.key, dict):
            key = {**{k: v for k, v in self.defaults.items() if k in self.key}, **key}
            if self.key.get("out", "") is None and "out" in key:
                key["out"] = None  # a key written while it still held the output folder
        if key != self.key:
            if self.resume:
                why = _diff(self.key, key)
                raise CheckpointError(
                    f"{str(self.path)!r} is the checkpoint of another run ({why}); resume it "
                    "with its own settings, or remove it"
                )
            return None  # resume=None: another run's, replaced by this one
        self._last = time.monotonic()
        return payload

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every

    def save(self, payload) -> None:
        save_checkpoint(self.path, self.key, payload)
        self._last = time.monotonic()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class _Guard:
    requested = False


@contextmanager
def interrupt_guard(enabled: bool = True):
    """While active (main thread only), the first Ctrl-C sets ``guard.requested`` instead of
    raising; the loop saves and raises KeyboardInterrupt at its next step boundary. A second
    Ctrl-C raises at once."""
    guard = _Guard()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield guard
        return

    def handler(signum, frame):
        if guard.requested:
            raise KeyboardInterrupt
        guard.requested = True
        print(
            "\nshrinkage: stopping after this step to keep a checkpoint (Ctrl-C again: now)",
            file=sys.stderr,
            flush=True,
        )

    try:
        before = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main interpreter's thread
        yield guard
        return
    try:
        yield guard
    finally:
        signal.signal(signal.SIGINT, before)
