"""Activations, dtype/device/numpy handling, differentiability, straight-through, bad input."""

import copy
import pickle

import numpy as np
import pytest
import torch

from shrinkage.thresholds import (
    CST,
    PENALTIES,
    CReLU,
    ShiftedReLU,
    SoftThreshold,
    clipped_relu,
    clipped_soft_threshold,
    lam_for_threshold,
    penalty,
    prox,
    shifted_relu,
    soft_threshold,
    straight_through,
    threshold,
    top_k,
)

X = np.linspace(-4, 4, 801)


def test_activations_match_definitions():
    tau, m = 0.7, 1.3
    np.testing.assert_allclose(shifted_relu(X, tau), np.maximum(X - tau, 0))
    np.testing.assert_allclose(soft_threshold(X, tau), np.sign(X) * np.maximum(np.abs(X) - tau, 0))
    np.testing.assert_allclose(clipped_relu(X, tau, m), np.minimum(np.maximum(X - tau, 0), m))
    np.testing.assert_allclose(
        clipped_soft_threshold(X, tau, m),
        np.sign(X) * np.minimum(np.maximum(np.abs(X) - tau, 0), m),
    )
    # the soft threshold activation is the l1 prox (one definition)
    np.testing.assert_array_equal(soft_threshold(X, tau), prox("l1", X, tau))
    # torch's Softshrink is an independent implementation of the same operator
    ref = torch.nn.functional.softshrink(torch.from_numpy(X), tau).numpy()
    np.testing.assert_allclose(soft_threshold(X, tau), ref)


@pytest.mark.parametrize(
    "module,fn,args",
    [
        (ShiftedReLU(0.5), shifted_relu, (0.5,)),
        (SoftThreshold(0.5), soft_threshold, (0.5,)),
        (CReLU(0.5, 1.5), clipped_relu, (0.5, 1.5)),
        (CST(0.5, 1.2), clipped_soft_threshold, (0.5, 1.2)),
    ],
)
def test_modules_equal_functions(module, fn, args):
    x = torch.randn(64, dtype=torch.float64)
    torch.testing.assert_close(module(x), fn(x, *args))
    assert "tau=0.5" in repr(module)
    clone = pickle.loads(pickle.dumps(copy.deepcopy(module)))
    torch.testing.assert_close(clone(x), module(x))
    # integers and masks are read as real numbers by both (tau 0.5 is not cast to 0)
    for xi in (torch.tensor([-3, -1, 0, 1, 2, 7]), torch.tensor([True, False, True])):
        want = fn(xi.double(), *args).to(torch.get_default_dtype())
        torch.testing.assert_close(module(xi), want)
        torch.testing.assert_close(fn(xi, *args), want)


def test_learnable_tau_gets_gradient():
    mod = CST(0.3, 1.0, learnable_tau=True)
    assert isinstance(mod.tau, torch.nn.Parameter) and "learnable_tau=True" in repr(mod)
    x = torch.tensor([2.0, -0.5, 0.1, -1.0])
    mod(x).sum().backward()
    # d/dtau of sign(x) min(max(|x| - tau, 0), m) is -sign(x) while tau < |x| < tau + m, else 0:
    # x = 2.0 is clipped (0), -0.5 inside (+1), 0.1 is zeroed (0), -1.0 inside (+1).
    assert float(mod.tau.grad) == pytest.approx(2.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("name", PENALTIES)
def test_prox_keeps_dtype_and_device(name, dtype):
    params = {"a": 0.8} if name == "cel0" else {}
    x = torch.linspace(-3, 3, 50, dtype=dtype)
    y = prox(name, x, 0.5, **params)
    assert y.dtype == dtype and y.device == x.device and y.shape == x.shape
    ref = prox(name, x.double(), 0.5, **params)
    tol = 1e-6 if dtype in (torch.float32, torch.float64) else 5e-2
    far = (x.double().abs() - threshold(name, 0.5, **params)).abs() > 0.1
    torch.testing.assert_close(y.double()[far], ref[far], atol=tol, rtol=tol)


def test_numpy_in_numpy_out_and_float32_kept():
    x = np.linspace(-2, 2, 9, dtype=np.float32)
    for out in (
        prox("l0", x, 0.3),
        penalty("l1/2", x, 0.3),
        clipped_relu(x, 0.1, 1.0),
        top_k(x, 2),
    ):
        assert isinstance(out, np.ndarray) and out.dtype == np.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_preserved():
    x = torch.randn(10, device="cuda")
    assert prox("cel0", x, 0.2, a=torch.full((10,), 0.5, device="cuda")).device.type == "cuda"


def test_tensor_lam_and_atom_norms_broadcast():
    x = torch.linspace(-3, 3, 12).reshape(3, 4)
    a = torch.tensor([0.5, 0.7, 0.9, 0.3])
    y = prox("cel0", x, 0.4, step=1.0, a=a)
    for j in range(4):
        torch.testing.assert_close(y[:, j], prox("cel0", x[:, j], 0.4, a=float(a[j])))
    lam = torch.tensor([0.0, 0.5, 1.0, 2.0])
    torch.testing.assert_close(prox("l1", x, lam)[:, 0], x[:, 0])


@pytest.mark.parametrize("name", ["l1", "cel0", "mcp", "scad"])
def test_continuous_proxes_are_differentiable(name):
    params = {"a": 0.8} if name == "cel0" else {}
    x = torch.tensor([2.5, -1.7, 0.1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: prox(name, v, 0.5, **params), (x,))


def test_straight_through_gradient_is_upstream_gradient():
    w = torch.randn(50, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(50, dtype=torch.float64)
    for name in PENALTIES:
        params = {"a": 0.8} if name == "cel0" else {}
        w.grad = None
        out = straight_through(lambda v, n=name, p=params: prox(n, v, 0.8, **p))(w)
        torch.testing.assert_close(out, prox(name, w.detach(), 0.8, **params))
        (out * upstream).sum().backward()
        torch.testing.assert_close(w.grad, upstream)


def test_top_k():
    x = torch.tensor([[0.1, -3.0, 2.0, 0.5], [4.0, 0.0, -1.0, 1.5]])
    y = top_k(x, 2)
    assert (y != 0).sum(1).tolist() == [2, 2]
    torch.testing.assert_close(y, torch.tensor([[0.0, -3.0, 2.0, 0.0], [4.0, 0.0, 0.0, 1.5]]))
    with pytest.raises(ValueError, match="k must be <="):
        top_k(x, 5)
    # ties: the lowest indices are kept, as documented (torch.topk picked indices 25-29 of 40)
    assert top_k(torch.ones(1, 40), 5).nonzero()[:, 1].tolist() == [0, 1, 2, 3, 4]
    signs = torch.tensor([[1.0, -1.0, 1.0, -1.0, 1.0, 1.0, -1.0, 1.0]])
    assert top_k(signs, 3).nonzero()[:, 1].tolist() == [0, 1, 2]
    assert top_k(signs.T, 2, dim=0).nonzero()[:, 0].tolist() == [0, 1]
    assert torch.equal(top_k(x, 0), torch.zeros_like(x))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: prox("l1", np.ones(3), -0.1), "lam must be >= 0"),
        (lambda: prox("l1", np.ones(3), float("nan")), "lam .*NaN"),
        (lambda: prox("l1", np.ones(3), 0.1, step=0.0), "step must be > 0"),
        (lambda: prox("l3", np.ones(3), 0.1), "unknown penalty name 'l3'; known: 'l1'"),
        (lambda: prox("cel0", np.ones(3), 0.1, step=1.0, a=1.0), "a\\*\\*2 \\* step < 1"),
        (lambda: prox("l1", np.ones(3), 0.1, a=1.0), "unknown parameter"),
        (lambda: prox("mcp", np.ones(3), 0.1, step=2.0, gamma=1.5), "gamma > step"),
        (lambda: clipped_relu(np.ones(3), 0.1, 0.0), "m must be > 0"),
        (lambda: shifted_relu(np.ones(3), -1.0), "tau must be >= 0"),
        (lambda: CST(0.1), "needs a clipping magnitude"),
        (lambda: threshold("l0", torch.tensor([0.1, -1.0])), "lam must be >= 0"),
        (lambda: prox("l1", [1.0, 2.0], 0.1), "torch.Tensor or numpy array"),
        # complex input would lose its imaginary part: refused, numpy and torch alike
        (lambda: prox("l1", np.array([1 + 1j, 2.0]), 0.5), "x must be a real array"),
        (lambda: soft_threshold(torch.ones(2, dtype=torch.complex64), 0.5), "real tensor"),
        (lambda: clipped_relu(np.ones(2, dtype=complex), 0.1, 1.0), "x must be a real array"),
        # a tensor threshold must broadcast against x, named before torch's own error
        (lambda: soft_threshold(torch.ones(10), torch.ones(3)), r"tau of shape \(3,\) does"),
        (lambda: clipped_relu(torch.ones(4, 5), 0.1, torch.ones(4)), r"m of shape \(4,\)"),
    ],
)
def test_bad_input_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("name", list(PENALTIES))
def test_nan_is_never_turned_into_a_number(name):
    """Every penalty's operator keeps a NaN a NaN (l0, l1/2, l2/3 once returned 0, l1, mcp
    and scad kept it); the public prox and penalty refuse NaN and inf outright."""
    from shrinkage.thresholds import get_penalty

    pen = get_penalty(name)
    x = torch.tensor([1.5, float("nan"), -0.2, 3.0])
    params = {"a": 0.9} if name == "cel0" else {}
    out = pen.prox(x, 0.3, 0.5, **{**pen.params, **params})
    assert torch.isnan(out[1]) and bool(torch.isfinite(out[[0, 2, 3]]).all())
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="NaN or inf"):
            prox(name, torch.tensor([1.0, bad]), 0.3, 0.5, **params)
        with pytest.raises(ValueError, match="NaN or inf"):
            penalty(name, np.array([bad]), 0.3, **params)


def test_l23_with_lam_zero_is_the_identity():
    x = torch.tensor([-2.0, 0.0, 0.3])
    assert torch.equal(prox("l2/3", x, 0.0), x)
    np.testing.assert_array_equal(prox("l2/3", x.numpy(), 0.0), x.numpy())


def test_cel0_default_a_says_the_condition_with_numbers():
    with pytest.raises(ValueError, match=r"a\*\*2 \* step = 1 with a=1 and step=1: pass a < 1"):
        prox("cel0", torch.ones(3), 0.1)
    out = prox("cel0", torch.ones(3), 0.1, a=0.9)  # the value the message suggests works
    assert bool(torch.isfinite(out).all())
    assert prox("cel0", torch.ones(3), 0.1, step=0.5).shape == (3,)  # a=1 with step < 1


def test_integer_input_gives_floats():
    out = prox("l1", torch.tensor([3, -1, 0]), 1.0)
    assert out.dtype == torch.get_default_dtype() and out.tolist() == [2.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_the_closed_forms_stay_finite_and_shrink_at_the_ends_of_the_range(dtype):
    """l2/3's closed form squared |x| (inf from 2e19 in float32, from 256 in float16) and
    l1/2's could round above |x|: in logs, in float32 for half types, and clamped to |x|."""
    big = {torch.float16: 6e4, torch.bfloat16: 1e30, torch.float32: 1e30, torch.float64: 1e300}
    x = torch.tensor([big[dtype], -big[dtype] / 3, 3.0, 0.1], dtype=torch.float64).to(dtype)
    for name in ("l2/3", "l1/2"):
        out = prox(name, x, 1.0)
        assert out.dtype == dtype and bool(torch.isfinite(out).all()), name
        assert bool((out.abs() <= x.abs()).all()), name
        ref = prox(name, x.double(), 1.0)  # the float64 closed form at moderate values
        torch.testing.assert_close(out[2:].double(), ref[2:], rtol=2e-2, atol=1e-2)


def test_non_finite_parameters_and_overflowing_results_are_refused():
    with pytest.raises(ValueError, match="lam must be finite"):
        prox("l1", torch.ones(2), float("inf"))
    with pytest.raises(ValueError, match="step must be finite"):
        prox("l1", torch.ones(2), 0.1, step=float("inf"))
    with pytest.raises(ValueError, match="penalty 'l1' overflows torch.float32"):
        penalty("l1", torch.tensor([1e30]), 1e10)
    assert penalty("l1", torch.tensor([1e30], dtype=torch.float64), 1e10).item() == 1e40


# -- found by probing (docs/reliability.md) ---------------------------------------------
@pytest.mark.parametrize("dim", [3, -3, 1.0, True])
def test_top_k_names_a_dim_out_of_range(dim):
    from shrinkage.thresholds import top_k

    with pytest.raises(ValueError, match="dim must be an integer in \\[-2, 1\\]"):
        top_k(torch.randn(2, 5), 1, dim=dim)


def test_meta_tensors_are_refused_by_name():
    from shrinkage.thresholds import prox, soft_threshold

    x = torch.randn(3, device="meta")
    for call in (lambda: prox("l1", x, 1.0), lambda: soft_threshold(x, 0.5)):
        with pytest.raises(ValueError, match="'meta' device"):
            call()


@pytest.mark.parametrize("name", ["shifted_relu", "soft_threshold"])
def test_the_activations_read_a_bool_mask_as_zeros_and_ones_as_prox_does(name):
    import shrinkage.thresholds as T

    mask = torch.tensor([True, False, True])
    out = getattr(T, name)(mask, 0.25)
    assert torch.equal(out, getattr(T, name)(mask.to(torch.get_default_dtype()), 0.25))
    clipped = {"shifted_relu": "clipped_relu", "soft_threshold": "clipped_soft_threshold"}[name]
    assert torch.equal(getattr(T, clipped)(mask, 0.25, 0.5), torch.tensor([0.5, 0.0, 0.5]))


def test_threshold_scales_far_from_one():
    """l2/3's threshold is homogeneous: thr(lam s^(4/3)) = s thr(lam). It underflowed to 0
    below lam ~ 1e-103 (prox then kept what it should zero) and overflowed above 1e102, its
    L^3 formed first; a Python-float threshold above float32's range was refused."""
    lam0 = 0.3
    for s in (1e-80, 1e-30, 1e30, 1e75):
        lam = lam0 * s ** (4.0 / 3.0)
        assert threshold("l2/3", lam) == pytest.approx(s * threshold("l2/3", lam0), rel=1e-12)
        assert lam_for_threshold("l2/3", threshold("l2/3", lam)) == pytest.approx(lam, rel=1e-12)
    tiny = torch.tensor([0.5, 2.0], dtype=torch.float64) * threshold("l2/3", 1e-110)
    assert prox("l2/3", tiny, 1e-110)[0] == 0 and prox("l2/3", tiny, 1e-110)[1] > 0
    assert threshold("l1", 1e39) == 1e39 and lam_for_threshold("l1", 1e80) == 1e80


def test_lhalf_and_l23_prox_far_from_unit_scale():
    """l1/2 is homogeneous: prox(s y; lam s^(3/2)) = s prox(y; lam). At tiny scales its
    (x / 3)^-1.5 overflowed: x / 3 came back (float32 from |x| ~ 6e-26), and lam = 0 (the
    identity) was refused as an overflow; l2/3 at lam 1e-300 in float32 was refused too, and a
    Python OverflowError escaped lam_for_threshold where a ValueError is documented."""
    y = torch.tensor([0.4, 1.3, -2.0], dtype=torch.float64)
    ref = prox("l1/2", y, 0.5)
    for s, dtype in ((1e-26, torch.float32), (1e-210, torch.float64), (1e20, torch.float32)):
        got = prox("l1/2", (s * y).to(dtype), 0.5 * s**1.5)
        torch.testing.assert_close(got.double(), s * ref, rtol=2e-6, atol=0.0)
    for x in (torch.tensor([1e-30, -3e-38]), torch.tensor([1e-310], dtype=torch.float64)):
        assert torch.equal(prox("l1/2", x, 0.0), x)
    x = torch.tensor([1.0, -3.0, 1e-20])
    torch.testing.assert_close(
        prox("l2/3", x, 1e-300).double(), prox("l2/3", x.double(), 1e-300), rtol=1e-6, atol=0.0
    )
    for name, thr in (("l0", 1e160), ("l1/2", 1e250)):
        with pytest.raises(ValueError, match="overflows float64"):
            lam_for_threshold(name, thr)
