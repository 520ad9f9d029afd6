"""Sparsity-inducing activations: shifted ReLU, soft threshold and their magnitude-clipped forms.

tau >= 0 is the threshold, m > 0 the clipping magnitude::

    shifted_relu(x)           = max(0, x - tau)
    soft_threshold(x)         = sign(x) max(|x| - tau, 0)          # = prox("l1", x, tau)
    clipped_relu(x)           = min(max(x - tau, 0), m)
    clipped_soft_threshold(x) = sign(x) min(max(|x| - tau, 0), m)

Clipping is what keeps the edge-of-chaos initialisation stable (Price et al., ICLR 2024).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._checks import check_nonnegative, check_positive
from .._module_state import SettingsState
from ._array import as_tensor, back, like
from ._docs import fill_doc
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
    if t.dtype == torch.bool:  # as prox does: a mask is thresholded as 0.0 / 1.0
        t = t.to(torch.get_default_dtype())
    for name, p in (("tau", tau), ("m", m)):
        if isinstance(p, torch.Tensor | np.ndarray):
            try:
                torch.broadcast_shapes(t.shape, tuple(p.shape))
            except RuntimeError:
                raise ValueError(
                    f"{name} of shape {tuple(p.shape)} does not broadcast against x of shape "
                    f"{tuple(t.shape)}"
                ) from None
    args = (like(tau, t),) + (() if m is None else (like(m, t),))
    return back(core(t, *args), was_numpy)


@fill_doc
def shifted_relu(x, tau):
    """Shifted ReLU: ``max(0, x - tau)``, a ReLU whose threshold is moved from 0 to tau.

    %(unclipped_operator)s

    Examples
    --------
    >>> shifted_relu(torch.tensor([-1.0, 0.5, 2.0]), 1.0)
    tensor([0., 0., 1.])
    """
    return _apply(_shifted_relu, x, tau)


@fill_doc
def soft_threshold(x, tau):
    """Soft threshold: ``sign(x) max(|x| - tau, 0)``.

    The prox of ``tau |.|`` (the same definition as ``prox("l1", x, lam=tau)``): magnitudes
    up to tau become 0, larger ones shrink by tau.

    %(unclipped_operator)s

    Examples
    --------
    >>> soft_threshold(torch.tensor([-2.0, 0.5, 3.0]), 1.0)
    tensor([-1.,  0.,  2.])

    numpy in, numpy out:

    >>> import numpy as np
    >>> soft_threshold(np.array([-2.0, 0.5, 3.0]), 1.0)
    array([-1.,  0.,  2.])
    """
    return _apply(_soft, x, tau)


@fill_doc
def clipped_relu(x, tau, m):
    """Clipped ReLU: ``min(max(x - tau, 0), m)``.

    A shifted ReLU whose output is capped at m; the cap is what keeps the edge-of-chaos
    initialisation stable (Price et al., ICLR 2024).

    %(clipped_operator)s

    Examples
    --------
    >>> clipped_relu(torch.tensor([-1.0, 1.5, 9.0]), 1.0, 2.0)
    tensor([0.0000, 0.5000, 2.0000])
    """
    return _apply(_clipped_relu, x, tau, m)


@fill_doc
def clipped_soft_threshold(x, tau, m):
    """Clipped soft threshold: ``sign(x) min(max(|x| - tau, 0), m)``.

    A soft threshold whose output magnitude is capped at m (Price et al., ICLR 2024).

    %(clipped_operator)s

    Examples
    --------
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


@fill_doc
class Thresholding(nn.Module):
    """Base of the thresholding activation modules.

    Holds a threshold ``tau`` (a buffer, or a parameter with ``learnable_tau``) and, for the
    clipped ones, a magnitude ``m``; a subclass only defines ``_core(x, tau)``.
    ``isinstance(mod, Thresholding)`` finds them in a model. In ``forward`` a learnable tau
    is clamped at 0, since the optimiser may push it below.

    Parameters
    ----------
    %(tau_module)s
    m : float or None, optional
        Clipping magnitude > 0: required by the clipped modules (``CReLU``,
        ``CST``), refused by the others. Default None.
    learnable_tau : bool, optional
        Make ``tau`` an ``nn.Parameter`` trained with the model instead of a fixed buffer.
        Default False.

    Attributes
    ----------
    tau : torch.Tensor
        0-d threshold: a buffer, or an ``nn.Parameter`` when ``learnable_tau``.
    m : float or None
        The clipping magnitude (None for the unclipped modules).
    learnable_tau : bool
        Whether ``tau`` is a parameter.

    Raises
    ------
    ValueError
        If ``tau`` is negative or NaN; a clipped module gets no ``m`` or ``m`` not > 0; an
        unclipped module gets an ``m``.

    Examples
    --------
    Every thresholding module is a ``Thresholding``; a learnable tau is a parameter:

    >>> act = SoftThreshold(tau=0.5, learnable_tau=True)
    >>> isinstance(act, Thresholding), [name for name, _ in act.named_parameters()]
    (True, ['tau'])
    >>> CReLU(tau=0.5)
    Traceback (most recent call last):
    ...
    ValueError: CReLU needs a clipping magnitude m > 0, got m=None
    """

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
        if isinstance(self, SettingsState):
            self._keep_settings()  # m in the state_dict too

    def _core(self, x, tau):  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x):
        if x.is_complex():
            raise TypeError(f"{type(self).__name__}: x must be a real tensor, got {x.dtype}")
        if not x.is_floating_point():
            # integers and masks are read as real numbers, as the functions read them (a tau
            # cast to an integer dtype would threshold at 0)
            x = x.to(torch.get_default_dtype())
        # A learnable tau could be pushed below 0 by the optimiser: the forward reads it
        # clamped at 0, but its gradient passes (straight-through), so that a loss asking
        # for a larger threshold brings it back (clamp's own gradient, 0 below 0, froze it).
        tau = self.tau
        if not tau.requires_grad:
            return self._core(x, tau.clamp(min=0.0).to(x.dtype))
        tau = tau + (tau.clamp(min=0.0) - tau).detach()
        if x.dtype in (torch.float16, torch.bfloat16):
            # tau's gradient sums over every unit: in half precision it overflowed (-inf past
            # 65,504 kept units) or lost digits; computed in float32, the output cast back
            return self._core(x.float(), tau.float()).to(x.dtype)
        return self._core(x, tau.to(x.dtype))

    def extra_repr(self) -> str:
        s = f"tau={float(self.tau.detach()):.4g}"
        if self._clipped:
            s += f", m={self.m:.4g}"
        if self.learnable_tau:
            s += ", learnable_tau=True"
        return s


@fill_doc
class ShiftedReLU(Thresholding):
    """Module form of ``shifted_relu``: ``max(0, x - tau)``.

    Zero up to ``tau`` and unbounded above: at the edge of chaos its variance map has no
    stable fixed point (Price et al., ICLR 2024), which clipping (``CReLU``) cures.

    %(unclipped_module)s

    Examples
    --------
    >>> act = ShiftedReLU(tau=0.5)
    >>> act
    ShiftedReLU(tau=0.5)
    >>> act(torch.tensor([-1.0, 0.5, 2.0]))
    tensor([0.0000, 0.0000, 1.5000])
    """

    def _core(self, x, tau):
        return _shifted_relu(x, tau)


@fill_doc
class SoftThreshold(Thresholding):
    """Module form of ``soft_threshold``: ``sign(x) max(|x| - tau, 0)``.

    The proximal operator of ``tau * |x|`` (the l1 penalty), used here as an activation.

    %(unclipped_module)s

    Examples
    --------
    It shrinks both signs towards zero (an odd function):

    >>> SoftThreshold(tau=0.5)(torch.tensor([-2.0, 0.25, 1.0]))
    tensor([-1.5000,  0.0000,  0.5000])
    """

    def _core(self, x, tau):
        return _soft(x, tau)


@fill_doc
class CReLU(SettingsState, Thresholding):
    """Module form of ``clipped_relu``: ``min(max(x - tau, 0), m)``.

    Bounded by ``m``, which gives the variance map a stable fixed point at the edge of chaos.

    %(clipped_module)s

    Examples
    --------
    Outputs lie in [0, m]; a learnable threshold is a parameter of the module:

    >>> act = CReLU(tau=0.5, m=1.5, learnable_tau=True)
    >>> act(torch.tensor([-1.0, 1.0, 9.0])).tolist()
    [0.0, 0.5, 1.5]
    >>> [name for name, _ in act.named_parameters()]
    ['tau']
    """

    _clipped = True
    _state_settings = ("m",)  # saved with tau: a state loads with its clipping level

    def _core(self, x, tau):
        return _clipped_relu(x, tau, self.m)


@fill_doc
class CST(SettingsState, Thresholding):
    """Module form of ``clipped_soft_threshold``: ``sign(x) min(max(|x| - tau, 0), m)``.

    Odd, and bounded by ``m`` in magnitude.

    %(clipped_module)s

    Examples
    --------
    Outputs lie in [-m, m]:

    >>> print(CST(tau=0.5, m=1.2))
    CST(tau=0.5, m=1.2)
    >>> CST(tau=0.5, m=1.2)(torch.tensor([-9.0, 0.25, 1.0]))
    tensor([-1.2000,  0.0000,  0.5000])
    """

    _clipped = True
    _state_settings = ("m",)  # saved with tau: a state loads with its clipping level

    def _core(self, x, tau):
        return _clipped_soft_threshold(x, tau, self.m)
