"""Gabor fits recover synthetic Gabors; grating tuning finds the right orientation."""

import math

import numpy as np
import pytest

from shrinkage.codes import v1


def _angle_diff(a, b, period=math.pi):
    d = (a - b) % period
    return min(d, period - d)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gabor_fit_recovers_parameters(seed):
    rng = np.random.default_rng(seed)
    true = dict(
        x0=rng.uniform(5, 10),
        y0=rng.uniform(5, 10),
        theta=rng.uniform(0, math.pi),
        f=rng.uniform(0.1, 0.3),
        phi=rng.uniform(-3, 3),
        sx=rng.uniform(1.5, 3),
        sy=rng.uniform(2, 4),
        amp=rng.uniform(0.5, 2),
    )
    img = v1.gabor((16, 16), **true) + 0.01 * rng.standard_normal((16, 16))
    fit = v1.fit_gabor(img.ravel())
    assert fit["r2"] > 0.98
    assert abs(fit["x0"] - true["x0"]) < 0.15 and abs(fit["y0"] - true["y0"]) < 0.15
    assert _angle_diff(fit["theta"], true["theta"]) < 0.03
    assert abs(fit["f"] - true["f"]) < 0.01
    assert _angle_diff(fit["phi"], true["phi"], 2 * math.pi) < 0.15
    assert abs(fit["sx"] - true["sx"]) < 0.15 * true["sx"]
    assert abs(fit["sy"] - true["sy"]) < 0.15 * true["sy"]
    assert fit["nx"] == pytest.approx(fit["sx"] * fit["f"])


def test_noise_is_not_gabor_like():
    noise = np.random.default_rng(0).standard_normal((16, 16))
    assert v1.fit_gabor(noise)["r2"] < 0.5


def test_tuning_formulas():
    oris = np.arange(16) * math.pi / 16
    t0 = oris[5]
    R = np.stack([1 + np.cos(2 * (oris - t0)), np.ones(16)])
    tun = v1.tuning_from_responses(R, oris)
    assert _angle_diff(tun["preferred"][0], t0) < 1e-9
    assert tun["circular_variance"][0] == pytest.approx(0.5)  # |sum R e^{2it}| = N/2
    assert tun["osi"][0] == pytest.approx(1.0)  # R_orth = 0
    assert tun["circular_variance"][1] == pytest.approx(1.0) and tun["osi"][1] == 0.0


def test_gratings_probe_finds_gabor_orientation():
    """Atoms that are Gabors prefer gratings along their carrier; a round blob is unselective."""
    thetas = [0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4]
    atoms = [v1.gabor((12, 12), 5.5, 5.5, t, 0.1875, 0.0, 2.5, 3.5) for t in thetas]
    y, x = np.mgrid[0:12, 0:12]
    r2 = (x - 5.5) ** 2 + (y - 5.5) ** 2
    atoms.append(np.exp(-r2 / 4) - 0.5 * np.exp(-r2 / 16))  # centre-surround
    D = np.stack([a.ravel() / np.linalg.norm(a) for a in atoms])
    tun = v1.orientation_tuning(D, "l1", 0.05, n_orientations=16, norm=3.0)
    for i, t in enumerate(thetas):
        assert _angle_diff(tun["preferred"][i], t) < math.pi / 16
        assert tun["osi"][i] > 0.7
    assert tun["osi"][4] < 0.3


def test_summary_and_plots(tmp_path):
    D = np.stack(
        [v1.gabor((8, 8), 3.5, 3.5, t, 0.25, 0.0, 1.5, 2.0).ravel() for t in np.linspace(0, 3, 4)]
        + [np.random.default_rng(0).random(64)]
    )
    fits = v1.fit_gabors(D)
    tun = v1.orientation_tuning(D / np.linalg.norm(D, axis=1, keepdims=True), "l1", 0.05)
    s = v1.summary(fits, tun)
    assert s["gabor_fraction"] == pytest.approx(0.8)
    for fn, arg in [(v1.plot_nxny, {"a": fits}), (v1.plot_orientation_hist, {"a": fits})]:
        p = fn(arg, tmp_path / f"{fn.__name__}.png")
        assert p.stat().st_size > 1000
    assert v1.plot_atoms(D, tmp_path / "atoms.png").stat().st_size > 1000
    assert v1.plot_tuning(tun, tmp_path / "tun.png").stat().st_size > 1000


def test_bad_inputs_of_the_analyses_are_named():
    """Found by probing: a dead (all-zero) atom failed the whole dictionary without saying
    which; mismatched tuning curves, a fits dict without its keys and the data helpers' odd
    shapes gave numpy's own errors."""
    import numpy as np

    from shrinkage.codes import v1

    rng = np.random.default_rng(0)
    D = rng.standard_normal((3, 36))
    D[1] = 0.0
    with pytest.raises(ValueError, match="atom 1 of D: atom is constant"):
        v1.fit_gabors(D)
    with pytest.raises(ValueError, match="atom 1 of D"):
        v1.classify_atoms(D)
    with pytest.raises(ValueError, match="resp must be .n_units, n_orientations."):
        v1.tuning_from_responses(np.ones((2, 8)), np.linspace(0, 3, 6))
    with pytest.raises(ValueError, match="lacks \\['r2', 'f', 'nx', 'ny'\\]"):
        v1.summary({})
