"""Public functions of the penalty family: prox, penalty, threshold, lam_for_threshold."""

from __future__ import annotations

import torch

from .._checks import check_nonnegative, check_positive
from ._array import as_tensor, back, like
from ._docs import fill_doc
from ._penalties import get_penalty as _get


def _params(pen, params: dict, ref: torch.Tensor | None, step=None) -> dict:
    unknown = set(params) - set(pen.params)
    if unknown:
        allowed = ", ".join(pen.params) or "none"
        raise ValueError(
            f"penalty {pen.name!r} got unknown parameter(s) {sorted(unknown)}; allowed: {allowed}"
        )
    out = {k: params.get(k, default) for k, default in pen.params.items()}
    if pen.check is not None:
        pen.check(out, step)
    if ref is not None:
        out = {k: like(v, ref) for k, v in out.items()}
    return out


def _tensor_in(x):
    """(float tensor, was_numpy) of the input of prox / penalty: integer and bool tensors
    become the default float dtype; NaN or inf is a ValueError (an operator must not turn
    it into a number, nor hand it on silently)."""
    t, was_numpy = as_tensor(x)
    if not t.is_floating_point():
        if t.is_complex():
            raise TypeError(f"x must be a real tensor, got dtype {t.dtype}")
        t = t.to(torch.get_default_dtype())
    if t.numel() and not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"x contains {bad} NaN or inf value(s); the operators need finite input")
    return t, was_numpy


def _check_lam_step(lam, step):
    check_nonnegative("lam", lam)
    _check_finite_number("lam", lam)
    if step is not None:
        check_positive("step", step)
        _check_finite_number("step", step)


def _check_finite_number(name, value) -> None:
    v = value.detach() if isinstance(value, torch.Tensor) else value
    finite = bool(torch.isfinite(torch.as_tensor(v, dtype=torch.float64)).all())
    if not finite:
        raise ValueError(f"{name} must be finite, got {name}={value!r}")


def _no_overflow(fn, what: str):
    """``fn()``, with Python's OverflowError (a float power past 1.8e308) as the ValueError
    an overflowing tensor result gets."""
    try:
        return fn()
    except OverflowError:
        raise ValueError(
            f"{what} overflows float64 for these arguments; use smaller values"
        ) from None


def _finite_out(out, what: str):
    """Raise ValueError when a result overflowed its dtype (the input was finite)."""
    if isinstance(out, torch.Tensor):
        t = out
    else:  # a Python float is a float64: checked as one, not as the default float32
        t = torch.as_tensor(out, dtype=torch.float64 if isinstance(out, float) else None)
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(
            f"{what} overflows {getattr(t, 'dtype', 'float')} for these arguments; compute in "
            "a wider dtype (float64) or with smaller values"
        )
    return out


@fill_doc
def prox(name: str, x, lam, step: float = 1.0, **params):
    """Elementwise proximal operator of a penalty.

    ``prox(x) = argmin_u 1/2 (u - x)^2 + step * G(u)`` with ``G = penalty(name, u, lam)``.

    Parameters
    ----------
    %(penalty_name)s
    x : torch.Tensor or numpy.ndarray
        Input; a tensor keeps its float dtype and device (integer and bool tensors become the
        default float dtype), a numpy array gives a numpy array back.
    %(lam_array)s
    step : float, optional
        Step size > 0 (the gradient step of a proximal-gradient method). Default 1.0.
    **params
        ``a`` for ``cel0`` (atom norm > 0, default 1; needs ``a**2 * step < 1``, so the
        default ``a=1`` needs ``step < 1``), ``gamma`` for ``mcp`` (> step, default 3) and
        ``scad`` (> 1 + step, default 3.7). The other penalties take none.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        ``prox(x)``, elementwise, same shape and type as ``x``; exactly 0 where
        ``|x| <= threshold(name, lam, step)``.

    Raises
    ------
    ValueError
        An unknown ``name`` or parameter; NaN or inf in ``x`` (every penalty alike); a
        negative or non-finite ``lam``; a step <= 0 or not finite; parameters that do not
        suit the step (naming the bound); a result that overflows ``x``'s dtype.
    %(raises_x_complex)s

    Examples
    --------
    >>> import torch
    >>> prox("l1", torch.tensor([-2.0, 0.5, 3.0]), lam=1.0)
    tensor([-1.,  0.,  2.])

    Hard thresholding (l0) keeps what it does not zero; firm thresholding (mcp) shrinks
    less than l1 and leaves ``|x| > gamma lam`` unchanged:

    >>> prox("l0", torch.tensor([-2.0, 0.5, 3.0]), lam=1.0)
    tensor([-2.,  0.,  3.])
    >>> prox("mcp", torch.tensor([-2.0, 0.5, 3.0]), lam=1.0, step=0.5)
    tensor([-1.8000,  0.0000,  3.0000])
    """
    pen = _get(name)
    _check_lam_step(lam, step)
    t, was_numpy = _tensor_in(x)
    p = _params(pen, params, t, step=step)
    what = f"prox of {name!r}"
    out = _no_overflow(lambda: pen.prox(t, like(lam, t), float(step), **p), what)
    return back(_finite_out(out, what), was_numpy)


@fill_doc
def penalty(name: str, x, lam, **params):
    """Elementwise penalty value G(x), lam included.

    For instance ``lam |x|`` for ``"l1"``, ``lam [x != 0]`` for ``"l0"``,
    ``lam |x|^(1/2)`` for ``"l1/2"``; ``describe`` gives each formula.

    Parameters
    ----------
    %(penalty_name)s
    x : torch.Tensor or numpy.ndarray
        Where to evaluate G; a tensor keeps its float dtype and device, a numpy array gives
        a numpy array back.
    %(lam_array)s
    **params
        The penalty's parameters (``a`` for ``cel0``, ``gamma`` for ``mcp`` and ``scad``),
        as in ``prox``; no step is involved, so only ``a > 0`` is checked.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        G(x) elementwise, same shape and type as ``x``.

    Raises
    ------
    ValueError
        An unknown ``name`` or parameter, ``a <= 0`` for ``cel0``, NaN or inf in ``x``, a
        negative or non-finite ``lam``, a result that overflows ``x``'s dtype.
    %(raises_x_complex)s

    Examples
    --------
    >>> import numpy as np
    >>> penalty("l0", np.array([0.0, -0.3, 2.0]), lam=0.5)
    array([0. , 0.5, 0.5])

    SCAD is l1 up to lam and constant, (gamma + 1) lam^2 / 2, beyond gamma lam:

    >>> penalty("scad", np.array([0.5, 5.0]), lam=1.0)
    array([0.5 , 2.35])
    """
    pen = _get(name)
    _check_lam_step(lam, None)
    t, was_numpy = _tensor_in(x)
    p = _params(pen, params, t)
    return back(_finite_out(pen.value(t, like(lam, t), **p), f"penalty {name!r}"), was_numpy)


@fill_doc
def threshold(name: str, lam, step: float = 1.0, **params):
    """Magnitude at or below which ``prox(name, x, lam, step)`` is exactly 0.

    l1: step lam; l0: sqrt(2 step lam); l1/2: 54^(1/3)/4 (2 step lam)^(2/3) (Xu et al.
    2012); l2/3: 2/3 (3 (2 step lam)^3)^(1/4) (Cao, Sun & Xu 2013); cel0: sqrt(2 lam) a step;
    mcp, scad: step lam.

    Parameters
    ----------
    %(penalty_name)s
    lam : float
        Penalty weight >= 0 (finite).
    %(step, params)s

    Returns
    -------
    float or torch.Tensor
        The threshold; a tensor if ``lam`` or a parameter is one.

    Raises
    ------
    ValueError
        If ``name`` or one of ``params`` is unknown; if ``lam`` is negative or not finite;
        if ``step`` is not a finite number > 0, or the parameters do not suit it; if the
        threshold overflows.

    Examples
    --------
    >>> threshold("l0", 0.5)
    1.0

    Everything up to the threshold is zeroed, and nothing above it:

    >>> import torch
    >>> t = threshold("l1/2", 1.0)
    >>> prox("l1/2", torch.tensor([t, 1.01 * t], dtype=torch.float64), 1.0).ne(0).tolist()
    [False, True]
    """
    pen = _get(name)
    _check_lam_step(lam, step)
    p = _params(pen, params, None, step=step)
    what = f"threshold of {name!r}"
    return _finite_out(_no_overflow(lambda: pen.threshold(lam, float(step), **p), what), what)


@fill_doc
def lam_for_threshold(name: str, thr, step: float = 1.0, **params):
    """Inverse of ``threshold``: the lam whose prox zeroes exactly magnitudes <= ``thr``.

    Used by the weights pillar to turn a target sparsity (a magnitude quantile) into lam.

    Parameters
    ----------
    %(penalty_name)s
    thr : float
        The wanted threshold, >= 0 and finite.
    %(step, params)s

    Returns
    -------
    float or torch.Tensor
        ``lam`` such that ``threshold(name, lam, step, **params) == thr`` (up to rounding):
        a float, or a tensor when ``thr`` is one (its gradient flows).

    Raises
    ------
    ValueError
        An unknown ``name`` or parameter, a negative or non-finite ``thr``, a step <= 0 or
        not finite, parameters that do not suit the step, a result that overflows.

    Examples
    --------
    >>> lam_for_threshold("l1", 0.3, step=0.5)
    0.6
    >>> lam = lam_for_threshold("l2/3", 0.8, step=0.5)
    >>> round(threshold("l2/3", lam, step=0.5), 12)
    0.8
    """
    pen = _get(name)
    check_nonnegative("thr", thr)
    _check_finite_number("thr", thr)
    check_positive("step", step)
    _check_finite_number("step", step)
    p = _params(pen, params, None, step=step)
    what = f"lam for {name!r}"
    return _finite_out(_no_overflow(lambda: pen.lam_for(thr, float(step), **p), what), what)


@fill_doc
def describe(name: str) -> str:
    """One line on a penalty: its formula and its parameters with their defaults.

    Parameters
    ----------
    %(penalty_name)s

    Returns
    -------
    str
        ``"<name>: <doc>"``, followed by ``" [param=default, ...]"`` when the penalty has
        parameters.

    Raises
    ------
    ValueError
        If ``name`` is not a registered penalty.

    Examples
    --------
    >>> describe("l1")
    'l1: lam |u|; prox: soft threshold at t = step lam'
    >>> describe("mcp")
    'mcp: minimax concave penalty; prox: firm threshold (needs gamma > step) [gamma=3.0]'
    """
    pen = _get(name)
    extra = ", ".join(f"{k}={v}" for k, v in pen.params.items())
    return f"{pen.name}: {pen.doc}" + (f" [{extra}]" if extra else "")
