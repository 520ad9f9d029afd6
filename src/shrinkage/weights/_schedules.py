"""Sparsity schedules: pure functions of the optimizer step.

A :class:`Schedule` maps ``(step, final)`` to the target sparsity at that step; it holds no
state, so resuming only needs the step counter. Any plain callable ``step -> sparsity`` can be
given to :class:`~shrinkage.weights.Sparsifier` instead.
"""

from __future__ import annotations

import math

from .._checks import check_int_at_least, check_open_unit

__all__ = ["Schedule", "Cubic", "Linear", "Constant"]


class Schedule:
    """Base class: ``schedule(step, final) -> sparsity`` in ``[0, final]``-ish (see subclasses)."""

    def __call__(self, step: int, final: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(vars(self).items()))))


def _check_window(start, end) -> tuple[int, int]:
    start = check_int_at_least("start", start, 0)
    end = check_int_at_least("end", end, 0)
    if end <= start:
        raise ValueError(f"schedule end must be > start, got start={start}, end={end}")
    return start, end


class Cubic(Schedule):
    """Cubic sparsity ramp (Zhu & Gupta 2017, "To prune, or not to prune"), as ST-3 uses it::

        s(t) = initial                                               t < start
        s(t) = final + (initial - final) * (1 - (t - start) / (end - start))^3
        s(t) = final                                                 t >= end

    Pruning is fast at first and slows as the target nears.

    >>> round(Cubic(start=0, end=10)(5, final=0.8), 6)
    0.7
    """

    def __init__(self, start: int, end: int, initial: float = 0.0):
        self.start, self.end = _check_window(start, end)
        self.initial = check_open_unit("initial", initial, closed_low=True)

    def __call__(self, step: int, final: float) -> float:
        if step < self.start:
            return self.initial
        if step >= self.end:
            return final
        frac = (step - self.start) / (self.end - self.start)
        return final + (self.initial - final) * (1.0 - frac) ** 3


class Linear(Schedule):
    """Linear ramp::

        s(t) = initial + (final - initial) * clamp((t - start) / (end - start), 0, 1)


    >>> Linear(start=0, end=10)(5, final=0.8)
    0.4
    """

    def __init__(self, start: int, end: int, initial: float = 0.0):
        self.start, self.end = _check_window(start, end)
        self.initial = check_open_unit("initial", initial, closed_low=True)

    def __call__(self, step: int, final: float) -> float:
        frac = min(max((step - self.start) / (self.end - self.start), 0.0), 1.0)
        return self.initial + (final - self.initial) * frac


class Constant(Schedule):
    """The final sparsity from step ``start`` on, none before: ``s(t) = final * [t >= start]``.

    >>> Constant()(0, final=0.9)
    0.9
    """

    def __init__(self, start: int = 0):
        self.start = check_int_at_least("start", start, 0)

    def __call__(self, step: int, final: float) -> float:
        return final if step >= self.start else 0.0


def evaluate(schedule, step: int, final: float) -> float:
    """Target sparsity at ``step`` from a :class:`Schedule` or a plain callable ``step -> s``."""
    s = schedule(step, final) if isinstance(schedule, Schedule) else schedule(step)
    s = float(s)
    if math.isnan(s) or not 0.0 <= s < 1.0:
        raise ValueError(
            f"schedule {schedule!r} returned sparsity {s!r} at step {step}; need [0, 1)"
        )
    return s
