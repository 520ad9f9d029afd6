"""shrinkage.weights.export: sparse kernels give the dense model's outputs, save and load."""

from __future__ import annotations

import copy
import io
import math
import warnings

import pytest
import torch
from torch import nn

from shrinkage.weights import _kernels
from shrinkage.weights._export import (
    KERNELS,
    SparseConv2d,
    SparseLinear,
    densify,
    export,
    kernel_summary,
    load_exported,
    weight_sparsity,
)

SPARSE_KERNELS = [k for k in KERNELS if k != "dense"]


def sparse_linear(in_f, out_f, sparsity, *, bias=True, dtype=torch.float32, seed=0):
    """nn.Linear whose weight has exactly round(sparsity * size) zeros (random pattern)."""
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(in_f, out_f, bias=bias, dtype=dtype)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(out_f, in_f, generator=g, dtype=dtype))
        n_zero = round(sparsity * in_f * out_f)
        idx = torch.randperm(in_f * out_f, generator=g)[:n_zero]
        lin.weight.view(-1)[idx] = 0
        if bias:
            lin.bias.copy_(torch.randn(out_f, generator=g, dtype=dtype))
    return lin


def mlp(sizes, sparsities, dtype=torch.float32, seed=0):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(sparse_linear(a, b, sparsities[i], dtype=dtype, seed=seed + i))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def reference(lin: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """Dense float64 product, the independent reference."""
    w = lin.weight.detach().double()
    b = None if lin.bias is None else lin.bias.detach().double()
    return nn.functional.linear(x.double(), w, b)


@pytest.fixture
def restore_kernels():
    yield
    _kernels._reset()


@pytest.mark.parametrize("kernel", SPARSE_KERNELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sparsity,batch", [(0.8, 1), (0.95, 3), (0.99, 70), (0.5, 33)])
def test_sparse_linear_matches_dense(kernel, dtype, sparsity, batch):
    """Every kernel gives x W^T + b for the dense W, batch sizes around the vector chunk."""
    lin = sparse_linear(48, 24, sparsity, dtype=dtype, seed=batch)
    sl = SparseLinear.from_linear(lin, kernel)
    x = torch.randn(batch, 48, dtype=dtype)
    with torch.no_grad():
        y = sl(x)
    assert y.dtype == dtype and y.shape == (batch, 24)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(y.double(), reference(lin, x), atol=tol, rtol=tol)
    assert sl.nnz == int(torch.count_nonzero(lin.weight)) or kernel == "torch_bsr"


@pytest.mark.parametrize("kernel", ["c_csr_i32", "c_csr_u16"])
def test_compiled_kernel_threads_and_unbalanced_rows(kernel):
    """Large enough to run the OpenMP path; one full row, empty rows, no bias."""
    lin = sparse_linear(300, 257, 0.9, bias=False, seed=3)
    with torch.no_grad():
        lin.weight[5] = torch.randn(300)
        lin.weight[100:140] = 0
    sl = SparseLinear.from_linear(lin, kernel)
    x = torch.randn(130, 300)
    with torch.no_grad():
        for threads in (1, 2):
            old = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                y = sl(x)
            finally:
                torch.set_num_threads(old)
            torch.testing.assert_close(y.double(), reference(lin, x), atol=1e-4, rtol=1e-5)
            assert torch.all(y[:, 100:140] == 0)


def test_u16_columns_above_32767():
    """16-bit columns are stored as int16 bit patterns: columns >= 2**15 must not go negative."""
    lin = nn.Linear(40000, 3, bias=False)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0, 39999] = 2.0
        lin.weight[1, 32768] = -1.5
        lin.weight[2, 7] = 0.5
        lin.weight[2, 65535 % 40000] = 1.0
    sl = SparseLinear.from_linear(lin, "c_csr_u16")
    assert sl.col_indices.dtype == torch.int16
    x = torch.randn(2, 40000)
    with torch.no_grad():
        torch.testing.assert_close(sl(x).double(), reference(lin, x))
        torch.testing.assert_close(sl.dense_weight(), lin.weight)


def test_all_zero_weight_gives_bias():
    lin = sparse_linear(20, 8, 1.0)
    for kernel in SPARSE_KERNELS:
        sl = SparseLinear.from_linear(lin, kernel)
        with torch.no_grad():
            y = sl(torch.randn(4, 20))
        torch.testing.assert_close(y, lin.bias.detach().expand(4, 8))


def test_export_replaces_only_sparse_enough_layers():
    """Layers below min_sparsity stay nn.Linear; Conv stays; outputs match; input untouched."""
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        nn.Flatten(),
        sparse_linear(2 * 6 * 6, 64, 0.95, seed=1),
        nn.ReLU(),
        sparse_linear(64, 32, 0.5, seed=2),
        nn.ReLU(),
        sparse_linear(32, 5, 0.9, seed=3),
    )
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast, report = export(
        net,
        min_sparsity=0.8,
        batch_size=4,
        candidates=("torch_csr", "c_csr_u16"),
        rounds=1,
        return_timings=True,
    )
    assert isinstance(fast[0], nn.Conv2d) and not isinstance(fast[4], SparseLinear)
    assert type(fast[4]) is nn.Linear and report["4"]["kernel"] == "dense"
    assert report["4"]["ms"] == {}  # not even timed: below min_sparsity
    for name in ("2", "6"):
        assert set(report[name]["ms"]) == {"dense", "torch_csr", "c_csr_u16"}
        chosen = report[name]["kernel"]
        assert chosen == min(report[name]["ms"], key=report[name]["ms"].get)
        mod = fast.get_submodule(name)
        assert (chosen == "dense") == (type(mod) is nn.Linear)
        if chosen != "dense":
            assert mod.kernel == chosen
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), atol=1e-5, rtol=1e-5)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    rows = {r["name"]: r for r in kernel_summary(fast)}
    assert math.isclose(rows["2"]["sparsity"], weight_sparsity(net[2].weight), abs_tol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel", ["torch_csr", "torch_csr_i32", "c_csr_i32", "c_csr_u16"])
def test_forced_kernel_whole_model(kernel, dtype):
    net = mlp([30, 40, 20, 7], [0.9, 0.97, 0.85], dtype=dtype)
    fast = export(net, min_sparsity=0.8, candidates=(kernel,))
    assert all(isinstance(fast[i], SparseLinear) and fast[i].kernel == kernel for i in (0, 2, 4))
    x = torch.randn(9, 30, dtype=dtype)
    with torch.no_grad():
        y = fast(x)
    assert y.dtype == dtype
    torch.testing.assert_close(y, net(x), atol=1e-5, rtol=1e-5)


def test_min_sparsity_edges():
    net = mlp([10, 12, 4], [0.5, 1.0])
    assert isinstance(export(net, min_sparsity=1.0, candidates=("torch_csr",))[2], SparseLinear)
    assert type(export(net, min_sparsity=1.0, candidates=("torch_csr",))[0]) is nn.Linear
    assert isinstance(export(net, min_sparsity=0.0, candidates=("torch_csr",))[0], SparseLinear)


def test_inputs_with_more_dims_and_gradients():
    lin = sparse_linear(16, 8, 0.9)
    sl = SparseLinear.from_linear(lin, "c_csr_u16")
    x = torch.randn(2, 3, 16)
    with torch.no_grad():
        torch.testing.assert_close(sl(x), lin(x))
    xa = torch.randn(5, 16, requires_grad=True)
    xb = xa.detach().clone().requires_grad_(True)
    (sl(xa) ** 2).sum().backward()
    (lin(xb) ** 2).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    with pytest.raises(ValueError, match="in_features=16"):
        sl(torch.randn(3, 15))


def test_dtype_and_device_follow_module():
    net = mlp([20, 10, 3], [0.9, 0.9])
    fast = export(net, candidates=("c_csr_i32",)).double()
    assert fast[0].values.dtype == torch.float64 and fast[0].col_indices.dtype == torch.int32
    x = torch.randn(4, 20, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net.double()(x))


def test_torch_save_whole_model_round_trip():
    net = mlp([30, 40, 6], [0.95, 0.9])
    fast = export(net, candidates=("c_csr_u16",))
    x = torch.randn(3, 30)
    with torch.no_grad():
        y = fast(x)
    buf = io.BytesIO()
    torch.save(fast, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=False)
    assert back[0].kernel == "c_csr_u16"
    with torch.no_grad():
        torch.testing.assert_close(back(x), y)


def test_state_dict_round_trip_through_dense_skeleton():
    """load_exported rebuilds the sparse layers from a state dict and a fresh dense model."""
    net = mlp([30, 40, 6], [0.95, 0.5])
    fast = export(net, min_sparsity=0.8, candidates=("c_csr_i32",))
    buf = io.BytesIO()
    torch.save(fast.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf, weights_only=True)  # plain tensors and a small dict: safe loading
    assert "0._extra_state" in sd and "0.weight" not in sd and "2.weight" in sd
    skeleton = mlp([30, 40, 6], [0.0, 0.0], seed=99)  # other weights entirely
    back = load_exported(skeleton, sd)
    assert isinstance(back[0], SparseLinear) and back[0].kernel == "c_csr_i32"
    x = torch.randn(5, 30)
    with torch.no_grad():
        torch.testing.assert_close(back(x), net(x), atol=1e-5, rtol=1e-5)
    # load_state_dict into an exported model with another pattern and kernel resizes buffers
    other = export(mlp([30, 40, 6], [0.99, 0.5], seed=7), candidates=("torch_csr",))
    other.load_state_dict(sd)
    assert other[0].kernel == "c_csr_i32" and other[0].nnz == fast[0].nnz
    with torch.no_grad():
        torch.testing.assert_close(other(x), net(x), atol=1e-5, rtol=1e-5)


def test_densify_gives_a_plain_model_state_dict():
    net = mlp([30, 40, 6], [0.95, 0.9])
    dense = densify(export(net, candidates=("c_csr_u16",)))
    assert all(type(m) is not SparseLinear for m in dense.modules())
    plain = mlp([30, 40, 6], [0.0, 0.0], seed=5)
    plain.load_state_dict(dense.state_dict())
    for a, b in zip(plain.parameters(), net.parameters()):
        torch.testing.assert_close(a, b)


def test_fallback_when_compiled_kernels_unavailable(monkeypatch, restore_kernels):
    """A c_* layer on a machine without the compiled library warns and uses torch CSR."""
    net = mlp([30, 40, 6], [0.95, 0.9])
    fast = export(net, candidates=("c_csr_u16",))
    x = torch.randn(4, 30)
    monkeypatch.setenv("SHRINKAGE_NO_COMPILE", "1")
    _kernels._reset()
    fresh = torch.load(_saved(fast), weights_only=False)
    with pytest.warns(RuntimeWarning, match="unavailable"):
        with torch.no_grad():
            y = fresh(x)
    torch.testing.assert_close(y, net(x), atol=1e-5, rtol=1e-5)
    # export then never proposes the compiled kernels, and refuses to force them
    _, report = export(net, candidates=("torch_csr", "c_csr_u16"), rounds=1, return_timings=True)
    assert "c_csr_u16" not in report["0"]["ms"] and "torch_csr" in report["0"]["ms"]
    with pytest.raises(ValueError, match="cannot run"):
        export(net, candidates=("c_csr_i32",))


def test_failed_build_warns_and_returns_none(monkeypatch, tmp_path, restore_kernels):
    """A compiler that rejects every flag set: no library, one RuntimeWarning, nothing cached."""
    monkeypatch.setenv("SHRINKAGE_CACHE", str(tmp_path))
    monkeypatch.setattr(_kernels, "_FLAG_SETS", (["-this-flag-does-not-exist"],))
    _kernels._reset()
    with pytest.warns(RuntimeWarning, match="unavailable"):
        assert _kernels.load() is None
    assert not list(tmp_path.rglob("*.so"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        assert _kernels.load() is None


def test_build_goes_to_cache_folder(monkeypatch, tmp_path, restore_kernels):
    monkeypatch.setenv("SHRINKAGE_CACHE", str(tmp_path))
    _kernels._reset()
    lib = _kernels.load()
    assert lib is not None and lib.path.parent == tmp_path / "kernels"
    assert [p.name for p in tmp_path.rglob("*")] == ["kernels", lib.path.name]


def _saved(model):
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    return buf


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "abc", None])
def test_bad_min_sparsity(bad):
    with pytest.raises(ValueError, match="min_sparsity"):
        export(mlp([4, 3], [0.9]), min_sparsity=bad)


def test_bad_arguments():
    with pytest.raises(ValueError, match="torch.nn.Module"):
        export(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="batch_size"):
        export(mlp([4, 3], [0.9]), batch_size=0)
    with pytest.raises(ValueError, match="kernel"):
        export(mlp([4, 3], [0.9]), candidates=("fast",))
    with pytest.raises(ValueError, match="at least one"):
        export(mlp([4, 3], [0.9]), candidates=())
    with pytest.raises(ValueError, match="torch.nn.Module"):
        densify("model")
    # an example the model cannot take: named, before any timing (was torch's RuntimeError)
    for act in (False, True):
        with pytest.raises(ValueError, match=r"example_input \(shape \(3, 7\)\) does not fit"):
            export(mlp([4, 3], [0.9]), example_input=torch.randn(3, 7), activations=act)
    with pytest.raises(ValueError, match="kernel"):
        SparseLinear.from_linear(nn.Linear(3, 3), "dense")


def sparse_conv(cin, cout, k, sparsity, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(cin, cout, k, **kw)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        conv.weight.mul_(torch.rand(conv.weight.shape, generator=g) >= sparsity)
    return conv


@pytest.mark.parametrize("kernel", ["torch_csr", "c_csr_i32", "c_csr_u16"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "kw", [{}, {"stride": 2, "padding": 1}, {"dilation": 2, "padding": 2, "bias": False}]
)
def test_sparse_conv_matches_dense_conv(kernel, dtype, kw):
    conv = sparse_conv(3, 8, 3, 0.9, seed=1, **kw).to(dtype)
    sc = SparseConv2d.from_conv(conv, kernel)
    x = torch.randn(2, 3, 11, 9, dtype=dtype)
    ref = nn.functional.conv2d(
        x.double(),
        conv.weight.double(),
        None if conv.bias is None else conv.bias.double(),
        conv.stride,
        conv.padding,
        conv.dilation,
    )
    with torch.no_grad():
        y = sc(x)
        y1 = sc(x[0])  # unbatched input
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert y.dtype == dtype and y.is_contiguous()
    torch.testing.assert_close(y.double(), ref, atol=tol, rtol=tol)
    torch.testing.assert_close(y1.double(), ref[0], atol=tol, rtol=tol)
    torch.testing.assert_close(sc.to_conv().weight, conv.weight)


def small_cnn():
    return nn.Sequential(
        sparse_conv(1, 6, 5, 0.9, seed=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        sparse_conv(6, 8, 3, 0.95, seed=2, padding=1),
        nn.Conv2d(8, 8, 3, groups=2),  # grouped: no sparse path, stays dense
        nn.Flatten(),
        sparse_linear(8 * 4 * 4, 10, 0.9, seed=3),
    )


def test_export_conv_needs_example_input_and_matches():
    net = small_cnn()
    x = torch.randn(3, 1, 16, 16)
    fast, rep = export(net, batch_size=3, rounds=1, return_timings=True)
    assert type(fast[0]) is nn.Conv2d and rep["0"]["ms"] == {}  # no input shape: dense
    fast, rep = export(net, batch_size=3, rounds=1, return_timings=True, example_input=x)
    assert set(rep["0"]["ms"]) >= {"dense", "torch_csr"} and set(rep["3"]["ms"]) >= {"dense"}
    assert type(fast[4]) is nn.Conv2d and rep["4"]["ms"] == {}
    for name in ("0", "3"):
        assert (rep[name]["kernel"] == "dense") == (type(fast.get_submodule(name)) is nn.Conv2d)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), atol=1e-5, rtol=1e-5)


def test_conv_save_load_and_densify():
    net = small_cnn()
    fast = export(net, candidates=("c_csr_u16",), example_input=torch.randn(1, 1, 16, 16))
    assert isinstance(fast[0], SparseConv2d) and isinstance(fast[3], SparseConv2d)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        y = fast(x)
        back = load_exported(small_cnn(), fast.state_dict())
        torch.testing.assert_close(back(x), y)
        torch.testing.assert_close(torch.load(_saved(fast), weights_only=False)(x), y)
        dense = densify(fast)
        assert type(dense[0]) is nn.Conv2d and type(dense[6]) is nn.Linear
        torch.testing.assert_close(dense(x), net(x), atol=1e-5, rtol=1e-5)
    rows = {r["name"]: r for r in kernel_summary(fast)}
    assert set(rows) == {"0", "3", "4", "6"} and rows["0"]["kernel"] == "c_csr_u16"
    assert rows["0"]["shape"] == (6, 25) and rows["4"]["kernel"] == "dense"


def _corruptions(sd):
    """(what, corrupted state dict, message) for one SparseLinear state dict."""

    def with_(**kw):
        return {**sd, **{k: v for k, v in kw.items()}}

    crow, col, val = sd["crow_indices"], sd["col_indices"], sd["values"]
    yield (
        "row pointer far out",
        with_(crow_indices=crow.clone().index_fill_(0, torch.tensor([3]), 10**6)),
        "never decrease",
    )
    yield (
        "last row pointer",
        with_(
            crow_indices=crow.clone().index_fill_(
                0, torch.tensor([len(crow) - 1]), int(crow[-1]) + 5
            )
        ),
        "agree on the number",
    )
    yield "truncated values", with_(values=val[:-5].clone()), "agree on the number"
    yield (
        "column out of range",
        with_(col_indices=col.clone().index_fill_(0, torch.tensor([0]), 30)),
        "lie in",
    )
    yield (
        "negative column",
        with_(col_indices=col.clone().index_fill_(0, torch.tensor([1]), -3)),
        "lie in",
    )
    yield "columns unsorted", with_(col_indices=col.clone().flip(0)), "increase strictly"
    yield (
        "NaN value",
        with_(values=val.clone().index_fill_(0, torch.tensor([2]), math.nan)),
        "finite",
    )
    yield "int64 rows", with_(crow_indices=crow.long()), "int32"
    yield "2-D values", with_(values=val.reshape(1, -1).clone()), "1-D"
    yield "bias length", with_(bias=sd["bias"][:-1].clone()), "bias must be"
    yield "huge out", with_(_extra_state={**sd["_extra_state"], "out": 2**40}), "2\\*\\*31"
    yield (
        "kernel name",
        with_(_extra_state={**sd["_extra_state"], "kernel": "fast"}),
        "unknown kernel",
    )


@pytest.mark.parametrize("kernel", [k for k in SPARSE_KERNELS if k not in ("torch_bsr",)])
@pytest.mark.parametrize("grad", [False, True])
def test_corrupted_checkpoints_are_refused_at_load_on_every_kernel(kernel, grad):
    """Every buffer is checked once, at load, whatever kernel runs the layer and whether the
    input needs a gradient: no segfault (a bad row pointer), no silent garbage (truncated
    values), no accepted bad column."""
    net = nn.Sequential(sparse_linear(30, 10, 0.8))
    fast = export(net, min_sparsity=0.5, candidates=(kernel,))
    good = fast.state_dict()
    x = torch.randn(2, 30, requires_grad=grad)
    torch.testing.assert_close(load_exported(net, good)(x), net(x), atol=1e-5, rtol=1e-5)
    layer = {k.removeprefix("0."): v for k, v in good.items()}
    for what, bad, msg in _corruptions(layer):
        bad = {f"0.{k}": v for k, v in bad.items()}
        with pytest.raises(ValueError, match=msg):
            load_exported(net, bad)
            pytest.fail(f"{what}: accepted")
        # loading straight into an exported model is checked the same way
        with pytest.raises(ValueError, match=msg):
            copy_of = load_exported(net, good)
            copy_of.load_state_dict(bad)


def test_buffers_changed_after_loading_are_checked_before_use():
    """A buffer swapped in by hand (or a pickle of an older version) is checked before the
    first product, on the torch path too."""
    lin = sparse_linear(30, 10, 0.8)
    for kernel in ("torch_csr", "c_csr_i32"):
        sl = SparseLinear.from_linear(lin, kernel)
        sl.col_indices = sl.col_indices.clone().index_fill_(0, torch.tensor([0]), 99)
        for grad in (False, True):
            with pytest.raises(ValueError, match="lie in"):
                sl(torch.randn(2, 30, requires_grad=grad))
        with pytest.raises(ValueError, match="lie in"):
            sl.to_linear()


def test_corrupted_conv_state_is_refused():
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten())
    with torch.no_grad():
        net[0].weight.mul_(torch.rand_like(net[0].weight) > 0.8)
    x = torch.randn(1, 2, 6, 6)
    fast = export(net, min_sparsity=0.5, candidates=("torch_csr",), example_input=x)
    sd = fast.state_dict()
    conv = sd["0._extra_state"]["conv"]
    for key, value, msg in (
        ("kernel_size", (3, 0), "2 integers >= 1"),
        ("in_channels", 3, "in_channels=3, the skeleton.s Conv2d 2"),
        ("stride", "ab", "2 integers"),
    ):
        bad = {**sd, "0._extra_state": {"conv": {**conv, key: value}}}
        with pytest.raises(ValueError, match=msg):
            load_exported(net, bad)
    with pytest.raises(ValueError, match="does not fit the skeleton"):
        load_exported(nn.Sequential(nn.Conv2d(2, 4, 3), nn.Linear(3, 3)), sd)
    with pytest.raises(ValueError, match="mapping"):
        load_exported(net, [1, 2])


def test_concurrent_callers_and_fork_get_correct_results():
    """The C thread pool serves one caller at a time; others run alone; a forked child works."""
    import multiprocessing as mp
    import threading

    lin = sparse_linear(400, 300, 0.9, seed=11)
    sl = SparseLinear.from_linear(lin, "c_csr_u16")
    xs = [torch.randn(b, 400) for b in (1, 64, 1, 200, 7, 33)]  # 200 x 400: parallel transpose
    refs = [reference(lin, x) for x in xs]
    errors = []

    def work(i):
        with torch.no_grad():
            for _ in range(20):
                y = sl(xs[i])
                if not torch.allclose(y.double(), refs[i], atol=1e-4, rtol=1e-5):
                    errors.append(i)

    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors and not any(t.is_alive() for t in threads)
        ctx = mp.get_context("fork")
        with ctx.Pool(1) as pool:
            y = pool.apply_async(_child_forward, (sl, xs[1])).get(timeout=60)
        torch.testing.assert_close(y.double(), refs[1], atol=1e-4, rtol=1e-5)
    finally:
        torch.set_num_threads(old)


def _child_forward(layer, x):
    # One thread: GNU OpenMP cannot start a thread team in a child forked from a parent that
    # already ran one (torch's own ops hang there whatever our kernel does), and the parent
    # test suite has run many by now.
    torch.set_num_threads(1)
    with torch.no_grad():
        return layer(x).contiguous()


class _Mask(nn.Module):
    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w):
        return w * self.mask


def test_parametrized_weights_export_their_effective_value():
    """A still-parametrized layer (mask applied on the fly) exports its effective weight."""
    from torch.nn.utils import parametrize

    lin = nn.Linear(40, 12)
    mask = (torch.rand(12, 40, generator=torch.Generator().manual_seed(4)) > 0.9).float()
    parametrize.register_parametrization(lin, "weight", _Mask(mask))
    net = nn.Sequential(lin, nn.ReLU())
    fast = export(net, candidates=("c_csr_u16",))
    assert isinstance(fast[0], SparseLinear) and fast[0].nnz == int(mask.sum())
    x = torch.randn(5, 40)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), atol=1e-5, rtol=1e-5)
    assert parametrize.is_parametrized(net[0])  # the input model is untouched


@pytest.mark.parametrize("kernel", SPARSE_KERNELS)
def test_transposed_and_strided_inputs(kernel):
    """(in, N)-major inputs (a sparse layer's output) and sliced inputs give the same result."""
    lin = sparse_linear(40, 16, 0.9, seed=8)
    sl = SparseLinear.from_linear(lin, kernel)
    xt = torch.randn(40, 9).t()  # shape (9, 40), strides (1, 9)
    xs = torch.randn(9, 80)[:, ::2]  # strides (80, 2)
    with torch.no_grad():
        for x in (xt, xs):
            torch.testing.assert_close(sl(x).double(), reference(lin, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("winner", ["chosen", "dense", "torch_csr"])
def test_whole_model_check_keeps_the_fastest_and_reports_it(monkeypatch, winner):
    """With example_input the whole model is timed as chosen, all-torch-CSR and dense;
    the returned model and the reported kernels follow the winner."""
    from shrinkage.weights import _export

    net = nn.Sequential(
        sparse_linear(64, 48, 0.95, seed=1), nn.ReLU(), sparse_linear(48, 10, 0.95, seed=2)
    )

    def fake(mods, x, rounds):  # per layer torch_csr_i32 wins; whole model `winner` wins
        best = winner if "chosen" in mods else "torch_csr_i32"
        return {k: (0.0 if k == best else 1.0) for k in mods}

    monkeypatch.setattr(_export, "_time_modules", fake)
    x = torch.randn(5, 64)
    out, report = export(
        net,
        min_sparsity=0.8,
        batch_size=5,
        return_timings=True,
        candidates=("torch_csr", "torch_csr_i32"),
        example_input=x,
    )
    kinds = {
        n: (m.kernel if isinstance(m, SparseLinear) else "dense")
        for n, m in out.named_children()
        if isinstance(m, SparseLinear | nn.Linear)
    }
    assert {n: report[n]["kernel"] for n in kinds} == kinds
    assert set(kinds.values()) == {"torch_csr_i32" if winner == "chosen" else winner}
    assert all(set(report[n]["whole_model_ms"]) == {"chosen", "dense", "torch_csr"} for n in kinds)
    with torch.no_grad():
        torch.testing.assert_close(out(x), net(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_export_dense_or_say_why(dtype):
    """CPU sparse kernels (torch's and ours) have no float16 / bfloat16: the layers stay
    dense (once: a failure deep inside torch), a forced kernel is a clear error."""
    net = mlp([32, 16, 4], [0.9, 0.9]).to(dtype)
    fast = export(net, min_sparsity=0.5, rounds=1)
    assert all(r["kernel"] == "dense" for r in kernel_summary(fast))
    x = torch.randn(2, 32, dtype=dtype)
    torch.testing.assert_close(fast(x), net(x))
    with pytest.raises(ValueError, match=f"cannot run layer '0'.*{dtype}"):
        export(net, min_sparsity=0.5, candidates=("torch_csr",))


def test_a_damaged_value_is_caught_by_the_checksum_and_a_deliberate_one_can_be_loaded():
    """A flipped bit that leaves a valid, finite matrix (the silent case) does not match the
    CRC-32 saved in the layer's extra state; without that entry the values load as they are."""
    net = nn.Sequential(sparse_linear(30, 10, 0.8))
    sd = export(net, min_sparsity=0.5, candidates=("c_csr_i32",)).state_dict()
    assert isinstance(sd["0._extra_state"]["crc32"], int)
    bad = dict(sd)
    bad["0.values"] = sd["0.values"].clone()
    bad["0.values"].view(torch.int32)[4] ^= 1 << 3  # one mantissa bit
    with pytest.raises(ValueError, match="do not match the checksum"):
        load_exported(net, bad)
    extra = {k: v for k, v in sd["0._extra_state"].items() if k != "crc32"}
    loaded = load_exported(net, {**bad, "0._extra_state": extra})
    assert torch.equal(loaded[0].values, bad["0.values"])
    # round trips keep matching: the checksum follows the buffers
    again = load_exported(net, loaded.state_dict())
    assert torch.equal(again[0].values, bad["0.values"])


# -- found by probing (docs/reliability.md) ---------------------------------------------
def test_load_exported_refuses_a_skeleton_of_another_dtype_or_shape():
    """A float64 skeleton used to give a model whose dense layers were float64 and sparse
    ones float32 (it ran on no input); a Linear(8, 16) skeleton took a (16, 16) layer."""
    from shrinkage.weights import export, load_exported

    def make(n_in=16):
        return nn.Sequential(nn.Linear(n_in, 16), nn.ReLU(), nn.Linear(16, 2))

    net = make()
    with torch.no_grad():
        net[0].weight.mul_(torch.rand(16, 16, generator=torch.Generator().manual_seed(0)) > 0.9)
    state = export(net, candidates="torch_csr").state_dict()
    with pytest.raises(ValueError, match="skeleton's 0.bias is torch.float64 but the state's"):
        load_exported(make().double(), state)
    with pytest.raises(ValueError, match=r"layer '0': the state's layer is \(16, 16\)"):
        load_exported(make(8), state)
    x = torch.randn(3, 16)
    torch.testing.assert_close(load_exported(make(), state)(x), net(x))


def test_export_refuses_a_meta_model():
    from shrinkage.weights import export

    with torch.device("meta"):
        model = nn.Linear(4, 4)
    with pytest.raises(ValueError, match="'meta' device"):
        export(model, min_sparsity=0.0, candidates="torch_csr")


def test_linear_subclasses_stay_dense():
    """A subclass of nn.Linear may compute something else in its forward (a scale, an
    adapter): export leaves it dense instead of dropping what it adds."""

    class Scaled(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 0.5 + 1.0

    torch.manual_seed(0)
    net = nn.Sequential(Scaled(16, 8), nn.ReLU(), nn.Linear(8, 4))
    with torch.no_grad():
        for m in (net[0], net[2]):
            m.weight.mul_(torch.rand_like(m.weight) > 0.9)
    x = torch.randn(5, 16)
    for kw in ({"candidates": "torch_csr"}, {"example_input": x, "rounds": 1}):
        fast, info = export(net, min_sparsity=0.5, return_timings=True, **kw)
        assert type(fast[0]) is Scaled and "0" not in info
        torch.testing.assert_close(fast(x), net(x))
    assert type(export(net, min_sparsity=0.5, candidates="torch_csr")[2]) is SparseLinear


@pytest.mark.parametrize("activations", [False, True])
def test_export_of_a_model_in_train_mode_moves_no_statistics(activations):
    """Export's forward passes run in eval mode: a model left in train mode keeps its
    BatchNorm statistics (it was changed 100 times over), dropout draws no masks in the
    output check, and the model and its copy come back in train mode."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4),
    )  # fmt: skip
    with torch.no_grad():
        for i in (0, 4, 6):
            net[i].weight.mul_(torch.rand_like(net[i].weight) > 0.9)
    x = torch.randn(8, 32) * 3 + 5
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast = export(net, min_sparsity=0.5, example_input=x, rounds=1, activations=activations)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert net.training and net[1].training and fast.training and fast[1].training
    assert torch.equal(fast[1].running_mean, before["1.running_mean"])
    net.eval(), fast.eval()
    torch.testing.assert_close(fast(x), net(x), rtol=1e-5, atol=1e-5)


def test_load_exported_checks_a_conv_against_the_skeleton():
    """The state's convolution must be the skeleton's (a stride or padding of another
    architecture loaded silently before)."""
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten())
    with torch.no_grad():
        net[0].weight.mul_(torch.rand_like(net[0].weight) > 0.8)
    fast = export(
        net, min_sparsity=0.5, candidates="torch_csr", example_input=torch.randn(1, 2, 6, 6)
    )
    sd = fast.state_dict()
    for other, msg in (
        (nn.Conv2d(2, 4, 3, stride=2), r"stride=\(1, 1\), the skeleton's Conv2d \(2, 2\)"),
        (nn.Conv2d(2, 4, 3, padding=1), "padding"),
        (nn.Conv2d(2, 4, 3, dilation=2), "dilation"),
    ):
        with pytest.raises(ValueError, match=msg):
            load_exported(nn.Sequential(other, nn.Flatten()), sd)
    again = load_exported(nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten()), sd)
    x = torch.randn(2, 2, 6, 6)
    assert torch.equal(again(x), fast(x))


def test_parametrized_convolutions_export_like_parametrized_linears():
    """A still-parametrized Conv2d is an nn.Conv2d computing its weight: it goes sparse, as
    a parametrized Linear does (it stayed dense, silently)."""
    from torch.nn.utils import parametrize

    conv = nn.Conv2d(2, 4, 3)
    mask = (torch.rand(4, 2, 3, 3, generator=torch.Generator().manual_seed(1)) > 0.8).float()
    parametrize.register_parametrization(conv, "weight", _Mask(mask))
    net = nn.Sequential(conv, nn.Flatten())
    x = torch.randn(1, 2, 6, 6)
    fast = export(net, min_sparsity=0.5, candidates="torch_csr", example_input=x)
    assert type(fast[0]) is SparseConv2d
    with torch.no_grad():
        torch.testing.assert_close(fast(x), net(x), atol=1e-5, rtol=1e-5)


def test_fifth_probe_refusals_name_the_problem():
    """An unbatched example (one image, one vector), a layer with a NaN weight, and an
    exported model in half precision on CPU: a message naming it, not an error from deep
    inside the timing or torch's sparse kernels."""
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3))
    lin = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    for net in (conv, lin):
        with torch.no_grad():
            for m in (net[0], net[2]):
                m.weight.mul_(torch.rand_like(m.weight) > 0.9)
    with pytest.raises(ValueError, match=r"layer '0' unbatched \(shape \(3, 8, 8\)\)"):
        export(conv, min_sparsity=0.5, example_input=torch.randn(3, 8, 8), rounds=1)
    with pytest.raises(ValueError, match=r"layer '0' unbatched \(shape \(64,\)\)"):
        export(lin, min_sparsity=0.5, example_input=torch.randn(64), rounds=1)
    bad = copy.deepcopy(lin)
    with torch.no_grad():
        bad[2].weight[0, 0] = float("nan")
    for kw in ({"candidates": "torch_csr"}, {"rounds": 1}):
        with pytest.raises(ValueError, match="layer '2' has a NaN or inf weight"):
            export(bad, min_sparsity=0.5, **kw)
    half = export(lin, min_sparsity=0.5, candidates="c_csr_i32").half()
    with pytest.raises(TypeError, match="float16 on CPU; its sparse kernels run float32"):
        half(torch.randn(2, 64).half())


def test_block_sparse_layers_pass_gradients_to_the_input():
    """The documented gradient path to the input holds for torch_bsr too (torch has no
    backward through a block-sparse product: it failed inside torch)."""
    torch.manual_seed(0)
    lin = nn.Linear(16, 8)
    with torch.no_grad():
        lin.weight.mul_((torch.rand(2, 4) > 0.5).repeat_interleave(4, 0).repeat_interleave(4, 1))
    sl = SparseLinear.from_linear(lin, "torch_bsr")
    x = torch.randn(3, 16, requires_grad=True)
    (g,) = torch.autograd.grad(sl(x).square().sum(), x)
    x2 = x.detach().clone().requires_grad_(True)
    (g2,) = torch.autograd.grad(lin(x2).square().sum(), x2)
    torch.testing.assert_close(g, g2)


def test_exported_layers_read_back_their_dense_weight():
    """A model whose forward reads a layer's weight (a dtype cast, a tied use) stopped at its
    first call once exported (a sparse layer had no weight); ``weight`` is now the dense
    weight rebuilt from the sparse arrays, read-only."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(32, 16)
            self.conv = nn.Conv2d(2, 4, 3)

        def forward(self, x, img):
            y = self.fc(x.to(self.fc.weight.dtype))
            return y + nn.functional.linear(x, self.fc.weight).sum(), self.conv(img)

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():
        for m in (net.fc, net.conv):
            m.weight.mul_(torch.rand_like(m.weight) > 0.8)
    x, img = torch.randn(3, 32), torch.randn(1, 2, 6, 6)
    fast = export(net, min_sparsity=0.5, candidates="torch_csr", example_input=(x, img))
    assert type(fast.fc) is SparseLinear and type(fast.conv) is SparseConv2d
    assert torch.equal(fast.fc.weight, net.fc.weight.detach())
    assert torch.equal(fast.conv.weight, net.conv.weight.detach())
    assert not fast.fc.weight.requires_grad
    with torch.no_grad():
        for a, b in zip(fast(x, img), net(x, img)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
