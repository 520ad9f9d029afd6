"""The cheap sparsifier step (issue 12, part 2): the same thresholds and masks as the plain
selection, step by step, for every method and scope; the search and the fused C passes
against torch references."""

import contextlib
import math

import pytest
import torch
from torch import nn

from shrinkage.weights import METHODS, Cubic, PrunedLayerWarning, Sparsifier, _prune
from shrinkage.weights._methods import RECORDS, _ste_soft
from shrinkage.weights._prune import KthSearch, WeightScores
from shrinkage.weights._sparsifier import Sparsifier as _Sp

needs_c = pytest.mark.skipif(not _prune.available(), reason="no C compiler")


def _model(dtype=torch.float32, seed=0):
    """About 18k weights: above the size where the search reads a bracket only."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 8, 3),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 96),
        nn.ReLU(),
        nn.Linear(96, 48),
        nn.ReLU(),
        nn.Linear(48, 5),
    ).to(dtype)


@contextlib.contextmanager
def _plain_selection():
    """The selection as it was before the search: torch only, no compiled step, no hint."""
    mp = pytest.MonkeyPatch()
    mp.setattr(_Sp, "_compiled_ready", lambda self: False)
    mp.setattr(_Sp, "_searches", lambda self, n: [None] * n)
    mp.setattr(_Sp, "_score_buffer", lambda self: None)
    try:
        yield
    finally:
        mp.undo()


def _state(sp):
    out = []
    for u in sp.units:
        pm = u.pm
        out.append(
            (
                pm.tau.clone(),
                pm.lam.clone(),
                None if pm.mask is None else pm.mask.clone(),
                None if pm.ties is None else pm.ties.clone(),
            )
        )
    return out


def _same_state(a, b, where):
    for i, (x, y) in enumerate(zip(a, b)):
        for name, s, t in zip(("tau", "lam", "mask", "ties"), x, y):
            assert (s is None) == (t is None), (where, i, name)
            if s is not None:
                assert torch.equal(s, t), (where, i, name, s, t)


def _step_both(fast, ref, t):
    """One step of each (ref with the plain selection); the same state after it."""
    with _plain_selection():
        ref.step()
    fast.step()
    _same_state(_state(fast), _state(ref), t)
    assert fast.empty_layers == ref.empty_layers


@pytest.mark.filterwarnings("ignore::shrinkage.weights.PrunedLayerWarning")
@pytest.mark.parametrize("scope", ["global", "layer"])
# rigl has no threshold (its mask moves by drop / grow): nothing to search
@pytest.mark.parametrize("method", [m for m in METHODS if not RECORDS[m].dynamic])
def test_every_step_prunes_the_weights_the_plain_selection_prunes(method, scope):
    """Two copies of a model get the same raw-weight updates (noise, a scaled jump, a block
    of equal weights that ties at the threshold); at every step the thresholds, penalty
    weights, gmp masks, tie-breaks and emptied layers equal those of the plain selection,
    and the forward weights have the same zeros (and values, up to the rescale's rounding)."""
    kw = {"penalty": "l1"} if method == "prox_ste" else {}
    sched = Cubic(start=0, end=30, initial=0.3)
    fast_model, ref_model = _model(), _model()
    fast = Sparsifier(fast_model, 0.97, method=method, schedule=sched, scope=scope, **kw)
    with _plain_selection():
        ref = Sparsifier(ref_model, 0.97, method=method, schedule=sched, scope=scope, **kw)
        g = torch.Generator().manual_seed(3)
        _same_state(_state(fast), _state(ref), "init")
        for t in range(1, 40):
            with torch.no_grad():
                for a, b in zip(fast_model.parameters(), ref_model.parameters()):
                    d = 0.02 * torch.randn(a.shape, generator=g, dtype=a.dtype)
                    if t == 12:
                        d = d + a  # every weight doubles: the threshold jumps
                    if t == 20 and a.dim() == 2:
                        d = d - a  # one tensor of equal weights: ties at the threshold
                        d[:3] += 0.125
                    a.add_(d)
                    b.add_(d)
            _step_both(fast, ref, t)
            ef, er = fast.effective_weights(), ref.effective_weights()
            for name in ef:
                assert torch.equal(ef[name] != 0, er[name] != 0), (t, name)
                torch.testing.assert_close(ef[name], er[name], rtol=1e-5, atol=1e-7)


@needs_c
@pytest.mark.filterwarnings("ignore::shrinkage.weights.PrunedLayerWarning")
@pytest.mark.parametrize("method", ["st3", "st3sigma", "gmp"])
def test_the_compiled_step_runs_and_reads_the_weights_about_once(method):
    """The compiled step is the one taken (not the fallback), in float64 too, and most steps
    read the weights once."""
    model = _model(torch.float64)
    sp = Sparsifier(model, 0.95, method=method, schedule=Cubic(start=0, end=100, initial=0.5))
    assert sp._compiled_ready()
    g = torch.Generator().manual_seed(0)
    search = sp._searches(1)[0]
    passes = search.passes
    for _ in range(30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1e-3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        sp.step()
    assert search.passes - passes <= 36


@needs_c
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_usual_search_step_is_one_c_call_with_the_general_answer(dtype, monkeypatch):
    """Drifting weights: nearly every step is answered by the one-call path, a jump by the
    general search, and every answer is torch.kthvalue's."""
    g = torch.Generator().manual_seed(3)
    ws = [
        torch.randn(300, 80, generator=g, dtype=dtype),
        torch.randn(10, 300, generator=g, dtype=dtype),
    ]
    answered = []
    real = WeightScores.kth_step
    monkeypatch.setattr(
        WeightScores, "kth_step", lambda *a: answered.append(real(*a) is not None) or real(*a)
    )
    s = KthSearch()
    for step in range(40):
        for w in ws:
            w.add_(1e-3 * torch.randn(w.shape, generator=g, dtype=dtype))
        if step == 25:
            ws[0].mul_(5)  # far outside the bracket: the general search answers
        flat = torch.cat([w.abs().reshape(-1) for w in ws])
        k = int(flat.numel() * (0.5 + 0.005 * step))
        v, n_le = s(WeightScores(ws, [1.0, 1.0], [None, None]), k)
        ref = torch.kthvalue(flat, k).values
        assert float(v) == float(ref) and n_le == int((flat <= ref).sum()), step
    assert len(answered) == 39  # every call after the first (which starts from a sample)
    assert sum(answered) >= 32 and not all(answered)


@needs_c
@pytest.mark.filterwarnings("ignore::shrinkage.weights.PrunedLayerWarning")
@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("method", ["st3", "st3sigma", "gmp"])
def test_ties_at_the_threshold_stay_on_the_compiled_path(method, scope, monkeypatch):
    """Weights on a coarse grid tie at the threshold at nearly every step: the compiled step
    breaks the ties itself (the torch selection is never called) and prunes exactly what
    the plain selection prunes."""
    sched = Cubic(start=0, end=25, initial=0.3)
    fast_model, ref_model = _model(), _model()
    with torch.no_grad():
        for a, b in zip(fast_model.parameters(), ref_model.parameters()):
            a.copy_(torch.round(a * 64) / 64)
            b.copy_(a)
    fast = Sparsifier(fast_model, 0.9, method=method, schedule=sched, scope=scope)
    with _plain_selection():
        ref = Sparsifier(ref_model, 0.9, method=method, schedule=sched, scope=scope)
    real = _Sp._thresholds
    calls = []
    monkeypatch.setattr(_Sp, "_thresholds", lambda self, s: calls.append(self) or real(self, s))
    g = torch.Generator().manual_seed(5)
    tied_steps = 0
    for t in range(1, 30):
        with torch.no_grad():
            for a, b in zip(fast_model.parameters(), ref_model.parameters()):
                d = torch.round(torch.randn(a.shape, generator=g) * 2) / 64
                a.add_(d)
                b.add_(d)
        _step_both(fast, ref, t)
        tied_steps += any(u.pm.ties is not None for u in ref.units)
    assert [c for c in calls if c is fast] == []
    if method != "gmp":  # gmp folds its tied entries into the mask at once
        assert tied_steps >= 20


def test_a_nan_weight_is_named_on_the_compiled_path_too():
    model = _model()
    sp = Sparsifier(model, 0.9)
    with torch.no_grad():
        model[4].parametrizations.weight.original[3, 7] = float("nan")
    with pytest.raises(ValueError, match="layer '4'.*NaN"):
        sp.step()


@pytest.mark.filterwarnings("ignore::shrinkage.weights.PrunedLayerWarning")
def test_without_the_compiled_kernels_the_steps_are_the_same(monkeypatch):
    """SHRINKAGE_NO_COMPILE: the torch paths (what CUDA tensors take) give the same state."""
    models = [_model(), _model()]
    sps = [Sparsifier(m, 0.9, method="gmp", schedule=Cubic(0, 20, 0.4)) for m in models]
    monkeypatch.setattr(_prune, "load", lambda: None)
    assert not sps[1]._compiled_ready()
    g = torch.Generator().manual_seed(1)
    for t in range(15):
        with torch.no_grad():
            for a, b in zip(*(m.parameters() for m in models)):
                d = 0.01 * torch.randn(a.shape, generator=g)
                a.add_(d)
                b.add_(d)
        sps[1].step()
        monkeypatch.undo()
        sps[0].step()
        monkeypatch.setattr(_prune, "load", lambda: None)
        _same_state(_state(sps[0]), _state(sps[1]), t)


# -- the search ---------------------------------------------------------------------------
def _sources(kind, ws, scales, masks):
    parts = []
    for w, sc, mk in zip(ws, scales, masks):
        a = w.abs().reshape(-1)
        if mk is not None:
            a = torch.where(mk.reshape(-1), a, torch.full_like(a, -1.0))
        elif sc != 1.0:
            a = a * sc
        parts.append(a)
    flat = torch.cat(parts)
    if kind == "tensor":
        return flat, flat
    return flat, WeightScores(ws, scales, masks)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["tensor", "weights", "gmp", "sigma"])
def test_search_equals_kthvalue_on_drifting_jumping_and_tied_scores(kind, dtype):
    if kind != "tensor" and not _prune.available():
        pytest.skip("no C compiler")
    g = torch.Generator().manual_seed(0)
    ws = [
        torch.randn(60, 200, generator=g, dtype=dtype) * 0.05,
        torch.randn(30, 70, generator=g, dtype=dtype) * 0.1,
        torch.randn(1, 3, generator=g, dtype=dtype),
        torch.zeros(0, 4, dtype=dtype),  # an empty tensor
    ]
    masks = [None] * 4
    scales = [1.0, 1.0, 1.0, 1.0] if kind != "sigma" else [1.3, 2.7, 0.9, 2.0]
    if kind == "gmp":
        masks = [torch.rand(w.shape, generator=g) > 0.3 for w in ws]
    s = KthSearch()
    for step in range(60):
        for w in ws:
            w.add_(1e-3 * torch.randn(w.shape, generator=g, dtype=dtype))
        if step == 10:
            ws[0].mul_(3)  # a jump far beyond the bracket
        if step == 20:
            ws[1][:10] = 0.0  # many equal scores
        if step == 30:
            ws[0].copy_((ws[0] * 20).round() / 20)  # a coarse grid: ties everywhere
        if kind == "gmp" and step % 5 == 0:
            for mk in masks:
                mk &= torch.rand(mk.shape, generator=g) > 0.1
        flat, src = _sources(kind, ws, scales, masks)
        n = flat.numel()
        ks = {
            0: 1,
            1: n,
            2: int(torch.randint(1, n + 1, (1,), generator=g)),
            3: int((flat < 0).sum()) or 1,
        }
        k = ks.get(step % 7, max(1, int(n * (0.5 + 0.004 * step))))
        v, n_le = s(src, k)
        ref = torch.kthvalue(flat, k).values
        assert v.dtype == dtype and v.shape == () and float(v) == float(ref), (step, k)
        assert n_le == int((flat <= ref).sum()), step
        if kind != "tensor":
            want = [float(w.max()) if w.numel() else -math.inf for w in _split(flat, ws)]
            assert src.smax == want


def _split(flat, ws):
    return torch.split(flat, [w.numel() for w in ws])


def test_search_refuses_a_k_out_of_range():
    with pytest.raises(ValueError, match="k must be in"):
        KthSearch()(torch.randn(10), 11)


# -- the fused passes ---------------------------------------------------------------------
@needs_c
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 5), (7, 1), (33, 130), (6, 3, 5, 5), (200, 3000)])
def test_st3_forward_equals_the_torch_expression(shape, dtype):
    """Every entry as torch computes it (exactly without the rescale; with it, up to the
    rounding of the per-channel means, a few ulps of w), zeros at the same places, the
    gradient the identity; a row with everything pruned and tau = 0 included."""
    g = torch.Generator().manual_seed(sum(shape))
    w = (torch.randn(shape, generator=g, dtype=dtype) * 0.1).requires_grad_()
    with torch.no_grad():
        w[0] *= 1e-3  # a row below the threshold
    for tau in (0.0, 0.05, 10.0):
        t = torch.tensor(tau, dtype=dtype)
        for rescale in (False, True):
            got = _prune.st3_forward(w, t, rescale)
            want = _ste_soft(w, t, rescale)
            assert torch.equal(got != 0, want != 0)
            if rescale:
                # gamma to a few ulps; w + (y - w) then rounds at the scale of w
                bound = 8 * torch.finfo(dtype).eps * (w.abs() + want.abs())
                assert bool(((got - want).abs() <= bound).all())
            else:
                assert torch.equal(got, want)
            up = torch.randn(shape, generator=g, dtype=dtype)
            (gw,) = torch.autograd.grad(got, w, up)
            assert torch.equal(gw, up)


@needs_c
def test_gmp_forward_backward_and_update_equal_torch():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(40, 50, generator=g).requires_grad_()
    mask = torch.rand(40, 50, generator=g) > 0.4
    got = _prune.masked(w, mask)
    want = w * mask
    assert torch.equal(got, want)
    assert torch.equal(torch.signbit(got), torch.signbit(want))  # -0.0 where torch has it
    up = torch.randn(40, 50, generator=g)
    assert torch.equal(torch.autograd.grad(got, w, up)[0], torch.autograd.grad(want, w, up)[0])
    raw, m = w.detach().clone(), mask.clone()
    scores = torch.where(m, raw.abs(), torch.full_like(raw, -1.0))
    tau = float(scores.reshape(-1).kthvalue(1500).values)
    _prune.gmp_update(raw, m, tau)
    assert torch.equal(m, scores > tau)
    assert torch.equal(raw, w.detach().masked_fill(~(scores > tau), 0.0))


@needs_c
@pytest.mark.filterwarnings("ignore::shrinkage.weights.PrunedLayerWarning")
def test_the_compiled_step_is_used_in_training_and_trains_the_same():
    """A few SGD steps of st3 with the compiled forward and step against the torch ones:
    the same weights pruned at every step, losses equal to float rounding."""
    import torch.nn.functional as F

    def run(compiled):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        mp = pytest.MonkeyPatch()
        if not compiled:
            mp.setattr(_prune, "usable", lambda w: False)
        try:
            sp = Sparsifier(model, 0.9, schedule=Cubic(0, 8, 0.5))
            g = torch.Generator().manual_seed(0)
            masks, losses = [], []
            for _ in range(10):
                x = torch.randn(16, 2, 6, 6, generator=g)
                y = torch.randint(0, 5, (16,), generator=g)
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sp.step()
                masks.append({k: v.clone() for k, v in sp.masks().items()})
                losses.append(float(loss.detach()))
        finally:
            mp.undo()
        return masks, losses

    (m1, l1), (m2, l2) = run(True), run(False)
    assert l1 == pytest.approx(l2, rel=1e-4)
    assert sum(int((a[k] != b[k]).sum()) for a, b in zip(m1, m2) for k in a) <= 2


def test_pruned_layer_warning_still_points_at_the_caller():
    model = nn.Sequential(nn.Linear(3000, 2), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.mul_(1e-6)
    with pytest.warns(PrunedLayerWarning) as rec:
        Sparsifier(model, 0.9995)
    assert rec[0].filename == __file__
