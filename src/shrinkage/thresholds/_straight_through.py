"""Straight-through wrapper: forward an operator, backward the identity."""

from __future__ import annotations

import functools

import torch


def straight_through(fn):
    """Wrap ``fn`` as a straight-through operator: forward ``fn``, backward the identity.

    The wrapped function returns ``x + (fn(x, ...) - x).detach()``: its value is
    ``fn(x, ...)`` up to rounding (the last bits of a survivor may differ; an exact zero
    stays zero) and its gradient w.r.t. ``x`` is the upstream gradient unchanged.
    ``fn`` itself runs under ``torch.no_grad()``, so it needs no gradient of its own (a
    threshold has a zero or undefined one). This is how ST-3 lets pruned raw weights keep
    learning (Vanderschueren & De Vleeschouwer, WACV 2023; Bengio et al. 2013).

    Parameters
    ----------
    fn : callable
        ``fn(x, *args, **kwargs) -> torch.Tensor`` with the shape of ``x``, for instance
        ``lambda v: prox("l1", v, lam)``.

    Returns
    -------
    callable
        ``wrapped(x, *args, **kwargs)``, with ``fn``'s name and docstring; it raises
        ``TypeError`` when ``x`` is not a ``torch.Tensor``.

    Examples
    --------
    The forward pass zeroes the small weight, yet both weights get the full gradient:

    >>> from shrinkage.thresholds import prox
    >>> w = torch.tensor([0.2, -1.5], requires_grad=True)
    >>> st = straight_through(lambda v: prox("l1", v, 0.5))
    >>> st(w)
    tensor([ 0., -1.], grad_fn=<AddBackward0>)
    >>> st(w).sum().backward(); w.grad
    tensor([1., 1.])
    """

    @functools.wraps(fn)
    def wrapped(x, *args, **kwargs):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"straight_through needs a torch.Tensor x, got {type(x).__name__}")
        with torch.no_grad():
            y = fn(x, *args, **kwargs)
        return x + (y - x).detach()

    return wrapped
