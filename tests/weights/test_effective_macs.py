"""Effective MACs with zero weights and zero activations skipped, against explicit loops."""

import math

import pytest
import torch
from torch import nn

from shrinkage.weights import flops
from shrinkage.weights.effective import effective_macs, format_effective_macs


def _sparsify(module, frac, gen):
    with torch.no_grad():
        module.weight[torch.rand(module.weight.shape, generator=gen) < frac] = 0.0


def test_linear_counts_match_loop():
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3))
    _sparsify(net[0], 0.5, gen)
    _sparsify(net[2], 0.3, gen)
    x = torch.randn(6, 7, generator=gen)
    x[x.abs() < 0.5] = 0.0
    res = effective_macs(net, x)
    # explicit loop over samples, outputs and inputs
    both = 0
    a = x
    for lin in (net[0], net[2]):
        W = lin.weight
        for s in range(a.shape[0]):
            for i in range(W.shape[0]):
                for j in range(W.shape[1]):
                    both += int(W[i, j] != 0 and a[s, j] != 0)
        a = torch.relu(lin(a))
    assert res["total"]["both"] == pytest.approx(both / 6)
    assert res["total"]["dense"] == 7 * 5 + 5 * 3
    l0 = res["layers"]["0"]
    assert l0["weight_sparse"] == pytest.approx(float((net[0].weight != 0).sum()))
    assert l0["input_density"] == pytest.approx(float((x != 0).float().mean()))
    assert "total" in format_effective_macs(res)


def test_conv_counts_match_loop():
    gen = torch.Generator().manual_seed(1)
    conv = nn.Conv2d(2, 3, 3, padding=1, stride=2)
    _sparsify(conv, 0.6, gen)
    x = torch.relu(torch.randn(2, 2, 6, 5, generator=gen))
    res = effective_macs(conv, x)
    xp = torch.nn.functional.pad(x, (1, 1, 1, 1))
    H = (6 + 2 - 3) // 2 + 1
    W = (5 + 2 - 3) // 2 + 1
    both = dense = 0
    for s in range(2):
        for o in range(3):
            for yy in range(H):
                for xx in range(W):
                    for c in range(2):
                        for ky in range(3):
                            for kx in range(3):
                                dense += 1
                                a = xp[s, c, 2 * yy + ky, 2 * xx + kx]
                                both += int(conv.weight[o, c, ky, kx] != 0 and a != 0)
    assert res["total"]["dense"] == pytest.approx(dense / 2)
    assert res["total"]["both"] == pytest.approx(both / 2)
    assert res["total"]["weight_sparse"] == pytest.approx(H * W * float((conv.weight != 0).sum()))


def test_batches_and_errors():
    net = nn.Sequential(nn.Linear(4, 2))
    batches = [(torch.randn(3, 4), None), (torch.randn(5, 4), None)]
    assert effective_macs(net, batches)["n_samples"] == 8
    assert effective_macs(net, batches, max_batches=1)["n_samples"] == 3
    with pytest.raises(ValueError, match="no Linear or Conv"):
        effective_macs(nn.ReLU(), torch.randn(2, 2))


def test_a_batch_that_is_not_a_tensor_is_named():
    """An input shape where a batch belongs ((3, 9): two 'batches', 3 and 9) met torch's
    AttributeError inside the hook; now a TypeError that says what inputs may be."""
    net = nn.Sequential(nn.Linear(9, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(TypeError, match="inputs must be a tensor batch.*batch 0 is int 3"):
        effective_macs(net, (3, 9))
    loader = [(torch.randn(2, 9), torch.zeros(2)), ("x", None)]
    with pytest.raises(TypeError, match="batch 1 is str"):
        effective_macs(net, loader)


def test_an_unbatched_input_and_a_bad_max_batches_are_named():
    """(4,) was counted as 4 samples of one feature (4.5 dense MACs instead of 18); a layer
    the inputs never reach no longer breaks the table (its ratios are NaN)."""
    import math

    import torch
    from torch import nn

    from shrinkage.weights import effective_macs, format_effective_macs

    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    for x in (torch.randn(4), torch.tensor(1.0)):
        with pytest.raises(ValueError, match="needs a batch dimension first"):
            effective_macs(net, x)
    assert effective_macs(net, torch.randn(1, 4))["total"]["dense"] == 18.0
    for bad in (0, -1, "1", 0.5):
        with pytest.raises(ValueError, match="max_batches must be an integer >= 1"):
            effective_macs(net, torch.randn(2, 4), max_batches=bad)

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 2), nn.Linear(3, 3)

        def forward(self, x):
            return self.a(x)

    res = effective_macs(Unused(), torch.randn(2, 4))
    assert math.isnan(res["layers"]["b"]["both_ratio"]) and res["total"]["both_ratio"] == 1.0
    assert format_effective_macs(res).splitlines()[2].split()[-1] == "nan"


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_convolutions_count_the_padding_their_mode_makes(mode):
    """reflect / replicate / circular padding copies inputs: the counts once dropped it (a
    3x3 conv on 5x5 counted 81 dense MACs, not 225). Brute force: pad as the layer does and
    count the non-zero inputs under every output position."""
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 1, 3, padding=1, padding_mode=mode, bias=False)
    x = torch.randn(1, 1, 5, 5)
    x[0, 0, 0, :] = 0
    x[0, 0, :, 3] = 0
    r = effective_macs(nn.Sequential(conv), x)["total"]
    xp = nn.functional.pad(x, (1, 1, 1, 1), mode="constant" if mode == "zeros" else mode)
    brute = sum(
        int((xp[0, 0, i : i + 3, j : j + 3] != 0).sum()) for i in range(5) for j in range(5)
    )
    assert r["dense"] == 225 == flops(conv, (1, 1, 5, 5)).dense_macs
    assert r["activation_sparse"] == brute


def test_no_layer_reached_gives_nan_ratios_and_flops_refuses_fractional_sizes():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return x  # the Linear never runs

    r = effective_macs(Skip(), torch.ones(2, 3))["total"]
    assert r["dense"] == 0 and math.isnan(r["both_ratio"])  # a ZeroDivisionError before
    with pytest.raises(ValueError, match="input_shape must be positive ints"):
        flops(nn.Linear(3, 2), (2.7, 3))  # counted as (2, 3) before


def test_exported_models_are_refused_with_the_way_to_count_them():
    """flops and effective_macs counted nothing of an exported model's sparse layers (17,120
    MACs became 128); they now name the layer and point to densify, which counts alike."""
    from shrinkage.weights import densify, export, flops

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    with torch.no_grad():
        net[0].weight.mul_(torch.rand_like(net[0].weight) > 0.9)
    fast = export(net, min_sparsity=0.5, candidates="torch_csr")
    with pytest.raises(ValueError, match="layer '0' is an exported SparseLinear: count densify"):
        flops(fast, (1, 16))
    with pytest.raises(ValueError, match="effective_macs counts dense-format"):
        effective_macs(fast, torch.randn(4, 16))
    assert flops(densify(fast), (1, 16)).sparse_macs == flops(net, (1, 16)).sparse_macs


def test_each_module_keeps_its_own_mode():
    """The model runs in eval mode and every module gets its own mode back (train(mode)
    of the whole model set a frozen BatchNorm back to training before)."""
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    net[1].eval()
    effective_macs(net, torch.randn(8, 4))
    assert net.training and net[0].training and not net[1].training
