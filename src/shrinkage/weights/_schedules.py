"""Sparsity schedules: pure functions of the optimizer step.

A ``Schedule`` maps ``(step, final)`` to the target sparsity at that step; it holds no
state, so resuming only needs the step counter. Any plain callable ``step -> sparsity`` can be
given to ``Sparsifier`` instead.
"""

from __future__ import annotations

import inspect
import math

from .._checks import check_int_at_least, check_open_unit
from ._docs import fill_doc

__all__ = ["Schedule", "Cubic", "Linear", "Constant"]


class Schedule:
    """Base class of the sparsity schedules: ``schedule(step, final) -> sparsity``.

    A schedule is a pure function of the optimizer step: it holds only its configuration
    (compared by value, shown by ``repr``), so a resumed run needs nothing but the step
    counter. Subclasses implement ``__call__``; the value is in ``[0, final]``-ish (see the
    subclasses), and ``Sparsifier`` refuses any value outside [0, 1) with a
    ValueError naming the schedule and the step. A plain callable ``step -> sparsity``
    can be given to ``Sparsifier`` instead of a Schedule. The base class takes no
    constructor argument; a call takes the step and the final sparsity (see
    ``__call__``).

    Examples
    --------
    A subclass is one ``__call__``; equality and ``repr`` come from its attributes:

    >>> class Halfway(Schedule):
    ...     def __init__(self, at):
    ...         self.at = at
    ...     def __call__(self, step, final):
    ...         return final if step >= self.at else final / 2
    >>> h = Halfway(at=10)
    >>> h(3, final=0.8), h(10, final=0.8), h == Halfway(10), h
    (0.4, 0.8, True, Halfway(at=10))
    """

    def __call__(self, step: int, final: float) -> float:  # pragma: no cover - abstract
        """The target sparsity at ``step``.

        Parameters
        ----------
        step : int
            The optimizer step, >= 0: ``Sparsifier.step_count``.
        final : float
            The ``Sparsifier``'s target sparsity, in [0, 1).

        Returns
        -------
        float
            The sparsity in force at ``step``, in [0, 1).

        Raises
        ------
        NotImplementedError
            On the base class: subclasses implement it.
        """
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


class _Ramp(Schedule):
    """A ramp from ``initial`` at step ``start`` to ``final`` at step ``end``."""

    def __init__(self, start: int, end: int, initial: float = 0.0):
        self.start, self.end = _check_window(start, end)
        self.initial = check_open_unit("initial", initial, closed_low=True)


@fill_doc
class Cubic(_Ramp):
    """Cubic sparsity ramp (Zhu & Gupta 2017, "To prune, or not to prune"), as ST-3 uses it.

    At optimizer step t:

        s(t) = initial                                               t < start
        s(t) = final + (initial - final) * (1 - (t - start) / (end - start))^3
        s(t) = final                                                 t >= end

    Pruning is fast at first and slows as the target nears.

    %(ramp_sections)s

    Examples
    --------
    Halfway through the ramp, seven eighths of the way is done (1 - 0.5**3):

    >>> cubic = Cubic(start=0, end=10)
    >>> round(cubic(5, final=0.8), 6)
    0.7
    >>> cubic(0, final=0.8), cubic(10, final=0.8), cubic(99, final=0.8)
    (0.0, 0.8, 0.8)
    """

    def __call__(self, step: int, final: float) -> float:
        if step < self.start:
            return self.initial
        if step >= self.end:
            return final
        frac = (step - self.start) / (self.end - self.start)
        return final + (self.initial - final) * (1.0 - frac) ** 3


@fill_doc
class Linear(_Ramp):
    """Linear sparsity ramp from ``initial`` at ``start`` to ``final`` at ``end``.

    At optimizer step t:

        s(t) = initial + (final - initial) * clamp((t - start) / (end - start), 0, 1)

    %(ramp_sections)s

    Examples
    --------
    >>> Linear(start=0, end=10)(5, final=0.8)
    0.4
    >>> ramp = Linear(start=10, end=20, initial=0.2)
    >>> ramp(0, final=0.6), round(ramp(15, final=0.6), 6), ramp(30, final=0.6)
    (0.2, 0.4, 0.6)
    """

    def __call__(self, step: int, final: float) -> float:
        frac = min(max((step - self.start) / (self.end - self.start), 0.0), 1.0)
        return self.initial + (final - self.initial) * frac


class Constant(Schedule):
    """The final sparsity from step ``start`` on, none before: ``s(t) = final * [t >= start]``.

    ``Sparsifier``'s default schedule (``Constant()``: the final sparsity at once).

    Parameters
    ----------
    start : int, default 0
        First step with the final sparsity, >= 0.

    Attributes
    ----------
    start : int
        The same.

    Raises
    ------
    ValueError
        ``start`` is not an integer >= 0.

    Examples
    --------
    >>> Constant()(0, final=0.9)
    0.9
    >>> late = Constant(start=100)
    >>> late(99, final=0.9), late(100, final=0.9)
    (0.0, 0.9)
    """

    def __init__(self, start: int = 0):
        self.start = check_int_at_least("start", start, 0)

    def __call__(self, step: int, final: float) -> float:
        return final if step >= self.start else 0.0


def check_schedule(schedule) -> None:
    """A ``Schedule`` instance or a callable of one argument (the step); ValueError
    otherwise (a Schedule class, not an instance, is the usual slip)."""
    if isinstance(schedule, type):
        raise ValueError(
            f"schedule must be a Schedule instance, got the class {schedule.__name__}; "
            f"e.g. {schedule.__name__}(start=0, end=1000)"
        )
    if not callable(schedule):
        raise ValueError(
            f"schedule must be a Schedule or a callable step -> sparsity, got {schedule!r}"
        )
    if not isinstance(schedule, Schedule):
        try:
            inspect.signature(schedule).bind(0)
        except TypeError:
            raise ValueError(
                f"schedule {schedule!r} must take one argument, the step, and return the "
                "sparsity (a Schedule gets the final sparsity too)"
            ) from None
        except ValueError:  # no signature to read (some builtins): called as it is
            pass


def evaluate(schedule, step: int, final: float) -> float:
    """Target sparsity at ``step`` from a ``Schedule`` or a plain callable ``step -> s``:
    a number in [0, final] (``final``: the Sparsifier's sparsity, which the schedule leads
    to and never passes)."""
    s = schedule(step, final) if isinstance(schedule, Schedule) else schedule(step)
    try:
        if isinstance(s, bool | str | bytes):
            raise TypeError
        s = float(s)
    except (TypeError, ValueError):
        raise ValueError(
            f"schedule {schedule!r} returned {s!r} at step {step}; need a number in [0, 1)"
        ) from None
    if math.isnan(s) or not 0.0 <= s < 1.0:
        raise ValueError(
            f"schedule {schedule!r} returned sparsity {s!r} at step {step}; need [0, 1)"
        )
    if s > final + 1e-12:
        raise ValueError(
            f"schedule {schedule!r} returned sparsity {s:g} at step {step}, above the final "
            f"sparsity={final:g} it leads to; raise sparsity, or lower the schedule (initial)"
        )
    return s
