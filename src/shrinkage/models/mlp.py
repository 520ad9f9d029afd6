"""Deep fully connected and convolutional networks for the activations pillar.

Built from an edge-of-chaos config (``shrinkage.activations.edge_of_chaos``, or any object
with ``module()``, ``sigma_w``, ``sigma_b`` and ``input_mean_square``): every hidden layer gets
its own activation module from ``config.module()`` and the weights are N(0, sigma_w^2 / fan_in),
the biases N(0, sigma_b^2). The first layer only sits at the fixed point if the inputs are
scaled for it: sigma_w^2 |x|^2 / N + sigma_b^2 = q* needs the mean square of x to be
E[phi(sqrt(q*) z)^2]; ``ScaleInput`` does this per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from .._checks import check_int_at_least, check_positive
from .._init import gaussian_init_
from .._module_state import SettingsState
from ..thresholds import ShiftedReLU
from ._docs import fill_doc
from .lenet import unshared

_CONFIG_ATTRS = ("module", "sigma_w", "sigma_b", "input_mean_square")


class ScaleInput(SettingsState, nn.Module):
    """x * sqrt(mean_square / mean(x^2)) per sample, so a first layer N(0, sigma_w^2 / N) has
    pre-activation variance sigma_w^2 mean_square + sigma_b^2 (= q* at the edge of chaos).
    ``mean_square`` is saved in the state_dict (a state loads with its own scale)."""

    _state_settings = ("mean_square",)

    def __init__(self, mean_square: float):
        super().__init__()
        check_positive("mean_square", mean_square)
        self.mean_square = float(mean_square)
        self._keep_settings()

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
    if sparsity is not None and not isinstance(activation, str):
        raise ValueError(
            f"sparsity={sparsity!r} with activation={activation!r}: the sparsity comes with "
            "the activation (an edge-of-chaos config carries its own); leave sparsity=None"
        )
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
        return _modules_only(activation), None
    raise ValueError(
        f"activation must be an EoCConfig, a name or a module factory, got {activation!r}"
    )


def _modules_only(make):
    """The factory, each of its results checked to be a module (torch's own TypeError,
    "int is not a Module subclass", came from inside nn.Sequential)."""

    def build():
        mod = make()
        if not isinstance(mod, nn.Module):
            raise ValueError(
                f"activation must be a factory returning an nn.Module (e.g. nn.ReLU), it "
                f"returned {type(mod).__name__}"
            )
        return mod

    return build


def _start(activation, sparsity, num_classes, scale_input):
    """(activation factory, config or None, the first layers: ScaleInput when configured)."""
    if not isinstance(scale_input, bool):  # "no" would be truthy: a ScaleInput added
        raise ValueError(f"scale_input must be True or False, got {scale_input!r}")
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


@fill_doc
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

    With an edge-of-chaos config every weight is drawn N(0, sigma_w^2 / fan_in), every bias
    N(0, sigma_b^2) and the readout bias set to 0; ``ScaleInput`` rescales each sample
    to the mean square ``input_mean_square``, so the first pre-activations already have
    variance q* = sigma_w^2 E[x^2] + sigma_b^2 (Price et al., ICLR 2024). Without one the
    net keeps PyTorch's default initialisation and its inputs are left as they are.

    Parameters
    ----------
    depth : int
        Number of hidden layers (Linear + activation), >= 1.
    width : int
        Units per hidden layer, >= 1.
    activation : EoCConfig, str or callable, optional
        An edge-of-chaos config (an ``EoCConfig``, or any object
        with ``module()``, ``sigma_w``, ``sigma_b`` and ``input_mean_square``: the network is
        initialised from it and its inputs scaled so q^1 = q*); ``"relu"`` (ReLU at its edge
        of chaos, He et al. 2015: sigma_w^2 = 2, sigma_b = 0); or a zero-argument module
        factory such as ``nn.ReLU`` (PyTorch's default init, no input scaling). Each hidden
        layer gets its own module. Default ``"relu"``.
    sparsity : None, optional
        Not a way to choose the sparsity: any value other than None with a name raises, with
        a message pointing to ``shrinkage.activations.edge_of_chaos``. Default None.
    in_features : int, optional
        Input features after flattening, >= 1. Default 784 (28 x 28 MNIST).
    %(num_classes_readout)s
    scale_input : bool, optional
        Put a ``ScaleInput`` first when ``activation`` is a config (no effect
        otherwise). Default True.

    Returns
    -------
    torch.nn.Sequential
        The network, mapping (N, ...) inputs with ``in_features`` values per sample to
        (N, ``num_classes``) logits.

    Raises
    ------
    ValueError
        If ``depth``, ``width``, ``in_features`` or ``num_classes`` is not an integer >= 1;
        ``activation`` is a name other than ``"relu"`` or comes with a ``sparsity``; it is
        a module instance (each layer needs its own) or neither a config nor callable.

    Examples
    --------
    At the edge of chaos for 85% sparse clipped soft thresholds, the first pre-activations
    have mean square q* = 1 and about 85% of the first layer's outputs are exactly 0 (up to
    the sampling error of 300 random units):

    >>> import torch
    >>> from shrinkage.activations import edge_of_chaos
    >>> _ = torch.manual_seed(0)
    >>> net = mlp(10, 300, edge_of_chaos("cst", sparsity=0.85))
    >>> x = torch.rand(256, 1, 28, 28)
    >>> with torch.no_grad():
    ...     h, a = net[:3](x), net[:4](x)
    >>> abs(float(h.pow(2).mean()) - 1.0) < 0.2, abs(float((a == 0).float().mean()) - 0.85) < 0.03
    (True, True)
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
    return _finish(unshared(*layers), cfg)


@fill_doc
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
    average pool, Linear readout; initialised like ``mlp``.

    With an edge-of-chaos config: [ScaleInput], then every conv weight N(0, sigma_w^2 /
    fan_in) (fan_in = channels x k x k), every bias N(0, sigma_b^2), the readout bias 0.

    Parameters
    ----------
    depth : int
        Number of conv layers (Conv + activation), >= 1.
    channels : int
        Channels of every conv layer, >= 1.
    activation : EoCConfig, str or callable, optional
        As in ``mlp``: an edge-of-chaos config, ``"relu"``, or a zero-argument module
        factory. Default ``"relu"``.
    sparsity : None, optional
        As in ``mlp``: only there to refuse a name with a sparsity. Default None.
    in_channels : int, optional
        Channels of the input images, >= 1. Default 1.
    %(num_classes_readout)s
    kernel_size : int, optional
        Side of the square kernels, odd, >= 1; padding ``kernel_size // 2`` keeps the spatial
        size for odd sizes. Default 3.
    scale_input : bool, optional
        Put a ``ScaleInput`` first when ``activation`` is a config. Default True.

    Returns
    -------
    torch.nn.Sequential
        The network, mapping (N, ``in_channels``, H, W) images to (N, ``num_classes``) logits.

    Raises
    ------
    ValueError
        If ``depth``, ``channels``, ``in_channels``, ``kernel_size`` or ``num_classes`` is
        not an integer >= 1, or ``activation`` is refused as in ``mlp``.

    Examples
    --------
    >>> import torch
    >>> from shrinkage.activations import edge_of_chaos
    >>> cfg = edge_of_chaos("crelu", sparsity=0.7)
    >>> net = deep_cnn(8, 16, cfg)
    >>> sum(isinstance(m, torch.nn.Conv2d) for m in net), type(net[0]).__name__
    (8, 'ScaleInput')

    The second conv has fan_in 16 x 3 x 3 = 144, so its weights have std sigma_w / 12:

    >>> abs(float(net[3].weight.detach().std()) * 12 / cfg.sigma_w - 1) < 0.05
    True
    """
    depth = check_int_at_least("depth", depth)
    channels = check_int_at_least("channels", channels)
    in_channels = check_int_at_least("in_channels", in_channels)
    kernel_size = check_int_at_least("kernel_size", kernel_size)
    if kernel_size % 2 == 0:  # padding kernel_size // 2 would grow the map by one per layer
        raise ValueError(f"kernel_size must be odd (the map keeps its size), got {kernel_size}")
    factory, cfg, layers = _start(activation, sparsity, num_classes, scale_input)
    c = in_channels
    for _ in range(depth):
        layers += [nn.Conv2d(c, channels, kernel_size, padding=kernel_size // 2), factory()]
        c = channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return _finish(unshared(*layers), cfg)


def hidden_layers(net: nn.Module) -> list[nn.Module]:
    """The Linear / Conv layers whose outputs feed an activation (pre-activations h^l)."""
    mods = list(net.modules())
    return [m for m in mods if isinstance(m, nn.Linear | nn.Conv2d)][:-1] or []


__all__ = ["mlp", "deep_cnn", "ScaleInput", "hidden_layers"]
