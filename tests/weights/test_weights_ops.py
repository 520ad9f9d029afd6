"""Pure tensor functions against independent references (sorting, numpy loops, public prox)."""

import numpy as np
import pytest
import torch

from shrinkage.thresholds import PENALTIES, lam_for_threshold, prox
from shrinkage.weights import channel_gamma, kth_threshold, prox_weight, st3_weight

_PARAMS = {"cel0": {"a": 0.7}, "mcp": {"gamma": 3.0}, "scad": {"gamma": 3.7}}


@pytest.mark.parametrize("s", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_kth_threshold_prunes_exactly_floor_s_n(s):
    """The threshold is the floor(s n)-th smallest of a full sort; exactly that many are <= it."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1003, generator=g)
    tau = kth_threshold(x, s)
    k = int(np.floor(s * 1003 + 1e-6))
    if k == 0:
        assert float(tau) == 0.0
    else:
        assert float(tau) == float(torch.sort(x).values[k - 1])
    assert int((x <= tau).sum()) == k


def test_channel_gamma_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 3, 2, 2, generator=g, dtype=torch.float64)
    w[2] = 0.01 * w[2]  # a channel the mask empties
    mask = w.abs() > 0.5
    got = channel_gamma(w, mask).reshape(-1)
    wn, mn = w.numpy(), mask.numpy()
    for c in range(5):
        rho = (np.mean(np.abs(wn[c]) * mn[c]) + 1e-6) / (np.mean(np.abs(wn[c])) + 1e-6)
        assert got[c].item() == pytest.approx(1.01 / (rho + 0.01), rel=1e-12)
    assert got[2].item() < 102 and got[2].item() > 90  # capped near 101


def test_st3_weight_against_numpy():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(4, 6, generator=g, dtype=torch.float64)
    tau = torch.tensor(0.7, dtype=torch.float64)
    wn = w.numpy()
    soft = np.sign(wn) * np.maximum(np.abs(wn) - 0.7, 0)
    keep = np.abs(wn) > 0.7
    rho = (np.mean(np.abs(wn) * keep, 1) + 1e-6) / (np.mean(np.abs(wn), 1) + 1e-6)
    ref = soft * (1.01 / (rho + 0.01))[:, None]
    np.testing.assert_allclose(st3_weight(w, tau).numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(st3_weight(w, tau, rescale=False).numpy(), soft, rtol=1e-12)


@pytest.mark.parametrize("name", PENALTIES)
def test_prox_weight_zeroes_exactly_the_scheduled_entries(name):
    """lam = lam_for_threshold(tau): exactly |w| <= tau is zero, the rest is the public prox."""
    g = torch.Generator().manual_seed(5)
    w = torch.randn(50, 40, generator=g, dtype=torch.float64)
    tau = kth_threshold(w.abs(), 0.9)
    params = _PARAMS.get(name, {})
    lam = lam_for_threshold(name, float(tau), step=1.0, **params)
    out = prox_weight(w, tau, torch.tensor(lam, dtype=w.dtype), name, params)
    assert int((out == 0).sum()) == 1800
    keep = w.abs() > tau
    ref = prox(name, w, lam, step=1.0, **params)
    torch.testing.assert_close(out[keep], ref[keep], rtol=1e-12, atol=1e-12)


def _cases():
    g = torch.Generator().manual_seed(7)
    n = 100_000
    r = torch.rand(n, generator=g)
    ties = torch.where(r < 0.7, torch.full_like(r, -1.0), r)  # gmp: pruned entries score -1
    layered = torch.cat([0.001 * torch.rand(90_000, generator=g), torch.rand(10_000, generator=g)])
    trap = r.clone()
    trap[:: max(1, n // 8192)] = 1000.0  # the strided sample sees only outliers
    return {
        "random": r,
        "sorted": torch.sort(r).values,
        "descending": torch.sort(r, descending=True).values,
        "ties": ties,
        "layered": layered,
        "trap": trap,
        "small": r[:1000],
    }


@pytest.mark.parametrize(
    "case", ["random", "sorted", "descending", "ties", "layered", "trap", "small"]
)
@pytest.mark.parametrize("frac", [1e-5, 0.3, 0.7, 0.99, 1.0])
def test_kth_smallest_equals_the_sorted_entry(case, frac):
    """The bracketed selection returns exactly sort(x)[k - 1], also where the sample misleads."""
    from shrinkage.weights import kth_smallest

    x = _cases()[case]
    k = max(1, int(frac * x.numel()))
    assert float(kth_smallest(x, k)) == float(torch.sort(x).values[k - 1])


def test_kth_smallest_selects_from_a_bracket_and_falls_back_when_misled(monkeypatch):
    """On spread-out data the final selection sees ~1/10 of the entries; on the trap, all."""
    import shrinkage.weights._ops as ops

    sizes = []
    real = torch.kthvalue
    monkeypatch.setattr(ops.torch, "kthvalue", lambda x, k: sizes.append(x.numel()) or real(x, k))
    cases = _cases()
    ops.kth_smallest(cases["random"], 70_000)
    assert max(sizes) < 15_000
    sizes.clear()
    ops.kth_smallest(cases["trap"], 70_000)
    assert max(sizes) == 100_000
