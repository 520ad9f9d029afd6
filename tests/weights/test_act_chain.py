"""Activation-and-weight-sparse inference (issue 12, part 1): every kernel against the dense
model, the export that chooses them, and the state that restores them."""

import copy
import io
import pickle

import pytest
import torch
from torch import nn

from shrinkage.thresholds import CST, CReLU, ShiftedReLU, SoftThreshold
from shrinkage.weights import SparseLinear, densify, export, load_exported
from shrinkage.weights import _act_chain as ac
from shrinkage.weights._act_chain import ACT_KERNELS, ActivationChain
from shrinkage.weights._act_export import find_runs
from shrinkage.weights._export import kernel_summary

needs_c = pytest.mark.skipif(not ac.available(), reason="no C compiler")

_ACTS = {
    "relu": lambda: nn.ReLU(),
    "shifted_relu": lambda: ShiftedReLU(0.3),
    "soft_threshold": lambda: SoftThreshold(0.2),
    "crelu": lambda: CReLU(0.4, 0.9),
    "cst": lambda: CST(0.3, 0.7),
    "none": lambda: None,
}


def _layers(dims, density, g, dtype, empty=True):
    lins = []
    for i in range(len(dims) - 1):
        lin = nn.Linear(dims[i], dims[i + 1], bias=i % 2 == 0).to(dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g, dtype=dtype))
            lin.weight.mul_(torch.rand(lin.weight.shape, generator=g) < density)
            if empty and dims[i + 1] > 2 and dims[i] > 2:
                lin.weight[1] = 0  # an empty row
                lin.weight[:, 2] = 0  # an empty column
            if lin.bias is not None:
                lin.bias.copy_(0.1 * torch.randn(lin.bias.shape, generator=g, dtype=dtype))
        lins.append(lin)
    return lins


def _dense(lins, acts, x):
    """float64 reference of the stack."""
    h = x.double()
    for lin, act in zip(lins, acts):
        h = h @ lin.weight.double().t()
        if lin.bias is not None:
            h = h + lin.bias.double()
        if act is not None:
            h = copy.deepcopy(act).double()(h)
    return h


def _chain(lins, acts, kernels):
    names = [f"l{i}" for i in range(len(lins))]
    act_names = [None if a is None else f"a{i}" for i, a in enumerate(acts)]
    return ActivationChain.from_layers(lins, acts, kernels, names, act_names)


@needs_c
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel", ACT_KERNELS + ("mixed",))
def test_every_kernel_equals_the_dense_stack(kernel, dtype):
    """Random shapes (width 1 included), weight densities 0 to 1, empty rows and columns,
    every activation, batches 1 to 17, inputs from all-zero to dense, 1 and 3 threads."""
    g = torch.Generator().manual_seed(ACT_KERNELS.index(kernel) if kernel in ACT_KERNELS else 9)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for trial in range(6):
        depth = 1 + trial % 4
        dims = [int(d) for d in torch.randint(1, 70, (depth + 1,), generator=g)]
        density = [0.0, 0.05, 0.3, 1.0, 0.5, 0.1][trial]
        lins = _layers(dims, density, g, dtype)
        names = list(_ACTS)
        acts = [_ACTS[names[(trial + i) % len(names)]]() for i in range(depth)]
        if kernel == "mixed":
            kernels = [ACT_KERNELS[(trial + i) % 3] for i in range(depth)]
        else:
            kernels = [kernel] * depth
        chain = _chain(lins, acts, kernels)
        for batch in (1, 2, 17):
            for zeros in (1.0, 0.85, 0.0):
                x = torch.randn(batch, dims[0], generator=g, dtype=dtype)
                x = x * (torch.rand(batch, dims[0], generator=g) >= zeros)
                for threads in (1, 3):
                    torch.set_num_threads(threads)
                    with torch.no_grad():
                        y = chain(x)
                    torch.set_num_threads(1)
                    ref = _dense(lins, acts, x)
                    assert y.dtype == dtype and y.shape == ref.shape
                    torch.testing.assert_close(y.double(), ref, rtol=tol, atol=tol)


@needs_c
def test_sixteen_bit_rows_reach_the_top_of_their_range():
    lin = nn.Linear(3, 65536, bias=False)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[[0, 32767, 32768, 65535], 1] = torch.tensor([1.0, 2.0, 3.0, 4.0])
        lin.weight[65535, 2] = -1.0
    chain = _chain([lin], [None], ["act_csc_u16"])
    x = torch.tensor([[0.0, 2.0, 1.0]])
    with torch.no_grad():
        torch.testing.assert_close(chain(x), lin(x))
    with pytest.raises(ValueError, match="act_csc_u16.*65536"):
        _chain([nn.Linear(2, 65537)], [None], ["act_csc_u16"])


def test_the_torch_path_computes_the_same(monkeypatch):
    """No compiled library (or a grad-requiring input): torch operations, same values, and
    gradients reach the input."""
    g = torch.Generator().manual_seed(0)
    lins = _layers([20, 30, 10], 0.3, g, torch.float32)
    acts = [CReLU(0.2, 1.0), None]
    chain = _chain(lins, acts, ["act_csc_i32", "act_dense"])
    x = torch.randn(4, 20, generator=g)
    with torch.no_grad():
        fast = chain(x)
    monkeypatch.setattr(ac, "load", lambda: None)
    with torch.no_grad():
        slow = chain(x)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(slow.double(), _dense(lins, acts, x), rtol=1e-5, atol=1e-6)
    monkeypatch.undo()
    xg = x.clone().requires_grad_()
    chain(xg).sum().backward()
    ref = x.clone().requires_grad_()
    _dense(lins, acts, ref).sum().backward()
    torch.testing.assert_close(xg.grad, ref.grad.float(), rtol=1e-5, atol=1e-6)


def test_inputs_with_leading_dimensions_and_a_wrong_width():
    g = torch.Generator().manual_seed(1)
    lins = _layers([8, 5], 0.5, g, torch.float32)
    chain = _chain(lins, [nn.ReLU()], ["act_dense"])
    x = torch.randn(2, 3, 8, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(chain(x), torch.relu(lins[0](x)), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="in_features=8"):
        chain(torch.randn(2, 7))


# -- the export ----------------------------------------------------------------------------
def _sparse_mlp(seed=0, act=lambda: CReLU(0.3, 1.2), width=96, depth=4, density=0.1):
    torch.manual_seed(seed)
    layers = [nn.Flatten()]
    n = 40
    for _ in range(depth):
        layers += [nn.Linear(n, width), act()]
        n = width
    layers.append(nn.Linear(n, 5))
    net = nn.Sequential(*layers).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.weight.mul_(torch.rand(m.weight.shape) < density).mul_(3.0)
    return net


def test_find_runs_follows_linears_and_fusable_activations():
    net = nn.Sequential(
        nn.Linear(4, 4),
        nn.ReLU(),
        nn.Linear(4, 4),
        nn.GELU(),  # not fusable: the run ends at the Linear before it
        nn.Linear(4, 4),
        nn.Sequential(nn.Linear(4, 4), CST(0.1, 1.0), nn.Linear(4, 2)),
    )
    assert find_runs(net) == [
        [("0", "1"), ("2", None)],
        [("4", None)],
        [("5.0", "5.1"), ("5.2", None)],
    ]


@needs_c
def test_export_with_activations_matches_dense_and_restores_from_its_state_dict():
    net = _sparse_mlp()
    x = torch.randn(64, 40)
    fast, report = export(
        net, batch_size=1, example_input=x, activations=True, return_timings=True, rounds=2
    )
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), rtol=1e-4, atol=1e-5)
    assert set(report) == {"1", "3", "5", "7", "9"}
    for entry in report.values():
        assert {"dense", "act_dense"} <= set(entry["ms"]) and entry["kernel"] in entry["ms"]
        assert 0.0 <= entry["input_zeros"] <= 1.0
    chosen = {r["name"]: r["kernel"] for r in kernel_summary(fast)}
    assert set(chosen) == set(report)
    if report["1"]["whole_model_choice"] == "chosen":
        assert chosen == {k: v["kernel"] for k, v in report.items()}
    # the state dict carries the choice; a dense skeleton restores it
    buf = io.BytesIO()
    torch.save(fast.state_dict(), buf)
    buf.seek(0)
    again = load_exported(_sparse_mlp(seed=5), torch.load(buf))
    assert [type(m) for m in again] == [type(m) for m in fast]
    assert kernel_summary(again) == kernel_summary(fast)
    with torch.no_grad():
        torch.testing.assert_close(again(x), fast(x))
        torch.testing.assert_close(densify(fast)(x), net(x), rtol=1e-5, atol=1e-6)
    assert [type(m) for m in densify(fast)] == [type(m) for m in net]
    with torch.no_grad():
        torch.testing.assert_close(pickle.loads(pickle.dumps(fast))(x), fast(x))


@needs_c
def test_a_chain_of_every_layer_crosses_once():
    """Forced onto activation kernels (a model made of them only), one chain runs it all."""
    net = _sparse_mlp(depth=3)
    lins = [m for m in net if isinstance(m, nn.Linear)]
    acts = [net[i + 1] for i in (1, 3, 5)] + [None]
    chain = ActivationChain.from_layers(
        lins, acts, ["act_csc_u16"] * 4, ["1", "3", "5", "7"], ["2", "4", "6", None]
    )
    assert chain.covers == ["2", "3", "4", "5", "6", "7"]
    calls = []
    x = torch.randn(5, 40)
    lib = ac.load()
    f = lib.chain[torch.float32]

    def counting(*args):
        calls.append(args[0])
        return f(*args)

    lib.chain[torch.float32] = counting
    try:
        with torch.no_grad():
            y = chain(x)
    finally:
        lib.chain[torch.float32] = f
    assert calls == [4]  # one call, four layers
    with torch.no_grad():
        torch.testing.assert_close(y, net[1:](x), rtol=1e-4, atol=1e-5)


def test_export_with_activations_needs_real_inputs():
    with pytest.raises(ValueError, match="example_input"):
        export(_sparse_mlp(), activations=True)


# -- damaged states ----------------------------------------------------------------------
def _exported_state():
    net = _sparse_mlp(depth=2, width=24)
    lins = [m for m in net if isinstance(m, nn.Linear)]
    chain = ActivationChain.from_layers(
        lins[:2], [net[2], net[4]], ["act_csc_u16", "act_dense"], ["1", "3"], ["2", "4"]
    )
    out = copy.deepcopy(net)
    out[1] = chain
    for i in (2, 3, 4):
        out[i] = nn.Identity()
    return net, out.state_dict()


def _damage(sd, key, fn):
    sd = {k: v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v) for k, v in sd.items()}
    sd[key] = fn(sd[key])
    return sd


def _extra(fn):
    def apply(e):
        e = copy.deepcopy(e)
        fn(e)
        return e

    return apply


@pytest.mark.parametrize(
    "key, fn, message",
    [
        ("1.r0", lambda r: r.fill_(30), "rows must lie in"),
        ("1.p0", lambda p: p.flip(0), "column offsets must start at 0"),
        ("1.w0", lambda w: w.fill_(float("nan")), "finite"),
        ("1.w1", lambda w: w[:, :3], r"W\^T of shape"),
        ("1.w1", lambda w: w.mul_(2), "checksum"),
        ("1._extra_state", _extra(lambda e: e["layers"][0].update(kernel="act_bsr")), "kernel"),
        ("1._extra_state", _extra(lambda e: e["layers"][1].update(m=None)), "m must be"),
        ("1._extra_state", _extra(lambda e: e["layers"][1].update(out=7)), "does not match|24x"),
        ("1._extra_state", _extra(lambda e: e["layers"][0].update(tau=-1.0)), "tau"),
        ("1._extra_state", _extra(lambda e: e["names"].__setitem__(1, "9")), "not in the skeleton"),
        ("1._extra_state", _extra(lambda e: e["acts"].__setitem__(0, None)), "both"),
    ],
)
def test_load_exported_refuses_a_damaged_chain(key, fn, message):
    net, sd = _exported_state()
    assert isinstance(load_exported(net, sd)[1], ActivationChain)  # the intact state loads
    with pytest.raises(ValueError, match=message):
        load_exported(net, _damage(sd, key, fn))


def test_a_chain_layer_and_a_sparse_layer_side_by_side_restore():
    net = _sparse_mlp(depth=2, width=24)
    _, sd = _exported_state()
    out = load_exported(net, sd)
    out[5] = SparseLinear.from_linear(net[5], "torch_csr")
    again = load_exported(net, out.state_dict())
    x = torch.randn(3, 40)
    with torch.no_grad():
        torch.testing.assert_close(again(x), net(x), rtol=1e-4, atol=1e-5)
