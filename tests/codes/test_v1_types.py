"""Atom types ("varying functionalities"): the fits behind them, checked on synthetic atoms."""

import numpy as np
import pytest

from shrinkage.codes import v1

SIDE = 16


def _finish(a, rng, noise):
    a = a - a.mean()
    a = a / np.linalg.norm(a) + noise * rng.standard_normal(a.shape) / a.shape[0]
    a = a - a.mean()
    return a / np.linalg.norm(a)


def synthetic_atom(kind, rng, side=SIDE, noise=0.1):
    """One atom of a known type, random parameters, a little pixel noise."""
    y, x = np.mgrid[0:side, 0:side].astype(float)
    c = (side - 1) / 2
    dx, dy = rng.uniform(-2, 2, 2)
    if kind == "gabor":
        a = v1.gabor(
            (side, side),
            c + dx,
            c + dy,
            rng.uniform(0, np.pi),
            rng.uniform(0.12, 0.3),
            rng.uniform(-np.pi, np.pi),
            rng.uniform(1.5, 3),
            rng.uniform(1.5, 4),
        )
    elif kind == "edge":  # odd-symmetric, less than a cycle under the envelope
        f = rng.uniform(0.08, 0.14)
        a = v1.gabor(
            (side, side),
            c + dx,
            c + dy,
            rng.uniform(0, np.pi),
            f,
            np.pi / 2,
            rng.uniform(0.2, 0.35) / f,
            rng.uniform(3, 5),
        )
    elif kind == "blob":  # centre-surround
        s1 = rng.uniform(1.0, 2.0)
        r2 = (x - c - dx) ** 2 + (y - c - dy) ** 2
        a = np.exp(-r2 / (2 * s1**2)) - rng.uniform(0.2, 0.5) * np.exp(
            -r2 / (2 * (s1 * rng.uniform(2, 3)) ** 2)
        )
    elif kind == "low-frequency":  # half to one cycle across the patch
        f, t = rng.uniform(0.03, 0.07), rng.uniform(0, np.pi)
        a = np.cos(2 * np.pi * f * (x * np.cos(t) + y * np.sin(t)) + rng.uniform(-np.pi, np.pi))
    else:
        a = rng.standard_normal((side, side))
    return _finish(a, rng, noise)


EXPECTED = {
    "gabor": "gabor",
    "edge": "gabor",
    "blob": "blob",
    "low-frequency": "low-frequency",
    "noise": "unstructured",
}


def test_classifier_on_synthetic_atoms():
    """Five random atoms of each kind, with pixel noise: at least 4 of 5 get their type
    (edges count as oriented Gabor/edge units, white noise as unstructured); fractions add
    up to 1."""
    rng = np.random.default_rng(0)
    kinds = [k for k in EXPECTED for _ in range(5)]
    D = np.stack([synthetic_atom(k, rng).ravel() for k in kinds])
    res = v1.classify_atoms(D)
    for k, want in EXPECTED.items():
        got = res["type"][[i for i, kk in enumerate(kinds) if kk == k]]
        assert (got == want).sum() >= 4, (k, got)
    assert sum(res["fractions"].values()) == pytest.approx(1.0)
    assert set(res["fractions"]) == set(v1.ATOM_TYPES)


def test_dog_fit_recovers_its_parameters():
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(float)
    r2 = (x - 6.6) ** 2 + (y - 8.3) ** 2
    a = 1.5 * np.exp(-r2 / (2 * 1.4**2)) - 0.6 * np.exp(-r2 / (2 * 3.5**2)) + 0.02
    fit = v1.fit_dog(a)
    assert fit["r2"] > 1 - 1e-8
    for k, v in dict(x0=6.6, y0=8.3, s1=1.4, s2=3.5, a1=1.5, a2=0.6, c=0.02).items():
        assert fit[k] == pytest.approx(v, abs=1e-4), k
    with pytest.raises(ValueError, match="constant"):
        v1.fit_dog(np.ones((8, 8)))


def test_spectral_features_against_closed_forms():
    """A grating's power peaks at its frequency (to the 4x-padded FFT's bin) and along one
    orientation (orientedness near 1); a radially symmetric blob has orientedness near 0;
    a patch of equal energy per pixel has the spread of a uniform grid,
    sqrt(2 (side^2 - 1) / 12)."""
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(float)
    g = np.cos(2 * np.pi * 0.25 * (x * np.cos(0.5) + y * np.sin(0.5)))
    f = v1.spectral_features(g * np.hanning(SIDE)[:, None] * np.hanning(SIDE)[None, :])
    assert f["f_peak"] == pytest.approx(0.25, abs=1 / (4 * SIDE))
    assert f["orientedness"] > 0.9
    r2 = (x - 7.5) ** 2 + (y - 7.5) ** 2
    assert v1.spectral_features(np.exp(-r2 / 4) - 0.3 * np.exp(-r2 / 16))["orientedness"] < 0.05
    checker = np.where((x + y) % 2 == 0, 1.0, -1.0)
    assert v1.spectral_features(checker)["spread"] == pytest.approx(
        np.sqrt(2 * (SIDE**2 - 1) / 12), rel=1e-12
    )


def test_plots_write_files(tmp_path):
    rng = np.random.default_rng(1)
    D = np.stack([synthetic_atom("gabor", rng).ravel() for _ in range(2)])
    fits = v1.fit_gabors(D)
    p = v1.plot_gabor_params({"a": fits, "b": fits}, tmp_path / "g.png")
    assert p.stat().st_size > 1000
    q = v1.plot_type_fractions(
        {"l1": [(0.05, {"gabor": 0.5, "blob": 0.5}), (0.02, {"gabor": 1.0})]},
        tmp_path / "t.png",
    )
    assert q.stat().st_size > 1000
    # Reusing the Gabor fits gives the same types as fitting again.
    assert list(v1.classify_atoms(D, fits=fits)["type"]) == list(v1.classify_atoms(D)["type"])
