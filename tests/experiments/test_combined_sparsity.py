"""Sparse weights and sparse activations in one network: `train_run(activation=...)`."""

import pytest
import torch

from shrinkage.activations import safe_clip
from shrinkage.experiments.weights import TrainConfig, build_model, parse_activation, train_run
from shrinkage.thresholds import CST


def _tiny_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = (x.flatten(1)[:, :392].mean(1) > x.flatten(1)[:, 392:].mean(1)).long()
    return x[:192], y[:192], x[192:], y[192:]


def test_parse_activation_uses_a_fraction_of_the_safe_clip():
    cfg = parse_activation("cst:0.85", m_scale=0.7)
    assert cfg.activation == "clipped_soft_threshold" and cfg.sparsity == 0.85
    assert cfg.m == pytest.approx(0.7 * safe_clip("cst", 0.85), rel=1e-9)
    assert parse_activation("relu") is None and parse_activation(None) is None


@pytest.mark.parametrize(
    "spec,match",
    [
        ("cst", "NAME:SPARSITY"),
        ("cst:abc", "not a number"),
        ("cst:1.5", "sparsity"),
        ("foo:0.5", "foo"),
    ],
)
def test_bad_activation_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(activation=spec).check()


def test_lenet_with_eoc_activation_is_built_and_initialised():
    cfg = parse_activation("cst:0.85")
    torch.manual_seed(0)
    net = build_model("lenet_300_100", cfg)
    acts = [m for m in net.modules() if isinstance(m, CST)]
    assert len(acts) == 2 and all(float(a.tau) == pytest.approx(cfg.tau) for a in acts)
    w = [m.weight.detach() for m in net.modules() if isinstance(m, torch.nn.Linear)][1]
    # weights N(0, sigma_w^2 / fan_in): the sample std matches within sampling error
    assert float(w.std() * w.shape[1] ** 0.5) == pytest.approx(cfg.sigma_w, rel=0.03)
    # inputs are scaled so the first layer starts near q*: about `sparsity` zeros there
    with torch.no_grad():
        h = net[1][2](net[1][1](net[1][0](net[0](torch.rand(512, 1, 28, 28)))))
    assert float((h == 0).float().mean()) == pytest.approx(0.85, abs=0.05)


@pytest.mark.slow
def test_train_run_counts_macs_with_both_kinds_of_zeros():
    res = train_run(
        TrainConfig(
            model="lenet_300_100",
            method="st3",
            sparsity=0.9,
            epochs=1,
            activation="crelu:0.85",
            progress=False,
            batch_size=64,
        ),
        data=_tiny_data(),
    )
    eff = res["effective_macs"]["total"]
    assert res["activation"]["name"] == "clipped_relu"
    assert eff["weight_sparse"] == pytest.approx(res["sparse_macs"], rel=1e-6)
    # skipping zero activations as well can only remove more work
    assert eff["both"] <= min(eff["weight_sparse"], eff["activation_sparse"])
    hidden = list(res["effective_macs"]["layers"].values())[1:]  # inputs of layers 2 and 3
    for ly in hidden:
        assert ly["input_density"] < 0.5  # hidden activations are mostly exact zeros
        assert ly["both"] < 0.5 * ly["weight_sparse"]
