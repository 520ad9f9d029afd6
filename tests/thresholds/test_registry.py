"""The penalty registry is the one extension point: a penalty registered once is used by the
checked API, the weights pillar (prox_ste), the codes pillar (encode) and the operator plots."""

import numpy as np
import pytest
import torch
from torch import nn

from shrinkage.codes import encode, objective
from shrinkage.thresholds import (
    PENALTIES,
    Penalty,
    cores,
    get_penalty,
    penalty,
    prox,
    register_penalty,
    threshold,
    unregister_penalty,
)
from shrinkage.thresholds.plots import operators_figure
from shrinkage.weights import Sparsifier


def _elastic_value(u, lam):
    return lam * (u.abs() + 0.5 * u * u)


def _elastic_prox(x, lam, step):
    return cores.soft(x, step * lam) / (1.0 + step * lam)


# The elastic net lam (|u| + u^2 / 2): soft threshold at step lam, then shrink by 1 + step lam.
ELASTIC = Penalty(
    "elastic",
    _elastic_value,
    _elastic_prox,
    lambda lam, step: step * lam,
    lambda thr, step: thr / step,
    doc="lam (|u| + u^2/2); prox: soft threshold, then divide by 1 + step lam",
)


@pytest.fixture
def elastic():
    register_penalty(ELASTIC)
    yield "elastic"
    unregister_penalty("elastic")


def test_registered_prox_is_the_argmin(elastic):
    """prox(x) minimises 1/2 (u - x)^2 + step G(u): against a grid search (spacing 1e-4),
    and exactly 0 at or below threshold(), non-zero above."""
    x = np.linspace(-3.0, 3.0, 61)
    lam, step = 0.6, 0.8
    grid = np.linspace(-4.0, 4.0, 80_001)
    g = step * penalty(elastic, grid, lam)
    ref = np.array([grid[np.argmin(0.5 * (grid - xi) ** 2 + g)] for xi in x])
    np.testing.assert_allclose(prox(elastic, x, lam, step), ref, atol=2e-4)
    thr = threshold(elastic, lam, step)
    out = prox(elastic, x, lam, step)
    assert np.all(out[np.abs(x) <= thr] == 0) and np.all(out[np.abs(x) > thr + 1e-9] != 0)


def test_weights_prox_ste_uses_it(elastic):
    """Sparsifier(method="prox_ste") with the new penalty: exactly the scheduled fraction is
    zero, and the kept weights are the new prox at lam = lam_for(tau)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 10), nn.Linear(10, 4))
    raw = [model[0].weight.detach().clone(), model[1].weight.detach().clone()]
    sp = Sparsifier(model, 0.6, method="prox_ste", penalty=elastic, rescale=False)
    flat = torch.cat([w.abs().reshape(-1) for w in raw])
    tau = torch.kthvalue(flat, int(0.6 * flat.numel())).values
    for w, eff in zip(raw, sp.effective_weights().values()):
        expected = torch.sign(w) * torch.clamp(w.abs() - tau, min=0) / (1 + tau)
        torch.testing.assert_close(eff, expected * (w.abs() > tau))
    assert sp.density() == pytest.approx(0.4, abs=1 / flat.numel())


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # capped on purpose
def test_codes_encode_uses_it(elastic):
    """With an orthonormal dictionary the energy separates, so the codes are the prox of the
    coefficients; the reported objective is the energy computed by hand."""
    gen = torch.Generator().manual_seed(1)
    D = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))[0].T
    X = torch.randn(5, 6, generator=gen, dtype=torch.float64) * 2
    lam = 0.4
    Z, info = encode(X, D, elastic, lam, max_iter=5000, tol=1e-12, return_info=True)
    torch.testing.assert_close(Z, prox(elastic, X @ D.T, lam), atol=1e-8, rtol=0)
    by_hand = (0.5 * ((X - Z @ D) ** 2).sum(1) + (lam * (Z.abs() + Z * Z / 2)).sum(1)).mean()
    assert float(objective(X, D, Z, elastic, lam)) == pytest.approx(float(by_hand), rel=1e-12)
    assert info["objective"] == pytest.approx(float(by_hand), rel=1e-9)


def test_operator_plot_draws_it(elastic):
    fig = operators_figure(lam=1.0)
    ax_prox, ax_pen = fig.axes[0], fig.axes[1]
    assert any(ln.get_label().startswith("elastic") for ln in ax_prox.get_lines())
    assert any(ln.get_label() == "elastic" for ln in ax_pen.get_lines())


def test_registry_errors_and_removal(elastic):
    assert elastic in PENALTIES and get_penalty(elastic) is ELASTIC
    with pytest.raises(ValueError, match="already registered"):
        register_penalty(ELASTIC)
    assert register_penalty(ELASTIC, replace=True) is ELASTIC
    with pytest.raises(ValueError, match="must be a Penalty"):
        register_penalty("elastic")
    unregister_penalty(elastic)
    assert elastic not in PENALTIES
    with pytest.raises(ValueError, match="unknown penalty name 'elastic'"):
        get_penalty(elastic)
    with pytest.raises(ValueError, match="unknown penalty"):
        Sparsifier(nn.Linear(3, 3), 0.5, method="prox_ste", penalty=elastic)
    register_penalty(ELASTIC)  # for the fixture's teardown
