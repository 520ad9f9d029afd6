"""Edge of chaos, the safe clipping level and the diagnosis of unstable configurations."""

import math
import warnings

import numpy as np
import pytest
import torch

from shrinkage.activations import (
    EdgeOfChaosWarning,
    chi,
    dV_dq,
    edge_of_chaos,
    fixed_points,
    safe_clip,
    variance_map,
    zero_fraction,
)
from shrinkage.activations._gauss import resolve


def _eoc(*a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EdgeOfChaosWarning)
        return edge_of_chaos(*a, **k)


@pytest.mark.parametrize("name", ["shifted_relu", "soft_threshold", "crelu", "cst"])
@pytest.mark.parametrize("s", [0.55, 0.7, 0.85, 0.95])
@pytest.mark.parametrize("q_star", [0.5, 1.0, 4.0])
def test_eoc_solves_chi_one_fixed_point_and_sparsity(name, s, q_star):
    """chi = 1, V(q*) = q* and the fraction of zeros at q* equals the target, all to 1e-10,
    recomputed with the map functions (not read from the config)."""
    m = None if name in ("shifted_relu", "soft_threshold") else 1.1 * math.sqrt(q_star)
    cfg = _eoc(name, s, q_star=q_star, m=m)
    assert abs(chi(name, q_star, cfg.sigma_w, tau=cfg.tau, m=cfg.m) - 1) < 1e-10
    v = variance_map(name, q_star, cfg.sigma_w, cfg.sigma_b, tau=cfg.tau, m=cfg.m)
    assert abs(v - q_star) < 1e-10 * q_star
    assert abs(zero_fraction(name, q_star, tau=cfg.tau, m=cfg.m) - s) < 1e-10


def test_eoc_sparsity_is_the_measured_fraction_of_zeros():
    """The torch activation module built from the config zeroes the target fraction of
    N(0, q*) inputs (Monte Carlo, 5 standard errors)."""
    cfg = edge_of_chaos("cst", 0.85, q_star=2.0)
    x = torch.randn(400_000, generator=torch.Generator().manual_seed(0)) * math.sqrt(2.0)
    frac = float((cfg.module()(x) == 0).float().mean())
    assert abs(frac - 0.85) < 5 * math.sqrt(0.85 * 0.15 / x.numel())


@pytest.mark.parametrize("s", [0.6, 0.85])
def test_unclipped_is_half_stable_and_clipped_is_not(s):
    """V'(q*) = 1 exactly for unclipped shifted ReLU / soft threshold (with V'' > 0: the
    instability); V'(q*) < 1 for every clipped one."""
    for name in ("shifted_relu", "soft_threshold"):
        with pytest.warns(EdgeOfChaosWarning, match="half-stable"):
            cfg = edge_of_chaos(name, s)
        assert abs(cfg.dV - 1) < 1e-10 and cfg.d2V > 0 and not cfg.stable
        assert [p.kind for p in cfg.fixed_points] == ["half-stable"]
        # the certified scan agrees with the convexity argument the config uses
        scan = fixed_points(name, cfg.sigma_w, cfg.sigma_b, tau=cfg.tau, q_max=50.0, rtol=1e-8)
        assert [p.kind for p in scan] == ["half-stable"]
        assert scan[0].q == pytest.approx(1.0, rel=1e-3)
    for name in ("crelu", "cst"):
        for m in (0.3, 1.0, 3.0):
            cfg = _eoc(name, s, m=m)
            assert cfg.dV < 1
            assert cfg.dV == pytest.approx(dV_dq(name, 1.0, cfg.sigma_w, tau=cfg.tau, m=m))


@pytest.mark.parametrize("name,s", [("crelu", 0.85), ("cst", 0.85), ("crelu", 0.7), ("cst", 0.5)])
def test_safe_clip_is_the_stability_boundary(name, s):
    """At safe_clip's m, q* is the only fixed point (stable); at m (1 + 1e-4) other fixed
    points exist. A dense grid of V(q) - q confirms both independently of the scan."""
    m = safe_clip(name, s)
    cfg = edge_of_chaos(name, s, m=m)
    assert cfg.stable and len(cfg.fixed_points) == 1
    assert cfg.fixed_points[0].q == pytest.approx(1.0, rel=1e-9)
    with pytest.warns(EdgeOfChaosWarning, match="not the unique"):
        bad = edge_of_chaos(name, s, m=m * (1 + 1e-4))
    assert not bad.stable and len(bad.fixed_points) >= 2
    fp = fixed_points(name, bad.sigma_w, bad.sigma_b, tau=bad.tau, m=bad.m)
    assert any(p.q > 1.01 for p in fp)
    for c, expect in ((cfg, 1), (_eoc(name, s, m=1.05 * m), 3)):
        grid = np.linspace(c.sigma_b**2 * 1.0001, c.sigma_w**2 * c.m**2 + c.sigma_b**2, 40001)
        f = variance_map(name, grid, c.sigma_w, c.sigma_b, tau=c.tau, m=c.m) - grid
        assert np.count_nonzero(np.diff(np.sign(f))) == expect


def test_safe_clip_matches_the_note():
    """Found independently in the reference note at q* = 1, s = 0.85: CReLU safe at m = 1.5,
    not at 2; CST safe at 1.2, not at 1.5."""
    assert 1.5 <= safe_clip("crelu", 0.85) < 2.0
    assert 1.2 <= safe_clip("cst", 0.85) < 1.5


def test_safe_clip_scales_with_sqrt_q_star():
    """Everything is positively homogeneous: safe m at q* is sqrt(q*) times safe m at 1."""
    assert safe_clip("cst", 0.7, q_star=4.0) == pytest.approx(2 * safe_clip("cst", 0.7), rel=1e-5)


def test_unstable_m_warns_or_raises_with_the_safe_level():
    with pytest.warns(EdgeOfChaosWarning, match="largest safe m is 1.3"):
        cfg = edge_of_chaos("cst", 0.85, m=2.0)
    assert max(p.q for p in cfg.fixed_points) == pytest.approx(12.19, abs=0.05)  # the note: ~12
    with pytest.raises(ValueError, match="unstable configuration"):
        edge_of_chaos("cst", 0.85, m=2.0, strict=True)
    with pytest.raises(ValueError, match="unstable configuration"):
        edge_of_chaos("soft_threshold", 0.7, strict=True)


def test_relu_and_smooth_activations():
    """ReLU: sigma_w^2 = 2, sigma_b = 0, a line of neutral fixed points; erf: chi = 1."""
    cfg = edge_of_chaos("relu")
    assert cfg.sigma_w**2 == pytest.approx(2.0) and cfg.sigma_b == 0 and cfg.sparsity == 0.5
    erf = edge_of_chaos("erf", q_star=0.3)
    assert erf.chi == pytest.approx(1.0, abs=1e-12) and erf.stable


def test_config_is_frozen_and_readable():
    cfg = edge_of_chaos("cst", 0.85)
    with pytest.raises(AttributeError):
        cfg.tau = 0.0
    text = str(cfg)
    for word in ("tau", "sigma_w", "sigma_b", "chi", "V'(q*)", "V''(q*)", "fixed points", "stable"):
        assert word in text
    assert "EoCConfig(" in repr(cfg)
    assert isinstance(cfg.module(), type(resolve("cst", 0.5, 1.0)[0].module(0.5, 1.0)))


def test_bad_inputs_fail_before_work():
    with pytest.raises(ValueError, match="sparsity must be in"):
        edge_of_chaos("cst", 1.0)
    with pytest.raises(ValueError, match="sparsity must be in"):
        edge_of_chaos("crelu", 0.0)
    with pytest.raises(ValueError, match=r"sparsity must be in \[0.5, 1\)"):
        edge_of_chaos("crelu", 0.3)
    with pytest.raises(ValueError, match="q_star must be > 0"):
        edge_of_chaos("cst", 0.5, q_star=0.0)
    with pytest.raises(ValueError, match="m must be > 0"):
        edge_of_chaos("cst", 0.5, m=-1.0)
    with pytest.raises(ValueError, match="unknown activation 'swish'.*'cst'"):
        edge_of_chaos("swish", 0.5)
    with pytest.raises(ValueError, match="relu has no threshold"):
        edge_of_chaos("relu", 0.85)
    with pytest.raises(ValueError, match="clipped activation"):
        safe_clip("shifted_relu", 0.85)
    with pytest.raises(ValueError, match="takes no clipping"):
        edge_of_chaos("shifted_relu", 0.5, m=1.0)
    # booleans are not numbers here, an infinite clip is the unclipped activation, and a
    # depth or width is checked even where m and q* do not read it
    with pytest.raises(
        ValueError, match="q_star must be one number > 0 or 'auto', got q_star=True"
    ):
        edge_of_chaos("crelu", 0.85, q_star=True)
    with pytest.raises(ValueError, match="m must be 'safe', 'auto', a number"):
        edge_of_chaos("crelu", 0.85, m=True)
    with pytest.raises(ValueError, match="m must be a finite number > 0.*shifted_relu.*m=inf"):
        edge_of_chaos("crelu", 0.85, m=float("inf"))
    with pytest.raises(ValueError, match="soft_threshold"):
        edge_of_chaos("cst", 0.85, m=float("inf"))
    with pytest.raises(ValueError, match="depth must be an integer >= 2, got depth=0"):
        edge_of_chaos("crelu", 0.85, depth=0)
    with pytest.raises(ValueError, match="width must be an integer >= 1, got width=0"):
        edge_of_chaos("crelu", 0.85, width=0)


def test_an_uncertifiable_configuration_is_a_value_error_naming_it(monkeypatch):
    """What the certified scans cannot settle is bad input for this precision: a ValueError
    naming the activation and the sparsity (a command prints it as one line), never a
    RuntimeError."""
    from shrinkage.activations import eoc, maps

    def gives_up(*a, **k):
        raise maps._ScanError("the fixed points of V could not be separated")

    monkeypatch.setattr(maps, "_scan", gives_up)
    with pytest.raises(ValueError, match=r"clipped_soft_threshold at sparsity=0.9.*separated"):
        edge_of_chaos("cst", 0.9, m=1.0)
    with pytest.raises(ValueError, match=r"clipped_relu at sparsity=0.8.*separated"):
        safe_clip("crelu", 0.8)
    monkeypatch.undo()
    monkeypatch.setattr(eoc, "_stable_at", lambda *a, **k: (False, ()))
    with pytest.raises(ValueError, match=r"no certifiably safe clipping level for clipped_relu"):
        safe_clip("crelu", 0.8)


# -- found by probing (docs/reliability.md) ---------------------------------------------
def test_a_clip_too_small_for_any_slope_is_refused_not_divided_by():
    """m so small that E[phi'(z)^2] underflows to 0: no sigma_w reaches chi = 1, said by
    name instead of a ZeroDivisionError."""
    with pytest.raises(ValueError, match="m is too small"):
        edge_of_chaos("crelu", 0.85, m=1e-20)


@pytest.mark.parametrize(
    "m_max, match",
    [
        (-1, "m_max must be > 0"),
        (0, "m_max must be > 0"),
        (float("nan"), "m_max must be"),
        (float("inf"), "m_max must be finite"),
        (True, "m_max must be a number"),
        ("2", "m_max must be a number"),
        (1e-9, "caps the search below"),
    ],
)
def test_safe_clip_checks_its_cap(m_max, match):
    with pytest.raises(ValueError, match=match):
        safe_clip("crelu", 0.85, m_max=m_max)
    # a valid cap above the safe level changes nothing
    assert safe_clip("crelu", 0.85, m_max=5.0) == safe_clip("crelu", 0.85)


def test_small_q_star_keeps_its_labels_and_safe_clip_its_cap():
    """CST is homogeneous: scaling q*, sigma_b, tau and m together scales V, so q* = 1e-6
    is as stable as q* = 1 (an absolute noise floor called it half-stable, and a valid m an
    unstable config); erf at q* = 1e-4 likewise. safe_clip(m_max=1.5) returned 0.8 where the
    safe level, 1.327, is below the cap (its doubling stepped past the cap and gave up)."""
    safe = safe_clip("cst", 0.85)
    assert safe_clip("cst", 0.85, q_star=1e-6) == pytest.approx(safe * 1e-3, rel=1e-6)
    cfg = edge_of_chaos("cst", 0.85, q_star=1e-6, m=0.9 * safe * 1e-3)
    assert cfg.stable and [p.kind for p in cfg.fixed_points] == ["stable"]
    # an independent check of the label: V - q changes sign from + to - across q*
    v = [variance_map("cst", q, cfg.sigma_w, cfg.sigma_b, tau=cfg.tau, m=cfg.m) - q
         for q in (0.5e-6, 2e-6)]  # fmt: skip
    assert v[0] > 0 > v[1]
    assert edge_of_chaos("erf", q_star=1e-4).stable
    assert safe_clip("cst", 0.85, m_max=1.5) == pytest.approx(safe, rel=1e-5)
    with pytest.warns(EdgeOfChaosWarning, match="stable up to m = 1"):
        assert safe_clip("cst", 0.85, m_max=1.0) == 1.0
    with pytest.raises(ValueError, match=r"tol must be in \(0, 1\)"):
        safe_clip("cst", 0.85, tol=1.0)
