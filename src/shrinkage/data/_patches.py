"""Whitening and random patches, as in sparse-coding studies of V1 (Olshausen & Field 1997)."""

from __future__ import annotations

import numpy as np

from .._checks import check_choice, check_int_at_least, check_positive, check_scalar
from ._docs import fill_doc

WHITENINGS = ("olshausen", "zca", None)


def olshausen_filter(shape, f0: float = 0.4) -> np.ndarray:
    """Frequency response |f| exp(-(|f| / f_c)^4), f_c = f0 * Nyquist (0.5 cycles/pixel).

    Flattens the 1/f amplitude spectrum of natural images; the exponential removes the
    corner frequencies where noise and aliasing live. Laid out as ``np.fft.fft2``.

    The whitening filter of Olshausen & Field (1997): the ramp ``|f|`` undoes the roughly
    ``1/|f|`` fall of natural images' amplitude spectrum, the low-pass ``exp(-(|f|/f_c)^4)``
    cuts the highest frequencies. ``|f| = hypot(fx, fy)`` in cycles per pixel.

    Parameters
    ----------
    shape : tuple of int
        (H, W) of the image the filter multiplies in the Fourier domain.
    f0 : float, default 0.4
        Cut-off as a fraction of the Nyquist frequency; must be > 0.

    Returns
    -------
    numpy.ndarray
        The (H, W) float64 response, zero-frequency term at ``[0, 0]`` (as
        ``np.fft.fftfreq`` orders the frequencies); 0 at zero frequency, so the filter
        removes the image's mean.

    Raises
    ------
    ValueError
        When ``f0`` is not a number > 0, or ``shape`` not two integers >= 1.

    Examples
    --------
    >>> F = olshausen_filter((8, 8))
    >>> F.shape, float(F[0, 0])
    ((8, 8), 0.0)

    At ``|f| = 1/8`` with ``f_c = 0.4 * 0.5 = 0.2``, the response is
    ``0.125 * exp(-(0.125 / 0.2) ** 4)``:

    >>> bool(np.isclose(F[0, 1], 0.125 * np.exp(-((0.125 / 0.2) ** 4)))), round(float(F[0, 1]), 4)
    (True, 0.1073)
    """
    check_positive("f0", f0)
    if (
        not hasattr(shape, "__len__")
        or len(shape) != 2
        or any(isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1 for d in shape)
    ):
        raise ValueError(f"shape must be (H, W), two integers >= 1, got {shape!r}")
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    f = np.hypot(fx, fy)
    return f * np.exp(-((f / (f0 * 0.5)) ** 4))


def whiten_olshausen(image, f0: float = 0.4) -> np.ndarray:
    """Whiten one image in the Fourier domain by ``olshausen_filter``, after z-scoring.

    Returns a zero-mean, unit-variance float64 image.

    The image is z-scored, multiplied by the filter in the Fourier domain (a periodic
    convolution: the borders wrap, which is why ``patches`` crops away from them), and
    the result scaled to unit variance (Olshausen & Field 1997). A constant image gives
    zeros.

    Parameters
    ----------
    image : array_like
        One 2-D image.
    f0 : float, default 0.4
        Cut-off of the filter's low-pass, as a fraction of the Nyquist frequency (> 0).

    Returns
    -------
    numpy.ndarray
        The whitened float64 image, same shape, mean 0 and standard deviation 1.

    Raises
    ------
    ValueError
        When ``image`` is not 2-D, or ``f0`` is not > 0.

    Examples
    --------
    >>> w = whiten_olshausen(np.random.default_rng(0).random((64, 64)))
    >>> round(float(w.std()), 6)
    1.0
    >>> abs(float(w.mean())) < 1e-12
    True
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
    """ZCA whitening matrix U (S + eps mean(S))^(-1/2) U^T of the rows of X (already centred).

    ``U S U^T`` is the eigendecomposition of the covariance ``X^T X / n`` (eigenvalues
    clipped at 0); ``eps mean(S)`` regularises the smallest directions (noise) instead of
    amplifying them (Bell & Sejnowski 1997). ``X @ W`` is then white (covariance close to
    the identity, exactly so as ``eps`` goes to 0 for a full-rank covariance) while staying
    as close to X as whitening allows. A covariance with no variance at all (mean(S) = 0)
    uses ``eps`` itself, so the matrix stays finite.

    Parameters
    ----------
    X : array_like
        (n_samples, n_features) rows, each feature centred (mean 0 over the rows).
    eps : float, default 1e-2
        Regulariser, relative to the mean eigenvalue.

    Returns
    -------
    numpy.ndarray
        The symmetric (n_features, n_features) float64 whitening matrix W; whiten with
        ``X @ W``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((2000, 3)) @ np.array([[2.0, 0, 0], [1, 1, 0], [0, 0, 0.5]])
    >>> X -= X.mean(0)
    >>> W = zca_matrix(X, eps=1e-9)
    >>> bool(np.allclose(W, W.T)), bool(np.allclose((X @ W).T @ (X @ W) / len(X), np.eye(3)))
    (True, True)
    """
    check_positive("eps", eps)
    if not np.isfinite(float(eps)):
        raise ValueError(f"eps must be finite, got eps={eps!r}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < 1:
        raise ValueError(f"X must be (n_samples >= 1, n_features), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X holds NaN or inf: no covariance to whiten with")
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


@fill_doc
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

    Crops are drawn uniformly: an image uniformly among ``images``, then a position
    uniformly inside it (away from the border under ``"olshausen"``). The sparse-coding
    studies of V1 (Olshausen & Field 1997) learn their dictionaries on such patches.

    Parameters
    ----------
    images : numpy.ndarray or iterable of array_like
        One 2-D image, a stack (n, H, W), or a list of 2-D images of any sizes (finite
        numbers or booleans), each at least ``size`` pixels on a side (``size + 2 * (size
        // 2)`` with ``"olshausen"``, whose border is ``size // 2`` on each side).
    %(size)s
    n : int, default 10000
        Number of patches, >= 1.
    whiten : {"olshausen", "zca", None}, default "olshausen"
        How the images (or patches) are whitened, as above.
    seed : int, numpy.random.Generator or None, default 0
        Seed of ``numpy.random.default_rng`` for the crops' images and positions.
    f0 : float, default 0.4
        ``"olshausen"``: cut-off of the filter, as a fraction of the Nyquist frequency (> 0);
        see ``olshausen_filter``.
    variance : float, default 0.1
        ``"olshausen"``: variance of each whitened image (> 0; checked for every
        ``whiten``).
    zca_eps : float, default 1e-2
        ``"zca"``: regulariser of ``zca_matrix``.

    Returns
    -------
    numpy.ndarray
        (n, size * size) float64 array, one flattened patch (row-major) per row, each row of
        mean 0.

    Raises
    ------
    ValueError
        When ``size`` or ``n`` is not an integer in range, ``whiten`` is not one of the
        three, ``variance`` (or ``f0`` with ``"olshausen"``) is not > 0, ``images`` is
        empty, an image is not a non-empty 2-D array of finite numbers, or an image is
        smaller than a patch plus its border.

    Examples
    --------
    >>> from shrinkage.data import natural_images
    >>> P = patches(natural_images(["camera"]), size=8, n=100)
    >>> P.shape, bool(abs(P.mean(1)).max() < 1e-12)
    ((100, 64), True)

    The same seed draws the same patches:

    >>> img = np.random.default_rng(0).random((32, 32))
    >>> bool((patches(img, 4, 10, seed=3) == patches(img, 4, 10, seed=3)).all())
    True
    """
    size = check_int_at_least("size", size, 2)
    n = check_int_at_least("n", n, 1)
    check_choice("whiten", whiten, WHITENINGS)
    check_positive("variance", variance)
    check_scalar("variance", variance)  # finite: inf made every patch NaN
    check_positive("zca_eps", zca_eps)
    images = list(images) if not isinstance(images, np.ndarray) or images.ndim == 3 else [images]
    if not images:
        raise ValueError("images is empty: pass at least one 2-D image")
    for i, im in enumerate(images):
        a = np.asarray(im)
        if a.ndim != 2 or a.size == 0:
            raise ValueError(f"images[{i}] must be a non-empty 2-D image, got shape {a.shape}")
        if np.iscomplexobj(a):  # would be cropped from its real part, silently
            raise ValueError(f"images[{i}] must be real, got dtype {a.dtype}")
        if a.dtype != bool and (not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all()):
            raise ValueError(
                f"images[{i}] must be finite numbers, got "
                + (
                    f"dtype {a.dtype}"
                    if not np.issubdtype(a.dtype, np.number)
                    else f"{int((~np.isfinite(a)).sum())} NaN or inf pixel(s)"
                )
            )
    if not (seed is None or isinstance(seed, np.random.Generator)) and (
        isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0
    ):
        raise ValueError(f"seed must be an integer >= 0, a numpy Generator or None, got {seed!r}")
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
