"""A small ResNet for 28x28 inputs (MNIST-sized), pre-activation free, BasicBlocks.

Stem conv 3x3 (``widths[0]``) -> one stage per width, each ``blocks`` BasicBlocks, the first
block of every later stage with stride 2 and a 1x1 downsample conv -> global average pool
-> linear. Default widths (16, 32, 64) and 1 block per stage: 8 weight layers, 78k weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from torch import nn

from .._checks import check_int_at_least
from ._docs import fill_doc
from .lenet import _act, unshared

__all__ = ["resnet_small", "BasicBlock"]


class BasicBlock(nn.Module):
    """conv3x3-BN-act-conv3x3-BN plus identity (or 1x1 conv-BN) shortcut, then act.

    He et al., "Deep residual learning for image recognition", CVPR 2016.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, activation=None):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = _act(activation)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act2 = _act(activation)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.downsample is None else self.downsample(x)
        return self.act2(out + short)


@fill_doc
def resnet_small(
    widths: Sequence[int] = (16, 32, 64),
    blocks: int = 1,
    in_channels: int = 1,
    num_classes: int = 10,
    activation: Callable[[], nn.Module] | None = None,
) -> nn.Sequential:
    """Small ResNet for (N, in_channels, 28, 28) inputs.

    Stem conv 3x3 to ``widths[0]`` channels, BatchNorm, activation; then one stage per
    width, each ``blocks`` BasicBlocks (conv3x3-BN-act-conv3x3-BN plus shortcut, then act;
    He et al., CVPR 2016), the first block of every later stage with stride 2 and a 1x1
    conv-BN shortcut; global average pool; Linear readout.

    Parameters
    ----------
    widths : sequence of int, optional
        Channels of each stage (one stage per entry), each >= 1. Default (16, 32, 64).
    blocks : int, optional
        BasicBlocks per stage, >= 1. Default 1.
    in_channels : int, optional
        Channels of the input images. Default 1.
    %(num_classes)s
    activation : callable or None, optional
        Zero-argument factory returning an ``nn.Module``, called for every activation
        (each gets its own module). Default None, meaning ``nn.ReLU``.

    Returns
    -------
    torch.nn.Sequential
        The network, mapping (N, ``in_channels``, H, W) inputs to (N, ``num_classes``)
        logits (any H, W the strides allow; sized for 28 x 28).

    Raises
    ------
    ValueError
        If ``widths`` is empty or has an entry < 1, ``blocks``, ``in_channels`` or
        ``num_classes`` is not an integer >= 1, or ``activation`` returns something that is
        not an ``nn.Module``.

    Examples
    --------
    >>> import torch
    >>> resnet_small()(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])

    Two blocks per stage: the stem, two convs per block and the two stride-2 shortcuts:

    >>> net = resnet_small(widths=(8, 16, 32), blocks=2)
    >>> sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    15
    """
    if (
        isinstance(widths, str)
        or not hasattr(widths, "__len__")
        or len(widths) < 1
        or any(isinstance(w, bool) or not isinstance(w, int | np.integer) or w < 1 for w in widths)
    ):
        raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths!r}")
    widths = [int(w) for w in widths]
    if not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"blocks must be an integer >= 1, got blocks={blocks!r}")
    in_channels = check_int_at_least("in_channels", in_channels)
    num_classes = check_int_at_least("num_classes", num_classes)
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
        nn.BatchNorm2d(widths[0]),
        _act(activation),
    ]
    c = widths[0]
    for i, w in enumerate(widths):
        for b in range(blocks):
            stride = 2 if (i > 0 and b == 0) else 1
            layers.append(BasicBlock(c, w, stride, activation))
            c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return unshared(*layers)
