"""str and rigl: each update rule against a small numpy reference written here, independently."""

import io
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from shrinkage.weights import Constant, Cubic, Sparsifier
from shrinkage.weights._rigl import (
    drop_fraction,
    drop_grow,
    layer_counts,
    layer_densities,
    sparse_init_scale,
)
from shrinkage.weights._sparsifier import FROZEN_STEPS
from shrinkage.weights._str import D_MAX, HORIZON


def _mlp(seed=0, dtype=torch.float64, sizes=(12, 20, 16, 3)):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).to(dtype)


def _linears(model):
    return [m for m in model if isinstance(m, nn.Linear)]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _batch(t, n=32, d=12, classes=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(1000 + t)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


# -- str -------------------------------------------------------------------------------------
def _np_str(ws, s_vals, sparsity):
    """Independent STR forward with the projection: margins |w| - sigmoid(s_l), the k-th
    smallest over all layers (full sort) as the common shift, never below -sigmoid(s_l)."""
    g = [_sigmoid(s) for s in s_vals]
    margins = np.sort(np.concatenate([(np.abs(w) - gl).ravel() for w, gl in zip(ws, g)]))
    k = int(np.floor(sparsity * margins.size + 1e-6))
    theta = margins[k - 1] if k else -1.0
    out = []
    for w, gl in zip(ws, g):
        shift = max(theta, -gl)
        out.append(np.sign(w) * np.maximum((np.abs(w) - gl) - shift, 0.0))
    return out


def test_str_forward_is_the_soft_threshold_at_the_learned_thresholds_projected():
    model = _mlp()
    sp = Sparsifier(model, 0.7, method="str", method_params={"control": False})
    s_vals = [-3.1, -2.2, -1.7]  # distinct per layer: the shift is common, the tau_l are not
    with torch.no_grad():
        for p, v in zip(sp.threshold_parameters(), s_vals):
            p.fill_(v)
    sp.step()  # decay 0 with control=False: s unchanged, the projection recomputed
    raw = [u.param.detach().numpy().copy() for u in sp.units]
    ref = _np_str(raw, s_vals, 0.7)
    n = sum(w.size for w in raw)
    zeros = 0
    for m, r in zip(_linears(model), ref):
        np.testing.assert_allclose(m.weight.detach().numpy(), r, rtol=1e-12, atol=1e-15)
        zeros += int((m.weight == 0).sum())
    assert zeros == int(np.floor(0.7 * n))
    taus = sorted({round(float(u.pm.tau), 12) for u in sp.units})
    assert len(taus) == 3  # one threshold per layer


def test_str_gradients_reach_kept_weights_and_the_thresholds():
    """L = sum(C * w_hat): dL/dw = C on kept entries, 0 on pruned ones; dL/ds_l =
    -sigmoid'(s_l) * sum_kept sign(w) C (numpy, by hand)."""
    model = _mlp()
    sp = Sparsifier(model, 0.6, method="str", method_params={"s_init": -2.5})
    gen = torch.Generator().manual_seed(3)
    cs = [torch.randn(m.weight.shape, generator=gen, dtype=torch.float64) for m in _linears(model)]
    loss = sum((m.weight * c).sum() for m, c in zip(_linears(model), cs))
    loss.backward()
    for u, m, c in zip(sp.units, _linears(model), cs):
        w = u.param.detach().numpy()
        kept = m.weight.detach().numpy() != 0
        c = c.numpy()
        np.testing.assert_allclose(u.param.grad.numpy(), c * kept, rtol=0, atol=0)
        sv = float(u.pm.s.detach())
        ds = -_sigmoid(sv) * (1 - _sigmoid(sv)) * np.sum(np.sign(w) * c * kept)
        assert float(u.pm.s.grad) == pytest.approx(ds, rel=1e-10)


def _np_decay_rate(s_vals, taus, sizes):
    """The controller's rate, from its formula: the mean over weights of the fraction of
    s_l's way to logit(tau_l) still to go, over HORIZON steps, capped."""
    need = []
    for s, tau, n in zip(s_vals, taus, sizes):
        if s < 0 and 0 < tau < 1:
            need += [min(1.0, max(0.0, 1 - np.log(tau / (1 - tau)) / s))] * n
        elif s < 0 and tau >= 1:
            need += [1.0] * n
        else:
            need += [0.0] * n
    return min(D_MAX, float(np.mean(need)) / HORIZON)


def test_str_decay_follows_the_controller_rule():
    """Each step: s_l <- (1 - d) s_l with d from the previous step's projection (reference)."""
    model = _mlp()
    sp = Sparsifier(model, 0.5, method="str", schedule=Cubic(0, 6))
    opt = torch.optim.SGD(sp.threshold_parameters(), lr=0.0)  # s moves by its decay only
    sizes = [u.param.numel() for u in sp.units]
    rates = []
    for t in range(1, 6):
        s_before = [float(u.pm.s.detach()) for u in sp.units]
        taus = [float(u.pm.tau) for u in sp.units]
        rates.append(_np_decay_rate(s_before, taus, sizes))
        opt.step()
        sp.step()
        for u, s in zip(sp.units, s_before):
            assert float(u.pm.s.detach()) == pytest.approx((1 - rates[-1]) * s, rel=1e-12), t
    assert rates[0] == 0.0 and min(rates[1:]) > 0  # s(0) = 0: nothing to raise; then it lags


def _train_str(control, steps=240, sparsity=0.9):
    model = _mlp(dtype=torch.float32)
    sched = Cubic(10, 150)
    sp = Sparsifier(
        model, sparsity, method="str", schedule=sched, method_params={"control": control}
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    n = sum(u.param.numel() for u in sp.units)
    for t in range(steps):
        x, y = _batch(t, dtype=torch.float32)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sp.step()
        zeros = sum(int((m.weight == 0).sum()) for m in _linears(model))
        assert zeros == int(np.floor(sched(t + 1, sparsity) * n + 1e-6))  # exact at every step
    return sp


def test_str_controller_brings_its_own_thresholds_to_the_target():
    """With the controller, STR's own thresholds (before the projection) end at the target;
    with no decay they stay near s_init and the projection does all the pruning."""
    sp = _train_str(control=True)
    assert sp.learned_sparsity == pytest.approx(0.9, abs=0.01)
    frozen = _train_str(control=False)
    assert frozen.learned_sparsity < 0.1


def test_str_warns_when_the_optimizer_does_not_hold_its_thresholds():
    model = _mlp()
    weights = [p for p in model.parameters()]  # made before the Sparsifier: no s in it
    sp = Sparsifier(model, 0.5, method="str")
    opt = torch.optim.SGD(weights, lr=0.1)
    with pytest.warns(UserWarning, match="threshold_parameters"):
        for t in range(FROZEN_STEPS + 1):
            x, y = _batch(t)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sp.step()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_str_no_frozen_warning_when_updates_fall_below_float_resolution(dtype):
    """The end of a cosine schedule: lr so small that s does not change at all for many steps
    (nor at the first steps): the optimizer does hold s, so no warning."""
    model = _mlp(dtype=dtype)
    sp = Sparsifier(model, 0.5, method="str")
    opt = torch.optim.SGD(model.parameters(), lr=1e-30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in range(3 * FROZEN_STEPS):
            opt.param_groups[0]["lr"] = 0.1 if FROZEN_STEPS // 2 <= t < FROZEN_STEPS else 1e-30
            x, y = _batch(t, dtype=dtype)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            s_before = [p.detach().clone() for p in sp.threshold_parameters()]
            opt.step()
            if t == 0 or t == 2 * FROZEN_STEPS:  # really below resolution, at the start and end
                assert all(torch.equal(p, q) for p, q in zip(sp.threshold_parameters(), s_before))
            sp.step()


# -- rigl: the pure pieces -----------------------------------------------------------------
def _np_erk(shapes, density):
    """ERK densities by bisection on eps in sum_l n_l min(1, eps * r_l) = density * N (a
    different route from the library's iterative capping)."""
    sizes = np.array([np.prod(s) for s in shapes], dtype=float)
    r = np.array([np.sum(s) / np.prod(s) for s in shapes])
    lo, hi = 0.0, 1.0 / r.min() + 1.0
    for _ in range(200):
        eps = (lo + hi) / 2
        if np.sum(sizes * np.minimum(1.0, eps * r)) < density * sizes.sum():
            lo = eps
        else:
            hi = eps
    return np.minimum(1.0, eps * r)


@pytest.mark.parametrize("density", [0.005, 0.02, 0.1, 0.5, 0.9])
def test_erk_densities_match_a_bisection_reference(density):
    shapes = [(20, 1, 5, 5), (50, 20, 5, 5), (500, 800), (10, 500)]  # LeNet-5, Caffe variant
    got = layer_densities(shapes, density, "erk")
    np.testing.assert_allclose(got, _np_erk(shapes, density), rtol=1e-9, atol=1e-12)
    sizes = [math.prod(s) for s in shapes]
    assert sum(d * n for d, n in zip(got, sizes)) == pytest.approx(density * sum(sizes))
    assert layer_densities(shapes, density, "uniform") == [density] * 4


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9, 0.98, 0.995])
@pytest.mark.parametrize("distribution", ["erk", "uniform"])
def test_layer_counts_prune_exactly_floor_s_n_within_one_of_the_densities(sparsity, distribution):
    shapes = [(300, 784), (100, 300), (10, 100)]
    counts = layer_counts(shapes, sparsity, distribution)
    sizes = [math.prod(s) for s in shapes]
    assert sum(sizes) - sum(counts) == math.floor(sparsity * sum(sizes) + 1e-6)
    if sparsity:
        dens = layer_densities(shapes, sum(counts) / sum(sizes), distribution)
        for c, d, n in zip(counts, dens, sizes):
            assert 0 <= c <= n and abs(c - d * n) < 1


def test_drop_fraction_is_rigls_cosine():
    for t in (0, 1, 37, 299, 300, 450):
        ref = 0.3 / 2 * (1 + np.cos(np.pi * t / 300)) if t < 300 else 0.0
        assert drop_fraction(t, 0.3, 300) == pytest.approx(ref, abs=1e-15)


def _np_drop_grow(w, mask, grad, k):
    """Reference: argsort (stable) over flat indices, drop / grow by the rule of the paper."""
    w, mask = w.ravel().copy(), mask.ravel().copy()
    active = np.flatnonzero(mask)
    drop = active[np.argsort(np.abs(w[active]), kind="stable")[:k]]
    after = mask.copy()
    after[drop] = False
    candidates = np.flatnonzero(~after)
    grow = candidates[np.argsort(-np.abs(grad.ravel()[candidates]), kind="stable")[:k]]
    new = after.copy()
    new[grow] = True
    for i in grow:
        if not mask[i]:
            w[i] = 0.0
    w[~new] = 0.0
    return w, new


@pytest.mark.parametrize("k", [0, 1, 7, 30])
def test_drop_grow_matches_numpy_reference(k):
    g = torch.Generator().manual_seed(k)
    w = torch.randn(12, 10, generator=g, dtype=torch.float64)
    mask = torch.rand(12, 10, generator=g) < 0.4
    w[~mask] = 0.0
    grad = torch.randn(12, 10, generator=g, dtype=torch.float64)
    grad[0, :5] = 0.0  # ties in the grow scores: the lower index wins
    ref_w, ref_mask = _np_drop_grow(w.numpy(), mask.numpy(), grad.numpy(), k)
    n_active = int(mask.sum())
    drop_grow(w, mask, grad, k)
    np.testing.assert_array_equal(mask.numpy().ravel(), ref_mask)
    np.testing.assert_array_equal(w.numpy().ravel(), ref_w)
    assert int(mask.sum()) == n_active


# -- rigl: in the Sparsifier ------------------------------------------------------------------
_RIGL = {"update_end": 9, "update_every": 3}


def test_rigl_update_grows_by_the_dense_gradient_of_the_update_step():
    """At an update step the new mask is the reference's, from the raw weights after the
    optimizer step and dL/dw_hat of a dense twin (the same effective weights, no mask)."""
    model = _mlp()
    sp = Sparsifier(model, 0.8, method="rigl", method_params=_RIGL)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    n = sum(u.param.numel() for u in sp.units)
    updates = 0
    for t in range(12):
        x, y = _batch(t)
        twin = _mlp(seed=5)
        with torch.no_grad():
            for a, b in zip(_linears(twin), _linears(model)):
                a.weight.copy_(b.weight)
                a.bias.copy_(b.bias)
        nn.functional.cross_entropy(twin(x), y).backward()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        captured = [u.pm.dense_grad is not None for u in sp.units]
        update = (t + 1) % 3 == 0 and t + 1 < 9
        assert captured == [update] * 3, t  # the dense gradient only before an update
        opt.step()
        w_after = [u.param.detach().numpy().copy() for u in sp.units]
        masks = [u.pm.mask.numpy().copy() for u in sp.units]
        keep = [int(u.pm.mask.sum()) for u in sp.units]
        sp.step()
        frac = 0.3 / 2 * (1 + np.cos(np.pi * (t + 1) / 9)) if update else 0.0
        for u, a, w, m, c in zip(sp.units, _linears(twin), w_after, masks, keep):
            k = int(np.floor(frac * c))
            ref_w, ref_mask = _np_drop_grow(w, m, a.weight.grad.numpy(), k)
            np.testing.assert_array_equal(u.pm.mask.numpy().ravel(), ref_mask, err_msg=str(t))
            np.testing.assert_allclose(u.param.detach().numpy().ravel(), ref_w, rtol=0, atol=0)
            updates += bool(k) and not np.array_equal(ref_mask, m.ravel())
        assert sum(int(u.pm.mask.sum()) for u in sp.units) == n - int(np.floor(0.8 * n))
    assert updates >= 3  # the masks did change


def test_rigl_inactive_weights_stay_zero_under_momentum_and_masks_freeze_at_update_end():
    model = _mlp()
    sp = Sparsifier(model, 0.9, method="rigl", method_params={"update_end": 6, "update_every": 2})
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.99, weight_decay=1e-3)
    frozen = None
    for t in range(14):
        x, y = _batch(t)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sp.step()
        for u in sp.units:
            assert (u.param[~u.pm.mask] == 0).all()
        if sp.step_count == 6:
            frozen = [u.pm.mask.clone() for u in sp.units]
    assert all(torch.equal(a, u.pm.mask) for a, u in zip(frozen, sp.units))


def test_rigl_update_without_a_backward_is_a_clear_error():
    model = _mlp()
    sp = Sparsifier(model, 0.5, method="rigl", method_params={"update_end": 10, "update_every": 1})
    with pytest.raises(RuntimeError, match="loss.backward"):
        sp.step()


def test_rigl_initial_masks_follow_erk_and_the_seed():
    model = _mlp(sizes=(12, 40, 30, 3))
    sp = Sparsifier(model, 0.7, method="rigl", method_params={"update_end": 10})
    shapes = [tuple(u.param.shape) for u in sp.units]
    assert [int(u.pm.mask.sum()) for u in sp.units] == layer_counts(shapes, 0.7, "erk")
    again = Sparsifier(
        _mlp(sizes=(12, 40, 30, 3)), 0.7, method="rigl", method_params={"update_end": 10}
    )
    other = Sparsifier(
        _mlp(sizes=(12, 40, 30, 3)),
        0.7,
        method="rigl",
        method_params={"update_end": 10, "seed": 1},
    )
    assert all(torch.equal(a.pm.mask, b.pm.mask) for a, b in zip(sp.units, again.units))
    assert not all(torch.equal(a.pm.mask, b.pm.mask) for a, b in zip(sp.units, other.units))
    uni = Sparsifier(
        _mlp(sizes=(12, 40, 30, 3)),
        0.7,
        method="rigl",
        method_params={"update_end": 10, "distribution": "uniform"},
    )
    assert [int(u.pm.mask.sum()) for u in uni.units] == layer_counts(shapes, 0.7, "uniform")


def test_sparse_init_scale_matches_a_per_unit_count():
    gen = torch.Generator().manual_seed(3)
    mask = torch.rand(6, 4, 3, 3, generator=gen) < 0.2
    mask[2] = False  # a unit with no input left: factor from kept = 1
    flat = mask.numpy().reshape(6, -1)
    want = np.sqrt(36 / np.maximum(flat.sum(axis=1), 1))
    got = sparse_init_scale(mask)
    assert got.shape == (6, 1, 1, 1)
    np.testing.assert_allclose(got.flatten().numpy(), want, rtol=1e-6)
    with pytest.raises(ValueError, match="mask must be at least 2-D"):
        sparse_init_scale(torch.ones(5, dtype=torch.bool))


def test_rigl_sparse_init_restores_the_dense_preactivation_variance():
    # 99 % sparse: the masked dense init leaves each unit ~1 % of its input variance; the
    # sparse-aware init puts it back (Monte Carlo over units and inputs)
    torch.manual_seed(0)
    dense = nn.Linear(2000, 400)
    x = torch.randn(256, 2000)
    ref = (x @ dense.weight.detach().T).var().item()
    out = {}
    for init in ("dense", "sparse"):
        layer = nn.Linear(2000, 400)
        layer.load_state_dict(dense.state_dict())
        model = nn.Sequential(layer)
        sp = Sparsifier(model, 0.99, method="rigl", method_params={**_RIGL, "init": init})
        w = sp.effective_weights()["0"]
        out[init] = (x @ w.T).var().item()
    assert out["dense"] < 0.05 * ref
    assert abs(out["sparse"] / ref - 1) < 0.15
    # only the kept weights moved, by their unit's factor
    sp_w = sp.units[0].param.detach()
    mask = sp.units[0].pm.mask
    factor = sparse_init_scale(mask)
    torch.testing.assert_close(sp_w[mask], (dense.weight.detach() * factor)[mask])


# -- both: checkpoints, errors ------------------------------------------------------------------
@pytest.mark.parametrize("method", ["str", "rigl"])
def test_resume_is_bitwise_exact(method):
    kw = {"method_params": {"update_end": 14, "update_every": 2}} if method == "rigl" else {}
    sched = Constant() if method == "rigl" else Cubic(1, 8)

    def make():
        model = _mlp(dtype=torch.float32)
        sp = Sparsifier(model, 0.8, method=method, schedule=sched, **kw)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, sp, opt

    def train(model, sp, opt, steps, start=0):
        for t in range(start, start + steps):
            x, y = _batch(t, dtype=torch.float32)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sp.step()

    m1, s1, o1 = make()
    train(m1, s1, o1, 12)
    m2, s2, o2 = make()
    train(m2, s2, o2, 5)
    buf = io.BytesIO()
    torch.save({"model": m2.state_dict(), "opt": o2.state_dict(), "sp": s2.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    m3, s3, o3 = make()
    m3.load_state_dict(ck["model"])
    o3.load_state_dict(ck["opt"])
    s3.load_state_dict(ck["sp"])
    train(m3, s3, o3, 7, start=5)
    for (k1, a), (k3, b) in zip(m1.state_dict().items(), m3.state_dict().items()):
        assert k1 == k3 and torch.equal(a, b), k1


def test_bad_method_params_name_themselves():
    with pytest.raises(
        ValueError, match="method_params must be a dict of options or None, got list"
    ):
        Sparsifier(_mlp(), 0.5, method="str", method_params=[("s_init", -4.0)])
    with pytest.raises(ValueError, match="method_params only apply to methods 'str', 'rigl'"):
        Sparsifier(_mlp(), 0.5, method_params={"s_init": -3.0})
    with pytest.raises(ValueError, match="unknown method_params 'alpha'"):
        Sparsifier(_mlp(), 0.5, method="rigl", method_params={"update_end": 5, "alpha": 0.3})
    with pytest.raises(ValueError, match="needs method_params\\['update_end'\\]"):
        Sparsifier(_mlp(), 0.5, method="rigl")
    with pytest.raises(ValueError, match="drop_fraction'\\] must be in \\(0, 1\\], got 1.5"):
        Sparsifier(_mlp(), 0.5, method="rigl", method_params={**_RIGL, "drop_fraction": 1.5})
    with pytest.raises(ValueError, match="unknown method_params\\['distribution'\\] 'er'"):
        Sparsifier(_mlp(), 0.5, method="rigl", method_params={**_RIGL, "distribution": "er"})
    with pytest.raises(ValueError, match="unknown method_params\\['init'\\] 'kaiming'"):
        Sparsifier(_mlp(), 0.5, method="rigl", method_params={**_RIGL, "init": "kaiming"})
    with pytest.raises(ValueError, match="scope must stay 'global', got scope='layer'"):
        Sparsifier(_mlp(), 0.5, method="rigl", scope="layer", method_params={"update_end": 5})
    with pytest.raises(ValueError, match="schedule must be None or Constant\\(\\), got Cubic"):
        Sparsifier(_mlp(), 0.5, method="rigl", schedule=Cubic(0, 5), method_params=_RIGL)
    with pytest.raises(ValueError, match="rescale=True does not apply to method='rigl'"):
        Sparsifier(_mlp(), 0.5, method="rigl", rescale=True, method_params=_RIGL)
    for bad in ("no", "False", 1, 0.0):  # a config file's value was read as True
        with pytest.raises(ValueError, match="rescale must be True, False or None"):
            Sparsifier(_mlp(), 0.5, rescale=bad)
    # gmp's forward weight is w * mask: rescale=True was accepted, reported and ignored
    with pytest.raises(ValueError, match="rescale=True does not apply to method='gmp'"):
        Sparsifier(_mlp(), 0.5, method="gmp", rescale=True)
    with pytest.raises(ValueError, match="s_init'\\] must be a finite number, got nan"):
        Sparsifier(_mlp(), 0.5, method="str", method_params={"s_init": float("nan")})
    with pytest.raises(ValueError, match="decay.*would be ignored"):
        Sparsifier(_mlp(), 0.5, method="str", method_params={"decay": 1e-3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Sparsifier(_mlp(), 0.5, method="str", method_params={"decay": 1e-3, "control": False})
