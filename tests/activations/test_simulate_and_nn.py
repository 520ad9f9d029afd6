"""Finite-width networks against the maps; init_ and ActivationSparsity on real modules."""

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from shrinkage.activations import (
    ActivationSparsity,
    EdgeOfChaosWarning,
    edge_of_chaos,
    finite_width,
    fluctuation_moments,
    init_,
    propagate,
    simulate,
    simulate_gain,
    width_for_depth,
    zero_fraction,
)
from shrinkage.activations.simulate import first_layer_rho
from shrinkage.thresholds import CST


def test_stable_config_follows_the_maps():
    """CST at s = 0.85 with a clipping level below the safe one: over 8 networks of width 400,
    the mean q^l stays within sampling error of q* = 1 for 30 layers, the fraction of zeros
    within sampling error of 0.85, and rho^l follows the correlation map."""
    cfg = edge_of_chaos("cst", 0.85, m=0.9)
    sim = simulate(cfg, depth=30, width=400, n_inputs=2, n_nets=8, seed=1, rho0=0.3)
    q = sim["q"].mean(axis=(0, 1))
    se = sim["q"].reshape(-1, 30).std(0) / math.sqrt(16) + 1e-3
    assert np.all(np.abs(q - 1.0) < 5 * se)
    sp = sim["sparsity"].mean(0)
    assert np.all(np.abs(sp - 0.85) < 0.03)
    th = propagate(
        "cst", 1.0, 30, cfg.sigma_w, cfg.sigma_b, cfg.tau, cfg.m, rho0=first_layer_rho(cfg, 0.3)
    )
    assert np.abs(np.nanmean(sim["rho"], 0) - th["rho"]).max() < 0.05


def test_unstable_config_blows_up():
    """Unclipped soft threshold at the edge of chaos (s = 0.85): the same finite-width
    experiment leaves q* for good, the variance passes 1e4 and sparsity collapses, while the
    GP map alone would stay at q* (its fixed point is only half-stable)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EdgeOfChaosWarning)
        cfg = edge_of_chaos("soft_threshold", 0.85)
    sim = simulate(cfg, depth=60, width=300, n_inputs=1, n_nets=2, seed=0)
    th = propagate("soft_threshold", 1.0, 60, cfg.sigma_w, cfg.sigma_b, cfg.tau)
    assert np.allclose(th["q"], 1.0, rtol=1e-9)
    assert np.all(sim["q"][:, 0, -1] > 1e4)
    assert np.all(sim["sparsity"][:, -1] < 0.5)


def test_simulate_sparsity_matches_zero_fraction_at_measured_q():
    """Per layer, the measured fraction of zeros matches zero_fraction at the measured q^l
    (binomial error over width x inputs units)."""
    cfg = edge_of_chaos("crelu", 0.7, m=1.0)
    sim = simulate(cfg, depth=10, width=1000, n_inputs=4, n_nets=1, seed=2)
    q = sim["q"][0].mean(0)
    pred = zero_fraction("crelu", q, tau=cfg.tau, m=cfg.m)
    assert np.abs(sim["sparsity"][0] - pred).max() < 0.03


def test_init_sets_the_variances():
    """init_ draws weights N(0, sigma_w^2 / fan_in) (Linear and Conv) and biases N(0, sigma_b^2)."""
    cfg = edge_of_chaos("cst", 0.85)
    torch.manual_seed(0)
    net = init_(nn.Sequential(nn.Linear(400, 500), nn.Conv2d(8, 300, 5)), cfg)
    lin, conv = net[0], net[1]
    assert lin.weight.std().item() == pytest.approx(cfg.sigma_w / math.sqrt(400), rel=0.02)
    assert conv.weight.std().item() == pytest.approx(cfg.sigma_w / math.sqrt(200), rel=0.03)
    both = torch.cat([lin.bias, conv.bias])
    assert both.std().item() == pytest.approx(cfg.sigma_b, rel=0.1)


def test_activation_sparsity_counts_exact_zeros_per_layer():
    """The hooks report, per activation layer in forward order, zeros / entries over every
    batch seen; they detach on exit; reset clears the counts."""
    net = nn.Sequential(nn.Linear(3, 4), CST(tau=0.5, m=1.0), nn.Linear(4, 4), nn.ReLU())
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(4, 3))
        net[0].bias.zero_()
        net[2].weight.copy_(-torch.eye(4))
        net[2].bias.zero_()
    x = torch.tensor([[0.1, 2.0, -3.0], [1.0, 0.2, 0.0]])
    with ActivationSparsity(net) as sp:
        net(x)
        net(x[:1])
    # layer 1: CST of [x, 0]: row0 [0, 1, -1, 0] (2 zeros), row1 [0.5, 0, 0, 0] (3), row0 (2)
    assert sp.per_layer[0] == pytest.approx(7 / 12)
    # layer 2: relu(-cst): row0 [0, -1, 1, 0] -> relu zeros 3; row1 [-.5,0,0,0] -> 4; row0 again 3
    assert sp.per_layer[1] == pytest.approx(10 / 12)
    assert sp.mean == pytest.approx(0.5 * (7 / 12 + 10 / 12))
    net(x)
    assert sp.per_layer[0] == pytest.approx(7 / 12)  # hooks removed
    assert math.isnan(sp.reset().per_layer[0])


def test_bad_simulation_arguments():
    cfg = edge_of_chaos("crelu", 0.7)
    for kw in ({"depth": 0, "width": 10}, {"depth": 3, "width": 0}):
        with pytest.raises(ValueError, match="depth|width"):
            simulate(cfg, **kw)
    with pytest.raises(ValueError, match="no activation layers"):
        ActivationSparsity(nn.Linear(2, 2))


@pytest.mark.parametrize(
    "call",
    [
        lambda c: simulate(c, 3, 10),
        lambda c: simulate_gain(c, 3, 10),
        lambda c: finite_width(c, 300, 10),
        lambda c: width_for_depth(c, 10),
        lambda c: fluctuation_moments(c),
        lambda c: init_(nn.Linear(3, 3), c),
    ],
)
def test_functions_of_a_config_refuse_the_activation_name(call):
    """Passing "crelu" where edge_of_chaos("crelu", ...) belongs was an AttributeError from
    deep inside; now a TypeError that names cfg and says where a config comes from."""
    with pytest.raises(TypeError, match=r"cfg must be an edge-of-chaos config.*'crelu'"):
        call("crelu")
    call(edge_of_chaos("crelu", 0.85))  # the config itself is taken


def test_init_and_moments_check_their_other_arguments():
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        init_("net", edge_of_chaos("relu"))
    for q in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="q must be > 0"):
            fluctuation_moments(edge_of_chaos("relu"), q)


def test_init_zeroes_the_readout_bias_and_checks_it_belongs():
    cfg = edge_of_chaos("crelu", 0.85)
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 3))
    init_(net, cfg, readout=net[1])
    assert torch.count_nonzero(net[1].bias) == 0 and torch.count_nonzero(net[0].bias) == 8
    with pytest.raises(ValueError, match="not a submodule"):
        init_(net, cfg, readout=torch.nn.Linear(8, 3))


# -- found by probing (docs/reliability.md) ---------------------------------------------
def test_the_inspection_tools_name_their_bad_arguments():
    """unit_census(batch=0) raised range()'s error and batch=-1 / empty x a
    ZeroDivisionError; ActivationSparsity(layers=[a module not in the model]) returned
    [nan] silently, layers="1" an AttributeError; simulate_gain(chunk=0), simulate with an
    integer dtype failed inside torch."""
    from torch import nn

    from shrinkage.activations import ActivationSparsity, simulate, simulate_gain, unit_census
    from shrinkage.thresholds import CReLU

    net = nn.Sequential(nn.Linear(4, 8), CReLU(tau=0.5, m=1.0))
    x = torch.randn(6, 4)
    for batch in (0, -1, 2.5):
        with pytest.raises(ValueError, match="batch"):
            unit_census(net, x, batch=batch)
    with pytest.raises(ValueError, match="non-empty tensor"):
        unit_census(net, x[:0])
    for layers in ([nn.ReLU()], "1", net[1]):
        with pytest.raises(ValueError, match="layers must be"):
            ActivationSparsity(net, layers=layers)
    assert ActivationSparsity(net, layers=[net[1]]).layers == [net[1]]
    cfg = edge_of_chaos("relu")
    with pytest.raises(ValueError, match="chunk"):
        simulate_gain(cfg, 3, 10, chunk=0)
    with pytest.raises(ValueError, match="dtype must be a floating-point"):
        simulate(cfg, 3, 10, n_nets=2, dtype=torch.int64)


def test_text_is_not_a_variance_nor_a_weight_scale():
    from shrinkage.activations import variance_map, zero_fraction

    with pytest.raises(ValueError, match="q must be a number"):
        zero_fraction("relu", "1")
    with pytest.raises(ValueError, match="sigma_w must be a number"):
        variance_map("relu", 1.0, "1.4", 0.0)
