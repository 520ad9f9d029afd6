"""Property-based tests of the public API under any input (hypothesis).

Every call either returns a finite result of the right shape and dtype, or raises a
ValueError or TypeError (a named refusal) - never another exception, never NaN or inf, never
a result of another shape or dtype. Inputs are drawn over shapes (empty ones included),
dtypes (float16, bfloat16, float32, float64, integers, bool), non-contiguous layouts and
values with NaN and inf.

Examples are derandomised (the same cases on every run, so CI is stable); set
``SHRINKAGE_HYPOTHESIS_EXAMPLES`` (e.g. 2000) for a longer search with fresh cases.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn

_LONG = int(os.environ.get("SHRINKAGE_HYPOTHESIS_EXAMPLES", "0"))


def _settings(n):
    return settings(
        max_examples=_LONG or n,
        deadline=None,
        derandomize=not _LONG,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


REFUSALS = (ValueError, TypeError)
FLOATS = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
DTYPES = [*FLOATS, torch.int32, torch.int64, torch.bool]
_MAX = {torch.float16: 6e4, torch.bfloat16: 1e30}

# values: mostly ordinary, some extreme, some non-finite
values = st.one_of(
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from([0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, math.nan, math.inf, -math.inf]),
)


@st.composite
def tensors(draw, dims=(0, 3), size=(0, 5), dtypes=DTYPES, finite=False, shape=None):
    """A tensor of any small shape and dtype, possibly non-contiguous."""
    dtype = draw(st.sampled_from(dtypes))
    if shape is None:
        ndim = draw(st.integers(*dims))
        shape = tuple(draw(st.integers(*size)) for _ in range(ndim))
    n = int(np.prod(shape)) if shape else 1
    vals = draw(
        st.lists(st.floats(-10, 10, allow_nan=False) if finite else values, min_size=n, max_size=n)
    )
    base = torch.tensor(vals, dtype=torch.float64).reshape(shape)
    if dtype.is_floating_point:
        lim = _MAX.get(dtype, 1e30)
        base = torch.where(base.isfinite(), base.clamp(-lim, lim), base)
        t = base.to(dtype)
    elif dtype == torch.bool:
        t = torch.nan_to_num(base) > 0
    else:
        t = torch.nan_to_num(base, posinf=7, neginf=-7).clamp(-1000, 1000).to(dtype)
    if t.dim() >= 2 and draw(st.booleans()):  # the same values, non-contiguous
        t = t.transpose(0, 1).contiguous().transpose(0, 1)
    elif t.dim() == 1 and t.numel() > 1 and draw(st.booleans()):
        t = torch.stack([t, t], 1)[:, 0]
    return t


def _finite_float(out, like_dtype, shape):
    assert isinstance(out, torch.Tensor | np.ndarray)
    out_t = torch.as_tensor(out)
    assert tuple(out_t.shape) == tuple(shape)
    want = like_dtype if like_dtype.is_floating_point else torch.get_default_dtype()
    assert out_t.dtype == want, (out_t.dtype, want)
    assert bool(torch.isfinite(out_t.double()).all())


# -- thresholds ------------------------------------------------------------------------------
from shrinkage.thresholds import PENALTIES, lam_for_threshold, penalty, prox, threshold  # noqa: E402

_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "a": st.one_of(st.floats(0.01, 2.0), st.sampled_from([0.0, -1.0, math.nan])),
        "gamma": st.one_of(st.floats(0.5, 10.0), st.sampled_from([0.0, math.inf])),
    },
)
_SCALARS = st.one_of(
    st.floats(0, 10), st.sampled_from([0.0, 1e-12, 1e12, -1.0, math.nan, math.inf])
)


@_settings(300)
@given(
    name=st.sampled_from(list(PENALTIES) + ["l3", ""]),
    x=tensors(),
    lam=_SCALARS,
    step=_SCALARS,
    params=_PARAMS,
)
def test_prox_returns_a_finite_result_of_x_shape_and_dtype_or_refuses(name, x, lam, step, params):
    try:
        out = prox(name, x, lam, step, **params)
    except REFUSALS:
        return
    _finite_float(out, x.dtype, x.shape)
    # numpy in, numpy out, same values
    if x.dtype in (torch.float32, torch.float64):
        np.testing.assert_allclose(prox(name, x.numpy(), lam, step, **params), out.numpy())


@_settings(200)
@given(name=st.sampled_from(list(PENALTIES)), x=tensors(), lam=_SCALARS, params=_PARAMS)
def test_penalty_is_finite_or_refused(name, x, lam, params):
    try:
        out = penalty(name, x, lam, **params)
    except REFUSALS:
        return
    _finite_float(out, x.dtype, x.shape)


@_settings(200)
@given(name=st.sampled_from(list(PENALTIES)), lam=_SCALARS, step=_SCALARS, params=_PARAMS)
def test_threshold_and_its_inverse_are_finite_or_refused(name, lam, step, params):
    try:
        thr = threshold(name, lam, step, **params)
        back = lam_for_threshold(name, thr, step, **params)
    except REFUSALS:
        return
    assert math.isfinite(thr) and thr >= 0 and math.isfinite(back)


# -- codes ------------------------------------------------------------------------------------
from shrinkage.codes import SparseCoding, encode  # noqa: E402


@st.composite
def coding_problems(draw):
    n = draw(st.integers(0, 6))
    f = draw(st.integers(0, 5))
    k = draw(st.integers(1, 7))
    X = draw(tensors(shape=(n, f), dtypes=DTYPES))
    D = draw(tensors(shape=(k, f), dtypes=FLOATS + [torch.int64]))
    return X, D


@_settings(120)
@given(
    problem=coding_problems(),
    pen=st.sampled_from(["l1", "l0", "l1/2", "cel0", "mcp", "scad"]),
    lam=_SCALARS,
    solver=st.sampled_from([None, "fista", "ista"]),
    numpy_in=st.booleans(),
)
@example(  # no rows at all (once: range() arg 3 must not be zero)
    problem=(torch.zeros(0, 3), torch.eye(3)), pen="l1", lam=0.1, solver=None, numpy_in=False
)
def test_encode_is_finite_right_shaped_or_refused(problem, pen, lam, solver, numpy_in):
    X, D = problem
    Xin = X.numpy() if numpy_in and X.dtype not in (torch.bfloat16,) else X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on capped runs is expected
        try:
            Z = encode(Xin, D, pen, lam, solver=solver, max_iter=50)
        except REFUSALS:
            return
    want = X.dtype if X.dtype.is_floating_point else torch.float64
    Zt = torch.as_tensor(Z)
    assert tuple(Zt.shape) == (X.shape[0], D.shape[0])
    assert Zt.dtype == want and bool(torch.isfinite(Zt.double()).all())
    assert isinstance(Z, np.ndarray) == isinstance(Xin, np.ndarray)


@_settings(25)
@given(
    X=st.integers(0, 8).flatmap(
        lambda n: tensors(shape=(n, 4), dtypes=[torch.float32, torch.float64])
    ),
    n_atoms=st.integers(-1, 5),
    pen=st.sampled_from(["l1", "cel0", "l0"]),
    lam=_SCALARS,
)
def test_sparse_coding_fits_or_refuses(X, n_atoms, pen, lam):
    Xn = X.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sc = SparseCoding(n_atoms, penalty=pen, lam=lam, n_epochs=1, random_state=0).fit(Xn)
            Z = sc.transform(Xn)
        except REFUSALS:
            return
    assert sc.components_.shape == (n_atoms, 4) and np.isfinite(sc.components_).all()
    assert Z.shape == (len(Xn), n_atoms) and np.isfinite(Z).all() and Z.dtype == Xn.dtype


# -- weights ----------------------------------------------------------------------------------
from shrinkage.weights import METHODS, Sparsifier, export, load_exported  # noqa: E402


@st.composite
def linear_models(draw, dtypes=FLOATS, finite=False):
    dtype = draw(st.sampled_from(dtypes))
    sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=4))
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        lin = nn.Linear(a, b, dtype=dtype)
        w = draw(tensors(shape=(b, a), dtypes=[torch.float64], finite=finite))
        with torch.no_grad():
            lin.weight.copy_(w.to(dtype))
        layers.append(lin)
    return nn.Sequential(*layers), sizes[0], dtype


@_settings(120)
@given(
    built=linear_models(),
    sparsity=st.one_of(st.floats(0, 0.999), st.sampled_from([-0.1, 1.0, math.nan])),
    method=st.sampled_from(list(METHODS) + ["magnitude"]),
    scope=st.sampled_from(["global", "layer"]),
    min_density=st.sampled_from([0.0, 0.1]),
    steps=st.integers(0, 3),
)
def test_sparsifier_keeps_weights_finite_and_shaped_or_refuses(
    built, sparsity, method, scope, min_density, steps
):
    model, _, dtype = built
    shapes = [m.weight.shape for m in model]
    kw = {
        "prox_ste": {"penalty_params": {"a": 0.5}},
        "rigl": {"method_params": {"update_end": 1000}},  # no mask update within 3 steps
    }.get(method, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a layer pruned away warns
        try:
            sp = Sparsifier(model, sparsity, method, scope=scope, min_density=min_density, **kw)
            for _ in range(steps):
                sp.step()
        except REFUSALS:
            return
    eff = sp.effective_weights()
    assert [tuple(w.shape) for w in eff.values()] == [tuple(s) for s in shapes]
    for w in eff.values():
        assert w.dtype == dtype and bool(torch.isfinite(w.double()).all())
    assert 0.0 <= sp.density() <= 1.0
    n = sum(w.numel() for w in eff.values())
    zeros = sum(int((w == 0).sum()) for w in eff.values())
    if min_density == 0.0 and method != "gmp":  # at least the scheduled count (ties: exactly)
        s = sp.current_sparsity
        sizes = [w.numel() for w in eff.values()] if scope == "layer" else [n]
        assert zeros >= sum(math.floor(s * k + 1e-6) for k in sizes)


@_settings(80)
@given(
    built=linear_models(dtypes=[torch.float32, torch.float64], finite=True),
    keep=st.floats(0.0, 1.0),
    kernel=st.sampled_from(["torch_csr", "torch_csr_i32", "c_csr_i32", "c_csr_u16", "auto"]),
    batch=st.integers(0, 4),
    grad=st.booleans(),
)
def test_export_and_load_exported_match_the_dense_model(built, keep, kernel, batch, grad):
    model, n_in, dtype = built
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model:
            m.weight.mul_(torch.rand(m.weight.shape, generator=g) < keep)
    cands = ("torch_csr", "c_csr_i32") if kernel == "auto" else (kernel,)
    fast = export(model, min_sparsity=0.0, candidates=cands, rounds=1)
    again = load_exported(model, fast.state_dict())
    x = torch.randn(batch, n_in, dtype=dtype, requires_grad=grad)
    ref = model(x)
    for m in (fast, again):
        y = m(x)
        assert y.shape == ref.shape and y.dtype == dtype
        torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)


# -- activations ------------------------------------------------------------------------------
from shrinkage.activations import edge_of_chaos  # noqa: E402


@_settings(30)
@given(
    act=st.sampled_from(["relu", "crelu", "cst", "shifted_relu", "soft_threshold", "tanh", "x"]),
    sparsity=st.one_of(
        st.none(), st.floats(0.5, 0.95), st.sampled_from([0.0, 0.3, 1.0, -1.0, math.nan])
    ),
    q_star=st.one_of(st.floats(0.1, 10.0), st.sampled_from([0.0, -1.0, math.inf, math.nan])),
    m=st.one_of(st.just("safe"), st.none(), st.floats(0.2, 5.0), st.sampled_from([0.0, "x"])),
)
def test_edge_of_chaos_gives_a_finite_config_or_refuses(act, sparsity, q_star, m):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # EdgeOfChaosWarning: an unstable request, allowed
        try:
            cfg = edge_of_chaos(act, sparsity, q_star=q_star, m=m)
        except REFUSALS:
            return
    for v in (cfg.tau, cfg.sigma_w, cfg.sigma_b, cfg.chi, cfg.dV, cfg.q_star):
        assert math.isfinite(v)
    assert cfg.m is None or (math.isfinite(cfg.m) and cfg.m > 0)


# -- data -------------------------------------------------------------------------------------
from shrinkage.data import load_images, mnist, natural_images, patches, to_gray  # noqa: E402


@_settings(80)
@given(
    images=st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 40)).flatmap(
            lambda hw: tensors(
                shape=hw, dtypes=[torch.float64, torch.float32, torch.int32], finite=False
            )
        ),
        max_size=3,
    ),
    size=st.integers(0, 10),
    n=st.integers(-1, 20),
    whiten=st.sampled_from(["olshausen", "zca", None, "pca"]),
)
def test_patches_are_finite_rows_or_refused(images, size, n, whiten):
    arrays = [im.numpy() for im in images]
    try:
        P = patches(arrays, size=size, n=n, whiten=whiten)
    except REFUSALS:
        return
    assert P.shape == (n, size * size) and P.dtype == np.float64 and np.isfinite(P).all()


@_settings(60)
@given(img=tensors(dims=(0, 4), size=(0, 5), finite=True))
def test_to_gray_gives_a_2d_float_image_or_refuses(img):
    try:
        g = to_gray(img.numpy() if img.dtype != torch.bfloat16 else img.float().numpy())
    except REFUSALS:
        return
    assert g.ndim == 2 and g.dtype == np.float64 and np.isfinite(g).all()


@_settings(30)
@given(
    names=st.one_of(
        st.none(),
        st.sampled_from(["camera", "nope", ""]),
        st.lists(st.sampled_from(["moon", "x"]), max_size=2),
    )
)
def test_natural_images_by_name_or_refused(names):
    try:
        imgs = natural_images(names)
    except REFUSALS:
        return
    assert all(im.ndim == 2 and np.isfinite(im).all() for im in imgs)


@_settings(30)
@given(
    blobs=st.lists(st.binary(max_size=200), min_size=1, max_size=3),
    suffix=st.sampled_from([".png", ".jpg", ".imc", ".mat", ".tif"]),
)
def test_loading_arbitrary_bytes_as_images_is_refused_by_name(tmp_path_factory, blobs, suffix):
    folder = tmp_path_factory.mktemp("imgs")
    for i, b in enumerate(blobs):
        (folder / f"f{i}{suffix}").write_bytes(b)
    try:
        imgs = load_images(folder)
    except REFUSALS as e:
        assert "f" in str(e) and suffix in str(e)
        return
    assert all(np.isfinite(im).all() for im in imgs)


@pytest.mark.parametrize("split", ["validation", "", None, 3])
def test_mnist_refuses_unknown_splits(split):
    with pytest.raises(REFUSALS):
        mnist(split)
