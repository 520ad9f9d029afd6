"""Keep every activation layer at its target sparsity while a network trains.

The edge-of-chaos initialisation fixes tau so that a fraction s of N(0, q*) pre-activations
is zeroed; training moves the pre-activation distribution and the measured sparsity drifts
(to 0.79 in eight epochs at s = 0.85 here, to 0.4 with a large Adam step). The controller
tracks, per layer, the s-quantile of the pre-activations of each training batch (of |h| for
the odd activations) and moves tau towards it by an exponential moving average,

    tau <- (1 - momentum) tau + momentum * quantile_s(h_batch),

like batch normalisation's running statistics; in eval mode nothing changes, so test-time
sparsity is what the last taus give. This departs from Price et al. (ICLR 2024), whose
thresholds stay at their initial value: here the sparsity is a constraint held during
training, the thresholds are state (saved with the model's buffers).
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_int_at_least, check_open_unit, check_positive
from ..thresholds import CST, CReLU, ShiftedReLU, SoftThreshold

__all__ = ["SparsityControl"]

_ODD = (SoftThreshold, CST)
_CONTROLLABLE = (ShiftedReLU, SoftThreshold, CReLU, CST)


def _spread(n: int, k: int, device) -> torch.Tensor:
    """k indices spread over range(n): multiples of a prime step modulo n. A plain stride on
    the flattened (batch, units) tensor would keep the same few units in every row."""
    step = next(p for p in (7919, 7927, 7933, 7937) if n % p)
    return (torch.arange(k, device=device) * step) % n


class _QuantileHook:
    """The forward pre-hook on controlled layer ``i``: records a training batch's quantile.

    An object, not a closure: a model carrying it can be saved whole, and a deep copy of the
    model (a teacher, an EMA copy, ``export``'s copies) copies it with a controller of its
    own, so the copy's batches never move this controller's thresholds."""

    def __init__(self, ctl, i: int):
        self.ctl, self.i = ctl, i

    def __call__(self, mod, args):
        if mod.training and mod is self.ctl.layers[self.i]:
            self.ctl._record(self.i, args[0])
        return None


class SparsityControl:
    """Hold the fraction of zeros of every thresholding activation of ``model`` at
    ``sparsity`` during training (optimizer-shaped: call ``step`` after each
    ``optimizer.step()``).

    Parameters
    ----------
    model : nn.Module
        Holds ``ShiftedReLU``, ``SoftThreshold``, ``CReLU`` or
        ``CST`` modules (with a fixed, not learnable, tau).
    sparsity : float
        Target fraction of zeros, in (0, 1).
    momentum : float
        Weight of the current batch's quantile in the moving average, in (0, 1].
    max_samples : int
        At most this many pre-activations per layer and batch enter the quantile (spread over
        units and samples), which bounds the cost on wide or convolutional layers.

    Raises
    ------
    ValueError
        If the model has no controllable activation, a tau is learnable, or an argument is
        out of range.

    Examples
    --------
    >>> from shrinkage.thresholds import CReLU
    >>> net = nn.Sequential(nn.Linear(20, 50), CReLU(tau=0.0, m=1.0))
    >>> ctl = SparsityControl(net, sparsity=0.8, momentum=1.0)
    >>> _ = net(torch.randn(256, 20)); ctl.step()
    >>> round(float((net(torch.randn(4096, 20)) == 0).float().mean()), 1)
    0.8
    """

    def __init__(
        self, model: nn.Module, sparsity: float, momentum: float = 0.1, max_samples: int = 8192
    ):
        self.sparsity = check_open_unit("sparsity", sparsity)
        self.momentum = _check_momentum(momentum)
        self.max_samples = check_int_at_least("max_samples", max_samples, 1)
        self.layers = [m for m in model.modules() if isinstance(m, _CONTROLLABLE)]
        if not self.layers:
            raise ValueError(
                "model has no thresholding activation to control (ShiftedReLU, SoftThreshold, "
                "CReLU or CST)"
            )
        learnable = [type(m).__name__ for m in self.layers if m.learnable_tau]
        if learnable:
            raise ValueError(
                f"SparsityControl sets tau itself; these activations have learnable_tau=True: "
                f"{learnable}"
            )
        self._pending: list[torch.Tensor | None] = [None] * len(self.layers)
        self._handles = [
            m.register_forward_pre_hook(_QuantileHook(self, i)) for i, m in enumerate(self.layers)
        ]

    def _record(self, i: int, x: torch.Tensor) -> None:
        h = x.detach()
        h = (h.abs() if isinstance(self.layers[i], _ODD) else h).reshape(-1)
        if h.numel() > self.max_samples:
            h = h[_spread(h.numel(), self.max_samples, h.device)]
        k = max(1, min(h.numel(), int(round(self.sparsity * h.numel()))))
        q = torch.kthvalue(h.float(), k).values
        self._pending[i] = q.clamp_min(0.0)

    def step(self) -> None:
        """Move each tau towards the quantile seen in the last training forward pass."""
        with torch.no_grad():
            for i, mod in enumerate(self.layers):
                q = self._pending[i]
                if q is None:
                    continue
                mod.tau.mul_(1.0 - self.momentum).add_(self.momentum * q.to(mod.tau))
                self._pending[i] = None

    @property
    def taus(self) -> list[float]:
        return [float(m.tau) for m in self.layers]

    def remove(self) -> None:
        """Detach the hooks (the taus reached stay in the modules)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def state_dict(self) -> dict:
        return {"sparsity": self.sparsity, "momentum": self.momentum}

    def load_state_dict(self, state: dict) -> None:
        # The taus themselves are module buffers, restored with the model's state_dict.
        self.sparsity = check_open_unit("sparsity", state["sparsity"])
        # as the constructor checks it: a negative one made tau diverge at the next step
        self.momentum = _check_momentum(state["momentum"])


def _check_momentum(momentum) -> float:
    """The running-quantile momentum, in (0, 1]."""
    check_positive("momentum", momentum)
    if not momentum <= 1:
        raise ValueError(f"momentum must be in (0, 1], got momentum={momentum!r}")
    return float(momentum)
