"""Does a dictionary look like V1? Gabor fits of the atoms and grating orientation tuning.

Gabor model on pixel coordinates (x: column, y: row)::

    g(x, y) = A exp(-x'^2 / (2 sx^2) - y'^2 / (2 sy^2)) cos(2 pi f x' + phi)
    x' = (x - x0) cos(theta) + (y - y0) sin(theta),  y' = -(x - x0) sin(theta) + (y - y0) cos(theta)

``theta`` is the direction of the carrier's wave vector (the bars run at theta + 90 deg), ``f``
in cycles per pixel, ``sx`` across the bars, ``sy`` along them. Ringach (2002):
``n_x = sx f``, ``n_y = sy f`` (envelope widths in carrier periods).

Orientation tuning (as in physiology): encode sinusoidal gratings at ``n_orientations``
orientations in [0, pi), several phases and spatial frequencies; the response of a unit at
an orientation is the mean over phases of |code|, at its best frequency. From the tuning
curve R(t): preferred orientation ``arg(sum R e^{2it}) / 2``, circular variance
``1 - |sum R e^{2it}| / sum R`` and OSI ``(R_pref - R_orth) / (R_pref + R_orth)``.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from scipy.optimize import least_squares
from tqdm.auto import tqdm

from .._checks import check_int_at_least, check_positive
from .._io import save_figure
from ._encode import encode

GABOR_PARAMS = ("x0", "y0", "theta", "f", "phi", "sx", "sy", "amp")


def gabor(shape, x0, y0, theta, f, phi, sx, sy, amp=1.0) -> np.ndarray:
    """A 2-D Gabor of ``shape`` (rows, cols) with the parameters of the module docstring.

    Examples
    --------
    >>> g = gabor((16, 16), 7.5, 7.5, 0.0, 0.25, 0.0, 3.0, 3.0)
    >>> g.shape, round(float(g.max()), 3)
    ((16, 16), 0.688)
    """
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    dx, dy = x - x0, y - y0
    c, s = math.cos(theta), math.sin(theta)
    xp = dx * c + dy * s
    yp = -dx * s + dy * c
    env = np.exp(-(xp**2) / (2 * sx**2) - yp**2 / (2 * sy**2))
    return amp * env * np.cos(2 * math.pi * f * xp + phi)


def _as_image(atom, shape):
    a = np.asarray(atom, dtype=np.float64)
    if a.ndim == 1:
        if shape is None:
            side = int(round(math.sqrt(a.size)))
            if side * side != a.size:
                raise ValueError(f"atom of length {a.size} is not square; pass shape=(h, w)")
            shape = (side, side)
        a = a.reshape(shape)
    if a.ndim != 2:
        raise ValueError(f"atom must be 1-D or 2-D, got shape {a.shape}")
    return a


def _initial_guesses(img):
    """Starting points from the atom's spectrum (peak frequency and direction) and from the
    centroid and spread of its energy; several phases and widths."""
    h, w = img.shape
    pad = 4
    F = np.fft.fft2(img, s=(pad * h, pad * w))
    P = np.abs(F) ** 2
    fy = np.fft.fftfreq(pad * h)[:, None] * np.ones((1, pad * w))
    fx = np.fft.fftfreq(pad * w)[None, :] * np.ones((pad * h, 1))
    P[0, 0] = 0.0
    i = int(np.argmax(P))
    kx, ky = float(fx.flat[i]), float(fy.flat[i])
    f0 = max(math.hypot(kx, ky), 1.0 / max(h, w))
    th0 = math.atan2(ky, kx)
    e = img**2
    tot = e.sum() or 1.0
    y, x = np.mgrid[0:h, 0:w]
    x0 = float((e * x).sum() / tot)
    y0 = float((e * y).sum() / tot)
    spread = math.sqrt(max(float((e * ((x - x0) ** 2 + (y - y0) ** 2)).sum() / tot), 0.5))
    amp0 = float(np.abs(img).max())
    guesses = []
    for phi in (0.0, 0.5 * math.pi, math.pi, -0.5 * math.pi):
        for s in (spread / 1.5, spread):
            guesses.append([x0, y0, th0, f0, phi, s, s, amp0])
    return guesses


def _canonical(p):
    """One representative of the equivalent parameter sets: amp > 0, theta in [0, pi),
    phi in (-pi, pi]."""
    x0, y0, th, f, phi, sx, sy, amp = p
    if amp < 0:
        amp, phi = -amp, phi + math.pi
    if f < 0:
        f, phi = -f, -phi
    k = math.floor(th / math.pi)
    th -= k * math.pi
    if k % 2:  # theta -> theta + pi flips x', i.e. phi -> -phi
        phi = -phi
    phi = (phi + math.pi) % (2 * math.pi) - math.pi
    if phi == -math.pi:
        phi = math.pi
    return [x0, y0, th, f, phi, abs(sx), abs(sy), amp]


def _fit_target(atom, shape, what):
    """``(img, x, y, target, ss)``: the atom as an image, its pixel coordinates, its values
    flattened and their sum of squares about the mean (ValueError when 0: nothing to fit)."""
    img = _as_image(atom, shape)
    h, w = img.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    target = img.ravel()
    ss = float(((target - target.mean()) ** 2).sum())
    if ss == 0:
        raise ValueError(f"atom is constant; {what} needs some structure")
    return img, x, y, target, ss


def _best_fit(resid, jac, starts, lo, hi, *, short, refine):
    """Bounded least squares: short fits (``short`` evaluations) from every start, then the
    best one refined (``refine`` evaluations)."""
    best = None
    for p0 in starts:
        r = least_squares(resid, p0, jac=jac, bounds=(lo, hi), method="trf", max_nfev=short)
        if best is None or r.cost < best.cost:
            best = r
    return least_squares(resid, best.x, jac=jac, bounds=(lo, hi), method="trf", max_nfev=refine)


def fit_gabor(atom, shape=None) -> dict:
    """Least-squares 2-D Gabor fit of one atom (scipy.optimize.least_squares, several starts
    from the atom's spectrum); returns the parameters, ``nx``, ``ny`` and ``r2``.

    Examples
    --------
    >>> g = gabor((16, 16), 8.2, 6.9, 0.6, 0.2, 0.4, 2.5, 3.5)
    >>> fit = fit_gabor(g)
    >>> round(float(fit["theta"]), 3), round(fit["r2"], 4)
    (0.6, 1.0)
    """
    img, x, y, target, ss = _fit_target(atom, shape, "a Gabor fit")
    h, w = img.shape
    big = 2.0 * max(h, w)
    lo = [-0.5 * w, -0.5 * h, -np.inf, 0.0, -np.inf, 0.3, 0.3, -np.inf]
    hi = [1.5 * w, 1.5 * h, np.inf, 0.5, np.inf, big, big, np.inf]

    def parts(p):
        x0, y0, th, f, phi, sx, sy, amp = p
        c, s = math.cos(th), math.sin(th)
        xp = (x - x0) * c + (y - y0) * s
        yp = -(x - x0) * s + (y - y0) * c
        env = np.exp(-(xp**2) / (2 * sx**2) - yp**2 / (2 * sy**2))
        arg = 2 * math.pi * f * xp + phi
        return xp, yp, env, np.cos(arg), np.sin(arg), c, s

    def resid(p):
        xp, yp, env, cos_, _, _, _ = parts(p)
        return (p[7] * env * cos_).ravel() - target

    def jac(p):
        _, _, _, f, _, sx, sy, amp = p
        xp, yp, env, cos_, sin_, c, s = parts(p)
        ae = amp * env
        g_xp = ae * (-xp / sx**2 * cos_ - 2 * math.pi * f * sin_)
        g_yp = ae * cos_ * (-yp / sy**2)
        cols = (
            -c * g_xp + s * g_yp,  # x0
            -s * g_xp - c * g_yp,  # y0
            yp * g_xp - xp * g_yp,  # theta
            -ae * sin_ * 2 * math.pi * xp,  # f
            -ae * sin_,  # phi
            ae * cos_ * xp**2 / sx**3,  # sx
            ae * cos_ * yp**2 / sy**3,  # sy
            env * cos_,  # amp
        )
        return np.stack([cc.ravel() for cc in cols], axis=1)

    starts = (np.clip(g0, np.array(lo) + 1e-9, np.array(hi) - 1e-9) for g0 in _initial_guesses(img))
    best = _best_fit(resid, jac, starts, lo, hi, short=25, refine=300)
    p = _canonical(list(best.x))
    out = dict(zip(GABOR_PARAMS, p))
    out["r2"] = 1.0 - 2.0 * float(best.cost) / ss
    out["nx"] = out["sx"] * out["f"]
    out["ny"] = out["sy"] * out["f"]
    return out


def _named(i, fn, *args):
    """``fn(*args)`` for atom i of a dictionary, its ValueError naming the atom (a dead,
    constant atom among hundreds)."""
    try:
        return fn(*args)
    except ValueError as e:
        raise ValueError(f"atom {i} of D: {e}") from None


def fit_gabors(D, shape=None, progress: bool = False) -> dict:
    """``fit_gabor`` on every row of D; returns a dict of arrays (one entry per atom)
    with keys ``x0 y0 theta f phi sx sy amp r2 nx ny``."""
    D = np.asarray(D, dtype=np.float64)
    it = range(len(D))
    if progress:
        it = tqdm(it, desc="Gabor fits", unit="atom")
    fits = [_named(i, fit_gabor, D[i], shape) for i in it]
    keys = list(GABOR_PARAMS) + ["r2", "nx", "ny"]
    return {k: np.array([f[k] for f in fits]) for k in keys}


# -- gratings ---------------------------------------------------------------------------
def gratings(
    shape, n_orientations=16, frequencies=(0.0625, 0.125, 0.1875, 0.25), n_phases=8, norm=1.0
):
    """Zero-mean sinusoidal gratings cos(2 pi f (x cos t + y sin t) + p) as rows, each scaled
    to Euclidean norm ``norm``; returns (stimuli (n_or*n_freq*n_phase, h*w), orientations,
    frequencies, phases) with the stimuli ordered orientation-major, then frequency, phase."""
    n_orientations = check_int_at_least("n_orientations", n_orientations, 2)
    n_phases = check_int_at_least("n_phases", n_phases, 1)
    check_positive("norm", norm)
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    oris = np.arange(n_orientations) * math.pi / n_orientations
    freqs = np.asarray(frequencies, dtype=np.float64)
    phases = np.arange(n_phases) * 2 * math.pi / n_phases
    out = []
    for t in oris:
        u = x * math.cos(t) + y * math.sin(t)
        for f in freqs:
            for p in phases:
                g = np.cos(2 * math.pi * f * u + p)
                g -= g.mean()
                nrm = np.linalg.norm(g)
                out.append(g * (norm / nrm) if nrm > 0 else g)
    return np.stack(out).reshape(len(out), h * w), oris, freqs, phases


def tuning_from_responses(resp, orientations) -> dict:
    """Preferred orientation, OSI and circular variance from tuning curves (n_units, n_or)."""
    R = np.asarray(resp, dtype=np.float64)
    oris = np.asarray(orientations, dtype=np.float64)
    if R.ndim != 2 or oris.ndim != 1 or R.shape[1] != len(oris) or len(oris) < 2:
        raise ValueError(
            f"resp must be (n_units, n_orientations) with n_orientations = "
            f"len(orientations) >= 2, got resp of shape {R.shape} and {oris.size} orientations"
        )
    vec = (R * np.exp(2j * oris)[None, :]).sum(1)
    tot = R.sum(1)
    safe = np.where(tot > 0, tot, 1.0)
    cv = np.where(tot > 0, 1.0 - np.abs(vec) / safe, 1.0)
    pref = (np.angle(vec) / 2.0) % math.pi
    ipref = R.argmax(1)
    n = len(oris)
    iorth = (ipref + n // 2) % n
    rp = R[np.arange(len(R)), ipref]
    ro = R[np.arange(len(R)), iorth]
    den = rp + ro
    osi = np.where(den > 0, (rp - ro) / np.where(den > 0, den, 1.0), 0.0)
    return {
        "preferred": pref,
        "osi": osi,
        "circular_variance": cv,
        "curves": R,
        "orientations": oris,
    }


def orientation_tuning(
    D,
    penalty="l1",
    lam=0.1,
    shape=None,
    n_orientations=16,
    frequencies=(0.0625, 0.125, 0.1875, 0.25),
    n_phases=8,
    norm=1.0,
    **encode_kw,
) -> dict:
    """Encode gratings with the dictionary's own penalty and return, per atom, the tuning
    curve (mean |code| over phases at the best frequency), preferred orientation, OSI and
    circular variance. See the module docstring."""
    D = np.asarray(D, dtype=np.float64)
    if shape is None:
        side = int(round(math.sqrt(D.shape[1])))
        shape = (side, side)
    S, oris, freqs, phases = gratings(shape, n_orientations, frequencies, n_phases, norm)
    Z = np.abs(encode(S, D, penalty, lam, **encode_kw))
    Z = Z.reshape(len(oris), len(freqs), len(phases), D.shape[0]).mean(2)  # (or, f, atom)
    best_f = Z.max(0).argmax(0)  # per atom
    curves = Z[:, best_f, np.arange(D.shape[0])].T  # (atom, or)
    out = tuning_from_responses(curves, oris)
    out["best_frequency"] = freqs[best_f]
    out["responsive"] = curves.max(1) > 0
    return out


def summary(fits: dict, tuning: dict | None = None, r2_min=0.8, osi_min=0.5) -> dict:
    """Fractions of Gabor-like atoms (fit R^2 >= r2_min) and of orientation-selective units
    (OSI >= osi_min among responsive units), with medians of the Gabor parameters."""
    missing = [k for k in ("r2", "f", "nx", "ny") if k not in fits]
    if missing:
        raise ValueError(f"fits must be fit_gabors' dict; it lacks {missing}")
    r2 = np.asarray(fits["r2"])
    good = r2 >= r2_min
    out = {
        "n_atoms": int(len(r2)),
        "gabor_fraction": float(good.mean()),
        "r2_median": float(np.median(r2)),
        "r2_min": r2_min,
    }
    if good.any():
        out["nx_median"] = float(np.median(fits["nx"][good]))
        out["ny_median"] = float(np.median(fits["ny"][good]))
        out["f_median"] = float(np.median(fits["f"][good]))
    if tuning is not None:
        resp = tuning["responsive"]
        osi = tuning["osi"]
        out["responsive_fraction"] = float(resp.mean())
        out["selective_fraction"] = float((resp & (osi >= osi_min)).mean())
        out["osi_median"] = float(np.median(osi[resp])) if resp.any() else 0.0
        cv = tuning["circular_variance"]
        out["circular_variance_median"] = float(np.median(cv[resp])) if resp.any() else 1.0
        out["osi_min"] = osi_min
    return out


# -- plots ------------------------------------------------------------------------------
def _fig(*a, figsize, **k):
    # matplotlib's object API: no pyplot state, no backend switch.
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*a, **k)


def plot_atoms(D, path, shape=None, max_atoms=256, title=None):
    """Grid of atoms (each scaled to its own max |value|, gray = 0)."""
    D = np.asarray(D, dtype=np.float64)[:max_atoms]
    if shape is None:
        side = int(round(math.sqrt(D.shape[1])))
        shape = (side, side)
    n = len(D)
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    fig, axes = _fig(rows, cols, figsize=(cols * 0.45, rows * 0.45 + 0.3), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        a = D[i].reshape(shape)
        m = np.abs(a).max() or 1.0
        axes.ravel()[i].imshow(a, cmap="gray", vmin=-m, vmax=m, interpolation="nearest")
    if title:
        fig.suptitle(title, fontsize=8)
    fig.subplots_adjust(wspace=0.05, hspace=0.05, left=0, right=1, bottom=0, top=0.95)
    save_figure(fig, path, dpi=100)
    return path


def plot_nxny(fits_by_name: dict, path, r2_min=0.8):
    """Ringach (2002) (n_x, n_y) scatter of the Gabor-like atoms, one colour per dictionary."""
    fig, ax = _fig(figsize=(4.2, 4))
    for name, fits in fits_by_name.items():
        good = np.asarray(fits["r2"]) >= r2_min
        ax.scatter(fits["nx"][good], fits["ny"][good], s=8, alpha=0.6, label=name)
    ax.plot([0, 1.5], [0, 1.5], "k:", lw=0.8)
    ax.set_xlim(0, 1.5)
    ax.set_ylim(0, 1.5)
    ax.set_xlabel("$n_x = \\sigma_x f$")
    ax.set_ylabel("$n_y = \\sigma_y f$")
    ax.set_title(f"Gabor fits with $R^2 \\geq {r2_min}$", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path


def plot_orientation_hist(fits_by_name: dict, path, r2_min=0.8):
    """Histogram of fitted bar orientations (theta + 90 deg, in degrees) of Gabor-like atoms."""
    fig, ax = _fig(figsize=(4.5, 3))
    bins = np.linspace(0, 180, 13)
    for name, fits in fits_by_name.items():
        good = np.asarray(fits["r2"]) >= r2_min
        deg = (np.degrees(fits["theta"][good]) + 90.0) % 180.0
        ax.hist(deg, bins=bins, histtype="step", lw=1.3, label=name)
    ax.set_xlabel("orientation of the bars (deg)")
    ax.set_ylabel("atoms")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path


def plot_tuning(tuning: dict, path, units=None, n=8):
    """Tuning curves (response vs grating orientation) of a few units, with their OSI."""
    curves = tuning["curves"]
    oris = np.degrees(tuning["orientations"])
    if units is None:
        resp = np.flatnonzero(tuning["responsive"])
        units = resp[np.argsort(-curves[resp].max(1))][:n]
    fig, axes = _fig(1, max(len(units), 1), figsize=(1.6 * max(len(units), 1), 1.8), squeeze=False)
    for ax, u in zip(axes.ravel(), units):
        ax.plot(oris, curves[u], "o-", ms=2.5)
        ax.set_title(f"unit {u}\nOSI {tuning['osi'][u]:.2f}", fontsize=7)
        ax.set_xticks([0, 90, 180])
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path


# -- atom types ("varying functionalities") ---------------------------------------------
ATOM_TYPES = ("gabor", "blob", "low-frequency", "unstructured")


def fit_dog(atom, shape=None) -> dict:
    """Least-squares isotropic difference of Gaussians plus offset,
    ``a1 exp(-r^2 / 2 s1^2) - a2 exp(-r^2 / 2 s2^2) + c`` with ``r`` the distance to
    (x0, y0) (a centre-surround or blob receptive field: Rodieck 1965, Enroth-Cugell &
    Robson 1966); returns the parameters and ``r2``.

    Examples
    --------
    >>> y, x = np.mgrid[0:16, 0:16]
    >>> r2 = (x - 7.3) ** 2 + (y - 8.1) ** 2
    >>> a = np.exp(-r2 / 4.5) - 0.4 * np.exp(-r2 / 18)
    >>> round(fit_dog(a)["r2"], 4)
    1.0
    """
    img, x, y, t, ss = _fit_target(atom, shape, "a fit")
    h, w = img.shape
    e = img**2
    tot = e.sum()
    x0 = float((e * x).sum() / tot)
    y0 = float((e * y).sum() / tot)
    # Start at the extremum nearest the energy centroid (the centre of a blob).
    iy, ix = np.unravel_index(np.argmax(np.abs(img)), img.shape)
    big = 2.0 * max(h, w)

    def model(p):
        cx, cy, a1, s1, a2, s2, c = p
        r2 = (x - cx) ** 2 + (y - cy) ** 2
        return a1 * np.exp(-r2 / (2 * s1**2)) - a2 * np.exp(-r2 / (2 * s2**2)) + c

    def resid(p):
        return model(p).ravel() - t

    def jac(p):
        cx, cy, a1, s1, a2, s2, _ = p
        dx, dy = x - cx, y - cy
        r2 = dx**2 + dy**2
        g1 = np.exp(-r2 / (2 * s1**2))
        g2 = np.exp(-r2 / (2 * s2**2))
        k = a1 * g1 / s1**2 - a2 * g2 / s2**2
        cols = (k * dx, k * dy, g1, a1 * g1 * r2 / s1**3, -g2, -a2 * g2 * r2 / s2**3)
        return np.stack([c.ravel() for c in cols] + [np.ones(t.size)], axis=1)

    amp = float(img[iy, ix])
    lo = [-0.5 * w, -0.5 * h, -np.inf, 0.3, -np.inf, 0.3, -np.inf]
    hi = [1.5 * w, 1.5 * h, np.inf, big, np.inf, big, np.inf]
    starts = (
        [cx, cy, amp, s1, 0.3 * amp, 2.5 * s1, 0.0]
        for cx, cy in ((float(ix), float(iy)), (x0, y0))
        for s1 in (1.2, 2.5)
    )
    best = _best_fit(resid, jac, starts, lo, hi, short=40, refine=200)
    cx, cy, a1, s1, a2, s2, c = best.x
    return {
        "x0": cx,
        "y0": cy,
        "a1": a1,
        "s1": s1,
        "a2": a2,
        "s2": s2,
        "c": c,
        "r2": 1.0 - 2.0 * float(best.cost) / ss,
    }


def spectral_features(atom, shape=None) -> dict:
    """Power-spectrum summary of an atom (4x zero-padded FFT, mean removed): peak and mean
    spatial frequency (cycles/pixel), and orientedness ``|sum P e^{2 i phi}| / sum P``
    (1: all power along one orientation, as a Gabor's; 0: isotropic, as a blob's), and the
    spatial spread ``sqrt(sum e r^2 / sum e)`` of its energy e around its centroid
    (pixels)."""
    img = _as_image(atom, shape)
    img = img - img.mean()
    h, w = img.shape
    pad = 4
    P = np.abs(np.fft.fft2(img, s=(pad * h, pad * w))) ** 2
    fy = np.fft.fftfreq(pad * h)[:, None] * np.ones((1, pad * w))
    fx = np.fft.fftfreq(pad * w)[None, :] * np.ones((pad * h, 1))
    f = np.hypot(fx, fy)
    P[0, 0] = 0.0
    tot = P.sum() or 1.0
    i = int(np.argmax(P))
    phi = np.arctan2(fy, fx)
    e = img**2
    et = e.sum() or 1.0
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = (e * xx).sum() / et, (e * yy).sum() / et
    return {
        "f_peak": float(f.flat[i]),
        "f_mean": float((P * f).sum() / tot),
        "orientedness": float(np.abs((P * np.exp(2j * phi)).sum()) / tot),
        "spread": float(np.sqrt((e * ((xx - cx) ** 2 + (yy - cy) ** 2)).sum() / et)),
    }


def classify_atom(atom, shape=None, r2_min=0.7, gabor_fit=None) -> tuple[str, dict]:
    """Type of one atom, from fits a test can check on synthetic atoms (see
    ``classify_atoms`` for the rule); returns (type, features)."""
    img = _as_image(atom, shape)
    side = max(img.shape)
    sp = spectral_features(img)
    g = gabor_fit if gabor_fit is not None else fit_gabor(img)
    d = fit_dog(img)
    feats = dict(sp, r2_gabor=g["r2"], r2_dog=d["r2"], f_gabor=g["f"], nx=g["nx"], ny=g["ny"])
    smooth = sp["f_peak"] <= 1.5 / side and sp["f_mean"] <= 2.5 / side
    if smooth and sp["spread"] >= 0.35 * side:
        kind = "low-frequency"
    elif g["r2"] >= r2_min and sp["orientedness"] >= 0.4 and g["f"] * side >= 1.0:
        kind = "gabor"
    elif d["r2"] >= r2_min and sp["orientedness"] < 0.4:
        kind = "blob"
    else:
        kind = "unstructured"
    return kind, feats


def classify_atoms(D, shape=None, r2_min=0.7, fits=None, progress=False) -> dict:
    """Classify every atom of D as ``"gabor"`` (oriented Gabor or edge), ``"blob"``
    (centre-surround or blob), ``"low-frequency"`` or ``"unstructured"``, in this order:

    - low-frequency: the peak of its power spectrum at most 1.5 and its mean at most 2.5
      cycles per patch width, and its energy spread (``spectral_features``) at least
      0.35 patch widths (smooth and extended; a uniform spread is 0.41);
    - gabor: Gabor fit (``fit_gabor``) ``R^2 >= r2_min``, orientedness of the power
      spectrum ``>= 0.4`` and at least one carrier cycle per patch width;
    - blob: difference-of-Gaussians fit (``fit_dog``) ``R^2 >= r2_min`` and an
      isotropic spectrum (orientedness ``< 0.4``);
    - unstructured: the rest.

    ``fits``: Gabor fits from ``fit_gabors`` to reuse. Returns ``{"type": array of
    str, "fractions": {type: fraction}, "features": {name: array}}``.
    """
    D = np.asarray(D, dtype=np.float64)
    it = range(len(D))
    if progress:
        it = tqdm(it, desc="atom types", unit="atom")
    kinds, feats = [], []
    for i in it:
        g = None if fits is None else {k: float(fits[k][i]) for k in ("r2", "f", "nx", "ny")}
        k, f = _named(i, classify_atom, D[i], shape, r2_min, g)
        kinds.append(k)
        feats.append(f)
    kinds = np.array(kinds)
    return {
        "type": kinds,
        "fractions": {t: float((kinds == t).mean()) if len(kinds) else 0.0 for t in ATOM_TYPES},
        "features": {k: np.array([f[k] for f in feats]) for k in (feats[0] if feats else {})},
    }


def plot_gabor_params(fits_by_name: dict, path, r2_min=0.8):
    """Distributions of the Gabor parameters of the well-fit atoms (``R^2 >= r2_min``), one
    line per dictionary: spatial frequency (cycles/pixel), orientation of the bars (deg),
    n_x and n_y (Ringach 2002); the legend gives each dictionary's fraction well fit."""
    fig, axes = _fig(1, 4, figsize=(13, 3))
    specs = (
        ("f", np.linspace(0, 0.5, 21), "spatial frequency (cycles/pixel)"),
        ("theta", np.linspace(0, 180, 13), "orientation of the bars (deg)"),
        ("nx", np.linspace(0, 1.5, 16), "$n_x = \\sigma_x f$"),
        ("ny", np.linspace(0, 1.5, 16), "$n_y = \\sigma_y f$"),
    )
    for name, fits in fits_by_name.items():
        good = np.asarray(fits["r2"]) >= r2_min
        for ax, (key, bins, label) in zip(axes, specs):
            v = np.asarray(fits[key])[good]
            if key == "theta":
                v = (np.degrees(v) + 90.0) % 180.0
            v = np.clip(v, bins[0], bins[-1])
            ax.hist(
                v,
                bins=bins,
                histtype="step",
                lw=1.3,
                density=True,
                label=f"{name} ({good.mean():.0%} fit)",
            )
            ax.set_xlabel(label)
    axes[0].set_ylabel("density")
    axes[-1].legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path


def plot_type_fractions(points: dict, path, xlabel="active fraction (%)"):
    """Fraction of each atom type against the code's sparsity, one panel per penalty.
    ``points``: ``{penalty: [(active_fraction, {type: fraction}), ...]}``."""
    n = max(len(points), 1)
    fig, axes = _fig(1, n, figsize=(3.4 * n, 3), squeeze=False)
    for ax, (pen, pts) in zip(axes.ravel(), points.items()):
        pts = sorted(pts, key=lambda p: p[0])
        xs = [100 * p[0] for p in pts]
        for t in ATOM_TYPES:
            ax.plot(xs, [p[1].get(t, 0.0) for p in pts], "o-", ms=3, label=t)
        ax.set_xscale("log")
        ax.set_ylim(0, 1)
        ax.set_title(pen, fontsize=9)
        ax.set_xlabel(xlabel)
    axes.ravel()[0].set_ylabel("fraction of atoms")
    axes.ravel()[-1].legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path


__all__ = [
    "GABOR_PARAMS",
    "gabor",
    "fit_gabor",
    "fit_gabors",
    "gratings",
    "orientation_tuning",
    "tuning_from_responses",
    "summary",
    "plot_atoms",
    "plot_nxny",
    "plot_orientation_hist",
    "plot_tuning",
    "ATOM_TYPES",
    "fit_dog",
    "spectral_features",
    "classify_atom",
    "classify_atoms",
    "plot_gabor_params",
    "plot_type_fractions",
]
