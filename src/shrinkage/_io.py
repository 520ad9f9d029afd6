"""Atomic writes: a result or checkpoint is either the old file or the complete new one."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch


@contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path in the same folder; on success rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix
    )
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable_dir(path, name: str = "out") -> Path:
    """Raise ValueError unless ``path`` is, or can be created as, a folder this process may
    write into (an unnamed temporary file in it, or in its nearest existing ancestor, is the
    test; nothing is left behind). Commands call it before any work, so that a bad output
    folder never costs a finished run.

    Examples
    --------
    >>> check_writable_dir("/dev/null/x")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ValueError: out='/dev/null/x' cannot be a folder: '/dev/null' is not a folder
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name}={str(path)!r} is a file, not a folder")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise ValueError(f"{name}={str(path)!r} cannot be a folder: {str(base)!r} is not a folder")
    where = "" if base == path.absolute() else f" (its ancestor {str(base)!r} is not)"
    # not os.access: it says yes to root everywhere and knows nothing of read-only mounts or
    # of /proc; an unnamed temporary file is the real test, and leaves nothing behind
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as e:
        raise ValueError(f"{name}={str(path)!r} is not writable{where}: {e.strerror}") from e
    return path


def check_writable_file(path, name: str = "out", suffixes=None) -> Path:
    """Raise ValueError unless a file can be written at ``path`` (its folder writable, not a
    folder itself) with one of ``suffixes`` (lower case, with the dot) when given."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}={str(path)!r} is a folder; give a file name")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ValueError(
            f"{name}={str(path)!r} needs a file extension among {', '.join(sorted(suffixes))}"
        )
    check_writable_dir(path.parent, name=f"the folder of {name}")
    return path


def read_json(path, fix: str):
    """The JSON value in the file ``path``; a ValueError naming the file and ``fix`` (what
    to do about it) when it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except ValueError:
        raise ValueError(f"{path} is not valid JSON; {fix}") from None


def write_json(path, obj, **kw) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_default, **kw) + "\n")
    return Path(path)


def write_text(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_torch(path, obj) -> Path:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def save_figure(fig, path, **kw) -> Path:
    """``fig.savefig`` to ``path``, atomically, in the format its extension names."""
    path = Path(path)
    fmt = kw.pop("format", None) or path.suffix.lstrip(".").lower()
    known = fig.canvas.get_supported_filetypes()
    if fmt not in known:
        raise ValueError(
            f"cannot write a figure to {str(path)!r}: the file extension must be one of "
            + ", ".join(f".{k}" for k in sorted(known))
        )
    with atomic_path(path) as tmp:  # the format is explicit: the temporary name never counts
        fig.savefig(tmp, format=fmt, **kw)
    return path


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
