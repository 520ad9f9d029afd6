"""Straight-through wrapper: forward an operator, backward the identity."""

from __future__ import annotations

import functools

import torch


def straight_through(fn):
    """Wrap ``fn`` so that the forward pass is ``fn(x, ...)`` and the gradient w.r.t. ``x`` is
    the upstream gradient unchanged: ``x + (fn(x, ...) - x).detach()``.

    This is how ST-3 lets pruned raw weights keep learning (Vanderschueren & De Vleeschouwer,
    WACV 2023; Bengio et al. 2013).

    >>> from shrinkage.thresholds import prox
    >>> w = torch.tensor([0.2, -1.5], requires_grad=True)
    >>> st = straight_through(lambda v: prox("l1", v, 0.5))
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
