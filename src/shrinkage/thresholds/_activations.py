"""Sparsity-inducing activations: shifted ReLU, soft threshold and their magnitude-clipped forms.

tau >= 0 is the threshold, m > 0 the clipping magnitude::

    shifted_relu(x)           = max(0, x - tau)
    soft_threshold(x)         = sign(x) max(|x| - tau, 0)          # = prox("l1", x, tau)
    clipped_relu(x)           = min(max(x - tau, 0), m)
    clipped_soft_threshold(x) = sign(x) min(max(|x| - tau, 0), m)

Clipping is what keeps the edge-of-chaos initialisation stable (Price et al., ICLR 2024).
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_nonnegative, check_positive
from ._array import as_tensor, back, like
from ._penalties import _soft


# The tensor cores: one definition each, used by the functions, the modules and the
# activations pillar. tau and m are floats or tensors broadcastable to x.
def _clip(v, m):
    return torch.minimum(v, m) if isinstance(m, torch.Tensor) else torch.clamp(v, max=m)


def _shifted_relu(x, tau):
    return torch.relu(x - tau)


def _clipped_relu(x, tau, m):
    return _clip(torch.relu(x - tau), m)


def _clipped_soft_threshold(x, tau, m):
    return torch.sign(x) * _clip(torch.relu(x.abs() - tau), m)


def _apply(core, x, tau, m=None):
    check_nonnegative("tau", tau)
    if m is not None:
        check_positive("m", m)
    t, was_numpy = as_tensor(x)
    args = (like(tau, t),) + (() if m is None else (like(m, t),))
    return back(core(t, *args), was_numpy)


def shifted_relu(x, tau):
    """max(0, x - tau).

    >>> shifted_relu(torch.tensor([-1.0, 0.5, 2.0]), 1.0)
    tensor([0., 0., 1.])
    """
    return _apply(_shifted_relu, x, tau)


def soft_threshold(x, tau):
    """sign(x) max(|x| - tau, 0), the prox of tau |.| (the same definition as ``prox("l1")``).

    >>> soft_threshold(torch.tensor([-2.0, 0.5, 3.0]), 1.0)
    tensor([-1.,  0.,  2.])
    """
    return _apply(_soft, x, tau)


def clipped_relu(x, tau, m):
    """min(max(x - tau, 0), m).

    >>> clipped_relu(torch.tensor([-1.0, 1.5, 9.0]), 1.0, 2.0)
    tensor([0.0000, 0.5000, 2.0000])
    """
    return _apply(_clipped_relu, x, tau, m)


def clipped_soft_threshold(x, tau, m):
    """sign(x) min(max(|x| - tau, 0), m).

    >>> clipped_soft_threshold(torch.tensor([-9.0, 0.5, 1.5]), 1.0, 2.0)
    tensor([-2.0000,  0.0000,  0.5000])
    """
    return _apply(_clipped_soft_threshold, x, tau, m)


ACTIVATIONS = {
    "shifted_relu": shifted_relu,
    "soft_threshold": soft_threshold,
    "clipped_relu": clipped_relu,
    "clipped_soft_threshold": clipped_soft_threshold,
}


class Thresholding(nn.Module):
    """Base of the thresholding activation modules: a threshold ``tau`` (buffer, or parameter
    with ``learnable_tau``) and, for the clipped ones, a magnitude ``m``; a subclass only
    defines ``_core(x, tau)``. ``isinstance(mod, Thresholding)`` finds them in a model."""

    _clipped = False

    def __init__(self, tau: float = 0.0, m: float | None = None, learnable_tau: bool = False):
        super().__init__()
        check_nonnegative("tau", tau)
        if self._clipped:
            if m is None:
                raise ValueError(
                    f"{type(self).__name__} needs a clipping magnitude m > 0, got m=None"
                )
            check_positive("m", m)
        elif m is not None:
            raise ValueError(f"{type(self).__name__} takes no clipping magnitude, got m={m!r}")
        self.m = None if m is None else float(m)
        self.learnable_tau = bool(learnable_tau)
        if learnable_tau:
            self.tau = nn.Parameter(torch.tensor(float(tau)))
        else:
            self.register_buffer("tau", torch.tensor(float(tau)))

    def _core(self, x, tau):  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x):
        # A learnable tau could be pushed below 0 by the optimiser; the clamp keeps tau >= 0.
        return self._core(x, self.tau.clamp(min=0.0).to(x.dtype))

    def extra_repr(self) -> str:
        s = f"tau={float(self.tau.detach()):.4g}"
        if self._clipped:
            s += f", m={self.m:.4g}"
        if self.learnable_tau:
            s += ", learnable_tau=True"
        return s


class ShiftedReLU(Thresholding):
    """Module form of :func:`shifted_relu`.

    >>> ShiftedReLU(tau=0.5)
    ShiftedReLU(tau=0.5)
    """

    def _core(self, x, tau):
        return _shifted_relu(x, tau)


class SoftThreshold(Thresholding):
    """Module form of :func:`soft_threshold`.

    >>> SoftThreshold(tau=0.5)
    SoftThreshold(tau=0.5)
    """

    def _core(self, x, tau):
        return _soft(x, tau)


class CReLU(Thresholding):
    """Module form of :func:`clipped_relu`.

    >>> CReLU(tau=0.5, m=1.5)
    CReLU(tau=0.5, m=1.5)
    """

    _clipped = True

    def _core(self, x, tau):
        return _clipped_relu(x, tau, self.m)


class CST(Thresholding):
    """Module form of :func:`clipped_soft_threshold`.

    >>> CST(tau=0.5, m=1.2)
    CST(tau=0.5, m=1.2)
    """

    _clipped = True

    def _core(self, x, tau):
        return _clipped_soft_threshold(x, tau, self.m)
