"""Argument checks shared by the pillars: errors name the argument, the value, what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable
from contextlib import contextmanager

import numpy as np
import torch


def _is_tensor_like(value) -> bool:
    return isinstance(value, torch.Tensor | np.ndarray)


def _finite_min(value) -> tuple[float, bool]:
    """(minimum, has_nan) of a scalar or array-like; TypeError for booleans (True is not a
    number here: ``lam=True`` is a slip, not 1.0)."""
    if isinstance(value, bool | np.bool_) or getattr(value, "dtype", None) in (torch.bool, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, torch.Tensor):
        v = value.detach()
        if v.numel() == 0:
            return math.inf, False
        return float(v.min()), bool(torch.isnan(v).any())
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return math.inf, False
        return float(np.min(value)), bool(np.isnan(value).any())
    v = float(value)
    return v, math.isnan(v)


def check_nonnegative(name: str, value) -> None:
    """Raise ValueError unless ``value`` (scalar or array) is >= 0 and not NaN."""
    try:
        lo, has_nan = _finite_min(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}") from None
    if has_nan:
        raise ValueError(f"{name} must be a number >= 0, got NaN ({name}={_show(value)})")
    if lo < 0:
        raise ValueError(f"{name} must be >= 0, got {name}={_show(value)}")


def check_positive(name: str, value) -> None:
    """Raise ValueError unless ``value`` (scalar or array) is > 0 and not NaN."""
    try:
        lo, has_nan = _finite_min(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0, got {value!r}") from None
    if has_nan or not lo > 0:
        raise ValueError(f"{name} must be > 0, got {name}={_show(value)}")


def check_scalar(name: str, value) -> float:
    """``value`` as a finite float: a plain number or a one-element tensor / array (not a
    boolean, not text); ValueError naming ``name`` otherwise. For options that are one
    number (a penalty weight, a learning rate), where an array would be broadcast somewhere
    deep inside or fail there."""
    if isinstance(value, str | bytes):
        raise ValueError(f"{name} must be a number, got {value!r}")
    size = value.numel() if isinstance(value, torch.Tensor) else np.size(value)
    if _is_tensor_like(value) and size != 1:
        shape = tuple(value.shape)
        raise ValueError(f"{name} must be one number, got an array of shape {shape}")
    try:
        _finite_min(value)
        v = float(value.item() if _is_tensor_like(value) else value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {name}={v}")
    return v


def check_open_unit(name: str, value, *, closed_low: bool = False) -> float:
    """A fraction in (0, 1) (or [0, 1) with ``closed_low``); returns it as float. Text and
    booleans are refused, not converted ('0.5' and True are slips, not fractions)."""
    allowed = "[0, 1)" if closed_low else "(0, 1)"
    if isinstance(value, str | bytes | bool | np.bool_):
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}") from None
    ok = (0.0 <= v < 1.0) if closed_low else (0.0 < v < 1.0)
    if not ok:
        raise ValueError(f"{name} must be in {allowed}, got {name}={value!r}")
    return v


def check_int_at_least(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {name}={value!r}")
    return int(value)


def check_seed(name: str, value) -> int:
    """A seed torch and numpy both take: an integer in [0, 2^63) (a negative one was taken
    by some commands and refused by others; a larger one failed as an unnamed overflow)."""
    value = check_int_at_least(name, value, 0)
    if value >= 2**63:
        raise ValueError(f"{name} must be an integer in [0, 2^63), got {name}={value!r}")
    return value


def check_float32_range(name: str, value) -> None:
    """A step size or decay the float32 weights can be scaled by: one past float32's range
    (a finite 1e300) overflowed at the optimiser's first step, a RuntimeError mid-run."""
    top = float(torch.finfo(torch.float32).max)
    if abs(float(value)) > top:
        raise ValueError(
            f"{name} must be at most {top:.4g} (the float32 weights' range), got {name}={value!r}"
        )


def check_choice(name: str, value, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; known: {', '.join(map(repr, allowed))}")
    return value


def check_floor(min_density: float, sparsity: float) -> None:
    """A per-tensor density floor must leave room for the total target: every pruned tensor
    keeps at least ``min_density``, so ``min_density > 1 - sparsity`` makes the target
    unreachable (the run would end far below it without a word)."""
    if min_density > 1.0 - sparsity + 1e-12:  # 1 - 0.99 is 0.010000000000000009
        raise ValueError(
            f"min_density={min_density!r} keeps more of every pruned tensor than "
            f"sparsity={sparsity!r} leaves in total (density {1 - sparsity:.4g}); "
            "use min_density <= 1 - sparsity"
        )


def check_device(name: str, value) -> torch.device | None:
    """``value`` as a torch device that can hold tensors on this machine (None stays None):
    a name torch cannot parse, a device this machine lacks (``'cuda'`` on a CPU-only torch,
    ``'cuda:5'`` with two GPUs) and ``'meta'`` (no data to train on) are a ValueError here,
    before any work, instead of torch's error from deep inside the run."""
    if value is None:
        return None
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"{name} must be a torch device such as 'cpu' or 'cuda:0', got {name}={value!r}"
        ) from None
    if dev.type == "meta":
        raise ValueError(f"{name}={value!r} holds no data; use 'cpu' or an accelerator")
    try:
        torch.empty(1, device=dev)  # the one test that covers every backend and index
    except (RuntimeError, AssertionError) as e:
        raise ValueError(f"{name}={value!r} is not available on this machine: {e}") from None
    return dev


def _show(value) -> str:
    if _is_tensor_like(value):
        arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        if arr.size <= 4:
            return repr(arr.tolist())
        return f"array of shape {tuple(arr.shape)} with min {np.nanmin(arr):g}"
    return repr(value)


def check_distinct(name: str, values, key=lambda v: v) -> None:
    """Raise ValueError when two of ``values`` are the same (by ``key``): a list of runs
    that names one run twice would make it twice, or read one's result for the other."""
    seen = {}
    for v in values:
        k = key(v)
        if k in seen:
            same = "is repeated" if seen[k] == v else f"and {seen[k]!r} name the same run"
            shown = f", got {name}={values!r}" if len(repr(values)) <= 200 else ""
            raise ValueError(f"{name} must be distinct: {v!r} {same}{shown}")
        seen[k] = v


@contextmanager
def fits_the_model(label: str):
    """Around a forward pass made to check an argument: torch's shape and type errors from
    inside the model become one ValueError that starts with ``label`` (the argument, e.g.
    ``"example_input (shape (2, 5))"``), so the user reads which input did not fit."""
    try:
        yield
    except (RuntimeError, TypeError, ValueError, IndexError) as e:
        raise ValueError(f"{label} does not fit the model: {type(e).__name__}: {e}") from e
