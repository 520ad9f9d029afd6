"""Initialise modules from an edge-of-chaos config and measure activation sparsity on data."""

from __future__ import annotations

from torch import nn

from .._init import gaussian_init_
from ..thresholds import Thresholding
from ._gauss import Erf, _Lambda


def init_(module: nn.Module, cfg, readout: nn.Module | None = None) -> nn.Module:
    """Initialise every Linear / Conv weight as N(0, sigma_w^2 / fan_in) and bias N(0, sigma_b^2).

    ``cfg`` is an :class:`EoCConfig` (or anything with ``sigma_w`` and ``sigma_b``). Returns the
    module (in place, like ``torch.nn.init``).

    >>> net = init_(nn.Linear(300, 300), edge_of_chaos("crelu", 0.85))  # doctest: +SKIP
    """
    return gaussian_init_(module, cfg.sigma_w, cfg.sigma_b)


_ACT_TYPES = (Thresholding, nn.ReLU, nn.Tanh, Erf, _Lambda, nn.Hardtanh, nn.Softshrink)


def is_activation(mod: nn.Module) -> bool:
    return isinstance(mod, _ACT_TYPES)


class ActivationSparsity:
    """Forward hooks that count exact zeros at the output of every activation layer.

    >>> with ActivationSparsity(net) as sp:     # doctest: +SKIP
    ...     net(x)
    >>> sp.per_layer, sp.mean                  # doctest: +SKIP

    ``per_layer`` is the fraction of exact zeros per activation module (in forward order) over
    all batches seen since the last :meth:`reset`; ``mean`` averages the layers.
    """

    def __init__(self, model: nn.Module, layers=None):
        self.layers = (
            [m for m in model.modules() if is_activation(m)] if layers is None else list(layers)
        )
        if not self.layers:
            raise ValueError("model has no activation layers to measure")
        self._handles = []
        self.reset()

    def reset(self):
        self._zeros = [0] * len(self.layers)
        self._total = [0] * len(self.layers)
        return self

    def _hook(self, i):
        def hook(mod, inp, out):
            self._zeros[i] += int((out.detach() == 0).sum())
            self._total[i] += out.numel()

        return hook

    def attach(self):
        if not self._handles:
            self._handles = [
                m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.layers)
            ]
        return self

    def remove(self):
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self.attach()

    def __exit__(self, *exc):
        self.remove()
        return False

    @property
    def per_layer(self) -> list[float]:
        return [z / t if t else float("nan") for z, t in zip(self._zeros, self._total)]

    @property
    def mean(self) -> float:
        v = [x for x in self.per_layer if x == x]
        return sum(v) / len(v) if v else float("nan")
