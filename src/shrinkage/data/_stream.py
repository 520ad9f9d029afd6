"""Whitened patches streamed from image folders of any size, with flat memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .._checks import check_int_at_least, check_positive, check_scalar
from ._docs import fill_doc
from ._images import image_files, read_image
from ._patches import WHITENINGS, patches

_PATCH_OPTIONS = ("f0", "variance", "zca_eps")  # what patch_stream hands on to patches


@fill_doc
def patch_stream(
    source,
    size: int = 16,
    batch_size: int = 10_000,
    n_batches: int | None = None,
    images_per_batch: int = 8,
    whiten="olshausen",
    seed=0,
    **patch_kw,
) -> Iterator[np.ndarray]:
    """Batches of ``batch_size`` random ``size`` x ``size`` patches (rows, as
    ``shrinkage.data.patches``) drawn from a folder (or file, or list of 2-D arrays) of
    images of any size, reading only ``images_per_batch`` images per batch.

    Each batch comes from a fresh group of images, taken in a random order that covers the
    whole folder before any image repeats (then reshuffled); each image of the group is
    whitened on its own as in ``patches``. Memory holds one group and one batch, so a
    folder of thousands of van Hateren images streams as easily as the bundled photos.
    ``n_batches=None`` streams forever. Deterministic for a given ``seed``.

    Parameters
    ----------
    source : str, os.PathLike, numpy.ndarray or iterable of array_like
        A folder or file of images (read lazily by ``read_image``, as
        ``image_files`` lists them), or images already in memory: one 2-D array, a
        stack (n, H, W) or a list of 2-D arrays.
    %(size)s
    batch_size : int, default 10000
        Patches per batch, >= 1.
    n_batches : int, optional
        Number of batches (>= 1); default (None): no end.
    images_per_batch : int, default 8
        Images read and whitened for each batch (>= 1; all of them when there are fewer).
    whiten : {"olshausen", "zca", None}, default "olshausen"
        Whitening, as in ``patches``.
    seed : int, numpy.random.Generator or None, default 0
        Seed of the image order and of each batch's crops.
    **patch_kw
        Further options of ``patches``: ``f0``, ``variance``, ``zca_eps``.

    Returns
    -------
    Iterator of numpy.ndarray
        Batches of shape (batch_size, size * size), float64, rows of mean 0. The arguments
        are checked when the stream is made; an image too small for a patch is found when
        its batch is drawn.

    Raises
    ------
    ValueError
        When ``size``, ``batch_size``, ``n_batches`` or ``images_per_batch`` is not an
        integer in range, ``whiten`` is unknown, a folder holds no image file, ``source`` is
        empty, or ``source`` is a file of an unknown format; while iterating, the errors of
        ``read_image`` and ``patches``.
    FileNotFoundError
        When ``source`` is a path that does not exist.

    Examples
    --------
    >>> from shrinkage.data import natural_images
    >>> stream = patch_stream(natural_images(["camera", "moon"]), size=8, batch_size=100,
    ...                       n_batches=2, images_per_batch=1)
    >>> [b.shape for b in stream]
    [(100, 64), (100, 64)]

    The same seed gives the same stream:

    >>> imgs = np.random.default_rng(0).random((3, 40, 40))
    >>> a = list(patch_stream(imgs, size=4, batch_size=5, n_batches=3, seed=1))
    >>> b = list(patch_stream(imgs, size=4, batch_size=5, n_batches=3, seed=1))
    >>> all((x == y).all() for x, y in zip(a, b))
    True
    """
    size = check_int_at_least("size", size, 2)
    batch_size = check_int_at_least("batch_size", batch_size, 1)
    if n_batches is not None:
        n_batches = check_int_at_least("n_batches", n_batches, 1)
    images_per_batch = check_int_at_least("images_per_batch", images_per_batch, 1)
    if whiten not in WHITENINGS:
        raise ValueError(f"unknown whiten {whiten!r}; known: {', '.join(map(repr, WHITENINGS))}")
    unknown = sorted(set(patch_kw) - set(_PATCH_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for the patches; known: "
            f"{', '.join(map(repr, _PATCH_OPTIONS))} (size and batch_size are patch_stream's own)"
        )
    for key in _PATCH_OPTIONS:  # here, not at the first batch (f0 = -1, inf variance)
        if key in patch_kw:
            check_positive(key, patch_kw[key])
            check_scalar(key, patch_kw[key])
    if seed is not None and not isinstance(seed, np.random.Generator):
        check_int_at_least("seed", seed, 0)
    if isinstance(source, (str, Path)):
        files = image_files(source)
        if not files:
            raise ValueError(f"source={str(source)!r} holds no image files")
        load = read_image
        items = files
    else:
        items = list(source) if not isinstance(source, np.ndarray) or source.ndim == 3 else [source]
        if not items:
            raise ValueError("source is empty: pass a folder, a file or 2-D images")

        def load(im):
            return [np.asarray(im)]

    return _stream(
        items, load, size, batch_size, n_batches, images_per_batch, whiten, seed, patch_kw
    )


def _stream(items, load, size, batch_size, n_batches, per_batch, whiten, seed, patch_kw):
    rng = np.random.default_rng(seed)
    order: list[int] = []
    b = 0
    while n_batches is None or b < n_batches:
        group = []
        while len(group) < min(per_batch, len(items)):
            if not order:
                order = list(rng.permutation(len(items)))
            group.append(order.pop())
        images = [im for i in group for im in load(items[i])]
        yield patches(
            images,
            size=size,
            n=batch_size,
            whiten=whiten,
            seed=int(rng.integers(2**63 - 1)),
            **patch_kw,
        )
        b += 1


__all__ = ["patch_stream"]
