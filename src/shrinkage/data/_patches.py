"""Whitening and random patches, as in sparse-coding studies of V1 (Olshausen & Field 1997)."""

from __future__ import annotations

import numpy as np

from .._checks import check_choice, check_int_at_least, check_positive

WHITENINGS = ("olshausen", "zca", None)


def olshausen_filter(shape, f0: float = 0.4) -> np.ndarray:
    """Frequency response |f| exp(-(|f| / f_c)^4), f_c = f0 * Nyquist (0.5 cycles/pixel).

    Flattens the 1/f amplitude spectrum of natural images; the exponential removes the
    corner frequencies where noise and aliasing live. Laid out as ``np.fft.fft2``.
    """
    check_positive("f0", f0)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    f = np.hypot(fx, fy)
    return f * np.exp(-((f / (f0 * 0.5)) ** 4))


def whiten_olshausen(image, f0: float = 0.4) -> np.ndarray:
    """Whiten one image in the Fourier domain by :func:`olshausen_filter`, after z-scoring.

    Returns a zero-mean, unit-variance float64 image.

    >>> w = whiten_olshausen(np.random.default_rng(0).random((64, 64)))
    >>> round(float(w.std()), 6)
    1.0
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {img.shape}")
    sd = img.std()
    img = (img - img.mean()) / (sd if sd > 0 else 1.0)
    out = np.real(np.fft.ifft2(np.fft.fft2(img) * olshausen_filter(img.shape, f0)))
    sd = out.std()
    return out / (sd if sd > 0 else 1.0)


def zca_matrix(X, eps: float = 1e-2) -> np.ndarray:
    """ZCA whitening matrix U (S + eps mean(S))^(-1/2) U^T of the rows of X (already centred)."""
    X = np.asarray(X, dtype=np.float64)
    cov = X.T @ X / len(X)
    s, U = np.linalg.eigh(cov)
    s = np.clip(s, 0.0, None)
    reg = eps * s.mean()
    if not reg > 0:  # no variance at all (constant images): nothing to whiten, stay finite
        reg = eps
    return (U / np.sqrt(s + reg)) @ U.T


def _crop(images, size, n, rng, border):
    valid = []
    for i, im in enumerate(images):
        if im.ndim != 2:
            raise ValueError(f"images[{i}] must be 2-D, got shape {im.shape}")
        h, w = im.shape
        if h - 2 * border < size or w - 2 * border < size:
            raise ValueError(
                f"images[{i}] of shape {im.shape} is smaller than the patch size {size} "
                f"(plus a border of {border} pixels on each side)"
            )
        valid.append(i)
    which = rng.integers(0, len(images), size=n)
    out = np.empty((n, size, size), dtype=np.float64)
    for i in np.unique(which):
        sel = np.flatnonzero(which == i)
        h, w = images[i].shape
        ys = rng.integers(border, h - border - size + 1, size=len(sel))
        xs = rng.integers(border, w - border - size + 1, size=len(sel))
        win = np.lib.stride_tricks.sliding_window_view(images[i], (size, size))
        out[sel] = win[ys, xs]
    return out.reshape(n, size * size)


def patches(
    images,
    size: int = 16,
    n: int = 10_000,
    whiten="olshausen",
    seed=0,
    f0: float = 0.4,
    variance: float = 0.1,
    zca_eps: float = 1e-2,
) -> np.ndarray:
    """Random ``size`` x ``size`` crops as rows of an (n, size*size) float64 array, each
    crop's mean removed.

    ``whiten``: ``"olshausen"`` (each image whitened by |f| exp(-(|f|/f_c)^4), f_c = f0 *
    Nyquist, then scaled to variance ``variance``; crops avoid a border of ``size // 2``
    pixels where the periodic FFT wraps), ``"zca"`` (each image z-scored; ZCA on the crops) or
    ``None`` (each image z-scored). Deterministic for a given ``seed``.

    >>> from shrinkage.data import natural_images
    >>> P = patches(natural_images(["camera"]), size=8, n=100)
    >>> P.shape, bool(abs(P.mean(1)).max() < 1e-12)
    ((100, 64), True)
    """
    size = check_int_at_least("size", size, 2)
    n = check_int_at_least("n", n, 1)
    check_choice("whiten", whiten, WHITENINGS)
    check_positive("variance", variance)
    images = list(images) if not isinstance(images, np.ndarray) or images.ndim == 3 else [images]
    if not images:
        raise ValueError("images is empty: pass at least one 2-D image")
    for i, im in enumerate(images):
        a = np.asarray(im)
        if a.ndim != 2 or a.size == 0:
            raise ValueError(f"images[{i}] must be a non-empty 2-D image, got shape {a.shape}")
        if a.dtype != bool and (not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all()):
            raise ValueError(
                f"images[{i}] must be finite numbers, got "
                + (
                    f"dtype {a.dtype}"
                    if not np.issubdtype(a.dtype, np.number)
                    else f"{int((~np.isfinite(a)).sum())} NaN or inf pixel(s)"
                )
            )
    rng = np.random.default_rng(seed)
    if whiten == "olshausen":
        prepared = [whiten_olshausen(im, f0) * np.sqrt(variance) for im in images]
        border = size // 2
    else:
        prepared = []
        for im in images:
            im = np.asarray(im, dtype=np.float64)
            sd = im.std()
            prepared.append((im - im.mean()) / (sd if sd > 0 else 1.0))
        border = 0
    X = _crop(prepared, size, n, rng, border)
    X -= X.mean(axis=1, keepdims=True)
    if whiten == "zca":
        X = X @ zca_matrix(X, zca_eps)
        X -= X.mean(axis=1, keepdims=True)
    return X
