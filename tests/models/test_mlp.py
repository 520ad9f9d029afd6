"""Deep MLP / CNN built from an edge-of-chaos config."""

import math
import warnings

import pytest
import torch
from torch import nn

from shrinkage.activations import ActivationSparsity, edge_of_chaos
from shrinkage.models import deep_cnn, mlp
from shrinkage.models.mlp import ScaleInput, hidden_layers
from shrinkage.thresholds import CST, CReLU


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_mlp_structure_and_init():
    """depth activation modules of the config's kind (one instance per layer), readout to 10
    classes, weights N(0, sigma_w^2/fan_in), zero readout bias."""
    cfg = edge_of_chaos("cst", 0.85)
    torch.manual_seed(0)
    net = mlp(6, 300, cfg)
    acts = [m for m in net.modules() if isinstance(m, CST)]
    assert len(acts) == 6 and len({id(a) for a in acts}) == 6
    assert all(a.m == cfg.m and float(a.tau) == pytest.approx(cfg.tau) for a in acts)
    lin = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(lin) == 7 and lin[-1].out_features == 10
    assert lin[2].weight.std().item() == pytest.approx(cfg.sigma_w / math.sqrt(300), rel=0.02)
    assert torch.all(lin[-1].bias == 0)
    assert net(torch.rand(5, 1, 28, 28)).shape == (5, 10)


def test_first_layer_sits_at_q_star():
    """ScaleInput makes the first pre-activation variance q* for any input scale: the mean
    square of h^1 over 2000 units and 64 inputs is q* within 5 %, and its fraction of zeros
    is the target (MNIST-like nonnegative inputs, scaled by 1 and by 50)."""
    cfg = edge_of_chaos("crelu", 0.85, q_star=2.0)
    torch.manual_seed(0)
    net = mlp(1, 2000, cfg)
    x = torch.rand(64, 1, 28, 28) ** 4
    for scale in (1.0, 50.0):
        h = net[2](net[1](net[0](x * scale)))
        assert h.pow(2).mean().item() == pytest.approx(2.0, rel=0.05)
        with ActivationSparsity(net) as sp:
            net(x * scale)
        assert sp.per_layer[0] == pytest.approx(0.85, abs=0.02)


def test_scale_input_per_sample():
    s = ScaleInput(0.25)
    x = torch.randn(3, 7) * torch.tensor([[1.0], [10.0], [0.1]])
    assert torch.allclose(s(x).pow(2).mean(1), torch.full((3,), 0.25))


def test_deep_cnn_and_module_factories():
    """deep_cnn maps 28x28 inputs to logits with depth conv activations; plain factories
    (nn.ReLU) give an uninitialised-by-us network without input scaling."""
    cfg = edge_of_chaos("crelu", 0.7)
    net = deep_cnn(4, 8, cfg)
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert sum(isinstance(m, CReLU) for m in net.modules()) == 4
    assert len(hidden_layers(net)) == 4
    plain = mlp(3, 16, nn.ReLU)
    assert not any(isinstance(m, ScaleInput) for m in plain.modules())
    assert sum(isinstance(m, nn.ReLU) for m in plain.modules()) == 3
    named = mlp(2, 8, edge_of_chaos("cst", sparsity=0.7))
    assert sum(isinstance(m, CST) for m in named.modules()) == 2


def test_relu_by_name_is_relu_at_its_edge_of_chaos():
    torch.manual_seed(0)
    a = mlp(3, 16)
    torch.manual_seed(0)
    b = mlp(3, 16, edge_of_chaos("relu"))
    x = torch.rand(5, 784)
    assert torch.equal(a(x), b(x))


def test_other_names_point_to_edge_of_chaos():
    with pytest.raises(ValueError, match="edge_of_chaos"):
        mlp(2, 8, "shifted_relu", sparsity=0.85)


def test_bad_inputs():
    cfg = edge_of_chaos("relu")
    for kw in ({"depth": 0, "width": 4}, {"depth": 2, "width": 0}):
        with pytest.raises(ValueError, match="depth|width"):
            mlp(activation=cfg, **kw)
    with pytest.raises(ValueError, match="channels"):
        deep_cnn(2, 0, cfg)
    with pytest.raises(ValueError, match="module instance"):
        mlp(2, 4, nn.ReLU())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mlp(2, 4, cfg)  # a stable config does not warn


def test_sparsity_with_a_config_or_a_factory_is_refused_not_dropped():
    cfg = edge_of_chaos("crelu", 0.85)
    for act in (cfg, torch.nn.ReLU):
        with pytest.raises(ValueError, match="sparsity=0.9"):
            mlp(3, 8, act, sparsity=0.9)
        with pytest.raises(ValueError, match="sparsity=0.9"):
            deep_cnn(3, 4, act, sparsity=0.9)


def test_an_even_kernel_and_a_scale_input_that_is_not_a_bool_are_refused():
    """kernel_size 2 grew the feature map by one per layer; scale_input="no" was truthy."""
    from shrinkage.models import deep_cnn, mlp

    with pytest.raises(ValueError, match="kernel_size must be odd"):
        deep_cnn(2, 4, "relu", kernel_size=2)
    with pytest.raises(ValueError, match="scale_input must be True or False"):
        mlp(2, 8, "relu", scale_input="no")
