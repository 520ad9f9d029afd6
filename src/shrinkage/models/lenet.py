"""LeNet-300-100 and LeNet-5 (Caffe layer sizes) for 28x28 MNIST digits.

Both take an ``activation`` factory (any zero-argument callable returning an ``nn.Module``,
``nn.ReLU`` by default) so the same nets can be built with sparse activations
(e.g. ``lambda: shrinkage.thresholds.ShiftedReLU(0.1)``).

LeNet-300-100: 784 -> 300 -> 100 -> 10 (266,200 weights; LeCun et al. 1998, Han et al. 2015).
LeNet-5, Caffe variant: conv 5x5 20 -> pool -> conv 5x5 50 -> pool -> fc 500 -> fc 10
(430,500 weights, 2.29 M multiply-accumulates per image).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .._checks import check_int_at_least
from ._docs import fill_doc

__all__ = ["lenet_300_100", "lenet5"]


def _act(activation: Callable[[], nn.Module] | None) -> nn.Module:
    if isinstance(activation, nn.Module) or (activation is not None and not callable(activation)):
        raise ValueError(
            "activation must be a factory returning a new nn.Module per layer (e.g. nn.ReLU "
            f"or lambda: CReLU(0.5, 1.0)), got {activation!r:.60}"
        )
    module = (activation or nn.ReLU)()
    if not isinstance(module, nn.Module):
        raise ValueError(
            f"activation must be a factory returning an nn.Module (e.g. nn.ReLU), "
            f"it returned {type(module).__name__}"
        )
    return module


def unshared(*layers: nn.Module) -> nn.Sequential:
    """``nn.Sequential(*layers)``, refused when one module sits in two places: an activation
    factory that returns the same module each call would tie every layer's activation (a
    learnable threshold learned once for all), where each layer is meant to get its own."""
    net = nn.Sequential(*layers)
    where: dict[int, str] = {}
    for name, mod in net.named_modules(remove_duplicate=False):
        if id(mod) in where:
            raise ValueError(
                f"modules {where[id(mod)]!r} and {name!r} are one object: the activation "
                "factory must return a new module per call (e.g. lambda: CReLU(0.5, 1.0))"
            )
        where[id(mod)] = name
    return net


@fill_doc
def lenet_300_100(
    activation: Callable[[], nn.Module] | None = None, num_classes: int = 10
) -> nn.Sequential:
    """Fully connected LeNet-300-100 for (N, 1, 28, 28) inputs.

    Flatten, then Linear 784 -> 300, activation, Linear 300 -> 100, activation, Linear
    100 -> ``num_classes``: 266,200 weights for 10 classes (LeCun et al. 1998; the pruning
    benchmark of Han et al. 2015). PyTorch's default initialisation. Flat (N, 784) inputs work
    too.

    %(mnist_net_sections)s

    Examples
    --------
    Images and flat vectors give the same logits:

    >>> import torch
    >>> x = torch.rand(2, 1, 28, 28)
    >>> net = lenet_300_100()
    >>> torch.equal(net(x), net(x.reshape(2, 784)))
    True
    >>> sum(m.weight.numel() for m in net if isinstance(m, torch.nn.Linear))
    266200
    """
    num_classes = check_int_at_least("num_classes", num_classes)
    return unshared(
        nn.Flatten(),
        nn.Linear(784, 300),
        _act(activation),
        nn.Linear(300, 100),
        _act(activation),
        nn.Linear(100, num_classes),
    )


@fill_doc
def lenet5(
    activation: Callable[[], nn.Module] | None = None, num_classes: int = 10
) -> nn.Sequential:
    """LeNet-5 with Caffe's layer sizes (conv 20, conv 50, fc 500, fc 10) for 28x28 inputs.

    conv 5x5 20 -> max-pool 2 -> activation -> conv 5x5 50 -> max-pool 2 -> activation ->
    fc 800 -> 500 -> activation -> fc 500 -> ``num_classes``: 430,500 weights and 2.29 M
    multiply-accumulates per image for 10 classes. Caffe puts a ReLU only after fc 500; here
    every hidden layer gets ``activation`` after its pooling, so that activations can be
    studied in every layer. PyTorch's default initialisation.

    %(mnist_net_sections)s

    Examples
    --------
    >>> import torch
    >>> lenet5()(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])

    With a sparse activation, one module per hidden layer:

    >>> from shrinkage.thresholds import ShiftedReLU
    >>> net = lenet5(lambda: ShiftedReLU(0.1))
    >>> sum(isinstance(m, ShiftedReLU) for m in net)
    3
    """
    num_classes = check_int_at_least("num_classes", num_classes)
    return unshared(
        nn.Conv2d(1, 20, 5),
        nn.MaxPool2d(2),
        _act(activation),
        nn.Conv2d(20, 50, 5),
        nn.MaxPool2d(2),
        _act(activation),
        nn.Flatten(),
        nn.Linear(800, 500),
        _act(activation),
        nn.Linear(500, num_classes),
    )
