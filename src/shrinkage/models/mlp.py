"""Deep fully connected and convolutional networks for the activations pillar.

Built from an edge-of-chaos config (:func:`shrinkage.activations.edge_of_chaos`, or any object
with ``module()``, ``sigma_w``, ``sigma_b`` and ``input_mean_square``): every hidden layer gets
its own activation module from ``config.module()`` and the weights are N(0, sigma_w^2 / fan_in),
the biases N(0, sigma_b^2). The first layer only sits at the fixed point if the inputs are
scaled for it: sigma_w^2 |x|^2 / N + sigma_b^2 = q* needs the mean square of x to be
E[phi(sqrt(q*) z)^2]; :class:`ScaleInput` does this per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from .._checks import check_int_at_least, check_positive
from .._init import gaussian_init_
from ..thresholds import ShiftedReLU

_CONFIG_ATTRS = ("module", "sigma_w", "sigma_b", "input_mean_square")


class ScaleInput(nn.Module):
    """x * sqrt(mean_square / mean(x^2)) per sample, so a first layer N(0, sigma_w^2 / N) has
    pre-activation variance sigma_w^2 mean_square + sigma_b^2 (= q* at the edge of chaos)."""

    def __init__(self, mean_square: float):
        super().__init__()
        check_positive("mean_square", mean_square)
        self.mean_square = float(mean_square)

    def forward(self, x):
        ms = x.flatten(1).pow(2).mean(1).clamp_min(1e-12)
        return x * (self.mean_square / ms).sqrt().view(-1, *([1] * (x.dim() - 1)))

    def extra_repr(self) -> str:
        return f"mean_square={self.mean_square:.6g}"


def _is_config(activation) -> bool:
    return not isinstance(activation, type) and all(hasattr(activation, a) for a in _CONFIG_ATTRS)


@dataclass(frozen=True)
class _ReLUAtEdgeOfChaos:
    """ReLU at its edge of chaos (He et al. 2015): sigma_w^2 = 2, sigma_b = 0, q* = 1; the
    same numbers as ``shrinkage.activations.edge_of_chaos("relu")``, kept here so that a
    model needs no pillar."""

    sigma_w: float = math.sqrt(2.0)
    sigma_b: float = 0.0
    input_mean_square: float = 0.5

    def module(self):
        return ShiftedReLU(tau=0.0)


def _resolve(activation, sparsity):
    """-> (factory for one activation module, cfg or None)."""
    if isinstance(activation, str):
        if activation != "relu" or sparsity is not None:
            raise ValueError(
                f"activation={activation!r} (sparsity={sparsity!r}): models take an "
                "edge-of-chaos config for sparse activations, e.g. "
                "mlp(depth, width, shrinkage.activations.edge_of_chaos('cst', 0.85)); "
                "the only name is 'relu'"
            )
        activation = _ReLUAtEdgeOfChaos()
    if _is_config(activation):
        return activation.module, activation
    if isinstance(activation, nn.Module):
        raise ValueError(
            "activation must be an EoCConfig, a name or a module factory (e.g. nn.ReLU), not a "
            f"module instance {activation!r}: each layer needs its own module"
        )
    if callable(activation):
        return activation, None
    raise ValueError(
        f"activation must be an EoCConfig, a name or a module factory, got {activation!r}"
    )


def _start(activation, sparsity, num_classes, scale_input):
    """(activation factory, config or None, the first layers: ScaleInput when configured)."""
    check_int_at_least("num_classes", num_classes)
    factory, cfg = _resolve(activation, sparsity)
    layers: list[nn.Module] = []
    if cfg is not None and scale_input:
        layers.append(ScaleInput(cfg.input_mean_square))
    return factory, cfg, layers


def _finish(net, cfg):
    if cfg is not None:
        gaussian_init_(net, cfg.sigma_w, cfg.sigma_b)
        readout = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
        nn.init.zeros_(readout.bias)
    return net


def mlp(
    depth: int,
    width: int,
    activation="relu",
    *,
    sparsity=None,
    in_features: int = 784,
    num_classes: int = 10,
    scale_input: bool = True,
) -> nn.Sequential:
    """A deep MLP: [ScaleInput], Flatten, depth x (Linear, activation), Linear readout.

    ``activation``: an edge-of-chaos config (an :class:`~shrinkage.activations.EoCConfig`, or
    any object with ``module()``, ``sigma_w``, ``sigma_b`` and ``input_mean_square``: the
    network is initialised from it and its inputs scaled so q^1 = q*), ``"relu"`` (ReLU at its
    edge of chaos), or a module factory such as ``nn.ReLU`` (PyTorch's default init, no input
    scaling).

    >>> net = mlp(100, 300, edge_of_chaos("cst", sparsity=0.85))  # doctest: +SKIP
    """
    depth = check_int_at_least("depth", depth)
    width = check_int_at_least("width", width)
    in_features = check_int_at_least("in_features", in_features)
    factory, cfg, layers = _start(activation, sparsity, num_classes, scale_input)
    layers.append(nn.Flatten())
    n = in_features
    for _ in range(depth):
        layers += [nn.Linear(n, width), factory()]
        n = width
    layers.append(nn.Linear(n, num_classes))
    return _finish(nn.Sequential(*layers), cfg)


def deep_cnn(
    depth: int,
    channels: int,
    activation="relu",
    *,
    sparsity=None,
    in_channels: int = 1,
    num_classes: int = 10,
    kernel_size: int = 3,
    scale_input: bool = True,
) -> nn.Sequential:
    """A plain deep CNN for 28 x 28 inputs: depth x (Conv kxk 'same', activation), global
    average pool, Linear readout; initialised like :func:`mlp`.

    >>> net = deep_cnn(50, 32, edge_of_chaos("crelu", sparsity=0.7))  # doctest: +SKIP
    """
    depth = check_int_at_least("depth", depth)
    channels = check_int_at_least("channels", channels)
    in_channels = check_int_at_least("in_channels", in_channels)
    kernel_size = check_int_at_least("kernel_size", kernel_size)
    factory, cfg, layers = _start(activation, sparsity, num_classes, scale_input)
    c = in_channels
    for _ in range(depth):
        layers += [nn.Conv2d(c, channels, kernel_size, padding=kernel_size // 2), factory()]
        c = channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return _finish(nn.Sequential(*layers), cfg)


def hidden_layers(net: nn.Module) -> list[nn.Module]:
    """The Linear / Conv layers whose outputs feed an activation (pre-activations h^l)."""
    mods = list(net.modules())
    return [m for m in mods if isinstance(m, nn.Linear | nn.Conv2d)][:-1] or []


__all__ = ["mlp", "deep_cnn", "ScaleInput", "hidden_layers"]
