"""LeNet-300-100, LeNet-5 (Caffe sizes) and the small ResNet: shapes, sizes, activation factory."""

import pytest
import torch
from torch import nn

from shrinkage.models import lenet5, lenet_300_100, resnet_small
from shrinkage.thresholds import ShiftedReLU


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # small nets on a shared 2-core box: more threads only add contention
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _weights(model):
    return {n: p.shape for n, p in model.named_parameters() if n.endswith("weight")}


def test_lenet_300_100_layer_sizes():
    """Weights are 784x300, 300x100, 100x10 as in LeCun et al. / Han et al."""
    shapes = list(_weights(lenet_300_100()).values())
    assert shapes == [(300, 784), (100, 300), (10, 100)]
    assert sum(a * b for a, b in shapes) == 266_200


def test_lenet5_is_caffe_variant():
    """conv 20 (5x5), conv 50 (5x5), fc 500, fc 10: 430,500 weights; 28x28 in, 10 logits out."""
    m = lenet5()
    shapes = list(_weights(m).values())
    assert shapes == [(20, 1, 5, 5), (50, 20, 5, 5), (500, 800), (10, 500)]
    assert sum(torch.Size(s).numel() for s in shapes) == 430_500
    assert m(torch.randn(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("factory", [lenet_300_100, lenet5, resnet_small])
def test_activation_factory_is_used_everywhere(factory):
    """Every hidden activation is built by the factory; none of the default ReLUs remain."""
    m = factory(activation=lambda: ShiftedReLU(0.1))
    kinds = [type(x) for x in m.modules()]
    assert ShiftedReLU in kinds and nn.ReLU not in kinds
    n_hidden = {lenet_300_100: 2, lenet5: 3, resnet_small: 1 + 2 * 3}[factory]
    assert kinds.count(ShiftedReLU) == n_hidden
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_bad_activation_factory_names_the_problem():
    with pytest.raises(ValueError, match="activation"):
        lenet5(activation=lambda: 3)


def test_resnet_small_shapes_and_downsample():
    """Stride-2 stages halve 28 -> 14 -> 7; the 1x1 downsample convs exist only where needed."""
    m = resnet_small(widths=(8, 16, 32), blocks=2)
    sizes = []
    hooks = [
        b.register_forward_hook(lambda mod, i, o: sizes.append(o.shape[-1]))
        for b in m
        if b.__class__.__name__ == "BasicBlock"
    ]
    out = m(torch.randn(2, 1, 28, 28))
    for h in hooks:
        h.remove()
    assert out.shape == (2, 10)
    assert sizes == [28, 28, 14, 14, 7, 7]
    n_down = sum(1 for b in m if getattr(b, "downsample", None) is not None)
    assert n_down == 2


def test_resnet_learns_a_tiny_problem():
    """Loss falls on a fixed batch (gradients reach every layer)."""
    torch.manual_seed(0)
    m = resnet_small(widths=(4, 8), blocks=1)
    x, y = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    first = None
    for _ in range(40):
        loss = nn.functional.cross_entropy(m(x), y)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_resnet_bad_arguments():
    with pytest.raises(ValueError, match="widths"):
        resnet_small(widths=())
    with pytest.raises(ValueError, match="blocks"):
        resnet_small(blocks=0)


@pytest.mark.parametrize("factory", [lenet5, lenet_300_100, resnet_small])
@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_a_readout_size_that_is_not_a_positive_integer_is_named(factory, bad):
    """num_classes=0 built a network with an empty readout (and -3 or 2.5 failed inside
    torch with a message about tensor sizes)."""
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        factory(num_classes=bad)
    assert factory(num_classes=3)(torch.zeros(2, 1, 28, 28)).shape == (2, 3)


def test_resnet_input_channels_are_checked():
    with pytest.raises(ValueError, match="in_channels must be an integer >= 1"):
        resnet_small(in_channels=0)
    assert resnet_small(in_channels=3)(torch.zeros(1, 3, 28, 28)).shape == (1, 10)


@pytest.mark.parametrize("builder", ["lenet5", "lenet_300_100", "resnet_small"])
def test_an_activation_that_is_not_a_factory_is_named(builder):
    """A string failed with "'str' object is not callable", a module instance with
    "forward() missing 1 required positional argument"."""
    import shrinkage.models as M

    for bad in ("relu", torch.nn.ReLU()):
        with pytest.raises(ValueError, match="activation must be a factory"):
            getattr(M, builder)(activation=bad)


@pytest.mark.parametrize("widths", [(2.5,), 16, "16", (16, True)])
def test_resnet_widths_must_be_positive_integers(widths):
    from shrinkage.models import resnet_small

    with pytest.raises(ValueError, match="widths must be a non-empty sequence of positive ints"):
        resnet_small(widths=widths)


def test_one_activation_module_for_every_layer_is_refused():
    """A factory returning the same module each call tied every layer's activation (a
    learnable threshold learned once for all), silently; and mlp / deep_cnn let torch's
    "int is not a Module subclass" through for a factory returning something else."""
    from shrinkage.models import mlp

    shared = nn.PReLU()
    for build in (
        lenet5,
        lenet_300_100,
        lambda a: resnet_small(activation=a),
        lambda a: mlp(3, 8, a),
    ):
        with pytest.raises(ValueError, match="are one object: the activation factory"):
            build(lambda: shared)
    with pytest.raises(ValueError, match="returned int"):
        mlp(3, 8, lambda: 3)
