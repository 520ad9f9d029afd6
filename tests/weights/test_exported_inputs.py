"""Exported modules and ``export`` on inputs outside the usual: a NaN through the fused
activations, inputs of another dtype, a bias that is a strided view, example inputs that are
tuples, token ids, empty or not finite."""

import pytest
import torch
from torch import nn

from shrinkage.thresholds import CST, CReLU, ShiftedReLU, SoftThreshold
from shrinkage.weights import SparseConv2d, SparseLinear, export
from shrinkage.weights import _act_chain as ac
from shrinkage.weights._act_chain import ACT_KERNELS, ActivationChain

needs_c = pytest.mark.skipif(not ac.available(), reason="no C compiler")

_ACTS = [nn.ReLU, lambda: ShiftedReLU(0.3), lambda: SoftThreshold(0.2)]
_ACTS += [lambda: CReLU(0.4, 0.9), lambda: CST(0.3, 0.7)]


def _sparse_net(g, width=256, keep=0.02):
    net = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 4))
    with torch.no_grad():
        net[0].weight.mul_(torch.rand(net[0].weight.shape, generator=g) < keep)
    return net


@needs_c
@pytest.mark.parametrize("kernel", ACT_KERNELS)
@pytest.mark.parametrize("make_act", _ACTS)
def test_a_nan_passes_through_every_fused_activation(kernel, make_act):
    """The compiled chain gives NaN where the dense model does (full-density weights: each
    input reaches every output), not a finite number (a comparison read NaN as 0)."""
    g = torch.Generator().manual_seed(0)
    l1, l2 = nn.Linear(5, 4), nn.Linear(4, 3)
    act = make_act()
    chain = ActivationChain.from_layers(
        [l1, l2], [act, None], [kernel, kernel], ["0", "2"], ["1", None]
    )
    x = torch.randn(3, 5, generator=g)
    x[0, 1] = float("nan")
    x[2, 4] = float("-inf")
    with torch.no_grad():
        got, ref = chain(x), l2(act(l1(x)))
    assert torch.equal(torch.isnan(got), torch.isnan(ref))
    assert torch.isnan(got[0]).all()
    torch.testing.assert_close(got[1], ref[1])


def test_exported_modules_refuse_another_dtype_by_name():
    g = torch.Generator().manual_seed(1)
    lin = nn.Linear(6, 5)
    conv = nn.Conv2d(2, 3, 3)
    chain = ActivationChain.from_layers([lin], [nn.ReLU()], ["act_dense"], ["0"], ["1"])
    mods = [(SparseLinear.from_linear(lin, "torch_csr"), torch.randn(2, 6, generator=g))]
    mods.append((SparseConv2d.from_conv(conv, "torch_csr"), torch.randn(1, 2, 5, 5, generator=g)))
    mods.append((chain, torch.randn(2, 6, generator=g)))
    for mod, x in mods:
        with torch.no_grad():
            torch.testing.assert_close(mod(x), mod(x.clone()))  # its own dtype works
            for bad in (x.double(), x.half(), x.long(), x > 0):
                with pytest.raises(TypeError, match=f"{bad.dtype}.*{x.dtype}"):
                    mod(bad)  # the int64 input once came back truncated to 0, silently


def test_a_strided_bias_is_refused_before_the_kernel_reads_it():
    sl = SparseLinear.from_linear(nn.Linear(4, 3), "torch_csr")
    sl.bias = torch.randn(6)[::2]
    with pytest.raises(ValueError, match="contiguous"):
        sl(torch.randn(2, 4))


def test_export_times_tuples_and_token_ids_on_the_example_rows():
    g = torch.Generator().manual_seed(2)
    net = _sparse_net(g)
    x = torch.randn(3, 256, generator=g)
    out = export(net, example_input=(x,), rounds=1)  # a tuple is unpacked into the call
    with torch.no_grad():
        torch.testing.assert_close(out(x), net(x), rtol=1e-5, atol=1e-5)
    emb = nn.Sequential(nn.Embedding(50, 128), nn.Flatten(), *_sparse_net(g, 256))
    ids = torch.randint(0, 50, (3, 2), generator=g)
    out = export(emb, example_input=ids, rounds=1)  # random normal ids once crashed
    with torch.no_grad():
        torch.testing.assert_close(out(ids), emb(ids), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activations", [False, True])
def test_export_names_an_example_it_cannot_time_on(activations):
    g = torch.Generator().manual_seed(3)
    net = _sparse_net(g, 64)
    with pytest.raises(ValueError, match=r"example_input.*at least one row"):
        export(net, example_input=torch.randn(0, 64), rounds=1, activations=activations)
    bad = torch.randn(2, 64, generator=g)
    bad[1, 3] = float("nan")
    with pytest.raises(ValueError, match="example_input.*NaN or inf"):
        export(net, example_input=bad, rounds=1, activations=activations)


def test_export_activations_takes_a_one_tuple_and_names_a_longer_one():
    g = torch.Generator().manual_seed(4)
    net = _sparse_net(g, 64)
    x = torch.relu(torch.randn(4, 64, generator=g))
    out = export(net, example_input=(x,), rounds=1, activations=True)
    with torch.no_grad():
        torch.testing.assert_close(out(x), net(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="example_input"):  # the model takes one input
        export(net, example_input=(x, x), rounds=1, activations=True)

    class TwoInputs(nn.Sequential):
        def forward(self, a, b):
            return super().forward(a + b)

    two = TwoInputs(*_sparse_net(g, 64))
    with pytest.raises(ValueError, match="needs example_input as one tensor"):
        export(two, example_input=(x, x), rounds=1, activations=True)
